"""Numerical edge cases, as in PyTorch: NaN and Inf propagate; max pooling over a window with a
NaN gives NaN (and its index); a batch of zero images gives an empty result; a spatial size that
leaves no output position is a clear ValueError. Every algo, at every SIMD level the CPU has."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge.functional as F
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

CONV_FWD = [a["name"] for a in F.algos("conv2d_forward")]
CONV_BWD = [a["name"] for a in F.algos("conv2d_backward")]
POOL = [a["name"] for a in F.algos("pool2d")] + ["auto"]
GEMM = [a["name"] for a in F.algos("gemm")]


def same_specials(got, ref):
    """NaN where ref has NaN, the same infinities, and the finite rest close (float32 ref)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(ref), err_msg="+inf positions differ")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(ref), err_msg="-inf positions differ")
    fin = np.isfinite(ref)
    assert rel_error(got[fin], ref[fin]) <= BWD_TOL


def with_specials(rng, *shape):
    x = randn(rng, *shape)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=3, replace=False)
    flat[idx] = [np.nan, np.inf, -np.inf]
    return x


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------------------------------------
# NaN / Inf
# ---------------------------------------------------------------------------------------------

# Where a NaN/Inf weight or output gradient meets zero padding (0 * Inf, 0 * NaN), PyTorch's own
# answer depends on its backend (its forward multiplies by the padding zeros, its weight gradient
# does not always), and so do ours (im2col/implicit multiply, reference/direct skip padded taps).
# So specials in the weight or gradient are checked without padding, specials in x with padding.

@pytest.mark.parametrize("algo", CONV_FWD)
def test_conv2d_forward_propagates_nan_inf(rng, simd_level, algo):
    x, w, b = with_specials(rng, 2, 4, 9, 8), randn(rng, 6, 2, 3, 3), randn(rng, 6)
    kw = dict(stride=(1, 2), padding=1, groups=2)
    same_specials(F.conv2d(x, w, b, algo=algo, **kw), TF.conv2d(T(x), T(w), T(b), **kw).numpy())
    x, w = randn(rng, 2, 4, 9, 8), with_specials(rng, 6, 2, 3, 3)  # specials in the weight
    kw = dict(stride=(2, 1), dilation=(1, 2), groups=2)
    same_specials(F.conv2d(x, w, algo=algo, **kw), TF.conv2d(T(x), T(w), **kw).numpy())
    # 3x3 stride 1, one group (where Winograd runs as itself): specials in x, then in w.
    x, w = with_specials(rng, 2, 3, 8, 9), randn(rng, 4, 3, 3, 3)
    same_specials(F.conv2d(x, w, padding=1, algo=algo), TF.conv2d(T(x), T(w), padding=1).numpy())
    x, w = randn(rng, 2, 3, 8, 9), with_specials(rng, 4, 3, 3, 3)
    same_specials(F.conv2d(x, w, algo=algo), TF.conv2d(T(x), T(w)).numpy())


@pytest.mark.parametrize("algo", CONV_BWD)
def test_conv2d_backward_propagates_nan_inf(rng, simd_level, algo):
    for padding, special_x in [(1, True), (1, False), (0, False)]:
        x, w = randn(rng, 2, 3, 7, 7), randn(rng, 4, 3, 3, 3)
        if special_x:  # at fixed places: the first and last column and row
            x[0, 0, 3, 0], x[1, 2, 4, 6], x[1, 1, 0, 3] = np.inf, np.nan, -np.inf
        xt, wt = T(x).requires_grad_(), T(w).requires_grad_()
        bt = torch.zeros(4, requires_grad=True)
        yt = TF.conv2d(xt, wt, bt, padding=padding)
        gy = randn(rng, *yt.shape) if special_x else with_specials(rng, *yt.shape)
        yt.backward(T(gy))
        gx, gw, gb = F.conv2d_backward(gy, x, w, padding=padding, algo=algo)
        same_specials(gx, xt.grad.numpy())
        same_specials(gb, bt.grad.numpy())
        if special_x or padding == 0:
            same_specials(gw, wt.grad.numpy())


