"""ReLU's backward written over its incoming gradient (issue 16).

In a first-order ``backward()``/``tg.grad`` whose steps nobody sees, the
engine tells an op's own VJP when the gradient it passes in is a private
dense buffer nobody else holds (``tg__vjp_writable_grad`` in
csrc/engine/backward.c); relu's VJP then writes ``g * [x > 0]`` over it
instead of into a new buffer of the same size (6.4 MB per batch-128 ReLU of
the CNN step).

Checked here: the same bits as the reference route (the step-through
engine, whose records are seen, never writes over a gradient), NaN, inf and
signed zeros included, float32 and float64, on 1 and 2 threads with sizes
above the parallel split; the peak memory of a chain of ReLUs shows one
gradient buffer, not two; a gradient someone else holds (a hook's argument
or its replacement, ``retain_grad``, the seed, a gradient handed to two
inputs, the step-through's records, ``tg.grad``'s results) is never written;
retain_graph and create_graph (double backward) give the right gradients."""
import numpy as np
import pytest

import tapegrad as tg
from conftest import import_torch
from kernel_paths import with_threads

torch = import_torch()


def _leaf(a):
    x = tg.from_numpy(np.array(a, copy=True))
    x.requires_grad = True
    return x


def _special(rng, n, dtype):
    """Values with every case relu's gradient treats apart: > 0, < 0, +-0,
    NaN and +-inf, in x and in the incoming gradient."""
    v = rng.normal(size=n).astype(dtype)
    k = max(1, n // 16)
    v[:k] = 0.0
    v[k:2 * k] = -0.0
    v[2 * k:3 * k] = np.nan
    v[3 * k:4 * k] = np.inf
    v[4 * k:5 * k] = -np.inf
    return rng.permutation(v)


def _stepped_grads(loss, leaves):
    """The gradients of the reference route: the step-through engine (its
    step records are seen, so nothing is written over)."""
    for t in leaves:
        t.grad = None
    tg.inspect.BackwardStepper(loss).finish()
    return [t.grad.numpy().copy() for t in leaves]


def _want(xv, gv):
    """relu's VJP as defined: g where x > 0, else g * 0."""
    with np.errstate(invalid="ignore"):
        return np.where(xv > 0, gv, gv * 0)


def _snap(g):
    """A private copy of a gradient as shown (tensor or NumPy array)."""
    return np.array(g if isinstance(g, np.ndarray) else g.numpy(), copy=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [37, 300_001])  # one row; above the threads' split
def test_same_bits_as_the_reference_route(dtype, threads, n):
    rng = np.random.default_rng(n)
    xv, cv = _special(rng, n, dtype), _special(rng, n, dtype)
    x, c = _leaf(xv), tg.from_numpy(cv)

    def run():
        x.grad = None
        (tg.relu(x * 1.0) * c).sum().backward()  # relu's gradient: c, a private buffer
        got = x.grad.numpy().copy()
        ref = _stepped_grads((tg.relu(x * 1.0) * c).sum(), [x])[0]
        return got, ref

    got, ref = with_threads(threads, run)
    np.testing.assert_array_equal(got.view(np.uint8), ref.view(np.uint8))
    np.testing.assert_array_equal(got, _want(xv, cv))
    one, _ = with_threads(1, run)
    np.testing.assert_array_equal(got.view(np.uint8), one.view(np.uint8))  # 1 vs 2 threads


def test_a_chain_of_relus_uses_one_gradient_buffer():
    n = 1 << 20  # 4 MB of float32
    rng = np.random.default_rng(0)
    x, c = _leaf(rng.normal(size=n).astype(np.float32)), tg.from_numpy(rng.normal(size=n).astype(np.float32))
    loss = (tg.relu(tg.relu(tg.relu(x))) * c).sum()
    live = tg.memory_stats()["live_bytes"]
    tg.reset_peak_memory()
    loss.backward()
    extra = tg.memory_stats()["peak_bytes"] - live
    # mul's VJP makes one 4 MB gradient; the three relus write over it and it
    # becomes x.grad (before: a new buffer per relu, 8 MB at the peak)
    assert extra < 4.5 * 2**20, extra
    xv = x.numpy()
    np.testing.assert_array_equal(x.grad.numpy(), np.where(xv > 0, c.numpy(), 0 * c.numpy()))


def test_a_gradient_someone_holds_is_never_written():
    rng = np.random.default_rng(1)
    xv, cv = rng.normal(size=(6, 7)), rng.normal(size=(6, 7))
    want = _want(xv, cv)
    c = tg.from_numpy(cv)

    # a hook on relu's output keeps its argument (and its NumPy view)
    x = _leaf(xv)
    y = tg.relu(x * 1.0)
    held = []
    y.register_hook(lambda g: held.append((g, g.numpy())))
    (y * c).sum().backward()
    np.testing.assert_array_equal(held[0][0].numpy(), cv)
    np.testing.assert_array_equal(held[0][1], cv)
    np.testing.assert_array_equal(x.grad.numpy(), want)

    # a hook's replacement, kept by the hook
    x = _leaf(xv)
    y = tg.relu(x * 1.0)
    kept = []

    def replace(g):
        r = g * 2.0
        kept.append(r)
        return r
    y.register_hook(replace)
    (y * c).sum().backward()
    np.testing.assert_array_equal(kept[0].numpy(), 2 * cv)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * want)

    # retain_grad on relu's output: its .grad is the incoming gradient
    x = _leaf(xv)
    y = tg.relu(x * 1.0)
    y.retain_grad()
    (y * c).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), cv)
    np.testing.assert_array_equal(x.grad.numpy(), want)

    # the seed the caller passes
    x = _leaf(xv)
    y = tg.relu(x * 1.0)
    seed = tg.from_numpy(cv.copy())
    y.backward(seed)
    np.testing.assert_array_equal(seed.numpy(), cv)
    np.testing.assert_array_equal(x.grad.numpy(), want)

    # the same gradient handed to two relus (add's VJP passes g to both)
    a = _leaf(xv)
    ((tg.relu(a * 1.0) + tg.relu(a * -1.0)) * c).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), _want(xv, cv) - _want(-xv, cv))

    # tg.grad's results, the relu's output captured too
    x = _leaf(xv)
    h = x * 1.0
    y = tg.relu(h)
    gy, gh = tg.grad((y * c).sum(), [y, h])
    np.testing.assert_array_equal(gy.numpy(), cv)
    np.testing.assert_array_equal(gh.numpy(), want)


