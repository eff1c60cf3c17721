// The geometry of a 2-D convolution or pooling window, in one place.
//
// Every kernel (CPU and CUDA) and the Python layer take their sizes from the
// structs built here, so the output-size rule and the validity checks exist once.
//
// Letters as in cuDNN/CUTLASS:
//   N batch, C input channels, H x W input, K output channels, R x S filter,
//   P x Q output. Stride, padding and dilation are given per axis; padding is
//   given per side (top/bottom, left/right) so that padding="same" with an even
//   effective kernel can put the extra row/column after the input, as PyTorch does.
//
// Layouts: x is N x C x H x W, weight is K x (C/groups) x R x S, y is N x K x P x Q,
// all contiguous row-major float32.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define CF_HOST_DEVICE __host__ __device__
#else
#define CF_HOST_DEVICE
#endif

namespace convforge {

// floor((n + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1.
// May be <= 0 for a window that does not fit; callers validate.
CF_HOST_DEVICE inline int64_t conv_output_size(int64_t n, int64_t kernel, int64_t stride,
                                               int64_t pad_before, int64_t pad_after,
                                               int64_t dilation) {
  const int64_t span = n + pad_before + pad_after - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  return span / stride + 1;
}

// Pooling's rule: the conv rule, or its ceiling in ceil_mode, where the last window
// must still start inside the input or its left padding (ATen's pooling_output_shape, its
// division rounding towards minus infinity: in ceil_mode a window wider than the padded
// input still gives one output when it starts inside it, e.g. n = 1, kernel = stride = 2).
// 0 where nothing fits.
CF_HOST_DEVICE inline int64_t pool_output_size(int64_t n, int64_t kernel, int64_t stride,
                                               int64_t pad, int64_t dilation, bool ceil_mode) {
  const int64_t num = n + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  if (num < 0) return 0;  // floor(num / stride) + 1 <= 0
  int64_t out = num / stride + 1;
  if (ceil_mode && (out - 1) * stride >= n + pad) --out;
  return out;
}

// Adaptive pooling's bins (torch's rule): output i of out along an axis of n inputs averages
// inputs [adaptive_bin_start, adaptive_bin_end) = [floor(i*n/out), ceil((i+1)*n/out)). Bins
// overlap when out does not divide n and repeat inputs when out > n (upsampling); each is
// non-empty. The same rule with n and out swapped gives, for input j, the outputs whose bins
// hold it: [adaptive_bin_start(j, out, n), adaptive_bin_end(j, out, n)) (used by backward).
CF_HOST_DEVICE inline int64_t adaptive_bin_start(int64_t i, int64_t n, int64_t out) {
  return (i * n) / out;
}
CF_HOST_DEVICE inline int64_t adaptive_bin_end(int64_t i, int64_t n, int64_t out) {
  return ((i + 1) * n + out - 1) / out;
}

struct Conv2dGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // filters (each K x C/groups x R x S)
  int64_t groups = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t P = 0, Q = 0;                // output

  CF_HOST_DEVICE int64_t C_per_group() const { return C / groups; }
  CF_HOST_DEVICE int64_t K_per_group() const { return K / groups; }
  CF_HOST_DEVICE int64_t x_size() const { return N * C * H * W; }
  CF_HOST_DEVICE int64_t w_size() const { return K * (C / groups) * R * S; }
  CF_HOST_DEVICE int64_t y_size() const { return N * K * P * Q; }
  // Multiply-adds of the forward pass (x2 for FLOPs).
  CF_HOST_DEVICE int64_t macs() const { return N * K * P * Q * (C / groups) * R * S; }
};

struct Pool2dGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t R = 0, S = 0;  // window
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;
  int64_t P = 0, Q = 0;

  CF_HOST_DEVICE int64_t x_size() const { return N * C * H * W; }
  CF_HOST_DEVICE int64_t y_size() const { return N * C * P * Q; }
};

// Adaptive average pooling: N x C x H x W in, N x C x P x Q out, bins as above.
struct AdaptivePool2dGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t P = 0, Q = 0;

  CF_HOST_DEVICE int64_t x_size() const { return N * C * H * W; }
  CF_HOST_DEVICE int64_t y_size() const { return N * C * P * Q; }
  CF_HOST_DEVICE bool global() const { return P == 1 && Q == 1; }
};

namespace detail {

inline std::string pair_str(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// Product of sizes, throwing when it would overflow 64-bit index arithmetic
// (with headroom for byte offsets: the count times sizeof(float) must fit too).
inline int64_t checked_product(std::initializer_list<int64_t> dims, const char* what) {
  const int64_t limit = std::numeric_limits<int64_t>::max() / 8;
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d != 0 && p > limit / d)
      throw std::overflow_error(std::string(what) +
                                " has more elements than 64-bit index arithmetic can address");
    p *= d;
  }
  return p;
}

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline std::string shape_str(int64_t N, int64_t C, int64_t H, int64_t W) {
  return "(" + std::to_string(N) + ", " + std::to_string(C) + ", " + std::to_string(H) + ", " +
         std::to_string(W) + ")";
}

