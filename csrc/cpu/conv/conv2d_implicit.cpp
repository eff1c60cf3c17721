// conv2d as implicit GEMM: the products of im2col (conv2d_im2col.cpp) without the column
// matrix. The GEMM driver asks for packed panels and the routines here gather them straight
// from x, so there is no workspace beyond the GEMM's own packed blocks.
//
// One GEMM per group covers the whole batch: its columns are (image, output position) pairs,
// j = n*P*Q + p*Q + q, so the filters are packed once per call (not once per image), small
// images (LeNet, VGG conv5 at 14 x 14) fill whole micro-panels, and the threads split one
// large column range instead of a handful of images.
//   forward          y   (K x N*PQ)   = W (K x CRS) * col (CRS x N*PQ)      C in segments
//   backward weight  dW  (K x CRS)    = dy (K x N*PQ) * col^T (N*PQ x CRS)  A in segments
//   backward data    (stride 1) the forward of dy with the filters turned by 180 degrees and
//                    their C and K swapped: dx[c] = sum_k dy[k] (*) rot180(w[k][c]), padded
//                    by dilation*(R-1) - pad; strided layers use the im2col path.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {

using gemm_detail::ScratchSlot;
using gemm_detail::thread_scratch;

struct BatchSource {
  const Conv2dGeometry* g;
  const float* xg;       // first channel of the group in image 0
  int64_t image_stride;  // C*H*W
};

// One output row's run of columns: positions (n, p, qa..qb-1) at panel offset off.
struct Run {
  int64_t off, qa, qb;
  const float* x;  // image n's group channel 0
  int64_t ih0;     // p*stride_h - pad_top
};

// Splits flat columns [j0, j0+nt) (j = (n*P + p)*Q + q) into runs along output rows.
inline int split_runs(const BatchSource& src, int64_t j0, int64_t nt, Run* runs) {
  const Conv2dGeometry& g = *src.g;
  int nruns = 0;
  for_each_row_run(g.Q, j0, nt, [&](int64_t o, int64_t pr, int64_t qa, int64_t qb) {
    const int64_t n = pr / g.P, p = pr % g.P;
    runs[nruns++] = Run{o, qa, qb, src.xg + n * src.image_stride, p * g.stride_h - g.pad_top};
  });
  return nruns;
}

// B for the forward: rows [k0, k0+kc) of col (k = (c*R + r)*S + s) x columns [j0, j0+nj),
// as ceil(nj/nr) micro-panels of kc x nr, zero-padded past nj.
void pack_b_im2col(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
                   float* dst) {
  const BatchSource& src = *static_cast<const BatchSource*>(ctx);
  const Conv2dGeometry& g = *src.g;
  const int64_t RS = g.R * g.S, HW = g.H * g.W;
  Run runs[64];  // a panel of nr <= 64 columns has at most nr runs
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nj - jp);
    const int nruns = split_runs(src, j0 + jp, cols, runs);
    int64_t c = k0 / RS, r = (k0 % RS) / g.S, s = k0 % g.S;
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* d = dst + kk * nr;
      const int64_t off_w = s * g.dilation_w - g.pad_left, dh = r * g.dilation_h;
      for (int u = 0; u < nruns; ++u) {
        const Run& run = runs[u];
        float* dd = d + run.off - run.qa;  // dd[q] is output column q's entry
        const int64_t ih = run.ih0 + dh;
        if (ih < 0 || ih >= g.H) {
          for (int64_t q = run.qa; q < run.qb; ++q) dd[q] = 0.0f;
          continue;
        }
        gather_row(g, run.x + c * HW + ih * g.W, off_w, run.qa, run.qb, dd);
      }
      for (int64_t jj = cols; jj < nr; ++jj) d[jj] = 0.0f;
      if (++s == g.S) {
        s = 0;
        if (++r == g.R) { r = 0; ++c; }
      }
    }
  }
}

