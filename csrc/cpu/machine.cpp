// Machine description (machine.h): detection from CPUID and sysfs, and the measured peak
// and bandwidth.
#include "cpu/machine.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace convforge::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

// Vendor, family/model (the display values: base + extended) and the brand string.
void read_identity(MachineDescription& m) {
  const Regs r0 = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor, &r0.b, 4);
  std::memcpy(vendor + 4, &r0.d, 4);
  std::memcpy(vendor + 8, &r0.c, 4);
  m.vendor = vendor;
  if (r0.a >= 1) {
    const unsigned eax = cpuid(1).a;
    const int base_family = (eax >> 8) & 0xF, base_model = (eax >> 4) & 0xF;
    m.family = base_family == 0xF ? base_family + int((eax >> 20) & 0xFF) : base_family;
    m.model = (base_family == 0x6 || base_family == 0xF) ? base_model | int((eax >> 16) & 0xF) << 4
                                                         : base_model;
  }
  if (cpuid(0x80000000).a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    std::string s = brand;
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    m.model_name = s;
  }
}

// Deterministic cache parameters: Intel's leaf 4 and AMD's leaf 0x8000001D share one format.
bool read_caches_cpuid(MachineDescription& m) {
  unsigned leaf = 0;
  if (m.vendor == "GenuineIntel" && cpuid(0).a >= 4) {
    leaf = 4;
    m.cache_source = "cpuid leaf 4";
  } else if ((m.vendor == "AuthenticAMD" || m.vendor == "HygonGenuine") &&
             cpuid(0x80000000).a >= 0x8000001D && (cpuid(0x80000001).c >> 22 & 1)) {
    leaf = 0x8000001D;
    m.cache_source = "cpuid leaf 0x8000001d";
  } else {
    return false;
  }
  for (unsigned i = 0; i < 16; ++i) {
    const Regs r = cpuid(leaf, i);
    const unsigned type = r.a & 0x1F;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const int level = (r.a >> 5) & 0x7, shared = int((r.a >> 14) & 0xFFF) + 1;
    const int64_t bytes = int64_t((r.b >> 22) + 1) * (((r.b >> 12) & 0x3FF) + 1) *
                          ((r.b & 0xFFF) + 1) * (int64_t(r.c) + 1);
    if (level == 1) m.l1d_bytes = bytes;
    if (level == 2) m.l2_bytes = bytes, m.l2_shared_by = shared;
    if (level == 3) m.l3_bytes = bytes, m.l3_shared_by = shared;
  }
  return m.l1d_bytes > 0 && m.l2_bytes > 0;
}

// A name for the microarchitecture from family/model (the cases the GEMM configs tell apart,
// and the common ones around them); "unknown" otherwise. Configs never depend on the name
// alone: gemm_config.cpp matches on vendor and SIMD level.
std::string uarch_name(const MachineDescription& m) {
  const int f = m.family, x = m.model;
  if (m.vendor == "AuthenticAMD" || m.vendor == "HygonGenuine") {
    if (f == 0x17) return x >= 0x30 ? "zen2" : "zen";
    if (f == 0x19) {
      if (x <= 0x0F || (x >= 0x20 && x <= 0x5F)) return "zen3";
      return "zen4";  // 0x10-0x1F (Genoa), 0x60-0x7F, 0xA0-0xAF (Bergamo)
    }
    if (f == 0x1A) return "zen5";
  }
  if (m.vendor == "GenuineIntel" && f == 6) {
    switch (x) {
      case 0x3C: case 0x3F: case 0x45: case 0x46: return "haswell";
      case 0x3D: case 0x47: case 0x4F: case 0x56: return "broadwell";
      case 0x4E: case 0x5E: case 0x8E: case 0x9E: case 0xA5: case 0xA6: return "skylake";
      case 0x55: return "skylake-x";  // also Cascade Lake and Cooper Lake
      case 0x6A: case 0x6C: case 0x7D: case 0x7E: return "ice-lake";
      case 0x8C: case 0x8D: return "tiger-lake";
      case 0x8F: return "sapphire-rapids";
      case 0xCF: return "emerald-rapids";
      case 0xAD: case 0xAE: return "granite-rapids";
      case 0x97: case 0x9A: case 0xB7: case 0xBA: case 0xBF: return "alder-lake";
      default: break;
    }
  }
  return "unknown";
}
#endif

