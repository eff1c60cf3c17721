// The direct conv2d forward kernel, written once and compiled per ISA: conv2d_direct.cpp
// (portable), conv2d_direct_avx2.cpp, conv2d_direct_avx512.cpp and conv2d_direct_neon.cpp
// include this file inside their own anonymous namespace after defining the register block:
//   CF_DIRECT_KB  output channels per block (accumulator rows)
//   CF_DIRECT_QB  output columns per block (one or two vectors wide)
// The compiler keeps the KB x QB accumulator block in vector registers across every
// (c, r, s) tap and vectorises the update along q. Good when C/groups*R*S is small (LeNet's
// 1->6, VGG's 3->64, depthwise), where im2col's GEMM would have a tiny inner dimension.
//
// Work items are (image, group, block of KB filters, output row p), p fastest; each thread
// keeps its packed copy of the current filter block, repacked only when the block changes.
// Do not include anywhere else: everything here must have internal linkage. The includer
// provides <omp.h>, conv2d_internal.h, gemm/gemm_blocked.h and kernel_env.h. No std:: templates here:
// their out-of-line copies are shared between translation units, and the linker could
// keep one compiled with AVX-512 for the portable build.

// One row of the register block: QB floats as a GCC vector, so that the block is plainly
// KB register variables (a float[KB][QB] array ends up on the stack).
typedef float DirectVec __attribute__((vector_size(CF_DIRECT_QB * sizeof(float))));

inline int64_t direct_min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t direct_max(int64_t a, int64_t b) { return a > b ? a : b; }

// KB filters x QW vectors of CF_DIRECT_QB columns (QB columns in all).
template <int64_t KB, int64_t QW>
inline void direct_forward_kb(const convforge::Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias, float* y, bool relu) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  constexpr int64_t QV = CF_DIRECT_QB, QB = QW * QV;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S;
  const int64_t HW = g.H * g.W, sw = g.stride_w;
  const int64_t kblocks = (Kg + KB - 1) / KB;
  const int64_t items = g.N * g.groups * kblocks * g.P;
  const int64_t qblocks = (g.Q + QB - 1) / QB;
  // Rows are read in place when no column padding is needed: a tail block's lanes past Q then
  // read the next row (discarded), as long as they stay inside x. Otherwise each thread keeps a
  // zero-padded copy of its current image-group (rows wide enough for every block), so that
  // every block is one vector load.
  const bool in_place = sw == 1 && g.pad_left == 0 && g.pad_right == 0;
  const float* x_end = x + g.x_size();
  const int64_t Hp = g.H + g.pad_top + g.pad_bottom;
  const int64_t Wpp = direct_max(g.W + g.pad_left + g.pad_right,
                                 (qblocks * QB - 1) * sw + (g.S - 1) * g.dilation_w + 1) + QB;
  const int64_t img = in_place ? 1 : Cg * Hp * Wpp;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  // Allocate before the region: an exception must not escape it.
  if (!threaded) {
    thread_scratch(ScratchSlot::ConvPartial2, Cg * RS * KB);
    thread_scratch(ScratchSlot::ConvCol, img);
  }

#pragma omp parallel if (threaded) firstprivate(team_float_mode)
  {
    float* wblk = thread_scratch(ScratchSlot::ConvPartial2, Cg * RS * KB);
    float* xp = thread_scratch(ScratchSlot::ConvCol, img);
    int64_t packed = -1, padded = -1;
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
      if (!in_place && padded != ng) {
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t h = 0; h < Hp; ++h) {
            float* d = xp + (c * Hp + h) * Wpp;
            const int64_t ih = h - g.pad_top;
            if (ih < 0 || ih >= g.H) continue;  // never read: the row loop skips padding rows
            for (int64_t i = 0; i < g.pad_left; ++i) d[i] = 0.0f;
            __builtin_memcpy(d + g.pad_left, xg + (c * g.H + ih) * g.W, sizeof(float) * g.W);
            for (int64_t i = g.pad_left + g.W; i < Wpp; ++i) d[i] = 0.0f;
          }
        padded = ng;
      }

      for (int64_t q0 = 0; q0 < g.Q; q0 += QB) {
        const int64_t qn = direct_min(QB, g.Q - q0);
        DirectVec acc[KB][QW];
        for (int64_t i = 0; i < KB; ++i)
          for (int64_t v = 0; v < QW; ++v) acc[i][v] = DirectVec{};
        alignas(64) float xv[QB];

        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t r = 0; r < g.R; ++r) {
            const int64_t ih = p * g.stride_h - g.pad_top + r * g.dilation_h;
            if (ih < 0 || ih >= g.H) continue;  // padding rows add nothing
            const float* xr = in_place ? xg + c * HW + ih * g.W
                                       : xp + (c * Hp + ih + g.pad_top) * Wpp;
            const float* wv = wblk + (c * g.R + r) * g.S * KB;
            for (int64_t s = 0; s < g.S; ++s, wv += KB) {
              const int64_t iw0 = q0 * sw + s * g.dilation_w;
              const float* src;
              if (sw == 1 && (!in_place || xr + iw0 + QB <= x_end)) {
                src = xr + iw0;  // in place (lanes past qn are discarded)
              } else {
                for (int64_t j = 0; j < QB; ++j)
                  xv[j] = j < qn ? xr[iw0 + j * sw] : 0.0f;
                src = xv;
              }
              DirectVec xq[QW];  // unaligned loads, one per vector
              for (int64_t v = 0; v < QW; ++v) __builtin_memcpy(&xq[v], src + v * QV, sizeof xq[v]);
              for (int64_t i = 0; i < KB; ++i)
                for (int64_t v = 0; v < QW; ++v) acc[i][v] += wv[i] * xq[v];
            }
          }

        for (int64_t i = 0; i < kn; ++i) {
          float* yr = y + ((n * g.K + k0 + i) * g.P + p) * g.Q + q0;
          const float b = bias ? bias[k0 + i] : 0.0f;
          alignas(64) float row[QB];
          for (int64_t v = 0; v < QW; ++v) __builtin_memcpy(row + v * QV, &acc[i][v], sizeof acc[i][v]);
          for (int64_t j = 0; j < qn; ++j) {
            const float v = row[j] + b;
            yr[j] = (relu && v < 0.0f) ? 0.0f : v;
          }
        }
      }
    }
  }
}

