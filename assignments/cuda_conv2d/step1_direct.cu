// convforge assignment cuda_conv2d/step1_direct.cu: Step 1: direct, one thread per output.
//
// One thread per output element (n, k, p, q), flat index = blockIdx.x*blockDim.x + threadIdx.x
// over N*K*P*Q, with threadIdx.x running along q (coalesced writes of y): loop over c, r, s,
// skip the padding, add the bias. Pass the geometry struct by value.
// Measure: GFLOP/s on the grader's shape (a VGG conv2-like layer, N=16). Worked solution:
// "reference" in csrc/cuda/conv2d_kernels.cu (~0.85 TFLOP/s on an H100).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_conv2d/solutions/step1_direct.cu
// Grade:  convforge grade assignments/cuda_conv2d/step1_direct.cu --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* __restrict__ y) {
  // TODO: i = blockIdx.x*blockDim.x + threadIdx.x; if (i >= g.y_size()) return; decompose i into n, k, p, q; loop c, r, s.
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  const int64_t total = g->y_size();
  conv2d_kernel<<<(unsigned)((total + 255) / 256), 256, 0, stream>>>(*g, x, w, bias, y);
}
