"""The GEMM's products of a few rows or columns (issue 16, kernels/gemm.c
steps DOTS and ROWS).

A product with at most four rows (or four columns) is neither worth packing
nor the packed kernel's tile: a row vector times nn.Linear's weight read as
its transpose (x @ W.T: a sample at a time, a character model sampling one
token), a matrix times a vector, a row vector times a matrix stored by
rows.  Where every row of A and every column of B is contiguous, each
element is one vectorized dot product (DOTS); where the rows of B are
contiguous and A has at most four rows, a block of a row of C stays in
registers while all of K is added to it (ROWS).  Checked here:

* the exact bits of the order each step states (skinny_reference.py, NumPy
  in the element type one operation at a time), on every vector-math path
  this CPU can run (the kernels come from vmath.h);
* the float64 rounding bound of the exact product, for the layouts that do
  not take these steps too (strided, transposed A, column-major B);
* the same bits on one and two threads, at sizes that are split;
* NaN and inf reach exactly the elements whose row or column holds them;
* gradients through a single-sample nn.Linear: finite differences, PyTorch.
"""
import numpy as np
import pytest

import tapegrad as tg
from kernel_paths import with_threads
from skinny_reference import dots_reference, rows_reference
from tapegrad.testing import gradcheck


@pytest.fixture(autouse=True)
def _every_vmath_path(vmath_path):
    yield vmath_path


def _bound(a, b, dtype):
    eps = np.finfo(dtype).eps
    return 2 * (a.shape[1] + 4) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-300


def _by_columns(b):
    """b as a tapegrad view whose columns are contiguous (nn.Linear's W.T)."""
    return tg.from_numpy(np.ascontiguousarray(b.T)).T


KS = [1, 2, 63, 64, 65, 128, 200, 1568]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m,n", [(1, 128), (2, 70), (3, 33), (4, 5), (128, 1), (70, 3), (5, 4)])
def test_dot_products_have_the_stated_bits(m, n, k, dtype):
    """Rows of A and columns of B contiguous, at most four rows or columns."""
    rng = np.random.default_rng(m * 7919 + n * 31 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = (tg.from_numpy(a) @ _by_columns(b)).numpy()
    if m * n * k > 512:  # tinier products keep the plain loop
        assert got.tobytes() == dots_reference(a, b).tobytes()
    assert np.all(np.abs(got - a.astype(np.float64) @ b.astype(np.float64)) <= _bound(a, b, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m,n", [(1, 128), (2, 70), (3, 130), (4, 5), (1, 4100)])
def test_rows_have_the_stated_bits(m, n, k, dtype):
    """B stored by rows, at most four rows of A: blocks of 64 (float32) or
    32 (float64) columns held in registers, tails, K cut in pieces that must
    not change a bit."""
    if m * n * k > 3_000_000:
        k = 200
    rng = np.random.default_rng(m * 7919 + n * 31 + k + 1)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = (tg.from_numpy(a) @ tg.from_numpy(b)).numpy()
    assert got.tobytes() == rows_reference(a, b).tobytes()
    assert np.all(np.abs(got - a.astype(np.float64) @ b.astype(np.float64)) <= _bound(a, b, dtype))


def _layouts(a, b):
    yield "A by columns", tg.from_numpy(np.ascontiguousarray(a.T)).T, tg.from_numpy(b)
    yield "A strided", tg.from_numpy(np.repeat(a, 2, axis=1))[:, ::2], _by_columns(b)
    yield "B strided", tg.from_numpy(a), tg.from_numpy(np.repeat(b, 3, axis=1))[:, ::3]
    yield "A rows reversed", tg.from_numpy(np.ascontiguousarray(a[::-1])).flip(0), _by_columns(b)
    yield "a vector", tg.from_numpy(a[0]), _by_columns(b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(1, 300, 70), (4, 64, 200), (3, 2, 129), (200, 4, 33)])
def test_other_layouts_are_right(m, n, k, dtype):
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    for name, ta, tb in _layouts(a, b):
        got = (ta @ tb).numpy()
        aa = a[:1] if name == "a vector" else a
        want = aa.astype(np.float64) @ b.astype(np.float64)
        got = got.reshape(want.shape)
        assert np.all(np.abs(got - want) <= _bound(aa, b, dtype)), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k,cols", [(1, 5000, 700, True), (4, 3000, 600, True), (3000, 2, 700, True),
                                         (1, 5000, 700, False), (3, 4100, 1100, False)])
