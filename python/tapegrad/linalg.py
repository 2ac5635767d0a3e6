"""Linear algebra with gradients (NumPy's ``np.linalg`` names, PyTorch's
``torch.linalg`` semantics): every function is batched over leading dims,
recorded on the tape, and its VJP is written with ops, so second derivatives
work too.

>>> A = tg.tensor([[2.0, 0.0], [1.0, 5.0]], dtype=tg.float64, requires_grad=True)
>>> tg.linalg.det(A).item()
10.0
>>> tg.linalg.det(A).backward()          # d det / dA = det * A^-T
>>> A.grad.tolist()
[[5.0, -1.0], [0.0, 2.0]]

The kernels are plain textbook algorithms in ``csrc/ops/decomp.c`` (LU with
partial pivoting, Cholesky-Banachiewicz, cyclic Jacobi for ``eigh``,
Householder reflections for ``qr``, one-sided Jacobi for ``svd``), written
to be read; for matrices of a few hundred rows and more, NumPy's LAPACK is
much faster. A singular matrix (``inv``, ``solve``) or one that is not
positive definite (``cholesky``) raises ``ValueError``. The derivation of
every VJP is in docs/concepts/linear-algebra.md and in the op's block.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _C
from ._C import Tensor
from .autograd import Function, no_grad

__all__ = ["inv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh", "matrix_power",
           "norm", "vector_norm", "matrix_norm", "cond", "qr", "svd", "svdvals", "pinv", "lstsq", "SlogdetResult", "EighResult", "QRResult",
           "SVDResult", "LstsqResult"]


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else _C.tensor(np.asarray(x))


def _op(name, *xs, params=""):
    return _C._op_apply(name, [_t(x) for x in xs], params)


def _matrix(who, A) -> Tensor:
    """A as a float (..., m, n) tensor, or the error a learner should see."""
    A = _t(A)
    if A.ndim < 2:
        raise ValueError(f"linalg.{who}: expected a matrix or a batch of matrices, shape "
                         f"(..., m, n); got shape {tuple(A.shape)}")
    if A.dtype not in (_C.float32, _C.float64):
        raise TypeError(f"linalg.{who}: expected a float32 or float64 matrix, got {A.dtype} "
                        f"(convert with .astype(tg.float64))")
    return A


def inv(A) -> Tensor:
    """The inverse of a square matrix, or of each matrix of a batch (..., n, n).

    >>> tg.linalg.inv(tg.tensor([[2.0, 0.0], [0.0, 4.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    return _op("linalg_inv", A)


def solve(A, B) -> Tensor:
    """X with ``A @ X = B``: ``A`` (..., n, n); ``B`` (..., n, k), or a vector
    (..., n) when ``A`` is a single matrix or has B's batch dims (NumPy's
    rule); batch dims broadcast.

    >>> A = tg.tensor([[3.0, 1.0], [1.0, 2.0]])
    >>> tg.linalg.solve(A, tg.tensor([9.0, 8.0])).tolist()
    [2.0, 3.0]
    """
    A, B = _t(A), _t(B)
    if A.ndim < 2:
        raise ValueError(f"linalg.solve: A must be (..., n, n), got shape {A.shape}")
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if vector:
        B = B.reshape(*B.shape, 1)
    batch = np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2]))
    if tuple(A.shape[:-2]) != batch:
        A = A.broadcast_to(batch + tuple(A.shape[-2:]))
    if tuple(B.shape[:-2]) != batch:
        B = B.broadcast_to(batch + tuple(B.shape[-2:]))
    X = _op("linalg_solve", A, B)
    return X.reshape(*X.shape[:-1]) if vector else X


def det(A) -> Tensor:
    """The determinant (batched).

    >>> tg.linalg.det(tg.tensor([[1.0, 2.0], [3.0, 4.0]])).item()
    -2.0
    """
    return _op("linalg_det", A)


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


def slogdet(A) -> SlogdetResult:
    """(sign, log|det A|), as NumPy's and PyTorch's ``slogdet``: exact where
    the determinant itself would overflow or underflow. Only ``logabsdet``
    carries a gradient (the sign is piecewise constant).

    >>> s, l = tg.linalg.slogdet(tg.tensor([[-2.0, 0.0], [0.0, 3.0]], dtype=tg.float64))
    >>> s.item(), round(l.item(), 12) == round(float(np.log(6.0)), 12)
    (-1.0, True)
    """
    packed = _op("linalg_slogdet", A)
    return SlogdetResult(packed[..., 0].detach(), packed[..., 1])


def cholesky(A, upper: bool = False) -> Tensor:
    """The Cholesky factor L (lower triangular, ``A = L @ L.T``) of a symmetric
    positive-definite matrix (batched); only A's lower triangle is read.
    ``upper=True`` returns ``L.T`` as PyTorch does.

    >>> tg.linalg.cholesky(tg.tensor([[4.0, 2.0], [2.0, 5.0]])).tolist()
    [[2.0, 0.0], [1.0, 2.0]]
    """
    L = _op("linalg_cholesky", A)
    return L.swapaxes(-1, -2) if upper else L


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


def eigh(A, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors (the columns) of a symmetric
    matrix, batched, reading its lower triangle (``UPLO='L'``, NumPy's
    default). Each eigenvector's largest component is made positive, so the
    result is a function of A. Gradients are infinite where eigenvalues repeat
    (as in PyTorch).

    >>> w, V = tg.linalg.eigh(tg.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=tg.float64))
    >>> [round(v, 12) for v in w.tolist()]
    [1.0, 3.0]
    """
    if UPLO != "L":
        raise ValueError(f"linalg.eigh: only UPLO='L' (the lower triangle) is supported, got {UPLO!r}")
    A = _t(A)
    packed = _op("linalg_eigh", A)
    n = A.shape[-1]
    return EighResult(packed[..., :, n], packed[..., :, :n])


def eigvalsh(A, UPLO: str = "L") -> Tensor:
    """The eigenvalues of a symmetric matrix, ascending (see :func:`eigh`)."""
    return eigh(A, UPLO).eigenvalues


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


def qr(A, mode: str = "reduced"):
    """The QR decomposition ``A = Q @ R`` of a matrix (..., m, n), batched, by
    Householder reflections with LAPACK's sign choices, so Q and R are the
    ones NumPy and PyTorch give (R's diagonal may be negative).

    ``mode='reduced'`` (default): Q (..., m, k), R (..., k, n), k = min(m, n).
    ``mode='complete'``: Q (..., m, m), R (..., m, n).
    ``mode='r'``: R alone, as NumPy returns it (PyTorch returns an empty Q too).

    Differentiable in the reduced mode (and the others where they coincide
    with it: ``'complete'`` with m <= n, ``'r'``) for A of full rank;
    ``'complete'`` with m > n raises in backward, as in PyTorch, since Q's
    extra columns are not determined by A.

    >>> Q, R = tg.linalg.qr(tg.tensor([[3.0, 1.0], [4.0, 2.0]], dtype=tg.float64))
    >>> [round(v, 12) for v in R.tolist()[0]]
    [-5.0, -2.2]
    """
    A = _matrix("qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    m, n = A.shape[-2], A.shape[-1]
    complete = mode == "complete" and m > n
    packed = _op("linalg_qr", A, params="i0=1" if complete else "")
    qc = m if complete else min(m, n)
    R = packed[..., :qc, qc:]
    if mode == "r":
        return R
    return QRResult(packed[..., :, :qc], R)


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


def svd(A, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False):
    """The singular value decomposition ``A = U @ diag(S) @ Vh`` of a matrix
    (..., m, n), batched, by one-sided Jacobi rotations; ``S`` descending.
    With ``full_matrices=True`` (the default, as in NumPy and PyTorch) U is
    (..., m, m) and Vh (..., n, n); with False, (..., m, k) and (..., k, n),
    k = min(m, n).

    Singular vectors are defined up to sign (and up to a rotation where
    singular values repeat): tapegrad makes the largest-magnitude entry of
    each column of U positive, which is not LAPACK's choice, so compare
    ``U @ diag(S) @ Vh``, ``S`` or ``abs(U)`` with other libraries, not U
    itself. Gradients (the reduced factors; the extra columns of the full
    ones get none, as in PyTorch) divide by ``S[j]**2 - S[i]**2``: infinite
    where singular values repeat, and for a non-square A where one is zero,
    unless the loss does not depend on the ambiguous vectors (``svdvals``
    and ``U @ diag(S) @ Vh`` do not). A NaN or inf in A gives NaN results.
    NumPy's ``compute_uv=False`` returns S alone; ``hermitian=True`` is
    accepted and changes nothing (the general algorithm is used).

    >>> U, S, Vh = tg.linalg.svd(tg.tensor([[3.0, 0.0], [0.0, -4.0]], dtype=tg.float64))
    >>> S.tolist()
    [4.0, 3.0]
    """
    if not compute_uv:
        return _svd("svd", A, False).S
    return _svd("svd", A, full_matrices)


def _svd(who, A, full_matrices) -> SVDResult:
    A = _matrix(who, A)
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    full = bool(full_matrices) and m != n
    packed = _op("linalg_svd", A, params="i0=1" if full else "")
    c = max(m, n) if full else k
    cu, cv = (m, n) if full else (k, k)
    return SVDResult(packed[..., :m, :cu], packed[..., :k, c],
                     packed[..., m:, :cv].swapaxes(-1, -2))


def svdvals(A) -> Tensor:
    """The singular values of a matrix (..., m, n), descending (see :func:`svd`);
    their gradient ``U diag(dS) V^T`` is well defined wherever they are
    distinct.

    >>> tg.linalg.svdvals(tg.tensor([[0.0, 2.0], [1.0, 0.0]])).tolist()
    [2.0, 1.0]
    """
    return _svd("svdvals", A, False).S


def _cutoff_rtol(who, m, n, dtype, rcond, atol, rtol):
    """(atol, rtol) as floats, with PyTorch's defaults: with neither given,
    rtol = eps * max(m, n); with atol > 0 alone, rtol = 0. NumPy's rcond is
    rtol."""
    if rcond is not None:
        if rtol is not None:
            raise TypeError(f"linalg.{who}: pass rcond= (NumPy) or rtol= (PyTorch), not both")
        rtol = rcond
    for name, v in (("atol", atol), ("rtol", rtol)):
        if v is not None and not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"linalg.{who}: {name} must be a number, got {type(v).__name__}")
        if v is not None and not v >= 0:
            raise ValueError(f"linalg.{who}: {name} must be >= 0, got {v}")
    eps = float(np.finfo(np.float32 if dtype == _C.float32 else np.float64).eps)
    if rtol is None:
        rtol = eps * max(m, n) if not atol else 0.0
    return float(atol or 0.0), float(rtol)


def _pinv_value(A, atol, rtol):
    """V diag(1/s) U^T with singular values at or below max(atol, rtol s_max)
    taken as zero (computed without recording)."""
    with no_grad():
        U, S, Vh = _svd("pinv", A, False)
        k = S.shape[-1]
        if k == 0:
            return _C.zeros(*A.shape[:-2], A.shape[-1], A.shape[-2], dtype=A.dtype)
        cutoff = (S[..., :1] * rtol).maximum(_C.tensor(atol, dtype=A.dtype))
        drop = S <= cutoff          # (False for NaN, which then propagates)
        s_inv = _C.where(drop, _C.zeros_like(S), 1.0 / _C.where(drop, _C.ones_like(S), S))
        return (Vh.swapaxes(-1, -2) * s_inv[..., None, :]) @ U.swapaxes(-1, -2)


class _Pinv(Function):
    """pinv with the Golub-Pereyra VJP, written with ops; when a second
    derivative is being recorded the backward calls _Pinv again, so that P's
    own dependence on A is on the tape."""

    @staticmethod
    def forward(ctx, A, atol, rtol):
        ctx.save_for_backward(A)
        ctx.P, ctx.atol, ctx.rtol = _pinv_value(A, atol, rtol), atol, rtol
        return ctx.P

    @staticmethod
    def backward(ctx, gP):
        (A,) = ctx.saved_tensors
        P = _Pinv.apply(A, ctx.atol, ctx.rtol) if _C.is_grad_enabled() and A.requires_grad \
            else ctx.P
        Pt, gPt = P.swapaxes(-1, -2), gP.swapaxes(-1, -2)
        # dA = -P^T dP P^T + (I - A P) dP^T P P^T + P^T P dP^T (I - P A)
        ga = -(Pt @ gP @ Pt)
        ga = ga + (gPt @ (P @ Pt) - A @ (P @ (gPt @ (P @ Pt))))   # (I - A P) dP^T P P^T
        ga = ga + ((Pt @ P) @ gPt - ((Pt @ P) @ gPt @ P) @ A)    # P^T P dP^T (I - P A)
        return ga, None, None


_Pinv.__name__ = "linalg_pinv"   # its name on the tape, like the built-in linalg ops


def pinv(A, rcond=None, hermitian: bool = False, *, atol=None, rtol=None) -> Tensor:
    """The Moore-Penrose pseudo-inverse of a matrix (..., m, n), batched:
    ``V @ diag(1/S) @ U.T`` from :func:`svd`, with singular values at or
    below ``max(atol, rtol * S.max())`` taken as zero. The defaults are
    PyTorch's (``rtol = eps * max(m, n)`` unless ``atol`` alone is given);
    NumPy's ``rcond`` is accepted as ``rtol``. ``hermitian`` is accepted and
    ignored (the general SVD is used).

    The gradient is Golub and Pereyra's formula for a pseudo-inverse of
    constant rank, ``dA = -P^T dP P^T + (I - A P) dP^T P P^T + P^T P dP^T
    (I - P A)`` (P = pinv(A)), with no division by differences of singular
    values: defined at repeated ones too (an orthogonal A). Where A's rank
    would change under a small perturbation (a singular value at the cutoff)
    pinv is not continuous and no gradient is meaningful.

    >>> tg.linalg.pinv(tg.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=tg.float64)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]
    """
    A = _matrix("pinv", A)
    atol, rtol = _cutoff_rtol("pinv", A.shape[-2], A.shape[-1], A.dtype, rcond, atol, rtol)
    return _Pinv.apply(A, atol, rtol)


class LstsqResult(NamedTuple):
    solution: Tensor
    residuals: Tensor
    rank: Tensor
    singular_values: Tensor


def lstsq(A, B, rcond=None) -> LstsqResult:
    """The least-squares solution X of ``A @ X = B`` (the X of smallest norm
    among those that minimise ``|A @ X - B|``): ``pinv(A, rtol=rcond) @ B``,
    batched (batch dims broadcast), B (..., m, k) or a vector (m,) with a
    single A (NumPy's rule). ``rcond`` defaults to ``eps * max(m, n)``.

    The result is a named tuple like PyTorch's and NumPy's: ``solution``;
    ``residuals``, the squared residual norms per column of B (NumPy's
    rule: only when m > n and A has full rank, else empty); ``rank``, the
    number of singular values above the cutoff (int64); and
    ``singular_values``. ``solution`` and ``residuals`` carry gradients (those
    of :func:`pinv`).

    >>> A = tg.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], dtype=tg.float64)
    >>> x, res, rank, s = tg.linalg.lstsq(A, tg.tensor([1.0, 2.0, 4.0], dtype=tg.float64))
    >>> [round(v, 10) for v in x.tolist()], round(res.item(), 10), rank.item()
    ([0.8333333333, 1.5], 0.1666666667, 2)
    """
    A = _matrix("lstsq", A)
    B = _t(B)
    if B.dtype not in (_C.float32, _C.float64):
        raise TypeError(f"linalg.lstsq: expected a float32 or float64 B, got {B.dtype}")
    m, n = A.shape[-2], A.shape[-1]
    vector = B.ndim == 1
    if vector:
        if A.ndim != 2:
            raise ValueError(f"linalg.lstsq: a vector b of shape {tuple(B.shape)} needs a single "
                             f"matrix A, got shape {tuple(A.shape)}; give B the shape (..., m, 1)")
        B = B.reshape(-1, 1)
    if B.ndim < 2 or B.shape[-2] != m:
        raise ValueError(f"linalg.lstsq: A of shape {tuple(A.shape)} needs B of shape (..., {m}, k) "
                         f"or ({m},); got {tuple(B.shape)}")
    atol, rtol = _cutoff_rtol("lstsq", m, n, A.dtype, rcond, None, None)
    P = pinv(A, rtol=rtol)
    X = P @ B
    S = svdvals(A)
    with no_grad():
        cut = S[..., :1] * rtol if S.shape[-1] else S
        rank = (S > cut).astype(_C.int64).sum(axis=-1) if S.shape[-1] else \
            _C.zeros(*A.shape[:-2], dtype=_C.int64)
    full = bool((rank.numpy() == n).all()) and m > n
    if full:
        residuals = ((A @ X - B) ** 2).sum(axis=-2)
    else:
        residuals = _C.zeros(0, dtype=X.dtype)
    if vector:
        X = X.reshape(-1)
    return LstsqResult(X, residuals, rank, S)


def matrix_power(A, n: int) -> Tensor:
    """A raised to the integer power n (batched): repeated squaring with
    matmul; n = 0 gives the identity, n < 0 a power of the inverse.

    >>> tg.linalg.matrix_power(tg.tensor([[1.0, 1.0], [0.0, 1.0]]), 3).tolist()
    [[1.0, 3.0], [0.0, 1.0]]
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"linalg.matrix_power: n must be an integer, got {type(n).__name__}")
    A = _t(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"linalg.matrix_power: expected (..., n, n), got shape {A.shape}")
    if n == 0:
        eye = _C.eye(A.shape[-1], dtype=A.dtype)
        return eye.broadcast_to(A.shape) if A.ndim > 2 else eye
    if n < 0:
        A, n = inv(A), -n
    result, base = None, A
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


