// convforge assignment cuda_conv2d/step3_constant_weights.cu: Step 3: weights in constant memory.
//
// All threads of a warp read the same weight at the same time: the constant cache broadcasts
// it in one transaction. Copy the filters into __constant__ memory (64 KiB: up to 16384 floats)
// with cudaMemcpyToSymbolAsync(..., cudaMemcpyDeviceToDevice, stream) and read them from there;
// fall back to global memory (step 2) when they do not fit (VGG's larger layers).
// Measure: GFLOP/s against step 2 on LeNet-sized layers (where the weights fit).
// Our tree has no such kernel (ours keep weights in shared memory or registers);
// compare with step 2 and "direct".
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_conv2d/solutions/step3_constant_weights.cu
// Grade:  convforge grade assignments/cuda_conv2d/step3_constant_weights.cu --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

constexpr int MAX_CONST_WEIGHTS = 16384;
__constant__ float c_w[MAX_CONST_WEIGHTS];
__global__ void conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* __restrict__ y) {
  // TODO: step 2's tiling, reading weights from c_w[] (uniform across a warp).
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  // TODO: if g->w_size() <= MAX_CONST_WEIGHTS copy w into c_w on `stream`, else fall back.
  const int64_t total = g->y_size();
  conv2d_kernel<<<(unsigned)((total + 255) / 256), 256, 0, stream>>>(*g, x, w, bias, y);
}
