// Internals of the BLIS-style GEMM (gemm_blocked.cpp), shared with the convolution
// kernels that feed the same loops from their own packing routines.
//
//   jc over N by NC          B block  (KC x NC) packed once, lives in L3 (with one ic block
//                            and a gathered B: each micro-panel packed just before its use)
//    pc over K by KC
//     ic over M by MC        A block  (MC x KC) packed per thread, lives in L2
//      jr over NC by NR      B micro-panel (KC x NR) streams through L1
//       ir over MC by MR     micro-kernel: an MR x NR tile of C held in registers
//
// Packed formats: an A micro-panel is MR rows x kc, stored k-major (for each k the MR
// values of that column); a B micro-panel is kc x NR, stored k-major (for each k the NR
// values of that row). Rows/columns past the matrix edge are packed as zeros, so the
// micro-kernel always runs a full tile and only its stores are clipped.
#pragma once

#include <cstdint>
#include <string>

#include "cpu/cpu_features.h"
#include "cpu/gemm/gemm.h"
#include "cpu/machine.h"

namespace convforge::cpu::gemm_detail {

// What a micro-kernel does with its tile when it writes C:
//   C = alpha * acc + beta * C + row_bias[i] + col_bias[j], then relu.
// beta == 0 never reads C. Pointers are already offset to the tile's first row/column.
struct TileEpilogue {
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* row_bias = nullptr;
  const float* col_bias = nullptr;
  bool relu = false;
};

// Computes the MR x NR tile from packed panels Ap (MR x kc) and Bp (kc x NR) and writes
// its top-left m x n part (m <= MR, n <= NR) to C (row stride ldc).
using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C,
                             int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep);

// The skinny GEMM's micro-kernel (gemm_sup.cpp): as MicroKernel, but A is either a packed
// micro-panel (lda == 0) or MR whole rows of a row-major A read in place, lda apart (m == MR).
using SupKernel = void (*)(int64_t kc, const float* A, int64_t lda, const float* Bp, float* C,
                           int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep);

// The blocking of the configuration in use for one SIMD level (gemm_config.cpp): the entry's
// micro-kernel and the cache blocks derived from the machine's cache sizes.
struct GemmConfig {
  int64_t mr, nr;      // micro-tile (register block)
  int64_t mc, kc, nc;  // cache blocks; mc is a multiple of mr, nc of nr
  MicroKernel kernel;
  const char* name;
  SupKernel sup = nullptr;  // the skinny GEMM's kernel, where the entry has one
};

const GemmConfig& gemm_config(SimdLevel level);

// One row of the per-microarchitecture table (gemm_config.cpp): what a CPU needs to use it,
// its micro-kernel, and the fraction of L1d / L2 / L3 that KC, MC and NC are sized to fill.
struct GemmConfigEntry {
  const char* name;  // CONVFORGE_CPU_CONFIG=name forces it
  SimdLevel isa;
  int64_t mr, nr;
  MicroKernel kernel;
  double l1_frac, l2_frac, l3_frac;
  bool (*matches)(const MachineDescription&);
  const char* description;
  SupKernel sup = nullptr;  // gemm_sup.cpp's kernel (AVX2 only so far; elsewhere "sup" is "blocked")
};
const GemmConfigEntry* gemm_config_entries(int* count);
const GemmConfig& gemm_config_blocks(int index);  // entry `index`'s blocks on this machine
int gemm_config_in_use();                          // the entry the current SIMD level uses
bool gemm_config_available(int index);             // whether this CPU runs entry `index`
// Forces the entry `name` (and lowers the SIMD level to its ISA); "" or "default" returns to
// the machine's choice. std::invalid_argument for an unknown name or one the CPU cannot run.
void set_gemm_config(const std::string& name);

void microkernel_scalar_4x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             int64_t m, int64_t n, const TileEpilogue& ep);
void microkernel_avx2_6x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           int64_t m, int64_t n, const TileEpilogue& ep);
void microkernel_avx512_14x32(int64_t kc, const float* Ap, const float* Bp, float* C,
                              int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep);
void sup_kernel_avx2_6x16(int64_t kc, const float* A, int64_t lda, const float* Bp, float* C,
                          int64_t ldc, int64_t m, int64_t n, const TileEpilogue& ep);
void microkernel_neon_8x12(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           int64_t m, int64_t n, const TileEpilogue& ep);

