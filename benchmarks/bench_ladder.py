"""A ladder's worked solutions, step by step: GFLOP/s of each assignments/<ladder>/solutions/ file.

    python benchmarks/bench_ladder.py [--ladder cpu_sgemm|cpu_conv2d] [--sizes 384,512,1024] [--seconds 4] [--threads N]

cpu_sgemm runs M = N = K for each of --sizes; cpu_conv2d runs the grader's timing shape (x (2, 64,
28, 28), w (64, 64, 3, 3), padding 1) and, with --sizes, batches of that layer (N = each size).

Every step is compiled with the grader's flags (convforge.kernels.compile_command: -O3, the CPU's
AVX2/AVX-512 flags, never -march=native) and timed in this one process, in alternation, after a
warm-up call each (convforge.grade.time_files): the table gives the median and the best of the
repeats, the p10-p90 spread, and the threads each step used (its OpenMP runtime's; 1 without
OpenMP). The numbers on the ladders' pages come from this script; it prints the CPU it ran on.
"""
from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ladder", default="cpu_sgemm", choices=["cpu_sgemm", "cpu_conv2d"])
    p.add_argument("--sizes", default=None, help="cpu_sgemm: M = N = K (default 384,512,1024); cpu_conv2d: "
                                                 "batch sizes of the grader's layer (default 2)")
    p.add_argument("--seconds", type=float, default=4.0, help="time budget per size, all steps together")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the OpenMP step (and ours)")
    args = p.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from convforge import _C, kernels
    from convforge import grade as G

    paths = sorted((ROOT / "assignments" / args.ladder / "solutions").glob("step*.cpp"))
    for path in paths:
        kernels.compile_kernel(path)
    print(f"{args.ladder} worked solutions on {cpu_name()}, {os.cpu_count()} logical CPUs, SIMD "
          f"{_C.simd_level_supported()}; flags: {' '.join(kernels._cpu_isa_flags()) or '(none)'}")
    op = "gemm" if args.ladder == "cpu_sgemm" else "conv2d"
    sizes = [int(v) for v in (args.sizes or ("384,512,1024" if op == "gemm" else "2")).split(",")]
    for n in sizes:
        spec = G._gemm(n, n, n) if op == "gemm" else (n,) + tuple(G.BENCH[("conv2d", "cpu")][1:])
        rows = G.time_files(paths, op, spec, budget=args.seconds, min_reps=5, max_reps=50)
        print(f"\n{G.describe(op, spec)} ({G._flops(op, spec) / 1e9:.2f} GFLOP)\n")
        print("| step | GFLOP/s (median) | GFLOP/s (best) | p10-p90 spread | repeats | threads |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            flag = " (too wide to compare)" if r.get("wide_spread") else ""
            print(f"| `{r['name']}` | {r['gflops']:.1f} | {r['best_gflops']:.1f} | {100 * r['spread']:.0f}%{flag} "
                  f"| {r['reps']} | {r['threads']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
