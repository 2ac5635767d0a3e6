"""Regression tests for issue 15: the crashes, silent wrong answers and
unhelpful errors found by adversarial testing.  Each answer is compared with
NumPy and, where PyTorch is installed, with PyTorch."""
import gc
import os

import numpy as np
import pytest

import tapegrad as tg
from assertions import raises

try:
    if os.environ.get("TAPEGRAD_SANITIZED"):  # tests/sanitize.sh: PyTorch under ASan is huge
        raise ImportError
    import torch
except ImportError:  # PyTorch is an optional oracle
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")




# ---- 3, 4: one version counter and one lock per NumPy buffer -------------

def test_two_tensors_over_one_array_share_the_version_counter():
    a = np.ones(3, np.float32)
    t1, t2 = tg.from_numpy(a), tg.from_numpy(a)
    x = tg.ones(3, requires_grad=True)
    y = (x * t1).sum()
    t2 += 1
    with raises(RuntimeError, "modified in place"):
        y.backward()


def test_a_view_and_its_base_share_the_version_counter():
    a = np.zeros(6)
    ta, tv = tg.from_numpy(a), tg.from_numpy(a[2:])
    x = tg.ones(4, dtype=tg.float64, requires_grad=True)
    y = (x * tv).sum()
    ta += 1  # writes the memory tv was saved from
    with raises(RuntimeError, "modified in place"):
        y.backward()
    # and with no write in between the gradient is the data
    a2 = np.arange(6.0)
    tv2 = tg.from_numpy(a2[::2])
    tg.from_numpy(a2)
    x2 = tg.ones(3, dtype=tg.float64, requires_grad=True)
    (x2 * tv2).sum().backward()
    np.testing.assert_array_equal(x2.grad.numpy(), a2[::2])


def test_an_exported_array_shares_its_tensor_storage():
    t = tg.ones(3)
    x = tg.ones(3, requires_grad=True)
    y = (x * t).sum()
    t2 = tg.from_numpy(t.numpy())   # the same memory as t
    with tg.no_grad():
        t2.fill_(5.0)
    with raises(RuntimeError, "modified in place"):
        y.backward()


def test_from_numpy_while_locked_is_writable_after_the_lock():
    a = np.ones(3, np.float32)
    t1 = tg.from_numpy(a)
    x = tg.ones(3, requires_grad=True)
    y = (x * t1).sum()
    assert not a.flags.writeable          # locked for the live graph
    t3 = tg.from_numpy(a)
    y.backward()
    assert a.flags.writeable
    assert not t3.readonly
    t3 += 1
    np.testing.assert_array_equal(a, [2, 2, 2])


def test_really_read_only_arrays_stay_read_only():
    a = np.ones(3)
    tg.from_numpy(a)
    b = a[:2]
    b.setflags(write=False)
    tb = tg.from_numpy(b)
    assert tb.readonly
    with raises(RuntimeError, "read-only"):
        tb += 1
    ta = tg.from_numpy(a)
    assert not ta.readonly


def test_the_registry_forgets_dead_buffers():
    for _ in range(50):
        a = np.ones(4)
        t = tg.from_numpy(a)
        t += 1
        assert (a == 2).all()
        del a, t
    gc.collect()


# ---- 1: objects only the library makes cannot be made from Python ---------

def test_tape_entry_cannot_be_constructed():
    for cls in (tg.TapeEntry, tg._C.TapeEntry):
        with raises(TypeError, "TapeEntry", "cannot be created"):
            cls()
        with raises(TypeError, "TapeEntry"):
            cls.__new__(cls)
    # real entries still work, and check_entry accepts them
    x = tg.ones(2, dtype=tg.float64, requires_grad=True)
    e = (x * 3).grad_fn
    assert e.op == "mul" and "mul" in repr(e)
    import copy
    with raises(TypeError, "TapeEntry"):
        copy.copy(e)


# ---- 5: grad with an input given twice -------------------------------------

