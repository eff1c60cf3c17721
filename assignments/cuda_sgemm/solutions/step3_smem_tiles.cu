// Worked solution, cuda_sgemm step 3: 32 x 32 tiles of A and B staged in shared memory: each
// global element is loaded once per block instead of 32 times; zeros outside the matrices.
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_sgemm/solutions/step3_smem_tiles.cu --op gemm
#include "convforge/student.h"

constexpr int T = 32;

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  __shared__ float As[T][T], Bs[T][T];  // As[ty][k]: one value per warp (broadcast); Bs[k][tx]: a row
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * T + tx, row = blockIdx.y * T + ty;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += T) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[(size_t)row * lda + k0 + tx] : 0.f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(size_t)(k0 + ty) * ldb + col] : 0.f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < T; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) {
      C[(size_t)row * ldc + col] = alpha * acc + (beta == 0.f ? 0.f : beta * C[(size_t)row * ldc + col]);
  }
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  dim3 block(T, T);
  dim3 grid((unsigned)((N + T - 1) / T), (unsigned)((M + T - 1) / T));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