// The filter block is a compile-time size: CF_DIRECT_KB, or fewer when the group has fewer
// filters, so that LeNet's 6 filters (and a depthwise layer's 1) fill the block.
// Where CF_DIRECT_QW2 is defined (AVX2: 16 registers), a block of at most 6 filters takes two
// column vectors when rows are wider than one (12 accumulators; each filter tap's broadcast
// then serves 16 columns: LeNet c1 and the transposed c3 of its input gradient).
inline void direct_forward(const convforge::Conv2dGeometry& g, const float* x, const float* w,
                           const float* bias, float* y, bool relu) {
  const int64_t Kg = g.K_per_group();
#ifdef CF_DIRECT_QW2
  if (g.Q > CF_DIRECT_QB && Kg <= 6) {
    if (Kg == 1) return direct_forward_kb<1, 2>(g, x, w, bias, y, relu);
    if (Kg <= 4) return direct_forward_kb<4, 2>(g, x, w, bias, y, relu);
    return direct_forward_kb<6, 2>(g, x, w, bias, y, relu);
  }
#endif
  if (Kg == 1) return direct_forward_kb<1, 1>(g, x, w, bias, y, relu);
  if (Kg <= 4 || CF_DIRECT_KB < 6) return direct_forward_kb<4, 1>(g, x, w, bias, y, relu);
  if (Kg % 6 == 0 && Kg % CF_DIRECT_KB != 0) return direct_forward_kb<6, 1>(g, x, w, bias, y, relu);
  return direct_forward_kb<CF_DIRECT_KB, 1>(g, x, w, bias, y, relu);
}

// ---- direct_k: vectorised along the output channels ---------------------------------------
// The other orientation, for layers with a few input taps and >= KV filters per group
// (LeNet's 6->16): a vector holds KV filters of one tap, and the register block is NA
// consecutive output positions (flat p*Q + q, so that short rows pack into one block), each
// one broadcast from x. Each thread keeps a zero-padded copy of the current image-group, so
// that every tap of every position is one load at a fixed offset: no edge tests inside.
typedef float KLaneVec __attribute__((vector_size(CF_DIRECT_KV * sizeof(float))));

// KW vectors of filters per block (KB = KW * KV filters) x NA positions: KW = 2 where the ISA
// has 16 registers (AVX2: 16 filters x 6 positions, 12 accumulators; each broadcast of x then
// serves 16 filters instead of 8).
template <int64_t KW, int64_t NA>
inline void direct_forward_klanes_kw(const convforge::Conv2dGeometry& g, const float* x,
                                     const float* w, const float* bias, float* y, bool relu) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  constexpr int64_t KV = CF_DIRECT_KV, KB = KW * KV;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S, CRS = Cg * RS;
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
  const int64_t Hp = g.H + g.pad_top + g.pad_bottom, Wp = g.W + g.pad_left + g.pad_right;
  const int64_t img = Cg * Hp * Wp;
  const int64_t kblocks = (Kg + KB - 1) / KB, pblocks = (PQ + NA - 1) / NA;
  const int64_t items = g.N * g.groups * kblocks * pblocks;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  if (!threaded) {  // allocate before the region: an exception must not escape it
    thread_scratch(ScratchSlot::ConvPartial2, CRS * KB);
    thread_scratch(ScratchSlot::ConvCol, img);
  }

