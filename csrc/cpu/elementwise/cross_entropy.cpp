// Softmax cross-entropy, threaded over the batch. Each row is shifted by its maximum
// before exp (log-sum-exp), so no logit overflows; per-row losses are summed in double,
// in row order, so the mean does not depend on the thread count.
#include <cmath>
#include <vector>

#include "cpu/elementwise/elementwise.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {

constexpr int64_t kSerialBelow = 1 << 14;  // logits; below this one thread is faster

// max of a row; a NaN anywhere makes it NaN, so the loss is NaN as in PyTorch.
float row_max(int64_t n, const float* z) {
  float m = z[0];
  for (int64_t j = 1; j < n; ++j)
    if (z[j] > m || std::isnan(z[j])) m = z[j];
  return m;
}

// log(sum_j exp(z_j - m)), accumulated in double.
double log_sum_exp_shifted(int64_t n, const float* z, float m) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(z[j]) - m);
  return std::log(s);
}

}  // namespace

float cross_entropy_forward(int64_t N, int64_t classes, const float* logits,
                            const int64_t* labels) {
  if (N == 0) return std::nanf("");  // the mean of nothing, as torch gives
  std::vector<double> loss(static_cast<size_t>(N));
#pragma omp parallel for schedule(static) if (N * classes >= kSerialBelow) firstprivate(team_float_mode)
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * classes;
    const float m = row_max(classes, z);
    // -log softmax(z)[y] = log sum exp(z - m) - (z_y - m)
    loss[i] = log_sum_exp_shifted(classes, z, m) - (static_cast<double>(z[labels[i]]) - m);
  }
  double total = 0.0;
  for (int64_t i = 0; i < N; ++i) total += loss[i];
  return static_cast<float>(total / static_cast<double>(N));
}

void cross_entropy_backward(int64_t N, int64_t classes, const float* logits, const int64_t* labels,
                            float* dlogits) {
  const double inv_n = N > 0 ? 1.0 / static_cast<double>(N) : 0.0;
#pragma omp parallel for schedule(static) if (N * classes >= kSerialBelow) firstprivate(team_float_mode)
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * classes;
    float* d = dlogits + i * classes;
    const float m = row_max(classes, z);
    const double lse = log_sum_exp_shifted(classes, z, m);
    for (int64_t j = 0; j < classes; ++j) {
      const double softmax = std::exp(static_cast<double>(z[j]) - m - lse);
      d[j] = static_cast<float>((softmax - (j == labels[i] ? 1.0 : 0.0)) * inv_n);
    }
  }
}

}  // namespace convforge::cpu