// B for the weight gradient: col^T, rows [k0, k0+kc) are output positions j, columns
// [j0, j0+nj) are taps (c, r, s). Each tap column is gathered along the rows' runs and
// scattered with stride nr into its micro-panel.
void pack_b_im2col_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
                     float* dst) {
  const BatchSource& src = *static_cast<const BatchSource*>(ctx);
  const Conv2dGeometry& g = *src.g;
  const int64_t RS = g.R * g.S, HW = g.H * g.W;
  constexpr int64_t kChunk = 64;
  alignas(64) float line[kChunk + 1];
  Run runs[kChunk];
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nj - jp);
    // Positions in chunks of kChunk, so that the runs of a chunk fit a small array.
    for (int64_t k1 = 0; k1 < kc; k1 += kChunk) {
      const int64_t len = std::min(kChunk, kc - k1);
      const int nruns = split_runs(src, k0 + k1, len, runs);
      float* d0 = dst + k1 * nr;
      for (int64_t jj = 0; jj < cols; ++jj) {
        const int64_t t = j0 + jp + jj, c = t / RS, r = (t % RS) / g.S, s = t % g.S;
        const int64_t off_w = s * g.dilation_w - g.pad_left, dh = r * g.dilation_h;
        for (int u = 0; u < nruns; ++u) {
          const Run& run = runs[u];
          float* dd = line + run.off - run.qa;
          const int64_t ih = run.ih0 + dh;
          if (ih < 0 || ih >= g.H) {
            for (int64_t q = run.qa; q < run.qb; ++q) dd[q] = 0.0f;
            continue;
          }
          gather_row(g, run.x + c * HW + ih * g.W, off_w, run.qa, run.qb, dd);
        }
        for (int64_t i = 0; i < len; ++i) d0[i * nr + jj] = line[i];
      }
      for (int64_t jj = cols; jj < nr; ++jj)
        for (int64_t i = 0; i < len; ++i) d0[i * nr + jj] = 0.0f;
    }
  }
}

// Copies n floats (n >= 1) with two fixed-size moves that overlap where n is not a power of
// two (as small memcpy calls do): no loop, no remainder, nothing written past d + n.
template <int B>
inline void move_floats(float* d, const float* s) {
  std::memcpy(d, s, B * sizeof(float));
}
inline void copy_short(float* d, const float* s, int64_t n) {
  if (n >= 8) {
    if (n > 16) {
      std::memcpy(d, s, n * sizeof(float));
      return;
    }
    move_floats<8>(d, s);
    move_floats<8>(d + n - 8, s + n - 8);
  } else if (n >= 4) {
    move_floats<4>(d, s);
    move_floats<4>(d + n - 4, s + n - 4);
  } else if (n >= 2) {
    move_floats<2>(d, s);
    move_floats<2>(d + n - 2, s + n - 2);
  } else {
    d[0] = s[0];
  }
}

// The same B, written a row (output position) at a time: a panel's nr taps are a few runs of
// consecutive s within one kernel row (c, r), and for one position each run is one piece of an
// input row, copied as it lies (dilation 1) with two overlapping fixed-size moves. No
// transposing scatter and, for strided layers, no strided gather. AlexNet conv1 N=16 (11 x 11
// stride 4: 16 taps in 2-3 runs) weight gradient: the pack's share of the profile fell from 35%
// (more than the micro-kernel's) to 14%, the pass from 51-53 to 41-46 ms. Narrow stride-1
// kernels (1 x 1, 3 x 3) make runs of 1-3 taps: there the tap-column order above is as fast
// or faster (backward_weight_implicit chooses).
void pack_b_im2col_t_rows(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj,
                          int64_t nr, float* dst) {
  const BatchSource& src = *static_cast<const BatchSource*>(ctx);
  const Conv2dGeometry& g = *src.g;
  const int64_t RS = g.R * g.S, HW = g.H * g.W;
  struct Tap {               // a run of the panel's taps along s within one kernel row
    int64_t jj, len;         // first column in the panel, number of taps
    int64_t xoff, dh, dw;    // c*H*W, r*dilation_h, s*dilation_w - pad_left of the first tap
  };
  Tap taps[64];  // nr <= 64
  constexpr int64_t kChunk = 64;
  Run runs[kChunk];
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nj - jp);
    int ntaps = 0;
    for (int64_t jj = 0; jj < cols; ++jj) {
      const int64_t t = j0 + jp + jj, c = t / RS, r = (t % RS) / g.S, s = t % g.S;
      if (jj == 0 || s == 0)
        taps[ntaps++] = Tap{jj, 0, c * HW, r * g.dilation_h, s * g.dilation_w - g.pad_left};
      ++taps[ntaps - 1].len;
    }
    for (int64_t k1 = 0; k1 < kc; k1 += kChunk) {
      const int64_t len = std::min(kChunk, kc - k1);
      const int nruns = split_runs(src, k0 + k1, len, runs);
      float* d0 = dst + k1 * nr;
      for (int u = 0; u < nruns; ++u) {
        const Run& run = runs[u];
        for (int v = 0; v < ntaps; ++v) {
          const Tap& tp = taps[v];
          float* dd = d0 + run.off * nr + tp.jj - run.qa * nr;  // dd + q*nr: position q's row
          const int64_t ih = run.ih0 + tp.dh, n = tp.len;
          if (ih < 0 || ih >= g.H) {
            for (int64_t q = run.qa; q < run.qb; ++q)
              for (int64_t e = 0; e < n; ++e) dd[q * nr + e] = 0.0f;
            continue;
          }
          const float* row = run.x + tp.xoff + ih * g.W;
          // Positions whose first and last taps of the run both fall inside the row.
          int64_t lo0, hi0, lo1, hi1;
          valid_range(g.W, g.stride_w, tp.dw, run.qa, run.qb, &lo0, &hi0);
          valid_range(g.W, g.stride_w, tp.dw + (n - 1) * g.dilation_w, run.qa, run.qb, &lo1, &hi1);
          const int64_t lo = std::max(lo0, lo1), hi = std::max(lo, std::min(hi0, hi1));
          const auto edge = [&](int64_t q) {
            const int64_t iw = q * g.stride_w + tp.dw;
            for (int64_t e = 0; e < n; ++e) {
              const int64_t w = iw + e * g.dilation_w;
              dd[q * nr + e] = (w >= 0 && w < g.W) ? row[w] : 0.0f;
            }
          };
          for (int64_t q = run.qa; q < lo; ++q) edge(q);
          if (g.dilation_w == 1) {
            for (int64_t q = lo; q < hi; ++q)
              copy_short(dd + q * nr, row + q * g.stride_w + tp.dw, n);
          } else {
            for (int64_t q = lo; q < hi; ++q) {
              const float* sp = row + q * g.stride_w + tp.dw;
              float* d = dd + q * nr;
              for (int64_t e = 0; e < n; ++e) d[e] = sp[e * g.dilation_w];
            }
          }
          for (int64_t q = hi; q < run.qb; ++q) edge(q);
        }
      }
      if (cols < nr)
        for (int64_t i = 0; i < len; ++i)
          for (int64_t jj = cols; jj < nr; ++jj) d0[i * nr + jj] = 0.0f;
    }
  }
}

