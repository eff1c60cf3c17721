"""convforge.torch: the torch.ops.convforge operators against torch.nn.functional and autograd over a grid
of shapes, torch.library.opcheck, torch.compile(fullgraph=True), meta tensors, zero-copy hand-over,
errors, and convert() on a LeNet-5 and a VGG-style network."""
import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import convforge
import convforge.cuda
import convforge.functional as F
from convforge import _checks as chk
import convforge.torch as ct
from conftest import BWD_TOL, FWD_TOL, rel_error
from convforge.torch import _ops

OPS = torch.ops.convforge
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not (torch.cuda.is_available() and convforge.cuda.is_available()),
    reason="needs a CUDA GPU visible to torch and a CUDA build of convforge")])]


def _t(rng, *shape, device="cpu", grad=True):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(device).requires_grad_(grad)


def _check(ours, ref, inputs, tol_fwd=FWD_TOL, tol_bwd=BWD_TOL):
    """Forward within tol_fwd, and every input's gradient (for one random grad_out) within tol_bwd."""
    assert rel_error(ours.detach().cpu(), ref.detach().cpu()) < tol_fwd
    g = torch.randn_like(ref)
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    got = torch.autograd.grad(ours, wanted, g)
    exp = torch.autograd.grad(ref, wanted, g)
    for a, b in zip(got, exp):
        assert rel_error(a.cpu(), b.cpu()) < tol_bwd


def test_import_convforge_does_not_import_torch():
    code = "import sys, convforge, convforge.functional, convforge.nn, convforge.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# conv2d: (x shape, weight shape, stride, padding, dilation, groups, bias)
# ---------------------------------------------------------------------------------------------
CONV_CASES = [
    ((2, 3, 9, 9), (4, 3, 3, 3), 1, 0, 1, 1, True),               # plain, odd sizes
    ((1, 3, 8, 7), (5, 3, 3, 3), 2, 1, 1, 1, True),               # batch 1, strided, padded
    ((2, 4, 7, 7), (6, 4, 1, 1), 1, 0, 1, 1, False),              # 1x1, no bias
    ((2, 2, 5, 5), (3, 2, 7, 7), 1, 1, 1, 1, True),               # kernel = padded input
    ((2, 3, 11, 10), (4, 3, 2, 2), 3, 0, 1, 1, True),             # stride > kernel
    ((2, 3, 9, 8), (4, 3, 3, 3), (2, 1), (1, 0), (2, 1), 1, True),  # per-axis stride, padding, dilation
    ((2, 4, 8, 8), (6, 2, 3, 3), 1, 1, 1, 2, True),               # grouped
    ((2, 4, 8, 8), (4, 1, 3, 3), 1, 1, 1, 4, True),               # depthwise
    ((2, 3, 8, 8), (4, 3, 4, 4), 1, "same", 1, 1, True),          # "same" with an even kernel: asymmetric
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, "valid", 2, 1, False),        # dilated
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x{}_w{}_s{}_p{}_d{}_g{}".format(*c[:6]))
def test_conv2d_matches_torch(rng, case, device):
    xs, ws, stride, padding, dilation, groups, bias = case
    x, w = _t(rng, *xs, device=device), _t(rng, *ws, device=device)
    b = _t(rng, ws[0], device=device) if bias else None
    ours = ct.conv2d(x, w, b, stride, padding, dilation, groups)
    ref = TF.conv2d(x, w, b, stride, padding, dilation, groups)
    _check(ours, ref, (x, w, b))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CONV_CASES[:9], ids=lambda c: "x{}_w{}".format(*c[:2]))
def test_conv2d_opcheck(rng, case, device):
    xs, ws, stride, padding, dilation, groups, bias = case
    x, w = _t(rng, *xs, device=device), _t(rng, *ws, device=device)
    b = _t(rng, ws[0], device=device) if bias else None
    stride, dilation = chk.pair("t", "s", stride), chk.pair("t", "d", dilation)
    pads = F._conv_padding("conv2d", padding, ws[2:], stride, dilation)
    torch.library.opcheck(OPS.conv2d, (x, w, b, stride, pads, dilation, groups, "auto"))
    g = _t(rng, *ct.conv2d(x, w, b, stride, padding, dilation, groups).shape, device=device, grad=False)
    torch.library.opcheck(OPS.conv2d_backward, (g, x.detach(), w.detach(), stride, pads, dilation, groups, "auto",
                                                [True, True, bias]))


