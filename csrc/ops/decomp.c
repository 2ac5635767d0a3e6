/*
 * decomp.c -- tg.linalg's matrix functions: inverse, solve, determinant,
 * log-determinant, Cholesky, the symmetric eigendecomposition, QR and the
 * SVD, batched over leading dims, float32 and float64 (computed in double).
 *
 * The kernels are the textbook ones, written to be read (a course wants to
 * see them; LAPACK is faster for large n and is what NumPy calls):
 *   LU with partial pivoting   inv (Gauss-Jordan), solve, det, slogdet
 *   Cholesky-Banachiewicz      cholesky
 *   cyclic Jacobi rotations    eigh (symmetric), eigenvalues ascending
 *   Householder reflections    qr (LAPACK's signs: NumPy's and PyTorch's Q, R)
 *   one-sided Jacobi           svd (Hestenes), singular values descending
 *
 * Every VJP is written with ops (inv, solve, matmul, transpose, ...), so the
 * gradients are themselves on the tape and second order works:
 *
 *   Y = A^-1              dA = -Y^T dY Y^T
 *   X = solve(A, B)       dB = solve(A^T, dX),  dA = -dB X^T
 *   d = det A             dA = dd d A^-T
 *   l = log|det A|        dA = dl A^-T
 *   L = chol(A)           S = L^-T Phi(L^T dL) L^-1               (Murray 2016)
 *   A = V diag(w) V^T     S = V (diag(dw) + F o (V^T dV)) V^T,
 *                         F_ij = 1/(w_j - w_i) off the diagonal, 0 on it
 *                         and both read A's lower triangle only (NumPy's
 *                         default), so dA = tril(S + S^T, -1) + diag(S)
 *   A = Q R (reduced)     dA = (dQ + Q copyltu(R dR^T - dQ^T Q)) R^-T
 *   A = U diag(s) V^T     dA = U [(skew(U^T dU)/E) S + S (skew(V^T dV)/E)
 *                         + diag(ds)] V^T + the parts outside U's, V's span,
 *                         E_jk = s_k^2 - s_j^2 (derivations in the blocks)
 *
 * Four ops have several results, which the tape (one output per entry) holds
 * packed in one tensor: slogdet gives (..., 2) = [sign, log|det|] (the sign
 * is piecewise constant: its gradient is zero) and eigh gives (..., n, n+1)
 * = [V | w] (the eigenvectors as columns, then the eigenvalues), qr gives
 * [Q | R] and svd [[U, s], [V, 0]] (see their blocks).  tg.linalg
 * unpacks them with slices, which are ops, so the gradients of all parts
 * meet in the packed op's VJP.
 */
#include "ops_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* ---- shapes and data -------------------------------------------------- */

/* A must be (..., n, n), float.  Sets *n and *batch (the product of the
 * leading dims). */
static tg_status square_batch(const char *who, const tg_tensor *a, int64_t *n, int64_t *batch) {
    if (!a) return tg_error_set(TG_ERR_VALUE, "%s: the input is NULL", who);
    if (!tg_dtype_is_float(a->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 matrix, got %s", who,
                            tg_dtype_name(a->dtype));
    if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2])
        return tg_error_set(TG_ERR_VALUE,
                            "%s: expected a square matrix or a batch of them, shape (..., n, n); "
                            "got shape %s",
                            who, tg__shp(a));
    *n = a->shape[a->ndim - 1];
    /* (n == 0: the per-matrix loops of inv, solve, cholesky and eigh are
     * skipped, never run over a batch of up to 2**62 empty matrices) */
    int64_t b = 1;
    for (int i = 0; i < a->ndim - 2; i++) b *= a->shape[i];
    *batch = b;
    return TG_OK;
}

/* A contiguous float64 copy of x's values (new reference). */
static tg_tensor *as_f64(tg_tensor *x) {
    tg_tensor *c = tg__as_dtype(x, TG_FLOAT64);
    if (!c || tg_tensor_is_contiguous(c)) return c;
    tg_tensor *d = tg__copy(c);
    tg_tensor_release(c);
    return d;
}

/* out (float64, computed) as dtype dt: releases out. */
static tg_tensor *to_dtype(tg_tensor *out, tg_dtype dt) {
    if (!out || dt == TG_FLOAT64) return out;
    tg_tensor *r = tg__as_dtype(out, dt);
    tg_tensor_release(out);
    return r;
}

/* LU with partial pivoting of the n x n matrix a (row-major, in place):
 * a = P L U, piv[i] = the row swapped into row i.  Returns the number of row
 * swaps, or -1 when a pivot is exactly zero (singular). */
static int lu(double *a, int64_t n, int64_t *piv) {
    int swaps = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        double best = fabs(a[k * n + k]);
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > best) best = fabs(a[i * n + k]), p = i;
        piv[k] = p;
        if (!(best > 0)) return -1; /* zero (or NaN) pivot */
        if (p != k) {
            swaps++;
            for (int64_t j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
        }
        for (int64_t i = k + 1; i < n; i++) {
            double f = a[i * n + k] /= a[k * n + k];
            for (int64_t j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    return swaps;
}

/* Solve (P L U) x = b for the k right-hand sides of b (n x k, row-major), in place. */
static void lu_solve(const double *lu_, const int64_t *piv, int64_t n, double *b, int64_t k) {
    for (int64_t i = 0; i < n; i++)
        if (piv[i] != i)
            for (int64_t j = 0; j < k; j++) {
                double t = b[i * k + j];
                b[i * k + j] = b[piv[i] * k + j];
                b[piv[i] * k + j] = t;
            }
    for (int64_t i = 0; i < n; i++) /* L y = Pb, unit diagonal */
        for (int64_t m = 0; m < i; m++) {
            double f = lu_[i * n + m];
            for (int64_t j = 0; j < k; j++) b[i * k + j] -= f * b[m * k + j];
        }
    for (int64_t i = n - 1; i >= 0; i--) { /* U x = y */
        for (int64_t m = i + 1; m < n; m++) {
            double f = lu_[i * n + m];
            for (int64_t j = 0; j < k; j++) b[i * k + j] -= f * b[m * k + j];
        }
        for (int64_t j = 0; j < k; j++) b[i * k + j] /= lu_[i * n + i];
    }
}

/* The scratch of one LU factorisation: an n x n copy and its pivots.
 * lu_scratch_init returns false (error set) when allocation fails. */
typedef struct {
    double *a;
    int64_t *piv;
    int64_t n;
} lu_scratch;

static bool lu_scratch_init(lu_scratch *w, const char *who, int64_t n) {
    w->n = n;
    w->a = tg__alloc(sizeof(double) * (size_t)(n * n + 1), who);
    w->piv = w->a ? tg__alloc(sizeof(int64_t) * (size_t)(n + 1), who) : NULL;
    if (w->a && !w->piv) tg__free(w->a, sizeof(double) * (size_t)(n * n + 1));
    return w->piv != NULL;
}

static void lu_scratch_free(lu_scratch *w) {
    if (!w->piv) return;
    tg__free(w->a, sizeof(double) * (size_t)(w->n * w->n + 1));
    tg__free(w->piv, sizeof(int64_t) * (size_t)(w->n + 1));
}

static tg_status singular(const char *who, int64_t which, int64_t batch) {
    if (batch > 1)
        return tg_error_set(TG_ERR_VALUE, "%s: matrix %lld of the batch is singular (a zero pivot "
                            "in its LU factorisation)", who, (long long)which);
    return tg_error_set(TG_ERR_VALUE, "%s: the matrix is singular (a zero pivot in its LU "
                        "factorisation)", who);
}

/* The transpose of the last two dims (a view; new reference). */
static tg_tensor *mT(tg_tensor *x) { return x ? tg_transpose(x, -1, -2) : NULL; }

/* x with two trailing size-1 dims (a view of x; x released). */
static tg_tensor *unsq2(tg_tensor *x) {
    tg_tensor *a = x ? tg_unsqueeze(x, x->ndim) : NULL;
    tg_tensor_release(x);
    tg_tensor *b = a ? tg_unsqueeze(a, a->ndim) : NULL;
    tg_tensor_release(a);
    return b;
}

/* ===================================================================== */
/* inverse                                                                */
/* ===================================================================== */

tg_tensor *tg_linalg_inv(tg_tensor *a) {
    const char *who = "linalg_inv";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    tg_tensor *src = as_f64(a);
    tg_tensor *out = src ? tg_tensor_empty(a->ndim, a->shape, TG_FLOAT64) : NULL;
    lu_scratch w = {NULL, NULL, n};
    tg_status st = out && lu_scratch_init(&w, who, n) ? TG_OK : tg_error_status();
    double *work = w.a;
    int64_t *piv = w.piv;
    for (int64_t m = 0; !st && n > 0 && m < batch; m++) {
        memcpy(work, (double *)tg_tensor_data(src) + m * n * n, sizeof(double) * (size_t)(n * n));
        double *y = (double *)tg_tensor_data(out) + m * n * n;
        if (lu(work, n, piv) < 0) {
            st = singular(who, m, batch);
            break;
        }
        for (int64_t i = 0; i < n * n; i++) y[i] = 0.0;
        for (int64_t i = 0; i < n; i++) y[i * n + i] = 1.0;
        lu_solve(work, piv, n, y, n);
    }
    lu_scratch_free(&w);
    tg_tensor_release(src);
    if (st) {
        tg_tensor_release(out);
        return NULL;
    }
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_inv, 1, &a, out, &e) : NULL;
    if (e) tg__save_output(e, out);
    return out;
}

static tg_status linalg_inv_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *yt = mT(y);
    tg_tensor_release(y);
    CHECK(yt);
    tg_tensor *t = tg_matmul(yt, g);
    tg_tensor *u = t ? tg_matmul(t, yt) : NULL;
    tg_tensor_release(t);
    tg_tensor_release(yt);
    CHECK(u);
    gi[0] = tg_neg(u);
    tg_tensor_release(u);
    CHECK(gi[0]);
    return TG_OK;
}

