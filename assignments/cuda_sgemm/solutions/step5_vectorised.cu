// Worked solution, cuda_sgemm step 5: vectorised loads. Step 4, with float4 (16-byte) global loads
// of the A and B tiles and float4 shared-memory reads of the 8 + 8 register values, where the data
// allows it: lda and ldb multiples of 4 and A, B 16-byte aligned (checked on the host: the kernel is
// instantiated both ways), and the tile entirely inside the matrices (edge tiles take step 4's
// scalar, zero-padding loads). Each thread loads one float4 of A (4 consecutive k of one row, stored
// transposed) and one of B per K tile.
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_sgemm/solutions/step5_vectorised.cu --op gemm
#include "convforge/student.h"

#include <cstdint>

constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, THREADS = 256;

template <bool kVec>
__global__ void __launch_bounds__(THREADS) sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                        int lda, const float* __restrict__ B, int ldb, float beta,
                                                        float* __restrict__ C, int ldc) {
  __shared__ __align__(16) float As[BK * BM];
  __shared__ __align__(16) float Bs[BK * BN];
  const int tid = threadIdx.x;
  const int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
  const int tr = tid / (BN / TN), tc = tid % (BN / TN);  // this thread's 8 x 8 sub-tile: rows tr*8.., cols tc*8..
  const bool rows_in = bm + BM <= M, cols_in = bn + BN <= N;
  float acc[TM][TN] = {};
  float rm[TM], rn[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    if (kVec && rows_in && k0 + BK <= K) {  // 128 rows x 8 k = 256 float4: one per thread
      const int m = tid / 2, kq = (tid % 2) * 4;
      const float4 v = *reinterpret_cast<const float4*>(A + (size_t)(bm + m) * lda + k0 + kq);
      As[(kq + 0) * BM + m] = v.x, As[(kq + 1) * BM + m] = v.y, As[(kq + 2) * BM + m] = v.z, As[(kq + 3) * BM + m] = v.w;
    } else {
#pragma unroll
      for (int i = 0; i < BM * BK / THREADS; ++i) {
        const int idx = tid + i * THREADS;
        const int m = idx / BK, k = idx % BK;
        As[k * BM + m] = (bm + m < M && k0 + k < K) ? A[(size_t)(bm + m) * lda + k0 + k] : 0.f;
      }
    }
    if (kVec && cols_in && k0 + BK <= K) {  // 8 k x 128 columns = 256 float4: one per thread
      const int k = tid / (BN / 4), n4 = (tid % (BN / 4)) * 4;
      *reinterpret_cast<float4*>(Bs + k * BN + n4) =
          *reinterpret_cast<const float4*>(B + (size_t)(k0 + k) * ldb + bn + n4);
    } else {
#pragma unroll
      for (int i = 0; i < BK * BN / THREADS; ++i) {
        const int idx = tid + i * THREADS;
        const int k = idx / BN, n = idx % BN;
        Bs[k * BN + n] = (k0 + k < K && bn + n < N) ? B[(size_t)(k0 + k) * ldb + bn + n] : 0.f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float4* a4 = reinterpret_cast<const float4*>(As + k * BM + tr * TM);
      const float4* b4 = reinterpret_cast<const float4*>(Bs + k * BN + tc * TN);
      const float4 a0 = a4[0], a1 = a4[1], b0 = b4[0], b1 = b4[1];
      rm[0] = a0.x, rm[1] = a0.y, rm[2] = a0.z, rm[3] = a0.w, rm[4] = a1.x, rm[5] = a1.y, rm[6] = a1.z, rm[7] = a1.w;
      rn[0] = b0.x, rn[1] = b0.y, rn[2] = b0.z, rn[3] = b0.w, rn[4] = b1.x, rn[5] = b1.y, rn[6] = b1.z, rn[7] = b1.w;
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
  const bool vec = lda % 4 == 0 && ldb % 4 == 0 && reinterpret_cast<uintptr_t>(A) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(B) % 16 == 0;
  if (vec)
    sgemm_kernel<true><<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C,
                                                   (int)ldc);
  else
    sgemm_kernel<false><<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C,
                                                    (int)ldc);
}
