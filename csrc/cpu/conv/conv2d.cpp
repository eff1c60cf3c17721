// conv2d entry points: the algo switch, "auto"'s choice by shape, and the kernel lists.
#include "cpu/conv/conv2d.h"

#include <omp.h>

#include <stdexcept>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/cpu_features.h"
#include "cpu/machine.h"

namespace convforge::cpu {
namespace conv_detail {


void forward_direct(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  CF_ISA_CALL(forward_direct, g, x, w, bias, y, relu)
}

void forward_direct_k(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  CF_ISA_CALL(forward_direct_k, g, x, w, bias, y, relu)
}

namespace {
void backward_weight_direct_isa(const Conv2dGeometry& g, const float* dy, const float* x,
                                float* dw) {
  CF_ISA_CALL(backward_weight_direct, g, dy, x, dw)
}
void backward_weight_direct_n_isa(const Conv2dGeometry& g, const float* dy, const float* x,
                                  float* dw) {
  CF_ISA_CALL(backward_weight_direct_n, g, dy, x, dw)
}
}  // namespace

bool backward_weight_direct_applies(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1;
}

// Whether n floats are all finite. The direct weight gradient multiplies the zeros past each
// output row (its flat positions) by real inputs, and Winograd's transforms add and subtract
// neighbouring values: an Inf or NaN there would turn into NaN where the true sum has an Inf
// (0 * Inf, Inf - Inf), or spread to outputs it does not touch. Such inputs take the implicit
// GEMM, which only multiplies the products of the sum. One read: a few percent of a kernel.
bool all_finite(const float* p, int64_t n) {
  float acc = 0.0f;  // 0 * Inf and 0 * NaN are NaN, and a NaN term makes the sum NaN
  const bool par = !omp_in_parallel() && n > (1 << 18);
  // No firstprivate(team_float_mode) (cpu/kernel_env.h): x * 0 is 0, Inf or NaN in any mode.
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (par)
  for (int64_t i = 0; i < n; ++i) acc += p[i] * 0.0f;
  return acc == 0.0f;
}

// Strided layers, and inputs with Inf or NaN: the implicit GEMM.
void backward_weight_direct(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db) {
  if (!backward_weight_direct_applies(g) || !all_finite(x, g.x_size()))
    return backward_weight_implicit(g, dy, x, dw, db);
  backward_weight_direct_isa(g, dy, x, dw);
  bias_grad(g, dy, db);
}

void backward_weight_direct_n(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* db) {
  backward_weight_direct_n_isa(g, dy, x, dw);
  bias_grad(g, dy, db);
}

// This core's share of the L3, in floats (8 MiB where the caches were not read).
int64_t l3_share_floats() {
  const MachineDescription& m = machine();
  const int64_t share = m.l3_bytes > 0 ? m.l3_bytes / std::max(1, m.l3_shared_by) : int64_t(8) << 20;
  return share / int64_t(sizeof(float));
}

int64_t direct_n_unit_floats() {
  const int64_t l2 = machine().l2_bytes;
  return (l2 > 0 ? l2 : int64_t(512) << 10) / 2 / int64_t(sizeof(float));
}

bool backward_data_direct_n_applies(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1;
}

// Strided layers: im2col + col2im.
void backward_data_direct_n(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  if (!backward_data_direct_n_applies(g)) return backward_data_im2col(g, dy, w, dx);
  CF_ISA_CALL(backward_data_direct_n, g, dy, w, dx)
}

// auto's choices. Measurements: docs/cpu_tuning.md (1 thread: Zen 4 AVX-512, Zen 3 AVX2; the
// Zen 3 tables from benchmarks/bench_algos.py, benchmarks/results/algos_zen3_1t.md). A rule is
// kept only where both machines agree, or where only one was measured.
//
// Forward:
//  - K/groups <= 6 (LeNet 1->6, depthwise): direct, vectorised along the output row; the GEMM's
//    micro-tile would be mostly padding (LeNet c1 N=256, ms, direct / implicit: Zen 4 1.1 / 3.2,
//    Zen 3 4.4 / 8.5).
//  - 8 <= K/groups <= 32 with few taps (C/groups*R*S <= 512): direct_k, filters along the vector,
//    no packing (LeNet c3 N=256, direct_k / direct / implicit: Zen 4 1.5 / 2.1 / 4.5, Zen 3
//    3.5 / 5.7 / 6.4).
//  - Fewer than 64 taps (first layers: VGG conv1_1's 27): im2col. The implicit GEMM's gather
//    pays its per-row cost for a reduction too short to hide it; im2col copies whole rows.
//    Zen 3, one process, ms, im2col / implicit: VGG conv1_1 N=1 5.9 / 6.5 (2 threads 6.3 /
//    7.6; six earlier runs 1.02-1.27x in im2col's favour), N=8 74 / 82 (2 threads 41 / 72);
//    1 -> 64 5x5 at 28 N=8 0.42 / 0.46; 3 -> 64 3x3 at 32 N=16 2.1 / 2.3 (2 threads 1.3 / 3.1).
//  - AVX2 only (its direct_k holds 16 filters x 6 positions in two vectors each; measured on
//    Zen 3 alone): also for 8..192 filters per group with >= 256 taps, when the zero-padded
//    image of a group (the copy each thread reads its taps from) fits 1 MiB. Direct_k /
//    implicit, ms: AlexNet conv1 N=16 (11x11 stride 4) 46 / 61, conv2 N=16 98 / 126, ResNet
//    res2_3x3 N=8 39 / 51 (Winograd 55), res3_3x3 N=8 27 / 31; VGG conv1_2 (224x224, a 13 MB
//    copy) stays with Winograd: 133 against 69. Also for first layers with few channels and wide
//    kernels (S >= 5, >= 64 taps), where the implicit GEMM gathers short rows per tap: direct_k /
//    implicit / im2col, ms (Zen 3, 1 thread, one process): ResNet's stem 3 -> 64 7x7 stride 2 at
//    224 x 224 N=1 3.8 / 5.5 / 5.7, N=8 29 / 45 / 39; 3 -> 48 7x7 s2 at 128 N=8 8.8 / 13.7 /
//    13.6; 3 -> 64 5x5 at 64 N=8 5.7 / 9.1 / 6.2, stride 2 at 112 N=8 4.3 / 5.3 / 5.0; 3 -> 96
//    11x11 s4 (no padding) N=8 29 / 38 / 46. Left out: 1 -> 64 5x5 (25 taps) at 28 N=8 0.50 /
//    0.48 / 0.42; 3x3 layers with 144-216 taps are mixed (16 -> 64 at 56 N=8 10.9 / 11.4 / 9.5,
//    24 -> 64 7.8 / 9.1 / 8.1) and stay with the rules below.
//  - 3x3 stride 1 with C, K >= 64 and >= 128 tiles of 4x4 outputs: Winograd F(4x4,3x3)
//    (4x fewer multiply-adds; its 36 GEMMs need that many tiles to pay for the transforms).
//    Zen 3, 1 thread, ms, F(4x4) / F(2x2) / the previous choice (`bench_algos.py --cases
//    "res[2-5]_3x3 |vgg" --rounds 2`), forward and input gradient: VGG conv1_2 N=1 33 / 55 /
//    52 (winograd) and 32 / 48 / 55; conv3_2 N=8 172 / 327 / 288 and 210 / 333 / 350; ResNet
//    res2_3x3 N=1 3.8 / 5.0 / 5.0 (direct_k) and 2.6 / 3.3 / 3.3; res2_3x3 N=8 19 / 23 / 27
//    and 29 / 31 / 42; res3_3x3 N=8 22 / 23 / 32 and 15 / 21 / 25; res4_3x3 N=8 (128 tiles)
//    17 / 20 / 20 and 17 / 20 / 19. From 49 tiles with C, K >= 128: res3_3x3 N=1 (28 x 28)
//    4.3 / 4.0 / 4.6 (direct_k) and 2.8 / 3.3 / 3.9, VGG conv4_2 N=1 50 / 51 and 56 / 53
//    (F(2x2) a tie). Left out: conv5_2 N=1 (16 tiles; 28 / 20 / 14),
//    res5_3x3 N=8 (32 tiles of which 30% clipped; 34 / 26 / 26). Its rounding error is about
//    6x F(2x2)'s (relative norm 2-3e-6 against 3-5e-7 for 64..1024 channels).
//  - 3x3 stride 1 with C, K >= 64: Winograd F(2x2,3x3) where its 16 GEMMs are wide and deep
//    enough to pay for the transforms: >= 256 output tiles, and K >= 256 or >= 512 tiles per
//    image (the transforms cost O(C tiles) against the GEMMs' O(C K tiles)). Winograd / implicit:
//    VGG conv1_2..conv4_2 N=1 Zen 4 41/56, 30/43, 27/39, 30/38, Zen 3 66/90, 45/65, 42/55,
//    59/58; conv5_2 N=8 Zen 4 57/82, Zen 3 78/102; ResNet res4_3x3 N=8 (392 tiles, K 256) 24/29.
//    Left to implicit: conv5_2 N=1 (49 tiles; Zen 4 13/12, Zen 3 33/17), res5_3x3 N=8 (128
//    tiles; Zen 3 50/33), res3_3x3 N=8 (K 128, 196 tiles per image; Zen 3 62/46). With C and
//    K >= 256, from 196 tiles: VGG conv4_2 N=1 (28 x 28, 512 channels) forward 47 / 48, input
//    gradient 40 / 47 (and im2col, the previous choice there, 55; interleaved, 3 rounds).
//  - otherwise the implicit GEMM.
//  - 1x1 layers with >= 196 output positions: im2col (per image, x itself is the column
//    matrix when stride 1 and unpadded: packed row by row like a dense B; the implicit GEMM's
//    panel-by-panel gather reads 16 floats per channel row, rows 12 KiB apart). Zen 3, ms,
//    im2col / implicit: ResNet res2_1x1_reduce N=8 22 / 49, res2_1x1_expand N=8 17 / 30,
//    res3_1x1_reduce_first N=1 3.5 / 9.2, res3_proj_s2 N=8 29 / 44; 7x7 stays implicit:
//    res5_1x1_reduce N=8 18 / 15. Since im2col reads x in place (stride 1, unpadded) and
//    batches small images into one GEMM, it takes those 1x1 layers at any size: 7 x 7, ms,
//    im2col / implicit, forward and input gradient: 2048 -> 512 N=1 2.3 / 2.5 and 2.1 / 3.3,
//    N=8 11.6 / 13.2 and 13.8 / 13.1; 512 -> 2048 N=8 13.5 / 13.2 and 14.8 / 18.5.
ForwardFn forward_auto_choice(const Conv2dGeometry& g) {
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S;
  if (g.R == 1 && g.S == 1 && g.groups == 1 && (g.P * g.Q >= 196 || col_is_x(g)))
    return forward_im2col;
  if (Kg <= 6) return forward_direct;
  if (Kg >= 8 && Kg <= 32 && CRS <= 512) return forward_direct_k;
  if (CRS < 64) return forward_im2col;
  const int64_t tiles4 = g.N * ((g.P + 3) / 4) * ((g.Q + 3) / 4);
  if (winograd_applies(g) && g.C >= 64 && g.K >= 64 &&
      (tiles4 >= 128 || (tiles4 >= 49 && g.C >= 128 && g.K >= 128)))
    return forward_winograd_4x4;
  if (simd_level() == SimdLevel::AVX2 && Kg >= 8 && Kg <= 192 &&
      (CRS >= 256 || (g.S >= 5 && CRS >= 64)) &&
      g.C_per_group() * (g.H + g.pad_top + g.pad_bottom) * (g.W + g.pad_left + g.pad_right) <=
          (int64_t(1) << 18))
    return forward_direct_k;
  const int64_t per_image = ((g.P + 1) / 2) * ((g.Q + 1) / 2), tiles = g.N * per_image;
  if (winograd_applies(g) && g.C >= 64 && g.K >= 64 &&
      ((tiles >= 256 && (g.K >= 256 || per_image >= 512)) ||
       (tiles >= 196 && g.C >= 256 && g.K >= 256)))
    return forward_winograd;
  return forward_implicit;
}

void forward_auto(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                  float* y, bool relu) {
  forward_auto_choice(g)(g, x, w, bias, y, relu);
}

// Weight gradient: direct for few filters and taps (LeNet) and for wide outputs (Q >= 48: the
// padded rows waste little) with <= 1152 taps (Zen 3, implicit / direct: VGG conv3_2, 2304
// taps, N=1 53 / 62, N=8 499 / 506 and 417 / 487; conv2_2, 1152, N=1 56 / 56), except 1x1 layers with >= 196 output positions or read in place,
// where im2col's GEMMs need no gather (Zen 3, ms, im2col / direct or implicit: res2_1x1_expand
// N=8 16.6 / 25.5, res4_1x1_reduce N=8 15.9 / 19.0, res5_1x1_reduce_first N=8 24.6 / 30.6; 7x7
// images since one GEMM runs over the batch: res5 2048->512 N=8 10.8 / 11.6, N=1 2.0 / 2.3,
// 512->2048 N=8 10.4 / 10.6; this rule comes first: batched CIFAR-sized 1x1 layers, im2col /
// direct_n, N=64 16->64 at 8x8 0.19 / 0.24, N=128 64->64 at 16x16 6.9 / 7.5); the implicit GEMM
// for small images with many channels. Implicit / direct: VGG conv1_2 N=1 Zen 4 65 / 40,
// conv3_2 N=1 42 / 37, conv4_2 N=1 39 / 43, conv5_2 N=1 9.8 / 17; LeNet c3 N=256 Zen 4 6.8 /
// 2.2, Zen 3 8.5 / 5.5.
//
// direct_n (vectorised along the batch) for batches of at least one vector of images with
// output rows narrower than 32 (where the flat-position kernel wastes >= 6% of its products on
// the columns past each row), >= 64 positions per image (fewer: the per-block overheads and
// horizontal sums dominate) and <= 576 taps per filter. Zen 3, 1 thread, ms, direct_n / direct
// / implicit: LeNet c3 N=256 2.4 / 4.8 / -, N=32 0.42 / 0.57 / 0.73; CIFAR-sized 3x3 layers
// N=64: 16->32 at 8x8 1.00 / 1.23 / 2.40, N=128 64->64 at 16x16 37 / 59 / 51; left out:
// 128->128 at 8x8 (1152 taps) 25 / 41 / 23, 256->256 at 4x4 61 / 51 / 30, 3->32 at 32x32
// 4.3 / 3.6 / -, AlexNet conv1 N=16 77 / - / 38-42 (copies of 227-wide images). The copies of
// one block of images must stay within 4x the L2 (2 MiB on Zen 3): ResNet's res3_proj_s2 N=8
// (1x1 stride 2 over 256 x 56 x 56, 25 MiB a block) took 309 ms against 39 (implicit).
// Also for larger layers with many taps (>= 400 positions, >= 576 taps), whose copies of a block
// stay within this core's share of the L3 (16 MiB here): Zen 3, 1 thread, direct_n / best other,
// ResNet res2_3x3 N=8 (13 MiB a block) 25.1 / 29.6 (direct), res3_3x3 N=8 (7 MiB) 26.6 / 32.2
// (implicit), AlexNet conv2 N=16 88-108 / 92-113 (implicit); left out by the L3 bound: VGG
// conv3_2 N=8 (27 MiB) 1370 / 417, conv4_2 N=8 (27 MiB) 631 / 448; by positions: res4_3x3 N=8
// (196) 29-31 / 26-29 (bench_algos.py).
namespace {
// Images per vector of direct_n (CF_BW_V of each ISA's conv2d_direct*.cpp).
int64_t batch_lanes() {
  return simd_level() == SimdLevel::AVX512 ? 16 : simd_level() == SimdLevel::AVX2 ? 8 : 4;
}
}  // namespace

BackwardWeightFn backward_weight_auto_choice(const Conv2dGeometry& g) {
  const int64_t V = batch_lanes(), PQ = g.P * g.Q, CRS = g.C_per_group() * g.R * g.S;
  if (g.R == 1 && g.S == 1 && ((g.groups == 1 && PQ >= 196) || col_is_x(g)))
    return backward_weight_im2col;
  const int64_t copies = (g.C * (g.H + g.pad_top + g.pad_bottom) * (g.W + g.pad_left + g.pad_right) +
                          g.K * PQ) * V;  // direct_n's copies of one block of images
  if (g.N >= V && PQ >= 64 &&
      ((g.Q < 32 && CRS <= 576 && copies <= 8 * direct_n_unit_floats()) ||  // 4x the L2
       (PQ >= 400 && CRS >= 576 && copies <= l3_share_floats())))
    return backward_weight_direct_n;
  const bool small = g.K_per_group() <= 32 && CRS <= 512;
  if (backward_weight_direct_applies(g) && (small || (g.Q >= 48 && CRS <= 1152)))
    return backward_weight_direct;
  return backward_weight_implicit;
}

namespace {

bool always(const Conv2dGeometry&) { return true; }
bool never(const Conv2dGeometry&) { return false; }

void backward_data_implicit(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_implicit);
}
void backward_data_direct(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_direct);
}
void backward_data_direct_k(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_direct_k);
}
void backward_data_winograd(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_winograd);
}
void backward_data_winograd_4x4(const Conv2dGeometry& g, const float* dy, const float* w,
                                float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_winograd_4x4);
}
bool backward_data_winograd_applies(const Conv2dGeometry& g) {
  return backward_data_implicit_applies(g) && winograd_applies(g);
}
void backward_data_auto(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_auto_choice(g)(g, dy, w, dx);
}
void backward_weight_auto(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                          float* db) {
  backward_weight_auto_choice(g)(g, dy, x, dw, db);
}

}  // namespace

