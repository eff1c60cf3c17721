// Activations (forward/backward), softmax cross-entropy, column sums and strided copies.
// Activations are memory-bound: grid-stride loops over float4 when every pointer is 16-byte
// aligned (the allocator's blocks always are), a scalar loop for the tail or otherwise.
// Cross-entropy uses one block per row (max, sum of exponentials, both block reductions);
// the mean over rows is a single block summing the per-row losses in a fixed order.
#include <stdexcept>
#include <string>

#include "cuda/cuda_common.cuh"
#include "cuda/elementwise.h"

namespace convforge::cuda {

namespace {

struct Relu { __device__ float operator()(float x) const { return x > 0.f ? x : 0.f; } };
struct Tanh { __device__ float operator()(float x) const { return tanhf(x); } };
struct Sigmoid { __device__ float operator()(float x) const { return 1.f / (1.f + expf(-x)); } };
// Backward ops take (dy, saved) where saved is x for relu and y for tanh/sigmoid.
struct ReluBwd { __device__ float operator()(float d, float x) const { return x > 0.f ? d : 0.f; } };
struct TanhBwd { __device__ float operator()(float d, float y) const { return d * (1.f - y * y); } };
struct SigmoidBwd { __device__ float operator()(float d, float y) const { return d * y * (1.f - y); } };

template <class F>
__global__ void unary_kernel(int64_t n, const float* x, float* y, bool vec, F f) {
  int64_t start = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (int64_t i = global_thread_id(); i < n4; i += grid_stride()) {
      float4 v = x4[i];
      v.x = f(v.x); v.y = f(v.y); v.z = f(v.z); v.w = f(v.w);
      y4[i] = v;
    }
    start = n4 * 4;
  }
  for (int64_t i = start + global_thread_id(); i < n; i += grid_stride()) y[i] = f(x[i]);
}

template <class F>
__global__ void binary_kernel(int64_t n, const float* a, const float* b, float* y, bool vec, F f) {
  int64_t start = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (int64_t i = global_thread_id(); i < n4; i += grid_stride()) {
      const float4 u = a4[i], v = b4[i];
      float4 o;
      o.x = f(u.x, v.x); o.y = f(u.y, v.y); o.z = f(u.z, v.z); o.w = f(u.w, v.w);
      y4[i] = o;
    }
    start = n4 * 4;
  }
  for (int64_t i = start + global_thread_id(); i < n; i += grid_stride()) y[i] = f(a[i], b[i]);
}

bool al16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class F>
void unary(const char* op, int64_t n, const float* x, float* y, F f) {
  if (n <= 0) return;
  const bool vec = al16(x) && al16(y);
  unary_kernel<<<grid_for(vec ? n / 4 + 1 : n, 256, 16), 256, 0, current_stream()>>>(n, x, y, vec, f);
  check_launch(op);
}

template <class F>
void binary(const char* op, int64_t n, const float* a, const float* b, float* y, F f) {
  if (n <= 0) return;
  const bool vec = al16(a) && al16(b) && al16(y);
  binary_kernel<<<grid_for(vec ? n / 4 + 1 : n, 256, 16), 256, 0, current_stream()>>>(n, a, b, y, vec, f);
  check_launch(op);
}

constexpr int CE_THREADS = 256;

// Per row: max, log-sum-exp; loss[row] = lse - logit[label]; or, with dlogits, the gradient.
__global__ void cross_entropy_rows(int64_t classes, const float* logits, const int64_t* labels,
                                   float* loss, float* dlogits, float inv_n, int* bad) {
  __shared__ float scratch[33];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * classes;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) m = fmaxf(m, z[j]);
  m = block_max(m, scratch);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) s += expf(z[j] - m);
  s = block_sum(s, scratch);
  const int64_t label = labels[row];
  const bool ok = label >= 0 && label < classes;
  if (!ok && threadIdx.x == 0) *bad = 1;
  if (loss && threadIdx.x == 0) loss[row] = ok ? logf(s) + m - z[label] : 0.f;
  if (dlogits) {
    float* d = dlogits + row * classes;
    const float inv_s = 1.f / s;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x)
      d[j] = (expf(z[j] - m) * inv_s - (j == label ? 1.f : 0.f)) * inv_n;
  }
}

__global__ void mean_kernel(int64_t n, const float* v, float* out) {
  __shared__ float scratch[33];
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc / static_cast<float>(n);
}

// Block (32, 8): 32 columns, 8 row phases; shared memory adds the phases in order.
__global__ void sum_rows_kernel(int64_t rows, int64_t cols, const float* a, float* out) {
  __shared__ float part[8][33];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float acc = 0.f;
  if (j < cols)
    for (int64_t i = threadIdx.y; i < rows; i += 8) acc += a[i * cols + j];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < 8; ++t) s += part[t][threadIdx.x];
    out[j] = s;
  }
}

struct StridedView {
  int ndim;
  int64_t shape[8];
  int64_t strides[8];
};

