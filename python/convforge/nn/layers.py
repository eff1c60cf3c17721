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
