// conv2d as GEMM over an explicit column matrix (im2col), forward and backward.
//
// For image n and group g, col is the (Cg*R*S) x (P*Q) matrix whose row (c, r, s) holds the
// input value each output position reads through tap (r, s) of channel c (zero in the
// padding). Then, with W_g the Kg x (Cg*R*S) filters of the group:
//   forward          y_g  = W_g * col            (bias and relu in the GEMM's epilogue)
//   backward data    dcol = W_g^T * dy_g,  dx += col2im(dcol)
//   backward weight  dW_g += dy_g * col^T
// The column matrix is built for a tile of output positions at a time, so the workspace is
// bounded (kColBudget floats per thread) whatever the image size; the tile is the GEMM's N.
//
// Threads: with at least as many (image, group) pairs as threads, each thread takes whole
// pairs and runs the GEMM serially (no barrier per tile); otherwise the pairs go one by one
// and the GEMM is threaded inside.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {

using gemm_detail::ScratchSlot;
using gemm_detail::thread_scratch;

constexpr int64_t kColBudget = int64_t(1) << 20;  // floats (4 MiB) of column matrix per thread

// Output positions per tile: as many as the budget allows, at least 64 (so that repacking
// the filters per tile stays a small cost), at most P*Q.
int64_t tile_columns(const Conv2dGeometry& g) {
  const int64_t rows = g.C_per_group() * g.R * g.S, PQ = g.P * g.Q;
  int64_t nt = std::max<int64_t>(64, kColBudget / rows);
  return std::min(nt, PQ);
}

// col (Cg*R*S x nt) = the tile [j0, j0+nt) of image-group xg's column matrix.
void im2col_tile(const Conv2dGeometry& g, const float* xg, int64_t j0, int64_t nt, float* col) {
  const int64_t Cg = g.C_per_group(), RS = g.R * g.S;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && Cg > 1 && Cg * RS * nt > (1 << 15)) firstprivate(team_float_mode)
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xc = xg + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s) {
        float* row = col + (c * RS + r * g.S + s) * nt;
        const int64_t off_w = s * g.dilation_w - g.pad_left;
        for_each_row_run(g.Q, j0, nt, [&](int64_t o, int64_t p, int64_t qa, int64_t qb) {
          float* d = row + o - qa;  // d[q] is the entry of output column q
          const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
          if (ih < 0 || ih >= g.H) {
            for (int64_t q = qa; q < qb; ++q) d[q] = 0.0f;
            return;
          }
          gather_row(g, xc + ih * g.W, off_w, qa, qb, d);
        });
      }
  }
}

// dxg += col2im(col): the transpose of im2col_tile, a scatter-add. Threads own channels.
// col's rows are ld floats apart (ld >= nt: a tile of a batched GEMM holds several images).
void col2im_tile(const Conv2dGeometry& g, const float* col, int64_t ld, int64_t j0, int64_t nt,
                 float* dxg) {
  const int64_t Cg = g.C_per_group(), RS = g.R * g.S;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && Cg > 1 && Cg * RS * nt > (1 << 15)) firstprivate(team_float_mode)
  for (int64_t c = 0; c < Cg; ++c) {
    float* dxc = dxg + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s) {
        const float* row = col + (c * RS + r * g.S + s) * ld;
        const int64_t off_w = s * g.dilation_w - g.pad_left;
        for_each_row_run(g.Q, j0, nt, [&](int64_t o, int64_t p, int64_t qa, int64_t qb) {
          const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
          if (ih < 0 || ih >= g.H) return;
          const float* d = row + o - qa;
          float* xr = dxc + ih * g.W + off_w;
          int64_t lo, hi;
          valid_range(g.W, g.stride_w, off_w, qa, qb, &lo, &hi);
          for (int64_t q = lo; q < hi; ++q) xr[q * g.stride_w] += d[q];
        });
      }
  }
}

