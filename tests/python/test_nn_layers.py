"""The layers as ops (issue 14): embedding, layer_norm, group_norm,
normalize, cosine_similarity, and the modules Embedding, LayerNorm and
GroupNorm; against PyTorch (float32 and float64, values and gradients),
finite differences, and their errors."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [(np.float32, tg.float32, 1e-5), (np.float64, tg.float64, 1e-11)]


def _pair(a, np_dt, grad=True):
    a = np.asarray(a, dtype=np_dt)
    g, t = tg.from_numpy(a.copy()), torch.from_numpy(a.copy())
    if grad:
        g.requires_grad = True
        t.requires_grad_(True)
    return g, t


def _check(got, want, tol, ins_g, ins_t):
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=50 * tol, atol=50 * tol)
    seed = np.random.default_rng(1).normal(size=tuple(want.shape))
    got.backward(tg.from_numpy(seed.astype(got.numpy().dtype)))
    want.backward(torch.from_numpy(seed.astype(want.detach().numpy().dtype)))
    for g, t in zip(ins_g, ins_t):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=500 * tol, atol=500 * tol)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape,nshape", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((3, 2, 4), (4,))])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("transposed", [False, True])
def test_layer_norm_matches_torch(dt, shape, nshape, affine, transposed):
    np_dt, tg_dt, tol = dt
    rng = np.random.default_rng(len(shape))
    x = rng.normal(size=shape[::-1] if transposed else shape) * 3 + 1
    xg, xt = _pair(x, np_dt)
    if transposed:  # a non-contiguous input of the shape
        axes = tuple(range(len(shape)))[::-1]
        xg2, xt2 = xg.permute(*axes), xt.permute(*axes)
    else:
        xg2, xt2 = xg, xt
    ins_g, ins_t = [xg], [xt]
    wg = wt = bg = bt = None
    if affine in ("both", "weight"):
        wg, wt = _pair(rng.normal(size=nshape), np_dt)
        ins_g.append(wg), ins_t.append(wt)
    if affine == "both":
        bg, bt = _pair(rng.normal(size=nshape), np_dt)
        ins_g.append(bg), ins_t.append(bt)
    got = tg.layer_norm(xg2, nshape, wg, bg, eps=1e-5)
    want = TF.layer_norm(xt2, nshape, wt, bt, eps=1e-5)
    _check(got, want, tol, ins_g, ins_t)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape,groups", [((2, 6, 3), 3), ((2, 4, 2, 3), 2), ((3, 4), 4), ((2, 4, 5), 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(dt, shape, groups, affine):
    np_dt, tg_dt, tol = dt
    rng = np.random.default_rng(sum(shape))
    xg, xt = _pair(rng.normal(size=shape) * 2, np_dt)
    ins_g, ins_t = [xg], [xt]
    wg = wt = bg = bt = None
    if affine:
        wg, wt = _pair(rng.normal(size=shape[1]), np_dt)
        bg, bt = _pair(rng.normal(size=shape[1]), np_dt)
        ins_g += [wg, bg]
        ins_t += [wt, bt]
    got = tg.group_norm(xg, groups, wg, bg, eps=1e-5)
    want = TF.group_norm(xt, groups, wt, bt, eps=1e-5)
    _check(got, want, tol, ins_g, ins_t)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("p,axis", [(2.0, 1), (1.0, 0), (3.0, -1), (2.0, 2)])
def test_normalize_matches_torch(dt, p, axis):
    np_dt, tg_dt, tol = dt
    x = np.random.default_rng(2).normal(size=(3, 4, 2))
    x[0, :, 0] = 0.0  # a zero vector: the clamp at eps
    xg, xt = _pair(x, np_dt)
    got = tg.normalize(xg, p, dim=axis)
    want = TF.normalize(xt, p, dim=axis)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=50 * tol, atol=50 * tol)
    if axis == 1:
        got.backward(tg.ones(*got.shape, dtype=tg_dt))
        want.backward(torch.ones(*want.shape, dtype=want.dtype))
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=500 * tol, atol=500 * tol)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("sa,sb,axis", [((3, 4), (3, 4), 1), ((2, 3, 4), (3, 4), -1), ((4, 3), (1, 3), 0),
                                        ((2, 3, 4), (2, 1, 4), 2)])
def test_cosine_similarity_matches_torch(dt, sa, sb, axis):
    np_dt, tg_dt, tol = dt
    rng = np.random.default_rng(3)
    ag, at = _pair(rng.normal(size=sa), np_dt)
    bg, bt = _pair(rng.normal(size=sb), np_dt)
    got = tg.cosine_similarity(ag, bg, dim=axis)
    want = TF.cosine_similarity(at, bt, dim=axis)
    _check(got, want, tol, [ag, bg], [at, bt])


def test_zero_vectors_give_torch_values_and_finite_gradients():
    a = tg.zeros(2, 3, dtype=tg.float64, requires_grad=True)
    b = tg.ones(2, 3, dtype=tg.float64)
    y = tg.cosine_similarity(a, b)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0])
    y.sum().backward()
    at = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    TF.cosine_similarity(at, torch.ones(2, 3, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy())
    for p in (2.0, 3.0):
        x = tg.zeros(1, 3, dtype=tg.float64, requires_grad=True)
        xt = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        y = tg.normalize(x, p)
        np.testing.assert_array_equal(y.numpy(), 0.0)
        (y * tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)).sum().backward()
        (TF.normalize(xt, p) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch_with_padding_gradient(dt, padding_idx):
    np_dt, tg_dt, tol = dt
    rng = np.random.default_rng(4)
    w = rng.normal(size=(5, 3))
    idx = np.array([[0, 2, 4], [2, 2, 1]])
    idx[1, 0] = 4
    wg, wt = _pair(w, np_dt)
    got = tg.embedding(tg.from_numpy(idx), wg, padding_idx=padding_idx)
    want = TF.embedding(torch.from_numpy(idx.copy()), wt, padding_idx=padding_idx)
    _check(got, want, tol, [wg], [wt])
    if padding_idx is not None:
        assert np.all(wg.grad.numpy()[padding_idx] == 0)


@pytest.mark.parametrize("f", [
    lambda x, w, b: tg.layer_norm(x, (3,), w, b),
    lambda x, w, b: tg.group_norm(x.reshape(2, 2, 3).swapaxes(1, 2), 3, w, b),
    lambda x, w, b: tg.normalize(x, 3.0, axis=1) * w,
    lambda x, w, b: tg.cosine_similarity(x, w + b, axis=-1),
    lambda x, w, b: tg.embedding(tg.tensor([[2, 0], [2, 1]]), x) * w,
], ids=["layer_norm", "group_norm", "normalize", "cosine_similarity", "embedding"])
def test_layer_ops_gradcheck_and_gradgradcheck(f):
    rng = np.random.default_rng(5)
    x = tg.from_numpy(rng.normal(size=(4, 3)))
    w = tg.from_numpy(rng.normal(size=3))
    b = tg.from_numpy(rng.normal(size=3))
    for t in (x, w, b):
        t.requires_grad = True
    assert gradcheck(f, [x, w, b])
    assert gradgradcheck(f, [x, w, b])


# ---------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------

def test_embedding_module_init_padding_and_from_pretrained():
    tg.manual_seed(0)
    emb = tg.nn.Embedding(400, 50, padding_idx=3)
    w = emb.weight.numpy()
    assert w.shape == (400, 50) and emb.weight.requires_grad
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1) < 0.02  # N(0, 1), as PyTorch
    out = emb(tg.tensor([[3, 5], [5, 3]]))
    out.sum().backward()
    g = emb.weight.grad.numpy()
    assert np.all(g[3] == 0) and np.all(g[5] == 2)
    pre = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    frozen = tg.nn.Embedding.from_pretrained(pre)
    assert not frozen.weight.requires_grad
    assert frozen(tg.tensor([1])).tolist() == [[3.0, 4.0]]
    assert tg.nn.Embedding.from_pretrained(pre, freeze=False).weight.requires_grad
    assert tg.nn.Embedding(4, 2, padding_idx=-1).padding_idx == 3


def test_norm_modules_load_torch_state_and_match():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 6, 4, 3))
    for tm, gm in [(torch.nn.LayerNorm((4, 3)), tg.nn.LayerNorm((4, 3))),
                   (torch.nn.GroupNorm(3, 6), tg.nn.GroupNorm(3, 6)),
                   (torch.nn.LayerNorm(3, elementwise_affine=False), tg.nn.LayerNorm(3, elementwise_affine=False)),
                   (torch.nn.Embedding(6, 4, padding_idx=1), tg.nn.Embedding(6, 4, padding_idx=1))]:
        tm = tm.double()
        with torch.no_grad():
            for p in tm.parameters():
                p.add_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
        assert sorted(tm.state_dict()) == sorted(gm.state_dict())
        gm.load_state_dict({k: tg.from_numpy(v.numpy().astype(np.float32)) for k, v in tm.state_dict().items()})
        if isinstance(tm, torch.nn.Embedding):
            ids = np.array([[0, 1, 5], [1, 2, 3]])
            want, got = tm(torch.from_numpy(ids)), gm(tg.from_numpy(ids))
        else:
            want, got = tm(torch.from_numpy(x)), gm(tg.from_numpy(x.astype(np.float32)))
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4)
    # LayerNorm is one fused layer_norm entry on the tape (not a chain of eight ops)
    ln = tg.nn.LayerNorm(3)
    y = ln(tg.randn(2, 3))
    assert y.grad_fn.op == "layer_norm"


def test_layer_norm_second_order_through_ops_and_first_order_from_saved_stats():
    """create_graph recomputes mean and rstd with ops (so second derivatives
    are right); a plain backward uses the saved ones: both give one answer."""
    rng = np.random.default_rng(8)
    xn, wn = rng.normal(size=(3, 4)), rng.normal(size=4)
    grads = []
    for create in (False, True):
        x = tg.from_numpy(xn.copy())
        w = tg.from_numpy(wn.copy())
        x.requires_grad = w.requires_grad = True
        y = tg.layer_norm(x, 4, w)
        gx, gw = tg.grad((y * y * y).sum(), [x, w], create_graph=create)
        grads.append((gx.numpy(), gw.numpy()))
        if create:  # d/dx of sum(gx**2) against torch
            (gx * gx).sum().backward()
            xt = torch.from_numpy(xn.copy()).requires_grad_(True)
            wt = torch.from_numpy(wn.copy()).requires_grad_(True)
            yt = TF.layer_norm(xt, (4,), wt)
            gxt, = torch.autograd.grad((yt ** 3).sum(), [xt], create_graph=True)
            (gxt * gxt).sum().backward()
            np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-9, atol=1e-10)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_layer_errors_name_the_op_and_shapes():
    x = tg.randn(2, 6, 4)
    with raises(ValueError, "layer_norm", "(5,)", "(2, 6, 4)"):
        tg.layer_norm(x, (5,))
    with raises(ValueError, "layer_norm", "weight", "(4,)", "(3,)"):
        tg.layer_norm(x, 4, weight=tg.ones(3))
    with raises(ValueError, "group_norm", "num_groups 4", "6 channels"):
        tg.group_norm(x, 4)
    with raises(ValueError, "group_norm", "bias", "(6,)"):
        tg.group_norm(x, 3, bias=tg.ones(5))
    with raises(ValueError, "group_norm", "(N, C, ...)"):
        tg.group_norm(tg.ones(3), 1)
    with raises(IndexError, "normalize", "axis 3"):
        tg.normalize(x, axis=3)
    with raises(ValueError, "normalize", "p must be"):
        tg.normalize(x, p=0.0)
    with raises(TypeError, "normalize", "pass axis or dim"):
        tg.normalize(x, axis=1, dim=1)
    with raises(ValueError, "cosine_similarity", "(2, 6, 4)", "(3,)"):
        tg.cosine_similarity(x, tg.ones(3))
    with raises(IndexError, "embedding", "index 7", "5 embeddings"):
        tg.embedding(tg.tensor([0, 7]), tg.ones(5, 2))
    with raises(IndexError, "embedding", "padding_idx 5"):
        tg.embedding(tg.tensor([0]), tg.ones(5, 2), padding_idx=5)
    with raises(TypeError, "embedding", "int64", "float32"):
        tg.embedding(tg.ones(2), tg.ones(5, 2))
    with raises(ValueError, "embedding", "2-D", "(5,)"):
        tg.embedding(tg.tensor([0]), tg.ones(5))
    with raises(TypeError, "layer_norm", "int64"):
        tg.layer_norm(tg.tensor([[1, 2]]), 2)
    with raises(ValueError, "GroupNorm", "divisible"):
        tg.nn.GroupNorm(4, 6)
    with raises(ValueError, "Embedding", "padding_idx"):
        tg.nn.Embedding(3, 2, padding_idx=3)
