// convforge assignment cpu_sgemm/step3_cache_blocking.cpp: Step 3: cache blocking (the BLIS loops jc, pc, ic).
//
// Split the product into blocks that fit the caches: jc over NC columns of B (L3), pc over KC
// rows of the depth (a KC x NC block of B in L2/L3), ic over MC rows of A (an MC x KC block in
// L2). Inside, step 2's loops on the block. Put the constants in one place.
// Measure: GFLOP/s at 1024^3 and 2048^3 against step 2; sweep KC and MC.
// Worked solution: the five loops of csrc/cpu/gemm/gemm_blocked.cpp, constants in gemm_config.cpp.
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step3_cache_blocking.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step3_cache_blocking.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <algorithm>

constexpr int64_t NC = 4096, KC = 256, MC = 72;

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: scale C by beta once (or zero it when beta == 0); then
  //       for jc in [0, N) step NC: for pc in [0, K) step KC: for ic in [0, M) step MC:
  //         C[ic.., jc..] += alpha * A[ic.., pc..] * B[pc.., jc..]   (step 2's loops on the block)
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc;
}
