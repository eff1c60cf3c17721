#include "cpu/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

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
#endif
  return SimdLevel::Scalar;
}

SimdLevel from_env(SimdLevel supported) {
  const char* env = std::getenv("CONVFORGE_SIMD");
  SimdLevel wanted = supported;
  if (env) {
    if (!std::strcmp(env, "scalar")) wanted = SimdLevel::Scalar;
    else if (!std::strcmp(env, "avx2")) wanted = SimdLevel::AVX2;
    else if (!std::strcmp(env, "avx512")) wanted = SimdLevel::AVX512;
  }
  return wanted < supported ? wanted : supported;
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
  const SimdLevel s = simd_level_supported();
  current().store(static_cast<int>(level < s ? level : s));
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace convforge::cpu
