"""convforge's kernels as PyTorch operators: ``torch.ops.convforge.<name>``, from one table.

Each entry of ``OPS`` is one operator: its schema, the function that runs it on arrays, the function
that gives its outputs' shapes without running it (``register_fake``: meta tensors, FakeTensor,
``torch.compile``), and for differentiable operators the autograd formula (``setup_context`` and
``backward``, the pair ``torch.library.register_autograd`` takes), which calls the matching
``*_backward`` operator of the table. Adding an operator is adding one entry (and its backward entry).

Registration (``_register``) is done with ``torch.library.Library`` rather than
``torch.library.custom_op``, whose Python wrappers cost ~25 us a call: each operator gets

- a backend kernel (``CompositeExplicitAutograd``: CPU and CUDA tensors) that checks the tensors,
  hands them to ``run`` as arrays and wraps the results;
- a fake kernel (``torch.library.register_fake``);
- an ``Autograd`` kernel. For plain CPU tensors (``torch.Tensor`` or ``nn.Parameter``, no
  ``TorchDispatchMode`` and no functorch transform active) it runs the backend kernel directly, inside
  a ``torch.autograd.Function`` built from the entry's ``setup_context``/``backward`` when an input
  needs a gradient. Everything else (FakeTensor, FunctionalTensor, proxies under ``torch.compile``,
  meta and CUDA tensors, vmap) takes the kernel ``register_autograd`` would have installed
  (``torch._library.autograd.make_autograd_impl``), which redispatches below autograd.

The autograd formulas call the backward operators through ``_call``, which also runs the backend
kernel directly for plain CPU tensors with grad mode off (an ordinary backward pass), and the
operator itself otherwise (tracing, ``create_graph=True``), so compiled graphs contain the operators.

Tensors reach the kernels without a copy: a contiguous float32 CPU tensor is handed over as a numpy
view of its memory (``Tensor.numpy()``), and the kernel's output array becomes the result tensor
(``torch.from_numpy``). A CUDA tensor goes through DLPack (``convforge.cuda.from_dlpack``) and the
result comes back the same way; synchronisation: convforge's stream first waits for the work queued
on torch's current stream (DLPack's ``stream`` argument), and torch's current stream waits for
convforge's kernels before it uses a result, so no explicit synchronisation is needed on one stream.
A non-contiguous tensor (``channels_last``, a transposed or sliced view) is copied to a contiguous
one first (``Tensor.contiguous()``).

Validation happens once per distinct argument combination: the ``run`` functions call
``convforge.functional`` (which checks ranks, shapes and the geometry, with its messages) the first
time they see a combination of shapes and integer arguments, remember the resulting geometry
(``_Memo``), and afterwards call the ``_C`` kernels with it directly. Dtypes and devices are checked
on every call (``_tensor_args``), cheaply.
"""
import dataclasses
import types
from typing import Callable, Optional

import numpy as np
import torch

from convforge import _C
from convforge import _checks as chk
from convforge import functional as F
from convforge import tuning

NAMESPACE = "convforge"
_FLOAT32 = torch.float32
_INT64 = np.dtype(np.int64)
_CONV_BACKWARD_ALGOS = frozenset(a["name"] for a in _C.algos("conv2d_backward"))

# what the Autograd kernels look at on every call, bound once
_PLAIN_TYPES = frozenset((torch.Tensor, torch.nn.Parameter))
_grad_enabled = torch._C.is_grad_enabled
_any_requires_grad = torch._C._any_requires_grad
_dispatch_modes = torch._C._len_torch_dispatch_stack
_functorch_active = torch._C._are_functorch_transforms_active
_torch_function_mode = torch._C._is_torch_function_mode_enabled
_profiling = torch._C._autograd._profiler_enabled
_compiling = torch.compiler.is_compiling
_jit_tracing = torch._C._get_tracing_state
_ndarray = np.ndarray
_from_numpy = torch.from_numpy


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


