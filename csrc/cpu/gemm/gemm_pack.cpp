// Packing of plain (optionally transposed) row-major matrices into the micro-panel
// formats of gemm_blocked.h. Transposes are handled here, so the micro-kernel only
// ever sees one layout.
#include <algorithm>
#include <cstring>

#include "cpu/gemm/gemm_blocked.h"

namespace convforge::cpu::gemm_detail {
namespace {

typedef float V4 __attribute__((vector_size(16)));

// c[j] = column j of the 4 x 4 block whose rows are r[0..3].
inline void transpose4x4(const V4 r[4], V4 c[4]) {
  const V4 t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);  // r0k0 r1k0 r0k1 r1k1
  const V4 t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);  // r0k2 r1k2 r0k3 r1k3
  const V4 t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
  const V4 t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
  c[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);  // r0..r3 at k
  c[1] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);  // k+1
  c[2] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);  // k+2
  c[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);  // k+3
}

// One full micro-panel of MR rows of a row-major A (rows `lda` apart), k-major: the k loop is
// outside, so the panel is written sequentially and the MR rows are read as MR streams (the
// ii-outer order wrote with stride MR and cost 9% of a 1024^3 GEMM on Zen 3). MR is a
// constant here, so the inner loop is fully unrolled.
template <int MR>
void pack_a_rows(const float* src, int64_t lda, int64_t kc, float* dst) {
  const float* row[MR];
  for (int ii = 0; ii < MR; ++ii) row[ii] = src + ii * lda;
  for (int64_t k = 0; k < kc; ++k)
#pragma GCC unroll 16
    for (int ii = 0; ii < MR; ++ii) dst[k * MR + ii] = row[ii][k];
}

// MR = 6 (the AVX2 micro-kernel), four columns at a time: six 4-float loads, the first four
// rows transposed 4 x 4 and rows 4-5 interleaved in pairs, then four 6-float columns stored
// (16 + 8 bytes each): about a third of the scalar loop's loads and stores. The scalar loop
// took 8% of the samples of a 1x1 layer's GEMM (1024 x 256 x 196) and 18% of its
// micro-kernel's; it takes the last kc % 4 columns. Each of the 6 rows is a run of only kc
// floats, too short for the hardware prefetchers, so the next panel's rows are prefetched
// while this one is packed (Zen 3, interleaved: sgemm 2048x512x49 with B transposed 1.98 ->
// 1.71 ms, 512x196x4608 13.5 -> 13.0, 1024^3 within 1%).
template <>
void pack_a_rows<6>(const float* src, int64_t lda, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    V4 r[6], c[4];
    if ((k & 15) == 0)  // the next panel's six rows (prefetches past the matrix never fault)
      for (int ii = 6; ii < 12; ++ii) __builtin_prefetch(src + ii * lda + k, 0, 3);
    for (int ii = 0; ii < 6; ++ii) std::memcpy(&r[ii], src + ii * lda + k, sizeof(V4));
    transpose4x4(r, c);
    const V4 e0 = __builtin_shufflevector(r[4], r[5], 0, 4, 1, 5);  // r4k0 r5k0 r4k1 r5k1
    const V4 e1 = __builtin_shufflevector(r[4], r[5], 2, 6, 3, 7);
    alignas(16) float pairs[8];
    std::memcpy(pairs, &e0, sizeof e0);
    std::memcpy(pairs + 4, &e1, sizeof e1);
    float* d = dst + k * 6;
    for (int j = 0; j < 4; ++j) {
      std::memcpy(d + 6 * j, &c[j], sizeof(V4));
      std::memcpy(d + 6 * j + 4, pairs + 2 * j, 2 * sizeof(float));
    }
  }
  for (; k < kc; ++k)
    for (int ii = 0; ii < 6; ++ii) dst[k * 6 + ii] = src[ii * lda + k];
}

