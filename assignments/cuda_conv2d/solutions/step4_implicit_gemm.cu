// Worked solution, cuda_conv2d step 4: implicit GEMM. The convolution of group grp (blockIdx.z) is
// the product W_grp (K/groups x CRS, CRS = C/groups*R*S) times a column matrix (CRS x N*P*Q) that is
// never built: a block computes a BM x BN = 128 x 128 tile of it with the SGEMM ladder's step 4
// (256 threads, 8 x 8 outputs each in registers, BK = 8), except that the B tile is gathered from
// x on the fly: depth index d -> (c, r, s), column j -> (n, p, q), zero in the padding. The
// epilogue adds the bias and scatters each column to y[n][k][p][q] (consecutive q: coalesced).
// Compiled here with nvcc only (the test suite has no GPU): grade it on one with
//     convforge grade assignments/cuda_conv2d/solutions/step4_implicit_gemm.cu --op conv2d
#include "convforge/student.h"

constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, THREADS = 256;

__global__ void __launch_bounds__(THREADS) conv2d_kernel(Conv2dGeometry g, const float* __restrict__ x,
                                                         const float* __restrict__ w, const float* __restrict__ bias,
                                                         float* __restrict__ y) {
  __shared__ float As[BK * BM], Bs[BK * BN];
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S, CRS = Cg * RS;
  const int64_t PQ = g.P * g.Q, cols = g.N * PQ;
  const int64_t grp = blockIdx.z;
  const int64_t bm = blockIdx.y * (int64_t)BM, bn = blockIdx.x * (int64_t)BN;  // rows: k in the group; cols: (n, p, q)
  const float* wg = w + grp * Kg * CRS;
  const int tid = threadIdx.x;
  const int tr = tid / (BN / TN), tc = tid % (BN / TN);
  float acc[TM][TN] = {};
  float rm[TM], rn[TN];
  for (int64_t d0 = 0; d0 < CRS; d0 += BK) {
#pragma unroll
    for (int i = 0; i < BM * BK / THREADS; ++i) {  // As[d][m] = w[grp*Kg + bm + m][d0 + d]
      const int idx = tid + i * THREADS;
      const int m = idx / BK, d = idx % BK;
      As[d * BM + m] = (bm + m < Kg && d0 + d < CRS) ? wg[(bm + m) * CRS + d0 + d] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < BK * BN / THREADS; ++i) {  // Bs[d][j] = x at tap d0 + d of output position bn + j
      const int idx = tid + i * THREADS;
      const int d = idx / BN, j = idx % BN;
      float v = 0.f;
      const int64_t dd = d0 + d, col = bn + j;
      if (dd < CRS && col < cols) {
        const int64_t c = dd / RS, r = (dd / g.S) % g.R, s = dd % g.S;
        const int64_t n = col / PQ, p = (col / g.Q) % g.P, q = col % g.Q;
        const int64_t h = p * g.stride_h - g.pad_top + r * g.dilation_h;
        const int64_t ww = q * g.stride_w - g.pad_left + s * g.dilation_w;
        if (h >= 0 && h < g.H && ww >= 0 && ww < g.W) v = x[((n * g.C + grp * Cg + c) * g.H + h) * g.W + ww];
      }
      Bs[d * BN + j] = v;
    }
    __syncthreads();
#pragma unroll
    for (int d = 0; d < BK; ++d) {
#pragma unroll
      for (int i = 0; i < TM; ++i) rm[i] = As[d * BM + tr * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) rn[j] = Bs[d * BN + tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += rm[i] * rn[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t k = grp * Kg + bm + tr * TM + i;
    if (bm + tr * TM + i >= Kg) continue;
    const float b = bias ? bias[k] : 0.f;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t col = bn + tc * TN + j;
      if (col < cols) y[((col / PQ) * g.K + k) * PQ + col % PQ] = acc[i][j] + b;
    }
  }
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias, float* y,
                              cudaStream_t stream) {
  const int64_t Kg = g->K / g->groups, cols = g->N * g->P * g->Q;
  if (Kg == 0 || cols == 0) return;
  dim3 block(THREADS);
  dim3 grid((unsigned)((cols + BN - 1) / BN), (unsigned)((Kg + BM - 1) / BM), (unsigned)g->groups);
  conv2d_kernel<<<grid, block, 0, stream>>>(*g, x, w, bias, y);
}
