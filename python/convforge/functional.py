"""The functional API: ``torch.nn.functional``'s names, argument order and defaults, on our kernels.

Inputs are float32 arrays, NCHW: numpy arrays run on the CPU, convforge device arrays on the GPU.
Outputs are new arrays on the inputs' device. Every function checks its arguments here
(``_checks``), builds the geometry once in C++ (``csrc/common/geometry.h``) and dispatches by device
(``_backend``); ``algo=`` picks a kernel variant (``convforge.functional.algos(op)`` lists them).
"""
from __future__ import annotations

import numpy as np

from . import _C
from . import _checks as chk
from . import tuning
from ._backend import backend_for

# Student kernels loaded by convforge.load_kernel, by algo name (convforge/kernels.py fills it):
# an algo= naming one of them runs it instead of the backend's kernels.
_student_kernels: dict = {}

__all__ = [
    "conv2d", "conv2d_backward", "conv_output_size",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "batch_norm", "batch_norm_backward",
    "gemm", "matmul", "linear", "linear_backward",
    "relu", "relu_backward", "tanh", "tanh_backward", "sigmoid", "sigmoid_backward",
    "cross_entropy", "cross_entropy_backward",
    "set_num_threads", "get_num_threads", "set_flush_denormal", "get_flush_denormal", "algos",
]


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------

def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1) -> int:
    """Output length of a convolution along one axis: floor((n + 2p - d(f - 1) - 1) / s) + 1.

    The rule of ``torch.nn.Conv2d`` (and ``csrc/common/geometry.h``, which every kernel calls).

    Parameters
    ----------
    n : int
        Input length (H or W), at least 1.
    kernel_size : int
        Filter length f (R or S), at least 1.
    stride, padding, dilation : int
        s >= 1, p >= 0 on each side, d >= 1.

    Returns
    -------
    int
        The output length (P or Q), at least 1.

    Raises
    ------
    TypeError
        An argument is not an integer.
    ValueError
        A non-positive n, kernel_size, stride or dilation, a negative padding, or a (dilated) kernel
        larger than the padded input.
    """
    op = "conv_output_size"
    n, f, s, p, d = (chk.integer(op, k, v) for k, v in
                     (("n", n), ("kernel_size", kernel_size), ("stride", stride),
                      ("padding", padding), ("dilation", dilation)))
    if n <= 0 or f <= 0 or s <= 0 or d <= 0 or p < 0:
        raise ValueError(f"{op}: n, kernel_size, stride and dilation must be positive and padding "
                         f"non-negative, got n={n}, kernel_size={f}, stride={s}, padding={p}, dilation={d}")
    if d * (f - 1) + 1 > n + 2 * p:
        raise ValueError(f"{op}: kernel_size {f} (dilation {d}) is larger than the padded input {n + 2 * p}")
    return int(_C.conv_output_size(n, f, s, p, p, d))