class _Memo(dict):
    """Argument combinations already validated, each with what the kernel needs (its geometry).

    Bounded: emptied when it reaches ``limit`` entries (a model has a few dozen combinations; a
    program that keeps changing shapes revalidates now and then)."""

    def __init__(self, limit=4096):
        super().__init__()
        self.limit = limit

    def put(self, key, value):
        """Remember value under key and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


def _builtin(algo):
    """True when algo runs one of our own kernels as it is: not a student kernel, and not "auto" while
    autotuning is on (convforge.functional then asks convforge.tuning for a measured choice)."""
    return algo not in F._student_kernels and (algo != "auto" or not tuning.autotune_enabled())


# ---------------------------------------------------------------------------------------------
# Tensors in, arrays to the kernels, tensors out
# ---------------------------------------------------------------------------------------------

def _arguments(schema: str):
    """[(type, name), ...] from "(Tensor x, Tensor? bias, SymInt[2] stride, ...) -> ..."."""
    arguments = schema[schema.index("(") + 1:schema.index(")")]
    return [tuple(a.strip().rsplit(None, 1)) for a in arguments.split(",")]


def _tensor_args(schema: str):
    """(position, name, float32 expected) of each Tensor argument; the one integer tensor of the
    table, max_pool2d_backward's indices, is checked by convforge.functional."""
    return tuple((i, name, name != "indices") for i, (kind, name) in enumerate(_arguments(schema))
                 if kind in ("Tensor", "Tensor?"))


def _check_tensors(op, tensors, args):
    """Same device for every tensor argument, float32 for every float one (a clear error otherwise);
    returns the device (None when no tensor was given)."""
    device = first = None
    for i, name, floating in tensors:
        a = args[i]
        if a is None:
            continue
        if floating and a.dtype is not _FLOAT32:
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


def _impl(spec: OpSpec, tensors):
    """The backend kernel: tensors checked (dtype, one device), handed to spec.run as arrays (``to_array``),
    results wrapped as tensors (``to_tensor``). Float32 CPU tensors, the common case, take a shorter
    loop: no device objects, numpy views taken in place."""
    op, run = f"{NAMESPACE}::{spec.name}", spec.run

    def general(args):
        device = _check_tensors(op, tensors, args)  # raises, naming the argument
        arrays = list(args)
        for i, _, _ in tensors:
            if args[i] is not None:
                arrays[i] = to_array(args[i])
        out = run(*arrays)
        return tuple(to_tensor(o, device) for o in out) if type(out) is tuple else to_tensor(out, device)

    def impl(*args):
        arrays = list(args)
        for i, _, floating in tensors:
            t = arrays[i]
            if t is None:
                continue
            if (floating and t.dtype is not _FLOAT32) or not t.is_cpu:
                return general(args)
            if not t.is_contiguous():
                t = t.contiguous()
            # force=True: t.detach().numpy() for a tensor that requires grad (the same memory: a float32
            # CPU tensor has no conjugate or negative bit to resolve)
            arrays[i] = t.numpy(force=True) if t.requires_grad else t.numpy()
        out = run(*arrays)
        if type(out) is _ndarray:
            return _from_numpy(out)
        return tuple(_from_numpy(o) if type(o) is _ndarray else to_tensor(o, None) for o in out) \
            if type(out) is tuple else to_tensor(out, None)

    impl.__name__ = spec.name
    return impl


def _fake(spec: OpSpec, tensors):
    op, fake = f"{NAMESPACE}::{spec.name}", spec.fake

    def fake_impl(*args):
        _check_tensors(op, tensors, args)
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


def _shape(a):
    return None if a is None else a.shape


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------
# The run functions: a combination seen before goes straight to the _C kernel with its remembered
# geometry; a new one (or a student kernel, autotuning, a device array) goes through
# convforge.functional, which validates it.

_CONV_GEOMETRY = _Memo()


