// conv2d forward as an implicit GEMM: the same product as im2col (y_g = W_g * col), but the
// column matrix is never stored. The GEMM driver asks for a KC x NR micro-panel of col and
// this file's packing routine gathers it straight from x into the panel format, so there is
// no workspace beyond the GEMM's own packed blocks and x is read once per K block.
#include <omp.h>

#include <algorithm>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::conv_detail {
namespace {

struct ImageGroup {
  const Conv2dGeometry* g;
  const float* xg;  // first channel of the group in image n
};

// Rows [k0, k0+kc) (k = (c*R + r)*S + s) x columns [j0, j0+nj) (j = p*Q + q) of col,
// as ceil(nj/nr) micro-panels of kc x nr, zero-padded past nj.
void pack_b_im2col(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
                   float* dst) {
  const ImageGroup& ig = *static_cast<const ImageGroup*>(ctx);
  const Conv2dGeometry& g = *ig.g;
  const int64_t RS = g.R * g.S;
  struct Run { int64_t off, p, qa, qb; };
  Run runs[64];  // a panel of nr <= 64 columns has at most nr runs
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nj - jp);
    int nruns = 0;
    for_each_row_run(g.Q, j0 + jp, cols, [&](int64_t o, int64_t p, int64_t qa, int64_t qb) {
      runs[nruns++] = Run{o, p, qa, qb};
    });
    int64_t c = k0 / RS, r = (k0 % RS) / g.S, s = k0 % g.S;
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* d = dst + kk * nr;
      const float* xc = ig.xg + c * g.H * g.W;
      const int64_t off_w = s * g.dilation_w - g.pad_left;
      for (int u = 0; u < nruns; ++u) {
        const Run& run = runs[u];
        float* dd = d + run.off - run.qa;  // dd[q] is output column q's entry
        const int64_t ih = run.p * g.stride_h - g.pad_top + r * g.dilation_h;
        if (ih < 0 || ih >= g.H) {
          for (int64_t q = run.qa; q < run.qb; ++q) dd[q] = 0.0f;
          continue;
        }
        const float* xr = xc + ih * g.W + off_w;
        int64_t lo, hi;
        valid_range(g.W, g.stride_w, off_w, run.qa, run.qb, &lo, &hi);
        for (int64_t q = run.qa; q < lo; ++q) dd[q] = 0.0f;
        if (g.stride_w == 1)
          for (int64_t q = lo; q < hi; ++q) dd[q] = xr[q];
        else
          for (int64_t q = lo; q < hi; ++q) dd[q] = xr[q * g.stride_w];
        for (int64_t q = hi; q < run.qb; ++q) dd[q] = 0.0f;
      }
      for (int64_t jj = cols; jj < nr; ++jj) d[jj] = 0.0f;
      if (++s == g.S) {
        s = 0;
        if (++r == g.R) { r = 0; ++c; }
      }
    }
  }
}

}  // namespace

void forward_implicit(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, pairs = g.N * g.groups;
  auto one = [&](int64_t i) {
    const int64_t n = i / g.groups, grp = i % g.groups;
    const ImageGroup ig{&g, x + (n * g.C + grp * Cg) * g.H * g.W};
    const gemm_detail::DenseMatrix wg{w + grp * Kg * CRS, CRS, false};
    GemmEpilogue ep;
    ep.row_bias = bias ? bias + grp * Kg : nullptr;
    ep.relu = relu;
    gemm_detail::gemm_blocked_run(Kg, PQ, CRS, 1.0f, gemm_detail::pack_a_dense(&wg),
                                  gemm_detail::PackB{pack_b_im2col, &ig}, 0.0f,
                                  y + (n * g.K + grp * Kg) * PQ, PQ, ep);
  };
  // Enough (image, group) pairs: one thread per pair, serial GEMMs; else threaded GEMMs.
  if (pairs >= omp_get_max_threads() && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < pairs; ++i) one(i);
  } else {
    for (int64_t i = 0; i < pairs; ++i) one(i);
  }
}

}  // namespace convforge::cpu::conv_detail
