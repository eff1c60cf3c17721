// Batch normalisation on the GPU, two kernels per direction:
//   per-channel statistics: one block per channel (grid-stride over channels) reduces the
//     channel's N*HW values in double (two passes: mean, then squared deviations), then writes
//     save_mean / save_invstd and updates the running statistics (thread 0);
//   elementwise: one thread per element applies the per-channel affine map.
// Backward reduces sum(dy) and sum(dy * (x - mean)) per channel the same way, writes dweight /
// dbias and three coefficients, then dx = k*dy + a*(x - mean) + b elementwise.
#include "cuda/batch_norm.h"
#include "cuda/cuda_common.cuh"

namespace convforge::cuda {
namespace {

constexpr int kThreads = 256;

// Sum over a block of kThreads threads, in double; every thread gets the result.
__device__ double block_sum_double(double v, double* scratch) {
  __syncthreads();  // scratch may still be read by a previous call
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) scratch[threadIdx.x] += scratch[threadIdx.x + s];
    __syncthreads();
  }
  return scratch[0];
}

// The channel's values are N runs of HW contiguous floats, HW*C apart.
__device__ __forceinline__ float channel_at(const float* a, int64_t c, int64_t C, int64_t HW,
                                            int64_t i) {
  return __ldg(a + ((i / HW) * C + c) * HW + i % HW);
}

__global__ void bn_stats(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                         float* running_mean, float* running_var, bool training, double momentum,
                         double eps, float* save_mean, float* save_invstd) {
  __shared__ double scratch[kThreads];
  const int64_t M = N * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    if (!training) {
      if (threadIdx.x == 0) {
        save_mean[c] = running_mean[c];
        save_invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
      }
      continue;
    }
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < M; i += kThreads) s += channel_at(x, c, C, HW, i);
    const double mean = M > 0 ? block_sum_double(s, scratch) / static_cast<double>(M) : 0.0;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < M; i += kThreads) {
      const double d = channel_at(x, c, C, HW, i) - mean;
      ss += d * d;
    }
    ss = block_sum_double(ss, scratch);
    if (threadIdx.x == 0) {
      const double var = M > 0 ? ss / static_cast<double>(M) : 0.0;
      save_mean[c] = static_cast<float>(mean);
      save_invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
      if (running_mean)
        running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      if (running_var && M > 1)
        running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] +
                                            momentum * ss / static_cast<double>(M - 1));
    }
  }
}

__global__ void bn_apply(int64_t total, int64_t C, int64_t HW, const float* __restrict__ x,
                         const float* __restrict__ weight, const float* __restrict__ bias,
                         const float* __restrict__ mean, const float* __restrict__ invstd,
                         float* y) {
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t c = (idx / HW) % C;
    const float w = weight ? weight[c] : 1.f, b = bias ? bias[c] : 0.f;
    y[idx] = (x[idx] - mean[c]) * (w * invstd[c]) + b;
  }
}

// coef[3c..3c+2] = (k, a, b) of dx = k*dy + a*(x - mean) + b.
__global__ void bn_backward_reduce(int64_t N, int64_t C, int64_t HW, const float* __restrict__ dy,
                                   const float* __restrict__ x, const float* __restrict__ weight,
                                   const float* __restrict__ save_mean,
                                   const float* __restrict__ save_invstd, bool training,
                                   float* dweight, float* dbias, float* coef) {
  __shared__ double scratch[kThreads];
  const int64_t M = N * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double s = 0.0, sx = 0.0;
    for (int64_t i = threadIdx.x; i < M; i += kThreads) {
      const double g = channel_at(dy, c, C, HW, i);
      s += g;
      sx += g * (channel_at(x, c, C, HW, i) - mean);
    }
    s = block_sum_double(s, scratch);
    sx = block_sum_double(sx, scratch);
    if (threadIdx.x == 0) {
      if (dweight) dweight[c] = static_cast<float>(sx * invstd);
      if (dbias) dbias[c] = static_cast<float>(s);
      const double w = weight ? weight[c] : 1.0;
      coef[3 * c] = static_cast<float>(w * invstd);
      const bool through_stats = training && M > 0;
      coef[3 * c + 1] = through_stats ? static_cast<float>(-w * invstd * invstd * invstd * sx / M) : 0.f;
      coef[3 * c + 2] = through_stats ? static_cast<float>(-w * invstd * s / M) : 0.f;
    }
  }
}

__global__ void bn_backward_apply(int64_t total, int64_t C, int64_t HW,
                                  const float* __restrict__ dy, const float* __restrict__ x,
                                  const float* __restrict__ save_mean,
                                  const float* __restrict__ coef, float* dx) {
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t c = (idx / HW) % C;
    dx[idx] = coef[3 * c] * dy[idx] + coef[3 * c + 1] * (x[idx] - save_mean[c]) + coef[3 * c + 2];
  }
}

unsigned channel_grid(int64_t C) { return static_cast<unsigned>(C < 65535 ? (C > 0 ? C : 1) : 65535); }

}  // namespace

void batch_norm_forward(int64_t N, int64_t C, int64_t HW, const float* x, const float* weight,
                        const float* bias, float* running_mean, float* running_var,
                        bool training, double momentum, double eps, float* y, float* save_mean,
                        float* save_invstd) {
  const char* op = "batch_norm_forward";
  if (C == 0) return;
  cudaStream_t s = current_stream();
  bn_stats<<<channel_grid(C), kThreads, 0, s>>>(N, C, HW, x, running_mean, running_var, training,
                                                momentum, eps, save_mean, save_invstd);
  check_launch(op);
  const int64_t total = N * C * HW;
  if (total == 0) return;
  bn_apply<<<grid_for(total, 256), 256, 0, s>>>(total, C, HW, x, weight, bias, save_mean,
                                                save_invstd, y);
  check_launch(op);
}

void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* dy, const float* x,
                         const float* weight, const float* save_mean, const float* save_invstd,
                         bool training, float* dx, float* dweight, float* dbias) {
  const char* op = "batch_norm_backward";
  if (C == 0) return;
  cudaStream_t s = current_stream();
  Workspace coef(static_cast<size_t>(3 * C) * sizeof(float));
  bn_backward_reduce<<<channel_grid(C), kThreads, 0, s>>>(N, C, HW, dy, x, weight, save_mean,
                                                          save_invstd, training, dweight, dbias,
                                                          coef.as<float>());
  check_launch(op);
  const int64_t total = N * C * HW;
  if (dx && total > 0) {
    bn_backward_apply<<<grid_for(total, 256), 256, 0, s>>>(total, C, HW, dy, x, save_mean,
                                                           coef.as<float>(), dx);
    check_launch(op);
  }
}

}  // namespace convforge::cuda