def _conv2d_run(x, weight, bias, stride, padding, dilation, groups, algo):
    if type(x) is _ndarray and _builtin(algo):
        key = (x.shape, weight.shape, _shape(bias), *stride, *padding, *dilation, groups)
        g = _CONV_GEOMETRY.get(key)
        if g is not None:
            return _C.conv2d_forward(x, weight, bias, g, algo, False)
        y = F.conv2d(x, weight, bias, stride, padding, dilation, groups, algo=algo)
        _CONV_GEOMETRY.put(key, F._conv_geometry("conv2d", x.shape, weight.shape, stride, padding, dilation, groups))
        return y
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
    need = ctx.needs_input_grad
    dx, dw, db = _call.conv2d_backward(grad, x, weight, *ctx.args, [need[0], need[1], need[2]])
    return (dx if need[0] else None, dw if need[1] else None, db if need[2] else None, None, None, None, None, None)


_CONV_BACKWARD_GEOMETRY = _Memo()


def _conv2d_backward_run(grad_out, x, weight, stride, padding, dilation, groups, algo, output_mask):
    if type(x) is _ndarray and _builtin(algo):
        key = (grad_out.shape, x.shape, weight.shape, *stride, *padding, *dilation, groups)
        g = _CONV_BACKWARD_GEOMETRY.get(key)
        if g is not None:
            return _C.conv2d_backward(grad_out, x, weight, g, algo, bool(output_mask[0]), bool(output_mask[1]),
                                      bool(output_mask[2]))
        grads = F.conv2d_backward(grad_out, x, weight, stride, padding, dilation, groups, algo=algo,
                                  output_mask=output_mask)
        _CONV_BACKWARD_GEOMETRY.put(key, F._conv_geometry("conv2d_backward", x.shape, weight.shape, stride, padding,
                                                          dilation, groups))
        return grads
    return F.conv2d_backward(grad_out, x, weight, stride, padding, dilation, groups, algo=algo,
                             output_mask=output_mask)


def _conv2d_backward_fake(grad_out, x, weight, stride, padding, dilation, groups, algo, output_mask):
    return _grads_fake(output_mask, x.shape, weight.shape, (weight.shape[0],), grad_out)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

_POOL_GEOMETRY = _Memo()


def _max_pool2d_run(x, kernel_size, stride, padding, dilation, ceil_mode, with_indices, algo):
    if type(x) is _ndarray and algo not in F._student_kernels:
        key = ("max", x.shape, *kernel_size, *stride, *padding, *dilation, ceil_mode)
        g = _POOL_GEOMETRY.get(key)
        if g is None:
            chk_x = chk.float_array("max_pool2d", "x", x, 4)  # the rank's message, as convforge.functional
            g = _POOL_GEOMETRY.put(key, F._pool_geometry("max_pool2d", chk_x.shape, kernel_size, stride, padding,
                                                         dilation, ceil_mode))
        y, indices = _C.max_pool2d_forward(x, g, bool(with_indices), algo)
    else:
        out = F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, bool(with_indices), algo=algo)
        y, indices = out if with_indices else (out, None)
    # no indices asked for: an empty int64 array in their place (a new one: outputs never share memory)
    return y, (indices if with_indices else np.empty(0, np.int64))


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
    return _call.max_pool2d_backward(grad, indices, ctx.input_shape), None, None, None, None, None, None, None


_MAX_POOL_BACKWARD_CHECKED = _Memo()


def _max_pool2d_backward_run(grad_out, indices, input_shape):
    if type(grad_out) is _ndarray and type(indices) is _ndarray and indices.dtype == _INT64:
        key = (grad_out.shape, indices.shape, *input_shape)
        if key in _MAX_POOL_BACKWARD_CHECKED:
            return _C.max_pool2d_backward(grad_out, indices, input_shape)
        dx = F.max_pool2d_backward(grad_out, indices, input_shape)
        _MAX_POOL_BACKWARD_CHECKED.put(key, True)
        return dx
    return F.max_pool2d_backward(grad_out, indices, input_shape)


def _max_pool2d_backward_fake(grad_out, indices, input_shape):
    return grad_out.new_empty(input_shape)


