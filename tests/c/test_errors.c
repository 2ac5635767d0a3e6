/*
 * test_errors.c -- every documented failure returns NULL or a status, sets
 * the right tg_status, and leaves a message that starts with the op (or
 * function) name and names the shapes or values involved.  No failure on
 * user input may crash (several of these would be undefined behaviour or an
 * abort without the checks).
 */
#include "test_util.h"

#include <string.h>

/* A float64 tensor of the given shape filled with 1 (released by the caller). */
static tg_tensor *ones(int ndim, const int64_t *shape) {
    tg_tensor *t = tg_tensor_ones(ndim, shape, TG_FLOAT64);
    ck_tg(t);
    return t;
}

static tg_tensor *ones2(int64_t a, int64_t b) { return ones(2, (int64_t[]){a, b}); }
static tg_tensor *ones1(int64_t a) { return ones(1, &a); }

/* An int64 vector of literal values. */
static tg_tensor *ivec(int64_t n, const int64_t *v) {
    tg_tensor *t = tg_tensor_from_buffer(1, &n, TG_INT64, v);
    ck_tg(t);
    return t;
}

/* Start each check from a clean error state, so that a stale message cannot pass. */
#define FRESH() tg_error_clear()

/* ===================================================================== */
/* Shapes and broadcasting                                                */
/* ===================================================================== */

/* Broadcasting (3, 4) with (5,) fails in every binary op with a message naming the op, shapes and dims. */
START_TEST(test_broadcast_mismatch) {
    tg_tensor *a = ones2(3, 4), *b = ones1(5);
    FRESH();
    ck_assert_ptr_null(tg_add(a, b));
    ck_tg_error(TG_ERR_VALUE, "add: shapes (3, 4) and (5,) cannot be broadcast together",
                "4 (dim 1) != 5 (dim 0)");
    ck_assert(strncmp(tg_error_message(), "add:", 4) == 0);
    tg_tensor *(*ops[])(tg_tensor *, tg_tensor *) = {tg_sub, tg_mul, tg_div, tg_pow, tg_maximum, tg_lt};
    const char *names[] = {"sub:", "mul:", "div:", "pow:", "maximum:", "lt:"};
    for (int i = 0; i < 6; i++) {
        FRESH();
        ck_assert_ptr_null(ops[i](a, b));
        ck_tg_error(TG_ERR_VALUE, names[i], "(3, 4)", "(5,)");
        ck_assert(strncmp(tg_error_message(), names[i], strlen(names[i])) == 0);
    }
    FRESH();
    ck_assert_ptr_null(tg_where(a, b, a));
    ck_tg_error(TG_ERR_VALUE, "where", "(3, 4)", "(5,)");
    /* broadcast_to a smaller or incompatible shape */
    FRESH();
    ck_assert_ptr_null(tg_broadcast_to(a, 2, (int64_t[]){3, 5}));
    ck_tg_error(TG_ERR_VALUE, "broadcast_to", "(3, 4)", "(3, 5)");
    FRESH();
    ck_assert_ptr_null(tg_broadcast_to(a, 1, (int64_t[]){4}));
    ck_tg_error(TG_ERR_VALUE, "broadcast_to", "fewer dimensions");
    /* in-place ops cannot grow their destination */
    tg_tensor *c = ones2(1, 4);
    FRESH();
    ck_assert_int_eq(tg_tensor_inplace_(c, a, '+'), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "iadd", "(3, 4)", "(1, 4)");
    tg_tensor_release(c);
    tg_tensor_release(a);
    tg_tensor_release(b);
}
END_TEST

/* A NULL input to any binary op (and where) is an error naming the op, not a
 * crash: the dtype promotion must not read a NULL tensor first. */
