"""The fast paths of the CNN training step (issue 16) give the reference
paths' results: the 2x2 max pooling loop (values and indices, ties and NaN
included) against a NumPy transcription of the rule, the fused ReLU
backward bit for bit against the op-by-op one (create_graph), and the
convolutions bit for bit across thread counts, for batch sizes that do not
divide the chunking."""
import os

import numpy as np
import pytest

import tapegrad as tg
from kernel_paths import with_threads

F = tg.nn.functional


def _maxpool_reference(x, k=2, s=2):
    """max_pool2d's rule, written out: the taps of a window in row-major
    order; a tap replaces the best so far when larger, or when it is NaN and
    the best is not (so the first maximum, or the first NaN, wins)."""
    N, C, H, W = x.shape
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    y = np.empty((N, C, OH, OW), x.dtype)
    idx = np.empty((N, C, OH, OW), np.int64)
    for n, c, i, j in np.ndindex(N, C, OH, OW):
        best, bi = None, None
        for a in range(k):
            for b in range(k):
                h, w = i * s + a, j * s + b
                v = x[n, c, h, w]
                if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                    best, bi = v, h * W + w
        y[n, c, i, j], idx[n, c, i, j] = best, bi
    return y, idx


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5), (3, 1, 2, 2), (2, 2, 5, 19),
                                   (2, 3, 14, 14), (1, 2, 4, 11), (1, 2, 3, 13), (1, 1, 2, 33)],
                         ids=["even", "odd", "one", "vector+tail", "rows_of_7", "rows_of_5",
                              "rows_of_6", "rows_of_16"])
def test_max_pool2d_2x2_ties_and_nan(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 3, size=shape).astype(dtype)  # many ties
    x[rng.random(shape) < 0.1] = np.nan
    x[rng.random(shape) < 0.05] = -np.inf
    want, want_idx = _maxpool_reference(x)
    y, idx = F.max_pool2d(tg.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), want)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(idx.numpy(), want_idx)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 41),
       f64=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool2d_2x2_any_width_property(n, c, h, w, f64, seed):
    """The 2x2 loop's vector groups (4 windows), the overlapping group that
    ends a row whose width is not a multiple of 4, rows of fewer than 4
    windows and odd sizes (a row or column no window covers): values and
    indices are the rule's (first maximum, NaN wins), on one and two
    threads."""
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(n, c, h, w)).astype(dtype)
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    want, want_idx = _maxpool_reference(x)
    for threads in (1, 2):
        y, idx = with_threads(threads, lambda: F.max_pool2d(tg.tensor(x), 2, return_indices=True))
        np.testing.assert_array_equal(y.numpy(), want)
        np.testing.assert_array_equal(idx.numpy(), want_idx)


_POOL_SCRIPT = """
import json, numpy as np, tapegrad as tg
F = tg.nn.functional
rng = np.random.default_rng(5)
out = []
for w in (16, 17, 18, 22, 28, 31, 40, 41, 64):
    x = rng.integers(-3, 4, size=(2, 3, 6, w)).astype(np.float32)
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    y, idx = F.max_pool2d(tg.tensor(x), 2, return_indices=True)
    out += [y.numpy().tobytes().hex(), idx.numpy().tobytes().hex()]
print(json.dumps(out))
"""


def test_max_pool2d_2x2_avx2_and_sse2_loops_give_the_same_bits():
    """Rows of at least 8 windows take the AVX2 loop (8 windows at a time,
    the last group overlapping), shorter ones and CPUs without AVX2 the SSE2
    loop: values and indices (ties, NaN, -inf) the same bits with AVX2
    disabled; the values are the rule's (the tests above)."""
    import kernel_paths
    best, _ = kernel_paths.run_in_fresh_process(_POOL_SCRIPT)
    sse, _ = kernel_paths.run_in_fresh_process(_POOL_SCRIPT, TAPEGRAD_DISABLE_CPU_FEATURES="avx2,avx512")
    assert best == sse


