"""``torch.nn.functional``'s names, arguments and defaults on tensors, run by convforge's kernels.

Each function normalises its arguments as torch does (an int or a pair, ``stride=None`` meaning the
kernel size, ``padding="same"``) and calls the matching ``torch.ops.convforge`` operator
(``convforge/torch/_ops.py``), so autograd, ``torch.compile(fullgraph=True)`` and meta tensors work.
In eager mode, for plain CPU tensors with no TorchFunctionMode or profiler active, the call skips the
trip through torch's dispatcher and runs what the operator's Autograd kernel would run (``_ops.eager``);
under torch.compile, and in every other case, it is a call of the operator.
``algo=`` (keyword only) picks one of the kernel variants that ``convforge.functional.algos(op)``
lists, or a student kernel loaded with ``convforge.load_kernel``.

Tensors are float32, on the CPU or a CUDA device (with a CUDA build of convforge). A non-contiguous
tensor (``channels_last`` included) is copied to a contiguous one before the kernel runs; the
results are contiguous NCHW tensors.
"""
import torch

from convforge import _checks as chk
from convforge import functional as _F

from ._ops import eager as _ops

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "tanh", "sigmoid"]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algo="auto"):
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``, on convforge's conv2d kernels.

    Parameters
    ----------
    input : Tensor, float32, shape (N, C, H, W)
    weight : Tensor, float32, shape (K, C / groups, R, S)
    bias : Tensor, float32, shape (K,), optional
    stride, dilation : int or pair of ints
    padding : int, pair of ints, "same", "valid" or (top, bottom, left, right)
    groups : int
    algo : str
        A ``conv2d_forward`` algo of ``convforge.functional.algos`` ("auto" picks one). The gradients
        use the same algo where ``conv2d_backward`` has it, else "auto".

    Returns
    -------
    Tensor, float32, shape (N, K, P, Q)
        P and Q from the output-size rule of ``csrc/common/geometry.h``.

    Raises
    ------
    TypeError
        A tensor that is not float32, or an argument of the wrong type.
    ValueError
        Tensors on different devices; shapes or geometry that do not fit (named in the message).
    RuntimeError
        A CUDA tensor when convforge was built without CUDA.
    """
    op = "conv2d"
    stride = chk.pair(op, "stride", stride)
    dilation = chk.pair(op, "dilation", dilation)
    pads = _F._conv_padding(op, padding, tuple(weight.shape[2:]), stride, dilation)
    return _ops.conv2d(input, weight, bias, stride, pads, dilation, chk.integer(op, "groups", groups), algo)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               algo="auto"):
    """Max pooling, as ``torch.nn.functional.max_pool2d``, on convforge's pooling kernels.

    Parameters
    ----------
    input : Tensor, float32, shape (N, C, H, W)
    kernel_size, padding, dilation : int or pair of ints
    stride : int or pair of ints, optional
        Default: kernel_size.
    ceil_mode, return_indices : bool
    algo : str
        A ``pool2d`` algo of ``convforge.functional.algos``.

    Returns
    -------
    Tensor, float32, shape (N, C, P, Q), and with return_indices an int64 Tensor of the same shape
        holding each maximum's flat position h * W + w in its plane (as torch).
        The indices are computed whenever the input needs a gradient (the backward uses them).
    """
    op = "max_pool2d"
    kernel = chk.pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or stride == () else chk.pair(op, "stride", stride)
    with_indices = bool(return_indices) or (torch.is_grad_enabled() and input.requires_grad)
    y, indices = _ops.max_pool2d(input, kernel, stride, chk.pair(op, "padding", padding),
                                   chk.pair(op, "dilation", dilation), bool(ceil_mode), with_indices, algo)
    return (y, indices) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, algo="auto"):
    """Average pooling, as ``torch.nn.functional.avg_pool2d``, on convforge's pooling kernels.

    Parameters
    ----------
    input : Tensor, float32, shape (N, C, H, W)
    kernel_size, padding : int or pair of ints
    stride : int or pair of ints, optional
        Default: kernel_size.
    ceil_mode, count_include_pad : bool
    divisor_override : None
        Only None (the window's size) is supported.
    algo : str
        A ``pool2d`` algo of ``convforge.functional.algos``.

    Returns
    -------
    Tensor, float32, shape (N, C, P, Q)

    Raises
    ------
    ValueError
        divisor_override other than None, or a geometry that does not fit.
    """
    op = "avg_pool2d"
    if divisor_override is not None:
        raise ValueError(f"{op}: divisor_override is not supported by convforge, got {divisor_override!r} "
                         f"(use torch.nn.functional.avg_pool2d)")
    kernel = chk.pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or stride == () else chk.pair(op, "stride", stride)
    return _ops.avg_pool2d(input, kernel, stride, chk.pair(op, "padding", padding), bool(ceil_mode),
                             bool(count_include_pad), algo)


def linear(input, weight, bias=None, *, algo="auto"):
    """input @ weight.T + bias, as ``torch.nn.functional.linear``, on convforge's GEMM.

    Parameters
    ----------
    input : Tensor, float32, shape (*, in_features)
    weight : Tensor, float32, shape (out_features, in_features)
    bias : Tensor, float32, shape (out_features,), optional
    algo : str
        A ``gemm`` algo of ``convforge.functional.algos``.

    Returns
    -------
    Tensor, float32, shape (*, out_features)
    """
    return _ops.linear(input, weight, bias, algo)


def relu(input, inplace=False):
    """max(input, 0), as ``torch.nn.functional.relu``.

    inplace=True is accepted and computed out of place: the result is the same, input is left as it was.
    """
    return _ops.relu(input)


def tanh(input):
    """tanh(input), as ``torch.tanh``."""
    return _ops.tanh(input)


def sigmoid(input):
    """1 / (1 + exp(-input)), as ``torch.sigmoid``."""
    return _ops.sigmoid(input)