START_TEST(test_null_inputs) {
    tg_tensor *a = ones1(3);
    tg_tensor *(*ops[])(tg_tensor *, tg_tensor *) = {tg_add, tg_sub, tg_mul, tg_div, tg_pow,
                                                     tg_maximum, tg_minimum, tg_eq, tg_lt};
    const char *names[] = {"add:", "sub:", "mul:", "div:", "pow:", "maximum:", "minimum:", "eq:", "lt:"};
    for (int i = 0; i < 9; i++) {
        for (int side = 0; side < 2; side++) {
            FRESH();
            ck_assert_ptr_null(side ? ops[i](a, NULL) : ops[i](NULL, a));
            ck_tg_error(TG_ERR_VALUE, names[i], "NULL");
        }
    }
    FRESH();
    ck_assert_ptr_null(tg_where(NULL, a, a));
    ck_tg_error(TG_ERR_VALUE, "where", "NULL");
    FRESH();
    ck_assert_ptr_null(tg_where(a, a, NULL));
    ck_tg_error(TG_ERR_VALUE, "where", "NULL");
    tg_tensor_release(a);
}
END_TEST

/* matmul names both shapes and the mismatched dims; 0-d operands and bad batch dims are refused. */
START_TEST(test_matmul_errors) {
    tg_tensor *a = ones2(3, 4), *b = ones2(5, 6);
    FRESH();
    ck_assert_ptr_null(tg_matmul(a, b));
    ck_tg_error(TG_ERR_VALUE, "matmul: shapes (3, 4) and (5, 6) are not aligned: 4 (dim 1) != 5 (dim 0)");
    tg_tensor *v = ones1(5);
    FRESH();
    ck_assert_ptr_null(tg_matmul(a, v)); /* (3, 4) @ (5,) */
    ck_tg_error(TG_ERR_VALUE, "matmul: shapes (3, 4) and (5,) are not aligned: 4 (dim 1) != 5 (dim 0)");
    FRESH();
    ck_assert_ptr_null(tg_matmul(v, a)); /* (5,) @ (3, 4) */
    ck_tg_error(TG_ERR_VALUE, "matmul", "(5,)", "(3, 4)", "5 (dim 0) != 3 (dim 0)");
    tg_tensor *s = tg_tensor_scalar(2, TG_FLOAT64);
    FRESH();
    ck_assert_ptr_null(tg_matmul(s, a));
    ck_tg_error(TG_ERR_VALUE, "matmul", "0-d");
    FRESH();
    ck_assert_ptr_null(tg_matmul(a, s));
    ck_tg_error(TG_ERR_VALUE, "matmul", "operand 1", "0-d");
    tg_tensor *b1 = ones(3, (int64_t[]){2, 3, 4}), *b2 = ones(3, (int64_t[]){5, 4, 6});
    FRESH();
    ck_assert_ptr_null(tg_matmul(b1, b2));
    ck_tg_error(TG_ERR_VALUE, "matmul: shapes (2, 3, 4) and (5, 4, 6)", "(2,) and (5,)", "broadcast");
    tg_tensor *all[] = {b1, b2, s, v, a, b};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
}
END_TEST

/* NumPy's products and functions (npfuncs.c): mismatched summed axes, a cross
 * axis not of size 3, bad diff orders and integer inputs are refused by name. */
