// convforge._cuda: the device array type and the CUDA backend of the protocol in
// docs/architecture.md. Thin: argument plumbing, output allocation, the GIL released around
// device work; every kernel lives in csrc/cuda/ behind plain C++ headers.
//
// Geometry arguments are read by attribute (N, C, H, ... as bound in convforge._C) and
// re-validated with common/geometry.h, so that a kernel never sees sizes that disagree with
// its buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cuda_runtime_api.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/geometry.h"
#include "cuda/arch_info.h"
#include "cuda/batch_norm.h"
#include "cuda/conv2d.h"
#include "cuda/dlpack_abi.h"
#include "cuda/elementwise.h"
#include "cuda/gemm.h"
#include "cuda/pool2d.h"
#include "cuda/runtime.h"

namespace py = pybind11;
using namespace convforge;
namespace cu = convforge::cuda;
namespace dl = convforge::dlpack;

namespace {

// ---- storage and the device array ----------------------------------------------------------

struct Storage {
  void* ptr = nullptr;
  int device = 0;
  bool pooled = false;           // from convforge's allocator
  bool exported = false;         // handed to another library (synchronise before reuse)
  py::object owner;              // __cuda_array_interface__ import: keeps the producer alive
  dl::DLManagedTensor* dlm = nullptr;            // DLPack import (legacy)
  dl::DLManagedTensorVersioned* dlv = nullptr;   // DLPack import (versioned)

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    try {
      if (pooled) {
        cu::device_free(ptr, device, exported);
        return;
      }
      // Borrowed memory: our queued kernels may still read it; once we let go, its owner may
      // hand it out again on another stream.
      {
        cu::DeviceGuard guard(device);
        cudaStreamSynchronize(cu::stream_for(device));
      }
    } catch (...) {
      // A destructor must not throw; a sticky CUDA error will surface at the next checked call.
    }
    if (dlm && dlm->deleter) dlm->deleter(dlm);
    if (dlv && dlv->deleter) dlv->deleter(dlv);
    if (owner) {
      if (Py_IsInitialized()) {
        py::gil_scoped_acquire gil;
        owner = py::object();
      } else {
        owner.release();  // the interpreter is gone: leak rather than crash
      }
    }
  }
};

std::string normalise_typestr(const std::string& t) {
  // '=' or native '<' on little-endian; single-byte types use '|'.
  if (t.size() == 3 && (t[0] == '=' || t[0] == '<' || t[0] == '|')) {
    const char kind = t[1], size = t[2];
    if (size == '1') return std::string("|") + kind + size;
    return std::string("<") + kind + size;
  }
  return t;
}

bool supported_typestr(const std::string& t) {
  static const char* ok[] = {"<f4", "<f8", "<f2", "<i8", "<i4", "<i2", "|i1", "|u1", "<u2", "<u4", "<u8", "|b1"};
  for (const char* s : ok)
    if (t == s) return true;
  return false;
}

int itemsize_of(const std::string& t) { return std::stoi(t.substr(2)); }

struct DeviceArray {
  std::shared_ptr<Storage> st;
  char* data = nullptr;
  std::vector<int64_t> shape;
  std::string typestr = "<f4";
  int device = 0;

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int itemsize() const { return itemsize_of(typestr); }
  int64_t nbytes() const { return size() * itemsize(); }
  bool is_f32() const { return typestr == "<f4"; }
  float* f() const { return reinterpret_cast<float*>(data); }
  int64_t* i64() const { return reinterpret_cast<int64_t*>(data); }
};

DeviceArray empty(const std::vector<int64_t>& shape, const std::string& typestr, int device) {
  DeviceArray a;
  a.shape = shape;
  a.typestr = typestr;
  a.device = device;
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("convforge.cuda: negative dimension in shape");
  const int64_t bytes = a.nbytes();
  auto st = std::make_shared<Storage>();
  st->device = device;
  st->ptr = cu::device_alloc(static_cast<size_t>(bytes), device);
  st->pooled = true;
  a.st = st;
  a.data = static_cast<char*>(st->ptr);
  if (cu::poison_outputs() && bytes > 0) {
    cu::DeviceGuard guard(device);  // async memsets go to a stream of the current device
    CUDA_CHECK("poison output", cudaMemsetAsync(a.data, 0xFF, bytes, cu::stream_for(device)));
  }
  return a;
}

