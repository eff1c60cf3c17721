// convforge assignment cuda_sgemm/step6_warp_tiling.cu: Step 6: warp tiling.
//
// Arrange step 5 so that each warp owns a 64 x 32 piece of the block tile and each thread a
// few small sub-blocks in it: shared-memory reads become conflict-free broadcasts and register
// reuse is explicit at three levels (block, warp, thread). Double-buffer: fetch tile t+1 into
// registers while multiplying tile t.
// Measure: % of peak and the ratio to cuBLAS in the grader's table.
// Worked solution: step 5 "warp_tiled" in csrc/cuda/gemm_kernels.cu (~40 TFLOP/s, 60% of peak,
// 0.8x cuBLAS at 4096^3 on an H100).
//
// Grade:  convforge grade assignments/cuda_sgemm/step6_warp_tiling.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: warps of 32 threads each computing a 64 x 32 warp tile of the 128 x 128 block tile, double-buffered K tiles.
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(256);
  dim3 grid((unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
