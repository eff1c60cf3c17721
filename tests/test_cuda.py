"""The CUDA backend against PyTorch on CUDA: every op and every algo, on an edge-case grid.

References run in float64 on the GPU with TF32 off, so the measured error is ours alone:
||out - ref|| / ||ref|| <= 1e-5 forward, 1e-4 backward, 5e-3 for the opt-in TF32 GEMM.
Every output buffer starts as NaN (poisoned), so an element a kernel skips fails its test.
Also: DLPack / __cuda_array_interface__ exchange with torch, mixing devices, the allocator,
errors that become Python exceptions, and ops called from several threads at once.
Skipped where no GPU is visible.
"""
import threading
import zlib

import numpy as np
import pytest

import convforge
import convforge.cuda as cc
import convforge.functional as F
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

pytestmark = pytest.mark.skipif(not cc.is_available(), reason="no CUDA GPU visible")

torch = pytest.importorskip("torch")
TF32_TOL = 5e-3


@pytest.fixture(autouse=True)
def _cuda_setup():
    if not torch.cuda.is_available():
        pytest.skip("torch was built without CUDA: no reference on the GPU")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cc._module()._set_poison_outputs(True)
    yield
    cc._module()._set_poison_outputs(False)


def dev(a):
    return cc.to_device(np.asarray(a, order="C"))


def tt(a, grad=False):
    """A float64 CUDA tensor (the reference's precision)."""
    t = torch.tensor(np.asarray(a), dtype=torch.float64, device="cuda")
    return t.requires_grad_(grad)


def host(t):
    return t.detach().cpu().numpy()


def check(out, ref, tol):
    out = out.numpy() if hasattr(out, "numpy") and not isinstance(out, np.ndarray) else out
    err = rel_error(out, ref)
    assert err <= tol, f"relative error {err:.3e} > {tol:.0e}"


def algos_of(op):
    return [a["name"] for a in F.algos(op, device="cuda")]


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

