"""tg.linalg's decompositions and what is built on them: qr, svd, svdvals,
pinv, lstsq and the matrix norms.  Forward against NumPy and PyTorch
(float32 and float64, batched, tall / square / wide, rank-deficient where it
matters), gradients against finite differences (gradcheck, gradgradcheck in
float64) and against PyTorch for losses that do not depend on the sign (or
rotation) ambiguity of the factors, and the errors a learner meets."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(19)

SHAPES = [(4, 3), (3, 3), (3, 5), (2, 4, 2), (2, 3, 2, 4), (1, 1), (5, 1), (1, 4)]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


def mT(a):
    return np.swapaxes(a, -1, -2)


def eye_like(k, batch):
    return np.broadcast_to(np.eye(k), batch + (k, k))


def torch_grad(f, a):
    """The gradient of the scalar f(A) at a, by PyTorch."""
    t = torch.tensor(a, requires_grad=True)
    f(t).backward()
    return t.grad.numpy()


def tg_grad(f, a):
    t = tg.tensor(a, requires_grad=True)
    f(t).backward()
    return t.grad.numpy()


# ---------------------------------------------------------------------------
# qr
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_qr_matches_torch_exactly(shape, mode, dtype):
    """Householder with LAPACK's signs: the same Q and R as torch.linalg.qr
    (and NumPy), not only the same product."""
    a = RNG.standard_normal(shape).astype(dtype)
    Q, R = tg.linalg.qr(tg.tensor(a), mode=mode)
    q, r = torch.linalg.qr(torch.tensor(a), mode=mode)
    assert Q.dtype == R.dtype == tg.tensor(a).dtype
    assert Q.shape == tuple(q.shape) and R.shape == tuple(r.shape)
    np.testing.assert_allclose(Q.numpy(), q.numpy(), **TOL[dtype])
    np.testing.assert_allclose(R.numpy(), r.numpy(), **TOL[dtype])
    if a.ndim == 2:
        q2, r2 = np.linalg.qr(a, mode=mode)
        np.testing.assert_allclose(R.numpy(), r2, **TOL[dtype])
    np.testing.assert_allclose(Q.numpy() @ R.numpy(), a, **TOL[dtype])
    np.testing.assert_allclose(mT(Q.numpy()) @ Q.numpy(), eye_like(Q.shape[-1], Q.shape[:-2]),
                               **TOL[dtype])
    assert np.all(np.tril(R.numpy(), -1) == 0)


def test_qr_mode_r_and_rank_deficient_forward():
    a = RNG.standard_normal((5, 3))
    R = tg.linalg.qr(tg.tensor(a), mode="r")
    np.testing.assert_allclose(R.numpy(), np.linalg.qr(a, mode="r"), rtol=1e-12, atol=1e-14)
    # a rank-deficient A: Q R still reproduces it and Q is orthonormal
    b = a.copy()
    b[:, 2] = b[:, 0] + 2 * b[:, 1]
    Q, R = tg.linalg.qr(tg.tensor(b))
    np.testing.assert_allclose(Q.numpy() @ R.numpy(), b, atol=1e-13)
    np.testing.assert_allclose(Q.numpy().T @ Q.numpy(), np.eye(3), atol=1e-13)
    assert abs(R.numpy()[2, 2]) < 1e-12
    # a column that is already zero below the diagonal: no reflection (LAPACK's tau = 0)
    c = np.array([[2.0, 1.0], [0.0, 3.0], [0.0, 4.0]])
    Q, R = tg.linalg.qr(tg.tensor(c))
    q, r = np.linalg.qr(c)
    np.testing.assert_allclose(Q.numpy(), q, atol=1e-15)
    np.testing.assert_allclose(R.numpy(), r, atol=1e-15)


QR_LOSSES = {
    "Q and R": lambda lib: lambda a: (lambda q, r: (q * 1.3).sum() + (r ** 2).sum() * 0.5
                                      + (q ** 3).sum())(*lib.linalg.qr(a)),
    "R only": lambda lib: lambda a: (lib.linalg.qr(a)[1].sin()).sum(),
    "Q only": lambda lib: lambda a: (lib.linalg.qr(a)[0] ** 2 * lib.linalg.qr(a)[0]).sum(),
}


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (3, 5), (2, 4, 2), (2, 2, 3)])
@pytest.mark.parametrize("loss", list(QR_LOSSES))
def test_qr_gradients_match_torch(shape, loss):
    a = RNG.standard_normal(shape)
    g_tg = tg_grad(QR_LOSSES[loss](tg), a)
    g_th = torch_grad(QR_LOSSES[loss](torch), a)
    np.testing.assert_allclose(g_tg, g_th, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (2, 3, 5)])
def test_qr_gradcheck_and_gradgradcheck(shape):
    A = tg.tensor(RNG.standard_normal(shape), requires_grad=True)
    w = tg.tensor(RNG.standard_normal(shape[:-2] + (shape[-2], min(shape[-2:]))))

    def f(a):
        q, r = tg.linalg.qr(a)
        return (q * w).sum() + (r * r).sum()
    assert gradcheck(f, [A])
    assert gradgradcheck(f, [A])
    assert gradcheck(lambda a: tg.linalg.qr(a, mode="r"), [A])


def test_qr_complete_tall_is_not_differentiable_and_says_so():
    A = tg.tensor(RNG.standard_normal((4, 2)), requires_grad=True)
    q, r = tg.linalg.qr(A, mode="complete")
    assert q.shape == (4, 4) and r.shape == (4, 2)
    with pytest.raises(ValueError, match=r"linalg_qr: mode='complete' with more rows than columns"):
        (q.sum() + r.sum()).backward()
    # wide or square: 'complete' is the reduced factorisation and differentiates
    B = tg.tensor(RNG.standard_normal((2, 4)), requires_grad=True)
    assert gradcheck(lambda b: tg.linalg.qr(b, mode="complete").Q.sum() * 0 +
                     (tg.linalg.qr(b, mode="complete").R ** 2).sum(), [B])


def test_qr_gradient_of_rank_deficient_raises():
    a = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    A = tg.tensor(a, requires_grad=True)
    with pytest.raises(ValueError, match=r"linalg_qr: the gradient needs R invertible"):
        tg.linalg.qr(A).R.sum().backward()


# ---------------------------------------------------------------------------
# svd, svdvals
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("full", [True, False])
def test_svd_forward(shape, full, dtype):
    a = RNG.standard_normal(shape).astype(dtype)
    U, S, Vh = tg.linalg.svd(tg.tensor(a), full_matrices=full)
    u, s, vh = torch.linalg.svd(torch.tensor(a), full_matrices=full)
    assert (U.shape, S.shape, Vh.shape) == (tuple(u.shape), tuple(s.shape), tuple(vh.shape))
    assert U.dtype == S.dtype == Vh.dtype == tg.tensor(a).dtype
    tol = TOL[dtype]
    np.testing.assert_allclose(S.numpy(), s.numpy(), **tol)
    np.testing.assert_allclose(S.numpy(), np.linalg.svd(a, compute_uv=False), **tol)
    k = S.shape[-1]
    U_, Vh_ = U.numpy(), Vh.numpy()
    np.testing.assert_allclose((U_[..., :k] * S.numpy()[..., None, :]) @ Vh_[..., :k, :], a,
                               **tol)
    np.testing.assert_allclose(mT(U_) @ U_, eye_like(U_.shape[-1], U_.shape[:-2]), **tol)
    np.testing.assert_allclose(Vh_ @ mT(Vh_), eye_like(Vh_.shape[-2], Vh_.shape[:-2]), **tol)
    # the vectors agree with LAPACK's up to the sign of each pair
    np.testing.assert_allclose(np.abs(U_[..., :k]), np.abs(u.numpy()[..., :k]), **tol)
    # the sign convention: each column's largest-magnitude entry is positive
    big = np.take_along_axis(U_, np.abs(U_).argmax(axis=-2)[..., None, :], axis=-2)
    assert np.all(big > 0)


@pytest.mark.parametrize("shape", [(5, 3), (3, 6), (4, 4), (2, 5, 3)])
def test_svd_rank_deficient_forward(shape):
    """Zero singular values: U (and V) are still orthonormal (completed by
    Gram-Schmidt), the product still reproduces A."""
    m, n = shape[-2:]
    a = RNG.standard_normal(shape[:-1] + (2,)) @ RNG.standard_normal(shape[:-2] + (2, n))
    for full in (True, False):
        U, S, Vh = (t.numpy() for t in tg.linalg.svd(tg.tensor(a), full_matrices=full))
        k = S.shape[-1]
        np.testing.assert_allclose(S, np.linalg.svd(a, compute_uv=False), atol=1e-12)
        assert np.all(S[..., 2:] < 1e-12)
        np.testing.assert_allclose(mT(U) @ U, eye_like(U.shape[-1], U.shape[:-2]), atol=1e-12)
        np.testing.assert_allclose(Vh @ mT(Vh), eye_like(Vh.shape[-2], Vh.shape[:-2]), atol=1e-12)
        np.testing.assert_allclose((U[..., :k] * S[..., None, :]) @ Vh[..., :k, :], a, atol=1e-12)
    zero = tg.linalg.svd(tg.zeros(3, 2, dtype=tg.float64))
    np.testing.assert_allclose(zero.U.numpy(), np.eye(3), atol=0)
    np.testing.assert_allclose(zero.S.numpy(), [0.0, 0.0], atol=0)


def test_svd_repeated_singular_values_forward():
    q, _ = np.linalg.qr(RNG.standard_normal((4, 4)))
    a = q * np.array([3.0, 3.0, 1.0, 1.0])
    U, S, Vh = (t.numpy() for t in tg.linalg.svd(tg.tensor(a)))
    np.testing.assert_allclose(S, [3.0, 3.0, 1.0, 1.0], rtol=1e-13)
    np.testing.assert_allclose(U * S @ Vh, a, atol=1e-13)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_svd_of_non_finite_input_is_nan_and_terminates(bad):
    a = RNG.standard_normal((2, 4, 3))
    a[1, 2, 0] = bad
    U, S, Vh = tg.linalg.svd(tg.tensor(a))
    assert np.all(np.isnan(S.numpy()[1])) and np.all(np.isnan(U.numpy()[1]))
    np.testing.assert_allclose(S.numpy()[0], np.linalg.svd(a[0], compute_uv=False), rtol=1e-12)
    # pinv, lstsq and cond carry the NaN too (never a silent zero)
    P = tg.linalg.pinv(tg.tensor(a)).numpy()
    assert np.all(np.isnan(P[1])) and np.all(np.isfinite(P[0]))
    assert np.isnan(tg.linalg.lstsq(tg.tensor(a[1]), tg.ones(4, dtype=tg.float64)).solution.numpy()).all()
    assert np.isnan(tg.linalg.cond(tg.tensor(a)).numpy()[1])
    # QR carries the NaN through its arithmetic
    assert np.isnan(tg.linalg.qr(tg.tensor(a)).R.numpy()[1]).any()


def _svd_loss(lib, full=False):
    """A loss that does not depend on the signs of the singular vectors."""
    def f(a):
        U, S, Vh = lib.linalg.svd(a, full_matrices=full)
        k = S.shape[-1]
        rec = (U[..., :, :k] * S[..., None, :]) @ Vh[..., :k, :]
        return (S ** 2).sum() + (abs(U[..., :, :k]) * 1.7).sum() + rec.sin().sum() \
            + (Vh[..., :k, :] ** 2 * abs(Vh[..., :k, :])).sum()
    return f


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (3, 5), (2, 4, 2), (2, 2, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_svd_gradients_match_torch(shape, full):
    a = RNG.standard_normal(shape)
    np.testing.assert_allclose(tg_grad(_svd_loss(tg, full), a), torch_grad(_svd_loss(torch, full), a),
                               rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(tg_grad(lambda t: tg.linalg.svdvals(t).sum(), a),
                               torch_grad(lambda t: torch.linalg.svdvals(t).sum(), a),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (3, 5), (2, 3, 2)])
def test_svd_gradcheck_and_gradgradcheck(shape):
    A = tg.tensor(RNG.standard_normal(shape), requires_grad=True)
    assert gradcheck(_svd_loss(tg), [A])
    assert gradgradcheck(_svd_loss(tg), [A])
    assert gradcheck(tg.linalg.svdvals, [A])
    assert gradgradcheck(tg.linalg.svdvals, [A])


def test_svdvals_gradient_at_a_rank_deficient_square_matrix_is_finite():
    """svdvals' gradient U diag(ds) V^T never divides: defined wherever the
    singular values are distinct, zero ones included (square A)."""
    a = np.diag([3.0, 1.0, 0.0])
    g = tg_grad(lambda t: tg.linalg.svdvals(t).sum(), a)
    np.testing.assert_allclose(g, torch_grad(lambda t: torch.linalg.svdvals(t).sum(), a), atol=1e-12)


@pytest.mark.parametrize("a", [np.diag([1.0, 1.0, 2.0]), np.eye(3), np.zeros((3, 2)),
                               2 * np.eye(4)[:, :2], np.ones((2, 3))],
                         ids=["repeated", "identity", "zero-tall", "repeated-tall", "rank1-wide"])
def test_singular_value_losses_are_finite_at_repeated_and_zero_values(a):
    """A loss of S alone leaves the U and V terms out of the VJP (they
    would be 0 / 0): svdvals, 'nuc' and 2-norms have PyTorch's gradient."""
    w = np.ones(min(a.shape))   # (weights that tell equal values apart have no gradient there)
    for f_tg, f_th in [(lambda t: (tg.linalg.svdvals(t) * tg.tensor(w)).sum(),
                        lambda t: (torch.linalg.svdvals(t) * torch.tensor(w)).sum()),
                       (lambda t: tg.linalg.matrix_norm(t, "nuc"),
                        lambda t: torch.linalg.matrix_norm(t, "nuc"))]:
        g = tg_grad(f_tg, a)
        assert np.all(np.isfinite(g))
        if a.any() and np.linalg.matrix_rank(a) == min(a.shape):  # else a subgradient: any choice
            np.testing.assert_allclose(g, torch_grad(f_th, a), atol=1e-12)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["qr", "svd", "svdvals"])
