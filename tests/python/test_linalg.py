"""tg.linalg: values against NumPy and PyTorch, gradients against PyTorch and
finite differences (float64), second order, batching, and the errors a
learner meets (singular, not square, not positive definite)."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)


def well_conditioned(*batch, n=4):
    return RNG.standard_normal((*batch, n, n)) / n + np.eye(n) * 1.5


def spd(*batch, n=4):
    b = RNG.standard_normal((*batch, n, n))
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def both(a):
    """The same float64 values as a tapegrad leaf and a torch leaf."""
    return (tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True))


def check_against_torch(f_tg, f_th, *arrays, rtol=1e-9, atol=1e-10):
    tgs, ths = zip(*[both(a) for a in arrays])
    y, z = f_tg(*tgs), f_th(*ths)
    np.testing.assert_allclose(y.numpy(), z.detach().numpy(), rtol=rtol, atol=atol)
    w = RNG.standard_normal(tuple(y.shape))
    (y * tg.tensor(w)).sum().backward()
    (z * torch.tensor(w)).sum().backward()
    for a, b in zip(tgs, ths):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_inv_det_solve_match_pytorch(batch):
    A = well_conditioned(*batch)
    B = RNG.standard_normal((*batch, 4, 2))
    check_against_torch(tg.linalg.inv, torch.linalg.inv, A)
    check_against_torch(tg.linalg.det, torch.linalg.det, A)
    check_against_torch(tg.linalg.solve, torch.linalg.solve, A, B)
    check_against_torch(lambda a: tg.linalg.slogdet(a).logabsdet,
                        lambda a: torch.linalg.slogdet(a).logabsdet, A)


def test_symmetric_inputs_built_from_a_matrix_match_pytorch():
    """cholesky and eigh read the lower triangle; built from B B^T the chain
    rule gives PyTorch's gradient for B."""
    n = 4
    b = RNG.standard_normal((2, n, n))

    def make(lib, x):
        return x @ x.swapaxes(-1, -2) + n * (tg.eye(n, dtype=tg.float64) if lib == "tg" else
                                             torch.eye(n, dtype=torch.float64))
    check_against_torch(lambda x: tg.linalg.cholesky(make("tg", x)),
                        lambda x: torch.linalg.cholesky(make("th", x)), b)
    check_against_torch(lambda x: tg.linalg.eigh(make("tg", x)).eigenvalues,
                        lambda x: torch.linalg.eigh(make("th", x)).eigenvalues, b)
    # eigenvectors up to sign: compare a sign-invariant function of them
    check_against_torch(lambda x: tg.linalg.eigh(make("tg", x)).eigenvectors ** 2,
                        lambda x: torch.linalg.eigh(make("th", x)).eigenvectors ** 2, b)


def test_eigh_reconstructs_and_sorts():
    S = spd(3)
    w, V = tg.linalg.eigh(tg.tensor(S))
    w, V = w.numpy(), V.numpy()
    assert np.all(np.diff(w, axis=-1) > 0)
    np.testing.assert_allclose(V @ (w[..., None] * np.swapaxes(V, -1, -2)), S, atol=1e-10)
    np.testing.assert_allclose(np.swapaxes(V, -1, -2) @ V, np.broadcast_to(np.eye(4), V.shape),
                               atol=1e-12)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(S), rtol=1e-12)


@pytest.mark.parametrize("fn", ["inv", "det", "logabsdet", "solve", "cholesky", "eigvalsh",
                                "matrix_power"])
def test_gradcheck_and_gradgradcheck(fn):
    A = tg.tensor(spd(n=3) if fn in ("cholesky", "eigvalsh") else well_conditioned(n=3),
                  requires_grad=True)
    B = tg.tensor(RNG.standard_normal((3, 2)), requires_grad=True)
    f = {"inv": lambda a: tg.linalg.inv(a), "det": lambda a: tg.linalg.det(a),
         "logabsdet": lambda a: tg.linalg.slogdet(a).logabsdet,
         "solve": lambda a: tg.linalg.solve(a, B), "cholesky": lambda a: tg.linalg.cholesky(a),
         "eigvalsh": lambda a: tg.linalg.eigvalsh(a),
         "matrix_power": lambda a: tg.linalg.matrix_power(a, -3)}[fn]
    assert gradcheck(f, [A])
    assert gradgradcheck(f, [A])


