/*
 * reduce.c -- sum, mean, max, min, var, logsumexp over any set of axes, and
 * argmax/argmin along one axis.
 *
 * One driver (reduce_kernel) handles every float reduction; float32 sums
 * accumulate in float64 for accuracy.  Contiguous input whose reduced axes
 * are adjacent takes the fast path below (vectorized kernels from
 * kernels/vmath.h, split across threads, the same bits on any thread
 * count); a contiguous float reduction over axes in several blocks takes
 * one such pass per block (reduce_fast).  Every other layout takes the general path:
 * the output is viewed with stride 0 along the reduced axes and the input
 * is walked once.
 */
#include "ops_internal.h"

#include <math.h>
#include <stdlib.h>

#include "../kernels/threadpool.h"
#include "../kernels/vmath.h"

typedef enum { R_SUM, R_MAX, R_MIN } rkind;

/* Output shape for reducing `mask` axes of x. */
static void reduced_shape(const tg_tensor *x, uint32_t mask, bool keepdims, int *nd,
                          int64_t *shape) {
    int k = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            if (keepdims) shape[k++] = 1;
        } else {
            shape[k++] = x->shape[d];
        }
    }
    *nd = k;
}

typedef struct { rkind kind; tg_dtype dt; } rctx;

#define RED_ROW(NAME, T, ACC, ADD)                                                      \
    static void NAME(int64_t n, char **p, const int64_t *s, void *vctx) {               \
        rkind kind = ((rctx *)vctx)->kind;                                              \
        ACC *acc = (ACC *)p[0];                                                          \
        const char *x = p[1];                                                           \
        if (s[0] == 0) {                                                                \
            ACC a = *acc;                                                               \
            if (kind == R_SUM) {                                                        \
                if (s[1] == (int64_t)sizeof(T)) {                                       \
                    const T *X = (const T *)x;                                          \
                    for (int64_t i = 0; i < n; i++) a = ADD(a, (ACC)X[i]);                     \
                } else {                                                                \
                    for (int64_t i = 0; i < n; i++) a = ADD(a, (ACC) * (const T *)(x + i * s[1])); \
                }                                                                       \
            } else if (kind == R_MAX) {                                                 \
                for (int64_t i = 0; i < n; i++) {                                       \
                    ACC v = (ACC) * (const T *)(x + i * s[1]);                          \
                    if (v > a || v != v) a = v;                                         \
                    if (a != a) break;                                                  \
                }                                                                       \
            } else {                                                                    \
                for (int64_t i = 0; i < n; i++) {                                       \
                    ACC v = (ACC) * (const T *)(x + i * s[1]);                          \
                    if (v < a || v != v) a = v;                                         \
                    if (a != a) break;                                                  \
                }                                                                       \
            }                                                                           \
            *acc = a;                                                                   \
            return;                                                                     \
        }                                                                               \
        for (int64_t i = 0; i < n; i++) {                                               \
            ACC *ap = (ACC *)((char *)acc + i * s[0]);                                  \
            ACC v = (ACC) * (const T *)(x + i * s[1]);                                  \
            if (kind == R_SUM) *ap = ADD(*ap, v);                                                \
            else if (kind == R_MAX) { if (v > *ap || v != v) *ap = (*ap != *ap) ? *ap : v; } \
            else { if (v < *ap || v != v) *ap = (*ap != *ap) ? *ap : v; }               \
        }                                                                               \
    }
#define PLAIN_ADD(a, b) ((a) + (b))
RED_ROW(red_f32, float, double, PLAIN_ADD)
RED_ROW(red_f64, double, double, PLAIN_ADD)
RED_ROW(red_i64, int64_t, int64_t, tg__wrap_add) /* int64 sums wrap like NumPy's, no UB */

/* ---- fast path: contiguous float input, one block of reduced axes -------
 * After dropping size-1 dims, x is seen as [outer, red, inner] when the
 * reduced axes are adjacent (the common cases: all axes, the last axes, the
 * first axes, one middle axis).  Then:
 *   inner == 1: every output is the reduction of `red` consecutive elements,
 *               cut into fixed blocks of RBLOCK (vmath sum/max/min);
 *   inner > 1:  every output row is a sum of `red` rows of `inner` elements
 *               (vmath acc: acc[j] += x[j], vectorized over j).
 * Work items (blocks, or column chunks) are split among threads; each
 * output is always combined in the same order, so the result does not
 * depend on the thread count. */
#define RBLOCK ((int64_t)1 << 15)
#define RCOLS ((int64_t)1 << 10)

typedef struct {
    rkind kind;
    tg_dtype dt;
    const char *x;
    int64_t outer, red, inner, nblk, ncol;
    double *out; /* partials (inner == 1) or acc (inner > 1) */
    int64_t cw;  /* columns per chunk (inner > 1) */
} rfast;

