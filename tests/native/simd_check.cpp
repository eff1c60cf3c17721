// Every SIMD kernel of the C++ core against the plain reference loops, without Python:
// for each SIMD level this CPU runs (scalar, then avx2/avx512 on x86-64 or neon on AArch64),
// GEMM (every transpose, alpha/beta, epilogue, sizes off every tile), conv2d forward and
// backward (every algo; stride, padding, dilation, groups, depthwise, odd sizes), pooling
// (bitwise, with indices) and the activations (special values included).
//
// Built by CMake with -DCONVFORGE_NATIVE_TESTS=ON (target simd_check); tools/check_aarch64.sh
// cross-compiles it for AArch64 and runs it under qemu-aarch64, so the NEON kernels are
// checked on an x86-64 machine. Outputs start as NaN, so an element a kernel skips fails.
// Exit status 0 when every check passes; the failures are printed (the first few per kernel).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/geometry.h"
#include "cpu/conv/conv2d.h"
#include "cpu/cpu_features.h"
#include "cpu/elementwise/elementwise.h"
#include "cpu/gemm/gemm.h"
#include "cpu/pool/pool2d.h"

namespace cf = convforge;
namespace cpu = convforge::cpu;

namespace {

constexpr double kFwdTol = 1e-5, kBwdTol = 1e-4;  // ||out - ref|| / ||ref||, as tests/conftest.py
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::mt19937 rng(12345);
std::string level_name;  // the SIMD level being checked, for the messages
std::map<std::string, int> passed, failed;

std::vector<float> randn(int64_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}
std::vector<float> poisoned(int64_t n) { return std::vector<float>(static_cast<size_t>(n), kNaN); }

// ||out - ref|| / ||ref|| in double; infinite when out has a NaN or Inf (an unwritten element).
double rel_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return std::numeric_limits<double>::infinity();
    const double d = double(out[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return std::sqrt(num) / (den > 0 ? std::sqrt(den) : 1.0);
}

void record(const std::string& kernel, bool ok, const std::string& what) {
  const std::string key = level_name + " " + kernel;
  if (ok) {
    ++passed[key];
    return;
  }
  if (failed[key]++ < 5) std::printf("FAIL [%s] %s: %s\n", level_name.c_str(), kernel.c_str(), what.c_str());
}

void check_close(const std::string& kernel, const std::string& what, const std::vector<float>& out,
                 const std::vector<float>& ref, double tol) {
  const double e = rel_error(out, ref);
  record(kernel, e <= tol, what + " rel error " + std::to_string(e));
}

// ---- GEMM -----------------------------------------------------------------------------------
void check_gemm() {
  struct Size { int64_t M, N, K; };
  // Off every micro-tile (14x32, 6x16, 8x12, 4x16) and across a KC block (256 and 640); the
  // last two are sup's shapes (N <= 64, M > 128: A read in place, a partial last row block).
  const Size sizes[] = {{1, 1, 1},    {3, 5, 7},     {4, 37, 9},   {8, 12, 1},
                        {9, 13, 17},  {17, 25, 33},  {16, 24, 8},  {33, 70, 300},
                        {50, 27, 650}, {129, 61, 65}, {131, 61, 300}, {200, 17, 650}};
  for (const Size& s : sizes)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const int64_t lda = ta ? s.M + 3 : s.K + 1, ldb = tb ? s.K + 2 : s.N + 5, ldc = s.N + 4;
      const auto A = randn((ta ? s.K : s.M) * lda), B = randn((tb ? s.N : s.K) * ldb);
      const auto rb = randn(s.M), cb = randn(s.N), C0 = randn(s.M * ldc);
      for (int e = 0; e < 5; ++e) {
        cpu::GemmEpilogue ep;
        if (e == 1) ep.row_bias = rb.data();
        if (e == 2) ep.col_bias = cb.data();
        if (e == 3) ep.relu = true;
        if (e == 4) ep = {rb.data(), cb.data(), true};
        for (const auto& ab : {std::pair<float, float>{1.0f, 0.0f}, {0.5f, 1.5f}, {-1.0f, 1.0f}}) {
          std::vector<float> ref = C0;
          // beta == 0 never reads C: poison it.
          if (ab.second == 0.0f) ref.assign(ref.size(), kNaN);
          cpu::sgemm(ta, tb, s.M, s.N, s.K, ab.first, A.data(), lda, B.data(), ldb, ab.second,
                     ref.data(), ldc, ep, "reference");
          for (const auto& info : cpu::gemm_algos()) {  // the one table (gemm.cpp)
            if (info.name == "reference") continue;
            const char* algo = info.name.c_str();
            std::vector<float> c = C0;
            if (ab.second == 0.0f) c.assign(c.size(), kNaN);
            cpu::sgemm(ta, tb, s.M, s.N, s.K, ab.first, A.data(), lda, B.data(), ldb, ab.second,
                       c.data(), ldc, ep, algo);
            // Compare the M x N part; the padding columns of each row must stay as they were.
            std::vector<float> o, r;
            bool pad_kept = true;
            for (int64_t i = 0; i < s.M; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                const size_t at = static_cast<size_t>(i * ldc + j);
                if (j < s.N) {
                  o.push_back(c[at]);
                  r.push_back(ref[at]);
                } else if (std::memcmp(&c[at], &ref[at], sizeof(float)) != 0) {
                  pad_kept = false;
                }
              }
            char what[160];
            std::snprintf(what, sizeof what, "M=%lld N=%lld K=%lld trans=(%d,%d) epilogue %d alpha %g beta %g",
                          (long long)s.M, (long long)s.N, (long long)s.K, ta, tb, e, ab.first, ab.second);
            check_close(std::string("gemm ") + algo, what, o, r, kFwdTol);
            record(std::string("gemm ") + algo, pad_kept, std::string(what) + ": wrote past column N");
          }
        }
      }
    }
}

// ---- conv2d ---------------------------------------------------------------------------------
struct ConvCase {
  const char* name;
  int64_t N, C, H, W, K, R, S, sh, sw, pt, pb, pl, pr, dh, dw, groups;
};
const ConvCase kConvCases[] = {
    {"1x1", 2, 3, 5, 7, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {"lenet c1", 2, 1, 32, 32, 6, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {"lenet c3", 2, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {"kernel = padded input", 1, 2, 5, 5, 3, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"stride > kernel", 2, 3, 11, 13, 5, 2, 2, 3, 3, 0, 0, 0, 0, 1, 1, 1},
    {"asymmetric padding, stride (1,2)", 1, 3, 9, 10, 4, 3, 3, 1, 2, 0, 2, 1, 0, 1, 1, 1},
    {"dilation 2", 1, 2, 12, 11, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},
    {"dilation (2,3), stride 2", 2, 3, 13, 17, 5, 3, 2, 2, 2, 1, 1, 2, 2, 2, 3, 1},
    {"groups 2", 2, 4, 8, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
    {"depthwise", 1, 8, 10, 10, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8},
    {"odd sizes, stride 2, batch 1", 1, 5, 17, 19, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},
    {"20 filters (8+8+4), long rows", 1, 3, 6, 37, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"12 filters (6+6)", 2, 2, 7, 9, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"winograd 3x3", 1, 16, 12, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"threaded", 2, 8, 20, 22, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
};

void check_conv() {
  for (const ConvCase& c : kConvCases) {
    const auto g = cf::make_conv2d_geometry(c.N, c.C, c.H, c.W, c.K, c.C / c.groups, c.R, c.S, c.sh,
                                            c.sw, c.pt, c.pb, c.pl, c.pr, c.dh, c.dw, c.groups);
    const auto x = randn(g.x_size()), w = randn(g.w_size()), b = randn(g.K), dy = randn(g.y_size());
    for (bool relu : {false, true})
      for (bool bias : {false, true}) {
        auto ref = poisoned(g.y_size());
        cpu::conv2d_forward(g, x.data(), w.data(), bias ? b.data() : nullptr, ref.data(), "reference", relu);
        for (const auto& info : cpu::conv2d_forward_algos()) {  // the op's table: every algo
          const std::string algo = info.name;
          if (algo == "reference") continue;
          auto y = poisoned(g.y_size());
          cpu::conv2d_forward(g, x.data(), w.data(), bias ? b.data() : nullptr, y.data(), algo, relu);
          check_close(std::string("conv2d forward ") + algo,
                      std::string(c.name) + (relu ? " relu" : "") + (bias ? " bias" : ""), y, ref, kFwdTol);
        }
      }
    auto dx_ref = poisoned(g.x_size()), dw_ref = poisoned(g.w_size()), db_ref = poisoned(g.K);
    cpu::conv2d_backward_data(g, dy.data(), w.data(), dx_ref.data(), "reference");
    cpu::conv2d_backward_weight(g, dy.data(), x.data(), dw_ref.data(), db_ref.data(), "reference");
    for (const auto& info : cpu::conv2d_backward_algos()) {
      const std::string algo = info.name;
      if (algo == "reference") continue;
      auto dx = poisoned(g.x_size()), dw = poisoned(g.w_size()), db = poisoned(g.K);
      cpu::conv2d_backward_data(g, dy.data(), w.data(), dx.data(), algo);
      cpu::conv2d_backward_weight(g, dy.data(), x.data(), dw.data(), db.data(), algo);
      check_close(std::string("conv2d backward data ") + algo, c.name, dx, dx_ref, kBwdTol);
      check_close(std::string("conv2d backward weight ") + algo, c.name, dw, dw_ref, kBwdTol);
      check_close(std::string("conv2d backward bias ") + algo, c.name, db, db_ref, kBwdTol);
    }
  }
}

// ---- pooling --------------------------------------------------------------------------------
struct PoolCase {
  int64_t N, C, H, W, R, S, sh, sw, ph, pw, dh, dw;
  bool ceil;
};
// As tests/test_pool.py: 2x2/2, 3x3/2, 3x3/1, stride > kernel, padding, dilation, ceil_mode,
// non-square, kernel = input, 1x1, rows longer than the row kernels' blocks, threaded.
const PoolCase kPoolCases[] = {
    {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false},   {2, 3, 9, 11, 3, 3, 2, 2, 0, 0, 1, 1, false},
    {1, 2, 7, 9, 3, 3, 1, 1, 0, 0, 1, 1, false},   {2, 2, 10, 12, 2, 2, 3, 3, 0, 0, 1, 1, false},
    {2, 3, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, false},   {1, 2, 13, 11, 3, 3, 1, 1, 1, 1, 2, 2, false},
    {2, 2, 12, 15, 2, 3, 3, 2, 0, 0, 3, 2, false}, {2, 2, 10, 9, 3, 3, 2, 2, 0, 0, 1, 1, true},
    {1, 3, 7, 7, 2, 2, 2, 2, 1, 1, 1, 1, true},    {1, 2, 8, 10, 3, 3, 2, 2, 1, 1, 1, 1, true},
    {2, 1, 5, 5, 3, 2, 1, 2, 1, 0, 1, 1, false},   {2, 3, 5, 7, 5, 7, 1, 1, 0, 0, 1, 1, false},
    {3, 2, 6, 5, 1, 1, 1, 1, 0, 0, 1, 1, false},   {1, 2, 5, 601, 3, 3, 2, 2, 1, 1, 1, 1, false},
    {1, 2, 4, 600, 2, 2, 2, 2, 0, 0, 1, 1, false}, {4, 8, 33, 31, 2, 2, 2, 2, 0, 0, 1, 1, true},
    {2, 4, 17, 19, 3, 3, 2, 2, 1, 1, 1, 1, false}, {1, 3, 9, 300, 3, 3, 3, 3, 1, 1, 1, 1, false},
};

void check_pool() {
  for (const PoolCase& c : kPoolCases) {
    const auto g = cf::make_pool2d_geometry(c.N, c.C, c.H, c.W, c.R, c.S, c.sh, c.sw, c.ph, c.pw,
                                            c.dh, c.dw, c.ceil);
    auto x = randn(g.x_size());
    // Ties and NaN: a few repeated values and one NaN per plane.
    for (int64_t i = 0; i + 3 < g.x_size(); i += 7) x[static_cast<size_t>(i + 1)] = x[static_cast<size_t>(i)];
    for (int64_t p = 0; p < g.N * g.C; ++p) x[static_cast<size_t>(p * g.H * g.W + (p * 5) % (g.H * g.W))] = kNaN;
    char what[128];
    std::snprintf(what, sizeof what, "x (%lld,%lld,%lld,%lld) k (%lld,%lld) s (%lld,%lld) p (%lld,%lld) d (%lld,%lld)%s",
                  (long long)c.N, (long long)c.C, (long long)c.H, (long long)c.W, (long long)c.R,
                  (long long)c.S, (long long)c.sh, (long long)c.sw, (long long)c.ph, (long long)c.pw,
                  (long long)c.dh, (long long)c.dw, c.ceil ? " ceil" : "");
    auto yr = poisoned(g.y_size()), y = poisoned(g.y_size());
    std::vector<int64_t> ir(static_cast<size_t>(g.y_size()), -7), iy(static_cast<size_t>(g.y_size()), -9);
    cpu::max_pool2d_forward(g, x.data(), yr.data(), ir.data(), "reference");
    cpu::max_pool2d_forward(g, x.data(), y.data(), iy.data(), "fast");
    // Bitwise: NaN where the reference has NaN, the same indices.
    record("max_pool2d fast", std::memcmp(y.data(), yr.data(), y.size() * sizeof(float)) == 0 && iy == ir, what);
    if (c.dh == 1 && c.dw == 1)
      for (bool include_pad : {false, true}) {
        auto xa = randn(g.x_size());
        auto ar = poisoned(g.y_size()), a = poisoned(g.y_size());
        cpu::avg_pool2d_forward(g, include_pad, xa.data(), ar.data(), "reference");
        cpu::avg_pool2d_forward(g, include_pad, xa.data(), a.data(), "fast");
        record("avg_pool2d fast", std::memcmp(a.data(), ar.data(), a.size() * sizeof(float)) == 0,
               std::string(what) + (include_pad ? " count_include_pad" : ""));
      }
  }
}

// ---- activations ----------------------------------------------------------------------------
void check_activations() {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(17), int64_t(1000), int64_t(70001)}) {
    auto x = randn(n), dy = randn(n);
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] *= 6.0f;  // into tanh's and sigmoid's tails
    const float special[] = {kNaN, std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity(), 0.0f, -0.0f, 1e-30f, -90.0f,
                             90.0f, 0.6f, -0.65f, 1e-8f, -200.0f};
    for (size_t i = 0; i < sizeof special / sizeof *special && i < x.size(); ++i)
      x[x.size() - 1 - i] = special[i];
    const std::string what = "n=" + std::to_string(n);
    // Element by element against double-precision math: relative 1e-6 (a few ulp) or `atol`
    // absolute; NaN where the input is NaN; relu exactly. The gradients' 1 - y*y cancels near
    // |y| = 1, so their absolute tolerance scales with dy.
    auto close = [](float out, double ref, double atol = 1e-7) {
      if (std::isnan(ref)) return std::isnan(out);
      if (std::isinf(ref)) return out == ref;
      return std::fabs(out - ref) <= 1e-6 * std::fabs(ref) + atol;
    };
    auto y = poisoned(n), dx = poisoned(n);
    bool ok_f = true, ok_b = true;
    cpu::relu_forward(n, x.data(), y.data());
    cpu::relu_backward(n, dy.data(), x.data(), dx.data());
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[size_t(i)];
      const float want = v < 0.f ? 0.f : v;  // NaN stays NaN, as torch.relu
      ok_f &= std::memcmp(&y[size_t(i)], &want, 4) == 0 || (std::isnan(want) && std::isnan(y[size_t(i)]));
      ok_b &= dx[size_t(i)] == (v <= 0.f ? 0.f : dy[size_t(i)]);  // NaN x: dy, as torch
    }
    record("relu forward", ok_f, what);
    record("relu backward", ok_b, what);

    // tanh and sigmoid: the forward against double-precision math, the backward against the
    // formula on the kernel's own y (torch's gradients use the saved output the same way).
    using Unary = void (*)(int64_t, const float*, float*);
    using Binary = void (*)(int64_t, const float*, const float*, float*);
    auto smooth = [&](const char* name, Unary fwd, Binary bwd, double (*ref)(double),
                      double (*grad)(double)) {
      auto y = poisoned(n), dx = poisoned(n);
      bool ok_f = true, ok_b = true;
      fwd(n, x.data(), y.data());
      bwd(n, dy.data(), y.data(), dx.data());
      for (size_t k = 0; k < size_t(n); ++k) {
        ok_f &= close(y[k], ref(x[k]));
        ok_b &= close(dx[k], dy[k] * grad(y[k]), 1e-6 * (1 + std::fabs(dy[k])));
      }
      record(std::string(name) + " forward", ok_f, what);
      record(std::string(name) + " backward", ok_b, what);
    };
    smooth("tanh", cpu::tanh_forward, cpu::tanh_backward, [](double v) { return std::tanh(v); },
           [](double y) { return 1.0 - y * y; });
    smooth("sigmoid", cpu::sigmoid_forward, cpu::sigmoid_backward,
           [](double v) { return v >= 0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v)); },
           [](double y) { return (1.0 - y) * y; });
  }
}

}  // namespace

