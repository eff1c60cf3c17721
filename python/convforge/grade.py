"""The grader: a student kernel file against PyTorch, then against our kernel ladder.

    convforge grade my_conv.cpp --op conv2d [--device cpu|cuda] [--seed N] [--json] [--reference R]

1. compiles the file (``convforge.kernels.compile_kernel``; compiler errors are shown verbatim);
2. runs the op's correctness suite in a child process with a time limit per case, so that a
   segfault or a hang is reported as such: the shape grid of our tests (1x1, kernel == padded
   input, stride > kernel, asymmetric padding, dilation, groups, depthwise, batch 1, odd sizes,
   LeNet-5 and VGG-16 layers) plus random shapes drawn from ``--seed``. Every parameter that
   ``convforge/student.h`` documents is exercised by a case whose answer is wrong if it is ignored:
   GEMM operands are sub-matrix views (lda, ldb, ldc larger than the rows and all different; the
   elements between C's rows must stay untouched), C holds data when beta != 0, pooling has
   asymmetric strides, padding and dilation, ties, NaNs and a max without indices. Outputs start
   as NaN, so an element the kernel never writes is caught. Each case reports its relative error
   ||out - ref|| / ||ref|| and, when wrong, the first wrong index with the expected and actual
   values. Backward passes are graded where the file defines them (conv2d data/weight, pooling),
   and a GEMM is graded inside ``F.linear`` / ``F.linear_backward`` as nn.Linear uses it;
3. expected values come from PyTorch in float64, or, when torch is not installed, from our own
   reference kernels (the report says which; ``pip install "convforge[grade]"`` adds torch);
4. when every case passes, times the kernel against each of our variants and PyTorch, all in one
   child process, alternating, after a warm-up each: median, min-max, p10-p90, repeats, threads,
   GFLOP/s and % of the device's peak; a run whose spread is too wide to compare is flagged.

``grade(path, op, ...)`` returns the same result as a dict (``--json`` prints it).
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import kernels

__all__ = ["grade", "cases", "peak_gflops", "format_report", "add_subcommands"]

TOLERANCE = {"conv2d": 1e-5, "conv2d_backward": 1e-4, "gemm": 1e-5, "max_pool2d": 1e-6, "avg_pool2d": 1e-5}

# name: (N, C, H, W, K, R, S, stride, padding, dilation, groups), as tests/test_conv2d.py
CONV_CASES = {
    "1x1": (2, 5, 7, 9, 6, 1, 1, 1, 0, 1, 1),
    "kernel_eq_padded_input": (2, 3, 5, 4, 4, 7, 6, 1, 1, 1, 1),
    "stride_gt_kernel": (2, 3, 11, 13, 5, 2, 2, 3, 0, 1, 1),
    "asym_stride_padding": (2, 4, 10, 13, 6, 3, 5, (2, 1), (1, 2), 1, 1),
    "same_even_kernel": (2, 3, 9, 10, 4, 4, 2, 1, "same", 1, 1),
    "dilation": (2, 3, 14, 15, 5, 3, 3, (1, 2), 2, (2, 3), 1),
    "groups": (2, 6, 9, 8, 9, 3, 3, 1, 1, 1, 3),
    "depthwise": (2, 8, 10, 11, 8, 3, 3, 2, 1, 1, 8),
    "batch1_odd_nonsquare": (1, 7, 13, 17, 11, 3, 5, 1, (1, 2), 1, 1),
    "wide_row_strided": (1, 3, 5, 70, 17, 3, 3, (1, 2), 1, 1, 1),
    "lenet_c1": (4, 1, 32, 32, 6, 5, 5, 1, 0, 1, 1),
    "lenet_c3": (4, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "vgg_conv1_1": (2, 3, 32, 32, 64, 3, 3, 1, 1, 1, 1),
    "vgg_conv2_2": (1, 128, 8, 8, 128, 3, 3, 1, 1, 1, 1),
    "vgg_conv5_2": (1, 512, 3, 3, 512, 3, 3, 1, 1, 1, 1),
}
def _gemm(M, N, K, alpha=1.0, beta=0.0, pad=(0, 0, 0)):
    """A GEMM case: C (M x N) = alpha A (M x K) B (K x N) + beta C. pad = extra elements per row of
    the buffers A, B and C are views of (lda = K + pad[0], ldb = N + pad[1], ldc = N + pad[2])."""
    return {"M": M, "N": N, "K": K, "alpha": alpha, "beta": beta, "pad": list(pad)}


# beta == 0 leaves C poisoned (write-only, as in BLAS); beta != 0 gives C data to read and scale.
GEMM_CASES = {
    "1x1x1": _gemm(1, 1, 1),
    "small_odd": _gemm(7, 5, 3),
    "square_64": _gemm(64, 64, 64),
    "edges_65x33x17": _gemm(65, 33, 17),
    "column": _gemm(128, 1, 300),
    "row": _gemm(1, 128, 77),
    "tall_k": _gemm(31, 97, 130),
    "alpha_beta": _gemm(45, 70, 29, 0.5, 2.0),
    "leading_dims": _gemm(23, 19, 17, pad=(5, 3, 7)),             # lda, ldb, ldc all different
    "leading_dims_alpha_beta": _gemm(30, 41, 13, -0.75, 0.5, pad=(2, 9, 4)),
    "lenet_fc": _gemm(120, 64, 400),
    "vgg_block": _gemm(200, 256, 288),
}
# GEMM as nn.Linear uses it (x @ W^T + b through F.linear and F.linear_backward with algo=yours):
# name: (rows, in_features, out_features, bias); forward and backward are graded.
LINEAR_CASES = {
    "linear_lenet_f5": (8, 400, 120, True),
    "linear_lenet_f6": (8, 120, 84, True),
    "linear_lenet_out_no_bias": (3, 84, 10, False),
}
# name: (N, C, H, W, kernel, stride, padding, dilation, ceil_mode, count_include_pad[, extras]);
# extras: {"input": "ties" | "nan"} (inputs with ties or NaNs), {"indices": False} (max without indices)
POOL_CASES = {
    "2x2_s2": (2, 3, 8, 8, 2, 2, 0, 1, False, True),
    "odd_input": (1, 4, 9, 11, 2, 2, 0, 1, False, True),
    "3x3_s2_pad1": (2, 5, 13, 12, 3, 2, 1, 1, False, True),
    "3x3_s2_pad1_no_pad_count": (2, 5, 13, 12, 3, 2, 1, 1, False, False),
    "ceil_mode": (1, 3, 10, 7, 3, 2, 1, 1, True, True),
    "ceil_mode_no_pad_count": (1, 3, 10, 7, 3, 2, 1, 1, True, False),
    "overlapping_s1": (2, 2, 7, 9, (3, 2), 1, (1, 0), 1, False, True),
    "asym_stride_padding": (2, 3, 11, 13, (3, 2), (2, 1), (1, 0), 1, False, True),
    "dilation": (1, 3, 12, 12, 3, 1, 1, 2, False, True),
    "asym_dilation": (1, 2, 12, 13, 3, 1, 1, (2, 1), False, True),
    "ties_first_wins": (2, 3, 8, 9, 3, 2, 1, 1, False, True, {"input": "ties"}),
    "nan_wins": (1, 2, 8, 10, 2, 2, 0, 1, False, True, {"input": "nan"}),
    "max_without_indices": (2, 3, 8, 8, 2, 2, 0, 1, False, True, {"indices": False}),
    "lenet_s2": (4, 6, 28, 28, 2, 2, 0, 1, False, True),
    "alexnet_3x3_s2": (1, 64, 55, 55, 3, 2, 0, 1, False, True),
}
_MAX_ONLY = {"dilation", "asym_dilation", "nan_wins", "max_without_indices"}
_AVG_ONLY = {"3x3_s2_pad1_no_pad_count", "ceil_mode_no_pad_count"}
# One timing shape per op and device: big enough to measure, small enough for the reference loops.
BENCH = {
    ("conv2d", "cpu"): (2, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1),
    ("conv2d", "cuda"): (16, 128, 56, 56, 128, 3, 3, 1, 1, 1, 1),
    ("gemm", "cpu"): _gemm(512, 512, 512),
    ("gemm", "cuda"): _gemm(4096, 4096, 4096),
    ("max_pool2d", "cpu"): (8, 64, 56, 56, 3, 2, 1, 1, False, True),
    ("max_pool2d", "cuda"): (64, 128, 112, 112, 3, 2, 1, 1, False, True),
    ("avg_pool2d", "cpu"): (8, 64, 56, 56, 3, 2, 1, 1, False, True),
    ("avg_pool2d", "cuda"): (64, 128, 112, 112, 3, 2, 1, 1, False, True),
}


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

def _random_conv(rng):
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    C = groups * int(rng.integers(1, 6))
    K = groups * int(rng.integers(1, 6))
    R, S = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    H = max(dh * (R - 1) + 1 - 2 * ph, 1) + int(rng.integers(0, 12))
    W = max(dw * (S - 1) + 1 - 2 * pw, 1) + int(rng.integers(0, 12))
    return (int(rng.integers(1, 4)), C, H, W, K, R, S, (sh, sw), (ph, pw), (dh, dw), groups)


def _random_pool(rng):
    k = int(rng.integers(1, 5))
    s = int(rng.integers(1, 4))
    p = int(rng.integers(0, k // 2 + 1))
    H, W = int(rng.integers(k + 1, 20)), int(rng.integers(k + 1, 20))
    return (int(rng.integers(1, 3)), int(rng.integers(1, 5)), H, W, k, s, p, 1, bool(rng.integers(0, 2)),
            bool(rng.integers(0, 2)))


def cases(op: str, seed: int = 0, n_random: int = 6, device: str = "cpu") -> list:
    """The correctness suite of op: [(name, spec)], the fixed grid then n_random shapes from seed.
    gemm's suite includes nn.Linear's use of the GEMM (forward and backward) on the CPU."""
    rng = np.random.default_rng(seed)
    if op == "conv2d":
        out = list(CONV_CASES.items()) + [(f"random_{i}", _random_conv(rng)) for i in range(n_random)]
    elif op == "gemm":
        rand = []
        for i in range(n_random):
            M, N, K = (int(v) for v in rng.integers(1, 160, size=3))
            pad = [int(v) for v in rng.integers(0, 5, size=3)]
            rand.append((f"random_{i}", _gemm(M, N, K, 1.0, float(rng.choice([0.0, 0.0, 1.5])), pad)))
        linear = ([(name, {"linear": list(v)}) for name, v in LINEAR_CASES.items()] if device == "cpu" else [])
        out = list(GEMM_CASES.items()) + linear + rand
    elif op in ("max_pool2d", "avg_pool2d"):
        skip = _AVG_ONLY if op == "max_pool2d" else _MAX_ONLY
        grid = [(k, v) for k, v in POOL_CASES.items() if k not in skip]
        out = grid + [(f"random_{i}", _random_pool(rng)) for i in range(n_random)]
    else:
        raise ValueError(f"grade: op must be one of {sorted(kernels.OPS)}, got {op!r}")
    return out


def _conv_kw(spec):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = spec
    return (N, C, H, W), (K, C // groups, R, S), dict(stride=stride, padding=padding, dilation=dilation,
                                                       groups=groups)


def _pool_kw(op, spec):
    N, C, H, W, k, s, p, d, ceil, cip = spec[:10]
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    if op == "max_pool2d":
        kw["dilation"] = d
    else:
        kw["count_include_pad"] = cip
    return (N, C, H, W), kw


def _pool_extras(spec) -> dict:
    return dict(spec[10]) if len(spec) > 10 else {}


def _pool_geom(op, spec):
    from . import functional as F

    xs, kw = _pool_kw(op, spec)
    return F._pool_geometry(op, xs, kw["kernel_size"], kw["stride"], kw["padding"], kw.get("dilation", 1),
                            kw["ceil_mode"])


def describe(op, spec) -> str:
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        return (f"x{xs} w{ws} stride={kw['stride']} padding={kw['padding']!r} dilation={kw['dilation']} "
                f"groups={kw['groups']}")
    if op == "gemm":
        if "linear" in spec:
            rows, fin, fout, bias = spec["linear"]
            return f"F.linear x({rows}, {fin}) weight({fout}, {fin}) bias={bias}, forward and backward"
        s = f"M={spec['M']} N={spec['N']} K={spec['K']} alpha={spec['alpha']} beta={spec['beta']}"
        pa, pb, pc = spec["pad"]
        if pa or pb or pc:
            s += f" lda={spec['K'] + pa} ldb={spec['N'] + pb} ldc={spec['N'] + pc}"
        return s
    xs, kw = _pool_kw(op, spec)
    extras = _pool_extras(spec)
    return f"x{xs} " + " ".join(f"{k}={v}" for k, v in kw.items()) + "".join(
        f" {k}={v}" for k, v in extras.items())


SENTINEL = -777.0  # the elements between C's rows (ldc > N): a kernel must leave them as they are


def _make_inputs(op, spec, seed):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    if op == "conv2d":
        xs, ws, _ = _conv_kw(spec)
        d = {"x": f(*xs), "w": f(*ws)}
        if seed % 2 == 0:  # half the cases without bias
            d["bias"] = f(ws[0])
        return d
    if op == "gemm":
        if "linear" in spec:
            rows, fin, fout, bias = spec["linear"]
            d = {"x": f(rows, fin), "w": f(fout, fin)}
            if bias:
                d["bias"] = f(fout)
            return d
        M, N, K = spec["M"], spec["N"], spec["K"]
        pa, pb, pc = spec["pad"]
        c = np.full((M, N + pc), SENTINEL, dtype=np.float32)
        c[:, :N] = f(M, N) if spec["beta"] != 0.0 else np.nan  # beta == 0: C is write-only
        return {"a_buf": f(M, K + pa), "b_buf": f(K, N + pb), "c_buf": c}
    xs, _ = _pool_kw(op, spec)
    x = f(*xs)
    kind = _pool_extras(spec).get("input")
    if kind == "ties":  # a few distinct values: many ties, the first in window order must win
        x = np.round(x).astype(np.float32)
    elif kind == "nan":  # at most one NaN per 2 x 2 block (the case's windows), anywhere in it: it wins
        n, c, h, w = np.nonzero(rng.random((xs[0], xs[1], xs[2] // 2, xs[3] // 2)) < 0.3)
        at = rng.integers(0, 4, size=n.size)
        x[n, c, 2 * h + at // 2, 2 * w + at % 2] = np.nan
    return {"x": x}


def _gemm_views(spec, inp):
    """A (M x K) and B (K x N) as views of their wider buffers, and C's whole buffer."""
    return inp["a_buf"][:, :spec["K"]], inp["b_buf"][:, :spec["N"]], inp["c_buf"]


