"""convforge's CUDA kernels against cuDNN and cuBLAS (through PyTorch), every op and algo.

    python benchmarks/bench_cuda.py [--json out.json] [--plot out.png] [--quick] [--budget 170]

Timing: CUDA events on the stream each library runs on (convforge's own stream for ours, torch's
current stream for the reference), after warm-up, median over repeats; our ops are called through
the backend (the geometry built once) so that both sides pay a similar Python overhead. cuDNN runs
with benchmark=True; fp32 rows have TF32 off, tf32 rows on. Each row also reports the relative
error against the reference, so that a fast wrong kernel cannot hide.

Columns: ours ms, ref ms, ratio = ref/ours (> 1: we are faster), TFLOP/s and % of the card's fp32
(non-tensor) peak, computed as SMs x 128 FMA x 2 x clock read from the device; GB/s (and % of the
nominal DRAM bandwidth) for memory-bound ops.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np

import convforge
import convforge.cuda as cc
import convforge.functional as F


def device_info():
    p = cc.get_device_properties(0)
    if not p.get("clock_khz") and ("H100" in p["name"] or "H200" in p["name"]):
        p["clock_khz"] = 1_980_000  # the attribute is missing: Hopper's boost clock
    peak = p["sm_count"] * 128 * 2 * p["clock_khz"] * 1e3 / 1e12 if p.get("clock_khz") else float("nan")
    bw = float("nan")
    if p.get("memory_clock_khz") and p.get("memory_bus_bits"):
        bw = 2 * p["memory_clock_khz"] * 1e3 * p["memory_bus_bits"] / 8 / 1e9  # double data rate
    name = p["name"]
    if not math.isfinite(bw) or bw <= 0:  # attributes missing: nominal figures by name
        bw = 4800.0 if "H200" in name else 2000.0 if "PCIe" in name else 3350.0 if "H100" in name else float("nan")
    return dict(p, fp32_peak_tflops=peak, dram_gbps=bw)


class Timer:
    def __init__(self, torch):
        self.torch = torch
        self.ours = torch.cuda.ExternalStream(convforge._cuda._stream_handle(0))

    def time(self, fn, stream, reps, warmup):
        torch = self.torch
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        cc.synchronize()
        times = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(stream)
            fn()
            e.record(stream)
            e.synchronize()
            times.append(s.elapsed_time(e))
        return statistics.median(times)

    def ours_ms(self, fn, reps, warmup=2):
        return self.time(fn, self.ours, reps, warmup)

    def ref_ms(self, fn, reps, warmup=2):
        return self.time(fn, self.torch.cuda.current_stream(), reps, warmup)


def rel_err(ours, ref):
    o = ours.numpy().astype(np.float64) if hasattr(ours, "numpy") else np.asarray(ours, np.float64)
    r = ref.detach().double().cpu().numpy()
    if not np.all(np.isfinite(o)):
        return float("inf")
    return float(np.linalg.norm(o - r) / max(np.linalg.norm(r), 1e-30))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--plot", help="write a bar chart (PNG) of ref/ours here")
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    ap.add_argument("--budget", type=float, default=170.0, help="seconds; later cases are skipped past it")
    ap.add_argument("--from-json", help="only print the table of an earlier run's JSON")
    ap.add_argument("--compact", action="store_true", help="with --from-json: only the auto and tf32 rows")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            data = json.load(f)
        rows = [r for r in data["rows"] if not args.compact or r.get("algo") in ("auto", "tf32")]
        print_table(rows, data["device"])
        return 0

    if not cc.is_available():
        print("no CUDA GPU visible: nothing to benchmark")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("torch has no CUDA: no reference to compare with")
        return 1
    torch.backends.cudnn.benchmark = True
    dev = device_info()
    be = cc._backend()
    timer = Timer(torch)
    t_start = time.time()
    rows = []
    print(f"device: {dev['name']}  SMs {dev['sm_count']}  clock {dev['clock_khz'] / 1e6:.2f} GHz  "
          f"fp32 peak {dev['fp32_peak_tflops']:.1f} TFLOP/s  DRAM {dev['dram_gbps']:.0f} GB/s", flush=True)

    def over_budget():
        return time.time() - t_start > args.budget

    def set_tf32(on):
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on

    def add(case, algo, ours_fn, ref_fn, flops=0.0, nbytes=0.0, reps=10, tf32=False, check=None):
        if over_budget():
            rows.append(dict(case=case, algo=algo, skipped="time budget"))
            return
        set_tf32(tf32)
        row = dict(case=case, algo=algo)
        try:
            ours = timer.ours_ms(ours_fn, reps)
            ref = timer.ref_ms(ref_fn, reps)
            row.update(ours_ms=ours, ref_ms=ref, ratio=ref / ours)
            if flops:
                row["tflops"] = flops / ours / 1e9
                row["pct_peak"] = 100 * row["tflops"] / dev["fp32_peak_tflops"]
            if nbytes:
                row["gbps"] = nbytes / ours / 1e6
                row["pct_bw"] = 100 * row["gbps"] / dev["dram_gbps"]
            if check is not None:
                row["rel_err"] = check()
        except Exception as e:  # a failing case must not stop the run
            row["error"] = f"{type(e).__name__}: {e}"[:200]
        set_tf32(False)
        rows.append(row)
        print(fmt_row(row), flush=True)

    def randt(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.float32)

    # ---- SGEMM ----------------------------------------------------------------------------
    gemm_sizes = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
                  (1000, 1000, 1000), (129, 257, 65)]
    if args.quick:
        gemm_sizes = [(1024, 1024, 1024), (129, 257, 65)]
    for M, N, K in gemm_sizes:
        a_t, b_t = randt(M, K), randt(K, N)
        a, b = cc.from_dlpack(a_t), cc.from_dlpack(b_t)
        flops = 2.0 * M * N * K
        reps = 3 if M >= 8192 else 5 if M >= 4096 else 20
        big = M * N * K > 2048**3
        algos = ["auto", "warp_tiled", "register_blocked", "tf32"]
        if not big:
            algos += ["smem_tiled", "coalesced"]
        if M * N * K <= 1024**3:
            algos += ["reference"]
        case = f"sgemm {M}x{N}x{K}"
        for algo in algos:
            out = {}

            def ours(algo=algo, out=out):
                out["y"] = be.gemm(a, b, None, 1.0, 0.0, False, False, algo)

            ref_t = {}

            def ref(ref_t=ref_t):
                ref_t["y"] = torch.matmul(a_t, b_t)

            def check(out=out, ref_t=ref_t, M=M):
                if M >= 4096:  # compare a slab: the full host copy of 8192^2 takes seconds
                    return rel_err(cc.from_dlpack(torch.from_dlpack(out["y"])[:64].contiguous()), ref_t["y"][:64])
                return rel_err(out["y"], ref_t["y"])

            add(case, algo, ours, ref, flops=flops, reps=reps if algo in ("auto", "warp_tiled", "tf32") else max(2, reps // 2),
                tf32=(algo == "tf32"), check=check)
        del a_t, b_t, a, b

    # ---- conv2d ----------------------------------------------------------------------------
    # (name, C, H, K, R, pad)
    lenet = [("lenet c1", 1, 32, 6, 5, 0), ("lenet c3", 6, 14, 16, 5, 0)]
    vgg = [("vgg conv1_2", 64, 224, 64, 3, 1), ("vgg conv2_2", 128, 112, 128, 3, 1),
           ("vgg conv3_2", 256, 56, 256, 3, 1), ("vgg conv4_2", 512, 28, 512, 3, 1),
           ("vgg conv5_2", 512, 14, 512, 3, 1)]
    conv_cases = [(n, N, *rest) for (n, *rest) in lenet for N in ((1, 64) if args.quick else (1, 64, 1024))]
    conv_cases += [(n, N, *rest) for (n, *rest) in (vgg[-1:] if args.quick else vgg) for N in ((1,) if args.quick else (1, 16))]
    for name, N, C, H, K, R, pad in conv_cases:
        x_t, w_t, b_t = randt(N, C, H, H), randt(K, C, R, R) / math.sqrt(C * R * R), randt(K)
        x, w, b = cc.from_dlpack(x_t), cc.from_dlpack(w_t), cc.from_dlpack(b_t)
        geom = convforge._C.conv2d_geometry((N, C, H, H), (K, C, R, R), (1, 1), (pad, pad, pad, pad), (1, 1), 1)
        flops = 2.0 * geom.macs
        is_vgg = name.startswith("vgg")
        fwd_algos = ["auto", "implicit_v2", "implicit", "im2col", "direct"] + ([] if is_vgg else ["direct_v2"])
        fwd_algos += ["reference"] if not is_vgg or N == 1 else []
        ref_t = {}

        def ref_fwd(ref_t=ref_t, x_t=x_t, w_t=w_t, b_t=b_t, pad=pad):
            ref_t["y"] = torch.nn.functional.conv2d(x_t, w_t, b_t, padding=pad)

        for algo in fwd_algos:
            out = {}

            def ours(algo=algo, out=out, x=x, w=w, b=b, geom=geom):
                out["y"] = be.conv2d_forward(x, w, b, geom, algo, False)

            add(f"conv fwd {name} N={N}", algo, ours, ref_fwd, flops=flops,
                reps=5 if flops > 2e10 else 15,
                check=lambda out=out, ref_t=ref_t: rel_err(out["y"], ref_t["y"]))
        # backward: dx, dw, db together, against cuDNN's convolution_backward
        if N > 1:
            dy_t = randt(N, K, geom.P, geom.Q)
            dy = cc.from_dlpack(dy_t)
            ref_b = {}

            def ref_bwd(ref_b=ref_b, dy_t=dy_t, x_t=x_t, w_t=w_t, pad=pad, K=K):
                ref_b["g"] = torch.ops.aten.convolution_backward(
                    dy_t, x_t, w_t, [K], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [True, True, True])

            # the reference dw is one thread per weight looping over N*P*Q: only where that is short
            bwd_algos = ["auto", "implicit_v2", "implicit", "im2col"] + ([] if is_vgg else ["direct"])
            bwd_algos += ["reference"] if N * geom.P * geom.Q <= 100_000 else []
            for algo in bwd_algos:
                out = {}

                def ours_bwd(algo=algo, out=out, dy=dy, x=x, w=w, geom=geom):
                    out["g"] = be.conv2d_backward(dy, x, w, geom, algo, True, True, True)

                def check_bwd(out=out, ref_b=ref_b):
                    return max(rel_err(o, r) for o, r in zip(out["g"], ref_b["g"]))

                add(f"conv bwd {name} N={N}", algo, ours_bwd, ref_bwd, flops=2 * flops,
                    reps=3 if flops > 2e10 or algo == "reference" else 10, check=check_bwd)
            del dy_t, dy
        del x_t, w_t, b_t, x, w, b

    # ---- pooling and elementwise (memory-bound) ---------------------------------------------
    shape = (8, 64, 112, 112) if args.quick else (32, 64, 224, 224)
    x_t = randt(*shape)
    x = cc.from_dlpack(x_t)
    n_in = x_t.numel() * 4
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        geom = convforge._C.pool2d_geometry(shape, (k, k), (s, s), (p, p), (1, 1), False)
        n_out = shape[0] * shape[1] * geom.P * geom.Q * 4
        for algo in ("fast", "reference"):
            out, ref_t = {}, {}

            def ours(algo=algo, out=out, geom=geom):
                out["y"] = be.max_pool2d_forward(x, geom, False, algo)[0]

            def ref(ref_t=ref_t, k=k, s=s, p=p):
                ref_t["y"] = torch.nn.functional.max_pool2d(x_t, k, s, p)

            add(f"max_pool {k}x{k}/{s} {shape}", algo, ours, ref, nbytes=n_in + n_out, reps=10,
                check=lambda out=out, ref_t=ref_t: rel_err(cc.from_dlpack(torch.from_dlpack(out["y"])[:1].contiguous()), ref_t["y"][:1]))

            def ours_avg(algo=algo, out=out, geom=geom):
                out["y"] = be.avg_pool2d_forward(x, geom, True, algo)

            def ref_avg(ref_t=ref_t, k=k, s=s, p=p):
                ref_t["y"] = torch.nn.functional.avg_pool2d(x_t, k, s, p)

            add(f"avg_pool {k}x{k}/{s} {shape}", algo, ours_avg, ref_avg, nbytes=n_in + n_out, reps=10,
                check=lambda out=out, ref_t=ref_t: rel_err(cc.from_dlpack(torch.from_dlpack(out["y"])[:1].contiguous()), ref_t["y"][:1]))
    n = x_t.numel()
    flat_t = x_t.view(-1)
    flat = cc.from_dlpack(flat_t)
    for fn in ("relu", "tanh", "sigmoid"):
        out, ref_t = {}, {}

        def ours(fn=fn, out=out):
            out["y"] = getattr(be, fn + "_forward")(flat)

        def ref(fn=fn, ref_t=ref_t):
            ref_t["y"] = getattr(torch, fn)(flat_t)

        add(f"{fn} fwd n={n}", "auto", ours, ref, nbytes=2 * n * 4, reps=10,
            check=lambda out=out, ref_t=ref_t: rel_err(cc.from_dlpack(torch.from_dlpack(out["y"])[:4096].contiguous()), ref_t["y"][:4096]))
    dy_t = randt(n)
    dy = cc.from_dlpack(dy_t)
    add(f"relu bwd n={n}", "auto", lambda: be.relu_backward(dy, flat),
        lambda: torch.ops.aten.threshold_backward(dy_t, flat_t, 0.0), nbytes=3 * n * 4, reps=10)
    del x_t, x, flat, flat_t, dy, dy_t
    logits_t = randt(4096, 1000)
    labels_t = torch.randint(0, 1000, (4096,), device="cuda")
    logits, labels = cc.from_dlpack(logits_t), cc.from_dlpack(labels_t)
    add("cross_entropy bwd 4096x1000", "auto", lambda: be.cross_entropy_backward(logits, labels),
        lambda: torch.softmax(logits_t, 1), nbytes=2 * logits_t.numel() * 4, reps=10)

    print_table(rows, dev)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=dev, torch=torch.__version__, convforge=convforge.__version__,
                           build=cc.build_info(), rows=rows), f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        plot(rows, args.plot, dev)
    print(f"benchmark took {time.time() - t_start:.0f} s")
    return 0


def fmt_row(r):
    if "skipped" in r:
        return f"{r['case']:<30} {r['algo']:<16} skipped ({r['skipped']})"
    if "error" in r:
        return f"{r['case']:<30} {r['algo']:<16} ERROR {r['error']}"
    s = f"{r['case']:<30} {r['algo']:<16} {r['ours_ms']:>9.3f} {r['ref_ms']:>9.3f} {r['ratio']:>7.2f}"
    s += f" {r['tflops']:>8.2f} {r['pct_peak']:>6.1f}%" if "tflops" in r else " " * 17
    s += f" {r['gbps']:>8.0f} {r['pct_bw']:>5.1f}%" if "gbps" in r else " " * 15
    if "rel_err" in r:
        s += f"  {r['rel_err']:.1e}"
    return s


def print_table(rows, dev):
    print()
    print(f"== convforge CUDA vs cuDNN/cuBLAS on {dev['name']} (fp32 peak {dev['fp32_peak_tflops']:.1f} TFLOP/s, "
          f"DRAM {dev['dram_gbps']:.0f} GB/s); ratio = ref/ours ==")
    print(f"{'case':<30} {'algo':<16} {'ours ms':>9} {'ref ms':>9} {'ratio':>7} {'TFLOP/s':>8} {'%peak':>7}"
          f" {'GB/s':>8} {'%bw':>6}  rel_err")
    for r in rows:
        print(fmt_row(r))


def plot(rows, path, dev):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    best = {}
    for r in rows:
        if "ratio" in r and r["algo"] == "auto":
            best[r["case"]] = r["ratio"]
    if not best:
        return
    fig, ax = plt.subplots(figsize=(10, max(4, 0.3 * len(best))))
    names = list(best)
    ax.barh(names, [best[n] for n in names], color=["tab:green" if best[n] >= 1 else "tab:orange" for n in names])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("speed relative to cuDNN / cuBLAS (ref ms / ours ms, algo=auto)")
    ax.set_title(f"convforge CUDA kernels on {dev['name']}")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