@pytest.mark.parametrize("algo", POOL)
def test_max_pool_nan_window_gives_nan_and_its_index(rng, simd_level, algo):
    x = randn(rng, 2, 3, 9, 10)
    x[0, 0, 0, 0] = np.nan         # top-left window
    x[0, 1, 4, 5] = np.nan         # an interior window (the vectorised path)
    x[1, 2, 8, 9] = np.nan         # the last window in ceil_mode
    x[1, 0, 3, 3] = np.inf
    x[1, 1, 2, 2] = -np.inf
    x[1, 1, 6, 6:9] = np.nan       # several NaNs in one window: the first, as torch
    for k, s, p, d, c in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False), (2, 3, 0, 1, True)]:
        yt, it = TF.max_pool2d(T(x), k, s, p, d, ceil_mode=c, return_indices=True)
        y, idx = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo=algo)
        np.testing.assert_array_equal(y, yt.numpy())  # equal_nan by default for arrays
        np.testing.assert_array_equal(idx, it.numpy())
        assert np.isnan(y).any()


def test_max_pool_all_minus_inf_window(rng):
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    for algo in POOL:
        y, idx = F.max_pool2d(x, 2, return_indices=True, algo=algo)
        yt, it = TF.max_pool2d(T(x), 2, return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(idx, it.numpy())


@pytest.mark.parametrize("algo", POOL)
def test_avg_pool_propagates_nan_inf(rng, simd_level, algo):
    x = with_specials(rng, 2, 3, 8, 9)
    for k, s, p, c, inc in [(2, 2, 0, False, True), (3, 2, 1, True, False), (3, 1, 1, False, True)]:
        same_specials(F.avg_pool2d(x, k, s, p, c, inc, algo=algo),
                      TF.avg_pool2d(T(x), k, s, p, c, inc).numpy())
    xt = T(randn(rng, 2, 3, 8, 9)).requires_grad_()
    yt = TF.avg_pool2d(xt, 3, 2, 1, True, False)
    gy = with_specials(rng, *yt.shape)
    yt.backward(T(gy))
    same_specials(F.avg_pool2d_backward(gy, xt.shape, 3, 2, 1, True, False), xt.grad.numpy())


def test_max_pool_backward_propagates_nan(rng):
    x = randn(rng, 1, 2, 6, 6)
    xt = T(x).requires_grad_()
    yt, it = TF.max_pool2d(xt, 2, return_indices=True)
    gy = with_specials(rng, *yt.shape)
    yt.backward(T(gy))
    same_specials(F.max_pool2d_backward(gy, it.numpy(), x.shape), xt.grad.numpy())


@pytest.mark.parametrize("algo", GEMM)
def test_gemm_propagates_nan_inf(rng, simd_level, algo):
    for M, N, K in [(5, 7, 9), (33, 40, 70), (100, 3, 300)]:
        a, b, c = with_specials(rng, M, K), randn(rng, K, N), randn(rng, M, N)
        same_specials(F.gemm(a, b, c, alpha=0.5, beta=2.0, algo=algo),
                      torch.addmm(T(c), T(a), T(b), beta=2.0, alpha=0.5).numpy())
        a, c = randn(rng, K, M), with_specials(rng, M, N)  # specials in c, transposed a
        same_specials(F.gemm(a, b, c, beta=-1.0, trans_a=True, algo=algo),
                      torch.addmm(T(c), T(a.T), T(b), beta=-1.0).numpy())


@pytest.mark.parametrize("algo", GEMM)
def test_gemm_beta_zero_ignores_nan_in_c_as_torch(rng, algo):
    """torch.addmm: 'If beta is 0, then input will be ignored, and nan and inf in it will not be propagated.'"""
    a, b = randn(rng, 20, 30), randn(rng, 30, 17)
    c = np.full((20, 17), np.nan, np.float32)
    out = F.gemm(a, b, c, beta=0.0, algo=algo)
    ref = torch.addmm(T(c), T(a), T(b), beta=0.0).numpy()
    assert np.isfinite(out).all() and np.isfinite(ref).all()
    assert rel_error(out, ref) <= FWD_TOL


def test_linear_propagates_nan_inf(rng):
    x, w, b = with_specials(rng, 6, 20), randn(rng, 9, 20), randn(rng, 9)
    same_specials(F.linear(x, w, b), TF.linear(T(x), T(w), T(b)).numpy())


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations_special_values_match_torch(simd_level, name, ieee_subnormals):  # 1e-45 is subnormal
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 88.0, -88.0, 100.0, -100.0,
                  1e30, -1e30, 3.4e38, -3.4e38, 0.5, -0.5] * 3, np.float32)  # *3: past one SIMD vector
    y = getattr(F, name)(v)
    ref = getattr(torch, name)(T(v)).numpy()
    same_specials(y, ref)
    gy = np.linspace(-2, 2, v.size).astype(np.float32)
    gy[5] = np.nan
    gy[7] = np.inf
    back = getattr(F, name + "_backward")
    vt = T(v).requires_grad_()
    getattr(torch, name)(vt).backward(T(gy))
    same_specials(back(gy, v if name == "relu" else y), vt.grad.numpy())