def test_solve_takes_a_vector_and_broadcasts():
    A = well_conditioned(2, n=3)
    b = RNG.standard_normal(3)
    x = tg.linalg.solve(tg.tensor(A), tg.tensor(b))
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(A, b[None, :, None])[..., 0], rtol=1e-12)
    single = tg.linalg.solve(tg.tensor(A[0]), tg.tensor(b))
    assert single.shape == (3,)
    np.testing.assert_allclose(single.numpy(), np.linalg.solve(A[0], b), rtol=1e-12)
    Bm = RNG.standard_normal((3, 5))
    np.testing.assert_allclose(tg.linalg.solve(tg.tensor(A), tg.tensor(Bm)).numpy(),
                               np.linalg.solve(A, Bm), rtol=1e-11)


def test_slogdet_where_det_overflows():
    A = np.eye(200) * 1e3
    s, l = tg.linalg.slogdet(tg.tensor(A))
    assert s.item() == 1.0 and abs(l.item() - 200 * np.log(1e3)) < 1e-9
    assert tg.linalg.det(tg.tensor(A)).item() == np.inf
    s2, _ = tg.linalg.slogdet(tg.tensor(-A[:3, :3]))
    assert s2.item() == -1.0


@pytest.mark.parametrize("n", [0, 1, 2, 5, -1, -2])
def test_matrix_power(n):
    A = well_conditioned(2, n=3)
    np.testing.assert_allclose(tg.linalg.matrix_power(tg.tensor(A), n).numpy(),
                               np.linalg.matrix_power(A, n), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ord,axis", [(None, None), (2, 0), (1, 1), (np.inf, 1), (-np.inf, 0),
                                      (3, 1), (0.5, 0), ("fro", (0, 1)), (1, (0, 1)),
                                      (-1, (0, 1)), (np.inf, (0, 1)), (-np.inf, (1, 0))])
def test_norm_matches_numpy_and_differentiates(ord, axis):
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(tg.linalg.norm(tg.tensor(x), ord=ord, axis=axis).numpy(),
                               np.linalg.norm(x, ord=ord, axis=axis), rtol=1e-12)
    t = tg.tensor(x, requires_grad=True)
    assert gradcheck(lambda a: tg.linalg.norm(a, ord=ord, axis=axis), [t])


def test_numpy_linalg_dispatches():
    A = tg.tensor(well_conditioned(n=3), requires_grad=True)
    y = np.linalg.inv(A)
    assert isinstance(y, tg.Tensor) and y.grad_fn.op == "linalg_inv"
    assert np.linalg.norm(A).grad_fn is not None
    with pytest.raises(TypeError, match=r"np\.linalg\.eig\b"):
        np.linalg.eig(A)  # (svd dispatches since issue 19's decompositions)


def test_errors_name_the_op_and_the_shapes():
    with pytest.raises(ValueError, match=r"linalg_inv: the matrix is singular"):
        tg.linalg.inv(tg.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match=r"linalg_inv: matrix 1 of the batch is singular"):
        tg.linalg.inv(tg.tensor(np.stack([np.eye(2), np.zeros((2, 2))])))
    with pytest.raises(ValueError, match=r"square matrix .* got shape \(2, 3\)"):
        tg.linalg.det(tg.zeros(2, 3))
    with pytest.raises(TypeError, match=r"linalg_det: expected a float32 or float64 matrix, got int64"):
        tg.linalg.det(tg.tensor([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match=r"not positive definite .* order 2"):
        tg.linalg.cholesky(tg.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"linalg_solve: A of shape \(3, 3\) needs B"):
        tg._C._op_apply("linalg_solve", [tg.eye(3), tg.ones(2, 1)], "")
    with pytest.raises(ValueError, match="singular"):  # the gradient of det at a singular matrix
        a = tg.tensor([[1.0, 2.0], [2.0, 4.0]], requires_grad=True)
        tg.linalg.det(a).backward()
    with pytest.raises(ValueError, match="only UPLO='L'"):
        tg.linalg.eigh(tg.eye(2), UPLO="U")
    with pytest.raises(TypeError, match="integer"):
        tg.linalg.matrix_power(tg.eye(2), 1.5)


def test_float32_inputs_give_float32():
    A = tg.tensor(well_conditioned(n=3).astype(np.float32))
    for f in (tg.linalg.inv, tg.linalg.det, lambda a: tg.linalg.eigh(a + a.swapaxes(0, 1)).eigenvalues):
        assert f(A).dtype == tg.float32
