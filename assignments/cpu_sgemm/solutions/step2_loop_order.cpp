// Worked solution, cpu_sgemm step 2: loop order i, k, j. The inner loop streams a row of B and a
// row of C with unit stride, which the compiler vectorises (AVX2: 8 floats per FMA).
// Grade:  convforge grade assignments/cpu_sgemm/solutions/step2_loop_order.cpp --op gemm
#include "convforge/student.h"

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) c[j] = beta == 0.f ? 0.f : beta * c[j];
    for (int64_t k = 0; k < K; ++k) {
      const float a = alpha * A[i * lda + k];
      const float* __restrict b = B + k * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}
