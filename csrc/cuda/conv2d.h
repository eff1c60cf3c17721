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
// "implicit" (GEMM tiles gathered straight from x, fused bias/ReLU), "implicit_v2" (the same with
// a depth table instead of per-element divisions, 16-byte weight loads and split-K), "direct_v2"
// (small K/groups: filters in shared memory, 2 positions x 8 or 16 channels per thread), "auto".
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo = "auto", bool relu = false);
// algo: "reference", "im2col" (GEMM then col2im), "implicit", "implicit_v2", "direct", "auto".
void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo = "auto");
// dw, and db when not null. algo: "reference", "im2col", "implicit" (split over N*P*Q),
// "implicit_v2", "direct" (small channel counts), "auto".
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
// conv2d_implicit_gemm_v2.cu
struct ImplicitV2Plan {
  int bm = 128;                 // rows per block tile (128 or 64)
  int splits = 1;               // depth splits (split-K); 1 = y written directly
  int64_t depth_per_split = 0;  // multiple of the tile depth when splits > 1
};
ImplicitV2Plan implicit_v2_plan(const Conv2dGeometry& g, int sms);
bool implicit_v2_supports(const Conv2dGeometry& g);
void implicit_v2_forward(const Conv2dGeometry& g, const float* x, const float* w,
                         const float* bias, float* y, bool relu);
// dx: stride 1 as implicit_v2's forward over dy with flipped weights; else "implicit".
void implicit_v2_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
// dw: depth walked per image (no divisions), split-K reduced in a fixed order.
void implicit_v2_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw);
// conv2d_direct_v2.cu (small channel counts); each returns false where it does not apply.
bool direct_v2_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       float* y, bool relu);
bool direct_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
bool direct_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw);
}  // namespace detail

}  // namespace convforge::cuda
