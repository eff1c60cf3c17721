// Direct conv2d forward, AVX-512: 8 filters x 16 columns = 8 zmm accumulators.
// direct_k: 16 filters per vector x 28 output positions.
// weight gradient: 4 filters x 5 taps of 16-wide vectors.
// The kernel itself is conv2d_direct_impl.h, shared by the three ISA builds.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 8
#define CF_DIRECT_QB 16
#define CF_DIRECT_KV 16
#define CF_BW_V 16
#define CF_BW_KB 4
#define CF_BW_TB 5
#define CF_DIRECT_NA 28
#include "cpu/conv/conv2d_direct_impl.h"
}  // namespace

CF_DIRECT_ENTRY_POINTS(avx512)

}  // namespace convforge::cpu::conv_detail