# ---------------------------------------------------------------------------
# norms: the `norm` op (csrc/ops/scan.c, tg.norm) is the engine of every
# vector norm and of 'fro', 1, -1, inf, -inf; the singular values give 'nuc',
# 2 and -2.  norm parses NumPy's ord/axis/keepdims (and PyTorch's dim/keepdim)
# and calls vector_norm or matrix_norm.
# ---------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _float_input(who, x) -> Tensor:
    x = _t(x)
    if x.dtype not in (_C.float32, _C.float64):
        raise TypeError(f"linalg.{who}: expected a float32 or float64 tensor, got {x.dtype} "
                        f"(convert with .astype(tg.float64), or pass dtype=)")
    return x


def _axes(who, axes, ndim) -> tuple:
    """axes (an int, a sequence of ints or None for all) normalised to
    non-negative ints, distinct and in range."""
    if axes is None:
        return tuple(range(ndim))
    seq = (axes,) if _is_number(axes) else tuple(axes)
    out = []
    for a in seq:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"linalg.{who}: axes must be integers, got {axes!r}")
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise IndexError(f"linalg.{who}: axis {a} is out of range for a {ndim}-D tensor")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"linalg.{who}: repeated axis in {tuple(seq)}")
    return tuple(out)


def _pick(new, old, who, new_name, old_name, default):
    if new is not None and old is not None:
        raise TypeError(f"linalg.{who}: pass {new_name}= or {old_name}=, not both")
    return new if new is not None else (old if old is not None else default)


