// convforge._C: the thin pybind11 layer over the CPU kernels.
//
// Python (convforge.functional) has already checked dtypes, ranks and shapes and built
// the geometry; this layer only allocates outputs, releases the GIL and calls the kernels.
// C++ exceptions become Python ones: invalid_argument -> ValueError, out_of_range ->
// IndexError, overflow_error -> OverflowError, bad_alloc -> MemoryError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "bindings/geometry_bindings.h"
#include "common/geometry.h"
#include "cpu/conv/conv2d.h"
#include "cpu/cpu_features.h"
#include "cpu/elementwise/elementwise.h"
#include "cpu/gemm/gemm.h"
#include "cpu/kernel_env.h"
#include "cpu/norm/batch_norm.h"
#include "cpu/pool/pool2d.h"

namespace py = pybind11;
using namespace convforge;
using convforge::bindings::bind_geometry;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using IndexArray = py::array_t<int64_t, py::array::c_style>;

std::atomic<bool> g_poison{false};
std::atomic<int> g_threads{0};  // 0: OpenMP's default

int num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// ---- memory checks: refuse, before allocating, what the machine cannot hold ----
std::atomic<int64_t> g_memory_limit{-1};  // test hook (_set_memory_limit); -1: the machine's
constexpr int64_t kCheckFrom = int64_t(64) << 20;  // smaller requests skip the look-up

// Bytes the process may still get: MemAvailable + SwapFree (Linux), capped by a cgroup v2
// limit; elsewhere, or if unreadable, the physical memory. Read only for large requests.
int64_t available_bytes() {
  int64_t avail = -1, swap = 0;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char key[64];
    long long kb;
    while (std::fscanf(f, "%63s %lld kB", key, &kb) == 2) {
      if (std::strcmp(key, "MemAvailable:") == 0) avail = kb * 1024;
      else if (std::strcmp(key, "SwapFree:") == 0) swap = kb * 1024;
    }
    std::fclose(f);
  }
  if (avail < 0) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? int64_t(pages) * page : std::numeric_limits<int64_t>::max();
  }
  avail += swap;
  long long max = 0, cur = 0;
  if (FILE* f = std::fopen("/sys/fs/cgroup/memory.max", "r")) {
    if (std::fscanf(f, "%lld", &max) != 1) max = 0;  // "max": no limit
    std::fclose(f);
    if (max > 0) {
      if (FILE* c = std::fopen("/sys/fs/cgroup/memory.current", "r")) {
        if (std::fscanf(c, "%lld", &cur) != 1) cur = 0;
        std::fclose(c);
      }
      avail = std::min<int64_t>(avail, std::max<long long>(0, max - cur));
    }
  }
  return avail;
}

// Bytes of count elements of elem bytes, or OverflowError when that overflows 64 bits.
int64_t checked_bytes(const std::vector<int64_t>& shape, int64_t elem, const std::string& what) {
  std::vector<int64_t> dims(shape);
  dims.push_back(elem);
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0) throw std::invalid_argument(what + ": negative size " + std::to_string(d));
    if (d != 0 && p > std::numeric_limits<int64_t>::max() / 8 / d)
      throw std::overflow_error(what + " has more elements than 64-bit index arithmetic can address");
    p *= d;
  }
  return p;
}

// MemoryError naming the bytes asked for, raised before anything is allocated.
void check_memory(int64_t bytes, const std::string& what) {
  const int64_t hook = g_memory_limit.load();
  if (hook < 0 && bytes < kCheckFrom) return;
  const int64_t limit = hook >= 0 ? hook : available_bytes();
  if (bytes > limit) {
    const std::string msg = what + " needs " + std::to_string(bytes) + " bytes (" +
                            std::to_string(bytes >> 20) + " MiB) but only " +
                            std::to_string(limit) + " bytes are available";
    PyErr_SetString(PyExc_MemoryError, msg.c_str());
    throw py::error_already_set();
  }
}

// Upper bound of the per-thread column-matrix workspace of the im2col kernels
// (cpu/conv/conv2d_im2col.cpp: max(64, 2^20 / rows) columns of rows = C/groups*R*S floats).
int64_t conv_workspace_bytes(const Conv2dGeometry& g) {
  const int64_t rows = g.C_per_group() * g.R * g.S, PQ = g.P * g.Q;
  const int64_t cols = std::min(std::max<int64_t>(64, (int64_t(1) << 20) / rows), PQ);
  return int64_t(num_threads()) * checked_bytes({rows, cols}, 4, "conv2d workspace");
}