START_TEST(test_npfuncs_errors) {
    tg_tensor *a = ones2(3, 4), *b = ones2(5, 2), *v3 = ones1(3), *v4 = ones1(4);
    FRESH();
    ck_assert_ptr_null(tg_tensordot(a, b, (int64_t[]){1}, (int64_t[]){0}, 1));
    ck_tg_error(TG_ERR_VALUE, "tensordot", "(3, 4)", "(5, 2)", "size 4 on axis 1", "size 5 on axis 0");
    FRESH();
    ck_assert_ptr_null(tg_tensordot(a, a, (int64_t[]){0, 0}, (int64_t[]){0, 1}, 2));
    ck_tg_error(TG_ERR_VALUE, "tensordot", "repeated");
    FRESH();
    ck_assert_ptr_null(tg_tensordot(a, v3, (int64_t[]){0, 1}, (int64_t[]){0, 0}, 2));
    ck_tg_error(TG_ERR_VALUE, "tensordot", "2 summed axes", "(3,)");
    FRESH();
    ck_assert_ptr_null(tg_tensordot(a, b, (int64_t[]){7}, (int64_t[]){0}, 1));
    ck_tg_error(TG_ERR_INDEX, "tensordot", "axis 7");
    FRESH();
    ck_assert_ptr_null(tg_dot(a, b));
    ck_tg_error(TG_ERR_VALUE, "dot: shapes (3, 4) and (5, 2) not aligned");
    FRESH();
    ck_assert_ptr_null(tg_inner(a, v3));
    ck_tg_error(TG_ERR_VALUE, "inner", "(3, 4)", "(3,)", "4 != 3");
    FRESH();
    ck_assert_ptr_null(tg_cross(v4, v4, -1));
    ck_tg_error(TG_ERR_VALUE, "cross", "(4,)", "expected 3");
    FRESH();
    ck_assert_ptr_null(tg_cross(a, v3, -1));
    ck_tg_error(TG_ERR_VALUE, "cross", "(3, 4)", "(3,)", "broadcast");
    FRESH();
    ck_assert_ptr_null(tg_diff(v3, -1, 0, NULL, NULL));
    ck_tg_error(TG_ERR_VALUE, "diff", "non-negative");
    tg_tensor *s = tg_tensor_scalar(1, TG_FLOAT64);
    FRESH();
    ck_assert_ptr_null(tg_diff(s, 1, 0, NULL, NULL));
    ck_tg_error(TG_ERR_VALUE, "diff", "one dimensional");
    tg_tensor *big = ones(5, (int64_t[]){1, 1, 1, 1, 1});
    FRESH();
    ck_assert_ptr_null(tg_kron(big, v3));
    ck_tg_error(TG_ERR_VALUE, "kron", "4 dims");
    tg_tensor *i = tg_tensor_ones(1, (int64_t[]){3}, TG_INT64), *bl = tg_tensor_ones(1, (int64_t[]){3}, TG_BOOL);
    FRESH();
    ck_assert_ptr_null(tg_tensordot(i, i, (int64_t[]){0}, (int64_t[]){0}, 1));
    ck_tg_error(TG_ERR_TYPE, "tensordot", "int64");
    FRESH();
    ck_assert_ptr_null(tg_sinc(i));
    ck_tg_error(TG_ERR_TYPE, "sinc", "int64");
    FRESH();
    ck_assert_ptr_null(tg_fmax(bl, bl));
    ck_tg_error(TG_ERR_TYPE, "fmax", "bool");
    FRESH();
    ck_assert_ptr_null(tg_outer(NULL, v3));
    ck_tg_error(TG_ERR_VALUE, "outer");
    tg_tensor *all[] = {a, b, v3, v4, s, big, i, bl};
    for (int k = 0; k < 8; k++) tg_tensor_release(all[k]);
}
END_TEST

/* Axes out of range and repeated axes are refused by reductions and movement ops. */
START_TEST(test_axis_errors) {
    tg_tensor *x = ones2(3, 4);
    FRESH();
    ck_assert_ptr_null(tg_sum(x, (int64_t[]){2}, 1, false));
    ck_tg_error(TG_ERR_INDEX, "sum: axis 2 is out of range for a tensor with 2 dimensions");
    FRESH();
    ck_assert_ptr_null(tg_mean(x, (int64_t[]){-3}, 1, false));
    ck_tg_error(TG_ERR_INDEX, "mean", "axis -3");
    FRESH();
    ck_assert_ptr_null(tg_sum(x, (int64_t[]){0, -2}, 2, false));
    ck_tg_error(TG_ERR_VALUE, "sum", "repeated");
    FRESH();
    ck_assert_ptr_null(tg_max(x, (int64_t[]){1, 1}, 2, true));
    ck_tg_error(TG_ERR_VALUE, "max", "repeated");
    FRESH();
    ck_assert_ptr_null(tg_permute(x, (int64_t[]){1, 1}));
    ck_tg_error(TG_ERR_VALUE, "permute", "repeated");
    FRESH();
    ck_assert_ptr_null(tg_transpose(x, 0, 5));
    ck_tg_error(TG_ERR_INDEX, "transpose", "axis 5");
    FRESH();
    ck_assert_ptr_null(tg_softmax(x, 2));
    ck_tg_error(TG_ERR_INDEX, "softmax", "axis 2");
    FRESH();
    ck_assert_ptr_null(tg_argmax(x, -3, false));
    ck_tg_error(TG_ERR_INDEX, "argmax");
    FRESH();
    ck_assert_ptr_null(tg_unsqueeze(x, 4));
    ck_tg_error(TG_ERR_INDEX, "unsqueeze", "axis 4");
    FRESH();
    ck_assert_ptr_null(tg_concat(1, &x, 2));
    ck_tg_error(TG_ERR_INDEX, "concat", "axis 2");
    tg_tensor_release(x);
}
END_TEST

