// Max and average pooling on the GPU. One thread per output element (forward) or per input
// element (average backward), grid-stride loops with 64-bit indices; a warp's threads take
// consecutive outputs of a row, so the loads of a window row are coalesced across the warp.
// The window arithmetic follows PyTorch's CUDA kernels line for line (max: first-seen maximum,
// NaN wins; average: divisor from the window clipped to the padded input, or to the input
// when count_include_pad is false).
#include <stdexcept>

#include "cuda/cuda_common.cuh"
#include "cuda/pool2d.h"

namespace convforge::cuda {

namespace {

__global__ void max_pool_fwd(Pool2dGeometry g, const float* x, float* y, int64_t* indices) {
  const int64_t total = g.y_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q, p = (idx / g.Q) % g.P, plane = idx / (g.P * g.Q);
    int64_t hstart = p * g.stride_h - g.pad_h, wstart = q * g.stride_w - g.pad_w;
    const int64_t hend = min(hstart + (g.R - 1) * g.dilation_h + 1, g.H);
    const int64_t wend = min(wstart + (g.S - 1) * g.dilation_w + 1, g.W);
    while (hstart < 0) hstart += g.dilation_h;
    while (wstart < 0) wstart += g.dilation_w;
    const float* xp = x + plane * g.H * g.W;
    float best = -INFINITY;
    int64_t best_i = hstart * g.W + wstart;
    for (int64_t h = hstart; h < hend; h += g.dilation_h)
      for (int64_t w = wstart; w < wend; w += g.dilation_w) {
        const float v = xp[h * g.W + w];
        if (v > best || isnan(v)) {
          best = v;
          best_i = h * g.W + w;
        }
      }
    y[idx] = best;
    if (indices) indices[idx] = best_i;
  }
}

__global__ void max_pool_bwd(int64_t planes, int64_t PQ, int64_t HW, const float* dy,
                             const int64_t* indices, float* dx, int* bad) {
  const int64_t total = planes * PQ;
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t i = indices[idx];
    if (i < 0 || i >= HW) {
      *bad = 1;
      continue;
    }
    atomicAdd(dx + (idx / PQ) * HW + i, dy[idx]);
  }
}

__device__ __forceinline__ void avg_window(const Pool2dGeometry& g, bool cip, int64_t p, int64_t q,
                                           int64_t& hs, int64_t& he, int64_t& ws, int64_t& we,
                                           float& divisor) {
  hs = p * g.stride_h - g.pad_h;
  ws = q * g.stride_w - g.pad_w;
  he = min(hs + g.R, g.H + g.pad_h);
  we = min(ws + g.S, g.W + g.pad_w);
  const int64_t pool_size = (he - hs) * (we - ws);
  hs = max(hs, int64_t(0));
  ws = max(ws, int64_t(0));
  he = min(he, g.H);
  we = min(we, g.W);
  divisor = static_cast<float>(cip ? pool_size : (he - hs) * (we - ws));
}

__global__ void avg_pool_fwd(Pool2dGeometry g, bool cip, const float* x, float* y) {
  const int64_t total = g.y_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q, p = (idx / g.Q) % g.P, plane = idx / (g.P * g.Q);
    int64_t hs, he, ws, we;
    float divisor;
    avg_window(g, cip, p, q, hs, he, ws, we, divisor);
    if (hs >= he || ws >= we) {  // cannot happen for geometries that pass validation
      y[idx] = 0.f;
      continue;
    }
    const float* xp = x + plane * g.H * g.W;
    float acc = 0.f;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) acc += xp[h * g.W + w];
    y[idx] = acc / divisor;
  }
}

__global__ void avg_pool_bwd(Pool2dGeometry g, bool cip, const float* dy, float* dx) {
  const int64_t total = g.x_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t w = idx % g.W, h = (idx / g.W) % g.H, plane = idx / (g.H * g.W);
    const int64_t hp = h + g.pad_h, wp = w + g.pad_w;
    const int64_t pstart = hp < g.R ? 0 : (hp - g.R) / g.stride_h + 1;
    const int64_t pend = min(hp / g.stride_h + 1, g.P);
    const int64_t qstart = wp < g.S ? 0 : (wp - g.S) / g.stride_w + 1;
    const int64_t qend = min(wp / g.stride_w + 1, g.Q);
    const float* d = dy + plane * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = pstart; p < pend; ++p)
      for (int64_t q = qstart; q < qend; ++q) {
        int64_t hs, he, ws, we;
        float divisor;
        avg_window(g, cip, p, q, hs, he, ws, we, divisor);
        if (h >= hs && h < he && w >= ws && w < we) acc += d[p * g.Q + q] / divisor;
      }
    dx[idx] = acc;
  }
}

