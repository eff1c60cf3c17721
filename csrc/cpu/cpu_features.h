// Which SIMD instruction set the CPU kernels use, decided once at run time.
//
// The ISA-specific code lives in translation units named *_avx2.cpp and
// *_avx512.cpp (compiled with those flags only); everything else is portable and
// asks simd_level() which one to call. CONVFORGE_SIMD=scalar|avx2|avx512 lowers
// the level (for tests and benchmarks); it never raises it above what the CPU has.
#pragma once

namespace convforge::cpu {

enum class SimdLevel { Scalar = 0, AVX2 = 1, AVX512 = 2 };

SimdLevel simd_level();                // the level in use
SimdLevel simd_level_supported();      // the best the CPU and OS support
void set_simd_level(SimdLevel level);  // clamps to what is supported
const char* simd_level_name(SimdLevel level);

}  // namespace convforge::cpu
