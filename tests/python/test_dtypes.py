"""The six dtypes (float32, float64, int64, bool, int32, uint8): promotion,
casts, zero-copy NumPy round trips, comparisons giving bool, masks, integer
arithmetic with NumPy's wrap-around, save/load -- and every registry op
called with inputs of every dtype (issue 14, "Dtypes").
"""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from op_reference import REFERENCES, examples

DTYPES = (np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8)
TG_DTYPES = (tg.float32, tg.float64, tg.int64, tg.bool, tg.int32, tg.uint8)
OPS = {op["name"]: op for op in tg.ops()}
CASES = [(name, k, ptext) for name, op in OPS.items() for (k, _t, ptext) in examples(op)]


def _values(dt, shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dt == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return (rng.standard_normal(shape) * 50).astype(dt)


# ---------------------------------------------------------------------------
# dtype objects, names, conversions
# ---------------------------------------------------------------------------

def test_dtype_objects_are_numpys():
    assert tg.bool is tg.bool_ and tg.bool == np.bool_
    assert (tg.int32, tg.uint8) == (np.dtype(np.int32), np.dtype(np.uint8))
    assert tg.dtype_names == ("float32", "float64", "int64", "bool", "int32", "uint8")
    assert [str(d) for d in TG_DTYPES] == list(tg.dtype_names)
    assert bool(1) is True  # tg's `bool` did not leak into builtins


def test_tensor_of_python_bools_is_bool():
    t = tg.tensor([True, False, True])
    assert t.dtype == tg.bool and t.tolist() == [True, False, True]
    assert tg.full((2,), True).dtype == tg.bool
    assert tg.zeros(3, dtype=tg.uint8).dtype == tg.uint8
    assert tg.tensor([1, 2], dtype=tg.int32).dtype == tg.int32
    assert "dtype=bool" in repr(t) and "True" in repr(t)
    assert "dtype=uint8" in repr(tg.tensor(np.array([255], np.uint8)))


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_astype_between_every_pair_is_numpys(src, dst):
    a = _values(src, (4, 5), seed=1)
    if src in (np.float32, np.float64):
        a = np.concatenate([a, np.array([[0.0, -0.0, 0.5, -1.5, 3.99]], src)], 0)
    t = tg.tensor(a)
    for view in (lambda x: x, lambda x: x.T):  # contiguous and strided
        got = view(t).astype(dst)
        assert got.dtype == np.dtype(dst)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = view(a).astype(dst)
        if src in (np.float32, np.float64) and dst in (np.int32, np.uint8):
            # in range of int64, NumPy truncates then wraps (C leaves it undefined)
            want = view(a).astype(np.int64).astype(dst)
        np.testing.assert_array_equal(got.numpy(), want)


def test_casts_that_wrap_and_truth():
    f = tg.tensor([0.0, -0.0, 0.25, float("nan"), -3.0, 300.0], dtype=tg.float64)
    assert f.astype(tg.bool).tolist() == [False, False, True, True, True, True]  # NaN is true
    assert tg.tensor([-1, 256, 257]).astype(tg.uint8).tolist() == [255, 0, 1]
    assert tg.tensor([2**31, -2**31 - 1]).astype(tg.int32).tolist() == [-2**31, 2**31 - 1]
    assert tg.tensor([True, False]).astype(tg.float32).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("dt", DTYPES)
def test_from_numpy_and_numpy_are_zero_copy(dt):
    a = _values(dt, (3, 4))
    t = tg.from_numpy(a)
    assert t.dtype == a.dtype
    assert np.shares_memory(t.numpy(), a)
    a[0, 0] = a[1, 1]
    assert t.numpy()[0, 0] == a[1, 1]
    back = np.asarray(memoryview(t))
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("dt", DTYPES)
def test_dlpack_round_trip(dt):
    a = _values(dt, (2, 3))
    t = tg.from_numpy(a)
    b = np.from_dlpack(t)
    assert b.dtype == a.dtype and np.shares_memory(a, b)
    t2 = tg.from_dlpack(a)
    assert t2.dtype == a.dtype
    np.testing.assert_array_equal(t2.numpy(), a)


@pytest.mark.parametrize("dt", DTYPES)
def test_save_load_round_trip(dt, tmp_path):
    a = _values(dt, (2, 5))
    tg.save({"x": tg.tensor(a)}, tmp_path / "x.tg")
    back = tg.load(tmp_path / "x.tg")["x"]
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back.numpy(), a)


