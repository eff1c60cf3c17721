// Activations, softmax cross-entropy, column sums and copies on the GPU (device pointers on the
// current device, work queued on convforge's stream).
#pragma once

#include <cstdint>

namespace convforge::cuda {

void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* dy, const float* x, float* dx);  // dy * (x > 0)
void tanh_forward(int64_t n, const float* x, float* y);
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx);  // dy * (1 - y^2)
void sigmoid_forward(int64_t n, const float* x, float* y);
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx);  // dy * y(1-y)

// Mean over the batch of -log softmax(logits)[label]; logits is N x classes. Synchronises (the
// result is a host float) and throws std::invalid_argument for a label outside [0, classes).
float cross_entropy_forward(int64_t N, int64_t classes, const float* logits, const int64_t* labels);
// dlogits = (softmax(logits) - onehot(label)) / N; synchronises to check the labels likewise.
void cross_entropy_backward(int64_t N, int64_t classes, const float* logits, const int64_t* labels,
                            float* dlogits);

// out[j] = sum_i a[i*cols + j], in a fixed order (deterministic).
void sum_rows(int64_t rows, int64_t cols, const float* a, float* out);

// dst (contiguous) = src viewed with shape/strides (in elements) of ndim <= 8; itemsize 1/2/4/8.
void strided_copy(int ndim, const int64_t* shape, const int64_t* strides, int itemsize,
                  const void* src, void* dst);

}  // namespace convforge::cuda
