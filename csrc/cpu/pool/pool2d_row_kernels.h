// The interior of one output row of pooling, written as loops the compiler vectorises
// over outputs. Included by one translation unit per instruction set (pool2d_row_kernels*.cpp),
// which compiles it with that ISA's flags; internal linkage keeps the copies apart.
//
// The loop over outputs is innermost, so each window tap is one strided load per vector
// of outputs (stride 1 and 2, the 3x3/2 and 2x2/2 windows, are compile-time constants so
// that the loads become plain or de-interleaving vector loads). Maxima and offsets live in
// a small block that stays in L1 across the taps.
#pragma once

#include <cstdint>

#include "cpu/pool/pool2d_internal.h"

namespace convforge::cpu::pool_detail {
namespace {

constexpr int64_t kRowBlock = 128;

template <int64_t SW>
void max_row_impl(const PoolRow& r, float* y, int32_t* offset) {
  const int64_t sw = SW > 0 ? SW : r.sw;
  for (int64_t q0 = 0; q0 < r.count; q0 += kRowBlock) {
    const int64_t n = r.count - q0 < kRowBlock ? r.count - q0 : kRowBlock;
    float best[kRowBlock];
    int32_t where[kRowBlock];
    const float* first = r.rows[0] + q0 * sw;
    for (int64_t q = 0; q < n; ++q) {
      best[q] = first[q * sw];
      where[q] = 0;
    }
    for (int64_t i = 0; i < r.nrows; ++i) {
      for (int64_t s = (i == 0 ? 1 : 0); s < r.S; ++s) {
        const float* src = r.rows[i] + q0 * sw + s * r.dw;
        const int32_t tap = r.row_offset[i] + static_cast<int32_t>(s * r.dw);
        for (int64_t q = 0; q < n; ++q) {
          const float v = src[q * sw];
          // Bitwise | keeps this branch-free: strictly greater, or NaN (v != v).
          const bool take = (v > best[q]) | (v != v);
          best[q] = take ? v : best[q];
          where[q] = take ? tap : where[q];
        }
      }
    }
    for (int64_t q = 0; q < n; ++q) y[q0 + q] = best[q];
    if (offset)
      for (int64_t q = 0; q < n; ++q) offset[q0 + q] = where[q];
  }
}

template <int64_t SW>
void avg_row_impl(const PoolRow& r, float divisor, float* y) {
  const int64_t sw = SW > 0 ? SW : r.sw;
  for (int64_t q0 = 0; q0 < r.count; q0 += kRowBlock) {
    const int64_t n = r.count - q0 < kRowBlock ? r.count - q0 : kRowBlock;
    float sum[kRowBlock];
    for (int64_t q = 0; q < n; ++q) sum[q] = 0.f;
    for (int64_t i = 0; i < r.nrows; ++i) {
      for (int64_t s = 0; s < r.S; ++s) {
        const float* src = r.rows[i] + q0 * sw + s * r.dw;
        for (int64_t q = 0; q < n; ++q) sum[q] += src[q * sw];
      }
    }
    // A true division (not a reciprocal multiply) so that the result equals the reference's.
    for (int64_t q = 0; q < n; ++q) y[q0 + q] = sum[q] / divisor;
  }
}

void max_row_any(const PoolRow& r, float* y, int32_t* offset) {
  if (r.sw == 1) max_row_impl<1>(r, y, offset);
  else if (r.sw == 2) max_row_impl<2>(r, y, offset);
  else max_row_impl<0>(r, y, offset);
}

void avg_row_any(const PoolRow& r, float divisor, float* y) {
  if (r.sw == 1) avg_row_impl<1>(r, divisor, y);
  else if (r.sw == 2) avg_row_impl<2>(r, divisor, y);
  else avg_row_impl<0>(r, divisor, y);
}

}  // namespace
}  // namespace convforge::cpu::pool_detail
