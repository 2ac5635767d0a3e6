"""The direct route of a slice's gradient (issue 16): in a first-order
``backward()``/``tg.grad`` the engine lets a slice add its gradient straight
into the slice of its input's pending gradient, instead of a zero tensor of
the input's shape, a copy and an add of the whole thing (q, k, v of one qkv
projection).

Checked here: the same gradients as the reference route (every op's VJP,
``tg._C._set_direct_backward(False)``) for every kind of slice, split,
chunk and unbind, leaves and non-leaves, float32 and float64; no gradient
that someone else holds (a hook's argument, ``retain_grad``, the
step-through, ``tg.grad``'s results, a second backward) is ever written in
place; the routes that must not take it (create_graph, a VJP override,
anomaly mode's step hook, the step-through) still see whole gradients; and
the gradients against PyTorch and finite differences."""
import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck


@contextlib.contextmanager
def route(direct):
    prev = tg._C._set_direct_backward(direct)
    try:
        yield
    finally:
        tg._C._set_direct_backward(prev)


def test_the_switch_reports_and_restores_its_setting():
    assert tg._C._set_direct_backward(False) is True  # on by default
    assert tg._C._set_direct_backward(True) is False
    with pytest.raises(TypeError):
        tg._C._set_direct_backward()


def _leaf(rng, shape, dtype=np.float32):
    x = tg.from_numpy(rng.normal(size=shape).astype(dtype))
    x.requires_grad = True
    return x


# Each case: the input's shape and a function of it returning the tensors
# whose gradients are seeded (slices of all kinds, and other uses of the
# input before and after the slices on the tape).
CASES = {
    "qkv-slices": ((2, 5, 12), lambda h: [h[:, :, i * 4:(i + 1) * 4] for i in range(3)]),
    "qkv-split": ((2, 5, 12), lambda h: list(h.split(4, dim=2))),
    "split-sizes": ((3, 10), lambda h: list(h.split([2, 5, 3], dim=1))),
    "chunk-first-axis": ((7, 3), lambda h: list(h.chunk(3, 0))),
    "unbind": ((4, 3), lambda h: list(h.unbind(0))),
    "overlapping": ((4, 6), lambda h: [h[:, :4], h[:, 2:], h[1:3]]),
    "steps-and-reversed": ((6, 5), lambda h: [h[::2], h[1::2, ::-1], h[::-3, 1:4]]),
    "two-axes": ((5, 6), lambda h: [h[1:4, 2:5], h[:2, :3]]),
    "integer-index": ((3, 4, 5), lambda h: [h[:, 1], h[2, :, 1:3], h[0]]),
    "with-other-uses": ((4, 6), lambda h: [h.tanh(), h[:, :3], h * 2, h[:, 3:], h.exp()]),
    "slice-of-slice": ((6, 8), lambda h: [h[1:5][:, 2:6], h[:, :4]]),
    "empty": ((3, 4), lambda h: [h[:, :0], h[:, 1:3]]),
    # chains of views: the gradient goes through reshape/permute into the slice
    "heads": ((2, 5, 12), lambda h: [t.reshape(2, 5, 2, 2).permute(0, 2, 1, 3) for t in h.split(4, dim=2)]),
    "heads-k-transposed": ((2, 5, 12), lambda h: [t.reshape(2, 5, 2, 2).permute(0, 2, 3, 1) if i == 1 else
                                                  t.reshape(2, 5, 2, 2).permute(0, 2, 1, 3)
                                                  for i, t in enumerate(h.split(4, dim=2))]),
    "reshape-not-a-view": ((4, 6), lambda h: [h.T.reshape(24), h[:, 1:5].reshape(2, 8), h.reshape(6, 4)]),
    "permute-reshape": ((3, 4, 5), lambda h: [h.permute(2, 0, 1).reshape(5, 12), h[1:].permute(1, 2, 0),
                                              h.reshape(12, 5)[2:7]]),
    "views-of-a-leaf-twice": ((6, 4), lambda h: [h.reshape(3, 8), h.reshape(3, 8)[1:], h.T[1:3].reshape(12)]),
}


