/*
 * tensor.c -- tensors, creation, shape helpers, strided iteration and the
 * in-place operations that call no op (never recorded on the tape).
 * Storages are in storage.c; how tensors die, in lifetime.c.
 */
#include "internal.h"
#include "../kernels/threadpool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ===================================================================== */
/* Shapes                                                                 */
/* ===================================================================== */

tg_status tg__check_shape(const char *who, int ndim, const int64_t *shape, size_t itemsize,
                          int64_t *numel) {
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE, "%s: %d dimensions requested, at most %d are supported",
                            who, ndim, TG_MAX_DIMS);
    /* nz: the product of the non-zero sizes, which bounds every contiguous
     * stride; it must fit even when a zero size makes the tensor empty
     * (NumPy's rule), or the strides of (0, 2**62, 2**62) would overflow */
    int64_t n = 1, nz = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return tg_error_set(TG_ERR_VALUE,
                                "%s: negative dimension %lld in shape %s (dim %d)", who,
                                (long long)shape[i], tg__shp2(ndim, shape), i);
        if (__builtin_mul_overflow(n, shape[i], &n) ||
            (shape[i] && __builtin_mul_overflow(nz, shape[i], &nz)))
            return tg_error_set(TG_ERR_MEMORY,
                                "%s: shape %s has too many elements (the count overflows 64 bits)",
                                who, tg__shp2(ndim, shape));
    }
    int64_t bytes;
    if (__builtin_mul_overflow(nz, (int64_t)itemsize, &bytes) || bytes > (INT64_MAX >> 2))
        return tg_error_set(TG_ERR_MEMORY, "%s: shape %s needs too many bytes", who,
                            tg__shp2(ndim, shape));
    *numel = n;
    return TG_OK;
}

tg_status tg__norm_axis(const char *who, int64_t axis, int ndim, int64_t *out) {
    int64_t lim = ndim == 0 ? 1 : ndim; /* a 0-d tensor accepts axis 0 / -1 like NumPy's keepdims paths */
    if (axis < -lim || axis >= lim)
        return tg_error_set(TG_ERR_INDEX,
                            "%s: axis %lld is out of range for a tensor with %d dimension%s "
                            "(expected %lld <= axis < %lld)",
                            who, (long long)axis, ndim, ndim == 1 ? "" : "s", (long long)-lim,
                            (long long)lim);
    *out = axis < 0 ? axis + lim : axis;
    return TG_OK;
}

tg_status tg__axes_mask(const char *who, const int64_t *axes, int naxes, int ndim,
                        uint32_t *mask) {
    if (!axes) {
        *mask = ndim >= 32 ? 0xFFFFFFFFu : ((1u << ndim) - 1u);
        return TG_OK;
    }
    if (naxes < 0 || naxes > TG_MAX_DIMS)
        return tg_error_set(TG_ERR_VALUE, "%s: %d axes given, at most %d", who, naxes,
                            TG_MAX_DIMS);
    uint32_t m = 0;
    for (int i = 0; i < naxes; i++) {
        int64_t a = 0; /* (MinGW-w64 gcc 12 warns "may be used uninitialized") */
        if (ndim == 0) {
            if (axes[i] != 0 && axes[i] != -1)
                return tg_error_set(TG_ERR_INDEX,
                                    "%s: axis %lld is out of range for a 0-d tensor", who,
                                    (long long)axes[i]);
            continue;
        }
        tg_status st = tg__norm_axis(who, axes[i], ndim, &a);
        if (st) return st;
        if (m & (1u << a))
            return tg_error_set(TG_ERR_VALUE, "%s: axis %lld is repeated in the axes list", who,
                                (long long)axes[i]);
        m |= 1u << a;
    }
    *mask = m;
    return TG_OK;
}

tg_status tg__broadcast_shapes(const char *who, int na, const int64_t *sa, int nb,
                               const int64_t *sb, int *nout, int64_t *sout) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nb - n + i;
        int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            return tg_error_set(TG_ERR_VALUE,
                                "%s: shapes %s and %s cannot be broadcast together: %lld (dim %d) "
                                "!= %lld (dim %d) and neither is 1",
                                who, tg__shp2(na, sa), tg__shp2(nb, sb), (long long)da, ia,
                                (long long)db, ib);
        }
        sout[i] = da == 1 ? db : da;
    }
    *nout = n;
    return TG_OK;
}

void tg__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

bool tg__same_shape(int na, const int64_t *sa, int nb, const int64_t *sb) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (sa[i] != sb[i]) return false;
    return true;
}

char *tg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "(");
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
    if (ndim == 1) k += (size_t)snprintf(buf + k, k < n ? n - k : 0, ",");
    snprintf(buf + k, k < n ? n - k : 0, ")");
    return buf;
}

const char *tg__shp2(int ndim, const int64_t *shape) {
    static TG_THREAD_LOCAL char bufs[6][200];
    static TG_THREAD_LOCAL int next;
    char *b = bufs[next];
    next = (next + 1) % 6;
    return tg_shape_str(ndim, shape, b, sizeof bufs[0]);
}

const char *tg__shp(const tg_tensor *t) { return tg__shp2(t->ndim, t->shape); }

static tg_atomic_u64 next_tensor_id = 1;

static tg_tensor *tensor_alloc(void) {
    tg_tensor *t = calloc(1, sizeof *t);
    if (!t) return TG_FAIL(TG_ERR_MEMORY, "tensor: out of memory");
    t->refcount = 1;
    t->id = tg_atomic_fetch_add_relaxed_u64(&next_tensor_id, 1);
    return t;
}

/* A tensor over `s` (retained) with the given geometry; no checks. */
static tg_tensor *tensor_over(tg_storage *s, tg_dtype dt, int ndim, const int64_t *shape,
                              const int64_t *strides, int64_t offset) {
    tg_tensor *t = tensor_alloc();
    if (!t) return NULL;
    t->dtype = dt;
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= shape[i];
    }
    if (strides)
        memcpy(t->strides, strides, (size_t)ndim * sizeof(int64_t));
    else
        tg__contiguous_strides(ndim, shape, t->strides);
    t->numel = n;
    t->offset = offset;
    tg_storage_retain(s);
    t->storage = s;
    return t;
}

