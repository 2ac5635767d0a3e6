"""float32 cross_entropy through the vector kernels (csrc/ops/nn.c, ce_rows_f32;
issue 16): the forward's exp runs once over blocks of rows with the vector exp
of kernels/vmath.h, and the first-order backward is one fused pass
(softmax(z) - onehot(y)) * dL instead of softmax, one_hot, sub and mul ops.

* loss and gradient against float64 NumPy, on logits of several scales,
  confident rows (tiny losses: relative accuracy kept), rows longer than a
  block and block counts that leave a partial block, every reduction, an
  upstream gradient per sample;
* the fused backward against PyTorch and against the composed backward
  (create_graph=True still records ops, so second order works);
* rows holding NaN, +inf, -inf entries or only -inf give what PyTorch gives
  (NaN where log_softmax is NaN);
* transposed logits and strided labels give the bits of contiguous ones; one
  and two threads, and the avx2 and avx512 builds, give the same bits.
"""
import numpy as np
import pytest

import tapegrad as tg
import kernel_paths

torch = pytest.importorskip("torch")


def _ref(z, y, red, g=None):
    """float64 loss and gradient of the float32 logits z."""
    z64 = z.astype(np.float64)
    m = z64.max(1, keepdims=True)
    e = np.exp(z64 - m)
    s = e.sum(1)
    rows = np.arange(z.shape[0])
    # log(s) = log1p(s - 1) with s - 1 summed without the max's exact 1
    # (1 + r in float64 would round a tiny r), and m - z[y] (exact) first
    r = np.where(z64 == m, 0.0, e).sum(1) + ((z64 == m).sum(1) - 1)
    per = (m[:, 0] - z64[rows, y]) + np.log1p(r)
    p = e / s[:, None]
    p[rows, y] -= 1
    if red == "none":
        gg = np.ones(z.shape[0]) if g is None else g.astype(np.float64)
        return per, p * gg[:, None]
    k = 1.0 if g is None else float(g)
    if red == "mean":
        return per.mean(), p * (k / z.shape[0])
    return per.sum(), p * k


def _logits(N, C, scale, seed, confident=False):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((N, C)) * scale).astype(np.float32)
    y = rng.integers(0, C, N)
    if confident:  # the label's logit far above the others: loss ~ 1e-6 .. 1e-30
        z[np.arange(N), y] = z.max(1) + rng.uniform(12, 60, N).astype(np.float32)
    return z, y


CASES = [(1024, 65, 1.0, False), (1024, 65, 10.0, False), (257, 65, 3.0, True),
         (1000, 17, 100.0, False), (5, 20000, 2.0, False), (3, 1, 1.0, False)]


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("N,C,scale,confident", CASES)
def test_loss_and_gradient_against_float64(N, C, scale, confident, red):
    z, y = _logits(N, C, scale, N + C, confident)
    rng = np.random.default_rng(1)
    g = rng.uniform(0.5, 2, N).astype(np.float32) if red == "none" else np.float32(0.75)
    want, gwant = _ref(z, y, red, g)
    t = tg.tensor(z, requires_grad=True)
    loss = tg.cross_entropy(t, tg.tensor(y), reduction=red)
    got = loss.numpy().astype(np.float64)
    # per-sample losses: a few float32 ulps of the loss itself, also where it is
    # small (a confident right answer: the row's largest term is exactly 1 and
    # the sum is float64, so only the rounding of 1 + r in float64 is absolute)
    per_tol = 4 * np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) + 2.0 ** -51
    if red == "none":
        assert np.all(np.abs(got - want) <= per_tol), np.max(np.abs(got - want) / per_tol)
    else:
        assert abs(got - want) <= 8 * np.spacing(np.float32(abs(want))) + 1e-6 * abs(want)
    loss.backward(tg.tensor(g))
    gz = t.grad.numpy().astype(np.float64)
    # each element: softmax (a few ulp) minus the one-hot, times the upstream
    # factor k; p_y - 1 cancels for a confident row, so the error is in units of k
    k = g.astype(np.float64) if red == "none" else np.full(N, float(g) / (N if red == "mean" else 1))
    err = np.abs(gz - gwant) / k[:, None]
    assert np.all(err <= 4 * 2.0 ** -24 * np.maximum(np.abs(gwant) / k[:, None], 1)), err.max()


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_fused_backward_matches_pytorch_and_the_composed_backward(red):
    z, y = _logits(1024, 65, 3.0, 7)
    gl = np.linspace(0.5, 1.5, 1024).astype(np.float32) if red == "none" else np.float32(1.0)
    t = tg.tensor(z, requires_grad=True)
    tg.cross_entropy(t, tg.tensor(y), reduction=red).backward(tg.tensor(gl))
    fused = t.grad.numpy()
    # create_graph=True takes the VJP written with ops (differentiable again)
    t2 = tg.tensor(z, requires_grad=True)
    tg.cross_entropy(t2, tg.tensor(y), reduction=red).backward(tg.tensor(gl), create_graph=True)
    composed = t2.grad.numpy()
    pt = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(pt, torch.tensor(y), reduction=red).backward(torch.tensor(gl))
    scale = (gl[:, None] if red == "none" else np.float32(1 / 1024 if red == "mean" else 1)) + 0 * composed
    np.testing.assert_array_less(np.abs(fused - composed), 8 * 2.0 ** -24 * scale + 1e-45)
    np.testing.assert_array_less(np.abs(fused - pt.grad.numpy()), 8 * 2.0 ** -24 * scale + 1e-45)
    # second order still works through the composed path
    t3 = tg.tensor(z[:4, :5].astype(np.float64), requires_grad=True)
    assert tg.testing.gradgradcheck(lambda a: tg.cross_entropy(a, tg.tensor(y[:4] % 5)), [t3])


