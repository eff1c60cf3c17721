// conv2d forward by Winograd's minimal filtering F(m x m, 3x3), m = 2 or 4, for 3x3 stride-1
// dilation-1 layers (Lavin & Gray 2015): each m x m block of outputs from an (m+2) x (m+2)
// input patch, with (m+2)^2 multiplies per (k, c) pair instead of 9 m^2: 2.25x fewer
// multiply-adds for F(2x2,3x3) ("winograd"), 4x fewer for F(4x4,3x3) ("winograd_4x4").
//
//   U = G g G^T   (filter g, 3x3 -> a x a, a = m + 2)
//   V = B^T d B   (input patch d, a x a)
//   Y = A^T M A   (M = sum over c of U.*V; m x m outputs)
//
// with the matrices of the points 0, +-1 (m = 2) and 0, +-1, +-2 (m = 4) below, the ones of
// Lavin & Gray's paper and of NNPACK / oneDNN. F(4x4,3x3)'s larger constants cost accuracy
// (about 6x F(2x2,3x3)'s error in fp32: 2-3e-6 relative to the output's norm).
//
// The sum over input channels is a^2 GEMMs, one per point xi of the transform domain:
// M_xi (K x tiles) = U_xi (K x C) * V_xi (C x tiles), through the blocked GEMM. Tiles (n, i, j)
// are processed in chunks so that V and M stay within a bounded workspace (kBudget floats).
// The transforms run along the tiles of a tile row, each line a loop over contiguous tiles,
// with the matrices' entries compile-time constants (zeros skipped, ones folded).
// Other layers (groups, other kernels, strides) go to the implicit GEMM.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#include "cpu/conv/conv2d_winograd_impl.h"
}  // namespace

CF_WINOGRAD_ENTRY_POINTS(scalar)

bool winograd_applies(const Conv2dGeometry& g) {
  return g.R == 3 && g.S == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
         g.dilation_w == 1 && g.groups == 1;
}

namespace {
// Inputs or filters with an Inf or NaN: the transforms would spread it over the tile (and
// Inf - Inf gives NaN), where PyTorch's sums have it only in the outputs it touches.
void forward_winograd_isa(int m, const Conv2dGeometry& g, const float* x, const float* w,
                          const float* bias, float* y, bool relu) {
  if (!winograd_applies(g) || !all_finite(w, g.w_size()) || !all_finite(x, g.x_size()))
    return forward_implicit(g, x, w, bias, y, relu);
  CF_ISA_CALL(forward_winograd_tiles, m, g, x, w, bias, y, relu)
}
}  // namespace

void forward_winograd(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  forward_winograd_isa(2, g, x, w, bias, y, relu);
}

void forward_winograd_4x4(const Conv2dGeometry& g, const float* x, const float* w,
                          const float* bias, float* y, bool relu) {
  forward_winograd_isa(4, g, x, w, bias, y, relu);
}

}  // namespace convforge::cpu::conv_detail