tg_tensor *tg_tensor_empty(int ndim, const int64_t *shape, tg_dtype dt) {
    int64_t n = 0; /* (MinGW-w64 gcc 12 warns "may be used uninitialized") */
    size_t isz = tg_dtype_size(dt);
    if (!isz) return TG_FAIL(TG_ERR_TYPE, "empty: invalid dtype %d", (int)dt);
    if (ndim > 0 && !shape) return TG_FAIL(TG_ERR_VALUE, "empty: shape is NULL");
    if (tg__check_shape("empty", ndim, shape, isz, &n)) return NULL;
    tg_storage *s = tg_storage_new((size_t)n * isz);
    if (!s) return NULL;
    tg_tensor *t = tensor_over(s, dt, ndim, shape, NULL, 0);
    tg_storage_release(s);
    return t;
}

tg_tensor *tg__view(tg_tensor *x, int ndim, const int64_t *shape, const int64_t *strides,
                    int64_t offset) {
    return tensor_over(x->storage, x->dtype, ndim, shape, strides, offset);
}

tg_tensor *tg_tensor_from_storage(tg_storage *s, tg_dtype dt, int ndim, const int64_t *shape,
                                  const int64_t *strides, int64_t offset) {
    int64_t n;
    size_t isz = tg_dtype_size(dt);
    if (!s) return TG_FAIL(TG_ERR_VALUE, "from_storage: storage is NULL");
    if (!isz) return TG_FAIL(TG_ERR_TYPE, "from_storage: invalid dtype %d", (int)dt);
    if (tg__check_shape("from_storage", ndim, shape, isz, &n)) return NULL;
    for (int i = 0; i < ndim && strides; i++) { /* strides in bytes must fit (kernels use them) */
        int64_t b;
        if (__builtin_mul_overflow(strides[i], (int64_t)isz, &b))
            return TG_FAIL(TG_ERR_VALUE, "from_storage: stride %lld (dim %d) is too large",
                           (long long)strides[i], i);
    }
    if (n > 0) {
        /* the lowest and highest element offsets must lie inside the storage
         * (computed with overflow checks: strides and offset are the caller's) */
        int64_t lo = offset, hi = offset;
        bool over = false;
        for (int i = 0; i < ndim && strides; i++) {
            int64_t span;
            over |= __builtin_mul_overflow(shape[i] - 1, strides[i], &span);
            over |= span < 0 ? __builtin_add_overflow(lo, span, &lo) : __builtin_add_overflow(hi, span, &hi);
        }
        if (!strides) over |= __builtin_add_overflow(offset, n - 1, &hi);
        int64_t cap = (int64_t)(s->nbytes / isz); /* whole elements in the storage */
        if (over || lo < 0 || hi >= cap)
            return TG_FAIL(TG_ERR_VALUE,
                           "from_storage: a view of shape %s reaches elements %lld..%lld, outside "
                           "the storage of %zu bytes",
                           tg__shp2(ndim, shape), (long long)lo, (long long)hi, s->nbytes);
    } else if (offset < 0 || (uint64_t)offset > s->nbytes / isz) {
        /* no element, but tg_tensor_data still points at the offset */
        return TG_FAIL(TG_ERR_VALUE, "from_storage: offset %lld is outside the storage of %zu bytes",
                       (long long)offset, s->nbytes);
    }
    /* no element: the caller's strides address nothing, and huge ones would
     * overflow every later view's start * stride or stride * step (slicing
     * an empty tensor with a stride of INT64_MIN did): contiguous strides,
     * bounded by the shape's non-zero sizes (tg__check_shape) */
    return tensor_over(s, dt, ndim, shape, n > 0 ? strides : NULL, offset);
}

/* ---- element access -------------------------------------------------- */

void *tg_tensor_data(const tg_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)tg_dtype_size(t->dtype);
}

bool tg_tensor_is_contiguous(const tg_tensor *t) {
    if (t->numel == 0) return true; /* no element: any strides (NumPy agrees) */
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

static inline double load_as_double(const char *p, tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return *(const float *)p;
    case TG_FLOAT64: return *(const double *)p;
    case TG_INT32: return *(const int32_t *)p;
    case TG_UINT8: return *(const uint8_t *)p;
    case TG_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    default: return (double)*(const int64_t *)p;
    }
}

static inline void store_double(char *p, tg_dtype dt, double v) {
    switch (dt) {
    case TG_FLOAT32: *(float *)p = (float)v; break;
    case TG_FLOAT64: *(double *)p = v; break;
    case TG_INT32: *(int32_t *)p = (int32_t)(uint32_t)(uint64_t)tg__f2i(v); break;
    case TG_UINT8: *(uint8_t *)p = (uint8_t)(uint64_t)tg__f2i(v); break;
    case TG_BOOL: *(uint8_t *)p = v != 0; break; /* NaN is true, as in NumPy */
    default: *(int64_t *)p = tg__f2i(v); break;
    }
}

static int64_t flat_to_offset(const tg_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return off;
}

double tg_tensor_get_flat(const tg_tensor *t, int64_t i) {
    const char *base = tg_tensor_data(t);
    return load_as_double(base + flat_to_offset(t, i) * (int64_t)tg_dtype_size(t->dtype),
                          t->dtype);
}

int64_t tg__get_flat_i64(const tg_tensor *t, int64_t i) {
    const char *p = (const char *)tg_tensor_data(t) + flat_to_offset(t, i) * (int64_t)tg_dtype_size(t->dtype);
    return t->dtype == TG_INT64 ? *(const int64_t *)p : tg__f2i(load_as_double(p, t->dtype));
    /* int32/uint8/bool are exact through the double */
}