// Linux sysfs: /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size,shared_cpu_list}.
std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

int count_cpus(const std::string& list) {  // "0-3,8-11" -> 8
  int n = 0;
  size_t i = 0;
  while (i < list.size()) {
    char* end = nullptr;
    const long a = std::strtol(list.c_str() + i, &end, 10);
    long b = a;
    i = size_t(end - list.c_str());
    if (i < list.size() && list[i] == '-') {
      b = std::strtol(list.c_str() + i + 1, &end, 10);
      i = size_t(end - list.c_str());
    }
    n += int(b - a + 1);
    if (i < list.size() && list[i] == ',') ++i;
    else break;
  }
  return n;
}

bool read_caches_sysfs(MachineDescription& m) {
  bool any = false;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_line(dir + "level"), type = read_line(dir + "type");
    if (level.empty()) break;
    if (type == "Instruction") continue;
    const std::string size = read_line(dir + "size");  // "32K", "1024K", "32768K"
    int64_t bytes = std::strtoll(size.c_str(), nullptr, 10);
    if (size.find('K') != std::string::npos) bytes <<= 10;
    if (size.find('M') != std::string::npos) bytes <<= 20;
    const int shared = count_cpus(read_line(dir + "shared_cpu_list"));
    if (level == "1") m.l1d_bytes = bytes;
    if (level == "2") m.l2_bytes = bytes, m.l2_shared_by = shared;
    if (level == "3") m.l3_bytes = bytes, m.l3_shared_by = shared;
    any = true;
  }
  if (any) m.cache_source = "sysfs";
  return any && m.l1d_bytes > 0 && m.l2_bytes > 0;
}

MachineDescription detect_machine() {
  MachineDescription m;
#if defined(__x86_64__)
  m.arch = "x86_64";
#elif defined(__i386__)
  m.arch = "i386";
#elif defined(__aarch64__)
  m.arch = "aarch64";
#else
  m.arch = "unknown";
#endif
  m.vendor = "unknown";
  m.uarch = "unknown";
  bool caches = false;
#if defined(__x86_64__) || defined(__i386__)
  read_identity(m);
  m.uarch = uarch_name(m);
  caches = read_caches_cpuid(m);
#endif
  if (!caches) caches = read_caches_sysfs(m);
  if (!caches) {  // neither: typical sizes, and say so
    m.l1d_bytes = 32 << 10;
    m.l2_bytes = 512 << 10;
    m.l3_bytes = 8 << 20;
    m.cache_source = "assumed (neither CPUID nor sysfs answered)";
  }
  if (m.model_name.empty()) {  // e.g. AArch64: /proc/cpuinfo's "model name" where present
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
        m.model_name = line.substr(line.find(':') + 2);
        break;
      }
  }
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  m.logical_cpus = n > 0 ? int(n) : 1;
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

volatile float g_sink;  // keeps the loops' results alive

