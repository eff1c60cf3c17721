"""Measured algorithm choice: time the eligible kernels of a geometry once, remember the fastest.

In the spirit of cuDNN's benchmark mode and FFTW's wisdom. With tuning on
(:func:`set_autotune` or ``CONVFORGE_AUTOTUNE=1``), ``algo="auto"`` in :func:`convforge.functional.conv2d`,
:func:`~convforge.functional.conv2d_backward` (data and weight passes chosen apart), ``gemm`` and
``linear`` asks :func:`choose`: the first call of a geometry times every eligible algo (the op's
table in ``csrc/``, through ``_C.conv2d_eligible_algos``) on the call's own arrays and keeps the
fastest, in memory for the process and in a JSON file on disk, ``$CONVFORGE_CACHE/autotune.json``
(default ``~/.cache/convforge/``), keyed by CPU model, GEMM config, thread count, convforge build
(version, and the size and time of the compiled extension: a rebuilt library measures afresh) and
geometry. Writes are atomic (a temporary file, then ``os.replace``); a corrupt file is ignored
with a warning and rewritten. Tuning is off by default: a first call must not be slow by surprise.
Without tuning, ``auto`` uses the heuristics in ``csrc/cpu/conv/conv2d.cpp``.

``convforge tune --model vgg16 --batch 1`` fills the cache for a model's layers;
``convforge summary vgg16 --algos`` shows which algo each layer's passes use.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from . import _C

_FORMAT = 1
_lock = threading.Lock()
_enabled = os.environ.get("CONVFORGE_AUTOTUNE", "") not in ("", "0")
_memory: dict = {}        # key -> {"algo": name, "ms": {name: ms}}
_KEEP_FIRST = 1.10         # the heuristic's choice stays unless another is faster by more
_CLOSE_ROUNDS = 2          # extra interleaved runs of the candidates within 25% of the best
_disk_loaded: set = set()  # cache files already merged into _memory
# The answers already given, by (pass, threads, cache folder, geometry fields): a call with tuning
# on then costs a tuple and a dict lookup (~2 us) instead of building the key string (~20 us).
_answered: dict = {}


def set_autotune(on: bool) -> None:
    """Turn measured algorithm choice for ``algo="auto"`` on or off (default: ``CONVFORGE_AUTOTUNE``).

    Parameters
    ----------
    on : bool
        True: the first call of each geometry times the eligible algos and later calls run the
        fastest (remembered on disk too). False: ``auto`` uses its heuristics.

    Raises
    ------
    TypeError
        If ``on`` is not a bool.
    """
    global _enabled
    if not isinstance(on, bool):
        raise TypeError(f"set_autotune: on must be a bool, got {type(on).__name__}")
    _enabled = on


def autotune_enabled() -> bool:
    """Whether ``algo="auto"`` consults measurements (:func:`set_autotune`)."""
    return _enabled


def cache_path() -> Path:
    """The on-disk tuning cache: ``$CONVFORGE_CACHE/autotune.json`` (default ``~/.cache/convforge``)."""
    root = os.environ.get("CONVFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convforge")
    return Path(root) / "autotune.json"


_build_id = None


def _build() -> str:
    """The build of the extension in use: its version and the size and time of its file, so that
    a rebuilt or reinstalled library (other kernels, same version string) measures afresh."""
    global _build_id
    if _build_id is None:
        from . import __version__

        try:
            st = os.stat(_C.__file__)
            _build_id = f"v{__version__}+{st.st_size}.{int(st.st_mtime)}"
        except (OSError, AttributeError, TypeError):
            _build_id = f"v{__version__}"
    return _build_id


def _machine_key() -> str:
    m = _C.machine()
    cpu = m["model_name"] or f"{m['vendor']} family {m['family']} model {m['model']}"
    return f"{cpu}|{_C.cpu_config()['name']}|{_C.get_num_threads()}t|{_build()}"


_GEOM_FIELDS = ("N", "C", "H", "W", "K", "R", "S", "groups", "stride_h", "stride_w", "pad_top",
                "pad_bottom", "pad_left", "pad_right", "dilation_h", "dilation_w")


def conv_key(pass_: str, geom) -> str:
    """The cache key of one conv2d pass ("forward", "backward_data", "backward_weight") on this machine."""
    return f"{_machine_key()}|conv2d_{pass_}|" + ",".join(str(getattr(geom, f)) for f in _GEOM_FIELDS)


def gemm_key(m: int, n: int, k: int, trans_a: bool, trans_b: bool) -> str:
    """The cache key of one GEMM shape on this machine."""
    return f"{_machine_key()}|gemm|{m}x{n}x{k}|{'T' if trans_a else 'N'}{'T' if trans_b else 'N'}"


def _read_disk(path: Path) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("entries"), dict):
            raise ValueError("not a convforge tuning cache (format 1)")
        entries = {k: v for k, v in data["entries"].items()
                   if isinstance(v, dict) and isinstance(v.get("algo"), str)}
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        warnings.warn(f"convforge: ignoring the corrupt tuning cache {path} ({e}); it will be rewritten",
                      RuntimeWarning, stacklevel=3)
        return {}


def _write_disk(path: Path, new: dict) -> None:
    """Merge `new` into the file, atomically: a reader sees the old file or the new one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a corrupt file was reported when it was read
            entries = _read_disk(path)
        entries.update(new)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autotune.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": _FORMAT, "entries": entries}, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:  # a read-only home must not break a kernel call
        warnings.warn(f"convforge: could not write the tuning cache {path}: {e}", RuntimeWarning, stacklevel=3)