tg_status tg_tensor_item(const tg_tensor *t, double *out) {
    if (t->numel != 1)
        return tg_error_set(TG_ERR_VALUE,
                            "item: only a tensor with one element can be converted to a number, "
                            "this one has shape %s (%lld elements)",
                            tg__shp(t), (long long)t->numel);
    *out = tg_tensor_get_flat(t, 0);
    return TG_OK;
}

/* ===================================================================== */
/* Strided iteration                                                      */
/* ===================================================================== */

void tg__bcast_strides_bytes(const tg_tensor *x, int ndim, const int64_t *shape, int64_t *out) {
    int64_t isz = (int64_t)tg_dtype_size(x->dtype);
    for (int i = 0; i < ndim; i++) {
        int j = x->ndim - ndim + i;
        out[i] = (j < 0 || x->shape[j] == 1) ? 0 : x->strides[j] * isz;
        (void)shape;
    }
}

/* Drop size-1 dims and merge dims that are contiguous for every operand.
 * Returns the merged rank (0: one element); -1 if some dim is empty. */
static int merge_dims(int nops, int ndim, const int64_t *shape, int64_t strides[][TG_MAX_DIMS],
                      int64_t *sh, int64_t st[][TG_MAX_DIMS]) {
    int nd = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) return -1;
        if (shape[i] == 1) continue;
        if (nd > 0) {
            bool merge = true;
            for (int k = 0; k < nops; k++) { /* an overflowing product cannot be contiguous */
                int64_t span;
                if (__builtin_mul_overflow(strides[k][i], shape[i], &span) || st[k][nd - 1] != span)
                    merge = false;
            }
            if (merge) {
                sh[nd - 1] *= shape[i];
                for (int k = 0; k < nops; k++) st[k][nd - 1] = strides[k][i];
                continue;
            }
        }
        sh[nd] = shape[i];
        for (int k = 0; k < nops; k++) st[k][nd] = strides[k][i];
        nd++;
    }
    return nd;
}

/* The loop over merged dims, for the flat element range [begin, end):
 * start at begin's multi-index, call fn on (pieces of) rows, carry like an
 * odometer.  [0, total) is the whole iteration. */
typedef struct {
    int nops, nd;
    int64_t sh[TG_MAX_DIMS], st[TG_ITER_MAX][TG_MAX_DIMS];
    char *base[TG_ITER_MAX];
    tg_row_fn fn;
    void *ctx;
} iter_plan;

static void iterate_range(int64_t begin, int64_t end, void *vplan) {
    const iter_plan *it = vplan;
    int nd = it->nd, nops = it->nops;
    char *p[TG_ITER_MAX];
    int64_t inner[TG_ITER_MAX];
    for (int k = 0; k < nops; k++) {
        p[k] = it->base[k];
        inner[k] = nd ? it->st[k][nd - 1] : 0;
    }
    if (nd == 0) {
        it->fn(1, p, inner, it->ctx);
        return;
    }
    int64_t idx[TG_MAX_DIMS], rem = begin;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % it->sh[d];
        rem /= it->sh[d];
        for (int k = 0; k < nops; k++) p[k] += idx[d] * it->st[k][d];
    }
    int64_t rowlen = it->sh[nd - 1];
    for (int64_t pos = begin; pos < end;) {
        int64_t len = rowlen - idx[nd - 1];
        if (len > end - pos) len = end - pos;
        it->fn(len, p, inner, it->ctx);
        pos += len;
        if (pos >= end) break;
        /* the row is finished (a partial row only happens at the end):
         * rewind it and carry into the outer dims */
        for (int k = 0; k < nops; k++) p[k] -= idx[nd - 1] * inner[k];
        idx[nd - 1] = 0;
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            for (int k = 0; k < nops; k++) p[k] += it->st[k][d];
            if (idx[d] < it->sh[d]) break;
            for (int k = 0; k < nops; k++) p[k] -= it->st[k][d] * it->sh[d];
            idx[d] = 0;
        }
    }
}

static int64_t plan_iteration(iter_plan *it, int nops, int ndim, const int64_t *shape, char **base,
                              int64_t strides[][TG_MAX_DIMS], tg_row_fn fn, void *ctx) {
    it->nops = nops;
    it->fn = fn;
    it->ctx = ctx;
    for (int k = 0; k < nops; k++) it->base[k] = base[k];
    it->nd = merge_dims(nops, ndim, shape, strides, it->sh, it->st);
    if (it->nd < 0) return 0;
    int64_t total = 1;
    for (int d = 0; d < it->nd; d++) total *= it->sh[d];
    return total;
}

void tg__iterate(int nops, int ndim, const int64_t *shape, char **base,
                 int64_t strides[][TG_MAX_DIMS], tg_row_fn fn, void *ctx) {
    iter_plan it;
    int64_t total = plan_iteration(&it, nops, ndim, shape, base, strides, fn, ctx);
    if (total > 0) iterate_range(0, total, &it);
}

void tg__iterate_parallel(int nops, int ndim, const int64_t *shape, char **base,
                          int64_t strides[][TG_MAX_DIMS], tg_row_fn fn, void *ctx,
                          int64_t cost) {
    iter_plan it;
    int64_t total = plan_iteration(&it, nops, ndim, shape, base, strides, fn, ctx);
    if (total <= 0) return;
    if (cost < 1) cost = 1;
    /* Split when the loop has TG_ELEMENTWISE_SPLIT_WORK units of work, in
     * chunks of at least a quarter of that (the pool hands out up to four
     * per thread, so a thread whose core is busy takes fewer).  It was one
     * chunk per TG_PARALLEL_MIN_WORK (2^17) units: the CNN's second ReLU
     * (32, 32, 14, 14), 200k elements, ran on one thread forward and
     * backward, and the first (401k) in three chunks, two for one thread
     * -- the largest serial part of the batch-32 step on 2 threads outside
     * the convolutions (perf, main thread outside parallel loops).  Each
     * element is computed alone: the chunks change no bit. */
    int64_t grain = total > TG_ELEMENTWISE_SPLIT_WORK / cost ? TG_ELEMENTWISE_SPLIT_WORK / 4 / cost : total;
    tg_parallel_for(total, grain < 1 ? 1 : grain, iterate_range, &it);
}

