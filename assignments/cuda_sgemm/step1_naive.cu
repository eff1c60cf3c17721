// convforge assignment cuda_sgemm/step1_naive.cu: Step 1: one thread per element of C.
//
// Thread (x, y) computes C[row][col] with a loop over k. Map threadIdx.x to the ROW as in the
// classic first attempt: the 32 threads of a warp then read A down a column (32 different cache
// lines per load): slow, and that is the lesson of step 2. Bounds-check M and N.
// Measure: GFLOP/s at 4096^3 (the grader's shape) and % of peak. Worked solution: step 1
// "reference" in csrc/cuda/gemm_kernels.cu; on an H100 about 1-2 TFLOP/s
// (benchmarks/results/cuda_h100_2026-11-26_run1.md).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_sgemm/solutions/step1_naive.cu
// Grade:  convforge grade assignments/cuda_sgemm/step1_naive.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: row = blockIdx.x*32 + threadIdx.x, col = blockIdx.y*32 + threadIdx.y; if inside, dot product over k, then C = alpha*acc + (beta == 0 ? 0 : beta*C).
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(32, 32);
  dim3 grid((unsigned)((M + 31) / 32), (unsigned)((N + 31) / 32));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
