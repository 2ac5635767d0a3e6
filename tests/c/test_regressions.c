/*
 * test_regressions.c -- one test per failure that the fuzzers and the
 * sanitizers found (tests/fuzz/fuzz_ops.c, tests/sanitize.sh), so that each
 * stays fixed.  Each test names the input in tests/fuzz/corpus/ that found
 * it (replayed by tests/fuzz/run.sh) and the defect it had.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "../../csrc/kernels/threadpool.h"

/* corpus/empty-huge-dims-strides-overflow: zeros((0, 2**62, 2**62)) passed
 * the element-count check (0 elements) and overflowed computing contiguous
 * strides (undefined behaviour).  Now refused like NumPy ("too big"). */
START_TEST(empty_tensor_with_huge_dims) {
    int64_t shape[3] = {0, (int64_t)1 << 62, (int64_t)1 << 62};
    tg_error_clear();
    ck_assert_ptr_null(tg_tensor_zeros(3, shape, TG_FLOAT32));
    ck_tg_error(TG_ERR_MEMORY, "(0, 4611686018427387904, 4611686018427387904)", "too many");
    int64_t ok[3] = {0, (int64_t)1 << 20, 3}; /* still fine: strides fit */
    tg_tensor *t = tg_tensor_zeros(3, ok, TG_FLOAT64);
    ck_tg(t);
    ck_assert_int_eq(t->numel, 0);
    ck_assert_int_eq(t->strides[0], ((int64_t)1 << 20) * 3);
    tg_tensor_release(t);
}
END_TEST

/* corpus/eye-empty-huge-n-loop: eye(2**62, 0) looped 2**62 times (a hang),
 * and i + k overflowed for k near INT64_MAX.  (eye(2**62, 0) is now refused
 * as too big, like NumPy: its strides would not fit.) */
START_TEST(eye_empty_and_extreme_diagonal) {
    tg_error_clear();
    ck_assert_ptr_null(tg_tensor_eye((int64_t)1 << 62, 0, 0, TG_FLOAT32)); /* too big, like NumPy */
    ck_tg_error(TG_ERR_MEMORY, "too many bytes");
    tg_tensor *t = tg_tensor_eye((int64_t)1 << 40, 0, 0, TG_FLOAT32); /* empty: returns at once */
    ck_tg(t);
    ck_assert_int_eq(t->numel, 0);
    tg_tensor_release(t);
    t = tg_tensor_eye(3, 3, INT64_MAX, TG_FLOAT64);
    ck_tg(t);
    for (int64_t i = 0; i < 9; i++) ck_assert(tg_tensor_get_flat(t, i) == 0.0);
    tg_tensor_release(t);
    t = tg_tensor_eye(3, 4, INT64_MIN, TG_FLOAT64);
    ck_tg(t);
    for (int64_t i = 0; i < 12; i++) ck_assert(tg_tensor_get_flat(t, i) == 0.0);
    tg_tensor_release(t);
    t = tg_tensor_eye(2, 3, 1, TG_INT64);
    ck_tg(t);
    const double want[6] = {0, 1, 0, 0, 0, 1};
    ck_assert(tt_diff_to(t, want) == 0.0);
    tg_tensor_release(t);
}
END_TEST

/* corpus/full-int64-with-inf, axpy-int64-inf-alpha: float -> int64 of NaN,
 * +-inf or a value outside int64 was a plain C cast (undefined behaviour, a
 * UBSan float-cast-overflow).  Now NumPy's result on x86: INT64_MIN. */
START_TEST(float_to_int64_out_of_range) {
    const double bad[4] = {NAN, INFINITY, -INFINITY, 1e300};
    for (int k = 0; k < 4; k++) {
        tg_tensor *t = tg_tensor_scalar(bad[k], TG_INT64);
        ck_tg(t);
        ck_assert(*(int64_t *)tg_tensor_data(t) == INT64_MIN);
        tg_tensor_release(t);
        tg_tensor *f = tg_tensor_scalar(bad[k], TG_FLOAT64);
        tg_tensor *c = tg_cast(f, TG_INT64);
        ck_tg(c);
        ck_assert(*(int64_t *)tg_tensor_data(c) == INT64_MIN);
        tg_tensor_release(c);
        tg_tensor *y = tg_tensor_scalar(5, TG_INT64), *x = tg_tensor_scalar(1, TG_INT64);
        ck_tg_ok(tg_tensor_axpy_(y, bad[k], x));
        tg_tensor_release(y);
        tg_tensor_release(x);
        tg_tensor_release(f);
    }
    tg_tensor *t = tg_tensor_scalar(-7.9, TG_FLOAT64), *c = tg_cast(t, TG_INT64);
    ck_assert(*(int64_t *)tg_tensor_data(c) == -7); /* truncation toward zero */
    tg_tensor_release(c);
    tg_tensor_release(t);
}
END_TEST

/* int64 add/sub/mul/neg/abs/sum overflowed as C signed arithmetic
 * (undefined behaviour); now they wrap around like NumPy's. */
START_TEST(int64_arithmetic_wraps) {
    tg_tensor *a = tg_tensor_scalar(0, TG_INT64), *b = tg_tensor_scalar(0, TG_INT64);
    *(int64_t *)tg_tensor_data(a) = INT64_MAX;
    *(int64_t *)tg_tensor_data(b) = 1;
    tg_tensor *s = tg_add(a, b), *m = tg_mul(a, a), *d = tg_sub(b, a);
    ck_tg(s);
    ck_tg(m);
    ck_tg(d);
    ck_assert(*(int64_t *)tg_tensor_data(s) == INT64_MIN);
    ck_assert(*(int64_t *)tg_tensor_data(m) == 1);
    ck_assert(*(int64_t *)tg_tensor_data(d) == INT64_MIN + 2);
    *(int64_t *)tg_tensor_data(b) = INT64_MIN;
    tg_tensor *n = tg_neg(b), *ab = tg_abs(b);
    ck_assert(*(int64_t *)tg_tensor_data(n) == INT64_MIN);
    ck_assert(*(int64_t *)tg_tensor_data(ab) == INT64_MIN);
    int64_t two = 2;
    tg_tensor *v = tg_tensor_full(1, &two, 0, TG_INT64);
    ((int64_t *)tg_tensor_data(v))[0] = INT64_MAX;
    ((int64_t *)tg_tensor_data(v))[1] = INT64_MAX;
    tg_tensor *sum = tg_sum(v, NULL, 0, false);
    ck_tg(sum);
    ck_assert(*(int64_t *)tg_tensor_data(sum) == -2);
    tg_tensor *objs[] = {a, b, s, m, d, n, ab, v, sum};
    for (int i = 0; i < 9; i++) tg_tensor_release(objs[i]);
}
END_TEST

/* corpus/slice-huge-step-stride-overflow: a slice with step INT64_MAX (one
 * element) made a view stride of stride * step (signed overflow); step
 * INT64_MIN negated it.  The step of a slice of <= 1 element is now 1. */
START_TEST(slice_extreme_steps) {
    int64_t shape[2] = {3, 4};
    tg_tensor *x = tg_tensor_randn(2, shape, 0, 1, TG_FLOAT64);
    int64_t starts[2] = {0, 3}, stops[2] = {3, -5}, steps[2] = {INT64_MAX, INT64_MIN};
    tg_tensor *v = tg_slice(x, starts, stops, steps, 0);
    ck_tg(v);
    ck_assert_int_eq(v->ndim, 2);
    ck_assert_int_eq(v->shape[0], 1);
    ck_assert_int_eq(v->shape[1], 1);
    ck_assert(tg_tensor_get_flat(v, 0) == tg_tensor_get_flat(x, 3));
    tg_tensor_release(v);
    tg_tensor_release(x);
}
END_TEST