/* ---- copy with conversion ------------------------------------------- */

typedef struct { tg_dtype dd, sd; } copy_ctx;

/* Every element goes through one of these: to a float, a plain C conversion;
 * float -> integer through tg__f2i (NaN, inf and huge values are defined:
 * INT64_MIN, then wrapped); integer -> narrower integer wraps (two's
 * complement, like NumPy's astype); anything -> bool is `!= 0` (NaN is true). */
static inline int64_t ld_i64_f32(const char *p) { return tg__f2i(*(const float *)p); }
static inline int64_t ld_i64_f64(const char *p) { return tg__f2i(*(const double *)p); }
static inline int64_t ld_i64_i64(const char *p) { return *(const int64_t *)p; }
static inline int64_t ld_i64_b(const char *p) { return *(const uint8_t *)p != 0; }
static inline int64_t ld_i64_i32(const char *p) { return *(const int32_t *)p; }
static inline int64_t ld_i64_u8(const char *p) { return *(const uint8_t *)p; }

typedef int64_t (*ld_i64_fn)(const char *);
static const ld_i64_fn ld_i64[TG_N_DTYPES] = {ld_i64_f32, ld_i64_f64, ld_i64_i64,
                                              ld_i64_b,   ld_i64_i32, ld_i64_u8};

static inline bool ld_bool(const char *p, tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return *(const float *)p != 0;
    case TG_FLOAT64: return *(const double *)p != 0;
    case TG_INT64: return *(const int64_t *)p != 0;
    case TG_INT32: return *(const int32_t *)p != 0;
    default: return *(const uint8_t *)p != 0;
    }
}

#define COPY_ROW(TD, TS)                                                               \
    for (int64_t i = 0; i < n; i++)                                                     \
        *(TD *)(d + i * sdst) = (TD) * (const TS *)(s + i * ssrc);

static void copy_row(int64_t n, char **p, const int64_t *str, void *vctx) {
    copy_ctx *c = vctx;
    char *d = p[0];
    const char *s = p[1];
    int64_t sdst = str[0], ssrc = str[1];
    if (c->dd == c->sd && sdst == ssrc && sdst == (int64_t)tg_dtype_size(c->dd)) {
        memcpy(d, s, (size_t)(n * sdst));
        return;
    }
    if (c->dd == c->sd && c->dd != TG_BOOL) { /* strided, same dtype: copy the bytes */
        size_t z = tg_dtype_size(c->dd);
        /* a typed load and store per element for the common sizes: memcpy of
         * a size unknown at compile time is a call per element (a transposed
         * gradient's copy ran at 4-5 ns an element) */
        if (z == 4)
            for (int64_t i = 0; i < n; i++) memcpy(d + i * sdst, s + i * ssrc, 4);
        else if (z == 8)
            for (int64_t i = 0; i < n; i++) memcpy(d + i * sdst, s + i * ssrc, 8);
        else
            for (int64_t i = 0; i < n; i++) memcpy(d + i * sdst, s + i * ssrc, z);
        return;
    }
    switch (c->dd) {
    case TG_FLOAT32:
        switch (c->sd) {
        case TG_FLOAT64: COPY_ROW(float, double) return;
        case TG_INT64: COPY_ROW(float, int64_t) return;
        case TG_INT32: COPY_ROW(float, int32_t) return;
        case TG_UINT8: COPY_ROW(float, uint8_t) return;
        default: break;
        }
        break;
    case TG_FLOAT64:
        switch (c->sd) {
        case TG_FLOAT32: COPY_ROW(double, float) return;
        case TG_INT64: COPY_ROW(double, int64_t) return;
        case TG_INT32: COPY_ROW(double, int32_t) return;
        case TG_UINT8: COPY_ROW(double, uint8_t) return;
        default: break;
        }
        break;
    case TG_BOOL:
        for (int64_t i = 0; i < n; i++) *(uint8_t *)(d + i * sdst) = ld_bool(s + i * ssrc, c->sd);
        return;
    default: break;
    }
    /* bool source to a float, or any source to an integer: through int64 */
    ld_i64_fn ld = ld_i64[c->sd];
    switch (c->dd) {
    case TG_FLOAT32:
        for (int64_t i = 0; i < n; i++) *(float *)(d + i * sdst) = (float)ld(s + i * ssrc);
        break;
    case TG_FLOAT64:
        for (int64_t i = 0; i < n; i++) *(double *)(d + i * sdst) = (double)ld(s + i * ssrc);
        break;
    case TG_INT64:
        for (int64_t i = 0; i < n; i++) *(int64_t *)(d + i * sdst) = ld(s + i * ssrc);
        break;
    case TG_INT32:
        for (int64_t i = 0; i < n; i++)
            *(int32_t *)(d + i * sdst) = (int32_t)(uint32_t)(uint64_t)ld(s + i * ssrc);
        break;
    case TG_UINT8:
        for (int64_t i = 0; i < n; i++) *(uint8_t *)(d + i * sdst) = (uint8_t)(uint64_t)ld(s + i * ssrc);
        break;
    default: break;
    }
}

void tg__copy_into(tg_tensor *dst, const tg_tensor *src) {
    int64_t st[2][TG_MAX_DIMS];
    tg__bcast_strides_bytes(dst, dst->ndim, dst->shape, st[0]);
    tg__bcast_strides_bytes(src, dst->ndim, dst->shape, st[1]);
    char *base[2] = {tg_tensor_data(dst), tg_tensor_data(src)};
    copy_ctx c = {dst->dtype, src->dtype};
    tg__iterate(2, dst->ndim, dst->shape, base, st, copy_row, &c);
}

tg_tensor *tg__copy(tg_tensor *x) {
    tg_tensor *y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    if (y) tg__copy_into(y, x);
    return y;
}

