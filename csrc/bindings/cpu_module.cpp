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

#include <atomic>
#include <cmath>
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

// Every output starts here. With poisoning on (tests), it is filled with NaN so that an
// element a kernel forgot to write shows up.
FloatArray new_output(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  FloatArray out(dims);
  if (g_poison.load()) {
    float* p = out.mutable_data();
    std::fill(p, p + out.size(), std::numeric_limits<float>::quiet_NaN());
  }
  return out;
}

// Held while a kernel runs: no GIL, and this thread's OpenMP team size set from
// set_num_threads (OpenMP's setting is per calling thread, Python threads included).
struct KernelScope {
  py::gil_scoped_release no_gil;
  KernelScope() { omp_set_num_threads(num_threads()); }
};

const float* data_or_null(const std::optional<FloatArray>& a) { return a ? a->data() : nullptr; }

py::list algo_list(const std::vector<cpu::KernelInfo>& infos) {
  py::list out;
  for (const auto& k : infos)
    out.append(py::dict(py::arg("name") = k.name, py::arg("kind") = k.kind,
                        py::arg("description") = k.description, py::arg("source") = k.source));
  return out;
}

}  // namespace

void bind_build_info(py::module_& m);  // build_info.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "convforge CPU kernels (private; use convforge.functional)";
  bind_geometry(m);
  bind_build_info(m);

  // ---- configuration ----
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
    g_threads.store(n);
  });
  m.def("get_num_threads", &num_threads);
  m.def("_set_poison_outputs", [](bool on) { g_poison.store(on); });
  m.def("simd_level", [] { return std::string(cpu::simd_level_name(cpu::simd_level())); });
  m.def("simd_level_supported",
        [] { return std::string(cpu::simd_level_name(cpu::simd_level_supported())); });
  m.def("_set_simd_level", [](const std::string& name) {
    if (name == "scalar") cpu::set_simd_level(cpu::SimdLevel::Scalar);
    else if (name == "avx2") cpu::set_simd_level(cpu::SimdLevel::AVX2);
    else if (name == "avx512") cpu::set_simd_level(cpu::SimdLevel::AVX512);
    else throw std::invalid_argument("unknown SIMD level '" + name + "' (scalar, avx2, avx512)");
    return std::string(cpu::simd_level_name(cpu::simd_level()));
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
    FloatArray y = new_output({g.N, g.K, g.P, g.Q});
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
    FloatArray y = new_output({g.N, g.C, g.P, g.Q});
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
    FloatArray dx = new_output(input_shape);
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
    FloatArray dx = new_output({g.N, g.C, g.H, g.W});
    float* dxp = dx.mutable_data();
    {
      KernelScope s;
      cpu::avg_pool2d_backward(g, count_include_pad, dy.data(), dxp);
    }
    return dx;
  });

  // ---- GEMM and linear ----
  m.def("gemm", [](const FloatArray& a, const FloatArray& b, const std::optional<FloatArray>& c,
                   float alpha, float beta, bool trans_a, bool trans_b, const std::string& algo) {
    const int64_t M = trans_a ? a.shape(1) : a.shape(0);
    const int64_t K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t N = trans_b ? b.shape(0) : b.shape(1);
    FloatArray out = new_output({M, N});
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
    FloatArray y = new_output({M, N});
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
