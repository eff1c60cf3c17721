"""convforge.torch's operator registration (python/convforge/torch/_ops.py): every table entry passes
torch.library.opcheck; the eager path of convforge.torch's functions, the operators' direct path for
plain CPU tensors and the dispatcher path (TorchDispatchMode, torch.compile) give the same results;
compiled graphs contain the operators; argument combinations validated once still raise for bad ones;
double backward says it is unsupported."""
import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF
from torch.utils._python_dispatch import TorchDispatchMode

import convforge.torch as ct
from conftest import BWD_TOL, FWD_TOL, rel_error
from convforge.torch import _ops

OPS = torch.ops.convforge


def _t(rng, *shape, grad=True, dtype=np.float32):
    return torch.from_numpy(rng.standard_normal(shape).astype(dtype)).requires_grad_(grad)


def _samples(rng):
    """Arguments for each operator of the table (inputs of differentiable ones require grad)."""
    x, w, b = _t(rng, 2, 4, 7, 6), _t(rng, 6, 2, 3, 3), _t(rng, 6)
    conv = ([1, 2], [1, 0, 1, 1], [1, 1], 2, "auto")
    y = OPS.conv2d(x.detach(), w.detach(), b.detach(), *conv)
    pool = ([3, 2], [2, 2], [1, 0], [1, 1])
    p, idx = OPS.max_pool2d(x.detach(), *pool, True, True, "auto")
    a = OPS.avg_pool2d(x.detach(), *pool[:3], True, False, "auto")
    lx, lw, lb = _t(rng, 5, 7), _t(rng, 3, 7), _t(rng, 3)
    u = _t(rng, 3, 4, 5)
    d = lambda t: t.detach()  # noqa: E731
    return {
        "conv2d": (x, w, b, *conv),
        "conv2d_backward": (torch.randn_like(y), d(x), d(w), *conv, [True, False, True]),
        "max_pool2d": (x, *pool, True, True, "auto"),
        "max_pool2d_backward": (torch.randn_like(p), idx, list(x.shape)),
        "avg_pool2d": (x, *pool[:3], True, False, "auto"),
        "avg_pool2d_backward": (torch.randn_like(a), list(x.shape), *pool[:3], True, False),
        "linear": (lx, lw, lb, "auto"),
        "linear_backward": (torch.randn(5, 3), d(lx), d(lw), "auto", [True, True, False]),
        "relu": (u,), "relu_backward": (torch.randn_like(u), d(u)),
        "tanh": (u,), "tanh_backward": (torch.randn_like(u), d(u)),
        "sigmoid": (u,), "sigmoid_backward": (torch.randn_like(u), d(u)),
    }


def test_every_table_entry_is_registered_and_sampled():
    names = [spec.name for spec in _ops.OPS]
    assert set(_samples(np.random.default_rng(0))) == set(names) == set(_ops.REGISTERED)
    for name in names:
        op = getattr(OPS, name).default
        assert _ops.REGISTERED[name] is op
        assert torch.Tag.pt2_compliant_tag in op.tags
        for key in ("CompositeExplicitAutograd", "Meta", "Autograd"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), key), (name, key)


@pytest.mark.parametrize("name", [spec.name for spec in _ops.OPS])
def test_every_table_entry_passes_opcheck(rng, name):
    torch.library.opcheck(getattr(OPS, name).default, _samples(rng)[name])


class _Recorder(TorchDispatchMode):
    """Records the operators that reach the dispatcher below autograd (and makes every call non-plain)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def _small_net():
    torch.manual_seed(0)
    return ct.convert(tnn.Sequential(tnn.Conv2d(2, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Tanh(),
                                     tnn.Conv2d(4, 4, 3, groups=2), tnn.Sigmoid(), tnn.AvgPool2d(2, ceil_mode=True),
                                     tnn.Flatten(), tnn.Linear(4, 3)))


def _step(model, x):
    model.zero_grad()
    y = model(x)
    y.backward(torch.ones_like(y))
    return y.detach(), [p.grad.clone() for p in model.parameters()]


_NAMES = ("conv2d", "relu", "max_pool2d", "tanh", "sigmoid", "avg_pool2d", "linear")


def test_eager_direct_and_dispatcher_paths_agree(rng):
    """Three ways the same step runs: convforge.torch's eager path (plain CPU tensors: no dispatcher);
    under the profiler, through the operators, whose Autograd kernels run the kernels directly; under a
    TorchDispatchMode, through torch's own autograd kernel and a redispatch. Same numbers."""
    model, x = _small_net(), _t(rng, 2, 2, 9, 9, grad=False)
    with _Recorder() as outside:  # the mode only sees what is called inside the block
        pass
    y, grads = _step(model, x)
    assert outside.seen == []
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        py, pgrads = _step(model, x)
    events = {e.name for e in prof.events()}
    with _Recorder() as rec:
        ry, rgrads = _step(model, x)
    assert torch.equal(y, ry) and torch.equal(y, py)
    x2 = x.clone().requires_grad_()
    eager_fn = type(ct.relu(x2).grad_fn).__name__
    with _Recorder():
        assert type(ct.relu(x2).grad_fn).__name__ == eager_fn == "GeneratedBackwardFor_convforge_relu_defaultBackward"
    for a, b, c in zip(grads, rgrads, pgrads):
        assert torch.equal(a, b) and torch.equal(a, c)
    for name in _NAMES:
        for n in (name, f"{name}_backward"):
            assert f"convforge.{n}.default" in rec.seen, n
            assert f"convforge::{n}" in events, n


