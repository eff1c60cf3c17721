"""max_pool2d and avg_pool2d, forward and backward, every algo, against torch.nn.functional."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge.functional as F
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

ALGOS = [a["name"] for a in F.algos("pool2d")] + ["auto"]

# (input shape, kernel, stride, padding, dilation, ceil_mode)
CASES = [
    ((2, 3, 8, 8), 2, 2, 0, 1, False),              # the common 2x2/2
    ((2, 3, 9, 11), 3, 2, 0, 1, False),             # 3x3/2, overlapping windows
    ((1, 2, 7, 9), 3, 1, 0, 1, False),              # 3x3/1, batch 1
    ((2, 2, 10, 12), 2, 3, 0, 1, False),            # stride larger than the kernel
    ((2, 3, 9, 8), 3, 2, 1, 1, False),              # padding
    ((1, 2, 13, 11), 3, 1, 1, 2, False),            # dilation with padding
    ((2, 2, 12, 15), (2, 3), (3, 2), 0, (3, 2), False),  # dilation per axis
    ((2, 2, 10, 9), 3, 2, 0, 1, True),              # ceil_mode adds a row and a column
    ((1, 3, 7, 7), 2, 2, 1, 1, True),               # ceil_mode with padding
    ((1, 2, 8, 10), 3, 2, 1, 1, True),              # ceil_mode where the last window runs past the padding
    ((2, 1, 5, 5), (3, 2), (1, 2), (1, 0), 1, False),  # non-square kernel, stride and padding
    ((2, 3, 5, 7), (5, 7), 1, 0, 1, False),         # kernel equal to the input
    ((3, 2, 6, 5), 1, 1, 0, 1, False),              # 1x1
    ((1, 2, 5, 601), 3, 2, 1, 1, False),            # a row longer than the kernels' blocks of outputs
    ((1, 2, 4, 600), 2, 2, 0, 1, False),
    ((4, 8, 33, 31), 2, 2, 0, 1, True),             # large enough to run threaded
    ((2, 4, 17, 19), 3, 2, 1, 1, False),
    ((2, 3, 1, 1), 2, 2, 0, 1, True),               # ceil_mode, a window wider than the input: one output
    ((1, 2, 3, 2), 4, 3, 1, 1, True),               # ... with padding, and rows and columns alike
]  # (tests below pick cases by index: add new ones at the end)
AVG_CASES = [c for c in CASES if c[4] == 1]


def _ids(cases):
    return [f"{s}-k{k}-s{st}-p{p}-d{d}-ceil{c}" for s, k, st, p, d, c in cases]


def _torch_max(x, k, s, p, d, c):
    xt = torch.from_numpy(x).requires_grad_(True)
    y, idx = TF.max_pool2d(xt, k, s, p, d, ceil_mode=c, return_indices=True)
    return xt, y, idx


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape,k,s,p,d,c", CASES, ids=_ids(CASES))
def test_max_pool_matches_torch(rng, algo, shape, k, s, p, d, c):
    x = randn(rng, *shape)
    xt, yt, it = _torch_max(x, k, s, p, d, c)
    y, idx = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo=algo)
    np.testing.assert_array_equal(y, yt.detach().numpy())  # a max is exact
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, p, d, c, algo=algo), y)

    g = randn(rng, *y.shape)
    yt.backward(torch.from_numpy(g))
    assert rel_error(F.max_pool2d_backward(g, idx, x.shape), xt.grad.numpy()) <= BWD_TOL


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,d,c", AVG_CASES, ids=_ids(AVG_CASES))
def test_avg_pool_matches_torch(rng, algo, count_include_pad, shape, k, s, p, d, c):
    x = randn(rng, *shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = TF.avg_pool2d(xt, k, s, p, ceil_mode=c, count_include_pad=count_include_pad)
    y = F.avg_pool2d(x, k, s, p, c, count_include_pad, algo=algo)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL

    g = randn(rng, *y.shape)
    yt.backward(torch.from_numpy(g))
    dx = F.avg_pool2d_backward(g, x.shape, k, s, p, c, count_include_pad)
    assert rel_error(dx, xt.grad.numpy()) <= BWD_TOL


@pytest.mark.parametrize("shape,k,s,p,d,c", CASES, ids=_ids(CASES))
def test_fast_is_bitwise_reference_at_every_simd_level(rng, simd_level, shape, k, s, p, d, c):
    # Same order of operations per output, so the vectorised copies give the reference's bits.
    x = randn(rng, *shape)
    ref = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo="reference")
    fast = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo="fast")
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_array_equal(fast[1], ref[1])
    if d == 1:
        for cip in (True, False):
            np.testing.assert_array_equal(F.avg_pool2d(x, k, s, p, c, cip, algo="fast"),
                                          F.avg_pool2d(x, k, s, p, c, cip, algo="reference"))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape,k,s,p,d,c", [CASES[0], CASES[1], CASES[4], CASES[5], CASES[13]],
                         ids=_ids([CASES[0], CASES[1], CASES[4], CASES[5], CASES[13]]))
def test_max_pool_ties_go_to_the_first(rng, simd_level, algo, shape, k, s, p, d, c):
    x = rng.integers(0, 3, size=shape).astype(np.float32)  # many equal values in each window
    _, yt, it = _torch_max(x, k, s, p, d, c)
    y, idx = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo=algo)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape,k,s,p,d,c", [CASES[0], CASES[1], CASES[4], CASES[13]],
                         ids=_ids([CASES[0], CASES[1], CASES[4], CASES[13]]))
def test_max_pool_nan_wins_its_window(rng, simd_level, algo, shape, k, s, p, d, c):
    x = randn(rng, *shape)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=max(2, flat.size // 15), replace=False)] = np.nan
    x[0, 0, :2, :2] = np.nan  # two NaNs in one window: PyTorch keeps the last one's position
    _, yt, it = _torch_max(x, k, s, p, d, c)
    y, idx = F.max_pool2d(x, k, s, p, d, c, return_indices=True, algo=algo)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(yt.detach().numpy()))
    assert np.isnan(y).any() and not np.isnan(y).all()
    np.testing.assert_array_equal(y, yt.detach().numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(idx, it.numpy())


def test_max_pool_padding_never_wins(rng):
    # All inputs negative: a padded zero would beat every one of them if it were counted.
    x = -np.abs(randn(rng, 2, 3, 7, 6)) - 1.0
    for algo in ALGOS:
        y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True, algo=algo)
        assert (y < 0).all()
        yt, it = TF.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(idx, it.numpy())


def test_max_pool_backward_accumulates_shared_winners():
    # With 3x3/1 windows one large value wins many windows; its gradient is their sum.
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 10.0
    y, idx = F.max_pool2d(x, 3, 1, return_indices=True)
    assert (idx == 12).all()
    dx = F.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    expected = np.zeros_like(x)
    expected[0, 0, 2, 2] = 9.0
    np.testing.assert_array_equal(dx, expected)


def test_max_pool_backward_rejects_negative_index(rng):
    x = randn(rng, 2, 2, 6, 6)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    idx[1, 0, 2, 1] = -1
    with pytest.raises((IndexError, ValueError), match="indices"):
        F.max_pool2d_backward(np.ones_like(y), idx, x.shape)


def test_empty_batch(rng):
    x = np.zeros((0, 3, 8, 8), np.float32)
    for algo in ALGOS:
        y, idx = F.max_pool2d(x, 2, return_indices=True, algo=algo)
        assert y.shape == idx.shape == (0, 3, 4, 4)
        assert F.avg_pool2d(x, 2, algo=algo).shape == (0, 3, 4, 4)
    assert F.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    assert F.avg_pool2d_backward(y, x.shape, 2).shape == x.shape


def test_pool_algos_are_listed():
    names = [a["name"] for a in F.algos("pool2d")]
    assert "reference" in names and "fast" in names
    with pytest.raises(ValueError, match="algo"):
        F.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, algo="nope")


# The lecture's worked examples.
LECTURE_X = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]],
                     np.float32)[None, None]


@pytest.mark.parametrize("algo", ALGOS)
def test_lecture_max_pool_3x3_stride_1(algo):
    y = F.max_pool2d(LECTURE_X, 3, stride=1, algo=algo)
    np.testing.assert_array_equal(y[0, 0], [[3, 3, 3], [3, 3, 3], [3, 2, 3]])


@pytest.mark.parametrize("algo", ALGOS)
def test_lecture_avg_pool_3x3_stride_1(algo):
    y = F.avg_pool2d(LECTURE_X, 3, stride=1, algo=algo)
    np.testing.assert_array_equal(np.round(y[0, 0], 1),
                                  np.array([[1.7, 1.7, 1.7], [1.0, 1.2, 1.8], [1.1, 0.8, 1.3]], np.float32))
