"""NumPy reference implementations of every op in ``tg.ops()``.

``REFERENCES[name](inputs, params)`` takes the op's inputs as NumPy arrays
and the params dict returned by ``tg._C._op_example`` (keys ``axes`` (None =
all), ``naxes``, ``keepdims``, ``shape``, ``ints``, ``f``, ``i``) and returns
the expected output as a NumPy array.  The semantics follow each op's
registry text (``doc``, ``forward``) and the C code in ``csrc/ops``.

References compute in the dtype of their inputs (so that the dtype NumPy
gives is the dtype tapegrad must give); the tests call them a second time
with float64 copies of the float inputs for accurate values.

An op that is not applied through the registry (``custom``, the entry kind of
``tg.Function``) maps to ``NOT_APPLICABLE``; the test that every op has a
reference accepts only that explicit marker, so a new op without a reference
makes the suite fail.
"""
from __future__ import annotations

import math

import numpy as np

NOT_APPLICABLE = object()

_DTYPES = {0: np.float32, 1: np.float64, 2: np.int64}
_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _axes(p):
    return None if p["naxes"] < 0 else tuple(p["axes"])


def _erf(x):
    x = np.asarray(x)
    out = np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))
    return out.astype(x.dtype) if x.dtype.kind == "f" else out


def _float_of(x):
    """NumPy's rule for float functions of ints: compute in float64."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _cmp(f):
    def ref(xs, p):
        a, b = xs
        dt = np.result_type(a, b)
        return f(a, b).astype(dt)
    return ref


def _reduce_loss(l, p):
    red = _REDUCTIONS[p["i"][0]]
    if red == "none":
        return l
    return l.sum() if red == "sum" else l.mean()


def _logsumexp(x, axis=None, keepdims=False):
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros_like(
        np.sum(x, axis=axis, keepdims=True))
    m = np.where(np.isfinite(m), m, 0)
    s = np.sum(np.exp(x - m), axis=axis, keepdims=True)
    out = (np.log(s) + m).astype(x.dtype)
    if not keepdims:
        out = out.squeeze(axis=axis) if axis is not None else out.reshape(())
    return out


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax(x, axis):
    return (x - _logsumexp(x, axis=axis, keepdims=True)).astype(x.dtype)


def _cross_entropy(xs, p):
    z, y = xs
    if z.ndim == 1:
        l = _logsumexp(z) - z[y]
        return np.asarray(l, dtype=z.dtype)  # one sample: every reduction gives it
    l = _logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y]
    return np.asarray(_reduce_loss(l, p), dtype=z.dtype)


def _nll_loss(xs, p):
    lp, y = xs
    if lp.ndim == 1:
        return np.asarray(-lp[y], dtype=lp.dtype)
    l = -lp[np.arange(lp.shape[0]), y]
    return np.asarray(_reduce_loss(l, p), dtype=lp.dtype)


def _bce(xs, p):
    x, t = xs
    l = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return np.asarray(_reduce_loss(l, p), dtype=x.dtype)


def _mse(xs, p):
    a, t = xs
    return np.asarray(_reduce_loss((a - t) ** 2, p), dtype=a.dtype)


def _slices(ndim, p):
    """The API layout of slice params: ints[0:8] starts, ints[8:16] stops,
    ints[16:24] steps; i0 = mask of dims indexed by an integer (starts[d])."""
    ints, mask = p["ints"], p["i"][0]
    key = []
    for d in range(ndim):
        if mask & (1 << d):
            key.append(int(ints[d]))
        else:
            key.append(slice(int(ints[d]), int(ints[8 + d]), int(ints[16 + d])))
    return tuple(key)


def _slice(xs, p):
    (x,) = xs
    return x[_slices(x.ndim, p)].copy()


def _slice_backward(xs, p):
    (g,) = xs
    shape = tuple(p["shape"])
    out = np.zeros(shape, dtype=g.dtype)
    out[_slices(len(shape), p)] = g
    return out


def _index_add(xs, p):
    x, idx = xs
    shape = tuple(p["shape"])
    ax = p["i"][0] % len(shape)
    out = np.zeros(shape, dtype=x.dtype)
    k = idx.ndim
    xm = np.moveaxis(x, list(range(ax, ax + k)), list(range(k)))
    np.add.at(np.moveaxis(out, ax, 0), idx, xm)
    return out


def _gather(xs, p):
    x, idx = xs
    ax = p["i"][0] % x.ndim
    # torch.gather: index may be smaller than x in the other dims (a prefix)
    sub = x[tuple(slice(None) if d == ax else slice(0, idx.shape[d]) for d in range(x.ndim))]
    return np.take_along_axis(sub, idx, axis=ax)


def _scatter_add(xs, p):
    x, idx = xs
    shape = tuple(p["shape"])
    ax = p["i"][0] % len(shape)
    out = np.zeros(shape, dtype=x.dtype)
    grids = list(np.indices(idx.shape))
    grids[ax] = np.where(idx < 0, idx + shape[ax], idx)
    np.add.at(out, tuple(grids), x)
    return out


def _pad(xs, p):
    (x,) = xs
    pads = [(int(p["ints"][2 * d]), int(p["ints"][2 * d + 1])) for d in range(x.ndim)]
    return np.pad(x, pads, constant_values=p["f"][0]).astype(x.dtype)


def _one_hot(xs, p):
    (y,) = xs
    c = p["i"][0]
    if c < 0:
        c = int(y.max()) + 1 if y.size else 0
    return (y[..., None] == np.arange(c)).astype(_DTYPES[p["i"][1]])


def _dropout(xs, p):
    """Inverted dropout with the mask of the seedable generator: the test
    seeds with ``p['_seed']`` right before the op; ``tg_tensor_bernoulli``
    draws one uniform double per element, in C order, keep = u < 1 - p."""
    (x,) = xs
    prob, training = p["f"][0], p["i"][0] != 0
    if not training or prob == 0:
        return x.copy()
    import tapegrad as tg
    tg.manual_seed(p["_seed"])
    u = tg.rand(*x.shape, dtype=tg.float64).numpy() if x.ndim else tg.rand((), dtype=tg.float64).numpy()
    keep = (u < 1.0 - prob).astype(x.dtype)
    scale = 1.0 / (1.0 - prob) if prob < 1 else 0.0
    return (x * (keep * x.dtype.type(scale))).astype(x.dtype)


# ---- convolution and pooling (NCHW) ---------------------------------------

def _out_size(n, k, s, pad):
    return (n + 2 * pad - k) // s + 1


def _conv2d(x, w, b, sh, sw, ph, pw):
    N, C, H, W = x.shape
    O, C2, kh, kw = w.shape
    assert C == C2
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    out = np.zeros((N, O, OH, OW), dtype=np.result_type(x, w))
    for p_ in range(kh):
        for q in range(kw):
            patch = xp[:, :, p_:p_ + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw]  # N C OH OW
            out += np.einsum("ncij,oc->noij", patch, w[:, :, p_, q])
    if b is not None:
        out += b[None, :, None, None]
    return out


def _conv2d_input_grad(dy, w, xshape, sh, sw, ph, pw):
    N, C, H, W = xshape
    O, _, kh, kw = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=np.result_type(dy, w))
    for p_ in range(kh):
        for q in range(kw):
            dxp[:, :, p_:p_ + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw] += np.einsum(
                "noij,oc->ncij", dy, w[:, :, p_, q])
    return dxp[:, :, ph:ph + H, pw:pw + W]


def _conv2d_weight_grad(x, dy, wshape, sh, sw, ph, pw):
    O, C, kh, kw = wshape
    OH, OW = dy.shape[2], dy.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dw = np.zeros(wshape, dtype=np.result_type(x, dy))
    for p_ in range(kh):
        for q in range(kw):
            patch = xp[:, :, p_:p_ + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw]
            dw[:, :, p_, q] = np.einsum("ncij,noij->oc", patch, dy)
    return dw


def _conv_ref(xs, p):
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    i = p["i"]
    return _conv2d(x, w, b, i[0], i[1], i[2], i[3]).astype(np.result_type(*xs))


def _conv_input_grad_ref(xs, p):
    dy, w = xs
    i = p["i"]
    return _conv2d_input_grad(dy, w, tuple(p["shape"]), i[0], i[1], i[2], i[3]).astype(np.result_type(dy, w))


def _conv_weight_grad_ref(xs, p):
    x, dy = xs
    i = p["i"]
    return _conv2d_weight_grad(x, dy, tuple(p["shape"]), i[0], i[1], i[2], i[3]).astype(np.result_type(x, dy))


def _pool_windows(x, kh, kw, sh, sw, ph, pw, fill):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    win = np.empty((N, C, OH, OW, kh, kw), dtype=x.dtype)
    for p_ in range(kh):
        for q in range(kw):
            win[..., p_, q] = xp[:, :, p_:p_ + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw]
    return win


def _max_pool(xs, p):
    (x,) = xs
    kh, kw, sh, sw, ph, pw = (int(v) for v in p["ints"][:6])
    return _pool_windows(x, kh, kw, sh, sw, ph, pw, -np.inf).max(axis=(4, 5))


def _avg_pool(xs, p):
    (x,) = xs
    kh, kw, sh, sw, ph, pw = (int(v) for v in p["ints"][:6])
    return (_pool_windows(x, kh, kw, sh, sw, ph, pw, 0).sum(axis=(4, 5)) / (kh * kw)).astype(x.dtype)


def _max_pool_backward(xs, p):
    dy, idx = xs
    N, C, H, W = p["shape"]
    out = np.zeros((N, C, H * W), dtype=dy.dtype)
    n, c = np.indices(dy.shape)[:2]
    np.add.at(out, (n.ravel(), c.ravel(), idx.ravel()), dy.ravel())
    return out.reshape(N, C, H, W)


def _avg_pool_backward(xs, p):
    (dy,) = xs
    kh, kw, sh, sw, ph, pw = (int(v) for v in p["ints"][:6])
    N, C, H, W = p["shape"]
    OH, OW = dy.shape[2], dy.shape[3]
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dy.dtype)
    for p_ in range(kh):
        for q in range(kw):
            dxp[:, :, p_:p_ + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw] += dy / (kh * kw)
    return dxp[:, :, ph:ph + H, pw:pw + W]


def _argext(f):
    def ref(xs, p):
        (x,) = xs
        axis = p["axes"][0] if p["naxes"] > 0 else None
        return f(x, axis=axis, keepdims=p["keepdims"]).astype(np.int64)
    return ref


def _var(xs, p):
    (x,) = xs
    return np.asarray(np.var(x, axis=_axes(p), keepdims=p["keepdims"], ddof=p["i"][0]), dtype=x.dtype)


def _cast(xs, p):
    (x,) = xs
    return x.astype(_DTYPES[p["i"][0]])


def _clip(xs, p):
    (x,) = xs
    lo, hi = p["f"][0], p["f"][1]
    lo = -np.inf if math.isnan(lo) else lo
    hi = np.inf if math.isnan(hi) else hi
    return np.clip(x, x.dtype.type(lo), x.dtype.type(hi)).astype(x.dtype)


def _leaky_relu(xs, p):
    (x,) = xs
    return np.where(x > 0, x, x * x.dtype.type(p["f"][0])).astype(x.dtype)


def _gelu(xs, p):
    (x,) = xs
    return (0.5 * x * (1 + _erf(x / np.sqrt(2).astype(x.dtype)))).astype(x.dtype)


def _sigmoid(xs, p):
    (x,) = xs
    return (0.5 * (1 + np.tanh(0.5 * x))).astype(x.dtype)


def _red(f):
    def ref(xs, p):
        (x,) = xs
        return np.asarray(f(x, axis=_axes(p), keepdims=p["keepdims"]), dtype=x.dtype)
    return ref


def _unary(f):
    def ref(xs, p):
        (x,) = xs
        return np.asarray(f(_float_of(x)))
    return ref


REFERENCES = {
    # binary with broadcasting
    "add": lambda xs, p: np.add(*xs),
    "sub": lambda xs, p: np.subtract(*xs),
    "mul": lambda xs, p: np.multiply(*xs),
    "div": lambda xs, p: np.true_divide(*xs),
    "pow": lambda xs, p: np.power(_float_of(xs[0]), xs[1]) if xs[0].dtype.kind == "i" and xs[1].dtype.kind == "i" else np.power(*xs),
    "maximum": lambda xs, p: np.maximum(*xs),
    "minimum": lambda xs, p: np.minimum(*xs),
    "eq": _cmp(np.equal),
    "ne": _cmp(np.not_equal),
    "lt": _cmp(np.less),
    "le": _cmp(np.less_equal),
    "gt": _cmp(np.greater),
    "ge": _cmp(np.greater_equal),
    "where": lambda xs, p: np.where(xs[0] != 0, xs[1], xs[2]).astype(np.result_type(xs[1], xs[2])),
    # unary
    "neg": lambda xs, p: np.negative(xs[0]),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "abs": lambda xs, p: np.abs(xs[0]),
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "tanh": _unary(np.tanh),
    "sigmoid": _sigmoid,
    "silu": lambda xs, p: xs[0] * _sigmoid(xs, p),
    "relu": lambda xs, p: np.maximum(xs[0], xs[0].dtype.type(0)),
    "leaky_relu": _leaky_relu,
    "gelu": _gelu,
    "erf": lambda xs, p: _erf(xs[0]),
    "softplus": lambda xs, p: np.logaddexp(xs[0].dtype.type(0), xs[0]).astype(xs[0].dtype),
    "clip": _clip,
    "cast": _cast,
    # reductions
    "sum": _red(np.sum),
    "mean": _red(np.mean),
    "max": _red(np.max),
    "min": _red(np.min),
    "var": _var,
    "logsumexp": lambda xs, p: _logsumexp(xs[0], axis=_axes(p), keepdims=p["keepdims"]),
    "argmax": _argext(np.argmax),
    "argmin": _argext(np.argmin),
    # linear algebra
    "matmul": lambda xs, p: np.asarray(np.matmul(*xs)),
    "linear": lambda xs, p: np.asarray(np.matmul(xs[0], xs[1].T) + (xs[2] if len(xs) > 2 else 0)),
    # movement
    "reshape": lambda xs, p: xs[0].reshape(tuple(p["shape"])),
    "permute": lambda xs, p: np.transpose(xs[0], tuple(p["axes"])),
    "broadcast_to": lambda xs, p: np.broadcast_to(xs[0], tuple(p["shape"])),
    "contiguous": lambda xs, p: np.ascontiguousarray(xs[0]),
    "slice": _slice,
    "slice_backward": _slice_backward,
    "index_select": lambda xs, p: np.take(xs[0], xs[1], axis=p["i"][0]),
    "index_add": _index_add,
    "gather": _gather,
    "scatter_add": _scatter_add,
    "concat": lambda xs, p: np.concatenate(xs, axis=p["i"][0]),
    "pad": _pad,
    # networks
    "softmax": lambda xs, p: _softmax(xs[0], p["i"][0]),
    "log_softmax": lambda xs, p: _log_softmax(xs[0], p["i"][0]),
    "cross_entropy": _cross_entropy,
    "nll_loss": _nll_loss,
    "mse_loss": _mse,
    "bce_with_logits": _bce,
    "one_hot": _one_hot,
    "dropout": _dropout,
    # convolution and pooling
    "conv2d": _conv_ref,
    "conv2d_input_grad": _conv_input_grad_ref,
    "conv2d_weight_grad": _conv_weight_grad_ref,
    "max_pool2d": _max_pool,
    "max_pool2d_backward": _max_pool_backward,
    "avg_pool2d": _avg_pool,
    "avg_pool2d_backward": _avg_pool_backward,
    # logic.c: bool/bitwise/logical ops and predicates (issue 14, dtypes)

    # math.c: elementwise math (issue 14)

    # activation.c: activations (issue 14)

    # scan.c: reductions, scans, sorting (issue 14)

    # shape.c: shape and indexing (issue 14)

    # conv.c: more convolutions, pooling, interpolation (issue 14)

    # nn.c: normalization, attention, embedding, losses (issue 14)

    # inplace.c: in-place ops on the tape (issue 14)
    "copy_slices": lambda xs, p: __import__("inplace_reference").copy_slices(xs, p),
    "as_strided": lambda xs, p: __import__("inplace_reference").as_strided(xs, p),

    # linalg.c: tg.linalg and more products (issue 19)

    # ops defined outside the registry's generic path
    "custom": NOT_APPLICABLE,
}


def examples(op: dict):
    """The registry examples of an op as (k, text, params_text)."""
    text = op.get("examples") or ""
    out = []
    for k, ex in enumerate(t for t in text.split(";") if t):
        out.append((k, ex, ex.split("|", 1)[1] if "|" in ex else ""))
    return out
