/*
 * npfuncs.c -- NumPy's products and functions of issue 19: tensordot, dot
 * (NumPy's N-d rule), inner, outer, kron, cross, diff, and the elementwise
 * fmax/fmin (NaN-ignoring), logaddexp2, sinc, deg2rad/rad2deg.
 *
 * Every op here is a COMPOSITE (.composite = true): it is made of ops that
 * record their own entries (permute, reshape, matmul, slice, mul, sub,
 * where, ...), so its gradient and its second order are theirs and nothing
 * here needs a VJP.  The `.vjp` text of each block states the gradient the
 * constituents compute.
 *
 * tensordot is the workhorse of the products: it moves the summed axes of a
 * to the end and those of b to the front (permute), flattens both to
 * matrices (reshape) and multiplies them (matmul, the packed gemm), then
 * restores the free axes.  dot and inner are tensordot with one axis pair.
 */
#include "ops_internal.h"

#include <math.h>

/* ---- helpers ------------------------------------------------------------ */

/* f(x) releasing x (chains of composite steps); NULL if x is NULL. */
#define TAKE(var, expr)                \
    do {                               \
        tg_tensor *old_ = (var);       \
        (var) = old_ ? (expr) : NULL;  \
        tg_tensor_release(old_);       \
    } while (0)

static tg_status need_float(const char *who, const tg_tensor *a, const tg_tensor *b) {
    if (tg_dtype_is_float(a->dtype) && (!b || tg_dtype_is_float(b->dtype))) return TG_OK;
    if (b)
        return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtypes %s and %s (expected float32 or float64)",
                            who, tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
    return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32 or float64)", who,
                        tg_dtype_name(a->dtype));
}

/* float32, float64 or int64 (the dtypes whose mul/sub/where agree with NumPy's) */
static tg_status need_num(const char *who, const tg_tensor *a, const tg_tensor *b) {
    bool ok = (tg_dtype_is_float(a->dtype) || a->dtype == TG_INT64) &&
              (!b || tg_dtype_is_float(b->dtype) || b->dtype == TG_INT64);
    if (ok) return TG_OK;
    if (b)
        return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtypes %s and %s (expected float32, float64 or int64)",
                            who, tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
    return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32, float64 or int64)", who,
                        tg_dtype_name(a->dtype));
}


/* ===================================================================== */
/* tensordot                                                              */
/* ===================================================================== */

