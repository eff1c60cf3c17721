// Pooling backward. Both are threaded over planes: the windows of one plane overlap, so
// its gradient is accumulated by one thread, in output order (deterministic).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "cpu/pool/pool2d.h"
#include "cpu/pool/pool2d_internal.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {
constexpr int64_t kParallelWork = 1 << 15;
}

// dx = 0, then each dy goes to the input position its forward pass picked. Indices come
// from the user, so each is checked before it is used as an address.
void max_pool2d_backward(int64_t planes, int64_t PQ, int64_t HW, const float* dy,
                         const int64_t* indices, float* dx) {
  int64_t first_bad = -1;  // flat position in indices of the first index outside [0, HW)
#pragma omp parallel for schedule(static) if (planes * (PQ + HW) >= kParallelWork) firstprivate(team_float_mode)
  for (int64_t plane = 0; plane < planes; ++plane) {
    float* d = dx + plane * HW;
    std::fill(d, d + HW, 0.f);
    const int64_t* ind = indices + plane * PQ;
    const float* g = dy + plane * PQ;
    for (int64_t k = 0; k < PQ; ++k) {
      const int64_t at = ind[k];
      if (at < 0 || at >= HW) {
#pragma omp critical(convforge_max_pool_bad_index)
        if (first_bad < 0 || plane * PQ + k < first_bad) first_bad = plane * PQ + k;
        break;
      }
      d[at] += g[k];
    }
  }
  if (first_bad >= 0)
    throw std::out_of_range("max_pool2d_backward: indices[" + std::to_string(first_bad) +
                            "] (flat) is " + std::to_string(indices[first_bad]) +
                            ", outside the input plane of " + std::to_string(HW) +
                            " elements; indices must come from max_pool2d on an input of "
                            "input_shape");
}

// dx = 0, then each dy / divisor goes to every input position of its window (the same
// divisor as the forward pass).
void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const float* dy,
                         float* dx) {
  using pool_detail::avg_extent;
  using pool_detail::Taps;
  using pool_detail::window_taps;
  if (g.dilation_h != 1 || g.dilation_w != 1)
    throw std::invalid_argument("avg_pool2d_backward: average pooling has no dilation");
  const int64_t planes = g.N * g.C, HW = g.H * g.W, PQ = g.P * g.Q;
#pragma omp parallel for schedule(static) if (planes * PQ * g.R * g.S >= kParallelWork) firstprivate(team_float_mode)
  for (int64_t plane = 0; plane < planes; ++plane) {
    float* d = dx + plane * HW;
    std::fill(d, d + HW, 0.f);
    const float* gp = dy + plane * PQ;
    for (int64_t p = 0; p < g.P; ++p) {
      const Taps th = window_taps(p, g.stride_h, g.pad_h, 1, g.R, g.H);
      const int64_t hdiv = avg_extent(th, g.R, g.H, g.pad_h, count_include_pad);
      for (int64_t q = 0; q < g.Q; ++q) {
        const Taps tw = window_taps(q, g.stride_w, g.pad_w, 1, g.S, g.W);
        const int64_t divisor = hdiv * avg_extent(tw, g.S, g.W, g.pad_w, count_include_pad);
        if (divisor <= 0) continue;
        const float share = gp[p * g.Q + q] / static_cast<float>(divisor);
        for (int64_t r = th.first; r < th.end; ++r) {
          float* drow = d + (th.start + r) * g.W + tw.start;
          for (int64_t s = tw.first; s < tw.end; ++s) drow[s] += share;
        }
      }
    }
  }
}

}  // namespace convforge::cpu
