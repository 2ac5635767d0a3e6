"""The Tensor API: creation, attributes, operators and NumPy's promotion
rules, indexing, in-place operators, methods, conversions and printing."""
import html.parser
import math
import operator
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tapegrad as tg

# ---------------------------------------------------------------------------
# creation
# ---------------------------------------------------------------------------


class TestTensorCreation:
    def test_python_floats_become_float32(self):
        t = tg.tensor([[1.0, 2.0], [3.0, 4.5]])
        assert t.dtype == tg.float32 and t.shape == (2, 2)
        assert t.tolist() == [[1.0, 2.0], [3.0, 4.5]]

    def test_python_ints_become_int64(self):
        t = tg.tensor([1, 2, 3])
        assert t.dtype == tg.int64 and t.tolist() == [1, 2, 3]

    def test_mixed_int_float_list_is_float32(self):
        assert tg.tensor([1, 2.5]).dtype == tg.float32

    def test_bools_become_bool(self):
        t = tg.tensor([True, False])
        assert t.dtype == tg.bool and t.tolist() == [True, False]

    def test_scalars_are_0d(self):
        assert tg.tensor(2.5).shape == () and tg.tensor(2.5).dtype == tg.float32
        assert tg.tensor(7).shape == () and tg.tensor(7).dtype == tg.int64
        assert tg.tensor(7).item() == 7 and isinstance(tg.tensor(7).item(), int)
        assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)

    @pytest.mark.parametrize("dt", [np.float32, np.float64, np.int64])
    def test_arrays_keep_their_dtype(self, dt):
        a = np.arange(6).reshape(2, 3).astype(dt)
        t = tg.tensor(a)
        assert t.dtype == dt and t.shape == (2, 3)
        np.testing.assert_array_equal(t.numpy(), a)

    def test_tensor_copies_its_data(self):
        a = np.arange(3.0)
        t = tg.tensor(a)
        a[0] = 100
        assert t.tolist() == [0.0, 1.0, 2.0]
        assert not np.shares_memory(t.numpy(), a)

    def test_numpy_scalars_keep_their_dtype(self):
        assert tg.tensor(np.float64(1.5)).dtype == tg.float64
        assert tg.tensor(np.float32(1.5)).dtype == tg.float32
        assert tg.tensor(np.int64(3)).dtype == tg.int64

    def test_explicit_dtype(self):
        assert tg.tensor([1, 2], dtype=tg.float64).dtype == tg.float64
        assert tg.tensor([1.7, 2.2], dtype=tg.int64).tolist() == [1, 2]
        assert tg.tensor(np.arange(3.0), dtype=tg.float32).dtype == tg.float32
        assert tg.tensor([1.0], dtype=float).dtype == tg.float64
        assert tg.tensor([1.0], dtype="float64").dtype == tg.float64
        assert tg.tensor([1], dtype=np.float32).dtype == tg.float32

    def test_tensor_of_a_tensor_is_a_detached_copy(self):
        x = tg.ones(3, requires_grad=True)
        y = tg.tensor(x)
        assert not y.requires_grad and y.is_leaf
        assert y.data_ptr != x.data_ptr
        assert tg.tensor(x, dtype=tg.float64).dtype == tg.float64

    def test_tensor_constructor_is_tg_tensor(self):
        t = tg.Tensor([1.0, 2.0], requires_grad=True)
        assert isinstance(t, tg.Tensor) and t.requires_grad and t.dtype == tg.float32

    def test_ragged_lists_are_refused(self):
        with pytest.raises((TypeError, ValueError)):
            tg.tensor([[1, 2], [3]])
        with pytest.raises(TypeError):
            tg.tensor(["a", "b"])
        with pytest.raises(TypeError):
            tg.tensor({"a": 1})

    @pytest.mark.parametrize("fn,value", [(tg.zeros, 0.0), (tg.ones, 1.0)])
    def test_zeros_ones(self, fn, value):
        for shape_args in [(2, 3), ((2, 3),), ([2, 3],)]:
            t = fn(*shape_args)
            assert t.shape == (2, 3) and t.dtype == tg.float32
            assert np.all(t.numpy() == value)
        assert fn(()).shape == () and fn(()).item() == value
        assert fn(0, 3).shape == (0, 3) and fn(0, 3).size == 0
        assert fn(2, dtype=tg.float64).dtype == tg.float64
        assert fn(2, dtype=tg.int64).tolist() == [int(value)] * 2
        assert fn(2, requires_grad=True).requires_grad

    def test_empty(self):
        t = tg.empty(3, 2, dtype=tg.float64)
        assert t.shape == (3, 2) and t.dtype == tg.float64

    def test_full(self):
        assert tg.full((2, 2), 3.5).tolist() == [[3.5, 3.5], [3.5, 3.5]]
        assert tg.full((2,), 3.5).dtype == tg.float32
        assert tg.full((2,), 3).dtype == tg.int64
        assert tg.full(3, 1.0, dtype=tg.float64).dtype == tg.float64

    def test_arange(self):
        np.testing.assert_array_equal(tg.arange(5).numpy(), np.arange(5))
        assert tg.arange(5).dtype == tg.int64
        np.testing.assert_allclose(tg.arange(0, 1, 0.25).numpy(), np.arange(0, 1, 0.25))
        assert tg.arange(0.0, 1.0, 0.25).dtype == tg.float32
        np.testing.assert_array_equal(tg.arange(10, 2, -3).numpy(), np.arange(10, 2, -3))
        assert tg.arange(3, 3).shape == (0,)
        assert tg.arange(3, dtype=tg.float64).dtype == tg.float64

    def test_eye(self):
        np.testing.assert_array_equal(tg.eye(3).numpy(), np.eye(3, dtype=np.float32))
        np.testing.assert_array_equal(tg.eye(2, 4, k=1).numpy(), np.eye(2, 4, k=1))
        np.testing.assert_array_equal(tg.eye(3, k=-1, dtype=tg.float64).numpy(), np.eye(3, k=-1))

    def test_rand_randn(self):
        u = tg.rand(1000, dtype=tg.float64).numpy()
        assert u.min() >= 0 and u.max() < 1 and 0.4 < u.mean() < 0.6
        n = tg.randn(4000, dtype=tg.float64).numpy()
        assert abs(n.mean()) < 0.1 and 0.9 < n.std() < 1.1
        assert tg.rand(2, 3).dtype == tg.float32 and tg.randn((2, 3)).shape == (2, 3)
        with pytest.raises(TypeError):
            tg.rand(3, dtype=tg.int64)

    def test_manual_seed_reproducible(self):
        tg.manual_seed(123)
        a = tg.randn(5).tolist(), tg.rand(3).tolist(), tg.dropout(tg.ones(8), 0.5).tolist()
        tg.manual_seed(123)
        b = tg.randn(5).tolist(), tg.rand(3).tolist(), tg.dropout(tg.ones(8), 0.5).tolist()
        assert a == b
        tg.manual_seed(124)
        assert tg.randn(5).tolist() != a[0]

    def test_like_functions(self):
        x = tg.arange(6).reshape(2, 3)
        assert tg.zeros_like(x).dtype == tg.int64 and tg.zeros_like(x).shape == (2, 3)
        assert tg.ones_like(x, dtype=tg.float64).dtype == tg.float64
        assert tg.full_like(x, 7).tolist() == [[7] * 3] * 2
        assert tg.empty_like(x).shape == (2, 3)
        assert tg.rand_like(tg.ones(4)).shape == (4,)
        assert tg.randn_like(tg.ones(4, dtype=tg.float64)).dtype == tg.float64
        assert tg.zeros_like(np.ones((2, 2))).dtype == tg.float64
        assert tg.ones_like(tg.ones(2), requires_grad=True).requires_grad


