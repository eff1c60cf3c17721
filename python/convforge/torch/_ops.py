"""convforge's kernels as PyTorch operators: ``torch.ops.convforge.<name>``, from one table.

Each entry of ``OPS`` is one operator: its schema, the ``convforge.functional`` call that runs it on
arrays, the function that gives its outputs' shapes without running it (``register_fake``: meta
tensors, FakeTensor, ``torch.compile``), and for differentiable operators the autograd formula
(``register_autograd``), which calls the matching ``*_backward`` operator of the table. Adding an
operator is adding one entry (and its backward entry).

Tensors reach the kernels without a copy: a contiguous float32 CPU tensor is handed over as a numpy
view of its memory (``Tensor.numpy()``), and the kernel's output array becomes the result tensor
(``torch.from_numpy``). A CUDA tensor goes through DLPack (``convforge.cuda.from_dlpack``) and the
result comes back the same way; synchronisation: convforge's stream first waits for the work queued
on torch's current stream (DLPack's ``stream`` argument), and torch's current stream waits for
convforge's kernels before it uses a result, so no explicit synchronisation is needed on one stream.
A non-contiguous tensor (``channels_last``, a transposed or sliced view) is copied to a contiguous
one first (``Tensor.contiguous()``).
"""
import dataclasses
from typing import Callable, Optional

import numpy as np
import torch

from convforge import _C
from convforge import functional as F

NAMESPACE = "convforge"
_FLOAT32 = torch.float32
_CONV_BACKWARD_ALGOS = frozenset(a["name"] for a in _C.algos("conv2d_backward"))


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One operator of the table.

    Parameters
    ----------
    name : str
        The operator's name in the ``convforge::`` namespace.
    schema : str
        Its arguments and results in torch's schema language, e.g. ``"(Tensor x) -> Tensor"``.
    run : callable
        The operator on arrays (numpy on the CPU, ``DeviceArray`` on the GPU) with the schema's
        arguments in order; returns an array, None (an empty result) or a tuple of them.
    fake : callable
        The same arguments as tensors without data; returns empty tensors of the results' shapes.
    setup_context, backward : callable, optional
        ``torch.library.register_autograd``'s pair; absent for operators without a gradient.
    """
    name: str
    schema: str
    run: Callable
    fake: Callable
    setup_context: Optional[Callable] = None
    backward: Optional[Callable] = None


def _ops():
    return getattr(torch.ops, NAMESPACE)


# ---------------------------------------------------------------------------------------------
# Tensors in, arrays to the kernels, tensors out
# ---------------------------------------------------------------------------------------------

def _check_tensors(op, names, args):
    """Same device for every tensor argument, float32 for every floating one (a clear error otherwise)."""
    device = None
    first = None
    for name, a in zip(names, args):
        if not isinstance(a, torch.Tensor):
            continue
        if a.dtype is not _FLOAT32 and a.is_floating_point():
            raise TypeError(f"{op}: {name} must have dtype torch.float32, got {a.dtype} "
                            f"(convforge never casts silently: convert with .float())")
        if device is None:
            device, first = a.device, name
        elif a.device != device:
            raise ValueError(f"{op}: all tensors must be on the same device, got {first} on {device} "
                             f"and {name} on {a.device}")
    return device


def _cuda_module():
    from convforge import cuda

    if not cuda.is_compiled():
        raise RuntimeError("convforge: this tensor is on a CUDA device but convforge was built without CUDA; "
                           "rebuild it with nvcc on the PATH (pip install . finds it; "
                           "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=... picks the GPUs) or move the tensor "
                           "to the CPU with .cpu()")
    return cuda


def to_array(t: torch.Tensor):
    """The kernel-side array of a tensor: a numpy view of a contiguous CPU tensor's memory (no copy),
    a convforge DeviceArray sharing a CUDA tensor's memory (DLPack); non-contiguous tensors are copied
    to a contiguous one first."""
    if t.requires_grad:
        t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.is_cpu:
        return t.numpy()
    if t.is_cuda:
        return _cuda_module().from_dlpack(t)
    raise ValueError(f"convforge: tensors must be on the CPU or a CUDA device, got one on {t.device}")


def to_tensor(a, device):
    """A kernel's result as a tensor on device: torch.from_numpy (no copy) or DLPack; None -> empty."""
    if a is None:
        return torch.empty(0, device=device)
    if isinstance(a, np.ndarray):
        t = torch.from_numpy(a)
        return t if device is None or device.type == "cpu" else t.to(device)  # max_pool2d: no indices, on a GPU
    return torch.from_dlpack(a)


def _impl(spec: OpSpec, names):
    op, run = f"{NAMESPACE}::{spec.name}", spec.run

    def impl(*args):
        device = _check_tensors(op, names, args)
        out = run(*(to_array(a) if isinstance(a, torch.Tensor) else a for a in args))
        if isinstance(out, tuple):
            return tuple(to_tensor(o, device) for o in out)
        return to_tensor(out, device)

    impl.__name__ = spec.name
    return impl


