// The portable FMA-throughput loop of the machine description (machine.h): 128-bit vectors
// through the compiler's vector extension (SSE2 on x86, NEON on AArch64), for builds and
// CPUs without AVX2. machine_peak_avx2.cpp / _avx512.cpp are the same loop per ISA.
#include "cpu/machine.h"

namespace convforge::cpu {

float fma_loop_vec128(int64_t iters) {
  typedef float v4 __attribute__((vector_size(16)));
  constexpr int kChains = kFmaLoopFlops128 / 8;  // independent accumulators hide the latency
  v4 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = v4{1.0f, 1.0f, 1.0f, 1.0f} * float(j + 1);
  const v4 b = {0.999999f, 0.999999f, 0.999999f, 0.999999f}, c = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * b + c;
  v4 s = acc[0];
  for (int j = 1; j < kChains; ++j) s += acc[j];
  return s[0] + s[1] + s[2] + s[3];
}

}  // namespace convforge::cpu
