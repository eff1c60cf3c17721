// convforge assignment cpu_sgemm/step6_openmp.cpp: Step 6: OpenMP.
//
// Parallelise over the ic loop (each thread its own packed A block, B block shared after a
// barrier) and, when M is small, over jr. Measure the speed-up with OMP_NUM_THREADS=1, 2, ...
// and compare with ours and PyTorch in the grader's table.
// Worked solution: csrc/cpu/gemm/gemm_blocked.cpp (OpenMP over ic and columns).
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_sgemm/solutions/step6_openmp.cpp
// Grade:  convforge grade assignments/cpu_sgemm/step6_openmp.cpp --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <immintrin.h>
#include <omp.h>

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // TODO: step 5 with #pragma omp parallel around the pc loop: pack B together (omp for),
  //       then #pragma omp for over ic blocks, each thread packing its own A block.
  (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc;
}
