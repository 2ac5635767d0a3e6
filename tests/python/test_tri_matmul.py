"""The internal op tri_matmul: a matrix product with a triangle.

``tg._C._op_apply("tri_matmul", [a, b], "i0=MODE")`` is, in the last two
dims (batch dims broadcast as matmul's):

    i0=0  tril(a @ b)       i0=1  triu(a @ b)
    i0=2  tril(a) @ b       i0=3  triu(a) @ b

computed by a GEMM path that skips the tiles and products outside the
triangle; causal attention uses it for both of its products (the scores
q k^T with the keys j > i dropped, and the weights, 0 there, times v).
Skipping work is only right if nothing outside the triangle can reach the
result, so the tests check, on every GEMM path this CPU can run:

- the values against a float64 NumPy reference (np.tril / np.triu with the
  product) within the float64 rounding bound 2 (K + 4) eps |a||b|, for M, N,
  K on both sides of the micro-kernel tiles, K over several cache blocks,
  batched and broadcast operands, transposed, step-sliced and reversed views,
  float32, float64 and mixed; the output entries outside the triangle are
  exactly 0 (modes 0/1, even when the unused operand parts hold inf or NaN),
  and a's entries outside the triangle are never read (modes 2/3: NaN and
  inf there change nothing);
- the same bits on one and on two threads, forward and backward, for a big
  batch of attention-sized items and for one large product;
- the gradients: the VJP formulas in NumPy (dA exactly 0 outside a's triangle
  for modes 2/3), central finite differences in float64, second order
  (gradgradcheck), PyTorch's tril/triu formulation, and the tape entry
  (op name, mode, check_entry);
- the errors: a bad mode (also one that a cast to int would make valid),
  1-D operands, mismatched inner or batch dims, integer dtypes, each
  naming tri_matmul;
- the inputs are left as they were, and nothing outlives a dropped result
  (tensor memory, reference counts, the read-only hold of a live graph on
  its inputs), for tri_matmul and for causal attention;
- scaled_dot_product_attention with is_causal=True records tri_matmul twice,
  masked_softmax once and no matmul, and still gives the attention of a
  float64 reference (L < S, L == S, L > S), with the gradients of PyTorch and
  of finite differences.
"""
import gc
import sys

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import check_entry, gradcheck, gradgradcheck

from assertions import raises

MODES = [0, 1, 2, 3]
DTYPES = [np.float32, np.float64]
sdpa = tg.nn.functional.scaled_dot_product_attention


def tri(a, b, mode):
    return tg._C._op_apply("tri_matmul", [a, b], f"i0={mode}")


def _keep(rows, cols, mode):
    """The kept triangle of a rows x cols matrix: j <= i (modes 0, 2) or
    j >= i (modes 1, 3)."""
    i, j = np.ogrid[:rows, :cols]
    return np.broadcast_to(j <= i if mode % 2 == 0 else j >= i, (rows, cols))


def _masked(x, mode):
    """x (float64) with the entries outside the triangle of its last two dims
    set to 0 (np.tril / np.triu, also where x holds NaN or inf)."""
    return np.where(_keep(x.shape[-2], x.shape[-1], mode), x.astype(np.float64), 0.0)


def _reference(a, b, mode):
    """(the exact result in float64, |a| |b| of what is multiplied for the
    rounding bound, the kept part of the output or None)."""
    b64 = b.astype(np.float64)
    if mode < 2:
        a64 = a.astype(np.float64)
        full = a64 @ b64
        keep = _keep(full.shape[-2], full.shape[-1], mode)
        return np.where(keep, full, 0.0), np.abs(a64) @ np.abs(b64), keep
    am = _masked(a, mode)
    return am @ b64, np.abs(am) @ np.abs(b64), None


def _bound(k, mag, dtype):
    return 2 * (k + 4) * np.finfo(dtype).eps * mag + 1e-300


