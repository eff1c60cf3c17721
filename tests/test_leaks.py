"""Leaks: each op called thousands of times; resident memory (RSS) measured after a warm-up and
after the loop must not grow beyond a small bound. The outputs are large enough (>= 4 KiB) that a
leaked output per call would grow RSS by far more than the bound. Error paths (exceptions raised
in C++ after an output was allocated) and short-lived threads (thread-local GEMM scratch, the
OpenMP team of each Python thread) are looped too. With a GPU, the CUDA caching allocator's
allocated bytes come back to their starting value after the same loops on device arrays.

Each test takes about a second (CONVFORGE_LEAK_ITERS scales the loops; default 2000).
"""
import gc
import os
import threading

import numpy as np
import pytest

import convforge.functional as F
from convforge import _C

ITERS = int(os.environ.get("CONVFORGE_LEAK_ITERS", "2000"))
BOUND = 6 * 2**20  # bytes of RSS growth allowed over a whole loop


def rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")


def _grows(fn, iters=ITERS):
    """RSS growth over iters calls of fn, after a warm-up that fills caches and pools."""
    for _ in range(max(50, iters // 10)):
        fn()
    before = rss()
    for _ in range(iters):
        fn()
    return rss() - before


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 4, 10, 10), np.float32)        # outputs of several KiB each
w = rng.standard_normal((8, 4, 3, 3), np.float32)
b = rng.standard_normal(8, np.float32)
gy = rng.standard_normal((2, 8, 10, 10), np.float32)
a2, b2, c2 = (rng.standard_normal(s, np.float32) for s in [(40, 50), (50, 60), (40, 60)])
logits, labels = rng.standard_normal((64, 20), np.float32), rng.integers(0, 20, 64)
_, idx = F.max_pool2d(x, 2, return_indices=True)
pg = rng.standard_normal((2, 4, 5, 5), np.float32)

OPS = {
    "conv2d_" + algo: (lambda algo=algo: F.conv2d(x, w, b, padding=1, algo=algo))
    for algo in [a["name"] for a in F.algos("conv2d_forward")]
}
OPS.update({
    "conv2d_backward_" + algo: (lambda algo=algo: F.conv2d_backward(gy, x, w, padding=1, algo=algo))
    for algo in [a["name"] for a in F.algos("conv2d_backward")]
})
OPS.update({
    "conv2d_backward_bias_only": lambda: F.conv2d_backward(gy, x, w, padding=1, output_mask=(False, False, True)),
    "max_pool2d": lambda: F.max_pool2d(x, 3, 1, 1, return_indices=True),
    "max_pool2d_backward": lambda: F.max_pool2d_backward(pg, idx, x.shape),
    "avg_pool2d": lambda: F.avg_pool2d(x, 3, 1, 1, ceil_mode=True),
    "avg_pool2d_backward": lambda: F.avg_pool2d_backward(pg, x.shape, 2),
    "gemm": lambda: F.gemm(a2, b2, c2, beta=0.5),
    "gemm_reference": lambda: F.gemm(a2, b2, algo="reference"),
    "linear": lambda: F.linear(a2, b2.T, c2[0]),
    "linear_backward": lambda: F.linear_backward(c2, a2, b2.T),
    "activations": lambda: (F.relu(x), F.tanh(x), F.sigmoid(x), F.relu_backward(x, x),
                            F.tanh_backward(x, x), F.sigmoid_backward(x, x)),
    "cross_entropy": lambda: (F.cross_entropy(logits, labels), F.cross_entropy_backward(logits, labels)),
    "non_contiguous_inputs": lambda: F.conv2d(x[:, ::2], w[:, ::2].copy()[:, :4]),
})


@pytest.mark.parametrize("name", list(OPS))
def test_no_growth(name):
    grew = _grows(OPS[name])
    assert grew < BOUND, f"{name}: RSS grew by {grew / 2**20:.1f} MiB over {ITERS} calls"


def _raises(call, exc):
    def fn():
        try:
            call()
        except exc:
            return
        raise AssertionError("expected an exception")
    return fn


ERRORS = {
    # the kernel throws after the output was allocated
    "unknown_conv_algo": _raises(lambda: F.conv2d(x, w, algo="nope"), ValueError),
    "unknown_gemm_algo": _raises(lambda: F.gemm(a2, b2, algo="nope"), ValueError),
    "unknown_pool_algo": _raises(lambda: F.max_pool2d(x, 2, algo="nope"), ValueError),
    "bad_pool_indices": _raises(lambda: F.max_pool2d_backward(pg, np.full(pg.shape, 10**6, np.int64), x.shape),
                                (IndexError, ValueError)),
    # refused in the geometry / checks
    "geometry_error": _raises(lambda: F.conv2d(x, w, stride=0), ValueError),
    "dtype_error": _raises(lambda: F.relu(x.astype(np.float64)), TypeError),
    "memory_error": _raises(lambda: F.gemm(np.zeros((2**20, 0), np.float32), np.zeros((0, 2**20), np.float32)),
                            MemoryError),
    "overflow_error": _raises(lambda: F.gemm(np.zeros((2**40, 0), np.float32), np.zeros((0, 2**40), np.float32)),
                              OverflowError),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_no_growth_on_error_paths(name):
    grew = _grows(ERRORS[name])
    assert grew < BOUND, f"{name}: RSS grew by {grew / 2**20:.1f} MiB over {ITERS} failing calls"


def test_no_growth_with_short_lived_threads():
    """Each Python thread gets thread-local GEMM scratch and its own OpenMP team: both must be
    released when the thread ends."""
    big_a = rng.standard_normal((64, 128), np.float32)  # past the GEMM's threading threshold
    big_b = rng.standard_normal((128, 128), np.float32)

    def one_thread():
        t = threading.Thread(target=lambda: (F.gemm(big_a, big_b), F.conv2d(x, w, padding=1, algo="im2col")))
        t.start()
        t.join()

    n = max(100, ITERS // 20)
    grew = _grows(one_thread, iters=n)
    assert grew < 2 * BOUND, f"RSS grew by {grew / 2**20:.1f} MiB over {n} threads"


@pytest.mark.cuda
def test_cuda_allocator_returns_to_baseline():
    import convforge.cuda as cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    dx, dw, db = cuda.to_device(x), cuda.to_device(w), cuda.to_device(b)
    dgy, da, dbb = cuda.to_device(gy), cuda.to_device(a2), cuda.to_device(b2)

    def loop():
        y = F.conv2d(dx, dw, db, padding=1)
        F.conv2d_backward(dgy, dx, dw, padding=1)
        F.max_pool2d(y, 2, return_indices=True)
        F.avg_pool2d(y, 2)
        F.relu(y)
        F.gemm(da, dbb)

    for _ in range(50):
        loop()
    cuda.synchronize()
    gc.collect()
    before = cuda.memory_stats()["allocated_bytes"]
    host_before = rss()
    for _ in range(ITERS // 3):
        loop()
    cuda.synchronize()
    gc.collect()
    after = cuda.memory_stats()["allocated_bytes"]
    assert after == before, f"device bytes in use went from {before} to {after}"
    assert rss() - host_before < BOUND