static tg_tensor *apply_linalg_inv(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_inv takes 1 input");
    return tg_linalg_inv(in[0]);
}
TG_DEFINE_OP(linalg_inv, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "Y = A^-1", .forward_tex = "Y = A^{-1}",
             .vjp = "dA = -Y^T dY Y^T", .vjp_tex = "\\bar A = -Y^{\\top} \\bar Y Y^{\\top}",
             .doc = "Matrix inverse (batched), by LU with partial pivoting; a singular matrix is a ValueError. tg.linalg.inv.",
             .backward = linalg_inv_vjp, .apply = apply_linalg_inv,
             .examples = "d3x3;d2x4x4;dT3x3", .grad_out_tex = "\\bar Y", .grad_in_tex = "\\bar A");

/* ===================================================================== */
/* solve                                                                  */
/* ===================================================================== */

tg_tensor *tg_linalg_solve(tg_tensor *a, tg_tensor *b) {
    const char *who = "linalg_solve";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    if (!b || b->ndim != a->ndim || b->shape[b->ndim - 2] != n ||
        !tg__same_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape))
        return TG_FAIL(TG_ERR_VALUE,
                       "linalg_solve: A of shape %s needs B of shape (..., %lld, k) with the same "
                       "batch dims; got %s (tg.linalg.solve broadcasts and accepts a vector b)",
                       tg__shp(a), (long long)n, b ? tg__shp(b) : "NULL");
    if (!tg_dtype_is_float(b->dtype))
        return TG_FAIL(TG_ERR_TYPE, "linalg_solve: expected a float B, got %s", tg_dtype_name(b->dtype));
    int64_t k = b->shape[b->ndim - 1];
    tg_tensor *sa = as_f64(a), *sb = sa ? as_f64(b) : NULL;
    tg_tensor *out = sb ? tg__copy(sb) : NULL; /* solved in place */
    lu_scratch w = {NULL, NULL, n};
    tg_status st = out && lu_scratch_init(&w, who, n) ? TG_OK : tg_error_status();
    double *work = w.a;
    int64_t *piv = w.piv;
    for (int64_t m = 0; !st && n > 0 && m < batch; m++) {
        memcpy(work, (double *)tg_tensor_data(sa) + m * n * n, sizeof(double) * (size_t)(n * n));
        if (lu(work, n, piv) < 0) {
            st = singular(who, m, batch);
            break;
        }
        lu_solve(work, piv, n, (double *)tg_tensor_data(out) + m * n * k, k);
    }
    lu_scratch_free(&w);
    tg_tensor_release(sa);
    tg_tensor_release(sb);
    if (st) {
        tg_tensor_release(out);
        return NULL;
    }
    out = to_dtype(out, tg_dtype_promote(a->dtype, b->dtype));
    tg_tensor *in[2] = {a, b};
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_solve, 2, in, out, &e) : NULL;
    if (e) {
        tg__save_output(e, out);
        if (tg__save(e, a)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

static tg_status linalg_solve_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0);
    CHECK(a);
    tg_tensor *at = mT(a);
    CHECK(at);
    tg_tensor *gb = tg_linalg_solve(at, g); /* dB = A^-T dX */
    tg_tensor_release(at);
    CHECK(gb);
    if (NEED(0)) {
        tg_tensor *x = tg_entry_output(e);
        tg_tensor *xt = mT(x);
        tg_tensor_release(x);
        tg_tensor *t = xt ? tg_matmul(gb, xt) : NULL;
        tg_tensor_release(xt);
        gi[0] = t ? tg_neg(t) : NULL;
        tg_tensor_release(t);
        if (!gi[0]) {
            tg_tensor_release(gb);
            return tg_error_status();
        }
    }
    if (NEED(1))
        gi[1] = gb;
    else
        tg_tensor_release(gb);
    return TG_OK;
}

static tg_tensor *apply_linalg_solve(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_solve takes 2 inputs");
    return tg_linalg_solve(in[0], in[1]);
}
TG_DEFINE_OP(linalg_solve, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "X = A^-1 B (solves A X = B)", .forward_tex = "X = A^{-1} B",
             .vjp = "dB = solve(A^T, dX), dA = -dB X^T",
             .vjp_tex = "\\bar A = -A^{-\\top} \\bar X X^{\\top} \\quad \\bar B = A^{-\\top} \\bar X",
             .doc = "Solve A X = B for X (batched, LU with partial pivoting); tg.linalg.solve also takes a vector b and broadcasts.",
             .backward = linalg_solve_vjp, .apply = apply_linalg_solve,
             .examples = "d3x3,3x2;d2x4x4,2x4x1;dT3x3,T3x3", .grad_out_tex = "\\bar X",
             .grad_in_tex = "\\bar A;\\bar B");

/* ===================================================================== */
/* det and slogdet                                                        */
/* ===================================================================== */

/* For every matrix of the batch: sign and log|det| (sign 0, log -inf when
 * singular), written into sign_log (batch x 2) as doubles; with dets != NULL
 * also the determinant itself, the signed product of the pivots (exact
 * where the product is, e.g. 10 for diag(2, 5), where exp(log) is not). */
static tg_status logdets(const char *who, tg_tensor *a, int64_t n, int64_t batch, double *sign_log,
                         double *dets) {
    tg_tensor *src = as_f64(a);
    lu_scratch w = {NULL, NULL, n};
    tg_status st = src && lu_scratch_init(&w, who, n) ? TG_OK : tg_error_status();
    double *work = w.a;
    int64_t *piv = w.piv;
    for (int64_t m = 0; !st && m < batch; m++) {
        memcpy(work, (double *)tg_tensor_data(src) + m * n * n, sizeof(double) * (size_t)(n * n));
        int swaps = lu(work, n, piv);
        double sign = swaps < 0 ? 0.0 : (swaps % 2 ? -1.0 : 1.0), logabs = 0.0;
        double prod = swaps < 0 ? 0.0 : sign;
        if (swaps < 0) logabs = -INFINITY;
        for (int64_t i = 0; swaps >= 0 && i < n; i++) {
            double d = work[i * n + i];
            if (d < 0) sign = -sign;
            logabs += log(fabs(d));
            prod *= d;
        }
        sign_log[2 * m] = sign;
        sign_log[2 * m + 1] = logabs;
        if (dets) dets[m] = prod;
    }
    lu_scratch_free(&w);
    tg_tensor_release(src);
    return st;
}

/* dA = scale * A^-T with scale (...) broadcast over the matrix dims; the
 * error names the op when A is singular. */
static tg_tensor *scaled_inv_t(const char *who, tg_tensor *a, tg_tensor *scale) {
    tg_tensor *inv = tg_linalg_inv(a);
    if (!inv) {
        tg_error_set(TG_ERR_VALUE, "%s: the gradient at a singular matrix is not available here "
                     "(it needs the adjugate, not the inverse)", who);
        tg_tensor_release(scale);
        return NULL;
    }
    tg_tensor *it = mT(inv);
    tg_tensor_release(inv);
    return take2(tg_mul, it, unsq2(scale));
}

