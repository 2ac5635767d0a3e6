/*
 * nn.c -- functions for networks: softmax, log_softmax, the losses,
 * one_hot and dropout.
 *
 * cross_entropy is fused (log-softmax and the pick of the label's entry in
 * one pass, numerically stable), but its VJP is still written with ops:
 * (softmax(z) - onehot(y)) * dL, so second derivatives work.
 */
#include "ops_internal.h"
#include <stdio.h>

#include <math.h>
#include <stdlib.h>

#include "../kernels/threadpool.h"
#include "../kernels/vmath.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif



static tg_status check_red(const char *who, tg_reduction r) {
    if (r != TG_REDUCTION_NONE && r != TG_REDUCTION_MEAN && r != TG_REDUCTION_SUM)
        return tg_error_set(TG_ERR_VALUE, "%s: reduction must be 'mean', 'sum' or 'none', got %d", who, (int)r);
    return TG_OK;
}

/* ===================================================================== */
/* Row kernels shared by softmax and layer_norm                           */
/* ===================================================================== */

/* Row sums are kept in vector lanes of the row's type and added into a
 * float64 total every LN_CHUNK elements, so that a long row does not lose
 * precision. */
#define LN_CHUNK 512
#if defined(__SSE2__)
/* the float64 sum of the eight lanes of two vectors, in lane order */
static inline double ln_hsum(__m128 a, __m128 b) {
    float t[8];
    _mm_storeu_ps(t, a);
    _mm_storeu_ps(t + 4, b);
    double s = 0;
    for (int l = 0; l < 8; l++) s += t[l];
    return s;
}
#endif

/* x, or a contiguous copy of it (a new reference either way) */
static tg_tensor *contiguous_ref(tg_tensor *x) {
    if (tg_tensor_is_contiguous(x)) {
        tg_tensor_retain(x);
        return x;
    }
    return tg__copy(x);
}

/* The softmax kernels (softmax along the last axis of a contiguous tensor,
 * and masked_softmax below).  A row of n elements: the max m of the kept
 * elements, t = x - m (-inf where masked), y = exp(t) with the dispatched
 * vector exp (vmath.h), then y / sum(y).  A row whose max is +inf or NaN
 * is NaN throughout, as x - max gives in PyTorch; a row whose max is -inf
 * (all -inf, or nothing kept) is NaN for softmax (PyTorch's softmax) and 0
 * for masked_softmax (PyTorch's attention gives 0 there).  Rows are independent, so the
 * result does not depend on the thread count.  The first-order backward,
 * dx = y (dy - sum(dy y)), is one kernel too; with create_graph the VJP is
 * written with ops (softmax_grad_ops). */
typedef struct {
    const void *x, *g, *y;
    void *out;
    const bool *keep; /* masked_softmax: a mask of x's shape, or NULL */
    int64_t rows, n, L; /* causal: row r is query r % L, keys j <= r % L kept */
    bool f32, causal;
    double scale; /* masked_softmax: the softmax of scale * x (1: none) */
} sm_job;

/* How a row applies masked_softmax's scale: not at all (1), folded into the
 * max (a positive finite scale keeps the order, so max(s x) = s max(x) in
 * the row's type, rounding being monotone), or by scaling the row first
 * (any other scale: the max of the products, NaN and infinities as the
 * separate multiply gave them). */
enum { SM_UNSCALED, SM_SCALE_MAX, SM_SCALE_FIRST };
static int sm_scale_mode(double scale) {
    return scale == 1 ? SM_UNSCALED : scale > 0 && scale < INFINITY ? SM_SCALE_MAX : SM_SCALE_FIRST;
}

#if defined(__SSE2__)
static double sm_sum_f32(const float *restrict x, int64_t n) {
    double s = 0;
    for (int64_t k0 = 0; k0 < n; k0 += LN_CHUNK) {
        int64_t e = k0 + LN_CHUNK < n ? k0 + LN_CHUNK : n, k = k0;
        __m128 a0 = _mm_setzero_ps(), a1 = a0;
        for (; k + 8 <= e; k += 8) {
            a0 = _mm_add_ps(a0, _mm_loadu_ps(x + k));
            a1 = _mm_add_ps(a1, _mm_loadu_ps(x + k + 4));
        }
        double t = ln_hsum(a0, a1);
        for (; k < e; k++) t += x[k];
        s += t;
    }
    return s;
}
static double sm_dot_f32(const float *restrict a, const float *restrict b, int64_t n) {
    double s = 0;
    for (int64_t k0 = 0; k0 < n; k0 += LN_CHUNK) {
        int64_t e = k0 + LN_CHUNK < n ? k0 + LN_CHUNK : n, k = k0;
        __m128 a0 = _mm_setzero_ps(), a1 = a0;
        for (; k + 8 <= e; k += 8) {
            a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(a + k), _mm_loadu_ps(b + k)));
            a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(a + k + 4), _mm_loadu_ps(b + k + 4)));
        }
        double t = ln_hsum(a0, a1);
        for (; k < e; k++) t += a[k] * b[k];
        s += t;
    }
    return s;
}
#else
static double sm_sum_f32(const float *restrict x, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += x[k];
    return s;
}
static double sm_dot_f32(const float *restrict a, const float *restrict b, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += (double)a[k] * b[k];
    return s;
}
#endif
static double sm_sum_f64(const double *restrict x, int64_t n) {
    double s[4] = {0};
    int64_t k = 0;
    for (; k + 4 <= n; k += 4)
        for (int l = 0; l < 4; l++) s[l] += x[k + l];
    for (; k < n; k++) s[0] += x[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
static double sm_dot_f64(const double *restrict a, const double *restrict b, int64_t n) {
    double s[4] = {0};
    int64_t k = 0;
    for (; k + 4 <= n; k += 4)
        for (int l = 0; l < 4; l++) s[l] += a[k + l] * b[k + l];
    for (; k < n; k++) s[0] += a[k] * b[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* One row, in two halves so that a group of rows can interleave them (the
 * sum and the reciprocal of one row are a chain of dependent additions
 * and a division; independent rows overlap there): sm_head_* writes
 * y[0..lim) = exp(sc * x - max) (kept entries of x[0..lim), mode from
 * sm_scale_mode) and returns lim, or fills the special row (NaN, or 0 for
 * masked_softmax's row with nothing kept) and returns -1; sm_tail_*
 * divides by the row's sum and zeroes y[lim..n).  The products sc * x are
 * rounded to T exactly as the separate multiply (a T tensor times (T) sc)
 * rounded them, so the result has the bits of mul + softmax. */
#define SM_FWD_ROW(T, SUFFIX, EXP_ROW)                                                  \
    static int64_t sm_head_##SUFFIX(const T *x, T *restrict y, int64_t n, int64_t lim,  \
                                    const bool *restrict keep, bool safe, T sc, int mode) { \
        if (mode == SM_SCALE_FIRST) { /* y holds sc * x, read back as the row */        \
            for (int64_t j = 0; j < lim; j++) y[j] = x[j] * sc;                         \
            x = y;                                                                      \
        }                                                                               \
        double m = -INFINITY;                                                           \
        bool nan = false;                                                               \
        if (!keep) {                                                                    \
            if (lim) m = tg_vmath()->max_##SUFFIX(lim, x); /* NaN if one is NaN */       \
            nan = m != m;                                                               \
        } else {                                                                        \
            for (int64_t j = 0; j < lim; j++)                                           \
                if (keep[j]) {                                                          \
                    if (x[j] > m) m = x[j];                                             \
                    else if (x[j] != x[j]) nan = true;                                  \
                }                                                                       \
        }                                                                               \
        T mt = (T)m;                                                                    \
        if (mode == SM_SCALE_MAX && !nan && m > -INFINITY) mt = mt * sc;                \
        if (nan || !(mt > -INFINITY && mt < INFINITY)) {                                \
            /* masked_softmax's row with nothing kept (or only -inf) is 0, as in \
             * PyTorch's attention; otherwise NaN, as x - max gives */          \
            T v = safe && mt == -INFINITY && !nan ? 0 : (T)NAN;                         \
            for (int64_t j = 0; j < n; j++) y[j] = v;                                   \
            return -1;                                                                  \
        }                                                                               \
        if (mode == SM_SCALE_MAX) {                                                     \
            if (keep)                                                                   \
                for (int64_t j = 0; j < lim; j++) y[j] = keep[j] ? x[j] * sc - mt : 0;  \
            else                                                                        \
                for (int64_t j = 0; j < lim; j++) y[j] = x[j] * sc - mt;                \
        } else {                                                                        \
            if (keep)                                                                   \
                for (int64_t j = 0; j < lim; j++) y[j] = keep[j] ? x[j] - mt : 0;       \
            else                                                                        \
                for (int64_t j = 0; j < lim; j++) y[j] = x[j] - mt;                     \
        }                                                                               \
        /* the exp over whole vectors: up to 15 more elements (0, not -inf: an  \
         * exp that underflows goes through slow subnormals; the tail zeroes  \
         * them and the sum stops at lim), not a scalar tail per row */      \
        int64_t le = (lim + 15) & ~(int64_t)15;                                         \
        if (le > n) le = n;                                                             \
        for (int64_t j = lim; j < le; j++) y[j] = 0;                                    \
        EXP_ROW;                                                                        \
        if (keep) /* the masked entries went through exp as 0 (see above) */            \
            for (int64_t j = 0; j < lim; j++) y[j] = keep[j] ? y[j] : 0;                \
        return lim;                                                                     \
    }                                                                                   \
    static void sm_tail_##SUFFIX(T *restrict y, int64_t n, int64_t lim, double sum) {   \
        T inv = (T)(1.0 / sum);                                                         \
        for (int64_t j = 0; j < lim; j++) y[j] *= inv;                                  \
        for (int64_t j = lim; j < n; j++) y[j] = 0;                                     \
    }
SM_FWD_ROW(float, f32, tg_vmath()->exp_f32(le, y, y))
SM_FWD_ROW(double, f64, for (int64_t j = 0; j < le; j++) y[j] = exp(y[j]))

#define SM_GROUP 4 /* rows whose sums and reciprocals overlap */
static void sm_fwd_range(int64_t r0, int64_t r1, void *vj) {
    const sm_job *j = vj;
    int mode = sm_scale_mode(j->scale);
    bool safe = j->keep || j->causal; /* masked_softmax */
    int64_t n = j->n;
    for (int64_t g0 = r0; g0 < r1; g0 += SM_GROUP) {
        int64_t g1 = g0 + SM_GROUP < r1 ? g0 + SM_GROUP : r1, lim[SM_GROUP];
        double sum[SM_GROUP];
        for (int64_t r = g0; r < g1; r++) {
            int64_t l = j->causal ? (r % j->L + 1 < n ? r % j->L + 1 : n) : n;
            const bool *keep = j->keep ? j->keep + r * n : NULL;
            lim[r - g0] = j->f32 ? sm_head_f32((const float *)j->x + r * n, (float *)j->out + r * n, n, l,
                                               keep, safe, (float)j->scale, mode)
                                 : sm_head_f64((const double *)j->x + r * n, (double *)j->out + r * n, n, l,
                                               keep, safe, j->scale, mode);
        }
        for (int64_t r = g0; r < g1; r++)
            if (lim[r - g0] >= 0)
                sum[r - g0] = j->f32 ? sm_sum_f32((const float *)j->out + r * n, lim[r - g0])
                                     : sm_sum_f64((const double *)j->out + r * n, lim[r - g0]);
        for (int64_t r = g0; r < g1; r++) {
            if (lim[r - g0] < 0) continue;
            if (j->f32) sm_tail_f32((float *)j->out + r * n, n, lim[r - g0], sum[r - g0]);
            else sm_tail_f64((double *)j->out + r * n, n, lim[r - g0], sum[r - g0]);
        }
    }
}
/* dx = y (dy - sum(dy y)) per row (times masked_softmax's scale), the
 * rows in groups as in the forward: the dots (a horizontal sum each) of
 * the group first, then its rows */
#define SM_BWD_ROWS(T, SUFFIX)                                                          \
    static void sm_bwd_rows_##SUFFIX(const sm_job *j, int64_t g0, int64_t g1) {         \
        int64_t n = j->n;                                                               \
        T sc = (T)j->scale, d[SM_GROUP];                                                \
        for (int64_t r = g0; r < g1; r++)                                               \
            d[r - g0] = (T)sm_dot_##SUFFIX((const T *)j->g + r * n, (const T *)j->y + r * n, n); \
        for (int64_t r = g0; r < g1; r++) {                                             \
            const T *restrict y = (const T *)j->y + r * n, *restrict g = (const T *)j->g + r * n; \
            T *restrict dx = (T *)j->out + r * n, dr = d[r - g0];                       \
            if (sc == 1)                                                                \
                for (int64_t k = 0; k < n; k++) dx[k] = y[k] * (g[k] - dr);             \
            else /* (dS) * sc, as the separate mul's VJP gave it */                     \
                for (int64_t k = 0; k < n; k++) dx[k] = y[k] * (g[k] - dr) * sc;        \
        }                                                                               \
    }
SM_BWD_ROWS(float, f32)
SM_BWD_ROWS(double, f64)
static void sm_bwd_range(int64_t r0, int64_t r1, void *vj) {
    const sm_job *j = vj;
    for (int64_t g0 = r0; g0 < r1; g0 += SM_GROUP) {
        int64_t g1 = g0 + SM_GROUP < r1 ? g0 + SM_GROUP : r1;
        if (j->f32) sm_bwd_rows_f32(j, g0, g1);
        else sm_bwd_rows_f64(j, g0, g1);
    }
}
/* rows per parallel chunk (an exp costs about 8 units of work) */
static int64_t sm_grain(int64_t n, int64_t cost) {
    int64_t per = n * cost;
    return per > 0 ? TG_PARALLEL_MIN_WORK / per + 1 : 1;
}

/* The softmax of scale * x along x's last axis (x contiguous, float), keep
 * a bool mask of x's shape or NULL, causal as masked_softmax.  A new
 * tensor, or NULL. */
static tg_tensor *softmax_rows(tg_tensor *x, const bool *keep, bool causal, double scale) {
    tg_tensor *y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    if (!y || x->numel == 0) return y;
    int64_t n = x->shape[x->ndim - 1];
    sm_job j = {.x = tg_tensor_data(x), .out = tg_tensor_data(y), .keep = keep,
                .rows = x->numel / n, .n = n, .L = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1,
                .f32 = x->dtype == TG_FLOAT32, .causal = causal, .scale = scale};
    void *kt = tg__kernel_begin(x->numel * 8);
    tg_parallel_for(j.rows, sm_grain(n, 10), sm_fwd_range, &j);
    tg__kernel_end(kt);
    return y;
}

/* dx = y (g - sum(g y, ax)) with ops (recorded under create_graph);
 * releases y */
static tg_tensor *softmax_grad_ops(tg_tensor *g, tg_tensor *y, int64_t ax) {
    tg_tensor *gy = tg_mul(g, y);
    tg_tensor *s = gy ? (y->ndim ? tg_sum(gy, &ax, 1, true) : tg_sum(gy, NULL, 0, true)) : NULL;
    tg_tensor_release(gy);
    tg_tensor *d = s ? take2(tg_sub, (tg_tensor_retain(g), g), s) : NULL;
    return d ? take2(tg_mul, y, d) : (tg_tensor_release(y), NULL);
}

/* The gradient of softmax(scale * x) along the last axis (scale 1 for
 * softmax): one kernel for a first-order backward, softmax_grad_ops (times
 * the scale) under create_graph.  Releases y. */
static tg_tensor *softmax_grad(tg_tensor *g, tg_tensor *y, int64_t ax, double scale) {
    if (tg_grad_enabled() || y->numel == 0 || ax != y->ndim - 1 || g->dtype != y->dtype ||
        !tg_tensor_is_contiguous(y)) {
        tg_tensor *d = softmax_grad_ops(g, y, ax);
        if (d && scale != 1) {
            tg_tensor *r = tg_mul_scalar(d, scale);
            tg_tensor_release(d);
            d = r;
        }
        return d;
    }
    tg_tensor *gc = contiguous_ref(g);
    tg_tensor *dx = gc ? tg_tensor_empty(y->ndim, y->shape, y->dtype) : NULL;
    if (dx) {
        int64_t n = y->shape[y->ndim - 1];
        sm_job j = {.g = tg_tensor_data(gc), .y = tg_tensor_data(y), .out = tg_tensor_data(dx),
                    .rows = y->numel / n, .n = n, .f32 = y->dtype == TG_FLOAT32, .scale = scale};
        void *kt = tg__kernel_begin(y->numel * 3);
        tg_parallel_for(j.rows, sm_grain(n, 3), sm_bwd_range, &j);
        tg__kernel_end(kt);
    }
    tg_tensor_release(gc);
    tg_tensor_release(y);
    return dx;
}

/* ===================================================================== */
/* softmax / log_softmax                                                  */
/* ===================================================================== */

/* logsumexp along ax as softmax and log_softmax need it: PyTorch and a
 * max-shifted NumPy softmax compute x - max first, so a row whose max is
 * +-inf gives NaN everywhere (inf - inf); tg_logsumexp gives inf for such a
 * row (right for logsumexp itself), after which softmax([inf, 1]) would be
 * [nan, 0].  lse + (m - m) is lse exactly where m is finite and NaN where
 * it is infinite.  Grad mode is off in the callers. */
static tg_tensor *shift_lse(tg_tensor *x, int64_t ax) {
    tg_tensor *lse = x->ndim ? tg_logsumexp(x, &ax, 1, true) : tg_logsumexp(x, NULL, 0, true);
    tg_tensor *m = lse ? (x->ndim ? tg_max(x, &ax, 1, true) : tg_max(x, NULL, 0, true)) : NULL;
    tg_tensor *z = m ? tg_sub(m, m) : NULL;
    tg_tensor_release(m);
    return take2(tg_add, lse, z);
}

/* x - logsumexp(x) along ax, as d - logsumexp(d) with d = x - max: the max
 * taken out first, log(sum) does not vanish next to a huge max
 * (softmax([1e17, 1e17]) was [1, 1]: 1e17 + log 2 rounds to 1e17; corpus
 * regress-softmax-huge-equal-logits).  Grad mode is off in the callers. */
static tg_tensor *log_probs(tg_tensor *x, int64_t ax) {
    tg_tensor *m = x->ndim ? tg_max(x, &ax, 1, true) : tg_max(x, NULL, 0, true);
    tg_tensor *d = m ? take2(tg_sub, (tg_tensor_retain(x), x), m) : NULL;
    tg_tensor *lse = d ? shift_lse(d, ax) : NULL;
    return lse ? take2(tg_sub, d, lse) : (tg_tensor_release(d), NULL);
}

tg_tensor *tg_softmax(tg_tensor *x, int64_t axis) {
    int64_t ax;
    if (tg__require_float("softmax", x) || tg__norm_axis("softmax", axis, x->ndim, &ax)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y;
    if (x->numel == 0) { /* no element to normalise: an empty result, as in PyTorch */
        y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    } else if (ax == x->ndim - 1) { /* rows: the kernel */
        tg_tensor *xc = contiguous_ref(x);
        y = xc ? softmax_rows(xc, NULL, false, 1.0) : NULL;
        tg_tensor_release(xc);
    } else {
        tg_tensor *out = log_probs(x, ax);
        y = out ? tg_exp(out) : NULL;
        tg_tensor_release(out);
    }
    tg_set_grad_enabled(prev);
    tg_entry *e;
    y = tg__finish(&tg_opdef_softmax, 1, &x, y, &e);
    if (e) {
        e->params.i[0] = ax;
        tg__save_output(e, y);
    }
    return y;
}
static tg_status softmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* dx = y * (dy - sum(dy * y, axis)) */
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    CHECK(gi[0] = softmax_grad(g, y, e->params.i[0], 1.0));
    return TG_OK;
}
static tg_tensor *apply_softmax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_softmax(in[0], p->i[0]);
}
TG_DEFINE_OP(softmax, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 5, 4},
             .forward = "y = exp(x) / sum(exp(x), axis)", .forward_tex = "y_i = \\frac{e^{x_i}}{\\sum_j e^{x_j}}",
             .vjp = "dx = y * (dy - sum(dy * y, axis))",
             .vjp_tex = "\\bar x = y \\odot (\\bar y - \\textstyle\\sum_j \\bar y_j y_j)",
             .doc = "Softmax along an axis (i0), computed stably.", .backward = softmax_vjp,
             .apply = apply_softmax, .examples = "3x5|i0=1;3x5|i0=0;T4x3|i0=-1;2x3x4|i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* masked_softmax: the softmax of x's last axis over the kept entries only,
 * 0 at the others: the attention weights of scaled_dot_product_attention
 * with is_causal (keys j <= query i of the last two dims, PyTorch's tril of
 * ones (L, S)) and/or a keep-mask (any dtype, nonzero keeps, broadcast to
 * x).  One pass instead of where(mask, x, -inf) and a softmax; the same
 * gradient as softmax (0 at the masked entries, where y is 0).  A row with
 * nothing kept, or only -inf kept, is 0 (PyTorch's attention); a row with
 * a kept +inf or NaN is NaN.  With a scale it is the softmax of scale * x
 * (attention's 1/sqrt(E)): the products are rounded as a separate multiply
 * rounds them, and the VJP multiplies by the scale in the same kernel, so
 * the scores need no elementwise pass of their own, forward or backward. */
static tg_tensor *masked_softmax(tg_tensor *x, tg_tensor *mask, bool causal, bool scaled, double scale) {
    const char *who = "masked_softmax";
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, x)) return NULL;
    if (x->ndim < (causal ? 2 : 1))
        return TG_FAIL(TG_ERR_VALUE, "%s: expected an input of at least %d dims%s, got %s", who,
                       causal ? 2 : 1, causal ? " (causal: (..., L, S))" : "", tg__shp(x));
    if (mask) {
        int nd;
        int64_t sh[TG_MAX_DIMS];
        if (tg__broadcast_shapes(who, mask->ndim, mask->shape, x->ndim, x->shape, &nd, sh) ||
            !tg__same_shape(nd, sh, x->ndim, x->shape)) {
            tg_error_clear();
            return TG_FAIL(TG_ERR_VALUE, "%s: mask of shape %s does not broadcast to the input %s", who,
                           tg__shp(mask), tg__shp(x));
        }
    }
    if (!scaled) scale = 1.0;
    tg_tensor *xc = contiguous_ref(x);
    tg_tensor *keep = xc && mask ? tg_tensor_empty(x->ndim, x->shape, TG_BOOL) : NULL;
    if (keep) tg__copy_into(keep, mask); /* nonzero -> true */
    tg_tensor *y = xc && (keep || !mask)
                       ? softmax_rows(xc, keep ? tg_tensor_data(keep) : NULL, causal, scale)
                       : NULL;
    tg_tensor_release(keep);
    tg_tensor_release(xc);
    tg_tensor *in[2] = {x, mask};
    tg_entry *e;
    y = tg__finish(&tg_opdef_masked_softmax, mask ? 2 : 1, in, y, &e);
    if (e) {
        e->params.i[0] = causal;
        e->params.i[1] = scale != 1;
        e->params.f[0] = scale;
        tg__save_output(e, y);
    }
    return y;
}
tg_tensor *tg_masked_softmax(tg_tensor *x, tg_tensor *mask, bool causal) {
    return masked_softmax(x, mask, causal, false, 1.0);
}
static tg_status masked_softmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    CHECK(gi[0] = softmax_grad(g, y, y->ndim - 1, e->params.i[1] ? e->params.f[0] : 1.0));
    return TG_OK;
}
static tg_tensor *apply_masked_softmax(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 1 || n > 2)
        return TG_FAIL(TG_ERR_VALUE, "masked_softmax: expected 1 or 2 inputs (x, mask), got %d", n);
    return masked_softmax(in[0], n > 1 ? in[1] : NULL, p->i[0] != 0, p->i[1] != 0, p->f[0]);
}
TG_DEFINE_OP(masked_softmax, .arity = -1, .diff_mask = 1,
             .dtypes = "float32,float64 (mask: any dtype, nonzero keeps)",
             .flops = {TG_FLOPS_INPUT, 5, 4},
             .forward = "y = exp(s x) / sum(exp(s x)) over the kept entries of the last axis, 0 elsewhere",
             .forward_tex = "y_j = \\frac{m_j e^{s x_j}}{\\sum_k m_k e^{s x_k}}",
             .vjp = "dx = s * y * (dy - sum(dy * y, -1))",
             .vjp_tex = "\\bar x = s\\, y \\odot (\\bar y - \\textstyle\\sum_j \\bar y_j y_j)",
             .doc = "Softmax of the last axis over the kept entries (optional mask input: nonzero keeps; "
                    "i0 causal: key j <= query i of the last two dims; i1 1: f0 is a scale s applied to "
                    "x first, else s = 1), 0 at the others and in a row with nothing kept; "
                    "scaled_dot_product_attention's weights.",
             .backward = masked_softmax_vjp, .apply = apply_masked_softmax,
             .examples = "3x5|i0=1;2x4x3|i0=1;T4x3|i0=1;3x5,+3x5;2x3x5,+5|i0=1;"
                         "2x4x3|i0=1 i1=1 f0=0.35;3x5,+3x5|i1=1 f0=-1.5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_log_softmax(tg_tensor *x, int64_t axis) {
    int64_t ax;
    if (tg__require_float("log_softmax", x) || tg__norm_axis("log_softmax", axis, x->ndim, &ax)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y;
    if (x->numel == 0) { /* see softmax */
        y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    } else {
        y = log_probs(x, ax);
    }
    tg_set_grad_enabled(prev);
    tg_entry *e;
    y = tg__finish(&tg_opdef_log_softmax, 1, &x, y, &e);
    if (e) {
        e->params.i[0] = ax;
        tg__save_output(e, y);
    }
    return y;
}
static tg_status log_softmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* dx = dy - exp(y) * sum(dy, axis) */
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    int64_t ax = e->params.i[0];
    tg_tensor *p = tg_exp(y);
    tg_tensor_release(y);
    tg_tensor *s = p ? (g->ndim ? tg_sum(g, &ax, 1, true) : tg_sum(g, NULL, 0, true)) : NULL;
    tg_tensor *ps = take2(tg_mul, p, s);
    gi[0] = ps ? take2(tg_sub, (tg_tensor_retain(g), g), ps) : NULL;
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_log_softmax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_log_softmax(in[0], p->i[0]);
}
TG_DEFINE_OP(log_softmax, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 5, 3},
             .forward = "y = x - logsumexp(x, axis)", .forward_tex = "y_i = x_i - \\log\\sum_j e^{x_j}",
             .vjp = "dx = dy - exp(y) * sum(dy, axis)",
             .vjp_tex = "\\bar x = \\bar y - e^{y} \\textstyle\\sum_j \\bar y_j",
             .doc = "Log of the softmax along an axis (i0), computed stably.",
             .backward = log_softmax_vjp, .apply = apply_log_softmax,
             .examples = "3x5|i0=1;3x5|i0=0;T4x3|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* one_hot                                                                */
