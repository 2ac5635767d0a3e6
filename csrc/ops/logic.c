/*
 * logic.c -- logical, bitwise and predicate ops (issue 14, "Dtypes").
 *
 *   logical_and/or/xor/not   any dtype in (nonzero is true), bool out
 *   bitwise_and/or/xor/not   integer and bool tensors (&, |, ^, ~)
 *   left_shift/right_shift   integer tensors (<<, >>), NumPy's rules
 *   isnan/isinf/isfinite     bool out; integers and bools are finite
 *   isclose                  |a - b| <= atol + rtol * |b|, bool out
 *   all/any                  reductions over axes, bool out
 *
 * None of them is differentiable: their outputs are bool or integer tensors,
 * which never require grad (tg__finish records nothing for them).  The two
 * small drivers below do broadcasting and strided iteration for them; the
 * row kernels are one line each.
 */
#include "ops_internal.h"

#include <math.h>
#include <stdio.h>

typedef void (*lrow_fn)(int64_t n, char **p, const int64_t *s, void *ctx);

/* One row kernel per input dtype (NULL: refused with a TypeError), in enum
 * order: float32, float64, int64, bool, int32, uint8. */
typedef struct {
    lrow_fn by_dtype[TG_N_DTYPES];
} lrow_table;

static tg_status refuse(const char *who, tg_dtype dt, const char *expected) {
    return tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (expected %s)", who,
                        tg_dtype_name(dt), expected);
}

/* out (out_dt) = row(the inputs converted to in_dt), over their broadcast
 * shape: the one driver of this file's elementwise ops (one or two inputs). */
static tg_tensor *logic_op(const tg_opdef *op, int n, tg_tensor *const *in, tg_dtype in_dt,
                           tg_dtype out_dt, lrow_fn fn, void *ctx) {
    int nd = in[0]->ndim;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, in[0]->shape, sizeof(int64_t) * (size_t)nd);
    if (n == 2 && tg__broadcast_shapes(op->name, in[0]->ndim, in[0]->shape, in[1]->ndim,
                                       in[1]->shape, &nd, shape))
        return NULL;
    tg_tensor *conv[2] = {NULL, NULL};
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = (conv[i] = tg__as_dtype(in[i], in_dt)) != NULL;
    tg_tensor *out = ok ? tg_tensor_empty(nd, shape, out_dt) : NULL;
    if (out && out->numel > 0) {
        char *base[3] = {tg_tensor_data(out), NULL, NULL};
        int64_t st[3][TG_MAX_DIMS];
        tg__bcast_strides_bytes(out, nd, shape, st[0]);
        for (int i = 0; i < n; i++) {
            base[i + 1] = tg_tensor_data(conv[i]);
            tg__bcast_strides_bytes(conv[i], nd, shape, st[i + 1]);
        }
        void *kt = tg__kernel_begin(out->numel);
        tg__iterate_parallel(n + 1, nd, shape, base, st, fn, ctx, 1);
        tg__kernel_end(kt);
    }
    for (int i = 0; i < n; i++) tg_tensor_release(conv[i]);
    tg_entry *e;
    return tg__finish(op, n, in, out, &e);
}

static tg_tensor *logic_binary(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_dtype in_dt,
                               tg_dtype out_dt, lrow_fn fn, void *ctx) {
    tg_tensor *in[2] = {a, b};
    return logic_op(op, 2, in, in_dt, out_dt, fn, ctx);
}

static tg_tensor *logic_unary(const tg_opdef *op, tg_tensor *x, tg_dtype in_dt, tg_dtype out_dt,
                              lrow_fn fn) {
    return logic_op(op, 1, &x, in_dt, out_dt, fn, NULL);
}

#define LROW2(NAME, TI, TO, EXPR)                                                      \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        for (int64_t i = 0; i < n; i++) {                                              \
            TI a = *(const TI *)(p[1] + i * s[1]);                                     \
            TI b = *(const TI *)(p[2] + i * s[2]);                                     \
            *(TO *)(p[0] + i * s[0]) = (TO)(EXPR);                                     \
        }                                                                              \
    }
#define LROW1(NAME, TI, TO, EXPR)                                                      \
    static void NAME(int64_t n, char **p, const int64_t *s, void *ctx) {               \
        (void)ctx;                                                                     \
        for (int64_t i = 0; i < n; i++) {                                              \
            TI x = *(const TI *)(p[1] + i * s[1]);                                     \
            *(TO *)(p[0] + i * s[0]) = (TO)(EXPR);                                     \
        }                                                                              \
    }

static tg_tensor *null_input(const char *who) {
    return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
}