// "fast": the window size is a template constant (2x2, 3x3) and dilation is 1, so the window
// loops unroll into straight-line loads; the out-of-range test per element stays.
template <int KR, int KS>
__global__ void max_pool_fwd_fixed(Pool2dGeometry g, const float* __restrict__ x, float* y,
                                   int64_t* indices) {
  const int64_t total = g.y_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q, p = (idx / g.Q) % g.P, plane = idx / (g.P * g.Q);
    const int64_t h0 = p * g.stride_h - g.pad_h, w0 = q * g.stride_w - g.pad_w;
    const float* xp = x + plane * g.H * g.W;
    float best = -INFINITY;
    int64_t best_i = max(h0, int64_t(0)) * g.W + max(w0, int64_t(0));
#pragma unroll
    for (int r = 0; r < KR; ++r) {
      const int64_t h = h0 + r;
      if (h < 0 || h >= g.H) continue;
#pragma unroll
      for (int s = 0; s < KS; ++s) {
        const int64_t w = w0 + s;
        if (w < 0 || w >= g.W) continue;
        const float v = __ldg(xp + h * g.W + w);
        if (v > best || isnan(v)) {
          best = v;
          best_i = h * g.W + w;
        }
      }
    }
    y[idx] = best;
    if (indices) indices[idx] = best_i;
  }
}

template <int KR, int KS>
__global__ void avg_pool_fwd_fixed(Pool2dGeometry g, bool cip, const float* __restrict__ x, float* y) {
  const int64_t total = g.y_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q, p = (idx / g.Q) % g.P, plane = idx / (g.P * g.Q);
    int64_t hs, he, ws, we;
    float divisor;
    avg_window(g, cip, p, q, hs, he, ws, we, divisor);
    const int64_t h0 = p * g.stride_h - g.pad_h, w0 = q * g.stride_w - g.pad_w;
    const float* xp = x + plane * g.H * g.W;
    float acc = 0.f;
#pragma unroll
    for (int r = 0; r < KR; ++r) {
      const int64_t h = h0 + r;
      if (h < hs || h >= he) continue;
#pragma unroll
      for (int s = 0; s < KS; ++s) {
        const int64_t w = w0 + s;
        if (w < ws || w >= we) continue;
        acc += __ldg(xp + h * g.W + w);
      }
    }
    y[idx] = (hs >= he || ws >= we) ? 0.f : acc / divisor;
  }
}

// Adaptive average pooling: one thread per output, its bin summed in row-major order.
__global__ void adaptive_avg_fwd(AdaptivePool2dGeometry g, const float* __restrict__ x, float* y) {
  const int64_t total = g.y_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q, p = (idx / g.Q) % g.P, plane = idx / (g.P * g.Q);
    const int64_t hs = adaptive_bin_start(p, g.H, g.P), he = adaptive_bin_end(p, g.H, g.P);
    const int64_t ws = adaptive_bin_start(q, g.W, g.Q), we = adaptive_bin_end(q, g.W, g.Q);
    const float* xp = x + plane * g.H * g.W;
    float acc = 0.f;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) acc += __ldg(xp + h * g.W + w);
    y[idx] = acc / static_cast<float>((he - hs) * (we - ws));
  }
}

// Global average (1x1 output): one block per plane (grid-stride over planes), coalesced loads.
__global__ void adaptive_avg_global_fwd(int64_t planes, int64_t HW, const float* __restrict__ x,
                                        float* y) {
  __shared__ float scratch[33];
  for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    const float* xp = x + plane * HW;
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) acc += __ldg(xp + i);
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) y[plane] = acc / static_cast<float>(HW);
  }
}

// Backward as a gather: input (h, w) lies in the bins of outputs [adaptive_bin_start(h, P, H),
// adaptive_bin_end(h, P, H)) by the same for w (geometry.h), so no atomics are needed.
__global__ void adaptive_avg_bwd(AdaptivePool2dGeometry g, const float* __restrict__ dy, float* dx) {
  const int64_t total = g.x_size();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t w = idx % g.W, h = (idx / g.W) % g.H, plane = idx / (g.H * g.W);
    const int64_t ps = adaptive_bin_start(h, g.P, g.H), pe = adaptive_bin_end(h, g.P, g.H);
    const int64_t qs = adaptive_bin_start(w, g.Q, g.W), qe = adaptive_bin_end(w, g.Q, g.W);
    const float* d = dy + plane * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = ps; p < pe; ++p) {
      const int64_t rows = adaptive_bin_end(p, g.H, g.P) - adaptive_bin_start(p, g.H, g.P);
      for (int64_t q = qs; q < qe; ++q) {
        const int64_t cols = adaptive_bin_end(q, g.W, g.Q) - adaptive_bin_start(q, g.W, g.Q);
        acc += __ldg(d + p * g.Q + q) / static_cast<float>(rows * cols);
      }
    }
    dx[idx] = acc;
  }
}

// Which fixed window fits g (0: none).
int fixed_window(const Pool2dGeometry& g) {
  if (g.dilation_h != 1 || g.dilation_w != 1) return 0;
  if (g.R == 2 && g.S == 2) return 2;
  if (g.R == 3 && g.S == 3) return 3;
  return 0;
}

