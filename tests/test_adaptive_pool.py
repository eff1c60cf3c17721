"""adaptive_avg_pool2d, forward and backward, every algo, against torch.nn.functional."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge.functional as F
from convforge import _C, nn
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

ALGOS = [a["name"] for a in F.algos("pool2d")] + ["auto"]

# (input shape, output_size): dividing and not dividing, upsampling, global, batch 1, odd channels.
CASES = [
    ((2, 3, 14, 14), 7),            # divides: plain 2x2 average
    ((1, 5, 13, 13), 7),            # 7 from 13: overlapping bins
    ((2, 3, 27, 27), 6),            # 6 from 27 (AlexNet's pool at a larger input)
    ((1, 3, 2, 2), 7),              # 7 from 2: upsampling, bins repeat inputs
    ((2, 7, 1, 1), (7, 7)),         # VGG at 32 px: one pixel to 7x7
    ((3, 5, 9, 11), (4, 3)),        # a pair, non-square
    ((2, 3, 10, 9), (None, 4)),     # None keeps the input's height
    ((2, 3, 10, 9), (5, None)),
    ((1, 9, 7, 7), 1),              # global average
    ((4, 3, 23, 17), (1, 1)),       # global average, odd sizes
    ((2, 16, 40, 45), 1),           # global, large enough to run threaded
    ((2, 16, 41, 39), (7, 6)),      # threaded
    ((1, 1, 5, 300), (2, 7)),       # a wide row
    ((0, 3, 8, 8), 3),              # empty batch
]


def _ids(cases):
    return [f"{s}-out{o}" for s, o in cases]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape,out", CASES, ids=_ids(CASES))
def test_adaptive_avg_pool_matches_torch(rng, algo, shape, out):
    x = randn(rng, *shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = TF.adaptive_avg_pool2d(xt, out)
    y = F.adaptive_avg_pool2d(x, out, algo=algo)
    assert y.shape == tuple(yt.shape)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL

    g = randn(rng, *y.shape)
    yt.backward(torch.from_numpy(g))
    dx = F.adaptive_avg_pool2d_backward(g, x.shape)
    assert rel_error(dx, xt.grad.numpy()) <= BWD_TOL


def test_bin_rule_is_torchs():
    # start = floor(i*n/out), end = ceil((i+1)*n/out), from geometry.h
    for n, out in [(13, 7), (27, 6), (2, 7), (7, 7), (1, 7), (224, 7)]:
        for i in range(out):
            assert _C.adaptive_bin_start(i, n, out) == (i * n) // out
            assert _C.adaptive_bin_end(i, n, out) == -((-(i + 1) * n) // out)


def test_layer_forward_backward_and_shape(rng):
    layer = nn.AdaptiveAvgPool2d((7, None))
    x = randn(rng, 2, 3, 13, 10)
    y = layer(x)
    assert y.shape == layer.output_shape(x.shape) == (2, 3, 7, 10)
    g = randn(rng, *y.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    TF.adaptive_avg_pool2d(xt, (7, None)).backward(torch.from_numpy(g))
    assert rel_error(layer.backward(g), xt.grad.numpy()) <= BWD_TOL
    assert "output_size=(7, None)" in repr(layer)


@pytest.mark.parametrize("out", [0, -1, (0, 7), (7, -2)])
def test_bad_output_size(rng, out):
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be positive"):
        F.adaptive_avg_pool2d(randn(rng, 1, 2, 5, 5), out)


def test_bad_arguments(rng):
    x = randn(rng, 1, 2, 5, 5)
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_avg_pool2d(x, None)
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_avg_pool2d(x, 2.5)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match="4-D"):
        F.adaptive_avg_pool2d(x[0], 2)
    with pytest.raises(TypeError, match="float32"):
        F.adaptive_avg_pool2d(x.astype(np.float64), 2)
    with pytest.raises(ValueError, match="unknown algo"):
        F.adaptive_avg_pool2d(x, 2, algo="nope")
    with pytest.raises(ValueError, match="batch and channels"):
        F.adaptive_avg_pool2d_backward(randn(rng, 1, 3, 2, 2), (1, 2, 5, 5))
    with pytest.raises(TypeError, match="output_size"):
        nn.AdaptiveAvgPool2d("7")
