// Worked solution, cpu_sgemm step 3: cache blocking with the BLIS loops jc (NC columns of B), pc
// (KC rows of the depth) and ic (MC rows of A), step 2's loops inside a block. The KC x NC block of
// B (256 x 256 floats = 256 KiB) stays in L2 while MC rows of C and A stream past it; C is scaled
// by beta once, before the blocks accumulate into it.
// Grade:  convforge grade assignments/cpu_sgemm/solutions/step3_cache_blocking.cpp --op gemm
#include "convforge/student.h"

#include <algorithm>

constexpr int64_t NC = 256, KC = 256, MC = 72;

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        for (int64_t i = ic; i < ic + mc; ++i) {
          float* __restrict c = C + i * ldc + jc;
          for (int64_t k = pc; k < pc + kc; ++k) {
            const float a = alpha * A[i * lda + k];
            const float* __restrict b = B + k * ldb + jc;
            for (int64_t j = 0; j < nc; ++j) c[j] += a * b[j];
          }
        }
      }
    }
  }
}