def _avg_pool2d_run(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo):
    if type(x) is _ndarray and algo not in F._student_kernels:
        key = ("avg", x.shape, *kernel_size, *stride, *padding, ceil_mode)
        g = _POOL_GEOMETRY.get(key)
        if g is None:
            chk_x = chk.float_array("avg_pool2d", "x", x, 4)
            g = _POOL_GEOMETRY.put(key, F._pool_geometry("avg_pool2d", chk_x.shape, kernel_size, stride, padding, 1,
                                                         ceil_mode))
        return _C.avg_pool2d_forward(x, g, bool(count_include_pad), algo)
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo=algo)


def _avg_pool2d_fake(x, kernel_size, stride, padding, ceil_mode, count_include_pad, algo):
    g = F._pool_geometry("avg_pool2d", _static_shape(x), kernel_size, stride, padding, 1, ceil_mode)
    return x.new_empty((x.shape[0], x.shape[1], g.P, g.Q))


def _avg_pool2d_setup(ctx, inputs, output):
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, _algo = inputs
    ctx.args = (list(x.shape), kernel_size, stride, padding, ceil_mode, count_include_pad)


def _avg_pool2d_backward(ctx, grad):
    return _call.avg_pool2d_backward(grad, *ctx.args), None, None, None, None, None, None


_AVG_POOL_BACKWARD_GEOMETRY = _Memo()


def _avg_pool2d_backward_run(grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad):
    if type(grad_out) is _ndarray:
        key = (grad_out.shape, *input_shape, *kernel_size, *stride, *padding, ceil_mode)
        g = _AVG_POOL_BACKWARD_GEOMETRY.get(key)
        if g is not None:
            return _C.avg_pool2d_backward(grad_out, g, bool(count_include_pad))
        dx = F.avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad)
        _AVG_POOL_BACKWARD_GEOMETRY.put(key, F._pool_geometry("avg_pool2d_backward", tuple(input_shape), kernel_size,
                                                              stride, padding, 1, ceil_mode))
        return dx
    return F.avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad)


def _avg_pool2d_backward_fake(grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad):
    return grad_out.new_empty(input_shape)


# ---------------------------------------------------------------------------------------------
# linear: 2-D inputs take the remembered path; others (and student GEMMs, autotuning) convforge.functional's
# ---------------------------------------------------------------------------------------------

_LINEAR_CHECKED = _Memo()


def _linear_run(x, weight, bias, algo):
    if type(x) is _ndarray and x.ndim == 2 and _builtin(algo):
        key = ("forward", x.shape, weight.shape, _shape(bias))
        if key in _LINEAR_CHECKED:
            return _C.linear_forward(x, weight, bias, algo)
        y = F.linear(x, weight, bias, algo=algo)
        _LINEAR_CHECKED.put(key, True)
        return y
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
    need = ctx.needs_input_grad
    dx, dw, db = _call.linear_backward(grad, x, weight, ctx.algo, [need[0], need[1], need[2]])
    return dx if need[0] else None, dw if need[1] else None, db if need[2] else None, None


def _linear_backward_run(grad_out, x, weight, algo, output_mask):
    if type(x) is _ndarray and x.ndim == 2 and _builtin(algo):
        key = ("backward", grad_out.shape, x.shape, weight.shape)
        if key in _LINEAR_CHECKED:
            return (_C.gemm(grad_out, weight, None, 1.0, 0.0, False, False, algo) if output_mask[0] else None,
                    _C.gemm(grad_out, x, None, 1.0, 0.0, True, False, algo) if output_mask[1] else None,
                    _C.sum_rows(grad_out) if output_mask[2] else None)
        grads = F.linear_backward(grad_out, x, weight, algo=algo, output_mask=output_mask)
        _LINEAR_CHECKED.put(key, True)
        return grads
    return F.linear_backward(grad_out, x, weight, algo=algo, output_mask=output_mask)


def _linear_backward_fake(grad_out, x, weight, algo, output_mask):
    return _grads_fake(output_mask, x.shape, weight.shape, (weight.shape[0],), grad_out)


