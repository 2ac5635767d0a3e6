"""Shape and indexing ops of issue 14 (csrc/ops/shape.c, csrc/python/shapeops.c,
python/tapegrad/_shape.py): forward and gradients against PyTorch in float32
and float64 on contiguous and non-contiguous inputs with negative axes,
finite differences (gradcheck, gradgradcheck) in float64, and bad input
raising an exception that names the op.

The registry-driven tests (test_ops_registry.py) check the same ops against
the NumPy references of op_reference.py; this file adds PyTorch, the
argument spellings (axis/dim/dims, k/diagonal, ...) and the functions with
several results (split, chunk, unbind, array_split, nonzero(as_tuple=True)).
"""
import numpy as np
import pytest

import tapegrad as tg
from assertions import raises
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

DTYPES = [(tg.float32, torch.float32, np.float32), (tg.float64, torch.float64, np.float64)]
DT_IDS = ["f32", "f64"]


def _data(shape, npdt, seed=0, transposed=False):
    rng = np.random.default_rng(seed)
    if transposed:  # a non-contiguous view: the transpose of the reversed shape
        a = rng.standard_normal(tuple(reversed(shape))).astype(npdt)
        return a.T
    return rng.standard_normal(shape).astype(npdt)


def _pair(shape, dts, seed=0, transposed=False):
    tgdt, tdt, npdt = dts
    a = _data(shape, npdt, seed, transposed)
    x = tg.tensor(a, requires_grad=True)
    if transposed:
        x = tg.tensor(np.ascontiguousarray(a.T), requires_grad=True)
        xv = x.T if x.ndim == 2 else x.permute(*reversed(range(x.ndim)))
    else:
        xv = x
    t = torch.tensor(a, dtype=tdt, requires_grad=True)
    return x, xv, t


# (name, shape, tapegrad f, torch f): each compared in value and gradient
CASES = [
    ("flip", (3, 4), lambda x: tg.flip(x, -1), lambda t: torch.flip(t, (-1,))),
    ("flip_dims", (2, 3, 4), lambda x: x.flip(dims=(0, -1)), lambda t: t.flip(dims=(0, -1))),
    ("flip_all", (3, 4), lambda x: tg.flip(x), lambda t: torch.flip(t, (0, 1))),
    ("roll", (3, 4), lambda x: tg.roll(x, 1, -1), lambda t: torch.roll(t, 1, -1)),
    ("roll_many", (3, 4), lambda x: x.roll(shifts=(-4, 7), dims=(0, 1)), lambda t: t.roll((-4, 7), (0, 1))),
    ("roll_flat", (3, 4), lambda x: tg.roll(x, 5), lambda t: torch.roll(t, 5)),
    ("tril", (4, 5), lambda x: tg.tril(x), lambda t: torch.tril(t)),
    ("tril_k", (2, 4, 3), lambda x: x.tril(diagonal=1), lambda t: t.tril(diagonal=1)),
    ("triu_k", (4, 5), lambda x: tg.triu(x, k=-1), lambda t: torch.triu(t, -1)),
    ("diagonal", (4, 5), lambda x: x.diagonal(), lambda t: t.diagonal()),
    ("diagonal_off", (2, 4, 5), lambda x: tg.diagonal(x, -1, dim1=-1, dim2=1),
     lambda t: torch.diagonal(t, -1, dim1=-1, dim2=1)),
    ("diagonal_empty", (3, 4), lambda x: x.diagonal(7), lambda t: t.diagonal(7)),
    ("diag_vec", (4,), lambda x: tg.diag(x, 1), lambda t: torch.diag(t, 1)),
    ("diag_vec_neg", (3,), lambda x: x.diag(diagonal=-2), lambda t: t.diag(diagonal=-2)),
    ("diag_mat", (4, 3), lambda x: tg.diag(x, -1), lambda t: torch.diag(t, -1)),
    ("trace", (4, 5), lambda x: tg.trace(x), lambda t: torch.trace(t)),
    ("repeat", (2, 3), lambda x: x.repeat(2, 1, 3), lambda t: t.repeat(2, 1, 3)),
    ("repeat_tuple", (2, 3), lambda x: x.repeat((1, 2)), lambda t: t.repeat((1, 2))),
    ("tile", (2, 3), lambda x: tg.tile(x, 2), lambda t: torch.tile(t, (2,))),
    ("tile_long", (2, 3), lambda x: tg.tile(x, (2, 1, 2)), lambda t: torch.tile(t, (2, 1, 2))),
    ("repeat_interleave", (3, 4), lambda x: x.repeat_interleave(2, dim=-1),
     lambda t: t.repeat_interleave(2, dim=-1)),
    ("repeat_interleave_seq", (3, 4), lambda x: tg.repeat_interleave(x, [1, 0, 3], axis=0),
     lambda t: torch.repeat_interleave(t, torch.tensor([1, 0, 3]), dim=0)),
    ("repeat_interleave_flat", (3, 4), lambda x: tg.repeat_interleave(x, 2),
     lambda t: torch.repeat_interleave(t, 2)),
    ("unflatten", (6, 4), lambda x: x.unflatten(0, (2, -1)), lambda t: t.unflatten(0, (2, -1))),
    ("unflatten_neg", (4, 6), lambda x: tg.unflatten(x, -1, (3, 2)), lambda t: torch.unflatten(t, -1, (3, 2))),
    ("masked_fill", (3, 4), lambda x: x.masked_fill(x.detach() > 0.2, -2.0),
     lambda t: t.masked_fill(t.detach() > 0.2, -2.0)),
    ("masked_fill_bcast", (3, 4), lambda x: tg.masked_fill(x, tg.tensor([1, 0, 0, 1]), 0.5),
     lambda t: t.masked_fill(torch.tensor([True, False, False, True]), 0.5)),
    ("masked_select", (3, 4), lambda x: x.masked_select(x.detach() > 0),
     lambda t: t.masked_select(t.detach() > 0)),
    ("masked_select_bcast", (3, 4), lambda x: tg.masked_select(x, tg.tensor([[1], [0], [1]])),
     lambda t: torch.masked_select(t, torch.tensor([[True], [False], [True]]))),
    ("scatter", (3, 5), lambda x: x.scatter(1, tg.tensor([[4, 0], [1, 2], [3, 1]]), x[:, :2] * 3),
     lambda t: t.scatter(1, torch.tensor([[4, 0], [1, 2], [3, 1]]), t[:, :2] * 3)),
    ("scatter_value", (4, 3), lambda x: tg.scatter(x, 0, tg.tensor([[3, 0, 1]]), value=7.0),
     lambda t: torch.scatter(t, 0, torch.tensor([[3, 0, 1]]), 7.0)),
    ("scatter_src_larger", (3, 4), lambda x: x.scatter(-1, tg.tensor([[2], [0], [3]]), x * 2),
     # PyTorch's own backward refuses a src larger than the index: compare with its first column
     lambda t: t.scatter(-1, torch.tensor([[2], [0], [3]]), (t * 2)[:, :1])),
]
IDS = [c[0] for c in CASES]
# every case contiguous, and as a transposed (non-contiguous) view when it has 2 dims or more
LAYOUTS = [(c, False) for c in CASES] + [(c, True) for c in CASES if len(c[1]) >= 2]


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("case,transposed", LAYOUTS,
                         ids=[c[0] + ("-strided" if tr else "-contig") for c, tr in LAYOUTS])