#pragma omp parallel if (threaded) firstprivate(team_float_mode)
  {
    float* wblk = thread_scratch(ScratchSlot::ConvPartial2, CRS * KB);
    float* xp = thread_scratch(ScratchSlot::ConvCol, img);
    int64_t packed_w = -1, packed_x = -1;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t pb = item % pblocks, t = item / pblocks;
      const int64_t kb = t % kblocks, ng = t / kblocks;
      const int64_t grp = ng % g.groups, n = ng / g.groups;
      const int64_t k0 = grp * Kg + kb * KB, kn = direct_min(KB, (grp + 1) * Kg - k0);
      if (packed_w != grp * kblocks + kb) {
        // wblk[crs*KB + i] = w[k0+i][crs], zero past the group's last filter.
        for (int64_t crs = 0; crs < CRS; ++crs)
          for (int64_t i = 0; i < KB; ++i)
            wblk[crs * KB + i] = i < kn ? w[(k0 + i) * CRS + crs] : 0.0f;
        packed_w = grp * kblocks + kb;
      }
      if (packed_x != ng) {
        const float* xg = x + (n * g.C + grp * Cg) * HW;
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t h = 0; h < Hp; ++h) {
            float* d = xp + (c * Hp + h) * Wp;
            const int64_t ih = h - g.pad_top;
            if (ih < 0 || ih >= g.H) {
              for (int64_t i = 0; i < Wp; ++i) d[i] = 0.0f;
              continue;
            }
            for (int64_t i = 0; i < g.pad_left; ++i) d[i] = 0.0f;
            __builtin_memcpy(d + g.pad_left, xg + (c * g.H + ih) * g.W, sizeof(float) * g.W);
            for (int64_t i = g.pad_left + g.W; i < Wp; ++i) d[i] = 0.0f;
          }
        packed_x = ng;
      }
      // Offsets in xp of the block's positions (past P*Q: the last one again, discarded).
      const int64_t t0 = pb * NA, tn = direct_min(NA, PQ - t0);
      int64_t pos[NA];
      for (int64_t j = 0; j < NA; ++j) {
        const int64_t tj = t0 + direct_min(j, tn - 1), p = tj / g.Q, q = tj % g.Q;
        pos[j] = p * g.stride_h * Wp + q * g.stride_w;
      }
      KLaneVec acc[NA][KW];
#pragma GCC unroll 32
      for (int64_t j = 0; j < NA; ++j)
#pragma GCC unroll 2
        for (int64_t v = 0; v < KW; ++v) acc[j][v] = KLaneVec{};
      const float* wv = wblk;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t r = 0; r < g.R; ++r) {
          const float* xr = xp + (c * Hp + r * g.dilation_h) * Wp;
          for (int64_t s = 0; s < g.S; ++s, wv += KB) {
            KLaneVec wq[KW];  // one load per vector (a 64-byte copy went through the stack)
#pragma GCC unroll 2
            for (int64_t v = 0; v < KW; ++v) __builtin_memcpy(&wq[v], wv + v * KV, sizeof wq[v]);
            const float* xs = xr + s * g.dilation_w;
#pragma GCC unroll 32
            for (int64_t j = 0; j < NA; ++j) {
              const float xj = xs[pos[j]];
#pragma GCC unroll 2
              for (int64_t v = 0; v < KW; ++v) acc[j][v] += xj * wq[v];
            }
          }
        }
      // acc[j][.][i] is filter k0+i at position t0+j: transpose into the rows of y.
      alignas(64) float tile[NA][KB];
      __builtin_memcpy(tile, acc, sizeof tile);
      for (int64_t i = 0; i < kn; ++i) {
        float* yr = y + (n * g.K + k0 + i) * PQ + t0;
        const float b = bias ? bias[k0 + i] : 0.0f;
        for (int64_t j = 0; j < tn; ++j) {
          const float v = tile[j][i] + b;
          yr[j] = (relu && v < 0.0f) ? 0.0f : v;
        }
      }
    }
  }
}

inline void direct_forward_klanes(const convforge::Conv2dGeometry& g, const float* x,
                                  const float* w, const float* bias, float* y, bool relu) {
#ifdef CF_DIRECT_NA2
  if (g.K_per_group() > CF_DIRECT_KV)
    return direct_forward_klanes_kw<2, CF_DIRECT_NA2>(g, x, w, bias, y, relu);
#endif
  direct_forward_klanes_kw<1, CF_DIRECT_NA>(g, x, w, bias, y, relu);
}

// ---- direct weight gradient (stride 1) ----------------------------------------------------
// dW[k][c][r][s] = sum over n, p, q of dy[n][k][p][q] * xpad[n][c][p + r*dh][q + s*dw].
// With the input zero-padded to Hp x Wp and dy's rows widened to Wp (zeros past Q), output
// position (p, q) is the flat index t = p*Wp + q and tap (c, r, s) reads xpad at t + off(c,r,s):
// every product is one vector FMA over BV consecutive t. A register block of BKB filters x
// BTB taps (consecutive in c,r,s order) sums over all t of a chunk of images; the threads
// share out the (group, filter block, tap block) items, so no partial dW is needed. For small
// layers (LeNet) where packing col^T for the GEMM costs more than the products.
typedef float BwVec __attribute__((vector_size(CF_BW_V * sizeof(float))));
typedef BwVec BwBlock[CF_BW_KB][CF_BW_TB];

