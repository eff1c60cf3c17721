// Pooling entry points: choose a version by algo= and list the versions.
//   reference  plain loops, one output at a time            (pool2d_reference.cpp)
//   fast       threads over (plane, row); interior runs vectorised over outputs,
//              one copy per ISA                             (pool2d_fast.cpp, pool2d_row_kernels.h)
// Backward has one version for both (pool2d_backward.cpp). Adaptive average pooling has the
// same two versions (adaptive_avg_pool2d.cpp).
#include "cpu/pool/pool2d.h"

#include <stdexcept>

#include "cpu/pool/pool2d_internal.h"

namespace convforge::cpu {
namespace {

struct PoolAlgo {
  KernelInfo info;
  void (*max_fn)(const Pool2dGeometry&, const float*, float*, int64_t*);
  void (*avg_fn)(const Pool2dGeometry&, bool, const float*, float*);
  void (*adaptive_avg_fn)(const AdaptivePool2dGeometry&, const float*, float*);
};

// The one table of pooling algos: dispatch, the unknown-algo error and algos() read it. "auto"
// is the fast version, which handles every geometry; it is accepted, not listed.
const std::vector<PoolAlgo>& table() {
  static const std::vector<PoolAlgo> t = {
      {{"reference", "reference", "plain loops over each output's window, no threads",
        "cpu/pool/pool2d_reference.cpp", "every geometry"},
       pool_detail::max_pool2d_reference, pool_detail::avg_pool2d_reference,
       pool_detail::adaptive_avg_pool2d_reference},
      {{"fast", "production",
        "OpenMP over (plane, output row); interior outputs vectorised (AVX-512/AVX2/NEON/portable copies), "
        "padded edges scalar; adaptive average: bin rows summed into column sums, global 1x1 one "
        "vectorised sum per plane (adaptive_avg_pool2d.cpp)",
        "cpu/pool/pool2d_fast.cpp", "every geometry"},
       pool_detail::max_pool2d_fast, pool_detail::avg_pool2d_fast,
       pool_detail::adaptive_avg_pool2d_fast},
  };
  return t;
}

const PoolAlgo& find(const std::string& algo, const char* op) {
  const std::string name = algo == "auto" ? "fast" : algo;
  for (const PoolAlgo& a : table())
    if (a.info.name == name) return a;
  std::string choices = "'auto'";
  for (const PoolAlgo& a : table()) choices += ", '" + a.info.name + "'";
  throw std::invalid_argument(std::string(op) + ": unknown algo '" + algo + "'; expected one of " +
                              choices);
}

}  // namespace

void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int64_t* indices,
                        const std::string& algo) {
  find(algo, "max_pool2d").max_fn(g, x, y, indices);
}

void avg_pool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const float* x, float* y,
                        const std::string& algo) {
  const PoolAlgo& a = find(algo, "avg_pool2d");
  if (g.dilation_h != 1 || g.dilation_w != 1)
    throw std::invalid_argument("avg_pool2d: average pooling has no dilation");
  a.avg_fn(g, count_include_pad, x, y);
}

void adaptive_avg_pool2d_forward(const AdaptivePool2dGeometry& g, const float* x, float* y,
                                 const std::string& algo) {
  find(algo, "adaptive_avg_pool2d").adaptive_avg_fn(g, x, y);
}

std::vector<KernelInfo> pool2d_algos() {
  std::vector<KernelInfo> out;
  for (const PoolAlgo& a : table()) out.push_back(a.info);
  return out;
}

}  // namespace convforge::cpu
