"""conv2d's direct kernel for few input channels (csrc/kernels/conv_small.c).

float32 convolutions with stride 1, dilation 1, one group, kernels up to 8
wide and at most 4 input channels (any with TAPEGRAD_CONV=small) compute
their forward product and weight gradient along the output row, 16 lanes
at a time, instead of as a GEMM: the first layer of an image network.
TAPEGRAD_CONV=implicit keeps the GEMM.

The sums are the same products in another order, so each result is held to
the classic bound of a recursive sum, |y - y_ref| <= n * eps32 * S, with
y_ref the float64 product of the same float32 values, S the same product
of the absolute values and n the longest chain of additions: C*KH*KW + 1
(with the bias) for the forward pass; for the weight gradient a lane's sum
over one image's rows (OH * ceil(OW / 16)), the sum over the N images and
the 4 levels of the lanes' final tree.
"""
import os

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from kernel_paths import with_threads

EPS32 = float(np.finfo(np.float32).eps)


def _set(path):
    if path is None:
        os.environ.pop("TAPEGRAD_CONV", None)
    else:
        os.environ["TAPEGRAD_CONV"] = path


@pytest.fixture(autouse=True)
def _restore_path():
    old = os.environ.get("TAPEGRAD_CONV")
    yield
    _set(old)


def _products(path, x, w, b, g, pad):
    """y and dw of conv2d(x, w, b, padding=pad) for output gradient g, with
    TAPEGRAD_CONV=path (None: the default)."""
    _set(path)
    tw = tg.tensor(w, requires_grad=True)
    y = F.conv2d(tg.tensor(x), tw, None if b is None else tg.tensor(b), padding=pad)
    dw, = tg.grad(y, [tw], tg.tensor(g))
    return y.numpy(), dw.numpy()


def _case(seed, N, C, O, H, W, KH, KW, pad, bias=True):
    rng = np.random.default_rng(seed)
    pl, pr, pt, pb = pad if isinstance(pad, tuple) else (pad,) * 4
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, KH, KW)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32) if bias else None
    g = rng.standard_normal((N, O, OH, OW)).astype(np.float32)
    return x, w, b, g