def test_the_step_through_records_never_change():
    rng = np.random.default_rng(2)
    xv, cv = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    x = _leaf(xv)
    loss = (tg.relu(tg.relu(x * 1.0)) * tg.from_numpy(cv)).sum()
    st = tg.inspect.BackwardStepper(loss)
    shown = []
    while not st.done:
        rec = st.step()
        gs = [rec.grad_out] + [g for ig in rec.inputs for g in (ig.grad, ig.after)]
        shown += [(g, _snap(g)) for g in gs if g is not None]
    assert shown
    for g, copy in shown:
        np.testing.assert_array_equal(_snap(g), copy)
    np.testing.assert_array_equal(x.grad.numpy(), _want(xv, cv))


def test_relu_of_slices_and_a_reused_output():
    rng = np.random.default_rng(3)
    av, cv = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    a = _leaf(av)
    h = tg.relu(a * 1.0)
    loss = (tg.relu(a[:, :4]) * tg.from_numpy(cv[:, :4])).sum() + \
        (tg.relu(a[:, 2:]) * tg.from_numpy(cv[:, 2:])).sum() + (h * tg.from_numpy(cv)).sum() + \
        (tg.relu(h) * tg.from_numpy(cv)).sum()
    loss.backward()
    want = np.zeros_like(av)
    want[:, :4] += _want(av[:, :4], cv[:, :4])
    want[:, 2:] += _want(av[:, 2:], cv[:, 2:])
    hv = np.maximum(av, 0)
    want += _want(av, cv + _want(hv, cv))
    np.testing.assert_allclose(a.grad.numpy(), want, rtol=1e-12, atol=1e-12)


def test_retain_graph_and_create_graph():
    rng = np.random.default_rng(4)
    xv, cv = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    c = tg.from_numpy(cv)
    x = _leaf(xv)
    loss = (tg.relu(x * 1.0) * c).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * _want(xv, cv))

    # double backward of y = relu(x) * x: dy/dx = [x > 0] * 2x, d2 = 2 [x > 0]
    x = _leaf(xv)
    (g,) = tg.grad((tg.relu(x) * x * c).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.numpy(), _want(xv, cv * xv) + np.maximum(xv, 0) * cv, rtol=1e-12)
    (g * c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (xv > 0) * cv * cv, rtol=1e-12)
    if torch is not None:
        tx = torch.tensor(xv, requires_grad=True)
        tc = torch.tensor(cv)
        (tgx,) = torch.autograd.grad((torch.relu(tx) * tx * tc).sum(), [tx], create_graph=True)
        (tgx * tc).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_a_private_stepper_runs_as_backward_and_shows_no_gradients():
    # tg.inspect.profile times the steps with _Stepper(private=True): the
    # steps then work as in backward() (relu writes over its gradient), and
    # the records show no gradient a later step could have changed
    rng = np.random.default_rng(5)
    xv, cv = rng.normal(size=(1 << 18,)).astype(np.float32), rng.normal(size=(1 << 18,)).astype(np.float32)
    x, c = _leaf(xv), tg.from_numpy(cv)
    loss = (tg.relu(tg.relu(x)) * c).sum()
    live = tg.memory_stats()["live_bytes"]
    tg.reset_peak_memory()
    st = tg._C._Stepper(loss, None, direct=True, private=True)
    ops = []
    while True:
        rec = st.step()
        if rec is None:
            break
        ops.append(rec["entry"].op)
        assert rec["grad_out"] is None and all(g is None for g in rec["grad_in"])
    st.end()
    assert ops == ["sum", "mul", "relu", "relu"]
    assert tg.memory_stats()["peak_bytes"] - live < 1.2 * 2**20  # one 1 MB gradient
    np.testing.assert_array_equal(x.grad.numpy(), _want(xv, cv))
    # not private: the records show the gradients, each as it was
    x.grad = None
    st = tg._C._Stepper((tg.relu(tg.relu(x)) * c).sum(), None, direct=True)
    shown = []
    while (rec := st.step()) is not None:
        shown += [(g, _snap(g)) for g in [rec["grad_out"]] + rec["grad_in"] if g is not None]
    st.end()
    assert len(shown) >= 6
    for g, copy in shown:
        np.testing.assert_array_equal(_snap(g), copy)
    np.testing.assert_array_equal(x.grad.numpy(), _want(xv, cv))
