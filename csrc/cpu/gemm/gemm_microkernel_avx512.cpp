// AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators.
// Per k: two 16-wide loads of the B micro-panel, 14 broadcasts of A, 28 FMAs.
// Edge tiles: the packed panels are zero-padded and the stores clipped (rows by count, columns
// by a write mask); tiles with at most 7 rows or 16 columns run a smaller body (7 rows, one
// column vector), so odd sizes (129 x 257, a 196-column conv GEMM) skip most of the padding.
#include <immintrin.h>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

namespace {

// The tile body for ROWS rows (<= 14) and COLV column vectors (1 or 2) of the packed panels
// (which stay 14 x kc and kc x 32): edge tiles with at most 7 rows or 16 columns skip the
// multiply-adds of the rows/columns that are only padding.
template <int ROWS, int COLV>
inline void tile_avx512(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                        int64_t m, int64_t n, const TileEpilogue& ep) {
  constexpr int MR = 14, R = ROWS;
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();

  // Bring the C tile towards L1 while the k loop runs (it is read or written at the end).
  for (int64_t i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 31), _MM_HINT_T0);
  }

  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp);
    const __m512 b1 = COLV == 2 ? _mm512_load_ps(Bp + 16) : b0;
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      if (COLV == 2) c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
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
  for (int i = 0; i < R; ++i) {
    if (i >= m) break;
    float* c = C + i * ldc;
    __m512 r0 = _mm512_mul_ps(alpha, c0[i]);
    __m512 r1 = COLV == 2 ? _mm512_mul_ps(alpha, c1[i]) : zero;
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
    if (COLV == 2) _mm512_mask_storeu_ps(c + 16, k1, r1);
  }
}

}  // namespace

void microkernel_avx512_14x32(int64_t kc, const float* Ap, const float* Bp, float* C,
                              int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep) {
  if (m > 7) {
    if (n > 16) return tile_avx512<14, 2>(kc, Ap, Bp, C, ldc, m, n, ep);
    return tile_avx512<14, 1>(kc, Ap, Bp, C, ldc, m, n, ep);
  }
  if (n > 16) return tile_avx512<7, 2>(kc, Ap, Bp, C, ldc, m, n, ep);
  return tile_avx512<7, 1>(kc, Ap, Bp, C, ldc, m, n, ep);
}

}  // namespace convforge::cpu::gemm_detail