@needs_torch
def test_grad_of_a_repeated_input_matches_torch():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    g = tg.grad((x * 2).sum(), [x, x])
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    tgr = torch.autograd.grad((tx * 2).sum(), [tx, tx])
    assert len(g) == 2
    for a, b in zip(g, tgr):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert g[0] is not g[1]          # two tensors, not one aliased twice
    g[0].fill_(7.0)
    np.testing.assert_array_equal(g[1].numpy(), [2, 2])
    # mixed with another input, and with create_graph
    y = tg.tensor([3.0, 4.0], dtype=tg.float64, requires_grad=True)
    gx1, gy, gx2 = tg.grad((x * x * y).sum(), [x, y, x], create_graph=True)
    np.testing.assert_array_equal(gx1.numpy(), gx2.numpy())
    np.testing.assert_array_equal(gx1.numpy(), [6, 16])
    np.testing.assert_array_equal(gy.numpy(), [1, 4])
    (h1, h2) = tg.grad(gx1.sum(), [y, y])
    np.testing.assert_array_equal(h1.numpy(), h2.numpy())
    np.testing.assert_array_equal(h1.numpy(), [2, 4])


# ---- 6, 7: optimizers and their parameter lists -----------------------------

@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_duplicate_parameters_are_stepped_once(name):
    w = tg.tensor([1.0, -2.0], requires_grad=True)
    ref = tg.tensor([1.0, -2.0], requires_grad=True)
    with pytest.warns(UserWarning, match=f"{name}: parameter group 0 contains a parameter"):
        opt = getattr(tg.optim, name)([w, w], lr=0.1)
    opt_ref = getattr(tg.optim, name)([ref], lr=0.1)
    for _ in range(3):
        w.grad = tg.tensor([0.5, 0.25])
        ref.grad = tg.tensor([0.5, 0.25])
        opt.step()
        opt_ref.step()
    np.testing.assert_array_equal(w.numpy(), ref.numpy())
    assert len(opt.param_groups[0]["params"]) == 1


@needs_torch
def test_duplicate_parameter_step_matches_torch():
    # PyTorch 2.x warns too but then steps the tensor once per occurrence;
    # tapegrad keeps it once, so it matches PyTorch given the list without
    # the duplicate
    w = tg.tensor([1.0, -2.0], dtype=tg.float64, requires_grad=True)
    tw = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning):
        opt = tg.optim.SGD([w, w], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    for _ in range(3):
        w.grad = tg.tensor([0.5, 0.25], dtype=tg.float64)
        tw.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
        opt.step()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-12)


def test_a_parameter_in_two_groups_is_an_error():
    w = tg.ones(2, requires_grad=True)
    with raises(ValueError, "Adam", "groups 0 and 1"):
        tg.optim.Adam([{"params": [w]}, {"params": [w], "lr": 1.0}])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_a_bare_tensor_is_not_a_parameter_list(name):
    w = tg.ones(3, 2, requires_grad=True)
    with raises(TypeError, name, "params must be an iterable of tensors or dicts, got Tensor"):
        getattr(tg.optim, name)(w, lr=0.1)
    with raises(TypeError, name, "got dict"):
        getattr(tg.optim, name)({"params": [w]}, lr=0.1)
    # a group's params may be a single tensor, as in PyTorch
    opt = getattr(tg.optim, name)([{"params": w}], lr=0.1)
    w.grad = tg.ones(3, 2)
    before = w.numpy().copy()
    opt.step()
    assert (w.numpy() != before).all()


# ---- 8: int64 writes that do not fit -----------------------------------------

def test_int64_writes_that_do_not_fit_raise():
    t = tg.zeros(3, dtype=tg.int64)
    with raises(OverflowError, "setitem", "int64"):
        t[0] = 2**70
    with raises(OverflowError, "fill_", "int64"):
        t.fill_(2**70)
    with raises(OverflowError, "int64"):
        t[1:] = -(2**64)
    np.testing.assert_array_equal(t.numpy(), [0, 0, 0])
    # the largest values that fit are stored exactly
    t[0] = 2**63 - 1
    t[1] = -(2**63)
    assert t.numpy().tolist()[:2] == [2**63 - 1, -(2**63)]
    t.fill_(2**62 + 1)
    assert t.numpy().tolist() == [2**62 + 1] * 3
    # NumPy refuses the same
    a = np.zeros(3, np.int64)
    with pytest.raises(OverflowError):
        a[0] = 2**70


# ---- 9: clip with min above max ----------------------------------------------

@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_clip_with_min_above_max_matches_numpy_and_torch(dtype):
    data = [0, 5, -5, 1, -1]
    x = tg.tensor(data, dtype=getattr(tg, dtype))
    got = tg.clip(x, 1, -1).numpy()
    np.testing.assert_array_equal(got, np.clip(np.array(data, dtype), 1, -1))
    np.testing.assert_array_equal(got, torch.clamp(torch.tensor(data), 1, -1).numpy())
    np.testing.assert_array_equal(got, [-1] * 5)


