// The portable copy of the pooling row kernels (pool2d_row_kernels.h), for CPUs without AVX2.
#include "cpu/pool/pool2d_row_kernels.h"

namespace convforge::cpu::pool_detail::portable {

void max_row(const PoolRow& r, float* y, int32_t* offset) { max_row_any(r, y, offset); }
void avg_row(const PoolRow& r, float divisor, float* y) { avg_row_any(r, divisor, y); }

}  // namespace convforge::cpu::pool_detail::portable