tg_tensor *tg__as_dtype(tg_tensor *x, tg_dtype dt) {
    if (x->dtype == dt) {
        tg_tensor_retain(x);
        return x;
    }
    tg_tensor *y = tg_tensor_empty(x->ndim, x->shape, dt);
    if (y) tg__copy_into(y, x);
    return y;
}

void tg_tensor_copy_to_buffer(const tg_tensor *t, void *dst) {
    tg_storage s = {.refcount = 2, .data = dst, .nbytes = (size_t)t->numel * tg_dtype_size(t->dtype)};
    tg_tensor d = {.refcount = 2, .dtype = t->dtype, .ndim = t->ndim, .numel = t->numel,
                   .storage = &s};
    memcpy(d.shape, t->shape, sizeof d.shape);
    tg__contiguous_strides(t->ndim, t->shape, d.strides);
    tg__copy_into(&d, t);
}

/* ===================================================================== */
/* Creation                                                               */
/* ===================================================================== */

tg_tensor *tg_tensor_full(int ndim, const int64_t *shape, double value, tg_dtype dt) {
    tg_tensor *t = tg_tensor_empty(ndim, shape, dt);
    if (!t) return NULL;
    char *p = tg_tensor_data(t);
    switch (dt) {
    case TG_FLOAT32: for (int64_t i = 0; i < t->numel; i++) ((float *)p)[i] = (float)value; break;
    case TG_FLOAT64: for (int64_t i = 0; i < t->numel; i++) ((double *)p)[i] = value; break;
    case TG_INT64: {
        int64_t v = tg__f2i(value);
        for (int64_t i = 0; i < t->numel; i++) ((int64_t *)p)[i] = v;
        break;
    }
    default: {
        size_t z = tg_dtype_size(dt);
        char one[8];
        store_double(one, dt, value);
        for (int64_t i = 0; i < t->numel; i++) memcpy(p + (size_t)i * z, one, z);
    }
    }
    return t;
}

tg_tensor *tg_tensor_zeros(int ndim, const int64_t *shape, tg_dtype dt) {
    tg_tensor *t = tg_tensor_empty(ndim, shape, dt);
    if (t) memset(tg_tensor_data(t), 0, (size_t)t->numel * tg_dtype_size(dt));
    return t;
}

tg_tensor *tg_tensor_ones(int ndim, const int64_t *shape, tg_dtype dt) {
    return tg_tensor_full(ndim, shape, 1.0, dt);
}

tg_tensor *tg_tensor_scalar(double value, tg_dtype dt) { return tg_tensor_full(0, NULL, value, dt); }

tg_tensor *tg_tensor_arange(double start, double stop, double step, tg_dtype dt) {
    if (step == 0 || isnan(step) || isnan(start) || isnan(stop))
        return TG_FAIL(TG_ERR_VALUE, "arange: step must be non-zero and the bounds finite "
                                     "(start=%g, stop=%g, step=%g)", start, stop, step);
    double len = ceil((stop - start) / step);
    if (!(len < 9.0e18)) return TG_FAIL(TG_ERR_MEMORY, "arange: %g elements are too many", len);
    int64_t n = len > 0 ? (int64_t)len : 0;
    tg_tensor *t = tg_tensor_empty(1, &n, dt);
    if (!t) return NULL;
    char *p = tg_tensor_data(t);
    size_t isz = tg_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) store_double(p + i * (int64_t)isz, dt, start + (double)i * step);
    return t;
}

tg_tensor *tg_tensor_eye(int64_t n, int64_t m, int64_t k, tg_dtype dt) {
    int64_t shape[2] = {n, m};
    tg_tensor *t = tg_tensor_zeros(2, shape, dt);
    if (!t) return NULL;
    if (t->numel == 0) return t; /* eye(2**62, 0) must not loop 2**62 times */
    char *p = tg_tensor_data(t);
    size_t isz = tg_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) {
        /* j = i + k in [0, m), compared without computing i + k (k may be
         * INT64_MAX) */
        if (k >= -i && k < m - i) store_double(p + (i * m + i + k) * (int64_t)isz, dt, 1.0);
    }
    return t;
}

tg_tensor *tg_tensor_from_buffer(int ndim, const int64_t *shape, tg_dtype dt, const void *data) {
    tg_tensor *t = tg_tensor_empty(ndim, shape, dt);
    if (t && t->numel && !data) { /* refused like a NULL shape, never dereferenced */
        long long n = (long long)t->numel;
        tg_tensor_release(t);
        return TG_FAIL(TG_ERR_VALUE, "from_buffer: data is NULL for a tensor of shape %s (%lld elements)",
                       tg__shp2(ndim, shape), n);
    }
    if (t && t->numel) memcpy(tg_tensor_data(t), data, (size_t)t->numel * tg_dtype_size(dt));
    return t;
}

static tg_tensor *random_tensor(const char *who, int ndim, const int64_t *shape, int kind,
                                double a, double b, tg_dtype dt, tg_generator *g) {
    if (!tg_dtype_is_float(dt))
        return TG_FAIL(TG_ERR_TYPE, "%s: dtype must be float32 or float64, got %s", who,
                       tg_dtype_name(dt));
    tg_tensor *t = tg_tensor_empty(ndim, shape, dt);
    if (!t) return NULL;
    double *tmp = dt == TG_FLOAT64 ? tg_tensor_data(t) : malloc((size_t)(t->numel ? t->numel : 1) * 8);
    if (!tmp) {
        tg_tensor_release(t);
        return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory", who);
    }
    tg__random_fill_gen(g, tmp, t->numel, kind == 2 ? 0 : kind);
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tmp[i];
        if (kind == 0) v = a + (b - a) * v;
        else if (kind == 1) v = a + b * v;
        else v = v < a ? 1.0 : 0.0; /* bernoulli(p = a) */
        if (dt == TG_FLOAT64) tmp[i] = v;
        else ((float *)tg_tensor_data(t))[i] = (float)v;
    }
    if (dt != TG_FLOAT64) free(tmp);
    return t;
}