template <typename T>
__global__ void strided_copy_kernel(StridedView v, int64_t total, const T* src, T* dst) {
  for (int64_t idx = global_thread_id(); idx < total; idx += grid_stride()) {
    int64_t rem = idx, off = 0;
    for (int d = v.ndim - 1; d >= 0; --d) {
      const int64_t i = rem % v.shape[d];
      rem /= v.shape[d];
      off += i * v.strides[d];
    }
    dst[idx] = src[off];
  }
}

void check_labels(int* flag_dev, const char* op) {
  cudaStream_t s = current_stream();
  int bad = 0;
  CUDA_CHECK(op, cudaMemcpyAsync(&bad, flag_dev, sizeof(int), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(op, cudaStreamSynchronize(s));
  if (bad) throw std::invalid_argument(std::string(op) + ": labels must be in [0, classes)");
}

}  // namespace

void relu_forward(int64_t n, const float* x, float* y) { unary("relu_forward", n, x, y, Relu{}); }
void tanh_forward(int64_t n, const float* x, float* y) { unary("tanh_forward", n, x, y, Tanh{}); }
void sigmoid_forward(int64_t n, const float* x, float* y) {
  unary("sigmoid_forward", n, x, y, Sigmoid{});
}
void relu_backward(int64_t n, const float* dy, const float* x, float* dx) {
  binary("relu_backward", n, dy, x, dx, ReluBwd{});
}
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx) {
  binary("tanh_backward", n, dy, y, dx, TanhBwd{});
}
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx) {
  binary("sigmoid_backward", n, dy, y, dx, SigmoidBwd{});
}

float cross_entropy_forward(int64_t N, int64_t classes, const float* logits, const int64_t* labels) {
  const char* op = "cross_entropy_forward";
  if (N == 0) return __builtin_nanf("");
  if (N > 2147483647LL) throw std::invalid_argument(std::string(op) + ": batch too large");
  cudaStream_t s = current_stream();
  Workspace ws(static_cast<size_t>(N + 2) * sizeof(float));
  float* loss = ws.as<float>();
  float* mean = loss + N;
  int* flag = reinterpret_cast<int*>(loss + N + 1);
  CUDA_CHECK(op, cudaMemsetAsync(flag, 0, sizeof(int), s));
  cross_entropy_rows<<<static_cast<unsigned>(N), CE_THREADS, 0, s>>>(classes, logits, labels, loss,
                                                                    nullptr, 1.f, flag);
  check_launch(op);
  mean_kernel<<<1, 1024, 0, s>>>(N, loss, mean);
  check_launch(op);
  float result[2] = {0.f, 0.f};  // mean, flag bits
  CUDA_CHECK(op, cudaMemcpyAsync(result, mean, 2 * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(op, cudaStreamSynchronize(s));
  int bad = 0;
  static_assert(sizeof(int) == sizeof(float), "flag shares a float slot");
  __builtin_memcpy(&bad, &result[1], sizeof(int));
  if (bad) throw std::invalid_argument(std::string(op) + ": labels must be in [0, classes)");
  return result[0];
}

void cross_entropy_backward(int64_t N, int64_t classes, const float* logits, const int64_t* labels,
                            float* dlogits) {
  const char* op = "cross_entropy_backward";
  if (N == 0) return;
  if (N > 2147483647LL) throw std::invalid_argument(std::string(op) + ": batch too large");
  cudaStream_t s = current_stream();
  Workspace flag(sizeof(int));
  CUDA_CHECK(op, cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), s));
  cross_entropy_rows<<<static_cast<unsigned>(N), CE_THREADS, 0, s>>>(
      classes, logits, labels, nullptr, dlogits, 1.f / static_cast<float>(N), flag.as<int>());
  check_launch(op);
  check_labels(flag.as<int>(), op);
}

void sum_rows(int64_t rows, int64_t cols, const float* a, float* out) {
  const char* op = "sum_rows";
  if (cols == 0) return;
  const int64_t blocks = ceil_div(cols, 32);
  if (blocks > 2147483647LL) throw std::invalid_argument("sum_rows: too many columns");
  sum_rows_kernel<<<static_cast<unsigned>(blocks), dim3(32, 8), 0, current_stream()>>>(rows, cols, a, out);
  check_launch(op);
}

void strided_copy(int ndim, const int64_t* shape, const int64_t* strides, int itemsize,
                  const void* src, void* dst) {
  const char* op = "strided_copy";
  if (ndim < 0 || ndim > 8) throw std::invalid_argument("strided_copy: at most 8 dimensions");
  StridedView v{};
  v.ndim = ndim;
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
    total *= shape[d];
  }
  if (total == 0) return;
  cudaStream_t s = current_stream();
  const unsigned grid = grid_for(total, 256);
  switch (itemsize) {
    case 1: strided_copy_kernel<<<grid, 256, 0, s>>>(v, total, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst)); break;
    case 2: strided_copy_kernel<<<grid, 256, 0, s>>>(v, total, static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst)); break;
    case 4: strided_copy_kernel<<<grid, 256, 0, s>>>(v, total, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst)); break;
    case 8: strided_copy_kernel<<<grid, 256, 0, s>>>(v, total, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst)); break;
    default: throw std::invalid_argument("strided_copy: itemsize must be 1, 2, 4 or 8");
  }
  check_launch(op);
}

}  // namespace convforge::cuda
