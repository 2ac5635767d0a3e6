"""The reductions, scans and sorting ops of csrc/ops/scan.c (issue 14):
against PyTorch in float32 and float64 (values, indices, gradients, second
derivatives), on non-contiguous inputs and negative axes, with zeros, ties
and NaN, plus their errors.  The registry-driven tests (test_ops_registry.py)
check the forward against NumPy and first derivatives; second derivatives of
every registry example of these ops are checked here."""
import math

import numpy as np
import pytest

import tapegrad as tg
from assertions import raises
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

SCAN_OPS = ["cumsum", "cumprod", "prod", "logcumsumexp", "cummax", "cummin", "sort", "argsort",
            "topk", "median", "std", "var_mean", "std_mean", "norm"]
OPS = {op["name"]: op for op in tg.ops()}
DTYPES = [(tg.float64, torch.float64, np.float64), (tg.float32, torch.float32, np.float32)]
DT_IDS = ["f64", "f32"]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


def both(a, requires_grad=True):
    """A tapegrad and a torch tensor of the same values (leaves)."""
    a = np.asarray(a)
    return (tg.tensor(a.copy(), requires_grad=requires_grad),
            torch.tensor(a.copy(), requires_grad=requires_grad))


def close(t, u, dt=np.float64, **kw):
    np.testing.assert_allclose(np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=np.float64),
                               u.detach().numpy().astype(np.float64), **{**TOL[dt], **kw})


def grads_match(tg_out, th_out, xt, xh, dt=np.float64, seed=0):
    g = np.random.default_rng(seed).standard_normal(tuple(th_out.shape)).astype(dt)
    tg_out.backward(tg.tensor(g))
    th_out.backward(torch.tensor(g))
    close(xt.grad, xh.grad, dt)


def rand(shape, dt=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dt)


def noncontig(shape, dt=np.float64, seed=0):
    """A transposed (non-contiguous) tapegrad leaf's view and the same values."""
    base = rand(shape[::-1], dt, seed)
    xt = tg.tensor(base, requires_grad=True)
    return xt, xt.T, np.ascontiguousarray(base.T)


# ---------------------------------------------------------------------------
# second order of every registry example of these ops
# ---------------------------------------------------------------------------

GG = [(n, k, ex.split("|", 1)[1] if "|" in ex else "")
      for n in SCAN_OPS if OPS[n]["differentiable"]
      for k, ex in enumerate(t for t in OPS[n]["examples"].split(";") if t)]


@pytest.mark.parametrize("name,k,ptext", GG, ids=[f"{n}-{k}" for n, k, _ in GG])
def test_gradgradcheck_registry_examples(name, k, ptext):
    tg.manual_seed(1000 + 17 * k + len(name))
    ins, _ = tg._C._op_example(name, k, tg.float64)
    for t in ins:
        t.requires_grad = True
    assert gradgradcheck(lambda *xs: tg._C._op_apply(name, list(xs), ptext), ins)


def test_every_scan_op_is_in_the_registry_and_grouped_by_its_file():
    for n in SCAN_OPS:
        assert n in OPS, n
        assert OPS[n]["file"].replace("\\", "/").endswith("ops/scan.c"), n


# ---------------------------------------------------------------------------
# cumsum, cumprod, prod
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_cumsum_cumprod_match_torch(dts, axis):
    tdt, _, ndt = dts
    a = rand((3, 4, 5), ndt, seed=axis + 7)
    for name in ("cumsum", "cumprod"):
        xt, xh = both(a)
        yt, yh = getattr(tg, name)(xt, axis), getattr(torch, name)(xh, dim=axis)
        assert yt.dtype == tdt and yt.shape == tuple(yh.shape)
        close(yt, yh, ndt)
        grads_match(yt, yh, xt, xh, ndt)


def test_cumsum_noncontiguous_dim_alias_and_flatten():
    leaf, v, a = noncontig((4, 3))
    y = v.cumsum(dim=-2)
    np.testing.assert_allclose(y.numpy(), np.cumsum(a, axis=-2), rtol=1e-12)
    y.sum().backward()
    # d/dx_ij of sum_k cumsum_k = number of positions at or after i along axis 0
    np.testing.assert_allclose(leaf.grad.numpy().T, np.broadcast_to(np.arange(4, 0, -1)[:, None], (4, 3)))
    assert tg.cumsum(tg.tensor(a)).shape == (12,)  # axis=None: flattened (NumPy)
    np.testing.assert_allclose(tg.cumsum(tg.tensor(a)).numpy(), np.cumsum(a), rtol=1e-12)


def test_cumsum_int64_and_dtype():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    y = tg.cumsum(tg.tensor(a), 1)
    assert y.dtype == tg.int64 and y.tolist() == np.cumsum(a, 1).tolist()
    assert tg.cumprod(tg.tensor(a), 0).tolist() == np.cumprod(a, 0).tolist()
    y = tg.tensor(a).cumsum(1, dtype=tg.float64)
    assert y.dtype == tg.float64 and y.tolist() == np.cumsum(a, 1).tolist()
    # int64 wraps like NumPy's instead of being undefined behaviour
    big = np.array([2 ** 62, 2 ** 62, 2 ** 62], dtype=np.int64)
    with np.errstate(over="ignore"):
        assert tg.cumsum(tg.tensor(big), 0).tolist() == np.cumsum(big).tolist()


