// Single-precision GEMM on the GPU:  C = alpha * op(A) * op(B) + beta * C  (row-major),
// with the same epilogue as the CPU's (row bias, column bias, ReLU). Pointers are device
// pointers on the current device; work is queued on convforge's stream (runtime.h).
// beta == 0 means C is write-only (its old contents, even NaN, are ignored), as in BLAS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/kernel_info.h"

namespace convforge::cuda {

using KernelInfo = convforge::cpu::KernelInfo;

struct GemmEpilogue {
  const float* row_bias = nullptr;  // length M, added to row i (conv bias)
  const float* col_bias = nullptr;  // length N, added to column j (linear bias)
  bool relu = false;
};

// algo: "reference" (step 1), "coalesced" (2), "smem_tiled" (3), "register_blocked" (4),
// "warp_tiled" (5), "tf32" (tensor cores, opt-in only), "auto" (picks among the fp32 steps).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue = {}, const std::string& algo = "auto");

std::vector<KernelInfo> gemm_algos();

}  // namespace convforge::cuda
