// Batch normalisation, one version: OpenMP over channels; each channel's N*HW values are read
// plane by plane (HW contiguous floats), with the sums in double so that the statistics of
// large batches keep float32's precision. See batch_norm.h for the formulas.
#include "cpu/norm/batch_norm.h"

#include <cmath>

#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {
constexpr int64_t kParallelWork = 1 << 15;

// sum over i < n of term(i), in 8 partial double sums that the compiler keeps in vector
// registers: one running double sum waits on each add's latency (about 4 cycles a value).
template <class Term>
double lane_sum(int64_t n, Term term) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += term(i + l);
  double s = 0.0;
  for (int l = 0; l < 8; ++l) s += lanes[l];
  for (; i < n; ++i) s += term(i);
  return s;
}
}  // namespace

void batch_norm_forward(int64_t N, int64_t C, int64_t HW, const float* x, const float* weight,
                        const float* bias, float* running_mean, float* running_var,
                        bool training, double momentum, double eps, float* y, float* save_mean,
                        float* save_invstd) {
  const int64_t M = N * HW;
#pragma omp parallel for schedule(static) if (C * M >= kParallelWork) firstprivate(team_float_mode)
  for (int64_t c = 0; c < C; ++c) {
    double mean, invstd;
    if (training) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        sum += lane_sum(HW, [xp](int64_t i) { return static_cast<double>(xp[i]); });
      }
      mean = M > 0 ? sum / static_cast<double>(M) : 0.0;
      double ss = 0.0;  // two passes: no cancellation in E[x^2] - E[x]^2
      for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        ss += lane_sum(HW, [xp, mean](int64_t i) {
          const double d = xp[i] - mean;
          return d * d;
        });
      }
      const double var = M > 0 ? ss / static_cast<double>(M) : 0.0;
      invstd = 1.0 / std::sqrt(var + eps);
      if (running_mean)
        running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      if (running_var && M > 1)
        running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] +
                                            momentum * ss / static_cast<double>(M - 1));
    } else {
      mean = running_mean[c];
      invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    }
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    // y = (x - mean) * scale + b, scale = w * invstd.
    const double w = weight ? weight[c] : 1.0;
    const float scale = static_cast<float>(w * invstd), m = static_cast<float>(mean);
    const float b = bias ? bias[c] : 0.f;
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = x + (n * C + c) * HW;
      float* yp = y + (n * C + c) * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) yp[i] = (xp[i] - m) * scale + b;
    }
  }
}

void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* dy, const float* x,
                         const float* weight, const float* save_mean, const float* save_invstd,
                         bool training, float* dx, float* dweight, float* dbias) {
  const int64_t M = N * HW;
#pragma omp parallel for schedule(static) if (C * M >= kParallelWork) firstprivate(team_float_mode)
  for (int64_t c = 0; c < C; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0.0, sum_dy_xc = 0.0;  // sum(dy), sum(dy * (x - mean))
    for (int64_t n = 0; n < N; ++n) {
      const float* gp = dy + (n * C + c) * HW;
      const float* xp = x + (n * C + c) * HW;
      double a[8] = {}, b[8] = {};  // one pass, two sets of partial sums (as lane_sum)
      int64_t i = 0;
      for (; i + 8 <= HW; i += 8)
        for (int l = 0; l < 8; ++l) {
          a[l] += gp[i + l];
          b[l] += gp[i + l] * (xp[i + l] - mean);
        }
      for (int l = 0; l < 8; ++l) {
        sum_dy += a[l];
        sum_dy_xc += b[l];
      }
      for (; i < HW; ++i) {
        sum_dy += gp[i];
        sum_dy_xc += gp[i] * (xp[i] - mean);
      }
    }
    if (dweight) dweight[c] = static_cast<float>(sum_dy_xc * invstd);
    if (dbias) dbias[c] = static_cast<float>(sum_dy);
    if (!dx) continue;
    const double w = weight ? weight[c] : 1.0;
    const float k = static_cast<float>(w * invstd);
    // training: dx = k * (dy - mean(dy)) - k * invstd^2 * mean(dy * (x - mean)) * (x - mean)
    //              = k * dy + a * (x - mean) + b
    float a = 0.f, b = 0.f;
    if (training && M > 0) {
      a = static_cast<float>(-w * invstd * invstd * invstd * sum_dy_xc / static_cast<double>(M));
      b = static_cast<float>(-w * invstd * sum_dy / static_cast<double>(M));
    }
    const float m = static_cast<float>(mean);
    for (int64_t n = 0; n < N; ++n) {
      const float* gp = dy + (n * C + c) * HW;
      const float* xp = x + (n * C + c) * HW;
      float* dp = dx + (n * C + c) * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) dp[i] = k * gp[i] + a * (xp[i] - m) + b;
    }
  }
}

}  // namespace convforge::cpu
