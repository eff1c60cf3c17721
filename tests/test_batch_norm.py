"""batch_norm and nn.BatchNorm2d, forward and backward, training and eval, against torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge.functional as F
from convforge import nn
from conftest import BWD_TOL, FWD_TOL, randn, rel_error

SHAPES = [(4, 3, 5, 7), (1, 5, 3, 3), (8, 16, 1, 1), (2, 7, 9, 8), (16, 6), (3, 64, 17, 15)]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_functional_matches_torch(rng, shape, training, affine):
    C = shape[1]
    x = randn(rng, *shape) * 3 + 2  # an offset mean checks the variance's precision
    w = randn(rng, C) if affine else None
    b = randn(rng, C) if affine else None
    rm, rv = randn(rng, C), (rng.random(C) + 0.5).astype(np.float32)
    rm_t, rv_t = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True) if affine else None
    bt = torch.from_numpy(b).requires_grad_(True) if affine else None
    yt = TF.batch_norm(xt, rm_t, rv_t, wt, bt, training, 0.1, 1e-5)
    y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5, return_stats=True)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    assert rel_error(rm, rm_t.numpy()) <= FWD_TOL and rel_error(rv, rv_t.numpy()) <= FWD_TOL  # updated in place

    g = randn(rng, *shape)
    yt.backward(torch.from_numpy(g))
    gx, gw, gb = F.batch_norm_backward(g, x, w, mean, invstd, training)
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    if affine:
        assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
        assert rel_error(gb, bt.grad.numpy()) <= BWD_TOL
    _, gw2, gb2 = F.batch_norm_backward(g, x, w, mean, invstd, training, output_mask=(False, True, True))
    assert _ is None and np.array_equal(gw2, gw) and np.array_equal(gb2, gb)


def test_training_without_running_stats(rng):
    x = randn(rng, 4, 3, 5, 5)
    y = F.batch_norm(x, None, None, training=True)
    assert rel_error(y, TF.batch_norm(torch.from_numpy(x), None, None, training=True).numpy()) <= FWD_TOL


def _pair(C, momentum, affine=True, track=True):
    ours = nn.BatchNorm2d(C, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = torch.nn.BatchNorm2d(C, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
        ours.weight.data = theirs.weight.detach().numpy().copy()
        ours.bias.data = theirs.bias.detach().numpy().copy()
    return ours, theirs


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_layer_over_several_steps_in_both_modes(rng, momentum):
    C = 5
    ours, theirs = _pair(C, momentum)
    for step in range(4):
        x = randn(rng, 3, C, 4, 6) * (step + 1) + step
        g = randn(rng, *x.shape)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = theirs(xt)
        yt.backward(torch.from_numpy(g))
        y = ours(x)
        ours.zero_grad()
        gx = ours.backward(g)
        assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
        assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
        assert rel_error(ours.weight.grad, theirs.weight.grad.numpy()) <= BWD_TOL
        assert rel_error(ours.bias.grad, theirs.bias.grad.numpy()) <= BWD_TOL
        theirs.zero_grad()
        sd = ours.state_dict()
        for k, v in theirs.state_dict().items():
            assert rel_error(sd[k], v.numpy()) <= FWD_TOL, (step, k)
        assert sd["num_batches_tracked"].dtype == np.int64 and int(sd["num_batches_tracked"]) == step + 1
    ours.eval()
    theirs.eval()
    x = randn(rng, 2, C, 3, 3)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    g = randn(rng, *x.shape)
    yt.backward(torch.from_numpy(g))
    assert rel_error(ours(x), yt.detach().numpy()) <= FWD_TOL
    assert rel_error(ours.backward(g), xt.grad.numpy()) <= BWD_TOL
    assert int(ours.num_batches_tracked) == 4  # eval does not count


def test_layer_without_tracking_or_affine(rng):
    ours, theirs = _pair(4, 0.1, affine=False, track=False)
    ours.eval()
    theirs.eval()
    x = randn(rng, 3, 4, 2, 5)
    assert rel_error(ours(x), theirs(torch.from_numpy(x)).detach().numpy()) <= FWD_TOL  # batch statistics
    assert ours.state_dict() == {} and ours.num_parameters() == 0


def test_state_dict_names_and_loading_from_torch(rng):
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    x = torch.from_numpy(randn(rng, 2, 3, 6, 6))
    theirs(x)  # one training step moves the running statistics
    assert list(ours.state_dict()) == list(theirs.state_dict())
    nn.load_torch_state_dict(ours, theirs.state_dict())
    assert int(ours[1].num_batches_tracked) == 1
    ours.eval()
    theirs.eval()
    assert rel_error(ours(x.numpy()), theirs(x).detach().numpy()) <= FWD_TOL
    back = theirs.__class__(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    back.load_state_dict(nn.to_torch_state_dict(ours))
    assert int(back[1].num_batches_tracked) == 1


def test_train_eval_switch_reaches_dropout_and_batch_norm(rng):
    m = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout(0.5))
    m.eval()
    assert not m[0].training and not m[1].training
    x = randn(rng, 2, 2, 3, 3)
    np.testing.assert_array_equal(m(x), m(x))  # eval: deterministic, running statistics
    m.train()
    assert m[0].training and m[1].training


def test_one_value_per_channel_in_training_raises(rng):
    x = randn(rng, 1, 8, 1, 1)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        F.batch_norm(x, np.zeros(8, np.float32), np.ones(8, np.float32), training=True)
    bn = nn.BatchNorm2d(8)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn(x)
    with pytest.raises(ValueError):  # torch agrees
        torch.nn.BatchNorm2d(8)(torch.from_numpy(x))
    assert bn.eval()(x).shape == x.shape  # eval mode is fine


def test_bad_arguments(rng):
    x = randn(rng, 2, 3, 4, 4)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="running_mean must have shape"):
        F.batch_norm(x, np.zeros(4, np.float32), rv, training=True)
    with pytest.raises(ValueError, match="when training is False"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="weight must have shape"):
        F.batch_norm(x, rm, rv, np.ones(2, np.float32))
    with pytest.raises(TypeError, match="float32"):
        F.batch_norm(x, rm.astype(np.float64), rv, training=True)
    with pytest.raises(ValueError, match="read-only"):
        ro = rm.copy()
        ro.flags.writeable = False
        F.batch_norm(x, ro, rv, training=True)
    with pytest.raises(ValueError, match="non-contiguous"):
        F.batch_norm(x, np.zeros(6, np.float32)[::2], rv, training=True)
    with pytest.raises(ValueError, match="4-D"):
        nn.BatchNorm2d(3)(x[0])
    with pytest.raises(ValueError, match="grad_out must have shape"):
        F.batch_norm_backward(x[:1], x, None, rm, rv)