// `rows` rows (ld apart) of kc columns -> one micro-panel of mr rows, zero past `rows`.
void pack_a_panel(const float* src, int64_t ld, int64_t kc, int64_t rows, int64_t mr, float* dst) {
  if (rows == mr) {  // the micro-kernels' heights (gemm_config.cpp's table)
    if (mr == 6) return pack_a_rows<6>(src, ld, kc, dst);
    if (mr == 8) return pack_a_rows<8>(src, ld, kc, dst);
    if (mr == 14) return pack_a_rows<14>(src, ld, kc, dst);
  }
  for (int64_t k = 0; k < kc; ++k) {
    int64_t ii = 0;
    for (; ii < rows; ++ii) dst[k * mr + ii] = src[ii * ld + k];
    for (; ii < mr; ++ii) dst[k * mr + ii] = 0.0f;
  }
}

// kc rows of a row-major matrix (rows `ld` apart) -> `panels` whole micro-panels of NR columns:
// row by row, each row read in order and its NR-float pieces sent to their panels. Panel by
// panel (kc rows of 64 bytes, 12.5 KB apart at N = 3136: a new page for every line) the copy
// ran at 7 GB/s on Zen 3 and took 39% of a 64x3136x576 GEMM; row by row, 22 GB/s.
template <int NR>
void copy_panels(const float* src, int64_t ld, int64_t kc, int64_t panels, float* dst) {
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t p = 0; p < panels; ++p)  // a constant size: inlined vector moves
      std::memcpy(dst + p * kc * NR + k * NR, src + k * ld + p * NR, sizeof(float) * NR);
}

// As panels_from_rows, for any width (the last, partial panel).
void panels_from_rows_any(const float* src, int64_t ld, int64_t kc, int64_t n, int64_t w,
                          float* dst) {
  for (int64_t jp = 0; jp < n; jp += w, dst += kc * w) {
    const int64_t cols = n - jp < w ? n - jp : w;
    for (int64_t k = 0; k < kc; ++k) {
      std::memcpy(dst + k * w, src + k * ld + jp, sizeof(float) * cols);
      for (int64_t jj = cols; jj < w; ++jj) dst[k * w + jj] = 0.0f;
    }
  }
}

// kc rows of n values (ld apart) -> ceil(n / w) micro-panels of w values per row, zero past n:
// the whole panels with a constant width (the micro-kernels' MR and NR), then the last one.
// B as it is stored, and a transposed A (op(A)[i][k] = A[k][i]; read panel by panel, the
// filters of an input gradient, W^T, hopped a page per k and took 19% of VGG conv4_2's).
void panels_from_rows(const float* src, int64_t ld, int64_t kc, int64_t n, int64_t w,
                      float* dst) {
  const int64_t whole = n / w;
  switch (w) {
    case 4: copy_panels<4>(src, ld, kc, whole, dst); break;
    case 6: copy_panels<6>(src, ld, kc, whole, dst); break;
    case 8: copy_panels<8>(src, ld, kc, whole, dst); break;
    case 12: copy_panels<12>(src, ld, kc, whole, dst); break;
    case 14: copy_panels<14>(src, ld, kc, whole, dst); break;
    case 16: copy_panels<16>(src, ld, kc, whole, dst); break;
    case 32: copy_panels<32>(src, ld, kc, whole, dst); break;
    default: return panels_from_rows_any(src, ld, kc, n, w, dst);
  }
  if (whole * w < n)
    panels_from_rows_any(src + whole * w, ld, kc, n - whole * w, w, dst + whole * kc * w);
}

// op(A)[i0:i0+mi, k0:k0+kc] -> micro-panels of mr rows, k-major.
void pack_a(const void* ctx, int64_t i0, int64_t mi, int64_t k0, int64_t kc, int64_t mr,
            float* dst) {
  const auto& a = *static_cast<const DenseMatrix*>(ctx);
  if (a.trans) return panels_from_rows(a.data + k0 * a.ld + i0, a.ld, kc, mi, mr, dst);
  for (int64_t ip = 0; ip < mi; ip += mr, dst += kc * mr) {
    const int64_t rows = mi - ip < mr ? mi - ip : mr;
    pack_a_panel(a.data + (i0 + ip) * a.ld + k0, a.ld, kc, rows, mr, dst);
  }
}

