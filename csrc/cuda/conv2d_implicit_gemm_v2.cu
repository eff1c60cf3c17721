// conv2d forward, implicit GEMM step 2 ("implicit_v2"): the forward problem of
// conv2d_implicit_gemm.cu (M = K/groups, columns = N*P*Q, depth = C/groups*R*S) with the index
// arithmetic taken out of the inner loop. What it changes against "implicit":
//   - a depth table, built once per call by a tiny kernel: for each depth index (c, r, s) the
//     offset c*H*W + r*dil_h*W + s*dil_w and the window shifts (r*dil_h, s*dil_w). Gathering an
//     element of x is then one broadcast table read, two unsigned compares and one load: no
//     divisions and 32-bit arithmetic (v1 divides twice per element, in 64-bit for A);
//   - 16-byte loads of the weight tile (when C/groups*R*S is a multiple of 4 and w is aligned);
//   - split-K over the depth when the grid would leave SMs idle (VGG conv4/conv5 at N=1), with
//     the partial sums reduced in a fixed order (deterministic) and bias/ReLU applied there;
//   - 64-row tiles when 128-row tiles would be too few.
// The multiply core (BM x 128 x 8 tiles, 256 threads as 2 x 4 warps, 8x8 or 4x8 per thread,
// register double buffering) is that of "implicit", which is known correct.
#include <algorithm>
#include <cstdlib>

#include "cuda/conv2d.h"
#include "cuda/cuda_common.cuh"

