"""Argument checks for the functional API, in one place.

Each check raises TypeError (wrong type or dtype) or ValueError (wrong rank, shape or value) with a
message that names the op, the argument, the shapes and the rule broken. Geometry rules (output
sizes, kernel larger than the padded input, positive strides...) are checked once, in C++
(csrc/common/geometry.h), through ``_C.conv2d_geometry`` / ``_C.pool2d_geometry``.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

_RANK_NAMES = {1: "1-D", 2: "2-D (rows, cols)", 4: "4-D (N, C, H, W)"}


def _on_host(a) -> bool:
    """A non-numpy array that lives in host memory (DLPack device type 1: a CPU torch tensor, a jax/cupy-free array)."""
    try:
        return not hasattr(a, "__cuda_array_interface__") and int(a.__dlpack_device__()[0]) == 1
    except Exception:
        return False


def is_device_array(a) -> bool:
    return not isinstance(a, np.ndarray) and not _on_host(a) and (
        hasattr(a, "__cuda_array_interface__") or hasattr(a, "__dlpack_device__")
    )


def _host_array_error(op: str, name: str, a) -> TypeError:
    kind = f"{type(a).__module__.split('.')[0]}.{type(a).__name__}"
    return TypeError(f"{op}: {name} is a {kind} on the CPU; convforge takes numpy arrays there: pass {name}.numpy() "
                     f"(for a torch tensor it shares the memory, no copy; .detach().numpy() if it requires grad) "
                     f"or np.from_dlpack({name})")


_FLOAT32 = np.dtype(np.float32)


def float_array(op: str, name: str, a, ndim: int | None = None):
    """A float32 array (numpy, or a device array) of the given rank; numpy inputs come back C-contiguous."""
    if type(a) is np.ndarray and a.dtype == _FLOAT32 and (ndim is None or a.ndim == ndim):
        return a if a.flags.c_contiguous else np.asarray(a, order="C")  # the common case, fast
    if isinstance(a, np.ndarray):
        pass
    elif is_device_array(a):
        from . import cuda

        a = cuda._as_device_array(a)
    elif _on_host(a):
        raise _host_array_error(op, name, a)
    else:
        raise TypeError(
            f"{op}: {name} must be a float32 numpy array or a convforge device array, "
            f"got {type(a).__name__}"
        )
    if np.dtype(a.dtype) != np.float32:
        raise TypeError(
            f"{op}: {name} must have dtype float32, got {np.dtype(a.dtype)} "
            f"(convforge never casts silently: convert with .astype(np.float32))"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(
            f"{op}: {name} must be {_RANK_NAMES.get(ndim, f'{ndim}-D')}, got shape {tuple(a.shape)}"
        )
    if isinstance(a, np.ndarray):
        a = np.asarray(a, order="C")  # not ascontiguousarray, which turns 0-D into 1-D
    return a


def index_array(op: str, name: str, a, ndim: int | None = None):
    """An integer array (labels, pooling indices) as int64."""
    if isinstance(a, np.ndarray):
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{op}: {name} must have an integer dtype, got {a.dtype}")
        a = np.asarray(a, dtype=np.int64, order="C")
    elif is_device_array(a):
        from . import cuda

        a = cuda._as_device_array(a)
        if np.dtype(a.dtype) != np.int64:
            raise TypeError(f"{op}: {name} on the GPU must have dtype int64, got {np.dtype(a.dtype)}")
    elif _on_host(a):
        raise _host_array_error(op, name, a)
    else:
        raise TypeError(f"{op}: {name} must be an integer numpy array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {tuple(a.shape)}")
    return a


def running_stat(op: str, name: str, a, channels: int):
    """A running mean/variance of batch_norm: 1-D float32 of one value per channel; a numpy one must
    be C-contiguous and writeable, since training updates it in place (as torch does)."""
    if isinstance(a, np.ndarray) and a.dtype == np.float32 and not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(f"{op}: {name} must be a contiguous, writeable array (it is updated in place), "
                         f"got a {'read-only' if not a.flags.writeable else 'non-contiguous'} array of shape {a.shape}")
    a = float_array(op, name, a, 1)
    same_shape(op, name, a, (channels,), "one value per channel")
    return a


def integer(op: str, name: str, v) -> int:
    if type(v) is int:  # the common case, without the slower numbers.Integral (ABC) check
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {v!r}")
    return operator.index(v)


def boolean(op: str, name: str, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {v!r}")
    return bool(v)


def pair(op: str, name: str, v) -> tuple[int, int]:
    """An int or a pair of ints, as PyTorch's _pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
        return integer(op, name, v[0]), integer(op, name, v[1])
    v = integer(op, name, v)
    return v, v


def output_size_pair(op: str, name: str, v, input_hw) -> tuple[int, int]:
    """An adaptive pooling's output size, as torch: an int, or a pair whose None entries take the
    input's size on that axis (input_hw). Positivity is checked with the geometry (geometry.h)."""
    if v is None:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints (None only inside the pair), got None")
    parts = v if isinstance(v, (tuple, list)) else (v, v)
    if len(parts) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints or None, got {v!r}")
    return tuple(int(n) if p is None else integer(op, name, p) for p, n in zip(parts, input_hw))


def positive_pair(op: str, name: str, v) -> tuple[int, int]:
    p = pair(op, name, v)
    if p[0] <= 0 or p[1] <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {v!r}")
    return p


def same_shape(op: str, name: str, a, expected: tuple, what: str) -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)} ({what}), got {tuple(a.shape)}")


def shape4(op: str, name: str, shape) -> tuple[int, int, int, int]:
    try:
        s = tuple(integer(op, name, d) for d in shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a sequence of 4 ints (N, C, H, W), got {shape!r}") from None
    if len(s) != 4 or min(s) < 0:
        raise ValueError(f"{op}: {name} must be 4 non-negative ints (N, C, H, W), got {shape!r}")
    return s
