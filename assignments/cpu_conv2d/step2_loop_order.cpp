// convforge assignment cpu_conv2d/step2_loop_order.cpp: Step 2: loop order and blocking.
//
// Same arithmetic, better memory order. Initialise a whole output plane y[n][k] with the bias,
// then for c, r, s add w[k][c][r][s] * (a shifted row of x) to each output row: the innermost
// loop runs along q, contiguous in y and (for stride 1) in x, so the compiler vectorises it.
// Then block: keep a few output channels (say 4) per pass so each x row loaded feeds 4 planes.
// Measure: GFLOP/s against step 1 (expect several times faster), and with perf stat the drop in
// cache misses. Worked solution (register-blocked direct loops): csrc/cpu/conv/conv2d_direct_impl.h
// (algo="direct").
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_conv2d/solutions/step2_loop_order.cpp
// Grade:  convforge grade assignments/cpu_conv2d/step2_loop_order.cpp --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y) {
  // TODO 1: for each (n, k): fill the P x Q plane of y with bias[k] (or 0).
  // TODO 2: for c, r, s: for p: the valid q range for this tap (no branch inside the q loop),
  //         then y_row[q] += w_krs * x_row[q*stride_w + s*dilation_w - pad_left].
  // TODO 3: block KB output channels per pass (KB accumulating rows), measure KB = 1, 2, 4, 8.
  (void)g; (void)x; (void)w; (void)bias; (void)y;
}
