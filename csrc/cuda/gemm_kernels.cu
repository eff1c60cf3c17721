// SGEMM on the GPU, as a numbered ladder (row-major, C = alpha*op(A)*op(B) + beta*C + epilogue):
//   step 1 "reference"        one thread per C element; threadIdx.x runs down a column of C,
//                             so a warp's loads of A are strided (uncoalesced). Read this first.
//   step 2 "coalesced"        the same loop with threadIdx.x along a row of C: a warp reads one
//                             row of B contiguously and broadcasts one element of A.
//   step 3 "smem_tiled"       32x32 tiles of op(A) and op(B) staged in shared memory; each
//                             element loaded from global memory is reused 32 times.
//   step 4 "register_blocked" 128x128x8 block tiles, 16-byte (float4) global loads, each thread
//                             computing an 8x8 block of C in registers from float4 shared loads.
//   step 5 "warp_tiled"       step 4 rearranged so that each warp owns a 64x32 (or 32x32) piece
//                             of the tile with conflict-free shared reads, and double-buffered:
//                             tile t+1 is fetched into registers while tile t is multiplied.
//                             A 64x128 variant fills the GPU when there are few 128x128 tiles.
//   "tf32"                    tensor cores through WMMA (m16n16k8, TF32 inputs, fp32 accumulate);
//                             ~1e-3 relative error, so it is opt-in and never picked by "auto".
// Every step is correct for any M, N, K (edges are bounds-checked, with zero fill in the tiles)
// and any transposes; float4 loads are used only where the address is 16-byte aligned.
#include <mma.h>

#include <stdexcept>

#include "cuda/cuda_common.cuh"
#include "cuda/gemm.h"

namespace convforge::cuda {

namespace {

struct EpiParams {
  float alpha, beta;
  const float* row_bias;
  const float* col_bias;
  bool relu;
};

// op(A)(i, k) and op(B)(k, j) of a row-major matrix with leading dimension ld.
template <bool TRANS>
__device__ __forceinline__ float at(const float* X, int64_t ld, int64_t r, int64_t c) {
  return TRANS ? X[c * ld + r] : X[r * ld + c];
}

__device__ __forceinline__ float epilogue(float acc, const EpiParams& e, const float* C,
                                          int64_t ldc, int64_t i, int64_t j) {
  float v = e.alpha * acc;
  if (e.beta != 0.f) v += e.beta * C[i * ldc + j];
  if (e.row_bias) v += e.row_bias[i];
  if (e.col_bias) v += e.col_bias[j];
  if (e.relu) v = fmaxf(v, 0.f);
  return v;
}

// ---- step 1: naive ------------------------------------------------------------------------
template <bool TA, bool TB>
__global__ void sgemm_naive(int M, int N, int K, const float* A, int64_t lda, const float* B,
                            int64_t ldb, float* C, int64_t ldc, EpiParams e) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // row
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;  // column
  if (i >= M || j >= N) return;
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) acc += at<TA>(A, lda, i, k) * at<TB>(B, ldb, k, j);
  C[i * ldc + j] = epilogue(acc, e, C, ldc, i, j);
}

// ---- step 2: coalesced --------------------------------------------------------------------
template <bool TA, bool TB>
__global__ void sgemm_coalesced(int M, int N, int K, const float* A, int64_t lda, const float* B,
                                int64_t ldb, float* C, int64_t ldc, EpiParams e) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // column
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;  // row
  if (i >= M || j >= N) return;
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) acc += at<TA>(A, lda, i, k) * at<TB>(B, ldb, k, j);
  C[i * ldc + j] = epilogue(acc, e, C, ldc, i, j);
}

// ---- step 3: shared-memory tiles ----------------------------------------------------------
constexpr int T3 = 32;