// Runs body(n, grp, col_buffer) for every (image, group) pair, threaded as described above.
template <class Body>
void for_each_image_group(const Conv2dGeometry& g, Body body) {
  const int64_t pairs = g.N * g.groups;
  const int64_t col_floats = g.C_per_group() * g.R * g.S * tile_columns(g);
  const bool outer = pairs >= omp_get_max_threads() && omp_get_max_threads() > 1 &&
                     !omp_in_parallel();
  if (outer) {
#pragma omp parallel firstprivate(team_float_mode)
    {
      float* col = thread_scratch(ScratchSlot::ConvCol, col_floats);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < pairs; ++i) body(i / g.groups, i % g.groups, col);
    }
  } else {
    float* col = thread_scratch(ScratchSlot::ConvCol, col_floats);
    for (int64_t i = 0; i < pairs; ++i) body(i / g.groups, i % g.groups, col);
  }
}

}  // namespace

// 1x1, stride 1, unpadded: the column matrix of an image is x itself (C rows of H*W), so the
// GEMMs read x in place, over the whole image, with no copy (3-8% of ResNet's 1x1 layers).
bool col_is_x(const Conv2dGeometry& g) {
  return g.R == 1 && g.S == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
         g.pad_bottom == 0 && g.pad_left == 0 && g.pad_right == 0;
}

namespace {

// 1x1 stride-1 unpadded layers over a batch of small images (<= 256 positions), forward and
// input gradient: one GEMM per group whose columns are the batch's (image, position) pairs,
// x, y, dy and dx read and written in place as segmented matrices (one segment per image). The filters are packed once per block
// of columns rather than once per image, and the last micro-panel of each image (196 = 12 x 16
// + 4 columns at 14 x 14) is not mostly padding. The GEMM is threaded inside, over the columns.
// Zen 3, 1 thread, N=8, ms, batched / per image, interleaved: 1024 -> 256 at 14 x 14 forward
// 11.0 / 11.5, input gradient 10.7 / 11.1; 256 -> 1024 10.3 / 10.6 and 11.1 / 11.8. Larger
// images stay per image (512 -> 256 at 28 x 28: 30.8 / 25.3; a block of NC columns of x no
// longer fits the caches that one image's did).
bool batch_1x1(const Conv2dGeometry& g) { return col_is_x(g) && g.N > 1 && g.P * g.Q <= 256; }

// For every group: C_g (rows x N*HW, image segments c_stride apart) = op(A_g) (rows x depth)
// * B_g (depth x N*HW, image segments b_stride apart), + row bias and relu; batch_1x1's GEMM.
void gemm_over_batch(const Conv2dGeometry& g, int64_t rows, int64_t depth, bool trans_a,
                     const float* a, const float* b, int64_t b_stride, float* c, int64_t c_stride,
                     const float* bias, bool relu) {
  const int64_t PQ = g.P * g.Q;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const gemm_detail::DenseMatrix ag{a + grp * rows * depth, trans_a ? rows : depth, trans_a};
    const gemm_detail::SegmentedMatrix bg{b + grp * depth * PQ, PQ, PQ, b_stride};
    GemmEpilogue ep;
    ep.row_bias = bias ? bias + grp * rows : nullptr;
    ep.relu = relu;
    gemm_detail::gemm_blocked_run(rows, g.N * PQ, depth, 1.0f, gemm_detail::pack_a_dense(&ag),
                                  gemm_detail::pack_b_segmented(&bg), 0.0f, c + grp * rows * PQ,
                                  PQ, ep, gemm_detail::ColumnSegments{PQ, c_stride});
  }
}

}  // namespace

