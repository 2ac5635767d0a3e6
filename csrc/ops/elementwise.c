/*
 * elementwise.c -- binary ops with NumPy broadcasting, comparisons, where,
 * and unary ops.
 *
 * Each op is one block: the row kernel (a loop over one row of elements,
 * generated for float32, float64 and, where it makes sense, int64), the
 * public function, the VJP written with tapegrad ops, and the registry
 * definition with its formulas.  The drivers (binary_op, unary_op) do the
 * dtype promotion, broadcasting and strided iteration once for all.
 */
#include "ops_internal.h"

#include <math.h>

#include "../kernels/vmath.h"

/* ===================================================================== */
/* Drivers                                                                */
/* ===================================================================== */

typedef void (*row3_fn)(int64_t n, char **p, const int64_t *s, void *ctx);

typedef struct {
    row3_fn f32, f64, i64; /* NULL: dtype not supported */
} row_table;

/* Work per element of the transcendental kernels, relative to an add: the
 * op block's .cost (what decides when a loop is worth splitting across
 * threads, and the profiler's cost class through tg.ops()). */
#define COST_TRANSCENDENTAL 8

/* Apply a binary row kernel to a and b broadcast together.  out_dt: the
 * compute dtype (promoted).  Returns a new contiguous tensor. */
static tg_tensor *binary_kernel(const char *who, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                                const row_table *rt, void *ctx, int cost) {
    row3_fn fn = dt == TG_FLOAT32 ? rt->f32 : dt == TG_FLOAT64 ? rt->f64 : rt->i64;
    if (!fn)
        return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32 or float64)",
                       who, tg_dtype_name(dt));
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (tg__broadcast_shapes(who, a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) return NULL;
    tg_tensor *ac = tg__as_dtype(a, dt);
    tg_tensor *bc = ac ? tg__as_dtype(b, dt) : NULL;
    tg_tensor *out = bc ? tg_tensor_empty(nd, shape, dt) : NULL;
    if (out && out->numel > 0) {
        char *base[3] = {tg_tensor_data(out), tg_tensor_data(ac), tg_tensor_data(bc)};
        void *kt = tg__kernel_begin(out->numel);
        int64_t st[3][TG_MAX_DIMS];
        tg__bcast_strides_bytes(out, nd, shape, st[0]);
        tg__bcast_strides_bytes(ac, nd, shape, st[1]);
        tg__bcast_strides_bytes(bc, nd, shape, st[2]);
        tg__iterate_parallel(3, nd, shape, base, st, fn, ctx, cost);
        tg__kernel_end(kt);
    }
    tg_tensor_release(ac);
    tg_tensor_release(bc);
    return out;
}

/* Unary: out has x's shape and dtype `dt` (x converted first). */
static tg_tensor *unary_kernel(const char *who, tg_tensor *x, tg_dtype dt, const row_table *rt,
                               void *ctx, int cost) {
    row3_fn fn = dt == TG_FLOAT32 ? rt->f32 : dt == TG_FLOAT64 ? rt->f64 : rt->i64;
    if (!fn)
        return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype %s", who, tg_dtype_name(dt));
    tg_tensor *xc = tg__as_dtype(x, dt);
    tg_tensor *out = xc ? tg_tensor_empty(x->ndim, x->shape, dt) : NULL;
    if (out && out->numel > 0) {
        char *base[2] = {tg_tensor_data(out), tg_tensor_data(xc)};
        void *kt = tg__kernel_begin(out->numel);
        int64_t st[2][TG_MAX_DIMS];
        tg__bcast_strides_bytes(out, out->ndim, out->shape, st[0]);
        tg__bcast_strides_bytes(xc, out->ndim, out->shape, st[1]);
        tg__iterate_parallel(2, out->ndim, out->shape, base, st, fn, ctx, cost);
        tg__kernel_end(kt);
    }
    tg_tensor_release(xc);
    return out;
}

/* A binary row: contiguous, scalar-broadcast and general strided paths.
 * The contiguous loops are simple enough for the compiler to vectorize. */
#define BINARY_ROW(NAME, T, EXPR)                                                      \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        T *o = (T *)p[0];                                                              \
        const T *A = (const T *)p[1], *B = (const T *)p[2];                            \
        const int64_t z = (int64_t)sizeof(T);                                         \
        if (s[0] == z && s[1] == z && s[2] == z) {                                     \
            for (int64_t i = 0; i < n; i++) {                                          \
                T a = A[i], b = B[i];                                                  \
                o[i] = (EXPR);                                                         \
            }                                                                          \
        } else if (s[0] == z && s[1] == z && s[2] == 0) {                              \
            const T b = B[0];                                                          \
            for (int64_t i = 0; i < n; i++) {                                          \
                T a = A[i];                                                            \
                o[i] = (EXPR);                                                         \
            }                                                                          \
        } else if (s[0] == z && s[1] == 0 && s[2] == z) {                              \
            const T a = A[0];                                                          \
            for (int64_t i = 0; i < n; i++) {                                          \
                T b = B[i];                                                            \
                o[i] = (EXPR);                                                         \
            }                                                                          \
        } else {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                          \
                T a = *(const T *)((const char *)A + i * s[1]);                        \
                T b = *(const T *)((const char *)B + i * s[2]);                        \
                *(T *)((char *)o + i * s[0]) = (EXPR);                                 \
            }                                                                          \
        }                                                                              \
    }

