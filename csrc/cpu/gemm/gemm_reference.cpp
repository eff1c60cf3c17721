// The GEMM a student reads first: three plain loops, one dot product per element of C.
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                     float* C, int64_t ldc, const GemmEpilogue& epi) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];  // op(A)[i][k]
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];  // op(B)[k][j]
        acc += a * b;
      }
      float out = alpha * acc;
      if (beta != 0.0f) out += beta * C[i * ldc + j];  // beta == 0: C may hold garbage
      if (epi.row_bias) out += epi.row_bias[i];
      if (epi.col_bias) out += epi.col_bias[j];
      if (epi.relu) out = out > 0.0f ? out : 0.0f;
      C[i * ldc + j] = out;
    }
  }
}

}  // namespace convforge::cpu::gemm_detail
