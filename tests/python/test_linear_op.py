"""The fused ``linear`` op behind nn.Linear and nn.functional.linear.

Checked against the three-op spelling ``x @ W.T + b`` (the simple path) and
NumPy, for values, gradients (gradcheck in float64, second order too), the
layout of the weight gradient, the tape it records, and its errors."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad.testing import gradcheck, gradgradcheck

SHAPES = [((5, 4), (3, 4)), ((4,), (3, 4)), ((2, 3, 4), (6, 4)), ((7, 1), (2, 1)), ((0, 4), (3, 4))]


@pytest.mark.parametrize("xs,ws", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_three_op_spelling_and_numpy(xs, ws, bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    tx, tw = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True) if bias else None
    y = F.linear(tx, tw, tb)
    want = x @ w.T + (b if bias else 0)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)
    assert y.dtype == tg.float64 and y.shape == want.shape
    g = rng.standard_normal(want.shape)
    y.backward(tg.tensor(g))
    # the simple path on copies
    sx, sw = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    sb = tg.tensor(b, requires_grad=True) if bias else None
    ys = sx @ sw.T
    if bias:
        ys = ys + sb
    ys.backward(tg.tensor(g))
    np.testing.assert_allclose(tx.grad.numpy(), sx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tw.grad.numpy(), sw.grad.numpy(), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(tb.grad.numpy(), sb.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_gradcheck_first_and_second_order():
    rng = np.random.default_rng(1)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(F.linear, (x, w, b))
    assert gradgradcheck(F.linear, (x, w, b))
    assert gradcheck(lambda a, c: F.linear(a, c), (x, w))


def test_strided_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6))
    w = rng.standard_normal((6, 5))          # used through a transposed view
    for xv in (x, x.T.copy().T, x[:, ::2]):
        wv = w.T[:, : xv.shape[1]]
        got = F.linear(tg.from_numpy(xv), tg.from_numpy(wv)).numpy()
        np.testing.assert_allclose(got, xv @ wv.T, rtol=1e-12)
    x3 = rng.standard_normal((2, 4, 3)).transpose(1, 0, 2)   # non-contiguous 3-D input
    w3 = rng.standard_normal((5, 3))
    np.testing.assert_allclose(F.linear(tg.from_numpy(x3), tg.from_numpy(w3)).numpy(), x3 @ w3.T,
                               rtol=1e-12)


def test_nn_linear_records_one_entry_and_a_weight_shaped_gradient():
    tg.manual_seed(0)
    layer = tg.nn.Linear(784, 128)
    x = tg.randn(32, 784)
    y = layer(x)
    assert y.grad_fn.name == "linear"
    assert [row.name for row in y.tape().entries] == ["linear"]
    y.sum().backward()
    g = layer.weight.grad
    assert g.shape == (128, 784) and g.is_contiguous
    want = np.ones((32, 128)).T @ x.numpy().astype(np.float64)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), np.full(128, 32.0), rtol=1e-6)


def test_mixed_precision_gradients_keep_each_inputs_dtype():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)                        # float64
    w = tg.tensor(np.ones((4, 3), np.float32), requires_grad=True)           # float32
    y = F.linear(x, w)
    assert y.dtype == tg.float64
    y.sum().backward()
    assert x.grad.dtype == tg.float64 and w.grad.dtype == tg.float32


@pytest.mark.parametrize("args,exc,words", [
    ((tg.ones(2, 3), tg.ones(4, 5)), ValueError, ["linear", "(2, 3)", "(4, 5)", "expects 5"]),
    ((tg.ones(2, 3), tg.ones(4, 3), tg.ones(5)), ValueError, ["linear", "bias", "(5,)", "(4,)"]),
    ((tg.ones(2, 3), tg.ones(3)), ValueError, ["linear", "2-D", "(3,)"]),
    ((tg.tensor(1.0), tg.ones(4, 3)), ValueError, ["linear", "0-d"]),
    ((tg.ones(2, 3, dtype=tg.int64), tg.ones(4, 3)), TypeError, ["linear", "int64"]),
    ((tg.ones(2, 3), tg.ones(4, 3), tg.ones((4, 1))), ValueError, ["linear", "bias", "(4, 1)"]),
])
def test_errors_name_the_op_shapes_and_expectation(args, exc, words):
    with pytest.raises(exc) as info:
        F.linear(*args)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_missing_or_wrong_arguments():
    with pytest.raises(TypeError, match="linear"):
        F.linear(tg.ones(2, 3))
    with pytest.raises(TypeError):
        F.linear(tg.ones(2, 3), "weight")
    with pytest.raises(TypeError):
        F.linear(tg.ones(2, 3), tg.ones(4, 3), tg.ones(4), tg.ones(4))
    # NumPy arrays are accepted like everywhere else
    np.testing.assert_allclose(F.linear(np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)).numpy(),
                               np.full((2, 4), 3.0))
