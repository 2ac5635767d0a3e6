"""The logic ops of csrc/ops/logic.c (issue 14): logical_*, bitwise_* and
the operators & | ^ ~ << >>, isnan/isinf/isfinite, isclose/allclose and the
all/any reductions -- against NumPy and PyTorch, for every dtype, strided
inputs, and their errors.  None is differentiable."""
import numpy as np
import pytest

import tapegrad as tg

INTS = (np.int64, np.int32, np.uint8)
ALL = (np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8)
SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 1e-300])


def _ints(dt, shape, seed):
    rng = np.random.default_rng(seed)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    lo = 0 if dt == np.uint8 else -100
    return rng.integers(lo, 100, shape).astype(dt)


@pytest.mark.parametrize("da", ALL)
@pytest.mark.parametrize("db", ALL)
def test_logical_ops_take_any_dtype_and_give_bool(da, db):
    a, b = _ints(da, (3, 4), 1) % 3 == 0, _ints(db, (4,), 2)
    a = a.astype(da)
    ta, tb = tg.tensor(a), tg.tensor(b)
    for f, nf in ((tg.logical_and, np.logical_and), (tg.logical_or, np.logical_or),
                  (tg.logical_xor, np.logical_xor)):
        out = f(ta, tb)
        assert out.dtype == tg.bool
        np.testing.assert_array_equal(out.numpy(), nf(a, b))
    np.testing.assert_array_equal(tg.logical_not(ta.T).numpy(), np.logical_not(a.T))


def test_logical_ops_on_nan_and_signed_zero():
    x = tg.tensor(SPECIAL)
    np.testing.assert_array_equal(tg.logical_not(x).numpy(), np.logical_not(SPECIAL))  # NaN is true
    np.testing.assert_array_equal(x.logical_and(1).numpy(), np.logical_and(SPECIAL, 1))


@pytest.mark.parametrize("da", INTS + (np.bool_,))
@pytest.mark.parametrize("db", INTS + (np.bool_,))
def test_bitwise_ops_match_numpy(da, db):
    a, b = _ints(da, (2, 3, 4), 3), _ints(db, (3, 1), 4)
    ta, tb = tg.tensor(a), tg.tensor(b)
    for got, want in ((ta & tb, a & b), (ta | tb, a | b), (ta ^ tb, a ^ b), (~ta, ~a),
                      (tg.bitwise_and(ta, tb), np.bitwise_and(a, b)), (ta.bitwise_or(tb), a | b),
                      (tg.bitwise_not(ta[:, ::2]), ~a[:, ::2])):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("dt", INTS)
def test_shifts_match_numpy_including_out_of_range_counts(dt):
    bits = np.iinfo(dt).bits
    a = np.array([1, 3, 100, np.iinfo(dt).max, np.iinfo(dt).min, 0, 77], dt)
    if dt != np.uint8:
        a[-1] = -77
    b = np.array([0, 1, 3, bits - 1, 1, bits, bits + 3], dt)
    ta, tb = tg.tensor(a), tg.tensor(b)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((ta << tb).numpy(), np.left_shift(a, b))
        np.testing.assert_array_equal((ta >> tb).numpy(), np.right_shift(a, b))
        np.testing.assert_array_equal((ta << 2).numpy(), a << dt(2))
        np.testing.assert_array_equal(tg.right_shift(ta, tg.tensor(b).T).numpy(), a >> b)


def test_operators_with_python_scalars():
    i = tg.tensor([5, 6, 7])
    assert (i & 3).tolist() == [1, 2, 3] and (3 & i).tolist() == [1, 2, 3]
    assert (1 << i).tolist() == [32, 64, 128] and (i >> 1).tolist() == [2, 3, 3]
    m = tg.tensor([True, False, True])
    assert (m | False).dtype == tg.bool and (m ^ True).tolist() == [False, True, False]
    assert (m & 1).dtype == tg.int64  # a Python int next to bool: int64, as NumPy
    u = tg.tensor(np.array([0xF0], np.uint8))
    assert (u | 0x0F).dtype == tg.uint8 and (u | 0x0F).item() == 255


def test_bitwise_ops_refuse_floats_naming_the_op():
    f = tg.ones(2)
    for call, name in ((lambda: f & f, "bitwise_and"), (lambda: f | 1, "bitwise_or"),
                       (lambda: f ^ f, "bitwise_xor"), (lambda: ~f, "bitwise_not"),
                       (lambda: f << 1, "left_shift"), (lambda: tg.tensor([1]) >> f, "right_shift")):
        with pytest.raises(TypeError, match=f"{name}: not supported for dtype float"):
            call()
    with pytest.raises(TypeError, match="left_shift: not supported for dtype bool"):
        tg.tensor([True]) << tg.tensor([True])
    with pytest.raises(ValueError, match="bitwise_and.*broadcast|bitwise_and.*shape"):
        tg.tensor([1, 2]) & tg.tensor([1, 2, 3])


