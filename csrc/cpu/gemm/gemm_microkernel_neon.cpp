// NEON micro-kernel (AArch64): an 8 x 12 tile of C in 24 q-register accumulators.
// Per k: two 4-wide loads of the A micro-panel (its 8 rows), three 4-wide loads of the B
// micro-panel (its 12 columns), and 24 FMAs that take their A value from a lane of the A
// registers (fmla v.4s, v.4s, v.s[lane]): no broadcasts, 24 + 2 + 3 = 29 of 32 registers.
// The shape of BLIS's armv8a kernel (bli_sgemm_armv8a_asm_8x12), written with intrinsics.
// Edge tiles: full tile computed from zero-padded panels; full 8 x 12 tiles are stored with
// vector stores, others through a local tile and the m x n part copied out.
#include <arm_neon.h>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

namespace {

// alpha * acc + beta * C + row bias + col bias, relu: the AVX2 kernel's epilogue, one q-register.
inline float32x4_t epilogue(float32x4_t acc, const float* c_in, bool read_c, float32x4_t alpha,
                            float32x4_t beta, float32x4_t bias, bool relu) {
  float32x4_t r = vmulq_f32(alpha, acc);
  if (read_c) r = vfmaq_f32(r, beta, vld1q_f32(c_in));
  r = vaddq_f32(r, bias);
  return relu ? vmaxq_f32(r, vdupq_n_f32(0.0f)) : r;
}

}  // namespace

void microkernel_neon_8x12(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           int64_t m, int64_t n, const TileEpilogue& ep) {
  constexpr int MR = 8, NR = 12;
  float32x4_t c[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = c[i][2] = vdupq_n_f32(0.0f);

  for (int64_t k = 0; k < kc; ++k) {
    const float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);
    const float32x4_t b0 = vld1q_f32(Bp), b1 = vld1q_f32(Bp + 4), b2 = vld1q_f32(Bp + 8);
    __builtin_prefetch(Bp + 8 * NR);
#define CF_ROW(i, a, lane)                          \
  c[i][0] = vfmaq_laneq_f32(c[i][0], b0, a, lane); \
  c[i][1] = vfmaq_laneq_f32(c[i][1], b1, a, lane); \
  c[i][2] = vfmaq_laneq_f32(c[i][2], b2, a, lane);
    CF_ROW(0, a0, 0) CF_ROW(1, a0, 1) CF_ROW(2, a0, 2) CF_ROW(3, a0, 3)
    CF_ROW(4, a1, 0) CF_ROW(5, a1, 1) CF_ROW(6, a1, 2) CF_ROW(7, a1, 3)
#undef CF_ROW
    Ap += MR;
    Bp += NR;
  }

  const float32x4_t alpha = vdupq_n_f32(ep.alpha), beta = vdupq_n_f32(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  // Columns past n read zeros from a local copy of the column bias (and of C, below).
  alignas(16) float cb[NR] = {};
  if (ep.col_bias)
    for (int64_t j = 0; j < n; ++j) cb[j] = ep.col_bias[j];
  const float32x4_t cb0 = vld1q_f32(cb), cb1 = vld1q_f32(cb + 4), cb2 = vld1q_f32(cb + 8);

  const bool full = m == MR && n == NR;
  alignas(16) float tile[MR][NR];  // edge tiles: C in (zeros past n), results out
  if (!full && read_c)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < NR; ++j) tile[i][j] = j < n ? C[i * ldc + j] : 0.0f;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* out = full ? C + i * ldc : tile[i];
    const float32x4_t rb = vdupq_n_f32(ep.row_bias ? ep.row_bias[i] : 0.0f);
    const float32x4_t r0 = epilogue(c[i][0], out, read_c, alpha, beta, vaddq_f32(rb, cb0), ep.relu);
    const float32x4_t r1 = epilogue(c[i][1], out + 4, read_c, alpha, beta, vaddq_f32(rb, cb1), ep.relu);
    const float32x4_t r2 = epilogue(c[i][2], out + 8, read_c, alpha, beta, vaddq_f32(rb, cb2), ep.relu);
    vst1q_f32(out, r0);
    vst1q_f32(out + 4, r1);
    vst1q_f32(out + 8, r2);
  }
  if (!full)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) C[i * ldc + j] = tile[i][j];
}

}  // namespace convforge::cpu::gemm_detail