// Four rows of kc values (ld apart) -> dst[k * nr + 0..3] for every k: 4 x 4 transposes, four
// columns at a time (the scalar scatter, one 4-byte store per element, made the transposed B
// of a 1x1 layer's weight gradient, x^T, 14% of its time against the micro-kernel's 37%).
// The loads waited on memory (a 1x1 weight gradient's x^T: 34% of the micro-kernel's samples,
// most on the loads), so the next four rows are prefetched meanwhile (Zen 3, interleaved,
// weight gradient 256->64 at 56x56 N=8 17.0 -> 16.1 ms, 28x28 13.0 -> 12.5, N=1 2.0 -> 1.9).
void transpose_rows4(const float* src, int64_t ld, int64_t kc, int64_t nr, float* dst) {
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    V4 r[4], c[4];
    if ((k & 15) == 0)  // the next four rows, one line each per 16 columns
      for (int ii = 4; ii < 8; ++ii) __builtin_prefetch(src + ii * ld + k, 0, 3);
    for (int ii = 0; ii < 4; ++ii) std::memcpy(&r[ii], src + ii * ld + k, sizeof(V4));
    transpose4x4(r, c);
    for (int j = 0; j < 4; ++j) std::memcpy(dst + (k + j) * nr, &c[j], sizeof(V4));
  }
  for (; k < kc; ++k)
    for (int ii = 0; ii < 4; ++ii) dst[k * nr + ii] = src[ii * ld + k];
}

// `cols` (<= nr) rows of kc values (ld apart) -> one micro-panel of nr columns, dst[k * nr + j]
// = src[j * ld + k], zero past `cols`: four source rows at a time through 4 x 4 transposes, the
// rest (cols % 4 rows) read along k and scattered by nr. A transposed B.
void panel_from_columns(const float* src, int64_t ld, int64_t kc, int64_t cols, int64_t nr,
                        float* dst) {
  const int64_t quads = nr % 4 == 0 ? cols / 4 : 0;
  for (int64_t q = 0; q < quads; ++q) transpose_rows4(src + 4 * q * ld, ld, kc, nr, dst + 4 * q);
  for (int64_t jj = 4 * quads; jj < cols; ++jj)
    for (int64_t k = 0; k < kc; ++k) dst[k * nr + jj] = src[jj * ld + k];
  for (int64_t jj = cols; jj < nr; ++jj)
    for (int64_t k = 0; k < kc; ++k) dst[k * nr + jj] = 0.0f;
}

// op(B)[k0:k0+kc, j0:j0+nj] -> micro-panels of nr columns, k-major.
void pack_b(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
            float* dst) {
  const auto& b = *static_cast<const DenseMatrix*>(ctx);
  if (!b.trans) return panels_from_rows(b.data + k0 * b.ld + j0, b.ld, kc, nj, nr, dst);
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr)
    panel_from_columns(b.data + (j0 + jp) * b.ld + k0, b.ld, kc, std::min(nr, nj - jp), nr, dst);
}

// Rows [i0, i0+mi) x columns [k0, k0+kc) of a SegmentedMatrix: each row is read along its
// contiguous runs (one per segment) and scattered with stride mr.
void pack_a_seg(const void* ctx, int64_t i0, int64_t mi, int64_t k0, int64_t kc, int64_t mr,
                float* dst) {
  const auto& a = *static_cast<const SegmentedMatrix*>(ctx);
  for (int64_t ip = 0; ip < mi; ip += mr, dst += kc * mr) {
    const int64_t rows = mi - ip < mr ? mi - ip : mr;
    for (int64_t j = k0; j < k0 + kc;) {
      const int64_t seg = (a.col0 + j) / a.seg_cols, js = (a.col0 + j) % a.seg_cols;
      const int64_t len = a.seg_cols - js < k0 + kc - j ? a.seg_cols - js : k0 + kc - j;
      const float* src = a.data + seg * a.seg_stride + (i0 + ip) * a.ld + js;
      pack_a_panel(src, a.ld, len, rows, mr, dst + (j - k0) * mr);
      j += len;
    }
  }
}