// A for the transposed forward of the input gradient, read from the original filters:
// row c, column (k*R + r)*S + s of group grp's rotated filters is w[grp*Kg + k][c][R-1-r][S-1-s].
struct RotatedFilters {
  const float* wg;  // the group's first filter
  int64_t Cg, RS;
};
void pack_a_rotated(const void* ctx, int64_t i0, int64_t mi, int64_t k0, int64_t kc, int64_t mr,
                    float* dst) {
  const RotatedFilters& f = *static_cast<const RotatedFilters*>(ctx);
  const int64_t RS = f.RS, panels = (mi + mr - 1) / mr;
  // Column kk of every panel: the partial filters at either end of [k0, k0 + kc).
  const auto column = [&](int64_t kk) {
    const int64_t k = (k0 + kk) / RS, rs = (k0 + kk) % RS;
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t rows = std::min(mr, mi - p * mr);
      const float* src = f.wg + (k * f.Cg + i0 + p * mr) * RS + (RS - 1 - rs);
      float* d = dst + p * kc * mr + kk * mr;
      int64_t ii = 0;
      for (; ii < rows; ++ii) d[ii] = src[ii * RS];
      for (; ii < mr; ++ii) d[ii] = 0.0f;
    }
  };
  int64_t kk = 0;
  for (; kk < kc && (k0 + kk) % RS != 0; ++kk) column(kk);
  // Whole filters, one at a time over all the panels: filter k's taps for rows i0..i0+mi lie
  // together (mi * RS floats), read sequentially and written transposed into the panels. Read
  // one panel at a time instead, the 28 filters of a 256-deep panel hop 18 KiB apart (VGG
  // conv5_2) and every line missed the caches: a third of the input gradient's time.
  for (; kk + RS <= kc; kk += RS) {
    const float* src = f.wg + ((k0 + kk) / RS * f.Cg + i0) * RS + (RS - 1);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t rows = std::min(mr, mi - p * mr);
      float* d = dst + p * kc * mr + kk * mr;
      const float* s = src + p * mr * RS;
      for (int64_t ii = 0; ii < rows; ++ii)
        for (int64_t r = 0; r < RS; ++r) d[r * mr + ii] = s[ii * RS - r];
      for (int64_t ii = rows; ii < mr; ++ii)
        for (int64_t r = 0; r < RS; ++r) d[r * mr + ii] = 0.0f;
    }
  }
  for (; kk < kc; ++kk) column(kk);
}

// Runs f(grp) for every group: with at least as many groups as threads, the groups go to
// the threads and each GEMM runs serially; otherwise one group at a time, GEMMs threaded.
template <class F>
void for_each_group(const Conv2dGeometry& g, F f) {
  const int nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (g.groups >= nthreads && nthreads > 1) {
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
    for (int64_t grp = 0; grp < g.groups; ++grp) f(grp);
  } else {
    for (int64_t grp = 0; grp < g.groups; ++grp) f(grp);
  }
}

}  // namespace