def test_errors_name_the_function_and_shape(fn):
    f = getattr(tg.linalg, fn)
    with pytest.raises(ValueError, match=rf"linalg\.{fn}: expected a matrix .* got shape \(3,\)"):
        f(tg.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match=rf"linalg\.{fn}: expected a float32 or float64 matrix, got int64"):
        f(tg.tensor([[1, 2], [3, 4]]))
    # the op itself (the C library's callers) says the same
    op = {"qr": "linalg_qr", "svd": "linalg_svd", "svdvals": "linalg_svd"}[fn]
    with pytest.raises(ValueError, match=rf"{op}: expected a matrix .* got shape \(3,\)"):
        tg._C._op_apply(op, [tg.ones(3)], "")
    with pytest.raises(ValueError, match=rf"{op}: i0"):
        tg._C._op_apply(op, [tg.ones(3, 3)], "i0=7")


def test_qr_bad_mode():
    with pytest.raises(ValueError, match=r"linalg\.qr: mode must be 'reduced', 'complete' or 'r', got 'full'"):
        tg.linalg.qr(tg.eye(3), mode="full")


def test_empty_matrices():
    for shape in [(0, 3), (3, 0), (2, 0, 0)]:
        U, S, Vh = tg.linalg.svd(tg.zeros(*shape, dtype=tg.float64))
        u, s, vh = np.linalg.svd(np.zeros(shape))
        assert (U.shape, S.shape, Vh.shape) == (u.shape, s.shape, vh.shape)
        Q, R = tg.linalg.qr(tg.zeros(*shape, dtype=tg.float64))
        q, r = torch.linalg.qr(torch.zeros(shape, dtype=torch.float64))
        assert (Q.shape, R.shape) == (tuple(q.shape), tuple(r.shape))