_STRIDE2_SCRIPT = """
import json, os, numpy as np, tapegrad as tg
F = tg.nn.functional
os.environ["TAPEGRAD_CONV"] = "implicit"   # the direct paths (no Winograd: stride 2)
rng = np.random.default_rng(7)
out = []
# output rows of 4 to 40 windows: runs shorter than, equal to and longer
# than a vector of 8, with and without padding (the packer's slack), odd
# and even widths.  Small integers: every product and sum is exact, so the
# float32 results equal the float64 path's (scalar loops) bit for bit
# whatever the order of the additions or the GEMM kernel.
for (h, w, k, pad) in [(9, 9, 3, 1), (16, 17, 3, 1), (18, 18, 3, 0), (33, 35, 3, 1), (40, 80, 4, 1),
                       (20, 31, 5, 2), (17, 16, 1, 0)]:
    x = rng.integers(-3, 4, (2, 3, h, w)).astype(np.float32)
    wt = rng.integers(-3, 4, (4, 3, k, k)).astype(np.float32)
    wt2 = rng.integers(-3, 4, (3, 2, k, k)).astype(np.float32)
    y = F.conv2d(tg.tensor(x), tg.tensor(wt), stride=2, padding=pad)
    g = rng.integers(-3, 4, y.shape).astype(np.float32)
    res = []
    for dt in (np.float32, np.float64):
        tx, tw = tg.tensor(x.astype(dt), requires_grad=True), tg.tensor(wt.astype(dt), requires_grad=True)
        y = F.conv2d(tx, tw, stride=2, padding=pad)
        y.backward(tg.tensor(g.astype(dt)))
        t = F.conv_transpose2d(tg.tensor(x.astype(dt)), tg.tensor(wt2.astype(dt)), stride=2,
                               padding=pad // 2)
        res.append([a.astype(np.float32) for a in (y.numpy(), tx.grad.numpy(), tw.grad.numpy(), t.numpy())])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*res)), (h, w, k, pad)
    out += [a.tobytes().hex() for a in res[0]]
print(json.dumps(out))
"""


