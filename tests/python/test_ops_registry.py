"""Every op of the registry, driven by ``tg.ops()``: forward against the NumPy
reference (float64 and float32), gradients against central finite
differences (float64), second derivatives for the smooth ops, and
Hypothesis property tests of broadcasting and of strided views.

A new op gets these tests from its registry line; it fails until
``op_reference.py`` has a reference for it.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from op_reference import NOT_APPLICABLE, REFERENCES, examples

OPS = {op["name"]: op for op in tg.ops()}
CASES = [(name, k, ptext) for name, op in OPS.items() for (k, _t, ptext) in examples(op)]
DIFF_CASES = [c for c in CASES if OPS[c[0]]["differentiable"]]
CASE_IDS = [f"{n}-{k}" for n, k, _ in CASES]
DIFF_IDS = [f"{n}-{k}" for n, k, _ in DIFF_CASES]

# ops whose second derivatives are checked (smooth, or piecewise linear with
# examples chosen away from the kinks: their second derivatives are zero)
SMOOTH = {
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "sin", "cos", "tanh",
    "sigmoid", "gelu", "erf", "softplus", "cast", "sum", "mean", "var", "logsumexp", "matmul",
    "reshape", "permute", "broadcast_to", "contiguous", "slice", "slice_backward",
    "index_select", "index_add", "gather", "scatter_add", "concat", "pad", "softmax",
    "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "bce_with_logits", "where",
    "abs", "relu", "leaky_relu", "maximum", "minimum", "max", "min", "dropout",
    "conv2d", "conv2d_input_grad", "conv2d_weight_grad", "avg_pool2d", "avg_pool2d_backward",
    "max_pool2d", "max_pool2d_backward",
}
# nn.c: normalization, attention, embedding, losses (issue 14)
SMOOTH |= {"binary_cross_entropy", "huber_loss", "smooth_l1_loss", "l1_loss", "kl_div", "embedding",
           "layer_norm", "group_norm", "normalize", "cosine_similarity", "scaled_dot_product_attention"}
GG_CASES = [c for c in DIFF_CASES if c[0] in SMOOTH]
GG_IDS = [f"{n}-{k}" for n, k, _ in GG_CASES]

OP_SEED = 4242  # seeded right before an op runs (dropout's mask)


def make_inputs(name, k, dtype):
    tg.manual_seed(1000 + 17 * k + len(name))
    ins, params = tg._C._op_example(name, k, dtype)
    params = dict(params)
    params["_seed"] = OP_SEED
    return ins, params


def run_op(name, inputs, ptext):
    tg.manual_seed(OP_SEED)
    return tg._C._op_apply(name, list(inputs), ptext)


def as64(a):
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def is_diff_input(op, i):
    d = op["differentiable_inputs"]
    return i in d or (op["arity"] < 0 and i > 31 and 31 in d)


# ---------------------------------------------------------------------------
# the registry itself
# ---------------------------------------------------------------------------

def test_every_op_has_a_reference():
    missing = [n for n in OPS if n not in REFERENCES]
    assert not missing, f"ops without a NumPy reference in op_reference.py: {missing}"
    stale = [n for n in REFERENCES if n not in OPS]
    assert not stale, f"references for ops that are not in the registry: {stale}"


def test_every_applicable_op_has_examples():
    no_examples = [n for n, op in OPS.items()
                   if REFERENCES.get(n) is not NOT_APPLICABLE and not examples(op)]
    assert not no_examples, f"ops without registry examples: {no_examples}"


def test_registry_structure():
    keys = {"name", "arity", "differentiable_inputs", "differentiable", "forward", "vjp",
            "forward_latex", "vjp_latex", "doc", "examples", "dtypes", "file", "line"}
    for name, op in OPS.items():
        assert keys <= set(op), name
        assert isinstance(op["arity"], int) and op["arity"] >= -1
        assert op["doc"] and op["forward"], name
        if op["differentiable"]:
            assert op["differentiable_inputs"], name
            assert op["vjp"] and op["vjp"] != "not differentiable", name
        elif name != "custom":
            assert op["differentiable_inputs"] == [], name


def test_variadic_differentiable_inputs_listed():
    # conv2d's weight and bias are differentiable too, not just input 0
    if "conv2d" in OPS:
        assert OPS["conv2d"]["differentiable_inputs"] == [0, 1, 2]
    assert OPS["concat"]["differentiable_inputs"][:3] == [0, 1, 2]


# ---------------------------------------------------------------------------
# forward against NumPy
# ---------------------------------------------------------------------------

TOL = {tg.float64: dict(rtol=1e-9, atol=1e-11), tg.float32: dict(rtol=3e-5, atol=3e-5)}


@pytest.mark.parametrize("dtype", [tg.float64, tg.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,k,ptext", CASES, ids=CASE_IDS)
def test_forward_matches_numpy(name, k, ptext, dtype):
    ref = REFERENCES[name]
    ins, params = make_inputs(name, k, dtype)
    arrays = [t.numpy().copy() for t in ins]
    out = run_op(name, ins, ptext)
    # the op did not write into its inputs
    for a, t in zip(arrays, ins):
        np.testing.assert_array_equal(a, t.numpy())
    expected_dtype = np.asarray(ref([a.copy() for a in arrays], params)).dtype
    expected = np.asarray(ref([as64(a) for a in arrays], params))
    assert out.dtype == expected_dtype, f"{name}: dtype {out.dtype}, NumPy gives {expected_dtype}"
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy().astype(np.float64), expected.astype(np.float64),
                               err_msg=f"{name} example {k}", **TOL[dtype])


def _red_kw(p):
    return dict(axis=p["axes"] if p["naxes"] >= 0 else None, keepdims=p["keepdims"])


_REDS = ["none", "mean", "sum"]
_DTS = [tg.float32, tg.float64, tg.int64, tg.bool, tg.int32, tg.uint8]


def _slice_key(x, p):
    return tuple(p["ints"][d] if p["i"][0] & (1 << d) else
                 slice(p["ints"][d], p["ints"][8 + d], p["ints"][16 + d]) for d in range(x.ndim))


def _dropout_public(ins, p):
    tg.manual_seed(OP_SEED)
    return tg.dropout(ins[0], p["f"][0], training=bool(p["i"][0]))


def _generated_spellings(name, sig):
    """The module function and the Tensor method that csrc/python/opbind.c
    generates for an op from its signature in oplist.h."""
    if sig == "unary":
        return {"function": lambda x, p: getattr(tg, name)(x[0]),
                "method": lambda x, p: getattr(x[0], name)()}
    if sig == "binary":
        return {"function": lambda x, p: getattr(tg, name)(*x),
                "method": lambda x, p: getattr(x[0], name)(x[1])}
    if sig == "reduce":
        return {"function": lambda x, p: getattr(tg, name)(x[0], **_red_kw(p)),
                "method": lambda x, p: getattr(x[0], name)(**_red_kw(p))}
    return {}


# the Python spellings bound by hand (custom signatures) and the operators:
# f(inputs, params) -> Tensor.  The generated function and method of every
# unary, binary and reduce op come from the registry (_generated_spellings).
def _ignore(p):
    """ignore_index from an example's params (i1 when i2 is set)."""
    return {"ignore_index": p["i"][1]} if p["i"][2] else {}


