/*
 * shape.c -- shape and indexing ops of issue 14: flip, roll, tril/triu,
 * diagonal/diag/trace, repeat/tile, repeat_interleave, unflatten,
 * nonzero, masked_fill, masked_select, scatter.
 *
 * Most of them are composites (.composite = true): made of the movement ops
 * of movement.c (slice, reshape, permute, broadcast_to, concat, pad,
 * index_select) and where, whose entries carry the gradient, so second order
 * follows without a VJP of their own.  scatter has its own kernel and a VJP
 * written with ops (scatter and gather); nonzero is not differentiable.
 *
 * Masks and conditions are read "nonzero means true" through
 * tg_tensor_get_flat, which works for any dtype (bool masks included).
 */
#include "ops_internal.h"

#include <math.h>

#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------ */


/* f(x) releasing x (chains of composite steps); NULL if x is NULL. */
#define TAKE(var, expr)                \
    do {                               \
        tg_tensor *old_ = (var);       \
        (var) = old_ ? (expr) : NULL;  \
        tg_tensor_release(old_);       \
    } while (0)

static tg_tensor *retained(tg_tensor *x) {
    tg_tensor_retain(x);
    return x;
}

static tg_status require_dtype(const char *who, const tg_tensor *x, bool allow_int) {
    if (tg_dtype_is_float(x->dtype) || (allow_int && x->dtype == TG_INT64)) return TG_OK;
    return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32, float64%s)",
                        who, tg_dtype_name(x->dtype), allow_int ? " or int64" : "");
}

/* ===================================================================== */
/* flip                                                                   */
/* ===================================================================== */