def test_stride2_packing_and_col2im_avx2_loops_give_the_same_bits():
    """A stride-2 convolution's forward packs every other value of the image
    rows (AVX2: two loads, the even lanes shuffled together) and its input
    gradient -- conv_transpose2d with stride 2 -- scatters its columns to
    every other value (AVX2: one add per even lane, the odd lanes stored back
    untouched).  On exact (small integer) data, for rows shorter and longer
    than a vector, with and without padding: float32 equals the float64 path
    (scalar loops) bit for bit in the default process and with AVX2
    disabled; the products with real values keep the im2col path's bits
    (test_conv2d_fast_paths_give_the_reference_bits, stride-2 cases)."""
    import kernel_paths
    best, _ = kernel_paths.run_in_fresh_process(_STRIDE2_SCRIPT)
    plain, _ = kernel_paths.run_in_fresh_process(_STRIDE2_SCRIPT,
                                                 TAPEGRAD_DISABLE_CPU_FEATURES="avx2,avx512")
    assert len(best) == 28 and best == plain


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_2x2_gradient_goes_to_the_first_maximum(ceil_mode):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, size=(2, 2, 5, 6)).astype(np.float64)
    t = tg.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 2, ceil_mode=ceil_mode)
    g = rng.standard_normal(y.shape)
    (y * tg.tensor(g)).sum().backward()
    want = np.zeros_like(x)
    _, idx = _maxpool_reference(x)
    if ceil_mode:  # the last column of windows holds one column of x (W = 6: none; H = 5: a row)
        pytest.importorskip("torch")
        import torch
        p = torch.tensor(x, requires_grad=True)
        (torch.nn.functional.max_pool2d(p, 2, ceil_mode=True) * torch.tensor(g)).sum().backward()
        want = p.grad.numpy()
    else:
        for n, c in np.ndindex(2, 2):
            np.add.at(want[n, c].reshape(-1), idx[n, c].reshape(-1), g[n, c].reshape(-1))
    np.testing.assert_array_equal(t.grad.numpy(), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_relu_backward_fused_equals_the_op_path(dtype):
    """Without create_graph ReLU's VJP is one fused pass; with it, the
    recorded ops g * (x > 0). Same bits, specials included (g * 0 is NaN
    where g is infinite)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 7)).astype(dtype)
    x.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30]
    g = rng.standard_normal(x.shape).astype(dtype)
    g.flat[6:12] = [np.inf, -np.inf, np.nan, np.inf, np.nan, -np.inf]
    x[0, 1, 1:5] = [-1.0, 2.0, -3.0, 0.0]  # the specials of g at active and inactive inputs
    grads = []
    for create_graph in (False, True):
        t = tg.tensor(x, requires_grad=True)
        (gx,) = tg.grad(t.relu(), [t], grad_outputs=tg.tensor(g), create_graph=create_graph)
        grads.append(gx.numpy())
    assert grads[0].tobytes() == grads[1].tobytes()
    with np.errstate(invalid="ignore"):
        want = g * (x > 0)
    np.testing.assert_array_equal(grads[0], want)


def test_relu_backward_of_a_broadcast_gradient():
    x = tg.tensor(np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1], [1, 0]])


@pytest.mark.parametrize("opt", ["Adam", "AdamW"])
def test_adam_step_is_the_same_on_one_and_two_threads(opt):
    """The float32 Adam update is split across threads for large tensors
    (sizes that do not divide into the chunks included)."""
    rng = np.random.default_rng(7)
    shapes = [(1568, 129), (100003,), (7,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def run():
        ps = [tg.nn.Parameter(tg.tensor(a.copy())) for a in init]
        o = getattr(tg.optim, opt)(ps, lr=1e-2, weight_decay=0.1)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = tg.tensor(g)
            o.step()
        return [p.numpy().copy() for p in ps]
    one, two = with_threads(1, run), with_threads(2, run)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()
    assert not np.array_equal(one[0], init[0])


@pytest.mark.parametrize("n", [1, 3, 7, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_cnn_layers_are_the_same_on_one_and_two_threads(n, dtype):
    """conv2d (forward, input and weight gradient), ReLU and 2x2 max pooling
    as in the MNIST CNN, for batch sizes that do not divide the chunking:
    the same bits with one and two threads."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 16, 14, 14)).astype(dtype)
    w = (rng.standard_normal((32, 16, 5, 5)) * 0.05).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    g = rng.standard_normal((n, 32, 7, 7)).astype(dtype)

    def run():
        tx, tw, tb = (tg.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.max_pool2d(F.conv2d(tx, tw, tb, padding=2).relu(), 2)
        (y * tg.tensor(g)).sum().backward()
        return [y.numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()]
    one, two = with_threads(1, run), with_threads(2, run)
    for a, c in zip(one, two):
        assert a.tobytes() == c.tobytes()


@pytest.mark.parametrize("n", [1, 5])
def test_conv1d_and_conv_transpose2d_are_the_same_on_one_and_two_threads(n):
    """The composites run on conv2d's drivers (conv1d on images of height 1,
    conv_transpose2d as conv2d's input gradient): the same bits too."""
    rng = np.random.default_rng(10 + n)
    x1 = rng.standard_normal((n, 8, 301)).astype(np.float32)
    w1 = rng.standard_normal((12, 8, 7)).astype(np.float32)
    x2 = rng.standard_normal((n, 12, 9, 11)).astype(np.float32)
    w2 = rng.standard_normal((12, 6, 3, 3)).astype(np.float32)

    def run():
        a, wa, c, wc = (tg.tensor(v, requires_grad=True) for v in (x1, w1, x2, w2))
        y1 = F.conv1d(a, wa, padding=3)
        y2 = F.conv_transpose2d(c, wc, stride=2, padding=1)
        (y1.sum() + (y2 * y2).sum()).backward()
        return [y1.numpy(), y2.numpy(), a.grad.numpy(), wa.grad.numpy(), c.grad.numpy(), wc.grad.numpy()]
    one, two = with_threads(1, run), with_threads(2, run)
    for u, v in zip(one, two):
        assert u.tobytes() == v.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n,hw", [(3, 5), (2, 13)])
def test_conv2d_bias_gradient(n, hw, dtype):
    """The bias gradient's own loop (no graph) against the float64 sum, and
    against the recorded sum of create_graph; with an expanded dy (a sum's
    backward) the general reduction runs."""
    rng = np.random.default_rng(hw)
    x = rng.standard_normal((n, 3, hw, hw)).astype(dtype)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    g = rng.standard_normal((n, 5, hw, hw)).astype(dtype)
    want = g.astype(np.float64).sum(axis=(0, 2, 3))
    got = []
    for create_graph in (False, True):
        tb = tg.tensor(b, requires_grad=True)
        y = F.conv2d(tg.tensor(x), tg.tensor(w), tb, padding=1)
        (db,) = tg.grad(y, [tb], grad_outputs=tg.tensor(g), create_graph=create_graph)
        got.append(db.numpy())
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for a in got:
        assert a.dtype == dtype
        np.testing.assert_allclose(a, want, rtol=rtol, atol=rtol)
    tb = tg.tensor(b, requires_grad=True)
    F.conv2d(tg.tensor(x), tg.tensor(w), tb, padding=1).sum().backward()
    np.testing.assert_array_equal(tb.grad.numpy(), np.full(5, n * hw * hw, dtype))


# Two fast paths of conv2d, checked on one table of geometries:
#
# * Several images per GEMM: the forward and input-gradient products take up
#   to 8 images (and about 4 MiB of im2col columns: fewer when one image's
#   columns are large) side by side.  Each output element is the same sum in
#   the same order as with one image per GEMM, so a batch gives the bits of
#   its images computed one at a time.
# * Implicit GEMM: the forward product and the weight gradient pack the
#   windows straight from the (zero-padded) images into the GEMM's panels
#   (no im2col matrix); TAPEGRAD_CONV=im2col takes the path that forms the
#   columns first.  The panels hold the same values and the GEMM the same
#   blocking, so the two paths give the same bits.  (The weight gradient
#   packs implicitly for kernels at least 4 wide; 3-wide ones form their
#   columns, measured faster.)
#
# Both on one thread and two, and the result against PyTorch.  Cases: the
# CNN's layers, batch sizes that do not divide the 8 (or the 3 of the large
# case) or the chunking, padding (symmetric, asymmetric via "same" with an
# even kernel), stride (asymmetric), dilation, groups, no bias, 1x1 (no
# im2col), 1x1 with stride (no padding), an image too large for 8 per GEMM,
# one output channel (M = 1: gemm.c declines the implicit B and the columns
# are formed), tiny products, a padding far wider than the window (the
# padded copy would be larger than the columns: formed columns).
_CONV_CASES = {
    "cnn1":          dict(n=5, c=1, o=16, hw=(28, 28), k=5, kw=dict(padding=2)),
    "cnn2":          dict(n=11, c=16, o=32, hw=(14, 14), k=5, kw=dict(padding=2)),
    "same_even":     dict(n=3, c=3, o=8, hw=(9, 10), k=4, kw=dict(padding="same")),
    "stride":        dict(n=7, c=4, o=12, hw=(13, 11), k=4, kw=dict(stride=(2, 3), padding=(1, 2))),
    "stride2_nobias": dict(n=13, c=4, o=6, hw=(12, 9), k=3, kw=dict(stride=(2, 1), padding=1),
                           bias=False),
    # rows of 21 and 19 windows of stride 2: the packer's AVX2 gather of every
    # other value, with the padded copy's slack and straight from the image
    "stride2_wide":  dict(n=3, c=4, o=8, hw=(20, 41), k=3, kw=dict(stride=2, padding=1)),
    "stride2_nopad": dict(n=3, c=4, o=8, hw=(19, 40), k=3, kw=dict(stride=2)),
    "dilation":      dict(n=6, c=3, o=9, hw=(12, 13), k=4, kw=dict(padding=2, dilation=(2, 3))),
    "dilation3x3":   dict(n=10, c=3, o=5, hw=(11, 12), k=3, kw=dict(padding=(2, 1), dilation=2)),
    "groups":        dict(n=9, c=8, o=12, hw=(9, 7), k=5, kw=dict(padding=2, groups=4)),
    "groups3x3":     dict(n=5, c=8, o=12, hw=(9, 7), k=3, kw=dict(padding=1, groups=2)),
    "groups3x3_9":   dict(n=9, c=6, o=4, hw=(9, 7), k=3, kw=dict(padding=1, groups=2)),
    "nopad":         dict(n=4, c=5, o=10, hw=(10, 17), k=3, kw={}),
    "pointwise":     dict(n=9, c=8, o=3, hw=(6, 6), k=1, kw={}),
    "1x1s2":         dict(n=3, c=6, o=10, hw=(8, 9), k=1, kw=dict(stride=2)),
    "large":         dict(n=7, c=16, o=8, hw=(32, 32), k=5, kw={}),  # 1.2 MiB of columns: 3 per GEMM
    "one_out":       dict(n=4, c=3, o=1, hw=(8, 8), k=3, kw=dict(padding=1)),
    "farpad":        dict(n=2, c=3, o=4, hw=(4, 5), k=1, kw=dict(stride=40, padding=90)),  # no padded copy
    "tiny":          dict(n=2, c=1, o=2, hw=(3, 3), k=2, kw={}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
@pytest.mark.parametrize("case", list(_CONV_CASES))
def test_conv2d_fast_paths_give_the_reference_bits(case, dtype, monkeypatch):
    p = _CONV_CASES[case]
    rng = np.random.default_rng(len(case) + 100)
    groups = p["kw"].get("groups", 1)
    x = rng.standard_normal((p["n"], p["c"]) + p["hw"]).astype(dtype)
    w = (rng.standard_normal((p["o"], p["c"] // groups, p["k"], p["k"])) * 0.1).astype(dtype)
    b = rng.standard_normal(p["o"]).astype(dtype) if p.get("bias", True) else None
    oh, ow = F.conv2d(tg.tensor(x[:1]), tg.tensor(w), None, **p["kw"]).shape[2:]
    g = rng.standard_normal((p["n"], p["o"], oh, ow)).astype(dtype)

    def conv(xa, ga):
        tx, tw = tg.tensor(xa, requires_grad=True), tg.tensor(w, requires_grad=True)
        y = F.conv2d(tx, tw, None if b is None else tg.tensor(b), **p["kw"])
        y.backward(tg.tensor(ga))
        return [y.numpy(), tx.grad.numpy(), tw.grad.numpy()]

    def run():  # the batch, then each image alone
        return conv(x, g), [conv(x[i:i + 1], g[i:i + 1]) for i in range(p["n"])]
    got = {}
    for path in ("implicit", "im2col"):
        monkeypatch.setenv("TAPEGRAD_CONV", path)  # "implicit": not Winograd
        for threads in (1, 2):
            got[path, threads] = with_threads(threads, run)
    ref = got["im2col", 1][0]
    for key, (batch, single) in got.items():
        for name, a, r in zip(("forward", "input gradient", "weight gradient"), batch, ref):
            assert a.tobytes() == r.tobytes(), f"{key}: {name}"
        for i, (yi, dxi, _) in enumerate(single):
            assert batch[0][i].tobytes() == yi[0].tobytes(), f"{key}, image {i} alone: forward"
            assert batch[1][i].tobytes() == dxi[0].tobytes(), f"{key}, image {i} alone: input gradient"
    torch = pytest.importorskip("torch")
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, None if b is None else torch.from_numpy(b), **p["kw"])
    ty.backward(torch.from_numpy(g))
    # float32: sums of up to 7 * 28 * 28 products (the large case's weight
    # gradient) cancel, so the absolute tolerance follows the largest value
    eps = 1e-5 if dtype == np.float32 else 1e-12
    for a, t in zip(ref, (ty, tx.grad, tw.grad)):
        t = t.detach().numpy()
        np.testing.assert_allclose(a, t, rtol=10 * eps, atol=eps * max(1.0, np.abs(t).max()))


def test_conv2d_implicit_gemm_with_a_large_single_image(monkeypatch):
    """One image on two threads: the forward runs outside the image loop's
    parallel chunks, and gemm.c cuts the implicit product's columns into
    slabs for the threads (each packing its own columns)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 64, 70)).astype(np.float32)
    w = rng.standard_normal((24, 8, 3, 3)).astype(np.float32)
    res = {}
    for path in ("implicit", "im2col"):
        monkeypatch.setenv("TAPEGRAD_CONV", path)  # "implicit": not Winograd
        for threads in (1, 2):
            res[path, threads] = with_threads(
                threads, lambda: F.conv2d(tg.tensor(x), tg.tensor(w), padding=1).numpy())
    for v in res.values():
        assert v.tobytes() == res["im2col", 1].tobytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=st.integers(1, 5), G=st.integers(1, 2), cg=st.integers(1, 3), og=st.integers(1, 9),
       H=st.integers(1, 9), W=st.integers(1, 12), kh=st.integers(1, 5), kw=st.integers(1, 6),
       sh=st.integers(1, 3), sw=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 7)] * 4),
       dh=st.integers(1, 2), dw=st.integers(1, 2), f64=st.booleans())
def test_conv2d_implicit_gemm_equals_im2col_random_geometry(N, G, cg, og, H, W, kh, kw, sh, sw, pads,
                                                             dh, dw, f64):
    """Any geometry (per-side padding, up to paddings wider than the window)
    gives the im2col path's bits on the implicit path, on one and two
    threads, for the output and both gradients."""
    top, bottom, left, right = pads
    if dh * (kh - 1) + 1 > H + top + bottom or dw * (kw - 1) + 1 > W + left + right:
        return
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(N * 1000 + H * 100 + W * 10 + kh)
    x = rng.standard_normal((N, G * cg, H, W)).astype(dtype)
    w = rng.standard_normal((G * og, cg, kh, kw)).astype(dtype)

    def run():
        tx, tw = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
        y = F.conv2d(tx, tw, stride=(sh, sw), padding=(left, right, top, bottom), dilation=(dh, dw),
                     groups=G)
        g = tg.tensor(np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype))
        y.backward(g)
        return [y.numpy(), tx.grad.numpy(), tw.grad.numpy()]
    got = {}
    old = os.environ.pop("TAPEGRAD_CONV", None)
    try:
        for path in ("implicit", "im2col"):
            os.environ["TAPEGRAD_CONV"] = path  # "implicit": not Winograd
            for threads in (1, 2):
                got[path, threads] = with_threads(threads, run)
            os.environ.pop("TAPEGRAD_CONV", None)
    finally:
        if old is not None:
            os.environ["TAPEGRAD_CONV"] = old
    for key, res in got.items():
        for a, r in zip(res, got["im2col", 1]):
            assert a.tobytes() == r.tobytes(), key