def _optional(x, first, bits, *names):
    """Optional tensor inputs after the required ones, present by bits."""
    out, k = {}, first
    for i, n in enumerate(names):
        if (bits >> i) & 1:
            out[n] = x[k]
            k += 1
    return out


def _qr_repacked(a, p):
    """tg.linalg.qr's Q and R packed again as the op's [Q | R] (R padded)."""
    m, n = a.shape[-2:]
    q, r = tg.linalg.qr(a, mode="complete" if p["i"][0] else "reduced")
    if r.shape[-2] < m:
        r = tg.concat([r, tg.zeros(*r.shape[:-2], m - r.shape[-2], n, dtype=r.dtype)], axis=-2)
    return tg.concat([q, r], axis=-1)


def _svd_repacked(a):
    """tg.linalg.svd(full_matrices=False) packed again as [[U, s], [V, 0]]."""
    m, n = a.shape[-2:]
    k = min(m, n)
    u, s, vh = tg.linalg.svd(a, full_matrices=False)
    scol = tg.concat([s[..., None], tg.zeros(*s.shape[:-1], m - k, 1, dtype=s.dtype)], axis=-2)
    top = tg.concat([u, scol], axis=-1)
    bottom = tg.concat([vh.swapaxes(-1, -2), tg.zeros(*a.shape[:-2], n, 1, dtype=a.dtype)], axis=-1)
    return tg.concat([top, bottom], axis=-2)


