// Worked solution, cpu_conv2d step 1: the seven loops, one output at a time.
// Grade:  convforge grade assignments/cpu_conv2d/solutions/step1_naive.cpp --op conv2d
#include "convforge/student.h"

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
  for (int64_t n = 0; n < g->N; ++n)
    for (int64_t k = 0; k < g->K; ++k) {
      const int64_t c0 = (k / Kg) * Cg;  // the first input channel of k's group
      for (int64_t p = 0; p < g->P; ++p)
        for (int64_t q = 0; q < g->Q; ++q) {
          float acc = bias ? bias[k] : 0.f;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < g->R; ++r) {
              const int64_t h = p * g->stride_h - g->pad_top + r * g->dilation_h;
              if (h < 0 || h >= g->H) continue;
              for (int64_t s = 0; s < g->S; ++s) {
                const int64_t ww = q * g->stride_w - g->pad_left + s * g->dilation_w;
                if (ww < 0 || ww >= g->W) continue;
                acc += x[((n * g->C + c0 + c) * g->H + h) * g->W + ww] * w[((k * Cg + c) * g->R + r) * g->S + s];
              }
            }
          y[((n * g->K + k) * g->P + p) * g->Q + q] = acc;
        }
    }
}