# ---------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------


class TestAttributes:
    def test_shape_ndim_size_dtype(self):
        t = tg.zeros(2, 3, 4)
        assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size == 24 and t.dtype == tg.float32
        assert t.itemsize == 4 and t.nbytes == 96
        assert t.dim() == 3 and t.numel() == 24

    @pytest.mark.parametrize("dt", [np.float32, np.float64, np.int64])
    def test_strides_in_bytes_like_numpy(self, dt):
        a = np.zeros((2, 3, 4), dtype=dt)
        t = tg.tensor(a)
        assert t.strides == a.strides
        assert t.T.strides == a.T.strides
        assert t[:, ::2, ::-1].strides == a[:, ::2, ::-1].strides

    def test_T_reverses_axes(self):
        a = np.arange(24.0).reshape(2, 3, 4)
        t = tg.tensor(a)
        assert t.T.shape == (4, 3, 2)
        np.testing.assert_array_equal(t.T.numpy(), a.T)
        assert tg.ones(3).T.shape == (3,)
        assert t.mT.shape == (2, 4, 3)

    def test_requires_grad_settable_on_leaves(self):
        t = tg.ones(3)
        assert not t.requires_grad
        t.requires_grad = True
        assert t.requires_grad and t.is_leaf
        t.requires_grad = False
        assert not t.requires_grad
        assert t.requires_grad_() is t and t.requires_grad

    def test_requires_grad_not_settable_off_on_non_leaf(self):
        x = tg.ones(3, requires_grad=True)
        y = x * 2
        with pytest.raises(RuntimeError, match="non-leaf"):
            y.requires_grad = False

    def test_int_tensor_cannot_require_grad(self):
        with pytest.raises(TypeError, match="int64"):
            tg.arange(3).requires_grad = True
        with pytest.raises(TypeError):
            tg.tensor([1, 2], requires_grad=True)

    def test_grad_and_grad_fn(self):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        assert x.grad is None and x.grad_fn is None and x.is_leaf
        y = x * x
        assert not y.is_leaf
        assert y.grad_fn.op == "mul" and isinstance(y.grad_fn.seq, int)
        z = y.sum()
        assert z.grad_fn.op == "sum" and z.grad_fn.seq > y.grad_fn.seq
        assert repr(z.grad_fn) == f"<TapeEntry #{z.grad_fn.seq} sum>"
        z.backward()
        assert x.grad.tolist() == [2.0, 4.0]
        assert x.grad is x.grad  # the same Python object each time

    def test_grad_fn_inputs_and_next_entries(self):
        x = tg.ones(2, requires_grad=True)
        y = x.exp()
        z = y * x
        e = z.grad_fn
        assert e.inputs[0] is y and e.inputs[1] is x
        assert e.next_entries[0] == y.grad_fn and e.next_entries[1] is None
        assert e.output is z and e.output_shape == (2,)

    def test_grad_assignment(self):
        x = tg.ones(2, requires_grad=True)
        x.grad = tg.tensor([3.0, 4.0])
        assert x.grad.tolist() == [3.0, 4.0]
        x.grad = None
        assert x.grad is None
        with pytest.raises(ValueError):
            x.grad = tg.ones(3)

    def test_name(self):
        t = tg.ones(2)
        assert t.name is None
        t.name = "fc1.weight"
        assert t.name == "fc1.weight" and "fc1.weight" in repr(t)
        t.name = None
        assert t.name is None

    def test_data_is_a_detached_view(self):
        x = tg.ones(3, requires_grad=True)
        d = x.data
        assert not d.requires_grad and d.data_ptr == x.data_ptr
        d += 1  # allowed: d does not require grad
        assert x.tolist() == [2.0, 2.0, 2.0]

    def test_contiguity(self):
        t = tg.zeros(3, 4)
        assert t.is_contiguous and not t.T.is_contiguous
        assert t.T.contiguous().is_contiguous

    def test_weakref(self):
        import weakref
        t = tg.ones(2)
        r = weakref.ref(t)
        assert r() is t
        del t
        assert r() is None