HAND = {
    "add": lambda x, p: x[0] + x[1], "sub": lambda x, p: x[0] - x[1],
    "mul": lambda x, p: x[0] * x[1], "div": lambda x, p: x[0] / x[1],
    "pow": lambda x, p: x[0] ** x[1],
    "ne": lambda x, p: x[0] != x[1], "lt": lambda x, p: x[0] < x[1], "eq": lambda x, p: x[0] == x[1],
    "le": lambda x, p: x[0] <= x[1], "gt": lambda x, p: x[0] > x[1],
    "ge": lambda x, p: x[0] >= x[1], "where": lambda x, p: tg.where(*x),
    "neg": lambda x, p: -x[0], "abs": lambda x, p: abs(x[0]),
    "leaky_relu": lambda x, p: tg.leaky_relu(x[0], p["f"][0]),
    "clip": lambda x, p: x[0].clip(p["f"][0], p["f"][1]),
    "cast": lambda x, p: x[0].astype(_DTS[p["i"][0]]),
    "mean": lambda x, p: tg.mean(x[0], **_red_kw(p)),
    "var": lambda x, p: x[0].var(ddof=p["i"][0], **_red_kw(p)),
    "argmax": lambda x, p: x[0].argmax(axis=p["axes"][0] if p["naxes"] > 0 else None, keepdims=p["keepdims"]),
    "argmin": lambda x, p: tg.argmin(x[0], axis=p["axes"][0] if p["naxes"] > 0 else None, keepdims=p["keepdims"]),
    "matmul": lambda x, p: x[0] @ x[1],
    "reshape": lambda x, p: x[0].reshape(*p["shape"]),
    "permute": lambda x, p: x[0].permute(*p["axes"]),
    "broadcast_to": lambda x, p: tg.broadcast_to(x[0], p["shape"]),
    "slice": lambda x, p: x[0][_slice_key(x[0], p)],
    "index_select": lambda x, p: x[0].index_select(p["i"][0], x[1]),
    "gather": lambda x, p: tg.gather(x[0], p["i"][0], x[1]),
    "concat": lambda x, p: tg.concat(x, axis=p["i"][0]),
    "pad": lambda x, p: tg.pad(x[0], [(p["ints"][2 * d], p["ints"][2 * d + 1]) for d in range(x[0].ndim)],
                               constant_values=p["f"][0]),
    "softmax": lambda x, p: x[0].softmax(axis=p["i"][0]),
    "log_softmax": lambda x, p: tg.log_softmax(x[0], axis=p["i"][0]),
    "cross_entropy": lambda x, p: tg.cross_entropy(x[0], x[1], *x[2:], reduction=_REDS[p["i"][0]],
                                                   label_smoothing=p["f"][0], **_ignore(p)),
    "nll_loss": lambda x, p: tg.nll_loss(x[0], x[1], *x[2:], reduction=_REDS[p["i"][0]], **_ignore(p)),
    "mse_loss": lambda x, p: tg.mse_loss(x[0], x[1], reduction=_REDS[p["i"][0]]),
    "bce_with_logits": lambda x, p: tg.binary_cross_entropy_with_logits(x[0], x[1], reduction=_REDS[p["i"][0]],
                                                                        **_optional(x, 2, p["i"][1], "weight", "pos_weight")),
    "one_hot": lambda x, p: tg.one_hot(x[0], p["i"][0], dtype=_DTS[p["i"][1]]),
    "dropout": _dropout_public,
    # logic.c: bool/bitwise/logical ops and predicates (issue 14, dtypes)
    "bitwise_and": lambda x, p: x[0] & x[1], "bitwise_or": lambda x, p: x[0] | x[1],
    "bitwise_xor": lambda x, p: x[0] ^ x[1], "bitwise_not": lambda x, p: ~x[0],
    "left_shift": lambda x, p: x[0] << x[1], "right_shift": lambda x, p: x[0] >> x[1],
    "isclose": lambda x, p: tg.isclose(x[0], x[1], rtol=p["f"][0], atol=p["f"][1], equal_nan=bool(p["i"][0])),

    # math.c: elementwise math (issue 14)
    "round": lambda x, p: x[0].round(p["i"][0]),
    "trunc_divide": lambda x, p: tg.div(x[0], x[1], rounding_mode="trunc"),
    "lerp": lambda x, p: tg.lerp(*x),
    "nan_to_num": lambda x, p: tg.nan_to_num(x[0], nan=p["f"][0], posinf=p["f"][1] if p["i"][0] else None,
                                             neginf=p["f"][2] if p["i"][1] else None),
    "remainder": lambda x, p: x[0] % x[1], "floor_divide": lambda x, p: x[0] // x[1],

    # activation.c: activations (issue 14)
    "gelu": lambda x, p: tg.gelu(x[0]), "gelu_tanh": lambda x, p: tg.gelu(x[0], approximate="tanh"),
    "softplus": lambda x, p: x[0].softplus(threshold=math.inf),
    "softplus_beta": lambda x, p: tg.softplus(x[0], beta=p["f"][0], threshold=p["f"][1]),
    "elu": lambda x, p: tg.elu(x[0], p["f"][0]), "celu": lambda x, p: x[0].celu(alpha=p["f"][0]),
    "hardtanh": lambda x, p: x[0].hardtanh(p["f"][0], p["f"][1]),
    "softmin": lambda x, p: tg.softmin(x[0], axis=p["i"][0]), "glu": lambda x, p: x[0].glu(dim=p["i"][0]),

    # scan.c: reductions, scans, sorting (issue 14)
    "cumsum": lambda x, p: tg.cumsum(x[0], p["i"][0]),
    "cumprod": lambda x, p: x[0].cumprod(dim=p["i"][0]),
    "logcumsumexp": lambda x, p: tg.logcumsumexp(x[0], p["i"][0]),
    "cummax": lambda x, p: tg.cummax(x[0], p["i"][0])[p["i"][3]],
    "cummin": lambda x, p: x[0].cummin(dim=p["i"][0]).values,
    "sort": lambda x, p: tg.sort(x[0], p["i"][0], descending=bool(p["i"][1]))[p["i"][3]],
    "argsort": lambda x, p: x[0].argsort(axis=p["i"][0], descending=bool(p["i"][1])),
    "topk": lambda x, p: tg.topk(x[0], p["i"][0], p["i"][1], largest=bool(p["i"][2]))[p["i"][3]],
    "median": lambda x, p: (tg.median(x[0]) if p["naxes"] <= 0 else
                            x[0].median(p["axes"][0], keepdim=p["keepdims"]).values),
    "std": lambda x, p: x[0].std(correction=p["i"][0], **_red_kw(p)),
    "var_mean": lambda x, p: tg.var_mean(x[0], ddof=p["i"][0], **_red_kw(p))[p["i"][3]],
    "std_mean": lambda x, p: tg.std_mean(x[0], correction=p["i"][0], **_red_kw(p))[p["i"][3]],
    "norm": lambda x, p: tg.norm(x[0], p["f"][0], **_red_kw(p)),

    # shape.c: shape and indexing (issue 14)
    "flip": lambda x, p: tg.flip(x[0], p["axes"] if p["naxes"] >= 0 else None),
    "roll": lambda x, p: x[0].roll(p["ints"][:max(p["naxes"], 1)] if p["naxes"] >= 0 else p["ints"][0],
                                   dims=p["axes"] if p["naxes"] >= 0 else None),
    "tril": lambda x, p: tg.tril(x[0], k=p["i"][0]),
    "triu": lambda x, p: x[0].triu(diagonal=p["i"][0]),
    "diagonal": lambda x, p: x[0].diagonal(p["i"][0], dim1=p["i"][1], dim2=p["i"][2]),
    "diag": lambda x, p: tg.diag(x[0], p["i"][0]),
    "trace": lambda x, p: tg.trace(x[0], p["i"][0], p["i"][1], p["i"][2]),
    "repeat": lambda x, p: x[0].repeat(*p["ints"][:p["i"][0]]),
    "tile": lambda x, p: tg.tile(x[0], p["ints"][:p["i"][0]]),
    "repeat_interleave": lambda x, p: tg.repeat_interleave(
        x[0], p["ints"][:p["i"][0]] if p["i"][0] > 1 else p["ints"][0], axis=p["i"][1] if p["i"][2] else None),
    "unflatten": lambda x, p: x[0].unflatten(p["i"][0], p["shape"]),
    "nonzero": lambda x, p: tg.nonzero(x[0]),
    "masked_select": lambda x, p: x[0].masked_select(x[1]),
    "masked_fill": lambda x, p: tg.masked_fill(x[0], x[1], p["f"][0]),
    "scatter": lambda x, p: x[0].scatter(p["i"][0], x[1], x[2]),
    "scatter_reduce": lambda x, p: tg.scatter_reduce(x[0], p["i"][0], x[1], x[2],
                                                     ["sum", "prod", "mean", "amax", "amin"][p["i"][1]],
                                                     include_self=bool(p["i"][2])),
    "pad_mode": lambda x, p: tg.pad(x[0], [(p["ints"][2 * d], p["ints"][2 * d + 1]) for d in range(x[0].ndim)],
                                    constant_values=p["f"][0],
                                    mode=["constant", "reflect", "replicate", "circular", "symmetric"][p["i"][0]]),
    "unfold": lambda x, p: x[0].unfold(p["i"][0], p["i"][1], p["i"][2]),
    "einsum": lambda x, p: tg.einsum("".join(chr(c) for c in p["ints"] if c), *x),

    # conv.c: more convolutions, pooling, interpolation (issue 14)
    "max_unpool2d": lambda x, p: tg.nn.functional.max_unpool2d(
        x[0], x[1], p["ints"][:2], p["ints"][2:4], p["ints"][4:6],
        output_size=p["shape"] or None),
    "conv1d": lambda x, p: tg.nn.functional.conv1d(
        *x, stride=p["ints"][0], padding=p["ints"][1], dilation=p["ints"][2], groups=p["ints"][3])
    if p["ints"][1] == p["ints"][4] else tg.nn.functional.conv1d(
        *x, padding="same", dilation=p["ints"][2], groups=p["ints"][3]),
    "conv_transpose2d": lambda x, p: tg.nn.functional.conv_transpose2d(
        *x, stride=p["ints"][0:2], padding=p["ints"][2:4], output_padding=p["ints"][4:6],
        groups=p["ints"][6], dilation=p["ints"][7:9]),
    "interpolate": lambda x, p: tg.nn.functional.interpolate(
        x[0], mode=["nearest", "linear", "bilinear", "nearest-exact"][p["ints"][0]],
        align_corners=bool(p["ints"][1]) if p["ints"][0] in (1, 2) else None,
        **({"scale_factor": p["f"][:x[0].ndim - 2]} if p["f"][0] else {"size": p["ints"][2:x[0].ndim]})),
    "adaptive_avg_pool2d": lambda x, p: tg.nn.functional.adaptive_avg_pool2d(x[0], p["ints"][:2]),

    # nn.c: normalization, attention, embedding, losses (issue 14)
    "binary_cross_entropy": lambda x, p: tg.binary_cross_entropy(*x, reduction=_REDS[p["i"][0]]),
    "huber_loss": lambda x, p: tg.huber_loss(x[0], x[1], reduction=_REDS[p["i"][0]], delta=p["f"][0]),
    "smooth_l1_loss": lambda x, p: tg.nn.functional.smooth_l1_loss(x[0], x[1], _REDS[p["i"][0]], beta=p["f"][0]),
    "l1_loss": lambda x, p: tg.l1_loss(x[0], x[1], reduction=_REDS[p["i"][0]]),
    "kl_div": lambda x, p: tg.kl_div(x[0], x[1], reduction=(_REDS + ["batchmean"])[p["i"][0]], log_target=bool(p["i"][1])),
    "embedding": lambda x, p: tg.nn.functional.embedding(x[0], x[1], padding_idx=p["i"][1] if p["i"][0] else None),
    "layer_norm": lambda x, p: tg.layer_norm(x[0], x[0].shape[x[0].ndim - p["i"][0]:], eps=p["f"][0],
                                             **_optional(x, 1, p["i"][1], "weight", "bias")),
    "group_norm": lambda x, p: tg.group_norm(x[0], p["i"][0], eps=p["f"][0], **_optional(x, 1, p["i"][1], "weight", "bias")),
    "normalize": lambda x, p: tg.normalize(x[0], p["f"][0], dim=p["i"][0], eps=p["f"][1]),
    "cosine_similarity": lambda x, p: tg.cosine_similarity(x[0], x[1], axis=p["i"][0], eps=p["f"][0]),
    "scaled_dot_product_attention": lambda x, p: tg.nn.functional.scaled_dot_product_attention(
        *x[:3], attn_mask=x[3] if len(x) > 3 else None, is_causal=bool(p["i"][0]), scale=p["f"][1] or None),

    # inplace.c: in-place ops on the tape (issue 14)

    # npfn: products and NumPy functions (issue 19)
    "tensordot": lambda x, p: tg.tensordot(x[0], x[1], axes=(list(p["ints"][:p["i"][0]]),
                                                             list(p["ints"][p["i"][0]:2 * p["i"][0]]))),
    "dot": lambda x, p: x[0].dot(x[1]),
    "cross": lambda x, p: tg.cross(x[0], x[1], dim=p["i"][0]),
    "diff": lambda x, p: x[0].diff(p["i"][0], axis=p["i"][1], prepend=x[1] if p["i"][2] else None,
                                   append=x[-1] if p["i"][3] else None),

    # linalg.c: tg.linalg and more products (issue 19)
    "linalg_inv": lambda x, p: tg.linalg.inv(x[0]),
    "linalg_solve": lambda x, p: tg.linalg.solve(x[0], x[1]),
    "linalg_det": lambda x, p: tg.linalg.det(x[0]),
    "linalg_slogdet": lambda x, p: tg.stack(list(tg.linalg.slogdet(x[0])), axis=-1),
    "linalg_cholesky": lambda x, p: tg.linalg.cholesky(x[0]),
    "linalg_eigh": lambda x, p: tg.concat([tg.linalg.eigh(x[0]).eigenvectors,
                                           tg.linalg.eigh(x[0]).eigenvalues[..., None]], axis=-1),
    "linalg_qr": lambda x, p: _qr_repacked(x[0], p),
    "linalg_svd": lambda x, p: _svd_repacked(x[0]),

    "linear": lambda x, p: tg.nn.functional.linear(*x),
}
# every public spelling of each op: {op: {spelling: f(inputs, params)}}
PUBLIC = {name: {**_generated_spellings(name, op["signature"]),
                 **({"hand": HAND[name]} if name in HAND else {})} for name, op in OPS.items()}
