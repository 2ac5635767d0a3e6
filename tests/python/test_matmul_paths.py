"""The fast paths of matmul and of its backward (issue 16).

* x @ W with a batched x and a shared 2-D W: the weight gradient is one GEMM
  over the batch folded into rows, not one product per batch item and a sum;
  checked against float64 NumPy, finite differences, PyTorch (also the
  second derivative, which goes through the same ops);
* batched products with both operands batched (attention's q @ k^T and
  a @ v on permuted views), broadcast batch dims, strided and transposed
  operands, edge tiles, on every GEMM path this CPU can run;
* every result, forward and backward, is bitwise the same on one and two
  threads (the work is split on whole tiles or whole batch items).
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck


def _bound(a, b, k, dtype):
    """|exact - computed| bound of a float product with k terms per element
    (Higham's gamma_k on |a| @ |b|, doubled for the reference's own error)."""
    eps = np.finfo(dtype).eps
    return 2 * (k + 4) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-30


def _layouts(x):
    """The same array contiguous, as a permuted view and as a strided view."""
    yield "contiguous", tg.from_numpy(np.ascontiguousarray(x))
    perm = np.ascontiguousarray(np.moveaxis(x, 0, -1))          # (..., B) in memory
    yield "permuted", tg.from_numpy(perm).permute(x.ndim - 1, *range(x.ndim - 1))
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    yield "strided", tg.from_numpy(big)[..., ::2]


# ---- the weight gradient of a broadcast matmul -----------------------------

WEIGHT_SHAPES = [((3, 5, 7), (7, 9)), ((2, 3, 17, 9), (9, 33)), ((4, 1, 6), (6, 65)),
                 ((16, 64, 128), (128, 65)), ((2, 40, 70), (70,))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ash,bsh", WEIGHT_SHAPES)
def test_weight_gradient_of_a_shared_operand_is_the_batch_sum(gemm_path, ash, bsh, dtype):
    rng = np.random.default_rng(len(ash) * 100 + ash[-1])
    a = rng.standard_normal(ash).astype(dtype)
    b = rng.standard_normal(bsh).astype(dtype)
    out_shape = np.matmul(a, b).shape
    g = rng.standard_normal(out_shape).astype(dtype)
    # the reference: the float64 sum over the batch of A_i^T dC_i
    a64, g64 = a.astype(np.float64), g.astype(np.float64)
    af, gf = a64.reshape(-1, ash[-1]), g64.reshape(-1, 1 if len(bsh) == 1 else bsh[-1])
    want = sum(af[r:r + 1].T @ gf[r:r + 1] for r in range(af.shape[0])).reshape(bsh)
    tol = _bound(af.T, gf, af.shape[0], dtype).reshape(want.shape)
    for name, ta in _layouts(a):
        ta.requires_grad_()
        tb = tg.tensor(b, requires_grad=True)
        (ta @ tb).backward(tg.tensor(g))
        got = tb.grad.numpy()
        assert got.shape == bsh and got.dtype == dtype, name
        assert np.all(np.abs(got - want) <= tol), (gemm_path, name, np.abs(got - want).max())
        da = (g64[..., None] * b.astype(np.float64) if len(bsh) == 1 else g64 @ b.astype(np.float64).T)
        np.testing.assert_allclose(ta.grad.numpy(), da.reshape(ash), rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("ash,bsh", [((2, 3, 4), (4, 5)), ((2, 2, 3, 4), (4, 3)), ((3, 4), (4, 2)),
                                     ((2, 3, 4), (4,)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5))])
def test_matmul_gradients_against_finite_differences(ash, bsh):
    rng = np.random.default_rng(7)
    a = tg.tensor(rng.standard_normal(ash), requires_grad=True)
    b = tg.tensor(rng.standard_normal(bsh), requires_grad=True)
    assert gradcheck(lambda x, y: x @ y, [a, b])
    assert gradgradcheck(lambda x, y: x @ y, [a, b])


def test_weight_gradient_matches_pytorch_including_the_second_derivative(torch):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6, 5))
    b = rng.standard_normal((5, 3))
    ta, tb = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    pa = torch.tensor(a, requires_grad=True)
    pb = torch.tensor(b, requires_grad=True)
    # d/d(a, b) of sum(grad_b(sum((a @ b)^2))^2): goes through the folded path twice
    (gb,) = tg.grad(((ta @ tb) ** 2).sum(), [tb], create_graph=True)
    (gb ** 2).sum().backward()
    (pgb,) = torch.autograd.grad(((pa @ pb) ** 2).sum(), [pb], create_graph=True)
    (pgb ** 2).sum().backward()
    np.testing.assert_allclose(gb.detach().numpy(), pgb.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ta.grad.numpy(), pa.grad.numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(tb.grad.numpy(), pb.grad.numpy(), rtol=1e-12, atol=1e-10)


# ---- bitwise the same on one and two threads --------------------------------

# the GPT benchmark's products (benchmarks/gpt.py) and a few edge shapes
THREAD_CASES = [
    ("mm", (16, 64, 128), (128, 384)), ("mm", (16, 64, 512), (512, 128)),
    ("mm", (16, 64, 128), (128, 65)), ("mm", (3, 37, 19), (19, 70)),
    ("qk", (16, 64, 4, 32), (16, 64, 4, 32)), ("av", (16, 4, 64, 64), (16, 64, 4, 32)),
    ("bb", (5, 1, 9, 33), (3, 33, 40)), ("bb", (64, 3, 5), (64, 5, 2)),
]


def _run_case(kind, a, b, g):
    ta = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    x, y = ta, tb
    if kind == "qk":    # q (B, H, T, hs) @ k^T (B, H, hs, T), both permuted views
        x, y = ta.permute(0, 2, 1, 3), tb.permute(0, 2, 3, 1)
    elif kind == "av":  # att (B, H, T, T) @ v (B, H, T, hs), v a permuted view
        y = tb.permute(0, 2, 1, 3)
    c = x @ y
    c.backward(tg.tensor(g.reshape(c.shape)))
    return c.numpy(), ta.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,ash,bsh", THREAD_CASES)
def test_same_bits_on_one_and_two_threads(kind, ash, bsh, dtype):
    rng = np.random.default_rng(11)
    a = rng.standard_normal(ash).astype(dtype)
    b = rng.standard_normal(bsh).astype(dtype)
    with tg.no_grad():
        x, y = tg.tensor(a), tg.tensor(b)
        if kind == "qk":
            x, y = x.permute(0, 2, 1, 3), y.permute(0, 2, 3, 1)
        elif kind == "av":
            y = y.permute(0, 2, 1, 3)
        out_shape = (x @ y).shape
    g = rng.standard_normal(out_shape).astype(dtype)
    before = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        one = _run_case(kind, a, b, g)
        tg.set_num_threads(2)
        two = _run_case(kind, a, b, g)
    finally:
        tg.set_num_threads(before)
    for r1, r2, what in zip(one, two, ("output", "grad a", "grad b")):
        assert r1.tobytes() == r2.tobytes(), (kind, ash, bsh, what)
    # and right: the forward against float64 NumPy
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if kind == "qk":
        a64, b64 = a64.transpose(0, 2, 1, 3), b64.transpose(0, 2, 3, 1)
    elif kind == "av":
        b64 = b64.transpose(0, 2, 1, 3)
    want = np.matmul(a64, b64)
    tol = 2 * (a64.shape[-1] + 4) * np.finfo(dtype).eps * np.matmul(np.abs(a64), np.abs(b64)) + 1e-30
    assert np.all(np.abs(one[0] - want) <= tol)


# ---- gradients of transposed and permuted operands ---------------------------

def _as_view(x, how):
    """x (a float64 array) as a tapegrad leaf and the view of it used as the
    operand: "rows" row-major, "cols" a transposed view (columns contiguous)."""
    if how == "rows":
        leaf = tg.tensor(x, requires_grad=True)
        return leaf, leaf, lambda g: g
    leaf = tg.tensor(np.ascontiguousarray(np.swapaxes(x, -1, -2)), requires_grad=True)
    return leaf, leaf.swapaxes(-1, -2), lambda g: np.swapaxes(g, -1, -2)


@pytest.mark.parametrize("how_a", ["rows", "cols"])
@pytest.mark.parametrize("how_b", ["rows", "cols"])
@pytest.mark.parametrize("ash,bsh", [((5, 7), (7, 9)), ((3, 5, 7), (3, 7, 9)), ((2, 3, 6, 4), (3, 4, 5)),
                                     ((4, 6, 8), (8, 3))])
def test_gradients_of_transposed_views(gemm_path, how_a, how_b, ash, bsh):
    """A transposed operand (k^T in attention) gets its gradient computed as
    the transpose of a row-major product, laid out like the operand: the
    values must be those of dA = dC B^T, dB = A^T dC summed over broadcast
    batch dims."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal(ash)
    b = rng.standard_normal(bsh)
    la, va, back_a = _as_view(a, how_a)
    lb, vb, back_b = _as_view(b, how_b)
    c = va @ vb
    g = rng.standard_normal(c.shape)
    c.backward(tg.tensor(g))
    np.testing.assert_allclose(c.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    ga = np.matmul(g, np.swapaxes(b, -1, -2))
    gb = np.matmul(np.swapaxes(a, -1, -2), g)
    while ga.ndim > a.ndim:
        ga = ga.sum(0)
    while gb.ndim > b.ndim:
        gb = gb.sum(0)
    np.testing.assert_allclose(back_a(la.grad.numpy()), ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(back_b(lb.grad.numpy()), gb, rtol=1e-12, atol=1e-12)
    # and to first and second order by finite differences, through the views
    fa = (lambda t: t) if how_a == "rows" else (lambda t: t.swapaxes(-1, -2))
    fb = (lambda t: t) if how_b == "rows" else (lambda t: t.swapaxes(-1, -2))
    la2 = la.detach().requires_grad_()
    lb2 = lb.detach().requires_grad_()
    assert gradcheck(lambda x, y: fa(x) @ fb(y), [la2, lb2])
    assert gradgradcheck(lambda x, y: fa(x) @ fb(y), [la2, lb2])


def test_attention_query_and_key_gradients_through_permuted_views():
    """q @ k^T with q and k permuted views of (B, T, H, hs) tensors, as in
    attention: dk goes through the transposed-operand path."""
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)   # (B, T, H, hs)
    k = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    tq, tk = tg.tensor(q, requires_grad=True), tg.tensor(k, requires_grad=True)
    s = tq.permute(0, 2, 1, 3) @ tk.permute(0, 2, 3, 1)              # (B, H, T, T)
    g = rng.standard_normal(s.shape).astype(np.float32)
    s.backward(tg.tensor(g))
    q64, k64, g64 = q.astype(np.float64), k.astype(np.float64), g.astype(np.float64)
    dq = np.matmul(g64, k64.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    dk = np.matmul(np.swapaxes(g64, -1, -2), q64.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(tq.grad.numpy(), dq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tk.grad.numpy(), dk, rtol=1e-5, atol=1e-5)
