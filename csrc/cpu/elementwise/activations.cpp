// relu, tanh and sigmoid: the loops of activation_kernels.h in the copy for the CPU's
// instruction set, split into chunks over threads when the array is large enough to pay
// for them.
#include <algorithm>

#include "cpu/cpu_features.h"
#include "cpu/elementwise/activation_kernels_isa.h"
#include "cpu/elementwise/elementwise.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu {
namespace {

namespace ad = activation_detail;
constexpr int64_t kSerialBelow = int64_t{1} << 16;  // elements; below this one thread is faster
constexpr int64_t kChunk = int64_t{1} << 14;       // elements per task: 64 KiB per input, in L2

using Unary = void (*)(int64_t, const float*, float*);
using Binary = void (*)(int64_t, const float*, const float*, float*);

// The copy of a loop for the instruction set in use (only the target architecture's are built).
template <class F>
F by_isa([[maybe_unused]] F avx512, [[maybe_unused]] F avx2, [[maybe_unused]] F neon, F portable) {
  switch (simd_level()) {
#if CONVFORGE_ARCH_X86
    case SimdLevel::AVX512: return avx512;
    case SimdLevel::AVX2: return avx2;
#endif
#if CONVFORGE_ARCH_ARM64
    case SimdLevel::NEON: return neon;
#endif
    default: return portable;
  }
}

void run(Unary f, int64_t n, const float* a, float* out) {
  if (n < kSerialBelow) return f(n, a, out);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk;
    f(std::min(kChunk, n - i), a + i, out + i);
  }
}

void run(Binary f, int64_t n, const float* a, const float* b, float* out) {
  if (n < kSerialBelow) return f(n, a, b, out);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk;
    f(std::min(kChunk, n - i), a + i, b + i, out + i);
  }
}

#if CONVFORGE_ARCH_X86
#define CONVFORGE_BY_ISA(fn) by_isa(ad::avx512::fn, ad::avx2::fn, ad::portable::fn, ad::portable::fn)
#elif CONVFORGE_ARCH_ARM64
#define CONVFORGE_BY_ISA(fn) by_isa(ad::portable::fn, ad::portable::fn, ad::neon::fn, ad::portable::fn)
#else
#define CONVFORGE_BY_ISA(fn) by_isa(ad::portable::fn, ad::portable::fn, ad::portable::fn, ad::portable::fn)
#endif

}  // namespace

void relu_forward(int64_t n, const float* x, float* y) { run(CONVFORGE_BY_ISA(relu_forward), n, x, y); }
void relu_backward(int64_t n, const float* dy, const float* x, float* dx) {
  run(CONVFORGE_BY_ISA(relu_backward), n, dy, x, dx);
}
void tanh_forward(int64_t n, const float* x, float* y) { run(CONVFORGE_BY_ISA(tanh_forward), n, x, y); }
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx) {
  run(CONVFORGE_BY_ISA(tanh_backward), n, dy, y, dx);
}
void sigmoid_forward(int64_t n, const float* x, float* y) {
  run(CONVFORGE_BY_ISA(sigmoid_forward), n, x, y);
}
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx) {
  run(CONVFORGE_BY_ISA(sigmoid_backward), n, dy, y, dx);
}

}  // namespace convforge::cpu
