"""Keras losses with ``from_logits`` as Keras defines it.

``from_logits=False`` (Keras's default) means the model's output already is
a probability distribution (e.g. after a softmax layer): the loss takes its
log, clipping at 1e-7 as Keras does. ``from_logits=True`` means raw scores:
the loss applies log-softmax itself (numerically better). Passing softmax
probabilities with ``from_logits=True`` silently treats them as scores: the
model still trains, but worse; notebook 02 shows both.
"""
from __future__ import annotations

from .. import _C

_EPS = 1e-7


class SparseCategoricalCrossentropy:
    """Cross-entropy with integer class labels."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred):
        if self.from_logits:
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
