// convforge assignment cuda_sgemm/step3_smem_tiles.cu: Step 3: shared-memory tiles.
//
// Each 32 x 32 block stages a 32 x 32 tile of A and of B in shared memory (__shared__ float
// As[32][32], Bs[32][32]), __syncthreads(), multiplies the tiles, __syncthreads(), next tile:
// each element fetched from global memory is reused 32 times. Zero-fill tiles past the edges.
// Measure: GFLOP/s against step 2; shared-memory bank conflicts in Nsight Compute.
// Worked solution: step 3 "smem_tiled" in csrc/cuda/gemm_kernels.cu (~7 TFLOP/s on an H100).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_sgemm/solutions/step3_smem_tiles.cu
// Grade:  convforge grade assignments/cuda_sgemm/step3_smem_tiles.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: __shared__ tiles As/Bs; for each K tile: load (zero outside), sync, accumulate 32 products, sync; write C.
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(32, 32);
  dim3 grid((unsigned)((N + 31) / 32), (unsigned)((M + 31) / 32));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
