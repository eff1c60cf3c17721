// Worked solution, cpu_conv2d step 3: im2col + GEMM. Per image and group, the column matrix
// col[(c, r, s)][(p, q)] holds the input pixel each tap sees at each output position (0 in the
// padding); then y[n][group's K/groups rows] (K/groups x PQ) = w_group (K/groups x CRS) * col, into
// a y that already holds the bias. The GEMM is the SGEMM ladder's step 2 (loop order i, k, j).
// Grade:  convforge grade assignments/cpu_conv2d/solutions/step3_im2col_gemm.cpp --op conv2d
#include "convforge/student.h"

#include <algorithm>
#include <vector>

// col is (C/groups * R * S) x (P * Q), for image n and group grp.
static void im2col(const Conv2dGeometry* g, const float* x, int64_t n, int64_t grp, float* col) {
  const int64_t Cg = g->C / g->groups, PQ = g->P * g->Q;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xc = x + (n * g->C + grp * Cg + c) * g->H * g->W;
    for (int64_t r = 0; r < g->R; ++r)
      for (int64_t s = 0; s < g->S; ++s) {
        float* row = col + ((c * g->R + r) * g->S + s) * PQ;
        for (int64_t p = 0; p < g->P; ++p) {
          const int64_t h = p * g->stride_h - g->pad_top + r * g->dilation_h;
          for (int64_t q = 0; q < g->Q; ++q) {
            const int64_t ww = q * g->stride_w - g->pad_left + s * g->dilation_w;
            row[p * g->Q + q] = (h >= 0 && h < g->H && ww >= 0 && ww < g->W) ? xc[h * g->W + ww] : 0.f;
          }
        }
      }
  }
}

// C (M x N) += A (M x K) * B (K x N), row-major, all contiguous; loop order i, k, j.
static void gemm(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict c = C + i * N;
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[i * K + k];
      const float* __restrict b = B + k * N;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, CRS = Cg * g->R * g->S, PQ = g->P * g->Q;
  std::vector<float> col(CRS * PQ);
  for (int64_t n = 0; n < g->N; ++n)
    for (int64_t grp = 0; grp < g->groups; ++grp) {
      float* yg = y + (n * g->K + grp * Kg) * PQ;
      for (int64_t k = 0; k < Kg; ++k) std::fill(yg + k * PQ, yg + (k + 1) * PQ, bias ? bias[grp * Kg + k] : 0.f);
      im2col(g, x, n, grp, col.data());
      gemm(Kg, PQ, CRS, w + grp * Kg * CRS, col.data(), yg);
    }
}
