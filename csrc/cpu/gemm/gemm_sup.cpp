// The skinny GEMM ("sup", after BLIS's gemmsup for small/unpacked problems): when one side of C
// is narrow, the operand on that side is small, and only it is packed; the large operand is read
// in place by the micro-kernel, so that its one trip from memory overlaps the multiply-adds.
//
//   M small (B row-major, not transposed): per KC block the team packs all of op(A) (M x kc);
//     each thread takes whole NR-column panels of B, read at B + k * ldb, and runs the ceil(M/MR)
//     tiles of each panel while it sits in L1.
//   N small (A row-major, not transposed): per KC block op(B) (kc x N) is packed; each thread
//     takes whole MR-row blocks of A, read at A + i * lda + k by the broadcasts, and runs the
//     ceil(N/NR) tiles of each block.
//
// Edges: the last partial column panel of B (or row block of A) is packed, zero-padded, so the
// kernel never reads past the matrix. Why: a skinny GEMM's large operand is used by few tiles
// (M = 32: 6 tiles per element of B), so the blocked driver's copy of it into micro-panels cost as
// much as half its multiply-adds (Zen 3, 32x2048x2048: the B pack 29% of the samples against the
// micro-kernel's 48%), and the copy waits on memory with no arithmetic to hide it.
#include <omp.h>

#include <algorithm>

#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::gemm_detail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int64_t kMinParallelMacs = int64_t(1) << 20;  // as gemm_blocked.cpp
// The narrow side of C up to which sup reads the other operand in place (Zen 3, measured:
// docs/cpu_tuning.md).
constexpr int64_t kSupMaxNarrow = 64;

enum class Stream { None, A, B };

Stream stream_of(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  const GemmConfig& cfg = gemm_config(simd_level());
  if (!cfg.sup || M <= 0 || N <= 0 || K <= 0) return Stream::None;
  if (N <= kSupMaxNarrow && !trans_a && M > 2 * kSupMaxNarrow) return Stream::A;
  return Stream::None;
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
        cfg.sup(kc, ap, la, bpack + p * kc * NR, NR, C + i * ldc + j, ldc, m, std::min(NR, N - j),
                tile_epilogue(alpha, beta, pc == 0, pc + kc >= K, epi, i, j));
      }
    }
  }
}

}  // namespace

bool sup_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  return stream_of(trans_a, trans_b, M, N, K) != Stream::None;
}

void sgemm_sup(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const GemmEpilogue& epi) {
  const Stream s = stream_of(trans_a, trans_b, M, N, K);
  if (s == Stream::None)
    return sgemm_blocked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epi);
  const GemmConfig& cfg = gemm_config(simd_level());
  const int nthreads =
      (!omp_in_parallel() && M * N * K >= kMinParallelMacs) ? std::max(1, omp_get_max_threads()) : 1;
  stream_a(cfg, nthreads, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epi);
}

}  // namespace convforge::cpu::gemm_detail
