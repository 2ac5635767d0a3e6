"""The elementwise math ops of issue 14 against PyTorch (values and
gradients, float32 and float64, broadcasting, strided inputs, the edges of
each domain), second derivatives by finite differences, the integer rules
(division by zero, signs), the ``%`` and ``//`` operators and the errors.

The registry-driven tests (test_ops_registry.py) check the same ops against
their NumPy references and first derivatives; this file adds PyTorch as a
second oracle and the cases those examples do not reach.
"""
import gc
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises
from op_reference import examples as _examples

torch = pytest.importorskip("torch")

DT = {"f32": (tg.float32, torch.float32, np.float32), "f64": (tg.float64, torch.float64, np.float64)}
TOL = {"f32": dict(rtol=2e-5, atol=2e-6), "f64": dict(rtol=1e-12, atol=1e-13)}

# name: (torch function, input domain)
UNARY = {
    "tan": (torch.tan, (-1.2, 1.2)), "asin": (torch.asin, (-0.95, 0.95)),
    "acos": (torch.acos, (-0.95, 0.95)), "atan": (torch.atan, (-3, 3)),
    "sinh": (torch.sinh, (-3, 3)), "cosh": (torch.cosh, (-3, 3)), "asinh": (torch.asinh, (-3, 3)),
    "acosh": (torch.acosh, (1.05, 4)), "atanh": (torch.atanh, (-0.95, 0.95)),
    "log2": (torch.log2, (0.1, 4)), "log10": (torch.log10, (0.1, 4)),
    "log1p": (torch.log1p, (-0.9, 3)), "expm1": (torch.expm1, (-3, 3)),
    "exp2": (torch.exp2, (-3, 3)), "rsqrt": (torch.rsqrt, (0.1, 4)),
    "reciprocal": (torch.reciprocal, (0.2, 3)), "square": (torch.square, (-3, 3)),
    "floor": (torch.floor, (-3, 3)), "ceil": (torch.ceil, (-3, 3)), "trunc": (torch.trunc, (-3, 3)),
    "round": (torch.round, (-3, 3)), "sign": (torch.sign, (-3, 3)),
}
PIECEWISE = {"floor", "ceil", "trunc", "round", "sign"}
BINARY = {
    "atan2": (torch.atan2, False), "copysign": (torch.copysign, False),
    "logaddexp": (torch.logaddexp, False), "hypot": (torch.hypot, False),
    "fmod": (torch.fmod, True), "remainder": (torch.remainder, True),
    "floor_divide": (lambda a, b: torch.div(a, b, rounding_mode="floor"), True),
}
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 3))]


def _uniform(rng, shape, lo, hi):
    return rng.uniform(lo, hi, shape)


