// The NEON copy of the activation loops (activation_kernels.h), for AArch64.
#include "cpu/elementwise/activation_kernels.h"
#include "cpu/elementwise/activation_kernels_isa.h"

namespace convforge::cpu::activation_detail::neon {

CF_ACTIVATION_ENTRY_POINTS

}  // namespace convforge::cpu::activation_detail::neon
