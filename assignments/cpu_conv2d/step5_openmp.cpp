// convforge assignment cpu_conv2d/step5_openmp.cpp: Step 5: OpenMP.
//
// Use every core: parallelise the outer loops of step 4 with OpenMP (#pragma omp parallel for)
// over independent work (images x groups x blocks of output channels, or blocks of output
// positions), each thread with its own column/packing buffers (no sharing, no false sharing of
// C rows). The file is compiled with -fopenmp; OMP_NUM_THREADS (or convforge's
// set_num_threads) sets the team size.
// Measure: speed-up against 1 thread (OMP_NUM_THREADS=1 convforge grade ...), and GFLOP/s per
// core; compare with our fastest variant and PyTorch in the grader's table.
// Worked solution: csrc/cpu/conv/conv2d_implicit.cpp and conv2d.cpp (algo="auto").
//
// Standalone worked solution (open it after your own attempt): assignments/cpu_conv2d/solutions/step5_openmp.cpp
// Grade:  convforge grade assignments/cpu_conv2d/step5_openmp.cpp --op conv2d
// Handed out, this file compiles and leaves the output unwritten, so the grader fails it
// (every output starts as NaN) until the TODOs are done.
#include "convforge/student.h"

#include <omp.h>

void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                              const float* bias, float* y) {
  // TODO: your step-4 convolution with #pragma omp parallel for over independent blocks;
  //       per-thread buffers (allocate inside the parallel region or index by omp_get_thread_num()).
  (void)g; (void)x; (void)w; (void)bias; (void)y;
}