# ---------------------------------------------------------------------------
# operators and promotion
# ---------------------------------------------------------------------------

BINOPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]
CMPOPS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


class TestOperators:
    @pytest.mark.parametrize("op", BINOPS, ids=lambda o: o.__name__)
    def test_tensor_tensor(self, op):
        a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        b = np.array([0.5, 1.5, 2.0])
        got = op(tg.tensor(a), tg.tensor(b))
        np.testing.assert_allclose(got.numpy(), op(a, b))
        assert got.dtype == tg.float64

    @pytest.mark.parametrize("op", BINOPS, ids=lambda o: o.__name__)
    def test_python_scalars_either_side(self, op):
        a = np.array([1.0, 2.0, 4.0], dtype=np.float32)
        t = tg.tensor(a)
        for s in (2, 2.5):
            r1, r2 = op(t, s), op(s, t)
            assert isinstance(r1, tg.Tensor) and isinstance(r2, tg.Tensor)
            assert r1.dtype == tg.float32 and r2.dtype == tg.float32  # weak Python scalars
            np.testing.assert_allclose(r1.numpy(), op(a, s), rtol=1e-6)
            np.testing.assert_allclose(r2.numpy(), op(s, a), rtol=1e-6)

    @pytest.mark.parametrize("op", BINOPS, ids=lambda o: o.__name__)
    def test_numpy_arrays_either_side(self, op):
        a = np.array([1.0, 2.0, 4.0])
        t = tg.tensor([0.5, 1.0, 2.0], dtype=tg.float64)
        r1, r2 = op(t, a), op(a, t)
        assert isinstance(r1, tg.Tensor) and isinstance(r2, tg.Tensor)
        np.testing.assert_allclose(r1.numpy(), op(t.numpy(), a))
        np.testing.assert_allclose(r2.numpy(), op(a, t.numpy()))

    def test_reflected_ops_record_on_the_tape(self):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        y = (2 - x) + (3 / x) + (2 ** x) + np.array([1.0, 1.0]) * x
        y.sum().backward()
        xs = np.array([1.0, 2.0])
        np.testing.assert_allclose(x.grad.numpy(), -1 - 3 / xs ** 2 + np.log(2) * 2 ** xs + 1, rtol=1e-6)

    @pytest.mark.parametrize("op", CMPOPS, ids=lambda o: o.__name__)
    def test_comparisons(self, op):
        a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        t = tg.tensor(a)
        for other in (2.0, np.array([3.0, 2.0, 1.0], dtype=np.float32), tg.tensor([3.0, 2.0, 1.0])):
            r = op(t, other)
            o = other.numpy() if isinstance(other, tg.Tensor) else other
            assert isinstance(r, tg.Tensor)
            np.testing.assert_array_equal(r.numpy(), op(a, o).astype(np.float32))
        assert not op(t, 2.0).requires_grad

    def test_matmul_operator(self):
        a = np.arange(6.0).reshape(2, 3)
        b = np.arange(12.0).reshape(3, 4)
        np.testing.assert_allclose((tg.tensor(a) @ tg.tensor(b)).numpy(), a @ b)
        np.testing.assert_allclose((a @ tg.tensor(b)).numpy(), a @ b)
        np.testing.assert_allclose((tg.tensor(a) @ b).numpy(), a @ b)

    def test_unary_operators(self):
        t = tg.tensor([-1.5, 2.0])
        assert (-t).tolist() == [1.5, -2.0]
        assert (+t) is t
        assert abs(t).tolist() == [1.5, 2.0]

    @pytest.mark.parametrize("a,b,want", [
        (np.float32, np.float64, np.float64),
        (np.int64, np.float32, np.float64),
        (np.int64, np.float64, np.float64),
        (np.float32, np.float32, np.float32),
        (np.int64, np.int64, np.int64),
    ])
    def test_numpy_promotion(self, a, b, want):
        x = tg.tensor(np.ones(2, dtype=a))
        y = tg.tensor(np.ones(2, dtype=b))
        for op in (operator.add, operator.sub, operator.mul, tg.maximum, tg.minimum):
            assert op(x, y).dtype == want == np.result_type(a, b)
        assert (x / y).dtype == (np.ones(2, a) / np.ones(2, b)).dtype

    def test_python_scalar_promotion(self):
        assert (tg.ones(2) * 2.5).dtype == tg.float32
        assert (tg.ones(2) * 2).dtype == tg.float32
        assert (tg.arange(3) * 2).dtype == tg.int64
        assert (tg.arange(3) * 2.5).dtype == tg.float64
        assert (tg.arange(3) * 2.5).tolist() == [0.0, 2.5, 5.0]
        assert (tg.arange(3) / 2).dtype == tg.float64
        assert (tg.ones(2) * np.float64(2)).dtype == tg.float64  # NumPy scalars are strong
        assert (np.float64(2) * tg.ones(2)).dtype == tg.float64

    def test_int_division_is_true_division(self):
        np.testing.assert_allclose((tg.arange(5) / tg.tensor(2)).numpy(), np.arange(5) / 2)

    def test_unsupported_operand_gives_type_error(self):
        with pytest.raises(TypeError):
            tg.ones(2) + "a"
        with pytest.raises(TypeError):
            tg.ones(2) + object()
        with pytest.raises(TypeError):
            tg.ones(2).add(None)

    def test_hash_is_identity(self):
        a, b = tg.ones(2), tg.ones(2)
        assert len({a, b, a}) == 2


# ---------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------

A = np.arange(60.0).reshape(3, 4, 5)

