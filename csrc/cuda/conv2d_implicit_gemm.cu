// conv2d as implicit GEMM: the GEMM tiles are gathered straight from the tensors, so no
// im2col buffer is ever written. One warp-tiled, double-buffered core (the layout of SGEMM
// step 5 in gemm_kernels.cu: BM x 128 x 8 tiles, 256 threads, 8 warps as 2 x 4) serves three
// problems, each a small policy that says how to read op(A), op(B) and where results go:
//   forward        M = K/groups (k), columns = N*P*Q (n,p,q), depth = C/groups*R*S (c,r,s);
//                  A = weights, B = x gathered through the window, fused bias(+ReLU) store.
//   backward data  M = C/groups (c), columns = N*H*W (n,h,w), depth = K/groups*R*S (k,r,s);
//                  A = weights read transposed, B = dy at p = (h + pad - r*dil)/stride when
//                  that divides exactly (zero otherwise).
//   backward weight M = K/groups (k), columns = C/groups*R*S (c,r,s), depth = N*P*Q;
//                  A = dy, B = x gathered; the depth is split across blocks (split-K) into
//                  a workspace that a second kernel sums in a fixed order (deterministic).
// blockIdx.z enumerates (group, split). Index arithmetic is 64-bit.
#include <algorithm>

#include "cuda/conv2d.h"
#include "cuda/cuda_common.cuh"

namespace convforge::cuda::detail {

namespace {

constexpr int BN = 128, BK = 8, NT = 256, PAD = 4;

struct ForwardProblem {
  Conv2dGeometry g;
  const float* x;
  const float* w;
  const float* bias;
  float* y;
  bool relu;
  int64_t grp = 0;
  __host__ __device__ int64_t M() const { return g.K_per_group(); }
  __host__ __device__ int64_t cols() const { return g.N * g.P * g.Q; }
  __host__ __device__ int64_t depth() const { return g.C_per_group() * g.R * g.S; }

  struct Col {
    const float* base;  // x at (n, first channel of the group)
    int64_t h0, w0;
    bool valid;
  };
  __host__ __device__ __forceinline__ Col col(int64_t j) const {
    Col c;
    c.valid = j < cols();
    const int64_t PQ = g.P * g.Q;
    const int64_t jj = c.valid ? j : 0;
    const int64_t n = jj / PQ, pq = jj - n * PQ;
    const int64_t p = pq / g.Q, q = pq - p * g.Q;
    c.base = x + (n * g.C + grp * g.C_per_group()) * g.H * g.W;
    c.h0 = p * g.stride_h - g.pad_top;
    c.w0 = q * g.stride_w - g.pad_left;
    return c;
  }
  __host__ __device__ __forceinline__ float a(int64_t m, int64_t kd) const {
    return w[(grp * M() + m) * depth() + kd];
  }
  __host__ __device__ __forceinline__ float b(const Col& c, int64_t kd) const {
    // 32-bit decoding (the depth is checked to fit on the host): 64-bit division is slow.
    const uint32_t k = static_cast<uint32_t>(kd), RS = static_cast<uint32_t>(g.R * g.S);
    const uint32_t S = static_cast<uint32_t>(g.S);
    const uint32_t ch = k / RS, rs = k - ch * RS;
    const uint32_t r = rs / S, s = rs - r * S;
    const int64_t h = c.h0 + r * g.dilation_h, ww = c.w0 + s * g.dilation_w;
    if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) return 0.f;
    return c.base[(ch * g.H + h) * g.W + ww];
  }
  __host__ __device__ __forceinline__ void store(int64_t m, int64_t j, float v, int /*split*/) const {
    const int64_t PQ = g.P * g.Q;
    const int64_t n = j / PQ, pq = j - n * PQ;
    const int64_t k = grp * M() + m;
    if (bias) v += bias[k];
    if (relu) v = fmaxf(v, 0.f);
    y[(n * g.K + k) * PQ + pq] = v;
  }
};

struct BackwardDataProblem {
  Conv2dGeometry g;
  const float* dy;
  const float* w;
  float* dx;
  int64_t grp = 0;
  __host__ __device__ int64_t M() const { return g.C_per_group(); }
  __host__ __device__ int64_t cols() const { return g.N * g.H * g.W; }
  __host__ __device__ int64_t depth() const { return g.K_per_group() * g.R * g.S; }

