// conv2d for small channel counts (LeNet-sized layers), where a GEMM tile would be mostly empty:
//   forward  "direct_v2"  each thread computes 2 output positions x KB (8 or 16) output channels;
//                         the chunk's filters sit in shared memory as [c][r][s][KB], so one x
//                         value costs one global load and KB/4 broadcast float4 shared loads
//                         ("direct" re-reads every weight from global memory per x value).
//   backward "direct"     dx: the same shape with the roles swapped (2 input positions x CB input
//                         channels per thread, filters in shared memory as [k][r][s][CB], the
//                         output position p = (h + pad - r*dil) / stride taken only when exact);
//                         dw: one block per (k, c, slice of the batch) accumulating all R*S taps
//                         of that filter in registers, a tree reduction in shared memory, and the
//                         slices summed in a fixed order (deterministic).
// Each returns false when the shape is outside what it handles (the caller then uses another
// kernel): filters larger than the shared-memory budget, R*S > 25 for dw, 32-bit overflow.
#include <algorithm>

#include "cuda/conv2d.h"
#include "cuda/cuda_common.cuh"

namespace convforge::cuda::detail {

namespace {

constexpr int DV2_THREADS = 128;          // positions per block row; each thread takes 2
constexpr int DV2_SMEM_FLOATS = 12 * 1024;  // 48 KB of filters at most
constexpr int DW_THREADS = 256, DW_RS_MAX = 25;

struct DirectV2Args {
  Conv2dGeometry g;
  const float* in;    // forward: x; backward data: dy
  const float* w;
  const float* bias;  // forward only
  float* out;         // forward: y; backward data: dx
  bool relu;
};

// Forward: grid x = tiles of 2*128 output positions (n, p, q) over the whole batch, so that small
// images leave no thread idle; y = (group, chunk of KB output channels). Shared: ws[(c*R*S + r*S + s)*KB + j] = w[grp*Kg + k0 + j][c][r][s] (0 past Kg).
template <int KB>
__global__ void __launch_bounds__(DV2_THREADS) conv_fwd_direct_v2(DirectV2Args a) {
  extern __shared__ __align__(16) float ws[];
  const Conv2dGeometry& g = a.g;
  const int Cg = static_cast<int>(g.C / g.groups), Kg = static_cast<int>(g.K / g.groups);
  const int RS = static_cast<int>(g.R * g.S), S = static_cast<int>(g.S);
  const int kchunks = (Kg + KB - 1) / KB;
  const int grp = static_cast<int>(blockIdx.y) / kchunks;
  const int k0 = (static_cast<int>(blockIdx.y) % kchunks) * KB;
  const int H = static_cast<int>(g.H), W = static_cast<int>(g.W);
  const int Q = static_cast<int>(g.Q), PQ = static_cast<int>(g.P * g.Q);
  const int NPQ = static_cast<int>(g.N) * PQ;

  const int nw = Cg * RS * KB;
  for (int i = threadIdx.x; i < nw; i += DV2_THREADS) {
    const int j = i % KB, crs = i / KB;
    const int k = k0 + j;
    ws[i] = k < Kg ? __ldg(a.w + (static_cast<int64_t>(grp) * Kg + k) * Cg * RS + crs) : 0.f;
  }
  __syncthreads();

  int n[2], pq[2], h0[2], w0[2];
  bool ok[2];
  const float* xg[2];
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = static_cast<int>(blockIdx.x) * 2 * DV2_THREADS + t * DV2_THREADS + threadIdx.x;
    ok[t] = j < NPQ;
    n[t] = ok[t] ? j / PQ : 0;
    pq[t] = ok[t] ? j - n[t] * PQ : 0;
    const int pp = pq[t] / Q, q = pq[t] - pp * Q;
    h0[t] = pp * static_cast<int>(g.stride_h) - static_cast<int>(g.pad_top);
    w0[t] = q * static_cast<int>(g.stride_w) - static_cast<int>(g.pad_left);
    xg[t] = a.in + (static_cast<int64_t>(n[t]) * g.C + static_cast<int64_t>(grp) * Cg) * H * W;
  }
  const int dil_h = static_cast<int>(g.dilation_h), dil_w = static_cast<int>(g.dilation_w);
  float acc[2][KB] = {};
  for (int c = 0; c < Cg; ++c) {
    const int64_t xc = static_cast<int64_t>(c) * H * W;
    for (int rs = 0, r = 0, s = 0; rs < RS; ++rs) {
      float xv[2];
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int h = h0[t] + r * dil_h, ww = w0[t] + s * dil_w;
        xv[t] = (ok[t] && static_cast<unsigned>(h) < static_cast<unsigned>(H) &&
                 static_cast<unsigned>(ww) < static_cast<unsigned>(W))
                    ? __ldg(xg[t] + xc + h * W + ww)
                    : 0.f;
      }
      const float* wp = ws + (c * RS + rs) * KB;
#pragma unroll
      for (int j4 = 0; j4 < KB / 4; ++j4) {
        const float4 wv = *reinterpret_cast<const float4*>(wp + j4 * 4);
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          acc[t][j4 * 4 + 0] += xv[t] * wv.x;
          acc[t][j4 * 4 + 1] += xv[t] * wv.y;
          acc[t][j4 * 4 + 2] += xv[t] * wv.z;
          acc[t][j4 * 4 + 3] += xv[t] * wv.w;
        }
      }
      if (++s == S) {
        s = 0;
        ++r;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < KB; ++j) {
    const int k = k0 + j;
    if (k >= Kg) break;
    const int64_t kk = static_cast<int64_t>(grp) * Kg + k;
    const float b = a.bias ? __ldg(a.bias + kk) : 0.f;
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      if (!ok[t]) continue;
      float v = acc[t][j] + b;
      if (a.relu) v = fmaxf(v, 0.f);
      a.out[(static_cast<int64_t>(n[t]) * g.K + kk) * PQ + pq[t]] = v;
    }
  }
}