/* ===================================================================== */

static tg_status check_labels(const char *who, const tg_tensor *labels, int64_t C) {
    if (labels->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE,
                            "%s: class labels must be int64, got %s (convert with .astype(tg.int64))",
                            who, tg_dtype_name(labels->dtype));
    for (int64_t i = 0; i < labels->numel; i++) {
        int64_t v = tg__get_flat_i64(labels, i);
        if (v < 0 || v >= C)
            return tg_error_set(TG_ERR_INDEX,
                                "%s: label %lld at position %lld is out of range for %lld classes "
                                "(expected 0 <= label < %lld)",
                                who, (long long)v, (long long)i, (long long)C, (long long)C);
    }
    return TG_OK;
}

tg_tensor *tg_one_hot(tg_tensor *labels, int64_t C, tg_dtype dt) {
    if (!tg_dtype_size(dt)) return TG_FAIL(TG_ERR_TYPE, "one_hot: invalid dtype %d", (int)dt);
    if (C < -1)
        return TG_FAIL(TG_ERR_VALUE,
                       "one_hot: num_classes must be >= 0, or -1 to infer it from the labels; "
                       "got %lld",
                       (long long)C);
    if (C == -1) { /* infer from the data, like torch */
        C = 0;
        if (labels->dtype == TG_INT64)
            for (int64_t i = 0; i < labels->numel; i++) {
                int64_t v = tg__get_flat_i64(labels, i);
                if (v + 1 > C) C = v + 1;
            }
    }
    if (check_labels("one_hot", labels, C)) return NULL;
    if (labels->ndim >= TG_MAX_DIMS) return TG_FAIL(TG_ERR_VALUE, "one_hot: too many dimensions");
    int64_t sh[TG_MAX_DIMS];
    memcpy(sh, labels->shape, sizeof sh);
    sh[labels->ndim] = C;
    tg_tensor *out = tg_tensor_zeros(labels->ndim + 1, sh, dt);
    if (!out) return NULL;
    char *p = tg_tensor_data(out);
    size_t isz = tg_dtype_size(dt);
    for (int64_t i = 0; i < labels->numel; i++) {
        int64_t v = tg__get_flat_i64(labels, i);
        char *q = p + (i * C + v) * (int64_t)isz;
        switch (dt) {
        case TG_FLOAT32: *(float *)q = 1; break;
        case TG_FLOAT64: *(double *)q = 1; break;
        case TG_INT64: *(int64_t *)q = 1; break;
        case TG_INT32: *(int32_t *)q = 1; break;
        default: *(uint8_t *)q = 1; break; /* uint8, bool */
        }
    }
    return out;
}
static tg_tensor *apply_one_hot(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_one_hot(in[0], p->i[0], (tg_dtype)tg__int_param(p->i[1]));
}
TG_DEFINE_OP(one_hot, .arity = 1, .diff_mask = 0, .dtypes = "int64 -> float32,float64,int64,int32,uint8,bool",
             .forward = "y[..., c] = [labels == c]", .forward_tex = "y_{ic} = [\\,y_i = c\\,]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "One-hot encoding of int64 labels (i0 classes, i1 dtype).", .backward = NULL,
             .apply = apply_one_hot, .examples = "i5:6|i0=5;i3:2x3|i0=4 i1=1");

/* ===================================================================== */
/* cross_entropy / nll_loss                                               */
/* ===================================================================== */

/* Reduce per-sample losses (N,) as asked. */
static tg_tensor *reduce_loss(tg_tensor *l, tg_reduction red) {
    if (red == TG_REDUCTION_NONE) {
        tg_tensor_retain(l);
        return l;
    }
    return red == TG_REDUCTION_SUM ? tg_sum(l, NULL, 0, false) : tg_mean(l, NULL, 0, false);
}

/* Scale a (N, C) or same-shape VJP factor d by the upstream gradient g of a
 * reduced loss: mean -> g/N, sum -> g, none -> g per sample (column). */
static tg_tensor *scale_by_upstream(tg_tensor *d, tg_tensor *g, tg_reduction red, int64_t n,
                                    bool per_row) {
    if (red == TG_REDUCTION_NONE) {
        tg_tensor *gg = per_row ? tg_unsqueeze(g, -1) : (tg_tensor_retain(g), g);
        return take2(tg_mul, (tg_tensor_retain(d), d), gg);
    }
    tg_tensor *r = tg_mul(d, g);
    if (!r || red == TG_REDUCTION_SUM) return r;
    tg_tensor *s = tg_mul_scalar(r, n ? 1.0 / (double)n : 0.0);
    tg_tensor_release(r);
    return s;
}

static tg_status check_class_input(const char *who, const tg_tensor *z, const tg_tensor *labels) {
    if (tg__require_float(who, z)) return tg_error_status();
    if (z->ndim != 2 || labels->ndim != 1 || labels->shape[0] != z->shape[0])
        return tg_error_set(TG_ERR_VALUE,
                            "%s: expected input of shape (N, C) and labels of shape (N,), got %s "
                            "and %s",
                            who, tg__shp(z), tg__shp(labels));
    return check_labels(who, labels, z->shape[1]);
}

/* Run `f` on 2-D/1-D-labels versions of z, labels: 1-D z means one sample. */
static tg_tensor *with_batch(tg_tensor *(*f)(tg_tensor *, tg_tensor *, tg_reduction), tg_tensor *z,
                             tg_tensor *labels, tg_reduction red) {
    int64_t one = 1, sh[2] = {1, z->shape[0]};
    tg_tensor *z2 = tg_reshape(z, 2, sh);
    tg_tensor *l2 = z2 ? tg_reshape(labels, 1, &one) : NULL;
    tg_tensor *r = l2 ? f(z2, l2, red) : NULL;
    tg_tensor_release(z2);
    tg_tensor_release(l2);
    if (r && red == TG_REDUCTION_NONE) {
        tg_tensor *s = tg_reshape(r, 0, NULL);
        tg_tensor_release(r);
        r = s;
    }
    return r;
}

