/*
 * scan.c -- reductions, scans and sorting (issue 14): prod, cumsum, cumprod,
 * logcumsumexp, cummax/cummin, sort/argsort/topk, median, std and
 * var_mean/std_mean, and the vector norm.
 *
 * The kernels work on rows: the axis is moved last (a view, then one
 * contiguous copy), every row is scanned or sorted in double (int64 in
 * int64, wrapping like NumPy), and the result is put back in the input's
 * axis order.
 *
 * Gradients are written with ops, so that second order works:
 *   - cumsum's VJP is a reversed cumsum (the op has a `reverse` flag for
 *     it); logcumsumexp's is PyTorch's formula with a reversed
 *     logcumsumexp of the log of the gradient's positive and negative parts;
 *   - cumprod and prod divide by x when x has no zero; otherwise they use
 *     the products of the other elements directly (exclusive cumprods for
 *     prod; for cumprod an O(n) C loop around the first zero when the
 *     gradient is not to be differentiated again, else an n x n masked
 *     cumprod), which is right with one zero, two zeros or more, as in
 *     PyTorch;
 *   - the ops that pick elements (sort, topk, cummax, cummin, median) compute
 *     their int64 indices here and take the values with gather, whose VJP
 *     (scatter_add, itself differentiable) routes the gradient through the
 *     indices: they are composites of gather.
 */
#include "ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ===================================================================== */
/* helpers                                                                */
/* ===================================================================== */

/* axis for an op along one axis; a 0-d tensor accepts 0 and -1 (as PyTorch) */
static tg_status scan_axis(const char *who, const tg_tensor *x, int64_t axis, int64_t *ax) {
    if (x->ndim == 0) {
        if (axis != 0 && axis != -1)
            return tg_error_set(TG_ERR_INDEX,
                                "%s: axis %lld is out of range for a 0-d tensor (expected 0 or -1)",
                                who, (long long)axis);
        *ax = 0;
        return TG_OK;
    }
    return tg__norm_axis(who, axis, x->ndim, ax);
}

/* a contiguous copy of x with axis ax moved last (no autograd; the kernels
 * below write into it): tg__rows_last of ops_internal.h, shared with
 * argmax/argmin in reduce.c */
static tg_tensor *rows_last(tg_tensor *x, int64_t ax) { return tg__rows_last(x, ax, true); }

/* the inverse of rows_last: y is contiguous with the axis last; the result
 * is a contiguous tensor in the original axis order (no autograd) */
static tg_tensor *rows_back(tg_tensor *y, int64_t ax) {
    int nd = y->ndim;
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < nd; d++) {
        if (d == ax) {
            sh[d] = y->shape[nd - 1];
            st[d] = y->strides[nd - 1];
        } else {
            sh[d] = y->shape[k];
            st[d] = y->strides[k++];
        }
    }
    tg_tensor *v = tg__view(y, nd, sh, st, y->offset);
    tg_tensor *c = v ? tg__copy(v) : NULL;
    tg_tensor_release(v);
    return c;
}

/* permutation moving axis ax last (and its inverse), for ops */
static void perm_last(int nd, int64_t ax, int64_t *perm, int64_t *inv) {
    int k = 0;
    for (int d = 0; d < nd; d++)
        if (d != ax) perm[k++] = d;
    perm[k] = ax;
    for (int d = 0; d < nd; d++) inv[perm[d]] = d;
}

static void read_row(const tg_tensor *c, int64_t r, int64_t n, double *buf) {
    if (c->dtype == TG_FLOAT32) {
        const float *p = (const float *)tg_tensor_data(c) + r * n;
        for (int64_t i = 0; i < n; i++) buf[i] = p[i];
    } else {
        const double *p = (const double *)tg_tensor_data(c) + r * n;
        for (int64_t i = 0; i < n; i++) buf[i] = p[i];
    }
}
static void write_row(tg_tensor *c, int64_t r, int64_t n, const double *buf) {
    if (c->dtype == TG_FLOAT32) {
        float *p = (float *)tg_tensor_data(c) + r * n;
        for (int64_t i = 0; i < n; i++) p[i] = (float)buf[i];
    } else {
        double *p = (double *)tg_tensor_data(c) + r * n;
        for (int64_t i = 0; i < n; i++) p[i] = buf[i];
    }
}

static bool has_zero(const tg_tensor *x) {
    if (tg_tensor_is_contiguous(x) && x->dtype == TG_FLOAT32) {
        const float *p = tg_tensor_data(x);
        for (int64_t i = 0; i < x->numel; i++)
            if (p[i] == 0) return true;
        return false;
    }
    if (tg_tensor_is_contiguous(x) && x->dtype == TG_FLOAT64) {
        const double *p = tg_tensor_data(x);
        for (int64_t i = 0; i < x->numel; i++)
            if (p[i] == 0) return true;
        return false;
    }
    for (int64_t i = 0; i < x->numel; i++)
        if (tg_tensor_get_flat(x, i) == 0.0) return true;
    return false;
}

/* the dtypes the row kernels read: float32, float64 and (allow_int) int64;
 * anything else (a dtype added later) is a TypeError naming the op */
static tg_status check_dtype(const char *who, const tg_tensor *x, bool allow_int) {
    if (x->dtype == TG_FLOAT32 || x->dtype == TG_FLOAT64 || (allow_int && x->dtype == TG_INT64))
        return TG_OK;
    return tg_error_set(TG_ERR_TYPE, "%s: dtype %s is not supported (input of shape %s; expected "
                                     "float32, float64%s)",
                        who, tg_dtype_name(x->dtype), tg__shp(x), allow_int ? " or int64" : "");
}

static tg_tensor *scalar_like(double v, const tg_tensor *x) { return tg_tensor_scalar(v, x->dtype); }

/* t[..., start:stop] along axis ax (an op: differentiable) */
static tg_tensor *slice_axis(tg_tensor *t, int64_t ax, int64_t start, int64_t stop) {
    int64_t s0[TG_MAX_DIMS], s1[TG_MAX_DIMS], s2[TG_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        s0[d] = 0;
        s1[d] = t->shape[d];
        s2[d] = 1;
    }
    s0[ax] = start;
    s1[ax] = stop;
    return tg_slice(t, s0, s1, s2, 0);
}

/* pad t with `before` and `after` elements of value v along axis ax (an op) */
static tg_tensor *pad_axis(tg_tensor *t, int64_t ax, int64_t before, int64_t after, double v) {
    int64_t pads[2 * TG_MAX_DIMS] = {0};
    pads[2 * ax] = before;
    pads[2 * ax + 1] = after;
    return tg_pad(t, pads, v);
}

/* an (n, n) 0/1 tensor: kind 0 the identity, 1 [i >= k] (upper triangle
 * incl. the diagonal, rows k, columns i), 2 [i <= k] */
static tg_tensor *mask_nn(int64_t n, int kind, tg_dtype dt) {
    int64_t sh[2] = {n, n};
    tg_tensor *m = tg_tensor_zeros(2, sh, dt);
    if (!m) return NULL;
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < n; i++) {
            bool on = kind == 0 ? i == k : kind == 1 ? i >= k : i <= k;
            if (!on) continue;
            if (dt == TG_FLOAT32) ((float *)tg_tensor_data(m))[k * n + i] = 1;
            else ((double *)tg_tensor_data(m))[k * n + i] = 1;
        }
    return m;
}

/* g of a reduction (reduced shape, keepdims or not) broadcast back to the
 * input shape saved in e->params (shape, mask in i[3]) */
static tg_tensor *expand_back(const tg_params *p, tg_tensor *g) { return tg__expand_reduced(p, g, 3); }
static void store_red(tg_entry *e, const tg_tensor *x, uint32_t mask, bool keepdims) {
    tg__store_reduced(&e->params, x, mask, keepdims, 3);
}

/* x with the `mask` axes moved last and merged into one (an op chain, so
 * differentiable); perm/inv receive the permutation, psh the permuted shape */
