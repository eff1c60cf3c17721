// Direct conv2d forward, NEON (AArch64, 32 q-registers): 8 filters x 8 columns = 16 q-register
// accumulators (each 8-wide row is two q-registers).
// direct_k: 8 filters per vector (two q-registers) x 12 output positions = 24 accumulators.
// weight gradient: 4 filters x 4 taps of 4-wide vectors = 16 accumulators + 8 loads.
// The kernel itself is conv2d_direct_impl.h, shared by every ISA build.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 8
#define CF_DIRECT_QB 8
#define CF_DIRECT_KV 8
#define CF_BW_V 4
#define CF_BW_KB 4
#define CF_BW_TB 4
#define CF_DIRECT_NA 12
#include "cpu/conv/conv2d_direct_impl.h"
#undef CF_DIRECT_KB
#undef CF_DIRECT_QB
#undef CF_DIRECT_KV
#undef CF_DIRECT_NA
#undef CF_BW_V
#undef CF_BW_KB
#undef CF_BW_TB
}  // namespace

CF_DIRECT_ENTRY_POINTS(neon)

}  // namespace convforge::cpu::conv_detail
