// convforge assignment cuda_sgemm/step2_coalesced.cu: Step 2: coalesced loads.
//
// Same loop, threadIdx.x along a ROW of C (col = ... + threadIdx.x): a warp reads one row of
// B contiguously (one or two 128-byte transactions) and broadcasts one element of A.
// Measure: GFLOP/s against step 1 (Nsight Compute: global load efficiency).
// Worked solution: step 2 "coalesced" in csrc/cuda/gemm_kernels.cu (~5 TFLOP/s on an H100).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_sgemm/solutions/step2_coalesced.cu
// Grade:  convforge grade assignments/cuda_sgemm/step2_coalesced.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: col = blockIdx.x*32 + threadIdx.x, row = blockIdx.y*32 + threadIdx.y; the same dot product.
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(32, 32);
  dim3 grid((unsigned)((N + 31) / 32), (unsigned)((M + 31) / 32));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