// Backward data: grid x = tiles of 2*128 input positions (n, h, w) over the whole batch,
// y = (group, chunk of CB input channels). Shared: ws[(k*R*S + r*S + s)*CB + j] = w[grp*Kg + k][c0 + j][r][s].
template <int CB>
__global__ void __launch_bounds__(DV2_THREADS) conv_bwd_data_direct(DirectV2Args a) {
  extern __shared__ __align__(16) float ws[];
  const Conv2dGeometry& g = a.g;
  const int Cg = static_cast<int>(g.C / g.groups), Kg = static_cast<int>(g.K / g.groups);
  const int RS = static_cast<int>(g.R * g.S), S = static_cast<int>(g.S);
  const int cchunks = (Cg + CB - 1) / CB;
  const int grp = static_cast<int>(blockIdx.y) / cchunks;
  const int c0 = (static_cast<int>(blockIdx.y) % cchunks) * CB;
  const int W = static_cast<int>(g.W), HW = static_cast<int>(g.H * g.W);
  const int P = static_cast<int>(g.P), Q = static_cast<int>(g.Q);
  const int NHW = static_cast<int>(g.N) * HW;

  const int nw = Kg * RS * CB;
  for (int i = threadIdx.x; i < nw; i += DV2_THREADS) {
    const int j = i % CB, krs = i / CB;
    const int k = krs / RS, rs = krs - k * RS;
    const int c = c0 + j;
    ws[i] = c < Cg ? __ldg(a.w + ((static_cast<int64_t>(grp) * Kg + k) * Cg + c) * RS + rs) : 0.f;
  }
  __syncthreads();

  int n[2], hw[2], hp[2], wp_[2];
  bool ok[2];
  const float* dyg[2];
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = static_cast<int>(blockIdx.x) * 2 * DV2_THREADS + t * DV2_THREADS + threadIdx.x;
    ok[t] = j < NHW;
    n[t] = ok[t] ? j / HW : 0;
    hw[t] = ok[t] ? j - n[t] * HW : 0;
    const int h = hw[t] / W, ww = hw[t] - h * W;
    hp[t] = h + static_cast<int>(g.pad_top);
    wp_[t] = ww + static_cast<int>(g.pad_left);
    dyg[t] = a.in + (static_cast<int64_t>(n[t]) * g.K + static_cast<int64_t>(grp) * Kg) * P * Q;
  }
  const int sh = static_cast<int>(g.stride_h), sw = static_cast<int>(g.stride_w);
  const int dil_h = static_cast<int>(g.dilation_h), dil_w = static_cast<int>(g.dilation_w);
  float acc[2][CB] = {};
  for (int k = 0; k < Kg; ++k) {
    const int64_t dyk = static_cast<int64_t>(k) * P * Q;
    for (int rs = 0, r = 0, s = 0; rs < RS; ++rs) {
      float dv[2];
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int ph = hp[t] - r * dil_h, qw = wp_[t] - s * dil_w;
        float v = 0.f;
        if (ok[t] && ph >= 0 && qw >= 0) {
          const int p = ph / sh, q = qw / sw;
          if (p * sh == ph && q * sw == qw && p < P && q < Q) v = __ldg(dyg[t] + dyk + p * Q + q);
        }
        dv[t] = v;
      }
      const float* wq = ws + (k * RS + rs) * CB;
#pragma unroll
      for (int j4 = 0; j4 < CB / 4; ++j4) {
        const float4 wv = *reinterpret_cast<const float4*>(wq + j4 * 4);
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          acc[t][j4 * 4 + 0] += dv[t] * wv.x;
          acc[t][j4 * 4 + 1] += dv[t] * wv.y;
          acc[t][j4 * 4 + 2] += dv[t] * wv.z;
          acc[t][j4 * 4 + 3] += dv[t] * wv.w;
        }
      }
      if (++s == S) {
        s = 0;
        ++r;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < CB; ++j) {
    const int c = c0 + j;
    if (c >= Cg) break;
#pragma unroll
    for (int t = 0; t < 2; ++t)
      if (ok[t]) a.out[(static_cast<int64_t>(n[t]) * g.C + static_cast<int64_t>(grp) * Cg + c) * HW + hw[t]] = acc[t][j];
  }
}