def _conv_padding(op, padding, kernel_hw, stride, dilation):
    """(top, bottom, left, right) from an int, a pair, "valid", "same" (extra on the bottom/right, as PyTorch)
    or already (top, bottom, left, right) (what convforge.torch's operators carry)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, got stride {stride}")
            pads = []
            for k, d in zip(kernel_hw, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(chk.integer(op, "padding", p) for p in padding)
    ph, pw = chk.pair(op, "padding", padding)
    return (ph, ph, pw, pw)


# Geometries already built, by their raw arguments: a training step asks for the same few layers'
# geometries again and again, and checking the arguments and building the geometry costs more than
# a small layer's kernel (about 10 us of a LeNet layer's 20 us call). Only arguments made of plain
# ints, strings and tuples of ints are remembered (a bool, a numpy integer or a list goes through
# the checks every time, and is rejected or accepted as before); geometries are read-only.
_GEOMETRY_MEMO: dict = {}
_GEOMETRY_MEMO_MAX = 1024


def _plain(v) -> bool:
    t = type(v)
    return t is int or t is str or (t is tuple and all(type(e) is int for e in v))


def _memo_geometry(key, build):
    g = _GEOMETRY_MEMO.get(key)
    if g is None:
        g = build()  # raises for bad arguments: nothing is remembered then
        if len(_GEOMETRY_MEMO) >= _GEOMETRY_MEMO_MAX:
            _GEOMETRY_MEMO.clear()
        _GEOMETRY_MEMO[key] = g
    return g


def _conv_geometry(op, x_shape, w_shape, stride, padding, dilation, groups):
    if _plain(stride) and _plain(padding) and _plain(dilation) and type(groups) is int:
        key = ("conv", op, tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups)
        return _memo_geometry(key, lambda: _conv_geometry_checked(op, x_shape, w_shape, stride, padding,
                                                                  dilation, groups))
    return _conv_geometry_checked(op, x_shape, w_shape, stride, padding, dilation, groups)


def _conv_geometry_checked(op, x_shape, w_shape, stride, padding, dilation, groups):
    stride = chk.pair(op, "stride", stride)
    dilation = chk.pair(op, "dilation", dilation)
    groups = chk.integer(op, "groups", groups)
    pads = _conv_padding(op, padding, tuple(w_shape[2:]), stride, dilation)
    return _C.conv2d_geometry(tuple(x_shape), tuple(w_shape), stride, pads, dilation, groups, op)


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algo="auto"):
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    y[n, k, p, q] = bias[k] + sum over c, r, s of x[n, g*C/groups + c, p*sh + r*dh - pt, q*sw + s*dw - pl]
    * weight[k, c, r, s], where g is the group of output channel k.

    Parameters
    ----------
    x : numpy.ndarray or device array, float32, (N, C, H, W)
        Input batch; numpy arrays run on the CPU, convforge device arrays on the GPU.
    weight : float32, (K, C/groups, R, S)
        Filters; K must be divisible by groups.
    bias : float32, (K,), optional
        One value per output channel.
    stride, dilation : int or (int, int)
        Per axis (H, W), at least 1.
    padding : int, (int, int), (top, bottom, left, right), "same" or "valid"
        Zeros added on both sides of each axis (or on each side, with four values); "same" (stride 1 only)
        keeps H x W, putting the odd extra pixel at the bottom/right as PyTorch does; "valid" is 0.
    groups : int
        C and K are split into this many groups (C == K == groups: depthwise).
    algo : str
        "auto" (a heuristic per shape), or a variant from ``algos("conv2d_forward")``: "reference",
        "im2col", "implicit", "direct", "direct_k", "winograd" (F(2x2,3x3)) and "winograd_4x4"
        (F(4x4,3x3), 4x fewer multiply-adds, 2-3e-6 relative rounding error; both for 3x3, stride 1,
        no dilation)...;
        or the name of a student kernel loaded with ``convforge.load_kernel``.

    Returns
    -------
    float32 array, (N, K, P, Q), on x's device
        P = floor((H + pt + pb - dh(R - 1) - 1) / sh) + 1, Q likewise (``conv_output_size``).

    Raises
    ------
    TypeError
        An array is not float32 (never cast silently), or not an array (a CPU torch tensor: call ``.numpy()``).
    ValueError
        Wrong ranks, channels that do not match C/groups, a bias that is not (K,), a non-positive
        stride/dilation, negative padding, a kernel larger than the padded input, "same" with stride > 1,
        an unknown algo or one that does not apply to this shape.
    OverflowError, MemoryError
        An output (or im2col workspace) too large to index or to allocate.
    """
    op = "conv2d"
    x = chk.float_array(op, "x", x, 4)
    weight = chk.float_array(op, "weight", weight, 4)
    if bias is not None:
        bias = chk.float_array(op, "bias", bias, 1)
        chk.same_shape(op, "bias", bias, (weight.shape[0],), "one value per output channel")
    g = _conv_geometry(op, x.shape, weight.shape, stride, padding, dilation, groups)
    be = backend_for(op, x=x, weight=weight, bias=bias)
    if algo in _student_kernels:
        return _student_kernels[algo].conv2d_forward(x, weight, bias, g)
    if algo == "auto" and be is _C and tuning.autotune_enabled():  # measured choice (convforge/tuning.py)
        algo = tuning.conv_algo("forward", g, lambda a: be.conv2d_forward(x, weight, bias, g, a, False))
    return be.conv2d_forward(x, weight, bias, g, algo, False)


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    algo="auto", output_mask=(True, True, True)):
    """Gradients of ``conv2d`` (what ``torch.autograd`` gives for it), for the same arguments.

    Parameters
    ----------
    grad_out : float32, (N, K, P, Q)
        Gradient of the loss with respect to conv2d's output.
    x : float32, (N, C, H, W)
        conv2d's input.
    weight : float32, (K, C/groups, R, S)
        conv2d's filters.
    stride, padding, dilation, groups
        As for ``conv2d``.
    algo : str
        "auto" or a variant from ``algos("conv2d_backward")`` ("reference", "im2col", "implicit",
        "direct", "direct_n" (vectorised along the batch), "direct_k", "winograd", "winograd_4x4"), or a
        loaded student kernel (its backward where the file defines one, ours otherwise).
    output_mask : (bool, bool, bool)
        Which of (grad_x, grad_weight, grad_bias) to compute; the others come back as None.

    Returns
    -------
    (grad_x, grad_weight, grad_bias)
        float32 arrays of shapes (N, C, H, W), (K, C/groups, R, S) and (K,), or None where masked.

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        As ``conv2d``; also a grad_out whose shape is not conv2d's output shape for x and weight.
    """
    op = "conv2d_backward"
    x = chk.float_array(op, "x", x, 4)
    weight = chk.float_array(op, "weight", weight, 4)
    grad_out = chk.float_array(op, "grad_out", grad_out, 4)
    g = _conv_geometry(op, x.shape, weight.shape, stride, padding, dilation, groups)
    chk.same_shape(op, "grad_out", grad_out, (g.N, g.K, g.P, g.Q), "conv2d's output shape for these x and weight")
    be = backend_for(op, grad_out=grad_out, x=x, weight=weight)
    need_dx, need_dw, need_db = (bool(m) for m in output_mask)
    if algo in _student_kernels:  # the student's backward where the file has it, else ours ("auto")
        return _student_conv2d_backward(be, _student_kernels[algo], grad_out, x, weight, g, need_dx, need_dw, need_db)
    if algo == "auto" and be is _C and tuning.autotune_enabled():  # data and weight passes tuned apart
        data_algo = weight_algo = "auto"
        if need_dx:
            data_algo = tuning.conv_algo("backward_data", g, lambda a: be.conv2d_backward(
                grad_out, x, weight, g, a, True, False, False))
        if need_dw or need_db:
            weight_algo = tuning.conv_algo("backward_weight", g, lambda a: be.conv2d_backward(
                grad_out, x, weight, g, a, False, need_dw, need_db))
        if need_dx and (need_dw or need_db) and data_algo != weight_algo:
            gx = be.conv2d_backward(grad_out, x, weight, g, data_algo, True, False, False)[0]
            return (gx,) + tuple(be.conv2d_backward(grad_out, x, weight, g, weight_algo, False, need_dw, need_db)[1:])
        algo = data_algo if need_dx else weight_algo
    return be.conv2d_backward(grad_out, x, weight, g, algo, need_dx, need_dw, need_db)


