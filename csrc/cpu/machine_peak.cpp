// The portable FMA-throughput loop (machine_peak_impl.h): 128-bit vectors through the compiler's
// vector extension (SSE2 on x86, NEON on AArch64), for builds and CPUs without AVX2.
#include "cpu/machine.h"
#define CF_PEAK_WIDTH 4
#include "cpu/machine_peak_impl.h"

namespace convforge::cpu {

float fma_loop_vec128(int64_t iters) { return fma_chains<kFmaLoopFlops128 / 8>(iters); }

}  // namespace convforge::cpu
