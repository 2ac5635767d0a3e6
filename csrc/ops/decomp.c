/*
 * decomp.c -- tg.linalg's matrix functions: inverse, solve, determinant,
 * log-determinant, Cholesky and the symmetric eigendecomposition, batched
 * over leading dims, float32 and float64 (computed in double).
 *
 * The kernels are the textbook ones, written to be read (a course wants to
 * see them; LAPACK is faster for large n and is what NumPy calls):
 *   LU with partial pivoting   inv (Gauss-Jordan), solve, det, slogdet
 *   Cholesky-Banachiewicz      cholesky
 *   cyclic Jacobi rotations    eigh (symmetric), eigenvalues ascending
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
 *
 * Two ops have two results, which the tape (one output per entry) holds
 * packed in one tensor: slogdet gives (..., 2) = [sign, log|det|] (the sign
 * is piecewise constant: its gradient is zero) and eigh gives (..., n, n+1)
 * = [V | w] (the eigenvectors as columns, then the eigenvalues).  tg.linalg
 * unpacks them with slices, which are ops, so the gradients of both halves
 * meet in the packed op's VJP.
 */
#include "ops_internal.h"

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
    tg_tensor_release(src);
    if (!work) {
        tg_tensor_release(out);
        return NULL;
    }
    tg__free(work, nb);
    out = to_dtype(out, a->dtype);
    tg_entry *e = NULL;
    out = out ? tg__finish(&tg_opdef_linalg_eigh, 1, &a, out, &e) : NULL;
    if (e) tg__save_output(e, out);
    return out;
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