#define BINARY_ROWS_F(NAME, EXPR_F, EXPR_D)                                            \
    BINARY_ROW(NAME##_f32, float, EXPR_F)                                              \
    BINARY_ROW(NAME##_f64, double, EXPR_D)
#define BINARY_ROWS_FI(NAME, EXPR)                                                     \
    BINARY_ROW(NAME##_f32, float, EXPR)                                                \
    BINARY_ROW(NAME##_f64, double, EXPR)                                               \
    BINARY_ROW(NAME##_i64, int64_t, EXPR)

/* The op's parameters (at most two, see unary_op) are copied to a local
 * array first: with -fno-strict-aliasing the compiler would otherwise have
 * to assume that every store to o[] may change them, reload them on each
 * element and give up vectorizing. */
#define UNARY_ROW(NAME, T, EXPR)                                                       \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        const double *prm_in = ctx;                                                    \
        const double prm[2] = {prm_in ? prm_in[0] : 0, prm_in ? prm_in[1] : 0};        \
        (void)prm;                                                                     \
        T *o = (T *)p[0];                                                              \
        const T *X = (const T *)p[1];                                                  \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {                \
            for (int64_t i = 0; i < n; i++) {                                          \
                T x = X[i];                                                            \
                o[i] = (EXPR);                                                         \
            }                                                                          \
        } else {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                          \
                T x = *(const T *)((const char *)X + i * s[1]);                        \
                *(T *)((char *)o + i * s[0]) = (EXPR);                                 \
            }                                                                          \
        }                                                                              \
    }
#define UNARY_ROWS_F(NAME, EXPR_F, EXPR_D)                                             \
    UNARY_ROW(NAME##_f32, float, EXPR_F)                                               \
    UNARY_ROW(NAME##_f64, double, EXPR_D)

/* A float32 row through a vector math kernel (kernels/vmath.h).  A strided
 * row is gathered into a small buffer, computed there and scattered back,
 * so that every layout goes through the same arithmetic and gives the same
 * bits as the contiguous path. */
#define VMATH_ROW(NAME)                                                                \
    static void NAME##_f32(int64_t n, char **p, const int64_t *s, void *ctx) {         \
        (void)ctx;                                                                     \
        tg_vmath_unary_fn f = tg_vmath()->NAME##_f32;                                  \
        if (s[0] == 4 && s[1] == 4) {                                                  \
            f(n, (const float *)p[1], (float *)p[0]);                                  \
            return;                                                                    \
        }                                                                              \
        float buf[256];                                                                \
        for (int64_t i0 = 0; i0 < n; i0 += 256) {                                      \
            int64_t m = n - i0 < 256 ? n - i0 : 256;                                   \
            for (int64_t j = 0; j < m; j++)                                            \
                buf[j] = *(const float *)(p[1] + (i0 + j) * s[1]);                     \
            f(m, buf, buf);                                                            \
            for (int64_t j = 0; j < m; j++) *(float *)(p[0] + (i0 + j) * s[0]) = buf[j]; \
        }                                                                              \
    }

/* Generic appliers for the registry (tests and tools call ops through them). */
static tg_tensor *apply_binary(tg_tensor *(*f)(tg_tensor *, tg_tensor *), tg_tensor *const *in,
                               int n) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: expected 2 inputs, got %d", n);
    return f(in[0], in[1]);
}
static tg_tensor *apply_unary(tg_tensor *(*f)(tg_tensor *), tg_tensor *const *in, int n) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input, got %d", n);
    return f(in[0]);
}
#define APPLY2(NAME)                                                                   \
    static tg_tensor *apply_##NAME(tg_tensor *const *in, int n, const tg_params *p) {  \
        (void)p;                                                                       \
        return apply_binary(tg_##NAME, in, n);                                         \
    }
#define APPLY1(NAME)                                                                   \
    static tg_tensor *apply_##NAME(tg_tensor *const *in, int n, const tg_params *p) {  \
        (void)p;                                                                       \
        return apply_unary(tg_##NAME, in, n);                                          \
    }

/* The forward of a differentiable binary op: promote, compute, record, save
 * both inputs. */
/* The promoted dtype of a and b, read only when both exist (a NULL input
 * then reaches binary_op's own check, which names the op). */
static tg_dtype promoted(const tg_tensor *a, const tg_tensor *b) {
    return (a && b) ? tg_dtype_promote(a->dtype, b->dtype) : TG_FLOAT64;
}

static tg_tensor *binary_op(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                            const row_table *rt, bool save_inputs, bool save_out) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", op->name);
    tg_tensor *in[2] = {a, b};
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 2, in, binary_kernel(op->name, a, b, dt, rt, NULL, op->cost), &e);
    if (e) {
        if (save_inputs && (tg__save(e, a) || tg__save(e, b))) {
            tg_tensor_release(out);
            return NULL;
        }
        if (save_out) tg__save_output(e, out);
    }
    return out;
}

/* mul and div: binary_op, but an input is saved only when the VJP will
 * read it (PyTorch's rule): a only when b needs a gradient, b only when a
 * does (mul) or always (div).  So `d += d * 2` does not trip the version
 * check on d, as in PyTorch.  A slot not saved holds NULL. */
static tg_tensor *binary_op_lazy(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                                 const row_table *rt, bool b_always) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", op->name);
    tg_tensor *in[2] = {a, b};
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 2, in, binary_kernel(op->name, a, b, dt, rt, NULL, op->cost), &e);
    if (e) {
        bool keep[2] = {tg_entry_needs_grad(e, 1), b_always || tg_entry_needs_grad(e, 0)};
        for (int i = 0; i < 2; i++) {
            if (keep[i]) {
                if (tg__save(e, in[i])) {
                    tg_tensor_release(out);
                    return NULL;
                }
            } else {
                e->saved_version[e->n_saved] = 0;
                e->saved[e->n_saved++] = NULL;
            }
        }
    }
    return out;
}

static tg_tensor *unary_op(const tg_opdef *op, tg_tensor *x, const row_table *rt, double *prm,
                           bool save_in, bool save_out) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", op->name);
    /* NumPy: float functions of an int64 array compute in float64 */
    tg_dtype dt = x->dtype == TG_INT64 && !rt->i64 ? TG_FLOAT64 : x->dtype;
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 1, &x, unary_kernel(op->name, x, dt, rt, prm, op->cost), &e);
    if (e) {
        e->params.f[0] = prm ? prm[0] : 0;
        e->params.f[1] = prm ? prm[1] : 0;
        if (save_in && tg__save(e, x)) {
            tg_tensor_release(out);
            return NULL;
        }
        if (save_out) tg__save_output(e, out);
    }
    return out;
}

/* Helpers for VJPs: every one returns a new reference or NULL. */
static tg_tensor *scal(double v, const tg_tensor *like) { return tg_tensor_scalar(v, like->dtype); }

/* g * f, releasing f (the common last step of a VJP). */
static tg_tensor *mul_take(tg_tensor *g, tg_tensor *f) {
    if (!f) return NULL;
    tg_tensor *r = tg_mul(g, f);
    tg_tensor_release(f);
    return r;
}

/* ===================================================================== */
/* add, sub, mul, div, pow, maximum, minimum                              */
/* ===================================================================== */