# name: (N, C, H, W, K, R, S, stride, padding (t, b, l, r) or int, dilation, groups)
CONV_CASES = {
    "1x1": (2, 5, 7, 9, 6, 1, 1, 1, 0, 1, 1),
    "kernel_eq_padded_input": (2, 3, 5, 4, 4, 7, 6, 1, 1, 1, 1),
    "stride_gt_kernel": (2, 3, 11, 13, 5, 2, 2, 3, 0, 1, 1),
    "asym_stride_padding": (2, 4, 10, 13, 6, 3, 5, (2, 1), (1, 2), 1, 1),
    "same_even_kernel": (2, 3, 9, 10, 4, 4, 2, 1, "same", 1, 1),
    "dilation": (2, 3, 14, 15, 5, 3, 3, (1, 2), 2, (2, 3), 1),
    "groups": (2, 6, 9, 8, 9, 3, 3, 1, 1, 1, 3),
    "depthwise": (2, 8, 10, 11, 8, 3, 3, 2, 1, 1, 8),
    "batch1_odd_nonsquare": (1, 7, 13, 17, 11, 3, 5, 1, (1, 2), 1, 1),
    "many_channels_odd": (3, 37, 9, 11, 70, 3, 3, 1, 1, 1, 1),
    "tall_k": (2, 16, 12, 12, 130, 3, 3, 1, 1, 1, 1),
    "lenet_c1": (4, 1, 32, 32, 6, 5, 5, 1, 0, 1, 1),
    "lenet_c3": (4, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "vgg_conv1_2": (1, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1),
    "vgg_conv3_2": (2, 256, 6, 6, 256, 3, 3, 1, 1, 1, 1),
    "vgg_conv5_2": (1, 512, 3, 3, 512, 3, 3, 1, 1, 1, 1),
    # implicit_v2: dx at stride 1 runs as a forward conv with mirrored (here asymmetric) padding
    "same_dilated_even": (2, 5, 11, 10, 7, 4, 3, 1, "same", (2, 1), 1),
    # implicit_v2: few column tiles, so the forward is split over the depth (split-K), with groups
    "split_k_groups": (1, 128, 5, 7, 96, 3, 3, 1, 1, 1, 2),
    # direct_v2 / direct: positions of several images in one block, 16-channel chunks, groups
    "small_channels_batch": (5, 12, 9, 7, 20, 3, 3, 1, 1, 1, 2),
}


def _torch_padding(padding, R, S, dilation):
    """(pad_h, pad_w) for torch, or None when asymmetric ('same' with an even kernel)."""
    if padding == "same":
        return "same"
    if isinstance(padding, int):
        return (padding, padding)
    return tuple(padding)


_conv_cache = {}


def _conv_data(name):
    if name in _conv_cache:
        return _conv_cache[name]
    N, C, H, W, K, R, S, stride, padding, dilation, groups = CONV_CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = randn(rng, N, C, H, W)
    w = randn(rng, K, C // groups, R, S) / np.float32(np.sqrt(C // groups * R * S))
    b = randn(rng, K)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tkw = dict(stride=stride, padding=_torch_padding(padding, R, S, dilation), dilation=dilation, groups=groups)
    xt, wt, bt = tt(x, True), tt(w, True), tt(b, True)
    y = torch.nn.functional.conv2d(xt, wt, bt, **tkw)
    dy = randn(rng, *y.shape)
    y.backward(tt(dy))
    ref = dict(y=host(y), yrelu=np.maximum(host(y), 0), dx=host(xt.grad), dw=host(wt.grad), db=host(bt.grad))
    _conv_cache[name] = (x, w, b, dy, kw, ref)
    return _conv_cache[name]


@pytest.mark.parametrize("name", list(CONV_CASES))
@pytest.mark.parametrize("algo", ["reference", "direct", "direct_v2", "im2col", "implicit", "implicit_v2", "auto"])
def test_conv2d_forward(name, algo):
    x, w, b, dy, kw, ref = _conv_data(name)
    y = F.conv2d(dev(x), dev(w), dev(b), algo=algo, **kw)
    assert isinstance(y, cc.DeviceArray) and y.shape == ref["y"].shape
    check(y, ref["y"], FWD_TOL)


@pytest.mark.parametrize("name", ["1x1", "groups", "asym_stride_padding", "lenet_c3", "tall_k", "vgg_conv5_2"])
@pytest.mark.parametrize("algo", ["reference", "direct", "direct_v2", "im2col", "implicit", "implicit_v2", "auto"])
def test_conv2d_fused_bias_relu(name, algo):
    x, w, b, dy, kw, ref = _conv_data(name)
    be = cc._backend()
    geom = F._conv_geometry("conv2d", x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    y = be.conv2d_forward(dev(x), dev(w), dev(b), geom, algo, True)
    check(y, ref["yrelu"], FWD_TOL)
    y0 = be.conv2d_forward(dev(x), dev(w), None, geom, algo, False)
    check(y0, ref["y"] - b.reshape(1, -1, 1, 1), FWD_TOL)


@pytest.mark.parametrize("name", list(CONV_CASES))
@pytest.mark.parametrize("algo", ["reference", "im2col", "implicit", "implicit_v2", "direct", "auto"])
def test_conv2d_backward(name, algo):
    x, w, b, dy, kw, ref = _conv_data(name)
    dx, dw, db = F.conv2d_backward(dev(dy), dev(x), dev(w), algo=algo, **kw)
    check(dx, ref["dx"], BWD_TOL)
    check(dw, ref["dw"], BWD_TOL)
    check(db, ref["db"], BWD_TOL)


def test_conv2d_backward_output_mask():
    x, w, b, dy, kw, ref = _conv_data("groups")
    dx, dw, db = F.conv2d_backward(dev(dy), dev(x), dev(w), output_mask=(False, True, False), **kw)
    assert dx is None and db is None
    check(dw, ref["dw"], BWD_TOL)


def test_conv2d_split_k_large_batch():
    """A long N*P*Q depth makes the weight gradient split across blocks (split-K)."""
    rng = np.random.default_rng(7)
    x, w = randn(rng, 32, 8, 28, 28), randn(rng, 16, 8, 3, 3)
    dy = randn(rng, 32, 16, 28, 28)
    xt, wt = tt(x, True), tt(w, True)
    torch.nn.functional.conv2d(xt, wt, padding=1).backward(tt(dy))
    for algo in ["implicit", "implicit_v2", "direct", "im2col"]:
        dx, dw, db = F.conv2d_backward(dev(dy), dev(x), dev(w), padding=1, algo=algo)
        check(dw, host(wt.grad), BWD_TOL)
        check(dx, host(xt.grad), BWD_TOL)


def test_conv2d_algos_listed():
    assert {"reference", "direct", "direct_v2", "im2col", "implicit", "implicit_v2", "auto"} <= set(
        algos_of("conv2d_forward"))
    assert {"reference", "im2col", "implicit", "implicit_v2", "direct", "auto"} <= set(algos_of("conv2d_backward"))
    with pytest.raises(ValueError, match="algo"):
        F.conv2d(dev(np.ones((1, 1, 3, 3), np.float32)), dev(np.ones((1, 1, 3, 3), np.float32)), algo="nope")


# ---------------------------------------------------------------------------------------------
# GEMM and linear
# ---------------------------------------------------------------------------------------------

GEMM_SIZES = [(1, 1, 1), (7, 33, 100), (33, 7, 257), (100, 257, 33), (257, 100, 7), (257, 257, 257),
              (1, 257, 33), (130, 129, 131), (128, 128, 128), (64, 256, 8), (3, 5, 0)]
GEMM_ALGOS = ["reference", "coalesced", "smem_tiled", "register_blocked", "warp_tiled", "blocked", "tf32", "auto"]


def _gemm_ref(a, b, ta, tb):
    A = tt(a).T if ta else tt(a)
    B = tt(b).T if tb else tt(b)
    return host(A @ B)


@pytest.mark.parametrize("algo", GEMM_ALGOS)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("mnk", GEMM_SIZES, ids=lambda s: "x".join(map(str, s)))
def test_gemm(mnk, ta, tb, algo):
    M, N, K = mnk
    rng = np.random.default_rng(M * 1000003 + N * 1009 + K)
    a = randn(rng, *((K, M) if ta else (M, K)))
    b = randn(rng, *((N, K) if tb else (K, N)))
    out = F.gemm(dev(a), dev(b), trans_a=ta, trans_b=tb, algo=algo)
    assert out.shape == (M, N)
    ref = _gemm_ref(a, b, ta, tb)
    if K == 0:
        np.testing.assert_array_equal(out.numpy(), np.zeros((M, N), np.float32))
    else:
        check(out, ref, TF32_TOL if algo == "tf32" else FWD_TOL)


@pytest.mark.parametrize("algo", GEMM_ALGOS)
def test_gemm_alpha_beta_c(algo):
    rng = np.random.default_rng(3)
    a, b, c = randn(rng, 45, 70), randn(rng, 70, 33), randn(rng, 45, 33)
    cd = dev(c)
    out = F.gemm(dev(a), dev(b), cd, alpha=0.5, beta=-2.0, algo=algo)
    check(out, 0.5 * (a.astype(np.float64) @ b) - 2.0 * c, TF32_TOL if algo == "tf32" else FWD_TOL)
    np.testing.assert_array_equal(cd.numpy(), c)  # c is not modified


@pytest.mark.parametrize("algo", ["register_blocked", "warp_tiled", "tf32"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_gemm_unaligned_views(algo, ta, tb):
    """Inputs whose data pointer is 4 bytes off a 16-byte boundary take the scalar load path."""
    M, N, K = 130, 131, 132
    ba = torch.randn(M * K + 1, device="cuda")
    bb = torch.randn(K * N + 1, device="cuda")
    a_t = ba[1:].view(*((K, M) if ta else (M, K)))
    b_t = bb[1:].view(*((N, K) if tb else (K, N)))
    torch.cuda.synchronize()
    out = F.gemm(cc.from_dlpack(a_t), cc.from_dlpack(b_t), trans_a=ta, trans_b=tb, algo=algo)
    ref = _gemm_ref(host(a_t), host(b_t), ta, tb)
    check(out, ref, TF32_TOL if algo == "tf32" else FWD_TOL)


@pytest.mark.parametrize("algo", ["reference", "warp_tiled", "auto"])
def test_linear_and_backward(algo):
    rng = np.random.default_rng(5)
    x, w, bias = randn(rng, 37, 50), randn(rng, 21, 50), randn(rng, 21)
    dy = randn(rng, 37, 21)
    xt, wt, bt = tt(x, True), tt(w, True), tt(bias, True)
    y = torch.nn.functional.linear(xt, wt, bt)
    y.backward(tt(dy))
    check(F.linear(dev(x), dev(w), dev(bias), algo=algo), host(y), FWD_TOL)
    gx, gw, gb = F.linear_backward(dev(dy), dev(x), dev(w), algo=algo)
    check(gx, host(xt.grad), BWD_TOL)
    check(gw, host(wt.grad), BWD_TOL)
    check(gb, host(bt.grad), BWD_TOL)


def test_gemm_large_odd():
    rng = np.random.default_rng(11)
    a, b = randn(rng, 1000, 1000), randn(rng, 1000, 1000)
    check(F.gemm(dev(a), dev(b)), _gemm_ref(a, b, False, False), FWD_TOL)


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------

# name: (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = {
    "2x2s2": (2, 3, 8, 10, 2, 2, 0, 1, False),
    "3x3s2p1": (2, 3, 9, 11, 3, 2, 1, 1, False),
    "3x3s1": (1, 2, 7, 7, 3, 1, 1, 1, False),
    "ceil_mode": (2, 3, 9, 12, 3, 2, 1, 1, True),
    "ceil_2x2": (1, 2, 7, 9, 2, 2, 0, 1, True),
    "asym": (2, 2, 10, 13, (3, 2), (2, 3), (1, 1), 1, False),
    "dilation": (1, 3, 12, 13, 3, 2, 1, 2, False),
    "stride_gt_kernel": (1, 2, 11, 11, 2, 3, 0, 1, False),
    "kernel_eq_input": (2, 2, 5, 6, (5, 6), 1, 0, 1, False),
    "odd_large": (3, 5, 33, 31, 3, 2, 1, 1, True),
}
POOL_ALGOS = ["reference", "fast", "auto"]


@pytest.mark.parametrize("algo", POOL_ALGOS)
@pytest.mark.parametrize("name", list(POOL_CASES))
def test_max_pool2d(name, algo):
    N, C, H, W, k, s, p, d, ceil = POOL_CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = randn(rng, N, C, H, W)
    x[..., 0, :3] = 0.5  # ties: the first position wins
    xt = torch.tensor(x, device="cuda", requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    y, idx = F.max_pool2d(dev(x), k, s, p, d, ceil_mode=ceil, return_indices=True, algo=algo)
    np.testing.assert_array_equal(y.numpy(), host(yt))
    np.testing.assert_array_equal(idx.numpy(), host(it))
    dy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(dy, device="cuda"))
    dx = F.max_pool2d_backward(dev(dy), idx, x.shape)
    check(dx, host(xt.grad), BWD_TOL)


def test_max_pool2d_nan_wins():
    x = np.arange(2 * 16, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 3, 2] = np.nan
    xt = torch.tensor(x, device="cuda")
    yt, it = torch.nn.functional.max_pool2d(xt, 2, 2, return_indices=True)
    for algo in POOL_ALGOS:
        y, idx = F.max_pool2d(dev(x), 2, 2, return_indices=True, algo=algo)
        np.testing.assert_array_equal(y.numpy(), host(yt))
        np.testing.assert_array_equal(idx.numpy(), host(it))


@pytest.mark.parametrize("algo", POOL_ALGOS)
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("name", [n for n, c in POOL_CASES.items() if c[7] == 1])
def test_avg_pool2d(name, cip, algo):
    N, C, H, W, k, s, p, d, ceil = POOL_CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()) + cip)
    x = randn(rng, N, C, H, W)
    xt = tt(x, True)
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip)
    y = F.avg_pool2d(dev(x), k, s, p, ceil_mode=ceil, count_include_pad=cip, algo=algo)
    check(y, host(yt), FWD_TOL)
    dy = randn(rng, *yt.shape)
    yt.backward(tt(dy))
    dx = F.avg_pool2d_backward(dev(dy), x.shape, k, s, p, ceil_mode=ceil, count_include_pad=cip)
    check(dx, host(xt.grad), BWD_TOL)


def test_max_pool2d_backward_bad_index():
    dy = dev(np.ones((1, 1, 2, 2), np.float32))
    bad = cc.to_device(np.array([[[[0, 1, 2, 99]]]], dtype=np.int64).reshape(1, 1, 2, 2))
    with pytest.raises((IndexError, ValueError)):
        cc._backend().max_pool2d_backward(dy, bad, [1, 1, 4, 4])


ADAPTIVE_CASES = [((1, 5, 13, 13), 7), ((2, 3, 27, 27), 6), ((1, 3, 2, 2), 7), ((2, 7, 1, 1), (7, 7)),
                  ((3, 5, 9, 11), (4, None)), ((2, 9, 7, 7), 1), ((4, 64, 23, 17), (1, 1)), ((0, 3, 8, 8), 3)]


@pytest.mark.cuda
@pytest.mark.parametrize("algo", ["reference", "fast", "auto"])
@pytest.mark.parametrize("shape,out", ADAPTIVE_CASES, ids=[f"{s}-{o}" for s, o in ADAPTIVE_CASES])
def test_adaptive_avg_pool2d(shape, out, algo):
    rng = np.random.default_rng(zlib.crc32(f"{shape}{out}".encode()))
    x = randn(rng, *shape)
    xt = tt(x, True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, out)
    y = F.adaptive_avg_pool2d(dev(x), out, algo=algo)
    check(y, host(yt), FWD_TOL)
    dy = randn(rng, *yt.shape)
    yt.backward(tt(dy))
    check(F.adaptive_avg_pool2d_backward(dev(dy), x.shape), host(xt.grad), BWD_TOL)


@pytest.mark.cuda
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 5, 3, 3), (8, 16, 1, 1), (16, 6), (3, 64, 17, 15)], ids=str)
def test_batch_norm(shape, training):
    rng = np.random.default_rng(zlib.crc32(f"{shape}{training}".encode()))
    C = shape[1]
    x = randn(rng, *shape) * 3 + 2
    w, b, rm, rv = randn(rng, C), randn(rng, C), randn(rng, C), (rng.random(C) + 0.5).astype(np.float32)
    rm_t, rv_t = tt(rm), tt(rv)
    xt, wt, bt = tt(x, True), tt(w, True), tt(b, True)
    yt = torch.nn.functional.batch_norm(xt, rm_t, rv_t, wt, bt, training, 0.1, 1e-5)
    rm_d, rv_d = dev(rm), dev(rv)
    y, mean, invstd = F.batch_norm(dev(x), rm_d, rv_d, dev(w), dev(b), training, 0.1, 1e-5, return_stats=True)
    check(y, host(yt), FWD_TOL)
    check(rm_d, host(rm_t), FWD_TOL)  # updated in place on the device
    check(rv_d, host(rv_t), FWD_TOL)
    dy = randn(rng, *shape)
    yt.backward(tt(dy))
    gx, gw, gb = F.batch_norm_backward(dev(dy), dev(x), dev(w), mean, invstd, training)
    check(gx, host(xt.grad), BWD_TOL)
    check(gw, host(wt.grad), BWD_TOL)
    check(gb, host(bt.grad), BWD_TOL)


