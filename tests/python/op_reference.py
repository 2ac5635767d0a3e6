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

_DTYPES = {0: np.float32, 1: np.float64, 2: np.int64, 3: np.bool_, 4: np.int32, 5: np.uint8}
_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _axes(p):
    return None if p["naxes"] < 0 else tuple(p["axes"])


def _erf(x):
    x = _float_of(x)
    out = np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))
    return out.astype(x.dtype)


def _float_of(x):
    """NumPy's rule for float functions of ints and bools: compute in the
    smallest float that holds them (float64 for int32/int64; NumPy's float16
    for uint8/bool is float32 in tapegrad, which has no float16)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    return x.astype(np.float32 if x.dtype.itemsize == 1 else np.float64)


def _pow(xs, p):
    a, b = xs
    if a.dtype.kind in "iub" and b.dtype.kind in "iub" and (np.asarray(b) < 0).any():
        raise ValueError("Integers to negative integer powers are not allowed.")  # NumPy's words
    return np.power(a, b)


def _cmp(f):
    def ref(xs, p):
        a, b = xs
        return np.asarray(f(a, b))  # bool, as NumPy (and PyTorch)
    return ref


def _int_div0(f, a, b):
    """f(a, b) with NumPy's integer division by zero (0, and a warning that
    the reference silences)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return f(a, b)


def _glu_np(x, axis):
    a, b = np.split(x, 2, axis=axis)
    return a / (1 + np.exp(-b))


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


def _tri_matmul(a, b, mode):
    """tril(a @ b), triu(a @ b), tril(a) @ b, triu(a) @ b (modes 0-3)."""
    if mode == 2:
        a = np.tril(a)
    elif mode == 3:
        a = np.triu(a)
    c = np.matmul(a, b)
    return np.tril(c) if mode == 0 else np.triu(c) if mode == 1 else c


def _masked_softmax(xs, causal, scale=1.0):
    """softmax of the last axis of scale * x over the kept entries (nonzero
    mask, and key j <= query i when causal), 0 elsewhere and in a row with
    nothing kept (or only -inf kept)."""
    x = _float_of(xs[0])
    with np.errstate(invalid="ignore", over="ignore"):
        x = (x * np.asarray(scale, x.dtype)).astype(x.dtype)
    keep = np.ones(x.shape, bool)
    if causal:
        L, S = x.shape[-2:]
        keep &= np.tril(np.ones((L, S), bool))
    if len(xs) > 1:
        keep &= np.broadcast_to(xs[1] != 0, x.shape)
    t = np.where(keep, x, -np.inf)
    empty = np.all(t == -np.inf, axis=-1, keepdims=True)  # nothing kept: 0, as torch's attention
    with np.errstate(invalid="ignore"):
        return np.where(keep & ~empty, _softmax(t, -1), 0).astype(x.dtype)


def _log_softmax(x, axis):
    return (x - _logsumexp(x, axis=axis, keepdims=True)).astype(x.dtype)