template <bool TA, bool TB>
__global__ void sgemm_smem(int M, int N, int K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float* C, int64_t ldc, EpiParams e) {
  __shared__ float As[T3][T3 + 1];  // As[i][k]; +1 pads away bank conflicts of transposed fills
  __shared__ float Bs[T3][T3 + 1];  // Bs[k][j]
  const int tx = threadIdx.x, ty = threadIdx.y;  // 32 x 32 threads
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * T3;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * T3;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += T3) {
    // Fill so that consecutive tx touch consecutive addresses in global memory.
    if (TA) {  // A is K x M: walk m with tx
      const int64_t m = row0 + tx, k = k0 + ty;
      As[tx][ty] = (m < M && k < K) ? A[k * lda + m] : 0.f;
    } else {
      const int64_t m = row0 + ty, k = k0 + tx;
      As[ty][tx] = (m < M && k < K) ? A[m * lda + k] : 0.f;
    }
    if (TB) {  // B is N x K: walk k with tx
      const int64_t n = col0 + ty, k = k0 + tx;
      Bs[tx][ty] = (n < N && k < K) ? B[n * ldb + k] : 0.f;
    } else {
      const int64_t n = col0 + tx, k = k0 + ty;
      Bs[ty][tx] = (n < N && k < K) ? B[k * ldb + n] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < T3; ++kk) acc += As[ty][kk] * Bs[kk][tx];
    __syncthreads();
  }
  const int64_t i = row0 + ty, j = col0 + tx;
  if (i < M && j < N) C[i * ldc + j] = epilogue(acc, e, C, ldc, i, j);
}

// ---- shared by steps 4 and 5: BM x 128 x 8 tiles, 256 threads, float4 fills ----------------
constexpr int BN = 128, BK = 8, NT = 256, PAD = 4;

// One float4 of op(A)'s tile (BM x BK), stored as As[k][m]. Thread v (< BM*2) owns vector v.
template <int BM, bool TA>
struct ATile {
  static constexpr int VECS = BM * BK / 4;
  float4 r;
  int kk, mm;
  __device__ __forceinline__ void load(const float* A, int64_t lda, int M, int K, int64_t m0,
                                       int64_t k0, int v, bool vec_ok) {
    if (TA) { kk = v / (BM / 4); mm = (v % (BM / 4)) * 4; }
    else { mm = v >> 1; kk = (v & 1) * 4; }
    const int64_t m = m0 + mm, k = k0 + kk;
    if (TA) {  // A is K x M: contiguous along m
      if (vec_ok && k < K && m + 3 < M) {
        r = __ldg(reinterpret_cast<const float4*>(A + k * lda + m));
      } else {
        r.x = (k < K && m + 0 < M) ? A[k * lda + m + 0] : 0.f;
        r.y = (k < K && m + 1 < M) ? A[k * lda + m + 1] : 0.f;
        r.z = (k < K && m + 2 < M) ? A[k * lda + m + 2] : 0.f;
        r.w = (k < K && m + 3 < M) ? A[k * lda + m + 3] : 0.f;
      }
    } else {  // contiguous along k
      if (vec_ok && m < M && k + 3 < K) {
        r = __ldg(reinterpret_cast<const float4*>(A + m * lda + k));
      } else {
        r.x = (m < M && k + 0 < K) ? A[m * lda + k + 0] : 0.f;
        r.y = (m < M && k + 1 < K) ? A[m * lda + k + 1] : 0.f;
        r.z = (m < M && k + 2 < K) ? A[m * lda + k + 2] : 0.f;
        r.w = (m < M && k + 3 < K) ? A[m * lda + k + 3] : 0.f;
      }
    }
  }
  __device__ __forceinline__ void store(float (*As)[BM + PAD]) const {
    if (TA) {
      *reinterpret_cast<float4*>(&As[kk][mm]) = r;
    } else {
      As[kk + 0][mm] = r.x; As[kk + 1][mm] = r.y; As[kk + 2][mm] = r.z; As[kk + 3][mm] = r.w;
    }
  }
};

