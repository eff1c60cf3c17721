// The AVX2+FMA throughput loop (machine_peak_impl.h): 12 independent 256-bit FMA chains, enough
// for two FMA pipes of latency up to 6 cycles.
#include "cpu/machine.h"
#define CF_PEAK_WIDTH 8
#include "cpu/machine_peak_impl.h"

namespace convforge::cpu {

float fma_loop_avx2(int64_t iters) { return fma_chains<kFmaLoopFlopsAvx2 / 16>(iters); }

}  // namespace convforge::cpu
