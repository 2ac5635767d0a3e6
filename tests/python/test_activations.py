"""The activations of issue 14 against PyTorch: values and gradients in
float32 and float64 on strided inputs, the corners of the piecewise
functions, second derivatives, the ``nn`` modules (constructor arguments,
``extra_repr``, outputs) and the errors."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")
F = torch.nn.functional
tf = tg.nn.functional

DT = {"f32": (tg.float32, torch.float32, np.float32), "f64": (tg.float64, torch.float64, np.float64)}
TOL = {"f32": dict(rtol=3e-5, atol=3e-6), "f64": dict(rtol=1e-11, atol=1e-12)}
# PyTorch's float64 backward of these uses float32 constants (1/alpha, 1/6):
# its gradients are off by ~1e-8 relative, tapegrad's are exact (checked
# against exp(x / alpha) and 1/6 in test_celu_and_hardsigmoid_gradients_are_exact)
LOOSE_F64_GRAD = {"celu", "hardsigmoid"}

# name: (tapegrad function, PyTorch function)
FUNCS = {
    "elu": (tf.elu, F.elu), "elu_alpha": (lambda x: tf.elu(x, alpha=0.3), lambda x: F.elu(x, alpha=0.3)),
    "selu": (tf.selu, F.selu), "celu": (lambda x: tf.celu(x, 0.7), lambda x: F.celu(x, 0.7)),
    "silu": (tf.silu, F.silu), "swish": (tg.swish, F.silu), "mish": (tf.mish, F.mish),
    "hardtanh": (lambda x: tf.hardtanh(x, -0.5, 1.5), lambda x: F.hardtanh(x, -0.5, 1.5)),
    "relu6": (tf.relu6, F.relu6), "hardsigmoid": (tf.hardsigmoid, F.hardsigmoid),
    "hardswish": (tf.hardswish, F.hardswish), "softsign": (tf.softsign, F.softsign),
    "logsigmoid": (tf.logsigmoid, F.logsigmoid), "gelu": (tf.gelu, F.gelu),
    "gelu_tanh": (lambda x: tf.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "softplus": (tf.softplus, F.softplus),
    "softplus_beta": (lambda x: tf.softplus(x, beta=2.0, threshold=3.0),
                      lambda x: F.softplus(x, beta=2.0, threshold=3.0)),
    "softplus_neg_beta": (lambda x: tf.softplus(x, beta=-0.5), lambda x: F.softplus(x, beta=-0.5)),
    "softmin": (lambda x: tf.softmin(x, dim=0), lambda x: F.softmin(x, dim=0)),
    "softmin_last": (lambda x: x.softmin(axis=-1), lambda x: F.softmin(x, dim=-1)),
    "glu": (lambda x: tf.glu(x, dim=0), lambda x: F.glu(x, dim=0)),
    "glu_last": (tf.glu, F.glu),
}


def _pair(a, dt):
    _, tdt, npdt = DT[dt]
    a = np.asarray(a, dtype=npdt)
    return tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(t, r, dt, **kw):
    tol = dict(TOL[dt], **kw)
    np.testing.assert_allclose(t.numpy().astype(np.float64), r.detach().numpy().astype(np.float64),
                               equal_nan=True, **tol)


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_against_torch_on_a_strided_view(name, dt):
    fn, tfn = FUNCS[name]
    rng = np.random.default_rng(len(name))
    base = rng.standard_normal((8, 4)) * 3
    x, xt = _pair(base, dt)
    v, vt = x.T[:, ::2], xt.T[:, ::2]  # non-contiguous, through the tape
    y, yt = fn(v), tfn(vt)
    assert y.shape == tuple(yt.shape) and y.dtype == DT[dt][0]
    _close(y, yt, dt)
    g = rng.standard_normal(y.shape)
    y.backward(tg.tensor(g, dtype=DT[dt][0]))
    yt.backward(torch.tensor(g, dtype=DT[dt][1]))
    _close(x.grad, xt.grad, dt, rtol=1e-4 if dt == "f32" else 1e-6 if name in LOOSE_F64_GRAD else 1e-10)


def test_celu_and_hardsigmoid_gradients_are_exact():
    x = tg.tensor([-0.9, -2.3, 1.3], dtype=tg.float64, requires_grad=True)
    tg.celu(x, 0.7).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [math.exp(-0.9 / 0.7), math.exp(-2.3 / 0.7), 1.0], rtol=1e-15)
    x.grad = None
    tg.hardsigmoid(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1 / 6, 1 / 6, 1 / 6])


# the corners and the far ends, where PyTorch's conventions decide
EDGE = np.array([-1e4, -30.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, 6.0, 20.0, 25.0, 1e4,
                 np.inf, -np.inf])


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(n for n in FUNCS if not n.startswith(("softmin", "glu"))))
def test_corners_and_extremes_like_torch(name, dt):
    fn, tfn = FUNCS[name]
    # PyTorch's float32 gelu gives nan at +inf (tapegrad: inf, as its float64)
    x, xt = _pair(EDGE[:-2] if name == "gelu" else EDGE, dt)
    y, yt = fn(x), tfn(xt)
    # float32: gelu's 1 + erf(x / sqrt 2) cancels near x = -3 (5e-7 absolute there)
    _close(y, yt, dt, rtol=1e-6, atol=1e-6 if dt == "f32" else 1e-12)
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, dt, rtol=1e-6)


SMOOTH = ["elu", "selu", "celu", "mish", "softsign", "logsigmoid", "gelu", "gelu_tanh", "softplus",
          "softplus_beta", "softmin", "glu", "hardswish", "hardsigmoid", "hardtanh", "relu6"]


@pytest.mark.parametrize("name", SMOOTH)
def test_second_derivatives(name):
    fn, _ = FUNCS[name]
    rng = np.random.default_rng(9)
    # away from the corners of the piecewise functions (0, +-1, +-3, 6)
    x0 = rng.uniform(0.1, 0.4, (4, 3)) * rng.choice([-1, 1], (4, 3)) + rng.choice([-2, 2, 4], (4, 3))
    x = tg.tensor(x0, requires_grad=True)
    assert gradcheck(fn, [x])
    assert gradgradcheck(fn, [x])


def test_softplus_threshold_and_beta_follow_torch():
    x = np.array([-50.0, -1.0, 0.0, 9.9, 10.1, 19.0, 21.0, 800.0])
    for beta, th in ((1.0, 20.0), (2.0, 20.0), (0.5, 5.0), (1.0, None)):
        a, at = _pair(x, "f64")
        y = tf.softplus(a, beta=beta, threshold=th)
        yt = F.softplus(at, beta=beta, threshold=th if th is not None else math.inf)
        if th is None:  # PyTorch overflows to inf at 800; tapegrad's softplus does not
            np.testing.assert_allclose(y.numpy(), np.logaddexp(0, x), rtol=1e-15)
            yt = torch.where(torch.isinf(yt), at, yt)
        _close(y, yt, "f64")
        y.sum().backward()
        yt.sum().backward()
        gt = at.grad
        if th is None:  # and its gradient there is nan; tapegrad's is 1
            assert a.grad.tolist()[-1] == 1.0
            gt = torch.where(torch.isnan(gt), 1.0, gt)
        _close(a.grad, gt, "f64")
    # the default is PyTorch's (linear beyond 20: the gradient is exactly 1 there)
    a = tg.tensor([21.0], dtype=tg.float64, requires_grad=True)
    tg.softplus(a).backward()
    assert a.grad.tolist() == [1.0]
    # threshold=None (or inf) with beta=1 is the plain stable op
    assert tg.softplus(a, threshold=None).grad_fn.op == "softplus"
    assert tg.softplus(a).grad_fn.op == "softplus_beta"


def test_composites_record_their_constituents():
    x = tg.randn(2, 4, requires_grad=True)
    assert [e["op"] for e in tg.mish(x).tape()] == ["softplus", "tanh", "mul"]
    assert [e["op"] for e in tg.relu6(x).tape()] == ["hardtanh"]
    assert [e["op"] for e in tg.softmin(x).tape()] == ["neg", "softmax"]
    assert tg.glu(x).grad_fn.op == "mul"
    composite = {op["name"] for op in tg.ops() if op.get("composite")}
    assert {"mish", "relu6", "softsign", "softmin", "glu"} <= composite


MODULES = [
    (lambda nn: nn.ELU(), "ELU(alpha=1.0)"),
    (lambda nn: nn.ELU(alpha=0.5, inplace=True), "ELU(alpha=0.5, inplace=True)"),
    (lambda nn: nn.SELU(), "SELU()"),
    (lambda nn: nn.CELU(0.7), "CELU(alpha=0.7)"),
    (lambda nn: nn.SiLU(), "SiLU()"),
    (lambda nn: nn.Mish(), "Mish()"),
    (lambda nn: nn.Hardtanh(-2.0, 2.0), "Hardtanh(min_val=-2.0, max_val=2.0)"),
    (lambda nn: nn.ReLU6(), "ReLU6()"),
    (lambda nn: nn.Hardsigmoid(), "Hardsigmoid()"),
    (lambda nn: nn.Hardswish(), "Hardswish()"),
    (lambda nn: nn.Softsign(), "Softsign()"),
    (lambda nn: nn.LogSigmoid(), "LogSigmoid()"),
    (lambda nn: nn.GELU(), "GELU(approximate='none')"),
    (lambda nn: nn.GELU(approximate="tanh"), "GELU(approximate='tanh')"),
    (lambda nn: nn.Softplus(beta=2.0, threshold=3.0), "Softplus(beta=2.0, threshold=3.0)"),
    (lambda nn: nn.Softmin(dim=1), "Softmin(dim=1)"),
    (lambda nn: nn.GLU(dim=0), "GLU(dim=0)"),
]


@pytest.mark.parametrize("make,want", MODULES, ids=[w for _, w in MODULES])
def test_modules_match_torch(make, want):
    m, mt = make(tg.nn), make(torch.nn)
    assert repr(m) == repr(mt) == want
    x0 = np.random.default_rng(1).standard_normal((4, 6)) * 3
    x, xt = _pair(x0, "f64")
    y, yt = m(x), mt(xt.clone())  # torch's inplace=True would write into xt
    _close(y, yt, "f64")
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, "f64", rtol=1e-6 if want.startswith(("CELU", "Hardsigmoid")) else 1e-11)
    np.testing.assert_array_equal(x.numpy(), x0)  # inplace=True leaves the input unchanged here
    assert m.parameters() == [] or list(m.parameters()) == []


def test_modules_are_exported_and_in_a_sequential():
    for name in ("ELU", "SELU", "CELU", "SiLU", "Mish", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish",
                 "Softsign", "LogSigmoid", "GELU", "Softplus", "Softmin", "GLU"):
        assert name in tg.nn.__all__ and getattr(tg.nn, name).__doc__
    net = tg.nn.Sequential(tg.nn.Linear(3, 8), tg.nn.GELU(approximate="tanh"), tg.nn.Linear(8, 4),
                           tg.nn.GLU(), tg.nn.Softplus())
    assert net(tg.randn(5, 3)).shape == (5, 2)
    with raises(TypeError, "ELU", "beta"):
        tg.nn.ELU(beta=1.0)
    with raises(TypeError, "positional"):
        tg.nn.Softsign(1.0)


def test_logsigmoid_is_stable():
    x = tg.tensor([-1000.0, 1000.0, 0.0], dtype=tg.float64, requires_grad=True)
    y = tg.logsigmoid(x)
    np.testing.assert_allclose(y.numpy(), [-1000.0, 0.0, -math.log(2)])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 0.5])


def test_elu_second_order_has_no_nan_for_large_inputs():
    # exp is taken of min(x, 0): the untaken branch cannot overflow into 0 * inf
    x = tg.tensor([800.0, -1.0], dtype=tg.float64, requires_grad=True)
    (g,) = tg.grad([tg.elu(x).sum()], [x], create_graph=True)
    (h,) = tg.grad([g.sum()], [x])
    np.testing.assert_allclose(h.numpy(), [0.0, math.exp(-1.0)])


def test_errors_name_the_op():
    x = tg.randn(3, 5)
    with raises(ValueError, "glu", "even", "(3, 5)"):
        tg.glu(x)
    with raises(IndexError, "glu", "axis"):
        tg.glu(x, axis=4)
    with raises(ValueError, "hardtanh", "min_val"):
        tg.hardtanh(x, 1.0, -1.0)
    with raises(ValueError, "gelu", "approximate", "'tanh'"):
        tg.gelu(x, approximate="exact")
    with raises(ValueError, "celu", "alpha"):
        tg.celu(x, 0.0)
    with raises(ValueError, "softplus", "beta"):
        tg.softplus(x, beta=0.0)
    with raises(TypeError, "elu", "alpha"):
        tg.elu(x, alpha="big")
    with raises(IndexError, "softmin"):
        tg.softmin(x, axis=3)
    with raises(TypeError, "softmin", "axis", "dim"):
        tg.softmin(x, axis=0, dim=0)



def test_int64_inputs_compute_in_float64():
    # as relu and sigmoid (NumPy's rule for float functions of integers)
    i = tg.tensor([[-2, 1, 0, 3]])
    for fn in (tg.mish, tg.softsign, tg.elu, tg.selu, tg.hardswish, tg.hardsigmoid, tg.logsigmoid, tg.relu6,
               tg.glu, tg.softmin, tg.gelu, tg.softplus, tg.celu, tg.hardtanh):
        y = fn(i)
        assert y.dtype == tg.float64, fn
        np.testing.assert_array_equal(y.numpy(), fn(i.astype(tg.float64)).numpy())
