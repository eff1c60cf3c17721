// Direct conv2d forward, AVX2: 8 filters x 8 columns = 8 ymm accumulators. One native vector
// per row: with 16 columns (a 64-byte GCC vector on a 32-byte ISA) GCC 12 moved every
// accumulator through the stack and general registers after each FMA, 3-10x slower on Zen 3.
// direct_k: 8 filters per vector x 12 output positions, or (more than 8 filters per group)
// 16 filters in two vectors x 6 positions.
// weight gradient: 3 filters x 3 taps of 8-wide vectors.
// The kernel itself is conv2d_direct_impl.h, shared by the three ISA builds.
#include <omp.h>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#define CF_DIRECT_KB 8
#define CF_DIRECT_QB 8
#define CF_DIRECT_KV 8
#define CF_BW_V 8
#define CF_BW_KB 3
#define CF_BW_TB 3
#define CF_DIRECT_NA 12
#define CF_DIRECT_NA2 6
#define CF_DIRECT_QW2 1
#include "cpu/conv/conv2d_direct_impl.h"
}  // namespace

CF_DIRECT_ENTRY_POINTS(avx2)

}  // namespace convforge::cpu::conv_detail
