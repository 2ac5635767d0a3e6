"""Elementwise loops split among threads in smaller chunks (issue 16).

``tg__iterate_parallel`` (csrc/core/tensor.c) splits a loop of more than
2^16 work units (elements times the op's cost: 1 for an add, 8 for an exp)
in chunks of at least 2^14 units: the CNN's second ReLU (200k elements),
forward and backward, used to run on one thread.  Each element is computed
alone, so the chunks must change no bit: checked here on 1 and 2 threads
for sizes on both sides of the thresholds, contiguous and strided, against
NumPy where the op is exact."""
import ctypes

import numpy as np
import pytest

import tapegrad as tg
from kernel_paths import with_threads

_lib = ctypes.CDLL(tg._C.__file__)
_lib.tg_threadpool_jobs.restype = ctypes.c_uint64

# on both sides of the split (65536) and of a chunk (16384) for cost 1; the
# CNN's ReLU sizes; exp (cost 8) splits above 8192 elements
SIZES = [16383, 16385, 65536, 65537, 98305, 200704, 401408]


def _run(op, threads, a, b):
    def f():
        return np.array(op(tg.from_numpy(a), tg.from_numpy(b)).numpy(), copy=True)
    return with_threads(threads, f)


OPS = {
    "add": (lambda x, y: x + y, lambda a, b: a + b),
    "mul": (lambda x, y: x * y, lambda a, b: a * b),
    "relu": (lambda x, y: tg.relu(x), lambda a, b: np.maximum(a, 0)),
    "exp": (lambda x, y: tg.exp(x), None),
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("n", SIZES)
def test_same_bits_on_one_and_two_threads(name, n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    a[::97] = np.nan
    op, ref = OPS[name]
    one, two = _run(op, 1, a, b), _run(op, 2, a, b)
    np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))
    if ref is not None:
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(two, ref(a, b))


def test_strided_and_broadcast_operands():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 3200)).astype(np.float32)
    b = rng.normal(size=(3200,)).astype(np.float32)

    def f():
        x = tg.from_numpy(a)
        return [np.array(t.numpy(), copy=True) for t in (x.T * 2.0, x + tg.from_numpy(b), tg.relu(x[:, ::2]))]
    one, two = with_threads(1, f), with_threads(2, f)
    for p, q in zip(one, two):
        np.testing.assert_array_equal(p.view(np.uint32), q.view(np.uint32))
    np.testing.assert_array_equal(two[0], a.T * 2.0)
    np.testing.assert_array_equal(two[1], a + b)
    np.testing.assert_array_equal(two[2], np.maximum(a[:, ::2], 0))


def test_relu_backward_of_the_cnn_shapes_on_two_threads():
    rng = np.random.default_rng(1)
    for shape in [(32, 16, 28, 28), (32, 32, 14, 14)]:
        xv, gv = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)

        def f():
            x = tg.from_numpy(xv.copy())
            x.requires_grad = True
            (tg.relu(x) * tg.from_numpy(gv)).sum().backward()
            return np.array(x.grad.numpy(), copy=True)
        one, two = with_threads(1, f), with_threads(2, f)
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(two, np.where(xv > 0, gv, 0 * gv))


@pytest.mark.parametrize("n, jobs", [(65536, 0), (65537, 1), (200704, 1)])
def test_a_loop_above_the_threshold_goes_to_the_pool(n, jobs):
    x = tg.from_numpy(np.ones(n, np.float32))

    def f():
        before = _lib.tg_threadpool_jobs()
        tg.relu(x)
        return _lib.tg_threadpool_jobs() - before
    assert with_threads(2, f) == jobs
    assert with_threads(1, f) == 0
