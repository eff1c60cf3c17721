// convforge assignment cpu_conv2d/step1_naive.cpp: Step 1: the seven loops.
//
// One output at a time: for n, k, p, q sum x * w over c, r, s (skip taps that fall in the
// padding), add the bias, write y. Mind groups: output channel k reads input channels
// g*(C/groups) .. of its group g = k / (K/groups). Correctness first: this is the file you
// compare every later step with.
// Measure: GFLOP/s on the grader's timing shape; expect about what our reference reaches.
// Worked solution: csrc/cpu/conv/conv2d_reference.cpp (algo="reference").
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_conv2d/solutions/step1_naive.cpp
// Grade:  convforge grade assignments/cpu_conv2d/step1_naive.cpp --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

// Index helpers so that the loops read like the formula.
static inline int64_t x_at(const Conv2dGeometry* g, int64_t n, int64_t c, int64_t h, int64_t w) {
  return ((n * g->C + c) * g->H + h) * g->W + w;
}

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y) {
  // TODO: for n, k, p, q: acc = bias ? bias[k] : 0; for c, r, s: h = p*stride_h - pad_top +
  //       r*dilation_h, w = q*stride_w - pad_left + s*dilation_w; if inside, acc += x*w;
  //       then y[((n*K + k)*P + p)*Q + q] = acc.
  (void)g; (void)x; (void)w; (void)bias; (void)y; (void)x_at;
}