INDEX_KEYS = [
    0, -1, 2, (1, 2), (1, 2, 3), (-1, -2, -3), slice(None), slice(1, None), slice(None, None, -1),
    slice(None, None, -2), (slice(None), slice(1, 3)), (slice(None), slice(None, None, -1), 0),
    (Ellipsis, 1), (1, Ellipsis), (Ellipsis,), (None,), (None, 0), (0, None, 1), (Ellipsis, None),
    (slice(None), None, slice(None, None, 2)), (slice(5, 1, -2), slice(-100, 100)),
    ([0, 2],), (slice(None), [3, 0, 0]), ([2, 0], [1, 3]), ([[0, 1], [2, 2]],),
    (np.array([2, 1]),), (np.array([0, 1]), np.array([3, 0]), np.array([4, 4])),
    (1, [0, 3]), (slice(None, None, -1), [1, 2]), (Ellipsis, [0, 4]), ([-1, -3],),
    (slice(2, 2),), (1, slice(3, 0)),
    # NumPy's placement of advanced-index dims: in place when the integers and
    # arrays are adjacent in the key, first otherwise
    (1, slice(None), [0, 2]), ([0, 1], slice(None), [0, 2]), (0, None, [1, 2], slice(None)),
    ([[0], [1]], slice(None), [0, 1, 2]), (slice(None), 0, Ellipsis, [0, 1]), ([2, 0], Ellipsis, 1),
    (None, [0, 1], [1, 2]), (slice(None), [1, 2], None, 3), (Ellipsis, [0, 1], None),
]


class TestIndexing:
    @pytest.mark.parametrize("key", INDEX_KEYS, ids=repr)
    def test_getitem_like_numpy(self, key):
        t = tg.tensor(A)
        got = t[key]
        want = A[key]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)

    def test_basic_indexing_gives_views(self):
        t = tg.tensor(A)
        v = t[1, ::-2]
        assert np.shares_memory(v.numpy(), t.numpy())
        assert v.strides == A[1, ::-2].strides

    def test_integer_tensor_indices(self):
        t = tg.tensor(A)
        np.testing.assert_array_equal(t[tg.tensor([2, 0])].numpy(), A[[2, 0]])
        np.testing.assert_array_equal(t[tg.tensor(1)].numpy(), A[1])
        np.testing.assert_array_equal(t[np.int64(2), 1].numpy(), A[2, 1])

    def test_rows_labels_gather(self):
        """x[rows, labels]: the log-probability of each label (cross-entropy by hand)."""
        logp = np.log(np.full((4, 3), 1 / 3)) + np.arange(12.0).reshape(4, 3) / 10
        labels = np.array([2, 0, 1, 2])
        x = tg.tensor(logp, requires_grad=True)
        picked = x[tg.arange(4), tg.tensor(labels)]
        np.testing.assert_allclose(picked.numpy(), logp[np.arange(4), labels])
        (-picked.mean()).backward()
        want = np.zeros((4, 3))
        want[np.arange(4), labels] = -0.25
        np.testing.assert_allclose(x.grad.numpy(), want)

    def test_indexing_gradient_accumulates_repeats(self):
        x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        x[[0, 0, 2]].sum().backward()
        assert x.grad.tolist() == [2.0, 0.0, 1.0]

    def test_slice_gradient(self):
        x = tg.tensor(A, requires_grad=True)
        (x[1:, ::-2, 3] * 2).sum().backward()
        want = np.zeros_like(A)
        want[1:, ::-2, 3] = 2
        np.testing.assert_array_equal(x.grad.numpy(), want)

    def test_out_of_range(self):
        t = tg.tensor(A)
        with pytest.raises(IndexError, match="out of bounds"):
            t[3]
        with pytest.raises(IndexError, match="out of bounds"):
            t[0, -5]
        with pytest.raises(IndexError, match="out of bounds"):
            t[[0, 3]]
        with pytest.raises(IndexError, match="out of bounds"):
            t[[0, 1], [0, 4]]
        with pytest.raises(IndexError, match="too many indices"):
            t[0, 0, 0, 0]

    def test_bad_index_types(self):
        t = tg.tensor(A)
        for key in (1.5, "a", {1: 2}, (0, 1.0), object()):
            with pytest.raises(IndexError):
                t[key]
        with pytest.raises(IndexError, match="boolean index did not match .* axis 0"):
            t[np.array([True, False, True, False])]  # 4 mask entries for 3 rows
        with pytest.raises(IndexError, match="boolean index did not match .* axis 2"):
            t[..., tg.tensor([True, False])]
        with pytest.raises(IndexError, match="too many indices"):
            t[np.ones((3, 4, 5), bool), 0]
        with pytest.raises(IndexError, match="int64"):
            t[tg.tensor([0.0, 1.0])]
        with pytest.raises(IndexError, match="ellipsis"):
            t[..., 0, ...]
        with pytest.raises(ValueError, match="step"):
            t[::0]

    def test_setitem(self):
        a = np.zeros((3, 4))
        t = tg.tensor(a)
        for key, value in [((1,), 5.0), ((slice(None), 2), np.arange(3.0)),
                           ((0, slice(None, None, -2)), [7.0, 8.0]), ((Ellipsis, 0), tg.tensor([1.0, 2.0, 3.0])),
                           ((slice(None), slice(None)), 0.5)]:
            t[key] = value
            a[key] = value.numpy() if isinstance(value, tg.Tensor) else value
            np.testing.assert_array_equal(t.numpy(), a)

    def test_setitem_integer_arrays(self):
        a = np.zeros((3, 4))
        t = tg.tensor(a)
        for key, value in [(([0, 2], [1, 3]), 5.0), ((1, [0, 1]), tg.tensor([7.0, 8.0], dtype=tg.float64)),
                           ((slice(None), [0]), np.array([[1.0], [2.0], [3.0]])),
                           ((tg.tensor([2, 0]),), tg.arange(4.0, dtype=tg.float64)),
                           ((np.arange(3), np.array([3, 2, 1])), -1.0)]:
            t[key] = value
            a[key] = value.numpy() if isinstance(value, tg.Tensor) else value
            np.testing.assert_array_equal(t.numpy(), a)
        with pytest.raises(IndexError, match="out of bounds"):
            t[[0, 5]] = 1.0
        # a boolean mask over the leading dims works as in NumPy (issue 14) ...
        t[np.array([True, False, True])] = 1.0
        a[np.array([True, False, True])] = 1.0
        np.testing.assert_array_equal(t.numpy(), a)
        # ... and one of another shape is refused, naming both shapes
        with pytest.raises(IndexError, match=r"boolean mask of shape \(2,\).*\(3, 4\)"):
            t[np.array([True, False])] = 1.0
        with pytest.raises(ValueError, match="setitem"):
            t[[0, 1]] = tg.ones(5)

    def test_setitem_arrays_bumps_version(self):
        x = tg.ones(3, requires_grad=True)
        w = tg.ones(3)
        z = x * w
        w[[0]] = 2.0  # w was saved by mul
        with pytest.raises(RuntimeError, match="modified in place"):
            z.sum().backward()

    def test_setitem_broadcast_mismatch(self):
        t = tg.zeros(3, 4)
        with pytest.raises(ValueError):
            t[0] = tg.ones(3)

    def test_setitem_refused_when_requiring_grad(self):
        w = tg.zeros(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="no_grad"):
            w[0] = 1.0
        with tg.no_grad():
            w[0] = 1.0
        assert w.tolist() == [1.0, 0.0, 0.0] and w.requires_grad

    def test_setitem_through_a_view_shares_memory(self):
        a = np.zeros(4)
        t = tg.from_numpy(a)
        t[::2] = 1.0
        assert a.tolist() == [1.0, 0.0, 1.0, 0.0]


