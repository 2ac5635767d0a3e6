"""Tests of conv2d, max_pool2d, avg_pool2d (csrc/ops/conv.c) and the fused
optimizer steps (csrc/core/optim.c) through tapegrad._C.

- forward against slow loop-by-loop NumPy references (always) and PyTorch
  (when installed);
- gradients: against PyTorch, gradcheck in float64 for every input, and
  gradgradcheck (the VJPs are ops, so second derivatives work);
- optimizer steps against torch.optim over several steps from identical
  parameters and gradients, clip_grad_norm against torch's;
- the error messages.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.nn import functional as F
from tapegrad.testing import gradcheck, gradgradcheck

_C = tg._C


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---- slow references: one output element at a time ----------------------

def ref_conv2d(x, w, b=None, stride=1, padding=0):
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    O, C2, KH, KW = w.shape
    assert C == C2
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    y = np.zeros((N, O, OH, OW), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for i in range(OH):
                for j in range(OW):
                    s = 0.0 if b is None else float(b[o])
                    for c in range(C):
                        for p in range(KH):
                            for q in range(KW):
                                h, v = i * sh - ph + p, j * sw - pw + q
                                if 0 <= h < H and 0 <= v < W:
                                    s += float(x[n, c, h, v]) * float(w[o, c, p, q])
                    y[n, o, i, j] = s
    return y


def ref_pool(x, k, stride=None, padding=0, kind="max"):
    kh, kw = _pair(k)
    sh, sw = _pair(stride if stride is not None else k)
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, C, OH, OW))
    arg = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best, bi, s = -math.inf, -1, 0.0
                    for p in range(kh):
                        for q in range(kw):
                            h, v = i * sh - ph + p, j * sw - pw + q
                            if 0 <= h < H and 0 <= v < W:
                                val = float(x[n, c, h, v])
                                s += val
                                if val > best or bi < 0:
                                    best, bi = val, h * W + v
                    y[n, c, i, j] = best if kind == "max" else s / (kh * kw)
                    arg[n, c, i, j] = bi
    return y, arg


def _t(a, requires_grad=False, dtype=None):
    a = np.asarray(a)
    return tg.tensor(a, dtype=dtype or a.dtype, requires_grad=requires_grad)


CONV_CASES = [
    # x shape, w shape, bias, stride, padding
    ((2, 3, 7, 6), (4, 3, 3, 2), True, 1, 0),
    ((2, 3, 7, 6), (4, 3, 3, 2), False, (2, 1), (1, 0)),
    ((1, 2, 5, 5), (3, 2, 3, 3), True, 2, 1),
    ((2, 1, 8, 8), (2, 1, 5, 5), True, 1, 2),
    ((3, 4, 4, 5), (2, 4, 1, 1), True, 1, 0),      # pointwise: no im2col
    ((2, 2, 6, 6), (3, 2, 2, 2), False, 3, (0, 2)),
    ((1, 1, 3, 3), (1, 1, 3, 3), True, 1, 0),      # window = whole image
]


# ---- conv2d forward --------------------------------------------------------

@pytest.mark.parametrize("xs,ws,bias,stride,padding", CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_forward_numpy(xs, ws, bias, stride, padding, dtype):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    y = F.conv2d(_t(x), _t(w), None if b is None else _t(b), stride=stride, padding=padding)
    assert y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x, w, b, stride, padding), rtol=tol, atol=tol)


def test_conv2d_non_contiguous_and_numpy_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    xt = tg.swapaxes(_t(np.ascontiguousarray(x.transpose(0, 1, 3, 2))), 2, 3)  # a strided view
    assert not xt.is_contiguous
    y = F.conv2d(xt, w, None, 1, 1)  # the weight as a plain ndarray
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x, w, None, 1, 1), rtol=1e-12, atol=1e-12)


def test_conv2d_mixed_dtypes_promote():
    w = tg.randn(3, 2, 3, 3, dtype=tg.float64, requires_grad=True)
    xr = tg.randn(1, 2, 5, 5).numpy()
    x = _t(xr, requires_grad=True)
    y = F.conv2d(x, w)
    assert y.dtype == tg.float64
    y.sum().backward()
    assert x.grad.dtype == tg.float32 and w.grad.dtype == tg.float64


def test_conv2d_empty_batch():
    y = F.conv2d(tg.zeros(0, 2, 5, 5, requires_grad=True), tg.ones(3, 2, 3, 3, requires_grad=True))
    assert y.shape == (0, 3, 3, 3)


# ---- conv2d and pooling against PyTorch -----------------------------------

@pytest.mark.parametrize("xs,ws,bias,stride,padding", CONV_CASES + [
    ((64, 1, 28, 28), (6, 1, 5, 5), True, 1, 0),   # LeNet
    ((64, 6, 12, 12), (16, 6, 5, 5), True, 1, 0),
    ((4, 3, 16, 16), (8, 3, 3, 3), True, 2, 1),
])
def test_conv2d_forward_backward_vs_torch(xs, ws, bias, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        tx, tw = _t(x.astype(dtype), True), _t(w.astype(dtype), True)
        tb = _t(b.astype(dtype), True) if bias else None
        y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
        px = torch.tensor(x.astype(dtype), requires_grad=True)
        pw = torch.tensor(w.astype(dtype), requires_grad=True)
        pb = torch.tensor(b.astype(dtype), requires_grad=True) if bias else None
        py = torch.nn.functional.conv2d(px, pw, pb, stride=stride, padding=padding)
        np.testing.assert_allclose(y.numpy(), py.detach().numpy(), rtol=tol, atol=tol)
        g = rng.standard_normal(py.shape).astype(dtype)
        y.backward(_t(g))
        py.backward(torch.tensor(g))
        np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=tol, atol=tol * 100)
        if bias:
            np.testing.assert_allclose(tb.grad.numpy(), pb.grad.numpy(), rtol=tol, atol=tol * 100)


POOL_CASES = [
    # x shape, kernel, stride, padding
    ((2, 3, 6, 6), 2, None, 0),
    ((2, 3, 7, 5), (3, 2), (2, 1), (1, 1)),
    ((1, 2, 5, 4), 3, 1, 1),
    ((64, 6, 24, 24), 2, 2, 0),  # LeNet
    ((1, 1, 5, 5), (2, 3), (3, 2), (1, 0)),
]


@pytest.mark.parametrize("xs,k,s,p", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_forward_numpy(xs, k, s, p, kind):
    if xs[0] > 4:
        xs = (2,) + xs[1:]
    x = np.random.default_rng(4).standard_normal(xs)
    f = F.max_pool2d if kind == "max" else F.avg_pool2d
    y = f(_t(x), k, s, p)
    ref, _ = ref_pool(x, k, s, p, kind)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,k,s,p", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_vs_torch(xs, k, s, p, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(np.float32)
    tx = _t(x, True)
    f = F.max_pool2d if kind == "max" else F.avg_pool2d
    y = f(tx, k, s, p)
    px = torch.tensor(x, requires_grad=True)
    tf = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    py = tf(px, k, s, p)
    np.testing.assert_allclose(y.numpy(), py.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = rng.standard_normal(py.shape).astype(np.float32)
    y.backward(_t(g))
    py.backward(torch.tensor(g))
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_max_pool_ties_first_max_gets_the_gradient():
    x = _t(np.ones((1, 1, 4, 4)), True)
    y = F.max_pool2d(x, 2)
    y.sum().backward()
    expect = np.zeros((4, 4))
    expect[0::2, 0::2] = 1  # the top-left (first) element of every window
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expect)
    torch = pytest.importorskip("torch")
    px = torch.ones((1, 1, 4, 4), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.max_pool2d(px, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), px.grad.numpy())


def test_max_pool_padding_is_minus_infinity():
    x = -np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)  # all negative
    y = F.max_pool2d(_t(x), 3, 1, 1)
    ref, _ = ref_pool(x, 3, 1, 1)
    np.testing.assert_array_equal(y.numpy(), ref)
    assert y.numpy().max() == -1.0  # padding never wins


def test_avg_pool_counts_padding():
    y = F.avg_pool2d(tg.ones(1, 1, 2, 2, dtype=tg.float64), 2, 1, 1)
    np.testing.assert_allclose(y.numpy()[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


# ---- gradcheck / gradgradcheck ----------------------------------------------

def _rand(*shape, requires_grad=True):
    return tg.randn(*shape, dtype=tg.float64, requires_grad=requires_grad)


@pytest.mark.parametrize("xs,ws,bias,stride,padding", CONV_CASES[:6])
def test_conv2d_gradcheck(xs, ws, bias, stride, padding):
    x, w = _rand(*xs), _rand(*ws)
    inputs = [x, w] + ([_rand(ws[0])] if bias else [])
    assert gradcheck(lambda *a: F.conv2d(*a, stride=stride, padding=padding), inputs)


@pytest.mark.parametrize("xs,ws,bias,stride,padding", [CONV_CASES[0], CONV_CASES[2], CONV_CASES[5]])
def test_conv2d_gradgradcheck(xs, ws, bias, stride, padding):
    x, w = _rand(*xs), _rand(*ws)
    inputs = [x, w] + ([_rand(ws[0])] if bias else [])
    assert gradgradcheck(lambda *a: F.conv2d(*a, stride=stride, padding=padding), inputs)


def test_conv2d_second_derivative_through_a_nonlinearity():
    # d/dw of |d loss / dx|^2 with loss = sum(tanh(conv(x, w))): needs the VJPs of the VJPs
    x, w = _rand(1, 2, 5, 5), _rand(3, 2, 3, 3)
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1).tanh(), [x, w])


@pytest.mark.parametrize("xs,k,s,p", [((2, 2, 6, 5), 2, None, 0), ((1, 2, 5, 6), 3, (2, 1), 1)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradcheck(xs, k, s, p, kind):
    f = F.max_pool2d if kind == "max" else F.avg_pool2d
    x = _rand(*xs)
    assert gradcheck(lambda x: f(x, k, s, p), [x])
    assert gradgradcheck(lambda x: f(x, k, s, p) * f(x, k, s, p), [x])


def test_conv_pool_network_gradcheck():
    x, w1, b1 = _rand(2, 1, 8, 8), _rand(3, 1, 3, 3), _rand(3)
    w2 = _rand(2, 3, 2, 2)

    def net(x, w1, b1, w2):
        h = F.max_pool2d(F.conv2d(x, w1, b1, padding=1).tanh(), 2)
        return F.avg_pool2d(F.conv2d(h, w2), 3, 1, 1)

    assert gradcheck(net, [x, w1, b1, w2])


# ---- errors ---------------------------------------------------------------------

def test_conv2d_errors():
    x, w = tg.randn(4, 3, 28, 28), tg.randn(6, 1, 5, 5)
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects 1 \(weight shape \(6, 1, 5, 5\)\)"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(1, 28, 28\)"):
        F.conv2d(tg.randn(1, 28, 28), w)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D weight"):
        F.conv2d(tg.randn(1, 1, 28, 28), tg.randn(6, 5, 5))
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(5, 5\) is larger than the padded input size \(4, 4\)"):
        F.conv2d(tg.randn(1, 1, 4, 4), w)
    with pytest.raises(ValueError, match=r"conv2d: stride must be positive, got \(0, 1\)"):
        F.conv2d(tg.randn(1, 1, 8, 8), w, stride=(0, 1))
    with pytest.raises(ValueError, match=r"conv2d: padding must be non-negative, got \(-1, -1\)"):
        F.conv2d(tg.randn(1, 1, 8, 8), w, padding=-1)
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(5,\) but the weight \(6, 1, 5, 5\) has 6 output channels"):
        F.conv2d(tg.randn(1, 1, 8, 8), w, tg.zeros(5))
    with pytest.raises(TypeError, match=r"conv2d: expected a float32 or float64 input, got int64"):
        F.conv2d(tg.zeros(1, 1, 8, 8, dtype=tg.int64), w)
    with pytest.raises(TypeError, match=r"stride must be an int or a pair of ints"):
        F.conv2d(tg.randn(1, 1, 8, 8), w, stride=(1, 2, 3))


def test_pool_errors():
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half of the kernel size \(3, 3\)"):
        F.max_pool2d(tg.randn(1, 1, 8, 8), 3, 1, 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel size \(5, 5\) is larger than the padded input size \(4, 4\)"):
        F.avg_pool2d(tg.randn(1, 1, 4, 4), 5)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input"):
        F.max_pool2d(tg.randn(8, 8), 2)
    with pytest.raises(TypeError, match=r"max_pool2d: expected a float32 or float64 input, got int64"):
        F.max_pool2d(tg.zeros(1, 1, 4, 4, dtype=tg.int64), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: stride must be positive"):
        F.avg_pool2d(tg.randn(1, 1, 4, 4), 2, 0)
    with pytest.raises(TypeError, match=r"missing argument 'kernel_size'"):
        F.max_pool2d(tg.randn(1, 1, 4, 4))


def test_ops_are_registered_with_formulas():
    names = {op["name"] for op in tg.ops()}
    for n in ("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d",
              "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"):
        assert n in names


# ---- optimizers against torch.optim ----------------------------------------------

SHAPES = [(3, 4), (5,), (2, 3, 2)]


def _run_tg(kind, params0, grads_seq, hp):
    """Run len(grads_seq) steps of a fused step on copies of params0."""
    ps = [_t(p.copy(), requires_grad=True) for p in params0]
    state = {}
    for step, grads in enumerate(grads_seq, start=1):
        gs = [None if g is None else _t(g) for g in grads]
        if kind == "sgd":
            bufs = state.setdefault("bufs", [tg.zeros(*p.shape, dtype=p.dtype) for p in ps]) \
                if hp["momentum"] else None
            _C._sgd_step(ps, gs, bufs, hp["lr"], hp["momentum"], hp["dampening"],
                         hp["weight_decay"], hp["nesterov"], step == 1)
        elif kind in ("adam", "adamw"):
            m = state.setdefault("m", [tg.zeros(*p.shape, dtype=p.dtype) for p in ps])
            v = state.setdefault("v", [tg.zeros(*p.shape, dtype=p.dtype) for p in ps])
            # like torch, each parameter counts its own steps (those it had a gradient
            # for); one fused call per distinct count
            counts = state.setdefault("steps", [0] * len(ps))
            for i, g in enumerate(gs):
                counts[i] += g is not None
            for c in sorted({counts[i] for i, g in enumerate(gs) if g is not None}):
                sel = [i for i, g in enumerate(gs) if g is not None and counts[i] == c]
                _C._adam_step([ps[i] for i in sel], [gs[i] for i in sel], [m[i] for i in sel],
                              [v[i] for i in sel], c, hp["lr"], hp["betas"][0], hp["betas"][1],
                              hp["eps"], hp["weight_decay"], kind == "adamw")
        else:
            s = state.setdefault("s", [tg.zeros(*p.shape, dtype=p.dtype) for p in ps])
            b = state.setdefault("b", [tg.zeros(*p.shape, dtype=p.dtype) for p in ps]) \
                if hp["momentum"] else None
            _C._rmsprop_step(ps, gs, s, b, hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"],
                             hp["momentum"])
    return [p.numpy() for p in ps]


def _run_torch(torch, kind, params0, grads_seq, hp):
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[kind]
    opt = cls(ps, **hp)
    for grads in grads_seq:
        for p, g in zip(ps, grads):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


OPT_CASES = [
    ("sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01, nesterov=False)),
    ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.0, weight_decay=0.1, nesterov=True)),
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
    ("adamw", dict(lr=5e-3, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.2)),
    ("rmsprop", dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0)),
    ("rmsprop", dict(lr=5e-3, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.7)),
]


@pytest.mark.parametrize("kind,hp", OPT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_matches_torch(kind, hp, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    params0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    steps = []
    for k in range(6):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        if k == 2:
            grads[1] = None  # a parameter without a gradient this step is skipped
        steps.append(grads)
    if kind == "sgd" and hp["momentum"]:
        steps[0][1] = rng.standard_normal(SHAPES[1]).astype(dtype)  # every buffer starts at step 1
    ours = _run_tg(kind, params0, steps, hp)
    theirs = _run_torch(torch, kind, params0, steps, hp)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **tol)


def test_sgd_reference_formula_without_torch():
    p0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    p = _t(p0.copy())
    buf = tg.zeros(2, dtype=tg.float64)
    _C._sgd_step([p], [_t(g)], [buf], 0.1, 0.9, 0.0, 0.0, False, True)
    np.testing.assert_allclose(p.numpy(), p0 - 0.1 * g)
    np.testing.assert_allclose(buf.numpy(), g)
    _C._sgd_step([p], [_t(g)], [buf], 0.1, 0.9, 0.0, 0.0, False, False)
    np.testing.assert_allclose(buf.numpy(), 1.9 * g)
    np.testing.assert_allclose(p.numpy(), p0 - 0.1 * g - 0.1 * 1.9 * g)


def test_adam_first_step_moves_by_lr():
    # after one step, m_hat / sqrt(v_hat) = sign(g): every element moves by lr
    p = _t(np.array([1.0, 2.0, 3.0]))
    g = _t(np.array([0.3, -5.0, 1e-3]))
    zeros = lambda: tg.zeros(3, dtype=tg.float64)  # noqa: E731
    _C._adam_step([p], [g], [zeros()], [zeros()], 1, 0.1, 0.9, 0.999, 0.0, 0.0, False)
    np.testing.assert_allclose(p.numpy(), [0.9, 2.1, 2.9], rtol=1e-12)


def test_step_bumps_version_and_invalidates_saved_tensors():
    p = tg.randn(3, requires_grad=True)
    x = tg.randn(3)
    y = (p * p * x).sum()  # mul saves p (each factor needs the other; p * x alone saves only x)
    v0 = p._version
    with tg.no_grad():
        _C._sgd_step([p], [tg.ones(3)], None, 0.1, 0.0, 0.0, 0.0, False, True)
    assert p._version > v0
    with pytest.raises(RuntimeError, match="modified"):
        y.backward()


def test_optimizer_errors_change_nothing():
    p, q = tg.ones(3), tg.ones(2)
    before = p.numpy().copy()
    with pytest.raises(ValueError, match=r"sgd_step: gradient 1 is float32 \(3,\) but parameter 1 is float32 \(2,\)"):
        _C._sgd_step([p, q], [tg.ones(3), tg.ones(3)], None, 0.1, 0.0, 0.0, 0.0, False, True)
    np.testing.assert_array_equal(p.numpy(), before)  # parameter 0 was not updated either
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum > 0 and zero dampening"):
        _C._sgd_step([p], [tg.ones(3)], None, 0.1, 0.0, 0.0, 0.0, True, True)
    with pytest.raises(ValueError, match="momentum 0.9 needs momentum buffers"):
        _C._sgd_step([p], [tg.ones(3)], None, 0.1, 0.9, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="not contiguous"):
        _C._sgd_step([tg.ones(3, 4).T], [tg.ones(4, 3)], None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match=r"adam_step: invalid beta1 1"):
        _C._adam_step([p], [tg.ones(3)], [tg.zeros(3)], [tg.zeros(3)], 1, 0.1, 1.0, 0.999, 1e-8, 0.0, False)
    with pytest.raises(ValueError, match=r"adamw_step: step must be >= 1"):
        _C._adam_step([p], [tg.ones(3)], [tg.zeros(3)], [tg.zeros(3)], 0, 0.1, 0.9, 0.999, 1e-8, 0.0, True)
    with pytest.raises(ValueError, match=r"exp_avg_sq 0 is float64 \(3,\) but parameter 0 is float32"):
        _C._adam_step([p], [tg.ones(3)], [tg.zeros(3)], [tg.zeros(3, dtype=tg.float64)], 1, 0.1,
                      0.9, 0.999, 1e-8, 0.0, False)
    with pytest.raises(ValueError, match=r"rmsprop_step: invalid lr -1"):
        _C._rmsprop_step([p], [tg.ones(3)], [tg.zeros(3)], None, -1.0, 0.99, 1e-8, 0.0, 0.0)
    with pytest.raises(TypeError, match=r"params\[0\] must be a Tensor"):
        _C._sgd_step([np.ones(3)], [tg.ones(3)], None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match=r"grads has 2 entries, expected 1"):
        _C._sgd_step([p], [tg.ones(3), None], None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(TypeError, match="parameter 0 is int64"):
        _C._sgd_step([tg.zeros(3, dtype=tg.int64)], [tg.zeros(3, dtype=tg.int64)], None, 0.1,
                     0.0, 0.0, 0.0, False, True)
    np.testing.assert_array_equal(p.numpy(), before)


def test_step_refuses_read_only_parameters():
    a = np.ones(3, dtype=np.float32)
    a.setflags(write=False)
    p = tg.from_numpy(a)
    with pytest.raises(RuntimeError, match="read-only"):
        _C._sgd_step([p], [tg.ones(3)], None, 0.1, 0.0, 0.0, 0.0, False, True)


# ---- clip_grad_norm ---------------------------------------------------------------

@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    gs = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [_t(g.copy()) for g in gs]
    total = _C._clip_grad_norm(ours + [None], max_norm, norm_type)
    ps = [torch.zeros(s, dtype=torch.float32 if dtype == np.float32 else torch.float64,
                      requires_grad=True) for s in SHAPES]
    for p, g in zip(ps, gs):
        p.grad = torch.tensor(g.copy())
    ttotal = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert total == pytest.approx(float(ttotal), rel=rtol)
    for a, p in zip(ours, ps):
        np.testing.assert_allclose(a.numpy(), p.grad.numpy(), rtol=rtol, atol=1e-7)


def test_clip_grad_norm_without_torch():
    g1, g2 = _t(np.array([3.0, 0.0])), _t(np.array([[0.0], [4.0]]))
    total = _C._clip_grad_norm([g1, g2], 1.0, 2.0)
    assert total == 5.0
    np.testing.assert_allclose(g1.numpy(), [3 / (5 + 1e-6), 0])
    np.testing.assert_allclose(g2.numpy(), [[0], [4 / (5 + 1e-6)]])
    # under the limit: unchanged
    assert _C._clip_grad_norm([g1], 10.0, math.inf) == pytest.approx(3 / (5 + 1e-6))
    np.testing.assert_allclose(g1.numpy(), [3 / (5 + 1e-6), 0])
    with pytest.raises(ValueError, match="norm_type must be positive"):
        _C._clip_grad_norm([g1], 1.0, 0.0)
    # a strided (non-contiguous) gradient is scaled through its view
    g3 = _t(np.arange(6.0).reshape(2, 3)).T
    total = _C._clip_grad_norm([g3], 1.0, 2.0)
    assert total == pytest.approx(math.sqrt(55))
    np.testing.assert_allclose(g3.numpy(), np.arange(6.0).reshape(2, 3).T / (math.sqrt(55) + 1e-6))