static double reduce_block(rkind kind, tg_dtype dt, const char *p, int64_t n) {
    const tg_vmath_table *vm = tg_vmath();
    if (dt == TG_FLOAT32) {
        const float *x = (const float *)p;
        return kind == R_SUM ? vm->sum_f32(n, x) : kind == R_MAX ? vm->max_f32(n, x) : vm->min_f32(n, x);
    }
    const double *x = (const double *)p;
    return kind == R_SUM ? vm->sum_f64(n, x) : kind == R_MAX ? vm->max_f64(n, x) : vm->min_f64(n, x);
}

/* items [b, e) of outer * nblk blocks -> out[item] */
static void rfast_rows(int64_t b, int64_t e, void *vc) {
    const rfast *c = vc;
    size_t isz = tg_dtype_size(c->dt);
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / c->nblk, k = it % c->nblk;
        int64_t start = k * RBLOCK, n = c->red - start < RBLOCK ? c->red - start : RBLOCK;
        c->out[it] = reduce_block(c->kind, c->dt, c->x + (size_t)(o * c->red + start) * isz, n);
    }
}

/* items [b, e) of outer * ncol column chunks: acc[o, cols] += x[o, r, cols]
 * (or the running max / min) */
static void rfast_cols(int64_t b, int64_t e, void *vc) {
    const rfast *c = vc;
    const tg_vmath_table *vm = tg_vmath();
    size_t isz = tg_dtype_size(c->dt);
    bool f32 = c->dt == TG_FLOAT32;
    void (*col32)(int64_t, int64_t, const float *, int64_t, double *) =
        c->kind == R_SUM ? vm->acc_f32 : c->kind == R_MAX ? vm->accmax_f32 : vm->accmin_f32;
    void (*col64)(int64_t, int64_t, const double *, int64_t, double *) =
        c->kind == R_SUM ? vm->acc_f64 : c->kind == R_MAX ? vm->accmax_f64 : vm->accmin_f64;
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / c->ncol, j0 = (it % c->ncol) * c->cw;
        int64_t w = c->inner - j0 < c->cw ? c->inner - j0 : c->cw;
        double *acc = c->out + o * c->inner + j0;
        const char *first = c->x + (size_t)(o * c->red * c->inner + j0) * isz;
        if (f32) col32(c->red, w, (const float *)first, c->inner, acc);
        else col64(c->red, w, (const double *)first, c->inner, acc);
    }
}

/* The grain of a pass of `items` pieces of about `per` elements each: split
 * as the elementwise loops are (tensor.c's tg__iterate_parallel: above
 * TG_ELEMENTWISE_SPLIT_WORK elements, chunks of a quarter of that).  It was
 * one chunk per TG_PARALLEL_MIN_WORK (2^17) elements, so that a sum over
 * (0, 2, 3) of the MNIST CNN's (32, 32, 14, 14) activations (200k) ran on
 * one thread.  Each piece is reduced alone: the chunks change no bit. */
static int64_t pass_grain(int64_t items, int64_t per) {
    if (per < 1) per = 1;
    if (items * per <= TG_ELEMENTWISE_SPLIT_WORK) return items > 0 ? items : 1;
    int64_t g = TG_ELEMENTWISE_SPLIT_WORK / 4 / per;
    return g < 1 ? 1 : g;
}

/* One pass over x seen as [outer, red, inner] (dt float32 or float64):
 * out[o, j] = the reduction of x[o, :, j].  With inner > 1 the column path
 * folds the rows into out, which holds the reduction's start on entry (0,
 * -inf for max, +inf for min); the row path assigns.  Returns 1 when done,
 * -1 on an allocation failure (error set). */