@needs_torch
def test_clip_gradient_with_min_above_max_matches_torch():
    x = tg.tensor([0.0, 5.0, -5.0], dtype=tg.float64, requires_grad=True)
    tg.clip(x, 1, -1).sum().backward()
    tx = torch.tensor([0.0, 5.0, -5.0], dtype=torch.float64, requires_grad=True)
    torch.clamp(tx, 1, -1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


# ---- 10: inf into the normalising ops ------------------------------------------

INF_ROWS = [[np.inf, 1.0], [-np.inf, 1.0], [np.inf, np.inf], [-np.inf, -np.inf],
            [np.inf, -np.inf], [np.nan, 1.0], [1.0, 2.0]]


@needs_torch
@pytest.mark.parametrize("row", INF_ROWS, ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_normalising_ops_with_inf_match_torch(op, row):
    w = [1.0, 2.0]
    x = tg.tensor(row, dtype=tg.float64, requires_grad=True)
    tx = torch.tensor(row, dtype=torch.float64, requires_grad=True)
    if op == "logsumexp":
        y, ty = tg.logsumexp(x), torch.logsumexp(tx, 0)
        y.backward()
        ty.backward()
    else:
        y, ty = getattr(tg, op)(x, 0), getattr(torch, op)(tx, 0)
        (y * tg.tensor(w, dtype=tg.float64)).sum().backward()
        (ty * torch.tensor(w, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)  # NaN == NaN
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_softmax_with_inf_matches_max_shifted_numpy():
    a = np.array([np.inf, 1.0])
    with np.errstate(invalid="ignore"):
        e = np.exp(a - a.max())
        ref = e / e.sum()
    np.testing.assert_array_equal(tg.softmax(tg.tensor(a), 0).numpy(), ref)
    np.testing.assert_array_equal(tg.softmax(tg.tensor(a, dtype=tg.float32), 0).numpy(),
                                  ref.astype(np.float32))


@needs_torch
@pytest.mark.parametrize("row", INF_ROWS, ids=str)
@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_with_inf_matches_torch(row, label, dtype):
    x = tg.tensor([row], dtype=getattr(tg, dtype), requires_grad=True)
    tx = torch.tensor([row], dtype=getattr(torch, dtype), requires_grad=True)
    y = tg.cross_entropy(x, tg.tensor([label]))
    ty = torch.nn.functional.cross_entropy(tx, torch.tensor([label]))
    y.backward()
    ty.backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


# ---- 11: pow at a zero base ------------------------------------------------------

POW_X = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 1.5]
POW_Y = [0.0, 1.0, 2.0, 3.0, 0.5, -1.0, -0.5, -1.0, 2.5]


@needs_torch
def test_pow_gradients_at_zero_base_match_torch():
    x = tg.tensor(POW_X, dtype=tg.float64, requires_grad=True)
    y = tg.tensor(POW_Y, dtype=tg.float64, requires_grad=True)
    gx, gy = tg.grad((x ** y).sum(), [x, y])
    tx = torch.tensor(POW_X, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(POW_Y, dtype=torch.float64, requires_grad=True)
    tgx, tgy = torch.autograd.grad((tx ** ty).sum(), [tx, ty])
    np.testing.assert_array_equal(gx.numpy(), tgx.numpy())
    np.testing.assert_array_equal(gy.numpy(), tgy.numpy())
    # the cases of the issue
    z = tg.zeros(1, dtype=tg.float64, requires_grad=True)
    (z ** 0.0).sum().backward()
    assert z.grad.numpy().tolist() == [0.0]
    e = tg.tensor([0.5, 2.0, 0.0], dtype=tg.float64, requires_grad=True)
    (tg.zeros(3, dtype=tg.float64) ** e).sum().backward()
    te = torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
    (torch.zeros(3, dtype=torch.float64) ** te).sum().backward()
    np.testing.assert_array_equal(e.grad.numpy(), te.grad.numpy())
    np.testing.assert_array_equal(e.grad.numpy(), [0, 0, 0])


@needs_torch
def test_pow_second_order_at_zero_base_matches_torch():
    """d2/dx2 and d2/dxdy (through the base's gradient, where PyTorch's
    formula is defined) agree with PyTorch, NaN for NaN."""
    for j in range(2):
        x = tg.tensor(POW_X, dtype=tg.float64, requires_grad=True)
        y = tg.tensor(POW_Y, dtype=tg.float64, requires_grad=True)
        gx = tg.grad((x ** y).sum(), [x], create_graph=True)[0]
        r = tg.grad(gx.sum(), [x, y])[j]
        tx = torch.tensor(POW_X, dtype=torch.float64, requires_grad=True)
        ty = torch.tensor(POW_Y, dtype=torch.float64, requires_grad=True)
        tgx = torch.autograd.grad((tx ** ty).sum(), [tx], create_graph=True)[0]
        tr = torch.autograd.grad(tgx.sum(), [tx, ty])[j]
        np.testing.assert_allclose(r.numpy(), tr.numpy(), rtol=1e-12)


def test_pow_at_zero_base_against_finite_differences():
    # x = 0, exponent >= 1 or 0: one-sided (x >= 0) differences are defined
    for yv, want in [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 0.0)]:
        x = tg.zeros(1, dtype=tg.float64, requires_grad=True)
        (x ** yv).sum().backward()
        h = 1e-7
        fd = ((h ** yv) - (0.0 ** yv)) / h
        assert abs(x.grad.item() - want) < 1e-6 and abs(fd - want) < 1e-6
    # d/dy at x = 0 (0 ** y is 0 for every y > 0)
    for yv in (0.5, 1.0, 2.0):
        y = tg.tensor([yv], dtype=tg.float64, requires_grad=True)
        (tg.zeros(1, dtype=tg.float64) ** y).sum().backward()
        assert y.grad.item() == 0.0
    gc_ok = tg.testing.gradcheck(lambda a, b: a ** b,
                                 [tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True),
                                  tg.tensor([0.0, 2.0], dtype=tg.float64, requires_grad=True)])
    assert gc_ok


# ---- 12: int ** int stays int ----------------------------------------------------

def test_int_pow_int_is_int64_like_numpy():
    a = np.array([2, 3, -2, 0, 7])
    b = np.array([2, 0, 3, 5, 22])
    got = tg.tensor(a) ** tg.tensor(b)
    assert got.dtype == tg.int64
    np.testing.assert_array_equal(got.numpy(), a ** b)          # wraps like NumPy
    assert (tg.tensor([2, 3]) ** 2).dtype == tg.int64
    np.testing.assert_array_equal((tg.tensor([2, 3]) ** 2).numpy(), [4, 9])
    assert (2 ** tg.tensor([2, 3])).numpy().tolist() == [4, 8]
    assert (tg.tensor([2, 3]) ** 2.0).dtype == tg.float64      # a float exponent: float64
    assert (tg.tensor([2, 3]) ** tg.tensor([0.5])).dtype == tg.float64


def test_int_pow_negative_int_raises_like_numpy():
    with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
        np.array([2, 3]) ** -1
    with raises(ValueError, "pow:", "Integers to negative integer powers are not allowed"):
        tg.tensor([2, 3]) ** -1
    with raises(ValueError, "pow:", "position 1"):
        tg.tensor([2, 3]) ** tg.tensor([1, -2])
    with raises(ValueError, "pow:"):
        tg.pow(tg.tensor([1]), tg.tensor([[0], [-1]]))


# ---- 14: one_hot with a negative class count ------------------------------------

def test_one_hot_negative_num_classes():
    with raises(ValueError, "one_hot", "num_classes", "-3"):
        tg.one_hot(tg.tensor([1, 0]), num_classes=-3)
    np.testing.assert_array_equal(tg.one_hot(tg.tensor([1, 0]), num_classes=-1).numpy(),
                                  [[0, 1], [1, 0]])
    assert tg.one_hot(tg.tensor([1, 0]), num_classes=3).shape == (2, 3)


# ---- 13: broadcast views export read-only memory -----------------------------------

def test_broadcast_view_buffers_are_read_only_like_numpy():
    ref = np.broadcast_to(np.ones(3, np.float32), (2, 3))
    assert not ref.flags.writeable
    b = tg.broadcast_to(tg.ones(3), (2, 3))
    assert memoryview(b).readonly
    arr = np.asarray(b)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0, 0] = 5
    assert not b.numpy().flags.writeable
    import struct
    with pytest.raises(TypeError):  # a writable buffer is refused
        struct.pack_into("f", b, 0, 5.0)
    with raises(RuntimeError, "broadcast view"):
        b[tg.tensor([0]), 0] = 5.0
    np.testing.assert_array_equal(b.numpy(), np.ones((2, 3)))
    # a plain (non-broadcast) view stays writable
    v = tg.ones(2, 3)[:, 1]
    assert not memoryview(v).readonly


