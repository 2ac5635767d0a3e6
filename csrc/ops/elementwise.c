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
#include <stdio.h>

#include "../kernels/vmath.h"

/* ===================================================================== */
/* Drivers                                                                */
/* ===================================================================== */

typedef void (*row3_fn)(int64_t n, char **p, const int64_t *s, void *ctx);

/* One row kernel per dtype; NULL: dtype not supported (the drivers raise a
 * TypeError naming the op and the dtype).  Fields are only ever appended,
 * so positional initialisers {f32, f64, i64} stay valid: the later ones
 * are NULL then. */
typedef struct {
    row3_fn f32, f64, i64;
    row3_fn i32, u8, b; /* int32, uint8, bool (after the three first dtypes) */
} row_table;

static row3_fn pick_row(const row_table *rt, tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return rt->f32;
    case TG_FLOAT64: return rt->f64;
    case TG_INT64: return rt->i64;
    case TG_INT32: return rt->i32;
    case TG_UINT8: return rt->u8;
    case TG_BOOL: return rt->b;
    default: return NULL;
    }
}

/* The dtypes a row table supports, for error messages ("float32, float64"). */
static const char *supported_names(const row_table *rt, char *buf, size_t n) {
    buf[0] = 0;
    for (int d = 0; d < TG_N_DTYPES; d++)
        if (pick_row(rt, (tg_dtype)d)) {
            size_t k = strlen(buf);
            snprintf(buf + k, n - k, "%s%s", k ? ", " : "", tg_dtype_name((tg_dtype)d));
        }
    return buf;
}

/* Work per element of the transcendental kernels, relative to an add: the
 * op block's .cost (what decides when a loop is worth splitting across
 * threads, and the profiler's cost class through tg.ops()). */
#define COST_TRANSCENDENTAL 8

/* Apply a binary row kernel to a and b broadcast together.  out_dt: the
 * compute dtype (promoted).  Returns a new contiguous tensor. */
/* One pass of fn over three operands in the shape of t0 (t1 and t2
 * broadcast to it), split over threads above the cost's threshold: a binary
 * op's out, a, b; also relu's backward written over its gradient (g, g, x)
 * and gelu's recorded forward (y, d, x). */
static void pass3(tg_tensor *t0, tg_tensor *t1, tg_tensor *t2, row3_fn fn, void *ctx, int cost) {
    char *base[3] = {tg_tensor_data(t0), tg_tensor_data(t1), tg_tensor_data(t2)};
    void *kt = tg__kernel_begin(t0->numel);
    int64_t st[3][TG_MAX_DIMS];
    tg__bcast_strides_bytes(t0, t0->ndim, t0->shape, st[0]);
    tg__bcast_strides_bytes(t1, t0->ndim, t0->shape, st[1]);
    tg__bcast_strides_bytes(t2, t0->ndim, t0->shape, st[2]);
    tg__iterate_parallel(3, t0->ndim, t0->shape, base, st, fn, ctx, cost);
    tg__kernel_end(kt);
}

static tg_tensor *binary_kernel(const char *who, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                                tg_dtype out_dt, const row_table *rt, void *ctx, int cost) {
    row3_fn fn = pick_row(rt, dt);
    char names[80];
    if (!fn)
        return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype %s (inputs %s and %s; expected %s)",
                       who, tg_dtype_name(dt), tg_dtype_name(a->dtype), tg_dtype_name(b->dtype),
                       supported_names(rt, names, sizeof names));
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (tg__broadcast_shapes(who, a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) return NULL;
    tg_tensor *ac = tg__as_dtype(a, dt);
    tg_tensor *bc = ac ? tg__as_dtype(b, dt) : NULL;
    tg_tensor *out = bc ? tg_tensor_empty(nd, shape, out_dt) : NULL;
    if (out && out->numel > 0) pass3(out, ac, bc, fn, ctx, cost);
    tg_tensor_release(ac);
    tg_tensor_release(bc);
    return out;
}