// One step of the weight gradient's register block: KB dy vectors (at dyp + ko[i]) times TB x
// vectors (at xp + to[j]), one vector FMA each.
inline void bw_step(BwBlock& acc, const float* dyp, const int64_t* ko, const float* xp,
                    const int64_t* to) {
  BwVec dv[CF_BW_KB], xv[CF_BW_TB];
#pragma GCC unroll 8
  for (int64_t i = 0; i < CF_BW_KB; ++i) __builtin_memcpy(&dv[i], dyp + ko[i], sizeof(BwVec));
#pragma GCC unroll 8
  for (int64_t j = 0; j < CF_BW_TB; ++j) __builtin_memcpy(&xv[j], xp + to[j], sizeof(BwVec));
#pragma GCC unroll 8
  for (int64_t i = 0; i < CF_BW_KB; ++i)
#pragma GCC unroll 8
    for (int64_t j = 0; j < CF_BW_TB; ++j) acc[i][j] += dv[i] * xv[j];
}

// Adds the lanes of acc[i][j] into dw[i * ld + j] for i < kn, j < tn.
inline void bw_sum(const BwBlock& acc, int64_t kn, int64_t tn, float* dw, int64_t ld) {
  for (int64_t i = 0; i < kn; ++i)
    for (int64_t j = 0; j < tn; ++j) {
      alignas(64) float lanes[CF_BW_V];
      __builtin_memcpy(lanes, &acc[i][j], sizeof lanes);
      float sum = 0.0f;
      for (int64_t l = 0; l < CF_BW_V; ++l) sum += lanes[l];
      dw[i * ld + j] += sum;
    }
}

inline void direct_backward_weight(const convforge::Conv2dGeometry& g, const float* dy,
                                   const float* x, float* dw) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  constexpr int64_t V = CF_BW_V, KB = CF_BW_KB, TB = CF_BW_TB;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S, CRS = Cg * RS;
  const int64_t Hp = g.H + g.pad_top + g.pad_bottom, Wp = g.W + g.pad_left + g.pad_right;
  const int64_t T = g.P * Wp, Tv = (T + V - 1) / V * V;  // flat positions, rounded to vectors
  const int64_t ximg = g.C * Hp * Wp + (g.S - 1) * g.dilation_w + V;  // + slack read by tails
  const int64_t dyimg = g.K * Tv;
  // Images per chunk: the padded copies of a chunk stay within ~4 MiB.
  const int64_t chunk = direct_min(g.N, (int64_t(1) << 20) / (ximg + dyimg) + 1);
  float* xp = thread_scratch(ScratchSlot::ConvCol, chunk * ximg);
  float* dyp = thread_scratch(ScratchSlot::ConvPartial, chunk * dyimg);
  int64_t* off = reinterpret_cast<int64_t*>(thread_scratch(ScratchSlot::ConvPartial2, 2 * CRS + 2));
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        off[(c * g.R + r) * g.S + s] = c * Hp * Wp + r * g.dilation_h * Wp + s * g.dilation_w;
  const int64_t kblocks = (Kg + KB - 1) / KB, tblocks = (CRS + TB - 1) / TB;
  const int64_t items = g.groups * kblocks * tblocks;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  for (int64_t i = 0; i < g.w_size(); ++i) dw[i] = 0.0f;
  // Work units: ranges of positions. Large images are cut into blocks of 16K positions, so
  // that a block's dy rows and x windows come from L2/L3 while the items sweep the filters
  // (item order: filter block fastest); small images (LeNet) are taken several per unit. Each
  // unit ends with horizontal sums per item: smaller blocks made those a visible cost (VGG
  // conv3_2 with 512 positions: 50 ms, whole images: 37 ms, 16K: 37 ms).
  const int64_t tblk = int64_t(16384) / V * V;
  // Item order within a group: with fewer input than output channels (VGG conv1_1 3->64,
  // LeNet) the x block of a unit is small, so the taps go fastest and a filter block's dy
  // rows stay in L2; otherwise the filter blocks go fastest and the x windows stay.
  const bool taps_fastest = Cg < Kg;
  const int64_t tper = Tv >= tblk ? tblk : Tv;                   // positions per unit, one image
  const int64_t nper = Tv >= tblk ? 1 : direct_max(1, tblk / Tv);  // images per unit
  const int64_t tunits = (Tv + tper - 1) / tper;

  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t nn = direct_min(chunk, g.N - n0);
