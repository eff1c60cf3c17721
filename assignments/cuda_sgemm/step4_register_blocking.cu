// convforge assignment cuda_sgemm/step4_register_blocking.cu: Step 4: register blocking (2-D block tiling).
//
// A block of 256 threads computes a 128 x 128 tile of C over K tiles of 8; each thread keeps
// an 8 x 8 block of C in registers and, per k, loads 8 values of A and 8 of B from shared memory
// into registers (an outer product: 64 FMAs for 16 shared loads).
// Measure: GFLOP/s against step 3; registers per thread (nvcc -Xptxas -v) and occupancy.
// Worked solution: step 4 "register_blocked" in csrc/cuda/gemm_kernels.cu (~35 TFLOP/s, 53% of
// the H100's fp32 peak at 4096^3).
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_sgemm/solutions/step4_register_blocking.cu
// Grade:  convforge grade assignments/cuda_sgemm/step4_register_blocking.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: BM = BN = 128, BK = 8, TM = TN = 8: float acc[8][8] in registers; per K tile cooperative loads of As (BK x BM, transposed) and Bs (BK x BN); per k an outer product of 8 + 8 register values.
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(256);
  dim3 grid((unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