def test_cross_entropy_special_logits_match_torch():
    logits = np.array([[np.inf, 0, 1], [0, np.nan, 1], [-np.inf, 0, 1], [1e30, -1e30, 0],
                       [80, 90, 100], [-100, -90, -80]], np.float32)
    labels = np.array([0, 1, 1, 0, 0, 2])
    for rows in ([0], [1], [2], [3], [4, 5], [2, 3, 4, 5]):
        lg, lb = logits[rows], labels[rows]
        ref_t = T(lg).requires_grad_()
        loss = TF.cross_entropy(ref_t, torch.from_numpy(lb))
        loss.backward()
        got = F.cross_entropy(lg, lb)
        same_specials(np.float32(got), np.float32(loss.item()))
        same_specials(F.cross_entropy_backward(lg, lb), ref_t.grad.numpy())


# ---------------------------------------------------------------------------------------------
# a batch of zero images / empty matrices
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", CONV_FWD)
def test_conv2d_empty_batch(rng, algo):
    x, w, b = np.zeros((0, 4, 7, 6), np.float32), randn(rng, 6, 2, 3, 3), randn(rng, 6)
    y = F.conv2d(x, w, b, padding=1, groups=2, algo=algo)
    assert y.shape == tuple(TF.conv2d(T(x), T(w), T(b), padding=1, groups=2).shape) == (0, 6, 7, 6)
    assert y.dtype == np.float32


@pytest.mark.parametrize("algo", CONV_BWD)
def test_conv2d_backward_empty_batch(rng, algo):
    x, w = np.zeros((0, 4, 7, 6), np.float32), randn(rng, 6, 2, 3, 3)
    gx, gw, gb = F.conv2d_backward(np.zeros((0, 6, 7, 6), np.float32), x, w, padding=1, groups=2, algo=algo)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros_like(w))  # torch: zeros, written (not poison)
    np.testing.assert_array_equal(gb, np.zeros(6, np.float32))


@pytest.mark.parametrize("algo", POOL)
def test_pool_empty_batch(algo):
    x = np.zeros((0, 3, 8, 7), np.float32)
    y, idx = F.max_pool2d(x, 3, 2, 1, 1, True, return_indices=True, algo=algo)
    yt = TF.max_pool2d(T(x), 3, 2, 1, 1, True)
    assert y.shape == idx.shape == tuple(yt.shape)
    assert F.avg_pool2d(x, 3, 2, 1, True, algo=algo).shape == tuple(TF.avg_pool2d(T(x), 3, 2, 1, True).shape)
    assert F.max_pool2d_backward(np.zeros(y.shape, np.float32), idx, x.shape).shape == x.shape
    assert F.avg_pool2d_backward(np.zeros(y.shape, np.float32), x.shape, 3, 2, 1, True).shape == x.shape


