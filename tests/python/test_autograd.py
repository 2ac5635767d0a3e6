"""Autograd from Python: backward, gradients of gradients, grad mode, the
recording Tape, Python-defined ops (tg.Function), VJP overrides and hooks."""
import gc
import sys
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import GradcheckError, gradcheck, gradgradcheck


def f64(*values, requires_grad=True):
    return tg.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


# ---------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------


class TestBackward:
    def test_scalar_output_seeds_with_one(self):
        x = f64(1.0, 2.0, 3.0)
        (x * x).sum().backward()
        assert x.grad.tolist() == [2.0, 4.0, 6.0]
        assert x.grad.dtype == tg.float64 and x.grad.shape == (3,)

    def test_one_element_non_scalar_output(self):
        x = f64(3.0)
        (x * x).backward()  # shape (1,): implicit seed allowed
        assert x.grad.tolist() == [6.0]

    def test_non_scalar_needs_gradient(self):
        x = f64(1.0, 2.0)
        y = x * x
        with pytest.raises(RuntimeError, match=r"one-element output.*shape \(2,\)"):
            y.backward()
        y.backward(tg.tensor([1.0, 10.0], dtype=tg.float64))
        assert x.grad.tolist() == [2.0, 40.0]

    def test_gradient_seed_shape_checked(self):
        x = f64(1.0, 2.0)
        with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
            (x * 2).backward(tg.ones(3, dtype=tg.float64))

    def test_seed_may_be_array_or_list(self):
        x = f64(1.0, 2.0)
        (x * 3).backward(np.array([1.0, 2.0]))
        assert x.grad.tolist() == [3.0, 6.0]
        x.grad = None
        (x * 3).backward([1.0, 1.0])
        assert x.grad.tolist() == [3.0, 3.0]

    def test_backward_of_tensor_without_graph(self):
        with pytest.raises(RuntimeError, match="does not require grad"):
            tg.ones(2).sum().backward()

    def test_accumulation(self):
        x = f64(1.0, 2.0)
        (x * 2).sum().backward()
        (x * 3).sum().backward()
        assert x.grad.tolist() == [5.0, 5.0]
        x.grad = None
        (x * 4).sum().backward()
        assert x.grad.tolist() == [4.0, 4.0]

    def test_backward_does_not_alias_seed_or_intermediate(self):
        x = f64(1.0, 2.0)
        seed = tg.tensor([1.0, 1.0], dtype=tg.float64)
        (x + 0).backward(seed)
        assert x.grad.data_ptr != seed.data_ptr
        x.grad += 1  # must not change the seed
        assert seed.tolist() == [1.0, 1.0]

    def test_retain_graph_and_freed_graph_message(self):
        x = f64(1.0, 2.0)
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        g1 = x.grad.numpy().copy()
        y.backward()  # second pass allowed, frees the graph
        np.testing.assert_allclose(x.grad.numpy(), 2 * g1)
        with pytest.raises(RuntimeError) as info:
            y.backward()
        msg = str(info.value)
        assert "retain_graph=True" in msg and "freed" in msg and "#" in msg

    def test_freed_entries_visible_on_grad_fn(self):
        x = f64(1.0, 2.0)
        y = x * x
        z = y.sum()
        assert not y.grad_fn.freed and y.grad_fn.saved is not None
        z.backward()
        assert y.grad_fn.freed and y.grad_fn.saved is None

    def test_retain_grad_on_non_leaf(self):
        x = f64(1.0, 2.0)
        y = x * 3
        y.retain_grad()
        assert y.retains_grad
        z = (y * y).sum()
        z.backward()
        np.testing.assert_allclose(y.grad.numpy(), 2 * y.numpy())
        np.testing.assert_allclose(x.grad.numpy(), 6 * y.numpy())

    def test_non_leaf_grad_is_none_without_retain(self):
        x = f64(1.0)
        y = x * 2
        (y * y).sum().backward()
        assert y.grad is None

    def test_leaf_without_requires_grad_gets_no_grad(self):
        x = f64(1.0, 2.0)
        c = f64(3.0, 4.0, requires_grad=False)
        (x * c).sum().backward()
        assert c.grad is None and x.grad.tolist() == [3.0, 4.0]

    def test_diamond_graph(self):
        x = f64(0.5, -1.0)
        a = x.exp()
        b = a * 2
        c = a.sin()
        d = (b * c + a).sum()  # a is used three times
        d.backward()
        xs = np.array([0.5, -1.0])
        ea = np.exp(xs)
        want = (2 * np.sin(ea) + 2 * ea * np.cos(ea) + 1) * ea
        np.testing.assert_allclose(x.grad.numpy(), want)

    def test_same_tensor_twice_in_one_op(self):
        x = f64(3.0)
        (x * x * x).backward()
        assert x.grad.tolist() == [27.0]

    def test_long_chain_backward(self):
        """100,000 entries: the engine loops, it does not recurse."""
        x = tg.tensor(1.0, dtype=tg.float64, requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y * 1.0
        y.backward()
        assert x.grad.item() == 1.0
        del y
        gc.collect()

    def test_long_chain_freed_without_recursion(self):
        """Dropping the last reference of a very deep graph does not overflow the C stack."""
        x = tg.tensor(1.0, requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y + 1.0
        del y
        gc.collect()
        assert x.grad is None

    def test_wide_graph(self):
        x = f64(*range(10))
        total = sum((x[i] * i for i in range(10)), tg.tensor(0.0, dtype=tg.float64))
        total.backward()
        assert x.grad.tolist() == [float(i) for i in range(10)]

    def test_int_inputs_get_no_gradient(self):
        x = f64(1.0, 2.0, 3.0)
        idx = tg.tensor([2, 0])
        (x[idx] * 2).sum().backward()
        assert x.grad.tolist() == [2.0, 0.0, 2.0] and idx.grad is None

    def test_float32_and_float64_mix(self):
        a = tg.ones(2, requires_grad=True)
        b = tg.ones(2, dtype=tg.float64, requires_grad=True)
        (a * b * 3).sum().backward()
        assert a.grad.dtype == tg.float32 and b.grad.dtype == tg.float64
        assert a.grad.tolist() == [3.0, 3.0] and b.grad.tolist() == [3.0, 3.0]

    def test_grad_of_view_leaf(self):
        base = np.arange(6.0).reshape(2, 3)
        x = tg.from_numpy(base.T, requires_grad=True)  # a non-contiguous leaf
        (x * x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * base.T)


# ---------------------------------------------------------------------------
# tg.grad and higher derivatives
# ---------------------------------------------------------------------------


class TestGrad:
    def test_returns_tuple_and_leaves_grad_alone(self):
        x = f64(1.0, 2.0)
        w = f64(3.0, 4.0)
        y = (x * w).sum()
        gs = tg.grad(y, [x, w])
        assert isinstance(gs, tuple) and len(gs) == 2
        assert gs[0].tolist() == [3.0, 4.0] and gs[1].tolist() == [1.0, 2.0]
        assert x.grad is None and w.grad is None
        assert isinstance(tg.grad((x * 2).sum(), x), tuple)

    def test_unused_input_gives_zeros(self):
        x, z = f64(1.0, 2.0), f64(5.0)
        (gz,) = tg.grad((x * 2).sum(), [z])
        assert gz.tolist() == [0.0] and gz.shape == (1,)

    def test_non_leaf_inputs(self):
        x = f64(1.0, 2.0)
        h = x * 3
        y = (h * h).sum()
        (gh,) = tg.grad(y, h)
        np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())

    def test_grad_outputs_and_several_outputs(self):
        x = f64(1.0, 2.0)
        y1, y2 = x * 2, x * x
        (g,) = tg.grad([y1, y2], x, [tg.ones(2, dtype=tg.float64), tg.tensor([1.0, 0.5], dtype=tg.float64)])
        assert g.tolist() == [4.0, 4.0]

    def test_retain_graph_default_false(self):
        x = f64(1.0)
        y = (x.exp()).sum()
        tg.grad(y, x)
        with pytest.raises(RuntimeError, match="retain_graph"):
            tg.grad(y, x)
        z = (x.exp()).sum()
        tg.grad(z, x, retain_graph=True)
        assert tg.grad(z, x)[0].tolist() == [np.exp(1.0)]

    def test_second_derivative_tanh(self):
        xs = np.array([-1.3, 0.0, 0.4, 2.0])
        x = tg.tensor(xs, requires_grad=True)
        (g,) = tg.grad(x.tanh().sum(), x, create_graph=True)
        assert g.requires_grad and g.grad_fn is not None
        np.testing.assert_allclose(g.numpy(), 1 - np.tanh(xs) ** 2)
        (g2,) = tg.grad(g.sum(), x)
        np.testing.assert_allclose(g2.numpy(), -2 * np.tanh(xs) * (1 - np.tanh(xs) ** 2))

    def test_third_derivative(self):
        x = tg.tensor(1.5, dtype=tg.float64, requires_grad=True)
        (g1,) = tg.grad(x ** 4, x, create_graph=True)
        (g2,) = tg.grad(g1, x, create_graph=True)
        (g3,) = tg.grad(g2, x)
        assert g1.item() == pytest.approx(4 * 1.5 ** 3)
        assert g2.item() == pytest.approx(12 * 1.5 ** 2)
        assert g3.item() == pytest.approx(24 * 1.5)

    def test_hessian_vector_product(self):
        rng = np.random.default_rng(0)
        A = rng.standard_normal((4, 4))
        A = A + A.T
        xs, vs = rng.standard_normal(4), rng.standard_normal(4)
        x = tg.tensor(xs, requires_grad=True)
        At = tg.tensor(A)
        f = (x @ At @ x) * 0.5 + (x ** 3).sum()  # Hessian = A + diag(6x)
        (g,) = tg.grad(f, x, create_graph=True)
        np.testing.assert_allclose(g.numpy(), A @ xs + 3 * xs ** 2)
        (hv,) = tg.grad((g * tg.tensor(vs)).sum(), x)
        np.testing.assert_allclose(hv.numpy(), (A + np.diag(6 * xs)) @ vs)

    def test_backward_create_graph(self):
        x = f64(2.0)
        y = x ** 3
        y.backward(create_graph=True)
        g = x.grad
        assert g.requires_grad and g.tolist() == [12.0]
        x.grad = None
        g.backward()
        assert x.grad.tolist() == [12.0]

    def test_grad_bad_arguments(self):
        x = f64(1.0)
        with pytest.raises(TypeError):
            tg.grad((x * 2).sum(), [1.0])
        with pytest.raises(ValueError):
            tg.grad([x * 2, x * 3], x, [tg.ones(1, dtype=tg.float64)])


# ---------------------------------------------------------------------------
# grad mode
# ---------------------------------------------------------------------------


class TestGradMode:
    def test_no_grad_context(self):
        x = f64(1.0)
        with tg.no_grad():
            assert not tg.is_grad_enabled()
            y = x * 2
        assert tg.is_grad_enabled()
        assert not y.requires_grad and y.grad_fn is None

    def test_nesting_and_enable_grad(self):
        x = f64(1.0)
        with tg.no_grad():
            with tg.enable_grad():
                y = x * 2
            z = x * 2
            with tg.no_grad():
                pass
            assert not tg.is_grad_enabled()
        assert y.requires_grad and not z.requires_grad

    def test_decorators(self):
        x = f64(1.0)

        @tg.no_grad()
        def evaluate(t):
            """docstring kept"""
            return t * 2

        @tg.enable_grad()
        def train(t):
            return t * 2

        assert not evaluate(x).requires_grad and evaluate.__doc__ == "docstring kept"
        with tg.no_grad():
            assert train(x).requires_grad
        assert tg.is_grad_enabled()

    def test_mode_restored_after_exception(self):
        with pytest.raises(ZeroDivisionError):
            with tg.no_grad():
                1 / 0
        assert tg.is_grad_enabled()

    def test_set_grad_enabled_returns_previous(self):
        assert tg.set_grad_enabled(False) is True
        assert tg.set_grad_enabled(True) is False

    def test_detach(self):
        x = f64(1.0, 2.0)
        y = x * 2
        d = y.detach()
        assert not d.requires_grad and d.is_leaf and d.grad_fn is None
        assert d.data_ptr == y.data_ptr
        assert tg.detach(y).tolist() == y.tolist()
        (d * x).sum().backward()
        assert x.grad.tolist() == [2.0, 4.0]

    def test_requires_grad_propagation(self):
        a = f64(1.0)
        b = f64(2.0, requires_grad=False)
        assert (a * b).requires_grad and not (b * b).requires_grad
        assert not (a > b).requires_grad  # comparisons are not differentiable
        assert not a.argmax().requires_grad
        assert (b + a).requires_grad and tg.where(b > 0, a, b).requires_grad
        assert not tg.where(a > 0, b, b).requires_grad
        assert a.detach().exp().grad_fn is None


# ---------------------------------------------------------------------------
# tg.Tape
# ---------------------------------------------------------------------------


class TestTape:
    def test_records_in_order(self):
        x = f64(3.0)
        with tg.Tape() as tape:
            y = x * x + x
            z = y.exp()
        assert len(tape) == 3
        assert [e.op for e in tape] == ["mul", "add", "exp"]
        assert tape[0].op == "mul" and tape[-1].op == "exp"
        assert [e.op for e in tape[1:]] == ["add", "exp"]
        seqs = [e.seq for e in tape]
        assert seqs == sorted(seqs)
        assert tape[2] == z.grad_fn
        with pytest.raises(IndexError):
            tape[3]

    def test_nothing_recorded_outside_or_under_no_grad(self):
        x = f64(1.0)
        x * 2
        with tg.Tape() as tape:
            with tg.no_grad():
                x * 2
            tg.ones(2) * 3  # no input requires grad
        x * 2
        assert len(tape) == 0

    def test_gradient_structures(self):
        x, w = f64(3.0), f64(2.0)
        with tg.Tape() as tape:
            y = (x * w + x).sum()
        assert tape.gradient(y, x).tolist() == [3.0]
        gl = tape.gradient(y, [x, w])
        assert isinstance(gl, list) and [g.tolist() for g in gl] == [[3.0], [3.0]]
        gt = tape.gradient(y, (x, w))
        assert isinstance(gt, tuple) and len(gt) == 2
        gd = tape.gradient(y, {"x": x, "w": w})
        assert set(gd) == {"x", "w"} and gd["w"].tolist() == [3.0]
        assert x.grad is None

    def test_tape_entries_survive_the_tensors(self):
        with tg.Tape() as tape:
            x = f64(1.0, 2.0)
            (x * 2).exp()
        del x
        gc.collect()
        assert [e.op for e in tape] == ["mul", "exp"]
        assert tape[0].output_shape == (2,)

    def test_tape_cannot_be_reused(self):
        tape = tg.Tape()
        with tape:
            pass
        with pytest.raises(RuntimeError):
            with tape:
                pass

    def test_nested_tapes(self):
        x = f64(1.0)
        with tg.Tape() as outer:
            x * 2
            with tg.Tape() as inner:
                x * 3
        assert len(outer) == 2 and len(inner) == 1

    def test_entry_formulas(self):
        x = f64(1.0, 2.0)
        with tg.Tape() as tape:
            x @ x
        e = tape[0]
        assert e.op == "matmul" and e.forward and e.vjp and e.forward_latex and e.vjp_latex
        assert e.inputs == (x, x) and e.needs_grad == (True, True)


# ---------------------------------------------------------------------------
# tg.Function
# ---------------------------------------------------------------------------


class Square(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class ScaledAdd(tg.Function):
    """a * alpha + b: a non-tensor argument between tensors."""

    @staticmethod
    def forward(ctx, a, alpha, b):
        ctx.alpha = alpha
        return a * alpha + b

    @staticmethod
    def backward(ctx, g):
        return g * ctx.alpha, None, g


class Boom(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2

    @staticmethod
    def backward(ctx, g):
        raise KeyError("boom in backward")


class TestFunction:
    def test_square(self):
        x = f64(1.0, -2.0, 3.0)
        y = Square.apply(x)
        assert y.tolist() == [1.0, 4.0, 9.0]
        assert y.grad_fn.op == "Square" and y.grad_fn.is_custom
        y.sum().backward()
        assert x.grad.tolist() == [2.0, -4.0, 6.0]

    def test_forward_runs_without_recording(self):
        seen = []

        class Spy(tg.Function):
            @staticmethod
            def forward(ctx, x):
                seen.append(tg.is_grad_enabled())
                y = x * 3
                seen.append(y.requires_grad)
                return y

            @staticmethod
            def backward(ctx, g):
                return g * 3

        x = f64(1.0)
        y = Spy.apply(x)
        assert seen == [False, False] and y.requires_grad

    def test_gradcheck_and_create_graph(self):
        x = tg.randn(4, dtype=tg.float64, requires_grad=True)
        assert gradcheck(Square.apply, [x])
        assert gradgradcheck(Square.apply, [x])
        (g,) = tg.grad(Square.apply(x).sum(), x, create_graph=True)
        (g2,) = tg.grad(g.sum(), x)
        assert g2.tolist() == [2.0] * 4

    def test_non_tensor_arguments(self):
        a, b = f64(1.0, 2.0), f64(3.0, 4.0)
        y = ScaledAdd.apply(a, 3.0, b)
        y.sum().backward()
        assert a.grad.tolist() == [3.0, 3.0] and b.grad.tolist() == [1.0, 1.0]

    def test_no_grad_inputs_return_plain_output(self):
        x = f64(1.0, requires_grad=False)
        y = Square.apply(x)
        assert y.grad_fn is None and not y.requires_grad
        with tg.no_grad():
            assert Square.apply(f64(2.0)).grad_fn is None

    def test_wrong_number_of_gradients(self):
        class Two(tg.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 1

            @staticmethod
            def backward(ctx, g):
                return g, g

        with pytest.raises(ValueError, match="returned 2 gradients, expected 1"):
            Two.apply(f64(1.0)).sum().backward()

    def test_wrong_shape_gradient(self):
        class Bad(tg.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 1

            @staticmethod
            def backward(ctx, g):
                return tg.ones(5, dtype=tg.float64)

        with pytest.raises(ValueError, match=r"Bad.*input 0.*\(2,\)"):
            Bad.apply(f64(1.0, 2.0)).sum().backward()

    def test_forward_must_return_tensor(self):
        class NotTensor(tg.Function):
            @staticmethod
            def forward(ctx, x):
                return 1.0

        with pytest.raises(TypeError, match="must return a Tensor"):
            NotTensor.apply(f64(1.0))

    def test_exception_in_backward_propagates_and_leaks_nothing(self):
        x = f64(1.0, 2.0)
        refs_before = sys.getrefcount(x)
        y = Boom.apply(x)
        ref = weakref.ref(y)
        loss = y.sum()
        with pytest.raises(KeyError, match="boom in backward"):
            loss.backward()
        assert x.grad is None
        del y, loss
        gc.collect()
        assert ref() is None
        assert sys.getrefcount(x) == refs_before
        # the library is in a clean state: the next backward works
        (x * 2).sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]

    def test_exception_in_backward_loop_is_flat(self):
        import tracemalloc
        x = f64(1.0, 2.0)

        def once():
            try:
                Boom.apply(x).sum().backward()
            except KeyError:
                pass

        for _ in range(200):
            once()
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            once()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert grown < 64 * 1024, grown


# ---------------------------------------------------------------------------
# override_vjp
# ---------------------------------------------------------------------------


class TestOverrideVJP:
    def _mm_grads(self):
        rng = np.random.default_rng(0)
        A = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
        B = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
        (A @ B).tanh().sum().backward()
        return A, B

    def test_correct_matmul_override_gives_same_grads(self):
        A, B = self._mm_grads()
        ga, gb = A.grad.numpy().copy(), B.grad.numpy().copy()
        A.grad = B.grad = None
        calls = []

        def mm_vjp(entry, g):
            calls.append(entry.op)
            a, b = entry.inputs
            return g @ b.T, a.T @ g

        with tg.override_vjp("matmul", mm_vjp):
            (A @ B).tanh().sum().backward()
        assert calls == ["matmul"]
        np.testing.assert_allclose(A.grad.numpy(), ga)
        np.testing.assert_allclose(B.grad.numpy(), gb)
        # restored on exit
        A.grad = None
        (A @ B).tanh().sum().backward()
        assert calls == ["matmul"]
        np.testing.assert_allclose(A.grad.numpy(), ga)

    def test_correct_mul_override(self):
        def my_mul_vjp(entry, g):
            a, b = entry.inputs
            return g * b, g * a

        x = f64(2.0, 3.0)
        with tg.override_vjp("mul", my_mul_vjp):
            (x * x * 2).sum().backward()
        assert x.grad.tolist() == [8.0, 12.0]

    def test_override_with_broadcasting_and_none(self):
        def mul_vjp(entry, g):
            a, b = entry.inputs
            return g * b, None  # the engine sums g*b back to a's shape

        a = tg.ones(3, 1, dtype=tg.float64, requires_grad=True)
        b = tg.tensor([1.0, 2.0, 3.0, 4.0], dtype=tg.float64, requires_grad=True)
        with tg.override_vjp("mul", mul_vjp):
            (a * b).sum().backward()
        assert a.grad.tolist() == [[10.0]] * 3 and b.grad is None

    @pytest.mark.parametrize("op", ["matmul", "mul"])
    def test_wrong_shape_names_op_input_and_shape(self, op):
        def bad(entry, g):
            a, b = entry.inputs
            return g, tg.zeros(7, dtype=tg.float64)

        a = tg.ones(3, 4, dtype=tg.float64, requires_grad=True)
        b = tg.ones(4, 4, dtype=tg.float64, requires_grad=True)
        c = tg.ones(3, 4, dtype=tg.float64, requires_grad=True)
        with tg.override_vjp(op, bad):
            y = a @ b if op == "matmul" else a * c
            with pytest.raises(ValueError) as info:
                y.sum().backward()
        msg = str(info.value)
        assert op in msg and "input 1" in msg
        assert ("(4, 4)" if op == "matmul" else "(3, 4)") in msg

    def test_wrong_count(self):
        x = f64(1.0)
        with tg.override_vjp("mul", lambda e, g: (g,)):
            with pytest.raises(ValueError, match="mul.*returned 1 gradient, expected 2"):
                (x * x).sum().backward()

    def test_override_exception_propagates(self):
        def boom(entry, g):
            raise ArithmeticError("nope")

        x = f64(1.0)
        with tg.override_vjp("exp", boom):
            with pytest.raises(ArithmeticError, match="nope"):
                x.exp().sum().backward()
        x.exp().sum().backward()
        assert x.grad.item() == pytest.approx(np.e)

    def test_enable_disable_and_unknown_op(self):
        o = tg.override_vjp("mul", lambda e, g: (g * 0, g * 0)).enable()
        try:
            x = f64(1.0)
            (x * x).sum().backward()
            assert x.grad.tolist() == [0.0]
        finally:
            o.disable()
        with pytest.raises(ValueError, match="no op named"):
            tg.override_vjp("not_an_op", lambda e, g: g).enable()
        with pytest.raises(ValueError, match="not differentiable"):
            tg.override_vjp("argmax", lambda e, g: g).enable()

    def test_override_works_with_create_graph(self):
        def tanh_vjp(entry, g):
            (x,) = entry.inputs
            y = x.tanh()
            return g * (1 - y * y)

        x = tg.tensor([0.3, -0.7], dtype=tg.float64, requires_grad=True)
        with tg.override_vjp("tanh", tanh_vjp):
            assert gradgradcheck(lambda t: t.tanh(), [x])


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------


class TestHooks:
    def test_leaf_hook_replaces_grad_and_remove(self):
        x = f64(1.0, 2.0)
        h = x.register_hook(lambda g: g * 10)
        (x * 3).sum().backward()
        assert x.grad.tolist() == [30.0, 30.0]
        h.remove()
        x.grad = None
        (x * 3).sum().backward()
        assert x.grad.tolist() == [3.0, 3.0]

    def test_hook_returning_none_observes(self):
        x = f64(1.0, 2.0)
        seen = []
        x.register_hook(lambda g: seen.append(g.tolist()))
        (x * x).sum().backward()
        assert seen == [[2.0, 4.0]] and x.grad.tolist() == [2.0, 4.0]

    def test_non_leaf_hook_changes_upstream(self):
        x = f64(1.0, 2.0)
        y = x * 2
        seen = []

        def hook(g):
            seen.append(g.tolist())
            return g * 0 + 1

        y.register_hook(hook)
        (y * y).sum().backward()
        assert seen == [[4.0, 8.0]]
        assert x.grad.tolist() == [2.0, 2.0]

    def test_several_hooks_chain(self):
        x = f64(1.0)
        x.register_hook(lambda g: g + 1)
        x.register_hook(lambda g: g * 10)
        (x * 1).sum().backward()
        assert x.grad.tolist() == [20.0]

    def test_hook_wrong_shape(self):
        x = f64(1.0, 2.0)
        x.register_hook(lambda g: tg.ones(3, dtype=tg.float64))
        with pytest.raises(ValueError, match=r"hook.*\(3,\).*\(2,\)"):
            (x * 1).sum().backward()

    def test_hook_exception_propagates(self):
        x = f64(1.0)
        x.register_hook(lambda g: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            (x * 1).sum().backward()

    def test_hook_needs_requires_grad_and_callable(self):
        with pytest.raises(RuntimeError):
            tg.ones(2).register_hook(lambda g: g)
        with pytest.raises(TypeError):
            f64(1.0).register_hook(42)

    def test_hook_reference_cycle_is_collected(self):
        x = f64(1.0)
        x.register_hook(lambda g: g * x.numpy()[0])  # the hook refers to x: a cycle
        r = weakref.ref(x)
        del x
        gc.collect()
        assert r() is None


class TestGradientsAreFresh:
    """Gradients handed to the user are their own contiguous, writable
    tensors: never a broadcast view, never shared with another gradient."""

    def test_grad_results_not_aliased(self):
        a = tg.ones(2, requires_grad=True)
        b = tg.ones(2, requires_grad=True)
        ga, gb = tg.grad((a + b).sum(), [a, b])
        assert ga.data_ptr != gb.data_ptr and ga.is_contiguous and gb.is_contiguous
        ga += 1
        assert gb.tolist() == [1.0, 1.0]

    def test_grad_result_of_seed_is_a_copy(self):
        x = tg.ones(3, requires_grad=True)
        seed = tg.tensor([1.0, 2.0, 3.0])
        (g,) = tg.grad(x * 1, x, seed)
        g += 1
        assert seed.tolist() == [1.0, 2.0, 3.0]

    def test_leaf_grads_not_aliased(self):
        a = tg.ones(2, requires_grad=True)
        b = tg.ones(2, requires_grad=True)
        (a + b).sum().backward()
        assert a.grad.data_ptr != b.grad.data_ptr
        a.grad.zero_()
        assert b.grad.tolist() == [1.0, 1.0]

    def test_create_graph_constant_grads_not_aliased(self):
        a = tg.ones(2, requires_grad=True)
        b = tg.ones(2, requires_grad=True)
        (a + b).sum().backward(create_graph=True)
        assert a.grad.data_ptr != b.grad.data_ptr and a.grad.is_contiguous
        a.grad.zero_()
        assert b.grad.tolist() == [1.0, 1.0]

    def test_create_graph_grads_stay_on_the_graph(self):
        x = tg.tensor([2.0], dtype=tg.float64, requires_grad=True)
        (x ** 3).sum().backward(create_graph=True)
        assert x.grad.grad_fn is not None and x.grad.tolist() == [12.0]


class TestGradcheckTool:
    """tg.testing catches wrong derivatives (so the registry tests mean something)."""

    def test_gradcheck_catches_a_wrong_vjp(self):
        x = tg.randn(3, dtype=tg.float64, requires_grad=True)
        assert gradcheck(lambda t: t.sin(), [x])
        with tg.override_vjp("sin", lambda e, g: g * e.inputs[0].cos() * 1.01):
            with pytest.raises(GradcheckError, match="input 0"):
                gradcheck(lambda t: t.sin(), [x])
            assert gradcheck(lambda t: t.sin(), [x], raise_exception=False) is False

    def test_gradgradcheck_catches_a_vjp_that_is_not_differentiable(self):
        x = tg.randn(4, dtype=tg.float64, requires_grad=True)

        def detached_tanh_vjp(entry, g):
            y = entry.inputs[0].detach().tanh()  # right value, no graph through x
            return g * (1 - y * y)

        with tg.override_vjp("tanh", detached_tanh_vjp):
            assert gradcheck(lambda t: t.tanh(), [x])
            with pytest.raises(GradcheckError):
                gradgradcheck(lambda t: t.tanh(), [x])

    def test_gradcheck_needs_float64(self):
        with pytest.raises(ValueError, match="float64"):
            gradcheck(lambda t: t * 2, [tg.ones(2, requires_grad=True)])
        with pytest.raises(ValueError, match="requires grad"):
            gradcheck(lambda t: t * 2, [tg.ones(2, dtype=tg.float64)])

    def test_gradcheck_of_constant_output(self):
        x = tg.randn(3, dtype=tg.float64, requires_grad=True)
        assert gradcheck(lambda t: tg.ones(2, dtype=tg.float64), [x])
        assert gradgradcheck(lambda t: t * 3.0 + 1.0, [x])