def test_only_float_tensors_require_grad():
    for dt in (tg.bool, tg.int32, tg.uint8):
        with pytest.raises(TypeError, match=str(dt)):
            tg.zeros(2, dtype=dt).requires_grad_()


# ---------------------------------------------------------------------------
# comparisons, where, masks, reductions of bool
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_comparisons_give_bool(da, db):
    a, b = _values(da, (3, 4), 2), _values(db, (4,), 3)
    ta, tb = tg.tensor(a), tg.tensor(b)
    for got, want in ((ta == tb, a == b), (ta != tb, a != b), (ta < tb, a < b),
                      (ta <= tb, a <= b), (ta > tb, a > b), (ta >= tb, a >= b)):
        assert got.dtype == tg.bool and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)


def test_comparison_of_grad_tensors_does_not_require_grad():
    x = tg.randn(3, requires_grad=True)
    m = x > 0
    assert m.dtype == tg.bool and not m.requires_grad and m.grad_fn is None


def test_accuracy_code_keeps_working():
    pred = tg.tensor([1, 2, 3, 4])
    y = tg.tensor([1, 0, 3, 0])
    acc = (pred == y).mean()
    assert acc.dtype == tg.float64 and acc.item() == 0.5  # NumPy: the mean of bools is float64
    assert (pred == y).sum().dtype == tg.int64 and (pred == y).sum().item() == 2
    logits = tg.randn(5, 3)
    assert 0.0 <= (logits.argmax(1) == tg.tensor([0, 1, 2, 0, 1])).float().mean().item() <= 1.0


@pytest.mark.parametrize("dt", DTYPES)
def test_sum_and_mean_dtypes(dt):
    a = _values(dt, (3, 4), 4)
    t = tg.tensor(a)
    s, m = t.sum(), t.mean(axis=0)
    assert s.dtype == (np.sum(a).dtype if dt != np.uint8 else np.int64)  # NumPy: uint64; tapegrad has no uint64
    assert m.dtype == np.mean(a, axis=0).dtype
    np.testing.assert_allclose(s.numpy(), np.sum(a.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(m.numpy(), np.mean(a, axis=0), rtol=1e-6)
    assert t.max().dtype == t.dtype and t.max().item() == a.max()
    assert t.min(axis=1).tolist() == a.min(axis=1).tolist()
    assert t.argmax().item() == int(np.argmax(a))


@pytest.mark.parametrize("cdt", DTYPES)
def test_where_takes_any_condition(cdt):
    c = _values(cdt, (3, 4), 5)
    x, y = tg.randn(3, 4), tg.zeros(4)
    out = tg.where(tg.tensor(c), x, y)
    np.testing.assert_array_equal(out.numpy(), np.where(c, x.numpy(), y.numpy()))


def test_where_bool_condition_gradient():
    x = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    tg.where(x > 0, x * x, -x).sum().backward()
    xn = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), np.where(xn > 0, 2 * xn, -1.0))
    from tapegrad.testing import gradcheck
    assert gradcheck(lambda v: tg.where(v > 0, v * v, -v), (x,))


def test_boolean_mask_indexing():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = tg.tensor(a)
    m3 = a % 5 == 0
    for key in (tg.tensor(m3), m3, (tg.tensor(a[:, :, 0] > 3),), (slice(None), np.array([True, False, True])),
                (Ellipsis, np.array([True, False, False, True])), (0, [True, False, True]),
                (tg.tensor(a[:, 0, 0] > 0), 1)):
        k = key.numpy() if isinstance(key, tg.Tensor) else tuple(
            i.numpy() if isinstance(i, tg.Tensor) else i for i in key) if isinstance(key, tuple) else key
        np.testing.assert_array_equal(t[key].numpy(), a[k])