# ---- errors that name the op and say what was expected -----------------------------

def test_errors_name_the_op():
    t = tg.zeros(3, dtype=tg.int64)
    with raises(OverflowError, "tensor:", "does not fit in int64"):
        tg.tensor([1, 2**70])
    # NumPy stores [2**63] as uint64: it must not wrap to INT64_MIN
    for data in ([2**63], [2**64 - 1], [[2**63], [2**63 + 5]]):
        assert np.array(data).dtype == np.uint64
        with raises(OverflowError, "tensor:", "does not fit in int64"):
            tg.tensor(data)
        with pytest.raises(OverflowError):
            np.array(data, dtype=np.int64)
    with raises(OverflowError, "tensor:", "does not fit in int64"):
        tg.zeros(1, dtype=tg.int64) + [2**63]
    # [1, 2**63] is float64 for NumPy (no integer type holds both): a float tensor
    assert np.array([1, 2**63]).dtype == np.float64
    assert tg.tensor([1, 2**63]).dtype == tg.float32
    assert tg.tensor([1, 2**63 - 1]).numpy().tolist() == [1, 2**63 - 1]
    assert tg.tensor([2**63], dtype=tg.float64).numpy().tolist() == [2.0**63]
    with raises(OverflowError, "full:", "does not fit in int64"):
        tg.full((2,), 2**70)
    np.testing.assert_array_equal(tg.full((2,), 2**70, dtype=tg.float64).numpy(), [2.0**70] * 2)
    with raises(IndexError, "index:", "out of range"):
        t[2**63]
    with raises(IndexError, "index:"):
        t[-(2**63) - 1]
    with raises(TypeError, "concat:", "got str"):
        tg.concat([t, "x"])
    with raises(TypeError, "setitem:", "got str"):
        t[0] = "x"
    with raises(ValueError, "zeros:", "too large"):
        tg.zeros(2**70)
    with raises(ValueError, "ones:", "shape entry 1"):
        tg.ones((2, 2**64))