# ---------------------------------------------------------------------------------------------
# Activations: the backward of relu takes its input, those of tanh and sigmoid their output
# ---------------------------------------------------------------------------------------------

def _unary_run(kernel, checked):
    """kernel (a _C function's name, looked up at each call) on a numpy array, convforge.functional's
    `checked` on anything else (its dtype and device checks)."""
    def run(x):
        if type(x) is _ndarray:
            return getattr(_C, kernel)(x)
        return checked(x)

    run.__name__ = f"_{kernel}_run"
    return run


def _unary_backward_run(kernel, checked):
    def run(grad_out, saved):
        if type(grad_out) is _ndarray and type(saved) is _ndarray and grad_out.shape == saved.shape:
            return getattr(_C, kernel)(grad_out, saved)
        return checked(grad_out, saved)

    run.__name__ = f"_{kernel}_run"
    return run


def _like_first(x, *rest):
    return x.new_empty(x.shape)


def _save_input(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)


def _unary_backward(backward_op):
    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        return getattr(_call, backward_op)(grad, saved)

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
           _max_pool2d_backward_run, _max_pool2d_backward_fake),
    OpSpec("avg_pool2d", "(Tensor x, SymInt[2] kernel_size, SymInt[2] stride, SymInt[2] padding, bool ceil_mode, "
           "bool count_include_pad, str algo) -> Tensor",
           _avg_pool2d_run, _avg_pool2d_fake, _avg_pool2d_setup, _avg_pool2d_backward),
    OpSpec("avg_pool2d_backward", "(Tensor grad_out, SymInt[4] input_shape, SymInt[2] kernel_size, SymInt[2] stride, "
           "SymInt[2] padding, bool ceil_mode, bool count_include_pad) -> Tensor",
           _avg_pool2d_backward_run, _avg_pool2d_backward_fake),
    OpSpec("linear", "(Tensor x, Tensor weight, Tensor? bias, str algo) -> Tensor",
           _linear_run, _linear_fake, _linear_setup, _linear_backward),
    OpSpec("linear_backward", f"(Tensor grad_out, Tensor x, Tensor weight, str algo, bool[3] output_mask) -> {_GRADS}",
           _linear_backward_run, _linear_backward_fake),
    OpSpec("relu", "(Tensor x) -> Tensor", _unary_run("relu_forward", F.relu), _like_first, _save_input,
           _unary_backward("relu_backward")),
    OpSpec("relu_backward", "(Tensor grad_out, Tensor x) -> Tensor",
           _unary_backward_run("relu_backward", F.relu_backward), _like_first),
    OpSpec("tanh", "(Tensor x) -> Tensor", _unary_run("tanh_forward", F.tanh), _like_first, _save_output,
           _unary_backward("tanh_backward")),
    OpSpec("tanh_backward", "(Tensor grad_out, Tensor y) -> Tensor",
           _unary_backward_run("tanh_backward", F.tanh_backward), _like_first),
    OpSpec("sigmoid", "(Tensor x) -> Tensor", _unary_run("sigmoid_forward", F.sigmoid), _like_first, _save_output,
           _unary_backward("sigmoid_backward")),
    OpSpec("sigmoid_backward", "(Tensor grad_out, Tensor y) -> Tensor",
           _unary_backward_run("sigmoid_backward", F.sigmoid_backward), _like_first),
)


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------

def _plain_cpu(tensors):
    """A test of an argument tuple: every tensor a plain CPU torch.Tensor (or nn.Parameter), with no
    TorchDispatchMode (FakeTensorMode, proxy tracing) and no functorch transform active: the backend
    kernel may then run directly, without the dispatcher."""
    positions = tuple(i for i, _, _ in tensors)

    def plain(args):
        if _dispatch_modes() or _functorch_active():
            return False
        for i in positions:
            t = args[i]
            if t is not None and (type(t) not in _PLAIN_TYPES or not t.is_cpu):
                return False
        return True

    return plain