tg_tensor *tg_flip(tg_tensor *x, const int64_t *axes, int naxes) {
    uint32_t mask = 0;
    if (tg__axes_mask("flip", naxes < 0 ? NULL : axes, naxes < 0 ? 0 : naxes, x->ndim, &mask)) return NULL;
    if (naxes < 0) mask = x->ndim ? (uint32_t)((1ull << x->ndim) - 1) : 0;
    int64_t starts[TG_MAX_DIMS], stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        bool f = mask & (1u << d);
        starts[d] = f ? x->shape[d] - 1 : 0;
        stops[d] = f ? -x->shape[d] - 1 : x->shape[d]; /* down through index 0 */
        steps[d] = f ? -1 : 1;
    }
    return tg_slice(x, starts, stops, steps, 0);
}
static tg_tensor *apply_flip(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_flip(in[0], p->axes, p->naxes);
}
TG_DEFINE_OP(flip, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x[::-1] along the given axes (all if none)",
             .forward_tex = "y_{i} = x_{n-1-i} \\text{ along the axes}",
             .vjp = "dx = flip(dy, axes)", .vjp_tex = "\\bar x = \\operatorname{flip}(\\bar y)",
             .doc = "Reverse the order of elements along axes (a view, a slice of step -1).",
             .apply = apply_flip, .examples = "3x4|axes=1;T3x4|axes=0,1;2x3x4|axes=-1,0;3x4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* roll                                                                   */
/* ===================================================================== */

/* y = concat(x[n-s:], x[:n-s]) along ax, s = shift mod n */
static tg_tensor *roll1(tg_tensor *x, int64_t ax, int64_t shift) {
    int64_t n = x->shape[ax];
    if (n == 0) return retained(x);
    int64_t s = shift % n;
    if (s < 0) s += n;
    if (s == 0) return tg__slice_axis(x, ax, 0, n, 1); /* a recorded copy-free step */
    tg_tensor *parts[2] = {tg__slice_axis(x, ax, n - s, n, 1), NULL};
    parts[1] = parts[0] ? tg__slice_axis(x, ax, 0, n - s, 1) : NULL;
    tg_tensor *y = parts[1] ? tg_concat(2, parts, ax) : NULL;
    tg_tensor_release(parts[0]);
    tg_tensor_release(parts[1]);
    return y;
}

tg_tensor *tg_roll(tg_tensor *x, const int64_t *shifts, const int64_t *axes, int naxes) {
    if (naxes < 0) { /* no axes: roll the flattened tensor, keep the shape */
        if (x->ndim == 0) return tg_reshape(x, 0, NULL);
        int64_t all = x->numel;
        tg_tensor *f = tg_reshape(x, 1, &all);
        TAKE(f, roll1(f, 0, shifts[0]));
        TAKE(f, tg_reshape(f, x->ndim, x->shape));
        return f;
    }
    if (naxes == 0) return TG_FAIL(TG_ERR_VALUE, "roll: `shifts` and `axis` are empty");
    tg_tensor *y = retained(x);
    for (int i = 0; i < naxes && y; i++) {
        int64_t ax;
        if (tg__norm_axis("roll", axes[i], x->ndim, &ax)) {
            tg_tensor_release(y);
            return NULL;
        }
        TAKE(y, roll1(y, ax, shifts[i]));
    }
    if (y == x) TAKE(y, tg_reshape(y, x->ndim, x->shape)); /* (empty axes) a new tensor all the same */
    return y;
}
static tg_tensor *apply_roll(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_roll(in[0], p->ints, p->axes, p->naxes);
}
TG_DEFINE_OP(roll, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y[(i + shift) mod n] = x[i] along each axis (flattened if none)",
             .forward_tex = "y_{(i + s) \\bmod n} = x_i",
             .vjp = "dx = roll(dy, -shifts)", .vjp_tex = "\\bar x_i = \\bar y_{(i + s) \\bmod n}",
             .doc = "Rotate elements along axes (ints = shifts, one per axis; the flat tensor if no axes).",
             .apply = apply_roll,
             .examples = "3x4|ints=1 axes=1;T3x4|ints=-5,2 axes=0,1;2x3x4|ints=7;3x4|ints=4 axes=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* tril / triu                                                            */
/* ===================================================================== */

static tg_tensor *tri(const char *who, tg_tensor *x, int64_t k, bool lower) {
    if (x->ndim < 2)
        return TG_FAIL(TG_ERR_VALUE, "%s: input must have at least 2 dimensions, got shape %s", who, tg__shp(x));
    if (require_dtype(who, x, true)) return NULL;
    int64_t n = x->shape[x->ndim - 2], m = x->shape[x->ndim - 1];
    /* An empty x (a batch axis of 0) can have matrices of any size: its mask
     * is then 1 x 1 (broadcast, never read), not n x m (found by the fuzz
     * driver: (0, 7e4, 7e4) built a 39 GB mask and filled it for minutes). */
    if (x->numel == 0) n = m = 1;
    int64_t sh[2] = {n, m};
    tg_tensor *mask = tg_tensor_zeros(2, sh, TG_FLOAT64);
    if (!mask) return NULL;
    double *md = tg_tensor_data(mask);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            int64_t dj = j - i; /* j - i <= k (lower), >= k (upper); no overflow for sizes that exist */
            md[i * m + j] = lower ? (dj <= k) : (dj >= k);
        }
    tg_tensor *zero = tg_tensor_scalar(0, x->dtype);
    tg_tensor *y = zero ? tg_where(mask, x, zero) : NULL;
    tg_tensor_release(zero);
    tg_tensor_release(mask);
    return y;
}
tg_tensor *tg_tril(tg_tensor *x, int64_t k) { return tri("tril", x, k, true); }
tg_tensor *tg_triu(tg_tensor *x, int64_t k) { return tri("triu", x, k, false); }
static tg_tensor *apply_tril(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_tril(in[0], p->i[0]);
}
static tg_tensor *apply_triu(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_triu(in[0], p->i[0]);
}
TG_DEFINE_OP(tril, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y[..., i, j] = x[..., i, j] if j - i <= k else 0",
             .forward_tex = "y_{ij} = x_{ij}\\,[j - i \\le k]",
             .vjp = "dx = tril(dy, k)", .vjp_tex = "\\bar x = \\operatorname{tril}(\\bar y, k)",
             .doc = "Lower triangle of the last two dims (i0 = diagonal k), zeros elsewhere; made with where.",
             .apply = apply_tril, .examples = "4x5;T4x3|i0=1;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(triu, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y[..., i, j] = x[..., i, j] if j - i >= k else 0",
             .forward_tex = "y_{ij} = x_{ij}\\,[j - i \\ge k]",
             .vjp = "dx = triu(dy, k)", .vjp_tex = "\\bar x = \\operatorname{triu}(\\bar y, k)",
             .doc = "Upper triangle of the last two dims (i0 = diagonal k), zeros elsewhere; made with where.",
             .apply = apply_triu, .examples = "4x5;T4x3|i0=-1;2x3x4|i0=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* diagonal / diag / trace                                                */
/* ===================================================================== */

/* axis1 and axis2 moved to the end, flattened together, sliced with step
 * m + 1 from the offset's first element: the diagonal as the last axis. */
tg_tensor *tg_diagonal(tg_tensor *x, int64_t offset, int64_t axis1, int64_t axis2) {
    if (x->ndim < 2)
        return TG_FAIL(TG_ERR_VALUE, "diagonal: input must have at least 2 dimensions, got shape %s", tg__shp(x));
    int64_t a1, a2;
    if (tg__norm_axis("diagonal", axis1, x->ndim, &a1) || tg__norm_axis("diagonal", axis2, x->ndim, &a2))
        return NULL;
    if (a1 == a2)
        return TG_FAIL(TG_ERR_VALUE, "diagonal: axis1 and axis2 cannot be the same (both are %lld, shape %s)",
                       (long long)a1, tg__shp(x));
    int64_t perm[TG_MAX_DIMS], sh[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != a1 && d != a2) sh[k] = x->shape[d], perm[k++] = d;
    perm[k] = a1;
    perm[k + 1] = a2;
    int64_t n = x->shape[a1], m = x->shape[a2], len, start;
    if (offset >= 0) {
        len = offset >= m ? 0 : (n < m - offset ? n : m - offset);
        start = offset;
    } else if (offset <= -n) { /* (compared, not negated: -offset overflows for -2**63) */
        len = 0;
        start = 0;
    } else {
        len = n + offset < m ? n + offset : m;
        start = -offset * m;
    }
    sh[k] = n * m;
    tg_tensor *y = tg_permute(x, perm);
    TAKE(y, tg_reshape(y, k + 1, sh));
    if (len == 0) TAKE(y, tg__slice_axis(y, k, 0, 0, 1));
    else TAKE(y, tg__slice_axis(y, k, start, start + (len - 1) * (m + 1) + 1, m + 1));
    return y;
}
static tg_tensor *apply_diagonal(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_diagonal(in[0], p->i[0], p->i[1], p->i[2]);
}
TG_DEFINE_OP(diagonal, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y[..., i] = x[..., i, i + offset] (axis1, axis2 -> last axis)",
             .forward_tex = "y_i = x_{i,\\,i+k}",
             .vjp = "dx = zeros(x.shape) with dy written on the diagonal",
             .vjp_tex = "\\bar x_{i,\\,i+k} = \\bar y_i",
             .doc = "A diagonal of each matrix of axes (i1, i2) with offset i0, as the last axis (a view).",
             .apply = apply_diagonal,
             .examples = "4x5|i1=0 i2=1;T4x5|i0=1 i1=0 i2=1;2x3x4|i0=-1 i1=-1 i2=1;3x4|i0=9 i1=0 i2=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_diag(tg_tensor *x, int64_t k) {
    if (x->ndim == 2) return tg_diagonal(x, k, 0, 1);
    if (x->ndim != 1)
        return TG_FAIL(TG_ERR_VALUE, "diag: input must be 1-D (build a matrix) or 2-D (take a diagonal), got shape %s",
                       tg__shp(x));
    if (k == INT64_MIN) /* |k| is not an int64 */
        return TG_FAIL(TG_ERR_VALUE, "diag: the offset %lld is too large", (long long)k);
    int64_t n = x->shape[0], sh[2] = {n, 1}, flat = n * (n + 1), nn = n * n, a = k < 0 ? -k : k;
    if (n > 3037000499LL || a > INT64_MAX / 4 - n)
        return TG_FAIL(TG_ERR_VALUE, "diag: a %llu x %llu result (offset %lld) is too large",
                       (unsigned long long)n + (unsigned long long)a, /* n + a overflows int64 */
                       (unsigned long long)n + (unsigned long long)a, (long long)k);
    /* (n, 1) padded to (n, n + 1), flattened, cut to n * n: x[i] lands at i * (n + 1) */
    int64_t pads[4] = {0, 0, 0, n};
    tg_tensor *y = tg_reshape(x, 2, sh);
    TAKE(y, tg_pad(y, pads, 0));
    TAKE(y, tg_reshape(y, 1, &flat));
    TAKE(y, tg__slice_axis(y, 0, 0, nn, 1));
    sh[0] = sh[1] = n;
    TAKE(y, tg_reshape(y, 2, sh));
    if (k != 0) {
        int64_t p2[4] = {k < 0 ? a : 0, k > 0 ? a : 0, k > 0 ? a : 0, k < 0 ? a : 0};
        TAKE(y, tg_pad(y, p2, 0));
    }
    return y;
}
static tg_tensor *apply_diag(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_diag(in[0], p->i[0]);
}
TG_DEFINE_OP(diag, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "1-D x: y = matrix with x on diagonal k; 2-D x: y = diagonal(x, k)",
             .forward_tex = "y_{i,\\,i+k} = x_i \\ \\text{or}\\ y_i = x_{i,\\,i+k}",
             .vjp = "dx = diagonal(dy, k) (1-D x), or dy on the diagonal of zeros (2-D x)",
             .vjp_tex = "\\bar x = \\operatorname{diag}(\\bar y, k)",
             .doc = "NumPy's diag: a 1-D tensor becomes a diagonal matrix (offset i0), a matrix gives its diagonal.",
             .apply = apply_diag, .examples = "4;5|i0=2;3|i0=-1;T4x5|i0=1;4x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_trace(tg_tensor *x, int64_t offset, int64_t axis1, int64_t axis2) {
    tg_tensor *d = tg_diagonal(x, offset, axis1, axis2);
    int64_t last = -1;
    TAKE(d, tg_sum(d, &last, 1, false));
    return d;
}
static tg_tensor *apply_trace(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_trace(in[0], p->i[0], p->i[1], p->i[2]);
}
TG_DEFINE_OP(trace, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = sum_i x[..., i, i + offset]", .forward_tex = "y = \\sum_i x_{i,\\,i+k}",
             .vjp = "dx = zeros(x.shape) with dy on the diagonal", .vjp_tex = "\\bar x_{i,\\,i+k} = \\bar y",
             .doc = "Sum of a diagonal (offset i0, axes i1, i2), NumPy's trace.",
             .apply = apply_trace, .examples = "4x4|i1=0 i2=1;T3x5|i0=1 i1=0 i2=1;2x3x3|i1=1 i2=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* repeat (PyTorch) / tile (NumPy)                                        */
/* ===================================================================== */

/* x already has len(reps) dims: every axis d with reps[d] > 1 becomes
 * reps[d] copies of itself (a broadcast of a new axis in front of it, then
 * merged: the copies follow each other). */
static tg_tensor *tile_same_ndim(const char *who, tg_tensor *x, const int64_t *reps) {
    tg_tensor *y = retained(x);
    int nd = x->ndim;
    for (int d = 0; d < nd && y; d++) {
        if (reps[d] == 1) continue;
        int64_t sh[TG_MAX_DIMS], bs[TG_MAX_DIMS], out[TG_MAX_DIMS];
        memcpy(out, y->shape, sizeof out);
        if (__builtin_mul_overflow(y->shape[d], reps[d], &out[d])) {
            tg_tensor_release(y);
            return TG_FAIL(TG_ERR_VALUE, "%s: repeating shape %s by %lld on dim %d overflows", who,
                           tg__shp(x), (long long)reps[d], d);
        }
        if (nd == TG_MAX_DIMS) { /* no room for a new axis: reps[d] copies joined */
            if (reps[d] > 1 << 16) {
                tg_tensor_release(y);
                return TG_FAIL(TG_ERR_VALUE, "%s: %lld repeats of an %d-dim tensor are too many", who,
                               (long long)reps[d], nd);
            }
            tg_tensor **cs = malloc((size_t)(reps[d] ? reps[d] : 1) * sizeof *cs);
            if (!cs) {
                tg_tensor_release(y);
                return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory", who);
            }
            for (int64_t r = 0; r < reps[d]; r++) cs[r] = y;
            if (reps[d] == 0) TAKE(y, tg__slice_axis(y, d, 0, 0, 1));
            else TAKE(y, tg_concat((int)reps[d], cs, d));
            free(cs);
            continue;
        }
        int k = 0;
        for (int i = 0; i < nd; i++) {
            if (i == d) {
                sh[k] = 1;
                bs[k++] = reps[d];
            }
            sh[k] = y->shape[i];
            bs[k++] = y->shape[i];
        }
        TAKE(y, tg_reshape(y, nd + 1, sh));
        TAKE(y, tg_broadcast_to(y, nd + 1, bs));
        TAKE(y, tg_reshape(y, nd, out));
    }
    return y;
}

/* x with leading size-1 dims up to nd */
static tg_tensor *lead_ones(tg_tensor *x, int nd) {
    int64_t sh[TG_MAX_DIMS];
    int lead = nd - x->ndim;
    for (int i = 0; i < lead; i++) sh[i] = 1;
    for (int i = 0; i < x->ndim; i++) sh[lead + i] = x->shape[i];
    return tg_reshape(x, nd, sh);
}

static tg_status check_reps(const char *who, const int64_t *reps, int nreps) {
    if (nreps > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE, "%s: %d repeats give more than %d dimensions", who, nreps, TG_MAX_DIMS);
    if (nreps < 0) /* (from the generic call's i0) */
        return tg_error_set(TG_ERR_VALUE, "%s: the number of repeats must be >= 0, got %d", who, nreps);
    for (int i = 0; i < nreps; i++)
        if (reps[i] < 0)
            return tg_error_set(TG_ERR_VALUE, "%s: repeats must be >= 0, got %lld for dim %d", who,
                                (long long)reps[i], i);
    return TG_OK;
}

tg_tensor *tg_repeat(tg_tensor *x, const int64_t *reps, int nreps) {
    if (check_reps("repeat", reps, nreps)) return NULL;
    if (nreps < x->ndim)
        return TG_FAIL(TG_ERR_VALUE,
                       "repeat: the number of repeats (%d) cannot be smaller than the number of "
                       "dimensions of the tensor (shape %s)", nreps, tg__shp(x));
    tg_tensor *y = lead_ones(x, nreps);
    TAKE(y, tile_same_ndim("repeat", y, reps));
    return y;
}
tg_tensor *tg_tile(tg_tensor *x, const int64_t *reps, int nreps) {
    if (check_reps("tile", reps, nreps)) return NULL;
    int64_t r[TG_MAX_DIMS];
    int nd = nreps > x->ndim ? nreps : x->ndim;
    for (int i = 0; i < nd; i++) r[i] = i < nd - nreps ? 1 : reps[i - (nd - nreps)];
    tg_tensor *y = lead_ones(x, nd);
    TAKE(y, tile_same_ndim("tile", y, r));
    return y;
}
static tg_tensor *apply_repeat(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_repeat(in[0], p->ints, tg__int_param(p->i[0]));
}
static tg_tensor *apply_tile(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_tile(in[0], p->ints, tg__int_param(p->i[0]));
}
TG_DEFINE_OP(repeat, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x copied reps[d] times along each dim d (PyTorch's Tensor.repeat)",
             .forward_tex = "y_{i} = x_{i \\bmod \\text{shape}(x)}",
             .vjp = "dx = sum of dy over the copies", .vjp_tex = "\\bar x = \\sum_{\\text{copies}} \\bar y",
             .doc = "PyTorch's Tensor.repeat (ints = repeats, i0 = how many; at least x.ndim).",
             .apply = apply_repeat,
             .examples = "3x4|ints=2,3 i0=2;T2x3|ints=2,1,2 i0=3;4|ints=1,0 i0=2;2x3|ints=1,1 i0=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(tile, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x copied reps times (NumPy's tile: shorter reps get leading 1s)",
             .forward_tex = "y_{i} = x_{i \\bmod \\text{shape}(x)}",
             .vjp = "dx = sum of dy over the copies", .vjp_tex = "\\bar x = \\sum_{\\text{copies}} \\bar y",
             .doc = "NumPy's tile (ints = reps, i0 = how many).", .apply = apply_tile,
             .examples = "3x4|ints=2 i0=1;T2x3|ints=2,1,2 i0=3;4|ints=3,2 i0=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* repeat_interleave                                                      */
/* ===================================================================== */

/* Each slice j along axis repeated repeats[j] times (one count for all when
 * nrep == 1); axis < 0 with !has_axis: the flattened tensor.  One count:
 * a broadcast copied by reshape; counts per slice: an index_select with the
 * index [0]*r0 + [1]*r1 + ... (as long as the output along the axis). */
tg_tensor *tg_repeat_interleave(tg_tensor *x, const int64_t *repeats, int64_t nrep, int64_t axis, bool has_axis) {
    tg_tensor *y;
    int64_t ax = 0;
    if (!has_axis) {
        int64_t all = x->numel;
        y = tg_reshape(x, 1, &all);
    } else {
        if (x->ndim == 0) return TG_FAIL(TG_ERR_INDEX, "repeat_interleave: a 0-d tensor has no axis %lld", (long long)axis);
        if (tg__norm_axis("repeat_interleave", axis, x->ndim, &ax)) return NULL;
        y = retained(x);
    }
    if (!y) return NULL;
    int64_t n = y->shape[ax], total = 0;
    if (nrep != 1 && nrep != n) {
        tg_tensor_release(y);
        return TG_FAIL(TG_ERR_VALUE,
                       "repeat_interleave: repeats must have one count or one per element along the "
                       "axis (%lld of shape %s), got %lld", (long long)n, tg__shp(x), (long long)nrep);
    }
    for (int64_t j = 0; j < nrep; j++) {
        int64_t add;
        if (repeats[j] < 0 || __builtin_mul_overflow(repeats[j], nrep == 1 ? n : 1, &add) ||
            __builtin_add_overflow(total, add, &total)) {
            tg_tensor_release(y);
            return TG_FAIL(TG_ERR_VALUE, "repeat_interleave: repeats must be >= 0 and not overflow, got %lld",
                           (long long)repeats[j]);
        }
    }
    if (nrep == 1 && y->ndim < TG_MAX_DIMS) {
        /* One count r for every slice: a new axis of size 1 after ax,
         * broadcast to r and merged into ax by reshape (which copies).  No
         * index: for a flattened float32 tensor the int64 index would take
         * twice the output's bytes. */
        int nd = y->ndim;
        int64_t s1[TG_MAX_DIMS], s2[TG_MAX_DIMS], s3[TG_MAX_DIMS];
        for (int i = 0, k = 0; i < nd; i++) {
            s3[i] = i == ax ? total : y->shape[i];
            s1[k] = s2[k] = y->shape[i];
            k++;
            if (i == ax) {
                s1[k] = 1;
                s2[k] = repeats[0];
                k++;
            }
        }
        TAKE(y, tg_reshape(y, nd + 1, s1));
        TAKE(y, tg_broadcast_to(y, nd + 1, s2));
        TAKE(y, tg_reshape(y, nd, s3));
        /* n == 1 or r <= 1: the reshape is a view of x; a new tensor is owed */
        if (y && y->storage == x->storage) TAKE(y, tg_cast(y, y->dtype));
        return y;
    }
    tg_tensor *idx = tg_tensor_empty(1, &total, TG_INT64);
    if (!idx) {
        tg_tensor_release(y);
        return NULL;
    }
    int64_t *ix = tg_tensor_data(idx), k = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < repeats[nrep == 1 ? 0 : j]; r++) ix[k++] = j;
    TAKE(y, tg_index_select(y, ax, idx));
    tg_tensor_release(idx);
    return y;
}
static tg_tensor *apply_repeat_interleave(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_repeat_interleave(in[0], p->ints, p->i[0], p->i[1], p->i[2] != 0);
}
TG_DEFINE_OP(repeat_interleave, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x[[0]*r0 + [1]*r1 + ...] along axis (flattened if none)",
             .forward_tex = "y = x[\\ldots, [0]^{r_0}[1]^{r_1}\\cdots, \\ldots]",
             .vjp = "dx = index_add of dy (each slice summed over its repeats)",
             .vjp_tex = "\\bar x_j = \\sum_{r < r_j} \\bar y_{(j, r)}",
             .doc = "Repeat each element (or slice along i1 when i2=1) ints[j] times (i0 = number of counts).",
             .apply = apply_repeat_interleave,
             .examples = "3x4|ints=2 i0=1 i1=1 i2=1;T3x4|ints=1,0,3 i0=3 i1=0 i2=1;2x3|ints=2 i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* unflatten                                                              */
/* ===================================================================== */

tg_tensor *tg_unflatten(tg_tensor *x, int64_t axis, int nsizes, const int64_t *sizes) {
    int64_t ax;
    if (x->ndim == 0) return TG_FAIL(TG_ERR_INDEX, "unflatten: a 0-d tensor has no axis %lld", (long long)axis);
    if (tg__norm_axis("unflatten", axis, x->ndim, &ax)) return NULL;
    if (nsizes < 1 || x->ndim - 1 + nsizes > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "unflatten: %d sizes for a %d-dim tensor (need 1 to %d)", nsizes, x->ndim,
                       TG_MAX_DIMS - x->ndim + 1);
    int64_t sh[TG_MAX_DIMS], prod = 1;
    int k = 0, infer = -1;
    for (int d = 0; d < ax; d++) sh[k++] = x->shape[d];
    for (int i = 0; i < nsizes; i++) {
        if (sizes[i] == -1 && infer < 0) infer = k;
        else if (sizes[i] < 0)
            return TG_FAIL(TG_ERR_VALUE, "unflatten: invalid size %lld in %s", (long long)sizes[i],
                           tg__shp2(nsizes, sizes));
        else if (__builtin_mul_overflow(prod, sizes[i], &prod))
            return TG_FAIL(TG_ERR_VALUE, "unflatten: sizes %s overflow", tg__shp2(nsizes, sizes));
        sh[k++] = sizes[i];
    }
    int64_t n = x->shape[ax];
    if (infer >= 0) {
        if (prod == 0 || n % prod)
            return TG_FAIL(TG_ERR_VALUE, "unflatten: cannot split axis %lld of size %lld into %s",
                           (long long)ax, (long long)n, tg__shp2(nsizes, sizes));
        sh[infer] = n / prod;
    } else if (prod != n) {
        return TG_FAIL(TG_ERR_VALUE,
                       "unflatten: sizes %s multiply to %lld, but axis %lld of shape %s has size %lld",
                       tg__shp2(nsizes, sizes), (long long)prod, (long long)ax, tg__shp(x), (long long)n);
    }
    for (int d = (int)ax + 1; d < x->ndim; d++) sh[k++] = x->shape[d];
    return tg_reshape(x, k, sh);
}
static tg_tensor *apply_unflatten(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_unflatten(in[0], p->i[0], p->ndim, p->shape);
}
TG_DEFINE_OP(unflatten, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x with axis split into sizes (a reshape)",
             .forward_tex = "y = \\operatorname{reshape}(x)",
             .vjp = "dx = reshape(dy, x.shape)", .vjp_tex = "\\bar x = \\operatorname{reshape}(\\bar y, \\text{shape}(x))",
             .doc = "Split one axis (i0) into several (shape = sizes, one may be -1): a reshape.",
             .apply = apply_unflatten, .examples = "6x4|i0=0 shape=2,3;T4x6|i0=-1 shape=3,-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* nonzero / masked_select / masked_fill                                  */
/* ===================================================================== */

tg_tensor *tg_nonzero(tg_tensor *x) {
    int64_t count = 0;
    for (int64_t i = 0; i < x->numel; i++) count += tg_tensor_get_flat(x, i) != 0;
    int64_t sh[2] = {count, x->ndim};
    tg_tensor *out = tg_tensor_empty(2, sh, TG_INT64);
    if (!out) return NULL;
    int64_t *o = tg_tensor_data(out), pos[TG_MAX_DIMS] = {0};
    for (int64_t i = 0; i < x->numel; i++) {
        if (tg_tensor_get_flat(x, i) != 0) {
            memcpy(o, pos, (size_t)x->ndim * sizeof *o);
            o += x->ndim;
        }
        for (int d = x->ndim - 1; d >= 0; d--) {
            if (++pos[d] < x->shape[d]) break;
            pos[d] = 0;
        }
    }
    tg_entry *e;
    return tg__finish(&tg_opdef_nonzero, 1, &x, out, &e);
}
static tg_tensor *apply_nonzero(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    (void)p;
    return tg_nonzero(in[0]);
}
TG_DEFINE_OP(nonzero, .arity = 1, .dtypes = "float32,float64,int64 -> int64",
             .forward = "y = the indices (one row each) of the non-zero elements of x, in C order",
             .forward_tex = "y = \\{\\, i : x_i \\ne 0 \\,\\}", .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Indices of the non-zero elements as an int64 (count, ndim) tensor (PyTorch's nonzero).",
             .apply = apply_nonzero, .examples = "b3x4;bT3x4;b5;b2x3x2");

/* the flat indices of mask's non-zero elements, as an int64 tensor */
static tg_tensor *flat_true(const tg_tensor *mask) {
    int64_t count = 0;
    for (int64_t i = 0; i < mask->numel; i++) count += tg_tensor_get_flat(mask, i) != 0;
    tg_tensor *idx = tg_tensor_empty(1, &count, TG_INT64);
    if (!idx) return NULL;
    int64_t *ix = tg_tensor_data(idx), k = 0;
    for (int64_t i = 0; i < mask->numel; i++)
        if (tg_tensor_get_flat(mask, i) != 0) ix[k++] = i;
    return idx;
}

tg_tensor *tg_masked_select(tg_tensor *x, tg_tensor *mask) {
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes("masked_select", x->ndim, x->shape, mask->ndim, mask->shape, &nd, sh)) return NULL;
    tg_tensor *m = tg_broadcast_to(mask, nd, sh);
    tg_tensor *mc = m ? tg__copy(m) : NULL; /* no graph: the mask is a constant */
    tg_tensor_release(m);
    tg_tensor *idx = mc ? flat_true(mc) : NULL;
    tg_tensor_release(mc);
    if (!idx) return NULL;
    int64_t all = 1;
    for (int d = 0; d < nd; d++) all *= sh[d];
    tg_tensor *y = tg_broadcast_to(x, nd, sh);
    TAKE(y, tg_reshape(y, 1, &all));
    TAKE(y, tg_index_select(y, 0, idx));
    tg_tensor_release(idx);
    return y;
}
static tg_tensor *apply_masked_select(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    (void)p;
    return tg_masked_select(in[0], in[1]);
}
TG_DEFINE_OP(masked_select, .arity = 2, .composite = true, .diff_mask = 1,
             .dtypes = "float32,float64,int64; mask any dtype",
             .forward = "y = x[mask != 0] (broadcast together, flattened, 1-D)",
             .forward_tex = "y = (x_i)_{m_i \\ne 0}",
             .vjp = "dx = dy scattered back to the selected positions, zeros elsewhere",
             .vjp_tex = "\\bar x_{i_k} = \\bar y_k",
             .doc = "The elements of x where the mask is non-zero, as a 1-D tensor (x and mask broadcast).",
             .apply = apply_masked_select, .examples = "3x4,b3x4;T3x4,b4;4,b3x4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_masked_fill(tg_tensor *x, tg_tensor *mask, double value) {
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes("masked_fill", x->ndim, x->shape, mask->ndim, mask->shape, &nd, sh)) return NULL;
    if (!tg__same_shape(nd, sh, x->ndim, x->shape))
        return TG_FAIL(TG_ERR_VALUE, "masked_fill: the mask's shape %s must broadcast to the tensor's shape %s",
                       tg__shp(mask), tg__shp(x));
    if (!tg_dtype_is_float(x->dtype)) { /* the value must be one the dtype holds (PyTorch) */
        double lo = x->dtype == TG_UINT8 ? 0 : x->dtype == TG_BOOL ? 0 : x->dtype == TG_INT32 ? -2147483648.0
                                                                                         : -9223372036854775808.0;
        double hi = x->dtype == TG_UINT8 ? 255 : x->dtype == TG_BOOL ? 1 : x->dtype == TG_INT32 ? 2147483647.0
                                                                                          : 9223372036854775807.0;
        if (value != floor(value) || value < lo || value > hi)
            return TG_FAIL(TG_ERR_VALUE, "masked_fill: the value %g cannot be stored in a %s tensor "
                           "(expected a whole number in [%.0f, %.0f])",
                           value, tg_dtype_name(x->dtype), lo, hi);
    }
    tg_tensor *v = tg_tensor_scalar(value, x->dtype);
    tg_tensor *y = v ? tg_where(mask, v, x) : NULL;
    tg_tensor_release(v);
    return y;
}
static tg_tensor *apply_masked_fill(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_masked_fill(in[0], in[1], p->f[0]);
}
TG_DEFINE_OP(masked_fill, .arity = 2, .composite = true, .diff_mask = 1,
             .dtypes = "float32,float64,int64; mask any dtype",
             .forward = "y = where(mask != 0, value, x)", .forward_tex = "y_i = m_i \\ne 0 \\,?\\, v : x_i",
             .vjp = "dx = dy * (mask == 0)", .vjp_tex = "\\bar x = \\bar y \\odot [m = 0]",
             .doc = "x with value (f0) where the mask (broadcast to x) is non-zero (out of place).",
             .apply = apply_masked_fill, .examples = "3x4,b3x4|f0=-1.5;T3x4,b4|f0=2;2x3x4,b3x1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* scatter                                                                */
/* ===================================================================== */

/* PyTorch's rules: index has x's number of dims, index.size(d) <= x.size(d)
 * for d != axis, int64 values in [-n, n) along axis. */
static tg_status check_scatter(const char *who, const tg_tensor *x, const tg_tensor *idx, int64_t axis,
                               int64_t *ax) {
    if (x->ndim == 0) return tg_error_set(TG_ERR_INDEX, "%s: cannot scatter into a 0-d tensor", who);
    if (tg__norm_axis(who, axis, x->ndim, ax)) return tg_error_status();
    if (idx->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE, "%s: index must be int64, got %s", who, tg_dtype_name(idx->dtype));
    if (idx->ndim != x->ndim)
        return tg_error_set(TG_ERR_VALUE, "%s: index has shape %s but the tensor has shape %s; their "
                            "numbers of dimensions must match", who, tg__shp(idx), tg__shp(x));
    for (int d = 0; d < x->ndim; d++)
        if (d != *ax && idx->shape[d] > x->shape[d])
            return tg_error_set(TG_ERR_VALUE, "%s: index shape %s is larger than the tensor's %s in dim %d",
                                who, tg__shp(idx), tg__shp(x), d);
    int64_t n = x->shape[*ax];
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        if (v < -n || v >= n)
            return tg_error_set(TG_ERR_INDEX, "%s: index %lld is out of bounds for axis %lld with size %lld",
                                who, (long long)v, (long long)*ax, (long long)n);
    }
    return TG_OK;
}

/* out (contiguous, a copy of x) [..., idx, ...] = src (same shape as idx) */
static void scatter_kernel(tg_tensor *out, const tg_tensor *idx, const tg_tensor *src, int64_t ax) {
    int nd = idx->ndim;
    int64_t pos[TG_MAX_DIMS] = {0};
    size_t isz = tg_dtype_size(out->dtype);
    char *po = tg_tensor_data(out);
    const char *ps = tg_tensor_data(src);
    for (int64_t k = 0; k < idx->numel; k++) {
        int64_t v = tg__get_flat_i64(idx, k);
        if (v < 0) v += out->shape[ax];
        int64_t oo = 0, os = 0;
        for (int d = 0; d < nd; d++) {
            oo += (d == ax ? v : pos[d]) * out->strides[d];
            os += pos[d] * src->strides[d];
        }
        memcpy(po + oo * (int64_t)isz, ps + os * (int64_t)isz, isz);
        for (int d = nd - 1; d >= 0; d--) {
            if (++pos[d] < idx->shape[d]) break;
            pos[d] = 0;
        }
    }
}

/* the op itself: src has index's shape and x's dtype (checked by the callers) */
static tg_tensor *scatter_op(tg_tensor *x, int64_t ax, tg_tensor *index, tg_tensor *src) {
    tg_tensor *out = tg__copy(x);
    if (!out) return NULL;
    if (out->numel > 0) scatter_kernel(out, index, src, ax);
    tg_tensor *in[3] = {x, index, src};
    tg_entry *e;
    out = tg__finish(&tg_opdef_scatter, 3, in, out, &e);
    if (e) {
        e->params.i[0] = ax;
        if (tg__save(e, index)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

tg_tensor *tg_scatter(tg_tensor *x, int64_t axis, tg_tensor *index, tg_tensor *src) {
    int64_t ax;
    if (require_dtype("scatter", x, true) || check_scatter("scatter", x, index, axis, &ax)) return NULL;
    if (src->dtype != x->dtype)
        return TG_FAIL(TG_ERR_TYPE, "scatter: src has dtype %s, expected the tensor's dtype %s",
                       tg_dtype_name(src->dtype), tg_dtype_name(x->dtype));
    if (src->ndim != index->ndim)
        return TG_FAIL(TG_ERR_VALUE, "scatter: src has shape %s and index %s; src must have as many dims "
                       "and be at least as large as index in each", tg__shp(src), tg__shp(index));
    for (int d = 0; d < src->ndim; d++)
        if (src->shape[d] < index->shape[d])
            return TG_FAIL(TG_ERR_VALUE, "scatter: src shape %s is smaller than the index shape %s in dim %d",
                           tg__shp(src), tg__shp(index), d);
    /* PyTorch reads src[:index.shape]: a recorded slice when it is larger */
    tg_tensor *s;
    if (tg__same_shape(src->ndim, src->shape, index->ndim, index->shape)) {
        s = retained(src);
    } else {
        int64_t starts[TG_MAX_DIMS] = {0}, steps[TG_MAX_DIMS];
        for (int d = 0; d < src->ndim; d++) steps[d] = 1;
        s = tg_slice(src, starts, index->shape, steps, 0);
    }
    tg_tensor *y = s ? scatter_op(x, ax, index, s) : NULL;
    tg_tensor_release(s);
    return y;
}
tg_tensor *tg_scatter_value(tg_tensor *x, int64_t axis, tg_tensor *index, double value) {
    int64_t ax;
    if (require_dtype("scatter", x, true) || check_scatter("scatter", x, index, axis, &ax)) return NULL;
    tg_tensor *s = tg_tensor_full(index->ndim, index->shape, value, x->dtype);
    tg_tensor *y = s ? scatter_op(x, ax, index, s) : NULL;
    tg_tensor_release(s);
    return y;
}
static tg_status scatter_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *index = SAVED(0);
    CHECK(index);
    int64_t ax = e->params.i[0];
    if (NEED(0)) { /* dy with the overwritten positions zeroed: scatter zeros into it */
        tg_tensor *z = tg_tensor_zeros(index->ndim, index->shape, g->dtype);
        CHECK(z);
        gi[0] = scatter_op(g, ax, index, z);
        tg_tensor_release(z);
        CHECK(gi[0]);
    }
    if (NEED(2)) CHECK(gi[2] = tg_gather(g, ax, index));
    return TG_OK;
}
static tg_tensor *apply_scatter(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_scatter(in[0], p->i[0], in[1], in[2]);
}
TG_DEFINE_OP(scatter, .arity = 3, .diff_mask = 5, .dtypes = "float32,float64,int64; index int64",
             .forward = "y = copy of x; y[i][index[i][j]] = src[i][j] (axis 1)",
             .forward_tex = "y = x,\\ y_{i,\\,\\mathrm{idx}_{ij}} = s_{ij}",
             .vjp = "dx = scatter(dy, axis, index, 0); dsrc = gather(dy, axis, index)",
             .vjp_tex = "\\bar x = \\bar y,\\ \\bar x_{i,\\,\\mathrm{idx}_{ij}} = 0 \\quad \\bar s_{ij} = \\bar y_{i,\\,\\mathrm{idx}_{ij}}",
             .doc = "Write src into a copy of x at index along an axis (i0), PyTorch's scatter.",
             .backward = scatter_vjp, .apply = apply_scatter,
             .examples = "4x5,i5:4x1,4x1|i0=1;T5x4,i5:1x4,3x4|i0=0;3x4x2,i4:3x1x2,3x3x2|i0=-2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar s");

/* ===================================================================== */
/* scatter_reduce                                                         */
/* ===================================================================== */

/* A composite: the values landing on each touched position (x's own value
 * first when include_self) are gathered into the rows of an (H, K) matrix
 * (H touched positions, K the most values one receives; short rows padded
 * with the reduction's identity), the rows are reduced with sum, max, min or
 * a product of columns, and the results are added into x with its touched
 * positions zeroed.  The gradient is that of index_select, sum/max/min/mul
 * and scatter_add: PyTorch's (amax/amin share it between ties, prod is the
 * product of the others, exact with zeros), and second order follows. */
static const char *const reduce_names[] = {"sum", "prod", "mean", "amax", "amin"};

int tg_scatter_reduce_code(const char *name) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, reduce_names[i])) return i;
    return -1;
}

tg_tensor *tg_scatter_reduce(tg_tensor *x, int64_t axis, tg_tensor *index, tg_tensor *src, int reduce,
                             bool include_self) {
    const char *who = "scatter_reduce";
    int64_t ax;
    if (reduce < 0 || reduce > 4)
        return TG_FAIL(TG_ERR_VALUE, "scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' or 'amin'");
    if (require_dtype(who, x, false) || check_scatter(who, x, index, axis, &ax)) return NULL;
    if (src->dtype != x->dtype)
        return TG_FAIL(TG_ERR_TYPE, "scatter_reduce: src has dtype %s, expected the tensor's dtype %s",
                       tg_dtype_name(src->dtype), tg_dtype_name(x->dtype));
    if (src->ndim != index->ndim)
        return TG_FAIL(TG_ERR_VALUE, "scatter_reduce: src has shape %s and index %s; src must have as many "
                       "dims and be at least as large as index in each", tg__shp(src), tg__shp(index));
    for (int d = 0; d < src->ndim; d++)
        if (src->shape[d] < index->shape[d])
            return TG_FAIL(TG_ERR_VALUE, "scatter_reduce: src shape %s is smaller than the index shape %s in dim %d",
                           tg__shp(src), tg__shp(index), d);
    int64_t P = x->numel, N = index->numel;
    if (N == 0 || P == 0) return tg_reshape(x, x->ndim, x->shape);
    int64_t cstr[TG_MAX_DIMS];
    tg__contiguous_strides(x->ndim, x->shape, cstr);
    int64_t *tpos = malloc((size_t)N * sizeof *tpos), *row = malloc((size_t)P * sizeof *row);
    int64_t *cnt = calloc((size_t)P, sizeof *cnt);
    tg_tensor *y = NULL, *gidx = NULL, *hitpos = NULL, *hit = NULL, *cntrow = NULL;
    if (!tpos || !row || !cnt) {
        tg_error_set(TG_ERR_MEMORY, "scatter_reduce: out of memory");
        goto done;
    }
    /* the flat (C order) target of every src element */
    int64_t pos[TG_MAX_DIMS] = {0}, H = 0, K = 0;
    for (int64_t k = 0; k < N; k++) {
        int64_t v = tg__get_flat_i64(index, k), t = 0;
        if (v < 0) v += x->shape[ax];
        for (int d = 0; d < x->ndim; d++) t += (d == ax ? v : pos[d]) * cstr[d];
        tpos[k] = t;
        if (cnt[t]++ == 0) H++;
        if (cnt[t] > K) K = cnt[t];
        for (int d = index->ndim - 1; d >= 0; d--) {
            if (++pos[d] < index->shape[d]) break;
            pos[d] = 0;
        }
    }
    K += include_self;
    if (K > 0 && H > ((int64_t)1 << 26) / K) {
        tg_error_set(TG_ERR_VALUE,
                     "scatter_reduce: %lld positions receive up to %lld values each; the (positions, values) "
                     "gather behind this composite would be too large", (long long)H, (long long)K);
        goto done;
    }
    int64_t gsh[2] = {H, K};
    gidx = tg_tensor_empty(2, gsh, TG_INT64);
    hitpos = tg_tensor_empty(1, &H, TG_INT64);
    hit = tg_tensor_zeros(1, &P, TG_FLOAT64);
    cntrow = tg_tensor_empty(1, &H, x->dtype);
    if (!gidx || !hitpos || !hit || !cntrow) goto done;
    int64_t *gi = tg_tensor_data(gidx), *hp = tg_tensor_data(hitpos), r = 0;
    double *hm = tg_tensor_data(hit);
    for (int64_t p = 0; p < P; p++) {
        row[p] = -1;
        if (!cnt[p]) continue;
        hm[p] = 1;
        hp[r] = p;
        if (x->dtype == TG_FLOAT32) ((float *)tg_tensor_data(cntrow))[r] = (float)(cnt[p] + include_self);
        else ((double *)tg_tensor_data(cntrow))[r] = (double)(cnt[p] + include_self);
        for (int64_t c = 0; c < K; c++) gi[r * K + c] = N + P; /* the padding element */
        if (include_self) gi[r * K] = N + p;
        cnt[p] = include_self; /* from here on: the next free column of the row */
        row[p] = r++;
    }
    for (int64_t k = 0; k < N; k++) {
        int64_t p = tpos[k];
        gi[row[p] * K + cnt[p]++] = k;
    }
    /* ext = [src (cut to index's shape) flat, x flat, identity] */
    static const double pad_of[5] = {0, 1, 0, -(double)INFINITY, (double)INFINITY};
    tg_tensor *parts[3] = {NULL, NULL, tg_tensor_full(1, (int64_t[]){1}, pad_of[reduce], x->dtype)};
    {
        int64_t starts[TG_MAX_DIMS] = {0}, steps[TG_MAX_DIMS];
        for (int d = 0; d < src->ndim; d++) steps[d] = 1;
        tg_tensor *s = tg_slice(src, starts, index->shape, steps, 0);
        parts[0] = s ? tg_reshape(s, 1, &N) : NULL;
        tg_tensor_release(s);
        parts[1] = tg_reshape(x, 1, &P);
    }
    tg_tensor *ext = parts[0] && parts[1] && parts[2] ? tg_concat(3, parts, 0) : NULL;
    for (int i = 0; i < 3; i++) tg_tensor_release(parts[i]);
    tg_tensor *C = ext ? tg_index_select(ext, 0, gidx) : NULL;
    tg_tensor_release(ext);
    int64_t one = 1;
    tg_tensor *red = NULL;
    if (C && (reduce == 0 || reduce == 2)) red = tg_sum(C, &one, 1, false);
    else if (C && reduce == 3) red = tg_max(C, &one, 1, false);
    else if (C && reduce == 4) red = tg_min(C, &one, 1, false);
    else if (C) { /* prod: the product of the columns, exact with zeros */
        red = tg__slice_axis(C, 1, 0, 1, 1);
        for (int64_t c = 1; c < K && red; c++) {
            tg_tensor *col = tg__slice_axis(C, 1, c, c + 1, 1);
            TAKE(red, col ? tg_mul(red, col) : NULL);
            tg_tensor_release(col);
        }
        TAKE(red, tg_reshape(red, 1, &H));
    }
    tg_tensor_release(C);
    if (reduce == 2) TAKE(red, tg_div(red, cntrow));
    /* y = where(touched, 0, x) + scatter_add(red at hitpos) */
    tg_tensor *zero = red ? tg_tensor_scalar(0, x->dtype) : NULL;
    tg_tensor *xf = zero ? tg_reshape(x, 1, &P) : NULL;
    tg_tensor *base = xf ? tg_where(hit, zero, xf) : NULL;
    tg_tensor_release(zero);
    tg_tensor_release(xf);
    tg_tensor *added = NULL;
    if (base) {
        tg_params sp;
        memset(&sp, 0, sizeof sp);
        sp.i[0] = 0;
        sp.ndim = 1;
        sp.shape[0] = P;
        tg_tensor *ins[2] = {red, hitpos};
        added = tg_op_apply(&tg_opdef_scatter_add, 2, ins, &sp);
    }
    tg_tensor_release(red);
    y = added ? tg_add(base, added) : NULL;
    tg_tensor_release(base);
    tg_tensor_release(added);
    TAKE(y, tg_reshape(y, x->ndim, x->shape));
done:
    free(tpos);
    free(row);
    free(cnt);
    tg_tensor_release(gidx);
    tg_tensor_release(hitpos);
    tg_tensor_release(hit);
    tg_tensor_release(cntrow);
    return y;
}
static tg_tensor *apply_scatter_reduce(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_scatter_reduce(in[0], p->i[0], in[1], in[2], tg__int_param(p->i[1]), p->i[2] != 0);
}
TG_DEFINE_OP(scatter_reduce, .arity = 3, .composite = true, .diff_mask = 5, .dtypes = "float32,float64; index int64",
             .forward = "y = x; y[i][index[i][j]] = reduce(x[i][index[i][j]] (if include_self), src[i][j], ...) (axis 1)",
             .forward_tex = "y_{p} = \\operatorname{reduce}(\\{x_p\\} \\cup \\{ s_{ij} : (i, \\mathrm{idx}_{ij}) = p \\})",
             .vjp = "through index_select, the row reduction (sum, max, min, products, mean's division) and scatter_add",
             .vjp_tex = "\\bar x_p = \\bar y_p \\frac{\\partial y_p}{\\partial x_p} \\quad \\bar s_{ij} = \\bar y_p \\frac{\\partial y_p}{\\partial s_{ij}}",
             .doc = "PyTorch's scatter_reduce (i0 = axis; i1 = sum, prod, mean, amax, amin; i2 = include_self).",
             .apply = apply_scatter_reduce,
             .examples = "4x5,i5:4x3,4x3|i0=1 i1=0 i2=1;T4x5,i4:6x5,6x5|i0=0 i1=1 i2=1;4x5,i5:4x6,4x6|i0=1 i1=2 i2=0;"
                         "T5x4,i4:5x6,5x7|i0=-1 i1=3 i2=1;4x5,i4:6x5,6x5|i0=0 i1=4 i2=0;4x5,i5:4x6,4x6|i0=1 i1=1 i2=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar s");

/* ===================================================================== */
/* einsum                                                                 */
/* ===================================================================== */

/* A composite: each operand's repeated labels become diagonals, labels no
 * other operand nor the output needs are summed out, operands are
 * contracted left to right with matmul (batch labels, the first operand's
 * own, the contracted ones, the second's own: permute, reshape, matmul,
 * reshape), and the result is permuted to the output.  Labels are a-z and
 * A-Z; "..." stands for the broadcast dims (ids 52 + k, right-aligned). */
#define EIN_LABELS 60
typedef struct {
    tg_tensor *t;
    int n;
    int lab[TG_MAX_DIMS];
} ein_op;

static int ein_id(char c) {
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= 'A' && c <= 'Z') return 26 + c - 'A';
    return -1;
}

/* parse one term ("ij", "...ij", "i...j") for a tensor of ndim dims (ndim <
 * 0: the output, ell = the number of ellipsis dims).  *n labels into lab. */
static tg_status ein_term(const char *subs, const char *s, const char *end, int ndim, int *ell, int *lab, int *n) {
    int k = 0, before = 0, has_ell = 0;
    int tmp[64];
    for (const char *c = s; c < end; c++) {
        if (*c == ' ') continue;
        if (*c == '.') {
            if (has_ell || end - c < 3 || c[1] != '.' || c[2] != '.')
                return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': '.' only as one '...' per operand", subs);
            has_ell = 1;
            before = k;
            c += 2;
            continue;
        }
        int id = ein_id(*c);
        if (id < 0)
            return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': '%c' is not a label (a-z, A-Z, '...')", subs, *c);
        if (k >= 64) return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': too many labels", subs);
        tmp[k++] = id;
    }
    int ne;
    if (ndim >= 0) {
        if (!has_ell && k != ndim)
            return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': %d labels for an operand with %d dims",
                                subs, k, ndim);
        if (has_ell && k > ndim)
            return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': %d labels for an operand with %d dims",
                                subs, k, ndim);
        ne = has_ell ? ndim - k : 0;
        if (ne > *ell) *ell = ne;
    } else {
        ne = has_ell ? *ell : 0;
    }
    if (k + ne > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': a term with more than %d dims", subs, TG_MAX_DIMS);
    int m = 0;
    for (int i = 0; i < before + (has_ell ? 0 : k); i++) lab[m++] = tmp[i];
    if (has_ell) {
        /* ellipsis dims right-aligned: with ell total, this operand's ne are the last ne */
        for (int i = 0; i < ne; i++) lab[m++] = 52 + (ndim >= 0 ? *ell - ne + i : i);
        for (int i = before; i < k; i++) lab[m++] = tmp[i];
    }
    *n = m;
    return TG_OK;
}

/* sum out the dims of o whose label is not wanted (want[id] == 0) */
static tg_status ein_reduce(ein_op *o, const int *want) {
    int64_t axes[TG_MAX_DIMS];
    int na = 0, nl = 0, lab[TG_MAX_DIMS];
    for (int d = 0; d < o->n; d++) {
        if (!want[o->lab[d]]) axes[na++] = d;
        else lab[nl++] = o->lab[d];
    }
    if (!na) return TG_OK;
    TAKE(o->t, tg_sum(o->t, axes, na, false));
    if (!o->t) return tg_error_status();
    memcpy(o->lab, lab, sizeof lab);
    o->n = nl;
    return TG_OK;
}

/* repeated labels of one operand: take their diagonal (moved to the end) */
static tg_status ein_diagonals(const char *subs, ein_op *o) {
    for (;;) {
        int a = -1, b = -1;
        for (int i = 0; i < o->n && a < 0; i++)
            for (int j = i + 1; j < o->n; j++)
                if (o->lab[i] == o->lab[j]) {
                    a = i;
                    b = j;
                    break;
                }
        if (a < 0) return TG_OK;
        if (o->t->shape[a] != o->t->shape[b])
            return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': a repeated label spans dims of sizes "
                                "%lld and %lld (operand shape %s)", subs, (long long)o->t->shape[a],
                                (long long)o->t->shape[b], tg__shp(o->t));
        int id = o->lab[a], k = 0;
        TAKE(o->t, tg_diagonal(o->t, 0, a, b));
        if (!o->t) return tg_error_status();
        for (int d = 0; d < o->n; d++)
            if (d != a && d != b) o->lab[k++] = o->lab[d];
        o->lab[k++] = id;
        o->n = k;
    }
}

static tg_tensor *ein_permute(ein_op *o, const int *order, int n) {
    int64_t perm[TG_MAX_DIMS];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < o->n; d++)
            if (o->lab[d] == order[i]) perm[i] = d;
    return tg_permute(o->t, perm);
}