def test_against_torch(case, transposed, dts):
    name, shape, f, tf = case
    x, xv, t = _pair(shape, dts, seed=len(name), transposed=transposed)
    y = f(xv)
    ty = tf(t)
    tol = dict(rtol=1e-5, atol=1e-6) if dts[0] == tg.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.shape == tuple(ty.shape) and y.dtype == dts[0]
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    seed = np.random.default_rng(1).standard_normal(y.shape).astype(dts[2])
    y.backward(tg.tensor(seed))
    ty.backward(torch.tensor(seed))
    g = x.grad.numpy()
    if transposed:
        g = g.T if g.ndim == 2 else np.transpose(g, tuple(reversed(range(g.ndim))))
    np.testing.assert_allclose(g, t.grad.numpy(), **tol)


@pytest.mark.parametrize("name,shape,f,tf", CASES, ids=IDS)
def test_gradcheck_and_gradgradcheck(name, shape, f, tf):
    x = tg.tensor(_data(shape, np.float64, seed=3), requires_grad=True)
    assert gradcheck(f, [x])
    assert gradgradcheck(f, [x])


def test_flip_is_a_view_like_numpy():
    x = tg.arange(6.0).reshape(2, 3)
    y = tg.flip(x, 1)
    np.testing.assert_array_equal(y.numpy(), np.flip(x.numpy(), 1))
    assert np.shares_memory(y.numpy(), x.numpy())


def test_int64_inputs():
    a = np.arange(12).reshape(3, 4)
    x = tg.tensor(a)
    assert x.dtype == tg.int64
    for got, want in [(tg.flip(x, 0), np.flip(a, 0)), (tg.roll(x, 2, 1), np.roll(a, 2, 1)),
                      (tg.tril(x, 1), np.tril(a, 1)), (tg.triu(x), np.triu(a)),
                      (tg.diagonal(x, 1), np.diagonal(a, 1)), (tg.trace(x), np.trace(a)),
                      (tg.tile(x, (2, 1)), np.tile(a, (2, 1))),
                      (tg.repeat_interleave(x, 2, axis=1), np.repeat(a, 2, axis=1)),
                      (tg.masked_fill(x, x > 5, -1), np.where(a > 5, -1, a)),
                      (tg.masked_select(x, x > 5), a[a > 5])]:
        assert got.dtype == tg.int64
        np.testing.assert_array_equal(got.numpy(), want)