@st.composite
def index_keys(draw):
    """A shape and a random NumPy key: integers, slices of any step, integer
    arrays (adjacent or not), None and at most one Ellipsis."""
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    n_used = draw(st.integers(0, nd))
    arr_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    items = []
    for d in range(n_used):
        n = shape[d]
        kind = draw(st.sampled_from(["int", "slice", "slice", "array"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            items.append(slice(draw(st.one_of(st.none(), st.integers(-n - 2, n + 2))),
                               draw(st.one_of(st.none(), st.integers(-n - 2, n + 2))),
                               draw(st.sampled_from([None, 1, 2, -1, -2, 3]))))
        else:  # arrays broadcast together: shapes that are prefixes of arr_shape
            k = draw(st.integers(0, len(arr_shape)))
            sub = arr_shape[len(arr_shape) - k:]
            items.append(np.asarray(draw(hnp_arrays(sub, n))))
    if draw(st.booleans()):  # an Ellipsis somewhere
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    for _ in range(draw(st.integers(0, 2))):  # new axes
        items.insert(draw(st.integers(0, len(items))), None)
    return shape, tuple(items)


def hnp_arrays(shape, n):
    size = int(np.prod(shape)) if shape else 1
    return st.lists(st.integers(-n, n - 1), min_size=size, max_size=size).map(
        lambda v: np.array(v, dtype=np.int64).reshape(shape))


@st.composite
def wide_index_keys(draw):
    """Keys on 5- to 8-dim tensors with new axes (None) and integers, whose
    result fits in 8 dims although the tensor with the new axes added would
    not (x[None, 0] of an 8-dim x; issue 14)."""
    nd = draw(st.integers(5, 8))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    items = []
    for d in range(nd):
        n = shape[d]
        kind = draw(st.sampled_from(["int", "int", "slice", "array"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            items.append(slice(None, None, draw(st.sampled_from([None, 1, -1, 2]))))
        else:
            sub = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=2)))
            items.append(np.asarray(draw(hnp_arrays(sub, n))))
    for _ in range(draw(st.integers(1, 4))):
        items.insert(draw(st.integers(0, len(items))), None)
    key = tuple(items)
    try:
        fits = np.empty(shape)[key].ndim <= 8
    except (IndexError, ValueError):
        fits = False
    assume(fits)
    return shape, key


class TestIndexingProperty:
    @settings(max_examples=int(os.environ.get("TAPEGRAD_HYPOTHESIS_EXAMPLES", 150)), deadline=None)
    @given(case=wide_index_keys(), seed=st.integers(0, 2**31 - 1))
    def test_keys_past_8_dims_whose_result_fits(self, case, seed):
        """Same checks as below (value, view, gradient against NumPy)."""
        self.test_getitem_and_its_gradient_match_numpy.hypothesis.inner_test(self, case, seed)

    @settings(max_examples=int(os.environ.get("TAPEGRAD_HYPOTHESIS_EXAMPLES", 150)), deadline=None)
    @given(case=index_keys(), seed=st.integers(0, 2**31 - 1))
    def test_getitem_and_its_gradient_match_numpy(self, case, seed):
        shape, key = case
        rng = np.random.default_rng(seed)
        a = rng.standard_normal(shape)
        x = tg.tensor(a, requires_grad=True)
        try:
            want = a[key]
        except IndexError:  # NumPy refuses it (an index out of range): so does tapegrad
            with pytest.raises(IndexError):
                x[key]
            return
        got = x[key]
        assert got.shape == want.shape, (key, got.shape, want.shape)
        np.testing.assert_array_equal(got.numpy(), want)
        if not any(isinstance(k, np.ndarray) for k in key):  # basic indexing: a view
            assert np.shares_memory(got.numpy(), x.numpy()) or want.size == 0
        if want.size == 0:
            return
        w = rng.standard_normal(want.shape)
        got.backward(tg.tensor(w))
        pos = np.arange(a.size).reshape(shape)[key]
        expect = np.bincount(pos.ravel(), weights=np.ravel(w), minlength=a.size).reshape(shape)
        np.testing.assert_allclose(x.grad.numpy(), expect, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# in-place operators
# ---------------------------------------------------------------------------


class TestInPlace:
    @pytest.mark.parametrize("op,npop", [("+=", np.add), ("-=", np.subtract), ("*=", np.multiply),
                                         ("/=", np.true_divide)])
    def test_inplace_keeps_identity_and_memory(self, op, npop):
        a = np.array([1.0, 2.0, 4.0])
        t = tg.tensor(a)
        ptr, ident = t.data_ptr, id(t)
        ns = {"t": t}
        exec(f"t {op} 2", ns)
        assert id(ns["t"]) == ident and ns["t"].data_ptr == ptr
        np.testing.assert_allclose(ns["t"].numpy(), npop(a, 2))
        exec(f"t {op} np.array([1.0, 2.0, 4.0])", {"t": t, "np": np})

    @pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
    def test_inplace_refused_on_tensor_requiring_grad(self, op):
        w = tg.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="requires grad"):
            exec(f"w {op} 1", {"w": w})
        assert w.tolist() == [1.0, 1.0, 1.0]
        with tg.no_grad():
            exec(f"w {op} 1", {"w": w})
        assert w.requires_grad

    def test_inplace_broadcast_and_dtype(self):
        t = tg.zeros(2, 3)
        t += tg.tensor([1.0, 2.0, 3.0])
        assert t.tolist() == [[1.0, 2.0, 3.0]] * 2
        with pytest.raises(ValueError):
            t += tg.ones(4)
        i = tg.arange(3)
        with pytest.raises((TypeError, ValueError)):
            i /= 2  # int64 cannot hold the true quotient

    def test_inplace_after_save_is_detected(self):
        x = tg.ones(3, requires_grad=True)
        b = tg.ones(3)
        w = x * b
        b += 1  # b was saved by mul for x's gradient
        with pytest.raises(RuntimeError, match="modified in place"):
            w.sum().backward()
        z = (x * tg.ones(3)).sum()
        z.backward()
        assert x.grad.tolist() == [1.0, 1.0, 1.0]

    def test_fill_zero_copy(self):
        t = tg.ones(2, 2)
        assert t.fill_(3.0) is t and t.tolist() == [[3.0, 3.0]] * 2
        assert t.zero_() is t and t.tolist() == [[0.0, 0.0]] * 2
        t.copy_(tg.tensor([1.0, 2.0]))
        assert t.tolist() == [[1.0, 2.0]] * 2


# ---------------------------------------------------------------------------
# methods and functions
# ---------------------------------------------------------------------------


class TestMethods:
    @pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std"])
    @pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (-1, 0)])
    @pytest.mark.parametrize("keepdims", [False, True])
    def test_reductions_method_function_numpy(self, name, axis, keepdims):
        a = np.random.default_rng(0).standard_normal((2, 3, 4))
        t = tg.tensor(a)
        m = getattr(t, name)(axis=axis, keepdims=keepdims)
        f = getattr(tg, name)(t, axis=axis, keepdims=keepdims)
        want = getattr(np, name)(a, axis=axis, keepdims=keepdims)
        assert m.shape == np.shape(want) and f.shape == np.shape(want)
        np.testing.assert_allclose(m.numpy(), want, rtol=1e-12)
        np.testing.assert_array_equal(f.numpy(), m.numpy())

    def test_int_mean_var_std_are_float64_like_numpy(self):
        pred, labels = tg.tensor([1, 2, 3, 4]), tg.tensor([1, 0, 3, 4])
        acc = (pred == labels).mean()
        assert acc.dtype == tg.float64 and acc.item() == 0.75
        a = np.arange(12).reshape(3, 4)
        t = tg.tensor(a)
        for name in ("mean", "var", "std"):
            got = getattr(t, name)(axis=1)
            assert got.dtype == tg.float64
            np.testing.assert_allclose(got.numpy(), getattr(np, name)(a, axis=1))
        assert tg.mean(t).item() == 5.5

    def test_torch_style_aliases(self):
        t = tg.ones(2, 3)
        assert t.sum(dim=1, keepdim=True).shape == (2, 1)
        assert t.size == 6 and t.dim() == 2 and t.numel() == 6  # size is NumPy's attribute
        assert t.var(ddof=1).item() == 0.0 and t.std(axis=0).shape == (3,)

    def test_arg_reductions(self):
        a = np.array([[3.0, 1.0, 4.0], [1.0, 5.0, 9.0]])
        t = tg.tensor(a)
        assert t.argmax().item() == 5 and t.argmin().item() == 1
        assert t.argmax(axis=1).tolist() == [2, 2] and tg.argmin(t, axis=0).tolist() == [1, 0, 0]
        assert t.argmax(axis=1, keepdims=True).shape == (2, 1)
        assert t.argmax().dtype == tg.int64

    def test_shape_methods(self):
        a = np.arange(24.0).reshape(2, 3, 4)
        t = tg.tensor(a)
        np.testing.assert_array_equal(t.reshape(4, -1).numpy(), a.reshape(4, -1))
        np.testing.assert_array_equal(t.reshape((6, 4)).numpy(), a.reshape(6, 4))
        np.testing.assert_array_equal(t.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1))
        np.testing.assert_array_equal(t.transpose().numpy(), a.transpose())
        np.testing.assert_array_equal(t.transpose(1, 0, 2).numpy(), a.transpose(1, 0, 2))
        np.testing.assert_array_equal(t.swapaxes(0, 2).numpy(), a.swapaxes(0, 2))
        np.testing.assert_array_equal(tg.transpose(t).numpy(), a.T)
        np.testing.assert_array_equal(t.flatten().numpy(), a.ravel())
        np.testing.assert_array_equal(t.flatten(1).numpy(), a.reshape(2, 12))
        np.testing.assert_array_equal(t[:, :1].squeeze().numpy(), a[:, :1].squeeze())
        np.testing.assert_array_equal(t[:, :1].squeeze(1).numpy(), a[:, 0])
        np.testing.assert_array_equal(t.unsqueeze(1).numpy(), a[:, None])
        np.testing.assert_array_equal(t.unsqueeze(-1).numpy(), a[..., None])
        np.testing.assert_array_equal(t[:, :1].broadcast_to(2, 5, 4).numpy(), np.broadcast_to(a[:, :1], (2, 5, 4)))
        np.testing.assert_array_equal(tg.stack([t, t], axis=1).numpy(), np.stack([a, a], axis=1))
        np.testing.assert_array_equal(tg.cat([t, t], axis=-1).numpy(), np.concatenate([a, a], axis=-1))

    def test_elementwise_methods_match_functions(self):
        t = tg.tensor([0.5, 1.5, 2.5], dtype=tg.float64)
        unary = [o["name"] for o in tg.ops() if o["signature"] == "unary"]  # generated bindings
        assert {"exp", "log", "tanh", "erf", "neg"} <= set(unary)
        i = tg.tensor([0, 1, 2])
        for name in unary:
            x = i if name == "bitwise_not" else t  # ~ takes integer and bool tensors only
            np.testing.assert_array_equal(getattr(x, name)().numpy(), getattr(tg, name)(x).numpy())
        np.testing.assert_allclose(t.clip(1.0, 2.0).numpy(), [1.0, 1.5, 2.0])
        np.testing.assert_allclose(t.clip(max=1.0).numpy(), [0.5, 1.0, 1.0])
        np.testing.assert_allclose(tg.leaky_relu(-t, 0.1).numpy(), -0.1 * t.numpy())
        assert t.float().dtype == tg.float32 and t.long().tolist() == [0, 1, 2]
        assert t.double() is not t and t.astype(tg.float32).dtype == tg.float32
        c = t.clone()
        assert c.data_ptr != t.data_ptr and c.tolist() == t.tolist()

    def test_functions_accept_arrays_and_lists(self):
        assert isinstance(tg.exp([0.0, 1.0]), tg.Tensor)
        assert tg.sum(np.ones((2, 2))).item() == 4.0
        assert tg.add(2, tg.ones(2)).tolist() == [3.0, 3.0]
        assert tg.maximum(np.array([1.0, 5.0]), 3.0).tolist() == [3.0, 5.0]


