"""The exact bits of the GEMM's products of a few rows or columns
(csrc/kernels/gemm.c, steps DOTS and ROWS), computed with NumPy in the
element type, one IEEE operation at a time, in the order gemm.c states.

- dots_reference: C[i, j] = the dot product of A's row i and B's column j
  in vmath.h's order: 64 (float32) or 32 (float64) interleaved partial sums,
  each product rounded before it is added, the last partial chunk zero-
  padded, then a pairwise tree (lanes w.. added to lanes 0.. for w = L/2,
  ..., 1).
- rows_reference: C = 0, then C += A[:, p] * B[p, :] for p = 0, 1, ...,
  each product rounded before it is added (the REORDERED loop's order).

alpha = 1 and beta = 0, as a matmul has them.
"""
import numpy as np


def dots_reference(a, b):
    dtype = a.dtype
    lanes = 64 if dtype == np.float32 else 32
    m, k = a.shape
    n = b.shape[1]
    chunks = -(-k // lanes)
    ap = np.zeros((m, chunks * lanes), dtype)
    bp = np.zeros((chunks * lanes, n), dtype)
    ap[:, :k] = a
    bp[:k] = b
    prod = ap[:, None, :] * bp.T[None, :, :]                # (m, n, K padded), rounded
    acc = np.zeros((m, n, lanes), dtype)
    for c in range(chunks):
        acc = acc + prod[:, :, c * lanes:(c + 1) * lanes]
    w = lanes // 2
    while w >= 1:
        acc[:, :, :w] = acc[:, :, :w] + acc[:, :, w:2 * w]
        w //= 2
    return acc[:, :, 0]


def rows_reference(a, b):
    c = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    for p in range(a.shape[1]):
        c = c + a[:, p:p + 1] * b[p:p + 1, :]
    return c
