"""NumPy oracles of the two ops behind in-place writes through views
(csrc/ops/inplace.c), written from their definition: positions in the
memory the base and the view share.

Params (tg_params): ``shape`` the view's shape, ``ints[0:8]`` its strides,
``ints[8:16]`` the base's strides (in elements), ``i[0]`` the view's offset
minus the base's, ``i[1]`` the base's ndim.
"""
import numpy as np


def _positions(shape, strides, offset):
    """The memory position of every element of a strided view, as an array
    of the view's shape."""
    pos = np.full(tuple(shape), offset, dtype=np.int64)
    for d, n in enumerate(shape):
        idx = np.arange(n, dtype=np.int64).reshape([n if k == d else 1 for k in range(len(shape))])
        pos = pos + idx * strides[d]
    return pos


def _where_in_base(base_shape, p):
    view_shape = tuple(p["shape"])
    nd = len(view_shape)
    bpos = _positions(base_shape, p["ints"][8:8 + len(base_shape)], 0).reshape(-1)
    vpos = _positions(view_shape, p["ints"][:nd], p["i"][0]).reshape(-1)
    where = {int(q): k for k, q in enumerate(bpos)}
    return np.array([where[int(q)] for q in vpos], dtype=np.int64), view_shape


def copy_slices(xs, p):
    """The base with the view's region replaced by v."""
    x, v = xs
    flat, _ = _where_in_base(x.shape, p)
    out = np.array(x, copy=True).reshape(-1)
    out[flat] = np.asarray(v).reshape(-1)
    return out.reshape(x.shape)


def as_strided(xs, p):
    """The view's elements read from the base."""
    (x,) = xs
    flat, shape = _where_in_base(x.shape, p)
    return np.asarray(x).reshape(-1)[flat].reshape(shape)