namespace convforge::cuda::detail {

namespace {

constexpr int V2_BN = 128, V2_BK = 8, V2_NT = 256, V2_PAD = 4;

// One entry per depth index kd = (c, r, s) of a group: x offset inside the group's channels
// and the window shifts, so that h = h0 + dh, w = w0 + dw, address = hw0 + off.
struct DepthEntry {
  int off, dh, dw, pad_;
};

__global__ void build_depth_table(Conv2dGeometry g, DepthEntry* table, int depth) {
  for (int64_t kd = global_thread_id(); kd < depth; kd += grid_stride()) {
    const int64_t RS = g.R * g.S;
    const int64_t c = kd / RS, rs = kd - c * RS;
    const int64_t r = rs / g.S, s = rs - r * g.S;
    const int64_t dh = r * g.dilation_h, dw = s * g.dilation_w;
    DepthEntry e;
    e.off = static_cast<int>(c * g.H * g.W + dh * g.W + dw);
    e.dh = static_cast<int>(dh);
    e.dw = static_cast<int>(dw);
    e.pad_ = 0;
    table[kd] = e;
  }
}

// acc (TM x 8 per thread) += the BM x BN product of one BK-deep tile pair in shared memory.
// Each warp owns a (BM/2) x 32 piece; each thread 4-row by 4-column pieces, read as float4.
template <int BM>
__device__ __forceinline__ void v2_mma_tile(const float* as, const float* bs,
                                            float (&acc)[BM / 16][8], int tid) {
  constexpr int BN = V2_BN, BK = V2_BK, PAD = V2_PAD;
  constexpr int WM = BM / 2, SUBM = WM / 32, TM = SUBM * 4;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int lane_m = lane / 4, lane_n = lane % 4;
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    float av[TM], bv[8];
#pragma unroll
    for (int s = 0; s < SUBM; ++s)
      *reinterpret_cast<float4*>(&av[s * 4]) =
          *reinterpret_cast<const float4*>(as + kk * (BM + PAD) + warp_m * WM + s * 32 + lane_m * 4);
#pragma unroll
    for (int s = 0; s < 2; ++s)
      *reinterpret_cast<float4*>(&bv[s * 4]) =
          *reinterpret_cast<const float4*>(bs + kk * (BN + PAD) + warp_n * 32 + s * 16 + lane_n * 4);
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[i][c] += av[i] * bv[c];
  }
}

// The tile coordinates (row, column) of accumulator acc[i][c] of thread tid.
template <int BM>
__device__ __forceinline__ int v2_row(int tid, int i) {
  return (tid / 32) / 4 * (BM / 2) + (i / 4) * 32 + (tid % 32) / 4 * 4 + i % 4;
}
__device__ __forceinline__ int v2_col(int tid, int c) {
  return (tid / 32) % 4 * 32 + (c / 4) * 16 + (tid % 32) % 4 * 4 + c % 4;
}

struct FwdV2Args {
  Conv2dGeometry g;
  const float* x;
  const float* w;
  const DepthEntry* table;
  float* out;  // y (splits == 1) or the split-K workspace [split][K][N*P*Q]
  const float* bias;
  bool relu;
  bool vec_a;  // 16-byte weight loads allowed
  int M, depth, cols, PQ, Q, H, W, HW;
  int stride_h, stride_w, pad_top, pad_left;
  int splits, depth_per_split;
};

// blockIdx.x: column tile, blockIdx.y: row tile, blockIdx.z: group * splits + split.
template <int BM>
__global__ void __launch_bounds__(V2_NT, 2) implicit_fwd_v2_kernel(FwdV2Args p) {
  constexpr int BN = V2_BN, BK = V2_BK, NT = V2_NT, PAD = V2_PAD;
  constexpr int TM = BM / 16;
  constexpr int AQ = BM * BK / NT;     // scalar A elements per thread per tile (4 or 2)
  constexpr int AV = BM * BK / 4;      // float4 A loads per tile (256 or 128)
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  const int split = static_cast<int>(blockIdx.z) % p.splits;
  const int grp = static_cast<int>(blockIdx.z) / p.splits;
  const int kbeg = split * p.depth_per_split;
  const int kend = min(p.depth, kbeg + p.depth_per_split);
  const int m0 = static_cast<int>(blockIdx.y) * BM;
  const int n0 = static_cast<int>(blockIdx.x) * BN;
  const int tid = threadIdx.x;

  // A: rows of this group's weights, depth contiguous.
  const float* wg = p.w + static_cast<int64_t>(grp) * p.M * p.depth;

  // B: this thread fills column nn of the tile, rows kb + 2q.
  const int nn = tid % BN, kb = tid / BN;
  const int j = n0 + nn;
  const bool jvalid = j < p.cols;
  const float* xb = p.x;
  int h0 = 0, w0 = 0;
  {
    const int jj = jvalid ? j : 0;
    const int n = jj / p.PQ, pq = jj - n * p.PQ;
    const int pp = pq / p.Q, q = pq - pp * p.Q;
    h0 = pp * p.stride_h - p.pad_top;
    w0 = q * p.stride_w - p.pad_left;
    xb = p.x + (static_cast<int64_t>(n) * p.g.C + static_cast<int64_t>(grp) * (p.g.C / p.g.groups)) * p.HW;
  }
  const int hw0 = h0 * p.W + w0;

  float ra[AQ > 4 ? AQ : 4], rb[4];
  auto fetch = [&](int k0) {
    if (p.vec_a) {
      if (AV == NT || tid < AV) {
        const int m = m0 + tid / 2, kd = k0 + (tid % 2) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (m < p.M && kd < kend)
          v = __ldg(reinterpret_cast<const float4*>(wg + static_cast<int64_t>(m) * p.depth + kd));
        ra[0] = v.x;
        ra[1] = v.y;
        ra[2] = v.z;
        ra[3] = v.w;
      }
    } else {
#pragma unroll
      for (int q = 0; q < AQ; ++q) {
        const int e = tid + q * NT;
        const int m = m0 + e / BK, kd = k0 + e % BK;
        ra[q] = (m < p.M && kd < kend) ? __ldg(wg + static_cast<int64_t>(m) * p.depth + kd) : 0.f;
      }
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int kd = k0 + kb + 2 * q;
      float v = 0.f;
      if (jvalid && kd < kend) {
        const int4 e = __ldg(reinterpret_cast<const int4*>(p.table + kd));
        const int h = h0 + e.y, ww = w0 + e.z;
        if (static_cast<unsigned>(h) < static_cast<unsigned>(p.H) &&
            static_cast<unsigned>(ww) < static_cast<unsigned>(p.W))
          v = __ldg(xb + (hw0 + e.x));
      }
      rb[q] = v;
    }
  };
  auto stash = [&](int buf) {
    if (p.vec_a) {
      if (AV == NT || tid < AV) {
        const int m = tid / 2, k = (tid % 2) * 4;
#pragma unroll
        for (int i = 0; i < 4; ++i) As[buf][k + i][m] = ra[i];
      }
    } else {
#pragma unroll
      for (int q = 0; q < AQ; ++q) {
        const int e = tid + q * NT;
        As[buf][e % BK][e / BK] = ra[q];
      }
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) Bs[buf][kb + 2 * q][nn] = rb[q];
  };

  float acc[TM][8] = {};
  const int ntiles = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
  if (ntiles > 0) {
    fetch(kbeg);
    stash(0);
  }
  __syncthreads();
  for (int t = 0; t < ntiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ntiles;
    if (more) fetch(kbeg + (t + 1) * BK);
    v2_mma_tile<BM>(&As[cur][0][0], &Bs[cur][0][0], acc, tid);
    if (more) stash(cur ^ 1);
    __syncthreads();
  }

  // Epilogue: y[n][k][pq] (+bias, ReLU), or the raw partial sum at ws[split][k][j].
  const int64_t K = p.g.K;
#pragma unroll
  for (int c = 0; c < 8; ++c) {
    const int jc = n0 + v2_col(tid, c);
    if (jc >= p.cols) continue;
    const int n = jc / p.PQ, pq = jc - n * p.PQ;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + v2_row<BM>(tid, i);
      if (m >= p.M) continue;
      const int64_t k = static_cast<int64_t>(grp) * p.M + m;
      float v = acc[i][c];
      if (p.splits == 1) {
        if (p.bias) v += __ldg(p.bias + k);
        if (p.relu) v = fmaxf(v, 0.f);
        p.out[(static_cast<int64_t>(n) * K + k) * p.PQ + pq] = v;
      } else {
        p.out[(static_cast<int64_t>(split) * K + k) * p.cols + jc] = v;
      }
    }
  }
}

