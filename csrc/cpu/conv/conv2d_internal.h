// Internals shared by the conv2d algos (one file per algo; conv2d.cpp dispatches).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/geometry.h"
#include "cpu/cpu_features.h"
#include "cpu/kernel_info.h"

namespace convforge::cpu::conv_detail {

// Forward kernels: y = conv(x, w) + bias, relu optional. Every element of y is written.
void forward_reference(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y, bool relu);
void forward_im2col(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu);
// 1x1, stride 1, unpadded: im2col's column matrix of an image is x itself (read in place).
bool col_is_x(const Conv2dGeometry& g);
void forward_implicit(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu);
void forward_direct(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu);
// Calls this CPU's build of a kernel (conv2d_direct{,_avx2,_avx512,_neon}.cpp and
// conv2d_winograd*.cpp: one source, compiled once per ISA): name_avx512, name_avx2, name_neon or name_scalar.
#if CONVFORGE_ARCH_X86
#define CF_ISA_CALL(name, ...)                                                  \
  switch (simd_level()) {                                                      \
    case SimdLevel::AVX512: return name##_avx512(__VA_ARGS__);                 \
    case SimdLevel::AVX2: return name##_avx2(__VA_ARGS__);                     \
    default: return name##_scalar(__VA_ARGS__);                                \
  }
#elif CONVFORGE_ARCH_ARM64
#define CF_ISA_CALL(name, ...)                                                  \
  switch (simd_level()) {                                                      \
    case SimdLevel::NEON: return name##_neon(__VA_ARGS__);                     \
    default: return name##_scalar(__VA_ARGS__);                                \
  }
#else
#define CF_ISA_CALL(name, ...) return name##_scalar(__VA_ARGS__);
#endif

// The entry point of one ISA's build of conv2d_winograd_impl.h: F(m x m, 3x3), m = 2 or 4.
#define CF_WINOGRAD_ENTRY_POINTS(isa)                                                          \
  void forward_winograd_tiles_##isa(int m, const Conv2dGeometry& g, const float* x,          \
                                    const float* w, const float* bias, float* y, bool relu) { \
    if (m == 4) return forward_winograd_m<4>(g, x, w, bias, y, relu);                         \
    forward_winograd_m<2>(g, x, w, bias, y, relu);                                             \
  }
#define CF_DECLARE_WINOGRAD(isa)                                                           \
  void forward_winograd_tiles_##isa(int m, const Conv2dGeometry& g, const float* x,      \
                                    const float* w, const float* bias, float* y, bool relu);
CF_DECLARE_WINOGRAD(scalar)
CF_DECLARE_WINOGRAD(avx2)
CF_DECLARE_WINOGRAD(avx512)
CF_DECLARE_WINOGRAD(neon)

// The direct kernel per ISA (conv2d_direct*.cpp, one source compiled once per ISA).
// The entry points of one ISA's build of conv2d_direct_impl.h (conv2d_direct{,_avx2,_avx512,_neon}.cpp),
// which calls the kernels of its own anonymous namespace.
#define CF_DIRECT_ENTRY_POINTS(isa)                                                               \
  void forward_direct_##isa(const Conv2dGeometry& g, const float* x, const float* w,             \
                            const float* bias, float* y, bool relu) {                            \
    direct_forward(g, x, w, bias, y, relu);                                                       \
  }                                                                                               \
  void forward_direct_k_##isa(const Conv2dGeometry& g, const float* x, const float* w,           \
                              const float* bias, float* y, bool relu) {                          \
    direct_forward_klanes(g, x, w, bias, y, relu);                                                \
  }                                                                                               \
  void backward_weight_direct_##isa(const Conv2dGeometry& g, const float* dy, const float* x,    \
                                    float* dw) {                                                 \
    direct_backward_weight(g, dy, x, dw);                                                         \
  }                                                                                               \
  void backward_weight_direct_n_##isa(const Conv2dGeometry& g, const float* dy, const float* x,  \
                                      float* dw) {                                               \
    direct_backward_weight_n(g, dy, x, dw);                                                       \
  }                                                                                             \
  void backward_data_direct_n_##isa(const Conv2dGeometry& g, const float* dy, const float* w,    \
                                    float* dx) {                                                 \
    direct_backward_data_n(g, dy, w, dx);                                                         \
  }

void forward_direct_scalar(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu);
void forward_direct_avx2(const Conv2dGeometry& g, const float* x, const float* w,
                         const float* bias, float* y, bool relu);
void forward_direct_avx512(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu);
void forward_direct_neon(const Conv2dGeometry& g, const float* x, const float* w,
                         const float* bias, float* y, bool relu);

