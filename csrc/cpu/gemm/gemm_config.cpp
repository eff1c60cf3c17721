// Blocking constants per ISA, in one place (as BLIS's config/<arch>).
//
// Sized for Zen 4 / Skylake-X class caches (32 KiB L1d, 1 MiB L2, shared L3):
//  - KC x NR floats of B (one micro-panel) should stay in L1 while the ir loop sweeps it:
//    256 x 32 x 4 B = 32 KiB for AVX-512, 256 x 16 x 4 B = 16 KiB for AVX2;
//  - MC x KC floats of A (one packed block) stay in L2: 280 x 256 x 4 B = 280 KiB;
//  - KC x NC floats of B (the packed block) stay in L3: 256 x 4096 x 4 B = 4 MiB.
#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {

const GemmConfig& gemm_config(SimdLevel level) {
#if CONVFORGE_ARCH_ARM64
  // 8 x 12: 24 q-register accumulators + 2 for A + 3 for B = 29 of 32. Cache blocks as BLIS's
  // ThunderX2 / Neoverse configs (64 KiB L1d, >= 1 MiB L2): KC x NR of B = 640 x 12 x 4 B =
  // 30 KiB in L1, MC x KC of A = 120 x 640 x 4 B = 300 KiB in L2.
  static const GemmConfig neon{8, 12, 120, 640, 3072, microkernel_neon_8x12, "neon 8x12"};
  if (level == SimdLevel::NEON) return neon;
#endif
#if CONVFORGE_ARCH_X86
  // 14 x 32: 28 zmm accumulators + 2 for B + 1 broadcast = 31 of 32 registers.
  static const GemmConfig avx512{14, 32, 280, 256, 4096, microkernel_avx512_14x32, "avx512 14x32"};
  // 6 x 16: 12 ymm accumulators + 2 for B + 1 broadcast = 15 of 16 registers.
  static const GemmConfig avx2{6, 16, 144, 256, 4096, microkernel_avx2_6x16, "avx2 6x16"};
  if (level == SimdLevel::AVX512) return avx512;
  if (level == SimdLevel::AVX2) return avx2;
#endif
  // Portable: the compiler vectorises the 16-wide rows with SSE2 (x86-64) or NEON (AArch64).
  static const GemmConfig scalar{4, 16, 128, 256, 2048, microkernel_scalar_4x16, "scalar 4x16"};
  return scalar;
}

}  // namespace convforge::cpu::gemm_detail
