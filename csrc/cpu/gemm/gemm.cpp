// sgemm(): the algo switch and the list of GEMM kernels.
#include "cpu/gemm/gemm.h"

#include <stdexcept>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu {

constexpr int64_t kGemvMaxRows = 4;  // auto: matrix-vector products up to this many rows of op(A)

namespace {

using SgemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                         const float*, int64_t, float, float*, int64_t, const GemmEpilogue&);

// Packing costs more than it saves for tiny products (a few hundred FMAs) and for products
// of a few rows, which are bound by reading op(B) once (a linear layer at batch 1).
const char* auto_choice(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  if (M * N * K <= 512) return "reference";
  if (M <= kGemvMaxRows) return "gemv";
  return gemm_detail::sup_applies(trans_a, trans_b, M, N, K) ? "sup" : "blocked";
}

struct GemmAlgo {
  KernelInfo info;
  SgemmFn fn;  // null for auto
};

// The one table of GEMM algos: dispatch, the unknown-algo error and algos() read it.
const std::vector<GemmAlgo>& table() {
  static const std::vector<GemmAlgo> t = {
      {{"reference", "reference", "three plain loops, one dot product per element of C",
        "cpu/gemm/gemm_reference.cpp", "every shape"},
       gemm_detail::sgemm_reference},
      {{"blocked", "production",
        "BLIS five loops: packed A/B panels, cache blocks from the machine's cache sizes, "
        "micro-kernel per CPU config (AVX-512 14x32 / AVX2 6x16 / NEON 8x12 / scalar 4x16), fused "
        "alpha/beta/bias/relu, OpenMP over ic and columns",
        "cpu/gemm/gemm_blocked.cpp", "every shape"},
       gemm_detail::sgemm_blocked},
      {{"sup", "production",
        "skinny GEMM (after BLIS's gemmsup): when M or N is <= 64, only the small operand is "
        "packed and the micro-kernel reads the large one in place (B rows, or A rows by "
        "broadcasts); AVX2 config only",
        "cpu/gemm/gemm_sup.cpp",
        "M <= 64 with B not transposed, or N <= 64 with A not transposed, the other side > 128, "
        "on the AVX2 config (else blocked)"},
       gemm_detail::sgemm_sup},
      {{"gemv", "production",
        "a few rows of op(A) (batch-1 linear layers): dot products or row updates straight from B, "
        "which is read once, unpacked; OpenMP over columns",
        "cpu/gemm/gemm_gemv.cpp", "every shape (fast for M <= 4)"},
       gemm_detail::sgemm_gemv},
      {{"auto", "production",
        "reference for tiny products (M*N*K <= 512), gemv for M <= 4 rows, sup where it reads A "
        "in place (N <= 64, M > 128, A not transposed, AVX2), blocked otherwise",
        "cpu/gemm/gemm.cpp", "every shape"},
       nullptr},
  };
  return t;
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue, const std::string& algo) {
  const std::string use = algo == "auto" ? auto_choice(trans_a, trans_b, M, N, K) : algo;
  for (const GemmAlgo& a : table())
    if (a.fn && a.info.name == use)
      return a.fn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue);
  std::string choices;
  for (const GemmAlgo& a : table()) choices += (choices.empty() ? "'" : ", '") + a.info.name + "'";
  throw std::invalid_argument("gemm: unknown algo '" + algo + "'; expected one of " + choices);
}

std::string gemm_auto_choice(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
  return auto_choice(trans_a, trans_b, M, N, K);
}

std::vector<std::string> gemm_eligible_algos(int64_t M, int64_t N, int64_t K, bool trans_a,
                                             bool trans_b) {
  std::vector<std::string> out = {"blocked", "gemv"};
  if (gemm_detail::sup_applies(trans_a, trans_b, M, N, K)) out.push_back("sup");
  return out;
}

std::vector<KernelInfo> gemm_algos() {
  std::vector<KernelInfo> out;
  for (const GemmAlgo& a : table()) out.push_back(a.info);
  return out;
}

}  // namespace convforge::cpu
