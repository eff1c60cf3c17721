// Batch normalisation on the CPU (torch.nn.functional.batch_norm), forward and backward.
// x and y are N x C x HW (NCHW with the spatial dimensions flattened; HW = 1 for (N, C) input),
// statistics are per channel over the N*HW values of that channel.
#pragma once

#include <cstdint>

namespace convforge::cpu {

// training: the batch's mean and biased variance normalise x; save_mean / save_invstd receive
// them (invstd = 1/sqrt(var + eps)); running_mean / running_var (each may be null) become
// (1 - momentum) * running + momentum * batch, the variance unbiased (times M/(M-1), M = N*HW),
// as torch. Needs M > 1 (checked by the caller).
// eval: running_mean / running_var normalise x and are copied to save_mean / save_invstd.
// weight and bias may be null (1 and 0). Statistics are accumulated in double.
void batch_norm_forward(int64_t N, int64_t C, int64_t HW, const float* x, const float* weight,
                        const float* bias, float* running_mean, float* running_var,
                        bool training, double momentum, double eps, float* y, float* save_mean,
                        float* save_invstd);

// Gradients from the forward's save_mean / save_invstd. training: through the batch statistics
// (dx = w*invstd*(dy - mean(dy) - xhat*mean(dy*xhat))); eval: dx = dy*w*invstd. dweight =
// sum(dy*xhat), dbias = sum(dy) per channel. dx, dweight, dbias may each be null (not wanted).
void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* dy, const float* x,
                         const float* weight, const float* save_mean, const float* save_invstd,
                         bool training, float* dx, float* dweight, float* dbias);

}  // namespace convforge::cpu
