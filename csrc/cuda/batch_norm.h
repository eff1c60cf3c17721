// Batch normalisation on the GPU, with the semantics of cpu/norm/batch_norm.h (x is N x C x HW;
// training: batch statistics, running statistics updated in place with the unbiased variance;
// eval: running statistics). weight, bias, running_mean, running_var may be null where the CPU
// version allows it; save_mean / save_invstd (C floats) are always written.
#pragma once

#include <cstdint>

namespace convforge::cuda {

void batch_norm_forward(int64_t N, int64_t C, int64_t HW, const float* x, const float* weight,
                        const float* bias, float* running_mean, float* running_var,
                        bool training, double momentum, double eps, float* y, float* save_mean,
                        float* save_invstd);

void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* dy, const float* x,
                         const float* weight, const float* save_mean, const float* save_invstd,
                         bool training, float* dx, float* dweight, float* dbias);

}  // namespace convforge::cuda
