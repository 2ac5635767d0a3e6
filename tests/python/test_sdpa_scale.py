"""The attention scale folded into masked_softmax (issue 16).

``scaled_dot_product_attention`` used to multiply the scores by 1/sqrt(E)
with a separate ``mul`` (an elementwise pass forward and one backward); the
scale is now a parameter of the internal ``masked_softmax`` op, applied in
its row kernel and in its VJP. Checked: no ``mul`` entry on the tape (unless
a float mask is added after scaling), the same bits as the separate multiply
followed by the masked softmax, forward and first-order backward; gradients
against finite differences and second order in float64; against PyTorch's
sdpa with and without masks, with ``scale=`` (positive, negative, zero),
causal, and rows with nothing kept (0, with a 0 gradient)."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
sdpa = tg.nn.functional.scaled_dot_product_attention


def _leaf(a):
    t = tg.from_numpy(np.ascontiguousarray(a))
    t.requires_grad = True
    return t


def _qkv(rng, dtype, shapes=((2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 4))):
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def _ops(y):
    return [e.op for e in tg.inspect.BackwardStepper(y.sum()).order]


@pytest.mark.parametrize("kind", ["none", "causal", "bool", "scale"])
def test_the_scores_have_no_separate_multiply(kind):
    rng = np.random.default_rng(0)
    q, k, v = (_leaf(a) for a in _qkv(rng, np.float32))
    kw = {"none": {}, "causal": {"is_causal": True}, "scale": {"scale": 0.3},
          "bool": {"attn_mask": tg.from_numpy((rng.uniform(size=(5, 6)) > 0.3).astype(np.int64))}}[kind]
    ops = _ops(sdpa(q, k, v, **kw))
    assert "mul" not in ops and "softmax" not in ops
    # causal: both products are triangular (tri_matmul, test_tri_matmul.py)
    products = ("tri_matmul", "matmul") if kind == "causal" else ("matmul", "tri_matmul")
    assert ops.count("masked_softmax") == 1 and ops.count(products[0]) == 2 and products[1] not in ops


def test_a_float_mask_is_added_to_the_scaled_scores():
    """scale first, then the additive mask: there the multiply stays."""
    rng = np.random.default_rng(1)
    q, k, v = (_leaf(a) for a in _qkv(rng, np.float64))
    m = tg.from_numpy(rng.normal(size=(5, 6)))
    ops = _ops(sdpa(q, k, v, attn_mask=m, scale=0.5))
    assert "mul" in ops and "softmax" in ops


def _unfused(q, k, v, scale, causal=False, mask=None):
    """The same attention with the multiply as its own op (the old path),
    through the registry's masked_softmax without a scale; causal, with the
    triangular products sdpa uses (tril(q k^T), tril(a) v)."""
    kt = k.swapaxes(-2, -1)
    s = (tg._C._op_apply("tri_matmul", [q, kt], "i0=0") if causal else q @ kt) * scale
    ins = [s] if mask is None else [s, mask]
    a = tg._C._op_apply("masked_softmax", ins, f"i0={int(causal)}")
    return tg._C._op_apply("tri_matmul", [a, v], "i0=2") if causal else a @ v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [None, 0.3, 2.0, -1.25, 0.0], ids=["default", "0.3", "2", "negative", "zero"])
@pytest.mark.parametrize("kind", ["causal", "mask", "none"])
def test_same_bits_as_the_separate_multiply(dtype, scale, kind):
    rng = np.random.default_rng(2)
    arrs = _qkv(rng, dtype)
    mask = tg.from_numpy((rng.uniform(size=(5, 6)) > 0.4).astype(np.int64)) if kind == "mask" else None
    causal = kind == "causal"
    E = arrs[0].shape[-1]
    s = float(1 / np.sqrt(E)) if scale is None else scale
    seed = tg.from_numpy(rng.normal(size=(2, 3, 5, 4)).astype(dtype))
    qa, ka, va = (_leaf(a) for a in arrs)
    got = sdpa(qa, ka, va, attn_mask=mask, is_causal=causal, **({} if scale is None else {"scale": scale}))
    qb, kb, vb = (_leaf(a) for a in arrs)
    want = _unfused(qb, kb, vb, s, causal, mask)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    ga = tg.grad(got, [qa, ka, va], seed)
    gb = tg.grad(want, [qb, kb, vb], seed)
    for a, b in zip(ga, gb):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("kw", [{"is_causal": True}, {"is_causal": True, "scale": 0.7}, {"scale": -0.6},
                                {"mask": True, "scale": 1.9}, {"mask": True}, {}],
                         ids=["causal", "causal-scale", "negative-scale", "mask-scale", "mask", "plain"])
def test_gradcheck_and_gradgradcheck(kw):
    rng = np.random.default_rng(3)
    q, k, v = (_leaf(a) for a in _qkv(rng, np.float64, ((2, 4, 3), (2, 5, 3), (2, 5, 2))))
    m = None
    if kw.get("mask"):
        keep = rng.uniform(size=(4, 5)) > 0.4
        keep[:, 0] = True
        m = tg.from_numpy(keep.astype(np.int64))
    extra = {"scale": kw["scale"]} if "scale" in kw else {}

    def f(q, k, v):
        return sdpa(q, k, v, attn_mask=m, is_causal=kw.get("is_causal", False), **extra)
    assert gradcheck(f, [q, k, v])
    assert gradgradcheck(f, [q, k, v])


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("kw", [{"is_causal": True}, {"is_causal": True, "scale": 0.25}, {"scale": 3.0},
                                {"scale": -0.5}, {"scale": 0.0}, {"mask": "bool"},
                                {"mask": "bool", "scale": 0.4}, {}],
                         ids=["causal", "causal-scale", "scale", "negative", "zero", "bool", "bool-scale",
                              "plain"])
def test_matches_torch(dtype, tol, kw):
    rng = np.random.default_rng(4)
    arrs = _qkv(rng, dtype, ((2, 4, 7, 16), (2, 4, 9, 16), (2, 4, 9, 8)))
    g = [_leaf(a) for a in arrs]
    t = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrs]
    kg, kt = {}, {}
    if "scale" in kw:
        kg["scale"] = kt["scale"] = kw["scale"]
    if kw.get("is_causal"):
        kg["is_causal"] = kt["is_causal"] = True
    if kw.get("mask"):
        keep = rng.uniform(size=(7, 9)) > 0.5
        keep[:, 0] = True
        kg["attn_mask"], kt["attn_mask"] = tg.from_numpy(keep.astype(np.int64)), torch.from_numpy(keep)
    yg, yt = sdpa(*g, **kg), TF.scaled_dot_product_attention(*t, **kt)
    np.testing.assert_allclose(yg.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    seed = rng.normal(size=tuple(yt.shape)).astype(dtype)
    yg.backward(tg.from_numpy(seed))
    yt.backward(torch.from_numpy(seed))
    for a, b in zip(g, t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=20 * tol, atol=20 * tol)


@pytest.mark.parametrize("scale", [None, 0.5, -2.0])
def test_rows_with_nothing_kept_are_zero_with_zero_gradient(scale):
    """A query row whose mask keeps no key: 0 output, and no gradient flows
    through it (PyTorch's attention gives 0 there too)."""
    rng = np.random.default_rng(5)
    q, k, v = (_leaf(a) for a in _qkv(rng, np.float64, ((3, 4), (5, 4), (5, 2))))
    keep = rng.uniform(size=(3, 5)) > 0.3
    keep[1] = False
    keep[[0, 2], 0] = True
    extra = {} if scale is None else {"scale": scale}
    y = sdpa(q, k, v, attn_mask=tg.from_numpy(keep.astype(np.int64)), **extra)
    assert np.all(y.numpy()[1] == 0)
    seed = np.zeros((3, 2))
    seed[1] = rng.normal(size=2)  # only the empty row's output is seeded
    y.backward(tg.from_numpy(seed))
    for t in (q, k, v):
        assert np.all(t.grad.numpy() == 0)
    qt, kt, vt = (torch.from_numpy(a.detach().numpy().copy()) for a in (q, k, v))
    yt = TF.scaled_dot_product_attention(qt, kt, vt, attn_mask=torch.from_numpy(keep), **extra)
    np.testing.assert_allclose(y.numpy()[[0, 2]], yt.numpy()[[0, 2]], rtol=1e-12, atol=1e-12)


def test_the_registry_op_with_a_scale_is_the_softmax_of_the_scaled_input():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4, 6))
    for scale in (0.35, -1.5, 0.0, 1.0):
        got = tg._C._op_apply("masked_softmax", [tg.from_numpy(x)], f"i0=1 i1=1 f0={scale}").numpy()
        xs = x * scale
        want = np.zeros_like(x)
        for i in range(4):
            r = xs[:, i, :i + 1]
            e = np.exp(r - r.max(-1, keepdims=True))
            want[:, i, :i + 1] = e / e.sum(-1, keepdims=True)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    # i1=0: the scale is ignored (plain masked softmax)
    a = tg._C._op_apply("masked_softmax", [tg.from_numpy(x)], "i0=1 f0=0.35").numpy()
    b = tg._C._op_apply("masked_softmax", [tg.from_numpy(x)], "i0=1").numpy()
    np.testing.assert_array_equal(a, b)


def test_special_values_in_the_scores():
    """inf and NaN through the scale as through the separate multiply: a row
    with a kept +inf (or NaN, or -inf times a negative scale) is NaN, a kept
    -inf is a 0 weight."""
    x = np.array([[[0.5, -np.inf, 1.0], [np.inf, 0.0, 1.0], [np.nan, 1.0, 2.0], [-np.inf, -np.inf, 3.0]]])
    for scale in (0.5, -2.0, 0.0):
        got = tg._C._op_apply("masked_softmax", [tg.from_numpy(x)], f"i0=0 i1=1 f0={scale}").numpy()
        with np.errstate(invalid="ignore"):
            want = tg._C._op_apply("masked_softmax", [tg.from_numpy(x) * scale], "i0=0").numpy()
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[0, 2]).all()
