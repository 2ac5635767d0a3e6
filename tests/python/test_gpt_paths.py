"""Session 9's fast paths for the GPT step (issue 16): the gradient
accumulator walking its target in memory order (a transposed key's gradient
added into the slice of qkv's), and the vector max of short rows (a causal
softmax's).  Each against an exact NumPy reference, on one and two threads."""
import numpy as np
import pytest

import tapegrad as tg
from kernel_paths import with_threads


def _transposed_chain_grad(B, T, H, hs, seed):
    """The gradient of qkv through h = qkv * 1 (a pending sum the engine owns),
    used whole and through a key-like chain: a slice, reshaped to heads,
    permuted and transposed, whose gradient is added into h's sum seen
    through the chain (the direct route).  Both seeds are float32, and each
    element of the result is one float32 addition: NumPy gives the bits."""
    rng = np.random.default_rng(seed)
    C = H * hs
    qkv = tg.from_numpy(rng.normal(size=(B, T, 3 * C)).astype(np.float32))
    qkv.requires_grad = True
    s0 = rng.normal(size=(B, T, 3 * C)).astype(np.float32)
    s1 = rng.normal(size=(B, H, hs, T)).astype(np.float32)
    # the key's seed as matmul's VJP hands it over: a transposed view of a
    # contiguous (B, H, T, hs) array, and a contiguous one
    g1_strided = tg.from_numpy(np.ascontiguousarray(s1.swapaxes(-2, -1))).swapaxes(-2, -1)
    want = s0.copy()
    want[:, :, C:2 * C] += s1.transpose(0, 3, 1, 2).reshape(B, T, C)
    out = []
    for g1 in (g1_strided, tg.from_numpy(s1)):
        h = qkv * 1.0
        kt = h[:, :, C:2 * C].reshape(B, T, H, hs).permute(0, 2, 1, 3).swapaxes(-2, -1)  # (B, H, hs, T)
        (g,) = tg.grad([h, kt], [qkv], [tg.from_numpy(s0), g1])
        out.append(g.numpy())
    return out, want


@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (1, 1, 1, 1), (3, 17, 2, 33), (16, 64, 4, 32)],
                         ids=["odd", "ones", "remainders", "gpt"])
@pytest.mark.parametrize("threads", [1, 2])
def test_transposed_gradient_added_into_its_slice_is_exact(shape, threads):
    got, want = with_threads(threads, lambda: _transposed_chain_grad(*shape, seed=sum(shape)))
    for g in got:
        np.testing.assert_array_equal(g, want)


def test_accumulation_into_a_reversed_and_transposed_leaf_grad():
    """A leaf whose gradient arrives twice through views of other layouts
    (reversed, transposed): the accumulator sorts the target's dims by
    |stride|; each element still gets one addition, in the order of uses."""
    rng = np.random.default_rng(3)
    xa = rng.normal(size=(6, 9, 5)).astype(np.float32)
    x = tg.from_numpy(xa)
    x.requires_grad = True
    s = [rng.normal(size=sh).astype(np.float32) for sh in [(6, 9, 5), (5, 9, 6), (6, 9, 5)]]
    outs = [x * 1.0, x.permute(2, 1, 0), x[:, ::-1, :]]
    (g,) = tg.grad(outs, [x], [tg.from_numpy(a) for a in s])
    want = s[0] + s[1].transpose(2, 1, 0) + s[2][:, ::-1, :]
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6, atol=1e-6)
    x.grad = None  # .grad accumulated in place, one backward after the other
    (x.permute(2, 1, 0) * tg.from_numpy(s[1])).sum().backward()
    (x.permute(1, 0, 2)[::-1] * tg.from_numpy(s[2].transpose(1, 0, 2)[::-1].copy())).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), s[1].transpose(2, 1, 0) + s[2])