def _both(x, dt, requires_grad=True):
    tgdt, tdt, npdt = DT[dt]
    a = np.asarray(x, dtype=npdt)
    return (tg.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _close(t, ref, dt, **kw):
    tol = dict(TOL[dt])
    tol.update(kw)
    np.testing.assert_allclose(t.numpy().astype(np.float64), ref.detach().numpy().astype(np.float64),
                               equal_nan=True, **tol)


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_against_torch_on_a_strided_view(name, dt):
    tfn, (lo, hi) = UNARY[name]
    rng = np.random.default_rng(len(name))
    base = _uniform(rng, (5, 4), lo, hi)
    x, xt = _both(base, dt)
    v, vt = x.T[::2], xt.T[::2]  # a non-contiguous view, through the tape
    assert not v.is_contiguous
    y, yt = getattr(tg, name)(v), tfn(vt)
    assert y.dtype == DT[dt][0] and y.shape == tuple(yt.shape)
    _close(y, yt, dt)
    g = rng.standard_normal(y.shape)
    y.backward(tg.tensor(g, dtype=DT[dt][0]))
    yt.backward(torch.tensor(g, dtype=DT[dt][1]))
    _close(x.grad, xt.grad, dt, rtol=1e-4 if dt == "f32" else 1e-11)
    # the method spelling is the same op
    assert getattr(v, name)().grad_fn.op == y.grad_fn.op == name


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{a}-{b}" for a, b in SHAPES])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_against_torch_with_broadcasting(name, shapes, dt):
    tfn, b_away_from_zero = BINARY[name]
    rng = np.random.default_rng(7 + len(name))
    a0 = rng.standard_normal(shapes[0]) * 2
    b0 = rng.standard_normal(shapes[1]) * 2
    if b_away_from_zero:
        b0 = np.where(np.abs(b0) < 0.3, 0.3 + np.abs(b0), b0)
    a, at = _both(a0, dt)
    b, bt = _both(b0, dt)
    y, yt = getattr(tg, name)(a, b), tfn(at, bt)
    assert y.shape == tuple(yt.shape) and y.dtype == DT[dt][0]
    _close(y, yt, dt)
    g = rng.standard_normal(y.shape)
    y.backward(tg.tensor(g, dtype=DT[dt][0]))
    yt.backward(torch.tensor(g, dtype=DT[dt][1]))
    _close(a.grad, at.grad, dt, rtol=1e-4 if dt == "f32" else 1e-11)
    _close(b.grad, bt.grad, dt, rtol=1e-4 if dt == "f32" else 1e-11)


SMOOTH_UNARY = sorted(set(UNARY) - PIECEWISE)


@pytest.mark.parametrize("name", SMOOTH_UNARY)
def test_unary_second_derivatives(name):
    _, (lo, hi) = UNARY[name]
    x = tg.tensor(np.random.default_rng(3).uniform(lo, hi, (2, 3)), requires_grad=True)
    f = getattr(tg, name)
    assert gradcheck(f, [x])
    assert gradgradcheck(f, [x])


@pytest.mark.parametrize("name", ["atan2", "logaddexp", "hypot", "copysign", "fmod", "remainder"])
def test_binary_second_derivatives(name):
    rng = np.random.default_rng(5)
    a = tg.tensor(rng.uniform(0.3, 2, (2, 3)) * rng.choice([-1, 1], (2, 3)), requires_grad=True)
    b = tg.tensor(rng.uniform(0.4, 1.7, (3,)) * np.array([1, -1, 1]), requires_grad=True)
    f = getattr(tg, name)
    assert gradcheck(f, [a, b])
    assert gradgradcheck(f, [a, b])


def test_lerp_against_torch_tensor_and_scalar_weight():
    rng = np.random.default_rng(11)
    for dt in ("f32", "f64"):
        a, at = _both(rng.standard_normal((2, 3)), dt)
        b, bt = _both(rng.standard_normal((3,)), dt)
        w, wt = _both(rng.uniform(0, 1, (2, 1)), dt)
        y, yt = tg.lerp(a, b, w), torch.lerp(at, bt.expand(2, 3), wt)
        _close(y, yt, dt)
        y.sum().backward()
        yt.sum().backward()
        for t, r in ((a, at), (b, bt), (w, wt)):
            _close(t.grad, r.grad, dt)
        # a Python number as the weight, and the method
        y2 = a.lerp(b, 0.25)
        _close(y2, torch.lerp(at, bt.expand(2, 3), 0.25), dt)
    a = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = tg.tensor(rng.uniform(0, 1, (2, 3)), requires_grad=True)
    assert gradgradcheck(tg.lerp, [a, b, w])
    assert [e["op"] for e in tg.lerp(a, b, w).tape()] == ["sub", "mul", "add"]


# ---------------------------------------------------------------------------
# the edges of the domains: values and gradients as PyTorch, inf and nan too
# ---------------------------------------------------------------------------

EDGES = [
    ("acosh", [1.0, 0.5, math.inf]), ("atanh", [1.0, -1.0, 2.0]), ("log1p", [-1.0, -2.0, math.inf]),
    ("rsqrt", [0.0, -0.0, -1.0, math.inf]), ("asin", [1.0, -1.0, 1.5]), ("acos", [1.0, -1.0]),
    ("reciprocal", [0.0, -0.0, math.inf]), ("log2", [0.0, -1.0]), ("log10", [0.0, math.inf]),
    ("expm1", [-math.inf, 800.0]), ("exp2", [-math.inf, 2000.0]), ("tan", [math.pi / 2]),
    ("sign", [0.0, -0.0, math.inf, -math.inf]), ("floor", [math.inf, -0.5]),
    ("round", [0.5, 1.5, 2.5, -0.5, -2.5]), ("square", [math.inf, 1e30, -3.0]),
]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name,values", EDGES, ids=[e[0] for e in EDGES])
def test_domain_edges_like_torch(name, values, dt):
    x, xt = _both(values, dt)
    y, yt = getattr(tg, name)(x), getattr(torch, name)(xt)
    _close(y, yt, dt, rtol=1e-6)
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, dt, rtol=1e-6)


