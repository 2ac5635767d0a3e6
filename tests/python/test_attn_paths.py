"""The fused paths of a transformer step (issue 16): layer_norm's one-pass
forward and fused first-order backward, the vectorised softmax and the
masked softmax under scaled_dot_product_attention, and the slice backward.

Each fast path is checked against PyTorch (float32), against finite
differences and second order (float64, where the VJP written with ops runs),
against the op-composed reference path, on non-contiguous inputs, and for
bitwise-identical results on one and two threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
F = tg.nn.functional


@pytest.fixture
def threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


def _pair(a, grad=True):
    g, t = tg.from_numpy(a.copy()), torch.from_numpy(a.copy())
    if grad:
        g.requires_grad = True
        t.requires_grad_(True)
    return g, t


def _close(got, want, tol):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------
# layer_norm
# ---------------------------------------------------------------------------

# (input shape, normalized shape, weight?, bias?, transpose the input first?)
LN_CASES = [
    ((16, 64, 128), (128,), True, True, False),
    ((5, 7), (7,), False, False, False),
    ((3, 9), (9,), True, False, False),
    ((3, 9), (9,), False, True, False),
    ((2, 3, 4, 5), (4, 5), True, True, False),
    ((6, 13), (6,), True, True, True),        # a transposed (strided) input
    ((4, 1000), (1000,), True, True, False),  # rows longer than one chunk of partial sums
    ((3, 5), (5,), True, True, False),        # rows shorter than one vector of lanes
]


@pytest.mark.parametrize("shape,nshape,has_w,has_b,transpose", LN_CASES)
def test_layer_norm_matches_torch_float32(shape, nshape, has_w, has_b, transpose):
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.normal(size=shape).astype(np.float32) * 3 + 0.5
    xg, xt = _pair(x)
    xin_g = xg.swapaxes(0, 1) if transpose else xg
    xin_t = xt.transpose(0, 1) if transpose else xt
    w = rng.normal(size=nshape).astype(np.float32) if has_w else None
    b = rng.normal(size=nshape).astype(np.float32) if has_b else None
    wg, wt = _pair(w) if has_w else (None, None)
    bg, bt = _pair(b) if has_b else (None, None)
    yg = F.layer_norm(xin_g, nshape, wg, bg, 1e-5)
    yt = TF.layer_norm(xin_t, nshape, wt, bt, 1e-5)
    _close(yg.numpy(), yt.detach().numpy(), 2e-5)
    seed = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    # an upstream gradient that is itself strided
    gg = tg.from_numpy(np.ascontiguousarray(seed.swapaxes(0, -1))).swapaxes(0, -1)
    yg.backward(gg)
    yt.backward(torch.from_numpy(seed))
    _close(xg.grad.numpy(), xt.grad.numpy(), 1e-4)
    rows = np.prod(shape) / np.prod(nshape)  # dw, db sum over the rows
    for g, t in [(wg, wt), (bg, bt)]:
        if g is not None:
            _close(g.grad.numpy(), t.grad.numpy(), 1e-5 * rows)


@pytest.mark.parametrize("shape,nshape,has_w,has_b,transpose", LN_CASES)
def test_layer_norm_input_gradient_with_constant_weight(shape, nshape, has_w, has_b, transpose):
    rng = np.random.default_rng(7 + shape[-1])
    x = rng.normal(size=shape).astype(np.float32) * 2 - 1
    xg, xt = _pair(x)
    xin_g = xg.swapaxes(0, 1) if transpose else xg
    xin_t = xt.transpose(0, 1) if transpose else xt
    w = rng.normal(size=nshape).astype(np.float32) if has_w else None
    wg = tg.from_numpy(w) if has_w else None
    wt = torch.from_numpy(w) if has_w else None
    b = rng.normal(size=nshape).astype(np.float32) if has_b else None
    bg = tg.from_numpy(b) if has_b else None
    bt = torch.from_numpy(b) if has_b else None
    yg = F.layer_norm(xin_g, nshape, wg, bg, 1e-5)
    yt = TF.layer_norm(xin_t, nshape, wt, bt, 1e-5)
    seed = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    yg.backward(tg.from_numpy(seed))
    yt.backward(torch.from_numpy(seed))
    _close(xg.grad.numpy(), xt.grad.numpy(), 1e-4)


def test_layer_norm_large_mean_is_accurate():
    """The one-pass forward sums deviations from a value of the row: a mean
    far from zero against a small spread keeps float32 accuracy."""
    rng = np.random.default_rng(3)
    x = (1000 + rng.normal(size=(64, 256)) * 0.01).astype(np.float32)
    got = F.layer_norm(tg.from_numpy(x), (256,), eps=1e-5).numpy()
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    # float32 rounds the mean at ulp(1000) / 2 = 3e-5, 0.3 % of the spread
    # (PyTorch's float32 layer_norm is off by 1 % here)
    assert np.abs(got - ref).max() < 4e-3
    want = TF.layer_norm(torch.from_numpy(x), (256,), eps=1e-5).numpy()
    assert np.abs(got - ref).max() <= np.abs(want - ref).max()


def _ln_all_grads(x, w, b, seed, create_graph):
    xs = [t.detach() for t in (x, w, b)]
    for t in xs:
        t.requires_grad = True
    y = F.layer_norm(xs[0], tuple(w.shape), xs[1], xs[2], 1e-5)
    return [g.numpy() for g in tg.grad(y, xs, seed, create_graph=create_graph)]


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5), (40, 33)])
def test_layer_norm_fused_backward_equals_the_ops_path(shape):
    """The first-order backward runs the fused kernel; create_graph runs the
    VJP written with ops.  Both give the same gradients (float64)."""
    rng = np.random.default_rng(11)
    x = tg.from_numpy(rng.normal(size=shape))
    w = tg.from_numpy(rng.normal(size=shape[-1:]))
    b = tg.from_numpy(rng.normal(size=shape[-1:]))
    seed = tg.from_numpy(rng.normal(size=shape))
    fused = _ln_all_grads(x, w, b, seed, False)
    ops = _ln_all_grads(x, w, b, seed, True)
    for a, c in zip(fused, ops):
        _close(a, c, 1e-12)


@pytest.mark.parametrize("has_w,has_b", [(True, True), (False, False), (True, False), (False, True)])
def test_layer_norm_gradcheck_and_gradgradcheck(has_w, has_b):
    rng = np.random.default_rng(5)
    x = tg.from_numpy(rng.normal(size=(3, 2, 5)))
    ins = [x]
    if has_w:
        ins.append(tg.from_numpy(rng.normal(size=(5,))))
    if has_b:
        ins.append(tg.from_numpy(rng.normal(size=(5,))))
    for t in ins:
        t.requires_grad = True

    def f(x, *wb):
        it = iter(wb)
        w = next(it) if has_w else None
        b = next(it) if has_b else None
        return F.layer_norm(x, (5,), w, b, 1e-5)
    assert gradcheck(f, ins)
    assert gradgradcheck(f, ins)


def test_layer_norm_is_bitwise_the_same_on_one_and_two_threads(threads):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3000, 96)).astype(np.float32)
    w = rng.normal(size=96).astype(np.float32)
    b = rng.normal(size=96).astype(np.float32)
    seed = tg.from_numpy(rng.normal(size=x.shape).astype(np.float32))

    def run(n):
        tg.set_num_threads(n)
        xs = [tg.from_numpy(a.copy()) for a in (x, w, b)]
        for t in xs:
            t.requires_grad = True
        y = F.layer_norm(xs[0], (96,), xs[1], xs[2], 1e-5)
        y.backward(seed)
        return [y.numpy()] + [t.grad.numpy() for t in xs]
    one, two = run(1), run(2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------
# softmax (the row kernel) and masked_softmax (attention's weights)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape,transpose", [((16, 4, 64, 64), False), ((7, 13), False), ((5, 3), False),
                                             ((9, 6), True), ((2, 1000), False), ((4, 0), False)])
def test_softmax_last_axis_matches_torch(shape, transpose):
    rng = np.random.default_rng(shape[-1])
    x = (rng.normal(size=shape) * 4).astype(np.float32)
    xg, xt = _pair(x)
    ig = xg.swapaxes(0, 1) if transpose else xg
    it = xt.transpose(0, 1) if transpose else xt
    yg, yt = tg.softmax(ig, -1), torch.softmax(it, -1)
    _close(yg.numpy(), yt.detach().numpy(), 1e-6)
    seed = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    gg = tg.from_numpy(np.ascontiguousarray(seed.swapaxes(0, -1))).swapaxes(0, -1)  # strided
    yg.backward(gg)
    yt.backward(torch.from_numpy(seed))
    _close(xg.grad.numpy(), xt.grad.numpy(), 1e-6)


def test_softmax_special_values_match_torch():
    inf, nan = np.inf, np.nan
    rows = np.array([[inf, 1, 2], [-inf, -inf, -inf], [nan, 1, 2], [-inf, 0, 1], [1e30, -1e30, 0],
                     [-200, -201, -230]], np.float32)
    got = tg.softmax(tg.from_numpy(rows), -1).numpy()
    want = torch.softmax(torch.from_numpy(rows), -1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # NaNs at the same places


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_layer_norm_special_values_match_torch(dt):
    """A row holding inf or NaN is NaN throughout, as in PyTorch (the one-pass
    kernel once clamped the row's NaN variance to 0: [-0, -inf] gave [inf, nan];
    found by the Hypothesis machine, test_fuzz_api.py's layer_norm rule)."""
    inf, nan = np.inf, np.nan
    rows = np.array([[-0.0, -inf], [1, inf], [inf, inf], [nan, 1], [-inf, -inf], [1e30, -1e30],
                     [3, 3], [0, 0]], dt)
    w = np.array([2.0, -1.0], dt)
    b = np.array([0.5, 0.25], dt)
    for args in [(None, None), (w, b)]:
        tw, tb = (None, None) if args[0] is None else (tg.from_numpy(args[0]), tg.from_numpy(args[1]))
        qw, qb = (None, None) if args[0] is None else (torch.from_numpy(args[0]), torch.from_numpy(args[1]))
        got = tg.nn.functional.layer_norm(tg.from_numpy(rows), (2,), tw, tb, 1e-5).numpy()
        want = torch.nn.functional.layer_norm(torch.from_numpy(rows), (2,), qw, qb, 1e-5).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # NaNs at the same places


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_fused_backward_equals_the_ops_path(axis):
    rng = np.random.default_rng(4)
    x = tg.from_numpy(rng.normal(size=(3, 4, 5)))
    x.requires_grad = True
    seed = tg.from_numpy(rng.normal(size=(3, 4, 5)))
    (fused,) = tg.grad(tg.softmax(x, axis), x, seed)
    (ops,) = tg.grad(tg.softmax(x, axis), x, seed, create_graph=True)
    _close(fused.numpy(), ops.numpy(), 1e-14)


def test_softmax_gradcheck_and_gradgradcheck():
    x = tg.from_numpy(np.random.default_rng(6).normal(size=(3, 7)))
    x.requires_grad = True
    assert gradcheck(lambda x: tg.softmax(x, -1), [x])
    assert gradgradcheck(lambda x: tg.softmax(x, -1), [x])


def _sdpa_pair(shapes, np_dt=np.float32, seed=0, permuted=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.normal(size=s).astype(np_dt)
        if permuted:  # stored (B, L, H, E) and viewed (B, H, L, E), as a GPT's heads
            a = np.ascontiguousarray(a.swapaxes(1, 2))
        lg, lt = _pair(a)
        g, t = (lg.permute(0, 2, 1, 3), lt.permute(0, 2, 1, 3)) if permuted else (lg, lt)
        out.append((g, t, lg, lt))
    return out


MASK_KINDS = ["causal", "bool", "int", "float", "bool-broadcast", "bool-empty-row", "none"]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("L,S", [(6, 6), (4, 7), (7, 4)])
def test_sdpa_masks_match_torch(kind, L, S):
    rng = np.random.default_rng(L * 10 + S)
    shapes = [(2, 3, L, 8), (2, 3, S, 8), (2, 3, S, 5)]
    ins = _sdpa_pair(shapes, seed=L + S, permuted=True)
    (qg, qt, _, _), (kg, kt, _, _), (vg, vt, _, _) = ins
    kw_g, kw_t = {}, {}
    keep = rng.uniform(size=(L, S)) > 0.4
    if kind == "causal":
        kw_g["is_causal"] = kw_t["is_causal"] = True
    elif kind in ("bool", "bool-empty-row"):
        if kind == "bool-empty-row":
            keep[1] = False  # a query that sees nothing: 0, as torch's attention
        kw_g["attn_mask"], kw_t["attn_mask"] = tg.from_numpy(keep), torch.from_numpy(keep)
    elif kind == "int":
        kw_g["attn_mask"], kw_t["attn_mask"] = tg.from_numpy(keep.astype(np.int64) * 5), torch.from_numpy(keep)
    elif kind == "float":
        m = rng.normal(size=(L, S)).astype(np.float32)
        kw_g["attn_mask"], kw_t["attn_mask"] = tg.from_numpy(m), torch.from_numpy(m)
    elif kind == "bool-broadcast":
        kb = keep[None, :1, :]
        kb[..., 0] = True
        kw_g["attn_mask"], kw_t["attn_mask"] = tg.from_numpy(kb), torch.from_numpy(kb)
    got = F.scaled_dot_product_attention(qg, kg, vg, **kw_g)
    want = TF.scaled_dot_product_attention(qt, kt, vt, **kw_t)
    _close(got.numpy(), want.detach().numpy(), 1e-5)
    seed = rng.normal(size=tuple(want.shape)).astype(np.float32)
    got.backward(tg.from_numpy(seed))
    want.backward(torch.from_numpy(seed))
    for _, _, g, t in ins:
        _close(g.grad.numpy(), t.grad.numpy(), 1e-4)


def test_sdpa_refuses_a_mask_with_is_causal_as_torch_does():
    (qg, qt, _, _), (kg, kt, _, _), (vg, vt, _, _) = _sdpa_pair([(2, 4, 8), (2, 4, 8), (2, 4, 3)])
    m = np.tril(np.ones((4, 4), bool))
    with pytest.raises(RuntimeError):
        TF.scaled_dot_product_attention(qt, kt, vt, attn_mask=torch.from_numpy(m), is_causal=True)
    with pytest.raises(ValueError, match="scaled_dot_product_attention: pass either attn_mask or is_causal"):
        F.scaled_dot_product_attention(qg, kg, vg, attn_mask=tg.from_numpy(m), is_causal=True)
    with pytest.raises(ValueError, match="scaled_dot_product_attention: pass either attn_mask or is_causal"):
        F.scaled_dot_product_attention(qg, kg, vg, attn_mask=tg.from_numpy(m.astype(np.float32)), is_causal=True)


def test_sdpa_causal_and_bool_mask_record_one_masked_softmax():
    (qg, _, _, _), (kg, _, _, _), (vg, _, _, _) = _sdpa_pair([(2, 4, 8), (2, 4, 8), (2, 4, 3)])
    for kw in ({"is_causal": True}, {"attn_mask": tg.from_numpy(np.eye(4, dtype=bool))}):
        with tg.Tape() as tape:
            F.scaled_dot_product_attention(qg, kg, vg, **kw)
        names = [e.op for e in tape]
        assert "masked_softmax" in names and "where" not in names and "softmax" not in names, names


@pytest.mark.parametrize("kw", [{"is_causal": True}, {"mask": "bool"}, {"mask": "empty-row"}],
                         ids=["causal", "bool", "empty-row"])
@pytest.mark.parametrize("L,S", [(3, 5), (5, 3)])
def test_sdpa_masked_gradcheck_and_gradgradcheck(kw, L, S):
    rng = np.random.default_rng(8)
    q, k, v = (tg.from_numpy(rng.normal(size=s)) for s in [(2, L, 4), (2, S, 4), (2, S, 2)])
    for t in (q, k, v):
        t.requires_grad = True
    m = None
    if "mask" in kw:
        keep = rng.uniform(size=(L, S)) > 0.3
        keep[:, 0] = True
        if kw["mask"] == "empty-row":
            keep[1] = False
        m = tg.from_numpy(keep)

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=kw.get("is_causal", False))
    assert gradcheck(f, [q, k, v])
    assert gradgradcheck(f, [q, k, v])


def test_softmax_and_attention_are_bitwise_the_same_on_one_and_two_threads(threads):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(64, 4, 64, 64)).astype(np.float32)
    q = rng.normal(size=(16, 4, 64, 32)).astype(np.float32)
    seed = tg.from_numpy(rng.normal(size=x.shape).astype(np.float32))
    seed_q = tg.from_numpy(rng.normal(size=q.shape).astype(np.float32))

    def run(n):
        tg.set_num_threads(n)
        xg = tg.from_numpy(x.copy())
        xg.requires_grad = True
        y = tg.softmax(xg, -1)
        y.backward(seed)
        qs = [tg.from_numpy(q.copy()) for _ in range(3)]
        for t in qs:
            t.requires_grad = True
        a = F.scaled_dot_product_attention(*qs, is_causal=True)
        a.backward(seed_q)
        return [y.numpy(), xg.grad.numpy(), a.numpy()] + [t.grad.numpy() for t in qs]
    one, two = run(1), run(2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("call", [
    lambda: F.scaled_dot_product_attention(tg.randn(2, 4, 8), tg.randn(2, 4, 8), tg.randn(2, 4, 8),
                                           attn_mask=tg.from_numpy(np.ones((4, 4), bool)), is_causal=True),
    lambda: F.layer_norm(tg.from_numpy(np.ones((2, 4), np.float32)), (3,)),
    lambda: tg.from_numpy(np.ones((2, 4), np.float32)) + tg.ones(3),
], ids=["sdpa", "layer_norm", "add"])
def test_an_error_survives_the_death_of_a_from_numpy_argument(call):
    """A temporary from_numpy(a) argument dies while the op's exception
    propagates; its storage's release used to clear that exception (Python
    then raised SystemError: error return without exception set)."""
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------
# the q, k, v slices of one projection: slice backward, accumulation in place
# ---------------------------------------------------------------------------

def _qkv_grads(transposed_k):
    """The gradient of qkv (B, T, 3C) through three slices, each reshaped to
    heads and permuted as a GPT does (k also transposed, so its gradient
    arrives strided); with the seeds each slice's gradient is known."""
    rng = np.random.default_rng(13)
    B, T, H, hs = 2, 5, 3, 4
    C = H * hs
    qkv = tg.from_numpy(rng.normal(size=(B, T, 3 * C)).astype(np.float32))
    qkv.requires_grad = True
    h = qkv * 1.0  # a non-leaf: its gradient is accumulated in the engine's pending slot
    outs, seeds = [], []
    for i in range(3):
        t = h[:, :, i * C:(i + 1) * C].reshape(B, T, H, hs).permute(0, 2, 1, 3)
        if transposed_k and i == 1:
            t = t.swapaxes(-2, -1)
        outs.append(t)
        seeds.append(rng.normal(size=tuple(t.shape)).astype(np.float32))
    (g,) = tg.grad(outs, [qkv], [tg.from_numpy(s) for s in seeds])
    want = []
    for i, s in enumerate(seeds):
        if transposed_k and i == 1:
            s = s.swapaxes(-2, -1)
        want.append(s.transpose(0, 2, 1, 3).reshape(B, T, C))
    return g.numpy(), np.concatenate(want, axis=-1)


@pytest.mark.parametrize("transposed_k", [False, True])
def test_qkv_slices_gradient_is_exactly_the_seeds(transposed_k):
    got, want = _qkv_grads(transposed_k)
    np.testing.assert_array_equal(got, want)  # copies and additions of zeros: exact


def test_in_place_accumulation_leaves_gradients_someone_holds_alone():
    """A tensor used three times: its contributions are summed in place only
    while no one else holds the partial sum.  The gradients the step-through
    shows, held here, keep the values they had."""
    rng = np.random.default_rng(14)
    x = tg.from_numpy(rng.normal(size=(4, 6)))
    x.requires_grad = True
    h = x * 1.0
    y = (h[:, :3] * 2).sum() + (h[:, 3:] * 3).sum() + (h * h).sum()
    held = []
    for step in y.backward_steps():
        for ig in step.inputs:
            if ig.grad_tensor is not None:  # the tensor, and the array shown
                held.append((ig.grad_tensor, ig.grad, ig.grad.copy()))
    assert len(held) >= 6
    for t, shown, snapshot in held:
        np.testing.assert_array_equal(t.numpy(), snapshot)
        np.testing.assert_array_equal(shown, snapshot)
    xv = x.detach().numpy()
    want = np.concatenate([np.full((4, 3), 2.0), np.full((4, 3), 3.0)], axis=1) + 2 * xv
    _close(x.grad.numpy(), want, 1e-12)


def test_accumulation_is_bitwise_the_add_it_replaces():
    """In place or not, a gradient summed from several uses has the bits of
    the out-of-place sum (create_graph forces the recorded add)."""
    rng = np.random.default_rng(15)
    x = tg.from_numpy(rng.normal(size=(64, 96)).astype(np.float32))
    x.requires_grad = True

    def f(x):
        h = x * 1.0
        return [h.exp(), h[:, :50], h.tanh(), h * 3]
    seeds = [tg.from_numpy(rng.normal(size=s).astype(np.float32)) for s in [(64, 96), (64, 50), (64, 96), (64, 96)]]
    (fast,) = tg.grad(f(x), [x], seeds)
    (recorded,) = tg.grad(f(x), [x], seeds, create_graph=True)
    np.testing.assert_array_equal(fast.numpy(), recorded.numpy())


@pytest.mark.parametrize("key", [np.s_[:, 2:5], np.s_[1:3], np.s_[..., :0], np.s_[:, :, 1:], np.s_[:],
                                 np.s_[:, ::-1], np.s_[1:4:2], np.s_[:, 1, 2:4], np.s_[2:3, 1:2]],
                         ids=["middle", "first-axis", "empty", "last-axis", "whole", "reversed", "step",
                              "index", "two-axes"])
@pytest.mark.parametrize("strided_grad", [False, True])
def test_slice_backward_puts_the_gradient_in_place_and_zeros_elsewhere(key, strided_grad):
    """One pass for a block along one axis (contiguous gradient), the general
    zeros-and-copy otherwise: the same result."""
    rng = np.random.default_rng(16)
    x = tg.from_numpy(rng.normal(size=(4, 5, 6)))
    x.requires_grad = True
    y = x[key]
    seed = rng.normal(size=tuple(y.shape))
    g = tg.from_numpy(seed)
    if strided_grad and seed.ndim >= 2:
        g = tg.from_numpy(np.ascontiguousarray(seed.swapaxes(0, 1))).swapaxes(0, 1)
    (got,) = tg.grad(y, [x], g)
    want = np.zeros((4, 5, 6))
    want[key] = seed
    np.testing.assert_array_equal(got.numpy(), want)