/* Unary: out has x's shape and dtype `dt` (x converted first). */
static tg_tensor *unary_kernel(const char *who, tg_tensor *x, tg_dtype dt, const row_table *rt,
                               void *ctx, int cost) {
    row3_fn fn = pick_row(rt, dt);
    char names[80];
    if (!fn)
        return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype %s (expected %s)", who,
                       tg_dtype_name(dt), supported_names(rt, names, sizeof names));
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
/* The same expression for all six dtypes (bool is uint8_t holding 0/1). */
#define BINARY_ROWS_ALL(NAME, EXPR)                                                    \
    BINARY_ROWS_FI(NAME, EXPR)                                                         \
    BINARY_ROW(NAME##_i32, int32_t, EXPR)                                              \
    BINARY_ROW(NAME##_u8, uint8_t, EXPR)                                               \
    BINARY_ROW(NAME##_b, uint8_t, EXPR)
/* Wrapping int32/uint8 arithmetic (NumPy's), computed in unsigned so there
 * is no undefined behaviour; the conversion back is modulo 2^32 (GCC, Clang
 * and MSVC define it so). */
#define WRAP32(EXPR) ((int32_t)(uint32_t)(EXPR))
#define WRAP8(EXPR) ((uint8_t)(EXPR))

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

/* The same for a gradient kernel out = g * f'(x) (kernels/vmath.h,
 * tg_vmath_grad_fn) as a binary row: p[0] = out, p[1] = g, p[2] = x.  An
 * operand that is not contiguous is gathered into a small buffer (a
 * broadcast g, stride 0, as sum().backward() gives, is filled once), so
 * every layout gives the bits of the contiguous path. */
#define VMATH_GRAD_ROW(NAME)                                                           \
    static void NAME##_f32(int64_t n, char **p, const int64_t *s, void *ctx) {         \
        (void)ctx;                                                                     \
        tg_vmath_grad_fn f = tg_vmath()->NAME##_f32;                                   \
        if (s[0] == 4 && s[1] == 4 && s[2] == 4) {                                     \
            f(n, (const float *)p[1], (const float *)p[2], (float *)p[0]);             \
            return;                                                                    \
        }                                                                              \
        float gb[256], xb[256], ob[256];                                               \
        if (s[1] == 0)                                                                 \
            for (int j = 0; j < 256; j++) gb[j] = *(const float *)p[1];                \
        for (int64_t i0 = 0; i0 < n; i0 += 256) {                                      \
            int64_t m = n - i0 < 256 ? n - i0 : 256;                                   \
            const float *gp = gb, *xp = xb;                                            \
            float *op = s[0] == 4 ? (float *)p[0] + i0 : ob;                           \
            if (s[1] == 4) gp = (const float *)p[1] + i0;                              \
            else if (s[1] != 0)                                                        \
                for (int64_t j = 0; j < m; j++) gb[j] = *(const float *)(p[1] + (i0 + j) * s[1]); \
            if (s[2] == 4) xp = (const float *)p[2] + i0;                              \
            else                                                                       \
                for (int64_t j = 0; j < m; j++) xb[j] = *(const float *)(p[2] + (i0 + j) * s[2]); \
            f(m, gp, xp, op);                                                          \
            if (op == ob)                                                              \
                for (int64_t j = 0; j < m; j++) *(float *)(p[0] + (i0 + j) * s[0]) = ob[j]; \
        }                                                                              \
    }

/* The forward of a differentiable binary op: promote, compute, record, save
 * both inputs. */
/* The promoted dtype of a and b, read only when both exist (a NULL input
 * then reaches binary_op's own check, which names the op). */
static tg_dtype promoted(const tg_tensor *a, const tg_tensor *b) {
    return (a && b) ? tg_dtype_promote(a->dtype, b->dtype) : TG_FLOAT64;
}

static tg_tensor *binary_op_to(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                               tg_dtype out_dt, const row_table *rt, bool save_inputs, bool save_out) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", op->name);
    tg_tensor *in[2] = {a, b};
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 2, in, binary_kernel(op->name, a, b, dt, out_dt, rt, NULL, op->cost), &e);
    if (e) {
        if (save_inputs && (tg__save(e, a) || tg__save(e, b))) {
            tg_tensor_release(out);
            return NULL;
        }
        if (save_out) tg__save_output(e, out);
    }
    return out;
}
static tg_tensor *binary_op(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_dtype dt,
                            const row_table *rt, bool save_inputs, bool save_out) {
    return binary_op_to(op, a, b, dt, dt, rt, save_inputs, save_out);
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
    tg_tensor *out = tg__finish(op, 2, in, binary_kernel(op->name, a, b, dt, dt, rt, NULL, op->cost), &e);
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
    /* NumPy: float functions of an integer or bool array compute in a float
     * (float64 for int64/int32, float32 for uint8/bool: tg_dtype_float_of);
     * functions with an integer kernel (square, floor, sign, ...) keep the
     * integer dtype: int32 and uint8 compute in int64 and come back
     * (wrap-around included, as NumPy's own loops); bool is refused, as
     * NumPy refuses or changes it per function */
    tg_dtype dt = x->dtype;
    bool via_i64 = false;
    if (!tg_dtype_is_float(x->dtype) && !pick_row(rt, x->dtype)) {
        if (rt->i64 && x->dtype != TG_BOOL) {
            dt = TG_INT64;
            via_i64 = true;
        } else if (rt->i64) {
            return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype bool (an integer function; "
                           "convert with .astype(tg.int64) or a float dtype first)", op->name);
        } else if (rt->f64) {
            dt = tg_dtype_float_of(x->dtype);
        }
    }
    tg_tensor *res = unary_kernel(op->name, x, dt, rt, prm, op->cost);
    if (res && via_i64) {
        tg_tensor *back = tg__as_dtype(res, x->dtype);
        tg_tensor_release(res);
        res = back;
    }
    tg_entry *e;
    tg_tensor *out = tg__finish(op, 1, &x, res, &e);
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
/* m (a bool mask, released) converted to dt: 0/1 to multiply a gradient by. */
static tg_tensor *as_dtype_take(tg_tensor *m, tg_dtype dt) {
    if (!m) return NULL;
    tg_tensor *r = tg_cast(m, dt);
    tg_tensor_release(m);
    return r;
}
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
BINARY_ROW(add_i32, int32_t, WRAP32((uint32_t)a + (uint32_t)b))
BINARY_ROW(add_u8, uint8_t, WRAP8(a + b))
BINARY_ROW(add_b, uint8_t, a || b) /* bool + bool is logical or (NumPy) */
static const row_table add_rows = {add_f32, add_f64, add_i64, add_i32, add_u8, add_b};
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
TG_DEFINE_OP(add, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .forward = "c = a + b", .forward_tex = "c = a + b",
             .vjp = "da = dc, db = dc (summed over broadcast axes)",
             .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = \\bar c",
             .doc = "Elementwise sum with broadcasting.", .backward = add_vjp, .apply = apply_add,
             .examples = "3x4,3x4;2x3x4,4;T3x4,3x1;-,2x3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(sub, a - b, a - b)
BINARY_ROW(sub_i64, int64_t, tg__wrap_sub(a, b)) /* wraps like NumPy, no UB */
BINARY_ROW(sub_i32, int32_t, WRAP32((uint32_t)a - (uint32_t)b))
BINARY_ROW(sub_u8, uint8_t, WRAP8(a - b))
/* no bool row: NumPy refuses bool - bool (use ^ or logical_xor) */
static const row_table sub_rows = {sub_f32, sub_f64, sub_i64, sub_i32, sub_u8, NULL};
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
TG_DEFINE_OP(sub, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8",
             .forward = "c = a - b", .forward_tex = "c = a - b",
             .vjp = "da = dc, db = -dc", .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = -\\bar c",
             .doc = "Elementwise difference with broadcasting.", .backward = sub_vjp,
             .apply = apply_sub, .examples = "3x4,3x4;4,2x3x4;T3x4,1x4",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(mul, a * b, a * b)
BINARY_ROW(mul_i64, int64_t, tg__wrap_mul(a, b)) /* wraps like NumPy, no UB */
BINARY_ROW(mul_i32, int32_t, WRAP32((uint32_t)a * (uint32_t)b))
BINARY_ROW(mul_u8, uint8_t, WRAP8((unsigned)a * (unsigned)b))
BINARY_ROW(mul_b, uint8_t, a && b) /* bool * bool is logical and (NumPy) */
static const row_table mul_rows = {mul_f32, mul_f64, mul_i64, mul_i32, mul_u8, mul_b};
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
TG_DEFINE_OP(mul, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8,bool",
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
    if (!tg_dtype_is_float(dt)) dt = TG_FLOAT64; /* true division of ints or bools, as in NumPy */
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
TG_DEFINE_OP(div, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64 (integers and bool -> float64)",
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
BINARY_ROW(pow_i32, int32_t, WRAP32((uint64_t)ipow1(a, b)))
BINARY_ROW(pow_u8, uint8_t, WRAP8((uint64_t)ipow1(a, b)))
/* bool ** bool: NumPy gives int8, which tapegrad does not have; refused */
static const row_table pow_rows = {pow_f32, pow_f64, pow_i64, pow_i32, pow_u8, NULL};
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b) {
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "pow: input is NULL");
    tg_dtype dt = tg_dtype_promote(a->dtype, b->dtype);
    if (dt == TG_INT64 || dt == TG_INT32)
        for (int64_t i = 0; i < b->numel; i++)
            if (tg__get_flat_i64(b, i) < 0)
                return TG_FAIL(TG_ERR_VALUE,
                               "pow: Integers to negative integer powers are not allowed "
                               "(%s exponent %lld at position %lld; use a float base, e.g. "
                               "a.astype(tg.float64) ** b)",
                               tg_dtype_name(b->dtype), (long long)tg__get_flat_i64(b, i), (long long)i);
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
TG_DEFINE_OP(pow, .arity = 2, .cost = COST_TRANSCENDENTAL, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8",
             .forward = "c = a ** b", .forward_tex = "c = a^{b}",
             .vjp = "da = dc * b * a^(b-1) (0 where b == 0), db = dc * c * log(a) (0 where a == 0 and b >= 0)",
             .vjp_tex = "\\bar a = \\bar c \\odot b\\, a^{b-1}\\ (0 \\text{ where } b = 0),\\quad \\bar b = \\bar c \\odot c \\log a\\ (0 \\text{ where } a = 0, b \\ge 0)",
             .doc = "Elementwise power with broadcasting; int ** int stays integer, wrapping on overflow (NumPy), a negative integer exponent is a ValueError.",
             .backward = pow_vjp,
             .apply = apply_pow, .examples = "+3x4,3x4;+2x3,+3;+T3x4,-",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_ALL(maximum, (a > b || a != a) ? a : b)
static const row_table maximum_rows = {maximum_f32, maximum_f64, maximum_i64,
                                       maximum_i32, maximum_u8,  maximum_b};
BINARY_ROWS_ALL(minimum, (a < b || a != a) ? a : b)
static const row_table minimum_rows = {minimum_f32, minimum_f64, minimum_i64,
                                       minimum_i32, minimum_u8,  minimum_b};
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
TG_DEFINE_OP(maximum, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .forward = "c = max(a, b)", .forward_tex = "c = \\max(a, b)",
             .vjp = "da = dc * [a > b] (1/2 on ties), db = dc * [b > a] (1/2 on ties)",
             .vjp_tex = "\\bar a = \\bar c \\odot [a > b],\\quad \\bar b = \\bar c \\odot [b > a]",
             .doc = "Elementwise maximum (NaN propagates).", .backward = maximum_vjp,
             .apply = apply_maximum, .examples = "3x4,3x4;2x3,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(minimum, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .forward = "c = min(a, b)", .forward_tex = "c = \\min(a, b)",
             .vjp = "da = dc * [a < b] (1/2 on ties), db = dc * [b < a] (1/2 on ties)",
             .vjp_tex = "\\bar a = \\bar c \\odot [a < b],\\quad \\bar b = \\bar c \\odot [b < a]",
             .doc = "Elementwise minimum (NaN propagates).", .backward = minimum_vjp,
             .apply = apply_minimum, .examples = "3x4,3x4;2x3,3",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ===================================================================== */
/* Comparisons: bool out (NumPy, PyTorch), never differentiable           */
/* ===================================================================== */

/* A comparison row: inputs in the promoted dtype T, output bool (uint8_t). */
#define CMP_ROW(NAME, T, OP)                                                           \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        uint8_t *o = (uint8_t *)p[0];                                                  \
        const T *A = (const T *)p[1], *B = (const T *)p[2];                            \
        const int64_t z = (int64_t)sizeof(T);                                         \
        if (s[0] == 1 && s[1] == z && s[2] == z) {                                     \
            for (int64_t i = 0; i < n; i++) o[i] = A[i] OP B[i];                       \
        } else if (s[0] == 1 && s[1] == z && s[2] == 0) {                              \
            const T b = B[0];                                                          \
            for (int64_t i = 0; i < n; i++) o[i] = A[i] OP b;                          \
        } else {                                                                       \
            for (int64_t i = 0; i < n; i++)                                            \
                o[i * s[0]] = *(const T *)((const char *)A + i * s[1])                 \
                    OP * (const T *)((const char *)B + i * s[2]);                      \
        }                                                                              \
    }

#define COMPARISON(NAME, OP, TEXT)                                                     \
    CMP_ROW(NAME##_f32, float, OP)                                                     \
    CMP_ROW(NAME##_f64, double, OP)                                                    \
    CMP_ROW(NAME##_i64, int64_t, OP)                                                   \
    CMP_ROW(NAME##_i32, int32_t, OP)                                                   \
    CMP_ROW(NAME##_u8, uint8_t, OP)                                                    \
    static const row_table NAME##_rows = {NAME##_f32, NAME##_f64, NAME##_i64,          \
                                          NAME##_i32, NAME##_u8,  NAME##_u8};          \
    tg_tensor *tg_##NAME(tg_tensor *a, tg_tensor *b) {                                 \
        return binary_op_to(&tg_opdef_##NAME, a, b, promoted(a, b), TG_BOOL,            \
                            &NAME##_rows, false, false);                               \
    }                                                                                  \
    APPLY2(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 2, .diff_mask = 0,                                     \
                 .dtypes = "float32,float64,int64,int32,uint8,bool -> bool",           \
                 .forward = "c = [a " TEXT " b]", .forward_tex = "c = [a " TEXT " b]", \
                 .vjp = "not differentiable", .vjp_tex = "",                          \
                 .doc = "Elementwise comparison in the promoted dtype, giving a bool tensor.", \
                 .backward = NULL, .apply = apply_##NAME, .examples = "3x4,3x4;2x3,3;T3x4,4");

COMPARISON(eq, ==, "==")
COMPARISON(ne, !=, "!=")
COMPARISON(lt, <, "<")
COMPARISON(le, <=, "<=")
COMPARISON(gt, >, ">")
COMPARISON(ge, >=, ">=")

/* ---- where(cond, a, b) --------------------------------------------------- */

/* out = cond ? a : b along one row (cond converted to bool: nonzero is true,
 * whatever its dtype).  The contiguous rows (a and b each contiguous or a
 * broadcast scalar, as where(mask, x, 0.0) gives) load both values before
 * choosing: a select the compiler turns into a vector blend, where a
 * conditional load was a branch per element (2.6 ns an element on random
 * masks, about 1 ms for a 32x16x28x28 tensor).  A choice, no arithmetic:
 * the same bits on every path. */
#define WHERE_ROW(NAME, T)                                                             \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        const int64_t z = (int64_t)sizeof(T);                                         \
        if (s[0] == z && s[3] == 1 && (s[1] == z || s[1] == 0) &&                      \
            (s[2] == z || s[2] == 0)) {                                                \
            T *o = (T *)p[0];                                                          \
            const T *A = (const T *)p[1], *B = (const T *)p[2];                        \
            const uint8_t *C = (const uint8_t *)p[3];                                  \
            if (s[1] == z && s[2] == z) {                                              \
                for (int64_t i = 0; i < n; i++) {                                      \
                    T a = A[i], b = B[i];                                              \
                    o[i] = C[i] ? a : b;                                               \
                }                                                                      \
            } else if (s[1] == z) {                                                    \
                const T b = B[0];                                                      \
                for (int64_t i = 0; i < n; i++) {                                      \
                    T a = A[i];                                                        \
                    o[i] = C[i] ? a : b;                                               \
                }                                                                      \
            } else if (s[2] == z) {                                                    \
                const T a = A[0];                                                      \
                for (int64_t i = 0; i < n; i++) {                                      \
                    T b = B[i];                                                        \
                    o[i] = C[i] ? a : b;                                               \
                }                                                                      \
            } else {                                                                   \
                const T a = A[0], b = B[0];                                            \
                for (int64_t i = 0; i < n; i++) o[i] = C[i] ? a : b;                   \
            }                                                                          \
            return;                                                                    \
        }                                                                              \
        for (int64_t i = 0; i < n; i++)                                                \
            *(T *)(p[0] + i * s[0]) = *(const uint8_t *)(p[3] + i * s[3]) != 0         \
                                          ? *(const T *)(p[1] + i * s[1])              \
                                          : *(const T *)(p[2] + i * s[2]);             \
    }
WHERE_ROW(where_f32, float)
WHERE_ROW(where_f64, double)
WHERE_ROW(where_i64, int64_t)
WHERE_ROW(where_i32, int32_t)
WHERE_ROW(where_u8, uint8_t)
static const row_table where_rows = {where_f32, where_f64, where_i64, where_i32, where_u8, where_u8};

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
    tg_tensor *cc = bc ? tg__as_dtype(cond, TG_BOOL) : NULL;
    tg_tensor *out = cc ? tg_tensor_empty(nd, shape, dt) : NULL;
    if (out && out->numel > 0) {
        /* four operands iterated together: out, a, b, cond (as bool) */
        int64_t st[4][TG_MAX_DIMS];
        tg__bcast_strides_bytes(out, nd, shape, st[0]);
        tg__bcast_strides_bytes(ac, nd, shape, st[1]);
        tg__bcast_strides_bytes(bc, nd, shape, st[2]);
        tg__bcast_strides_bytes(cc, nd, shape, st[3]);
        char *base[4] = {tg_tensor_data(out), tg_tensor_data(ac), tg_tensor_data(bc),
                         tg_tensor_data(cc)};
        row3_fn fn = pick_row(&where_rows, dt);
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
TG_DEFINE_OP(where, .arity = 3, .diff_mask = 6, .dtypes = "float32,float64,int64,int32,uint8,bool (cond: any, nonzero is true)",
             .forward = "c = cond ? a : b", .forward_tex = "c = \\mathrm{cond}\\ ?\\ a : b",
             .vjp = "da = cond ? dc : 0, db = cond ? 0 : dc",
             .vjp_tex = "\\bar a = [\\mathrm{cond}] \\odot \\bar c,\\quad \\bar b = [\\lnot\\mathrm{cond}] \\odot \\bar c",
             .doc = "Pick from a where cond is true (a bool mask; any dtype's non-zero counts as true), else from b (broadcasting all three).",
             .backward = where_vjp, .apply = apply_where,
             .examples = "b3x4,3x4,3x4;b3x1,4,2x3x4",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ---- scalar forms --------------------------------------------------------- */

/* The dtype of a Python-like scalar s next to a (NumPy 2's weak scalars):
 * a float tensor keeps its dtype; an integer tensor keeps it for a whole s
 * and goes to float64 otherwise; a bool tensor goes to int64 for a whole s
 * (s is not a bool here) and float64 otherwise. */
static tg_dtype scalar_dtype(const tg_tensor *a, double s) {
    if (tg_dtype_is_float(a->dtype)) return a->dtype;
    if (s != floor(s)) return TG_FLOAT64;
    return a->dtype == TG_BOOL ? TG_INT64 : a->dtype;
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
UNARY_ROW(neg_i32, int32_t, WRAP32(0u - (uint32_t)x))
UNARY_ROW(neg_u8, uint8_t, WRAP8(0u - x)) /* -1 is 255, like NumPy */
static const row_table neg_rows = {neg_f32, neg_f64, neg_i64, neg_i32, neg_u8, NULL};
tg_tensor *tg_neg(tg_tensor *x) {
    if (x && x->dtype == TG_BOOL) /* NumPy refuses it too */
        return TG_FAIL(TG_ERR_TYPE, "neg: not supported for dtype bool (use ~ or logical_not)");
    return unary_op(&tg_opdef_neg, x, &neg_rows, NULL, false, false);
}
static tg_status neg_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    (void)e;
    CHECK(gi[0] = tg_neg(g));
    return TG_OK;
}
APPLY1(neg)
TG_DEFINE_OP(neg, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8",
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
UNARY_ROW(abs_i32, int32_t, x < 0 ? WRAP32(0u - (uint32_t)x) : x)
UNARY_ROW(abs_u8, uint8_t, x)
static const row_table abs_rows = {abs_f32, abs_f64, abs_i64, abs_i32, abs_u8, abs_u8};
tg_tensor *tg_abs(tg_tensor *x) { return unary_op(&tg_opdef_abs, x, &abs_rows, NULL, true, false); }
static tg_status abs_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *z = scal(0.0, x);
    CHECK(z);
    tg_tensor *sign = take2(tg_sub, as_dtype_take(tg_gt(x, z), x->dtype),
                            as_dtype_take(tg_lt(x, z), x->dtype)); /* sign(x), 0 at 0 */
    tg_tensor_release(z);
    CHECK(gi[0] = mul_take(g, sign));
    return TG_OK;
}
APPLY1(abs)
TG_DEFINE_OP(abs, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8,bool",
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
             .functional = true,
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
             .functional = true,
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
             .functional = true,
             .forward = "y = x * sigmoid(x)", .forward_tex = "y = x \\odot \\sigma(x)",
             .vjp = "dx = dy * (s + x * s * (1 - s)), s = sigmoid(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot (s + x \\odot s \\odot (1 - s))",
             .doc = "SiLU (swish), x * sigmoid(x); a composite op: the tape records its sigmoid and mul.",
             .apply = apply_silu, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(relu, x > 0 ? x : (x != x ? x : 0.0f), x > 0 ? x : (x != x ? x : 0.0))
static const row_table relu_rows = {relu_f32, relu_f64, NULL};
tg_tensor *tg_relu(tg_tensor *x) { return unary_op(&tg_opdef_relu, x, &relu_rows, NULL, true, false); }
/* The VJP g * (x > 0) in one pass: g where x > 0, else g * 0 (0, or NaN
 * where g is infinite or NaN: the same bits as the product with the mask). */
BINARY_ROWS_F(relu_grad, b > 0 ? a : a * 0.0f, b > 0 ? a : a * 0.0)
static const row_table relu_grad_rows = {relu_grad_f32, relu_grad_f64, NULL};
static tg_status relu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    if (!tg_grad_enabled() && g->dtype == x->dtype) { /* no create_graph: one fused, threaded pass */
        if (tg__grad_writable(g) && pick_row(&relu_grad_rows, g->dtype) &&
            tg__same_shape(g->ndim, g->shape, x->ndim, x->shape)) {
            /* the engine's private gradient (tg__vjp_writable_grad): written
             * over, element by element, the same bits as a new buffer */
            pass3(g, g, x, pick_row(&relu_grad_rows, g->dtype), NULL, 1);
            tg_tensor_retain(g);
            gi[0] = g;
            return TG_OK;
        }
        CHECK(gi[0] = binary_kernel("relu backward", g, x, x->dtype, x->dtype, &relu_grad_rows, NULL, 1));
        return TG_OK;
    }
    tg_tensor *z = scal(0.0, x);
    CHECK(z);
    tg_tensor *mask = tg_gt(x, z);
    tg_tensor_release(z);
    CHECK(gi[0] = mul_take(g, mask));
    return TG_OK;
}
APPLY1(relu)
TG_DEFINE_OP(relu, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .functional = true,
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
    tg_tensor *m = as_dtype_take(tg_gt(x, z), x->dtype);
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
             .functional = true,
             .forward = "y = x if x > 0 else slope * x",
             .forward_tex = "y = \\begin{cases} x & x > 0 \\\\ \\alpha x & x \\le 0\\end{cases}",
             .vjp = "dx = dy * (1 if x > 0 else slope)",
             .vjp_tex = "\\bar x = \\bar y \\odot (\\alpha + (1-\\alpha)[x > 0])",
             .doc = "Leaky ReLU with parameter negative_slope (f0).", .backward = leaky_relu_vjp,
             .apply = apply_leaky_relu, .examples = "~3x4|f0=0.1;~T2x3|f0=0.2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* float32: the vector erf of kernels/vmath.h; float64: libm's erf (a vector
 * float64 erf would need polynomials about twice as long for its 53 bits,
 * and float64 is the precision of gradchecks, not of training steps). */
VMATH_ROW(erf)
UNARY_ROW(erf_f64, double, erf(x))
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
             .doc = "The error function. float32: vectorized kernel, error <= 1.5 ulp (kernels/vmath.h); float64: libm.", .backward = erf_vjp, .apply = apply_erf,
             .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* gelu: float32 through the vector kernels (the erf above; the gradient
 * g * (Phi(x) + x phi(x)) in one pass); float64 through libm.  The cost
 * class (COST_TRANSCENDENTAL, 8 adds an element) is what was measured for
 * the vector forward and the fused gradient on (16, 64, 512) float32: 0.59
 * and 0.75 ms against 0.07 ms for a neg, one thread; so both split across
 * threads from 2 x 16384 elements, as exp does. */
VMATH_ROW(gelu)
UNARY_ROW(gelu_f64, double, 0.5 * x * (1.0 + erf(x * 0.7071067811865476)))
static const row_table gelu_rows = {gelu_f32, gelu_f64, NULL};
VMATH_GRAD_ROW(gelu_grad)
BINARY_ROW(gelu_grad_f64, double,
           a * (0.5 * (1.0 + erf(b * 0.7071067811865476)) + b * (0.3989422804014327 * exp(-0.5 * b * b))))
static const row_table gelu_grad_rows = {gelu_grad_f32, gelu_grad_f64, NULL};
/* A recorded float32 gelu of a contiguous x computes its derivative d in the
 * same pass (vmath's gelu_fwd_grad_f32: e^(-x^2/2) and the tail polynomial
 * once for both) and saves it, so that the first-order backward is g * d,
 * one multiply, instead of a second pass of the exponential and the
 * polynomial: the bits of the fused gradient kernel, since it computes
 * g * d from the same d.  One more saved tensor of x's size until the
 * backward (2 MiB for the GPT step's (16, 64, 512)).  There, one thread,
 * best of 7 x 50, old and new builds interleaved: the recorded forward
 * 0.322 -> 0.374 ms, the backward 0.395 -> 0.133 ms, both 0.717 -> 0.508
 * ms (two a step).  A gelu that is not recorded (no_grad, x not requiring
 * grad) or of a strided x takes the plain forward. */
static void gelu_fg_rows(int64_t n, char **p, const int64_t *s, void *ctx) {
    (void)s;
    (void)ctx; /* contiguous float32 (the caller checks): one row of all three */
    tg_vmath()->gelu_fwd_grad_f32(n, (const float *)p[2], (float *)p[0], (float *)p[1]);
}
tg_tensor *tg_gelu(tg_tensor *x) {
    if (!x || x->dtype != TG_FLOAT32 || !x->requires_grad || !tg__should_record(1, &x) ||
        !tg_tensor_is_contiguous(x) || x->numel == 0)
        return unary_op(&tg_opdef_gelu, x, &gelu_rows, NULL, true, false);
    tg_tensor *y = tg_tensor_empty(x->ndim, x->shape, TG_FLOAT32);
    tg_tensor *d = y ? tg_tensor_empty(x->ndim, x->shape, TG_FLOAT32) : NULL;
    if (!d) {
        tg_tensor_release(y);
        return NULL;
    }
    pass3(y, d, x, gelu_fg_rows, NULL, tg_opdef_gelu.cost);
    tg_entry *e;
    tg_tensor *out = tg__finish(&tg_opdef_gelu, 1, &x, y, &e);
    if (e && (tg__save(e, x) || tg__save(e, d))) {
        tg_tensor_release(out);
        out = NULL;
    }
    tg_tensor_release(d);
    return out;
}
static tg_status gelu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    if (!tg_grad_enabled() && g->dtype == x->dtype && e->n_saved > 1) { /* d saved by the forward */
        tg_tensor *d = SAVED(1);
        CHECK(d);
        CHECK(gi[0] = tg_mul(g, d));
        return TG_OK;
    }
    if (!tg_grad_enabled() && g->dtype == x->dtype) { /* no create_graph: one fused, threaded pass */
        CHECK(gi[0] = binary_kernel("gelu backward", g, x, x->dtype, x->dtype, &gelu_grad_rows,
                                    NULL, tg_opdef_gelu.cost));
        return TG_OK;
    }
    /* create_graph: the same formula with ops, so that it can be differentiated again */
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
             .functional = true,
             .forward = "y = x * Phi(x)", .forward_tex = "y = x\\,\\Phi(x)",
             .vjp = "dx = dy * (Phi(x) + x * phi(x))",
             .vjp_tex = "\\bar x = \\bar y \\odot (\\Phi(x) + x\\,\\varphi(x))",
             .doc = "Gaussian error linear unit (exact, with erf). float32: vectorized kernels (kernels/vmath.h), error <= 2 ulp of x, gradient in one pass; float64: libm.", .backward = gelu_vjp,
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
             .functional = true,
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
UNARY_ROW(clip_i32, int32_t, WRAP32((uint64_t)clip1_i(x, prm[0], prm[1])))
UNARY_ROW(clip_u8, uint8_t, WRAP8((uint64_t)clip1_i(x, prm[0], prm[1])))
static const row_table clip_rows = {clip_f32, clip_f64, clip_i64, clip_i32, clip_u8, NULL};
tg_tensor *tg_clip(tg_tensor *x, double lo, double hi) {
    if (x && x->dtype == TG_BOOL)
        return TG_FAIL(TG_ERR_TYPE, "clip: not supported for dtype bool (expected float32, float64, int64, int32 or uint8)");
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
TG_DEFINE_OP(clip, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8",
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
    return tg_cast(in[0], (tg_dtype)tg__int_param(p->i[0]));
}
TG_DEFINE_OP(cast, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64,int32,uint8,bool",
             .forward = "y = x as dtype", .forward_tex = "y = \\operatorname{cast}(x)",
             .vjp = "dx = dy cast back to x's dtype", .vjp_tex = "\\bar x = \\operatorname{cast}^{-1}(\\bar y)",
             .doc = "Convert to another dtype (i0: 0 float32, 1 float64, 2 int64, 3 bool, 4 int32, 5 uint8); floats to ints truncate toward zero, ints wrap to narrower ints, anything non-zero is true; differentiable between floats.",
             .backward = cast_vjp, .apply = apply_cast, .examples = "3x4|i0=1;T2x3|i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* Elementwise math (issue 14): inverse trigonometric and hyperbolic      */
/* functions, logs and exponentials, rounding, sign conventions of the   */
/* remainders and divisions, lerp, nan_to_num                              */
/* ===================================================================== */

#include <float.h> /* FLT_MAX, DBL_MAX: nan_to_num's defaults */
#include <stdio.h> /* snprintf: softmin's errors */

/* exp(x), releasing x */
static tg_tensor *exp_take(tg_tensor *x) {
    tg_tensor *r = x ? tg_exp(x) : NULL;
    tg_tensor_release(x);
    return r;
}

/* A float unary op through libm: its row kernels, its row table and its
 * public function (int64 inputs compute in float64, as NumPy). */
#define MATH_UNARY(NAME, EXPR_F, EXPR_D, SAVE_IN, SAVE_OUT)                            \
    UNARY_ROWS_F(NAME, EXPR_F, EXPR_D)                                                 \
    static const row_table NAME##_rows = {NAME##_f32, NAME##_f64, NULL};               \
    tg_tensor *tg_##NAME(tg_tensor *x) {                                               \
        return unary_op(&tg_opdef_##NAME, x, &NAME##_rows, NULL, SAVE_IN, SAVE_OUT);   \
    }                                                                                  \
    APPLY1(NAME)

/* 1 - x^2 (s = -1) or x^2 - 1 (s = 1) or x^2 + 1 (s = 2, meaning +1) */
static tg_tensor *sq_shift(tg_tensor *x, int s) {
    tg_tensor *x2 = tg_mul(x, x);
    if (!x2) return NULL;
    tg_tensor *r = s == -1 ? tg_rsub_scalar(x2, 1.0) : tg_add_scalar(x2, s == 1 ? -1.0 : 1.0);
    tg_tensor_release(x2);
    return r;
}
/* rsqrt(x), releasing x */
static tg_tensor *rsqrt_take(tg_tensor *x) {
    tg_tensor *r = x ? tg_rsqrt(x) : NULL;
    tg_tensor_release(x);
    return r;
}
/* g / d, releasing d */
static tg_tensor *div_take(tg_tensor *g, tg_tensor *d) {
    if (!d) return NULL;
    tg_tensor *r = tg_div(g, d);
    tg_tensor_release(d);
    return r;
}
/* The output of the entry times a constant, plus a constant: c * y + k. */
static tg_tensor *out_affine(tg_entry *e, double c, double k) {
    tg_tensor *y = tg_entry_output(e);
    if (!y) return NULL;
    tg_tensor *cy = c == 1.0 ? (tg_tensor_retain(y), y) : tg_mul_scalar(y, c);
    tg_tensor_release(y);
    if (!cy || k == 0.0) return cy;
    tg_tensor *r = tg_add_scalar(cy, k);
    tg_tensor_release(cy);
    return r;
}

/* ---- tan, asin, acos, atan ----------------------------------------------- */

MATH_UNARY(tan, tanf(x), tan(x), false, true)
static tg_status tan_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *d = sq_shift(y, 2); /* 1 + y^2 */
    tg_tensor_release(y);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
TG_DEFINE_OP(tan, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = tan(x)", .forward_tex = "y = \\tan x", .vjp = "dx = dy * (1 + y^2)",
             .vjp_tex = "\\bar x = \\bar y \\odot (1 + y^{2})", .doc = "Tangent.",
             .backward = tan_vjp, .apply = apply_tan, .examples = "u3x4;uT2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

MATH_UNARY(asin, asinf(x), asin(x), true, false)
MATH_UNARY(acos, acosf(x), acos(x), true, false)
/* dy / sqrt(1 - x^2), negated for acos (PyTorch's formula: inf at |x| = 1) */
static tg_status asin_acos_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, bool neg) {
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *r = take2(tg_mul, neg ? tg_neg(g) : (tg_tensor_retain(g), g), rsqrt_take(sq_shift(x, -1)));
    CHECK(gi[0] = r);
    return TG_OK;
}
static tg_status asin_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return asin_acos_vjp(e, g, gi, false);
}
static tg_status acos_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return asin_acos_vjp(e, g, gi, true);
}
TG_DEFINE_OP(asin, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = asin(x)", .forward_tex = "y = \\arcsin x",
             .vjp = "dx = dy / sqrt(1 - x^2)", .vjp_tex = "\\bar x = \\bar y \\oslash \\sqrt{1 - x^{2}}",
             .doc = "Inverse sine (NumPy: arcsin); NaN outside [-1, 1].", .backward = asin_vjp,
             .apply = apply_asin, .examples = "u3x4;uT2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(acos, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = acos(x)", .forward_tex = "y = \\arccos x",
             .vjp = "dx = -dy / sqrt(1 - x^2)", .vjp_tex = "\\bar x = -\\bar y \\oslash \\sqrt{1 - x^{2}}",
             .doc = "Inverse cosine (NumPy: arccos); NaN outside [-1, 1].", .backward = acos_vjp,
             .apply = apply_acos, .examples = "u3x4;uT2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

MATH_UNARY(atan, atanf(x), atan(x), true, false)
static tg_status atan_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = div_take(g, sq_shift(x, 2)));
    return TG_OK;
}
TG_DEFINE_OP(atan, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = atan(x)", .forward_tex = "y = \\arctan x",
             .vjp = "dx = dy / (1 + x^2)", .vjp_tex = "\\bar x = \\bar y \\oslash (1 + x^{2})",
             .doc = "Inverse tangent (NumPy: arctan).", .backward = atan_vjp, .apply = apply_atan,
             .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- sinh, cosh, asinh, acosh, atanh ------------------------------------- */

MATH_UNARY(sinh, sinhf(x), sinh(x), true, false)
MATH_UNARY(cosh, coshf(x), cosh(x), true, false)
static tg_status sinh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, tg_cosh(x)));
    return TG_OK;
}
static tg_status cosh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, tg_sinh(x)));
    return TG_OK;
}
TG_DEFINE_OP(sinh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = sinh(x)", .forward_tex = "y = \\sinh x", .vjp = "dx = dy * cosh(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\cosh x", .doc = "Hyperbolic sine.",
             .backward = sinh_vjp, .apply = apply_sinh, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(cosh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = cosh(x)", .forward_tex = "y = \\cosh x", .vjp = "dx = dy * sinh(x)",
             .vjp_tex = "\\bar x = \\bar y \\odot \\sinh x", .doc = "Hyperbolic cosine.",
             .backward = cosh_vjp, .apply = apply_cosh, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

MATH_UNARY(asinh, asinhf(x), asinh(x), true, false)
MATH_UNARY(acosh, acoshf(x), acosh(x), true, false)
MATH_UNARY(atanh, atanhf(x), atanh(x), true, false)
static tg_status asinh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, rsqrt_take(sq_shift(x, 2))));
    return TG_OK;
}
static tg_status acosh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, rsqrt_take(sq_shift(x, 1))));
    return TG_OK;
}
static tg_status atanh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = div_take(g, sq_shift(x, -1)));
    return TG_OK;
}
TG_DEFINE_OP(asinh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = asinh(x)", .forward_tex = "y = \\operatorname{arsinh} x",
             .vjp = "dx = dy / sqrt(x^2 + 1)", .vjp_tex = "\\bar x = \\bar y \\oslash \\sqrt{x^{2} + 1}",
             .doc = "Inverse hyperbolic sine (NumPy: arcsinh).", .backward = asinh_vjp,
             .apply = apply_asinh, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(acosh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = acosh(x)", .forward_tex = "y = \\operatorname{arcosh} x",
             .vjp = "dx = dy / sqrt(x^2 - 1)", .vjp_tex = "\\bar x = \\bar y \\oslash \\sqrt{x^{2} - 1}",
             .doc = "Inverse hyperbolic cosine (NumPy: arccosh); NaN below 1, gradient inf at 1.",
             .backward = acosh_vjp, .apply = apply_acosh, .examples = "g3x4;gT2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(atanh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = atanh(x)", .forward_tex = "y = \\operatorname{artanh} x",
             .vjp = "dx = dy / (1 - x^2)", .vjp_tex = "\\bar x = \\bar y \\oslash (1 - x^{2})",
             .doc = "Inverse hyperbolic tangent (NumPy: arctanh); +-inf at +-1, gradient inf there.",
             .backward = atanh_vjp, .apply = apply_atanh, .examples = "u3x4;uT2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- log2, log10, log1p, expm1, exp2 ------------------------------------- */

#define LN2 0.6931471805599453
#define LN10 2.302585092994046
MATH_UNARY(log2, log2f(x), log2(x), true, false)
MATH_UNARY(log10, log10f(x), log10(x), true, false)
MATH_UNARY(log1p, log1pf(x), log1p(x), true, false)
/* dy / (c x + k) */
static tg_status log_like_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, double c, double k) {
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *d = c == 1.0 ? (tg_tensor_retain(x), x) : tg_mul_scalar(x, c);
    if (d && k != 0.0) {
        tg_tensor *d2 = tg_add_scalar(d, k);
        tg_tensor_release(d);
        d = d2;
    }
    CHECK(gi[0] = div_take(g, d));
    return TG_OK;
}
static tg_status log2_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return log_like_vjp(e, g, gi, LN2, 0.0);
}
static tg_status log10_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return log_like_vjp(e, g, gi, LN10, 0.0);
}
static tg_status log1p_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return log_like_vjp(e, g, gi, 1.0, 1.0);
}
TG_DEFINE_OP(log2, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = log2(x)", .forward_tex = "y = \\log_2 x", .vjp = "dx = dy / (x ln 2)",
             .vjp_tex = "\\bar x = \\bar y \\oslash (x \\ln 2)", .doc = "Base-2 logarithm.",
             .backward = log2_vjp, .apply = apply_log2, .examples = "+3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(log10, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = log10(x)", .forward_tex = "y = \\log_{10} x", .vjp = "dx = dy / (x ln 10)",
             .vjp_tex = "\\bar x = \\bar y \\oslash (x \\ln 10)", .doc = "Base-10 logarithm.",
             .backward = log10_vjp, .apply = apply_log10, .examples = "+3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(log1p, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = log(1 + x)", .forward_tex = "y = \\log(1 + x)", .vjp = "dx = dy / (1 + x)",
             .vjp_tex = "\\bar x = \\bar y \\oslash (1 + x)",
             .doc = "log(1 + x), accurate for small x; -inf at -1 (gradient inf).", .backward = log1p_vjp,
             .apply = apply_log1p, .examples = "u3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

MATH_UNARY(expm1, expm1f(x), expm1(x), false, true)
MATH_UNARY(exp2, exp2f(x), exp2(x), false, true)
static tg_status expm1_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = mul_take(g, out_affine(e, 1.0, 1.0)));
    return TG_OK;
}
static tg_status exp2_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = mul_take(g, out_affine(e, LN2, 0.0)));
    return TG_OK;
}
TG_DEFINE_OP(expm1, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = exp(x) - 1", .forward_tex = "y = e^{x} - 1", .vjp = "dx = dy * (y + 1)",
             .vjp_tex = "\\bar x = \\bar y \\odot (y + 1)", .doc = "exp(x) - 1, accurate for small x.",
             .backward = expm1_vjp, .apply = apply_expm1, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(exp2, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = 2^x", .forward_tex = "y = 2^{x}", .vjp = "dx = dy * y * ln 2",
             .vjp_tex = "\\bar x = \\bar y \\odot y \\ln 2", .doc = "Base-2 exponential.",
             .backward = exp2_vjp, .apply = apply_exp2, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- rsqrt, reciprocal, square --------------------------------------------- */

MATH_UNARY(rsqrt, 1.0f / sqrtf(x), 1.0 / sqrt(x), false, true)
static tg_status rsqrt_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    /* -0.5 y^3 */
    tg_tensor *y3 = take2(tg_mul, tg_mul(y, y), (tg_tensor_retain(y), y));
    tg_tensor_release(y);
    tg_tensor *d = y3 ? tg_mul_scalar(y3, -0.5) : NULL;
    tg_tensor_release(y3);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
TG_DEFINE_OP(rsqrt, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = 1 / sqrt(x)", .forward_tex = "y = 1 / \\sqrt{x}", .vjp = "dx = -dy * y^3 / 2",
             .vjp_tex = "\\bar x = -\\tfrac12 \\bar y \\odot y^{3}",
             .doc = "Reciprocal square root; inf at 0 (gradient -inf).", .backward = rsqrt_vjp,
             .apply = apply_rsqrt, .examples = "+3x4;+T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

MATH_UNARY(reciprocal, 1.0f / x, 1.0 / x, false, true)
static tg_status reciprocal_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    tg_tensor *y2 = tg_mul(y, y);
    tg_tensor_release(y);
    tg_tensor *d = y2 ? tg_neg(y2) : NULL;
    tg_tensor_release(y2);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
TG_DEFINE_OP(reciprocal, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64, as PyTorch)",
             .forward = "y = 1 / x", .forward_tex = "y = 1 / x", .vjp = "dx = -dy * y^2",
             .vjp_tex = "\\bar x = -\\bar y \\odot y^{2}", .doc = "Elementwise 1 / x.",
             .backward = reciprocal_vjp, .apply = apply_reciprocal, .examples = "~3x4;~T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(square, x * x, x * x)
UNARY_ROW(square_i64, int64_t, tg__wrap_mul(x, x)) /* wraps like NumPy */
static const row_table square_rows = {square_f32, square_f64, square_i64};
tg_tensor *tg_square(tg_tensor *x) { return unary_op(&tg_opdef_square, x, &square_rows, NULL, true, false); }
static tg_status square_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, tg_mul_scalar(x, 2.0)));
    return TG_OK;
}
APPLY1(square)
TG_DEFINE_OP(square, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x^2", .forward_tex = "y = x^{2}", .vjp = "dx = dy * 2x",
             .vjp_tex = "\\bar x = \\bar y \\odot 2x", .doc = "Elementwise x * x (int64 stays int64 and wraps, as NumPy).",
             .backward = square_vjp, .apply = apply_square, .examples = "3x4;T2x3;-",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- floor, ceil, trunc, round, sign: piecewise constant ------------------ */

/* Their gradient is zero wherever it exists (PyTorch's convention: zero
 * everywhere, also at the jumps). */
static tg_status zero_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    for (int i = 0; i < e->n_inputs && i < 2; i++)
        if (NEED(i)) CHECK(gi[i] = tg__zeros_like(g));
    return TG_OK;
}
#define ROUNDING(NAME, EXPR_F, EXPR_D, DOC, FTEX)                                       \
    UNARY_ROWS_F(NAME, EXPR_F, EXPR_D)                                                 \
    UNARY_ROW(NAME##_i64, int64_t, x) /* integers are already whole, as NumPy */      \
    static const row_table NAME##_rows = {NAME##_f32, NAME##_f64, NAME##_i64};         \
    tg_tensor *tg_##NAME(tg_tensor *x) {                                               \
        return unary_op(&tg_opdef_##NAME, x, &NAME##_rows, NULL, false, false);        \
    }                                                                                  \
    APPLY1(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",  \
                 .forward = "y = " #NAME "(x)", .forward_tex = "y = " FTEX,            \
                 .vjp = "dx = 0", .vjp_tex = "\\bar x = 0", .doc = DOC,                \
                 .backward = zero_vjp, .apply = apply_##NAME, .examples = "3x4;T2x3",  \
                 .grad_out_tex = NULL, .grad_in_tex = "\\bar x");
ROUNDING(floor, floorf(x), floor(x),
         "Round down to a whole number (int64 stays int64); gradient zero, as PyTorch.",
         "\\lfloor x \\rfloor")
ROUNDING(ceil, ceilf(x), ceil(x),
         "Round up to a whole number (int64 stays int64); gradient zero, as PyTorch.",
         "\\lceil x \\rceil")
ROUNDING(trunc, truncf(x), trunc(x),
         "Round towards zero (int64 stays int64); gradient zero, as PyTorch.",
         "\\operatorname{trunc}(x)")

/* round(x, decimals): NumPy's and PyTorch's rule, half to even, scaling by
 * 10^decimals first (x * 10^d for d >= 0, x / 10^-d for d < 0) in the
 * dtype of x.  prm[0] = decimals. */
static inline float round_f(float x, double d) {
    if (d == 0) return rintf(x);
    if (d > 0) {
        float p = (float)pow(10.0, d);
        return rintf(x * p) / p;
    }
    float p = (float)pow(10.0, -d);
    return rintf(x / p) * p;
}
static inline double round_d(double x, double d) {
    if (d == 0) return rint(x);
    if (d > 0) {
        double p = pow(10.0, d);
        return rint(x * p) / p;
    }
    double p = pow(10.0, -d);
    return rint(x / p) * p;
}
static inline int64_t round_i(int64_t x, double d) {
    if (d >= 0) return x;
    double p = pow(10.0, -d);
    return tg__f2i(rint((double)x / p) * p);
}
UNARY_ROWS_F(round, round_f(x, prm[0]), round_d(x, prm[0]))
UNARY_ROW(round_i64, int64_t, round_i(x, prm[0]))
static const row_table round_rows = {round_f32, round_f64, round_i64};
tg_tensor *tg_round(tg_tensor *x, int decimals) {
    if (decimals > 300 || decimals < -300)
        return TG_FAIL(TG_ERR_VALUE, "round: decimals=%d is out of range (expected -300..300)", decimals);
    double prm[2] = {(double)decimals, 0};
    return unary_op(&tg_opdef_round, x, &round_rows, prm, false, false);
}
static tg_tensor *apply_round(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_round(in[0], tg__int_param(p->i[0]));
}
TG_DEFINE_OP(round, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = round(x * 10^d) / 10^d, halves to even",
             .forward_tex = "y = \\operatorname{round}(x\\,10^{d})\\,10^{-d}",
             .vjp = "dx = 0", .vjp_tex = "\\bar x = 0",
             .doc = "Round half to even (as NumPy and PyTorch) to decimals (i0) places; gradient zero.",
             .backward = zero_vjp, .apply = apply_round, .examples = "3x4;T2x3|i0=2;3x4|i0=-1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar x");

/* sign: -1, 0 or 1; NaN stays NaN and the sign of a zero is kept (NumPy) */
UNARY_ROWS_F(sign, x > 0 ? 1.0f : x < 0 ? -1.0f : x, x > 0 ? 1.0 : x < 0 ? -1.0 : x)
UNARY_ROW(sign_i64, int64_t, (int64_t)(x > 0) - (int64_t)(x < 0))
static const row_table sign_rows = {sign_f32, sign_f64, sign_i64};
tg_tensor *tg_sign(tg_tensor *x) { return unary_op(&tg_opdef_sign, x, &sign_rows, NULL, false, false); }
APPLY1(sign)
TG_DEFINE_OP(sign, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = sign(x)", .forward_tex = "y = \\operatorname{sign}(x)",
             .vjp = "dx = 0", .vjp_tex = "\\bar x = 0",
             .doc = "-1, 0 or 1 by the sign of x (NaN stays NaN, as NumPy; PyTorch gives 0); gradient zero.",
             .backward = zero_vjp, .apply = apply_sign, .examples = "3x4;T2x3",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar x");

/* ---- binary math: atan2, copysign, logaddexp, hypot ---------------------- */

/* The promoted dtype of a float function of two inputs: integers compute in
 * float64, uint8 and bool in float32 (NumPy's float16, which tapegrad
 * lacks: tg_dtype_float_of). */
static tg_dtype promoted_float(const tg_tensor *a, const tg_tensor *b) {
    tg_dtype dt = promoted(a, b);
    return tg_dtype_is_float(dt) ? dt : tg_dtype_float_of(dt); /* uint8, bool: float32 */
}

BINARY_ROWS_F(atan2, atan2f(a, b), atan2(a, b))
static const row_table atan2_rows = {atan2_f32, atan2_f64, NULL};
tg_tensor *tg_atan2(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_atan2, a, b, promoted_float(a, b), &atan2_rows, true, false);
}
static tg_status atan2_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    tg_tensor *den = take2(tg_add, tg_mul(a, a), tg_mul(b, b));
    tg_tensor *gd = den ? tg_div(g, den) : NULL; /* dc / (a^2 + b^2) */
    tg_tensor_release(den);
    CHECK(gd);
    if (NEED(0)) gi[0] = tg_mul(gd, b);
    if (NEED(1)) gi[1] = take2(tg_mul, tg_neg(gd), (tg_tensor_retain(a), a));
    tg_tensor_release(gd);
    if ((NEED(0) && !gi[0]) || (NEED(1) && !gi[1])) return tg_error_status();
    return TG_OK;
}
APPLY2(atan2)
TG_DEFINE_OP(atan2, .arity = 2, .cost = COST_TRANSCENDENTAL, .diff_mask = 3, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "c = atan2(a, b)", .forward_tex = "c = \\operatorname{atan2}(a, b)",
             .vjp = "da = dc * b / (a^2 + b^2), db = -dc * a / (a^2 + b^2)",
             .vjp_tex = "\\bar a = \\bar c \\odot b \\oslash (a^{2} + b^{2}),\\quad \\bar b = -\\bar c \\odot a \\oslash (a^{2} + b^{2})",
             .doc = "The angle of the point (b, a), in (-pi, pi] (NumPy: arctan2), with broadcasting.",
             .backward = atan2_vjp, .apply = apply_atan2, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(copysign, copysignf(a, b), copysign(a, b))
static const row_table copysign_rows = {copysign_f32, copysign_f64, NULL};
tg_tensor *tg_copysign(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_copysign, a, b, promoted_float(a, b), &copysign_rows, true, true);
}
static tg_status copysign_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0);
    CHECK(a);
    if (NEED(0)) {
        /* dc * c / a: +-1, and 0 where a == 0 (PyTorch) */
        tg_tensor *c = tg_entry_output(e);
        tg_tensor *r = c ? take2(tg_div, c, (tg_tensor_retain(a), a)) : NULL;
        tg_tensor *z = scal(0.0, a);
        tg_tensor *mask = z ? tg_eq(a, z) : NULL;
        tg_tensor_release(z);
        CHECK(gi[0] = zero_where(mask, mul_take(g, r)));
    }
    if (NEED(1)) CHECK(gi[1] = tg__zeros_like(g));
    return TG_OK;
}
APPLY2(copysign)
TG_DEFINE_OP(copysign, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "c = |a| with the sign of b", .forward_tex = "c = |a| \\operatorname{sgn}(b)",
             .vjp = "da = dc * c / a (0 where a == 0), db = 0",
             .vjp_tex = "\\bar a = \\bar c \\odot c \\oslash a,\\quad \\bar b = 0",
             .doc = "The magnitude of a with the sign of b (also of -0.0), with broadcasting.",
             .backward = copysign_vjp, .apply = apply_copysign, .examples = "~3x4,3x4;~2x3x4,4;~T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* log(exp(a) + exp(b)) = max + log1p(exp(-|a - b|)), with equal infinities
 * giving themselves (NumPy) */
static inline double logaddexp_d(double a, double b) {
    if (a == b) return a + LN2;
    double d = a - b;
    if (d > 0) return a + log1p(exp(-d));
    if (d <= 0) return b + log1p(exp(d));
    return d; /* NaN */
}
static inline float logaddexp_f(float a, float b) {
    if (a == b) return a + (float)LN2;
    float d = a - b;
    if (d > 0) return a + log1pf(expf(-d));
    if (d <= 0) return b + log1pf(expf(d));
    return d;
}
BINARY_ROWS_F(logaddexp, logaddexp_f(a, b), logaddexp_d(a, b))
static const row_table logaddexp_rows = {logaddexp_f32, logaddexp_f64, NULL};
tg_tensor *tg_logaddexp(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_logaddexp, a, b, promoted_float(a, b), &logaddexp_rows, true, true);
}
static tg_status logaddexp_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    tg_tensor *c = tg_entry_output(e);
    CHECK(c);
    /* da = dc * exp(a - c), db = dc * exp(b - c) */
    if (NEED(0)) gi[0] = mul_take(g, exp_take(tg_sub(a, c)));
    if (NEED(1)) gi[1] = mul_take(g, exp_take(tg_sub(b, c)));
    tg_tensor_release(c);
    if ((NEED(0) && !gi[0]) || (NEED(1) && !gi[1])) return tg_error_status();
    return TG_OK;
}
APPLY2(logaddexp)
TG_DEFINE_OP(logaddexp, .arity = 2, .cost = COST_TRANSCENDENTAL, .diff_mask = 3, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "c = log(exp(a) + exp(b))", .forward_tex = "c = \\log(e^{a} + e^{b})",
             .vjp = "da = dc * exp(a - c), db = dc * exp(b - c)",
             .vjp_tex = "\\bar a = \\bar c \\odot e^{a - c},\\quad \\bar b = \\bar c \\odot e^{b - c}",
             .doc = "log(exp(a) + exp(b)) without overflow, with broadcasting.",
             .backward = logaddexp_vjp, .apply = apply_logaddexp, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

BINARY_ROWS_F(hypot, hypotf(a, b), hypot(a, b))
static const row_table hypot_rows = {hypot_f32, hypot_f64, NULL};
tg_tensor *tg_hypot(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_hypot, a, b, promoted_float(a, b), &hypot_rows, true, true);
}
static tg_status hypot_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    tg_tensor *c = tg_entry_output(e);
    tg_tensor *gc = c ? tg_div(g, c) : NULL; /* dc / c */
    tg_tensor_release(c);
    CHECK(gc);
    if (NEED(0)) gi[0] = tg_mul(gc, a);
    if (NEED(1)) gi[1] = tg_mul(gc, b);
    tg_tensor_release(gc);
    if ((NEED(0) && !gi[0]) || (NEED(1) && !gi[1])) return tg_error_status();
    return TG_OK;
}
APPLY2(hypot)
TG_DEFINE_OP(hypot, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "c = sqrt(a^2 + b^2)", .forward_tex = "c = \\sqrt{a^{2} + b^{2}}",
             .vjp = "da = dc * a / c, db = dc * b / c",
             .vjp_tex = "\\bar a = \\bar c \\odot a \\oslash c,\\quad \\bar b = \\bar c \\odot b \\oslash c",
             .doc = "sqrt(a^2 + b^2) without overflow, with broadcasting.",
             .backward = hypot_vjp, .apply = apply_hypot, .examples = "3x4,3x4;2x3x4,4;T3x4,3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");