def test_diag_matches_numpy_for_every_offset():
    v = np.arange(1.0, 4.0)
    m = np.arange(12.0).reshape(3, 4)
    for k in range(-5, 6):
        np.testing.assert_array_equal(tg.diag(tg.tensor(v), k).numpy(), np.diag(v, k))
        np.testing.assert_array_equal(tg.diag(tg.tensor(m), k).numpy(), np.diag(m, k))
        np.testing.assert_array_equal(tg.trace(tg.tensor(m), k).numpy(), np.trace(m, k))
    assert tg.diag(tg.zeros(0), 2).shape == (2, 2)


# --- nonzero, where(cond), masks of any dtype ---------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64, np.int64, np.bool_])
def test_nonzero_any_dtype(dt):
    a = (np.random.default_rng(0).standard_normal((3, 4, 2)) > 0.3).astype(dt)
    x = tg.tensor(a)
    np.testing.assert_array_equal(tg.nonzero(x).numpy(), np.argwhere(a))
    np.testing.assert_array_equal(x.nonzero().numpy(), torch.nonzero(torch.tensor(a)).numpy())
    for got, want in zip(tg.nonzero(x, as_tuple=True), np.nonzero(a)):
        assert got.dtype == tg.int64 and got.ndim == 1
        np.testing.assert_array_equal(got.numpy(), want)
    for got, want in zip(tg.where(x), np.where(a)):
        np.testing.assert_array_equal(got.numpy(), want)


def test_nonzero_of_a_view_and_of_empty_and_scalar():
    a = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    x = tg.tensor(a.T.copy()).T  # a transposed view
    np.testing.assert_array_equal(tg.nonzero(x).numpy(), np.argwhere(a))
    assert tg.nonzero(tg.zeros(0, 3)).shape == (0, 2)
    assert tg.nonzero(tg.tensor(2.0)).shape == (1, 0)
    assert tg.nonzero(tg.zeros(3)).shape == (0, 1)


def test_where_one_and_three_arguments():
    x = tg.tensor([[1.0, -2.0], [0.0, 4.0]])
    rows, cols = tg.where(x > 0)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    assert tg.where(x > 0, x, 0.0).tolist() == [[1.0, 0.0], [0.0, 4.0]]
    with raises(TypeError, "where"):
        tg.where(x > 0, x)


def test_masks_from_numpy_bool_and_float():
    x = tg.tensor([1.0, 2.0, 3.0])
    for m in (np.array([True, False, True]), tg.tensor([1.0, 0.0, 0.5]), [1, 0, 1]):
        assert tg.masked_select(x, m).tolist() == [1.0, 3.0]
        assert tg.masked_fill(x, m, 0.0).tolist() == [0.0, 2.0, 0.0]


# --- several results: split, chunk, unbind, array_split -----------------------

def _torch_pieces(ps):
    return [p.detach().numpy() for p in ps]


@pytest.mark.parametrize("transposed", [False, True], ids=["contig", "strided"])
def test_split_chunk_unbind_against_torch(transposed):
    a = _data((5, 7), np.float64, 2, transposed)
    x, t = tg.tensor(a), torch.tensor(a)
    cases = [
        (tg.split(x, 2), torch.split(t, 2)),
        (x.split(3, dim=-1), t.split(3, dim=-1)),
        (tg.split(x, [1, 4, 2], axis=1), torch.split(t, [1, 4, 2], dim=1)),
        (tg.split(x, [5, 0], 0), torch.split(t, [5, 0], 0)),
        (tg.chunk(x, 3), torch.chunk(t, 3)),
        (x.chunk(4, dim=1), t.chunk(4, dim=1)),
        (tg.chunk(x, 10, -1), torch.chunk(t, 10, -1)),
        (tg.unbind(x), torch.unbind(t)),
        (x.unbind(dim=-1), t.unbind(dim=-1)),
    ]
    for got, want in cases:
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, _torch_pieces(want)):
            np.testing.assert_array_equal(g.numpy(), w)


def test_array_split_against_numpy():
    a = np.arange(20.0).reshape(4, 5)
    x = tg.tensor(a)
    for arg, ax in [(3, 1), (4, 0), (7, 1), ([1, 3], 1), ([2, 10], 0), ([-2], 1), ([3, 1], 1)]:
        got = tg.array_split(x, arg, axis=ax)
        want = np.array_split(a, arg, axis=ax)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w)


def test_split_gradients_flow_to_every_piece():
    x = tg.tensor(np.arange(10.0), requires_grad=True)
    a, b, c = tg.split(x, [2, 5, 3])
    (a.sum() * 1 + (b * b).sum() + c.sum() * 3).backward()
    want = np.concatenate([np.ones(2), 2 * np.arange(2.0, 7.0), 3 * np.ones(3)])
    np.testing.assert_array_equal(x.grad.numpy(), want)
    y = tg.tensor(np.ones((2, 3)), requires_grad=True)
    assert gradgradcheck(lambda y: tg.stack([p * p for p in tg.unbind(y, 1)], 0), [y])
    assert gradcheck(lambda y: tg.chunk(y, 2, dim=1)[1] ** 2, [y])


