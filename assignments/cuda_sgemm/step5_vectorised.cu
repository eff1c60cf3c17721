// convforge assignment cuda_sgemm/step5_vectorised.cu: Step 5: vectorised (float4) loads.
//
// Step 4 with 16-byte accesses: global loads of A and B as float4 (where the address is
// 16-byte aligned: check lda/ldb % 4 and the pointer, else fall back to scalar loads), A stored
// transposed in shared memory so that the inner loop reads float4 from As and Bs too.
// Measure: GFLOP/s and instructions issued against step 4.
// Worked solution: the float4 paths of step 4 in csrc/cuda/gemm_kernels.cu.
//
// Standalone worked solution (open it after your own attempt): assignments/cuda_sgemm/solutions/step5_vectorised.cu
// Grade:  convforge grade assignments/cuda_sgemm/step5_vectorised.cu --op gemm
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

__global__ void sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  // TODO: step 4 with reinterpret_cast<const float4*> loads where aligned (scalar otherwise) and float4 shared-memory reads.
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  dim3 block(256);
  dim3 grid((unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128));
  sgemm_kernel<<<grid, block, 0, stream>>>((int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta,
                                           C, (int)ldc);
}
