// The portable (baseline x86-64, for CPUs without AVX2) copy of the activation loops (activation_kernels.h).
#include "cpu/elementwise/activation_kernels.h"
#include "cpu/elementwise/activation_kernels_isa.h"

namespace convforge::cpu::activation_detail::portable {

CF_ACTIVATION_ENTRY_POINTS

}  // namespace convforge::cpu::activation_detail::portable
