"""The GEMM's narrow-product paths (issue 16, kernels/gemm.c).

A product whose B has at most four micro-panels of columns (N <= 128 with the
AVX-512 kernel's 32-wide tile, 64 with AVX2's 16: attention's 64 x 32 x 64
items) reads A in
place with the "direct" micro-kernel instead of packing it, and whole
micro-panel pieces of a transposed A or a row-major B are copied by a SIMD
helper.  Neither may change a bit: every element is the same sum of the same
products in the same order as on the packed path.  So each narrow product is
checked against the first columns of a product wide enough (N + 160 columns)
to take the packed path, bitwise, on every GEMM path this CPU can run, for
row-major, transposed, strided and reversed A, row-major and transposed B,
edge tiles in both directions, K = 1 and K past one cache block (several
K blocks: the direct kernel accumulates with beta = 1), float32 and float64,
and within the float64 rounding bound of the exact product.  (A product of at
most four columns whose A rows and B columns are contiguous is a set of dot
products instead, with the bits test_gemm_skinny.py checks.)
"""
import numpy as np
import pytest

import tapegrad as tg
from skinny_reference import dots_reference

WIDEN = 160  # extra columns: five more 32-wide panels, past the direct path's four


def _bound(a, b, dtype):
    k = a.shape[-1]
    eps = np.finfo(dtype).eps
    return 2 * (k + 4) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-300


def _view_a(a, how):
    """a (M, K) as a tapegrad operand laid out as `how` says."""
    if how == "rows":
        return tg.from_numpy(np.ascontiguousarray(a))
    if how == "cols":       # a transposed view: columns contiguous (rsa = 1)
        return tg.from_numpy(np.ascontiguousarray(a.T)).swapaxes(0, 1)
    if how == "strided":    # every other column of wider rows (csa = 2)
        big = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
        big[:, ::2] = a
        return tg.from_numpy(big)[:, ::2]
    if how == "reversed":   # rows in reverse memory order (rsa < 0)
        return tg.from_numpy(np.ascontiguousarray(a[::-1])).flip(0)
    raise ValueError(how)


def _view_b(b, how):
    if how == "rows":
        return tg.from_numpy(np.ascontiguousarray(b))
    return tg.from_numpy(np.ascontiguousarray(b.T)).swapaxes(0, 1)


SHAPES = [  # M, N, K
    (64, 32, 64), (64, 64, 32), (8, 32, 1), (13, 31, 9), (65, 33, 17), (9, 64, 200),
    (72, 2, 400), (40, 17, 193), (3, 50, 7), (40, 128, 50), (17, 100, 33), (200, 97, 12),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("how_b", ["rows", "cols"])
@pytest.mark.parametrize("how_a", ["rows", "cols", "strided", "reversed"])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_narrow_product_is_bitwise_the_packed_one(gemm_path, m, n, k, how_a, how_b, dtype):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    bw = rng.standard_normal((k, n + WIDEN)).astype(dtype)
    b = np.ascontiguousarray(bw[:, :n])
    with tg.no_grad():
        narrow = (_view_a(a, how_a) @ _view_b(b, how_b)).numpy()
        wide = (_view_a(a, how_a) @ _view_b(bw, how_b)).numpy()
    assert narrow.dtype == dtype and narrow.shape == (m, n)
    if n <= 4 and how_a in ("rows", "reversed") and how_b == "cols":
        # rows of A and columns of B contiguous, at most four columns: dot
        # products, in their own order (test_gemm_skinny.py), not the tile's
        assert narrow.tobytes() == dots_reference(a, b).tobytes(), (gemm_path, m, n, k)
    else:
        assert narrow.tobytes() == np.ascontiguousarray(wide[:, :n]).tobytes(), (gemm_path, m, n, k)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(narrow - want) <= _bound(a, b, dtype)), (gemm_path, np.abs(narrow - want).max())


BATCH_CASES = [  # (B, H, T, hs): attention's shapes and edge ones
    (16, 4, 64, 32), (1, 1, 64, 32), (2, 3, 13, 8), (3, 2, 65, 40), (5, 1, 9, 33),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bhts", BATCH_CASES)
def test_attention_products_and_gradients_item_by_item(gemm_path, bhts, dtype):
    """q @ k^T and a @ v on permuted views, forward and backward, batched:
    every item bitwise the product of that item alone, and right."""
    B, H, T, hs = bhts
    rng = np.random.default_rng(B * H * T + hs)
    q = rng.standard_normal((B, T, H, hs)).astype(dtype)
    k = rng.standard_normal((B, T, H, hs)).astype(dtype)
    v = rng.standard_normal((B, T, H, hs)).astype(dtype)
    tq, tk, tv = (tg.tensor(x, requires_grad=True) for x in (q, k, v))
    s = tq.permute(0, 2, 1, 3) @ tk.permute(0, 2, 3, 1)         # (B, H, T, T)
    y = s @ tv.permute(0, 2, 1, 3)                               # (B, H, T, hs)
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(tg.tensor(g))
    sn, yn = s.numpy(), y.numpy()
    with tg.no_grad():
        for bi, hi in {(0, 0), (B - 1, H - 1)}:
            qi = tg.tensor(q[bi, :, hi])
            ki = tg.tensor(k[bi, :, hi])
            one = (qi @ ki.swapaxes(0, 1)).numpy()
            assert one.tobytes() == np.ascontiguousarray(sn[bi, hi]).tobytes(), (bi, hi)
            one = (tg.tensor(sn[bi, hi]) @ tg.tensor(v[bi, :, hi])).numpy()
            assert one.tobytes() == np.ascontiguousarray(yn[bi, hi]).tobytes(), (bi, hi)
    q64, k64, v64 = (x.astype(np.float64).transpose(0, 2, 1, 3) for x in (q, k, v))
    g64 = g.astype(np.float64)                                   # already (B, H, T, hs)
    s64 = q64 @ np.swapaxes(k64, -1, -2)
    # forward against float64 (the bound uses the computed scores for y)
    assert np.all(np.abs(sn - s64) <= _bound(q64, np.swapaxes(k64, -1, -2), dtype))
    assert np.all(np.abs(yn - sn.astype(np.float64) @ v64) <= _bound(sn, v64, dtype))
    # gradients: dv = s^T g, ds = g v^T, dq = ds k, dk = ds^T q
    sd = sn.astype(np.float64)
    dv = np.swapaxes(sd, -1, -2) @ g64
    ds = g64 @ np.swapaxes(v64, -1, -2)
    dq, dk = ds @ k64, np.swapaxes(ds, -1, -2) @ q64
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for got, want in ((tv.grad, dv), (tq.grad, dq), (tk.grad, dk)):
        np.testing.assert_allclose(got.numpy(), want.transpose(0, 2, 1, 3), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_batched_products_same_bits_on_one_and_two_threads(dtype):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((24, 64, 64)).astype(dtype)
    b = rng.standard_normal((24, 64, 32)).astype(dtype)
    before = tg.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            ta = tg.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2))).swapaxes(-1, -2)
            with tg.no_grad():
                out.append(((ta @ tg.tensor(b)).numpy(), (tg.tensor(a) @ tg.tensor(b)).numpy()))
    finally:
        tg.set_num_threads(before)
    assert out[0][0].tobytes() == out[1][0].tobytes()
    assert out[0][1].tobytes() == out[1][1].tobytes()
    # transposed or row-major A: the same numbers, the same order, the same bits
    assert out[0][0].tobytes() == out[0][1].tobytes()