@pytest.mark.parametrize("n", list(range(1, 70)) + [95, 96, 97, 127, 128, 129])
def test_max_of_short_rows_is_numpys(n):
    """tg.max along the last axis (the vector max of vmath.h, also a
    softmax row's first pass) for every row length around the vector widths
    (4, 8, 16 lanes, pairs of them, and the single vector after the pairs),
    with the maximum and a NaN at every position class."""
    rng = np.random.default_rng(n)
    a = rng.normal(size=(8, n)).astype(np.float32)
    for r in range(8):
        a[r, (r * 7) % n] = 5.0 + r  # the maximum at many positions
    np.testing.assert_array_equal(tg.from_numpy(a).max(-1).numpy(), a.max(-1))
    b = a.copy()
    b[3, n // 2] = np.nan
    b[5, n - 1] = np.nan
    got = tg.from_numpy(b).max(-1).numpy()
    assert np.isnan(got[3]) and np.isnan(got[5])
    keep = [0, 1, 2, 4, 6, 7]
    np.testing.assert_array_equal(got[keep], b[keep].max(-1))
    m = tg.from_numpy(a).min(-1).numpy()
    np.testing.assert_array_equal(m, a.min(-1))


@pytest.mark.parametrize("K", [1, 7, 8, 9, 17, 128, 513, 1030])
@pytest.mark.parametrize("affine", [0, 1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_layer_norm_float32_rows_against_float64(K, affine, threads):
    """layer_norm's float32 row loops (vmath's ln_*_f32, 8/16 floats a step):
    forward and all three gradients against the float64 formulas, for row
    lengths around the 8-lane steps and the 512-element chunks, with and
    without weight and bias; the same bits on one and two threads."""
    rng = np.random.default_rng(K * 4 + affine)
    M = 67
    x = (rng.normal(size=(M, K)) * 2 + 3).astype(np.float32)
    g = rng.normal(size=(M, K)).astype(np.float32)
    w = rng.normal(size=K).astype(np.float32) if affine & 1 else None
    b = rng.normal(size=K).astype(np.float32) if affine & 2 else None

    def run():
        X = tg.from_numpy(x)
        X.requires_grad = True
        ins = [X]
        W = B = None
        if w is not None:
            W = tg.from_numpy(w)
            W.requires_grad = True
            ins.append(W)
        if b is not None:
            B = tg.from_numpy(b)
            B.requires_grad = True
            ins.append(B)
        y = tg.nn.functional.layer_norm(X, (K,), W, B, 1e-5)
        return [y.detach().numpy()] + [t.numpy() for t in tg.grad(y, ins, tg.from_numpy(g))]

    got = with_threads(threads, run)
    other = with_threads(3 - threads, run)
    for a, c in zip(got, other):
        np.testing.assert_array_equal(a, c)
    xd, gd = x.astype(np.float64), g.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((xd - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xh = (xd - mu) * r
    wd = np.ones(K) if w is None else w.astype(np.float64)
    y = xh * wd + (0 if b is None else b.astype(np.float64))
    gx = gd * wd
    dx = r * (gx - gx.mean(-1, keepdims=True) - xh * (gx * xh).mean(-1, keepdims=True))
    want = [y, dx] + ([(gd * xh).sum(0)] if w is not None else []) + ([gd.sum(0)] if b is not None else [])
    scale = [1, 1 + r.max(), M, M]
    for i, (a, c) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, c, rtol=0, atol=2e-5 * scale[min(i, 3)] * max(1, np.sqrt(K) / 8))


@pytest.mark.parametrize("shape", [(1,), (15,), (17,), (3, 5, 33), (16, 64, 512)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gelu_with_saved_derivative_has_the_fused_kernels_bits(shape, threads):
    """A recorded float32 gelu of a contiguous x computes its derivative in
    the forward pass and the backward multiplies by it: the output and the
    gradient have the bits of the other routes (a transposed x takes the
    separate forward and the fused gradient kernel; no_grad the plain
    forward), on one and two threads."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.normal(size=shape) * 3).astype(np.float32)
    x.flat[0] = 0.0
    if x.size > 4:
        x.flat[1:5] = [-0.0, 5.6, -5.6, 40.0]
    g = rng.normal(size=shape).astype(np.float32)

    def fast():
        X = tg.from_numpy(x)
        X.requires_grad = True
        y = X.gelu()
        (gx,) = tg.grad(y, [X], tg.from_numpy(g))
        return y.detach().numpy(), gx.numpy()

    def strided():  # the same values through a strided (non-contiguous) view
        big = np.zeros(2 * x.size, dtype=np.float32)
        big[::2] = x.ravel()
        X = tg.from_numpy(big)
        X.requires_grad = True
        v = X[::2]
        assert x.size == 1 or not v.is_contiguous
        y = v.gelu()
        (gx,) = tg.grad(y, [X], tg.from_numpy(g.ravel()))
        return y.detach().numpy().reshape(shape), gx.numpy()[::2].reshape(shape)

    y1, g1 = with_threads(threads, fast)
    y2, g2 = with_threads(threads, strided)
    with tg.no_grad():
        y3 = tg.from_numpy(x).gelu().numpy()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(g1, g2)
    y4, g4 = with_threads(3 - threads, fast)
    np.testing.assert_array_equal(y1, y4)
    np.testing.assert_array_equal(g1, g4)


def test_gelu_saved_derivative_keeps_second_derivatives():
    """create_graph still differentiates the formula written with ops (the
    saved derivative is used only for a first-order backward): the first and
    second derivatives against float64."""
    from math import erf, exp, pi, sqrt
    xs = np.array([-3.0, -1.2, -0.3, 0.0, 0.4, 1.7, 4.0], dtype=np.float32)
    X = tg.from_numpy(xs)
    X.requires_grad = True
    (d1,) = tg.grad(X.gelu().sum(), [X], create_graph=True)
    (d2,) = tg.grad(d1.sum(), [X])
    phi = np.array([exp(-v * v / 2) / sqrt(2 * pi) for v in xs.astype(np.float64)])
    Phi = np.array([(1 + erf(v / sqrt(2))) / 2 for v in xs.astype(np.float64)])
    np.testing.assert_allclose(d1.detach().numpy(), Phi + xs * phi, atol=2e-6)
    np.testing.assert_allclose(d2.numpy(), phi * (2 - xs.astype(np.float64) ** 2), atol=2e-5)
