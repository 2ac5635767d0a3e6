"""Zero-copy exchange with NumPy (from_numpy, .numpy(), __array__, the
buffer protocol) and with PyTorch (DLPack), and the lifetimes behind it."""
import gc
import itertools
import sys
import weakref

import numpy as np
import pytest

import tapegrad as tg


def ptr(a):
    return a.__array_interface__["data"][0]


def _arrays():
    base = np.arange(48.0).reshape(6, 8)
    return {
        "contiguous": np.arange(12.0).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "strided": base[::2, 1::3],
        "negative": base[::-1, ::-2],
        "transposed": base.T,
        "0d": np.array(3.5),
        "zero_size": np.zeros((0, 3)),
        "float32": np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::-1],
        "int64": np.arange(10, dtype=np.int64)[::3],
        "broadcast": np.broadcast_to(np.arange(3.0), (4, 3)),  # stride 0, read-only
    }


ARRAYS = _arrays()


class TestFromNumpy:
    @pytest.mark.parametrize("kind", sorted(ARRAYS))
    def test_shares_memory_and_layout(self, kind):
        a = _arrays()[kind]
        t = tg.from_numpy(a)
        assert t.shape == a.shape and t.dtype == a.dtype
        np.testing.assert_array_equal(t.numpy(), a)
        if a.size:
            assert t.data_ptr == ptr(a)
            assert np.shares_memory(t.numpy(), a)
            assert [s for s, n in zip(t.strides, t.shape) if n > 1] == \
                [s for s, n in zip(a.strides, a.shape) if n > 1]

    @pytest.mark.parametrize("kind", ["contiguous", "fortran", "strided", "negative", "transposed",
                                      "0d", "float32", "int64"])
    def test_writes_visible_both_ways(self, kind):
        a = _arrays()[kind]
        t = tg.from_numpy(a)
        idx = (0,) * a.ndim
        a[idx] = 42
        assert t[idx].item() == 42
        with tg.no_grad():
            t[idx] = 7
        assert a[idx] == 7
        t += 1  # in place through the tensor
        np.testing.assert_array_equal(t.numpy(), a)
        assert a[idx] == 8

    def test_requires_grad_leaf_shares_memory(self):
        a = np.arange(4.0)
        x = tg.from_numpy(a, requires_grad=True)
        assert x.requires_grad and x.is_leaf and x.data_ptr == ptr(a)
        (x * x).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 2 * a)
        assert x.grad.data_ptr != ptr(a)

    def test_zero_size_and_0d(self):
        t = tg.from_numpy(np.zeros((0, 3)))
        assert t.shape == (0, 3) and t.size == 0 and t.sum().item() == 0.0
        s = tg.from_numpy(np.array(2.5))
        assert s.shape == () and s.item() == 2.5

    def test_read_only_array(self):
        a = np.arange(3.0)
        a.flags.writeable = False
        t = tg.from_numpy(a)
        assert t.readonly
        with pytest.raises(RuntimeError, match="read-only"):
            t += 1
        with pytest.raises(RuntimeError, match="read-only"):
            t[0] = 5.0
        with pytest.raises(RuntimeError, match="read-only"):
            t.fill_(0.0)
        assert a.tolist() == [0.0, 1.0, 2.0]
        assert (t * 2).tolist() == [0.0, 2.0, 4.0]  # out-of-place ops work
        n = t.numpy()
        assert not n.flags.writeable
        with pytest.raises(ValueError):
            n[0] = 1
        m = memoryview(t)
        assert m.readonly and m.tolist() == [0.0, 1.0, 2.0]
        with pytest.raises(TypeError):
            m[0] = 1.0

    def test_broadcast_view_is_read_only(self):
        t = tg.from_numpy(np.broadcast_to(np.arange(3.0), (4, 3)))
        assert t.strides == (0, 8) and t.readonly
        assert t.sum().item() == 12.0

    @pytest.mark.parametrize("dt", [np.complex128, np.int8, np.int16, np.uint32, object,
                                    np.float16, np.str_])
    def test_unsupported_dtypes_refused(self, dt):
        a = np.zeros(3, dtype=dt)
        with pytest.raises(TypeError) as info:
            tg.from_numpy(a)
        msg = str(info.value)
        assert all(n in msg for n in ("float32", "float64", "int64", "int32", "uint8", "bool"))

    @pytest.mark.parametrize("dt", [np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8])
    def test_every_dtype_is_zero_copy_both_ways(self, dt):
        a = (np.arange(12) % 3).astype(dt).reshape(3, 4)
        t = tg.from_numpy(a)
        assert t.dtype == a.dtype
        assert t.numpy().__array_interface__["data"][0] == a.__array_interface__["data"][0]
        a[1, 2] = 1 if dt is not np.bool_ else False
        assert t.numpy()[1, 2] == a[1, 2]  # one memory
        b = t.numpy()
        assert b.dtype == a.dtype and b.__array_interface__["data"][0] == a.__array_interface__["data"][0]
        np.testing.assert_array_equal(np.asarray(memoryview(t)), a)  # the buffer protocol

    @pytest.mark.parametrize("dt,want", [(np.bool_, tg.bool), (np.int8, tg.int64), (np.int32, tg.int32),
                                         (np.uint8, tg.uint8), (np.uint16, tg.int64), (np.float16, tg.float32)])
    def test_tensor_converts_where_sensible(self, dt, want):
        a = np.array([1, 0, 1], dtype=dt)
        t = tg.tensor(a)
        assert t.dtype == want and t.tolist() == [1, 0, 1]

    @pytest.mark.parametrize("dt", [np.complex128, object, np.str_])
    def test_tensor_refuses_non_numeric(self, dt):
        with pytest.raises(TypeError):
            tg.tensor(np.zeros(3, dtype=dt))

    def test_big_endian(self):
        a = np.arange(3.0).astype(">f8")
        with pytest.raises(TypeError, match="big-endian") as info:
            tg.from_numpy(a)
        assert "float32" in str(info.value) and "int64" in str(info.value)
        t = tg.tensor(a)
        assert t.dtype == tg.float64 and t.tolist() == [0.0, 1.0, 2.0]
        assert (tg.ones(3, dtype=tg.float64) + a).tolist() == [1.0, 2.0, 3.0]

    def test_misaligned(self):
        raw = np.zeros(8 * 4 + 1, dtype=np.uint8)
        a = raw[1:].view(np.float64)
        assert not a.flags.aligned
        a[:] = [1.0, 2.0, 3.0, 4.0]
        with pytest.raises(ValueError, match="aligned"):
            tg.from_numpy(a)
        assert tg.tensor(a).tolist() == [1.0, 2.0, 3.0, 4.0]
        assert (tg.zeros(4, dtype=tg.float64) + a).tolist() == [1.0, 2.0, 3.0, 4.0]

    def test_not_an_array(self):
        with pytest.raises(TypeError, match="ndarray"):
            tg.from_numpy([1.0, 2.0])

    def test_too_many_dims(self):
        a = np.zeros((1,) * 9)
        with pytest.raises(ValueError, match="dimensions"):
            tg.from_numpy(a)


