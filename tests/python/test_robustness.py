"""Robustness (GitHub issue 9): what tapegrad guarantees under bad input,
exceptions in user code, deep graphs, NaN/Inf, memory aliasing, long loops
and threads.  See tests/fuzz/GUARANTEES.md for the written guarantees; each
class here tests one of them.  (test_errors.py covers the op-by-op error
messages and test_zero_copy.py the NumPy bridge itself; this file covers what
they do not.)

The crashes and undefined behaviour that the fuzzers found are regression
tests in tests/c/test_regressions.c; the Python-visible ones are here too
(TestRegressions)."""
import gc
import os
import resource
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import tapegrad as tg
from assertions import raises

SANITIZED = os.environ.get("TAPEGRAD_SANITIZED") == "1"




# ---------------------------------------------------------------------------
# 3. Bad input from NumPy: handled correctly (values checked) or refused clearly
# ---------------------------------------------------------------------------

def _layouts():
    base = np.arange(60.0).reshape(6, 10) / 7.0
    return {
        "c_order": base.copy(),
        "fortran": np.asfortranarray(base),
        "non_contiguous": base[::2, 1::3],
        "negative_strides": base[::-1, ::-2],
        "transposed": base.T,
        "zero_size": np.zeros((0, 4)),
        "zero_size_strided": np.zeros((5, 0))[::2],
        "zero_d": np.array(2.5),
        "float32_reversed": base.astype(np.float32)[:, ::-1],
        "broadcast_stride0": np.broadcast_to(np.arange(4.0), (3, 4)),
    }


class TestFromNumpyLayouts:
    @pytest.mark.parametrize("kind", sorted(_layouts()))
    def test_values_ops_and_gradients(self, kind):
        a = _layouts()[kind]
        t = tg.from_numpy(a)
        assert t.shape == a.shape and t.dtype == a.dtype
        np.testing.assert_array_equal(t.numpy(), a)
        np.testing.assert_allclose((t * 2 + 1).numpy(), a * 2 + 1, rtol=1e-6)
        np.testing.assert_allclose(t.sum().item(), a.sum(), rtol=1e-6)
        if a.ndim == 2:
            np.testing.assert_array_equal(t.T.numpy(), a.T)
            np.testing.assert_allclose((t @ t.T).numpy(), a @ a.T, rtol=1e-5)
            np.testing.assert_array_equal(t[::-1].numpy(), a[::-1])
        # a leaf requiring grad over the same memory (a copy where NumPy
        # would refuse to write: the broadcast view is read-only)
        src = a.copy(order="K") if not a.flags.writeable else a
        x = tg.from_numpy(src.astype(np.float64, copy=False), requires_grad=True)
        (x * x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * src, rtol=1e-12)
        assert x.grad.shape == src.shape and x.grad.is_contiguous

    def test_read_only_array_stays_read_only(self):
        a = np.arange(4.0)
        a.flags.writeable = False
        t = tg.from_numpy(a, requires_grad=True)
        (t * t).sum().backward()
        assert t.grad.tolist() == [0.0, 2.0, 4.0, 6.0]
        assert not a.flags.writeable  # never made writeable by the library
        with raises(RuntimeError, "read-only"):
            with tg.no_grad():
                t += 1

    def test_misaligned_refused_then_copied(self):
        raw = np.zeros(8 * 3 + 1, dtype=np.uint8)
        a = raw[1:].view(np.float64)
        a[:] = [1.5, -2.0, 3.0]
        with raises(ValueError, "from_numpy", "aligned"):
            tg.from_numpy(a)
        t = tg.tensor(a)  # tg.tensor copies: always fine
        assert t.tolist() == [1.5, -2.0, 3.0]
        assert (t + a).tolist() == [3.0, -4.0, 6.0]  # an operand is copied too

    @pytest.mark.parametrize("dt", [">f8", ">f4", ">i8"])
    def test_big_endian_refused_then_converted(self, dt):
        a = np.arange(3).astype(dt)
        with raises(TypeError, "from_numpy", "big-endian"):
            tg.from_numpy(a)
        t = tg.tensor(a)
        assert t.tolist() == [0, 1, 2]
        assert t.dtype.byteorder in ("=", "|")

    @pytest.mark.parametrize("dt", [np.complex64, np.float16, np.int16, np.uint64, np.int8,
                                    np.dtype("U3"), np.dtype("V8"), object, np.dtype([("a", "f8")])])
    def test_unsupported_dtypes_name_the_op_and_the_choices(self, dt):
        a = np.zeros(3, dtype=dt)
        with raises(TypeError, "from_numpy", "float32", "float64", "int64"):
            tg.from_numpy(a)

    def test_integer_arrays_cannot_require_grad(self):
        with raises(TypeError, "int64"):
            tg.from_numpy(np.arange(3), requires_grad=True)
        t = tg.from_numpy(np.arange(3))
        with raises(TypeError, "int64"):
            t.requires_grad = True
        with raises(TypeError, "int64"):
            t.requires_grad_()
        assert not t.requires_grad

    def test_too_many_dims_and_scalars(self):
        with raises(ValueError, "from_numpy", "dimensions"):
            tg.from_numpy(np.zeros((1,) * 9))
        with raises(TypeError, "from_numpy", "ndarray"):
            tg.from_numpy(np.float64(1.0))
        s = tg.from_numpy(np.array(-0.0))
        assert s.shape == () and np.signbit(s.item())

    def test_nan_and_inf_arrays(self):
        a = np.array([np.nan, np.inf, -np.inf, 1.0])
        t = tg.from_numpy(a)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal((t * 0).numpy(), a * 0)
            np.testing.assert_array_equal(t.exp().numpy(), np.exp(a))


