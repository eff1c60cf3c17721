// conv2d forward by Winograd's minimal filtering F(2x2, 3x3), for 3x3 stride-1 dilation-1
// layers: each 2x2 block of outputs from a 4x4 input patch with 16 multiplies per (k, c) pair
// instead of 36, i.e. 2.25x fewer multiply-adds than the direct product (Lavin & Gray 2015).
//
//   U = G g G^T   (filter g, 3x3 -> 4x4)          G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   V = B^T d B   (input patch d, 4x4 -> 4x4)     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   Y = A^T M A   (M = sum over c of U.*V)        A^T = [1 1 1 0; 0 1 -1 -1]
//
// The sum over input channels is 16 GEMMs, one per point xi of the 4x4 transform domain:
// M_xi (K x tiles) = U_xi (K x C) * V_xi (C x tiles), through the blocked GEMM. Tiles (n, i, j)
// are processed in chunks so that V and M stay within a bounded workspace (kBudget floats).
// Other layers (groups, other kernels, strides) go to the implicit GEMM.
#include <omp.h>

#include <algorithm>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {

using gemm_detail::ScratchSlot;
using gemm_detail::thread_scratch;

constexpr int64_t kBudget = int64_t(1) << 22;  // floats of V + M per chunk (16 MiB)

}  // namespace

bool winograd_applies(const Conv2dGeometry& g) {
  return g.R == 3 && g.S == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
         g.dilation_w == 1 && g.groups == 1;
}