#pragma omp parallel if (threaded) firstprivate(team_float_mode)
    {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nn; ++i) {
        float* xi = xp + i * ximg;
        for (int64_t j = 0; j < ximg; ++j) xi[j] = 0.0f;
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t h = 0; h < g.H; ++h)
            __builtin_memcpy(xi + (c * Hp + h + g.pad_top) * Wp + g.pad_left,
                             x + (((n0 + i) * g.C + c) * g.H + h) * g.W, sizeof(float) * g.W);
        float* di = dyp + i * dyimg;
        for (int64_t k = 0; k < g.K; ++k) {
          float* d = di + k * Tv;
          for (int64_t j = 0; j < Tv; ++j) d[j] = 0.0f;
          for (int64_t p = 0; p < g.P; ++p)
            __builtin_memcpy(d + p * Wp, dy + (((n0 + i) * g.K + k) * g.P + p) * g.Q,
                             sizeof(float) * g.Q);
        }
      }
      // (barrier) Each unit's items write the same dw entries as the previous unit's, and the
      // static schedule gives a thread the same items every time: no barrier between units.
      for (int64_t u0 = 0; u0 < nn; u0 += nper)
        for (int64_t tu = 0; tu < tunits; ++tu) {
          const int64_t ta = tu * tper, tz = direct_min(Tv, ta + tper);
          const int64_t ne = direct_min(nn, u0 + nper);
#pragma omp for schedule(static) nowait
          for (int64_t item = 0; item < items; ++item) {
            const int64_t kt = item % (kblocks * tblocks), grp = item / (kblocks * tblocks);
            const int64_t kb = taps_fastest ? kt / tblocks : kt % kblocks;
            const int64_t tb = taps_fastest ? kt % tblocks : kt / kblocks;
            const int64_t k0 = kb * KB, kn = direct_min(KB, Kg - k0);
            const int64_t c0 = tb * TB, tn = direct_min(TB, CRS - c0);
            // Taps past the block's end repeat the last one; so do filters past Kg.
            int64_t to[TB], ko[KB];
            for (int64_t j = 0; j < TB; ++j) to[j] = off[c0 + direct_min(j, tn - 1)];
            for (int64_t i = 0; i < KB; ++i) ko[i] = (grp * Kg + k0 + direct_min(i, kn - 1)) * Tv;
            BwBlock acc;
#pragma GCC unroll 8
            for (int64_t i = 0; i < KB; ++i)
#pragma GCC unroll 8
              for (int64_t j = 0; j < TB; ++j) acc[i][j] = BwVec{};
            for (int64_t n = u0; n < ne; ++n) {
              const float* xi = xp + n * ximg + grp * Cg * Hp * Wp;
              const float* di = dyp + n * dyimg;
              for (int64_t t = ta; t < tz; t += V) bw_step(acc, di + t, ko, xi + t, to);
            }
            bw_sum(acc, kn, tn, dw + (grp * Kg + k0) * CRS + c0, CRS);
          }
        }
    }  // (implicit barrier: the next chunk's copies overwrite xp and dyp)
  }
}

// ---- direct weight gradient along the batch (direct_n) ------------------------------------
// dW[k][c][r][s] = sum over n, p, q of dy[n][k][p][q] * x[n][c][p*sh + r*dh - pt][q*sw + s*dw - pl]
// vectorised along the images: V images per vector. Each block of V images is copied
// transposed, x to [C][Hp][Wp][V] (zero-padded) and dy to [K][P][Q][V] (zeros past N), so
// every product is one vector FMA at fixed offsets and none is wasted: the flat-position
// kernel above also multiplies the Wp - Q columns past each output row (29% of LeNet c3's
// products) and takes stride 1 only; this one takes any stride and dilation. Same register
// block (KB filters x TB taps) and work items as above. The blocks are taken a unit (a few
// blocks whose copies fit half the L2: direct_n_unit_floats) at a time, and each unit ends with the items' horizontal
// sums. With several threads and at least two units per thread, each thread takes whole units
// (its own copies, in its own core's L2) into a private dW, summed at the end; otherwise the
// threads share out each unit's copies and items (2 threads, interleaved, ms, units per
// thread / shared: LeNet c3 N=256 1.39 / 1.45, N=1024 6.3 / 6.8; 128 images 64->64 at 16x16
// 26 / 25).
struct DirectNShape {
  int64_t V, Cg, Kg, RS, CRS, Hp, Wp, PQ, HWp, xblk, dyblk, nblocks, unit, kblocks, tblocks,
      items;
};

