// The AVX-512 throughput loop of the machine description (machine.h): 24 independent
// 512-bit FMA chains. Against the AVX2 loop it tells whether the core has one 512-bit FMA
// unit (or a double-pumped 256-bit one, as Zen 4) or two (Skylake-X Gold/Platinum, Ice Lake,
// Sapphire/Emerald Rapids, Zen 5).
#include <immintrin.h>

#include "cpu/machine.h"

namespace convforge::cpu {

float fma_loop_avx512(int64_t iters) {
  constexpr int kChains = kFmaLoopFlopsAvx512 / 32;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j + 1));
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);  // (_mm512_reduce_add_ps draws a -Wmaybe-uninitialized from gcc 12)
  return out[0] + out[15];
}

}  // namespace convforge::cpu
