"""Plain PyTorch models for the examples and benchmarks of convforge.torch (torch layers only;
``convforge.torch.convert`` switches them to convforge's kernels).

``lenet5()`` has the layers and parameter names of ``convforge.models.lenet5()``, so its state dict
loads into convforge's own model (``convforge.nn.load_torch_state_dict``) and back.
"""
import torch.nn as tnn

__all__ = ["lenet5", "vgg_cifar", "build"]

_ACT = {"tanh": tnn.Tanh, "relu": tnn.ReLU, "sigmoid": tnn.Sigmoid}
_POOL = {"max": tnn.MaxPool2d, "avg": tnn.AvgPool2d}


def lenet5(activation="tanh", pooling="max", num_classes=10, in_channels=1):
    """LeNet-5 for 32x32 inputs, as ``convforge.models.lenet5`` (61,706 parameters for 1 channel, 10 classes).

    Parameters
    ----------
    activation : {"tanh", "relu", "sigmoid"}
    pooling : {"max", "avg"}
    num_classes, in_channels : int

    Returns
    -------
    torch.nn.Sequential
        Input (N, in_channels, 32, 32) float32, output logits (N, num_classes).
    """
    if activation not in _ACT or pooling not in _POOL:
        raise ValueError(f"activation must be one of {sorted(_ACT)} and pooling one of {sorted(_POOL)}, "
                         f"got {activation!r} and {pooling!r}")
    act, pool = _ACT[activation], _POOL[pooling]
    return tnn.Sequential(tnn.Conv2d(in_channels, 6, 5), act(), pool(2, 2), tnn.Conv2d(6, 16, 5), act(), pool(2, 2),
                          tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(),
                          tnn.Linear(84, num_classes))


def vgg_cifar(cfg=(32, 32, "M", 64, 64, "M", 128, 128, "M"), num_classes=10, in_channels=3, hidden=256):
    """A small VGG-style network for 32x32 (CIFAR-size) inputs: 3x3 convolutions (padding 1) with ReLU,
    2x2 max pooling at each "M" of cfg, then a two-layer classifier.

    Returns
    -------
    torch.nn.Sequential
        Input (N, in_channels, 32, 32) float32, output logits (N, num_classes).
    """
    layers, c, size = [], in_channels, 32
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            size //= 2
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU(inplace=True)]
            c = v
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(c * size * size, hidden), tnn.ReLU(inplace=True),
                          tnn.Linear(hidden, num_classes))


_MODELS = {"lenet5": lenet5, "vgg_cifar": vgg_cifar}


def build(name, **kwargs):
    """The model called name ("lenet5" or "vgg_cifar")."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_MODELS)}")
    return _MODELS[name](**kwargs)