// Winograd F(2x2, 3x3) and F(4x4, 3x3) (conv2d_winograd.cpp); other layers (and inputs with
// an Inf or NaN) go to forward_implicit.
bool winograd_applies(const Conv2dGeometry& g);
// Whether n floats are all finite (kernels that would mix an Inf or NaN into other outputs,
// or multiply it by padding zeros, hand such inputs to the implicit GEMM).
bool all_finite(const float* p, int64_t n);
void forward_winograd(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu);
void forward_winograd_4x4(const Conv2dGeometry& g, const float* x, const float* w,
                          const float* bias, float* y, bool relu);
// direct_k: vectorised along the filters (conv2d_direct_impl.h), per ISA.
void forward_direct_k(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu);
void forward_direct_k_scalar(const Conv2dGeometry& g, const float* x, const float* w,
                             const float* bias, float* y, bool relu);
void forward_direct_k_avx2(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu);
void forward_direct_k_avx512(const Conv2dGeometry& g, const float* x, const float* w,
                             const float* bias, float* y, bool relu);
void forward_direct_k_neon(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu);

// Direct weight gradient (stride 1; conv2d_direct_impl.h) per ISA; dw only, bias apart.
bool backward_weight_direct_applies(const Conv2dGeometry& g);
void backward_weight_direct(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db);
void backward_weight_direct_scalar(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw);
void backward_weight_direct_avx2(const Conv2dGeometry& g, const float* dy, const float* x,
                                 float* dw);
void backward_weight_direct_avx512(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw);
void backward_weight_direct_neon(const Conv2dGeometry& g, const float* dy, const float* x,
                                 float* dw);
// direct_n: the weight gradient vectorised along the batch (conv2d_direct_impl.h), per ISA;
// any stride and dilation; dw only, bias apart.
void backward_weight_direct_n(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* db);
void backward_weight_direct_n_scalar(const Conv2dGeometry& g, const float* dy, const float* x,
                                     float* dw);
void backward_weight_direct_n_avx2(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw);
void backward_weight_direct_n_avx512(const Conv2dGeometry& g, const float* dy, const float* x,
                                     float* dw);