def _check_values(got, a, b, mode, dtype, what=""):
    """got (NumPy) is tri_matmul(a, b, mode): dtype, shape, exact zeros
    outside the output's triangle (modes 0/1), within the rounding bound."""
    want, mag, keep = _reference(a, b, mode)
    assert got.dtype == dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    if keep is not None:
        outside = got[..., ~keep]
        assert np.all(outside == 0), (what, mode, "nonzero outside the triangle", outside[outside != 0][:5])
    err = np.abs(got.astype(np.float64) - want)
    bound = _bound(a.shape[-1], mag, dtype)
    ok = err <= bound  # False where got is NaN
    if not np.all(ok):
        idx = np.unravel_index(int(np.argmax(np.where(ok, -np.inf, np.nan_to_num(err, nan=np.inf)))),
                               err.shape)
        raise AssertionError(f"{what} mode {mode}: at {idx} got {got[idx]!r}, want {want[idx]!r} "
                             f"(bound {bound[idx]:.3g}); {int((~ok).sum())} of {ok.size} elements off")


def _operand(x, how):
    """x as a tapegrad operand laid out as `how` says (the same values)."""
    if how == "rows":
        return tg.from_numpy(np.ascontiguousarray(x))
    if how == "cols":       # a transposed view: the last dim has the larger stride
        return tg.from_numpy(np.ascontiguousarray(np.swapaxes(x, -1, -2))).swapaxes(-1, -2)
    if how == "step":       # every other element of wider rows
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return tg.from_numpy(big)[..., ::2]
    if how == "flip":       # rows in reverse memory order (negative stride)
        return tg.from_numpy(np.ascontiguousarray(np.flip(x, -2))).flip(-2)
    raise ValueError(how)