// The input rule shared by every op: a batch of N >= 0 images with positive C, H, W.
inline void require_input(int64_t N, int64_t C, int64_t H, int64_t W, const std::string& o) {
  require(N >= 0, o + "input batch size must be >= 0, got input shape " + shape_str(N, C, H, W));
  require(C > 0 && H > 0 && W > 0, o + "input channels, height and width must be positive, got "
                                       "input shape " + shape_str(N, C, H, W));
}

}  // namespace detail

// Builds and validates a convolution's geometry. Throws std::invalid_argument
// (ValueError in Python) naming the argument and the rule broken, and
// std::overflow_error when the element counts would not fit 64-bit indexing.
inline Conv2dGeometry make_conv2d_geometry(int64_t N, int64_t C, int64_t H, int64_t W,
                                           int64_t K, int64_t C_w, int64_t R, int64_t S,
                                           int64_t stride_h, int64_t stride_w,
                                           int64_t pad_top, int64_t pad_bottom,
                                           int64_t pad_left, int64_t pad_right,
                                           int64_t dilation_h, int64_t dilation_w,
                                           int64_t groups, const char* op = "conv2d") {
  using detail::pair_str;
  using detail::require;
  const std::string o = std::string(op) + ": ";
  const std::string in_shape = detail::shape_str(N, C, H, W);
  const std::string w_shape = detail::shape_str(K, C_w, R, S);
  detail::require_input(N, C, H, W, o);
  require(K > 0 && C_w > 0 && R > 0 && S > 0,
          o + "weight sizes must be positive, got weight shape " + w_shape);
  require(groups > 0, o + "groups must be positive, got " + std::to_string(groups));
  require(stride_h > 0 && stride_w > 0,
          o + "stride must be positive, got " + pair_str(stride_h, stride_w));
  require(dilation_h > 0 && dilation_w > 0,
          o + "dilation must be positive, got " + pair_str(dilation_h, dilation_w));
  require(pad_top >= 0 && pad_bottom >= 0 && pad_left >= 0 && pad_right >= 0,
          o + "padding must be non-negative, got (top, bottom, left, right) = (" +
              std::to_string(pad_top) + ", " + std::to_string(pad_bottom) + ", " +
              std::to_string(pad_left) + ", " + std::to_string(pad_right) + ")");
  require(C % groups == 0, o + "input channels (" + std::to_string(C) +
                               ") must be divisible by groups (" + std::to_string(groups) +
                               "), input shape " + in_shape);
  require(K % groups == 0, o + "weight's output channels (" + std::to_string(K) +
                               ") must be divisible by groups (" + std::to_string(groups) +
                               "), weight shape " + w_shape);
  require(C_w * groups == C,
          o + "expected weight to have " + std::to_string(C / groups) +
              " input channels (input channels " + std::to_string(C) + " / groups " +
              std::to_string(groups) + "), got weight shape " + w_shape + " for input shape " +
              in_shape);
  const int64_t eff_r = dilation_h * (R - 1) + 1, eff_s = dilation_w * (S - 1) + 1;
  const int64_t padded_h = H + pad_top + pad_bottom, padded_w = W + pad_left + pad_right;
  require(eff_r <= padded_h && eff_s <= padded_w,
          o + "kernel size " + pair_str(eff_r, eff_s) +
              (dilation_h > 1 || dilation_w > 1 ? " (after dilation)" : "") +
              " is larger than the padded input " + pair_str(padded_h, padded_w) +
              "; input shape " + in_shape + ", weight shape " + w_shape);

  Conv2dGeometry g;
  g.N = N; g.C = C; g.H = H; g.W = W;
  g.K = K; g.R = R; g.S = S; g.groups = groups;
  g.stride_h = stride_h; g.stride_w = stride_w;
  g.pad_top = pad_top; g.pad_bottom = pad_bottom; g.pad_left = pad_left; g.pad_right = pad_right;
  g.dilation_h = dilation_h; g.dilation_w = dilation_w;
  g.P = conv_output_size(H, R, stride_h, pad_top, pad_bottom, dilation_h);
  g.Q = conv_output_size(W, S, stride_w, pad_left, pad_right, dilation_w);
  detail::checked_product({N, C, H, W}, (o + "input").c_str());
  detail::checked_product({K, C_w, R, S}, (o + "weight").c_str());
  detail::checked_product({N, K, g.P, g.Q}, (o + "output").c_str());
  detail::checked_product({C_w, R, S, g.P, g.Q}, (o + "im2col tile of one image").c_str());
  return g;
}

