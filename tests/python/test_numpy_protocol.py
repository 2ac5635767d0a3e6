"""NumPy's own functions on tensors (NEP 13 __array_ufunc__, NEP 18
__array_function__): they run tapegrad's op and differentiate, or they refuse;
they never drop a gradient in silence."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tapegrad as tg
from tapegrad import _numpy_protocol

F64 = dict(dtype=tg.float64)


def leaf(values):
    return tg.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# (name, f(np-or-tensor x) written with NumPy's functions, domain) -- each must dispatch
UFUNC_CASES = [
    ("exp", lambda x: np.exp(x)), ("log", lambda x: np.log(x)), ("sqrt", lambda x: np.sqrt(x)),
    ("tanh", lambda x: np.tanh(x)), ("sin", lambda x: np.sin(x)), ("cos", lambda x: np.cos(x)),
    ("negative", lambda x: np.negative(x)), ("absolute", lambda x: np.abs(x)),
    ("maximum", lambda x: np.maximum(x, 1.5)), ("minimum", lambda x: np.minimum(0.5, x)),
    ("power", lambda x: np.power(x, 3)), ("divide", lambda x: np.divide(1.0, x)),
    ("multiply", lambda x: np.multiply(np.array([2.0, -1.0, 0.5]), x)),
    ("subtract", lambda x: np.subtract(x, np.array([1.0, 2.0, 3.0]))),
    ("add.reduce", lambda x: np.add.reduce(x)),
    ("sum", lambda x: np.sum(x * x)), ("mean", lambda x: np.mean(x, axis=0)),
    ("where", lambda x: np.where(np.array([True, False, True]), x, 0.0)),
    ("concatenate", lambda x: np.concatenate([x, 2 * x])),
    ("matmul", lambda x: np.matmul(np.arange(6.0).reshape(2, 3), x)),
    ("dot", lambda x: np.dot(x, np.array([1.0, 2.0, 3.0]))),
    ("reshape", lambda x: np.reshape(x, (3, 1))),
]


@pytest.mark.parametrize("name,f", UFUNC_CASES, ids=[c[0] for c in UFUNC_CASES])
def test_numpy_functions_record_on_the_tape_and_differentiate(name, f):
    values = np.array([0.7, 1.3, 2.1])
    x = leaf(values)
    y = f(x)
    assert isinstance(y, tg.Tensor) and y.grad_fn is not None, f"{name} did not record"
    np.testing.assert_allclose(y.numpy(), f(values), rtol=1e-12, atol=1e-12)
    assert tg.testing.gradcheck(lambda t: f(t), [x])


def test_the_gradient_equals_the_ops_gradient():
    x1, x2 = leaf([0.3, -1.2]), leaf([0.3, -1.2])
    np.sum(np.tanh(x1) * np.exp(x1)).backward()
    (x2.tanh() * x2.exp()).sum().backward()
    np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())


def test_mixed_operands_always_give_a_tensor():
    x = tg.tensor([1.0, 2.0])
    a = np.array([3.0, 4.0])
    for r in (a + x, x + a, a * x, np.float64(2.0) * x, x * np.float32(2.0), a - x, a / x,
              np.add(a, x), np.exp(x)):
        assert isinstance(r, tg.Tensor), type(r)


def test_no_op_for_it_refuses_when_a_gradient_would_be_lost():
    x = leaf([1.0, 2.0, 4.0])
    with pytest.raises(TypeError) as e:
        np.percentile(x, 50)
    msg = str(e.value)
    assert msg.startswith("np.percentile: tapegrad has no op for it") and "x.detach().numpy()" in msg
    with pytest.raises(TypeError, match=r"np\.nanmean"):
        np.nanmean(x * 2)  # a non-leaf that requires grad too
    # without a gradient at stake NumPy computes, as it always did
    assert float(np.percentile(x.detach(), 50)) == 2.0
    with tg.no_grad():
        assert float(np.percentile(x, 50)) == 2.0


def test_a_ufunc_without_an_op_refuses_too():
    x = leaf([1.0, 2.0])
    # np.spacing has no tapegrad op (and no course needs one)
    with pytest.raises(TypeError, match=r"^np\.spacing: tapegrad has no op for it"):
        np.spacing(x)
    assert isinstance(np.spacing(x.detach()), np.ndarray)


def test_functions_without_a_gradient_compute_on_the_values():
    x = leaf([1.0, 3.0, 2.0])
    assert np.allclose(x, [1.0, 3.0, 2.0]) is True or np.allclose(x, [1.0, 3.0, 2.0]) == True  # noqa: E712
    assert int(np.argmax(x)) == 1
    assert np.shape(x) == (3,)
    assert np.array_equal(x, np.array([1.0, 3.0, 2.0]))


def test_out_is_refused_or_never_a_tensor():
    x = leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="out="):
        np.exp(x, out=np.empty(2))
    t = tg.zeros(2)
    with pytest.raises(TypeError, match="out= cannot be a tapegrad tensor"):
        np.exp(np.array([1.0, 2.0]), out=t)
    buf = np.empty(2)
    np.exp(x.detach(), out=buf)  # no gradient at stake: NumPy writes its own array
    np.testing.assert_allclose(buf, np.exp([1.0, 2.0]))


def test_where_and_dtype_arguments():
    x = leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="where="):
        np.exp(x, where=np.array([True, False]))
    y = np.exp(x, dtype=None)  # the default is accepted
    assert y.grad_fn is not None


def test_no_grad_mode_still_dispatches_without_recording():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        y = np.exp(x)
    assert isinstance(y, tg.Tensor) and y.grad_fn is None


def test_the_dispatch_table_is_true():
    """Every row the docs print as dispatching does record the op it names."""
    rows = dict(_numpy_protocol.dispatch_table())
    for np_name in ("np.exp", "np.add", "np.sum", "np.concatenate", "np.where", "np.matmul",
                    "np.maximum", "np.dot"):
        assert rows[np_name], np_name
    x = leaf([0.5, 1.5])
    for np_name, tg_name in rows.items():
        if not tg_name or not np_name.startswith("np.") or np_name.count(".") > 1:
            continue
        f = getattr(np, np_name[3:])
        if not isinstance(f, np.ufunc) or f.nin != 1 or tg_name in ("isnan", "isinf", "isfinite"):
            continue
        try:
            y = f(x)
        except (TypeError, ValueError) as exc:
            # a dispatching name may still refuse this input's dtype; it must say which op
            assert tg_name.split(".")[-1] in str(exc) or np_name in str(exc), (np_name, exc)
            continue
        assert isinstance(y, tg.Tensor), np_name


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=6),
       st.sampled_from(["exp", "tanh", "sin", "abs", "square_sum", "mean", "max0"]))
def test_property_numpy_spelling_equals_the_op(vals, which):
    """For random inputs, the NumPy spelling gives the op's values and gradient
    exactly (it IS the op)."""
    f_np = {"exp": np.exp, "tanh": np.tanh, "sin": np.sin, "abs": np.abs,
            "square_sum": lambda t: np.sum(t * t), "mean": np.mean,
            "max0": lambda t: np.maximum(t, 0.0)}[which]
    f_tg = {"exp": tg.exp, "tanh": tg.tanh, "sin": tg.sin, "abs": abs,
            "square_sum": lambda t: (t * t).sum(), "mean": lambda t: t.mean(),
            "max0": lambda t: tg.maximum(t, 0.0)}[which]
    a, b = leaf(vals), leaf(vals)
    ya, yb = f_np(a), f_tg(b)
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    ya.sum().backward()
    yb.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
