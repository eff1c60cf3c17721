"""Worst relative error against PyTorch, per op and algo, over a grid of edge shapes (CPU).

    python benchmarks/accuracy_report.py [--seed N]

The tests assert the bounds (1e-5 forward, 1e-4 backward); this prints the errors measured, for
release notes. Error = ||ours - torch|| / ||torch||, torch in float64 on the same float32 inputs.
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as TF

import convforge.functional as F

# name: (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CONV_GRID = {
    "1x1": (2, 8, 7, 9, 5, 1, 1, 1, 0, 1, 1),
    "kernel == padded input": (1, 3, 5, 5, 4, 7, 7, 1, 1, 1, 1),
    "stride > kernel": (2, 4, 13, 11, 6, 2, 2, 3, 0, 1, 1),
    "asymmetric stride and padding": (2, 5, 12, 9, 7, 3, 4, (2, 1), (1, 2), 1, 1),
    "same, even kernel": (1, 3, 10, 7, 4, 4, 2, 1, "same", 1, 1),
    "dilation": (2, 4, 15, 13, 6, 3, 3, 1, 2, (2, 3), 1),
    "groups": (2, 8, 11, 10, 12, 3, 3, 1, 1, 1, 4),
    "depthwise": (2, 6, 9, 12, 6, 3, 3, 2, 1, 1, 6),
    "batch 1, odd": (1, 7, 17, 23, 9, 5, 3, 1, (2, 1), 1, 1),
    "LeNet C1": (4, 1, 32, 32, 6, 5, 5, 1, 0, 1, 1),
    "LeNet C3": (4, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "VGG 3x3 (64->64)": (1, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1),
}


def rel(ours, ref):
    ref = ref.detach().double().numpy()
    return float(np.linalg.norm(np.asarray(ours, np.float64) - ref) / max(np.linalg.norm(ref), 1e-300))


def t64(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def conv_errors(rng):
    fwd_algos = [a["name"] for a in F.algos("conv2d_forward")]
    bwd_algos = [a["name"] for a in F.algos("conv2d_backward")]
    worst = {("conv2d forward", a): 0.0 for a in fwd_algos}
    worst.update({("conv2d backward", a): 0.0 for a in bwd_algos})
    for name, (N, C, H, W, K, R, S, st, pad, dil, g) in CONV_GRID.items():
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C // g, R, S)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
        yt = TF.conv2d(xt, wt, bt, st, pad, dil, g)
        dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(t64(dy))
        for a in fwd_algos:
            try:
                y = F.conv2d(x, w, b, st, pad, dil, g, algo=a)
            except ValueError:  # an algo that does not take this geometry says so (e.g. winograd)
                continue
            worst[("conv2d forward", a)] = max(worst[("conv2d forward", a)], rel(y, yt))
        for a in bwd_algos:
            try:
                gx, gw, gb = F.conv2d_backward(dy, x, w, st, pad, dil, g, algo=a)
            except ValueError:
                continue
            e = max(rel(gx, xt.grad), rel(gw, wt.grad), rel(gb, bt.grad))
            worst[("conv2d backward", a)] = max(worst[("conv2d backward", a)], e)
    return worst


def pool_errors(rng):
    worst = {}
    cases = [((2, 3, 12, 11), 2, None, 0, 1, False), ((2, 3, 13, 11), 3, 2, 1, 1, True),
             ((1, 4, 9, 10), 3, 1, 1, 2, False), ((3, 2, 7, 7), (3, 2), (2, 1), (1, 0), 1, True)]
    for algo in [a["name"] for a in F.algos("pool2d")]:
        for shape, k, s, p, d, ceil in cases:
            x = rng.standard_normal(shape).astype(np.float32)
            xt = t64(x, True)
            yt, it = TF.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
            y, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True, algo=algo)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            yt.backward(t64(dy))
            gx = F.max_pool2d_backward(dy, idx, x.shape)
            key = ("max_pool2d fwd / bwd", algo)
            worst[key] = max(worst.get(key, 0.0), rel(y, yt), rel(gx, xt.grad))
            xt = t64(x, True)
            yt = TF.avg_pool2d(xt, k, s, p, ceil, True)
            y = F.avg_pool2d(x, k, s, p, ceil, True, algo=algo)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            yt.backward(t64(dy))
            gx = F.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, True)
            key = ("avg_pool2d fwd / bwd", algo)
            worst[key] = max(worst.get(key, 0.0), rel(y, yt), rel(gx, xt.grad))
    return worst


def gemm_errors(rng):
    worst = {}
    for algo in [a["name"] for a in F.algos("gemm")]:
        for m, n, k in [(1, 1, 1), (7, 33, 100), (257, 100, 33), (100, 257, 7)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                    c = rng.standard_normal((m, n)).astype(np.float32)
                    out = F.gemm(a, b, c, alpha=0.7, beta=-1.3, trans_a=ta, trans_b=tb, algo=algo)
                    at, bt = t64(a), t64(b)
                    ref = 0.7 * ((at.T if ta else at) @ (bt.T if tb else bt)) - 1.3 * t64(c)
                    worst[("gemm (all transposes)", algo)] = max(worst.get(("gemm (all transposes)", algo), 0.0), rel(out, ref))
    return worst


def elementwise_errors(rng):
    x = rng.standard_normal((64, 1000)).astype(np.float32) * 4
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = {}
    for name, fwd, bwd, tfn in [("relu", F.relu, F.relu_backward, torch.relu),
                                ("tanh", F.tanh, F.tanh_backward, torch.tanh),
                                ("sigmoid", F.sigmoid, F.sigmoid_backward, torch.sigmoid)]:
        xt = t64(x, True)
        yt = tfn(xt)
        yt.backward(t64(dy))
        y = fwd(x)
        gx = bwd(dy, x if name == "relu" else y)
        out[(f"{name} fwd / bwd", "-")] = max(rel(y, yt), rel(gx, xt.grad))
    labels = rng.integers(0, 1000, 64)
    lt = t64(x, True)
    loss = TF.cross_entropy(lt, torch.tensor(labels))
    loss.backward()
    out[("cross_entropy fwd / bwd", "-")] = max(abs(F.cross_entropy(x, labels) - loss.item()) / abs(loss.item()),
                                               rel(F.cross_entropy_backward(x, labels), lt.grad))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    rng = np.random.default_rng(ap.parse_args().seed)
    rows = {}
    for part in (conv_errors, pool_errors, gemm_errors, elementwise_errors):
        rows.update(part(rng))
    print(f"{'op':<28}{'algo':<14}{'worst rel. error':>18}")
    for (op, algo), e in rows.items():
        print(f"{op:<28}{algo:<14}{e:18.1e}")


if __name__ == "__main__":
    main()
