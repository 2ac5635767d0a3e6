"""NumPy references of the ops of csrc/ops/scan.c (reductions, scans,
sorting; issue 14), written by hand as the independent answers the ops are
checked against; op_reference.py includes SCAN_REFERENCES in REFERENCES.
Same conventions: ``ref(inputs, params)`` with the params dict of
``tg._C._op_example``; i3 = 1 picks the second output of the ops that return
two (the indices, or the mean of var_mean/std_mean).
"""
import numpy as np


def _axes(p):
    return None if p["naxes"] < 0 else tuple(p["axes"])


def _cum(f):
    def ref(xs, p):
        x = xs[0]
        if x.ndim == 0:
            return np.asarray(x).copy()
        return np.asarray(f(x, axis=p["i"][0])).astype(x.dtype)
    return ref


def _logcumsumexp(x, axis):
    return np.logaddexp.accumulate(x, axis=axis)


def _take_vi(values, indices, p):
    return indices if p["i"][3] else values


def _sorted_desc(x, axis):
    """Descending, NaN first (PyTorch), stable: the stable ascending order of
    -x for values without NaN (the examples have none)."""
    return np.argsort(-x, axis=axis, kind="stable")


def _sort(xs, p):
    x, ax = xs[0], p["i"][0]
    idx = _sorted_desc(x, ax) if p["i"][1] else np.argsort(x, axis=ax, kind="stable")
    return _take_vi(np.take_along_axis(x, idx, axis=ax), idx, p)


def _argsort(xs, p):
    x, ax = xs[0], p["i"][0]
    return _sorted_desc(x, ax) if p["i"][1] else np.argsort(x, axis=ax, kind="stable")


def _topk(xs, p):
    x, k, ax = xs[0], p["i"][0], p["i"][1]
    idx = _sorted_desc(x, ax) if p["i"][2] else np.argsort(x, axis=ax, kind="stable")
    idx = np.take(idx, np.arange(k), axis=ax)
    return _take_vi(np.take_along_axis(x, idx, axis=ax), idx, p)


def _median(xs, p):
    """PyTorch's median: the lower middle of the sorted values."""
    x = xs[0]
    if p["naxes"] <= 0:
        s = np.sort(x.reshape(-1))
        return np.asarray(s[(s.size - 1) // 2])
    ax = p["axes"][0]
    s = np.sort(x, axis=ax)
    out = np.take(s, [(x.shape[ax] - 1) // 2], axis=ax)
    return out if p["keepdims"] else out.squeeze(axis=ax)


def _stat(kind):
    def ref(xs, p):
        x = xs[0]
        kw = dict(axis=_axes(p), keepdims=p["keepdims"])
        m = np.asarray(np.mean(x, **kw), dtype=x.dtype)
        v = np.asarray(np.var(x, ddof=p["i"][0], **kw), dtype=x.dtype)
        s = np.sqrt(v)
        if kind == "std":
            return s
        first = v if kind == "var_mean" else s
        return m if p["i"][3] else first
    return ref


def _norm(xs, p):
    x, q = xs[0], p["f"][0]
    a = np.abs(x)
    kw = dict(axis=_axes(p), keepdims=p["keepdims"])
    if q == np.inf:
        r = a.max(**kw)
    elif q == -np.inf:
        r = a.min(**kw)
    elif q == 0:
        r = (x != 0).sum(**kw)
    else:
        r = (a ** q).sum(**kw) ** (1 / q)
    return np.asarray(r).astype(x.dtype)


SCAN_REFERENCES = {
    "cumsum": _cum(np.cumsum),
    "cumprod": _cum(np.cumprod),
    "prod": lambda xs, p: np.asarray(np.prod(xs[0], axis=_axes(p), keepdims=p["keepdims"])),
    "logcumsumexp": _cum(_logcumsumexp),
    "cummax": _cum(np.maximum.accumulate),
    "cummin": _cum(np.minimum.accumulate),
    "sort": _sort,
    "argsort": _argsort,
    "topk": _topk,
    "median": _median,
    "std": _stat("std"),
    "var_mean": _stat("var_mean"),
    "std_mean": _stat("std_mean"),
    "norm": _norm,
}
