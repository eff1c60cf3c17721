"""Each CUDA kernel family once, on small odd shapes, for compute-sanitizer (memcheck, racecheck).

    compute-sanitizer --tool memcheck  --error-exitcode 1 python benchmarks/sanitize_cuda.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python benchmarks/sanitize_cuda.py

No torch: results are compared with convforge's CPU kernels, so that a wrong answer shows here
too. Exits non-zero when a result is off (the sanitizer's own findings set its exit code).
"""
import sys

import numpy as np

import convforge.cuda as cc
import convforge.functional as F

failures = []


def close(name, got, ref, tol):
    got = got.numpy() if not isinstance(got, np.ndarray) else got
    ref = np.asarray(ref, dtype=np.float64)
    err = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
    ok = np.all(np.isfinite(got)) and err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name:50s} rel err {err:.2e}")
    if not ok:
        failures.append(name)


def main():
    if not cc.is_available():
        print("no CUDA GPU visible: nothing to sanitize")
        return 0
    cc._module()._set_poison_outputs(True)
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    d = cc.to_device

    # GEMM ladder, every transpose on one odd shape (edges in every tile direction)
    M, N, K = 67, 131, 37
    for algo in [a["name"] for a in F.algos("gemm", device="cuda")]:
        for ta in (False, True):
            for tb in (False, True):
                a = r(K, M) if ta else r(M, K)
                b = r(N, K) if tb else r(K, N)
                ref = F.gemm(a, b, trans_a=ta, trans_b=tb)
                close(f"gemm {algo} ta={ta} tb={tb}", F.gemm(d(a), d(b), trans_a=ta, trans_b=tb, algo=algo),
                      ref, 5e-3 if algo == "tf32" else 1e-5)
    x, w, bias = r(9, 20), r(13, 20), r(13)
    close("linear", F.linear(d(x), d(w), d(bias)), F.linear(x, w, bias), 1e-5)

    # conv2d: groups, asymmetric stride/padding, dilation; every algo forward and backward
    x, w, b = r(3, 6, 11, 13), r(66, 3, 3, 2), r(66)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    yref = F.conv2d(x, w, b, **kw)
    dy = r(*yref.shape)
    dref = F.conv2d_backward(dy, x, w, **kw)
    for algo in [a["name"] for a in F.algos("conv2d_forward", device="cuda")]:
        close(f"conv2d fwd {algo}", F.conv2d(d(x), d(w), d(b), algo=algo, **kw), yref, 1e-5)
    for algo in [a["name"] for a in F.algos("conv2d_backward", device="cuda")]:
        got = F.conv2d_backward(d(dy), d(x), d(w), algo=algo, **kw)
        for nm, g_, r_ in zip(("dx", "dw", "db"), got, dref):
            close(f"conv2d bwd {algo} {nm}", g_, r_, 1e-4)
    # a batch long enough for split-K in the weight gradient
    x2, w2 = r(16, 4, 20, 20), r(8, 4, 3, 3)
    dy2 = r(16, 8, 20, 20)
    ref2 = F.conv2d_backward(dy2, x2, w2, padding=1)
    got2 = F.conv2d_backward(d(dy2), d(x2), d(w2), padding=1, algo="implicit")
    close("conv2d bwd implicit split-K dw", got2[1], ref2[1], 1e-4)
    got2 = F.conv2d_backward(d(dy2), d(x2), d(w2), padding=1, algo="implicit_v2")
    close("conv2d bwd implicit_v2 split-K dw", got2[1], ref2[1], 1e-4)
    close("conv2d bwd implicit_v2 dx (stride 1: forward form)", got2[0], ref2[0], 1e-4)
    got2 = F.conv2d_backward(d(dy2), d(x2), d(w2), padding=1, algo="direct")
    close("conv2d bwd direct dw over batch slices", got2[1], ref2[1], 1e-4)
    # implicit_v2 forward split over the depth (few column tiles), groups, stride 1 dx, asym padding
    x3, w3, b3 = r(1, 96, 5, 6), r(80, 48, 3, 2), r(80)
    kw3 = dict(padding="same", dilation=(2, 1), groups=2)
    y3 = F.conv2d(x3, w3, b3, **kw3)
    close("conv2d fwd implicit_v2 split-K", F.conv2d(d(x3), d(w3), d(b3), algo="implicit_v2", **kw3), y3, 1e-5)
    dy3 = r(*y3.shape)
    ref3 = F.conv2d_backward(dy3, x3, w3, **kw3)
    got3 = F.conv2d_backward(d(dy3), d(x3), d(w3), algo="implicit_v2", **kw3)
    for nm, g_, r_ in zip(("dx", "dw", "db"), got3, ref3):
        close(f"conv2d bwd implicit_v2 split-K {nm}", g_, r_, 1e-4)

    # pooling
    x = r(2, 3, 13, 11)
    for algo in ("reference", "fast"):
        for k, s, p, ceil in ((2, 2, 0, True), (3, 2, 1, False), (3, 1, 1, True)):
            y, i = F.max_pool2d(d(x), k, s, p, ceil_mode=ceil, return_indices=True, algo=algo)
            yr, ir = F.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
            close(f"max_pool2d {algo} k{k} s{s} p{p} ceil={ceil}", y, yr, 0)
            assert np.array_equal(i.numpy(), ir), "max_pool2d indices differ"
            dyp = r(*yr.shape)
            close(f"max_pool2d_backward k{k}", F.max_pool2d_backward(d(dyp), i, x.shape),
                  F.max_pool2d_backward(dyp, ir, x.shape), 1e-5)
            for cip in (True, False):
                close(f"avg_pool2d {algo} k{k} cip={cip}",
                      F.avg_pool2d(d(x), k, s, p, ceil_mode=ceil, count_include_pad=cip, algo=algo),
                      F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip), 1e-5)
                close(f"avg_pool2d_backward k{k} cip={cip}",
                      F.avg_pool2d_backward(d(dyp), x.shape, k, s, p, ceil_mode=ceil, count_include_pad=cip),
                      F.avg_pool2d_backward(dyp, x.shape, k, s, p, ceil_mode=ceil, count_include_pad=cip), 1e-5)

    # elementwise, loss, column sums
    v, dv = r(1027), r(1027)
    for fn in ("relu", "tanh", "sigmoid"):
        close(fn, getattr(F, fn)(d(v)), getattr(F, fn)(v), 1e-5)
        close(fn + "_backward", getattr(F, fn + "_backward")(d(dv), d(v)), getattr(F, fn + "_backward")(dv, v), 1e-5)
    logits, labels = r(37, 10), rng.integers(0, 10, 37).astype(np.int64)
    got = F.cross_entropy(d(logits), cc.to_device(labels))
    ref = F.cross_entropy(logits, labels)
    close("cross_entropy", np.array([got]), np.array([ref]), 1e-5)
    close("cross_entropy_backward", F.cross_entropy_backward(d(logits), cc.to_device(labels)),
          F.cross_entropy_backward(logits, labels), 1e-5)
    a = r(45, 33)
    close("sum_rows", cc._backend().sum_rows(d(a)), a.astype(np.float64).sum(0), 1e-5)
    cc.synchronize()
    print(f"{len(failures)} failures" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
