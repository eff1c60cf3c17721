// A small, correct student conv2d (forward and both backward passes): plain loops, OpenMP over
// (n, k). Used by tests/test_kernels_registry.py and tests/test_grade.py.
#include "convforge/student.h"

#include <cstring>

static inline bool tap(const Conv2dGeometry* g, int64_t p, int64_t q, int64_t r, int64_t s, int64_t* h,
                       int64_t* w) {
  *h = p * g->stride_h - g->pad_top + r * g->dilation_h;
  *w = q * g->stride_w - g->pad_left + s * g->dilation_w;
  return *h >= 0 && *h < g->H && *w >= 0 && *w < g->W;
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
#pragma omp parallel for collapse(2)
  for (int64_t n = 0; n < g->N; ++n)
    for (int64_t k = 0; k < g->K; ++k)
      for (int64_t p = 0; p < g->P; ++p)
        for (int64_t q = 0; q < g->Q; ++q) {
          float acc = bias ? bias[k] : 0.f;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < g->R; ++r)
              for (int64_t s = 0; s < g->S; ++s) {
                int64_t h, ww;
                if (tap(g, p, q, r, s, &h, &ww))
                  acc += x[((n * g->C + (k / Kg) * Cg + c) * g->H + h) * g->W + ww] *
                         w[((k * Cg + c) * g->R + r) * g->S + s];
              }
          y[((n * g->K + k) * g->P + p) * g->Q + q] = acc;
        }
}

void convforge_conv2d_backward_data(const Conv2dGeometry* g, const float* dy, const float* w, float* dx) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
  std::memset(dx, 0, sizeof(float) * g->x_size());
#pragma omp parallel for
  for (int64_t n = 0; n < g->N; ++n)  // each thread owns whole images of dx
    for (int64_t k = 0; k < g->K; ++k)
      for (int64_t p = 0; p < g->P; ++p)
        for (int64_t q = 0; q < g->Q; ++q) {
          const float d = dy[((n * g->K + k) * g->P + p) * g->Q + q];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < g->R; ++r)
              for (int64_t s = 0; s < g->S; ++s) {
                int64_t h, ww;
                if (tap(g, p, q, r, s, &h, &ww))
                  dx[((n * g->C + (k / Kg) * Cg + c) * g->H + h) * g->W + ww] +=
                      d * w[((k * Cg + c) * g->R + r) * g->S + s];
              }
        }
}

void convforge_conv2d_backward_weight(const Conv2dGeometry* g, const float* dy, const float* x, float* dw,
                                      float* db) {
  const int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
#pragma omp parallel for
  for (int64_t k = 0; k < g->K; ++k) {
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < g->R; ++r)
        for (int64_t s = 0; s < g->S; ++s) {
          float acc = 0.f;
          for (int64_t n = 0; n < g->N; ++n)
            for (int64_t p = 0; p < g->P; ++p)
              for (int64_t q = 0; q < g->Q; ++q) {
                int64_t h, ww;
                if (tap(g, p, q, r, s, &h, &ww))
                  acc += dy[((n * g->K + k) * g->P + p) * g->Q + q] *
                         x[((n * g->C + (k / Kg) * Cg + c) * g->H + h) * g->W + ww];
              }
          dw[((k * Cg + c) * g->R + r) * g->S + s] = acc;
        }
    if (db) {
      float acc = 0.f;
      for (int64_t n = 0; n < g->N; ++n)
        for (int64_t i = 0; i < g->P * g->Q; ++i) acc += dy[(n * g->K + k) * g->P * g->Q + i];
      db[k] = acc;
    }
  }
}
