"""The vector erf and GELU kernels of csrc/kernels/vmath.h (issue 16).

* erf (float32) against float64 on a sweep of float32 bit patterns, a dense
  grid over the polynomials and the special values, within the header's
  1.5 ulp;
* gelu and gelu(approximate='tanh'), forward and the fused first-order
  backward, against float64 with the header's absolute bounds, and against
  PyTorch's float32 (the tolerance: our bound plus PyTorch's own error on
  the same element, measured against float64 here -- the triangle
  inequality, nothing looser);
* gradcheck and gradgradcheck in float64 (the second order goes through the
  VJP written with ops, the first order through the fused kernel: both are
  checked, and against each other);
* strided and broadcast operands give the bits of contiguous ones, one and
  two threads give the same bits, NaN and inf follow the formula.

Every test runs once per vector-math path this CPU can run (the autouse
fixture; conftest.py lists what ran).
"""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck
from assertions import ulp_errors


torch = pytest.importorskip("torch")
tf = tg.nn.functional

ULP_ERF = 1.5              # ulps of the correctly rounded result
ULPX_GELU = 2.0            # gelu, gelu_tanh: absolute error in ulps of x
U24_GRAD = {"none": 3.0, "tanh": 12.0}  # gradients (times g): units of 2^-24 |g|
TWO_M24 = 2.0 ** -24


@pytest.fixture(autouse=True)
def _every_vmath_path(vmath_path):
    yield vmath_path


def erf64(x):
    with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns warn when cast
        x64 = np.asarray(x, np.float64)
    return torch.erf(torch.from_numpy(x64)).numpy()


def ref_gelu(x, approximate):
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        if approximate == "none":
            return 0.5 * x * (1 + erf64(x / math.sqrt(2)))
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_gelu_grad(x, approximate):
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        if approximate == "none":
            return 0.5 * (1 + erf64(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)


def ulp_of(x):
    """The spacing of float32 at |x| (the smallest subnormal at 0)."""
    return np.maximum(np.spacing(np.abs(np.asarray(x, np.float32))).astype(np.float64),
                      np.float64(np.finfo(np.float32).smallest_subnormal))


ERF_SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.99999994, 1.0000001,
                         3.9192, -3.9192, 3.92, 4.0, -4.0, 4.0000005, 10.0, -30.0, 1e-45, -1e-45,
                         1.17549435e-38, 1e-20, 3.4e38, -3.4e38], np.float32)


def erf_inputs():
    bits = np.arange(0, 2 ** 32, 7919, dtype=np.uint64).astype(np.uint32)
    dense = np.linspace(-5, 5, 400_001, dtype=np.float32)
    return np.concatenate([bits.view(np.float32), dense, ERF_SPECIALS])


def test_erf_float32_within_its_bound():
    x = erf_inputs()
    got = tg.erf(tg.tensor(x)).numpy()
    err = ulp_errors(got, erf64(x))
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_ERF, f"erf({x[worst]!r}) = {got[worst]!r}: {err[worst]:.3f} ulp"


def test_erf_special_values_as_erff():
    got = tg.erf(tg.tensor(ERF_SPECIALS)).numpy()
    with np.errstate(all="ignore"):
        libm = np.array([math.erf(float(v)) if not math.isnan(v) else math.nan for v in ERF_SPECIALS],
                        np.float32)
    # +-1 exactly above 3.9192057 (as the correctly rounded erf and glibc's erff),
    # +-0 keeps its sign, NaN stays NaN, infinities saturate
    sat = np.abs(ERF_SPECIALS) > np.float32(3.9192057)
    assert np.all(got[sat] == np.sign(ERF_SPECIALS[sat]))
    assert got[0] == 0 and not np.signbit(got[0]) and got[1] == 0 and np.signbit(got[1])
    assert np.isnan(got[4])
    # and the same values as the float32 of libm's erf wherever that is exact to 1 ulp
    np.testing.assert_array_max_ulp(got[~np.isnan(got)], libm[~np.isnan(libm)], maxulp=2)


def test_erf_saturates_exactly_where_the_rounded_erf_does():
    x = np.arange(np.float32(3.9).view(np.uint32), np.float32(4.1).view(np.uint32),
                  dtype=np.uint32).view(np.float32)
    y = tg.erf(tg.tensor(x)).numpy()
    last = x[np.nonzero(y != 1)[0][-1]]
    assert last == np.float32(3.9192057)
    assert np.all(tg.erf(tg.tensor(-x)).numpy() == -y)