def _student_conv2d_backward(be, k, grad_out, x, weight, g, need_dx, need_dw, need_db):
    own_dx = need_dx and k.has("convforge_conv2d_backward_data")
    own_dw = (need_dw or need_db) and k.has("convforge_conv2d_backward_weight")
    dx, dw, db = be.conv2d_backward(grad_out, x, weight, g, "auto", need_dx and not own_dx,
                                    need_dw and not own_dw, need_db and not own_dw)
    if own_dx:
        dx = k.conv2d_backward_data(grad_out, weight, g)
    if own_dw:
        dw2, db2 = k.conv2d_backward_weight(grad_out, x, g, need_db)
        dw, db = (dw2 if need_dw else None), db2
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

def _pool_geometry(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    if (_plain(kernel_size) and (stride is None or _plain(stride)) and _plain(padding) and _plain(dilation)
            and type(ceil_mode) is bool):
        key = ("pool", op, tuple(x_shape), kernel_size, stride, padding, dilation, ceil_mode)
        return _memo_geometry(key, lambda: _pool_geometry_checked(op, x_shape, kernel_size, stride, padding,
                                                                  dilation, ceil_mode))
    return _pool_geometry_checked(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode)


def _pool_geometry_checked(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = chk.pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or stride == () else chk.pair(op, "stride", stride)
    padding = chk.pair(op, "padding", padding)
    dilation = chk.pair(op, "dilation", dilation)
    return _C.pool2d_geometry(tuple(x_shape), kernel, stride, padding, dilation, bool(ceil_mode), op)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, algo="auto"):
    """Max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : float32, (N, C, H, W)
        Input batch (NaN in a window gives NaN and its index, as PyTorch).
    kernel_size : int or (int, int)
        Window R x S.
    stride : int or (int, int), optional
        Default: kernel_size.
    padding : int or (int, int)
        Implicit -inf on each side, at most half the kernel.
    dilation : int or (int, int)
        Spacing of the window's elements.
    ceil_mode : bool
        Round the output size up (the last window must still start inside the input or left padding).
    return_indices : bool
        Also return where each maximum was.
    algo : str
        "auto", a variant from ``algos("pool2d")``, or a loaded student kernel.

    Returns
    -------
    y : float32, (N, C, P, Q)
        P = floor((H + 2p - d(R - 1) - 1) / s) + 1 (ceil with ceil_mode), Q likewise.
    indices : int64, (N, C, P, Q)
        Only with return_indices: the flat position h * W + w of each maximum in its input plane.

    Raises
    ------
    TypeError
        x is not float32.
    ValueError
        x is not 4-D, non-positive kernel/stride/dilation, padding over half the kernel, a window that
        does not fit, or an unknown algo.
    """
    op = "max_pool2d"
    x = chk.float_array(op, "x", x, 4)
    g = _pool_geometry(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    be = backend_for(op, x=x)
    if algo in _student_kernels:
        y, idx = _student_kernels[algo].max_pool2d_forward(x, g, bool(return_indices))
    else:
        y, idx = be.max_pool2d_forward(x, g, bool(return_indices), algo)
    return (y, idx) if return_indices else y


def max_pool2d_backward(grad_out, indices, input_shape, kernel_size=None, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, algo="auto"):
    """Gradient of ``max_pool2d``: each grad_out value added at the input position its index names.

    Parameters
    ----------
    grad_out : float32, (N, C, P, Q)
        Gradient with respect to max_pool2d's output.
    indices : int64, (N, C, P, Q)
        From ``max_pool2d(..., return_indices=True)``: flat h * W + w positions.
    input_shape : (N, C, H, W)
        Shape of max_pool2d's input.
    kernel_size, stride, padding, dilation, ceil_mode
        As for ``max_pool2d``; needed only by a student kernel (``algo=`` naming one loaded with
        ``convforge.load_kernel(..., op="max_pool2d")`` that defines ``convforge_max_pool2d_backward``),
        which gets the pooling geometry; ours needs only the indices.
    algo : str
        "auto" (ours), or a student kernel's name; one without a backward falls back to ours.

    Returns
    -------
    float32, (N, C, H, W)
        Zero where no maximum came from.

    Raises
    ------
    TypeError
        grad_out is not float32 or indices not integer.
    ValueError
        Shapes that disagree (indices vs grad_out, batch and channels vs input_shape), or an index
        outside H x W.
    """
    op = "max_pool2d_backward"
    grad_out = chk.float_array(op, "grad_out", grad_out, 4)
    indices = chk.index_array(op, "indices", indices, 4)
    chk.same_shape(op, "indices", indices, tuple(grad_out.shape), "the shape of grad_out")
    input_shape = chk.shape4(op, "input_shape", input_shape)
    if tuple(input_shape[:2]) != tuple(grad_out.shape[:2]):
        raise ValueError(f"{op}: input_shape {input_shape} and grad_out shape {tuple(grad_out.shape)} "
                         f"must agree in batch and channels")
    k = _student_kernels.get(algo)
    if k is not None and k.has("convforge_max_pool2d_backward"):
        if kernel_size is None:
            raise ValueError(f"{op}: algo={algo!r} is a student kernel, which needs kernel_size (and the "
                             f"stride, padding, dilation, ceil_mode of the forward pass)")
        g = _pool_geometry(op, input_shape, kernel_size, stride, padding, dilation, ceil_mode)
        chk.same_shape(op, "grad_out", grad_out, (g.N, g.C, g.P, g.Q), "max_pool2d's output shape for input_shape")
        backend_for(op, grad_out=grad_out, indices=indices)
        if isinstance(indices, np.ndarray) and indices.size and (indices.min() < 0 or indices.max() >= g.H * g.W):
            raise ValueError(f"{op}: indices must be flat positions h*W + w in [0, {g.H * g.W}) of an input plane "
                             f"(from max_pool2d(..., return_indices=True)), got values in "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        return k.max_pool2d_backward(grad_out, indices, g)
    return backend_for(op, grad_out=grad_out, indices=indices).max_pool2d_backward(grad_out, indices, list(input_shape))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, algo="auto"):
    """Average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : float32, (N, C, H, W)
        Input batch.
    kernel_size : int or (int, int)
        Window R x S.
    stride : int or (int, int), optional
        Default: kernel_size.
    padding : int or (int, int)
        Zeros on each side, at most half the kernel.
    ceil_mode : bool
        Round the output size up.
    count_include_pad : bool
        Divide by the whole window (True) or by the input elements in it (False).
    algo : str
        "auto", a variant from ``algos("pool2d")``, or a loaded student kernel.

    Returns
    -------
    float32, (N, C, P, Q)
        P = floor((H + 2p - R) / s) + 1 (ceil with ceil_mode), Q likewise.

    Raises
    ------
    TypeError
        x is not float32.
    ValueError
        x is not 4-D, non-positive kernel or stride, padding over half the kernel, a window that does not
        fit, or an unknown algo.
    """
    op = "avg_pool2d"
    x = chk.float_array(op, "x", x, 4)
    g = _pool_geometry(op, x.shape, kernel_size, stride, padding, 1, ceil_mode)
    be = backend_for(op, x=x)
    if algo in _student_kernels:
        return _student_kernels[algo].avg_pool2d_forward(x, g, bool(count_include_pad))
    return be.avg_pool2d_forward(x, g, bool(count_include_pad), algo)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, algo="auto"):
    """Gradient of ``avg_pool2d`` with respect to its input, for the same pooling arguments.

    Parameters
    ----------
    grad_out : float32, (N, C, P, Q)
        Gradient with respect to avg_pool2d's output.
    input_shape : (N, C, H, W)
        Shape of avg_pool2d's input.
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As for ``avg_pool2d``.
    algo : str
        "auto" (ours), or a student kernel's name that defines ``convforge_avg_pool2d_backward``
        (one without a backward falls back to ours).

    Returns
    -------
    float32, (N, C, H, W)

    Raises
    ------
    TypeError
        grad_out is not float32.
    ValueError
        As ``avg_pool2d``; also a grad_out that is not avg_pool2d's output shape for input_shape.
    """
    op = "avg_pool2d_backward"
    grad_out = chk.float_array(op, "grad_out", grad_out, 4)
    input_shape = chk.shape4(op, "input_shape", input_shape)
    g = _pool_geometry(op, input_shape, kernel_size, stride, padding, 1, ceil_mode)
    chk.same_shape(op, "grad_out", grad_out, (g.N, g.C, g.P, g.Q), "avg_pool2d's output shape for input_shape")
    be = backend_for(op, grad_out=grad_out)
    k = _student_kernels.get(algo)
    if k is not None and k.has("convforge_avg_pool2d_backward"):
        return k.avg_pool2d_backward(grad_out, g, bool(count_include_pad))
    return be.avg_pool2d_backward(grad_out, g, bool(count_include_pad))


def adaptive_avg_pool2d(x, output_size, *, algo="auto"):
    """Adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output (p, q) is the mean of input rows floor(p*H/P) .. ceil((p+1)*H/P) - 1 by columns
    floor(q*W/Q) .. ceil((q+1)*W/Q) - 1 (torch's bin rule, ``csrc/common/geometry.h``): the bins
    overlap when P does not divide H, and repeat inputs when P > H.

    Parameters
    ----------
    x : float32 array (N, C, H, W)
    output_size : int, or a pair (P, Q) whose entries may be None (that axis keeps the input's size)
    algo : {"auto", "reference", "fast"}
        ``algos("pool2d")`` lists them; "fast" sums a 1x1 (global) output as one vector sum per plane.

    Returns
    -------
    float32 array (N, C, P, Q)

    Raises
    ------
    TypeError
        x is not float32, or output_size is not an int / pair of ints or None.
    ValueError
        x is not 4-D, or output_size is 0 or negative (naming it).
    """
    op = "adaptive_avg_pool2d"
    x = chk.float_array(op, "x", x, 4)
    out = chk.output_size_pair(op, "output_size", output_size, x.shape[2:])
    g = _C.adaptive_pool2d_geometry(tuple(x.shape), out, op)
    return backend_for(op, x=x).adaptive_avg_pool2d_forward(x, g, algo)


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """Gradient of adaptive_avg_pool2d with respect to its input of shape input_shape (N, C, H, W).

    Parameters
    ----------
    grad_out : float32 array (N, C, P, Q), the gradient of the output; (P, Q) is the output size.
    input_shape : 4 ints (N, C, H, W)

    Returns
    -------
    float32 array (N, C, H, W): each input receives grad_out / bin size from every bin holding it.

    Raises
    ------
    ValueError
        grad_out's batch and channels differ from input_shape's.
    """
    op = "adaptive_avg_pool2d_backward"
    grad_out = chk.float_array(op, "grad_out", grad_out, 4)
    input_shape = chk.shape4(op, "input_shape", input_shape)
    if tuple(input_shape[:2]) != tuple(grad_out.shape[:2]):
        raise ValueError(f"{op}: input_shape {input_shape} and grad_out shape {tuple(grad_out.shape)} "
                         f"must agree in batch and channels")
    g = _C.adaptive_pool2d_geometry(tuple(input_shape), tuple(grad_out.shape[2:]), op)
    return backend_for(op, grad_out=grad_out).adaptive_avg_pool2d_backward(grad_out, g)


# ---------------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------------

def _bn_channels(op, x):
    if x.ndim < 2:
        raise ValueError(f"{op}: x must have shape (N, C, *) with at least 2 dimensions, got {tuple(x.shape)}")
    return int(x.shape[1])


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               *, return_stats=False):
    """Batch normalisation, as ``torch.nn.functional.batch_norm`` (Ioffe and Szegedy 2015).

    y = (x - mean) / sqrt(var + eps) * weight + bias, per channel C, over the N and spatial
    dimensions. training: the batch's mean and biased variance, and running_mean / running_var
    (when given) updated **in place** to (1 - momentum) * running + momentum * batch statistic, the
    variance unbiased (times M / (M - 1), M = values per channel), as torch. Otherwise the running
    statistics normalise.

    Parameters
    ----------
    x : float32 array (N, C) or (N, C, H, W) (any (N, C, *))
    running_mean, running_var : float32 arrays (C,) or None (needed when training is False)
    weight, bias : float32 arrays (C,) or None (1 and 0)
    training : bool
    momentum : float
        For a cumulative average pass 1 / (number of batches seen), as ``nn.BatchNorm2d(momentum=None)``.
    eps : float
    return_stats : bool
        Also return the (C,) mean and 1 / sqrt(var + eps) used, which ``batch_norm_backward`` takes.

    Returns
    -------
    y : float32 array, the shape of x; or (y, save_mean, save_invstd) with return_stats.

    Raises
    ------
    ValueError
        training with one value per channel ("Expected more than 1 value per channel", as torch);
        no running statistics outside training; shapes that do not match C; a numpy running
        statistic that is read-only or not contiguous.
    TypeError
        an array that is not float32.
    """
    op = "batch_norm"
    x = chk.float_array(op, "x", x)
    C = _bn_channels(op, x)
    running_mean = None if running_mean is None else chk.running_stat(op, "running_mean", running_mean, C)
    running_var = None if running_var is None else chk.running_stat(op, "running_var", running_var, C)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be given or both be None")
    weight = None if weight is None else chk.float_array(op, "weight", weight, 1)
    bias = None if bias is None else chk.float_array(op, "bias", bias, 1)
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None:
            chk.same_shape(op, name, a, (C,), "one value per channel")
    training = bool(training)
    if training:
        per_channel = int(np.prod(x.shape, dtype=np.int64)) // max(C, 1)
        if per_channel <= 1:
            raise ValueError(f"{op}: Expected more than 1 value per channel when training, got input size "
                             f"{tuple(x.shape)} (training-mode batch norm needs a batch of more than one value "
                             f"per channel; use eval mode for a single 1x1 sample)")
    elif running_mean is None:
        raise ValueError(f"{op}: running_mean and running_var must be given when training is False")
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool):
        raise TypeError(f"{op}: momentum must be a float, got {momentum!r}")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise ValueError(f"{op}: eps must be a non-negative float, got {eps!r}")
    be = backend_for(op, x=x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    y, mean, invstd = be.batch_norm_forward(x, weight, bias, running_mean, running_var, training,
                                            float(momentum), float(eps))
    return (y, mean, invstd) if return_stats else y


def batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training=True, *,
                        output_mask=(True, True, True)):
    """Gradients of batch_norm: (grad_x, grad_weight, grad_bias), as torch's native_batch_norm_backward.

    Parameters
    ----------
    grad_out, x : float32 arrays of one shape (N, C, *)
    weight : float32 array (C,) or None (1)
    save_mean, save_invstd : float32 arrays (C,), from ``batch_norm(..., return_stats=True)``
    training : bool
        The forward's mode: True differentiates through the batch statistics.
    output_mask : three bools; a False gives None in that place.

    Returns
    -------
    (grad_x (N, C, *), grad_weight (C,), grad_bias (C,)), each None where output_mask is False.

    Raises
    ------
    TypeError
        An array that is not float32.
    ValueError
        grad_out and x of different shapes, x with fewer than 2 dimensions, or weight, save_mean,
        save_invstd that are not (C,).
    """
    op = "batch_norm_backward"
    x = chk.float_array(op, "x", x)
    grad_out = chk.float_array(op, "grad_out", grad_out)
    chk.same_shape(op, "grad_out", grad_out, tuple(x.shape), "the shape of x")
    C = _bn_channels(op, x)
    weight = None if weight is None else chk.float_array(op, "weight", weight, 1)
    save_mean = chk.float_array(op, "save_mean", save_mean, 1)
    save_invstd = chk.float_array(op, "save_invstd", save_invstd, 1)
    for name, a in (("weight", weight), ("save_mean", save_mean), ("save_invstd", save_invstd)):
        if a is not None:
            chk.same_shape(op, name, a, (C,), "one value per channel")
    be = backend_for(op, grad_out=grad_out, x=x, weight=weight, save_mean=save_mean, save_invstd=save_invstd)
    need_dx, need_dw, need_db = (bool(m) for m in output_mask)
    return be.batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, bool(training),
                                  need_dx, need_dw, need_db)