// y[n][k][pq] = bias[k] + sum over splits (in split order) of ws[split][k][n*PQ + pq].
__global__ void reduce_splits_fwd(const float* ws, int splits, int64_t K, int64_t cols,
                                  int64_t PQ, const float* bias, bool relu, float* y) {
  const int64_t total = K * cols;
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t k = idx / cols, jc = idx - k * cols;
    float v = 0.f;
    for (int s = 0; s < splits; ++s) v += ws[s * total + idx];
    if (bias) v += bias[k];
    if (relu) v = fmaxf(v, 0.f);
    const int64_t n = jc / PQ, pq = jc - n * PQ;
    y[(n * K + k) * PQ + pq] = v;
  }
}

// ---- backward data (stride 1): a forward convolution of dy with the flipped, transposed weights.
// wt[grp][c][k][R-1-r][S-1-s] = w[grp*Kg + k][c][r][s].
__global__ void flip_transpose_weights(Conv2dGeometry g, const float* w, float* wt) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const int64_t total = g.w_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t rs = idx % RS, c = (idx / RS) % Cg, k = idx / (RS * Cg);  // idx into w
    const int64_t grp = k / Kg, kk = k - grp * Kg;
    wt[((grp * Cg + c) * Kg + kk) * RS + (RS - 1 - rs)] = w[idx];
  }
}

// ---- backward weight: M = K/groups (k), columns = C/groups*R*S (c,r,s), depth = N*P*Q walked
// as (image, tile of BK output positions), so that a tile never straddles two images and the
// only division per tile is by the tiles per image. A table per output position (p, q) holds
// the window origin (p*sh - pt, q*sw - pl) and its offset in an input plane.
__global__ void build_pq_table(Conv2dGeometry g, int4* table) {
  const int64_t PQ = g.P * g.Q;
  for (int64_t pq = global_thread_id(); pq < PQ; pq += grid_stride()) {
    const int64_t p = pq / g.Q, q = pq - p * g.Q;
    const int64_t hs = p * g.stride_h - g.pad_top, ws = q * g.stride_w - g.pad_left;
    table[pq] = make_int4(static_cast<int>(hs), static_cast<int>(ws), static_cast<int>(hs * g.W + ws), 0);
  }
}

struct BwdWV2Args {
  Conv2dGeometry g;
  const float* dy;
  const float* x;
  const int4* table;
  float* out;  // dw (splits == 1) or the workspace [split][K][C/groups*R*S]
  int M, cols, PQ, tpi, H, W, HW, S, RS, dil_h, dil_w;
  int splits, tiles_per_split, total_tiles;
};