def test_erf_float64_is_libm():
    x = np.linspace(-6, 6, 1001)
    got = tg.erf(tg.tensor(x)).numpy()
    np.testing.assert_array_equal(got, np.array([math.erf(v) for v in x]))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_forward_and_fused_backward_within_bounds(approximate):
    rng = np.random.default_rng(3)
    x = np.concatenate([np.linspace(-12, 12, 240_001, dtype=np.float32),
                        (rng.standard_normal(20_000) * 3).astype(np.float32)])
    g = rng.choice(np.array([0.5, 1.0, -1.5, 3.0], np.float32), x.size)
    t = tg.tensor(x, requires_grad=True)
    y = tf.gelu(t, approximate=approximate)
    err = np.abs(y.numpy().astype(np.float64) - ref_gelu(x, approximate)) / ulp_of(x)
    worst = int(np.argmax(err))
    assert err[worst] <= ULPX_GELU, f"gelu({x[worst]!r}): {err[worst]:.3f} ulp of x"
    y.backward(tg.tensor(g))
    want = g.astype(np.float64) * ref_gelu_grad(x, approximate)
    err = np.abs(t.grad.numpy().astype(np.float64) - want) / (np.abs(g) * TWO_M24)
    worst = int(np.argmax(err))
    assert err[worst] <= U24_GRAD[approximate], f"gelu'({x[worst]!r}): {err[worst]:.3f} x 2^-24"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_matches_pytorch(approximate):
    """|ours - torch| <= |ours - exact| + |torch - exact|, with the first
    term at most our stated bound: so the test asserts exactly that bound
    against PyTorch, with PyTorch's own error measured per element."""
    rng = np.random.default_rng(5)
    x = np.concatenate([(rng.standard_normal((16, 64, 512)) * 2).astype(np.float32).ravel(),
                        np.linspace(-8, 8, 16_001, dtype=np.float32)])
    g = rng.standard_normal(x.size).astype(np.float32)
    t = tg.tensor(x, requires_grad=True)
    y = tf.gelu(t, approximate=approximate)
    y.backward(tg.tensor(g))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(g))
    ours, theirs = y.numpy().astype(np.float64), yt.detach().numpy().astype(np.float64)
    exact = ref_gelu(x, approximate)
    slack = ULPX_GELU * ulp_of(x) + np.abs(theirs - exact) + 1e-45
    assert np.all(np.abs(ours - theirs) <= slack)
    ours, theirs = t.grad.numpy().astype(np.float64), xt.grad.numpy().astype(np.float64)
    exact = g.astype(np.float64) * ref_gelu_grad(x, approximate)
    slack = U24_GRAD[approximate] * TWO_M24 * np.abs(g) + np.abs(theirs - exact) + 1e-45
    assert np.all(np.abs(ours - theirs) <= slack)
    # and the agreement is close in absolute terms: a few float32 ulps of 1
    assert np.max(np.abs(ours - theirs)) < 4e-6


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_special_values_follow_the_formula_as_pytorch(approximate):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 30.0, -30.0, 1e-40, 3.4e38], np.float32)
    t = tg.tensor(x, requires_grad=True)
    y = tf.gelu(t, approximate=approximate)
    y.backward(tg.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.ones_like(yt))
    got, want = y.numpy(), yt.detach().numpy()
    # PyTorch's vectorized float32 gelu gives NaN at +inf, and overflows to inf
    # at 3.4e38 (x (1 + erf) before the 0.5); the formula (and PyTorch's
    # float64) gives +inf and x, as tapegrad does
    assert got[2] == np.inf and got[8] == x[8]
    keep = (np.arange(x.size) != 2) & (np.arange(x.size) != 8)
    np.testing.assert_array_equal(got[keep], want[keep])
    assert np.signbit(got[1]) and np.signbit(got[6])
    gg, gw = t.grad.numpy(), xt.grad.numpy()
    np.testing.assert_array_equal(np.isnan(gg), np.isnan(gw))
    fin = ~np.isnan(gw) & (np.arange(x.size) != 8)  # PyTorch's tanh gradient at 3.4e38 is NaN
    np.testing.assert_array_equal(gg[fin], gw[fin])


