// A small, correct student pooling file (max and avg, forward and backward): plain loops, OpenMP
// over planes. Used by tests/test_grade.py (graded, and mutated one parameter at a time) and
// tests/test_kernels_registry.py (inside LeNet-5's training step).
#include "convforge/student.h"

#include <algorithm>
#include <cmath>
#include <cstring>

void convforge_max_pool2d_forward(const Pool2dGeometry* g, const float* x, float* y, int64_t* indices) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < g->N * g->C; ++plane) {
    const float* xp = x + plane * g->H * g->W;
    for (int64_t p = 0; p < g->P; ++p)
      for (int64_t q = 0; q < g->Q; ++q) {
        float best = -INFINITY;
        int64_t arg = -1;
        for (int64_t r = 0; r < g->R; ++r)
          for (int64_t s = 0; s < g->S; ++s) {
            const int64_t h = p * g->stride_h - g->pad_h + r * g->dilation_h;
            const int64_t w = q * g->stride_w - g->pad_w + s * g->dilation_w;
            if (h < 0 || h >= g->H || w < 0 || w >= g->W) continue;
            const float v = xp[h * g->W + w];
            if (v > best || std::isnan(v) || arg < 0) best = v, arg = h * g->W + w;  // as PyTorch's CPU kernel
          }
        const int64_t o = (plane * g->P + p) * g->Q + q;
        y[o] = best;
        if (indices) indices[o] = arg;
      }
  }
}

void convforge_max_pool2d_backward(const Pool2dGeometry* g, const float* dy, const int64_t* indices, float* dx) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < g->N * g->C; ++plane) {
    float* dxp = dx + plane * g->H * g->W;
    std::memset(dxp, 0, sizeof(float) * g->H * g->W);
    for (int64_t o = 0; o < g->P * g->Q; ++o) dxp[indices[plane * g->P * g->Q + o]] += dy[plane * g->P * g->Q + o];
  }
}

// PyTorch's divisor: the window clipped to the padded input (count_include_pad), or to the input.
static inline float divisor(const Pool2dGeometry* g, int count_include_pad, int64_t p, int64_t q, int64_t* h0,
                            int64_t* h1, int64_t* w0, int64_t* w1) {
  int64_t hs = p * g->stride_h - g->pad_h, ws = q * g->stride_w - g->pad_w;
  int64_t he = std::min(hs + g->R, g->H + g->pad_h), we = std::min(ws + g->S, g->W + g->pad_w);
  const int64_t padded = (he - hs) * (we - ws);
  hs = std::max<int64_t>(hs, 0), ws = std::max<int64_t>(ws, 0);
  he = std::min(he, g->H), we = std::min(we, g->W);
  *h0 = hs, *h1 = he, *w0 = ws, *w1 = we;
  return static_cast<float>(count_include_pad ? padded : (he - hs) * (we - ws));
}

void convforge_avg_pool2d_forward(const Pool2dGeometry* g, int count_include_pad, const float* x, float* y) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < g->N * g->C; ++plane) {
    const float* xp = x + plane * g->H * g->W;
    for (int64_t p = 0; p < g->P; ++p)
      for (int64_t q = 0; q < g->Q; ++q) {
        int64_t h0, h1, w0, w1;
        const float d = divisor(g, count_include_pad, p, q, &h0, &h1, &w0, &w1);
        float acc = 0.f;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) acc += xp[h * g->W + w];
        y[(plane * g->P + p) * g->Q + q] = acc / d;
      }
  }
}

void convforge_avg_pool2d_backward(const Pool2dGeometry* g, int count_include_pad, const float* dy, float* dx) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < g->N * g->C; ++plane) {
    float* dxp = dx + plane * g->H * g->W;
    std::memset(dxp, 0, sizeof(float) * g->H * g->W);
    for (int64_t p = 0; p < g->P; ++p)
      for (int64_t q = 0; q < g->Q; ++q) {
        int64_t h0, h1, w0, w1;
        const float v = dy[(plane * g->P + p) * g->Q + q] / divisor(g, count_include_pad, p, q, &h0, &h1, &w0, &w1);
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dxp[h * g->W + w] += v;
      }
  }
}