@pytest.mark.parametrize("zeros", [[1], [0, 3], [2, 3], [0, 1, 4]])
@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
def test_cumprod_gradient_with_zeros_matches_torch(zeros, dts):
    _, _, ndt = dts
    a = rand((2, 6), ndt, seed=len(zeros))
    a[:, zeros] = 0
    xt, xh = both(a)
    yt, yh = tg.cumprod(xt, 1), torch.cumprod(xh, 1)
    close(yt, yh, ndt)
    grads_match(yt, yh, xt, xh, ndt)
    assert np.isfinite(xt.grad.numpy()).all()


@pytest.mark.parametrize("zeros", [[], [2], [1, 4], [0, 2, 5]])
def test_cumprod_and_prod_second_order_with_zeros_match_torch(zeros):
    a = rand((6,), seed=3)
    a[zeros] = 0
    v = rand((6,), seed=4)
    for name in ("cumprod", "prod"):
        xt, xh = both(a)
        yt = tg.cumprod(xt, 0) if name == "cumprod" else tg.prod(xt)
        yh = torch.cumprod(xh, 0) if name == "cumprod" else torch.prod(xh)
        w = rand(tuple(yh.shape), seed=5)
        (gt,) = tg.grad(yt, xt, tg.tensor(w), create_graph=True)
        (gh,) = torch.autograd.grad(yh, xh, torch.tensor(w), create_graph=True)
        close(gt, gh)
        (ht,) = tg.grad(gt, xt, tg.tensor(v))
        (hh,) = torch.autograd.grad(gh, xh, torch.tensor(v))
        close(ht, hh)


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("axis,keep", [(None, False), (0, False), (-1, True), ((0, 2), False),
                                       ((-1, -2), True)])
def test_prod_matches_torch(dts, axis, keep):
    _, _, ndt = dts
    a = rand((3, 4, 5), ndt, seed=11) * 0.5 + 1
    xt, xh = both(a)
    yt = tg.prod(xt, axis=axis, keepdims=keep)
    if axis is None:
        yh = torch.prod(xh)
    else:
        yh = xh
        for d in sorted([axis] if isinstance(axis, int) else [d % 3 for d in axis], reverse=True):
            yh = yh.prod(dim=d, keepdim=keep)
    assert yt.shape == tuple(yh.shape)
    close(yt, yh, ndt, rtol=1e-4 if ndt == np.float32 else 1e-10)
    grads_match(yt, yh, xt, xh, ndt)


@pytest.mark.parametrize("zeros", [[(0, 1)], [(0, 1), (0, 3)], [(1, 0), (1, 1), (1, 2)], [(0, 0), (1, 2)]])
def test_prod_gradient_with_one_and_two_zeros_matches_torch(zeros):
    a = rand((2, 4), seed=2)
    for z in zeros:
        a[z] = 0
    for axis in (1, None):
        xt, xh = both(a)
        yt = tg.prod(xt, axis=axis)
        yh = torch.prod(xh, dim=axis) if axis is not None else torch.prod(xh)
        close(yt, yh)
        grads_match(yt, yh, xt, xh)


def test_prod_noncontiguous_dim_alias_empty_and_int():
    leaf, v, a = noncontig((3, 4), seed=9)
    y = v.prod(dim=0, keepdim=True)
    np.testing.assert_allclose(y.numpy(), np.prod(a, axis=0, keepdims=True), rtol=1e-12)
    assert tg.prod(tg.zeros(0, 3), axis=0).tolist() == [1.0, 1.0, 1.0]  # empty product
    assert tg.prod(tg.tensor(np.arange(1, 6))).item() == 120
    assert tg.prod(tg.tensor(np.arange(1, 6))).dtype == tg.int64


def test_empty_scans():
    x = tg.zeros(0, 3, requires_grad=True)
    for f in (tg.cumsum, tg.cumprod, tg.logcumsumexp):
        y = f(x, 0)
        assert y.shape == (0, 3)
    v, i = tg.cummax(x, 1)
    assert v.shape == (0, 3) and i.shape == (0, 3) and i.dtype == tg.int64
    v, i = tg.sort(tg.zeros(2, 0), 1)
    assert v.shape == (2, 0) and i.shape == (2, 0)


def test_zero_dim_scans():
    x = tg.tensor(3.0, requires_grad=True)
    assert tg.cumsum(x, 0).shape == () and tg.cumsum(x, -1).item() == 3.0
    assert tg.cumprod(x, 0).item() == 3.0
    v, i = tg.sort(x)
    assert v.shape == () and i.shape == () and i.item() == 0
    for f in (tg.cummax, tg.cummin):
        v, i = f(x, 0)
        th = getattr(torch, f.__name__)(torch.tensor(3.0), 0)
        assert v.shape == i.shape == () and v.item() == th.values.item() and i.item() == th.indices.item()
        v.backward()
    assert x.grad.item() == 2.0
    v, i = tg.topk(x, 1)
    assert v.shape == () and v.item() == 3.0 and i.item() == 0
    v, i = tg.median(x, 0)
    assert v.shape == () and v.item() == 3.0 and tg.median(x).item() == 3.0
    assert tg.prod(x).item() == 3.0 and tg.norm(x).item() == 3.0 and tg.argsort(x).item() == 0
    with raises(IndexError, "cumsum", "0-d"):
        tg.cumsum(x, 1)