// Input gradient: strided layers take im2col + col2im. Stride 1: the transposed forward through
// the forward's choice for the transposed geometry (C and K swapped), except where that choice is
// the implicit GEMM and im2col's per-image GEMMs are wide: 1x1 layers with >= 196 positions
// (no col2im overlap; Zen 3, ms, im2col / implicit: res2_1x1_expand N=8 22 / 44, res3_1x1_expand
// N=8 40 / 64, res4_1x1_expand N=8 18 / 25; 7x7 stays implicit: res5_1x1_reduce N=8 87 / 31) and
// larger kernels with >= 729 positions (res3_3x3 N=8 67 / 83, AlexNet conv2 N=16 116 / 177),
// and batches of at most 256 positions in all (small images at N=1: the implicit GEMM has that
// few columns, while im2col's W^T dy has C*R*S rows). Zen 3, ms, im2col / implicit, 1 thread
// (bench_algos.py --rounds 2, then one process): VGG conv5_2 N=1 13.4 / 14.4, res4_3x3 N=1
// 4.3 / 5.0, res5_3x3 N=1 6.2 / 7.4, 512 -> 512 at 7 x 7 N=2 10.2 / 11.5, 384 -> 256 at 13 x 13
// N=1 5.8 / 6.6; 2 threads 8.9 / 9.8, 2.8 / 3.3, 7.5 / 8.4, 3.1 / 3.2. Losses inside the rule:
// res4_3x3 N=1 on 2 threads 2.11 / 1.95, 256 -> 256 at 7 x 7 N=4 on 1 thread 6.2 / 6.0. Left to
// implicit: res5_3x3 N=8 (392 positions) 41 / 32.
// LeNet c3 N=256 (transposed 16->6: direct) Zen 4 2.3 ms against im2col 4.9, Zen 3 5.6 / 7.2.
//
// direct_n (along the batch, only the taps that reach dy) for stride 1, >= one vector of images
// and <= 6 input channels per group (the transposed forward's filters: few, and half its
// products with padding). Zen 3, 1 thread, ms, direct_n / auto's previous choice: LeNet c3
// N=256 4.6 / 8.2 (direct), N=32 0.49 / 0.88, LeNet c1 N=256 5.0 / 8.5, CIFAR 3->32 at 32x32
// N=64 5.5 / 7.7; left out: 16->32 at 8x8 N=64 0.83 / 0.64, 64->64 at 16x16 N=128 91 / 51.
BackwardDataFn backward_data_auto_choice(const Conv2dGeometry& g) {
  if (backward_data_direct_n_applies(g) && g.N >= batch_lanes() && g.C_per_group() <= 6)
    return backward_data_direct_n;
  if (!backward_data_implicit_applies(g)) return backward_data_im2col;
  const ForwardFn f = forward_auto_choice(transposed_geometry(g));
  if (f == forward_direct) return backward_data_direct;
  if (f == forward_direct_k) return backward_data_direct_k;
  if (f == forward_winograd) return backward_data_winograd;
  if (f == forward_winograd_4x4) return backward_data_winograd_4x4;
  const int64_t PQ = g.P * g.Q;
  if (g.groups == 1 &&
      ((g.R * g.S == 1 && (PQ >= 196 || col_is_x(g))) || PQ >= 729 || g.N * PQ <= 256))
    return backward_data_im2col;
  return backward_data_implicit;
}