@pytest.mark.cuda
def test_vgg_bn_layer_on_cuda_matches_cpu():
    from convforge import models, nn

    rng = np.random.default_rng(5)
    cfg = (8, "M", 16, "M")
    nn.manual_seed(0)
    a = models.vgg(cfg, num_classes=4, input_size=20, hidden=8, dropout=0.0, batch_norm=True, pool_size=3)
    nn.manual_seed(0)
    b = models.vgg(cfg, num_classes=4, input_size=20, hidden=8, dropout=0.0, batch_norm=True, pool_size=3).to("cuda")
    x, labels = randn(rng, 3, 3, 20, 20), rng.integers(0, 4, 3)
    ca, cb = nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    la, lb = ca(a(x), labels), cb(b(dev(x)), labels)
    assert abs(la - lb) <= 1e-5 * abs(la)
    a.backward(ca.backward())
    b.backward(cb.backward())
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if name in ("features.0.bias", "features.4.bias"):  # conv biases before batch norm: zero but for rounding
            continue
        check(q.grad.numpy(), p.grad, BWD_TOL)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        check(sb[k], sa[k], FWD_TOL)


# ---------------------------------------------------------------------------------------------
# activations, loss, column sums
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 4, 1027, 1 << 20])
@pytest.mark.parametrize("fn", ["relu", "tanh", "sigmoid"])
def test_activations(fn, n):
    rng = np.random.default_rng(n)
    x, dy = randn(rng, n), randn(rng, n)
    xt = tt(x, True)
    yt = getattr(torch, fn)(xt)
    yt.backward(tt(dy))
    y = getattr(F, fn)(dev(x))
    check(y, host(yt), FWD_TOL)
    saved = dev(x) if fn == "relu" else y
    dx = getattr(F, fn + "_backward")(dev(dy), saved)
    check(dx, host(xt.grad), BWD_TOL)


