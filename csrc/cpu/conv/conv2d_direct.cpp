// Direct conv2d forward, portable build (SSE2 baseline): 4 filters x 8 columns.
// direct_k: 4 filters per vector x 12 output positions.
// weight gradient: 3 filters x 3 taps of 4-wide vectors.
// The kernel itself is conv2d_direct_impl.h, shared by the three ISA builds.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 4
#define CF_DIRECT_QB 8
#define CF_DIRECT_KV 4
#define CF_BW_V 4
#define CF_BW_KB 3
#define CF_BW_TB 3
#define CF_DIRECT_NA 12
#include "cpu/conv/conv2d_direct_impl.h"
}  // namespace

CF_DIRECT_ENTRY_POINTS(scalar)

}  // namespace convforge::cpu::conv_detail
