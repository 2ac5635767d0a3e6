/*
 * test_ops.c -- registry-driven tests: every op in tg_op_get(), every example
 * input set it declares (broadcasting, views, non-contiguous inputs).
 *
 *  - the VJP of every differentiable op against central finite differences
 *    in float64 (L = sum(out * v) for a fixed random v);
 *  - the second derivative (the VJP of the VJP, recorded with
 *    TG_CREATE_GRAPH) against finite differences of the first derivative:
 *    VJPs are written with ops, so gradients of gradients must be right;
 *  - float32 and float64 forward agree (the same kernels in both dtypes).
 * (No NumPy golden values here yet: forward values are checked against
 * hand-computed ones in the tape, tensor and error suites.)
 * A new op with examples is covered with no new test code; an op without
 * examples fails test_every_op_has_examples.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 1234

static tg_tensor *run(const tg_opdef *op, int k, tg_dtype dt, int *n, tg_tensor **in, tg_params *p,
                      bool rg) {
    tg_manual_seed(SEED + (uint64_t)k);
    if (tg_op_example(op, k, dt, n, in, p)) return NULL;
    for (int i = 0; i < *n; i++)
        if (rg && tg_dtype_is_float(in[i]->dtype)) ck_tg_ok(tg_tensor_set_requires_grad(in[i], true));
    tg_manual_seed(SEED + 1000); /* ops that draw random numbers (dropout) */
    return tg_op_apply(op, *n, in, p);
}

/* Every registered op (but "custom") has examples, formulas and a consistent registry entry. */
START_TEST(test_every_op_has_examples) {
    for (int i = 0; i < tg_op_count(); i++) {
        const tg_opdef *op = tg_op_get(i);
        if (!strcmp(op->name, "custom")) continue;
        ck_assert_msg(tg_op_example_count(op) > 0, "op %s has no examples", op->name);
        ck_assert_msg(op->forward && op->vjp && op->doc && op->forward_tex, "op %s lacks formulas", op->name);
        ck_assert_msg(tg_op_find(op->name) == op, "registry lookup of %s", op->name);
        ck_assert_int_eq(op->id, i);
    }
}
END_TEST

/* Every op has a flop rule the profiler can apply: an op block that sets
 * none gets one derived from its arity and cost (never AUTO, never negative). */
START_TEST(test_every_op_has_a_flop_rule) {
    for (int i = 0; i < tg_op_count(); i++) {
        const tg_opdef *op = tg_op_get(i);
        tg_flops f = tg_op_flops(op);
        ck_assert_msg(f.per > TG_FLOPS_AUTO && f.per <= TG_FLOPS_CONV_GRAD, "op %s: flop unit %d",
                      op->name, (int)f.per);
        ck_assert_msg(f.forward >= 0 && f.backward >= 0, "op %s: negative flops", op->name);
        ck_assert_msg(strcmp(tg_flops_kind_name(f.per), "auto") != 0, "op %s", op->name);
    }
    tg_flops exp = tg_op_flops(tg_op_find("exp")), add = tg_op_flops(tg_op_find("add"));
    ck_assert(exp.per == TG_FLOPS_OUTPUT && exp.forward == 1 && exp.backward == 3 && !exp.per_grad_input);
    ck_assert(add.per == TG_FLOPS_OUTPUT && add.backward == 2 && add.per_grad_input);
    ck_assert_int_eq(tg_op_flops(tg_op_find("reshape")).per, TG_FLOPS_NONE);
    ck_assert_int_eq(tg_op_flops(tg_op_find("matmul")).per, TG_FLOPS_MATMUL);
    ck_assert_int_eq(tg_op_flops(NULL).per, TG_FLOPS_NONE);
}
END_TEST

/* tg.nn.functional's ops: marked in their block, or public ops of nn.c/conv.c. */
START_TEST(test_functional_ops) {
    ck_assert(tg_op_functional(tg_op_find("relu")));          /* marked (elementwise.c) */
    ck_assert(tg_op_functional(tg_op_find("cross_entropy"))); /* nn.c */
    ck_assert(tg_op_functional(tg_op_find("conv2d")));        /* conv.c */
    ck_assert(!tg_op_functional(tg_op_find("conv2d_input_grad"))); /* internal */
    ck_assert(!tg_op_functional(tg_op_find("exp")));
    ck_assert(!tg_op_functional(NULL));
}
END_TEST