/* ---- fmod, remainder, floor_divide, trunc_divide ------------------------- */

/* Sign conventions: fmod and trunc_divide truncate (C; the remainder has the
 * sign of a), remainder and floor_divide floor (Python; the remainder has
 * the sign of b).  Floats follow NumPy's divmod (the quotient is rounded so
 * that a = b * q + r holds best); integers divided by zero give 0, as NumPy
 * (which also warns), and INT64_MIN // -1 wraps. */
#define DIVMOD_FLOAT(SUF, T, FMOD, FLOOR, COPYSIGN)                                    \
    static inline T rem_##SUF(T a, T b) {                                              \
        T m = FMOD(a, b);                                                              \
        if (!b) return m;                                                              \
        if (m) {                                                                       \
            if ((b < 0) != (m < 0)) m += b;                                            \
        } else {                                                                       \
            m = COPYSIGN((T)0, b);                                                     \
        }                                                                              \
        return m;                                                                      \
    }                                                                                  \
    static inline T fdiv_##SUF(T a, T b) {                                             \
        if (!b) return a / b;                                                          \
        T m = FMOD(a, b);                                                              \
        T d = (a - m) / b;                                                             \
        if (m && ((b < 0) != (m < 0))) d -= (T)1;                                      \
        if (!d) return COPYSIGN((T)0, a / b);                                          \
        T f = FLOOR(d);                                                                \
        if (d - f > (T)0.5) f += (T)1;                                                 \
        return f;                                                                      \
    }
