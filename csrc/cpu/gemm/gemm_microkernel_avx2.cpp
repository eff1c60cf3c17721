// AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
// Per k: two 8-wide loads of the B micro-panel, 6 broadcasts of A, 12 FMAs.
// Edge tiles: full tile computed from zero-padded panels; stores clipped by row count
// and by a lane mask (vmaskmovps) for the columns.
#include <immintrin.h>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

void microkernel_avx2_6x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           int64_t m, int64_t n, const TileEpilogue& ep) {
  constexpr int MR = 6;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();

  for (int64_t i = 0; i < m; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);

  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp);
    const __m256 b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += 16;
  }

  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
  const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n) - 8), lane);
  const __m256 alpha = _mm256_set1_ps(ep.alpha), beta = _mm256_set1_ps(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  const __m256 cb0 = ep.col_bias ? _mm256_maskload_ps(ep.col_bias, k0) : _mm256_setzero_ps();
  const __m256 cb1 = ep.col_bias ? _mm256_maskload_ps(ep.col_bias + 8, k1) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* c = C + i * ldc;
    __m256 r0 = _mm256_mul_ps(alpha, c0[i]);
    __m256 r1 = _mm256_mul_ps(alpha, c1[i]);
    if (read_c) {
      r0 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c, k0), r0);
      r1 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8, k1), r1);
    }
    const __m256 rb = _mm256_set1_ps(ep.row_bias ? ep.row_bias[i] : 0.0f);
    r0 = _mm256_add_ps(r0, _mm256_add_ps(rb, cb0));
    r1 = _mm256_add_ps(r1, _mm256_add_ps(rb, cb1));
    if (ep.relu) {
      r0 = _mm256_max_ps(r0, zero);
      r1 = _mm256_max_ps(r1, zero);
    }
    _mm256_maskstore_ps(c, k0, r0);
    _mm256_maskstore_ps(c + 8, k1, r1);
  }
}

}  // namespace convforge::cpu::gemm_detail