# ---------------------------------------------------------------------------
# conversions and Python protocols
# ---------------------------------------------------------------------------


class TestConversions:
    def test_item_tolist(self):
        assert tg.tensor([[2.5]]).item() == 2.5
        assert tg.arange(6).reshape(2, 3).tolist() == [[0, 1, 2], [3, 4, 5]]
        assert tg.tensor(3.0).tolist() == 3.0
        with pytest.raises(ValueError, match="one element"):
            tg.ones(2).item()

    def test_len_iter(self):
        t = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        assert len(t) == 3
        rows = list(t)
        assert len(rows) == 3 and all(isinstance(r, tg.Tensor) for r in rows)
        assert [r.tolist() for r in rows] == t.tolist()
        with pytest.raises(TypeError):
            len(tg.tensor(1.0))
        with pytest.raises(TypeError):
            iter(tg.tensor(1.0)).__next__()

    def test_bool_float_int(self):
        assert bool(tg.tensor([1.0])) and not bool(tg.tensor(0.0))
        assert float(tg.tensor(2)) == 2.0 and int(tg.tensor(3.9)) == 3 and int(tg.tensor(-3.9)) == -3
        assert int(tg.tensor(2**60)) == 2**60
        assert math.isnan(float(tg.tensor(float("nan"))))
        for f in (bool, float, int):
            with pytest.raises(ValueError, match=r"\(2,\)"):
                f(tg.ones(2))

    def test_format(self):
        assert f"{tg.tensor(3.14159):.2f}" == "3.14"
        assert f"{tg.ones(2)}".startswith("tensor(")


