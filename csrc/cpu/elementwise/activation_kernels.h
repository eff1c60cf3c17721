// Activation loops written for the compiler to vectorise, included by one translation
// unit per instruction set (activation_kernels{,_avx2,_avx512,_neon}.cpp)
// that compiles them with its flags; internal linkage keeps the copies apart, and no
// library math is called, so no out-of-line function compiled for one ISA leaks into another.
//
// exp, tanh and sigmoid use Cephes' single-precision polynomials (a couple of ulp), with
// NaN passed through explicitly and exp(-|x|) used so that nothing overflows.
#pragma once

#include <cstdint>

namespace convforge::cpu::activation_detail {
namespace {

inline float bits_to_float(int32_t i) { return __builtin_bit_cast(float, i); }

// c ? a : b on the bits. Written as a ternary, GCC keeps a branch around the arm it can
// trap in (a division, a conversion) under -ftrapping-math and then will not vectorise.
inline float select(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return __builtin_bit_cast(float, (__builtin_bit_cast(int32_t, a) & m) |
                                       (__builtin_bit_cast(int32_t, b) & ~m));
}

// exp(x) for x <= 0 (all that tanh and sigmoid need), down through the subnormals.
// x = n*ln2 + r with |r| <= ln2/2; exp(r) by Cephes' degree-5 polynomial; 2^n built in two
// halves so that n below -126 still scales into the subnormal range.
inline float exp_nonpositive(float x) {
  x = select(x < -104.f, -104.f, x);      // below this exp(x) rounds to 0 anyway
  x = select(__builtin_isnan(x), 0.f, x);  // keeps the conversion defined; callers restore NaN
  // n = round(x / ln2); for y <= 0, round(y) = -trunc(0.5 - y), a conversion every ISA vectorises.
  const int32_t ni = -static_cast<int32_t>(0.5f - x * 1.44269504088896341f);
  const float n = static_cast<float>(ni);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float e = 1.9875691500e-4f;
  e = e * r + 1.3981999507e-3f;
  e = e * r + 8.3334519073e-3f;
  e = e * r + 4.1665795894e-2f;
  e = e * r + 1.6666665459e-1f;
  e = e * r + 5.0000001201e-1f;
  e = e * r2 + r + 1.f;
  const int32_t half = ni / 2;
  return e * bits_to_float((half + 127) << 23) * bits_to_float((ni - half + 127) << 23);
}

// Both forms are computed and one is selected: a branch would stop the vectoriser.
inline float tanh_one(float x) {
  const float a = __builtin_fabsf(x);
  // Small |x|: (1 - e)/(1 + e) would cancel, so Cephes' odd polynomial.
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = exp_nonpositive(-2.f * a);
  const float m = (1.f - e) / (1.f + e);
  const float t = select(a < 0.625f, small, select(x < 0.f, -m, m));
  return select(__builtin_isnan(x), x, t);
}

// 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) for x < 0: both from e = exp(-|x|) <= 1.
inline float sigmoid_one(float x) {
  const float a = __builtin_fabsf(x);
  const float e = exp_nonpositive(-a);
  const float s = select(x < 0.f, e, 1.f) / (1.f + e);
  return select(__builtin_isnan(x), x, s);
}

// relu keeps NaN (NaN < 0 is false) as torch.relu does; its gradient is dy where x > 0
// and 0 elsewhere (chosen, not multiplied, so a NaN dy at x <= 0 gives 0 like torch).
inline void relu_forward(int64_t n, const float* __restrict x, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.f ? 0.f : x[i];
}
inline void relu_backward(int64_t n, const float* __restrict dy, const float* __restrict x,
                          float* __restrict dx) {
  // select, not a ternary: GCC treats dy[i] in a ternary arm as a conditional load and leaves
  // the loop scalar on AArch64.
  for (int64_t i = 0; i < n; ++i) dx[i] = select(x[i] <= 0.f, 0.f, dy[i]);
}
inline void tanh_forward(int64_t n, const float* __restrict x, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = tanh_one(x[i]);
}
inline void tanh_backward(int64_t n, const float* __restrict dy, const float* __restrict y,
                          float* __restrict dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}
inline void sigmoid_forward(int64_t n, const float* __restrict x, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_one(x[i]);
}
inline void sigmoid_backward(int64_t n, const float* __restrict dy, const float* __restrict y,
                             float* __restrict dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.f - y[i]) * y[i];
}

}  // namespace
}  // namespace convforge::cpu::activation_detail

// The entry points of one ISA's copy (activation_kernels_isa.h), defined inside that ISA's
// namespace (activation_detail::avx2, ...) by calling the loops above.
#define CF_ACTIVATION_ENTRY_POINTS                                                                       \
  void relu_forward(int64_t n, const float* x, float* y) { activation_detail::relu_forward(n, x, y); } \
  void relu_backward(int64_t n, const float* dy, const float* x, float* dx) {                          \
    activation_detail::relu_backward(n, dy, x, dx);                                                     \
  }                                                                                                     \
  void tanh_forward(int64_t n, const float* x, float* y) { activation_detail::tanh_forward(n, x, y); } \
  void tanh_backward(int64_t n, const float* dy, const float* y, float* dx) {                          \
    activation_detail::tanh_backward(n, dy, y, dx);                                                     \
  }                                                                                                     \
  void sigmoid_forward(int64_t n, const float* x, float* y) {                                           \
    activation_detail::sigmoid_forward(n, x, y);                                                        \
  }                                                                                                     \
  void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx) {                       \
    activation_detail::sigmoid_backward(n, dy, y, dx);                                                  \
  }