def _no_derivative(name):
    def backward(ctx, *grads):
        raise RuntimeError(f"Trying to backward through {NAMESPACE}::{name}, which has no derivative "
                           f"(convforge's backward operators are not differentiable: no double backward)")

    return backward


def _function(spec: OpSpec, impl):
    """The C++ ``apply`` of a torch.autograd.Function whose forward runs impl and spec.setup_context
    and whose backward is spec.backward (or raises: no derivative)."""
    setup = spec.setup_context

    def forward(ctx, *args):
        out = impl(*args)
        if setup is not None:
            setup(ctx, args, out)
        return out

    # named as register_autograd's own (torch._library.autograd): grad_fn reads the same on both paths
    function = type(f"GeneratedBackwardFor_{NAMESPACE}_{spec.name}_default", (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(spec.backward or _no_derivative(spec.name)),
    })
    # autograd.Function.apply without its functorch preamble (plain() has checked that no functorch
    # transform is active, and plain tensors are never dead functorch wrappers): the C++ apply itself
    return super(torch.autograd.Function, function).apply


def _autograd_kernel(spec: OpSpec, op, impl, apply, plain):
    """The operator's Autograd kernel (see the module's docstring)."""
    fallback = torch._library.autograd.make_autograd_impl(
        op, torch._library.autograd.Info(spec.backward, spec.setup_context))

    def kernel(keyset, *args):
        if plain(args):
            if _grad_enabled() and _any_requires_grad(*args):
                return apply(*args)
            return impl(*args)
        return fallback(keyset, *args)

    kernel.__name__ = f"{spec.name}_autograd"
    return kernel


def _eager_call(op, impl, apply, plain):
    """convforge.torch's functions' way in: what the Autograd kernel would do, without the trip through
    the dispatcher, for plain CPU tensors in eager mode with nothing watching the dispatcher (no
    TorchFunctionMode, no profiler, no torch.jit.trace); the operator itself otherwise (torch.compile
    traces the operator: torch.compiler.is_compiling() is True while dynamo traces)."""
    def call(*args):
        if _compiling() or _torch_function_mode() or _profiling() or _jit_tracing() or not plain(args):
            return op(*args)
        if _grad_enabled() and _any_requires_grad(*args):
            return apply(*args)
        return impl(*args)

    return call


def _direct_call(op, impl, plain):
    """How the autograd formulas call an operator: its backend kernel directly for plain CPU tensors in an
    ordinary backward pass (grad mode off), the operator otherwise (tracing, create_graph=True, and under
    the profiler, whose trace then names the operator)."""
    def call(*args):
        if not _grad_enabled() and not _profiling() and plain(args):
            return impl(*args)
        return op(*args)

    return call


_LIB = torch.library.Library(NAMESPACE, "DEF")  # kept alive: the registrations last as long as this object
_call = types.SimpleNamespace()  # name -> _direct_call of the operator, for the autograd formulas
eager = types.SimpleNamespace()  # name -> _eager_call of the operator, for convforge.torch.functional


def _register(spec: OpSpec):
    """Define torch.ops.convforge.<spec.name> and register its kernels; returns its OpOverload."""
    tensors = _tensor_args(spec.schema)
    _LIB.define(spec.name + spec.schema, tags=(torch.Tag.pt2_compliant_tag,))
    op = getattr(getattr(torch.ops, NAMESPACE), spec.name).default
    impl = _impl(spec, tensors)
    plain = _plain_cpu(tensors)
    apply = _function(spec, impl)
    _LIB.impl(spec.name, impl, "CompositeExplicitAutograd")
    torch.library.register_fake(f"{NAMESPACE}::{spec.name}", _fake(spec, tensors), lib=_LIB)
    _LIB.impl(spec.name, _autograd_kernel(spec, op, impl, apply, plain), "Autograd", with_keyset=True)
    setattr(_call, spec.name, _direct_call(op, impl, plain))
    setattr(eager, spec.name, _eager_call(op, impl, apply, plain))
    return op


REGISTERED = {spec.name: _register(spec) for spec in OPS}  # name -> torch.ops.convforge.<name>.default