DIVMOD_FLOAT(f, float, fmodf, floorf, copysignf)
DIVMOD_FLOAT(d, double, fmod, floor, copysign)
static inline int64_t fmod_i(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }
static inline int64_t rem_i(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t fdiv_i(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return tg__wrap_sub(0, a);
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t tdiv_i(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return tg__wrap_sub(0, a);
    return a / b;
}

BINARY_ROWS_F(fmod, fmodf(a, b), fmod(a, b))
BINARY_ROW(fmod_i64, int64_t, fmod_i(a, b))
static const row_table fmod_rows = {fmod_f32, fmod_f64, fmod_i64};
BINARY_ROWS_F(remainder, rem_f(a, b), rem_d(a, b))
BINARY_ROW(remainder_i64, int64_t, rem_i(a, b))
static const row_table remainder_rows = {remainder_f32, remainder_f64, remainder_i64};
BINARY_ROWS_F(floor_divide, fdiv_f(a, b), fdiv_d(a, b))
BINARY_ROW(floor_divide_i64, int64_t, fdiv_i(a, b))
static const row_table floor_divide_rows = {floor_divide_f32, floor_divide_f64, floor_divide_i64};
BINARY_ROWS_F(trunc_divide, truncf(a / b), trunc(a / b))
BINARY_ROW(trunc_divide_i64, int64_t, tdiv_i(a, b))
static const row_table trunc_divide_rows = {trunc_divide_f32, trunc_divide_f64, trunc_divide_i64};

tg_tensor *tg_fmod(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_fmod, a, b, promoted(a, b), &fmod_rows, true, false);
}
tg_tensor *tg_remainder(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_remainder, a, b, promoted(a, b), &remainder_rows, true, false);
}
tg_tensor *tg_floor_divide(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_floor_divide, a, b, promoted(a, b), &floor_divide_rows, false, false);
}
tg_tensor *tg_trunc_divide(tg_tensor *a, tg_tensor *b) {
    return binary_op(&tg_opdef_trunc_divide, a, b, promoted(a, b), &trunc_divide_rows, false, false);
}
/* da = dc, db = -dc * q with q = a divided by b and rounded as the remainder
 * rounds (PyTorch) */
