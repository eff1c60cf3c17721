"""Layers with an explicit backward, each the counterpart of the torch.nn layer of the same name."""
from __future__ import annotations

import numpy as np

from .. import _C, _checks, functional as F
from . import _arrays, init as _init
from .module import Module, Parameter


def _pair(v, name):
    """An int or a pair of ints, checked as the functional API checks it."""
    return _checks.pair("nn layer", name, v)


def _window_error(layer, input_shape, out):
    return ValueError(
        f"{layer!r}: input of shape {tuple(input_shape)} is too small, it gives an output of "
        f"{out[0]}x{out[1]} (the window does not fit in the padded input)")


def _pool_output_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling rule, from the one place it lives (csrc/common/geometry.h); 0 if nothing fits."""
    return int(_C.pool_output_size(n, k, s, p, d, bool(ceil_mode)))


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, algo="auto"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.algo = algo
        self.need_input_grad = True  # False: backward skips grad_x and returns None (a network's first layer)
        wshape = (self.out_channels, self.in_channels // groups) + self.kernel_size
        fan_in = wshape[1] * wshape[2] * wshape[3]
        self.weight = Parameter(shape=wshape, init=_init.torch_default_weight)
        self.bias = Parameter(shape=(self.out_channels,), init=_init.torch_default_bias(fan_in)) if bias else None
        self._x = None

    def forward(self, x):
        self._x = x
        b = self.bias.data if self.bias is not None else None
        return F.conv2d(x, self.weight.data, b, self.stride, self.padding, self.dilation, self.groups, algo=self.algo)

    def backward(self, grad_out):
        gx, gw, gb = F.conv2d_backward(grad_out, self._x, self.weight.data, self.stride, self.padding,
                                       self.dilation, self.groups, algo=self.algo,
                                       output_mask=(self.need_input_grad, True, self.bias is not None))
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def _out_hw(self, h, w):
        if self.padding == "same":
            return h, w
        ph, pw = (0, 0) if self.padding == "valid" else self.padding
        return (F.conv_output_size(h, self.kernel_size[0], self.stride[0], ph, self.dilation[0]),
                F.conv_output_size(w, self.kernel_size[1], self.stride[1], pw, self.dilation[1]))

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected input with {self.in_channels} channels, got shape {tuple(input_shape)}")
        p, q = self._out_hw(h, w)
        if p <= 0 or q <= 0:
            raise _window_error(self, input_shape, (p, q))
        return (n, self.out_channels, p, q)

    def flops(self, input_shape):
        n, k, p, q = self.output_shape(input_shape)
        macs = n * k * p * q * (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]
        return 2 * macs + (n * k * p * q if self.bias is not None else 0)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, *, algo="auto"):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.algo = algo  # a gemm algo: ours, or a student GEMM (convforge.load_kernel(..., op="gemm"))
        self.weight = Parameter(shape=(self.out_features, self.in_features), init=_init.torch_default_weight)
        self.bias = Parameter(shape=(self.out_features,), init=_init.torch_default_bias(self.in_features)) if bias else None
        self._x = None

    def forward(self, x):
        self._x = x
        return F.linear(x, self.weight.data, self.bias.data if self.bias is not None else None, algo=self.algo)

    def backward(self, grad_out):
        gx, gw, gb = F.linear_backward(grad_out, self._x, self.weight.data, algo=self.algo)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def output_shape(self, input_shape):
        if len(input_shape) != 2 or input_shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), got {tuple(input_shape)}")
        return (input_shape[0], self.out_features)

    def flops(self, input_shape):
        n = input_shape[0]
        return 2 * n * self.in_features * self.out_features + (n * self.out_features if self.bias is not None else 0)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _Pool2d(Module):
    def _out_shape(self, input_shape, dilation):
        n, c, h, w = input_shape
        p = _pool_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0], dilation[0], self.ceil_mode)
        q = _pool_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1], dilation[1], self.ceil_mode)
        if p <= 0 or q <= 0:
            raise _window_error(self, input_shape, (p, q))
        return (n, c, p, q)

    def flops(self, input_shape):
        n, c, p, q = self.output_shape(input_shape)
        return n * c * p * q * self.kernel_size[0] * self.kernel_size[1]


class MaxPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, algo="auto"):
        super().__init__()
        self.algo = algo  # a pool2d algo: ours, or a student kernel (load_kernel(..., op="max_pool2d"))
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.ceil_mode = bool(ceil_mode)
        self._idx = self._in_shape = None

    def forward(self, x):
        y, self._idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                    self.ceil_mode, return_indices=True, algo=self.algo)
        self._in_shape = tuple(x.shape)
        return y

    def backward(self, grad_out):
        return F.max_pool2d_backward(grad_out, self._idx, self._in_shape, self.kernel_size, self.stride,
                                     self.padding, self.dilation, self.ceil_mode, algo=self.algo)

    def output_shape(self, input_shape):
        return self._out_shape(input_shape, self.dilation)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class AvgPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
                 algo="auto"):
        super().__init__()
        self.algo = algo  # a pool2d algo: ours, or a student kernel (load_kernel(..., op="avg_pool2d"))
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self._in_shape = None

    def forward(self, x):
        self._in_shape = tuple(x.shape)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            algo=self.algo)

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self._in_shape, self.kernel_size, self.stride, self.padding,
                                     self.ceil_mode, self.count_include_pad, algo=self.algo)

    def output_shape(self, input_shape):
        return self._out_shape(input_shape, (1, 1))

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class _Elementwise(Module):
    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return int(np.prod(input_shape, dtype=np.int64))


class ReLU(_Elementwise):
    def forward(self, x):
        self._x = x
        return F.relu(x)

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._x)


class Tanh(_Elementwise):
    def forward(self, x):
        self._y = F.tanh(x)
        return self._y

    def backward(self, grad_out):
        return F.tanh_backward(grad_out, self._y)


class Sigmoid(_Elementwise):
    def forward(self, x):
        self._y = F.sigmoid(x)
        return self._y

    def backward(self, grad_out):
        return F.sigmoid_backward(grad_out, self._y)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        self._in_shape = None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        end = self.end_dim % len(shape)
        return shape[:self.start_dim] + (int(np.prod(shape[self.start_dim:end + 1], dtype=np.int64)),) + shape[end + 1:]

    def forward(self, x):
        self._in_shape = tuple(x.shape)
        return x.reshape(self.output_shape(x.shape))

    def backward(self, grad_out):
        return grad_out.reshape(self._in_shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p).

    The masks come from a generator seeded when the layer is created (``nn.init.manual_seed``),
    so training is reproducible; they are not torch's masks.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p = float(p)
        self._rng = np.random.default_rng(_init.next_seed())
        self._mask = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=np.float32) >= self.p
        scale = np.float32(0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p))
        self._mask = keep.astype(np.float32) * scale
        return _arrays.like(_arrays.to_host(x) * self._mask, x)

    def backward(self, grad_out):
        if self._mask is None:
            return grad_out
        return _arrays.like(_arrays.to_host(grad_out) * self._mask, grad_out)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def extra_repr(self):
        return f"p={self.p}"


class AdaptiveAvgPool2d(Module):
    """Adaptive average pooling to a fixed output size, as ``torch.nn.AdaptiveAvgPool2d``.

    Parameters
    ----------
    output_size : int, or a pair (P, Q) whose entries may be None (that axis keeps the input's size)

    Input (N, C, H, W) of any H x W gives (N, C, P, Q); see ``functional.adaptive_avg_pool2d``.
    torchvision's AlexNet and VGG put one between their features and classifier.
    """

    def __init__(self, output_size):
        super().__init__()
        # Checked now (format) and with the input (positivity, None resolved), as torch.
        _checks.output_size_pair("AdaptiveAvgPool2d", "output_size", output_size, (1, 1))
        self.output_size = tuple(output_size) if isinstance(output_size, (tuple, list)) else int(output_size)
        self._in_shape = None

    def _out_hw(self, h, w):
        return _checks.output_size_pair("AdaptiveAvgPool2d", "output_size", self.output_size, (h, w))

    def forward(self, x):
        self._in_shape = tuple(x.shape)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, grad_out):
        return F.adaptive_avg_pool2d_backward(grad_out, self._in_shape)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        p, q = self._out_hw(h, w)
        if p <= 0 or q <= 0:
            raise ValueError(f"{self!r}: output_size must be positive, got {(p, q)}")
        return (n, c, p, q)

    def flops(self, input_shape):
        n, c, h, w = input_shape
        p, q = self._out_hw(h, w)
        rows = sum(int(_C.adaptive_bin_end(i, h, p) - _C.adaptive_bin_start(i, h, p)) for i in range(p))
        cols = sum(int(_C.adaptive_bin_end(j, w, q) - _C.adaptive_bin_start(j, w, q)) for j in range(q))
        return n * c * (rows * cols + p * q)  # the adds of every bin, and one division per output

    def extra_repr(self):
        return f"output_size={self.output_size}"


def _ones(shape, rng=None):
    return np.ones(shape, np.float32)


class BatchNorm2d(Module):
    """Batch normalisation over (N, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    Parameters
    ----------
    num_features : int, the channels C
    eps : float, added to the variance
    momentum : float or None
        Weight of each batch in the running statistics; None: a cumulative average
        (1 / num_batches_tracked), as torch.
    affine : bool, learn ``weight`` (1) and ``bias`` (0)
    track_running_stats : bool
        Keep the buffers ``running_mean`` (0), ``running_var`` (1) and ``num_batches_tracked`` (int64),
        saved in state dicts under torch's names. Without them eval mode uses batch statistics too.

    In training mode (``train()``, the default) the batch's statistics normalise and the running ones
    are updated; in eval mode (``eval()``) the running ones normalise. A batch with one value per
    channel raises ValueError in training mode, as torch.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = _checks.integer("BatchNorm2d", "num_features", num_features)
        if self.num_features <= 0:
            raise ValueError(f"BatchNorm2d: num_features must be positive, got {num_features}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        shape = (self.num_features,)
        self.weight = Parameter(shape=shape, init=_ones) if affine else None
        self.bias = Parameter(shape=shape, init=_init.zeros) if affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(shape, np.float32))
            self.register_buffer("running_var", np.ones(shape, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self._cache = None

    def forward(self, x):
        if getattr(x, "ndim", None) != 4:
            raise ValueError(f"{self!r}: expected 4-D input (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or not self.track_running_stats
        rm = self.running_mean if self.track_running_stats else None
        rv = self.running_var if self.track_running_stats else None
        w = self.weight.data if self.affine else None
        b = self.bias.data if self.affine else None
        y, mean, invstd = F.batch_norm(x, rm, rv, w, b, batch_stats, factor, self.eps, return_stats=True)
        self._cache = (x, mean, invstd, batch_stats)
        return y

    def backward(self, grad_out):
        x, mean, invstd, batch_stats = self._cache
        gx, gw, gb = F.batch_norm_backward(grad_out, x, self.weight.data if self.affine else None, mean, invstd,
                                           batch_stats, output_mask=(True, self.affine, self.affine))
        if self.affine:
            self.weight.accumulate_grad(gw)
            self.bias.accumulate_grad(gb)
        return gx

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected input (N, {self.num_features}, H, W), got {tuple(input_shape)}")
        return tuple(input_shape)

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape, dtype=np.int64))  # a multiply-add per element in eval

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