PUBLIC = {name: sp for name, sp in PUBLIC.items() if sp}
# ops the registry marks internal (VJPs of other ops, the custom entry), and
# the layers whose Python face is tg.nn (their modules' tests cover them)
NN_LAYERS = {"conv2d", "max_pool2d", "avg_pool2d"}
INTERNAL = {name for name, op in OPS.items() if op["signature"] == "internal"} - set(HAND)
PUBLIC_CASES = [(n, k, ptext, sp) for n, k, ptext in CASES if n in PUBLIC for sp in PUBLIC[n]]


def test_nn_functional_follows_the_registry():
    """tg.nn.functional holds every op that tg.ops() marks 'functional' (the
    public ops of nn.c and conv.c, and the activations and linear, whose
    blocks set .functional) under its own name, read from the registry: the
    same object as the op's function; PyTorch's F. names are all there."""
    import os
    F = tg.nn.functional
    marked = {n for n, op in OPS.items() if op["functional"]}
    network = {n for n, op in OPS.items() if os.path.basename(op["file"]) in ("nn.c", "conv.c")
               and op["signature"] != "internal"}
    assert network <= marked and not any(OPS[n]["signature"] == "internal" for n in marked)
    for n in marked:
        if hasattr(tg._C, n):
            assert getattr(F, n) is getattr(tg._C, n), n
            assert n in F.__all__
    assert {"relu", "sigmoid", "tanh", "gelu", "softplus", "leaky_relu", "elu", "selu", "celu",
            "silu", "mish", "hardtanh", "relu6", "hardsigmoid", "hardswish", "softsign",
            "logsigmoid", "glu", "linear"} <= marked
    assert not marked & {"exp", "add", "sum", "reshape", "erf", "conv2d_input_grad"}
    pytorch_names = ["relu", "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss",
                     "binary_cross_entropy_with_logits", "binary_cross_entropy", "one_hot", "dropout",
                     "conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "max_unpool2d",
                     "adaptive_avg_pool2d", "interpolate", "linear", "pad", "embedding", "layer_norm",
                     "group_norm", "normalize", "cosine_similarity", "scaled_dot_product_attention",
                     "huber_loss", "smooth_l1_loss", "l1_loss", "kl_div", "softmin", "swish"]
    assert [n for n in pytorch_names if not callable(getattr(F, n, None))] == []
    assert set(F.__all__) == {n for n in dir(F) if not n.startswith("_") and n not in ("Tensor", "annotations")}