def _norm_args(who, x, dim, axis, dim_default, keepdim, keepdims, dtype):
    """What vector_norm and matrix_norm parse alike: PyTorch's dim/keepdim or
    NumPy's axis/keepdims (one spelling at a time; dim at its default counts
    as not given), and x as a float tensor, converted to dtype first."""
    dim = _pick(None if dim == dim_default else dim, axis, who, "dim", "axis", dim_default)
    keepdim = bool(_pick(keepdims, keepdim if keepdim else None, who, "keepdims", "keepdim", False))
    x = _t(x)
    if dtype is not None:
        x = x.astype(dtype)
    return _float_input(who, x), dim, keepdim


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None, axis=None,
                keepdims=None) -> Tensor:
    """The vector ``ord``-norm of x over ``dim`` (all elements when None), as
    ``torch.linalg.vector_norm`` (``axis``/``keepdims`` are accepted as
    NumPy's spellings): ``ord`` any p > 0 (``(sum |x|^p)^(1/p)``), inf (``max |x|``),
    -inf (``min |x|``), 0 (the number of non-zeros, no gradient) or p < 0
    (``(sum |x|^p)^(1/p)``, 0 when an element is 0). ``dtype`` converts x
    first. The ``norm`` op computes it (scaled against overflow; the gradient
    at the zero vector is 0, as in PyTorch).

    >>> tg.linalg.vector_norm(tg.tensor([[3.0, 4.0], [6.0, 8.0]]), dim=1).tolist()
    [5.0, 10.0]
    """
    x, dim, keepdim = _norm_args("vector_norm", x, dim, axis, None, keepdim, keepdims, dtype)
    if isinstance(ord, str) or not _is_number(ord) or ord != ord:
        raise ValueError(f"linalg.vector_norm: ord must be a number (p, inf, -inf or 0), got "
                         f"{ord!r}; 'fro' and 'nuc' are matrix norms (tg.linalg.matrix_norm)")
    axes = _axes("vector_norm", dim, x.ndim)
    ord = float(ord)
    if ord < 0 and ord != -np.inf:     # the op takes p >= 0 and -inf: a composite of ops
        return (abs(x) ** ord).sum(axis=axes, keepdims=keepdim) ** (1.0 / ord)
    return x.norm(ord, axis=axes, keepdims=keepdim)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None, axis=None,
                keepdims=None) -> Tensor:
    """The matrix norm of A over the two axes ``dim`` (the last two by
    default), batched over the others, as ``torch.linalg.matrix_norm``:
    ``'fro'`` (sqrt of the sum of squares), ``'nuc'`` (the sum of the
    singular values), 2 / -2 (the largest / smallest singular value), 1 / -1
    (max / min column sum of ``|A|``), inf / -inf (max / min row sum of ``|A|``).
    The singular-value norms differentiate through :func:`svdvals`: their
    gradient is ``U diag(dS) V^T``, defined where the singular values that
    matter are distinct.

    >>> tg.linalg.matrix_norm(tg.tensor([[1.0, -2.0], [3.0, 4.0]]), ord=1).item()
    6.0
    """
    A, dim, keepdim = _norm_args("matrix_norm", A, dim, axis, (-2, -1), keepdim, keepdims, dtype)
    if A.ndim < 2:
        raise ValueError(f"linalg.matrix_norm: expected a matrix or a batch of them, got shape "
                         f"{tuple(A.shape)}")
    if _is_number(dim) or len(tuple(dim)) != 2:
        raise ValueError(f"linalg.matrix_norm: dim must be a pair of axes, got {dim!r}")
    r, c = _axes("matrix_norm", dim, A.ndim)
    if ord == "fro":
        return A.norm(2.0, axis=(r, c), keepdims=keepdim)
    if ord == "nuc" or (_is_number(ord) and ord in (2, -2)):
        rest = [d for d in range(A.ndim) if d not in (r, c)]
        s = svdvals(A.permute(*rest, r, c))
        if ord == "nuc":
            out = s.sum(axis=-1)
        elif s.shape[-1] == 0:
            raise ValueError(f"linalg.matrix_norm: ord={ord} of an empty matrix (shape "
                             f"{tuple(A.shape)}) is undefined")
        else:
            out = s[..., 0] if ord == 2 else s[..., -1]
        if keepdim:
            for d in sorted((r, c)):
                out = out.unsqueeze(d)
        return out
    if _is_number(ord) and ord in (1, -1, np.inf, -np.inf):
        sum_axis, pick_axis = (r, c) if ord in (1, -1) else (c, r)
        sums = A.norm(1.0, axis=(sum_axis,), keepdims=True)     # column (row) sums of |A|
        out = sums.max(axis=pick_axis, keepdims=True) if ord > 0 else \
            sums.min(axis=pick_axis, keepdims=True)
        return out if keepdim else out.squeeze(axis=(r, c))
    raise ValueError(f"linalg.matrix_norm: ord={ord!r} is not a matrix norm (expected 'fro', "
                     f"'nuc', 2, -2, 1, -1, inf or -inf)")