def test_special_rows_as_pytorch():
    z = np.array([[1.0, 2.0, 3.0, 0.5],
                  [1.0, np.nan, 0.0, 2.0],
                  [1.0, np.inf, 0.0, 2.0],
                  [-np.inf, 2.0, -np.inf, 1.0],      # masked logits: finite
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [-np.inf, 5.0, 0.0, 1.0]], np.float32)  # the label's logit is -inf: loss inf
    y = np.array([2, 0, 1, 3, 1, 0])
    t = tg.tensor(z, requires_grad=True)
    loss = tg.cross_entropy(t, tg.tensor(y), reduction="none")
    loss.backward(tg.ones_like(loss))
    pt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(pt, torch.tensor(y), reduction="none")
    lt.backward(torch.ones_like(lt))
    got, want = loss.numpy(), lt.detach().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=4e-7)
    gg, gw = t.grad.numpy(), pt.grad.numpy()
    np.testing.assert_array_equal(np.isnan(gg), np.isnan(gw))
    fin = np.isfinite(gw)
    np.testing.assert_allclose(gg[fin], gw[fin], rtol=1e-6, atol=1e-7)


def test_views_threads_and_builds_give_the_same_bits():
    z, y = _logits(700, 65, 4.0, 3)

    def run():
        t = tg.tensor(z, requires_grad=True)
        loss = tg.cross_entropy(t, tg.tensor(y))
        loss.backward()
        tv = tg.from_numpy(np.ascontiguousarray(z.T)).T  # transposed in memory
        tv.requires_grad_(True) if hasattr(tv, "requires_grad_") else None
        yv = tg.from_numpy(np.repeat(y, 2))[::2]          # strided labels
        lv = tg.cross_entropy(tv, yv, reduction="none")
        return loss.numpy().tobytes() + t.grad.numpy().tobytes(), lv.numpy().tobytes()

    first = run()
    lv_contig = tg.cross_entropy(tg.tensor(z), tg.tensor(y), reduction="none").numpy().tobytes()
    assert first[1] == lv_contig
    n0 = tg.get_num_threads()
    try:
        tg.set_num_threads(1 if n0 > 1 else 2)
        assert run() == first
    finally:
        tg.set_num_threads(n0)
    builds = [p for p in ("avx2", "avx512") if p in kernel_paths.available("vmath")]
    if len(builds) == 2:  # vmath.h: the two builds give the same bits
        outs = []
        for p in builds:
            with kernel_paths.forced("vmath", p):
                outs.append(run())
        assert outs[0] == outs[1]
