// Pooling entry points: choose a version by algo= and list the versions.
//   reference  plain loops, one output at a time            (pool2d_reference.cpp)
//   fast       threads over (plane, row); interior runs vectorised over outputs,
//              one copy per ISA                             (pool2d_fast.cpp, pool2d_row_kernels.h)
// Backward has one version for both (pool2d_backward.cpp). Adaptive average pooling has the
// same two versions (adaptive_avg_pool2d.cpp).
#include "cpu/pool/pool2d.h"

#include <stdexcept>

#include "cpu/pool/pool2d_internal.h"

namespace convforge::cpu {
namespace {

bool use_reference(const std::string& algo, const char* op) {
  if (algo == "reference") return true;
  if (algo == "fast" || algo == "auto") return false;  // fast handles every geometry
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo +
                              "'; expected one of 'auto', 'reference', 'fast'");
}

}  // namespace

void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices,
                        const std::string& algo) {
  if (use_reference(algo, "max_pool2d"))
    pool_detail::max_pool2d_reference(g, x, y, indices);
  else
    pool_detail::max_pool2d_fast(g, x, y, indices);
}

void avg_pool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y,
                        const std::string& algo) {
  const bool reference = use_reference(algo, "avg_pool2d");
  if (g.dilation_h != 1 || g.dilation_w != 1)
    throw std::invalid_argument("avg_pool2d: average pooling has no dilation");
  if (reference)
    pool_detail::avg_pool2d_reference(g, count_include_pad, x, y);
  else
    pool_detail::avg_pool2d_fast(g, count_include_pad, x, y);
}

void adaptive_avg_pool2d_forward(const AdaptivePool2dGeometry& g, const float* x, float* y,
                                 const std::string& algo) {
  if (use_reference(algo, "adaptive_avg_pool2d"))
    pool_detail::adaptive_avg_pool2d_reference(g, x, y);
  else
    pool_detail::adaptive_avg_pool2d_fast(g, x, y);
}

std::vector<KernelInfo> pool2d_algos() {
  return {
      {"reference", "reference", "plain loops over each output's window, no threads",
       "cpu/pool/pool2d_reference.cpp"},
      {"fast", "production",
       "OpenMP over (plane, output row); interior outputs vectorised (AVX-512/AVX2/SSE copies), "
       "padded edges scalar; adaptive average: bin rows summed into column sums, "
       "global 1x1 one vectorised sum per plane (adaptive_avg_pool2d.cpp)",
       "cpu/pool/pool2d_fast.cpp"},
  };
}

}  // namespace convforge::cpu