# ---------------------------------------------------------------------------
# pinv, lstsq
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_pinv_matches_numpy_and_torch(shape, dtype):
    a = RNG.standard_normal(shape).astype(dtype)
    P = tg.linalg.pinv(tg.tensor(a))
    assert P.dtype == tg.tensor(a).dtype and P.shape == shape[:-2] + shape[::-1][:2]
    np.testing.assert_allclose(P.numpy(), torch.linalg.pinv(torch.tensor(a)).numpy(),
                               rtol=1e-9 if dtype == np.float64 else 2e-4,
                               atol=1e-10 if dtype == np.float64 else 2e-4)
    np.testing.assert_allclose(P.numpy(), np.linalg.pinv(a), rtol=1e-9 if dtype == np.float64 else 2e-4,
                               atol=1e-10 if dtype == np.float64 else 2e-4)


def test_pinv_rank_deficient_and_tolerances():
    a = RNG.standard_normal((5, 2)) @ RNG.standard_normal((2, 4))   # rank 2
    np.testing.assert_allclose(tg.linalg.pinv(tg.tensor(a)).numpy(), np.linalg.pinv(a), atol=1e-12)
    d = np.diag([1.0, 1e-3, 1e-9])
    for kw, th_kw in [({"rtol": 1e-6}, {"rtol": 1e-6}), ({"atol": 1e-2}, {"atol": 1e-2}),
                      ({"rcond": 1e-2}, {"rtol": 1e-2}), ({}, {})]:
        np.testing.assert_allclose(tg.linalg.pinv(tg.tensor(d), **kw).numpy(),
                                   torch.linalg.pinv(torch.tensor(d), **th_kw).numpy(), rtol=1e-12)
    np.testing.assert_allclose(tg.linalg.pinv(tg.tensor(d), rcond=1e-6).numpy(),
                               np.linalg.pinv(d, rcond=1e-6), rtol=1e-12)
    z = tg.linalg.pinv(tg.zeros(3, 2, dtype=tg.float64))
    assert z.shape == (2, 3) and not z.numpy().any()


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (3, 5), (2, 4, 2)])
def test_pinv_gradients(shape):
    a = RNG.standard_normal(shape)
    w = RNG.standard_normal(shape[:-2] + shape[::-1][:2])
    A = tg.tensor(a, requires_grad=True)
    f = lambda x: (tg.linalg.pinv(x) * tg.tensor(w)).sum()   # noqa: E731
    assert gradcheck(f, [A])
    assert gradgradcheck(f, [A])
    np.testing.assert_allclose(tg_grad(f, a),
                               torch_grad(lambda t: (torch.linalg.pinv(t) * torch.tensor(w)).sum(), a),
                               rtol=1e-8, atol=1e-9)


