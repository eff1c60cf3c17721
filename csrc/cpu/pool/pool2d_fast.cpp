// Pooling, version 1: threaded over (plane, output row). Each row's interior run (outputs
// whose taps all lie inside the input) goes to a row kernel that the compiler vectorises
// over outputs, in a copy for the CPU's instruction set (pool2d_row_kernels.h); the few
// outputs whose windows touch padding take the reference's per-output loop. Results are
// bitwise those of pool2d_reference.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/cpu_features.h"
#include "cpu/pool/pool2d_internal.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::pool_detail {
namespace {

constexpr int64_t kMaxWindowRows = 64;      // row pointers kept on the stack; taller windows go scalar
constexpr int64_t kChunk = 256;             // interior outputs per row-kernel call (offset buffer)
constexpr int64_t kParallelWork = 1 << 15;  // taps below which threads cost more than they save

struct RowKernels {
  void (*max)(const PoolRow&, float*, int32_t*);
  void (*avg)(const PoolRow&, float, float*);
};

RowKernels row_kernels() {
  switch (simd_level()) {
#if CONVFORGE_ARCH_X86
    case SimdLevel::AVX512: return {avx512::max_row, avx512::avg_row};
    case SimdLevel::AVX2: return {avx2::max_row, avx2::avg_row};
#endif
#if CONVFORGE_ARCH_ARM64
    case SimdLevel::NEON: return {neon::max_row, neon::avg_row};
#endif
    default: return {portable::max_row, portable::avg_row};
  }
}

// Outputs [qa, qb) of a row have every tap column inside [0, W).
void interior_columns(const Pool2dGeometry& g, int64_t dilation_w, int64_t& qa, int64_t& qb) {
  qa = std::min((g.pad_w + g.stride_w - 1) / g.stride_w, g.Q);
  const int64_t last_start = g.W - 1 - (g.S - 1) * dilation_w + g.pad_w;
  qb = last_start < 0 ? 0 : std::min(last_start / g.stride_w + 1, g.Q);
  qb = std::max(qb, qa);
}

void max_one(const Pool2dGeometry& g, const float* xp, const Taps& th, int64_t q, float* y,
             int64_t* index) {
  const Taps tw = window_taps(q, g.stride_w, g.pad_w, g.dilation_w, g.S, g.W);
  float best = -std::numeric_limits<float>::infinity();
  int64_t best_index = -1;
  for (int64_t r = th.first; r < th.end; ++r) {
    const int64_t h = th.start + r * g.dilation_h;
    for (int64_t s = tw.first; s < tw.end; ++s) {
      const int64_t at = h * g.W + tw.start + s * g.dilation_w;
      const float v = xp[at];
      if (best_index < 0 || v > best || std::isnan(v)) {
        best = v;
        best_index = at;
      }
    }
  }
  *y = best;
  if (index) *index = best_index;
}

void max_row(const Pool2dGeometry& g, const RowKernels& k, int64_t qa, int64_t qb,
             const float* xp, int64_t p, float* y, int64_t* index) {
  const Taps th = window_taps(p, g.stride_h, g.pad_h, g.dilation_h, g.R, g.H);
  const int64_t nrows = th.end - th.first;
  // Offsets inside one window are int32 in the row kernel.
  const bool vector_ok = nrows > 0 && nrows <= kMaxWindowRows && qb > qa &&
                         (nrows - 1) * g.dilation_h * g.W + (g.S - 1) * g.dilation_w <=
                             std::numeric_limits<int32_t>::max();
  if (!vector_ok) qa = qb = g.Q;
  for (int64_t q = 0; q < qa; ++q) max_one(g, xp, th, q, y + q, index ? index + q : nullptr);
  if (qb > qa) {
    const int64_t h0 = th.start + th.first * g.dilation_h;
    const float* rows[kMaxWindowRows];
    int32_t row_offset[kMaxWindowRows];
    int32_t offset[kChunk];
    for (int64_t c0 = qa; c0 < qb; c0 += kChunk) {
      const int64_t w0 = c0 * g.stride_w - g.pad_w;  // >= 0: interior
      for (int64_t i = 0; i < nrows; ++i) {
        rows[i] = xp + (h0 + i * g.dilation_h) * g.W + w0;
        row_offset[i] = static_cast<int32_t>(i * g.dilation_h * g.W);
      }
      const PoolRow run{rows, row_offset, nrows, g.S, g.dilation_w, g.stride_w,
                        std::min(kChunk, qb - c0)};
      k.max(run, y + c0, index ? offset : nullptr);
      if (index)
        for (int64_t j = 0; j < run.count; ++j)
          index[c0 + j] = h0 * g.W + w0 + j * g.stride_w + offset[j];
    }
  }
  for (int64_t q = qb; q < g.Q; ++q) max_one(g, xp, th, q, y + q, index ? index + q : nullptr);
}

void avg_one(const Pool2dGeometry& g, bool count_include_pad, const float* xp, const Taps& th,
             int64_t q, float* y) {
  const Taps tw = window_taps(q, g.stride_w, g.pad_w, 1, g.S, g.W);
  float sum = 0.f;
  for (int64_t r = th.first; r < th.end; ++r)
    for (int64_t s = tw.first; s < tw.end; ++s) sum += xp[(th.start + r) * g.W + tw.start + s];
  const int64_t divisor = avg_extent(th, g.R, g.H, g.pad_h, count_include_pad) *
                          avg_extent(tw, g.S, g.W, g.pad_w, count_include_pad);
  *y = divisor > 0 ? sum / static_cast<float>(divisor) : 0.f;
}

void avg_row(const Pool2dGeometry& g, bool count_include_pad, const RowKernels& k, int64_t qa,
             int64_t qb, const float* xp, int64_t p, float* y) {
  const Taps th = window_taps(p, g.stride_h, g.pad_h, 1, g.R, g.H);
  const int64_t nrows = th.end - th.first;
  if (!(nrows > 0 && nrows <= kMaxWindowRows && qb > qa)) qa = qb = g.Q;
  for (int64_t q = 0; q < qa; ++q) avg_one(g, count_include_pad, xp, th, q, y + q);
  if (qb > qa) {
    // Interior columns: the window's width is S whether or not padding counts.
    const float divisor =
        static_cast<float>(avg_extent(th, g.R, g.H, g.pad_h, count_include_pad) * g.S);
    const float* rows[kMaxWindowRows];
    const int64_t w0 = qa * g.stride_w - g.pad_w;
    for (int64_t i = 0; i < nrows; ++i) rows[i] = xp + (th.start + th.first + i) * g.W + w0;
    const PoolRow run{rows, nullptr, nrows, g.S, 1, g.stride_w, qb - qa};
    k.avg(run, divisor, y + qa);
  }
  for (int64_t q = qb; q < g.Q; ++q) avg_one(g, count_include_pad, xp, th, q, y + q);
}

}  // namespace

