"""convforge.nn: layers with an explicit backward on top of convforge.functional.

    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 14 * 14, 10))
    logits = model(x); loss = criterion(logits, y)
    model.zero_grad(); model.backward(criterion.backward()); opt.step()
"""
from . import init
from .init import manual_seed
from .layers import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
from .loss import CrossEntropyLoss
from .module import Module, Parameter, Sequential
from .optim import SGD, Adam, Optimizer
from .serialization import load_checkpoint, load_torch_state_dict, load_weights, read_checkpoint, save_checkpoint, to_torch_state_dict

__all__ = [
    "Module", "Parameter", "Sequential", "Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "ReLU", "Tanh", "Sigmoid",
    "Flatten", "Dropout", "AdaptiveAvgPool2d", "BatchNorm2d", "CrossEntropyLoss", "SGD", "Adam", "Optimizer", "init", "manual_seed",
    "load_torch_state_dict", "load_weights", "to_torch_state_dict", "save_checkpoint", "load_checkpoint", "read_checkpoint",
]