// The one table per op: dispatch, the unknown-algo error, algos() and the tests'
// parametrisation (through _C.algos) all read these. `applies` says where an algo runs as
// itself; elsewhere it hands the call to the fallback its description names.
const std::vector<ConvForwardAlgo>& conv2d_forward_table() {
  static const std::vector<ConvForwardAlgo> t = {
      {{"reference", "reference", "seven plain nested loops, one output at a time",
        "cpu/conv/conv2d_reference.cpp", "every geometry"},
       forward_reference, always},
      {{"im2col", "production",
        "column matrix for a bounded tile of output positions, then the blocked GEMM with bias "
        "and relu in its epilogue (1x1 stride-1 unpadded layers: x itself, read in place)",
        "cpu/conv/conv2d_im2col.cpp", "every geometry"},
       forward_im2col, always},
      {{"implicit", "production",
        "implicit GEMM: im2col gathered straight into the GEMM's packed B panels, no column "
        "matrix",
        "cpu/conv/conv2d_implicit.cpp", "every geometry"},
       forward_implicit, always},
      {{"direct", "production",
        "direct loops with a filters x output-columns register block, vectorised along the row; "
        "for small C/groups*R*S (LeNet 1->6, VGG 3->64, depthwise)",
        "cpu/conv/conv2d_direct_impl.h", "every geometry"},
       forward_direct, always},
      {{"direct_k", "production",
        "direct loops vectorised along the filters (16 per zmm) with a block of output positions "
        "in registers, over a zero-padded copy of the image: for few input taps and >= 16 "
        "filters (LeNet 6->16)",
        "cpu/conv/conv2d_direct_impl.h", "every geometry"},
       forward_direct_k, always},
      {{"winograd", "production",
        "Winograd F(2x2,3x3) for 3x3 stride-1 layers: input/filter/output transforms around 16 "
        "blocked GEMMs over tile chunks (2.25x fewer multiply-adds); other layers: implicit",
        "cpu/conv/conv2d_winograd.cpp", "3x3, stride 1, dilation 1 (else implicit)"},
       forward_winograd, winograd_applies},
      {{"winograd_4x4", "production",
        "Winograd F(4x4,3x3) for 3x3 stride-1 layers: 6x6 transforms around 36 blocked GEMMs "
        "over tile chunks (4x fewer multiply-adds; larger transform constants, about 6x "
        "F(2x2,3x3)'s rounding error); other layers: implicit",
        "cpu/conv/conv2d_winograd.cpp", "3x3, stride 1, dilation 1 (else implicit)"},
       forward_winograd_4x4, winograd_applies},
      {{"auto", "production",
        "im2col for 1x1 layers with >= 196 output positions or read in place (stride 1, unpadded); direct for K/groups <= 6 (LeNet c1, depthwise); direct_k for 8..32 filters per group and "
        "C/groups*R*S <= 512 (LeNet c3); im2col for < 64 taps (VGG conv1_1); on AVX2 for 8..192 filters per group with >= 256 "
        "taps, or >= 64 taps and S >= 5 (first layers: ResNet's 7x7 stem), and a padded image "
        "per group <= 1 MiB (AlexNet conv1/2); winograd_4x4 for 3x3 "
        "stride-1 layers with C, K >= 64 and >= 128 tiles of 4x4 outputs, or >= 49 with C, K >= "
        "128 (checked before the "
        "AVX2 direct_k rule); winograd for 3x3 stride-1 layers with C, K >= 64, >= "
        "256 output tiles and K >= 256 or >= 512 tiles per image (or >= 196 tiles with C, K >= "
        "256); else implicit (measured: "
        "docs/cpu_tuning.md)",
        "cpu/conv/conv2d.cpp", "every geometry"},
       forward_auto, always},
  };
  return t;
}