// The transposed copies of image block b (images b*V ..) into xb and dyb: one channel of x
// (it < C) or one filter of dy (it >= C) per call. The V images' values of one position are
// read from V streams and written as one vector; lanes past N are zeros.
inline void direct_n_copy(const convforge::Conv2dGeometry& g, const DirectNShape& d, int64_t b,
                          int64_t it, const float* x, const float* dy, float* xb, float* dyb) {
  constexpr int64_t V = CF_BW_V;
  const int64_t n0 = b * V, lanes = direct_min(V, g.N - n0);
  const bool is_x = it < g.C;
  const int64_t plane = is_x ? g.H * g.W : d.PQ;
  const float* src[V];
  for (int64_t l = 0; l < V; ++l)
    src[l] = l < lanes ? (is_x ? x + ((n0 + l) * g.C + it) * plane
                               : dy + ((n0 + l) * g.K + (it - g.C)) * plane)
                       : nullptr;
  // rows: (destination row start, first source index, count) of each stretch to copy
  const auto copy_run = [&](float* o, int64_t s0, int64_t count) {
    if (lanes == V) {
      for (int64_t w = 0; w < count; ++w)
#pragma GCC unroll 16
        for (int64_t l = 0; l < V; ++l) o[w * V + l] = src[l][s0 + w];
    } else {
      for (int64_t w = 0; w < count; ++w)
        for (int64_t l = 0; l < V; ++l) o[w * V + l] = l < lanes ? src[l][s0 + w] : 0.0f;
    }
  };
  if (!is_x) return copy_run(dyb + (it - g.C) * d.PQ * V, 0, d.PQ);
  float* o = xb + it * d.HWp * V;
  const int64_t top = g.pad_top * d.Wp * V, bottom = (g.pad_top + g.H) * d.Wp * V;
  for (int64_t i = 0; i < top; ++i) o[i] = 0.0f;
  for (int64_t i = bottom; i < d.HWp * V; ++i) o[i] = 0.0f;
  for (int64_t h = 0; h < g.H; ++h) {
    float* orow = o + (h + g.pad_top) * d.Wp * V;
    for (int64_t i = 0; i < g.pad_left * V; ++i) orow[i] = 0.0f;
    for (int64_t i = (g.pad_left + g.W) * V; i < d.Wp * V; ++i) orow[i] = 0.0f;
    copy_run(orow + g.pad_left * V, h * g.W, g.W);
  }
}

// One work item (a block of filters x a block of taps) over nb copied blocks, added into dw.
inline void direct_n_item(const convforge::Conv2dGeometry& g, const DirectNShape& d,
                          const int64_t* off, int64_t item, const float* xb, const float* dyb,
                          int64_t nb, float* dw) {
  constexpr int64_t V = CF_BW_V, KB = CF_BW_KB, TB = CF_BW_TB;
  const bool taps_fastest = d.Cg < d.Kg;  // as in direct_backward_weight
  const int64_t kt = item % (d.kblocks * d.tblocks), grp = item / (d.kblocks * d.tblocks);
  const int64_t kb = taps_fastest ? kt / d.tblocks : kt % d.kblocks;
  const int64_t tb = taps_fastest ? kt % d.tblocks : kt / d.kblocks;
  const int64_t k0 = kb * KB, kn = direct_min(KB, d.Kg - k0);
  const int64_t c0 = tb * TB, tn = direct_min(TB, d.CRS - c0);
  const int64_t sh = g.stride_h * d.Wp * V, sw = g.stride_w * V;
  // Taps past the block's end repeat the last one; so do filters past Kg.
  int64_t to[TB], ko[KB];
  for (int64_t j = 0; j < TB; ++j) to[j] = grp * d.Cg * d.HWp * V + off[c0 + direct_min(j, tn - 1)];
  for (int64_t i = 0; i < KB; ++i) ko[i] = (grp * d.Kg + k0 + direct_min(i, kn - 1)) * d.PQ * V;
  BwBlock acc;
#pragma GCC unroll 8
  for (int64_t i = 0; i < KB; ++i)
#pragma GCC unroll 8
    for (int64_t j = 0; j < TB; ++j) acc[i][j] = BwVec{};
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t p = 0; p < g.P; ++p) {
      const float* xr = xb + b * d.xblk + p * sh;
      const float* dr = dyb + b * d.dyblk + p * g.Q * V;
      for (int64_t q = 0; q < g.Q; ++q) bw_step(acc, dr + q * V, ko, xr + q * sw, to);
    }
  bw_sum(acc, kn, tn, dw + (grp * d.Kg + k0) * d.CRS + c0, d.CRS);
}

