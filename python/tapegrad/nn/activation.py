"""Activation modules with PyTorch's names, constructor arguments and
``extra_repr`` (issue 14).  Each applies one op of the registry (or a
composite of ops) through ``_activation`` of ``nn.modules``, the factory of
``ReLU``, ``Tanh`` and ``Sigmoid``.

``inplace=True`` is accepted where PyTorch takes it and shown in the repr,
but the result is computed out of place: the values are the same and the
input is left unchanged.

>>> import tapegrad as tg
>>> act = tg.nn.ELU(alpha=0.5)
>>> act
ELU(alpha=0.5)
>>> [round(v, 4) for v in act(tg.tensor([-1.0, 2.0])).tolist()]
[-0.3161, 2.0]
"""
from __future__ import annotations

from .. import _C
from .modules import _activation

__all__ = ["ELU", "SELU", "CELU", "SiLU", "Mish", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish",
           "Softsign", "LogSigmoid", "GELU", "Softplus", "Softmin", "GLU"]


ELU = _activation("ELU", _C.elu, """x if x > 0 else alpha * (exp(x) - 1), elementwise.

>>> tg.nn.ELU()(tg.tensor([0.0, 3.0])).tolist()
[0.0, 3.0]
""", alpha=1.0, inplace=False)

SELU = _activation("SELU", _C.selu, """Scaled ELU with PyTorch's constants
(scale 1.0507..., alpha 1.6733...), elementwise.

>>> round(tg.nn.SELU()(tg.tensor([1.0])).item(), 4)
1.0507
""", inplace=False)

CELU = _activation("CELU", _C.celu, """x if x > 0 else alpha * (exp(x / alpha) - 1), elementwise.

>>> tg.nn.CELU(alpha=2.0)
CELU(alpha=2.0)
""", alpha=1.0, inplace=False)

SiLU = _activation("SiLU", _C.silu, """x * sigmoid(x) (swish), elementwise.

>>> round(tg.nn.SiLU()(tg.tensor([1.0])).item(), 4)
0.7311
""", inplace=False)

Mish = _activation("Mish", _C.mish, """x * tanh(softplus(x)), elementwise.

>>> round(tg.nn.Mish()(tg.tensor([1.0])).item(), 4)
0.8651
""", inplace=False)

Hardtanh = _activation("Hardtanh", _C.hardtanh, """Clamp to [min_val, max_val]; the gradient is 0 at and
beyond the corners (PyTorch's).

>>> tg.nn.Hardtanh(-2.0, 2.0)(tg.tensor([-5.0, 1.0, 5.0])).tolist()
[-2.0, 1.0, 2.0]
""", min_val=-1.0, max_val=1.0, inplace=False)

ReLU6 = _activation("ReLU6", _C.relu6, """min(max(x, 0), 6), elementwise.

>>> tg.nn.ReLU6()(tg.tensor([-1.0, 3.0, 9.0])).tolist()
[0.0, 3.0, 6.0]
""", inplace=False)

Hardsigmoid = _activation("Hardsigmoid", _C.hardsigmoid, """min(max(x + 3, 0), 6) / 6,
elementwise.

>>> tg.nn.Hardsigmoid()(tg.tensor([-4.0, 0.0, 4.0])).tolist()
[0.0, 0.5, 1.0]
""", inplace=False)

Hardswish = _activation("Hardswish", _C.hardswish, """x * min(max(x + 3, 0), 6) / 6,
elementwise.

>>> tg.nn.Hardswish()(tg.tensor([-4.0, 0.0, 4.0])).tolist()
[-0.0, 0.0, 4.0]
""", inplace=False)

Softsign = _activation("Softsign", _C.softsign, """x / (1 + |x|), elementwise.

>>> tg.nn.Softsign()(tg.tensor([1.0, -3.0])).tolist()
[0.5, -0.75]
""")

LogSigmoid = _activation("LogSigmoid", _C.logsigmoid, """log(sigmoid(x)), computed without overflow.

>>> tg.nn.LogSigmoid()(tg.tensor([-1000.0])).tolist()
[-1000.0]
""")

GELU = _activation("GELU", _C.gelu, """x * Phi(x), elementwise; approximate='tanh' uses PyTorch's
tanh formula.

>>> tg.nn.GELU(approximate="tanh")
GELU(approximate='tanh')
""", approximate="none")

Softplus = _activation("Softplus", _C.softplus, """log(1 + exp(beta x)) / beta, and x where
beta x > threshold (PyTorch's), elementwise.

>>> tg.nn.Softplus(beta=2.0)
Softplus(beta=2.0, threshold=20.0)
""", beta=1.0, threshold=20.0)

Softmin = _activation("Softmin", _C.softmin, """softmax(-x) along ``dim`` (None: the last).

>>> tg.nn.Softmin(dim=1)(tg.tensor([[0.0, 0.0]])).tolist()
[[0.5, 0.5]]
""", dim=None)

GLU = _activation("GLU", _C.glu, """Gated linear unit along ``dim``: a * sigmoid(b), a and b the two
halves of the input.

>>> tg.nn.GLU()(tg.tensor([[2.0, 0.0]])).tolist()
[[1.0]]
""", dim=-1)
