// conv2d on the GPU: the plain kernels and the dispatch by algo.
//   forward  "reference"     one thread per output element, loops over (c, r, s). Read first.
//            "direct"        one thread per output position computing 8 output channels, so that
//                            each input value it loads is used 8 times (LeNet-sized channel counts).
//            "im2col"        per chunk of images: unfold x into a (C/g*R*S) x (n*P*Q) buffer, one
//                            warp-tiled SGEMM per group, bias and ReLU fused into its epilogue.
//            "implicit" the same GEMM with tiles gathered from x (conv2d_implicit_gemm.cu).
//            "direct_v2"     small K/groups: filters in shared memory (conv2d_direct_v2.cu).
//            "implicit_v2"   implicit with a depth table (no per-element divisions), 16-byte
//                            weight loads and split-K for small grids (conv2d_implicit_gemm_v2.cu).
//   backward "reference"     dx: one thread per input element, gathering every (k, r, s) that
//                            touches it; dw: one thread per weight, summing over (n, p, q).
//            "im2col"        dx: SGEMM W^T dy into columns, then col2im as a gather (no atomics);
//                            dw: SGEMM dy col^T accumulated over chunks of images.
//            "implicit" see conv2d_implicit_gemm.cu (dw split over N*P*Q, deterministic).
//            "implicit_v2"   see conv2d_implicit_gemm_v2.cu (dx at stride 1 as a forward conv).
//            "direct"        small channel counts, see conv2d_direct_v2.cu.
//   db is a block reduction per output channel, in a fixed order.
#include <algorithm>
#include <stdexcept>

#include "cuda/conv2d.h"
#include "cuda/cuda_common.cuh"

namespace convforge::cuda {

namespace {

// ---- forward ------------------------------------------------------------------------------
__global__ void conv_fwd_reference(Conv2dGeometry g, const float* x, const float* w,
                                   const float* bias, float* y, bool relu) {
  const int64_t total = g.y_size();
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t q = idx % g.Q;
    const int64_t p = (idx / g.Q) % g.P;
    const int64_t k = (idx / (g.P * g.Q)) % g.K;
    const int64_t n = idx / (g.K * g.P * g.Q);
    const int64_t grp = k / Kg;
    float acc = 0.f;
    for (int64_t c = 0; c < Cg; ++c) {
      const float* xp = x + (n * g.C + grp * Cg + c) * g.H * g.W;
      const float* wp = w + (k * Cg + c) * g.R * g.S;
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
        if (h < 0 || h >= g.H) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t ww = q * g.stride_w - g.pad_left + s * g.dilation_w;
          if (ww < 0 || ww >= g.W) continue;
          acc += xp[h * g.W + ww] * wp[r * g.S + s];
        }
      }
    }
    if (bias) acc += bias[k];
    if (relu) acc = fmaxf(acc, 0.f);
    y[idx] = acc;
  }
}

constexpr int DIRECT_KB = 8, DIRECT_THREADS = 128;

// grid: x = tiles of P*Q, y = (group, block of 8 output channels), z = image (from n0).
__global__ void __launch_bounds__(DIRECT_THREADS)
    conv_fwd_direct(Conv2dGeometry g, int64_t n0, const float* x, const float* w,
                    const float* bias, float* y, bool relu) {
  const int64_t PQ = g.P * g.Q;
  const int64_t pq = static_cast<int64_t>(blockIdx.x) * DIRECT_THREADS + threadIdx.x;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t kblocks = (Kg + DIRECT_KB - 1) / DIRECT_KB;
  const int64_t grp = blockIdx.y / kblocks;
  const int64_t kb0 = (blockIdx.y % kblocks) * DIRECT_KB;
  const int64_t n = n0 + blockIdx.z;
  if (pq >= PQ) return;
  const int64_t p = pq / g.Q, q = pq - p * g.Q;
  const int64_t h0 = p * g.stride_h - g.pad_top, w0 = q * g.stride_w - g.pad_left;
  const int nk = static_cast<int>(min(static_cast<int64_t>(DIRECT_KB), Kg - kb0));
  const int64_t RS = g.R * g.S;
  const float* wg = w + (grp * Kg + kb0) * Cg * RS;  // weights of output channel kb0
  float acc[DIRECT_KB] = {};
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xp = x + (n * g.C + grp * Cg + c) * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t h = h0 + r * g.dilation_h;
      if (h < 0 || h >= g.H) continue;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t ww = w0 + s * g.dilation_w;
        if (ww < 0 || ww >= g.W) continue;
        const float xv = __ldg(xp + h * g.W + ww);
        const int64_t woff = c * RS + r * g.S + s;
#pragma unroll
        for (int j = 0; j < DIRECT_KB; ++j)  // the same address across the block: a broadcast
          if (j < nk) acc[j] += xv * __ldg(wg + j * Cg * RS + woff);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < DIRECT_KB; ++j) {
    if (j >= nk) break;
    const int64_t k = grp * Kg + kb0 + j;
    float v = acc[j];
    if (bias) v += bias[k];
    if (relu) v = fmaxf(v, 0.f);
    y[(n * g.K + k) * PQ + pq] = v;
  }
}

