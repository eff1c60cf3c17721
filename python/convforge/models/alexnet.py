"""AlexNet as torchvision builds it (the single-GPU variant of Krizhevsky et al. 2012): 61,100,840 parameters."""
from __future__ import annotations

from .. import nn
from .network import Network, feature_size


def alexnet(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5) -> Network:
    """torchvision's AlexNet: ``features``, ``avgpool`` (adaptive average pooling to 6x6) and
    ``classifier``, with torchvision's layer indices, so its state dicts load both ways.

    Parameters
    ----------
    num_classes, in_channels, dropout : as torchvision
    input_size : int
        The size ``summary`` reports; any input of at least 63x63 runs (the features' last max pool
        needs 3x3), as in torchvision. A smaller input_size raises a ValueError naming the layer.

    Returns
    -------
    convforge.models.Network
        Children features, avgpool, flatten (no parameters) and classifier; arch "alexnet".

    Raises
    ------
    ValueError
        input_size below 63 (nothing fits the features' last max pool), naming the layer.
    """
    config = dict(num_classes=num_classes, input_size=input_size, in_channels=in_channels, dropout=dropout)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    feature_size(features, (in_channels, input_size, input_size), "alexnet")  # a clear error if it does not fit
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes))
    return Network({"features": features, "avgpool": nn.AdaptiveAvgPool2d((6, 6)), "flatten": nn.Flatten(),
                    "classifier": classifier}, arch="alexnet", config=config,
                   input_shape=(in_channels, input_size, input_size))
