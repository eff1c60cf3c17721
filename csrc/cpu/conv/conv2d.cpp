// conv2d entry points: the algo switch, "auto"'s choice by shape, and the kernel lists.
#include "cpu/conv/conv2d.h"

#include <omp.h>

#include <stdexcept>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/cpu_features.h"

namespace convforge::cpu {
namespace conv_detail {

void forward_direct(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  switch (simd_level()) {
#if CONVFORGE_ARCH_X86
    case SimdLevel::AVX512: return forward_direct_avx512(g, x, w, bias, y, relu);
    case SimdLevel::AVX2: return forward_direct_avx2(g, x, w, bias, y, relu);
#endif
#if CONVFORGE_ARCH_ARM64
    case SimdLevel::NEON: return forward_direct_neon(g, x, w, bias, y, relu);
#endif
    default: return forward_direct_scalar(g, x, w, bias, y, relu);
  }
}

void forward_direct_k(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  switch (simd_level()) {
#if CONVFORGE_ARCH_X86
    case SimdLevel::AVX512: return forward_direct_k_avx512(g, x, w, bias, y, relu);
    case SimdLevel::AVX2: return forward_direct_k_avx2(g, x, w, bias, y, relu);
#endif
#if CONVFORGE_ARCH_ARM64
    case SimdLevel::NEON: return forward_direct_k_neon(g, x, w, bias, y, relu);
#endif
    default: return forward_direct_k_scalar(g, x, w, bias, y, relu);
  }
}

bool backward_weight_direct_applies(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1;
}

namespace {
// The direct weight gradient multiplies the zeros past each output row (its flat positions) by
// real inputs; an Inf or NaN input there would turn 0 * Inf into NaN where the true sum has an
// Inf. Such inputs take the implicit GEMM, which only multiplies the products of the sum. One
// read of x: a few percent of the kernel's time.
bool all_finite(const float* p, int64_t n) {
  float acc = 0.0f;  // 0 * Inf and 0 * NaN are NaN, and a NaN term makes the sum NaN
  const bool par = !omp_in_parallel() && n > (1 << 18);
  // No firstprivate(team_float_mode) (cpu/kernel_env.h): x * 0 is 0, Inf or NaN in any mode.
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (par)
  for (int64_t i = 0; i < n; ++i) acc += p[i] * 0.0f;
  return acc == 0.0f;
}
}  // namespace

// Strided layers, and inputs with Inf or NaN: the implicit GEMM.
void backward_weight_direct(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db) {
  if (!backward_weight_direct_applies(g) || !all_finite(x, g.x_size()))
    return backward_weight_implicit(g, dy, x, dw, db);
  switch (simd_level()) {
#if CONVFORGE_ARCH_X86
    case SimdLevel::AVX512: backward_weight_direct_avx512(g, dy, x, dw); break;
    case SimdLevel::AVX2: backward_weight_direct_avx2(g, dy, x, dw); break;
#endif
#if CONVFORGE_ARCH_ARM64
    case SimdLevel::NEON: backward_weight_direct_neon(g, dy, x, dw); break;
#endif
    default: backward_weight_direct_scalar(g, dy, x, dw); break;
  }
  bias_grad(g, dy, db);
}

// auto's forward choice (measurements in docs/cpu_tuning.md, 1 thread, loaded Zen 4):
//  - K/groups <= 6 (LeNet 1->6, depthwise): direct, vectorised along the output row; the GEMM's
//    14-row micro-tile would be mostly padding (LeNet c1 N=256: direct 1.3 ms, implicit 4.1).
//  - 8 <= K/groups <= 32 with few taps (C/groups*R*S <= 512): direct_k, 16 filters per vector,
//    no packing (LeNet c3 N=256: direct_k 1.5 ms, direct 2.1, implicit 4.5).
//  - 3x3 stride 1 with C, K >= 64 and >= 128 2x2 output tiles: Winograd F(2x2,3x3) (VGG N=1,
//    ms, implicit / winograd: conv1_2 56 / 41, conv2_2 43 / 30, conv3_2 39 / 27, conv4_2 38 / 30;
//    conv5_2 N=8 82 / 57, but conv5_2 N=1, 49 tiles, 11.7 / 12.9: the GEMMs are too narrow).
//  - otherwise the implicit GEMM (VGG conv1_1 3->64: implicit 2.4 ms, direct 2.7, direct_k 3.2).
ForwardFn forward_auto_choice(const Conv2dGeometry& g) {
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S;
  if (Kg <= 6) return forward_direct;
  if (Kg >= 8 && Kg <= 32 && CRS <= 512) return forward_direct_k;
  const int64_t tiles = g.N * ((g.P + 1) / 2) * ((g.Q + 1) / 2);
  if (winograd_applies(g) && g.C >= 64 && g.K >= 64 && tiles >= 128) return forward_winograd;
  return forward_implicit;
}

void forward_auto(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                  float* y, bool relu) {
  forward_auto_choice(g)(g, x, w, bias, y, relu);
}

// auto's weight-gradient choice: direct for few filters and taps (LeNet) and for wide outputs
// (Q >= 48: the padded rows waste little); the implicit GEMM for small images with many
// channels. Measured (1 thread, ms, implicit / direct): VGG conv1_2 N=1 66 / 46, conv3_2 N=1
// 42 / 37, conv4_2 N=1 39 / 43, conv5_2 N=1 9.8 / 17; LeNet c3 N=256 6.1 / 2.0
// (docs/cpu_tuning.md).
BackwardWeightFn backward_weight_auto_choice(const Conv2dGeometry& g) {
  const bool small = g.K_per_group() <= 32 && g.C_per_group() * g.R * g.S <= 512;
  if (backward_weight_direct_applies(g) && (small || g.Q >= 48)) return backward_weight_direct;
  return backward_weight_implicit;
}

namespace {

bool always(const Conv2dGeometry&) { return true; }

void backward_data_implicit(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_implicit);
}
void backward_data_direct(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_direct);
}
void backward_data_auto(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  backward_data_transposed(g, dy, w, dx, forward_auto);
}
void backward_weight_auto(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                          float* db) {
  backward_weight_auto_choice(g)(g, dy, x, dw, db);
}

}  // namespace