tg_tensor *tg_tensordot(tg_tensor *a, tg_tensor *b, const int64_t *axes_a, const int64_t *axes_b, int n) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "tensordot: an input is NULL");
    if (need_float("tensordot", a, b)) return NULL;
    if (n < 0 || n > a->ndim || n > b->ndim)
        return TG_FAIL(TG_ERR_VALUE, "tensordot: %d summed axes for a of shape %s and b of shape %s", n,
                       tg__shp(a), tg__shp(b));
    int64_t ax[TG_MAX_DIMS], bx[TG_MAX_DIMS];
    bool a_summed[TG_MAX_DIMS] = {false}, b_summed[TG_MAX_DIMS] = {false};
    for (int i = 0; i < n; i++) {
        if (tg__norm_axis("tensordot", axes_a[i], a->ndim, &ax[i]) ||
            tg__norm_axis("tensordot", axes_b[i], b->ndim, &bx[i]))
            return NULL;
        if (a_summed[ax[i]] || b_summed[bx[i]])
            return TG_FAIL(TG_ERR_VALUE, "tensordot: an axis is repeated in the summed axes of %s",
                           a_summed[ax[i]] ? "a" : "b");
        a_summed[ax[i]] = b_summed[bx[i]] = true;
        if (a->shape[ax[i]] != b->shape[bx[i]])
            return TG_FAIL(TG_ERR_VALUE,
                           "tensordot: shape mismatch for sum: a %s has size %lld on axis %lld but b %s has "
                           "size %lld on axis %lld (summed axes must have equal sizes)",
                           tg__shp(a), (long long)a->shape[ax[i]], (long long)ax[i], tg__shp(b),
                           (long long)b->shape[bx[i]], (long long)bx[i]);
    }
    int fa = a->ndim - n, fb = b->ndim - n;
    if (fa + fb > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "tensordot: the result of a %s and b %s would have %d dims (at most %d)",
                       tg__shp(a), tg__shp(b), fa + fb, TG_MAX_DIMS);
    /* a -> (free of a..., summed...), b -> (summed..., free of b...) */
    int64_t pa[TG_MAX_DIMS], pb[TG_MAX_DIMS], oshape[TG_MAX_DIMS];
    int64_t M = 1, K = 1, N = 1;
    int k = 0, o = 0;
    for (int d = 0; d < a->ndim; d++)
        if (!a_summed[d]) {
            pa[k++] = d;
            M *= a->shape[d];
            oshape[o++] = a->shape[d];
        }
    for (int i = 0; i < n; i++) {
        pa[k++] = ax[i];
        pb[i] = bx[i];
        K *= a->shape[ax[i]];
    }
    k = n;
    for (int d = 0; d < b->ndim; d++)
        if (!b_summed[d]) {
            pb[k++] = d;
            N *= b->shape[d];
            oshape[o++] = b->shape[d];
        }
    tg_tensor *a2 = tg_permute(a, pa);
    TAKE(a2, tg_reshape(a2, 2, (int64_t[]){M, K}));
    tg_tensor *b2 = a2 ? tg_permute(b, pb) : NULL;
    TAKE(b2, tg_reshape(b2, 2, (int64_t[]){K, N}));
    tg_tensor *c = b2 ? tg_matmul(a2, b2) : NULL;
    tg_tensor_release(a2);
    tg_tensor_release(b2);
    TAKE(c, tg_reshape(c, o, oshape));
    return c;
}
static tg_tensor *apply_tensordot(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "tensordot: expected 2 inputs, got %d", n);
    /* checked as int64 before it becomes an int: (int) of 2**32 + 1 is 1 and
     * of INT64_MIN 0, counts that were accepted (a wrong pairing, or an
     * outer product) */
    int64_t k = p->i[0];
    if (k < 0 || k > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "tensordot: %lld summed axes (i0); expected 0 to %d",
                       (long long)k, TG_MAX_DIMS);
    return tg_tensordot(in[0], in[1], p->ints, p->ints + k, (int)k);
}
TG_DEFINE_OP(tensordot, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "c[i..., j...] = sum_k a[i..., k...] b[k..., j...] over the paired axes",
             .forward_tex = "c_{IJ} = \\sum_{K} a_{IK} b_{KJ}",
             .vjp = "da = tensordot(dc, b) over the free axes of b, db = tensordot(a, dc) over the free axes of a",
             .vjp_tex = "\\bar a_{IK} = \\sum_J \\bar c_{IJ} b_{KJ},\\quad \\bar b_{KJ} = \\sum_I a_{IK} \\bar c_{IJ}",
             .doc = "Sum of products over paired axes of a and b (i0 = number of pairs, ints = the axes of a, "
                    "then those of b); a composite of permute, reshape and matmul.",
             .apply = apply_tensordot,
             .examples = "3x4x5,4x5x2|i0=2 ints=1,2,0,1;T4x3,2x4|i0=1 ints=0,1;2x3,4|i0=0;"
                         "2x3x4,4x3x5|i0=2 ints=2,1,0,1;3,3|i0=1 ints=0,0",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* dot (NumPy's rule), inner                                              */
/* ===================================================================== */

/* NumPy's dot: a 0-d operand multiplies; otherwise the sum over the last
 * axis of a and the second-to-last of b (the only axis of a 1-D b). */
tg_tensor *tg_dot(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "dot: an input is NULL");
    if (need_float("dot", a, b)) return NULL;
    if (a->ndim == 0 || b->ndim == 0) return tg_mul(a, b);
    int64_t la = a->ndim - 1, lb = b->ndim >= 2 ? b->ndim - 2 : 0;
    if (a->shape[la] != b->shape[lb])
        return TG_FAIL(TG_ERR_VALUE,
                       "dot: shapes %s and %s not aligned: %lld (dim %lld of a) != %lld (dim %lld of b)",
                       tg__shp(a), tg__shp(b), (long long)a->shape[la], (long long)la,
                       (long long)b->shape[lb], (long long)lb);
    if (a->ndim <= 2 && b->ndim <= 2) return tg_matmul(a, b); /* one entry, the same numbers */
    return tg_tensordot(a, b, &la, &lb, 1);
}
APPLY2(dot)
TG_DEFINE_OP(dot, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "c[i..., j..., m] = sum_k a[i..., k] b[j..., k, m] (a * b for a 0-d operand)",
             .forward_tex = "c_{I J m} = \\sum_k a_{I k}\\, b_{J k m}",
             .vjp = "those of tensordot (matmul for 1-D and 2-D operands, mul for 0-d)",
             .vjp_tex = "\\bar a_{Ik} = \\sum_{Jm} \\bar c_{IJm} b_{Jkm},\\quad \\bar b_{Jkm} = \\sum_I a_{Ik} \\bar c_{IJm}",
             .doc = "NumPy's dot: the sum over the last axis of a and the second-to-last of b (matmul for "
                    "1-D and 2-D operands, a product for 0-d ones); a composite of tensordot.",
             .apply = apply_dot, .examples = "3,3;3x4,4;T3x4,4x2;2x3x4,4;2x3x4,5x4x2;-,3x2;2x3,-",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* NumPy's inner: the sum over the last axes of a and b; a 0-d operand multiplies. */
tg_tensor *tg_inner(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "inner: an input is NULL");
    if (need_float("inner", a, b)) return NULL;
    if (a->ndim == 0 || b->ndim == 0) return tg_mul(a, b);
    int64_t la = a->ndim - 1, lb = b->ndim - 1;
    if (a->shape[la] != b->shape[lb])
        return TG_FAIL(TG_ERR_VALUE, "inner: the last dims of a %s and b %s differ (%lld != %lld)", tg__shp(a),
                       tg__shp(b), (long long)a->shape[la], (long long)b->shape[lb]);
    return tg_tensordot(a, b, &la, &lb, 1);
}
APPLY2(inner)
TG_DEFINE_OP(inner, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "c[i..., j...] = sum_k a[i..., k] b[j..., k]",
             .forward_tex = "c_{IJ} = \\sum_k a_{Ik}\\, b_{Jk}",
             .vjp = "da = sum_j dc[i, j] b[j, k], db = sum_i dc[i, j] a[i, k] (tensordot's)",
             .vjp_tex = "\\bar a_{Ik} = \\sum_J \\bar c_{IJ} b_{Jk},\\quad \\bar b_{Jk} = \\sum_I \\bar c_{IJ} a_{Ik}",
             .doc = "NumPy's inner: the sum of products over the last axes of a and b (a product for a 0-d "
                    "operand); a composite of tensordot.",
             .apply = apply_inner, .examples = "4,4;3x4,4;T3x4,2x4;2x3x4,5x4;-,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* outer, kron                                                            */
/* ===================================================================== */

tg_tensor *tg_outer(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "outer: an input is NULL");
    if (need_num("outer", a, b)) return NULL;
    tg_tensor *ca = tg_reshape(a, 2, (int64_t[]){a->numel, 1});
    tg_tensor *rb = ca ? tg_reshape(b, 2, (int64_t[]){1, b->numel}) : NULL;
    tg_tensor *c = rb ? tg_mul(ca, rb) : NULL;
    tg_tensor_release(ca);
    tg_tensor_release(rb);
    return c;
}
APPLY2(outer)
TG_DEFINE_OP(outer, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c[i, j] = a[i] b[j] (both flattened)", .forward_tex = "c_{ij} = a_i\\, b_j",
             .vjp = "da = dc @ b, db = dc^T @ a (mul's, summed over the broadcast axis)",
             .vjp_tex = "\\bar a_i = \\sum_j \\bar c_{ij} b_j,\\quad \\bar b_j = \\sum_i \\bar c_{ij} a_i",
             .doc = "Outer product of the flattened a and b (NumPy's outer); a composite of reshape and mul.",
             .apply = apply_outer, .examples = "3,4;2x2,3;T2x3,-",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* kron: with nd = max(ndim) (shapes padded with leading 1s), a viewed as
 * (a0, 1, a1, 1, ...) times b as (1, b0, 1, b1, ...) is (a0, b0, a1, b1, ...),
 * reshaped to (a0 b0, a1 b1, ...). */
tg_tensor *tg_kron(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "kron: an input is NULL");
    if (need_num("kron", a, b)) return NULL;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (2 * nd > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "kron: inputs of shapes %s and %s: at most %d dims are supported", tg__shp(a),
                       tg__shp(b), TG_MAX_DIMS / 2);
    int64_t sa[2 * TG_MAX_DIMS], sb[2 * TG_MAX_DIMS], so[TG_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        int ia = d - (nd - a->ndim), ib = d - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da && db > INT64_MAX / da) /* (broadcast views can be huge without memory) */
            return TG_FAIL(TG_ERR_VALUE, "kron: the result of shapes %s and %s is too large", tg__shp(a),
                           tg__shp(b));
        sa[2 * d] = da;
        sa[2 * d + 1] = 1;
        sb[2 * d] = 1;
        sb[2 * d + 1] = db;
        so[d] = da * db;
    }
    tg_tensor *ra = tg_reshape(a, 2 * nd, sa);
    tg_tensor *rb = ra ? tg_reshape(b, 2 * nd, sb) : NULL;
    tg_tensor *c = rb ? tg_mul(ra, rb) : NULL;
    tg_tensor_release(ra);
    tg_tensor_release(rb);
    TAKE(c, tg_reshape(c, nd, so));
    return c;
}
APPLY2(kron)
TG_DEFINE_OP(kron, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c[i*p + k, j*q + l] = a[i, j] b[k, l] (any number of dims)",
             .forward_tex = "c_{(i p + k)(j q + l)} = a_{ij}\\, b_{kl}",
             .vjp = "da[i, j] = sum_kl dc[ip+k, jq+l] b[k, l], db[k, l] = sum_ij dc[ip+k, jq+l] a[i, j]",
             .vjp_tex = "\\bar a_{ij} = \\sum_{kl} \\bar c_{(ip+k)(jq+l)} b_{kl},\\quad "
                        "\\bar b_{kl} = \\sum_{ij} \\bar c_{(ip+k)(jq+l)} a_{ij}",
             .doc = "Kronecker product (NumPy's kron; the shorter shape is padded with leading 1s; up to 4 "
                    "dims); a composite of reshape and mul.",
             .apply = apply_kron, .examples = "2x3,3x2;T2x3,4;3,2x2;2x1x2,2x3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* cross                                                                  */
/* ===================================================================== */

tg_tensor *tg_cross(tg_tensor *a, tg_tensor *b, int64_t axis) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "cross: an input is NULL");
    if (need_num("cross", a, b)) return NULL;
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (tg__broadcast_shapes("cross", a->ndim, a->shape, b->ndim, b->shape, &nd, shape))
        return TG_FAIL(TG_ERR_VALUE, "cross: shapes %s and %s cannot be broadcast together", tg__shp(a),
                       tg__shp(b));
    int64_t ax;
    if (nd == 0) return TG_FAIL(TG_ERR_VALUE, "cross: inputs are 0-d; expected vectors of 3 elements along axis");
    if (tg__norm_axis("cross", axis, nd, &ax)) return NULL;
    if (shape[ax] != 3)
        return TG_FAIL(TG_ERR_VALUE,
                       "cross: a %s and b %s have size %lld along axis %lld (broadcast shape %s); expected 3",
                       tg__shp(a), tg__shp(b), (long long)shape[ax], (long long)axis, tg__shp2(nd, shape));
    tg_tensor *A = tg_broadcast_to(a, nd, shape);
    tg_tensor *B = A ? tg_broadcast_to(b, nd, shape) : NULL;
    tg_tensor *ca[3] = {NULL}, *cb[3] = {NULL}, *c[3] = {NULL}, *out = NULL;
    if (!B) goto done;
    for (int i = 0; i < 3; i++) {
        ca[i] = tg__slice_axis(A, ax, i, i + 1, 1);
        cb[i] = tg__slice_axis(B, ax, i, i + 1, 1);
        if (!ca[i] || !cb[i]) goto done;
    }
    /* c_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1} */
    for (int i = 0; i < 3; i++) {
        int j = (i + 1) % 3, k = (i + 2) % 3;
        c[i] = take2(tg_sub, tg_mul(ca[j], cb[k]), tg_mul(ca[k], cb[j]));
        if (!c[i]) goto done;
    }
    out = tg_concat(3, c, ax);
