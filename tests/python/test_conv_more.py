"""conv2d with groups, dilation and asymmetric/'same' padding, conv1d,
conv_transpose2d, the pooling options (ceil_mode, dilation,
count_include_pad, divisor_override, return_indices), max_unpool2d,
adaptive_avg_pool2d and interpolate (csrc/ops/conv.c): values and all
gradients against PyTorch in float32 and float64, finite differences to
second order in float64, and the errors."""
import itertools

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")
F = tg.nn.functional
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _rng(seed):
    return np.random.default_rng(seed)


def _pair(*arrays, grad=True):
    """The same arrays as tapegrad and torch leaves."""
    ts = [None if a is None else tg.tensor(a, requires_grad=grad) for a in arrays]
    ps = [None if a is None else torch.tensor(a, requires_grad=grad) for a in arrays]
    return ts, ps


def _check_values_and_grads(tg_out, torch_out, ts, ps, dtype, seed=0):
    tol = TOL[dtype]
    np.testing.assert_allclose(tg_out.numpy(), torch_out.detach().numpy(), **tol)
    g = _rng(seed).standard_normal(tuple(torch_out.shape)).astype(dtype)
    (tg_out * tg.tensor(g)).sum().backward()
    (torch_out * torch.tensor(g)).sum().backward()
    for t, p in zip(ts, ps):
        if t is None:
            continue
        np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), **tol)


# ---- conv2d ---------------------------------------------------------------

