"""A gradient the user can see never changes when a later contribution arrives.

The engine adds a tensor's gradient contributions in place when nobody else
can see the running sum (``accumulate_in_place`` in csrc/engine/backward.c,
issue 16).  These tests hold on to every gradient the public API shows during
one backward pass -- ``retain_grad()``'s ``.grad``, the argument of a
``register_hook`` hook (the tensor itself and its NumPy view), the records of
the step-through engine (``tg.inspect.BackwardStepper``: ``grad_out``, each
input's ``grad``, ``before`` and ``after``) -- take a private copy at the
moment it is shown, let backward go on (the tensor's second and third
contributions arrive later), and check that what they hold still equals the
copy.  Values and the hooks' arguments are compared with PyTorch's.

The programs use tensors several times through whole-tensor ops and through
slices (``a[:, :2]`` and ``a[:, 2:]`` both used, overlapping and strided
slices too), so that they also cover a slice backward that accumulates into
the gradient of ``a`` in place.
"""
import numpy as np
import pytest

import tapegrad as tg
from conftest import import_torch

torch = import_torch()

DTYPES = [np.float64, np.float32]


def snap(x):
    """A private copy of a gradient as shown (tensor, NumPy array or None)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, torch.Tensor):
        return x.detach().numpy().copy()
    return np.array(x.numpy(), copy=True)


def as_np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return x.numpy()


def leaf(lib, a):
    if lib is tg:
        return tg.tensor(a, requires_grad=True)
    return torch.tensor(a, requires_grad=True)


def close(got, want, dtype):
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=tol, atol=tol)


class Keeper:
    """A hook that keeps its argument (the tensor and its NumPy view) and a
    copy of its values at the moment of the call."""

    def __init__(self):
        self.tensors, self.views, self.copies = [], [], []

    def __call__(self, g):
        self.tensors.append(g)
        self.views.append(as_np(g))
        self.copies.append(snap(g))

    def unchanged(self):
        for t, v, c in zip(self.tensors, self.views, self.copies):
            np.testing.assert_array_equal(as_np(t), c)
            np.testing.assert_array_equal(v, c)


def data(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=shape).astype(dtype)


# ---- (a) retain_grad ----------------------------------------------------------

def program_used_twice(lib, x):
    """y = 2x used three times (two products and an exp): three contributions."""
    y = x * 2.0
    y.retain_grad()
    loss = (y * 3.0).sum() + (y * y).sum() + y.exp().sum()
    return y, loss


@pytest.mark.parametrize("dtype", DTYPES)
def test_retain_grad_of_a_tensor_used_three_times(dtype):
    a = data((3, 4), dtype)
    got, want = {}, {}
    for lib, out in ((tg, got), (torch, want)):
        x = leaf(lib, a)
        y, loss = program_used_twice(lib, x)
        loss.backward(retain_graph=True)
        held, view = y.grad, as_np(y.grad)
        out["first"] = snap(held)
        out["x"] = snap(x.grad)
        loss.backward()  # the second pass adds to y.grad
        out["held"], out["view"], out["second"] = snap(held), view.copy(), snap(y.grad)
        out["x2"] = snap(x.grad)
    for k in want:
        close(got[k], want[k], dtype)
    # the first pass's y.grad, held as a tensor and as a NumPy view, is
    # unchanged by the second pass (PyTorch: a non-leaf's retained gradient
    # is accumulated out of place)
    np.testing.assert_array_equal(got["held"], got["first"])
    np.testing.assert_array_equal(got["view"], got["first"])
    close(got["second"], 2 * got["first"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaf_grad_held_across_two_backward_passes_as_in_pytorch(dtype):
    """A leaf's .grad is accumulated in place across passes, as in PyTorch
    (AccumulateGrad adds into the existing tensor): a tensor held from the
    first pass shows the sum afterwards in both libraries.  Within one pass
    the held gradient does not move until the leaf's last contribution."""
    a = data((2, 3), dtype, seed=1)
    got, want = {}, {}
    for lib, out in ((tg, got), (torch, want)):
        x = leaf(lib, a)
        loss = (x * 3.0).sum() + (x * x).sum()
        loss.backward(retain_graph=True)
        held = x.grad
        out["first"] = snap(held)
        loss.backward()
        out["held"], out["now"] = snap(held), snap(x.grad)
    for k in want:
        close(got[k], want[k], dtype)