static tg_tensor *merge_last(tg_tensor *x, uint32_t mask, int64_t *perm, int64_t *inv, int64_t *psh,
                             int64_t *red) {
    int k = 0;
    int64_t r = 1, msh[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        if (!(mask & (1u << d))) msh[k] = x->shape[d], perm[k++] = d;
    int nk = k;
    if (nk == TG_MAX_DIMS) { /* no axis to merge at 8 dims: the callers take mask 0 apart */
        tg_error_set(TG_ERR_VALUE, "merge_last: no axes to merge");
        return NULL;
    }
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) perm[k++] = d, r *= x->shape[d];
    for (int d = 0; d < x->ndim; d++) {
        inv[perm[d]] = d;
        psh[d] = x->shape[perm[d]];
    }
    msh[nk] = r;
    *red = r;
    tg_tensor *p = tg_permute(x, perm);
    tg_tensor *m = p ? tg_reshape(p, nk + 1, msh) : NULL;
    tg_tensor_release(p);
    return m;
}

/* ===================================================================== */
/* the scan kernel                                                        */
/* ===================================================================== */

typedef enum { S_SUM, S_PROD, S_LSE, S_MAX, S_MIN } skind;

static double lse2(double r, double v) {
    if (r == -INFINITY) return v;
    if (r == v) return v + 0.69314718055994530942; /* log 2; also +inf, +inf */
    double m = r > v ? r : v;     /* NaN in v: m is NaN */
    if (r != r) return r;
    return m + log1p(exp(-fabs(r - v)));
}

/* scan x along ax (no autograd); for S_MAX/S_MIN the int64 indices go to
 * *idx (values are not produced: the caller gathers them) */
static tg_tensor *scan_kernel(tg_tensor *x, int64_t ax, skind kind, bool rev, tg_tensor **idx) {
    tg_tensor *c = rows_last(x, ax);
    if (!c) return NULL;
    int64_t n = c->ndim ? c->shape[c->ndim - 1] : 1;
    int64_t rows = n ? c->numel / n : 0;
    bool pick = kind == S_MAX || kind == S_MIN;
    tg_tensor *o = tg_tensor_empty(c->ndim, c->shape, pick ? TG_INT64 : c->dtype);
    double *buf = NULL;
    if (o && c->dtype != TG_INT64 && n > 0) {
        buf = malloc((size_t)n * sizeof(double));
        if (!buf) {
            tg_error_set(TG_ERR_MEMORY, "scan: out of memory for a row of %lld", (long long)n);
            tg_tensor_release(o);
            o = NULL;
        }
    }
    if (!o) {
        tg_tensor_release(c);
        return NULL;
    }
    void *kt = tg__kernel_begin(c->numel); /* the loop touches no reference count */
    for (int64_t r = 0; r < rows; r++) {
        if (c->dtype == TG_INT64) {
            const int64_t *p = (const int64_t *)tg_tensor_data(c) + r * n;
            int64_t *q = (int64_t *)tg_tensor_data(o) + r * n;
            int64_t a = kind == S_PROD ? 1 : 0, best = 0, bi = 0;
            for (int64_t j = 0; j < n; j++) {
                int64_t i = rev ? n - 1 - j : j, v = p[i];
                if (kind == S_SUM) q[i] = a = tg__wrap_add(a, v);
                else if (kind == S_PROD) q[i] = a = tg__wrap_mul(a, v);
                else {
                    if (j == 0 || (kind == S_MAX ? v >= best : v <= best)) best = v, bi = i;
                    q[i] = bi;
                }
            }
            continue;
        }
        read_row(c, r, n, buf);
        if (pick) {
            int64_t *q = (int64_t *)tg_tensor_data(o) + r * n;
            double best = n ? buf[0] : 0;
            int64_t bi = 0;
            for (int64_t i = 0; i < n; i++) {
                double v = buf[i];
                /* PyTorch's rule: a NaN always takes over (so NaN
                 * propagates); ties move to the later index */
                if (v != v || (best == best && (kind == S_MAX ? v >= best : v <= best))) best = v, bi = i;
                q[i] = bi;
            }
            continue;
        }
        double a = kind == S_SUM ? 0.0 : kind == S_PROD ? 1.0 : -INFINITY;
        for (int64_t j = 0; j < n; j++) {
            int64_t i = rev ? n - 1 - j : j;
            a = kind == S_SUM ? a + buf[i] : kind == S_PROD ? a * buf[i] : lse2(a, buf[i]);
            buf[i] = a;
        }
        write_row(o, r, n, buf);
    }
    tg__kernel_end(kt);
    free(buf);
    tg_tensor_release(c);
    tg_tensor *out = rows_back(o, ax);
    tg_tensor_release(o);
    if (pick) {
        *idx = out;
        return out;
    }
    return out;
}

/* A one-axis op on a 0-d tensor runs on its (1,) reshape (as ops). */
typedef tg_tensor *(*axis_fn)(tg_tensor *, int64_t, bool);
static tg_tensor *on_0d(axis_fn f, tg_tensor *x, bool flag) {
    int64_t one = 1;
    tg_tensor *r = tg_reshape(x, 1, &one);
    tg_tensor *y = r ? f(r, 0, flag) : NULL;
    tg_tensor_release(r);
    tg_tensor *out = y ? tg_reshape(y, 0, NULL) : NULL;
    tg_tensor_release(y);
    return out;
}

/* ===================================================================== */
/* cumsum                                                                 */
/* ===================================================================== */

/* Record a scan of x along ax (reversed or not) whose kernel made out: the
 * entry keeps the axis and the direction, and, when the VJP reads them
 * (save), the output and the input. */
static tg_tensor *record_scan(const tg_opdef *op, tg_tensor *x, tg_tensor *out, int64_t ax,
                              bool reverse, bool save) {
    tg_entry *e;
    out = tg__finish(op, 1, &x, out, &e);
    if (e) {
        e->params.i[0] = ax;
        e->params.i[1] = reverse;
        if (save) {
            tg__save_output(e, out);
            if (tg__save(e, x)) {
                tg_tensor_release(out);
                return NULL;
            }
        }
    }
    return out;
}