class TestToNumpy:
    def test_numpy_shares_memory(self):
        t = tg.arange(12.0).reshape(3, 4)
        n = t.numpy()
        assert np.shares_memory(n, t.numpy())
        assert ptr(n) == t.data_ptr
        n[0, 0] = 99
        assert t[0, 0].item() == 99

    def test_numpy_of_views(self):
        t = tg.arange(24.0).reshape(4, 6)
        a = np.arange(24.0, dtype=np.float32).reshape(4, 6)
        for key in ((slice(None, None, 2), slice(None, None, -3)), (1,), (None, slice(None), 2)):
            v = t[key]
            n = v.numpy()
            assert ptr(n) == v.data_ptr and n.strides == v.strides
            np.testing.assert_array_equal(n, a[key])
        n = t.T.numpy()
        assert ptr(n) == t.data_ptr and n.strides == a.T.strides

    def test_numpy_of_tensor_requiring_grad(self):
        x = tg.ones(3, requires_grad=True)
        y = x * 2
        assert y.numpy().tolist() == [2.0, 2.0, 2.0]  # values only, no error
        assert x.numpy(force=True).tolist() == [1.0, 1.0, 1.0]
        assert ptr(x.numpy(force=True)) != x.data_ptr

    def test_numpy_keeps_tensor_alive(self):
        t = tg.arange(5.0) * 2
        r = weakref.ref(t)
        n = t.numpy()
        del t
        gc.collect()
        assert r() is not None  # the array's base is the tensor
        assert n.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
        del n
        gc.collect()
        assert r() is None

    def test_array_protocol(self):
        t = tg.arange(6.0, dtype=tg.float64).reshape(2, 3)
        a = np.asarray(t)
        assert ptr(a) == t.data_ptr
        b = np.array(t, copy=True)
        assert ptr(b) != t.data_ptr and b.tolist() == a.tolist()
        c = np.array(t, copy=None)
        assert ptr(c) == t.data_ptr
        d = np.asarray(t, dtype=np.float64)  # same dtype: still shared
        assert ptr(d) == t.data_ptr
        e = np.asarray(t, dtype=np.float32)
        assert e.dtype == np.float32 and e.tolist() == a.tolist()
        with pytest.raises(ValueError):
            np.array(t, dtype=np.float32, copy=False)
        assert ptr(np.array(t, copy=False)) == t.data_ptr

    def test_numpy_functions_accept_tensors(self):
        t = tg.arange(6.0).reshape(2, 3)
        assert np.sum(np.asarray(t)) == 15.0
        np.testing.assert_array_equal(np.concatenate([np.asarray(t), np.asarray(t)]).shape, (4, 3))

    def test_memoryview(self):
        t = tg.arange(6.0, dtype=tg.float64).reshape(2, 3)
        m = memoryview(t)
        assert m.format == "d" and m.shape == (2, 3) and m.strides == (24, 8) and not m.readonly
        assert m.itemsize == 8 and m.nbytes == 48
        assert m.tolist() == t.tolist()
        m[0, 0] = 5.0
        assert t[0, 0].item() == 5.0
        assert memoryview(tg.ones(2)).format == "f"
        assert memoryview(tg.arange(2)).format == "q"
        mt = memoryview(t.T)
        assert mt.strides == (8, 24) and not mt.c_contiguous
        assert np.frombuffer(memoryview(t), dtype=np.float64).tolist() == t.numpy().ravel().tolist()

    def test_memoryview_keeps_tensor_alive(self):
        t = tg.arange(3.0) + 1
        r = weakref.ref(t)
        m = memoryview(t)
        del t
        gc.collect()
        assert r() is not None and m.tolist() == [1.0, 2.0, 3.0]
        m.release()
        gc.collect()
        assert r() is None