tg_tensor *tg_linalg_det(tg_tensor *a) {
    const char *who = "linalg_det";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    double *sl = tg__alloc(sizeof(double) * (size_t)(3 * batch + 2), who);
    if (!sl) return NULL;
    tg_tensor *out = NULL;
    if (!logdets(who, a, n, batch, sl, sl + 2 * batch + 2)) {
        out = tg_tensor_empty(a->ndim - 2, a->shape, TG_FLOAT64);
        for (int64_t m = 0; out && m < batch; m++) /* the product of the pivots (sl[2m+2..]) */
            ((double *)tg_tensor_data(out))[m] = sl[2 * batch + 2 + m];
    }
    tg__free(sl, sizeof(double) * (size_t)(3 * batch + 2));
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_det, 1, &a, out, &e) : NULL;
    if (e) {
        tg__save_output(e, out);
        if (tg__save(e, a)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

static tg_status linalg_det_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0), *d = a ? tg_entry_output(e) : NULL;
    CHECK(d);
    tg_tensor *s = tg_mul(g, d); /* dd * det */
    tg_tensor_release(d);
    CHECK(s);
    CHECK(gi[0] = scaled_inv_t("linalg_det", a, s));
    return TG_OK;
}

static tg_tensor *apply_linalg_det(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_det takes 1 input");
    return tg_linalg_det(in[0]);
}
TG_DEFINE_OP(linalg_det, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "d = det A", .forward_tex = "d = \\det A",
             .vjp = "dA = dd * d * A^-T", .vjp_tex = "\\bar A = \\bar d \\, d \\, A^{-\\top}",
             .doc = "Determinant (batched), from the LU factorisation. tg.linalg.det.",
             .backward = linalg_det_vjp, .apply = apply_linalg_det,
             .examples = "d3x3;d2x4x4;dT2x2", .grad_out_tex = "\\bar d", .grad_in_tex = "\\bar A");

tg_tensor *tg_linalg_slogdet(tg_tensor *a) {
    const char *who = "linalg_slogdet";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)(a->ndim - 2));
    shape[a->ndim - 2] = 2;
    tg_tensor *out = tg_tensor_empty(a->ndim - 1, shape, TG_FLOAT64);
    if (out && logdets(who, a, n, batch, (double *)tg_tensor_data(out), NULL)) {
        tg_tensor_release(out);
        out = NULL;
    }
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_slogdet, 1, &a, out, &e) : NULL;
    if (e && tg__save(e, a)) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

static tg_status linalg_slogdet_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0);
    CHECK(a);
    /* only the log|det| half carries a gradient */
    int64_t one = 1;
    tg_tensor *idx = tg_tensor_from_buffer(1, (int64_t[]){1}, TG_INT64, &one);
    tg_tensor *gl = idx ? tg_index_select(g, -1, idx) : NULL;
    tg_tensor_release(idx);
    CHECK(gl);
    tg_tensor *s = tg_squeeze(gl, (int64_t[]){-1}, 1);
    tg_tensor_release(gl);
    CHECK(s);
    CHECK(gi[0] = scaled_inv_t("linalg_slogdet", a, s));
    return TG_OK;
}

static tg_tensor *apply_linalg_slogdet(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_slogdet takes 1 input");
    return tg_linalg_slogdet(in[0]);
}
TG_DEFINE_OP(linalg_slogdet, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "[s, l] = [sign det A, log|det A|] (packed in a last dim of 2)",
             .forward_tex = "(s, l) = (\\operatorname{sign}\\det A,\\ \\log|\\det A|)",
             .vjp = "dA = dl * A^-T (the sign is piecewise constant)",
             .vjp_tex = "\\bar A = \\bar l \\, A^{-\\top}",
             .doc = "Sign and log of the absolute determinant, packed as (..., 2); tg.linalg.slogdet unpacks them.",
             .backward = linalg_slogdet_vjp, .apply = apply_linalg_slogdet,
             .examples = "d3x3;d2x4x4", .grad_out_tex = "\\bar l", .grad_in_tex = "\\bar A");

/* ===================================================================== */
/* Cholesky                                                               */
/* ===================================================================== */

/* An (n, n) constant of dtype dt: 'I' identity, 'L' ones on and below the
 * diagonal, 'P' ones below and 1/2 on the diagonal (Murray's Phi), 'S' ones
 * strictly below, 'O' ones off the diagonal. */
static tg_tensor *pattern(int64_t n, tg_dtype dt, char kind) {
    tg_tensor *m = tg_tensor_empty(2, (int64_t[]){n, n}, TG_FLOAT64);
    if (!m) return NULL;
    double *v = (double *)tg_tensor_data(m);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double x = 0.0;
            switch (kind) {
            case 'I': x = i == j; break;
            case 'L': x = j <= i; break;
            case 'P': x = j < i ? 1.0 : (i == j ? 0.5 : 0.0); break;
            case 'S': x = j < i; break;
            default: x = i != j; break;
            }
            v[i * n + j] = x;
        }
    return to_dtype(m, dt);
}

/* The ops read only A's lower triangle, as if A were the symmetric matrix
 * S = tril(A) + tril(A, -1)^T.  Given G, the gradient for S's entries taken
 * one by one, a_ij below the diagonal moved s_ij and s_ji: its gradient is
 * G_ij + G_ji; a diagonal entry's is G_ii; above the diagonal, 0.  (For an A
 * built symmetric, e.g. B B^T, the chain rule then gives the same gradient
 * as the symmetric convention sym(G).)  G is borrowed. */
static tg_tensor *lower_of_symmetric(tg_tensor *g) {
    int64_t n = g->shape[g->ndim - 1];
    tg_tensor *strict = pattern(n, g->dtype, 'S'), *eye = strict ? pattern(n, g->dtype, 'I') : NULL;
    tg_tensor *both = eye ? take2(tg_add, (tg_tensor_retain(g), g), mT(g)) : NULL;
    both = both ? take2(tg_mul, both, strict) : (tg_tensor_release(strict), NULL);
    tg_tensor *diag = both ? take2(tg_mul, (tg_tensor_retain(g), g), eye) : (tg_tensor_release(eye), NULL);
    return diag ? take2(tg_add, both, diag) : (tg_tensor_release(both), NULL);
}

