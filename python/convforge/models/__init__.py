"""The lecture's networks built from convforge.nn: LeNet-5, AlexNet, VGG-11/13/16/19 (with and without
batch norm).

AlexNet and VGG are laid out as torchvision's (``features``, ``avgpool``, ``classifier``, same
indices: ``features.0.weight``, ``classifier.1.bias``, ``features.1.running_mean``), so a torchvision
state dict loads with ``nn.load_torch_state_dict`` / ``nn.load_weights`` and runs on any input size
the features accept.
"""
from .alexnet import alexnet
from .lenet import lenet5
from .network import Network
from .vgg import CFGS, VGG16_CFG, vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

_REGISTRY = {"lenet5": lenet5, "alexnet": alexnet, "vgg": vgg,
             "vgg11": vgg11, "vgg11_bn": vgg11_bn, "vgg13": vgg13, "vgg13_bn": vgg13_bn,
             "vgg16": vgg16, "vgg16_bn": vgg16_bn, "vgg19": vgg19, "vgg19_bn": vgg19_bn}


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


__all__ = ["lenet5", "alexnet", "vgg", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
           "vgg19_bn", "CFGS", "VGG16_CFG", "Network", "build", "names"]
