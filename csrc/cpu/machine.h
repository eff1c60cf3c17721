// The machine the kernels run on, described at run time: who made the CPU, which
// microarchitecture, its SIMD level, its cache sizes, and (measured on request, never at
// import) its fp32 FMA peak and its memory bandwidth. The GEMM configuration
// (gemm/gemm_config.cpp) sizes its blocks from this description, `convforge info` prints
// it, and the benchmarks take "% of peak" from the measured peak.
//
// The struct is architecture-neutral; only machine.cpp's detection differs per architecture
// (x86: CPUID leaves 0, 1, 4, 0x8000001D and the brand string; everywhere: Linux sysfs).
#pragma once

#include <cstdint>
#include <string>

#include "cpu/cpu_features.h"

namespace convforge::cpu {

struct MachineDescription {
  std::string arch;        // "x86_64", "aarch64", ...
  std::string vendor;      // "GenuineIntel", "AuthenticAMD", ... ("unknown" where not read)
  std::string model_name;  // the brand string ("AMD EPYC 7763 64-Core Processor")
  int family = -1;         // x86: display family and model (CPUID leaf 1); -1 where unknown
  int model = -1;
  std::string uarch;       // "zen3", "zen4", "sapphire-rapids", ... or "unknown"
  int logical_cpus = 0;    // online logical CPUs
  // Cache sizes in bytes as one core sees them (L3: the instance this core shares), and how
  // many logical CPUs share each; 0 where not found.
  int64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;
  int l2_shared_by = 0, l3_shared_by = 0;
  std::string cache_source;  // "cpuid leaf 4", "cpuid leaf 0x8000001d", "sysfs" or "assumed"
};

// Detected once (CPUID / sysfs only: microseconds), then the same object.
const MachineDescription& machine();

// Measured fp32 throughput, each measured once per process and argument, then cached.
// Both take tens of milliseconds; the bandwidth allocates 3 arrays of up to 64 MiB.
struct FmaPeak {
  double gflops = 0;        // best over the SIMD levels this CPU supports, all `threads` together
  double gflops_256 = 0;    // with 256-bit (or 128-bit on scalar-only builds) vectors
  double gflops_512 = 0;    // with 512-bit vectors; 0 without AVX-512
  int fma512_units = 0;     // 512-bit FMAs per cycle, from gflops_512 / gflops_256; 0: no AVX-512
};
FmaPeak measure_fma_peak(int threads);
double measure_triad_bandwidth_gbs(int threads);  // STREAM triad a = b + s*c, GB/s (12 B/element)

// The FMA-throughput loops per ISA (machine_peak*.cpp): iters rounds of `chains` independent
// vector FMAs; returns a value that depends on every result so the loop is not removed.
float fma_loop_vec128(int64_t iters);
float fma_loop_avx2(int64_t iters);
float fma_loop_avx512(int64_t iters);
// Floating-point operations one call of each loop performs per iteration.
constexpr int64_t kFmaLoopFlops128 = 2 * 4 * 12, kFmaLoopFlopsAvx2 = 2 * 8 * 12,
                  kFmaLoopFlopsAvx512 = 2 * 16 * 24;

}  // namespace convforge::cpu
