"""Per-call cost of flushing subnormals to zero (issue 22) on small, normal inputs: each case timed
with convforge.set_flush_denormal(True) and (False), interleaved in one process so that machine
noise hits both alike. The difference is what setting and restoring the mode (MXCSR FTZ/DAZ) on
the calling thread and on each OpenMP thread of every parallel region costs.

    python benchmarks/bench_flush_overhead.py [--threads 2] [--rounds 30]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import convforge
import convforge.functional as F


def cases(rng):
    x1 = rng.standard_normal((1, 1, 32, 32), dtype=np.float32)   # LeNet C1, batch 1: a serial kernel
    w1 = rng.standard_normal((6, 1, 5, 5), dtype=np.float32)
    a = rng.standard_normal((129, 65), dtype=np.float32)
    b = rng.standard_normal((65, 257), dtype=np.float32)
    small = rng.standard_normal(1000).astype(np.float32)
    pool = rng.standard_normal((16, 6, 28, 28), dtype=np.float32)
    return {"relu, 1000 elements": lambda: F.relu(small),
            "conv LeNet C1, N=1": lambda: F.conv2d(x1, w1),
            "sgemm 129x257x65": lambda: F.gemm(a, b),
            "max pool 2x2, (16, 6, 28, 28)": lambda: F.max_pool2d(pool, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30, help="on/off alternations, 20 calls each")
    args = ap.parse_args()
    convforge.set_num_threads(args.threads)
    old = F.get_flush_denormal()
    print(f"{args.threads} thread(s); median of {args.rounds * 20} calls per mode")
    print(f"{'case':32s}{'flush on us':>12s}{'off us':>10s}{'diff us':>10s}")
    for name, fn in cases(np.random.default_rng(0)).items():
        times = {True: [], False: []}
        for _ in range(5):
            fn()
        for _ in range(args.rounds):
            for mode in (True, False):
                F.set_flush_denormal(mode)
                for _ in range(20):
                    t0 = time.perf_counter()
                    fn()
                    times[mode].append(time.perf_counter() - t0)
        on, off = (statistics.median(times[m]) * 1e6 for m in (True, False))
        print(f"{name:32s}{on:12.1f}{off:10.1f}{on - off:+10.1f}")
    F.set_flush_denormal(old)


if __name__ == "__main__":
    main()
