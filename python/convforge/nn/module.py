"""Module, Parameter and Sequential: layers with an explicit backward (no autograd).

Caffe/CS231n style: ``forward(x)`` caches what the backward pass needs; ``backward(dy)``
adds each parameter's gradient to ``param.grad`` and returns the gradient of the input.
A container's backward runs its children's backward in reverse order.

Pickling: modules, parameters and optimisers are plain objects whose ``__dict__`` is their state
(no closures: initialisers are module-level functions or small classes, see ``nn.init``), so
they pickle as they are, and so does any new layer built the same way, buffers included. What
travels: configuration, parameters (data, gradient, or the seed and initialiser of a parameter
not yet materialised), the train/eval mode, dropout generators, and the last forward's caches
(so a backward can follow an unpickled forward). Device arrays travel as host copies
(``convforge.cuda``). A layer whose ``algo`` names a student kernel (``load_kernel``) takes the
kernel along: unpickling re-loads it from its cached build and registers it.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import _arrays, init as _init


class Parameter:
    """A trainable array and its gradient.

    ``Parameter(array)`` wraps an existing array. ``Parameter(shape=..., init=fn)`` creates
    the array lazily, on first access of ``.data``, as ``fn(shape, rng)`` with an rng seeded
    when the parameter was created (see ``convforge.nn.init``).

    A Parameter pickles with its data and gradient; one not yet materialised pickles as its
    shape, seed and initialiser (so the copy materialises the same values), which therefore must
    be picklable: a module-level function, an instance of a module-level class such as
    ``nn.init.Uniform``, or a ``functools.partial`` of one (not a lambda).

    Parameters
    ----------
    data : array, optional
        float32 numpy array (copied to a contiguous float32 array if needed) or device array.
    shape : tuple of int, optional
        The shape of a lazily created parameter (with ``init``).
    init : callable, optional
        ``init(shape, rng) -> array``, called once on first access of ``.data``.

    Raises
    ------
    ValueError
        When neither data nor both shape and init are given.
    """

    def __init__(self, data=None, *, shape=None, init=None):
        self.grad = None
        self._device = "cpu"
        if data is not None:
            if _arrays.is_host(data):
                data = np.ascontiguousarray(data, dtype=np.float32)
            self._data = data
            self.shape = tuple(data.shape)
            self._init = None
        else:
            if shape is None or init is None:
                raise ValueError("Parameter needs either data or both shape= and init=")
            self._data = None
            self.shape = tuple(int(s) for s in shape)
            self._init = init
            self._seed = _init.next_seed()

    @property
    def data(self):
        if self._data is None:
            arr = self._init(self.shape, np.random.default_rng(self._seed))
            self._data = _arrays.to_device(np.ascontiguousarray(arr, np.float32), self._device)
        return self._data

    @data.setter
    def data(self, value):
        if tuple(value.shape) != self.shape:
            raise ValueError(f"parameter shape is {self.shape}, got an array of shape {tuple(value.shape)}")
        self._data = value

    @property
    def materialized(self) -> bool:
        return self._data is not None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def device(self) -> str:
        return self._device if self._data is None else _arrays.device_of(self._data)

    def numpy(self) -> np.ndarray:
        return _arrays.to_host(self.data)

    def accumulate_grad(self, g) -> None:
        self.grad = g if self.grad is None else _arrays.add(self.grad, g)

    def to(self, device: str) -> "Parameter":
        self._device = _arrays.check_device(device)
        if self._data is not None:
            self._data = _arrays.to_device(self._data, device)
        if self.grad is not None:
            self.grad = _arrays.to_device(self.grad, device)
        return self

    def __repr__(self):
        return f"Parameter(shape={self.shape}, device={self.device!r})"


_KERNEL_KEY = "__student_kernel__"  # in a pickled layer's state only, never in its __dict__


class Module:
    """Base class of layers and containers.

    A subclass calls ``Module.__init__()`` first; assigning a Parameter or a Module to an attribute
    registers it (``named_parameters``, ``named_modules``, ``state_dict``). Modules pickle with
    their ``__dict__`` (see the module's docstring), so subclasses need no pickling code.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- pickling: the __dict__ as it is, plus the student kernel a layer's algo names ---------
    def __getstate__(self):
        state = dict(self.__dict__)
        algo = state.get("algo")
        if isinstance(algo, str):
            from ..kernels import _registry

            kernel = _registry().get(algo)
            if kernel is not None:  # unpickling it re-loads and registers it (StudentKernel.__reduce__)
                state[_KERNEL_KEY] = kernel
        return state

    def __setstate__(self, state):
        state = dict(state)
        state.pop(_KERNEL_KEY, None)
        self.__dict__.update(state)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(f"{type(self).__name__}.__init__ must call Module.__init__() first")
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            buffers[name] = value
            return
        if isinstance(value, Parameter):
            params[name] = value
            self._modules.pop(name, None)
        elif isinstance(value, Module):
            self._modules[name] = value
            params.pop(name, None)
        elif value is None and name in params:
            params[name] = None  # e.g. bias=False keeps the slot, as in torch
        else:
            params.pop(name, None)
        object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails: buffers live in _buffers
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_buffer(self, name: str, array) -> None:
        """Keep array (state that is not trained: running statistics, counters) under name, as
        ``torch.nn.Module.register_buffer``: read as ``self.name``, saved in ``state_dict`` after this
        module's parameters, moved by ``to``."""
        if name in self.__dict__ or name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        self._buffers[name] = array

    # -- computation ----------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- structure ------------------------------------------------------------------
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = ""):
        for name, p in self._parameters.items():
            if p is not None:
                yield (f"{prefix}.{name}" if prefix else name), p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        """(name, array) of every buffer, torch's names ('features.1.running_mean')."""
        for name, b in self.__dict__.get("_buffers", {}).items():
            yield (f"{prefix}.{name}" if prefix else name), b
        for name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}.{name}" if prefix else name)

    def _named_state(self, prefix: str = ""):
        """(name, Parameter or buffer array, is_buffer) in torch's state_dict order: each module's
        parameters, then its buffers, then its children."""
        for name, p in self._parameters.items():
            if p is not None:
                yield (f"{prefix}.{name}" if prefix else name), p, False
        for name, b in self.__dict__.get("_buffers", {}).items():
            yield (f"{prefix}.{name}" if prefix else name), b, True
        for name, child in self._modules.items():
            yield from child._named_state(f"{prefix}.{name}" if prefix else name)

    def num_parameters(self) -> int:
        """Number of trainable scalars, from the shapes (allocates nothing)."""
        return sum(p.numel for p in self.parameters())

    def set_input_grad(self, enabled: bool) -> "Module":
        """Whether backward computes the gradient of the model's input. Off, the first layer skips it
        (when it can: Conv2d) and backward returns None; training needs only the parameters' gradients."""
        first = next((m for _, m in self.named_modules() if not m._modules), None)
        if first is not None and hasattr(first, "need_input_grad"):
            first.need_input_grad = bool(enabled)
        return self

    # -- modes and devices ----------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, device: str) -> "Module":
        for p in self.parameters():
            p.to(device)
        for m in self.modules():  # float buffers follow; integer counters stay on the host
            for name, b in m.__dict__.get("_buffers", {}).items():
                if np.dtype(b.dtype) == np.float32:
                    m._buffers[name] = _arrays.to_device(b, device)
        return self

    @property
    def device(self) -> str:
        ps = self.parameters()
        return ps[0].device if ps else "cpu"

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> numpy copy of every parameter (float32) and buffer (its own dtype), in torch's order
        and with torch's names ('0.weight', 'features.3.bias', 'features.1.running_mean')."""
        out = OrderedDict()
        for n, v, is_buffer in self._named_state():
            out[n] = np.array(_arrays.to_host(v), copy=True) if is_buffer else np.array(v.numpy(), dtype=np.float32, copy=True)
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        own = OrderedDict((n, (v, is_buffer)) for n, v, is_buffer in self._named_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state dict does not match {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}")
        owners = {n: m for n, m in self.named_modules()}
        for name, (p, is_buffer) in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            shape = tuple(p.shape)
            if tuple(value.shape) != shape:
                raise ValueError(f"state dict entry {name!r} has shape {tuple(value.shape)}, the model expects {shape}")
            if is_buffer:
                owner, _, attr = name.rpartition(".")
                host = np.array(value, dtype=np.dtype(p.dtype), order="C", copy=True)  # keeps 0-d
                owners[owner]._buffers[attr] = host if _arrays.is_host(p) else _arrays.like(host, p)
            else:
                p.data = _arrays.to_device(np.ascontiguousarray(value, dtype=np.float32).copy(), p.device)

    # -- shapes and costs (for summary) -----------------------------------------------
    def output_shape(self, input_shape):
        """Output shape for an input of shape input_shape (N, C, H, W), or ValueError."""
        shape = tuple(input_shape)
        for name, child in self._modules.items():
            shape = child.output_shape(shape)
        return shape

    def flops(self, input_shape) -> int:
        """Floating-point operations of one forward pass (a multiply-add counts 2)."""
        return 0

    def summary(self, input_shape, file=None, print_fn=print) -> str:
        from ._summary import summary

        return summary(self, input_shape, file=file, print_fn=print_fn)

    # -- printing -------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Children run in order; ``Sequential(a, b)`` names them '0', '1'; an OrderedDict names them."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (dict, OrderedDict)):
            for name, layer in layers[0].items():
                setattr(self, name, layer)
        else:
            for i, layer in enumerate(layers):
                if not isinstance(layer, Module):
                    raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} at position {i}")
                setattr(self, str(i), layer)

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        if isinstance(i, str):
            return self._modules[i]
        return mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer.forward(x)
        return x

    def backward(self, grad_out):
        for layer in reversed(self._modules.values()):
            grad_out = layer.backward(grad_out)
            if grad_out is None:  # the first layer skipped the input gradient (set_input_grad(False))
                break
        return grad_out
