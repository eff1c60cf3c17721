// The skinny GEMM ("sup", after BLIS's gemmsup for small/unpacked problems): when C has few
// columns (N <= 64) and many rows, B (K x N) is small and only it is packed; A is read in place
// by the micro-kernel's broadcasts (A + i * lda + k: six sequential row streams, which the
// hardware prefetchers follow), so its one trip from memory overlaps the multiply-adds. Per KC
// block the team packs op(B); each thread takes whole MR-row blocks of A and runs the
// ceil(N/NR) tiles of each block while its rows sit in L1. The last, partial row block is packed
// (zero-padded), so the kernel never reads past the matrix.
//
// Why: each element of A serves only N/NR tiles, so the blocked driver's copy of A into
// micro-panels cost up to a quarter of such a GEMM (Zen 3, 1024x64x1024: pack_a 15% of the
// samples against the micro-kernel's 65%). The mirror image for small M (B's rows read in place)
// lost 2x: a micro-panel of B is kc rows of 64 bytes, a page apart for N = 2048, which the
// prefetchers do not follow (docs/cpu_tuning.md).
#include <omp.h>

#include <algorithm>

#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::gemm_detail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The narrow side of C up to which sup reads the other operand in place (Zen 3, measured:
// docs/cpu_tuning.md).
constexpr int64_t kSupMaxNarrow = 64;

// Whether A is read in place (B is packed whatever its layout).
bool reads_a_in_place(bool trans_a, int64_t M, int64_t N, int64_t K) {
  return gemm_config(simd_level()).sup && K > 0 && N > 0 && N <= kSupMaxNarrow && !trans_a &&
         M > 2 * kSupMaxNarrow;
}

TileEpilogue tile_epilogue(float alpha, float beta, bool first, bool last, const GemmEpilogue& e,
                           int64_t i, int64_t j) {
  TileEpilogue t;
  t.alpha = alpha;
  t.beta = first ? beta : 1.0f;  // later K blocks accumulate onto the first
  if (last) {                    // bias and relu once, after the last K block
    t.row_bias = e.row_bias ? e.row_bias + i : nullptr;
    t.col_bias = e.col_bias ? e.col_bias + j : nullptr;
    t.relu = e.relu;
  }
  return t;
}

// N small: A read in place, op(B) packed per K block.
void stream_a(const GemmConfig& cfg, int nthreads, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
              float* C, int64_t ldc, const GemmEpilogue& epi) {
  const int64_t MR = cfg.mr, NR = cfg.nr, kc_max = std::min(cfg.kc, K);
  const int64_t n_panels = ceil_div(N, NR), n_blocks = ceil_div(M, MR);
  const DenseMatrix a{A, lda, false}, b{B, ldb, trans_b};
  const PackA pack_a = pack_a_dense(&a);
  const PackB pack_b = pack_b_dense(&b);
  float* bpack = thread_scratch(ScratchSlot::GemmB, kc_max * n_panels * NR);
  float* edge = thread_scratch(ScratchSlot::GemmA, kc_max * MR);  // the last, partial row block
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) firstprivate(team_float_mode)
  for (int64_t pc = 0; pc < K; pc += cfg.kc) {
    const int64_t kc = std::min(cfg.kc, K - pc);
#pragma omp single
    pack_b.fn(pack_b.ctx, pc, kc, 0, N, NR, bpack);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t i = blk * MR, m = std::min(MR, M - i);
      const float* ap = A + i * lda + pc;
      int64_t la = lda;
      if (m < MR) {
        pack_a.fn(pack_a.ctx, i, m, pc, kc, MR, edge);
        ap = edge;
        la = 0;
      }
      for (int64_t p = 0; p < n_panels; ++p) {
        const int64_t j = p * NR;
        cfg.sup(kc, ap, la, bpack + p * kc * NR, C + i * ldc + j, ldc, m, std::min(NR, N - j),
                tile_epilogue(alpha, beta, pc == 0, pc + kc >= K, epi, i, j));
      }
    }
  }
}

}  // namespace

bool sup_applies(bool trans_a, bool /*trans_b*/, int64_t M, int64_t N, int64_t K) {
  return reads_a_in_place(trans_a, M, N, K);
}

void sgemm_sup(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const GemmEpilogue& epi) {
  if (!reads_a_in_place(trans_a, M, N, K))
    return sgemm_blocked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epi);
  const GemmConfig& cfg = gemm_config(simd_level());
  stream_a(cfg, gemm_threads(M, N, K), trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epi);
}

}  // namespace convforge::cpu::gemm_detail