def test_jit_trace_records_the_operators(rng):
    x, w = _t(rng, 2, 3, 6, 6, grad=False), _t(rng, 4, 3, 3, 3, grad=False)
    traced = torch.jit.trace(lambda a, b: ct.relu(ct.conv2d(a, b, padding=1)), (x, w), check_trace=False)
    graph = str(traced.graph)
    assert "convforge::conv2d" in graph and "convforge::relu" in graph
    assert torch.equal(traced(x, w), ct.relu(ct.conv2d(x, w, padding=1)))


def test_operators_called_directly_match_the_functions(rng):
    x, w, b = _t(rng, 2, 3, 6, 6), _t(rng, 4, 3, 3, 3), _t(rng, 4)
    ours = OPS.conv2d(x, w, b, [1, 1], [1, 1, 1, 1], [1, 1], 1, "auto")
    eager = ct.conv2d(x, w, b, padding=1)
    assert torch.equal(ours, eager)
    g = torch.randn_like(ours)
    for a, c in zip(torch.autograd.grad(ours, (x, w, b), g), torch.autograd.grad(eager, (x, w, b), g)):
        assert torch.equal(a, c)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_without_grad_the_results_have_no_graph(rng, context):
    x, w = _t(rng, 1, 2, 5, 5), _t(rng, 3, 2, 3, 3)
    with context():
        y = ct.conv2d(x, w)
    assert y.grad_fn is None and not y.requires_grad
    assert rel_error(y, TF.conv2d(x, w).detach()) < FWD_TOL


def test_compiled_graphs_contain_the_operators(rng):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = {"forward": [], "backward": []}

    def capture(kind):
        def compiler(gm, example_inputs):
            graphs[kind].append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
            return make_boxed_func(gm.forward)

        return compiler

    model, x = _small_net(), _t(rng, 2, 2, 9, 9, grad=False)
    ref_y, ref_grads = _step(model, x)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True,
                             backend=aot_autograd(fw_compiler=capture("forward"), bw_compiler=capture("backward")))
    y, grads = _step(compiled, x)
    assert rel_error(y, ref_y) < FWD_TOL
    for a, b in zip(grads, ref_grads):
        assert rel_error(a, b) < BWD_TOL
    forward, backward = set().union(*graphs["forward"]), set().union(*graphs["backward"])
    for name in _NAMES:
        assert f"convforge.{name}.default" in forward, name
        assert f"convforge.{name}_backward.default" in backward, name


def test_bad_arguments_still_raise_after_good_ones(rng):
    """Validation is remembered per combination of shapes and integer arguments, never for a new one."""
    x, w = _t(rng, 1, 2, 6, 6), _t(rng, 3, 2, 3, 3)
    for _ in range(2):
        ct.conv2d(x, w)
    with pytest.raises(ValueError, match="channels"):
        ct.conv2d(_t(rng, 1, 4, 6, 6), w)
    with pytest.raises(ValueError, match="conv2d"):  # kernel larger than the input
        ct.conv2d(_t(rng, 1, 2, 2, 2), w)
    with pytest.raises(TypeError, match=r"convforge::conv2d: weight must have dtype torch.float32, got torch.int64"):
        ct.conv2d(x, torch.ones(3, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"x must have dtype torch.float32, got torch.float64"):
        ct.relu(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"must have shape"):
        OPS.relu_backward(torch.ones(3), torch.ones(4))
    ct.max_pool2d(x, 2)
    with pytest.raises(ValueError, match="max_pool2d: x must be 4-D"):
        ct.max_pool2d(torch.ones(2, 6, 6), 2)


def test_memo_is_bounded():
    memo = _ops._Memo(limit=3)
    for i in range(10):
        assert memo.put(i, str(i)) == str(i)
        assert len(memo) <= 3 and memo[i] == str(i)


def test_double_backward_says_it_is_not_supported(rng):
    x, w = _t(rng, 1, 2, 5, 5), _t(rng, 3, 2, 3, 3)
    (gx,) = torch.autograd.grad(ct.conv2d(x, w).sum(), x, create_graph=True)
    assert rel_error(gx.detach(), torch.autograd.grad(TF.conv2d(x, w).sum(), x)[0]) < BWD_TOL
    with pytest.raises(RuntimeError, match="convforge::conv2d_backward"):
        gx.sum().backward()


def test_non_contiguous_parameters_and_inputs(rng):
    x = _t(rng, 2, 3, 7, 5, grad=False).transpose(2, 3).requires_grad_()
    w = tnn.Parameter(torch.from_numpy(rng.standard_normal((4, 3, 3, 2)).astype(np.float32)).transpose(2, 3))
    assert not x.is_contiguous() and not w.is_contiguous()
    y = ct.conv2d(x, w)
    ry = TF.conv2d(x, w)
    assert rel_error(y.detach(), ry.detach()) < FWD_TOL
    g = torch.randn_like(ry)
    for a, b in zip(torch.autograd.grad(y, (x, w), g), torch.autograd.grad(ry, (x, w), g)):
        assert rel_error(a, b) < BWD_TOL