def _grads(case, dtype, leaf, via_grad, direct, seed=0):
    shape, fn = CASES[case]
    rng = np.random.default_rng(seed)
    x = _leaf(rng, shape, dtype)
    h = x if leaf else x * 1.5
    outs = fn(h)
    seeds = [tg.from_numpy(rng.normal(size=tuple(o.shape)).astype(dtype)) for o in outs]
    with route(direct):
        if via_grad:
            return tg.grad(outs, [x], seeds)[0].numpy()
        loss = sum(((o * s).sum() for o, s in zip(outs, seeds)), tg.tensor(0.0, dtype=x.dtype))
        loss.backward()
    return x.grad.numpy()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("leaf", [False, True], ids=["non-leaf", "leaf"])
@pytest.mark.parametrize("via_grad", [False, True], ids=["backward", "grad"])
def test_direct_route_gives_the_reference_gradients(case, dtype, leaf, via_grad):
    got = _grads(case, dtype, leaf, via_grad, direct=True)
    want = _grads(case, dtype, leaf, via_grad, direct=False)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_split_gradient_is_the_seeds_side_by_side():
    """q, k, v = qkv.split(C, dim=2), reshaped to heads and permuted as a GPT
    does: the gradient of qkv is the three seeds, moved back, exactly."""
    rng = np.random.default_rng(3)
    B, T, H, hs = 2, 7, 2, 3
    C = H * hs
    x = _leaf(rng, (B, T, 3 * C))
    qkv = x * 1.0
    outs = [t.reshape(B, T, H, hs).permute(0, 2, 1, 3) for t in qkv.split(C, dim=2)]
    seeds = [rng.normal(size=(B, H, T, hs)).astype(np.float32) for _ in range(3)]
    (g,) = tg.grad(outs, [x], [tg.from_numpy(s) for s in seeds])
    want = np.concatenate([s.transpose(0, 2, 1, 3).reshape(B, T, C) for s in seeds], axis=-1)
    np.testing.assert_array_equal(g.numpy(), want)


# ---------------------------------------------------------------------------
# no gradient that someone else holds is written in place
# ---------------------------------------------------------------------------

def test_a_hook_that_keeps_its_argument_sees_it_unchanged():
    """y = h + 0 runs first (newest entry) and hands its gradient on to h:
    the hook holds that tensor, so the slices after it must not add into it."""
    rng = np.random.default_rng(4)
    x = _leaf(rng, (4, 6), np.float64)
    h = x * 1.0
    a, b = h[:, :3], h[:, 3:]
    y = h + 0.0
    kept = []
    y.register_hook(lambda g: kept.append((g, g.numpy().copy())))
    loss = (a * 2).sum() + (b * 3).sum() + (y * y).sum()
    loss.backward()
    (g, snap), = kept
    np.testing.assert_array_equal(g.numpy(), snap)
    np.testing.assert_array_equal(snap, 2 * x.detach().numpy())
    want = 2 * x.detach().numpy() + np.concatenate([np.full((4, 3), 2.0), np.full((4, 3), 3.0)], 1)
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_a_hook_on_the_sliced_tensor_gets_the_whole_gradient_and_keeps_it():
    rng = np.random.default_rng(5)
    x = _leaf(rng, (3, 8), np.float64)
    h = x * 1.0
    kept = []
    h.register_hook(lambda g: kept.append((g, g.numpy().copy())))
    loss = sum((t * (i + 1)).sum() for i, t in enumerate(h.split(2, dim=1)))
    loss.backward(retain_graph=True)
    loss.backward()  # a second pass: new sums, the first one's untouched
    assert len(kept) == 2
    want = np.repeat(np.arange(1.0, 5.0), 2)[None, :].repeat(3, 0)
    for g, snap in kept:
        np.testing.assert_array_equal(snap, want)
        np.testing.assert_array_equal(g.numpy(), snap)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * want)