  struct Col {
    const float* base;  // dy at (n, first output channel of the group)
    int64_t hp, wp;     // h + pad_top, w + pad_left
    bool valid;
  };
  __host__ __device__ __forceinline__ Col col(int64_t j) const {
    Col c;
    c.valid = j < cols();
    const int64_t HW = g.H * g.W;
    const int64_t jj = c.valid ? j : 0;
    const int64_t n = jj / HW, hw = jj - n * HW;
    const int64_t h = hw / g.W, ww = hw - h * g.W;
    c.base = dy + (n * g.K + grp * g.K_per_group()) * g.P * g.Q;
    c.hp = h + g.pad_top;
    c.wp = ww + g.pad_left;
    return c;
  }
  __host__ __device__ __forceinline__ float a(int64_t m, int64_t kd) const {
    // w[(grp*Kg + k)][c = m][r][s] with kd = (k, r, s)
    const uint32_t kk = static_cast<uint32_t>(kd), RS = static_cast<uint32_t>(g.R * g.S);
    const uint32_t k = kk / RS, rs = kk - k * RS;
    return w[((grp * g.K_per_group() + k) * g.C_per_group() + m) * RS + rs];
  }
  __host__ __device__ __forceinline__ float b(const Col& c, int64_t kd) const {
    const uint32_t kk = static_cast<uint32_t>(kd), RS = static_cast<uint32_t>(g.R * g.S);
    const uint32_t S = static_cast<uint32_t>(g.S);
    const uint32_t k = kk / RS, rs = kk - k * RS;
    const uint32_t r = rs / S, s = rs - r * S;
    const int64_t ph = c.hp - r * g.dilation_h, qw = c.wp - s * g.dilation_w;
    if (ph < 0 || qw < 0) return 0.f;
    const uint32_t phu = static_cast<uint32_t>(ph), qwu = static_cast<uint32_t>(qw);
    const uint32_t sh = static_cast<uint32_t>(g.stride_h), sw = static_cast<uint32_t>(g.stride_w);
    const uint32_t p = phu / sh, q = qwu / sw;
    if (p * sh != phu || q * sw != qwu) return 0.f;
    if (p >= g.P || q >= g.Q) return 0.f;
    return c.base[(static_cast<int64_t>(k) * g.P + p) * g.Q + q];
  }
  __host__ __device__ __forceinline__ void store(int64_t m, int64_t j, float v, int /*split*/) const {
    const int64_t HW = g.H * g.W;
    const int64_t n = j / HW, hw = j - n * HW;
    dx[(n * g.C + grp * M() + m) * HW + hw] = v;
  }
};

struct BackwardWeightProblem {
  Conv2dGeometry g;
  const float* dy;
  const float* x;
  float* out;       // dw (one split) or the split-K workspace
  int64_t splits;   // partial sums land at out[((split*groups + grp)*Kg + k)*CRS + col]
  int64_t grp = 0;
  __host__ __device__ int64_t M() const { return g.K_per_group(); }
  __host__ __device__ int64_t cols() const { return g.C_per_group() * g.R * g.S; }
  __host__ __device__ int64_t depth() const { return g.N * g.P * g.Q; }

  struct Col {
    const float* base;  // x at (channel c of the group), batch added per element
    int64_t off_h, off_w;
    bool valid;
  };
  __host__ __device__ __forceinline__ Col col(int64_t j) const {
    Col c;
    c.valid = j < cols();
    const int64_t RS = g.R * g.S;
    const int64_t jj = c.valid ? j : 0;
    const int64_t ch = jj / RS, rs = jj - ch * RS;
    const int64_t r = rs / g.S, s = rs - r * g.S;
    c.base = x + (grp * g.C_per_group() + ch) * g.H * g.W;
    c.off_h = r * g.dilation_h - g.pad_top;
    c.off_w = s * g.dilation_w - g.pad_left;
    return c;
  }
  __host__ __device__ __forceinline__ float a(int64_t m, int64_t kd) const {
    const uint32_t k = static_cast<uint32_t>(kd), PQ = static_cast<uint32_t>(g.P * g.Q);
    const uint32_t n = k / PQ, pq = k - n * PQ;
    return dy[(n * g.K + grp * M() + m) * PQ + pq];
  }
  __host__ __device__ __forceinline__ float b(const Col& c, int64_t kd) const {
    const uint32_t k = static_cast<uint32_t>(kd), PQ = static_cast<uint32_t>(g.P * g.Q);
    const uint32_t Q = static_cast<uint32_t>(g.Q);
    const uint32_t n = k / PQ, pq = k - n * PQ;
    const uint32_t p = pq / Q, q = pq - p * Q;
    const int64_t h = p * g.stride_h + c.off_h, ww = q * g.stride_w + c.off_w;
    if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) return 0.f;
    return c.base[static_cast<int64_t>(n) * g.C * g.H * g.W + h * g.W + ww];
  }
  __host__ __device__ __forceinline__ void store(int64_t m, int64_t j, float v, int split) const {
    out[((split * g.groups + grp) * M() + m) * cols() + j] = v;
  }
};

