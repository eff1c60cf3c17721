// Which SIMD instruction set the CPU kernels use, decided once at run time.
//
// The ISA-specific code lives in translation units named *_avx2.cpp and *_avx512.cpp
// (x86-64, compiled with those flags only) and *_neon.cpp (AArch64); CMake compiles only
// the target architecture's ones, and CONVFORGE_ARCH_* below says the same to the code that
// dispatches among them. Everything else is portable and asks simd_level() which one to call.
// CONVFORGE_SIMD=scalar|avx2|avx512|neon lowers the level (for tests and benchmarks); it never
// raises it above what the CPU has, and a level of another architecture means scalar.
#pragma once

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define CONVFORGE_ARCH_X86 1
#else
#define CONVFORGE_ARCH_X86 0
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define CONVFORGE_ARCH_ARM64 1
#else
#define CONVFORGE_ARCH_ARM64 0
#endif

namespace convforge::cpu {

// x86-64: Scalar < AVX2 < AVX512. AArch64: Scalar < NEON (every ARMv8-A core has NEON).
enum class SimdLevel { Scalar = 0, AVX2 = 1, AVX512 = 2, NEON = 3 };

SimdLevel simd_level();                // the level in use
SimdLevel simd_level_supported();      // the best the CPU and OS support
void set_simd_level(SimdLevel level);  // clamps to what is supported
bool simd_level_available(SimdLevel level);  // on this architecture's ladder, and supported
const char* simd_level_name(SimdLevel level);

#if CONVFORGE_ARCH_ARM64
// SVE (scalable vectors; Graviton 3, Neoverse V1/V2): reported by `convforge info`, not used
// by any kernel yet.
bool cpu_has_sve();
#endif

}  // namespace convforge::cpu