# ---------------------------------------------------------------------------------------------
# GEMM and linear layers
# ---------------------------------------------------------------------------------------------

def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, algo="auto"):
    """General matrix multiply, BLAS's SGEMM: alpha * op(a) @ op(b) + beta * c, as a new array.

    Mirrors ``torch.addmm(c, op(a), op(b), beta=beta, alpha=alpha)``; with beta = 0, c is ignored
    (NaN in c does not propagate). c is never modified.

    Parameters
    ----------
    a : float32, (M, K), or (K, M) with trans_a
    b : float32, (K, N), or (N, K) with trans_b
    c : float32, (M, N), optional
    alpha, beta : float
    trans_a, trans_b : bool
        Use the transpose of a / b (no copy is made).
    algo : str
        "auto", a variant from ``algos("gemm")`` ("reference", "blocked"...), or a loaded student kernel.

    Returns
    -------
    float32, (M, N), on the inputs' device

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        Not 2-D, inner dimensions that differ, a c that is not (M, N), or an unknown algo.
    OverflowError, MemoryError
        An output too large to index or to allocate.
    """
    op = "gemm"
    a = chk.float_array(op, "a", a, 2)
    b = chk.float_array(op, "b", b, 2)
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if K != Kb:
        raise ValueError(f"{op}: op(a) is {M}x{K} (a shape {tuple(a.shape)}, trans_a={trans_a}) but op(b) is "
                         f"{Kb}x{N} (b shape {tuple(b.shape)}, trans_b={trans_b}): inner dimensions {K} and {Kb} differ")
    if c is not None:
        c = chk.float_array(op, "c", c, 2)
        chk.same_shape(op, "c", c, (M, N), "op(a) @ op(b)")
    be = backend_for(op, a=a, b=b, c=c)
    if algo in _student_kernels:  # student GEMMs take op(A) = A: transposed operands are copied (CPU)
        if trans_a or trans_b:
            if not isinstance(a, np.ndarray):
                raise ValueError(f"{op}: algo={algo!r} (a student kernel) does not take transposed operands on the GPU")
            a = np.ascontiguousarray(a.T) if trans_a else a
            b = np.ascontiguousarray(b.T) if trans_b else b
        return _student_kernels[algo].gemm(a, b, c, float(alpha), float(beta))
    algo = _gemm_algo(be, algo, a, b, bool(trans_a), bool(trans_b))
    return be.gemm(a, b, c, float(alpha), float(beta), bool(trans_a), bool(trans_b), algo)


