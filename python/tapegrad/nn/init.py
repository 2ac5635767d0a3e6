"""Parameter initialisation from the seedable generator (``tg.manual_seed``)."""
from __future__ import annotations

import math

from .. import _C
from ..autograd import no_grad

__all__ = ["uniform_", "normal_", "zeros_", "ones_", "constant_", "xavier_uniform_",
           "kaiming_uniform_"]


def _uniform(shape, low, high, dtype):
    t = _C.rand(*shape, dtype=dtype)
    return t * (high - low) + low


def _fans(t):
    if t.ndim < 2:
        raise ValueError("fan in/out need a tensor with at least 2 dimensions")
    receptive = 1
    for s in t.shape[2:]:
        receptive *= s
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t, a: float = 0.0, b: float = 1.0):
    """Fill t with U(a, b) in place."""
    with no_grad():
        t.copy_(_uniform(t.shape, a, b, t.dtype))
    return t


def normal_(t, mean: float = 0.0, std: float = 1.0):
    """Fill t with N(mean, std^2) in place."""
    with no_grad():
        t.copy_(_C.randn(*t.shape, dtype=t.dtype) * std + mean)
    return t


def constant_(t, value: float):
    with no_grad():
        t.fill_(value)
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain: float = 1.0):
    """Glorot/Xavier uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
    (Keras's default 'glorot_uniform')."""
    fi, fo = _fans(t)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -a, a)


def kaiming_uniform_(t, a: float = 0.0, nonlinearity: str = "leaky_relu"):
    """He/Kaiming uniform: U(-b, b), b = gain * sqrt(3 / fan_in)."""
    fi, _ = _fans(t)
    gain = math.sqrt(2.0 / (1 + a * a)) if nonlinearity in ("relu", "leaky_relu") else 1.0
    b = gain * math.sqrt(3.0 / fi)
    return uniform_(t, -b, b)