template <int BM>
__global__ void __launch_bounds__(V2_NT, 2) implicit_bwdw_v2_kernel(BwdWV2Args p) {
  constexpr int BN = V2_BN, BK = V2_BK, NT = V2_NT, PAD = V2_PAD;
  constexpr int TM = BM / 16;
  constexpr int AQ = BM * BK / NT;
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  const int split = static_cast<int>(blockIdx.z) % p.splits;
  const int grp = static_cast<int>(blockIdx.z) / p.splits;
  const int tbeg = split * p.tiles_per_split;
  const int tend = min(p.total_tiles, tbeg + p.tiles_per_split);
  const int m0 = static_cast<int>(blockIdx.y) * BM;
  const int n0 = static_cast<int>(blockIdx.x) * BN;
  const int tid = threadIdx.x;
  const int64_t Cg = p.g.C / p.g.groups;

  // B: this thread fills column nn = (c, r, s) of the tile, rows kb + 2q.
  const int nn = tid % BN, kb = tid / BN;
  const int j = n0 + nn;
  const bool jvalid = j < p.cols;
  int rd = 0, sd = 0, coff = 0;
  {
    const int jj = jvalid ? j : 0;
    const int c = jj / p.RS, rs = jj - c * p.RS;
    const int r = rs / p.S, s = rs - r * p.S;
    rd = r * p.dil_h;
    sd = s * p.dil_w;
    coff = c * p.HW + rd * p.W + sd;
  }

  float ra[AQ], rb[4];
  auto fetch = [&](int t) {
    const int n = t / p.tpi, pq0 = (t - n * p.tpi) * BK;
    const float* dyn = p.dy + (static_cast<int64_t>(n) * p.g.K + static_cast<int64_t>(grp) * p.M) * p.PQ;
    const float* xn = p.x + (static_cast<int64_t>(n) * p.g.C + grp * Cg) * p.HW;
#pragma unroll
    for (int q = 0; q < AQ; ++q) {
      const int e = tid + q * NT;
      const int m = m0 + e / BK, pq = pq0 + e % BK;
      ra[q] = (m < p.M && pq < p.PQ) ? __ldg(dyn + static_cast<int64_t>(m) * p.PQ + pq) : 0.f;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int pq = pq0 + kb + 2 * q;
      float v = 0.f;
      if (jvalid && pq < p.PQ) {
        const int4 e = __ldg(p.table + pq);
        const int h = e.x + rd, ww = e.y + sd;
        if (static_cast<unsigned>(h) < static_cast<unsigned>(p.H) &&
            static_cast<unsigned>(ww) < static_cast<unsigned>(p.W))
          v = __ldg(xn + (coff + e.z));
      }
      rb[q] = v;
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int q = 0; q < AQ; ++q) {
      const int e = tid + q * NT;
      As[buf][e % BK][e / BK] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) Bs[buf][kb + 2 * q][nn] = rb[q];
  };

  float acc[TM][8] = {};
  if (tend > tbeg) {
    fetch(tbeg);
    stash(0);
  }
  __syncthreads();
  for (int t = tbeg; t < tend; ++t) {
    const int cur = (t - tbeg) & 1;
    const bool more = t + 1 < tend;
    if (more) fetch(t + 1);
    v2_mma_tile<BM>(&As[cur][0][0], &Bs[cur][0][0], acc, tid);
    if (more) stash(cur ^ 1);
    __syncthreads();
  }

  const int64_t base = (static_cast<int64_t>(split) * p.g.K + static_cast<int64_t>(grp) * p.M) * p.cols;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + v2_row<BM>(tid, i);
    if (m >= p.M) continue;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const int jc = n0 + v2_col(tid, c);
      if (jc < p.cols) p.out[base + static_cast<int64_t>(m) * p.cols + jc] = acc[i][c];
    }
  }
}

// dw[i] = sum over splits of ws[split * n + i], in split order.
__global__ void reduce_splits_plain(const float* ws, int splits, int64_t n, float* dw) {
  for (int64_t i = global_thread_id(); i < n; i += grid_stride()) {
    float v = 0.f;
    for (int s = 0; s < splits; ++s) v += ws[s * n + i];
    dw[i] = v;
  }
}

}  // namespace