void check_pool_algo(const std::string& algo, const char* op) {
  if (algo != "reference" && algo != "fast" && algo != "auto")
    throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo +
                                "' on cuda; choose one of reference, fast, auto");
}

}  // namespace

void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices,
                        const std::string& algo) {
  const char* op = "max_pool2d_forward";
  check_pool_algo(algo, op);
  if (g.y_size() == 0) return;
  const unsigned grid = grid_for(g.y_size(), 256);
  cudaStream_t s = current_stream();
  const int fw = algo == "reference" ? 0 : fixed_window(g);
  if (fw == 2) max_pool_fwd_fixed<2, 2><<<grid, 256, 0, s>>>(g, x, y, indices);
  else if (fw == 3) max_pool_fwd_fixed<3, 3><<<grid, 256, 0, s>>>(g, x, y, indices);
  else max_pool_fwd<<<grid, 256, 0, s>>>(g, x, y, indices);
  check_launch(op);
}

void max_pool2d_backward(int64_t planes, int64_t PQ, int64_t HW, const float* dy,
                         const int64_t* indices, float* dx) {
  const char* op = "max_pool2d_backward";
  cudaStream_t s = current_stream();
  if (planes * HW > 0) CUDA_CHECK(op, cudaMemsetAsync(dx, 0, planes * HW * sizeof(float), s));
  if (planes * PQ == 0) return;
  Workspace flag(sizeof(int));
  CUDA_CHECK(op, cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), s));
  max_pool_bwd<<<grid_for(planes * PQ, 256), 256, 0, s>>>(planes, PQ, HW, dy, indices, dx,
                                                          flag.as<int>());
  check_launch(op);
  int bad = 0;
  CUDA_CHECK(op, cudaMemcpyAsync(&bad, flag.as<int>(), sizeof(int), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(op, cudaStreamSynchronize(s));
  if (bad)
    throw std::out_of_range("max_pool2d_backward: an index is outside [0, " + std::to_string(HW) +
                            ") (the input plane's H*W)");
}

void avg_pool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y,
                        const std::string& algo) {
  const char* op = "avg_pool2d_forward";
  check_pool_algo(algo, op);
  if (g.dilation_h != 1 || g.dilation_w != 1)
    throw std::invalid_argument("avg_pool2d: dilation must be 1");
  if (g.y_size() == 0) return;
  const unsigned grid = grid_for(g.y_size(), 256);
  cudaStream_t s = current_stream();
  const int fw = algo == "reference" ? 0 : fixed_window(g);
  if (fw == 2) avg_pool_fwd_fixed<2, 2><<<grid, 256, 0, s>>>(g, count_include_pad, x, y);
  else if (fw == 3) avg_pool_fwd_fixed<3, 3><<<grid, 256, 0, s>>>(g, count_include_pad, x, y);
  else avg_pool_fwd<<<grid, 256, 0, s>>>(g, count_include_pad, x, y);
  check_launch(op);
}

void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const float* dy,
                         float* dx) {
  const char* op = "avg_pool2d_backward";
  if (g.dilation_h != 1 || g.dilation_w != 1)
    throw std::invalid_argument("avg_pool2d: dilation must be 1");
  if (g.x_size() == 0) return;
  avg_pool_bwd<<<grid_for(g.x_size(), 256), 256, 0, current_stream()>>>(g, count_include_pad, dy, dx);
  check_launch(op);
}

void adaptive_avg_pool2d_forward(const AdaptivePool2dGeometry& g, const float* x, float* y,
                                 const std::string& algo) {
  const char* op = "adaptive_avg_pool2d_forward";
  check_pool_algo(algo, op);
  if (g.y_size() == 0) return;
  cudaStream_t s = current_stream();
  if (g.global() && algo != "reference") {
    const int64_t planes = g.N * g.C;
    const unsigned grid = static_cast<unsigned>(planes < 65535 ? planes : 65535);
    adaptive_avg_global_fwd<<<grid, 256, 0, s>>>(planes, g.H * g.W, x, y);
  } else {
    adaptive_avg_fwd<<<grid_for(g.y_size(), 256), 256, 0, s>>>(g, x, y);
  }
  check_launch(op);
}

void adaptive_avg_pool2d_backward(const AdaptivePool2dGeometry& g, const float* dy, float* dx) {
  const char* op = "adaptive_avg_pool2d_backward";
  if (g.x_size() == 0) return;
  adaptive_avg_bwd<<<grid_for(g.x_size(), 256), 256, 0, current_stream()>>>(g, dy, dx);
  check_launch(op);
}

std::vector<KernelInfo> pool2d_algos() {
  const std::string src = "cuda/pool_kernels.cu";
  return {
      {"reference", "reference", "one thread per output (forward) / input (avg backward)", src},
      {"fast", "production", "2x2 and 3x3 windows (dilation 1) unrolled at compile time; adaptive 1x1 "
       "output one block reduction per plane; else reference", src},
      {"auto", "production", "fast", src},
  };
}

}  // namespace convforge::cuda