void forward_im2col(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, nt_max = tile_columns(g);
  if (batch_1x1(g))  // y_g (K_g x N*HW) = W_g * x_g (C_g x N*HW)
    return gemm_over_batch(g, Kg, Cg, false, w, x, g.C * PQ, y, g.K * PQ, bias, relu);
  for_each_image_group(g, [&](int64_t n, int64_t grp, float* col) {
    const float* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
    const float* wg = w + grp * Kg * CRS;
    float* yg = y + (n * g.K + grp * Kg) * PQ;
    GemmEpilogue ep;
    ep.row_bias = bias ? bias + grp * Kg : nullptr;
    ep.relu = relu;
    if (col_is_x(g))
      return sgemm(false, false, Kg, PQ, CRS, 1.0f, wg, CRS, xg, PQ, 0.0f, yg, PQ, ep, "blocked");
    for (int64_t j0 = 0; j0 < PQ; j0 += nt_max) {
      const int64_t nt = std::min(nt_max, PQ - j0);
      im2col_tile(g, xg, j0, nt, col);
      sgemm(false, false, Kg, nt, CRS, 1.0f, wg, CRS, col, nt, 0.0f, yg + j0, PQ, ep, "blocked");
    }
  });
}

// Small images (a tile holds more than one): dcol = W_g^T * dy_g over tiles of the batch's
// columns (n, p, q), so the filters are packed once per tile, not once per image. Image by
// image, the transposed filters (Cg*R*S x Kg) were packed for P*Q columns only (49 at ResNet's
// stage 5): res5_3x3_s2 N=8 took twice its forward's time. The GEMM is threaded inside and
// col2im over channels, one tile at a time.
void backward_data_im2col_batched(const Conv2dGeometry& g, const float* dy, const float* w,
                                  float* dx) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, cols = g.N * PQ;
  const int64_t nt_max = std::min(std::max<int64_t>(64, kColBudget / CRS), cols);
  float* col = thread_scratch(ScratchSlot::ConvCol, CRS * nt_max);
  std::memset(dx, 0, sizeof(float) * g.x_size());
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const gemm_detail::DenseMatrix wt{w + grp * Kg * CRS, CRS, true};
    for (int64_t j0 = 0; j0 < cols; j0 += nt_max) {
      const int64_t nt = std::min(nt_max, cols - j0);
      const gemm_detail::SegmentedMatrix dyg{dy + grp * Kg * PQ, PQ, PQ, g.K * PQ, j0};
      gemm_detail::gemm_blocked_run(CRS, nt, Kg, 1.0f, gemm_detail::pack_a_dense(&wt),
                                    gemm_detail::pack_b_segmented(&dyg), 0.0f, col, nt, {});
      for (int64_t j = j0; j < j0 + nt;) {  // the tile's piece of each image
        const int64_t n = j / PQ, len = std::min((n + 1) * PQ, j0 + nt) - j;
        col2im_tile(g, col + (j - j0), nt, j % PQ, len, dx + (n * g.C + grp * Cg) * g.H * g.W);
        j += len;
      }
    }
  }
}

void backward_data_im2col(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, nt_max = tile_columns(g);
  if (batch_1x1(g))  // dx_g (C_g x N*HW) = W_g^T * dy_g (K_g x N*HW)
    return gemm_over_batch(g, Cg, Kg, true, w, dy, g.K * PQ, dx, g.C * PQ, nullptr, false);
  if (!col_is_x(g) && g.N > 1 && PQ < std::max<int64_t>(64, kColBudget / CRS))
    return backward_data_im2col_batched(g, dy, w, dx);
  for_each_image_group(g, [&](int64_t n, int64_t grp, float* col) {
    float* dxg = dx + (n * g.C + grp * Cg) * g.H * g.W;
    const float* wg = w + grp * Kg * CRS;
    const float* dyg = dy + (n * g.K + grp * Kg) * PQ;
    if (col_is_x(g))  // dx_g (C x HW) = W_g^T * dy_g, no col2im
      return sgemm(true, false, CRS, PQ, Kg, 1.0f, wg, CRS, dyg, PQ, 0.0f, dxg, PQ, {}, "blocked");
    std::memset(dxg, 0, sizeof(float) * Cg * g.H * g.W);
    for (int64_t j0 = 0; j0 < PQ; j0 += nt_max) {
      const int64_t nt = std::min(nt_max, PQ - j0);
      // dcol (CRS x nt) = W_g^T (CRS x Kg) * dy_g[:, j0:j0+nt] (Kg x nt)
      sgemm(true, false, CRS, nt, Kg, 1.0f, wg, CRS, dyg + j0, PQ, 0.0f, col, nt, {}, "blocked");
      col2im_tile(g, col, nt, j0, nt, dxg);
    }
  });
}