static int reduce_pass(rkind kind, tg_dtype dt, const char *x, int64_t outer, int64_t red,
                       int64_t inner, double *out) {
    rfast c = {kind, dt, x, outer, red, inner, 0, 0, out, RCOLS};
    if (inner > 1) {
        /* Chunks of RCOLS columns; narrower when that leaves fewer than 8
         * chunks of a pass worth splitting (a sum or max over axis 0 of a
         * 1000 x 1000 matrix was one chunk, on one thread).  Each column is
         * folded alone, its rows in order: the width changes no bit. */
        if (outer * ((inner + RCOLS - 1) / RCOLS) < 8 &&
            outer * red * inner > TG_ELEMENTWISE_SPLIT_WORK) {
            int64_t per_row = (8 + outer - 1) / outer, cw = (inner + per_row - 1) / per_row;
            cw = (cw + 15) / 16 * 16;
            c.cw = cw < 64 ? 64 : cw > RCOLS ? RCOLS : cw;
        }
        c.ncol = (inner + c.cw - 1) / c.cw;
        int64_t items = outer * c.ncol;
        tg_parallel_for(items, pass_grain(items, red * (inner < c.cw ? inner : c.cw)), rfast_cols, &c);
        return 1;
    }
    c.nblk = (red + RBLOCK - 1) / RBLOCK;
    int64_t grain = pass_grain(outer * c.nblk, red < RBLOCK ? red : RBLOCK);
    if (c.nblk == 1) {
        tg_parallel_for(outer, grain, rfast_rows, &c);
        return 1;
    }
    c.out = malloc((size_t)(outer * c.nblk) * sizeof(double));
    if (!c.out) {
        tg_error_set(TG_ERR_MEMORY, "reduce: out of memory for %lld partial results",
                     (long long)(outer * c.nblk));
        return -1;
    }
    tg_parallel_for(outer * c.nblk, grain, rfast_rows, &c);
    for (int64_t o = 0; o < outer; o++) {
        const double *pp = c.out + o * c.nblk;
        double a = pp[0];
        for (int64_t k = 1; k < c.nblk; k++) {
            double v = pp[k];
            if (kind == R_SUM) a += v;
            else if (a != a || v != v) a = a != a ? a : v;
            else if (kind == R_MAX ? v > a : v < a) a = v;
        }
        out[o] = a;
    }
    free(c.out);
    return 1;
}

/* The non-size-1 dims of x in order, adjacent dims that are both reduced or
 * both kept merged into one group (x is contiguous, so a merged group is
 * one axis of the same memory).  Returns the number of groups. */
typedef struct {
    int64_t n;
    bool red;
} rgroup;
static int group_dims(const tg_tensor *x, uint32_t mask, rgroup *g) {
    int ng = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1) continue;
        bool r = (mask >> d) & 1u;
        if (ng && g[ng - 1].red == r) g[ng - 1].n *= x->shape[d];
        else g[ng++] = (rgroup){x->shape[d], r};
    }
    return ng;
}

/* Returns 1 when done (acc filled), 0 when the case is not covered, -1 on
 * an allocation failure (error set). acc holds the reduction's start on
 * entry (0, -inf or +inf).
 *
 * The reduced axes in one block ([outer, red, inner]): one pass, straight
 * into acc (the loop below runs once).  Over several blocks (the (N, H, W) of an (N, C, H, W) tensor: BatchNorm's
 * statistics, a per-channel bias's gradient): one pass per block, the last
 * block first, each into a float64 buffer that the next pass reads:
 * (N, C, H, W) -> (N, C) by rows of H*W, then (N, C) -> (C) by columns.
 * The first pass reads the input once and cuts it by the block's length, so
 * the later ones are small.  Every pass is cut in fixed pieces, so the
 * result does not depend on the thread count (a sum may differ in the last
 * bits from the general path's one walk, which added in another order; a
 * max or min is the same value).  Until session 14 these layouts took the
 * general path: one thread, about 0.7 ns an element (a sum over (0, 2, 3)
 * of a (32, 32, 14, 14) tensor: 136 us, PyTorch 16 us), and so did a max
 * or min over any axis but the last ones (max over axis 0 of 1000 x 1000:
 * 1.13 ms, NumPy 0.11). */
static int reduce_fast(const tg_tensor *x, uint32_t mask, rkind kind, double *acc) {
    if ((x->dtype != TG_FLOAT32 && x->dtype != TG_FLOAT64) || !tg_tensor_is_contiguous(x))
        return 0;
    rgroup g[TG_MAX_DIMS];
    int ng = group_dims(x, mask, g), nred = 0;
    for (int i = 0; i < ng; i++) nred += g[i].red;
    if (nred == 0) /* only size-1 axes reduced: one pass of rows of length 1 */
        g[ng++] = (rgroup){1, true}, nred = 1;
    const char *src = (const char *)tg_tensor_data((tg_tensor *)x);
    tg_dtype dt = x->dtype;
    double start = kind == R_SUM ? 0.0 : kind == R_MAX ? -INFINITY : INFINITY;
    double *buf = NULL; /* the previous pass's result, read by this one */
    int rc = 1;
    while (nred > 0) {
        int last = ng - 1;
        while (!g[last].red) last--;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < last; i++) outer *= g[i].n;
        for (int i = last + 1; i < ng; i++) inner *= g[i].n;
        double *dst = acc;
        if (nred > 1) {
            dst = malloc((size_t)(outer * inner) * sizeof(double));
            if (!dst) {
                tg_error_set(TG_ERR_MEMORY, "reduce: out of memory for %lld partial results",
                             (long long)(outer * inner));
                rc = -1;
                break;
            }
            for (int64_t i = 0; i < outer * inner; i++) dst[i] = start;
        }
        rc = reduce_pass(kind, dt, src, outer, g[last].n, inner, dst);
        free(buf);
        buf = dst == acc ? NULL : dst;
        if (rc != 1 || --nred == 0) break; /* the last pass wrote acc */
        src = (const char *)dst;
        dt = TG_FLOAT64;
        /* drop the reduced group: the kept groups on either side of it (the
         * groups alternate, and one more reduced group comes before, so
         * last >= 2) are now adjacent in dst and become one */
        g[last - 1].n *= inner;
        ng = last;
    }
    free(buf);
    return rc;
}

