"""``convert(model)``: the torch layers of a model that convforge supports, switched to convforge's kernels.

Each supported layer keeps its identity: its class becomes the convforge subclass of its torch class
(``convforge.torch.modules``), the way ``torch.nn.utils.parametrize`` switches classes, so the
``Parameter`` objects, buffers, hooks, state-dict keys and every reference to the layer stay as they
were; an optimiser built before the conversion keeps working.
"""
import warnings

import torch
import torch.nn as tnn

from convforge import _C
from convforge import functional as _F

from . import modules as cm

__all__ = ["convert"]


def _param_reason(m):
    for name, p in m.named_parameters(recurse=False):
        if p.dtype != torch.float32:
            return f"{name} has dtype {p.dtype}; convforge runs float32 only"
        if p.device.type == "cuda":
            from convforge import cuda

            if not cuda.is_compiled():
                return "its parameters are on a CUDA device and convforge was built without CUDA"
        elif p.device.type != "cpu":
            return f"its parameters are on {p.device}; convforge runs on the CPU and CUDA devices"
    return None


def _conv2d_reason(m):
    if m.padding_mode != "zeros":
        return f"padding_mode={m.padding_mode!r}; convforge pads with zeros only"
    return _param_reason(m)


def _avg_pool2d_reason(m):
    if m.divisor_override is not None:
        return f"divisor_override={m.divisor_override!r} is not supported"
    return None


# torch class -> (convforge class, the reason a configuration is not supported (None: supported),
# the op whose algos the layer's algo= names)
CONVERSIONS = {
    tnn.Conv2d: (cm.Conv2d, _conv2d_reason, "conv2d"),
    tnn.MaxPool2d: (cm.MaxPool2d, lambda m: None, "pool2d"),
    tnn.AvgPool2d: (cm.AvgPool2d, _avg_pool2d_reason, "pool2d"),
    tnn.Linear: (cm.Linear, _param_reason, "linear"),
    tnn.ReLU: (cm.ReLU, lambda m: None, None),
    tnn.Tanh: (cm.Tanh, lambda m: None, None),
    tnn.Sigmoid: (cm.Sigmoid, lambda m: None, None),
}
_ALGO_TABLES = {"conv2d": "conv2d_forward", "pool2d": "pool2d", "linear": "gemm"}


def _algos(algo):
    """{"conv2d": ..., "pool2d": ..., "linear": ...} from convert's algo argument, each name checked."""
    if isinstance(algo, str):
        algo = {"conv2d": algo}
    if not isinstance(algo, dict):
        raise TypeError(f"convert: algo must be a str (for the Conv2d layers) or a dict with keys among "
                        f"{sorted(_ALGO_TABLES)}, got {type(algo).__name__}")
    unknown = set(algo) - set(_ALGO_TABLES)
    if unknown:
        raise ValueError(f"convert: algo keys must be among {sorted(_ALGO_TABLES)}, got {sorted(unknown)}")
    out = {}
    for kind, table in _ALGO_TABLES.items():
        name = algo.get(kind, "auto")
        names = ["auto"] + [a["name"] for a in _C.algos(table) if a["name"] != "auto"]
        if name not in names and name not in _F._student_kernels:
            raise ValueError(f"convert: unknown {kind} algo {name!r}; expected one of {names} "
                             f"or a kernel loaded with convforge.load_kernel")
        out[kind] = name
    return out


def _model_dtype_reason(model):
    """Layers without parameters follow the model's: converted unless its parameters are all non-float32."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes and torch.float32 not in dtypes:
        return f"the model's parameters are {', '.join(sorted(str(d) for d in dtypes))}; convforge runs float32 only"
    return None


def convert(model: tnn.Module, algo="auto") -> tnn.Module:
    """Switch every supported torch layer of model to convforge's kernels, in place.

    Converted: ``nn.Conv2d`` (padding_mode "zeros"), ``nn.MaxPool2d``, ``nn.AvgPool2d``
    (divisor_override None), ``nn.Linear``, ``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, with float32
    parameters on the CPU (or a CUDA device, with a CUDA build). Everything else, subclasses of these
    classes included, runs as before; the supported classes left unconverted are listed in one warning.

    Parameters
    ----------
    model : torch.nn.Module
        Converted in place: each layer keeps its identity, Parameters, buffers and hooks.
    algo : str or dict
        A str names the ``conv2d_forward`` algo of the Conv2d layers; a dict may name one per kind
        (keys "conv2d", "pool2d", "linear"; algos of ``convforge.functional.algos``); "auto" elsewhere.

    Returns
    -------
    torch.nn.Module
        model itself.

    Raises
    ------
    TypeError, ValueError
        model is not a Module, or algo names an unknown kind or algo.

    Warns
    -----
    UserWarning
        Naming each supported-class layer left unconverted and why (e.g. ``padding_mode='reflect'``,
        float64 parameters).
    """
    if not isinstance(model, tnn.Module):
        raise TypeError(f"convert: model must be a torch.nn.Module, got {type(model).__name__}")
    algos = _algos(algo)
    model_reason = _model_dtype_reason(model)
    left = []
    for name, m in model.named_modules():
        entry = CONVERSIONS.get(type(m))
        if entry is None:
            base = next((c for c in CONVERSIONS if isinstance(m, c)), None)
            if base is not None and not isinstance(m, tuple(e[0] for e in CONVERSIONS.values())):
                left.append((name, type(m).__name__, f"a subclass of nn.{base.__name__}, which may change forward"))
            continue
        cls, reason_of, kind = entry
        reason = reason_of(m) or (model_reason if not any(True for _ in m.parameters(recurse=False)) else None)
        if reason:
            left.append((name, type(m).__name__, reason))
            continue
        m.__class__ = cls
        if kind is not None:
            m.algo = algos[kind]
    if left:
        listed = "; ".join(f"{n or '(the model)'} ({t}: {r})" for n, t, r in left)
        warnings.warn(f"convforge.torch.convert: {len(left)} layer(s) left to torch: {listed}", stacklevel=2)
    return model
