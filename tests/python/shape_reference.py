"""NumPy references of the shape ops of issue 14 (csrc/ops/shape.c) that take
more than a line; op_reference.py's REFERENCES calls them (its shape section).
Written by hand, independently of the C code.
"""
import numpy as np


def torch_repeat(xs, p):
    reps = tuple(p["ints"][:p["i"][0]])
    x = xs[0].reshape((1,) * (len(reps) - xs[0].ndim) + xs[0].shape)
    return np.tile(x, reps)


def unflatten(xs, p):
    x, ax = xs[0], p["i"][0] % xs[0].ndim
    return x.reshape(x.shape[:ax] + tuple(p["shape"]) + x.shape[ax + 1:])


def scatter(xs, p):
    x, idx, src = xs
    y = x.copy()
    ax = p["i"][0] % x.ndim
    for pos in np.ndindex(*idx.shape):
        t = list(pos)
        t[ax] = idx[pos]
        y[tuple(t)] = src[pos]
    return y


def scatter_reduce(xs, p):
    x, idx, src = xs
    ax, how, include_self = p["i"][0] % x.ndim, ["sum", "prod", "mean", "amax", "amin"][p["i"][1]], p["i"][2]
    got = {}
    for pos in np.ndindex(*idx.shape):
        t = list(pos)
        t[ax] = idx[pos]
        got.setdefault(tuple(t), []).append(src[pos])
    y = x.copy()
    for t, vals in got.items():
        vals = ([x[t]] if include_self else []) + vals
        f = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max, "amin": np.min}[how]
        y[t] = f(np.array(vals, dtype=x.dtype))
    return y


def unfold(xs, p):
    x, ax, size, step = xs[0], p["i"][0] % xs[0].ndim, p["i"][1], p["i"][2]
    n = (x.shape[ax] - size) // step + 1
    wins = [np.take(x, np.arange(w * step, w * step + size, dtype=np.int64), axis=ax) for w in range(n)]
    return np.moveaxis(np.stack(wins, axis=ax), ax + 1, -1)


def pad_mode(xs, p):
    x = xs[0]
    widths = [(p["ints"][2 * d], p["ints"][2 * d + 1]) for d in range(x.ndim)]
    crop = tuple(slice(max(0, -b), x.shape[d] - max(0, -a)) for d, (b, a) in enumerate(widths))
    mode = ["constant", "reflect", "edge", "wrap", "symmetric"][p["i"][0]]
    pos = [(max(0, b), max(0, a)) for b, a in widths]
    kw = {"constant_values": p["f"][0]} if mode == "constant" else {}
    return np.pad(x[crop], pos, mode=mode, **kw).astype(x.dtype)