/* Negative dimensions, too many dims and element counts that overflow are refused by creation. */
START_TEST(test_shape_errors) {
    FRESH();
    ck_assert_ptr_null(tg_tensor_zeros(2, (int64_t[]){3, -1}, TG_FLOAT32));
    ck_tg_error(TG_ERR_VALUE, "negative dimension -1", "(3, -1)");
    ck_assert(strncmp(tg_error_message(), "empty:", 6) == 0);
    FRESH();
    ck_assert_ptr_null(tg_tensor_eye(-2, 3, 0, TG_FLOAT32));
    ck_tg_error(TG_ERR_VALUE, "negative dimension");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    FRESH();
    ck_assert_ptr_null(tg_tensor_ones(9, nine, TG_FLOAT64));
    ck_tg_error(TG_ERR_VALUE, "9 dimensions", "at most 8");
    tg_tensor *x = ones1(1);
    FRESH();
    ck_assert_ptr_null(tg_reshape(x, 9, nine));
    ck_tg_error(TG_ERR_VALUE, "reshape", "at most 8");
    tg_tensor *x8 = tg_reshape(x, 8, nine);
    ck_tg(x8);
    FRESH();
    ck_assert_ptr_null(tg_unsqueeze(x8, 0));
    ck_tg_error(TG_ERR_VALUE, "unsqueeze", "more than 8");
    FRESH();
    ck_assert_ptr_null(tg_tensor_empty(1, (int64_t[]){3}, (tg_dtype)9));
    ck_tg_error(TG_ERR_TYPE, "empty", "dtype");
    tg_tensor_release(x8);
    tg_tensor_release(x);
}
END_TEST

/* A shape whose element or byte count overflows 64 bits is TG_ERR_MEMORY, never a crash or a wrong size. */
START_TEST(test_shape_overflow) {
    const int64_t big = (int64_t)1 << 40;
    int64_t sh[2] = {big, big}; /* 2^80 elements */
    FRESH();
    ck_assert_ptr_null(tg_tensor_zeros(2, sh, TG_FLOAT32));
    ck_tg_error(TG_ERR_MEMORY, "empty", "overflows");
    FRESH();
    ck_assert_ptr_null(tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64));
    ck_tg_error(TG_ERR_MEMORY, "overflows");
    int64_t sh2[2] = {(int64_t)1 << 31, (int64_t)1 << 31}; /* 2^62 elements: the bytes overflow */
    FRESH();
    ck_assert_ptr_null(tg_tensor_full(2, sh2, 1, TG_FLOAT64));
    ck_tg_error(TG_ERR_MEMORY, "too many bytes");
    /* 2^50 float64 elements: counts fit, the allocation itself fails */
    int64_t sh3[3] = {(int64_t)1 << 20, (int64_t)1 << 20, (int64_t)1 << 10};
    FRESH();
    ck_assert_ptr_null(tg_tensor_empty(3, sh3, TG_FLOAT64));
    ck_tg_error(TG_ERR_MEMORY, "storage");
    /* a view whose element count overflows (broadcast_to) */
    tg_tensor *one = ones2(1, 1);
    FRESH();
    ck_assert_ptr_null(tg_broadcast_to(one, 2, sh));
    ck_tg_error(TG_ERR_MEMORY, "broadcast_to", "overflows");
    FRESH();
    ck_assert_ptr_null(tg_broadcast_to(one, 3, (int64_t[]){-2, 1, 1}));
    ck_tg_error(TG_ERR_VALUE, "broadcast_to", "negative");
    /* padding that makes a dimension overflow */
    FRESH();
    ck_assert_ptr_null(tg_pad(one, (int64_t[]){INT64_MAX, 1, 0, 0}, 0));
    ck_tg_error(TG_ERR_MEMORY, "pad");
    /* reshape to an overflowing shape */
    FRESH();
    ck_assert_ptr_null(tg_reshape(one, 2, sh));
    ck_tg_error(TG_ERR_VALUE, "reshape", "too large");
    /* arange with a count beyond int64 */
    FRESH();
    ck_assert_ptr_null(tg_tensor_arange(0, 1e300, 1, TG_FLOAT64));
    ck_tg_error(TG_ERR_MEMORY, "arange");
    tg_tensor_release(one);
}
END_TEST