// The one table per op: dispatch, the unknown-algo error, algos() and the tests'
// parametrisation (through _C.algos) all read these. `applies` says where an algo runs as
// itself; elsewhere it hands the call to the fallback its description names.
const std::vector<ConvForwardAlgo>& conv2d_forward_table() {
  static const std::vector<ConvForwardAlgo> t = {
      {{"reference", "reference", "seven plain nested loops, one output at a time",
        "cpu/conv/conv2d_reference.cpp", "every geometry"},
       forward_reference, always},
      {{"im2col", "teaching",
        "column matrix for a bounded tile of output positions, then the blocked GEMM with bias "
        "and relu in its epilogue",
        "cpu/conv/conv2d_im2col.cpp", "every geometry"},
       forward_im2col, always},
      {{"implicit", "production",
        "implicit GEMM: im2col gathered straight into the GEMM's packed B panels, no column "
        "matrix",
        "cpu/conv/conv2d_implicit.cpp", "every geometry"},
       forward_implicit, always},
      {{"direct", "production",
        "direct loops with a filters x output-columns register block, vectorised along the row; "
        "for small C/groups*R*S (LeNet 1->6, VGG 3->64, depthwise)",
        "cpu/conv/conv2d_direct_impl.h", "every geometry"},
       forward_direct, always},
      {{"direct_k", "production",
        "direct loops vectorised along the filters (16 per zmm) with a block of output positions "
        "in registers, over a zero-padded copy of the image: for few input taps and >= 16 "
        "filters (LeNet 6->16)",
        "cpu/conv/conv2d_direct_impl.h", "every geometry"},
       forward_direct_k, always},
      {{"winograd", "production",
        "Winograd F(2x2,3x3) for 3x3 stride-1 layers: input/filter/output transforms around 16 "
        "blocked GEMMs over tile chunks (2.25x fewer multiply-adds); other layers: implicit",
        "cpu/conv/conv2d_winograd.cpp", "3x3, stride 1, dilation 1 (else implicit)"},
       forward_winograd, winograd_applies},
      {{"auto", "production",
        "direct for K/groups <= 6 (LeNet c1, depthwise); direct_k for 8..32 filters per group and "
        "C/groups*R*S <= 512 (LeNet c3); winograd for 3x3 stride-1 layers with C, K >= 64 and >= "
        "128 output tiles; else implicit (measured: docs/cpu_tuning.md)",
        "cpu/conv/conv2d.cpp", "every geometry"},
       forward_auto, always},
  };
  return t;
}

