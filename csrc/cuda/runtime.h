// The CUDA runtime layer of convforge: error checks, one stream per device, and a caching
// allocator. Plain C++ (no kernels) so that the g++-compiled bindings can include it.
//
// Synchronisation model: every op runs on the stream of its inputs' device (one per device,
// created lazily, non-blocking with respect to the legacy default stream). Ops return as soon as
// their kernels are queued; results are ready when DeviceArray.numpy() or cuda.synchronize()
// returns. Exchange with other libraries (DLPack, __cuda_array_interface__) orders their stream
// after ours with an event, so no host synchronisation is needed there.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace convforge::cuda {

// Throws std::runtime_error "convforge.cuda: <op>: <what> failed: <cudaGetErrorString> (<name>)".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* op, const char* what);

#define CUDA_CHECK(op, call)                                                     \
  do {                                                                           \
    cudaError_t cf_err_ = (call);                                                \
    if (cf_err_ != cudaSuccess) ::convforge::cuda::throw_cuda_error(cf_err_, op, #call); \
  } while (0)

// Checks a kernel launch (configuration errors) and any earlier asynchronous fault.
void check_launch(const char* op);

// CUDA does not survive fork(): a child of a process that has initialised it cannot use the
// parent's context, streams or memory, and the driver may hang or crash when asked to. Every
// entry point below calls this first; in such a child it throws std::runtime_error (Python's
// RuntimeError) that says so and names the "spawn" start method. Freeing memory inherited from
// the parent does nothing there (the blocks belong to the parent's context).
void check_not_forked(const char* op);

// Number of visible devices; 0 (never an exception) when there is no driver or no GPU. In a
// forked child (see check_not_forked) the parent's count, without calling CUDA.
int device_count();
int current_device();

// Makes `device` current for the scope and restores the previous device after it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The stream convforge uses on the current device (created on first use).
cudaStream_t current_stream();
cudaStream_t stream_for(int device);
void synchronize(int device);  // waits for convforge's stream on that device

struct DeviceProps {
  int sm_count = 0;
  int clock_khz = 0;
  int major = 0, minor = 0;
  size_t smem_per_block_optin = 0;
  size_t l2_bytes = 0;
};
const DeviceProps& device_props(int device);

// ---- caching allocator -----------------------------------------------------------------
// Blocks are rounded to size classes (512 B steps below 1 MiB, 2 MiB steps above) and kept
// on per-device free lists keyed by class. Since all of convforge's work on a device runs on
// one stream, a freed block may be handed to the next op at once: that op's kernels are queued
// after every kernel that used the block. Blocks that were exported to another library are
// synchronised before reuse (the other library may still be reading them on its own stream).
void* device_alloc(size_t bytes, int device);
void device_free(void* ptr, int device, bool exported) noexcept;
void empty_cache();  // returns every cached free block to the driver

struct AllocatorStats {
  int64_t allocated_bytes = 0;       // in live blocks (class sizes)
  int64_t reserved_bytes = 0;        // live + cached
  int64_t peak_allocated_bytes = 0;
  int64_t num_device_mallocs = 0;    // cudaMalloc calls
  int64_t num_allocs = 0;            // requests
  int64_t num_cache_hits = 0;        // requests served from a free list
};
AllocatorStats allocator_stats();
void reset_peak_stats();

// RAII scratch buffer from the allocator on the current device (workspaces inside launchers).
class Workspace {
 public:
  explicit Workspace(size_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  int device_ = 0;
};

// Poisoned outputs (tests): every new output buffer starts as NaN (all bits set).
void set_poison_outputs(bool on);
bool poison_outputs();

}  // namespace convforge::cuda
