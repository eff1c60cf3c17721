// The BLIS-style GEMM driver: five loops around a micro-kernel (see gemm_blocked.h).
//
// Threading: one OpenMP region for the whole call. For each (jc, pc) the team packs the
// B block together (split by micro-panels), then splits the C block into work items of
// (ic block x range of B micro-panels): ic blocks first, and when M gives fewer blocks
// than threads, the columns too (each such thread packs its own copy of the A block,
// which costs 1/ncols of its work). Small problems, and calls from inside a parallel
// region (a convolution threaded over images), run serially.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::gemm_detail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

constexpr int64_t kMaxNR = 32, kMaxTile = 16 * kMaxNR;  // the largest micro-kernel's NR, MR x NR

// K == 0: C = beta * C + biases, then relu.
void scale_only(int64_t M, int64_t N, float beta, float* C, int64_t ldc, const GemmEpilogue& e) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float v = beta != 0.0f ? beta * C[i * ldc + j] : 0.0f;
      if (e.row_bias) v += e.row_bias[i];
      if (e.col_bias) v += e.col_bias[j];
      if (e.relu) v = v > 0.0f ? v : 0.0f;
      C[i * ldc + j] = v;
    }
}

struct Scratch {
  float* p = nullptr;
  int64_t n = 0;
  ~Scratch() { std::free(p); }
};

}  // namespace

float* thread_scratch(ScratchSlot slot, int64_t count) {
  thread_local Scratch slots[static_cast<int>(ScratchSlot::Count)];
  Scratch& s = slots[static_cast<int>(slot)];
  if (count > s.n) {
    std::free(s.p);
    s.p = nullptr;
    s.n = 0;
    const size_t bytes = static_cast<size_t>(round_up(std::max<int64_t>(count, 16) * 4, 64));
    s.p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!s.p) throw std::bad_alloc();
    s.n = count;
  }
  return s.p;
}

int gemm_threads(int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kMinParallelMacs = int64_t(1) << 20;
  return (!omp_in_parallel() && M * N * K >= kMinParallelMacs) ? std::max(1, omp_get_max_threads())
                                                                : 1;
}