def _gemm_algo(be, algo, a, b, trans_a, trans_b):
    """The algo for op(a) @ op(b): the measured one when ``auto`` and tuning is on (convforge/tuning.py)."""
    if algo != "auto" or be is not _C or not tuning.autotune_enabled():
        return algo
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    N = b.shape[0] if trans_b else b.shape[1]
    return tuning.gemm_algo(M, N, K, trans_a, trans_b, lambda alg: be.gemm(a, b, None, 1.0, 0.0, trans_a, trans_b, alg))


def matmul(a, b, *, algo="auto"):
    """a @ b for 2-D arrays (``gemm`` with alpha 1, no c), as ``torch.matmul`` on matrices.

    Parameters
    ----------
    a : float32, (M, K)
    b : float32, (K, N)
    algo : str
        As for ``gemm``.

    Returns
    -------
    float32, (M, N)

    Raises
    ------
    TypeError, ValueError
        As ``gemm``.
    """
    return gemm(a, b, algo=algo)


def _rows(op, name, x, features):
    """x of shape (*, features) as a 2-D (rows, features) view."""
    if x.ndim < 1 or x.shape[-1] != features:
        raise ValueError(f"{op}: {name} must have shape (*, {features}) to match weight, got {tuple(x.shape)}")
    return x if x.ndim == 2 else x.reshape(int(np.prod(x.shape[:-1])), features)  # -1 is ambiguous when empty