inline void direct_backward_weight_n(const convforge::Conv2dGeometry& g, const float* dy,
                                     const float* x, float* dw) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  DirectNShape d;
  d.V = CF_BW_V;
  d.Cg = g.C_per_group(), d.Kg = g.K_per_group(), d.RS = g.R * g.S, d.CRS = d.Cg * d.RS;
  d.Hp = g.H + g.pad_top + g.pad_bottom, d.Wp = g.W + g.pad_left + g.pad_right;
  d.PQ = g.P * g.Q, d.HWp = d.Hp * d.Wp;
  d.xblk = g.C * d.HWp * d.V, d.dyblk = g.K * d.PQ * d.V;
  d.nblocks = (g.N + d.V - 1) / d.V;
  // Blocks per unit: the unit's copies within half the L2, at least one.
  d.unit = direct_max(1, direct_min(d.nblocks, direct_n_unit_floats() / (d.xblk + d.dyblk)));
  d.kblocks = (d.Kg + CF_BW_KB - 1) / CF_BW_KB, d.tblocks = (d.CRS + CF_BW_TB - 1) / CF_BW_TB;
  d.items = g.groups * d.kblocks * d.tblocks;
  const int64_t nunits = (d.nblocks + d.unit - 1) / d.unit, chans = g.C + g.K, wsize = g.w_size();
  int64_t* off = reinterpret_cast<int64_t*>(thread_scratch(ScratchSlot::ConvPartial2, 2 * d.CRS + 2));
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        off[(c * g.R + r) * g.S + s] = ((c * d.Hp + r * g.dilation_h) * d.Wp + s * g.dilation_w) * d.V;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  const int nthreads = threaded ? omp_get_max_threads() : 1;
  for (int64_t i = 0; i < wsize; ++i) dw[i] = 0.0f;

  if (nthreads > 1 && nunits >= 2 * nthreads) {
    // Whole units per thread, each into its own partial dW (the calling thread's ConvWeight
    // scratch holds them all), then one sum.
    // (All zeroed here: the runtime may give a smaller team, and the sum reads every partial.)
    float* partial = thread_scratch(ScratchSlot::ConvWeight, nthreads * wsize);
    for (int64_t i = 0; i < nthreads * wsize; ++i) partial[i] = 0.0f;
#pragma omp parallel num_threads(nthreads) firstprivate(team_float_mode)
    {
      float* pw = partial + omp_get_thread_num() * wsize;
      float* xb = thread_scratch(ScratchSlot::ConvCol, d.unit * d.xblk);
      float* dyb = thread_scratch(ScratchSlot::ConvPartial, d.unit * d.dyblk);
#pragma omp for schedule(static)
      for (int64_t u = 0; u < nunits; ++u) {
        const int64_t b0 = u * d.unit, nb = direct_min(d.unit, d.nblocks - b0);
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t it = 0; it < chans; ++it)
            direct_n_copy(g, d, b0 + b, it, x, dy, xb + b * d.xblk, dyb + b * d.dyblk);
        for (int64_t item = 0; item < d.items; ++item) direct_n_item(g, d, off, item, xb, dyb, nb, pw);
      }
    }
    for (int t = 0; t < nthreads; ++t)
      for (int64_t i = 0; i < wsize; ++i) dw[i] += partial[t * wsize + i];
    return;
  }
  // The threads share out each unit: its copies, then its items.
  float* xb = thread_scratch(ScratchSlot::ConvCol, d.unit * d.xblk);
  float* dyb = thread_scratch(ScratchSlot::ConvPartial, d.unit * d.dyblk);
#pragma omp parallel if (threaded) firstprivate(team_float_mode)
  for (int64_t b0 = 0; b0 < d.nblocks; b0 += d.unit) {
    const int64_t nb = direct_min(d.unit, d.nblocks - b0);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < nb * chans; ++it) {
      const int64_t b = it / chans;
      direct_n_copy(g, d, b0 + b, it % chans, x, dy, xb + b * d.xblk, dyb + b * d.dyblk);
    }  // (barrier: the items read every copy)
#pragma omp for schedule(static)
    for (int64_t item = 0; item < d.items; ++item) direct_n_item(g, d, off, item, xb, dyb, nb, dw);
    // (barrier: the next unit's copies overwrite xb and dyb)
  }
}

