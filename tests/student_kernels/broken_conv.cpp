// A conv2d with a syntax error on line 8 (tests/test_grade.py).
#include "convforge/student.h"

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w, const float* bias,
                              float* y) {
  for (int64_t i = 0; i < g->y_size(); ++i) {
    (void)x; (void)w; (void)bias;
    y[i] = 0.f +* ;
  }
}