const std::vector<ConvBackwardAlgo>& conv2d_backward_table() {
  static const std::vector<ConvBackwardAlgo> t = {
      {{"reference", "reference",
        "plain loops: data as the forward scatter, weight as one sum per filter tap",
        "cpu/conv/conv2d_reference.cpp", "every geometry"},
       backward_data_reference, backward_weight_reference, always, always},
      {{"im2col", "production",
        "data: W^T * dy into a bounded column tile, then col2im; weight: dy * col^T per tile, "
        "per-thread partial dW summed at the end",
        "cpu/conv/conv2d_im2col.cpp", "every geometry"},
       backward_data_im2col, backward_weight_im2col, always, always},
      {{"implicit", "production",
        "implicit GEMM over the whole batch, no column matrix: weight = dy * col^T with col^T "
        "gathered into the B panels; data (stride 1) = the forward implicit GEMM on rotated, "
        "transposed filters (strided layers: im2col's path)",
        "cpu/conv/conv2d_implicit.cpp", "weight: every geometry; data: stride 1 (else im2col)"},
       backward_data_implicit, backward_weight_implicit, backward_data_implicit_applies, always},
      {{"direct", "production",
        "weight: stride-1 direct loops over zero-padded copies, a filters x taps register block "
        "of vector sums over output positions (strided: implicit); data: the transposed forward "
        "through the direct kernel (strided: im2col)",
        "cpu/conv/conv2d_direct_impl.h", "stride 1 (else implicit / im2col)"},
       backward_data_direct, backward_weight_direct, backward_data_implicit_applies,
       backward_weight_direct_applies},
      {{"auto", "production",
        "data: the transposed forward through auto's forward choice (strided: im2col); weight: "
        "direct for stride 1 with K/groups <= 32 and C/groups*R*S <= 512 or Q >= 48, else "
        "implicit",
        "cpu/conv/conv2d.cpp", "every geometry"},
       backward_data_auto, backward_weight_auto, always, always},
  };
  return t;
}

}  // namespace conv_detail

namespace {

template <class Table>
const typename Table::value_type& find_algo(const Table& table, const char* op,
                                            const std::string& algo) {
  for (const auto& a : table)
    if (a.info.name == algo) return a;
  std::string choices;
  for (const auto& a : table) choices += (choices.empty() ? "'" : ", '") + a.info.name + "'";
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo + "'; expected one of " +
                              choices);
}

template <class Table>
std::vector<KernelInfo> infos(const Table& table) {
  std::vector<KernelInfo> out;
  for (const auto& a : table) out.push_back(a.info);
  return out;
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo, bool relu) {
  find_algo(conv_detail::conv2d_forward_table(), "conv2d", algo).fn(g, x, w, bias, y, relu);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo) {
  find_algo(conv_detail::conv2d_backward_table(), "conv2d_backward", algo).data(g, dy, w, dx);
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo) {
  find_algo(conv_detail::conv2d_backward_table(), "conv2d_backward", algo).weight(g, dy, x, dw, db);
}

std::vector<KernelInfo> conv2d_forward_algos() { return infos(conv_detail::conv2d_forward_table()); }
std::vector<KernelInfo> conv2d_backward_algos() {
  return infos(conv_detail::conv2d_backward_table());
}

std::vector<std::string> conv2d_eligible_algos(const std::string& pass, const Conv2dGeometry& g) {
  using namespace conv_detail;
  std::vector<std::string> out;
  if (pass == "forward") {
    for (const auto& a : conv2d_forward_table())
      if (a.info.kind == "production" && a.info.name != "auto" && a.applies(g))
        out.push_back(a.info.name);
    return out;
  }
  if (pass != "backward_data" && pass != "backward_weight")
    throw std::invalid_argument("conv2d_eligible_algos: unknown pass '" + pass +
                                "' (forward, backward_data, backward_weight)");
  for (const auto& a : conv2d_backward_table())
    if (a.info.kind == "production" && a.info.name != "auto" &&
        (pass == "backward_data" ? a.data_applies(g) : a.weight_applies(g)))
      out.push_back(a.info.name);
  return out;
}

std::string conv2d_auto_choice(const std::string& pass, const Conv2dGeometry& g) {
  using namespace conv_detail;
  if (pass == "forward") {
    const ForwardFn f = forward_auto_choice(g);
    for (const auto& a : conv2d_forward_table())
      if (a.fn == f) return a.info.name;
  } else if (pass == "backward_weight") {
    const BackwardWeightFn f = backward_weight_auto_choice(g);
    for (const auto& a : conv2d_backward_table())
      if (a.weight == f) return a.info.name;
  } else if (pass == "backward_data") {
    return backward_data_implicit_applies(g) ? "transposed forward" : "im2col";
  }
  throw std::invalid_argument("conv2d_auto_choice: unknown pass '" + pass +
                              "' (forward, backward_data, backward_weight)");
}

}  // namespace convforge::cpu