tg_tensor *tg_tensor_rand_gen(int ndim, const int64_t *shape, double low, double high, tg_dtype dt,
                              tg_generator *g) {
    return random_tensor("rand", ndim, shape, 0, low, high, dt, g);
}

tg_tensor *tg_tensor_randn_gen(int ndim, const int64_t *shape, double mean, double std, tg_dtype dt,
                               tg_generator *g) {
    return random_tensor("randn", ndim, shape, 1, mean, std, dt, g);
}

tg_tensor *tg_tensor_bernoulli_gen(int ndim, const int64_t *shape, double p, tg_dtype dt,
                                   tg_generator *g) {
    if (!(p >= 0 && p <= 1)) return TG_FAIL(TG_ERR_VALUE, "bernoulli: p must be in [0, 1], got %g", p);
    return random_tensor("bernoulli", ndim, shape, 2, p, 0, dt, g);
}

tg_tensor *tg_tensor_rand(int ndim, const int64_t *shape, double low, double high, tg_dtype dt) {
    return tg_tensor_rand_gen(ndim, shape, low, high, dt, NULL);
}

tg_tensor *tg_tensor_randn(int ndim, const int64_t *shape, double mean, double std, tg_dtype dt) {
    return tg_tensor_randn_gen(ndim, shape, mean, std, dt, NULL);
}

tg_tensor *tg_tensor_bernoulli(int ndim, const int64_t *shape, double p, tg_dtype dt) {
    return tg_tensor_bernoulli_gen(ndim, shape, p, dt, NULL);
}

tg_tensor *tg_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, tg_generator *g) {
    if (!(high > low))
        return TG_FAIL(TG_ERR_VALUE, "randint: high must be greater than low, got low=%lld, high=%lld",
                       (long long)low, (long long)high);
    tg_tensor *t = tg_tensor_empty(ndim, shape, TG_INT64);
    if (!t || !t->numel) return t;
    uint64_t *u = (uint64_t *)tg_tensor_data(t);
    tg__random_below(g, (uint64_t)high - (uint64_t)low, t->numel, u);
    for (int64_t i = 0; i < t->numel; i++) ((int64_t *)u)[i] = (int64_t)((uint64_t)low + u[i]);
    return t;
}

tg_tensor *tg_randperm(int64_t n, tg_generator *g) {
    if (n < 0) return TG_FAIL(TG_ERR_VALUE, "randperm: n must be >= 0, got %lld", (long long)n);
    tg_tensor *t = tg_tensor_empty(1, &n, TG_INT64);
    if (!t || n == 0) return t;
    int64_t *p = (int64_t *)tg_tensor_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates: swap i with a uniform j <= i */
        uint64_t j;
        tg__random_below(g, (uint64_t)i + 1, 1, &j);
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}