// Backward weight: block (k, c within the group, slice) sums dy[n][k][p][q] * x[n][c'][h][w]
// over the slice's images and all (p, q), for every tap (r, s) at once. out[slice][k][c][r][s].
__global__ void __launch_bounds__(DW_THREADS)
    conv_bwd_weight_direct(Conv2dGeometry g, const float* dy, const float* x, float* out,
                           int slices, int imgs_per_slice) {
  __shared__ float red[DW_RS_MAX][DW_THREADS];
  __shared__ int tap_h[DW_RS_MAX], tap_w[DW_RS_MAX];
  const int Cg = static_cast<int>(g.C / g.groups), Kg = static_cast<int>(g.K / g.groups);
  const int RS = static_cast<int>(g.R * g.S);
  const int slice = static_cast<int>(blockIdx.x) % slices;
  const int kc = static_cast<int>(blockIdx.x) / slices;
  const int k = kc / Cg, c = kc - k * Cg;  // k global, c within its group
  const int grp = k / Kg;
  const int tid = threadIdx.x;
  if (tid < RS) {
    const int r = tid / static_cast<int>(g.S), s = tid - r * static_cast<int>(g.S);
    tap_h[tid] = r * static_cast<int>(g.dilation_h);
    tap_w[tid] = s * static_cast<int>(g.dilation_w);
  }
  __syncthreads();
  const int H = static_cast<int>(g.H), W = static_cast<int>(g.W);
  const int Q = static_cast<int>(g.Q), PQ = static_cast<int>(g.P * g.Q);
  const int sh = static_cast<int>(g.stride_h), sw = static_cast<int>(g.stride_w);
  const int pt = static_cast<int>(g.pad_top), pl = static_cast<int>(g.pad_left);
  const int nbeg = slice * imgs_per_slice;
  const int nend = min(static_cast<int>(g.N), nbeg + imgs_per_slice);
  float acc[DW_RS_MAX] = {};
  // (image, position) pairs of the slice flattened, so that small images leave no thread idle
  const int count = max(0, nend - nbeg) * PQ;
  for (int i = tid; i < count; i += DW_THREADS) {
    const int n = nbeg + i / PQ, pq = i % PQ;
    const float* dyn = dy + (static_cast<int64_t>(n) * g.K + k) * PQ;
    const float* xn = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * Cg + c) * H * W;
    {
      const int p = pq / Q, q = pq - p * Q;
      const float d = __ldg(dyn + pq);
      const int hb = p * sh - pt, wb = q * sw - pl;
#pragma unroll
      for (int i = 0; i < DW_RS_MAX; ++i) {
        if (i < RS) {
          const int h = hb + tap_h[i], ww = wb + tap_w[i];
          if (static_cast<unsigned>(h) < static_cast<unsigned>(H) &&
              static_cast<unsigned>(ww) < static_cast<unsigned>(W))
            acc[i] += d * __ldg(xn + h * W + ww);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < DW_RS_MAX; ++i) red[i][tid] = acc[i];
  __syncthreads();
  for (int stride = DW_THREADS / 2; stride > 0; stride /= 2) {
    if (tid < stride)
      for (int i = 0; i < RS; ++i) red[i][tid] += red[i][tid + stride];
    __syncthreads();
  }
  if (tid < RS) out[(static_cast<int64_t>(slice) * g.K * Cg + kc) * RS + tid] = red[tid][0];
}

// dw[i] = sum over slices of ws[slice * n + i], in slice order.
__global__ void sum_slices_kernel(const float* ws, int slices, int64_t n, float* dw) {
  for (int64_t i = global_thread_id(); i < n; i += grid_stride()) {
    float v = 0.f;
    for (int s = 0; s < slices; ++s) v += ws[s * n + i];
    dw[i] = v;
  }
}

// Channels per chunk (8 or 16) and the shared-memory floats for the filters of one chunk;
// 0 when they do not fit.
int direct_chunk(int64_t channels_out, int64_t per_chunk_filter_floats_per_channel) {
  const int cb = channels_out <= 8 ? 8 : 16;
  return per_chunk_filter_floats_per_channel * cb <= DV2_SMEM_FLOATS ? cb : 0;
}

bool fits_int32(const Conv2dGeometry& g) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  return g.x_size() < lim && g.y_size() < lim && g.w_size() < lim &&
         g.N * g.H * g.W + 4 * DV2_THREADS < lim && g.N * g.P * g.Q + 4 * DV2_THREADS < lim && (g.P + 1) * g.stride_h + g.R * g.dilation_h + g.pad_top < (1 << 30) &&
         (g.Q + 1) * g.stride_w + g.S * g.dilation_w + g.pad_left < (1 << 30) &&
         g.H + g.pad_top < (1 << 30) && g.W + g.pad_left < (1 << 30);
}

// Slices of the batch for dw: about four blocks per SM in all (the blocks are short and
// latency-bound), at most one slice per image.
int dw_slices(const Conv2dGeometry& g, int sms) {
  const int64_t blocks = g.K * g.C_per_group();
  int64_t slices = std::max<int64_t>(1, ceil_div(4 * sms, std::max<int64_t>(1, blocks)));
  slices = std::min<int64_t>(slices, std::max<int64_t>(1, g.N));
  slices = std::min<int64_t>(slices, std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(1, g.w_size())));
  const int64_t per = ceil_div(std::max<int64_t>(1, g.N), slices);
  return static_cast<int>(ceil_div(std::max<int64_t>(1, g.N), per));
}

}  // namespace

