// 2-D max, average and adaptive average pooling on the CPU, forward and backward (NCHW).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/geometry.h"
#include "cpu/kernel_info.h"

namespace convforge::cpu {

// indices (may be null) receive, per output, the flat position h*W+w in its input plane
// of the maximum; ties go to the first in row-major window order; NaN wins, as in PyTorch.
void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices,
                        const std::string& algo = "auto");
// dx (N*C planes of HW) = scatter-add of dy (N*C planes of PQ) at indices.
// Throws std::out_of_range for an index outside [0, HW).
void max_pool2d_backward(int64_t planes, int64_t PQ, int64_t HW, const float* dy,
                         const int64_t* indices, float* dx);

void avg_pool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y,
                        const std::string& algo = "auto");
void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const float* dy,
                         float* dx);

// Adaptive average pooling (bins from common/geometry.h); the same algo names as above.
void adaptive_avg_pool2d_forward(const AdaptivePool2dGeometry& g, const float* x, float* y,
                                 const std::string& algo = "auto");
void adaptive_avg_pool2d_backward(const AdaptivePool2dGeometry& g, const float* dy, float* dx);

std::vector<KernelInfo> pool2d_algos();

}  // namespace convforge::cpu
