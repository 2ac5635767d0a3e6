"""Shape functions written with the ops of the core (issue 14, shape and
indexing): NumPy's stacking helpers.  Their gradients are those of the ops
they call (``concat``, ``reshape``), so nothing here needs a VJP.
"""
from __future__ import annotations

import math

import numpy as np

from . import _C

__all__ = ["concatenate", "hstack", "vstack", "dstack", "column_stack", "atleast_1d", "atleast_2d",
           "atleast_3d", "meshgrid", "linspace", "logspace"]
#: The API page's group of the names that are not shape functions (the docs
#: put the rest of a module under its MODULE_GROUPS heading).
_API_GROUPS = {"Creating tensors": "meshgrid linspace logspace"}


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


def meshgrid(*tensors, indexing="xy"):
    """Coordinate grids from 1-D tensors (NumPy's meshgrid; PyTorch's with
    ``indexing='xy'``).  ``indexing='xy'`` (NumPy's default) gives shape
    (len(y), len(x), ...) for two inputs, ``'ij'`` (PyTorch's default) gives
    (len(x), len(y), ...).  The grids are broadcast views (read-only, no copy);
    their gradients are summed back to the inputs.

    >>> import tapegrad as tg
    >>> xx, yy = tg.meshgrid(tg.arange(3), tg.arange(2))
    >>> xx.shape, yy.tolist()
    ((2, 3), [[0, 0, 0], [1, 1, 1]])
    """
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    ts = [t if isinstance(t, _C.Tensor) else _C.tensor(t) for t in tensors]
    for i, t in enumerate(ts):
        if t.ndim > 1:
            raise ValueError(f"meshgrid: input {i} has shape {t.shape}; every input must be 0-D or 1-D")
    ts = [t.reshape(-1) for t in ts]
    n = len(ts)
    shape = [t.shape[0] for t in ts]
    if indexing == "xy" and n >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, t in enumerate(ts):
        pos = i
        if indexing == "xy" and n >= 2 and i < 2:
            pos = 1 - i
        view = [1] * n
        view[pos] = t.shape[0]
        out.append(_C.broadcast_to(t.reshape(*view), tuple(shape)))
    return tuple(out)


def _creation_dtype(dtype, requires_grad, values):
    dt = _C.float32 if dtype is None else dtype
    t = _C.tensor(np.asarray(values), dtype=dt)
    if requires_grad:
        t.requires_grad = True
    return t


def linspace(start, stop, num=50, endpoint=True, *, steps=None, dtype=None, requires_grad=False):
    """``num`` evenly spaced numbers from start to stop (NumPy's linspace;
    PyTorch's ``steps=`` accepted).  float32 unless ``dtype`` says otherwise.

    >>> import tapegrad as tg
    >>> tg.linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if steps is not None:
        num = steps
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"linspace: num must be a non-negative integer, got {num!r}")
    for name, v in (("start", start), ("stop", stop)):
        if not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
            raise ValueError(f"linspace: {name} must be a finite number, got {v!r}")
    return _creation_dtype(dtype, requires_grad, np.linspace(float(start), float(stop), int(num), endpoint=endpoint))


def logspace(start, stop, num=50, endpoint=True, base=10.0, *, steps=None, dtype=None, requires_grad=False):
    """``base ** linspace(start, stop, num)`` (NumPy's logspace; PyTorch's
    ``steps=`` accepted).

    >>> import tapegrad as tg
    >>> tg.logspace(0, 2, 3).tolist()
    [1.0, 10.0, 100.0]
    """
    if steps is not None:
        num = steps
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"logspace: num must be a non-negative integer, got {num!r}")
    for name, v in (("start", start), ("stop", stop), ("base", base)):
        if not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
            raise ValueError(f"logspace: {name} must be a finite number, got {v!r}")
    return _creation_dtype(dtype, requires_grad,
                           np.logspace(float(start), float(stop), int(num), endpoint=endpoint, base=float(base)))