void backward_weight_im2col(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, nt_max = tile_columns(g), wsize = g.w_size();
  const int nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t col_floats = CRS * nt_max;
  // 1x1 in place: dW_g = dy_g (Kg x N*PQ) * x_g^T, one GEMM over the batch's positions (the
  // reduction runs across images, so C is stored once per KC block, not once per image).
  // Zen 3, ms, this / per image, interleaved: 1 thread, N=8 at 56x56 (256->64) 14.4 / 16.1,
  // 28x28 12.7 / 14.3, 14x14 12.5 / 13.1, N=1 1.50 / 1.56; 7x7 N=8 10.8 against the implicit
  // GEMM's 11.6. On several threads large images stay per image, a private dW per thread
  // (2 threads, N=8 at 56x56: 8.2 / 7.3; the GEMM's own split, over dW's tiles, packs more).
  if (col_is_x(g) && (nthreads == 1 || g.N < nthreads || PQ <= 1024)) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const gemm_detail::SegmentedMatrix dyg{dy + grp * Kg * PQ, PQ, PQ, g.K * PQ};
      const gemm_detail::SegmentedMatrix xg{x + grp * Cg * PQ, PQ, PQ, g.C * PQ};
      gemm_detail::gemm_blocked_run(Kg, Cg, g.N * PQ, 1.0f, gemm_detail::pack_a_segmented(&dyg),
                                    gemm_detail::pack_b_segmented_t(&xg), 0.0f,
                                    dw + grp * Kg * Cg, Cg, {});
    }
    bias_grad(g, dy, db);
    return;
  }

  // dW_g += dy_g[:, tile] (Kg x nt) * col^T (nt x CRS), over the tiles of one image.
  auto accumulate_image = [&](int64_t n, float* dwacc, float* col) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      const float* dyg = dy + (n * g.K + grp * Kg) * PQ;
      if (col_is_x(g)) {
        sgemm(false, true, Kg, CRS, PQ, 1.0f, dyg, PQ, xg, PQ, 1.0f, dwacc + grp * Kg * CRS, CRS,
              {}, "blocked");
        continue;
      }
      for (int64_t j0 = 0; j0 < PQ; j0 += nt_max) {
        const int64_t nt = std::min(nt_max, PQ - j0);
        im2col_tile(g, xg, j0, nt, col);
        sgemm(false, true, Kg, CRS, nt, 1.0f, dyg + j0, PQ, col, nt, 1.0f,
              dwacc + grp * Kg * CRS, CRS, {}, "blocked");
      }
    }
  };

  std::memset(dw, 0, sizeof(float) * wsize);
  if (nthreads > 1 && g.N >= nthreads) {
    // Each thread sums its images into a private dW; the partials are added at the end.
    float* partials = thread_scratch(ScratchSlot::ConvPartial, wsize * nthreads);
#pragma omp parallel num_threads(nthreads) firstprivate(team_float_mode)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();  // team may be smaller
      float* mine = partials + t * wsize;
      std::memset(mine, 0, sizeof(float) * wsize);
      float* col = thread_scratch(ScratchSlot::ConvCol, col_floats);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < g.N; ++n) accumulate_image(n, mine, col);
      // (implicit barrier: every partial is complete)
#pragma omp for schedule(static)
      for (int64_t i = 0; i < wsize; ++i) {
        float s = 0.0f;
        for (int u = 0; u < team; ++u) s += partials[u * wsize + i];
        dw[i] = s;
      }
    }
  } else {
    float* col = thread_scratch(ScratchSlot::ConvCol, col_floats);
    for (int64_t n = 0; n < g.N; ++n) accumulate_image(n, dw, col);
  }
  bias_grad(g, dy, db);
}

}  // namespace convforge::cpu::conv_detail
