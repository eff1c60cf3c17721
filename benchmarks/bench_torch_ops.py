"""convforge's kernels inside PyTorch: stock torch models against the same models after convforge.torch.convert.

    python benchmarks/bench_torch_ops.py [--threads 1,2] [--batches 64,256] [--only models,overhead]
                                         [--repeat R] [--out benchmarks/results]

Cases:
  models     LeNet-5 (1x32x32) and a VGG-style CIFAR-size network (convforge.torch.models.vgg_cifar, 3x32x32):
             a training step (forward, cross-entropy, backward, SGD with momentum) and a forward pass (eval,
             no_grad), stock torch eager against convforge.torch.convert(model), at each batch and thread count
  overhead   per-call cost of the torch path on tiny inputs (the kernel itself takes ~1 us):
             convforge.torch.<op> on tensors (and, for relu and conv2d, the operator torch.ops.convforge.<op>
             called directly), without and with inputs that require grad, against convforge.functional.<op>
             on numpy arrays; and the floors of the ways to register an operator from Python (an operator
             whose body only wraps its input's numpy view): torch.library.custom_op, torch.library.Library
             (+ register_autograd) and a torch.autograd.Function called in eager mode

Each variant runs in its own process (``--worker``), so that torch's thread pool and convforge's OpenMP
pool never spin against each other across variants. Times are medians over the repeats after warm-up;
speed-up = stock / converted (above 1: the converted model is faster). Writes torch_ops.json and
torch_ops.md into --out.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_models import time_calls  # benchmarks/ is on sys.path: this script's folder

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"lenet5": (1, "lenet5"), "vgg_cifar": (3, "vgg_cifar")}


# ----------------------------------------------------------------------------------------------
# Workers (one process each): print one JSON line
# ----------------------------------------------------------------------------------------------
def _set_threads(threads):
    import torch

    import convforge.functional as F

    torch.set_num_threads(threads)
    F.set_num_threads(threads)


def model_worker(model_name, mode, variant, batch, threads, warmup, repeat):
    import torch
    import torch.nn.functional as TF

    from convforge.torch import convert, models

    _set_threads(threads)
    torch.manual_seed(0)
    channels, arch = MODELS[model_name]
    model = models.build(arch)
    if variant == "convforge":
        convert(model)
    x = torch.randn(batch, channels, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if mode == "train":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def fn():
            loss = TF.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()

        def fn():
            with torch.no_grad():
                model(x)

    return time_calls(fn, warmup, repeat)


def overhead_worker(repeat):
    """Microseconds per call, best of 7 rounds of `repeat` calls, for each op and path."""
    import timeit

    import numpy as np
    import torch

    import convforge.functional as F
    import convforge.torch as ct

    _set_threads(1)
    ops = torch.ops.convforge
    x = torch.randn(1, 1, 4, 4)
    w = torch.randn(1, 1, 1, 1)
    a = torch.randn(2, 4)
    lw = torch.randn(3, 4)
    xg, wg, ag, lwg = (t.clone().requires_grad_() for t in (x, w, a, lw))
    xn, wn, an, lwn = x.numpy(), w.numpy(), a.numpy(), lw.numpy()

    def passthrough(t: torch.Tensor) -> torch.Tensor:  # the floors: an operator that does no work
        return torch.from_numpy(np.empty_like(t.detach().numpy()))

    def fake(t):
        return torch.empty_like(t)

    def setup(ctx, inputs, output):
        pass

    def backward(ctx, grad):
        return grad

    # (a) torch.library.custom_op
    floor = torch.library.custom_op("convforge_bench::floor", passthrough, mutates_args=())
    floor_ad = torch.library.custom_op("convforge_bench::floor_autograd", passthrough, mutates_args=())
    floor_ad.register_autograd(backward, setup_context=setup)
    # (b) torch.library.Library: a CPU kernel, and one with register_autograd
    lib = torch.library.Library("convforge_bench_lib", "DEF")
    for name in ("floor", "floor_autograd"):
        lib.define(f"{name}(Tensor t) -> Tensor")
        lib.impl(name, passthrough, "CPU")
        torch.library.register_fake(f"convforge_bench_lib::{name}", fake, lib=lib)
    torch.library.register_autograd("convforge_bench_lib::floor_autograd", backward, setup_context=setup, lib=lib)
    lib_floor = torch.ops.convforge_bench_lib.floor.default
    lib_floor_ad = torch.ops.convforge_bench_lib.floor_autograd.default

    # (c) torch.autograd.Function in eager mode
    class Floor(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return passthrough(t)

        @staticmethod
        def backward(ctx, grad):
            return grad

    empty = lambda: np.empty_like(xn)  # noqa: E731
    conv_args = ([1, 1], [0, 0, 0, 0], [1, 1], 1, "auto")
    cases = {
        "relu": (lambda: ct.relu(x), lambda: F.relu(xn)),
        "relu (input requires grad)": (lambda: ct.relu(xg), lambda: F.relu(xn)),
        "conv2d": (lambda: ct.conv2d(x, w), lambda: F.conv2d(xn, wn)),
        "conv2d (inputs require grad)": (lambda: ct.conv2d(xg, wg), lambda: F.conv2d(xn, wn)),
        "max_pool2d": (lambda: ct.max_pool2d(x, 2), lambda: F.max_pool2d(xn, 2)),
        "max_pool2d (input requires grad: indices too)": (lambda: ct.max_pool2d(xg, 2),
                                                          lambda: F.max_pool2d(xn, 2, return_indices=True)),
        "avg_pool2d": (lambda: ct.avg_pool2d(x, 2), lambda: F.avg_pool2d(xn, 2)),
        "avg_pool2d (input requires grad)": (lambda: ct.avg_pool2d(xg, 2), lambda: F.avg_pool2d(xn, 2)),
        "linear": (lambda: ct.linear(a, lw), lambda: F.linear(an, lwn)),
        "linear (inputs require grad)": (lambda: ct.linear(ag, lwg), lambda: F.linear(an, lwn)),
        "operator torch.ops.convforge.relu": (lambda: ops.relu.default(x), lambda: F.relu(xn)),
        "operator torch.ops.convforge.relu (input requires grad)": (lambda: ops.relu.default(xg),
                                                                    lambda: F.relu(xn)),
        "operator torch.ops.convforge.conv2d": (lambda: ops.conv2d.default(x, w, None, *conv_args),
                                                lambda: F.conv2d(xn, wn)),
        "operator torch.ops.convforge.conv2d (inputs require grad)": (
            lambda: ops.conv2d.default(xg, wg, None, *conv_args), lambda: F.conv2d(xn, wn)),
        "custom_op floor (numpy view in, empty array out)": (lambda: floor(x), empty),
        "custom_op floor with register_autograd": (lambda: floor_ad(x), empty),
        "custom_op floor with register_autograd (input requires grad)": (lambda: floor_ad(xg), empty),
        "Library floor (CPU kernel only)": (lambda: lib_floor(x), empty),
        "Library floor with register_autograd": (lambda: lib_floor_ad(x), empty),
        "Library floor with register_autograd (input requires grad)": (lambda: lib_floor_ad(xg), empty),
        "autograd.Function floor": (lambda: Floor.apply(x), empty),
        "autograd.Function floor (input requires grad)": (lambda: Floor.apply(xg), empty),
    }
    best = {name: [float("inf"), float("inf")] for name in cases}
    for _ in range(7):  # rounds interleave every case and path, so that a busy moment hits them all alike
        for name, paths in cases.items():
            for i, f in enumerate(paths):
                best[name][i] = min(best[name][i], 1e6 * timeit.timeit(f, number=repeat) / repeat)
    return {name: {"torch_op_us": t, "functional_us": f, "overhead_us": t - f} for name, (t, f) in best.items()}


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
def run_worker(threads, *args):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "python"), env.get("PYTHONPATH", "")] if p)
    r = subprocess.run([sys.executable, __file__, "--worker", *map(str, args)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ints(text):
    return [int(v) for v in text.split(",") if v]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=_ints, default=[1, 2])
    p.add_argument("--batches", type=_ints, default=[64, 256])
    p.add_argument("--models", default="lenet5,vgg_cifar")
    p.add_argument("--only", default="models,overhead")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per model variant (overhead: x1000)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        kind, *rest = a.worker
        if kind == "model":
            model, mode, variant, batch, threads, warmup, repeat = rest
            res = model_worker(model, mode, variant, int(batch), int(threads), int(warmup), int(repeat))
        else:
            res = overhead_worker(int(rest[0]))
        print(json.dumps(res))
        return 0

    import torch

    only = set(a.only.split(","))
    results = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "models": [], "overhead": None}
    lines = [f"# convforge.torch: stock torch {torch.__version__} eager vs convert(model), CPU", "",
             f"`python benchmarks/bench_torch_ops.py --threads {','.join(map(str, a.threads))} --batches "
             f"{','.join(map(str, a.batches))} --repeat {a.repeat}`; medians, ms; speed-up = stock / converted.", ""]
    if "models" in only:
        lines += ["| model | pass | batch | threads | stock ms | converted ms | speed-up |", "|---|---|---|---|---|---|---|"]
        print(f"{'model':<10}{'pass':<9}{'batch':>6}{'thr':>4}{'stock ms':>11}{'conv ms':>10}{'speed-up':>10}")
        for model in a.models.split(","):
            for mode in ("train", "forward"):
                for batch in a.batches:
                    for threads in a.threads:
                        stock, conv = (run_worker(threads, "model", model, mode, v, batch, threads, a.warmup, a.repeat)
                                       for v in ("torch", "convforge"))
                        row = {"model": model, "mode": mode, "batch": batch, "threads": threads, "stock": stock,
                               "converted": conv}
                        results["models"].append(row)
                        if "error" in stock or "error" in conv:
                            print(f"{model} {mode} B={batch} T={threads}: {stock.get('error', '')} {conv.get('error', '')}")
                            continue
                        row["speedup"] = stock["median_s"] / conv["median_s"]
                        s_ms, c_ms = 1e3 * stock["median_s"], 1e3 * conv["median_s"]
                        print(f"{model:<10}{mode:<9}{batch:>6}{threads:>4}{s_ms:>11.2f}{c_ms:>10.2f}{row['speedup']:>10.2f}")
                        lines.append(f"| {model} | {mode} | {batch} | {threads} | {s_ms:.2f} | {c_ms:.2f} | "
                                     f"{row['speedup']:.2f} |")
        lines.append("")
    if "overhead" in only:
        res = run_worker(1, "overhead", 1000 * a.repeat // 20 or 100)
        results["overhead"] = res
        lines += ["| op (tiny input) | convforge.torch us | convforge.functional on numpy us | overhead us |",
                  "|---|---|---|---|"]
        if "error" in res:
            print("overhead:", res["error"])
        else:
            for name, r in res.items():
                print(f"{name:<48}{r['torch_op_us']:>9.1f} us {r['functional_us']:>9.1f} us  "
                      f"overhead {r['overhead_us']:.1f} us")
                lines.append(f"| {name} | {r['torch_op_us']:.1f} | {r['functional_us']:.1f} | {r['overhead_us']:.1f} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "torch_ops.json").write_text(json.dumps(results, indent=2))
    (out / "torch_ops.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'torch_ops.json'} and {out / 'torch_ops.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