def test_shape_from_a_numpy_integer_array():
    for make in (tg.zeros, tg.ones, tg.empty):
        assert make(np.array([2, 3])).shape == np.zeros(np.array([2, 3])).shape == (2, 3)
        assert make(np.array(4)).shape == (4,)
        assert make((np.int32(2), np.int64(3))).shape == (2, 3)
    assert tg.full(np.array([2, 1]), 1.5).shape == (2, 1)
    with raises(TypeError, "zeros:", "shape entries must be ints"):
        tg.zeros(np.array([2.0, 3.0]))


def test_hook_returning_a_string():
    x = tg.ones(2, requires_grad=True)
    x.register_hook(lambda g: "str")
    with raises(TypeError, "hook:", "must return None or a tensor", "got str"):
        (x * 2).sum().backward()


def test_from_dlpack_errors():
    with raises(TypeError, "from_dlpack:", "DLPack protocol", "got int"):
        tg.from_dlpack(5)

    class NotACapsule:
        def __dlpack__(self, **kw):
            return 5

        def __dlpack_device__(self):
            return (1, 0)

    with pytest.raises(Exception) as info:
        tg.from_dlpack(NotACapsule())
    assert str(info.value).startswith("from_dlpack:")
    assert "capsule" in str(info.value)
    if torch is not None:
        with raises(TypeError, "from_dlpack:", "float16"):
            tg.from_dlpack(torch.ones(2, dtype=torch.float16))
        t = tg.from_dlpack(torch.arange(3.0))
        np.testing.assert_array_equal(t.numpy(), [0, 1, 2])


def test_conv_padding_out_of_range():
    F = tg.nn.functional
    x, w = tg.ones(1, 1, 3, 3), tg.ones(1, 1, 2, 2)
    for p in (2**31, 2**40):
        with raises(ValueError, "conv2d:", "padding", "out of range"):
            F.conv2d(x, w, padding=p)
    with raises(ValueError, "conv2d:", "padding", "out of range"):
        F.conv2d(x, w, padding=2**70)
    with raises(ValueError, "conv2d:", "stride", "out of range"):
        F.conv2d(x, w, stride=(1, 2**70))
    assert F.conv2d(x, w, padding=1).shape == (1, 1, 4, 4)


