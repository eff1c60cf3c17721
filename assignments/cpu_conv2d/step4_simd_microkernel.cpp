// convforge assignment cpu_conv2d/step4_simd_microkernel.cpp: Step 4: a SIMD micro-kernel.
//
// The GEMM of step 3 spends its time in the innermost loop. Write it as a micro-kernel: an
// MR x NR block of C (6 x 16 with AVX2: 6 rows x two 8-float registers = 12 accumulators) kept in
// registers over the whole K loop, each step one broadcast of A and two loads of B, 12 FMAs
// (_mm256_fmadd_ps). Pack B (the column matrix) into NR-wide panels so its loads are contiguous;
// handle the edges (M % MR, N % NR) with a scalar or masked path.
// Measure: GFLOP/s against step 3 and against the machine's peak (grader: % of peak).
// Worked solution: csrc/cpu/gemm/gemm_microkernel_avx2.cpp (and _avx512.cpp), used by
// csrc/cpu/conv/conv2d_implicit.cpp (algo="implicit").
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_conv2d/solutions/step4_simd_microkernel.cpp
// Grade:  convforge grade assignments/cpu_conv2d/step4_simd_microkernel.cpp --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <immintrin.h>

#include <vector>

constexpr int MR = 6, NR = 16;

// C[0:MR, 0:NR] (+)= Apanel (K x MR, packed) * Bpanel (K x NR, packed); ldc = C's row stride.
static void micro_kernel(int64_t K, const float* Apanel, const float* Bpanel, float* C, int64_t ldc,
                         bool accumulate) {
  // TODO: 12 __m256 accumulators; for k: b0 = load(B + k*NR), b1 = load(B + k*NR + 8);
  //       for i < MR: a = broadcast(A[k*MR + i]); acc[i][0] = fmadd(a, b0, acc[i][0]); ...
  //       then store (or add to) the 6 x 16 block of C.
  (void)K; (void)Apanel; (void)Bpanel; (void)C; (void)ldc; (void)accumulate;
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y) {
  // TODO: step 3's im2col, then pack weights into MR-row panels and the column matrix into
  //       NR-column panels, call micro_kernel per block, scalar edges, add the bias.
  (void)g; (void)x; (void)w; (void)bias; (void)y; (void)micro_kernel;
}
