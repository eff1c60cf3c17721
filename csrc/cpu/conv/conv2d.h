// conv2d on the CPU: forward, backward data, backward weight. Every algo computes
// the same function; "auto" chooses by shape. Layouts are those of common/geometry.h.
#pragma once

#include <string>
#include <vector>

#include "common/geometry.h"
#include "cpu/kernel_info.h"

namespace convforge::cpu {

// y = conv(x, w) + bias (bias may be null; relu fuses max(0, .) into the write).
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, const std::string& algo = "auto", bool relu = false);
// dx = conv2d's gradient with respect to x.
void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          const std::string& algo = "auto");
// dw (and db when not null) = gradients with respect to the weight and bias.
void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* db, const std::string& algo = "auto");

std::vector<KernelInfo> conv2d_forward_algos();
std::vector<KernelInfo> conv2d_backward_algos();

// For measured choice (python/convforge/tuning.py): the algos worth timing for one pass
// ("forward", "backward_data", "backward_weight") of this geometry (the production kinds but
// auto, none that would only hand over to another), and the algo "auto" picks by its heuristics.
std::vector<std::string> conv2d_eligible_algos(const std::string& pass, const Conv2dGeometry& g);
std::string conv2d_auto_choice(const std::string& pass, const Conv2dGeometry& g);

}  // namespace convforge::cpu