class TestLifetimes:
    @pytest.mark.parametrize("order", list(itertools.permutations(["array", "tensor", "view", "numpy"])))
    def test_every_deletion_order(self, order):
        objs = {}
        a = np.arange(10.0)
        objs["array"] = a
        objs["tensor"] = tg.from_numpy(a)
        objs["view"] = objs["tensor"][::-2]
        objs["numpy"] = objs["view"].numpy()
        refs = {"tensor": weakref.ref(objs["tensor"]), "view": weakref.ref(objs["view"])}
        del a
        expect = {"tensor": [float(v) for v in range(10)], "view": [9.0, 7.0, 5.0, 3.0, 1.0],
                  "numpy": [9.0, 7.0, 5.0, 3.0, 1.0], "array": [float(v) for v in range(10)]}
        for name in order:
            del objs[name]
            gc.collect()
            for other in objs:  # what is left still reads the right values
                assert objs[other].tolist() == expect[other]
        gc.collect()
        assert refs["tensor"]() is None and refs["view"]() is None

    def test_array_kept_alive_by_tensor(self):
        a = np.arange(4.0)
        r_count = sys.getrefcount(a)
        t = tg.from_numpy(a)
        assert sys.getrefcount(a) == r_count + 1
        del t
        gc.collect()
        assert sys.getrefcount(a) == r_count

    def test_array_outlives_through_graph(self):
        a = np.arange(4.0)
        x = tg.from_numpy(a, requires_grad=True)
        y = (x * x)  # the entry keeps x (and so a's memory) for backward
        del x, a
        gc.collect()
        y.sum().backward()
        assert y.tolist() == [0.0, 1.0, 4.0, 9.0]

    def test_grad_numpy_lifetime(self):
        x = tg.ones(3, requires_grad=True)
        (x * 2).sum().backward()
        g = x.grad.numpy()
        x.grad = None
        del x
        gc.collect()
        assert g.tolist() == [2.0, 2.0, 2.0]


