// GEMM configurations per microarchitecture, in one place (as BLIS's config/<arch>), and
// the one chosen at start-up from the machine description (cpu/machine.h).
//
// An entry names its micro-kernel (the register block MR x NR) and how much of each cache a
// block may fill; MC, KC and NC come from the cache sizes the machine reports, never from
// constants (BLIS's analytical model, Low et al., "Analytical modeling is enough for
// high-performance BLIS", TOMS 2016):
//  - KC: one B micro-panel (KC x NR floats) stays in L1 while the ir loop sweeps the
//    A micro-panels past it:            KC = l1_frac * L1d / (4 NR), a multiple of 16;
//  - MC: the packed A block (MC x KC) stays in L2: MC = l2_frac * L2 / (4 KC), a multiple of MR;
//  - NC: the packed B block (KC x NC), shared by the team, in L3:
//                                       NC = l3_frac * L3 / (4 KC), a multiple of NR.
// The fractions are per entry: they leave room for the streams the cache also holds (the
// A micro-panels through L1, C tiles, the other operand's packing). With Zen 4's caches
// (32 KiB, 1 MiB, 32 MiB) the zen4 entry gives the blocks it was tuned with (KC 256, MC 280,
// NC 4096; 86% of peak at 2048^3, docs/cpu_tuning.md).
//
// CONVFORGE_CPU_CONFIG=<name> at start-up (or _C._set_cpu_config) forces an entry the CPU
// can run; it also lowers the SIMD level to the entry's, so every kernel runs that ISA.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu/gemm/gemm_blocked.h"
#include "cpu/machine.h"

