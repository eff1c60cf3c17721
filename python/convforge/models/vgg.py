"""VGG (Simonyan and Zisserman 2014) as torchvision builds it, without batch norm; VGG-16: 138,357,544 parameters."""
from __future__ import annotations

from .. import nn
from .network import Network, feature_size

# Configuration D: numbers are 3x3 conv widths (padding 1, ReLU), "M" a 2x2 max pool with stride 2.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg(cfg=VGG16_CFG, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, hidden: int = 4096,
        dropout: float = 0.5, arch: str = "vgg") -> Network:
    """A VGG network (Simonyan and Zisserman 2014, torchvision's layout, no batch norm) from a configuration.

    Parameters
    ----------
    cfg : sequence of int or "M"
        Widths of 3x3 convolutions (padding 1, each followed by ReLU); "M" a 2x2/2 max pooling.
    num_classes, input_size, in_channels : int
    hidden : int
        Width of the two hidden classifier layers (4096 in VGG-16).
    dropout : float
    arch : str
        "vgg16" for ``vgg16``; anything else is stored as "vgg" with its cfg and hidden in the config.

    Returns
    -------
    convforge.models.Network

    Raises
    ------
    ValueError
        An input_size too small for the poolings (the layer is named), or a cfg entry that is not an
        integer or "M".
    """
    cfg = [c if c == "M" else int(c) for c in cfg]
    config = dict(cfg=list(cfg), num_classes=num_classes, input_size=input_size, in_channels=in_channels,
                  hidden=hidden, dropout=dropout)
    layers, c = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    features = nn.Sequential(*layers)
    flat = feature_size(features, (in_channels, input_size, input_size), arch)
    classifier = nn.Sequential(
        nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes))
    if arch == "vgg16":
        config = {k: v for k, v in config.items() if k not in ("cfg", "hidden")}
    else:
        arch = "vgg"
    return Network({"features": features, "flatten": nn.Flatten(), "classifier": classifier}, arch=arch,
                   config=config, input_shape=(in_channels, input_size, input_size))


def vgg16(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5) -> Network:
    """torchvision's VGG-16 (configuration D): 138,357,544 parameters at 224x224x3.

    input_size 32 works too (the features give 512x1x1 and the first classifier layer shrinks to 512
    inputs).

    Parameters
    ----------
    num_classes, input_size, in_channels : int
    dropout : float

    Returns
    -------
    convforge.models.Network
        arch "vgg16", torchvision's parameter names.

    Raises
    ------
    ValueError
        input_size below 32, naming the pooling layer where nothing fits.
    """
    return vgg(VGG16_CFG, num_classes=num_classes, input_size=input_size, in_channels=in_channels, dropout=dropout,
               arch="vgg16")