/* corpus/from-storage-offset-overflow: the bounds check of from_storage
 * multiplied (offset + span) by the item size in 64 bits: an offset of 2**62
 * wrapped around and passed, giving a view far outside its storage. */
START_TEST(from_storage_overflowing_geometry) {
    double buf[16] = {0};
    tg_storage *s = tg_storage_borrow(buf, sizeof buf, NULL, NULL, false);
    int64_t shape[2] = {2, 2}, strides[2] = {INT64_MAX / 2, 1};
    tg_error_clear();
    ck_assert_ptr_null(tg_tensor_from_storage(s, TG_FLOAT64, 1, shape, NULL, (int64_t)1 << 62));
    ck_tg_error(TG_ERR_VALUE, "from_storage", "outside");
    ck_assert_ptr_null(tg_tensor_from_storage(s, TG_FLOAT64, 2, shape, strides, 0));
    ck_assert_ptr_null(tg_tensor_from_storage(s, TG_FLOAT64, 1, shape, NULL, -1));
    int64_t zero = 0;
    ck_assert_ptr_null(tg_tensor_from_storage(s, TG_FLOAT64, 1, &zero, NULL, (int64_t)1 << 62));
    ck_tg_error(TG_ERR_VALUE, "from_storage", "offset");
    tg_tensor *t = tg_tensor_from_storage(s, TG_FLOAT64, 1, &zero, NULL, 16); /* end: fine */
    ck_tg(t);
    tg_tensor_release(t);
    /* corpus/from-storage-huge-stride-empty-dim: a stride of INT64_MAX on a
     * dim of size 0 was accepted (no element to check) and overflowed when a
     * kernel turned it into bytes */
    int64_t e2[2] = {0, 2}, bigst[2] = {INT64_MAX, 1};
    ck_assert_ptr_null(tg_tensor_from_storage(s, TG_FLOAT64, 2, e2, bigst, 0));
    ck_tg_error(TG_ERR_VALUE, "from_storage", "stride");
    int64_t neg[2] = {-3, 1};
    t = tg_tensor_from_storage(s, TG_FLOAT64, 2, shape, neg, 3); /* reversed rows: fine */
    ck_tg(t);
    tg_tensor_release(t);
    tg_storage_release(s);
}
END_TEST

/* corpus/step-after-failure-no-error: stepping a backward pass that had
 * failed returned -1 without setting an error (the contract: every failure
 * sets one). */
static tg_status failing_hook(tg_tensor *t, tg_tensor *g, tg_tensor **rep, void *ctx) {
    (void)t;
    (void)g;
    (void)rep;
    (void)ctx;
    return tg_error_set(TG_ERR_CALLBACK, "hook: failed on purpose");
}

