// What this library was compiled for, as nvcc saw it (reported by convforge.cuda.build_info()).
#include <cuda_runtime.h>

#include "cuda/arch_info.h"

#define CF_STR2(...) #__VA_ARGS__
#define CF_STR(...) CF_STR2(__VA_ARGS__)

namespace convforge::cuda {

const char* compiled_architectures() {
#if defined(__CUDA_ARCH_LIST__)
  return CF_STR(__CUDA_ARCH_LIST__);
#else
  return "unknown";
#endif
}

int compiled_runtime_version() { return CUDART_VERSION; }

}  // namespace convforge::cuda
