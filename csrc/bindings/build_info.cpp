// What was built and what runs: reported by convforge.build_info() and `convforge info`.
#include <pybind11/pybind11.h>
#include <omp.h>

#include <string>

#if __has_include(<dlfcn.h>)
#include <dlfcn.h>
#endif

#include "cpu/cpu_features.h"

namespace py = pybind11;

namespace {

// The instruction-set architecture this module was compiled for.
const char* target_arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__aarch64__) || defined(_M_ARM64)
  return "aarch64";
#elif defined(__i386__)
  return "x86";
#elif defined(__powerpc64__)
  return "ppc64";
#elif defined(__riscv)
  return "riscv";
#else
  return "unknown";
#endif
}

// The OpenMP runtime library in use: the file that provides omp_get_max_threads in this
// process (libgomp for gcc, libomp for clang, ...), else the libraries CMake linked.
std::string openmp_runtime() {
#if __has_include(<dlfcn.h>)
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&omp_get_max_threads), &info) && info.dli_fname)
    return info.dli_fname;
#endif
  return CONVFORGE_OPENMP_LIBS;
}

}  // namespace

void bind_build_info(py::module_& m) {
  m.def("_build_info", [] {
    py::dict d;
    d["version"] = CONVFORGE_VERSION;
    d["arch"] = target_arch();
    d["compiler"] = CONVFORGE_CXX_COMPILER;
    d["openmp"] = std::to_string(_OPENMP);
    d["openmp_runtime"] = openmp_runtime();
    d["simd_supported"] = convforge::cpu::simd_level_name(convforge::cpu::simd_level_supported());
    d["simd_in_use"] = convforge::cpu::simd_level_name(convforge::cpu::simd_level());
#if CONVFORGE_ARCH_ARM64
    d["sve"] = convforge::cpu::cpu_has_sve();  // noted; no kernel uses SVE yet
#endif
    d["omp_max_threads"] = omp_get_max_threads();
#ifdef NDEBUG
    d["build_type"] = "release";
#else
    d["build_type"] = "debug";
#endif
    return d;
  });
}