@pytest.mark.parametrize("dt", ALL)
def test_predicates(dt):
    a = SPECIAL.astype(dt) if dt in (np.float32, np.float64) else _ints(dt, (8,), 5)
    t = tg.tensor(a)
    for f, nf in ((tg.isnan, np.isnan), (tg.isinf, np.isinf), (tg.isfinite, np.isfinite)):
        out = f(t)
        assert out.dtype == tg.bool and out.shape == t.shape
        np.testing.assert_array_equal(out.numpy(), nf(a))
    np.testing.assert_array_equal(t.reshape(2, 4).T.isnan().numpy(), np.isnan(a.reshape(2, 4).T))


def test_predicates_against_torch():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, np.nan], [np.inf, -np.inf]], np.float32)
    t, tt = tg.tensor(a), torch.tensor(a)
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(getattr(tg, name)(t).numpy(), getattr(torch, name)(tt).numpy())
    b = np.array([[1.0, np.nan], [np.inf, 3.0]], np.float32)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.5, "atol": 0.0}):
        np.testing.assert_array_equal(tg.isclose(t, tg.tensor(b), **kw).numpy(),
                                      torch.isclose(tt, torch.tensor(b), **kw).numpy())
    x = np.array([[True, False, True], [True, True, True]])
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
        want = torch.all(torch.tensor(x), **kw) if kw else torch.all(torch.tensor(x))
        np.testing.assert_array_equal(tg.all(tg.tensor(x), **kw).numpy(), want.numpy())
        want = torch.any(torch.tensor(~x), **kw) if kw else torch.any(torch.tensor(~x))
        np.testing.assert_array_equal(tg.any(tg.tensor(~x), **kw).numpy(), want.numpy())


def test_isclose_and_allclose_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 5))
    b = a + rng.standard_normal((4, 5)) * 1e-3
    a[0, 0], b[0, 0] = np.nan, np.nan
    a[1, 1] = b[1, 1] = np.inf
    a[2, 2], b[2, 2] = np.inf, -np.inf
    for kw in ({}, {"rtol": 1e-2}, {"atol": 1e-2, "equal_nan": True}, {"rtol": 0, "atol": 0}):
        np.testing.assert_array_equal(tg.isclose(tg.tensor(a), tg.tensor(b), **kw).numpy(),
                                      np.isclose(a, b, **kw))
        assert tg.allclose(tg.tensor(a[3:]), tg.tensor(b[3:]), **kw) == np.allclose(a[3:], b[3:], **kw)
    assert tg.allclose(tg.tensor([1.0, 2.0]), 2.0) is False
    assert tg.tensor([1.0, 1.0]).allclose(1) is True
    assert tg.isclose(tg.tensor([1, 2]), tg.tensor(np.array([1, 3], np.uint8))).tolist() == [True, False]
    with pytest.raises(ValueError, match="isclose: rtol and atol must be >= 0"):
        tg.isclose(tg.ones(2), tg.ones(2), atol=-1)
    with pytest.raises(TypeError, match="isclose: rtol must be a number"):
        tg.isclose(tg.ones(2), tg.ones(2), rtol="a")


@pytest.mark.parametrize("dt", ALL)
def test_all_any_reductions(dt):
    a = _ints(dt, (2, 3, 4), 6)
    if dt != np.bool_:
        a = (a % 4).astype(dt)  # some zeros
    t = tg.tensor(a)
    for kw, nkw in (({}, {}), ({"axis": 1}, {"axis": 1}), ({"axis": (0, 2), "keepdims": True}, {"axis": (0, 2), "keepdims": True}),
                    ({"dim": -1, "keepdim": True}, {"axis": -1, "keepdims": True})):
        for f, nf in ((tg.all, np.all), (tg.any, np.any)):
            out = f(t, **kw)
            assert out.dtype == tg.bool
            np.testing.assert_array_equal(out.numpy(), nf(a, **nkw))
    np.testing.assert_array_equal(t.T.all(axis=0).numpy(), a.T.all(axis=0))
    assert tg.all(tg.zeros((0, 3))).item() is True and tg.any(tg.zeros((0, 3))).item() is False
    np.testing.assert_array_equal(tg.all(tg.zeros((0, 3)), axis=0).numpy(), [True] * 3)
    with pytest.raises(IndexError, match="all"):
        t.all(axis=5)


def test_logic_ops_never_require_grad_and_are_not_on_the_tape():
    x = tg.randn(3, requires_grad=True)
    for out in (tg.isnan(x), tg.isfinite(x), tg.logical_not(x), tg.logical_and(x, x), (x > 0).all(),
                tg.any(x), tg.isclose(x, x)):
        assert out.dtype == tg.bool and not out.requires_grad and out.grad_fn is None
    y = (x * x).sum()
    assert not tg.isnan(y).item()
    y.backward()
    assert x.grad is not None


def test_masks_from_logic_ops_drive_where_and_indexing():
    x = tg.tensor([1.0, float("nan"), 3.0, float("inf")])
    clean = tg.where(tg.isfinite(x), x, 0.0)
    assert clean.tolist() == [1.0, 0.0, 3.0, 0.0]
    assert x[tg.isfinite(x)].tolist() == [1.0, 3.0]
    assert x[~tg.isnan(x) & (x > 2)].tolist() == [3.0, float("inf")]