/* The float32 rows of cross_entropy through the vector kernels
 * (kernels/vmath.h, the best build this CPU has), for rows r0..r0+R of the
 * contiguous (N, C) logits z: m[i] = the row's max (NaN if the row holds
 * one), e = exp(z - m) into buf (R x C), s[i] = the row's sum of e in
 * float64 (a fixed order: the same bits on every path).  The exp runs once
 * over the R x C block (one long vector loop, not R short ones with their
 * tails).  The loss is (m - z[y]) + log(s) in float64: the row's largest term
 * is e^0 = 1 exactly and s is a float64 sum, so a small loss (a confident
 * right answer, s = 1 + r) keeps its float32 relative accuracy down to
 * about 1e-9 (below, the float64 rounding of 1 + r, 1e-16, is what is left,
 * as before this path); the other terms carry the vector exp's error (<= 1.5
 * ulp); z - m is exact (hi + lo, carried into the exp as e^hi (1 + lo)).  A row with NaN or +inf gets m = s = NaN
 * (log_softmax is NaN there, as in PyTorch), a row of -inf m = 0 and s = 0
 * (NaN again: -inf - -inf). */
enum { CE_BLOCK = 16384 }; /* floats of e per block: 64 KiB, in L2 */

static void ce_rows_f32(const tg_vmath_table *vm, int64_t r0, int64_t R, int64_t C, const float *z,
                        float *buf, float *lo, double *m, double *s) {
    for (int64_t i = 0; i < R; i++) {
        const float *row = z + (r0 + i) * C;
        float *e = buf + i * C, *l = lo + i * C;
        double mi = C > 0 ? vm->max_f32(C, row) : -INFINITY;
        if (mi == INFINITY) mi = NAN; /* inf - inf */
        else if (isinf(mi)) mi = 0;   /* a row of -inf */
        m[i] = mi;
        float mf = mi != mi ? 0.0f : (float)mi; /* exact: one of the row's floats */
        for (int64_t c = 0; c < C; c++) {
            /* z - m = hi + lo exactly (Knuth's TwoSum: six float operations,
             * exact in round-to-nearest; the build never contracts them into
             * FMAs, -ffp-contract=off); NaN/inf: lo is NaN, unused */
            float a = row[c], hi = a - mf, bv = hi - a, av = hi - bv;
            e[c] = hi;
            l[c] = (a - av) + (-mf - bv);
        }
    }
    vm->exp_f32(R * C, buf, buf);
    /* e^(hi + lo) = e^hi (1 + lo) to float32 accuracy: z - m is not a float32
     * when the two are far apart, and its rounding (|z - m| 2^-24 relative)
     * would otherwise be the largest error of the small terms */
    for (int64_t k = 0; k < R * C; k++) buf[k] += buf[k] * (lo[k] == lo[k] ? lo[k] : 0.0f);
    for (int64_t i = 0; i < R; i++) s[i] = m[i] != m[i] ? NAN : vm->sum_f32(C, buf + i * C);
}

/* rows a block of C_BLOCK floats holds (at least one) */
static int64_t ce_block_rows(int64_t N, int64_t C) {
    int64_t R = C > 0 && C < CE_BLOCK ? CE_BLOCK / C : 1;
    return R < N ? R : N;
}

tg_tensor *tg_cross_entropy(tg_tensor *z, tg_tensor *labels, tg_reduction red) {
    if (check_red("cross_entropy", red)) return NULL;
    if (z->ndim == 1 && labels->ndim == 0) return with_batch(tg_cross_entropy, z, labels, red);
    if (check_class_input("cross_entropy", z, labels)) return NULL;
    int64_t N = z->shape[0], C = z->shape[1];
    /* per-sample loss: logsumexp(z_i) - z_i[y_i], one pass per row */
    tg_tensor *zc = tg_tensor_is_contiguous(z) ? (tg_tensor_retain(z), z) : tg__copy(z);
    tg_tensor *l = zc ? tg_tensor_empty(1, &N, z->dtype) : NULL;
    if (!l) {
        tg_tensor_release(zc);
        return NULL;
    }
    if (z->dtype == TG_FLOAT32 && N > 0) {
        int64_t R = ce_block_rows(N, C);
        float *buf = malloc((size_t)(2 * R * C + 1) * sizeof(float));
        double *m = buf ? malloc((size_t)R * 2 * sizeof(double)) : NULL, *sums = m ? m + R : NULL;
        if (!m) {
            free(buf);
            tg_tensor_release(zc);
            tg_tensor_release(l);
            return TG_FAIL(TG_ERR_MEMORY, "cross_entropy: out of memory for %lld x %lld logits",
                           (long long)R, (long long)C);
        }
        const tg_vmath_table *vm = tg_vmath();
        const float *zd = tg_tensor_data(zc);
        float *ld = tg_tensor_data(l);
        for (int64_t r0 = 0; r0 < N; r0 += R) {
            int64_t nr = N - r0 < R ? N - r0 : R;
            ce_rows_f32(vm, r0, nr, C, zd, buf, buf + R * C, m, sums);
            for (int64_t i = 0; i < nr; i++) {
                int64_t y = tg__get_flat_i64(labels, r0 + i);
                /* m - z[y] first: exact, and 0 for the row's largest entry, so that a
                 * small log(s) is not rounded away against m */
                ld[r0 + i] = (float)((m[i] - (double)zd[(r0 + i) * C + y]) + log(sums[i]));
            }
        }
        free(m);
        free(buf);
    }
    for (int64_t i = 0; i < N && z->dtype != TG_FLOAT32; i++) {
        int64_t y = tg__get_flat_i64(labels, i);
        double m = -INFINITY, s = 0, zy;
        const double *row = (const double *)tg_tensor_data(zc) + i * C;
        for (int64_t c = 0; c < C; c++) m = row[c] > m || row[c] != row[c] ? row[c] : m;
        if (m == INFINITY) m = NAN; /* log_softmax of the row is NaN (inf - inf), as in PyTorch */
        else if (isinf(m)) m = 0;
        for (int64_t c = 0; c < C; c++) s += exp(row[c] - m);
        zy = row[y];
        ((double *)tg_tensor_data(l))[i] = m + log(s) - zy;
    }
    tg_tensor_release(zc);
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = reduce_loss(l, red);
    tg_set_grad_enabled(prev);
    tg_tensor_release(l);
    return tg__record2(&tg_opdef_cross_entropy, z, labels, out, red);
}

/* The first-order gradient of float32 cross_entropy in one pass per row:
 * dz = (softmax(z) - onehot(y)) * k with k = dL (sum), dL / N (mean) or
 * dL_i (none); softmax from the row's e = exp(z - m) times 1/s (ce_rows_f32).
 * *res stays NULL (and TG_OK is returned) when it does not apply: the
 * caller then takes the composed path. */
static tg_status ce_grad_f32(tg_tensor *z, tg_tensor *labels, tg_tensor *g, tg_reduction red,
                             tg_tensor **res) {
    *res = NULL;
    int64_t N = z->shape[0], C = z->shape[1];
    if (z->dtype != TG_FLOAT32 || g->dtype != TG_FLOAT32 || C < 1) return TG_OK;
    if (red == TG_REDUCTION_NONE ? !(g->ndim == 1 && g->shape[0] == N) : g->ndim != 0) return TG_OK;
    tg_tensor *zc = tg_tensor_is_contiguous(z) ? (tg_tensor_retain(z), z) : tg__copy(z);
    int64_t sh[2] = {N, C};
    tg_tensor *d = zc ? tg_tensor_empty(2, sh, TG_FLOAT32) : NULL;
    if (!d) {
        tg_tensor_release(zc);
        return tg_error_status();
    }
    int64_t R = ce_block_rows(N, C);
    double *ms = malloc((size_t)R * 2 * sizeof(double) + 1);
    float *lo = ms ? malloc((size_t)(R * C + 1) * sizeof(float)) : NULL;
    if (!lo) {
        free(ms);
        tg_tensor_release(zc);
        tg_tensor_release(d);
        return tg_error_set(TG_ERR_MEMORY, "cross_entropy backward: out of memory");
    }
    const tg_vmath_table *vm = tg_vmath();
    float *out = tg_tensor_data(d);
    double k = red == TG_REDUCTION_NONE ? 0 : tg_tensor_get_flat(g, 0);
    if (red == TG_REDUCTION_MEAN) k = N ? k / (double)N : 0;
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t nr = N - r0 < R ? N - r0 : R;
        /* e = exp(z - m) straight into the gradient's rows */
        ce_rows_f32(vm, r0, nr, C, tg_tensor_data(zc), out + r0 * C, lo, ms, ms + R);
        for (int64_t i = 0; i < nr; i++) {
            float *o = out + (r0 + i) * C;
            double ki = red == TG_REDUCTION_NONE ? tg_tensor_get_flat(g, r0 + i) : k;
            float q = (float)(ki / ms[R + i]); /* NaN for a NaN or +inf row: NaN throughout */
            for (int64_t c = 0; c < C; c++) o[c] *= q;
            int64_t y = tg__get_flat_i64(labels, r0 + i);
            o[y] = (float)((double)o[y] - ki);
        }
    }
    free(lo);
    free(ms);
    tg_tensor_release(zc);
    *res = d;
    return TG_OK;
}

static tg_status cross_entropy_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *z = tg_entry_saved(e, 0);
    CHECK(z);
    tg_tensor *labels = tg_entry_saved(e, 1);
    CHECK(labels);
    tg_reduction red = (tg_reduction)e->params.i[0];
    if (!tg_grad_enabled() && z->dtype == TG_FLOAT32) { /* no create_graph: one fused pass */
        tg_status st = ce_grad_f32(z, labels, g, red, &gi[0]);
        if (st != TG_OK || gi[0]) return st;
    }
    /* dz = (softmax(z) - onehot(y)) * dL  (/N for mean), with ops: differentiable again */
    tg_tensor *p = tg_softmax(z, 1);
    tg_tensor *oh = p ? tg_one_hot(labels, z->shape[1], z->dtype) : NULL;
    tg_tensor *d = take2(tg_sub, p, oh);
    CHECK(d);
    gi[0] = scale_by_upstream(d, g, red, z->shape[0], true);
    tg_tensor_release(d);
    CHECK(gi[0]);
    return TG_OK;
}
/* the options (the second part of this file): an optional class-weight input, i1 ignore_index
 * when i2 is 1 (else -100), f0 label_smoothing; float targets are class
 * probabilities.  The plain case runs this op, the others a composite. */
/* cross_entropy, nll_loss and bce_with_logits are variadic (optional weight
 * inputs after the two required ones): fewer than two is refused here,
 * before anything reads in[1]. */
static tg_tensor *need_two(const char *who, int n) {
    return TG_FAIL(TG_ERR_VALUE, "%s: expected at least 2 inputs (input, target), got %d", who, n);
}