/* A (x) B over the labels; keep[id]: needed after this step */
static tg_status ein_contract(const char *subs, ein_op *A, ein_op *B, const int *keep, int64_t *size) {
    int inA[EIN_LABELS] = {0}, inB[EIN_LABELS] = {0};
    for (int d = 0; d < A->n; d++) inA[A->lab[d]] = 1;
    for (int d = 0; d < B->n; d++) inB[B->lab[d]] = 1;
    int bat[TG_MAX_DIMS], ao[TG_MAX_DIMS], bo[TG_MAX_DIMS], con[TG_MAX_DIMS];
    int nb = 0, na = 0, nbo = 0, nc = 0;
    for (int d = 0; d < A->n; d++) {
        int id = A->lab[d];
        if (inB[id]) {
            if (keep[id]) bat[nb++] = id;
            else con[nc++] = id;
        } else {
            ao[na++] = id;
        }
    }
    for (int d = 0; d < B->n; d++)
        if (!inA[B->lab[d]]) bo[nbo++] = B->lab[d];
    if (nb + na + nbo > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': an intermediate result would have more "
                            "than %d dims", subs, TG_MAX_DIMS);
    /* A -> (bat, ao, con), B -> (bat, con, bo), both broadcast to the label sizes */
    int oa[TG_MAX_DIMS], ob[TG_MAX_DIMS], k = 0;
    for (int i = 0; i < nb; i++) oa[k++] = bat[i];
    for (int i = 0; i < na; i++) oa[k++] = ao[i];
    for (int i = 0; i < nc; i++) oa[k++] = con[i];
    k = 0;
    for (int i = 0; i < nb; i++) ob[k++] = bat[i];
    for (int i = 0; i < nc; i++) ob[k++] = con[i];
    for (int i = 0; i < nbo; i++) ob[k++] = bo[i];
    tg_tensor *pa = ein_permute(A, oa, A->n), *pb = pa ? ein_permute(B, ob, B->n) : NULL;
    int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS], Bn = 1, M = 1, K = 1, N = 1;
    for (int i = 0; i < A->n; i++) sa[i] = size[oa[i]];
    for (int i = 0; i < B->n; i++) sb[i] = size[ob[i]];
    for (int i = 0; i < nb; i++) Bn *= size[bat[i]];
    for (int i = 0; i < na; i++) M *= size[ao[i]];
    for (int i = 0; i < nc; i++) K *= size[con[i]];
    for (int i = 0; i < nbo; i++) N *= size[bo[i]];
    TAKE(pa, tg_broadcast_to(pa, A->n, sa));
    TAKE(pb, tg_broadcast_to(pb, B->n, sb));
    int64_t s3a[3] = {Bn, M, K}, s3b[3] = {Bn, K, N};
    TAKE(pa, tg_reshape(pa, 3, s3a));
    TAKE(pb, tg_reshape(pb, 3, s3b));
    tg_tensor *r = pa && pb ? tg_matmul(pa, pb) : NULL;
    tg_tensor_release(pa);
    tg_tensor_release(pb);
    int64_t so[TG_MAX_DIMS];
    int lab[TG_MAX_DIMS], n = 0;
    for (int i = 0; i < nb; i++) lab[n] = bat[i], so[n++] = size[bat[i]];
    for (int i = 0; i < na; i++) lab[n] = ao[i], so[n++] = size[ao[i]];
    for (int i = 0; i < nbo; i++) lab[n] = bo[i], so[n++] = size[bo[i]];
    TAKE(r, tg_reshape(r, n, so));
    if (!r) return tg_error_status();
    tg_tensor_release(A->t);
    A->t = r;
    A->n = n;
    memcpy(A->lab, lab, sizeof lab);
    return TG_OK;
}

