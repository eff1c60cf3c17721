"""convforge's kernels inside any PyTorch model (needs torch; ``import convforge`` alone never imports it).

- ``torch.ops.convforge.*``: operators (registered with ``torch.library.Library``) for conv2d, max_pool2d,
  avg_pool2d, linear, relu, tanh, sigmoid and their backward passes, with autograd formulas and
  fake implementations, so autograd, ``torch.compile(fullgraph=True)`` and meta tensors work
  (``convforge/torch/_ops.py``, one table).
- ``convforge.torch.conv2d`` & co.: ``torch.nn.functional``'s signatures on those operators.
- ``convforge.torch.Conv2d`` & co.: the torch layers, running the operators.
- ``convforge.torch.convert(model)``: a model's supported layers switched to them, in place.
- ``python -m convforge.torch.ddp_train``: DistributedDataParallel training on several processes.

::

    import convforge.torch
    model = convforge.torch.convert(model)   # same Parameters; optimisers and state dicts keep working
"""
from . import _ops  # noqa: F401  (registers torch.ops.convforge.*)
from .convert import convert
from .functional import avg_pool2d, conv2d, linear, max_pool2d, relu, sigmoid, tanh
from .modules import AvgPool2d, Conv2d, Linear, MaxPool2d, ReLU, Sigmoid, Tanh

__all__ = ["convert", "conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "tanh", "sigmoid",
           "Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Tanh", "Sigmoid"]