static tg_status mod_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi,
                         tg_tensor *(*quot)(tg_tensor *, tg_tensor *)) {
    tg_tensor *a = SAVED(0), *b = a ? SAVED(1) : NULL;
    CHECK(b);
    if (NEED(0)) {
        tg_tensor_retain(g);
        gi[0] = g;
    }
    if (NEED(1)) CHECK(gi[1] = take2(tg_mul, tg_neg(g), quot(a, b)));
    return TG_OK;
}
static tg_status fmod_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return mod_vjp(e, g, gi, tg_trunc_divide);
}
static tg_status remainder_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    return mod_vjp(e, g, gi, tg_floor_divide);
}
APPLY2(fmod)
APPLY2(remainder)
APPLY2(floor_divide)
APPLY2(trunc_divide)
TG_DEFINE_OP(fmod, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a - b * trunc(a / b)", .forward_tex = "c = a - b \\operatorname{trunc}(a / b)",
             .vjp = "da = dc, db = -dc * trunc(a / b)",
             .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = -\\bar c \\odot \\operatorname{trunc}(a / b)",
             .doc = "C's remainder: the sign of a (NumPy fmod); integers: x fmod 0 is 0, as NumPy.",
             .backward = fmod_vjp, .apply = apply_fmod, .examples = "3x4,~3x4;2x3x4,~4;T3x4,~3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(remainder, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = a - b * floor(a / b)", .forward_tex = "c = a - b \\lfloor a / b \\rfloor",
             .vjp = "da = dc, db = -dc * floor(a / b)",
             .vjp_tex = "\\bar a = \\bar c,\\quad \\bar b = -\\bar c \\odot \\lfloor a / b \\rfloor",
             .doc = "Python's remainder a % b: the sign of b (NumPy mod); integers: x % 0 is 0, as NumPy.",
             .backward = remainder_vjp, .apply = apply_remainder, .examples = "3x4,~3x4;2x3x4,~4;T3x4,~3x1",
             .grad_out_tex = "\\bar c", .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(floor_divide, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = floor(a / b)", .forward_tex = "c = \\lfloor a / b \\rfloor",
             .vjp = "da = 0, db = 0", .vjp_tex = "\\bar a = 0,\\quad \\bar b = 0",
             .doc = "Python's a // b, rounding down (int64 stays int64; x // 0 is 0 for integers, as NumPy); gradient zero.",
             .backward = zero_vjp, .apply = apply_floor_divide, .examples = "3x4,~3x4;2x3x4,~4;T3x4,~3x1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar a;\\bar b");
TG_DEFINE_OP(trunc_divide, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64,int64",
             .forward = "c = trunc(a / b)", .forward_tex = "c = \\operatorname{trunc}(a / b)",
             .vjp = "da = 0, db = 0", .vjp_tex = "\\bar a = 0,\\quad \\bar b = 0",
             .doc = "a / b rounded towards zero: div(a, b, rounding_mode='trunc') (x / 0 is 0 for integers); gradient zero.",
             .backward = zero_vjp, .apply = apply_trunc_divide, .examples = "3x4,~3x4;2x3x4,~4;T3x4,~3x1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar a;\\bar b");

/* ---- lerp (composite), nan_to_num ------------------------------------------ */

/* a + w * (b - a), made of sub, mul and add (their entries are the tape's) */
tg_tensor *tg_lerp(tg_tensor *a, tg_tensor *b, tg_tensor *w) {
    if (!a || !b || !w) return TG_FAIL(TG_ERR_VALUE, "lerp: input is NULL");
    tg_tensor *in[3] = {a, b, w};
    for (int i = 0; i < 3; i++)
        if (!tg_dtype_is_float(in[i]->dtype))
            return TG_FAIL(TG_ERR_TYPE, "lerp: not supported for dtype %s (input %d; expected float32 or float64)",
                           tg_dtype_name(in[i]->dtype), i);
    int n1, n2;
    int64_t s1[TG_MAX_DIMS], s2[TG_MAX_DIMS];
    if (tg__broadcast_shapes("lerp", a->ndim, a->shape, b->ndim, b->shape, &n1, s1) ||
        tg__broadcast_shapes("lerp", n1, s1, w->ndim, w->shape, &n2, s2))
        return NULL;
    tg_tensor *d = tg_sub(b, a);
    tg_tensor *wd = d ? tg_mul(w, d) : NULL;
    tg_tensor_release(d);
    tg_tensor *r = wd ? tg_add(a, wd) : NULL;
    tg_tensor_release(wd);
    return r;
}
static tg_tensor *apply_lerp(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 3) return TG_FAIL(TG_ERR_VALUE, "apply: lerp takes 3 inputs");
    return tg_lerp(in[0], in[1], in[2]);
}
TG_DEFINE_OP(lerp, .arity = 3, .composite = true, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y = a + w * (b - a)", .forward_tex = "y = a + w \\odot (b - a)",
             .vjp = "da = dy * (1 - w), db = dy * w, dw = dy * (b - a)",
             .vjp_tex = "\\bar a = \\bar y \\odot (1 - w),\\quad \\bar b = \\bar y \\odot w,\\quad \\bar w = \\bar y \\odot (b - a)",
             .doc = "Linear interpolation from a to b by the weight w (a tensor or a number), with broadcasting; a composite op (sub, mul, add).",
             .apply = apply_lerp, .examples = "3x4,3x4,3x4;2x3x4,4,3x1;T3x4,3x4,-",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar a;\\bar b;\\bar w");

/* prm: nan, posinf, neginf replacements (already resolved to the dtype's
 * defaults) */
#define NAN_TO_NUM_ROW(NAME, T)                                                        \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        const double *r = ctx;                                                         \
        const T rn = (T)r[0], rp = (T)r[1], rm = (T)r[2];                              \
        for (int64_t i = 0; i < n; i++) {                                              \
            T x = *(const T *)(p[1] + i * s[1]);                                       \
            *(T *)(p[0] + i * s[0]) = x != x ? rn : x == (T)INFINITY ? rp              \
                                                : x == -(T)INFINITY ? rm : x;          \
        }                                                                              \
    }
