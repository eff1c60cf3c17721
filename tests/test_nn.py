"""convforge.nn against torch.nn: every layer's forward and backward given the same weights,
the loss, the optimisers' update rules, initialisation, state dicts and checkpoints."""
import numpy as np
import pytest
import torch

from conftest import BWD_TOL, FWD_TOL, rel_error
from convforge import nn

torch.manual_seed(0)


def _run_pair(ours, theirs, x, rng):
    """Forward and backward of our layer and torch's on x, with a random output gradient."""
    if isinstance(theirs, torch.nn.Module):
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    y = ours.forward(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = theirs(xt)
    assert y.shape == tuple(yt.shape)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx = ours.backward(g)
    yt.backward(torch.from_numpy(g))
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    if isinstance(theirs, torch.nn.Module):
        tp = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            assert rel_error(p.grad, tp[name].grad.numpy()) <= BWD_TOL, name


CONV_CASES = [
    dict(args=(3, 8, 3), kw={}, x=(2, 3, 9, 11)),
    dict(args=(1, 6, 5), kw={}, x=(4, 1, 32, 32)),
    dict(args=(4, 6, 3), kw=dict(stride=2, padding=1), x=(2, 4, 10, 7)),
    dict(args=(4, 4, 3), kw=dict(padding=(2, 1), dilation=2), x=(1, 4, 9, 9)),
    dict(args=(4, 8, 3), kw=dict(groups=2, bias=False), x=(2, 4, 8, 8)),
    dict(args=(6, 6, 3), kw=dict(groups=6, padding="same"), x=(2, 6, 7, 7)),
    dict(args=(3, 5, (1, 3)), kw=dict(stride=(1, 2)), x=(3, 3, 5, 9)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c['args']}-{c['kw']}")
def test_conv2d_layer(case, rng):
    ours = nn.Conv2d(*case["args"], **case["kw"])
    theirs = torch.nn.Conv2d(*case["args"], **case["kw"])
    _run_pair(ours, theirs, rng.standard_normal(case["x"]).astype(np.float32), rng)
    assert ours.output_shape(case["x"]) == ours.forward(rng.standard_normal(case["x"]).astype(np.float32)).shape


@pytest.mark.parametrize("bias", [True, False])
def test_linear_layer(bias, rng):
    _run_pair(nn.Linear(33, 7, bias=bias), torch.nn.Linear(33, 7, bias=bias),
              rng.standard_normal((5, 33)).astype(np.float32), rng)


POOL_CASES = [
    ("max", dict(kernel_size=2, stride=2), (2, 3, 8, 8)),
    ("max", dict(kernel_size=3, stride=2, padding=1), (2, 3, 9, 10)),
    ("max", dict(kernel_size=3, stride=2, ceil_mode=True), (1, 2, 8, 8)),
    ("max", dict(kernel_size=2, stride=1, dilation=2), (1, 2, 7, 6)),
    ("avg", dict(kernel_size=2, stride=2), (2, 3, 8, 8)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 10)),
    ("avg", dict(kernel_size=3, stride=2, ceil_mode=True), (1, 2, 8, 8)),
]


@pytest.mark.parametrize("kind,kw,shape", POOL_CASES, ids=lambda v: str(v))
def test_pool_layers(kind, kw, shape, rng):
    ours = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(**kw)
    theirs = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(**kw)
    x = rng.standard_normal(shape).astype(np.float32)
    _run_pair(ours, theirs, x, rng)
    assert ours.output_shape(shape) == ours.forward(x).shape


@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid"])
def test_activation_layers(name, rng):
    _run_pair(getattr(nn, name)(), getattr(torch.nn, name)(), rng.standard_normal((3, 4, 5, 6)).astype(np.float32), rng)


def test_flatten_layer(rng):
    _run_pair(nn.Flatten(), torch.nn.Flatten(), rng.standard_normal((3, 4, 5, 6)).astype(np.float32), rng)
    assert nn.Flatten().output_shape((3, 4, 5, 6)) == (3, 120)


def test_dropout(rng):
    x = rng.standard_normal((64, 100)).astype(np.float32) + 3.0
    d = nn.Dropout(0.25)
    y = d.forward(x)
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gx = d.backward(g)
    np.testing.assert_allclose(gx, np.where(kept, g / 0.75, 0), rtol=1e-6)
    d.eval()
    assert d.forward(x) is x and d.backward(g) is g
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)


def test_cross_entropy_loss(rng):
    logits = rng.standard_normal((17, 10)).astype(np.float32) * 3
    labels = rng.integers(0, 10, 17)
    crit = nn.CrossEntropyLoss()
    loss = crit(logits, labels)
    lt = torch.from_numpy(logits).requires_grad_()
    ref = torch.nn.functional.cross_entropy(lt, torch.from_numpy(labels))
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-5 * abs(ref.item())
    assert rel_error(crit.backward(), lt.grad.numpy()) <= BWD_TOL


def _sequential_pair():
    ours = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(64, 5))
    return ours, theirs


