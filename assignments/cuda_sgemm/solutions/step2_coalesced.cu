// Worked solution, cuda_sgemm step 2: step 1 with threadIdx.x along a row of C: a warp reads one
// A element (broadcast) and 32 consecutive B elements (one transaction), and writes 32 consecutive C.
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_sgemm/solutions/step2_coalesced.cu --op gemm
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  const int col = blockIdx.x * 32 + threadIdx.x, row = blockIdx.y * 32 + threadIdx.y;
  if (row < M && col < N) {
    float acc = 0.f;
    for (int k = 0; k < K; ++k) acc += A[(size_t)row * lda + k] * B[(size_t)k * ldb + col];
      C[(size_t)row * ldc + col] = alpha * acc + (beta == 0.f ? 0.f : beta * C[(size_t)row * ldc + col]);
  }
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  dim3 block(32, 32);
  dim3 grid((unsigned)((N + 31) / 32), (unsigned)((M + 31) / 32));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
