// Adaptive average pooling (torch.nn.functional.adaptive_avg_pool2d), forward and backward.
// Output (p, q) is the mean of the input's bin rows [adaptive_bin_start(p, H, P), ..._end) by
// columns [adaptive_bin_start(q, W, Q), ..._end) (common/geometry.h).
//   reference  plain loops, one output at a time, summing its bin in row-major order
//   fast       threads over (plane, output row); the bin's rows are summed into one row of
//              column sums (vectorised over columns), then each output sums its columns of
//              that row; a 1x1 output (global average) is one vectorised sum per plane
// Backward has one version for both: a gather, each input summing dy / bin size over the
// outputs whose bins hold it (no atomics, deterministic, threaded over planes).
#include <algorithm>
#include <vector>

#include "cpu/pool/pool2d.h"
#include "cpu/pool/pool2d_internal.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {

constexpr int64_t kParallelWork = 1 << 15;  // elements below which threads cost more than they save

// Sum of n contiguous floats; omp simd lets the compiler keep several partial sums.
float plane_sum(const float* x, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

}  // namespace

namespace pool_detail {

void adaptive_avg_pool2d_reference(const AdaptivePool2dGeometry& g, const float* x, float* y) {
  const int64_t planes = g.N * g.C;
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = x + plane * g.H * g.W;
    for (int64_t p = 0; p < g.P; ++p) {
      const int64_t hs = adaptive_bin_start(p, g.H, g.P), he = adaptive_bin_end(p, g.H, g.P);
      for (int64_t q = 0; q < g.Q; ++q) {
        const int64_t ws = adaptive_bin_start(q, g.W, g.Q), we = adaptive_bin_end(q, g.W, g.Q);
        float sum = 0.f;
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) sum += xp[h * g.W + w];
        y[(plane * g.P + p) * g.Q + q] = sum / static_cast<float>((he - hs) * (we - ws));
      }
    }
  }
}

void adaptive_avg_pool2d_fast(const AdaptivePool2dGeometry& g, const float* x, float* y) {
  const int64_t planes = g.N * g.C, HW = g.H * g.W;
  const bool parallel = planes * HW >= kParallelWork;
  if (g.global()) {
    const float inv = 1.f / static_cast<float>(HW);
#pragma omp parallel for schedule(static) if (parallel) firstprivate(team_float_mode)
    for (int64_t plane = 0; plane < planes; ++plane) y[plane] = plane_sum(x + plane * HW, HW) * inv;
    return;
  }
#pragma omp parallel if (parallel) firstprivate(team_float_mode)
  {
    std::vector<float> col(static_cast<size_t>(g.W));
    float* c = col.data();
#pragma omp for collapse(2) schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane)
      for (int64_t p = 0; p < g.P; ++p) {
        const int64_t hs = adaptive_bin_start(p, g.H, g.P), he = adaptive_bin_end(p, g.H, g.P);
        const float* xr = x + plane * HW + hs * g.W;
        std::copy(xr, xr + g.W, c);
        for (int64_t h = hs + 1; h < he; ++h) {
          xr += g.W;
#pragma omp simd
          for (int64_t w = 0; w < g.W; ++w) c[w] += xr[w];
        }
        float* yr = y + (plane * g.P + p) * g.Q;
        for (int64_t q = 0; q < g.Q; ++q) {
          const int64_t ws = adaptive_bin_start(q, g.W, g.Q), we = adaptive_bin_end(q, g.W, g.Q);
          float sum = 0.f;
          for (int64_t w = ws; w < we; ++w) sum += c[w];
          yr[q] = sum / static_cast<float>((he - hs) * (we - ws));
        }
      }
  }
}

}  // namespace pool_detail

void adaptive_avg_pool2d_backward(const AdaptivePool2dGeometry& g, const float* dy, float* dx) {
  const int64_t planes = g.N * g.C, HW = g.H * g.W, PQ = g.P * g.Q;
  const bool parallel = planes * HW >= kParallelWork;
  if (g.global()) {
    const float inv = 1.f / static_cast<float>(HW);
#pragma omp parallel for schedule(static) if (parallel) firstprivate(team_float_mode)
    for (int64_t plane = 0; plane < planes; ++plane)
      std::fill(dx + plane * HW, dx + (plane + 1) * HW, dy[plane] * inv);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (parallel) firstprivate(team_float_mode)
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t h = 0; h < g.H; ++h) {
      // Outputs whose row bins hold input row h: the bin rule with the roles swapped.
      const int64_t ps = adaptive_bin_start(h, g.P, g.H), pe = adaptive_bin_end(h, g.P, g.H);
      const float* gp = dy + plane * PQ;
      float* d = dx + plane * HW + h * g.W;
      for (int64_t w = 0; w < g.W; ++w) {
        const int64_t qs = adaptive_bin_start(w, g.Q, g.W), qe = adaptive_bin_end(w, g.Q, g.W);
        float sum = 0.f;
        for (int64_t p = ps; p < pe; ++p) {
          const int64_t rows = adaptive_bin_end(p, g.H, g.P) - adaptive_bin_start(p, g.H, g.P);
          for (int64_t q = qs; q < qe; ++q) {
            const int64_t cols = adaptive_bin_end(q, g.W, g.Q) - adaptive_bin_start(q, g.W, g.Q);
            sum += gp[p * g.Q + q] / static_cast<float>(rows * cols);
          }
        }
        d[w] = sum;
      }
    }
}

}  // namespace convforge::cpu
