// The floating-point mode of a kernel call and the OpenMP pool across fork (kernel_env.h).
#include "cpu/kernel_env.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>

#if defined(__x86_64__) && defined(__SSE__)
#include <xmmintrin.h>
#define CONVFORGE_FP_X86 1
#elif defined(__aarch64__)
#define CONVFORGE_FP_ARM64 1
#endif

namespace convforge::cpu {

namespace {

#if defined(CONVFORGE_FP_X86)
constexpr uint64_t kFlushBits = 0x8000 | 0x0040;  // MXCSR.FTZ (bit 15) | MXCSR.DAZ (bit 6)
uint64_t read_register() { return _mm_getcsr(); }
void write_register(uint64_t v) { _mm_setcsr(static_cast<unsigned>(v)); }
#elif defined(CONVFORGE_FP_ARM64)
constexpr uint64_t kFlushBits = uint64_t(1) << 24;  // FPCR.FZ: subnormal inputs and results are zero
uint64_t read_register() {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return v;
}
void write_register(uint64_t v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }
#else
constexpr uint64_t kFlushBits = 0;
uint64_t read_register() { return 0; }
void write_register(uint64_t) {}
#endif

bool flush_from_env() {
  const char* env = std::getenv("CONVFORGE_FLUSH_DENORMAL");
  if (!env) return true;
  std::string v(env);
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return !(v == "0" || v == "false" || v == "off" || v == "no");
}

std::atomic<bool>& flush_setting() {
  static std::atomic<bool> on{flush_from_env()};
  return on;
}

// The largest team this thread's OpenMP pool has started while the thread was in its own mode
// (see FloatModeScope). The pool is freed before fork (pause_openmp_before_fork): 0 again.
thread_local int t_team_started = 0;

// The register with the flush bits wanted now.
uint64_t wanted(uint64_t reg) {
  return (reg & ~kFlushBits) | (flush_setting().load(std::memory_order_relaxed) ? kFlushBits : 0);
}

// Sets the flush bits wanted now on the calling thread and returns its register before.
uint64_t enter() {
  const uint64_t cur = read_register();
  const uint64_t next = wanted(cur);
  if (next != cur) write_register(next);
  return cur;
}

// Puts the whole register back, status flags raised meanwhile included: unchanged, as it was.
void leave(uint64_t saved) {
  if (read_register() != saved) write_register(saved);
}

// Why the pool is torn down in the parent, before fork, rather than repaired in the child:
// GNU libgomp keeps, per thread that starts parallel regions, a pool of worker threads docked on
// a barrier. fork() copies that pool's bookkeeping into the child but not its threads, so the
// child's first parallel region with more than one thread waits on the barrier forever (issue
// 17). libgomp has no call that forgets an inherited pool, and every call that releases one
// (omp_pause_resource_all included) waits for its threads, so nothing done in the child can
// help; running the child single-threaded would only hide the dead pool until the user sets a
// thread count again. OpenMP 5.0's omp_pause_resource_all, called in the parent just before
// fork() (in the thread that forks, the only one the child has), joins that pool's threads and
// frees it: the child starts with no pool and builds a fresh one on its first parallel region,
// with the parent's thread count; the parent builds a new one the same way (one thread start
// per worker, once per fork). Other threads' pools do not exist in the child and are untouched.
// It costs nothing per kernel call, and covers every caller of this libgomp in the process
// (the course kit's student kernels, compiled with -fopenmp, share it). LLVM's libomp (clang,
// and Intel's compilers) is different: it registers its own fork handlers that reinitialise the
// runtime in the child, and a hard pause from a prepare handler spins forever in the parent
// (seen with clang 14's libomp), so there the pause is left to libomp.
void pause_openmp_before_fork() {
#if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_LLVM_COMPILER) && \
    __GNUC__ >= 10
  if (!omp_in_parallel()) omp_pause_resource_all(omp_pause_hard);
#endif
  t_team_started = 0;
}

}  // namespace

bool flush_denormal() { return flush_setting().load(std::memory_order_relaxed); }
void set_flush_denormal(bool on) { flush_setting().store(on); }
bool flush_denormal_supported() { return kFlushBits != 0; }
uint64_t float_control_register() { return read_register(); }
uint64_t float_flush_bits() { return kFlushBits; }

FloatModeScope::FloatModeScope(int team) {
  const uint64_t cur = read_register();
  const bool changes = wanted(cur) != cur;
  // A new thread copies the register of the thread that starts it. OpenMP starts its workers in
  // the first parallel region that needs them; if that were a kernel's, they would be born in
  // the kernel's mode and "restore" to it (TeamFloatMode). Start them here first, in the
  // caller's mode: once per thread and team size, not per call.
  if (kFlushBits != 0 && changes && team > t_team_started && !omp_in_parallel()) {
#pragma omp parallel num_threads(team)
    {
      volatile int started = omp_get_thread_num();  // GCC drops an empty parallel region
      (void)started;
    }
    t_team_started = team;
  }
  saved_ = enter();
}
FloatModeScope::~FloatModeScope() { leave(saved_); }

TeamFloatMode team_float_mode;
TeamFloatMode::TeamFloatMode(const TeamFloatMode&) : copy_(true), saved_(enter()) {}
TeamFloatMode::~TeamFloatMode() {
  if (copy_) leave(saved_);
}

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(pause_openmp_before_fork, nullptr, nullptr); });
}

}  // namespace convforge::cpu
