// convforge assignment cpu_sgemm/step4_packing.cpp: Step 4: packing.
//
// Copy each KC x NC block of B into NR-wide column panels and each MC x KC block of A into
// MR-tall row panels, so that the innermost loops read both with unit stride from contiguous,
// aligned memory (and edges are zero-padded once, not tested in the inner loop). Add the two
// inner loops jr (over NR panels) and ir (over MR panels) around a plain C++ MR x NR kernel.
// Measure: GFLOP/s against step 3. Worked solution: csrc/cpu/gemm/gemm_pack.cpp.
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step4_packing.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step4_packing.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <vector>

constexpr int64_t NC = 4096, KC = 256, MC = 72, MR = 6, NR = 16;

// Apack: ceil(mc/MR) panels of KC x MR (panel-major, zero-padded rows).
static void pack_a(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Apack) {
  (void)mc; (void)kc; (void)A; (void)lda; (void)Apack;  // TODO
}
// Bpack: ceil(nc/NR) panels of KC x NR (zero-padded columns).
static void pack_b(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* Bpack) {
  (void)kc; (void)nc; (void)B; (void)ldb; (void)Bpack;  // TODO
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: step 3's loops with pack_a/pack_b, then jr over NR panels and ir over MR panels
  //       around an MR x NR block kernel in plain C++ (write back only the valid part at edges).
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc; (void)pack_a; (void)pack_b;
}