// Every output starts here. With poisoning on (tests), it is filled with NaN so that an
// element a kernel forgot to write shows up.
// Refuses (MemoryError/OverflowError) before allocating when the output plus extra_bytes
// (named extra_what) would not fit.
FloatArray new_output(const std::vector<int64_t>& shape, const char* what = "output",
                      int64_t extra_bytes = 0, const char* extra_what = "workspace") {
  const int64_t bytes = checked_bytes(shape, 4, what);
  check_memory(bytes + extra_bytes,
               std::string(what) + " of shape " + shape_str(shape) +
                   (extra_bytes ? " plus " + std::to_string(extra_bytes) + " bytes of " + extra_what
                                : std::string()));
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  FloatArray out(dims);
  if (g_poison.load()) {
    float* p = out.mutable_data();
    std::fill(p, p + out.size(), std::numeric_limits<float>::quiet_NaN());
  }
  return out;
}

// Held while a kernel runs, by every entry point below: no GIL; this thread's OpenMP team size
// set from set_num_threads (OpenMP's setting is per calling thread, Python threads included);
// subnormals flushed to zero on the team unless set_flush_denormal(False) (cpu/kernel_env.h).
int set_team_size() {
  const int n = num_threads();
  omp_set_num_threads(n);
  return n;
}

struct KernelScope {
  py::gil_scoped_release no_gil;
  const int team = set_team_size();
  cpu::FloatModeScope float_mode{team};  // and cpu::team_float_mode in the kernels' regions
};

const float* data_or_null(const std::optional<FloatArray>& a) { return a ? a->data() : nullptr; }

py::list algo_list(const std::vector<cpu::KernelInfo>& infos) {
  py::list out;
  for (const auto& k : infos)
    out.append(py::dict(py::arg("name") = k.name, py::arg("kind") = k.kind,
                        py::arg("description") = k.description, py::arg("source") = k.source,
                        py::arg("when") = k.when));
  return out;
}

}  // namespace