def test_retain_grad_on_the_sliced_tensor_and_on_the_slices():
    rng = np.random.default_rng(6)
    x = _leaf(rng, (2, 9))
    h = x * 1.0
    h.retain_grad()
    q, k, v = h.chunk(3, 1)
    k.retain_grad()
    loss = (q * 1).sum() + (k * 2).sum() + (v * 3).sum()
    loss.backward(retain_graph=True)
    want = np.repeat([1.0, 2.0, 3.0], 3)[None, :].repeat(2, 0).astype(np.float32)
    np.testing.assert_array_equal(h.grad.numpy(), want)
    np.testing.assert_array_equal(k.grad.numpy(), np.full((2, 3), 2.0, np.float32))
    held_h, held_k = h.grad.numpy().copy(), k.grad.numpy().copy()
    first_h = h.grad
    loss.backward()
    np.testing.assert_array_equal(h.grad.numpy(), 2 * held_h)
    np.testing.assert_array_equal(k.grad.numpy(), 2 * held_k)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * want)
    del first_h


def test_a_leaf_hook_that_keeps_its_argument_across_two_backwards():
    rng = np.random.default_rng(7)
    x = _leaf(rng, (4, 4), np.float64)
    kept = []
    x.register_hook(lambda g: kept.append((g, g.numpy().copy())))
    for _ in range(2):
        a, b = x[:2], x[1:]
        ((a * 2).sum() + (b * 5).sum()).backward()
    want = np.array([[2.0] * 4, [7.0] * 4, [5.0] * 4, [5.0] * 4])
    assert len(kept) == 2
    for g, snap in kept:
        np.testing.assert_array_equal(snap, want)
        np.testing.assert_array_equal(g.numpy(), snap)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * want)


def test_grad_results_and_an_existing_grad_are_not_aliased():
    """tg.grad of the sliced tensor itself (a captured gradient), then
    backward into a .grad that already holds a value."""
    rng = np.random.default_rng(8)
    x = _leaf(rng, (3, 6), np.float64)
    h = x * 1.0
    parts = h.split(2, dim=1)
    loss = sum((p * (i + 1)).sum() for i, p in enumerate(parts))
    gh, gx = tg.grad(loss, [h, x], retain_graph=True)
    snap_h, snap_x = gh.numpy().copy(), gx.numpy().copy()
    want = np.repeat([1.0, 2.0, 3.0], 2)[None, :].repeat(3, 0)
    np.testing.assert_array_equal(snap_h, want)
    np.testing.assert_array_equal(snap_x, 1.5 * want / 1.5)
    x.grad = tg.from_numpy(np.ones((3, 6)))
    loss.backward()
    np.testing.assert_array_equal(gh.numpy(), snap_h)
    np.testing.assert_array_equal(gx.numpy(), snap_x)
    np.testing.assert_array_equal(x.grad.numpy(), 1 + want)


def test_a_gradient_shared_by_two_inputs_is_copied_not_written():
    """add hands the same gradient tensor to both of its inputs: h's pending
    sum is then u's too (u's entry runs after the slice), and the slice must
    leave u's alone."""
    rng = np.random.default_rng(9)
    x = _leaf(rng, (4, 4), np.float64)
    w = _leaf(rng, (4, 4), np.float64)
    u = w * 1.0  # older than the slice: its entry runs after it
    h = x * 1.0
    a = h[:, :2]
    y = h + u  # newer than the slice: its VJP runs first
    loss = (a * 3).sum() + (y * 2).sum()
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((4, 4), 2.0))
    want = np.full((4, 4), 2.0)
    want[:, :2] += 3
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_a_hook_on_a_tensor_inside_a_chain_of_views_still_runs():
    """q = qkv[..., :C] (hooked: its gradient times 10) seen as heads: the
    chain must stop at q, whose gradient the hook sees whole and replaces."""
    rng = np.random.default_rng(18)
    x = _leaf(rng, (2, 3, 12), np.float64)
    h = x * 1.0
    q, k, v = h.split(4, dim=2)
    seen = []

    def hook(g):
        seen.append(g.numpy().copy())
        return g * 10
    q.register_hook(hook)
    k.retain_grad()
    heads = [t.reshape(2, 3, 2, 2).permute(0, 2, 1, 3) for t in (q, k, v)]
    seeds = [rng.normal(size=(2, 2, 3, 2)) for _ in range(3)]
    loss = sum((t * tg.from_numpy(s)).sum() for t, s in zip(heads, seeds))
    loss.backward()
    back = [s.transpose(0, 2, 1, 3).reshape(2, 3, 4) for s in seeds]
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], back[0])
    np.testing.assert_array_equal(k.grad.numpy(), back[1])
    np.testing.assert_array_equal(x.grad.numpy(), np.concatenate([10 * back[0], back[1], back[2]], -1))