def linear(x, weight, bias=None, *, algo="auto"):
    """x @ weight.T + bias, as ``torch.nn.functional.linear``.

    Parameters
    ----------
    x : float32, (*, in_features)
        Any leading dimensions.
    weight : float32, (out_features, in_features)
    bias : float32, (out_features,), optional
    algo : str
        The GEMM variant (as for ``gemm``).

    Returns
    -------
    float32, (*, out_features)

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        x's last dimension is not in_features, weight is not 2-D, or bias is not (out_features,).
    """
    op = "linear"
    x = chk.float_array(op, "x", x)
    weight = chk.float_array(op, "weight", weight, 2)
    out_f, in_f = weight.shape
    if bias is not None:
        bias = chk.float_array(op, "bias", bias, 1)
        chk.same_shape(op, "bias", bias, (out_f,), "one value per output feature")
    x2 = _rows(op, "x", x, in_f)
    be = backend_for(op, x=x2, weight=weight, bias=bias)
    if algo in _student_kernels:  # a student GEMM: y = x @ weight.T + 1 * (bias in every row)
        c = None if bias is None else np.broadcast_to(bias, (x2.shape[0], out_f))
        y = gemm(x2, weight, c, beta=1.0, trans_b=True, algo=algo)
    else:
        y = be.linear_forward(x2, weight, bias, _gemm_algo(be, algo, x2, weight, False, True))
    return y if x.ndim == 2 else y.reshape(*x.shape[:-1], out_f)