def test_pinv_gradient_at_repeated_singular_values_is_finite():
    """An orthogonal matrix has all singular values equal: the SVD's VJP
    would divide by zero, pinv's own (Golub-Pereyra) does not."""
    q, _ = np.linalg.qr(RNG.standard_normal((3, 3)))
    A = tg.tensor(q, requires_grad=True)
    f = lambda x: tg.linalg.pinv(x).sin().sum()   # noqa: E731
    assert gradcheck(f, [A])
    np.testing.assert_allclose(tg_grad(f, q), torch_grad(lambda t: torch.linalg.pinv(t).sin().sum(), q),
                               rtol=1e-9, atol=1e-10)


def test_pinv_gradient_of_a_rank_deficient_matrix_matches_torch():
    a = RNG.standard_normal((4, 2)) @ RNG.standard_normal((2, 3))
    w = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(tg_grad(lambda t: (tg.linalg.pinv(t) * tg.tensor(w)).sum(), a),
                               torch_grad(lambda t: (torch.linalg.pinv(t) * torch.tensor(w)).sum(), a),
                               rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("m,n,k", [(5, 3, 2), (3, 3, 1), (3, 5, 2)])
def test_lstsq_matches_numpy(m, n, k):
    a, b = RNG.standard_normal((m, n)), RNG.standard_normal((m, k))
    got = tg.linalg.lstsq(tg.tensor(a), tg.tensor(b))
    x, res, rank, s = np.linalg.lstsq(a, b, rcond=None)
    np.testing.assert_allclose(got.solution.numpy(), x, rtol=1e-10, atol=1e-12)
    assert got.residuals.shape == res.shape
    np.testing.assert_allclose(got.residuals.numpy(), res, rtol=1e-10)
    assert got.rank.item() == rank and got.rank.dtype == tg.int64
    np.testing.assert_allclose(got.singular_values.numpy(), s, rtol=1e-12)
    # a vector b
    x1, res1, _, _ = np.linalg.lstsq(a, b[:, 0], rcond=None)
    g1 = tg.linalg.lstsq(tg.tensor(a), tg.tensor(b[:, 0]))
    assert g1.solution.shape == x1.shape and g1.residuals.shape == res1.shape
    np.testing.assert_allclose(g1.solution.numpy(), x1, rtol=1e-10, atol=1e-12)


def test_lstsq_rank_deficient_and_batched():
    a = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    b = np.array([[1.0], [2.0], [2.0]])
    got = tg.linalg.lstsq(tg.tensor(a), tg.tensor(b))
    x, res, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    assert got.rank.item() == rank == 1 and got.residuals.shape == res.shape == (0,)
    np.testing.assert_allclose(got.solution.numpy(), x, atol=1e-12)
    A, B = RNG.standard_normal((3, 6, 4)), RNG.standard_normal((6, 2))
    sol = tg.linalg.lstsq(tg.tensor(A), tg.tensor(B)).solution.numpy()
    np.testing.assert_allclose(sol, torch.linalg.lstsq(torch.tensor(A), torch.tensor(B)
                                                       .expand(3, 6, 2)).solution.numpy(), rtol=1e-9)


def test_lstsq_gradients():
    a, b = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 2))
    A, B = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    f = lambda x, y: tg.linalg.lstsq(x, y).solution   # noqa: E731
    assert gradcheck(f, [A, B])
    assert gradgradcheck(f, [A, B])
    assert gradcheck(lambda x, y: tg.linalg.lstsq(x, y).residuals, [A, B])
    w = RNG.standard_normal((3, 2))
    (tg.linalg.lstsq(A, B).solution * tg.tensor(w)).sum().backward()
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.linalg.lstsq(ta, tb).solution * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(A.grad.numpy(), ta.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(B.grad.numpy(), tb.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_pinv_lstsq_errors():
    with pytest.raises(ValueError, match=r"linalg\.pinv: expected a matrix .* got shape \(2,\)"):
        tg.linalg.pinv(tg.ones(2))
    with pytest.raises(TypeError, match=r"linalg\.pinv: expected a float32 or float64 matrix, got int64"):
        tg.linalg.pinv(tg.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"linalg\.pinv: rtol must be >= 0, got -1"):
        tg.linalg.pinv(tg.eye(2), rtol=-1)
    with pytest.raises(TypeError, match=r"linalg\.pinv: pass rcond= .* not both"):
        tg.linalg.pinv(tg.eye(2), rcond=0.1, rtol=0.1)
    with pytest.raises(ValueError, match=r"linalg\.lstsq: A of shape \(3, 2\) needs B of shape \(\.\.\., 3, k\)"):
        tg.linalg.lstsq(tg.ones(3, 2), tg.ones(2, 1))
    with pytest.raises(ValueError, match=r"linalg\.lstsq: a vector b"):
        tg.linalg.lstsq(tg.ones(2, 3, 2), tg.ones(3))
    with pytest.raises(TypeError, match=r"linalg\.lstsq: expected a float32 or float64 B, got int64"):
        tg.linalg.lstsq(tg.ones(3, 2), tg.tensor([1, 2, 3]))


# ---------------------------------------------------------------------------
# norms: vector_norm, matrix_norm, norm (NumPy's rules), cond
# ---------------------------------------------------------------------------

MATRIX_ORDS = ["fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf]
VECTOR_ORDS = [2, 1, 3, 0.5, np.inf, -np.inf, 0, -1, -2.5]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
@pytest.mark.parametrize("axis", [(0, 1), (1, 0), (-1, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_matrix_matches_numpy(ord, axis, keepdims, dtype):
    a = RNG.standard_normal((3, 4)).astype(dtype)
    got = tg.linalg.norm(tg.tensor(a), ord=ord, axis=axis, keepdims=keepdims)
    want = np.linalg.norm(a, ord=ord, axis=axis, keepdims=keepdims)
    assert got.shape == want.shape and got.dtype == tg.tensor(a).dtype
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norm_batched_matches_torch(ord):
    a = RNG.standard_normal((2, 3, 4, 5))
    for dim in [(-2, -1), (1, 3), (3, 0)]:
        got = tg.linalg.matrix_norm(tg.tensor(a), ord=ord, dim=dim)
        want = torch.linalg.matrix_norm(torch.tensor(a), ord=ord, dim=dim)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10)
        got = tg.linalg.matrix_norm(tg.tensor(a), ord=ord, dim=dim, keepdim=True)
        want = torch.linalg.matrix_norm(torch.tensor(a), ord=ord, dim=dim, keepdim=True)
        assert got.shape == tuple(want.shape)


@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_norm_matches_numpy_and_torch(ord):
    a = RNG.standard_normal((3, 4, 2))
    for axis in [None, 0, (0, 2), -1]:
        got = tg.linalg.vector_norm(tg.tensor(a), ord=ord, dim=axis)
        want = torch.linalg.vector_norm(torch.tensor(a), ord=ord, dim=axis)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10)
    for axis in [0, 1, -1]:   # NumPy's spelling, through norm
        np.testing.assert_allclose(tg.linalg.norm(tg.tensor(a), ord=ord, axis=axis).numpy(),
                                   np.linalg.norm(a, ord=ord, axis=axis), rtol=1e-10)
    np.testing.assert_allclose(tg.linalg.vector_norm(tg.tensor(a), ord=ord, axis=1, keepdims=True)
                               .numpy(), np.linalg.norm(a, ord=ord, axis=1, keepdims=True), rtol=1e-10)


def test_norm_default_and_dimension_rules():
    a = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(tg.linalg.norm(tg.tensor(a)).numpy(), np.linalg.norm(a), rtol=1e-12)
    assert tg.linalg.norm(tg.tensor(a), keepdims=True).shape == (1, 1, 1)
    v = RNG.standard_normal(5)
    for ord in (None, 1, np.inf, 3):
        np.testing.assert_allclose(tg.linalg.norm(tg.tensor(v), ord).numpy(),
                                   np.linalg.norm(v, ord), rtol=1e-12)
    m = a[0]
    for ord in MATRIX_ORDS:   # a 2-D x with ord and no axis: a matrix norm
        np.testing.assert_allclose(tg.linalg.norm(tg.tensor(m), ord).numpy(),
                                   np.linalg.norm(m, ord), rtol=1e-10)
    # PyTorch's spellings
    np.testing.assert_allclose(tg.linalg.norm(tg.tensor(a), 2, dim=(1, 2), keepdim=True).numpy(),
                               torch.linalg.norm(torch.tensor(a), 2, dim=(1, 2), keepdim=True).numpy(),
                               rtol=1e-10)
    # huge and tiny values: the op's scaled 2-norm neither overflows nor underflows
    assert tg.linalg.norm(tg.tensor([3e200, 4e200], dtype=tg.float64)).item() == pytest.approx(5e200)
    assert tg.linalg.norm(tg.tensor([3e-200, 4e-200], dtype=tg.float64)).item() == pytest.approx(5e-200)


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norm_gradients(ord):
    a = RNG.standard_normal((2, 3, 4))
    A = tg.tensor(a, requires_grad=True)
    f = lambda x: tg.linalg.matrix_norm(x, ord=ord)   # noqa: E731
    assert gradcheck(f, [A])
    if ord not in (1, -1, np.inf, -np.inf):   # piecewise linear: second derivative 0 (checked too)
        assert gradgradcheck(f, [A])
    np.testing.assert_allclose(tg_grad(lambda t: f(t).sum(), a),
                               torch_grad(lambda t: torch.linalg.matrix_norm(t, ord=ord).sum(), a),
                               rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, np.inf, -np.inf, -1.5], ids=str)
def test_vector_norm_gradients(ord):
    a = RNG.standard_normal((3, 4)) + 0.1
    A = tg.tensor(a, requires_grad=True)
    f = lambda x: tg.linalg.vector_norm(x, ord=ord, dim=1)   # noqa: E731
    assert gradcheck(f, [A])
    assert gradgradcheck(f, [A])
    np.testing.assert_allclose(tg_grad(lambda t: f(t).sum(), a),
                               torch_grad(lambda t: torch.linalg.vector_norm(t, ord=ord, dim=1).sum(), a),
                               rtol=1e-9, atol=1e-12)


def test_norm_is_the_op():
    """One implementation: tg.linalg's vector norms and 'fro' record the
    `norm` op, the singular-value norms record the SVD."""
    def ops_of(y):
        ops, stack = set(), [y.grad_fn]
        while stack:
            e = stack.pop()
            ops.add(e.op)
            stack += [t.grad_fn for t in e.inputs if t.grad_fn is not None]
        return ops
    A = tg.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    assert tg.linalg.norm(A).grad_fn.op == "norm"
    assert tg.linalg.norm(A, "fro").grad_fn.op == "norm"
    assert tg.linalg.vector_norm(A, 3, dim=0).grad_fn.op == "norm"
    assert "norm" in ops_of(tg.linalg.norm(A, 1)) and "sum" not in ops_of(tg.linalg.norm(A, 1))
    assert "linalg_svd" in ops_of(tg.linalg.norm(A, "nuc"))
    # the norm gradient at zero is 0 (the op's rule), not NaN
    z = tg.zeros(3, dtype=tg.float64, requires_grad=True)
    tg.linalg.norm(z).backward()
    assert z.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf], ids=str)
def test_cond(p):
    a = RNG.standard_normal((2, 3, 3))
    np.testing.assert_allclose(tg.linalg.cond(tg.tensor(a), p).numpy(), np.linalg.cond(a, p),
                               rtol=1e-9)
    # (torch.linalg.cond's own backward fails for these p: its formula, spelled with torch)
    th_cond = (lambda t: torch.linalg.cond(t, p)) if p in (None, 2, -2) else \
        (lambda t: torch.linalg.matrix_norm(t, p) * torch.linalg.matrix_norm(torch.linalg.inv(t), p))
    np.testing.assert_allclose(tg_grad(lambda t: tg.linalg.cond(t, p).sum(), a),
                               torch_grad(lambda t: th_cond(t).sum(), a), rtol=1e-7, atol=1e-9)
    A = tg.tensor(a[0], requires_grad=True)
    assert gradcheck(lambda t: tg.linalg.cond(t, p), [A])


def test_cond_of_non_square_and_singular():
    a = RNG.standard_normal((4, 2))
    np.testing.assert_allclose(tg.linalg.cond(tg.tensor(a)).numpy(), np.linalg.cond(a), rtol=1e-10)
    assert tg.linalg.cond(tg.tensor(np.diag([1.0, 0.0]))).item() == np.inf
    with pytest.raises(ValueError, match=r"linalg\.cond: p='fro' needs a square matrix, got shape \(4, 2\)"):
        tg.linalg.cond(tg.tensor(a), "fro")
    with pytest.raises(ValueError, match="singular"):
        tg.linalg.cond(tg.tensor(np.diag([1.0, 0.0])), 1)


def test_norm_errors():
    x = tg.tensor(RNG.standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match=r"linalg\.norm: ord=2 needs axis= for a 3-D tensor \(shape \(2, 3, 4\)\)"):
        tg.linalg.norm(x, 2)
    with pytest.raises(ValueError, match=r"linalg\.norm: ord='fro' is a matrix norm"):
        tg.linalg.norm(x, "fro", axis=1)
    with pytest.raises(ValueError, match=r"linalg\.matrix_norm: ord='bad' is not a matrix norm"):
        tg.linalg.norm(x, "bad", axis=(0, 1))
    with pytest.raises(ValueError, match=r"linalg\.matrix_norm: ord=3 is not a matrix norm"):
        tg.linalg.norm(x, 3, axis=(0, 1))
    with pytest.raises(ValueError, match=r"linalg\.vector_norm: ord must be a number .* got 'nuc'"):
        tg.linalg.vector_norm(x, "nuc")
    with pytest.raises(ValueError, match=r"linalg\.matrix_norm: repeated axis"):
        tg.linalg.norm(x, axis=(1, 1))
    with pytest.raises(IndexError, match=r"linalg\.vector_norm: axis 3 is out of range for a 3-D tensor"):
        tg.linalg.norm(x, axis=3)
    with pytest.raises(ValueError, match=r"linalg\.norm: axis must be an int or a pair"):
        tg.linalg.norm(x, axis=(0, 1, 2))
    with pytest.raises(TypeError, match=r"linalg\.norm: expected a float32 or float64 tensor, got int64"):
        tg.linalg.norm(tg.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"linalg\.matrix_norm: expected a matrix .* got shape \(3,\)"):
        tg.linalg.matrix_norm(tg.ones(3))
    with pytest.raises(TypeError, match=r"linalg\.norm: pass dim= or axis=, not both"):
        tg.linalg.norm(x, axis=0, dim=0)
    with pytest.raises(ValueError, match=r"ord=2 of an empty matrix"):
        tg.linalg.matrix_norm(tg.zeros(0, 3), 2)
    # the op's own spelling points at tg.linalg for the nuclear norm
    with pytest.raises(ValueError, match=r"tg\.linalg\.matrix_norm"):
        x.norm("nuc")


# ---------------------------------------------------------------------------
# NumPy's functions on tensors dispatch here (the NEP 18 protocol)
# ---------------------------------------------------------------------------

def test_numpy_linalg_functions_dispatch_and_differentiate():
    a = RNG.standard_normal((4, 3))
    A = tg.tensor(a, requires_grad=True)
    U, S, Vh = np.linalg.svd(A, full_matrices=False)
    assert isinstance(S, tg.Tensor) and S.requires_grad
    np.testing.assert_allclose(np.linalg.svd(A, compute_uv=False).numpy(), np.linalg.svd(a, compute_uv=False),
                               rtol=1e-12)
    Q, R = np.linalg.qr(A)
    assert isinstance(R, tg.Tensor) and R.requires_grad
    np.testing.assert_allclose(np.linalg.pinv(A).numpy(), np.linalg.pinv(a), rtol=1e-10)
    x = np.linalg.lstsq(A, np.ones(4), rcond=None)[0]
    assert isinstance(x, tg.Tensor) and x.requires_grad
    for ord in (None, "fro", "nuc", 2, 1):
        y = np.linalg.norm(A, ord)
        assert isinstance(y, tg.Tensor) and y.requires_grad
        np.testing.assert_allclose(y.numpy(), np.linalg.norm(a, ord), rtol=1e-10)
    c = np.linalg.cond(A)
    assert isinstance(c, tg.Tensor) and c.requires_grad
    np.testing.assert_allclose(c.numpy(), np.linalg.cond(a), rtol=1e-10)
    # the same gradient as the tapegrad spelling
    np.linalg.norm(A, "nuc").backward()
    g = A.grad.numpy().copy()
    A.grad = None
    tg.linalg.svdvals(A).sum().backward()
    np.testing.assert_allclose(A.grad.numpy(), g, rtol=1e-12)
    table = dict(tg._numpy_protocol.dispatch_table())
    for name in ("svd", "qr", "pinv", "lstsq", "norm", "cond"):
        assert table[f"np.linalg.{name}"] == f"linalg.{name}"


# ---------------------------------------------------------------------------
# sizes: empty, tall and skinny, absurd
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 0), (0, 2, 3)])
def test_empty_matrices_differentiate(shape):
    A = tg.zeros(*shape, dtype=tg.float64, requires_grad=True)
    Q, R = tg.linalg.qr(A)
    U, S, Vh = tg.linalg.svd(A, full_matrices=False)
    (Q.sum() + R.sum() + U.sum() + S.sum() + Vh.sum() + tg.linalg.pinv(A).sum()).backward()
    assert A.grad.shape == shape and not A.grad.numpy().any()


