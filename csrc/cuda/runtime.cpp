// Error checks, per-device streams and the caching allocator (see runtime.h).
#include "cuda/runtime.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace convforge::cuda {

void throw_cuda_error(cudaError_t err, const char* op, const char* what) {
  throw std::runtime_error(std::string("convforge.cuda: ") + op + ": " + what + " failed: " +
                           cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
}

void check_launch(const char* op) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, op, "kernel launch");
}

namespace {

std::atomic<bool> g_cuda_touched{false};  // this process has called the CUDA runtime
std::atomic<bool> g_forked_child{false};  // ... and then fork()ed: we are the child
std::atomic<int> g_device_count{0};

// Runs in the child only, right after fork(), in the one thread the child has.
void after_fork_in_child() {
  if (g_cuda_touched.load()) g_forked_child.store(true);
}

}  // namespace

void check_not_forked(const char* op) {
  if (g_forked_child.load(std::memory_order_relaxed))
    throw std::runtime_error(
        std::string("convforge.cuda: ") + op +
        ": CUDA cannot be used after fork: this process was forked from one that had already "
        "initialised CUDA, and a CUDA context does not survive fork. Start worker processes with "
        "the 'spawn' start method (multiprocessing.get_context('spawn'), or "
        "ProcessPoolExecutor(mp_context=multiprocessing.get_context('spawn'))) or 'forkserver', "
        "and create device arrays in the worker");
  if (!g_cuda_touched.load(std::memory_order_relaxed)) {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
    g_cuda_touched.store(true);
  }
}

int device_count() {
  if (g_forked_child.load(std::memory_order_relaxed)) return g_device_count.load();
  check_not_forked("device_count");
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the (non-sticky) error so that later checks do not see it
    n = 0;
  }
  g_device_count.store(n);
  return n;
}

int current_device() {
  check_not_forked("current_device");
  int d = 0;
  CUDA_CHECK("current_device", cudaGetDevice(&d));
  return d;
}

DeviceGuard::DeviceGuard(int device) {
  check_not_forked("set device");
  CUDA_CHECK("set device", cudaGetDevice(&previous_));
  if (previous_ != device) CUDA_CHECK("set device", cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

namespace {

constexpr int kMaxDevices = 64;

std::mutex& streams_mutex() {
  static std::mutex m;
  return m;
}
cudaStream_t g_streams[kMaxDevices] = {};

void check_device_index(int device, const char* op) {
  if (device < 0 || device >= kMaxDevices)
    throw std::invalid_argument(std::string("convforge.cuda: ") + op + ": bad device index " +
                                std::to_string(device));
}

}  // namespace

cudaStream_t stream_for(int device) {
  check_not_forked("stream");
  check_device_index(device, "stream");
  std::lock_guard<std::mutex> lock(streams_mutex());
  if (!g_streams[device]) {
    DeviceGuard guard(device);
    cudaStream_t s = nullptr;
    CUDA_CHECK("create stream", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    g_streams[device] = s;
  }
  return g_streams[device];
}

cudaStream_t current_stream() { return stream_for(current_device()); }

void synchronize(int device) {
  cudaStream_t s = stream_for(device);
  CUDA_CHECK("synchronize", cudaStreamSynchronize(s));
}

const DeviceProps& device_props(int device) {
  check_not_forked("device properties");
  check_device_index(device, "device_props");
  static std::mutex m;
  static std::map<int, DeviceProps> cache;
  std::lock_guard<std::mutex> lock(m);
  auto it = cache.find(device);
  if (it != cache.end()) return it->second;
  DeviceProps p;
  int v = 0;
  CUDA_CHECK("device properties", cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
  p.sm_count = v;
  // cudaDevAttrClockRate is the SM boost clock in kHz.
  if (cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, device) == cudaSuccess) p.clock_khz = v;
  else cudaGetLastError();
  CUDA_CHECK("device properties", cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, device));
  p.major = v;
  CUDA_CHECK("device properties", cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMinor, device));
  p.minor = v;
  CUDA_CHECK("device properties", cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  p.smem_per_block_optin = static_cast<size_t>(v);
  CUDA_CHECK("device properties", cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, device));
  p.l2_bytes = static_cast<size_t>(v);
  return cache.emplace(device, p).first->second;
}

// ---- allocator ---------------------------------------------------------------------------

namespace {

constexpr size_t kSmallStep = 512;
constexpr size_t kSmallLimit = size_t(1) << 20;
constexpr size_t kLargeStep = size_t(2) << 20;

size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}

struct Allocator {
  std::mutex m;
  // per device: class size -> cached free blocks
  std::map<int, std::map<size_t, std::vector<void*>>> free_lists;
  // live block -> (class size, device)
  std::unordered_map<void*, std::pair<size_t, int>> live;
  AllocatorStats stats;

  // Frees every cached block (caller holds m). Synchronises each device first: a cached block
  // may still be in use by queued kernels.
  void release_cached() {
    for (auto& dev_lists : free_lists) {
      bool any = false;
      for (auto& kv : dev_lists.second) any = any || !kv.second.empty();
      if (!any) continue;
      DeviceGuard guard(dev_lists.first);
      cudaDeviceSynchronize();
      for (auto& kv : dev_lists.second) {
        for (void* p : kv.second) {
          cudaFree(p);
          stats.reserved_bytes -= static_cast<int64_t>(kv.first);
        }
        kv.second.clear();
      }
    }
  }
};

Allocator& allocator() {
  // Never destroyed: blocks may be freed by Python objects after static destruction begins.
  static Allocator* a = new Allocator();
  return *a;
}

std::atomic<bool> g_poison{false};

}  // namespace

