// Direct conv2d forward, AVX2: 4 filters x 16 columns = 8 ymm accumulators.
// The kernel itself is conv2d_direct_impl.h, shared by the three ISA builds.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 4
#define CF_DIRECT_QB 16
#include "cpu/conv/conv2d_direct_impl.h"
#undef CF_DIRECT_KB
#undef CF_DIRECT_QB
}  // namespace

void forward_direct_avx2(const Conv2dGeometry& g, const float* x, const float* w,
                         const float* bias, float* y, bool relu) {
  direct_forward(g, x, w, bias, y, relu);
}

}  // namespace convforge::cpu::conv_detail
