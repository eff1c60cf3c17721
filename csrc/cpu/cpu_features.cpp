#include "cpu/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if CONVFORGE_ARCH_ARM64 && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace convforge::cpu {
namespace {

SimdLevel detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma"))
    return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
#elif CONVFORGE_ARCH_ARM64
  return SimdLevel::NEON;  // part of the ARMv8-A base architecture: nothing to ask
#endif
  return SimdLevel::Scalar;
}

// A level exists on this architecture's ladder (scalar is on every one).
bool on_this_arch(SimdLevel l) {
#if CONVFORGE_ARCH_ARM64
  return l == SimdLevel::Scalar || l == SimdLevel::NEON;
#else
  return l != SimdLevel::NEON;
#endif
}

SimdLevel clamp(SimdLevel wanted, SimdLevel supported) {
  if (!on_this_arch(wanted)) return SimdLevel::Scalar;
  return wanted < supported ? wanted : supported;
}

SimdLevel from_env(SimdLevel supported) {
  const char* env = std::getenv("CONVFORGE_SIMD");
  SimdLevel wanted = supported;
  if (env) {
    if (!std::strcmp(env, "scalar")) wanted = SimdLevel::Scalar;
    else if (!std::strcmp(env, "avx2")) wanted = SimdLevel::AVX2;
    else if (!std::strcmp(env, "avx512")) wanted = SimdLevel::AVX512;
    else if (!std::strcmp(env, "neon")) wanted = SimdLevel::NEON;
  }
  return clamp(wanted, supported);
}

std::atomic<int>& current() {
  static std::atomic<int> level{static_cast<int>(from_env(simd_level_supported()))};
  return level;
}

}  // namespace

SimdLevel simd_level_supported() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(current().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  current().store(static_cast<int>(clamp(level, simd_level_supported())));
}

bool simd_level_available(SimdLevel level) {
  return clamp(level, simd_level_supported()) == level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::NEON: return "neon";
    default: return "scalar";
  }
}

#if CONVFORGE_ARCH_ARM64
bool cpu_has_sve() {
#if defined(__linux__) && defined(HWCAP_SVE)
  return (getauxval(AT_HWCAP) & HWCAP_SVE) != 0;
#else
  return false;  // macOS: no Apple core has SVE
#endif
}
#endif

}  // namespace convforge::cpu
