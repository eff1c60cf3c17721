// Worked solution, cuda_sgemm step 4: register blocking. A block of 256 threads computes a
// BM x BN = 128 x 128 tile of C, each thread an 8 x 8 sub-tile held in registers. Per K tile of
// BK = 8, the block loads As (stored transposed, BK x BM) and Bs (BK x BN) cooperatively, 4 values
// per thread each (zeros outside the matrices); then per k every thread reads 8 values of As and
// 8 of Bs into registers and does their 64-term outer product: 64 FMAs per 16 shared loads.
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_sgemm/solutions/step4_register_blocking.cu --op gemm
#include "convforge/student.h"

constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, THREADS = 256;

__global__ void __launch_bounds__(THREADS) sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                        int lda, const float* __restrict__ B, int ldb, float beta,
                                                        float* __restrict__ C, int ldc) {
  __shared__ float As[BK * BM], Bs[BK * BN];
  const int tid = threadIdx.x;
  const int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
  const int tr = tid / (BN / TN), tc = tid % (BN / TN);  // this thread's 8 x 8 sub-tile: rows tr*8.., cols tc*8..
  float acc[TM][TN] = {};
  float rm[TM], rn[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int i = 0; i < BM * BK / THREADS; ++i) {
      const int idx = tid + i * THREADS;
      const int m = idx / BK, k = idx % BK;  // consecutive threads: consecutive k of one row of A
      As[k * BM + m] = (bm + m < M && k0 + k < K) ? A[(size_t)(bm + m) * lda + k0 + k] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < BK * BN / THREADS; ++i) {
      const int idx = tid + i * THREADS;
      const int k = idx / BN, n = idx % BN;  // consecutive threads: consecutive columns of B
      Bs[k * BN + n] = (k0 + k < K && bn + n < N) ? B[(size_t)(k0 + k) * ldb + bn + n] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int i = 0; i < TM; ++i) rm[i] = As[k * BM + tr * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) rn[j] = Bs[k * BN + tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += rm[i] * rn[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int row = bm + tr * TM + i, col = bn + tc * TN + j;
      if (row < M && col < N)
        C[(size_t)row * ldc + col] = alpha * acc[i][j] + (beta == 0.f ? 0.f : beta * C[(size_t)row * ldc + col]);
    }
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  dim3 block(THREADS);
  dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)((M + BM - 1) / BM));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
