"""VGG (Simonyan and Zisserman 2014) as torchvision builds it: ``features`` (3x3 convolutions, optional
batch norm, ReLU, 2x2 max pools), ``avgpool`` (adaptive average pooling to 7x7) and ``classifier``
(three linear layers), with torchvision's layer indices. VGG-16: 138,357,544 parameters; with batch
norm 138,365,992. The adaptive pool lets ImageNet weights run on any input of at least 32x32."""
from __future__ import annotations

from .. import nn
from .network import Network, feature_size

# torchvision's configurations: numbers are 3x3 conv widths (padding 1, then BatchNorm2d in the _bn
# variants, then ReLU), "M" a 2x2 max pool with stride 2.
CFGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),                         # A
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),                 # B
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),  # D
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),                                                                 # E
}
VGG16_CFG = CFGS["vgg16"]


def vgg(cfg=VGG16_CFG, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, hidden: int = 4096,
        dropout: float = 0.5, batch_norm: bool = False, pool_size: int = 7, arch: str = "vgg") -> Network:
    """A VGG network from a configuration list, laid out as torchvision's.

    Parameters
    ----------
    cfg : sequence of int or "M"
        Conv widths and max pools (``CFGS`` holds torchvision's; smaller ones suit tests).
    num_classes : int
    input_size : int
        The size ``summary`` reports and the check that the features fit (at least 32 for five
        pools); any input that fits runs, since ``avgpool`` brings the features to pool_size.
    in_channels, hidden, dropout : the input channels, the classifier's hidden width (4096), its dropout
    batch_norm : bool, a BatchNorm2d after every convolution (torchvision's ``vgg*_bn``)
    pool_size : int, the adaptive pool's output size (torchvision: 7)
    arch : str, the name stored in checkpoints ("vgg" keeps every argument in ``config``)

    Returns
    -------
    Network with children features, avgpool, flatten (no parameters) and classifier.

    Raises
    ------
    ValueError
        input_size too small for the features, naming the layer.
    """
    cfg = [c if c == "M" else int(c) for c in cfg]
    config = dict(cfg=list(cfg), num_classes=num_classes, input_size=input_size, in_channels=in_channels,
                  hidden=hidden, dropout=dropout, batch_norm=bool(batch_norm), pool_size=int(pool_size))
    layers, c = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            c = v
    features = nn.Sequential(*layers)
    feature_size(features, (in_channels, input_size, input_size), arch)  # a clear error if it does not fit
    classifier = nn.Sequential(
        nn.Linear(c * pool_size * pool_size, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes))
    if arch in _NAMED:
        config = {k: v for k, v in config.items() if k not in ("cfg", "hidden", "batch_norm", "pool_size")}
    else:
        arch = "vgg"
    return Network({"features": features, "avgpool": nn.AdaptiveAvgPool2d((pool_size, pool_size)),
                    "flatten": nn.Flatten(), "classifier": classifier}, arch=arch, config=config,
                   input_shape=(in_channels, input_size, input_size))


_NAMED = {name + bn for name in CFGS for bn in ("", "_bn")}


def _named(name: str, batch_norm: bool):
    def build(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5) -> Network:
        return vgg(CFGS[name], num_classes=num_classes, input_size=input_size, in_channels=in_channels,
                   dropout=dropout, batch_norm=batch_norm, arch=name + ("_bn" if batch_norm else ""))

    build.__name__ = build.__qualname__ = name + ("_bn" if batch_norm else "")
    bn = " (a BatchNorm2d after every convolution)" if batch_norm else ""
    build.__doc__ = f"""torchvision's {build.__name__}{bn}: features, avgpool (7x7), classifier.

    Parameters
    ----------
    num_classes : int
        Outputs of the last Linear layer (ImageNet: 1000).
    input_size : int
        The square input side ``summary`` reports; any input of at least 32x32 runs (the adaptive
        average pool brings the 512 feature maps to 7x7, as in torchvision).
    in_channels : int
        Input channels C (RGB: 3).
    dropout : float
        Probability of the classifier's two Dropout layers.

    Returns
    -------
    convforge.models.Network
        arch "{build.__name__}", torchvision's parameter names and indices (features.0.weight, ...).

    Raises
    ------
    ValueError
        input_size below 32 (the five 2x2 poolings leave nothing), naming the layer.
    """
    return build


vgg11, vgg11_bn = _named("vgg11", False), _named("vgg11", True)
vgg13, vgg13_bn = _named("vgg13", False), _named("vgg13", True)
vgg16, vgg16_bn = _named("vgg16", False), _named("vgg16", True)
vgg19, vgg19_bn = _named("vgg19", False), _named("vgg19", True)