def _fake(spec: OpSpec, names):
    op, fake = f"{NAMESPACE}::{spec.name}", spec.fake

    def fake_impl(*args):
        _check_tensors(op, names, args)
        return fake(*args)

    return fake_impl


def _static_shape(t: torch.Tensor):
    """The shape as ints for the geometry (csrc/common/geometry.h), which takes plain integers: the
    batch size stays symbolic (it never changes the output size rule; 1 stands in for it), other
    symbolic sizes are specialised (torch.compile then guards on them)."""
    n = t.shape[0]
    return (n if isinstance(n, int) else 1,) + tuple(int(s) for s in t.shape[1:])


def _backward_algo(algo: str) -> str:
    """conv2d's backward runs the forward's algo where conv2d_backward has it (or it names a student
    kernel); forward-only algos (winograd, direct_k) fall back to "auto" for the gradients."""
    return algo if algo in _CONV_BACKWARD_ALGOS or algo in F._student_kernels else "auto"


def _grads_fake(output_mask, *shapes_then_like):
    """Empty gradients of the given shapes; a gradient not asked for is an empty (0,) tensor, as run gives."""
    *shapes, like = shapes_then_like
    return tuple(like.new_empty(shape if wanted else (0,)) for wanted, shape in zip(output_mask, shapes))


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

def _conv2d_run(x, weight, bias, stride, padding, dilation, groups, algo):
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups, algo=algo)


def _conv2d_fake(x, weight, bias, stride, padding, dilation, groups, algo):
    g = F._conv_geometry("conv2d", _static_shape(x), tuple(int(s) for s in weight.shape), stride, padding,
                         dilation, groups)
    return x.new_empty((x.shape[0], g.K, g.P, g.Q))


def _conv2d_setup(ctx, inputs, output):
    x, weight, _bias, stride, padding, dilation, groups, algo = inputs
    ctx.save_for_backward(x, weight)
    ctx.args = (stride, padding, dilation, groups, _backward_algo(algo))


def _conv2d_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    need = [bool(n) for n in ctx.needs_input_grad[:3]]
    dx, dw, db = _ops().conv2d_backward(grad, x, weight, *ctx.args, need)
    return (dx if need[0] else None, dw if need[1] else None, db if need[2] else None) + (None,) * 5


def _conv2d_backward_run(grad_out, x, weight, stride, padding, dilation, groups, algo, output_mask):
    return F.conv2d_backward(grad_out, x, weight, stride, padding, dilation, groups, algo=algo,
                             output_mask=output_mask)


def _conv2d_backward_fake(grad_out, x, weight, stride, padding, dilation, groups, algo, output_mask):
    return _grads_fake(output_mask, x.shape, weight.shape, (weight.shape[0],), grad_out)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

def _max_pool2d_run(x, kernel_size, stride, padding, dilation, ceil_mode, with_indices, algo):
    if with_indices:
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True, algo=algo)
    # no indices asked for: an empty int64 array in their place (a new one: outputs never share memory)
    return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, False, algo=algo), np.empty(0, np.int64)


def _max_pool2d_fake(x, kernel_size, stride, padding, dilation, ceil_mode, with_indices, algo):
    g = F._pool_geometry("max_pool2d", _static_shape(x), kernel_size, stride, padding, dilation, ceil_mode)
    shape = (x.shape[0], x.shape[1], g.P, g.Q)
    return x.new_empty(shape), x.new_empty(shape if with_indices else (0,), dtype=torch.int64)


def _max_pool2d_setup(ctx, inputs, output):
    ctx.input_shape = list(inputs[0].shape)
    ctx.with_indices = inputs[6]
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])


def _max_pool2d_backward(ctx, grad, _grad_indices):
    if not ctx.with_indices:
        raise RuntimeError("convforge::max_pool2d: the gradient needs the indices; call it with "
                           "with_indices=True (convforge.torch.max_pool2d does when the input needs a gradient)")
    (indices,) = ctx.saved_tensors
    return (_ops().max_pool2d_backward(grad, indices, ctx.input_shape),) + (None,) * 7


def _max_pool2d_backward_fake(grad_out, indices, input_shape):
    return grad_out.new_empty(input_shape)


def _avg_pool2d_run(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo):
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo=algo)


def _avg_pool2d_fake(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo):
    g = F._pool_geometry("avg_pool2d", _static_shape(x), kernel_size, stride, padding, 1, ceil_mode)
    return x.new_empty((x.shape[0], x.shape[1], g.P, g.Q))


def _avg_pool2d_setup(ctx, inputs, output):
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, _algo = inputs
    ctx.args = (list(x.shape), kernel_size, stride, padding, ceil_mode, count_include_pad)


def _avg_pool2d_backward(ctx, grad):
    return (_ops().avg_pool2d_backward(grad, *ctx.args),) + (None,) * 6


def _avg_pool2d_backward_fake(grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad):
    return grad_out.new_empty(input_shape)


# ---------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------

def _linear_run(x, weight, bias, algo):
    return F.linear(x, weight, bias, algo=algo)


def _linear_fake(x, weight, bias, algo):
    F._rows("linear", "x", x, weight.shape[1])  # the shape rule and its message, as the kernel's
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _linear_setup(ctx, inputs, output):
    x, weight, _bias, algo = inputs
    ctx.save_for_backward(x, weight)
    ctx.algo = algo


