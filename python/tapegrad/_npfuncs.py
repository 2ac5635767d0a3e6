"""NumPy's products and functions of issue 19 whose signatures are not one
or two tensors: ``tensordot``, ``dot``, ``cross``, ``diff``, and the splits
``hsplit``/``vsplit``/``dsplit``.  The ops are composites in
``csrc/ops/npfuncs.c`` (their gradients are those of the ops they are made
of); this module reads the Python arguments and calls them.  ``inner``,
``outer``, ``kron``, ``fmax``, ``fmin``, ``logaddexp2``, ``sinc``,
``deg2rad`` and ``rad2deg`` are bound from the registry like ``tg.add``.
"""
from __future__ import annotations

import operator

import numpy as np

from . import _C
from ._C import Tensor

__all__ = ["tensordot", "dot", "cross", "diff", "hsplit", "vsplit", "dsplit"]


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else _C.tensor(np.asarray(x))


def _int(who: str, what: str, v) -> int:
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{who}: {what} must be an integer, got {type(v).__name__}") from None


def tensordot(a, b, axes=2, *, dims=None):
    """Sum of products over axes of ``a`` and ``b`` (NumPy's tensordot;
    PyTorch's ``dims=`` accepted).  ``axes=N`` pairs the last N axes of a with
    the first N of b; ``axes=(list_a, list_b)`` pairs them one by one.

    >>> a = tg.ones(3, 4, 5)
    >>> tg.tensordot(a, tg.ones(4, 5, 2)).shape
    (3, 2)
    >>> tg.tensordot(a, tg.ones(4, 3), axes=([0, 1], [1, 0])).tolist()
    [12.0, 12.0, 12.0, 12.0, 12.0]
    """
    a, b = _t(a), _t(b)
    if dims is not None:
        axes = dims
    if isinstance(axes, (list, tuple)) or (isinstance(axes, Tensor) and axes.ndim > 0):
        if len(axes) != 2:
            raise ValueError(f"tensordot: axes must be an integer or a pair of axis lists, got {axes!r}")
        ax, bx = axes
        ax = [ax] if not isinstance(ax, (list, tuple)) else list(ax)
        bx = [bx] if not isinstance(bx, (list, tuple)) else list(bx)
        ax = [_int("tensordot", "an axis", v) for v in ax]
        bx = [_int("tensordot", "an axis", v) for v in bx]
        if len(ax) != len(bx):
            raise ValueError(f"tensordot: {len(ax)} axes of a {tuple(a.shape)} paired with {len(bx)} axes "
                             f"of b {tuple(b.shape)}: the two lists must have the same length")
    else:
        n = _int("tensordot", "axes", axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ValueError(f"tensordot: axes={n} for a of shape {tuple(a.shape)} and b of shape "
                             f"{tuple(b.shape)} (expected 0 <= axes <= {min(a.ndim, b.ndim)})")
        ax = list(range(a.ndim - n, a.ndim))
        bx = list(range(n))
    if len(ax) > 8:
        raise ValueError(f"tensordot: {len(ax)} axis pairs (at most 8)")
    ptext = f"i0={len(ax)}" + (f" ints={','.join(str(v) for v in ax + bx)}" if ax else "")
    return _C._op_apply("tensordot", [a, b], ptext)


def dot(a, b):
    """NumPy's dot: for 1-D and 2-D operands the matrix product, for a 0-d
    one a product, and for N-d ones the sum over the last axis of ``a`` and
    the second-to-last of ``b``: ``dot(a, b)[i, j, k, m] = sum(a[i, j, :] *
    b[k, :, m])`` (the batch axes are not broadcast, unlike ``matmul``).

    >>> tg.dot(tg.ones(2, 3, 4), tg.ones(5, 4, 6)).shape
    (2, 3, 5, 6)
    """
    return _C._op_apply("dot", [_t(a), _t(b)], "")


def cross(a, b, axis=-1, *, dim=None):
    """Cross product of 3-vectors along ``axis`` (NumPy's cross with
    ``axis=``; PyTorch's ``dim=`` accepted; default the last axis), after
    broadcasting ``a`` and ``b``.  The axis must have size 3.

    >>> tg.cross(tg.tensor([1.0, 0.0, 0.0]), tg.tensor([0.0, 1.0, 0.0])).tolist()
    [0.0, 0.0, 1.0]
    """
    if dim is not None:
        axis = dim
    axis = _int("cross", "axis", axis)
    return _C._op_apply("cross", [_t(a), _t(b)], f"i0={axis}")


def diff(x, n=1, axis=-1, prepend=None, append=None, *, dim=None):
    """The n-th discrete difference along ``axis`` (NumPy's diff; PyTorch's
    ``dim=`` accepted): ``x[1:] - x[:-1]``, n times.  ``prepend``/``append``
    are joined to ``x`` along the axis first; a number or a 0-d tensor is
    repeated across the other axes, and a Python number takes x's dtype.

    >>> tg.diff(tg.tensor([1.0, 4.0, 9.0, 16.0])).tolist()
    [3.0, 5.0, 7.0]
    >>> tg.diff(tg.tensor([1.0, 4.0, 9.0]), n=2, prepend=0.0).tolist()
    [2.0, 2.0]
    """
    x = _t(x)
    if dim is not None:
        axis = dim
    n = _int("diff", "n", n)
    axis = _int("diff", "axis", axis)
    ins = [x]
    flags = []
    for name, v in (("prepend", prepend), ("append", append)):
        if v is None:
            flags.append(0)
            continue
        if isinstance(v, (bool, int, float)):
            v = _C.tensor(np.asarray(v), dtype=x.dtype)
        ins.append(_t(v))
        flags.append(1)
    return _C._op_apply("diff", ins, f"i0={n} i1={axis} i2={flags[0]} i3={flags[1]}")


def _split(who, x, indices_or_sections, axis):
    if isinstance(indices_or_sections, (list, tuple, np.ndarray, Tensor)):
        return tuple(_C.array_split(x, [int(i) for i in indices_or_sections], axis))
    n = _int(who, "sections", indices_or_sections)
    size = x.shape[axis]
    if n <= 0:
        raise ValueError(f"{who}: number sections must be larger than 0, got {n}")
    if size % n:
        raise ValueError(f"{who}: array split does not result in an equal division: axis {axis} of shape "
                         f"{tuple(x.shape)} has size {size}, which {n} does not divide (tg.array_split "
                         f"allows unequal pieces)")
    return tuple(_C.array_split(x, n, axis))


def hsplit(x, indices_or_sections):
    """Split into pieces along the second axis (the first for 1-D tensors):
    NumPy's hsplit.  An int must divide the axis (``ValueError`` otherwise);
    a list gives the indices where the pieces start.  The pieces are views
    whose gradients flow back to x.

    >>> [p.shape for p in tg.hsplit(tg.zeros(2, 6), 3)]
    [(2, 2), (2, 2), (2, 2)]
    """
    x = _t(x)
    if x.ndim == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions (got a 0-d tensor)")
    return _split("hsplit", x, indices_or_sections, 1 if x.ndim > 1 else 0)


def vsplit(x, indices_or_sections):
    """Split into pieces along the first axis (NumPy's vsplit; x must have
    at least 2 dims).

    >>> [p.shape for p in tg.vsplit(tg.zeros(4, 3), [1])]
    [(1, 3), (3, 3)]
    """
    x = _t(x)
    if x.ndim < 2:
        raise ValueError(f"vsplit only works on arrays of 2 or more dimensions (got shape {tuple(x.shape)})")
    return _split("vsplit", x, indices_or_sections, 0)


def dsplit(x, indices_or_sections):
    """Split into pieces along the third axis (NumPy's dsplit; x must have
    at least 3 dims).

    >>> [p.shape for p in tg.dsplit(tg.zeros(1, 2, 4), 2)]
    [(1, 2, 2), (1, 2, 2)]
    """
    x = _t(x)
    if x.ndim < 3:
        raise ValueError(f"dsplit only works on arrays of 3 or more dimensions (got shape {tuple(x.shape)})")
    return _split("dsplit", x, indices_or_sections, 2)