def test_every_op_is_public_or_internal():
    unknown = [n for n in OPS if n not in PUBLIC and n not in INTERNAL and n not in NN_LAYERS]
    assert not unknown, f"ops with no public spelling in PUBLIC and not marked internal: {unknown}"


def test_generated_bindings_follow_the_registry():
    """Every unary, binary and reduce op has its module function and Tensor
    method, with the registry's doc and formulas as docstring."""
    gen = [n for n, op in OPS.items() if op["signature"] in ("unary", "binary", "reduce")]
    assert {"exp", "add", "sum"} <= set(gen)
    for n in gen:
        op = OPS[n]
        for f in (getattr(tg, n), getattr(tg.Tensor, n)):
            assert op["doc"] in f.__doc__ and op["forward"] in f.__doc__, n
            assert f.__doc__.startswith(n + "("), n


@pytest.mark.parametrize("name,k,ptext,spelling", PUBLIC_CASES,
                         ids=[f"{n}-{k}-{sp}" for n, k, _, sp in PUBLIC_CASES])
def test_public_function_agrees_with_registry(name, k, ptext, spelling):
    """The public function, method or operator of an op gives exactly what
    the registry's generic call gives, and records the same op."""
    ins, params = make_inputs(name, k, tg.float64)
    for i, t in enumerate(ins):
        if t.dtype == tg.float64 and is_diff_input(OPS[name], i):
            t.requires_grad = True
    got = PUBLIC[name][spelling](ins, params)
    want = run_op(name, ins, ptext)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    if want.grad_fn is not None:
        assert got.grad_fn is not None
        # (the packed two-result ops are unpacked and re-packed by their spellings)
        assert got.grad_fn.op == want.grad_fn.op or name in ("gather", "index_select", "slice",
                                                              "linalg_slogdet", "linalg_eigh",
                                                              "linalg_qr", "linalg_svd")


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

