// conv2d on the GPU: forward, backward data, backward weight (+bias). Device pointers on the
// current device; work is queued on convforge's stream. Layouts are those of common/geometry.h.
#pragma once

#include <string>
#include <vector>

#include "common/geometry.h"
#include "cuda/gemm.h"

namespace convforge::cuda {

// algo: "reference" (one thread per output, plain loops), "direct" (several output channels
// per thread, for small channel counts), "im2col" (im2col buffer + warp-tiled SGEMM),
// "implicit" (GEMM tiles gathered straight from x, fused bias/ReLU), "auto".
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo = "auto", bool relu = false);
// algo: "reference", "im2col" (GEMM then col2im), "implicit", "auto".
void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo = "auto");
// dw, and db when not null. algo: "reference", "im2col", "implicit" (split over N*P*Q), "auto".
void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo = "auto");

std::vector<KernelInfo> conv2d_forward_algos();
std::vector<KernelInfo> conv2d_backward_algos();

namespace detail {
// conv2d_implicit_gemm.cu
void implicit_gemm_forward(const Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu);
void implicit_gemm_backward_data(const Conv2dGeometry& g, const float* dy, const float* w,
                                 float* dx);
void implicit_gemm_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw);
}  // namespace detail

}  // namespace convforge::cuda