inline Pool2dGeometry make_pool2d_geometry(int64_t N, int64_t C, int64_t H, int64_t W,
                                           int64_t R, int64_t S, int64_t stride_h,
                                           int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                           int64_t dilation_h, int64_t dilation_w,
                                           bool ceil_mode, const char* op = "pool2d") {
  using detail::pair_str;
  using detail::require;
  const std::string o = std::string(op) + ": ";
  const std::string in_shape = detail::shape_str(N, C, H, W);
  detail::require_input(N, C, H, W, o);
  require(R > 0 && S > 0, o + "kernel_size must be positive, got " + pair_str(R, S));
  require(stride_h > 0 && stride_w > 0,
          o + "stride must be positive, got " + pair_str(stride_h, stride_w));
  require(dilation_h > 0 && dilation_w > 0,
          o + "dilation must be positive, got " + pair_str(dilation_h, dilation_w));
  require(pad_h >= 0 && pad_w >= 0,
          o + "padding must be non-negative, got " + pair_str(pad_h, pad_w));
  const int64_t eff_r = dilation_h * (R - 1) + 1, eff_s = dilation_w * (S - 1) + 1;
  // PyTorch's rule: padding at most half the kernel size (before dilation, as in
  // ATen's pool2d_shape_check), so every window overlaps the input.
  require(pad_h <= R / 2 && pad_w <= S / 2,
          o + "padding " + pair_str(pad_h, pad_w) + " must be at most half of the kernel size " +
              pair_str(R, S));
  // In ceil_mode a window may be wider than the padded input (the output-size check below then
  // decides, as in PyTorch).
  const int64_t padded_h = H + 2 * pad_h, padded_w = W + 2 * pad_w;
  require(ceil_mode || (eff_r <= padded_h && eff_s <= padded_w),
          o + "kernel size " + pair_str(eff_r, eff_s) +
              (dilation_h > 1 || dilation_w > 1 ? " (after dilation)" : "") +
              " is larger than the padded input " + pair_str(padded_h, padded_w) +
              "; input shape " + in_shape);
  Pool2dGeometry g;
  g.N = N; g.C = C; g.H = H; g.W = W; g.R = R; g.S = S;
  g.stride_h = stride_h; g.stride_w = stride_w; g.pad_h = pad_h; g.pad_w = pad_w;
  g.dilation_h = dilation_h; g.dilation_w = dilation_w; g.ceil_mode = ceil_mode;
  g.P = pool_output_size(H, R, stride_h, pad_h, dilation_h, ceil_mode);
  g.Q = pool_output_size(W, S, stride_w, pad_w, dilation_w, ceil_mode);
  require(g.P > 0 && g.Q > 0, o + "output size " + pair_str(g.P, g.Q) +
                                  " is too small for input shape " + in_shape);
  detail::checked_product({N, C, H, W}, (o + "input").c_str());
  detail::checked_product({N, C, g.P, g.Q}, (o + "output").c_str());
  // With dilation, a window can fall between the input's pixels entirely (PyTorch then
  // returns -inf with an index outside the plane); we refuse such a geometry.
  auto every_window_sees_input = [](int64_t n, int64_t out, int64_t k, int64_t s, int64_t p,
                                    int64_t d) {
    // Only windows that hang over an edge can miss: the first few and the last few.
    const int64_t edge = (p + d * (k - 1)) / s + 2;
    for (int64_t i = 0; i < out; ++i) {
      if (i == edge && out - edge > i) i = out - edge;
      bool seen = false;
      for (int64_t r = 0; r < k && !seen; ++r) {
        const int64_t pos = i * s - p + r * d;
        seen = pos >= 0 && pos < n;
      }
      if (!seen) return false;
    }
    return true;
  };
  require(every_window_sees_input(H, g.P, R, stride_h, pad_h, dilation_h) &&
              every_window_sees_input(W, g.Q, S, stride_w, pad_w, dilation_w),
          o + "with dilation " + pair_str(dilation_h, dilation_w) + " and padding " +
              pair_str(pad_h, pad_w) + " some windows contain no input pixel; input shape " +
              in_shape);
  return g;
}

// Builds and validates an adaptive pooling's geometry: output_size (P, Q) must be positive
// (None in Python means "the input's size" and is resolved before this call).
inline AdaptivePool2dGeometry make_adaptive_pool2d_geometry(int64_t N, int64_t C, int64_t H,
                                                            int64_t W, int64_t P, int64_t Q,
                                                            const char* op = "adaptive_avg_pool2d") {
  using detail::pair_str;
  using detail::require;
  const std::string o = std::string(op) + ": ";
  detail::require_input(N, C, H, W, o);
  require(P > 0 && Q > 0, o + "output_size must be positive, got " + pair_str(P, Q));
  detail::checked_product({N, C, H, W}, (o + "input").c_str());
  detail::checked_product({N, C, P, Q}, (o + "output").c_str());
  // Bin arithmetic multiplies an index by a size: (P+1)*H and (H+1)*P must fit.
  detail::checked_product({P + 1, H + 1}, (o + "bin arithmetic").c_str());
  detail::checked_product({Q + 1, W + 1}, (o + "bin arithmetic").c_str());
  AdaptivePool2dGeometry g;
  g.N = N; g.C = C; g.H = H; g.W = W; g.P = P; g.Q = Q;
  return g;
}

}  // namespace convforge
