// Worked solution, cpu_sgemm step 1: three loops, i, j, k (one dot product per element of C).
// B is walked down a column (stride ldb) in the inner loop: one cache line per multiply-add.
// Grade:  convforge grade assignments/cpu_sgemm/solutions/step1_naive.cpp --op gemm
#include "convforge/student.h"

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc += A[i * lda + k] * B[k * ldb + j];
      float* c = C + i * ldc + j;
      *c = alpha * acc + (beta == 0.f ? 0.f : beta * *c);  // beta == 0: C is not read (it may be NaN)
    }
}
