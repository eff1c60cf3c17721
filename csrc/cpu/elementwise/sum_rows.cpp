// Column sums of a rows x cols matrix (bias gradients). Sums run in double, in row order,
// over blocks of columns that vectorise; threads take column blocks when there are enough
// columns, and blocks of rows (partial sums combined in a fixed order) when there are not.
#include <algorithm>
#include <vector>

#include "cpu/elementwise/elementwise.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {

constexpr int64_t kColBlock = 256;          // doubles of partial sums kept in L1
constexpr int64_t kSerialBelow = 1 << 15;   // elements
constexpr int64_t kRowsPerTask = 512;

// acc[j] += sum over rows [r0, r1) of a[r*cols + c0 + j], for j < n.
void accumulate(const float* a, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t n,
                double* acc) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = a + r * cols + c0;
    for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
  }
}

}  // namespace

void sum_rows(int64_t rows, int64_t cols, const float* a, float* out) {
  const int64_t col_blocks = (cols + kColBlock - 1) / kColBlock;
  const bool parallel = rows * cols >= kSerialBelow;
  if (!parallel || col_blocks >= 4 || rows <= kRowsPerTask) {
#pragma omp parallel for schedule(static) if (parallel) firstprivate(team_float_mode)
    for (int64_t b = 0; b < col_blocks; ++b) {
      const int64_t c0 = b * kColBlock, n = std::min(kColBlock, cols - c0);
      double acc[kColBlock] = {};
      accumulate(a, cols, 0, rows, c0, n, acc);
      for (int64_t j = 0; j < n; ++j) out[c0 + j] = static_cast<float>(acc[j]);
    }
    return;
  }
  // Few columns, many rows: each task sums a block of rows; partials are added in task order.
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  std::vector<double> partial(static_cast<size_t>(tasks * cols), 0.0);
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r0 = t * kRowsPerTask, r1 = std::min(rows, r0 + kRowsPerTask);
    for (int64_t c0 = 0; c0 < cols; c0 += kColBlock)
      accumulate(a, cols, r0, r1, c0, std::min(kColBlock, cols - c0), &partial[t * cols + c0]);
  }
  for (int64_t j = 0; j < cols; ++j) {
    double s = 0.0;
    for (int64_t t = 0; t < tasks; ++t) s += partial[t * cols + j];
    out[j] = static_cast<float>(s);
  }
}

}  // namespace convforge::cpu
