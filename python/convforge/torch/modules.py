"""torch.nn layers whose forward runs convforge's operators.

Each class subclasses its torch counterpart (``convforge.torch.Conv2d`` is an ``nn.Conv2d``): the same
constructor arguments, parameters, state-dict keys and initialisation, plus ``algo`` (a keyword
argument and an attribute) that picks the kernel variant. ``convforge.torch.convert`` turns the
torch layers of an existing model into these without touching their parameters.
"""
import torch.nn as tnn

from . import functional as cf

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Tanh", "Sigmoid"]


class _Algo:
    """The algo attribute and its place in repr()."""
    algo = "auto"

    def extra_repr(self):
        base = super().extra_repr()
        return base if self.algo == "auto" else f"{base}, algo={self.algo!r}"


class Conv2d(_Algo, tnn.Conv2d):
    """``torch.nn.Conv2d`` on convforge's conv2d kernels (padding_mode "zeros" only).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, device, dtype
        As ``torch.nn.Conv2d``.
    algo : str
        A ``conv2d_forward`` algo of ``convforge.functional.algos``; "auto" picks one.

    Raises
    ------
    ValueError
        padding_mode other than "zeros".
    """

    def __init__(self, *args, algo="auto", **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"convforge.torch.Conv2d: padding_mode must be 'zeros', got {self.padding_mode!r}")
        self.algo = algo

    def forward(self, input):
        return cf.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                         algo=self.algo)


class MaxPool2d(_Algo, tnn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on convforge's pooling kernels; ``algo`` a ``pool2d`` algo."""

    def __init__(self, *args, algo="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algo = algo

    def forward(self, input):
        return cf.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                             self.return_indices, algo=self.algo)


class AvgPool2d(_Algo, tnn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on convforge's pooling kernels (divisor_override None only)."""

    def __init__(self, *args, algo="auto", **kwargs):
        super().__init__(*args, **kwargs)
        if self.divisor_override is not None:
            raise ValueError(f"convforge.torch.AvgPool2d: divisor_override is not supported, "
                             f"got {self.divisor_override!r}")
        self.algo = algo

    def forward(self, input):
        return cf.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, algo=self.algo)


class Linear(_Algo, tnn.Linear):
    """``torch.nn.Linear`` on convforge's GEMM; ``algo`` a ``gemm`` algo."""

    def __init__(self, *args, algo="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algo = algo

    def forward(self, input):
        return cf.linear(input, self.weight, self.bias, algo=self.algo)


class ReLU(tnn.ReLU):
    """``torch.nn.ReLU`` on convforge's kernel; inplace=True is computed out of place (same result)."""

    def forward(self, input):
        return cf.relu(input)


class Tanh(tnn.Tanh):
    """``torch.nn.Tanh`` on convforge's kernel."""

    def forward(self, input):
        return cf.tanh(input)


class Sigmoid(tnn.Sigmoid):
    """``torch.nn.Sigmoid`` on convforge's kernel."""

    def forward(self, input):
        return cf.sigmoid(input)
