"""Property-based tests (hypothesis) against PyTorch, for every op.

Valid geometries drawn at random (stride, padding incl. "same"/"valid", dilation, groups,
ceil_mode, count_include_pad, odd sizes, batch 0 and 1, every algo and SIMD level) must match
torch.nn.functional / autograd in float64: ||out - ref|| / ||ref|| <= 1e-5 forward, 1e-4
backward. Geometries and arguments drawn without regard to validity must either match PyTorch
or raise ValueError/TypeError - never crash - and wherever PyTorch refuses, convforge refuses.

Example counts: the "ci" profile (default) runs 40 examples per property; HYPOTHESIS_PROFILE=dev
runs 1000 (about a minute or two on 2 cores); "quick" runs 10.
"""
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convforge.functional as F
from convforge import _C
from conftest import BWD_TOL, FWD_TOL, rel_error

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.filter_too_much, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("quick", max_examples=10, **_COMMON)
settings.register_profile("dev", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

LEVELS = _C._simd_levels()
CONV_FWD = [a["name"] for a in F.algos("conv2d_forward")]
CONV_BWD = [a["name"] for a in F.algos("conv2d_backward")]
POOL = [a["name"] for a in F.algos("pool2d")] + ["auto"]
GEMM = [a["name"] for a in F.algos("gemm")]
CLEAN = (ValueError, TypeError)

seeds = st.integers(0, 2**32 - 1)
levels = st.sampled_from(LEVELS)


class simd:
    """Runs a block at one SIMD level, restoring the previous one."""

    def __init__(self, level):
        self.level = level

    def __enter__(self):
        self.prev = _C.simd_level()
        _C._set_simd_level(self.level)

    def __exit__(self, *exc):
        _C._set_simd_level(self.prev)


def data(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def close(out, ref, tol, absref=None):
    """rel_error(out, ref) <= tol (tests/conftest.py). Two allowances for what float32 cannot
    do: a reference below float32's range (rounded to float32 first, e.g. softmax's 1e-68),
    and cancellation (a tiny result of large terms: then the error is measured against absref,
    the same op on absolute values, 10x tighter)."""
    err = rel_error(out, ref)
    if err <= tol or rel_error(out, np.asarray(ref).astype(np.float32)) <= tol:
        return True
    if absref is not None:
        num = np.linalg.norm(np.asarray(out, np.float64) - ref)
        if np.isfinite(num) and num <= 0.1 * tol * np.linalg.norm(absref):
            return True
    raise AssertionError(f"relative error {err:.3g} > {tol}")


def torch_outcome(fn):
    """fn()'s result, or the exception PyTorch raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except Exception as e:  # noqa: BLE001 - any refusal by torch counts
        return e


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    C, K = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if kind == "same":
        stride = (1, 1)
        padding, ph, pw = "same", (dil[0] * (R - 1)) // 2, (dil[1] * (S - 1)) // 2
    elif kind == "valid":
        padding, ph, pw = "valid", 0, 0
    elif kind == "int":
        ph = pw = draw(st.integers(0, 3))
        padding = ph
    else:
        ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        padding = (ph, pw)
    H = max(1, dil[0] * (R - 1) + 1 - 2 * ph) + draw(st.integers(0, 7))
    W = max(1, dil[1] * (S - 1) + 1 - 2 * pw) + draw(st.integers(0, 7))
    N = draw(st.sampled_from([0, 1, 1, 2, 3]))
    kw = dict(stride=stride if draw(st.booleans()) else stride[0] if stride[0] == stride[1] else stride,
              padding=padding, dilation=dil, groups=groups)
    return (N, C, H, W), (K, C // groups, R, S), kw


@given(case=conv_cases(), algo=st.sampled_from(CONV_FWD), level=levels, bias=st.booleans(),
       seed=seeds)
def test_conv2d_forward_matches_torch(case, algo, level, bias, seed):
    xs, ws, kw = case
    x, w, b = data(seed, *xs), data(seed + 1, *ws), (data(seed + 2, ws[0]) if bias else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = TF.conv2d(t64(x), t64(w), None if b is None else t64(b), **kw).numpy()
    with simd(level):
        y = F.conv2d(x, w, b, algo=algo, **kw)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert rel_error(y, ref) <= FWD_TOL


@given(case=conv_cases(), algo=st.sampled_from(CONV_BWD), level=levels, seed=seeds,
       mask=st.sampled_from([(True, True, True), (True, False, False), (False, True, False),
                             (False, False, True), (False, True, True)]))
def test_conv2d_backward_matches_torch(case, algo, level, seed, mask):
    xs, ws, kw = case
    x, w, b = data(seed, *xs), data(seed + 1, *ws), data(seed + 2, ws[0])
    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yt = TF.conv2d(xt, wt, bt, **kw)
    gy = data(seed + 3, *yt.shape)
    yt.backward(t64(gy))
    with simd(level):
        got = F.conv2d_backward(gy, x, w, algo=algo, output_mask=mask, **kw)
    for want, g, ref in zip(mask, got, (xt.grad, wt.grad, bt.grad)):
        if want:
            assert rel_error(g, ref.numpy()) <= BWD_TOL
        else:
            assert g is None


small = st.integers(-2, 6)


@given(xs=st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 7), st.integers(0, 7)),
       ws=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
       stride=st.one_of(small, st.tuples(small, small)),
       padding=st.one_of(small, st.tuples(small, small), st.sampled_from(["same", "valid", "full"])),
       dilation=st.one_of(small, st.tuples(small, small)), groups=small, seed=seeds)
def test_conv2d_any_geometry_is_torch_or_clean_error(xs, ws, stride, padding, dilation, groups, seed):
    x, w = data(seed, *xs), data(seed + 1, *ws)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ref = torch_outcome(lambda: TF.conv2d(t64(x), t64(w), **kw).numpy())
    try:
        y = F.conv2d(x, w, **kw)
    except CLEAN as e:
        if not isinstance(ref, Exception):
            # Stricter than torch only on zero-size channels / filters / planes (torch returns
            # an empty or all-zero result there); a clear message names the rule.
            assert min(xs[1:]) == 0 or min(ws) == 0, f"torch accepts {xs} {ws} {kw}, we raised {e}"
            assert "must be positive" in str(e)
        return
    assert not isinstance(ref, Exception), f"torch refused {xs} {ws} {kw} ({ref}) but we returned {y.shape}"
    assert rel_error(y, ref) <= FWD_TOL


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------

@st.composite
def pool_cases(draw, with_dilation=True):
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    effr, effs = dil[0] * (R - 1) + 1, dil[1] * (S - 1) + 1
    ph, pw = draw(st.integers(0, R // 2)), draw(st.integers(0, S // 2))
    H = max(1, effr - 2 * ph) + draw(st.integers(0, 9))
    W = max(1, effs - 2 * pw) + draw(st.integers(0, 9))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    N, C = draw(st.sampled_from([0, 1, 1, 2, 3])), draw(st.integers(1, 3))
    kernel = (R, S) if R != S or draw(st.booleans()) else R
    padding = (ph, pw) if ph != pw or draw(st.booleans()) else ph
    dilation = dil if dil[0] != dil[1] or draw(st.booleans()) else dil[0]
    ceil = draw(st.booleans())
    try:  # a dilated window that sees no input pixel is refused by design (torch gives -inf)
        _C.pool2d_geometry((N, C, H, W), (R, S), stride or (R, S), (ph, pw), dil, ceil)
    except ValueError:
        assume(False)
    return (N, C, H, W), kernel, stride, padding, dilation, ceil


@given(case=pool_cases(), algo=st.sampled_from(POOL), level=levels, seed=seeds)
def test_max_pool2d_matches_torch(case, algo, level, seed):
    xs, k, s, p, d, ceil = case
    x = data(seed, *xs)
    xt = t64(x, True)
    yt, it = TF.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    with simd(level):
        y, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True, algo=algo)
        np.testing.assert_array_equal(F.max_pool2d(x, k, s, p, d, ceil, algo=algo), y)
    np.testing.assert_array_equal(y, yt.detach().numpy().astype(np.float32))  # a max is exact
    np.testing.assert_array_equal(idx, it.numpy())
    gy = data(seed + 1, *y.shape)
    yt.backward(t64(gy))
    assert rel_error(F.max_pool2d_backward(gy, idx, x.shape), xt.grad.numpy()) <= BWD_TOL


@given(case=pool_cases(with_dilation=False), algo=st.sampled_from(POOL), level=levels,
       include_pad=st.booleans(), seed=seeds)
def test_avg_pool2d_matches_torch(case, algo, level, include_pad, seed):
    xs, k, s, p, _, ceil = case
    x = data(seed, *xs)
    xt = t64(x, True)
    yt = TF.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    with simd(level):
        y = F.avg_pool2d(x, k, s, p, ceil, include_pad, algo=algo)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    gy = data(seed + 1, *y.shape)
    yt.backward(t64(gy))
    with simd(level):
        gx = F.avg_pool2d_backward(gy, x.shape, k, s, p, ceil, include_pad)
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL


@given(xs=st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 7), st.integers(0, 7)),
       kernel=st.one_of(small, st.tuples(small, small)),
       stride=st.one_of(st.none(), small, st.tuples(small, small)),
       padding=st.one_of(small, st.tuples(small, small)),
       dilation=st.one_of(small, st.tuples(small, small)), ceil=st.booleans(),
       avg=st.booleans(), seed=seeds)
def test_pool_any_geometry_is_torch_or_clean_error(xs, kernel, stride, padding, dilation, ceil,
                                                   avg, seed):
    x = data(seed, *xs)
    if avg:
        ref = torch_outcome(lambda: TF.avg_pool2d(t64(x), kernel, stride, padding, ceil).numpy())
        call = lambda: F.avg_pool2d(x, kernel, stride, padding, ceil)  # noqa: E731
    else:
        ref = torch_outcome(lambda: TF.max_pool2d(t64(x), kernel, stride, padding, dilation, ceil).numpy())
        call = lambda: F.max_pool2d(x, kernel, stride, padding, dilation, ceil)  # noqa: E731
    try:
        y = call()
    except CLEAN as e:
        if not isinstance(ref, Exception):
            msg = str(e)
            # Stricter than torch by design: windows that see no input (torch: -inf) and
            # zero-size planes/channels (torch: empty output).
            # torch skips the size checks on an empty batch.
            assert ("no input pixel" in msg or min(xs[1:]) == 0 or xs[0] == 0
                    or (not avg and np.isinf(ref).any())), f"torch accepts, we raised {e}"
        return
    assert not isinstance(ref, Exception), f"torch refused ({ref}) but we returned {y.shape}"
    assert rel_error(y, ref) <= FWD_TOL


# ---------------------------------------------------------------------------------------------
# GEMM and linear
# ---------------------------------------------------------------------------------------------

dims = st.one_of(st.integers(1, 40), st.sampled_from([0, 1, 7, 33, 65, 100, 129, 257]))


@given(M=dims, N=dims, K=dims, ta=st.booleans(), tb=st.booleans(), algo=st.sampled_from(GEMM),
       level=levels, with_c=st.booleans(), alpha=st.sampled_from([1.0, 0.0, -0.5, 2.25]),
       beta=st.sampled_from([0.0, 1.0, -1.5]), seed=seeds)
def test_gemm_matches_float64(M, N, K, ta, tb, algo, level, with_c, alpha, beta, seed):
    a = data(seed, *((K, M) if ta else (M, K)))
    b = data(seed + 1, *((N, K) if tb else (K, N)))
    c = data(seed + 2, M, N) if with_c else None
    with simd(level):
        out = F.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb, algo=algo)
    opa, opb = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    ref, absref = alpha * (opa @ opb), abs(alpha) * (abs(opa) @ abs(opb))
    if with_c:
        ref, absref = ref + beta * c, absref + abs(beta * c)
    assert out.shape == (M, N)
    assert close(out, ref, FWD_TOL, absref)


@given(lead=st.lists(st.integers(0, 5), min_size=0, max_size=2), fin=dims, fout=dims,
       bias=st.booleans(), algo=st.sampled_from(GEMM), seed=seeds)
def test_linear_forward_backward_match_torch(lead, fin, fout, bias, algo, seed):
    x, w = data(seed, *lead, fin), data(seed + 1, fout, fin)
    b = data(seed + 2, fout) if bias else None
    xt, wt = t64(x, True), t64(w, True)
    bt = t64(b, True) if bias else None
    yt = TF.linear(xt, wt, bt)
    absref = TF.linear(xt.abs(), wt.abs(), None if b is None else bt.abs()).detach().numpy()
    assert close(F.linear(x, w, b, algo=algo), yt.detach().numpy(), FWD_TOL, absref)
    if x.ndim == 1:  # linear_backward takes (*, in) with at least one leading dim
        return
    gy = data(seed + 3, *yt.shape)
    yt.backward(t64(gy))
    gx, gw, gb = F.linear_backward(gy, x, w, algo=algo)
    g64, x64, w64 = (abs(v.astype(np.float64)) for v in (gy, x, w))
    rows = int(np.prod(lead))
    g2, x2 = g64.reshape(rows, fout), x64.reshape(rows, fin)
    assert close(gx, xt.grad.numpy(), BWD_TOL, g64 @ w64)
    assert close(gw, wt.grad.numpy(), BWD_TOL, g2.T @ x2)
    assert close(gb, gy.astype(np.float64).reshape(rows, fout).sum(0), BWD_TOL, g2.sum(0))


shapes2 = st.tuples(st.integers(0, 6), st.integers(0, 6))


@given(a=shapes2, b=shapes2, c=st.one_of(st.none(), shapes2), ta=st.booleans(), tb=st.booleans(),
       xs=st.lists(st.integers(0, 4), max_size=3), ws=shapes2, seed=seeds)
def test_gemm_linear_any_shapes_are_torch_or_clean_error(a, b, c, ta, tb, xs, ws, seed):
    A, B = data(seed, *a), data(seed + 1, *b)
    Cm = data(seed + 2, *c) if c is not None else None
    ref = torch_outcome(lambda: torch.addmm(t64(Cm), t64(A.T if ta else A), t64(B.T if tb else B),
                                            beta=1.0, alpha=1.0).numpy() if c is not None
                        else (t64(A.T if ta else A) @ t64(B.T if tb else B)).numpy())
    try:
        out = F.gemm(A, B, Cm, beta=1.0, trans_a=ta, trans_b=tb)
        # we require c to have exactly op(a) @ op(b)'s shape; addmm also broadcasts c
        assert not isinstance(ref, Exception), f"torch refused ({ref})"
        assert rel_error(out, ref) <= FWD_TOL
    except CLEAN:
        assert isinstance(ref, Exception) or (c is not None and ref.shape != c), "torch accepted"
    x, w = data(seed + 3, *xs), data(seed + 4, *ws)
    ref = torch_outcome(lambda: TF.linear(t64(x), t64(w)).numpy())
    try:
        y = F.linear(x, w)
    except CLEAN:
        assert isinstance(ref, Exception) or x.ndim == 0, f"torch accepted linear {xs} {ws}"
        return
    assert not isinstance(ref, Exception)
    assert rel_error(y, ref) <= FWD_TOL


# ---------------------------------------------------------------------------------------------
# activations and cross-entropy
# ---------------------------------------------------------------------------------------------

ACTS = {"relu": (F.relu, F.relu_backward, torch.relu, "x"),
        "tanh": (F.tanh, F.tanh_backward, torch.tanh, "y"),
        "sigmoid": (F.sigmoid, F.sigmoid_backward, torch.sigmoid, "y")}


@given(name=st.sampled_from(sorted(ACTS)), shape=st.lists(st.integers(0, 40), min_size=1, max_size=4),
       scale=st.sampled_from([1e-3, 1.0, 5.0, 30.0]), level=levels, seed=seeds)
def test_activations_match_torch(name, shape, scale, level, seed):
    fwd, bwd, tfn, saved = ACTS[name]
    x = data(seed, *shape) * np.float32(scale)
    gy = data(seed + 1, *shape)
    with simd(level):
        y = fwd(x)
        gx = bwd(gy, x if saved == "x" else y)
    assert close(y, tfn(t64(x)).numpy(), FWD_TOL)
    # The backward takes the float32 forward output (as torch's tanh/sigmoid backward do):
    # its reference is the formula on that y, in float64 (1 - y rounds when y is near 1).
    y64, g64 = y.astype(np.float64), gy.astype(np.float64)
    ref = {"relu": g64 * (x > 0), "tanh": g64 * (1 - y64 * y64), "sigmoid": g64 * y64 * (1 - y64)}[name]
    assert close(gx, ref, BWD_TOL)


@given(n=st.integers(1, 40), classes=st.integers(1, 50), scale=st.sampled_from([1e-2, 1.0, 10.0, 300.0]),
       seed=seeds)
def test_cross_entropy_matches_torch(n, classes, scale, seed):
    logits = data(seed, n, classes) * np.float32(scale)
    labels = np.random.default_rng(seed).integers(0, classes, n)
    lt = t64(logits, True)
    loss = TF.cross_entropy(lt, torch.from_numpy(labels))
    loss.backward()
    assert close(np.float64(F.cross_entropy(logits, labels)), loss.item(), FWD_TOL)
    assert close(F.cross_entropy_backward(logits, labels), lt.grad.numpy(), BWD_TOL)


@given(n=st.integers(0, 5), classes=st.integers(0, 5), labels=st.lists(st.integers(-3, 7), max_size=6),
       seed=seeds)
def test_cross_entropy_any_labels_torch_or_clean_error(n, classes, labels, seed):
    logits, lab = data(seed, n, classes), np.array(labels, dtype=np.int64)
    ref = torch_outcome(lambda: TF.cross_entropy(t64(logits), torch.from_numpy(lab)).item())
    try:
        got = F.cross_entropy(logits, lab)
    except CLEAN:
        # torch gives nan for an empty batch; we call that an error
        assert isinstance(ref, Exception) or n == 0, f"torch accepted {logits.shape} {labels}"
        return
    assert not isinstance(ref, Exception), f"torch refused ({ref})"
    assert rel_error(np.float64(got), ref) <= FWD_TOL


# ---------------------------------------------------------------------------------------------
# any op: wrong dtype -> TypeError, wrong rank -> ValueError
# ---------------------------------------------------------------------------------------------

BAD_DTYPES = [np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64]

OPS = {  # name: (call taking the arrays, the float32 arrays it needs)
    "conv2d": (lambda a: F.conv2d(*a), [(1, 2, 5, 5), (3, 2, 3, 3)]),
    "conv2d_backward": (lambda a: F.conv2d_backward(*a), [(1, 3, 3, 3), (1, 2, 5, 5), (3, 2, 3, 3)]),
    "max_pool2d": (lambda a: F.max_pool2d(a[0], 2), [(1, 2, 4, 4)]),
    "avg_pool2d": (lambda a: F.avg_pool2d(a[0], 2), [(1, 2, 4, 4)]),
    "avg_pool2d_backward": (lambda a: F.avg_pool2d_backward(a[0], (1, 2, 4, 4), 2), [(1, 2, 2, 2)]),
    "gemm": (lambda a: F.gemm(*a), [(3, 4), (4, 5)]),
    "linear": (lambda a: F.linear(*a), [(3, 4), (5, 4)]),
    "linear_backward": (lambda a: F.linear_backward(*a), [(3, 5), (3, 4), (5, 4)]),
    "relu": (lambda a: F.relu(*a), [(3, 4)]),
    "tanh_backward": (lambda a: F.tanh_backward(*a), [(3, 4), (3, 4)]),
    "cross_entropy": (lambda a: F.cross_entropy(a[0], np.array([0, 1, 2])), [(3, 4)]),
}


@given(op=st.sampled_from(sorted(OPS)), which=st.integers(0, 2), dtype=st.sampled_from(BAD_DTYPES),
       rank_change=st.sampled_from([-1, 1, 2]), kind=st.sampled_from(["dtype", "rank", "list"]))
def test_bad_dtype_or_rank_is_clean_error(op, which, dtype, rank_change, kind):
    call, shapes = OPS[op]
    arrays = [np.ones(s, np.float32) for s in shapes]
    i = which % len(arrays)
    if kind == "dtype":
        arrays[i] = arrays[i].astype(dtype)
        expected = TypeError
    elif kind == "list":
        arrays[i] = arrays[i].tolist()
        expected = TypeError
    else:
        shape = arrays[i].shape
        shape = shape[:-1] if rank_change < 0 else shape + (1,) * rank_change
        arrays[i] = np.ones(shape, np.float32)
        expected = (ValueError, TypeError)
    if kind == "rank" and op in ("relu",):  # elementwise ops take any rank
        call(arrays)
        return
    with pytest.raises(expected):
        call(arrays)
