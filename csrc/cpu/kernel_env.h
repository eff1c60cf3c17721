// What every kernel call runs under: set by the bindings' KernelScope (csrc/bindings/
// cpu_module.cpp) for the calling thread, and by firstprivate(team_float_mode) on each parallel
// region of the kernels for the OpenMP team.
//
// - The floating-point mode. Subnormal operands make x86 cores take a microcode assist per
//   operation (25-80x slower GEMM and conv2d, issue 22), so by default subnormals are flushed to
//   zero (MXCSR FTZ and DAZ on x86-64, FPCR.FZ on AArch64) for the duration of the call, on the
//   calling thread and on every thread of its OpenMP team, and each thread's previous mode is
//   restored afterwards: the caller's floating-point environment is unchanged.
// - The OpenMP thread pool across fork() (issue 17): see install_fork_handlers.
#pragma once

#include <cstdint>

namespace convforge::cpu {

// Process-wide setting, read at each call's start. On by default; CONVFORGE_FLUSH_DENORMAL=0
// (or false/off/no) at load time turns it off, as does set_flush_denormal(false).
bool flush_denormal();
void set_flush_denormal(bool on);
// False where no control register is compiled in (neither x86-64 SSE nor AArch64): the setting
// is then accepted and has no effect (torch.set_flush_denormal returns False there too).
bool flush_denormal_supported();

// The calling thread's control register (MXCSR on x86-64, FPCR on AArch64; 0 elsewhere), and
// the bits this file sets in it. For tests and `convforge info`.
uint64_t float_control_register();
uint64_t float_flush_bits();

// Sets the flush mode chosen by flush_denormal() on the calling thread (the bindings' KernelScope
// holds one for each call, whose kernels use teams of at most `team` threads) and puts the
// thread's whole register back on destruction (status flags raised by the kernel included): the
// caller's environment is exactly as it was.
class FloatModeScope {
 public:
  explicit FloatModeScope(int team);
  ~FloatModeScope();
  FloatModeScope(const FloatModeScope&) = delete;
  FloatModeScope& operator=(const FloatModeScope&) = delete;

 private:
  uint64_t saved_ = 0;  // the thread's register before the call
};

// The same for the threads of an OpenMP team: every parallel region of the kernels lists
//     #pragma omp parallel ... firstprivate(team_float_mode)
// so that each thread of the team copy-constructs its own TeamFloatMode when the region starts
// (which sets the mode chosen by flush_denormal()) and destroys it when the region ends (which
// restores that thread's previous mode). On the calling thread, already set by FloatModeScope,
// it only reads the register. This costs one register read per thread and region, unlike an
// extra parallel region around each call, which would wake the workers even for kernels that
// run serially.
class TeamFloatMode {
 public:
  TeamFloatMode() = default;
  TeamFloatMode(const TeamFloatMode&);
  ~TeamFloatMode();
  TeamFloatMode& operator=(const TeamFloatMode&) = delete;

 private:
  bool copy_ = false;  // the original sets nothing and restores nothing
  uint64_t saved_ = 0;
};
extern TeamFloatMode team_float_mode;  // the original that each region's copies come from

// Registers (once per process) the pthread_atfork handler that keeps OpenMP usable in a child
// created by fork() (multiprocessing's "fork" start method, ProcessPoolExecutor, ...).
void install_fork_handlers();

}  // namespace convforge::cpu