def torch_available() -> bool:
    """Whether PyTorch can be imported (the grader's default reference)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


INSTALL_HINT = 'pip install "convforge[grade]"'


def _reference(op, spec, inp, dy=None, source="torch"):
    """The expected outputs: PyTorch in float64 (source "torch"), or without it our reference kernels
    in float32 (numpy in float64 for gemm and linear) (source "convforge")."""
    if op == "gemm":  # numpy in float64 either way: plain matrix products
        d = {k: v.astype(np.float64) for k, v in inp.items()}
        if "linear" in spec:
            y = d["x"] @ d["w"].T + (d["bias"] if "bias" in d else 0.0)
            out = {"y": y}
            if dy is not None:
                g = dy.astype(np.float64)
                out.update(dx=g @ d["w"], dw=g.T @ d["x"])
                if "bias" in d:
                    out["db"] = g.sum(axis=0)
            return out
        a, b, c = _gemm_views(spec, d)
        N = spec["N"]
        y = spec["alpha"] * (a @ b)
        if spec["beta"] != 0.0:
            y = y + spec["beta"] * c[:, :N]
        out = {"y": y}
        if c.shape[1] > N:
            out["C_between_rows"] = c[:, N:]
        return out
    if source == "torch":
        return _reference_torch(op, spec, inp, dy)
    return _reference_ours(op, spec, inp, dy)


def _reference_torch(op, spec, inp, dy):
    import warnings

    import torch
    import torch.nn.functional as TF

    warnings.filterwarnings("ignore", message=".*padding='same'.*")
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=dy is not None) for k, v in inp.items()}
    g = None if dy is None else torch.tensor(dy, dtype=torch.float64)
    if op == "conv2d":
        _, _, kw = _conv_kw(spec)
        y = TF.conv2d(t["x"], t["w"], t.get("bias"), **kw)
        out = {"y": y.detach().numpy()}
        if g is not None:
            y.backward(g)
            out.update(dx=t["x"].grad.numpy(), dw=t["w"].grad.numpy())
            if "bias" in t:
                out["db"] = t["bias"].grad.numpy()
        return out
    _, kw = _pool_kw(op, spec)
    if op == "max_pool2d":
        y, idx = TF.max_pool2d(t["x"], return_indices=True, **kw)
        out = {"y": y.detach().numpy(), "indices": idx.numpy()}
    else:
        y = TF.avg_pool2d(t["x"], **kw)
        out = {"y": y.detach().numpy()}
    if g is not None:
        y.backward(g)
        out["dx"] = t["x"].grad.numpy()
    return out


def _reference_ours(op, spec, inp, dy):
    from . import functional as F

    if op == "conv2d":
        _, _, kw = _conv_kw(spec)
        out = {"y": F.conv2d(inp["x"], inp["w"], inp.get("bias"), algo="reference", **kw)}
        if dy is not None:
            dx, dw, db = F.conv2d_backward(dy, inp["x"], inp["w"], algo="reference",
                                           output_mask=(True, True, "bias" in inp), **kw)
            out.update(dx=dx, dw=dw)
            if "bias" in inp:
                out["db"] = db
        return out
    xs, kw = _pool_kw(op, spec)
    if op == "max_pool2d":
        y, idx = F.max_pool2d(inp["x"], return_indices=True, algo="reference", **kw)
        out = {"y": y, "indices": idx}
        if dy is not None:
            out["dx"] = F.max_pool2d_backward(dy, idx, xs)
        return out
    out = {"y": F.avg_pool2d(inp["x"], algo="reference", **kw)}
    if dy is not None:
        out["dx"] = F.avg_pool2d_backward(dy, xs, kw["kernel_size"], kw["stride"], kw["padding"], kw["ceil_mode"],
                                          kw["count_include_pad"])
    return out


def _nan_mismatch(out, ref):
    """Positions where exactly one of out and ref is NaN (a NaN the reference has must be there too)."""
    return np.isnan(out) != np.isnan(ref)


def rel_error(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64 over the elements where ref is a number; inf when out has NaN
    or Inf there (e.g. an unwritten element) or is not NaN where ref is (max pooling: NaN wins)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        return float("inf")
    if np.any(_nan_mismatch(out, ref)):
        return float("inf")
    num = ~np.isnan(ref)
    out, ref = out[num], ref[num]
    if not np.all(np.isfinite(out)):
        return float("inf")
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


def first_wrong(out, ref) -> dict:
    """The first element (row-major) that is not finite (or not NaN where ref is) or off by more than
    1e-3 relative plus 1e-4 of the output's RMS; else the element with the largest error."""
    out64 = np.asarray(out, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    num = ~np.isnan(ref64)
    scale = float(np.sqrt(np.mean(ref64[num] ** 2))) if num.any() else 0.0
    with np.errstate(invalid="ignore"):
        err = np.abs(out64 - ref64)
        bad = _nan_mismatch(out64, ref64) | (num & (~np.isfinite(out64) | (err > 1e-3 * np.abs(ref64) + 1e-4 * scale)))
    flat = np.flatnonzero(bad)
    i = int(flat[0]) if flat.size else int(np.nanargmax(np.where(np.isfinite(err), err, -1.0)))
    idx = tuple(int(v) for v in np.unravel_index(i, ref64.shape))
    got = float(out64.flat[i])
    return {"index": list(idx), "expected": float(ref64.flat[i]), "actual": got,
            "wrong_elements": int(flat.size), "never_written": bool(np.isnan(got) and not np.isnan(ref64.flat[i]))}


# ---------------------------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------------------------

def _to_dev(device, a):
    if device == "cpu" or a is None:
        return a
    from . import cuda

    return cuda.to_device(a)


def _from_dev(device, a):
    if device == "cpu" or a is None:
        return a
    return a.numpy()


def _poisoned(device, shape, dtype=np.float32):
    a = np.full(shape, np.nan, dtype=np.float32) if dtype == np.float32 else np.full(shape, -7, dtype=np.int64)
    return _to_dev(device, a)


def _sync(device):
    if device != "cpu":
        from . import cuda

        cuda.synchronize()


_GRADED = "__graded__"  # the algo name the child registers the student kernel under (F.linear)


def _run_case(k, op, device, spec, inp, dy):
    """Runs the student's kernel on one case with poisoned outputs; returns host arrays."""
    from . import functional as F

    d = {name: _to_dev(device, v) for name, v in inp.items() if not name.startswith("__")}
    out = {}
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        y = _poisoned(device, (g.N, g.K, g.P, g.Q))
        k.conv2d_forward(d["x"], d["w"], d.get("bias"), g, y=y)
        _sync(device)
        out["y"] = _from_dev(device, y)
        if dy is not None and k.has("convforge_conv2d_backward_data"):
            dx = _poisoned(device, xs)
            k.conv2d_backward_data(_to_dev(device, dy), d["w"], g, dx=dx)
            _sync(device)
            out["dx"] = _from_dev(device, dx)
        if dy is not None and k.has("convforge_conv2d_backward_weight"):
            dw = _poisoned(device, ws)
            db = _poisoned(device, (ws[0],)) if "bias" in d else None
            k.conv2d_backward_weight(_to_dev(device, dy), d["x"], g, need_db=db is not None, dw=dw, db=db)
            _sync(device)
            out["dw"] = _from_dev(device, dw)
            if db is not None:
                out["db"] = _from_dev(device, db)
    elif op == "gemm" and "linear" in spec:  # through F.linear / F.linear_backward, as nn.Linear calls them
        F._student_kernels[_GRADED] = k
        try:
            out["y"] = F.linear(d["x"], d["w"], d.get("bias"), algo=_GRADED)
            if dy is not None:
                dx, dw, db = F.linear_backward(dy, d["x"], d["w"], algo=_GRADED)
                out.update(dx=dx, dw=dw)
                if "bias" in d:
                    out["db"] = db
        finally:
            F._student_kernels.pop(_GRADED, None)
    elif op == "gemm":  # views of wider buffers: lda, ldb, ldc larger than the rows, all different
        M, N, K = spec["M"], spec["N"], spec["K"]
        c = d["c_buf"]
        k._call("convforge_gemm", M, N, K, float(spec["alpha"]), k._ptr(d["a_buf"]), int(inp["a_buf"].shape[1]),
                k._ptr(d["b_buf"]), int(inp["b_buf"].shape[1]), float(spec["beta"]), k._ptr(c),
                int(inp["c_buf"].shape[1]), like=d["a_buf"])
        _sync(device)
        c = _from_dev(device, c)
        out["y"] = c[:, :N]
        if c.shape[1] > N:
            out["C_between_rows"] = c[:, N:]
    else:
        g = _pool_geom(op, spec)
        y = _poisoned(device, (g.N, g.C, g.P, g.Q))
        if op == "max_pool2d":
            want = _pool_extras(spec).get("indices", True)
            idx = _poisoned(device, (g.N, g.C, g.P, g.Q), np.int64) if want else None
            k.max_pool2d_forward(d["x"], g, want, y=y, indices=idx)
            _sync(device)
            if want:
                out["indices"] = _from_dev(device, idx)
            if dy is not None and k.has("convforge_max_pool2d_backward"):  # from the reference's indices
                dx = _poisoned(device, (g.N, g.C, g.H, g.W))
                k.max_pool2d_backward(_to_dev(device, dy), _to_dev(device, inp["__indices"]), g, dx=dx)
                _sync(device)
                out["dx"] = _from_dev(device, dx)
        else:
            _, kw = _pool_kw(op, spec)
            k.avg_pool2d_forward(d["x"], g, kw["count_include_pad"], y=y)
            _sync(device)
            if dy is not None and k.has("convforge_avg_pool2d_backward"):
                dx = _poisoned(device, (g.N, g.C, g.H, g.W))
                k.avg_pool2d_backward(_to_dev(device, dy), g, kw["count_include_pad"], dx=dx)
                _sync(device)
                out["dx"] = _from_dev(device, dx)
        out["y"] = _from_dev(device, y)
    return out


# Timing: every contender (yours, each of ours, PyTorch) in the same child process, in alternation
# (round-robin, the order rotated every round), after a warm-up call each, until the time budget is
# spent: at least MIN_REPS and at most MAX_REPS calls each. The median is the number reported, with
# min-max and p10-p90; a spread (p90 - p10) / median above WIDE_SPREAD is flagged.
BENCH_SECONDS = float(os.environ.get("CONVFORGE_GRADE_BENCH_SECONDS", "3"))
MIN_REPS, MAX_REPS = 5, 50
WIDE_SPREAD = 0.25


def _bench_inputs(op, device, spec, seed=1234):
    inp = _make_inputs(op, spec, seed)
    if op == "conv2d" and "bias" not in inp:
        inp["bias"] = np.random.default_rng(seed).standard_normal(inp["w"].shape[0]).astype(np.float32)
    if op == "gemm":
        a, b, _ = _gemm_views(spec, inp)
        inp = {"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)}
    return {k: _to_dev(device, v) for k, v in inp.items()}


def _openmp_threads(library=None) -> int:
    """omp_get_max_threads() of the OpenMP runtime a library (or the process) uses; 1 without one."""
    import ctypes

    for lib in ([library] if library else []) + [None]:
        try:
            return int(ctypes.CDLL(lib).omp_get_max_threads())
        except (OSError, AttributeError):
            continue
    return 1


def _contenders(k, op, device, spec) -> list:
    """[{name, kind, source, threads, fn}]: yours, each of our variants, PyTorch when it is installed."""
    from . import functional as F

    d = _bench_inputs(op, device, spec)
    ours_threads = F.get_num_threads() if device == "cpu" else "GPU"
    rows = [_student_contender(k, op, device, spec, d, "yours")]
    kw = _conv_kw(spec)[2] if op == "conv2d" else (None if op == "gemm" else _pool_kw(op, spec)[1])
    backend_op = {"conv2d": "conv2d_forward", "gemm": "gemm"}.get(op, "pool2d")
    for a in F.algos(backend_op, device):
        name = a["name"]
        if op == "conv2d":
            fn = lambda name=name: F.conv2d(d["x"], d["w"], d["bias"], algo=name, **kw)  # noqa: E731
        elif op == "gemm":
            fn = lambda name=name: F.gemm(d["a"], d["b"], algo=name)  # noqa: E731
        else:
            pool = F.max_pool2d if op == "max_pool2d" else F.avg_pool2d
            fn = lambda name=name, pool=pool: pool(d["x"], algo=name, **kw)  # noqa: E731
        rows.append({"name": f"ours: {name}", "kind": a["kind"], "source": "csrc/" + a["source"],
                     "threads": ours_threads, "fn": fn})
    lib = _torch_contender(op, device, spec)
    if lib:
        rows.append(lib)
    return rows


def _student_contender(k, op, device, spec, d, name) -> dict:
    """A timing contender calling a student kernel's forward on the bench inputs d."""
    from . import functional as F

    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        fn = lambda: k.conv2d_forward(d["x"], d["w"], d["bias"], g)  # noqa: E731
    elif op == "gemm":
        fn = lambda: k.gemm(d["a"], d["b"])  # noqa: E731
    else:
        g = _pool_geom(op, spec)
        _, kw = _pool_kw(op, spec)
        fn = ((lambda: k.max_pool2d_forward(d["x"], g, False)) if op == "max_pool2d"
              else (lambda: k.avg_pool2d_forward(d["x"], g, kw["count_include_pad"])))
    return {"name": name, "kind": "student", "source": k.path,
            "threads": _openmp_threads(k.library) if device == "cpu" else "GPU", "fn": fn}


def time_files(paths, op: str, spec, device: str = "cpu", budget: float | None = None, min_reps: int = MIN_REPS,
               max_reps: int = MAX_REPS) -> list:
    """Times several student files on one shape in this process, in alternation (a ladder's worked
    solutions: benchmarks/bench_ladder.py, tests/test_assignment_solutions.py).

    Parameters
    ----------
    paths : list of str or Path
        Student files for op (compiled, or found in the build cache); they should pass the grader.
    op : {"conv2d", "gemm", "max_pool2d", "avg_pool2d"}
    spec : tuple or dict
        The shape, as in the grader's suite (``_gemm(M, N, K)`` for gemm, a CONV_CASES tuple for conv2d).
    device, budget, min_reps, max_reps
        As :func:`time_alternating`.

    Returns
    -------
    list of dict
        :func:`time_alternating`'s rows, named by file stem, with gflops (from the median) and
        best_gflops (from the fastest repeat) added.

    Raises
    ------
    KernelCompileError
        A file does not compile.
    """
    d = _bench_inputs(op, device, spec)
    contenders = [_student_contender(kernels.open_kernel(p, op, name=Path(p).stem), op, device, spec, d, Path(p).stem)
                  for p in paths]
    rows = time_alternating(contenders, device, budget, min_reps, max_reps)
    flops = _flops(op, spec)
    for r in rows:
        if "seconds" in r:
            r["gflops"] = flops / r["seconds"] / 1e9
            r["best_gflops"] = flops / r["min"] / 1e9
    return rows


def _torch_contender(op, device, spec):
    try:
        import torch
        import torch.nn.functional as TF
    except ImportError:
        return None
    if device != "cpu" and not torch.cuda.is_available():
        return None
    from . import functional as F

    dev = "cpu" if device == "cpu" else "cuda"
    inp = _bench_inputs(op, "cpu", spec)
    t = {k: torch.tensor(v, device=dev) for k, v in inp.items()}
    if dev == "cuda":  # an fp32 comparison: no TF32 tensor cores in cuDNN/cuBLAS
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    else:
        torch.set_num_threads(F.get_num_threads())  # the same cores as ours (this child only times)
    if op == "conv2d":
        _, _, kw = _conv_kw(spec)
        fn = lambda: TF.conv2d(t["x"], t["w"], t.get("bias"), **kw)  # noqa: E731
        label = "PyTorch (cuDNN)" if dev == "cuda" else "PyTorch (oneDNN)"
    elif op == "gemm":
        fn = lambda: t["a"] @ t["b"]  # noqa: E731
        label = "PyTorch (cuBLAS)" if dev == "cuda" else "PyTorch (CPU BLAS)"
    else:
        _, kw = _pool_kw(op, spec)
        pool = TF.max_pool2d if op == "max_pool2d" else TF.avg_pool2d
        fn = lambda: pool(t["x"], **kw)  # noqa: E731
        label = "PyTorch (cuDNN)" if dev == "cuda" else "PyTorch"

    def call():
        with torch.no_grad():
            fn()
        if dev == "cuda":
            torch.cuda.synchronize()

    return {"name": label, "kind": "library", "source": f"torch {torch.__version__}",
            "threads": torch.get_num_threads() if dev == "cpu" else "GPU", "fn": call}


def _percentile(sorted_times, q):
    return float(np.percentile(np.asarray(sorted_times), q))


def time_alternating(contenders, device="cpu", budget=None, min_reps=MIN_REPS, max_reps=MAX_REPS) -> list:
    """Times contenders in alternation, in this process: a warm-up call each, then rounds in which
    every contender runs once (the order rotated each round), until the budget is spent.

    Parameters
    ----------
    contenders : list of dict
        Each with "fn" (a callable of no arguments) and any other keys (name, kind, threads...),
        copied into its row.
    device : {"cpu", "cuda"}
        "cuda" synchronises the device after every call.
    budget : float, optional
        Seconds for all rounds together (default ``BENCH_SECONDS``, ``$CONVFORGE_GRADE_BENCH_SECONDS``).
    min_reps, max_reps : int
        Bounds on the number of rounds.

    Returns
    -------
    list of dict
        One row per contender, without "fn": reps, median (also "seconds"), min, max, p10, p90 in
        seconds, spread = (p90 - p10) / median and wide_spread (spread > ``WIDE_SPREAD``); or "error"
        when the warm-up call raised (that contender is then left out of the rounds).
    """
    budget = BENCH_SECONDS if budget is None else budget
    live, rows = [], []
    for c in contenders:  # warm-up (first call: page faults, lazy init); drops a variant that refuses the shape
        row = {k: v for k, v in c.items() if k != "fn"}
        rows.append(row)
        try:
            t0 = time.perf_counter()
            c["fn"]()
            _sync(device)
            row["warmup_seconds"] = time.perf_counter() - t0
            live.append((row, c["fn"], []))
        except Exception as e:
            row["error"] = str(e)
    if not live:
        return rows
    round_s = sum(r["warmup_seconds"] for r, _, _ in live)
    reps = int(min(max_reps, max(min_reps, budget / max(round_s, 1e-6))))
    for i in range(reps):
        for j in range(len(live)):
            row, fn, times = live[(i + j) % len(live)]
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    for row, _, times in live:
        med = float(np.median(times))
        p10, p90 = _percentile(times, 10), _percentile(times, 90)
        spread = (p90 - p10) / med if med > 0 else 0.0
        row.update(reps=len(times), seconds=med, median=med, min=float(min(times)), max=float(max(times)),
                   p10=p10, p90=p90, spread=spread, wide_spread=bool(spread > WIDE_SPREAD))
    return rows


def _worker_main() -> int:
    """The child: reads one JSON job on stdin, writes one JSON event per line on the original stdout
    (the student's own prints go to stderr)."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    job = json.loads(sys.stdin.readline())

    def emit(**ev):
        events.write(json.dumps(ev) + "\n")
        events.flush()

    k = kernels.open_kernel(job["path"], job["op"], name="student", library=job["library"])
    op, device = job["op"], job["device"]
    for c in job["cases"]:
        emit(event="start", id=c["id"])
        data = dict(np.load(c["inputs"]))
        dy = data.pop("__dy", None)
        t0 = time.perf_counter()
        try:
            out = _run_case(k, op, device, c["spec"], data, dy)
        except Exception as e:  # e.g. a CUDA fault: the context is lost, so stop here
            emit(event="error", id=c["id"], message=f"{type(e).__name__}: {e}")
            return 3
        np.savez(c["outputs"], **out)
        emit(event="done", id=c["id"], seconds=time.perf_counter() - t0)
    if job.get("bench"):
        emit(event="start", id="__bench")
        rows = time_alternating(_contenders(k, op, device, job["bench"]), device)
        emit(event="bench", id="__bench", rows=rows, pid=os.getpid())
    return 0


class _Child:
    """One worker process with its event lines on a queue."""

    def __init__(self, job, env):
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys, convforge.grade as g; sys.exit(g._worker_main())"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.close()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)
        put(None)

    def stderr_tail(self, n=2000) -> str:
        return "".join(s for s in self.stderr if s)[-n:]

    def kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


def _run_children(job, case_timeout, bench_timeout, env) -> tuple:
    """Runs job's cases in children, restarting after a crash; (per-case status dict, bench result)."""
    status, bench = {}, None
    pending = list(job["cases"])
    want_bench = job.get("bench")
    restarts = 0
    while pending or want_bench:
        child = _Child(dict(job, cases=pending, bench=want_bench), env)
        current, started = None, time.monotonic()
        while True:
            limit = (bench_timeout if current == "__bench" else case_timeout) if current else 60.0
            try:
                line = child.lines.get(timeout=max(0.1, limit - (time.monotonic() - started)))
            except queue.Empty:
                child.kill()
                what = (f"no result after {limit:g} s: the kernel hangs (or is far too slow); the child was killed")
                if current is None:
                    current = pending[0]["id"] if pending else "__bench"
                status[current] = {"status": "timeout", "message": what}
                break
            if line is None:
                rc = child.proc.wait()
                if current is not None or rc != 0:
                    msg = f"the kernel crashed: the child process {_describe_exit(rc)}"
                    tail = child.stderr_tail()
                    if current is None:  # died before its first case (loading failed)
                        for c in pending:
                            status[c["id"]] = {"status": "error", "message": msg, "stderr": tail}
                        pending, want_bench = [], None
                    else:
                        status[current] = {"status": "crash", "message": msg, "stderr": tail}
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev["event"] == "start":
                current, started = ev["id"], time.monotonic()
            elif ev["event"] == "done":
                status[ev["id"]] = {"status": "ran", "seconds": ev["seconds"]}
                current = None
            elif ev["event"] == "error":
                status[ev["id"]] = {"status": "error", "message": ev["message"]}
                current = None
            elif ev["event"] == "bench":
                bench = {"rows": ev["rows"], "pid": ev["pid"]}
                current = None
        child.kill()
        pending = [c for c in pending if c["id"] not in status]
        if "__bench" in status or bench is not None:
            want_bench = None
        restarts += 1
        if restarts > 8:  # a kernel that crashes everywhere: mark the rest and stop
            for c in pending:
                status[c["id"]] = {"status": "not_run", "message": "not run: too many crashes before it"}
            break
    return status, bench


# ---------------------------------------------------------------------------------------------
# FLOPs and the nominal peak
# ---------------------------------------------------------------------------------------------

def _flops(op, spec) -> float:
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        from . import functional as F

        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        return 2.0 * g.macs
    if op == "gemm":
        return 2.0 * spec["M"] * spec["N"] * spec["K"]
    g = _pool_geom(op, spec)
    return float(g.N * g.C * g.P * g.Q * g.R * g.S)


def peak_gflops(device: str = "cpu") -> float:
    """fp32 peak: on the CPU measured by convforge (an FMA loop per ISA on the threads in use,
    ``convforge.machine.fma_peak``); on a GPU nominal, SMs x clock x lanes x 2.
    $CONVFORGE_PEAK_GFLOPS overrides it."""
    if os.environ.get("CONVFORGE_PEAK_GFLOPS"):
        return float(os.environ["CONVFORGE_PEAK_GFLOPS"])
    if device == "cpu":
        from . import machine

        return machine.fma_peak()["gflops"]
    from . import cuda

    p = cuda.get_device_properties(0)
    per_sm = 64 if (p["major"], p["minor"]) in ((8, 0), (7, 0), (6, 0)) or p["major"] == 7 else 128
    return p["sm_count"] * p["clock_khz"] / 1e6 * per_sm * 2


# ---------------------------------------------------------------------------------------------
# grade()
# ---------------------------------------------------------------------------------------------

def _child_env():
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _tolerance(op, out_name) -> float:
    if out_name == "C_between_rows":
        return 0.0  # not yours: untouched, bit for bit
    if op == "conv2d" and out_name in ("dx", "dw", "db"):
        return TOLERANCE["conv2d_backward"]
    if out_name == "dx":  # pooling backward: overlapping windows sum in any order
        return 1e-5
    return TOLERANCE[op]


def _check(out_name, got, ref, tol) -> dict:
    if out_name == "indices":
        wrong = np.flatnonzero(got.ravel() != ref.ravel())
        c = {"rel_error": 0.0 if wrong.size == 0 else float(wrong.size) / ref.size, "ok": wrong.size == 0}
        if wrong.size:
            i0 = int(wrong[0])
            c["first_wrong"] = {"index": [int(v) for v in np.unravel_index(i0, ref.shape)],
                                "expected": int(ref.flat[i0]), "actual": int(got.flat[i0]),
                                "wrong_elements": int(wrong.size)}
        return c
    err = rel_error(got, ref)
    c = {"rel_error": err, "tolerance": tol, "ok": err <= tol}
    if not c["ok"]:
        c["first_wrong"] = first_wrong(got, ref)
    return c


def _reference_source(reference: str) -> str:
    if reference not in ("auto", "torch", "convforge"):
        raise ValueError(f"grade: reference must be 'auto', 'torch' or 'convforge', got {reference!r}")
    if reference == "convforge":
        return "convforge"
    if torch_available():
        return "torch"
    if reference == "torch":
        raise ImportError(f"grading against PyTorch needs torch, which is not installed: {INSTALL_HINT}")
    return "convforge"


REFERENCE_NOTE = {
    "torch": "expected values from PyTorch in float64",
    "convforge": ("expected values from convforge's own reference kernels (float32; numpy float64 for gemm), "
                  f"since PyTorch is not installed; to grade against PyTorch: {INSTALL_HINT}"),
}


def grade(path, op: str = "conv2d", device: str | None = None, seed: int = 0, timing: bool = True,
          case_timeout: float = 20.0, bench_timeout: float = 120.0, n_random: int = 6,
          case_names=None, reference: str = "auto") -> dict:
    """Grades a student kernel file: correctness over the op's suite, then (when every case passes) timing.

    Parameters
    ----------
    path : str or Path
        A ``.cpp`` (CPU) or ``.cu`` (CUDA) file defining the op's functions of ``convforge/student.h``.
    op : {"conv2d", "gemm", "max_pool2d", "avg_pool2d"}
    device : {"cpu", "cuda"}, optional
        Default: ``cuda`` for a ``.cu`` file, else ``cpu``.
    seed : int
        Seed of the random shapes and of every input.
    timing : bool
        Time the kernel against ours and PyTorch after a pass (see :func:`time_alternating`).
    case_timeout, bench_timeout : float
        Seconds per case, and for the timing run, before a hang is declared (the child is killed).
    n_random : int
        Random shapes after the fixed grid.
    case_names : iterable of str, optional
        Restricts the suite to these cases (quick checks).
    reference : {"auto", "torch", "convforge"}
        Where expected values come from: PyTorch in float64, or our reference kernels; "auto" is
        PyTorch when installed, else ours (the result's ``reference_note`` says which).

    Returns
    -------
    dict
        {file, op, device, seed, status, reference, reference_note, compile, cases, passed, total,
        backward_graded, timing}; status is passed, failed, compile_error, or not_run (a .cu file
        without a GPU).

    Raises
    ------
    ValueError
        An unknown op or reference, or a device that does not match the file's suffix.
    ImportError
        reference="torch" without torch installed (the message says ``pip install "convforge[grade]"``).
    """
    path = Path(path)
    device = device or ("cuda" if path.suffix == ".cu" else "cpu")
    if op not in kernels.OPS:
        raise ValueError(f"grade: op must be one of {sorted(kernels.OPS)}, got {op!r}")
    if (device == "cuda") != (path.suffix == ".cu"):
        raise ValueError(f"grade: --device {device} needs a {'.cu' if device == 'cuda' else '.cpp'} file, got {path}")
    source = _reference_source(reference)
    result = {"file": str(path), "op": op, "device": device, "seed": seed, "status": None,
              "reference": source, "reference_note": REFERENCE_NOTE[source],
              "compile": {}, "cases": [], "passed": 0, "total": 0, "timing": None}
    try:
        library, log, cached = kernels.compile_kernel(path)
    except kernels.KernelCompileError as e:
        result.update(status="compile_error", compile={"ok": False, "command": e.command, "output": e.output})
        return result
    result["compile"] = {"ok": True, "cached": cached, "output": log, "library": library}
    try:  # refuses a file without the op's functions, with a message naming them
        k = kernels.open_kernel(path, op, name="student", library=library)
    except ValueError as e:
        result.update(status="failed", error=str(e))
        return result
    if device == "cuda":
        from . import cuda

        if not cuda.is_available():
            result.update(status="not_run", error="compiled; no CUDA GPU is visible (or convforge was built "
                                                  "without CUDA), so nothing was run")
            return result
    own_backward = [f for f in kernels.OPS[op][1] if k.has(f)]
    suite = cases(op, seed, n_random, device)
    if case_names is not None:
        suite = [c for c in suite if c[0] in set(case_names)]
    with tempfile.TemporaryDirectory(prefix="convforge-grade-") as tmp:
        jobs, refs = [], {}
        for i, (name, spec) in enumerate(suite):
            case_seed = (seed * 1000003 + i) & 0x7FFFFFFF
            inp = _make_inputs(op, spec, case_seed)
            dy = None
            if own_backward or (op == "gemm" and "linear" in spec):  # nn.Linear's backward is GEMMs too
                y_shape = _reference(op, spec, inp, None, source)["y"].shape
                dy = np.random.default_rng(case_seed + 1).standard_normal(y_shape).astype(np.float32)
            ref = _reference(op, spec, inp, dy, source)
            extra = {}
            if op == "max_pool2d":
                extra["__indices"] = ref["indices"].astype(np.int64)  # what the backward reads
                if not _pool_extras(spec).get("indices", True):
                    ref.pop("indices")
            refs[name] = ref
            f_in = os.path.join(tmp, f"in_{i}.npz")
            np.savez(f_in, **inp, **extra, **({"__dy": dy} if dy is not None else {}))
            jobs.append({"id": name, "spec": spec, "inputs": f_in, "outputs": os.path.join(tmp, f"out_{i}.npz")})
        job = {"path": str(path), "op": op, "device": device, "library": library, "cases": jobs}
        status, _ = _run_children(job, case_timeout, bench_timeout, _child_env())
        all_ok = True
        for (name, spec), j in zip(suite, jobs):
            st = status.get(name, {"status": "not_run", "message": "not run"})
            row = {"name": name, "shape": describe(op, spec), "status": st["status"]}
            if st["status"] != "ran":
                row.update({k: v for k, v in st.items() if k != "status"})
                all_ok = False
                result["cases"].append(row)
                continue
            got = dict(np.load(j["outputs"]))
            checks, ok = {}, True
            for out_name, ref in refs[name].items():
                if out_name not in got:
                    continue
                c = _check(out_name, got[out_name], ref, _tolerance(op, out_name))
                ok &= c["ok"]
                checks[out_name] = c
            row.update(status="pass" if ok else "wrong", checks=checks, seconds=st.get("seconds"))
            all_ok &= ok
            result["cases"].append(row)
    result["total"] = len(result["cases"])
    result["passed"] = sum(r["status"] == "pass" for r in result["cases"])
    result["backward_graded"] = bool(own_backward)
    result["status"] = "passed" if all_ok else "failed"
    if all_ok and timing:
        result["timing"] = _timing(path, op, device, library, bench_timeout)
    return result


def _timing(path, op, device, library, bench_timeout) -> dict:
    spec = BENCH[(op, device)]
    job = {"path": str(path), "op": op, "device": device, "library": library, "cases": [], "bench": spec}
    status, bench = _run_children(job, 60.0, bench_timeout, _child_env())
    flops, peak = _flops(op, spec), peak_gflops(device)
    if bench is None:
        st = status.get("__bench", {})
        rows, pid = [{"name": "yours", "kind": "student", "source": str(path),
                      "error": st.get("message", "no timing")}], None
    else:
        rows, pid = bench["rows"], bench["pid"]
    for r in rows:
        if "seconds" in r:
            r["ms"] = 1e3 * r["seconds"]
            r["gflops"] = flops / r["seconds"] / 1e9
            r["pct_peak"] = 100.0 * r["gflops"] / peak
    ours = [r for r in rows if r["name"].startswith("ours:") and "seconds" in r]
    fastest = min(ours, key=lambda r: r["seconds"]) if ours else None
    wide = [r["name"] for r in rows if r.get("wide_spread")]
    return {"shape": describe(op, spec), "flops": flops, "peak_gflops": peak, "rows": rows,
            "fastest_ours": fastest["name"][6:] if fastest else None, "pid": pid, "alternated": True,
            "budget_seconds": BENCH_SECONDS, "wide_spread": wide}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _fmt_idx(name, idx):
    return f"{name}[{', '.join(str(i) for i in idx)}]"


def format_report(r: dict) -> str:
    lines = [f"convforge grade {r['file']} --op {r['op']} --device {r['device']} --seed {r['seed']}"]
    if r["status"] == "compile_error":
        lines += ["does not compile:", r["compile"]["output"].rstrip()]
        return "\n".join(lines)
    c = r["compile"]
    lines.append(f"compiled ({'cached' if c.get('cached') else 'built'}): {c.get('library')}")
    if r.get("reference_note"):
        lines.append(r["reference_note"])
    if c.get("output", "").strip():
        lines.append(c["output"].rstrip())
    if r.get("error"):
        lines.append(r["error"])
        return "\n".join(lines)
    width = max([len(x["name"]) for x in r["cases"]] + [4])
    for case in r["cases"]:
        st = case["status"]
        head = f"  {st.upper():7s} {case['name'].ljust(width)}  {case['shape']}"
        if st in ("pass", "wrong"):
            errs = ", ".join(f"{k} {v['rel_error']:.1e}" for k, v in case["checks"].items())
            lines.append(f"{head}\n{'':10s}rel. error {errs}")
            for k, v in case["checks"].items():
                fw = v.get("first_wrong")
                if fw:
                    note = " (never written: outputs start as NaN)" if fw.get("never_written") else ""
                    lines.append(f"{'':10s}{k}: first wrong {_fmt_idx(k, fw['index'])}: expected {fw['expected']:.6g}, "
                                 f"got {fw['actual']:.6g}{note}; {fw['wrong_elements']} wrong elements")
        else:
            lines.append(f"{head}\n{'':10s}{case.get('message', '')}")
            if case.get("stderr", "").strip():
                lines.append("\n".join(f"{'':10s}| {s}" for s in case["stderr"].rstrip().splitlines()[-8:]))
    bwd = " (forward and backward)" if r.get("backward_graded") else ""
    lines.append(f"{r['passed']}/{r['total']} cases passed{bwd}: {r['status'].upper()}")
    t = r.get("timing")
    if t:
        lines.append(f"timing on {t['shape']} ({t['flops'] / 1e9:.2f} GFLOP, {'measured' if r['device'] == 'cpu' else 'nominal'} peak {t['peak_gflops']:.0f} GFLOP/s), "
                     f"all in one process, alternating, after a warm-up call each; median [min-max], p10-p90 spread:")
        for row in t["rows"]:
            if "seconds" in row:
                flag = "  <- spread too wide to compare" if row.get("wide_spread") else ""
                lines.append(f"  {row['name']:28s} {row['ms']:9.3f} ms [{1e3 * row['min']:.3f}-{1e3 * row['max']:.3f}] "
                             f"{row['gflops']:8.1f} GFLOP/s {row['pct_peak']:5.1f}% of peak  "
                             f"spread {100 * row['spread']:3.0f}%  x{row['reps']}  threads {row['threads']}{flag}")
            else:
                lines.append(f"  {row['name']:28s} {row.get('error', '')}")
        if t.get("wide_spread"):
            lines.append(f"  the p10-p90 spread of {', '.join(t['wide_spread'])} is over {100 * WIDE_SPREAD:.0f}% of the "
                         f"median: the machine is busy, so these numbers cannot be compared; rerun on a quiet machine "
                         f"(or with CONVFORGE_GRADE_BENCH_SECONDS raised)")
        lines.append("  threads: yours = its OpenMP runtime's omp_get_max_threads() (set OMP_NUM_THREADS; 1 when the "
                     "file does not use OpenMP); "
                     "ours = convforge.functional.get_num_threads(); PyTorch set to ours")
    return "\n".join(lines)


def _cmd_grade(args) -> int:
    try:
        r = grade(args.file, args.op, args.device, args.seed, timing=not args.no_timing,
                  case_timeout=args.timeout, reference=args.reference)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2, default=float) if args.json else format_report(r))
    return {"passed": 0, "failed": 1, "compile_error": 1, "not_run": 3}[r["status"]]