static tg_tensor *apply_cross_entropy(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 2) return need_two("cross_entropy", n);
    return tg_cross_entropy_ex(in[0], in[1], n > 2 ? in[2] : NULL, p->i[2] ? p->i[1] : -100,
                               p->f[0], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(cross_entropy, .arity = -1, .diff_mask = 1, .dtypes = "float32,float64 logits; int64 labels",
             .flops = {TG_FLOPS_INPUT, 6, 3},
             .forward = "L = mean_i(logsumexp(z_i) - z_i[y_i])",
             .forward_tex = "L = \\frac{1}{N}\\sum_i \\Big(\\log\\sum_c e^{z_{ic}} - z_{i y_i}\\Big)",
             .vjp = "dz = (softmax(z) - onehot(y)) * dL / N",
             .vjp_tex = "\\bar z = \\frac{\\bar L}{N}\\,(\\operatorname{softmax}(z) - \\operatorname{onehot}(y))",
             .doc = "Softmax cross-entropy on logits with int64 class labels or class probabilities "
                    "(i0 reduction: 0 none, 1 mean, 2 sum; optional class-weight input; i1 "
                    "ignore_index if i2 = 1; f0 label_smoothing; (N, C, d1, ...) inputs).",
             .backward = cross_entropy_vjp, .apply = apply_cross_entropy,
             .examples = "4x5,i5:4|i0=1;4x5,i5:4|i0=0;4x5,i5:4|i0=2;T5x3,i3:5|i0=1;5,i5:-|i0=1;"
                         "4x5,i5:4,+5|i0=1;6x3,i3:6|i0=1 i1=1 i2=1;6x3,i3:6,+3|i0=1 i1=0 i2=1;"
                         "4x5,i5:4|i0=1 f0=0.2;4x5,i5:4,+5|i0=2 f0=0.1;2x3x4,i3:2x4|i0=0;"
                         "2x3x2x2,i3:2x2x2,+3|i0=1 f0=0.1;4x5,u4x5|i0=1;4x5,u4x5,+5|i0=0 f0=0.3;"
                         "2x3x4,u2x3x4|i0=2",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar z");

tg_tensor *tg_nll_loss(tg_tensor *lp, tg_tensor *labels, tg_reduction red) {
    if (check_red("nll_loss", red)) return NULL;
    if (lp->ndim == 1 && labels->ndim == 0) return with_batch(tg_nll_loss, lp, labels, red);
    if (check_class_input("nll_loss", lp, labels)) return NULL;
    int64_t N = lp->shape[0];
    tg_tensor *l = tg_tensor_empty(1, &N, lp->dtype);
    if (!l) return NULL;
    for (int64_t i = 0; i < N; i++) {
        int64_t y = tg__get_flat_i64(labels, i);
        double v = -tg_tensor_get_flat(lp, i * lp->shape[1] + y);
        if (lp->dtype == TG_FLOAT32) ((float *)tg_tensor_data(l))[i] = (float)v;
        else ((double *)tg_tensor_data(l))[i] = v;
    }
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = reduce_loss(l, red);
    tg_set_grad_enabled(prev);
    tg_tensor_release(l);
    tg_tensor *in[2] = {lp, labels};
    tg_entry *e;
    out = tg__finish(&tg_opdef_nll_loss, 2, in, out, &e);
    if (e) {
        e->params.i[0] = red;
        e->params.ndim = 2;
        e->params.shape[0] = lp->shape[0];
        e->params.shape[1] = lp->shape[1];
        if (tg__save(e, labels)) { /* read by the VJP: see cross_entropy */
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status nll_loss_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *labels = tg_entry_saved(e, 0);
    CHECK(labels);
    tg_tensor *oh = tg_one_hot(labels, e->params.shape[1], g->dtype);
    tg_tensor *d = oh ? tg_neg(oh) : NULL;
    tg_tensor_release(oh);
    CHECK(d);
    gi[0] = scale_by_upstream(d, g, (tg_reduction)e->params.i[0], e->params.shape[0], true);
    tg_tensor_release(d);
    CHECK(gi[0]);
    return TG_OK;
}
/* options as cross_entropy's (no label smoothing, no probabilities) */
static tg_tensor *apply_nll_loss(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 2) return need_two("nll_loss", n);
    return tg_nll_loss_ex(in[0], in[1], n > 2 ? in[2] : NULL, p->i[2] ? p->i[1] : -100,
                          (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(nll_loss, .arity = -1, .diff_mask = 1, .dtypes = "float32,float64 log-probs; int64 labels",
             .flops = {TG_FLOPS_INPUT, 0, 1},
             .forward = "L = -mean_i(logp_i[y_i])", .forward_tex = "L = -\\frac{1}{N}\\sum_i \\log p_{i y_i}",
             .vjp = "dlogp = -onehot(y) * dL / N", .vjp_tex = "\\bar{\\ell} = -\\frac{\\bar L}{N}\\operatorname{onehot}(y)",
             .doc = "Negative log-likelihood of log-probabilities (i0 reduction; optional "
                    "class-weight input; i1 ignore_index if i2 = 1; (N, C, d1, ...) inputs).",
             .backward = nll_loss_vjp, .apply = apply_nll_loss,
             .examples = "4x5,i5:4|i0=1;4x5,i5:4|i0=0;4x5,i5:4|i0=2;4x5,i5:4,+5|i0=1;"
                         "6x3,i3:6|i0=1 i1=1 i2=1;6x3,i3:6,+3|i0=0 i1=2 i2=1;2x3x4,i3:2x4,+3|i0=1;"
                         "5,i5:-,+5|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar{\\ell}");

/* ===================================================================== */
/* mse_loss / bce_with_logits                                             */
/* ===================================================================== */

static tg_status check_pair(const char *who, const tg_tensor *a, const tg_tensor *b) {
    if (tg__require_float(who, a) || tg__require_float(who, b)) return tg_error_status();
    if (!tg__same_shape(a->ndim, a->shape, b->ndim, b->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: input and target must have the same shape, got %s and %s (a "
                            "silent broadcast here is a classic bug; reshape one of them)",
                            who, tg__shp(a), tg__shp(b));
    return TG_OK;
}

tg_tensor *tg_mse_loss(tg_tensor *p, tg_tensor *t, tg_reduction red) {
    if (check_red("mse_loss", red) || check_pair("mse_loss", p, t)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *d = tg_sub(p, t);
    tg_tensor *d2 = d ? tg_mul(d, d) : NULL;
    tg_tensor *out = d2 ? reduce_loss(d2, red) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(d);
    tg_tensor_release(d2);
    return tg__record2(&tg_opdef_mse_loss, p, t, out, red);
}
static tg_status mse_loss_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *p = tg_entry_saved(e, 0), *t = p ? tg_entry_saved(e, 1) : NULL;
    CHECK(t);
    tg_tensor *d = tg_sub(p, t);
    tg_tensor *d2 = d ? tg_mul_scalar(d, 2.0) : NULL;
    tg_tensor_release(d);
    CHECK(d2);
    tg_tensor *gp = scale_by_upstream(d2, g, (tg_reduction)e->params.i[0], p->numel, false);
    tg_tensor_release(d2);
    CHECK(gp);
    if (tg_entry_needs_grad(e, 1)) {
        gi[1] = tg_neg(gp);
        if (!gi[1]) {
            tg_tensor_release(gp);
            return tg_error_status();
        }
    }
    if (tg_entry_needs_grad(e, 0)) gi[0] = gp;
    else tg_tensor_release(gp);
    return TG_OK;
}
static tg_tensor *apply_mse_loss(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_mse_loss(in[0], in[1], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(mse_loss, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 3, 3},
             .forward = "L = mean((p - t)^2)", .forward_tex = "L = \\frac{1}{n}\\sum (p - t)^{2}",
             .vjp = "dp = 2 (p - t) dL / n, dt = -dp", .vjp_tex = "\\bar p = \\frac{2\\bar L}{n}(p - t),\\quad \\bar t = -\\bar p",
             .doc = "Mean squared error (i0 reduction).", .backward = mse_loss_vjp,
             .apply = apply_mse_loss, .examples = "3x4,3x4|i0=1;3x4,3x4|i0=0;5,5|i0=2;T3x4,3x4|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar p;\\bar t");

tg_tensor *tg_bce_with_logits(tg_tensor *x, tg_tensor *t, tg_reduction red) {
    if (check_red("bce_with_logits", red) || check_pair("bce_with_logits", x, t)) return NULL;
    /* max(x, 0) - x t + log(1 + exp(-|x|)) */
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *r = tg_relu(x);
    tg_tensor *xt = r ? tg_mul(x, t) : NULL;
    tg_tensor *a = xt ? tg_abs(x) : NULL;
    tg_tensor *na = a ? tg_neg(a) : NULL;
    tg_tensor *sp = na ? tg_softplus(na) : NULL;
    tg_tensor *l1 = sp ? tg_sub(r, xt) : NULL;
    tg_tensor *l = l1 ? tg_add(l1, sp) : NULL;
    tg_tensor *out = l ? reduce_loss(l, red) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor *tmp[] = {r, xt, a, na, sp, l1, l};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    return tg__record2(&tg_opdef_bce_with_logits, x, t, out, red);
}
static tg_status bce_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *t = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(t);
    tg_reduction red = (tg_reduction)e->params.i[0];
    if (tg_entry_needs_grad(e, 0)) {
        tg_tensor *d = take2(tg_sub, tg_sigmoid(x), (tg_tensor_retain(t), t));
        CHECK(d);
        gi[0] = scale_by_upstream(d, g, red, x->numel, false);
        tg_tensor_release(d);
        CHECK(gi[0]);
    }
    if (tg_entry_needs_grad(e, 1)) {
        tg_tensor *d = tg_neg(x);
        CHECK(d);
        gi[1] = scale_by_upstream(d, g, red, x->numel, false);
        tg_tensor_release(d);
        CHECK(gi[1]);
    }
    return TG_OK;
}
/* options (the second part of this file): i1 bits 1 weight, 2 pos_weight inputs after the
 * first two; with either the loss is a composite */
static tg_tensor *apply_bce(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 2) return need_two("bce_with_logits", n);
    tg_tensor *opt[2] = {NULL, NULL};
    for (int i = 0, k = 2; i < 2; i++)
        if (((p->i[1] >> i) & 1) && k < n) opt[i] = in[k++];
    return tg_bce_with_logits_ex(in[0], in[1], opt[0], opt[1], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(bce_with_logits, .arity = -1, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 6, 4},
             .forward = "L = mean(max(x,0) - x t + log(1 + exp(-|x|)))",
             .forward_tex = "L = \\frac{1}{n}\\sum \\big(\\max(x, 0) - x t + \\log(1 + e^{-|x|})\\big)",
             .vjp = "dx = (sigmoid(x) - t) dL / n, dt = -x dL / n",
             .vjp_tex = "\\bar x = \\frac{\\bar L}{n}(\\sigma(x) - t),\\quad \\bar t = -\\frac{\\bar L}{n} x",
             .doc = "Binary cross-entropy on logits, numerically stable (i0 reduction; i1 bits: "
                    "1 weight, 2 pos_weight inputs).",
             .backward = bce_vjp, .apply = apply_bce,
             .examples = "3x4,u3x4|i0=1;3x4,u3x4|i0=0;5,u5|i0=2;3x4,u3x4,+4|i0=1 i1=2;"
                         "3x4,u3x4,+3x4|i0=0 i1=1;3x4,u3x4,+1x4,+4|i0=2 i1=3;T3x4,u3x4,+4,+4|i0=1 i1=3",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

/* ===================================================================== */
/* dropout                                                                */
/* ===================================================================== */

tg_tensor *tg_dropout(tg_tensor *x, double p, bool training) {
    if (!(p >= 0 && p <= 1)) return TG_FAIL(TG_ERR_VALUE, "dropout: probability must be in [0, 1], got %g", p);
    if (tg__require_float("dropout", x)) return NULL;
    if (!training || p == 0) {
        tg_tensor_retain(x);
        return x;
    }
    tg_tensor *mask = tg_tensor_bernoulli(x->ndim, x->shape, 1.0 - p, x->dtype);
    if (!mask) return NULL;
    double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *m = tg_mul_scalar(mask, scale);
    tg_tensor *out = m ? tg_mul(x, m) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(mask);
    tg_entry *e;
    out = tg__finish(&tg_opdef_dropout, 1, &x, out, &e);
    if (e) {
        e->params.f[0] = p;
        if (tg__save(e, m)) {
            tg_tensor_release(out);
            out = NULL;
        }
    }
    tg_tensor_release(m);
    return out;
}
static tg_status dropout_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *m = tg_entry_saved(e, 0);
    CHECK(m);
    CHECK(gi[0] = tg_mul(g, m));
    return TG_OK;
}
static tg_tensor *apply_dropout(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_dropout(in[0], p->f[0], p->i[0] != 0);
}
TG_DEFINE_OP(dropout, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_OUTPUT, 1, 2, true},
             .forward = "y = x * m / (1 - p), m ~ Bernoulli(1 - p)",
             .forward_tex = "y = \\frac{x \\odot m}{1 - p},\\ m \\sim \\mathrm{Bernoulli}(1 - p)",
             .vjp = "dx = dy * m / (1 - p)", .vjp_tex = "\\bar x = \\frac{\\bar y \\odot m}{1 - p}",
             .doc = "Inverted dropout (f0 = p, i0 = training); the mask comes from the seedable generator.",
             .backward = dropout_vjp, .apply = apply_dropout, .examples = "6x5|f0=0.3 i0=1;4|f0=0.5 i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

static tg_tensor *apply_custom(tg_tensor *const *in, int n, const tg_params *p) {
    (void)in;
    (void)n;
    (void)p;
    return TG_FAIL(TG_ERR_RUNTIME, "custom: a custom op is applied through tg_custom_record");
}
TG_DEFINE_OP(custom, .arity = -1, .diff_mask = 0xFFFFFFFFu, .dtypes = "any",
             .forward = "defined by the user", .forward_tex = "", .vjp = "defined by the user",
             .vjp_tex = "", .doc = "An op defined outside the library (tg.Function in Python).",
             .backward = NULL, .apply = apply_custom, .examples = "");

/* =====================================================================
 * The second part of nn.c (it was nnlayers.c): the losses with PyTorch's options (class weights,
 * ignore_index, label smoothing, probability targets, (N, C, d1, ...)
 * inputs), the other losses (binary_cross_entropy, huber_loss,
 * smooth_l1_loss, l1_loss, kl_div) and the layers as ops (embedding,
 * layer_norm, group_norm, normalize, cosine_similarity,
 * scaled_dot_product_attention).
 *
 * Every op here but layer_norm is a COMPOSITE (.composite = true): it is
 * written with other ops that record their own tape entries, so its
 * gradient and its second derivatives are theirs.  layer_norm has a fused
 * forward kernel and a VJP written with ops (see there).  The plain cases of cross_entropy,
 * nll_loss and bce_with_logits keep their fused ops (nn.c); the entry points
 * tg_cross_entropy_ex, tg_nll_loss_ex and tg_bce_with_logits_ex choose.  They share this file with the fused ops because
 * each calls the other: the registry's generic call of the fused ops goes
 * through the option-aware entry points, which fall back to the fused ops.
 *
 * The code uses a small scope: every intermediate is kept in it and
 * released at the end, and every step is NULL-safe (a failed step makes the
 * following ones NULL, the error stays the first one's).
 */

/* ===================================================================== */
/* Scope of intermediates                                                 */
/* ===================================================================== */

#define SCOPE_MAX 96
typedef struct {
    tg_tensor *t[SCOPE_MAX];
    int n;
} scope;

static tg_tensor *keep(scope *s, tg_tensor *t) {
    if (!t) return NULL;
    if (s->n == SCOPE_MAX) { /* a bug of this file, not of the input */
        tg_tensor_release(t);
        return TG_FAIL(TG_ERR_RUNTIME, "nn: too many intermediates");
    }
    s->t[s->n++] = t;
    return t;
}
static void scope_end(scope *s) {
    for (int i = 0; i < s->n; i++) tg_tensor_release(s->t[i]);
    s->n = 0;
}
/* r (borrowed from the scope) as a new reference, and the scope released */
static tg_tensor *scope_return(scope *s, tg_tensor *r) {
    if (r) tg_tensor_retain(r);
    scope_end(s);
    return r;
}

#define K(expr) keep(sc, (expr))
#define B2(f, a, b) K(((a) && (b)) ? f((a), (b)) : NULL)
#define U1(f, a) K((a) ? f(a) : NULL)
#define U(f, a, ...) K((a) ? f((a), __VA_ARGS__) : NULL)
#define ADD(a, b) B2(tg_add, a, b)
#define SUB(a, b) B2(tg_sub, a, b)
#define MUL(a, b) B2(tg_mul, a, b)
#define DIV(a, b) B2(tg_div, a, b)
#define MULS(a, s) K((a) ? tg_mul_scalar((a), (s)) : NULL)
#define ADDS(a, s) K((a) ? tg_add_scalar((a), (s)) : NULL)
#define SUM1(a, ax, kd) K((a) ? tg_sum((a), (const int64_t[]){(ax)}, 1, (kd)) : NULL)
#define SUMALL(a) K((a) ? tg_sum((a), NULL, 0, false) : NULL)
#define WHERE(c, a, b) K(((c) && (a) && (b)) ? tg_where((c), (a), (b)) : NULL)

static tg_tensor *scalar_like(scope *sc, double v, const tg_tensor *like) {
    return K(tg_tensor_scalar(v, like->dtype));
}

static tg_status check_red3(const char *who, tg_reduction r) {
    if (r != TG_REDUCTION_NONE && r != TG_REDUCTION_MEAN && r != TG_REDUCTION_SUM)
        return tg_error_set(TG_ERR_VALUE, "%s: reduction must be 'mean', 'sum' or 'none', got %d",
                            who, (int)r);
    return TG_OK;
}

static tg_tensor *reduce(scope *sc, tg_tensor *l, tg_reduction red) {
    if (!l) return NULL;
    if (red == TG_REDUCTION_NONE) return l;
    return K(red == TG_REDUCTION_SUM ? tg_sum(l, NULL, 0, false) : tg_mean(l, NULL, 0, false));
}

/* A float tensor whose entries are 1 where `pred` holds for x's int64 values */
static tg_tensor *int_mask(scope *sc, const tg_tensor *y, int64_t ignore, tg_dtype dt, bool ne) {
    tg_tensor *m = K(tg_tensor_empty(y->ndim, y->shape, dt));
    if (!m) return NULL;
    for (int64_t i = 0; i < y->numel; i++) {
        bool v = (tg__get_flat_i64(y, i) == ignore) != ne;
        if (dt == TG_FLOAT32) ((float *)tg_tensor_data(m))[i] = v ? 1.0f : 0.0f;
        else ((double *)tg_tensor_data(m))[i] = v ? 1.0 : 0.0;
    }
    return m;
}

/* The same shape, float, for the pair losses */
static tg_status check_pair2(const char *who, const tg_tensor *a, const tg_tensor *b) {
    if (!a || !b) return tg_error_set(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, a) || tg__require_float(who, b)) return tg_error_status();
    if (!tg__same_shape(a->ndim, a->shape, b->ndim, b->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: input and target must have the same shape, got %s and %s (a "
                            "silent broadcast here is a classic bug; reshape one of them)",
                            who, tg__shp(a), tg__shp(b));
    return TG_OK;
}

/* An optional per-element weight: float, broadcastable to shape */
static tg_status check_bcast_weight(const char *who, const char *arg, const tg_tensor *w,
                                    const tg_tensor *x) {
    if (!w) return TG_OK;
    if (!tg_dtype_is_float(w->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: %s must be a float tensor, got %s", who, arg,
                            tg_dtype_name(w->dtype));
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes(who, w->ndim, w->shape, x->ndim, x->shape, &nd, sh) ||
        !tg__same_shape(nd, sh, x->ndim, x->shape))
        return tg_error_set(TG_ERR_VALUE, "%s: %s of shape %s does not broadcast to the input's shape %s",
                            who, arg, tg__shp(w), tg__shp(x));
    return TG_OK;
}

/* ===================================================================== */
/* nll_loss / cross_entropy with weight, ignore_index, label smoothing    */
/* ===================================================================== */

/* The class-index inputs: lp (C,) with y (), or lp (N, C, d1, ...) with y
 * (N, d1, ...); weight None or (C,).  Labels in [0, C) or == ignore. */
static tg_status check_class_nd(const char *who, const tg_tensor *lp, const tg_tensor *y,
                                const tg_tensor *w, int64_t ignore) {
    if (!lp || !y) return tg_error_set(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, lp)) return tg_error_status();
    if (y->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE,
                            "%s: class labels must be int64, got %s (convert with .astype(tg.int64), "
                            "or pass float class probabilities of the input's shape)",
                            who, tg_dtype_name(y->dtype));
    bool ok = lp->ndim >= 1 && y->ndim == (lp->ndim == 1 ? 0 : lp->ndim - 1);
    if (ok && lp->ndim >= 2) {
        ok = y->shape[0] == lp->shape[0];
        for (int d = 2; ok && d < lp->ndim; d++) ok = y->shape[d - 1] == lp->shape[d];
    }
    if (!ok)
        return tg_error_set(TG_ERR_VALUE,
                            "%s: expected input (C,) with target (), or input (N, C, d1, ...) with "
                            "target (N, d1, ...); got input %s and target %s",
                            who, tg__shp(lp), tg__shp(y));
    int64_t C = lp->shape[lp->ndim == 1 ? 0 : 1];
    if (w && (w->ndim != 1 || w->shape[0] != C || !tg_dtype_is_float(w->dtype)))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: weight must be a float tensor of shape (%lld,) (one per class), "
                            "got %s %s",
                            who, (long long)C, tg_dtype_name(w->dtype), tg__shp(w));
    for (int64_t i = 0; i < y->numel; i++) {
        int64_t v = tg__get_flat_i64(y, i);
        if (v != ignore && (v < 0 || v >= C))
            return tg_error_set(TG_ERR_INDEX,
                                "%s: label %lld at position %lld is out of range for %lld classes "
                                "(expected 0 <= label < %lld, or ignore_index %lld)",
                                who, (long long)v, (long long)i, (long long)C, (long long)C,
                                (long long)ignore);
    }
    return TG_OK;
}

static bool any_equal(const tg_tensor *y, int64_t v) {
    for (int64_t i = 0; i < y->numel; i++)
        if (tg__get_flat_i64(y, i) == v) return true;
    return false;
}

/* lp (N, C, d...) or (C,) as (M, C) with the classes last */
static tg_tensor *classes_last(scope *sc, tg_tensor *lp) {
    int64_t C = lp->shape[lp->ndim == 1 ? 0 : 1];
    tg_tensor *t = lp;
    if (lp->ndim > 2) {
        int64_t perm[TG_MAX_DIMS];
        int k = 0;
        perm[k++] = 0;
        for (int d = 2; d < lp->ndim; d++) perm[k++] = d;
        perm[k++] = 1;
        t = K(tg_permute(lp, perm));
    }
    int64_t sh[2] = {-1, C};
    return t ? K(tg_reshape(t, 2, sh)) : NULL;
}

/* The per-element parts of the class-index losses, all (M,) with M the
 * number of targets: nll = -w[y] lp[y] (0 where ignored), wy = w[y] (0
 * where ignored), and lp2 (M, C), keep (M,) 1/0. */
typedef struct {
    tg_tensor *lp2, *nll, *wy, *keep;
} nll_parts;

static tg_status make_nll_parts(scope *sc, tg_tensor *lp, tg_tensor *y, tg_tensor *w,
                                int64_t ignore, nll_parts *o) {
    memset(o, 0, sizeof *o);
    o->lp2 = classes_last(sc, lp);
    int64_t M = o->lp2 ? o->lp2->shape[0] : 0, one[2] = {-1, 1};
    tg_tensor *keepm = o->lp2 ? int_mask(sc, y, ignore, lp->dtype, true) : NULL;
    o->keep = keepm ? K(tg_reshape(keepm, 1, &M)) : NULL;
    /* the labels with the ignored ones set to 0 (any valid row) */
    tg_tensor *ys = o->keep ? K(tg_tensor_empty(1, &M, TG_INT64)) : NULL;
    if (!ys) return tg_error_status();
    for (int64_t i = 0; i < M; i++) {
        int64_t v = tg__get_flat_i64(y, i);
        ((int64_t *)tg_tensor_data(ys))[i] = v == ignore ? 0 : v;
    }
    tg_tensor *ys2 = K(tg_reshape(ys, 2, one));
    tg_tensor *picked = ys2 ? K(tg_gather(o->lp2, 1, ys2)) : NULL;
    tg_tensor *p1 = picked ? K(tg_reshape(picked, 1, &M)) : NULL;
    tg_tensor *wsel = w ? K(tg_index_select(w, 0, ys)) : NULL;
    if (wsel && wsel->dtype != lp->dtype) wsel = K(tg_cast(wsel, lp->dtype));
    o->wy = w ? MUL(wsel, o->keep) : o->keep;
    tg_tensor *zero = scalar_like(sc, 0.0, lp);
    tg_tensor *nw = o->wy ? MULS(o->wy, -1.0) : NULL;
    /* where, not a product with the mask: an ignored row's -inf or NaN
     * log-probability must give 0, as in PyTorch */
    o->nll = WHERE(o->keep, MUL(p1, nw), zero);
    return o->nll ? TG_OK : tg_error_status();
}

/* loss (M,) reduced; mean divides by sum(wy) (PyTorch's weighted mean: NaN
 * for zero total weight); none gives the target's shape */
static tg_tensor *reduce_weighted(scope *sc, tg_tensor *loss, tg_tensor *wy, const tg_tensor *y,
                                  tg_reduction red) {
    if (!loss) return NULL;
    if (red == TG_REDUCTION_NONE) return K(tg_reshape(loss, y->ndim, y->shape));
    tg_tensor *s = SUMALL(loss);
    if (red == TG_REDUCTION_SUM) return s;
    return DIV(s, SUMALL(wy));
}

tg_tensor *tg_nll_loss_ex(tg_tensor *lp, tg_tensor *y, tg_tensor *w, int64_t ignore,
                          tg_reduction red) {
    const char *who = "nll_loss";
    if (check_red3(who, red) || check_class_nd(who, lp, y, w, ignore)) return NULL;
    if (!w && lp->ndim <= 2 && !any_equal(y, ignore)) return tg_nll_loss(lp, y, red);
    scope s0 = {0}, *sc = &s0;
    nll_parts p;
    if (make_nll_parts(sc, lp, y, w, ignore, &p)) {
        scope_end(sc);
        return NULL;
    }
    return scope_return(sc, reduce_weighted(sc, p.nll, p.wy, y, red));
}

/* soft targets: t the class probabilities, input's shape */
static tg_tensor *ce_probs(tg_tensor *z, tg_tensor *t, tg_tensor *w, double ls, tg_reduction red) {
    const char *who = "cross_entropy";
    if (check_pair2(who, z, t)) return NULL;
    int64_t cax = z->ndim == 1 ? 0 : 1, C = z->shape[cax];
    if (w && (w->ndim != 1 || w->shape[0] != C || !tg_dtype_is_float(w->dtype)))
        return TG_FAIL(TG_ERR_VALUE, "%s: weight must be a float tensor of shape (%lld,), got %s",
                       who, (long long)C, tg__shp(w));
    scope s0 = {0}, *sc = &s0;
    tg_tensor *lp = K(tg_log_softmax(z, cax));
    tg_tensor *tt = t;
    if (ls > 0) tt = ADDS(MULS(t, 1.0 - ls), ls / (double)C);
    tg_tensor *prod = MUL(lp, tt);
    if (w) {
        int64_t sh[TG_MAX_DIMS];
        for (int d = 0; d < z->ndim - (int)cax; d++) sh[d] = d == 0 ? C : 1;
        tg_tensor *wr = K(tg_reshape(w, z->ndim - (int)cax, sh));
        if (wr && wr->dtype != z->dtype) wr = K(tg_cast(wr, z->dtype));
        prod = MUL(prod, wr);
    }
    tg_tensor *l = prod ? MULS(SUM1(prod, cax, false), -1.0) : NULL;
    return scope_return(sc, reduce(sc, l, red));
}

tg_tensor *tg_cross_entropy_ex(tg_tensor *z, tg_tensor *target, tg_tensor *w, int64_t ignore,
                               double ls, tg_reduction red) {
    const char *who = "cross_entropy";
    if (check_red3(who, red)) return NULL;
    if (!z || !target) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (!(ls >= 0 && ls <= 1))
        return TG_FAIL(TG_ERR_VALUE, "%s: label_smoothing must be in [0, 1], got %g", who, ls);
    if (z->ndim == 0)
        return TG_FAIL(TG_ERR_VALUE, "%s: input must have at least 1 dim (C,) or (N, C, ...), got %s",
                       who, tg__shp(z));
    if (tg_dtype_is_float(target->dtype) && target->ndim == (z->ndim == 1 ? 0 : z->ndim - 1))
        return TG_FAIL(TG_ERR_TYPE,
                       "%s: class labels must be int64, got %s labels of shape %s (convert with "
                       ".astype(tg.int64); class probabilities have the input's shape %s)",
                       who, tg_dtype_name(target->dtype), tg__shp(target), tg__shp2(z->ndim, z->shape));
    if (tg_dtype_is_float(target->dtype)) return ce_probs(z, target, w, ls, red);
    if (check_class_nd(who, z, target, w, ignore)) return NULL;
    if (!w && ls == 0 && z->ndim <= 2 && !any_equal(target, ignore))
        return tg_cross_entropy(z, target, red);
    int64_t cax = z->ndim == 1 ? 0 : 1, C = z->shape[cax];
    scope s0 = {0}, *sc = &s0;
    tg_tensor *lp = K(tg_log_softmax(z, cax));
    nll_parts p;
    if (!lp || make_nll_parts(sc, lp, target, w, ignore, &p)) {
        scope_end(sc);
        return NULL;
    }
    tg_tensor *loss = p.nll;
    if (ls > 0) {
        /* smooth_n = -sum_c w_c lp[n, c] (0 where ignored); PyTorch adds
         * ls / C of it to (1 - ls) of the nll */
        tg_tensor *wl = p.lp2;
        if (w) wl = MUL(wl, w->dtype == z->dtype ? w : K(tg_cast(w, z->dtype)));
        tg_tensor *sm = SUM1(wl, 1, false);
        tg_tensor *smooth = WHERE(p.keep, MULS(sm, -ls / (double)C), scalar_like(sc, 0.0, z));
        loss = ADD(MULS(p.nll, 1.0 - ls), smooth);
    }
    return scope_return(sc, reduce_weighted(sc, loss, p.wy, target, red));
}

/* ===================================================================== */
/* binary cross-entropy                                                   */
/* ===================================================================== */

tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *t, tg_tensor *w, tg_reduction red) {
    const char *who = "binary_cross_entropy";
    if (check_red3(who, red) || check_pair2(who, p, t) || check_bcast_weight(who, "weight", w, p))
        return NULL;
    for (int64_t i = 0; i < p->numel; i++) {
        double v = tg_tensor_get_flat(p, i);
        if (!(v >= 0 && v <= 1))
            return TG_FAIL(TG_ERR_VALUE,
                           "%s: the input holds probabilities, every element must be in [0, 1]; "
                           "element %lld is %g (for logits use binary_cross_entropy_with_logits)",
                           who, (long long)i, v);
    }
    scope s0 = {0}, *sc = &s0;
    /* PyTorch clamps the logs at -100, so p = 0 or 1 gives a finite loss */
    tg_tensor *lp = U(tg_clip, U1(tg_log, p), -100.0, NAN);
    tg_tensor *q = K(tg_rsub_scalar(p, 1.0));
    tg_tensor *lq = U(tg_clip, U1(tg_log, q), -100.0, NAN);
    tg_tensor *u = K(tg_rsub_scalar(t, 1.0));
    tg_tensor *l = MULS(ADD(MUL(t, lp), MUL(u, lq)), -1.0);
    if (w) l = MUL(l, w);
    return scope_return(sc, reduce(sc, l, red));
}

tg_tensor *tg_bce_with_logits_ex(tg_tensor *x, tg_tensor *t, tg_tensor *w, tg_tensor *pw,
                                 tg_reduction red) {
    const char *who = "bce_with_logits";
    if (!w && !pw) return tg_bce_with_logits(x, t, red);
    if (check_red3(who, red) || check_pair2(who, x, t) || check_bcast_weight(who, "weight", w, x) ||
        check_bcast_weight(who, "pos_weight", pw, x))
        return NULL;
    scope s0 = {0}, *sc = &s0;
    /* w * (pw t softplus(-x) + (1 - t) softplus(x)) */
    tg_tensor *spn = U1(tg_softplus, U1(tg_neg, x));
    tg_tensor *spp = K(tg_softplus(x));
    tg_tensor *a = MUL(t, spn);
    if (pw) a = MUL(a, pw);
    tg_tensor *l = ADD(a, MUL(K(tg_rsub_scalar(t, 1.0)), spp));
    if (w) l = MUL(l, w);
    return scope_return(sc, reduce(sc, l, red));
}

/* ===================================================================== */
/* huber, smooth L1, L1, KL divergence                                    */
/* ===================================================================== */

tg_tensor *tg_huber_loss(tg_tensor *a, tg_tensor *t, double delta, tg_reduction red) {
    const char *who = "huber_loss";
    if (check_red3(who, red) || check_pair2(who, a, t)) return NULL;
    if (!(delta > 0)) return TG_FAIL(TG_ERR_VALUE, "%s: delta must be > 0, got %g", who, delta);
    scope s0 = {0}, *sc = &s0;
    tg_tensor *d = SUB(a, t), *ad = U1(tg_abs, d);
    tg_tensor *quad = MULS(MUL(d, d), 0.5);
    tg_tensor *lin = MULS(ADDS(ad, -0.5 * delta), delta);
    tg_tensor *l = WHERE(B2(tg_lt, ad, scalar_like(sc, delta, a)), quad, lin);
    return scope_return(sc, reduce(sc, l, red));
}

tg_tensor *tg_smooth_l1_loss(tg_tensor *a, tg_tensor *t, double beta, tg_reduction red) {
    const char *who = "smooth_l1_loss";
    if (check_red3(who, red) || check_pair2(who, a, t)) return NULL;
    if (!(beta >= 0)) return TG_FAIL(TG_ERR_VALUE, "%s: beta must be >= 0, got %g", who, beta);
    scope s0 = {0}, *sc = &s0;
    tg_tensor *d = SUB(a, t), *ad = U1(tg_abs, d), *l;
    if (beta == 0) {
        l = ad; /* PyTorch: beta 0 is the L1 loss */
    } else {
        tg_tensor *quad = MULS(MUL(d, d), 0.5 / beta);
        tg_tensor *lin = ADDS(ad, -0.5 * beta);
        l = WHERE(B2(tg_lt, ad, scalar_like(sc, beta, a)), quad, lin);
    }
    return scope_return(sc, reduce(sc, l, red));
}

tg_tensor *tg_l1_loss(tg_tensor *a, tg_tensor *t, tg_reduction red) {
    const char *who = "l1_loss";
    if (check_red3(who, red) || check_pair2(who, a, t)) return NULL;
    scope s0 = {0}, *sc = &s0;
    return scope_return(sc, reduce(sc, U1(tg_abs, SUB(a, t)), red));
}

tg_tensor *tg_kl_div(tg_tensor *x, tg_tensor *t, int red, bool log_target) {
    const char *who = "kl_div";
    if (red < 0 || red > 3)
        return TG_FAIL(TG_ERR_VALUE, "%s: reduction must be 'mean', 'sum', 'none' or 'batchmean', got %d",
                       who, red);
    if (check_pair2(who, x, t)) return NULL;
    scope s0 = {0}, *sc = &s0;
    tg_tensor *l;
    if (log_target) {
        l = MUL(U1(tg_exp, t), SUB(t, x));
    } else {
        /* xlogy(t, t) - t x, with 0 log 0 = 0 (and no NaN gradient there) */
        tg_tensor *z = B2(tg_eq, t, scalar_like(sc, 0.0, t));
        tg_tensor *ts = WHERE(z, scalar_like(sc, 1.0, t), t);
        l = SUB(MUL(t, U1(tg_log, ts)), MUL(t, x));
    }
    tg_tensor *r;
    if (red == 3) { /* batchmean: the sum over the batch size (dim 0) */
        double n = x->ndim ? (double)x->shape[0] : 1.0;
        r = MULS(SUMALL(l), 1.0 / n);
    } else {
        r = reduce(sc, l, (tg_reduction)red);
    }
    return scope_return(sc, r);
}

/* ===================================================================== */
/* embedding, layer_norm, group_norm, normalize, cosine_similarity        */
/* ===================================================================== */

tg_tensor *tg_embedding(tg_tensor *w, tg_tensor *idx, bool has_padding, int64_t padding_idx) {
    const char *who = "embedding";
    if (!w || !idx) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, w)) return NULL;
    if (w->ndim != 2)
        return TG_FAIL(TG_ERR_VALUE, "%s: weight must be 2-D (num_embeddings, embedding_dim), got %s",
                       who, tg__shp(w));
    if (idx->dtype != TG_INT64)
        return TG_FAIL(TG_ERR_TYPE, "%s: indices must be int64, got %s", who, tg_dtype_name(idx->dtype));
    if (idx->ndim + 1 > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "%s: indices %s have too many dims", who, tg__shp(idx));
    int64_t V = w->shape[0];
    if (has_padding) {
        if (padding_idx < -V || padding_idx >= V)
            return TG_FAIL(TG_ERR_INDEX, "%s: padding_idx %lld is out of range for %lld embeddings",
                           who, (long long)padding_idx, (long long)V);
        if (padding_idx < 0) padding_idx += V;
    }
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        if (v < 0 || v >= V)
            return TG_FAIL(TG_ERR_INDEX,
                           "%s: index %lld at position %lld is out of range for %lld embeddings "
                           "(expected 0 <= index < %lld)",
                           who, (long long)v, (long long)i, (long long)V, (long long)V);
    }
    scope s0 = {0}, *sc = &s0;
    int64_t M = idx->numel, D = w->shape[1];
    tg_tensor *flat = K(tg_reshape(idx, 1, &M));
    tg_tensor *rows = flat ? K(tg_index_select(w, 0, flat)) : NULL;
    if (has_padding && rows) {
        /* the padding row's lookups read a detached copy: no gradient */
        int64_t sh[2] = {M, 1};
        tg_tensor *m = K(tg_tensor_empty(2, sh, w->dtype));
        tg_tensor *wd = m ? K(tg_tensor_detach(w)) : NULL;
        if (wd) {
            for (int64_t i = 0; i < M; i++) {
                bool keep_ = tg__get_flat_i64(flat, i) != padding_idx;
                if (w->dtype == TG_FLOAT32) ((float *)tg_tensor_data(m))[i] = keep_;
                else ((double *)tg_tensor_data(m))[i] = keep_;
            }
        }
        tg_tensor *rd = wd ? K(tg_index_select(wd, 0, flat)) : NULL;
        rows = WHERE(m, rows, rd);
    }
    int64_t sh[TG_MAX_DIMS];
    memcpy(sh, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    sh[idx->ndim] = D;
    return scope_return(sc, rows ? K(tg_reshape(rows, idx->ndim + 1, sh)) : NULL);
}

/* layer_norm is a fused op: one pass per row computes the mean and 1/std
 * and writes y; the entry saves x, the weight, mean and rstd.  Its VJP is
 * written with ops when a graph of the backward is wanted (create_graph:
 * it recomputes mean and rstd with ops from x, so that second derivatives
 * see how they depend on x); a plain first-order backward runs the fused
 * kernel ln_bwd below instead, which records nothing, so nothing on the tape
 * changes.
 *
 * The kernels.  A row of K elements is in L1, so each pass over it is cheap
 * and the row sums go through the dispatched vmath reductions (AVX2 where
 * the CPU has it; float64 sums in a fixed order, so the same bits on every
 * path).  The elementwise passes are plain loops the compiler vectorizes.
 * Rows are independent, so a row's result never depends on the thread that
 * computed it; the weight and bias gradients, sums over rows, are summed per
 * block of LN_BLOCK rows (fixed, whatever the thread count) and the blocks
 * then in order: bitwise the same on 1 or 2 threads. */
#define LN_BLOCK 32
/* partial sums in LN_LANES interleaved accumulators of the row's type
 * (the compiler keeps them in vector registers), added into float64 every
 * LN_CHUNK elements, so that a long row does not lose precision */
#define LN_LANES 8

typedef struct {
    const void *x, *w, *b, *g;
    void *y, *mean, *rstd, *dx;
    void *part; /* backward: per block of rows, K weight then K bias partials */
    int64_t M, K;
    double eps;
    bool f32, want_dx, want_dw, want_db;
    const tg_vmath_table *vm; /* float32 rows: vmath's row loops */
} ln_job;

/* Rows per parallel chunk: about TG_PARALLEL_MIN_WORK element-passes each. */
static int64_t ln_grain(int64_t K, int64_t passes) {
    int64_t per = K * passes;
    return per > 0 ? TG_PARALLEL_MIN_WORK / per + 1 : 1;
}

/* s[0] = sum(x - c), s[1] = sum((x - c)^2) over a row of n (float64 totals) */
#define LN_SUMS(T)                                                                      \
    static void ln_sums_##T(const T *restrict x, T c, int64_t n, double *s) {            \
        s[0] = s[1] = 0;                                                                \
        for (int64_t k0 = 0; k0 < n; k0 += LN_CHUNK) {                                  \
            int64_t e = k0 + LN_CHUNK < n ? k0 + LN_CHUNK : n, k = k0;                  \
            T a[LN_LANES] = {0}, b[LN_LANES] = {0};                                     \
            for (; k + LN_LANES <= e; k += LN_LANES)                                    \
                for (int l = 0; l < LN_LANES; l++) {                                    \
                    T d = x[k + l] - c;                                                 \
                    a[l] += d;                                                          \
                    b[l] += d * d;                                                      \
                }                                                                       \
            for (; k < e; k++) {                                                        \
                T d = x[k] - c;                                                         \
                a[0] += d;                                                              \
                b[0] += d * d;                                                          \
            }                                                                           \
            for (int l = 0; l < LN_LANES; l++) s[0] += a[l], s[1] += b[l];              \
        }                                                                               \
    }
/* s[0] = sum(gx), s[1] = sum(gx xh), gx = g w (w may be NULL: 1), xh = (x - mu) r */
#define LN_DOTS(T)                                                                      \
    static void ln_dots_##T(const T *restrict g, const T *restrict w, const T *restrict x, \
                            T mu, T r, int64_t n, double *s) {                          \
        s[0] = s[1] = 0;                                                                \
        for (int64_t k0 = 0; k0 < n; k0 += LN_CHUNK) {                                  \
            int64_t e = k0 + LN_CHUNK < n ? k0 + LN_CHUNK : n, k = k0;                  \
            T a[LN_LANES] = {0}, b[LN_LANES] = {0};                                     \
            if (w)                                                                      \
                for (; k + LN_LANES <= e; k += LN_LANES)                                \
                    for (int l = 0; l < LN_LANES; l++) {                                \
                        T gx = g[k + l] * w[k + l];                                     \
                        a[l] += gx;                                                     \
                        b[l] += gx * ((x[k + l] - mu) * r);                             \
                    }                                                                   \
            else                                                                        \
                for (; k + LN_LANES <= e; k += LN_LANES)                                \
                    for (int l = 0; l < LN_LANES; l++) {                                \
                        a[l] += g[k + l];                                               \
                        b[l] += g[k + l] * ((x[k + l] - mu) * r);                       \
                    }                                                                   \
            for (; k < e; k++) {                                                        \
                T gx = w ? g[k] * w[k] : g[k];                                          \
                a[0] += gx;                                                             \
                b[0] += gx * ((x[k] - mu) * r);                                         \
            }                                                                           \
            for (int l = 0; l < LN_LANES; l++) s[0] += a[l], s[1] += b[l];              \
        }                                                                               \
    }

/* One row forward: one pass sums d = x - x[0] and d^2 (shifted by a value
 * of the row, so that the variance (sum d^2 - (sum d)^2 / K) / K does not
 * cancel catastrophically as sum x^2 - (sum x)^2 / K would when the mean is
 * large against the spread), then y = (x - mean) rstd w + b. */
#define LN_FWD_ROW(T)                                                                   \
    static void ln_fwd_row_##T(const ln_job *j, int64_t i) {                            \
        int64_t K = j->K;                                                               \
        const T *restrict x = (const T *)j->x + i * K, *restrict w = j->w, *restrict b = j->b; \
        T *restrict y = (T *)j->y + i * K;                                              \
        double s[2];                                                                    \
        ln_sums_##T(x, x[0], K, s);                                                     \
        T mu = (T)(x[0] + s[0] / (double)K);                                            \
        double var = (s[1] - s[0] * s[0] / (double)K) / (double)K;                      \
        /* var < 0 is rounding: 0; NaN (a row holding inf or NaN) stays NaN, so */   \
        /* the whole row is NaN, as in PyTorch (clamping it gave inf and NaN) */    \
        T r = (T)(1.0 / sqrt((var < 0 ? 0 : var) + j->eps));                           \
        if (w && b) for (int64_t k = 0; k < K; k++) y[k] = (x[k] - mu) * r * w[k] + b[k]; \
        else if (w) for (int64_t k = 0; k < K; k++) y[k] = (x[k] - mu) * r * w[k];     \
        else if (b) for (int64_t k = 0; k < K; k++) y[k] = (x[k] - mu) * r + b[k];     \
        else for (int64_t k = 0; k < K; k++) y[k] = (x[k] - mu) * r;                    \
        ((T *)j->mean)[i] = mu;                                                         \
        ((T *)j->rstd)[i] = r;                                                          \
    }

/* One row backward, with xh = (x - mean) rstd and gx = dy w:
 *   dx = rstd (gx - mean(gx) - xh mean(gx xh)),
 *   dw += dy xh,  db += dy  (into this block's partials). */
#define LN_BWD_ROW(T)                                                                   \
    static void ln_bwd_row_##T(const ln_job *j, int64_t i, T *restrict dw, T *restrict db) { \
        int64_t K = j->K;                                                               \
        const T *restrict x = (const T *)j->x + i * K, *restrict g = (const T *)j->g + i * K; \
        const T *restrict w = j->w;                                                     \
        T mu = ((const T *)j->mean)[i], r = ((const T *)j->rstd)[i];                    \
        if (j->want_dx) {                                                               \
            double s[2];                                                                \
            ln_dots_##T(g, w, x, mu, r, K, s);                                          \
            T m1 = (T)(s[0] / (double)K), m2 = (T)(s[1] / (double)K);                   \
            T *restrict dx = (T *)j->dx + i * K;                                        \
            if (w)                                                                      \
                for (int64_t k = 0; k < K; k++)                                         \
                    dx[k] = r * (g[k] * w[k] - m1 - (x[k] - mu) * r * m2);              \
            else                                                                        \
                for (int64_t k = 0; k < K; k++) dx[k] = r * (g[k] - m1 - (x[k] - mu) * r * m2); \
        }                                                                               \
        if (dw && db)                                                                   \
            for (int64_t k = 0; k < K; k++) {                                           \
                dw[k] += g[k] * ((x[k] - mu) * r);                                      \
                db[k] += g[k];                                                          \
            }                                                                           \
        else if (dw)                                                                    \
            for (int64_t k = 0; k < K; k++) dw[k] += g[k] * ((x[k] - mu) * r);         \
        else if (db)                                                                    \
            for (int64_t k = 0; k < K; k++) db[k] += g[k];                              \
    }