# ---------------------------------------------------------------------------
# 3. Autograd misuse
# ---------------------------------------------------------------------------

class TestAutogradMisuse:
    def test_backward_twice_names_the_entry(self):
        x = tg.ones(3, requires_grad=True)
        y = (x.exp() * 2).sum()
        y.backward()
        with raises(RuntimeError, "retain_graph=True", "sum", "#"):
            y.backward()
        x.grad = None
        z = (x * 3).sum()
        z.backward(retain_graph=True)
        z.backward()  # the second is fine after retain_graph
        assert x.grad.tolist() == [6.0, 6.0, 6.0]

    def test_grad_twice_without_retain(self):
        x = tg.ones(2, requires_grad=True)
        y = (x * x).sum()
        tg.grad(y, [x])
        with raises(RuntimeError, "retain_graph"):
            tg.grad(y, [x])

    def test_backward_of_non_scalar(self):
        x = tg.ones(2, 3, requires_grad=True)
        y = x * 2
        with raises(RuntimeError, "backward", "(2, 3)", "gradient"):
            y.backward()
        with raises(ValueError, "backward", "(3,)", "(2, 3)"):
            y.backward(tg.ones(3))
        y.backward(tg.ones(2, 3))
        assert x.grad.tolist() == [[2.0] * 3] * 2

    def test_backward_of_constant(self):
        with raises(RuntimeError, "does not require grad"):
            tg.ones(1).backward()


# ---------------------------------------------------------------------------
# 3. Exceptions raised by user code inside the tape
# ---------------------------------------------------------------------------

class Boom(Exception):
    pass


class Square(tg.Function):
    fail_forward = False
    fail_backward = False

    @staticmethod
    def forward(ctx, x):
        if Square.fail_forward:
            raise Boom("forward failed")
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        if Square.fail_backward:
            raise Boom("backward failed")
        (x,) = ctx.saved_tensors
        return 2 * x * g


@pytest.fixture
def square():
    Square.fail_forward = Square.fail_backward = False
    yield Square
    Square.fail_forward = Square.fail_backward = False


