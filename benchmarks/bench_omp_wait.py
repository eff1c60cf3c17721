"""How libgomp's waiting policy changes our 2-thread kernels, each setting in its own process.

    python benchmarks/bench_omp_wait.py [--rounds 3] [--threads 2] [--compete 1]

Settings: libgomp's default (spin ~300k iterations, then sleep), OMP_WAIT_POLICY=PASSIVE (sleep at
once), ACTIVE (spin), GOMP_SPINCOUNT=10000. Cases: a large conv (VGG conv3_2, N=1), SGEMM 1024^3,
and a small conv (LeNet C3, N=16: mostly thread wake-up). The rounds interleave the settings, so
that a change of load on a shared machine hits them all; the table gives the best and the median
over all runs. Run it on a quiet machine and beside a competing process (`--compete 1` starts a
busy loop for the whole run; the case that matters:
docs/cpu_tuning.md) before changing the default.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import convforge, convforge.functional as F
convforge.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 256, 56, 56), dtype=np.float32)
w = rng.standard_normal((256, 256, 3, 3), dtype=np.float32)
a = rng.standard_normal((1024, 1024), dtype=np.float32)
xs = rng.standard_normal((16, 6, 14, 14), dtype=np.float32)
ws = rng.standard_normal((16, 6, 5, 5), dtype=np.float32)
def t(fn, n):
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append((time.perf_counter() - t0) * 1e3)
    return out
print(json.dumps({"conv VGG conv3_2 N=1": t(lambda: F.conv2d(x, w, padding=1), 5),
                  "sgemm 1024^3": t(lambda: F.gemm(a, a), 8),
                  "conv LeNet C3 N=16": t(lambda: F.conv2d(xs, ws), 200)}))
"""

SETTINGS = {"default": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"}, "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compete", type=int, default=0,
                    help="start this many busy single-threaded processes for the whole run (another job on the machine)")
    args = ap.parse_args()
    if args.rounds < 1 or args.threads < 1 or args.compete < 0:
        ap.error("--rounds and --threads must be >= 1, --compete >= 0")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.compete)]
    try:
        measure(args)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def measure(args):
    runs = {name: {} for name in SETTINGS}
    for _ in range(args.rounds):
        for name, extra in SETTINGS.items():
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            env.update(extra)
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.threads)], env=env, capture_output=True,
                                 text=True, check=True)
            for case, times in json.loads(out.stdout).items():
                runs[name].setdefault(case, []).extend(times)
    cases = list(next(iter(runs.values())))
    print(f"{args.threads} threads, {args.rounds} rounds, {args.compete} competing busy process(es); "
          "ms as best / median")
    print("| setting | " + " | ".join(cases) + " |\n|---|" + "---|" * len(cases))
    for name, r in runs.items():
        print(f"| {name} | " + " | ".join(f"{min(r[c]):.2f} / {statistics.median(r[c]):.2f}" for c in cases) + " |")


if __name__ == "__main__":
    main()