# ---------------------------------------------------------------------------
# logcumsumexp, cummax, cummin
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_logcumsumexp_matches_torch(dts, axis):
    _, _, ndt = dts
    a = rand((3, 4, 2), ndt, seed=axis + 3) * 5
    xt, xh = both(a)
    yt, yh = tg.logcumsumexp(xt, axis), torch.logcumsumexp(xh, dim=axis)
    close(yt, yh, ndt)
    grads_match(yt, yh, xt, xh, ndt)


def test_logcumsumexp_is_stable():
    y = tg.logcumsumexp(tg.tensor([-1000.0, 0.0, 1000.0, 1000.0], dtype=tg.float64), 0).numpy()
    np.testing.assert_allclose(y, [-1000.0, 0.0, 1000.0, 1000.0 + math.log(2)], rtol=1e-14)
    y = tg.logcumsumexp(tg.tensor([-np.inf, 1.0, np.inf], dtype=tg.float64), 0).numpy()
    assert y[0] == -np.inf and y[1] == 1.0 and y[2] == np.inf
    xt, xh = both(np.array([-1000.0, 0.0, 800.0, 3.0]))
    grads_match(tg.logcumsumexp(xt, 0), torch.logcumsumexp(xh, 0), xt, xh)


def test_logcumsumexp_noncontiguous_and_int_refused():
    leaf, v, a = noncontig((3, 4), seed=1)
    y = tg.logcumsumexp(v, dim=0)
    np.testing.assert_allclose(y.numpy(), np.logaddexp.accumulate(a, axis=0), rtol=1e-12)
    with raises(TypeError, "logcumsumexp", "int64"):
        tg.logcumsumexp(tg.tensor([1, 2]), 0)


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
def test_cummax_cummin_match_torch_with_ties_and_nan(name, dts):
    _, _, ndt = dts
    a = np.array([[1.0, 3.0, 3.0, 2.0, np.nan, 5.0, np.nan, 0.0],
                  [2.0, 2.0, 1.0, 1.0, 4.0, 4.0, 0.0, 0.0]], dtype=ndt)
    xt, xh = both(a)
    (vt, it), rh = getattr(tg, name)(xt, 1), getattr(torch, name)(xh, dim=1)
    np.testing.assert_array_equal(vt.numpy(), rh.values.detach().numpy())  # NaN == NaN here
    assert it.dtype == tg.int64
    np.testing.assert_array_equal(it.numpy(), rh.indices.numpy())
    # the gradient goes through the indices (scatter_add)
    g = rand(a.shape, ndt, seed=2)
    vt.backward(tg.tensor(g))
    rh.values.backward(torch.tensor(g))
    close(xt.grad, xh.grad, ndt)


def test_cummax_named_tuple_noncontiguous_and_int():
    leaf, v, a = noncontig((4, 3), seed=5)
    r = v.cummax(dim=-2)
    assert isinstance(r, tuple) and len(r) == 2
    values, indices = r
    assert values is r.values or np.array_equal(values.numpy(), r.values.numpy())
    np.testing.assert_array_equal(r.values.numpy(), np.maximum.accumulate(a, axis=0))
    th = torch.cummax(torch.tensor(a), 0)
    np.testing.assert_array_equal(r.indices.numpy(), th.indices.numpy())
    b = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int64)
    v, i = tg.cummin(tg.tensor(b), 0)
    th = torch.cummin(torch.tensor(b), 0)
    assert v.tolist() == th.values.tolist() and i.tolist() == th.indices.tolist()
    assert type(r).__name__ == "cummax"


# ---------------------------------------------------------------------------
# sort, argsort, topk
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("desc", [False, True])
def test_sort_matches_torch_stable(dts, axis, desc):
    _, _, ndt = dts
    a = np.round(rand((4, 5, 6), ndt, seed=axis + 4) * 2) / 2  # many ties
    xt, xh = both(a)
    vt, it = tg.sort(xt, axis, descending=desc)
    rh = torch.sort(xh, dim=axis, descending=desc, stable=True)
    np.testing.assert_array_equal(vt.numpy(), rh.values.detach().numpy())
    np.testing.assert_array_equal(it.numpy(), rh.indices.numpy())
    np.testing.assert_array_equal(tg.argsort(xt, axis, descending=desc, stable=True).numpy(),
                                  torch.argsort(xh, dim=axis, descending=desc, stable=True).numpy())
    grads_match(vt, rh.values, xt, xh, ndt)