/* The VJP of op `_i` against finite differences, on each example. */
START_TEST(test_vjp_finite_differences) {
    const tg_opdef *op = tg_op_get(_i);
    if (!op->backward) return;
    for (int k = 0; k < tg_op_example_count(op); k++) {
        int n;
        tg_tensor *in[8];
        tg_params p;
        tg_tensor *out = run(op, k, TG_FLOAT64, &n, in, &p, true);
        ck_assert_msg(out != NULL, "%s example %d: %s", op->name, k, tg_error_message());
        if (!out->requires_grad) { /* e.g. dropout in eval mode returns its input */
            tg_tensor_release(out);
            for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
            continue;
        }
        tg_manual_seed(99);
        tg_tensor *v = tg_tensor_randn(out->ndim, out->shape, 0, 1, TG_FLOAT64);
        ck_tg(v);
        ck_tg_ok(tg_backward(out, v, 0));
        for (int i = 0; i < n; i++) {
            if (!tg_dtype_is_float(in[i]->dtype) || !(op->diff_mask & (1u << (i < 31 ? i : 31))))
                continue;
            tg_tensor *x = in[i];
            ck_assert_msg(x->grad != NULL, "%s example %d: input %d got no gradient", op->name, k, i);
            const double h = 1e-6;
            double worst = 0;
            int64_t worst_j = -1;
            double wa = 0, wn = 0;
            for (int64_t j = 0; j < x->numel; j++) {
                double x0 = tg_tensor_get_flat(x, j), f[2];
                for (int s = 0; s < 2; s++) {
                    tt_set_flat(x, j, x0 + (s ? -h : h));
                    bool prev = tg_set_grad_enabled(false);
                    tg_manual_seed(SEED + 1000);
                    tg_tensor *o = tg_op_apply(op, n, in, &p);
                    tg_set_grad_enabled(prev);
                    ck_tg(o);
                    double acc = 0;
                    for (int64_t q = 0; q < o->numel; q++)
                        acc += tg_tensor_get_flat(o, q) * tg_tensor_get_flat(v, q);
                    f[s] = acc;
                    tg_tensor_release(o);
                }
                tt_set_flat(x, j, x0);
                double num = (f[0] - f[1]) / (2 * h), ana = tg_tensor_get_flat(x->grad, j);
                double err = fabs(num - ana) / (1e-3 + fabs(num));
                if (err > worst) {
                    worst = err;
                    worst_j = j;
                    wa = ana;
                    wn = num;
                }
            }
            ck_assert_msg(worst < 1e-5,
                          "%s example %d (%s): input %d element %lld analytic %.10g numeric %.10g",
                          op->name, k, op->examples, i, (long long)worst_j, wa, wn);
        }
        tg_tensor_release(v);
        tg_tensor_release(out);
        for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
    }
}
END_TEST

/* S(x) = sum_k <dL/dx_k, u_k> with L = sum(op(x) * v): the first derivative
 * projected on fixed random directions u.  `create` records the graph of the
 * first derivative so that S can be differentiated again.  NULL when S does
 * not depend on x at all (a linear op: the second derivative is 0); *value
 * is S either way. */
static tg_tensor *projected_grad(const tg_opdef *op, int n, tg_tensor **in, const tg_params *p,
                                 tg_tensor *v, tg_tensor **u, int flags, double *value) {
    tg_tensor *diff[8];
    int nd = 0;
    for (int i = 0; i < n; i++)
        if (in[i]->requires_grad) diff[nd++] = in[i];
    tg_manual_seed(SEED + 1000);
    tg_tensor *out = tg_op_apply(op, n, in, p);
    ck_assert_msg(out != NULL, "%s: %s", op->name, tg_error_message());
    tg_tensor *g[8];
    tg_status st = tg_grad(1, &out, &v, nd, diff, flags, g);
    ck_assert_msg(st == TG_OK, "%s: first grad: %s", op->name, tg_error_message());
    tg_tensor *S = NULL;
    *value = 0;
    for (int k = 0; k < nd; k++) {
        tg_tensor *gu = tg_mul(g[k], u[k]);
        tg_tensor *s = gu ? tg_sum(gu, NULL, 0, false) : NULL;
        ck_assert_msg(s != NULL, "%s: %s", op->name, tg_error_message());
        *value += tt_item(s);
        tg_tensor *acc = S ? tg_add(S, s) : (tg_tensor_retain(s), s);
        ck_tg(acc);
        tg_tensor_release(S);
        S = acc;
        tg_tensor_release(s);
        tg_tensor_release(gu);
        tg_tensor_release(g[k]);
    }
    tg_tensor_release(out);
    if (S && !S->requires_grad) {
        tg_tensor_release(S);
        S = NULL;
    }
    return S;
}

