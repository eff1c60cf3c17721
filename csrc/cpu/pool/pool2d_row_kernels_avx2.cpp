// The avx2 copy of the pooling row kernels (pool2d_row_kernels.h).
#include "cpu/pool/pool2d_row_kernels.h"

namespace convforge::cpu::pool_detail::avx2 {

void max_row(const PoolRow& r, float* y, int32_t* offset) { max_row_any(r, y, offset); }
void avg_row(const PoolRow& r, float divisor, float* y) { avg_row_any(r, divisor, y); }

}  // namespace convforge::cpu::pool_detail::avx2
