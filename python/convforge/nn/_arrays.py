"""The few array operations that nn needs beyond convforge.functional.

Parameters, gradients and activations are float32 numpy arrays on the CPU, or convforge
device arrays after ``Module.to("cuda")``. Everything device-specific in nn goes through
this file: a device array is moved to the host for the rare operations that the
functional API does not cover (optimiser updates, dropout masks, gradient sums).
"""
from __future__ import annotations

import numpy as np


def is_host(a) -> bool:
    return isinstance(a, np.ndarray)


def device_of(a) -> str:
    """'cpu' or 'cuda:N' (a DeviceArray's .device)."""
    if is_host(a):
        return "cpu"
    return str(getattr(a, "device", "cuda:0"))


def to_host(a) -> np.ndarray:
    """A numpy view/copy of a (no copy when a is already a numpy array)."""
    if is_host(a):
        return a
    return a.numpy()


def check_device(device) -> str:
    device = str(device)
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return device


def to_device(a, device: str):
    """Move a to device ("cpu", "cuda", "cuda:0"); returns a itself when already there."""
    device = check_device(device)
    if device == "cpu":
        return to_host(a)
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if not is_host(a):
        if device_of(a) == f"cuda:{index}":
            return a
        a = to_host(a)
    from convforge import cuda

    return cuda.to_device(np.ascontiguousarray(a), index)  # keeps the dtype (float32 data, int64 labels)


def like(host: np.ndarray, ref):
    """host (numpy) placed on the same device as ref."""
    return host if is_host(ref) else to_device(host, device_of(ref))


def add(a, b):
    """a + b as a new array on a's device (used to accumulate gradients)."""
    if is_host(a) and is_host(b):
        return a + b
    return like(to_host(a) + to_host(b), a)