def test_activations_unaligned_view():
    base = torch.randn(1030, device="cuda")
    v = base[1:1026]
    torch.cuda.synchronize()
    y = F.relu(cc.from_dlpack(v))
    np.testing.assert_array_equal(y.numpy(), host(torch.relu(v)))


@pytest.mark.parametrize("shape", [(1, 1), (5, 10), (64, 1000), (300, 7)])
def test_cross_entropy(shape):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    logits = randn(rng, *shape) * 3
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    lt = tt(logits, True)
    loss = torch.nn.functional.cross_entropy(lt, torch.tensor(labels, device="cuda"))
    loss.backward()
    got = F.cross_entropy(dev(logits), cc.to_device(labels))
    assert abs(got - loss.item()) <= FWD_TOL * max(1.0, abs(loss.item())) * 10
    check(F.cross_entropy_backward(dev(logits), cc.to_device(labels)), host(lt.grad), BWD_TOL)


def test_cross_entropy_bad_labels_on_device():
    logits = dev(np.zeros((3, 4), np.float32))
    labels = cc.to_device(np.array([0, 4, 1], np.int64))
    with pytest.raises(ValueError, match="labels"):
        F.cross_entropy(logits, labels)
    with pytest.raises(ValueError, match="labels"):
        cc._backend().cross_entropy_forward(logits, labels)  # the kernel's own check
    with pytest.raises(ValueError, match="labels"):
        cc._backend().cross_entropy_backward(logits, labels)


