"""Concurrency: several Python threads call mixed ops for a few seconds and every result equals
the serial one; and the kernels release the GIL, shown two ways:
  - timing: with set_num_threads(1), two threads doing independent kernel work finish in
    clearly less than twice the time one thread takes for its share (needs 2 free cores);
  - progress: while a long kernel runs in one thread, Python code in another keeps running
    (holds on any machine, loaded or not).
CONVFORGE_STRESS_SECONDS sets the stress duration (default 3).
"""
import os
import threading
import time

import numpy as np
import pytest

import convforge.functional as F

STRESS_SECONDS = float(os.environ.get("CONVFORGE_STRESS_SECONDS", "3"))


def _jobs(seed):
    """A list of (name, call) for one thread: every op family, on this thread's own shapes."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    n, c, h = 1 + seed % 3, 2 + seed % 4, 9 + seed
    x, w, b = r(n, c, h, h + 2), r(6, c, 3, 3), r(6)
    y = F.conv2d(x, w, b, padding=1)
    gy = r(*y.shape)
    p, idx = F.max_pool2d(y, 2, return_indices=True)
    a, bb, cc = r(30 + seed, 40), r(40, 20 + seed), r(30 + seed, 20 + seed)
    logits, labels = r(16, 10), rng.integers(0, 10, 16)
    conv_algos = [a["name"] for a in F.algos("conv2d_forward")]
    jobs = [(f"conv2d[{al}]", lambda al=al: F.conv2d(x, w, b, stride=(1, 2), padding=1, algo=al)) for al in conv_algos]
    jobs += [
        ("conv2d_backward", lambda: F.conv2d_backward(gy, x, w, padding=1)),
        ("conv2d_backward[reference]", lambda: F.conv2d_backward(gy, x, w, padding=1, algo="reference")),
        ("max_pool2d", lambda: F.max_pool2d(y, 3, 2, 1, ceil_mode=True, return_indices=True)),
        ("max_pool2d_backward", lambda: F.max_pool2d_backward(np.ones_like(p), idx, y.shape)),
        ("avg_pool2d", lambda: F.avg_pool2d(y, 3, 1, 1, count_include_pad=False)),
        ("avg_pool2d_backward", lambda: F.avg_pool2d_backward(p, y.shape, 2)),
        ("gemm", lambda: F.gemm(a, bb, cc, alpha=0.5, beta=2.0)),
        ("gemm_t", lambda: F.gemm(bb, a, trans_a=True, trans_b=True)),
        ("linear", lambda: F.linear(a, bb.T, cc[0])),
        ("linear_backward", lambda: F.linear_backward(cc, a, bb.T)),
        ("activations", lambda: (F.relu(y), F.tanh(y), F.sigmoid(y), F.sigmoid_backward(gy, F.sigmoid(y)))),
        ("cross_entropy", lambda: (F.cross_entropy(logits, labels), F.cross_entropy_backward(logits, labels))),
        ("error", lambda: _expect_error(lambda: F.conv2d(x, w, stride=0))),
    ]
    return jobs


def _expect_error(call):
    try:
        call()
    except ValueError as e:
        return str(e)
    raise AssertionError("expected ValueError")


def _flatten(out):
    if isinstance(out, tuple):
        return [v for o in out for v in _flatten(o)]
    return [out]


def test_mixed_ops_from_many_threads():
    nthreads = 6
    jobs = [_jobs(seed) for seed in range(nthreads)]
    expected = [[_flatten(call()) for _, call in js] for js in jobs]  # serial results
    errors, counts = [], [0] * nthreads
    deadline = time.monotonic() + STRESS_SECONDS

    def worker(t):
        order = np.random.default_rng(100 + t)
        try:
            while time.monotonic() < deadline:
                k = int(order.integers(len(jobs[t])))
                name, call = jobs[t][k]
                for got, want in zip(_flatten(call()), expected[t][k]):
                    if isinstance(want, np.ndarray):
                        np.testing.assert_array_equal(got, want, err_msg=f"thread {t} {name}")
                    else:
                        assert got == want, (t, name)
                counts[t] += 1
        except Exception as e:  # reported below with the thread that saw it
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=STRESS_SECONDS + 120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert min(counts) > 0, counts


def _work_unit():
    """About 50-100 ms of single-threaded kernel time, in a few calls."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 28, 28)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    a = rng.standard_normal((256, 256)).astype(np.float32)

    def run(reps):
        for _ in range(reps):
            F.conv2d(x, w, padding=1, algo="im2col")
            F.gemm(a, a)
    return run


@pytest.fixture
def one_kernel_thread():
    previous = F.get_num_threads()
    F.set_num_threads(1)
    yield
    F.set_num_threads(previous)


def _timed(fn, nthreads):
    ths = [threading.Thread(target=fn) for _ in range(nthreads)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.perf_counter() - t0


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
def test_two_threads_run_concurrently(one_kernel_thread):
    """set_num_threads(1): 2 threads x the work take clearly less than 2 x (1 thread x the work)."""
    run = _work_unit()
    run(1)  # warm-up: scratch, packing buffers
    # calibrate to about 0.4 s for one thread
    t = _timed(lambda: run(2), 1)
    reps = max(2, int(2 * 0.4 / t))
    ratios = []
    for _ in range(4):  # best of 4: other processes may take a core for a while
        t1 = min(_timed(lambda: run(reps), 1) for _ in range(2))
        t2 = _timed(lambda: run(reps), 2)
        ratios.append(t2 / t1)
        if ratios[-1] < 1.5:
            break
    best = min(ratios)
    load = os.getloadavg()[0]
    if best >= 1.5 and load > os.cpu_count():
        # Two free cores are the premise; test_python_runs_while_a_kernel_runs still checks
        # the GIL release on a loaded machine.
        pytest.skip(f"machine too loaded to time (load {load:.0f} on {os.cpu_count()} cores); "
                    f"ratios {[round(r, 2) for r in ratios]}")
    assert best < 1.5, (f"two threads took {best:.2f}x the time of one "
                        f"(2.0x means the GIL serialises them); ratios {ratios}")


def test_python_runs_while_a_kernel_runs(one_kernel_thread):
    """A long kernel in one thread does not stop Python code in another (the GIL is released):
    the Python loop gets through a good share of its solo pace while the kernel runs."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    F.conv2d(x[:1], w, padding=1, algo="reference")  # warm-up

    def spin(seconds):
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    solo = spin(0.2) / 0.2  # iterations per second with no kernel running
    done = threading.Event()
    kernel_time = []

    def kernel():
        t0 = time.perf_counter()
        F.conv2d(x, w, padding=1, algo="reference")  # one long call: ~1 s
        kernel_time.append(time.perf_counter() - t0)
        done.set()

    th = threading.Thread(target=kernel)
    t0 = time.perf_counter()
    th.start()
    n = 0
    while not done.is_set():
        n += 1
    elapsed = time.perf_counter() - t0
    th.join()
    assert kernel_time[0] > 0.05, "kernel too short to measure"
    # With the GIL held for the whole call the loop would be stuck for kernel_time; with it
    # released it runs at a good fraction of its solo pace (one core shared at worst).
    assert n / elapsed > 0.2 * solo, (f"python ran at {n / elapsed:.0f} it/s during the kernel vs "
                                      f"{solo:.0f} it/s alone: the GIL seems held")