/* Reduce x over mask (no autograd).  Result dtype: x's, except that a sum
 * of bool, int32 or uint8 is int64 (NumPy), computed through an int64 copy
 * (max/min of those are computed in int64 too, then converted back). */
static tg_tensor *reduce_kernel_in(const char *who, tg_tensor *x, uint32_t mask, bool keepdims,
                                   rkind kind, tg_dtype out_dt);
static tg_tensor *reduce_kernel(const char *who, tg_tensor *x, uint32_t mask, bool keepdims,
                                rkind kind) {
    if (tg_dtype_is_float(x->dtype) || x->dtype == TG_INT64)
        return reduce_kernel_in(who, x, mask, keepdims, kind, x->dtype);
    tg_tensor *xi = tg__as_dtype(x, TG_INT64);
    if (!xi) return NULL;
    tg_tensor *r = reduce_kernel_in(who, xi, mask, keepdims, kind, kind == R_SUM ? TG_INT64 : x->dtype);
    tg_tensor_release(xi);
    return r;
}
static tg_tensor *reduce_kernel_in(const char *who, tg_tensor *x, uint32_t mask, bool keepdims,
                                   rkind kind, tg_dtype out_dt) {
    int nd;
    int64_t shape[TG_MAX_DIMS], kshape[TG_MAX_DIMS];
    reduced_shape(x, mask, keepdims, &nd, shape);
    int knd;
    reduced_shape(x, mask, true, &knd, kshape);
    if (kind != R_SUM) {
        for (int d = 0; d < x->ndim; d++)
            if ((mask & (1u << d)) && x->shape[d] == 0)
                return TG_FAIL(TG_ERR_VALUE,
                               "%s: cannot reduce over axis %d of length 0 (shape %s): the "
                               "%s of no elements is undefined",
                               who, d, tg__shp(x), who);
    }
    bool is_int = x->dtype == TG_INT64;
    tg_dtype adt = is_int ? TG_INT64 : TG_FLOAT64;
    tg_tensor *acc = tg_tensor_empty(knd, kshape, adt);
    if (!acc) return NULL;
    double init = kind == R_SUM ? 0.0 : kind == R_MAX ? -INFINITY : INFINITY;
    if (is_int) {
        int64_t ii = kind == R_SUM ? 0 : kind == R_MAX ? INT64_MIN : INT64_MAX, *a = tg_tensor_data(acc);
        for (int64_t i = 0; i < acc->numel; i++) a[i] = ii;
    } else {
        double *a = tg_tensor_data(acc);
        for (int64_t i = 0; i < acc->numel; i++) a[i] = init;
    }
    int done = 0;
    if (x->numel > 0) {
        void *kt = tg__kernel_begin(x->numel);
        done = reduce_fast(x, mask, kind, (double *)tg_tensor_data(acc));
        tg__kernel_end(kt);
        if (done < 0) {
            tg_tensor_release(acc);
            return NULL;
        }
    }
    if (x->numel > 0 && !done) {
        int64_t st[2][TG_MAX_DIMS];
        tg__bcast_strides_bytes(acc, x->ndim, x->shape, st[0]);
        tg__bcast_strides_bytes(x, x->ndim, x->shape, st[1]);
        char *base[2] = {tg_tensor_data(acc), tg_tensor_data(x)};
        rctx c = {kind, x->dtype};
        tg_row_fn fn = x->dtype == TG_FLOAT32 ? red_f32 : x->dtype == TG_FLOAT64 ? red_f64 : red_i64;
        tg__iterate(2, x->ndim, x->shape, base, st, fn, &c);
    }
    tg_tensor *out = tg_tensor_empty(nd, shape, out_dt);
    if (out) {
        /* same element order: copy with conversion through a reshaped header */
        tg_tensor *av = tg__view(acc, nd, shape, NULL, 0);
        if (av) {
            tg__copy_into(out, av);
            tg_tensor_release(av);
        } else {
            tg_tensor_release(out);
            out = NULL;
        }
    }
    tg_tensor_release(acc);
    return out;
}

static int64_t count_of(const tg_tensor *x, uint32_t mask) {
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) n *= x->shape[d];
    return n;
}

static void store_axes(tg_entry *e, const tg_tensor *x, uint32_t mask, bool keepdims) {
    tg__store_reduced(&e->params, x, mask, keepdims, 0);
}