// One float4 of op(B)'s tile (BK x BN), stored as Bs[k][n]. Thread v (< 256) owns vector v.
template <bool TB>
struct BTile {
  float4 r;
  int kk, nn;
  __device__ __forceinline__ void load(const float* B, int64_t ldb, int N, int K, int64_t n0,
                                       int64_t k0, int v, bool vec_ok) {
    if (TB) { nn = v >> 1; kk = (v & 1) * 4; }
    else { kk = v / (BN / 4); nn = (v % (BN / 4)) * 4; }
    const int64_t n = n0 + nn, k = k0 + kk;
    if (TB) {  // B is N x K: contiguous along k
      if (vec_ok && n < N && k + 3 < K) {
        r = __ldg(reinterpret_cast<const float4*>(B + n * ldb + k));
      } else {
        r.x = (n < N && k + 0 < K) ? B[n * ldb + k + 0] : 0.f;
        r.y = (n < N && k + 1 < K) ? B[n * ldb + k + 1] : 0.f;
        r.z = (n < N && k + 2 < K) ? B[n * ldb + k + 2] : 0.f;
        r.w = (n < N && k + 3 < K) ? B[n * ldb + k + 3] : 0.f;
      }
    } else {  // contiguous along n
      if (vec_ok && k < K && n + 3 < N) {
        r = __ldg(reinterpret_cast<const float4*>(B + k * ldb + n));
      } else {
        r.x = (k < K && n + 0 < N) ? B[k * ldb + n + 0] : 0.f;
        r.y = (k < K && n + 1 < N) ? B[k * ldb + n + 1] : 0.f;
        r.z = (k < K && n + 2 < N) ? B[k * ldb + n + 2] : 0.f;
        r.w = (k < K && n + 3 < N) ? B[k * ldb + n + 3] : 0.f;
      }
    }
  }
  __device__ __forceinline__ void store(float (*Bs)[BN + PAD]) const {
    if (TB) {
      Bs[kk + 0][nn] = r.x; Bs[kk + 1][nn] = r.y; Bs[kk + 2][nn] = r.z; Bs[kk + 3][nn] = r.w;
    } else {
      *reinterpret_cast<float4*>(&Bs[kk][nn]) = r;
    }
  }
};

// Writes 4 consecutive columns of row i (float4 when whole and aligned).
__device__ __forceinline__ void store_row4(float* C, int64_t ldc, int M, int N, int64_t i,
                                           int64_t j, const float* v, const EpiParams& e,
                                           bool c_vec_ok) {
  if (i >= M) return;
  if (c_vec_ok && j + 3 < N) {
    float4 o;
    o.x = epilogue(v[0], e, C, ldc, i, j + 0);
    o.y = epilogue(v[1], e, C, ldc, i, j + 1);
    o.z = epilogue(v[2], e, C, ldc, i, j + 2);
    o.w = epilogue(v[3], e, C, ldc, i, j + 3);
    *reinterpret_cast<float4*>(C + i * ldc + j) = o;
  } else {
#pragma unroll
    for (int t = 0; t < 4; ++t)
      if (j + t < N) C[i * ldc + j + t] = epilogue(v[t], e, C, ldc, i, j + t);
  }
}