def lookup(key: str):
    """The remembered algo for `key` (memory, then the disk cache), or None."""
    path = cache_path()
    with _lock:
        if str(path) not in _disk_loaded:
            _disk_loaded.add(str(path))
            for k, v in _read_disk(path).items():
                _memory.setdefault(k, v)
        hit = _memory.get(key)
    return hit["algo"] if hit else None


def forget(memory_only: bool = False) -> None:
    """Drop what was learnt: the in-memory table, and unless `memory_only` the disk cache file."""
    with _lock:
        _memory.clear()
        _disk_loaded.clear()
        _answered.clear()
    if not memory_only:
        try:
            cache_path().unlink()
        except FileNotFoundError:
            pass


def _time_ms(run, best_ms: float) -> float:
    """Milliseconds of one call of `run`. The first call is timed too: when it is already 3x slower
    than `best_ms` (the best candidate so far) that is the answer, one run; otherwise the best of
    it and up to two more (the second only while within 2x of `best_ms`)."""
    t0 = time.perf_counter()
    run()  # also the warm-up: page faults, scratch buffers, the thread team
    best = (time.perf_counter() - t0) * 1e3
    if best > 3 * best_ms:
        return best
    for _ in range(2):
        t0 = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - t0) * 1e3)
        if best > 2 * best_ms:
            break
    return best


def choose(key: str, candidates, run, first: str | None = None) -> str:
    """The fastest of `candidates` for `key`, measured by calling ``run(name)``.

    Each candidate runs up to three times (fewer when clearly slower than the best so far); those
    within 25% of the best then run twice more each, in turn, and keep their best time. `first`
    is kept unless the fastest beats it by more than 10%.

    Parameters
    ----------
    key : str
        From :func:`conv_key` or :func:`gemm_key`.
    candidates : list of str
        The eligible algo names (at least one).
    run : callable
        ``run(name)`` runs the op once with that algo (its result is discarded).
    first : str, optional
        Timed first (the heuristic's choice), so that slower candidates stop early.

    Returns
    -------
    str
        The algo to use; remembered in memory and on disk.
    """
    hit = lookup(key)
    if hit is not None and hit in candidates:
        return hit
    order = sorted(candidates, key=lambda a: a != first)
    ms = {}
    for name in order:
        ms[name] = _time_ms(lambda: run(name), min(ms.values(), default=float("inf")))
    # The candidates within 25% of the best are timed again, in turn (a slow spell of a shared
    # host then falls on all of them alike), and keep their best time.
    close = [a for a in order if ms[a] <= 1.25 * min(ms.values())]
    if len(close) > 1:
        for _ in range(_CLOSE_ROUNDS):
            for name in close:
                t0 = time.perf_counter()
                run(name)
                ms[name] = min(ms[name], (time.perf_counter() - t0) * 1e3)
    ms = {a: round(v, 4) for a, v in ms.items()}
    best = min(ms, key=ms.get)
    # The heuristic's choice stays unless another is more than _KEEP_FIRST faster: its rules were
    # fitted over interleaved rounds (docs/cpu_tuning.md), while these few timings on a shared
    # host differ by 10-30% from one to the next; a choice that wins by less is as likely noise.
    if first in ms and ms[first] <= _KEEP_FIRST * ms[best]:
        best = first
    entry = {"algo": best, "ms": ms}
    with _lock:
        _memory[key] = entry
    _write_disk(cache_path(), {key: entry})
    return best


def conv_algo(pass_: str, geom, run) -> str:
    """The algo ``auto`` runs for one conv2d pass: tuned with tuning on, else the heuristic's choice."""
    if not _enabled:
        return "auto"
    return _answer(("conv2d", pass_, *[getattr(geom, f) for f in _GEOM_FIELDS]),
                   lambda: choose(conv_key(pass_, geom), list(_C.conv2d_eligible_algos(pass_, geom)),
                                  run, first=_C.conv2d_auto_choice(pass_, geom)))


def _answer(shape: tuple, decide) -> str:
    """The answer already given for `shape` on these threads and cache folder, else ``decide()``'s."""
    fast = (_C.get_num_threads(), os.environ.get("CONVFORGE_CACHE"), *shape)
    algo = _answered.get(fast)
    if algo is None:
        algo = decide()
        with _lock:
            if len(_answered) >= 4096:  # bounded: a program that sweeps shapes
                _answered.clear()
            _answered[fast] = algo
    return algo