/* g (reduced shape) -> broadcast to the input's shape (ops_internal.h). */
static tg_tensor *expand_back(tg_entry *e, tg_tensor *g) { return tg__expand_reduced(&e->params, g, 0); }


static tg_tensor *apply_red(tg_tensor *(*f)(tg_tensor *, const int64_t *, int, bool),
                            tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return f(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims);
}

/* ---- sum ------------------------------------------------------------------ */

tg_tensor *tg_sum(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    uint32_t mask;
    if (tg__axes_mask("sum", axes, naxes, x->ndim, &mask)) return NULL;
    tg_entry *e;
    tg_tensor *out = tg__finish(&tg_opdef_sum, 1, &x, reduce_kernel("sum", x, mask, keepdims, R_SUM), &e);
    if (e) store_axes(e, x, mask, keepdims);
    return out;
}
static tg_status sum_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = expand_back(e, g));
    return TG_OK;
}
static tg_tensor *apply_sum(tg_tensor *const *in, int n, const tg_params *p) {
    return apply_red(tg_sum, in, n, p);
}
TG_DEFINE_OP(sum, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64 (int32,uint8,bool -> int64)",
             .flops = {TG_FLOPS_INPUT, 1, 1},
             .forward = "y = sum(x, axes)", .forward_tex = "y = \\sum_{\\text{axes}} x",
             .vjp = "dx = broadcast(dy, x.shape)", .vjp_tex = "\\bar x = \\operatorname{broadcast}(\\bar y)",
             .doc = "Sum over axes (all by default); float32 accumulates in float64; dtype= converts the input first.",
             .backward = sum_vjp, .apply = apply_sum,
             .examples = "3x4;3x4|axes=0;2x3x4|axes=0,2 keep=1;T3x4|axes=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_sum_to_shape(tg_tensor *x, int ndim, const int64_t *shape) {
    if (tg__same_shape(x->ndim, x->shape, ndim, shape)) {
        tg_tensor_retain(x);
        return x;
    }
    int64_t axes[TG_MAX_DIMS];
    int na = 0;
    int lead = x->ndim - ndim;
    if (lead < 0) return TG_FAIL(TG_ERR_VALUE, "sum_to_shape: %s has fewer dims than %s", tg__shp(x), tg__shp2(ndim, shape));
    for (int d = 0; d < x->ndim; d++) {
        int dd = d - lead;
        if (dd < 0 || (shape[dd] == 1 && x->shape[d] != 1)) axes[na++] = d;
        else if (shape[dd] != x->shape[d])
            return TG_FAIL(TG_ERR_VALUE, "sum_to_shape: %s cannot be summed to %s", tg__shp(x),
                           tg__shp2(ndim, shape));
    }
    tg_tensor *s = tg_sum(x, axes, na, true);
    tg_tensor *r = s ? tg_reshape(s, ndim, shape) : NULL;
    tg_tensor_release(s);
    return r;
}

/* ---- mean ----------------------------------------------------------------- */