def _check(seed, N, C, O, H, W, KH, KW, pad, bias=True):
    x, w, b, g = _case(seed, N, C, O, H, W, KH, KW, pad, bias)
    got = _products("small", x, w, b, g, pad)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    ref = _products("implicit", f64(x), f64(w), f64(b), f64(g), pad)
    absb = None if b is None else np.abs(f64(b))
    scale = _products("implicit", np.abs(f64(x)), np.abs(f64(w)), absb, np.abs(f64(g)), pad)
    OH, OW = g.shape[2], g.shape[3]
    chains = (C * KH * KW + 1, OH * -(-OW // 16) + N + 4)
    for name, a, r, s, n in zip(("forward", "weight gradient"), got, ref, scale, chains):
        err = np.abs(a.astype(np.float64) - r)
        assert np.all(err <= n * EPS32 * s + np.finfo(np.float32).tiny), \
            (name, float(np.max(err / (EPS32 * s + 1e-300))), n)
    return got


# (N, C, O, H, W, KH, KW, padding): the MNIST CNN's first layer; rows of
# outputs shorter than, equal to, and longer than the 16 lanes (1, 15, 16,
# 17, 33); 1-4 channels; output channels not a multiple of the blocks (1, 3,
# 6, 17); paddings 0..3, asymmetric ones; kernels 1..8 wide, not square;
# batch 1.
CASES = [
    (4, 1, 16, 28, 28, 5, 5, 2),
    (1, 1, 1, 1, 20, 1, 1, 0),
    (2, 2, 3, 5, 15, 3, 3, 0),
    (3, 3, 6, 9, 16, 3, 3, 1),
    (1, 4, 17, 7, 17, 5, 5, 2),
    (2, 1, 5, 6, 33, 2, 7, 3),
    (1, 2, 9, 4, 12, 4, 8, (3, 2, 0, 1)),  # left, right, top, bottom
    (2, 3, 4, 11, 5, 7, 1, (0, 0, 3, 3)),
    (1, 1, 16, 3, 3, 5, 5, 2),
    (5, 1, 32, 10, 40, 6, 4, (1, 2, 3, 0)),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_within_the_bound_of_the_float64_reference(case, bias):
    _check(sum(case[:7]), *case, bias=bias)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=st.integers(1, 3), C=st.integers(1, 4), O=st.integers(1, 20), H=st.integers(1, 12),
       W=st.integers(1, 40), KH=st.integers(1, 6), KW=st.integers(1, 8),
       pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 2**16))
def test_property_any_geometry_within_the_bound(N, C, O, H, W, KH, KW, pads, seed):
    pl, pr, pt, pb = pads
    if H + pt + pb < KH or W + pl + pr < KW:
        return
    _check(seed, N, C, O, H, W, KH, KW, pads)


def test_default_path_takes_it_up_to_four_channels():
    """Unset TAPEGRAD_CONV: the direct kernel's bits for 1..4 input channels
    (float32, stride 1), the GEMM's for 5 channels, for float64, a stride, a
    dilation or groups (where TAPEGRAD_CONV=small falls back to it too)."""
    for C in (1, 2, 4):
        x, w, b, g = _case(C, 2, C, 8, 9, 21, 5, 5, 2)
        default = _products(None, x, w, b, g, 2)
        small = _products("small", x, w, b, g, 2)
        for a, s in zip(default, small):
            np.testing.assert_array_equal(a, s)
    x, w, b, g = _case(5, 2, 5, 8, 9, 21, 5, 5, 2)
    for a, s in zip(_products(None, x, w, b, g, 2), _products("implicit", x, w, b, g, 2)):
        np.testing.assert_array_equal(a, s)
    # the GEMM where the kernel does not apply, with TAPEGRAD_CONV=small too
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 12, 19)).astype(np.float32)
    for kw in ({"stride": 2}, {"dilation": 2}, {"groups": 2}):
        w = rng.standard_normal((4, 2 // kw.get("groups", 1), 3, 3)).astype(np.float32)
        outs = []
        for p in ("small", "implicit"):
            _set(p)
            tw = tg.tensor(w, requires_grad=True)
            y = F.conv2d(tg.tensor(x), tw, padding=1, **kw)
            dw, = tg.grad(y, [tw], tg.ones_like(y))
            outs.append((y.numpy(), dw.numpy()))
        for a, s in zip(*outs):
            np.testing.assert_array_equal(a, s)
    x64, w64 = x.astype(np.float64), rng.standard_normal((3, 2, 9, 3))
    got = [_products(p, x64, w64, None, np.ones((2, 3, 4, 17)), 0) for p in ("small", "implicit")]
    for a, s in zip(*got):
        np.testing.assert_array_equal(a, s)  # float64 and a kernel 9 high: the GEMM


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x, w, b, g = _case(11, 8, 1, 16, 28, 28, 5, 5, 2)
    got = _products(None, x, w, b, g, 2)
    X, Wt, B = (torch.tensor(a) for a in (x, w, b))
    Wt.requires_grad_(True)
    Y = torch.nn.functional.conv2d(X, Wt, B, padding=2)
    Y.backward(torch.tensor(g))
    np.testing.assert_allclose(got[0], Y.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], Wt.grad.numpy(), rtol=1e-5, atol=3e-4)


@pytest.mark.parametrize("n", [1, 3, 32])
def test_bitwise_the_same_on_one_and_two_threads(n):
    """The forward pass splits the images, the weight gradient the output
    channels (4 per task, every image in each): no partial sums, so the
    same bits on any number of threads."""
    x, w, b, g = _case(n, n, 1, 16, 28, 28, 5, 5, 2)
    one = with_threads(1, lambda: _products(None, x, w, b, g, 2))
    two = with_threads(2, lambda: _products(None, x, w, b, g, 2))
    for a, s in zip(one, two):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("where", ["x", "x_row_end", "w", "dy"])
def test_non_finite_values_land_where_the_gemm_puts_them(where):
    """An inf or NaN reaches exactly the outputs whose sums hold it: the
    same pattern of inf, -inf and NaN as the GEMM path.  x_row_end: an inf
    in the input's last column with no right padding: only the kernel's
    last tap column meets it in a window, but the weight gradient's lanes
    past the row's end (OW = 18, not a multiple of 16) read it for the
    other taps too: those lanes must not be added (0 * inf would be NaN)."""
    pad = (2, 0, 2, 2) if where == "x_row_end" else 2
    x, w, b, g = _case(7, 2, 2, 5, 8, 20 if where == "x_row_end" else 18, 3, 5, pad)
    if where == "x":
        x[1, 0, 3, 4], x[0, 1, 6, 0] = np.inf, np.nan
    elif where == "x_row_end":
        x[:, :, :, -1] = np.inf
    elif where == "w":
        w[2, 1, 1, 3] = -np.inf
    else:
        g[0, 3, 2, 17] = np.inf
    small = _products("small", x, w, b, g, pad)
    gemm = _products("implicit", x, w, b, g, pad)
    for a, s in zip(small, gemm):
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(a), test(s))
    if where == "x_row_end":
        assert np.all(np.isfinite(small[1][..., :-1])) and not np.any(np.isfinite(small[1][..., -1]))


_ISA_SCRIPT = """
import json, os, numpy as np, tapegrad as tg
import tapegrad.nn.functional as F
os.environ["TAPEGRAD_CONV"] = "small"
rng = np.random.default_rng(8)
out = []
for (C, O, H, W, k, p) in ((1, 16, 28, 28, 5, 2), (3, 7, 9, 37, 3, 1), (2, 20, 6, 13, 7, 3)):
    x = rng.standard_normal((3, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, k, k)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    tw = tg.tensor(w, requires_grad=True)
    y = F.conv2d(tg.tensor(x), tw, tg.tensor(b), padding=p)
    dw, = tg.grad(y, [tw], tg.tensor(rng.standard_normal(y.shape).astype(np.float32)))
    out += [y.numpy().tobytes().hex(), dw.numpy().tobytes().hex()]
print(json.dumps([out, tg._C.kernel_report()]))
"""


def test_simd_builds_give_the_same_bits():
    """One C source compiled plain (16 floats, fmaf), for AVX2 (two ymm)
    and for AVX-512 (one zmm): the same fused multiply-adds in the same
    order, so the same bits whichever build runs; each SIMD build is checked
    against the plain one before first use and none is refused here."""
    import kernel_paths
    (best, report), _ = kernel_paths.run_in_fresh_process(_ISA_SCRIPT)
    assert "conv_small" not in report
    for disable in ("avx512", "avx512,avx2"):
        (got, report), _ = kernel_paths.run_in_fresh_process(
            _ISA_SCRIPT, TAPEGRAD_DISABLE_CPU_FEATURES=disable)
        assert "conv_small" not in report
        assert got == best, disable