def _data(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _poison(a, mode, rng):
    """a copy of a with NaN, inf and -inf outside the triangle modes 2/3 keep."""
    a = a.copy()
    out = ~_keep(a.shape[-2], a.shape[-1], mode)
    vals = rng.choice(np.array([np.nan, np.inf, -np.inf], a.dtype), size=a.shape)
    a[..., out] = vals[..., out]
    return a


def _leaf(x):
    t = tg.from_numpy(np.ascontiguousarray(x).copy())
    t.requires_grad = True
    return t


def _unbroadcast(x, shape):
    """Sum x down to `shape` (a broadcast operand's gradient)."""
    x = x.sum(axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and x.shape[d] != 1)
    return x.sum(axis=axes, keepdims=True) if axes else x


# ---- values on every GEMM path --------------------------------------------

SIZES = [1, 2, 7, 8, 9, 31, 33, 64, 65, 100, 130]
SHAPES = [  # M, N, K: each size on each side of the tiles, square and not
    (1, 1, 1), (1, 7, 9), (7, 1, 8), (2, 2, 2), (8, 8, 8), (9, 7, 2), (7, 9, 31), (31, 33, 9),
    (33, 31, 64), (64, 64, 65), (65, 64, 33), (64, 65, 100), (100, 130, 7), (130, 100, 64),
    (1, 130, 33), (130, 2, 65), (9, 100, 130), (130, 130, 1),
]
assert {s for mnk in SHAPES for s in mnk} == set(SIZES)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_values_match_the_float64_reference(gemm_path, m, n, k, mode, dtype):
    rng = np.random.default_rng(m * 10000 + n * 100 + k)
    a, b = _data(rng, (m, k), dtype), _data(rng, (k, n), dtype)
    with tg.no_grad():
        got = tri(tg.from_numpy(a), tg.from_numpy(b), mode).numpy()
    _check_values(got, a, b, mode, dtype, (gemm_path, m, n, k))


BIG_SHAPES = [  # K over two and three cache blocks; M and N over several blocks of rows/columns
    (64, 64, 700), (33, 65, 1500), (130, 100, 700), (9, 31, 1500), (260, 230, 40), (200, 300, 520),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n,k", BIG_SHAPES)
def test_values_over_several_cache_blocks(gemm_path, m, n, k, mode, dtype):
    rng = np.random.default_rng(m + n + k)
    a, b = _data(rng, (m, k), dtype), _data(rng, (k, n), dtype)
    with tg.no_grad():
        got = tri(tg.from_numpy(a), tg.from_numpy(b), mode).numpy()
    _check_values(got, a, b, mode, dtype, (gemm_path, m, n, k))


BATCHES = [  # batch shapes of a and b, broadcast as np.matmul does
    ((3, 2), (2,)), ((1,), (4,)), ((2, 1), (3,)), ((), (2, 3)), ((5,), (5,)), ((2, 3), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("m,n,k", [(9, 33, 31), (65, 8, 64), (7, 100, 9)])
@pytest.mark.parametrize("ba,bb", BATCHES, ids=[f"{x}@{y}" for x, y in BATCHES])
def test_batched_and_broadcast(gemm_path, ba, bb, m, n, k, dtype):
    rng = np.random.default_rng(len(ba) * 100 + m)
    a, b = _data(rng, ba + (m, k), dtype), _data(rng, bb + (k, n), dtype)
    for mode in MODES:
        with tg.no_grad():
            got = tri(tg.from_numpy(a), tg.from_numpy(b), mode).numpy()
        assert got.shape == np.matmul(a, b).shape
        _check_values(got, a, b, mode, dtype, (gemm_path, ba, bb, m, n, k))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(33, 31, 64), (9, 65, 7), (2, 64, 64, 33)],
                         ids=["33x31x64", "9x65x7", "batch2-64x64x33"])
@pytest.mark.parametrize("how_b", ["rows", "cols", "step"])
@pytest.mark.parametrize("how_a", ["rows", "cols", "step", "flip"])
def test_transposed_strided_and_reversed_views(gemm_path, how_a, how_b, shape, dtype):
    *batch, m, n, k = shape
    batch = tuple(batch)
    rng = np.random.default_rng(m * n + k)
    a, b = _data(rng, batch + (m, k), dtype), _data(rng, batch + (k, n), dtype)
    for mode in MODES:
        with tg.no_grad():
            got = tri(_operand(a, how_a), _operand(b, how_b), mode).numpy()
        _check_values(got, a, b, mode, dtype, (gemm_path, how_a, how_b, shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("how_a", ["rows", "cols", "step"])
@pytest.mark.parametrize("shape", [(8, 8, 8), (33, 31, 64), (65, 9, 100), (7, 64, 130), (3, 2, 31, 33, 9)],
                         ids=["8", "33x31x64", "65x9x100", "7x64x130", "batched"])
@pytest.mark.parametrize("mode", [2, 3])
def test_nan_and_inf_outside_the_triangle_of_a_are_never_read(gemm_path, mode, shape, how_a, dtype):
    *batch, m, n, k = shape
    batch = tuple(batch)
    rng = np.random.default_rng(m + 7 * k)
    a = _poison(_data(rng, batch + (m, k), dtype), mode, rng)
    b = _data(rng, (k, n), dtype)
    assert not np.all(np.isfinite(a)) or min(m, k) == 1
    with tg.no_grad():
        got = tri(_operand(a, how_a), tg.from_numpy(b), mode).numpy()
    assert np.all(np.isfinite(got)), (gemm_path, mode, shape, how_a)
    _check_values(got, a, b, mode, dtype, (gemm_path, "poisoned", how_a, shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("m,n,k", [(9, 40, 17), (33, 130, 64), (2, 65, 8), (64, 100, 700)])
@pytest.mark.parametrize("mode", [0, 1])
def test_outside_the_output_triangle_is_zero_even_from_inf_and_nan(gemm_path, mode, m, n, k, dtype):
    """tril(a @ b): b's columns j >= M meet only dropped outputs (triu: a's
    rows i >= N); inf and NaN there give 0 outside the triangle, never NaN
    (dropped as torch.tril drops them, not multiplied by a 0 mask), and the
    kept outputs stay right."""
    if mode == 1:  # the transposed problem: a has more rows than b has columns
        m, n = n, m
    rng = np.random.default_rng(m + n + k)
    a, b = _data(rng, (m, k), dtype), _data(rng, (k, n), dtype)
    if mode == 0:
        b[:, m:] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), size=b[:, m:].shape)
    else:
        a[n:, :] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), size=a[n:, :].shape)
    with tg.no_grad():
        got = tri(tg.from_numpy(a), tg.from_numpy(b), mode).numpy()
    keep = _keep(m, n, mode)
    assert np.all(got[~keep] == 0), (gemm_path, mode, m, n, k)
    # the kept outputs read only finite entries: the reference with the others set to 0
    a0, b0 = (np.nan_to_num(x.astype(np.float64), nan=0, posinf=0, neginf=0) for x in (a, b))
    want, mag = np.where(keep, a0 @ b0, 0.0), np.abs(a0) @ np.abs(b0)
    assert np.all(np.abs(got - want) <= _bound(k, mag, dtype)), (gemm_path, mode, m, n, k)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("da,db", [(np.float32, np.float64), (np.float64, np.float32)],
                         ids=["f32@f64", "f64@f32"])
def test_mixed_precision_promotes_to_float64(da, db, mode):
    rng = np.random.default_rng(11)
    a, b = _data(rng, (2, 33, 17), da), _data(rng, (17, 40), db)
    with tg.no_grad():
        got = tri(tg.from_numpy(a), tg.from_numpy(b), mode).numpy()
    assert got.dtype == np.float64 == np.result_type(a, b)
    _check_values(got, a, b, mode, np.float64, "mixed")


# ---- threads ------------------------------------------------------------------

THREAD_CASES = [  # a and b shapes: attention-sized items in a big batch, one large product
    ((16, 4, 64, 32), (16, 4, 32, 64)), ((16, 4, 64, 64), (16, 4, 64, 32)), ((300, 300), (300, 300)),
    ((300, 520), (520, 301)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", THREAD_CASES, ids=["scores", "weights-v", "300", "300x520x301"])
def test_same_bits_on_one_and_two_threads(gemm_path, sa, sb, mode, dtype):
    rng = np.random.default_rng(len(sa) + sa[-1])
    a, b = _data(rng, sa, dtype), _data(rng, sb, dtype)
    g = _data(rng, np.matmul(a, b).shape, dtype)
    before = tg.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            assert tg.get_num_threads() == n
            ta, tb = _leaf(a), _leaf(b)
            y = tri(ta, tb, mode)
            da, db = tg.grad(y, [ta, tb], tg.from_numpy(g))
            runs.append([x.numpy().tobytes() for x in (y, da, db)])
            if n == 1:
                _check_values(y.numpy(), a, b, mode, dtype, (gemm_path, "threads", sa))
    finally:
        tg.set_num_threads(before)
    for name, one, two in zip(("output", "dA", "dB"), *runs):
        assert one == two, (gemm_path, name, sa, sb, mode)


# ---- gradients ------------------------------------------------------------------


def _vjp_reference(a, b, g, mode):
    """(dA, dB, |dA| bound terms, |dB| bound terms) of the spec's VJP in float64,
    summed down to the operands' shapes."""
    a64, b64, g64 = (x.astype(np.float64) for x in (a, b, g))
    bt, at = np.swapaxes(b64, -1, -2), np.swapaxes(a64, -1, -2)
    if mode < 2:
        gm = _masked(g64, mode)
        da, da_mag = gm @ bt, np.abs(gm) @ np.abs(bt)
        db, db_mag = at @ gm, np.abs(at) @ np.abs(gm)
    else:
        keep = _keep(a.shape[-2], a.shape[-1], mode)
        da, da_mag = np.where(keep, g64 @ bt, 0.0), np.where(keep, np.abs(g64) @ np.abs(bt), 0.0)
        amt = np.swapaxes(_masked(a64, mode), -1, -2)
        db, db_mag = amt @ g64, np.abs(amt) @ np.abs(g64)
    return (_unbroadcast(da, a.shape), _unbroadcast(db, b.shape),
            _unbroadcast(da_mag, a.shape), _unbroadcast(db_mag, b.shape))


GRAD_SHAPES = [  # a, b
    ((9, 31), (31, 33)), ((33, 8), (8, 7)), ((65, 64), (64, 65)), ((3, 2, 7, 9), (2, 9, 31)),
    ((1, 33, 17), (4, 17, 9)), ((40, 130), (130, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", GRAD_SHAPES, ids=[f"{x}@{y}" for x, y in GRAD_SHAPES])
def test_gradients_are_the_vjp_formulas(gemm_path, sa, sb, mode, dtype):
    rng = np.random.default_rng(sa[-1] * 7 + sb[-1])
    a, b = _data(rng, sa, dtype), _data(rng, sb, dtype)
    g = _data(rng, np.matmul(a, b).shape, dtype)
    ta, tb = _leaf(a), _leaf(b)
    y = tri(ta, tb, mode)
    _check_values(y.numpy(), a, b, mode, dtype, (gemm_path, "forward", sa, sb))
    da, db = (x.numpy() for x in tg.grad(y, [ta, tb], tg.from_numpy(g)))
    want_a, want_b, mag_a, mag_b = _vjp_reference(a, b, g, mode)
    assert da.shape == a.shape and db.shape == b.shape and da.dtype == db.dtype == dtype
    # a broadcast operand's gradient sums nbatch products: m * nbatch terms in all
    nbatch = int(np.prod(np.matmul(a, b).shape[:-2], dtype=np.int64))
    n, m = g.shape[-1], g.shape[-2]
    assert np.all(np.abs(da - want_a) <= _bound(n * nbatch, mag_a, dtype)), \
        (gemm_path, "dA", mode, np.abs(da - want_a).max())
    assert np.all(np.abs(db - want_b) <= _bound(m * nbatch, mag_b, dtype)), \
        (gemm_path, "dB", mode, np.abs(db - want_b).max())
    if mode >= 2:  # the entries of a that are never read get no gradient at all
        out = ~_keep(a.shape[-2], a.shape[-1], mode)
        assert np.all(da[..., out] == 0), (gemm_path, mode, "dA outside a's triangle")


@pytest.mark.parametrize("mode", [2, 3])
def test_gradient_of_b_ignores_nan_outside_the_triangle_of_a(mode):
    """dB = mask(a)^T g: a's unread entries stay out of the backward too."""
    rng = np.random.default_rng(21)
    for sa, sb in (((33, 40), (40, 9)), ((2, 9, 65), (65, 31))):
        a = _poison(_data(rng, sa, np.float64), mode, rng)
        b = _data(rng, sb, np.float64)
        g = _data(rng, np.matmul(np.zeros(sa), b).shape, np.float64)
        ta, tb = _leaf(a), _leaf(b)
        y = tri(ta, tb, mode)
        assert np.all(np.isfinite(y.numpy()))
        da, db = (x.numpy() for x in tg.grad(y, [ta, tb], tg.from_numpy(g)))
        want_a, want_b, mag_a, mag_b = _vjp_reference(a, b, g, mode)
        assert np.all(np.isfinite(da)) and np.all(np.isfinite(db)), (mode, sa)
        assert np.all(np.abs(da - want_a) <= _bound(g.shape[-1], mag_a, np.float64)), (mode, sa)
        assert np.all(np.abs(db - want_b) <= _bound(2 * g.shape[-2], mag_b, np.float64)), (mode, sa)


FD_SHAPES = [  # small float64 cases: square, wide, tall, batched and broadcast
    ((4, 4), (4, 4)), ((3, 5), (5, 6)), ((6, 2), (2, 3)), ((2, 1, 3, 4), (3, 4, 2)), ((1, 4, 3), (2, 3, 5)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", FD_SHAPES, ids=[f"{x}@{y}" for x, y in FD_SHAPES])
def test_gradcheck_against_finite_differences(sa, sb, mode):
    rng = np.random.default_rng(len(sa) * 10 + sa[-1] + mode)
    a, b = _leaf(rng.standard_normal(sa)), _leaf(rng.standard_normal(sb))
    # tri_matmul is linear in each operand: central differences are exact up to rounding
    assert gradcheck(lambda x, y: tri(x, y, mode), [a, b], eps=1e-3, atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 4, 3), (1, 3, 2))], ids=["3x4@4x5", "batched"])
def test_second_order(sa, sb, mode):
    rng = np.random.default_rng(31 + mode)
    a, b = _leaf(rng.standard_normal(sa)), _leaf(rng.standard_normal(sb))
    assert gradgradcheck(lambda x, y: tri(x, y, mode), [a, b], eps=1e-3, atol=1e-9, rtol=1e-8)
    # and through a nonlinear use, where the second derivative is not zero
    assert gradgradcheck(lambda x, y: tri(x, y, mode).tanh(), [a, b])


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", [((7, 9), (9, 5)), ((5, 9), (9, 7)), ((2, 3, 8, 6), (3, 6, 8))],
                         ids=["tall", "wide", "broadcast"])
def test_matches_torch(torch, sa, sb, mode, dtype, tol):
    rng = np.random.default_rng(41 + mode)
    a, b = _data(rng, sa, dtype), _data(rng, sb, dtype)
    if mode >= 2:
        a = _poison(a, mode, rng)
    g = _data(rng, np.matmul(np.zeros(sa), b).shape, dtype)
    ta, tb = _leaf(a), _leaf(b)
    y = tri(ta, tb, mode)
    y.backward(tg.from_numpy(g))
    xa, xb = (torch.from_numpy(x.copy()).requires_grad_(True) for x in (a, b))
    fn = torch.tril if mode % 2 == 0 else torch.triu
    yt = fn(xa @ xb) if mode < 2 else fn(xa) @ xb
    yt.backward(torch.from_numpy(g))
    assert np.all(np.isfinite(yt.detach().numpy()))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ta.grad.numpy(), xa.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(tb.grad.numpy(), xb.grad.numpy(), rtol=tol, atol=tol)
    if mode >= 2:
        assert np.all(ta.grad.numpy()[..., ~_keep(sa[-2], sa[-1], mode)] == 0)


@pytest.mark.parametrize("mode", MODES)
def test_recorded_on_the_tape_like_any_op(mode):
    rng = np.random.default_rng(51)
    a, b = _leaf(rng.standard_normal((2, 5, 4))), _leaf(rng.standard_normal((4, 6)))
    y = tri(a, b, mode)
    assert y.requires_grad and y.grad_fn is not None
    assert y.grad_fn.op == "tri_matmul" and y.grad_fn.params["i"][0] == mode
    r = check_entry(y.grad_fn)
    assert r.ok, r
    with tg.no_grad():
        z = tri(a, b, mode)
    assert z.grad_fn is None and not z.requires_grad
    np.testing.assert_array_equal(z.numpy(), y.numpy())
    # only one operand requires grad: the other gets none
    c = tg.from_numpy(rng.standard_normal((4, 6)))
    (da,) = tg.grad(tri(a, c, mode), [a], tg.from_numpy(np.ones((2, 5, 6))))
    want = _vjp_reference(a.numpy(), c.numpy(), np.ones((2, 5, 6)), mode)[0]
    np.testing.assert_allclose(da.numpy(), want, rtol=1e-13, atol=1e-13)


# ---- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [-1, 4, 5, 2**31, 2**32, 2**32 + 1, 2**32 + 2, -2**32, -2**32 + 3, 2**63 - 1])
def test_a_bad_mode_is_refused(mode):
    """Also the modes that a cast to int would turn into 0..3."""
    a, b = tg.from_numpy(np.ones((3, 4))), tg.from_numpy(np.ones((4, 5)))
    with raises(ValueError, "tri_matmul"):
        tri(a, b, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", [((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((), (4, 5))],
                         ids=["1d@2d", "2d@1d", "1d@1d", "0d@2d"])
def test_operands_of_fewer_than_two_dims_are_refused(sa, sb, mode):
    a, b = tg.from_numpy(np.ones(sa)), tg.from_numpy(np.ones(sb))
    with raises(ValueError, "tri_matmul"):
        tri(a, b, mode)


@pytest.mark.parametrize("mode", MODES)
def test_mismatched_dims_are_refused(mode):
    with raises(ValueError, "tri_matmul", "(3, 4)", "(5, 6)"):
        tri(tg.from_numpy(np.ones((3, 4))), tg.from_numpy(np.ones((5, 6))), mode)
    with raises(ValueError, "tri_matmul", "(2, 3, 4)", "(5, 3)"):  # b a transposed view of (3, 5)
        tri(tg.from_numpy(np.ones((2, 3, 4))), tg.from_numpy(np.ones((3, 5))).swapaxes(0, 1), mode)
    with raises(ValueError, "tri_matmul"):  # batch dims that do not broadcast
        tri(tg.from_numpy(np.ones((2, 3, 4))), tg.from_numpy(np.ones((3, 4, 5))), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("da,db", [(np.int64, np.int64), (np.int32, np.int32), (np.int64, np.float64),
                                   (np.float32, np.int32), (bool, bool)],
                         ids=["i64", "i32", "i64@f64", "f32@i32", "bool"])
def test_integer_operands_are_refused(da, db, mode):
    a, b = tg.from_numpy(np.ones((3, 4), da)), tg.from_numpy(np.ones((4, 5), db))
    with pytest.raises((TypeError, ValueError)) as info:
        tri(a, b, mode)
    assert "tri_matmul" in str(info.value)


# ---- inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "forward-backward"])
@pytest.mark.parametrize("how", ["rows", "cols"])
@pytest.mark.parametrize("mode", MODES)
def test_the_inputs_are_left_as_they_were(mode, how, grad):
    """tg.from_numpy shares the arrays' memory: any write would show."""
    rng = np.random.default_rng(61)
    a = rng.standard_normal((2, 33, 17))
    if mode >= 2:  # the unread entries of a too
        a = _poison(a, mode, rng)
    b = rng.standard_normal((17, 40))
    g = rng.standard_normal((2, 33, 40))
    mem_a = a if how == "rows" else np.ascontiguousarray(np.swapaxes(a, -1, -2))
    saved = [x.tobytes() for x in (mem_a, b, g)]
    ta = tg.from_numpy(mem_a) if how == "rows" else tg.from_numpy(mem_a).swapaxes(-1, -2)
    tb = tg.from_numpy(b)
    if grad:
        ta.requires_grad = True
        tb.requires_grad = True
        tri(ta, tb, mode).backward(tg.from_numpy(g))
    else:
        with tg.no_grad():
            tri(ta, tb, mode)
    assert [x.tobytes() for x in (mem_a, b, g)] == saved, (mode, how, grad)


def _leaves_nothing_alive(fn, inputs):
    """fn() dropped unused, and fn() differentiated and dropped, 20 times:
    tapegrad's live tensor memory and the inputs' reference counts as they
    were, and the inputs' memory writable again (a graph still alive holds
    it read-only)."""
    def run():
        y = fn()
        del y
        gc.collect()
        assert all(x.numpy().flags.writeable for x in inputs), "an input is still held by a graph"
        y = fn()
        d = tg.grad(y, list(inputs), tg.from_numpy(np.ones(y.shape, y.numpy().dtype)))
        del y, d
    run()  # warm up caches
    gc.collect()
    live = tg.memory_stats()["live_bytes"]
    refs = [sys.getrefcount(x) for x in inputs]
    for _ in range(20):
        run()
    gc.collect()
    assert [sys.getrefcount(x) for x in inputs] == refs
    assert all(x.numpy().flags.writeable for x in inputs), "an input is still held by a graph"
    assert tg.memory_stats()["live_bytes"] <= live, "tensor memory left alive"


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_left_alive(mode):
    rng = np.random.default_rng(65)
    a, b = _leaf(rng.standard_normal((2, 9, 7))), _leaf(rng.standard_normal((7, 5)))
    _leaves_nothing_alive(lambda: tri(a, b, mode), [a, b])


# ---- causal attention ---------------------------------------------------------------


def _ops(y):
    return [e.op for e in tg.inspect.BackwardStepper(y.sum()).order]


def _attention_reference(q, k, v, scale):
    """softmax(q k^T scale with -inf at keys j > query i) v, in float64."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) * scale
    s = np.where(_keep(s.shape[-2], s.shape[-1], 0), s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ v


ATTN_SHAPES = {  # q, k, v
    "L<S": ((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4)),
    "L>S": ((2, 3, 9, 8), (2, 3, 4, 8), (2, 3, 4, 6)),
    "L=S": ((2, 2, 33, 16), (2, 2, 33, 16), (2, 2, 33, 16)),
    "L<S-big": ((1, 2, 65, 32), (1, 2, 100, 32), (1, 2, 100, 33)),
    "L>S-big": ((2, 70, 24), (2, 31, 24), (2, 31, 9)),
    "broadcast": ((2, 1, 6, 8), (3, 10, 8), (3, 10, 5)),
}


@pytest.mark.parametrize("case", list(ATTN_SHAPES))
def test_causal_attention_records_two_tri_matmuls(case):
    rng = np.random.default_rng(71)
    q, k, v = (_leaf(rng.standard_normal(s)) for s in ATTN_SHAPES[case])
    ops = _ops(sdpa(q, k, v, is_causal=True))
    assert ops.count("tri_matmul") == 2, ops
    assert ops.count("masked_softmax") == 1, ops
    assert "matmul" not in ops, ops


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "not-causal"])
def test_attention_leaves_nothing_alive(causal):
    rng = np.random.default_rng(75)
    q, k, v = (_leaf(rng.standard_normal(s)) for s in ATTN_SHAPES["L<S"])
    _leaves_nothing_alive(lambda: sdpa(q, k, v, is_causal=causal), [q, k, v])


@pytest.mark.parametrize("scale", [None, 0.3], ids=["default-scale", "scale0.3"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(ATTN_SHAPES))
def test_causal_attention_values(gemm_path, case, dtype, tol, scale):
    rng = np.random.default_rng(81)
    arrs = [rng.standard_normal(s).astype(dtype) for s in ATTN_SHAPES[case]]
    s = 1 / np.sqrt(arrs[0].shape[-1]) if scale is None else scale
    with tg.no_grad():
        got = sdpa(*(tg.from_numpy(x) for x in arrs), is_causal=True,
                   **({} if scale is None else {"scale": scale})).numpy()
    want = _attention_reference(*arrs, s)
    assert got.dtype == dtype and got.shape == want.shape
    err = np.abs(got - want).max()
    assert err <= tol * max(1.0, np.abs(want).max()), (gemm_path, case, err)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(ATTN_SHAPES))
def test_causal_attention_matches_torch(torch, case, dtype, tol):
    rng = np.random.default_rng(91)
    arrs = [rng.standard_normal(s).astype(dtype) for s in ATTN_SHAPES[case]]
    g = [_leaf(a) for a in arrs]
    t = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrs]
    yg = sdpa(*g, is_causal=True)
    yt = torch.nn.functional.scaled_dot_product_attention(*t, is_causal=True)
    np.testing.assert_allclose(yg.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    seed = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yg.backward(tg.from_numpy(seed))
    yt.backward(torch.from_numpy(seed))
    for name, a, b in zip("qkv", g, t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=20 * tol, atol=20 * tol,
                                   err_msg=f"d{name} {case}")


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 5, 4), (2, 5, 3)), ((5, 3), (2, 3), (2, 4)),
                                    ((4, 2), (4, 2), (4, 3))], ids=["L<S", "L>S", "L=S"])
def test_causal_attention_gradcheck(shapes):
    rng = np.random.default_rng(101)
    q, k, v = (_leaf(rng.standard_normal(s)) for s in shapes)

    def f(q, k, v):
        return sdpa(q, k, v, is_causal=True)
    assert gradcheck(f, [q, k, v])
    assert gradgradcheck(f, [q, k, v])
    # the value too: the same float64 reference as above
    want = _attention_reference(q.numpy(), k.numpy(), v.numpy(), 1 / np.sqrt(shapes[0][-1]))
    np.testing.assert_allclose(f(q, k, v).numpy(), want, rtol=1e-12, atol=1e-12)