// ---- host ---------------------------------------------------------------------------------

bool direct_v2_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y, bool relu) {
  const char* op = "conv2d_forward (direct_v2)";
  if (!fits_int32(g)) return false;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const int kb = direct_chunk(Kg, Cg * RS);
  if (kb == 0) return false;
  const int64_t chunks = ceil_div(Kg, kb) * g.groups;
  const int64_t NPQ = g.N * g.P * g.Q;
  if (chunks > 65535 || ceil_div(NPQ, 2 * DV2_THREADS) > 2147483647LL) return false;
  if (g.y_size() == 0) return true;
  const size_t smem = static_cast<size_t>(std::max<int64_t>(1, Cg * RS * kb)) * sizeof(float);
  cudaStream_t s = current_stream();
  DirectV2Args a{g, x, w, bias, y, relu};
  dim3 grid(static_cast<unsigned>(ceil_div(NPQ, 2 * DV2_THREADS)), static_cast<unsigned>(chunks));
  if (kb == 8)
    conv_fwd_direct_v2<8><<<grid, DV2_THREADS, smem, s>>>(a);
  else
    conv_fwd_direct_v2<16><<<grid, DV2_THREADS, smem, s>>>(a);
  check_launch(op);
  return true;
}

bool direct_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const char* op = "conv2d_backward (direct, data)";
  if (!fits_int32(g)) return false;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const int cb = direct_chunk(Cg, Kg * RS);
  if (cb == 0) return false;
  const int64_t chunks = ceil_div(Cg, cb) * g.groups;
  const int64_t NHW = g.N * g.H * g.W;
  if (chunks > 65535 || ceil_div(NHW, 2 * DV2_THREADS) > 2147483647LL) return false;
  if (g.x_size() == 0) return true;
  const size_t smem = static_cast<size_t>(std::max<int64_t>(1, Kg * RS * cb)) * sizeof(float);
  cudaStream_t s = current_stream();
  DirectV2Args a{g, dy, w, nullptr, dx, false};
  dim3 grid(static_cast<unsigned>(ceil_div(NHW, 2 * DV2_THREADS)), static_cast<unsigned>(chunks));
  if (cb == 8)
    conv_bwd_data_direct<8><<<grid, DV2_THREADS, smem, s>>>(a);
  else
    conv_bwd_data_direct<16><<<grid, DV2_THREADS, smem, s>>>(a);
  check_launch(op);
  return true;
}