// blockIdx.x: column tile, blockIdx.y: row tile, blockIdx.z: (group - g0) * splits + split.
template <int BM, class Prob>
__global__ void __launch_bounds__(NT, 2)
    implicit_gemm_kernel(Prob pb, int64_t g0, int splits, int64_t depth_per_split) {
  constexpr int WM = BM / 2, SUBM = WM / 32, TM = SUBM * 4;
  constexpr int AQ = BM * BK / NT;  // A elements per thread per tile (4 or 2)
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  const int split = static_cast<int>(blockIdx.z % splits);
  pb.grp = g0 + blockIdx.z / splits;
  const int64_t M = pb.M(), depth = pb.depth();
  const int64_t kbeg = split * depth_per_split;
  const int64_t kend = min(depth, kbeg + depth_per_split);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int lane_m = lane / 4, lane_n = lane % 4;

  // B: this thread always fills column nn of the tile (rows kk = tid/128 + 2q).
  const int nn = tid % BN, kb = tid / BN;
  const typename Prob::Col ctx = pb.col(n0 + nn);

  float ra[AQ], rb[4];
  auto fetch = [&](int64_t k0) {
#pragma unroll
    for (int q = 0; q < AQ; ++q) {
      const int e = tid + q * NT;
      const int64_t m = m0 + e / BK, kd = k0 + e % BK;
      ra[q] = (m < M && kd < kend) ? pb.a(m, kd) : 0.f;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t kd = k0 + kb + 2 * q;
      rb[q] = (ctx.valid && kd < kend) ? pb.b(ctx, kd) : 0.f;
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
  const int64_t ntiles = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
  if (ntiles > 0) {
    fetch(kbeg);
    stash(0);
  }
  __syncthreads();
  for (int64_t t = 0; t < ntiles; ++t) {
    const int cur = static_cast<int>(t & 1);
    const bool more = t + 1 < ntiles;
    if (more) fetch(kbeg + (t + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float av[TM], bv[8];
#pragma unroll
      for (int s = 0; s < SUBM; ++s)
        *reinterpret_cast<float4*>(&av[s * 4]) =
            *reinterpret_cast<const float4*>(&As[cur][kk][warp_m * WM + s * 32 + lane_m * 4]);
#pragma unroll
      for (int s = 0; s < 2; ++s)
        *reinterpret_cast<float4*>(&bv[s * 4]) =
            *reinterpret_cast<const float4*>(&Bs[cur][kk][warp_n * 32 + s * 16 + lane_n * 4]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] += av[i] * bv[j];
    }
    if (more) stash(cur ^ 1);
    __syncthreads();
  }

  const int64_t ncols = pb.cols();
#pragma unroll
  for (int s = 0; s < SUBM; ++s)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t m = m0 + warp_m * WM + s * 32 + lane_m * 4 + r;
      if (m >= M) continue;
#pragma unroll
      for (int sn = 0; sn < 2; ++sn)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t j = n0 + warp_n * 32 + sn * 16 + lane_n * 4 + c;
          if (j < ncols) pb.store(m, j, acc[s * 4 + r][sn * 4 + c], split);
        }
    }
}

// dw[i] = sum over splits of ws[split * n + i], in split order.
__global__ void sum_splits_kernel(const float* ws, int64_t n, int64_t splits, float* dw) {
  for (int64_t i = global_thread_id(); i < n; i += grid_stride()) {
    float s = 0.f;
    for (int64_t k = 0; k < splits; ++k) s += ws[k * n + i];
    dw[i] = s;
  }
}

template <class Prob>
void launch(const Prob& pb, int64_t groups, int splits, int64_t depth_per_split, const char* op) {
  const int64_t M = pb.M(), cols = pb.cols();
  if (M == 0 || cols == 0) return;
  if (pb.depth() >= (int64_t(1) << 31))
    throw std::invalid_argument(std::string(op) + ": the GEMM depth " + std::to_string(pb.depth()) +
                                " does not fit 32-bit decoding; use algo='im2col'");
  const int sms = device_props(current_device()).sm_count;
  // 128-row tiles when there are enough rows and enough tiles to fill the GPU.
  const bool tall = M > 64 && ceil_div(M, 128) * ceil_div(cols, BN) * groups * splits >= sms;
  const int bm = tall ? 128 : 64;
  const int64_t gx = ceil_div(cols, BN), gy = ceil_div(M, bm);
  if (gx > 2147483647LL || gy > 65535)
    throw std::invalid_argument(std::string(op) + ": problem too large for one launch");
  cudaStream_t s = current_stream();
  const int64_t groups_per_launch = std::max<int64_t>(1, 65535 / splits);
  for (int64_t g0 = 0; g0 < groups; g0 += groups_per_launch) {
    const int64_t ng = std::min(groups_per_launch, groups - g0);
    dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
              static_cast<unsigned>(ng * splits));
    if (tall)
      implicit_gemm_kernel<128, Prob><<<grid, NT, 0, s>>>(pb, g0, splits, depth_per_split);
    else
      implicit_gemm_kernel<64, Prob><<<grid, NT, 0, s>>>(pb, g0, splits, depth_per_split);
    check_launch(op);
  }
}

}  // namespace