tg_tensor *tg_linalg_cholesky(tg_tensor *a) {
    const char *who = "linalg_cholesky";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    tg_tensor *src = as_f64(a);
    tg_tensor *out = src ? tg_tensor_zeros(a->ndim, a->shape, TG_FLOAT64) : NULL;
    tg_status st = out ? TG_OK : tg_error_status();
    for (int64_t m = 0; !st && n > 0 && m < batch; m++) {
        const double *x = (const double *)tg_tensor_data(src) + m * n * n;
        double *l = (double *)tg_tensor_data(out) + m * n * n;
        for (int64_t i = 0; i < n && !st; i++)
            for (int64_t j = 0; j <= i; j++) { /* reads the lower triangle only */
                double s = x[i * n + j];
                for (int64_t k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
                if (i == j) {
                    if (!(s > 0)) {
                        st = tg_error_set(TG_ERR_VALUE,
                                          "%s: the matrix%s is not positive definite (its leading "
                                          "minor of order %lld is not positive)",
                                          who, batch > 1 ? " of the batch" : "", (long long)(i + 1));
                        break;
                    }
                    l[i * n + i] = sqrt(s);
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
    }
    tg_tensor_release(src);
    if (st) {
        tg_tensor_release(out);
        return NULL;
    }
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_cholesky, 1, &a, out, &e) : NULL;
    if (e) tg__save_output(e, out);
    return out;
}

static tg_status linalg_cholesky_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *l = tg_entry_output(e);
    CHECK(l);
    int64_t n = l->shape[l->ndim - 1];
    tg_tensor *lower = pattern(n, l->dtype, 'L'), *phi = lower ? pattern(n, l->dtype, 'P') : NULL;
    tg_tensor *li = phi ? tg_linalg_inv(l) : NULL;           /* L^-1 */
    tg_tensor *gl = li ? tg_mul(g, lower) : NULL;            /* only L's lower part exists */
    tg_tensor *p = gl ? take2(tg_matmul, mT(l), gl) : NULL;  /* L^T dL */
    tg_tensor *pp = p ? take2(tg_mul, p, (tg_tensor_retain(phi), phi)) : NULL; /* Phi(L^T dL) */
    tg_tensor *s = pp ? take2(tg_matmul, take2(tg_matmul, mT(li), pp), (tg_tensor_retain(li), li))
                      : NULL;                                /* S = L^-T Phi L^-1 */
    gi[0] = s ? lower_of_symmetric(s) : NULL;
    tg_tensor_release(s);
    tg_tensor_release(l);
    tg_tensor_release(lower);
    tg_tensor_release(phi);
    tg_tensor_release(li);
    CHECK(gi[0]);
    return TG_OK;
}

static tg_tensor *apply_linalg_cholesky(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_cholesky takes 1 input");
    return tg_linalg_cholesky(in[0]);
}
TG_DEFINE_OP(linalg_cholesky, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "L lower triangular with A = L L^T (reads A's lower triangle)",
             .forward_tex = "A = L L^{\\top}",
             .vjp = "S = L^-T Phi(L^T dL) L^-1 (Phi: lower triangle, diagonal halved); dA = lower(S + S^T) + diag(S)",
             .vjp_tex = "\\bar A = \\operatorname{tril}_{-1}(S + S^{\\top}) + \\operatorname{diag}(S),\\ S = L^{-\\top} \\Phi(L^{\\top} \\bar L) L^{-1}",
             .doc = "Cholesky factor of a symmetric positive-definite matrix (batched); not positive definite is a ValueError. tg.linalg.cholesky.",
             .backward = linalg_cholesky_vjp, .apply = apply_linalg_cholesky,
             .examples = "s3x3;s2x4x4", .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar A");

/* ===================================================================== */
/* eigh                                                                   */
/* ===================================================================== */

/* Cyclic Jacobi: a (n x n, symmetric, destroyed) -> eigenvalues w
 * (ascending) and eigenvectors as the columns of v, each with its largest
 * component positive (a fixed sign, so the result is a function). */
static void jacobi_eigh(double *a, int64_t n, double *w, double *v) {
    for (int64_t i = 0; i < n * n; i++) v[i] = 0.0;
    for (int64_t i = 0; i < n; i++) v[i * n + i] = 1.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, all = 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                all += a[i * n + j] * a[i * n + j];
                if (i != j) off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * all || off == 0.0) break;
        for (int64_t p = 0; p < n - 1; p++)
            for (int64_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int64_t k = 0; k < n; k++) { /* A <- A J (columns p, q) */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int64_t k = 0; k < n; k++) { /* A <- J^T A (rows p, q) */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int64_t k = 0; k < n; k++) { /* V <- V J */
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int64_t i = 0; i < n; i++) w[i] = a[i * n + i];
    for (int64_t i = 1; i < n; i++) /* insertion sort of (w, column) pairs */
        for (int64_t j = i; j > 0 && w[j - 1] > w[j]; j--) {
            double t = w[j];
            w[j] = w[j - 1];
            w[j - 1] = t;
            for (int64_t k = 0; k < n; k++) {
                t = v[k * n + j];
                v[k * n + j] = v[k * n + j - 1];
                v[k * n + j - 1] = t;
            }
        }
    for (int64_t j = 0; j < n; j++) {
        int64_t big = 0;
        for (int64_t k = 1; k < n; k++)
            if (fabs(v[k * n + j]) > fabs(v[big * n + j])) big = k;
        if (v[big * n + j] < 0)
            for (int64_t k = 0; k < n; k++) v[k * n + j] = -v[k * n + j];
    }
}

/* The end shared by eigh, qr and svd: `out`, their packed float64 result
 * computed from `src` into the scratch `work` (nb bytes; NULL when it could not be
 * allocated, then out is dropped), is converted to A's dtype and recorded
 * with itself saved (their VJPs read the factors) and params i[0..2]
 * (eigh has none: zeros, as a new entry's).
 * Releases src and frees work.  New reference, or NULL with the error. */
static tg_tensor *finish_packed(const tg_opdef *op, tg_tensor *a, tg_tensor *src, tg_tensor *out,
                                double *work, size_t nb, int64_t i0, int64_t i1, int64_t i2) {
    tg_tensor_release(src);
    if (!work) {
        tg_tensor_release(out);
        return NULL;
    }
    tg__free(work, nb);
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(op, 1, &a, out, &e) : NULL;
    if (e) {
        tg__save_output(e, out);
        e->params.i[0] = i0;
        e->params.i[1] = i1;
        e->params.i[2] = i2;
    }
    return out;
}

tg_tensor *tg_linalg_eigh(tg_tensor *a) {
    const char *who = "linalg_eigh";
    int64_t n, batch;
    if (square_batch(who, a, &n, &batch)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    shape[a->ndim - 1] = n + 1;
    tg_tensor *src = as_f64(a);
    tg_tensor *out = src ? tg_tensor_empty(a->ndim, shape, TG_FLOAT64) : NULL;
    size_t nb = sizeof(double) * (size_t)(2 * n * n + n + 1);
    double *work = out ? tg__alloc(nb, who) : NULL;
    for (int64_t m = 0; work && n > 0 && m < batch; m++) {
        const double *x = (const double *)tg_tensor_data(src) + m * n * n;
        double *s = work, *v = work + n * n, *w = work + 2 * n * n;
        for (int64_t i = 0; i < n; i++) /* symmetric from the lower triangle (NumPy's UPLO='L') */
            for (int64_t j = 0; j <= i; j++) s[i * n + j] = s[j * n + i] = x[i * n + j];
        jacobi_eigh(s, n, w, v);
        double *o = (double *)tg_tensor_data(out) + m * n * (n + 1);
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++) o[i * (n + 1) + j] = v[i * n + j];
            o[i * (n + 1) + n] = w[i];
        }
    }
    return finish_packed(&tg_opdef_linalg_eigh, a, src, out, work, nb, 0, 0, 0);
}

/* columns [c0, c1) of the last dim (a view). */
static tg_tensor *cols(tg_tensor *x, int64_t c0, int64_t c1) {
    int64_t starts[TG_MAX_DIMS] = {0}, stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) stops[i] = x->shape[i], steps[i] = 1;
    starts[x->ndim - 1] = c0;
    stops[x->ndim - 1] = c1;
    return tg_slice(x, starts, stops, steps, 0);
}

static tg_status linalg_eigh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *p = tg_entry_output(e);
    CHECK(p);
    int64_t n = p->shape[p->ndim - 1] - 1;
    tg_dtype dt = p->dtype;
    tg_tensor *v = cols(p, 0, n), *wc = cols(p, n, n + 1); /* V, w as (..., n, 1) */
    tg_tensor *gv = cols(g, 0, n), *gwc = cols(g, n, n + 1);
    tg_tensor_release(p);
    tg_tensor *eye = pattern(n, dt, 'I'), *offd = pattern(n, dt, 'O');
    tg_tensor *gA = NULL;
    if (v && wc && gv && gwc && eye && offd) {
        /* F_ij = 1/(w_j - w_i) off the diagonal: D = w^T - w (+ I, so that the
         * diagonal divides by 1), F = (1/D) * offdiag */
        tg_tensor *d = take2(tg_sub, mT(wc), (tg_tensor_retain(wc), wc));
        d = d ? take2(tg_add, d, (tg_tensor_retain(eye), eye)) : NULL;
        tg_tensor *f = d ? take2(tg_div, tg_tensor_scalar(1.0, dt), d) : NULL;
        f = f ? take2(tg_mul, f, (tg_tensor_retain(offd), offd)) : NULL;
        tg_tensor *inner = f ? take2(tg_mul, f, take2(tg_matmul, mT(v), (tg_tensor_retain(gv), gv)))
                             : NULL; /* F o (V^T dV) */
        tg_tensor *dg = inner ? take2(tg_mul, (tg_tensor_retain(gwc), gwc), (tg_tensor_retain(eye), eye))
                              : NULL; /* diag(dw): (..., n, 1) * I */
        tg_tensor *mid = dg ? take2(tg_add, inner, dg) : (tg_tensor_release(inner), NULL);
        tg_tensor *gs = mid ? take2(tg_matmul, take2(tg_matmul, (tg_tensor_retain(v), v), mid), mT(v))
                            : NULL; /* the gradient for the symmetric matrix S */
        gA = gs ? lower_of_symmetric(gs) : NULL; /* S was built from A's lower triangle */
        tg_tensor_release(gs);
    }
    tg_tensor_release(v);
    tg_tensor_release(wc);
    tg_tensor_release(gv);
    tg_tensor_release(gwc);
    tg_tensor_release(eye);
    tg_tensor_release(offd);
    CHECK(gA);
    gi[0] = gA;
    return TG_OK;
}