# ---- (b) a hook that keeps its argument ----------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_hook_on_a_leaf_used_three_times_keeps_its_argument(dtype):
    a = data((3, 4), dtype, seed=2)
    kept = {}
    for lib in (tg, torch):
        x = leaf(lib, a)
        k = kept[lib] = Keeper()
        x.register_hook(k)
        loss = (x * 3.0).sum() + (x * x).sum() + x.tanh().sum()
        loss.backward(retain_graph=True)
        assert len(k.tensors) == 1  # once, with the sum of the three contributions
        k.unchanged()
        grad1 = snap(x.grad)
        loss.backward()  # x.grad accumulates; the hook's first argument must not
        assert len(k.tensors) == 2
        k.unchanged()
        close(as_np(x.grad), 2 * grad1, dtype)
    for i in range(2):
        close(kept[tg].copies[i], kept[torch].copies[i], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hook_argument_passed_on_to_a_tensor_that_gets_more(dtype):
    """z = h + c: the add's VJP may hand z's gradient (the hook's argument)
    on to h unchanged, as h's first contribution; h's second contribution
    (from h * h, recorded before) arrives later and must not be added into
    the tensor the hook kept."""
    a, c = data((2, 3), dtype, seed=3), data((2, 3), dtype, seed=4)
    kept, grads = {}, {}
    for lib in (tg, torch):
        x, cc = leaf(lib, a), leaf(lib, c)
        h = x * 1.5
        h.retain_grad()
        hh = h * h  # recorded before z: runs after it in backward
        z = h + cc
        k = kept[lib] = Keeper()
        z.register_hook(k)
        kh = Keeper()
        h.register_hook(kh)
        (z * 2.0 + hh).sum().backward()
        k.unchanged()
        kh.unchanged()
        grads[lib] = [snap(h.grad), snap(x.grad), snap(cc.grad), kh.copies[0]]
    close(kept[tg].copies[0], kept[torch].copies[0], dtype)
    for g, w in zip(grads[tg], grads[torch]):
        close(g, w, dtype)


def test_hook_that_keeps_only_the_numpy_view():
    """The hook keeps the NumPy view of its argument, not the tensor: the
    memory behind the view must still not take the later contributions."""
    a = data((4,), np.float64, seed=5)
    views = []
    x = tg.tensor(a, requires_grad=True)
    h = x * 1.0
    hh = h * h
    z = h + 0.0

    def keep_view(g):
        views.append((g.numpy(), g.numpy().copy()))  # the tensor itself is dropped

    z.register_hook(keep_view)
    (z.sum() + hh.sum()).backward()
    v, c = views[0]
    np.testing.assert_array_equal(v, c)
    np.testing.assert_allclose(x.grad.numpy(), 1.0 + 2 * a, rtol=1e-15)


# ---- (c) the step-through engine -------------------------------------------------

def snapshot_record(rec):
    """What a step record shows, copied now, and the objects it shows."""
    shown = [rec.grad_out] + [x for ig in rec.inputs for x in (ig.grad, ig.before, ig.after)]
    return shown, [snap(x) for x in shown]


def step_through(loss):
    st = tg.inspect.BackwardStepper(loss)
    seen = []
    while not st.done:
        rec = st.step()
        seen.append(snapshot_record(rec))
        # everything shown so far is unchanged by this step's contributions
        for shown, copies in seen:
            for s, c in zip(shown, copies):
                if c is not None:
                    np.testing.assert_array_equal(s, c)
    return st


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_through_records_do_not_change_as_contributions_arrive(dtype):
    a = data((3, 4), dtype, seed=6)
    x = tg.tensor(a, requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    loss = (y * 3.0).sum() + (y * y).sum() + y.exp().sum() + (x * x).sum()
    st = step_through(loss)
    # the contributions the stepper lists for y and x add up to their gradients
    close(sum(c["grad"] for c in st.contributions(y)), y.grad.numpy(), dtype)
    close(sum(c["grad"] for c in st.contributions(x)), x.grad.numpy(), dtype)
    xt = leaf(torch, a)
    yt = xt * 2.0
    yt.retain_grad()
    ((yt * 3.0).sum() + (yt * yt).sum() + yt.exp().sum() + (xt * xt).sum()).backward()
    close(y.grad.numpy(), as_np(yt.grad), dtype)
    close(x.grad.numpy(), as_np(xt.grad), dtype)


# ---- a tensor sliced twice --------------------------------------------------------

def _rev_cols(a):  # a[::2, ::-1] (PyTorch has no negative step: flip)
    return a[::2].flip(1) if isinstance(a, torch.Tensor) else a[::2, ::-1]


SLICES = {
    "halves": lambda a: [a[:, :2], a[:, 2:]],
    "overlapping": lambda a: [a[:, :3], a[:, 1:]],
    "strided": lambda a: [_rev_cols(a), a[1:, 1::2], a[:, 2:]],
    "row_and_cols": lambda a: [a[0], a[:, :2], a[-1:, 2:]],
}


def sliced_program(lib, w, how, keep_a, keep_parts):
    """a = 1.5 w (an intermediate: retain_grad and a hook), used through
    several slices and once whole; a hook on every slice too."""
    a = w * 1.5
    a.retain_grad()
    a.register_hook(keep_a)
    parts = SLICES[how](a)
    loss = (a * 0.5).sum()
    for i, p in enumerate(parts):
        p.register_hook(keep_parts[i])
        loss = loss + ((p ** 2) * (i + 1.0)).sum()
    return a, loss


@pytest.mark.parametrize("how", sorted(SLICES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_sliced_twice_with_hook_and_retain_grad(how, dtype):
    wv = data((3, 4), dtype, seed=7)
    res = {}
    for lib in (tg, torch):
        w = leaf(lib, wv)
        ka, kp = Keeper(), [Keeper() for _ in range(3)]
        a, loss = sliced_program(lib, w, how, ka, kp)
        loss.backward(retain_graph=True)
        ka.unchanged()
        for k in kp:
            k.unchanged()
        first = snap(a.grad)
        held = a.grad
        loss.backward()  # a second pass: the first one's gradients stay as they were
        ka.unchanged()
        for k in kp:
            k.unchanged()
        np.testing.assert_array_equal(snap(held), first)
        res[lib] = ([first, snap(a.grad), snap(w.grad)] + ka.copies +
                    [c for k in kp for c in k.copies])
    assert len(res[tg]) == len(res[torch])
    for g, want in zip(res[tg], res[torch]):
        close(g, want, dtype)


@pytest.mark.parametrize("how", sorted(SLICES))
def test_leaf_sliced_twice_with_a_hook(how):
    """The same with a leaf: its hook runs once with the summed gradient
    of every slice, and keeps it unchanged through a second pass."""
    wv = data((3, 4), np.float64, seed=8)
    res = {}
    for lib in (tg, torch):
        a = leaf(lib, wv)
        k = Keeper()
        a.register_hook(k)
        loss = sum(((p ** 2) * (i + 1.0)).sum() for i, p in enumerate(SLICES[how](a)))
        loss.backward(retain_graph=True)
        loss.backward()
        k.unchanged()
        assert len(k.copies) == 2
        res[lib] = k.copies + [snap(a.grad)]
    for g, want in zip(res[tg], res[torch]):
        close(g, want, np.float64)


@pytest.mark.parametrize("how", sorted(SLICES))
def test_step_through_a_tensor_sliced_twice(how):
    """The step-through engine over the sliced program: every record stays as
    shown while the slices' contributions to a arrive, and the final
    gradients are PyTorch's."""
    wv = data((3, 4), np.float64, seed=9)
    w = tg.tensor(wv, requires_grad=True)
    ka, kp = Keeper(), [Keeper() for _ in range(3)]
    a, loss = sliced_program(tg, w, how, ka, kp)
    step_through(loss)
    ka.unchanged()
    wt = leaf(torch, wv)
    at, lt = sliced_program(torch, wt, how, Keeper(), [Keeper() for _ in range(3)])
    lt.backward()
    close(a.grad.numpy(), as_np(at.grad), np.float64)
    close(w.grad.numpy(), as_np(wt.grad), np.float64)


def test_grad_of_an_intermediate_used_twice_and_its_input():
    """tg.grad captures y's gradient (the running sum's owner is the result)
    and x's; both as torch.autograd.grad, and a hook on y keeps its argument."""
    a = data((2, 5), np.float64, seed=10)
    out = {}
    for lib in (tg, torch):
        x = leaf(lib, a)
        y = x.tanh()
        k = Keeper()
        y.register_hook(k)
        loss = (y[:, :3] * 2.0).sum() + (y * y).sum() + (y[:, 3:] ** 3).sum()
        grad = tg.grad if lib is tg else torch.autograd.grad
        gy, gx = grad(loss, [y, x])
        k.unchanged()
        out[lib] = [snap(gy), snap(gx)] + k.copies
    for g, want in zip(out[tg], out[torch]):
        close(g, want, np.float64)


# Session 8: the engine's two accumulators became one (tg_tensor_axpy_ takes
# any strides, threaded).  A leaf's .grad now takes a strided contribution (a
# transpose's gradient) in place, as PyTorch does, instead of being replaced
# by a new tensor; and a gradient the user holds from an earlier backward is
# still never written (the same buffer is kept only when nobody else sees it).
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (64, 48), (700, 300)])
def test_leaf_grad_takes_a_strided_gradient_in_place(dtype, shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    xv = rng.standard_normal(shape).astype(dtype)
    wv = rng.standard_normal(shape[::-1]).astype(dtype)
    x = tg.tensor(xv, requires_grad=True)
    w = tg.tensor(wv)
    (x.T * w).sum().backward()
    ptr = x.grad.numpy().__array_interface__["data"][0]
    np.testing.assert_array_equal(x.grad.numpy(), wv.T)
    (x.T * w).sum().backward()
    (x.T * (w * 3)).sum().backward()
    assert x.grad.numpy().__array_interface__["data"][0] == ptr  # in place
    np.testing.assert_array_equal(x.grad.numpy(), (wv.T + wv.T) + (wv * 3).T)
    held = x.grad
    held_copy = snap(held)
    x.grad = held  # the user holds it: the next contribution must not write it
    (x.T * w).sum().backward()
    if x.grad is not held:
        np.testing.assert_array_equal(held.numpy(), held_copy)
    np.testing.assert_array_equal(x.grad.numpy(), held_copy + wv.T)
    if torch is not None:
        tx = torch.tensor(xv, requires_grad=True)
        tw = torch.tensor(wv)
        for k in (1, 1, 3, 1):
            (tx.T * (tw * k)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


# Session 8: a leaf's first gradient was copied into .grad at every step
# (the step record held a second reference to it, so the engine could not
# tell it was private): for the CNN's fc1 weight 800 KB copied serially each
# step.  In a backward() whose steps nobody sees, the VJP's product is now
# .grad itself: the peak memory of the backward shows no second copy.  With
# the steps seen (the step-through stepper, a step hook) the copy stays, and
# what the stepper showed never changes afterwards.
def test_first_gradient_becomes_grad_without_a_copy():
    W = tg.randn(1024, 1024, requires_grad=True)  # 4 MB of float32
    x = tg.randn(1, 1024)
    tg.linear(x, W).sum().backward()
    want = W.grad.numpy().copy()
    W.grad = None
    live = tg.memory_stats()["live_bytes"]
    tg.reset_peak_memory()
    tg.linear(x, W).sum().backward()
    extra = tg.memory_stats()["peak_bytes"] - live
    assert extra < 4.5 * 2**20, extra  # dW once (4 MB), not dW and its copy (8 MB)
    np.testing.assert_array_equal(W.grad.numpy(), want)
    # driven step by step: the record's grad_in is seen, .grad is a copy of it
    W.grad = None
    st = tg.inspect.BackwardStepper(tg.linear(x, W).sum())
    shown = []
    while not st.done:
        rec = st.step()
        shown += [(g, snap(g)) for ig in rec.inputs for g in (ig.grad, ig.after) if g is not None]
    assert shown
    np.testing.assert_array_equal(W.grad.numpy(), want)
    with tg.no_grad():
        W.grad.add_(1.0)  # a later in-place change of .grad ...
    for g, copy in shown:  # ... never reaches what the stepper showed
        np.testing.assert_array_equal(snap(g), copy)