bool direct_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw) {
  const char* op = "conv2d_backward (direct, weight)";
  if (!fits_int32(g) || g.R * g.S > DW_RS_MAX) return false;
  const int64_t n_out = g.w_size();
  if (n_out == 0) return true;
  cudaStream_t s = current_stream();
  if (g.N * g.P * g.Q == 0) {
    CUDA_CHECK(op, cudaMemsetAsync(dw, 0, n_out * sizeof(float), s));
    return true;
  }
  const int sms = device_props(current_device()).sm_count;
  const int slices = dw_slices(g, sms);
  const int64_t blocks = g.K * g.C_per_group() * slices;
  if (blocks > 2147483647LL) return false;
  const int per = static_cast<int>(ceil_div(g.N, slices));
  Workspace ws(slices > 1 ? static_cast<size_t>(slices * n_out) * sizeof(float) : 1);
  float* out = slices > 1 ? ws.as<float>() : dw;
  conv_bwd_weight_direct<<<static_cast<unsigned>(blocks), DW_THREADS, 0, s>>>(g, dy, x, out, slices, per);
  check_launch(op);
  if (slices > 1) {
    sum_slices_kernel<<<grid_for(n_out, 256), 256, 0, s>>>(ws.as<float>(), slices, n_out, dw);
    check_launch(op);
  }
  return true;
}

}  // namespace convforge::cuda::detail
