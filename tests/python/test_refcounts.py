"""Nothing leaks: every API path called 10,000 times leaves the reference
counts of its inputs, the number of Python heap blocks
(``sys.getallocatedblocks``), the C heap (glibc's ``mallinfo2``) and
tapegrad's live tensor memory where they were; ``tracemalloc`` then watches
the Python heap in bytes over a shorter run (it slows every allocation).

The bounds are on growth, not on time: a leak of one small object per call
is 10,000 objects, far above the slack allowed for caches and free lists.
"""
import ctypes
import gc
import sys
import tracemalloc

import numpy as np
import pytest

import tapegrad as tg

N = 10_000
N_TRACED = 1_000
BLOCK_SLACK = 500        # Python heap blocks tolerated over N calls (free lists, caches)
PY_SLACK = 32 * 1024     # bytes of Python heap growth tolerated over N_TRACED calls
C_SLACK = 256 * 1024     # bytes of C heap growth tolerated over N calls


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def _c_heap_reader():
    try:
        libc = ctypes.CDLL("libc.so.6")
        f = libc.mallinfo2
    except (OSError, AttributeError):  # not glibc: the other checks remain
        return None
    f.restype = _MallInfo2

    def read():
        m = f()
        return m.uordblks + m.hblkhd
    return read


C_HEAP = _c_heap_reader()


def assert_flat(fn, *objs, n=N, n_traced=N_TRACED):
    """Call fn() n times, then n_traced times under tracemalloc; nothing may
    grow (see the module docstring)."""
    for _ in range(200):  # warm up caches, free lists, the allocator's cache
        fn()
    gc.collect()
    refs = [sys.getrefcount(o) for o in objs]
    live = tg.memory_stats()["live_bytes"]
    blocks = sys.getallocatedblocks()
    c0 = C_HEAP() if C_HEAP else 0
    for _ in range(n):
        fn()
    gc.collect()
    c_grown = (C_HEAP() - c0) if C_HEAP else 0
    b_grown = sys.getallocatedblocks() - blocks
    assert [sys.getrefcount(o) for o in objs] == refs, "reference counts of the inputs changed"
    assert tg.memory_stats()["live_bytes"] - live <= 0, "tensor memory is still alive"
    assert b_grown < BLOCK_SLACK, f"{b_grown} more Python heap blocks after {n} calls"
    assert c_grown < C_SLACK, f"the C heap grew by {c_grown} bytes over {n} calls"
    tracemalloc.start()
    p0 = tracemalloc.get_traced_memory()[0]
    for _ in range(n_traced):
        fn()
    gc.collect()
    p_grown = tracemalloc.get_traced_memory()[0] - p0
    tracemalloc.stop()
    assert p_grown < PY_SLACK, f"the Python heap grew by {p_grown} bytes over {n_traced} calls"


def _raises(exc, fn):
    def call():
        try:
            fn()
        except exc:
            return
        raise AssertionError(f"{exc.__name__} not raised")
    return call


# ---------------------------------------------------------------------------
# the API paths, each as (function to call, objects whose refcounts must stay)
# ---------------------------------------------------------------------------

A = np.arange(12.0).reshape(3, 4)
X = tg.tensor(A)
XF = tg.randn(3, 4)
V = tg.tensor(np.arange(4.0))
I = tg.tensor([2, 0])
LIST = [[1.0, 2.0], [3.0, 4.0]]