@pytest.mark.parametrize("desc", [False, True])
def test_sort_puts_nan_last_as_torch(desc):
    a = np.array([[3.0, np.nan, 1.0, np.inf, -np.inf, np.nan, 2.0]])
    vt, it = tg.sort(tg.tensor(a), descending=desc)
    rh = torch.sort(torch.tensor(a), descending=desc, stable=True)
    np.testing.assert_array_equal(vt.numpy(), rh.values.numpy())
    np.testing.assert_array_equal(it.numpy(), rh.indices.numpy())
    assert np.isnan(vt.numpy()[0, -1 if not desc else 0])


def test_sort_noncontiguous_int64_and_numpy_kind():
    leaf, v, a = noncontig((5, 3), seed=6)
    vals, idx = v.sort(dim=0)
    np.testing.assert_array_equal(vals.numpy(), np.sort(a, axis=0))
    np.testing.assert_array_equal(idx.numpy(), np.argsort(a, axis=0, kind="stable"))
    vals.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), np.ones((3, 5)))
    b = np.array([[5, 1, 5, -2, 7, 1]], dtype=np.int64)
    vals, idx = tg.sort(tg.tensor(b), descending=True)
    rh = torch.sort(torch.tensor(b), descending=True, stable=True)
    assert vals.dtype == tg.int64 and vals.tolist() == rh.values.tolist()
    assert idx.tolist() == rh.indices.tolist()
    assert tg.argsort(tg.tensor(b), kind="stable").tolist() == np.argsort(b, kind="stable").tolist()
    with raises(ValueError, "argsort", "kind"):
        tg.argsort(tg.tensor(b), kind="bogo")


@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("k,axis,largest", [(1, -1, True), (3, 1, False), (4, 0, True), (0, 2, True),
                                            (6, -1, False)])
def test_topk_matches_torch(dts, k, axis, largest):
    _, _, ndt = dts
    a = rand((4, 5, 6), ndt, seed=k)
    xt, xh = both(a)
    vt, it = tg.topk(xt, k, axis, largest=largest)
    rh = torch.topk(xh, k, dim=axis, largest=largest, sorted=True)
    np.testing.assert_array_equal(vt.numpy(), rh.values.detach().numpy())
    np.testing.assert_array_equal(it.numpy(), rh.indices.numpy())
    if k:
        grads_match(vt, rh.values, xt, xh, ndt)


def test_topk_ties_take_the_lower_index_and_nan_counts_largest():
    vals, idx = tg.topk(tg.tensor([1.0, 3.0, 2.0, 3.0, 3.0]), 2)
    assert vals.tolist() == [3.0, 3.0] and idx.tolist() == [1, 3]
    vals, idx = tg.topk(tg.tensor([1.0, 2.0, 2.0, 0.0]), 2, largest=False)
    assert idx.tolist() == [3, 0]
    vals, idx = tg.topk(tg.tensor([1.0, np.nan, 2.0]), 1)
    th = torch.topk(torch.tensor([1.0, np.nan, 2.0]), 1)
    assert idx.tolist() == th.indices.tolist() == [1]
    # the gradient of tied values goes to the picked positions only
    x = tg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    tg.topk(x, 1).values.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_topk_named_tuple_and_noncontiguous():
    leaf, v, a = noncontig((5, 3), seed=8)
    r = v.topk(2, dim=0, largest=False)
    assert type(r).__name__ == "topk" and r.values.shape == (2, 3) and r.indices.dtype == tg.int64
    np.testing.assert_array_equal(r.values.numpy(), np.sort(a, axis=0)[:2])
    values, indices = r
    np.testing.assert_array_equal(indices.numpy(), np.argsort(a, axis=0, kind="stable")[:2])


# ---------------------------------------------------------------------------
# median
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n", [5, 6])
@pytest.mark.parametrize("axis,keep", [(0, False), (-1, True), (1, False)])
def test_median_matches_torch(dts, n, axis, keep):
    _, _, ndt = dts
    a = rand((3, n, 4), ndt, seed=n)
    xt, xh = both(a)
    vt, it = tg.median(xt, axis, keepdims=keep)
    rh = torch.median(xh, dim=axis, keepdim=keep)
    np.testing.assert_array_equal(vt.numpy(), rh.values.detach().numpy())
    np.testing.assert_array_equal(it.numpy(), rh.indices.numpy())
    grads_match(vt, rh.values, xt, xh, ndt)
    whole = tg.median(xt)
    assert whole.shape == () and whole.item() == torch.median(xh).item()


def test_median_is_the_lower_middle_and_nan_propagates():
    assert tg.median(tg.tensor([4.0, 1.0, 3.0, 2.0])).item() == 2.0  # NumPy would say 2.5
    vals, idx = tg.median(tg.tensor([[1.0, np.nan, 3.0], [2.0, 1.0, 0.0]]), 1)
    th = torch.median(torch.tensor([[1.0, np.nan, 3.0], [2.0, 1.0, 0.0]]), 1)
    assert np.isnan(vals.numpy()[0]) and vals.numpy()[1] == 1.0
    assert idx.tolist() == th.indices.tolist()
    assert np.isnan(tg.median(tg.tensor([1.0, np.nan])).item())
    assert tg.median(tg.tensor([3, 1, 2])).item() == 2
    leaf, v, a = noncontig((5, 2), seed=3)
    np.testing.assert_array_equal(v.median(dim=0).values.numpy(), np.sort(a, axis=0)[2])