tg_tensor *tg_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    uint32_t mask;
    if (tg__axes_mask("mean", axes, naxes, x->ndim, &mask)) return NULL;
    if (!tg_dtype_is_float(x->dtype)) {
        /* NumPy: the mean of integers or bools is float64 (a fraction of
         * true elements for a bool mask); no gradient flows to them */
        tg_tensor *xf = tg__as_dtype(x, TG_FLOAT64);
        if (!xf) return NULL;
        tg_tensor *r = tg_mean(xf, axes, naxes, keepdims);
        tg_tensor_release(xf);
        return r;
    }
    tg_tensor *s = reduce_kernel("mean", x, mask, keepdims, R_SUM);
    if (!s) return NULL;
    int64_t n = count_of(x, mask);
    double inv = n ? 1.0 / (double)n : NAN;
    if (s->dtype == TG_FLOAT32) {
        float *d = tg_tensor_data(s);
        for (int64_t i = 0; i < s->numel; i++) d[i] *= (float)inv;
    } else {
        double *d = tg_tensor_data(s);
        for (int64_t i = 0; i < s->numel; i++) d[i] *= inv;
    }
    tg_entry *e;
    tg_tensor *out = tg__finish(&tg_opdef_mean, 1, &x, s, &e);
    if (e) {
        store_axes(e, x, mask, keepdims);
        e->params.f[0] = inv;
    }
    return out;
}
static tg_status mean_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *b = expand_back(e, g);
    CHECK(b);
    gi[0] = tg_mul_scalar(b, e->params.f[0]);
    tg_tensor_release(b);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_mean(tg_tensor *const *in, int n, const tg_params *p) {
    return apply_red(tg_mean, in, n, p);
}
TG_DEFINE_OP(mean, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (integers and bool -> float64)",
             .flops = {TG_FLOPS_INPUT, 1, 2},
             .forward = "y = mean(x, axes)", .forward_tex = "y = \\frac{1}{n}\\sum_{\\text{axes}} x",
             .vjp = "dx = broadcast(dy, x.shape) / n", .vjp_tex = "\\bar x = \\tfrac{1}{n}\\operatorname{broadcast}(\\bar y)",
             .doc = "Mean over axes (all by default).", .backward = mean_vjp, .apply = apply_mean,
             .examples = "3x4;3x4|axes=1;2x3x4|axes=0,1 keep=1;T3x4|axes=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- max / min ------------------------------------------------------------- */

static tg_tensor *maxmin(const tg_opdef *op, tg_tensor *x, const int64_t *axes, int naxes,
                         bool keepdims, rkind kind) {
    uint32_t mask;
    if (tg__axes_mask(op->name, axes, naxes, x->ndim, &mask)) return NULL;
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 1, &x, reduce_kernel(op->name, x, mask, keepdims, kind), &e);
    if (e) {
        store_axes(e, x, mask, keepdims);
        tg__save_output(e, out);
        if (tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
tg_tensor *tg_max(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    return maxmin(&tg_opdef_max, x, axes, naxes, keepdims, R_MAX);
}
tg_tensor *tg_min(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    return maxmin(&tg_opdef_min, x, axes, naxes, keepdims, R_MIN);
}
/* The gradient flows to the elements equal to the result, split evenly
 * between ties (like PyTorch's amax). */
static tg_status maxmin_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0);
    CHECK(x);
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *yb = expand_back(e, y);
    tg_tensor_release(y);
    CHECK(yb);
    tg_tensor *mb = tg_eq(x, yb);
    tg_tensor_release(yb);
    CHECK(mb);
    tg_tensor *m = tg_cast(mb, x->dtype); /* 0/1 in x's float dtype */
    tg_tensor_release(mb);
    CHECK(m);
    int64_t ax[TG_MAX_DIMS];
    for (int i = 0; i < e->params.naxes; i++) ax[i] = e->params.axes[i];
    tg_tensor *cnt = tg_sum(m, ax, e->params.naxes, e->params.keepdims);
    tg_tensor *gc = cnt ? tg_div(g, cnt) : NULL;
    tg_tensor_release(cnt);
    tg_tensor *gb = gc ? expand_back(e, gc) : NULL;
    tg_tensor_release(gc);
    gi[0] = gb ? tg_mul(gb, m) : NULL;
    tg_tensor_release(gb);
    tg_tensor_release(m);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_max(tg_tensor *const *in, int n, const tg_params *p) {
    return apply_red(tg_max, in, n, p);
}
static tg_tensor *apply_min(tg_tensor *const *in, int n, const tg_params *p) {
    return apply_red(tg_min, in, n, p);
}
TG_DEFINE_OP(max, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .flops = {TG_FLOPS_INPUT, 1, 3},
             .forward = "y = max(x, axes)", .forward_tex = "y = \\max_{\\text{axes}} x",
             .vjp = "dx = dy * [x == y] / count(x == y)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\frac{[x = y]}{\\sum [x = y]}",
             .doc = "Maximum over axes; ties share the gradient.", .backward = maxmin_vjp,
             .apply = apply_max, .examples = "3x4;3x4|axes=1;2x3x4|axes=0,2 keep=1;T3x4|axes=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(min, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .flops = {TG_FLOPS_INPUT, 1, 3},
             .forward = "y = min(x, axes)", .forward_tex = "y = \\min_{\\text{axes}} x",
             .vjp = "dx = dy * [x == y] / count(x == y)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\frac{[x = y]}{\\sum [x = y]}",
             .doc = "Minimum over axes; ties share the gradient.", .backward = maxmin_vjp,
             .apply = apply_min, .examples = "3x4;3x4|axes=0;2x3x4|axes=1 keep=1;T3x4|axes=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- var -------------------------------------------------------------------- */

tg_tensor *tg_var(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof) {
    uint32_t mask;
    if (tg__axes_mask("var", axes, naxes, x->ndim, &mask)) return NULL;
    if (tg__require_float("var", x)) return NULL;
    int64_t n = count_of(x, mask);
    int64_t ax[TG_MAX_DIMS];
    int na = 0;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) ax[na++] = d;
    /* NumPy's divisor: max(n - ddof, 0), in double (ddof may be any int64:
     * n - ddof in int64 could overflow) */
    double dof = (double)n - (double)ddof;
    double scale = 1.0 / (dof > 0 ? dof : 0.0);
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *m = tg_mean(x, ax, na, true);
    tg_tensor *d = m ? tg_sub(x, m) : NULL;
    tg_tensor *d2 = d ? tg_mul(d, d) : NULL;
    tg_tensor *s = d2 ? tg_sum(d2, ax, na, keepdims) : NULL;
    tg_tensor *out = s ? tg_mul_scalar(s, scale) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(m);
    tg_tensor_release(d);
    tg_tensor_release(d2);
    tg_tensor_release(s);
    tg_entry *e;
    out = tg__finish(&tg_opdef_var, 1, &x, out, &e);
    if (e) {
        store_axes(e, x, mask, keepdims);
        e->params.f[0] = scale;
        e->params.i[1] = ddof;
        if (tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status var_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0);
    CHECK(x);
    /* dx = dy * 2 (x - mean) / (n - ddof) */
    tg_tensor *m = tg_mean(x, e->params.axes, e->params.naxes, true);
    tg_tensor *d = m ? tg_sub(x, m) : NULL;
    tg_tensor_release(m);
    tg_tensor *d2 = d ? tg_mul_scalar(d, 2.0 * e->params.f[0]) : NULL;
    tg_tensor_release(d);
    tg_tensor *gb = d2 ? expand_back(e, g) : NULL;
    gi[0] = gb ? tg_mul(gb, d2) : NULL;
    tg_tensor_release(gb);
    tg_tensor_release(d2);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_var(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_var(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims,
                  p->i[0]);
}
TG_DEFINE_OP(var, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 3, 4},
             .forward = "y = sum((x - mean(x))^2) / (n - ddof)",
             .forward_tex = "y = \\frac{1}{n - \\delta}\\sum (x - \\bar{x})^{2}",
             .vjp = "dx = dy * 2 (x - mean(x)) / (n - ddof)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\frac{2 (x - \\bar{x})}{n - \\delta}",
             .doc = "Variance over axes (ddof = i0, 0 by default as in NumPy).",
             .backward = var_vjp, .apply = apply_var,
             .examples = "3x4;3x4|axes=1;2x3x4|axes=0,2 keep=1 i0=1;T3x4|axes=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- logsumexp ---------------------------------------------------------------- */

tg_tensor *tg_logsumexp(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    uint32_t mask;
    if (tg__axes_mask("logsumexp", axes, naxes, x->ndim, &mask)) return NULL;
    if (tg__require_float("logsumexp", x)) return NULL;
    int64_t ax[TG_MAX_DIMS];
    int na = 0;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) ax[na++] = d;
    /* log sum exp x = m + log sum exp(x - m), m = max (0 where m is infinite) */
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *m = reduce_kernel("logsumexp", x, mask, true, R_MAX);
    if (m) {
        for (int64_t i = 0; i < m->numel; i++) {
            if (m->dtype == TG_FLOAT32) {
                float *v = (float *)tg_tensor_data(m) + i;
                if (isinf(*v)) *v = 0;
            } else {
                double *v = (double *)tg_tensor_data(m) + i;
                if (isinf(*v)) *v = 0;
            }
        }
    }
    tg_tensor *d = m ? tg_sub(x, m) : NULL;
    tg_tensor *ex = d ? tg_exp(d) : NULL;
    tg_tensor *s = ex ? tg_sum(ex, ax, na, true) : NULL;
    tg_tensor *ls = s ? tg_log(s) : NULL;
    tg_tensor *r = ls ? tg_add(ls, m) : NULL;
    tg_tensor *out = NULL;
    if (r) {
        int nd;
        int64_t shape[TG_MAX_DIMS];
        reduced_shape(x, mask, keepdims, &nd, shape);
        out = tg_reshape(r, nd, shape);
    }
    tg_set_grad_enabled(prev);
    tg_tensor_release(m);
    tg_tensor_release(d);
    tg_tensor_release(ex);
    tg_tensor_release(s);
    tg_tensor_release(ls);
    tg_tensor_release(r);
    tg_entry *e;
    out = tg__finish(&tg_opdef_logsumexp, 1, &x, out, &e);
    if (e) {
        store_axes(e, x, mask, keepdims);
        tg__save_output(e, out);
        if (tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status logsumexp_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0);
    CHECK(x);
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *yb = expand_back(e, y);
    tg_tensor_release(y);
    tg_tensor *d = yb ? tg_sub(x, yb) : NULL;
    tg_tensor_release(yb);
    tg_tensor *sm = d ? tg_exp(d) : NULL; /* softmax(x) */
    tg_tensor_release(d);
    tg_tensor *gb = sm ? expand_back(e, g) : NULL;
    gi[0] = gb ? tg_mul(gb, sm) : NULL;
    tg_tensor_release(gb);
    tg_tensor_release(sm);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_logsumexp(tg_tensor *const *in, int n, const tg_params *p) {
    return apply_red(tg_logsumexp, in, n, p);
}
TG_DEFINE_OP(logsumexp, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 4, 3},
             .forward = "y = log(sum(exp(x), axes))", .forward_tex = "y = \\log \\sum_{\\text{axes}} e^{x}",
             .vjp = "dx = dy * exp(x - y)", .vjp_tex = "\\bar x = \\bar y \\odot e^{x - y}",
             .doc = "Log of the sum of exponentials, computed stably.", .backward = logsumexp_vjp,
             .apply = apply_logsumexp, .examples = "3x4;3x4|axes=1;2x3x4|axes=0,2 keep=1;T3x4|axes=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- argmax / argmin ----------------------------------------------------------- */

static tg_tensor *argext(const char *who, const tg_opdef *op, tg_tensor *x, int64_t axis,
                         bool keepdims, bool is_max) {
    tg_tensor *src;
    int64_t ax;
    if (axis == TG_AXIS_NONE) {
        tg_tensor *c = tg_contiguous(x);
        int64_t n = x->numel;
        src = c ? tg_reshape(c, 1, &n) : NULL;
        tg_tensor_release(c);
        if (!src) return NULL;
        ax = 0;
    } else {
        if (x->ndim == 0) return TG_FAIL(TG_ERR_INDEX, "%s: a 0-d tensor has no axis %lld", who, (long long)axis);
        if (tg__norm_axis(who, axis, x->ndim, &ax)) return NULL;
        tg_tensor_retain(x);
        src = x;
    }
    int64_t len = src->shape[ax];
    if (len == 0) {
        tg_tensor_release(src);
        return TG_FAIL(TG_ERR_VALUE, "%s: attempt to get %s of an empty sequence (axis %lld has length 0)",
                       who, who, (long long)ax);
    }
    /* move the axis last and make rows contiguous (as the scans do) */
    tg_tensor *c = tg__rows_last(src, ax, false);
    if (!c) {
        tg_tensor_release(src);
        return NULL;
    }
    int nd = 0;
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0; d < src->ndim; d++) {
        if (d == ax) {
            if (keepdims) shape[nd++] = 1;
        } else {
            shape[nd++] = src->shape[d];
        }
    }
    if (axis == TG_AXIS_NONE && keepdims) {
        nd = x->ndim;
        for (int d = 0; d < nd; d++) shape[d] = 1;
    }
    tg_tensor *out = tg_tensor_empty(nd, shape, TG_INT64);
    if (out) {
        int64_t rows = c->numel / len;
        int64_t *o = tg_tensor_data(out);
        for (int64_t r = 0; r < rows; r++) {
            int64_t best = 0;
            double bv = tg_tensor_get_flat(c, r * len);
            if (bv == bv) {
                for (int64_t i = 1; i < len; i++) {
                    double v = tg_tensor_get_flat(c, r * len + i);
                    if (v != v) { best = i; break; } /* NaN wins, as in NumPy */
                    if (is_max ? v > bv : v < bv) { bv = v; best = i; }
                }
            }
            o[r] = best;
        }
    }
    tg_tensor_release(c);
    tg_tensor_release(src);
    (void)op;
    return out;
}
tg_tensor *tg_argmax(tg_tensor *x, int64_t axis, bool keepdims) {
    return argext("argmax", &tg_opdef_argmax, x, axis, keepdims, true);
}
tg_tensor *tg_argmin(tg_tensor *x, int64_t axis, bool keepdims) {
    return argext("argmin", &tg_opdef_argmin, x, axis, keepdims, false);
}
static tg_tensor *apply_argmax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_argmax(in[0], p->naxes > 0 ? p->axes[0] : TG_AXIS_NONE, p->keepdims);
}
static tg_tensor *apply_argmin(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_argmin(in[0], p->naxes > 0 ? p->axes[0] : TG_AXIS_NONE, p->keepdims);
}
TG_DEFINE_OP(argmax, .arity = 1, .diff_mask = 0, .dtypes = "float32,float64,int64,int32,uint8,bool -> int64",
             .forward = "i = argmax(x, axis)", .forward_tex = "i = \\arg\\max_{\\text{axis}} x",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Index of the first maximum along an axis (or of the flattened tensor).",
             .backward = NULL, .apply = apply_argmax, .examples = "3x4|axes=1;3x4;T3x4|axes=0 keep=1");
TG_DEFINE_OP(argmin, .arity = 1, .diff_mask = 0, .dtypes = "float32,float64,int64,int32,uint8,bool -> int64",
             .forward = "i = argmin(x, axis)", .forward_tex = "i = \\arg\\min_{\\text{axis}} x",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Index of the first minimum along an axis (or of the flattened tensor).",
             .backward = NULL, .apply = apply_argmin, .examples = "3x4|axes=1;3x4;T3x4|axes=0 keep=1");
