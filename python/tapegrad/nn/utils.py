"""Helpers for training: gradient clipping."""
from __future__ import annotations

from .. import _C


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients of ``parameters`` in place so that their total norm
    is at most ``max_norm``; returns the total norm before clipping (as
    PyTorch). One C call over all gradients."""
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return _C._clip_grad_norm(grads, float(max_norm), float(norm_type))