class TestDLPack:
    def test_numpy_roundtrip(self):
        a = np.arange(6.0).reshape(2, 3)
        t = tg.from_dlpack(a)
        assert t.data_ptr == ptr(a)
        b = np.from_dlpack(t)
        assert ptr(b) == t.data_ptr
        assert t.__dlpack_device__() == (1, 0)

    def test_torch_to_tapegrad_zero_copy(self, torch):
        tt = torch.arange(12, dtype=torch.float64).reshape(3, 4)
        t = tg.from_dlpack(tt)
        assert t.data_ptr == tt.data_ptr() and t.dtype == tg.float64 and t.shape == (3, 4)
        tt[0, 1] = 100.0
        assert t[0, 1].item() == 100.0
        t[2, 3] = -1.0
        assert tt[2, 3].item() == -1.0
        v = tg.from_dlpack(tt.T)
        assert v.data_ptr == tt.data_ptr() and v.strides == (8, 32)
        x = tg.from_dlpack(torch.ones(3), requires_grad=True)
        assert x.requires_grad and x.dtype == tg.float32

    def test_tapegrad_to_torch_zero_copy(self, torch):
        t = tg.arange(6.0, dtype=tg.float64).reshape(2, 3)
        tt = torch.from_dlpack(t)
        assert tt.data_ptr() == t.data_ptr and tt.dtype == torch.float64 and tuple(tt.shape) == (2, 3)
        tt[1, 1] = 42.0
        assert t[1, 1].item() == 42.0
        tv = torch.from_dlpack(t.T)
        assert tv.stride() == (1, 3) and tv.data_ptr() == t.data_ptr
        ti = torch.from_dlpack(tg.arange(4))
        assert ti.dtype == torch.int64 and ti.tolist() == [0, 1, 2, 3]

    def test_torch_keeps_tensor_alive(self, torch):
        t = tg.arange(4.0) * 3
        r = weakref.ref(t)
        tt = torch.from_dlpack(t)
        del t
        gc.collect()
        assert r() is not None and tt.tolist() == [0.0, 3.0, 6.0, 9.0]
        del tt
        gc.collect()
        assert r() is None

    def test_torch_tensor_kept_alive(self, torch):
        tt = torch.arange(5, dtype=torch.float32)
        t = tg.from_dlpack(tt)
        del tt
        gc.collect()
        assert t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_from_numpy_of_one_array_in_a_loop_keeps_one_alias_record():
    """from_numpy(a) called again and again on one writable array (a training
    loop over a fixed batch) listed the array once per call among the storage's
    aliases, so the list and the time of each call grew without bound (50 us a
    call after a million); it is listed once."""
    import gc
    import weakref
    a = np.ones(1000, np.float32)
    keep = tg.from_numpy(a)
    for _ in range(500):
        tg.from_numpy(a)
    t = tg.from_numpy(a)
    for _ in range(500):
        t.numpy()           # temporaries: listed, then pruned once dead
    w = weakref.ref(a)      # CPython's one basic weakref of a: the object listed
    held = sum(r.count(w) for r in gc.get_referrers(w) if isinstance(r, list))
    assert held == 1, held
    lists = [r for r in gc.get_referrers(w) if isinstance(r, list)]
    assert len(lists) == 1 and len(lists[0]) < 40, [len(r) for r in lists]
    a[0] = 5.0              # still zero-copy, still writable
    assert keep[0].item() == 5.0 and t[0].item() == 5.0
