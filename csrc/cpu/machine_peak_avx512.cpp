// The AVX-512 throughput loop (machine_peak_impl.h): 24 independent 512-bit FMA chains. Against
// the AVX2 loop it tells whether the core has one 512-bit FMA unit (or a double-pumped 256-bit
// one, as Zen 4) or two (Skylake-X Gold/Platinum, Ice Lake, Sapphire/Emerald Rapids, Zen 5).
#include "cpu/machine.h"
#define CF_PEAK_WIDTH 16
#include "cpu/machine_peak_impl.h"

namespace convforge::cpu {

float fma_loop_avx512(int64_t iters) { return fma_chains<kFmaLoopFlopsAvx512 / 32>(iters); }

}  // namespace convforge::cpu
