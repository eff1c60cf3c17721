// Pieces shared by the pooling kernels (not part of the public interface).
#pragma once

#include <cstdint>

#include "common/geometry.h"

namespace convforge::cpu::pool_detail {

// The taps of one window along one axis: tap t sits at input coordinate start + t*dilation;
// taps [first, end) fall inside [0, n), the others are padding (or beyond it, in ceil_mode).
struct Taps {
  int64_t start, first, end;
};

inline Taps window_taps(int64_t out, int64_t stride, int64_t pad, int64_t dilation,
                        int64_t kernel, int64_t n) {
  Taps t;
  t.start = out * stride - pad;
  t.first = t.start < 0 ? (-t.start + dilation - 1) / dilation : 0;
  const int64_t room = n - 1 - t.start;  // the last tap inside is the largest t with t*dilation <= room
  t.end = room < 0 ? 0 : room / dilation + 1;
  if (t.end > kernel) t.end = kernel;
  return t;
}

// PyTorch's average-pooling divisor along one axis: with count_include_pad, the window's
// extent clipped to the padded input (ceil_mode windows may run past it); without, the taps
// inside the input.
inline int64_t avg_extent(const Taps& t, int64_t kernel, int64_t n, int64_t pad,
                          bool count_include_pad) {
  if (!count_include_pad) return t.end > t.first ? t.end - t.first : 0;
  const int64_t stop = t.start + kernel < n + pad ? t.start + kernel : n + pad;
  return stop - t.start;
}

// One output row's run of interior outputs, whose taps all lie inside the input:
// output q of the run reads rows[i][q*sw + s*dw] for i < nrows, s < S.
struct PoolRow {
  const float* const* rows;
  const int32_t* row_offset;  // (h_i - h_0) * W, for the offsets max_row reports
  int64_t nrows, S, dw, sw, count;
};

// max_row writes the maxima to y and, when offset is not null, each winner's position
// relative to rows[0][q*sw] (row_offset[i] + s*dw). Same tie and NaN rules as the reference.
// avg_row writes sum / divisor, summing in the reference's order (bitwise the same result).
// One copy per instruction set, from the same source (pool2d_row_kernels.h).
#define CONVFORGE_POOL_ROW_KERNELS                                              \
  void max_row(const PoolRow& r, float* y, int32_t* offset);                    \
  void avg_row(const PoolRow& r, float divisor, float* y);
namespace portable { CONVFORGE_POOL_ROW_KERNELS }
namespace avx2 { CONVFORGE_POOL_ROW_KERNELS }
namespace avx512 { CONVFORGE_POOL_ROW_KERNELS }
namespace neon { CONVFORGE_POOL_ROW_KERNELS }
#undef CONVFORGE_POOL_ROW_KERNELS

void max_pool2d_reference(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices);
void avg_pool2d_reference(const Pool2dGeometry& g, bool count_include_pad, const float* x,
                          float* y);
void max_pool2d_fast(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices);
void avg_pool2d_fast(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y);
void adaptive_avg_pool2d_reference(const AdaptivePool2dGeometry& g, const float* x, float* y);
void adaptive_avg_pool2d_fast(const AdaptivePool2dGeometry& g, const float* x, float* y);

}  // namespace convforge::cpu::pool_detail