START_TEST(step_after_failure_sets_error) {
    double v[2] = {1, 2};
    tg_tensor *x = tt_vec(2, v, true);
    tg_tensor *y = tg_mul(x, x), *l = tg_sum(y, NULL, 0, false);
    tg_tensor_set_grad_hook(y, failing_hook, NULL);
    tg_stepper *bw = tg_backward_begin(1, &l, NULL, TG_RETAIN_GRAPH, 0, NULL);
    ck_tg(bw);
    ck_assert_int_eq(tg_backward_step(bw), 1); /* sum */
    ck_assert_int_eq(tg_backward_step(bw), -1); /* the hook on y fails */
    tg_error_clear();
    ck_assert_int_eq(tg_backward_step(bw), -1);
    ck_tg_error(TG_ERR_RUNTIME, "backward", "already failed");
    tg_backward_end(bw);
    /* the graph is usable again afterwards */
    tg_tensor_set_grad_hook(y, NULL, NULL);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert(tt_diff_to(x->grad, (double[]){2, 4}) == 0.0);
    tg_tensor_release(l);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* set_grad(x, x) and tg_entry_save(e, e's own output) made reference cycles
 * (leaks found by LeakSanitizer in the fuzzer): both refused now. */
static int released;
static tg_status pass_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    if (tg_entry_needs_grad(e, 0)) {
        tg_tensor_retain(g);
        gi[0] = g;
    }
    return TG_OK;
}
static void count_release(void *ctx) {
    (void)ctx;
    released++;
}

START_TEST(reference_cycles_refused) {
    double v[2] = {1, 2};
    tg_tensor *x = tt_vec(2, v, true);
    tg_error_clear();
    ck_assert_int_eq(tg_tensor_set_grad(x, x), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "grad", "own gradient");
    released = 0;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = tg_mul_scalar(x, 3.0);
    tg_set_grad_enabled(prev);
    tg_tensor *y = tg_custom_record("triple", 1, &x, out, pass_vjp, NULL, count_release);
    ck_tg(y);
    ck_assert_int_eq(tg_entry_save(y->grad_fn, y), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "entry_save", "own output");
    ck_tg_ok(tg_entry_save(y->grad_fn, x)); /* an input: fine */
    tg_tensor_release(y);
    ck_assert_int_eq(released, 1); /* the entry died with its output */
    tg_tensor_release(out);
    tg_tensor_release(x);
}
END_TEST

/* A VJP that reads labels or indices read e->inputs[1] directly: writing
 * into the labels between forward and backward silently moved the gradient.
 * They are saved now, so the version counter catches it. */
START_TEST(labels_modified_before_backward) {
    int64_t shape[2] = {2, 3}, two = 2;
    tg_tensor *z = tg_tensor_randn(2, shape, 0, 1, TG_FLOAT64);
    ck_tg_ok(tg_tensor_set_requires_grad(z, true));
    tg_tensor *y = tg_tensor_zeros(1, &two, TG_INT64);
    tg_tensor *l = tg_cross_entropy(z, y, TG_REDUCTION_MEAN);
    tg_tensor *u = tg_unsqueeze(y, 1); /* (2, 1): a view of y */
    tg_tensor *g = tg_gather(z, 1, u);
    ck_tg(l);
    ck_tg_ok(tg_tensor_fill_(y, 1));
    tg_error_clear();
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "cross_entropy", "modified in place");
    tg_tensor *s = tg_sum(g, NULL, 0, false);
    ck_assert_int_eq(tg_backward(s, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "gather", "modified in place");
    tg_tensor *objs[] = {s, g, u, l, y, z};
    for (int i = 0; i < 6; i++) tg_tensor_release(objs[i]);
}
END_TEST

/* Two backward passes over one graph at once (a step-through left open, or
 * another thread) shared the bookkeeping on the nodes and silently lost
 * gradients; the second is refused now, and works once the first ended. */
START_TEST(overlapping_backward_refused) {
    double v[2] = {1, 2};
    tg_tensor *x = tt_vec(2, v, true);
    tg_tensor *y = tg_mul(x, x), *l = tg_sum(y, NULL, 0, false);
    tg_tensor *l2 = tg_mul_scalar(x, 3.0), *s2 = tg_sum(l2, NULL, 0, false);
    tg_stepper *bw = tg_backward_begin(1, &l, NULL, TG_RETAIN_GRAPH, 0, NULL);
    ck_tg(bw);
    ck_assert_int_eq(tg_backward_step(bw), 1);
    tg_error_clear();
    ck_assert_int_eq(tg_backward(l, NULL, TG_RETAIN_GRAPH), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "backward", "another backward pass");
    ck_assert_int_eq(tg_backward(s2, NULL, 0), TG_ERR_RUNTIME); /* shares the leaf x */
    ck_tg_error(TG_ERR_RUNTIME, "leaf tensor", "another backward pass");
    while (tg_backward_step(bw) == 1) {
    }
    tg_backward_end(bw);
    ck_assert(tt_diff_to(x->grad, (double[]){2, 4}) == 0.0);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_tg_ok(tg_backward(s2, NULL, 0));
    ck_assert(tt_diff_to(x->grad, (double[]){7, 11}) == 0.0);
    tg_tensor *objs[] = {s2, l2, l, y, x};
    for (int i = 0; i < 5; i++) tg_tensor_release(objs[i]);
}
END_TEST

/* The save hook (safe aliasing): +1 when a storage is first saved, -1 when
 * the last saved reference goes; a hook that asks for a copy gets one. */
static int hook_calls[2];
static bool want_copy;
static bool save_hook(tg_storage *s, int delta, void *ctx) {
    (void)s;
    (void)ctx;
    hook_calls[delta > 0 ? 0 : 1]++;
    return want_copy;
}

START_TEST(save_hook_counts) {
    double v[3] = {1, 2, 3};
    tg_tensor *x = tt_vec(3, v, true);
    tg_set_save_hook(save_hook, NULL);
    hook_calls[0] = hook_calls[1] = 0;
    want_copy = false;
    tg_tensor *y = tg_mul(x, x), *l = tg_sum(y, NULL, 0, false); /* mul saves x (twice) */
    ck_assert_int_eq(x->storage->saved_count, 2);
    ck_assert_int_eq(hook_calls[0], 1);
    ck_tg_ok(tg_backward(l, NULL, TG_RETAIN_GRAPH));
    ck_assert_int_eq(hook_calls[1], 0);   /* retained: still saved */
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(x->storage->saved_count, 0);
    ck_assert_int_eq(hook_calls[1], 1);   /* freed by the backward */
    tg_tensor_release(l);
    tg_tensor_release(y);
    /* the entry dies without a backward: -1 too */
    y = tg_mul(x, x);
    ck_assert_int_eq(hook_calls[0], 2);
    tg_tensor_release(y);
    ck_assert_int_eq(hook_calls[1], 2);
    /* a copy when asked: x's memory is no longer what backward reads */
    want_copy = true;
    y = tg_mul(x, x);
    ck_assert_int_eq(x->storage->saved_count, 0);
    ((double *)tg_tensor_data(x))[0] = 100; /* a write the version counter cannot see */
    l = tg_sum(y, NULL, 0, false);
    tg_tensor_set_grad(x, NULL);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert(tt_diff_to(x->grad, (double[]){2, 4, 6}) == 0.0); /* from the values at forward */
    tg_set_save_hook(NULL, NULL);
    tg_tensor_release(l);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* corpus/conv2d-huge-stride-overflow: conv2d with a stride near INT64_MAX
 * overflowed computing the valid output range of a tap (lo + s - 1). */
START_TEST(conv2d_huge_stride) {
    int64_t xs[4] = {1, 1, 3, 3}, ws[4] = {1, 1, 2, 2};
    tg_tensor *x = tg_tensor_ones(4, xs, TG_FLOAT64), *w = tg_tensor_ones(4, ws, TG_FLOAT64);
    tg_tensor *y = tg_conv2d(x, w, NULL, INT64_MAX, INT64_MAX, 1, 1);
    ck_tg(y);
    ck_assert_int_eq(y->shape[2], 1);
    ck_assert_int_eq(y->shape[3], 1);
    ck_assert(tg_tensor_get_flat(y, 0) == 1.0); /* the top-left window: one tap inside */
    tg_tensor *p = tg_max_pool2d(x, 2, 2, INT64_MAX, INT64_MAX, 1, 1);
    ck_tg(p);
    ck_assert(tg_tensor_get_flat(p, 0) == 1.0);
    tg_tensor_release(p);
    tg_tensor_release(y);
    tg_tensor_release(w);
    tg_tensor_release(x);
}
END_TEST

/* corpus/index-add-source-shape-overflow: index_add through the registry
 * (tg_op_apply) trusted that the source had the shape the parameters
 * describe: a smaller source was read out of bounds (ASan heap overflow). */
START_TEST(index_add_checks_source_shape) {
    const tg_opdef *op = tg_op_find("index_add");
    ck_tg(op);
    int64_t two = 2, s3[1] = {3};
    tg_tensor *src = tg_tensor_ones(1, s3, TG_FLOAT64);
    tg_tensor *idx = tg_tensor_zeros(1, &two, TG_INT64);
    tg_params p;
    ck_tg_ok(tg_params_parse("i0=0 shape=4,5", &p));
    tg_tensor *in[2] = {src, idx};
    tg_error_clear();
    ck_assert_ptr_null(tg_op_apply(op, 2, in, &p));
    ck_tg_error(TG_ERR_VALUE, "index_add", "(3,)", "(2, 5)");
    int64_t good[2] = {2, 5};
    tg_tensor *src2 = tg_tensor_ones(2, good, TG_FLOAT64);
    in[0] = src2;
    tg_tensor *r = tg_op_apply(op, 2, in, &p);
    ck_tg(r);
    ck_assert(tg_tensor_get_flat(r, 0) == 2.0 && tg_tensor_get_flat(r, 5) == 0.0);
    tg_tensor *objs[] = {r, src2, idx, src};
    for (int i = 0; i < 4; i++) tg_tensor_release(objs[i]);
}
END_TEST

/* corpus/var-extreme-ddof-overflow: var's divisor n - ddof was computed in
 * int64 (overflow for ddof = INT64_MIN); ddof > n gave a negative variance.
 * Now NumPy's max(n - ddof, 0) in double: inf, or nan for a zero sum. */
START_TEST(var_extreme_ddof) {
    double v[3] = {1, 2, 4};
    tg_tensor *x = tt_vec(3, v, false);
    tg_tensor *a = tg_var(x, NULL, 0, false, INT64_MIN), *b = tg_var(x, NULL, 0, false, 5);
    tg_tensor *c = tg_var(x, NULL, 0, false, 1);
    ck_tg(a);
    ck_tg(b);
    ck_tg(c);
    ck_assert(tt_item(a) >= 0 && tt_item(a) < 1e-15); /* (14/3) / 9.2e18 */
    ck_assert(isinf(tt_item(b)) && tt_item(b) > 0);
    ck_assert(fabs(tt_item(c) - 7.0 / 3.0) < 1e-12);
    tg_tensor *objs[] = {a, b, c, x};
    for (int i = 0; i < 4; i++) tg_tensor_release(objs[i]);
}
END_TEST

/* corpus/reshape-empty-huge-dims-strides-overflow: reshaping an empty tensor
 * into (0, 1.5 * 2**62, 3) passed the element count (0) and overflowed the
 * new strides (UB); now refused like creating that shape. */
START_TEST(reshape_empty_into_huge_dims) {
    int64_t s0[1] = {0};
    tg_tensor *x = tg_tensor_zeros(1, s0, TG_FLOAT32);
    int64_t huge[3] = {0, (int64_t)3 << 61, 3}, fine[3] = {0, 1 << 20, 3};
    tg_error_clear();
    ck_assert_ptr_null(tg_reshape(x, 3, huge));
    ck_tg_error(TG_ERR_MEMORY, "reshape", "too many");
    tg_tensor *y = tg_reshape(x, 3, fine);
    ck_tg(y);
    ck_assert_int_eq(y->numel, 0);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* Found by the gcc fuzz driver's random programs (a clean-CI run, session 2):
 * index_select of an empty tensor whose other dims multiply to 2^45 looped
 * 2^45 times copying nothing -- a hang, not a crash.  An empty result (and
 * an empty source in index_add, its VJP) now returns at once. */
START_TEST(index_select_empty_with_huge_dims) {
    int64_t sx[3] = {(int64_t)1 << 45, 0, 3}, si[1] = {2};
    tg_tensor *x = tg_tensor_zeros(3, sx, TG_FLOAT32);
    tg_tensor *ix = tg_tensor_zeros(1, si, TG_INT64);
    ck_tg(x);
    ck_tg(ix);
    tg_tensor *y = tg_index_select(x, 2, ix);   /* (2^45, 0, 2) */
    ck_tg(y);
    ck_assert_int_eq(y->numel, 0);
    ck_assert_int_eq(y->shape[0], (int64_t)1 << 45);
    ck_assert_int_eq(y->shape[2], 2);
    int64_t s0[1] = {0};
    tg_tensor *none = tg_tensor_zeros(1, s0, TG_INT64);
    ck_tg(none);
    tg_tensor *z = tg_index_select(x, 1, none);
    ck_tg(z);
    tg_tensor_release(none);
    ck_assert_int_eq(z->numel, 0);
    /* the VJP: index_add of an empty source into an empty (2^45, 0, 3) */
    const tg_opdef *op = tg_op_find("index_add");
    ck_tg(op);
    tg_params p = {0};
    p.i[0] = 2;
    p.ndim = 3;
    memcpy(p.shape, sx, sizeof sx);
    tg_tensor *in[2] = {y, ix};
    tg_tensor *g = tg_op_apply(op, 2, in, &p);
    ck_tg(g);
    ck_assert_int_eq(g->numel, 0);
    tg_tensor_release(g);
    tg_tensor_release(z);
    tg_tensor_release(y);
    tg_tensor_release(ix);
    tg_tensor_release(x);
}
END_TEST

/* corpus/slice-backward-negative-shape (found by the gcc driver):
 * slice_backward through the registry normalised the slice against the
 * caller's target shape before checking it: a negative size overflowed
 * start + n. */
START_TEST(slice_backward_checks_shape) {
    const tg_opdef *op = tg_op_find("slice_backward");
    ck_tg(op);
    int64_t one = 1;
    tg_tensor *g = tg_tensor_ones(1, &one, TG_FLOAT64);
    tg_params p;
    memset(&p, 0, sizeof p);
    p.ndim = 1;
    p.shape[0] = -3;
    p.ints[0] = INT64_MIN; /* start */
    p.ints[8] = 1;         /* stop */
    p.ints[16] = 1;        /* step */
    tg_error_clear();
    ck_assert_ptr_null(tg_op_apply(op, 1, &g, &p));
    ck_tg_error(TG_ERR_VALUE, "slice_backward", "negative");
    p.shape[0] = 3;
    tg_tensor *r = tg_op_apply(op, 1, &g, &p); /* g into [0:1] of zeros(3) */
    ck_tg(r);
    ck_assert(tt_diff_to(r, (double[]){1, 0, 0}) == 0.0);
    tg_tensor_release(r);
    tg_tensor_release(g);
}
END_TEST


/* ---- issue 15: found by adversarial testing ------------------------------ */

/* from_buffer(2, shape, dt, NULL) dereferenced NULL; refused like a NULL shape. */
START_TEST(from_buffer_null_data) {
    int64_t shape[2] = {2, 3};
    tg_error_clear();
    ck_assert_ptr_null(tg_tensor_from_buffer(2, shape, TG_FLOAT32, NULL));
    ck_tg_error(TG_ERR_VALUE, "from_buffer", "NULL", "(2, 3)");
    int64_t empty[1] = {0}; /* no element: nothing is read, NULL is fine */
    tg_tensor *t = tg_tensor_from_buffer(1, empty, TG_FLOAT64, NULL);
    ck_tg(t);
    ck_assert_int_eq(t->numel, 0);
    tg_tensor_release(t);
    double v[2] = {1, 2};
    int64_t two[1] = {2};
    t = tg_tensor_from_buffer(1, two, TG_FLOAT64, v);
    ck_tg(t);
    ck_assert(tt_diff_to(t, v) == 0.0);
    tg_tensor_release(t);
}
END_TEST

/* one_hot(num_classes = -3) was accepted (any negative count inferred it). */
START_TEST(one_hot_negative_classes) {
    tg_tensor *l = tg_tensor_zeros(1, (int64_t[]){2}, TG_INT64);
    ck_tg(l);
    ((int64_t *)tg_tensor_data(l))[0] = 1;
    tg_error_clear();
    ck_assert_ptr_null(tg_one_hot(l, -3, TG_FLOAT32));
    ck_tg_error(TG_ERR_VALUE, "one_hot", "num_classes", "-3");
    tg_tensor *r = tg_one_hot(l, -1, TG_FLOAT64); /* -1: inferred (2 classes) */
    ck_tg(r);
    ck_assert_int_eq(r->shape[1], 2);
    ck_assert(tt_diff_to(r, (double[]){0, 1, 1, 0}) == 0.0);
    tg_tensor_release(r);
    tg_tensor_release(l);
}
END_TEST

/* broadcast_to 9 dimensions said "fewer dimensions". */
START_TEST(broadcast_to_too_many_dims) {
    tg_tensor *x = tg_tensor_ones(1, (int64_t[]){3}, TG_FLOAT32);
    ck_tg(x);
    int64_t sh[9] = {1, 1, 1, 1, 1, 1, 1, 1, 3};
    tg_error_clear();
    ck_assert_ptr_null(tg_broadcast_to(x, 9, sh));
    ck_tg_error(TG_ERR_VALUE, "broadcast_to", "9 dimensions", "at most 8");
    ck_assert_ptr_null(tg_broadcast_to(x, 2, NULL));
    ck_tg_error(TG_ERR_VALUE, "broadcast_to", "NULL");
    tg_tensor_release(x);
}
END_TEST

/* clip(x, 1, -1) gave [1, -1, 1]; min(max(x, lo), hi) is hi everywhere. */
START_TEST(clip_min_above_max) {
    const double v[3] = {0, 5, -5};
    for (int d = 0; d < 3; d++) {
        tg_dtype dt = d == 0 ? TG_FLOAT32 : d == 1 ? TG_FLOAT64 : TG_INT64;
        tg_tensor *x = tg_tensor_from_buffer(1, (int64_t[]){3}, TG_FLOAT64, v);
        tg_tensor *xc = x ? tg_cast(x, dt) : NULL;
        ck_tg(xc);
        tg_tensor *r = tg_clip(xc, 1, -1);
        ck_tg(r);
        ck_assert(tt_diff_to(r, (double[]){-1, -1, -1}) == 0.0);
        tg_tensor_release(r);
        tg_tensor_release(xc);
        tg_tensor_release(x);
    }
}
END_TEST

/* int64 ** int64 stays int64 (NumPy); a negative exponent is refused. */
START_TEST(pow_int64) {
    tg_tensor *a = tg_tensor_zeros(1, (int64_t[]){3}, TG_INT64);
    tg_tensor *b = tg_tensor_zeros(1, (int64_t[]){3}, TG_INT64);
    ck_tg(a && b);
    int64_t *pa = tg_tensor_data(a), *pb = tg_tensor_data(b);
    pa[0] = 3, pa[1] = -2, pa[2] = 2;
    pb[0] = 4, pb[1] = 3, pb[2] = 64; /* 2**64 wraps to 0, as in NumPy */
    tg_tensor *r = tg_pow(a, b);
    ck_tg(r);
    ck_assert_int_eq(r->dtype, TG_INT64);
    const int64_t *pr = tg_tensor_data(r);
    ck_assert(pr[0] == 81 && pr[1] == -8 && pr[2] == 0);
    tg_tensor_release(r);
    pb[1] = -1;
    tg_error_clear();
    ck_assert_ptr_null(tg_pow(a, b));
    ck_tg_error(TG_ERR_VALUE, "pow", "Integers to negative integer powers are not allowed");
    tg_tensor_release(a);
    tg_tensor_release(b);
}
END_TEST

/* softmax([inf, 1]) was [nan, 0]: PyTorch and NumPy's max-shifted softmax
 * give [nan, nan]; log_softmax the same; logsumexp stays inf. */
START_TEST(softmax_with_inf) {
    const double v[2] = {INFINITY, 1};
    tg_tensor *x = tg_tensor_from_buffer(1, (int64_t[]){2}, TG_FLOAT64, v);
    ck_tg(x);
    tg_tensor *s = tg_softmax(x, 0), *ls = tg_log_softmax(x, 0);
    tg_tensor *lse = tg_logsumexp(x, NULL, 0, false);
    ck_tg(s && ls && lse);
    for (int i = 0; i < 2; i++) {
        ck_assert(isnan(tg_tensor_get_flat(s, i)));
        ck_assert(isnan(tg_tensor_get_flat(ls, i)));
    }
    ck_assert(tt_item(lse) == INFINITY);
    tg_tensor_release(s);
    tg_tensor_release(ls);
    tg_tensor_release(lse);
    tg_tensor_release(x);
    const double w[2] = {-INFINITY, 1}; /* a -inf entry is fine: [0, 1] */
    x = tg_tensor_from_buffer(1, (int64_t[]){2}, TG_FLOAT64, w);
    s = x ? tg_softmax(x, 0) : NULL;
    ck_tg(s);
    ck_assert(tt_diff_to(s, (double[]){0, 1}) == 0.0);
    tg_tensor_release(s);
    tg_tensor_release(x);
}
END_TEST

/* d(x**0)/dx at x = 0 was NaN (0 * 0**-1); PyTorch: 0. d(0**y)/dy was
 * -inf * 0 = NaN for y >= 0; PyTorch masks the log(0) term: 0. */
START_TEST(pow_grad_zero_base) {
    tg_tensor *x = tt_vec(2, (double[]){0, 0}, true);
    tg_tensor *y = tt_vec(2, (double[]){0, 2}, true);
    ck_tg(x && y);
    tg_tensor *p = tg_pow(x, y);
    tg_tensor *l = p ? tg_sum(p, NULL, 0, false) : NULL;
    ck_tg(l);
    tg_tensor *in[2] = {x, y}, *res[2] = {NULL, NULL};
    ck_tg_ok(tg_grad(1, &l, NULL, 2, in, 0, res));
    ck_assert(tt_diff_to(res[0], (double[]){0, 0}) == 0.0);
    ck_assert(tt_diff_to(res[1], (double[]){0, 0}) == 0.0);
    tg_tensor_release(res[0]);
    tg_tensor_release(res[1]);
    tg_tensor_release(l);
    tg_tensor_release(p);
    tg_tensor_release(x);
    tg_tensor_release(y);
}
END_TEST

/* grad(L, [x, x]) gave the gradient to one position and zeros to the other. */
START_TEST(grad_repeated_input) {
    tg_tensor *x = tt_vec(2, (double[]){1, 2}, true);
    ck_tg(x);
    tg_tensor *m = tg_mul_scalar(x, 2.0);
    tg_tensor *l = m ? tg_sum(m, NULL, 0, false) : NULL;
    ck_tg(l);
    tg_tensor *in[3] = {x, x, x}, *res[3] = {NULL, NULL, NULL};
    ck_tg_ok(tg_grad(1, &l, NULL, 3, in, 0, res));
    for (int i = 0; i < 3; i++) {
        ck_assert(tt_diff_to(res[i], (double[]){2, 2}) == 0.0);
        for (int j = 0; j < i; j++) ck_assert_ptr_ne(res[i], res[j]);
    }
    for (int i = 0; i < 3; i++) tg_tensor_release(res[i]);
    tg_tensor_release(l);
    tg_tensor_release(m);
    tg_tensor_release(x);
}
END_TEST

/* The optimizer steps given one tensor twice stepped it twice. */
START_TEST(optimizer_repeated_parameter) {
    tg_tensor *w = tt_vec(2, (double[]){1, 2}, false);
    tg_tensor *g = tt_vec(2, (double[]){1, 1}, false);
    tg_tensor *b0 = tg_tensor_zeros(1, (int64_t[]){2}, TG_FLOAT64);
    tg_tensor *b1 = tg_tensor_zeros(1, (int64_t[]){2}, TG_FLOAT64);
    ck_tg(w && g && b0 && b1);
    tg_tensor *ps[2] = {w, w}, *gs[2] = {g, g}, *s1[2] = {b0, b1}, *s2[2] = {b1, b0};
    tg_error_clear();
    ck_assert_int_eq(tg_sgd_step(2, ps, gs, NULL, 0.1, 0, 0, 0, false, true), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "sgd", "parameter 1 is the same tensor as parameter 0");
    ck_assert_int_eq(tg_adam_step(2, ps, gs, s1, s2, 1, 0.1, 0.9, 0.999, 1e-8, 0, false), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "same tensor");
    ck_assert_int_eq(tg_rmsprop_step(2, ps, gs, s1, s2, 0.1, 0.99, 1e-8, 0, 0), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "same tensor");
    ck_assert(tt_diff_to(w, (double[]){1, 2}) == 0.0); /* nothing written */
    ck_tg_ok(tg_sgd_step(1, ps, gs, NULL, 0.5, 0, 0, 0, false, true));
    ck_assert(tt_diff_to(w, (double[]){0.5, 1.5}) == 0.0);
    tg_tensor_release(w);
    tg_tensor_release(g);
    tg_tensor_release(b0);
    tg_tensor_release(b1);
}
END_TEST

/* Adam's float32 step is one parallel loop over every parameter laid end to
 * end (csrc/core/optim.c): the same bits on one thread and on two, and
 * parameters whose memory overlaps (two views of one tensor) are still
 * stepped one after the other, as two separate calls would.  Also run under
 * valgrind and ASan (the loop's segment arrays are allocated per step). */
static tg_tensor *f32_filled(int64_t n, double a, double b) {
    tg_tensor *t = tg_tensor_empty(1, &n, TG_FLOAT32);
    if (t) {
        float *d = tg_tensor_data(t);
        for (int64_t i = 0; i < n; i++) d[i] = (float)sin(a * (double)i + b);
    }
    return t;
}

static void adam_run(int threads, int n, const int64_t *sizes, float **out) {
    tg_set_num_threads(threads);
    tg_tensor *ps[4], *gs[4], *ms[4], *vs[4];
    for (int i = 0; i < n; i++) {
        ps[i] = f32_filled(sizes[i], 0.37, i);
        gs[i] = f32_filled(sizes[i], 0.71, 2 * i + 1);
        ms[i] = tg_tensor_zeros(1, &sizes[i], TG_FLOAT32);
        vs[i] = tg_tensor_zeros(1, &sizes[i], TG_FLOAT32);
        ck_tg(ps[i] && gs[i] && ms[i] && vs[i]);
    }
    for (int step = 1; step <= 2; step++) {
        uint64_t jobs = tg_threadpool_jobs();
        ck_tg_ok(tg_adam_step(n, ps, gs, ms, vs, step, 1e-2, 0.9, 0.999, 1e-8, 0.01, step == 2));
        /* one loop over all of them: 73009 elements are two chunks of 32768 or
         * more, while no tensor alone is (each would run on the caller) */
        ck_assert_uint_eq(tg_threadpool_jobs() - jobs, threads > 1 ? 1 : 0);
    }
    for (int i = 0; i < n; i++) {
        out[i] = malloc((size_t)sizes[i] * sizeof(float));
        ck_assert_ptr_nonnull(out[i]);
        memcpy(out[i], tg_tensor_data(ps[i]), (size_t)sizes[i] * sizeof(float));
        tg_tensor_release(ps[i]);
        tg_tensor_release(gs[i]);
        tg_tensor_release(ms[i]);
        tg_tensor_release(vs[i]);
    }
}

START_TEST(adam_one_loop_threads_and_overlap) {
    int saved = tg_get_num_threads();
    const int64_t sizes[4] = {1, 40000, 7, 33001};
    float *one[4], *two[4];
    adam_run(1, 4, sizes, one);
    adam_run(2, 4, sizes, two);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(memcmp(one[i], two[i], (size_t)sizes[i] * sizeof(float)) == 0,
                      "adam: parameter %d differs between 1 and 2 threads", i);
        free(one[i]);
        free(two[i]);
    }
    /* two views of one buffer, elements [30000, 50000) shared: stepped in
     * one call they must give what two calls in order give */
    float *got[2];
    for (int variant = 0; variant < 2; variant++) {
        int64_t n = 80000;
        tg_tensor *base = f32_filled(n, 0.13, 0.5);
        ck_tg(base);
        tg_tensor *a = tg_slice(base, (int64_t[]){0}, (int64_t[]){50000}, (int64_t[]){1}, 0);
        tg_tensor *b = tg_slice(base, (int64_t[]){30000}, (int64_t[]){80000}, (int64_t[]){1}, 0);
        int64_t m = 50000;
        tg_tensor *ga = f32_filled(m, 0.3, 1), *gb = f32_filled(m, 0.5, 2);
        tg_tensor *ma = tg_tensor_zeros(1, &m, TG_FLOAT32), *va = tg_tensor_zeros(1, &m, TG_FLOAT32);
        tg_tensor *mb = tg_tensor_zeros(1, &m, TG_FLOAT32), *vb = tg_tensor_zeros(1, &m, TG_FLOAT32);
        ck_tg(a && b && ga && gb && ma && va && mb && vb);
        tg_tensor *ps[2] = {a, b}, *gs[2] = {ga, gb}, *ms[2] = {ma, mb}, *vs[2] = {va, vb};
        tg_set_num_threads(2);
        if (variant == 0) {
            uint64_t jobs = tg_threadpool_jobs();
            ck_tg_ok(tg_adam_step(2, ps, gs, ms, vs, 1, 1e-2, 0.9, 0.999, 1e-8, 0, false));
            /* stepped one after the other: each 50000-element view is a single
             * chunk, run on the caller; one loop over both would be handed out */
            ck_assert_uint_eq(tg_threadpool_jobs() - jobs, 0);
        } else {
            ck_tg_ok(tg_adam_step(1, ps, gs, ms, vs, 1, 1e-2, 0.9, 0.999, 1e-8, 0, false));
            ck_tg_ok(tg_adam_step(1, ps + 1, gs + 1, ms + 1, vs + 1, 1, 1e-2, 0.9, 0.999, 1e-8, 0,
                                  false));
        }
        got[variant] = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(got[variant]);
        memcpy(got[variant], tg_tensor_data(base), (size_t)n * sizeof(float));
        tg_tensor *all[9] = {base, a, b, ga, gb, ma, va, mb, vb};
        for (int i = 0; i < 9; i++) tg_tensor_release(all[i]);
    }
    ck_assert_msg(memcmp(got[0], got[1], 80000 * sizeof(float)) == 0,
                  "adam: overlapping parameters in one call differ from two calls in order");
    free(got[0]);
    free(got[1]);
    tg_set_num_threads(saved);
}
END_TEST

/* corpus/regress-variadic-ops-too-few-inputs (and regress-variadic-loss-one-input):
 * the generic call of a variadic op (tg_op_apply) with fewer inputs than it
 * reads -- layer_norm and group_norm with none, binary_cross_entropy with
 * one, scaled_dot_product_attention with two -- read past the input array
 * (a NULL dereference in the fuzzer).  The class: every variadic op of the
 * registry, with 0..3 inputs in an array of exactly that length (ASan and
 * valgrind see a read past it), fails cleanly naming the op or succeeds. */
START_TEST(variadic_ops_with_too_few_inputs) {
    int variadic = 0;
    for (int k = 0; k < tg_op_count(); k++) {
        const tg_opdef *op = tg_op_get(k);
        if (op->arity >= 0) continue;
        variadic++;
        for (int n = 0; n <= 3; n++) {
            tg_tensor **in = malloc(sizeof *in * (size_t)(n ? n : 1));
            ck_assert_ptr_nonnull(in);
            for (int i = 0; i < n; i++) {
                in[i] = tg_tensor_ones(2, (int64_t[]){2, 3}, TG_FLOAT64);
                ck_tg(in[i]);
            }
            tg_params p;
            memset(&p, 0, sizeof p);
            tg_error_clear();
            tg_tensor *t = tg_op_apply(op, n, in, &p);
            if (t) {
                tg_tensor_release(t);
            } else {
                ck_assert_msg(tg_error_status() != TG_OK, "%s with %d inputs: no error", op->name, n);
                ck_assert_msg(strstr(tg_error_message(), op->name), "%s with %d inputs: '%s'", op->name, n,
                              tg_error_message());
            }
            ck_assert_msg(n > 0 || !t, "%s accepted no inputs", op->name);
            for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
            free(in);
        }
    }
    ck_assert_int_ge(variadic, 10);
    tg_error_clear();
    tg_tensor *one = tg_tensor_ones(1, (int64_t[]){4}, TG_FLOAT64);
    tg_params p;
    memset(&p, 0, sizeof p);
    ck_assert_ptr_null(tg_op_apply(tg_op_find("binary_cross_entropy"), 1, &one, &p));
    ck_tg_error(TG_ERR_VALUE, "binary_cross_entropy", "at least 2 inputs", "got 1");
    tg_tensor *two[2] = {one, one};
    ck_assert_ptr_null(tg_op_apply(tg_op_find("scaled_dot_product_attention"), 2, two, &p));
    ck_tg_error(TG_ERR_VALUE, "scaled_dot_product_attention", "at least 3 inputs", "got 2");
    ck_assert_ptr_null(tg_op_apply(tg_op_find("layer_norm"), 0, two, &p));
    ck_tg_error(TG_ERR_VALUE, "layer_norm", "at least 1 input", "got 0");
    tg_tensor_release(one);
}
END_TEST

/* corpus/regress-pool-backward-huge-shape-loop: avg_pool2d_backward (and
 * max_pool2d_backward) through the registry take the input's shape from
 * shape=, up to 2**40 per side; the check that every pooling window sees the
 * input looped over all 2**39 output rows before the gradient's shape was
 * compared (a hang).  Only the edge windows can miss the input when it is at
 * least one dilation wide, so two are checked; a dilated window that steps
 * over a narrow input is still refused. */
START_TEST(pool_backward_huge_input_shape) {
    tg_tensor *dy = tg_tensor_ones(4, (int64_t[]){1, 2, 4, 3}, TG_FLOAT64);
    ck_tg(dy);
    tg_params p;
    memset(&p, 0, sizeof p);
    int64_t pp[11] = {2, 2, 2, 2, 0, 0, 1, 1, 0, 1, 0}; /* kernel 2, stride 2 */
    memcpy(p.ints, pp, sizeof pp);
    p.ndim = 4;
    memcpy(p.shape, (int64_t[]){1, 2, (int64_t)1 << 40, 8}, 4 * sizeof(int64_t));
    tg_error_clear();
    ck_assert_ptr_null(tg_op_apply(tg_op_find("avg_pool2d_backward"), 1, &dy, &p));
    ck_tg_error(TG_ERR_VALUE, "avg_pool2d_backward", "grad_output has shape (1, 2, 4, 3)",
                "expected (1, 2, 549755813888, 4)");
    memcpy(p.shape, (int64_t[]){1, 2, 8, 6}, 4 * sizeof(int64_t)); /* the right shape still works */
    tg_tensor *dx = tg_op_apply(tg_op_find("avg_pool2d_backward"), 1, &dy, &p);
    ck_tg(dx);
    ck_assert_int_eq(dx->shape[2], 8);
    ck_assert(fabs(tg_tensor_get_flat(dx, 0) - 0.25) < 1e-15);
    tg_tensor_release(dx);
    tg_tensor_release(dy);
    /* kernel 2, dilation 3, input width 2 with padding 1: the window at 0 taps
     * -1 and 2, both outside */
    tg_tensor *x = tg_tensor_ones(4, (int64_t[]){1, 1, 4, 2}, TG_FLOAT64);
    ck_tg(x);
    int64_t mp[11] = {1, 2, 1, 1, 0, 1, 1, 3, 0, 1, 0};
    tg_error_clear();
    ck_assert_ptr_null(tg_max_pool2d_ex(x, mp, NULL));
    ck_tg_error(TG_ERR_VALUE, "max_pool2d", "covers only padding");
    tg_tensor_release(x);
}
END_TEST

/* corpus/regress-copy-slices-view-ndim-out-of-range: copy_slices through the
 * registry printed the view's shape with its ndim (params.ndim) before
 * checking it, so ndim 9 read past shape[8] (ASan: stack-buffer-overflow). */
START_TEST(copy_slices_view_ndim_out_of_range) {
    tg_tensor *base = tg_tensor_ones(1, (int64_t[]){4}, TG_FLOAT64);
    tg_tensor *value = tg_tensor_ones(1, (int64_t[]){2}, TG_FLOAT64);
    ck_tg(base && value);
    tg_tensor *in[2] = {base, value};
    const tg_opdef *op = tg_op_find("copy_slices");
    tg_params p;
    memset(&p, 0, sizeof p);
    p.ndim = 1, p.shape[0] = 2, p.ints[0] = 1, p.ints[8] = 1, p.i[1] = 1;
    tg_tensor *y = tg_op_apply(op, 2, in, &p); /* the right view: fine */
    ck_tg(y);
    tg_tensor_release(y);
    int bad[3] = {TG_MAX_DIMS + 1, 1 << 20, -1};
    for (int k = 0; k < 3; k++) {
        p.ndim = bad[k];
        tg_error_clear();
        ck_assert_ptr_null(tg_op_apply(op, 2, in, &p));
        ck_tg_error(TG_ERR_VALUE, "copy_slices", "dims (expected 0 to 8)");
    }
    tg_tensor_release(base);
    tg_tensor_release(value);
}
END_TEST

/* corpus/regress-slice-empty-view-int64-min-stride: from_storage accepted
 * an empty (3, 0) uint8 tensor with a stride of INT64_MIN (it addresses
 * nothing); slicing it from 2 computed 2 * INT64_MIN (UBSan).  An empty
 * tensor over a storage now takes contiguous strides. */
START_TEST(slice_empty_tensor_with_int64_min_stride) {
    unsigned char buf[4] = {0};
    tg_storage *s = tg_storage_borrow(buf, sizeof buf, NULL, NULL, false);
    int64_t shape[2] = {3, 0}, strides[2] = {INT64_MIN, 1};
    tg_tensor *t = tg_tensor_from_storage(s, TG_UINT8, 2, shape, strides, 0);
    ck_tg(t);
    ck_assert(t->strides[0] != INT64_MIN);
    int64_t starts[2] = {2, 0}, stops[2] = {3, 0}, steps[2] = {1, 1};
    tg_tensor *v = tg_slice(t, starts, stops, steps, 0);
    ck_tg(v);
    ck_assert_int_eq(v->shape[0], 1);
    ck_assert_int_eq(v->shape[1], 0);
    ck_assert_int_eq(v->numel, 0);
    tg_tensor_release(v);
    tg_tensor_release(t);
    tg_storage_release(s);
}
END_TEST

/* corpus/regress-svd-qr-empty-matrices-huge-batch-loop: qr and svd of 2**40
 * matrices 0 x 0 looped 2**40 times writing nothing (a hang); and a generic
 * call's error names the op called even when a constituent failed. */
START_TEST(qr_svd_huge_batch_of_empty_matrices) {
    int64_t shape[3] = {(int64_t)1 << 40, 0, 0};
    tg_tensor *a = tg_tensor_zeros(3, shape, TG_FLOAT64);
    ck_tg(a);
    for (int mode = 0; mode < 2; mode++) {
        tg_tensor *q = tg_linalg_qr(a, mode), *u = tg_linalg_svd(a, mode);
        ck_tg(q);
        ck_tg(u);
        ck_assert_int_eq(q->shape[0], (int64_t)1 << 40);
        ck_assert_int_eq(u->numel, 0);
        tg_tensor_release(q);
        tg_tensor_release(u);
    }
    tg_tensor_release(a);
    int64_t s2[2] = {2, 2};
    tg_tensor *x = tg_tensor_zeros(2, s2, TG_FLOAT64);
    tg_params p;
    ck_assert_int_eq(tg_params_parse("i0=0 i1=9223372036854775807 i2=1", &p), TG_OK);
    ck_assert_ptr_null(tg_op_apply(tg_op_find("trace"), 1, &x, &p));
    ck_tg_error(TG_ERR_INDEX, "trace: diagonal: axis 9223372036854775807");
    tg_tensor_release(x);
}
END_TEST

/* Session 12: generic calls cut int64 params to 32 bits -- tensordot's pair
 * count i0 = 2**32 + 1 was one pair and INT64_MIN none (an outer product),
 * einsum's subscript code 2**32 + 105 the letter i -- and tg_op_example took
 * a negative index as example 0. */
START_TEST(int_params_not_cut_to_32_bits) {
    int64_t sa[2] = {3, 4}, sb[2] = {4, 5};
    tg_tensor *ab[2] = {tg_tensor_ones(2, sa, TG_FLOAT64), tg_tensor_ones(2, sb, TG_FLOAT64)};
    tg_params p;
    const char *bad_td[] = {"i0=4294967297 ints=1,0", "i0=-9223372036854775808 ints=1,0", "i0=9"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tg_params_parse(bad_td[i], &p), TG_OK);
        ck_assert_ptr_null(tg_op_apply(tg_op_find("tensordot"), 2, ab, &p));
        ck_tg_error(TG_ERR_VALUE, "tensordot", "summed axes (i0); expected 0 to 8");
    }
    ck_assert_int_eq(tg_params_parse("i0=1 ints=1,0", &p), TG_OK);
    tg_tensor *y = tg_op_apply(tg_op_find("tensordot"), 2, ab, &p);
    ck_tg(y);
    ck_assert_int_eq(y->shape[0], 3);
    ck_assert_int_eq(y->shape[1], 5);
    tg_tensor_release(y);
    ck_assert_int_eq(tg_params_parse("ints=4294967401,106,44,106,107,45,62,105,107", &p), TG_OK);
    ck_assert_ptr_null(tg_op_apply(tg_op_find("einsum"), 2, ab, &p));
    ck_tg_error(TG_ERR_VALUE, "einsum: ints[0] = 4294967401", "ASCII");
    ck_assert_int_eq(tg_params_parse("ints=105,106,44,106,107,45,62,105,107", &p), TG_OK);
    y = tg_op_apply(tg_op_find("einsum"), 2, ab, &p);
    ck_tg(y);
    tg_tensor_release(y);
    int n;
    tg_tensor *in[8];
    ck_assert_int_ne(tg_op_example(tg_op_find("relu"), -1, TG_FLOAT64, &n, in, &p), TG_OK);
    ck_tg_error(TG_ERR_INDEX, "relu: no example -1");
    ck_assert_int_eq(n, 0);
    tg_tensor_release(ab[0]);
    tg_tensor_release(ab[1]);
}
END_TEST

/* interpolate with a tiny scale_factor beside an explicit size (found by the
 * fuzzer, session 15): 1 / 1e-300 is inf in float, so the source position
 * was inf (NaN for output 0 in nearest mode: 0 * inf) and its conversion to
 * int64_t undefined.  Positions are now clamped to the input: output 0 reads
 * the first element in nearest mode, every other output the last; linear
 * modes read the last element (their position is inf for every output). */
START_TEST(interpolate_tiny_scale_factor) {
    int64_t s3[3] = {1, 1, 5}, s4[4] = {1, 1, 2, 5}, size[2] = {3, 4};
    double scales[2] = {1e-300, 1e-300};
    tg_tensor *x3 = tg_tensor_arange(0, 5, 1, TG_FLOAT32), *x4 = tg_tensor_arange(0, 10, 1, TG_FLOAT64);
    ck_tg(x3);
    ck_tg(x4);
    tg_tensor *a = tg_reshape(x3, 3, s3), *b = tg_reshape(x4, 4, s4);
    ck_tg(a);
    ck_tg(b);
    for (int mode = 0; mode < 4; mode++) {
        tg_tensor *x = mode == 1 ? a : b;
        const int64_t *sz = mode == 1 ? size + 1 : size;
        tg_tensor *y = tg_interpolate(x, sz, scales, mode, false);
        ck_tg(y);
        int64_t W = x->shape[x->ndim - 1], OW = y->shape[y->ndim - 1];
        ck_assert_int_eq(OW, 4);
        for (int64_t i = 0; i < y->numel; i++) {
            int64_t o = i % OW;
            double v = tg_tensor_get_flat(y, i);
            /* the row read: nearest modes map output row 0 to row 0, later ones
             * to the last row (the same rule on that axis) */
            int64_t r = x->ndim == 4 ? ((mode == 0 && i / OW == 0) ? 0 : 1) : 0;
            int64_t c = (mode == 0 && o == 0) ? 0 : W - 1;
            ck_assert_msg(v == tg_tensor_get_flat(x, r * W + c), "mode %d, output %lld: %g", mode,
                          (long long)i, v);
        }
        tg_tensor_release(y);
    }
    tg_tensor_release(a);
    tg_tensor_release(b);
    tg_tensor_release(x3);
    tg_tensor_release(x4);
}
END_TEST

Suite *regressions_suite(void) {
    Suite *s = suite_create("regressions");
    TCase *tc = tcase_create("fuzz");
    tcase_add_test(tc, empty_tensor_with_huge_dims);
    tcase_add_test(tc, eye_empty_and_extreme_diagonal);
    tcase_add_test(tc, float_to_int64_out_of_range);
    tcase_add_test(tc, int64_arithmetic_wraps);
    tcase_add_test(tc, slice_extreme_steps);
    tcase_add_test(tc, from_storage_overflowing_geometry);
    tcase_add_test(tc, step_after_failure_sets_error);
    tcase_add_test(tc, reference_cycles_refused);
    tcase_add_test(tc, conv2d_huge_stride);
    tcase_add_test(tc, index_add_checks_source_shape);
    tcase_add_test(tc, var_extreme_ddof);
    tcase_add_test(tc, reshape_empty_into_huge_dims);
    tcase_add_test(tc, slice_backward_checks_shape);
    tcase_add_test(tc, index_select_empty_with_huge_dims);
    tcase_add_test(tc, variadic_ops_with_too_few_inputs);
    tcase_add_test(tc, pool_backward_huge_input_shape);
    tcase_add_test(tc, copy_slices_view_ndim_out_of_range);
    tcase_add_test(tc, slice_empty_tensor_with_int64_min_stride);
    tcase_add_test(tc, interpolate_tiny_scale_factor);
    tcase_add_test(tc, qr_svd_huge_batch_of_empty_matrices);
    tcase_add_test(tc, int_params_not_cut_to_32_bits);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("aliasing");
    tcase_add_test(ta, labels_modified_before_backward);
    tcase_add_test(ta, overlapping_backward_refused);
    tcase_add_test(ta, save_hook_counts);
    suite_add_tcase(s, ta);
    TCase *ti = tcase_create("issue15");
    tcase_add_test(ti, from_buffer_null_data);
    tcase_add_test(ti, one_hot_negative_classes);
    tcase_add_test(ti, broadcast_to_too_many_dims);
    tcase_add_test(ti, clip_min_above_max);
    tcase_add_test(ti, pow_int64);
    tcase_add_test(ti, softmax_with_inf);
    tcase_add_test(ti, pow_grad_zero_base);
    tcase_add_test(ti, grad_repeated_input);
    tcase_add_test(ti, optimizer_repeated_parameter);
    tcase_add_test(ti, adam_one_loop_threads_and_overlap);
    suite_add_tcase(s, ti);
    return s;
}