int main() {
  const cpu::SimdLevel all[] = {cpu::SimdLevel::Scalar, cpu::SimdLevel::AVX2, cpu::SimdLevel::AVX512,
                                cpu::SimdLevel::NEON};
  std::printf("simd_check: best SIMD level of this CPU: %s\n",
              cpu::simd_level_name(cpu::simd_level_supported()));
  int levels = 0;
  for (cpu::SimdLevel level : all) {
    if (!cpu::simd_level_available(level)) continue;
    cpu::set_simd_level(level);
    if (cpu::simd_level() != level) {
      std::printf("FAIL: set_simd_level(%s) gave %s\n", cpu::simd_level_name(level),
                  cpu::simd_level_name(cpu::simd_level()));
      return 1;
    }
    level_name = cpu::simd_level_name(level);
    ++levels;
    check_gemm();
    check_conv();
    check_pool();
    check_activations();
  }
  int total_pass = 0, total_fail = 0;
  for (const auto& [key, n] : passed) total_pass += n;
  for (const auto& [key, n] : failed) total_fail += n;
  for (const auto& [key, n] : passed)
    std::printf("  %-40s %5d passed%s\n", key.c_str(), n,
                failed.count(key) ? (", " + std::to_string(failed[key]) + " FAILED").c_str() : "");
  for (const auto& [key, n] : failed)
    if (!passed.count(key)) std::printf("  %-40s     0 passed, %d FAILED\n", key.c_str(), n);
  std::printf("simd_check: %d SIMD levels, %d checks passed, %d failed\n", levels, total_pass, total_fail);
  return total_fail == 0 && levels > 0 ? 0 : 1;
}