/* blocks [b0, b1) of LN_BLOCK rows; the weight and bias partials of a block
 * are its rows' sums, in row order */
#define LN_RANGES(T)                                                                    \
    LN_ROWS_##T                                                                         \
    static void ln_fwd_range_##T(int64_t r0, int64_t r1, void *vj) {                    \
        for (int64_t i = r0; i < r1; i++) ln_fwd_row_##T(vj, i);                        \
    }                                                                                   \
    static void ln_bwd_range_##T(int64_t b0, int64_t b1, void *vj) {                    \
        const ln_job *j = vj;                                                           \
        for (int64_t blk = b0; blk < b1; blk++) {                                       \
            T *dw = j->part ? (T *)j->part + blk * 2 * j->K : NULL;                     \
            T *db = dw ? dw + j->K : NULL;                                              \
            if (dw) memset(dw, 0, sizeof(T) * 2 * (size_t)j->K);                        \
            int64_t e = (blk + 1) * LN_BLOCK < j->M ? (blk + 1) * LN_BLOCK : j->M;      \
            for (int64_t i = blk * LN_BLOCK; i < e; i++)                                \
                ln_bwd_row_##T(j, i, j->want_dw ? dw : NULL, j->want_db ? db : NULL);   \
        }                                                                               \
    }