BINARY_ROWS_F(add, a + b, a + b)
BINARY_ROW(add_i64, int64_t, tg__wrap_add(a, b)) /* wraps like NumPy, no UB */
static const row_table add_rows = {add_f32, add_f64, add_i64};
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_add, a, b, promoted(a, b), &add_rows, false,
                     false);
}
static tg_status add_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    if (NEED(0)) { tg_tensor_retain(g); gi[0] = g; }
    if (NEED(1)) { tg_tensor_retain(g); gi[1] = g; }
    return TG_OK;
}
APPLY2(add)
TG_DEFINE_OP(add, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a + b", .forward_tex = "c = a + b",
             .vjp = "da = dc, db = dc (summed over broadcast axes)",
             .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = \\bar c",
             .doc = "Elementwise sum with broadcasting.", .backward = add_vjp, .apply = apply_add,
             .examples = "3x4,3x4;2x3x4,4;T3x4,3x1;-,2x3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(sub, a - b, a - b)
BINARY_ROW(sub_i64, int64_t, tg__wrap_sub(a, b)) /* wraps like NumPy, no UB */
static const row_table sub_rows = {sub_f32, sub_f64, sub_i64};
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_sub, a, b, promoted(a, b), &sub_rows, false,
                     false);
}
static tg_status sub_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    if (NEED(0)) { tg_tensor_retain(g); gi[0] = g; }
    if (NEED(1)) CHECK(gi[1] = tg_neg(g));
    return TG_OK;
}
APPLY2(sub)
TG_DEFINE_OP(sub, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a - b", .forward_tex = "c = a - b",
             .vjp = "da = dc, db = -dc", .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = -\\bar c",
             .doc = "Elementwise difference with broadcasting.", .backward = sub_vjp,
             .apply = apply_sub, .examples = "3x4,3x4;4,2x3x4;T3x4,1x4",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(mul, a * b, a * b)
BINARY_ROW(mul_i64, int64_t, tg__wrap_mul(a, b)) /* wraps like NumPy, no UB */
static const row_table mul_rows = {mul_f32, mul_f64, mul_i64};
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) {
    return binary_op_lazy(&tg_opdef_mul, a, b, promoted(a, b), &mul_rows, false);
}
static tg_status mul_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    if (NEED(0)) {
        tg_tensor *b = SAVED(1);
        CHECK(b);
        CHECK(gi[0] = tg_mul(g, b));
    }
    if (NEED(1)) {
        tg_tensor *a = SAVED(0);
        CHECK(a);
        CHECK(gi[1] = tg_mul(g, a));
    }
    return TG_OK;
}
APPLY2(mul)
TG_DEFINE_OP(mul, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a * b", .forward_tex = "c = a \\odot b",
             .vjp = "da = dc * b, db = dc * a",
             .vjp_tex = "\\bar a = \\bar c \\odot b,\\quad \\bar b = \\bar c \\odot a",
             .doc = "Elementwise product with broadcasting.", .backward = mul_vjp,
             .apply = apply_mul, .examples = "3x4,3x4;2x3x4,3x1;T3x4,4;-,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(div, a / b, a / b)
static const row_table div_rows = {div_f32, div_f64, NULL};
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) {
    tg_dtype dt = promoted(a, b);
    if (dt == TG_INT64) dt = TG_FLOAT64; /* true division, as in NumPy */
    return binary_op_lazy(&tg_opdef_div, a, b, dt, &div_rows, true);
}
static tg_status div_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *b = SAVED(1), *a = b && NEED(1) ? SAVED(0) : NULL;
    CHECK(b);
    if (NEED(1)) CHECK(a);
    tg_tensor *ga = tg_div(g, b);
    CHECK(ga);
    if (NEED(1)) {
        /* db = -dc * a / b^2 = -(dc / b) * (a / b) */
        tg_tensor *q = tg_div(a, b);
        tg_tensor *t = q ? tg_mul(ga, q) : NULL;
        tg_tensor_release(q);
        gi[1] = t ? tg_neg(t) : NULL;
        tg_tensor_release(t);
        if (!gi[1]) {
            tg_tensor_release(ga);
            return tg_error_status();
        }
    }
    if (NEED(0)) gi[0] = ga;
    else tg_tensor_release(ga);
    return TG_OK;
}
APPLY2(div)
TG_DEFINE_OP(div, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "c = a / b", .forward_tex = "c = a \\oslash b",
             .vjp = "da = dc / b, db = -dc * a / b^2",
             .vjp_tex = "\\bar a = \\bar c \\oslash b,\\quad \\bar b = -\\bar c \\odot a \\oslash b^{2}",
             .doc = "Elementwise true division with broadcasting.", .backward = div_vjp,
             .apply = apply_div, .examples = "3x4,+3x4;2x3x4,+4;T3x4,+3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(pow, powf(a, b), pow(a, b))
/* int64 ** int64 stays int64 (NumPy): exponentiation by squaring, wrapping
 * on overflow like NumPy; negative exponents are refused before the kernel */
static inline int64_t ipow1(int64_t a, int64_t b) {
    int64_t r = 1;
    while (b > 0) {
        if (b & 1) r = tg__wrap_mul(r, a);
        a = tg__wrap_mul(a, a);
        b >>= 1;
    }
    return r;
}
BINARY_ROW(pow_i64, int64_t, ipow1(a, b))
static const row_table pow_rows = {pow_f32, pow_f64, pow_i64};
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "pow: input is NULL");
    tg_dtype dt = tg_dtype_promote(a->dtype, b->dtype);
    if (dt == TG_INT64)
        for (int64_t i = 0; i < b->numel; i++)
            if (tg__get_flat_i64(b, i) < 0)
                return TG_FAIL(TG_ERR_VALUE,
                               "pow: Integers to negative integer powers are not allowed "
                               "(int64 exponent %lld at position %lld; use a float base, e.g. "
                               "a.astype(tg.float64) ** b)",
                               (long long)tg__get_flat_i64(b, i), (long long)i);
    return binary_op(&tg_opdef_pow, a, b, dt, &pow_rows, true, true);
}
/* where(mask, 0, v), releasing mask and v */
static tg_tensor *zero_where(tg_tensor *mask, tg_tensor *v) {
    tg_tensor *z = (mask && v) ? scal(0.0, v) : NULL;
    tg_tensor *r = z ? tg_where(mask, z, v) : NULL;
    tg_tensor_release(z);
    tg_tensor_release(mask);
    tg_tensor_release(v);
    return r;
}
static tg_status pow_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    if (NEED(0)) {
        /* da = dc * b * a^(b-1), and 0 where b == 0 (PyTorch: the derivative
         * of the constant a^0 = 1 is 0 even at a = 0, where 0 * 0^-1 is NaN) */
        tg_tensor *bm1 = tg_add_scalar(b, -1.0);
        tg_tensor *p = take2(tg_pow, (tg_tensor_retain(a), a), bm1);
        tg_tensor *f = p ? tg_mul(b, p) : NULL;
        tg_tensor_release(p);
        tg_tensor *z = scal(0.0, b);
        tg_tensor *mask = z ? tg_eq(b, z) : NULL;
        tg_tensor_release(z);
        CHECK(gi[0] = zero_where(mask, mul_take(g, f)));
    }
    if (NEED(1)) {
        /* db = dc * c * log(a), and 0 where a == 0 and b >= 0 (PyTorch: the
         * log(0) = -inf term is masked, c is 0 or 1 there) */
        tg_tensor *c = tg_entry_output(e);
        tg_tensor *f = c ? take2(tg_mul, c, tg_log(a)) : NULL;
        tg_tensor *za = scal(0.0, a), *zb = scal(0.0, b);
        tg_tensor *mask = (za && zb) ? take2(tg_mul, tg_eq(a, za), tg_ge(b, zb)) : NULL;
        tg_tensor_release(za);
        tg_tensor_release(zb);
        CHECK(gi[1] = zero_where(mask, mul_take(g, f)));
    }
    return TG_OK;
}
APPLY2(pow)
TG_DEFINE_OP(pow, .arity = 2, .cost = COST_TRANSCENDENTAL, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a ** b", .forward_tex = "c = a^{b}",
             .vjp = "da = dc * b * a^(b-1) (0 where b == 0), db = dc * c * log(a) (0 where a == 0 and b >= 0)",
             .vjp_tex = "\\bar a = \\bar c \\odot b\\, a^{b-1}\\ (0 \\text{ where } b = 0),\\quad \\bar b = \\bar c \\odot c \\log a\\ (0 \\text{ where } a = 0, b \\ge 0)",
             .doc = "Elementwise power with broadcasting; int64 ** int64 stays int64 (NumPy), a negative integer exponent is a ValueError.",
             .backward = pow_vjp,
             .apply = apply_pow, .examples = "+3x4,3x4;+2x3,+3;+T3x4,-",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_FI(maximum, (a > b || a != a) ? a : b)
static const row_table maximum_rows = {maximum_f32, maximum_f64, maximum_i64};
BINARY_ROWS_FI(minimum, (a < b || a != a) ? a : b)
static const row_table minimum_rows = {minimum_f32, minimum_f64, minimum_i64};
tg_tensor *tg_maximum(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_maximum, a, b, promoted(a, b), &maximum_rows,
                     true, false);
}
tg_tensor *tg_minimum(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_minimum, a, b, promoted(a, b), &minimum_rows,
                     true, false);
}
/* The gradient goes to the larger (smaller) input; ties split it in half. */
static tg_status minmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, bool is_max) {
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    tg_tensor *win = is_max ? tg_gt(a, b) : tg_lt(a, b);
    tg_tensor *tie = tg_eq(a, b);
    tg_tensor *half = tie ? tg_mul_scalar(tie, 0.5) : NULL;
    tg_tensor *ma = take2(tg_add, win, half); /* 1, 0.5 or 0 */
    tg_tensor_release(tie);
    CHECK(ma);
    tg_tensor *mac = tg_cast(ma, g->dtype);
    tg_tensor_release(ma);
    CHECK(mac);
    if (NEED(0)) gi[0] = tg_mul(g, mac);
    if (NEED(1)) {
        tg_tensor *mb = tg_rsub_scalar(mac, 1.0);
        gi[1] = mb ? mul_take(g, mb) : NULL;
    }
    tg_tensor_release(mac);
    if ((NEED(0) && !gi[0]) || (NEED(1) && !gi[1])) return tg_error_status();
    return TG_OK;
}
static tg_status maximum_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return minmax_vjp(e, g, gi, true);
}
static tg_status minimum_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return minmax_vjp(e, g, gi, false);
}
APPLY2(maximum)
APPLY2(minimum)
TG_DEFINE_OP(maximum, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = max(a, b)", .forward_tex = "c = \\max(a, b)",
             .vjp = "da = dc * [a > b] (1/2 on ties), db = dc * [b > a] (1/2 on ties)",
             .vjp_tex = "\\bar a = \\bar c \\odot [a > b],\\quad \\bar b = \\bar c \\odot [b > a]",
             .doc = "Elementwise maximum (NaN propagates).", .backward = maximum_vjp,
             .apply = apply_maximum, .examples = "3x4,3x4;2x3,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(minimum, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = min(a, b)", .forward_tex = "c = \\min(a, b)",
             .vjp = "da = dc * [a < b] (1/2 on ties), db = dc * [b < a] (1/2 on ties)",
             .vjp_tex = "\\bar a = \\bar c \\odot [a < b],\\quad \\bar b = \\bar c \\odot [b < a]",
             .doc = "Elementwise minimum (NaN propagates).", .backward = minimum_vjp,
             .apply = apply_minimum, .examples = "3x4,3x4;2x3,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* Comparisons: 0/1 in the promoted dtype, never differentiable           */
/* ===================================================================== */

#define COMPARISON(NAME, OP, TEXT)                                                     \
    BINARY_ROWS_FI(NAME, (a OP b) ? 1 : 0)                                             \
    static const row_table NAME##_rows = {NAME##_f32, NAME##_f64, NAME##_i64};         \
    tg_tensor *tg_##NAME(tg_tensor *a, tg_tensor *b) {                                 \
        return binary_op(&tg_opdef_##NAME, a, b, promoted(a, b), \
                         &NAME##_rows, false, false);                                  \
    }                                                                                  \
    APPLY2(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 2, .diff_mask = 0, .dtypes = "float32,float64,int64",  \
                 .forward = "c = [a " TEXT " b]", .forward_tex = "c = [a " TEXT " b]", \
                 .vjp = "not differentiable", .vjp_tex = "",                          \
                 .doc = "Elementwise comparison giving 1 or 0 (in the promoted dtype).", \
                 .backward = NULL, .apply = apply_##NAME, .examples = "3x4,3x4;2x3,3");

COMPARISON(eq, ==, "==")
COMPARISON(ne, !=, "!=")
COMPARISON(lt, <, "<")
COMPARISON(le, <=, "<=")
COMPARISON(gt, >, ">")
COMPARISON(ge, >=, ">=")

/* ---- where(cond, a, b) --------------------------------------------------- */

/* out = cond != 0 ? a : b along one row (cond in float64). */
#define WHERE_ROW(NAME, T)                                                             \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        const int64_t z = (int64_t)sizeof(T);                                         \
        if (s[0] == z && s[1] == z && s[2] == z && s[3] == 8) {                        \
            T *o = (T *)p[0];                                                          \
            const T *A = (const T *)p[1], *B = (const T *)p[2];                        \
            const double *C = (const double *)p[3];                                    \
            for (int64_t i = 0; i < n; i++) o[i] = C[i] != 0 ? A[i] : B[i];            \
            return;                                                                    \
        }                                                                              \
        for (int64_t i = 0; i < n; i++)                                                \
            *(T *)(p[0] + i * s[0]) = *(const double *)(p[3] + i * s[3]) != 0          \
                                          ? *(const T *)(p[1] + i * s[1])              \
                                          : *(const T *)(p[2] + i * s[2]);             \
    }
WHERE_ROW(where_f32, float)
WHERE_ROW(where_f64, double)
WHERE_ROW(where_i64, int64_t)

tg_tensor *tg_where(tg_tensor *cond, tg_tensor *a, tg_tensor *b) {
    const char *who = "where";
    if (!cond || !a || !b) return TG_FAIL(TG_ERR_VALUE, "where: input is NULL");
    int n1, nd;
    int64_t s1[TG_MAX_DIMS], shape[TG_MAX_DIMS];
    if (tg__broadcast_shapes(who, a->ndim, a->shape, b->ndim, b->shape, &n1, s1) ||
        tg__broadcast_shapes(who, cond->ndim, cond->shape, n1, s1, &nd, shape))
        return NULL;
    tg_dtype dt = promoted(a, b);
    tg_tensor *ac = tg__as_dtype(a, dt), *bc = ac ? tg__as_dtype(b, dt) : NULL;
    tg_tensor *cc = bc ? tg__as_dtype(cond, TG_FLOAT64) : NULL;
    tg_tensor *out = cc ? tg_tensor_empty(nd, shape, dt) : NULL;
    if (out && out->numel > 0) {
        /* four operands iterated together: out, a, b, cond (as float64) */
        int64_t st[4][TG_MAX_DIMS];
        tg__bcast_strides_bytes(out, nd, shape, st[0]);
        tg__bcast_strides_bytes(ac, nd, shape, st[1]);
        tg__bcast_strides_bytes(bc, nd, shape, st[2]);
        tg__bcast_strides_bytes(cc, nd, shape, st[3]);
        char *base[4] = {tg_tensor_data(out), tg_tensor_data(ac), tg_tensor_data(bc),
                         tg_tensor_data(cc)};
        row3_fn fn = dt == TG_FLOAT32 ? where_f32 : dt == TG_FLOAT64 ? where_f64 : where_i64;
        void *kt = tg__kernel_begin(out->numel);
        tg__iterate_parallel(4, nd, shape, base, st, fn, NULL, 1);
        tg__kernel_end(kt);
    }
    tg_tensor_release(ac);
    tg_tensor_release(bc);
    tg_tensor *in[3] = {cond, a, b};
    tg_entry *e;
    out = tg__finish(&tg_opdef_where, 3, in, out, &e);
    if (e && tg__save(e, cc)) {
        tg_tensor_release(out);
        out = NULL;
    }
    tg_tensor_release(cc);
    return out;
}
static tg_status where_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *c = SAVED(0);
    CHECK(c);
    tg_tensor *z = scal(0.0, g);
    CHECK(z);
    if (NEED(1)) gi[1] = tg_where(c, g, z);
    if (NEED(2)) gi[2] = tg_where(c, z, g);
    tg_tensor_release(z);
    if ((NEED(1) && !gi[1]) || (NEED(2) && !gi[2])) return tg_error_status();
    return TG_OK;
}
static tg_tensor *apply_where(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 3) return TG_FAIL(TG_ERR_VALUE, "apply: where takes 3 inputs");
    return tg_where(in[0], in[1], in[2]);
}
TG_DEFINE_OP(where, .arity = 3, .diff_mask = 6, .dtypes = "float32,float64,int64",
             .forward = "c = cond ? a : b", .forward_tex = "c = \\mathrm{cond}\\ ?\\ a : b",
             .vjp = "da = cond ? dc : 0, db = cond ? 0 : dc",
             .vjp_tex = "\\bar a = [\\mathrm{cond}] \\odot \\bar c,\\quad \\bar b = [\\lnot\\mathrm{cond}] \\odot \\bar c",
             .doc = "Pick from a where cond is non-zero, else from b (broadcasting all three).",
             .backward = where_vjp, .apply = apply_where,
             .examples = "b3x4,3x4,3x4;b3x1,4,2x3x4",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ---- scalar forms --------------------------------------------------------- */

static tg_dtype scalar_dtype(const tg_tensor *a, double s) {
    if (a->dtype == TG_INT64 && s != floor(s)) return TG_FLOAT64;
    return a->dtype;
}
#define SCALAR_FORM(NAME, CALL)                                                        \
    tg_tensor *tg_##NAME##_scalar(tg_tensor *a, double s) {                            \
        tg_tensor *c = tg_tensor_scalar(s, scalar_dtype(a, s));                        \
        if (!c) return NULL;                                                           \
        tg_tensor *r = CALL;                                                           \
        tg_tensor_release(c);                                                          \
        return r;                                                                      \
    }
