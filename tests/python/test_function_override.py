"""Issue 7 (coursework): ops defined in Python (tg.Function) and VJP
overrides (tg.override_vjp) work with everything built on the tape.

- ``class Square(tg.Function)`` with ``ctx.save_for_backward`` /
  ``ctx.saved_tensors`` and ``Square.apply(x)``: the stepper, gradcheck and
  check_entry, create_graph (second derivatives through a backward written
  with tg ops), anomaly detection; an exception raised in forward or
  backward propagates unchanged and leaks nothing;
- ``with tg.override_vjp("matmul", fn)`` uses fn for that op only; a
  gradient of the wrong shape or dtype raises an error (made by the C
  engine) naming the op, the tape entry, the input and the expected shape.
"""
import gc
import os
import re
import sys
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import check_entry, gradcheck, gradgradcheck


def f64(*values, requires_grad=True):
    return tg.tensor(list(values), dtype=tg.float64, requires_grad=requires_grad)


class Square(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class Cube(tg.Function):
    """A backward written with tg ops, so create_graph can differentiate it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad


class MulAdd(tg.Function):
    """Two tensor inputs and a non-tensor one: a * b + c."""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        return a * b + c

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a, None


class Sqrt(tg.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.sqrt()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g / (2 * y)


class WrongSquare(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g  # wrong factor


class Boom(Exception):
    pass


ERR = Boom("raised by the user's code")


class FailsForward(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        raise ERR.with_traceback(None)  # (re-raising keeps appending to its traceback)


class FailsBackward(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2

    @staticmethod
    def backward(ctx, g):
        raise ERR.with_traceback(None)  # (re-raising keeps appending to its traceback)


# ---------------------------------------------------------------------------
# tg.Function
# ---------------------------------------------------------------------------

class TestFunction:
    def test_square_apply_and_saved_tensors(self):
        x = f64(1.0, -2.0, 3.0)
        y = Square.apply(x)
        assert y.grad_fn.op == "Square" and y.grad_fn.is_custom
        assert y.tolist() == [1.0, 4.0, 9.0]
        y.sum().backward()
        assert x.grad.tolist() == [2.0, -4.0, 6.0]

    def test_stepper_steps_through_the_function_entry(self):
        x = f64(1.0, 2.0)
        x.name = "x"
        loss = (Square.apply(x) * 3).sum()
        st = tg.inspect.BackwardStepper(loss)
        records = list(st)
        assert [r.op for r in records] == ["sum", "mul", "Square"]
        sq = records[-1]
        assert sq.entry.is_custom and not sq.overridden
        np.testing.assert_allclose(sq.grad_out, [3.0, 3.0])
        np.testing.assert_allclose(sq.grads[0], [6.0, 12.0])
        assert x.grad.tolist() == [6.0, 12.0]  # the same as backward()

    def test_stepper_with_two_tensor_inputs_and_a_constant(self):
        a, b = f64(1.0, 2.0), f64(3.0, 4.0)
        st = tg.inspect.BackwardStepper(MulAdd.apply(a, b, 10.0).sum())
        st.finish()
        assert a.grad.tolist() == [3.0, 4.0] and b.grad.tolist() == [1.0, 2.0]

    def test_gradcheck_and_check_entry(self):
        x = tg.randn(3, 2, dtype=tg.float64, requires_grad=True)
        assert gradcheck(Square.apply, [x])
        y = tg.randn(3, 2, dtype=tg.float64, requires_grad=True)
        assert gradcheck(lambda a, b: MulAdd.apply(a, b, 1.5), [x, y])
        entry = Square.apply(x).grad_fn
        res = check_entry(entry, fn=Square.apply)
        assert res.ok and res.checked == 6
        bad = check_entry(WrongSquare.apply(x).grad_fn, fn=WrongSquare.apply)
        assert not bad.ok and bad.input == 0 and "WrongSquare" in repr(bad)
        with pytest.raises(tg.testing.GradcheckError, match="input 0"):
            gradcheck(WrongSquare.apply, [x])

    def test_create_graph_second_derivative(self):
        x = f64(0.5, -1.0, 2.0)
        (g,) = tg.grad(Cube.apply(x).sum(), x, create_graph=True)
        assert g.requires_grad
        np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
        (gg,) = tg.grad(g.sum(), x)
        np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())
        assert gradgradcheck(Cube.apply, [x])
        assert gradgradcheck(Square.apply, [x])

    def test_anomaly_in_backward_names_the_function(self):
        x = f64(4.0, 0.0)
        with tg.detect_anomaly():
            with pytest.raises(tg.inspect.AnomalyError) as info:
                Sqrt.apply(x).sum().backward()
        err = info.value
        assert err.op == "Sqrt" and err.phase == "backward" and err.bad_input == 0
        assert err.created_at is not None
        assert os.path.basename(err.created_at[0]) == os.path.basename(__file__)
        assert "Sqrt" in str(err)

    def test_anomaly_in_forward_names_the_function(self):
        x = f64(-1.0)
        with tg.detect_anomaly():
            with pytest.raises(tg.inspect.AnomalyError) as info:
                Sqrt.apply(x)
        assert info.value.op == "Sqrt" and info.value.phase == "forward"

    @pytest.mark.parametrize("where", ["forward", "backward"])
    def test_exception_propagates_unchanged(self, where):
        x = f64(1.0, 2.0)
        with pytest.raises(Boom) as info:
            if where == "forward":
                FailsForward.apply(x)
            else:
                FailsBackward.apply(x).sum().backward()
        assert info.value is ERR
        assert x.grad is None
        assert tg.is_grad_enabled()  # forward ran under no_grad: the mode is restored
        (x * 2).sum().backward()  # the library works afterwards
        assert x.grad.tolist() == [2.0, 2.0]

    def test_failed_backward_frees_the_graph(self):
        x = f64(1.0, 2.0)
        y = FailsBackward.apply(x)
        ref = weakref.ref(y)
        loss = y.sum()
        with pytest.raises(Boom):
            loss.backward()
        del y, loss
        gc.collect()
        assert ref() is None

    @pytest.mark.parametrize("where", ["forward", "backward", "override"])
    def test_repeated_failures_leak_nothing(self, where):
        x = f64(1.0, 2.0, 3.0)

        def boom(entry, g):
            raise ERR.with_traceback(None)  # (re-raising keeps appending to its traceback)

        def once():
            try:
                if where == "forward":
                    FailsForward.apply(x)
                elif where == "backward":
                    FailsBackward.apply(x).sum().backward()
                else:
                    with tg.override_vjp("exp", boom):
                        x.exp().sum().backward()
            except Boom:
                pass

        for _ in range(50):
            once()
        gc.collect()
        refs, n_objects = sys.getrefcount(x), len(gc.get_objects())
        err_refs = sys.getrefcount(ERR)
        live = tg.memory_stats()["live_bytes"]
        for _ in range(500):
            once()
        gc.collect()
        assert sys.getrefcount(x) == refs
        assert sys.getrefcount(ERR) == err_refs
        assert len(gc.get_objects()) <= n_objects + 10
        assert tg.memory_stats()["live_bytes"] == live
        assert x.grad is None


# ---------------------------------------------------------------------------
# tg.override_vjp
# ---------------------------------------------------------------------------

def _graph(seed=0):
    rng = np.random.default_rng(seed)
    A = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    B = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    c = tg.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    return A, B, c


def _loss(A, B, c):
    return ((A @ B) * c).tanh().sum()


class TestOverride:
    def test_only_the_named_op_uses_the_python_rule(self):
        A, B, c = _graph()
        _loss(A, B, c).backward()
        ref = [t.grad.numpy().copy() for t in (A, B, c)]
        A, B, c = _graph()
        seen = []

        def matmul_vjp(entry, g):
            seen.append((entry.op, entry.seq))
            a, b = entry.inputs
            return g @ b.T, a.T @ g

        with tg.override_vjp("matmul", matmul_vjp):
            _loss(A, B, c).backward()
        assert [op for op, _ in seen] == ["matmul"]  # mul, tanh, sum: built-in
        for t, r in zip((A, B, c), ref):
            np.testing.assert_allclose(t.grad.numpy(), r, rtol=1e-12)

    def test_override_is_what_the_stepper_and_check_entry_see(self):
        A, B, c = _graph()

        def wrong(entry, g):
            a, b = entry.inputs
            return g @ b.T, a.T @ g * 2

        with tg.override_vjp("matmul", wrong):
            loss = _loss(A, B, c)
            records = list(tg.inspect.BackwardStepper(loss))
            mm = [r for r in records if r.op == "matmul"][0]
            assert mm.overridden
            res = check_entry(mm.entry)
            assert not res.ok and res.overridden and res.input == 1
        assert check_entry(mm.entry).ok  # the built-in rule again

    def test_wrong_shape_error_names_op_entry_input_and_expected_shape(self):
        A, B, c = _graph()

        def transposed(entry, g):
            a, b = entry.inputs
            return g @ b.T, (a.T @ g).T

        with tg.override_vjp("matmul", transposed):
            loss = _loss(A, B, c)
            with pytest.raises(ValueError) as info:
                loss.backward()
        msg = str(info.value)
        assert re.fullmatch(r"backward: the VJP of 'matmul' \(tape entry #\d+\) returned a gradient "
                            r"of shape \(5, 4\) float64 for input 1, expected shape \(4, 5\) "
                            r"\(the input's\)", msg), msg

    def test_wrong_shape_that_is_not_broadcastable(self):
        x = f64(1.0, 2.0, 3.0)
        with tg.override_vjp("exp", lambda e, g: tg.ones(2, dtype=tg.float64)):
            with pytest.raises(ValueError, match=r"VJP of 'exp' \(tape entry #\d+\) returned a "
                                                 r"gradient of shape \(2,\) float64 for input 0, "
                                                 r"expected shape \(3,\)"):
                x.exp().sum().backward()

    def test_wrong_dtype_error(self):
        A, B, c = _graph()

        def int_grad(entry, g):
            a, b = entry.inputs
            return tg.zeros(3, 4, dtype=tg.int64), a.T @ g

        with tg.override_vjp("matmul", int_grad):
            with pytest.raises(ValueError) as info:
                _loss(A, B, c).backward()
        assert re.fullmatch(r"backward: the VJP of 'matmul' \(tape entry #\d+\) returned a gradient "
                            r"of dtype int64 \(3, 4\) for input 0, expected dtype float64 "
                            r"\(the input's\)", str(info.value)), str(info.value)

    def test_other_float_dtype_is_cast_like_pytorch(self):
        # a float gradient of another precision is converted to the input's
        # dtype (promoted ops rely on it): documented, not an error
        A, B, c = _graph()

        def f32(entry, g):
            a, b = entry.inputs
            return (g @ b.T).astype(tg.float32), a.T @ g

        with tg.override_vjp("matmul", f32):
            _loss(A, B, c).backward()
        assert A.grad.dtype == tg.float64

    def test_wrong_count_and_type(self):
        x = f64(1.0)
        with tg.override_vjp("mul", lambda e, g: (g,)):
            with pytest.raises(ValueError, match=r"mul: the VJP of 'mul' returned 1 gradient, "
                                                 r"expected 2"):
                (x * x).sum().backward()
        with tg.override_vjp("mul", lambda e, g: (g, "nope")):
            with pytest.raises(TypeError, match=r"returned a str for input 1, expected a Tensor"):
                (x * x).sum().backward()

    def test_nesting_restores_the_previous_rule(self):
        x = f64(2.0)
        outer = lambda e, g: (g * 0 + 10, g * 0 + 10)  # noqa: E731
        inner = lambda e, g: (g * 0 + 100, g * 0 + 100)  # noqa: E731
        with tg.override_vjp("mul", outer):
            with tg.override_vjp("mul", inner):
                (x * x).sum().backward()
                assert x.grad.item() == 200.0
            x.grad = None
            (x * x).sum().backward()
            assert x.grad.item() == 20.0
        x.grad = None
        (x * x).sum().backward()
        assert x.grad.item() == 4.0

    def test_rule_restored_after_an_exception_in_the_block(self):
        x = f64(3.0)
        with pytest.raises(Boom):
            with tg.override_vjp("mul", lambda e, g: (g, g)):
                raise Boom()
        (x * x).sum().backward()
        assert x.grad.item() == 6.0

    def test_override_exception_propagates_unchanged(self):
        x = f64(1.0)

        def boom(entry, g):
            raise ERR.with_traceback(None)  # (re-raising keeps appending to its traceback)

        with tg.override_vjp("exp", boom):
            with pytest.raises(Boom) as info:
                x.exp().sum().backward()
        assert info.value is ERR

    def test_override_and_create_graph(self):
        x = f64(0.3, -0.7)

        def exp_vjp(entry, g):
            return g * entry.output

        with tg.override_vjp("exp", exp_vjp):
            (g,) = tg.grad(x.exp().sum(), x, create_graph=True)
            (gg,) = tg.grad(g.sum(), x)
        np.testing.assert_allclose(gg.numpy(), np.exp(x.numpy()))


def test_reentering_the_same_override_object_restores_the_builtin():
    # regression: the second enable() recorded the override itself as "previous",
    # so leaving both blocks left the override installed for good
    rule = tg.override_vjp("mul", lambda e, g: (g * 0, g * 0))
    with rule:
        with rule:
            pass
        x = f64(3.0)
        (x * x).sum().backward()
        assert x.grad.item() == 0.0  # still overridden in the outer block
    x = f64(3.0)
    (x * x).sum().backward()
    assert x.grad.item() == 6.0
    rule.enable()
    rule.enable()
    rule.disable()
    rule.disable()
    rule.disable()  # one more is harmless
    x = f64(3.0)
    (x * x).sum().backward()
    assert x.grad.item() == 6.0
