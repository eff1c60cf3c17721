"""GPU support: device queries, device arrays and zero-copy exchange with other libraries.

``convforge.to_device(np_array)`` makes a :class:`DeviceArray`; every op of
``convforge.functional`` given device arrays runs on the GPU and returns device arrays.

Synchronisation: each device has one convforge stream. Ops return as soon as their kernels are
queued; results are ready when ``DeviceArray.numpy()`` (or :func:`synchronize`) returns. Memory
comes from a caching allocator (see :func:`memory_stats`, :func:`empty_cache`).

Exchange without copies: a DeviceArray has ``__dlpack__``/``__dlpack_device__`` and
``__cuda_array_interface__`` (so ``torch.from_dlpack(arr)`` and ``cupy.asarray(arr)`` work), and
:func:`from_dlpack` turns a torch CUDA tensor, a CuPy array or any object with either protocol
into a DeviceArray. Both directions order the consumer's stream after the producer's work.

Pickling (multiprocessing, ``copy.deepcopy``, caching): a DeviceArray pickles as a host copy of its
data and its device index, and unpickles by copying back to that device; where the receiving
process has no such GPU, unpickling raises a RuntimeError saying so (move models to the CPU with
``model.to("cpu")`` before sending them to such a process).
"""
from __future__ import annotations

import copyreg

import numpy as np

try:
    from . import _cuda
except ImportError as _e:  # built without nvcc
    _cuda = None
    _import_error = _e
else:
    _import_error = None

__all__ = [
    "DeviceArray",
    "is_compiled",
    "is_available",
    "device_count",
    "get_device_name",
    "get_device_capability",
    "get_device_properties",
    "synchronize",
    "to_device",
    "from_dlpack",
    "empty",
    "memory_stats",
    "empty_cache",
    "reset_peak_memory_stats",
    "build_info",
]

_DLPACK_CUDA = 2
_DLPACK_CUDA_MANAGED = 13


def is_compiled() -> bool:
    """True when the CUDA extension (convforge._cuda) was built."""
    return _cuda is not None


def _module():
    if _cuda is None:
        raise RuntimeError(
            "convforge was built without CUDA (no nvcc was found at build time)"
            + (f": {_import_error}" if _import_error else "")
        )
    return _cuda


def _backend():
    """The backend module of the protocol in docs/architecture.md (used by convforge._backend)."""
    m = _module()
    if m.device_count() == 0:
        raise RuntimeError("convforge.cuda: no CUDA GPU is visible")
    return m


def device_count() -> int:
    """Number of visible CUDA devices (0 without a driver, a GPU, or a CUDA build)."""
    return 0 if _cuda is None else int(_cuda.device_count())


def is_available() -> bool:
    """True when convforge was built with CUDA and at least one GPU is visible."""
    return device_count() > 0


def _check_index(i: int) -> int:
    n = device_count()
    if not 0 <= i < n:
        raise ValueError(f"convforge.cuda: no device cuda:{i} ({n} visible)")
    return i


def get_device_properties(i: int = 0) -> dict:
    """name, compute capability, SM count, clock, memory sizes of device i."""
    return dict(_module().device_properties(_check_index(i)))


def get_device_name(i: int = 0) -> str:
    return get_device_properties(i)["name"]


def get_device_capability(i: int = 0) -> tuple:
    p = get_device_properties(i)
    return (p["major"], p["minor"])


def synchronize(device: int = 0) -> None:
    """Waits until convforge's queued work on the device has finished."""
    _module().synchronize(_check_index(device))


def memory_stats() -> dict:
    """The caching allocator's counters: allocated/reserved/peak bytes, cudaMalloc calls, cache hits."""
    return dict(_module().memory_stats())


def empty_cache() -> None:
    """Returns the allocator's cached free blocks to the driver."""
    _module().empty_cache()


def reset_peak_memory_stats() -> None:
    _module().reset_peak_memory_stats()