// ---- host ---------------------------------------------------------------------------------

namespace {
bool aligned16_host(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }
}  // namespace

// The tiling plan. When 128-row tiles alone fill the SMs, 128- or 64-row tiles, whichever needs
// less time counted in waves of two blocks per SM (a 64-row tile costing ~0.55 of a 128-row one:
// half the work, a little less reuse), so that a last, mostly empty wave is avoided. Else 64-row
// tiles, with the depth split so that there are about two blocks per SM when even those are too
// few (each split at least 16 tiles deep, the workspace under 64 MiB).
ImplicitV2Plan implicit_v2_plan(const Conv2dGeometry& g, int sms) {
  ImplicitV2Plan pl;
  const int64_t M = g.K_per_group(), cols = g.N * g.P * g.Q;
  const int64_t depth = g.C_per_group() * g.R * g.S;
  const int64_t gx = ceil_div(cols, V2_BN);
  const int64_t blocks128 = gx * ceil_div(M, 128) * g.groups;
  const int64_t blocks64 = gx * ceil_div(M, 64) * g.groups;
  if (M > 64 && blocks128 >= sms) {
    const int64_t slots = 2 * static_cast<int64_t>(sms);
    const double t128 = static_cast<double>(ceil_div(blocks128, slots));
    const double t64 = 0.55 * static_cast<double>(ceil_div(blocks64, slots));
    pl.bm = t64 < t128 ? 64 : 128;
    return pl;
  }
  pl.bm = 64;
  if (blocks64 >= sms) return pl;
  int64_t splits = ceil_div(2 * sms, blocks64);
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, depth / (16 * V2_BK)));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(1, g.K * cols)));
  splits = std::min<int64_t>(splits, 32);
  const int64_t per = ceil_div(ceil_div(depth, splits), V2_BK) * V2_BK;
  pl.splits = static_cast<int>(ceil_div(depth, per));
  pl.depth_per_split = per;
  return pl;
}

// Whether implicit_v2 handles g (32-bit indexing everywhere; else the caller uses "implicit").
bool implicit_v2_supports(const Conv2dGeometry& g) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  const int64_t cols = g.N * g.P * g.Q;
  const int64_t depth = g.C_per_group() * g.R * g.S;
  const int64_t HW = g.H * g.W;
  const int64_t reach_h = (g.R - 1) * g.dilation_h + 1, reach_w = (g.S - 1) * g.dilation_w + 1;
  const int64_t span_h = g.P * g.stride_h + std::abs(g.pad_top) + 1;
  const int64_t span_w = g.Q * g.stride_w + std::abs(g.pad_left) + 1;
  return cols < lim - V2_BN && depth < lim - V2_BK && g.K * cols < lim && g.K * g.C_per_group() * g.R * g.S < lim &&
         g.H < (1 << 30) && g.W < (1 << 30) && reach_h < (1 << 30) && reach_w < (1 << 30) &&
         span_h < (1 << 30) && span_w < (1 << 30) &&
         g.C_per_group() * HW + (reach_h + span_h) * g.W + reach_w + span_w < lim && g.groups < 65536;
}

namespace {

// The geometry of backward data (stride 1) as a forward convolution of dy: input dy (K channels,
// P x Q), output dx (C channels, H x W), the same filter size and dilation, the padding mirrored
// (it may be negative: the window then starts inside dy; the bounds checks handle both).
Conv2dGeometry v2_bwd_data_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry f = g;
  f.C = g.K;
  f.H = g.P;
  f.W = g.Q;
  f.K = g.C;
  f.stride_h = f.stride_w = 1;
  f.pad_top = g.dilation_h * (g.R - 1) - g.pad_top;
  f.pad_left = g.dilation_w * (g.S - 1) - g.pad_left;
  f.pad_bottom = g.dilation_h * (g.R - 1) - g.pad_bottom;
  f.pad_right = g.dilation_w * (g.S - 1) - g.pad_right;
  f.P = g.H;
  f.Q = g.W;
  return f;
}

