"""Work run in child processes by tests/test_fork.py: one job per op family, each returning its
outputs as a dict of numpy arrays so that the parent can compare them with its own.

Kept apart from the test module (and from torch, which conftest imports) so that a "spawn" or
"forkserver" child starts quickly: it imports only numpy and convforge.
"""
from __future__ import annotations

import os
import threading

import numpy as np

import convforge
import convforge.functional as F
from convforge import models, nn

STUDENT_CONV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_kernels", "good_conv.cpp")


def _rng():
    return np.random.default_rng(17)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# Sizes large enough that every kernel below runs its OpenMP regions with the whole team.
def conv():
    rng = _rng()
    x, w, b = _randn(rng, 4, 16, 32, 32), _randn(rng, 16, 16, 3, 3), _randn(rng, 16)
    y = F.conv2d(x, w, b, padding=1)
    gx, gw, gb = F.conv2d_backward(np.ones_like(y), x, w, padding=1)
    return {"y": y, "y_im2col": F.conv2d(x, w, b, padding=1, algo="im2col"), "gx": gx, "gw": gw, "gb": gb}


def pool():
    rng = _rng()
    x = _randn(rng, 8, 16, 64, 64)
    p, idx = F.max_pool2d(x, 2, return_indices=True)
    a = F.avg_pool2d(x, 3, 2, 1)
    return {"max": p, "idx": idx, "max_dx": F.max_pool2d_backward(np.ones_like(p), idx, x.shape),
            "avg": a, "avg_dx": F.avg_pool2d_backward(np.ones_like(a), x.shape, 3, 2, 1)}


def gemm():
    rng = _rng()
    a, b, c = _randn(rng, 300, 257), _randn(rng, 257, 190), _randn(rng, 300, 190)
    w, bias = _randn(rng, 190, 257), _randn(rng, 190)
    return {"gemm": F.gemm(a, b, c, alpha=0.5, beta=2.0), "matmul": F.matmul(a, b), "linear": F.linear(a, w, bias)}


def activations():
    rng = _rng()
    x = _randn(rng, 64, 1000)
    labels = rng.integers(0, 1000, 64)
    out = {}
    for name in ("relu", "tanh", "sigmoid"):
        y = getattr(F, name)(x)
        out[name] = y
        out[name + "_dx"] = getattr(F, name + "_backward")(x, x if name == "relu" else y)
    out["ce"] = np.float32(F.cross_entropy(x, labels))
    out["ce_dx"] = F.cross_entropy_backward(x, labels)
    return out


def model():
    """A LeNet-5 forward and backward pass through the nn layers."""
    rng = _rng()
    nn.manual_seed(3)
    net = models.lenet5()
    x = _randn(rng, 64, 1, 32, 32)
    logits = net(x)
    crit = nn.CrossEntropyLoss()
    out = {"logits": logits, "loss": np.float32(crit(logits, rng.integers(0, 10, 64)))}
    net.backward(crit.backward())
    for name, p in net.named_parameters():
        out["grad_" + name] = p.grad
    return out


def student():
    """The course kit's student conv2d (compiled with -fopenmp; already in the build cache)."""
    if "good_conv" not in convforge.kernels.student_kernels():
        convforge.load_kernel(STUDENT_CONV, op="conv2d")
    rng = _rng()
    x, w, b = _randn(rng, 4, 16, 32, 32), _randn(rng, 16, 16, 3, 3), _randn(rng, 16)
    return {"y": F.conv2d(x, w, b, padding=1, algo="good_conv")}


FAMILIES = {"conv": conv, "pool": pool, "gemm": gemm, "activations": activations, "model": model,
            "student": student}


def run(family, threads=None):
    """Runs one family in this process: (its outputs, the thread count the kernels used)."""
    if threads is not None:
        F.set_num_threads(threads)
    return FAMILIES[family](), F.get_num_threads()


def child_main(queue, family, threads=None):
    """A child process's target: puts ("ok", outputs, threads) or ("error", repr) on queue."""
    try:
        out, n = run(family, threads)
        queue.put(("ok", out, n))
    except BaseException as e:  # reported by the parent's assertion
        queue.put(("error", repr(e), None))


def nested_main(queue, family):
    """A forked child that forks again: the grandchild's result, relayed."""
    import multiprocessing as mp

    try:
        run(family)  # the child uses its own (fresh) thread pool before forking
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=child_main, args=(q, family))
        p.start()
        try:
            queue.put(q.get(timeout=120))
        finally:
            p.join(5)
            if p.is_alive():
                p.kill()
    except BaseException as e:
        queue.put(("error", repr(e), None))


def lenet_forward(seed):
    """One LeNet-5 forward pass on a batch made from seed (for ProcessPoolExecutor.map)."""
    nn.manual_seed(5)
    net = models.lenet5()
    x = _randn(np.random.default_rng(seed), 32, 1, 32, 32)
    return net(x)


def set_threads_while_computing(seconds=1.0):
    """Threads that each set the thread count and compute, at once: the results stay right."""
    rng = _rng()
    x, w = _randn(rng, 4, 16, 32, 32), _randn(rng, 16, 16, 3, 3)
    a, b = _randn(rng, 200, 150), _randn(rng, 150, 120)
    ref_y, ref_ab = F.conv2d(x, w, padding=1), F.matmul(a, b)
    errors = []

    def worker(i):
        import time

        end = time.monotonic() + seconds
        k = 0
        try:
            while time.monotonic() < end:
                F.set_num_threads(1 + (i + k) % 2)
                k += 1
                np.testing.assert_allclose(F.conv2d(x, w, padding=1), ref_y, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(F.matmul(a, b), ref_ab, rtol=1e-5, atol=1e-5)
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors, any(t.is_alive() for t in threads)