/* The second derivative of op `_i` (its VJP differentiated, TG_CREATE_GRAPH) against finite differences. */
START_TEST(test_second_order_finite_differences) {
    const tg_opdef *op = tg_op_get(_i);
    if (!op->backward) return;
    for (int k = 0; k < tg_op_example_count(op); k++) {
        int n;
        tg_tensor *in[8], *u[8] = {0};
        tg_params p;
        tg_tensor *out = run(op, k, TG_FLOAT64, &n, in, &p, true);
        ck_assert_msg(out != NULL, "%s example %d: %s", op->name, k, tg_error_message());
        bool differentiable = out->requires_grad;
        tg_manual_seed(99);
        tg_tensor *v = tg_tensor_randn(out->ndim, out->shape, 0, 1, TG_FLOAT64);
        tg_tensor_release(out);
        if (!differentiable) {
            tg_tensor_release(v);
            for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
            continue;
        }
        int nd = 0;
        for (int i = 0; i < n; i++)
            if (in[i]->requires_grad) {
                u[nd] = tg_tensor_randn(in[i]->ndim, in[i]->shape, 0, 1, TG_FLOAT64);
                ck_tg(u[nd]);
                nd++;
            }
        double s0;
        tg_tensor *S = projected_grad(op, n, in, &p, v, u, TG_CREATE_GRAPH, &s0);
        tg_tensor *diff[8], *h[8] = {0};
        int m = 0;
        for (int i = 0; i < n; i++)
            if (in[i]->requires_grad) diff[m++] = in[i];
        if (S) {
            tg_status st = tg_grad(1, &S, NULL, nd, diff, 0, h);
            ck_assert_msg(st == TG_OK, "%s example %d: second grad: %s", op->name, k,
                          tg_error_message());
        }
        for (int q = 0; q < nd; q++) {
            tg_tensor *x = diff[q];
            const double eps = 1e-5;
            double worst = 0, wa = 0, wn = 0;
            int64_t worst_j = -1;
            for (int64_t j = 0; j < x->numel; j++) {
                double x0 = tg_tensor_get_flat(x, j), f[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    tt_set_flat(x, j, x0 + (sgn ? -eps : eps));
                    tg_tensor_release(projected_grad(op, n, in, &p, v, u, 0, &f[sgn]));
                }
                tt_set_flat(x, j, x0);
                double num = (f[0] - f[1]) / (2 * eps), ana = h[q] ? tg_tensor_get_flat(h[q], j) : 0;
                double err = fabs(num - ana) / (1e-2 + fabs(num));
                if (err > worst) {
                    worst = err;
                    worst_j = j;
                    wa = ana;
                    wn = num;
                }
            }
            ck_assert_msg(worst < 1e-4,
                          "%s example %d (%s): d2 wrt input %d element %lld analytic %.10g numeric %.10g",
                          op->name, k, op->examples, q, (long long)worst_j, wa, wn);
        }
        for (int q = 0; q < nd; q++) {
            tg_tensor_release(h[q]);
            tg_tensor_release(u[q]);
        }
        tg_tensor_release(S);
        tg_tensor_release(v);
        for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
    }
}
END_TEST

/* float32 and float64 give the same forward (to float32 precision). */
START_TEST(test_forward_f32_matches_f64) {
    const tg_opdef *op = tg_op_get(_i);
    if (!strcmp(op->name, "custom")) return;
    for (int k = 0; k < tg_op_example_count(op); k++) {
        int n32, n64;
        tg_tensor *in32[8], *in64[8];
        tg_params p;
        tg_tensor *o32 = run(op, k, TG_FLOAT32, &n32, in32, &p, false);
        tg_tensor *o64 = run(op, k, TG_FLOAT64, &n64, in64, &p, false);
        ck_assert_msg(o32 && o64, "%s example %d: %s", op->name, k, tg_error_message());
        ck_assert_int_eq(o32->ndim, o64->ndim);
        for (int d = 0; d < o32->ndim; d++) ck_assert_int_eq(o32->shape[d], o64->shape[d]);
        for (int64_t j = 0; j < o32->numel; j++) {
            double a = tg_tensor_get_flat(o32, j), b = tg_tensor_get_flat(o64, j);
            ck_assert_msg(fabs(a - b) <= 1e-4 * (1 + fabs(b)), "%s example %d element %lld: %g vs %g",
                          op->name, k, (long long)j, a, b);
        }
        tg_tensor_release(o32);
        tg_tensor_release(o64);
        for (int i = 0; i < n32; i++) tg_tensor_release(in32[i]);
        for (int i = 0; i < n64; i++) tg_tensor_release(in64[i]);
    }
}
END_TEST