def linear_backward(grad_out, x, weight, *, algo="auto", output_mask=(True, True, True)):
    """Gradients of ``linear``: (grad_out @ weight, grad_out.T @ x, grad_out summed over rows).

    Parameters
    ----------
    grad_out : float32, (*, out_features)
    x : float32, (*, in_features)
        linear's input, with the same leading dimensions as grad_out.
    weight : float32, (out_features, in_features)
    algo : str
        The GEMM variant (as for ``gemm``), or a student GEMM's name.
    output_mask : (bool, bool, bool)
        Which of (grad_x, grad_weight, grad_bias) to compute; the others are returned as None.

    Returns
    -------
    (grad_x, grad_weight, grad_bias)
        float32 of shapes (*, in_features), (out_features, in_features), (out_features,), or None where
        output_mask is False.

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        Last dimensions that do not match weight, or leading dimensions that differ.
    """
    op = "linear_backward"
    x = chk.float_array(op, "x", x)
    weight = chk.float_array(op, "weight", weight, 2)
    grad_out = chk.float_array(op, "grad_out", grad_out)
    out_f, in_f = weight.shape
    x2 = _rows(op, "x", x, in_f)
    g2 = _rows(op, "grad_out", grad_out, out_f)
    if g2.shape[0] != x2.shape[0]:
        raise ValueError(f"{op}: grad_out {tuple(grad_out.shape)} and x {tuple(x.shape)} must have the same leading dimensions")
    be = backend_for(op, grad_out=g2, x=x2, weight=weight)
    need_dx, need_dw, need_db = (bool(m) for m in output_mask)
    if algo in _student_kernels:  # a student GEMM (transposed operands copied, see gemm)
        gx = gemm(g2, weight, algo=algo) if need_dx else None
        gw = gemm(g2, x2, trans_a=True, algo=algo) if need_dw else None
    else:
        gx = be.gemm(g2, weight, None, 1.0, 0.0, False, False, _gemm_algo(be, algo, g2, weight, False, False)) \
            if need_dx else None
        gw = be.gemm(g2, x2, None, 1.0, 0.0, True, False, _gemm_algo(be, algo, g2, x2, True, False)) \
            if need_dw else None
    gb = be.sum_rows(g2) if need_db else None
    return (gx if gx is None or x.ndim == 2 else gx.reshape(x.shape)), gw, gb


# ---------------------------------------------------------------------------------------------
# Activations and loss
# ---------------------------------------------------------------------------------------------

def _unary(op, fn_name, x):
    x = chk.float_array(op, "x", x)
    return getattr(backend_for(op, x=x), fn_name)(x)


def _unary_backward(op, fn_name, grad_out, saved, saved_name):
    grad_out = chk.float_array(op, "grad_out", grad_out)
    saved = chk.float_array(op, saved_name, saved)
    chk.same_shape(op, saved_name, saved, tuple(grad_out.shape), "the shape of grad_out")
    return getattr(backend_for(op, grad_out=grad_out, **{saved_name: saved}), fn_name)(grad_out, saved)


def relu(x):
    """max(x, 0), elementwise, as ``torch.nn.functional.relu``.

    Parameters
    ----------
    x : float32 array, any shape
        numpy (CPU) or a device array (GPU).

    Returns
    -------
    float32 array of x's shape, on x's device

    Raises
    ------
    TypeError
        x is not a float32 array.
    """
    return _unary("relu", "relu_forward", x)


def relu_backward(grad_out, x):
    """grad_out where x > 0, else 0: the gradient of ``relu`` given its input x.

    Parameters
    ----------
    grad_out : float32 array, any shape
        Gradient with respect to relu's output.
    x : float32 array, grad_out's shape
        relu's input.

    Returns
    -------
    float32 array of grad_out's shape

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        x and grad_out differ in shape.
    """
    return _unary_backward("relu_backward", "relu_backward", grad_out, x, "x")


def tanh(x):
    """tanh(x), elementwise, as ``torch.tanh``.

    Parameters
    ----------
    x : float32 array, any shape
        numpy (CPU) or a device array (GPU).

    Returns
    -------
    float32 array of x's shape, on x's device

    Raises
    ------
    TypeError
        x is not a float32 array.
    """
    return _unary("tanh", "tanh_forward", x)