done:
    for (int i = 0; i < 3; i++) {
        tg_tensor_release(ca[i]);
        tg_tensor_release(cb[i]);
        tg_tensor_release(c[i]);
    }
    tg_tensor_release(A);
    tg_tensor_release(B);
    return out;
}
static tg_tensor *apply_cross(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "cross: expected 2 inputs, got %d", n);
    return tg_cross(in[0], in[1], p->i[0]);
}
TG_DEFINE_OP(cross, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a x b along axis i0 (size 3): c_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1}",
             .forward_tex = "c = a \\times b",
             .vjp = "da = b x dc, db = dc x a", .vjp_tex = "\\bar a = b \\times \\bar c,\\quad \\bar b = \\bar c \\times a",
             .doc = "Cross product of 3-vectors along an axis (i0, default -1), with broadcasting; a composite "
                    "of slice, mul, sub and concat.",
             .apply = apply_cross, .examples = "3,3|i0=-1;4x3,3|i0=-1;T3x4,3x1|i0=0;2x3x2,2x3x2|i0=1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* diff                                                                   */
/* ===================================================================== */

/* a 0-d prepend/append broadcast to x's shape with size 1 along ax (NumPy's rule) */
static tg_tensor *edge(tg_tensor *v, const tg_tensor *x, int64_t ax) {
    if (v->ndim != 0) {
        tg_tensor_retain(v);
        return v;
    }
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == ax ? 1 : x->shape[d];
    return tg_broadcast_to(v, x->ndim, shape);
}