# ---------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------


class TestRepr:
    def test_repr_values_like_numpy(self):
        t = tg.tensor([[1.0, 2.5], [3.0, 4.0]])
        r = repr(t)
        assert r.startswith("tensor([[1. , 2.5],")
        assert "[3. , 4. ]]" in r
        assert r.endswith("shape=(2, 2), dtype=float32)")
        assert str(t) == r

    def test_repr_order_and_grad_fn(self):
        x = tg.ones(2, requires_grad=True)
        assert repr(x).endswith("shape=(2,), dtype=float32, requires_grad=True)")
        y = x * 2
        r = repr(y)
        assert r.index("shape=") < r.index("dtype=") < r.index("grad_fn=")
        assert f"grad_fn=<mul #{y.grad_fn.seq}>" in r

    def test_repr_int_and_0d_and_large(self):
        assert repr(tg.tensor(5)) == "tensor(5, shape=(), dtype=int64)"
        big = repr(tg.zeros(1000))
        assert "..." in big and len(big) < 400
        assert "nan" in repr(tg.tensor([float("nan")]))

    def test_repr_of_tensor_requiring_grad_does_not_record(self):
        x = tg.ones(3, requires_grad=True)
        repr(x), str(x * 2)
        assert x.grad is None

    def test_repr_html_parses(self):
        x = tg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
        x.name = "w<1>"
        y = (x * x).sum()
        y.backward()

        class P(html.parser.HTMLParser):
            def __init__(self):
                super().__init__()
                self.stack, self.text, self.tags = [], [], []

            def handle_starttag(self, tag, attrs):
                self.stack.append(tag)
                self.tags.append(tag)

            def handle_endtag(self, tag):
                assert self.stack and self.stack[-1] == tag, (self.stack, tag)
                self.stack.pop()

            def handle_data(self, data):
                self.text.append(data)

        for t in (x, y, tg.arange(3)):
            p = P()
            p.feed(t._repr_html_())
            p.close()
            assert p.stack == []
            text = "".join(p.text)
            assert str(t.shape) in text and str(t.dtype) in text
        p = P()
        p.feed(x._repr_html_())
        text = "".join(p.text)
        assert "w<1>" in text  # escaped in the HTML, plain in the text
        assert "grad" in text and "8." in text  # the gradient 2x is shown


