"""The lecture's networks built from convforge.nn: LeNet-5, AlexNet, VGG-16.

Layer names follow torchvision (``features.0.weight``, ``classifier.1.bias``), so a torchvision
state dict loads with ``nn.load_torch_state_dict`` where the input size is 224x224.
"""
from .alexnet import alexnet
from .lenet import lenet5
from .network import Network
from .vgg import VGG16_CFG, vgg, vgg16

_REGISTRY = {"lenet5": lenet5, "alexnet": alexnet, "vgg16": vgg16, "vgg": vgg}


def names():
    return sorted(k for k in _REGISTRY if k != "vgg")


def build(name: str, **config):
    """Build a model by architecture name with the given config (as stored in checkpoints)."""
    try:
        fn = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(names())}") from None
    return fn(**config)


__all__ = ["lenet5", "alexnet", "vgg16", "vgg", "VGG16_CFG", "Network", "build", "names"]