def tanh_backward(grad_out, y):
    """grad_out * (1 - y^2): the gradient of ``tanh`` given its output y.

    Parameters
    ----------
    grad_out : float32 array, any shape
        Gradient with respect to tanh's output.
    y : float32 array, grad_out's shape
        tanh's output (what the forward returned).

    Returns
    -------
    float32 array of grad_out's shape

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        y and grad_out differ in shape.
    """
    return _unary_backward("tanh_backward", "tanh_backward", grad_out, y, "y")


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, as ``torch.sigmoid``.

    Parameters
    ----------
    x : float32 array, any shape
        numpy (CPU) or a device array (GPU).

    Returns
    -------
    float32 array of x's shape, on x's device

    Raises
    ------
    TypeError
        x is not a float32 array.
    """
    return _unary("sigmoid", "sigmoid_forward", x)


def sigmoid_backward(grad_out, y):
    """grad_out * y * (1 - y): the gradient of ``sigmoid`` given its output y.

    Parameters
    ----------
    grad_out : float32 array, any shape
        Gradient with respect to sigmoid's output.
    y : float32 array, grad_out's shape
        sigmoid's output (what the forward returned).

    Returns
    -------
    float32 array of grad_out's shape

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        y and grad_out differ in shape.
    """
    return _unary_backward("sigmoid_backward", "sigmoid_backward", grad_out, y, "y")


def _ce_args(op, logits, labels):
    logits = chk.float_array(op, "logits", logits, 2)
    labels = chk.index_array(op, "labels", labels, 1)
    n, classes = logits.shape
    if labels.shape[0] != n:
        raise ValueError(f"{op}: labels must have shape ({n},) to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}")
    if n == 0:
        raise ValueError(f"{op}: the batch is empty (logits shape {tuple(logits.shape)}); the mean loss is undefined")
    host = labels if isinstance(labels, np.ndarray) else labels.numpy()
    lo, hi = int(host.min()), int(host.max())
    if lo < 0 or hi >= classes:
        raise ValueError(f"{op}: labels must be in [0, {classes}) for logits of shape {tuple(logits.shape)}, "
                         f"got values from {lo} to {hi}")
    return backend_for(op, logits=logits, labels=labels), logits, labels


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label], as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : float32, (N, classes)
        Unnormalised scores; N at least 1.
    labels : int, (N,)
        Class indices in [0, classes).

    Returns
    -------
    float
        The mean loss (computed stably, with the row maximum subtracted).

    Raises
    ------
    TypeError
        logits is not float32 or labels not integer.
    ValueError
        Wrong ranks, N that differs, an empty batch (PyTorch gives NaN), or a label out of range.
    """
    be, logits, labels = _ce_args("cross_entropy", logits, labels)
    return float(be.cross_entropy_forward(logits, labels))


def cross_entropy_backward(logits, labels):
    """Gradient of the mean ``cross_entropy`` with respect to logits: (softmax(logits) - onehot(labels)) / N.

    Parameters
    ----------
    logits : float32, (N, classes)
    labels : int, (N,)
        Class indices in [0, classes).

    Returns
    -------
    float32, (N, classes)

    Raises
    ------
    TypeError, ValueError
        As ``cross_entropy``.
    """
    be, logits, labels = _ce_args("cross_entropy_backward", logits, labels)
    return be.cross_entropy_backward(logits, labels)


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (OpenMP), for calls from any Python thread (``torch.set_num_threads``).

    Parameters
    ----------
    n : int
        At least 1.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        n is not an integer.
    ValueError
        n is below 1.
    """
    _C.set_num_threads(chk.integer("set_num_threads", "n", n))


def get_num_threads() -> int:
    """Threads the CPU kernels use (``torch.get_num_threads``).

    Parameters
    ----------
    None

    Returns
    -------
    int

    Raises
    ------
    None
    """
    return int(_C.get_num_threads())


def set_flush_denormal(mode: bool) -> bool:
    """Whether the CPU kernels flush subnormal numbers to zero (on by default), as
    ``torch.set_flush_denormal``.

    While a kernel runs, the calling thread and its OpenMP threads use flush-to-zero and
    denormals-are-zero (MXCSR FTZ/DAZ on x86-64, FPCR.FZ on AArch64): subnormal inputs read as 0
    and results that would be subnormal (|x| < 1.17549435e-38 in float32) are written as 0, so
    that they cannot slow a kernel down 25-80 times. Each thread's previous mode is restored
    when the call returns: the caller's floating-point environment is never changed. With
    ``False`` the kernels compute IEEE 754 subnormals, as PyTorch does by default. The
    environment variable ``CONVFORGE_FLUSH_DENORMAL=0`` sets ``False`` at import. Affects every
    Python thread; CUDA kernels are not affected.

    Parameters
    ----------
    mode : bool
        True to flush subnormals to zero, False to keep them.

    Returns
    -------
    bool
        True where this CPU's mode can be set (x86-64 and AArch64); False elsewhere, where
        the setting has no effect (``torch.set_flush_denormal`` returns False there too).

    Raises
    ------
    TypeError
        If mode is not a bool.
    """
    return bool(_C.set_flush_denormal(chk.boolean("set_flush_denormal", "mode", mode)))


def get_flush_denormal() -> bool:
    """Whether the CPU kernels flush subnormals to zero (see :func:`set_flush_denormal`).

    Parameters
    ----------
    None

    Returns
    -------
    bool
        True when flushing is on and this CPU supports it.

    Raises
    ------
    Nothing.
    """
    return bool(_C.get_flush_denormal())


def algos(op: str, device: str = "cpu") -> list:
    """The kernel variants of an op on a device, with their source files.

    Parameters
    ----------
    op : str
        "conv2d_forward", "conv2d_backward", "gemm" or "pool2d".
    device : str
        "cpu" or "cuda".

    Returns
    -------
    list
        One entry per variant (name, kind, one-line description, source file), from the op's table.

    Raises
    ------
    ValueError
        An unknown op.
    RuntimeError
        device "cuda" where convforge was built without CUDA or no GPU is visible.
    """
    if device == "cpu":
        return list(_C.algos(op))
    from . import cuda

    return list(cuda._backend().algos(op))
