"""Losses. CrossEntropyLoss: mean over the batch of -log softmax(logits)[label], as torch's default."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from . import _arrays


def _labels(labels, logits):
    """int64 labels on the logits' device."""
    if _arrays.is_host(labels):
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    return labels if _arrays.is_host(logits) == _arrays.is_host(labels) else _arrays.to_device(labels, _arrays.device_of(logits))


class CrossEntropyLoss:
    """``loss = criterion(logits, labels)`` returns a float; ``criterion.backward()`` returns d loss / d logits."""

    def __init__(self):
        self._logits = self._labels = None

    def __call__(self, logits, labels) -> float:
        return self.forward(logits, labels)

    def forward(self, logits, labels) -> float:
        self._logits, self._labels = logits, _labels(labels, logits)
        return float(F.cross_entropy(logits, self._labels))

    def backward(self, grad_out: float = 1.0):
        if self._logits is None:
            raise RuntimeError("CrossEntropyLoss.backward() called before forward()")
        g = F.cross_entropy_backward(self._logits, self._labels)
        if grad_out != 1.0:
            g = _arrays.like(_arrays.to_host(g) * np.float32(grad_out), g)
        return g

    def __repr__(self):
        return "CrossEntropyLoss()"
