// 2-D max and average pooling on the GPU, forward and backward (NCHW), with the semantics of
// cpu/pool/pool2d.h and PyTorch: indices are flat h*W+w per plane, ties go to the first
// position in row-major window order, NaN wins, ceil_mode windows that start in the right
// padding are dropped by the geometry, count_include_pad counts padding (not the overhang).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/geometry.h"
#include "cuda/gemm.h"

namespace convforge::cuda {

// algo: "reference" (one thread per output), "auto". indices may be null.
void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices,
                        const std::string& algo = "auto");
// dx (planes x HW) = scatter-add of dy (planes x PQ) at indices (atomics: windows may overlap).
// Synchronises to report an index outside [0, HW) as std::out_of_range.
void max_pool2d_backward(int64_t planes, int64_t PQ, int64_t HW, const float* dy,
                         const int64_t* indices, float* dx);
void avg_pool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y,
                        const std::string& algo = "auto");
// A gather: one thread per input element sums the windows that cover it (no atomics).
void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const float* dy,
                         float* dx);

// Adaptive average pooling (bins from common/geometry.h). Forward: one thread per output ("fast":
// a 1x1 output is one block's reduction per plane); backward: one thread per input, a gather.
void adaptive_avg_pool2d_forward(const AdaptivePool2dGeometry& g, const float* x, float* y,
                                 const std::string& algo = "auto");
void adaptive_avg_pool2d_backward(const AdaptivePool2dGeometry& g, const float* dy, float* dx);

std::vector<KernelInfo> pool2d_algos();

}  // namespace convforge::cuda
