"""The fused paths of a transformer step (issue 16): layer_norm's one-pass
forward and fused first-order backward, the vectorised softmax and the
masked softmax under scaled_dot_product_attention, and the slice backward.

Each fast path is checked against PyTorch (float32), against finite
differences and second order (float64, where the VJP written with ops runs),
against the op-composed reference path, on non-contiguous inputs, and for
bitwise-identical results on one and two threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
F = tg.nn.functional


@pytest.fixture
def threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


def _pair(a, grad=True):
    g, t = tg.from_numpy(a.copy()), torch.from_numpy(a.copy())
    if grad:
        g.requires_grad = True
        t.requires_grad_(True)
    return g, t


def _close(got, want, tol):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------
# layer_norm
# ---------------------------------------------------------------------------

# (input shape, normalized shape, weight?, bias?, transpose the input first?)
LN_CASES = [
    ((16, 64, 128), (128,), True, True, False),
    ((5, 7), (7,), False, False, False),
    ((3, 9), (9,), True, False, False),
    ((3, 9), (9,), False, True, False),
    ((2, 3, 4, 5), (4, 5), True, True, False),
    ((6, 13), (6,), True, True, True),        # a transposed (strided) input
    ((4, 1000), (1000,), True, True, False),  # rows longer than one chunk of partial sums
    ((3, 5), (5,), True, True, False),        # rows shorter than one vector of lanes
]


@pytest.mark.parametrize("shape,nshape,has_w,has_b,transpose", LN_CASES)
def test_layer_norm_matches_torch_float32(shape, nshape, has_w, has_b, transpose):
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.normal(size=shape).astype(np.float32) * 3 + 0.5
    xg, xt = _pair(x)
    xin_g = xg.swapaxes(0, 1) if transpose else xg
    xin_t = xt.transpose(0, 1) if transpose else xt
    w = rng.normal(size=nshape).astype(np.float32) if has_w else None
    b = rng.normal(size=nshape).astype(np.float32) if has_b else None
    wg, wt = _pair(w) if has_w else (None, None)
    bg, bt = _pair(b) if has_b else (None, None)
    yg = F.layer_norm(xin_g, nshape, wg, bg, 1e-5)
    yt = TF.layer_norm(xin_t, nshape, wt, bt, 1e-5)
    _close(yg.numpy(), yt.detach().numpy(), 2e-5)
    seed = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    # an upstream gradient that is itself strided
    gg = tg.from_numpy(np.ascontiguousarray(seed.swapaxes(0, -1))).swapaxes(0, -1)
    yg.backward(gg)
    yt.backward(torch.from_numpy(seed))
    _close(xg.grad.numpy(), xt.grad.numpy(), 1e-4)
    rows = np.prod(shape) / np.prod(nshape)  # dw, db sum over the rows
    for g, t in [(wg, wt), (bg, bt)]:
        if g is not None:
            _close(g.grad.numpy(), t.grad.numpy(), 1e-5 * rows)


@pytest.mark.parametrize("shape,nshape,has_w,has_b,transpose", LN_CASES)
def test_layer_norm_input_gradient_with_constant_weight(shape, nshape, has_w, has_b, transpose):
    rng = np.random.default_rng(7 + shape[-1])
    x = rng.normal(size=shape).astype(np.float32) * 2 - 1
    xg, xt = _pair(x)
    xin_g = xg.swapaxes(0, 1) if transpose else xg
    xin_t = xt.transpose(0, 1) if transpose else xt
    w = rng.normal(size=nshape).astype(np.float32) if has_w else None
    wg = tg.from_numpy(w) if has_w else None
    wt = torch.from_numpy(w) if has_w else None
    b = rng.normal(size=nshape).astype(np.float32) if has_b else None
    bg = tg.from_numpy(b) if has_b else None
    bt = torch.from_numpy(b) if has_b else None
    yg = F.layer_norm(xin_g, nshape, wg, bg, 1e-5)
    yt = TF.layer_norm(xin_t, nshape, wt, bt, 1e-5)
    seed = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    yg.backward(tg.from_numpy(seed))
    yt.backward(torch.from_numpy(seed))
    _close(xg.grad.numpy(), xt.grad.numpy(), 1e-4)


def test_layer_norm_large_mean_is_accurate():
    """The one-pass forward sums deviations from a value of the row: a mean
    far from zero against a small spread keeps float32 accuracy."""
    rng = np.random.default_rng(3)
    x = (1000 + rng.normal(size=(64, 256)) * 0.01).astype(np.float32)
    got = F.layer_norm(tg.from_numpy(x), (256,), eps=1e-5).numpy()
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    # float32 rounds the mean at ulp(1000) / 2 = 3e-5, 0.3 % of the spread
    # (PyTorch's float32 layer_norm is off by 1 % here)
    assert np.abs(got - ref).max() < 4e-3
    want = TF.layer_norm(torch.from_numpy(x), (256,), eps=1e-5).numpy()
    assert np.abs(got - ref).max() <= np.abs(want - ref).max()


def _ln_all_grads(x, w, b, seed, create_graph):
    xs = [t.detach() for t in (x, w, b)]
    for t in xs:
        t.requires_grad = True
    y = F.layer_norm(xs[0], tuple(w.shape), xs[1], xs[2], 1e-5)
    return [g.numpy() for g in tg.grad(y, xs, seed, create_graph=create_graph)]


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5), (40, 33)])
def test_layer_norm_fused_backward_equals_the_ops_path(shape):
    """The first-order backward runs the fused kernel; create_graph runs the
    VJP written with ops.  Both give the same gradients (float64)."""
    rng = np.random.default_rng(11)
    x = tg.from_numpy(rng.normal(size=shape))
    w = tg.from_numpy(rng.normal(size=shape[-1:]))
    b = tg.from_numpy(rng.normal(size=shape[-1:]))
    seed = tg.from_numpy(rng.normal(size=shape))
    fused = _ln_all_grads(x, w, b, seed, False)
    ops = _ln_all_grads(x, w, b, seed, True)
    for a, c in zip(fused, ops):
        _close(a, c, 1e-12)


@pytest.mark.parametrize("has_w,has_b", [(True, True), (False, False), (True, False), (False, True)])
def test_layer_norm_gradcheck_and_gradgradcheck(has_w, has_b):
    rng = np.random.default_rng(5)
    x = tg.from_numpy(rng.normal(size=(3, 2, 5)))
    ins = [x]
    if has_w:
        ins.append(tg.from_numpy(rng.normal(size=(5,))))
    if has_b:
        ins.append(tg.from_numpy(rng.normal(size=(5,))))
    for t in ins:
        t.requires_grad = True

    def f(x, *wb):
        it = iter(wb)
        w = next(it) if has_w else None
        b = next(it) if has_b else None
        return F.layer_norm(x, (5,), w, b, 1e-5)
    assert gradcheck(f, ins)
    assert gradgradcheck(f, ins)


def test_layer_norm_is_bitwise_the_same_on_one_and_two_threads(threads):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3000, 96)).astype(np.float32)
    w = rng.normal(size=96).astype(np.float32)
    b = rng.normal(size=96).astype(np.float32)
    seed = tg.from_numpy(rng.normal(size=x.shape).astype(np.float32))

    def run(n):
        tg.set_num_threads(n)
        xs = [tg.from_numpy(a.copy()) for a in (x, w, b)]
        for t in xs:
            t.requires_grad = True
        y = F.layer_norm(xs[0], (96,), xs[1], xs[2], 1e-5)
        y.backward(seed)
        return [y.numpy()] + [t.grad.numpy() for t in xs]
    one, two = run(1), run(2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)
