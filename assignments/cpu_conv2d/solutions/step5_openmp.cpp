// Worked solution, cpu_conv2d step 5: OpenMP. Step 4's tiles are independent (image, group, tile
// of TILE output positions): one parallel loop over all of them, dynamic schedule, each thread
// with its own column and packing buffers (nothing shared but the read-only x and w; the threads
// write disjoint column ranges of y). Batch 1 still has PQ / TILE tiles per group to share.
// Grade:  convforge grade assignments/cpu_conv2d/solutions/step5_openmp.cpp --op conv2d
#include "convforge/student.h"

#include <algorithm>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

constexpr int64_t NC = 4096, KC = 256, MC = 72, MR = 6, NR = 16, TILE = 512;

// Apack: ceil(mc/MR) panels of KC x MR, panel-major, rows past mc zero.
static void pack_a(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Apack) {
  for (int64_t ip = 0; ip < mc; ip += MR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < MR; ++r) *Apack++ = ip + r < mc ? A[(ip + r) * lda + k] : 0.f;
}

// Bpack: ceil(nc/NR) panels of KC x NR, columns past nc zero.
static void pack_b(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* Bpack) {
  for (int64_t jp = 0; jp < nc; jp += NR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t c = 0; c < NR; ++c) *Bpack++ = jp + c < nc ? B[k * ldb + jp + c] : 0.f;
}

// C[0:m, 0:n] += alpha * Apanel * Bpanel (m <= MR, n <= NR: only the valid part is written).
static void block_kernel(int64_t kc, float alpha, const float* Ap, const float* Bp, float* C, int64_t ldc,
                         int64_t m, int64_t n) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 c[MR][2];
  for (int64_t i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Bp + k * NR), b1 = _mm256_loadu_ps(Bp + k * NR + 8);
    for (int64_t i = 0; i < MR; ++i) {  // unrolled by the compiler: MR is a constant
      const __m256 a = _mm256_broadcast_ss(Ap + k * MR + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (m == MR && n == NR) {  // a full block: straight into C
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        float* dst = C + i * ldc + 8 * h;
        _mm256_storeu_ps(dst, _mm256_fmadd_ps(va, c[i][h], _mm256_loadu_ps(dst)));
      }
    return;
  }
  alignas(32) float acc[MR][NR];  // an edge block: through a buffer, the valid part only
  for (int64_t i = 0; i < MR; ++i) {
    _mm256_store_ps(acc[i], c[i][0]);
    _mm256_store_ps(acc[i] + 8, c[i][1]);
  }
#else
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t i = 0; i < MR; ++i) {
      const float a = Ap[k * MR + i];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a * Bp[k * NR + j];
    }
#endif
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) C[i * ldc + j] += alpha * acc[i][j];
}

// C (M x N) += A (M x K) * B (K x N), row-major with row strides lda, ldb, ldc: the SGEMM ladder's
// step 5 (jc, pc, ic loops, packing, the AVX2 micro-kernel) with alpha = 1 and C already holding data.
static void gemm_acc(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float* C, int64_t ldc) {
  std::vector<float> Apack(((MC + MR - 1) / MR) * MR * KC), Bpack(((std::min(NC, N) + NR - 1) / NR) * NR * KC);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      pack_b(kc, nc, B + pc * ldb + jc, ldb, Bpack.data());
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        pack_a(mc, kc, A + ic * lda + pc, lda, Apack.data());
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR)
            block_kernel(kc, 1.f, Apack.data() + ir * kc, Bpack.data() + jr * kc, C + (ic + ir) * ldc + jc + jr,
                         ldc, std::min(MR, mc - ir), std::min(NR, nc - jr));
      }
    }
  }
}

// col (C/groups * R * S) x (j1 - j0): the column matrix of image n, group grp, for the output
// positions j = p*Q + q in [j0, j1) only (a tile that stays in L2).
static void im2col(const Conv2dGeometry* g, const float* x, int64_t n, int64_t grp, int64_t j0, int64_t j1,
                   float* col) {
  const int64_t Cg = g->C / g->groups, T = j1 - j0;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xc = x + (n * g->C + grp * Cg + c) * g->H * g->W;
    for (int64_t r = 0; r < g->R; ++r)
      for (int64_t s = 0; s < g->S; ++s) {
        float* row = col + ((c * g->R + r) * g->S + s) * T;
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t h = (j / g->Q) * g->stride_h - g->pad_top + r * g->dilation_h;
          const int64_t ww = (j % g->Q) * g->stride_w - g->pad_left + s * g->dilation_w;
          row[j - j0] = (h >= 0 && h < g->H && ww >= 0 && ww < g->W) ? xc[h * g->W + ww] : 0.f;
        }
      }
  }
}

// y[n][group rows] (K/groups x PQ, row stride PQ) += w_group (K/groups x CRS) * col, tile by tile.
static void conv_tile(const Conv2dGeometry* g, const float* x, const float* w, float* y, int64_t n, int64_t grp,
                      int64_t j0, int64_t j1, std::vector<float>& col) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, CRS = Cg * g->R * g->S, PQ = g->P * g->Q;
  col.resize(CRS * (j1 - j0));
  im2col(g, x, n, grp, j0, j1, col.data());
  gemm_acc(Kg, j1 - j0, CRS, w + grp * Kg * CRS, CRS, col.data(), j1 - j0, y + (n * g->K + grp * Kg) * PQ + j0, PQ);
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  const int64_t PQ = g->P * g->Q, tiles = (PQ + TILE - 1) / TILE;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t nk = 0; nk < g->N * g->K; ++nk)  // y starts as the bias
      std::fill(y + nk * PQ, y + (nk + 1) * PQ, bias ? bias[nk % g->K] : 0.f);
    std::vector<float> col;  // this thread's (gemm_acc's packing buffers are its own too)
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < g->N * g->groups * tiles; ++t) {
      const int64_t n = t / (g->groups * tiles), grp = (t / tiles) % g->groups, j0 = (t % tiles) * TILE;
      conv_tile(g, x, w, y, n, grp, j0, std::min(PQ, j0 + TILE), col);
    }
  }
}