def _linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    need = [bool(n) for n in ctx.needs_input_grad[:3]]
    dx, dw, db = _ops().linear_backward(grad, x, weight, ctx.algo, need)
    return dx if need[0] else None, dw if need[1] else None, db if need[2] else None, None


def _linear_backward_run(grad_out, x, weight, algo, output_mask):
    return F.linear_backward(grad_out, x, weight, algo=algo, output_mask=output_mask)


def _linear_backward_fake(grad_out, x, weight, algo, output_mask):
    return _grads_fake(output_mask, x.shape, weight.shape, (weight.shape[0],), grad_out)


# ---------------------------------------------------------------------------------------------
# Activations: the backward of relu takes its input, those of tanh and sigmoid their output
# ---------------------------------------------------------------------------------------------

def _like_first(x, *rest):
    return x.new_empty(x.shape)


def _save_input(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)


def _unary_backward(backward_op):
    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        return getattr(_ops(), backward_op)(grad, saved)

    return backward


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

_CONV_ARGS = "SymInt[2] stride, SymInt[4] padding, SymInt[2] dilation, SymInt groups, str algo"
_GRADS = "(Tensor, Tensor, Tensor)"

OPS = (
    OpSpec("conv2d", f"(Tensor x, Tensor weight, Tensor? bias, {_CONV_ARGS}) -> Tensor",
           _conv2d_run, _conv2d_fake, _conv2d_setup, _conv2d_backward),
    OpSpec("conv2d_backward", f"(Tensor grad_out, Tensor x, Tensor weight, {_CONV_ARGS}, bool[3] output_mask) "
           f"-> {_GRADS}", _conv2d_backward_run, _conv2d_backward_fake),
    OpSpec("max_pool2d", "(Tensor x, SymInt[2] kernel_size, SymInt[2] stride, SymInt[2] padding, SymInt[2] dilation, "
           "bool ceil_mode, bool with_indices, str algo) -> (Tensor, Tensor)",
           _max_pool2d_run, _max_pool2d_fake, _max_pool2d_setup, _max_pool2d_backward),
    OpSpec("max_pool2d_backward", "(Tensor grad_out, Tensor indices, SymInt[4] input_shape) -> Tensor",
           F.max_pool2d_backward, _max_pool2d_backward_fake),
    OpSpec("avg_pool2d", "(Tensor x, SymInt[2] kernel_size, SymInt[2] stride, SymInt[2] padding, bool ceil_mode, "
           "bool count_include_pad, str algo) -> Tensor",
           _avg_pool2d_run, _avg_pool2d_fake, _avg_pool2d_setup, _avg_pool2d_backward),
    OpSpec("avg_pool2d_backward", "(Tensor grad_out, SymInt[4] input_shape, SymInt[2] kernel_size, SymInt[2] stride, "
           "SymInt[2] padding, bool ceil_mode, bool count_include_pad) -> Tensor",
           F.avg_pool2d_backward, _avg_pool2d_backward_fake),
    OpSpec("linear", "(Tensor x, Tensor weight, Tensor? bias, str algo) -> Tensor",
           _linear_run, _linear_fake, _linear_setup, _linear_backward),
    OpSpec("linear_backward", f"(Tensor grad_out, Tensor x, Tensor weight, str algo, bool[3] output_mask) -> {_GRADS}",
           _linear_backward_run, _linear_backward_fake),
    OpSpec("relu", "(Tensor x) -> Tensor", F.relu, _like_first, _save_input, _unary_backward("relu_backward")),
    OpSpec("relu_backward", "(Tensor grad_out, Tensor x) -> Tensor", F.relu_backward, _like_first),
    OpSpec("tanh", "(Tensor x) -> Tensor", F.tanh, _like_first, _save_output, _unary_backward("tanh_backward")),
    OpSpec("tanh_backward", "(Tensor grad_out, Tensor y) -> Tensor", F.tanh_backward, _like_first),
    OpSpec("sigmoid", "(Tensor x) -> Tensor", F.sigmoid, _like_first, _save_output,
           _unary_backward("sigmoid_backward")),
    OpSpec("sigmoid_backward", "(Tensor grad_out, Tensor y) -> Tensor", F.sigmoid_backward, _like_first),
)


def _argument_names(schema: str):
    """["x", "weight", ...] from "(Tensor x, Tensor weight, ...) -> ...", for the error messages."""
    arguments = schema[schema.index("(") + 1:schema.index(")")]
    return [a.split()[-1] for a in arguments.split(",")]


def _register(spec: OpSpec):
    qualname = f"{NAMESPACE}::{spec.name}"
    names = _argument_names(spec.schema)
    op = torch.library.custom_op(qualname, _impl(spec, names), mutates_args=(), schema=spec.schema)
    op.register_fake(_fake(spec, names))
    if spec.backward is not None:
        op.register_autograd(spec.backward, setup_context=spec.setup_context)
    return op


REGISTERED = {spec.name: _register(spec) for spec in OPS}