@pytest.mark.parametrize("algo", GEMM)
def test_gemm_empty_and_k_zero(rng, algo):
    assert F.gemm(np.zeros((0, 5), np.float32), randn(rng, 5, 4), algo=algo).shape == (0, 4)
    assert F.gemm(randn(rng, 3, 5), np.zeros((5, 0), np.float32), algo=algo).shape == (3, 0)
    # K = 0: the product is zero; beta * c remains, as torch.addmm
    c = randn(rng, 3, 4)
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(F.gemm(a, b, algo=algo), np.zeros((3, 4), np.float32))
    np.testing.assert_allclose(F.gemm(a, b, c, beta=-2.0, algo=algo),
                               torch.addmm(T(c), T(a), T(b), beta=-2.0).numpy())


def test_linear_and_activations_empty(rng):
    w, b = randn(rng, 5, 4), randn(rng, 5)
    x = np.zeros((0, 4), np.float32)
    assert F.linear(x, w, b).shape == (0, 5)
    assert F.linear(np.zeros((2, 0, 4), np.float32), w, b).shape == (2, 0, 5)
    gx, gw, gb = F.linear_backward(np.zeros((0, 5), np.float32), x, w)
    assert gx.shape == (0, 4)
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(5, np.float32))
    # in_features = 0: x @ w.T is zero, plus the bias (torch: the same)
    y = F.linear(np.zeros((3, 0), np.float32), np.zeros((5, 0), np.float32), b)
    np.testing.assert_array_equal(y, TF.linear(torch.zeros(3, 0), torch.zeros(5, 0), T(b)).numpy())
    for name in ["relu", "tanh", "sigmoid"]:
        e = np.zeros((0, 3), np.float32)
        assert getattr(F, name)(e).shape == (0, 3)
        assert getattr(F, name + "_backward")(e, e).shape == (0, 3)


def test_cross_entropy_empty_batch_is_a_clear_error():
    # torch returns nan (a mean over nothing); convforge says so instead
    with pytest.raises(ValueError, match="batch is empty"):
        F.cross_entropy(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="batch is empty"):
        F.cross_entropy_backward(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))


# ---------------------------------------------------------------------------------------------
# no output position: a clear error, where torch errors too
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xs, ws, kw", [
    ((1, 3, 2, 2), (4, 3, 3, 3), {}),
    ((1, 3, 4, 9), (4, 3, 5, 3), dict(padding=0)),
    ((1, 3, 4, 4), (4, 3, 3, 3), dict(dilation=2)),                 # effective 5x5
    ((1, 3, 3, 3), (4, 3, 3, 3), dict(padding=(0, 1), dilation=(2, 1))),
    ((0, 3, 2, 2), (4, 3, 3, 3), {}),                               # even with an empty batch
])
def test_conv2d_no_output_position(rng, xs, ws, kw):
    x, w = np.ones(xs, np.float32), np.ones(ws, np.float32)
    with pytest.raises(RuntimeError):
        TF.conv2d(T(x), T(w), **kw)
    for algo in CONV_FWD:
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.conv2d(x, w, algo=algo, **kw)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d_backward(np.ones((xs[0], ws[0], 1, 1), np.float32), x, w, **kw)


@pytest.mark.parametrize("xs, k, s, p, d", [
    ((1, 2, 1, 1), 2, None, 0, 1),
    ((1, 2, 3, 8), (4, 2), None, 0, 1),
    ((1, 2, 5, 5), 3, 1, 0, 3),   # effective 7
    ((0, 2, 1, 5), 2, 1, 0, 1),
])
def test_pool_no_output_position(xs, k, s, p, d):
    x = np.ones(xs, np.float32)
    with pytest.raises(RuntimeError):
        TF.max_pool2d(T(x), k, s, p, d)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(x, k, s, p, d)
    if d == 1:
        with pytest.raises(RuntimeError):
            TF.avg_pool2d(T(x), k, s, p)
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.avg_pool2d(x, k, s, p)
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.avg_pool2d_backward(np.ones((xs[0], xs[1], 1, 1), np.float32), xs, k, s, p)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv_output_size(xs[2], k if isinstance(k, int) else k[0], 1, p, d)


def test_no_warnings_from_specials(rng):
    """NaN/Inf inputs do not raise floating-point warnings or errors from our side."""
    x = with_specials(rng, 1, 2, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.relu(x), F.max_pool2d(x, 2), F.avg_pool2d(x, 2), F.conv2d(x, randn(rng, 2, 2, 3, 3))
