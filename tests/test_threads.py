"""Kernels release the GIL and are safe to call from several Python threads at once."""
import threading

import numpy as np

import convforge.functional as F

from conftest import randn


def _work(rng):
    x = randn(rng, 2, 6, 17, 13)
    w = randn(rng, 8, 3, 3, 3)
    a, b = randn(rng, 70, 33), randn(rng, 33, 51)

    def run():
        y = F.conv2d(x, w, stride=(1, 2), padding=1, groups=2)
        gx, gw, gb = F.conv2d_backward(np.ones_like(y), x, w, stride=(1, 2), padding=1, groups=2)
        p, idx = F.max_pool2d(y, 2, return_indices=True)
        return [y, gx, gw, gb, p, idx, F.avg_pool2d(y, 3, 1, 1), F.gemm(a, b), F.relu(y)]

    return run


def test_concurrent_calls_match_serial_results(rng):
    jobs = [_work(np.random.default_rng(seed)) for seed in range(6)]
    expected = [job() for job in jobs]
    results = [None] * len(jobs)
    errors = []

    def worker(i):
        try:
            for _ in range(5):
                out = jobs[i]()
                for got, want in zip(out, expected[i]):
                    np.testing.assert_array_equal(got, want)
            results[i] = True
        except Exception as e:  # reported below, with the thread that saw it
            errors.append((i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert all(results)


def test_set_num_threads_round_trip():
    old = F.get_num_threads()
    try:
        F.set_num_threads(1)
        assert F.get_num_threads() == 1
    finally:
        F.set_num_threads(old)