def norm(x, ord=None, axis=None, keepdims: bool = False, dim=None, keepdim=None) -> Tensor:
    """Vector and matrix norms with NumPy's ``np.linalg.norm`` rules
    (PyTorch's ``dim``/``keepdim`` are accepted too).

    ``axis`` an int (or x 1-D with ``axis=None``): the vector norm
    :func:`vector_norm` of order ``ord`` (None is 2). ``axis`` a pair (or x
    2-D with ``axis=None``): the matrix norm :func:`matrix_norm` (None is
    'fro'; also 'nuc', 2, -2, 1, -1, inf, -inf). ``ord=None`` with
    ``axis=None``: the 2-norm of all elements, whatever x's shape.

    >>> tg.linalg.norm(tg.tensor([3.0, 4.0])).item()
    5.0
    >>> round(tg.linalg.norm(tg.tensor([[3.0, 0.0], [0.0, 4.0]]), ord="nuc").item(), 6)
    7.0
    """
    axis = _pick(dim, axis, "norm", "dim", "axis", None)
    keepdims = bool(_pick(keepdim, keepdims if keepdims else None, "norm", "keepdim", "keepdims",
                          False))
    x = _float_input("norm", x)
    if axis is None:
        if ord is None:
            return vector_norm(x, 2, None, keepdims)
        if x.ndim not in (1, 2):
            raise ValueError(f"linalg.norm: ord={ord!r} needs axis= for a {x.ndim}-D tensor "
                             f"(shape {tuple(x.shape)}): an int for a vector norm, a pair for a "
                             f"matrix norm")
        axis = tuple(range(x.ndim))
    axes = (axis,) if _is_number(axis) else tuple(axis)
    if len(axes) == 1:
        if isinstance(ord, str):
            raise ValueError(f"linalg.norm: ord={ord!r} is a matrix norm; give axis=(i, j) "
                             f"(here the norm is over the single axis {axes[0]})")
        return vector_norm(x, 2 if ord is None else ord, axes, keepdims)
    if len(axes) == 2:
        return matrix_norm(x, "fro" if ord is None else ord, axes, keepdims)
    raise ValueError(f"linalg.norm: axis must be an int or a pair of ints, got {axis!r}")