// GFLOP/s of `loop` on `threads` threads running at once: each thread times its own 10 runs of
// ~3 ms (iterations calibrated on a first short run) and keeps its best; the threads' bests add
// up. Short runs and the best of many: on a shared machine some run fits between preemptions,
// and a thread that waits for a core does not count against the others.
double time_loop(float (*loop)(int64_t), int64_t flops_per_iter, int threads) {
  int64_t iters = 1 << 12;
  for (;;) {  // calibrate: grow until one run takes >= 1 ms
    const auto t0 = std::chrono::steady_clock::now();
    g_sink = loop(iters);
    if (seconds_since(t0) >= 1e-3 || iters >= (int64_t(1) << 34)) break;
    iters *= 2;
  }
  iters *= 3;
  // With several threads, the whole measurement three times, keeping the largest sum: a host
  // that takes one virtual CPU away for the ~30 ms of a measurement made a 2-thread peak read as
  // one core's (97.6 against 180-190 GFLOP/s on the 2-core Zen 3 VM, once in six runs).
  double result = 0;
  for (int attempt = 0; attempt < (threads > 1 ? 3 : 1); ++attempt) {
    double total = 0;
// not a kernel: measures the machine in its own mode, so no team_float_mode here
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      double best = 0;
      for (int rep = 0; rep < 10; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        const float r = loop(iters);
        best = std::max(best, double(flops_per_iter) * iters / seconds_since(t0) / 1e9);
        if (r == 12345.0f) g_sink = r;  // keeps the result alive without a shared store per run
      }
      total += best;
    }
    result = std::max(result, total);
  }
  return result;
}

// measure(threads) once per thread count, then remembered (one lock: measurements never overlap).
template <class T, class F>
T once_per_thread_count(int threads, F measure) {
  static std::mutex mu;
  static std::map<int, T> cache;
  threads = std::max(1, threads);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(threads);
  if (it == cache.end()) it = cache.emplace(threads, measure(threads)).first;
  return it->second;
}

FmaPeak fma_peak_now(int threads) {
  FmaPeak p;
  const SimdLevel level = simd_level_supported();
#if defined(__x86_64__) || defined(__i386__)
  if (level >= SimdLevel::AVX2) p.gflops_256 = time_loop(fma_loop_avx2, kFmaLoopFlopsAvx2, threads);
  if (level >= SimdLevel::AVX512) {
    p.gflops_512 = time_loop(fma_loop_avx512, kFmaLoopFlopsAvx512, threads);
    // Two units double the 512-bit rate over two 256-bit pipes; one unit (or Zen 4's
    // double-pumped 256-bit pipes) matches it. Frequency drops keep the ratio near 1.7-2.
    p.fma512_units = p.gflops_512 >= 1.5 * p.gflops_256 ? 2 : 1;
  }
#endif
  if (p.gflops_256 == 0) p.gflops_256 = time_loop(fma_loop_vec128, kFmaLoopFlops128, threads);
  p.gflops = std::max(p.gflops_256, p.gflops_512);
  return p;
}

double triad_bandwidth_now(int threads) {
  // Each array well past the last-level cache (STREAM asks for 4x; 2x and at most 64 MiB keeps
  // the measurement short and its memory modest).
  const int64_t llc = std::max(machine().l3_bytes, machine().l2_bytes);
  const int64_t n = std::clamp<int64_t>(2 * llc, int64_t(16) << 20, int64_t(64) << 20) / 4;
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
// not a kernel: measures the machine in its own mode, so no team_float_mode here
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;  // first touch per thread
  double best = 0;
  float* pa = a.get();
  const float *pb = b.get(), *pc = c.get();
  for (int rep = 0; rep < 5; ++rep) {
    const float s = 0.5f + rep;
    const auto t0 = std::chrono::steady_clock::now();
// not a kernel: measures the machine in its own mode, so no team_float_mode here
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    best = std::max(best, 12.0 * n / seconds_since(t0) / 1e9);
  }
  g_sink = pa[n / 2];
  return best;
}

}  // namespace

FmaPeak measure_fma_peak(int threads) { return once_per_thread_count<FmaPeak>(threads, fma_peak_now); }

double measure_triad_bandwidth_gbs(int threads) {
  return once_per_thread_count<double>(threads, triad_bandwidth_now);
}

const MachineDescription& machine() {
  static const MachineDescription m = detect_machine();
  return m;
}

}  // namespace convforge::cpu
