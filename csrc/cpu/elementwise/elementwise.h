// Activations and the softmax cross-entropy loss on the CPU.
#pragma once

#include <cstdint>

namespace convforge::cpu {

void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* dy, const float* x, float* dx);  // dy * (x > 0)
void tanh_forward(int64_t n, const float* x, float* y);
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx);  // dy * (1 - y^2)
void sigmoid_forward(int64_t n, const float* x, float* y);
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx);  // dy * y(1-y)

// Mean over the batch of -log softmax(logits)[label]; logits is N x classes.
// Labels are validated by the caller (0 <= label < classes).
float cross_entropy_forward(int64_t N, int64_t classes, const float* logits, const int64_t* labels);
// dlogits = (softmax(logits) - onehot(label)) / N
void cross_entropy_backward(int64_t N, int64_t classes, const float* logits, const int64_t* labels,
                            float* dlogits);

// Sum over rows: out[j] = sum_i a[i*cols + j] (bias gradients of linear layers).
void sum_rows(int64_t rows, int64_t cols, const float* a, float* out);

}  // namespace convforge::cpu