/* reshape with the wrong element count or two -1s fails naming both shapes. */
START_TEST(test_reshape_errors) {
    tg_tensor *x = ones2(3, 4);
    FRESH();
    ck_assert_ptr_null(tg_reshape(x, 1, (int64_t[]){5}));
    ck_tg_error(TG_ERR_VALUE, "reshape", "(3, 4)", "12 elements", "(5,)");
    FRESH();
    ck_assert_ptr_null(tg_reshape(x, 2, (int64_t[]){-1, -1}));
    ck_tg_error(TG_ERR_VALUE, "reshape", "one unknown dimension");
    FRESH();
    ck_assert_ptr_null(tg_reshape(x, 2, (int64_t[]){-1, 5}));
    ck_tg_error(TG_ERR_VALUE, "reshape", "size 12", "(-1, 5)");
    FRESH();
    ck_assert_ptr_null(tg_reshape(x, 2, (int64_t[]){-3, -4}));
    ck_tg_error(TG_ERR_VALUE, "reshape", "-3");
    tg_tensor *ok = tg_reshape(x, 2, (int64_t[]){-1, 6});
    ck_tg(ok);
    ck_assert_int_eq(ok->shape[0], 2);
    tg_tensor_release(ok);
    tg_tensor_release(x);
}
END_TEST

/* ===================================================================== */
/* Dtypes                                                                 */
/* ===================================================================== */

/* int64 cannot require grad; float functions promote int64 to float64 (NumPy); matmul refuses int64. */
START_TEST(test_dtype_errors) {
    int64_t iv[3] = {0, 1, 2};
    tg_tensor *i = ivec(3, iv);
    FRESH();
    ck_assert_int_eq(tg_tensor_set_requires_grad(i, true), TG_ERR_TYPE);
    ck_tg_error(TG_ERR_TYPE, "requires_grad", "int64");
    /* exp of int64 computes in float64 */
    tg_tensor *e = tg_exp(i);
    ck_tg(e);
    ck_assert_int_eq(e->dtype, TG_FLOAT64);
    for (int k = 0; k < 3; k++) ck_assert_double_eq_tol(tg_tensor_get_flat(e, k), exp((double)k), 1e-15);
    tg_tensor *sq = tg_sqrt(i);
    ck_assert_int_eq(sq->dtype, TG_FLOAT64);
    ck_assert_double_eq_tol(tg_tensor_get_flat(sq, 2), sqrt(2.0), 1e-15);
    /* int64 / int64 is true division */
    tg_tensor *d = tg_div(i, i);
    ck_assert_int_eq(d->dtype, TG_FLOAT64);
    ck_assert(isnan(tg_tensor_get_flat(d, 0)));
    /* matmul of int64 */
    int64_t m[4] = {1, 2, 3, 4};
    tg_tensor *mi = tg_tensor_from_buffer(2, (int64_t[]){2, 2}, TG_INT64, m);
    FRESH();
    ck_assert_ptr_null(tg_matmul(mi, mi));
    ck_tg_error(TG_ERR_TYPE, "matmul", "int64");
    /* reductions that need floats: the mean of ints is float64 (NumPy), var refuses them */
    FRESH();
    tg_tensor *mi64 = tg_mean(i, NULL, 0, false);
    ck_tg(mi64);
    ck_assert_int_eq(mi64->dtype, TG_FLOAT64);
    ck_assert_double_eq_tol(tg_tensor_get_flat(mi64, 0), 1.0, 1e-15);
    tg_tensor_release(mi64);
    /* random numbers are float only; an invalid cast target is a type error */
    FRESH();
    ck_assert_ptr_null(tg_tensor_randn(1, (int64_t[]){3}, 0, 1, TG_INT64));
    ck_tg_error(TG_ERR_TYPE, "randn", "int64");
    FRESH();
    ck_assert_ptr_null(tg_cast(e, (tg_dtype)TG_N_DTYPES));
    ck_tg_error(TG_ERR_TYPE, "cast");
    tg_tensor *all[] = {mi, d, sq, e, i};
    for (int k = 0; k < 5; k++) tg_tensor_release(all[k]);
}
END_TEST