tg_tensor *tg_einsum(const char *subs, int n, tg_tensor *const *xs) {
    if (!subs) return TG_FAIL(TG_ERR_VALUE, "einsum: subscripts is NULL");
    if (n < 1) return TG_FAIL(TG_ERR_VALUE, "einsum: subscripts '%s': need at least one operand", subs);
    const char *arrow = strstr(subs, "->"), *lhs_end = arrow ? arrow : subs + strlen(subs);
    int nterms = 1;
    for (const char *c = subs; c < lhs_end; c++) nterms += *c == ',';
    if (nterms != n)
        return TG_FAIL(TG_ERR_VALUE, "einsum: subscripts '%s' name %d operands, %d given", subs, nterms, n);
    for (int i = 0; i < n; i++)
        if (!tg_dtype_is_float(xs[i]->dtype))
            return TG_FAIL(TG_ERR_TYPE, "einsum: operand %d has dtype %s (expected float32 or float64)", i,
                           tg_dtype_name(xs[i]->dtype));
    ein_op *ops = calloc((size_t)n, sizeof *ops);
    if (!ops) return TG_FAIL(TG_ERR_MEMORY, "einsum: out of memory");
    int ell = 0, out[TG_MAX_DIMS], nout = 0, count[EIN_LABELS] = {0};
    int64_t size[EIN_LABELS];
    for (int i = 0; i < EIN_LABELS; i++) size[i] = -1;
    tg_tensor *result = NULL;
    const char *s = subs;
    for (int i = 0; i < n; i++) {
        const char *e = s;
        while (e < lhs_end && *e != ',') e++;
        if (ein_term(subs, s, e, xs[i]->ndim, &ell, ops[i].lab, &ops[i].n)) goto done;
        s = e + 1;
    }
    /* ellipsis ids were numbered right-aligned against the final count: renumber */
    s = subs;
    for (int i = 0; i < n; i++) {
        const char *e = s;
        while (e < lhs_end && *e != ',') e++;
        int e2 = ell;
        if (ein_term(subs, s, e, xs[i]->ndim, &e2, ops[i].lab, &ops[i].n)) goto done;
        s = e + 1;
    }
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < ops[i].n; d++) {
            int id = ops[i].lab[d];
            int64_t sz = xs[i]->shape[d];
            count[id]++;
            if (size[id] < 0 || size[id] == 1) size[id] = sz;
            else if (sz != size[id] && sz != 1) { /* size-1 dims broadcast, as in PyTorch */
                tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': label '%c' has size %lld in operand %d "
                             "(shape %s) but %lld elsewhere", subs, id < 26 ? 'a' + id : id < 52 ? 'A' + id - 26 : '.',
                             (long long)sz, i, tg__shp(xs[i]), (long long)size[id]);
                goto done;
            }
        }
    }
    if (arrow) {
        if (ein_term(subs, arrow + 2, arrow + 2 + strlen(arrow + 2), -1, &ell, out, &nout)) goto done;
        for (int i = 0; i < nout; i++) {
            for (int j = 0; j < i; j++)
                if (out[j] == out[i]) {
                    tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': the output repeats a label", subs);
                    goto done;
                }
            if (!count[out[i]]) {
                tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': an output label appears in no operand", subs);
                goto done;
            }
        }
    } else { /* implicit: the ellipsis dims, then labels seen once, in alphabetical order */
        for (int i = 0; i < ell; i++) out[nout++] = 52 + i;
        for (int id = 0; id < 52; id++)
            if (count[id] == 1) {
                if (nout >= TG_MAX_DIMS) {
                    tg_error_set(TG_ERR_VALUE, "einsum: subscripts '%s': the output has more than %d dims", subs,
                                 TG_MAX_DIMS);
                    goto done;
                }
                out[nout++] = id;
            }
    }
    int inout[EIN_LABELS] = {0};
    for (int i = 0; i < nout; i++) inout[out[i]] = 1;
    for (int i = 0; i < n; i++) {
        ops[i].t = xs[i];
        tg_tensor_retain(xs[i]);
        if (ein_diagonals(subs, &ops[i])) goto done;
    }
    /* left to right: before each step, sum out what neither the output nor
     * another operand still to come needs; ops[0] accumulates the result */
    for (int i = 0; i < n; i++) {
        int want[EIN_LABELS], keep[EIN_LABELS];
        for (int id = 0; id < EIN_LABELS; id++) keep[id] = inout[id];
        for (int j = i + 1; j < n; j++)
            for (int d = 0; d < ops[j].n; d++) keep[ops[j].lab[d]] = 1;
        memcpy(want, keep, sizeof want);
        if (i > 0)
            for (int d = 0; d < ops[0].n; d++) want[ops[0].lab[d]] = 1;
        if (ein_reduce(&ops[i], want)) goto done;
        if (i == 0) continue;
        memcpy(want, keep, sizeof want);
        for (int d = 0; d < ops[i].n; d++) want[ops[i].lab[d]] = 1;
        if (ein_reduce(&ops[0], want)) goto done;
        if (ein_contract(subs, &ops[0], &ops[i], keep, size)) goto done;
    }
    /* labels of the output that were broadcast away (size 1 dims), then the order */
    result = ein_permute(&ops[0], out, nout);
    if (result) {
        int64_t osz[TG_MAX_DIMS];
        for (int i = 0; i < nout; i++) osz[i] = size[out[i]];
        if (!tg__same_shape(result->ndim, result->shape, nout, osz)) TAKE(result, tg_broadcast_to(result, nout, osz));
    }