def test_boolean_mask_gradient_and_assignment():
    x = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    (x[x > 0] ** 2).sum().backward()
    xn = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), np.where(xn > 0, 2 * xn, 0.0))
    y = tg.tensor(np.arange(6.0).reshape(2, 3))
    y[y > 2] = -1.0
    assert y.tolist() == [[0.0, 1.0, 2.0], [-1.0, -1.0, -1.0]]
    with pytest.raises(IndexError, match="boolean index did not match"):
        y[tg.tensor([True, False, True])]


# ---------------------------------------------------------------------------
# integer arithmetic
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dt", (np.int32, np.uint8, np.int64))
def test_integer_arithmetic_wraps_like_numpy(dt):
    info = np.iinfo(dt)
    a = np.array([info.max, info.min, 7, 0, 100], dt)
    b = np.array([1, 1, 3, 5, 3], dt)
    ta, tb = tg.tensor(a), tg.tensor(b)
    with np.errstate(over="ignore"):
        for got, want in ((ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (-ta, -a), (abs(ta), np.abs(a)),
                          (tg.maximum(ta, tb), np.maximum(a, b)), (tg.minimum(ta, tb), np.minimum(a, b)),
                          (ta ** tb, a ** b), (ta + 1, a + dt(1)), (ta * 3, a * dt(3))):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got.numpy(), want)
    q = ta / tb
    assert q.dtype == tg.float64
    np.testing.assert_allclose(q.numpy(), a / b)
    assert (ta + 0.5).dtype == tg.float64  # a Python float next to ints: float64 (NumPy)


def test_integer_power_rules():
    i = tg.tensor(np.array([2, 3], np.int32))
    assert (i ** 2).dtype == tg.int32 and (i ** 2).tolist() == [4, 9]
    with pytest.raises(ValueError, match="pow: Integers to negative integer powers"):
        i ** -1
    with pytest.raises(ValueError, match="int32 exponent -2"):
        i ** tg.tensor(np.array([1, -2], np.int32))
    assert (i ** 0.5).dtype == tg.float64


def test_python_ints_out_of_range_for_small_ints_raise():
    u = tg.tensor(np.array([1, 2], np.uint8))
    with pytest.raises(OverflowError, match="uint8"):
        u + 256
    with pytest.raises(OverflowError, match="int32"):
        tg.tensor(np.array([1], np.int32)) * 2**31
    assert (u + 255).tolist() == [0, 1]


def test_bool_arithmetic_is_numpys():
    a, b = tg.tensor([True, True, False]), tg.tensor([True, False, False])
    assert (a + b).dtype == tg.bool and (a + b).tolist() == [True, True, False]
    assert (a * b).tolist() == [True, False, False]
    assert (a + 1).dtype == tg.int64 and (a + 1).tolist() == [2, 2, 1]
    assert (a * 0.5).dtype == tg.float64
    with pytest.raises(TypeError, match="sub: not supported for dtype bool"):
        a - b
    with pytest.raises(TypeError, match="neg: not supported for dtype bool"):
        -a


@pytest.mark.parametrize("dt", (np.int32, np.uint8, np.bool_))
def test_float_functions_of_small_ints(dt):
    a = _values(dt, (5,), 6)
    e = tg.exp(tg.tensor(a) if dt != np.int32 else tg.tensor(a % 10))
    want_dt = np.float64 if dt == np.int32 else np.float32  # NumPy's float16 is float32 here
    assert e.dtype == want_dt


