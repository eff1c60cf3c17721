// convforge assignment cuda_conv2d/step4_implicit_gemm.cu: Step 4: implicit GEMM.
//
// See the convolution as a GEMM without building the column matrix: rows = output channels
// (K/groups), columns = output positions (N*P*Q), depth = C/groups*R*S. A block computes a
// 128 x 128 tile of that product exactly as step 4/6 of the SGEMM ladder, except that the B
// tile is gathered from x on the fly (depth index -> (c, r, s), column -> (n, p, q), zero in the
// padding). Epilogue: add the bias, scatter to y[n][k][p][q].
// Measure: GFLOP/s and the ratio to cuDNN in the grader's table.
// Worked solution: csrc/cuda/conv2d_implicit_gemm.cu ("implicit"; ~16-21 TFLOP/s, 0.5x cuDNN on
// VGG layers on an H100) and its step 2, conv2d_implicit_gemm_v2.cu.
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_conv2d/solutions/step4_implicit_gemm.cu
// Grade:  convforge grade assignments/cuda_conv2d/step4_implicit_gemm.cu --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

constexpr int BM = 128, BN = 128, BK = 8;
__global__ void conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* __restrict__ y) {
  // TODO: the SGEMM register-blocked kernel with the B tile gathered from x (implicit im2col) and the bias in the epilogue.
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  const int64_t Kg = g->K / g->groups, cols = g->N * g->P * g->Q;
  dim3 block(256);
  dim3 grid((unsigned)((cols + BN - 1) / BN), (unsigned)((Kg + BM - 1) / BM), (unsigned)g->groups);
  conv2d_kernel<<<grid, block, 0, stream>>>(*g, x, w, bias, y);
}
