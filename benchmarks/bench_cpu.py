"""CPU benchmark: our GEMM, conv2d and pooling kernels beside PyTorch (oneDNN) and numpy (OpenBLAS).

    python benchmarks/bench_cpu.py [--threads 1|2] [--only gemm,conv,pool,subnormal] [--json FILE] [--plot FILE.png]

Each library is timed in its own process (`--worker NAME`), so that two thread pools in one process
(our OpenMP, torch's OpenMP, OpenBLAS's) never spin against each other on a small machine. Every case
is warmed up, then repeated; the table gives the median, the ratio reference/ours (above 1: we are
faster), our GFLOP/s and the percentage of the FMA peak (117 GFLOP/s per Zen 4 core in fp32, 2 x
AVX-512 FMA pipes at the measured clock; override with --peak-per-core).

The "subnormal" rows (issue 22) give one operand subnormal values (rand * 1e-39): "flush" runs ours
with convforge.set_flush_denormal(True) (our default) and torch with torch.set_flush_denormal(True);
"IEEE" runs ours with set_flush_denormal(False) and torch as it is by default. Compare them with the
same sizes on normal inputs (sgemm 512x512x512, and the group's conv3x3 row).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PEAK_PER_CORE = 117.0  # GFLOP/s, fp32 FMA

# ------------------------------------------------------------------------------------------------
# Cases: (group, name, kind, params). GFLOP counts are computed from the params.
# ------------------------------------------------------------------------------------------------
LENET = [("lenet_c1", 1, 6, 32, 32, 5, 0), ("lenet_c3", 6, 16, 14, 14, 5, 0)]
VGG = [  # name, C, K, H=W, R, pad
    ("vgg_conv1_1", 3, 64, 224, 3, 1), ("vgg_conv1_2", 64, 64, 224, 3, 1),
    ("vgg_conv2_2", 128, 128, 112, 3, 1), ("vgg_conv3_2", 256, 256, 56, 3, 1),
    ("vgg_conv4_2", 512, 512, 28, 3, 1), ("vgg_conv5_2", 512, 512, 14, 3, 1),
]


def cases(only):
    out = []
    if "gemm" in only:
        for m, n, k in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
                        (64, 3136, 576), (128, 784, 1152), (512, 196, 4608),
                        (1000, 1000, 1000), (129, 257, 65)]:
            out.append(("gemm", f"sgemm {m}x{n}x{k}", "gemm", dict(m=m, n=n, k=k)))
    if "conv" in only:
        convs = [(name, n, c, k, h, r, p) for name, c, k, h, _, r, p in LENET for n in (1, 16, 256)]
        convs += [(name, n, c, k, h, r, p) for name, c, k, h, r, p in VGG for n in (1, 8)]
        for name, n, c, k, h, r, p in convs:
            params = dict(n=n, c=c, k=k, h=h, r=r, pad=p)
            for kind in ("conv_fwd", "conv_bwd_data", "conv_bwd_weight"):
                if kind == "conv_bwd_data" and c <= 3:
                    continue  # a first layer's input gradient is never needed
                out.append(("conv", f"{kind[5:]} {name} N={n}", kind, params))
    if "subnormal" in only:
        conv = dict(n=8, c=64, k=64, h=56, r=3, pad=1)
        out.append(("subnormal", "conv3x3 64->64 56x56 N=8", "conv_fwd", conv))
        for flush in (True, False):
            mode = "flush" if flush else "IEEE"
            out.append(("subnormal", f"sgemm 512^3 subnormal b, {mode}", "gemm",
                        dict(m=512, n=512, k=512, subnormal=True, flush=flush)))
            out.append(("subnormal", f"conv3x3 64->64 N=8 subnormal x, {mode}", "conv_fwd",
                        dict(conv, subnormal=True, flush=flush)))
    if "pool" in only:
        for shape in [(16, 64, 112, 112), (256, 6, 28, 28)]:
            for kind in ("maxpool", "avgpool"):
                out.append(("pool", f"{kind} 2x2/2 {shape}", kind, dict(shape=shape)))
    return out


def gflop(kind, p):
    if kind == "gemm":
        return 2 * p["m"] * p["n"] * p["k"] / 1e9
    if kind.startswith("conv"):
        out_hw = p["h"] + 2 * p["pad"] - p["r"] + 1
        return 2 * p["n"] * p["k"] * out_hw * out_hw * p["c"] * p["r"] * p["r"] / 1e9
    n, c, h, w = p["shape"]
    return n * c * h * w / 1e9  # one compare/add per input element


# ------------------------------------------------------------------------------------------------
# Workers: build the inputs and return a zero-argument callable for one case.
# ------------------------------------------------------------------------------------------------
def operand(rng, shape, p, subnormal_ok):
    """Standard-normal float32, or subnormal values (rand * 1e-39) for the subnormal rows."""
    import numpy as np

    if p.get("subnormal") and subnormal_ok:
        return (rng.random(shape) * 1e-39).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def flushing(set_mode, p, fn):
    """fn run in the row's flush mode (subnormal rows), then back in the library's default."""
    if "flush" not in p:
        return fn
    default = set_mode(p["flush"])

    def run():
        set_mode(p["flush"])
        try:
            return fn()
        finally:
            set_mode(default)

    set_mode(default)
    return run


def make_convforge(kind, p, rng):
    import convforge.functional as F

    def set_mode(flush):
        old = F.get_flush_denormal()
        F.set_flush_denormal(flush)
        return old

    if kind == "gemm":
        a = operand(rng, (p["m"], p["k"]), p, False)
        b = operand(rng, (p["k"], p["n"]), p, True)
        return flushing(set_mode, p, lambda: F.gemm(a, b))
    if kind.startswith("conv"):
        x = operand(rng, (p["n"], p["c"], p["h"], p["h"]), p, True)
        w = operand(rng, (p["k"], p["c"], p["r"], p["r"]), p, False)
        bias = operand(rng, (p["k"],), p, False)
        if kind == "conv_fwd":
            return flushing(set_mode, p, lambda: F.conv2d(x, w, bias, padding=p["pad"]))
        gy = F.conv2d(x, w, bias, padding=p["pad"])
        mask = (True, False, False) if kind == "conv_bwd_data" else (False, True, True)
        return lambda: F.conv2d_backward(gy, x, w, padding=p["pad"], output_mask=mask)
    x = operand(rng, p["shape"], p, False)
    if kind == "maxpool":
        return lambda: F.max_pool2d(x, 2)
    return lambda: F.avg_pool2d(x, 2)


def make_torch(kind, p, rng):
    import torch
    import torch.nn.functional as TF

    torch.set_grad_enabled(False)

    def set_mode(flush):  # torch's default is IEEE; it sets the calling thread's MXCSR only
        torch.set_flush_denormal(flush)
        return False

    if kind == "gemm":
        a = torch.from_numpy(operand(rng, (p["m"], p["k"]), p, False))
        b = torch.from_numpy(operand(rng, (p["k"], p["n"]), p, True))
        return flushing(set_mode, p, lambda: torch.matmul(a, b))
    if kind.startswith("conv"):
        x = torch.from_numpy(operand(rng, (p["n"], p["c"], p["h"], p["h"]), p, True))
        w = torch.from_numpy(operand(rng, (p["k"], p["c"], p["r"], p["r"]), p, False))
        bias = torch.from_numpy(operand(rng, (p["k"],), p, False))
        pad = [p["pad"]] * 2
        if kind == "conv_fwd":
            return flushing(set_mode, p, lambda: TF.conv2d(x, w, bias, padding=pad))
        gy = TF.conv2d(x, w, bias, padding=pad)
        mask = [True, False, False] if kind == "conv_bwd_data" else [False, True, True]
        return lambda: torch.ops.aten.convolution_backward(
            gy, x, w, [p["k"]], [1, 1], pad, [1, 1], False, [0, 0], 1, mask)
    x = torch.from_numpy(operand(rng, p["shape"], p, False))
    if kind == "maxpool":
        return lambda: TF.max_pool2d(x, 2)
    return lambda: TF.avg_pool2d(x, 2)


def make_numpy(kind, p, rng):
    if kind != "gemm" or p.get("flush"):  # numpy cannot flush subnormals
        return None
    a = operand(rng, (p["m"], p["k"]), p, False)
    b = operand(rng, (p["k"], p["n"]), p, True)
    return lambda: a @ b


def time_it(fn, min_reps=3, max_reps=30, budget_s=0.5):
    """Median of repeats after warm-up, within a time budget per case (the whole run, three
    libraries and two thread counts, must stay within a few minutes on 2 cores)."""
    t0 = time.perf_counter()
    fn()  # warm-up: page faults, thread-pool start, JIT (oneDNN)
    if time.perf_counter() - t0 < 0.1:
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def worker(lib, threads, only):
    import numpy as np

    info = {}
    if lib == "convforge":
        import convforge

        convforge.set_num_threads(threads)
        info = {k: v for k, v in convforge.build_info().items() if k in ("version", "simd_in_use", "num_threads")}
        make = make_convforge
    elif lib == "torch":
        import torch

        torch.set_num_threads(threads)
        info = {"version": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        make = make_torch
    else:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(threads)
        info = {"version": np.__version__,
                "blas": [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                         for d in threadpool_info()]}
        make = make_numpy
    results = {}
    for group, name, kind, p in cases(only):
        fn = make(kind, p, np.random.default_rng(0))
        if fn is None:
            continue
        med, reps = time_it(fn)
        results[name] = {"median_s": med, "reps": reps}
        print(f"  [{lib}] {name}: {med * 1e3:.3f} ms", file=sys.stderr, flush=True)
    json.dump({"info": info, "results": results}, sys.stdout)


def run_worker(lib, threads, only):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if lib == "numpy":
        # Older OpenBLAS builds need these on some CPUs; they slow a current one: unset for this process only.
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--worker", lib, "--threads", str(threads), "--only", ",".join(only)]
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="gemm,conv,pool,subnormal")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    ap.add_argument("--peak-per-core", type=float, default=PEAK_PER_CORE)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    only = set(args.only.split(","))
    if args.worker:
        return worker(args.worker, args.threads, only)

    libs = {lib: run_worker(lib, args.threads, only) for lib in ("convforge", "torch", "numpy")}
    peak = args.peak_per_core * args.threads
    rows = []
    for group, name, kind, p in cases(only):
        ours = libs["convforge"]["results"][name]["median_s"]
        ref_torch = libs["torch"]["results"][name]["median_s"]
        ref_np = libs["numpy"]["results"].get(name, {}).get("median_s")
        gf = gflop(kind, p)
        rows.append(dict(case=name, group=group, ours_ms=ours * 1e3, torch_ms=ref_torch * 1e3,
                         numpy_ms=None if ref_np is None else ref_np * 1e3,
                         ratio_torch=ref_torch / ours, ratio_numpy=None if ref_np is None else ref_np / ours,
                         gflops=gf / ours, pct_peak=100 * gf / ours / peak if group != "pool" else None))

    print(f"\nconvforge CPU benchmark, {args.threads} thread(s), peak {peak:.0f} GFLOP/s; "
          f"ratio = reference time / our time (>1: we are faster)")
    for lib, d in libs.items():
        print(f"  {lib}: {d['info']}")
    hdr = f"{'case':<38}{'ours ms':>10}{'torch ms':>10}{'x torch':>9}{'numpy ms':>10}{'x numpy':>9}{'GFLOP/s':>9}{'%peak':>7}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        np_ms = f"{r['numpy_ms']:10.3f}" if r["numpy_ms"] is not None else f"{'':>10}"
        np_ratio = f"{r['ratio_numpy']:9.2f}" if r["ratio_numpy"] is not None else f"{'':>9}"
        pct = f"{r['pct_peak']:7.1f}" if r["pct_peak"] is not None else f"{'':>7}"
        gfl = f"{r['gflops']:9.1f}" if r["group"] != "pool" else f"{'':>9}"
        print(f"{r['case']:<38}{r['ours_ms']:10.3f}{r['torch_ms']:10.3f}{r['ratio_torch']:9.2f}{np_ms}{np_ratio}{gfl}{pct}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "peak_gflops": peak, "libraries": {k: v["info"] for k, v in libs.items()},
                       "rows": rows}, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.35), 5))
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [1.0] * len(rows), 0.4, label="PyTorch (reference = 1)")
        ax.bar([x + 0.2 for x in xs], [r["ratio_torch"] for r in rows], 0.4, label="convforge (speed-up)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r["case"] for r in rows], rotation=90, fontsize=7)
        ax.set_ylabel("speed relative to PyTorch CPU")
        ax.set_title(f"convforge vs PyTorch on the CPU, {args.threads} thread(s)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
