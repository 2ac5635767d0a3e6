"""Adam's float32 step as one parallel loop over every parameter (issue 16).

``tg_adam_step`` lays the float32 parameters end to end and runs a single
``tg_parallel_for`` over all their elements, a range crossing from one
tensor into the next, in ranges of at least ``ADAM_MIN_PER_CHUNK`` (32768)
elements (csrc/core/optim.c).  Checked here:

* the result is PyTorch's float32 formula, bit for bit, on one thread and on
  two, whatever the sizes (ranges that start and end inside tensors, tensors
  of one element, totals just below and just above the chunk size);
* one step hands exactly one loop to the workers when the total is above
  the chunk size, none below it (``tg_threadpool_jobs``);
* parameters whose memory overlaps (two ``from_numpy`` views of one array)
  and a float64 parameter among float32 ones are still updated one after
  another, as before: the same numbers as a sequential reference.
"""
import ctypes

import numpy as np
import pytest

import tapegrad as tg
from optim_reference import accessors, adam_reference

CHUNK = 32768  # ADAM_MIN_PER_CHUNK in csrc/core/optim.c

_lib = ctypes.CDLL(tg._C.__file__)
_lib.tg_threadpool_jobs.restype = ctypes.c_uint64


@pytest.fixture(autouse=True)
def _restore_threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


def _adam(ps, grads, lr, wd, decoupled):
    opt = (tg.optim.AdamW(ps, lr=lr, weight_decay=wd) if decoupled
           else tg.optim.Adam(ps, lr=lr, weight_decay=wd))
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = tg.tensor(g)
        opt.step()
    return [p.numpy().copy() for p in ps]


SHAPES = {
    # the CNN's parameters, in its order: ranges cross tensor ends everywhere
    "cnn": [(16, 1, 5, 5), (16,), (32, 16, 5, 5), (32,), (128, 1568), (128,), (10, 128), (10,)],
    # one element, then tensors whose ends do not fall on a chunk or a vector
    "ragged": [(1,), (CHUNK - 3,), (7,), (CHUNK + 5,), (3, 11), (1,)],
    # the totals on both sides of one chunk
    "just below one chunk": [(CHUNK - 9,), (8,)],
    "just above two chunks": [(CHUNK,), (CHUNK + 1,)],
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("wd,decoupled", [(0.0, False), (0.01, False), (0.01, True)])
def test_one_loop_is_the_formula_on_one_and_two_threads(name, wd, decoupled):
    rng = np.random.default_rng(len(name))
    shapes = SHAPES[name]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    got = {}
    for threads in (1, 2):
        tg.set_num_threads(threads)
        ps = [tg.tensor(a.copy(), requires_grad=True) for a in init]
        got[threads] = _adam(ps, grads, 1e-3, wd, decoupled)
    want = [a.copy() for a in init]
    adam_reference(accessors(want), grads, 1e-3, wd, decoupled)
    for i in range(len(shapes)):
        np.testing.assert_array_equal(got[1][i], want[i], err_msg=f"{name}: parameter {i}")
        np.testing.assert_array_equal(got[2][i], got[1][i], err_msg=f"{name}: parameter {i}")


@pytest.mark.parametrize("name,loops", [("just below one chunk", 0), ("just above two chunks", 1),
                                        ("cnn", 1)])
def test_a_step_hands_the_workers_one_loop_above_the_chunk_size(name, loops):
    tg.set_num_threads(2)
    shapes = SHAPES[name]
    ps = [tg.zeros(s, requires_grad=True) for s in shapes]
    opt = tg.optim.Adam(ps, lr=1e-3)
    for p in ps:
        p.grad = tg.ones(p.shape)
    before = _lib.tg_threadpool_jobs()
    opt.step()
    assert _lib.tg_threadpool_jobs() - before == loops
    # the step did happen: Adam's first step moves every element by lr
    for p in ps:
        np.testing.assert_allclose(p.numpy(), -1e-3, rtol=1e-5)


def test_overlapping_parameters_are_updated_one_after_another():
    """Two parameters over one NumPy buffer (elements 40000..49999 shared):
    the second one's update reads what the first one wrote, as in the
    per-parameter loop (never both at once on two threads)."""
    rng = np.random.default_rng(5)
    n = 2 * CHUNK
    buf = rng.standard_normal(n + 10000).astype(np.float32)
    g0 = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    g1 = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    results = []
    for threads in (1, 2):
        tg.set_num_threads(threads)
        arr = buf.copy()
        a, b = tg.from_numpy(arr[:n]), tg.from_numpy(arr[10000:])
        a.requires_grad_(True)
        b.requires_grad_(True)
        opt = tg.optim.Adam([a, b], lr=1e-2)
        for k in range(2):
            a.grad, b.grad = tg.tensor(g0[k]), tg.tensor(g1[k])
            before = _lib.tg_threadpool_jobs()
            opt.step()
            # one loop per parameter (two chunks each), not one loop over both
            assert _lib.tg_threadpool_jobs() - before == (2 if threads == 2 else 0)
        results.append(arr.copy())
    ref = buf.copy()

    def view(lo, hi):
        def access(new=None):
            if new is not None:
                ref[lo:hi] = new
            return ref[lo:hi].copy()
        return access
    adam_reference([view(0, n), view(10000, 10000 + n)], [[g0[k], g1[k]] for k in range(2)],
               1e-2, 0.0, False)
    np.testing.assert_array_equal(results[0], ref)
    np.testing.assert_array_equal(results[1], ref)


def test_a_float64_parameter_among_float32_ones():
    rng = np.random.default_rng(6)
    shapes = [(CHUNK + 3,), (17,), (CHUNK,)]
    dts = [np.float32, np.float64, np.float32]
    init = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dts)]
    grads = [[rng.standard_normal(s).astype(d) for s, d in zip(shapes, dts)] for _ in range(2)]
    out = {}
    for threads in (1, 2):
        tg.set_num_threads(threads)
        ps = [tg.tensor(a.copy(), requires_grad=True) for a in init]
        out[threads] = _adam(ps, grads, 1e-3, 0.0, False)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_array_equal(a, b)
    # the float64 one against float64 Adam, the others against the float32 loop alone
    ps = [tg.tensor(init[1].copy(), requires_grad=True)]
    alone = _adam(ps, [[s[1]] for s in grads], 1e-3, 0.0, False)
    np.testing.assert_array_equal(out[1][1], alone[0])
    ps = [tg.tensor(init[i].copy(), requires_grad=True) for i in (0, 2)]
    alone = _adam(ps, [[s[0], s[2]] for s in grads], 1e-3, 0.0, False)
    np.testing.assert_array_equal(out[1][0], alone[0])
    np.testing.assert_array_equal(out[1][2], alone[1])