/* float32 rows: the formulas of the macros above, with the loops in vmath
 * (ln_*_f32: 8 or 16 floats a step on AVX2/AVX-512, the sums in the fixed
 * order of the SSE2 code this had, so the same bits as before on every
 * build).  On the GPT step's (16, 64, 128) rows, one thread, best of 7x200
 * calls, old and new builds interleaved: forward 0.070 -> 0.046 ms,
 * forward + backward 0.173 -> 0.116 ms (five layer norms a step). */
static void ln_fwd_row_float(const ln_job *j, int64_t i) {
    int64_t K = j->K;
    const float *x = (const float *)j->x + i * K;
    double s[2];
    j->vm->ln_sums_f32(K, x, x[0], s);
    float mu = (float)(x[0] + s[0] / (double)K);
    double var = (s[1] - s[0] * s[0] / (double)K) / (double)K;
    float r = (float)(1.0 / sqrt((var < 0 ? 0 : var) + j->eps)); /* NaN stays NaN (see above) */
    j->vm->ln_apply_f32(K, x, mu, r, j->w, j->b, (float *)j->y + i * K);
    ((float *)j->mean)[i] = mu;
    ((float *)j->rstd)[i] = r;
}
static void ln_bwd_row_float(const ln_job *j, int64_t i, float *restrict dw, float *restrict db) {
    int64_t K = j->K;
    const float *x = (const float *)j->x + i * K, *g = (const float *)j->g + i * K;
    float mu = ((const float *)j->mean)[i], r = ((const float *)j->rstd)[i], m1 = 0, m2 = 0;
    if (j->want_dx) {
        double s[2];
        j->vm->ln_dots_f32(K, g, j->w, x, mu, r, s);
        m1 = (float)(s[0] / (double)K);
        m2 = (float)(s[1] / (double)K);
    }
    j->vm->ln_grad_f32(K, g, j->w, x, mu, r, m1, m2, j->want_dx ? (float *)j->dx + i * K : NULL, dw, db);
}
#define LN_ROWS_float
#define LN_ROWS_double LN_SUMS(double) LN_DOTS(double) LN_FWD_ROW(double) LN_BWD_ROW(double)
LN_RANGES(float)
LN_RANGES(double)

tg_tensor *tg_layer_norm(tg_tensor *x, int nd, const int64_t *nshape, tg_tensor *w, tg_tensor *b,
                         double eps) {
    const char *who = "layer_norm";
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, x)) return NULL;
    bool ok = nd >= 1 && nd <= x->ndim;
    for (int d = 0; ok && d < nd; d++) ok = x->shape[x->ndim - nd + d] == nshape[d];
    if (!ok)
        return TG_FAIL(TG_ERR_VALUE, "%s: normalized_shape %s must be the last dims of the input, got input %s",
                       who, tg__shp2(nd, nshape), tg__shp(x));
    const tg_tensor *ab[2] = {w, b};
    for (int i = 0; i < 2; i++)
        if (ab[i] && (!tg__same_shape(ab[i]->ndim, ab[i]->shape, nd, nshape) ||
                      !tg_dtype_is_float(ab[i]->dtype)))
            return TG_FAIL(TG_ERR_VALUE, "%s: %s must be a float tensor of normalized_shape %s, got %s",
                           who, i ? "bias" : "weight", tg__shp2(nd, nshape), tg__shp(ab[i]));
        else if (ab[i] && ab[i]->dtype != x->dtype)
            return TG_FAIL(TG_ERR_TYPE, "%s: %s is %s but the input is %s (expected one dtype)", who,
                           i ? "bias" : "weight", tg_dtype_name(ab[i]->dtype), tg_dtype_name(x->dtype));
    if (!(eps >= 0)) return TG_FAIL(TG_ERR_VALUE, "%s: eps must be >= 0, got %g", who, eps);
    int64_t K = 1, M = 1, sh[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (d < x->ndim - nd) M *= x->shape[d];
        else K *= x->shape[d];
        sh[d] = d < x->ndim - nd ? x->shape[d] : 1; /* mean/rstd: keepdims over the normalized dims */
    }
    scope s0 = {0}, *sc = &s0;
    tg_tensor *xc = K(contiguous_ref(x));
    tg_tensor *wc = w ? K(contiguous_ref(w)) : NULL, *bc = b ? K(contiguous_ref(b)) : NULL;
    tg_tensor *y = K(tg_tensor_empty(x->ndim, x->shape, x->dtype));
    /* mean and rstd in one tensor (an entry saves at most three): its two
     * halves are views of shape sh */
    int64_t two_m = 2 * M, st[TG_MAX_DIMS];
    tg_tensor *stats = K(tg_tensor_empty(1, &two_m, x->dtype));
    tg__contiguous_strides(x->ndim, sh, st);
    tg_tensor *mean = stats ? K(tg__view(stats, x->ndim, sh, st, stats->offset)) : NULL;
    tg_tensor *rstd = stats ? K(tg__view(stats, x->ndim, sh, st, stats->offset + M)) : NULL;
    if (!xc || (w && !wc) || (b && !bc) || !y || !mean || !rstd) {
        scope_end(sc);
        return NULL;
    }
    if (K > 0 && M > 0) {
        ln_job j = {.x = tg_tensor_data(xc), .w = wc ? tg_tensor_data(wc) : NULL,
                    .b = bc ? tg_tensor_data(bc) : NULL, .y = tg_tensor_data(y),
                    .mean = tg_tensor_data(mean), .rstd = tg_tensor_data(rstd), .M = M, .K = K,
                    .eps = eps, .f32 = x->dtype == TG_FLOAT32, .vm = tg_vmath()};
        void *kt = tg__kernel_begin(x->numel * 3);
        tg_parallel_for(M, ln_grain(K, 4), j.f32 ? ln_fwd_range_float : ln_fwd_range_double, &j);
        tg__kernel_end(kt);
    }
    tg_tensor_retain(y);
    tg_tensor *in[3] = {x, NULL, NULL};
    int n = 1;
    if (w) in[n++] = w;
    if (b) in[n++] = b;
    tg_entry *e;
    y = tg__finish(&tg_opdef_layer_norm, n, in, y, &e);
    if (e) {
        e->params.i[0] = nd;
        e->params.i[1] = (w ? 1 : 0) | (b ? 2 : 0);
        e->params.f[0] = eps;
        if (tg__save(e, x) || (w && tg__save(e, w)) || tg__save(e, stats)) {
            tg_tensor_release(y);
            y = NULL;
        }
    }
    scope_end(sc);
    return y;
}