def test_grad_of_a_tensor_inside_a_chain_is_captured():
    rng = np.random.default_rng(19)
    x = _leaf(rng, (2, 3, 12), np.float64)
    h = x * 1.0
    q, k, v = h.split(4, dim=2)
    heads = [t.reshape(2, 3, 2, 2).permute(0, 2, 1, 3) for t in (q, k, v)]
    seeds = [tg.from_numpy(rng.normal(size=(2, 2, 3, 2))) for _ in range(3)]
    gq, gh = tg.grad(heads, [q, h], seeds)
    back = [s.numpy().transpose(0, 2, 1, 3).reshape(2, 3, 4) for s in seeds]
    np.testing.assert_array_equal(gq.numpy(), back[0])
    np.testing.assert_array_equal(gh.numpy(), np.concatenate(back, -1))


def test_a_chain_that_is_no_view_after_an_earlier_error():
    """h[:, 1:5].reshape(2, 8) cannot see h's gradient as a view (the
    reshape needs a copy), so that chain takes the ordinary route -- also
    when an earlier call left an error behind (the engine read that stale
    error as the view's failure; found by the property test below)."""
    y = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    with tg.detect_anomaly():  # a backward that fails inside a step hook leaves its error set
        with pytest.raises(tg.inspect.AnomalyError):
            tg.grad([y * 1.0], [y], [tg.tensor([np.nan, 1.0], dtype=tg.float64)])
    rng = np.random.default_rng(20)
    x = _leaf(rng, (4, 6), np.float64)
    h = x * 1.0
    a = h[:, 1:5].reshape(2, 8)
    b = h * 2  # newer: h's sum exists when a's chain runs
    seed = rng.normal(size=(2, 8))
    (g,) = tg.grad([a, b], [x], [tg.from_numpy(seed), tg.ones(4, 6, dtype=tg.float64)])
    want = np.full((4, 6), 2.0)
    want[:, 1:5] += seed.reshape(4, 4)
    np.testing.assert_array_equal(g.numpy(), want)


# ---------------------------------------------------------------------------
# where the direct route must not run
# ---------------------------------------------------------------------------

def _qkv_model(rng, dtype=np.float64):
    x = _leaf(rng, (2, 3, 9), dtype)
    h = x * 1.0
    q, k, v = h.split(3, dim=2)
    loss = ((q * k).sum(-1, keepdims=True) * v).sum() + (h * h).sum()
    return x, h, loss


def test_the_step_through_shows_whole_gradients_and_pending_sums():
    """The stepping engine runs every VJP: a slice's step shows its
    gradient of the input's shape, the pending sum of h after each slice step
    is the sum of what the step-through showed so far, and the arrays shown
    keep their values; at the end .grad is backward()'s."""
    rng = np.random.default_rng(10)
    x, h, loss = _qkv_model(rng)
    shown, slices = [], 0
    st = tg.inspect.BackwardStepper(loss)
    for rec in st:
        for ig in rec.inputs:
            if ig.grad_tensor is not None:
                shown.append((ig.grad, ig.grad.copy()))
        if rec.op == "slice":
            slices += 1
            (ig,) = rec.inputs
            assert ig.grad is not None and ig.grad.shape == (2, 3, 9)
            assert ig.after is not None
            np.testing.assert_array_equal(ig.after, ig.grad if ig.before is None else ig.before + ig.grad)
    assert slices == 3
    for arr, snap in shown:
        np.testing.assert_array_equal(arr, snap)
    stepped = x.grad.numpy().copy()
    x.grad = None
    rng = np.random.default_rng(10)
    x2, _, loss2 = _qkv_model(rng)
    loss2.backward()
    np.testing.assert_array_equal(stepped, x2.grad.numpy())