# ---------------------------------------------------------------------------
# std / var options, std_mean, var_mean
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("kw,corr", [({}, 0), ({"ddof": 1}, 1), ({"correction": 1}, 1),
                                     ({"correction": 0}, 0), ({"unbiased": True}, 1),
                                     ({"unbiased": False}, 0), ({"ddof": 2}, 2)])
@pytest.mark.parametrize("axis", [None, 1, (0, -1)])
def test_std_var_options_match_torch(dts, kw, corr, axis):
    _, _, ndt = dts
    a = rand((3, 4, 5), ndt, seed=corr)
    for name in ("var", "std"):
        xt, xh = both(a)
        yt = getattr(tg, name)(xt, axis=axis, **kw)
        yh = getattr(torch, name)(xh, dim=axis, correction=corr)
        close(yt, yh, ndt)
        grads_match(yt, yh, xt, xh, ndt)
    for name in ("var_mean", "std_mean"):
        xt, xh = both(a)
        rt = getattr(tg, name)(xt, axis=axis, keepdims=True, **kw)
        rh = getattr(torch, name)(xh, dim=axis, correction=corr, keepdim=True)
        assert isinstance(rt, tuple) and len(rt) == 2
        for t, h in zip(rt, rh):
            close(t, h, ndt)
        w = [rand(tuple(h.shape), ndt, seed=s) for s, h in enumerate(rh)]
        (rt[0] * tg.tensor(w[0]) + rt[1] * tg.tensor(w[1])).sum().backward()
        (rh[0] * torch.tensor(w[0]) + rh[1] * torch.tensor(w[1])).sum().backward()
        close(xt.grad, xh.grad, ndt)