def add_subcommands(subparsers) -> None:
    """Adds `convforge grade` to the command line's subparsers."""
    s = subparsers.add_parser("grade", help="grade a student kernel file against PyTorch, then time it against ours")
    s.add_argument("file", help="a .cpp (CPU) or .cu (CUDA) file defining the functions of convforge/student.h")
    s.add_argument("--op", default="conv2d", choices=sorted(kernels.OPS))
    s.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda for .cu, cpu for .cpp")
    s.add_argument("--seed", type=int, default=0, help="seed of the random shapes and inputs")
    s.add_argument("--json", action="store_true", help="print the result as JSON (for autograders)")
    s.add_argument("--no-timing", action="store_true", help="correctness only")
    s.add_argument("--timeout", type=float, default=20.0, help="seconds per case before a hang is declared")
    s.add_argument("--reference", default="auto", choices=["auto", "torch", "convforge"],
                   help="expected values from PyTorch (float64; needs convforge[grade]) or our reference kernels; "
                        "auto: PyTorch when installed")
    s.set_defaults(func=_cmd_grade)


if __name__ == "__main__":  # python -m convforge.grade FILE --op OP ...
    import argparse

    p = argparse.ArgumentParser(prog="python -m convforge.grade")
    add_subcommands(p.add_subparsers(dest="command"))
    args = p.parse_args(["grade", *sys.argv[1:]])
    sys.exit(args.func(args))
