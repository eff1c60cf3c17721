"""Weights in and out: torch state dicts both ways, and .npz checkpoints that rebuild their model.

A checkpoint is a plain ``.npz`` (no pickle): one array per parameter under its torch-style
name, plus ``__meta__``, a JSON string holding the architecture name, its config (the
keyword arguments of ``convforge.models.<arch>``) and whatever the caller adds
(epoch, metrics, the data normalisation).
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np

from .module import Module

FORMAT_VERSION = 1


def load_torch_state_dict(model: Module, state_dict, strict: bool = True) -> Module:
    """Copy a torch ``state_dict()`` into model (as ``torch.nn.Module.load_state_dict``).

    Parameters
    ----------
    model : convforge.nn.Module
        Its parameter names are torch's ("features.0.weight"), so torchvision's state dicts fit.
    state_dict : mapping of str to torch.Tensor or array
        Tensors are detached, moved to the CPU and cast to float32.
    strict : bool
        Refuse missing or unexpected names.

    Returns
    -------
    convforge.nn.Module
        model, with the weights loaded.

    Raises
    ------
    KeyError
        strict and the names differ (both lists are named).
    ValueError
        An entry's shape differs from the parameter's.
    """
    host = OrderedDict()
    for k, v in state_dict.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().float().numpy()
        host[k] = np.asarray(v, dtype=np.float32)
    model.load_state_dict(host, strict=strict)
    return model


def to_torch_state_dict(model: Module):
    """The model's parameters as torch tensors, for ``torch_model.load_state_dict``.

    Parameters
    ----------
    model : convforge.nn.Module

    Returns
    -------
    collections.OrderedDict of str to torch.Tensor
        float32 CPU tensors sharing memory with copies of the parameters.

    Raises
    ------
    ImportError
        torch is not installed.
    """
    import torch

    return OrderedDict((k, torch.from_numpy(v)) for k, v in model.state_dict().items())


def save_checkpoint(path, model: Module, **meta) -> str:
    """Write model's weights and meta to path (.npz, no pickle), atomically (a crash keeps the old file).

    Parameters
    ----------
    path : str or path-like
        The .npz file; its folder must exist.
    model : convforge.nn.Module
        Its ``arch`` and ``config`` are stored so that ``load_checkpoint`` can rebuild it.
    **meta
        JSON-able values kept beside (epoch, metrics, ``data``: the data set's ``Dataset.info()``).

    Returns
    -------
    str
        path.

    Raises
    ------
    TypeError
        A meta value that JSON cannot write.
    OSError
        The file cannot be written.
    """
    arch = getattr(model, "arch", None)
    info = {"format": FORMAT_VERSION, "arch": arch, "config": getattr(model, "config", {}), **meta}
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    arrays["__meta__"] = np.array(json.dumps(info))
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def read_checkpoint(path):
    """(state_dict, meta) from a checkpoint written by ``save_checkpoint``.

    Parameters
    ----------
    path : str or path-like
        A .npz written by ``save_checkpoint`` (``convforge train`` writes best.npz and last.npz).

    Returns
    -------
    state_dict : collections.OrderedDict of str to numpy.ndarray
    meta : dict
        "arch", "config" and what the writer added.

    Raises
    ------
    FileNotFoundError
        path does not exist.
    ValueError
        path is a folder, not a zip (.npz) file, unreadable, holds pickled objects, or has no convforge
        metadata.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a folder; give the .npz file in it (best.npz or last.npz)")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        raise ValueError(f"{path!r} is not a readable .npz checkpoint: an .npz is a zip archive, this file starts "
                         f"with {head!r}; give a best.npz or last.npz written by `convforge train`")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = list(z.files)
            meta_raw = str(z["__meta__"]) if "__meta__" in files else None
            sd = OrderedDict((k[len("param/"):], z[k]) for k in files if k.startswith("param/"))
    except Exception as e:  # zipfile.BadZipFile, OSError, EOFError; ValueError for object arrays
        reason = "it holds pickled objects, which convforge never loads" if "pickle" in str(e) else \
            f"{type(e).__name__}: {e}"
        raise ValueError(f"{path!r} is not a readable .npz checkpoint: {reason}") from None
    if meta_raw is None:
        raise ValueError(f"{path!r} is not a convforge checkpoint (no __meta__ entry)")
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r}: its __meta__ entry is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r}: its __meta__ entry is not a JSON object")
    return sd, meta


def load_checkpoint(path, device: str = "cpu"):
    """(model, meta): rebuild the architecture named in the checkpoint and load its weights.

    Parameters
    ----------
    path : str or path-like
        A .npz written by ``save_checkpoint``.
    device : str
        "cpu" or "cuda": where the model's parameters go.

    Returns
    -------
    model : convforge.models.Network
    meta : dict

    Raises
    ------
    FileNotFoundError, ValueError
        As ``read_checkpoint``; also ValueError for an unknown architecture, a config it refuses, or arrays
        that are missing, unexpected or of the wrong shape for that architecture (each named).
    """
    from .. import models

    sd, meta = read_checkpoint(path)
    arch = meta.get("arch")
    name = os.fspath(path)
    if not arch:
        raise ValueError(f"checkpoint {name!r} names no architecture; build the model and use read_checkpoint")
    try:
        model = models.build(arch, **meta.get("config", {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {name!r}: cannot build {arch!r} from its config {meta.get('config')}: {e}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise ValueError(f"checkpoint {name!r} does not match {arch}: "
                         + "; ".join(x for x in (f"missing arrays {missing}" if missing else "",
                                                 f"unexpected arrays {unexpected}" if unexpected else "") if x))
    model.load_state_dict(sd)  # ValueError for a wrong shape, naming the entry
    if device != "cpu":
        model.to(device)
    return model, meta