// len columns (< nr, or a panel straddling two segments) of kc rows -> columns [off, off+len)
// of one micro-panel.
void copy_piece(const float* src, int64_t ld, int64_t kc, int64_t len, int64_t nr, float* dst) {
  for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * nr, src + k * ld, sizeof(float) * len);
}

// Rows [k0, k0+kc) x columns [j0, j0+nj) of a SegmentedMatrix -> micro-panels of nr columns:
// segment by segment, the whole panels inside one through panels_from_rows (row by row, fixed
// size moves), the panels that straddle a segment boundary piece by piece.
void pack_b_seg(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
                float* dst) {
  const auto& b = *static_cast<const SegmentedMatrix*>(ctx);
  for (int64_t j = 0; j < nj;) {
    const int64_t J = b.col0 + j0 + j, seg = J / b.seg_cols, js = J % b.seg_cols;
    const int64_t run = std::min(b.seg_cols - js, nj - j);  // columns [j, j+run): one segment
    const float* src = b.data + seg * b.seg_stride + k0 * b.ld + js;
    int64_t done = 0;
    if (j % nr != 0) {  // finish the panel a previous segment started
      done = std::min(nr - j % nr, run);
      copy_piece(src, b.ld, kc, done, nr, dst + (j / nr) * kc * nr + j % nr);
    }
    const int64_t whole = (run - done) / nr;
    if (whole > 0)
      panels_from_rows(src + done, b.ld, kc, whole * nr, nr, dst + ((j + done) / nr) * kc * nr);
    done += whole * nr;
    if (done < run)  // the start of a panel the next segment (or the zero padding) finishes
      copy_piece(src + done, b.ld, kc, run - done, nr, dst + ((j + done) / nr) * kc * nr);
    j += run;
  }
  if (nj % nr != 0) {
    float* d = dst + (nj / nr) * kc * nr;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t jj = nj % nr; jj < nr; ++jj) d[k * nr + jj] = 0.0f;
  }
}

// B = S^T for a SegmentedMatrix S whose segmented columns are the reduction: rows [k0, k0+kc) x
// columns [j0, j0+nj) of B are rows [j0, j0+nj) x columns [k0, k0+kc) of S, taken segment by
// segment (one contiguous run per image) through panel_from_columns.
void pack_b_seg_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
                  float* dst) {
  const auto& s = *static_cast<const SegmentedMatrix*>(ctx);
  for (int64_t jp = 0; jp < nj; jp += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nj - jp);
    for (int64_t k = k0; k < k0 + kc;) {
      const int64_t seg = (s.col0 + k) / s.seg_cols, ks = (s.col0 + k) % s.seg_cols;
      const int64_t len = std::min(s.seg_cols - ks, k0 + kc - k);
      panel_from_columns(s.data + seg * s.seg_stride + (j0 + jp) * s.ld + ks, s.ld, len, cols, nr,
                         dst + (k - k0) * nr);
      k += len;
    }
  }
}

}  // namespace

PackB pack_b_segmented_t(const SegmentedMatrix* m) { return PackB{pack_b_seg_t, m}; }
PackB pack_b_segmented(const SegmentedMatrix* m) { return PackB{pack_b_seg, m}; }
PackA pack_a_segmented(const SegmentedMatrix* m) { return PackA{pack_a_seg, m}; }
PackA pack_a_dense(const DenseMatrix* m) { return PackA{pack_a, m}; }
PackB pack_b_dense(const DenseMatrix* m) { return PackB{pack_b, m, m->trans}; }

}  // namespace convforge::cpu::gemm_detail