/* ===================================================================== */
/* Indices                                                                */
/* ===================================================================== */

/* index_select, gather and integer slicing refuse out-of-range indices with TG_ERR_INDEX. */
START_TEST(test_index_errors) {
    tg_tensor *x = ones2(3, 4);
    tg_tensor *idx = ivec(2, (int64_t[]){1, 5});
    FRESH();
    ck_assert_ptr_null(tg_index_select(x, 0, idx));
    ck_tg_error(TG_ERR_INDEX, "index_select: index 5 is out of bounds for axis 0 with size 3");
    tg_tensor *neg = ivec(2, (int64_t[]){-4, 0});
    FRESH();
    ck_assert_ptr_null(tg_index_select(x, 0, neg));
    ck_tg_error(TG_ERR_INDEX, "index_select", "index -4");
    tg_tensor *fidx = ones1(2);
    FRESH();
    ck_assert_ptr_null(tg_index_select(x, 0, fidx));
    ck_tg_error(TG_ERR_TYPE, "index_select", "int64", "float64");
    /* negative indices in range count from the end */
    tg_tensor *last = ivec(1, (int64_t[]){-1});
    tg_tensor *r = tg_index_select(x, 1, last);
    ck_tg(r);
    ck_assert_int_eq(r->shape[1], 1);
    tg_tensor_release(r);
    /* gather */
    int64_t gv[6] = {0, 1, 2, 3, 4, 0};
    tg_tensor *gi = tg_tensor_from_buffer(2, (int64_t[]){3, 2}, TG_INT64, gv);
    FRESH();
    ck_assert_ptr_null(tg_gather(x, 1, gi));
    ck_tg_error(TG_ERR_INDEX, "gather", "index 4", "axis 1", "size 4");
    FRESH();
    ck_assert_ptr_null(tg_gather(x, 1, idx));
    ck_tg_error(TG_ERR_VALUE, "gather", "dimensions");
    /* slicing with an integer index */
    int64_t st[2] = {3, 0}, sp[2] = {0, 4};
    FRESH();
    ck_assert_ptr_null(tg_slice(x, st, sp, NULL, 1u));
    ck_tg_error(TG_ERR_INDEX, "index 3 is out of bounds for axis 0 with size 3");
    st[0] = -4;
    FRESH();
    ck_assert_ptr_null(tg_slice(x, st, sp, NULL, 1u));
    ck_tg_error(TG_ERR_INDEX, "index -4");
    st[0] = 0;
    FRESH();
    ck_assert_ptr_null(tg_slice(x, st, sp, (int64_t[]){1, 0}, 0));
    ck_tg_error(TG_ERR_VALUE, "slice", "step cannot be zero");
    tg_tensor *all[] = {gi, last, fidx, neg, idx, x};
    for (int k = 0; k < 6; k++) tg_tensor_release(all[k]);
}
END_TEST

