"""Keras losses with ``from_logits`` as Keras defines it.

``from_logits=False`` (Keras's default) means the model's output already is
a probability distribution (e.g. after a softmax layer): the loss takes its
log, clipping at 1e-7 as Keras does. ``from_logits=True`` means raw scores:
the loss applies log-softmax itself (numerically better). Passing softmax
probabilities with ``from_logits=True`` treats them as scores: the model
still trains, but worse (the loss cannot fall below log(1 + (C-1)/e) for C
classes); as Keras does, the losses warn when they can see that ``y_pred``
was produced by a softmax (its tape entry is a ``softmax``; under
``no_grad`` nothing is recorded and nothing is said). Notebook 02 shows both.
"""
from __future__ import annotations

import os
import sys
import warnings

from .. import _C

_EPS = 1e-7


_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel():
    """The stacklevel of the first caller outside tapegrad (the user's
    ``fit`` or loss call), so the warning names the user's line."""
    level, f = 1, sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PKG + os.sep):
        f, level = f.f_back, level + 1
    return level


def _warn_if_softmax(name, y_pred):
    fn = getattr(y_pred, "grad_fn", None)
    if fn is not None and getattr(fn, "op", None) == "softmax":
        warnings.warn(f'"`{name}` received `from_logits=True`, but the `output` argument was '
                      f'produced by a Softmax activation and thus does not represent logits. '
                      f'Was this intended?', UserWarning, stacklevel=_user_stacklevel())


class SparseCategoricalCrossentropy:
    """Cross-entropy with integer class labels."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred):
        if self.from_logits:
            _warn_if_softmax("sparse_categorical_crossentropy", y_pred)
            return _C.cross_entropy(y_pred, y_true)
        p = y_pred.clip(_EPS, 1 - _EPS)
        return _C.nll_loss(p.log(), y_true)

    def __repr__(self):
        return f"SparseCategoricalCrossentropy(from_logits={self.from_logits})"


class CategoricalCrossentropy:
    """Cross-entropy with one-hot targets."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred):
        if self.from_logits:
            _warn_if_softmax("categorical_crossentropy", y_pred)
        logp = y_pred.log_softmax(-1) if self.from_logits else y_pred.clip(_EPS, 1 - _EPS).log()
        return -(y_true * logp).sum(axis=-1).mean()


class MeanSquaredError:
    def __call__(self, y_true, y_pred):
        return _C.mse_loss(y_pred, y_true)


def get(loss):
    if not isinstance(loss, str):
        return loss
    table = {"sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
             "categorical_crossentropy": CategoricalCrossentropy,
             "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError}
    if loss not in table:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(table)}")
    return table[loss]()