tg_tensor *tg_multinomial(tg_tensor *probs, int64_t num_samples, bool replacement, tg_generator *g) {
    const char *who = "multinomial";
    if (!probs) return TG_FAIL(TG_ERR_VALUE, "%s: probs is NULL", who);
    if (!tg_dtype_is_float(probs->dtype))
        return TG_FAIL(TG_ERR_TYPE, "%s: probs must be float32 or float64, got %s", who,
                       tg_dtype_name(probs->dtype));
    if (probs->ndim != 1 && probs->ndim != 2)
        return TG_FAIL(TG_ERR_VALUE, "%s: probs must be 1-D or 2-D, got shape %s", who,
                       tg__shp(probs));
    int64_t rows = probs->ndim == 2 ? probs->shape[0] : 1, k = probs->shape[probs->ndim - 1];
    if (k == 0) return TG_FAIL(TG_ERR_VALUE, "%s: probs has no categories (shape %s)", who, tg__shp(probs));
    if (num_samples <= 0)
        return TG_FAIL(TG_ERR_VALUE, "%s: num_samples must be positive, got %lld", who,
                       (long long)num_samples);
    tg_tensor *p = tg__as_dtype(probs, TG_FLOAT64);
    if (p && !tg_tensor_is_contiguous(p)) {
        tg_tensor *c = tg__copy(p);
        tg_tensor_release(p);
        p = c;
    }
    if (!p) return NULL;
    const double *w = (const double *)tg_tensor_data(p);
    int64_t shape[2] = {rows, num_samples};
    tg_tensor *out = tg_tensor_empty(probs->ndim, probs->ndim == 2 ? shape : shape + 1, TG_INT64);
    double *work = out ? malloc(sizeof(double) * (size_t)k) : NULL;
    tg_status st = work ? TG_OK : (out ? tg_error_set(TG_ERR_MEMORY, "%s: out of memory", who)
                                       : tg_error_status());
    for (int64_t r = 0; !st && r < rows; r++) {
        const double *row = w + r * k;
        double total = 0;
        int64_t positive = 0;
        for (int64_t j = 0; j < k; j++) {
            if (!(row[j] >= 0) || !isfinite(row[j])) {
                st = tg_error_set(TG_ERR_VALUE, "%s: probs must be finite and non-negative; row %lld "
                                  "has %g at index %lld", who, (long long)r, row[j], (long long)j);
                break;
            }
            total += row[j];
            positive += row[j] > 0;
            work[j] = row[j];
        }
        if (st) break;
        if (!(total > 0)) {
            st = tg_error_set(TG_ERR_VALUE, "%s: row %lld of probs sums to 0 (no category can be drawn)",
                              who, (long long)r);
            break;
        }
        if (!replacement && num_samples > positive) {
            st = tg_error_set(TG_ERR_VALUE, "%s: cannot draw %lld samples without replacement from "
                              "row %lld, which has %lld categories of positive probability",
                              who, (long long)num_samples, (long long)r, (long long)positive);
            break;
        }
        int64_t *o = (int64_t *)tg_tensor_data(out) + r * num_samples;
        for (int64_t s = 0; s < num_samples; s++) {
            double u;
            tg__random_fill_gen(g, &u, 1, 0);
            double target = u * total, acc = 0;
            int64_t pick = -1;
            for (int64_t j = 0; j < k; j++) {
                if (work[j] <= 0) continue;
                pick = j; /* the last positive one, should rounding leave acc < target */
                acc += work[j];
                if (target < acc) break;
            }
            o[s] = pick;
            if (!replacement) { /* remove the drawn category */
                total -= work[pick];
                work[pick] = 0;
                if (!(total > 0)) { /* rounding: recompute from what is left */
                    total = 0;
                    for (int64_t j = 0; j < k; j++) total += work[j];
                }
            }
        }
    }
    free(work);
    tg_tensor_release(p);
    if (st) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

/* ===================================================================== */
/* Autograd flags                                                         */
/* ===================================================================== */

tg_status tg_tensor_set_requires_grad(tg_tensor *t, bool rg) {
    if (rg && !tg_dtype_is_float(t->dtype))
        return tg_error_set(TG_ERR_TYPE,
                            "requires_grad: only float tensors can require gradients, this one "
                            "is %s (convert it with .astype(tg.float32) first)",
                            tg_dtype_name(t->dtype));
    if (t->grad_fn && !rg)
        return tg_error_set(TG_ERR_RUNTIME,
                            "requires_grad: this tensor is the output of '%s' (a non-leaf); use "
                            ".detach() to get a tensor that does not require grad",
                            tg__entry_name(t->grad_fn));
    t->requires_grad = rg;
    return TG_OK;
}

tg_status tg_tensor_retain_grad(tg_tensor *t) {
    if (!t->requires_grad)
        return tg_error_set(TG_ERR_RUNTIME,
                            "retain_grad: this tensor does not require grad, so it will never get one");
    if (t->grad_fn) t->retains_grad = true;
    return TG_OK;
}

tg_status tg_tensor_set_grad(tg_tensor *t, tg_tensor *g) {
    if (g && (g == t || g->grad == t)) /* a reference cycle, never freed (PyTorch refuses it too) */
        return tg_error_set(TG_ERR_VALUE, "grad: a tensor cannot be its own gradient (shape %s)",
                            tg__shp(t));
    if (g && (!tg__same_shape(g->ndim, g->shape, t->ndim, t->shape) || g->dtype != t->dtype))
        return tg_error_set(TG_ERR_VALUE,
                            "grad: assigned gradient has shape %s and dtype %s, expected shape %s "
                            "and dtype %s",
                            tg__shp(g), tg_dtype_name(g->dtype), tg__shp(t), tg_dtype_name(t->dtype));
    tg_tensor_retain(g);
    tg_tensor_release(t->grad);
    t->grad = g;
    return TG_OK;
}

tg_tensor *tg_tensor_detach(tg_tensor *t) {
    return tensor_over(t->storage, t->dtype, t->ndim, t->shape, t->strides, t->offset);
}

tg_status tg_tensor_set_name(tg_tensor *t, const char *name) {
    char *c = NULL;
    if (name) {
        c = strdup(name);
        if (!c) return tg_error_set(TG_ERR_MEMORY, "set_name: out of memory");
    }
    free(t->name);
    t->name = c;
    return TG_OK;
}

void tg_tensor_set_grad_hook(tg_tensor *t, tg_grad_hook_fn fn, void *ctx) {
    t->grad_hook = fn;
    t->grad_hook_ctx = fn ? ctx : NULL;
}

/* ===================================================================== */
/* In-place operations that call no op (tg_tensor_inplace_, which calls   */
/* add/sub/mul/div, is in ops/inplace.c)                                  */
/* ===================================================================== */

tg_status tg__check_writable(const char *who, const tg_tensor *t) {
    if (t->storage->readonly)
        return tg_error_set(TG_ERR_RUNTIME, "%s: the tensor's memory is read-only", who);
    if (t->requires_grad && tg__grad_on())
        return tg_error_set(TG_ERR_RUNTIME,
                            "%s: an in-place operation on a tensor that requires grad is not "
                            "recorded on the tape; wrap it in `with tg.no_grad():` (as optimizers "
                            "do) or use the out-of-place form",
                            who);
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1)
            return tg_error_set(TG_ERR_RUNTIME,
                                "%s: the tensor is a broadcast view (stride 0 on dim %d); several "
                                "elements share one memory location",
                                who, i);
    return TG_OK;
}

tg_status tg_tensor_fill_(tg_tensor *t, double value) {
    if (tg__check_writable("fill_", t)) return tg_error_status();
    tg_tensor *s = tg_tensor_scalar(value, t->dtype);
    if (!s) return tg_error_status();
    tg__copy_into(t, s);
    tg_tensor_release(s);
    t->storage->version++;
    return TG_OK;
}

tg_status tg_tensor_copy_(tg_tensor *dst, const tg_tensor *src) {
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__check_writable("copy_", dst)) return tg_error_status();
    if (tg__broadcast_shapes("copy_", dst->ndim, dst->shape, src->ndim, src->shape, &nd, sh))
        return tg_error_status();
    if (!tg__same_shape(nd, sh, dst->ndim, dst->shape))
        return tg_error_set(TG_ERR_VALUE, "copy_: source of shape %s cannot be broadcast to %s",
                            tg__shp(src), tg__shp(dst));
    if (dst->storage == src->storage) { /* possible overlap: go through a copy */
        tg_tensor *tmp = tg__copy((tg_tensor *)src);
        if (!tmp) return tg_error_status();
        tg__copy_into(dst, tmp);
        tg_tensor_release(tmp);
    } else {
        tg__copy_into(dst, src);
    }
    dst->storage->version++;
    return TG_OK;
}

/* One row of y += alpha x (tg__iterate_parallel's callback).  alpha = 1
 * gives exactly y + x (1 * x is exact; the build does not contract into an
 * FMA, and an FMA would round y + x once anyway). */
typedef struct {
    tg_dtype dt;
    double alpha;
} axpy_ctx;