// ---- step 4: 2D register blocking -----------------------------------------------------------
// 16 x 16 threads; thread (ty, tx) owns rows ty*8..ty*8+7 and columns tx*8..tx*8+7.
template <bool TA, bool TB>
__global__ void __launch_bounds__(NT) sgemm_regblock(int M, int N, int K, const float* A,
                                                     int64_t lda, const float* B, int64_t ldb,
                                                     float* C, int64_t ldc, EpiParams e,
                                                     bool a_vec, bool b_vec, bool c_vec) {
  constexpr int BM = 128;
  __shared__ __align__(16) float As[BK][BM + PAD];
  __shared__ __align__(16) float Bs[BK][BN + PAD];
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  float acc[8][8] = {};
  ATile<BM, TA> a;
  BTile<TB> b;
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    a.load(A, lda, M, K, m0, k0, tid, a_vec);  // BM*BK/4 == 256: one vector per thread
    b.load(B, ldb, N, K, n0, k0, tid, b_vec);
    a.store(As);
    b.store(Bs);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float ra[8], rb[8];
      *reinterpret_cast<float4*>(&ra[0]) = *reinterpret_cast<const float4*>(&As[kk][ty * 8]);
      *reinterpret_cast<float4*>(&ra[4]) = *reinterpret_cast<const float4*>(&As[kk][ty * 8 + 4]);
      *reinterpret_cast<float4*>(&rb[0]) = *reinterpret_cast<const float4*>(&Bs[kk][tx * 8]);
      *reinterpret_cast<float4*>(&rb[4]) = *reinterpret_cast<const float4*>(&Bs[kk][tx * 8 + 4]);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t row = m0 + ty * 8 + i;
    store_row4(C, ldc, M, N, row, n0 + tx * 8, &acc[i][0], e, c_vec);
    store_row4(C, ldc, M, N, row, n0 + tx * 8 + 4, &acc[i][4], e, c_vec);
  }
}