def cond(A, p=None) -> Tensor:
    """The condition number of a matrix (batched), as ``np.linalg.cond`` and
    ``torch.linalg.cond``: for ``p`` None or 2 the ratio of the largest to
    the smallest singular value (inf for a singular matrix), for -2 its
    inverse; for 'fro', 'nuc', 1, -1, inf, -inf (square A only)
    ``matrix_norm(A, p) * matrix_norm(inv(A), p)``, where a singular A raises
    ValueError (NumPy and PyTorch return inf there).

    >>> tg.linalg.cond(tg.tensor([[2.0, 0.0], [0.0, 0.5]])).item()
    4.0
    """
    A = _matrix("cond", A)
    if p is None or (_is_number(p) and p in (2, -2)):
        s = svdvals(A)
        if s.shape[-1] == 0:
            raise ValueError(f"linalg.cond: the condition number of an empty matrix (shape "
                             f"{tuple(A.shape)}) is undefined")
        return s[..., 0] / s[..., -1] if p != -2 else s[..., -1] / s[..., 0]
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(f"linalg.cond: p={p!r} needs a square matrix, got shape {tuple(A.shape)} "
                         f"(p=None or 2 works for any shape)")
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


# ---------------------------------------------------------------------------
# Every error names the function the user called (the project's rule), for
# the whole module at once: an argument the conversion refuses (a NumPy
# object array, a string), or a failure inside an op, raises with
# "linalg.<name>: " in front unless its message already names it (as
# linalg.<name> or as the op linalg_<name>). Only the plain argument errors
# are renamed; the original stays chained as the cause.
# ---------------------------------------------------------------------------

def _named(fn):
    import functools

    who = f"linalg.{fn.__name__}"
    op = f"linalg_{fn.__name__}"

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError, IndexError, OverflowError) as e:
            msg = str(e)
            if type(e) not in (TypeError, ValueError, IndexError, OverflowError) or \
                    who in msg or op in msg:
                raise
            raise type(e)(f"{who}: {msg}") from e
    return call


for _name in __all__:
    if callable(globals()[_name]) and not isinstance(globals()[_name], type):
        globals()[_name] = _named(globals()[_name])
del _name
