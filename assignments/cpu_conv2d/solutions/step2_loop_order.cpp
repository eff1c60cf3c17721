// Worked solution, cpu_conv2d step 2: loop order and blocking. Each output plane starts as the
// bias; then for every tap (c, r, s) a shifted input row is added, scaled, to each output row. The
// q loop is unit-stride in y (and in x for stride 1) and has no branch: the valid q range of a tap
// is computed once. KB = 4 output channels share each input row loaded.
// Grade:  convforge grade assignments/cpu_conv2d/solutions/step2_loop_order.cpp --op conv2d
#include "convforge/student.h"

#include <algorithm>

constexpr int64_t KB = 4;

// The q range [q0, q1) whose input column q*stride_w - pad_left + s*dilation_w lies in [0, W).
static inline void q_range(const Conv2dGeometry* g, int64_t s, int64_t* q0, int64_t* q1) {
  const int64_t off = s * g->dilation_w - g->pad_left;  // column of q = 0
  *q0 = off >= 0 ? 0 : (-off + g->stride_w - 1) / g->stride_w;
  *q1 = g->W - 1 - off < 0 ? 0 : std::min(g->Q, (g->W - 1 - off) / g->stride_w + 1);
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, RS = g->R * g->S, PQ = g->P * g->Q;
  const int64_t sw = g->stride_w;
  for (int64_t n = 0; n < g->N; ++n)
    for (int64_t k0 = 0, nk = 0; k0 < g->K; k0 += nk) {
      const int64_t grp = k0 / Kg;
      nk = std::min(KB, (grp + 1) * Kg - k0);  // up to KB channels, all in one group
      float* yk = y + (n * g->K + k0) * PQ;
      for (int64_t j = 0; j < nk; ++j) std::fill(yk + j * PQ, yk + (j + 1) * PQ, bias ? bias[k0 + j] : 0.f);
      for (int64_t c = 0; c < Cg; ++c) {
        const float* xc = x + (n * g->C + grp * Cg + c) * g->H * g->W;
        for (int64_t r = 0; r < g->R; ++r)
          for (int64_t s = 0; s < g->S; ++s) {
            int64_t q0, q1;
            q_range(g, s, &q0, &q1);
            const int64_t off = s * g->dilation_w - g->pad_left;
            const float* wk = w + (k0 * Cg + c) * RS + r * g->S + s;  // w[k0][c][r][s], next k: + Cg*RS
            for (int64_t p = 0; p < g->P; ++p) {
              const int64_t h = p * g->stride_h - g->pad_top + r * g->dilation_h;
              if (h < 0 || h >= g->H) continue;
              const float* xr = xc + h * g->W + off;
              if (nk == KB) {  // four output rows fed by one input row
                const float w0 = wk[0], w1 = wk[Cg * RS], w2 = wk[2 * Cg * RS], w3 = wk[3 * Cg * RS];
                float* __restrict y0 = yk + p * g->Q;
                float* __restrict y1 = y0 + PQ;
                float* __restrict y2 = y1 + PQ;
                float* __restrict y3 = y2 + PQ;
                for (int64_t q = q0; q < q1; ++q) {
                  const float v = xr[q * sw];
                  y0[q] += w0 * v, y1[q] += w1 * v, y2[q] += w2 * v, y3[q] += w3 * v;
                }
              } else {
                for (int64_t j = 0; j < nk; ++j) {
                  const float wv = wk[j * Cg * RS];
                  float* __restrict yr = yk + j * PQ + p * g->Q;
                  for (int64_t q = q0; q < q1; ++q) yr[q] += wv * xr[q * sw];
                }
              }
            }
          }
      }
    }
}
