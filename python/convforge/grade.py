"""The grader: a student kernel file against PyTorch, then against our kernel ladder.

    convforge grade my_conv.cpp --op conv2d [--device cpu|cuda] [--seed N] [--json]

1. compiles the file (``convforge.kernels.compile_kernel``; compiler errors are shown verbatim);
2. runs the op's correctness suite in a child process with a time limit per case, so that a
   segfault or a hang is reported as such: the shape grid of our tests (1x1, kernel == padded
   input, stride > kernel, asymmetric padding, dilation, groups, depthwise, batch 1, odd sizes,
   LeNet-5 and VGG-16 layers) plus random shapes drawn from ``--seed``. Outputs start as NaN, so an
   element the kernel never writes is caught. Each case reports its relative error
   ||out - ref|| / ||ref|| against PyTorch in float64 and, when wrong, the first wrong index with
   the expected and actual values. conv2d's backward is graded too where the file defines it;
3. when every case passes, times the kernel against our reference and fastest variants (and
   PyTorch: oneDNN on the CPU, cuDNN/cuBLAS on a GPU) with GFLOP/s and % of the device's peak.

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
# name: (M, N, K, alpha, beta): beta == 0 leaves C poisoned (write-only), as in BLAS
GEMM_CASES = {
    "1x1x1": (1, 1, 1, 1.0, 0.0),
    "small_odd": (7, 5, 3, 1.0, 0.0),
    "square_64": (64, 64, 64, 1.0, 0.0),
    "edges_65x33x17": (65, 33, 17, 1.0, 0.0),
    "column": (128, 1, 300, 1.0, 0.0),
    "row": (1, 128, 77, 1.0, 0.0),
    "tall_k": (31, 97, 130, 1.0, 0.0),
    "alpha_beta": (45, 70, 29, 0.5, 2.0),
    "lenet_fc": (120, 64, 400, 1.0, 0.0),
    "vgg_block": (200, 256, 288, 1.0, 0.0),
}
# name: (N, C, H, W, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
POOL_CASES = {
    "2x2_s2": (2, 3, 8, 8, 2, 2, 0, 1, False, True),
    "odd_input": (1, 4, 9, 11, 2, 2, 0, 1, False, True),
    "3x3_s2_pad1": (2, 5, 13, 12, 3, 2, 1, 1, False, True),
    "3x3_s2_pad1_no_pad_count": (2, 5, 13, 12, 3, 2, 1, 1, False, False),
    "ceil_mode": (1, 3, 10, 7, 3, 2, 1, 1, True, True),
    "overlapping_s1": (2, 2, 7, 9, (3, 2), 1, (1, 0), 1, False, True),
    "dilation": (1, 3, 12, 12, 3, 1, 1, 2, False, True),
    "lenet_s2": (4, 6, 28, 28, 2, 2, 0, 1, False, True),
    "alexnet_3x3_s2": (1, 64, 55, 55, 3, 2, 0, 1, False, True),
}
# One timing shape per op and device: big enough to measure, small enough for the reference loops.
BENCH = {
    ("conv2d", "cpu"): (2, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1),
    ("conv2d", "cuda"): (16, 128, 56, 56, 128, 3, 3, 1, 1, 1, 1),
    ("gemm", "cpu"): (512, 512, 512, 1.0, 0.0),
    ("gemm", "cuda"): (4096, 4096, 4096, 1.0, 0.0),
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


def cases(op: str, seed: int = 0, n_random: int = 6) -> list:
    """The correctness suite of op: [(name, spec)], the fixed grid then n_random shapes from seed."""
    rng = np.random.default_rng(seed)
    if op == "conv2d":
        out = list(CONV_CASES.items()) + [(f"random_{i}", _random_conv(rng)) for i in range(n_random)]
    elif op == "gemm":
        rand = []
        for i in range(n_random):
            M, N, K = (int(v) for v in rng.integers(1, 160, size=3))
            rand.append((f"random_{i}", (M, N, K, 1.0, float(rng.choice([0.0, 0.0, 1.5])))))
        out = list(GEMM_CASES.items()) + rand
    elif op in ("max_pool2d", "avg_pool2d"):
        grid = [(k, v) for k, v in POOL_CASES.items() if not (op == "avg_pool2d" and v[7] != 1)]
        if op == "max_pool2d":
            grid = [(k, v) for k, v in grid if not k.endswith("no_pad_count")]
        out = grid + [(f"random_{i}", _random_pool(rng)) for i in range(n_random)]
    else:
        raise ValueError(f"grade: op must be one of {sorted(kernels.OPS)}, got {op!r}")
    return out


def _conv_kw(spec):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = spec
    return (N, C, H, W), (K, C // groups, R, S), dict(stride=stride, padding=padding, dilation=dilation,
                                                       groups=groups)


def _pool_kw(op, spec):
    N, C, H, W, k, s, p, d, ceil, cip = spec
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    if op == "max_pool2d":
        kw["dilation"] = d
    else:
        kw["count_include_pad"] = cip
    return (N, C, H, W), kw


def describe(op, spec) -> str:
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        return (f"x{xs} w{ws} stride={kw['stride']} padding={kw['padding']!r} dilation={kw['dilation']} "
                f"groups={kw['groups']}").replace(" ", " ")
    if op == "gemm":
        M, N, K, a, b = spec
        return f"M={M} N={N} K={K} alpha={a} beta={b}"
    xs, kw = _pool_kw(op, spec)
    return f"x{xs} " + " ".join(f"{k}={v}" for k, v in kw.items())


def _make_inputs(op, spec, seed, with_backward):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    if op == "conv2d":
        xs, ws, _ = _conv_kw(spec)
        d = {"x": f(*xs), "w": f(*ws)}
        if seed % 2 == 0:  # half the cases without bias
            d["bias"] = f(ws[0])
        return d
    if op == "gemm":
        M, N, K, _, beta = spec
        d = {"a": f(M, K), "b": f(K, N)}
        if beta != 0.0:
            d["c"] = f(M, N)
        return d
    xs, _ = _pool_kw(op, spec)
    return {"x": f(*xs)}


def _reference(op, spec, inp, dy=None):
    """PyTorch in float64: the expected outputs."""
    import warnings

    import torch
    import torch.nn.functional as TF

    warnings.filterwarnings("ignore", message=".*padding='same'.*")
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(op == "conv2d")) for k, v in inp.items()}
    if op == "conv2d":
        _, _, kw = _conv_kw(spec)
        y = TF.conv2d(t["x"], t["w"], t.get("bias"), **kw)
        out = {"y": y.detach().numpy()}
        if dy is not None:
            y.backward(torch.tensor(dy, dtype=torch.float64))
            out.update(dx=t["x"].grad.numpy(), dw=t["w"].grad.numpy())
            if "bias" in t:
                out["db"] = t["bias"].grad.numpy()
        return out
    if op == "gemm":
        M, N, K, alpha, beta = spec
        y = alpha * (t["a"] @ t["b"])
        if "c" in t:
            y = y + beta * t["c"]
        return {"y": y.numpy()}
    _, kw = _pool_kw(op, spec)
    if op == "max_pool2d":
        y, idx = TF.max_pool2d(t["x"], return_indices=True, **kw)
        return {"y": y.numpy(), "indices": idx.numpy()}
    return {"y": TF.avg_pool2d(t["x"], **kw).numpy()}


def rel_error(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64; inf when out has NaN or Inf (e.g. an unwritten element)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(out)):
        return float("inf")
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


def first_wrong(out, ref) -> dict:
    """The first element (row-major) that is not finite or off by more than 1e-3 relative plus
    1e-4 of the output's RMS; else the element with the largest error."""
    out64 = np.asarray(out, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    scale = float(np.sqrt(np.mean(ref64 ** 2))) if ref64.size else 0.0
    with np.errstate(invalid="ignore"):
        err = np.abs(out64 - ref64)
        bad = ~np.isfinite(out64) | (err > 1e-3 * np.abs(ref64) + 1e-4 * scale)
    flat = np.flatnonzero(bad)
    i = int(flat[0]) if flat.size else int(np.nanargmax(np.where(np.isfinite(err), err, np.inf)))
    idx = tuple(int(v) for v in np.unravel_index(i, ref64.shape))
    got = float(out64.flat[i])
    return {"index": list(idx), "expected": float(ref64.flat[i]), "actual": got,
            "wrong_elements": int(flat.size), "never_written": bool(np.isnan(got))}


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


def _run_case(k, op, device, spec, inp, dy):
    """Runs the student's kernel on one case with poisoned outputs; returns host arrays."""
    from . import functional as F

    d = {name: _to_dev(device, v) for name, v in inp.items()}
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
    elif op == "gemm":
        M, N, K, alpha, beta = spec
        c = d.get("c")
        y = c if c is not None else _poisoned(device, (M, N))
        k.gemm(d["a"], d["b"], None, alpha, beta if c is not None else 0.0, out=y)
        _sync(device)
        out["y"] = _from_dev(device, y)
    else:
        xs, kw = _pool_kw(op, spec)
        g = F._pool_geometry(op, xs, kw["kernel_size"], kw["stride"], kw["padding"], kw.get("dilation", 1),
                             kw["ceil_mode"])
        y = _poisoned(device, (g.N, g.C, g.P, g.Q))
        if op == "max_pool2d":
            idx = _poisoned(device, (g.N, g.C, g.P, g.Q), np.int64)
            k.max_pool2d_forward(d["x"], g, True, y=y, indices=idx)
            _sync(device)
            out["indices"] = _from_dev(device, idx)
        else:
            k.avg_pool2d_forward(d["x"], g, kw["count_include_pad"], y=y)
            _sync(device)
        out["y"] = _from_dev(device, y)
    return out


def _time_call(fn, device, budget=0.4, max_reps=20) -> float:
    """Best (minimum) seconds of fn() after one warm-up, the least noisy on a shared machine;
    fewer repeats for slow kernels."""
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t0
    reps = max(1, min(max_reps, int(budget / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(min(times))


def _bench_inputs(op, device, spec, seed=1234):
    inp = _make_inputs(op, spec, seed, False)
    if op == "conv2d" and "bias" not in inp:
        inp["bias"] = np.random.default_rng(seed).standard_normal(inp["w"].shape[0]).astype(np.float32)
    return {k: _to_dev(device, v) for k, v in inp.items()}


def _student_timer(k, op, device, spec):
    from . import functional as F

    d = _bench_inputs(op, device, spec)
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        return lambda: k.conv2d_forward(d["x"], d["w"], d["bias"], g)
    if op == "gemm":
        return lambda: k.gemm(d["a"], d["b"])
    xs, kw = _pool_kw(op, spec)
    g = F._pool_geometry(op, xs, kw["kernel_size"], kw["stride"], kw["padding"], kw.get("dilation", 1),
                         kw["ceil_mode"])
    if op == "max_pool2d":
        return lambda: k.max_pool2d_forward(d["x"], g, False)
    return lambda: k.avg_pool2d_forward(d["x"], g, kw["count_include_pad"])


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
        spec = job["bench"]
        fn = _student_timer(k, op, device, spec)
        emit(event="bench", id="__bench", seconds=_time_call(fn, device))
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
    """Runs job's cases in children, restarting after a crash; (per-case status dict, bench seconds)."""
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
                bench = ev["seconds"]
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
# Timing ours
# ---------------------------------------------------------------------------------------------

def _flops(op, spec) -> float:
    if op == "conv2d":
        xs, ws, kw = _conv_kw(spec)
        from . import functional as F

        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        return 2.0 * g.macs
    if op == "gemm":
        M, N, K, _, _ = spec
        return 2.0 * M * N * K
    xs, kw = _pool_kw(op, spec)
    from . import functional as F

    g = F._pool_geometry(op, xs, kw["kernel_size"], kw["stride"], kw["padding"], kw.get("dilation", 1),
                         kw["ceil_mode"])
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


def _time_ours(op, device, spec) -> list:
    from . import functional as F

    d = _bench_inputs(op, device, spec)
    backend_op = {"conv2d": "conv2d_forward", "gemm": "gemm"}.get(op, "pool2d")
    rows = []
    for a in F.algos(backend_op, device):
        name = a["name"]
        if op == "conv2d":
            _, _, kw = _conv_kw(spec)
            fn = lambda name=name: F.conv2d(d["x"], d["w"], d["bias"], algo=name, **kw)  # noqa: E731
        elif op == "gemm":
            fn = lambda name=name: F.gemm(d["a"], d["b"], algo=name)  # noqa: E731
        else:
            _, kw = _pool_kw(op, spec)
            pool = F.max_pool2d if op == "max_pool2d" else F.avg_pool2d
            fn = lambda name=name, pool=pool: pool(d["x"], algo=name, **kw)  # noqa: E731
        try:
            rows.append({"name": f"ours: {name}", "kind": a["kind"], "source": "csrc/" + a["source"],
                         "seconds": _time_call(fn, device)})
        except Exception as e:  # an algo that does not take this shape
            rows.append({"name": f"ours: {name}", "kind": a["kind"], "error": str(e)})
    return rows


def _time_torch(op, device, spec):
    try:
        import torch
        import torch.nn.functional as TF
    except ImportError:
        return None
    if device != "cpu" and not torch.cuda.is_available():
        return None
    dev = "cpu" if device == "cpu" else "cuda"
    inp = _make_inputs(op, spec, 1234, False)
    t = {k: torch.tensor(v, device=dev) for k, v in inp.items()}
    sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)  # noqa: E731
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
    if dev == "cuda":  # an fp32 comparison: no TF32 tensor cores in cuDNN/cuBLAS
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    threads = torch.get_num_threads()
    if dev == "cpu":
        from . import functional as F

        torch.set_num_threads(F.get_num_threads())  # the same cores as ours
    try:
        with torch.no_grad():
            fn()
            sync()
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return {"name": label, "kind": "library", "seconds": float(min(times))}


# ---------------------------------------------------------------------------------------------
# grade()
# ---------------------------------------------------------------------------------------------

def _child_env():
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def grade(path, op: str = "conv2d", device: str | None = None, seed: int = 0, timing: bool = True,
          case_timeout: float = 20.0, bench_timeout: float = 120.0, n_random: int = 6,
          case_names=None) -> dict:
    """Grades a student file; returns {file, op, device, seed, status, compile, cases, passed, total,
    timing}. status: passed, failed, compile_error, or not_run (a .cu file without a GPU).
    case_names restricts the suite to those cases (quick checks)."""
    path = Path(path)
    device = device or ("cuda" if path.suffix == ".cu" else "cpu")
    if op not in kernels.OPS:
        raise ValueError(f"grade: op must be one of {sorted(kernels.OPS)}, got {op!r}")
    if (device == "cuda") != (path.suffix == ".cu"):
        raise ValueError(f"grade: --device {device} needs a {'.cu' if device == 'cuda' else '.cpp'} file, got {path}")
    result = {"file": str(path), "op": op, "device": device, "seed": seed, "status": None,
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
    with_backward = op == "conv2d" and (k.has("convforge_conv2d_backward_data")
                                        or k.has("convforge_conv2d_backward_weight"))
    suite = cases(op, seed, n_random)
    if case_names is not None:
        suite = [c for c in suite if c[0] in set(case_names)]
    with tempfile.TemporaryDirectory(prefix="convforge-grade-") as tmp:
        jobs, refs = [], {}
        for i, (name, spec) in enumerate(suite):
            case_seed = (seed * 1000003 + i) & 0x7FFFFFFF
            inp = _make_inputs(op, spec, case_seed, with_backward)
            dy = None
            ref = None
            if with_backward:
                ref0 = _reference(op, spec, inp)
                dy = np.random.default_rng(case_seed + 1).standard_normal(ref0["y"].shape).astype(np.float32)
            ref = _reference(op, spec, inp, dy)
            refs[name] = ref
            f_in = os.path.join(tmp, f"in_{i}.npz")
            np.savez(f_in, **inp, **({"__dy": dy} if dy is not None else {}))
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
                if out_name == "indices":
                    wrong = np.flatnonzero(got[out_name].ravel() != ref.ravel())
                    c = {"rel_error": 0.0 if wrong.size == 0 else float(wrong.size) / ref.size,
                         "ok": wrong.size == 0}
                    if wrong.size:
                        i0 = int(wrong[0])
                        c["first_wrong"] = {"index": [int(v) for v in np.unravel_index(i0, ref.shape)],
                                            "expected": int(ref.flat[i0]), "actual": int(got[out_name].flat[i0]),
                                            "wrong_elements": int(wrong.size)}
                else:
                    tol = TOLERANCE["conv2d_backward" if out_name in ("dx", "dw", "db") else op]
                    err = rel_error(got[out_name], ref)
                    c = {"rel_error": err, "tolerance": tol, "ok": err <= tol}
                    if not c["ok"]:
                        c["first_wrong"] = first_wrong(got[out_name], ref)
                ok &= c["ok"]
                checks[out_name] = c
            row.update(status="pass" if ok else "wrong", checks=checks, seconds=st.get("seconds"))
            all_ok &= ok
            result["cases"].append(row)
    result["total"] = len(result["cases"])
    result["passed"] = sum(r["status"] == "pass" for r in result["cases"])
    result["backward_graded"] = with_backward
    result["status"] = "passed" if all_ok else "failed"
    if all_ok and timing:
        result["timing"] = _timing(path, op, device, library, bench_timeout)
    return result


def _timing(path, op, device, library, bench_timeout) -> dict:
    spec = BENCH[(op, device)]
    job = {"path": str(path), "op": op, "device": device, "library": library, "cases": [], "bench": spec}
    status, secs = _run_children(job, 60.0, bench_timeout, _child_env())
    flops, peak = _flops(op, spec), peak_gflops(device)
    rows = []
    if secs is not None:
        rows.append({"name": "yours", "kind": "student", "source": str(path), "seconds": secs})
    else:
        st = status.get("__bench", {})
        rows.append({"name": "yours", "kind": "student", "error": st.get("message", "no timing")})
    rows += _time_ours(op, device, spec)
    lib = _time_torch(op, device, spec)
    if lib:
        rows.append(lib)
    for r in rows:
        if "seconds" in r:
            r["ms"] = 1e3 * r["seconds"]
            r["gflops"] = flops / r["seconds"] / 1e9
            r["pct_peak"] = 100.0 * r["gflops"] / peak
    ours = [r for r in rows if r["name"].startswith("ours:") and "seconds" in r]
    fastest = min(ours, key=lambda r: r["seconds"]) if ours else None
    return {"shape": describe(op, spec), "flops": flops, "peak_gflops": peak, "rows": rows,
            "fastest_ours": fastest["name"][6:] if fastest else None}


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
        lines.append(f"timing on {t['shape']} ({t['flops'] / 1e9:.2f} GFLOP, {'measured' if r['device'] == 'cpu' else 'nominal'} peak {t['peak_gflops']:.0f} GFLOP/s):")
        for row in t["rows"]:
            if "seconds" in row:
                lines.append(f"  {row['name']:28s} {row['ms']:10.3f} ms {row['gflops']:9.1f} GFLOP/s "
                             f"{row['pct_peak']:6.1f}% of peak")
            else:
                lines.append(f"  {row['name']:28s} {row.get('error', '')}")
    return "\n".join(lines)


def _cmd_grade(args) -> int:
    try:
        r = grade(args.file, args.op, args.device, args.seed, timing=not args.no_timing,
                  case_timeout=args.timeout)
    except (FileNotFoundError, ValueError) as e:
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
    s.set_defaults(func=_cmd_grade)


if __name__ == "__main__":  # python -m convforge.grade FILE --op OP ...
    import argparse

    p = argparse.ArgumentParser(prog="python -m convforge.grade")
    add_subcommands(p.add_subparsers(dest="command"))
    args = p.parse_args(["grade", *sys.argv[1:]])
    sys.exit(args.func(args))