// Backward weight: rows as in the forward plan; the depth (N * tiles per image) split so that
// there are about two blocks per SM, each split at least 32 tiles deep, the workspace under
// 64 MiB. depth_per_split counts tiles here.
ImplicitV2Plan v2_bwdw_plan(const Conv2dGeometry& g, int sms) {
  ImplicitV2Plan pl;
  const int64_t M = g.K_per_group(), cols = g.C_per_group() * g.R * g.S;
  const int64_t total_tiles = g.N * ceil_div(g.P * g.Q, V2_BK);
  const int64_t gx = ceil_div(cols, V2_BN);
  const int64_t blocks128 = gx * ceil_div(M, 128) * g.groups;
  const int64_t blocks64 = gx * ceil_div(M, 64) * g.groups;
  pl.bm = (M > 64 && blocks128 >= sms) ? 128 : 64;
  const int64_t blocks = pl.bm == 128 ? blocks128 : blocks64;
  int64_t splits = std::max<int64_t>(1, ceil_div(2 * sms, blocks));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, total_tiles / 32));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(1, g.w_size())));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, 65535 / g.groups));
  splits = std::min<int64_t>(splits, 256);
  const int64_t per = ceil_div(total_tiles, splits);
  pl.splits = static_cast<int>(ceil_div(total_tiles, per));
  pl.depth_per_split = per;
  return pl;
}

bool v2_bwdw_supports(const Conv2dGeometry& g) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  return implicit_v2_supports(g) && g.N * ceil_div(g.P * g.Q, V2_BK) < lim &&
         g.C_per_group() * g.R * g.S < lim - V2_BN && g.K_per_group() < 65535 * 64;
}

// Queues implicit_v2's forward on the current stream; false when g is outside what it handles.
bool forward_v2_launch(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y, bool relu, const char* op) {
  const int64_t M = g.K_per_group(), cols = g.N * g.P * g.Q;
  const int64_t depth = g.C_per_group() * g.R * g.S;
  if (depth == 0 || !implicit_v2_supports(g)) return false;
  const int sms = device_props(current_device()).sm_count;
  const ImplicitV2Plan pl = implicit_v2_plan(g, sms);
  const int64_t gx = ceil_div(cols, V2_BN), gy = ceil_div(M, pl.bm);
  const int64_t gz = g.groups * pl.splits;
  if (gx > 2147483647LL || gy > 65535 || gz > 65535) return false;
  cudaStream_t s = current_stream();
  Workspace table(static_cast<size_t>(depth) * sizeof(DepthEntry));
  build_depth_table<<<grid_for(depth, 256), 256, 0, s>>>(g, table.as<DepthEntry>(), static_cast<int>(depth));
  check_launch(op);

  FwdV2Args a;
  a.g = g;
  a.x = x;
  a.w = w;
  a.table = table.as<DepthEntry>();
  a.bias = bias;
  a.relu = relu;
  a.vec_a = depth % 4 == 0 && aligned16_host(w);
  a.M = static_cast<int>(M);
  a.depth = static_cast<int>(depth);
  a.cols = static_cast<int>(cols);
  a.PQ = static_cast<int>(g.P * g.Q);
  a.Q = static_cast<int>(g.Q);
  a.H = static_cast<int>(g.H);
  a.W = static_cast<int>(g.W);
  a.HW = static_cast<int>(g.H * g.W);
  a.stride_h = static_cast<int>(g.stride_h);
  a.stride_w = static_cast<int>(g.stride_w);
  a.pad_top = static_cast<int>(g.pad_top);
  a.pad_left = static_cast<int>(g.pad_left);
  a.splits = pl.splits;
  a.depth_per_split = static_cast<int>(pl.splits == 1 ? depth : pl.depth_per_split);

  Workspace ws(pl.splits > 1 ? static_cast<size_t>(pl.splits * g.K * cols) * sizeof(float) : 1);
  a.out = pl.splits > 1 ? ws.as<float>() : y;
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  if (pl.bm == 128)
    implicit_fwd_v2_kernel<128><<<grid, V2_NT, 0, s>>>(a);
  else
    implicit_fwd_v2_kernel<64><<<grid, V2_NT, 0, s>>>(a);
  check_launch(op);
  if (pl.splits > 1) {
    reduce_splits_fwd<<<grid_for(g.K * cols, 256), 256, 0, s>>>(ws.as<float>(), pl.splits, g.K, cols,
                                                                g.P * g.Q, bias, relu, y);
    check_launch(op);
  }
  return true;
}

}  // namespace