// col[(c*R + r)*S + s][i*PQ + pq] = x[n0 + i][grp*Cg + c][h][w] (0 in the padding).
__global__ void im2col_kernel(Conv2dGeometry g, int64_t n0, int64_t nb, int64_t grp,
                              const float* x, float* col) {
  const int64_t PQ = g.P * g.Q, Cg = g.C_per_group();
  const int64_t cols = nb * PQ, rows = Cg * g.R * g.S;
  const int64_t total = rows * cols;
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t j = idx % cols, row = idx / cols;
    const int64_t i = j / PQ, pq = j - i * PQ;
    const int64_t p = pq / g.Q, q = pq - p * g.Q;
    const int64_t s = row % g.S, r = (row / g.S) % g.R, c = row / (g.R * g.S);
    const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
    const int64_t ww = q * g.stride_w - g.pad_left + s * g.dilation_w;
    float v = 0.f;
    if (h >= 0 && h < g.H && ww >= 0 && ww < g.W)
      v = x[(((n0 + i) * g.C + grp * Cg + c) * g.H + h) * g.W + ww];
    col[idx] = v;
  }
}

// dx[n0+i][grp*Cg + c][h][w] = sum over (r, s) of col[(c, r, s)][i*PQ + p*Q + q] where the
// window position (p, q) covers (h, w): a gather, so each dx element is written once.
__global__ void col2im_kernel(Conv2dGeometry g, int64_t n0, int64_t nb, int64_t grp,
                              const float* col, float* dx) {
  const int64_t PQ = g.P * g.Q, Cg = g.C_per_group(), HW = g.H * g.W;
  const int64_t cols = nb * PQ;
  const int64_t total = nb * Cg * HW;
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t ww = idx % g.W, h = (idx / g.W) % g.H;
    const int64_t c = (idx / HW) % Cg, i = idx / (HW * Cg);
    float acc = 0.f;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ph = h + g.pad_top - r * g.dilation_h;
      if (ph < 0 || ph % g.stride_h) continue;
      const int64_t p = ph / g.stride_h;
      if (p >= g.P) continue;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t qw = ww + g.pad_left - s * g.dilation_w;
        if (qw < 0 || qw % g.stride_w) continue;
        const int64_t q = qw / g.stride_w;
        if (q >= g.Q) continue;
        acc += col[((c * g.R + r) * g.S + s) * cols + i * PQ + p * g.Q + q];
      }
    }
    dx[((n0 + i) * g.C + grp * Cg + c) * HW + h * g.W + ww] = acc;
  }
}

// Between y's layout (n, k, pq) and a GEMM's (k, i*PQ + pq) for images n0..n0+nb of a group.
// to_nchw: y[n][grp*Kg + k][pq] = tmp[k][i*PQ + pq] (+bias, relu); else tmp = dy's slice.
__global__ void regroup_kernel(Conv2dGeometry g, int64_t n0, int64_t nb, int64_t grp,
                               bool to_nchw, float* tmp, float* nchw, const float* bias,
                               bool relu) {
  const int64_t PQ = g.P * g.Q, Kg = g.K_per_group();
  const int64_t cols = nb * PQ, total = Kg * cols;
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t k = idx / cols, j = idx - k * cols;
    const int64_t i = j / PQ, pq = j - i * PQ;
    const int64_t o = ((n0 + i) * g.K + grp * Kg + k) * PQ + pq;
    if (to_nchw) {
      float v = tmp[idx];
      if (bias) v += bias[grp * Kg + k];
      if (relu) v = fmaxf(v, 0.f);
      nchw[o] = v;
    } else {
      tmp[idx] = nchw[o];
    }
  }
}