NAN_TO_NUM_ROW(nan_to_num_f32, float)
NAN_TO_NUM_ROW(nan_to_num_f64, double)
UNARY_ROW(nan_to_num_i64, int64_t, x)
static const row_table nan_to_num_rows = {nan_to_num_f32, nan_to_num_f64, nan_to_num_i64};
tg_tensor *tg_nan_to_num(tg_tensor *x, double nan, double posinf, double neginf) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "nan_to_num: input is NULL");
    double big = x->dtype == TG_FLOAT32 ? (double)FLT_MAX : DBL_MAX;
    double prm[3] = {nan, isnan(posinf) ? big : posinf, isnan(neginf) ? -big : neginf};
    tg_tensor *out = unary_op(&tg_opdef_nan_to_num, x, &nan_to_num_rows, prm, true, false);
    if (out && out->grad_fn) out->grad_fn->params.f[2] = prm[2];
    return out;
}
static tg_status nan_to_num_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    /* [|x| < inf] is 0 at NaN and +-inf */
    tg_tensor *inf = scal(INFINITY, x);
    tg_tensor *m = inf ? take2(tg_lt, tg_abs(x), inf) : NULL;
    CHECK(gi[0] = mul_take(g, m));
    return TG_OK;
}
static tg_tensor *apply_nan_to_num(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_nan_to_num(in[0], p->f[0], p->i[0] ? p->f[1] : NAN, p->i[1] ? p->f[2] : NAN);
}
TG_DEFINE_OP(nan_to_num, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .forward = "y = x with NaN, +inf, -inf replaced", .forward_tex = "y = \\operatorname{nan\\_to\\_num}(x)",
             .vjp = "dx = dy * [x is finite]", .vjp_tex = "\\bar x = \\bar y \\odot [|x| < \\infty]",
             .doc = "Replace NaN by nan (f0), +inf by posinf (f1 if i0, else the largest finite value) and -inf by neginf (f2 if i1, else the lowest).",
             .backward = nan_to_num_vjp, .apply = apply_nan_to_num,
             .examples = "3x4|f0=0.5;T2x3|f0=1 f1=7 i0=1 f2=-7 i1=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* Activations (issue 14): the ELU family, hard (piecewise linear)        */
/* functions, logsigmoid, the tanh form of gelu, softplus with beta and   */
/* threshold, and the composites mish, softsign, relu6, softmin, glu      */
/* ===================================================================== */

/* [x > v] (cmp = tg_gt), [x < v] ... as a 0/1 mask */
static tg_tensor *cmp_s(tg_tensor *(*cmp)(tg_tensor *, tg_tensor *), tg_tensor *x, double v) {
    tg_tensor *s = scal(v, x);
    tg_tensor *r = s ? cmp(x, s) : NULL;
    tg_tensor_release(s);
    return r;
}
/* where(mask, v, other), releasing mask and other */
static tg_tensor *where_s(tg_tensor *mask, double v, tg_tensor *other) {
    tg_tensor *s = (mask && other) ? scal(v, other) : NULL;
    tg_tensor *r = s ? tg_where(mask, s, other) : NULL;
    tg_tensor_release(s);
    tg_tensor_release(mask);
    tg_tensor_release(other);
    return r;
}
/* ELU-like derivative (PyTorch's elu_backward): pos where x > 0, else
 * negcoef * negipt * exp(negipt * x), exp taken of min(x, 0) only so that
 * the branch not taken cannot overflow into a 0 * inf in second order. */
static tg_tensor *elu_like_grad(tg_tensor *x, double pos, double negcoef, double negipt) {
    tg_tensor *xm = tg_clip(x, -INFINITY, 0.0);
    tg_tensor *xs = xm && negipt != 1.0 ? tg_mul_scalar(xm, negipt) : (xm ? (tg_tensor_retain(xm), xm) : NULL);
    tg_tensor_release(xm);
    tg_tensor *ex = exp_take(xs);
    tg_tensor *neg = ex ? tg_mul_scalar(ex, negcoef * negipt) : NULL;
    tg_tensor_release(ex);
    return where_s(neg ? cmp_s(tg_gt, x, 0.0) : NULL, pos, neg);
}

/* Activations take float tensors, and int64 (computed in float64); other
 * integer and bool dtypes are refused, as PyTorch refuses integer
 * activations (NumPy has none to follow). */
static bool activation_dtype_bad(const char *who, const tg_tensor *x) {
    if (!x || tg_dtype_is_float(x->dtype) || x->dtype == TG_INT64) return false;
    tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32, float64 or int64)",
                 who, tg_dtype_name(x->dtype));
    return true;
}
#define ACTIVATION_DTYPE(who, x) do { if (activation_dtype_bad(who, x)) return NULL; } while (0)

