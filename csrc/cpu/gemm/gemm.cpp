// sgemm(): the algo switch and the list of GEMM kernels.
#include "cpu/gemm/gemm.h"

#include <stdexcept>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue, const std::string& algo) {
  bool blocked;
  if (algo == "blocked") blocked = true;
  else if (algo == "reference") blocked = false;
  // Packing costs more than it saves only for tiny products (a few hundred FMAs).
  else if (algo == "auto") blocked = M * N * K > 512;
  else throw std::invalid_argument("gemm: unknown algo '" + algo + "'; expected one of 'auto', 'reference', 'blocked'");
  if (blocked)
    gemm_detail::sgemm_blocked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                               epilogue);
  else
    gemm_detail::sgemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                 epilogue);
}

std::vector<KernelInfo> gemm_algos() {
  return {
      {"reference", "reference", "three plain loops, one dot product per element of C",
       "cpu/gemm/gemm_reference.cpp"},
      {"blocked", "production",
       "BLIS five loops: packed A/B panels, cache blocks per ISA, AVX-512 14x32 / AVX2 6x16 / "
       "scalar 4x16 micro-kernel, fused alpha/beta/bias/relu, OpenMP over ic and columns",
       "cpu/gemm/gemm_blocked.cpp"},
      {"auto", "production", "blocked, except tiny products (M*N*K <= 512) which use reference",
       "cpu/gemm/gemm.cpp"},
  };
}

}  // namespace convforge::cpu
