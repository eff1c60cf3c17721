// The direct conv2d forward kernel, written once and compiled per ISA: conv2d_direct.cpp
// (portable), conv2d_direct_avx2.cpp and conv2d_direct_avx512.cpp include this file inside
// their own anonymous namespace after defining the register block:
//   CF_DIRECT_KB  output channels per block (accumulator rows)
//   CF_DIRECT_QB  output columns per block (one or two vectors wide)
// The compiler keeps the KB x QB accumulator block in vector registers across every
// (c, r, s) tap and vectorises the update along q. Good when C/groups*R*S is small (LeNet's
// 1->6, VGG's 3->64, depthwise), where im2col's GEMM would have a tiny inner dimension.
//
// Work items are (image, group, block of KB filters, output row p), p fastest; each thread
// keeps its packed copy of the current filter block, repacked only when the block changes.
// Do not include anywhere else: everything here must have internal linkage. The includer
// provides <omp.h>, conv2d_internal.h and gemm/gemm_blocked.h. No std:: templates here:
// their out-of-line copies are shared between translation units, and the linker could
// keep one compiled with AVX-512 for the portable build.

// One row of the register block: QB floats as a GCC vector, so that the block is plainly
// KB register variables (a float[KB][QB] array ends up on the stack).
typedef float DirectVec __attribute__((vector_size(CF_DIRECT_QB * sizeof(float))));

inline int64_t direct_min(int64_t a, int64_t b) { return a < b ? a : b; }

inline void direct_forward(const convforge::Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  constexpr int64_t KB = CF_DIRECT_KB, QB = CF_DIRECT_QB;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const int64_t HW = g.H * g.W, sw = g.stride_w;
  const int64_t kblocks = (Kg + KB - 1) / KB;
  const int64_t items = g.N * g.groups * kblocks * g.P;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  // Allocate before the region: an exception must not escape it.
  if (!threaded) thread_scratch(ScratchSlot::ConvPartial2, Cg * RS * KB);

#pragma omp parallel if (threaded)
  {
    float* wblk = thread_scratch(ScratchSlot::ConvPartial2, Cg * RS * KB);
    int64_t packed = -1;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p = item % g.P, t = item / g.P;
      const int64_t kb = t % kblocks, ng = t / kblocks;
      const int64_t grp = ng % g.groups, n = ng / g.groups;
      const int64_t k0 = grp * Kg + kb * KB, kn = direct_min(KB, (grp + 1) * Kg - k0);
      if (packed != grp * kblocks + kb) {
        // wblk[(c*RS + rs)*KB + i] = w[k0+i][c][rs], zero rows past the group's last filter.
        for (int64_t crs = 0; crs < Cg * RS; ++crs)
          for (int64_t i = 0; i < KB; ++i)
            wblk[crs * KB + i] = i < kn ? w[(k0 + i) * Cg * RS + crs] : 0.0f;
        packed = grp * kblocks + kb;
      }
      const float* xg = x + (n * g.C + grp * Cg) * HW;

      for (int64_t q0 = 0; q0 < g.Q; q0 += QB) {
        const int64_t qn = direct_min(QB, g.Q - q0);
        DirectVec acc[KB];
        for (int64_t i = 0; i < KB; ++i) acc[i] = DirectVec{};
        alignas(64) float xv[QB];

        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t r = 0; r < g.R; ++r) {
            const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
            if (ih < 0 || ih >= g.H) continue;  // padding rows add nothing
            const float* xr = xg + c * HW + ih * g.W;
            for (int64_t s = 0; s < g.S; ++s) {
              const int64_t iw0 = q0 * sw + s * g.dilation_w - g.pad_left;
              const float* src;
              if (sw == 1 && qn == QB && iw0 >= 0 && iw0 + QB <= g.W) {
                src = xr + iw0;  // interior block: read x in place
              } else {
                // edge, tail or strided block: gather a zero-padded vector first
                for (int64_t j = 0; j < QB; ++j) {
                  const int64_t iw = iw0 + j * sw;
                  xv[j] = (j < qn && iw >= 0 && iw < g.W) ? xr[iw] : 0.0f;
                }
                src = xv;
              }
              const float* wv = wblk + ((c * g.R + r) * g.S + s) * KB;
              DirectVec xq;
              __builtin_memcpy(&xq, src, sizeof xq);  // unaligned load
              for (int64_t i = 0; i < KB; ++i) acc[i] += wv[i] * xq;
            }
          }

        for (int64_t i = 0; i < kn; ++i) {
          float* yr = y + ((n * g.K + k0 + i) * g.P + p) * g.Q + q0;
          const float b = bias ? bias[k0 + i] : 0.0f;
          alignas(64) float row[QB];
          __builtin_memcpy(row, &acc[i], sizeof row);
          for (int64_t j = 0; j < qn; ++j) {
            const float v = row[j] + b;
            yr[j] = (relu && v < 0.0f) ? 0.0f : v;
          }
        }
      }
    }
  }
}
