"""AlexNet as torchvision builds it (the single-GPU variant of Krizhevsky et al. 2012): 61,100,840 parameters."""
from __future__ import annotations

from .. import nn
from .network import Network, feature_size


def alexnet(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5) -> Network:
    """torchvision's AlexNet (the single-GPU variant of Krizhevsky et al. 2012): 61,100,840 parameters at 224.

    For input_size 224 the features give 256x6x6 (torchvision's adaptive average pool is then the
    identity and is left out); other sizes change the first classifier layer's width.

    Parameters
    ----------
    num_classes : int
    input_size : int
        Square input side; at least 63 (the 11x11/4 convolution and three 3x3/2 poolings).
    in_channels : int
    dropout : float
        Probability of the classifier's two Dropout layers.

    Returns
    -------
    convforge.models.Network
        arch "alexnet", torchvision's parameter names (features.0.weight...).

    Raises
    ------
    ValueError
        An input_size too small for the windows, naming the layer where nothing fits.
    """
    config = dict(num_classes=num_classes, input_size=input_size, in_channels=in_channels, dropout=dropout)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    flat = feature_size(features, (in_channels, input_size, input_size), "alexnet")
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(flat, 4096), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes))
    return Network({"features": features, "flatten": nn.Flatten(), "classifier": classifier}, arch="alexnet",
                   config=config, input_shape=(in_channels, input_size, input_size))
