// Portable 4 x 16 micro-kernel: the fallback when the CPU has neither AVX2 nor AVX-512.
// Written as plain loops over a small accumulator block that the compiler keeps in
// (SSE) registers and vectorises along the 16 columns.
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

void microkernel_scalar_4x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             int64_t m, int64_t n, const TileEpilogue& ep) {
  constexpr int MR = 4, NR = 16;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float a = Ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * Bp[j];
    }
    Ap += MR;
    Bp += NR;
  }
  for (int64_t i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    const float rb = ep.row_bias ? ep.row_bias[i] : 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      float out = ep.alpha * acc[i][j];
      if (ep.beta != 0.0f) out += ep.beta * c[j];
      out += rb;
      if (ep.col_bias) out += ep.col_bias[j];
      if (ep.relu) out = out > 0.0f ? out : 0.0f;
      c[j] = out;
    }
  }
}

}  // namespace convforge::cpu::gemm_detail
