// The AVX2+FMA throughput loop of the machine description (machine.h): 12 independent
// 256-bit FMA chains, enough for two FMA pipes of latency up to 6 cycles.
#include <immintrin.h>

#include "cpu/machine.h"

namespace convforge::cpu {

float fma_loop_avx2(int64_t iters) {
  constexpr int kChains = kFmaLoopFlopsAvx2 / 16;
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(float(j + 1));
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], b, c);
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0] + out[7];
}

}  // namespace convforge::cpu