def _class_loss(z, y, w, p, smoothing, log_probs):
    """cross_entropy / nll_loss with PyTorch's options, written out: classes on
    axis 1 (axis 0 for one sample), weighted mean over the counted targets."""
    ignore = p["i"][1] if p["i"][2] else -100
    cax = 0 if z.ndim == 1 else 1
    C = z.shape[cax]
    lp = z if log_probs else z - _logsumexp(z, axis=cax, keepdims=True)
    lp = np.moveaxis(lp, cax, -1).reshape(-1, C)
    w = np.ones(C, z.dtype) if w is None else w
    if y.dtype.kind == "f":  # class probabilities
        t = np.moveaxis(y, cax, -1).reshape(-1, C) * (1 - smoothing) + smoothing / C
        l = -(lp * t * w).sum(axis=1)
        red = _REDUCTIONS[p["i"][0]]
        if red == "none":
            return l.reshape(np.moveaxis(y, cax, -1).shape[:-1]).astype(z.dtype)
        return np.asarray(l.sum() if red == "sum" else l.mean(), dtype=z.dtype)
    yf = y.reshape(-1)
    keep = yf != ignore
    ys = np.where(keep, yf, 0)
    wy = np.where(keep, w[ys], 0)
    picked = lp[np.arange(len(ys)), ys]
    l = np.where(keep, -wy * picked, 0) * (1 - smoothing)
    if smoothing:
        l = l + np.where(keep, -(lp * w).sum(axis=1), 0) * smoothing / C
    red = _REDUCTIONS[p["i"][0]]
    if red == "none":
        return l.reshape(y.shape).astype(z.dtype)
    if red == "sum":
        return np.asarray(l.sum(), dtype=z.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(l.sum() / wy.sum(), dtype=z.dtype)


def _cross_entropy(xs, p):
    return _class_loss(xs[0], xs[1], xs[2] if len(xs) > 2 else None, p, p["f"][0], False)


def _nll_loss(xs, p):
    return _class_loss(xs[0], xs[1], xs[2] if len(xs) > 2 else None, p, 0.0, True)


def _bce(xs, p):
    x, t = xs[0], xs[1]
    opt, k = [None, None], 2
    for i in range(2):
        if (p["i"][1] >> i) & 1:
            opt[i] = xs[k]
            k += 1
    w = 1 if opt[0] is None else opt[0]
    pw = 1 if opt[1] is None else opt[1]
    sp = lambda v: np.logaddexp(0, v)  # noqa: E731  softplus
    l = w * (pw * t * sp(-x) + (1 - t) * sp(x))
    return np.asarray(_reduce_loss(l, p), dtype=x.dtype)


def _mse(xs, p):
    a, t = xs
    return np.asarray(_reduce_loss((a - t) ** 2, p), dtype=a.dtype)


# ---- nn.c: normalization, attention, embedding, losses (issue 14) ----

def _binary_cross_entropy(xs, p):
    q, t = xs[0], xs[1]
    w = xs[2] if len(xs) > 2 else 1
    with np.errstate(divide="ignore"):
        l = -w * (t * np.maximum(np.log(q), -100) + (1 - t) * np.maximum(np.log(1 - q), -100))
    return np.asarray(_reduce_loss(l, p), dtype=q.dtype)


def _huber(xs, p):
    d = xs[0] - xs[1]
    delta = p["f"][0]
    l = np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))
    return np.asarray(_reduce_loss(l, p), dtype=d.dtype)


def _smooth_l1(xs, p):
    d = xs[0] - xs[1]
    beta = p["f"][0]
    if beta == 0:
        l = np.abs(d)
    else:
        l = np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)
    return np.asarray(_reduce_loss(l, p), dtype=d.dtype)