CONV_GRID = [
    # (N, C, H, W), (O, kh, kw), stride, padding, dilation, groups, bias
    ((2, 4, 9, 8), (6, 3, 3), 1, 1, 1, 1, True),
    ((1, 4, 9, 8), (6, 3, 2), (2, 1), (1, 0), (2, 3), 2, True),
    ((3, 6, 7, 10), (6, 2, 3), 2, (0, 2), 2, 3, False),
    ((2, 6, 8, 8), (6, 3, 3), 1, 2, 2, 6, True),  # depthwise
    ((2, 4, 11, 9), (2, 4, 2), (3, 2), (2, 1), (1, 2), 2, True),
    ((1, 2, 6, 6), (4, 1, 5), 1, (0, 2), (1, 1), 1, False),
    ((2, 3, 12, 7), (3, 5, 3), (2, 3), 1, (2, 1), 1, True),
    ((2, 8, 6, 5), (4, 1, 1), 1, 0, 1, 4, True),  # grouped pointwise
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups,bias", CONV_GRID)
def test_conv2d_grid_vs_torch(xs, ws, stride, padding, dilation, groups, bias, dtype):
    r = _rng(1)
    O, kh, kw = ws
    x = r.standard_normal(xs).astype(dtype)
    w = r.standard_normal((O, xs[1] // groups, kh, kw)).astype(dtype)
    b = r.standard_normal(O).astype(dtype) if bias else None
    ts, ps = _pair(x, w, b)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check_values_and_grads(F.conv2d(*ts, **kw_), TF.conv2d(*ps, **kw_), ts, ps, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ks,dilation", [((3, 3), 1), ((2, 4), 1), ((4, 3), (2, 1)), ((1, 2), 3)])
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_conv2d_padding_same_and_valid_vs_torch(ks, dilation, dtype):
    r = _rng(2)
    x = r.standard_normal((2, 2, 7, 6)).astype(dtype)
    w = r.standard_normal((3, 2) + ks).astype(dtype)
    for mode in ("same", "valid"):
        ts, ps = _pair(x, w)
        y = F.conv2d(*ts, padding=mode, dilation=dilation)
        if mode == "same":
            assert y.shape[2:] == x.shape[2:]
        _check_values_and_grads(y, TF.conv2d(*ps, padding=mode, dilation=dilation), ts, ps, dtype)


def test_conv2d_four_side_padding_is_f_pad_then_conv():
    r = _rng(3)
    x = r.standard_normal((2, 2, 5, 6))
    w = r.standard_normal((3, 2, 3, 2))
    pads = (2, 0, 1, 3)  # left, right, top, bottom
    ts, ps = _pair(x, w)
    _check_values_and_grads(F.conv2d(*ts, padding=pads, stride=(2, 1)),
                            TF.conv2d(TF.pad(ps[0], pads), ps[1], stride=(2, 1)), ts, ps, np.float64)


def test_conv2d_non_contiguous_inputs():
    r = _rng(4)
    x = r.standard_normal((2, 4, 7, 9))
    w = r.standard_normal((4, 2, 3, 3))
    xt = tg.tensor(x.transpose(0, 1, 3, 2).copy()).swapaxes(2, 3)  # a transposed view
    wt = tg.tensor(w.transpose(1, 0, 2, 3).copy()).permute(1, 0, 2, 3)
    assert not xt.is_contiguous and not wt.is_contiguous
    y = F.conv2d(xt, wt, dilation=2, groups=2)
    ref = TF.conv2d(torch.tensor(x), torch.tensor(w), dilation=2, groups=2)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


GG_CONV = [
    ((1, 4, 6, 5), (4, 3, 2), (1, 2), (1, 0), (2, 1), 2),
    ((2, 3, 5, 6), (3, 2, 3), 2, 1, (1, 2), 3),
    ((1, 2, 5, 5), (2, 2, 2), 1, "same", 2, 1),
    ((1, 2, 5, 4), (3, 3, 2), 1, (1, 0, 2, 1), 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", GG_CONV)
def test_conv2d_gradcheck_and_gradgradcheck(xs, ws, stride, padding, dilation, groups):
    r = _rng(5)
    O, kh, kw = ws
    x = tg.tensor(r.standard_normal(xs), requires_grad=True)
    w = tg.tensor(r.standard_normal((O, xs[1] // groups, kh, kw)), requires_grad=True)
    b = tg.tensor(r.standard_normal(O), requires_grad=True)
    f = lambda *a: F.conv2d(*a, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert gradcheck(f, [x, w, b])
    assert gradgradcheck(f, [x, w, b])


def test_conv2d_grouped_dilated_same_bits_on_one_and_two_threads():
    r = _rng(6)
    x = tg.tensor(r.standard_normal((8, 6, 12, 11)).astype(np.float32), requires_grad=True)
    w = tg.tensor(r.standard_normal((6, 2, 3, 4)).astype(np.float32), requires_grad=True)
    before = tg.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            x.grad = w.grad = None
            y = F.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=3)
            (y * y).sum().backward()
            out.append((y.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()))
    finally:
        tg.set_num_threads(before)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# ---- conv1d ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups",
                         [((2, 3, 11), (4, 3), 1, 1, 1, 1), ((1, 4, 12), (6, 2), 2, 0, 3, 2),
                          ((3, 4, 9), (4, 4), 1, "same", 2, 4), ((2, 2, 8), (3, 4), 1, "same", 1, 1),
                          ((2, 2, 8), (3, 3), 3, "valid", 1, 1)])
def test_conv1d_vs_torch(xs, ws, stride, padding, dilation, groups, dtype):
    r = _rng(7)
    x = r.standard_normal(xs).astype(dtype)
    w = r.standard_normal((ws[0], xs[1] // groups, ws[1])).astype(dtype)
    b = r.standard_normal(ws[0]).astype(dtype)
    ts, ps = _pair(x, w, b)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check_values_and_grads(F.conv1d(*ts, **kw_), TF.conv1d(*ps, **kw_), ts, ps, dtype)


def test_conv1d_gradgradcheck():
    r = _rng(8)
    x = tg.tensor(r.standard_normal((2, 4, 7)), requires_grad=True)
    w = tg.tensor(r.standard_normal((2, 2, 3)), requires_grad=True)
    b = tg.tensor(r.standard_normal(2), requires_grad=True)
    f = lambda *a: F.conv1d(*a, stride=2, padding=1, dilation=2, groups=2)
    assert gradcheck(f, [x, w, b]) and gradgradcheck(f, [x, w, b])


# ---- conv_transpose2d -----------------------------------------------------

CT_GRID = [
    # (N, Cin, H, W), (Cout/groups, kh, kw), stride, padding, output_padding, groups, dilation
    ((2, 3, 4, 5), (2, 3, 3), 1, 0, 0, 1, 1),
    ((2, 3, 4, 5), (2, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 3, 4), (3, 2, 3), (2, 3), (0, 1), (1, 2), 2, (1, 2)),
    ((2, 6, 5, 3), (1, 3, 2), (3, 1), (1, 0), (2, 0), 3, (2, 1)),
    ((1, 2, 3, 3), (4, 4, 1), 2, (1, 0), (0, 1), 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("xs,ws,stride,padding,output_padding,groups,dilation", CT_GRID)
def test_conv_transpose2d_vs_torch(xs, ws, stride, padding, output_padding, groups, dilation, dtype):
    r = _rng(9)
    x = r.standard_normal(xs).astype(dtype)
    w = r.standard_normal((xs[1],) + ws).astype(dtype)
    b = r.standard_normal(ws[0] * groups).astype(dtype)
    ts, ps = _pair(x, w, b)
    kw_ = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
               dilation=dilation)
    _check_values_and_grads(F.conv_transpose2d(*ts, **kw_), TF.conv_transpose2d(*ps, **kw_), ts, ps, dtype)


def test_conv_transpose2d_gradgradcheck():
    r = _rng(10)
    x = tg.tensor(r.standard_normal((1, 4, 3, 3)), requires_grad=True)
    w = tg.tensor(r.standard_normal((4, 1, 2, 3)), requires_grad=True)
    b = tg.tensor(r.standard_normal(2), requires_grad=True)
    f = lambda *a: F.conv_transpose2d(*a, stride=2, padding=(0, 1), output_padding=1, groups=2)
    assert gradcheck(f, [x, w, b]) and gradgradcheck(f, [x, w, b])


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    """<conv2d(u, w), v> == <u, conv_transpose2d(v, w)> for the matching geometry."""
    r = _rng(11)
    w = tg.tensor(r.standard_normal((6, 2, 3, 2)))
    u = tg.tensor(r.standard_normal((2, 4, 9, 8)))
    y = F.conv2d(u, w, stride=2, padding=1, dilation=(1, 2), groups=2)
    v = tg.tensor(r.standard_normal(y.shape))
    back = F.conv_transpose2d(v, w, stride=2, padding=1, dilation=(1, 2), groups=2, output_padding=(0, 1))
    assert back.shape == u.shape
    assert abs(float((y * v).sum()) - float((u * back).sum())) < 1e-9


# ---- pooling --------------------------------------------------------------

MAXPOOL_GRID = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 0), 1, True),
    (2, 2, 0, 1, True), ((2, 3), 1, (1, 1), (2, 1), False), (3, (2, 3), 1, 2, True),
    (2, 3, 1, 3, True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 2, 7, 8), (2, 3, 9, 6)], ids=["7x8", "9x6"])
@pytest.mark.parametrize("k,s,p,d,cm", MAXPOOL_GRID)
def test_max_pool2d_grid_vs_torch(shape, k, s, p, d, cm, dtype):
    x = _rng(12).permutation(np.prod(shape)).reshape(shape).astype(dtype)  # no ties
    ts, ps = _pair(x)
    kw_ = dict(stride=s, padding=p, dilation=d, ceil_mode=cm)
    y, i = F.max_pool2d(ts[0], k, return_indices=True, **kw_)
    py, pi = TF.max_pool2d(ps[0], k, return_indices=True, **kw_)
    assert i.dtype == tg.int64 and i.shape == y.shape
    np.testing.assert_array_equal(i.numpy(), pi.numpy())
    _check_values_and_grads(y, py, ts, ps, dtype)


AVGPOOL_GRID = [
    # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    (2, None, 0, False, True, None), (3, 2, 1, True, True, None), (3, 2, 1, True, False, None),
    ((3, 2), (2, 1), (1, 1), False, False, None), ((2, 3), 2, (1, 1), True, True, 5),
    (3, 3, 1, True, False, 2), (2, 1, 1, False, False, None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 2, 7, 8), (2, 3, 6, 5)], ids=["7x8", "6x5"])
@pytest.mark.parametrize("k,s,p,cm,cip,div", AVGPOOL_GRID)
def test_avg_pool2d_grid_vs_torch(shape, k, s, p, cm, cip, div, dtype):
    x = _rng(13).standard_normal(shape).astype(dtype)
    ts, ps = _pair(x)
    kw_ = dict(stride=s, padding=p, ceil_mode=cm, count_include_pad=cip, divisor_override=div)
    _check_values_and_grads(F.avg_pool2d(ts[0], k, **kw_), TF.avg_pool2d(ps[0], k, **kw_), ts, ps, dtype)


@pytest.mark.parametrize("kind,kw_", [
    ("max", dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True)),
    ("avg", dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg", dict(kernel_size=2, stride=1, padding=1, divisor_override=3)),
])
def test_pooling_gradgradcheck(kind, kw_):
    x = tg.tensor(_rng(14).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0, requires_grad=True)
    f = (lambda a: F.max_pool2d(a, **kw_)) if kind == "max" else (lambda a: F.avg_pool2d(a, **kw_))
    assert gradcheck(f, [x]) and gradgradcheck(f, [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k,s,p,out", [(2, None, 0, (8, 7)), (3, 2, 1, (8, 7)), (2, 2, 0, (9, 7)),
                                        ((3, 2), (2, 1), (1, 0), (8, 7)), (2, None, 0, [2, 3, 8, 7])])
def test_max_unpool2d_vs_torch(k, s, p, out, dtype):
    x = _rng(15).permutation(2 * 3 * 8 * 7).reshape(2, 3, 8, 7).astype(dtype)
    y, i = F.max_pool2d(tg.tensor(x), k, s, p, return_indices=True)
    py, pi = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    ts, ps = _pair(py.numpy())
    got = F.max_unpool2d(ts[0], i, k, s, p, output_size=out)
    want = TF.max_unpool2d(ps[0], pi, k, s, p, output_size=out)
    if s is None or s == k:  # no repeated indices: the same as PyTorch's assignment
        _check_values_and_grads(got, want, ts, ps, dtype)
    else:
        assert got.shape == tuple(want.shape)


def test_max_unpool2d_inverts_pooling_and_gradgradcheck():
    x = tg.tensor(_rng(16).permutation(48).reshape(1, 3, 4, 4) * 1.0, requires_grad=True)
    y, i = F.max_pool2d(x, 2, return_indices=True)
    u = F.max_unpool2d(y, i, 2)
    kept = u.numpy() != 0
    np.testing.assert_array_equal(u.numpy()[kept], x.detach().numpy()[kept])
    assert kept.sum() == 12
    v = tg.tensor(_rng(17).standard_normal((1, 3, 2, 2)), requires_grad=True)
    f = lambda a: F.max_unpool2d(a, i, 2, output_size=(5, 4))
    assert gradcheck(f, [v]) and gradgradcheck(f, [v])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,out", [((2, 3, 7, 5), (3, 2)), ((1, 2, 4, 6), 4), ((1, 2, 5, 5), (7, 1)),
                                       ((2, 2, 9, 10), (None, 4)), ((1, 1, 6, 6), 1)])
def test_adaptive_avg_pool2d_vs_torch(shape, out, dtype):
    x = _rng(18).standard_normal(shape).astype(dtype)
    ts, ps = _pair(x)
    _check_values_and_grads(F.adaptive_avg_pool2d(ts[0], out), TF.adaptive_avg_pool2d(ps[0], out), ts, ps, dtype)


def test_adaptive_avg_pool2d_gradgradcheck():
    x = tg.tensor(_rng(19).standard_normal((1, 2, 5, 7)), requires_grad=True)
    f = lambda a: F.adaptive_avg_pool2d(a, (3, 2)).tanh()
    assert gradcheck(f, [x]) and gradgradcheck(f, [x])


# ---- interpolate ----------------------------------------------------------

INTERP_GRID = [
    # input shape, size, scale_factor, mode, align_corners
    ((2, 3, 5, 4), (7, 9), None, "nearest", None),
    ((2, 3, 5, 4), (3, 2), None, "nearest", None),
    ((1, 2, 7, 5), None, 2, "nearest", None),
    ((1, 2, 7, 5), None, (1.5, 0.7), "nearest", None),
    ((2, 3, 5, 4), (7, 9), None, "bilinear", False),
    ((2, 3, 5, 4), (7, 9), None, "bilinear", True),
    ((1, 2, 6, 7), (3, 4), None, "bilinear", False),
    ((1, 2, 6, 7), (3, 4), None, "bilinear", True),
    ((1, 2, 5, 3), None, (2.5, 1.7), "bilinear", False),
    ((1, 2, 5, 3), None, 3, "bilinear", True),
    ((1, 2, 5, 3), (1, 1), None, "bilinear", True),
    ((2, 3, 5), (11,), None, "nearest", None),
    ((2, 3, 5), None, 2.5, "linear", False),
    ((2, 3, 6), (4,), None, "linear", True),
    ((1, 2, 6, 6), (4, 3), None, "area", None),
    ((2, 3, 5, 4), (7, 9), None, "nearest-exact", None),
    ((1, 2, 7, 5), None, (1.5, 0.7), "nearest-exact", None),
    ((2, 3, 5), (3,), None, "nearest-exact", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,size,sf,mode,align", INTERP_GRID)
def test_interpolate_vs_torch(shape, size, sf, mode, align, dtype):
    x = _rng(20).standard_normal(shape).astype(dtype)
    ts, ps = _pair(x)
    kw_ = dict(size=size, scale_factor=sf, mode=mode, align_corners=align)
    _check_values_and_grads(F.interpolate(ts[0], **kw_), TF.interpolate(ps[0], **kw_), ts, ps, dtype)


def test_interpolate_recompute_scale_factor_vs_torch():
    x = _rng(21).standard_normal((1, 1, 5, 7))
    for mode in ("nearest", "bilinear"):
        got = F.interpolate(tg.tensor(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True)
        want = TF.interpolate(torch.tensor(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_interpolate_gradgradcheck(mode, align):
    x = tg.tensor(_rng(22).standard_normal((1, 2, 3, 4)), requires_grad=True)
    f = lambda a: F.interpolate(a, size=(5, 3), mode=mode, align_corners=align).tanh()
    assert gradcheck(f, [x]) and gradgradcheck(f, [x])


def test_interpolate_nearest_modes_odd_sizes_exhaustive_vs_torch():
    """Every output size from 1 to 3x for a few odd input sizes: PyTorch's float index rule."""
    for n in (3, 5, 7, 13):
        x = np.arange(n, dtype=np.float32).reshape(1, 1, n)
        for m in range(1, 3 * n + 1):
            for mode in ("nearest", "nearest-exact"):
                got = F.interpolate(tg.tensor(x), size=m, mode=mode).numpy()
                want = TF.interpolate(torch.tensor(x), size=m, mode=mode).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f"{mode} {n} -> {m}")


# ---- errors ---------------------------------------------------------------

def test_conv_errors_name_the_op_and_shapes():
    x = tg.randn(1, 6, 8, 8)
    with raises(ValueError, "conv2d:", "groups=4", "(1, 6, 8, 8)"):
        F.conv2d(x, tg.randn(4, 2, 3, 3), groups=4)
    with raises(ValueError, "conv2d:", "6 channels", "groups (2)", "(4, 2, 3, 3)"):
        F.conv2d(x, tg.randn(4, 2, 3, 3), groups=2)
    with raises(ValueError, "conv2d:", "dilation (4, 4)", "larger than the padded input", "(1, 6, 8, 8)"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), dilation=4)
    with raises(ValueError, "conv2d:", "kernel size (9, 3)", "(8, 8)"):
        F.conv2d(x, tg.randn(2, 6, 9, 3))
    with raises(ValueError, "conv2d:", "groups (4611686018427387904) x 4"):  # no overflow in the check
        F.conv2d(tg.ones(1, 0, 3, 3), tg.ones(0, 4, 2, 2), groups=2**62)
    with raises(ValueError, "conv2d:", "dilation must be positive"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), dilation=0)
    with raises(ValueError, "conv2d:", "groups must be positive"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), groups=0)
    with raises(ValueError, "conv2d:", "padding='same'", "strided"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), stride=2, padding="same")
    with raises(ValueError, "conv2d:", "'valid', 'same'", "'full'"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), padding="full")
    with raises(ValueError, "conv2d:", "padding must be non-negative"):
        F.conv2d(x, tg.randn(2, 6, 3, 3), padding=(1, -1, 0, 0))
    with raises(TypeError, "conv2d", "float32 or float64", "int64"):
        F.conv2d(tg.zeros(1, 6, 8, 8, dtype=tg.int64), tg.randn(2, 6, 3, 3))
    with raises(ValueError, "conv1d:", "3-D input", "(6, 8)"):
        F.conv1d(tg.randn(6, 8), tg.randn(2, 6, 3))
    with raises(ValueError, "conv1d:", "groups=4"):
        F.conv1d(tg.randn(1, 6, 8), tg.randn(4, 2, 3), groups=4)
    with raises(ValueError, "conv_transpose2d:", "output_padding (2, 2)", "stride (2, 2)"):
        F.conv_transpose2d(tg.randn(1, 2, 3, 3), tg.randn(2, 3, 3, 3), stride=2, output_padding=2)
    with raises(ValueError, "conv_transpose2d:", "3 channels", "(2, 3, 3, 3)"):
        F.conv_transpose2d(tg.randn(1, 3, 3, 3), tg.randn(2, 3, 3, 3))
    # sizes that overflow int64 (an empty input may have huge sizes) are refused, not wrapped
    with raises(ValueError, "conv_transpose2d:", "overflows", "(0, 2, 1099511627776, 1)"):
        F.conv_transpose2d(tg.ones(0, 2, 2**40, 1), tg.ones(2, 3, 2, 2), stride=2**40)
    with raises(MemoryError, "conv_transpose2d:", "too large", "(1, 2, 3, 3)"):
        F.conv_transpose2d(tg.ones(1, 2, 3, 3), tg.ones(2, 3, 2, 2), stride=2, dilation=2**40)
    with raises(ValueError, "max_pool2d:", "out of range"):
        F.max_pool2d(tg.ones(1, 1, 4, 4), 2**40, dilation=2**40)
    with raises(ValueError, "conv_transpose2d:", "bias", "(3,)"):
        F.conv_transpose2d(tg.randn(1, 2, 3, 3), tg.randn(2, 3, 3, 3), tg.randn(4))


def test_pool_and_resample_errors_name_the_op_and_shapes():
    x = tg.randn(1, 2, 5, 5)
    with raises(ValueError, "max_pool2d:", "padding (2, 2)", "half of the kernel size (3, 3)"):
        F.max_pool2d(x, 3, padding=2, dilation=2)  # PyTorch's bound ignores the dilation
    with raises(ValueError, "max_pool2d:", "dilation (3, 3)", "(1, 2, 5, 5)"):
        F.max_pool2d(x, 3, dilation=3)
    with raises(ValueError, "avg_pool2d:", "divisor_override", "positive"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with raises(ValueError, "max_unpool2d:", "output_size (9, 9)", "(1, 2, 2, 2)"):
        F.max_unpool2d(tg.randn(1, 2, 2, 2), tg.zeros(1, 2, 2, 2, dtype=tg.int64), 2, output_size=(9, 9))
    with raises(IndexError, "max_unpool2d:", "index 16", "4 x 4"):
        F.max_unpool2d(tg.randn(1, 1, 2, 2), tg.full((1, 1, 2, 2), 16, dtype=tg.int64), 2)
    for stride, words in ((2**40, ("output shape", "too large")), (2**62, ("stride", "(1, 1, 2, 2)"))):
        with raises(ValueError, "max_unpool2d:", *words):  # sizes that would overflow int64
            F.max_unpool2d(tg.randn(1, 1, 2, 2), tg.zeros(1, 1, 2, 2, dtype=tg.int64), 2, stride=stride)
    with raises(ValueError, "max_unpool2d:", "indices must be int64", "(1, 1, 2, 2)"):
        F.max_unpool2d(tg.randn(1, 1, 2, 2), tg.zeros(1, 1, 2, 3, dtype=tg.int64), 2)
    with raises(ValueError, "interpolate:", "mode", "'bicubic'"):
        F.interpolate(x, size=3, mode="bicubic")
    with raises(ValueError, "interpolate:", "'linear'", "3-D", "(1, 2, 5, 5)"):
        F.interpolate(x, size=3, mode="linear")
    with raises(ValueError, "interpolate:", "align_corners", "'nearest'"):
        F.interpolate(x, size=3, align_corners=True)
    with raises(ValueError, "interpolate:", "only one of size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with raises(ValueError, "interpolate:", "either size or scale_factor"):
        F.interpolate(x)
    with raises(ValueError, "interpolate:", "3-D", "4-D", "(5, 5)"):
        F.interpolate(tg.randn(5, 5), size=3)
    with raises(ValueError, "interpolate:", "output size must be positive"):
        F.interpolate(x, size=(0, 3))
    with raises(ValueError, "adaptive_avg_pool2d:", "output size must be positive"):
        F.adaptive_avg_pool2d(x, 0)
    with raises(TypeError, "max_pool2d", "int64"):
        F.max_pool2d(tg.zeros(1, 1, 4, 4, dtype=tg.int64), 2)


# ---- random geometries (Hypothesis) ---------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=st.integers(0, 2), G=st.integers(1, 3), cg=st.integers(1, 2), og=st.integers(1, 2),
       H=st.integers(1, 7), W=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
       dh=st.integers(1, 3), dw=st.integers(1, 3), bias=st.booleans())
def test_conv2d_random_geometry_matches_torch_or_raises(N, G, cg, og, H, W, kh, kw, sh, sw, ph, pw, dh, dw, bias):
    """Any geometry either gives PyTorch's output and gradients or, where
    PyTorch refuses it too (the dilated kernel larger than the padded input),
    a ValueError naming conv2d — never a crash or a silently wrong answer."""
    r = _rng(N * 1000 + H * 100 + W)
    x = r.standard_normal((N, G * cg, H, W))
    w = r.standard_normal((G * og, cg, kh, kw))
    b = r.standard_normal(G * og) if bias else None
    kw_ = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=G)
    fits = dh * (kh - 1) + 1 <= H + 2 * ph and dw * (kw - 1) + 1 <= W + 2 * pw
    ts, ps = _pair(x, w, b)
    if not fits:
        with raises(ValueError, "conv2d:", "larger than the padded input"):
            F.conv2d(*ts, **kw_)
        with pytest.raises(RuntimeError):
            TF.conv2d(*ps, **kw_)
        return
    y, py = F.conv2d(*ts, **kw_), TF.conv2d(*ps, **kw_)
    assert y.shape == tuple(py.shape)
    if y.size == 0:
        return
    _check_values_and_grads(y, py, ts, ps, np.float64)


@settings(max_examples=60, deadline=None)
@given(H=st.integers(1, 9), W=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 3), dw=st.integers(1, 3), cm=st.booleans(), cip=st.booleans())
def test_pooling_random_geometry_matches_torch_or_raises(H, W, kh, kw, sh, sw, ph, pw, dh, dw, cm, cip):
    x = _rng(H * 10 + W).permutation(2 * H * W).reshape(1, 2, H, W).astype(np.float64)
    for kind in ("max", "avg"):
        ts, ps = _pair(x)
        if kind == "max":
            kw_ = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=cm)
            f, tf = F.max_pool2d, TF.max_pool2d
        else:
            kw_ = dict(stride=(sh, sw), padding=(ph, pw), ceil_mode=cm, count_include_pad=cip)
            f, tf = F.avg_pool2d, TF.avg_pool2d
        try:
            want = tf(ps[0], (kh, kw), **kw_)
        except RuntimeError:
            with pytest.raises(ValueError, match=f"{kind}_pool2d:"):
                f(ts[0], (kh, kw), **kw_)
            continue
        if not np.isfinite(want.detach().numpy()).all():
            # a dilated window that covers only padding: PyTorch returns -inf there, tapegrad refuses
            with pytest.raises(ValueError, match=f"{kind}_pool2d: output position .* covers only padding"):
                f(ts[0], (kh, kw), **kw_)
            continue
        _check_values_and_grads(f(ts[0], (kh, kw), **kw_), want, ts, ps, np.float64)