tg_tensor *tg_cumsum(tg_tensor *x, int64_t axis, bool reverse) {
    int64_t ax;
    if (check_dtype("cumsum", x, true) || scan_axis("cumsum", x, axis, &ax)) return NULL;
    if (x->ndim == 0) return on_0d(tg_cumsum, x, reverse);
    return record_scan(&tg_opdef_cumsum, x, scan_kernel(x, ax, S_SUM, reverse, NULL), ax, reverse,
                       false);
}
static tg_status cumsum_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = tg_cumsum(g, e->params.i[0], !e->params.i[1]));
    return TG_OK;
}
static tg_tensor *apply_cumsum(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_cumsum(in[0], p->i[0], p->i[1] != 0);
}
TG_DEFINE_OP(cumsum, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y_i = sum_{j <= i} x_j (along axis; j >= i when reversed)",
             .forward_tex = "y_i = \\sum_{j \\le i} x_j",
             .vjp = "dx = reversed cumsum(dy)", .vjp_tex = "\\bar x_j = \\sum_{i \\ge j} \\bar y_i",
             .doc = "Cumulative sum along an axis (i0 = axis, i1 = reversed).",
             .backward = cumsum_vjp, .apply = apply_cumsum,
             .examples = "3x4|i0=1;2x3x4|i0=-1;T3x4|i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* cumprod                                                                */
/* ===================================================================== */

tg_tensor *tg_cumprod(tg_tensor *x, int64_t axis, bool reverse) {
    int64_t ax;
    if (check_dtype("cumprod", x, true) || scan_axis("cumprod", x, axis, &ax)) return NULL;
    if (x->ndim == 0) return on_0d(tg_cumprod, x, reverse);
    return record_scan(&tg_opdef_cumprod, x, scan_kernel(x, ax, S_PROD, reverse, NULL), ax, reverse,
                       true);
}
/* The gradient of cumprod when x has zeros and no graph is wanted (no
 * autograd): per row, with z the first zero in scan order,
 *   dx_k = (sum_{i >= k} dy_i y_i) / x_k   for k before z (x_k != 0),
 *   dx_z = sum_{i >= z} dy_i prod_{j <= i, j != z} x_j,
 *   dx_k = 0                               after z (every product has x_z).
 * O(n) per row instead of the n x n products used when the gradient must be
 * differentiable again. */
static tg_tensor *cumprod_grad_rows(tg_tensor *x, tg_tensor *g, int64_t ax, bool rev) {
    tg_tensor *gb = tg_broadcast_to(g, x->ndim, x->shape);
    tg_tensor *gx = gb ? tg__as_dtype(gb, x->dtype) : NULL;
    tg_tensor_release(gb);
    tg_tensor *cx = gx ? rows_last(x, ax) : NULL;
    tg_tensor *cg = cx ? rows_last(gx, ax) : NULL;
    tg_tensor_release(gx);
    int64_t n = x->shape[ax];
    tg_tensor *o = cg ? tg_tensor_empty(cx->ndim, cx->shape, x->dtype) : NULL;
    double *buf = o && n ? malloc((size_t)n * 4 * sizeof(double)) : NULL;
    if (o && n && !buf) {
        tg_error_set(TG_ERR_MEMORY, "cumprod: out of memory for a row of %lld", (long long)n);
        tg_tensor_release(o);
        o = NULL;
    }
    int64_t rows = o && n ? cx->numel / n : 0;
    for (int64_t r = 0; r < rows; r++) {
        double *xv = buf, *gv = buf + n, *y = buf + 2 * n, *d = buf + 3 * n;
        read_row(cx, r, n, xv);
        read_row(cg, r, n, gv);
        int64_t z = n; /* position (in scan order) of the first zero */
        double a = 1;
        for (int64_t j = 0; j < n; j++) {
            int64_t i = rev ? n - 1 - j : j;
            if (z == n && xv[i] == 0) z = j;
            y[i] = a *= xv[i];
        }
        double s = 0;
        for (int64_t j = n - 1; j >= 0; j--) { /* suffix sums of dy * y in scan order */
            int64_t i = rev ? n - 1 - j : j;
            s += gv[i] * y[i];
            d[i] = j < z ? s / xv[i] : 0;
        }
        if (z < n) {
            int64_t iz = rev ? n - 1 - z : z;
            double q = z ? y[rev ? iz + 1 : iz - 1] : 1.0, acc = 0;
            for (int64_t j = z; j < n; j++) {
                int64_t i = rev ? n - 1 - j : j;
                if (j > z) q *= xv[i];
                acc += gv[i] * q;
            }
            d[iz] = acc;
        }
        write_row(o, r, n, d);
    }
    free(buf);
    tg_tensor_release(cx);
    tg_tensor_release(cg);
    if (!o) return NULL;
    tg_tensor *out = rows_back(o, ax);
    tg_tensor_release(o);
    return out;
}

/* dx_k = sum_{i >= k} dy_i prod_{j <= i, j != k} x_j (i <= k, j >= i when
 * reversed).  Without zeros: reversed cumsum(dy * y) / x.  With zeros: the
 * products of the others directly, through an n x n cumprod of x with a
 * one in place of x_k on row k. */
static tg_status cumprod_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    int64_t ax = e->params.i[0];
    bool rev = e->params.i[1] != 0;
    if (!has_zero(x)) {
        tg_tensor *y = tg_entry_output(e);
        CHECK(y);
        tg_tensor *s = tg_mul(y, g);
        tg_tensor_release(y);
        tg_tensor *c = s ? tg_cumsum(s, ax, !rev) : NULL;
        tg_tensor_release(s);
        CHECK(gi[0] = c ? tg_div(c, x) : NULL);
        tg_tensor_release(c);
        return TG_OK;
    }
    if (!tg__grad_on()) { /* first order only: O(n) per row, in C */
        CHECK(gi[0] = cumprod_grad_rows(x, g, ax, rev));
        return TG_OK;
    }
    int nd = x->ndim;
    int64_t n = x->shape[ax], perm[TG_MAX_DIMS], inv[TG_MAX_DIMS], sh[TG_MAX_DIMS + 1];
    if (nd + 1 > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE,
                            "cumprod: the gradient of an input with zeros needs one more dimension "
                            "than the %d allowed (shape %s)", TG_MAX_DIMS, tg__shp(x));
    perm_last(nd, ax, perm, inv);
    tg_tensor *xl = tg_permute(x, perm);
    tg_tensor *gl = xl ? tg_permute(g, perm) : NULL;
    tg_tensor *x1 = gl ? tg_unsqueeze(xl, -2) : NULL; /* (..., 1, n) */
    for (int d = 0; d < nd - 1; d++) sh[d] = xl ? xl->shape[d] : 0;
    sh[nd - 1] = n;
    sh[nd] = n;
    tg_tensor *xb = x1 ? tg_broadcast_to(x1, nd + 1, sh) : NULL; /* (..., k, j) = x_j */
    tg_tensor *eye = xb ? mask_nn(n, 0, x->dtype) : NULL;
    tg_tensor *one = eye ? scalar_like(1.0, x) : NULL;
    tg_tensor *z = one ? tg_where(eye, one, xb) : NULL; /* x_j, 1 where j == k */
    tg_tensor *c = z ? tg_cumprod(z, -1, rev) : NULL;  /* prod_{j <= i, j != k} x_j */
    tg_tensor *tri = c ? mask_nn(n, rev ? 2 : 1, x->dtype) : NULL;
    tg_tensor *w = tri ? tg_mul(c, tri) : NULL;
    tg_tensor *g1 = w ? tg_unsqueeze(gl, -2) : NULL;
    tg_tensor *wg = g1 ? tg_mul(w, g1) : NULL;
    int64_t last = -1;
    tg_tensor *dl = wg ? tg_sum(wg, &last, 1, false) : NULL;
    gi[0] = dl ? tg_permute(dl, inv) : NULL;
    tg_tensor *tmp[] = {xl, gl, x1, xb, eye, one, z, c, tri, w, g1, wg, dl};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_cumprod(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_cumprod(in[0], p->i[0], p->i[1] != 0);
}
TG_DEFINE_OP(cumprod, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y_i = prod_{j <= i} x_j (along axis; j >= i when reversed)",
             .forward_tex = "y_i = \\prod_{j \\le i} x_j",
             .vjp = "dx_k = sum_{i >= k} dy_i prod_{j <= i, j != k} x_j (= reversed cumsum(dy * y) / x without zeros)",
             .vjp_tex = "\\bar x_k = \\sum_{i \\ge k} \\bar y_i \\prod_{j \\le i,\\, j \\ne k} x_j",
             .doc = "Cumulative product along an axis (i0 = axis, i1 = reversed); the gradient is right with zeros.",
             .backward = cumprod_vjp, .apply = apply_cumprod,
             .examples = "3x4|i0=1;T3x4|i0=0;2x3x4|i0=-1;b3x5|i0=1;bT3x4|i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* prod                                                                   */
/* ===================================================================== */

tg_tensor *tg_prod(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    uint32_t mask;
    if (check_dtype("prod", x, true) || tg__axes_mask("prod", axes, naxes, x->ndim, &mask)) return NULL;
    int64_t perm[TG_MAX_DIMS], inv[TG_MAX_DIMS], psh[TG_MAX_DIMS], red;
    int64_t osh[TG_MAX_DIMS];
    int ond = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            if (keepdims) osh[ond++] = 1;
        } else {
            osh[ond++] = x->shape[d];
        }
    }
    /* the product of each row of the merged reduced axes (no autograd) */
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *m = x; /* over no axes, each element is its own row (merging would add a dim) */
    red = 1;
    if (mask) m = merge_last(x, mask, perm, inv, psh, &red);
    else tg_tensor_retain(x);
    tg_tensor *c = m ? tg__copy(m) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(m);
    tg_tensor *out = c ? tg_tensor_empty(ond, osh, x->dtype) : NULL;
    if (out) {
        int64_t rows = out->numel;
        for (int64_t r = 0; r < rows; r++) {
            if (x->dtype == TG_INT64) {
                const int64_t *p = (const int64_t *)tg_tensor_data(c) + r * red;
                int64_t a = 1;
                for (int64_t i = 0; i < red; i++) a = tg__wrap_mul(a, p[i]);
                ((int64_t *)tg_tensor_data(out))[r] = a;
            } else if (x->dtype == TG_FLOAT32) { /* accumulated in double */
                const float *p = (const float *)tg_tensor_data(c) + r * red;
                double a = 1;
                for (int64_t i = 0; i < red; i++) a *= p[i];
                ((float *)tg_tensor_data(out))[r] = (float)a;
            } else {
                const double *p = (const double *)tg_tensor_data(c) + r * red;
                double a = 1;
                for (int64_t i = 0; i < red; i++) a *= p[i];
                ((double *)tg_tensor_data(out))[r] = a;
            }
        }
    }
    tg_tensor_release(c);
    tg_entry *e;
    out = tg__finish(&tg_opdef_prod, 1, &x, out, &e);
    if (e) {
        store_red(e, x, mask, keepdims);
        tg__save_output(e, out);
        if (tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
/* dx = dy * prod of the others: y / x without zeros; with zeros, the
 * exclusive cumprods from the left and from the right of the merged
 * reduced axes (right with one zero: only that element gets a gradient,
 * and with two: none does) */
static tg_status prod_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    if (!has_zero(x)) {
        tg_tensor *y = tg_entry_output(e);
        CHECK(y);
        tg_tensor *gy = tg_mul(y, g);
        tg_tensor_release(y);
        tg_tensor *b = gy ? expand_back(&e->params, gy) : NULL;
        tg_tensor_release(gy);
        CHECK(gi[0] = b ? tg_div(b, x) : NULL);
        tg_tensor_release(b);
        return TG_OK;
    }
    uint32_t mask = (uint32_t)e->params.i[3];
    if (!mask) { /* the product over no axes is the identity */
        CHECK(gi[0] = tg_reshape(g, x->ndim, x->shape));
        return TG_OK;
    }
    int64_t perm[TG_MAX_DIMS], inv[TG_MAX_DIMS], psh[TG_MAX_DIMS], red;
    tg_tensor *m = merge_last(x, mask, perm, inv, psh, &red); /* (kept..., red) */
    CHECK(m);
    int64_t la = m->ndim - 1;
    tg_tensor *cl = tg_cumprod(m, la, false);
    tg_tensor *cr = cl ? tg_cumprod(m, la, true) : NULL;
    tg_tensor *sl = cr ? slice_axis(cl, la, 0, red - 1) : NULL;
    tg_tensor *sr = sl ? slice_axis(cr, la, 1, red) : NULL;
    tg_tensor *left = sr ? pad_axis(sl, la, 1, 0, 1.0) : NULL;  /* prod_{j < k} */
    tg_tensor *right = left ? pad_axis(sr, la, 0, 1, 1.0) : NULL; /* prod_{j > k} */
    tg_tensor *others = right ? tg_mul(left, right) : NULL;
    int64_t gsh[TG_MAX_DIMS];
    for (int d = 0; d < la; d++) gsh[d] = m->shape[d];
    gsh[la] = 1;
    tg_tensor *gr = others ? tg_reshape(g, la + 1, gsh) : NULL;
    tg_tensor *dm = gr ? tg_mul(others, gr) : NULL;
    tg_tensor *dp = dm ? tg_reshape(dm, x->ndim, psh) : NULL;
    gi[0] = dp ? tg_permute(dp, inv) : NULL;
    tg_tensor *tmp[] = {m, cl, cr, sl, sr, left, right, others, gr, dm, dp};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_prod(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_prod(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims);
}
TG_DEFINE_OP(prod, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = prod(x, axes)", .forward_tex = "y = \\prod_{\\text{axes}} x",
             .vjp = "dx_k = dy * prod_{j != k} x_j (= dy * y / x without zeros)",
             .vjp_tex = "\\bar x_k = \\bar y \\prod_{j \\ne k} x_j",
             .doc = "Product over axes (all by default; 1 for none); the gradient is right with zeros; dtype= converts the input first.",
             .backward = prod_vjp, .apply = apply_prod,
             .examples = "3x4;3x4|axes=1;2x3x4|axes=0,2 keep=1;T3x4|axes=0;b3x4|axes=1;b2x3x2|axes=0,2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* logcumsumexp                                                           */
/* ===================================================================== */

tg_tensor *tg_logcumsumexp(tg_tensor *x, int64_t axis, bool reverse) {
    int64_t ax;
    if (check_dtype("logcumsumexp", x, false) || scan_axis("logcumsumexp", x, axis, &ax)) return NULL;
    if (x->ndim == 0) return on_0d(tg_logcumsumexp, x, reverse);
    return record_scan(&tg_opdef_logcumsumexp, x, scan_kernel(x, ax, S_LSE, reverse, NULL), ax,
                       reverse, true);
}
/* dx_k = sum_{i >= k} dy_i exp(x_k - y_i), in log space (PyTorch's formula):
 * exp(rev_lcse(log dy+ - y) + x) - exp(rev_lcse(log dy- - y) + x). */
static tg_status logcumsumexp_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    int64_t ax = e->params.i[0];
    bool rev = e->params.i[1] != 0;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    double lowest = x->dtype == TG_FLOAT32 ? -3.4028234663852886e38 : -1.7976931348623157e308;
    tg_tensor *z = scalar_like(0.0, g), *lo = scalar_like(lowest, g);
    tg_tensor *la = (z && lo) ? tg_abs(g) : NULL;
    tg_tensor *lg = la ? tg_log(la) : NULL;
    tg_tensor *part[2] = {NULL, NULL};
    for (int s = 0; s < 2 && lg; s++) {
        tg_tensor *cond = s == 0 ? tg_gt(g, z) : tg_lt(g, z);
        tg_tensor *l = cond ? tg_where(cond, lg, lo) : NULL;
        tg_tensor *d = l ? tg_sub(l, y) : NULL;
        tg_tensor *r = d ? tg_logcumsumexp(d, ax, !rev) : NULL;
        tg_tensor *rx = r ? tg_add(r, x) : NULL;
        part[s] = rx ? tg_exp(rx) : NULL;
        tg_tensor *tmp[] = {cond, l, d, r, rx};
        for (size_t i = 0; i < 5; i++) tg_tensor_release(tmp[i]);
        if (!part[s]) break;
    }
    gi[0] = (part[0] && part[1]) ? tg_sub(part[0], part[1]) : NULL;
    tg_tensor *tmp[] = {y, z, lo, la, lg, part[0], part[1]};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_logcumsumexp(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_logcumsumexp(in[0], p->i[0], p->i[1] != 0);
}
TG_DEFINE_OP(logcumsumexp, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y_i = log(sum_{j <= i} exp(x_j)) (along axis, computed stably)",
             .forward_tex = "y_i = \\log \\sum_{j \\le i} e^{x_j}",
             .vjp = "dx_k = sum_{i >= k} dy_i exp(x_k - y_i)",
             .vjp_tex = "\\bar x_k = \\sum_{i \\ge k} \\bar y_i\\, e^{x_k - y_i}",
             .doc = "Log of the cumulative sum of exponentials along an axis, stable (i0 = axis, i1 = reversed).",
             .backward = logcumsumexp_vjp, .apply = apply_logcumsumexp, .cost = 8,
             .examples = "3x4|i0=1;T3x4|i0=0;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* cummax / cummin                                                        */
/* ===================================================================== */

/* cummax / cummin: the indices from the scan kernel, the values gathered
 * (a 0-d tensor runs as its (1,) reshape) */
static tg_tensor *cumext(tg_tensor *x, int64_t axis, skind kind, const char *who, tg_tensor **indices) {
    int64_t ax, one = 1;
    *indices = NULL;
    if (check_dtype(who, x, true) || scan_axis(who, x, axis, &ax)) return NULL;
    tg_tensor *src = x->ndim ? (tg_tensor_retain(x), x) : tg_reshape(x, 1, &one);
    tg_tensor *idx = NULL;
    tg_tensor *v = src && scan_kernel(src, ax, kind, false, &idx) ? tg_gather(src, ax, idx) : NULL;
    tg_tensor_release(src);
    if (v && x->ndim == 0) {
        tg_tensor *v0 = tg_reshape(v, 0, NULL);
        tg_tensor *i0 = v0 ? tg_reshape(idx, 0, NULL) : NULL;
        tg_tensor_release(v);
        tg_tensor_release(idx);
        if (!i0) tg_tensor_release(v0);
        v = i0 ? v0 : NULL;
        idx = i0;
    }
    if (!v) {
        tg_tensor_release(idx);
        return NULL;
    }
    *indices = idx;
    return v;
}
tg_tensor *tg_cummax(tg_tensor *x, int64_t axis, tg_tensor **indices) {
    return cumext(x, axis, S_MAX, "cummax", indices);
}
tg_tensor *tg_cummin(tg_tensor *x, int64_t axis, tg_tensor **indices) {
    return cumext(x, axis, S_MIN, "cummin", indices);
}
/* the registry's generic call of an op returning (values, indices): the
 * values, or the indices when i3 = 1 */
static tg_tensor *pick_vi(tg_tensor *v, tg_tensor *idx, const tg_params *p) {
    if (p->i[3]) {
        tg_tensor_release(v);
        return idx;
    }
    tg_tensor_release(idx);
    return v;
}
static tg_tensor *apply_cummax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *idx;
    tg_tensor *v = tg_cummax(in[0], p->i[0], &idx);
    return v ? pick_vi(v, idx, p) : NULL;
}
static tg_tensor *apply_cummin(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *idx;
    tg_tensor *v = tg_cummin(in[0], p->i[0], &idx);
    return v ? pick_vi(v, idx, p) : NULL;
}
TG_DEFINE_OP(cummax, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64; indices int64",
             .forward = "y_i = max_{j <= i} x_j, idx_i = its index (the last on ties; NaN propagates)",
             .forward_tex = "y_i = \\max_{j \\le i} x_j = x_{\\mathrm{idx}_i}",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, idx, dy)",
             .vjp_tex = "\\bar x_k = \\sum_{i:\\,\\mathrm{idx}_i = k} \\bar y_i",
             .doc = "Running maximum along an axis and its int64 indices (i0 = axis).",
             .composite = true, .apply = apply_cummax,
             .examples = "3x4|i0=1;T3x4|i0=0;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(cummin, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64; indices int64",
             .forward = "y_i = min_{j <= i} x_j, idx_i = its index (the last on ties; NaN propagates)",
             .forward_tex = "y_i = \\min_{j \\le i} x_j = x_{\\mathrm{idx}_i}",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, idx, dy)",
             .vjp_tex = "\\bar x_k = \\sum_{i:\\,\\mathrm{idx}_i = k} \\bar y_i",
             .doc = "Running minimum along an axis and its int64 indices (i0 = axis).",
             .composite = true, .apply = apply_cummin,
             .examples = "3x4|i0=1;T3x4|i0=0;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* sorting                                                                */
/* ===================================================================== */

typedef struct {
    const double *kd;
    const int64_t *ki;
    bool desc;
} skey;

/* a strictly before b: ascending puts NaN last, descending first (as
 * PyTorch: NaN counts as the largest value) */
static inline bool before(const skey *s, int64_t a, int64_t b) {
    if (s->kd) {
        double x = s->kd[a], y = s->kd[b];
        if (!s->desc) return x == x && (y != y || x < y);
        return y == y && (x != x || x > y);
    }
    return s->desc ? s->ki[a] > s->ki[b] : s->ki[a] < s->ki[b];
}

/* stable merge sort of the positions a[0..n) (tmp: n scratch) */
static void msort(int64_t *a, int64_t *tmp, int64_t n, const skey *s) {
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = before(s, a[j], a[i]) ? a[j++] : a[i++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
}

/* int64 indices that sort x along ax (same shape as x; stable) */
static tg_tensor *sort_indices(const char *who, tg_tensor *x, int64_t ax, bool desc) {
    tg_tensor *c = rows_last(x, ax);
    if (!c) return NULL;
    int64_t n = c->shape[c->ndim - 1];
    int64_t rows = n ? c->numel / n : 0;
    tg_tensor *o = tg_tensor_empty(c->ndim, c->shape, TG_INT64);
    int64_t *tmp = o ? malloc((size_t)(n ? n : 1) * sizeof(int64_t)) : NULL;
    double *buf = tmp && c->dtype != TG_INT64 ? malloc((size_t)(n ? n : 1) * sizeof(double)) : NULL;
    if (o && (!tmp || (c->dtype != TG_INT64 && !buf))) {
        tg_error_set(TG_ERR_MEMORY, "%s: out of memory for a row of %lld", who, (long long)n);
        tg_tensor_release(o);
        o = NULL;
    }
    void *kt = o ? tg__kernel_begin(c->numel * 8) : NULL;
    for (int64_t r = 0; o && r < rows; r++) {
        int64_t *q = (int64_t *)tg_tensor_data(o) + r * n;
        for (int64_t i = 0; i < n; i++) q[i] = i;
        skey s = {NULL, NULL, desc};
        if (c->dtype == TG_INT64) {
            s.ki = (const int64_t *)tg_tensor_data(c) + r * n;
        } else {
            read_row(c, r, n, buf);
            s.kd = buf;
        }
        msort(q, tmp, n, &s);
    }
    if (o) tg__kernel_end(kt);
    free(tmp);
    free(buf);
    tg_tensor_release(c);
    if (!o) return NULL;
    tg_tensor *out = rows_back(o, ax);
    tg_tensor_release(o);
    return out;
}

static tg_status sort_axis(const char *who, tg_tensor *x, int64_t axis, int64_t *ax) {
    if (x->ndim == 0) return scan_axis(who, x, axis, ax);
    return tg__norm_axis(who, axis, x->ndim, ax);
}

tg_tensor *tg_argsort(tg_tensor *x, int64_t axis, bool descending) {
    int64_t ax;
    if (check_dtype("argsort", x, true) || sort_axis("argsort", x, axis, &ax)) return NULL;
    if (x->ndim == 0) return tg_tensor_zeros(0, NULL, TG_INT64);
    return sort_indices("argsort", x, ax, descending);
}
tg_tensor *tg_sort(tg_tensor *x, int64_t axis, bool descending, tg_tensor **indices) {
    int64_t ax;
    *indices = NULL;
    if (check_dtype("sort", x, true) || sort_axis("sort", x, axis, &ax)) return NULL;
    if (x->ndim == 0) /* one element: the top 1 */
        return tg_topk(x, 1, axis, descending, indices);
    tg_tensor *idx = sort_indices("sort", x, ax, descending);
    tg_tensor *v = idx ? tg_gather(x, ax, idx) : NULL;
    if (!v) {
        tg_tensor_release(idx);
        return NULL;
    }
    *indices = idx;
    return v;
}
static tg_tensor *apply_sort(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *idx;
    tg_tensor *v = tg_sort(in[0], p->i[0], p->i[1] != 0, &idx);
    return v ? pick_vi(v, idx, p) : NULL;
}
static tg_tensor *apply_argsort(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_argsort(in[0], p->i[0], p->i[1] != 0);
}
TG_DEFINE_OP(sort, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64; indices int64",
             .forward = "y = x sorted along axis, idx = the positions (stable; NaN last, first when descending)",
             .forward_tex = "y = x_{\\mathrm{idx}},\\ \\mathrm{idx} = \\operatorname{argsort}(x)",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, idx, dy)",
             .vjp_tex = "\\bar x_{\\mathrm{idx}_i} = \\bar y_i",
             .doc = "Sorted values along an axis and their int64 indices (i0 = axis, i1 = descending).",
             .composite = true, .apply = apply_sort,
             .examples = "3x4|i0=1;T3x4|i0=0 i1=1;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(argsort, .arity = 1, .diff_mask = 0, .dtypes = "float32,float64,int64 -> int64",
             .forward = "idx = positions that sort x along axis (stable; NaN last, first when descending)",
             .forward_tex = "\\mathrm{idx} = \\operatorname{argsort}(x)",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "The int64 indices that sort along an axis (i0 = axis, i1 = descending).",
             .backward = NULL, .apply = apply_argsort,
             .examples = "3x4|i0=1;T3x4|i0=0 i1=1;i4:3x7|i0=-1");

tg_tensor *tg_topk(tg_tensor *x, int64_t k, int64_t axis, bool largest, tg_tensor **indices) {
    int64_t ax;
    *indices = NULL;
    if (check_dtype("topk", x, true) || sort_axis("topk", x, axis, &ax)) return NULL;
    int64_t n = x->ndim ? x->shape[ax] : 1, lo = x->ndim ? 0 : 1; /* k = 0 of a 0-d x: no 0-d result */
    if (k < lo || k > n)
        return TG_FAIL(TG_ERR_VALUE, "topk: k = %lld is out of range for axis %lld of length %lld "
                                     "(shape %s; expected %lld <= k <= %lld)",
                       (long long)k, (long long)ax, (long long)n, tg__shp(x), (long long)lo, (long long)n);
    tg_tensor *src = x;
    int64_t one = 1;
    if (x->ndim == 0) src = tg_reshape(x, 1, &one);
    else tg_tensor_retain(x);
    if (!src) return NULL;
    tg_tensor *all = sort_indices("topk", src, ax, largest);
    tg_tensor *idx = NULL;
    if (all) {
        int64_t sh[TG_MAX_DIMS];
        memcpy(sh, all->shape, sizeof sh);
        sh[ax] = k;
        tg_tensor *v = tg__view(all, all->ndim, sh, all->strides, all->offset);
        idx = v ? tg__copy(v) : NULL;
        tg_tensor_release(v);
    }
    tg_tensor_release(all);
    tg_tensor *v = idx ? tg_gather(src, ax, idx) : NULL;
    tg_tensor_release(src);
    if (v && x->ndim == 0) {
        tg_tensor *v0 = tg_reshape(v, 0, NULL);
        tg_tensor *i0 = v0 ? tg_reshape(idx, 0, NULL) : NULL;
        tg_tensor_release(v);
        tg_tensor_release(idx);
        v = i0 ? v0 : NULL;
        if (!i0) tg_tensor_release(v0);
        idx = i0;
    }
    if (!v) {
        tg_tensor_release(idx);
        return NULL;
    }
    *indices = idx;
    return v;
}
static tg_tensor *apply_topk(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *idx;
    tg_tensor *v = tg_topk(in[0], p->i[0], p->i[1], p->i[2] != 0, &idx);
    return v ? pick_vi(v, idx, p) : NULL;
}
TG_DEFINE_OP(topk, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64; indices int64",
             .forward = "y, idx = the k largest (or smallest) along axis, in sorted order; ties: the lower index first",
             .forward_tex = "y = x_{\\mathrm{idx}},\\ \\mathrm{idx} = \\operatorname{argsort}(x)_{:k}",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, idx, dy)",
             .vjp_tex = "\\bar x_{\\mathrm{idx}_i} = \\bar y_i",
             .doc = "The k largest (i2 = 1) or smallest values along an axis and their indices (i0 = k, i1 = axis).",
             .composite = true, .apply = apply_topk,
             .examples = "3x5|i0=2 i1=1 i2=1;T3x5|i0=2 i1=0 i2=0;2x3x4|i0=3 i1=-1 i2=1;3x4|i0=0 i1=1 i2=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* median (PyTorch's: the lower of the two middle values)                 */
/* ===================================================================== */

static tg_tensor *median_pick(tg_tensor *x, int64_t axis, bool keepdims, tg_tensor **indices) {
    if (indices) *indices = NULL;
    if (check_dtype("median", x, true)) return NULL;
    tg_tensor *src;
    int64_t ax;
    if (axis == TG_AXIS_NONE) {
        int64_t n = x->numel;
        src = tg_reshape(x, 1, &n);
        if (!src) return NULL;
        ax = 0;
    } else {
        if (sort_axis("median", x, axis, &ax)) return NULL;
        int64_t one = 1;
        if (x->ndim == 0) src = tg_reshape(x, 1, &one);
        else {
            tg_tensor_retain(x);
            src = x;
        }
        if (!src) return NULL;
    }
    int64_t n = src->shape[ax];
    if (n == 0) {
        tg_tensor_release(src);
        return TG_FAIL(TG_ERR_VALUE, "median: cannot take the median of an empty axis (axis %lld of "
                                     "shape %s has length 0)",
                       (long long)ax, tg__shp(x));
    }
    tg_tensor *all = sort_indices("median", src, ax, false);
    tg_tensor *idx = NULL;
    if (all) {
        /* the lower middle, or the first NaN of a row with NaN (NaN sorts
         * last, so the row's last sorted element is NaN) */
        int64_t sh[TG_MAX_DIMS];
        memcpy(sh, all->shape, sizeof sh);
        sh[ax] = 1;
        idx = tg_tensor_empty(all->ndim, sh, TG_INT64);
        tg_tensor *ca = idx ? rows_last(all, ax) : NULL;
        tg_tensor *cx = ca ? rows_last(src, ax) : NULL;
        if (cx) {
            int64_t rows = idx->numel;
            tg_tensor *il = rows_last(idx, ax); /* (rows..., 1): same order as idx */
            if (il) {
                for (int64_t r = 0; r < rows; r++) {
                    const int64_t *q = (const int64_t *)tg_tensor_data(ca) + r * n;
                    int64_t pick = q[(n - 1) / 2];
                    if (cx->dtype != TG_INT64) {
                        double last = tg_tensor_get_flat(cx, r * n + q[n - 1]);
                        if (last != last) {
                            int64_t first = n - 1;
                            while (first > 0 && tg_tensor_get_flat(cx, r * n + q[first - 1]) !=
                                                    tg_tensor_get_flat(cx, r * n + q[first - 1]))
                                first--;
                            pick = q[first];
                        }
                    }
                    ((int64_t *)tg_tensor_data(il))[r] = pick;
                }
                tg_tensor *back = rows_back(il, ax);
                tg_tensor_release(il);
                tg_tensor_release(idx);
                idx = back;
            } else {
                tg_tensor_release(idx);
                idx = NULL;
            }
        } else {
            tg_tensor_release(idx);
            idx = NULL;
        }
        tg_tensor_release(ca);
        tg_tensor_release(cx);
    }
    tg_tensor_release(all);
    tg_tensor *v = idx ? tg_gather(src, ax, idx) : NULL;
    tg_tensor_release(src);
    if (v && !(keepdims && axis != TG_AXIS_NONE && x->ndim > 0)) {
        /* drop the picked axis (or give the 0-d result of the whole tensor) */
        int64_t sh[TG_MAX_DIMS];
        int nd = 0;
        if (axis != TG_AXIS_NONE) {
            for (int d = 0; d < x->ndim; d++)
                if (d != ax) sh[nd++] = x->shape[d];
        } else if (keepdims) {
            nd = x->ndim;
            for (int d = 0; d < nd; d++) sh[d] = 1;
        }
        tg_tensor *v2 = tg_reshape(v, nd, sh);
        tg_tensor *i2 = v2 ? tg_reshape(idx, nd, sh) : NULL;
        tg_tensor_release(v);
        tg_tensor_release(idx);
        if (!i2) tg_tensor_release(v2);
        v = i2 ? v2 : NULL;
        idx = i2;
    }
    if (!v) {
        tg_tensor_release(idx);
        return NULL;
    }
    if (indices) *indices = idx;
    else tg_tensor_release(idx);
    return v;
}
/* The median of all elements gives its gradient to the elements equal to
 * it, shared evenly, as PyTorch's median() does: it is taken as the max of
 * where(x == m, x, -inf) (exact: all picked values equal m), whose VJP
 * shares the gradient between ties (the min of where(x == m, x, inf) for
 * m = -inf).  A NaN median keeps the gradient of the one NaN picked. */
tg_tensor *tg_median(tg_tensor *x, int64_t axis, bool keepdims, tg_tensor **indices) {
    if (axis != TG_AXIS_NONE || !tg_dtype_is_float(x->dtype) || !tg__should_record(1, &x))
        return median_pick(x, axis, keepdims, indices);
    if (indices) *indices = NULL;
    tg_tensor *idx = NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *v = median_pick(x, axis, false, &idx);
    tg_set_grad_enabled(prev);
    if (!v) return NULL;
    double m = tg_tensor_get_flat(v, 0);
    tg_tensor_release(v);
    tg_tensor_release(idx);
    if (m != m) return median_pick(x, axis, keepdims, indices);
    tg_tensor *mask = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    if (mask)
        for (int64_t i = 0; i < x->numel; i++) {
            double on = tg_tensor_get_flat(x, i) == m;
            if (x->dtype == TG_FLOAT32) ((float *)tg_tensor_data(mask))[i] = (float)on;
            else ((double *)tg_tensor_data(mask))[i] = on;
        }
    bool low = m == -INFINITY; /* then min of where(x == m, x, +inf) */
    tg_tensor *ninf = mask ? scalar_like(low ? INFINITY : -INFINITY, x) : NULL;
    tg_tensor *w = ninf ? tg_where(mask, x, ninf) : NULL;
    tg_tensor *out = w ? (low ? tg_min : tg_max)(w, NULL, 0, keepdims) : NULL;
    tg_tensor_release(mask);
    tg_tensor_release(ninf);
    tg_tensor_release(w);
    if (out && indices) { /* the index of the (first) picked element, recomputed */
        prev = tg_set_grad_enabled(false);
        tg_tensor *v2 = median_pick(x, axis, keepdims, indices);
        tg_set_grad_enabled(prev);
        tg_tensor_release(v2);
        if (!*indices) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_tensor *apply_median(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *idx;
    tg_tensor *v = tg_median(in[0], p->naxes > 0 ? p->axes[0] : TG_AXIS_NONE, p->keepdims, &idx);
    return v ? pick_vi(v, idx, p) : NULL;
}
TG_DEFINE_OP(median, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64; indices int64",
             .forward = "y = the lower median x_idx (sorted[(n - 1) // 2]; NaN if the row has one) along axis, or of all",
             .forward_tex = "y = x_{\\mathrm{idx}},\\ \\mathrm{idx} = \\operatorname{argsort}(x)_{\\lfloor (n-1)/2 \\rfloor}",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, idx, dy) (without an axis: shared by the elements equal to y)",
             .vjp_tex = "\\bar x_{\\mathrm{idx}} = \\bar y",
             .doc = "PyTorch's median: the lower of the two middle values (not NumPy's mean of them), with its index.",
             .composite = true, .apply = apply_median,
             .examples = "3x5|axes=1;T3x5|axes=0;2x3x4|axes=-1 keep=1;3x4;2x5|axes=0 keep=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* std, var_mean, std_mean (composites of var, mean and sqrt)             */
/* ===================================================================== */

/* an error of var (or of std, itself renamed) renamed for `who`
 * ("var: ..." -> "std: ...", "std: ..." -> "std_mean: ...") */
static void rename_error(const char *who) {
    const char *m = tg_error_message();
    if (!strncmp(m, "var: ", 5) || !strncmp(m, "std: ", 5)) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s: %s", who, m + 5);
        tg_error_set(tg_error_status(), "%s", buf);
    }
}

tg_tensor *tg_std(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof) {
    tg_tensor *v = tg_var(x, axes, naxes, keepdims, ddof);
    if (!v) {
        rename_error("std");
        return NULL;
    }
    tg_tensor *r = tg_sqrt(v);
    tg_tensor_release(v);
    return r;
}
static tg_tensor *stat_mean(const char *who, bool is_std, tg_tensor *x, const int64_t *axes,
                            int naxes, bool keepdims, int64_t ddof, tg_tensor **mean) {
    *mean = NULL;
    tg_tensor *s = is_std ? tg_std(x, axes, naxes, keepdims, ddof) : tg_var(x, axes, naxes, keepdims, ddof);
    if (!s) {
        rename_error(who);
        return NULL;
    }
    tg_tensor *m = tg_mean(x, axes, naxes, keepdims);
    if (!m) {
        tg_tensor_release(s);
        return NULL;
    }
    *mean = m;
    return s;
}
tg_tensor *tg_var_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof,
                       tg_tensor **mean) {
    return stat_mean("var_mean", false, x, axes, naxes, keepdims, ddof, mean);
}
tg_tensor *tg_std_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof,
                       tg_tensor **mean) {
    return stat_mean("std_mean", true, x, axes, naxes, keepdims, ddof, mean);
}
static tg_tensor *apply_std(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_std(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims, p->i[0]);
}
static tg_tensor *apply_var_mean(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *m;
    tg_tensor *v = tg_var_mean(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes,
                               p->keepdims, p->i[0], &m);
    return v ? pick_vi(v, m, p) : NULL;
}
static tg_tensor *apply_std_mean(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor *m;
    tg_tensor *v = tg_std_mean(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes,
                               p->keepdims, p->i[0], &m);
    return v ? pick_vi(v, m, p) : NULL;
}
TG_DEFINE_OP(std, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = sqrt(var(x, axes, ddof))",
             .forward_tex = "y = \\sqrt{\\tfrac{1}{n - \\delta}\\sum (x - \\bar{x})^{2}}",
             .vjp = "dx = dy * (x - mean(x)) / ((n - ddof) y)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\frac{x - \\bar{x}}{(n - \\delta)\\, y}",
             .doc = "Standard deviation over axes (ddof = i0: 0 by default as NumPy; correction/unbiased as PyTorch).",
             .composite = true, .apply = apply_std,
             .examples = "3x4;3x4|axes=1 i0=1;2x3x4|axes=0,2 keep=1;T3x4|axes=0 i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(var_mean, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "(v, m) = (var(x, axes, ddof), mean(x, axes))",
             .forward_tex = "v = \\tfrac{1}{n - \\delta}\\sum (x - m)^{2},\\ m = \\bar{x}",
             .vjp = "dx = dv * 2 (x - m) / (n - ddof) + dm / n",
             .vjp_tex = "\\bar x = \\bar v \\odot \\frac{2 (x - m)}{n - \\delta} + \\frac{\\bar m}{n}",
             .doc = "The variance and the mean over axes, a tuple (ddof = i0; the mean when i3 = 1).",
             .composite = true, .apply = apply_var_mean,
             .examples = "3x4;3x4|axes=1 i0=1;2x3x4|axes=0,2 keep=1 i3=1;T3x4|axes=0 i0=1 i3=1",
             .grad_out_tex = "\\bar v", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(std_mean, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "(s, m) = (std(x, axes, ddof), mean(x, axes))",
             .forward_tex = "s = \\sqrt{\\tfrac{1}{n - \\delta}\\sum (x - m)^{2}},\\ m = \\bar{x}",
             .vjp = "dx = ds * (x - m) / ((n - ddof) s) + dm / n",
             .vjp_tex = "\\bar x = \\bar s \\odot \\frac{x - m}{(n - \\delta)\\, s} + \\frac{\\bar m}{n}",
             .doc = "The standard deviation and the mean over axes, a tuple (ddof = i0; the mean when i3 = 1).",
             .composite = true, .apply = apply_std_mean,
             .examples = "3x4;3x4|axes=1 i0=1;2x3x4|axes=0,2 keep=1 i3=1;T3x4|axes=0 i0=1",
             .grad_out_tex = "\\bar s", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* norm (vector p-norms over any axes; 'fro' is p = 2)                    */
/* ===================================================================== */

/* t (released) converted to dtype dt, not recorded: a comparison's bool
 * mask as 0/1 numbers. */
static tg_tensor *as_dtype_take(tg_tensor *t, tg_dtype dt) {
    if (!t) return NULL;
    tg_tensor *r = tg__as_dtype(t, dt);
    tg_tensor_release(t);
    return r;
}

tg_tensor *tg_norm(tg_tensor *x, double p, const int64_t *axes, int naxes, bool keepdims) {
    uint32_t mask;
    if (tg__axes_mask("norm", axes, naxes, x->ndim, &mask) || check_dtype("norm", x, false)) return NULL;
    if (p != p || (p < 0 && p != -INFINITY))
        return TG_FAIL(TG_ERR_VALUE, "norm: p = %g is not supported for the input of shape %s "
                                     "(expected p > 0, 0, inf or -inf)",
                       p, tg__shp(x));
    int64_t ax[TG_MAX_DIMS];
    int na = 0;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) ax[na++] = d;
    if (isinf(p))
        for (int d = 0; d < x->ndim; d++)
            if ((mask & (1u << d)) && x->shape[d] == 0)
                return TG_FAIL(TG_ERR_VALUE, "norm: the %s-norm of an empty axis is undefined "
                                             "(axis %d of shape %s has length 0)",
                               p > 0 ? "inf" : "-inf", d, tg__shp(x));
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *a = tg_abs(x), *out = NULL;
    if (a) {
        if (p == INFINITY) out = tg_max(a, ax, na, keepdims);
        else if (p == -INFINITY) out = tg_min(a, ax, na, keepdims);
        else if (p == 0) {
            tg_tensor *z = scalar_like(0.0, x);
            /* comparisons give bool: count in x's dtype, as torch.linalg.vector_norm(ord=0) */
            tg_tensor *nz = z ? as_dtype_take(tg_ne(x, z), x->dtype) : NULL;
            out = nz ? tg_sum(nz, ax, na, keepdims) : NULL;
            tg_tensor_release(z);
            tg_tensor_release(nz);
        } else if (p == 1) out = tg_sum(a, ax, na, keepdims);
        if (p == 2) {
            /* sqrt(sum(x * x)) in float64 (a float32 square can neither
             * overflow nor underflow there), unless a float64 sum overflows
             * or is so small that squares may have underflowed: then the
             * scaled formula below */
            tg_tensor *xd = tg__as_dtype(x, TG_FLOAT64);
            tg_tensor *sq = xd ? tg_mul(xd, xd) : NULL;
            tg_tensor *ss = sq ? tg_sum(sq, ax, na, keepdims) : NULL;
            tg_tensor *rd = ss ? tg_sqrt(ss) : NULL;
            bool ok = rd != NULL;
            for (int64_t i = 0; ok && x->dtype == TG_FLOAT64 && i < rd->numel; i++) {
                double v = ((const double *)tg_tensor_data(rd))[i];
                ok = isfinite(v) && v > 1e-140;
            }
            if (ok) out = tg__as_dtype(rd, x->dtype);
            tg_tensor_release(xd);
            tg_tensor_release(sq);
            tg_tensor_release(ss);
            tg_tensor_release(rd);
            if (!out) tg_error_clear();
        }
        if (!out && p != 1 && p != 0 && !isinf(p)) {
            /* scaled by the largest |x| against overflow and underflow */
            tg_tensor *m = tg_max(a, ax, na, true);
            if (m) {
                for (int64_t i = 0; i < m->numel; i++) { /* 1 where the max is 0 or not finite */
                    double v = tg_tensor_get_flat(m, i);
                    if (v == 0 || isinf(v)) {
                        if (m->dtype == TG_FLOAT32) ((float *)tg_tensor_data(m))[i] = 1;
                        else ((double *)tg_tensor_data(m))[i] = 1;
                    }
                }
            } else if (x->numel == 0 || tg_error_status() == TG_ERR_VALUE) {
                tg_error_clear(); /* an empty axis: the sum is 0 */
                int64_t kshape[TG_MAX_DIMS];
                for (int d = 0; d < x->ndim; d++) kshape[d] = (mask & (1u << d)) ? 1 : x->shape[d];
                m = tg_tensor_ones(x->ndim, kshape, x->dtype);
            }
            tg_tensor *s = m ? tg_div(a, m) : NULL;
            tg_tensor *sp = s ? tg_pow_scalar(s, p) : NULL;
            tg_tensor *sum = sp ? tg_sum(sp, ax, na, true) : NULL;
            tg_tensor *r = sum ? tg_pow_scalar(sum, 1.0 / p) : NULL;
            tg_tensor *rm = r ? tg_mul(r, m) : NULL;
            if (rm) {
                int64_t osh[TG_MAX_DIMS];
                int ond = 0;
                for (int d = 0; d < x->ndim; d++)
                    if (!(mask & (1u << d))) osh[ond++] = x->shape[d];
                    else if (keepdims) osh[ond++] = 1;
                out = tg_reshape(rm, ond, osh);
            }
            tg_tensor *tmp[] = {m, s, sp, sum, r, rm};
            for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
        }
    }
    tg_set_grad_enabled(prev);
    tg_tensor_release(a);
    tg_entry *e;
    out = tg__finish(&tg_opdef_norm, 1, &x, out, &e);
    if (e) {
        store_red(e, x, mask, keepdims);
        e->params.f[0] = p;
        tg__save_output(e, out);
        if (tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
/* dx = dy sign(x) |x|^(p-1) / y^(p-1) (0 where y = 0); p = 1: dy sign(x);
 * p = +-inf: dy sign(x) [|x| = y] / count (ties share, as max); p = 0: 0 */
static tg_status norm_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    double p = e->params.f[0];
    if (p == 0) {
        CHECK(gi[0] = tg__zeros_like(x));
        return TG_OK;
    }
    tg_tensor *z = scalar_like(0.0, x);
    CHECK(z);
    /* (x > 0) - (x < 0) in x's dtype (comparisons give bool, which has no minus) */
    tg_tensor *sign = take2(tg_sub, as_dtype_take(tg_gt(x, z), x->dtype),
                            as_dtype_take(tg_lt(x, z), x->dtype));
    tg_tensor *gb = sign ? expand_back(&e->params, g) : NULL;
    tg_tensor *f = NULL; /* the factor multiplying dy sign(x) */
    tg_tensor *y = gb ? tg_entry_output(e) : NULL;
    tg_tensor *yb = y ? expand_back(&e->params, y) : NULL;
    if (!yb) {
    } else if (p == 1) {
        f = NULL;
    } else if (isinf(p)) {
        tg_tensor *a = tg_abs(x);
        tg_tensor *eq = a ? as_dtype_take(tg_eq(a, yb), x->dtype) : NULL;
        tg_tensor *cnt = eq ? tg_sum(eq, e->params.axes, e->params.naxes, true) : NULL;
        f = cnt ? tg_div(eq, cnt) : NULL;
        tg_tensor_release(a);
        tg_tensor_release(eq);
        tg_tensor_release(cnt);
    } else {
        tg_tensor *one = scalar_like(1.0, x);
        tg_tensor *y0 = one ? tg_eq(yb, z) : NULL;
        tg_tensor *yd = y0 ? tg_where(y0, one, yb) : NULL; /* y, 1 where y = 0 (then x = 0) */
        if (p == 2) {
            f = yd ? tg_div(x, yd) : NULL; /* sign(x) |x| = x: sign is 1 below */
        } else {
            tg_tensor *a = yd ? tg_abs(x) : NULL;
            tg_tensor *q = a ? tg_div(a, yd) : NULL;
            f = q ? tg_pow_scalar(q, p - 1) : NULL;
            tg_tensor_release(a);
            tg_tensor_release(q);
        }
        tg_tensor_release(one);
        tg_tensor_release(y0);
        tg_tensor_release(yd);
    }
    bool ok = yb && (p == 1 || f);
    tg_tensor *gs = NULL;
    if (ok && p == 2) gs = tg_mul(gb, f);
    else if (ok) {
        tg_tensor *t = tg_mul(gb, sign);
        gs = (t && f) ? tg_mul(t, f) : (t && !f ? (tg_tensor_retain(t), t) : NULL);
        tg_tensor_release(t);
    }
    gi[0] = gs;
    tg_tensor *tmp[] = {z, sign, gb, f, y, yb};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_norm(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_norm(in[0], p->f[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims);
}
TG_DEFINE_OP(norm, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = (sum |x|^p)^(1/p) over axes; max |x| (p = inf), min |x| (-inf), count of x != 0 (p = 0)",
             .forward_tex = "y = \\Big(\\sum_{\\text{axes}} |x|^{p}\\Big)^{1/p}",
             .vjp = "dx = dy * sign(x) * (|x| / y)^(p-1) (0 where y = 0; ties of inf-norms share)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\operatorname{sign}(x) \\odot \\Big(\\frac{|x|}{y}\\Big)^{p-1}",
             .doc = "Vector p-norm over axes (f0 = p: any p > 0, inf, -inf, 0; 'fro' is p = 2).",
             .backward = norm_vjp, .apply = apply_norm,
             .examples = "3x4|f0=2;3x4|axes=1 f0=1;2x3x4|axes=0,2 keep=1 f0=3;T3x4|axes=0 f0=inf;"
                         "~3x4|axes=1 f0=-inf;~3x4|axes=-1 f0=0.5;~T2x3|f0=0;3x4|axes=0,1 f0=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
