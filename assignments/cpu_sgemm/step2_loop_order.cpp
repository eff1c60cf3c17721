// convforge assignment cpu_sgemm/step2_loop_order.cpp: Step 2: loop order i, k, j.
//
// Scale row i of C by beta (or zero it), then for k: C[i][:] += alpha*A[i][k] * B[k][:]. The
// inner loop now streams a row of B and a row of C (unit stride): the compiler vectorises it.
// Measure: GFLOP/s against step 1; try 256, 512, 1024 and watch the drop when B leaves the cache.
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step2_loop_order.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step2_loop_order.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: for i: C row = beta*C row (or 0); for k: a = alpha*A[i][k]; for j: C[i][j] += a*B[k][j].
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc;
}