def test_fmod_and_remainder_by_zero_like_torch():
    for fn in ("fmod", "remainder"):
        a, at = _both([1.0, -2.0, 0.0], "f64")
        b, bt = _both([0.0, 0.0, 0.0], "f64")
        y, yt = getattr(tg, fn)(a, b), getattr(torch, fn)(at, bt)
        _close(y, yt, "f64")
        assert np.isnan(y.numpy()).all()
        y.sum().backward()
        yt.sum().backward()
        _close(a.grad, at.grad, "f64")
        _close(b.grad, bt.grad, "f64")
    # floor division of floats by zero: +-inf and nan, as NumPy and PyTorch
    q = tg.tensor([1.0, -1.0, 0.0]) // 0.0
    np.testing.assert_array_equal(q.numpy(), [np.inf, -np.inf, np.nan])


def test_sign_of_nan_follows_numpy():
    # NumPy keeps NaN (PyTorch gives 0): tapegrad uses NumPy's name and rule
    np.testing.assert_array_equal(tg.sign(tg.tensor([np.nan, -2.0, 0.0])).numpy(), [np.nan, -1, 0])


def test_logaddexp_is_stable():
    a = tg.tensor([1000.0, -1000.0, -np.inf, np.inf, 0.0])
    b = tg.tensor([1000.0, -1001.0, -np.inf, 3.0, -np.inf])
    np.testing.assert_allclose(tg.logaddexp(a, b).numpy(), np.logaddexp(a.numpy(), b.numpy()))


# ---------------------------------------------------------------------------
# rounding and sign conventions; integers
# ---------------------------------------------------------------------------

def test_round_half_to_even_and_decimals():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.245, 12345.678, -0.0])
    for d in (0, 1, 2, -1, -2):
        for npdt in (np.float32, np.float64):
            got = tg.round(tg.tensor(x.astype(npdt)), d)
            assert got.dtype == npdt
            np.testing.assert_array_equal(got.numpy(), np.round(x.astype(npdt), d))
            np.testing.assert_allclose(got.numpy(), torch.round(torch.tensor(x.astype(npdt)), decimals=d).numpy(),
                                       rtol=1e-6)
    i = np.array([15, 25, -15, 7, -7], dtype=np.int64)
    assert tg.round(tg.tensor(i)).dtype == tg.int64
    np.testing.assert_array_equal(tg.round(tg.tensor(i)).numpy(), i)
    np.testing.assert_array_equal(tg.round(tg.tensor(i), -1).numpy(), np.round(i, -1))


def test_div_rounding_modes_like_torch():
    a0 = np.array([[-7.5, 7.5, -7.0, 7.0, 0.0, -0.0]])
    b0 = np.array([[2.0], [-2.0]])
    for mode in (None, "trunc", "floor"):
        for dt in ("f32", "f64"):
            a, at = _both(a0, dt)
            b, bt = _both(b0, dt)
            y, yt = tg.div(a, b, rounding_mode=mode), torch.div(at, bt, rounding_mode=mode)
            _close(y, yt, dt)
            y.sum().backward()
            yt.sum().backward()
            _close(a.grad, at.grad, dt)
            _close(b.grad, bt.grad, dt)
            assert a.div(b, rounding_mode=mode).grad_fn.op == y.grad_fn.op
    assert tg.div(7, tg.tensor([2.0]), rounding_mode="floor").tolist() == [3.0]
    ia, ib = np.array([7, -7, 7, -7, 0]), np.array([2, 2, -2, -2, 3])
    got = tg.div(tg.tensor(ia), tg.tensor(ib), rounding_mode="trunc")
    assert got.dtype == tg.int64
    np.testing.assert_array_equal(got.numpy(), torch.div(torch.tensor(ia), torch.tensor(ib),
                                                         rounding_mode="trunc").numpy())


INT_FNS = {"floor_divide": np.floor_divide, "remainder": np.remainder, "fmod": np.fmod}


@pytest.mark.parametrize("name", sorted(INT_FNS))
def test_integer_division_like_numpy_including_by_zero(name):
    rng = np.random.default_rng(2)
    a = rng.integers(-20, 21, (6, 7))
    b = rng.integers(-4, 5, (7,))  # includes 0
    assert (b == 0).any()
    got = getattr(tg, name)(tg.tensor(a), tg.tensor(b))
    assert got.dtype == tg.int64
    with np.errstate(divide="ignore", invalid="ignore"):
        want = INT_FNS[name](a, b)
    np.testing.assert_array_equal(got.numpy(), want)
    # the corner that is undefined behaviour in C
    lo = np.array([np.iinfo(np.int64).min, 5], dtype=np.int64)
    m1 = np.array([-1, -1], dtype=np.int64)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(getattr(tg, name)(tg.tensor(lo), tg.tensor(m1)).numpy(),
                                      INT_FNS[name](lo, m1))