def gemm_algo(m: int, n: int, k: int, trans_a: bool, trans_b: bool, run) -> str:
    """The algo ``auto`` runs for one GEMM shape: tuned with tuning on, else ``"auto"``."""
    if not _enabled or m * n * k <= 512:  # tiny products: timing costs more than any choice saves
        return "auto"
    return _answer(("gemm", m, n, k, trans_a, trans_b),
                   lambda: choose(gemm_key(m, n, k, trans_a, trans_b),
                                  list(_C.gemm_eligible_algos(m, n, k, trans_a, trans_b)), run,
                                  first=_C.gemm_auto_choice(m, n, k, trans_a, trans_b)))


def conv_choice_report(geom) -> dict:
    """Which algo each pass of this geometry uses now: the tuned one where remembered, else auto's.

    Returns
    -------
    dict
        {"forward": name, "backward_data": name, "backward_weight": name}; a tuned choice is
        marked ``"(tuned)"``, a heuristic one ``"(auto)"``.
    """
    out = {}
    for pass_ in ("forward", "backward_data", "backward_weight"):
        hit = lookup(conv_key(pass_, geom))
        out[pass_] = f"{hit} (tuned)" if hit else f"{_C.conv2d_auto_choice(pass_, geom)} (auto)"
    return out


def _layers_with_shapes(model, input_shape):
    """[(name, layer, input shape, output shape)] of the model's conv2d and linear layers."""
    from .nn import layers as L
    from .nn._summary import layer_table

    rows, shape = [], (tuple(input_shape) if len(input_shape) == 4 else (1,) + tuple(input_shape))
    for name, layer, out, _, _ in layer_table(model, shape):
        if isinstance(layer, (L.Conv2d, L.Linear)):
            rows.append((name, layer, shape, out))
        shape = out
    return rows


def _report(layer, in_shape) -> dict:
    from . import functional as F
    from .nn import layers as L

    if isinstance(layer, L.Linear):  # forward: x @ W^T, one GEMM
        m, k = in_shape[0], int(np.prod(in_shape[1:]))
        hit = lookup(gemm_key(m, layer.weight.data.shape[0], k, False, True))
        return {"forward": f"{hit} (tuned)" if hit else
                f"{_C.gemm_auto_choice(m, layer.weight.data.shape[0], k, False, True)} (auto)"}
    geom = F._conv_geometry("conv2d", in_shape, layer.weight.data.shape, layer.stride, layer.padding,
                            layer.dilation, layer.groups)
    return conv_choice_report(geom)


def model_algos(model, input_shape) -> list:
    """Which algo each conv2d pass and linear layer of a model uses now (tuned where remembered).

    Parameters
    ----------
    model : convforge.nn.Module
    input_shape : tuple
        (N, C, H, W) of the model's input, or (C, H, W) for batch 1.

    Returns
    -------
    list of (layer name, {pass: "algo (tuned)" or "algo (auto)"})
    """
    return [(name, _report(layer, in_shape)) for name, layer, in_shape, _ in _layers_with_shapes(model, input_shape)]


def tune_model(model, input_shape, progress: bool = True) -> list:
    """Time every conv2d layer's passes (forward, backward data and weight) and linear layer of a model.

    Runs each layer's forward and backward once with tuning on, on random inputs of its shape, so
    that every geometry's choice lands in the cache (memory and disk).

    Parameters
    ----------
    model : convforge.nn.Module
    input_shape : tuple
        (N, C, H, W) of the model's input, or (C, H, W) for batch 1.
    progress : bool
        Show a tqdm progress bar over the layers.

    Returns
    -------
    list of (layer name, {pass: algo})
        :func:`model_algos` after tuning.
    """
    from tqdm import tqdm

    from . import functional as F
    from .nn import layers as L

    was = _enabled
    set_autotune(True)
    rng = np.random.default_rng(0)
    try:
        bar = tqdm(_layers_with_shapes(model, input_shape), desc="tuning", unit="layer", disable=not progress)
        for name, layer, in_shape, out_shape in bar:
            bar.set_postfix_str(name)
            x = rng.standard_normal(in_shape).astype(np.float32)
            gy = rng.standard_normal(out_shape).astype(np.float32)
            if isinstance(layer, L.Linear):
                F.linear(x, layer.weight.data)
                F.linear_backward(gy, x, layer.weight.data)
            else:
                F.conv2d_backward(gy, x, layer.weight.data, layer.stride, layer.padding, layer.dilation,
                                  layer.groups, output_mask=(layer.need_input_grad, True, layer.bias is not None))
                F.conv2d(x, layer.weight.data, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    finally:
        set_autotune(was)
    return model_algos(model, input_shape)