def test_the_profiler_times_the_direct_route_and_gets_the_same_gradients():
    rng = np.random.default_rng(11)
    x, h, loss = _qkv_model(rng)
    st = tg._C._Stepper(loss, None, direct=True)
    ops, gin = [], []
    while (rec := st.step()) is not None:
        ops.append(rec["entry"].op)
        if rec["entry"].op == "slice":
            gin.append(rec["grad_in"][0])
    st.end()
    assert ops.count("slice") == 3
    # the first slice creates h's pending sum, the others add into it
    assert gin.count(None) == 3
    got = x.grad.numpy().copy()
    rng = np.random.default_rng(11)
    x2, _, loss2 = _qkv_model(rng)
    with route(False):
        loss2.backward()
    np.testing.assert_array_equal(got, x2.grad.numpy())
    rep = tg.inspect.profile(lambda: _qkv_model(np.random.default_rng(11))[2])
    assert sum(r["op"] == "slice" for r in rep.rows) == 3
    assert all(r["bwd_ms"] is not None for r in rep.rows if r["op"] == "slice")


def test_anomaly_mode_sees_every_slice_gradient():
    """detect_anomaly's step hook reads each step's input gradients: with
    it on, slices take the ordinary route, so a NaN seeded into one slice's
    gradient is reported at that slice's step (the direct route would show
    no input gradient there)."""
    rng = np.random.default_rng(12)
    x = _leaf(rng, (3, 6), np.float64)
    h = x * 1.0
    a, b = h[:, :3], h[:, 3:]
    seed = np.ones((3, 3))
    seed[1, 1] = np.nan
    with tg.detect_anomaly():
        with pytest.raises(tg.inspect.AnomalyError, match=r"\(slice\)"):
            tg.grad([a, b], [x], [tg.ones(3, 3, dtype=tg.float64), tg.from_numpy(seed)])


def test_a_vjp_override_of_slice_is_still_called():
    calls = []

    def vjp(entry, g):
        calls.append(tuple(g.shape))
        (x,) = entry.inputs
        full = tg.zeros(*x.shape, dtype=x.dtype)
        return (full + 7.0,)  # a deliberately different gradient
    rng = np.random.default_rng(13)
    x = _leaf(rng, (2, 6), np.float64)
    h = x * 1.0
    with tg.override_vjp("slice", vjp):
        loss = sum(p.sum() for p in h.split(3, dim=1))
        loss.backward()
    assert calls == [(2, 3), (2, 3)]
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 6), 14.0))


def test_create_graph_records_the_slices_and_second_derivatives_work():
    rng = np.random.default_rng(14)
    x = _leaf(rng, (2, 6), np.float64)

    def f(x):
        h = x * x
        a, b, c = h.split(2, dim=1)
        return (a * b * c).sum() + (h[:, 1:5] ** 2).sum()
    (g,) = tg.grad(f(x), [x], create_graph=True)
    assert g.requires_grad
    (gg,) = tg.grad(g.sum(), [x])
    assert gradgradcheck(f, [x])
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x.detach().numpy().copy()).requires_grad_(True)
    ht = xt * xt
    at, bt, ct = ht.split(2, dim=1)
    ft = (at * bt * ct).sum() + (ht[:, 1:5] ** 2).sum()
    (gt,) = torch.autograd.grad(ft, [xt], create_graph=True)
    (ggt,) = torch.autograd.grad(gt.sum(), [xt])
    np.testing.assert_allclose(g.detach().numpy(), gt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gg.numpy(), ggt.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# against finite differences and PyTorch
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["qkv-split", "overlapping", "steps-and-reversed", "integer-index",
                                  "with-other-uses", "unbind"])
def test_gradcheck_through_slices(case):
    shape, fn = CASES[case]
    rng = np.random.default_rng(15)
    x = _leaf(rng, shape, np.float64)
    ws = None

    def f(x):
        nonlocal ws
        outs = fn(x * 1.0)
        if ws is None:
            ws = [tg.from_numpy(rng.normal(size=tuple(o.shape))) for o in outs]
        return sum(((o * w) ** 2).sum() for o, w in zip(outs, ws))
    assert gradcheck(f, [x])


