"""NumPy's products and functions of issue 19 (csrc/ops/npfuncs.c and
python/tapegrad/_npfuncs.py): tensordot, dot (NumPy's N-d rule), inner,
outer, kron, cross, diff, hsplit/vsplit/dsplit, fmax/fmin, logaddexp2, sinc,
deg2rad/rad2deg.  Values against NumPy (float32 and float64, broadcasting),
gradients against PyTorch and finite differences, np.X(t) against tg.X(t),
and the errors.  (The registry-driven tests of test_ops_registry.py run each
op's examples through gradcheck and gradgradcheck as well.)"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tapegrad as tg
from assertions import raises

DTYPES = [(tg.float32, np.float32, 1e-5), (tg.float64, np.float64, 1e-12)]


def arrays(rng, *shapes, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def leaves(*arrs):
    return [tg.tensor(a, requires_grad=True) for a in arrs]


def grads_of(f, arrs):
    """Values and input gradients of sum(f(*tensors) * w) for a fixed w."""
    ts = leaves(*arrs)
    y = f(*ts)
    w = np.linspace(-1.0, 2.0, max(y.size, 1)).reshape(y.shape).astype(y.numpy().dtype)
    (y * tg.tensor(w)).sum().backward()
    return y.numpy(), [t.grad.numpy() for t in ts], w


def torch_grads(torch, f, arrs, w):
    ts = [torch.tensor(a, requires_grad=True) for a in arrs]
    y = f(*ts)
    (y * torch.tensor(w)).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


# (name, tapegrad call, NumPy call, PyTorch call or None, input shapes)
CASES = [
    ("tensordot-2", lambda a, b: tg.tensordot(a, b), lambda a, b: np.tensordot(a, b),
     lambda a, b: __import__("torch").tensordot(a, b), [(3, 4, 5), (4, 5, 2)]),
    ("tensordot-lists", lambda a, b: tg.tensordot(a, b, axes=([0, 2], [2, 0])),
     lambda a, b: np.tensordot(a, b, axes=([0, 2], [2, 0])),
     lambda a, b: __import__("torch").tensordot(a, b, dims=([0, 2], [2, 0])), [(3, 4, 5), (5, 2, 3)]),
    ("tensordot-0", lambda a, b: tg.tensordot(a, b, axes=0), lambda a, b: np.tensordot(a, b, axes=0),
     lambda a, b: __import__("torch").tensordot(a, b, dims=0), [(2, 3), (4,)]),
    ("dot-1d", tg.dot, np.dot, lambda a, b: a @ b, [(5,), (5,)]),
    ("dot-2d", tg.dot, np.dot, lambda a, b: a @ b, [(3, 4), (4, 2)]),
    ("dot-nd-1d", tg.dot, np.dot, lambda a, b: a @ b, [(2, 3, 4), (4,)]),
    ("dot-nd-nd", tg.dot, np.dot,
     lambda a, b: __import__("torch").tensordot(a, b, dims=([2], [1])), [(2, 3, 4), (5, 4, 2)]),
    ("dot-0d", tg.dot, np.dot, lambda a, b: a * b, [(), (2, 3)]),
    ("inner", tg.inner, np.inner, lambda a, b: __import__("torch").inner(a, b), [(2, 3, 4), (5, 4)]),
    ("outer", tg.outer, np.outer, lambda a, b: __import__("torch").outer(a, b), [(3,), (4,)]),
    ("outer-flattens", tg.outer, np.outer, None, [(2, 2), (3,)]),
    ("kron-2d", tg.kron, np.kron, lambda a, b: __import__("torch").kron(a, b), [(2, 3), (3, 2)]),
    ("kron-ranks", tg.kron, np.kron, lambda a, b: __import__("torch").kron(a, b), [(3,), (2, 2)]),
    ("cross", tg.cross, np.cross, lambda a, b: __import__("torch").linalg.cross(*__import__("torch").broadcast_tensors(a, b)), [(4, 3), (3,)]),
    ("cross-axis0", lambda a, b: tg.cross(a, b, axis=0), lambda a, b: np.cross(a, b, axis=0),
     lambda a, b: __import__("torch").linalg.cross(a, b, dim=0), [(3, 5), (3, 5)]),
    ("diff", lambda a: tg.diff(a), lambda a: np.diff(a),
     lambda a: __import__("torch").diff(a), [(3, 6)]),
    ("diff-n3-axis0", lambda a: tg.diff(a, n=3, axis=0), lambda a: np.diff(a, n=3, axis=0),
     lambda a: __import__("torch").diff(a, n=3, dim=0), [(6, 2)]),
    ("diff-prepend-append", lambda a, p, q: tg.diff(a, 2, -1, prepend=p, append=q),
     lambda a, p, q: np.diff(a, 2, -1, prepend=p, append=q),
     lambda a, p, q: __import__("torch").diff(a, 2, -1, prepend=p, append=q), [(3, 4), (3, 1), (3, 2)]),
    ("fmax", tg.fmax, np.fmax, lambda a, b: __import__("torch").fmax(a, b), [(3, 4), (4,)]),
    ("fmin", tg.fmin, np.fmin, lambda a, b: __import__("torch").fmin(a, b), [(3, 1), (1, 4)]),
    ("logaddexp2", tg.logaddexp2, np.logaddexp2, lambda a, b: __import__("torch").logaddexp2(a, b),
     [(3, 4), (4,)]),
    ("sinc", tg.sinc, np.sinc, lambda a: __import__("torch").sinc(a), [(3, 4)]),
    ("deg2rad", tg.deg2rad, np.deg2rad, lambda a: __import__("torch").deg2rad(a), [(5,)]),
    ("rad2deg", tg.rad2deg, np.rad2deg, lambda a: __import__("torch").rad2deg(a), [(5,)]),
]


@pytest.mark.parametrize("dt,npdt,tol", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name,f,npf,torchf,shapes", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy(name, f, npf, torchf, shapes, dt, npdt, tol, rng):
    arrs = arrays(rng, *shapes, dtype=npdt)
    y = f(*[tg.tensor(a) for a in arrs])
    want = npf(*arrs)
    assert y.dtype == dt
    assert y.shape == np.shape(want)
    np.testing.assert_allclose(y.numpy(), want, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("name,f,npf,torchf,shapes", [c for c in CASES if c[3] is not None],
                         ids=[c[0] for c in CASES if c[3] is not None])
def test_gradients_match_pytorch(name, f, npf, torchf, shapes, torch, rng):
    arrs = arrays(rng, *shapes)
    y, gs, w = grads_of(f, arrs)
    ty, tgs = torch_grads(torch, torchf, arrs, w)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    for g, tgrad in zip(gs, tgs):
        np.testing.assert_allclose(g, tgrad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,f,npf,torchf,shapes", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_and_gradgradcheck(name, f, npf, torchf, shapes, rng):
    ts = leaves(*arrays(rng, *shapes))
    assert tg.testing.gradcheck(f, ts)
    assert tg.testing.gradgradcheck(f, ts)


# NumPy's own functions on tensors record the same ops and give the same gradients
NUMPY_SPELLINGS = [
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=([1], [0])), lambda a, b: tg.tensordot(a, b, ([1], [0])),
     [(3, 4), (4, 2)]),
    ("dot", np.dot, tg.dot, [(2, 3, 4), (5, 4, 2)]),
    ("inner", np.inner, tg.inner, [(3, 4), (4,)]),
    ("outer", np.outer, tg.outer, [(3,), (2,)]),
    ("kron", np.kron, tg.kron, [(2, 2), (2, 3)]),
    ("cross", lambda a, b: np.cross(a, b, axis=0), lambda a, b: tg.cross(a, b, axis=0), [(3, 2), (3, 2)]),
    ("diff", lambda a: np.diff(a, 2, axis=0, prepend=0.0), lambda a: tg.diff(a, 2, axis=0, prepend=0.0), [(4, 3)]),
    ("fmax", np.fmax, tg.fmax, [(3,), (3,)]),
    ("fmin", np.fmin, tg.fmin, [(3,), (3,)]),
    ("logaddexp2", np.logaddexp2, tg.logaddexp2, [(3,), (3,)]),
    ("sinc", np.sinc, tg.sinc, [(4,)]),
    ("deg2rad", np.deg2rad, tg.deg2rad, [(4,)]),
    ("radians", np.radians, tg.radians, [(4,)]),
    ("rad2deg", np.rad2deg, tg.rad2deg, [(4,)]),
    ("degrees", np.degrees, tg.degrees, [(4,)]),
    ("hsplit", lambda a: np.hsplit(a, 2)[1], lambda a: tg.hsplit(a, 2)[1], [(3, 4)]),
    ("vsplit", lambda a: np.vsplit(a, [1])[1], lambda a: tg.vsplit(a, [1])[1], [(3, 4)]),
    ("dsplit", lambda a: np.dsplit(a, 2)[0], lambda a: tg.dsplit(a, 2)[0], [(2, 2, 4)]),
]


@pytest.mark.parametrize("name,npf,tgf,shapes", NUMPY_SPELLINGS, ids=[c[0] for c in NUMPY_SPELLINGS])
def test_numpy_function_on_tensors_gives_tapegrads_gradient(name, npf, tgf, shapes, rng):
    arrs = arrays(rng, *shapes)
    y_np, g_np, _ = grads_of(npf, arrs)
    y_tg, g_tg, _ = grads_of(tgf, arrs)
    ts = leaves(*arrs)
    y = npf(*ts)
    assert isinstance(y, tg.Tensor) and y.grad_fn is not None
    assert y.grad_fn.op == tgf(*ts).grad_fn.op
    np.testing.assert_array_equal(y_np, y_tg)
    for a, b in zip(g_np, g_tg):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(y_np, npf(*arrs), rtol=1e-12, atol=1e-12)  # and NumPy's own answer


def test_np_dot_mixes_an_ndarray_and_a_tensor():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tg.tensor(np.ones((5, 4, 2)), requires_grad=True)
    y = np.dot(a, x)
    assert isinstance(y, tg.Tensor) and y.shape == (2, 3, 5, 2)
    np.testing.assert_allclose(y.numpy(), np.dot(a, np.ones((5, 4, 2))))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(a.sum(axis=(0, 1))[None, :, None], (5, 4, 2)))


def test_methods():
    a = tg.tensor(np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(a.diff(axis=0).numpy(), np.diff(a.numpy(), axis=0))
    np.testing.assert_array_equal(a.dot(tg.ones(4)).numpy(), a.numpy() @ np.ones(4))
    np.testing.assert_array_equal(a.outer(tg.ones(2)).numpy(), np.outer(a.numpy(), np.ones(2)))
    np.testing.assert_array_equal(a.kron(tg.ones(1, 2)).numpy(), np.kron(a.numpy(), np.ones((1, 2))))
    np.testing.assert_array_equal(a.inner(a).numpy(), np.inner(a.numpy(), a.numpy()))
    assert [p.shape for p in a.hsplit(2)] == [(3, 2), (3, 2)]
    assert [p.shape for p in a.vsplit([1, 2])] == [(1, 4), (1, 4), (1, 4)]
    v = tg.tensor([[1.0, 0.0, 0.0]])
    assert v.cross(tg.tensor([0.0, 1.0, 0.0])).tolist() == [[0.0, 0.0, 1.0]]
    assert tg.tensor([180.0]).deg2rad().tolist() == pytest.approx([math.pi])
    assert tg.fmax(tg.tensor([1.0, math.nan]), 0.5).tolist() == [1.0, 0.5]


def test_int64_operands_follow_numpy():
    a, b = np.arange(6).reshape(2, 3), np.arange(3, 6)
    for f, npf in ((tg.outer, np.outer), (tg.kron, np.kron), (tg.cross, np.cross), (tg.fmax, np.fmax)):
        y = f(tg.tensor(a), tg.tensor(b))
        assert y.dtype == tg.int64
        np.testing.assert_array_equal(y.numpy(), npf(a, b))
    assert tg.diff(tg.tensor(b), prepend=1).tolist() == np.diff(b, prepend=1).tolist()
    y = tg.deg2rad(tg.tensor(b))
    assert y.dtype == tg.float64
    np.testing.assert_allclose(y.numpy(), np.deg2rad(b))


# ---- fmax / fmin: NaN is ignored, and the gradient follows the chosen operand (PyTorch's rule)

def test_fmax_fmin_nan_and_ties_match_pytorch(torch):
    nan = math.nan
    a = np.array([1.0, 2.0, nan, 3.0, nan, -1.0])
    b = np.array([1.0, 3.0, 1.0, nan, nan, -2.0])
    for name in ("fmax", "fmin"):
        y, (ga, gb), w = grads_of(getattr(tg, name), [a, b])
        np.testing.assert_array_equal(y, getattr(np, name)(a, b))
        ty, (tga, tgb) = torch_grads(torch, getattr(torch, name), [a, b], w)
        np.testing.assert_array_equal(ga, tga)
        np.testing.assert_array_equal(gb, tgb)
        assert not np.isnan(ga).any() and not np.isnan(gb).any()


# ---- sinc at and near 0: value 1, slope 0, curvature -pi^2/3

def test_sinc_at_zero_value_and_derivatives():
    x = tg.tensor([0.0, 1e-9, -1e-4, 1e-3, 0.5], dtype=tg.float64, requires_grad=True)
    y = tg.sinc(x)
    np.testing.assert_allclose(y.numpy(), np.sinc(x.detach().numpy()), rtol=1e-15)
    (g,) = tg.grad(y.sum(), [x], create_graph=True)
    xv = x.detach().numpy()
    # (cos(pi x) - sinc(x)) / x cancels near 0: there the derivative of the series is exact
    series = -np.pi ** 2 * xv / 3 + np.pi ** 4 * xv ** 3 / 30 - np.pi ** 6 * xv ** 5 / 840
    closed = (np.cos(np.pi * xv) - np.sinc(xv)) / np.where(xv == 0, 1, xv)
    exact = np.where(np.abs(xv) < 1e-2, series, closed)
    np.testing.assert_allclose(g.numpy(), exact, rtol=1e-9, atol=1e-15)
    assert g.numpy()[0] == 0.0
    (h,) = tg.grad(g.sum(), [x])
    assert h.numpy()[0] == pytest.approx(-math.pi ** 2 / 3, rel=1e-12)
    assert tg.testing.gradgradcheck(tg.sinc, [tg.tensor([0.0, 2e-3, -0.7], dtype=tg.float64,
                                                        requires_grad=True)])


def test_sinc_float32_at_zero():
    y = tg.sinc(tg.tensor([0.0, 1e-5, 2.5], dtype=tg.float32))
    assert y.dtype == tg.float32
    np.testing.assert_allclose(y.numpy(), np.sinc(np.array([0.0, 1e-5, 2.5], np.float32)), rtol=1e-6)


def test_logaddexp2_extremes():
    a = tg.tensor([1000.0, -1000.0, -math.inf, 3.0], dtype=tg.float64)
    b = tg.tensor([1000.0, -1001.0, -math.inf, math.inf], dtype=tg.float64)
    np.testing.assert_allclose(tg.logaddexp2(a, b).numpy(), np.logaddexp2(a.numpy(), b.numpy()))


# ---- hsplit / vsplit / dsplit: NumPy's rules

@pytest.mark.parametrize("shape", [(6,), (2, 6), (4, 4, 2)])
@pytest.mark.parametrize("how", [2, [1, 3], [0, 5, 2]])
def test_splits_match_numpy(shape, how):
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    t = tg.tensor(a)
    for name in ("hsplit", "vsplit", "dsplit"):
        try:
            want = getattr(np, name)(a, how)
        except ValueError:
            with pytest.raises(ValueError, match=name if name != "hsplit" or a.ndim else "hsplit"):
                getattr(tg, name)(t, how)
            continue
        got = getattr(tg, name)(t, how)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g.numpy(), w)


def test_split_gradient_flows_back():
    x = tg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    left, right = tg.hsplit(x, 2)
    (left.sum() + 2 * right.sum()).backward()
    assert x.grad.tolist() == [[1.0, 1.0, 2.0, 2.0]] * 3


# ---- errors name the function, the shapes and what was expected

def test_errors():
    with raises(ValueError, "tensordot", "(3, 4)", "(5, 2)", "size 4", "size 5"):
        tg.tensordot(tg.ones(3, 4), tg.ones(5, 2), axes=1)
    with raises(ValueError, "tensordot", "same length"):
        tg.tensordot(tg.ones(3, 4), tg.ones(4, 2), axes=([1], [0, 1]))
    with raises(ValueError, "tensordot", "axes=3"):
        tg.tensordot(tg.ones(3, 4), tg.ones(4, 2), axes=3)
    with raises(IndexError, "tensordot"):
        tg.tensordot(tg.ones(3, 4), tg.ones(4, 2), axes=([5], [0]))
    with raises(ValueError, "tensordot", "repeated"):
        tg.tensordot(tg.ones(3, 3), tg.ones(3, 3), axes=([0, 0], [0, 1]))
    with raises(TypeError, "tensordot", "int64"):
        tg.tensordot(tg.ones(3, 4, dtype=tg.int64), tg.ones(4, 2, dtype=tg.int64), axes=1)
    with raises(ValueError, "dot", "(2, 3)", "(4, 5)", "not aligned"):
        tg.dot(tg.ones(2, 3), tg.ones(4, 5))
    with raises(ValueError, "dot", "(2, 3, 4)", "(3,)"):
        np.dot(tg.ones(2, 3, 4), tg.ones(3))
    with raises(ValueError, "inner", "(2, 3)", "(4,)"):
        tg.inner(tg.ones(2, 3), tg.ones(4))
    with raises(ValueError, "cross", "(4, 2)", "expected 3"):
        tg.cross(tg.ones(4, 2), tg.ones(4, 2))
    with raises(ValueError, "cross", "(2, 3)", "(4, 3)", "broadcast"):
        tg.cross(tg.ones(2, 3), tg.ones(4, 3))
    with raises(ValueError, "diff", "non-negative"):
        tg.diff(tg.ones(3), n=-1)
    with raises(ValueError, "diff", "one dimensional"):
        tg.diff(tg.tensor(1.0))
    with raises(IndexError, "diff"):
        tg.diff(tg.ones(3), axis=2)
    with raises(ValueError, "diff", "prepend of shape (2, 1)", "(3, 4)", "axis 1"):
        tg.diff(tg.ones(3, 4), prepend=tg.ones(2, 1))
    with raises(ValueError, "diff", "append of shape (4,)", "(3, 4)"):
        tg.diff(tg.ones(3, 4), axis=0, append=tg.ones(4))
    with raises(ValueError, "hsplit", "equal division", "(2, 5)", "3"):
        tg.hsplit(tg.ones(2, 5), 3)
    with raises(ValueError, "vsplit", "2 or more"):
        tg.vsplit(tg.ones(4), 2)
    with raises(ValueError, "dsplit", "3 or more"):
        tg.dsplit(tg.ones(4, 2), 2)
    with raises(ValueError, "kron", "4 dims"):
        tg.kron(tg.ones(1, 1, 1, 1, 1), tg.ones(2))
    with raises(TypeError, "sinc", "int64"):
        tg.sinc(tg.ones(2, dtype=tg.int64))
    with raises(TypeError, "fmax", "bool"):
        tg.fmax(tg.ones(2, dtype=tg.bool), tg.ones(2, dtype=tg.bool))


# ---- property: tensordot over random axis pairings agrees with NumPy, and so does its gradient

@settings(max_examples=40)
@given(st.data())
def test_tensordot_property(data):
    nd_a = data.draw(st.integers(0, 4))
    shape_a = data.draw(st.lists(st.integers(1, 3), min_size=nd_a, max_size=nd_a))
    n = data.draw(st.integers(0, nd_a))
    ax = data.draw(st.permutations(range(nd_a)))[:n]
    free_b = data.draw(st.lists(st.integers(1, 3), max_size=2))
    order = data.draw(st.permutations(range(n + len(free_b))))
    dims_b = [shape_a[a] for a in ax] + free_b
    shape_b = [dims_b[i] for i in order]
    bx = [order.index(i) for i in range(n)]
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    ta, tb = leaves(a, b)
    y = tg.tensordot(ta, tb, axes=(list(ax), bx))
    want = np.tensordot(a, b, axes=(list(ax), bx))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(want.shape)
    (y * tg.tensor(w)).sum().backward()
    # the gradient of sum(w * tensordot(a, b)) with respect to a, by central differences
    np.testing.assert_allclose(
        ta.grad.numpy(), _numeric_grad(lambda a_: np.sum(w * np.tensordot(a_, b, axes=(list(ax), bx))), a),
        rtol=1e-6, atol=1e-8)


def _numeric_grad(f, a, h=1e-6):
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        up, dn = a.copy(), a.copy()
        up[i] += h
        dn[i] -= h
        g[i] = (f(up) - f(dn)) / (2 * h)
    return g


@settings(max_examples=40)
@given(st.data())
def test_diff_and_kron_property(data):
    """diff with random n, axis and prepend/append (0-d or full), and kron of
    random shapes of different ranks, against NumPy: values and the gradient
    of a weighted sum (by central differences)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.integers(0, 5))
    x = rng.standard_normal(shape)
    kw = {}
    for name in ("prepend", "append"):
        kind = data.draw(st.sampled_from(["none", "scalar", "full"]))
        if kind == "scalar":
            kw[name] = float(rng.standard_normal())
        elif kind == "full":
            s = list(shape)
            s[axis] = data.draw(st.integers(1, 3))
            kw[name] = rng.standard_normal(s)
    tx = tg.tensor(x, requires_grad=True)
    y = tg.diff(tx, n, axis, **{k: (v if isinstance(v, float) else tg.tensor(v)) for k, v in kw.items()})
    want = np.diff(x, n, axis, **kw)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)
    if want.size:
        w = rng.standard_normal(want.shape)
        (y * tg.tensor(w)).sum().backward()
        np.testing.assert_allclose(tx.grad.numpy(), _numeric_grad(lambda a: np.sum(w * np.diff(a, n, axis, **kw)), x),
                                   rtol=1e-5, atol=1e-6)
    sa = data.draw(st.lists(st.integers(1, 3), max_size=3))
    sb = data.draw(st.lists(st.integers(1, 3), max_size=3))
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(tg.kron(tg.tensor(a), tg.tensor(b)).numpy(), np.kron(a, b), rtol=1e-12, atol=1e-12)


def test_diff_of_order_zero_is_x_and_ignores_prepend_append():
    """NumPy returns x itself for n=0 (prepend/append are not joined)."""
    x = np.arange(3.0)
    y = tg.diff(tg.tensor(x), 0, prepend=9.0, append=tg.tensor([1.0, 2.0]))
    np.testing.assert_array_equal(y.numpy(), np.diff(x, 0, prepend=9.0, append=[1.0, 2.0]))
    assert y.shape == (3,)
