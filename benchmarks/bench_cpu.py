"""CPU benchmark: our GEMM, conv2d and pooling kernels beside PyTorch (oneDNN) and numpy (OpenBLAS).

    python benchmarks/bench_cpu.py [--threads 1|2] [--only gemm,skinny,conv,resnet,alexnet,pool,subnormal]
                                   [--cases REGEX] [--quick] [--no-tuned] [--rounds N] [--md [FILE]] [--json FILE]
                                   [--plot FILE.png]

Each library is timed in its own process (`--worker NAME`), so that two thread pools in one process
(our OpenMP, torch's OpenMP, OpenBLAS's) never spin against each other on a small machine. Ours runs
twice: "auto" (the heuristics) and "tuned" (convforge.set_autotune(True): each case's first call
times the eligible algos and keeps the fastest, in $CONVFORGE_CACHE; that call is not timed). Every
case is warmed up, then repeated; the table gives the median, the ratio reference/ours (above 1: we
are faster), GFLOP/s of the faster of our two runs and its percentage of the fp32 FMA peak that convforge measures on this
machine for the threads in use (convforge.machine_info(); --peak-per-core overrides it).
`--rounds N` runs the libraries' processes N times in turn and keeps each case's best median (on a
shared host whose speed drifts by tens of percent from minute to minute, as this project's are).
`--md` writes benchmarks/results/cpu_<uarch>_<threads>t.md with the machine description at the top.
`--quick` keeps one case per kind of shape (about a minute); `--cases REGEX` keeps the matching names.

The "subnormal" rows (issue 22) give one operand subnormal values (rand * 1e-39): "flush" runs ours
with convforge.set_flush_denormal(True) (our default) and torch with torch.set_flush_denormal(True);
"IEEE" runs ours with set_flush_denormal(False) and torch as it is by default. Compare them with the
same sizes on normal inputs (sgemm 512x512x512, and the group's conv3x3 row).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

# ------------------------------------------------------------------------------------------------
# Cases: (group, name, kind, params). GFLOP counts are computed from the params.
# ------------------------------------------------------------------------------------------------
LENET = [("lenet_c1", 1, 6, 32, 32, 5, 0), ("lenet_c3", 6, 16, 14, 14, 5, 0)]
VGG = [  # name, C, K, H=W, R, pad
    ("vgg_conv1_1", 3, 64, 224, 3, 1), ("vgg_conv1_2", 64, 64, 224, 3, 1),
    ("vgg_conv2_2", 128, 128, 112, 3, 1), ("vgg_conv3_2", 256, 256, 56, 3, 1),
    ("vgg_conv4_2", 512, 512, 28, 3, 1), ("vgg_conv5_2", 512, 512, 14, 3, 1),
]
# ResNet-50 (224 x 224): the 7x7 stem, and the bottleneck layers, each distinct shape once: per stage the 1x1 reduction of
# the first block and of the others, the 3x3 (strided in stages 3-5's first block), the 1x1
# expansion and the strided 1x1 projection. name, C, K, H=W (input), R, stride, pad
RESNET = [
    ("res1_7x7_s2", 3, 64, 224, 7, 2, 3),  # the stem
    ("res2_1x1_reduce_first", 64, 64, 56, 1, 1, 0), ("res2_3x3", 64, 64, 56, 3, 1, 1),
    ("res2_1x1_expand", 64, 256, 56, 1, 1, 0), ("res2_1x1_reduce", 256, 64, 56, 1, 1, 0),
    ("res3_1x1_reduce_first", 256, 128, 56, 1, 1, 0), ("res3_3x3_s2", 128, 128, 56, 3, 2, 1),
    ("res3_proj_s2", 256, 512, 56, 1, 2, 0), ("res3_1x1_expand", 128, 512, 28, 1, 1, 0),
    ("res3_1x1_reduce", 512, 128, 28, 1, 1, 0), ("res3_3x3", 128, 128, 28, 3, 1, 1),
    ("res4_1x1_reduce_first", 512, 256, 28, 1, 1, 0), ("res4_3x3_s2", 256, 256, 28, 3, 2, 1),
    ("res4_proj_s2", 512, 1024, 28, 1, 2, 0), ("res4_1x1_expand", 256, 1024, 14, 1, 1, 0),
    ("res4_1x1_reduce", 1024, 256, 14, 1, 1, 0), ("res4_3x3", 256, 256, 14, 3, 1, 1),
    ("res5_1x1_reduce_first", 1024, 512, 14, 1, 1, 0), ("res5_3x3_s2", 512, 512, 14, 3, 2, 1),
    ("res5_proj_s2", 1024, 2048, 14, 1, 2, 0), ("res5_1x1_expand", 512, 2048, 7, 1, 1, 0),
    ("res5_1x1_reduce", 2048, 512, 7, 1, 1, 0), ("res5_3x3", 512, 512, 7, 3, 1, 1),
]
ALEXNET = [  # torchvision's AlexNet at 224 x 224
    ("alexnet_conv1", 3, 64, 224, 11, 4, 2), ("alexnet_conv2", 64, 192, 27, 5, 1, 2),
    ("alexnet_conv3", 192, 384, 13, 3, 1, 1), ("alexnet_conv4", 384, 256, 13, 3, 1, 1),
    ("alexnet_conv5", 256, 256, 13, 3, 1, 1),
]
# One case per kind of shape, for --quick.
QUICK = re.compile(r"sgemm (1024x1024x1024|64x3136x576|129x257x65|64x1024x1024)$|lenet_c3 N=256|vgg_conv3_2 N=8|"
                   r"vgg_conv5_2 N=1|res3_3x3_s2 N=8|res4_1x1_expand N=1|alexnet_conv1|maxpool 2x2/2 \(16")


def cases(only, pattern=None, quick=False):
    out = []
    if "gemm" in only:
        for m, n, k in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
                        (64, 3136, 576), (128, 784, 1152), (512, 196, 4608),
                        (1000, 1000, 1000), (129, 257, 65)]:
            out.append(("gemm", f"sgemm {m}x{n}x{k}", "gemm", dict(m=m, n=n, k=k)))
    if "skinny" in only:  # one dimension <= 64, the others >= 1024
        for m, n, k in [(64, 1024, 1024), (1024, 64, 1024), (1024, 1024, 64), (32, 2048, 2048),
                        (2048, 32, 2048), (2048, 2048, 16)]:
            out.append(("gemm", f"sgemm {m}x{n}x{k}", "gemm", dict(m=m, n=n, k=k)))
    convs = []
    if "conv" in only:
        convs += [(name, n, c, k, h, r, 1, p) for name, c, k, h, _, r, p in LENET for n in (1, 16, 256)]
        convs += [(name, n, c, k, h, r, 1, p) for name, c, k, h, r, p in VGG for n in (1, 8)]
    if "resnet" in only:
        convs += [(name, n, c, k, h, r, st, p) for name, c, k, h, r, st, p in RESNET for n in (1, 8)]
    if "alexnet" in only:
        convs += [(name, 16, c, k, h, r, st, p) for name, c, k, h, r, st, p in ALEXNET]
    for name, n, c, k, h, r, st, p in convs:
        params = dict(n=n, c=c, k=k, h=h, r=r, stride=st, pad=p)
        for kind in ("conv_fwd", "conv_bwd_data", "conv_bwd_weight"):
            if kind == "conv_bwd_data" and c <= 3:
                continue  # a first layer's input gradient is never needed
            out.append(("conv", f"{kind[5:]} {name} N={n}", kind, params))
    if "subnormal" in only:
        conv = dict(n=8, c=64, k=64, h=56, r=3, stride=1, pad=1)
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
    if quick:
        out = [c for c in out if QUICK.search(c[1])]
    if pattern:
        out = [c for c in out if re.search(pattern, c[1])]
    return out


def gflop(kind, p):
    if kind == "gemm":
        return 2 * p["m"] * p["n"] * p["k"] / 1e9
    if kind.startswith("conv"):
        out_hw = (p["h"] + 2 * p["pad"] - p["r"]) // p["stride"] + 1
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
        kw = dict(stride=p["stride"], padding=p["pad"])
        if kind == "conv_fwd":
            return flushing(set_mode, p, lambda: F.conv2d(x, w, bias, **kw))
        gy = F.conv2d(x, w, bias, **kw)
        mask = (True, False, False) if kind == "conv_bwd_data" else (False, True, True)
        return lambda: F.conv2d_backward(gy, x, w, **kw, output_mask=mask)
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
        pad, stride = [p["pad"]] * 2, [p["stride"]] * 2
        if kind == "conv_fwd":
            return flushing(set_mode, p, lambda: TF.conv2d(x, w, bias, stride=stride, padding=pad))
        gy = TF.conv2d(x, w, bias, stride=stride, padding=pad)
        mask = [True, False, False] if kind == "conv_bwd_data" else [False, True, True]
        return lambda: torch.ops.aten.convolution_backward(
            gy, x, w, [p["k"]], stride, pad, [1, 1], False, [0, 0], 1, mask)
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


def worker(lib, threads, only, pattern, quick):
    import numpy as np

    info = {}
    if lib in ("convforge", "convforge-tuned"):
        import convforge

        convforge.set_num_threads(threads)
        info = {k: v for k, v in convforge.build_info().items() if k in ("version", "arch", "compiler", "simd_in_use", "num_threads")}
        if lib == "convforge":
            info["machine"] = convforge.machine_info(measure=True)
        make = make_convforge
        if lib == "convforge-tuned":
            convforge.set_autotune(True)
            from convforge import tuning

            info["tuning_cache"] = str(tuning.cache_path())
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
    for group, name, kind, p in cases(only, pattern, quick):
        fn = make(kind, p, np.random.default_rng(0))
        if fn is None:
            continue
        if lib == "convforge-tuned":
            fn()  # measures the eligible algos once (or finds them in the cache): not timed
        med, reps = time_it(fn)
        results[name] = {"median_s": med, "reps": reps}
        print(f"  [{lib}] {name}: {med * 1e3:.3f} ms", file=sys.stderr, flush=True)
    json.dump({"info": info, "results": results}, sys.stdout)


def run_worker(lib, threads, only, pattern, quick):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if lib == "numpy":
        # Older OpenBLAS builds need these on some CPUs; they slow a current one: unset for this process only.
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--worker", lib, "--threads", str(threads), "--only", ",".join(only)]
    cmd += (["--cases", pattern] if pattern else []) + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def fmt(v, spec, width):
    return format(v, spec).rjust(width) if v is not None else " " * width


def machine_lines(machine, threads, peak, peak_source):
    m = machine
    kib = lambda b: f"{b >> 10} KiB" if b < 1 << 20 else f"{b >> 20} MiB"  # noqa: E731
    return [
        f"CPU: {m['model_name']} ({m['vendor']}, family {m['family']} model {m['model']}, {m['uarch']}), "
        f"{m['logical_cpus']} logical CPUs, SIMD {m['simd_supported']}",
        f"caches: L1d {kib(m['l1d_bytes'])}, L2 {kib(m['l2_bytes'])} (shared by {m['l2_shared_by']}), "
        f"L3 {kib(m['l3_bytes'])} (shared by {m['l3_shared_by']}) from {m['cache_source']}",
        f"GEMM config: {m['cpu_config']} ({m['blocks']})",
        f"measured fp32 FMA peak: {m['peak_gflops_per_core']} GFLOP/s on 1 thread, {m['peak_gflops_threads']} on "
        f"{m['threads']}; 512-bit FMA units: {m['fma512_units']}; STREAM triad {m['triad_gbs']} GB/s",
        f"% of peak below: of {peak:.1f} GFLOP/s for {threads} thread(s) ({peak_source})",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="gemm,skinny,conv,resnet,alexnet,pool,subnormal",
                    help="groups: gemm, skinny, conv (LeNet-5, VGG-16), resnet, alexnet, pool")
    ap.add_argument("--cases", default=None, help="keep only the cases whose name matches this regular expression")
    ap.add_argument("--quick", action="store_true", help="one case per kind of shape (about a minute)")
    ap.add_argument("--no-tuned", action="store_true", help="skip the tuned run of ours")
    ap.add_argument("--md", nargs="?", const="auto", default=None,
                    help="write a Markdown table (default name benchmarks/results/cpu_<uarch>_<threads>t.md)")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    ap.add_argument("--peak-per-core", type=float, default=None,
                    help="GFLOP/s per core for %% of peak (default: convforge's measured peak for the threads in use)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every library's process this many times, in turn; each case keeps its best median "
                         "(use 3 on a shared or noisy host)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    only = set(args.only.split(","))
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.worker:
        return worker(args.worker, args.threads, only, args.cases, args.quick)

    selected = cases(only, args.cases, args.quick)
    if not selected:
        raise SystemExit(f"error: no case matches --only {args.only} --cases {args.cases!r}")
    names = ["convforge"] + ([] if args.no_tuned else ["convforge-tuned"]) + ["torch", "numpy"]
    # Rounds: every library's process once per round, in turn, so that a slow spell of a shared
    # host falls on all of them alike; each case keeps its lowest median over the rounds (a busy
    # host only ever adds time). The spread over rounds is reported per library.
    libs, spread = {}, {}
    for r in range(args.rounds):
        for lib in names:
            out = run_worker(lib, args.threads, only, args.cases, args.quick)
            if lib == "convforge" and lib in libs:  # the highest peak any round measured
                m_old, m_new = libs[lib]["info"]["machine"], out["info"]["machine"]
                if m_new["peak_gflops_threads"] > m_old["peak_gflops_threads"]:
                    libs[lib]["info"]["machine"] = m_new
            if lib not in libs:
                libs[lib] = out
                spread[lib] = {n: [v["median_s"]] for n, v in out["results"].items()}
                continue
            for n, v in out["results"].items():
                spread[lib][n].append(v["median_s"])
                if v["median_s"] < libs[lib]["results"][n]["median_s"]:
                    libs[lib]["results"][n] = v
    machine = libs["convforge"]["info"]["machine"]
    if args.peak_per_core:
        peak, peak_source = args.peak_per_core * args.threads, "--peak-per-core"
    else:
        peak, peak_source = machine["peak_gflops_threads"], "measured by convforge.machine_info()"
    rows = []
    for group, name, kind, p in selected:
        ours = libs["convforge"]["results"][name]["median_s"]
        tuned = libs.get("convforge-tuned", {}).get("results", {}).get(name, {}).get("median_s")
        ref_torch = libs["torch"]["results"][name]["median_s"]
        ref_np = libs["numpy"]["results"].get(name, {}).get("median_s")
        best = min(ours, tuned) if tuned else ours
        gf = gflop(kind, p)
        rows.append(dict(case=name, group=group, ours_ms=ours * 1e3, tuned_ms=None if tuned is None else tuned * 1e3,
                         torch_ms=ref_torch * 1e3, numpy_ms=None if ref_np is None else ref_np * 1e3,
                         ratio_torch=ref_torch / ours, ratio_torch_tuned=None if tuned is None else ref_torch / tuned,
                         ratio_numpy=None if ref_np is None else ref_np / best,
                         gflops=gf / best, pct_peak=100 * gf / best / peak if group != "pool" else None))

    head = machine_lines(machine, args.threads, peak, peak_source)
    print(f"\nconvforge CPU benchmark, {args.threads} thread(s); ratio = reference time / our time (>1: we are faster)")
    for line in head:
        print("  " + line)
    for lib, d in libs.items():
        print(f"  {lib}: { {k: v for k, v in d['info'].items() if k != 'machine'} }")
    if args.rounds > 1:
        head.append(f"{args.rounds} rounds, each case's best median; spread over rounds (max/min median, "
                    "median over cases): " + ", ".join(
                        f"{lib} {statistics.median(max(v) / min(v) for v in spread[lib].values()):.2f}x"
                        for lib in names if spread.get(lib)))  # numpy times GEMMs only
        print("  " + head[-1])
    cols = ["case", "auto ms", "tuned ms", "torch ms", "x torch", "x torch tuned", "numpy ms", "x numpy", "GFLOP/s", "% peak"]
    table = []
    for r in rows:
        pool = r["group"] == "pool"
        table.append([r["case"], fmt(r["ours_ms"], ".3f", 0), fmt(r["tuned_ms"], ".3f", 0), fmt(r["torch_ms"], ".3f", 0),
                      fmt(r["ratio_torch"], ".2f", 0), fmt(r["ratio_torch_tuned"], ".2f", 0),
                      fmt(r["numpy_ms"], ".3f", 0), fmt(r["ratio_numpy"], ".2f", 0),
                      "" if pool else fmt(r["gflops"], ".1f", 0), "" if pool else fmt(r["pct_peak"], ".0f", 0)])
    widths = [max(len(row[i]) for row in [cols] + table) for i in range(len(cols))]
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for row in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    conv = [r for r in rows if r["group"] == "conv"]
    if conv:
        import statistics as st

        gm = st.geometric_mean([r["ratio_torch"] for r in conv])
        gmt = st.geometric_mean([r["ratio_torch_tuned"] or r["ratio_torch"] for r in conv])
        print(f"conv rows: geometric mean x torch {gm:.2f} (auto), {gmt:.2f} (tuned)")

    if args.md:
        path = args.md
        if path == "auto":
            slug = machine["uarch"] if machine["uarch"] != "unknown" else re.sub(r"\W+", "_", machine["model_name"]).strip("_").lower()
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"cpu_{slug}_{args.threads}t.md")
        with open(path, "w") as f:
            f.write(f"# convforge CPU benchmark, {args.threads} thread(s)\n\n")
            f.write("".join(f"- {line}\n" for line in head))
            f.write(f"- command: `python benchmarks/bench_cpu.py {' '.join(sys.argv[1:])}`\n")
            for lib, d in libs.items():
                f.write(f"- {lib}: `{ {k: v for k, v in d['info'].items() if k != 'machine'} }`\n")
            f.write("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
            for row in table:
                f.write("| " + " | ".join(c.strip() for c in row) + " |\n")
            if conv:
                f.write(f"\nconv rows: geometric mean x torch {gm:.2f} (auto), {gmt:.2f} (tuned)\n")
        print(f"wrote {path}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "peak_gflops": peak, "machine": machine,
                       "libraries": {k: v["info"] for k, v in libs.items()},
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
