// What was built and what runs: reported by convforge.build_info() and `convforge info`.
#include <pybind11/pybind11.h>
#include <omp.h>

#include <string>

#include "cpu/cpu_features.h"

namespace py = pybind11;

void bind_build_info(py::module_& m) {
  m.def("_build_info", [] {
    py::dict d;
    d["version"] = CONVFORGE_VERSION;
    d["compiler"] = CONVFORGE_CXX_COMPILER;
    d["openmp"] = std::to_string(_OPENMP);
    d["simd_supported"] = convforge::cpu::simd_level_name(convforge::cpu::simd_level_supported());
    d["simd_in_use"] = convforge::cpu::simd_level_name(convforge::cpu::simd_level());
    d["omp_max_threads"] = omp_get_max_threads();
#ifdef NDEBUG
    d["build_type"] = "release";
#else
    d["build_type"] = "debug";
#endif
    return d;
  });
}
