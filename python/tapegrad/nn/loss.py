"""The loss modules beyond the classic four (``MSELoss``, ``CrossEntropyLoss``,
``NLLLoss`` and ``BCEWithLogitsLoss`` live in ``tg.nn.modules``): each wraps
one loss op of the C core with PyTorch's arguments and semantics.

>>> import tapegrad as tg
>>> tg.nn.L1Loss()(tg.tensor([1.0, -3.0]), tg.zeros(2)).item()
2.0
"""
from __future__ import annotations

from .. import _C
from .modules import Module

__all__ = ["BCELoss", "HuberLoss", "SmoothL1Loss", "L1Loss", "KLDivLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean", allowed=_REDUCTIONS):
        super().__init__()
        if reduction not in allowed:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{', '.join(repr(r) for r in allowed)}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class BCELoss(_Loss):
    """Binary cross-entropy of PROBABILITIES in [0, 1]: ``-w (t log p + (1 - t)
    log(1 - p))``, the logs clamped at -100 as in PyTorch. On logits, use
    ``BCEWithLogitsLoss`` (stabler, one op).

    >>> import tapegrad as tg
    >>> round(tg.nn.BCELoss()(tg.tensor([0.9, 0.2]), tg.tensor([1.0, 0.0])).item(), 4)
    0.1643
    """

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return _C.binary_cross_entropy(input, target, self.weight, self.reduction)


class HuberLoss(_Loss):
    """Huber loss: ``0.5 d^2`` where ``|d| < delta``, ``delta (|d| - delta / 2)``
    elsewhere (``d = input - target``).

    >>> import tapegrad as tg
    >>> tg.nn.HuberLoss(delta=1.0)(tg.tensor([0.5, 3.0]), tg.zeros(2)).item()
    1.3125
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return _C.huber_loss(input, target, self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Smooth L1 loss: ``0.5 d^2 / beta`` where ``|d| < beta``, ``|d| - beta / 2``
    elsewhere; ``beta = 0`` is the L1 loss. (Huber with delta = beta, divided
    by beta.)

    >>> import tapegrad as tg
    >>> tg.nn.SmoothL1Loss(beta=2.0)(tg.tensor([1.0, 4.0]), tg.zeros(2)).item()
    1.625
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return _C.smooth_l1_loss(input, target, self.reduction, beta=self.beta)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``.

    >>> import tapegrad as tg
    >>> tg.nn.L1Loss(reduction="sum")(tg.tensor([1.0, -3.0]), tg.zeros(2)).item()
    4.0
    """

    def forward(self, input, target):
        return _C.l1_loss(input, target, self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence of the targets from the model: the input
    holds LOG-probabilities, the target probabilities (log-probabilities with
    ``log_target=True``). Use ``reduction='batchmean'`` for the KL divergence
    per sample; ``'mean'`` divides by the number of elements (PyTorch's
    default, kept for compatibility).

    >>> import tapegrad as tg
    >>> p = tg.tensor([[0.25, 0.75]])
    >>> tg.nn.KLDivLoss(reduction="batchmean")(p.log(), p).item()
    0.0
    """

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction, _REDUCTIONS + ("batchmean",))
        self.log_target = log_target

    def forward(self, input, target):
        return _C.kl_div(input, target, self.reduction, log_target=self.log_target)