def test_gpt_attention_input_gradient_matches_torch():
    """The GPT's qkv projection, split into heads and through causal
    attention: the input and weight gradients agree with PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    B, T, C, H = 2, 6, 8, 2
    xs = rng.normal(size=(B, T, C)).astype(np.float32)
    ws = (rng.normal(size=(C, 3 * C)) * 0.3).astype(np.float32)
    x, w = tg.from_numpy(xs.copy()), tg.from_numpy(ws.copy())
    x.requires_grad = True
    w.requires_grad = True
    xt = torch.from_numpy(xs.copy()).requires_grad_(True)
    wt = torch.from_numpy(ws.copy()).requires_grad_(True)

    def heads(t, mod):
        return [p.reshape(B, T, H, C // H).permute(0, 2, 1, 3) if mod is tg else
                p.reshape(B, T, H, C // H).transpose(1, 2) for p in t.split(C, dim=2)]
    q, k, v = heads(x @ w, tg)
    y = tg.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    (y * y).sum().backward()
    qt, kt, vt = heads(xt @ wt, torch)
    yt = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    (yt * yt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=2e-4, atol=2e-5)


def test_bitwise_on_one_and_two_threads():
    before = tg.get_num_threads()
    try:
        got = []
        for n in (1, 2):
            tg.set_num_threads(n)
            rng = np.random.default_rng(17)
            x = _leaf(rng, (16, 64, 384))
            h = x * 1.0
            seeds = [tg.from_numpy(rng.normal(size=(16, 64, 128)).astype(np.float32)) for _ in range(3)]
            got.append(tg.grad(list(h.split(128, dim=2)), [x], seeds)[0].numpy())
        np.testing.assert_array_equal(got[0], got[1])
    finally:
        tg.set_num_threads(before)


# ---------------------------------------------------------------------------
# property: any chains of views, direct route == reference route, bitwise
# ---------------------------------------------------------------------------


def _view_step(rng, t):
    """One random view of t: a slice (any start, stop, step; or an integer
    index), a reshape (flatten, reversed sizes, first two merged) or a
    permutation."""
    if t.ndim == 0:
        return t.reshape(1)
    kind = ["slice", "index", "reshape", "permute"][int(rng.integers(4))]
    if kind == "slice":
        ax = int(rng.integers(t.ndim))
        n = t.shape[ax]
        start, stop = (int(v) for v in rng.integers(-n - 1, n + 2, size=2))
        step = [1, 1, 2, 3, -1, -2][int(rng.integers(6))]
        key = tuple(slice(None) if d != ax else slice(start, stop, step) for d in range(t.ndim))
        return t[key]
    if kind == "index" and t.shape[0] > 0:
        return t[int(rng.integers(-t.shape[0], t.shape[0]))]
    if kind in ("index", "reshape"):
        how = int(rng.integers(3))
        if how == 0 or t.ndim < 2:
            return t.reshape(-1)
        if how == 1:
            return t.reshape(*tuple(t.shape)[::-1])
        return t.reshape(t.shape[0] * t.shape[1], *tuple(t.shape)[2:])
    return t.permute(*[int(a) for a in rng.permutation(t.ndim)])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]), leaf=st.booleans(),
       plans=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**16)), min_size=1, max_size=4),
       other=st.sampled_from([None, "tanh", "mul"]))
def test_property_chains_of_views_match_the_reference_route(shape, dtype, leaf, plans, other):
    """Uses of one tensor through random chains of slices, indexes, reshapes
    and permutations (each chain built from its own seed, so both routes see
    the same graph), with or without another use: the direct route's
    gradient has the reference route's bits."""
    def run(direct):
        rng = np.random.default_rng(0)
        x = tg.from_numpy(rng.normal(size=tuple(shape)).astype(dtype))
        x.requires_grad = True
        h = x if leaf else x * 1.5
        outs = []
        for depth, seed in plans:
            t, sub = h, np.random.default_rng(seed)
            for _ in range(depth):
                t = _view_step(sub, t)
            outs.append(t)
        if other == "tanh":
            outs.append(h.tanh())
        elif other == "mul":
            outs.append(h * h)
        seeds = [tg.from_numpy(rng.normal(size=tuple(o.shape)).astype(dtype)) for o in outs]
        with route(direct):
            return tg.grad(outs, [x], seeds)[0].numpy()
    np.testing.assert_array_equal(run(True), run(False))
