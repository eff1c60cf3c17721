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


def _host_array(v) -> np.ndarray:
    """A tensor or array as numpy: floating values as float32, integer buffers (num_batches_tracked) kept."""
    if hasattr(v, "detach"):
        v = v.detach().cpu()
        v = (v.float() if v.is_floating_point() else v).numpy()
    v = np.asarray(v)
    return v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v


def load_torch_state_dict(model: Module, state_dict, strict: bool = True) -> Module:
    """Copy a torch ``state_dict()`` into model (as ``torch.nn.Module.load_state_dict``).

    Parameters
    ----------
    model : convforge.nn.Module
        Its parameter names are torch's ("features.0.weight"), so torchvision's state dicts fit.
    state_dict : mapping of str to torch.Tensor or array
        Tensors are detached and moved to the CPU; parameters and float buffers become float32, integer
        buffers (``num_batches_tracked``) keep int64.
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
    host = OrderedDict((k, _host_array(v)) for k, v in state_dict.items())
    model.load_state_dict(host, strict=strict)
    return model


def _read_weights_file(path: str) -> "OrderedDict[str, np.ndarray]":
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pth", ".pt"):
        try:
            import torch
        except ImportError:
            raise ImportError(f"load_weights: reading {path!r} (a PyTorch file) needs PyTorch; install it "
                              f"(pip install torch) or convert the file to .npz or .safetensors") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, zip errors, unsupported globals
            raise ValueError(f"load_weights: {path!r} is not a readable PyTorch state dict file: {e}") from e
        for key in ("state_dict", "model_state_dict", "model"):  # common training-checkpoint wrappers
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise ValueError(f"load_weights: {path!r} holds a {type(obj).__name__}, not a state dict "
                             f"(save model.state_dict(), not the model)")
        return OrderedDict((str(k), _host_array(v)) for k, v in obj.items())
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                sd = OrderedDict((k, z[k]) for k in z.files if k != "__meta__")
        except Exception as e:
            raise ValueError(f"load_weights: {path!r} is not a readable .npz file: {e}") from e
        if sd and all(k.startswith("param/") for k in sd):  # a convforge checkpoint (save_checkpoint)
            sd = OrderedDict((k[len("param/"):], v) for k, v in sd.items())
        return OrderedDict((k, _host_array(v)) for k, v in sd.items())
    if ext == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError(f"load_weights: reading {path!r} needs the safetensors package "
                              f"(pip install safetensors; PyTorch is not needed)") from None
        try:
            return OrderedDict((k, _host_array(v)) for k, v in load_file(path).items())
        except Exception as e:
            raise ValueError(f"load_weights: {path!r} is not a readable .safetensors file: {e}") from e
    raise ValueError(f"load_weights: cannot tell the format of {path!r} from its extension {ext!r}; "
                     f"expected .pth/.pt (PyTorch), .npz or .safetensors")


def load_weights(model: Module, path, strict: bool = True) -> Module:
    """Load a weights file into model, checking every key and shape first.

    Parameters
    ----------
    model : Module
        e.g. ``convforge.models.vgg16()``; its ``state_dict`` names are torchvision's.
    path : str or os.PathLike
        ``.pth`` / ``.pt``: a PyTorch state dict (``torch.save(model.state_dict(), path)``, as the
        torchvision ImageNet weights ``vgg16-397923af.pth``), read with torch (needed only here);
        ``.npz``: arrays by name (or a convforge checkpoint); ``.safetensors``: read with the
        safetensors package, without torch. A ``module.`` prefix on every key (DataParallel) is dropped.
    strict : bool
        Also refuse keys the model does not have.

    Returns
    -------
    model, with its parameters and buffers replaced.

    Raises
    ------
    FileNotFoundError
        path does not exist.
    ImportError
        a .pth file without torch installed, or a .safetensors file without safetensors.
    KeyError
        a key of the model is missing from the file (or, with strict, the file has one the model
        lacks): the message names the first one, and how many in all.
    ValueError
        an unreadable file, an unknown extension, or a shape that differs from the model's (the
        first such key, both shapes).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_weights: weights file {path!r} does not exist")
    sd = _read_weights_file(path)
    if sd and all(k.startswith("module.") for k in sd):
        sd = OrderedDict((k[len("module."):], v) for k, v in sd.items())
    expected = OrderedDict((n, tuple(v.shape)) for n, v, _ in model._named_state())  # no lazy init
    arch = getattr(model, "arch", type(model).__name__)
    missing = [k for k in expected if k not in sd]
    if missing:
        raise KeyError(f"load_weights: {path!r} has no entry {missing[0]!r} that {arch} needs "
                       f"({len(missing)} of the model's {len(expected)} keys are missing)")
    unexpected = [k for k in sd if k not in expected]
    if strict and unexpected:
        raise KeyError(f"load_weights: {path!r} has an entry {unexpected[0]!r} that {arch} does not have "
                       f"({len(unexpected)} unexpected keys; strict=False ignores them)")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise ValueError(f"load_weights: {path!r} entry {k!r} has shape {tuple(sd[k].shape)}, "
                             f"{arch} expects {shape}")
    model.load_state_dict(OrderedDict((k, sd[k]) for k in expected), strict=True)
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