void implicit_gemm_forward(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu) {
  ForwardProblem pb{g, x, w, bias, y, relu};
  launch(pb, g.groups, 1, std::max<int64_t>(pb.depth(), 1), "conv2d_forward (implicit_gemm)");
}

void implicit_gemm_backward_data(const Conv2dGeometry& g, const float* dy, const float* w,
                                 float* dx) {
  BackwardDataProblem pb{g, dy, w, dx};
  launch(pb, g.groups, 1, std::max<int64_t>(pb.depth(), 1), "conv2d_backward (implicit_gemm, data)");
}

void implicit_gemm_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw) {
  const char* op = "conv2d_backward (implicit_gemm, weight)";
  BackwardWeightProblem pb{g, dy, x, dw, 1};
  const int64_t M = pb.M(), cols = pb.cols(), depth = pb.depth();
  const int64_t n_out = g.K * cols;  // == w_size()
  if (n_out == 0) return;
  cudaStream_t s = current_stream();
  if (depth == 0) {  // empty batch: the gradient is zero
    CUDA_CHECK(op, cudaMemsetAsync(dw, 0, n_out * sizeof(float), s));
    return;
  }
  // Split the (long) depth N*P*Q so that there are about two blocks per SM, each split at least
  // 64 tiles deep, and the workspace stays under 256 MiB.
  const int sms = device_props(current_device()).sm_count;
  const int64_t tiles = ceil_div(M, 64) * ceil_div(cols, BN) * g.groups;
  int64_t splits = std::max<int64_t>(1, ceil_div(2 * sms, tiles));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, depth / (64 * BK)));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, (int64_t(64) << 20) / n_out));
  splits = std::min<int64_t>(splits, 256);
  const int64_t per = ceil_div(ceil_div(depth, splits), BK) * BK;
  splits = ceil_div(depth, per);
  if (splits == 1) {
    launch(pb, g.groups, 1, per, op);
    return;
  }
  Workspace ws(static_cast<size_t>(splits * n_out) * sizeof(float));
  pb.out = ws.as<float>();
  pb.splits = splits;
  launch(pb, g.groups, static_cast<int>(splits), per, op);
  sum_splits_kernel<<<grid_for(n_out, 256), 256, 0, s>>>(ws.as<float>(), n_out, splits, dw);
  check_launch(op);
}

}  // namespace convforge::cuda::detail
