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
    """The architectures ``build`` knows, as ``convforge train --model`` takes them.

    Parameters
    ----------
    None

    Returns
    -------
    list of str
        ["alexnet", "lenet5", "vgg16"].

    Raises
    ------
    None
    """
    return sorted(k for k in _REGISTRY if k != "vgg")


def build(name: str, **config):
    """Build a model by architecture name with the given config (as checkpoints store it).

    Parameters
    ----------
    name : str
        "lenet5", "alexnet", "vgg16" or "vgg" (any case).
    **config
        Keyword arguments of that builder (num_classes, input_size, in_channels...).

    Returns
    -------
    convforge.models.Network

    Raises
    ------
    ValueError
        An unknown name, or a config the builder refuses.
    TypeError
        A keyword the builder does not take.
    """
    try:
        fn = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(names())}") from None
    return fn(**config)


__all__ = ["lenet5", "alexnet", "vgg16", "vgg", "VGG16_CFG", "Network", "build", "names"]
