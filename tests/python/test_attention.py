"""Attention (issue 14): scaled_dot_product_attention (an op of the
registry, a composite) and MultiheadAttention (PyTorch's parameter layout: a
PyTorch state dict loads and gives PyTorch's outputs, weights and
gradients)."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [(np.float32, 1e-5), (np.float64, 1e-11)]


def _pair(a, np_dt, grad=True):
    a = np.asarray(a, dtype=np_dt)
    g, t = tg.from_numpy(a.copy()), torch.from_numpy(a.copy())
    if grad:
        g.requires_grad = True
        t.requires_grad_(True)
    return g, t


MASKS = ["none", "causal", "bool", "int", "float", "bool-broadcast", "scale"]


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("shapes", [((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)), ((4, 8), (6, 8), (6, 8)),
                                    ((2, 1, 4, 8), (3, 6, 8), (3, 6, 2))], ids=["4d", "2d", "broadcast"])
def test_sdpa_matches_torch(dt, mask, shapes):
    np_dt, tol = dt
    rng = np.random.default_rng(len(mask))
    (qg, qt), (kg, kt), (vg, vt) = (_pair(rng.normal(size=s), np_dt) for s in shapes)
    L, S = shapes[0][-2], shapes[1][-2]
    kw_g, kw_t = {}, {}
    keep = rng.uniform(size=(L, S)) > 0.4
    keep[:, 0] = True  # no fully masked row (NaN in both)
    if mask == "causal":
        kw_g["is_causal"] = kw_t["is_causal"] = True
    elif mask == "bool":  # bool keep-mask; an int64 one of the same meaning for tapegrad until bool lands
        kw_t["attn_mask"] = torch.from_numpy(keep)
        kw_g["attn_mask"] = tg.from_numpy(keep.astype(np.int64))
    elif mask == "int":
        kw_t["attn_mask"] = torch.from_numpy(keep)
        kw_g["attn_mask"] = tg.from_numpy(keep.astype(np.int64) * 3)  # any nonzero keeps
    elif mask == "float":
        m = rng.normal(size=(L, S)).astype(np_dt)
        kw_t["attn_mask"], kw_g["attn_mask"] = torch.from_numpy(m), tg.from_numpy(m)
    elif mask == "bool-broadcast":
        kb = keep[:1, :] if len(shapes[0]) == 2 else keep[None, :1, :]  # (1, S) or (1, 1, S)
        kw_t["attn_mask"], kw_g["attn_mask"] = torch.from_numpy(kb), tg.from_numpy(kb.astype(np.int64))
    elif mask == "scale":
        kw_g["scale"] = kw_t["scale"] = 0.7
    got = tg.nn.functional.scaled_dot_product_attention(qg, kg, vg, **kw_g)
    want = TF.scaled_dot_product_attention(qt, kt, vt, **kw_t)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=100 * tol, atol=100 * tol)
    seed = rng.normal(size=tuple(want.shape))
    got.backward(tg.from_numpy(seed.astype(np_dt)))
    want.backward(torch.from_numpy(seed.astype(np_dt)))
    for g, t in ((qg, qt), (kg, kt), (vg, vt)):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1000 * tol, atol=1000 * tol)


def test_sdpa_non_contiguous_inputs_and_dropout():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 8, 4))
    qg, qt = tg.from_numpy(q).swapaxes(1, 2), torch.from_numpy(q).transpose(1, 2)  # (2, 4, 8), strided
    got = tg.scaled_dot_product_attention(qg, qg, qg, is_causal=True)
    want = TF.scaled_dot_product_attention(qt, qt, qt, is_causal=True)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    # dropout_p = 1 drops every weight: zeros, as in PyTorch
    assert np.all(tg.scaled_dot_product_attention(qg, qg, qg, dropout_p=1.0).numpy() == 0)
    # dropout is inverted: the mean output is kept, and it follows tg.manual_seed
    tg.manual_seed(1)
    a = tg.scaled_dot_product_attention(qg, qg, qg, dropout_p=0.5).numpy()
    tg.manual_seed(1)
    b = tg.scaled_dot_product_attention(qg, qg, qg, dropout_p=0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, got.numpy())


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"mask": True}], ids=["plain", "causal", "mask"])
def test_sdpa_gradcheck_and_gradgradcheck(kw):
    rng = np.random.default_rng(2)
    q, k, v = (tg.from_numpy(rng.normal(size=s)) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 2)])
    for t in (q, k, v):
        t.requires_grad = True
    m = tg.from_numpy(rng.normal(size=(3, 5))) if kw.get("mask") else None
    f = lambda q, k, v: tg.scaled_dot_product_attention(q, k, v, attn_mask=m,  # noqa: E731
                                                        is_causal=kw.get("is_causal", False))
    assert gradcheck(f, [q, k, v])
    assert gradgradcheck(f, [q, k, v])


def test_sdpa_errors():
    q = tg.randn(2, 3, 4)
    with raises(ValueError, "scaled_dot_product_attention", "(2, 3, 4)", "(2, 5, 3)", "(..., S, E)"):
        tg.scaled_dot_product_attention(q, tg.randn(2, 5, 3), tg.randn(2, 5, 3))
    with raises(ValueError, "scaled_dot_product_attention", "attn_mask", "(4, 5)", "(..., 3, 5)"):
        tg.scaled_dot_product_attention(q, tg.randn(2, 5, 4), tg.randn(2, 5, 4), attn_mask=tg.ones(4, 5))
    with raises(ValueError, "scaled_dot_product_attention", "not both"):
        tg.scaled_dot_product_attention(q, q, q, attn_mask=tg.ones(3, 3), is_causal=True)
    with raises(ValueError, "scaled_dot_product_attention", "dropout_p"):
        tg.scaled_dot_product_attention(q, q, q, dropout_p=1.5)
    with raises(TypeError, "scaled_dot_product_attention", "int64"):
        tg.scaled_dot_product_attention(tg.tensor([[1, 2]]), q, q)


# ---------------------------------------------------------------------------
# MultiheadAttention
# ---------------------------------------------------------------------------

def _load(tm, gm, np_dt):
    gm.load_state_dict({k: tg.from_numpy(v.detach().numpy().astype(np_dt)) for k, v in tm.state_dict().items()})


MHA_CASES = [
    ({}, {}), ({"batch_first": True}, {}), ({"bias": False}, {}), ({"kdim": 5, "vdim": 3}, {}),
    ({}, {"key_padding_mask": "bool"}), ({}, {"attn_mask": "bool"}), ({}, {"attn_mask": "float"}),
    ({"batch_first": True}, {"attn_mask": "bool3d", "key_padding_mask": "float"}),
    ({}, {"average_attn_weights": False}), ({}, {"need_weights": False}), ({}, {"is_causal": True}),
    ({}, {"unbatched": True}),
]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # torch's, on mixed mask types
@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("ctor,call", MHA_CASES, ids=[f"{sorted(c)}-{sorted(f)}" for c, f in MHA_CASES])
def test_multihead_attention_loads_torch_weights_and_matches(dt, ctor, call):
    np_dt, tol = dt
    torch.manual_seed(0)
    E, H, N, L, S = 8, 2, 3, 4, 5
    tdt = torch.float32 if np_dt == np.float32 else torch.float64
    tm = torch.nn.MultiheadAttention(E, H, dtype=tdt, **ctor)
    gm = tg.nn.MultiheadAttention(E, H, dtype=tg.float32 if np_dt == np.float32 else tg.float64, **ctor)
    assert sorted(n for n, _ in tm.named_parameters()) == sorted(n for n, _ in gm.named_parameters())
    _load(tm, gm, np_dt)
    rng = np.random.default_rng(3)
    bf = ctor.get("batch_first", False)
    unb = call.get("unbatched", False)

    def shape(seq, dim):
        return (seq, dim) if unb else ((N, seq, dim) if bf else (seq, N, dim))

    (qg, qt) = _pair(rng.normal(size=shape(L, E)), np_dt)
    (kg, kt) = _pair(rng.normal(size=shape(S, ctor.get("kdim", E))), np_dt)
    (vg, vt) = _pair(rng.normal(size=shape(S, ctor.get("vdim", E))), np_dt)
    kw_g, kw_t = {}, {}
    keep = rng.uniform(size=(L, S)) > 0.5
    keep[:, 0] = False  # False = allowed in MultiheadAttention's convention: no fully masked row
    if call.get("key_padding_mask") == "bool":
        kpm = np.zeros((N, S), bool)
        kpm[0, -2:] = True
        kw_t["key_padding_mask"], kw_g["key_padding_mask"] = torch.from_numpy(kpm), tg.from_numpy(kpm.astype(np.int64))
    if call.get("key_padding_mask") == "float":
        kpm = rng.normal(size=(N, S)).astype(np_dt)
        kw_t["key_padding_mask"], kw_g["key_padding_mask"] = torch.from_numpy(kpm), tg.from_numpy(kpm)
    if call.get("attn_mask") == "bool":
        kw_t["attn_mask"], kw_g["attn_mask"] = torch.from_numpy(keep), tg.from_numpy(keep.astype(np.int64))
    if call.get("attn_mask") == "float":
        m = rng.normal(size=(L, S)).astype(np_dt)
        kw_t["attn_mask"], kw_g["attn_mask"] = torch.from_numpy(m), tg.from_numpy(m)
    if call.get("attn_mask") == "bool3d":
        m3 = np.broadcast_to(keep, (N * H, L, S)).copy()
        m3[1, 1, 1:] = True
        kw_t["attn_mask"], kw_g["attn_mask"] = torch.from_numpy(m3), tg.from_numpy(m3.astype(np.int64))
    for k in ("average_attn_weights", "need_weights"):
        if k in call:
            kw_t[k] = kw_g[k] = call[k]
    if call.get("is_causal"):
        kw_t["attn_mask"] = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=tdt)[:, :L]
        kw_t["attn_mask"] = torch.cat([kw_t["attn_mask"], torch.full((L, S - L), float("-inf"), dtype=tdt)], 1)
        kw_g["is_causal"] = True
    ot, wt = tm(qt, kt, vt, **kw_t)
    og, wg = gm(qg, kg, vg, **kw_g)
    np.testing.assert_allclose(og.numpy(), ot.detach().numpy(), rtol=100 * tol, atol=100 * tol)
    if wt is None:
        assert wg is None
    else:
        np.testing.assert_allclose(wg.numpy(), wt.detach().numpy(), rtol=100 * tol, atol=100 * tol)
    seed = rng.normal(size=tuple(ot.shape))
    og.backward(tg.from_numpy(seed.astype(np_dt)))
    ot.backward(torch.from_numpy(seed.astype(np_dt)))
    for g, t in ((qg, qt), (kg, kt), (vg, vt)):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1000 * tol, atol=1000 * tol)
    tp = dict(tm.named_parameters())
    for n, p in gm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=1000 * tol, atol=1000 * tol, err_msg=n)


def test_multihead_attention_init_and_dropout():
    tg.manual_seed(0)
    m = tg.nn.MultiheadAttention(16, 4, dropout=0.5)
    w = m.in_proj_weight.numpy()
    bound = np.sqrt(6.0 / (16 + 48))  # xavier_uniform on (3E, E), as PyTorch
    assert w.shape == (48, 16) and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    x = tg.randn(3, 2, 16)
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.train()
    c, _ = m(x, x, x)
    assert not np.allclose(a.numpy(), c.numpy())


def test_multihead_attention_gradcheck():
    tg.manual_seed(1)
    m = tg.nn.MultiheadAttention(4, 2, dtype=tg.float64)
    x = tg.randn(3, 2, 4, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x: m(x, x, x)[0], [x])
    assert gradgradcheck(lambda x: m(x, x, x)[0], [x])


def test_multihead_attention_errors():
    with raises(ValueError, "MultiheadAttention", "divisible"):
        tg.nn.MultiheadAttention(6, 4)
    with raises(NotImplementedError, "add_bias_kv"):
        tg.nn.MultiheadAttention(4, 2, add_bias_kv=True)
    m = tg.nn.MultiheadAttention(4, 2)
    x = tg.randn(3, 2, 4)
    with raises(ValueError, "MultiheadAttention", "(3, 2, 5)", "embed_dim=4"):
        m(x, tg.randn(3, 2, 5), x)
    with raises(ValueError, "MultiheadAttention", "attn_mask", "(3, 3)", "(2, 3)"):
        m(x, x, x, attn_mask=tg.ones(2, 3))
    with raises(ValueError, "MultiheadAttention", "key_padding_mask", "(2, 3)"):
        m(x, x, x, key_padding_mask=tg.ones(3, 2))
