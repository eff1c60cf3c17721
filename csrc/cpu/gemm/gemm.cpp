// sgemm(): the algo switch and the list of GEMM kernels.
#include "cpu/gemm/gemm.h"

#include <stdexcept>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu {

constexpr int64_t kGemvMaxRows = 4;  // auto: matrix-vector products up to this many rows of op(A)

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue, const std::string& algo) {
  std::string use = algo;
  // Packing costs more than it saves for tiny products (a few hundred FMAs) and for products
  // of a few rows, which are bound by reading op(B) once (a linear layer at batch 1).
  if (algo == "auto") use = M * N * K <= 512 ? "reference" : M <= kGemvMaxRows ? "gemv" : "blocked";
  if (use == "blocked")
    gemm_detail::sgemm_blocked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                               epilogue);
  else if (use == "gemv")
    gemm_detail::sgemm_gemv(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                            epilogue);
  else if (use == "reference")
    gemm_detail::sgemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                 epilogue);
  else
    throw std::invalid_argument("gemm: unknown algo '" + algo +
                                "'; expected one of 'auto', 'reference', 'blocked', 'gemv'");
}

std::vector<KernelInfo> gemm_algos() {
  return {
      {"reference", "reference", "three plain loops, one dot product per element of C",
       "cpu/gemm/gemm_reference.cpp"},
      {"blocked", "production",
       "BLIS five loops: packed A/B panels, cache blocks per ISA, AVX-512 14x32 / AVX2 6x16 / "
       "NEON 8x12 / scalar 4x16 micro-kernel, fused alpha/beta/bias/relu, OpenMP over ic and columns",
       "cpu/gemm/gemm_blocked.cpp"},
      {"gemv", "production",
       "a few rows of op(A) (batch-1 linear layers): dot products or row updates straight from B, "
       "which is read once, unpacked; OpenMP over columns",
       "cpu/gemm/gemm_gemv.cpp"},
      {"auto", "production",
       "reference for tiny products (M*N*K <= 512), gemv for M <= 4 rows, blocked otherwise",
       "cpu/gemm/gemm.cpp"},
  };
}

}  // namespace convforge::cpu