def _grad_inputs(name, k):
    op = OPS[name]
    ins, params = make_inputs(name, k, tg.float64)
    n_diff = 0
    for i, t in enumerate(ins):
        if t.dtype == tg.float64 and is_diff_input(op, i):
            t.requires_grad = True
            n_diff += 1
    assert n_diff, f"{name}: no differentiable float input in example {k}"
    return ins


@pytest.mark.parametrize("name,k,ptext", DIFF_CASES, ids=DIFF_IDS)
def test_gradcheck(name, k, ptext):
    ins = _grad_inputs(name, k)
    assert gradcheck(lambda *xs: run_op(name, xs, ptext), ins)


@pytest.mark.parametrize("name,k,ptext", GG_CASES, ids=GG_IDS)
def test_gradgradcheck(name, k, ptext):
    ins = _grad_inputs(name, k)
    assert gradgradcheck(lambda *xs: run_op(name, xs, ptext), ins)


@pytest.mark.parametrize("name,k,ptext", DIFF_CASES, ids=DIFF_IDS)
def test_backward_float32_close_to_float64(name, k, ptext):
    """The float32 VJPs agree with the float64 ones (and keep the dtype)."""
    grads = {}
    for dt in (tg.float64, tg.float32):
        op = OPS[name]
        ins, _ = make_inputs(name, k, dt)
        for i, t in enumerate(ins):
            if t.dtype == dt and is_diff_input(op, i):
                t.requires_grad = True
        out = run_op(name, ins, ptext)
        tg.manual_seed(5)
        seed = tg.randn(*out.shape, dtype=dt) if out.ndim else tg.randn((), dtype=dt)
        out.backward(seed)
        grads[dt] = [t.grad for t in ins if t.requires_grad]
        for t in ins:
            if t.requires_grad:
                assert t.grad is not None and t.grad.dtype == dt and t.grad.shape == t.shape
    for g64, g32 in zip(grads[tg.float64], grads[tg.float32]):
        np.testing.assert_allclose(g32.numpy(), g64.numpy(), rtol=2e-4, atol=2e-4)


# ---------------------------------------------------------------------------
# Hypothesis: broadcasting of the binary ops
# ---------------------------------------------------------------------------

def _sum_to(g, shape):
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and g.shape[d] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


BINARY = {
    # name: (function, numpy forward, d/da, d/db, positive a, b away from 0)
    "add": (lambda a, b: a + b, np.add, lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b), False, False),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b), False, False),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b, False, False),
    "div": (lambda a, b: a / b, np.divide, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b ** 2, False, True),
    "pow": (lambda a, b: a ** b, np.power, lambda a, b: b * a ** (b - 1), lambda a, b: a ** b * np.log(a), True, False),
    "maximum": (tg.maximum, np.maximum, lambda a, b: (a > b) + 0.5 * (a == b), lambda a, b: (b > a) + 0.5 * (a == b), False, False),
    "minimum": (tg.minimum, np.minimum, lambda a, b: (a < b) + 0.5 * (a == b), lambda a, b: (b < a) + 0.5 * (a == b), False, False),
}
COMPARE = {"eq": (lambda a, b: a == b, np.equal), "ne": (lambda a, b: a != b, np.not_equal),
           "lt": (lambda a, b: a < b, np.less), "le": (lambda a, b: a <= b, np.less_equal),
           "gt": (lambda a, b: a > b, np.greater), "ge": (lambda a, b: a >= b, np.greater_equal)}

shape_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1,
                                                max_side=4)
HSETTINGS = settings(max_examples=int(os.environ.get("TAPEGRAD_HYPOTHESIS_EXAMPLES", 25)), deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@HSETTINGS
@given(shapes=shape_pairs, name=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**31 - 1))
def test_binary_broadcasting_property(shapes, name, seed):
    fn, npf, da, db, pos_a, nz_b = BINARY[name]
    (sa, sb), _ = shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, sa) if pos_a else rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if nz_b:
        b = np.where(np.abs(b) < 0.3, 0.3 + np.abs(b), b)
    if name in ("maximum", "minimum") and a.size and b.size:
        b = b + 0.01  # no exact ties with the a values
    ta = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    out = fn(ta, tb)
    want = npf(a, b)
    assert out.shape == want.shape and out.dtype == tg.float64
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(ta.grad.numpy(), _sum_to(np.broadcast_to(da(a, b), want.shape), sa),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), _sum_to(np.broadcast_to(db(a, b), want.shape), sb),
                               rtol=1e-10, atol=1e-12)


@HSETTINGS
@given(shapes=shape_pairs, name=st.sampled_from(sorted(COMPARE)), seed=st.integers(0, 2**31 - 1),
       dtypes=st.sampled_from([(np.float32, np.float32), (np.float64, np.float32), (np.int64, np.int64),
                               (np.int64, np.float64), (np.int32, np.uint8), (np.bool_, np.int32),
                               (np.uint8, np.float32), (np.bool_, np.bool_)]))
def test_comparison_broadcasting_property(shapes, name, seed, dtypes):
    fn, npf = COMPARE[name]
    (sa, sb), _ = shapes
    rng = np.random.default_rng(seed)
    a = rng.integers(-2, 3, sa).astype(dtypes[0])
    b = rng.integers(-2, 3, sb).astype(dtypes[1])
    out = fn(tg.tensor(a), tg.tensor(b))
    want = npf(a, b)
    assert out.shape == want.shape
    assert out.dtype == want.dtype == np.bool_  # comparisons give bool, as NumPy and PyTorch
    np.testing.assert_array_equal(out.numpy(), want)


ALL_DTYPES = (np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8)


@HSETTINGS
@given(shapes=shape_pairs, seed=st.integers(0, 2**31 - 1),
       dtypes=st.tuples(st.sampled_from(ALL_DTYPES), st.sampled_from(ALL_DTYPES)))