static void axpy_row(int64_t n, char **p, const int64_t *s, void *vctx) {
    const axpy_ctx *c = vctx;
    if (c->dt == TG_FLOAT32) {
        float a = (float)c->alpha;
        if (s[0] == 4 && s[1] == 4) {
            float *restrict d = (float *)p[0];
            const float *restrict x = (const float *)p[1];
            for (int64_t i = 0; i < n; i++) d[i] += a * x[i];
        } else {
            for (int64_t i = 0; i < n; i++)
                *(float *)(p[0] + i * s[0]) += a * *(const float *)(p[1] + i * s[1]);
        }
    } else if (c->dt == TG_FLOAT64) {
        double a = c->alpha;
        if (s[0] == 8 && s[1] == 8) {
            double *restrict d = (double *)p[0];
            const double *restrict x = (const double *)p[1];
            for (int64_t i = 0; i < n; i++) d[i] += a * x[i];
        } else {
            for (int64_t i = 0; i < n; i++)
                *(double *)(p[0] + i * s[0]) += a * *(const double *)(p[1] + i * s[1]);
        }
    } else { /* int64: wraps like NumPy; alpha converted without UB */
        int64_t a = tg__f2i(c->alpha);
        for (int64_t i = 0; i < n; i++) {
            int64_t *d = (int64_t *)(p[0] + i * s[0]);
            *d = tg__wrap_add(*d, tg__wrap_mul(a, *(const int64_t *)(p[1] + i * s[1])));
        }
    }
}

/* Whether x and y are the same elements (same storage, offset, shape and
 * strides): y += alpha y is then safe element by element. */
static bool same_layout(const tg_tensor *y, const tg_tensor *x) {
    if (y->storage != x->storage || y->offset != x->offset || y->ndim != x->ndim) return false;
    for (int i = 0; i < y->ndim; i++)
        if (y->shape[i] != x->shape[i] || (y->shape[i] > 1 && y->strides[i] != x->strides[i]))
            return false;
    return true;
}

/* y += alpha x, x broadcast to y's shape, any strides: the gradient
 * accumulator of the engine (a leaf's .grad, a pending sum, and the direct
 * route's views into a pending sum all go through here).  Split between
 * the threads above TG_PARALLEL_MIN_WORK elements; each element is one
 * operation, so the bits do not depend on the number of threads.  An x
 * that shares y's memory in another layout is copied first. */
tg_status tg_tensor_axpy_(tg_tensor *y, double alpha, const tg_tensor *x) {
    if (tg__check_writable("axpy_", y)) return tg_error_status();
    if (y->dtype != x->dtype)
        return tg_error_set(TG_ERR_TYPE, "axpy_: y is %s but x is %s (expected one dtype)",
                            tg_dtype_name(y->dtype), tg_dtype_name(x->dtype));
    if (y->dtype != TG_FLOAT32 && y->dtype != TG_FLOAT64 && y->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE, "axpy_: not supported for dtype %s (expected float32, float64 or int64)",
                            tg_dtype_name(y->dtype));
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes("axpy_", y->ndim, y->shape, x->ndim, x->shape, &nd, sh))
        return tg_error_status();
    if (!tg__same_shape(nd, sh, y->ndim, y->shape))
        return tg_error_set(TG_ERR_VALUE, "axpy_: x of shape %s cannot be broadcast to y's shape %s",
                            tg__shp(x), tg__shp(y));
    tg_tensor *tmp = NULL;
    if (x->storage == y->storage && !same_layout(y, x)) { /* possible overlap */
        tmp = tg__copy((tg_tensor *)x);
        if (!tmp) return tg_error_status();
        x = tmp;
    }
    int64_t st[2][TG_MAX_DIMS];
    tg__bcast_strides_bytes(y, y->ndim, y->shape, st[0]);
    tg__bcast_strides_bytes(x, y->ndim, y->shape, st[1]);
    /* y's dims in the order of its strides, largest first (a stable sort: a
     * tie keeps the logical order), so that the inner loop runs along y's
     * memory: the direct backward adds kᵀ's gradient into the slice of qkv's
     * as a transposed view, whose last dim has a stride of 3C, and the
     * logical order made that a gather-scatter of every element: the GPT
     * step's kᵀ permute's backward (which also zeroes qkv's 1.5 MB sum)
     * 0.23-0.25 ms -> 0.125 ms, one thread.  Each element is one
     * operation, so the order changes no bit. */
    int64_t osh[TG_MAX_DIMS];
    int ond = y->ndim;
    for (int d = 0; d < ond; d++) osh[d] = y->shape[d];
    for (int d = 1; d < ond; d++)
        for (int e = d; e > 0; e--) {
            int64_t a = st[0][e - 1] < 0 ? -st[0][e - 1] : st[0][e - 1];
            int64_t b = st[0][e] < 0 ? -st[0][e] : st[0][e];
            if (a >= b) break;
            int64_t t = osh[e];
            osh[e] = osh[e - 1];
            osh[e - 1] = t;
            for (int k = 0; k < 2; k++) {
                t = st[k][e];
                st[k][e] = st[k][e - 1];
                st[k][e - 1] = t;
            }
        }
    char *base[2] = {tg_tensor_data(y), tg_tensor_data((tg_tensor *)x)};
    axpy_ctx c = {y->dtype, alpha};
    void *kt = tg__kernel_begin(y->numel);
    tg__iterate_parallel(2, ond, osh, base, st, axpy_row, &c, 1);
    tg__kernel_end(kt);
    tg_tensor_release(tmp);
    y->storage->version++;
    return TG_OK;
}

tg_status tg__require_float(const char *who, const tg_tensor *x) {
    if (!tg_dtype_is_float(x->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 tensor, got %s", who,
                            tg_dtype_name(x->dtype));
    return TG_OK;
}

tg_tensor *tg__zeros_like(const tg_tensor *x) { return tg_tensor_zeros(x->ndim, x->shape, x->dtype); }
tg_tensor *tg__ones_like(const tg_tensor *x) { return tg_tensor_ones(x->ndim, x->shape, x->dtype); }