def test_sequential_and_gradient_accumulation(rng):
    ours, theirs = _sequential_pair()
    x = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    _run_pair(ours, theirs, x, rng)
    first = {n: p.grad.copy() for n, p in ours.named_parameters()}
    g = np.ones((3, 5), np.float32)
    ours.forward(x)
    ours.backward(g)
    ours.forward(x)
    ours.backward(g)
    ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())
    ours.forward(x)
    ours.backward(g)
    once = {n: p.grad.copy() for n, p in ours.named_parameters()}
    ours.forward(x)
    ours.backward(g)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-6, atol=1e-6)
    assert set(first) == {"0.weight", "0.bias", "4.weight", "4.bias"}


def test_module_structure_and_modes():
    ours, _ = _sequential_pair()
    assert [n for n, _ in ours.named_parameters()] == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert ours.num_parameters() == 4 * 2 * 9 + 4 + 64 * 5 + 5
    assert len(ours) == 5 and isinstance(ours[1], nn.ReLU)
    ours.eval()
    assert not any(m.training for m in ours.modules())
    ours.train()
    assert all(m.training for m in ours.modules())
    assert "Conv2d(2, 4" in repr(ours)
    assert ours.to("cpu") is ours and ours.device == "cpu"
    with pytest.raises(ValueError, match="device"):
        ours.to("tpu")


def test_initialisation_matches_torch_defaults():
    nn.manual_seed(1)
    a = nn.Conv2d(16, 32, 5)
    nn.manual_seed(1)
    b = nn.Conv2d(16, 32, 5)
    assert not a.weight.materialized  # lazy: nothing allocated until used
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(16 * 25)
    torch.manual_seed(1)
    t = torch.nn.Conv2d(16, 32, 5)
    # Both draw U(-bound, bound): the spread of 12,800 weights agrees closely; 32 biases only roughly.
    for ours, theirs, tol in ((a.weight.data, t.weight, 0.03), (a.bias.data, t.bias, 0.25)):
        theirs = theirs.detach().numpy()
        assert ours.dtype == np.float32 and np.abs(ours).max() <= bound
        assert np.abs(theirs).max() <= bound
        assert abs(ours.std() - bound / np.sqrt(3)) < tol * bound
        assert abs(theirs.std() - bound / np.sqrt(3)) < tol * bound
    lin = nn.Linear(400, 120)
    assert np.abs(lin.weight.data).max() <= 1 / np.sqrt(400)
    assert abs(lin.weight.data.std() - (1 / np.sqrt(400)) / np.sqrt(3)) < 0.01 / np.sqrt(400) * 10


OPTIMISERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
]


@pytest.mark.parametrize("name,kw", OPTIMISERS, ids=lambda v: str(v))
def test_optimisers_match_torch(name, kw, rng):
    w0 = rng.standard_normal((7, 5)).astype(np.float32)
    ours = nn.Parameter(w0.copy())
    theirs = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = getattr(nn, name)([ours], **kw)
    topt = getattr(torch.optim, name)([theirs], **kw)
    for _ in range(6):
        g = rng.standard_normal(w0.shape).astype(np.float32)
        ours.grad = g
        theirs.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    assert rel_error(ours.data, theirs.detach().numpy()) <= 1e-6
    opt.zero_grad()
    assert ours.grad is None


def test_optimiser_errors():
    p = nn.Parameter(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="Nesterov"):
        nn.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        nn.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        nn.Adam([p], lr=-1)


def test_torch_state_dict_exchange(rng):
    ours, theirs = _sequential_pair()
    nn.load_torch_state_dict(ours, theirs.state_dict())
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k], v.numpy())
    ours2, theirs2 = _sequential_pair()
    theirs2.load_state_dict(nn.to_torch_state_dict(ours2))
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    assert rel_error(ours2(x), theirs2(torch.from_numpy(x)).detach().numpy()) <= FWD_TOL
    bad = dict(theirs.state_dict())
    bad.pop("4.bias")
    with pytest.raises(KeyError, match="missing keys.*4.bias"):
        nn.load_torch_state_dict(ours, bad)
    bad["4.bias"] = torch.zeros(6)
    with pytest.raises(ValueError, match=r"4.bias.*\(6,\).*\(5,\)"):
        nn.load_torch_state_dict(ours, bad)


def test_checkpoint_roundtrip(tmp_path, rng):
    from convforge import models

    m = models.lenet5(activation="relu", pooling="avg")
    path = nn.save_checkpoint(tmp_path / "m.npz", m, epoch=3, note="hello")
    m2, meta = nn.load_checkpoint(path)
    assert meta["arch"] == "lenet5" and meta["config"]["activation"] == "relu" and meta["epoch"] == 3
    assert isinstance(m2[1], nn.ReLU) and isinstance(m2[2], nn.AvgPool2d)
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(m(x), m2(x))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        nn.load_checkpoint(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a convforge checkpoint"):
        nn.load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        nn.load_checkpoint(tmp_path / "missing.npz")