const std::vector<ConvBackwardAlgo>& conv2d_backward_table() {
  static const std::vector<ConvBackwardAlgo> t = {
      {{"reference", "reference",
        "plain loops: data as the forward scatter, weight as one sum per filter tap",
        "cpu/conv/conv2d_reference.cpp", "every geometry"},
       backward_data_reference, backward_weight_reference, always, always},
      {{"im2col", "production",
        "data: W^T * dy into a bounded column tile, then col2im; weight: dy * col^T per tile, "
        "per-thread partial dW summed at the end (1x1 read in place: dy * x^T, one GEMM over "
        "the batch)",
        "cpu/conv/conv2d_im2col.cpp", "every geometry"},
       backward_data_im2col, backward_weight_im2col, always, always},
      {{"implicit", "production",
        "implicit GEMM over the whole batch, no column matrix: weight = dy * col^T with col^T "
        "gathered into the B panels; data (stride 1) = the forward implicit GEMM on rotated, "
        "transposed filters (strided layers: im2col's path)",
        "cpu/conv/conv2d_implicit.cpp", "weight: every geometry; data: stride 1 (else im2col)"},
       backward_data_implicit, backward_weight_implicit, backward_data_implicit_applies, always},
      {{"direct", "production",
        "weight: stride-1 direct loops over zero-padded copies, a filters x taps register block "
        "of vector sums over output positions (strided: implicit); data: the transposed forward "
        "through the direct kernel (strided: im2col)",
        "cpu/conv/conv2d_direct_impl.h", "stride 1 (else implicit / im2col)"},
       backward_data_direct, backward_weight_direct, backward_data_implicit_applies,
       backward_weight_direct_applies},
      {{"direct_n", "production",
        "weight: direct loops vectorised along the batch (a vector holds one value of V "
        "images), over transposed zero-padded copies of each block of V images: no wasted "
        "products, any stride and dilation. Data (stride 1): the same along the batch, each "
        "input position summing only the filter taps that reach dy (no products with padding); "
        "strided: im2col. For small images and large batches (LeNet)",
        "cpu/conv/conv2d_direct_impl.h", "weight: every geometry; data: stride 1 (else im2col)"},
       backward_data_direct_n, backward_weight_direct_n, backward_data_direct_n_applies, always},
      {{"direct_k", "production",
        "data: the transposed forward through direct_k (filters along the vector; for 8..32 "
        "input channels per group and few taps); strided: im2col. Weight: the implicit GEMM",
        "cpu/conv/conv2d_direct_impl.h", "data: stride 1 (else im2col); weight: implicit's"},
       backward_data_direct_k, backward_weight_implicit, backward_data_implicit_applies, never},
      {{"winograd", "production",
        "data: the transposed forward through Winograd F(2x2,3x3) (3x3 stride-1 layers; else "
        "implicit's path). Weight: the implicit GEMM",
        "cpu/conv/conv2d_winograd.cpp", "data: 3x3, stride 1, dilation 1; weight: implicit's"},
       backward_data_winograd, backward_weight_implicit, backward_data_winograd_applies, never},
      {{"winograd_4x4", "production",
        "data: the transposed forward through Winograd F(4x4,3x3) (3x3 stride-1 layers; else "
        "implicit's path). Weight: the implicit GEMM",
        "cpu/conv/conv2d_winograd.cpp", "data: 3x3, stride 1, dilation 1; weight: implicit's"},
       backward_data_winograd_4x4, backward_weight_implicit, backward_data_winograd_applies,
       never},
      {{"auto", "production",
        "data: direct_n for stride 1, >= 1 vector of images and <= 6 input channels per group; "
        "strided: im2col; stride 1: the transposed forward through auto's forward choice, "
        "or im2col for 1x1 layers that are wide (>= 196 positions) or read in place, for large (>= 729) "
        "layers and for <= 256 positions over the batch; weight: im2col for 1x1 with >= 196 positions or read in place (one GEMM over "
        "the batch); direct_n for >= 1 vector of images with >= 64 positions and either Q < 32, "
        "<= 576 taps and a block's copies <= 2 MiB, or >= 400 positions, >= 576 taps and a "
        "block's copies within this core's L3 share; direct for stride 1 with K/groups <= 32 "
        "and C/groups*R*S <= 512, or Q >= 48 and <= 1152 taps; else implicit "
        "(docs/cpu_tuning.md)",
        "cpu/conv/conv2d.cpp", "every geometry"},
       backward_data_auto, backward_weight_auto, always, always},
  };
  return t;
}

}  // namespace conv_detail