void max_pool2d_fast(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices) {
  const RowKernels k = row_kernels();
  int64_t qa, qb;
  interior_columns(g, g.dilation_w, qa, qb);
  const int64_t planes = g.N * g.C;
  const bool parallel = planes * g.P * g.Q * g.R * g.S >= kParallelWork;
#pragma omp parallel for collapse(2) schedule(static) if (parallel) firstprivate(team_float_mode)
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t p = 0; p < g.P; ++p) {
      const int64_t o = (plane * g.P + p) * g.Q;
      max_row(g, k, qa, qb, x + plane * g.H * g.W, p, y + o, indices ? indices + o : nullptr);
    }
}

void avg_pool2d_fast(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y) {
  const RowKernels k = row_kernels();
  int64_t qa, qb;
  interior_columns(g, 1, qa, qb);
  const int64_t planes = g.N * g.C;
  const bool parallel = planes * g.P * g.Q * g.R * g.S >= kParallelWork;
#pragma omp parallel for collapse(2) schedule(static) if (parallel) firstprivate(team_float_mode)
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t p = 0; p < g.P; ++p)
      avg_row(g, count_include_pad, k, qa, qb, x + plane * g.H * g.W, p,
              y + (plane * g.P + p) * g.Q);
}

}  // namespace convforge::cpu::pool_detail