/* conv2d's three products by Winograd (csrc/kernels/winograd.c) against
 * the exact direct path, in C so that valgrind, the sanitizers and the
 * arm64 build (the plain transforms) run it too, for both kernel sizes the
 * transforms are built for.  TAPEGRAD_CONV is read at each call: the larger
 * and the 2x2 tile forced (winograd3 / winograd2 for 5x5, winograd4 /
 * winograd2 for 3x3), and unset (the default takes Winograd here: 8
 * channels in and out, 9 or more tiles).  The exact bound is
 * tests/python/test_conv_winograd.py's; here 1e-4 of the largest value. */
static void conv_products(const char *path, tg_tensor *x, tg_tensor *w, tg_tensor *dy,
                          const int64_t *cv, tg_tensor **out) {
    if (path) setenv("TAPEGRAD_CONV", path, 1);
    else unsetenv("TAPEGRAD_CONV");
    out[0] = tg_conv2d_ex(x, w, NULL, cv);
    out[1] = tg_conv2d_input_grad_ex(dy, w, x->shape, cv);
    out[2] = tg_conv2d_weight_grad_ex(x, dy, w->shape, cv);
    unsetenv("TAPEGRAD_CONV");
    for (int k = 0; k < 3; k++) ck_assert_msg(out[k] != NULL, "%s: %s", path, tg_error_message());
}

static const int winograd_kernels[2] = {5, 3};

START_TEST(test_conv2d_winograd_matches_direct) {
    int64_t r = winograd_kernels[_i], p = r / 2;
    int64_t xs[4] = {3, 8, 12, 11}, ws[4] = {8, 8, r, r}, ys[4] = {3, 8, 12, 11};
    /* stride, padding top/left, dilation, groups, padding bottom/right */
    int64_t cv[9] = {1, 1, p, p, 1, 1, 1, p, p};
    tg_tensor *x = tg_tensor_randn(4, xs, 0.0, 1.0, TG_FLOAT32);
    tg_tensor *w = tg_tensor_randn(4, ws, 0.0, 1.0, TG_FLOAT32);
    tg_tensor *dy = tg_tensor_randn(4, ys, 0.0, 1.0, TG_FLOAT32);
    ck_assert(x && w && dy);
    tg_tensor *ref[3], *got[3];
    conv_products("implicit", x, w, dy, cv, ref);
    const char *paths[3] = {r == 5 ? "winograd3" : "winograd4", "winograd2", NULL};
    for (int q = 0; q < 3; q++) {
        conv_products(paths[q], x, w, dy, cv, got);
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(got[k]->numel, ref[k]->numel);
            double big = 0, err = 0;
            int differs = 0;
            for (int64_t j = 0; j < ref[k]->numel; j++) {
                double a = tg_tensor_get_flat(got[k], j), b = tg_tensor_get_flat(ref[k], j);
                big = fmax(big, fabs(b));
                err = fmax(err, fabs(a - b));
                differs |= a != b;
            }
            ck_assert_msg(err <= 1e-4 * big, "%lldx%lld %s product %d: error %g of %g", (long long)r,
                          (long long)r, paths[q] ? paths[q] : "default", k, err, big);
            ck_assert_msg(differs, "%lldx%lld %s product %d: the bits of the direct path (Winograd did "
                          "not run?)", (long long)r, (long long)r, paths[q] ? paths[q] : "default", k);
            tg_tensor_release(got[k]);
        }
    }
    for (int k = 0; k < 3; k++) tg_tensor_release(ref[k]);
    tg_tensor_release(x);
    tg_tensor_release(w);
    tg_tensor_release(dy);
}
END_TEST

Suite *ops_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_op_has_examples);
    tcase_add_test(tc, test_every_op_has_a_flop_rule);
    tcase_add_test(tc, test_functional_ops);
    tcase_add_loop_test(tc, test_conv2d_winograd_matches_direct, 0, 2);
    tcase_add_loop_test(tc, test_vjp_finite_differences, 0, tg_op_count());
    tcase_add_loop_test(tc, test_second_order_finite_differences, 0, tg_op_count());
    tcase_add_loop_test(tc, test_forward_f32_matches_f64, 0, tg_op_count());
    suite_add_tcase(s, tc);
    return s;
}