def test_mnist_uint8_images_are_zero_copy():
    import os
    from tapegrad.data import mnist
    from pathlib import Path
    # CI sets TAPEGRAD_DATA; locally the sibling data folder, as test_notebooks.py does
    path = os.environ.get("TAPEGRAD_DATA") or str(Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist")
    if not os.path.isdir(path):
        pytest.skip(f"MNIST files not found at {path} (set TAPEGRAD_DATA)")
    (x_train, y_train), (x_test, _) = mnist.load_data(path=path)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    x = tg.from_numpy(x_train)
    assert x.dtype == tg.uint8 and np.shares_memory(x.numpy(), x_train)  # no copy of the 47 MB
    batch = x[:64]
    f = batch.astype(tg.float32) / 255
    assert f.dtype == tg.float32 and f.shape == (64, 28, 28)
    np.testing.assert_allclose(f.numpy(), x_train[:64].astype(np.float32) / 255, rtol=1e-6)
    g = batch / 255  # true division of uint8 by a Python int: float64, as NumPy
    assert g.dtype == tg.float64
    np.testing.assert_allclose(g.numpy(), x_train[:64] / 255)
    y = tg.from_numpy(y_train)
    assert y.dtype == tg.uint8 and np.array_equal(y.astype(tg.int64).numpy(), y_train)
    assert int((y == 3).sum().item()) == int((y_train == 3).sum())
    assert x.max().item() == 255 and x.max().dtype == tg.uint8


# ---------------------------------------------------------------------------
# every registry op, every dtype
# ---------------------------------------------------------------------------

def _as_tg_dtype(a):
    """NumPy's result dtype as tapegrad's (float16, which tapegrad lacks, is float32)."""
    a = np.asarray(a)
    return np.dtype(np.float32) if a.dtype == np.float16 else a.dtype


@pytest.mark.parametrize("dt", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("name,k,ptext", CASES, ids=[f"{n}-{k}" for n, k, _ in CASES])
def test_every_op_with_every_dtype(name, k, ptext, dt):
    """The registry's examples with their float inputs cast to `dt`: either
    a result of NumPy's dtype and values (the op's reference in
    op_reference.py run on the same inputs), or a TypeError/ValueError naming
    the op -- never a crash, never a silently wrong dtype."""
    tg.manual_seed(7)
    ins, params = tg._C._op_example(name, k, tg.float64)
    params = dict(params)
    params["_seed"] = 4242
    cast = [t.astype(dt) if t.dtype == tg.float64 else t for t in ins]
    tg.manual_seed(4242)
    try:
        out = tg._C._op_apply(name, cast, ptext)
    except (TypeError, ValueError) as e:
        assert name in str(e), f"{name}({np.dtype(dt).name}): the error does not name the op: {e}"
        return
    outs = out if isinstance(out, (tuple, list)) else (out,)
    assert all(isinstance(o, tg.Tensor) for o in outs)
    assert not any(o.requires_grad for o in outs)
    if name in ("dropout",):  # random: dtype only
        assert outs[0].dtype == cast[0].dtype
        return
    arrays = [t.numpy().copy() for t in cast]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = REFERENCES[name](arrays, params)
        except (TypeError, ValueError, np.exceptions.DTypePromotionError) as e:
            pytest.fail(f"{name}({np.dtype(dt).name}) succeeded where NumPy's reference refuses: {e}")
    wants = want if isinstance(want, (tuple, list)) else (want,)
    for o, w in zip(outs, wants):
        assert o.dtype == _as_tg_dtype(w), f"{name}({np.dtype(dt).name}): dtype {o.dtype}, NumPy {np.asarray(w).dtype}"
        got = o.numpy()
        w = np.asarray(w).astype(o.dtype)
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, w, rtol=1e-5 if got.dtype == np.float32 else 1e-12,
                                       atol=1e-5, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, w)


def test_the_docs_promotion_table_is_numpys_and_tapegrads():
    """docs/concepts/dtypes.md's table, read back: NumPy's np.result_type and
    the C core's tg_dtype_promote agree with every cell."""
    import re
    from pathlib import Path
    page = Path(__file__).resolve().parents[2] / "docs" / "concepts" / "dtypes.md"
    rows = [line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("| **`")]
    names = ["float32", "float64", "int64", "bool", "int32", "uint8"]
    assert len(rows) == 6
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        a = re.sub(r"[*`]", "", cells[0])
        for b, cell in zip(names, cells[1:]):
            assert cell == np.result_type(np.dtype(a), np.dtype(b)).name, (a, b)
            got = tg.maximum(tg.zeros(1, dtype=np.dtype(a)), tg.zeros(1, dtype=np.dtype(b))).dtype
            assert got.name == cell, (a, b)