// ---- direct input gradient along the batch (direct_n, stride 1) --------------------------
// dx[n][c][h][w] = sum over k, r, s of w[k][c][r][s] * dy[n][k][h + pt - r*dh][w + pl - s*dw],
// V images per vector. Rows are exact: each input row sums only the kernel rows r that reach
// a row of dy (the transposed forward pads dy by R-1 rows above and below: LeNet c3's 10 x 10
// dy becomes 18 x 18, and about half of its products are with those zeros). Columns are
// padded: dy is copied per block of images to [K][P][Qp][V] with zero columns either side,
// so that a register block of CB input channels x WB consecutive columns takes every tap s
// with no edge cases (LeNet c3: 70 column-tap products for 50 useful). Strided layers: im2col.
inline void direct_backward_data_n(const convforge::Conv2dGeometry& g, const float* dy,
                                   const float* w, float* dx) {
  using convforge::cpu::gemm_detail::ScratchSlot;
  using convforge::cpu::gemm_detail::thread_scratch;
  constexpr int64_t V = CF_BW_V, CB = CF_BW_KB, WB = CF_BW_TB;
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S, PQ = g.P * g.Q;
  const int64_t Wr = (g.W + WB - 1) / WB * WB;  // columns computed (stored: W)
  const int64_t L = direct_max(0, (g.S - 1) * g.dilation_w - g.pad_left);
  const int64_t Qp = L + direct_max(g.Q, Wr + g.pad_left);
  const int64_t dyblk = g.K * g.P * Qp * V, nblocks = (g.N + V - 1) / V;
  const int64_t unit = direct_max(1, direct_min(nblocks, direct_n_unit_floats() / dyblk));
  const int64_t cblocks = (Cg + CB - 1) / CB, per_block = g.groups * cblocks * g.H;
  const bool threaded = !omp_in_parallel() && g.macs() > (int64_t(1) << 17);
  float* dyb = thread_scratch(ScratchSlot::ConvPartial, unit * dyblk);

#pragma omp parallel if (threaded) firstprivate(team_float_mode)
  for (int64_t b0 = 0; b0 < nblocks; b0 += unit) {
    const int64_t nb = direct_min(unit, nblocks - b0);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < nb * g.K; ++it) {  // dy[n0 + l][k][p][q] -> o[(p*Qp + L + q)*V + l]
      const int64_t b = it / g.K, k = it % g.K, n0 = (b0 + b) * V, lanes = direct_min(V, g.N - n0);
      float* o = dyb + b * dyblk + k * g.P * Qp * V;
      for (int64_t i = 0; i < g.P * Qp * V; ++i) o[i] = 0.0f;
      const float* src[V];
      for (int64_t l = 0; l < V; ++l) src[l] = dy + ((n0 + direct_min(l, lanes - 1)) * g.K + k) * PQ;
      for (int64_t p = 0; p < g.P; ++p) {
        float* orow = o + (p * Qp + L) * V;
        if (lanes == V) {
          for (int64_t q = 0; q < g.Q; ++q)
#pragma GCC unroll 16
            for (int64_t l = 0; l < V; ++l) orow[q * V + l] = src[l][p * g.Q + q];
        } else {
          for (int64_t q = 0; q < g.Q; ++q)
            for (int64_t l = 0; l < lanes; ++l) orow[q * V + l] = src[l][p * g.Q + q];
        }
      }
    }  // (barrier: the items read every copy)
#pragma omp for schedule(static)
    for (int64_t item = 0; item < nb * per_block; ++item) {
      const int64_t b = item / per_block, rest = item % per_block;
      const int64_t ih = rest % g.H, cb = (rest / g.H) % cblocks, grp = rest / (g.H * cblocks);
      const int64_t c0 = cb * CB, cn = direct_min(CB, Cg - c0);
      const int64_t n0 = (b0 + b) * V, lanes = direct_min(V, g.N - n0);
      const float* db = dyb + b * dyblk + grp * Kg * g.P * Qp * V;
      // Channels past the block's end repeat the last one (computed, not stored).
      int64_t wc[CB];
      for (int64_t i = 0; i < CB; ++i) wc[i] = (c0 + direct_min(i, cn - 1)) * RS;
      // r whose dy row lies inside P: 0 <= ih + pt - r*dh <= P-1
      const int64_t th = ih + g.pad_top - (g.P - 1);
      const int64_t r_lo = th <= 0 ? 0 : (th + g.dilation_h - 1) / g.dilation_h;
      const int64_t r_hi = ih + g.pad_top < 0 ? 0 : direct_min(g.R, (ih + g.pad_top) / g.dilation_h + 1);
      for (int64_t iw0 = 0; iw0 < Wr; iw0 += WB) {
        BwVec acc[CB][WB];
#pragma GCC unroll 8
        for (int64_t i = 0; i < CB; ++i)
#pragma GCC unroll 8
          for (int64_t j = 0; j < WB; ++j) acc[i][j] = BwVec{};
        for (int64_t k = 0; k < Kg; ++k) {
          const float* wk = w + (grp * Kg + k) * Cg * RS;
          for (int64_t r = r_lo; r < r_hi; ++r) {
            const float* dr = db + ((k * g.P + ih + g.pad_top - r * g.dilation_h) * Qp + L + iw0 +
                                    g.pad_left) * V;
            const float* wr = wk + r * g.S;
            for (int64_t s = 0; s < g.S; ++s) {
              const float* dq = dr - s * g.dilation_w * V;
              BwVec dv[WB];
#pragma GCC unroll 8
              for (int64_t j = 0; j < WB; ++j) __builtin_memcpy(&dv[j], dq + j * V, sizeof(BwVec));
#pragma GCC unroll 8
              for (int64_t i = 0; i < CB; ++i) {
                const float wv = wr[wc[i] + s];
#pragma GCC unroll 8
                for (int64_t j = 0; j < WB; ++j) acc[i][j] += wv * dv[j];
              }
            }
          }
        }
        const int64_t wn = direct_min(WB, g.W - iw0);
        for (int64_t i = 0; i < cn; ++i)
          for (int64_t j = 0; j < wn; ++j) {
            alignas(64) float v[V];
            __builtin_memcpy(v, &acc[i][j], sizeof v);
            float* o = dx + ((n0 * g.C + grp * Cg + c0 + i) * g.H + ih) * g.W + iw0 + j;
            for (int64_t l = 0; l < lanes; ++l) o[l * g.C * g.H * g.W] = v[l];
          }
      }
    }  // (barrier: the next unit's copies overwrite dyb)
  }
}

// The register block is this includer's alone.
#undef CF_DIRECT_KB
#undef CF_DIRECT_QB
#undef CF_DIRECT_KV
#undef CF_DIRECT_NA
#undef CF_DIRECT_NA2
#undef CF_DIRECT_QW2
#undef CF_BW_V
#undef CF_BW_KB
#undef CF_BW_TB