class TestUserExceptions:
    def test_hook_exception_propagates_unchanged(self):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        err = Boom("from the hook")

        def hook(g):
            raise err

        h = x.register_hook(hook)
        loss = (x * x).sum()
        with pytest.raises(Boom) as info:
            loss.backward(retain_graph=True)
        assert info.value is err  # the very same object, not wrapped
        assert x.grad is None
        h.remove()
        loss.backward()  # the graph is still usable
        assert x.grad.tolist() == [2.0, 4.0]

    def test_hook_on_intermediate_raising(self):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        y.register_hook(lambda g: (_ for _ in ()).throw(KeyError("k")))
        with pytest.raises(KeyError):
            y.sum().backward()
        assert tg.is_grad_enabled()

    def test_hook_returning_garbage(self):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: tg.ones(5))
        with raises(ValueError, "hook", "(5,)", "(2,)"):
            (x * x).sum().backward()

    def test_function_forward_exception(self, square):
        x = tg.tensor([3.0], requires_grad=True)
        square.fail_forward = True
        with pytest.raises(Boom, match="forward failed"):
            square.apply(x)
        assert tg.is_grad_enabled()  # forward ran under no_grad: restored
        square.fail_forward = False
        y = square.apply(x)
        y.sum().backward()
        assert x.grad.tolist() == [6.0]

    def test_function_backward_exception(self, square):
        x = tg.tensor([3.0], requires_grad=True)
        y = square.apply(x).sum()
        square.fail_backward = True
        with pytest.raises(Boom, match="backward failed"):
            y.backward(retain_graph=True)
        assert tg.is_grad_enabled()
        square.fail_backward = False
        y.backward()
        assert x.grad.tolist() == [6.0]

    def test_function_saved_tensor_modified_in_place(self, square):
        x = tg.tensor([3.0], requires_grad=True)
        c = tg.tensor([2.0])
        y = square.apply(x * c)  # saves x * c
        y2 = square.apply(c)  # saves c itself (c does not require grad: nothing recorded)
        assert y2.grad_fn is None
        z = tg.tensor([1.5], requires_grad=True)
        w = square.apply(z)
        with tg.no_grad():
            z += 1
        with raises(RuntimeError, "Square", "save_for_backward", "modified in place"):
            w.sum().backward()
        y.sum().backward()
        assert x.grad.tolist() == [24.0]

    def test_function_backward_wrong_count(self):
        class Bad(tg.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x + y

            @staticmethod
            def backward(ctx, g):
                return g  # one gradient for two inputs

        a = tg.ones(2, requires_grad=True)
        with raises(ValueError, "Bad", "2"):
            Bad.apply(a, a).sum().backward()

    def test_function_backward_wrong_shape(self):
        class BadShape(tg.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 1.0

            @staticmethod
            def backward(ctx, g):
                return tg.ones(7)

        a = tg.ones(2, requires_grad=True)
        with raises(ValueError, "BadShape", "(7,)", "(2,)"):
            BadShape.apply(a).sum().backward()

    def test_nothing_leaks_when_user_code_raises(self, square):
        x = tg.randn(64, requires_grad=True)

        def once():
            h = x.register_hook(lambda g: (_ for _ in ()).throw(Boom()))
            try:
                (x * x).sum().backward()
            except Boom:
                pass
            h.remove()
            square.fail_backward = True
            try:
                square.apply(x).sum().backward()
            except Boom:
                pass
            square.fail_backward = False

        for _ in range(50):
            once()
        gc.collect()
        live, refs = tg.memory_stats()["live_bytes"], sys.getrefcount(x)
        blocks = sys.getallocatedblocks()
        for _ in range(300):
            once()
        gc.collect()
        assert tg.memory_stats()["live_bytes"] <= live
        assert sys.getrefcount(x) == refs
        assert sys.getallocatedblocks() - blocks < 300


# ---------------------------------------------------------------------------
# 3. Deep graphs: no recursion on backward or on deletion
# ---------------------------------------------------------------------------

class TestDeepGraphs:
    N = 100_000

    def test_chain_backward_and_deletion(self):
        x = tg.tensor([1.0], dtype=tg.float64, requires_grad=True)
        y = x
        for _ in range(self.N):
            y = y * 1.0 + 0.0  # 2 entries per step: a 200,000-entry chain
        y.sum().backward()
        assert x.grad.tolist() == [1.0]
        del y  # frees 200,000 entries: no recursion
        gc.collect()

    def test_chain_deleted_without_backward(self):
        x = tg.ones(2, requires_grad=True)
        y = x
        for _ in range(self.N):
            y = y.tanh()
        refs = sys.getrefcount(x)
        del y
        assert sys.getrefcount(x) == refs  # nothing else held x
        assert x.grad is None

    def test_deep_chain_with_retain_and_grad(self):
        x = tg.tensor(0.5, dtype=tg.float64, requires_grad=True)
        y = x
        for _ in range(20_000):
            y = y + x * 1e-4
        (g,) = tg.grad(y, [x], retain_graph=True)
        assert abs(g.item() - 3.0) < 1e-9
        y.backward()
        assert abs(x.grad.item() - 3.0) < 1e-9


# ---------------------------------------------------------------------------
# 3. NaN and Inf propagate like NumPy (what test_errors.py does not cover)
# ---------------------------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 1e308, -1e308, 5e-324])


class TestNaNInf:
    @pytest.mark.parametrize("name,npf", [
        ("gelu", None), ("erf", None), ("leaky_relu", lambda x: np.where(x > 0, x, 0.01 * x)),
    ])
    def test_remaining_unary_ops(self, name, npf):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            got = getattr(tg, name)(tg.tensor(SPECIAL)).numpy()
        if npf is not None:
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(got, npf(SPECIAL))
        # NaN in, NaN out; +-inf map to the op's limits, never a crash
        assert np.isnan(got[0])
        if name == "erf":
            assert got[1] == 1.0 and got[2] == -1.0
        if name == "gelu":  # x * Phi(x): -inf * 0 is nan, as in PyTorch's exact gelu
            assert got[1] == np.inf and (got[2] == 0.0 or np.isnan(got[2]))

    def test_every_registry_unary_op_survives_special_values(self):
        names = [o["name"] for o in tg.ops() if o["arity"] == 1 and o["differentiable"]  # (isnan & co. are not)
                 and "int64" not in o["dtypes"].split(";")[0]]
        names = [n for n in names if hasattr(tg, n) and n not in ("dropout", "argmax", "argmin")]
        assert len(names) >= 10
        x = tg.tensor(SPECIAL, dtype=tg.float64, requires_grad=True)
        with np.errstate(all="ignore"):
            for n in names:
                try:
                    y = getattr(tg, n)(x)
                except (TypeError, ValueError, IndexError) as e:  # needs more arguments or dims
                    assert n in str(e) or "argument" in str(e)
                    continue
                ys = y if isinstance(y, tuple) else (y,)  # var_mean, std_mean: a tuple
                sum(t.sum() for t in ys if t.requires_grad).backward()
                assert x.grad.shape == x.shape
                x.grad = None

    def test_matmul_like_numpy(self):
        a = np.array([[np.nan, 1.0], [np.inf, 0.0], [1.0, 2.0]])
        b = np.array([[0.0, 1.0, -np.inf], [1.0, np.inf, 2.0]])
        with np.errstate(all="ignore"):
            want = a @ b
            got = (tg.tensor(a, dtype=tg.float64) @ tg.tensor(b, dtype=tg.float64)).numpy()
        np.testing.assert_array_equal(got, want)
        big = np.full((80, 80), 1e300)  # overflow to inf in the packed kernel too
        with np.errstate(all="ignore"):
            got = (tg.tensor(big, dtype=tg.float64) @ tg.tensor(big, dtype=tg.float64)).numpy()
        assert np.isinf(got).all()

    def test_matmul_nan_only_where_numpy_has_it(self):
        rng = np.random.default_rng(3)
        a, b = rng.normal(size=(70, 90)), rng.normal(size=(90, 60))
        a[5, 7] = np.nan
        b[11, 13] = np.inf
        with np.errstate(all="ignore"):
            want = a @ b
            got = (tg.tensor(a, dtype=tg.float64) @ tg.tensor(b, dtype=tg.float64)).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-10, atol=1e-10)

    def test_softmax_and_losses(self):
        z = tg.tensor([[1.0, np.inf, 0.0], [np.nan, 0.0, 1.0], [-np.inf, 0.0, 0.0]], dtype=tg.float64)
        with np.errstate(all="ignore"):
            p = tg.softmax(z, axis=1).numpy()
            lp = tg.log_softmax(z, axis=1).numpy()
        assert np.isnan(p[0]).any() or p[0, 1] == 1.0  # inf logit: NumPy gives nan (inf - inf)
        assert np.isnan(p[1]).all() and np.isnan(lp[1]).all()
        np.testing.assert_allclose(p[2], [0.0, 0.5, 0.5])
        assert lp[2, 0] == -np.inf
        labels = tg.tensor([0, 1, 2])
        with np.errstate(all="ignore"):
            loss = tg.cross_entropy(z, labels, reduction="none").numpy()
        assert np.isnan(loss[1])
        assert np.isfinite(loss[2])
        zz = tg.tensor([[0.0, np.nan]], dtype=tg.float64, requires_grad=True)
        tg.cross_entropy(zz, tg.tensor([0])).backward()
        assert np.isnan(zz.grad.numpy()).all()

    def test_reductions_with_inf(self):
        a = np.array([[np.inf, -np.inf], [np.inf, 1.0]])
        t = tg.tensor(a, dtype=tg.float64)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(t.sum(axis=1).numpy(), a.sum(axis=1))
            np.testing.assert_array_equal(t.mean(axis=0).numpy(), a.mean(axis=0))
            np.testing.assert_array_equal(t.var(axis=0).numpy(), a.var(axis=0))
            np.testing.assert_array_equal(t.max(axis=1).numpy(), a.max(axis=1))
            np.testing.assert_array_equal(t.argmax(axis=1).numpy(), a.argmax(axis=1))
            np.testing.assert_array_equal(tg.tensor([np.nan, 3.0]).argmax().item(), 0)

    def test_integer_overflow_wraps_like_numpy(self):
        big = np.array([2**63 - 1, -2**63], dtype=np.int64)
        t = tg.tensor(big)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal((t + 1).numpy(), big + 1)
            np.testing.assert_array_equal((-t).numpy(), -big)
            np.testing.assert_array_equal(t.abs().numpy(), np.abs(big))
            np.testing.assert_array_equal((t * 3).numpy(), big * 3)
        assert t.sum().item() == -1

    def test_nan_inf_to_int64_is_defined(self):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            want = np.array([np.nan, np.inf, -np.inf, 1e300, -7.9]).astype(np.int64)
            got = tg.tensor([np.nan, np.inf, -np.inf, 1e300, -7.9], dtype=tg.float64).long().numpy()
        assert got[-1] == -7
        if np.all(want[:4] == np.iinfo(np.int64).min):  # NumPy's result on x86
            np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------
# 4. Safe aliasing: a saved tensor cannot change behind the tape's back
# ---------------------------------------------------------------------------

class TestSafeAliasing:
    def test_inplace_after_save_names_entry_and_tensor(self):
        w = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w.name = "fc1.weight"
        x = tg.tensor([1.0, 1.0, 1.0])
        y = (w * x).sum()
        with tg.no_grad():
            x *= 2  # x was saved by mul (for dw)
        with raises(RuntimeError, "tape entry #", "(mul)", "(3,)", "modified in place", "version"):
            y.backward()
        z = (w * w).sum()
        with tg.no_grad():
            w += 1
        with raises(RuntimeError, "'fc1.weight'", "(mul)", "modified in place"):
            z.backward()

    def test_numpy_alias_read_only_until_backward(self):
        a = np.arange(3.0)
        w = tg.from_numpy(a, requires_grad=True)
        n = w.numpy()
        loss = (w * w).sum()
        assert not a.flags.writeable and not n.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 5.0
        with pytest.raises(ValueError, match="read-only"):
            n[1] = 5.0
        loss.backward()
        assert a.flags.writeable and n.flags.writeable
        assert w.grad.tolist() == [0.0, 2.0, 4.0]
        a[0] = 5.0  # fine now
        assert w.tolist() == [5.0, 1.0, 2.0]

    def test_retain_graph_keeps_read_only_until_graph_dies(self):
        a = np.ones(4)
        w = tg.from_numpy(a, requires_grad=True)
        loss = (w * w).sum()
        loss.backward(retain_graph=True)
        assert not a.flags.writeable
        loss.backward(retain_graph=True)
        assert not a.flags.writeable
        del loss
        gc.collect()
        assert a.flags.writeable

    def test_graph_dying_without_backward_restores(self):
        a = np.ones(4)
        w = tg.from_numpy(a, requires_grad=True)
        y = w.exp() * w
        assert not a.flags.writeable
        del y
        assert a.flags.writeable

    def test_only_writeable_arrays_are_restored(self):
        a = np.ones(3)
        b = np.ones(3)
        b.flags.writeable = False
        wa, wb = tg.from_numpy(a, requires_grad=True), tg.from_numpy(b, requires_grad=True)
        loss = (wa * wb).sum()
        assert not a.flags.writeable and not b.flags.writeable
        loss.backward()
        assert a.flags.writeable
        assert not b.flags.writeable  # it was read-only before: it stays so

    def test_array_made_while_saved_is_restored_too(self):
        w = tg.randn(3, requires_grad=True)
        loss = (w * w).sum()
        n = w.numpy()  # made during the graph's life: read-only
        assert not n.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            n[0] = 1.0
        with pytest.raises(ValueError):
            n.flags.writeable = True  # cannot be forced back either
        loss.backward()
        assert n.flags.writeable

    def test_buffer_protocol_while_saved(self):
        w = tg.randn(3, requires_grad=True)
        loss = (w * w).sum()
        m = memoryview(w)
        assert m.readonly
        arr = np.asarray(w)  # NumPy goes through the buffer protocol
        assert not arr.flags.writeable
        m.release()
        loss.backward()
        m2 = memoryview(w)
        assert not m2.readonly

    def test_writable_view_alive_at_save_gives_a_snapshot(self):
        w = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        view = np.asarray(w)  # a writable view made before the graph
        assert view.flags.writeable
        loss = (w * w).sum()
        view[0] = 100.0  # cannot be stopped: the entry saved a private copy
        loss.backward()
        assert w.grad.tolist() == [2.0, 4.0, 6.0]  # the gradient at the forward values
        assert w.tolist() == [100.0, 2.0, 3.0]

    def test_labels_are_protected(self):
        buf = np.array([0, 1, 2])
        labels = tg.from_numpy(buf)
        z = tg.randn(3, 4, requires_grad=True)
        loss = tg.cross_entropy(z, labels)
        with pytest.raises(ValueError, match="read-only"):
            buf[:] = [3, 3, 3]  # a data loader refilling its buffer too early
        loss.backward()
        buf[:] = [3, 3, 3]  # after backward: fine
        with tg.no_grad():
            labels2 = tg.tensor([0, 1, 2])
            loss2 = tg.cross_entropy(z, labels2)
        assert not loss2.requires_grad  # nothing saved under no_grad: nothing locked
        z2 = tg.randn(3, 4, requires_grad=True)
        loss3 = tg.cross_entropy(z2, labels2)
        with tg.no_grad():
            labels2 += 1  # in place through the tensor: the version counter
        with raises(RuntimeError, "cross_entropy", "modified in place"):
            loss3.backward()

    def test_gradcheck_still_perturbs_inputs(self):
        x = tg.randn(3, dtype=tg.float64, requires_grad=True)
        assert tg.testing.gradcheck(lambda t: (t * t).tanh(), [x])
        assert tg.testing.gradgradcheck(lambda t: t * t * t, [x])
        assert x.numpy().flags.writeable

    def test_eval_without_no_grad_locks_the_batch_buffer(self):
        """The documented cost: a graph kept alive (here, forgetting no_grad in
        an evaluation loop) keeps its inputs locked until it is dropped."""
        w = tg.randn(4, 2, requires_grad=True)
        buf = np.zeros((3, 4))
        out = tg.from_numpy(buf) @ w
        with pytest.raises(ValueError, match="read-only"):
            buf[:] = 1.0
        del out
        buf[:] = 1.0
        with tg.no_grad():
            out = tg.from_numpy(buf) @ w
        buf[:] = 2.0  # no graph, no lock
        assert out.shape == (3, 2)


# ---------------------------------------------------------------------------
# 5. No leaks in a training loop
# ---------------------------------------------------------------------------

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(SANITIZED, reason="memory sizes are meaningless under ASan")
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_training_loop_memory_is_flat():
    """10,000 Adam steps of a 64-32-10 MLP on random data (batch 32): resident
    memory, tracemalloc, the parameters' reference counts and the library's
    live tensor bytes are the same at step 10,000 as at step 2,000."""
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    model = tg.nn.Sequential(tg.nn.Linear(64, 32), tg.nn.ReLU(), tg.nn.Linear(32, 10))
    params = list(model.parameters())
    opt = tg.optim.Adam(params, lr=1e-3)
    X = rng.normal(size=(8, 32, 64)).astype(np.float32)
    Y = rng.integers(0, 10, size=(8, 32))

    def step(i):
        x, y = tg.from_numpy(X[i % 8]), tg.from_numpy(Y[i % 8])
        loss = tg.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for i in range(2000):
        step(i)
    gc.collect()
    rss0, live0 = _rss_bytes(), tg.memory_stats()["live_bytes"]
    refs0 = [sys.getrefcount(p) for p in params]
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    first = last = None
    for i in range(2000, 10000):
        loss = step(i)
        if i == 2000:
            first = loss.item()
        last = loss
    last = last.item()
    del loss  # its graph's edges (the activations) would still be alive
    gc.collect()
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss1, live1 = _rss_bytes(), tg.memory_stats()["live_bytes"]
    assert [sys.getrefcount(p) for p in params] == refs0
    assert live1 <= live0 * 1.01 + 4096, (live0, live1)
    assert traced1 - traced0 < 64 * 1024, f"the Python heap grew by {traced1 - traced0} bytes"
    assert rss1 <= rss0 * 1.01 + 2 * 1024 * 1024, f"resident memory grew {rss0} -> {rss1}"
    assert np.isfinite(last) and last < first  # it did train


# ---------------------------------------------------------------------------
# 6. Threads
# ---------------------------------------------------------------------------

def _run_threads(fns, timeout=120):
    errors = []

    def wrap(f):
        def run():
            try:
                f()
            except BaseException as e:  # reported in the main thread
                errors.append(e)
        return run

    ts = [threading.Thread(target=wrap(f)) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    if errors:
        raise errors[0]


def _mlp_grads(seed, steps):
    rng = np.random.default_rng(seed)
    w1 = tg.tensor(rng.normal(size=(300, 256)), dtype=tg.float64, requires_grad=True)
    w2 = tg.tensor(rng.normal(size=(256, 10)), dtype=tg.float64, requires_grad=True)
    x = tg.tensor(rng.normal(size=(64, 300)), dtype=tg.float64)
    y = tg.tensor(rng.integers(0, 10, size=64))
    for _ in range(steps):
        w1.grad = w2.grad = None
        loss = tg.cross_entropy(((x @ w1).tanh()) @ w2, y)
        loss.backward()
    return w1.grad.numpy().copy(), w2.grad.numpy().copy(), loss.item()


class TestThreads:
    def test_independent_graphs_in_four_threads(self):
        want = [_mlp_grads(s, 1) for s in range(4)]
        got = [None] * 4

        def work(k):
            def f():
                for _ in range(3):
                    got[k] = _mlp_grads(k, 5)
            return f

        _run_threads([work(k) for k in range(4)])
        for k in range(4):
            for a, b in zip(got[k][:2], want[k][:2]):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
            assert abs(got[k][2] - want[k][2]) < 1e-12

    def test_big_matmuls_beside_small_ops(self):
        rng = np.random.default_rng(1)
        A, B = rng.normal(size=(400, 300)), rng.normal(size=(300, 350))
        want = A @ B
        small_done = []
        stop = threading.Event()

        def big():
            a, b = tg.tensor(A, dtype=tg.float64), tg.tensor(B, dtype=tg.float64)
            for _ in range(6):
                np.testing.assert_allclose((a @ b).numpy(), want, rtol=1e-10, atol=1e-9)
            stop.set()

        def small():
            x = tg.tensor([1.0, 2.0], requires_grad=True)
            while not stop.is_set() or not small_done:
                x.grad = None
                ((x * x).sum() + x.exp().sum()).backward()
                np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0]) + np.exp([1.0, 2.0]))
                small_done.append(1)

        _run_threads([big, small])
        assert small_done

    def test_thread_pool_entered_from_two_threads(self):
        """Both threads run kernels that use the worker pool (large matmuls,
        GIL released): one gets the pool, the other runs inline; both right."""
        rng = np.random.default_rng(2)
        mats = [(rng.normal(size=(256, 256)), rng.normal(size=(256, 256))) for _ in range(2)]
        wants = [a @ b for a, b in mats]

        def work(k):
            def f():
                a, b = (tg.tensor(m, dtype=tg.float64) for m in mats[k])
                for _ in range(10):
                    np.testing.assert_allclose((a @ b).numpy(), wants[k], rtol=1e-10, atol=1e-9)
            return f

        _run_threads([work(0), work(1), work(0), work(1)])

    def test_grad_mode_is_per_thread(self):
        x = tg.ones(2, requires_grad=True)
        in_no_grad, checked = threading.Event(), threading.Event()
        seen = {}

        def a():
            with tg.no_grad():
                in_no_grad.set()
                checked.wait(30)
                seen["a"] = (x * 2).requires_grad

        def b():
            in_no_grad.wait(30)
            seen["b"] = (x * 2).requires_grad, tg.is_grad_enabled()
            checked.set()

        _run_threads([a, b])
        assert seen["a"] is False
        assert seen["b"] == (True, True)
        assert tg.is_grad_enabled()

    def test_errors_are_per_thread(self):
        def work(k):
            def f():
                a = tg.ones(k + 2, 3)
                b = tg.ones(5, k + 7)
                for _ in range(300):
                    with pytest.raises(ValueError) as info:
                        a @ b
                    msg = str(info.value)
                    assert f"({k + 2}, 3)" in msg and f"(5, {k + 7})" in msg, msg
                    assert (a.sum()).item() == 3 * (k + 2)
            return f

        _run_threads([work(k) for k in range(4)])

    def test_shared_leaf_concurrent_backward_never_loses_gradient(self):
        """Two threads backpropagating through graphs that share a leaf: each
        backward either runs (and its gradient is fully accumulated) or is
        refused with a RuntimeError naming the conflict; the sum is exact."""
        rng = np.random.default_rng(4)
        W = tg.tensor(rng.normal(size=(256, 256)), dtype=tg.float64, requires_grad=True)
        X = tg.tensor(rng.normal(size=(256, 256)), dtype=tg.float64)
        one = (X @ W).tanh().sum()
        one.backward()
        g1 = W.grad.numpy().copy()
        W.grad = None
        ok = []

        def work():
            for _ in range(8):
                loss = (X @ W).tanh().sum()
                try:
                    loss.backward()
                    ok.append(1)
                except RuntimeError as e:
                    assert "another backward pass" in str(e), str(e)

        _run_threads([work, work])
        assert ok
        np.testing.assert_allclose(W.grad.numpy(), len(ok) * g1, rtol=1e-9)