// ---- step 5: warp tiling, double buffering ---------------------------------------------------
// 8 warps as 2 (M) x 4 (N); warp tile (BM/2) x 32; lanes as 8 (M) x 4 (N); each thread holds
// (BM/64) x 2 sub-blocks of 4x4, 32 rows / 16 columns apart, so that the lanes of a warp read
// 128 contiguous bytes of As and 64 of Bs per step (no bank conflicts).
template <int BM, bool TA, bool TB>
__global__ void __launch_bounds__(NT, 2) sgemm_warptile(int M, int N, int K, const float* A,
                                                     int64_t lda, const float* B, int64_t ldb,
                                                     float* C, int64_t ldc, EpiParams e,
                                                     bool a_vec, bool b_vec, bool c_vec) {
  constexpr int WM = BM / 2;
  constexpr int SUBM = WM / 32;  // 4x4 sub-blocks per thread along M (2 for BM=128, 1 for 64)
  constexpr int TM = SUBM * 4;
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int lane_m = lane / 4, lane_n = lane % 4;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const bool a_loader = tid < ATile<BM, TA>::VECS;

  float acc[TM][8] = {};
  ATile<BM, TA> a;
  BTile<TB> b;
  const int64_t ntiles = (K + BK - 1) / BK;
  if (a_loader) a.load(A, lda, M, K, m0, 0, tid, a_vec);
  b.load(B, ldb, N, K, n0, 0, tid, b_vec);
  if (a_loader) a.store(As[0]);
  b.store(Bs[0]);
  __syncthreads();

  for (int64_t t = 0; t < ntiles; ++t) {
    const int cur = static_cast<int>(t & 1);
    const bool more = t + 1 < ntiles;
    if (more) {  // issue the next tile's global loads before this tile's math
      if (a_loader) a.load(A, lda, M, K, m0, (t + 1) * BK, tid, a_vec);
      b.load(B, ldb, N, K, n0, (t + 1) * BK, tid, b_vec);
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float ra[TM], rb[8];
#pragma unroll
      for (int s = 0; s < SUBM; ++s)
        *reinterpret_cast<float4*>(&ra[s * 4]) =
            *reinterpret_cast<const float4*>(&As[cur][kk][warp_m * WM + s * 32 + lane_m * 4]);
#pragma unroll
      for (int s = 0; s < 2; ++s)
        *reinterpret_cast<float4*>(&rb[s * 4]) =
            *reinterpret_cast<const float4*>(&Bs[cur][kk][warp_n * 32 + s * 16 + lane_n * 4]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] += ra[i] * rb[j];
    }
    if (more) {  // the other buffer was last read before the previous barrier
      if (a_loader) a.store(As[cur ^ 1]);
      b.store(Bs[cur ^ 1]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int s = 0; s < SUBM; ++s)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t row = m0 + warp_m * WM + s * 32 + lane_m * 4 + r;
#pragma unroll
      for (int sn = 0; sn < 2; ++sn)
        store_row4(C, ldc, M, N, row, n0 + warp_n * 32 + sn * 16 + lane_n * 4,
                   &acc[s * 4 + r][sn * 4], e, c_vec);
    }
}

// ---- tf32 tensor cores (WMMA) ------------------------------------------------------------
namespace wmma = nvcuda::wmma;
constexpr int TBM = 128, TBN = 128, TBK = 16, TAPAD = 4, TBPAD = 4;

template <bool TA, bool TB>
__global__ void __launch_bounds__(NT) sgemm_tf32(int M, int N, int K, const float* A, int64_t lda,
                                                 const float* B, int64_t ldb, float* C,
                                                 int64_t ldc, EpiParams e) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  __shared__ __align__(128) float As[TBM][TBK + TAPAD];  // row-major (m, k), ldm 20
  __shared__ __align__(128) float Bs[TBK][TBN + TBPAD];  // row-major (k, n), ldm 132
  __shared__ __align__(128) float stage[8][16 * 16];
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;  // warp tile 64 x 32: 4 x 2 fragments
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * TBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * TBN;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int64_t k0 = 0; k0 < K; k0 += TBK) {
#pragma unroll
    for (int q = 0; q < (TBM * TBK) / NT; ++q) {
      const int el = tid + q * NT;
      int mm, kk;
      if (TA) { kk = el / TBM; mm = el % TBM; } else { mm = el / TBK; kk = el % TBK; }
      const int64_t m = m0 + mm, k = k0 + kk;
      const float v = (m < M && k < K) ? at<TA>(A, lda, m, k) : 0.f;
      As[mm][kk] = wmma::__float_to_tf32(v);
    }
#pragma unroll
    for (int q = 0; q < (TBK * TBN) / NT; ++q) {
      const int el = tid + q * NT;
      int nn, kk;
      if (TB) { nn = el / TBK; kk = el % TBK; } else { kk = el / TBN; nn = el % TBN; }
      const int64_t n = n0 + nn, k = k0 + kk;
      const float v = (n < N && k < K) ? at<TB>(B, ldb, k, n) : 0.f;
      Bs[kk][nn] = wmma::__float_to_tf32(v);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TBK; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        wmma::load_matrix_sync(fa[i], &As[warp_m * 64 + i * 16][kk], TBK + TAPAD);
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(fb[j], &Bs[kk][warp_n * 32 + j * 16], TBN + TBPAD);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  // Through a per-warp 16x16 staging tile, so that the epilogue sees (row, column) pairs.
  float* st = stage[warp];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(st, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int el = lane; el < 256; el += 32) {
        const int64_t row = m0 + warp_m * 64 + i * 16 + el / 16;
        const int64_t col = n0 + warp_n * 32 + j * 16 + el % 16;
        if (row < M && col < N) C[row * ldc + col] = epilogue(st[el], e, C, ldc, row, col);
      }
      __syncwarp();
    }
#else
  // Built for an architecture without TF32 tensor cores: the launcher never gets here
  // (it checks the device's capability first).
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0) __trap();
#endif
}

// ---- launchers ------------------------------------------------------------------------------

bool vec_ok(const float* p, int64_t ld) {
  return (reinterpret_cast<uintptr_t>(p) % 16 == 0) && (ld % 4 == 0);
}

// Launches kern over row chunks so that gridDim.y stays within its 65535 limit.
template <typename Launch>
void over_row_chunks(int64_t M, int64_t rows_per_block, Launch launch) {
  const int64_t max_rows = 65535 * rows_per_block;
  for (int64_t r0 = 0; r0 < M; r0 += max_rows) launch(r0, std::min(max_rows, M - r0));
}