static tg_tensor *apply_linalg_eigh(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_eigh takes 1 input");
    return tg_linalg_eigh(in[0]);
}
TG_DEFINE_OP(linalg_eigh, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "[V | w] with A = V diag(w) V^T, w ascending (packed (..., n, n+1); reads A's lower triangle)",
             .forward_tex = "A = V \\operatorname{diag}(w) V^{\\top}",
             .vjp = "dS = V (diag(dw) + F o (V^T dV)) V^T, F_ij = 1/(w_j - w_i); dA = lower(dS + dS^T) + diag(dS)",
             .vjp_tex = "\\bar A = V \\left(\\operatorname{diag}(\\bar w) + F \\odot V^{\\top} \\bar V\\right) V^{\\top}",
             .doc = "Eigenvalues (ascending) and eigenvectors of a symmetric matrix (batched, cyclic Jacobi), packed as [V | w]; tg.linalg.eigh unpacks them. Repeated eigenvalues make the vectors' gradient infinite.",
             .backward = linalg_eigh_vjp, .apply = apply_linalg_eigh,
             .examples = "s3x3;s2x4x4", .grad_out_tex = NULL, .grad_in_tex = "\\bar A");

/* ===================================================================== */
/* shared by qr and svd                                                   */
/* ===================================================================== */

/* A must be (..., m, n), float.  Sets *m, *n and *batch. */
static tg_status matrix_batch(const char *who, const tg_tensor *a, int64_t *m, int64_t *n,
                              int64_t *batch) {
    if (!a) return tg_error_set(TG_ERR_VALUE, "%s: the input is NULL", who);
    if (!tg_dtype_is_float(a->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 matrix, got %s", who,
                            tg_dtype_name(a->dtype));
    if (a->ndim < 2)
        return tg_error_set(TG_ERR_VALUE,
                            "%s: expected a matrix or a batch of them, shape (..., m, n); got "
                            "shape %s", who, tg__shp(a));
    *m = a->shape[a->ndim - 2];
    *n = a->shape[a->ndim - 1];
    /* (an empty batch may hold matrices of any size: keep the products of
     * m and n, the sizes of the factors, far from overflowing) */
    if (*m > ((int64_t)1 << 28) || *n > ((int64_t)1 << 28))
        return tg_error_set(TG_ERR_VALUE, "%s: a matrix of shape %s is too large (at most 2**28 "
                            "rows and columns)", who, tg__shp(a));
    int64_t b = 1;
    for (int i = 0; i < a->ndim - 2; i++) b *= a->shape[i];
    *batch = b;
    return TG_OK;
}

/* x, retained (for take2 chains that consume their arguments). */
static tg_tensor *ref(tg_tensor *x) {
    if (x) tg_tensor_retain(x);
    return x;
}

/* Rows [r0, r1) and columns [c0, c1) of the last two dims (a view). */
static tg_tensor *blk(tg_tensor *x, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (!x) return NULL;
    int64_t starts[TG_MAX_DIMS] = {0}, stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) stops[i] = x->shape[i], steps[i] = 1;
    starts[x->ndim - 2] = r0;
    stops[x->ndim - 2] = r1;
    starts[x->ndim - 1] = c0;
    stops[x->ndim - 1] = c1;
    return tg_slice(x, starts, stops, steps, 0);
}

/* The output of a packed op with m x c at the top left of a zero (..., R, C)
 * tensor of float64: allocated zero, filled by the kernels. */
static tg_tensor *packed_zeros(const tg_tensor *a, int64_t rows, int64_t ncols) {
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    shape[a->ndim - 2] = rows;
    shape[a->ndim - 1] = ncols;
    return tg_tensor_zeros(a->ndim, shape, TG_FLOAT64);
}

/* ===================================================================== */
/* qr                                                                     */
/* ===================================================================== */

/* Householder QR of a (m x n, row-major, destroyed) with LAPACK's choices
 * (dgeqrf + dorgqr), so that Q and R are NumPy's and PyTorch's to rounding:
 * step j reflects column j's part from the diagonal down, x = a[j:, j], onto
 * beta e_1 with beta = -sign(x_0) |x| (the sign that avoids cancellation;
 * R's diagonal may be negative), H_j = I - tau v v^T, v = (1, x_1.. /
 * (x_0 - beta)), tau = (beta - x_0) / beta; a column already zero below the
 * diagonal is left alone (tau = 0).  Writes R (the first rr rows of the
 * triangle, rr x n) and Q = H_0 H_1 ... (m x qc, qc = k or m) into q.
 * tau: k doubles of scratch. */
static void householder_qr(double *a, int64_t m, int64_t n, double *tau, double *q, int64_t qc,
                           double *r, int64_t rr) {
    int64_t k = m < n ? m : n;
    for (int64_t j = 0; j < k; j++) {
        double alpha = a[j * n + j], xnorm = 0.0;
        for (int64_t i = j + 1; i < m; i++) xnorm = hypot(xnorm, a[i * n + j]);
        tau[j] = 0.0;
        if (xnorm == 0.0) continue; /* H = I (also for a NaN column: the sums below carry it) */
        double beta = -copysign(hypot(alpha, xnorm), alpha >= 0 ? 1.0 : -1.0);
        tau[j] = (beta - alpha) / beta;
        double scale = 1.0 / (alpha - beta);
        for (int64_t i = j + 1; i < m; i++) a[i * n + j] *= scale; /* v below the diagonal */
        a[j * n + j] = beta;
        for (int64_t c = j + 1; c < n; c++) { /* a[j:, c] -= tau v (v^T a[j:, c]) */
            double w = a[j * n + c];
            for (int64_t i = j + 1; i < m; i++) w += a[i * n + j] * a[i * n + c];
            w *= tau[j];
            a[j * n + c] -= w;
            for (int64_t i = j + 1; i < m; i++) a[i * n + c] -= w * a[i * n + j];
        }
    }
    for (int64_t i = 0; i < rr; i++)
        for (int64_t c = 0; c < n; c++) r[i * n + c] = c >= i && i < m ? a[i * n + c] : 0.0;
    for (int64_t i = 0; i < m; i++) /* Q = H_0 ... H_{k-1} I[:, :qc], applied right to left */
        for (int64_t c = 0; c < qc; c++) q[i * qc + c] = i == c;
    for (int64_t j = k - 1; j >= 0; j--) {
        if (tau[j] == 0.0) continue;
        for (int64_t c = 0; c < qc; c++) {
            double w = q[j * qc + c];
            for (int64_t i = j + 1; i < m; i++) w += a[i * n + j] * q[i * qc + c];
            w *= tau[j];
            q[j * qc + c] -= w;
            for (int64_t i = j + 1; i < m; i++) q[i * qc + c] -= w * a[i * n + j];
        }
    }
}

/* mode: 0 reduced (Q m x k, R k x n), 1 complete (Q m x m, R m x n).
 * Packed output (..., m, qc + n) = [Q | R], R's rows below its own padded
 * with zeros (reduced with m > n). */
tg_tensor *tg_linalg_qr(tg_tensor *a, int complete) {
    const char *who = "linalg_qr";
    int64_t m, n, batch;
    if (matrix_batch(who, a, &m, &n, &batch)) return NULL;
    if (complete != 0 && complete != 1)
        return TG_FAIL(TG_ERR_VALUE, "%s: mode must be 0 (reduced) or 1 (complete), got %d", who,
                       complete);
    int64_t k = m < n ? m : n, qc = complete ? m : k;
    tg_tensor *src = as_f64(a);
    tg_tensor *out = src ? packed_zeros(a, m, qc + n) : NULL;
    size_t nb = sizeof(double) * (size_t)(m * n + k + m * qc + qc * n + 1);
    double *work = out ? tg__alloc(nb, who) : NULL;
    /* (an empty output, e.g. 2**40 matrices 0 x 0 or m x 0 reduced: nothing to
     * write, so no loop over the batch) */
    for (int64_t b = 0; work && out->numel > 0 && b < batch; b++) {
        double *w = work, *tau = w + m * n, *q = tau + k, *r = q + m * qc;
        memcpy(w, (const double *)tg_tensor_data(src) + b * m * n, sizeof(double) * (size_t)(m * n));
        householder_qr(w, m, n, tau, q, qc, r, qc);
        double *o = (double *)tg_tensor_data(out) + b * m * (qc + n);
        for (int64_t i = 0; i < m; i++) {
            memcpy(o + i * (qc + n), q + i * qc, sizeof(double) * (size_t)qc);
            if (i < qc) memcpy(o + i * (qc + n) + qc, r + i * n, sizeof(double) * (size_t)n);
        }
    }
    return finish_packed(&tg_opdef_linalg_qr, a, src, out, work, nb, complete, n, 0);
}