def test_tall_and_skinny_least_squares():
    """A (20000, 2) regression: the work space is p q + q q + ..., not
    max(m, n)^2."""
    x = RNG.standard_normal(20000)
    a = np.stack([np.ones_like(x), x], axis=1)
    b = 3.0 + 2.0 * x + 0.01 * RNG.standard_normal(20000)
    got = tg.linalg.lstsq(tg.tensor(a), tg.tensor(b)).solution.numpy()
    np.testing.assert_allclose(got, np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-10)


def test_absurd_matrix_sizes_are_refused():
    with pytest.raises(ValueError, match=r"linalg_svd: a matrix of shape \(536870912, 0\) is too large"):
        tg.linalg.svd(tg.zeros(2 ** 29, 0))
    with pytest.raises(ValueError, match=r"linalg_qr: a matrix of shape \(0, 536870912\) is too large"):
        tg.linalg.qr(tg.zeros(0, 2 ** 29))


# ---------------------------------------------------------------------------
# Hypothesis: any shape, rank, scale (the classes of input that broke the
# kernels while they were written: squares that overflow or underflow,
# empty and rank-deficient matrices, NaN)
# ---------------------------------------------------------------------------

@st.composite
def matrices(draw):
    batch = draw(st.sampled_from([(), (2,)]))
    m, n = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    rank = draw(st.integers(0, min(m, n)))
    scale = 10.0 ** draw(st.sampled_from([-250, -100, -3, 0, 3, 100, 250]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    a = rng.standard_normal(batch + (m, rank)) @ rng.standard_normal(batch + (rank, n))
    if draw(st.booleans()):
        a = rng.standard_normal(batch + (m, n))
    return a * scale


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=matrices(), full=st.booleans())
def test_svd_property(a, full):
    U, S, Vh = (t.numpy() for t in tg.linalg.svd(tg.tensor(a), full_matrices=full))
    m, n = a.shape[-2:]
    k = min(m, n)
    s_ref = np.linalg.svd(a, compute_uv=False) if a.size else np.zeros(a.shape[:-2] + (k,))
    big = np.abs(a).max() if a.size else 1.0
    np.testing.assert_allclose(S, s_ref, rtol=1e-12, atol=1e-13 * big)
    assert np.all(np.diff(S, axis=-1) <= 0) and np.all(S >= 0)
    np.testing.assert_allclose(mT(U) @ U, eye_like(U.shape[-1], U.shape[:-2]), atol=1e-12)
    np.testing.assert_allclose(Vh @ mT(Vh), eye_like(Vh.shape[-2], Vh.shape[:-2]), atol=1e-12)
    np.testing.assert_allclose((U[..., :k] * S[..., None, :]) @ Vh[..., :k, :], a, rtol=0,
                               atol=1e-12 * big)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=matrices(), complete=st.booleans())