void bind_build_info(py::module_& m);  // build_info.cpp
void bind_machine(py::module_& m);     // machine_bindings.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "convforge CPU kernels (private; use convforge.functional)";
  bind_geometry(m);
  bind_build_info(m);
  bind_machine(m);
  cpu::install_fork_handlers();  // OpenMP in fork()ed children (cpu/kernel_env.cpp says how)

  // ---- configuration ----
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
    g_threads.store(n);
  });
  m.def("get_num_threads", &num_threads);
  m.def("set_flush_denormal", [](bool on) {
    cpu::set_flush_denormal(on);
    return cpu::flush_denormal_supported();
  });
  m.def("get_flush_denormal", [] { return cpu::flush_denormal() && cpu::flush_denormal_supported(); });
  m.def("flush_denormal_supported", &cpu::flush_denormal_supported);
  // Test hook: the calling thread's MXCSR (x86-64) or FPCR (AArch64), and the bits we set in it.
  m.def("_float_control_register", &cpu::float_control_register);
  m.def("_float_flush_bits", &cpu::float_flush_bits);
  m.def("_set_poison_outputs", [](bool on) { g_poison.store(on); });
  // Test hook: pretend only `bytes` are available (-1: ask the machine again).
  m.def("_set_memory_limit", [](int64_t bytes) { g_memory_limit.store(bytes < 0 ? -1 : bytes); });
  m.def("simd_level", [] { return std::string(cpu::simd_level_name(cpu::simd_level())); });
  m.def("simd_level_supported",
        [] { return std::string(cpu::simd_level_name(cpu::simd_level_supported())); });
  m.def("_set_simd_level", [](const std::string& name) {
    if (name == "scalar") cpu::set_simd_level(cpu::SimdLevel::Scalar);
    else if (name == "avx2") cpu::set_simd_level(cpu::SimdLevel::AVX2);
    else if (name == "avx512") cpu::set_simd_level(cpu::SimdLevel::AVX512);
    else if (name == "neon") cpu::set_simd_level(cpu::SimdLevel::NEON);
    else throw std::invalid_argument("unknown SIMD level '" + name + "' (scalar, avx2, avx512, neon)");
    return std::string(cpu::simd_level_name(cpu::simd_level()));
  });
  // The levels this CPU runs, lowest first: scalar, then its architecture's ladder up to the best.
  m.def("_simd_levels", [] {
    py::list out;
    for (auto l : {cpu::SimdLevel::Scalar, cpu::SimdLevel::AVX2, cpu::SimdLevel::AVX512, cpu::SimdLevel::NEON})
      if (cpu::simd_level_available(l)) out.append(cpu::simd_level_name(l));
    return out;
  });
  m.def("algos", [](const std::string& op) {
    if (op == "conv2d_forward") return algo_list(cpu::conv2d_forward_algos());
    if (op == "conv2d_backward") return algo_list(cpu::conv2d_backward_algos());
    if (op == "gemm") return algo_list(cpu::gemm_algos());
    if (op == "pool2d") return algo_list(cpu::pool2d_algos());
    throw std::invalid_argument("algos: unknown op '" + op +
                                "' (conv2d_forward, conv2d_backward, gemm, pool2d)");
  });

  // ---- conv2d ----
  m.def("conv2d_forward", [](const FloatArray& x, const FloatArray& w,
                             const std::optional<FloatArray>& bias, const Conv2dGeometry& g,
                             const std::string& algo, bool relu) {
    const int64_t ws = algo == "im2col" || algo == "auto" ? conv_workspace_bytes(g) : 0;
    FloatArray y = new_output({g.N, g.K, g.P, g.Q}, "conv2d output", ws);
    float* yp = y.mutable_data();
    const float* bp = data_or_null(bias);
    {
      KernelScope s;
      cpu::conv2d_forward(g, x.data(), w.data(), bp, yp, algo, relu);
    }
    return y;
  });
  m.def("conv2d_backward", [](const FloatArray& dy, const FloatArray& x, const FloatArray& w,
                              const Conv2dGeometry& g, const std::string& algo, bool need_dx,
                              bool need_dw, bool need_db) {
    std::optional<FloatArray> dx, dw, db;
    check_memory((need_dx ? checked_bytes({g.N, g.C, g.H, g.W}, 4, "grad_x") : 0) +
                     ((need_dw || need_db) ? checked_bytes({g.K, g.C_per_group(), g.R, g.S}, 4, "grad_weight") : 0) +
                     (algo == "im2col" || algo == "auto" ? conv_workspace_bytes(g) : 0),
                 "conv2d_backward's gradients and workspace");
    if (need_dx) dx = new_output({g.N, g.C, g.H, g.W});
    if (need_dw) dw = new_output({g.K, g.C_per_group(), g.R, g.S});
    if (need_db) db = new_output({g.K});
    float* dxp = dx ? dx->mutable_data() : nullptr;
    float* dwp = dw ? dw->mutable_data() : nullptr;
    float* dbp = db ? db->mutable_data() : nullptr;
    {
      KernelScope s;
      if (dxp) cpu::conv2d_backward_data(g, dy.data(), w.data(), dxp, algo);
      if (dwp || dbp) {
        // The weight kernel computes both; a bias-only request still needs a dw buffer.
        std::vector<float> scratch;
        if (!dwp) { scratch.resize(static_cast<size_t>(g.w_size())); dwp = scratch.data(); }
        cpu::conv2d_backward_weight(g, dy.data(), x.data(), dwp, dbp, algo);
      }
    }
    return py::make_tuple(dx ? py::object(*dx) : py::none(), dw ? py::object(*dw) : py::none(),
                          db ? py::object(*db) : py::none());
  });

  // ---- pooling ----
  m.def("max_pool2d_forward", [](const FloatArray& x, const Pool2dGeometry& g, bool want_indices,
                                 const std::string& algo) {
    const int64_t idx_bytes = want_indices ? checked_bytes({g.N, g.C, g.P, g.Q}, 8, "indices") : 0;
    FloatArray y = new_output({g.N, g.C, g.P, g.Q}, "max_pool2d output", idx_bytes, "indices");
    std::optional<IndexArray> idx;
    if (want_indices) idx = IndexArray(std::vector<py::ssize_t>{g.N, g.C, g.P, g.Q});
    float* yp = y.mutable_data();
    int64_t* ip = idx ? idx->mutable_data() : nullptr;
    {
      KernelScope s;
      cpu::max_pool2d_forward(g, x.data(), yp, ip, algo);
    }
    return py::make_tuple(y, idx ? py::object(*idx) : py::none());
  });
  m.def("max_pool2d_backward", [](const FloatArray& dy, const IndexArray& indices,
                                  const std::vector<int64_t>& input_shape) {
    FloatArray dx = new_output(input_shape, "max_pool2d_backward grad_x");
    const int64_t planes = input_shape[0] * input_shape[1];
    const int64_t HW = input_shape[2] * input_shape[3];
    const int64_t PQ = planes ? static_cast<int64_t>(dy.size()) / planes : 0;
    float* dxp = dx.mutable_data();
    {
      KernelScope s;
      cpu::max_pool2d_backward(planes, PQ, HW, dy.data(), indices.data(), dxp);
    }
    return dx;
  });
  m.def("avg_pool2d_forward", [](const FloatArray& x, const Pool2dGeometry& g,
                                 bool count_include_pad, const std::string& algo) {
    FloatArray y = new_output({g.N, g.C, g.P, g.Q});
    float* yp = y.mutable_data();
    {
      KernelScope s;
      cpu::avg_pool2d_forward(g, count_include_pad, x.data(), yp, algo);
    }
    return y;
  });
  m.def("avg_pool2d_backward", [](const FloatArray& dy, const Pool2dGeometry& g,
                                  bool count_include_pad) {
    FloatArray dx = new_output({g.N, g.C, g.H, g.W}, "avg_pool2d_backward grad_x");
    float* dxp = dx.mutable_data();
    {
      KernelScope s;
      cpu::avg_pool2d_backward(g, count_include_pad, dy.data(), dxp);
    }
    return dx;
  });

  m.def("adaptive_avg_pool2d_forward", [](const FloatArray& x, const AdaptivePool2dGeometry& g,
                                          const std::string& algo) {
    FloatArray y = new_output({g.N, g.C, g.P, g.Q}, "adaptive_avg_pool2d output");
    float* yp = y.mutable_data();
    {
      KernelScope s;
      cpu::adaptive_avg_pool2d_forward(g, x.data(), yp, algo);
    }
    return y;
  });
  m.def("adaptive_avg_pool2d_backward", [](const FloatArray& dy, const AdaptivePool2dGeometry& g) {
    FloatArray dx = new_output({g.N, g.C, g.H, g.W}, "adaptive_avg_pool2d_backward grad_x");
    float* dxp = dx.mutable_data();
    {
      KernelScope s;
      cpu::adaptive_avg_pool2d_backward(g, dy.data(), dxp);
    }
    return dx;
  });

  // ---- batch normalisation ----
  // x is (N, C, *); running_mean / running_var are updated in place (training), as in torch.
  m.def("batch_norm_forward", [](const FloatArray& x, const std::optional<FloatArray>& weight,
                                 const std::optional<FloatArray>& bias,
                                 std::optional<FloatArray> running_mean,
                                 std::optional<FloatArray> running_var, bool training,
                                 double momentum, double eps) {
    std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
    const int64_t N = shape[0], C = shape[1];
    const int64_t HW = C > 0 && N > 0 ? static_cast<int64_t>(x.size()) / (N * C) : 0;
    FloatArray y = new_output(shape, "batch_norm output");
    FloatArray save_mean = new_output({C}), save_invstd = new_output({C});
    float* yp = y.mutable_data();
    float* mp = save_mean.mutable_data();
    float* ip = save_invstd.mutable_data();
    float* rm = running_mean ? running_mean->mutable_data() : nullptr;
    float* rv = running_var ? running_var->mutable_data() : nullptr;
    {
      KernelScope s;
      cpu::batch_norm_forward(N, C, HW, x.data(), data_or_null(weight), data_or_null(bias), rm, rv,
                              training, momentum, eps, yp, mp, ip);
    }
    return py::make_tuple(y, save_mean, save_invstd);
  });
  m.def("batch_norm_backward", [](const FloatArray& dy, const FloatArray& x,
                                  const std::optional<FloatArray>& weight,
                                  const FloatArray& save_mean, const FloatArray& save_invstd,
                                  bool training, bool need_dx, bool need_dw, bool need_db) {
    std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
    const int64_t N = shape[0], C = shape[1];
    const int64_t HW = C > 0 && N > 0 ? static_cast<int64_t>(x.size()) / (N * C) : 0;
    std::optional<FloatArray> dx, dw, db;
    if (need_dx) dx = new_output(shape, "batch_norm_backward grad_x");
    if (need_dw) dw = new_output({C});
    if (need_db) db = new_output({C});
    float* dxp = dx ? dx->mutable_data() : nullptr;
    float* dwp = dw ? dw->mutable_data() : nullptr;
    float* dbp = db ? db->mutable_data() : nullptr;
    {
      KernelScope s;
      cpu::batch_norm_backward(N, C, HW, dy.data(), x.data(), data_or_null(weight),
                               save_mean.data(), save_invstd.data(), training, dxp, dwp, dbp);
    }
    return py::make_tuple(dx ? py::object(*dx) : py::none(), dw ? py::object(*dw) : py::none(),
                          db ? py::object(*db) : py::none());
  });

  // ---- GEMM and linear ----
  m.def("gemm", [](const FloatArray& a, const FloatArray& b, const std::optional<FloatArray>& c,
                   float alpha, float beta, bool trans_a, bool trans_b, const std::string& algo) {
    const int64_t M = trans_a ? a.shape(1) : a.shape(0);
    const int64_t K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t N = trans_b ? b.shape(0) : b.shape(1);
    FloatArray out = new_output({M, N}, "gemm output");
    float* op = out.mutable_data();
    const bool use_c = c.has_value() && beta != 0.0f;
    if (use_c) std::memcpy(op, c->data(), sizeof(float) * static_cast<size_t>(M * N));
    {
      KernelScope s;
      cpu::sgemm(trans_a, trans_b, M, N, K, alpha, a.data(), a.shape(1), b.data(), b.shape(1),
                 use_c ? beta : 0.0f, op, N, {}, algo);
    }
    return out;
  });
  m.def("linear_forward", [](const FloatArray& x, const FloatArray& w,
                             const std::optional<FloatArray>& bias, const std::string& algo) {
    const int64_t M = x.shape(0), K = x.shape(1), N = w.shape(0);
    FloatArray y = new_output({M, N}, "linear output");
    float* yp = y.mutable_data();
    cpu::GemmEpilogue ep;
    ep.col_bias = data_or_null(bias);
    {
      KernelScope s;
      cpu::sgemm(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, yp, N, ep, algo);
    }
    return y;
  });
  m.def("sum_rows", [](const FloatArray& a) {
    const int64_t rows = a.shape(0), cols = a.shape(1);
    FloatArray out = new_output({cols});
    float* op = out.mutable_data();
    {
      KernelScope s;
      cpu::sum_rows(rows, cols, a.data(), op);
    }
    return out;
  });

  // ---- activations and loss ----
  auto unary = [&m](const char* name, void (*fn)(int64_t, const float*, float*)) {
    m.def(name, [fn](const FloatArray& x) {
      std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
      FloatArray y = new_output(shape);
      float* yp = y.mutable_data();
      {
        KernelScope s;
        fn(static_cast<int64_t>(x.size()), x.data(), yp);
      }
      return y;
    });
  };
  auto binary = [&m](const char* name, void (*fn)(int64_t, const float*, const float*, float*)) {
    m.def(name, [fn](const FloatArray& dy, const FloatArray& t) {
      std::vector<int64_t> shape(dy.shape(), dy.shape() + dy.ndim());
      FloatArray dx = new_output(shape);
      float* dxp = dx.mutable_data();
      {
        KernelScope s;
        fn(static_cast<int64_t>(dy.size()), dy.data(), t.data(), dxp);
      }
      return dx;
    });
  };
  unary("relu_forward", &cpu::relu_forward);
  unary("tanh_forward", &cpu::tanh_forward);
  unary("sigmoid_forward", &cpu::sigmoid_forward);
  binary("relu_backward", &cpu::relu_backward);
  binary("tanh_backward", &cpu::tanh_backward);
  binary("sigmoid_backward", &cpu::sigmoid_backward);

  m.def("cross_entropy_forward", [](const FloatArray& logits, const IndexArray& labels) {
    const int64_t N = logits.shape(0), classes = logits.shape(1);
    KernelScope s;
    return cpu::cross_entropy_forward(N, classes, logits.data(), labels.data());
  });
  m.def("cross_entropy_backward", [](const FloatArray& logits, const IndexArray& labels) {
    const int64_t N = logits.shape(0), classes = logits.shape(1);
    FloatArray d = new_output({N, classes});
    float* dp = d.mutable_data();
    {
      KernelScope s;
      cpu::cross_entropy_backward(N, classes, logits.data(), labels.data(), dp);
    }
    return d;
  });
}
