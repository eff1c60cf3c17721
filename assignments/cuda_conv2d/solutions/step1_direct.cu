// Worked solution, cuda_conv2d step 1: direct, one thread per output element. The flat index runs
// over (n, k, p, q) with q fastest, so a warp writes 32 consecutive outputs (coalesced) and reads
// neighbouring input columns; the weight it reads is the same for most of the warp.
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_conv2d/solutions/step1_direct.cu --op conv2d
#include "convforge/student.h"

__global__ void conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* __restrict__ y) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= g.y_size()) return;
  const int64_t q = i % g.Q, p = (i / g.Q) % g.P, k = (i / (g.Q * g.P)) % g.K, n = i / (g.Q * g.P * g.K);
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, c0 = (k / Kg) * Cg;
  float acc = bias ? bias[k] : 0.f;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
      if (h < 0 || h >= g.H) continue;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t ww = q * g.stride_w - g.pad_left + s * g.dilation_w;
        if (ww < 0 || ww >= g.W) continue;
        acc += x[((n * g.C + c0 + c) * g.H + h) * g.W + ww] * w[((k * Cg + c) * g.R + r) * g.S + s];
      }
    }
  y[i] = acc;
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias, float* y,
                              cudaStream_t stream) {
  const int64_t total = g->y_size();
  if (total == 0) return;
  conv2d_kernel<<<(unsigned)((total + 255) / 256), 256, 0, stream>>>(*g, x, w, bias, y);
}