/* The first-order backward in one kernel (grad mode off: nothing is
 * recorded).  x, w (or NULL) and stats are the saved tensors; fills the
 * gradients the entry needs. */
static tg_status layer_norm_bwd_fused(tg_entry *e, tg_tensor *g, tg_tensor **gi, tg_tensor *x,
                                      tg_tensor *w, tg_tensor *stats) {
    int nd = (int)e->params.i[0], bits = (int)e->params.i[1];
    int iw = 1, ib = (bits & 1) ? 2 : 1;
    int64_t K = 1, M = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < x->ndim - nd) M *= x->shape[d];
        else K *= x->shape[d];
    }
    scope s0 = {0}, *sc = &s0;
    bool want_dw = (bits & 1) && NEED(iw), want_db = (bits & 2) && NEED(ib);
    tg_tensor *xc = K(contiguous_ref(x)), *gc = K(contiguous_ref(g));
    tg_tensor *wc = w ? K(contiguous_ref(w)) : NULL;
    tg_tensor *dx = NEED(0) ? K(tg_tensor_empty(x->ndim, x->shape, x->dtype)) : NULL;
    tg_tensor *dw = want_dw ? K(tg_tensor_empty(w->ndim, w->shape, x->dtype)) : NULL;
    int64_t bnd = nd, bsh[TG_MAX_DIMS];
    for (int d = 0; d < nd; d++) bsh[d] = x->shape[x->ndim - nd + d];
    tg_tensor *db = want_db ? K(tg_tensor_empty((int)bnd, bsh, x->dtype)) : NULL;
    int64_t nblk = M > 0 ? (M + LN_BLOCK - 1) / LN_BLOCK : 0;
    void *part = NULL;
    size_t isz = tg_dtype_size(x->dtype);
    size_t part_bytes = (want_dw || want_db) ? isz * 2 * (size_t)K * (size_t)nblk : 0;
    if (part_bytes) part = tg__alloc(part_bytes, "layer_norm");
    if (!xc || !gc || (w && !wc) || (NEED(0) && !dx) || (want_dw && !dw) || (want_db && !db) ||
        (part_bytes && !part)) {
        scope_end(sc);
        return tg_error_status();
    }
    if (K > 0 && M > 0) {
        ln_job j = {.x = tg_tensor_data(xc), .w = wc ? tg_tensor_data(wc) : NULL, .g = tg_tensor_data(gc),
                    .mean = (char *)tg_tensor_data(stats),
                    .rstd = (char *)tg_tensor_data(stats) + M * (int64_t)tg_dtype_size(x->dtype),
                    .dx = dx ? tg_tensor_data(dx) : NULL, .part = part, .M = M, .K = K,
                    .f32 = x->dtype == TG_FLOAT32, .want_dx = dx != NULL, .want_dw = want_dw,
                    .want_db = want_db, .vm = tg_vmath()};
        void *kt = tg__kernel_begin(x->numel * 4);
        int64_t grain = (ln_grain(K, 6) + LN_BLOCK - 1) / LN_BLOCK;
        tg_parallel_for(nblk, grain, j.f32 ? ln_bwd_range_float : ln_bwd_range_double, &j);
        tg__kernel_end(kt);
    }
    /* the blocks' partials, summed in block order */
    for (int which = 0; which < 2; which++) {
        tg_tensor *t = which ? db : dw;
        if (!t) continue;
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t blk = 0; blk < nblk; blk++) {
                int64_t at = blk * 2 * K + which * K + k;
                s += x->dtype == TG_FLOAT32 ? ((const float *)part)[at] : ((const double *)part)[at];
            }
            if (x->dtype == TG_FLOAT32) ((float *)tg_tensor_data(t))[k] = (float)s;
            else ((double *)tg_tensor_data(t))[k] = s;
        }
    }
    if (part) tg__free(part, part_bytes);
    if (dx) gi[0] = (tg_tensor_retain(dx), dx);
    if (dw) gi[iw] = (tg_tensor_retain(dw), dw);
    if (db) gi[ib] = (tg_tensor_retain(db), db);
    scope_end(sc);
    return TG_OK;
}

static tg_status layer_norm_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    int nd = (int)e->params.i[0], bits = (int)e->params.i[1], k = 0;
    tg_tensor *x = SAVED(k++); /* saved tensors are borrowed: not in the scope */
    CHECK(x);
    tg_tensor *w = NULL;
    if (bits & 1) CHECK(w = SAVED(k++));
    if (!tg_grad_enabled() && g->dtype == x->dtype) { /* a first-order backward */
        tg_tensor *stats = SAVED(k);
        CHECK(stats);
        return layer_norm_bwd_fused(e, g, gi, x, w, stats);
    }
    scope s0 = {0}, *sc = &s0;
    int64_t axes[TG_MAX_DIMS], lead[TG_MAX_DIMS];
    int nlead = x->ndim - nd;
    for (int d = 0; d < nd; d++) axes[d] = nlead + d;
    for (int d = 0; d < nlead; d++) lead[d] = d;
    /* create_graph: mean and rstd as functions of x */
    tg_tensor *mu = K(tg_mean(x, axes, nd, true));
    tg_tensor *xc = SUB(x, mu);
    tg_tensor *rstd = U(tg_pow_scalar, ADDS(U(tg_mean, MUL(xc, xc), axes, nd, true), e->params.f[0]), -0.5);
    tg_tensor *xhat = MUL(SUB(x, mu), rstd);
    int iw = 1, ib = (bits & 1) ? 2 : 1;
    if (xhat && NEED(0)) {
        /* dx = rstd (gx - mean(gx) - xhat mean(gx xhat)), gx = g w */
        tg_tensor *gx = w ? MUL(g, w) : g;
        tg_tensor *m1 = U(tg_mean, gx, axes, nd, true);
        tg_tensor *m2 = U(tg_mean, MUL(gx, xhat), axes, nd, true);
        tg_tensor *dx = MUL(rstd, SUB(SUB(gx, m1), MUL(xhat, m2)));
        if (dx) gi[0] = (tg_tensor_retain(dx), dx);
    }
    if (xhat && (bits & 1) && NEED(iw)) {
        tg_tensor *gw = MUL(g, xhat);
        tg_tensor *dw = nlead ? U(tg_sum, gw, lead, nlead, false) : gw;
        if (dw) gi[iw] = (tg_tensor_retain(dw), dw);
    }
    if (xhat && (bits & 2) && NEED(ib)) {
        tg_tensor *db = nlead ? K(tg_sum(g, lead, nlead, false)) : g;
        if (db) gi[ib] = (tg_tensor_retain(db), db);
    }
    bool failed = !xhat || (NEED(0) && !gi[0]) || ((bits & 1) && NEED(iw) && !gi[iw]) ||
                  ((bits & 2) && NEED(ib) && !gi[ib]);
    scope_end(sc);
    return failed ? tg_error_status() : TG_OK;
}

tg_tensor *tg_group_norm(tg_tensor *x, int64_t G, tg_tensor *w, tg_tensor *b, double eps) {
    const char *who = "group_norm";
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, x)) return NULL;
    if (x->ndim < 2)
        return TG_FAIL(TG_ERR_VALUE, "%s: expected input (N, C, ...), got %s", who, tg__shp(x));
    int64_t N = x->shape[0], C = x->shape[1];
    if (G <= 0 || C % G)
        return TG_FAIL(TG_ERR_VALUE, "%s: num_groups %lld must be > 0 and divide the %lld channels of input %s",
                       who, (long long)G, (long long)C, tg__shp(x));
    const tg_tensor *ab[2] = {w, b};
    for (int i = 0; i < 2; i++)
        if (ab[i] && (ab[i]->ndim != 1 || ab[i]->shape[0] != C || !tg_dtype_is_float(ab[i]->dtype)))
            return TG_FAIL(TG_ERR_VALUE, "%s: %s must be a float tensor of shape (%lld,), got %s", who,
                           i ? "bias" : "weight", (long long)C, tg__shp(ab[i]));
    if (!(eps >= 0)) return TG_FAIL(TG_ERR_VALUE, "%s: eps must be >= 0, got %g", who, eps);
    scope s0 = {0}, *sc = &s0;
    int64_t sh3[3] = {N, G, -1};
    if (N == 0 || x->numel == 0) sh3[2] = 0;
    tg_tensor *xr = K(tg_reshape(x, 3, sh3));
    /* the fused layer_norm over each (sample, group), without its affine map */
    tg_tensor *y = xr ? K(tg_layer_norm(xr, 1, &xr->shape[2], NULL, NULL, eps)) : NULL;
    y = y ? K(tg_reshape(y, x->ndim, x->shape)) : NULL;
    int64_t csh[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim - 1; d++) csh[d] = d == 0 ? C : 1;
    if (w) y = MUL(y, U(tg_reshape, w, x->ndim - 1, csh));
    if (b) y = ADD(y, U(tg_reshape, b, x->ndim - 1, csh));
    return scope_return(sc, y);
}

/* the p-norm along ax (keepdims).  The sum under the root is clamped at a
 * tiny value first: a zero vector's norm is then 1e-15 (below any sensible
 * eps, which the callers clamp it to), and its gradient is finite instead of
 * inf * 0 = NaN (PyTorch's norm backward gives 0 there too). */
static tg_tensor *pnorm(scope *sc, tg_tensor *x, int64_t ax, double p) {
    if (p == 1) return SUM1(U1(tg_abs, x), ax, true);
    tg_tensor *s = p == 2 ? SUM1(MUL(x, x), ax, true) : SUM1(U(tg_pow_scalar, U1(tg_abs, x), p), ax, true);
    s = U(tg_clip, s, pow(1e-15, p), NAN);
    return p == 2 ? U1(tg_sqrt, s) : U(tg_pow_scalar, s, 1.0 / p);
}

tg_tensor *tg_normalize(tg_tensor *x, double p, int64_t axis, double eps) {
    const char *who = "normalize";
    int64_t ax;
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, x)) return NULL;
    if (x->ndim == 0) return TG_FAIL(TG_ERR_VALUE, "%s: input must have at least 1 dim, got a 0-d tensor", who);
    if (tg__norm_axis(who, axis, x->ndim, &ax)) return NULL;
    if (!(p > 0) || isinf(p)) return TG_FAIL(TG_ERR_VALUE, "%s: p must be a finite number > 0, got %g", who, p);
    if (!(eps >= 0)) return TG_FAIL(TG_ERR_VALUE, "%s: eps must be >= 0, got %g", who, eps);
    scope s0 = {0}, *sc = &s0;
    tg_tensor *n = pnorm(sc, x, ax, p);
    tg_tensor *nc = U(tg_clip, n, eps, NAN); /* PyTorch: norm.clamp_min(eps) */
    return scope_return(sc, DIV(x, nc));
}

tg_tensor *tg_cosine_similarity(tg_tensor *a, tg_tensor *b, int64_t axis, double eps) {
    const char *who = "cosine_similarity";
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, a) || tg__require_float(who, b)) return NULL;
    int nd;
    int64_t sh[TG_MAX_DIMS], ax;
    if (tg__broadcast_shapes(who, a->ndim, a->shape, b->ndim, b->shape, &nd, sh)) return NULL;
    if (nd == 0) return TG_FAIL(TG_ERR_VALUE, "%s: inputs must have at least 1 dim, got %s and %s",
                                who, tg__shp(a), tg__shp(b));
    if (tg__norm_axis(who, axis, nd, &ax)) return NULL;
    if (!(eps >= 0)) return TG_FAIL(TG_ERR_VALUE, "%s: eps must be >= 0, got %g", who, eps);
    scope s0 = {0}, *sc = &s0;
    tg_tensor *ab = K(tg_broadcast_to(a, nd, sh));
    tg_tensor *bb = K(tg_broadcast_to(b, nd, sh));
    tg_tensor *u[2] = {ab, bb};
    for (int i = 0; i < 2; i++) {
        /* PyTorch divides each by its norm clamped at eps, the clamp outside
         * autograd: value max(n, eps), gradient that of n */
        tg_tensor *n = u[i] ? pnorm(sc, u[i], ax, 2.0) : NULL;
        tg_tensor *nd_ = n ? K(tg_tensor_detach(n)) : NULL;
        tg_tensor *shift = SUB(U(tg_clip, nd_, eps, NAN), nd_);
        u[i] = DIV(u[i], ADD(n, shift));
    }
    return scope_return(sc, SUM1(MUL(u[0], u[1]), ax, false));
}

/* ===================================================================== */
/* scaled_dot_product_attention                                           */
/* ===================================================================== */

tg_tensor *tg_scaled_dot_product_attention(tg_tensor *q, tg_tensor *k, tg_tensor *v,
                                           tg_tensor *mask, double dropout_p, bool is_causal,
                                           double scale) {
    const char *who = "scaled_dot_product_attention";
    if (!q || !k || !v) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg__require_float(who, q) || tg__require_float(who, k) || tg__require_float(who, v)) return NULL;
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2 || q->shape[q->ndim - 1] != k->shape[k->ndim - 1] ||
        k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: expected query (..., L, E), key (..., S, E) and value (..., S, Ev); got "
                       "%s, %s and %s",
                       who, tg__shp(q), tg__shp(k), tg__shp(v));
    if (!(dropout_p >= 0 && dropout_p <= 1))
        return TG_FAIL(TG_ERR_VALUE, "%s: dropout_p must be in [0, 1], got %g", who, dropout_p);
    if (is_causal && mask)
        return TG_FAIL(TG_ERR_VALUE, "%s: pass either attn_mask or is_causal=True, not both", who);
    int64_t L = q->shape[q->ndim - 2], S = k->shape[k->ndim - 2], E = q->shape[q->ndim - 1];
    if (mask) {
        int nd;
        int64_t sh[TG_MAX_DIMS];
        if (mask->ndim < 1 || mask->shape[mask->ndim - 1] != S ||
            tg__broadcast_shapes(who, mask->ndim, mask->shape, 2, (const int64_t[]){L, S}, &nd, sh) ||
            sh[nd - 2] != L || sh[nd - 1] != S) {
            tg_error_clear();
            return TG_FAIL(TG_ERR_VALUE, "%s: attn_mask of shape %s does not broadcast to the scores (..., %lld, %lld)",
                           who, tg__shp(mask), (long long)L, (long long)S);
        }
    }
    if (scale != scale) scale = 1.0 / sqrt((double)(E > 0 ? E : 1)); /* NaN: the default */
    scope s0 = {0}, *sc = &s0;
    tg_tensor *kt = K(tg_transpose(k, -2, -1));
    /* causal: only the scores j <= i are used, and the weights are 0 above the
     * diagonal, so both products are triangular and the GEMM skips about half
     * of each (tri_matmul; mode 0 tril(q k^T), mode 2 tril(a) v) */
    tg_tensor *s = is_causal ? K(kt ? tg_tri_matmul(q, kt, 0) : NULL) : B2(tg_matmul, q, kt);
    tg_tensor *a;
    if (mask && tg_dtype_is_float(mask->dtype)) /* a float mask is added to the scaled scores */
        a = U(tg_softmax, ADD(MULS(s, scale), mask), -1);
    else /* keep j <= i and/or where nonzero (or all): one masked softmax with the scale in it */
        a = s ? K(masked_softmax(s, mask, is_causal, true, scale)) : NULL;
    if (a && dropout_p > 0) a = K(tg_dropout(a, dropout_p, true));
    if (is_causal) return scope_return(sc, K(a ? tg_tri_matmul(a, v, 2) : NULL));
    return scope_return(sc, B2(tg_matmul, a, v));
}

