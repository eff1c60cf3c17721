// convforge._C's view of the machine (cpu/machine.h), of the GEMM configuration chosen for it
// (cpu/gemm/gemm_config.cpp), and the algo tables' hooks for measured choice
// (python/convforge/machine.py and tuning.py, `convforge info`, the benchmarks, the tests that
// force each configuration).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "common/geometry.h"
#include "cpu/conv/conv2d.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/gemm_blocked.h"
#include "cpu/machine.h"

namespace py = pybind11;
using namespace convforge::cpu;

namespace {

py::dict config_dict(int i) {
  int count = 0;
  const gemm_detail::GemmConfigEntry& e = gemm_detail::gemm_config_entries(&count)[i];
  const gemm_detail::GemmConfig& c = gemm_detail::gemm_config_blocks(i);
  py::dict d;
  d["name"] = e.name;
  d["isa"] = simd_level_name(e.isa);
  d["description"] = e.description;
  d["mr"] = c.mr;
  d["nr"] = c.nr;
  d["mc"] = c.mc;
  d["kc"] = c.kc;
  d["nc"] = c.nc;
  d["available"] = gemm_detail::gemm_config_available(i);
  d["in_use"] = i == gemm_detail::gemm_config_in_use();
  return d;
}

}  // namespace

void bind_machine(py::module_& m) {
  gemm_detail::gemm_config_in_use();  // applies CONVFORGE_CPU_CONFIG at import
  m.def("machine", [] {
    const MachineDescription& d = machine();
    py::dict out;
    out["arch"] = d.arch;
    out["vendor"] = d.vendor;
    out["model_name"] = d.model_name;
    out["family"] = d.family;
    out["model"] = d.model;
    out["uarch"] = d.uarch;
    out["logical_cpus"] = d.logical_cpus;
    out["simd_supported"] = simd_level_name(simd_level_supported());
    out["l1d_bytes"] = d.l1d_bytes;
    out["l2_bytes"] = d.l2_bytes;
    out["l3_bytes"] = d.l3_bytes;
    out["l2_shared_by"] = d.l2_shared_by;
    out["l3_shared_by"] = d.l3_shared_by;
    out["cache_source"] = d.cache_source;
    return out;
  });
  m.def(
      "measure_fma_peak",
      [](int threads) {
        if (threads < 1)
          throw std::invalid_argument("measure_fma_peak: threads must be >= 1, got " +
                                      std::to_string(threads));
        FmaPeak p;
        {
          py::gil_scoped_release no_gil;
          p = measure_fma_peak(threads);
        }
        py::dict d;
        d["gflops"] = p.gflops;
        d["gflops_256"] = p.gflops_256;
        d["gflops_512"] = p.gflops_512;
        d["fma512_units"] = p.fma512_units;
        return d;
      },
      py::arg("threads"));
  m.def(
      "measure_triad_bandwidth",
      [](int threads) {
        if (threads < 1)
          throw std::invalid_argument("measure_triad_bandwidth: threads must be >= 1, got " +
                                      std::to_string(threads));
        py::gil_scoped_release no_gil;
        return measure_triad_bandwidth_gbs(threads);
      },
      py::arg("threads"));
  m.def("cpu_configs", [] {
    int count = 0;
    gemm_detail::gemm_config_entries(&count);
    py::list out;
    for (int i = 0; i < count; ++i) out.append(config_dict(i));
    return out;
  });
  m.def("cpu_config", [] { return config_dict(gemm_detail::gemm_config_in_use()); });
  m.def("_set_cpu_config", [](const std::string& name) {
    gemm_detail::set_gemm_config(name);
    return std::string(gemm_detail::gemm_config_blocks(gemm_detail::gemm_config_in_use()).name);
  });

  m.def("conv2d_eligible_algos", &conv2d_eligible_algos, py::arg("pass_"), py::arg("geom"));
  m.def("conv2d_auto_choice", &conv2d_auto_choice, py::arg("pass_"), py::arg("geom"));
  m.def("gemm_auto_choice", &gemm_auto_choice, py::arg("M"), py::arg("N"), py::arg("K"),
        py::arg("trans_a") = false, py::arg("trans_b") = false);
  m.def("gemm_eligible_algos", &gemm_eligible_algos, py::arg("M"), py::arg("N"), py::arg("K"),
        py::arg("trans_a") = false, py::arg("trans_b") = false);
}