def _kl_div(xs, p):
    x, t = xs
    if p["i"][1]:
        l = np.exp(t) * (t - x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            l = np.where(t == 0, 0, t * np.log(np.where(t == 0, 1, t))) - t * x
    if p["i"][0] == 3:
        return np.asarray(l.sum() / (x.shape[0] if x.ndim else 1), dtype=x.dtype)
    return np.asarray(_reduce_loss(l, p), dtype=x.dtype)


def _embedding(xs, p):
    idx, w = xs
    return w[idx]


def _layer_norm(xs, p):
    x = xs[0]
    nd = p["i"][0]
    axes = tuple(range(x.ndim - nd, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + p["f"][0])
    k = 1
    if p["i"][1] & 1:
        y = y * xs[k]
        k += 1
    if p["i"][1] & 2:
        y = y + xs[k]
    return y.astype(x.dtype)


def _group_norm(xs, p):
    x = xs[0]
    n, c, g = x.shape[0], x.shape[1], p["i"][0]
    xr = x.reshape(n, g, -1)
    mu = xr.mean(axis=2, keepdims=True)
    var = ((xr - mu) ** 2).mean(axis=2, keepdims=True)
    y = ((xr - mu) / np.sqrt(var + p["f"][0])).reshape(x.shape)
    cs = (c,) + (1,) * (x.ndim - 2)
    k = 1
    if p["i"][1] & 1:
        y = y * xs[k].reshape(cs)
        k += 1
    if p["i"][1] & 2:
        y = y + xs[k].reshape(cs)
    return y.astype(x.dtype)


def _normalize(xs, p):
    x = xs[0]
    pp, ax, eps = p["f"][0], p["i"][0], p["f"][1]
    n = (np.abs(x) ** pp).sum(axis=ax, keepdims=True) ** (1 / pp)
    return (x / np.maximum(n, eps)).astype(x.dtype)


def _cosine_similarity(xs, p):
    a, b = np.broadcast_arrays(*xs)
    ax, eps = p["i"][0], p["f"][0]
    na = np.maximum(np.sqrt((a * a).sum(axis=ax, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(axis=ax, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(axis=ax).astype(a.dtype)


def _sdpa(xs, p):
    q, k, v = xs[:3]
    scale = p["f"][1] or 1 / math.sqrt(q.shape[-1])
    s = q @ np.swapaxes(k, -1, -2) * scale
    L, S = s.shape[-2:]
    if p["i"][0]:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    if len(xs) > 3:
        m = xs[3]
        s = s + m if m.dtype.kind == "f" else np.where(m != 0, s, -np.inf)
    return (_softmax(s, -1) @ v).astype(q.dtype)


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
# conv params (ints): stride h, w, padding top, left, dilation h, w, groups,
# padding bottom, right.  pool params (ints): kernel h, w, stride h, w,
# padding h, w, dilation h, w, ceil_mode, count_include_pad, divisor_override.

def _cv(p):
    sh, sw, pt, pl, dh, dw, g, pb, pr = (int(v) for v in p["ints"][:9])
    return sh, sw, (pt, pb), (pl, pr), dh, dw, g


def _conv_taps(H, W, kh, kw, sh, sw, ph, pw, dh, dw):
    """(OH, OW) and, per tap (p, q), the slices of the padded input it reads."""
    OH = (H + ph[0] + ph[1] - dh * (kh - 1) - 1) // sh + 1
    OW = (W + pw[0] + pw[1] - dw * (kw - 1) - 1) // sw + 1
    sl = {(a, b): (slice(a * dh, a * dh + sh * (OH - 1) + 1, sh), slice(b * dw, b * dw + sw * (OW - 1) + 1, sw))
          for a in range(kh) for b in range(kw)}
    return OH, OW, sl


def _conv2d(x, w, b, sh, sw, ph, pw, dh=1, dw=1, groups=1):
    ph = ph if isinstance(ph, tuple) else (ph, ph)
    pw = pw if isinstance(pw, tuple) else (pw, pw)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    assert C == Cg * groups
    Og = O // groups
    xp = np.pad(x, ((0, 0), (0, 0), ph, pw))
    OH, OW, sl = _conv_taps(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    out = np.zeros((N, O, OH, OW), dtype=np.result_type(x, w))
    for k in range(groups):
        for (p_, q), (si, sj) in sl.items():
            patch = xp[:, k * Cg:(k + 1) * Cg, si, sj]
            out[:, k * Og:(k + 1) * Og] += np.einsum("ncij,oc->noij", patch, w[k * Og:(k + 1) * Og, :, p_, q])
    if b is not None:
        out += b[None, :, None, None]
    return out


def _conv2d_input_grad(dy, w, xshape, sh, sw, ph, pw, dh=1, dw=1, groups=1):
    ph = ph if isinstance(ph, tuple) else (ph, ph)
    pw = pw if isinstance(pw, tuple) else (pw, pw)
    N, C, H, W = xshape
    O, Cg, kh, kw = w.shape
    Og = O // groups
    _, _, sl = _conv_taps(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    dxp = np.zeros((N, C, H + ph[0] + ph[1], W + pw[0] + pw[1]), dtype=np.result_type(dy, w))
    for k in range(groups):
        for (p_, q), (si, sj) in sl.items():
            dxp[:, k * Cg:(k + 1) * Cg, si, sj] += np.einsum(
                "noij,oc->ncij", dy[:, k * Og:(k + 1) * Og], w[k * Og:(k + 1) * Og, :, p_, q])
    return dxp[:, :, ph[0]:ph[0] + H, pw[0]:pw[0] + W]


def _conv2d_weight_grad(x, dy, wshape, sh, sw, ph, pw, dh=1, dw=1, groups=1):
    ph = ph if isinstance(ph, tuple) else (ph, ph)
    pw = pw if isinstance(pw, tuple) else (pw, pw)
    O, Cg, kh, kw = wshape
    Og = O // groups
    xp = np.pad(x, ((0, 0), (0, 0), ph, pw))
    _, _, sl = _conv_taps(x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw)
    dw_ = np.zeros(wshape, dtype=np.result_type(x, dy))
    for k in range(groups):
        for (p_, q), (si, sj) in sl.items():
            patch = xp[:, k * Cg:(k + 1) * Cg, si, sj]
            dw_[k * Og:(k + 1) * Og, :, p_, q] = np.einsum("ncij,noij->oc", patch, dy[:, k * Og:(k + 1) * Og])
    return dw_


def _conv_ref(xs, p):
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    return _conv2d(x, w, b, *_cv(p)).astype(np.result_type(*xs))


def _conv_input_grad_ref(xs, p):
    dy, w = xs
    return _conv2d_input_grad(dy, w, tuple(p["shape"]), *_cv(p)).astype(np.result_type(dy, w))


def _conv_weight_grad_ref(xs, p):
    x, dy = xs
    return _conv2d_weight_grad(x, dy, tuple(p["shape"]), *_cv(p)).astype(np.result_type(x, dy))


def _pool_size(n, k, s, pad, d, ceil_mode):
    num = n + 2 * pad - d * (k - 1) - 1
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= n + pad:
        o -= 1
    return o


def _pool_loop(x, p, kind):
    """Max or average pooling by plain loops over the windows (the independent answer)."""
    kh, kw, sh, sw, ph, pw, dh, dw, cm, cip, div = (int(v) for v in p["ints"][:11])
    N, C, H, W = x.shape
    OH, OW = _pool_size(H, kh, sh, ph, dh, cm), _pool_size(W, kw, sw, pw, dw, cm)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            hs, ws = i * sh - ph, j * sw - pw
            rows = [hs + a * dh for a in range(kh) if 0 <= hs + a * dh < H]
            cols = [ws + b * dw for b in range(kw) if 0 <= ws + b * dw < W]
            win = x[:, :, rows][:, :, :, cols]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if div:
                    d = div
                elif cip:
                    d = (min(hs + kh, H + ph) - hs) * (min(ws + kw, W + pw) - ws)
                else:
                    d = len(rows) * len(cols)
                out[:, :, i, j] = win.sum(axis=(2, 3)) / d
    return out


def _max_pool(xs, p):
    return _pool_loop(xs[0], p, "max")


def _avg_pool(xs, p):
    return _pool_loop(xs[0], p, "avg").astype(xs[0].dtype)


def _max_pool_backward(xs, p):
    dy, idx = xs
    N, C, H, W = p["shape"]
    out = np.zeros((N, C, H * W), dtype=dy.dtype)
    n, c = np.indices(dy.shape)[:2]
    np.add.at(out, (n.ravel(), c.ravel(), idx.ravel()), dy.ravel())
    return out.reshape(N, C, H, W)


def _max_unpool(xs, p):
    x, idx = xs
    kh, kw, sh, sw, ph, pw = (int(v) for v in p["ints"][:6])
    if p["shape"] and len(p["shape"]) == 2:
        H, W = p["shape"][:2]
    else:
        H, W = (x.shape[2] - 1) * sh - 2 * ph + kh, (x.shape[3] - 1) * sw - 2 * pw + kw
    return _max_pool_backward([x, idx], {"shape": [x.shape[0], x.shape[1], H, W]})


def _avg_pool_backward(xs, p):
    """The adjoint of _avg_pool, column by column: dx[k] = <dy, avg_pool(e_k)>."""
    (dy,) = xs
    N, C, H, W = p["shape"]
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    for h in range(H):
        for w in range(W):
            e = np.zeros((1, 1, H, W), dtype=np.float64)
            e[0, 0, h, w] = 1
            col = _pool_loop(e, p, "avg")[0, 0]
            dx[:, :, h, w] = np.einsum("ncij,ij->nc", dy, col)
    return dx

def _conv1d_ref(xs, p):
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    s, pl, d, g, pr = (int(v) for v in p["ints"][:5])
    y = _conv2d(x[:, :, None, :], w[:, :, None, :], b, 1, s, (0, 0), (pl, pr), 1, d, g)
    return y[:, :, 0, :].astype(np.result_type(*xs))


def _conv_transpose_ref(xs, p):
    """Each input pixel adds its weighted kernel to the output (the textbook definition)."""
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    sh, sw, ph, pw, oph, opw, g, dh, dw = (int(v) for v in p["ints"][:9])
    N, Cin, H, W = x.shape
    _, Og, kh, kw = w.shape
    Cg = Cin // g
    OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full = np.zeros((N, Og * g, (H - 1) * sh + dh * (kh - 1) + 1 + oph + ph, (W - 1) * sw + dw * (kw - 1) + 1 + opw + pw),
                    dtype=np.result_type(x, w))
    for c in range(Cin):
        k = c // Cg
        for a in range(kh):
            for q in range(kw):
                full[:, k * Og:(k + 1) * Og, a * dh:a * dh + (H - 1) * sh + 1:sh, q * dw:q * dw + (W - 1) * sw + 1:sw] += \
                    np.einsum("nij,o->noij", x[:, c], w[c, :, a, q])
    y = full[:, :, ph:ph + OH, pw:pw + OW]
    if b is not None:
        y = y + b[None, :, None, None]
    return y.astype(np.result_type(*xs))


def _src_index(o, n_in, n_out, sf, mode, align):
    """PyTorch's source position of output o along one axis (nearest: an int)."""
    if mode == 3:  # nearest-exact: the pixel whose centre is nearest
        sc = np.float32(1.0 / sf) if sf > 0 else np.float32(n_in) / np.float32(n_out)
        return min(int(np.floor((np.float32(o) + np.float32(0.5)) * sc)), n_in - 1)
    if mode == 0:
        if n_out == n_in:
            return o
        if n_out == 2 * n_in:
            return o // 2
        sc = np.float32(1.0 / sf) if sf > 0 else np.float32(n_in) / np.float32(n_out)
        return min(int(np.floor(np.float32(o) * sc)), n_in - 1)
    if align:
        sc = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        return sc * o
    sc = 1.0 / sf if sf > 0 else n_in / n_out
    return max(sc * (o + 0.5) - 0.5, 0.0)


def _interp_matrix(n_in, n_out, sf, mode, align):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        s = _src_index(o, n_in, n_out, sf, mode, align)
        if mode in (0, 3):
            m[o, s] = 1
            continue
        a = min(int(s), n_in - 1)
        b = min(a + 1, n_in - 1)
        lam = min(max(s - a, 0.0), 1.0)
        m[o, a] += 1 - lam
        m[o, b] += lam
    return m


def _interpolate_ref(xs, p):
    (x,) = xs
    mode, align = int(p["ints"][0]), bool(p["ints"][1])
    if x.ndim == 3:
        m = _interp_matrix(x.shape[2], int(p["ints"][2]), p["f"][0], mode, align)
        return np.einsum("ncl,ol->nco", x, m).astype(x.dtype)
    mh = _interp_matrix(x.shape[2], int(p["ints"][2]), p["f"][0], mode, align)
    mw = _interp_matrix(x.shape[3], int(p["ints"][3]), p["f"][1], mode, align)
    return np.einsum("nchw,ih,jw->ncij", x, mh, mw).astype(x.dtype)


def _adaptive_avg_ref(xs, p):
    (x,) = xs
    OH, OW = int(p["ints"][0]), int(p["ints"][1])
    N, C, H, W = x.shape
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        h0, h1 = (i * H) // OH, -(-((i + 1) * H) // OH)
        for j in range(OW):
            w0, w1 = (j * W) // OW, -(-((j + 1) * W) // OW)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y



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
    x = _float_of(xs[0])
    return np.where(x > 0, x, x * x.dtype.type(p["f"][0])).astype(x.dtype)


def _gelu(xs, p):
    x = _float_of(xs[0])
    return (0.5 * x * (1 + _erf(x / np.sqrt(2).astype(x.dtype)))).astype(x.dtype)


def _sigmoid(xs, p):
    x = _float_of(xs[0])
    return (0.5 * (1 + np.tanh(0.5 * x))).astype(x.dtype)


def _red(f):
    def ref(xs, p):
        (x,) = xs
        out = np.asarray(f(x, axis=_axes(p), keepdims=p["keepdims"]))
        if x.dtype.kind != "f" and f is np.sum:  # NumPy: int64 (uint64 for uint8: tapegrad has int64)
            return out.astype(np.int64)
        if x.dtype.kind != "f" and f is np.mean:  # the mean of ints or bools is float64
            return out.astype(np.float64)
        return out.astype(x.dtype)
    return ref


def _unary(f):
    def ref(xs, p):
        (x,) = xs
        return np.asarray(f(_float_of(x)))
    return ref


def _eigh_packed(xs, p):
    """[V | w] with each eigenvector's largest component positive."""
    w, v = np.linalg.eigh(xs[0])
    big = np.take_along_axis(v, np.abs(v).argmax(axis=-2)[..., None, :], axis=-2)
    v = v * np.where(big < 0, -1, 1).astype(v.dtype)
    return np.concatenate([v, w[..., :, None]], axis=-1)


def _qr_packed(xs, p):
    """[Q | R], R's rows padded with zeros to Q's (LAPACK's signs, as ours)."""
    a = xs[0]
    m, n = a.shape[-2:]
    mode = "complete" if p["i"][0] else "reduced"
    q, r = np.linalg.qr(a, mode=mode)
    r = np.concatenate([r, np.zeros(r.shape[:-2] + (m - r.shape[-2], n), r.dtype)], axis=-2)
    return np.concatenate([q, r], axis=-1)


def _svd_packed(xs, p):
    """[[U, s], [V, 0]] (reduced), each column of U with its largest-magnitude
    entry positive (V's column flipped with it)."""
    a = xs[0]
    m, n = a.shape[-2:]
    k = min(m, n)
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    v = np.swapaxes(vh, -1, -2)
    big = np.take_along_axis(u, np.abs(u).argmax(axis=-2)[..., None, :], axis=-2)
    sign = np.where(big < 0, -1, 1).astype(a.dtype)
    top = np.concatenate([u * sign, np.zeros(a.shape[:-2] + (m, 1), a.dtype)], axis=-1)
    top[..., :k, k] = s
    bottom = np.concatenate([v * sign, np.zeros(a.shape[:-2] + (n, 1), a.dtype)], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


REFERENCES = {
    # binary with broadcasting
    "add": lambda xs, p: np.add(*xs),
    "sub": lambda xs, p: np.subtract(*xs),
    "mul": lambda xs, p: np.multiply(*xs),
    "div": lambda xs, p: np.true_divide(*xs),
    "pow": _pow,
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
    "relu": lambda xs, p: np.maximum(_float_of(xs[0]), _float_of(xs[0]).dtype.type(0)),
    "leaky_relu": _leaky_relu,
    "gelu": _gelu,
    "erf": lambda xs, p: _erf(xs[0]),
    "softplus": lambda xs, p: np.logaddexp(_float_of(xs[0]).dtype.type(0), _float_of(xs[0])).astype(_float_of(xs[0]).dtype),
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
    "tri_matmul": lambda xs, p: _tri_matmul(*xs, p["i"][0]),
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
    "masked_softmax": lambda xs, p: _masked_softmax(xs, p["i"][0], p["f"][0] if p["i"][1] else 1.0),
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
    "logical_and": lambda xs, p: np.logical_and(*xs),
    "logical_or": lambda xs, p: np.logical_or(*xs),
    "logical_xor": lambda xs, p: np.logical_xor(*xs),
    "logical_not": lambda xs, p: np.logical_not(xs[0]),
    "bitwise_and": lambda xs, p: np.bitwise_and(*xs),
    "bitwise_or": lambda xs, p: np.bitwise_or(*xs),
    "bitwise_xor": lambda xs, p: np.bitwise_xor(*xs),
    "bitwise_not": lambda xs, p: np.invert(xs[0]),
    "left_shift": lambda xs, p: np.left_shift(*xs),
    "right_shift": lambda xs, p: np.right_shift(*xs),
    "isnan": lambda xs, p: np.isnan(xs[0]),
    "isinf": lambda xs, p: np.isinf(xs[0]),
    "isfinite": lambda xs, p: np.isfinite(xs[0]),
    "isclose": lambda xs, p: np.isclose(xs[0], xs[1], rtol=p["f"][0], atol=p["f"][1], equal_nan=bool(p["i"][0])),
    "all": lambda xs, p: np.asarray(np.all(xs[0], axis=_axes(p), keepdims=p["keepdims"])),
    "any": lambda xs, p: np.asarray(np.any(xs[0], axis=_axes(p), keepdims=p["keepdims"])),

    # math.c: elementwise math (issue 14)
    "tan": lambda xs, p: np.tan(_float_of(xs[0])),
    "asin": lambda xs, p: np.arcsin(_float_of(xs[0])),
    "acos": lambda xs, p: np.arccos(_float_of(xs[0])),
    "atan": lambda xs, p: np.arctan(_float_of(xs[0])),
    "sinh": lambda xs, p: np.sinh(_float_of(xs[0])),
    "cosh": lambda xs, p: np.cosh(_float_of(xs[0])),
    "asinh": lambda xs, p: np.arcsinh(_float_of(xs[0])),
    "acosh": lambda xs, p: np.arccosh(_float_of(xs[0])),
    "atanh": lambda xs, p: np.arctanh(_float_of(xs[0])),
    "log2": lambda xs, p: np.log2(_float_of(xs[0])),
    "log10": lambda xs, p: np.log10(_float_of(xs[0])),
    "log1p": lambda xs, p: np.log1p(_float_of(xs[0])),
    "expm1": lambda xs, p: np.expm1(_float_of(xs[0])),
    "exp2": lambda xs, p: np.exp2(_float_of(xs[0])),
    "rsqrt": lambda xs, p: 1 / np.sqrt(_float_of(xs[0])),
    "reciprocal": lambda xs, p: np.reciprocal(_float_of(xs[0])),
    "square": lambda xs, p: np.square(xs[0]),
    "floor": lambda xs, p: np.floor(xs[0]),
    "ceil": lambda xs, p: np.ceil(xs[0]),
    "trunc": lambda xs, p: np.trunc(xs[0]),
    "round": lambda xs, p: np.round(xs[0], p["i"][0]),
    "sign": lambda xs, p: np.sign(xs[0]),
    "atan2": lambda xs, p: np.arctan2(_float_of(xs[0]), _float_of(xs[1])),
    "copysign": lambda xs, p: np.copysign(_float_of(xs[0]), _float_of(xs[1])),
    "logaddexp": lambda xs, p: np.logaddexp(_float_of(xs[0]), _float_of(xs[1])),
    "hypot": lambda xs, p: np.hypot(_float_of(xs[0]), _float_of(xs[1])),
    "fmod": lambda xs, p: _int_div0(np.fmod, *xs),
    "remainder": lambda xs, p: _int_div0(np.remainder, *xs),
    "floor_divide": lambda xs, p: _int_div0(np.floor_divide, *xs),
    "trunc_divide": lambda xs, p: _int_div0(lambda a, b: np.trunc(a / b).astype(np.result_type(a, b))
                                            if np.result_type(a, b).kind == "f"
                                            else np.fix(a / np.where(b == 0, 1, b)).astype(np.int64) * (b != 0),
                                            *xs),
    "lerp": lambda xs, p: xs[0] + xs[2] * (xs[1] - xs[0]),
    "nan_to_num": lambda xs, p: np.nan_to_num(xs[0], nan=p["f"][0],
                                              posinf=p["f"][1] if p["i"][0] else None,
                                              neginf=p["f"][2] if p["i"][1] else None),

    # activation.c: activations (issue 14)
    "elu": lambda xs, p: np.where(xs[0] > 0, xs[0], p["f"][0] * np.expm1(xs[0])),
    "selu": lambda xs, p: 1.0507009873554804934193349852946 * np.where(
        xs[0] > 0, xs[0], 1.6732632423543772848170429916717 * np.expm1(xs[0])),
    "celu": lambda xs, p: np.where(xs[0] > 0, xs[0], p["f"][0] * np.expm1(xs[0] / p["f"][0])),
    "hardtanh": lambda xs, p: np.minimum(np.maximum(xs[0], p["f"][0]), p["f"][1]),
    "relu6": lambda xs, p: np.minimum(np.maximum(xs[0], 0.0), 6.0),
    "hardsigmoid": lambda xs, p: np.clip(xs[0] + 3, 0, 6) / 6,
    "hardswish": lambda xs, p: xs[0] * np.clip(xs[0] + 3, 0, 6) / 6,
    "logsigmoid": lambda xs, p: -np.logaddexp(0, -xs[0]),
    "softsign": lambda xs, p: xs[0] / (1 + np.abs(xs[0])),
    "mish": lambda xs, p: xs[0] * np.tanh(np.logaddexp(0, xs[0])),
    "gelu_tanh": lambda xs, p: 0.5 * xs[0] * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs[0] + 0.044715 * xs[0] ** 3))),
    "softplus_beta": lambda xs, p: np.where(p["f"][0] * xs[0] > p["f"][1], xs[0],
                                            np.logaddexp(0, p["f"][0] * xs[0]) / p["f"][0]),
    "softmin": lambda xs, p: _softmax(-_float_of(xs[0]), p["i"][0]),
    "glu": lambda xs, p: _glu_np(xs[0], p["i"][0]),

    # scan.c: reductions, scans, sorting (issue 14)
    # (written in scan_reference.py, next to this file)
    **__import__("scan_reference").SCAN_REFERENCES,

    # shape.c: shape and indexing (issue 14)
    "flip": lambda xs, p: np.flip(xs[0], axis=_axes(p)),
    "roll": lambda xs, p: np.roll(xs[0], p["ints"][:max(p["naxes"], 1)] if p["naxes"] >= 0 else p["ints"][0],
                                  axis=_axes(p)),
    "tril": lambda xs, p: np.tril(xs[0], p["i"][0]),
    "triu": lambda xs, p: np.triu(xs[0], p["i"][0]),
    "diagonal": lambda xs, p: np.diagonal(xs[0], p["i"][0], p["i"][1], p["i"][2]),
    "diag": lambda xs, p: np.diag(xs[0], p["i"][0]),
    # (a sum of uint8 or bool is int64 in tapegrad, which has no uint64: NumPy's sum rule
    # for signed types, the same as tg.sum)
    "trace": lambda xs, p: np.asarray(np.trace(xs[0], p["i"][0], p["i"][1], p["i"][2],
                                               dtype=np.int64 if xs[0].dtype.kind in "bu" else None)),
    "repeat": lambda xs, p: __import__("shape_reference").torch_repeat(xs, p),
    "tile": lambda xs, p: np.tile(xs[0], p["ints"][:p["i"][0]]),
    "repeat_interleave": lambda xs, p: np.repeat(xs[0], p["ints"][:p["i"][0]] if p["i"][0] > 1 else p["ints"][0],
                                                 axis=p["i"][1] if p["i"][2] else None),
    "unflatten": lambda xs, p: __import__("shape_reference").unflatten(xs, p),
    "nonzero": lambda xs, p: np.argwhere(xs[0] != 0).astype(np.int64).reshape(-1, xs[0].ndim),
    "masked_select": lambda xs, p: np.broadcast_arrays(*xs)[0][np.broadcast_arrays(*xs)[1] != 0],
    "masked_fill": lambda xs, p: np.where(xs[1] != 0, xs[0].dtype.type(p["f"][0]), xs[0]),
    "scatter": lambda xs, p: __import__("shape_reference").scatter(xs, p),
    "scatter_reduce": lambda xs, p: __import__("shape_reference").scatter_reduce(xs, p),
    "unfold": lambda xs, p: __import__("shape_reference").unfold(xs, p),
    "pad_mode": lambda xs, p: __import__("shape_reference").pad_mode(xs, p),
    "einsum": lambda xs, p: np.asarray(np.einsum("".join(chr(c) for c in p["ints"] if c), *xs)),

    # conv.c: more convolutions, pooling, interpolation (issue 14)
    "max_unpool2d": _max_unpool,
    "conv1d": _conv1d_ref,
    "conv_transpose2d": _conv_transpose_ref,
    "interpolate": _interpolate_ref,
    "adaptive_avg_pool2d": _adaptive_avg_ref,

    # nn.c: normalization, attention, embedding, losses (issue 14)
    "binary_cross_entropy": _binary_cross_entropy,
    "huber_loss": _huber,
    "smooth_l1_loss": _smooth_l1,
    "l1_loss": lambda xs, p: np.asarray(_reduce_loss(np.abs(xs[0] - xs[1]), p), dtype=xs[0].dtype),
    "kl_div": _kl_div,
    "embedding": _embedding,
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "normalize": _normalize,
    "cosine_similarity": _cosine_similarity,
    "scaled_dot_product_attention": _sdpa,

    # inplace.c: in-place ops on the tape (issue 14)
    "copy_slices": lambda xs, p: __import__("inplace_reference").copy_slices(xs, p),
    "as_strided": lambda xs, p: __import__("inplace_reference").as_strided(xs, p),

    # npfn: products and NumPy functions (issue 19)
    "tensordot": lambda xs, p: np.tensordot(xs[0], xs[1], axes=(list(p["ints"][:p["i"][0]]),
                                                                list(p["ints"][p["i"][0]:2 * p["i"][0]]))),
    "dot": lambda xs, p: np.dot(xs[0], xs[1]),
    "inner": lambda xs, p: np.inner(xs[0], xs[1]),
    "outer": lambda xs, p: np.outer(xs[0], xs[1]),
    "kron": lambda xs, p: np.kron(xs[0], xs[1]),
    "cross": lambda xs, p: np.cross(*np.broadcast_arrays(xs[0], xs[1]), axis=p["i"][0]),
    "diff": lambda xs, p: np.diff(xs[0], n=p["i"][0], axis=p["i"][1],
                                  **({"prepend": xs[1]} if p["i"][2] else {}),
                                  **({"append": xs[-1]} if p["i"][3] else {})),
    "fmax": lambda xs, p: np.fmax(xs[0], xs[1]),
    "fmin": lambda xs, p: np.fmin(xs[0], xs[1]),
    "logaddexp2": lambda xs, p: np.logaddexp2(xs[0], xs[1]),
    "sinc": lambda xs, p: np.sinc(xs[0]),
    "deg2rad": lambda xs, p: np.deg2rad(xs[0]),
    "rad2deg": lambda xs, p: np.rad2deg(xs[0]),

    # linalg.c: tg.linalg and more products (issue 19)
    "linalg_inv": lambda xs, p: np.linalg.inv(xs[0]),
    "linalg_solve": lambda xs, p: np.linalg.solve(xs[0], xs[1]),
    "linalg_det": lambda xs, p: np.linalg.det(xs[0]),
    "linalg_slogdet": lambda xs, p: np.stack(np.linalg.slogdet(xs[0]), axis=-1),
    "linalg_cholesky": lambda xs, p: np.linalg.cholesky(xs[0]),
    "linalg_eigh": _eigh_packed,
    "linalg_qr": _qr_packed,
    "linalg_svd": _svd_packed,

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