def test_std_mean_method_dim_alias_noncontiguous_and_int():
    leaf, v, a = noncontig((4, 3), seed=12)
    s, m = v.std_mean(dim=0, keepdim=True, unbiased=True)
    np.testing.assert_allclose(s.numpy(), np.std(a, axis=0, ddof=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(m.numpy(), np.mean(a, axis=0, keepdims=True), rtol=1e-12)
    v_, m_ = tg.var_mean(tg.tensor([1, 2, 3, 4]))
    assert v_.dtype == tg.float64 and v_.item() == 1.25 and m_.item() == 2.5
    assert tg.std(tg.tensor([1.0, 2.0, 3.0, 4.0]), 0, correction=1).item() == pytest.approx(math.sqrt(5 / 3))


def test_std_var_option_errors():
    x = tg.ones(3, 4)
    with raises(TypeError, "var", "only one"):
        x.var(ddof=1, correction=1)
    with raises(TypeError, "std_mean", "only one"):
        tg.std_mean(x, unbiased=True, ddof=0)
    with raises(TypeError, "var_mean", "alias"):
        tg.var_mean(x, axis=0, dim=0)
    with raises(IndexError, "std"):
        x.std(axis=2)
    with raises(ValueError, "var", "whole"):
        x.var(correction=0.5)


# ---------------------------------------------------------------------------
# norm
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dts", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, 1.5, math.inf, -math.inf, 0])
@pytest.mark.parametrize("axis,keep", [(None, False), (1, True), ((0, -1), False)])
def test_norm_matches_torch(dts, p, axis, keep):
    _, _, ndt = dts
    a = rand((3, 4, 5), ndt, seed=int(p) if math.isfinite(p) else 9)
    xt, xh = both(a)
    yt = tg.norm(xt, p, axis=axis, keepdims=keep)
    yh = torch.linalg.vector_norm(xh, ord=p, dim=axis, keepdim=keep)
    assert yt.shape == tuple(yh.shape)
    close(yt, yh, ndt, rtol=1e-4 if ndt == np.float32 else 1e-10)
    if p != 0:
        grads_match(yt, yh, xt, xh, ndt)


def test_norm_spellings_fro_zero_vector_and_errors():
    a = rand((3, 4), seed=1)
    xt, xh = both(a)
    close(xt.norm(), torch.norm(xh))
    close(tg.norm(xt, "fro", dim=(0, 1)), torch.norm(xh, p="fro", dim=(0, 1)))
    close(tg.norm(xt, ord=1, dim=0, keepdim=True), torch.norm(xh, p=1, dim=0, keepdim=True))
    # the gradient of the 2-norm at the zero vector is 0, as PyTorch's
    for p in (2, 3, math.inf):
        z, zh = both(np.zeros(4))
        tg.norm(z, p).backward()
        torch.linalg.vector_norm(zh, p).backward()
        assert z.grad.tolist() == zh.grad.tolist() == [0.0] * 4
    # second order through the norm
    x = tg.tensor(a, requires_grad=True)
    assert gradgradcheck(lambda t: tg.norm(t, 2, axis=1), [x])
    assert gradgradcheck(lambda t: tg.norm(t, 3), [x])
    with raises(ValueError, "norm", "nuc", "singular"):
        xt.norm("nuc")
    with raises(ValueError, "norm", "bogus"):
        xt.norm("bogus")
    with raises(ValueError, "norm", "p = -1"):
        xt.norm(-1)
    with raises(ValueError, "norm", "fro", "two axes"):
        tg.norm(tg.ones(2, 2, 2), "fro", axis=(0, 1, 2))
    with raises(TypeError, "norm", "int64"):
        tg.norm(tg.tensor([1, 2]))
    with raises(IndexError, "norm"):
        xt.norm(axis=3)
    with raises(ValueError, "norm", "empty"):
        tg.norm(tg.zeros(0, 2), math.inf, axis=0)
    assert tg.norm(tg.zeros(0, 2), 2, axis=0).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------
# errors: every bad input raises, naming the op
# ---------------------------------------------------------------------------

def test_axis_out_of_range_errors_name_the_op():
    x = tg.ones(2, 3)
    for f, exc in ((lambda: tg.cumsum(x, 2), IndexError), (lambda: tg.cumprod(x, -3), IndexError),
                   (lambda: tg.logcumsumexp(x, 5), IndexError), (lambda: tg.cummax(x, 2), IndexError),
                   (lambda: tg.cummin(x, -3), IndexError), (lambda: tg.sort(x, 2), IndexError),
                   (lambda: tg.argsort(x, -3), IndexError), (lambda: tg.topk(x, 1, 2), IndexError),
                   (lambda: tg.median(x, 2), IndexError), (lambda: tg.prod(x, 2), IndexError)):
        with pytest.raises(exc) as info:
            f()
        assert "axis" in str(info.value)
    for name in ("cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "sort", "argsort",
                 "median", "prod"):
        with raises(IndexError, name):
            getattr(tg, name)(x, 7)


def test_bad_arguments_raise_naming_the_op():
    x = tg.ones(2, 3)
    with raises(ValueError, "topk", "k = 4", "(2, 3)"):
        tg.topk(x, 4)
    with raises(ValueError, "topk", "k = -1"):
        x.topk(-1)
    with raises(TypeError, "topk", "k"):
        x.topk(1.5)
    with raises(TypeError, "logcumsumexp", "axis"):
        x.logcumsumexp()
    with raises(TypeError, "cummax", "axis"):
        tg.cummax(x)
    with raises(TypeError, "sort", "axis"):
        x.sort(axis="0")
    with raises(TypeError, "cumsum", "alias"):
        x.cumsum(axis=0, dim=0)
    with raises(ValueError, "median", "empty"):
        tg.median(tg.zeros(2, 0), 1)
    with raises(ValueError, "median", "empty"):
        tg.median(tg.zeros(0))
    with raises(TypeError, "cumsum"):
        x.cumsum(0, dtype="not a dtype")


# ---------------------------------------------------------------------------
# special values, sum(dtype=) and mean(dtype=)
# ---------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324]


SPECIAL_CALLS = {
    "cumsum": (lambda x: tg.cumsum(x, 0), lambda x: torch.cumsum(x, 0)),
    "cumprod": (lambda x: tg.cumprod(x, 0), lambda x: torch.cumprod(x, 0)),
    "prod": (lambda x: tg.prod(x), lambda x: torch.prod(x)),
    "logcumsumexp": (lambda x: tg.logcumsumexp(x, 0), lambda x: torch.logcumsumexp(x, 0)),
    "cummax": (lambda x: tg.cummax(x, 0).values, lambda x: torch.cummax(x, 0).values),
    "cummin": (lambda x: tg.cummin(x, 0).values, lambda x: torch.cummin(x, 0).values),
    "sort": (lambda x: tg.sort(x).values, lambda x: torch.sort(x).values),
    "sort-desc": (lambda x: tg.sort(x, descending=True).values,
                  lambda x: torch.sort(x, descending=True).values),
    "topk": (lambda x: tg.topk(x, 3).values, lambda x: torch.topk(x, 3).values),
    "median": (lambda x: tg.median(x), lambda x: torch.median(x)),
    "std": (lambda x: tg.std(x), lambda x: torch.std(x, correction=0)),
    "norm2": (lambda x: tg.norm(x), lambda x: torch.linalg.vector_norm(x)),
    "norminf": (lambda x: tg.norm(x, math.inf), lambda x: torch.linalg.vector_norm(x, math.inf)),
    "norm1": (lambda x: tg.norm(x, 1), lambda x: torch.linalg.vector_norm(x, 1)),
}


@pytest.mark.parametrize("name", sorted(SPECIAL_CALLS))
def test_special_values_match_torch_and_backward_survives(name):
    """inf, nan, -0.0, huge and subnormal values: the values are PyTorch's
    (NaN where it gives NaN) and backward runs."""
    ft, fh = SPECIAL_CALLS[name]
    with np.errstate(all="ignore"):
        xt, xh = both(np.array(SPECIAL))
        yt, yh = ft(xt), fh(xh)
        np.testing.assert_array_equal(yt.numpy(), yh.detach().numpy())
        yt.sum().backward()
        assert xt.grad.shape == xt.shape


def test_sum_prod_mean_dtype():
    x = tg.tensor([[1, 2], [3, 4]])
    y = x.sum(dtype=tg.float32)
    assert y.dtype == tg.float32 and y.item() == 10.0
    y = tg.sum(x, 0, dtype="float64")
    assert y.dtype == tg.float64 and y.tolist() == [4.0, 6.0]
    assert x.mean(dtype=tg.float32).dtype == tg.float32 and x.mean(dtype=tg.float32).item() == 2.5
    assert tg.prod(x, dtype=tg.float64).dtype == tg.float64
    a = rand((3, 4), np.float32)
    xt, xh = both(a)
    yt, yh = xt.sum(dim=1, dtype=tg.float64), xh.sum(dim=1, dtype=torch.float64)
    assert yt.dtype == tg.float64
    close(yt, yh, np.float32)
    grads_match(yt, yh, xt, xh, np.float32)
    assert xt.grad.dtype == tg.float32
    xt, xh = both(a)
    yt, yh = tg.mean(xt, 0, dtype=tg.float64), torch.mean(xh, 0, dtype=torch.float64)
    close(yt, yh, np.float32)
    with raises(TypeError, "max", "dtype"):
        x.max(dtype=tg.float32)
    with raises(TypeError, "sum"):
        x.sum(dtype="no such dtype")


@pytest.mark.parametrize("a", [[1.0, 2.0, 2.0, 3.0], [2.0, 2.0, 2.0, 1.0, 5.0], [[1.0, 3.0], [3.0, 0.0]],
                               [1.0, np.inf, np.inf], [-np.inf, -np.inf, 3.0], [np.nan, 1.0]])
def test_median_of_all_shares_the_gradient_between_ties_as_torch(a):
    xt, xh = both(np.array(a))
    yt, yh = tg.median(xt), torch.median(xh)
    assert yt.shape == () and (yt.item() == yh.item() or (np.isnan(yt.item()) and np.isnan(yh.item())))
    yt.backward()
    yh.backward()
    assert xt.grad.tolist() == xh.grad.tolist()
    # second order away from ties (at a tie the median is not differentiable)
    x = tg.tensor(np.array([1.0, 4.0, 2.0, 3.5, 0.5]), requires_grad=True)
    assert gradgradcheck(lambda t: tg.median(t) * tg.median(t), [x])


def test_norm_extreme_magnitudes_do_not_overflow_or_underflow():
    for scale in (1e200, 1e-200, 1e-300):
        got = tg.norm(tg.tensor([3.0 * scale, 4.0 * scale], dtype=tg.float64)).item()
        assert got == pytest.approx(5.0 * scale, rel=1e-14)
    assert tg.norm(tg.tensor([3e-30, 4e-30], dtype=tg.float32)).item() == pytest.approx(5e-30, rel=1e-6)
    assert tg.norm(tg.tensor([3e30, 4e30], dtype=tg.float32)).item() == pytest.approx(5e30, rel=1e-6)


def test_float_only_ops_refuse_int64_and_std_converts_it():
    ints = tg.tensor([[3, 1], [2, 4]])
    with raises(TypeError, "logcumsumexp", "int64"):
        tg.logcumsumexp(ints, 0)
    with raises(TypeError, "norm", "int64"):
        tg.norm(ints)
    # NumPy's rule: the std of integers is float64
    assert tg.std(ints).dtype == tg.float64 and tg.std(ints).item() == pytest.approx(np.std([3, 1, 2, 4]))


# ---------------------------------------------------------------------------
# Hypothesis: every op on strided views (transposes, slices with any step
# sign) made on the tape, values and gradients against PyTorch on a copy
# ---------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HSET = settings(max_examples=int(__import__("os").environ.get("TAPEGRAD_HYPOTHESIS_EXAMPLES", 25)),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VIEW_OPS = {
    # name: (tapegrad f(x, axis), torch f(x, axis))
    "cumsum": (lambda x, a: tg.cumsum(x, a), lambda x, a: torch.cumsum(x, a)),
    "cumprod": (lambda x, a: tg.cumprod(x, a), lambda x, a: torch.cumprod(x, a)),
    "logcumsumexp": (lambda x, a: tg.logcumsumexp(x, a), lambda x, a: torch.logcumsumexp(x, a)),
    "cummax": (lambda x, a: tg.cummax(x, a).values, lambda x, a: torch.cummax(x, a).values),
    "cummin": (lambda x, a: x.cummin(dim=a).values, lambda x, a: torch.cummin(x, a).values),
    "sort": (lambda x, a: tg.sort(x, a).values, lambda x, a: torch.sort(x, dim=a, stable=True).values),
    "sort-desc": (lambda x, a: tg.sort(x, a, descending=True).values,
                  lambda x, a: torch.sort(x, dim=a, descending=True, stable=True).values),
    "topk": (lambda x, a: tg.topk(x, 1, a).values, lambda x, a: torch.topk(x, 1, a).values),
    "median": (lambda x, a: tg.median(x, a).values, lambda x, a: torch.median(x, a).values),
    "prod": (lambda x, a: tg.prod(x, a), lambda x, a: torch.prod(x, a)),
    "std": (lambda x, a: tg.std(x, a, correction=1), lambda x, a: torch.std(x, a, correction=1)),
    "norm": (lambda x, a: tg.norm(x, 3, a), lambda x, a: torch.linalg.vector_norm(x, 3, a)),
}


@st.composite
def views(draw):
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    perm = tuple(draw(st.permutations(range(nd))))
    key = tuple(slice(None, None, draw(st.sampled_from([1, 2, -1, -2]))) for _ in range(nd))
    return shape, perm, key


@HSET
@given(view=views(), name=st.sampled_from(sorted(VIEW_OPS)), seed=st.integers(0, 2 ** 31 - 1),
       data=st.data())
def test_ops_on_strided_views_property(view, name, seed, data):
    shape, perm, key = view
    base = np.random.default_rng(seed).standard_normal(shape)
    leaf = tg.tensor(base, requires_grad=True)
    v = leaf.permute(*perm)[key]
    x = np.transpose(base, perm)[key].copy()  # C order, positive strides (torch needs them)
    assert v.shape == x.shape
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    if name == "std" and x.shape[axis] < 2:
        return
    ft, fh = VIEW_OPS[name]
    y = ft(v, axis)
    xh = torch.tensor(x, requires_grad=True)
    yh = fh(xh, axis)
    np.testing.assert_allclose(y.numpy(), yh.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(seed + 1).standard_normal(tuple(yh.shape))
    y.backward(tg.tensor(w))
    yh.backward(torch.tensor(w))
    want = np.zeros_like(base)
    np.transpose(want, perm)[key] += xh.grad.numpy()
    np.testing.assert_allclose(leaf.grad.numpy(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("zeros", [[], [1], [0, 4], [5], [2, 3]])
@pytest.mark.parametrize("create_graph", [False, True])
def test_reversed_scans_used_by_the_vjps_match_torch(zeros, create_graph):
    """The reversed cumsum/cumprod/logcumsumexp (internal: the VJPs use them;
    i1 = 1 in the registry's generic call), first order through the O(n)
    kernel and, with create_graph, through the differentiable formula."""
    a = rand((3, 6), seed=len(zeros))
    a[:, zeros] = 0
    for name in ("cumsum", "cumprod", "logcumsumexp"):
        xt, xh = both(a)
        yt = tg._C._op_apply(name, [xt], "i0=1 i1=1")
        yh = getattr(torch, name)(xh.flip(1), 1).flip(1)
        close(yt, yh)
        w = rand(a.shape, seed=7)
        (gt,) = tg.grad(yt, xt, tg.tensor(w), create_graph=create_graph)
        (gh,) = torch.autograd.grad(yh, xh, torch.tensor(w), create_graph=create_graph)
        close(gt, gh)
        if create_graph and name == "cumsum":  # linear: its gradient does not depend on x
            assert not gt.requires_grad
        elif create_graph:
            v = rand(a.shape, seed=8)
            (ht,) = tg.grad(gt, xt, tg.tensor(v))
            (hh,) = torch.autograd.grad(gh, xh, torch.tensor(v), allow_unused=True)
            close(ht, hh if hh is not None else torch.zeros_like(xh))


def test_sort_and_argsort_axis_none_flatten_as_numpy():
    a = rand((3, 4), seed=21)
    xt = tg.tensor(a, requires_grad=True)
    np.testing.assert_array_equal(tg.argsort(xt, axis=None).numpy(), np.argsort(a, axis=None, kind="stable"))
    vals, idx = xt.sort(axis=None)
    np.testing.assert_array_equal(vals.numpy(), np.sort(a, axis=None))
    vals.sum().backward()
    assert xt.grad.tolist() == np.ones((3, 4)).tolist()
    assert xt.sort().values.shape == (3, 4)  # no axis given: the last one (PyTorch)


def test_no_tensor_memory_kept_over_many_first_and_second_order_steps():
    """Every op of this file, forward, backward and create_graph, 200 times:
    the tensor memory in use comes back to where it was (no leak in the ops,
    their VJPs or the named tuples)."""
    import gc
    import os
    if os.environ.get("TAPEGRAD_SANITIZED"):
        pytest.skip("heap sizes are meaningless under ASan (tests/sanitize.sh)")
    x = tg.tensor(rand((6, 7), seed=1), requires_grad=True)
    z = rand((6, 7), seed=2)
    z[:, 3] = 0
    xz = tg.tensor(z, requires_grad=True)

    def step():
        outs = [tg.cumsum(x, 1), tg.cumprod(xz, 1), tg.prod(xz, 1), tg.logcumsumexp(x, 0),
                tg.cummax(x, 1).values, tg.cummin(x, 0).values, tg.sort(x, 1).values,
                tg.topk(x, 3).values, tg.median(x, 1).values, tg.median(x), tg.std(x, 1),
                tg.var_mean(x)[1], tg.std_mean(x, 0)[0], tg.norm(x, 3, 1), tg.norm(x, math.inf)]
        s = sum(o.sum() for o in outs)
        g = tg.grad(s, [x, xz], create_graph=True)
        (g[0].sum() + g[1].sum()).backward()
        x.grad = None
        xz.grad = None
    for _ in range(20):
        step()
    gc.collect()
    before = tg.memory_stats()["live_bytes"]
    for _ in range(200):
        step()
    gc.collect()
    assert tg.memory_stats()["live_bytes"] == before