# ---------------------------------------------------------------------------
# Regressions found by the fuzzers and sanitizers (C side: test_regressions.c)
# ---------------------------------------------------------------------------

class TestRegressions:
    def test_empty_tensor_with_huge_dims(self):
        with raises(MemoryError, "too many"):
            tg.zeros(0, 2**62, 2**62)
        assert tg.zeros(0, 2**20, 3).shape == (0, 2**20, 3)

    def test_eye_extremes(self):
        assert tg.eye(3, 3, k=2**62).sum().item() == 0

    def test_slice_with_huge_steps(self):
        t = tg.arange(12.0).reshape(3, 4)
        np.testing.assert_array_equal(t[::2**62, ::-2**63].numpy(), t.numpy()[::2**62, ::-2**63])

    def test_softmax_of_empty_axis(self):
        x = tg.zeros(0, requires_grad=True)
        assert tg.softmax(x, axis=0).shape == (0,) and tg.log_softmax(x, axis=0).shape == (0,)
        z = tg.zeros(0, 0, requires_grad=True)
        loss = tg.cross_entropy(z, tg.zeros(0, dtype=tg.int64))
        loss.backward()  # the VJP's softmax of an empty axis raised (naming logsumexp)
        assert z.grad.shape == (0, 0)

    def test_extreme_integer_array_index(self):
        t = tg.arange(6.0).reshape(2, 3)
        big = np.array([2**63 - 1])
        with raises(IndexError, str(2**63 - 1), "out of bounds"):
            t[big, np.array([0])]  # the value used to go through a double (UB)
        with raises(IndexError, "out of bounds"):
            t[np.array([-2**63]), np.array([0])]

    def test_own_gradient_refused(self):
        x = tg.ones(3, requires_grad=True)
        with raises(ValueError, "own gradient"):
            x.grad = x
        assert x.grad is None


def test_empty_tensors_with_huge_dims_index_at_once():
    """Found by the fuzz driver: index_select of an empty tensor whose other
    dims multiply to 2^45 looped 2^45 times copying nothing.  An empty
    result, and its VJP, now return at once (a hang would time the test out)."""
    x = tg.zeros((2 ** 45, 0, 3), requires_grad=True)
    idx = tg.tensor(np.array([2, 0], np.int64))
    y = tg.index_select(x, 2, idx)
    assert y.shape == (2 ** 45, 0, 2)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert tg.index_select(x, 1, tg.tensor(np.array([], np.int64))).shape == (2 ** 45, 0, 3)