@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (1000, 3), (3, 1000)])
def test_sum_rows(shape):
    a = randn(np.random.default_rng(1), *shape)
    check(cc._backend().sum_rows(dev(a)), a.astype(np.float64).sum(0), FWD_TOL)


# ---------------------------------------------------------------------------------------------
# device arrays: exchange, mixing devices, allocator, errors, threads
# ---------------------------------------------------------------------------------------------

def test_device_array_basics():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = cc.to_device(x)
    assert d.shape == (3, 4) and d.dtype == np.float32 and d.ndim == 2 and d.size == 12
    assert d.device == "cuda:0" and isinstance(d, convforge.DeviceArray)
    np.testing.assert_array_equal(d.numpy(), x)
    np.testing.assert_array_equal(d.reshape(-1).numpy(), x.reshape(-1))
    np.testing.assert_array_equal(cc.to_device(x.T).numpy(), x.T)  # non-contiguous numpy input
    i = cc.to_device(np.array([1, 2, 3], np.int64))
    assert i.dtype == np.int64
    assert cc.get_device_capability(0) >= (8, 0)
    assert isinstance(cc.get_device_name(0), str)


def test_dlpack_to_torch_zero_copy():
    x = randn(np.random.default_rng(2), 5, 6)
    d = cc.to_device(x)
    t = torch.from_dlpack(d)
    assert t.device.type == "cuda" and t.data_ptr() == d.data_ptr
    np.testing.assert_array_equal(host(t), x)
    t2 = torch.as_tensor(d, device="cuda")  # through __cuda_array_interface__
    assert t2.data_ptr() == d.data_ptr
    del d
    np.testing.assert_array_equal(host(t), x)  # torch's reference keeps the memory alive