def test_qr_property(a, complete):
    mode = "complete" if complete else "reduced"
    Q, R = (t.numpy() for t in tg.linalg.qr(tg.tensor(a), mode=mode))
    q, r = (t.numpy() for t in torch.linalg.qr(torch.tensor(a), mode=mode))
    assert Q.shape == q.shape and R.shape == r.shape
    big = np.abs(a).max() if a.size else 1.0
    np.testing.assert_allclose(Q @ R, a, rtol=0, atol=1e-12 * big)
    np.testing.assert_allclose(mT(Q) @ Q, eye_like(Q.shape[-1], Q.shape[:-2]), atol=1e-12)
    assert np.all(np.tril(R, -1) == 0)
    # LAPACK's |R| (the signs of R's rows may differ where a pivot is zero to rounding)
    np.testing.assert_allclose(np.abs(R), np.abs(r), rtol=0, atol=1e-11 * big)


@settings(max_examples=30, deadline=None)
@given(a=matrices(), where=st.integers(0, 10 ** 6), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_input_property(a, where, bad):
    if a.size == 0:
        return
    a = a.copy()
    a.reshape(-1)[where % a.size] = bad
    S = tg.linalg.svd(tg.tensor(a)).S.numpy()
    hit = np.isnan(a).any(axis=(-2, -1)) | np.isinf(a).any(axis=(-2, -1))
    assert np.all(np.isnan(S[hit])) and np.all(np.isfinite(S[~hit]))
