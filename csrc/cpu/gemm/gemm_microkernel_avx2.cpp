// AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
// Per k: two 8-wide loads of the B micro-panel, 6 broadcasts of A, 12 FMAs.
// Edge tiles: the packed panels are zero-padded; tiles with at most 3 rows or 8 columns run a
// smaller body (as the AVX-512 kernel does), and only partial tiles use masked loads/stores
// (vmaskmovps): on AMD Zen 1-3 a masked 256-bit store is microcoded and costs tens of cycles,
// which made every tile's epilogue a third of its time (perf annotate, Zen 3, 1020^3).
#include <immintrin.h>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

namespace {

// The tile body for ROWS rows (<= 6) and COLV column vectors (1 or 2), from a packed B
// micro-panel. A: a packed micro-panel (MR values per k), or with UNPACKED_A the rows of a
// row-major A, lda apart (the skinny GEMM of gemm_sup.cpp).
template <int ROWS, int COLV, bool UNPACKED_A = false>
inline void tile_avx2(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                      int64_t m, int64_t n, const TileEpilogue& ep, int64_t lda = 0) {
  constexpr int MR = 6, NR = 16, R = ROWS;
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();

  // Bring the C tile towards L1 while the k loop runs: both cache lines a 16-float row may
  // span when C is not 64-byte aligned (ldc = 1020: every row straddles two lines).
  for (int64_t i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + NR - 1), _MM_HINT_T0);
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp + k * NR);
    const __m256 b1 = COLV == 2 ? _mm256_load_ps(Bp + k * NR + 8) : b0;
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(UNPACKED_A ? Ap + i * lda + k : Ap + k * MR + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      if (COLV == 2) c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }

  const __m256 alpha = _mm256_set1_ps(ep.alpha), beta = _mm256_set1_ps(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  const __m256 zero = _mm256_setzero_ps();
  const bool full = n == NR;  // whole columns: plain (unmasked) loads and stores
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
  const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n) - 8), lane);
  __m256 cb0 = zero, cb1 = zero;
  if (ep.col_bias) {
    cb0 = full ? _mm256_loadu_ps(ep.col_bias) : _mm256_maskload_ps(ep.col_bias, k0);
    cb1 = full ? _mm256_loadu_ps(ep.col_bias + 8) : _mm256_maskload_ps(ep.col_bias + 8, k1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    if (i >= m) break;
    float* c = C + i * ldc;
    __m256 r0 = _mm256_mul_ps(alpha, c0[i]);
    __m256 r1 = COLV == 2 ? _mm256_mul_ps(alpha, c1[i]) : zero;
    if (read_c) {
      r0 = _mm256_fmadd_ps(beta, full ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, k0), r0);
      r1 = _mm256_fmadd_ps(beta, full ? _mm256_loadu_ps(c + 8) : _mm256_maskload_ps(c + 8, k1),
                           r1);
    }
    if (ep.row_bias || ep.col_bias) {
      const __m256 rb = _mm256_set1_ps(ep.row_bias ? ep.row_bias[i] : 0.0f);
      r0 = _mm256_add_ps(r0, _mm256_add_ps(rb, cb0));
      r1 = _mm256_add_ps(r1, _mm256_add_ps(rb, cb1));
    }
    if (ep.relu) {
      r0 = _mm256_max_ps(r0, zero);
      r1 = _mm256_max_ps(r1, zero);
    }
    if (full) {
      _mm256_storeu_ps(c, r0);
      _mm256_storeu_ps(c + 8, r1);
    } else {
      _mm256_maskstore_ps(c, k0, r0);
      if (n > 8) _mm256_maskstore_ps(c + 8, k1, r1);
    }
  }
}

}  // namespace

void microkernel_avx2_6x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           int64_t m, int64_t n, const TileEpilogue& ep) {
  if (m > 3) {
    if (n > 8) return tile_avx2<6, 2>(kc, Ap, Bp, C, ldc, m, n, ep);
    return tile_avx2<6, 1>(kc, Ap, Bp, C, ldc, m, n, ep);
  }
  if (n > 8) return tile_avx2<3, 2>(kc, Ap, Bp, C, ldc, m, n, ep);
  return tile_avx2<3, 1>(kc, Ap, Bp, C, ldc, m, n, ep);
}

void sup_kernel_avx2_6x16(int64_t kc, const float* A, int64_t lda, const float* Bp, float* C,
                          int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep) {
  if (lda == 0) return microkernel_avx2_6x16(kc, A, Bp, C, ldc, m, n, ep);  // packed A
  if (n > 8) return tile_avx2<6, 2, true>(kc, A, Bp, C, ldc, m, n, ep, lda);  // m == 6 rows
  return tile_avx2<6, 1, true>(kc, A, Bp, C, ldc, m, n, ep, lda);
}

}  // namespace convforge::cpu::gemm_detail
