"""Optimisers with PyTorch's update rules (torch.optim.SGD and torch.optim.Adam, L2 weight decay).

Updates run in place on the host arrays; parameters on a device are brought to the host,
updated and sent back (the functional API has no elementwise update kernels).
"""
from __future__ import annotations

import math

import numpy as np

from . import _arrays


class Optimizer:
    """Base of the optimisers: ``params`` (a list of Parameters), ``lr``, and one state dict per parameter.

    An optimiser pickles with its parameters and state (momentum buffers, Adam's moments and step
    count). Pickle it together with its model, ``pickle.dumps((model, opt))``, so that the copy
    still updates the copied model's parameters (pickled alone, it holds copies of its own);
    training then continues bit for bit as if it had not been interrupted.

    Raises
    ------
    ValueError
        For an empty parameter list or a negative learning rate.
    """

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr < 0:
            raise ValueError(f"invalid learning rate lr={lr}")
        self.lr = float(lr)
        self.state = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            w = _arrays.to_host(p.data)
            g = _arrays.to_host(p.grad)
            self._update(w, g, st)
            if not _arrays.is_host(p.data):
                p.data = _arrays.like(w, p.data)

    def _update(self, w, g, st):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"lr": self.lr, "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()} for st in self.state]}

    def load_state_dict(self, sd) -> None:
        self.lr = float(sd["lr"])
        self.state = [dict(st) for st in sd["state"]]


class SGD(Optimizer):
    def __init__(self, params, lr=1e-2, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _update(self, w, g, st):
        if self.weight_decay:
            g = g + np.float32(self.weight_decay) * w
        if self.momentum:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = np.array(g, dtype=np.float32, copy=True)
            else:
                buf *= np.float32(self.momentum)
                buf += np.float32(1.0 - self.dampening) * g
            g = g + np.float32(self.momentum) * buf if self.nesterov else buf
        w -= np.float32(self.lr) * g


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def _update(self, w, g, st):
        if self.weight_decay:
            g = g + np.float32(self.weight_decay) * w
        if not st:
            st["step"] = 0
            st["exp_avg"] = np.zeros_like(w)
            st["exp_avg_sq"] = np.zeros_like(w)
        st["step"] += 1
        t = st["step"]
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m *= np.float32(self.beta1)
        m += np.float32(1 - self.beta1) * g
        v *= np.float32(self.beta2)
        v += np.float32(1 - self.beta2) * (g * g)
        bc1 = 1 - self.beta1**t
        bc2 = 1 - self.beta2**t
        denom = np.sqrt(v) / np.float32(math.sqrt(bc2))
        denom += np.float32(self.eps)
        w -= np.float32(self.lr / bc1) * (m / denom)