/* cross_entropy / nll_loss / one_hot name the bad label and its position; labels must be int64. */
START_TEST(test_label_errors) {
    tg_tensor *logits = ones2(4, 5);
    tg_tensor *labels = ivec(4, (int64_t[]){0, 4, 7, 1});
    FRESH();
    ck_assert_ptr_null(tg_cross_entropy(logits, labels, TG_REDUCTION_MEAN));
    ck_tg_error(TG_ERR_INDEX, "cross_entropy: label 7 at position 2 is out of range for 5 classes");
    tg_tensor *negl = ivec(4, (int64_t[]){0, -1, 1, 1});
    FRESH();
    ck_assert_ptr_null(tg_nll_loss(logits, negl, TG_REDUCTION_SUM));
    ck_tg_error(TG_ERR_INDEX, "nll_loss", "label -1 at position 1");
    FRESH();
    ck_assert_ptr_null(tg_one_hot(labels, 5, TG_FLOAT32));
    ck_tg_error(TG_ERR_INDEX, "one_hot", "label 7");
    tg_tensor *flab = ones1(4);
    FRESH();
    ck_assert_ptr_null(tg_cross_entropy(logits, flab, TG_REDUCTION_MEAN));
    ck_tg_error(TG_ERR_TYPE, "cross_entropy", "int64");
    tg_tensor *short_l = ivec(3, (int64_t[]){0, 1, 2});
    FRESH();
    ck_assert_ptr_null(tg_cross_entropy(logits, short_l, TG_REDUCTION_MEAN));
    ck_tg_error(TG_ERR_VALUE, "cross_entropy", "(4, 5)", "(3,)");
    tg_tensor *ok_l = ivec(4, (int64_t[]){0, 1, 2, 3});
    FRESH();
    ck_assert_ptr_null(tg_cross_entropy(logits, ok_l, (tg_reduction)7));
    ck_tg_error(TG_ERR_VALUE, "cross_entropy", "reduction");
    /* and a valid call works: uniform logits give log(5) */
    tg_tensor *ce = tg_cross_entropy(logits, ok_l, TG_REDUCTION_MEAN);
    ck_assert_double_eq_tol(tt_item(ce), log(5.0), 1e-12);
    tg_tensor *all[] = {ce, ok_l, short_l, flab, negl, labels, logits};
    for (int k = 0; k < 7; k++) tg_tensor_release(all[k]);
}
END_TEST

/* ===================================================================== */
/* Other argument checks                                                  */
/* ===================================================================== */

/* concat and stack name the mismatched tensors and shapes. */
START_TEST(test_concat_errors) {
    tg_tensor *a = ones2(2, 3), *b = ones2(2, 4), *c = ones1(3);
    tg_tensor *ab[2] = {a, b}, *ac[2] = {a, c};
    FRESH();
    ck_assert_ptr_null(tg_concat(2, ab, 0));
    ck_tg_error(TG_ERR_VALUE, "concat", "axis 0", "(2, 3)", "tensor 1", "(2, 4)");
    tg_tensor *ok = tg_concat(2, ab, 1);
    ck_tg(ok);
    ck_assert_int_eq(ok->shape[1], 7);
    FRESH();
    ck_assert_ptr_null(tg_concat(2, ac, 0));
    ck_tg_error(TG_ERR_VALUE, "concat", "same number of dimensions");
    FRESH();
    ck_assert_ptr_null(tg_concat(0, ab, 0));
    ck_tg_error(TG_ERR_VALUE, "concat", "at least one");
    FRESH();
    ck_assert_ptr_null(tg_stack(2, ab, 0));
    ck_tg_error(TG_ERR_VALUE, "stack", "(2, 3)", "(2, 4)");
    tg_tensor *all[] = {ok, a, b, c};
    for (int k = 0; k < 4; k++) tg_tensor_release(all[k]);
}
END_TEST

/* pad refuses negative widths, dropout refuses p outside [0, 1], mse_loss refuses different shapes. */
START_TEST(test_argument_errors) {
    tg_tensor *x = ones2(2, 3);
    FRESH();
    ck_assert_ptr_null(tg_pad(x, (int64_t[]){0, 0, -1, 2}, 0));
    ck_tg_error(TG_ERR_VALUE, "pad", ">= 0", "(-1, 2)", "dim 1");
    double ps[3] = {-0.1, 1.5, NAN};
    for (int k = 0; k < 3; k++) {
        FRESH();
        ck_assert_ptr_null(tg_dropout(x, ps[k], true));
        ck_tg_error(TG_ERR_VALUE, "dropout", "[0, 1]");
    }
    tg_tensor *y = ones2(3, 2), *col = ones2(2, 1);
    FRESH();
    ck_assert_ptr_null(tg_mse_loss(x, y, TG_REDUCTION_MEAN));
    ck_tg_error(TG_ERR_VALUE, "mse_loss", "same shape", "(2, 3)", "(3, 2)");
    FRESH();
    ck_assert_ptr_null(tg_mse_loss(x, col, TG_REDUCTION_MEAN)); /* no silent broadcast */
    ck_tg_error(TG_ERR_VALUE, "mse_loss", "(2, 1)");
    FRESH();
    ck_assert_ptr_null(tg_bce_with_logits(x, y, TG_REDUCTION_SUM));
    ck_tg_error(TG_ERR_VALUE, "bce_with_logits", "(2, 3)", "(3, 2)");
    FRESH();
    ck_assert_ptr_null(tg_tensor_bernoulli(1, (int64_t[]){3}, -1, TG_FLOAT32));
    ck_tg_error(TG_ERR_VALUE, "bernoulli");
    FRESH();
    ck_assert_ptr_null(tg_flatten(x, 1, 0));
    ck_tg_error(TG_ERR_VALUE, "flatten");
    FRESH();
    ck_assert_int_eq(tg_tensor_set_grad(x, y), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "grad", "(3, 2)", "(2, 3)");
    FRESH();
    ck_assert_ptr_null(tg_sum_to_shape(x, 2, (int64_t[]){3, 1}));
    ck_tg_error(TG_ERR_VALUE, "sum_to_shape", "(2, 3)", "(3, 1)");
    tg_tensor *all[] = {col, y, x};
    for (int k = 0; k < 3; k++) tg_tensor_release(all[k]);
}
END_TEST

