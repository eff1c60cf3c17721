"""Network: a Sequential that remembers its architecture name, config and input shape."""
from __future__ import annotations

from ..nn.module import Sequential
from ..nn._summary import layer_table


class Network(Sequential):
    """A Sequential with ``arch`` (name), ``config`` (builder kwargs) and ``input_shape`` (C, H, W)."""

    def __init__(self, layers, *, arch: str, config: dict, input_shape):
        super().__init__(layers)
        object.__setattr__(self, "arch", arch)
        object.__setattr__(self, "config", dict(config))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in input_shape))

    def summary(self, input_shape=None, file=None, print_fn=print) -> str:
        return super().summary(self.input_shape if input_shape is None else input_shape, file=file, print_fn=print_fn)

    def check_input(self, input_shape):
        """Raise a ValueError naming the layer where input_shape (C,H,W or N,C,H,W) stops fitting."""
        layer_table(self, input_shape)


def feature_size(features, input_shape, arch):
    """Flattened size after features for input (C, H, W), or a clear ValueError."""
    rows = layer_table(_Named(features, arch), (1,) + tuple(input_shape))
    shape = rows[-1][2]
    n = 1
    for s in shape[1:]:
        n *= s
    return n


class _Named(Sequential):
    def __init__(self, features, arch):
        super().__init__({"features": features})
        object.__setattr__(self, "arch", arch)
