// The NEON copy of the activation loops (activation_kernels.h), for AArch64.
#include "cpu/elementwise/activation_kernels.h"
#include "cpu/elementwise/activation_kernels_isa.h"

namespace convforge::cpu::activation_detail::neon {

namespace k = activation_detail;  // the header's internal loops
void relu_forward(int64_t n, const float* x, float* y) { k::relu_forward(n, x, y); }
void relu_backward(int64_t n, const float* dy, const float* x, float* dx) { k::relu_backward(n, dy, x, dx); }
void tanh_forward(int64_t n, const float* x, float* y) { k::tanh_forward(n, x, y); }
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx) { k::tanh_backward(n, dy, y, dx); }
void sigmoid_forward(int64_t n, const float* x, float* y) { k::sigmoid_forward(n, x, y); }
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx) { k::sigmoid_backward(n, dy, y, dx); }

}  // namespace convforge::cpu::activation_detail::neon