/* Is every diagonal entry of the triangles r (..., n, n) larger than
 * n eps max|r_ij| of its matrix?  Otherwise A was rank-deficient (to
 * rounding) and R^-1 would give a gradient of noise times 1e16: an error
 * instead.  r borrowed. */
static bool full_rank_triangle(tg_tensor *r) {
    tg_tensor *c = as_f64(r);
    if (!c) return false;
    int64_t n = r->shape[r->ndim - 1], batch = n ? c->numel / (n * n) : 0;
    const double *d = (const double *)tg_tensor_data(c);
    bool ok = true;
    for (int64_t b = 0; ok && b < batch; b++) {
        double big = 0.0;
        for (int64_t i = 0; i < n * n; i++) big = fmax(big, fabs(d[b * n * n + i]));
        for (int64_t i = 0; ok && i < n; i++)
            ok = fabs(d[b * n * n + i * n + i]) > (double)n * DBL_EPSILON * big;
    }
    tg_tensor_release(c);
    if (!ok)
        tg_error_set(TG_ERR_VALUE, "linalg_qr: the gradient needs R invertible, i.e. A of full "
                     "rank min(m, n); this A is rank-deficient (a diagonal entry of R, %s, is zero to "
                     "rounding)", tg__shp(r));
    return ok;
}

/* The reduced QR's VJP for a square or tall R (m >= n, Q m x n, R n x n),
 * all borrowed:
 *   M  = R dR^T - dQ^T Q
 *   dA = (dQ + Q copyltu(M)) R^-T,   copyltu(M) = tril(M) + tril(M, -1)^T
 * Derivation: from dA = dQ R + Q dR, Q^T dQ is antisymmetric and dR upper
 * triangular, so Q^T dA R^-1 = Q^T dQ + dR R^-1 splits into its strictly
 * lower part (Q^T dQ's) and the rest; the pullback of that split is the
 * copyltu of M (Walter & Lehmann 2018; Liao et al. 2019).  R^-T is a
 * solve with R, so A must have full column rank. */
static tg_tensor *qr_vjp_tall(tg_tensor *q, tg_tensor *r, tg_tensor *gq, tg_tensor *gr) {
    int64_t n = r->shape[r->ndim - 1];
    tg_tensor *mm = take2(tg_sub, take2(tg_matmul, ref(r), mT(gr)), take2(tg_matmul, mT(gq), ref(q)));
    tg_tensor *low = mm ? pattern(n, mm->dtype, 'L') : NULL, *strict = low ? pattern(n, mm->dtype, 'S') : NULL;
    tg_tensor *sl = strict ? take2(tg_mul, ref(mm), strict) : NULL;
    tg_tensor *cl = sl ? take2(tg_add, take2(tg_mul, ref(mm), low), mT(sl)) /* copyltu(M) */
                       : (tg_tensor_release(low), NULL);
    tg_tensor_release(sl);
    tg_tensor_release(mm);
    tg_tensor *b = cl ? take2(tg_add, ref(gq), take2(tg_matmul, ref(q), cl)) : NULL;
    tg_tensor *bt = mT(b);
    tg_tensor_release(b);
    tg_tensor *x = bt && full_rank_triangle(r) ? tg_linalg_solve(r, bt) : NULL; /* R^-1 b^T */
    tg_tensor_release(bt);
    tg_tensor *ga = mT(x);
    tg_tensor_release(x);
    return ga;
}

static tg_status linalg_qr_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *p = tg_entry_output(e);
    CHECK(p);
    int64_t m = p->shape[p->ndim - 2], n = e->params.i[1], qc = p->shape[p->ndim - 1] - n;
    int64_t k = m < n ? m : n;
    if (qc != k) {
        tg_tensor_release(p);
        return tg_error_set(TG_ERR_VALUE, "linalg_qr: mode='complete' with more rows than columns "
                            "(here %lld > %lld) is not differentiable (the last m - n columns of Q "
                            "are not determined by A); use mode='reduced'",
                            (long long)m, (long long)n);
    }
    /* Q (m x k), R (k x n) and their gradients, read from the packed output */
    tg_tensor *q = blk(p, 0, m, 0, k), *r = blk(p, 0, k, k, k + n);
    tg_tensor *gq = blk(g, 0, m, 0, k), *gr = blk(g, 0, k, k, k + n);
    tg_tensor_release(p);
    tg_tensor *ga = NULL;
    if (q && r && gq && gr) {
        if (m >= n) {
            ga = qr_vjp_tall(q, r, gq, gr);
        } else {
            /* wide: A = [X | Y] with X m x m, R = [U | V]; X = Q U is a square
             * QR and Y = Q V, so dY = Q dV and X's VJP sees dQ + Y dV^T */
            tg_tensor *u = blk(r, 0, m, 0, m), *v = blk(r, 0, m, m, n);
            tg_tensor *gu = blk(gr, 0, m, 0, m), *gv = blk(gr, 0, m, m, n);
            tg_tensor *y = u && v && gu && gv ? tg_matmul(q, v) : NULL;
            tg_tensor *gq2 = y ? take2(tg_add, ref(gq), take2(tg_matmul, y, mT(gv))) : NULL;
            tg_tensor *gx = gq2 ? qr_vjp_tall(q, u, gq2, gu) : NULL;
            tg_tensor *gy = gx ? tg_matmul(q, gv) : NULL;
            if (gy) ga = tg_concat(2, (tg_tensor *[]){gx, gy}, -1);
            tg_tensor_release(u);
            tg_tensor_release(v);
            tg_tensor_release(gu);
            tg_tensor_release(gv);
            tg_tensor_release(gq2);
            tg_tensor_release(gx);
            tg_tensor_release(gy);
        }
    }
    tg_tensor_release(q);
    tg_tensor_release(r);
    tg_tensor_release(gq);
    tg_tensor_release(gr);
    CHECK(ga);
    gi[0] = ga;
    return TG_OK;
}

static tg_tensor *apply_linalg_qr(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_qr takes 1 input");
    if (p->i[0] != 0 && p->i[0] != 1)
        return TG_FAIL(TG_ERR_VALUE, "linalg_qr: i0 (the mode) must be 0 (reduced) or 1 "
                       "(complete), got %lld", (long long)p->i[0]);
    return tg_linalg_qr(in[0], (int)p->i[0]);
}
TG_DEFINE_OP(linalg_qr, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "[Q | R] with A = Q R, Q orthonormal columns, R upper triangular (packed (..., m, k + n), Householder, LAPACK's signs)",
             .forward_tex = "A = Q R",
             .vjp = "M = R dR^T - dQ^T Q; dA = (dQ + Q copyltu(M)) R^-T (m >= n; wide: split A = [X | Y])",
             .vjp_tex = "\\bar A = \\left(\\bar Q + Q \\operatorname{copyltu}(R \\bar R^{\\top} - \\bar Q^{\\top} Q)\\right) R^{-\\top}",
             .doc = "QR decomposition (batched, Householder reflections), packed as [Q | R]; i0=1 for mode='complete'. tg.linalg.qr unpacks it. Differentiable in reduced mode for A of full rank.",
             .backward = linalg_qr_vjp, .apply = apply_linalg_qr,
             .examples = "4x3;2x3x3;3x5;T4x2;2x4|i0=1", .grad_out_tex = NULL,
             .grad_in_tex = "\\bar A");

/* ===================================================================== */
/* svd                                                                    */
/* ===================================================================== */

/* One-sided Jacobi (Hestenes): rotate pairs of columns of w (p x q,
 * row-major, p >= q) until every pair is orthogonal, accumulating the
 * rotations in v (q x q), so that w_in = w_out v^T with w_out's columns
 * orthogonal: their norms are the singular values, the normalised columns
 * U, and v is V.  The rotation of columns j, l with a = |w_j|^2,
 * b = |w_l|^2, c = w_j . w_l zeroes their dot product: t = tan(theta) the
 * smaller root of t^2 + 2 zeta t - 1 = 0, zeta = (b - a) / 2c.  A pair
 * counts as orthogonal when |c| <= 1e-15 sqrt(a b).  At most 60 sweeps
 * (convergence is quadratic: ~6-10 suffice in double); then it stops. */
