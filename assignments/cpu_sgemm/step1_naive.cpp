// convforge assignment cpu_sgemm/step1_naive.cpp: Step 1: three loops.
//
// C[i][j] = alpha * sum_k A[i][k] * B[k][j] + beta * C[i][j], loop order i, j, k: one dot
// product per element. With beta == 0, do not read C (it starts as NaN in the grader).
// Measure: GFLOP/s at 512^3. Worked solution: csrc/cpu/gemm/gemm_reference.cpp (algo="reference").
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step1_naive.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step1_naive.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: for i, j: acc = sum over k of A[i*lda + k] * B[k*ldb + j];
  //       C[i*ldc + j] = alpha*acc + (beta == 0 ? 0 : beta*C[i*ldc + j]).
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc;
}