def test_asymmetric_padding_as_four_numbers(rng):
    x, w = _t(rng, 2, 3, 7, 6), _t(rng, 4, 3, 3, 2)
    ours = OPS.conv2d(x, w, None, [1, 1], [2, 0, 1, 3], [1, 1], 1, "auto")  # top, bottom, left, right
    ref = TF.conv2d(TF.pad(x, (1, 3, 2, 0)), w)
    _check(ours, ref, (x, w))


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("conv2d_forward")])
def test_conv2d_every_algo(rng, algo):
    x, w, b = _t(rng, 2, 3, 10, 10), _t(rng, 8, 3, 3, 3), _t(rng, 8)
    ours = ct.conv2d(x, w, b, padding=1, algo=algo)  # backward: the same algo where it has it, else auto
    _check(ours, TF.conv2d(x, w, b, padding=1), (x, w, b))


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, True), (True, False, False),
                                   (False, False, True)])
def test_conv2d_backward_computes_only_the_gradients_needed(rng, monkeypatch, needs):
    masks = []
    real = convforge._C.conv2d_backward

    def spy(grad_out, x, weight, g, algo, need_dx, need_dw, need_db):  # the kernel's binding
        masks.append((need_dx, need_dw, need_db))
        return real(grad_out, x, weight, g, algo, need_dx, need_dw, need_db)

    monkeypatch.setattr(convforge._C, "conv2d_backward", spy)
    for _ in range(2):  # a new shape (validated by convforge.functional), then the same one (remembered)
        masks.clear()
        x, w, b = (_t(rng, 2, 3, 6, 6, grad=needs[0]), _t(rng, 4, 3, 3, 3, grad=needs[1]), _t(rng, 4, grad=needs[2]))
        ours = ct.conv2d(x, w, b)
        _check(ours, TF.conv2d(x, w, b), (x, w, b))
        assert masks == [needs]


# ---------------------------------------------------------------------------------------------
# Pooling: (x shape, kernel, stride, padding, dilation, ceil_mode)
# ---------------------------------------------------------------------------------------------
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((1, 2, 9, 7), 3, 2, 1, 1, True),          # batch 1, odd sizes, ceil_mode
    ((2, 2, 10, 9), (3, 2), (2, 1), (1, 0), 1, False),
    ((2, 2, 11, 11), 3, 2, 1, 2, True),        # dilated (max pooling only)
    ((2, 3, 5, 5), 5, 1, 0, 1, False),         # window = input
    ((2, 2, 9, 9), 2, 3, 0, 1, True),          # stride > kernel
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x{}_k{}_s{}_p{}_d{}_ceil{}".format(*c))
def test_max_pool2d_matches_torch(rng, case, device):
    xs, k, s, p, d, ceil = case
    x = _t(rng, *xs, device=device)
    y, idx = ct.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    ry, ridx = TF.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    assert torch.equal(idx.cpu(), ridx.cpu())
    _check(y, ry, (x,))
    _check(ct.max_pool2d(x, k, s, p, d, ceil), TF.max_pool2d(x, k, s, p, d, ceil), (x,))  # indices kept for backward


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c[4] == 1], ids=lambda c: "x{}_k{}_s{}_p{}_d{}_ceil{}".format(*c))
def test_avg_pool2d_matches_torch(rng, case, count_include_pad, device):
    xs, k, s, p, _, ceil = case
    x = _t(rng, *xs, device=device)
    _check(ct.avg_pool2d(x, k, s, p, ceil, count_include_pad), TF.avg_pool2d(x, k, s, p, ceil, count_include_pad), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x{}_k{}_s{}_p{}_d{}_ceil{}".format(*c))
def test_pool_opcheck(rng, case, device):
    xs, k, s, p, d, ceil = case
    pair = lambda v: list(chk.pair("t", "v", v))  # noqa: E731
    k, p, d = pair(k), pair(p), pair(d)
    s = k if s is None else pair(s)
    x = _t(rng, *xs, device=device)
    for with_indices in (True, False):
        torch.library.opcheck(OPS.max_pool2d, (x.detach(), k, s, p, d, ceil, with_indices, "auto"))
    torch.library.opcheck(OPS.max_pool2d, (x, k, s, p, d, ceil, True, "auto"))
    y, idx = OPS.max_pool2d(x.detach(), k, s, p, d, ceil, True, "auto")
    torch.library.opcheck(OPS.max_pool2d_backward, (torch.randn_like(y), idx, list(xs)))
    if d == [1, 1]:
        torch.library.opcheck(OPS.avg_pool2d, (x, k, s, p, ceil, True, "auto"))
        y = OPS.avg_pool2d(x.detach(), k, s, p, ceil, False, "auto")
        torch.library.opcheck(OPS.avg_pool2d_backward, (torch.randn_like(y), list(xs), k, s, p, ceil, False))


def test_max_pool2d_backward_without_indices_says_so(rng):
    x = _t(rng, 1, 1, 4, 4)
    y, _ = OPS.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False, False, "auto")
    with pytest.raises(RuntimeError, match="with_indices=True"):
        y.sum().backward()


