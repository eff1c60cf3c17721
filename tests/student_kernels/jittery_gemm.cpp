// A correct student GEMM whose every other call sleeps 30 ms: its timing spread is far too wide to
// compare, and the grader must say so (tests/test_grade.py).
#include "convforge/student.h"

#include <unistd.h>

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float beta, float* C, int64_t ldc) {
  static int calls = 0;
  if (++calls % 2 == 0) usleep(30000);
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) c[j] = beta == 0.f ? 0.f : beta * c[j];
    for (int64_t k = 0; k < K; ++k) {
      const float a = alpha * A[i * lda + k];
      for (int64_t j = 0; j < N; ++j) c[j] += a * B[k * ldb + j];
    }
  }
}
