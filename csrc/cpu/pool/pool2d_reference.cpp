// Pooling, version 0: plain loops, one output at a time. Read this one first; the fast
// versions (pool2d_fast.cpp) must give the same numbers.
#include <cmath>
#include <limits>

#include "cpu/pool/pool2d_internal.h"

namespace convforge::cpu::pool_detail {

// For each output, scan its window in row-major order. A tap in the padding is skipped
// (it never wins). A later tap wins when it is strictly greater (ties go to the first) or
// NaN (so any NaN makes the result NaN, with the last NaN's position, as PyTorch's CPU kernel).
void max_pool2d_reference(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices) {
  const int64_t planes = g.N * g.C;
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = x + plane * g.H * g.W;
    for (int64_t p = 0; p < g.P; ++p) {
      for (int64_t q = 0; q < g.Q; ++q) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_index = -1;  // stays -1 only if no tap lands inside the input
        for (int64_t r = 0; r < g.R; ++r) {
          const int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
          if (h < 0 || h >= g.H) continue;
          for (int64_t s = 0; s < g.S; ++s) {
            const int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
            if (w < 0 || w >= g.W) continue;
            const float v = xp[h * g.W + w];
            if (best_index < 0 || v > best || std::isnan(v)) {
              best = v;
              best_index = h * g.W + w;
            }
          }
        }
        const int64_t o = (plane * g.P + p) * g.Q + q;
        y[o] = best;
        if (indices) indices[o] = best_index;
      }
    }
  }
}

// Sum of the taps inside the input, divided by PyTorch's divisor (see avg_extent).
void avg_pool2d_reference(const Pool2dGeometry& g, bool count_include_pad, const float* x,
                          float* y) {
  const int64_t planes = g.N * g.C;
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = x + plane * g.H * g.W;
    for (int64_t p = 0; p < g.P; ++p) {
      const Taps th = window_taps(p, g.stride_h, g.pad_h, 1, g.R, g.H);
      for (int64_t q = 0; q < g.Q; ++q) {
        const Taps tw = window_taps(q, g.stride_w, g.pad_w, 1, g.S, g.W);
        float sum = 0.f;
        for (int64_t r = th.first; r < th.end; ++r)
          for (int64_t s = tw.first; s < tw.end; ++s)
            sum += xp[(th.start + r) * g.W + tw.start + s];
        const int64_t divisor = avg_extent(th, g.R, g.H, g.pad_h, count_include_pad) *
                                avg_extent(tw, g.S, g.W, g.pad_w, count_include_pad);
        y[(plane * g.P + p) * g.Q + q] = divisor > 0 ? sum / static_cast<float>(divisor) : 0.f;
      }
    }
  }
}

}  // namespace convforge::cpu::pool_detail