# --- stacking -----------------------------------------------------------------

def test_stack_concatenate_many_and_numpy_helpers():
    arrs = [np.random.default_rng(i).standard_normal((2, 3)) for i in range(5)]
    ts = [tg.tensor(a) for a in arrs]
    np.testing.assert_array_equal(tg.stack(ts, axis=-1).numpy(), np.stack(arrs, -1))
    np.testing.assert_array_equal(tg.stack(ts, dim=1).numpy(), np.stack(arrs, 1))
    np.testing.assert_array_equal(tg.concatenate(ts, axis=1).numpy(), np.concatenate(arrs, 1))
    np.testing.assert_array_equal(tg.cat(ts, dim=-1).numpy(), np.concatenate(arrs, -1))
    np.testing.assert_array_equal(tg.concatenate(ts, dim=0).numpy(), np.concatenate(arrs, 0))
    np.testing.assert_array_equal(tg.hstack(ts).numpy(), np.hstack(arrs))
    np.testing.assert_array_equal(tg.vstack(ts).numpy(), np.vstack(arrs))
    np.testing.assert_array_equal(tg.dstack(ts).numpy(), np.dstack(arrs))
    v = [np.arange(3.0), np.arange(3.0, 6.0)]
    for f, nf in [(tg.hstack, np.hstack), (tg.vstack, np.vstack), (tg.dstack, np.dstack),
                  (tg.column_stack, np.column_stack)]:
        np.testing.assert_array_equal(f([tg.tensor(a) for a in v]).numpy(), nf(v))
    xs = [tg.tensor(a, requires_grad=True) for a in arrs]
    assert gradgradcheck(lambda *xs: tg.vstack(xs) ** 2, xs)


# --- errors name the op and the shapes ----------------------------------------

def test_errors_name_the_op():
    x = tg.zeros(3, 4)
    with raises(IndexError, "flip"):
        tg.flip(x, 2)
    with raises(ValueError, "flip", "repeated"):
        tg.flip(x, (0, 0))
    with raises(ValueError, "roll", "2 shifts"):
        tg.roll(x, (1, 2), 0)
    with raises(ValueError, "roll"):
        tg.roll(x, (1, 2))
    with raises(IndexError, "roll"):
        tg.roll(x, 1, 5)
    with raises(ValueError, "tril", "(3,)"):
        tg.tril(tg.zeros(3))
    with raises(TypeError, "triu", "k"):
        tg.triu(x, 1.5)
    with raises(ValueError, "diagonal", "same"):
        tg.diagonal(x, 0, 1, -1)
    with raises(ValueError, "diagonal", "(3,)"):
        tg.diagonal(tg.zeros(3))
    with raises(ValueError, "diag", "(2, 2, 2)"):
        tg.diag(tg.zeros(2, 2, 2))
    with raises(ValueError, "repeat", "(3, 4)"):
        x.repeat(2)
    with raises(ValueError, "repeat", ">= 0"):
        x.repeat(2, -1)
    with raises(ValueError, "tile", ">= 0"):
        tg.tile(x, -1)
    with raises(ValueError, "repeat_interleave"):
        tg.repeat_interleave(x, [1, 2], axis=0)
    with raises(ValueError, "repeat_interleave", ">= 0"):
        tg.repeat_interleave(x, -1)
    with raises(ValueError, "unflatten", "(3, 4)"):
        tg.unflatten(x, 1, (3, 2))
    with raises(ValueError, "masked_fill", "(3, 4)"):
        tg.masked_fill(x, tg.ones(2, 3, 4), 1.0)
    with raises(ValueError, "masked_select"):
        tg.masked_select(x, tg.ones(5))
    with raises(TypeError, "masked_fill", "value"):
        tg.masked_fill(x, x > 0, "a")
    with raises(IndexError, "scatter", "out of bounds"):
        tg.scatter(x, 1, tg.tensor([[4]]), 1.0)
    with raises(ValueError, "scatter", "(1,)"):
        tg.scatter(x, 1, tg.tensor([1]), 1.0)
    with raises(IndexError, "scatter", "int64"):
        tg.scatter(x, 1, tg.tensor([[1.0]]), 1.0)
    with raises(TypeError, "scatter", "float64"):
        tg.scatter(x, 1, tg.tensor([[1]]), tg.zeros(1, 1, dtype=tg.float64))
    with raises(ValueError, "scatter", "smaller"):
        tg.scatter(x, 1, tg.tensor([[1, 2]]), tg.zeros(1, 1))
    with raises(ValueError, "split", "add up"):
        tg.split(x, [1, 1])
    with raises(ValueError, "split", "positive"):
        tg.split(x, 0)
    with raises(ValueError, "chunk", "positive"):
        tg.chunk(x, 0)
    with raises(IndexError, "unbind", "axis 2"):
        tg.unbind(x, 2)
    with raises(TypeError, "split", "both"):
        tg.split(x, 2, axis=0, dim=0)
    with raises(ValueError, "array_split", "positive"):
        tg.array_split(x, 0)



