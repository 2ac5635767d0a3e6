/*
 * test_inplace.c -- in-place writes on the tape (csrc/ops/inplace.c): the
 * rebase (a new tensor object per version, handed to the rebase hook),
 * writes through views (copy_slices / as_strided), buffers that join the
 * graph, the leaf rule, the version check, and bad input.
 *
 * Expected gradients are closed forms worked out in each test.
 */
#include "test_util.h"

#include <string.h>

#define TOL 1e-12

/* The rebase hook of these tests: the caller's handle follows the newest
 * version (what the Python binding does with its Python object). */
static tg_tensor **handles[4];

static void follow(tg_tensor *old, tg_tensor *n) {
    for (int i = 0; i < 4; i++)
        if (handles[i] && *handles[i] == old) {
            tg_tensor_retain(n);
            *handles[i] = n;
            tg_tensor_release(old);
        }
}

static void setup(void) {
    memset(handles, 0, sizeof handles);
    tg_set_rebase_hook(follow);
    tg_set_grad_enabled(true);
}
static void teardown(void) { tg_set_rebase_hook(NULL); }

static tg_tensor *scalar(double v) {
    tg_tensor *t = tg_tensor_scalar(v, TG_FLOAT64);
    ck_tg(t);
    return t;
}

static tg_tensor *grad_of_sum(tg_tensor *y, tg_tensor *x) {
    tg_tensor *s = tg_sum(y, NULL, 0, false);
    ck_tg(s);
    ck_tg_ok(tg_backward(s, NULL, TG_RETAIN_GRAPH));
    tg_tensor_release(s);
    ck_assert_ptr_nonnull(x->grad);
    return x->grad;
}

/* y = 3x; y += x; y *= x  ->  y = 4x^2, dy/dx = 8x; the handle y follows. */
START_TEST(test_iadd_imul_rebase) {
    double xv[3] = {1, -2, 0.5};
    tg_tensor *x = tt_vec(3, xv, true);
    tg_tensor *three = scalar(3);
    tg_tensor *y = tg_mul(x, three);
    ck_tg(y);
    tg_tensor *first = y;
    tg_tensor_retain(first);
    tg_entry *e1 = y->grad_fn;
    handles[0] = &y;
    ck_tg_ok(tg_tensor_inplace_(y, x, '+'));
    ck_assert_ptr_ne(y, first); /* a new object for the new version */
    ck_assert_ptr_eq(first->grad_fn, e1); /* the old one keeps its history */
    ck_assert_str_eq(tg_entry_name(y->grad_fn), "add");
    ck_assert_str_eq(tg_entry_inplace(y->grad_fn), "iadd");
    ck_assert_ptr_null(tg_entry_inplace(e1));
    ck_tg_ok(tg_mul_(y, x));
    ck_assert_str_eq(tg_entry_inplace(y->grad_fn), "mul_");
    ck_assert_ptr_eq(tg_tensor_data(y), tg_tensor_data(first)); /* same memory */
    double yv[3] = {4, 16, 1};
    ck_assert_double_le(tt_diff_to(y, yv), TOL);
    tg_tensor *g = grad_of_sum(y, x);
    double gv[3] = {8, -16, 4};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    tg_tensor_release(first);
    tg_tensor_release(y);
    tg_tensor_release(three);
    tg_tensor_release(x);
}
END_TEST

/* c = x + 0; c += c + 1  ->  c = 2x + 1: the entry of (c + 1) reads the OLD c. */
START_TEST(test_self_reference) {
    double xv[2] = {-4, 3};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *zero = scalar(0), *one = scalar(1);
    tg_tensor *c = tg_add(x, zero);
    ck_tg(c);
    handles[0] = &c;
    tg_tensor *c1 = tg_add(c, one);
    ck_tg(c1);
    ck_tg_ok(tg_add_(c, c1, 1.0));
    double cv[2] = {-7, 7};
    ck_assert_double_le(tt_diff_to(c, cv), TOL);
    tg_tensor *g = grad_of_sum(c, x);
    double gv[2] = {2, 2};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    tg_tensor_release(c1);
    tg_tensor_release(c);
    tg_tensor_release(zero);
    tg_tensor_release(one);
    tg_tensor_release(x);
}
END_TEST

/* y = x * 1 (2x3); the column y[:, 1] *= 5 through a view: d sum(y)/dx = 1
 * except 5 on column 1; the view's own history reads the new values. */