namespace {

template <class Table>
const typename Table::value_type& find_algo(const Table& table, const char* op,
                                            const std::string& algo) {
  for (const auto& a : table)
    if (a.info.name == algo) return a;
  std::string choices;
  for (const auto& a : table) choices += (choices.empty() ? "'" : ", '") + a.info.name + "'";
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo + "'; expected one of " +
                              choices);
}

template <class Table>
std::vector<KernelInfo> infos(const Table& table) {
  std::vector<KernelInfo> out;
  for (const auto& a : table) out.push_back(a.info);
  return out;
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo, bool relu) {
  find_algo(conv_detail::conv2d_forward_table(), "conv2d", algo).fn(g, x, w, bias, y, relu);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo) {
  find_algo(conv_detail::conv2d_backward_table(), "conv2d_backward", algo).data(g, dy, w, dx);
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo) {
  find_algo(conv_detail::conv2d_backward_table(), "conv2d_backward", algo).weight(g, dy, x, dw, db);
}

std::vector<KernelInfo> conv2d_forward_algos() { return infos(conv_detail::conv2d_forward_table()); }
std::vector<KernelInfo> conv2d_backward_algos() {
  return infos(conv_detail::conv2d_backward_table());
}

std::vector<std::string> conv2d_eligible_algos(const std::string& pass, const Conv2dGeometry& g) {
  using namespace conv_detail;
  std::vector<std::string> out;
  if (pass == "forward") {
    for (const auto& a : conv2d_forward_table())
      if (a.info.kind == "production" && a.info.name != "auto" && a.applies(g))
        out.push_back(a.info.name);
    return out;
  }
  if (pass != "backward_data" && pass != "backward_weight")
    throw std::invalid_argument("conv2d_eligible_algos: unknown pass '" + pass +
                                "' (forward, backward_data, backward_weight)");
  for (const auto& a : conv2d_backward_table())
    if (a.info.kind == "production" && a.info.name != "auto" &&
        (pass == "backward_data" ? a.data_applies(g) : a.weight_applies(g)))
      out.push_back(a.info.name);
  return out;
}

std::string conv2d_auto_choice(const std::string& pass, const Conv2dGeometry& g) {
  using namespace conv_detail;
  if (pass == "forward") {
    const ForwardFn f = forward_auto_choice(g);
    for (const auto& a : conv2d_forward_table())
      if (a.fn == f) return a.info.name;
  } else if (pass == "backward_weight") {
    const BackwardWeightFn f = backward_weight_auto_choice(g);
    for (const auto& a : conv2d_backward_table())
      if (a.weight == f) return a.info.name;
  } else if (pass == "backward_data") {
    const BackwardDataFn f = backward_data_auto_choice(g);
    for (const auto& a : conv2d_backward_table())
      if (a.data == f) return a.info.name;
  }
  throw std::invalid_argument("conv2d_auto_choice: unknown pass '" + pass +
                              "' (forward, backward_data, backward_weight)");
}

}  // namespace convforge::cpu