SCALAR_FORM(add, tg_add(a, c))
SCALAR_FORM(mul, tg_mul(a, c))
SCALAR_FORM(pow, tg_pow(a, c))
SCALAR_FORM(rsub, tg_sub(c, a))

/* ===================================================================== */
/* Unary                                                                  */
/* ===================================================================== */

UNARY_ROWS_F(neg, -x, -x)
UNARY_ROW(neg_i64, int64_t, tg__wrap_sub(0, x)) /* -INT64_MIN wraps, like NumPy */
static const row_table neg_rows = {neg_f32, neg_f64, neg_i64};
tg_tensor *tg_neg(tg_tensor *x) { return unary_op(&tg_opdef_neg, x, &neg_rows, NULL, false, false); }
static tg_status neg_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    (void)e;
    CHECK(gi[0] = tg_neg(g));
    return TG_OK;
}
APPLY1(neg)
TG_DEFINE_OP(neg, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = -x", .forward_tex = "y = -x", .vjp = "dx = -dy",
             .vjp_tex = "\\bar x = -\\bar y", .doc = "Negation.", .backward = neg_vjp,
             .apply = apply_neg, .examples = "3x4;T2x3;-",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

VMATH_ROW(exp)
UNARY_ROW(exp_f64, double, exp(x))
static const row_table exp_rows = {exp_f32, exp_f64, NULL};
tg_tensor *tg_exp(tg_tensor *x) { return unary_op(&tg_opdef_exp, x, &exp_rows, NULL, false, true); }
static tg_status exp_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    CHECK(gi[0] = mul_take(g, y));
    return TG_OK;
}
APPLY1(exp)
TG_DEFINE_OP(exp, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = exp(x)", .forward_tex = "y = e^{x}", .vjp = "dx = dy * y",
             .vjp_tex = "\\bar x = \\bar y \\odot y", .doc = "Exponential. float32: vectorized kernel, error <= 1.5 ulp (kernels/vmath.h); float64: libm.", .backward = exp_vjp,
             .apply = apply_exp, .examples = "3x4;T2x3;-",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

VMATH_ROW(log)
UNARY_ROW(log_f64, double, log(x))
static const row_table log_rows = {log_f32, log_f64, NULL};
tg_tensor *tg_log(tg_tensor *x) { return unary_op(&tg_opdef_log, x, &log_rows, NULL, true, false); }
static tg_status log_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = tg_div(g, x));
    return TG_OK;
}
APPLY1(log)
TG_DEFINE_OP(log, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = log(x)", .forward_tex = "y = \\log x", .vjp = "dx = dy / x",
             .vjp_tex = "\\bar x = \\bar y \\oslash x", .doc = "Natural logarithm. float32: vectorized kernel, error <= 1 ulp (kernels/vmath.h); float64: libm.",
             .backward = log_vjp, .apply = apply_log, .examples = "+3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(sqrt, sqrtf(x), sqrt(x))
static const row_table sqrt_rows = {sqrt_f32, sqrt_f64, NULL};
tg_tensor *tg_sqrt(tg_tensor *x) { return unary_op(&tg_opdef_sqrt, x, &sqrt_rows, NULL, false, true); }
static tg_status sqrt_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    tg_tensor *y2 = y ? tg_mul_scalar(y, 2.0) : NULL;
    tg_tensor_release(y);
    CHECK(y2);
    gi[0] = tg_div(g, y2);
    tg_tensor_release(y2);
    CHECK(gi[0]);
    return TG_OK;
}
APPLY1(sqrt)
TG_DEFINE_OP(sqrt, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = sqrt(x)", .forward_tex = "y = \\sqrt{x}", .vjp = "dx = dy / (2 y)",
             .vjp_tex = "\\bar x = \\bar y \\oslash (2y)", .doc = "Square root.",
             .backward = sqrt_vjp, .apply = apply_sqrt, .examples = "+3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(abs, fabsf(x), fabs(x))
UNARY_ROW(abs_i64, int64_t, x < 0 ? tg__wrap_sub(0, x) : x)
static const row_table abs_rows = {abs_f32, abs_f64, abs_i64};
tg_tensor *tg_abs(tg_tensor *x) { return unary_op(&tg_opdef_abs, x, &abs_rows, NULL, true, false); }
static tg_status abs_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *z = scal(0.0, x);
    CHECK(z);
    tg_tensor *sign = take2(tg_sub, tg_gt(x, z), tg_lt(x, z)); /* sign(x), 0 at 0 */
    tg_tensor_release(z);
    CHECK(gi[0] = mul_take(g, sign));
    return TG_OK;
}
APPLY1(abs)
TG_DEFINE_OP(abs, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = |x|", .forward_tex = "y = |x|", .vjp = "dx = dy * sign(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\operatorname{sign}(x)",
             .doc = "Absolute value (gradient 0 at 0).", .backward = abs_vjp, .apply = apply_abs,
             .examples = "~3x4;~T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(sin, sinf(x), sin(x))
static const row_table sin_rows = {sin_f32, sin_f64, NULL};
UNARY_ROWS_F(cos, cosf(x), cos(x))
static const row_table cos_rows = {cos_f32, cos_f64, NULL};
tg_tensor *tg_sin(tg_tensor *x) { return unary_op(&tg_opdef_sin, x, &sin_rows, NULL, true, false); }
tg_tensor *tg_cos(tg_tensor *x) { return unary_op(&tg_opdef_cos, x, &cos_rows, NULL, true, false); }
static tg_status sin_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, tg_cos(x)));
    return TG_OK;
}
static tg_status cos_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *s = tg_sin(x);
    tg_tensor *ns = s ? tg_neg(s) : NULL;
    tg_tensor_release(s);
    CHECK(gi[0] = mul_take(g, ns));
    return TG_OK;
}
APPLY1(sin)
APPLY1(cos)
TG_DEFINE_OP(sin, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = sin(x)", .forward_tex = "y = \\sin x", .vjp = "dx = dy * cos(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\cos x", .doc = "Sine.", .backward = sin_vjp,
             .apply = apply_sin, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(cos, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = cos(x)", .forward_tex = "y = \\cos x", .vjp = "dx = -dy * sin(x)",
             .vjp_tex = "\\bar x = -\\bar y \\odot \\sin x", .doc = "Cosine.",
             .backward = cos_vjp, .apply = apply_cos, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

VMATH_ROW(tanh)
UNARY_ROW(tanh_f64, double, tanh(x))
static const row_table tanh_rows = {tanh_f32, tanh_f64, NULL};
tg_tensor *tg_tanh(tg_tensor *x) { return unary_op(&tg_opdef_tanh, x, &tanh_rows, NULL, false, true); }
static tg_status tanh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *y2 = tg_mul(y, y);
    tg_tensor_release(y);
    tg_tensor *d = y2 ? tg_rsub_scalar(y2, 1.0) : NULL; /* 1 - y^2 */
    tg_tensor_release(y2);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(tanh)
TG_DEFINE_OP(tanh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = tanh(x)", .forward_tex = "y = \\tanh x", .vjp = "dx = dy * (1 - y^2)",
             .vjp_tex = "\\bar x = \\bar y \\odot (1 - y^{2})", .doc = "Hyperbolic tangent. float32: vectorized kernel, error <= 1.5 ulp (kernels/vmath.h); float64: libm.",
             .backward = tanh_vjp, .apply = apply_tanh, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* sigmoid, computed without overflow for large |x| */
VMATH_ROW(sigmoid)
UNARY_ROW(sigmoid_f64, double, x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)))
static const row_table sigmoid_rows = {sigmoid_f32, sigmoid_f64, NULL};
tg_tensor *tg_sigmoid(tg_tensor *x) {
    return unary_op(&tg_opdef_sigmoid, x, &sigmoid_rows, NULL, false, true);
}
static tg_status sigmoid_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *d = take2(tg_mul, (tg_tensor_retain(y), y), tg_rsub_scalar(y, 1.0)); /* y(1-y) */
    tg_tensor_release(y);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(sigmoid)
TG_DEFINE_OP(sigmoid, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = 1 / (1 + exp(-x))", .forward_tex = "y = \\sigma(x) = \\frac{1}{1 + e^{-x}}",
             .vjp = "dx = dy * y * (1 - y)", .vjp_tex = "\\bar x = \\bar y \\odot y \\odot (1 - y)",
             .doc = "Logistic sigmoid (stable for large |x|). float32: vectorized kernel, error <= 2.5 ulp (kernels/vmath.h); float64: libm.", .backward = sigmoid_vjp,
             .apply = apply_sigmoid, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* silu (swish), a composite op: x * sigmoid(x) made of two ops that record
 * their own entries, so it needs no VJP of its own (.composite; see
 * tapegrad.h) -- the tape shows sigmoid and mul, and second order follows. */
tg_tensor *tg_silu(tg_tensor *x) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "silu: x is NULL");
    if (!tg_dtype_is_float(x->dtype))
        return TG_FAIL(TG_ERR_TYPE, "silu: not supported for dtype %s (expected float32 or float64)",
                       tg_dtype_name(x->dtype));
    tg_tensor *s = tg_sigmoid(x);
    if (!s) return NULL;
    tg_tensor *y = tg_mul(x, s);
    tg_tensor_release(s);
    return y;
}
APPLY1(silu)
TG_DEFINE_OP(silu, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x * sigmoid(x)", .forward_tex = "y = x \\odot \\sigma(x)",
             .vjp = "dx = dy * (s + x * s * (1 - s)), s = sigmoid(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot (s + x \\odot s \\odot (1 - s))",
             .doc = "SiLU (swish), x * sigmoid(x); a composite op: the tape records its sigmoid and mul.",
             .apply = apply_silu, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(relu, x > 0 ? x : (x != x ? x : 0.0f), x > 0 ? x : (x != x ? x : 0.0))
static const row_table relu_rows = {relu_f32, relu_f64, NULL};
tg_tensor *tg_relu(tg_tensor *x) { return unary_op(&tg_opdef_relu, x, &relu_rows, NULL, true, false); }
static tg_status relu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *z = scal(0.0, x);
    CHECK(z);
    tg_tensor *mask = tg_gt(x, z);
    tg_tensor_release(z);
    CHECK(gi[0] = mul_take(g, mask));
    return TG_OK;
}
APPLY1(relu)
TG_DEFINE_OP(relu, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = max(x, 0)", .forward_tex = "y = \\max(x, 0)",
             .vjp = "dx = dy * [x > 0]", .vjp_tex = "\\bar x = \\bar y \\odot [x > 0]",
             .doc = "Rectified linear unit (gradient 0 at 0).", .backward = relu_vjp,
             .apply = apply_relu, .examples = "~3x4;~T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(leaky_relu, x > 0 ? x : x * (float)prm[0], x > 0 ? x : x * prm[0])
static const row_table leaky_relu_rows = {leaky_relu_f32, leaky_relu_f64, NULL};
tg_tensor *tg_leaky_relu(tg_tensor *x, double slope) {
    double prm[2] = {slope, 0};
    return unary_op(&tg_opdef_leaky_relu, x, &leaky_relu_rows, prm, true, false);
}
static tg_status leaky_relu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    double s = e->params.f[0];
    tg_tensor *z = scal(0.0, x);
    CHECK(z);
    tg_tensor *m = tg_gt(x, z);
    tg_tensor_release(z);
    /* slope + (1 - slope) * [x > 0] */
    tg_tensor *f = m ? tg_mul_scalar(m, 1.0 - s) : NULL;
    tg_tensor_release(m);
    tg_tensor *f2 = f ? tg_add_scalar(f, s) : NULL;
    tg_tensor_release(f);
    CHECK(gi[0] = mul_take(g, f2));
    return TG_OK;
}
static tg_tensor *apply_leaky_relu(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_leaky_relu(in[0], p->f[0]);
}
TG_DEFINE_OP(leaky_relu, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x if x > 0 else slope * x",
             .forward_tex = "y = \\begin{cases} x & x > 0 \\\\ \\alpha x & x \\le 0\\end{cases}",
             .vjp = "dx = dy * (1 if x > 0 else slope)",
             .vjp_tex = "\\bar x = \\bar y \\odot (\\alpha + (1-\\alpha)[x > 0])",
             .doc = "Leaky ReLU with parameter negative_slope (f0).", .backward = leaky_relu_vjp,
             .apply = apply_leaky_relu, .examples = "~3x4|f0=0.1;~T2x3|f0=0.2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(erf, erff(x), erf(x))
static const row_table erf_rows = {erf_f32, erf_f64, NULL};
tg_tensor *tg_erf(tg_tensor *x) { return unary_op(&tg_opdef_erf, x, &erf_rows, NULL, true, false); }
static tg_status erf_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    /* 2/sqrt(pi) * exp(-x^2) */
    tg_tensor *x2 = tg_mul(x, x);
    tg_tensor *nx2 = x2 ? tg_mul_scalar(x2, -1.0) : NULL;
    tg_tensor_release(x2);
    tg_tensor *ex = nx2 ? tg_exp(nx2) : NULL;
    tg_tensor_release(nx2);
    tg_tensor *f = ex ? tg_mul_scalar(ex, 1.1283791670955126) : NULL;
    tg_tensor_release(ex);
    CHECK(gi[0] = mul_take(g, f));
    return TG_OK;
}
APPLY1(erf)
TG_DEFINE_OP(erf, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = erf(x)", .forward_tex = "y = \\operatorname{erf}(x)",
             .vjp = "dx = dy * 2/sqrt(pi) * exp(-x^2)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\tfrac{2}{\\sqrt\\pi} e^{-x^2}",
             .doc = "The error function.", .backward = erf_vjp, .apply = apply_erf,
             .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(gelu, 0.5f * x * (1.0f + erff(x * 0.70710678f)), 0.5 * x * (1.0 + erf(x * 0.7071067811865476)))
static const row_table gelu_rows = {gelu_f32, gelu_f64, NULL};
tg_tensor *tg_gelu(tg_tensor *x) { return unary_op(&tg_opdef_gelu, x, &gelu_rows, NULL, true, false); }
static tg_status gelu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    /* Phi(x) + x phi(x), Phi(x) = (1 + erf(x/sqrt2))/2, phi(x) = exp(-x^2/2)/sqrt(2 pi) */
    tg_tensor *xs = tg_mul_scalar(x, 0.7071067811865476);
    tg_tensor *er = xs ? tg_erf(xs) : NULL;
    tg_tensor_release(xs);
    tg_tensor *er1 = er ? tg_add_scalar(er, 1.0) : NULL;
    tg_tensor_release(er);
    tg_tensor *Phi = er1 ? tg_mul_scalar(er1, 0.5) : NULL;
    tg_tensor_release(er1);
    tg_tensor *x2 = Phi ? tg_mul(x, x) : NULL;
    tg_tensor *nx2 = x2 ? tg_mul_scalar(x2, -0.5) : NULL;
    tg_tensor_release(x2);
    tg_tensor *ex = nx2 ? tg_exp(nx2) : NULL;
    tg_tensor_release(nx2);
    tg_tensor *phi = ex ? tg_mul_scalar(ex, 0.3989422804014327) : NULL;
    tg_tensor_release(ex);
    tg_tensor *xphi = phi ? tg_mul(x, phi) : NULL;
    tg_tensor_release(phi);
    tg_tensor *d = take2(tg_add, Phi, xphi);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(gelu)
TG_DEFINE_OP(gelu, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x * Phi(x)", .forward_tex = "y = x\\,\\Phi(x)",
             .vjp = "dx = dy * (Phi(x) + x * phi(x))",
             .vjp_tex = "\\bar x = \\bar y \\odot (\\Phi(x) + x\\,\\varphi(x))",
             .doc = "Gaussian error linear unit (exact, with erf).", .backward = gelu_vjp,
             .apply = apply_gelu, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(softplus, x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)),
             x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
static const row_table softplus_rows = {softplus_f32, softplus_f64, NULL};
tg_tensor *tg_softplus(tg_tensor *x) {
    return unary_op(&tg_opdef_softplus, x, &softplus_rows, NULL, true, false);
}
static tg_status softplus_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, tg_sigmoid(x)));
    return TG_OK;
}
APPLY1(softplus)
TG_DEFINE_OP(softplus, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = log(1 + exp(x))", .forward_tex = "y = \\log(1 + e^{x})",
             .vjp = "dx = dy * sigmoid(x)", .vjp_tex = "\\bar x = \\bar y \\odot \\sigma(x)",
             .doc = "Softplus (stable for large |x|).", .backward = softplus_vjp,
             .apply = apply_softplus, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* min(max(x, lo), hi) in that order, as NumPy and PyTorch: with lo > hi
 * every element is hi (testing x > hi first gave lo where x < lo) */
static inline float clip1_f(float x, float lo, float hi) {
    float m = x < lo ? lo : x;
    return m > hi ? hi : m;
}
static inline double clip1_d(double x, double lo, double hi) {
    double m = x < lo ? lo : x;
    return m > hi ? hi : m;
}
static inline int64_t clip1_i(int64_t x, double lo, double hi) {
    int64_t m = (double)x < lo ? tg__f2i(lo) : x;
    return (double)m > hi ? tg__f2i(hi) : m;
}
UNARY_ROWS_F(clip, clip1_f(x, (float)prm[0], (float)prm[1]), clip1_d(x, prm[0], prm[1]))
UNARY_ROW(clip_i64, int64_t, clip1_i(x, prm[0], prm[1]))
static const row_table clip_rows = {clip_f32, clip_f64, clip_i64};
tg_tensor *tg_clip(tg_tensor *x, double lo, double hi) {
    if (isnan(lo)) lo = -INFINITY;
    if (isnan(hi)) hi = INFINITY;
    double prm[2] = {lo, hi};
    return unary_op(&tg_opdef_clip, x, &clip_rows, prm, true, false);
}
static tg_status clip_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *lo = scal(e->params.f[0], x), *hi = scal(e->params.f[1], x);
    tg_tensor *m = (lo && hi) ? take2(tg_mul, tg_ge(x, lo), tg_le(x, hi)) : NULL;
    tg_tensor_release(lo);
    tg_tensor_release(hi);
    CHECK(gi[0] = mul_take(g, m));
    return TG_OK;
}
static tg_tensor *apply_clip(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_clip(in[0], p->f[0], p->f[1]);
}
TG_DEFINE_OP(clip, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = min(max(x, lo), hi)", .forward_tex = "y = \\min(\\max(x, l), h)",
             .vjp = "dx = dy * [lo <= x <= hi]", .vjp_tex = "\\bar x = \\bar y \\odot [l \\le x \\le h]",
             .doc = "Clamp to [lo, hi] (f0, f1).", .backward = clip_vjp, .apply = apply_clip,
             .examples = "3x4|f0=-0.45 f1=0.55;T2x3|f0=-0.35 f1=0.25",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- cast ----------------------------------------------------------------- */

tg_tensor *tg_cast(tg_tensor *x, tg_dtype dt) {
    if (!tg_dtype_size(dt)) return TG_FAIL(TG_ERR_TYPE, "cast: invalid dtype %d", (int)dt);
    tg_tensor *out = tg_tensor_empty(x->ndim, x->shape, dt);
    if (!out) return NULL;
    tg__copy_into(out, x);
    tg_entry *e;
    out = tg__finish(&tg_opdef_cast, 1, &x, out, &e);
    if (e) e->params.i[0] = x->dtype;
    return out;
}
static tg_status cast_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = tg_cast(g, (tg_dtype)e->params.i[0]));
    return TG_OK;
}
static tg_tensor *apply_cast(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_cast(in[0], (tg_dtype)p->i[0]);
}
TG_DEFINE_OP(cast, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x as dtype", .forward_tex = "y = \\operatorname{cast}(x)",
             .vjp = "dx = dy cast back to x's dtype", .vjp_tex = "\\bar x = \\operatorname{cast}^{-1}(\\bar y)",
             .doc = "Convert to another dtype (i0: 0 float32, 1 float64, 2 int64); differentiable between floats.",
             .backward = cast_vjp, .apply = apply_cast, .examples = "3x4|i0=1;T2x3|i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
