// conv2d entry points: the algo switch, "auto"'s choice by shape, and the kernel lists.
#include "cpu/conv/conv2d.h"

#include <stdexcept>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/cpu_features.h"

namespace convforge::cpu {
namespace conv_detail {

void forward_direct(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  switch (simd_level()) {
    case SimdLevel::AVX512: return forward_direct_avx512(g, x, w, bias, y, relu);
    case SimdLevel::AVX2: return forward_direct_avx2(g, x, w, bias, y, relu);
    default: return forward_direct_scalar(g, x, w, bias, y, relu);
  }
}

}  // namespace conv_detail

namespace {

[[noreturn]] void unknown(const char* op, const std::string& algo, const char* choices) {
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo + "'; expected one of " +
                              choices);
}

// The GEMM's M is the filters per group; below the AVX-512 micro-tile's 14 rows most of each
// tile is padding, and with a handful (depthwise: 1) the direct kernel, which vectorises along
// the output row instead, wins. Measured (1 thread, loaded Zen 4): LeNet 1->6 ties (0.29 ms at
// N=16), VGG 3->64 at 224 implicit 2.6 ms vs direct 4.7 ms, so only tiny K/groups go direct.
constexpr int64_t kDirectMaxFiltersPerGroup = 6;

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo, bool relu) {
  using namespace conv_detail;
  if (algo == "reference") return forward_reference(g, x, w, bias, y, relu);
  if (algo == "im2col") return forward_im2col(g, x, w, bias, y, relu);
  if (algo == "implicit") return forward_implicit(g, x, w, bias, y, relu);
  if (algo == "direct") return forward_direct(g, x, w, bias, y, relu);
  if (algo == "auto") {
    if (g.K_per_group() <= kDirectMaxFiltersPerGroup)
      return forward_direct(g, x, w, bias, y, relu);
    return forward_implicit(g, x, w, bias, y, relu);
  }
  unknown("conv2d", algo, "'auto', 'reference', 'im2col', 'implicit', 'direct'");
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo) {
  using namespace conv_detail;
  if (algo == "reference") return backward_data_reference(g, dy, w, dx);
  if (algo == "im2col" || algo == "auto") return backward_data_im2col(g, dy, w, dx);
  unknown("conv2d_backward", algo, "'auto', 'reference', 'im2col'");
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo) {
  using namespace conv_detail;
  if (algo == "reference") return backward_weight_reference(g, dy, x, dw, db);
  if (algo == "im2col" || algo == "auto") return backward_weight_im2col(g, dy, x, dw, db);
  unknown("conv2d_backward", algo, "'auto', 'reference', 'im2col'");
}

std::vector<KernelInfo> conv2d_forward_algos() {
  return {
      {"reference", "reference", "seven plain nested loops, one output at a time",
       "cpu/conv/conv2d_reference.cpp"},
      {"im2col", "teaching",
       "column matrix for a bounded tile of output positions, then the blocked GEMM with bias "
       "and relu in its epilogue",
       "cpu/conv/conv2d_im2col.cpp"},
      {"implicit", "production",
       "implicit GEMM: im2col gathered straight into the GEMM's packed B panels, no column "
       "matrix",
       "cpu/conv/conv2d_implicit.cpp"},
      {"direct", "production",
       "direct loops with a filters x output-columns register block, vectorised along the row; "
       "for small C/groups*R*S (LeNet 1->6, VGG 3->64, depthwise)",
       "cpu/conv/conv2d_direct_impl.h"},
      {"auto", "production",
       "direct when K/groups <= 6 (depthwise, LeNet's first layer), else implicit (measured)",
       "cpu/conv/conv2d.cpp"},
  };
}

std::vector<KernelInfo> conv2d_backward_algos() {
  return {
      {"reference", "reference",
       "plain loops: data as the forward scatter, weight as one sum per filter tap",
       "cpu/conv/conv2d_reference.cpp"},
      {"im2col", "production",
       "data: W^T * dy into a bounded column tile, then col2im; weight: dy * col^T per tile, "
       "per-thread partial dW summed at the end",
       "cpu/conv/conv2d_im2col.cpp"},
      {"auto", "production", "im2col", "cpu/conv/conv2d.cpp"},
  };
}

}  // namespace convforge::cpu