# ---------------------------------------------------------------------------
# the op registry
# ---------------------------------------------------------------------------


def test_ops_structure():
    ops = tg.ops()
    assert isinstance(ops, list) and len(ops) > 40
    names = [o["name"] for o in ops]
    assert len(set(names)) == len(names)
    for o in ops:
        for key in ("name", "arity", "differentiable_inputs", "forward", "vjp", "forward_latex",
                    "vjp_latex"):
            assert key in o, (o["name"], key)
        assert isinstance(o["arity"], int)
        assert isinstance(o["differentiable_inputs"], list)
        assert all(isinstance(i, int) for i in o["differentiable_inputs"])
        assert isinstance(o["forward"], str) and isinstance(o["vjp"], str)
    mm = ops[names.index("matmul")]
    assert mm["arity"] == 2 and mm["differentiable_inputs"] == [0, 1]
    assert "B" in mm["forward"] or "b" in mm["forward"]
    ce = ops[names.index("cross_entropy")]
    assert ce["differentiable_inputs"] == [0]  # labels are not differentiable
    assert "\\" in ce["forward_latex"]


# ---------------------------------------------------------------------------
# exact int64, NumPy integers as arguments
# ---------------------------------------------------------------------------


class TestInt64AndNumpyIntegers:
    BIG = 2**60 + 1  # not representable as a double

    def test_int64_values_stay_exact(self):
        big = self.BIG
        assert tg.tensor([big]).item() == big
        assert int(tg.tensor(big)) == big
        assert tg.tensor([big]).tolist() == [big]
        assert (tg.zeros(1, dtype=tg.int64) + big).item() == big
        assert (tg.tensor([1]) * big).tolist() == [big]
        assert tg.full((2,), big).tolist() == [big, big]
        t = tg.zeros(2, dtype=tg.int64)
        t[1] = big
        assert t.tolist() == [0, big]
        assert tg.arange(10)[tg.tensor(3)].item() == 3

    def test_python_int_too_large(self):
        with pytest.raises(OverflowError, match="int64"):
            tg.tensor(2**70)
        assert (tg.ones(2) * 2**70).dtype == tg.float32  # a weak scalar: no overflow

    def test_numpy_integers_as_arguments(self):
        n = np.int64(3)
        assert tg.zeros(n).shape == (3,)
        assert tg.ones(n, np.int32(2)).shape == (3, 2)
        assert tg.ones(2, 3).sum(axis=np.int64(1)).shape == (2,)
        assert tg.ones(2, 3).reshape(np.int64(3), 2).shape == (3, 2)
        assert tg.arange(np.int64(4)).dtype == tg.int64
        assert tg.full((2,), np.int64(3)).dtype == tg.int64
        assert tg.arange(10)[np.int64(4)].item() == 4


# ---------------------------------------------------------------------------
# copy and pickle
# ---------------------------------------------------------------------------


class MyTensor(tg.Tensor):
    """A Python subclass (like nn.Parameter)."""


class TestCopyPickle:
    def test_deepcopy_leaf(self):
        import copy
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        x.name = "w"
        (x * x).sum().backward()
        y = copy.deepcopy(x)
        assert y is not x and y.data_ptr != x.data_ptr
        assert y.tolist() == x.tolist() and y.requires_grad and y.is_leaf and y.name == "w"
        assert y.grad.tolist() == [2.0, 4.0] and y.grad.data_ptr != x.grad.data_ptr
        y.data.fill_(0.0)
        assert x.tolist() == [1.0, 2.0]
        pair = copy.deepcopy([x, x])
        assert pair[0] is pair[1]  # the memo is honoured

    def test_deepcopy_non_leaf_refused(self):
        import copy
        x = tg.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaves"):
            copy.deepcopy(x * 2)
        assert copy.deepcopy((x * 2).detach()).tolist() == [2.0, 2.0]

    @pytest.mark.parametrize("dtype", [tg.float32, tg.float64, tg.int64])
    def test_pickle_roundtrip(self, dtype):
        import pickle
        t = tg.arange(6, dtype=dtype).reshape(2, 3).T  # a non-contiguous view
        u = pickle.loads(pickle.dumps(t))
        assert u.dtype == dtype and u.shape == (3, 2) and u.tolist() == t.tolist()
        x = tg.ones(2, requires_grad=True)
        v = pickle.loads(pickle.dumps(x))
        assert v.requires_grad and v.is_leaf
        w = pickle.loads(pickle.dumps(x * 3))  # values only, no graph
        assert w.tolist() == [3.0, 3.0] and not w.requires_grad

    def test_subclass_survives_copy_and_pickle(self):
        import copy
        import pickle
        m = MyTensor([1.0, 2.0], requires_grad=True)
        m.tag = "extra"
        for c in (copy.deepcopy(m), pickle.loads(pickle.dumps(m)), copy.copy(m)):
            assert type(c) is MyTensor and c.tag == "extra" and c.requires_grad
            assert c.tolist() == [1.0, 2.0]


def test_transpose_0_1_of_a_matrix_warns_that_it_is_numpys_transpose():
    """t.transpose(0, 1) permutes (NumPy): on a matrix it changes nothing,
    where PyTorch's swaps -- the silent trap of a ported script, so it warns;
    the tuple form, a real permutation and swapaxes do not."""
    import warnings
    x = tg.arange(6.0).reshape(2, 3)
    for axes in ((0, 1), (-2, -1), (0, -1), (-2, 1)):
        with pytest.warns(UserWarning, match=r"swapaxes\(0, 1\)"):
            assert x.transpose(*axes).shape == (2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.transpose((0, 1)).shape == (2, 3)
        assert x.transpose(1, 0).shape == (3, 2)
        assert x.swapaxes(0, 1).shape == (3, 2)
        assert tg.ones((2, 3, 4)).transpose(0, 2, 1).shape == (2, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            x.transpose(0, 1)
