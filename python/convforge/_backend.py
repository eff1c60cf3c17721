"""Dispatch by device, in one place: numpy arrays run on ``convforge._C``, device arrays on ``convforge._cuda``.

Both modules implement the same functions (docs/architecture.md, "The backend protocol").
Mixing devices in one call is an error, never a silent copy.
"""
from __future__ import annotations

import numpy as np

from . import _C


def _device_of(a) -> str:
    if isinstance(a, np.ndarray):
        return "cpu"
    return str(getattr(a, "device", "cuda"))


def backend_for(op: str, **arrays):
    """The backend module for these (already checked) arrays; None values are ignored."""
    if all(type(a) is np.ndarray or a is None for a in arrays.values()):
        return _C  # the common case, without building the device table (a few microseconds)
    devices = {name: _device_of(a) for name, a in arrays.items() if a is not None}
    distinct = set(devices.values())
    if len(distinct) > 1:
        where = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(
            f"{op}: all arrays must be on the same device, got {where} "
            f"(move them with convforge.to_device(...) or .numpy())"
        )
    if not distinct or distinct == {"cpu"}:
        return _C
    from . import cuda

    return cuda._backend()