done:
    for (int i = 0; i < n; i++) tg_tensor_release(ops[i].t);
    free(ops);
    return result;
}
static tg_tensor *apply_einsum(tg_tensor *const *in, int n, const tg_params *p) {
    char buf[4 * TG_MAX_DIMS + 1];
    int k = 0;
    while (k < 4 * TG_MAX_DIMS && p->ints[k]) {
        /* a code that is not ASCII would be cut to a byte: 2**32 + 105 was
         * taken as 'i' */
        if (p->ints[k] < 1 || p->ints[k] > 127)
            return TG_FAIL(TG_ERR_VALUE, "einsum: ints[%d] = %lld is not the code of an ASCII "
                           "character (1 to 127) of the subscripts", k, (long long)p->ints[k]);
        buf[k] = (char)p->ints[k];
        k++;
    }
    buf[k] = 0;
    return tg_einsum(buf, n, in);
}
TG_DEFINE_OP(einsum, .arity = -1, .composite = true, .diff_mask = 0xFFFFFFFFu, .dtypes = "float32,float64",
             .forward = "y = sum over the labels not in the output of the product of the operands",
             .forward_tex = "y_{\\text{out}} = \\sum_{\\text{other labels}} \\prod_k x^{(k)}",
             .vjp = "through the diagonals, sums, permutes, reshapes and matmuls it is made of",
             .vjp_tex = "\\bar x^{(k)} = \\operatorname{einsum}(\\bar y, x^{(j \\ne k)})",
             .doc = "Einstein summation (ints = the subscripts' character codes); contractions run as matmul.",
             .apply = apply_einsum,
             /* "ij,jk->ik", "bij,bjk", "ii->i", "...ij->...ji", "i,j->ij", "ijk->" */
             .examples = "3x4,4x5|ints=105,106,44,106,107,45,62,105,107;"
                         "2x3x4,T2x4x5|ints=98,105,106,44,98,106,107;"
                         "4x4|ints=105,105,45,62,105;"
                         "2x3x4|ints=46,46,46,105,106,45,62,46,46,46,106,105;"
                         "3,4|ints=105,44,106,45,62,105,106;"
                         "2x3x4|ints=105,106,107,45,62;"
                         "3x4,4x5,5x2|ints=105,106,44,106,107,44,107,108",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x^{(k)}");

/* ===================================================================== */
/* unfold (sliding windows)                                               */
/* ===================================================================== */

/* PyTorch's Tensor.unfold: axis becomes the number of windows, and a new
 * last axis of `size` holds each window.  An index_select with the (nwin,
 * size) index w * step + j, its window axis moved to the end. */
tg_tensor *tg_unfold(tg_tensor *x, int64_t axis, int64_t size, int64_t step) {
    int64_t ax;
    if (x->ndim == 0) return TG_FAIL(TG_ERR_INDEX, "unfold: a 0-d tensor has no axis %lld", (long long)axis);
    if (tg__norm_axis("unfold", axis, x->ndim, &ax)) return NULL;
    if (x->ndim >= TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "unfold: the result would have more than %d dimensions", TG_MAX_DIMS);
    int64_t n = x->shape[ax];
    if (size < 0 || size > n)
        return TG_FAIL(TG_ERR_VALUE, "unfold: size %lld must be between 0 and %lld, the size of axis %lld of shape %s",
                       (long long)size, (long long)n, (long long)ax, tg__shp(x));
    if (step <= 0) return TG_FAIL(TG_ERR_VALUE, "unfold: step must be positive, got %lld", (long long)step);
    int64_t nwin = (n - size) / step + 1, ish[2] = {nwin, size};
    tg_tensor *idx = tg_tensor_empty(2, ish, TG_INT64);
    if (!idx) return NULL;
    int64_t *ix = tg_tensor_data(idx);
    for (int64_t w = 0; w < nwin; w++)
        for (int64_t j = 0; j < size; j++) ix[w * size + j] = w * step + j;
    tg_tensor *y = tg_index_select(x, ax, idx);
    tg_tensor_release(idx);
    if (!y) return NULL;
    int64_t perm[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d <= x->ndim; d++)
        if (d != ax + 1) perm[k++] = d;
    perm[k] = ax + 1;
    TAKE(y, tg_permute(y, perm));
    return y;
}
static tg_tensor *apply_unfold(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_unfold(in[0], p->i[0], p->i[1], p->i[2]);
}
TG_DEFINE_OP(unfold, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y[..., w, ..., j] = x[..., w * step + j, ...] (axis i0, size i1, step i2)",
             .forward_tex = "y_{\\ldots w \\ldots j} = x_{\\ldots,\\, w s + j,\\, \\ldots}",
             .vjp = "dx = the windows' gradients added back at their positions (index_add)",
             .vjp_tex = "\\bar x_{i} = \\sum_{w s + j = i} \\bar y_{w j}",
             .doc = "Sliding windows along an axis (PyTorch's Tensor.unfold): i0 = axis, i1 = size, i2 = step.",
             .apply = apply_unfold,
             .examples = "8|i0=0 i1=3 i2=2;T3x7|i0=1 i1=2 i2=1;2x6x3|i0=-2 i1=4 i2=3;4x5|i0=0 i1=0 i2=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* pad with negative widths and modes                                     */
/* ===================================================================== */

/* Where element i (in [-before, n + after)) of a padded dim of size n
 * reads from. */
static int64_t pad_source(int mode, int64_t i, int64_t n) {
    int64_t p, j;
    switch (mode) {
    case 1: /* reflect: ... 2 1 | 0 1 2 | 1 0 ... */
        if (n == 1) return 0;
        p = 2 * (n - 1);
        j = ((i % p) + p) % p;
        return j >= n ? p - j : j;
    case 2: /* replicate (NumPy's edge) */
        return i < 0 ? 0 : i >= n ? n - 1 : i;
    case 3: /* circular (NumPy's wrap) */
        return ((i % n) + n) % n;
    default: /* symmetric: ... 1 0 | 0 1 2 | 2 1 ... */
        p = 2 * n;
        j = ((i % p) + p) % p;
        return j >= n ? p - 1 - j : j;
    }
}

static const char *const pad_mode_names[] = {"constant", "reflect", "replicate", "circular", "symmetric"};

int tg_pad_mode_code(const char *name) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, pad_mode_names[i])) return i;
    if (!strcmp(name, "edge")) return 2; /* NumPy's names */
    if (!strcmp(name, "wrap")) return 3;
    return -1;
}