void implicit_v2_forward(const Conv2dGeometry& g, const float* x, const float* w,
                         const float* bias, float* y, bool relu) {
  if (g.K_per_group() == 0 || g.N * g.P * g.Q == 0) return;
  if (!forward_v2_launch(g, x, w, bias, y, relu, "conv2d_forward (implicit_v2)"))
    implicit_gemm_forward(g, x, w, bias, y, relu);
}

void implicit_v2_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const char* op = "conv2d_backward (implicit_v2, data)";
  if (g.C_per_group() == 0 || g.x_size() == 0) return;
  if (g.stride_h == 1 && g.stride_w == 1 && g.K_per_group() > 0 && g.w_size() > 0) {
    const Conv2dGeometry f = v2_bwd_data_geometry(g);
    if (implicit_v2_supports(f)) {
      cudaStream_t s = current_stream();
      Workspace wt(static_cast<size_t>(g.w_size()) * sizeof(float));
      flip_transpose_weights<<<grid_for(g.w_size(), 256), 256, 0, s>>>(g, w, wt.as<float>());
      check_launch(op);
      if (forward_v2_launch(f, dy, wt.as<float>(), nullptr, dx, false, op)) return;
    }
  }
  implicit_gemm_backward_data(g, dy, w, dx);  // stride > 1 or outside 32-bit indexing
}

void implicit_v2_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw) {
  const char* op = "conv2d_backward (implicit_v2, weight)";
  const int64_t n_out = g.w_size();
  if (n_out == 0) return;
  cudaStream_t s = current_stream();
  if (g.N * g.P * g.Q == 0) {  // empty batch: the gradient is zero
    CUDA_CHECK(op, cudaMemsetAsync(dw, 0, n_out * sizeof(float), s));
    return;
  }
  if (!v2_bwdw_supports(g)) {
    implicit_gemm_backward_weight(g, dy, x, dw);
    return;
  }
  const int sms = device_props(current_device()).sm_count;
  const ImplicitV2Plan pl = v2_bwdw_plan(g, sms);
  const int64_t M = g.K_per_group(), cols = g.C_per_group() * g.R * g.S;
  const int64_t gx = ceil_div(cols, V2_BN), gy = ceil_div(M, pl.bm), gz = g.groups * pl.splits;
  Workspace table(static_cast<size_t>(g.P * g.Q) * sizeof(int4));
  build_pq_table<<<grid_for(g.P * g.Q, 256), 256, 0, s>>>(g, table.as<int4>());
  check_launch(op);
  BwdWV2Args a;
  a.g = g;
  a.dy = dy;
  a.x = x;
  a.table = table.as<int4>();
  a.M = static_cast<int>(M);
  a.cols = static_cast<int>(cols);
  a.PQ = static_cast<int>(g.P * g.Q);
  a.tpi = static_cast<int>(ceil_div(g.P * g.Q, V2_BK));
  a.H = static_cast<int>(g.H);
  a.W = static_cast<int>(g.W);
  a.HW = static_cast<int>(g.H * g.W);
  a.S = static_cast<int>(g.S);
  a.RS = static_cast<int>(g.R * g.S);
  a.dil_h = static_cast<int>(g.dilation_h);
  a.dil_w = static_cast<int>(g.dilation_w);
  a.splits = pl.splits;
  a.tiles_per_split = static_cast<int>(pl.depth_per_split);
  a.total_tiles = static_cast<int>(g.N * a.tpi);
  Workspace ws(pl.splits > 1 ? static_cast<size_t>(pl.splits * n_out) * sizeof(float) : 1);
  a.out = pl.splits > 1 ? ws.as<float>() : dw;
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  if (pl.bm == 128)
    implicit_bwdw_v2_kernel<128><<<grid, V2_NT, 0, s>>>(a);
  else
    implicit_bwdw_v2_kernel<64><<<grid, V2_NT, 0, s>>>(a);
  check_launch(op);
  if (pl.splits > 1) {
    reduce_splits_plain<<<grid_for(n_out, 256), 256, 0, s>>>(ws.as<float>(), pl.splits, n_out, dw);
    check_launch(op);
  }
}

}  // namespace convforge::cuda::detail