static void jacobi_columns(double *w, int64_t p, int64_t q, double *v) {
    for (int64_t i = 0; i < q * q; i++) v[i] = 0.0;
    for (int64_t i = 0; i < q; i++) v[i * q + i] = 1.0;
    for (int sweep = 0; sweep < 60; sweep++) {
        int rotated = 0;
        for (int64_t j = 0; j < q - 1; j++)
            for (int64_t l = j + 1; l < q; l++) {
                double a = 0.0, b = 0.0, c = 0.0;
                for (int64_t i = 0; i < p; i++) {
                    double x = w[i * q + j], y = w[i * q + l];
                    a += x * x;
                    b += y * y;
                    c += x * y;
                }
                if (!(fabs(c) > 1e-15 * sqrt(a) * sqrt(b))) continue;
                double zeta = (b - a) / (2.0 * c);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + hypot(1.0, zeta));
                double cs = 1.0 / sqrt(1.0 + t * t), sn = cs * t;
                for (int64_t i = 0; i < p; i++) {
                    double x = w[i * q + j], y = w[i * q + l];
                    w[i * q + j] = cs * x - sn * y;
                    w[i * q + l] = sn * x + cs * y;
                }
                for (int64_t i = 0; i < q; i++) {
                    double x = v[i * q + j], y = v[i * q + l];
                    v[i * q + j] = cs * x - sn * y;
                    v[i * q + l] = sn * x + cs * y;
                }
                rotated++;
            }
        if (!rotated) break;
    }
}

/* Columns [r, cols) of u (p x cols, row-major; columns < r orthonormal)
 * completed to an orthonormal set: each new column starts from the unit
 * vector e_i least covered by the columns so far (the i with the smallest
 * sum of squares of row i), orthogonalised twice (Gram-Schmidt). */
static void complete_columns(double *u, int64_t p, int64_t cols, int64_t r, double *x) {
    for (int64_t t = r; t < cols; t++) {
        int64_t best = 0;
        double least = INFINITY;
        for (int64_t i = 0; i < p; i++) {
            double cover = 0.0;
            for (int64_t c = 0; c < t; c++) cover += u[i * cols + c] * u[i * cols + c];
            if (cover < least) least = cover, best = i;
        }
        for (int64_t i = 0; i < p; i++) x[i] = i == best;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t c = 0; c < t; c++) {
                double d = 0.0;
                for (int64_t i = 0; i < p; i++) d += u[i * cols + c] * x[i];
                for (int64_t i = 0; i < p; i++) x[i] -= d * u[i * cols + c];
            }
        double nrm = 0.0;
        for (int64_t i = 0; i < p; i++) nrm = hypot(nrm, x[i]);
        for (int64_t i = 0; i < p; i++) u[i * cols + t] = x[i] / nrm;
    }
}

/* Flip column j of x (rows x cols) so that its largest-magnitude entry is
 * positive; returns -1 when it flipped, else 1. */
static double fix_sign(double *x, int64_t rows, int64_t cols, int64_t j) {
    int64_t big = 0;
    for (int64_t i = 1; i < rows; i++)
        if (fabs(x[i * cols + j]) > fabs(x[big * cols + j])) big = i;
    if (!(x[big * cols + j] < 0)) return 1.0;
    for (int64_t i = 0; i < rows; i++) x[i * cols + j] = -x[i * cols + j];
    return -1.0;
}

/* The SVD of one m x n matrix a: U (m x cu), s (k), V (n x cv), where
 * cu = m, cv = n when full, else both k.  Computed on W = A (m >= n) or
 * W = A^T (m < n), p x q with p >= q: Jacobi gives W = Uw S Vw^T, and for
 * the transposed case A = Vw S Uw^T.  Singular values sorted descending; a
 * column of Uw whose singular value is below p eps s_max (a zero singular
 * value), and the extra columns of the full case, are completed to an
 * orthonormal basis.  Each column j < k of U is signed so that its
 * largest-magnitude entry is positive (V's column with it): the result is a
 * function of A where the singular values are distinct and non-zero.
 * work: svd_work(m, n, full) doubles. */
static int64_t svd_work(int64_t m, int64_t n, int full) {
    int64_t p = m >= n ? m : n, q = m >= n ? n : m, cp = full ? p : q;
    return p * q + q * q + p * cp + p;
}

static void svd_one(const double *a, int64_t m, int64_t n, int full, double *u, double *s,
                    double *v, double *work) {
    int64_t k = m < n ? m : n, cu = full ? m : k, cv = full ? n : k;
    int tall = m >= n;
    int64_t p = tall ? m : n, q = tall ? n : m, cp = full ? p : q;
    bool finite = true;
    for (int64_t i = 0; i < m * n; i++) finite = finite && isfinite(a[i]);
    if (!finite) { /* no iteration at all: NaN everywhere (NumPy raises "did not converge") */
        for (int64_t i = 0; i < m * cu; i++) u[i] = NAN;
        for (int64_t i = 0; i < n * cv; i++) v[i] = NAN;
        for (int64_t i = 0; i < k; i++) s[i] = NAN;
        return;
    }
    double *w = work, *vw = w + p * q, *uw = vw + q * q, *x = uw + p * cp;
    /* Jacobi sums squares: work on A / max|a_ij| so that they neither
     * overflow (entries near 1e200) nor underflow (near 1e-200) */
    double scale = 0.0;
    for (int64_t i = 0; i < m * n; i++) scale = fmax(scale, fabs(a[i]));
    if (!(scale > 0)) scale = 1.0;
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < q; j++) w[i * q + j] = (tall ? a[i * n + j] : a[j * n + i]) / scale;
    jacobi_columns(w, p, q, vw);
    for (int64_t j = 0; j < q; j++) {
        double nrm = 0.0;
        for (int64_t i = 0; i < p; i++) nrm = hypot(nrm, w[i * q + j]);
        s[j] = nrm;
    }
    for (int64_t i = 1; i < q; i++) /* sort descending, moving the columns of w and vw along */
        for (int64_t j = i; j > 0 && s[j - 1] < s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
            for (int64_t r = 0; r < p; r++) t = w[r * q + j], w[r * q + j] = w[r * q + j - 1], w[r * q + j - 1] = t;
            for (int64_t r = 0; r < q; r++) t = vw[r * q + j], vw[r * q + j] = vw[r * q + j - 1], vw[r * q + j - 1] = t;
        }
    double tol = (double)p * DBL_EPSILON * (q ? s[0] : 0.0);
    int64_t rank = 0;
    while (rank < q && s[rank] > tol) rank++;
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < cp; j++) uw[i * cp + j] = j < rank ? w[i * q + j] / s[j] : 0.0;
    complete_columns(uw, p, cp, rank, x);
    for (int64_t j = 0; j < q; j++) s[j] *= scale;
    /* U and V of A */
    double *ua = tall ? uw : vw, *va = tall ? vw : uw;
    int64_t uac = tall ? cp : q, vac = tall ? q : cp;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < cu; j++) u[i * cu + j] = ua[i * uac + j];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cv; j++) v[i * cv + j] = va[i * vac + j];
    for (int64_t j = 0; j < cu; j++) {
        double f = fix_sign(u, m, cu, j);
        if (j < k && f < 0)
            for (int64_t i = 0; i < n; i++) v[i * cv + j] = -v[i * cv + j];
    }
    for (int64_t j = k; j < cv; j++) fix_sign(v, n, cv, j);
}

tg_tensor *tg_linalg_svd(tg_tensor *a, int full) {
    const char *who = "linalg_svd";
    int64_t m, n, batch;
    if (matrix_batch(who, a, &m, &n, &batch)) return NULL;
    if (full != 0 && full != 1)
        return TG_FAIL(TG_ERR_VALUE, "%s: full_matrices must be 0 or 1, got %d", who, full);
    int64_t k = m < n ? m : n, big = m > n ? m : n;
    int64_t cu = full ? m : k, cv = full ? n : k, c = full ? big : k;
    tg_tensor *src = as_f64(a);
    tg_tensor *out = src ? packed_zeros(a, m + n, c + 1) : NULL;
    size_t nb = sizeof(double) * (size_t)(m * cu + n * cv + k + svd_work(m, n, full) + 1);
    double *mem = out ? tg__alloc(nb, who) : NULL;
    /* (as in qr: an empty output, no loop over a batch of up to 2**61 empty
     * matrices) */
    for (int64_t b = 0; mem && out->numel > 0 && b < batch; b++) {
        double *u = mem, *v = u + m * cu, *s = v + n * cv, *work = s + k;
        svd_one((const double *)tg_tensor_data(src) + b * m * n, m, n, full, u, s, v, work);
        double *o = (double *)tg_tensor_data(out) + b * (m + n) * (c + 1);
        for (int64_t i = 0; i < m; i++) memcpy(o + i * (c + 1), u + i * cu, sizeof(double) * (size_t)cu);
        for (int64_t i = 0; i < n; i++) memcpy(o + (m + i) * (c + 1), v + i * cv, sizeof(double) * (size_t)cv);
        for (int64_t i = 0; i < k; i++) o[i * (c + 1) + c] = s[i];
    }
    return finish_packed(&tg_opdef_linalg_svd, a, src, out, mem, nb, full, m, n);
}