void forward_implicit(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q;
  for_each_group(g, [&](int64_t grp) {
    const BatchSource src{&g, x + grp * Cg * g.H * g.W, g.C * g.H * g.W};
    const gemm_detail::DenseMatrix wg{w + grp * Kg * CRS, CRS, false};
    GemmEpilogue ep;
    ep.row_bias = bias ? bias + grp * Kg : nullptr;
    ep.relu = relu;
    gemm_detail::gemm_blocked_run(Kg, g.N * PQ, CRS, 1.0f, gemm_detail::pack_a_dense(&wg),
                                  gemm_detail::PackB{pack_b_im2col, &src, true}, 0.0f,
                                  y + grp * Kg * PQ, PQ, ep, {PQ, g.K * PQ});
  });
}

bool backward_data_implicit_applies(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_top <= g.dilation_h * (g.R - 1) &&
         g.pad_bottom <= g.dilation_h * (g.R - 1) && g.pad_left <= g.dilation_w * (g.S - 1) &&
         g.pad_right <= g.dilation_w * (g.S - 1);
}

// The transposed convolution as a forward one: input dy (K channels, P x Q), C filters of
// Kg channels each, output H x W (stride 1: P + pads' - dilation*(R-1) = H).
Conv2dGeometry transposed_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.C = g.K, t.H = g.P, t.W = g.Q, t.K = g.C;
  t.pad_top = g.dilation_h * (g.R - 1) - g.pad_top;
  t.pad_bottom = g.dilation_h * (g.R - 1) - g.pad_bottom;
  t.pad_left = g.dilation_w * (g.S - 1) - g.pad_left;
  t.pad_right = g.dilation_w * (g.S - 1) - g.pad_right;
  t.P = g.H, t.Q = g.W;
  return t;
}

void backward_data_transposed(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                              ForwardFn forward) {
  if (!backward_data_implicit_applies(g)) return backward_data_im2col(g, dy, w, dx);
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const Conv2dGeometry t = transposed_geometry(g);
  const ForwardFn chosen = forward == forward_auto ? forward_auto_choice(t) : forward;
  if (chosen == forward_implicit) {
    // The implicit GEMM packs its A panels from the rotated filters directly: no copy.
    const int64_t CRS = Kg * RS, PQ = t.P * t.Q;
    for_each_group(t, [&](int64_t grp) {
      const BatchSource src{&t, dy + grp * Kg * t.H * t.W, t.C * t.H * t.W};
      const RotatedFilters f{w + grp * Kg * Cg * RS, Cg, RS};
      gemm_detail::gemm_blocked_run(Cg, t.N * PQ, CRS, 1.0f,
                                    gemm_detail::PackA{pack_a_rotated, &f},
                                    gemm_detail::PackB{pack_b_im2col, &src, true}, 0.0f,
                                    dx + grp * Cg * PQ, PQ, {}, {PQ, t.K * PQ});
    });
    return;
  }
  // wt[grp*Cg + c][k][r][s] = w[grp*Kg + k][c][R-1-r][S-1-s]
  float* wt = thread_scratch(ScratchSlot::ConvWeight, g.w_size());
  // Filters read in order; the writes go to Cg rows that each advance by RS floats per filter.
  // (The reverse order reads RS floats Cg * RS apart, a cache miss on each.) Either way this
  // moves the filters twice through memory: for VGG conv5_2 (9 MiB of filters, N=1) about 12%
  // of the input gradient through direct_k or Winograd; the implicit GEMM packs its panels from
  // w directly (pack_a_rotated) and has no copy.
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c) {
        const float* src = w + ((grp * Kg + k) * Cg + c) * RS;
        float* d = wt + ((grp * Cg + c) * Kg + k) * RS;
        for (int64_t i = 0; i < RS; ++i) d[i] = src[RS - 1 - i];
      }
  chosen(t, dy, wt, nullptr, dx, false);
}

void backward_weight_implicit(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* db) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q;
  // col^T row by row where a panel's taps make long runs (S >= 5) or the positions are strided;
  // tap column by tap column (contiguous gathers) for narrow stride-1 kernels.
  const auto pack = g.stride_w > 1 || g.S >= 5 ? pack_b_im2col_t_rows : pack_b_im2col_t;
  for_each_group(g, [&](int64_t grp) {
    const BatchSource src{&g, x + grp * Cg * g.H * g.W, g.C * g.H * g.W};
    const gemm_detail::SegmentedMatrix dyg{dy + grp * Kg * PQ, PQ, PQ, g.K * PQ};
    gemm_detail::gemm_blocked_run(Kg, CRS, g.N * PQ, 1.0f, gemm_detail::pack_a_segmented(&dyg),
                                  gemm_detail::PackB{pack, &src}, 0.0f,
                                  dw + grp * Kg * CRS, CRS, {});
  });
  bias_grad(g, dy, db);
}

}  // namespace convforge::cpu::conv_detail