START_TEST(test_write_through_a_view) {
    int64_t sh[2] = {2, 3};
    double xv[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *x = tt_from(2, sh, xv);
    ck_tg_ok(tg_tensor_set_requires_grad(x, true));
    tg_tensor *one = scalar(1), *five = scalar(5);
    tg_tensor *y = tg_mul(x, one);
    ck_tg(y);
    int64_t st[2] = {0, 1}, sp[2] = {2, 2}, step[2] = {1, 1};
    tg_tensor *v = tg_slice(y, st, sp, step, 2u); /* y[:, 1] */
    ck_tg(v);
    handles[0] = &y;
    handles[1] = &v;
    ck_tg_ok(tg_mul_(v, five));
    ck_assert_str_eq(tg_entry_name(y->grad_fn), "copy_slices");
    ck_assert_str_eq(tg_entry_name(v->grad_fn), "as_strided");
    double yv[6] = {1, 10, 3, 4, 25, 6};
    ck_assert_double_le(tt_diff_to(y, yv), TOL);
    tg_tensor *g = grad_of_sum(y, x);
    double gv[6] = {1, 5, 1, 1, 5, 1};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    ck_tg_ok(tg_tensor_set_grad(x, NULL));
    g = grad_of_sum(v, x);
    double gv2[6] = {0, 5, 0, 0, 5, 0};
    ck_assert_double_le(tt_diff_to(g, gv2), TOL);
    tg_tensor_release(v);
    tg_tensor_release(y);
    tg_tensor_release(one);
    tg_tensor_release(five);
    tg_tensor_release(x);
}
END_TEST

/* buf = zeros(4) (not in the graph); buf[1:3] = x makes it part of it. */
START_TEST(test_buffer_joins_the_graph) {
    double xv[2] = {2, 3};
    tg_tensor *x = tt_vec(2, xv, true);
    int64_t n = 4;
    tg_tensor *buf = tg_tensor_zeros(1, &n, TG_FLOAT64);
    ck_tg(buf);
    int64_t st = 1, sp = 3, step = 1;
    tg_tensor *view = tg_slice(buf, &st, &sp, &step, 0u); /* not recorded: buf needs no grad */
    ck_tg(view);
    ck_assert_ptr_null(view->grad_fn);
    handles[0] = &buf;
    ck_tg_ok(tg_setitem_(buf, view, x));
    ck_assert(buf->requires_grad);
    double bv[4] = {0, 2, 3, 0};
    ck_assert_double_le(tt_diff_to(buf, bv), TOL);
    tg_tensor *sq = tg_mul(buf, buf);
    ck_tg(sq);
    tg_tensor *g = grad_of_sum(sq, x); /* d sum(buf^2)/dx = 2x */
    double gv[2] = {4, 6};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    tg_tensor_release(sq);
    tg_tensor_release(view);
    tg_tensor_release(buf);
    tg_tensor_release(x);
}
END_TEST

START_TEST(test_leaf_rule) {
    double xv[2] = {1, 2};
    tg_tensor *w = tt_vec(2, xv, true);
    ck_tg_ok(tg_tensor_set_name(w, "w"));
    tg_tensor *one = scalar(1);
    ck_assert_int_eq(tg_add_(w, one, 1.0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "add_", "leaf tensor", "'w'", "(2,)", "no_grad");
    ck_assert_int_eq(tg_fill_value_(w, 0), TG_ERR_RUNTIME);
    double same[2] = {1, 2};
    ck_assert_double_le(tt_diff_to(w, same), 0);
    bool prev = tg_set_grad_enabled(false); /* as an optimizer: written, not recorded */
    ck_tg_ok(tg_add_(w, one, -0.5));
    ck_tg_ok(tg_clip_(w, NAN, 1.0));
    tg_set_grad_enabled(prev);
    double after[2] = {0.5, 1.0};
    ck_assert_double_le(tt_diff_to(w, after), TOL);
    ck_assert_ptr_null(w->grad_fn);
    tg_tensor_release(one);
    tg_tensor_release(w);
}
END_TEST

/* exp saves its output: writing into it makes backward refuse. */
START_TEST(test_version_check) {
    double xv[2] = {0.5, 1};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_exp(x);
    ck_tg(y);
    handles[0] = &y;
    ck_tg_ok(tg_relu_(y));
    tg_tensor *s = tg_sum(y, NULL, 0, false);
    ck_tg(s);
    ck_assert_int_eq(tg_backward(s, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "modified in place", "exp");
    tg_tensor_release(s);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* masked_fill_: mask of any dtype, nonzero = true; d/dx is 0 where filled. */
START_TEST(test_masked_fill_and_assign) {
    double xv[3] = {1, 2, 3}, mv[3] = {0, 2, 0};
    tg_tensor *x = tt_vec(3, xv, true);
    tg_tensor *m = tt_vec(3, mv, false);
    tg_tensor *one = scalar(1), *nine = scalar(9);
    tg_tensor *y = tg_mul(x, one);
    ck_tg(y);
    handles[0] = &y;
    ck_tg_ok(tg_masked_fill_(y, m, nine));
    double yv[3] = {1, 9, 3};
    ck_assert_double_le(tt_diff_to(y, yv), TOL);
    ck_assert_str_eq(tg_entry_inplace(y->grad_fn), "masked_fill_");
    tg_tensor *g = grad_of_sum(y, x);
    double gv[3] = {1, 0, 1};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    /* copy_ of a constant into a tensor in the graph: the gradient stops */
    tg_tensor *z = tg_mul(x, one);
    ck_tg(z);
    handles[1] = &z;
    ck_tg_ok(tg_assign_(z, m));
    ck_assert(z->requires_grad);
    ck_tg_ok(tg_tensor_set_grad(x, NULL));
    g = grad_of_sum(z, x);
    double zero[3] = {0, 0, 0};
    ck_assert_double_le(tt_diff_to(g, zero), 0);
    tg_tensor_release(z);
    tg_tensor_release(y);
    tg_tensor_release(one);
    tg_tensor_release(nine);
    tg_tensor_release(m);
    tg_tensor_release(x);
}
END_TEST

START_TEST(test_bad_input) {
    double xv[3] = {1, 2, 3};
    tg_tensor *x = tt_vec(3, xv, false);
    int64_t sh[2] = {2, 3};
    tg_tensor *big = tg_tensor_ones(2, sh, TG_FLOAT64);
    ck_assert_int_eq(tg_add_(x, big, 1.0), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "add_", "(2, 3)", "(3,)");
    ck_assert_int_eq(tg_masked_fill_(x, big, x), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "masked_fill_", "(2, 3)", "(3,)");
    ck_assert_int_eq(tg_add_(NULL, x, 1.0), TG_ERR_VALUE);
    ck_assert_int_eq(tg_inplace_apply(x, "f", NULL, NULL), TG_ERR_VALUE);
    ck_assert_int_eq(tg_tensor_inplace_(x, x, '?'), TG_ERR_VALUE);
    /* the ops themselves refuse bad geometry (tg_op_apply with any params) */
    tg_params p;
    memset(&p, 0, sizeof p);
    p.ndim = 1;
    p.shape[0] = 3;
    p.ints[0] = 0; /* a broadcast view */
    p.i[1] = 1;
    p.ints[8] = 1;
    tg_tensor *in[1] = {x};
    ck_assert_ptr_null(tg_op_apply(tg_op_find("as_strided"), 1, in, &p));
    ck_tg_error(TG_ERR_VALUE, "as_strided", "stride 0");
    p.ints[0] = INT64_MAX / 2;
    ck_assert_ptr_null(tg_op_apply(tg_op_find("as_strided"), 1, in, &p));
    ck_tg_error(TG_ERR_VALUE, "as_strided", "overflow");
    p.ints[0] = 1;
    p.i[1] = 2; /* wrong base ndim */
    ck_assert_ptr_null(tg_op_apply(tg_op_find("as_strided"), 1, in, &p));
    ck_tg_error(TG_ERR_VALUE, "as_strided", "base of 1 dims");
    tg_tensor_release(big);
    tg_tensor_release(x);
}
END_TEST

/* tg_inplace_apply with a function of the caller's: y = x * 1; y <- y * y
 * gives dy/dx = 2x; a function that returns a leaf is refused. */
static tg_tensor *square(tg_tensor *old, void *ctx) {
    (void)ctx;
    return tg_mul(old, old);
}
static tg_tensor *leaf_of(tg_tensor *old, void *ctx) {
    (void)old;
    tg_tensor *t = ctx;
    tg_tensor_retain(t);
    return t;
}

START_TEST(test_inplace_apply) {
    double xv[2] = {3, -1};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *one = scalar(1);
    tg_tensor *y = tg_mul(x, one);
    ck_tg(y);
    handles[0] = &y;
    ck_tg_ok(tg_inplace_apply(y, "square_", square, NULL));
    ck_assert_str_eq(tg_entry_inplace(y->grad_fn), "square_");
    double yv[2] = {9, 1};
    ck_assert_double_le(tt_diff_to(y, yv), TOL);
    tg_tensor *g = grad_of_sum(y, x);
    double gv[2] = {6, -2};
    ck_assert_double_le(tt_diff_to(g, gv), TOL);
    ck_assert_int_eq(tg_inplace_apply(y, "leaf_", leaf_of, x), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "leaf_", "returned a leaf");
    ck_assert_double_le(tt_diff_to(y, yv), TOL); /* unchanged */
    tg_tensor_release(y);
    tg_tensor_release(one);
    tg_tensor_release(x);
}
END_TEST

Suite *inplace_suite(void) {
    Suite *s = suite_create("inplace");
    TCase *tc = tcase_create("inplace");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_iadd_imul_rebase);
    tcase_add_test(tc, test_self_reference);
    tcase_add_test(tc, test_write_through_a_view);
    tcase_add_test(tc, test_buffer_joins_the_graph);
    tcase_add_test(tc, test_leaf_rule);
    tcase_add_test(tc, test_version_check);
    tcase_add_test(tc, test_masked_fill_and_assign);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_inplace_apply);
    suite_add_tcase(s, tc);
    return s;
}