/* tg_error_clear resets status and message; successful calls do not clear a previous error. */
START_TEST(test_error_clear) {
    tg_tensor *a = ones2(3, 4), *b = ones1(5);
    FRESH();
    ck_assert_int_eq(tg_error_status(), TG_OK);
    ck_assert_str_eq(tg_error_message(), "");
    ck_assert_ptr_null(tg_add(a, b));
    ck_assert_int_eq(tg_error_status(), TG_ERR_VALUE);
    tg_tensor *ok = tg_add(a, a);
    ck_tg(ok);
    ck_assert_int_eq(tg_error_status(), TG_ERR_VALUE); /* still there */
    ck_assert(strstr(tg_error_message(), "add:") != NULL);
    tg_error_clear();
    ck_assert_int_eq(tg_error_status(), TG_OK);
    ck_assert_str_eq(tg_error_message(), "");
    /* tg_error_set returns its status and formats the message */
    ck_assert_int_eq(tg_error_set(TG_ERR_CALLBACK, "hook %d failed", 3), TG_ERR_CALLBACK);
    ck_tg_error(TG_ERR_CALLBACK, "hook 3 failed");
    /* a very long message is truncated, not overflowed */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tg_error_set(TG_ERR_VALUE, "%s", big);
    ck_assert(strlen(tg_error_message()) > 100 && strlen(tg_error_message()) < sizeof big - 1);
    tg_error_clear();
    tg_tensor_release(ok);
    tg_tensor_release(a);
    tg_tensor_release(b);
}
END_TEST

/* Autograd misuse: backward without grad, in-place on a leaf that requires grad, set_requires_grad on a non-leaf. */
START_TEST(test_autograd_errors) {
    tg_tensor *x = ones1(3);
    tg_tensor *s = tg_sum(x, NULL, 0, false);
    FRESH();
    ck_assert_int_eq(tg_backward(s, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "backward", "does not require grad");
    ck_tg_ok(tg_tensor_set_requires_grad(x, true));
    FRESH();
    ck_assert_int_eq(tg_tensor_fill_(x, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "fill_", "no_grad");
    tg_tensor *y = tg_exp(x);
    FRESH();
    ck_assert_int_eq(tg_tensor_set_requires_grad(y, false), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "requires_grad", "exp");
    tg_tensor_release(y);
    tg_tensor_release(s);
    tg_tensor_release(x);
}
END_TEST

Suite *errors_suite(void) {
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("shapes");
    tcase_add_test(tc, test_broadcast_mismatch);
    tcase_add_test(tc, test_matmul_errors);
    tcase_add_test(tc, test_npfuncs_errors);
    tcase_add_test(tc, test_axis_errors);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_shape_overflow);
    tcase_add_test(tc, test_reshape_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_test(tc, test_dtype_errors);
    tcase_add_test(tc, test_index_errors);
    tcase_add_test(tc, test_label_errors);
    tcase_add_test(tc, test_concat_errors);
    tcase_add_test(tc, test_argument_errors);
    tcase_add_test(tc, test_error_clear);
    tcase_add_test(tc, test_null_inputs);
    tcase_add_test(tc, test_autograd_errors);
    suite_add_tcase(s, tc);
    return s;
}