py::tuple shape_tuple(const std::vector<int64_t>& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

// ---- host <-> device ---------------------------------------------------------------------------

DeviceArray to_device(py::array arr, int device) {
  if (device < 0 || device >= cu::device_count())
    throw std::invalid_argument("to_device: no CUDA device cuda:" + std::to_string(device) +
                                " (" + std::to_string(cu::device_count()) + " visible)");
  if (!(arr.flags() & py::array::c_style))
    arr = py::array::ensure(arr, py::array::c_style);
  const std::string t = normalise_typestr(py::str(arr.dtype().attr("str")));
  if (!supported_typestr(t))
    throw py::type_error("to_device: unsupported dtype " + std::string(py::str(arr.dtype())));
  std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
  DeviceArray out = empty(shape, t, device);
  const int64_t bytes = out.nbytes();
  if (bytes > 0) {
    const void* src = arr.data();
    py::gil_scoped_release release;
    cu::DeviceGuard guard(device);
    // From pageable memory the copy returns once the source has been staged.
    CUDA_CHECK("to_device", cudaMemcpyAsync(out.data, src, bytes, cudaMemcpyHostToDevice,
                                            cu::stream_for(device)));
  }
  return out;
}

py::array to_numpy(const DeviceArray& a) {
  py::array out(py::dtype(a.typestr), a.shape);
  const int64_t bytes = a.nbytes();
  if (bytes > 0) {
    void* dst = out.mutable_data();
    py::gil_scoped_release release;
    cu::DeviceGuard guard(a.device);
    cudaStream_t s = cu::stream_for(a.device);
    CUDA_CHECK("numpy", cudaMemcpyAsync(dst, a.data, bytes, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK("numpy", cudaStreamSynchronize(s));
  }
  return out;
}

DeviceArray copy_of(const DeviceArray& a) {
  DeviceArray out = empty(a.shape, a.typestr, a.device);
  if (a.nbytes() > 0) {
    cu::DeviceGuard guard(a.device);
    CUDA_CHECK("copy", cudaMemcpyAsync(out.data, a.data, a.nbytes(), cudaMemcpyDeviceToDevice,
                                       cu::stream_for(a.device)));
  }
  return out;
}

// Makes `consumer` wait for everything queued so far on convforge's stream of `device`.
void order_after_ours(int device, cudaStream_t consumer, const char* op) {
  cu::DeviceGuard guard(device);
  cudaEvent_t ev;
  CUDA_CHECK(op, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  cudaError_t e1 = cudaEventRecord(ev, cu::stream_for(device));
  cudaError_t e2 = e1 == cudaSuccess ? cudaStreamWaitEvent(consumer, ev, 0) : e1;
  cudaEventDestroy(ev);
  CUDA_CHECK(op, e2);
}

// Makes convforge's stream wait for `producer` (a foreign stream handle).
void order_ours_after(int device, cudaStream_t producer, const char* op) {
  cu::DeviceGuard guard(device);
  cudaEvent_t ev;
  CUDA_CHECK(op, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  cudaError_t e1 = cudaEventRecord(ev, producer);
  cudaError_t e2 = e1 == cudaSuccess ? cudaStreamWaitEvent(cu::stream_for(device), ev, 0) : e1;
  cudaEventDestroy(ev);
  CUDA_CHECK(op, e2);
}

// ---- DLPack ---------------------------------------------------------------------------------

dl::DLDataType dl_dtype(const std::string& t) {
  dl::DLDataType d{};
  d.lanes = 1;
  d.bits = static_cast<uint8_t>(itemsize_of(t) * 8);
  switch (t[1]) {
    case 'f': d.code = dl::kDLFloat; break;
    case 'i': d.code = dl::kDLInt; break;
    case 'u': d.code = dl::kDLUInt; break;
    case 'b': d.code = dl::kDLBool; break;
    default: throw py::type_error("__dlpack__: unsupported dtype " + t);
  }
  return d;
}

std::string typestr_of(const dl::DLDataType& d) {
  if (d.lanes != 1) throw py::type_error("from_dlpack: vector dtypes (lanes > 1) are not supported");
  const int bytes = d.bits / 8;
  std::string kind;
  switch (d.code) {
    case dl::kDLFloat: kind = "f"; break;
    case dl::kDLInt: kind = "i"; break;
    case dl::kDLUInt: kind = "u"; break;
    case dl::kDLBool: kind = "b"; break;
    default: throw py::type_error("from_dlpack: unsupported DLPack dtype code " + std::to_string(d.code));
  }
  std::string t = (bytes == 1 ? "|" : "<") + kind + std::to_string(bytes);
  if (!supported_typestr(t)) throw py::type_error("from_dlpack: unsupported dtype " + t);
  return t;
}

struct ExportCtx {
  std::shared_ptr<Storage> st;
  std::vector<int64_t> shape;
};

template <class Managed>
void export_deleter(Managed* self) {
  delete static_cast<ExportCtx*>(self->manager_ctx);
  delete self;
}

template <class Managed>
void fill_export(Managed* m, const DeviceArray& a) {
  auto* ctx = new ExportCtx{a.st, a.shape};
  m->manager_ctx = ctx;
  m->deleter = &export_deleter<Managed>;
  dl::DLTensor& t = m->dl_tensor;
  t.data = a.data;
  t.device = {dl::kDLCUDA, a.device};
  t.ndim = static_cast<int32_t>(a.shape.size());
  t.dtype = dl_dtype(a.typestr);
  t.shape = ctx->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
}

void legacy_capsule_destructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor")) {  // never consumed
    auto* m = static_cast<dl::DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
}
void versioned_capsule_destructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<dl::DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    if (m && m->deleter) m->deleter(m);
  }
}

py::object dlpack_export(const DeviceArray& self, py::object stream, py::object max_version,
                         py::object dl_device, py::object copy) {
  if (!dl_device.is_none()) {
    auto d = dl_device.cast<std::pair<int, int>>();
    if (d.first != dl::kDLCUDA || d.second != self.device)
      throw py::buffer_error("__dlpack__: this array lives on cuda:" + std::to_string(self.device) +
                             "; it cannot be exported to another device without a copy");
  }
  DeviceArray a = (!copy.is_none() && copy.cast<bool>()) ? copy_of(self) : self;
  // Order the consumer's stream after our queued work (DLPack's stream argument).
  if (stream.is_none()) {
    order_after_ours(a.device, cudaStreamLegacy, "__dlpack__");
  } else {
    const intptr_t s = stream.cast<intptr_t>();
    if (s != -1) {
      cudaStream_t cs = s == 0 || s == 1 ? cudaStreamLegacy
                        : s == 2        ? cudaStreamPerThread
                                        : reinterpret_cast<cudaStream_t>(s);
      order_after_ours(a.device, cs, "__dlpack__");
    }
  }
  a.st->exported = true;
  bool versioned = false;
  if (!max_version.is_none()) {
    auto v = max_version.cast<std::pair<int, int>>();
    versioned = v.first >= 1;
  }
  if (versioned) {
    auto* m = new dl::DLManagedTensorVersioned{};
    m->version = {1, 0};
    m->flags = (!copy.is_none() && copy.cast<bool>()) ? 2u : 0u;
    fill_export(m, a);
    PyObject* cap = PyCapsule_New(m, "dltensor_versioned", versioned_capsule_destructor);
    if (!cap) {
      m->deleter(m);
      throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(cap);
  }
  auto* m = new dl::DLManagedTensor{};
  fill_export(m, a);
  PyObject* cap = PyCapsule_New(m, "dltensor", legacy_capsule_destructor);
  if (!cap) {
    m->deleter(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

// A contiguous DeviceArray over borrowed memory; a strided view is copied (and the copy
// awaited, so that the source may be released at once).
DeviceArray wrap_borrowed(std::shared_ptr<Storage> st, char* data, std::vector<int64_t> shape,
                          const std::string& typestr, const int64_t* strides /* elements or null */) {
  DeviceArray a;
  a.st = std::move(st);
  a.data = data;
  a.shape = std::move(shape);
  a.typestr = typestr;
  a.device = a.st->device;
  if (!strides) return a;
  bool contiguous = true;
  int64_t expect = 1;
  for (int d = static_cast<int>(a.shape.size()) - 1; d >= 0; --d) {
    if (a.shape[d] != 1 && strides[d] != expect) contiguous = false;
    expect *= a.shape[d];
  }
  if (contiguous || a.size() == 0) return a;
  DeviceArray out = empty(a.shape, typestr, a.device);
  std::vector<int64_t> str(strides, strides + a.shape.size());
  {
    py::gil_scoped_release release;
    cu::DeviceGuard guard(a.device);
    cu::strided_copy(static_cast<int>(a.shape.size()), a.shape.data(), str.data(), a.itemsize(),
                     a.data, out.data);
    CUDA_CHECK("from_dlpack (strided copy)", cudaStreamSynchronize(cu::stream_for(a.device)));
  }
  return out;
}

DeviceArray from_dlpack_capsule(py::capsule cap) {
  PyObject* c = cap.ptr();
  auto st = std::make_shared<Storage>();
  dl::DLTensor* t = nullptr;
  if (PyCapsule_IsValid(c, "dltensor_versioned")) {
    auto* m = static_cast<dl::DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    if (m->version.major > 1) throw py::buffer_error("from_dlpack: DLPack version too new");
    t = &m->dl_tensor;
    if (t->device.device_type != dl::kDLCUDA && t->device.device_type != dl::kDLCUDAManaged)
      throw py::type_error("from_dlpack: the array is not on a CUDA device (DLPack device type " +
                           std::to_string(t->device.device_type) + "); use convforge.to_device for host arrays");
    st->dlv = m;
    PyCapsule_SetName(c, "used_dltensor_versioned");
  } else if (PyCapsule_IsValid(c, "dltensor")) {
    auto* m = static_cast<dl::DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    t = &m->dl_tensor;
    if (t->device.device_type != dl::kDLCUDA && t->device.device_type != dl::kDLCUDAManaged)
      throw py::type_error("from_dlpack: the array is not on a CUDA device (DLPack device type " +
                           std::to_string(t->device.device_type) + "); use convforge.to_device for host arrays");
    st->dlm = m;
    PyCapsule_SetName(c, "used_dltensor");
  } else {
    throw py::type_error("from_dlpack: expected an unused DLPack capsule");
  }
  st->device = t->device.device_id;
  st->ptr = t->data;
  const std::string typestr = typestr_of(t->dtype);
  std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
  char* data = static_cast<char*>(t->data) + t->byte_offset;
  return wrap_borrowed(st, data, shape, typestr, t->strides);
}

DeviceArray from_cuda_array_interface(py::object obj) {
  py::dict d = obj.attr("__cuda_array_interface__");
  if (d.contains("mask") && !d["mask"].is_none())
    throw py::type_error("__cuda_array_interface__: masked arrays are not supported");
  auto shape = d["shape"].cast<std::vector<int64_t>>();
  const std::string typestr = normalise_typestr(d["typestr"].cast<std::string>());
  if (!supported_typestr(typestr))
    throw py::type_error("__cuda_array_interface__: unsupported typestr " + typestr);
  auto data = d["data"].cast<py::tuple>();
  const uintptr_t ptr = data[0].cast<uintptr_t>();
  int device = cu::current_device();
  if (ptr != 0) {
    cudaPointerAttributes attr{};
    CUDA_CHECK("__cuda_array_interface__", cudaPointerGetAttributes(&attr, reinterpret_cast<void*>(ptr)));
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
      throw py::type_error("__cuda_array_interface__: the pointer is not device memory");
    device = attr.device;
  }
  if (d.contains("stream") && !d["stream"].is_none()) {
    const intptr_t s = d["stream"].cast<intptr_t>();
    cudaStream_t ps = s == 1 ? cudaStreamLegacy : s == 2 ? cudaStreamPerThread : reinterpret_cast<cudaStream_t>(s);
    order_ours_after(device, ps, "__cuda_array_interface__");
  }
  std::vector<int64_t> strides;
  const int item = itemsize_of(typestr);
  if (d.contains("strides") && !d["strides"].is_none()) {
    for (auto b : d["strides"].cast<std::vector<int64_t>>()) {
      if (b % item) throw py::type_error("__cuda_array_interface__: strides not a multiple of the item size");
      strides.push_back(b / item);
    }
  }
  auto st = std::make_shared<Storage>();
  st->device = device;
  st->ptr = reinterpret_cast<void*>(ptr);
  st->owner = obj;
  return wrap_borrowed(st, reinterpret_cast<char*>(ptr), shape, typestr,
                       strides.empty() ? nullptr : strides.data());
}

// ---- argument plumbing for the ops --------------------------------------------------------------

int64_t geti(py::handle o, const char* name) { return o.attr(name).cast<int64_t>(); }

Conv2dGeometry conv_geom(py::handle o) {
  const int64_t C = geti(o, "C"), groups = geti(o, "groups");
  return make_conv2d_geometry(geti(o, "N"), C, geti(o, "H"), geti(o, "W"), geti(o, "K"),
                              groups > 0 ? C / groups : 0, geti(o, "R"), geti(o, "S"),
                              geti(o, "stride_h"), geti(o, "stride_w"), geti(o, "pad_top"),
                              geti(o, "pad_bottom"), geti(o, "pad_left"), geti(o, "pad_right"),
                              geti(o, "dilation_h"), geti(o, "dilation_w"), groups);
}

Pool2dGeometry pool_geom(py::handle o) {
  return make_pool2d_geometry(geti(o, "N"), geti(o, "C"), geti(o, "H"), geti(o, "W"),
                              geti(o, "R"), geti(o, "S"), geti(o, "stride_h"),
                              geti(o, "stride_w"), geti(o, "pad_h"), geti(o, "pad_w"),
                              geti(o, "dilation_h"), geti(o, "dilation_w"),
                              o.attr("ceil_mode").cast<bool>());
}

AdaptivePool2dGeometry adaptive_geom(py::handle o) {
  return make_adaptive_pool2d_geometry(geti(o, "N"), geti(o, "C"), geti(o, "H"), geti(o, "W"),
                                       geti(o, "P"), geti(o, "Q"));
}

void need_f32(const DeviceArray& a, const char* op, const char* name) {
  if (!a.is_f32())
    throw py::type_error(std::string(op) + ": " + name + " must be float32, got " +
                         std::string(py::str(py::dtype(a.typestr))));
}

void need_shape(const DeviceArray& a, const std::vector<int64_t>& shape, const char* op,
                const char* name) {
  if (a.shape != shape)
    throw std::invalid_argument(std::string(op) + ": " + name + " has shape " + shape_str(a.shape) +
                                ", expected " + shape_str(shape));
}

// Every array of one call must be on one device; returns it.
int same_device(const char* op, std::initializer_list<const DeviceArray*> arrays) {
  int dev = -1;
  for (const DeviceArray* a : arrays) {
    if (!a) continue;
    if (dev < 0) dev = a->device;
    else if (a->device != dev)
      throw std::invalid_argument(std::string(op) + ": arrays are on different devices (cuda:" +
                                  std::to_string(dev) + " and cuda:" + std::to_string(a->device) + ")");
  }
  return dev < 0 ? 0 : dev;
}

const DeviceArray* opt(const std::optional<DeviceArray>& a) { return a ? &*a : nullptr; }

// ---- the protocol ---------------------------------------------------------------------------------

DeviceArray conv2d_forward(const DeviceArray& x, const DeviceArray& w, std::optional<DeviceArray> bias,
                           py::handle geom, const std::string& algo, bool relu) {
  const char* op = "conv2d";
  const Conv2dGeometry g = conv_geom(geom);
  need_f32(x, op, "input"); need_f32(w, op, "weight");
  need_shape(x, {g.N, g.C, g.H, g.W}, op, "input");
  need_shape(w, {g.K, g.C_per_group(), g.R, g.S}, op, "weight");
  if (bias) { need_f32(*bias, op, "bias"); need_shape(*bias, {g.K}, op, "bias"); }
  const int dev = same_device(op, {&x, &w, opt(bias)});
  cu::DeviceGuard guard(dev);
  DeviceArray y = empty({g.N, g.K, g.P, g.Q}, "<f4", dev);
  const float* b = bias ? bias->f() : nullptr;
  {
    py::gil_scoped_release release;
    cu::conv2d_forward(g, x.f(), w.f(), b, y.f(), algo, relu);
  }
  return y;
}

py::tuple conv2d_backward(const DeviceArray& dy, const DeviceArray& x, const DeviceArray& w,
                          py::handle geom, const std::string& algo, bool need_dx, bool need_dw,
                          bool need_db) {
  const char* op = "conv2d_backward";
  const Conv2dGeometry g = conv_geom(geom);
  need_f32(dy, op, "grad_output"); need_f32(x, op, "input"); need_f32(w, op, "weight");
  need_shape(dy, {g.N, g.K, g.P, g.Q}, op, "grad_output");
  need_shape(x, {g.N, g.C, g.H, g.W}, op, "input");
  need_shape(w, {g.K, g.C_per_group(), g.R, g.S}, op, "weight");
  const int dev = same_device(op, {&dy, &x, &w});
  cu::DeviceGuard guard(dev);
  std::optional<DeviceArray> dx, dw, db;
  if (need_dx) dx = empty(x.shape, "<f4", dev);
  if (need_dw) dw = empty(w.shape, "<f4", dev);
  if (need_db) db = empty({g.K}, "<f4", dev);
  {
    py::gil_scoped_release release;
    if (dx) cu::conv2d_backward_data(g, dy.f(), w.f(), dx->f(), algo);
    if (dw || db) cu::conv2d_backward_weight(g, dy.f(), x.f(), dw ? dw->f() : nullptr,
                                              db ? db->f() : nullptr, algo);
  }
  auto wrap = [](std::optional<DeviceArray>& a) -> py::object {
    return a ? py::cast(std::move(*a)) : py::none();
  };
  return py::make_tuple(wrap(dx), wrap(dw), wrap(db));
}

py::tuple max_pool2d_forward(const DeviceArray& x, py::handle geom, bool want_indices,
                             const std::string& algo) {
  const char* op = "max_pool2d";
  const Pool2dGeometry g = pool_geom(geom);
  need_f32(x, op, "input");
  need_shape(x, {g.N, g.C, g.H, g.W}, op, "input");
  cu::DeviceGuard guard(x.device);
  DeviceArray y = empty({g.N, g.C, g.P, g.Q}, "<f4", x.device);
  std::optional<DeviceArray> idx;
  if (want_indices) idx = empty({g.N, g.C, g.P, g.Q}, "<i8", x.device);
  {
    py::gil_scoped_release release;
    cu::max_pool2d_forward(g, x.f(), y.f(), idx ? idx->i64() : nullptr, algo);
  }
  return py::make_tuple(py::cast(std::move(y)), idx ? py::cast(std::move(*idx)) : py::none());
}

DeviceArray max_pool2d_backward(const DeviceArray& dy, const DeviceArray& indices,
                                const std::vector<int64_t>& input_shape) {
  const char* op = "max_pool2d_backward";
  need_f32(dy, op, "grad_output");
  if (indices.typestr != "<i8") throw py::type_error("max_pool2d_backward: indices must be int64");
  if (input_shape.size() != 4 || dy.shape.size() != 4)
    throw std::invalid_argument("max_pool2d_backward: expected 4-D grad_output and input_shape");
  need_shape(indices, dy.shape, op, "indices");
  if (dy.shape[0] != input_shape[0] || dy.shape[1] != input_shape[1])
    throw std::invalid_argument("max_pool2d_backward: grad_output " + shape_str(dy.shape) +
                                " does not match input_shape " + shape_str(input_shape));
  const int dev = same_device(op, {&dy, &indices});
  cu::DeviceGuard guard(dev);
  DeviceArray dx = empty(input_shape, "<f4", dev);
  const int64_t planes = input_shape[0] * input_shape[1];
  const int64_t PQ = dy.shape[2] * dy.shape[3], HW = input_shape[2] * input_shape[3];
  {
    py::gil_scoped_release release;
    cu::max_pool2d_backward(planes, PQ, HW, dy.f(), indices.i64(), dx.f());
  }
  return dx;
}

DeviceArray avg_pool2d_forward(const DeviceArray& x, py::handle geom, bool count_include_pad,
                               const std::string& algo) {
  const char* op = "avg_pool2d";
  const Pool2dGeometry g = pool_geom(geom);
  need_f32(x, op, "input");
  need_shape(x, {g.N, g.C, g.H, g.W}, op, "input");
  cu::DeviceGuard guard(x.device);
  DeviceArray y = empty({g.N, g.C, g.P, g.Q}, "<f4", x.device);
  {
    py::gil_scoped_release release;
    cu::avg_pool2d_forward(g, count_include_pad, x.f(), y.f(), algo);
  }
  return y;
}

DeviceArray avg_pool2d_backward(const DeviceArray& dy, py::handle geom, bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  const Pool2dGeometry g = pool_geom(geom);
  need_f32(dy, op, "grad_output");
  need_shape(dy, {g.N, g.C, g.P, g.Q}, op, "grad_output");
  cu::DeviceGuard guard(dy.device);
  DeviceArray dx = empty({g.N, g.C, g.H, g.W}, "<f4", dy.device);
  {
    py::gil_scoped_release release;
    cu::avg_pool2d_backward(g, count_include_pad, dy.f(), dx.f());
  }
  return dx;
}

DeviceArray adaptive_avg_pool2d_forward(const DeviceArray& x, py::handle geom, const std::string& algo) {
  const char* op = "adaptive_avg_pool2d";
  const AdaptivePool2dGeometry g = adaptive_geom(geom);
  need_f32(x, op, "input");
  need_shape(x, {g.N, g.C, g.H, g.W}, op, "input");
  cu::DeviceGuard guard(x.device);
  DeviceArray y = empty({g.N, g.C, g.P, g.Q}, "<f4", x.device);
  {
    py::gil_scoped_release release;
    cu::adaptive_avg_pool2d_forward(g, x.f(), y.f(), algo);
  }
  return y;
}

DeviceArray adaptive_avg_pool2d_backward(const DeviceArray& dy, py::handle geom) {
  const char* op = "adaptive_avg_pool2d_backward";
  const AdaptivePool2dGeometry g = adaptive_geom(geom);
  need_f32(dy, op, "grad_output");
  need_shape(dy, {g.N, g.C, g.P, g.Q}, op, "grad_output");
  cu::DeviceGuard guard(dy.device);
  DeviceArray dx = empty({g.N, g.C, g.H, g.W}, "<f4", dy.device);
  {
    py::gil_scoped_release release;
    cu::adaptive_avg_pool2d_backward(g, dy.f(), dx.f());
  }
  return dx;
}

// (N, C, HW) of a batch-norm input (N, C, *).
std::array<int64_t, 3> bn_dims(const DeviceArray& x, const char* op) {
  if (x.shape.size() < 2)
    throw std::invalid_argument(std::string(op) + ": input must be (N, C, *), got " + shape_str(x.shape));
  int64_t hw = 1;
  for (size_t i = 2; i < x.shape.size(); ++i) hw *= x.shape[i];
  return {x.shape[0], x.shape[1], hw};
}

void need_channels(const std::optional<DeviceArray>& a, int64_t C, const char* op, const char* name) {
  if (!a) return;
  need_f32(*a, op, name);
  need_shape(*a, {C}, op, name);
}

// running_mean / running_var are updated in place (training), as in torch.
py::tuple batch_norm_forward(const DeviceArray& x, std::optional<DeviceArray> weight,
                             std::optional<DeviceArray> bias, std::optional<DeviceArray> running_mean,
                             std::optional<DeviceArray> running_var, bool training, double momentum,
                             double eps) {
  const char* op = "batch_norm";
  need_f32(x, op, "input");
  const auto [N, C, HW] = bn_dims(x, op);
  need_channels(weight, C, op, "weight");
  need_channels(bias, C, op, "bias");
  need_channels(running_mean, C, op, "running_mean");
  need_channels(running_var, C, op, "running_var");
  if (!training && (!running_mean || !running_var))
    throw std::invalid_argument("batch_norm: running_mean and running_var are needed outside training");
  const int dev = same_device(op, {&x, opt(weight), opt(bias), opt(running_mean), opt(running_var)});
  cu::DeviceGuard guard(dev);
  DeviceArray y = empty(x.shape, "<f4", dev);
  DeviceArray mean = empty({C}, "<f4", dev), invstd = empty({C}, "<f4", dev);
  {
    py::gil_scoped_release release;
    cu::batch_norm_forward(N, C, HW, x.f(), weight ? weight->f() : nullptr, bias ? bias->f() : nullptr,
                           running_mean ? running_mean->f() : nullptr,
                           running_var ? running_var->f() : nullptr, training, momentum, eps, y.f(),
                           mean.f(), invstd.f());
  }
  return py::make_tuple(py::cast(std::move(y)), py::cast(std::move(mean)), py::cast(std::move(invstd)));
}

py::tuple batch_norm_backward(const DeviceArray& dy, const DeviceArray& x, std::optional<DeviceArray> weight,
                              const DeviceArray& save_mean, const DeviceArray& save_invstd, bool training,
                              bool need_dx, bool need_dw, bool need_db) {
  const char* op = "batch_norm_backward";
  need_f32(dy, op, "grad_output");
  need_f32(x, op, "input");
  need_shape(dy, x.shape, op, "grad_output");
  const auto [N, C, HW] = bn_dims(x, op);
  need_channels(weight, C, op, "weight");
  need_f32(save_mean, op, "save_mean"); need_shape(save_mean, {C}, op, "save_mean");
  need_f32(save_invstd, op, "save_invstd"); need_shape(save_invstd, {C}, op, "save_invstd");
  const int dev = same_device(op, {&dy, &x, opt(weight), &save_mean, &save_invstd});
  cu::DeviceGuard guard(dev);
  std::optional<DeviceArray> dx, dw, db;
  if (need_dx) dx = empty(x.shape, "<f4", dev);
  if (need_dw) dw = empty({C}, "<f4", dev);
  if (need_db) db = empty({C}, "<f4", dev);
  {
    py::gil_scoped_release release;
    cu::batch_norm_backward(N, C, HW, dy.f(), x.f(), weight ? weight->f() : nullptr, save_mean.f(),
                            save_invstd.f(), training, dx ? dx->f() : nullptr, dw ? dw->f() : nullptr,
                            db ? db->f() : nullptr);
  }
  auto wrap = [](std::optional<DeviceArray>& a) -> py::object {
    return a ? py::cast(std::move(*a)) : py::none();
  };
  return py::make_tuple(wrap(dx), wrap(dw), wrap(db));
}

DeviceArray gemm(const DeviceArray& a, const DeviceArray& b, std::optional<DeviceArray> c,
                 float alpha, float beta, bool trans_a, bool trans_b, const std::string& algo) {
  const char* op = "gemm";
  need_f32(a, op, "a"); need_f32(b, op, "b");
  if (a.shape.size() != 2 || b.shape.size() != 2)
    throw std::invalid_argument("gemm: a and b must be 2-D, got shapes " + shape_str(a.shape) +
                                " and " + shape_str(b.shape));
  const int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
  const int64_t Kb = trans_b ? b.shape[1] : b.shape[0], N = trans_b ? b.shape[0] : b.shape[1];
  if (K != Kb)
    throw std::invalid_argument("gemm: op(a) is " + shape_str({M, K}) + " but op(b) is " +
                                shape_str({Kb, N}) + "; inner dimensions differ");
  const bool use_c = c && beta != 0.f;
  if (use_c) { need_f32(*c, op, "c"); need_shape(*c, {M, N}, op, "c"); }
  const int dev = same_device(op, {&a, &b, opt(c)});
  cu::DeviceGuard guard(dev);
  DeviceArray out = empty({M, N}, "<f4", dev);
  {
    py::gil_scoped_release release;
    if (use_c && M * N > 0)
      CUDA_CHECK(op, cudaMemcpyAsync(out.data, c->data, M * N * sizeof(float),
                                     cudaMemcpyDeviceToDevice, cu::stream_for(dev)));
    cu::sgemm(trans_a, trans_b, M, N, K, alpha, a.f(), a.shape[1], b.f(), b.shape[1],
              use_c ? beta : 0.f, out.f(), N, {}, algo);
  }
  return out;
}

DeviceArray linear_forward(const DeviceArray& x, const DeviceArray& w, std::optional<DeviceArray> bias,
                           const std::string& algo) {
  const char* op = "linear";
  need_f32(x, op, "input"); need_f32(w, op, "weight");
  if (x.shape.size() != 2 || w.shape.size() != 2 || x.shape[1] != w.shape[1])
    throw std::invalid_argument("linear: expected input (B, in) and weight (out, in), got " +
                                shape_str(x.shape) + " and " + shape_str(w.shape));
  const int64_t B = x.shape[0], in = x.shape[1], out_f = w.shape[0];
  if (bias) { need_f32(*bias, op, "bias"); need_shape(*bias, {out_f}, op, "bias"); }
  const int dev = same_device(op, {&x, &w, opt(bias)});
  cu::DeviceGuard guard(dev);
  DeviceArray y = empty({B, out_f}, "<f4", dev);
  cu::GemmEpilogue ep;
  ep.col_bias = bias ? bias->f() : nullptr;
  {
    py::gil_scoped_release release;
    cu::sgemm(false, true, B, out_f, in, 1.f, x.f(), in, w.f(), in, 0.f, y.f(), out_f, ep, algo);
  }
  return y;
}

using Unary = void (*)(int64_t, const float*, float*);
using Binary = void (*)(int64_t, const float*, const float*, float*);

DeviceArray run_unary(const char* op, Unary f, const DeviceArray& x) {
  need_f32(x, op, "input");
  cu::DeviceGuard guard(x.device);
  DeviceArray y = empty(x.shape, "<f4", x.device);
  {
    py::gil_scoped_release release;
    f(x.size(), x.f(), y.f());
  }
  return y;
}

DeviceArray run_binary(const char* op, Binary f, const DeviceArray& dy, const DeviceArray& s) {
  need_f32(dy, op, "grad_output"); need_f32(s, op, "saved");
  need_shape(s, dy.shape, op, "the saved tensor");
  const int dev = same_device(op, {&dy, &s});
  cu::DeviceGuard guard(dev);
  DeviceArray dx = empty(dy.shape, "<f4", dev);
  {
    py::gil_scoped_release release;
    f(dy.size(), dy.f(), s.f(), dx.f());
  }
  return dx;
}

void check_ce(const DeviceArray& logits, const DeviceArray& labels, const char* op) {
  need_f32(logits, op, "logits");
  if (labels.typestr != "<i8") throw py::type_error(std::string(op) + ": labels must be int64");
  if (logits.shape.size() != 2 || labels.shape.size() != 1 || labels.shape[0] != logits.shape[0])
    throw std::invalid_argument(std::string(op) + ": expected logits (N, classes) and labels (N,), got " +
                                shape_str(logits.shape) + " and " + shape_str(labels.shape));
}

float cross_entropy_forward(const DeviceArray& logits, const DeviceArray& labels) {
  const char* op = "cross_entropy";
  check_ce(logits, labels, op);
  const int dev = same_device(op, {&logits, &labels});
  cu::DeviceGuard guard(dev);
  py::gil_scoped_release release;
  return cu::cross_entropy_forward(logits.shape[0], logits.shape[1], logits.f(), labels.i64());
}

DeviceArray cross_entropy_backward(const DeviceArray& logits, const DeviceArray& labels) {
  const char* op = "cross_entropy_backward";
  check_ce(logits, labels, op);
  const int dev = same_device(op, {&logits, &labels});
  cu::DeviceGuard guard(dev);
  DeviceArray d = empty(logits.shape, "<f4", dev);
  {
    py::gil_scoped_release release;
    cu::cross_entropy_backward(logits.shape[0], logits.shape[1], logits.f(), labels.i64(), d.f());
  }
  return d;
}

DeviceArray sum_rows(const DeviceArray& a) {
  const char* op = "sum_rows";
  need_f32(a, op, "a");
  if (a.shape.size() != 2) throw std::invalid_argument("sum_rows: expected a 2-D array, got " + shape_str(a.shape));
  cu::DeviceGuard guard(a.device);
  DeviceArray out = empty({a.shape[1]}, "<f4", a.device);
  {
    py::gil_scoped_release release;
    cu::sum_rows(a.shape[0], a.shape[1], a.f(), out.f());
  }
  return out;
}

py::list algos(const std::string& op) {
  std::vector<cu::KernelInfo> v;
  if (op == "conv2d_forward") v = cu::conv2d_forward_algos();
  else if (op == "conv2d_backward") v = cu::conv2d_backward_algos();
  else if (op == "gemm") v = cu::gemm_algos();
  else if (op == "pool2d") v = cu::pool2d_algos();
  else
    throw std::invalid_argument("algos: unknown op '" + op +
                                "'; choose one of conv2d_forward, conv2d_backward, gemm, pool2d");
  py::list out;
  for (const auto& k : v) {
    py::dict d;
    d["name"] = k.name; d["kind"] = k.kind; d["description"] = k.description; d["source"] = k.source;
    out.append(d);
  }
  return out;
}

DeviceArray reshape(const DeviceArray& a, std::vector<int64_t> shape) {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("reshape: only one dimension can be -1");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw std::invalid_argument("reshape: negative dimension");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || a.size() % known) throw std::invalid_argument("reshape: cannot infer -1 for " + shape_str(a.shape));
    shape[infer] = a.size() / known;
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != a.size())
    throw std::invalid_argument("reshape: cannot reshape " + shape_str(a.shape) + " into " + shape_str(shape));
  DeviceArray v = a;
  v.shape = shape;
  return v;
}

py::dict device_properties(int device) {
  if (device < 0 || device >= cu::device_count())
    throw std::invalid_argument("device_properties: no CUDA device cuda:" + std::to_string(device));
  const cu::DeviceProps& p = cu::device_props(device);
  py::dict d;
  cudaDeviceProp prop{};
  CUDA_CHECK("device_properties", cudaGetDeviceProperties(&prop, device));
  const std::string name(prop.name);
  size_t free_b = 0, total_b = 0;
  {
    cu::DeviceGuard guard(device);
    CUDA_CHECK("device_properties", cudaMemGetInfo(&free_b, &total_b));
  }
  int v = 0;
  d["name"] = name;
  d["major"] = p.major;
  d["minor"] = p.minor;
  d["sm_count"] = p.sm_count;
  d["clock_khz"] = p.clock_khz;
  d["l2_bytes"] = p.l2_bytes;
  d["smem_per_block_optin"] = p.smem_per_block_optin;
  d["total_memory"] = total_b;
  d["free_memory"] = free_b;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, device) == cudaSuccess) d["memory_clock_khz"] = v;
  else cudaGetLastError();
  if (cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess) d["memory_bus_bits"] = v;
  else cudaGetLastError();
  return d;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "convforge's CUDA backend (private; use convforge.cuda and convforge.functional)";

  py::class_<DeviceArray>(m, "DeviceArray",
                          "A contiguous array in GPU memory. Ops return as soon as their kernels "
                          "are queued; .numpy() waits for them.")
      .def_property_readonly("shape", [](const DeviceArray& a) { return shape_tuple(a.shape); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return py::dtype(a.typestr); })
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.shape.size(); })
      .def_property_readonly("size", &DeviceArray::size)
      .def_property_readonly("itemsize", &DeviceArray::itemsize)
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def_property_readonly("device", [](const DeviceArray& a) { return "cuda:" + std::to_string(a.device); })
      .def_property_readonly("device_index", [](const DeviceArray& a) { return a.device; })
      .def_property_readonly("data_ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.data); })
      .def("numpy", &to_numpy, "Copies to a new numpy array, after the queued work on this array.")
      .def("copy", &copy_of)
      .def("reshape", [](const DeviceArray& a, py::args args) {
        std::vector<int64_t> s;
        if (args.size() == 1 && !py::isinstance<py::int_>(args[0])) s = args[0].cast<std::vector<int64_t>>();
        else for (auto x : args) s.push_back(x.cast<int64_t>());
        return reshape(a, s);
      })
      .def("__len__", [](const DeviceArray& a) {
        if (a.shape.empty()) throw py::type_error("len() of a 0-d DeviceArray");
        return a.shape[0];
      })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + shape_str(a.shape) + ", dtype=" +
               std::string(py::str(py::dtype(a.typestr))) + ", device='cuda:" + std::to_string(a.device) + "')";
      })
      .def_property_readonly("__cuda_array_interface__", [](const DeviceArray& a) {
        a.st->exported = true;
        py::dict d;
        d["shape"] = shape_tuple(a.shape);
        d["typestr"] = a.typestr;
        d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(a.data), false);
        d["strides"] = py::none();
        d["version"] = 3;
        // The consumer must order its work after this stream (never 0: the handle is ours).
        d["stream"] = reinterpret_cast<uintptr_t>(cu::stream_for(a.device));
        return d;
      })
      .def("__dlpack__", &dlpack_export, py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& a) {
        return py::make_tuple(static_cast<int>(dl::kDLCUDA), a.device);
      });

  // runtime
  m.def("device_count", &cu::device_count);
  m.def("device_properties", &device_properties, py::arg("device") = 0);
  m.def("synchronize", [](int device) {
    py::gil_scoped_release release;
    cu::DeviceGuard guard(device);
    cu::synchronize(device);
  }, py::arg("device") = 0);
  m.def("_stream_handle", [](int device) { return reinterpret_cast<uintptr_t>(cu::stream_for(device)); },
        py::arg("device") = 0);
  m.def("memory_stats", []() {
    const cu::AllocatorStats s = cu::allocator_stats();
    py::dict d;
    d["allocated_bytes"] = s.allocated_bytes;
    d["reserved_bytes"] = s.reserved_bytes;
    d["peak_allocated_bytes"] = s.peak_allocated_bytes;
    d["num_device_mallocs"] = s.num_device_mallocs;
    d["num_allocs"] = s.num_allocs;
    d["num_cache_hits"] = s.num_cache_hits;
    return d;
  });
  m.def("empty_cache", []() { py::gil_scoped_release r; cu::empty_cache(); });
  m.def("reset_peak_memory_stats", &cu::reset_peak_stats);
  m.def("build_info", []() {
    py::dict d;
    d["compiled_architectures"] = std::string(cu::compiled_architectures());
    d["cuda_runtime_compiled"] = cu::compiled_runtime_version();
    int v = 0;
    if (cudaDriverGetVersion(&v) == cudaSuccess) d["cuda_driver"] = v;
    else { cudaGetLastError(); d["cuda_driver"] = 0; }
    if (cudaRuntimeGetVersion(&v) == cudaSuccess) d["cuda_runtime"] = v;
    else cudaGetLastError();
    return d;
  });
  m.def("_set_poison_outputs", &cu::set_poison_outputs);

  // arrays
  m.def("to_device", &to_device, py::arg("array"), py::arg("device") = 0);
  m.def("empty", [](const std::vector<int64_t>& shape, const std::string& typestr, int device) {
    cu::DeviceGuard guard(device);
    return empty(shape, normalise_typestr(typestr), device);
  }, py::arg("shape"), py::arg("typestr") = "<f4", py::arg("device") = 0);
  m.def("_from_dlpack_capsule", &from_dlpack_capsule);
  m.def("_from_cuda_array_interface", &from_cuda_array_interface);

  // the backend protocol (docs/architecture.md)
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("w"), py::arg("bias").none(true),
        py::arg("geom"), py::arg("algo") = "auto", py::arg("relu") = false);
  m.def("conv2d_backward", &conv2d_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("geom"), py::arg("algo") = "auto", py::arg("need_dx") = true,
        py::arg("need_dw") = true, py::arg("need_db") = true);
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("geom"),
        py::arg("want_indices") = false, py::arg("algo") = "auto");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy"), py::arg("indices"),
        py::arg("input_shape"));
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("x"), py::arg("geom"),
        py::arg("count_include_pad") = true, py::arg("algo") = "auto");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("dy"), py::arg("geom"),
        py::arg("count_include_pad") = true);
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, py::arg("x"), py::arg("geom"),
        py::arg("algo") = "auto");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, py::arg("dy"), py::arg("geom"));
  m.def("batch_norm_forward", &batch_norm_forward, py::arg("x"), py::arg("weight").none(true),
        py::arg("bias").none(true), py::arg("running_mean").none(true), py::arg("running_var").none(true),
        py::arg("training"), py::arg("momentum"), py::arg("eps"));
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("dy"), py::arg("x"), py::arg("weight").none(true),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training"), py::arg("need_dx"),
        py::arg("need_dw"), py::arg("need_db"));
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("c").none(true) = py::none(),
        py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("algo") = "auto");
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("w"),
        py::arg("bias").none(true) = py::none(), py::arg("algo") = "auto");
  m.def("relu_forward", [](const DeviceArray& x) { return run_unary("relu", &cu::relu_forward, x); });
  m.def("tanh_forward", [](const DeviceArray& x) { return run_unary("tanh", &cu::tanh_forward, x); });
  m.def("sigmoid_forward", [](const DeviceArray& x) { return run_unary("sigmoid", &cu::sigmoid_forward, x); });
  m.def("relu_backward", [](const DeviceArray& dy, const DeviceArray& x) {
    return run_binary("relu_backward", &cu::relu_backward, dy, x);
  });
  m.def("tanh_backward", [](const DeviceArray& dy, const DeviceArray& y) {
    return run_binary("tanh_backward", &cu::tanh_backward, dy, y);
  });
  m.def("sigmoid_backward", [](const DeviceArray& dy, const DeviceArray& y) {
    return run_binary("sigmoid_backward", &cu::sigmoid_backward, dy, y);
  });
  m.def("cross_entropy_forward", &cross_entropy_forward);
  m.def("cross_entropy_backward", &cross_entropy_backward);
  m.def("sum_rows", &sum_rows);
  m.def("algos", &algos, py::arg("op"));
}
