// Python view of common/geometry.h: the factories validate (ValueError naming the rule
// broken) and the structs travel, unchanged, to whichever backend runs the op.
// Registered once, by convforge._C; convforge._cuda receives the same types.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "common/geometry.h"

namespace convforge::bindings {

namespace py = pybind11;

inline void bind_geometry(py::module_& m) {
  py::class_<Conv2dGeometry>(m, "Conv2dGeometry")
      .def_readonly("N", &Conv2dGeometry::N).def_readonly("C", &Conv2dGeometry::C)
      .def_readonly("H", &Conv2dGeometry::H).def_readonly("W", &Conv2dGeometry::W)
      .def_readonly("K", &Conv2dGeometry::K).def_readonly("R", &Conv2dGeometry::R)
      .def_readonly("S", &Conv2dGeometry::S).def_readonly("groups", &Conv2dGeometry::groups)
      .def_readonly("stride_h", &Conv2dGeometry::stride_h)
      .def_readonly("stride_w", &Conv2dGeometry::stride_w)
      .def_readonly("pad_top", &Conv2dGeometry::pad_top)
      .def_readonly("pad_bottom", &Conv2dGeometry::pad_bottom)
      .def_readonly("pad_left", &Conv2dGeometry::pad_left)
      .def_readonly("pad_right", &Conv2dGeometry::pad_right)
      .def_readonly("dilation_h", &Conv2dGeometry::dilation_h)
      .def_readonly("dilation_w", &Conv2dGeometry::dilation_w)
      .def_readonly("P", &Conv2dGeometry::P).def_readonly("Q", &Conv2dGeometry::Q)
      .def_property_readonly("macs", &Conv2dGeometry::macs)
      .def("__repr__", [](const Conv2dGeometry& g) {
        return "Conv2dGeometry(N=" + std::to_string(g.N) + ", C=" + std::to_string(g.C) +
               ", H=" + std::to_string(g.H) + ", W=" + std::to_string(g.W) +
               ", K=" + std::to_string(g.K) + ", R=" + std::to_string(g.R) +
               ", S=" + std::to_string(g.S) + ", groups=" + std::to_string(g.groups) +
               ", P=" + std::to_string(g.P) + ", Q=" + std::to_string(g.Q) + ")";
      });

  py::class_<Pool2dGeometry>(m, "Pool2dGeometry")
      .def_readonly("N", &Pool2dGeometry::N).def_readonly("C", &Pool2dGeometry::C)
      .def_readonly("H", &Pool2dGeometry::H).def_readonly("W", &Pool2dGeometry::W)
      .def_readonly("R", &Pool2dGeometry::R).def_readonly("S", &Pool2dGeometry::S)
      .def_readonly("stride_h", &Pool2dGeometry::stride_h)
      .def_readonly("stride_w", &Pool2dGeometry::stride_w)
      .def_readonly("pad_h", &Pool2dGeometry::pad_h).def_readonly("pad_w", &Pool2dGeometry::pad_w)
      .def_readonly("dilation_h", &Pool2dGeometry::dilation_h)
      .def_readonly("dilation_w", &Pool2dGeometry::dilation_w)
      .def_readonly("ceil_mode", &Pool2dGeometry::ceil_mode)
      .def_readonly("P", &Pool2dGeometry::P).def_readonly("Q", &Pool2dGeometry::Q);

  py::class_<AdaptivePool2dGeometry>(m, "AdaptivePool2dGeometry")
      .def_readonly("N", &AdaptivePool2dGeometry::N).def_readonly("C", &AdaptivePool2dGeometry::C)
      .def_readonly("H", &AdaptivePool2dGeometry::H).def_readonly("W", &AdaptivePool2dGeometry::W)
      .def_readonly("P", &AdaptivePool2dGeometry::P).def_readonly("Q", &AdaptivePool2dGeometry::Q);

  using Pair = std::array<int64_t, 2>;
  using Quad = std::array<int64_t, 4>;
  m.def(
      "conv2d_geometry",
      [](const Quad& x, const Quad& w, const Pair& stride, const Quad& pad, const Pair& dilation,
         int64_t groups, const std::string& op) {
        return make_conv2d_geometry(x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], stride[0],
                                    stride[1], pad[0], pad[1], pad[2], pad[3], dilation[0],
                                    dilation[1], groups, op.c_str());
      },
      py::arg("x_shape"), py::arg("w_shape"), py::arg("stride"),
      py::arg("padding_tblr"), py::arg("dilation"), py::arg("groups"), py::arg("op") = "conv2d");
  m.def(
      "pool2d_geometry",
      [](const Quad& x, const Pair& kernel, const Pair& stride, const Pair& pad,
         const Pair& dilation, bool ceil_mode, const std::string& op) {
        return make_pool2d_geometry(x[0], x[1], x[2], x[3], kernel[0], kernel[1], stride[0],
                                    stride[1], pad[0], pad[1], dilation[0], dilation[1],
                                    ceil_mode, op.c_str());
      },
      py::arg("x_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("ceil_mode"), py::arg("op") = "pool2d");
  m.def(
      "adaptive_pool2d_geometry",
      [](const Quad& x, const Pair& output_size, const std::string& op) {
        return make_adaptive_pool2d_geometry(x[0], x[1], x[2], x[3], output_size[0],
                                             output_size[1], op.c_str());
      },
      py::arg("x_shape"), py::arg("output_size"), py::arg("op") = "adaptive_avg_pool2d");
  m.def("adaptive_bin_start", &adaptive_bin_start, py::arg("i"), py::arg("n"), py::arg("out"));
  m.def("adaptive_bin_end", &adaptive_bin_end, py::arg("i"), py::arg("n"), py::arg("out"));
  m.def("conv_output_size", &conv_output_size, py::arg("n"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("pad_before"), py::arg("pad_after"), py::arg("dilation"));
  m.def("pool_output_size", &pool_output_size, py::arg("n"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
}

}  // namespace convforge::bindings
