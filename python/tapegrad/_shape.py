"""Shape functions written with the ops of the core (issue 14, shape and
indexing): NumPy's stacking helpers.  Their gradients are those of the ops
they call (``concat``, ``reshape``), so nothing here needs a VJP.
"""
from __future__ import annotations

from . import _C

__all__ = ["concatenate", "hstack", "vstack", "dstack", "column_stack", "atleast_1d", "atleast_2d",
           "atleast_3d"]


def concatenate(tensors, axis=0, *, dim=None):
    """NumPy's name of ``concat``: join tensors along an existing axis
    (``dim=`` accepted).

    >>> import tapegrad as tg
    >>> tg.concatenate([tg.zeros(2), tg.ones(1)]).tolist()
    [0.0, 0.0, 1.0]
    """
    return _C.concat(tensors, axis if dim is None else dim)


def _tensors(who, tensors):
    ts = [t if isinstance(t, _C.Tensor) else _C.tensor(t) for t in tensors]
    if not ts:
        raise ValueError(f"{who}: need at least one tensor")
    return ts


def atleast_1d(x):
    """x with at least one dimension (a 0-d tensor becomes shape (1,)).

    >>> import tapegrad as tg
    >>> tg.atleast_1d(tg.tensor(3.0)).shape
    (1,)
    """
    x = x if isinstance(x, _C.Tensor) else _C.tensor(x)
    return x.reshape(1) if x.ndim == 0 else x


def atleast_2d(x):
    """x with at least two dimensions (NumPy's rule: (n,) becomes (1, n)).

    >>> import tapegrad as tg
    >>> tg.atleast_2d(tg.zeros(3)).shape
    (1, 3)
    """
    x = atleast_1d(x)
    return x.reshape(1, x.shape[0]) if x.ndim == 1 else x


def atleast_3d(x):
    """x with at least three dimensions (NumPy's rule: (n,) becomes (1, n, 1),
    (m, n) becomes (m, n, 1)).

    >>> import tapegrad as tg
    >>> tg.atleast_3d(tg.zeros(2, 3)).shape
    (2, 3, 1)
    """
    x = atleast_1d(x)
    if x.ndim == 1:
        return x.reshape(1, x.shape[0], 1)
    if x.ndim == 2:
        return x.reshape(x.shape[0], x.shape[1], 1)
    return x


def hstack(tensors):
    """Join along the second axis (the first for 1-D tensors), NumPy's hstack.

    >>> import tapegrad as tg
    >>> tg.hstack([tg.zeros(2, 1), tg.ones(2, 2)]).shape
    (2, 3)
    """
    ts = [atleast_1d(t) for t in _tensors("hstack", tensors)]
    return _C.concat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Join along the first axis, 1-D tensors as rows (NumPy's vstack).

    >>> import tapegrad as tg
    >>> tg.vstack([tg.zeros(3), tg.ones(3)]).shape
    (2, 3)
    """
    return _C.concat([atleast_2d(t) for t in _tensors("vstack", tensors)], 0)


def dstack(tensors):
    """Join along the third axis (NumPy's dstack).

    >>> import tapegrad as tg
    >>> tg.dstack([tg.zeros(2, 3), tg.ones(2, 3)]).shape
    (2, 3, 2)
    """
    return _C.concat([atleast_3d(t) for t in _tensors("dstack", tensors)], 2)


def column_stack(tensors):
    """1-D tensors as the columns of a matrix, 2-D ones joined as they are
    (NumPy's column_stack).

    >>> import tapegrad as tg
    >>> tg.column_stack([tg.zeros(3), tg.ones(3)]).shape
    (3, 2)
    """
    ts = [t.reshape(t.shape[0], 1) if t.ndim == 1 else atleast_2d(t)
          for t in _tensors("column_stack", tensors)]
    return _C.concat(ts, 1)
