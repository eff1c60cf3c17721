// Reference conv2d kernels: the definitions, written as plain nested loops for a student
// to read first. Threaded only over independent outputs so that tests stay quick.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {

// y[n][k][p][q] = bias[k] + sum_{c,r,s} x[n][g*Cg + c][p*sh - pt + r*dh][q*sw - pl + s*dw] * w[k][c][r][s]
// where g = k / Kg is k's group; taps that fall in the padding contribute zero.
void forward_reference(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y, bool relu) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
#pragma omp parallel for collapse(2) schedule(static) firstprivate(team_float_mode)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t grp = k / Kg;
      for (int64_t p = 0; p < g.P; ++p)
        for (int64_t q = 0; q < g.Q; ++q) {
          float acc = bias ? bias[k] : 0.0f;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < g.R; ++r)
              for (int64_t s = 0; s < g.S; ++s) {
                const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
                const int64_t iw = q * g.stride_w - g.pad_left + s * g.dilation_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                acc += x[((n * g.C + grp * Cg + c) * g.H + ih) * g.W + iw] *
                       w[((k * Cg + c) * g.R + r) * g.S + s];
              }
          if (relu && acc < 0.0f) acc = 0.0f;
          y[((n * g.K + k) * g.P + p) * g.Q + q] = acc;
        }
    }
}

// dx = sum over every (k, p, q, r, s) that read x[n][c][ih][iw] of dy * w: the forward
// loops with the multiply-add turned into a scatter. Threads own whole images (no races).
void backward_data_reference(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
  for (int64_t n = 0; n < g.N; ++n) {
    float* dxn = dx + n * g.C * g.H * g.W;
    for (int64_t i = 0; i < g.C * g.H * g.W; ++i) dxn[i] = 0.0f;
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t grp = k / Kg;
      for (int64_t p = 0; p < g.P; ++p)
        for (int64_t q = 0; q < g.Q; ++q) {
          const float d = dy[((n * g.K + k) * g.P + p) * g.Q + q];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < g.R; ++r)
              for (int64_t s = 0; s < g.S; ++s) {
                const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
                const int64_t iw = q * g.stride_w - g.pad_left + s * g.dilation_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                dxn[((grp * Cg + c) * g.H + ih) * g.W + iw] +=
                    d * w[((k * Cg + c) * g.R + r) * g.S + s];
              }
        }
    }
  }
}

// dw[k][c][r][s] = sum_{n,p,q} dy[n][k][p][q] * x[n][g*Cg + c][ih][iw]; threads own filters.
void backward_weight_reference(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                               float* db) {
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group();
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
  for (int64_t k = 0; k < g.K; ++k) {
    const int64_t grp = k / Kg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) {
          float acc = 0.0f;
          for (int64_t n = 0; n < g.N; ++n)
            for (int64_t p = 0; p < g.P; ++p)
              for (int64_t q = 0; q < g.Q; ++q) {
                const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
                const int64_t iw = q * g.stride_w - g.pad_left + s * g.dilation_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                acc += dy[((n * g.K + k) * g.P + p) * g.Q + q] *
                       x[((n * g.C + grp * Cg + c) * g.H + ih) * g.W + iw];
              }
          dw[((k * Cg + c) * g.R + r) * g.S + s] = acc;
        }
  }
  bias_grad(g, dy, db);
}

void bias_grad(const Conv2dGeometry& g, const float* dy, float* db) {
  if (!db) return;
  const int64_t PQ = g.P * g.Q;
#pragma omp parallel for schedule(static) if (g.N * g.K * PQ > (1 << 16)) firstprivate(team_float_mode)
  for (int64_t k = 0; k < g.K; ++k) {
    double acc = 0.0;  // long sums (N*P*Q terms): accumulate in double
    for (int64_t n = 0; n < g.N; ++n) {
      // 16 partial sums (vector registers: a single float sum waits on each add's latency,
      // 3-4 cycles an element; it took ~0.8 ms of a 1x1 layer's 2-3 ms weight gradient).
      const float* d = dy + (n * g.K + k) * PQ;
      float lanes[16] = {};
      int64_t i = 0;
      for (; i + 16 <= PQ; i += 16)
        for (int l = 0; l < 16; ++l) lanes[l] += d[i + l];
      float part = 0.0f;
      for (int l = 0; l < 16; ++l) part += lanes[l];
      for (; i < PQ; ++i) part += d[i];
      acc += part;
    }
    db[k] = static_cast<float>(acc);
  }
}

}  // namespace convforge::cpu::conv_detail