def test_torch_to_device_array_zero_copy():
    t = torch.randn(4, 7, device="cuda")
    d = cc.from_dlpack(t)
    assert d.data_ptr == t.data_ptr() and d.shape == (4, 7)
    np.testing.assert_array_equal(d.numpy(), host(t))
    t.add_(1.0)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(d.numpy(), host(t))  # shared memory
    y = F.relu(t)  # functional accepts torch CUDA tensors directly
    np.testing.assert_array_equal(y.numpy(), host(torch.relu(t)))
    nc = torch.randn(6, 5, device="cuda").T  # a strided view is copied
    np.testing.assert_array_equal(cc.from_dlpack(nc).numpy(), host(nc))
    i = torch.arange(5, device="cuda")
    assert cc.from_dlpack(i).dtype == np.int64


def test_roundtrip_through_torch_ops():
    x = randn(np.random.default_rng(4), 2, 3, 8, 8)
    w = randn(np.random.default_rng(5), 4, 3, 3, 3)
    y = F.conv2d(dev(x), dev(w), padding=1)
    t = torch.from_dlpack(y) * 2  # torch reads our output without a host sync
    back = cc.from_dlpack(t)
    check(back, 2 * host(torch.nn.functional.conv2d(tt(x), tt(w), padding=1)), FWD_TOL)


