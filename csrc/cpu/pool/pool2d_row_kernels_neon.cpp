// The NEON copy of the pooling row kernels (pool2d_row_kernels.h), for AArch64: stride 1 and
// 2 become plain and de-interleaving (ld2) q-register loads, the NaN-aware maximum a compare
// and a bit select per tap.
#include "cpu/pool/pool2d_row_kernels.h"

namespace convforge::cpu::pool_detail::neon {

void max_row(const PoolRow& r, float* y, int32_t* offset) { max_row_any(r, y, offset); }
void avg_row(const PoolRow& r, float divisor, float* y) { avg_row_any(r, divisor, y); }

}  // namespace convforge::cpu::pool_detail::neon
