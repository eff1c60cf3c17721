"""Weight initialisations, with PyTorch's defaults for Conv2d and Linear.

PyTorch initialises ``Conv2d`` and ``Linear`` weights with ``kaiming_uniform_(a=sqrt(5))``,
which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and their biases with the same bound. We draw
from numpy's PCG64 instead of torch's generator, so the values differ but the distribution
(and so the training behaviour) is the same.

Every parameter gets its own seed, drawn from one global generator when the parameter is
created (``manual_seed`` resets it); the array itself is created lazily on first use, so
that ``vgg16().summary(...)`` allocates nothing and the values do not depend on the order
in which parameters are materialised.

Initialisers are module-level functions or small classes (:class:`Uniform`), never closures, so
that parameters, layers and models pickle.
"""
from __future__ import annotations

import math

import numpy as np

_seed_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed the generator behind parameter initialisation and dropout masks (as ``torch.manual_seed``).

    Parameters
    ----------
    seed : int
        Any integer numpy's ``default_rng`` accepts (non-negative).

    Returns
    -------
    None

    Raises
    ------
    ValueError
        A negative seed.
    """
    global _seed_rng
    _seed_rng = np.random.default_rng(int(seed))


def next_seed() -> int:
    return int(_seed_rng.integers(0, 2**63 - 1))


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out needs at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def uniform(shape, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(np.float32)


def kaiming_uniform(shape, rng, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform(shape, -bound, bound, rng)


def kaiming_normal(shape, rng, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    fan_in, fan_out = fans(shape)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    return (rng.standard_normal(size=shape) * std).astype(np.float32)


def xavier_uniform(shape, rng, gain: float = 1.0):
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -bound, bound, rng)


def zeros(shape, rng=None):
    return np.zeros(shape, np.float32)


def torch_default_weight(shape, rng):
    """Conv2d/Linear weight as in PyTorch: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    return kaiming_uniform(shape, rng, a=math.sqrt(5))


class Uniform:
    """An initialiser drawing U(low, high): ``Uniform(-b, b)(shape, rng)`` is ``uniform(shape, -b, b, rng)``.

    A small class rather than a closure, so that a Parameter holding it pickles (and so crosses
    process boundaries: spawn pools, ``ProcessPoolExecutor``, joblib). Initialisers given to
    ``Parameter(shape=..., init=fn)`` should likewise be module-level functions, instances of
    module-level classes, or ``functools.partial`` of those; a lambda or nested function works in
    this process but cannot be pickled.

    Parameters
    ----------
    low, high : float
        The interval's bounds.

    Returns
    -------
    Calling it, ``(shape, rng) -> np.ndarray``: a float32 array of that shape, drawn from rng.
    """

    def __init__(self, low: float, high: float):
        self.low, self.high = float(low), float(high)

    def __call__(self, shape, rng: np.random.Generator) -> np.ndarray:
        return uniform(shape, self.low, self.high, rng)

    def __eq__(self, other):
        return type(other) is type(self) and (self.low, self.high) == (other.low, other.high)

    def __hash__(self):
        return hash((type(self), self.low, self.high))

    def __repr__(self):
        return f"Uniform({self.low!r}, {self.high!r})"


def torch_default_bias(fan_in: int) -> Uniform:
    """Conv2d/Linear bias as in PyTorch: U(+-1/sqrt(fan_in)) (U(0, 0) for fan_in 0).

    Parameters
    ----------
    fan_in : int
        The layer's fan-in (in_channels / groups * R * S for Conv2d, in_features for Linear).

    Returns
    -------
    Uniform
        The initialiser, a picklable ``(shape, rng) -> float32 array``.
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Uniform(-bound, bound)