void forward_winograd(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  // Inputs or filters with an Inf or NaN: the transforms would spread it over the tile (and
  // Inf - Inf gives NaN), where PyTorch's sums have it only in the outputs it touches.
  if (!winograd_applies(g) || !all_finite(w, g.w_size()) || !all_finite(x, g.x_size()))
    return forward_implicit(g, x, w, bias, y, relu);
  const int64_t C = g.C, K = g.K, P = g.P, Q = g.Q, H = g.H, W = g.W;
  const int64_t th = (P + 1) / 2, tw = (Q + 1) / 2, per_image = th * tw;
  const int64_t tiles = g.N * per_image;
  if (tiles == 0) return;
  const int64_t tc =
      std::max(tw, std::min(tiles, std::max<int64_t>(64, kBudget / (16 * (C + K)))) / tw * tw);
  const bool par = !omp_in_parallel();

  // U[xi][c][k] = (G g G^T)[xi], vectorised along k: the taps of filters (., c) are first laid
  // out tap-major (g9[tap][k]) so that every line below is a loop over contiguous k.
  float* U = thread_scratch(ScratchSlot::WinogradU, 16 * K * C);
  float* V = thread_scratch(ScratchSlot::ConvCol, 16 * C * tc);
  float* M = thread_scratch(ScratchSlot::ConvPartial, 16 * K * tc);
  if (!par) thread_scratch(ScratchSlot::ConvPartial2, 15 * K);
#pragma omp parallel if (par && K * C > 4096) firstprivate(team_float_mode)
  {
    float* g9 = thread_scratch(ScratchSlot::ConvPartial2, 15 * K);
    float* t = g9 + 9 * K;  // rows 1 and 2 of G g: 2 x 3 rows of K
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t k = 0; k < K; ++k)
        for (int j = 0; j < 9; ++j) g9[j * K + k] = w[(k * C + c) * 9 + j];
      for (int j = 0; j < 3; ++j) {
        const float *f0 = g9 + j * K, *f1 = g9 + (3 + j) * K, *f2 = g9 + (6 + j) * K;
        float *t1 = t + j * K, *t2 = t + (3 + j) * K;
        for (int64_t k = 0; k < K; ++k) {
          t1[k] = 0.5f * (f0[k] + f1[k] + f2[k]);
          t2[k] = 0.5f * (f0[k] - f1[k] + f2[k]);
        }
      }
      for (int i = 0; i < 4; ++i) {  // row i of G g: g's row 0, t1, t2, g's row 2
        const float* r = i == 0 ? g9 : i == 1 ? t : i == 2 ? t + 3 * K : g9 + 6 * K;
        const float *r0 = r, *r1 = r + K, *r2 = r + 2 * K;
        float* u0 = U + ((i * 4 + 0) * C + c) * K;
        float* u1 = U + ((i * 4 + 1) * C + c) * K;
        float* u2 = U + ((i * 4 + 2) * C + c) * K;
        float* u3 = U + ((i * 4 + 3) * C + c) * K;
        for (int64_t k = 0; k < K; ++k) {
          u0[k] = r0[k];
          u1[k] = 0.5f * (r0[k] + r1[k] + r2[k]);
          u2[k] = 0.5f * (r0[k] - r1[k] + r2[k]);
          u3[k] = r2[k];
        }
      }
    }
  }

  // Chunks of whole tile rows (n, i): tc tiles = rows_per_chunk * tw.
  const int64_t tile_rows = g.N * th;
  const int64_t rows_per_chunk = std::max<int64_t>(1, tc / tw);
  const int64_t wpad = 2 * tw + 2;  // a padded input row: every tile's 4 columns are inside
  if (!par) thread_scratch(ScratchSlot::ConvPartial2, 12 * wpad);
  for (int64_t r0 = 0; r0 < tile_rows; r0 += rows_per_chunk) {
    const int64_t nr = std::min(rows_per_chunk, tile_rows - r0), nt = nr * tw;
    // V[xi][c][t] = (B^T d B)[xi] for tile t of the chunk, vectorised along the tiles of a
    // row: the rows are split into even and odd columns, so that tile j's columns 2j..2j+3
    // are e[j], o[j], e[j+1], o[j+1].
#pragma omp parallel if (par && C * nt > 4096) firstprivate(team_float_mode)
    {
      float* buf = thread_scratch(ScratchSlot::ConvPartial2, 12 * wpad);
#pragma omp for schedule(static)
      for (int64_t rc = 0; rc < nr * C; ++rc) {
        const int64_t rr = rc / C, c = rc % C, row = r0 + rr, n = row / th, i = row % th;
        const float* xc = x + (n * C + c) * H * W;
        float* e[4];
        float* o[4];
        for (int a = 0; a < 4; ++a) {
          e[a] = buf + a * wpad;
          o[a] = e[a] + wpad / 2;
          const int64_t ih = 2 * i - g.pad_top + a;
          for (int64_t jj = 0; jj < tw + 1; ++jj) {
            const int64_t iw0 = 2 * jj - g.pad_left, iw1 = iw0 + 1;
            const bool in = ih >= 0 && ih < H;
            e[a][jj] = in && iw0 >= 0 && iw0 < W ? xc[ih * W + iw0] : 0.0f;
            o[a][jj] = in && iw1 >= 0 && iw1 < W ? xc[ih * W + iw1] : 0.0f;
          }
        }
        float* be = buf + 4 * wpad;  // B^T d for the 4 rows, even and odd columns
        float* bo = be + 4 * (tw + 1);
        for (int64_t jj = 0; jj < tw + 1; ++jj) {
          be[0 * (tw + 1) + jj] = e[0][jj] - e[2][jj];
          be[1 * (tw + 1) + jj] = e[1][jj] + e[2][jj];
          be[2 * (tw + 1) + jj] = e[2][jj] - e[1][jj];
          be[3 * (tw + 1) + jj] = e[1][jj] - e[3][jj];
          bo[0 * (tw + 1) + jj] = o[0][jj] - o[2][jj];
          bo[1 * (tw + 1) + jj] = o[1][jj] + o[2][jj];
          bo[2 * (tw + 1) + jj] = o[2][jj] - o[1][jj];
          bo[3 * (tw + 1) + jj] = o[1][jj] - o[3][jj];
        }
        for (int a = 0; a < 4; ++a) {  // (B^T d) B: columns of tile j
          const float* ea = be + a * (tw + 1);
          const float* oa = bo + a * (tw + 1);
          float* v0 = V + ((a * 4 + 0) * C + c) * nt + rr * tw;
          float* v1 = V + ((a * 4 + 1) * C + c) * nt + rr * tw;
          float* v2 = V + ((a * 4 + 2) * C + c) * nt + rr * tw;
          float* v3 = V + ((a * 4 + 3) * C + c) * nt + rr * tw;
          for (int64_t j = 0; j < tw; ++j) {
            v0[j] = ea[j] - ea[j + 1];
            v1[j] = oa[j] + ea[j + 1];
            v2[j] = ea[j + 1] - oa[j];
            v3[j] = oa[j] - oa[j + 1];
          }
        }
      }
    }
    // M_xi (K x tiles) = U_xi^T (K x C) * V_xi (C x tiles); both operands pack by contiguous
    // copies (U is stored c-major, so its transpose gives MR consecutive values per c).
    for (int64_t xi = 0; xi < 16; ++xi) {
      const gemm_detail::DenseMatrix a{U + xi * C * K, K, true}, b{V + xi * C * nt, nt, false};
      gemm_detail::gemm_blocked_run(K, nt, C, 1.0f, gemm_detail::pack_a_dense(&a),
                                    gemm_detail::pack_b_dense(&b), 0.0f, M + xi * K * nt, nt, {});
    }
    // y block = A^T M A, + bias, relu, vectorised along the tiles of a row; the two output
    // columns of each tile are interleaved on the way out, clipped at P and Q.
#pragma omp parallel if (par && K * nt > 4096) firstprivate(team_float_mode)
    {
      float* buf = thread_scratch(ScratchSlot::ConvPartial2, 12 * wpad);
#pragma omp for schedule(static)
      for (int64_t kr = 0; kr < K * nr; ++kr) {
        const int64_t k = kr / nr, rr = kr % nr, row = r0 + rr, n = row / th, i = row % th;
        const float bk = bias ? bias[k] : 0.0f;
        float* s = buf;  // s[ii][b][j]: A^T M, 2 x 4 rows of tw
        for (int b = 0; b < 4; ++b) {
          const float* m0 = M + ((0 * 4 + b) * K + k) * nt + rr * tw;
          const float* m1 = M + ((1 * 4 + b) * K + k) * nt + rr * tw;
          const float* m2 = M + ((2 * 4 + b) * K + k) * nt + rr * tw;
          const float* m3 = M + ((3 * 4 + b) * K + k) * nt + rr * tw;
          float* s0 = s + b * tw;
          float* s1 = s + (4 + b) * tw;
          for (int64_t j = 0; j < tw; ++j) {
            s0[j] = m0[j] + m1[j] + m2[j];
            s1[j] = m1[j] - m2[j] - m3[j];
          }
        }
        float* oe = s + 8 * tw;  // one output row: even and odd columns
        float* oo = oe + tw;
        for (int ii = 0; ii < 2; ++ii) {
          const int64_t p = 2 * i + ii;
          if (p >= P) break;
          const float *q0 = s + (ii * 4 + 0) * tw, *q1 = s + (ii * 4 + 1) * tw,
                      *q2 = s + (ii * 4 + 2) * tw, *q3 = s + (ii * 4 + 3) * tw;
          for (int64_t j = 0; j < tw; ++j) {
            float a0 = q0[j] + q1[j] + q2[j] + bk, a1 = q1[j] - q2[j] - q3[j] + bk;
            if (relu) {
              a0 = a0 < 0.0f ? 0.0f : a0;
              a1 = a1 < 0.0f ? 0.0f : a1;
            }
            oe[j] = a0;
            oo[j] = a1;
          }
          float* yr = y + ((n * K + k) * P + p) * Q;
          for (int64_t j = 0; j < Q / 2; ++j) {
            yr[2 * j] = oe[j];
            yr[2 * j + 1] = oo[j];
          }
          if (Q % 2) yr[Q - 1] = oe[Q / 2];
        }
      }
    }
  }
}

}  // namespace convforge::cpu::conv_detail