void gemm_blocked_run(int64_t M, int64_t N, int64_t K, float alpha, PackA a, PackB b, float beta,
                      float* C, int64_t ldc, const GemmEpilogue& epi, const ColumnSegments& segs) {
  if (M <= 0 || N <= 0) return;
  const int64_t seg = segs.seg_cols > 0 ? segs.seg_cols : N;
  if (K <= 0) {
    for (int64_t j0 = 0; j0 < N; j0 += seg)
      scale_only(M, std::min(seg, N - j0), beta, C + (j0 / seg) * segs.seg_stride, ldc,
                 {epi.row_bias, epi.col_bias ? epi.col_bias + j0 : nullptr, epi.relu});
    return;
  }

  const GemmConfig& cfg = gemm_config(simd_level());
  const int64_t MR = cfg.mr, NR = cfg.nr, KC = cfg.kc, NC = cfg.nc;
  const int nthreads = gemm_threads(M, N, K);

  // The ic blocks: at most cfg.mc rows. With several threads the C block is split over ic
  // blocks (each thread packs its own A block) when the micro-tiles of M share out evenly;
  // otherwise (e.g. M = 64: 5 tiles of 14 rows, 3 + 2) over the columns, where each thread
  // packs a copy of the A block, which costs 1/ncols of its work.
  const int64_t tiles = ceil_div(M, MR);
  int64_t n_ic = ceil_div(M, cfg.mc);
  if (nthreads > 1) {
    const int64_t by_rows = round_up(n_ic, nthreads);
    const int64_t per_thread = ceil_div(tiles, nthreads);
    if (tiles >= by_rows && 10 * tiles >= 9 * per_thread * nthreads) n_ic = by_rows;
  }
  const int64_t mc = ceil_div(tiles, n_ic) * MR;
  n_ic = ceil_div(M, mc);

  const int64_t nc_max = std::min(NC, round_up(N, NR));
  const int64_t kc_max = std::min(KC, K);
  // One ic block (M <= MC) and a B packed panel by panel (PackB::by_panel): each B micro-panel
  // is used by one work item only, so that item's thread packs it right before its micro-
  // kernels and they read it from L1, not from a KC x NC block written to the L3 and read back;
  // the team needs no barrier per block either. Zen 3, 1 thread, interleaved in one process,
  // ms, per panel / per block: implicit-GEMM forward res3_3x3_s2 N=8 39.6 / 42.4, AlexNet
  // conv1 N=16 54.5 / 63.3, 128 -> 128 3 x 3 at 28 x 28 N=1 4.56 / 4.78; input gradient
  // res2_3x3 N=8 34.4 / 36.4, 128 -> 128 at 56 x 56 N=1 17.5 / 18.8, res4_3x3 N=1 5.24 /
  // 5.53; sgemm with B^T: 64x3136x576 4.29 / 4.87, 32x2048x2048 5.44 / 6.59, 150x4096x256
  // 4.02 / 4.71. 2 threads: 0.94-1.02x. B's row-by-row copy loses (short runs of each row:
  // 32x2048x2048 7.0 / 5.3 packed two panels at a time), and so did the weight gradients'
  // col^T and x^T packs (0.88-1.12x): they stay block by block.
  const bool per_panel = n_ic == 1 && b.by_panel;
  float* bbuf = thread_scratch(ScratchSlot::GemmB, kc_max * (per_panel ? NR : nc_max));
  // Allocate the A buffers before the region: an exception must not escape it.
  if (nthreads == 1) thread_scratch(ScratchSlot::GemmA, mc * kc_max);

#pragma omp parallel num_threads(nthreads) if (nthreads > 1) firstprivate(team_float_mode)
  {
    float* abuf = thread_scratch(ScratchSlot::GemmA, mc * kc_max);
    float* pbuf = per_panel ? thread_scratch(ScratchSlot::GemmB, kc_max * NR) : nullptr;
    alignas(64) float tile[kMaxTile];  // for micro-tiles that straddle two column segments
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min(NC, N - jc);
      const int64_t n_panels = ceil_div(nc, NR);
      const int64_t n_split =
          n_ic >= nthreads ? 1 : std::min<int64_t>(n_panels, ceil_div(nthreads, n_ic));
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const bool last = pc + kc >= K;

        // The team packs the B block together, each thread one contiguous range of micro-
        // panels in one call (so that a packing routine can read its rows sequentially).
        if (!per_panel) {
          const int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
          const int64_t p0 = me * n_panels / team, p1 = (me + 1) * n_panels / team;
          if (p1 > p0)
            b.fn(b.ctx, pc, kc, jc + p0 * NR, std::min(p1 * NR, nc) - p0 * NR, NR,
                 bbuf + p0 * kc * NR);
#pragma omp barrier
        }

        TileEpilogue ep;
        ep.alpha = alpha;
        ep.beta = pc == 0 ? beta : 1.0f;  // later K blocks accumulate onto the first
        ep.relu = last && epi.relu;       // bias and relu once, after the last K block

#pragma omp for schedule(static)
        for (int64_t item = 0; item < n_ic * n_split; ++item) {
          const int64_t ic = (item / n_split) * mc, part = item % n_split;
          const int64_t mi = std::min(mc, M - ic);
          const int64_t p_begin = part * n_panels / n_split;
          const int64_t p_end = (part + 1) * n_panels / n_split;
          if (p_begin == p_end) continue;
          a.fn(a.ctx, ic, mi, pc, kc, MR, abuf);
          for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t jr = p * NR, nr = std::min(NR, nc - jr);
            const float* bp = per_panel ? pbuf : bbuf + p * kc * NR;
            if (per_panel) b.fn(b.ctx, pc, kc, jc + jr, nr, NR, pbuf);
            TileEpilogue t = ep;
            if (last && epi.col_bias) t.col_bias = epi.col_bias + jc + jr;
            const int64_t j = jc + jr, js = j % seg;
            float* cj = C + (j / seg) * segs.seg_stride + js;
            if (js + nr <= seg) {
              for (int64_t ir = 0; ir < mi; ir += MR) {
                if (last && epi.row_bias) t.row_bias = epi.row_bias + ic + ir;
                cfg.kernel(kc, abuf + ir * kc, bp, cj + (ic + ir) * ldc, ldc,
                           std::min(MR, mi - ir), nr, t);
              }
            } else {
              // The tile straddles segments (images): compute it into `tile`, then copy.
              // Usually two segments (seg >= nr): two contiguous pieces per row.
              int64_t off[kMaxNR];  // offset in C of each column of the tile
              for (int64_t jj = 0; jj < nr; ++jj)
                off[jj] = ((j + jj) / seg) * segs.seg_stride + (j + jj) % seg;
              const int64_t n1 = seg >= nr ? seg - js : 0;  // columns in the first segment
              for (int64_t ir = 0; ir < mi; ir += MR) {
                const int64_t m = std::min(MR, mi - ir);
                float* c = C + (ic + ir) * ldc;
                if (t.beta != 0.0f)
                  for (int64_t i = 0; i < m; ++i) {
                    if (n1) {
                      std::memcpy(tile + i * NR, c + i * ldc + off[0], sizeof(float) * n1);
                      std::memcpy(tile + i * NR + n1, c + i * ldc + off[n1],
                                  sizeof(float) * (nr - n1));
                    } else {
                      for (int64_t jj = 0; jj < nr; ++jj) tile[i * NR + jj] = c[i * ldc + off[jj]];
                    }
                  }
                if (last && epi.row_bias) t.row_bias = epi.row_bias + ic + ir;
                cfg.kernel(kc, abuf + ir * kc, bp, tile, NR, m, nr, t);
                for (int64_t i = 0; i < m; ++i) {
                  if (n1) {
                    std::memcpy(c + i * ldc + off[0], tile + i * NR, sizeof(float) * n1);
                    std::memcpy(c + i * ldc + off[n1], tile + i * NR + n1,
                                sizeof(float) * (nr - n1));
                  } else {
                    for (int64_t jj = 0; jj < nr; ++jj) c[i * ldc + off[jj]] = tile[i * NR + jj];
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

void sgemm_blocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc, const GemmEpilogue& epi) {
  const DenseMatrix a{A, lda, trans_a}, b{B, ldb, trans_b};
  gemm_blocked_run(M, N, K, alpha, pack_a_dense(&a), pack_b_dense(&b), beta, C, ldc, epi);
}

}  // namespace convforge::cpu::gemm_detail
