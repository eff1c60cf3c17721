// The interface of a student kernel: one .cpp (CPU) or .cu (CUDA) file that defines one or more
// of the extern "C" functions below, compiled and loaded at run time by
//
//     convforge.load_kernel("my_conv.cpp", op="conv2d")      ->  F.conv2d(..., algo="my_conv")
//     convforge grade my_conv.cpp --op conv2d                ->  correctness vs PyTorch, then timing
//
// Include this header first:  #include "convforge/student.h"   (load_kernel adds the -I flags).
//
// Geometry: the very structs our own kernels take (common/geometry.h), already validated, with
// the output size P x Q filled in. Letters as in cuDNN: N batch, C input channels, H x W input,
// K output channels, R x S filter, P x Q output. Layouts are contiguous row-major float32:
//     x  N x C x H x W        w  K x (C/groups) x R x S        y  N x K x P x Q
// Output element (n, k, p, q) reads input rows  h = p*stride_h - pad_top  + r*dilation_h  and
// columns  w = q*stride_w - pad_left + s*dilation_w  (zero outside the input), channels
// c = g*(C/groups) + c' of group g = k / (K/groups).
//
// pad_bottom and pad_right only fix the output size, which P x Q already is: a kernel that loops
// over p < P, q < Q and bounds-checks h, w against H, W needs no more.
//
// Rules the grader checks:
//   - write every output element (outputs start as NaN, so an element you skip is caught);
//   - never read an output before writing it (gemm with beta == 0 must ignore C's contents);
//   - use every parameter: each one below is exercised by at least one case whose answer is wrong
//     if it is ignored (tests/test_grade.py holds a kernel per parameter, broken to ignore it);
//   - do not keep pointers after returning; you may use OpenMP (the file is built with -fopenmp).
//
// On the CPU the pointers are host pointers. In a .cu file they are device pointers on the
// current device, the function is called from the host and must queue its kernels on `stream`
// (convforge's stream); it need not synchronise.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/geometry.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define CF_STUDENT_STREAM , cudaStream_t stream
#else
#define CF_STUDENT_STREAM
#endif

#define CF_STUDENT_API extern "C" __attribute__((visibility("default")))

using convforge::Conv2dGeometry;
using convforge::Pool2dGeometry;

// The Python side passes these structs through ctypes, field by field: keep the layout fixed.
static_assert(sizeof(Conv2dGeometry) == 18 * sizeof(int64_t), "Conv2dGeometry layout changed");
static_assert(offsetof(Conv2dGeometry, P) == 16 * sizeof(int64_t), "Conv2dGeometry layout changed");
static_assert(offsetof(Pool2dGeometry, ceil_mode) == 12 * sizeof(int64_t), "Pool2dGeometry layout changed");
static_assert(offsetof(Pool2dGeometry, P) == 13 * sizeof(int64_t), "Pool2dGeometry layout changed");

// ---- op "conv2d" -------------------------------------------------------------------------------
// Required: y = conv(x, w) + bias (bias may be NULL: then no bias).
CF_STUDENT_API void convforge_conv2d_forward(const Conv2dGeometry* g, const float* x, const float* w,
                                             const float* bias, float* y CF_STUDENT_STREAM);
// Optional (graded and used by nn.Conv2d's backward when present; otherwise ours is used):
// dx (N x C x H x W) = gradient of the loss with respect to x, given dy (N x K x P x Q).
CF_STUDENT_API void convforge_conv2d_backward_data(const Conv2dGeometry* g, const float* dy,
                                                   const float* w, float* dx CF_STUDENT_STREAM);
// dw (K x C/groups x R x S) and, when db is not NULL, db (K) = sum of dy over n, p, q.
CF_STUDENT_API void convforge_conv2d_backward_weight(const Conv2dGeometry* g, const float* dy,
                                                     const float* x, float* dw,
                                                     float* db CF_STUDENT_STREAM);

// ---- op "gemm" ---------------------------------------------------------------------------------
// C = alpha * A * B + beta * C, row-major: A is M x K (row stride lda >= K), B is K x N (ldb >= N),
// C is M x N (ldc >= N): element (i, j) of C is C[i * ldc + j]. The grader passes sub-matrix views
// of wider buffers, with lda, ldb and ldc all different and larger than the row lengths; the
// elements between rows are not yours (they must stay as they are). With beta == 0, C is
// write-only: its old contents (even NaN) are ignored; else C holds data that is read and scaled.
// No transposes: op(A) = A. convforge.functional.gemm(trans_a=..., trans_b=...) and nn.Linear
// (x @ W^T + b: C starts as the bias in every row, beta = 1; its backward dy @ W and dy^T @ x)
// hand your kernel transposed copies, so one GEMM serves F.gemm, F.linear and training.
CF_STUDENT_API void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                                   int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                                   int64_t ldc CF_STUDENT_STREAM);

// ---- op "max_pool2d" / "avg_pool2d" -------------------------------------------------------------
// Window (p, q) covers input rows h = p*stride_h - pad_h + r*dilation_h (r < R) and columns
// w = q*stride_w - pad_w + s*dilation_w (s < S); positions outside the input are skipped (max) or
// count as zeros (avg, see below). ceil_mode only fixes P, Q (already filled in) and, for avg, the
// divisor. x and y are N x C x H x W and N x C x P x Q; dilation is 1 for avg.
//
// max: indices (may be NULL: then write only y) get the flat position h*W + w of each maximum in
// its input plane; ties go to the first in row-major window order; NaN wins (as in PyTorch).
CF_STUDENT_API void convforge_max_pool2d_forward(const Pool2dGeometry* g, const float* x, float* y,
                                                 int64_t* indices CF_STUDENT_STREAM);
// Optional (graded and used by nn.MaxPool2d's backward when present; otherwise ours is used):
// dx (N x C x H x W) = for each input element, the sum of dy over the outputs whose index is it
// (windows overlap when stride < kernel); zero where none. Write every element of dx.
CF_STUDENT_API void convforge_max_pool2d_backward(const Pool2dGeometry* g, const float* dy,
                                                  const int64_t* indices, float* dx CF_STUDENT_STREAM);
// avg: the window sum divided by R*S when count_include_pad (padding counts, the part of a
// ceil_mode window past the padding does not), else by the number of input pixels in the window.
CF_STUDENT_API void convforge_avg_pool2d_forward(const Pool2dGeometry* g, int count_include_pad,
                                                 const float* x, float* y CF_STUDENT_STREAM);
// Optional (graded and used by nn.AvgPool2d's backward when present): dx (N x C x H x W) = for each
// input element, the sum over the windows that contain it of dy / (that window's divisor).
CF_STUDENT_API void convforge_avg_pool2d_backward(const Pool2dGeometry* g, int count_include_pad,
                                                  const float* dy, float* dx CF_STUDENT_STREAM);