void* device_alloc(size_t bytes, int device) {
  check_not_forked("allocate");
  check_device_index(device, "allocate");
  const size_t cls = size_class(bytes);
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.m);
  a.stats.num_allocs++;
  auto& lists = a.free_lists[device];
  auto it = lists.find(cls);
  void* p = nullptr;
  if (it != lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    a.stats.num_cache_hits++;
  } else {
    DeviceGuard guard(device);
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      a.release_cached();
      err = cudaMalloc(&p, cls);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("convforge.cuda: allocate: cudaMalloc of " + std::to_string(cls) +
                               " bytes on cuda:" + std::to_string(device) + " failed: " +
                               cudaGetErrorString(err) + " (convforge holds " +
                               std::to_string(a.stats.reserved_bytes) + " bytes)");
    }
    a.stats.num_device_mallocs++;
    a.stats.reserved_bytes += static_cast<int64_t>(cls);
  }
  a.live[p] = {cls, device};
  a.stats.allocated_bytes += static_cast<int64_t>(cls);
  a.stats.peak_allocated_bytes = std::max(a.stats.peak_allocated_bytes, a.stats.allocated_bytes);
  return p;
}

void device_free(void* ptr, int device, bool exported) noexcept {
  if (!ptr || g_forked_child.load()) return;  // a forked child: the parent's block, leave it
  Allocator& a = allocator();
  if (exported) {
    // Another library may have queued work on this memory on its own stream.
    int previous = -1;
    if (cudaGetDevice(&previous) == cudaSuccess) {
      if (previous != device) cudaSetDevice(device);
      cudaDeviceSynchronize();
      if (previous != device) cudaSetDevice(previous);
    }
  }
  std::lock_guard<std::mutex> lock(a.m);
  auto it = a.live.find(ptr);
  if (it == a.live.end()) return;  // not ours: nothing to do (never happens for our blocks)
  const size_t cls = it->second.first;
  const int dev = it->second.second;
  a.live.erase(it);
  a.stats.allocated_bytes -= static_cast<int64_t>(cls);
  a.free_lists[dev][cls].push_back(ptr);
}

void empty_cache() {
  check_not_forked("empty_cache");
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.m);
  a.release_cached();
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.m);
  return a.stats;
}

void reset_peak_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.m);
  a.stats.peak_allocated_bytes = a.stats.allocated_bytes;
}

Workspace::Workspace(size_t bytes) : device_(current_device()) {
  ptr_ = device_alloc(bytes, device_);
}

Workspace::~Workspace() { device_free(ptr_, device_, false); }

void set_poison_outputs(bool on) { g_poison = on; }
bool poison_outputs() { return g_poison; }

}  // namespace convforge::cuda