// ---- backward references ------------------------------------------------------------------
__global__ void conv_bwd_data_reference(Conv2dGeometry g, const float* dy, const float* w,
                                        float* dx) {
  const int64_t total = g.x_size();
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t ww = idx % g.W, h = (idx / g.W) % g.H;
    const int64_t c = (idx / (g.H * g.W)) % g.C, n = idx / (g.C * g.H * g.W);
    const int64_t grp = c / Cg, cg = c - grp * Cg;
    float acc = 0.f;
    for (int64_t kk = 0; kk < Kg; ++kk) {
      const int64_t k = grp * Kg + kk;
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t ph = h + g.pad_top - r * g.dilation_h;
        if (ph < 0 || ph % g.stride_h) continue;
        const int64_t p = ph / g.stride_h;
        if (p >= g.P) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t qw = ww + g.pad_left - s * g.dilation_w;
          if (qw < 0 || qw % g.stride_w) continue;
          const int64_t q = qw / g.stride_w;
          if (q >= g.Q) continue;
          acc += dy[((n * g.K + k) * g.P + p) * g.Q + q] * w[((k * Cg + cg) * g.R + r) * g.S + s];
        }
      }
    }
    dx[idx] = acc;
  }
}

__global__ void conv_bwd_weight_reference(Conv2dGeometry g, const float* dy, const float* x,
                                          float* dw) {
  const int64_t total = g.w_size();
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    const int64_t s = idx % g.S, r = (idx / g.S) % g.R;
    const int64_t cg = (idx / (g.R * g.S)) % Cg, k = idx / (Cg * g.R * g.S);
    const int64_t c = (k / Kg) * Cg + cg;
    float acc = 0.f;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t p = 0; p < g.P; ++p) {
        const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
        if (h < 0 || h >= g.H) continue;
        for (int64_t q = 0; q < g.Q; ++q) {
          const int64_t ww = q * g.stride_w - g.pad_left + s * g.dilation_w;
          if (ww < 0 || ww >= g.W) continue;
          acc += dy[((n * g.K + k) * g.P + p) * g.Q + q] * x[((n * g.C + c) * g.H + h) * g.W + ww];
        }
      }
    dw[idx] = acc;
  }
}

// db[k] = sum over n, pq of dy[n][k][pq]; one block per channel, a fixed summation order.
__global__ void conv_bias_grad(Conv2dGeometry g, const float* dy, float* db) {
  __shared__ float scratch[33];
  const int64_t k = blockIdx.x, PQ = g.P * g.Q;
  float acc = 0.f;
  for (int64_t n = 0; n < g.N; ++n) {
    const float* d = dy + (n * g.K + k) * PQ;
    for (int64_t i = threadIdx.x; i < PQ; i += blockDim.x) acc += d[i];
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) db[k] = acc;
}

// ---- helpers ------------------------------------------------------------------------------

// Images per chunk for the im2col paths: a workspace of at most ~64 MiB (at least one image).
int64_t images_per_chunk(const Conv2dGeometry& g, int64_t floats_per_image) {
  const int64_t budget = int64_t(16) << 20;  // floats
  return std::max<int64_t>(1, std::min<int64_t>(g.N, budget / std::max<int64_t>(1, floats_per_image)));
}

void check_algo(const std::string& algo, std::initializer_list<const char*> names, const char* op) {
  for (const char* n : names)
    if (algo == n) return;
  std::string list;
  for (const char* n : names) list += std::string(list.empty() ? "" : ", ") + n;
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo + "' on cuda; choose one of " + list);
}

