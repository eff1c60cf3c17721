// AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators.
// Per k: two 16-wide loads of the B micro-panel, 14 broadcasts of A, 28 FMAs.
// Edge tiles: the packed panels are zero-padded, so the full tile is always computed and
// only the stores are clipped (rows by count, columns by a write mask).
#include <immintrin.h>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

void microkernel_avx512_14x32(int64_t kc, const float* Ap, const float* Bp, float* C,
                              int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep) {
  constexpr int MR = 14;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();

  // Bring the C tile towards L1 while the k loop runs (it is read or written at the end).
  for (int64_t i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 31), _MM_HINT_T0);
  }

  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp);
    const __m512 b1 = _mm512_load_ps(Bp + 16);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += 32;
  }

  const __mmask16 k0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
  const __mmask16 k1 = n >= 32 ? __mmask16(0xFFFF)
                               : (n > 16 ? __mmask16((1u << (n - 16)) - 1u) : __mmask16(0));
  const __m512 alpha = _mm512_set1_ps(ep.alpha), beta = _mm512_set1_ps(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  const __m512 cb0 = ep.col_bias ? _mm512_maskz_loadu_ps(k0, ep.col_bias) : _mm512_setzero_ps();
  const __m512 cb1 = ep.col_bias ? _mm512_maskz_loadu_ps(k1, ep.col_bias + 16) : _mm512_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* c = C + i * ldc;
    __m512 r0 = _mm512_mul_ps(alpha, c0[i]);
    __m512 r1 = _mm512_mul_ps(alpha, c1[i]);
    if (read_c) {
      r0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k0, c), r0);
      r1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k1, c + 16), r1);
    }
    const __m512 rb = _mm512_set1_ps(ep.row_bias ? ep.row_bias[i] : 0.0f);
    r0 = _mm512_add_ps(r0, _mm512_add_ps(rb, cb0));
    r1 = _mm512_add_ps(r1, _mm512_add_ps(rb, cb1));
    if (ep.relu) {  // (a compare and zero-mask; GCC 12 warns spuriously on _mm512_max_ps)
      r0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r0, zero, _CMP_GT_OQ), r0);
      r1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r1, zero, _CMP_GT_OQ), r1);
    }
    _mm512_mask_storeu_ps(c, k0, r0);
    _mm512_mask_storeu_ps(c + 16, k1, r1);
  }
}

}  // namespace convforge::cpu::gemm_detail