/* ===================================================================== */
/* The registry blocks                                                    */
/* ===================================================================== */

/* optional inputs after the required ones, present by the bits of `mask` */
static void optional_inputs(tg_tensor *const *in, int n, int first, int64_t mask, int count,
                            tg_tensor **out) {
    int k = first;
    for (int i = 0; i < count; i++) out[i] = ((mask >> i) & 1) && k < n ? in[k++] : NULL;
}

static tg_tensor *apply_binary_cross_entropy(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 2) return need_two("binary_cross_entropy", n);
    return tg_binary_cross_entropy(in[0], in[1], n > 2 ? in[2] : NULL, (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(binary_cross_entropy, .arity = -1, .composite = true, .diff_mask = 3,
             .dtypes = "float32,float64",
             .forward = "L = mean(-w (t max(log p, -100) + (1 - t) max(log(1 - p), -100)))",
             .forward_tex = "L = \\frac{1}{n}\\sum -w\\big(t \\log p + (1 - t)\\log(1 - p)\\big)",
             .vjp = "dp = w (p - t) / (p (1 - p)) dL / n, dt = w (log(1 - p) - log p) dL / n",
             .vjp_tex = "\\bar p = \\frac{\\bar L}{n}\\,\\frac{w (p - t)}{p (1 - p)},\\quad "
                        "\\bar t = \\frac{\\bar L}{n}\\, w \\log\\frac{1 - p}{p}",
             .doc = "Binary cross-entropy of probabilities p in [0, 1] (optional weight input; i0 "
                    "reduction); logs clamped at -100 as in PyTorch.",
             .apply = apply_binary_cross_entropy,
             .examples = "u3x4,u3x4|i0=1;u3x4,u3x4|i0=0;u5,u5|i0=2;u3x4,u3x4,+4|i0=1;uT3x4,u3x4|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar p;\\bar t");

static tg_tensor *apply_huber_loss(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_huber_loss(in[0], in[1], p->f[0], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(huber_loss, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean(0.5 d^2 if |d| < delta else delta (|d| - delta / 2)), d = x - t",
             .forward_tex = "L = \\frac{1}{n}\\sum \\begin{cases}\\tfrac12 d^2 & |d| < \\delta\\\\ "
                            "\\delta(|d| - \\tfrac12\\delta) & \\text{else}\\end{cases}",
             .vjp = "dx = clip(d, -delta, delta) dL / n, dt = -dx",
             .vjp_tex = "\\bar x = \\frac{\\bar L}{n}\\operatorname{clip}(d, -\\delta, \\delta),\\quad \\bar t = -\\bar x",
             .doc = "Huber loss (f0 delta > 0, i0 reduction).", .apply = apply_huber_loss,
             .examples = "3x4,3x4|i0=1 f0=1;3x4,3x4|i0=0 f0=0.5;5,5|i0=2 f0=2;T3x4,3x4|i0=1 f0=0.7",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

static tg_tensor *apply_smooth_l1_loss(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_smooth_l1_loss(in[0], in[1], p->f[0], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(smooth_l1_loss, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean(0.5 d^2 / beta if |d| < beta else |d| - beta / 2), d = x - t",
             .forward_tex = "L = \\frac{1}{n}\\sum \\begin{cases}\\tfrac{d^2}{2\\beta} & |d| < \\beta\\\\ "
                            "|d| - \\tfrac12\\beta & \\text{else}\\end{cases}",
             .vjp = "dx = clip(d / beta, -1, 1) dL / n, dt = -dx",
             .vjp_tex = "\\bar x = \\frac{\\bar L}{n}\\operatorname{clip}(d / \\beta, -1, 1),\\quad \\bar t = -\\bar x",
             .doc = "Smooth L1 loss (f0 beta >= 0, beta 0 is the L1 loss; i0 reduction).",
             .apply = apply_smooth_l1_loss,
             .examples = "3x4,3x4|i0=1 f0=1;3x4,3x4|i0=0 f0=0.5;5,5|i0=2 f0=2;T3x4,3x4|i0=1 f0=0.7",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

static tg_tensor *apply_l1_loss(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_l1_loss(in[0], in[1], (tg_reduction)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(l1_loss, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean(|x - t|)", .forward_tex = "L = \\frac{1}{n}\\sum |x - t|",
             .vjp = "dx = sign(x - t) dL / n, dt = -dx",
             .vjp_tex = "\\bar x = \\frac{\\bar L}{n}\\operatorname{sign}(x - t),\\quad \\bar t = -\\bar x",
             .doc = "Mean absolute error (i0 reduction).", .apply = apply_l1_loss,
             .examples = "3x4,3x4|i0=1;3x4,3x4|i0=0;5,5|i0=2;T3x4,3x4|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

static tg_tensor *apply_kl_div(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_kl_div(in[0], in[1], tg__int_param(p->i[0]), p->i[1] != 0);
}
TG_DEFINE_OP(kl_div, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean(t (log t - x)), or mean(exp(t) (t - x)) with log_target",
             .forward_tex = "L = \\frac{1}{n}\\sum t\\,(\\log t - x)",
             .vjp = "dx = -t dL / n, dt = (log t + 1 - x) dL / n",
             .vjp_tex = "\\bar x = -\\frac{\\bar L}{n} t,\\quad \\bar t = \\frac{\\bar L}{n}(\\log t + 1 - x)",
             .doc = "Kullback-Leibler divergence of log-probabilities x from targets t (i0 reduction, "
                    "3 batchmean; i1 log_target).",
             .apply = apply_kl_div,
             .examples = "3x4,+3x4|i0=1;3x4,+3x4|i0=0;3x4,+3x4|i0=3;3x4,3x4|i0=2 i1=1;T3x4,+3x4|i0=3",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

static tg_tensor *apply_embedding(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_embedding(in[1], in[0], p->i[0] != 0, p->i[1]);
}
TG_DEFINE_OP(embedding, .arity = 2, .composite = true, .diff_mask = 2,
             .dtypes = "int64 indices; float32,float64 weight",
             .forward = "y[..., :] = W[idx[...], :]", .forward_tex = "y_{i} = W_{\\mathrm{idx}_i}",
             .vjp = "dW = index_add(zeros, idx, dy) (padding_idx's row gets none)",
             .vjp_tex = "\\bar W_r = \\textstyle\\sum_{i: \\mathrm{idx}_i = r} \\bar y_i",
             .doc = "Rows of a weight table (input 1) at int64 indices (input 0); i0 has padding_idx, "
                    "i1 padding_idx (its row gets no gradient).",
             .apply = apply_embedding, .examples = "i6:3x4,6x5;i6:7,6x3;i3:2x3,T3x4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar W");

static tg_tensor *apply_layer_norm(tg_tensor *const *in, int n, const tg_params *p) {
    tg_tensor *wb[2];
    optional_inputs(in, n, 1, p->i[1], 2, wb);
    int nd = tg__int_param(p->i[0]);
    if (nd < 1 || nd > in[0]->ndim)
        return TG_FAIL(TG_ERR_VALUE, "layer_norm: %d normalized dims for input %s", nd, tg__shp(in[0]));
    return tg_layer_norm(in[0], nd, in[0]->shape + in[0]->ndim - nd, wb[0], wb[1], p->f[0]);
}
TG_DEFINE_OP(layer_norm, .arity = -1, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y = (x - mean(x)) / sqrt(var(x) + eps) * w + b over the last dims",
             .forward_tex = "y = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} \\odot w + b",
             .vjp = "dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)), dxh = dy w; dw = sum(dy xh); db = sum(dy)",
             .vjp_tex = "\\bar x = r\\big(\\bar{\\hat x} - \\overline{\\bar{\\hat x}} - \\hat x\\,"
                        "\\overline{\\bar{\\hat x}\\hat x}\\big),\\quad \\bar w = \\textstyle\\sum \\bar y \\odot \\hat x,"
                        "\\quad \\bar b = \\textstyle\\sum \\bar y",
             .doc = "Layer normalisation over the last i0 dims (i1 bits: 1 weight, 2 bias inputs; f0 eps); "
                    "a fused kernel; a first-order backward is one fused pass, create_graph runs the "
                    "VJP written with ops.",
             .backward = layer_norm_vjp, .apply = apply_layer_norm,
             .examples = "3x4|i0=1 f0=1e-5;3x4,4,4|i0=1 i1=3 f0=1e-5;2x3x4,3x4,3x4|i0=2 i1=3 f0=1e-5;"
                         "T4x3,3|i0=1 i1=1 f0=0.1;2x5,5|i0=1 i1=2 f0=1e-5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

static tg_tensor *apply_group_norm(tg_tensor *const *in, int n, const tg_params *p) {
    tg_tensor *wb[2];
    optional_inputs(in, n, 1, p->i[1], 2, wb);
    return tg_group_norm(in[0], p->i[0], wb[0], wb[1], p->f[0]);
}
TG_DEFINE_OP(group_norm, .arity = -1, .composite = true, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y = (x - mean_g(x)) / sqrt(var_g(x) + eps) * w[c] + b[c], per sample and group of channels",
             .forward_tex = "y = \\frac{x - \\mu_g}{\\sqrt{\\sigma_g^2 + \\epsilon}}\\, w_c + b_c",
             .vjp = "dx = rstd (dxh - mean_g(dxh) - xh mean_g(dxh xh)), dxh = dy w; dw = sum(dy xh); db = sum(dy)",
             .vjp_tex = "\\bar x = r\\big(\\bar{\\hat x} - \\overline{\\bar{\\hat x}} - \\hat x\\,"
                        "\\overline{\\bar{\\hat x}\\hat x}\\big),\\quad \\bar w = \\textstyle\\sum \\bar y \\odot \\hat x,"
                        "\\quad \\bar b = \\textstyle\\sum \\bar y",
             .doc = "Group normalisation of (N, C, ...) in i0 groups of channels (i1 bits: 1 weight, "
                    "2 bias inputs; f0 eps).",
             .apply = apply_group_norm,
             .examples = "2x4x3|i0=2 f0=1e-5;2x6x2x2,6,6|i0=3 i1=3 f0=1e-5;3x4|i0=4 i1=0 f0=0.1;"
                         "2x4x3,4|i0=1 i1=1 f0=1e-5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

static tg_tensor *apply_normalize(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_normalize(in[0], p->f[0], p->i[0], p->f[1]);
}
TG_DEFINE_OP(normalize, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x / max(norm_p(x, axis), eps)",
             .forward_tex = "y = \\frac{x}{\\max(\\lVert x\\rVert_p, \\epsilon)}",
             .vjp = "dx = (dy - y sum(dy y)) / n for p = 2 (n the norm, where it exceeds eps)",
             .vjp_tex = "\\bar x = \\frac{\\bar y - y \\sum \\bar y \\odot y}{\\lVert x\\rVert}",
             .doc = "x divided by its p-norm (f0 p, f1 eps) along axis i0.", .apply = apply_normalize,
             .examples = "3x4|f0=2 i0=1 f1=1e-12;3x4|f0=1 i0=0 f1=1e-12;T3x4|f0=3 i0=-1 f1=1e-12;5|f0=2 i0=0 f1=1e-12",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

static tg_tensor *apply_cosine_similarity(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_cosine_similarity(in[0], in[1], p->i[0], p->f[0]);
}
TG_DEFINE_OP(cosine_similarity, .arity = 2, .composite = true, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "y = sum(a / max(|a|, eps) * b / max(|b|, eps), axis)",
             .forward_tex = "y = \\frac{a}{\\max(\\lVert a\\rVert, \\epsilon)} \\cdot \\frac{b}{\\max(\\lVert b\\rVert, \\epsilon)}",
             .vjp = "da = dy (b / (|a| |b|) - y a / |a|^2), db symmetric",
             .vjp_tex = "\\bar a = \\bar y\\Big(\\frac{b}{\\lVert a\\rVert\\lVert b\\rVert} - y \\frac{a}{\\lVert a\\rVert^2}\\Big),"
                        "\\quad \\bar b = \\bar y\\Big(\\frac{a}{\\lVert a\\rVert\\lVert b\\rVert} - y \\frac{b}{\\lVert b\\rVert^2}\\Big)",
             .doc = "Cosine similarity of a and b (broadcast) along axis i0 (f0 eps).",
             .apply = apply_cosine_similarity,
             .examples = "3x4,3x4|i0=1 f0=1e-8;3x4,4|i0=-1 f0=1e-8;T3x4,3x4|i0=0 f0=1e-8;2x3x4,1x3x4|i0=2 f0=1e-8",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar a;\\bar b");

static tg_tensor *apply_sdpa(tg_tensor *const *in, int n, const tg_params *p) {
    if (n < 3)
        return TG_FAIL(TG_ERR_VALUE, "scaled_dot_product_attention: expected at least 3 inputs "
                                     "(query, key, value), got %d", n);
    return tg_scaled_dot_product_attention(in[0], in[1], in[2], n > 3 ? in[3] : NULL, p->f[0],
                                           p->i[0] != 0, p->f[1] == 0 ? NAN : p->f[1]);
}
TG_DEFINE_OP(scaled_dot_product_attention, .arity = -1, .composite = true, .diff_mask = 7,
             .dtypes = "float32,float64 (any dtype mask: nonzero keeps)",
             .forward = "y = softmax(q k^T * scale + mask) v",
             .forward_tex = "y = \\operatorname{softmax}\\Big(\\frac{q k^\\top}{\\sqrt{E}} + M\\Big)\\, v",
             .vjp = "dv = A^T dy; dS = A * (dy v^T - sum(A * dy v^T)); dq = dS k scale; dk = dS^T q scale",
             .vjp_tex = "\\bar q = s\\,\\bar S k,\\quad \\bar k = s\\,\\bar S^\\top q,\\quad \\bar v = A^\\top \\bar y",
             .doc = "Attention softmax(q k^T scale + mask) v (optional mask input: float added, other "
                    "dtypes keep where nonzero; i0 is_causal, f0 dropout_p, f1 scale or 0 for 1/sqrt(E)).",
             .apply = apply_sdpa,
             .examples = "3x4,5x4,5x2;2x3x4,2x5x4,2x5x2|i0=1;2x3x4,2x5x4,2x5x2,3x5;"
                         "2x3x4,2x5x4,2x5x2,i4:3x5;3x4,T5x4,5x2|i0=1 f1=0.3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar q;\\bar k;\\bar v");

/* ===================================================================== */
/* softmin: softmax of -x (a composite), beside softmax                   */
/* ===================================================================== */

tg_tensor *tg_softmin(tg_tensor *x0, int64_t axis) {
    if (!x0) return TG_FAIL(TG_ERR_VALUE, "softmin: input is NULL");
    if (!tg_dtype_is_float(x0->dtype) && x0->dtype != TG_INT64)
        return TG_FAIL(TG_ERR_TYPE, "softmin: not supported for dtype %s (expected float32, float64 or "
                       "int64)", tg_dtype_name(x0->dtype));
    tg_tensor *x = tg_dtype_is_float(x0->dtype) ? (tg_tensor_retain(x0), x0) : tg_cast(x0, TG_FLOAT64);
    tg_tensor *nx = x ? tg_neg(x) : NULL;
    tg_tensor_release(x);
    tg_tensor *y = nx ? tg_softmax(nx, axis) : NULL;
    tg_tensor_release(nx);
    if (!y && !strncmp(tg_error_message(), "softmax:", 8)) {
        char buf[512];
        snprintf(buf, sizeof buf, "softmin:%s", tg_error_message() + 8);
        tg_error_set(tg_error_status(), "%s", buf);
    }
    return y;
}
static tg_tensor *apply_softmin(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_softmin(in[0], p->i[0]);
}
TG_DEFINE_OP(softmin, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = softmax(-x) along axis", .forward_tex = "y = \\operatorname{softmax}(-x)",
             .vjp = "dx = -y * (dy - sum(dy * y)) along axis",
             .vjp_tex = "\\bar x = -y \\odot (\\bar y - \\textstyle\\sum \\bar y \\odot y)",
             .doc = "Softmax of -x along axis (i0); a composite op (neg, softmax).", .apply = apply_softmin,
             .examples = "3x4|i0=1;T2x3|i0=0;2x3x4|i0=-1", .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