// ==== auto's choices: the ONE place to change them ============================================
// Each line names the kernel "auto" runs in one regime. The kernels of H100 run 1 were, in order:
// "direct", "implicit", "reference", "implicit", "implicit": put those back to undo this round.
constexpr const char* kAutoForwardSmall = "direct_v2";        // K/groups <= 32
constexpr const char* kAutoForwardGemm = "implicit_v2";       // otherwise
constexpr const char* kAutoBackwardDataSmall = "direct";      // dx when C/groups < 4
constexpr const char* kAutoBackwardWeightSmall = "direct";    // dw when K/groups <= 32, C/groups*R*S <= 32
// H100 run 2: "direct" won LeNet c1's backward (C=1, 5x5: 0.157 vs 0.216 ms at N=64) but lost c3's
// (C=6, 5x5: 0.230 vs 0.144 ms for implicit_v2), hence the small-channel limits above.
constexpr const char* kAutoBackwardGemm = "implicit_v2";      // dx and dw otherwise
// =============================================================================================
std::string auto_forward_algo(const Conv2dGeometry& g) {
  return g.K_per_group() <= 32 ? kAutoForwardSmall : kAutoForwardGemm;
}
std::string auto_backward_data_algo(const Conv2dGeometry& g) {
  return g.C_per_group() < 4 ? kAutoBackwardDataSmall : kAutoBackwardGemm;
}
std::string auto_backward_weight_algo(const Conv2dGeometry& g) {
  if (g.N * g.P * g.Q >= (int64_t(1) << 31)) return "im2col";  // the implicit kernels decode in 32 bits
  const bool small = g.K_per_group() <= 32 && g.C_per_group() * g.R * g.S <= 32;
  return small ? kAutoBackwardWeightSmall : kAutoBackwardGemm;
}

}  // namespace

// ---- forward ------------------------------------------------------------------------------

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo_in, bool relu) {
  const char* op = "conv2d_forward";
  check_algo(algo_in, {"reference", "direct", "direct_v2", "im2col", "implicit", "implicit_v2", "auto"}, op);
  if (g.y_size() == 0) return;
  std::string algo = algo_in;
  if (algo == "auto") algo = auto_forward_algo(g);
  if (algo == "direct_v2") {
    if (detail::direct_v2_forward(g, x, w, bias, y, relu)) return;
    algo = "direct";  // filters too large for its shared memory
  }
  cudaStream_t s = current_stream();
  if (algo == "reference") {
    conv_fwd_reference<<<grid_for(g.y_size(), 256), 256, 0, s>>>(g, x, w, bias, y, relu);
    check_launch(op);
  } else if (algo == "direct") {
    const int64_t PQ = g.P * g.Q;
    const int64_t kblocks = ceil_div(g.K_per_group(), DIRECT_KB) * g.groups;
    if (kblocks > 65535) throw std::invalid_argument("conv2d_forward: too many output channels for 'direct'");
    for (int64_t n0 = 0; n0 < g.N; n0 += 65535) {
      const int64_t nb = std::min<int64_t>(65535, g.N - n0);
      dim3 grid(static_cast<unsigned>(ceil_div(PQ, DIRECT_THREADS)), static_cast<unsigned>(kblocks),
                static_cast<unsigned>(nb));
      conv_fwd_direct<<<grid, DIRECT_THREADS, 0, s>>>(g, n0, x, w, bias, y, relu);
      check_launch(op);
    }
  } else if (algo == "im2col") {
    const int64_t PQ = g.P * g.Q, Cg = g.C_per_group(), Kg = g.K_per_group();
    const int64_t CRS = Cg * g.R * g.S;
    const int64_t nb_max = images_per_chunk(g, (CRS + Kg) * PQ);
    Workspace col(static_cast<size_t>(CRS * nb_max * PQ) * sizeof(float));
    Workspace tmp(static_cast<size_t>(nb_max > 1 ? Kg * nb_max * PQ : 1) * sizeof(float));
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        im2col_kernel<<<grid_for(CRS * nb * PQ, 256), 256, 0, s>>>(g, n0, nb, grp, x, col.as<float>());
        check_launch(op);
        const float* wg = w + grp * Kg * CRS;
        if (nb == 1) {  // the GEMM writes y's slice directly
          GemmEpilogue ep{bias ? bias + grp * Kg : nullptr, nullptr, relu};
          sgemm(false, false, Kg, PQ, CRS, 1.f, wg, CRS, col.as<float>(), PQ, 0.f,
                y + (n0 * g.K + grp * Kg) * PQ, PQ, ep, "auto");
        } else {
          sgemm(false, false, Kg, nb * PQ, CRS, 1.f, wg, CRS, col.as<float>(), nb * PQ, 0.f,
                tmp.as<float>(), nb * PQ, {}, "auto");
          regroup_kernel<<<grid_for(Kg * nb * PQ, 256), 256, 0, s>>>(g, n0, nb, grp, true, tmp.as<float>(),
                                                                     y, bias, relu);
          check_launch(op);
        }
      }
    }
  } else if (algo == "implicit_v2") {
    detail::implicit_v2_forward(g, x, w, bias, y, relu);
  } else {
    detail::implicit_gemm_forward(g, x, w, bias, y, relu);
  }
}

