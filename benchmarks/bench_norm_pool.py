"""CPU benchmark of adaptive average pooling and batch normalisation beside PyTorch.

    python benchmarks/bench_norm_pool.py [--threads N] [--repeat R] [--json FILE]

Cases are the layers torchvision's AlexNet / VGG-16(-BN) run: the adaptive pool to 7x7 / 6x6 after the
features (at 224 px the identity-sized bins, at 256 px overlapping bins), a global 1x1 average, and batch
norm (training forward + backward, eval forward) on VGG-16-BN's first and last stages. Ours (reference
and fast) and torch run one after the other in this process with the same thread count; the table gives
the median of --repeat runs and the ratio torch / ours (above 1: ours is faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def timeit(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import torch
    import torch.nn.functional as TF

    import convforge.functional as F

    F.set_num_threads(a.threads)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    rows = []

    pools = [("vgg16 avgpool at 224", (8, 512, 7, 7), 7), ("vgg16 avgpool at 256", (8, 512, 8, 8), 7),
             ("alexnet avgpool at 256", (8, 256, 7, 7), 6), ("vgg16 avgpool at 32 (1 -> 7)", (8, 512, 1, 1), 7),
             ("global 1x1 of 2048x7x7", (32, 2048, 7, 7), 1), ("global 1x1 of 64x56x56", (32, 64, 56, 56), 1)]
    for name, shape, out in pools:
        x = rng.standard_normal(shape).astype(np.float32)
        xt = torch.from_numpy(x)
        r = dict(case=f"adaptive_avg_pool2d {name} {shape}")
        r["reference ms"] = timeit(lambda: F.adaptive_avg_pool2d(x, out, algo="reference"), a.repeat)
        r["fast ms"] = timeit(lambda: F.adaptive_avg_pool2d(x, out, algo="fast"), a.repeat)
        r["torch ms"] = timeit(lambda: TF.adaptive_avg_pool2d(xt, out), a.repeat)
        rows.append(r)

    for name, shape in [("vgg16_bn conv1", (8, 64, 224, 224)), ("vgg16_bn conv5", (8, 512, 14, 14))]:
        C = shape[1]
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        w, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())

        def ours_train():
            y, m, s = F.batch_norm(x, rm, rv, w, b, True, return_stats=True)
            F.batch_norm_backward(g, x, w, m, s, True)

        def torch_train():
            xg = xt.detach().requires_grad_()
            TF.batch_norm(xg, rmt, rvt, wt, bt, True).backward(gt)

        rows.append({"case": f"batch_norm train fwd+bwd {name} {shape}", "fast ms": timeit(ours_train, a.repeat),
                     "torch ms": timeit(torch_train, a.repeat)})
        with torch.no_grad():
            rows.append({"case": f"batch_norm eval fwd {name} {shape}",
                         "fast ms": timeit(lambda: F.batch_norm(x, rm, rv, w, b, False), a.repeat),
                         "torch ms": timeit(lambda: TF.batch_norm(xt, rmt, rvt, wt, bt, False), a.repeat)})

    print(f"threads {a.threads}, median of {a.repeat}")
    print(f"{'case':66s} {'reference':>10s} {'fast':>9s} {'torch':>9s} {'torch/fast':>10s}")
    for r in rows:
        ref = f"{r['reference ms']:10.3f}" if "reference ms" in r else " " * 10
        print(f"{r['case']:66s} {ref} {r['fast ms']:9.3f} {r['torch ms']:9.3f} {r['torch ms'] / r['fast ms']:10.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(threads=a.threads, repeat=a.repeat, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