// Packing sources. The driver asks for a block and says where to put it:
//  A: rows [i0, i0+mi) x columns [k0, k0+kc) of op(A) -> ceil(mi/mr) micro-panels at dst
//  B: rows [k0, k0+kc) x columns [j0, j0+nj) of op(B) -> ceil(nj/nr) micro-panels at dst
// Each micro-panel is kc*mr (resp. kc*nr) floats, zero-padded past mi (resp. nj).
struct PackA {
  void (*fn)(const void* ctx, int64_t i0, int64_t mi, int64_t k0, int64_t kc, int64_t mr,
             float* dst);
  const void* ctx;
};
struct PackB {
  void (*fn)(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nj, int64_t nr,
             float* dst);
  const void* ctx;
  // fn fills one micro-panel at a time, at a cost that does not depend on how many panels a
  // call asks for (a gather, or B^T's transposes; not B's row-by-row copy). Then, with one
  // ic block (M <= MC), the driver packs each panel just before its micro-kernels use it.
  bool by_panel = false;
};

// A plain row-major matrix (optionally transposed) as a packing source.
struct DenseMatrix {
  const float* data;
  int64_t ld;
  bool trans;
};
PackA pack_a_dense(const DenseMatrix* m);
// A matrix whose columns come in segments (one per image): element (i, j) is, with
// J = col0 + j, data[(J / seg_cols) * seg_stride + i * ld + J % seg_cols]. dy viewed as
// K x N*P*Q: the A operand of a batched convolution's weight gradient, the B operand of its
// input gradient through im2col (col0: the first column of the tile).
struct SegmentedMatrix {
  const float* data;
  int64_t ld, seg_cols, seg_stride;
  int64_t col0 = 0;
};
PackA pack_a_segmented(const SegmentedMatrix* m);
PackB pack_b_dense(const DenseMatrix* m);
PackB pack_b_segmented(const SegmentedMatrix* m);
// B = S^T, the segmented columns of S being B's rows: x viewed as C x N*P*Q, transposed, the B
// operand of a batched 1x1 layer's weight gradient (dW = dy x^T summed over the batch).
PackB pack_b_segmented_t(const SegmentedMatrix* m);

// Where the columns of C live. Plain GEMM: column j of row i is C[i*ldc + j]. A convolution
// over a batch computes one GEMM whose columns are (image, output position) pairs, and C's
// columns then come in segments of seg_cols (one image's P*Q), seg_stride floats apart:
// column j of row i is C[(j / seg_cols) * seg_stride + i*ldc + j % seg_cols]. A micro-tile
// that straddles two segments is computed into a local tile and scattered. col_bias is
// indexed by the flat column j.
struct ColumnSegments {
  int64_t seg_cols = 0;  // 0: one plain segment
  int64_t seg_stride = 0;
};

// The threads a GEMM of M x N x K multiply-adds wakes: all of them, except inside an OpenMP
// parallel region (a convolution threaded over images) and below 2^20 multiply-adds, where
// waking the team costs more than it saves (then 1).
int gemm_threads(int64_t M, int64_t N, int64_t K);

// C (M x N) = alpha * A * B + beta * C with epilogue, through the five loops.
// Runs serially when called inside an OpenMP parallel region or when the problem is small.
void gemm_blocked_run(int64_t M, int64_t N, int64_t K, float alpha, PackA a, PackB b, float beta,
                      float* C, int64_t ldc, const GemmEpilogue& epi,
                      const ColumnSegments& segs = {});

// The algos behind sgemm() (same arguments).
void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                     float* C, int64_t ldc, const GemmEpilogue& epi);
void sgemm_blocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc, const GemmEpilogue& epi);
// The skinny GEMM (gemm_sup.cpp): the small operand packed, the large one read in place.
void sgemm_sup(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const GemmEpilogue& epi);
// Whether sgemm_sup reads an operand in place for this call (else it runs sgemm_blocked).
bool sup_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K);
void sgemm_gemv(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, const GemmEpilogue& epi);

// A 64-byte aligned scratch buffer per thread and slot, grown when needed and reused,
// so that hot paths do not allocate. Distinct users take distinct slots, since a pointer
// from one slot stays valid only until the same slot is asked for more on this thread.
enum class ScratchSlot {
  GemmA = 0, GemmB = 1, ConvCol = 2, ConvPartial = 3, ConvPartial2 = 4, ConvWeight = 5,
  WinogradU = 6, Count = 7
};
float* thread_scratch(ScratchSlot slot, int64_t count);

}  // namespace convforge::cpu::gemm_detail