def test_binary_dtype_promotion_property(shapes, seed, dtypes):
    """Every pair of the six dtypes promotes as NumPy's np.result_type (which
    keeps int64 + float32 -> float64, where PyTorch would say float32), and
    the values agree, integer wrap-around included (uint8 3 - 1 - 3 = 255)."""
    (sa, sb), _ = shapes
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 4, sa).astype(dtypes[0])
    b = rng.integers(1, 4, sb).astype(dtypes[1])
    if dtypes[0] == np.bool_:
        a = rng.integers(0, 2, sa).astype(np.bool_)
    ta, tb = tg.tensor(a), tg.tensor(b)
    for fn, npf in ((lambda x, y: x + y, np.add), (lambda x, y: x * y, np.multiply),
                    (lambda x, y: x - y, np.subtract), (lambda x, y: x / y, np.divide),
                    (tg.maximum, np.maximum), (tg.minimum, np.minimum)):
        try:
            want = npf(a, b)
        except TypeError:  # NumPy refuses bool - bool: so does tapegrad
            with pytest.raises(TypeError, match="sub: not supported for dtype bool"):
                fn(ta, tb)
            continue
        out = fn(ta, tb)
        assert out.dtype == want.dtype, (fn, a.dtype, b.dtype)
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    assert tg.tensor(a).astype(np.result_type(a, b)).dtype == np.result_type(a, b)


def test_promotion_table_is_numpys():
    """The whole 6 x 6 table of the C core (through zero-size tensors)."""
    for da in ALL_DTYPES:
        for db in ALL_DTYPES:
            out = tg.maximum(tg.zeros(0, dtype=da), tg.zeros(0, dtype=db))
            assert out.dtype == np.result_type(da, db), (da, db)


# ---------------------------------------------------------------------------
# Hypothesis: unary ops and reductions on non-contiguous views
# ---------------------------------------------------------------------------

UNARY = {
    # name: (tapegrad function, numpy forward, derivative, input domain)
    "exp": (tg.exp, np.exp, np.exp, "any"),
    "log": (tg.log, np.log, lambda x: 1 / x, "pos"),
    "sqrt": (tg.sqrt, np.sqrt, lambda x: 0.5 / np.sqrt(x), "pos"),
    "abs": (tg.abs, np.abs, np.sign, "any"),
    "sin": (tg.sin, np.sin, np.cos, "any"),
    "cos": (tg.cos, np.cos, lambda x: -np.sin(x), "any"),
    "tanh": (tg.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2, "any"),
    "sigmoid": (tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, "any"),
    "relu": (tg.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, "any"),
    "neg": (tg.neg, np.negative, lambda x: -np.ones_like(x), "any"),
    "softplus": (tg.softplus, lambda x: np.logaddexp(0, x), lambda x: 1 / (1 + np.exp(-x)), "any"),
    "erf": (tg.erf, np.vectorize(math.erf, otypes=[float]), lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x), "any"),
    "square": (lambda t: t * t, np.square, lambda x: 2 * x, "any"),
}


@st.composite
def strided_views(draw):
    """(base array, a function making the same view of a NumPy array and of a
    tensor): a random transpose and random slices with any step sign."""
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    perm = tuple(draw(st.permutations(range(nd))))
    slices = []
    for d in range(nd):
        n = shape[perm[d]]
        step = draw(st.sampled_from([1, 2, -1, -2]))
        start = draw(st.integers(0, n - 1))
        stop = draw(st.one_of(st.none(), st.integers(-n - 1, n)))
        slices.append(slice(start, stop, step) if draw(st.booleans()) else slice(None, None, step))
    key = tuple(slices)

    def view_np(a):
        return np.transpose(a, perm)[key]

    def view_tg(t):
        return t.permute(*perm)[key]
    return shape, view_np, view_tg


def _domain(rng, shape, kind):
    x = rng.standard_normal(shape)
    if kind == "pos":
        x = np.abs(x) + 0.5
    else:
        x = np.where(np.abs(x) < 1e-3, 0.5, x)  # away from kinks
    return x


@HSETTINGS
@given(view=strided_views(), name=st.sampled_from(sorted(UNARY)), seed=st.integers(0, 2**31 - 1),
       through_tape=st.booleans())
def test_unary_on_strided_views_property(view, name, seed, through_tape):
    shape, view_np, view_tg = view
    fn, npf, dnp, dom = UNARY[name]
    rng = np.random.default_rng(seed)
    base = _domain(rng, shape, dom)
    if through_tape:
        # the view is made by tapegrad ops (permute, slice) of a leaf
        leaf = tg.tensor(base, requires_grad=True)
        v = view_tg(leaf)
    else:
        # the view is a strided NumPy array shared by from_numpy (a leaf)
        arr = view_np(base.copy())
        leaf = v = tg.from_numpy(arr, requires_grad=True)
    x = view_np(base)
    assert v.shape == x.shape
    if through_tape:  # a view, not a copy
        assert np.shares_memory(v.numpy(), leaf.numpy()) or x.size == 0
        assert [s for s, n in zip(v.strides, v.shape) if n > 1] == \
            [s for s, n in zip(x.strides, x.shape) if n > 1]
    y = fn(v)
    np.testing.assert_allclose(y.numpy(), npf(x), rtol=1e-12, atol=1e-12)
    if y.size == 0:
        return
    y.sum().backward()
    if through_tape:
        want = np.zeros_like(base)
        wv = view_np(want)
        wv += dnp(x)
    else:
        want = dnp(x)
    np.testing.assert_allclose(leaf.grad.numpy(), want, rtol=1e-10, atol=1e-12)