# --- scatter_reduce against PyTorch, values and gradients ----------------------

@pytest.mark.parametrize("include_self", [True, False], ids=["self", "noself"])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
def test_scatter_reduce_against_torch(reduce, include_self, dts):
    tgdt, tdt, npdt = dts
    rng = np.random.default_rng(7)
    xa = rng.standard_normal((4, 5)).astype(npdt)
    sa = rng.standard_normal((4, 6)).astype(npdt)
    if reduce == "prod":  # a zero among the factors: the gradient is the product of the others
        sa[1, 2] = 0
    if reduce in ("amax", "amin"):  # ties share the gradient, with x's own value too
        sa[0, 3] = sa[0, 1]
        if include_self:
            # (without include_self, PyTorch 2.x still counts a tie with x's value and gives
            # src half the gradient, x none; here x does not take part, src gets all of it)
            xa[2, 4] = sa[2, 0]
    idx = np.array([[0, 2, 2, 4, 0, 0], [1, 1, 1, 3, 3, 0], [4, 0, 2, 2, 1, 1], [3, 3, 3, 3, 3, 3]])
    x, s = tg.tensor(xa, requires_grad=True), tg.tensor(sa, requires_grad=True)
    tx, ts = torch.tensor(xa, requires_grad=True), torch.tensor(sa, requires_grad=True)
    # a transposed (non-contiguous) view of x
    xv = tg.tensor(np.ascontiguousarray(xa.T), requires_grad=True)
    for inp in (x, xv.T):
        y = tg.scatter_reduce(inp, 1, tg.tensor(idx), s, reduce, include_self=include_self)
        ty = torch.scatter_reduce(tx, 1, torch.tensor(idx), ts, reduce, include_self=include_self)
        tol = dict(rtol=1e-5, atol=1e-6) if tgdt == tg.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    seed = rng.standard_normal((4, 5)).astype(npdt)
    y = x.scatter_reduce(-1, tg.tensor(idx), s, reduce=reduce, include_self=include_self)
    y.backward(tg.tensor(seed))
    torch.scatter_reduce(tx, -1, torch.tensor(idx), ts, reduce, include_self=include_self).backward(torch.tensor(seed))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), **tol)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce_second_order(reduce):
    rng = np.random.default_rng(8)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    s = tg.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    idx = tg.tensor([[0, 1, 2, 0], [2, 1, 0, 0], [0, 0, 0, 1], [1, 2, 2, 2], [0, 1, 1, 1]])
    for inc in (True, False):
        f = lambda x, s: tg.scatter_reduce(x, 0, idx, s, reduce, include_self=inc)  # noqa: E731
        assert gradcheck(f, [x, s])
        assert gradgradcheck(f, [x, s])


def test_scatter_reduce_errors():
    x = tg.zeros(3, 4)
    with raises(ValueError, "scatter_reduce", "'sum', 'prod'"):
        tg.scatter_reduce(x, 0, tg.tensor([[0]]), tg.ones(1, 1), "max")
    with raises(TypeError, "scatter_reduce", "int64"):
        tg.scatter_reduce(tg.zeros(3, dtype=tg.int64), 0, tg.tensor([0]), tg.tensor([1]), "sum")
    with raises(IndexError, "scatter_reduce", "out of bounds"):
        tg.scatter_reduce(x, 0, tg.tensor([[3]]), tg.ones(1, 1), "sum")
    with raises(ValueError, "scatter_reduce", "smaller"):
        tg.scatter_reduce(x, 0, tg.tensor([[0, 1]]), tg.ones(1, 1), "sum")
    # nothing scattered: x itself (a new tensor), like PyTorch
    y = tg.scatter_reduce(x, 0, tg.zeros(0, 4, dtype=tg.int64), tg.ones(0, 4), "amax")
    np.testing.assert_array_equal(y.numpy(), x.numpy())


# --- einsum --------------------------------------------------------------------

EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),                    # implicit output
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),       # batch matmul
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("ii->i", [(4, 4)]),                            # diagonal
    ("ii", [(4, 4)]),                               # trace
    ("iij->j", [(3, 3, 2)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),                             # sum
    ("ij->j", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),                      # outer product
    ("i,i->", [(5,), (5,)]),                        # dot
    ("i,i", [(5,), (5,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),    # ellipsis with broadcasting
    ("...ij->...ji", [(2, 2, 3, 4)]),
    ("i...->...", [(3, 2, 4)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),     # a chain of three
    ("ijk,ikl,j->il", [(2, 3, 4), (2, 4, 5), (3,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),  # attention scores
    ("ab,ab->a", [(3, 4), (3, 4)]),
    ("ij,ij,ij->ij", [(2, 3), (2, 3), (2, 3)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("iJ,Jk->ik", [(2, 3), (3, 2)]),                # upper-case labels
    ("ij,kl->ijkl", [(2, 3), (2, 2)]),
    ("ij,jk->ik", [(1, 4), (4, 5)]),
    ("ij,j->ij", [(3, 4), (1,)]),                   # a size-1 dim broadcasts (PyTorch)
]


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("subs,shapes", EINSUM, ids=[e[0] for e in EINSUM])
def test_einsum_against_torch(subs, shapes, dts):
    tgdt, tdt, npdt = dts
    arrs = [_data(s, npdt, seed=i, transposed=len(s) >= 2 and i % 2 == 1) for i, s in enumerate(shapes)]
    xs = [tg.tensor(a, requires_grad=True) for a in arrs]
    ts = [torch.tensor(a, requires_grad=True) for a in arrs]
    y = tg.einsum(subs, *xs)
    ty = torch.einsum(subs, *ts)
    tol = dict(rtol=2e-5, atol=2e-5) if tgdt == tg.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.shape == tuple(ty.shape) and y.dtype == tgdt
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    seed = np.random.default_rng(2).standard_normal(y.shape).astype(npdt)
    y.backward(tg.tensor(seed))
    ty.backward(torch.tensor(seed))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol)


@pytest.mark.parametrize("subs,shapes", EINSUM[::3], ids=[e[0] for e in EINSUM[::3]])
def test_einsum_second_order(subs, shapes):
    xs = [tg.tensor(_data(s, np.float64, seed=i + 5), requires_grad=True) for i, s in enumerate(shapes)]
    f = lambda *xs: tg.einsum(subs, *xs)  # noqa: E731
    assert gradcheck(f, xs)
    assert gradgradcheck(f, xs)


def test_einsum_runs_contractions_as_matmul_and_takes_a_list():
    a, b = tg.randn(2, 3, 4, requires_grad=True), tg.randn(2, 4, 5, requires_grad=True)
    y = tg.einsum("bij,bjk->bik", [a, b])
    np.testing.assert_allclose(y.numpy(), np.einsum("bij,bjk->bik", a.numpy(), b.numpy()), rtol=1e-5, atol=1e-6)
    ops = {e["op"] for e in y.tape()}
    assert "matmul" in ops, ops


def test_einsum_errors_name_the_subscripts():
    a = tg.zeros(3, 4)
    with raises(ValueError, "einsum", "'ij,jk->ik'", "size"):
        tg.einsum("ij,jk->ik", a, tg.zeros(5, 2))
    with raises(ValueError, "einsum", "'ijk'", "3 labels"):
        tg.einsum("ijk", a)
    with raises(ValueError, "einsum", "'ij,jk'", "2 operands, 1 given"):
        tg.einsum("ij,jk", a)
    with raises(ValueError, "einsum", "'i2->i'", "not a label"):
        tg.einsum("i2->i", tg.zeros(3, 3))
    with raises(ValueError, "einsum", "'ij->k'", "no operand"):
        tg.einsum("ij->k", a)
    with raises(ValueError, "einsum", "'ij->ii'", "repeats"):
        tg.einsum("ij->ii", a)
    with raises(ValueError, "einsum", "'ii->i'", "(3, 4)"):
        tg.einsum("ii->i", a)
    with raises(ValueError, "einsum", "'....ij'"):
        tg.einsum("....ij", a)
    with raises(TypeError, "einsum", "int64"):
        tg.einsum("ij->", tg.zeros(2, 2, dtype=tg.int64))
    with raises(TypeError, "einsum"):
        tg.einsum(a, a)


# --- unfold, meshgrid, linspace, logspace, eye, arange --------------------------

UNFOLD = [((8,), 0, 3, 2), ((3, 7), 1, 2, 1), ((3, 7), -1, 7, 3), ((2, 6, 3), -2, 4, 3), ((4, 5), 0, 0, 1),
          ((5, 4), 0, 2, 5)]


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,axis,size,step", UNFOLD)
def test_unfold_against_torch(shape, axis, size, step, dts):
    for transposed in ([False, True] if len(shape) >= 2 else [False]):
        x, xv, t = _pair(shape, dts, seed=4, transposed=transposed)
        y = xv.unfold(axis, size, step)
        ty = t.unfold(axis, size, step)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        seed = np.random.default_rng(3).standard_normal(y.shape).astype(dts[2])
        y.backward(tg.tensor(seed))
        ty.backward(torch.tensor(seed))
        g = x.grad.numpy()
        g = g.T if transposed and g.ndim == 2 else (np.transpose(g, tuple(reversed(range(g.ndim)))) if transposed else g)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_unfold_second_order_and_errors():
    x = tg.tensor(_data((3, 7), np.float64, 9), requires_grad=True)
    assert gradgradcheck(lambda x: tg.unfold(x, 1, 3, 2) ** 2, [x])
    with raises(ValueError, "unfold", "size 8", "(3, 7)"):
        x.unfold(1, 8, 1)
    with raises(ValueError, "unfold", "step"):
        x.unfold(1, 2, 0)
    with raises(IndexError, "unfold"):
        x.unfold(2, 2, 1)


@pytest.mark.parametrize("indexing", ["xy", "ij"])
def test_meshgrid_against_numpy_and_torch(indexing):
    a, b, c = np.arange(3.0), np.arange(4.0) * 2, np.arange(2.0) - 1
    got = tg.meshgrid(tg.tensor(a), tg.tensor(b), tg.tensor(c), indexing=indexing)
    for g, w in zip(got, np.meshgrid(a, b, c, indexing=indexing)):
        np.testing.assert_array_equal(g.numpy(), w)
    for g, w in zip(tg.meshgrid([tg.tensor(a), tg.tensor(b)], indexing=indexing),
                    torch.meshgrid(torch.tensor(a), torch.tensor(b), indexing=indexing)):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    x = tg.tensor(a, requires_grad=True)
    y = tg.tensor(b, requires_grad=True)
    xx, yy = tg.meshgrid(x, y, indexing=indexing)
    (xx * yy).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, b.sum()))
    np.testing.assert_allclose(y.grad.numpy(), np.full(4, a.sum()))
    with raises(ValueError, "meshgrid", "indexing"):
        tg.meshgrid(x, y, indexing="yx")
    with raises(ValueError, "meshgrid", "(2, 2)"):
        tg.meshgrid(tg.zeros(2, 2))


@pytest.mark.parametrize("args", [(0, 1, 5), (0, 1, 5, False), (-3.5, 2.25, 7), (2, -1, 1), (1, 1, 0), (0, 10, 50)])
def test_linspace_logspace_against_numpy(args):
    np.testing.assert_array_equal(tg.linspace(*args, dtype=tg.float64).numpy(), np.linspace(*args))
    np.testing.assert_allclose(tg.linspace(*args).numpy(), np.linspace(*args).astype(np.float32))
    assert tg.linspace(*args).dtype == tg.float32
    np.testing.assert_array_equal(tg.logspace(*args, dtype=tg.float64).numpy(), np.logspace(*args))
    np.testing.assert_array_equal(tg.logspace(*args[:3], base=2.0, dtype=tg.float64).numpy(),
                                  np.logspace(*args[:3], base=2.0))
    np.testing.assert_allclose(tg.linspace(args[0], args[1], steps=args[2]).numpy(),
                               torch.linspace(args[0], args[1], steps=args[2]).numpy(), rtol=1e-6, atol=1e-6)
    with raises(ValueError, "linspace", "num"):
        tg.linspace(0, 1, -1)
    with raises(ValueError, "logspace", "stop"):
        tg.logspace(0, float("nan"), 3)


@pytest.mark.parametrize("args", [(0, 1, 0.1), (1, 2.5, 0.5), (0, -1, -0.3), (0.1, 0.7, 0.2), (-3, 3, 1.5),
                                  (0, 1, 1 / 3), (2.5,), (10, 0, -0.7), (0, 1e-3, 1e-4), (1, 1, 0.5), (0, 5, 7.5)])
def test_arange_float_steps_follow_numpys_length_rule(args):
    got = tg.arange(*args, dtype=tg.float64)
    want = np.arange(*args)
    assert got.shape == want.shape
    # values: start + i * step (NumPy fills with its rounded (start + step) - start, a few ulps apart)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-15)
    assert tg.arange(*args).dtype == tg.float32


def test_eye_with_m_and_k():
    for n, m, k in [(3, None, 0), (3, 4, 1), (4, 3, -2), (2, 5, 7), (0, 3, 0)]:
        np.testing.assert_array_equal(tg.eye(n, m, k).numpy(), np.eye(n, m, k, dtype=np.float32))


# --- pad: negative widths, modes, PyTorch's F.pad ------------------------------

# (shape, PyTorch's flat widths (last dim first), mode): combinations PyTorch itself accepts
PADS = [
    ((3, 4), (1, -1, 2, 0), "constant"), ((3, 4), (-1, 2), "constant"), ((2, 3, 4), (-1, 2, 1, 1), "reflect"),
    ((2, 3, 4), (2, 1, 0, 3), "replicate"), ((2, 3, 4), (1, 2, -1, 2), "circular"), ((3, 5), (3, 2), "reflect"),
    ((2, 3, 5), (4, 4), "replicate"), ((1, 2, 4, 5), (2, 3, 1, 2), "circular"),
    ((1, 2, 3, 4, 5), (1, 2, 1, 1, 2, 0), "reflect"),
]


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,flat,mode", PADS)
def test_functional_pad_against_torch(shape, flat, mode, dts):
    """tg.nn.functional.pad with PyTorch's flat, last-dim-first widths."""
    F = tg.nn.functional
    for transposed in (False, True):
        x, xv, t = _pair(shape, dts, seed=6, transposed=transposed)
        kw = {"value": 0.5} if mode == "constant" else {}
        y = F.pad(xv, flat, mode=mode, **kw)
        ty = torch.nn.functional.pad(t, flat, mode=mode, **kw)
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        seed = np.random.default_rng(2).standard_normal(y.shape).astype(dts[2])
        y.backward(tg.tensor(seed))
        ty.backward(torch.tensor(seed))
        g = x.grad.numpy()
        if transposed:
            g = np.transpose(g, tuple(reversed(range(g.ndim))))
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap", "symmetric"])
@pytest.mark.parametrize("widths", [((1, 2), (0, 3)), ((-1, 2), (3, -2)), ((4, 6), (7, 1)), 2, (3, 1)])
def test_pad_numpy_pad_width_against_numpy(widths, mode):
    a = np.arange(12.0).reshape(3, 4)
    x = tg.tensor(a)
    ws = widths if isinstance(widths, int) or isinstance(widths[0], int) else widths
    got = tg.pad(x, ws, mode=mode)
    norm = np.broadcast_to(np.asarray(ws), (2, 2))
    crop = tuple(slice(max(0, -b), a.shape[d] - max(0, -e)) for d, (b, e) in enumerate(norm))
    want = np.pad(a[crop], np.maximum(norm, 0), mode=mode)
    np.testing.assert_array_equal(got.numpy(), want)


def test_pad_second_order_and_errors():
    x = tg.tensor(_data((3, 4), np.float64, 11), requires_grad=True)
    for mode in ("reflect", "replicate", "circular", "symmetric", "constant"):
        assert gradgradcheck(lambda x: tg.pad(x, ((2, -1), (3, 5)), mode=mode) ** 2, [x])
    with raises(ValueError, "pad", "mode", "'mirror'"):
        tg.pad(x, 1, mode="mirror")
    with raises(ValueError, "pad", "cropping", "(3, 4)"):
        tg.pad(x, ((-2, -2), (0, 0)))
    with raises(ValueError, "pad", "size 0", "reflect"):
        tg.pad(tg.zeros(0, 3), 1, mode="reflect")
    with raises(ValueError, "pad", "pairs", "(3, 4)"):
        tg.nn.functional.pad(x, (1, 1, 1, 1, 1, 1))
    with raises(MemoryError, "pad"):
        tg.pad(tg.ones(2), (2**62, 2**62), mode="circular")


def test_repeat_and_tile_of_an_8_dim_tensor():
    """No room for a broadcast axis at 8 dims: the copies are joined instead."""
    a = np.random.default_rng(0).standard_normal((1, 2, 1, 2, 1, 2, 1, 2))
    x, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x.repeat(2, 1, 3, 1, 1, 2, 1, 1), t.repeat(2, 1, 3, 1, 1, 2, 1, 1)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    w = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(tg.tensor(w))
    ty.backward(torch.tensor(w))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(tg.tile(tg.tensor(a), (0, 1)).numpy(), np.tile(a, (0, 1)))


# Session 8: repeat_interleave with one count is a broadcast copied by
# reshape (it built an int64 index as long as the output).  Where the chain
# is a view of x (one slice along the axis, or a count of 1) it must still
# return a new tensor, as NumPy and PyTorch do: writing to it never changes x.
@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3), (1, 4), (4, 1), (0, 3)])
@pytest.mark.parametrize("r", [0, 1, 3])
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_repeat_interleave_one_count_is_a_new_tensor(shape, r, axis):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    x = tg.tensor(a, requires_grad=True)
    y = tg.repeat_interleave(x, r) if axis is None else tg.repeat_interleave(x, r, axis=axis)
    want = np.repeat(a, r, axis=axis)
    np.testing.assert_array_equal(y.numpy(), want)
    assert y.is_contiguous and not np.shares_memory(y.numpy(), x.numpy())
    w = np.random.default_rng(r).standard_normal(want.shape)
    (y * tg.tensor(w)).sum().backward()
    # each input element's gradient sums its r copies
    if axis is None:
        gw = w.reshape(-1, r).sum(1) if r else np.zeros(a.size)
    else:
        ax = axis % len(shape)
        gw = w.reshape(shape[:ax + 1] + (r,) + shape[ax + 1:]).sum(ax + 1)
    np.testing.assert_allclose(x.grad.numpy(), gw.reshape(shape), rtol=1e-12, atol=0)
    with tg.no_grad():
        y2 = tg.repeat_interleave(x.detach(), r) if axis is None else tg.repeat_interleave(x.detach(), r, axis=axis)
        if y2.numel():
            y2.fill_(-7.0)
    np.testing.assert_array_equal(x.detach().numpy(), a)
