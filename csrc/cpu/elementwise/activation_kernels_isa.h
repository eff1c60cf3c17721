// The per-ISA copies of the activation loops (activation_kernels.h), for activations.cpp
// to choose from at run time.
#pragma once

#include <cstdint>

namespace convforge::cpu::activation_detail {

#define CONVFORGE_ACTIVATION_KERNELS                                                     \
  void relu_forward(int64_t n, const float* x, float* y);                               \
  void relu_backward(int64_t n, const float* dy, const float* x, float* dx);            \
  void tanh_forward(int64_t n, const float* x, float* y);                               \
  void tanh_backward(int64_t n, const float* dy, const float* y, float* dx);            \
  void sigmoid_forward(int64_t n, const float* x, float* y);                            \
  void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx);
namespace portable { CONVFORGE_ACTIVATION_KERNELS }
namespace avx2 { CONVFORGE_ACTIVATION_KERNELS }
namespace avx512 { CONVFORGE_ACTIVATION_KERNELS }
namespace neon { CONVFORGE_ACTIVATION_KERNELS }
#undef CONVFORGE_ACTIVATION_KERNELS

}  // namespace convforge::cpu::activation_detail