# ---------------------------------------------------------------------------------------------
# linear and the activations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("xs,bias", [((5, 7), True), ((1, 7), False), ((2, 3, 7), True)])
def test_linear_matches_torch(rng, xs, bias, device):
    x, w = _t(rng, *xs, device=device), _t(rng, 4, 7, device=device)
    b = _t(rng, 4, device=device) if bias else None
    _check(ct.linear(x, w, b), TF.linear(x, w, b), (x, w, b))
    torch.library.opcheck(OPS.linear, (x, w, b, "auto"))
    g = torch.randn(*xs[:-1], 4, device=device)
    torch.library.opcheck(OPS.linear_backward, (g, x.detach(), w.detach(), "auto", [True, True, True]))
    torch.library.opcheck(OPS.linear_backward, (g, x.detach(), w.detach(), "auto", [False, True, False]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations_match_torch(rng, name, device):
    x = _t(rng, 2, 3, 5, 7, device=device)
    _check(getattr(ct, name)(x), getattr(torch, name)(x), (x,))
    torch.library.opcheck(getattr(OPS, name), (x,))
    torch.library.opcheck(getattr(OPS, f"{name}_backward"), (torch.randn_like(x), x.detach()))


# ---------------------------------------------------------------------------------------------
# Zero copy, layouts, meta tensors, errors
# ---------------------------------------------------------------------------------------------

def test_cpu_tensors_reach_the_kernels_without_a_copy(rng, monkeypatch):
    x = _t(rng, 2, 3, 4, 4, grad=False)
    a = _ops.to_array(x)
    assert a.ctypes.data == x.data_ptr() and a.dtype == np.float32
    y = np.ones((3, 2), np.float32)
    assert _ops.to_tensor(y, x.device).data_ptr() == y.ctypes.data
    seen = {}
    real = convforge._C.relu_forward

    def spy(arr):  # the kernel's binding: what it is given and what it returns
        seen["in"], seen["out"] = arr.ctypes.data, real(arr)
        return seen["out"]

    monkeypatch.setattr(convforge._C, "relu_forward", spy)
    out = OPS.relu(x.requires_grad_())
    assert seen["in"] == x.data_ptr() and out.data_ptr() == seen["out"].ctypes.data


def test_channels_last_and_strided_inputs_are_copied_and_correct(rng):
    x = _t(rng, 2, 4, 8, 8, grad=False).to(memory_format=torch.channels_last).requires_grad_()
    w = _t(rng, 5, 4, 3, 3)
    assert not x.is_contiguous()
    _check(ct.conv2d(x, w, padding=1), TF.conv2d(x, w, padding=1), (x, w))
    xt = _t(rng, 2, 3, 9, 9, grad=False).transpose(2, 3).requires_grad_()
    _check(ct.max_pool2d(xt, 2), TF.max_pool2d(xt, 2), (xt,))


def test_meta_tensors_get_shapes_from_the_geometry():
    x = torch.empty(3, 4, 17, 15, device="meta")
    w = torch.empty(8, 2, 3, 5, device="meta")
    y = ct.conv2d(x, w, None, (2, 1), (1, 2), (1, 2), 2)
    assert y.device.type == "meta" and tuple(y.shape) == tuple(TF.conv2d(x, w, None, (2, 1), (1, 2), (1, 2), 2).shape)
    y, idx = ct.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert tuple(y.shape) == tuple(idx.shape) == (3, 4, 9, 8) and idx.dtype == torch.int64
    assert tuple(ct.avg_pool2d(x, 2, ceil_mode=True).shape) == (3, 4, 9, 8)
    with pytest.raises(ValueError, match="conv2d"):  # the geometry's own check, at trace time
        ct.conv2d(x, torch.empty(8, 4, 19, 3, device="meta"))


def test_wrong_dtype_names_the_argument(rng):
    x, w = _t(rng, 1, 2, 5, 5).double(), _t(rng, 3, 2, 3, 3)
    with pytest.raises(TypeError, match=r"conv2d: x must have dtype torch.float32, got torch.float64"):
        ct.conv2d(x, w)
    with pytest.raises(TypeError, match=r"weight must have dtype torch.float32"):
        ct.linear(_t(rng, 2, 3), _t(rng, 4, 3).half())


def test_tensors_on_different_devices_are_an_error(rng):
    x, w = _t(rng, 1, 2, 5, 5), torch.empty(3, 2, 3, 3, device="meta")
    with pytest.raises(ValueError, match=r"same device, got x on cpu and weight on meta"):
        ct.conv2d(x, w)


def test_shape_errors_name_the_argument(rng):
    with pytest.raises(ValueError, match=r"input channels|channels"):
        ct.conv2d(_t(rng, 1, 2, 5, 5), _t(rng, 3, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 3\)"):
        ct.linear(_t(rng, 2, 5), _t(rng, 4, 3))
    with pytest.raises(ValueError, match="divisor_override"):
        ct.avg_pool2d(_t(rng, 1, 1, 4, 4), 2, divisor_override=3)
    with pytest.raises(ValueError, match="unknown algo"):
        ct.conv2d(_t(rng, 1, 2, 5, 5), _t(rng, 3, 2, 3, 3), algo="nope")


@pytest.mark.skipif(convforge.cuda.is_compiled(), reason="convforge was built with CUDA")
def test_cuda_tensor_without_a_cuda_build_says_how_to_build():
    with pytest.raises(RuntimeError, match=r"built without CUDA.*nvcc"):
        _ops._cuda_module()


# ---------------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------------

def _lenet(act=tnn.Tanh, pool=tnn.MaxPool2d):
    return tnn.Sequential(tnn.Conv2d(1, 6, 5), act(), pool(2, 2), tnn.Conv2d(6, 16, 5), act(), pool(2, 2),
                          tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(), tnn.Linear(84, 10))


def _vgg():
    return tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.ReLU(inplace=True), tnn.Conv2d(8, 8, 3, padding=1),
                          tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(8, 16, 3, padding=1), tnn.ReLU(),
                          tnn.AvgPool2d(2, ceil_mode=True), tnn.Conv2d(16, 16, 3, stride=2, padding=1, groups=2),
                          tnn.Sigmoid(), tnn.Flatten(), tnn.Linear(16 * 2 * 2, 32), tnn.ReLU(), tnn.Linear(32, 10))


def _grads(model, x, g):
    y = model(x)
    y.backward(g)
    return y.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_forward_and_backward(rng, backend):
    torch.manual_seed(0)
    model = ct.convert(_lenet(act=tnn.ReLU))
    ref = copy.deepcopy(model)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # fullgraph: any graph break fails
    for batch in (4, 3) if backend == "aot_eager" else (4,):  # a second batch size: a dynamic batch
        x = _t(rng, batch, 1, 32, 32, grad=False)
        g = torch.randn(batch, 10)
        model.zero_grad(), ref.zero_grad()
        y, grads = _grads(compiled, x, g)
        ry, rgrads = _grads(ref, x, g)
        assert rel_error(y, ry) < FWD_TOL
        for a, b in zip(grads, rgrads):
            assert rel_error(a, b) < BWD_TOL


# ---------------------------------------------------------------------------------------------
# convert()
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("build,shape", [(_lenet, (5, 1, 32, 32)), (lambda: _lenet(tnn.ReLU, tnn.AvgPool2d), (2, 1, 32, 32)),
                                         (_vgg, (3, 3, 16, 16))], ids=["lenet5", "lenet5_relu_avg", "vgg_style"])
def test_convert_gives_torch_outputs_and_gradients(rng, build, shape):
    torch.manual_seed(0)
    model = build()
    ref = copy.deepcopy(model)
    params = list(model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything in these models is supported: no warning
        assert ct.convert(model) is model
    assert all(a is b for a, b in zip(model.parameters(), params))
    kinds = {type(m) for m in model.modules()}
    assert not kinds & {tnn.Conv2d, tnn.Linear, tnn.MaxPool2d, tnn.AvgPool2d, tnn.ReLU, tnn.Tanh, tnn.Sigmoid}
    assert model.state_dict().keys() == ref.state_dict().keys()
    x = _t(rng, *shape, grad=False)
    g = torch.randn(shape[0], 10)
    y, grads = _grads(model, x, g)
    ry, rgrads = _grads(ref, x, g)
    assert rel_error(y, ry) < FWD_TOL
    for a, b in zip(grads, rgrads):
        assert rel_error(a, b) < BWD_TOL


def test_convert_keeps_optimizers_hooks_and_identity(rng):
    torch.manual_seed(0)
    model = _lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = model[0]
    calls = []
    first.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    ct.convert(model, algo={"conv2d": "im2col", "linear": "blocked", "pool2d": "reference"})
    assert model[0] is first and isinstance(first, ct.Conv2d) and isinstance(first, tnn.Conv2d)
    assert (first.algo, model[7].algo, model[2].algo) == ("im2col", "blocked", "reference")
    before = first.weight.detach().clone()
    TF.cross_entropy(model(_t(rng, 4, 1, 32, 32, grad=False)), torch.arange(4)).backward()
    opt.step()
    assert calls == [torch.Size([4, 6, 28, 28])]
    assert not torch.equal(before, first.weight)


def test_convert_leaves_unsupported_layers_and_lists_them(rng):
    model = tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), tnn.ReLU(),
                           tnn.AvgPool2d(2, divisor_override=3), tnn.Conv2d(2, 2, 3))
    with pytest.warns(UserWarning, match=r"2 layer\(s\) left to torch: 0 \(Conv2d: padding_mode='reflect'.*"
                                         r"2 \(AvgPool2d: divisor_override=3"):
        ct.convert(model)
    assert type(model[0]) is tnn.Conv2d and type(model[2]) is tnn.AvgPool2d
    assert isinstance(model[1], ct.ReLU) and isinstance(model[3], ct.Conv2d)
    model64 = _lenet().double()
    with pytest.warns(UserWarning, match=r"torch.float64"):
        ct.convert(model64)
    assert not any(isinstance(m, (ct.Conv2d, ct.Tanh, ct.MaxPool2d)) for m in model64.modules())
    x = _t(rng, 2, 1, 32, 32, grad=False).double()
    assert model64(x).dtype == torch.float64


def test_convert_rejects_unknown_algos():
    with pytest.raises(ValueError, match="unknown conv2d algo 'nope'"):
        ct.convert(_lenet(), algo="nope")
    with pytest.raises(ValueError, match="algo keys"):
        ct.convert(_lenet(), algo={"gemm": "auto"})


def test_modules_can_be_built_directly(rng):
    torch.manual_seed(0)
    conv = ct.Conv2d(3, 4, 3, padding="same", algo="direct")
    assert "algo='direct'" in repr(conv)
    x = _t(rng, 2, 3, 6, 6)
    _check(conv(x), TF.conv2d(x, conv.weight, conv.bias, padding="same"), (x, conv.weight, conv.bias))
    with pytest.raises(ValueError, match="padding_mode"):
        ct.Conv2d(3, 4, 3, padding_mode="circular")
