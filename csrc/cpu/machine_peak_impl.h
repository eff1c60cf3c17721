// The FMA-throughput loop of the machine description (machine.h), written once and compiled per
// ISA: machine_peak.cpp (128-bit, portable: SSE2 or NEON), machine_peak_avx2.cpp (256-bit) and
// machine_peak_avx512.cpp (512-bit) define CF_PEAK_WIDTH (floats per vector) and include this
// file. Chains independent accumulators hide the FMA latency; the loop body is
// acc = acc * b + c, which the compiler contracts to one FMA where the ISA has it.
// Internal linkage (anonymous namespace): each translation unit keeps its own copy, compiled
// with its own ISA flags.
#include <cstdint>

namespace convforge::cpu {
namespace {

constexpr int Width = CF_PEAK_WIDTH;
typedef float V __attribute__((vector_size(CF_PEAK_WIDTH * sizeof(float))));

template <int Chains>
float fma_chains(int64_t iters) {
  V acc[Chains];
  V b, c;
  for (int l = 0; l < Width; ++l) b[l] = 0.999999f, c[l] = 1e-7f;
  for (int j = 0; j < Chains; ++j) acc[j] = b * 0.0f + float(j + 1);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 32
    for (int j = 0; j < Chains; ++j) acc[j] = acc[j] * b + c;
  V s = acc[0];
  for (int j = 1; j < Chains; ++j) s += acc[j];
  return s[0] + s[Width - 1];
}

}  // namespace
}  // namespace convforge::cpu
