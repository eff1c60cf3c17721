// convforge assignment cuda_conv2d/step2_smem_tiled.cu: Step 2: shared-memory tiled.
//
// A block computes a TH x TW tile of output positions for a few output channels: it first
// loads the input patch the tile needs ((TH-1)*stride + (R-1)*dilation + 1 rows, the same for
// columns, zero in the padding) for one input channel into shared memory, __syncthreads(), and
// every thread reads its window from shared memory; loop over input channels.
// Measure: GFLOP/s against step 1; global load transactions in Nsight Compute.
// Worked solution: "direct" in csrc/cuda/conv2d_kernels.cu (8 output channels per thread; ~2.6
// TFLOP/s on an H100).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_conv2d/solutions/step2_smem_tiled.cu
// Grade:  convforge grade assignments/cuda_conv2d/step2_smem_tiled.cu --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

constexpr int TH = 16, TW = 16;
__global__ void conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* __restrict__ y) {
  // TODO: extern __shared__ float patch[]; grid (tiles of Q, tiles of P, N*K); per input channel c: load the patch, sync, accumulate the R x S window, sync.
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  dim3 block(TW, TH);
  dim3 grid((unsigned)((g->Q + TW - 1) / TW), (unsigned)((g->P + TH - 1) / TH), (unsigned)(g->N * g->K));
  // The input patch for one channel: enough rows/columns for a TH x TW tile of outputs.
  const int64_t ph = (TH - 1) * g->stride_h + (g->R - 1) * g->dilation_h + 1;
  const int64_t pw = (TW - 1) * g->stride_w + (g->S - 1) * g->dilation_w + 1;
  conv2d_kernel<<<grid, block, (size_t)(ph * pw) * sizeof(float), stream>>>(*g, x, w, bias, y);
}