def test_tensor_dataset_of_a_0d_tensor():
    with raises(ValueError, "TensorDataset", "0-d"):
        tg.data.TensorDataset(tg.ones(()))
    with raises(ValueError, "TensorDataset", "array 1 is 0-d"):
        tg.data.TensorDataset(tg.ones(3), np.float32(1.0))


@pytest.mark.parametrize("eps", [0, -1e-6, float("nan"), float("inf")])
def test_gradcheck_eps_must_be_positive(eps):
    x = tg.ones(2, dtype=tg.float64, requires_grad=True)
    with raises(ValueError, "gradcheck:", "eps"):
        tg.testing.gradcheck(lambda a: a * 2, [x], eps=eps)
    with raises(ValueError, "gradcheck:", "eps"):
        tg.testing.gradgradcheck(lambda a: a * a, [x], eps=eps)


def _tiny_model():
    from tapegrad import keras
    m = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return m


def test_keras_fit_with_no_samples_or_a_bad_batch_size():
    m = _tiny_model()
    x, y = np.zeros((0, 3), np.float32), np.zeros((0,), np.int64)
    with raises(ValueError, "fit:", "no samples"):
        m.fit(x, y, verbose=0)
    with raises(ValueError, "evaluate:", "no samples"):
        m.evaluate(x, y, verbose=0)
    x, y = np.zeros((4, 3), np.float32), np.zeros((4,), np.int64)
    for bs in (0, -1, 1.5, True):
        with raises(ValueError, "fit:", "batch_size must be a positive int"):
            m.fit(x, y, batch_size=bs, verbose=0)
        with raises(ValueError, "evaluate:", "batch_size"):
            m.evaluate(x, y, batch_size=bs, verbose=0)
        with raises(ValueError, "predict:", "batch_size"):
            m.predict(x, batch_size=bs)
    hist = m.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_tape_closed_from_another_thread():
    import threading
    tape = tg.Tape()
    tape.__enter__()
    errors = []

    def close():
        try:
            tape.__exit__(None, None, None)
        except RuntimeError as e:
            errors.append(str(e))

    th = threading.Thread(target=close)
    th.start()
    th.join()
    assert len(errors) == 1 and errors[0].startswith("Tape:") and "another thread" in errors[0]
    tape.__exit__(None, None, None)  # the opening thread can still close it
    x = tg.ones(2, requires_grad=True)
    with tg.Tape() as t2:
        x * 2
    assert len(t2) == 1


def test_pow_zero_base_gradgradcheck_where_defined():
    # 0 ** y is 0 for every y > 0: first and second derivatives in y are 0,
    # and the finite differences agree
    zero = tg.zeros(3, dtype=tg.float64)
    y = tg.tensor([0.5, 1.0, 2.5], dtype=tg.float64, requires_grad=True)
    assert tg.testing.gradcheck(lambda e: zero ** e, [y])
    assert tg.testing.gradgradcheck(lambda e: zero ** e, [y])
    # x ** 2 and x ** 3 around 0 (both sides defined for integer exponents)
    x = tg.tensor([0.0, 1e-3, -1e-3], dtype=tg.float64, requires_grad=True)
    for k in (2.0, 3.0):
        assert tg.testing.gradcheck(lambda a: a ** k, [x])
        assert tg.testing.gradgradcheck(lambda a: a ** k, [x])
    # x ** 0 is the constant 1: its first derivative is 0 everywhere, 0 included
    assert tg.testing.gradcheck(lambda a: a ** 0.0, [x])
    # its second derivative goes through 0 * d(x ** -1)/dx, which is NaN at
    # x = 0 in PyTorch too (checked against it above); elsewhere it is 0
    xs = tg.tensor([0.5, -0.25, 2.0], dtype=tg.float64, requires_grad=True)
    assert tg.testing.gradgradcheck(lambda a: a ** 0.0, [xs])


def test_the_lock_covers_the_base_array():
    # before issue 15, a write through the base array of a from_numpy view was
    # not seen: the lock now covers the whole buffer, and is lifted afterwards
    a = np.arange(6.0)
    t = tg.from_numpy(a[2:4])
    x = tg.ones(2, dtype=tg.float64, requires_grad=True)
    y = (x * t).sum()
    with pytest.raises(ValueError, match="read-only"):
        a[2] = 100.0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 3.0])
    assert a.flags.writeable
    a[2] = 100.0
    assert t.numpy()[0] == 100.0