def build_info() -> dict:
    """Architectures compiled for, CUDA runtime and driver versions (empty without a CUDA build)."""
    return {} if _cuda is None else dict(_cuda.build_info())


def __getattr__(name):
    if name == "DeviceArray":
        return _module().DeviceArray
    raise AttributeError(f"module 'convforge.cuda' has no attribute {name!r}")


def to_device(array, device: int = 0):
    """Copies a numpy array (any layout; its dtype is kept, never cast) to a new DeviceArray."""
    m = _module()
    if _is_device_object(array):
        raise TypeError("to_device: the array is already on a GPU; use convforge.from_dlpack for a zero-copy view")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"to_device: expected a numpy array, got {type(array).__name__}")
    _check_index(device)
    return m.to_device(np.asarray(array, order="C"), device)  # keeps 0-D arrays 0-D


def empty(shape, dtype=np.float32, device: int = 0):
    """An uninitialised DeviceArray."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _module().empty(list(shape), np.dtype(dtype).str, _check_index(device))


def _reduce_device_array(a):
    """pickle's reduction of a DeviceArray: a host copy (after its queued work) and the device index."""
    return _rebuild_device_array, (a.numpy(), int(a.device_index))


def _rebuild_device_array(host: np.ndarray, device: int):
    """Unpickles a DeviceArray: copies host back to cuda:device, or a RuntimeError saying why it cannot."""
    n = device_count()
    if device >= n:
        why = ("convforge was built without CUDA here" if _cuda is None
               else "no CUDA GPU is visible here" if n == 0 else f"only {n} GPU(s) are visible here")
        raise RuntimeError(
            f"cannot unpickle a DeviceArray of shape {tuple(host.shape)} ({host.dtype}) on cuda:{device}: {why}; "
            f"move it to the host before pickling (DeviceArray.numpy(), or model.to('cpu') for a model)")
    return to_device(host, device)


if _cuda is not None:
    copyreg.pickle(_cuda.DeviceArray, _reduce_device_array)


def _is_device_object(obj) -> bool:
    if _cuda is not None and isinstance(obj, _cuda.DeviceArray):
        return True
    if isinstance(obj, np.ndarray):
        return False
    if hasattr(type(obj), "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return dev()[0] in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED)
    except Exception:
        return False


def _as_device_array(obj):
    """Any CUDA array (DeviceArray, DLPack producer, __cuda_array_interface__ object) as a DeviceArray.

    No copy for contiguous arrays: the result shares the producer's memory and keeps it alive.
    A strided view is copied into a new contiguous DeviceArray. A host array raises TypeError.
    Used by convforge._checks for every device input of convforge.functional.
    """
    m = _module()
    if isinstance(obj, m.DeviceArray):
        return obj
    if isinstance(obj, np.ndarray):
        raise TypeError("expected an array on a CUDA device, got a numpy array (use convforge.to_device)")
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if dlpack_device is not None and hasattr(obj, "__dlpack__"):
        dev_type, dev_id = dlpack_device()
        if dev_type not in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            raise TypeError(
                f"expected an array on a CUDA device, got a {type(obj).__name__} on DLPack device "
                f"type {dev_type} (use convforge.to_device for host arrays)"
            )
        # The producer orders our stream after its pending work (DLPack's stream argument).
        capsule = obj.__dlpack__(stream=m._stream_handle(int(dev_id)))
        return m._from_dlpack_capsule(capsule)
    if hasattr(obj, "__cuda_array_interface__"):
        return m._from_cuda_array_interface(obj)
    raise TypeError(
        f"expected a CUDA array (DeviceArray, __dlpack__ or __cuda_array_interface__), got {type(obj).__name__}"
    )


def from_dlpack(obj):
    """A DeviceArray sharing memory with a CUDA tensor/array (or an unused DLPack capsule)."""
    m = _module()
    if type(obj).__name__ == "PyCapsule":
        return m._from_dlpack_capsule(obj)
    return _as_device_array(obj)