template <bool TA, bool TB>
void launch_sgemm(int step, int M, int N, int K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float* C, int64_t ldc, const EpiParams& e, cudaStream_t s) {
  const char* op = "gemm";
  // Row offset r0 moves A (by rows of op(A)), C, and the row bias.
  auto shift = [&](int64_t r0, const float*& a, float*& c, EpiParams& ep) {
    a = TA ? A + r0 : A + r0 * lda;
    c = C + r0 * ldc;
    ep = e;
    if (ep.row_bias) ep.row_bias += r0;
  };
  switch (step) {
    case 1:
      // threadIdx.x along rows: grid.x takes M (2^31 blocks), grid.y the columns.
      for (int64_t c0 = 0; c0 < N; c0 += 65535LL * 16) {
        const int64_t nc = std::min<int64_t>(65535LL * 16, N - c0);
        EpiParams ep = e;
        if (ep.col_bias) ep.col_bias += c0;
        const float* b = TB ? B + c0 * ldb : B + c0;
        dim3 block(16, 16), grid(static_cast<unsigned>(ceil_div(M, 16)),
                                 static_cast<unsigned>(ceil_div(nc, 16)));
        sgemm_naive<TA, TB><<<grid, block, 0, s>>>(M, static_cast<int>(nc), K, A, lda, b, ldb,
                                                   C + c0, ldc, ep);
        check_launch(op);
      }
      break;
    case 2:
      over_row_chunks(M, 16, [&](int64_t r0, int64_t mr) {
        const float* a; float* c; EpiParams ep;
        shift(r0, a, c, ep);
        dim3 block(16, 16), grid(static_cast<unsigned>(ceil_div(N, 16)),
                                 static_cast<unsigned>(ceil_div(mr, 16)));
        sgemm_coalesced<TA, TB><<<grid, block, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B, ldb,
                                                       c, ldc, ep);
        check_launch(op);
      });
      break;
    case 3:
      over_row_chunks(M, T3, [&](int64_t r0, int64_t mr) {
        const float* a; float* c; EpiParams ep;
        shift(r0, a, c, ep);
        dim3 block(T3, T3), grid(static_cast<unsigned>(ceil_div(N, T3)),
                                 static_cast<unsigned>(ceil_div(mr, T3)));
        sgemm_smem<TA, TB><<<grid, block, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B, ldb, c,
                                                  ldc, ep);
        check_launch(op);
      });
      break;
    case 4:
      over_row_chunks(M, 128, [&](int64_t r0, int64_t mr) {
        const float* a; float* c; EpiParams ep;
        shift(r0, a, c, ep);
        dim3 grid(static_cast<unsigned>(ceil_div(N, BN)), static_cast<unsigned>(ceil_div(mr, 128)));
        sgemm_regblock<TA, TB><<<grid, NT, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B, ldb, c,
                                                   ldc, ep, vec_ok(a, lda), vec_ok(B, ldb),
                                                   vec_ok(c, ldc));
        check_launch(op);
      });
      break;
    case 5:
    case 50: {  // 50: the 64-row variant (chosen by auto when 128-row tiles would idle SMs)
      const int bm = step == 50 ? 64 : 128;
      over_row_chunks(M, bm, [&](int64_t r0, int64_t mr) {
        const float* a; float* c; EpiParams ep;
        shift(r0, a, c, ep);
        dim3 grid(static_cast<unsigned>(ceil_div(N, BN)), static_cast<unsigned>(ceil_div(mr, bm)));
        if (bm == 64)
          sgemm_warptile<64, TA, TB><<<grid, NT, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B,
                                                         ldb, c, ldc, ep, vec_ok(a, lda),
                                                         vec_ok(B, ldb), vec_ok(c, ldc));
        else
          sgemm_warptile<128, TA, TB><<<grid, NT, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B,
                                                          ldb, c, ldc, ep, vec_ok(a, lda),
                                                          vec_ok(B, ldb), vec_ok(c, ldc));
        check_launch(op);
      });
      break;
    }
    case 6:
      over_row_chunks(M, TBM, [&](int64_t r0, int64_t mr) {
        const float* a; float* c; EpiParams ep;
        shift(r0, a, c, ep);
        dim3 grid(static_cast<unsigned>(ceil_div(N, TBN)), static_cast<unsigned>(ceil_div(mr, TBM)));
        sgemm_tf32<TA, TB><<<grid, NT, 0, s>>>(static_cast<int>(mr), N, K, a, lda, B, ldb, c,
                                               ldc, ep);
        check_launch(op);
      });
      break;
    default:
      throw std::logic_error("gemm: bad step");
  }
}

}  // namespace

