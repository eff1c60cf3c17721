"""relu, tanh, sigmoid, cross_entropy and sum_rows against torch, at every SIMD level."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge.functional as F
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

ACTIVATIONS = [
    (F.relu, F.relu_backward, torch.relu, "x"),
    (F.tanh, F.tanh_backward, torch.tanh, "y"),
    (F.sigmoid, F.sigmoid_backward, torch.sigmoid, "y"),
]
ACT_IDS = ["relu", "tanh", "sigmoid"]
# Shapes of every rank, odd sizes that miss vector widths, and sizes that run threaded.
SHAPES = [(1,), (7,), (3, 5), (2, 3, 5, 7), (1000,), (300_001,), (8, 16, 31, 33)]


def _input(rng, shape):
    # Wide enough to saturate tanh and sigmoid, with exact zeros (relu's kink).
    x = randn(rng, *shape) * 6.0
    x.reshape(-1)[:: 11] = 0.0
    return x


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fwd,bwd,ref,saved", ACTIVATIONS, ids=ACT_IDS)
def test_activation_matches_torch(rng, simd_level, shape, fwd, bwd, ref, saved):
    x = _input(rng, shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    y = fwd(x)
    assert y.shape == x.shape
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL

    g = randn(rng, *shape)
    yt.backward(torch.from_numpy(g))
    dx = bwd(g, x if saved == "x" else y)
    assert rel_error(dx, xt.grad.numpy()) <= BWD_TOL


@pytest.mark.parametrize("fwd,ref", [(F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid)], ids=["tanh", "sigmoid"])
def test_tanh_sigmoid_are_accurate_per_element(simd_level, fwd, ref):
    # Every element within a few ulp of the float64 result, including tiny and huge |x|,
    # where a naive 1/(1+exp(-x)) overflows or (1-e)/(1+e) cancels.
    x = np.concatenate([np.linspace(-90, 90, 100_003), np.linspace(-1, 1, 10_001),
                        np.logspace(-30, 1.5, 2001), -np.logspace(-30, 1.5, 2001)]).astype(np.float32)
    y = fwd(x).astype(np.float64)
    exact = ref(torch.from_numpy(x).double()).numpy()
    normal = np.abs(exact) > 1e-37  # torch's own float sigmoid flushes below this to 0
    assert np.all(np.isfinite(y))
    err = np.abs(y - exact)[normal] / np.abs(exact[normal])
    assert err.max() <= 4e-7, f"worst at x={x[normal][err.argmax()]}"
    assert np.abs(y - exact).max() <= 1e-7


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -200.0, 200.0, 1e-30], np.float32)
    with np.errstate(invalid="ignore"):
        for fwd, ref in [(F.relu, torch.relu), (F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid)]:
            y = fwd(x)
            np.testing.assert_allclose(y, ref(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=0)
            assert np.isnan(y[0])  # NaN propagates


@pytest.mark.parametrize("fwd", [F.relu, F.tanh, F.sigmoid], ids=ACT_IDS)
def test_nan_propagates_in_large_arrays(rng, simd_level, fwd):
    x = _input(rng, (100_003,))
    where = rng.choice(x.size, size=50, replace=False)
    x[where] = np.nan
    y = fwd(x)
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(y)), np.sort(where))


def test_relu_backward_is_zero_at_and_below_zero(ieee_subnormals):  # 1e-38 is subnormal
    x = np.array([-1.0, 0.0, -0.0, 1e-38, 2.0], np.float32)
    g = np.array([5.0, 5.0, 5.0, 5.0, np.nan], np.float32)
    np.testing.assert_array_equal(F.relu_backward(g, x), [0.0, 0.0, 0.0, 5.0, np.nan])


CE_SHAPES = [(1, 2), (5, 10), (64, 10), (300, 100), (7, 1000)]


@pytest.mark.parametrize("n,classes", CE_SHAPES, ids=str)
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit", "huge-logits"])
def test_cross_entropy_matches_torch(rng, n, classes, scale):
    logits = randn(rng, n, classes) * np.float32(scale)
    labels = rng.integers(0, classes, size=n)
    lt = torch.from_numpy(logits).requires_grad_(True)
    loss_t = TF.cross_entropy(lt, torch.from_numpy(labels))
    loss = F.cross_entropy(logits, labels)
    assert np.isfinite(loss)
    assert abs(loss - loss_t.item()) <= FWD_TOL * abs(loss_t.item())
    loss_t.backward()
    d = F.cross_entropy_backward(logits, labels)
    assert rel_error(d, lt.grad.numpy()) <= BWD_TOL
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-6)  # softmax rows sum to one


def test_cross_entropy_nan_logit_gives_nan():
    logits = np.zeros((3, 4), np.float32)
    logits[1, 2] = np.nan
    assert np.isnan(F.cross_entropy(logits, np.array([0, 1, 2])))


@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 1000), (128, 10), (20_000, 3), (3000, 1025), (0, 5)], ids=str)
def test_sum_rows(rng, rows, cols):
    a = randn(rng, rows, cols)
    out = F._C.sum_rows(a)
    ref = a.astype(np.float64).sum(axis=0)
    assert out.shape == (cols,)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6 * max(1, np.sqrt(rows)))
