"""Every eligible conv2d algo on every benchmark layer, per pass: the data ``auto``'s heuristics are fitted to.

    python benchmarks/bench_algos.py [--threads 1] [--only conv,resnet,alexnet] [--cases REGEX]
                                     [--quick] [--rounds 5] [--md FILE]

For each layer of ``bench_cpu.py``'s conv cases and each pass (forward, backward data, backward
weight) it times every algo that runs as itself on that geometry (``_C.conv2d_eligible_algos``,
the op's table in ``csrc/cpu/conv/conv2d.cpp``) and ``auto``, in rounds: each round runs every
candidate once, in turn, so that a slow spell of a shared host falls on all of them alike; a
candidate more than 3x slower than the best after the first round is dropped. It prints the
minimum over rounds (ms; the host only ever adds time), the fastest algo, ``auto``'s choice and
``auto``'s regret (its choice's time over the fastest's; ``auto`` itself is timed too, as a check
that it runs its choice). The heuristics in ``conv2d.cpp`` cite these
tables (``benchmarks/results/algos_<uarch>_<threads>t.md``).

One process, one library (ours): no cross-library thread pools to separate.
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu import cases  # noqa: E402  (one list of layers for both benchmarks)

PASSES = {"conv_fwd": "forward", "conv_bwd_data": "backward_data", "conv_bwd_weight": "backward_weight"}


def runner(F, kind, p, x, w, gy, algo):
    kw = dict(stride=p["stride"], padding=p["pad"])
    if kind == "conv_fwd":
        return lambda: F.conv2d(x, w, None, **kw, algo=algo)
    mask = (True, False, False) if kind == "conv_bwd_data" else (False, True, False)
    return lambda: F.conv2d_backward(gy, x, w, **kw, output_mask=mask, algo=algo)


def measure(fns, rounds):
    """{name: min ms over rounds}, candidates run in turn each round, the order rotated by one
    each round (a call's time depends on its predecessor's: whether the output's pages come back
    from the heap or fault in afresh moved a 1x1 layer by 10-25%)."""
    best = {}
    for r in range(rounds):
        names = list(fns)
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            t0 = time.perf_counter()
            fn()
            ms = (time.perf_counter() - t0) * 1e3
            best[name] = min(best.get(name, float("inf")), ms)
        if r == 0:  # one warm run each first (scratch buffers, page faults), then prune
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], (time.perf_counter() - t0) * 1e3)
            fastest = min(best.values())
            fns = {n: f for n, f in fns.items() if best[n] <= 3 * fastest}
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="conv,resnet,alexnet")
    ap.add_argument("--cases", default=None, help="keep the cases whose name matches this regular expression")
    ap.add_argument("--quick", action="store_true", help="bench_cpu.py's quick set")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--md", default=None, help="also write the table to this markdown file")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np

    import convforge
    import convforge.functional as F
    from convforge import _C

    convforge.set_num_threads(args.threads)
    m = _C.machine()
    lines = [f"conv2d algos per pass, {args.threads} thread(s), min of {args.rounds} rounds (ms)",
             f"  CPU: {m['model_name']} ({m['uarch']}), GEMM config {_C.cpu_config()['name']}",
             f"{'case':34s} {'fastest':>10s} {'auto':>10s} {'regret':>7s}  all (ms)"]
    print("\n".join(lines), flush=True)
    rng = np.random.default_rng(0)
    worst = []
    for _, name, kind, p in cases(args.only.split(","), args.cases, args.quick):
        if kind not in PASSES:
            continue
        x = rng.standard_normal((p["n"], p["c"], p["h"], p["h"])).astype(np.float32)
        w = rng.standard_normal((p["k"], p["c"], p["r"], p["r"])).astype(np.float32)
        gy = F.conv2d(x, w, None, stride=p["stride"], padding=p["pad"])
        geom = F._conv_geometry("conv2d", x.shape, w.shape, p["stride"], p["pad"], 1, 1)
        algos = list(_C.conv2d_eligible_algos(PASSES[kind], geom)) + ["auto"]
        ms = measure({a: runner(F, kind, p, x, w, gy, a) for a in algos}, args.rounds)
        choice = _C.conv2d_auto_choice(PASSES[kind], geom)
        named = {a: v for a, v in ms.items() if a != "auto"}
        fastest = min(named, key=named.get)
        regret = named[choice] / named[fastest] if choice in named else ms["auto"] / named[fastest]
        worst.append((regret, name))
        row = (f"{name:34s} {fastest:>10s} {choice:>10s} {regret:7.2f}  "
               + ", ".join(f"{a} {v:.3g}" for a, v in sorted(ms.items(), key=lambda kv: kv[1])))
        lines.append(row)
        print(row, flush=True)
    if worst:
        worst.sort(reverse=True)
        geo = float(np.exp(np.mean([np.log(r) for r, _ in worst])))
        tail = f"auto's regret: geometric mean {geo:.3f}, worst {worst[0][0]:.2f} ({worst[0][1]})"
        lines.append(tail)
        print(tail)
    if args.md:
        Path(args.md).write_text("```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