std::vector<KernelInfo> gemm_algos() {
  const std::string src = "cuda/gemm_kernels.cu";
  return {
      {"reference", "reference", "step 1: one thread per element of C, plain loop over k", src},
      {"coalesced", "teaching", "step 2: threads of a warp along a row of C (coalesced B loads)", src},
      {"smem_tiled", "teaching", "step 3: 32x32 tiles staged in shared memory", src},
      {"register_blocked", "teaching",
       "step 4: 128x128x8 tiles, float4 loads, 8x8 outputs per thread in registers", src},
      {"warp_tiled", "production",
       "step 5: warp tiles with conflict-free shared reads and double buffering (auto)", src},
      {"blocked", "production", "the CPU's name for the production GEMM: warp_tiled here", src},
      {"tf32", "production",
       "tensor cores via WMMA with TF32 inputs (opt-in; ~1e-3 relative error)", src},
      {"auto", "production", "warp_tiled (64- or 128-row tiles by size); never tf32", src},
  };
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& ep, const std::string& algo) {
  int step = 0;
  if (algo == "reference") step = 1;
  else if (algo == "coalesced") step = 2;
  else if (algo == "smem_tiled") step = 3;
  else if (algo == "register_blocked") step = 4;
  else if (algo == "warp_tiled" || algo == "blocked" || algo == "auto") step = 5;
  else if (algo == "tf32") step = 6;
  else
    throw std::invalid_argument("gemm: unknown algo '" + algo +
                                "' on cuda; choose one of reference, coalesced, smem_tiled, "
                                "register_blocked, warp_tiled (alias blocked), tf32, auto");
  if (M < 0 || N < 0 || K < 0) throw std::invalid_argument("gemm: negative size");
  const int64_t int_max = 2147483647;
  if (M > int_max || N > int_max || K > int_max)
    throw std::invalid_argument("gemm: each of M, N, K must be below 2^31 on cuda");
  if (M == 0 || N == 0) return;
  const int dev = current_device();
  if (step == 6 && device_props(dev).major < 8)
    throw std::invalid_argument("gemm: algo 'tf32' needs a GPU of compute capability 8.0 or newer");
  if (step == 5) {
    // Fewer 128-row tiles than SMs leaves most of the GPU idle: halve the tile height.
    const int64_t tiles = ceil_div(M, 128) * ceil_div(N, BN);
    if (tiles < device_props(dev).sm_count) step = 50;
  }
  cudaStream_t s = current_stream();
  if (K == 0) {
    // op(A)*op(B) is zero: the epilogue alone (any step computes it correctly with K = 0).
    step = 2;
  }
  EpiParams e{alpha, beta, ep.row_bias, ep.col_bias, ep.relu};
  const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
  if (!trans_a && !trans_b) launch_sgemm<false, false>(step, m, n, k, A, lda, B, ldb, C, ldc, e, s);
  else if (!trans_a && trans_b) launch_sgemm<false, true>(step, m, n, k, A, lda, B, ldb, C, ldc, e, s);
  else if (trans_a && !trans_b) launch_sgemm<true, false>(step, m, n, k, A, lda, B, ldb, C, ldc, e, s);
  else launch_sgemm<true, true>(step, m, n, k, A, lda, B, ldb, C, ldc, e, s);
}

}  // namespace convforge::cuda