/* A negative width crops (a slice); the positive ones pad: constant through
 * pad, the other modes through an index_select per dim. */
tg_tensor *tg_pad_mode(tg_tensor *x, const int64_t *pads, int mode, double value) {
    if (mode < 0 || mode > 4)
        return TG_FAIL(TG_ERR_VALUE, "pad: mode must be 'constant', 'reflect', 'replicate' ('edge'), "
                       "'circular' ('wrap') or 'symmetric'");
    int64_t starts[TG_MAX_DIMS], stops[TG_MAX_DIMS], steps[TG_MAX_DIMS], pp[2 * TG_MAX_DIMS], fin[TG_MAX_DIMS];
    bool crop = false, any = false;
    for (int d = 0; d < x->ndim; d++) {
        int64_t b = pads[2 * d], a = pads[2 * d + 1], n = x->shape[d];
        int64_t cb = b < 0 ? (b == INT64_MIN ? INT64_MAX : -b) : 0, ca = a < 0 ? (a == INT64_MIN ? INT64_MAX : -a) : 0;
        if (cb > n || ca > n - cb)
            return TG_FAIL(TG_ERR_VALUE, "pad: cropping (%lld, %lld) from dim %d of shape %s leaves a negative size",
                           (long long)b, (long long)a, d, tg__shp(x));
        starts[d] = cb;
        stops[d] = n - ca;
        steps[d] = 1;
        crop |= cb || ca;
        pp[2 * d] = b > 0 ? b : 0;
        pp[2 * d + 1] = a > 0 ? a : 0;
        any |= pp[2 * d] || pp[2 * d + 1];
        if (__builtin_add_overflow(stops[d] - starts[d], pp[2 * d], &fin[d]) ||
            __builtin_add_overflow(fin[d], pp[2 * d + 1], &fin[d]))
            return TG_FAIL(TG_ERR_MEMORY, "pad: padding %s by (%lld, %lld) on dim %d overflows the size",
                           tg__shp(x), (long long)b, (long long)a, d);
        if (mode != 0 && (pp[2 * d] || pp[2 * d + 1]) && stops[d] == starts[d])
            return TG_FAIL(TG_ERR_VALUE, "pad: cannot pad dim %d of size 0 (shape %s) in mode '%s'", d, tg__shp(x),
                           pad_mode_names[mode]);
    }
    int64_t numel;
    if (tg__check_shape("pad", x->ndim, fin, tg_dtype_size(x->dtype), &numel)) return NULL;
    tg_tensor *y = crop ? tg_slice(x, starts, stops, steps, 0) : retained(x);
    if (!any || !y) {
        if (y && !crop) TAKE(y, tg_reshape(y, y->ndim, y->shape)); /* a new tensor, like every op */
        return y;
    }
    if (mode == 0) {
        TAKE(y, tg_pad(y, pp, value));
        return y;
    }
    for (int d = 0; d < x->ndim && y; d++) {
        int64_t b = pp[2 * d], a = pp[2 * d + 1], n = y->shape[d];
        if (!b && !a) continue;
        tg_tensor *idx = tg_tensor_empty(1, &fin[d], TG_INT64);
        if (!idx) {
            tg_tensor_release(y);
            return NULL;
        }
        int64_t *ix = tg_tensor_data(idx);
        for (int64_t i = 0; i < fin[d]; i++) ix[i] = pad_source(mode, i - b, n);
        TAKE(y, tg_index_select(y, d, idx));
        tg_tensor_release(idx);
    }
    return y;
}
static tg_tensor *apply_pad_mode(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_pad_mode(in[0], p->ints, tg__int_param(p->i[0]), p->f[0]);
}
TG_DEFINE_OP(pad_mode, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x cropped by the negative widths, padded by the positive ones (constant f0, or "
                        "reflect, replicate, circular, symmetric: i0 = 0..4)",
             .forward_tex = "y = \\operatorname{pad}(x[\\text{crop}], \\text{mode})",
             .vjp = "dx = the gradients of the read positions added back (index_add), zeros where cropped",
             .vjp_tex = "\\bar x_j = \\sum_{i : \\mathrm{src}(i) = j} \\bar y_i",
             .doc = "tg.pad with negative widths (cropping) or a mode other than constant: ints = widths per dim.",
             .apply = apply_pad_mode,
             .examples = "3x4|ints=-1,1,2,-2 f0=0.5;T3x5|ints=2,1,3,4 i0=1;3x4|ints=1,2,0,3 i0=2;"
                         "T4x3|ints=5,2,-1,4 i0=3;2x3x4|ints=0,0,1,-2,2,3 i0=4;4x5|ints=2,2,7,9 i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
