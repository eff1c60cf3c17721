"""LeNet-5 (LeCun et al. 1998) as in the lecture: 32x32x1 -> conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2
-> flatten 400 -> 120 -> 84 -> 10; 61,706 parameters."""
from __future__ import annotations

from .. import nn
from .network import Network, feature_size

_ACT = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
_POOL = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def lenet5(activation: str = "tanh", pooling: str = "max", num_classes: int = 10, in_channels: int = 1,
           input_size: int = 32) -> Network:
    """LeNet-5 (LeCun et al. 1998) as the lecture draws it: 61,706 parameters at 32x32x1.

    conv 6@5x5 -> activation -> pool 2x2/2 -> conv 16@5x5 -> activation -> pool 2x2/2 -> flatten (400 at
    32x32) -> Linear 120 -> activation -> Linear 84 -> activation -> Linear num_classes. Layers are named
    "0".."11" (``nn.Sequential`` style).

    Parameters
    ----------
    activation : {"tanh", "relu", "sigmoid"}
        tanh as in 1998.
    pooling : {"max", "avg"}
    num_classes : int
    in_channels : int
    input_size : int
        Square input side H = W; the first Linear layer's width follows from it (28 and up fit).

    Returns
    -------
    convforge.models.Network
        arch "lenet5", config the arguments above, input_shape (in_channels, input_size, input_size).

    Raises
    ------
    ValueError
        An unknown activation or pooling, or an input_size too small for the windows (the layer is named).
    """
    if activation not in _ACT:
        raise ValueError(f"activation must be one of {sorted(_ACT)}, got {activation!r}")
    if pooling not in _POOL:
        raise ValueError(f"pooling must be one of {sorted(_POOL)}, got {pooling!r}")
    act, pool = _ACT[activation], _POOL[pooling]
    config = dict(activation=activation, pooling=pooling, num_classes=num_classes, in_channels=in_channels,
                  input_size=input_size)
    features = nn.Sequential(nn.Conv2d(in_channels, 6, 5), act(), pool(2, 2), nn.Conv2d(6, 16, 5), act(), pool(2, 2))
    flat = feature_size(features, (in_channels, input_size, input_size), "lenet5")
    layers = list(features) + [nn.Flatten(), nn.Linear(flat, 120), act(), nn.Linear(120, 84), act(),
                               nn.Linear(84, num_classes)]
    return Network({str(i): layer for i, layer in enumerate(layers)}, arch="lenet5", config=config,
                   input_shape=(in_channels, input_size, input_size))