/* ===================================================================== */
/* logical_and / or / xor / not                                           */
/* ===================================================================== */

LROW2(land_row, uint8_t, uint8_t, a && b)
LROW2(lor_row, uint8_t, uint8_t, a || b)
LROW2(lxor_row, uint8_t, uint8_t, (a != 0) != (b != 0))
LROW1(lnot_row, uint8_t, uint8_t, !x)

#define LOGICAL(NAME, ROW, TEXT, TEX)                                                  \
    tg_tensor *tg_##NAME(tg_tensor *a, tg_tensor *b) {                                 \
        if (!a || !b) return null_input(#NAME);                                        \
        return logic_binary(&tg_opdef_##NAME, a, b, TG_BOOL, TG_BOOL, ROW, NULL);      \
    }                                                                                  \
    APPLY2(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 2, .diff_mask = 0, .dtypes = "any -> bool",            \
                 .forward = "c = bool(a) " TEXT " bool(b)", .forward_tex = "c = [a \\ne 0] " TEX " [b \\ne 0]", \
                 .vjp = "not differentiable", .vjp_tex = "",                          \
                 .doc = "Elementwise logical " TEXT " of the truth values (non-zero is true), with broadcasting; bool out.", \
                 .backward = NULL, .apply = apply_##NAME,                              \
                 .examples = "b3x4,b3x4;b2x3x4,b4;bT3x4,3x1;i2:3x4,b3x4");

LOGICAL(logical_and, land_row, "and", "\\land")
LOGICAL(logical_or, lor_row, "or", "\\lor")
LOGICAL(logical_xor, lxor_row, "xor", "\\oplus")

tg_tensor *tg_logical_not(tg_tensor *x) {
    if (!x) return null_input("logical_not");
    return logic_unary(&tg_opdef_logical_not, x, TG_BOOL, TG_BOOL, lnot_row);
}
APPLY1(logical_not)
TG_DEFINE_OP(logical_not, .arity = 1, .diff_mask = 0, .dtypes = "any -> bool",
             .forward = "y = not bool(x)", .forward_tex = "y = [x = 0]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Elementwise logical not (zero is false, anything else true); bool out.",
             .backward = NULL, .apply = apply_logical_not, .examples = "b3x4;bT2x3;i3:4");

/* ===================================================================== */
/* bitwise_and / or / xor / not, left_shift / right_shift                 */
/* ===================================================================== */

#define INT_OR_BOOL "int64, int32, uint8 or bool"
#define INT_ONLY "int64, int32 or uint8"

/* The promoted dtype of a and b if it is an integer (or bool, when allowed);
 * else a TypeError naming the op (-1). */
static int int_dtype(const char *who, const tg_tensor *a, const tg_tensor *b, bool allow_bool) {
    tg_dtype dt = tg_dtype_promote(a->dtype, b->dtype);
    if (tg_dtype_is_integer(dt) || (allow_bool && dt == TG_BOOL)) return (int)dt;
    tg_error_set(TG_ERR_TYPE, "%s: not supported for dtype %s (inputs %s and %s; expected %s)", who,
                 tg_dtype_name(dt), tg_dtype_name(a->dtype), tg_dtype_name(b->dtype),
                 allow_bool ? INT_OR_BOOL : INT_ONLY);
    return -1;
}

#define BITWISE(NAME, OP, TEXT, TEX)                                                   \
    LROW2(NAME##_i64, int64_t, int64_t, a OP b)                                        \
    LROW2(NAME##_i32, int32_t, int32_t, a OP b)                                        \
    LROW2(NAME##_u8, uint8_t, uint8_t, a OP b) /* also bool: 0/1 stay 0/1 */           \
    static const lrow_table NAME##_rows = {{NULL, NULL, NAME##_i64, NAME##_u8, NAME##_i32, NAME##_u8}}; \
    tg_tensor *tg_##NAME(tg_tensor *a, tg_tensor *b) {                                 \
        if (!a || !b) return null_input(#NAME);                                        \
        int dt = int_dtype(#NAME, a, b, true);                                         \
        if (dt < 0) return NULL;                                                       \
        return logic_binary(&tg_opdef_##NAME, a, b, (tg_dtype)dt, (tg_dtype)dt,        \
                            NAME##_rows.by_dtype[dt], NULL);                           \
    }                                                                                  \
    APPLY2(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 2, .diff_mask = 0, .dtypes = "int64,int32,uint8,bool", \
                 .forward = "c = a " TEXT " b", .forward_tex = "c = a " TEX " b",     \
                 .vjp = "not differentiable", .vjp_tex = "",                          \
                 .doc = "Elementwise " #NAME " (operator ``" TEXT "``) of integer or bool tensors, with broadcasting (float inputs are a TypeError).", \
                 .backward = NULL, .apply = apply_##NAME,                              \
                 .examples = "i100:3x4,i100:3x4;i100:2x3x4,i100:4;i100:T3x4,i100:3x1");

BITWISE(bitwise_and, &, "&", "\\mathbin{\\&}")
BITWISE(bitwise_or, |, "|", "\\mathbin{|}")
BITWISE(bitwise_xor, ^, "^", "\\oplus")

LROW1(bnot_i64, int64_t, int64_t, ~x)
LROW1(bnot_i32, int32_t, int32_t, ~x)
LROW1(bnot_u8, uint8_t, uint8_t, ~x)
LROW1(bnot_b, uint8_t, uint8_t, !x) /* ~True is False (NumPy) */
static const lrow_table bnot_rows = {{NULL, NULL, bnot_i64, bnot_b, bnot_i32, bnot_u8}};
tg_tensor *tg_bitwise_not(tg_tensor *x) {
    if (!x) return null_input("bitwise_not");
    lrow_fn fn = bnot_rows.by_dtype[x->dtype];
    if (!fn) return (refuse("bitwise_not", x->dtype, INT_OR_BOOL), NULL);
    return logic_unary(&tg_opdef_bitwise_not, x, x->dtype, x->dtype, fn);
}
APPLY1(bitwise_not)
TG_DEFINE_OP(bitwise_not, .arity = 1, .diff_mask = 0, .dtypes = "int64,int32,uint8,bool",
             .forward = "y = ~x", .forward_tex = "y = \\lnot x",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Elementwise bitwise not (operator ``~``) of an integer tensor (two's complement: ~x = -x - 1); logical not of a bool tensor.",
             .backward = NULL, .apply = apply_bitwise_not, .examples = "i100:3x4;i100:T2x3");

/* NumPy's shifts: a count outside [0, bits) shifts everything out: 0 for
 * <<, and the sign (0 or -1) for >>; computed in unsigned, no UB. */
#define SHL(T, UT, BITS, a, b) ((b) < 0 || (b) >= (BITS) ? (T)0 : (T)(UT)((UT)(a) << (b)))
#define SHR(T, BITS, a, b)                                                             \
    ((b) < 0 || (b) >= (BITS) ? (T)((a) < 0 ? -1 : 0)                                  \
                              : (T)((a) < 0 ? ~(~(a) >> (b)) : (a) >> (b)))
LROW2(shl_i64, int64_t, int64_t, SHL(int64_t, uint64_t, 64, a, b))
LROW2(shl_i32, int32_t, int32_t, SHL(int32_t, uint32_t, 32, a, b))
LROW2(shl_u8, uint8_t, uint8_t, (b >= 8 ? 0 : (uint8_t)((unsigned)a << b))) /* b is never negative */
LROW2(shr_i64, int64_t, int64_t, SHR(int64_t, 64, a, b))
LROW2(shr_i32, int32_t, int32_t, SHR(int32_t, 32, a, b))
LROW2(shr_u8, uint8_t, uint8_t, (b >= 8 ? 0 : a >> b))
static const lrow_table shl_rows = {{NULL, NULL, shl_i64, NULL, shl_i32, shl_u8}};
static const lrow_table shr_rows = {{NULL, NULL, shr_i64, NULL, shr_i32, shr_u8}};

#define SHIFT(NAME, ROWS, TEXT, TEX, WHAT)                                             \
    tg_tensor *tg_##NAME(tg_tensor *a, tg_tensor *b) {                                 \
        if (!a || !b) return null_input(#NAME);                                        \
        int dt = int_dtype(#NAME, a, b, false);                                        \
        if (dt < 0) return NULL;                                                       \
        return logic_binary(&tg_opdef_##NAME, a, b, (tg_dtype)dt, (tg_dtype)dt,        \
                            ROWS.by_dtype[dt], NULL);                                  \
    }                                                                                  \
    APPLY2(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 2, .diff_mask = 0, .dtypes = "int64,int32,uint8",      \
                 .forward = "c = a " TEXT " b", .forward_tex = "c = a " TEX " b",     \
                 .vjp = "not differentiable", .vjp_tex = "",                          \
                 .doc = WHAT, .backward = NULL, .apply = apply_##NAME,                 \
                 .examples = "i100:3x4,i9:3x4;i100:2x3x4,i9:4;i100:T3x4,i9:3x1");

SHIFT(left_shift, shl_rows, "<<", "\\ll",
      "Elementwise left shift (operator ``<<``) of integer tensors, wrapping like NumPy; a count outside [0, bits) gives 0.")
SHIFT(right_shift, shr_rows, ">>", "\\gg",
      "Elementwise arithmetic right shift (operator ``>>``) of integer tensors; a count outside [0, bits) gives 0, or -1 for negative numbers (NumPy).")

/* ===================================================================== */
/* isnan / isinf / isfinite                                               */
/* ===================================================================== */

LROW1(isnan_f32, float, uint8_t, isnan(x))
LROW1(isnan_f64, double, uint8_t, isnan(x))
LROW1(isinf_f32, float, uint8_t, isinf(x))
LROW1(isinf_f64, double, uint8_t, isinf(x))
LROW1(isfinite_f32, float, uint8_t, isfinite(x))
LROW1(isfinite_f64, double, uint8_t, isfinite(x))

/* Integers and bools are never NaN or infinite: a constant result. */
static tg_tensor *predicate(const tg_opdef *op, tg_tensor *x, lrow_fn f32, lrow_fn f64, bool ints) {
    if (!x) return null_input(op->name);
    if (tg_dtype_is_float(x->dtype))
        return logic_unary(op, x, x->dtype, TG_BOOL, x->dtype == TG_FLOAT32 ? f32 : f64);
    tg_tensor *out = tg_tensor_full(x->ndim, x->shape, ints ? 1.0 : 0.0, TG_BOOL);
    tg_entry *e;
    return tg__finish(op, 1, &x, out, &e);
}

#define PREDICATE(NAME, INTS, TEXT, TEX, DOC)                                          \
    tg_tensor *tg_##NAME(tg_tensor *x) {                                               \
        return predicate(&tg_opdef_##NAME, x, NAME##_f32, NAME##_f64, INTS);           \
    }                                                                                  \
    APPLY1(NAME)                                                                       \
    TG_DEFINE_OP(NAME, .arity = 1, .diff_mask = 0, .dtypes = "any -> bool",            \
                 .forward = "y = " TEXT, .forward_tex = "y = " TEX,                   \
                 .vjp = "not differentiable", .vjp_tex = "", .doc = DOC,               \
                 .backward = NULL, .apply = apply_##NAME, .examples = "3x4;T2x3;i5:4");

PREDICATE(isnan, false, "[x is NaN]", "[x = \\mathrm{NaN}]",
          "Elementwise test for NaN; bool out (false for integers and bools).")
PREDICATE(isinf, false, "[x is +inf or -inf]", "[|x| = \\infty]",
          "Elementwise test for positive or negative infinity; bool out (false for integers and bools).")
PREDICATE(isfinite, true, "[x is neither NaN nor infinite]", "[x \\in \\mathbb{R}]",
          "Elementwise test for a finite number; bool out (true for integers and bools).")

/* ===================================================================== */
/* isclose                                                                */
/* ===================================================================== */

typedef struct { double rtol, atol; bool equal_nan; } close_ctx;

static void isclose_row(int64_t n, char **p, const int64_t *s, void *vctx) {
    const close_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        double a = *(const double *)(p[1] + i * s[1]), b = *(const double *)(p[2] + i * s[2]);
        bool r;
        if (isnan(a) || isnan(b)) r = c->equal_nan && isnan(a) && isnan(b);
        else if (isinf(a) || isinf(b)) r = a == b; /* infinities: only themselves */
        else r = fabs(a - b) <= c->atol + c->rtol * fabs(b);
        *(uint8_t *)(p[0] + i * s[0]) = r;
    }
}

tg_tensor *tg_isclose(tg_tensor *a, tg_tensor *b, double rtol, double atol, bool equal_nan) {
    if (!a || !b) return null_input("isclose");
    if (!(rtol >= 0) || !(atol >= 0))
        return TG_FAIL(TG_ERR_VALUE, "isclose: rtol and atol must be >= 0, got rtol=%g and atol=%g", rtol, atol);
    close_ctx c = {rtol, atol, equal_nan};
    /* compared in float64: exact for float32 inputs and for integers below 2**53 */
    return logic_binary(&tg_opdef_isclose, a, b, TG_FLOAT64, TG_BOOL, isclose_row, &c);
}
static tg_tensor *apply_isclose(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: isclose takes 2 inputs");
    return tg_isclose(in[0], in[1], p->f[0], p->f[1], p->i[0] != 0);
}
TG_DEFINE_OP(isclose, .arity = 2, .diff_mask = 0, .dtypes = "any -> bool",
             .forward = "c = |a - b| <= atol + rtol * |b| (NaN equal only with equal_nan; inf only to itself)",
             .forward_tex = "c = [\\,|a - b| \\le \\mathrm{atol} + \\mathrm{rtol}\\,|b|\\,]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "Elementwise closeness, NumPy's rule (not symmetric in a and b): rtol (f0), atol (f1), equal_nan (i0); bool out.",
             .backward = NULL, .apply = apply_isclose,
             .examples = "3x4,3x4|f0=1 f1=0.5;2x3x4,4|f0=0.1 f1=1;T3x4,3x1|f0=0.5 f1=0.5 i0=1");

/* ===================================================================== */
/* all / any                                                              */
/* ===================================================================== */

static void all_row(int64_t n, char **p, const int64_t *s, void *ctx) {
    (void)ctx;
    for (int64_t i = 0; i < n; i++) *(uint8_t *)(p[0] + i * s[0]) &= *(const uint8_t *)(p[1] + i * s[1]) != 0;
}
static void any_row(int64_t n, char **p, const int64_t *s, void *ctx) {
    (void)ctx;
    for (int64_t i = 0; i < n; i++) *(uint8_t *)(p[0] + i * s[0]) |= *(const uint8_t *)(p[1] + i * s[1]) != 0;
}

static tg_tensor *all_any(const tg_opdef *op, tg_tensor *x, const int64_t *axes, int naxes,
                          bool keepdims, bool is_all) {
    if (!x) return null_input(op->name);
    uint32_t mask;
    if (tg__axes_mask(op->name, axes, naxes, x->ndim, &mask)) return NULL;
    int64_t kshape[TG_MAX_DIMS], shape[TG_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        bool r = (mask >> d) & 1u;
        kshape[d] = r ? 1 : x->shape[d];
        if (!r || keepdims) shape[nd++] = r ? 1 : x->shape[d];
    }
    tg_tensor *xb = tg__as_dtype(x, TG_BOOL);
    /* the truth of an empty reduction: all() is true, any() is false (NumPy) */
    tg_tensor *acc = xb ? tg_tensor_full(x->ndim, kshape, is_all ? 1.0 : 0.0, TG_BOOL) : NULL;
    if (acc && x->numel > 0) {
        int64_t st[2][TG_MAX_DIMS];
        tg__bcast_strides_bytes(acc, x->ndim, x->shape, st[0]);
        tg__bcast_strides_bytes(xb, x->ndim, x->shape, st[1]);
        char *base[2] = {tg_tensor_data(acc), tg_tensor_data(xb)};
        tg__iterate(2, x->ndim, x->shape, base, st, is_all ? all_row : any_row, NULL);
    }
    tg_tensor_release(xb);
    tg_tensor *out = acc ? tg__view(acc, nd, shape, NULL, 0) : NULL;
    tg_tensor_release(acc);
    tg_entry *e;
    return tg__finish(op, 1, &x, out, &e);
}
tg_tensor *tg_all(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    return all_any(&tg_opdef_all, x, axes, naxes, keepdims, true);
}
tg_tensor *tg_any(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims) {
    return all_any(&tg_opdef_any, x, axes, naxes, keepdims, false);
}
static tg_tensor *apply_all(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: all takes 1 input");
    return tg_all(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims);
}
static tg_tensor *apply_any(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: any takes 1 input");
    return tg_any(in[0], p->naxes < 0 ? NULL : p->axes, p->naxes < 0 ? 0 : p->naxes, p->keepdims);
}
TG_DEFINE_OP(all, .arity = 1, .diff_mask = 0, .dtypes = "any -> bool",
             .forward = "y = all(x != 0, axes)", .forward_tex = "y = \\bigwedge_{\\text{axes}} [x \\ne 0]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "True where every element over axes (all by default) is non-zero; true for an empty reduction.",
             .backward = NULL, .apply = apply_all,
             .examples = "b3x4;b3x4|axes=1;b2x3x4|axes=0,2 keep=1;bT3x4|axes=0;i2:2x3|axes=-1");
TG_DEFINE_OP(any, .arity = 1, .diff_mask = 0, .dtypes = "any -> bool",
             .forward = "y = any(x != 0, axes)", .forward_tex = "y = \\bigvee_{\\text{axes}} [x \\ne 0]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "True where some element over axes (all by default) is non-zero; false for an empty reduction.",
             .backward = NULL, .apply = apply_any,
             .examples = "b3x4;b3x4|axes=1;b2x3x4|axes=0,2 keep=1;bT3x4|axes=0;i2:2x3|axes=-1");