def test_int64_square_sign_floor_stay_int64_like_numpy():
    i = np.array([-3, 0, 4, 3037000500], dtype=np.int64)
    for name in ("square", "sign", "floor", "ceil", "trunc"):
        got = getattr(tg, name)(tg.tensor(i))
        assert got.dtype == tg.int64, name
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(got.numpy(), getattr(np, name)(i))
    # float functions of integers compute in float64 (NumPy)
    assert tg.log2(tg.tensor([1, 8])).dtype == tg.float64
    assert tg.atan2(tg.tensor([1]), tg.tensor([1])).dtype == tg.float64


def test_mod_and_floordiv_operators_follow_python():
    a = np.array([-7.0, 7.0, -7.5, 7.5, 0.0])
    b = np.array([2.0, -2.0, 2.0, -2.0, -3.0])
    ta, tb = tg.tensor(a), tg.tensor(b)
    np.testing.assert_array_equal((ta % tb).numpy(), [x % y for x, y in zip(a, b)])
    np.testing.assert_array_equal((ta // tb).numpy(), [x // y for x, y in zip(a, b)])
    np.testing.assert_array_equal(tg.fmod(ta, tb).numpy(), [math.fmod(x, y) for x, y in zip(a, b)])
    # reflected, scalars, integers
    assert (7 % tg.tensor([3, -3])).tolist() == [1, -2]
    assert (7 // tg.tensor([2, -2])).tolist() == [3, -4]
    assert (tg.tensor([7, -7]) % 3).dtype == tg.int64
    assert (tg.tensor([7.5]) // 2).tolist() == [3.0]
    # in place
    x = tg.tensor([7.0, -7.0])
    x %= 3
    assert x.tolist() == [1.0, 2.0]
    y = tg.tensor([7, -7])
    y //= 2
    assert y.tolist() == [3, -4] and y.dtype == tg.int64
    # the remainder's gradient through the operator
    p = tg.tensor([5.0], requires_grad=True)
    q = tg.tensor([3.0], requires_grad=True)
    (p % q).sum().backward()
    assert p.grad.tolist() == [1.0] and q.grad.tolist() == [-1.0]


def test_nan_to_num_like_numpy_and_torch():
    vals = [np.nan, np.inf, -np.inf, 1.5, -2.0]
    for npdt in (np.float32, np.float64):
        x = np.array(vals, dtype=npdt)
        np.testing.assert_array_equal(tg.nan_to_num(tg.tensor(x)).numpy(), np.nan_to_num(x))
        np.testing.assert_array_equal(tg.tensor(x).nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0).numpy(),
                                      np.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-3.0))
    x, xt = _both(vals, "f64")
    y, yt = tg.nan_to_num(x, nan=0.5), torch.nan_to_num(xt, nan=0.5)
    _close(y, yt, "f64")
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, "f64")
    i = tg.tensor([1, 2])
    assert tg.nan_to_num(i).dtype == tg.int64 and tg.nan_to_num(i).tolist() == [1, 2]


def test_copysign_keeps_the_sign_of_zero():
    got = tg.copysign(tg.tensor([1.0, 2.0, 0.0]), tg.tensor([-0.0, 0.0, -1.0])).numpy()
    np.testing.assert_array_equal(np.signbit(got), [True, False, True])


# ---------------------------------------------------------------------------
# errors name the op and what was expected
# ---------------------------------------------------------------------------

def test_errors_name_the_op():
    x = tg.tensor([1.0, 2.0])
    with raises(ValueError, "div", "rounding_mode", "'trunc'", "'floor'"):
        tg.div(x, x, rounding_mode="round")
    with raises(ValueError, "div", "rounding_mode"):
        x.div(x, rounding_mode="true")
    with raises(TypeError, "round", "decimals"):
        x.round(1.5)
    with raises(ValueError, "round", "decimals"):
        tg.round(x, 10**6)
    with raises(TypeError, "lerp", "int64"):
        tg.lerp(tg.tensor([1, 2]), tg.tensor([3, 4]), 0.5)
    with raises(ValueError, "lerp"):
        tg.lerp(x, tg.tensor([1.0, 2.0, 3.0]), 0.5)
    with raises(TypeError, "nan_to_num", "posinf"):
        tg.nan_to_num(x, posinf="big")
    with raises(ValueError, "atan2", "(2,)", "(3,)"):
        tg.atan2(x, tg.tensor([1.0, 2.0, 3.0]))
    with raises(ValueError, "remainder"):
        x % tg.tensor([1.0, 2.0, 3.0])
    with raises(TypeError):
        x // "a"
    with raises(TypeError, "lerp", "weight"):
        x.lerp(x)


def test_numpy_spellings_are_aliases():
    x = tg.tensor([0.5])
    for np_name, name in (("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"), ("arctan2", "atan2"),
                          ("arcsinh", "asinh"), ("arccosh", "acosh"), ("arctanh", "atanh"),
                          ("mod", "remainder"), ("true_divide", "div")):
        assert getattr(tg, np_name) is getattr(tg, name)
    assert tg.arccosh(tg.tensor([2.0])).tolist() == pytest.approx([math.acosh(2.0)])
    assert tg.arcsin(x).grad_fn is None


# ---------------------------------------------------------------------------
# Hypothesis: the division identities with broadcasting, floats and ints
# ---------------------------------------------------------------------------

_PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


@settings(max_examples=int(os.environ.get("TAPEGRAD_HYPOTHESIS_EXAMPLES", 40)), deadline=None)
@given(shapes=_PAIRS, seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["int", "f32", "f64"]))
def test_division_family_matches_numpy_property(shapes, seed, kind):
    (sa, sb), _ = shapes
    rng = np.random.default_rng(seed)
    if kind == "int":
        a = rng.integers(-50, 51, sa)
        b = rng.integers(-6, 7, sb)  # zeros included: NumPy's 0
    else:
        dt = np.float32 if kind == "f32" else np.float64
        a = (rng.standard_normal(sa) * 10).astype(dt)
        b = (rng.standard_normal(sb) * 3).astype(dt)
        b = np.where(rng.random(sb) < 0.1, 0, b).astype(dt)  # some zeros: inf and nan
    ta, tb = tg.tensor(a), tg.tensor(b)
    with np.errstate(all="ignore"):
        for got, want in ((ta // tb, np.floor_divide(a, b)), (ta % tb, np.remainder(a, b)),
                          (tg.fmod(ta, tb), np.fmod(a, b))):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got.numpy(), want)
        if kind == "int":
            # a == b * (a // b) + a % b wherever b != 0
            q, r = (ta // tb).numpy(), (ta % tb).numpy()
            ok = np.broadcast_to(b != 0, q.shape)
            np.testing.assert_array_equal((b * q + r)[ok], np.broadcast_to(a, q.shape)[ok])
            t = tg.div(ta, tb, rounding_mode="trunc").numpy()
            np.testing.assert_array_equal((b * t + tg.fmod(ta, tb).numpy())[ok], np.broadcast_to(a, q.shape)[ok])


# ---------------------------------------------------------------------------
# no tensor outlives a first- and second-order backward of these ops
# ---------------------------------------------------------------------------

_OPS = {op["name"]: op for op in tg.ops()}
ISSUE14_OPS = [
    # math
    "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "log10", "log1p",
    "expm1", "exp2", "rsqrt", "reciprocal", "square", "floor", "ceil", "trunc", "round", "sign", "atan2",
    "copysign", "logaddexp", "hypot", "fmod", "remainder", "floor_divide", "trunc_divide", "lerp",
    "nan_to_num",
    # activations
    "elu", "selu", "celu", "hardtanh", "relu6", "hardsigmoid", "hardswish", "logsigmoid", "softsign", "mish",
    "gelu_tanh", "softplus_beta", "softmin", "glu",
]


def _second_order_cycle(name):
    op = _OPS[name]
    for k, _text, ptext in _examples(op):
        ins, _ = tg._C._op_example(name, k, tg.float64)
        xs = []
        for i, t in enumerate(ins):
            if t.dtype == tg.float64 and i in op["differentiable_inputs"]:
                t.requires_grad = True
                xs.append(t)
        out = tg._C._op_apply(name, ins, ptext)
        gs = tg.grad([out.sum()], xs, create_graph=True)
        live = [g for g in gs if g is not None and g.requires_grad]
        if live:
            tg.grad([sum(g.sum() for g in live)], xs)


@pytest.mark.parametrize("name", ISSUE14_OPS)
def test_second_order_backward_frees_every_tensor(name):
    assert name in _OPS
    _second_order_cycle(name)  # warm up the allocator's cache
    gc.collect()
    before = tg.memory_stats()["live_bytes"]
    for _ in range(5):
        _second_order_cycle(name)
    gc.collect()
    assert tg.memory_stats()["live_bytes"] <= before, f"{name}: tensor memory still alive after backward"
