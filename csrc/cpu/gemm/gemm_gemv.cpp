// GEMM with a few rows of op(A) (a linear layer at batch 1): matrix-vector products.
// Packing op(B) would stream it through memory twice, and a product this thin is bound by
// reading op(B) once, so each row of C is computed straight from B: dot products against
// B's rows when trans_b (a linear layer's weight), row updates (axpy) over B's rows otherwise.
// Threads split the columns of C.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::gemm_detail {
namespace {

float finish(float acc, float alpha, float beta, const float* c, int64_t i, int64_t j,
             const GemmEpilogue& epi) {
  float out = alpha * acc;
  if (beta != 0.0f) out += beta * *c;  // beta == 0: C may hold garbage
  if (epi.row_bias) out += epi.row_bias[i];
  if (epi.col_bias) out += epi.col_bias[j];
  if (epi.relu) out = out > 0.0f ? out : 0.0f;  // as the other GEMM kernels
  return out;
}

}  // namespace

void sgemm_gemv(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, const GemmEpilogue& epi) {
  // Rows of op(A), contiguous with stride ld_a (a transposed A is gathered once: M*K floats).
  std::vector<float> a_rows;
  if (trans_a) {
    a_rows.resize(static_cast<size_t>(M * K));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) a_rows[i * K + k] = A[k * lda + i];
  }
  const float* a = trans_a ? a_rows.data() : A;
  const int64_t ld_a = trans_a ? K : lda;
  const bool parallel = N * K >= (int64_t(1) << 18) && !omp_in_parallel();

  if (trans_b) {  // C[i][j] = dot(op(A)[i], B[j])
#pragma omp parallel for schedule(static) if (parallel) firstprivate(team_float_mode)
    for (int64_t j = 0; j < N; ++j) {
      const float* b = B + j * ldb;
      for (int64_t i = 0; i < M; ++i) {
        const float* ai = a + i * ld_a;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < K; ++k) acc += ai[k] * b[k];
        C[i * ldc + j] = finish(acc, alpha, beta, &C[i * ldc + j], i, j, epi);
      }
    }
    return;
  }
  // C[i][:] = sum_k op(A)[i][k] * B[k][:], over column blocks that stay in L1.
  constexpr int64_t kCols = 512;
  const int64_t blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (parallel) firstprivate(team_float_mode)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kCols, nj = std::min(kCols, N - j0);
    float acc[kCols];
    for (int64_t i = 0; i < M; ++i) {
      std::fill(acc, acc + nj, 0.0f);
      for (int64_t k = 0; k < K; ++k) {
        const float aik = a[i * ld_a + k];
        const float* b = B + k * ldb + j0;
#pragma omp simd
        for (int64_t j = 0; j < nj; ++j) acc[j] += aik * b[j];
      }
      for (int64_t j = 0; j < nj; ++j)
        C[i * ldc + j0 + j] = finish(acc[j], alpha, beta, &C[i * ldc + j0 + j], i, j0 + j, epi);
    }
  }
}

}  // namespace convforge::cpu::gemm_detail