/* ---- elu, selu, celu --------------------------------------------------------- */

UNARY_ROWS_F(elu, x > 0 ? x : (float)prm[0] * expm1f(x), x > 0 ? x : prm[0] * expm1(x))
static const row_table elu_rows = {elu_f32, elu_f64, NULL};
tg_tensor *tg_elu(tg_tensor *x, double alpha) {
    ACTIVATION_DTYPE("elu", x);
    double prm[2] = {alpha, 0};
    return unary_op(&tg_opdef_elu, x, &elu_rows, prm, true, false);
}
static tg_status elu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, elu_like_grad(x, 1.0, e->params.f[0], 1.0)));
    return TG_OK;
}
static tg_tensor *apply_elu(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_elu(in[0], p->f[0]);
}
TG_DEFINE_OP(elu, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = x if x > 0 else alpha * (exp(x) - 1)",
             .forward_tex = "y = \\begin{cases} x & x > 0 \\\\ \\alpha (e^{x} - 1) & x \\le 0\\end{cases}",
             .vjp = "dx = dy * (1 if x > 0 else alpha * exp(x))",
             .vjp_tex = "\\bar x = \\bar y \\odot ([x > 0] + [x \\le 0]\\,\\alpha e^{x})",
             .doc = "Exponential linear unit with parameter alpha (f0).", .backward = elu_vjp,
             .apply = apply_elu, .examples = "~3x4|f0=1;~T2x3|f0=0.5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

#define SELU_SCALE 1.0507009873554804934193349852946
#define SELU_ALPHA 1.6732632423543772848170429916717
UNARY_ROWS_F(selu, x > 0 ? (float)SELU_SCALE * x : (float)(SELU_SCALE * SELU_ALPHA) * expm1f(x),
             x > 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * expm1(x))
static const row_table selu_rows = {selu_f32, selu_f64, NULL};
tg_tensor *tg_selu(tg_tensor *x) {
    ACTIVATION_DTYPE("selu", x);
    return unary_op(&tg_opdef_selu, x, &selu_rows, NULL, true, false);
}
static tg_status selu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    CHECK(gi[0] = mul_take(g, elu_like_grad(x, SELU_SCALE, SELU_SCALE * SELU_ALPHA, 1.0)));
    return TG_OK;
}
APPLY1(selu)
TG_DEFINE_OP(selu, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = scale * (x if x > 0 else alpha * (exp(x) - 1))",
             .forward_tex = "y = \\lambda \\begin{cases} x & x > 0 \\\\ \\alpha (e^{x} - 1) & x \\le 0\\end{cases}",
             .vjp = "dx = dy * scale * (1 if x > 0 else alpha * exp(x))",
             .vjp_tex = "\\bar x = \\bar y \\odot \\lambda ([x > 0] + [x \\le 0]\\,\\alpha e^{x})",
             .doc = "Scaled ELU (self-normalising), scale = 1.0507..., alpha = 1.6733... (PyTorch's constants).",
             .backward = selu_vjp, .apply = apply_selu, .examples = "~3x4;~T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(celu, x > 0 ? x : (float)prm[0] * expm1f(x / (float)prm[0]),
             x > 0 ? x : prm[0] * expm1(x / prm[0]))