tg_tensor *tg_diff(tg_tensor *x, int64_t n, int64_t axis, tg_tensor *prepend, tg_tensor *append) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "diff: x is NULL");
    if (need_num("diff", x, NULL) || (prepend && need_num("diff", prepend, NULL)) ||
        (append && need_num("diff", append, NULL)))
        return NULL;
    if (n < 0) return TG_FAIL(TG_ERR_VALUE, "diff: order must be non-negative but got %lld", (long long)n);
    if (x->ndim == 0) return TG_FAIL(TG_ERR_VALUE, "diff: requires input that is at least one dimensional");
    int64_t ax;
    if (tg__norm_axis("diff", axis, x->ndim, &ax)) return NULL;
    if (n == 0) return tg__slice_axis(x, ax, 0, x->shape[ax], 1); /* NumPy: x itself, prepend/append unused */
    tg_tensor *edges[2] = {prepend, append};
    for (int k = 0; k < 2; k++) {
        tg_tensor *v = edges[k];
        bool fits = !v || v->ndim == 0 || v->ndim == x->ndim;
        for (int d = 0; fits && v && v->ndim && d < x->ndim; d++) fits = d == ax || v->shape[d] == x->shape[d];
        if (!fits)
            return TG_FAIL(TG_ERR_VALUE,
                           "diff: %s of shape %s does not fit x of shape %s along axis %lld (expected a 0-d "
                           "value or x's dims but the axis)",
                           k ? "append" : "prepend", tg__shp(v), tg__shp(x), (long long)ax);
    }
    tg_tensor *parts[3];
    int np_ = 0;
    tg_tensor *pre = prepend ? edge(prepend, x, ax) : NULL;
    tg_tensor *app = append ? edge(append, x, ax) : NULL;
    if ((prepend && !pre) || (append && !app)) {
        tg_tensor_release(pre);
        tg_tensor_release(app);
        return NULL;
    }
    if (pre) parts[np_++] = pre;
    parts[np_++] = x;
    if (app) parts[np_++] = app;
    tg_tensor *y;
    if (np_ > 1) y = tg_concat(np_, parts, ax);
    else y = tg__slice_axis(x, ax, 0, x->shape[ax], 1);
    tg_tensor_release(pre);
    tg_tensor_release(app);
    for (int64_t k = 0; k < n && y; k++) {
        int64_t len = y->shape[ax];
        if (len == 0) break;
        tg_tensor *hi = tg__slice_axis(y, ax, 1, len, 1), *lo = hi ? tg__slice_axis(y, ax, 0, len - 1, 1) : NULL;
        tg_tensor_release(y);
        y = take2(tg_sub, hi, lo);
    }
    return y;
}
static tg_tensor *apply_diff(tg_tensor *const *in, int n, const tg_params *p) {
    int want = 1 + (p->i[2] != 0) + (p->i[3] != 0);
    if (n != want)
        return TG_FAIL(TG_ERR_VALUE, "diff: expected %d inputs (x%s%s), got %d", want, p->i[2] ? ", prepend" : "",
                       p->i[3] ? ", append" : "", n);
    return tg_diff(in[0], p->i[0], p->i[1], p->i[2] ? in[1] : NULL, p->i[3] ? in[n - 1] : NULL);
}
TG_DEFINE_OP(diff, .arity = -1, .composite = true, .diff_mask = 7, .dtypes = "float32,float64,int64",
             .forward = "y = x[1:] - x[:-1] along axis i1, n = i0 times (prepend/append joined first)",
             .forward_tex = "y_i = x_{i+1} - x_i",
             .vjp = "dx[i] = dy[i-1] - dy[i] (zero outside), applied n times",
             .vjp_tex = "\\bar x_i = \\bar y_{i-1} - \\bar y_i",
             .doc = "n-th discrete difference along an axis (NumPy's diff; i0 = n, i1 = axis, i2/i3: a prepend/"
                    "append input follows; n = 0 gives x, as NumPy); a composite of concat, slice and sub.",
             .apply = apply_diff,
             .examples = "5|i0=1 i1=-1;3x4|i0=2 i1=1;T3x4|i0=1 i1=0;3x4,3x1|i0=1 i1=-1 i2=1;"
                         "3x4,-,2x4|i0=2 i1=0 i2=1 i3=1;3x4,3x2|i0=3 i1=1 i3=1;4|i0=0 i1=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* fmax, fmin: NaN-ignoring maximum and minimum                           */
/* ===================================================================== */

/* where(a >= b or isnan(b), a, b) (<= for fmin): the NaN operand loses, a
 * tie goes to a (PyTorch's choice), two NaNs give a's NaN; the gradient goes
 * to the chosen operand (where's). */
static tg_tensor *fminmax(const char *who, tg_tensor *a, tg_tensor *b, bool is_max) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: an input is NULL", who);
    if (need_num(who, a, b)) return NULL;
    tg_tensor *cond = is_max ? tg_ge(a, b) : tg_le(a, b);
    if (cond && tg_dtype_is_float(b->dtype)) cond = take2(tg_logical_or, cond, tg_isnan(b));
    tg_tensor *y = cond ? tg_where(cond, a, b) : NULL;
    tg_tensor_release(cond);
    return y;
}
tg_tensor *tg_fmax(tg_tensor *a, tg_tensor *b) { return fminmax("fmax", a, b, true); }
tg_tensor *tg_fmin(tg_tensor *a, tg_tensor *b) { return fminmax("fmin", a, b, false); }
APPLY2(fmax)
APPLY2(fmin)
TG_DEFINE_OP(fmax, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a if a >= b or isnan(b) else b (a NaN is ignored)",
             .forward_tex = "c = \\begin{cases} a & a \\ge b \\text{ or } b = \\text{NaN} \\\\ b & \\text{otherwise} \\end{cases}",
             .vjp = "da = dc where a was chosen, db = dc elsewhere (ties to a)",
             .vjp_tex = "\\bar a = \\bar c\\, [c \\leftarrow a],\\quad \\bar b = \\bar c\\, [c \\leftarrow b]",
             .doc = "Elementwise maximum ignoring NaN (NumPy's fmax): a NaN loses to a number; the gradient goes "
                    "to the chosen operand, a tie to a; a composite of ge, isnan and where.",
             .apply = apply_fmax, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(fmin, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a if a <= b or isnan(b) else b (a NaN is ignored)",
             .forward_tex = "c = \\begin{cases} a & a \\le b \\text{ or } b = \\text{NaN} \\\\ b & \\text{otherwise} \\end{cases}",
             .vjp = "da = dc where a was chosen, db = dc elsewhere (ties to a)",
             .vjp_tex = "\\bar a = \\bar c\\, [c \\leftarrow a],\\quad \\bar b = \\bar c\\, [c \\leftarrow b]",
             .doc = "Elementwise minimum ignoring NaN (NumPy's fmin): a NaN loses to a number; the gradient goes "
                    "to the chosen operand, a tie to a; a composite of le, isnan and where.",
             .apply = apply_fmin, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* logaddexp2, sinc, deg2rad, rad2deg                                     */
/* ===================================================================== */

#define LN2_D 0.693147180559945309417232121458176568

/* log2(2^a + 2^b) = logaddexp(a ln 2, b ln 2) / ln 2 */
tg_tensor *tg_logaddexp2(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "logaddexp2: an input is NULL");
    if (need_float("logaddexp2", a, b)) return NULL;
    tg_tensor *y = take2(tg_logaddexp, tg_mul_scalar(a, LN2_D), tg_mul_scalar(b, LN2_D));
    TAKE(y, tg_mul_scalar(y, 1.0 / LN2_D));
    return y;
}
APPLY2(logaddexp2)
TG_DEFINE_OP(logaddexp2, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "c = log2(2^a + 2^b) = logaddexp(a ln2, b ln2) / ln2",
             .forward_tex = "c = \\log_2(2^{a} + 2^{b})",
             .vjp = "da = dc * 2^(a - c), db = dc * 2^(b - c)",
             .vjp_tex = "\\bar a = \\bar c \\odot 2^{a - c},\\quad \\bar b = \\bar c \\odot 2^{b - c}",
             .doc = "log2(2**a + 2**b) without overflow, with broadcasting; a composite of logaddexp and "
                    "scalings by ln 2.",
             .apply = apply_logaddexp2, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* sinc(x) = sin(pi x) / (pi x), 1 at 0.  Below |x| < 1e-3 the series
 * 1 - t/6 + t^2/120 (t = (pi x)^2) is used instead (its error, t^3/5040,
 * is below 1e-18 there): the quotient's own branch sees a safe x = 1 there,
 * so neither branch makes a NaN that where would multiply by zero, and the
 * first and second derivatives at 0 (0 and -pi^2/3) are the series'. */
tg_tensor *tg_sinc(tg_tensor *x) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "sinc: x is NULL");
    if (need_float("sinc", x, NULL)) return NULL;
    tg_tensor *small = take2(tg_lt, tg_abs(x), tg_tensor_scalar(1e-3, x->dtype));
    tg_tensor *one = small ? tg__ones_like(x) : NULL;
    tg_tensor *xs = one ? tg_where(small, one, x) : NULL; /* x, or 1 where it is small */
    tg_tensor_release(one);
    tg_tensor *px = xs ? tg_mul_scalar(xs, TG_PI) : NULL;
    tg_tensor_release(xs);
    tg_tensor *q = px ? take2(tg_div, tg_sin(px), (tg_tensor_retain(px), px)) : NULL;
    tg_tensor_release(px);
    tg_tensor *u = q ? tg_mul_scalar(x, TG_PI) : NULL;
    tg_tensor *t = u ? tg_mul(u, u) : NULL;
    tg_tensor_release(u);
    /* 1 + t (-1/6 + t/120) */
    tg_tensor *s = t ? tg_mul_scalar(t, 1.0 / 120.0) : NULL;
    TAKE(s, tg_add_scalar(s, -1.0 / 6.0));
    TAKE(s, tg_mul(s, t));
    TAKE(s, tg_add_scalar(s, 1.0));
    tg_tensor_release(t);
    tg_tensor *y = s ? tg_where(small, s, q) : NULL;
    tg_tensor_release(s);
    tg_tensor_release(q);
    tg_tensor_release(small);
    return y;
}
APPLY1(sinc)
TG_DEFINE_OP(sinc, .arity = 1, .composite = true, .diff_mask = 1,
             .dtypes = "float32,float64",
             .forward = "y = sin(pi x) / (pi x), 1 at x = 0 (a series for |x| < 1e-3)",
             .forward_tex = "y = \\frac{\\sin \\pi x}{\\pi x}",
             .vjp = "dx = dy * (cos(pi x) - y) / x, 0 at x = 0",
             .vjp_tex = "\\bar x = \\bar y \\odot \\frac{\\cos \\pi x - y}{x}",
             .doc = "Normalised sinc (NumPy's): sin(pi x) / (pi x), 1 at 0, with the right first and second "
                    "derivatives at 0; a composite of sin, div and where.",
             .apply = apply_sinc, .examples = "3x4;T2x3;~5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* deg2rad, rad2deg: a scaling; int64 computes in float64 (NumPy's) */
static tg_tensor *scale_angle(const char *who, tg_tensor *x, double k) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: x is NULL", who);
    if (need_num(who, x, NULL)) return NULL;
    if (!tg_dtype_is_float(x->dtype)) {
        tg_tensor *f = tg_cast(x, TG_FLOAT64);
        TAKE(f, tg_mul_scalar(f, k));
        return f;
    }
    return tg_mul_scalar(x, k);
}
tg_tensor *tg_deg2rad(tg_tensor *x) { return scale_angle("deg2rad", x, TG_PI / 180.0); }
tg_tensor *tg_rad2deg(tg_tensor *x) { return scale_angle("rad2deg", x, 180.0 / TG_PI); }
APPLY1(deg2rad)
APPLY1(rad2deg)
TG_DEFINE_OP(deg2rad, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = x * pi / 180", .forward_tex = "y = \\frac{\\pi}{180} x",
             .vjp = "dx = dy * pi / 180", .vjp_tex = "\\bar x = \\frac{\\pi}{180} \\bar y",
             .doc = "Degrees to radians (NumPy's deg2rad, alias radians); a composite of mul.",
             .apply = apply_deg2rad, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(rad2deg, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = x * 180 / pi", .forward_tex = "y = \\frac{180}{\\pi} x",
             .vjp = "dx = dy * 180 / pi", .vjp_tex = "\\bar x = \\frac{180}{\\pi} \\bar y",
             .doc = "Radians to degrees (NumPy's rad2deg, alias degrees); a composite of mul.",
             .apply = apply_rad2deg, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