// ---- backward -----------------------------------------------------------------------------

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo_in) {
  const char* op = "conv2d_backward (data)";
  check_algo(algo_in, {"reference", "im2col", "implicit", "implicit_v2", "direct", "auto"}, op);
  if (g.x_size() == 0) return;
  std::string algo = algo_in;
  if (algo == "auto") algo = auto_backward_data_algo(g);
  if (algo == "direct") {
    if (detail::direct_backward_data(g, dy, w, dx)) return;
    algo = "implicit_v2";  // filters too large for its shared memory
  }
  cudaStream_t s = current_stream();
  if (algo == "reference") {
    conv_bwd_data_reference<<<grid_for(g.x_size(), 256), 256, 0, s>>>(g, dy, w, dx);
    check_launch(op);
  } else if (algo == "im2col") {
    const int64_t PQ = g.P * g.Q, Cg = g.C_per_group(), Kg = g.K_per_group();
    const int64_t CRS = Cg * g.R * g.S;
    const int64_t nb_max = images_per_chunk(g, (CRS + Kg) * PQ);
    Workspace col(static_cast<size_t>(CRS * nb_max * PQ) * sizeof(float));
    Workspace tmp(static_cast<size_t>(nb_max > 1 ? Kg * nb_max * PQ : 1) * sizeof(float));
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const float* dyg = dy + (n0 * g.K + grp * Kg) * PQ;
        if (nb > 1) {
          regroup_kernel<<<grid_for(Kg * nb * PQ, 256), 256, 0, s>>>(
              g, n0, nb, grp, false, tmp.as<float>(), const_cast<float*>(dy), nullptr, false);
          check_launch(op);
          dyg = tmp.as<float>();
        }
        // col (CRS x nb*PQ) = W_g^T (CRS x Kg) * dy_g (Kg x nb*PQ)
        sgemm(true, false, CRS, nb * PQ, Kg, 1.f, w + grp * Kg * CRS, CRS, dyg, nb * PQ, 0.f,
              col.as<float>(), nb * PQ, {}, "auto");
        col2im_kernel<<<grid_for(nb * Cg * g.H * g.W, 256), 256, 0, s>>>(g, n0, nb, grp,
                                                                         col.as<float>(), dx);
        check_launch(op);
      }
    }
  } else if (algo == "implicit_v2") {
    detail::implicit_v2_backward_data(g, dy, w, dx);
  } else {
    detail::implicit_gemm_backward_data(g, dy, w, dx);
  }
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo_in) {
  const char* op = "conv2d_backward (weight)";
  check_algo(algo_in, {"reference", "im2col", "implicit", "implicit_v2", "direct", "auto"}, op);
  cudaStream_t s = current_stream();
  if (db) {
    if (g.N * g.P * g.Q == 0) {
      CUDA_CHECK(op, cudaMemsetAsync(db, 0, g.K * sizeof(float), s));
    } else {
      conv_bias_grad<<<static_cast<unsigned>(g.K), 256, 0, s>>>(g, dy, db);
      check_launch(op);
    }
  }
  if (!dw) return;
  // The implicit kernel decodes its N*P*Q depth in 32 bits.
  std::string algo = algo_in;
  if (algo == "auto") algo = auto_backward_weight_algo(g);
  if (algo == "direct") {
    if (detail::direct_backward_weight(g, dy, x, dw)) return;
    algo = "implicit_v2";  // R*S > 25 or beyond 32-bit indexing
  }
  if (algo == "reference") {
    conv_bwd_weight_reference<<<grid_for(g.w_size(), 256), 256, 0, s>>>(g, dy, x, dw);
    check_launch(op);
  } else if (algo == "im2col") {
    const int64_t PQ = g.P * g.Q, Cg = g.C_per_group(), Kg = g.K_per_group();
    const int64_t CRS = Cg * g.R * g.S;
    if (g.N == 0) {
      CUDA_CHECK(op, cudaMemsetAsync(dw, 0, g.w_size() * sizeof(float), s));
      return;
    }
    const int64_t nb_max = images_per_chunk(g, (CRS + Kg) * PQ);
    Workspace col(static_cast<size_t>(CRS * nb_max * PQ) * sizeof(float));
    Workspace tmp(static_cast<size_t>(nb_max > 1 ? Kg * nb_max * PQ : 1) * sizeof(float));
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        im2col_kernel<<<grid_for(CRS * nb * PQ, 256), 256, 0, s>>>(g, n0, nb, grp, x, col.as<float>());
        check_launch(op);
        const float* dyg = dy + (n0 * g.K + grp * Kg) * PQ;
        if (nb > 1) {
          regroup_kernel<<<grid_for(Kg * nb * PQ, 256), 256, 0, s>>>(
              g, n0, nb, grp, false, tmp.as<float>(), const_cast<float*>(dy), nullptr, false);
          check_launch(op);
          dyg = tmp.as<float>();
        }
        // dw_g (Kg x CRS) (+)= dy_g (Kg x nb*PQ) * col^T (nb*PQ x CRS)
        sgemm(false, true, Kg, CRS, nb * PQ, 1.f, dyg, nb * PQ, col.as<float>(), nb * PQ,
              n0 == 0 ? 0.f : 1.f, dw + grp * Kg * CRS, CRS, {}, "auto");
      }
    }
  } else if (algo == "implicit_v2") {
    detail::implicit_v2_backward_weight(g, dy, x, dw);
  } else {
    detail::implicit_gemm_backward_weight(g, dy, x, dw);
  }
}

