// Single-precision GEMM on the CPU:  C = alpha * op(A) * op(B) + beta * C  (row-major),
// with an optional epilogue so that a layer writes its output once.
//
// op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides in elements.
// beta == 0 means C is write-only (its old contents, even NaN, are ignored), as in BLAS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/kernel_info.h"

namespace convforge::cpu {

struct GemmEpilogue {
  const float* row_bias = nullptr;  // length M, added to every column of row i (conv bias)
  const float* col_bias = nullptr;  // length N, added to every row (linear bias)
  bool relu = false;                // max(0, .) applied last
};

// algo: "reference" (three plain loops), "blocked" (BLIS-style packed, SIMD micro-kernel),
// "auto". Throws std::invalid_argument for an unknown algo.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue = {}, const std::string& algo = "auto");

std::vector<KernelInfo> gemm_algos();
// The algo "auto" runs for this call.
std::string gemm_auto_choice(int64_t M, int64_t N, int64_t K, bool trans_a = false,
                             bool trans_b = false);
// The production algos that run as themselves for this call (the tuner's candidates).
std::vector<std::string> gemm_eligible_algos(int64_t M, int64_t N, int64_t K, bool trans_a,
                                             bool trans_b);

}  // namespace convforge::cpu