@pytest.mark.parametrize("fn", ["erf", "gelu", "gelu_tanh"])
def test_gradcheck_and_gradgradcheck_float64(fn):
    f = {"erf": tg.erf, "gelu": tf.gelu, "gelu_tanh": lambda x: tf.gelu(x, approximate="tanh")}[fn]
    rng = np.random.default_rng(11)
    x0 = np.concatenate([rng.uniform(-4, 4, 10), [-0.3, 0.0, 0.7, 2.5, -5.0]]).reshape(3, 5)
    x = tg.tensor(x0, requires_grad=True)
    assert gradcheck(f, [x])
    assert gradgradcheck(f, [x])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fused_first_order_agrees_with_the_differentiable_vjp(dtype, approximate):
    """backward without create_graph takes the one-pass kernel; with
    create_graph, the VJP made of ops: the two gradients agree."""
    rng = np.random.default_rng(13)
    x0 = (rng.standard_normal((37, 29)) * 3).astype(dtype)
    g0 = rng.standard_normal((37, 29)).astype(dtype)
    x = tg.tensor(x0, requires_grad=True)
    (fused,) = tg.grad(tf.gelu(x, approximate=approximate), x, grad_outputs=tg.tensor(g0))
    (ops,) = tg.grad(tf.gelu(x, approximate=approximate), x, grad_outputs=tg.tensor(g0), create_graph=True)
    assert ops.requires_grad and not fused.requires_grad
    tol = dict(rtol=1e-13, atol=1e-14) if dtype == "float64" else dict(rtol=2e-6, atol=5e-6)
    np.testing.assert_allclose(fused.numpy(), ops.detach().numpy(), **tol)
    want = g0.astype(np.float64) * ref_gelu_grad(x0, approximate)
    np.testing.assert_allclose(fused.numpy(), want, **tol)
    if dtype == "float32":
        # the two paths round differently: the first-order gradient really is
        # the one-pass kernel, not the ops (a regression would make them equal)
        assert np.any(fused.numpy() != ops.detach().numpy())


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_strided_and_broadcast_operands_give_the_contiguous_bits(approximate):
    rng = np.random.default_rng(17)
    base = (rng.standard_normal((300, 2, 260)) * 3).astype(np.float32)
    strided = base[:, 1, ::3]            # row stride 2*260, element stride 3
    contig = np.ascontiguousarray(strided)
    a = tg.tensor(base, requires_grad=True)
    xs = a[:, 1, ::3]
    b = tg.tensor(contig, requires_grad=True)
    ys, yc = tf.gelu(xs, approximate=approximate), tf.gelu(b, approximate=approximate)
    assert not xs.is_contiguous
    np.testing.assert_array_equal(ys.numpy(), yc.numpy())
    np.testing.assert_array_equal(tg.erf(xs).numpy(), tg.erf(b).numpy())
    # a broadcast gradient (from sum: stride 0) and a transposed one
    ys.sum().backward()
    yc.backward(tg.ones_like(yc))
    np.testing.assert_array_equal(a.grad.numpy()[:, 1, ::3], b.grad.numpy())
    g = rng.standard_normal((contig.shape[1], contig.shape[0])).astype(np.float32)
    (g1,) = tg.grad(tf.gelu(b, approximate=approximate), b, grad_outputs=tg.tensor(g).T)
    (g2,) = tg.grad(tf.gelu(b, approximate=approximate), b,
                    grad_outputs=tg.tensor(np.ascontiguousarray(g.T)))
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())


@pytest.fixture
def threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_same_bits_on_one_and_two_threads(approximate, threads):
    # (16, 64, 512): the GPT step's activations, split among threads
    x = (np.random.default_rng(19).standard_normal((16, 64, 512)) * 2).astype(np.float32)
    g = np.random.default_rng(23).standard_normal(x.shape).astype(np.float32)

    def run(n):
        tg.set_num_threads(n)
        t = tg.tensor(x, requires_grad=True)
        y = tf.gelu(t, approximate=approximate)
        y.backward(tg.tensor(g))
        return y.numpy(), t.grad.numpy(), tg.erf(tg.tensor(x)).numpy()

    one, two = run(1), run(2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_ops_registry_states_the_kernels():
    info = {op["name"]: op for op in tg.ops()}
    for name in ("erf", "gelu", "gelu_tanh"):
        assert "vmath" in info[name]["doc"], info[name]["doc"]
