// convforge assignment cpu_sgemm/step5_simd_microkernel.cpp: Step 5: the SIMD micro-kernel.
//
// Replace the plain MR x NR block kernel by intrinsics: 6 x 16 with AVX2+FMA is 12 __m256
// accumulators; each k step: two loads of the B panel, six broadcasts of A, twelve FMAs. This
// is where the time goes, so this is where peak is won (two FMA units: keep >= 10 independent
// accumulators in flight). AVX-512: 14 x 32 with 28 __m512 accumulators.
// Measure: % of peak in the grader; compare with ours ("blocked").
// Worked solution: csrc/cpu/gemm/gemm_microkernel_avx2.cpp, gemm_microkernel_avx512.cpp.
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step5_simd_microkernel.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step5_simd_microkernel.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <immintrin.h>

constexpr int64_t NC = 4096, KC = 256, MC = 72, MR = 6, NR = 16;

// C[0:MR, 0:NR] = alpha * Apanel * Bpanel + beta * C  (beta == 0: C not read).
static void micro_kernel(int64_t kc, float alpha, const float* Apanel, const float* Bpanel, float beta,
                         float* C, int64_t ldc) {
  // TODO: __m256 c[MR][2]; for k: b0, b1 = _mm256_loadu_ps(Bpanel + k*NR (+8));
  //       for i: a = _mm256_broadcast_ss(Apanel + k*MR + i); c[i][j] = _mm256_fmadd_ps(a, bj, c[i][j]).
  (void)kc; (void)alpha; (void)Apanel; (void)Bpanel; (void)beta; (void)C; (void)ldc;
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: step 4 with micro_kernel for full blocks (edges through a small buffer).
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc; (void)micro_kernel;
}
