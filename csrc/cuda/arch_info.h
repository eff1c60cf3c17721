// Compile-time facts about the CUDA build.
#pragma once

namespace convforge::cuda {
const char* compiled_architectures();  // nvcc's __CUDA_ARCH_LIST__, e.g. "800,860,900"
int compiled_runtime_version();        // CUDART_VERSION, e.g. 13000
}  // namespace convforge::cuda