def test_mixing_cpu_and_gpu_is_an_error():
    x = np.ones((2, 3), np.float32)
    with pytest.raises((ValueError, TypeError), match="device|cuda|cpu"):
        F.relu_backward(x, cc.to_device(x))
    with pytest.raises((ValueError, TypeError)):
        F.gemm(cc.to_device(x), x.T.copy())
    with pytest.raises(TypeError):
        cc.from_dlpack(torch.ones(3))  # a CPU tensor is not a device array


def test_dtype_errors():
    with pytest.raises(TypeError, match="float32"):
        F.relu(cc.to_device(np.ones(3, np.float64)))


def test_allocator_reuses_blocks():
    x = dev(np.ones((256, 256), np.float32))
    for _ in range(3):
        F.relu(x)
    before = cc.memory_stats()
    for _ in range(50):
        y = F.relu(x)
        del y
    after = cc.memory_stats()
    assert after["num_device_mallocs"] == before["num_device_mallocs"]
    assert after["num_cache_hits"] >= before["num_cache_hits"] + 50
    cc.empty_cache()
    assert cc.memory_stats()["reserved_bytes"] <= after["reserved_bytes"]


def test_threads():
    rng = np.random.default_rng(9)
    a, b = randn(rng, 200, 300), randn(rng, 300, 150)
    ref = a.astype(np.float64) @ b
    errors = []

    def work():
        try:
            for _ in range(10):
                check(F.gemm(dev(a), dev(b)), ref, FWD_TOL)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_synchronize_and_build_info():
    cc.synchronize()
    info = cc.build_info()
    assert info["cuda_runtime_compiled"] > 0
    assert convforge.build_info()["cuda_available"]