/* The VJP of A = U diag(s) V^T (the reduced factors; in the full case the
 * gradients of U's and V's extra columns are ignored, as in PyTorch), all
 * with ops.  With J = U^T dU, K = V^T dV, skew(X) = X - X^T and
 * E_jk = s_k^2 - s_j^2 (1 on the diagonal):
 *   dA = U [ (skew(J) / E) S + S (skew(K) / E) + diag(ds) ] V^T
 *        + (I - U U^T) dU S^-1 V^T        (only when m > k)
 *        + U S^-1 dV^T (I - V V^T)        (only when n > k)
 * Derivation: differentiate A = U S V^T; U^T dU and V^T dV are
 * antisymmetric, and the off-diagonal part of U^T dA V = (U^T dU) S + dS
 * - S (V^T dV) is solved for them entry by entry, which divides by
 * s_k^2 - s_j^2; the last two terms are the parts of dU, dV outside the
 * spans of U, V (Townsend 2016).  So the gradient is infinite where two
 * singular values are equal, and where one is zero for a non-square A,
 * unless the loss does not depend on the ambiguous vectors.  When dU (dV)
 * is a constant zero (a loss of S alone) its terms are left out, so that
 * svdvals' gradient U diag(dS) V^T is finite at repeated values too. */
/* Is t a constant zero: all its values 0 and not on the tape?  (The part
 * of the packed gradient for U or V when the loss reads only S: svdvals,
 * the nuclear and 2-norms, cond.)  Its terms are then left out rather than
 * computed as 0 / 0 where singular values repeat.  *err on failure. */
static bool zero_constant(tg_tensor *t, bool *err) {
    if (t->requires_grad) return false;
    tg_tensor *c = as_f64(t);
    if (!c) {
        *err = true;
        return false;
    }
    bool zero = true;
    const double *d = (const double *)tg_tensor_data(c);
    for (int64_t i = 0; zero && i < c->numel; i++) zero = d[i] == 0.0;
    tg_tensor_release(c);
    return zero;
}

static tg_status linalg_svd_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *p = tg_entry_output(e);
    CHECK(p);
    int64_t m = e->params.i[1], n = e->params.i[2], c = p->shape[p->ndim - 1] - 1;
    int64_t k = m < n ? m : n;
    tg_tensor *u = blk(p, 0, m, 0, k), *v = blk(p, m, m + n, 0, k), *s = blk(p, 0, k, c, c + 1);
    tg_tensor *gu = blk(g, 0, m, 0, k), *gv = blk(g, m, m + n, 0, k), *gs = blk(g, 0, k, c, c + 1);
    tg_tensor_release(p);
    tg_tensor *eye = s ? pattern(k, s->dtype, 'I') : NULL, *ga = NULL;
    bool err = false;
    if (u && v && s && gu && gv && gs && eye) {
        /* the loss may read only S (svdvals): then dU = dV = 0 and only
         * U diag(dS) V^T remains, with no division at all */
        bool use_u = !zero_constant(gu, &err), use_v = !err && !zero_constant(gv, &err);
        tg_tensor *inner = err ? NULL : tg_mul(gs, eye); /* diag(dS): (k, 1) * I */
        tg_tensor *ee = NULL, *jj = NULL, *kk = NULL, *inv_s = NULL;
        if (inner && (use_u || use_v)) {
            tg_tensor *s2 = tg_mul(s, s); /* (k, 1) */
            ee = s2 ? take2(tg_add, take2(tg_sub, mT(s2), ref(s2)), ref(eye)) : NULL; /* E */
            tg_tensor_release(s2);
            inv_s = ee ? take2(tg_div, tg_tensor_scalar(1.0, s->dtype), ref(s)) : NULL; /* (k, 1) */
            if (!inv_s) inner = (tg_tensor_release(inner), NULL);
        }
        if (inner && use_u) { /* + (skew(J) / E) S, J = U^T dU */
            jj = take2(tg_matmul, mT(u), ref(gu));
            tg_tensor *t1 = jj ? take2(tg_mul, take2(tg_div, take2(tg_sub, ref(jj), mT(jj)), ref(ee)), mT(s)) : NULL;
            inner = take2(tg_add, inner, t1);
        }
        if (inner && use_v) { /* + S (skew(K) / E), K = V^T dV */
            kk = take2(tg_matmul, mT(v), ref(gv));
            tg_tensor *t2 = kk ? take2(tg_mul, ref(s), take2(tg_div, take2(tg_sub, ref(kk), mT(kk)), ref(ee))) : NULL;
            inner = take2(tg_add, inner, t2);
        }
        ga = inner ? take2(tg_matmul, take2(tg_matmul, ref(u), inner), mT(v)) : NULL;
        if (ga && use_u && m > k) { /* + (dU - U J) S^-1 V^T */
            tg_tensor *x = take2(tg_sub, ref(gu), take2(tg_matmul, ref(u), ref(jj)));
            x = take2(tg_matmul, take2(tg_mul, x, mT(inv_s)), mT(v));
            ga = take2(tg_add, ga, x);
        }
        if (ga && use_v && n > k) { /* + U S^-1 (dV^T - K^T V^T) */
            tg_tensor *x = take2(tg_sub, mT(gv), take2(tg_matmul, mT(kk), mT(v)));
            x = take2(tg_matmul, ref(u), take2(tg_mul, ref(inv_s), x));
            ga = take2(tg_add, ga, x);
        }
        tg_tensor_release(inv_s);
        tg_tensor_release(jj);
        tg_tensor_release(kk);
        tg_tensor_release(ee);
    }
    tg_tensor_release(u);
    tg_tensor_release(v);
    tg_tensor_release(s);
    tg_tensor_release(gu);
    tg_tensor_release(gv);
    tg_tensor_release(gs);
    tg_tensor_release(eye);
    CHECK(ga);
    gi[0] = ga;
    return TG_OK;
}

static tg_tensor *apply_linalg_svd(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: linalg_svd takes 1 input");
    if (p->i[0] != 0 && p->i[0] != 1)
        return TG_FAIL(TG_ERR_VALUE, "linalg_svd: i0 (full_matrices) must be 0 or 1, got %lld",
                       (long long)p->i[0]);
    return tg_linalg_svd(in[0], (int)p->i[0]);
}
TG_DEFINE_OP(linalg_svd, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "[[U, s], [V, 0]] with A = U diag(s) V^T, s descending (packed (..., m + n, c + 1), one-sided Jacobi)",
             .forward_tex = "A = U \\operatorname{diag}(s) V^{\\top}",
             .vjp = "dA = U[(skew(U^T dU)/E) S + S (skew(V^T dV)/E) + diag(ds)]V^T + (I - UU^T) dU S^-1 V^T + U S^-1 dV^T (I - VV^T), E_jk = s_k^2 - s_j^2",
             .vjp_tex = "\\bar A = U\\left[\\tfrac{\\operatorname{skew}(U^{\\top}\\bar U)}{E} S + S \\tfrac{\\operatorname{skew}(V^{\\top}\\bar V)}{E} + \\operatorname{diag}(\\bar s)\\right]V^{\\top} + (I - UU^{\\top})\\bar U S^{-1} V^{\\top} + U S^{-1} \\bar V^{\\top}(I - VV^{\\top})",
             .doc = "Singular value decomposition (batched, one-sided Jacobi), packed as [[U, s], [V, 0]]; i0=1 for full_matrices. tg.linalg.svd unpacks it. Gradients are infinite where singular values repeat (or vanish, for non-square A).",
             .backward = linalg_svd_vjp, .apply = apply_linalg_svd,
             .examples = "4x3;2x3x3;3x5;T4x2", .grad_out_tex = NULL, .grad_in_tex = "\\bar A");