namespace convforge::cpu::gemm_detail {
namespace {

bool is_intel(const MachineDescription& m) { return m.vendor == "GenuineIntel"; }
bool is_amd(const MachineDescription& m) {
  return m.vendor == "AuthenticAMD" || m.vendor == "HygonGenuine";
}
bool any(const MachineDescription&) { return true; }

// The table: the first entry whose ISA the CPU supports and whose `matches` accepts the
// machine is chosen. Order: most specific first.
const GemmConfigEntry kEntries[] = {
#if CONVFORGE_ARCH_ARM64
    // AArch64 NEON (issue 23's micro-kernel): 8 x 12, 24 q-register accumulators + 2 for A +
    // 3 for B = 29 of 32. BLIS's ThunderX2 / Neoverse configs keep the B micro-panel near half
    // of a 64 KiB L1d and the A block near 30% of L2.
    {"neon", SimdLevel::NEON, 8, 12, microkernel_neon_8x12, 0.5, 0.3, 0.125, any,
     "AArch64 NEON, 8x12 micro-tile"},
#endif
#if CONVFORGE_ARCH_X86
    // Intel AVX-512 (Skylake-X, Ice Lake, Sapphire/Emerald/Granite Rapids): two 512-bit FMA
    // units on most server parts, 48 KiB L1d and 2 MiB L2 from Ice Lake on. 14 x 32:
    // 28 zmm accumulators + 2 for B + 1 broadcast = 31 of 32 registers.
    {"intel-avx512", SimdLevel::AVX512, 14, 32, microkernel_avx512_14x32, 0.5, 0.5, 0.125,
     is_intel, "Intel AVX-512 (Skylake-X .. Emerald Rapids), 14x32 micro-tile"},
    // AMD Zen 4 (512-bit ops on 256-bit pipes) and Zen 5 (full 512-bit pipes): 32 KiB / 48 KiB
    // L1d, 1 MiB L2; the B micro-panel may fill L1 (the A micro-panels stream from L2, which
    // Zen's L1 prefetcher serves well).
    {"zen4", SimdLevel::AVX512, 14, 32, microkernel_avx512_14x32, 1.0, 0.28, 0.125, is_amd,
     "AMD Zen 4 / Zen 5 AVX-512, 14x32 micro-tile"},
    // Any other AVX-512 CPU: the Intel entry's proportions.
    {"avx512", SimdLevel::AVX512, 14, 32, microkernel_avx512_14x32, 0.5, 0.5, 0.125, any,
     "other AVX-512 CPUs, 14x32 micro-tile"},
    // AVX2 + FMA (Haswell .. Alder Lake, Zen 1-3): 6 x 16: 12 ymm accumulators + 2 for B +
    // 1 broadcast = 15 of 16 registers. BLIS's haswell/zen configs keep MC x KC near 30% of L2.
    {"avx2", SimdLevel::AVX2, 6, 16, microkernel_avx2_6x16, 0.5, 0.3, 0.125, any,
     "AVX2+FMA (Haswell .. Alder Lake, Zen 1-3), 6x16 micro-tile", sup_kernel_avx2_6x16},
#endif
    // Portable: the compiler vectorises the 16-wide rows with SSE2 (or NEON).
    {"scalar", SimdLevel::Scalar, 4, 16, microkernel_scalar_4x16, 0.5, 0.3, 0.125, any,
     "portable C++, 4x16 micro-tile"},
};
constexpr int kNumEntries = int(sizeof(kEntries) / sizeof(kEntries[0]));

// Whether this CPU runs an entry's ISA (cpu_features.h knows each architecture's ladder).
bool runs(SimdLevel isa) { return simd_level_available(isa); }

int64_t round_down(int64_t a, int64_t b) { return std::max<int64_t>(b, a / b * b); }

GemmConfig derive(const GemmConfigEntry& e, const MachineDescription& m) {
  GemmConfig c;
  c.mr = e.mr;
  c.nr = e.nr;
  c.kernel = e.kernel;
  c.sup = e.sup;
  c.name = e.name;
  c.kc = std::clamp<int64_t>(round_down(int64_t(e.l1_frac * m.l1d_bytes) / (4 * e.nr), 16), 64,
                             1024);
  c.mc = std::clamp<int64_t>(round_down(int64_t(e.l2_frac * m.l2_bytes) / (4 * c.kc), e.mr),
                             4 * e.mr, 200 * e.mr);
  const int64_t l3 = m.l3_bytes > 0 ? m.l3_bytes : 4 * m.l2_bytes;
  c.nc = std::clamp<int64_t>(round_down(int64_t(e.l3_frac * l3) / (4 * c.kc), e.nr), 16 * e.nr,
                             256 * e.nr);
  return c;
}

// The blocks of every entry for this machine, computed once.
struct Table {
  GemmConfig configs[kNumEntries];
  static constexpr int kLevels = 4;  // SimdLevel's values: scalar, avx2, avx512, neon
  int default_for_level[kLevels];    // the chosen entry per SIMD level
  Table() {
    const MachineDescription& m = machine();
    for (int i = 0; i < kNumEntries; ++i) configs[i] = derive(kEntries[i], m);
    for (int level = 0; level < kLevels; ++level) {
      default_for_level[level] = kNumEntries - 1;
      for (int i = 0; i < kNumEntries; ++i)
        if (int(kEntries[i].isa) == level && kEntries[i].matches(m)) {
          default_for_level[level] = i;
          break;
        }
    }
  }
};
const Table& table() {
  static const Table t;
  return t;
}

int find(const std::string& name) {
  for (int i = 0; i < kNumEntries; ++i)
    if (name == kEntries[i].name) return i;
  return -1;
}

std::string names() {
  std::string s;
  for (int i = 0; i < kNumEntries; ++i) s += std::string(i ? ", " : "") + kEntries[i].name;
  return s;
}

// The forced entry (-1: none, each SIMD level uses its default entry).
std::atomic<int>& forced() {
  static std::atomic<int> f{[] {
    const char* env = std::getenv("CONVFORGE_CPU_CONFIG");
    if (!env || !*env) return -1;
    const int i = find(env);
    // An unknown or unsupported name in the environment is ignored (as CONVFORGE_SIMD's are):
    // cpu_config_info() then shows the entry actually in use.
    if (i < 0 || !runs(kEntries[i].isa)) return -1;
    set_simd_level(kEntries[i].isa);
    return i;
  }()};
  return f;
}

int entry_for(SimdLevel level) {
  const int f = forced().load(std::memory_order_relaxed);
  if (f >= 0 && kEntries[f].isa == level) return f;
  return table().default_for_level[std::clamp(int(level), 0, Table::kLevels - 1)];
}

}  // namespace

const GemmConfig& gemm_config(SimdLevel level) { return table().configs[entry_for(level)]; }

const GemmConfigEntry* gemm_config_entries(int* count) {
  *count = kNumEntries;
  return kEntries;
}

const GemmConfig& gemm_config_blocks(int index) { return table().configs[index]; }

int gemm_config_in_use() { return entry_for(simd_level()); }

bool gemm_config_available(int index) { return runs(kEntries[index].isa); }

void set_gemm_config(const std::string& name) {
  if (name.empty() || name == "default") {
    forced().store(-1);
    set_simd_level(simd_level_supported());
    return;
  }
  const int i = find(name);
  if (i < 0)
    throw std::invalid_argument("CPU config: unknown name '" + name + "'; expected one of " +
                                names() + " (or 'default')");
  if (!runs(kEntries[i].isa))
    throw std::invalid_argument("CPU config '" + name + "' needs " +
                                simd_level_name(kEntries[i].isa) + ", but this CPU supports " +
                                simd_level_name(simd_level_supported()));
  set_simd_level(kEntries[i].isa);
  forced().store(i);
}

}  // namespace convforge::cpu::gemm_detail
