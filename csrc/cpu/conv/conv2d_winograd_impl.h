// Winograd F(m x m, 3x3) forward (see conv2d_winograd.cpp), included once per ISA
// (conv2d_winograd{,_avx2,_avx512,_neon}.cpp) inside an anonymous namespace, so that the
// transforms' loops over contiguous tiles are vectorised for each SIMD level.
using gemm_detail::ScratchSlot;
using gemm_detail::thread_scratch;

constexpr int64_t kBudget = int64_t(1) << 22;  // floats of V + M per chunk (16 MiB)
constexpr int64_t kLanes = 128;  // tiles per pass of the input and output transforms
// At most this many tiles per chunk: V and M (a^2 x (C + K) x tiles) then stay near the caches
// for few channels. Zen 3, F(4x4,3x3), 64 -> 64 at 56 x 56 N=8 and 128 -> 128 at 28 x 28
// N=8: 19.7 / 15.4 ms with 160 tiles against 20.8 / 21.4 with the 16 MiB budget's 910 / 455;
// 256 -> 256 at 56 x 56 (227 tiles by the budget) and 512 -> 512 (113) alike within noise.
constexpr int64_t kMaxTiles = 256;

template <int m>
struct WinogradMatrices;

template <>
struct WinogradMatrices<2> {
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

template <>
struct WinogradMatrices<4> {
  static constexpr float BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                     {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                     {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float G[6][3] = {{1.0f / 4, 0, 0},
                                    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                    {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                    {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                    {0, 0, 1}};
  static constexpr float AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// out[i][0..n) = sum_a Mx[i][a] * in[a][0..n) for the Rows x Cols constant matrix Mx: a loop
// over contiguous values per output line, the matrix's zeros skipped and its ones folded once
// the loops over i and a are unrolled (Mx's entries are then constants).
template <int Rows, int Cols>
__attribute__((always_inline)) inline void apply_matrix(const float (&Mx)[Rows][Cols],
                                                        const float* const* in,
                                                        float* const* out, int64_t n) {
#pragma GCC unroll 8
  for (int i = 0; i < Rows; ++i) {
    float* __restrict o = out[i];
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
#pragma GCC unroll 8
      for (int a = 0; a < Cols; ++a)
        if (Mx[i][a] != 0.0f) acc += Mx[i][a] * in[a][j];
      o[j] = acc;
    }
  }
}

template <int m>
void forward_winograd_m(const Conv2dGeometry& g, const float* x, const float* w,
                        const float* bias, float* y, bool relu) {
  using Mats = WinogradMatrices<m>;
  constexpr int a = m + 2, a2 = a * a;  // the transform domain: a x a points
  const int64_t C = g.C, K = g.K, P = g.P, Q = g.Q, H = g.H, W = g.W;
  const int64_t th = (P + m - 1) / m, tw = (Q + m - 1) / m, per_image = th * tw;
  const int64_t tiles = g.N * per_image;
  if (tiles == 0) return;
  const int64_t tc =
      std::max(tw, std::min({tiles, kMaxTiles, std::max<int64_t>(64, kBudget / (a2 * (C + K)))}) /
                       tw * tw);
  const bool par = !omp_in_parallel();

  // U[xi][c][k] = (G g G^T)[xi], vectorised along k: the taps of filters (., c) are first laid
  // out tap-major (g9[tap][k]) so that every line is a loop over contiguous k.
  float* U = thread_scratch(ScratchSlot::WinogradU, a2 * K * C);
  float* V = thread_scratch(ScratchSlot::ConvCol, a2 * C * tc);
  float* M = thread_scratch(ScratchSlot::ConvPartial, a2 * K * tc);
  const int64_t filter_scratch = (9 + 3 * a) * K;
  if (!par) thread_scratch(ScratchSlot::ConvPartial2, filter_scratch);
#pragma omp parallel if (par && K * C > 4096) firstprivate(team_float_mode)
  {
    float* g9 = thread_scratch(ScratchSlot::ConvPartial2, filter_scratch);
    float* gt = g9 + 9 * K;  // G g: a rows x 3 columns of K
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t k = 0; k < K; ++k)
        for (int j = 0; j < 9; ++j) g9[j * K + k] = w[(k * C + c) * 9 + j];
      for (int s = 0; s < 3; ++s) {  // column s of G g = G * (column s of g)
        const float* in[3] = {g9 + s * K, g9 + (3 + s) * K, g9 + (6 + s) * K};
        float* out[a];
        for (int i = 0; i < a; ++i) out[i] = gt + (i * 3 + s) * K;
        apply_matrix(Mats::G, in, out, K);
      }
      for (int i = 0; i < a; ++i) {  // row i of (G g) G^T = G * (row i of G g)
        const float* in[3] = {gt + (i * 3 + 0) * K, gt + (i * 3 + 1) * K, gt + (i * 3 + 2) * K};
        float* out[a];
        for (int l = 0; l < a; ++l) out[l] = U + ((i * a + l) * C + c) * K;
        apply_matrix(Mats::G, in, out, K);
      }
    }
  }

  // Chunks of whole tile rows (n, i): tc tiles = rows_per_chunk * tw. The transforms run over
  // groups of tile rows (`rows_per_group`, about kLanes tiles) so that their loops are long
  // enough for whole vectors (a row of 14 tiles left 6 to the scalar tail). The input rows of a
  // tile row are split into m phases (ph[r][f][jj] = padded input row r at column m*jj + f, jj
  // in [0, tw]), so that tile j's column b is ph[r][b % m][j + b / m]: contiguous along the
  // tiles. A group's phases lie tile row after tile row, tw + 1 apart, so one loop covers the
  // group; its last column per tile row is junk, dropped when V is written.
  const int64_t tile_rows = g.N * th;
  const int64_t rows_per_chunk = std::max<int64_t>(1, tc / tw);
  const int64_t tw1 = tw + 1;
  const int64_t rows_per_group = std::max<int64_t>(1, kLanes / tw1);
  const int64_t span = rows_per_group * tw1;  // one group's (padded) tiles
  // phases, B^T d, a rows of V, a padded input row
  const int64_t in_scratch = (a * m + a * a + a) * span + m * tw1;
  const int64_t out_scratch = (m * a + m) * rows_per_group * tw;  // A^T M, m output phases
  const int64_t buf_floats = std::max(in_scratch, out_scratch);
  if (!par) thread_scratch(ScratchSlot::ConvPartial2, buf_floats);
  for (int64_t r0 = 0; r0 < tile_rows; r0 += rows_per_chunk) {
    const int64_t nr = std::min(rows_per_chunk, tile_rows - r0), nt = nr * tw;
    const int64_t groups = (nr + rows_per_group - 1) / rows_per_group;
#pragma omp parallel if (par && C * nt > 4096) firstprivate(team_float_mode)
    {
      float* buf = thread_scratch(ScratchSlot::ConvPartial2, buf_floats);
      float* ph = buf;               // a rows x m phases x span
      float* bd = ph + a * m * span;  // B^T d: a rows (l) x a columns (b) x span
      float* vr = bd + a * a * span;  // one row l of (B^T d) B: a x span
      float* prow = vr + a * span;     // one padded input row: m * tw1
#pragma omp for schedule(static)
      for (int64_t gc = 0; gc < groups * C; ++gc) {
        const int64_t c = gc % C, rg0 = (gc / C) * rows_per_group;
        const int64_t rows = std::min(rows_per_group, nr - rg0), n = rows * tw1;
        for (int64_t rr = 0; rr < rows; ++rr) {
          const int64_t row = r0 + rg0 + rr, img = row / th, i = row % th;
          const float* xc = x + (img * C + c) * H * W;
          for (int r = 0; r < a; ++r) {
            // The padded input row (columns -pad_left .. m*tw1 - pad_left - 1), then split
            // into its m phases: a de-interleave the compiler vectorises.
            const int64_t ih = m * i - g.pad_top + r;
            const int64_t lo = std::min(g.pad_left, m * tw1);
            const int64_t hi = std::max(lo, std::min(m * tw1, W + g.pad_left));
            if (ih < 0 || ih >= H) {
              std::fill(prow, prow + m * tw1, 0.0f);
            } else {
              std::fill(prow, prow + lo, 0.0f);
              std::memcpy(prow + lo, xc + ih * W + (lo - g.pad_left), sizeof(float) * (hi - lo));
              std::fill(prow + hi, prow + m * tw1, 0.0f);
            }
            float* d = ph + r * m * span + rr * tw1;
            for (int64_t jj = 0; jj < tw1; ++jj)
#pragma GCC unroll 4
              for (int f = 0; f < m; ++f) d[f * span + jj] = prow[m * jj + f];
          }
        }
        for (int b = 0; b < a; ++b) {  // column b of B^T d = B^T * (column b of d)
          const float* in[a];
          float* out[a];
          for (int r = 0; r < a; ++r) in[r] = ph + (r * m + b % m) * span + b / m;
          for (int l = 0; l < a; ++l) out[l] = bd + (l * a + b) * span;
          apply_matrix(Mats::BT, in, out, n - 1);  // (the junk column of the last row: unread)
        }
        for (int l = 0; l < a; ++l) {  // row l of (B^T d) B = B^T * (row l of B^T d)
          const float* in[a];
          float* out[a];
          for (int b = 0; b < a; ++b) in[b] = bd + (l * a + b) * span;
          for (int e = 0; e < a; ++e) out[e] = vr + e * span;
          apply_matrix(Mats::BT, in, out, n - 1);
          for (int e = 0; e < a; ++e) {  // to V, without each tile row's junk column
            float* v = V + ((l * a + e) * C + c) * nt + rg0 * tw;
            const float* src = vr + e * span;
            for (int64_t rr = 0; rr < rows; ++rr)
              for (int64_t j = 0; j < tw; ++j) v[rr * tw + j] = src[rr * tw1 + j];
          }
        }
      }
    }
    // M_xi (K x tiles) = U_xi^T (K x C) * V_xi (C x tiles); both operands pack by contiguous
    // copies (U is stored c-major, so its transpose gives MR consecutive values per c). With
    // a^2 >= 4 GEMMs per thread, the threads take whole GEMMs (each then runs serially): one
    // small GEMM split over threads synchronises per block (64 -> 64 at 56 x 56 N=8, F(4x4),
    // 2 threads: 25.6 ms that way against 19.4 for direct_k).
    auto point_gemm = [&](int64_t xi) {
      const gemm_detail::DenseMatrix am{U + xi * C * K, K, true}, bm{V + xi * C * nt, nt, false};
      gemm_detail::gemm_blocked_run(K, nt, C, 1.0f, gemm_detail::pack_a_dense(&am),
                                    gemm_detail::pack_b_dense(&bm), 0.0f, M + xi * K * nt, nt, {});
    };
    if (par && a2 >= 4 * omp_get_max_threads() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static) firstprivate(team_float_mode)
      for (int64_t xi = 0; xi < a2; ++xi) point_gemm(xi);
    } else {
      for (int64_t xi = 0; xi < a2; ++xi) point_gemm(xi);
    }
    // y = A^T M A, + bias, relu, over a group of tile rows at a time (M's tiles are contiguous:
    // no junk); the m output columns of each tile are interleaved on the way out, clipped at P
    // and Q.
#pragma omp parallel if (par && K * nt > 4096) firstprivate(team_float_mode)
    {
      float* buf = thread_scratch(ScratchSlot::ConvPartial2, buf_floats);
      const int64_t gspan = rows_per_group * tw;
      float* s = buf;                // A^T M: m rows (ii) x a columns (b) x gspan
      float* o = s + m * a * gspan;  // one output row per tile row: m phases x gspan
#pragma omp for schedule(static)
      for (int64_t gk = 0; gk < groups * K; ++gk) {
        const int64_t k = gk % K, rg0 = (gk / K) * rows_per_group;
        const int64_t rows = std::min(rows_per_group, nr - rg0), n = rows * tw;
        const float bk = bias ? bias[k] : 0.0f;
        for (int b = 0; b < a; ++b) {  // column b of A^T M
          const float* in[a];
          float* out[m];
          for (int r = 0; r < a; ++r) in[r] = M + ((r * a + b) * K + k) * nt + rg0 * tw;
          for (int ii = 0; ii < m; ++ii) out[ii] = s + (ii * a + b) * gspan;
          apply_matrix(Mats::AT, in, out, n);
        }
        for (int ii = 0; ii < m; ++ii) {  // output row ii of every tile: (A^T M) A
          const float* in[a];
          float* out[m];
          for (int b = 0; b < a; ++b) in[b] = s + (ii * a + b) * gspan;
          for (int f = 0; f < m; ++f) out[f] = o + f * gspan;
          apply_matrix(Mats::AT, in, out, n);
          for (int64_t rr = 0; rr < rows; ++rr) {  // + bias, relu, the m phases interleaved
            const int64_t row = r0 + rg0 + rr, img = row / th, p = m * (row % th) + ii;
            if (p >= P) continue;
            float* yr = y + ((img * K + k) * P + p) * Q;
            const float* orow = o + rr * tw;
            const int64_t whole = Q / m;
            for (int64_t j = 0; j < whole; ++j)
#pragma GCC unroll 4
              for (int f = 0; f < m; ++f) {
                const float v = orow[f * gspan + j] + bk;
                yr[m * j + f] = relu && v < 0.0f ? 0.0f : v;
              }
            for (int64_t q = m * whole; q < Q; ++q) {
              const float v = orow[(q % m) * gspan + q / m] + bk;
              yr[q] = relu && v < 0.0f ? 0.0f : v;
            }
          }
        }
      }
    }
  }
}