REDUCTIONS = ["sum", "mean", "max", "min", "var", "logsumexp"]


def _np_reduce(name, x, axis, keepdims):
    if name == "logsumexp":
        m = np.max(x, axis=axis, keepdims=True)
        r = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axis) if axis is not None else r.reshape(())
    return getattr(np, name)(x, axis=axis, keepdims=keepdims)


def _np_reduce_grad(name, x, axis):
    """d/dx of reduce(x).sum()."""
    axes = tuple(range(x.ndim)) if axis is None else axis
    n = int(np.prod([x.shape[a] for a in axes]))
    if name == "sum":
        return np.ones_like(x)
    if name == "mean":
        return np.full_like(x, 1.0 / n)
    if name in ("max", "min"):
        r = getattr(np, name)(x, axis=axes, keepdims=True)
        m = (x == r) * 1.0
        return m / m.sum(axis=axes, keepdims=True)
    if name == "var":
        return 2 * (x - x.mean(axis=axes, keepdims=True)) / n
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axes, keepdims=True)


@HSETTINGS
@given(view=strided_views(), name=st.sampled_from(REDUCTIONS), seed=st.integers(0, 2**31 - 1),
       keepdims=st.booleans(), data=st.data())
def test_reductions_on_strided_views_property(view, name, seed, keepdims, data):
    shape, view_np, view_tg = view
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape)
    leaf = tg.tensor(base, requires_grad=True)
    v = view_tg(leaf)
    x = view_np(base)
    if x.size == 0:
        return
    axis = data.draw(st.one_of(
        st.none(),
        st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1, max_size=x.ndim,
                 unique_by=lambda a: a % x.ndim).map(tuple)))
    y = getattr(v, name)(axis=axis, keepdims=keepdims)
    np_axis = None if axis is None else tuple(a % x.ndim for a in axis)
    want = _np_reduce(name, x, np_axis, keepdims)
    assert y.shape == np.shape(want)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
    y.sum().backward()
    g = np.zeros_like(base)
    gv = view_np(g)
    gv += _np_reduce_grad(name, x, np_axis)
    np.testing.assert_allclose(leaf.grad.numpy(), g, rtol=1e-9, atol=1e-12)


@st.composite
def matmul_shapes(draw):
    """Shapes for NumPy's matmul: 1-D and 2-D operands and batches that
    broadcast (including size-1 batch dims)."""
    m, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    (ba, bb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                         min_side=1, max_side=3))
    a_vec, b_vec = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if a_vec else ba + (m, k)
    sb = (k,) if b_vec else bb + (k, n)
    return sa, sb


@HSETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**31 - 1), transpose=st.booleans())
def test_matmul_property(shapes, seed, transpose):
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    if transpose and len(sa) >= 2:  # a non-contiguous operand
        ta = tg.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), requires_grad=True)
        x = ta.swapaxes(-1, -2)
    else:
        ta = x = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    out = x @ tb
    want = np.matmul(a, b)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(want.shape)
    out.backward(tg.tensor(g))
    # reference gradients through the NumPy rules (vectors promoted, batches summed)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = np.asarray(g)
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = _sum_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    gb = _sum_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
    got_a = ta.grad.numpy()
    if transpose and len(sa) >= 2:
        got_a = np.swapaxes(got_a, -1, -2)
    np.testing.assert_allclose(got_a, ga, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(tb.grad.numpy(), gb, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op["differentiable"]])
def test_vjp_structure_matches_its_formula(name):
    """The registry's record of which gradients a VJP writes (one symbol per
    differentiable input, what the stepper annotates) agrees with the VJP's
    own LaTeX: each symbol stands on the left of one '=' of the formula, in
    order, and the output's gradient symbol is read on the right."""
    op = OPS[name]
    writes, tex = op["grad_in_latex"], op["vjp_latex"]
    assert writes, f"{name}: no grad_in_tex"
    if op["arity"] >= 0:
        assert len(writes) == len(op["differentiable_inputs"])
    lhs = [piece.split("=")[0] for piece in tex.split(r"\quad")]
    assert len(lhs) == len(writes)
    for sym, left in zip(writes, lhs):
        assert sym in left, f"{name}: {sym!r} is not what the formula's '{left}=' writes"
    if op["grad_out_latex"] is not None:
        assert op["grad_out_latex"] in tex


def test_an_elementwise_op_lives_in_its_block_its_line_and_the_header():
    """One op, one place: outside csrc/ops/ (its block and its oplist.h line),
    the public header and the math kernels it calls (csrc/kernels/vmath*: the
    vector erf, which knows nothing of ops), no file of the C sources or the
    Python package names erf, a generated unary op: its binding, docstring,
    docs group, cost class and tests all come from the registry
    (docs/design.md, "Adding an op")."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    # the sources themselves (what `git grep -lw erf -- csrc python/tapegrad` reads), so that
    # the check runs in any copy of the tree, a git checkout or not; build products are skipped
    word = re.compile(r"\berf\b")
    out = [f.relative_to(root).as_posix()
           for top in ("csrc", "python/tapegrad") for f in sorted((root / top).rglob("*"))
           if f.suffix in (".c", ".h", ".py") and "build" not in f.relative_to(root).parts
           and word.search(f.read_text(encoding="utf-8", errors="replace"))]
    assert "csrc/ops/oplist.h" in out
    stray = [f for f in out if not f.startswith(("csrc/ops/", "csrc/kernels/vmath"))
             and f != "csrc/include/tapegrad.h"]
    assert not stray, f"erf is named outside its op block, oplist.h and tapegrad.h: {stray}"