void backward_weight_direct_n_neon(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw);
// direct_n's input gradient (stride 1; conv2d_direct_impl.h), per ISA.
// Floats of image-block copies direct_n takes per unit (half this CPU's L2, from the machine
// description; 256 KiB where the L2 size is unknown).
int64_t direct_n_unit_floats();
// This core's share of the L3 in floats (the L3 over the logical CPUs sharing it; 8 MiB where
// unknown): the bound on direct_n's copies of one block for larger layers (auto's weight rule).
int64_t l3_share_floats();
bool backward_data_direct_n_applies(const Conv2dGeometry& g);
void backward_data_direct_n(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void backward_data_direct_n_scalar(const Conv2dGeometry& g, const float* dy, const float* w,
                                   float* dx);
void backward_data_direct_n_avx2(const Conv2dGeometry& g, const float* dy, const float* w,
                                 float* dx);
void backward_data_direct_n_avx512(const Conv2dGeometry& g, const float* dy, const float* w,
                                   float* dx);
void backward_data_direct_n_neon(const Conv2dGeometry& g, const float* dy, const float* w,
                                 float* dx);

void backward_data_reference(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void backward_data_im2col(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
// Stride 1 (and padding <= dilation*(R-1)): the forward implicit GEMM on rotated filters;
// otherwise backward_data_im2col.
bool backward_data_implicit_applies(const Conv2dGeometry& g);
using ForwardFn = void (*)(const Conv2dGeometry&, const float*, const float*, const float*,
                          float*, bool);
// The geometry of the input gradient of a stride-1 layer as a forward convolution of dy with
// the rotated filters (C and K swapped, padding dilation*(R-1) - pad).
Conv2dGeometry transposed_geometry(const Conv2dGeometry& g);
// The transposed forward through `forward` (implicit, direct or auto).
void backward_data_transposed(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                              ForwardFn forward);
void forward_auto(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                  float* y, bool relu);
ForwardFn forward_auto_choice(const Conv2dGeometry& g);
using BackwardDataFn = void (*)(const Conv2dGeometry&, const float*, const float*, float*);
using BackwardWeightFn = void (*)(const Conv2dGeometry&, const float*, const float*, float*,
                                  float*);
BackwardWeightFn backward_weight_auto_choice(const Conv2dGeometry& g);
BackwardDataFn backward_data_auto_choice(const Conv2dGeometry& g);

// One row of an op's algo table (conv2d.cpp): what Python lists, the function dispatch calls,
// and where the algo runs as itself (elsewhere it hands over to the fallback it names).
using AppliesFn = bool (*)(const Conv2dGeometry&);
struct ConvForwardAlgo {
  KernelInfo info;
  ForwardFn fn;
  AppliesFn applies;
};
struct ConvBackwardAlgo {
  KernelInfo info;
  BackwardDataFn data;
  BackwardWeightFn weight;
  AppliesFn data_applies, weight_applies;
};
const std::vector<ConvForwardAlgo>& conv2d_forward_table();
const std::vector<ConvBackwardAlgo>& conv2d_backward_table();
void backward_weight_implicit(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* db);
void backward_weight_reference(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                               float* db);
void backward_weight_im2col(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db);

// db[k] = sum over n, p, q of dy (db may be null: nothing to do).
void bias_grad(const Conv2dGeometry& g, const float* dy, float* db);

// Output columns q in [lo, hi) whose input column q*stride + offset lies in [0, n);
// clamped to [q_begin, q_end). offset = s*dilation - pad.
inline void valid_range(int64_t n, int64_t stride, int64_t offset, int64_t q_begin, int64_t q_end,
                        int64_t* lo, int64_t* hi) {
  // q*stride + offset >= 0  <=>  q >= ceil(-offset / stride)
  // q*stride + offset <= n-1  <=>  q <= floor((n-1-offset) / stride)
  // (Power-of-two strides by shifts: the packing routines call this once per tap and run of a
  // panel, and two 64-bit divisions were 14% of a stride-2 layer's im2col pack.)
  int64_t a, b;
  if ((stride & (stride - 1)) == 0) {
    const int sh = __builtin_ctzll(static_cast<unsigned long long>(stride));
    a = offset >= 0 ? 0 : (-offset + stride - 1) >> sh;
    b = (n - 1 - offset) < 0 ? 0 : ((n - 1 - offset) >> sh) + 1;
  } else {
    a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    b = (n - 1 - offset) < 0 ? 0 : (n - 1 - offset) / stride + 1;
  }
  if (a < q_begin) a = q_begin;
  if (b > q_end) b = q_end;
  *lo = a;
  *hi = b > a ? b : a;
}

// Calls f(dst_offset, p, q_begin, q_end) for the runs of output positions j0..j0+nt-1
// (flat index j = p*Q + q) that share an output row p.
template <class F>
inline void for_each_row_run(int64_t Q, int64_t j0, int64_t nt, F f) {
  int64_t j = j0, off = 0;
  while (off < nt) {
    const int64_t p = j / Q, q = j % Q, len = (Q - q) < (nt - off) ? (Q - q) : (nt - off);
    f(off, p, q, q + len);
    off += len;
    j += len;
  }
}

// d[q] for q in [qa, qb) = x row value of output column q through tap offset off_w, or 0: the
// gather of one run of an output row, shared by im2col's column tiles and the implicit GEMM's
// panels.
inline void gather_row(const Conv2dGeometry& g, const float* xr, int64_t off_w, int64_t qa,
                       int64_t qb, float* d) {
  int64_t lo, hi;
  valid_range(g.W, g.stride_w, off_w, qa, qb, &lo, &hi);
  for (int64_t q = qa; q < lo; ++q) d[q] = 0.0f;
  if (g.stride_w == 1) {
    const float* s = xr + off_w;
    for (int64_t q = lo; q < hi; ++q) d[q] = s[q];
  } else if (g.stride_w == 2) {
    // Four outputs from two loads of four and one shuffle (the even lanes): stride-2 layers
    // (ResNet's downsampling 3 x 3 and 1 x 1) spent a third of the forward in this gather
    // with one load per element. The last vector also reads the odd element after its last
    // even one, so it must still lie in the row: q*2 + off_w + 7 < W.
    typedef float V4 __attribute__((vector_size(16)));
    const float* s = xr + off_w;
    int64_t q = lo;
    for (; q + 4 <= hi && 2 * q + off_w + 7 < g.W; q += 4) {
      V4 a, b;
      std::memcpy(&a, s + 2 * q, sizeof a);
      std::memcpy(&b, s + 2 * q + 4, sizeof b);
      const V4 e = __builtin_shufflevector(a, b, 0, 2, 4, 6);
      std::memcpy(d + q, &e, sizeof e);
    }
    for (; q < hi; ++q) d[q] = s[2 * q];
  } else {
    for (int64_t q = lo; q < hi; ++q) d[q] = xr[q * g.stride_w + off_w];
  }
  for (int64_t q = hi; q < qb; ++q) d[q] = 0.0f;
}

}  // namespace convforge::cpu::conv_detail