class Square(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Boom(tg.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        raise KeyError("boom")


def _backward_small():
    w = tg.ones(4, dtype=tg.float64, requires_grad=True)
    (X @ w).tanh().sum().backward()
    return w.grad


def _grad_create_graph():
    x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    (g,) = tg.grad(x.tanh().sum(), x, create_graph=True)
    tg.grad(g.sum(), x)


def _tape():
    x = tg.ones(2, requires_grad=True)
    with tg.Tape() as tape:
        y = (x * x + x).sum()
    [e.op for e in tape]
    tape.gradient(y, [x])


def _function():
    x = tg.ones(3, dtype=tg.float64, requires_grad=True)
    Square.apply(x).sum().backward()


def _hooks():
    x = tg.ones(3, requires_grad=True)
    h = x.register_hook(lambda g: g * 2)
    y = x * 3
    y.register_hook(lambda g: None)
    y.sum().backward()
    h.remove()


def _hook_cycle():
    x = tg.ones(3, requires_grad=True)
    x.register_hook(lambda g: g * x.sum().item())  # a reference cycle through the hook


def _retained_and_freed():
    x = tg.ones(2, requires_grad=True)
    y = (x.exp() * x).sum()
    y.retain_grad()
    y.backward(retain_graph=True)
    y.backward()
    try:
        y.backward()
    except RuntimeError:
        pass


def _override():
    with tg.override_vjp("mul", lambda e, g: (g * e.inputs[1], g * e.inputs[0])):
        x = tg.ones(2, requires_grad=True)
        (x * x).sum().backward()


def _setitem():
    t = tg.zeros(3, 4)
    t[1] = 2.0
    t[:, ::-2] = V[:2]
    t[0, 0] = np.float64(3.0)
    t[[0, 2], [1, 3]] = V[:2]
    t[I] = 1.0


def _inplace():
    t = tg.zeros(3, 4)
    t += X
    t -= 1.0
    t *= V
    t /= 2


def _stepper():
    x = tg.ones(2, requires_grad=True)
    y = (x * x).sum()
    s = tg._C._Stepper([y])
    while s.step() is not None:
        pass
    s.end()


PATHS = {
    # creation
    "tensor_from_list": (lambda: tg.tensor(LIST), [LIST]),
    "tensor_from_array": (lambda: tg.tensor(A), [A]),
    "tensor_from_scalar": (lambda: tg.tensor(2.5), []),
    "zeros_ones_full": (lambda: (tg.zeros(3, 4), tg.ones((2, 2)), tg.full((2,), 1.0)), []),
    "arange_eye": (lambda: (tg.arange(10), tg.eye(3)), []),
    "rand_randn_like": (lambda: (tg.randn(3, 4), tg.rand_like(X)), [X]),
    "from_numpy": (lambda: tg.from_numpy(A), [A]),
    "from_numpy_strided": (lambda: tg.from_numpy(A[::-1, ::2]), [A]),
    # operators and functions
    "add_sub_mul_div": (lambda: (X + X, X - V, X * 2.0, 2.0 / (X + 1)), [X, V]),
    "reflected_numpy": (lambda: (A + X, X * A, A - X, A @ X.T), [A, X]),
    "pow_matmul": (lambda: (X ** 2, X @ X.T, V @ V), [X, V]),
    "comparisons": (lambda: (X < 3, X == X, X >= V, X != 1.0), [X, V]),
    "unary": (lambda: (-X, abs(X), X.exp(), tg.tanh(X), X.relu(), X.sigmoid()), [X]),
    "reductions": (lambda: (X.sum(), X.mean(axis=0), X.max(axis=1, keepdims=True), X.var(), X.argmax()), [X]),
    "movement": (lambda: (X.T, X.reshape(4, 3), X.permute(1, 0), X.unsqueeze(0), tg.concat([X, X])), [X]),
    "nn_functions": (lambda: (tg.softmax(XF), tg.cross_entropy(XF, tg.tensor([0, 1, 3])), tg.mse_loss(XF, XF)), [XF]),
    "float32_ops": (lambda: (XF * XF + 1).sum(), [XF]),
    # indexing
    "getitem_basic": (lambda: (X[1], X[:, ::-1], X[None, ..., 2], X[-1, 1:3]), [X]),
    "getitem_arrays": (lambda: (X[I], X[[0, 2], [1, 3]], X[tg.arange(3), tg.tensor([0, 1, 2])]), [X, I]),
    "setitem": (_setitem, [V, I]),
    "inplace": (_inplace, [X, V]),
    # NumPy interop
    "numpy": (lambda: (X.numpy(), X.T.numpy(), X.numpy(force=True)), [X]),
    "array_protocol": (lambda: (np.asarray(X), np.array(X, copy=True), np.asarray(X, dtype=np.float32)), [X]),
    "memoryview": (lambda: memoryview(X).tobytes(), [X]),
    "dlpack_numpy": (lambda: (np.from_dlpack(X), tg.from_dlpack(A)), [X, A]),
    "item_tolist_repr": (lambda: (X[0, 0].item(), X.tolist(), float(X[1, 1]), len(X)), [X]),
    # autograd
    "backward": (_backward_small, [X]),
    "grad_create_graph": (_grad_create_graph, []),
    "retain_graph_and_freed_error": (_retained_and_freed, []),
    "tape": (_tape, []),
    "function_apply": (_function, []),
    "hooks": (_hooks, []),
    "hook_reference_cycle": (_hook_cycle, []),
    "override_vjp": (_override, []),
    "stepper": (_stepper, []),
    "no_grad": (lambda: [tg.no_grad().__enter__(), tg.set_grad_enabled(True)], []),
    # errors raised
    "error_shape_mismatch": (_raises(ValueError, lambda: X + tg.ones(5)), [X]),
    "error_matmul": (_raises(ValueError, lambda: X @ X), [X]),
    "error_index": (_raises(IndexError, lambda: X[5]), [X]),
    "error_index_array": (_raises(IndexError, lambda: X[[0, 1], [0, 9]]), [X]),
    "error_bad_axis": (_raises(IndexError, lambda: X.sum(axis=3)), [X]),
    "error_dtype": (_raises(TypeError, lambda: tg.zeros(2, dtype="complex64")), []),
    "error_from_numpy": (_raises(TypeError, lambda: tg.from_numpy(np.zeros(2, np.int16))), []),
    "error_labels": (_raises(IndexError, lambda: tg.cross_entropy(XF, tg.tensor([0, 1, 9]))), [XF]),
    "error_backward_non_scalar": (_raises(RuntimeError, lambda: (tg.ones(2, requires_grad=True) * 2).backward()), []),
    "error_in_function_backward": (_raises(KeyError, lambda: Boom.apply(tg.ones(2, requires_grad=True)).sum().backward()), []),
    "error_in_hook": (_raises(ZeroDivisionError, lambda: (lambda x: (x.register_hook(lambda g: 1 / 0), (x * 1).sum().backward()))(tg.ones(1, requires_grad=True))), []),
    "error_requires_grad_int": (_raises(TypeError, lambda: tg.arange(3).requires_grad_()), []),
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_no_leak(name):
    fn, objs = PATHS[name]
    assert_flat(fn, *objs)


def test_ops_registry_no_leak():
    assert_flat(tg.ops, n=100, n_traced=30)


def test_op_examples_no_leak():
    names = [o["name"] for o in tg.ops() if o["examples"]]

    def run():
        for name in names:
            ins, params = tg._C._op_example(name, 0, tg.float64)
    assert_flat(run, n=200, n_traced=50)


def test_repr_no_leak():
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    assert_flat(lambda: (repr(y), y._repr_html_(), str(x)), x, y, n=300, n_traced=100)


def test_getrefcount_of_outputs():
    """A fresh result is owned only by the caller (the wrapper is not kept
    elsewhere), and x.grad hands out the same object each time."""
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    assert sys.getrefcount(y) == 2
    (y.sum()).backward()
    g = x.grad
    assert g is x.grad
    before = sys.getrefcount(g)
    for _ in range(1000):
        x.grad
    assert sys.getrefcount(g) == before


def test_tensor_object_freed_with_graph():
    import weakref
    x = tg.ones(3, requires_grad=True)
    y = (x * 2).exp()
    refs = [weakref.ref(t) for t in (y, y.grad_fn.inputs[0])]
    del y
    gc.collect()
    assert all(r() is None for r in refs)