std::vector<KernelInfo> conv2d_forward_algos() {
  const std::string src = "cuda/conv2d_kernels.cu";
  return {
      {"reference", "reference", "one thread per output element, plain loops over (c, r, s)", src},
      {"direct", "production", "one thread per output position, 8 output channels in registers", src},
      {"im2col", "teaching", "im2col buffer per chunk of images + warp-tiled SGEMM, fused bias/ReLU", src},
      {"implicit", "production",
       "warp-tiled GEMM gathering tiles from x (no buffer), fused bias/ReLU",
       "cuda/conv2d_implicit_gemm.cu"},
      {"implicit_v2", "production",
       "implicit with a depth table (no divisions), 16-byte weight loads, split-K for small grids",
       "cuda/conv2d_implicit_gemm_v2.cu"},
      {"direct_v2", "production",
       "small K/groups: filters in shared memory, 2 positions x 8/16 channels per thread",
       "cuda/conv2d_direct_v2.cu"},
      {"auto", "production", "direct_v2 when K/groups <= 32, else implicit_v2", src},
  };
}

std::vector<KernelInfo> conv2d_backward_algos() {
  const std::string src = "cuda/conv2d_kernels.cu";
  return {
      {"reference", "reference", "dx: thread per input element (gather); dw: thread per weight", src},
      {"im2col", "teaching", "dx: SGEMM then col2im gather; dw: im2col then SGEMM", src},
      {"implicit", "production", "warp-tiled implicit GEMMs; dw split over N*P*Q (deterministic)",
       "cuda/conv2d_implicit_gemm.cu"},
      {"implicit_v2", "production",
       "dx: stride 1 as implicit_v2 forward over dy with flipped weights (else implicit); "
       "dw: depth walked per image with a position table, split-K (deterministic)",
       "cuda/conv2d_implicit_gemm_v2.cu"},
      {"direct", "production",
       "small channel counts: dx with filters in shared memory; dw one block per (k, c, batch slice)",
       "cuda/conv2d_direct_v2.cu"},
      {"auto", "production",
       "dx: direct when C/groups < 16, else implicit_v2; dw: direct for small K/groups and "
       "C/groups*R*S, else implicit_v2",
       src},
  };
}

}  // namespace convforge::cuda
