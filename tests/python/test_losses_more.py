"""The losses with PyTorch's options (issue 14): cross_entropy and nll_loss
with class weights, ignore_index, label smoothing, probability targets and
(N, C, d1, ...) inputs; binary_cross_entropy, bce_with_logits with weight and
pos_weight, huber_loss, smooth_l1_loss, l1_loss, kl_div; their modules.

Each is checked against PyTorch (float32 and float64: values and gradients),
against finite differences (gradcheck, gradgradcheck in float64), and for its
errors. The registry-driven tests (test_ops_registry.py) check the ops'
examples against the NumPy references as well.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [(np.float32, tg.float32, torch.float32, 2e-5), (np.float64, tg.float64, torch.float64, 1e-10)]
REDUCTIONS = ["mean", "sum", "none"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _pair(a, dt_np, dt_tg, grad=True):
    """The same values as a tapegrad and a torch tensor (leaf, requires grad)."""
    a = np.asarray(a, dtype=dt_np)
    g = tg.from_numpy(a.copy())
    t = torch.from_numpy(a.copy())
    if grad:
        g.requires_grad = True
        t.requires_grad_(True)
    return g, t


def _compare(got, want, tol, ins_g=(), ins_t=()):
    """Forward values, then gradients of a fixed random projection."""
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol * 10, atol=tol * 10)
    if not ins_g:
        return
    seed = np.random.default_rng(7).normal(size=want.shape)
    got.backward(tg.from_numpy(seed.astype(got.numpy().dtype)))
    want.backward(torch.from_numpy(seed.astype(want.detach().numpy().dtype)))
    for g, t in zip(ins_g, ins_t):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=tol * 50, atol=tol * 50)


# ---------------------------------------------------------------------------
# cross_entropy / nll_loss
# ---------------------------------------------------------------------------

CE_OPTIONS = [
    {}, {"weight": True}, {"ignore": True}, {"label_smoothing": 0.2},
    {"weight": True, "ignore": True, "label_smoothing": 0.1}, {"weight": True, "label_smoothing": 0.3},
]
CE_SHAPES = [(5, 4), (4,), (3, 4, 2), (2, 4, 3, 2)]


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape", CE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_entropy_class_indices_match_torch(dt, red, opts, shape):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(sum(shape) + len(opts))
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    z = rng.normal(size=shape) * 2
    y = rng.integers(0, C, size=tshape)
    kw_g, kw_t = {}, {}
    if opts.get("ignore"):
        y = np.asarray(y).copy()
        y.reshape(-1)[0] = 1 if y.size > 1 else y.reshape(-1)[0]
        flat = y.reshape(-1)
        flat[flat == 1] = -100 if y.ndim else 1
        kw_g["ignore_index"] = kw_t["ignore_index"] = -100
    if opts.get("weight"):
        w = rng.uniform(0.5, 2.0, size=C).astype(np_dt)
        kw_g["weight"], kw_t["weight"] = tg.from_numpy(w), torch.from_numpy(w)
    if "label_smoothing" in opts:
        kw_g["label_smoothing"] = kw_t["label_smoothing"] = opts["label_smoothing"]
    zg, zt = _pair(z, np_dt, tg_dt)
    y = np.array(y, dtype=np.int64)
    yg, yt = tg.from_numpy(y), torch.from_numpy(y.copy())
    got = tg.cross_entropy(zg, yg, reduction=red, **kw_g)
    want = TF.cross_entropy(zt, yt, reduction=red, **kw_t)
    assert got.dtype == tg_dt and got.shape == tuple(want.shape)
    _compare(got, want, tol, [zg], [zt])


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 3, 4)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets_match_torch(dt, red, shape, smoothing, weighted):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(len(shape))
    cax = 0 if len(shape) == 1 else 1
    z = rng.normal(size=shape)
    p = rng.uniform(size=shape)
    p = p / p.sum(axis=cax, keepdims=True)
    kw_g, kw_t = {"label_smoothing": smoothing}, {"label_smoothing": smoothing}
    if weighted:
        w = rng.uniform(0.5, 2, size=shape[cax]).astype(np_dt)
        kw_g["weight"], kw_t["weight"] = tg.from_numpy(w), torch.from_numpy(w)
    zg, zt = _pair(z, np_dt, tg_dt)
    pg, pt = _pair(p, np_dt, tg_dt)  # the target is differentiable too (a composite)
    got = tg.cross_entropy(zg, pg, reduction=red, **kw_g)
    want = TF.cross_entropy(zt, pt, reduction=red, **kw_t)
    _compare(got, want, tol, [zg, pg], [zt, pt])


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 3), (3,), (2, 3, 4), (2, 3, 2, 2)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(dt, red, shape, weighted):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(3 + len(shape))
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    lp = np.log(rng.uniform(0.05, 1, size=shape))
    y = np.asarray(rng.integers(0, C, size=tshape), dtype=np.int64)
    if y.ndim:
        y.reshape(-1)[-1] = 7  # an ignored position (ignore_index=7)
    kw = {"ignore_index": 7}
    kw_g, kw_t = dict(kw), dict(kw)
    if weighted:
        w = rng.uniform(0.5, 2, size=C).astype(np_dt)
        kw_g["weight"], kw_t["weight"] = tg.from_numpy(w), torch.from_numpy(w)
    lg, lt = _pair(lp, np_dt, tg_dt)
    got = tg.nll_loss(lg, tg.from_numpy(y), reduction=red, **kw_g)
    want = TF.nll_loss(lt, torch.from_numpy(y.copy()), reduction=red, **kw_t)
    _compare(got, want, tol, [lg], [lt])


def test_all_ignored_and_empty_batches_are_nan_for_mean_as_in_torch():
    z = np.random.default_rng(0).normal(size=(3, 4))
    y = np.full(3, -100)
    for red in REDUCTIONS:
        for w in (None, np.ones(4)):
            got = tg.cross_entropy(tg.from_numpy(z), tg.from_numpy(y), reduction=red,
                                   weight=None if w is None else tg.from_numpy(w))
            want = TF.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), reduction=red,
                                    weight=None if w is None else torch.from_numpy(w))
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    # an ignored row whose logits hold inf/NaN still counts for nothing
    zi = z.copy()
    zi[0] = [np.nan, np.inf, 0, 1]
    yi = np.array([-100, 1, 2])
    got = tg.cross_entropy(tg.from_numpy(zi), tg.from_numpy(yi), label_smoothing=0.1)
    want = TF.cross_entropy(torch.from_numpy(zi), torch.from_numpy(yi), label_smoothing=0.1)
    np.testing.assert_allclose(got.item(), want.item())
    # an empty batch
    for red in REDUCTIONS:
        got = tg.cross_entropy(tg.zeros(0, 4, dtype=tg.float64), tg.from_numpy(np.zeros(0, np.int64)),
                               reduction=red, label_smoothing=0.1)
        want = TF.cross_entropy(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long),
                                reduction=red, label_smoothing=0.1)
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_the_plain_case_keeps_the_fused_op_and_options_use_a_composite():
    z = tg.randn(4, 3, requires_grad=True)
    y = tg.tensor([0, 1, 2, 1])
    assert tg.cross_entropy(z, y).grad_fn.op == "cross_entropy"
    assert tg.nll_loss(z, y).grad_fn.op == "nll_loss"
    assert tg.binary_cross_entropy_with_logits(z, tg.ones(4, 3)).grad_fn.op == "bce_with_logits"
    # an ignore_index that occurs in the target, weights, smoothing: constituents on the tape
    for kw in ({"ignore_index": 1}, {"weight": tg.ones(3)}, {"label_smoothing": 0.1}):
        assert tg.cross_entropy(z, y, **kw).grad_fn.op != "cross_entropy", kw
    # an ignore_index that does not occur changes nothing: the fused op
    assert tg.cross_entropy(z, y, ignore_index=5).grad_fn.op == "cross_entropy"


def test_old_positional_reduction_still_works():
    z, y = tg.randn(4, 3), tg.tensor([0, 1, 2, 1])
    assert tg.cross_entropy(z, y, "sum").item() == pytest.approx(tg.cross_entropy(z, y, reduction="sum").item())
    assert tg.nll_loss(z, y, "none").shape == (4,)
    t = tg.rand(4, 3)
    assert tg.binary_cross_entropy_with_logits(z, t, "sum").item() == pytest.approx(
        tg.binary_cross_entropy_with_logits(z, t, reduction="sum").item())


OPTION_CASES = [
    ("weights+ignore+smoothing nd", lambda z, w: tg.cross_entropy(z, tg.tensor([[0, 2], [-100, 1]]), weight=w,
                                                                  label_smoothing=0.2)),
    ("probabilities", lambda z, w: tg.cross_entropy(z, tg.full((2, 3, 2), 1 / 3, dtype=tg.float64), weight=w,
                                                    label_smoothing=0.1)),
    ("nll weights nd sum", lambda z, w: tg.nll_loss(z, tg.tensor([[0, 2], [1, 1]]), weight=w, reduction="sum")),
]


@pytest.mark.parametrize("name,f", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_option_paths_gradcheck_and_gradgradcheck(name, f):
    tg.manual_seed(3)
    z = tg.randn(2, 3, 2, dtype=tg.float64, requires_grad=True)
    w = tg.tensor([0.5, 1.0, 2.0], dtype=tg.float64, requires_grad=True)  # the weights too
    assert gradcheck(f, [z, w])
    assert gradgradcheck(f, [z, w])


# ---------------------------------------------------------------------------
# binary cross-entropy (probabilities and logits)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(dt, red, weighted):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(11)
    p = rng.uniform(0.05, 0.95, size=(4, 3))
    t = rng.uniform(size=(4, 3))
    pg, pt = _pair(p, np_dt, tg_dt)
    tgt, tt = _pair(t, np_dt, tg_dt)
    kw_g, kw_t = {}, {}
    if weighted:
        w = rng.uniform(0.5, 2, size=3).astype(np_dt)
        kw_g["weight"], kw_t["weight"] = tg.from_numpy(w), torch.from_numpy(w)
    got = tg.binary_cross_entropy(pg, tgt, reduction=red, **kw_g)
    want = TF.binary_cross_entropy(pt, tt, reduction=red, **kw_t)
    _compare(got, want, tol, [pg, tgt], [pt, tt])


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    p = tg.tensor([0.0, 1.0, 0.0, 1.0], dtype=tg.float64)
    t = tg.tensor([1.0, 0.0, 0.0, 1.0], dtype=tg.float64)
    want = TF.binary_cross_entropy(torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64),
                                   torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64), reduction="none")
    np.testing.assert_array_equal(tg.binary_cross_entropy(p, t, reduction="none").numpy(), want.numpy())


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("which", ["weight", "pos_weight", "both"])
def test_bce_with_logits_weights_match_torch(dt, red, which):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(5)
    x = rng.normal(size=(4, 3)) * 3
    t = rng.uniform(size=(4, 3))
    xg, xt = _pair(x, np_dt, tg_dt)
    tgt, tt = _pair(t, np_dt, tg_dt)
    kw_g, kw_t = {}, {}
    if which in ("weight", "both"):
        w = rng.uniform(0.5, 2, size=(4, 1)).astype(np_dt)
        kw_g["weight"], kw_t["weight"] = tg.from_numpy(w), torch.from_numpy(w)
    if which in ("pos_weight", "both"):
        pw = rng.uniform(0.5, 3, size=3).astype(np_dt)
        kw_g["pos_weight"], kw_t["pos_weight"] = tg.from_numpy(pw), torch.from_numpy(pw)
    got = tg.binary_cross_entropy_with_logits(xg, tgt, reduction=red, **kw_g)
    want = TF.binary_cross_entropy_with_logits(xt, tt, reduction=red, **kw_t)
    _compare(got, want, tol, [xg, tgt], [xt, tt])


def test_bce_with_logits_pos_weight_is_stable_for_large_logits():
    x = tg.tensor([1000.0, -1000.0], dtype=tg.float64)
    t = tg.tensor([0.0, 1.0], dtype=tg.float64)
    got = tg.binary_cross_entropy_with_logits(x, t, pos_weight=tg.tensor([2.0, 2.0], dtype=tg.float64),
                                              reduction="none")
    np.testing.assert_allclose(got.numpy(), [1000.0, 2000.0])


# ---------------------------------------------------------------------------
# huber, smooth L1, L1, KL divergence
# ---------------------------------------------------------------------------

PAIR_LOSSES = [
    ("huber_loss", {"delta": 0.7}), ("huber_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}), ("l1_loss", {}),
]


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("name,kw", PAIR_LOSSES, ids=[f"{n}-{k}" for n, k in PAIR_LOSSES])
@pytest.mark.parametrize("transposed", [False, True])
def test_pair_losses_match_torch(dt, red, name, kw, transposed):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(2)
    a, b = rng.normal(size=(3, 5)) * 2, rng.normal(size=(3, 5))
    ag, at = _pair(a, np_dt, tg_dt)
    bg, bt = _pair(b, np_dt, tg_dt)
    xa, xb, ya, yb = ag, bg, at, bt
    if transposed:  # non-contiguous inputs
        xa, xb, ya, yb = ag.T, bg.T, at.T, bt.T
    got = getattr(tg, name)(xa, xb, reduction=red, **kw)
    want = getattr(TF, name)(ya, yb, reduction=red, **kw)
    _compare(got, want, tol, [ag, bg], [at, bt])


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("red", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(dt, red, log_target):
    np_dt, tg_dt, t_dt, tol = dt
    rng = _rng(9)
    x = np.log(rng.dirichlet(np.ones(4), size=3))
    t = rng.dirichlet(np.ones(4), size=3)
    t[0, 1] = 0.0  # 0 log 0 = 0
    if log_target:
        t = np.log(t + 0.01)
    xg, xt = _pair(x, np_dt, tg_dt)
    tgt, tt = _pair(t, np_dt, tg_dt)
    got = tg.kl_div(xg, tgt, reduction=red, log_target=log_target)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on 'mean'
        want = TF.kl_div(xt, tt, reduction=red, log_target=log_target)
    # the target's gradient where t = 0: PyTorch gives NaN (xlogy's), tapegrad
    # -x (0 log 0 taken as the constant 0); compared where the target is > 0
    _compare(got, want, tol, [xg], [xt])
    if not log_target:
        keep = t > 0
        np.testing.assert_allclose(tgt.grad.numpy()[keep], tt.grad.numpy()[keep], rtol=tol * 50, atol=tol * 50)
        assert np.all(np.isfinite(tgt.grad.numpy()))
    else:
        np.testing.assert_allclose(tgt.grad.numpy(), tt.grad.numpy(), rtol=tol * 50, atol=tol * 50)


@pytest.mark.parametrize("f", [
    lambda a, b: tg.huber_loss(a, b, delta=0.8), lambda a, b: tg.smooth_l1_loss(a, b, beta=0.6),
    lambda a, b: tg.l1_loss(a, b, reduction="sum"), lambda a, b: tg.kl_div(a, b.exp(), reduction="batchmean"),
    lambda a, b: tg.binary_cross_entropy(a.sigmoid(), b.sigmoid()),
    lambda a, b: tg.binary_cross_entropy_with_logits(a, b.sigmoid(), pos_weight=tg.tensor([1.5, 0.5, 2.0], dtype=tg.float64)),
], ids=["huber", "smooth_l1", "l1", "kl_div", "bce", "bce_logits_pos_weight"])
def test_losses_gradcheck_and_gradgradcheck(f):
    rng = _rng(4)
    a = tg.from_numpy(rng.normal(size=(2, 3)) * 2)
    b = tg.from_numpy(rng.normal(size=(2, 3)))
    a.requires_grad = b.requires_grad = True
    assert gradcheck(f, [a, b])
    assert gradgradcheck(f, [a, b])


# ---------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------

def test_loss_modules_match_torch():
    rng = _rng(1)
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    y[2] = 3
    w = rng.uniform(0.5, 2, size=4)
    p = rng.uniform(0.05, 0.95, size=(6, 4))
    cases = [
        (tg.nn.CrossEntropyLoss(weight=tg.from_numpy(w), ignore_index=3, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w), ignore_index=3, label_smoothing=0.1), z, y),
        (tg.nn.NLLLoss(weight=tg.from_numpy(w), reduction="sum"),
         torch.nn.NLLLoss(weight=torch.from_numpy(w), reduction="sum"), np.log(p), y),
        (tg.nn.BCEWithLogitsLoss(pos_weight=tg.from_numpy(w)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(w)), z, p),
        (tg.nn.BCELoss(weight=tg.from_numpy(w)), torch.nn.BCELoss(weight=torch.from_numpy(w)), p, p[::-1].copy()),
        (tg.nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), z, p),
        (tg.nn.SmoothL1Loss(beta=0.5, reduction="none"), torch.nn.SmoothL1Loss(beta=0.5, reduction="none"), z, p),
        (tg.nn.L1Loss(), torch.nn.L1Loss(), z, p),
        (tg.nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), np.log(p), p),
    ]
    for mg, mt, a, b in cases:
        got = mg(tg.from_numpy(a), tg.from_numpy(b))
        want = mt(torch.from_numpy(a), torch.from_numpy(b))
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12, err_msg=type(mg).__name__)


def test_loss_module_weights_are_buffers_in_the_state_dict():
    w = tg.tensor([1.0, 2.0])
    m = tg.nn.CrossEntropyLoss(weight=w)
    assert list(m.state_dict()) == ["weight"]
    assert list(tg.nn.CrossEntropyLoss().state_dict()) == []
    assert sorted(tg.nn.BCEWithLogitsLoss(pos_weight=w).state_dict()) == ["pos_weight"]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_errors_name_the_op_the_shapes_and_what_was_expected():
    z = tg.randn(4, 3)
    y = tg.tensor([0, 1, 2, 1])
    with raises(IndexError, "cross_entropy", "label 3", "3 classes", "ignore_index -100"):
        tg.cross_entropy(z, tg.tensor([0, 1, 3, 1]), label_smoothing=0.1)
    with raises(IndexError, "nll_loss", "label -5"):
        tg.nll_loss(tg.randn(2, 3, 4), tg.tensor([[0, 1, 2, -5], [0, 0, 0, 0]]))
    with raises(ValueError, "cross_entropy", "(4, 3)", "(3,)", "(N, d1, ...)"):
        tg.cross_entropy(z, tg.tensor([0, 1, 2]), weight=tg.ones(3))
    with raises(ValueError, "cross_entropy", "weight", "(3,)", "(4,)"):
        tg.cross_entropy(z, y, weight=tg.ones(4))
    with raises(ValueError, "cross_entropy", "reduction", "'avg'"):
        tg.cross_entropy(z, y, reduction="avg")
    with raises(ValueError, "cross_entropy", "label_smoothing", "1.5"):
        tg.cross_entropy(z, y, label_smoothing=1.5)
    with raises(ValueError, "cross_entropy", "same shape", "(4, 3)", "(4, 2)"):
        tg.cross_entropy(z, tg.rand(4, 2))
    with raises(TypeError, "cross_entropy", "int64", "float32"):
        tg.cross_entropy(z, tg.zeros(4))
    with raises(ValueError, "binary_cross_entropy", "[0, 1]", "1.5"):
        tg.binary_cross_entropy(tg.tensor([0.5, 1.5]), tg.ones(2))
    with raises(ValueError, "binary_cross_entropy", "(2,)", "(3,)"):
        tg.binary_cross_entropy(tg.tensor([0.5, 0.5]), tg.ones(3))
    with raises(ValueError, "bce_with_logits", "pos_weight", "(5,)", "(4, 3)"):
        tg.binary_cross_entropy_with_logits(z, tg.rand(4, 3), pos_weight=tg.ones(5))
    with raises(ValueError, "huber_loss", "delta", "> 0"):
        tg.huber_loss(z, z, delta=0.0)
    with raises(ValueError, "smooth_l1_loss", "beta", ">= 0"):
        tg.smooth_l1_loss(z, z, beta=-1.0)
    with raises(ValueError, "kl_div", "reduction", "batchmean", "'batch'"):
        tg.kl_div(z, z, reduction="batch")
    with raises(ValueError, "l1_loss", "batchmean"):
        tg.l1_loss(z, z, reduction="batchmean")
    with raises(TypeError, "l1_loss", "int64"):
        tg.l1_loss(y, y)
    with raises(ValueError, "KLDivLoss", "reduction"):
        tg.nn.KLDivLoss(reduction="avg")


# ---------------------------------------------------------------------------
# Hypothesis: random shapes, ignored targets, weights and smoothing
# ---------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 4), c=st.integers(1, 5), extra=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 2**31 - 1), weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.1, 1.0]),
       ignore_frac=st.sampled_from([0.0, 0.3, 1.0]), red=st.sampled_from(REDUCTIONS))
def test_cross_entropy_and_nll_random_cases_match_torch(n, c, extra, seed, weighted, smoothing, ignore_frac, red):
    rng = np.random.default_rng(seed)
    shape = (n, c, *extra)
    z = rng.normal(size=shape) * 3
    y = rng.integers(0, c, size=(n, *extra))
    y[rng.uniform(size=y.shape) < ignore_frac] = -100
    w = rng.uniform(0.1, 3, size=c) if weighted else None
    kw_g = {"weight": tg.from_numpy(w) if weighted else None, "reduction": red}
    kw_t = {"weight": torch.from_numpy(w) if weighted else None, "reduction": red}
    got = tg.cross_entropy(tg.from_numpy(z), tg.from_numpy(y), label_smoothing=smoothing, **kw_g).numpy()
    want = TF.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), label_smoothing=smoothing, **kw_t).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    got = tg.nll_loss(tg.from_numpy(z), tg.from_numpy(y), **kw_g).numpy()
    want = TF.nll_loss(torch.from_numpy(z), torch.from_numpy(y), **kw_t).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
