// Winograd F(m x m, 3x3), NEON build of conv2d_winograd_impl.h (the transforms vectorised for
// this ISA; the GEMMs dispatch on their own).
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "cpu/conv/conv2d_internal.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/kernel_env.h"

namespace convforge::cpu::conv_detail {
namespace {
#include "cpu/conv/conv2d_winograd_impl.h"
}  // namespace

CF_WINOGRAD_ENTRY_POINTS(neon)

}  // namespace convforge::cpu::conv_detail