static const row_table celu_rows = {celu_f32, celu_f64, NULL};
tg_tensor *tg_celu(tg_tensor *x, double alpha) {
    ACTIVATION_DTYPE("celu", x);
    if (alpha == 0) return TG_FAIL(TG_ERR_VALUE, "celu: alpha must not be 0 (it divides x)");
    double prm[2] = {alpha, 0};
    return unary_op(&tg_opdef_celu, x, &celu_rows, prm, true, false);
}
static tg_status celu_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    double a = e->params.f[0];
    CHECK(gi[0] = mul_take(g, elu_like_grad(x, 1.0, a, 1.0 / a)));
    return TG_OK;
}
static tg_tensor *apply_celu(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_celu(in[0], p->f[0]);
}
TG_DEFINE_OP(celu, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = x if x > 0 else alpha * (exp(x / alpha) - 1)",
             .forward_tex = "y = \\begin{cases} x & x > 0 \\\\ \\alpha (e^{x/\\alpha} - 1) & x \\le 0\\end{cases}",
             .vjp = "dx = dy * (1 if x > 0 else exp(x / alpha))",
             .vjp_tex = "\\bar x = \\bar y \\odot ([x > 0] + [x \\le 0]\\,e^{x/\\alpha})",
             .doc = "Continuously differentiable ELU with parameter alpha (f0, not 0).", .backward = celu_vjp,
             .apply = apply_celu, .examples = "~3x4|f0=1;~T2x3|f0=0.7",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- hardtanh, relu6 (composite), hardsigmoid, hardswish ------------------- */

UNARY_ROWS_F(hardtanh, clip1_f(x, (float)prm[0], (float)prm[1]), clip1_d(x, prm[0], prm[1]))
static const row_table hardtanh_rows = {hardtanh_f32, hardtanh_f64, NULL};
tg_tensor *tg_hardtanh(tg_tensor *x, double min_val, double max_val) {
    ACTIVATION_DTYPE("hardtanh", x);
    if (!(min_val <= max_val))
        return TG_FAIL(TG_ERR_VALUE, "hardtanh: min_val (%g) must be <= max_val (%g)", min_val, max_val);
    double prm[2] = {min_val, max_val};
    return unary_op(&tg_opdef_hardtanh, x, &hardtanh_rows, prm, true, false);
}
static tg_status hardtanh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    /* strictly inside (PyTorch: 0 at the corners, unlike clip) */
    tg_tensor *m = take2(tg_mul, cmp_s(tg_gt, x, e->params.f[0]), cmp_s(tg_lt, x, e->params.f[1]));
    CHECK(gi[0] = mul_take(g, m));
    return TG_OK;
}
static tg_tensor *apply_hardtanh(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_hardtanh(in[0], p->f[0], p->f[1]);
}
TG_DEFINE_OP(hardtanh, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = min(max(x, lo), hi)", .forward_tex = "y = \\min(\\max(x, l), h)",
             .vjp = "dx = dy * [lo < x < hi]", .vjp_tex = "\\bar x = \\bar y \\odot [l < x < h]",
             .doc = "Clamp to [min_val, max_val] (f0, f1) with PyTorch's gradient: 0 at and beyond the corners.",
             .backward = hardtanh_vjp, .apply = apply_hardtanh,
             .examples = "~3x4|f0=-1 f1=1;~T2x3|f0=-0.5 f1=0.6",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_relu6(tg_tensor *x) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "relu6: input is NULL");
    ACTIVATION_DTYPE("relu6", x);
    return tg_hardtanh(x, 0.0, 6.0);
}
APPLY1(relu6)
TG_DEFINE_OP(relu6, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = min(max(x, 0), 6)", .forward_tex = "y = \\min(\\max(x, 0), 6)",
             .vjp = "dx = dy * [0 < x < 6]", .vjp_tex = "\\bar x = \\bar y \\odot [0 < x < 6]",
             .doc = "ReLU capped at 6; a composite op: hardtanh(x, 0, 6) on the tape.",
             .apply = apply_relu6, .examples = "~3x4;~T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* PyTorch's formulas: min(max(x + 3, 0), 6) / 6 and x times that */
UNARY_ROWS_F(hardsigmoid, clip1_f(x + 3.0f, 0.0f, 6.0f) / 6.0f, clip1_d(x + 3.0, 0.0, 6.0) / 6.0)
static const row_table hardsigmoid_rows = {hardsigmoid_f32, hardsigmoid_f64, NULL};
tg_tensor *tg_hardsigmoid(tg_tensor *x) {
    ACTIVATION_DTYPE("hardsigmoid", x);
    return unary_op(&tg_opdef_hardsigmoid, x, &hardsigmoid_rows, NULL, true, false);
}
static tg_status hardsigmoid_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *m = take2(tg_mul, cmp_s(tg_gt, x, -3.0), cmp_s(tg_lt, x, 3.0));
    tg_tensor *d = m ? tg_mul_scalar(m, 1.0 / 6.0) : NULL;
    tg_tensor_release(m);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(hardsigmoid)
TG_DEFINE_OP(hardsigmoid, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = min(max(x + 3, 0), 6) / 6", .forward_tex = "y = \\min(\\max(x + 3, 0), 6) / 6",
             .vjp = "dx = dy * [-3 < x < 3] / 6", .vjp_tex = "\\bar x = \\bar y \\odot [-3 < x < 3] / 6",
             .doc = "Piecewise linear sigmoid: 0 below -3, 1 above 3.", .backward = hardsigmoid_vjp,
             .apply = apply_hardsigmoid, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

UNARY_ROWS_F(hardswish, x * clip1_f(x + 3.0f, 0.0f, 6.0f) / 6.0f, x * clip1_d(x + 3.0, 0.0, 6.0) / 6.0)
static const row_table hardswish_rows = {hardswish_f32, hardswish_f64, NULL};
tg_tensor *tg_hardswish(tg_tensor *x) {
    ACTIVATION_DTYPE("hardswish", x);
    return unary_op(&tg_opdef_hardswish, x, &hardswish_rows, NULL, true, false);
}
static tg_status hardswish_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    /* PyTorch: 0 up to -3, x / 3 + 1/2 strictly between, 1 from 3 on (a where, not a
     * product, so that +-inf gives 1 and 0 rather than 0 * inf) */
    tg_tensor *mid = take2(tg_mul, cmp_s(tg_gt, x, -3.0), cmp_s(tg_lt, x, 3.0));
    tg_tensor *x3 = mid ? tg_mul_scalar(x, 1.0 / 3.0) : NULL;
    tg_tensor *lin = x3 ? tg_add_scalar(x3, 0.5) : NULL;
    tg_tensor_release(x3);
    tg_tensor *hi = lin ? cmp_s(tg_ge, x, 3.0) : NULL;
    tg_tensor *d = hi ? tg_where(mid, lin, hi) : NULL;
    tg_tensor_release(mid);
    tg_tensor_release(lin);
    tg_tensor_release(hi);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(hardswish)
TG_DEFINE_OP(hardswish, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = x * min(max(x + 3, 0), 6) / 6", .forward_tex = "y = x \\min(\\max(x + 3, 0), 6) / 6",
             .vjp = "dx = dy * (0 if x <= -3 else x / 3 + 1/2 if x < 3 else 1)",
             .vjp_tex = "\\bar x = \\bar y \\odot ([-3 < x < 3](x/3 + 1/2) + [x \\ge 3])",
             .doc = "Hard swish (MobileNetV3): x * hardsigmoid(x).", .backward = hardswish_vjp,
             .apply = apply_hardswish, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- logsigmoid, softsign, mish ------------------------------------------------- */

/* min(x, 0) - log1p(exp(-|x|)): no overflow either way */
UNARY_ROWS_F(logsigmoid, fminf(x, 0.0f) - log1pf(expf(-fabsf(x))), fmin(x, 0.0) - log1p(exp(-fabs(x))))
static const row_table logsigmoid_rows = {logsigmoid_f32, logsigmoid_f64, NULL};
tg_tensor *tg_logsigmoid(tg_tensor *x) {
    ACTIVATION_DTYPE("logsigmoid", x);
    return unary_op(&tg_opdef_logsigmoid, x, &logsigmoid_rows, NULL, true, false);
}
static tg_status logsigmoid_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *nx = tg_neg(x);
    tg_tensor *s = nx ? tg_sigmoid(nx) : NULL;
    tg_tensor_release(nx);
    CHECK(gi[0] = mul_take(g, s));
    return TG_OK;
}
APPLY1(logsigmoid)
TG_DEFINE_OP(logsigmoid, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = log(sigmoid(x))", .forward_tex = "y = \\log \\sigma(x)",
             .vjp = "dx = dy * sigmoid(-x)", .vjp_tex = "\\bar x = \\bar y \\odot \\sigma(-x)",
             .doc = "log(sigmoid(x)), computed without overflow for large |x|.", .backward = logsigmoid_vjp,
             .apply = apply_logsigmoid, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* The input of a composite activation as a float tensor (NEW reference):
 * int64 computes in float64, as the activations with kernels do (NumPy's
 * rule for float functions); the conversion needs no tape entry (ints never
 * require grad). */
static tg_tensor *float_in(const char *who, tg_tensor *x) {
    if (!x) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (tg_dtype_is_float(x->dtype)) {
        tg_tensor_retain(x);
        return x;
    }
    if (x->dtype != TG_INT64)
        return TG_FAIL(TG_ERR_TYPE, "%s: not supported for dtype %s (expected float32, float64 or int64)",
                       who, tg_dtype_name(x->dtype));
    return tg_cast(x, TG_FLOAT64);
}

tg_tensor *tg_softsign(tg_tensor *x0) {
    tg_tensor *x = float_in("softsign", x0);
    tg_tensor *ax = x ? tg_abs(x) : NULL;
    tg_tensor *d = ax ? tg_add_scalar(ax, 1.0) : NULL;
    tg_tensor_release(ax);
    tg_tensor *y = d ? tg_div(x, d) : NULL;
    tg_tensor_release(d);
    tg_tensor_release(x);
    return y;
}
APPLY1(softsign)
TG_DEFINE_OP(softsign, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = x / (1 + |x|)", .forward_tex = "y = x \\oslash (1 + |x|)",
             .vjp = "dx = dy / (1 + |x|)^2", .vjp_tex = "\\bar x = \\bar y \\oslash (1 + |x|)^{2}",
             .doc = "x / (1 + |x|); a composite op (abs, add, div).", .apply = apply_softsign,
             .examples = "~3x4;~T2x3", .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_mish(tg_tensor *x0) {
    tg_tensor *x = float_in("mish", x0);
    tg_tensor *sp = x ? tg_softplus(x) : NULL;
    tg_tensor *t = sp ? tg_tanh(sp) : NULL;
    tg_tensor_release(sp);
    tg_tensor *y = t ? tg_mul(x, t) : NULL;
    tg_tensor_release(t);
    tg_tensor_release(x);
    return y;
}
APPLY1(mish)
TG_DEFINE_OP(mish, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = x * tanh(softplus(x))", .forward_tex = "y = x \\odot \\tanh(\\log(1 + e^{x}))",
             .vjp = "dx = dy * (t + x * sigmoid(x) * (1 - t^2)), t = tanh(softplus(x))",
             .vjp_tex = "\\bar x = \\bar y \\odot (t + x \\odot \\sigma(x) \\odot (1 - t^{2}))",
             .doc = "Mish, x * tanh(softplus(x)); a composite op (softplus, tanh, mul).", .apply = apply_mish,
             .examples = "3x4;T2x3", .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- gelu(approximate='tanh'), softplus(beta, threshold) ------------------- */

#define GELU_K0 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_K1 0.044715
/* float32 through the vector tanh (kernels/vmath.h), gradient in one pass */
VMATH_ROW(gelu_tanh)
UNARY_ROW(gelu_tanh_f64, double, 0.5 * x * (1.0 + tanh(GELU_K0 * (x + GELU_K1 * (x * x * x)))))
static const row_table gelu_tanh_rows = {gelu_tanh_f32, gelu_tanh_f64, NULL};
static inline double gelu_tanh_grad_d(double x) {
    double t = tanh(GELU_K0 * (x + GELU_K1 * (x * x * x)));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
}
VMATH_GRAD_ROW(gelu_tanh_grad)
BINARY_ROW(gelu_tanh_grad_f64, double, a * gelu_tanh_grad_d(b))
static const row_table gelu_tanh_grad_rows = {gelu_tanh_grad_f32, gelu_tanh_grad_f64, NULL};
tg_tensor *tg_gelu_tanh(tg_tensor *x) {
    ACTIVATION_DTYPE("gelu_tanh", x);
    return unary_op(&tg_opdef_gelu_tanh, x, &gelu_tanh_rows, NULL, true, false);
}
static tg_status gelu_tanh_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    if (!tg_grad_enabled() && g->dtype == x->dtype) { /* no create_graph: one fused, threaded pass */
        CHECK(gi[0] = binary_kernel("gelu_tanh backward", g, x, x->dtype, x->dtype,
                                    &gelu_tanh_grad_rows, NULL, tg_opdef_gelu_tanh.cost));
        return TG_OK;
    }
    /* create_graph: with ops, differentiable again */
    /* u = k0 (x + k1 x^3), t = tanh(u):
     * dy/dx = (1 + t) / 2 + x / 2 (1 - t^2) k0 (1 + 3 k1 x^2) */
    tg_tensor *x2 = tg_mul(x, x);
    tg_tensor *x3 = x2 ? tg_mul(x2, x) : NULL;
    tg_tensor *k1x3 = x3 ? tg_mul_scalar(x3, GELU_K1) : NULL;
    tg_tensor_release(x3);
    tg_tensor *inner = k1x3 ? tg_add(x, k1x3) : NULL;
    tg_tensor_release(k1x3);
    tg_tensor *u = inner ? tg_mul_scalar(inner, GELU_K0) : NULL;
    tg_tensor_release(inner);
    tg_tensor *t = u ? tg_tanh(u) : NULL;
    tg_tensor_release(u);
    tg_tensor *t1 = t ? tg_add_scalar(t, 1.0) : NULL;
    tg_tensor *left = t1 ? tg_mul_scalar(t1, 0.5) : NULL;
    tg_tensor_release(t1);
    tg_tensor *sech2 = left ? sq_shift(t, -1) : NULL; /* 1 - t^2 */
    tg_tensor_release(t);
    tg_tensor *p = sech2 ? tg_mul_scalar(x2, 3.0 * GELU_K1) : NULL;
    tg_tensor_release(x2);
    tg_tensor *p1 = p ? tg_add_scalar(p, 1.0) : NULL;
    tg_tensor_release(p);
    tg_tensor *hx = p1 ? tg_mul_scalar(x, 0.5 * GELU_K0) : NULL;
    tg_tensor *right = take2(tg_mul, take2(tg_mul, hx, sech2), p1);
    tg_tensor *d = take2(tg_add, left, right);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
APPLY1(gelu_tanh)
TG_DEFINE_OP(gelu_tanh, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = x / 2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))",
             .forward_tex = "y = \\tfrac{x}{2}\\,(1 + \\tanh(\\sqrt{2/\\pi}\\,(x + 0.044715\\,x^{3})))",
             .vjp = "dx = dy * ((1 + t) / 2 + x / 2 * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2))",
             .vjp_tex = "\\bar x = \\bar y \\odot (\\tfrac{1 + t}{2} + \\tfrac{x}{2} (1 - t^{2}) \\sqrt{2/\\pi}\\,(1 + 0.134145\\,x^{2}))",
             .doc = "GELU's tanh approximation: gelu(x, approximate='tanh'). float32: through the vectorized tanh (kernels/vmath.h), gradient in one pass; float64: libm.", .backward = gelu_tanh_vjp,
             .apply = apply_gelu_tanh, .examples = "3x4;T2x3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* PyTorch's softplus: x where beta x > threshold, else log(1 + exp(beta x)) /
 * beta (computed without overflow) */
static inline double softplus_b_d(double x, double beta, double th) {
    double bx = x * beta;
    if (bx > th) return x;
    return (bx > 0 ? bx + log1p(exp(-bx)) : log1p(exp(bx))) / beta;
}
static inline float softplus_b_f(float x, double beta, double th) {
    float b = (float)beta, bx = x * b;
    if (bx > th) return x;
    return (bx > 0 ? bx + log1pf(expf(-bx)) : log1pf(expf(bx))) / b;
}
UNARY_ROWS_F(softplus_beta, softplus_b_f(x, prm[0], prm[1]), softplus_b_d(x, prm[0], prm[1]))
static const row_table softplus_beta_rows = {softplus_beta_f32, softplus_beta_f64, NULL};
tg_tensor *tg_softplus_beta(tg_tensor *x, double beta, double threshold) {
    ACTIVATION_DTYPE("softplus_beta", x);
    if (beta == 0 || isnan(beta))
        return TG_FAIL(TG_ERR_VALUE, "softplus: beta must be a non-zero number, got %g", beta);
    if (isnan(threshold)) return TG_FAIL(TG_ERR_VALUE, "softplus: threshold is NaN");
    double prm[2] = {beta, threshold};
    return unary_op(&tg_opdef_softplus_beta, x, &softplus_beta_rows, prm, true, false);
}
static tg_status softplus_beta_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = SAVED(0);
    CHECK(x);
    tg_tensor *bx = tg_mul_scalar(x, e->params.f[0]);
    CHECK(bx);
    tg_tensor *d = where_s(cmp_s(tg_gt, bx, e->params.f[1]), 1.0, tg_sigmoid(bx));
    tg_tensor_release(bx);
    CHECK(gi[0] = mul_take(g, d));
    return TG_OK;
}
static tg_tensor *apply_softplus_beta(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_softplus_beta(in[0], p->f[0], p->f[1]);
}
TG_DEFINE_OP(softplus_beta, .arity = 1, .cost = COST_TRANSCENDENTAL, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .forward = "y = x if beta x > threshold else log(1 + exp(beta x)) / beta",
             .forward_tex = "y = \\begin{cases} x & \\beta x > \\tau \\\\ \\tfrac{1}{\\beta} \\log(1 + e^{\\beta x}) & \\text{else}\\end{cases}",
             .vjp = "dx = dy * (1 if beta x > threshold else sigmoid(beta x))",
             .vjp_tex = "\\bar x = \\bar y \\odot ([\\beta x > \\tau] + [\\beta x \\le \\tau]\\,\\sigma(\\beta x))",
             .doc = "PyTorch's softplus(x, beta, threshold) (f0, f1): linear where beta x > threshold.",
             .backward = softplus_beta_vjp, .apply = apply_softplus_beta,
             .examples = "3x4|f0=1 f1=20;T2x3|f0=2 f1=1;3x4|f0=0.5 f1=0.3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- glu (a composite along an axis; softmin, softmax's mirror, is in nn.c) ---- */

static tg_tensor *glu_float(tg_tensor *x, int64_t axis);
tg_tensor *tg_glu(tg_tensor *x0, int64_t axis) {
    tg_tensor *x = float_in("glu", x0);
    tg_tensor *y = x ? glu_float(x, axis) : NULL;
    tg_tensor_release(x);
    return y;
}
static tg_tensor *glu_float(tg_tensor *x, int64_t axis) {
    if (x->ndim == 0) return TG_FAIL(TG_ERR_VALUE, "glu: expected at least 1 dimension, got a 0-d tensor");
    if (axis < -x->ndim || axis >= x->ndim)
        return TG_FAIL(TG_ERR_INDEX, "glu: axis %lld is out of range for a tensor of shape %s",
                       (long long)axis, tg__shp(x));
    int ax = (int)(axis < 0 ? axis + x->ndim : axis);
    int64_t n = x->shape[ax];
    if (n % 2)
        return TG_FAIL(TG_ERR_VALUE, "glu: the size of axis %d must be even to halve it, got shape %s",
                       ax, tg__shp(x));
    int64_t st[TG_MAX_DIMS], sp[TG_MAX_DIMS], step[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        st[d] = 0;
        sp[d] = x->shape[d];
        step[d] = 1;
    }
    sp[ax] = n / 2;
    tg_tensor *a = tg_slice(x, st, sp, step, 0);
    st[ax] = n / 2;
    sp[ax] = n;
    tg_tensor *b = a ? tg_slice(x, st, sp, step, 0) : NULL;
    tg_tensor *s = b ? tg_sigmoid(b) : NULL;
    tg_tensor_release(b);
    tg_tensor *y = s ? tg_mul(a, s) : NULL;
    tg_tensor_release(a);
    tg_tensor_release(s);
    return y;
}
static tg_tensor *apply_glu(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input");
    return tg_glu(in[0], p->i[0]);
}
TG_DEFINE_OP(glu, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64 (int64 -> float64)",
             .functional = true,
             .forward = "y = a * sigmoid(b), (a, b) = x halved along axis",
             .forward_tex = "y = a \\odot \\sigma(b)",
             .vjp = "da = dy * sigmoid(b), db = dy * a * sigmoid(b) * (1 - sigmoid(b))",
             .vjp_tex = "\\bar x = [\\bar y \\odot \\sigma(b),\\ \\bar y \\odot a \\odot \\sigma(b) (1 - \\sigma(b))]",
             .doc = "Gated linear unit: the first half of x along axis (i0) times the sigmoid of the second; a composite op (slice, sigmoid, mul).",
             .apply = apply_glu, .examples = "3x4|i0=1;T4x3|i0=0;2x3x4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
