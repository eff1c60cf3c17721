// Direct conv2d forward, NEON (AArch64, 32 q-registers): 8 filters x 4 columns = 8 q-register
// accumulators, each tap's weights one lane of a q-register (fmla by element).
// direct_k: 4 filters per vector x 24 output positions = 24 accumulators.
// weight gradient: 4 filters x 4 taps of 4-wide vectors = 16 accumulators + 8 loads.
// Every vector is one q-register (4 floats): GCC keeps 8-wide generic vectors, which have no
// AArch64 register mode, in memory (a load and a store per multiply-add in the tap loop).
// The kernel itself is conv2d_direct_impl.h, shared by every ISA build.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 8
#define CF_DIRECT_QB 4
#define CF_DIRECT_KV 4
#define CF_BW_V 4
#define CF_BW_KB 4
#define CF_BW_TB 4
#define CF_DIRECT_NA 24
#include "cpu/conv/conv2d_direct_impl.h"
}  // namespace

CF_DIRECT_ENTRY_POINTS(neon)

}  // namespace convforge::cpu::conv_detail
