// convforge assignment cpu_conv2d/step3_im2col_gemm.cpp: Step 3: im2col + GEMM.
//
// Turn the convolution into one matrix product per image (and group): the column matrix
// col[(c, r, s)][(p, q)] holds the input pixel each filter tap sees at each output position
// (0 in the padding); then y[n] (K x PQ) = w (K x CRS) * col (CRS x PQ) + bias. Write im2col,
// reuse your step-2 GEMM loop order (i, k, j) for the product.
// Measure: GFLOP/s and the memory the column matrix costs (CRS x PQ floats per image); try
// tiling PQ so the column tile stays in L2. Worked solution: csrc/cpu/conv/conv2d_im2col.cpp
// (algo="im2col"), whose GEMM is csrc/cpu/gemm/gemm_blocked.cpp.
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_conv2d/solutions/step3_im2col_gemm.cpp
// Grade:  convforge grade assignments/cpu_conv2d/step3_im2col_gemm.cpp --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <vector>

// col is (C/groups * R * S) x (P * Q), for image n and group grp.
static void im2col(const Conv2dGeometry* g, const float* x, int64_t n, int64_t grp, float* col) {
  // TODO: col[((c*R + r)*S + s)*P*Q + p*Q + q] = x[n][grp*C/groups + c][h][w] or 0 in the padding.
  (void)g; (void)x; (void)n; (void)grp; (void)col;
}

// C (M x N) = A (M x K) * B (K x N), row-major, all contiguous.
static void gemm(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  // TODO: loop order i, k, j (step 2 of the SGEMM ladder).
  (void)M; (void)N; (void)K; (void)A; (void)B; (void)C;
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y) {
  // TODO: for n, grp: im2col, then gemm of the group's filters (K/groups rows) with col into
  //       y[n][grp*K/groups ...], then add the bias.
  std::vector<float> col;  // size C/groups * R * S * P * Q
  (void)g; (void)x; (void)w; (void)bias; (void)y; (void)col; (void)im2col; (void)gemm;
}
