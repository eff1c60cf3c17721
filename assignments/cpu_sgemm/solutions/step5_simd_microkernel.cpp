// Worked solution, cpu_sgemm step 5: the SIMD micro-kernel. Step 4 with the MR x NR = 6 x 16
// block kernel in AVX2 + FMA intrinsics: 12 __m256 accumulators; each k step loads two vectors
// of the B panel, broadcasts six values of the A panel and issues twelve independent FMAs (two FMA
// units, ~4-5 cycles latency: 12 chains keep both busy). Compiled with the loader's ISA flags
// (-mavx2 -mfma where the CPU has them, never -march=native); without AVX2 the plain kernel runs.
// Grade:  convforge grade assignments/cpu_sgemm/solutions/step5_simd_microkernel.cpp --op gemm
#include "convforge/student.h"

#include <algorithm>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

constexpr int64_t NC = 4096, KC = 256, MC = 72, MR = 6, NR = 16;

// Apack: ceil(mc/MR) panels of KC x MR, panel-major, rows past mc zero.
static void pack_a(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Apack) {
  for (int64_t ip = 0; ip < mc; ip += MR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < MR; ++r) *Apack++ = ip + r < mc ? A[(ip + r) * lda + k] : 0.f;
}

// Bpack: ceil(nc/NR) panels of KC x NR, columns past nc zero.
static void pack_b(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* Bpack) {
  for (int64_t jp = 0; jp < nc; jp += NR)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t c = 0; c < NR; ++c) *Bpack++ = jp + c < nc ? B[k * ldb + jp + c] : 0.f;
}

// C[0:m, 0:n] += alpha * Apanel * Bpanel (m <= MR, n <= NR: only the valid part is written).
static void block_kernel(int64_t kc, float alpha, const float* Ap, const float* Bp, float* C, int64_t ldc,
                         int64_t m, int64_t n) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 c[MR][2];
  for (int64_t i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Bp + k * NR), b1 = _mm256_loadu_ps(Bp + k * NR + 8);
    for (int64_t i = 0; i < MR; ++i) {  // unrolled by the compiler: MR is a constant
      const __m256 a = _mm256_broadcast_ss(Ap + k * MR + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (m == MR && n == NR) {  // a full block: straight into C
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        float* dst = C + i * ldc + 8 * h;
        _mm256_storeu_ps(dst, _mm256_fmadd_ps(va, c[i][h], _mm256_loadu_ps(dst)));
      }
    return;
  }
  alignas(32) float acc[MR][NR];  // an edge block: through a buffer, the valid part only
  for (int64_t i = 0; i < MR; ++i) {
    _mm256_store_ps(acc[i], c[i][0]);
    _mm256_store_ps(acc[i] + 8, c[i][1]);
  }
#else
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t i = 0; i < MR; ++i) {
      const float a = Ap[k * MR + i];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a * Bp[k * NR + j];
    }
#endif
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) C[i * ldc + j] += alpha * acc[i][j];
}

void convforge_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)  // beta once; the blocks then accumulate
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
  std::vector<float> Apack(((MC + MR - 1) / MR) * MR * KC), Bpack(((std::min(NC, N) + NR - 1) / NR) * NR * KC);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      pack_b(kc, nc, B + pc * ldb + jc, ldb, Bpack.data());
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        pack_a(mc, kc, A + ic * lda + pc, lda, Apack.data());
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR)
            block_kernel(kc, alpha, Apack.data() + ir * kc, Bpack.data() + jr * kc, C + (ic + ir) * ldc + jc + jr,
                         ldc, std::min(MR, mc - ir), std::min(NR, nc - jr));
      }
    }
  }
}