def test_same_bits_on_one_and_two_threads(m, n, k, cols, dtype):
    rng = np.random.default_rng(n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    ta, tb = tg.from_numpy(a), (_by_columns(b) if cols else tg.from_numpy(b))
    one = with_threads(1, lambda: (ta @ tb).numpy())
    two = with_threads(2, lambda: (ta @ tb).numpy())
    assert one.tobytes() == two.tobytes()
    ref = dots_reference if cols else rows_reference
    if m * n * k <= 3_000_000 or cols:
        assert one.tobytes() == ref(a, b).tobytes()


@pytest.mark.parametrize("cols", [True, False])
def test_nan_and_inf_reach_only_their_row_and_column(cols):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 150)).astype(np.float32)
    b = rng.standard_normal((150, 70)).astype(np.float32)
    a[1, 140] = np.nan       # in the zero-padded tail of the 64-lane dots
    b[7, 20] = np.inf
    tb = _by_columns(b) if cols else tg.from_numpy(b)
    got = (tg.from_numpy(a) @ tb).numpy()
    with np.errstate(invalid="ignore"):
        want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.isnan(got[1]).all() and np.isinf(got[[0, 2], 20]).all()
    fin = np.isfinite(want)
    assert np.allclose(got[fin], want[fin], rtol=1e-4, atol=1e-4)


def test_single_sample_linear_gradients():
    """nn.Linear on one sample: x @ W.T (DOTS), its input gradient g @ W
    (ROWS), finite differences in float64 and PyTorch in float32."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 300))
    w = rng.standard_normal((70, 300)) * 0.1
    bias = rng.standard_normal(70)
    assert gradcheck(lambda x, w, b: tg.nn.functional.linear(x, w, b).tanh(),
                     (tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True),
                      tg.tensor(bias, requires_grad=True)))
    torch = pytest.importorskip("torch")
    xs, ws, bs = (v.astype(np.float32) for v in (x, w, bias))
    tx, tw, tb = (tg.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    tg.nn.functional.linear(tx, tw, tb).tanh().sum().backward()
    px, pw, pb = (torch.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    torch.nn.functional.linear(px, pw, pb).tanh().sum().backward()
    for t, p in ((tx, px), (tw, pw), (tb, pb)):
        np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-5)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 6), n=st.integers(1, 90), k=st.integers(1, 300), transpose=st.booleans(),
       b_by_columns=st.booleans(), f64=st.booleans(), seed=st.integers(0, 2**16))
def test_few_rows_or_columns_property(m, n, k, transpose, b_by_columns, f64, seed):
    """Any product with a few rows (or, transposed, a few columns), B stored
    either way: within the rounding bound of the exact product, and with the
    stated bits where a step takes it."""
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    if transpose:  # (n, k) @ (k, m): a few columns
        a, b = np.ascontiguousarray(b.T), np.ascontiguousarray(a.T)
    tb = _by_columns(b) if b_by_columns else tg.from_numpy(b)
    got = (tg.from_numpy(a) @ tb).numpy()
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(got - want) <= _bound(a, b, dtype))
    rows, cols = a.shape[0], b.shape[1]
    if rows * cols * a.shape[1] > 512:
        if (b_by_columns or cols == 1) and min(rows, cols) <= 4:  # one column: both
            assert got.tobytes() == dots_reference(a, b).tobytes()
        elif not b_by_columns and rows <= 4:
            assert got.tobytes() == rows_reference(a, b).tobytes()
