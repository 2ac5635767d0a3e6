/*
 * test_tape.c -- the tape (core/record.c) and the backward engine
 * (engine/backward.c): graph shapes (diamonds,
 * long chains), accumulation, retain_graph, higher-order gradients, grad
 * mode, the stepping engine and its hooks, gradient hooks, custom entries,
 * VJP overrides, recorders, saved-tensor checks and user-data callbacks.
 *
 * Every expected gradient is computed by hand in the test (closed forms), not
 * by the library.
 */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#define TOL 1e-12

/* sum(t) as a new reference (a 0-d tensor). */
static tg_tensor *sum_all(tg_tensor *t) {
    tg_tensor *s = tg_sum(t, NULL, 0, false);
    ck_tg(s);
    return s;
}

/* sum(t), releasing t (for temporaries). */
static tg_tensor *sum_take(tg_tensor *t) {
    ck_tg(t);
    tg_tensor *s = sum_all(t);
    tg_tensor_release(t);
    return s;
}

/* a (op) b, releasing both arguments (for building expressions). */
static tg_tensor *take2(tg_tensor *(*f)(tg_tensor *, tg_tensor *), tg_tensor *a, tg_tensor *b) {
    tg_tensor *r = f(a, b);
    ck_tg(r);
    tg_tensor_release(a);
    tg_tensor_release(b);
    return r;
}

/* ===================================================================== */
/* The direct route of slices (TG_DIRECT, issue 16)                       */
/* ===================================================================== */

/* h = x * 1.5 used by overlapping slices, by u's add (which hands the same
 * gradient tensor to h and to u, u's entry running after the slices) and by
 * a square; also a leaf sliced directly.  The gradients are bitwise those
 * of the reference route (every VJP), and the stepper with TG_DIRECT shows
 * no input gradient for the slice step that took it. */
static void direct_case(bool direct, tg_tensor **gx_out, tg_tensor **gw_out, tg_tensor **gl_out) {
    int64_t sh[2] = {4, 6};
    tg_tensor *x = tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64), *w = tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64),
              *l = tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64);
    ck_tg(x && w && l);
    x->requires_grad = w->requires_grad = l->requires_grad = true;
    tg_tensor *u = tg_mul_scalar(w, 2.0), *h = tg_mul_scalar(x, 1.5);
    int64_t s0[2] = {0, 0}, e0[2] = {4, 2}, s1[2] = {0, 1}, e1[2] = {4, 5}, s2[2] = {2, 0}, e2[2] = {4, 6};
    tg_tensor *a = tg_slice(h, s0, e0, NULL, 0), *b = tg_slice(h, s1, e1, NULL, 0),
              *c = tg_slice(h, s2, e2, NULL, 0), *la = tg_slice(l, s0, e0, NULL, 0),
              *lb = tg_slice(l, s1, e1, NULL, 0);
    tg_tensor *y = tg_add(h, u), *hh = tg_mul(h, h);
    ck_tg(u && h && a && b && c && la && lb && y && hh);
    tg_tensor_retain(y); /* parts[] holds its own references */
    tg_tensor_retain(hh);
    tg_tensor *parts[7] = {tg_mul_scalar(a, 2), tg_mul_scalar(b, 3), tg_mul_scalar(c, 5), y, hh,
                           tg_mul_scalar(la, 7), tg_mul(lb, lb)};
    tg_tensor *loss = NULL;
    for (int i = 0; i < 7; i++) {
        ck_tg(parts[i]);
        tg_tensor *s = tg_sum(parts[i], NULL, 0, false);
        ck_tg(s);
        if (loss) {
            tg_tensor *t = tg_add(loss, s);
            tg_tensor_release(loss);
            tg_tensor_release(s);
            loss = t;
        } else {
            loss = s;
        }
        ck_tg(loss);
    }
    bool prev = tg_set_direct_backward(direct);
    ck_tg_ok(tg_backward(loss, NULL, 0));
    tg_set_direct_backward(prev);
    *gx_out = x->grad;
    *gw_out = w->grad;
    *gl_out = l->grad;
    tg_tensor_retain(x->grad);
    tg_tensor_retain(w->grad);
    tg_tensor_retain(l->grad);
    tg_tensor *all[] = {x, w, l, u, h, a, b, c, la, lb, y, hh, loss};
    for (int i = 0; i < 13; i++) tg_tensor_release(all[i]);
    for (int i = 0; i < 7; i++) tg_tensor_release(parts[i]);
}

static void ck_same_bits(const tg_tensor *p, const tg_tensor *q) {
    ck_assert_int_eq(p->numel, q->numel);
    const double *a = tg_tensor_data((tg_tensor *)p), *b = tg_tensor_data((tg_tensor *)q);
    for (int64_t i = 0; i < p->numel; i++) ck_assert_msg(a[i] == b[i], "element %lld: %g != %g", (long long)i, a[i], b[i]);
}

START_TEST(test_direct_slice_route_matches_reference) {
    tg_tensor *g[2][3];
    for (int k = 0; k < 2; k++) {
        tg_manual_seed(21);
        direct_case(k == 0, &g[k][0], &g[k][1], &g[k][2]);
    }
    for (int i = 0; i < 3; i++) {
        ck_tg(g[0][i] && g[1][i]);
        ck_same_bits(g[0][i], g[1][i]);
        tg_tensor_release(g[0][i]);
        tg_tensor_release(g[1][i]);
    }
}
END_TEST

START_TEST(test_direct_slice_route_in_the_stepper) {
    int64_t sh[2] = {3, 4}, s0[2] = {0, 0}, e0[2] = {3, 2}, s1[2] = {0, 2}, e1[2] = {3, 4};
    tg_tensor *x = tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64);
    ck_tg(x);
    x->requires_grad = true;
    tg_tensor *h = tg_mul_scalar(x, 3.0);
    tg_tensor *a = tg_slice(h, s0, e0, NULL, 0), *b = tg_slice(h, s1, e1, NULL, 0);
    tg_tensor *b2 = tg_mul_scalar(b, 2.0);
    ck_tg(b2);
    tg_tensor *sa = tg_sum(a, NULL, 0, false), *sb = tg_sum(b2, NULL, 0, false);
    ck_tg(h && a && b && sa && sb);
    tg_tensor *loss = tg_add(sa, sb);
    ck_tg(loss);
    for (int direct = 0; direct < 2; direct++) {
        tg_stepper *bw = tg_backward_begin(1, &loss, NULL, TG_RETAIN_GRAPH | (direct ? TG_DIRECT : 0), 0, NULL);
        ck_tg(bw);
        int slices = 0, r;
        while ((r = tg_backward_step(bw)) == 1) {
            const tg_step *s = tg_backward_last_step(bw);
            if (strcmp(tg_entry_name(s->entry), "slice") == 0) {
                slices++;
                /* direct: the first slice starts x's sum (the ordinary route),
                 * the second adds into it */
                ck_assert_msg((s->grad_in[0] == NULL) == (direct == 1 && slices == 2), "slice step %d direct %d",
                              slices, direct);
            }
        }
        ck_assert_int_eq(r, 0);
        tg_backward_end(bw);
        ck_assert_int_eq(slices, 2);
        double want[12];
        for (int i = 0; i < 12; i++) want[i] = (direct + 1) * (i % 4 < 2 ? 3.0 : 6.0);
        ck_assert_double_eq(tt_diff_to(x->grad, want), 0);
    }
    tg_tensor *all[] = {x, h, a, b, b2, sa, sb, loss};
    for (int i = 0; i < 8; i++) tg_tensor_release(all[i]);
}
END_TEST

/* ===================================================================== */
/* Graph shapes, accumulation, retain_graph                               */
/* ===================================================================== */

/* A diamond with x used twice (y = sum(x*x + x*w)) gives dy/dx = 2x + w, dy/dw = x. */
START_TEST(test_diamond_reused_input) {
    double xv[3] = {1, -2, 0.5}, wv[3] = {3, 4, -1};
    tg_tensor *x = tt_vec(3, xv, true), *w = tt_vec(3, wv, true);
    tg_tensor *xx = tg_mul(x, x), *xw = tg_mul(x, w);
    ck_tg(xx && xw);
    tg_tensor *y = tg_add(xx, xw);
    ck_tg(y);
    tg_tensor *loss = sum_all(y);
    ck_tg_ok(tg_backward(loss, NULL, 0));
    double gx[3], gw[3];
    for (int i = 0; i < 3; i++) {
        gx[i] = 2 * xv[i] + wv[i];
        gw[i] = xv[i];
    }
    ck_assert_double_eq_tol(tt_diff_to(x->grad, gx), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(w->grad, gw), 0, TOL);
    ck_assert_double_eq_tol(tt_item(loss), 1 + 3 + 4 - 8 + 0.25 - 0.5, TOL);
    tg_tensor *all[] = {loss, y, xx, xw, x, w};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
}
END_TEST

/* Two backwards over two freshly built graphs add up in .grad (grad doubles). */
START_TEST(test_grad_accumulates) {
    double xv[2] = {1.5, -3};
    tg_tensor *x = tt_vec(2, xv, true);
    for (int k = 1; k <= 2; k++) {
        tg_tensor *y = tg_mul(x, x);
        tg_tensor *l = sum_all(y);
        ck_tg_ok(tg_backward(l, NULL, 0));
        double want[2] = {k * 2 * xv[0], k * 2 * xv[1]};
        ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
        tg_tensor_release(l);
        tg_tensor_release(y);
    }
    tg_tensor_release(x);
}
END_TEST

/* retain_graph keeps the saved tensors: a second backward works and accumulates. */
START_TEST(test_retain_graph) {
    double xv[2] = {2, 5};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_tanh(x);
    tg_tensor *z = tg_mul(y, x);
    tg_tensor *l = sum_all(z);
    ck_tg_ok(tg_backward(l, NULL, TG_RETAIN_GRAPH));
    double g1[2];
    for (int i = 0; i < 2; i++) {
        double t = tanh(xv[i]);
        g1[i] = t + xv[i] * (1 - t * t);
    }
    ck_assert_double_eq_tol(tt_diff_to(x->grad, g1), 0, TOL);
    ck_assert(!z->grad_fn->freed);
    ck_tg_ok(tg_backward(l, NULL, 0));
    double g2[2] = {2 * g1[0], 2 * g1[1]};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, g2), 0, TOL);
    ck_assert(z->grad_fn->freed);
    tg_tensor *all[] = {l, z, y, x};
    for (int i = 0; i < 4; i++) tg_tensor_release(all[i]);
}
END_TEST

/* A second backward through a freed graph fails with TG_ERR_RUNTIME naming retain_graph. */
START_TEST(test_freed_graph_error) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_mul(x, x);
    tg_tensor *l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    double before[2] = {2, 4};
    tg_error_clear();
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "backward", "retain_graph");
    /* the failed pass did not touch the gradient */
    ck_assert_double_eq_tol(tt_diff_to(x->grad, before), 0, TOL);
    /* the saved tensors of the entry are gone and say so */
    tg_error_clear();
    ck_assert_ptr_null(tg_entry_saved(y->grad_fn, 0));
    ck_tg_error(TG_ERR_RUNTIME, "retain_graph");
    tg_tensor_release(l);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* backward of a non-scalar needs a seed of its shape; with one it computes seed * dy/dx. */
START_TEST(test_nonscalar_backward_needs_seed) {
    double xv[3] = {1, 2, 3}, sv[3] = {10, 20, 30};
    tg_tensor *x = tt_vec(3, xv, true);
    tg_tensor *y = tg_mul(x, x);
    ck_assert_int_eq(tg_backward(y, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "backward", "one-element", "(3,)");
    ck_assert_ptr_null(x->grad);
    int64_t two = 2;
    tg_tensor *bad = tg_tensor_ones(1, &two, TG_FLOAT64);
    ck_assert_int_eq(tg_backward(y, bad, 0), TG_ERR_VALUE);
    ck_tg_error(TG_ERR_VALUE, "backward", "(2,)", "(3,)");
    tg_tensor *seed = tt_vec(3, sv, false);
    ck_tg_ok(tg_backward(y, seed, 0));
    double want[3] = {20, 80, 180};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
    tg_tensor_release(bad);
    tg_tensor_release(seed);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* backward of a leaf itself (an empty tape) gives it the seed as gradient. */
START_TEST(test_backward_of_leaf) {
    double xv[2] = {4, 5}, sv[2] = {0.5, -2};
    tg_tensor *x = tt_vec(2, xv, true), *seed = tt_vec(2, sv, false);
    ck_tg_ok(tg_backward(x, seed, 0));
    ck_assert_double_eq(tt_diff_to(x->grad, sv), 0);
    ck_assert_ptr_ne(x->grad, seed); /* a private copy, not an alias of the seed */
    tg_stepper *bw = tg_backward_begin(1, &x, &seed, 0, 0, NULL);
    ck_tg(bw);
    ck_assert_int_eq(tg_backward_size(bw), 0);
    ck_assert_int_eq(tg_backward_step(bw), 0);
    tg_backward_end(bw);
    double twice[2] = {1, -4};
    ck_assert_double_eq(tt_diff_to(x->grad, twice), 0);
    tg_tensor_release(seed);
    tg_tensor_release(x);
}
END_TEST

/* A chain of 100,000 ops (20,000 under valgrind) runs backward and is freed without deep recursion. */
START_TEST(test_long_chain) {
    const int n = tt_light() ? 20000 : 100000;
    tg_tensor *x = tg_tensor_scalar(1.0, TG_FLOAT64);
    ck_tg_ok(tg_tensor_set_requires_grad(x, true));
    for (int pass = 0; pass < 2; pass++) {
        tg_tensor *y = x;
        tg_tensor_retain(y);
        for (int i = 0; i < n; i++) {
            tg_tensor *t = (i % 2) ? tg_mul_scalar(y, 1.0001) : tg_add_scalar(y, 0.5);
            ck_tg(t);
            tg_tensor_release(y);
            y = t;
        }
        if (pass == 0) {
            ck_tg_ok(tg_backward(y, NULL, 0));
            double want = pow(1.0001, n / 2);
            ck_assert_double_eq_tol(tt_item(x->grad), want, 1e-9 * want);
        }
        /* pass 1: the whole graph dies here without a backward */
        tg_tensor_release(y);
    }
    tg_tensor_release(x);
}
END_TEST

/* ===================================================================== */
/* Higher order                                                           */
/* ===================================================================== */

/* d2/dx2 tanh(x) = -2 tanh(x) (1 - tanh(x)^2), via tg_grad(create_graph) then backward. */
START_TEST(test_second_derivative_tanh) {
    double xv[5] = {-2, -0.5, 0, 0.3, 1.7};
    tg_tensor *x = tt_vec(5, xv, true);
    tg_tensor *y = tg_tanh(x);
    tg_tensor *s = sum_all(y);
    tg_tensor *g = NULL;
    ck_tg_ok(tg_grad(1, &s, NULL, 1, &x, TG_CREATE_GRAPH, &g));
    ck_assert_ptr_null(x->grad); /* tg_grad does not touch .grad */
    ck_assert(g->requires_grad && g->grad_fn != NULL);
    double d1[5], d2[5];
    for (int i = 0; i < 5; i++) {
        double t = tanh(xv[i]);
        d1[i] = 1 - t * t;
        d2[i] = -2 * t * (1 - t * t);
    }
    ck_assert_double_eq_tol(tt_diff_to(g, d1), 0, TOL);
    tg_tensor *gs = sum_all(g);
    ck_tg_ok(tg_backward(gs, NULL, 0));
    ck_assert_double_eq_tol(tt_diff_to(x->grad, d2), 0, TOL);
    tg_tensor *all[] = {gs, g, s, y, x};
    for (int i = 0; i < 5; i++) tg_tensor_release(all[i]);
}
END_TEST

/* Hessian-vector product of f(x) = x^T A x + sum(x^3): H v = (A + A^T + diag(6x)) v. */
START_TEST(test_hessian_vector_product) {
    double av[9] = {1, 2, 0, -1, 3, 0.5, 4, 0, -2};
    double xv[3] = {0.5, -1, 2}, vv[3] = {1, -2, 0.25};
    int64_t s33[2] = {3, 3};
    tg_tensor *A = tt_from(2, s33, av);
    tg_tensor *x = tt_vec(3, xv, true), *v = tt_vec(3, vv, false);
    tg_tensor *Ax = tg_matmul(A, x);
    ck_tg(Ax);
    tg_tensor *q = sum_take(take2(tg_mul, (tg_tensor_retain(x), x), Ax));
    tg_tensor *c = sum_take(tg_pow_scalar(x, 3));
    tg_tensor *f = take2(tg_add, q, c);
    tg_tensor *g = NULL;
    ck_tg_ok(tg_grad(1, &f, NULL, 1, &x, TG_CREATE_GRAPH, &g));
    /* first derivative: (A + A^T) x + 3 x^2 */
    double grad[3], hv[3];
    for (int i = 0; i < 3; i++) {
        grad[i] = 3 * xv[i] * xv[i];
        hv[i] = 6 * xv[i] * vv[i];
        for (int j = 0; j < 3; j++) {
            grad[i] += (av[i * 3 + j] + av[j * 3 + i]) * xv[j];
            hv[i] += (av[i * 3 + j] + av[j * 3 + i]) * vv[j];
        }
    }
    ck_assert_double_eq_tol(tt_diff_to(g, grad), 0, 1e-12);
    tg_tensor *gv = sum_take(take2(tg_mul, g, (tg_tensor_retain(v), v)));
    tg_tensor *h = NULL;
    ck_tg_ok(tg_grad(1, &gv, NULL, 1, &x, 0, &h));
    ck_assert_double_eq_tol(tt_diff_to(h, hv), 0, 1e-12);
    tg_tensor *all[] = {h, gv, f, A, x, v};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
}
END_TEST

/* A promoted op (float32 * float64, float32 * int64, matmul of a float32 view) gives the float32 input a float32 gradient. */
START_TEST(test_mixed_dtype_gradients) {
    int64_t n = 3;
    tg_tensor *x = tg_tensor_full(1, &n, 1.5, TG_FLOAT32);
    tg_tensor *d = tg_tensor_arange(1, 4, 1, TG_FLOAT64), *i = tg_tensor_arange(1, 4, 1, TG_INT64);
    ck_tg(x && d && i);
    ck_tg_ok(tg_tensor_set_requires_grad(x, true));
    tg_tensor *y = tg_mul(x, d);
    ck_assert_int_eq(y->dtype, TG_FLOAT64);
    tg_tensor *l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(x->grad->dtype, TG_FLOAT32);
    double want[3] = {1, 2, 3};
    ck_assert_double_eq(tt_diff_to(x->grad, want), 0);
    tg_tensor_release(l);
    tg_tensor_release(y);
    y = tg_mul(i, x); /* int64 * float32 -> float64 (NumPy) */
    ck_assert_int_eq(y->dtype, TG_FLOAT64);
    l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    double want2[3] = {2, 4, 6};
    ck_assert_int_eq(x->grad->dtype, TG_FLOAT32);
    ck_assert_double_eq(tt_diff_to(x->grad, want2), 0);
    /* and the second derivative through the cast: d/dx sum((x * d)^2) = 2 d^2 x */
    tg_tensor *xd = tg_mul(x, d), *q = sum_take(tg_mul(xd, xd)), *g = NULL;
    ck_tg_ok(tg_grad(1, &q, NULL, 1, &x, TG_CREATE_GRAPH, &g));
    ck_assert_int_eq(g->dtype, TG_FLOAT32);
    double want3[3] = {3, 12, 27};
    ck_assert_double_eq_tol(tt_diff_to(g, want3), 0, 1e-5);
    /* matmul of a float32 transposed view with a float64 vector: C = A^T v, dA = v g^T */
    float av[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *A = tg_tensor_from_buffer(2, (int64_t[]){2, 3}, TG_FLOAT32, av);
    ck_tg_ok(tg_tensor_set_requires_grad(A, true));
    tg_tensor *At = tg_transpose(A, 0, 1); /* (3, 2), strides (1, 3) */
    double vv[2] = {10, -1};
    tg_tensor *v = tt_vec(2, vv, false);
    tg_tensor *C = tg_matmul(At, v);
    ck_tg(C);
    ck_assert_int_eq(C->dtype, TG_FLOAT64);
    double wc[3] = {10 - 4, 20 - 5, 30 - 6};
    ck_assert_double_eq(tt_diff_to(C, wc), 0);
    double gv[3] = {1, 2, 3};
    tg_tensor *seed = tt_vec(3, gv, false);
    ck_tg_ok(tg_backward(C, seed, 0));
    ck_assert_int_eq(A->grad->dtype, TG_FLOAT32);
    double wa[6] = {10, 20, 30, -1, -2, -3}; /* dA[r][c] = v[r] * seed[c] */
    ck_assert_double_eq(tt_diff_to(A->grad, wa), 0);
    tg_tensor *all[] = {seed, C, v, At, A, g, q, xd, l, y, x, d, i};
    for (int k = 0; k < 13; k++) tg_tensor_release(all[k]);
}
END_TEST

/* ===================================================================== */
/* Grad mode and flags                                                    */
/* ===================================================================== */

/* With grad mode off no entry is recorded; the previous mode is returned and restored. */
START_TEST(test_no_grad) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true);
    ck_assert(tg_grad_enabled());
    ck_assert(tg_set_grad_enabled(false) == true);
    ck_assert(!tg_grad_enabled());
    tg_tensor *y = tg_mul(x, x);
    ck_assert(tg_set_grad_enabled(true) == false);
    ck_assert_ptr_null(y->grad_fn);
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(tg_backward(y, y, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "does not require grad");
    tg_tensor *z = tg_mul(x, x);
    ck_assert_ptr_nonnull(z->grad_fn);
    ck_assert(z->requires_grad);
    tg_tensor_release(z);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* detach shares the storage but has no grad_fn and does not require grad. */
START_TEST(test_detach) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_mul_scalar(x, 3);
    tg_tensor *d = tg_tensor_detach(y);
    ck_tg(d);
    ck_assert_ptr_eq(d->storage, y->storage);
    ck_assert_ptr_null(d->grad_fn);
    ck_assert(!d->requires_grad);
    /* ops on the detached tensor are not connected to x */
    tg_tensor *z = tg_mul(d, d);
    ck_assert(!z->requires_grad && !z->grad_fn);
    ck_assert_double_eq(tg_tensor_get_flat(d, 1), 6);
    tg_tensor *all[] = {z, d, y, x};
    for (int i = 0; i < 4; i++) tg_tensor_release(all[i]);
}
END_TEST

/* requires_grad propagates from any input; constants stay constant; non-leaves cannot be unset. */
START_TEST(test_requires_grad_propagation) {
    double v[2] = {1, 2};
    tg_tensor *x = tt_vec(2, v, true), *c = tt_vec(2, v, false);
    tg_tensor *a = tg_add(c, x), *b = tg_add(c, c), *e = tg_exp(a);
    ck_assert(a->requires_grad && a->grad_fn);
    ck_assert(!b->requires_grad && !b->grad_fn);
    ck_assert(e->requires_grad && e->grad_fn);
    ck_assert_str_eq(tg_entry_name(a->grad_fn), "add");
    ck_assert_ptr_eq(tg_entry_input(a->grad_fn, 1), x);
    ck_assert(!tg_entry_needs_grad(a->grad_fn, 0) && tg_entry_needs_grad(a->grad_fn, 1));
    ck_assert_int_eq(tg_tensor_set_requires_grad(a, false), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "non-leaf", "add");
    tg_tensor *all[] = {e, a, b, x, c};
    for (int i = 0; i < 5; i++) tg_tensor_release(all[i]);
}
END_TEST

/* An int64 tensor cannot require grad, and int64 results of float inputs record nothing. */
START_TEST(test_int64_cannot_require_grad) {
    int64_t n = 3;
    tg_tensor *i = tg_tensor_zeros(1, &n, TG_INT64);
    ck_assert_int_eq(tg_tensor_set_requires_grad(i, true), TG_ERR_TYPE);
    ck_tg_error(TG_ERR_TYPE, "int64");
    ck_assert(!i->requires_grad);
    ck_tg_ok(tg_tensor_set_requires_grad(i, false));
    double v[3] = {1, 5, 2};
    tg_tensor *x = tt_vec(3, v, true);
    tg_tensor *am = tg_argmax(x, 0, false);
    ck_assert(am->dtype == TG_INT64 && !am->requires_grad && !am->grad_fn);
    ck_assert_double_eq(tt_item(am), 1);
    tg_tensor_release(am);
    tg_tensor_release(x);
    tg_tensor_release(i);
}
END_TEST

/* retain_grad keeps a non-leaf's gradient; other non-leaves get none. */
START_TEST(test_retain_grad_nonleaf) {
    double xv[3] = {1, -1, 2};
    tg_tensor *x = tt_vec(3, xv, true);
    tg_tensor *y = tg_mul(x, x), *z = tg_mul_scalar(y, 3);
    ck_tg_ok(tg_tensor_retain_grad(y));
    tg_tensor *w = tg_mul(z, y); /* w = 3 y^2: dw/dy = 6y, dw/dz = y */
    tg_tensor *l = sum_all(w);
    ck_tg_ok(tg_backward(l, NULL, 0));
    double gy[3], gx[3];
    for (int i = 0; i < 3; i++) {
        double yy = xv[i] * xv[i];
        gy[i] = 6 * yy;
        gx[i] = gy[i] * 2 * xv[i];
    }
    ck_assert_double_eq_tol(tt_diff_to(y->grad, gy), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(x->grad, gx), 0, TOL);
    ck_assert_ptr_null(z->grad);
    /* retain_grad on a tensor that does not require grad is an error */
    tg_tensor *c = tt_vec(3, xv, false);
    ck_assert_int_eq(tg_tensor_retain_grad(c), TG_ERR_RUNTIME);
    tg_tensor *all[] = {c, l, w, z, y, x};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
}
END_TEST

/* tg_grad returns grads of a non-leaf and a leaf (and zeros for an unused input), .grad untouched. */
START_TEST(test_tg_grad_leaf_and_nonleaf) {
    double xv[3] = {1, 2, -3};
    tg_tensor *x = tt_vec(3, xv, true), *u = tt_vec(3, xv, true);
    tg_tensor *h = tg_mul_scalar(x, 2);
    tg_tensor *l = sum_take(tg_mul(h, h)); /* l = sum(4 x^2) */
    tg_tensor *ins[3] = {h, x, u}, *res[3];
    ck_tg_ok(tg_grad(1, &l, NULL, 3, ins, 0, res));
    double gh[3], gx[3], zero[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        gh[i] = 4 * xv[i];
        gx[i] = 8 * xv[i];
    }
    ck_assert_double_eq_tol(tt_diff_to(res[0], gh), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(res[1], gx), 0, TOL);
    ck_assert_double_eq(tt_diff_to(res[2], zero), 0);
    ck_assert_ptr_null(x->grad);
    ck_assert_ptr_null(h->grad);
    ck_assert_ptr_null(u->grad);
    /* an input that does not require grad is refused */
    tg_tensor *c = tt_vec(3, xv, false), *bad = NULL;
    ck_assert_int_eq(tg_grad(1, &l, NULL, 1, &c, TG_RETAIN_GRAPH, &bad), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "grad", "does not require grad");
    ck_assert_ptr_null(bad);
    tg_tensor *all[] = {res[0], res[1], res[2], c, l, h, x, u};
    for (int i = 0; i < 8; i++) tg_tensor_release(all[i]);
}
END_TEST

/* tg_grad of two outputs with seeds: the gradient of <y1, s1> + <y2, s2>, shared inputs summed. */
START_TEST(test_tg_grad_two_outputs) {
    double xv[2] = {1, -2}, wv[2] = {3, 0.5}, s1v[2] = {1, 2}, s2v[2] = {-1, 4};
    tg_tensor *x = tt_vec(2, xv, true), *w = tt_vec(2, wv, true);
    tg_tensor *s1 = tt_vec(2, s1v, false), *s2 = tt_vec(2, s2v, false);
    tg_tensor *y1 = tg_mul(x, w), *y2 = tg_exp(x);
    tg_tensor *outs[2] = {y1, y2}, *seeds[2] = {s1, s2}, *ins[2] = {x, w}, *res[2];
    ck_tg_ok(tg_grad(2, outs, seeds, 2, ins, 0, res));
    double gx[2], gw[2];
    for (int i = 0; i < 2; i++) {
        gx[i] = s1v[i] * wv[i] + s2v[i] * exp(xv[i]);
        gw[i] = s1v[i] * xv[i];
    }
    ck_assert_double_eq_tol(tt_diff_to(res[0], gx), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(res[1], gw), 0, TOL);
    ck_assert_ptr_null(x->grad);
    tg_tensor *all[] = {res[0], res[1], y1, y2, s1, s2, x, w};
    for (int i = 0; i < 8; i++) tg_tensor_release(all[i]);
}
END_TEST

/* ===================================================================== */
/* The stepping engine                                                    */
/* ===================================================================== */

/* A small graph: x (3,4) and b (4,) require grad; loss = sum(tanh(x + b) * x). */
typedef struct {
    tg_tensor *x, *b, *s, *t, *m, *loss;
} graph;

static void graph_build(graph *g) {
    int64_t sh[2] = {3, 4}, four = 4;
    tg_manual_seed(7);
    g->x = tg_tensor_randn(2, sh, 0, 1, TG_FLOAT64);
    g->b = tg_tensor_randn(1, &four, 0, 1, TG_FLOAT64);
    ck_tg(g->x && g->b);
    ck_tg_ok(tg_tensor_set_requires_grad(g->x, true));
    ck_tg_ok(tg_tensor_set_requires_grad(g->b, true));
    g->s = tg_add(g->x, g->b);
    g->t = tg_tanh(g->s);
    g->m = tg_mul(g->t, g->x);
    ck_tg(g->s && g->t && g->m);
    g->loss = sum_all(g->m);
}

static void graph_free(graph *g) {
    tg_tensor *all[] = {g->loss, g->m, g->t, g->s, g->x, g->b};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
}

/* Hand-computed gradients of the graph above. */
static void graph_expected(const graph *g, double *gx, double *gb) {
    for (int j = 0; j < 4; j++) gb[j] = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double xv = tg_tensor_get_flat(g->x, i * 4 + j), bv = tg_tensor_get_flat(g->b, j);
            double t = tanh(xv + bv), d = xv * (1 - t * t);
            gx[i * 4 + j] = t + d;
            gb[j] += d;
        }
}

/* begin/step/end gives the same grads as tg_backward, in descending seq order, one entry per step. */
START_TEST(test_stepper_matches_backward) {
    graph g;
    graph_build(&g);
    double gx[12], gb[4];
    graph_expected(&g, gx, gb);
    ck_tg_ok(tg_backward(g.loss, NULL, TG_RETAIN_GRAPH));
    ck_assert_double_eq_tol(tt_diff_to(g.x->grad, gx), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(g.b->grad, gb), 0, TOL);
    tg_tensor *rx = g.x->grad, *rb = g.b->grad;
    tg_tensor_retain(rx);
    tg_tensor_retain(rb);
    ck_tg_ok(tg_tensor_set_grad(g.x, NULL));
    ck_tg_ok(tg_tensor_set_grad(g.b, NULL));

    tg_stepper *bw = tg_backward_begin(1, &g.loss, NULL, 0, 0, NULL);
    ck_tg(bw);
    ck_assert_int_eq(tg_backward_size(bw), 4); /* add, tanh, mul, sum */
    ck_assert_ptr_null(tg_backward_last_step(bw));
    const char *names[4] = {"sum", "mul", "tanh", "add"};
    for (int64_t i = 0; i < 4; i++) {
        ck_assert_str_eq(tg_entry_name(tg_backward_entry(bw, i)), names[i]);
        if (i > 0) ck_assert(tg_backward_entry(bw, i - 1)->seq > tg_backward_entry(bw, i)->seq);
    }
    ck_assert_ptr_eq(tg_backward_entry(bw, 0), g.loss->grad_fn);
    ck_assert_ptr_null(tg_backward_entry(bw, 4));
    /* before any step the target's entry holds the seed 1 */
    ck_assert_double_eq(tt_item(tg_backward_pending(bw, 0)), 1);
    int r, steps = 0;
    while ((r = tg_backward_step(bw)) == 1) {
        steps++;
        ck_assert_int_eq(tg_backward_position(bw), steps);
        const tg_step *st = tg_backward_last_step(bw);
        ck_assert_ptr_nonnull(st);
        ck_assert_int_eq(st->index, steps - 1);
        ck_assert_ptr_eq(st->entry, tg_backward_entry(bw, steps - 1));
    }
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(steps, 4);
    ck_assert_int_eq(tg_backward_step(bw), 0);
    tg_backward_end(bw);
    ck_assert_double_eq(tt_max_abs_diff(g.x->grad, rx), 0);
    ck_assert_double_eq(tt_max_abs_diff(g.b->grad, rb), 0);
    tg_tensor_release(rx);
    tg_tensor_release(rb);
    graph_free(&g);
}
END_TEST

/* The step of a broadcast add reports grad_out, grad_in and summed_mask bit 0 for the (4,) bias. */
START_TEST(test_last_step_summed_mask) {
    graph g;
    graph_build(&g);
    tg_stepper *bw = tg_backward_begin(1, &g.loss, NULL, 0, 0, NULL);
    ck_tg(bw);
    const tg_step *st = NULL;
    while (tg_backward_step(bw) == 1) {
        st = tg_backward_last_step(bw);
        if (st->entry == g.s->grad_fn) break;
    }
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_eq(st->entry, g.s->grad_fn);
    ck_assert_int_eq(st->n_inputs, 2);
    ck_assert_int_eq(st->grad_out->ndim, 2);
    ck_assert_int_eq(st->grad_out->shape[0], 3);
    ck_assert_int_eq(st->grad_out->shape[1], 4);
    /* x (3,4): nothing summed; b (4,): axis 0 of the (3,4) VJP result summed */
    ck_assert_uint_eq(st->summed_mask[0], 0);
    ck_assert_uint_eq(st->summed_mask[1], 1u);
    ck_assert_int_eq(st->summed_ndim[1], 2);
    ck_assert_int_eq(st->grad_in[1]->ndim, 1);
    ck_assert_int_eq(st->grad_in[1]->shape[0], 4);
    ck_assert_double_eq(tt_max_abs_diff(st->grad_in[0], st->grad_out), 0);
    /* the bias gradient is the column sum of grad_out, and equals (sum of) x * (1 - t^2) */
    double gx[12], gb[4], colsum[4] = {0, 0, 0, 0};
    graph_expected(&g, gx, gb);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) colsum[j] += tg_tensor_get_flat(st->grad_out, i * 4 + j);
    ck_assert_double_eq_tol(tt_diff_to(st->grad_in[1], colsum), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(st->grad_in[1], gb), 0, TOL);
    tg_backward_end(bw);
    ck_assert_double_eq_tol(tt_diff_to(g.b->grad, gb), 0, TOL);
    graph_free(&g);
}
END_TEST

/* Ending a stepper early runs no more VJPs, leaves untouched leaves' grads unset and leaks nothing. */
START_TEST(test_stepper_end_early) {
    graph g;
    graph_build(&g);
    tg_stepper *bw = tg_backward_begin(1, &g.loss, NULL, 0, 0, NULL);
    ck_tg(bw);
    ck_assert_int_eq(tg_backward_step(bw), 1);
    ck_assert_int_eq(tg_backward_step(bw), 1); /* sum, mul: x still waits for add */
    tg_backward_end(bw);
    ck_assert_ptr_null(g.x->grad);
    ck_assert_ptr_null(g.b->grad);
    ck_assert(g.loss->grad_fn->freed && g.m->grad_fn->freed);
    ck_assert(!g.t->grad_fn->freed && !g.s->grad_fn->freed);
    /* an unstarted stepper can be ended too */
    bw = tg_backward_begin(1, &g.t, (tg_tensor *[]){g.t}, TG_RETAIN_GRAPH, 0, NULL);
    ck_tg(bw);
    tg_backward_end(bw);
    graph_free(&g);
}
END_TEST

typedef struct {
    int calls;
    int64_t last_index;
    int fail_at;
    tg_stepper *expect_bw;
} hook_state;

static tg_status count_hook(tg_stepper *bw, const tg_step *step, void *ctx) {
    hook_state *h = ctx;
    ck_assert(h->expect_bw == NULL || h->expect_bw == bw);
    ck_assert_int_eq(step->index, h->calls);
    h->last_index = step->index;
    h->calls++;
    if (h->fail_at >= 0 && step->index == h->fail_at)
        return tg_error_set(TG_ERR_CALLBACK, "test hook: stop at step %lld", (long long)step->index);
    return TG_OK;
}

/* The stepper's hook and the global hook are each called exactly once per step. */
START_TEST(test_step_hooks_once_per_step) {
    graph g;
    graph_build(&g);
    hook_state local = {0, -1, -1, NULL}, global = {0, -1, -1, NULL};
    tg_set_global_step_hook(count_hook, &global);
    tg_stepper *bw = tg_backward_begin(1, &g.loss, NULL, TG_RETAIN_GRAPH, 0, NULL);
    ck_tg(bw);
    local.expect_bw = global.expect_bw = bw;
    tg_backward_set_hook(bw, count_hook, &local);
    while (tg_backward_step(bw) == 1) {
    }
    int64_t n = tg_backward_size(bw);
    tg_backward_end(bw);
    ck_assert_int_eq(local.calls, n);
    ck_assert_int_eq(global.calls, n);
    /* plain backward goes through the same steps: the global hook sees them */
    global.calls = 0;
    global.expect_bw = NULL;
    ck_tg_ok(tg_backward(g.loss, NULL, 0));
    ck_assert_int_eq(global.calls, n);
    tg_set_global_step_hook(NULL, NULL);
    global.calls = 0;
    double one = 1;
    tg_tensor *x = tt_vec(1, &one, true), *y = tg_mul(x, x);
    ck_tg_ok(tg_backward(y, NULL, 0));
    ck_assert_int_eq(global.calls, 0); /* removed */
    tg_tensor_release(y);
    tg_tensor_release(x);
    graph_free(&g);
}
END_TEST

/* A hook that returns an error stops backward with that status and message. */
START_TEST(test_step_hook_error_stops) {
    graph g;
    graph_build(&g);
    hook_state global = {0, -1, 1, NULL};
    tg_set_global_step_hook(count_hook, &global);
    tg_status st = tg_backward(g.loss, NULL, TG_RETAIN_GRAPH);
    tg_set_global_step_hook(NULL, NULL);
    ck_assert_int_eq(st, TG_ERR_CALLBACK);
    ck_tg_error(TG_ERR_CALLBACK, "test hook", "step 1");
    ck_assert_int_eq(global.calls, 2);
    ck_assert_ptr_null(g.x->grad); /* x's gradient was not complete yet */
    /* a stepper's own hook: tg_backward_step returns -1 and stays failed */
    hook_state local = {0, -1, 0, NULL};
    tg_stepper *bw = tg_backward_begin(1, &g.loss, NULL, TG_RETAIN_GRAPH, 0, NULL);
    ck_tg(bw);
    tg_backward_set_hook(bw, count_hook, &local);
    ck_assert_int_eq(tg_backward_step(bw), -1);
    ck_tg_error(TG_ERR_CALLBACK, "step 0");
    ck_assert_int_eq(tg_backward_step(bw), -1);
    ck_assert_int_eq(local.calls, 1);
    tg_backward_end(bw);
    /* the graph is still usable */
    ck_tg_ok(tg_backward(g.loss, NULL, 0));
    double gx[12], gb[4];
    graph_expected(&g, gx, gb);
    ck_assert_double_eq_tol(tt_diff_to(g.x->grad, gx), 0, TOL);
    graph_free(&g);
}
END_TEST

/* ===================================================================== */
/* Gradient hooks                                                         */
/* ===================================================================== */

typedef struct {
    int calls;
    double scale;
    double seen0; /* first element of the gradient the hook saw */
} grad_hook_state;

static tg_status scale_hook(tg_tensor *t, tg_tensor *grad, tg_tensor **rep, void *ctx) {
    (void)t;
    grad_hook_state *h = ctx;
    h->calls++;
    h->seen0 = tg_tensor_get_flat(grad, 0);
    *rep = tg_mul_scalar(grad, h->scale);
    return *rep ? TG_OK : tg_error_status();
}

static tg_status failing_grad_hook(tg_tensor *t, tg_tensor *grad, tg_tensor **rep, void *ctx) {
    (void)t;
    (void)grad;
    (void)rep;
    (void)ctx;
    return tg_error_set(TG_ERR_CALLBACK, "grad hook refused");
}

/* A leaf's grad hook sees the gradient once and its replacement is stored in .grad. */
START_TEST(test_grad_hook_leaf) {
    double xv[2] = {1, 3};
    tg_tensor *x = tt_vec(2, xv, true);
    grad_hook_state h = {0, 10, 0};
    tg_tensor_set_grad_hook(x, scale_hook, &h);
    tg_tensor *y = tg_mul(x, x); /* x used twice: the hook still runs once, on the total */
    tg_tensor *l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(h.calls, 1);
    ck_assert_double_eq_tol(h.seen0, 2, TOL);
    double want[2] = {20, 60};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
    tg_tensor_release(l);
    tg_tensor_release(y);
    /* a failing hook stops backward */
    tg_tensor_set_grad_hook(x, failing_grad_hook, NULL);
    y = tg_mul(x, x);
    l = sum_all(y);
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_CALLBACK);
    ck_tg_error(TG_ERR_CALLBACK, "grad hook refused");
    ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
    tg_tensor_set_grad_hook(x, NULL, NULL);
    ck_assert_ptr_null(x->grad_hook);
    tg_tensor_release(l);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* A hook on a non-leaf replaces the gradient that flows on to its inputs. */
START_TEST(test_grad_hook_nonleaf) {
    double xv[2] = {2, -1};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_mul_scalar(x, 3);
    grad_hook_state h = {0, -0.5, 0};
    tg_tensor_set_grad_hook(y, scale_hook, &h);
    tg_tensor *l = sum_take(tg_mul(y, y)); /* dl/dy = 2y = 6x, replaced by -3x; dl/dx = -9x */
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(h.calls, 1);
    ck_assert_double_eq_tol(h.seen0, 12, TOL);
    double want[2] = {-18, 9};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
    tg_tensor_release(l);
    tg_tensor_release(y);
    tg_tensor_release(x);
}
END_TEST

/* ===================================================================== */
/* Custom entries, VJP overrides                                          */
/* ===================================================================== */

typedef struct {
    int released;
    int vjp_calls;
    bool fail;
} custom_ctx;

static void custom_release(void *p) { ((custom_ctx *)p)->released++; }

/* The VJP of cube(x) = x^3 written in C: dx = g * 3 x^2, x from the entry's saved tensor. */
static tg_status cube_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *p) {
    custom_ctx *c = p;
    c->vjp_calls++;
    if (c->fail) return tg_error_set(TG_ERR_CALLBACK, "cube: the VJP exploded");
    tg_tensor *x = tg_entry_saved(e, 0);
    if (!x) return tg_error_status();
    ck_assert_ptr_eq(x, tg_entry_input(e, 0));
    tg_tensor *x2 = tg_mul(x, x);
    tg_tensor *d = x2 ? tg_mul_scalar(x2, 3) : NULL;
    gi[0] = d ? tg_mul(g, d) : NULL;
    tg_tensor_release(x2);
    tg_tensor_release(d);
    return gi[0] ? TG_OK : tg_error_status();
}

/* cube(x) computed by the caller under no-grad, recorded as a custom entry. */
static tg_tensor *cube(tg_tensor *x, custom_ctx *c) {
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = tg_pow_scalar(x, 3);
    tg_set_grad_enabled(prev);
    ck_tg(out);
    tg_tensor *r = tg_custom_record("cube", 1, &x, out, cube_vjp, c, custom_release);
    if (r && r->grad_fn) ck_tg_ok(tg_entry_save(r->grad_fn, x));
    tg_tensor_release(out);
    return r;
}

/* A custom entry: its C VJP gives 3x^2, its context is released once when the entry dies. */
START_TEST(test_custom_entry) {
    double xv[3] = {1, -2, 0.5};
    tg_tensor *x = tt_vec(3, xv, true);
    custom_ctx c = {0, 0, false};
    tg_tensor *y = cube(x, &c);
    ck_tg(y);
    ck_assert_ptr_nonnull(y->grad_fn);
    ck_assert(y->requires_grad);
    ck_assert_str_eq(tg_entry_name(y->grad_fn), "cube");
    ck_assert_double_eq(tg_tensor_get_flat(y, 1), -8);
    tg_tensor *l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(c.vjp_calls, 1);
    double want[3] = {3, 12, 0.75};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, want), 0, TOL);
    ck_assert_int_eq(c.released, 0); /* the entry is alive while y is */
    tg_tensor_release(l);
    tg_tensor_release(y);
    ck_assert_int_eq(c.released, 1);
    tg_tensor_release(x);
    ck_assert_int_eq(c.released, 1);
}
END_TEST

/* A custom entry's context is released exactly once when freed without backward, or at once when nothing is recorded. */
START_TEST(test_custom_release_without_backward) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true), *k = tt_vec(2, xv, false);
    custom_ctx c1 = {0, 0, false}, c2 = {0, 0, false}, c3 = {0, 0, false}, c4 = {0, 0, false};
    tg_tensor *y = cube(x, &c1);
    tg_tensor *l = sum_all(y);
    tg_tensor_release(y);
    ck_assert_int_eq(c1.released, 0); /* still reachable from l */
    tg_tensor_release(l);
    ck_assert_int_eq(c1.released, 1);
    ck_assert_int_eq(c1.vjp_calls, 0);
    /* no input requires grad: no entry, release(ctx) called immediately */
    tg_tensor *z = cube(k, &c2);
    ck_assert_ptr_null(z->grad_fn);
    ck_assert_int_eq(c2.released, 1);
    tg_tensor_release(z);
    ck_assert_int_eq(c2.released, 1);
    /* grad mode off: the same */
    bool prev = tg_set_grad_enabled(false);
    z = cube(x, &c3);
    tg_set_grad_enabled(prev);
    ck_assert_ptr_null(z->grad_fn);
    ck_assert_int_eq(c3.released, 1);
    tg_tensor_release(z);
    /* invalid call (no vjp): NULL and release(ctx) called */
    tg_error_clear();
    ck_assert_ptr_null(tg_custom_record("bad", 1, &x, x, NULL, &c4, custom_release));
    ck_tg_error(TG_ERR_VALUE, "bad");
    ck_assert_int_eq(c4.released, 1);
    tg_tensor_release(k);
    tg_tensor_release(x);
}
END_TEST

/* An error returned by a custom VJP stops backward with that status and message. */
START_TEST(test_custom_vjp_error) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true);
    custom_ctx c = {0, 0, true};
    tg_tensor *y = cube(x, &c);
    tg_tensor *l = sum_all(y);
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_CALLBACK);
    ck_tg_error(TG_ERR_CALLBACK, "exploded");
    ck_assert_int_eq(c.vjp_calls, 1);
    ck_assert_ptr_null(x->grad);
    tg_tensor_release(l);
    tg_tensor_release(y);
    ck_assert_int_eq(c.released, 1);
    tg_tensor_release(x);
}
END_TEST

static int override_marker;

/* A replacement VJP for mul: every needed input gets 100 * grad_out. */
static tg_status mul_override(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    ck_assert_ptr_eq(ctx, &override_marker);
    override_marker++;
    for (int i = 0; i < 2; i++)
        if (tg_entry_needs_grad(e, i) && !(gi[i] = tg_mul_scalar(g, 100))) return tg_error_status();
    return TG_OK;
}

/* tg_op_set_vjp_override on "mul" makes the engine call the C function; NULL restores the built-in VJP. */
START_TEST(test_vjp_override_mul) {
    const tg_opdef *mul = tg_op_find("mul");
    ck_assert_ptr_nonnull(mul);
    double xv[2] = {3, 4}, wv[2] = {5, 6};
    tg_tensor *x = tt_vec(2, xv, true), *w = tt_vec(2, wv, true);
    override_marker = 0;
    ck_tg_ok(tg_op_set_vjp_override(mul, mul_override, &override_marker));
    tg_tensor *y = tg_mul(x, w), *l = sum_all(y);
    tg_status st = tg_backward(l, NULL, 0);
    ck_tg_ok(tg_op_set_vjp_override(mul, NULL, NULL));
    ck_tg_ok(st);
    ck_assert_int_eq(override_marker, 1);
    double hundred[2] = {100, 100};
    ck_assert_double_eq_tol(tt_diff_to(x->grad, hundred), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(w->grad, hundred), 0, TOL);
    tg_tensor_release(l);
    tg_tensor_release(y);
    /* restored: the product rule again */
    ck_tg_ok(tg_tensor_set_grad(x, NULL));
    ck_tg_ok(tg_tensor_set_grad(w, NULL));
    y = tg_mul(x, w);
    l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0));
    ck_assert_int_eq(override_marker, 1);
    ck_assert_double_eq_tol(tt_diff_to(x->grad, wv), 0, TOL);
    ck_assert_double_eq_tol(tt_diff_to(w->grad, xv), 0, TOL);
    /* a non-differentiable op cannot be overridden */
    ck_assert_int_eq(tg_op_set_vjp_override(tg_op_find("eq"), mul_override, NULL), TG_ERR_VALUE);
    ck_assert_int_eq(tg_op_set_vjp_override(NULL, mul_override, NULL), TG_ERR_VALUE);
    tg_tensor *all[] = {l, y, x, w};
    for (int i = 0; i < 4; i++) tg_tensor_release(all[i]);
}
END_TEST

/* ===================================================================== */
/* Recorders                                                              */
/* ===================================================================== */

/* A recorder keeps every entry made while active, in order, readable after the tensors die. */
START_TEST(test_recorder_order) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true), *c = tt_vec(2, xv, false);
    tg_recorder *r = tg_recorder_begin();
    ck_tg(r);
    tg_tensor *y = tg_mul(x, c);
    tg_tensor *k = tg_add(c, c); /* no input requires grad: not recorded */
    tg_tensor *z = tg_tanh(y);
    tg_tensor *s = sum_all(z);
    ck_tg_ok(tg_recorder_end(r));
    tg_tensor *after = tg_exp(x); /* after end: not recorded */
    ck_assert_int_eq(tg_recorder_count(r), 3);
    const char *names[3] = {"mul", "tanh", "sum"};
    tg_entry *want[3] = {y->grad_fn, z->grad_fn, s->grad_fn};
    tg_tensor *all[] = {after, s, z, k, y, c};
    for (int i = 0; i < 6; i++) tg_tensor_release(all[i]);
    for (int64_t i = 0; i < 3; i++) {
        tg_entry *e = tg_recorder_entry(r, i);
        ck_assert_ptr_eq(e, want[i]);
        ck_assert_str_eq(tg_entry_name(e), names[i]);
        if (i) ck_assert(e->seq > tg_recorder_entry(r, i - 1)->seq);
    }
    ck_assert_ptr_null(tg_recorder_entry(r, 3));
    ck_assert_ptr_null(tg_recorder_entry(r, -1));
    ck_assert_ptr_eq(tg_entry_input(tg_recorder_entry(r, 0), 0), x);
    tg_recorder_free(r);
    tg_tensor_release(x);
}
END_TEST

/* Nested recorders all record; ending the outer one first is refused. */
START_TEST(test_recorder_nested) {
    double xv[2] = {1, 2};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_recorder *outer = tg_recorder_begin();
    tg_tensor *a = tg_exp(x);
    tg_recorder *inner = tg_recorder_begin();
    ck_tg(outer && inner);
    tg_tensor *b = tg_sin(a);
    ck_assert_int_eq(tg_recorder_end(outer), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "Tape", "reverse order");
    ck_tg_ok(tg_recorder_end(inner));
    tg_tensor *c = tg_cos(b);
    ck_tg_ok(tg_recorder_end(outer));
    ck_tg_ok(tg_recorder_end(outer)); /* ending twice is harmless */
    ck_assert_int_eq(tg_recorder_count(outer), 3);
    ck_assert_int_eq(tg_recorder_count(inner), 1);
    ck_assert_ptr_eq(tg_recorder_entry(inner, 0), tg_recorder_entry(outer, 1));
    ck_assert_str_eq(tg_entry_name(tg_recorder_entry(outer, 0)), "exp");
    ck_assert_str_eq(tg_entry_name(tg_recorder_entry(outer, 1)), "sin");
    ck_assert_str_eq(tg_entry_name(tg_recorder_entry(outer, 2)), "cos");
    tg_recorder_free(inner);
    tg_recorder_free(outer);
    /* freeing a still-active recorder unlinks it */
    tg_recorder *r = tg_recorder_begin();
    tg_recorder_free(r);
    tg_tensor *d = tg_neg(x);
    ck_assert_ptr_nonnull(d->grad_fn);
    tg_tensor *all[] = {d, c, b, a, x};
    for (int i = 0; i < 5; i++) tg_tensor_release(all[i]);
}
END_TEST

/* ===================================================================== */
/* Saved tensors modified in place, user data                             */
/* ===================================================================== */

/* Overwriting a saved input (under no-grad) makes tg_entry_saved and backward fail: "modified in place". */
START_TEST(test_saved_input_modified_in_place) {
    double xv[3] = {1, 2, 3}, wv[3] = {4, 5, 6};
    tg_tensor *x = tt_vec(3, xv, false), *w = tt_vec(3, wv, true);
    tg_tensor *y = tg_mul(x, w), *l = sum_all(y);
    ck_assert_ptr_eq(tg_entry_saved(y->grad_fn, 0), x);
    bool prev = tg_set_grad_enabled(false);
    ck_tg_ok(tg_tensor_fill_(x, 7));
    tg_set_grad_enabled(prev);
    tg_error_clear();
    ck_assert_ptr_null(tg_entry_saved(y->grad_fn, 0));
    ck_tg_error(TG_ERR_RUNTIME, "modified in place", "mul");
    /* w is not saved at all: only x's gradient would read it, and x needs
     * none (mul saves what its VJP reads, PyTorch's rule; issue 14) */
    ck_assert_ptr_null(tg_entry_saved(y->grad_fn, 1));
    ck_tg_error(TG_ERR_RUNTIME, "no saved tensor 1");
    tg_error_clear();
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "modified in place", "(3,)");
    ck_assert_ptr_null(w->grad);
    /* a write through another view of the same storage is caught too */
    tg_tensor *x2 = tt_vec(3, xv, false);
    tg_tensor *y2 = tg_mul(x2, w), *l2 = sum_all(y2);
    tg_tensor *alias = tg_tensor_detach(x2);
    int64_t st = 2, sp = 3;
    tg_tensor *last = tg_slice(alias, &st, &sp, NULL, 0);
    ck_tg_ok(tg_tensor_fill_(last, -1)); /* alias does not require grad: allowed */
    ck_assert_int_eq(tg_backward(l2, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "modified in place");
    tg_tensor *all[] = {last, alias, l2, y2, x2, l, y, x, w};
    for (int i = 0; i < 9; i++) tg_tensor_release(all[i]);
}
END_TEST

/* Overwriting a saved output (tanh keeps y) makes tg_entry_output and backward fail. */
START_TEST(test_saved_output_modified_in_place) {
    double xv[2] = {0.5, -1};
    tg_tensor *x = tt_vec(2, xv, true);
    tg_tensor *y = tg_tanh(x), *l = sum_all(y);
    tg_tensor *o = tg_entry_output(y->grad_fn);
    ck_tg(o);
    ck_assert_ptr_eq(o->grad_fn, y->grad_fn);
    ck_assert_double_eq(tt_max_abs_diff(o, y), 0);
    tg_tensor_release(o);
    bool prev = tg_set_grad_enabled(false);
    ck_tg_ok(tg_tensor_fill_(y, 0));
    tg_set_grad_enabled(prev);
    tg_error_clear();
    ck_assert_ptr_null(tg_entry_output(y->grad_fn));
    ck_tg_error(TG_ERR_RUNTIME, "modified in place", "tanh");
    tg_error_clear();
    ck_assert_int_eq(tg_backward(l, NULL, 0), TG_ERR_RUNTIME);
    ck_tg_error(TG_ERR_RUNTIME, "modified in place");
    /* an op that did not save its output says so */
    tg_tensor *a = tg_add(x, x);
    ck_assert_ptr_null(tg_entry_output(a->grad_fn));
    ck_tg_error(TG_ERR_RUNTIME, "did not save its output");
    tg_tensor *all[] = {a, l, y, x};
    for (int i = 0; i < 4; i++) tg_tensor_release(all[i]);
}
END_TEST

/* user_release of tensors and entries runs exactly once, when the object dies. */
START_TEST(test_user_data_release_once) {
    double xv[2] = {1, 2};
    int tcount = 0, ecount = 0, ecount2 = 0;
    tg_tensor *x = tt_vec(2, xv, true);
    x->user_data = &tcount;
    x->user_release = tt_count_release;
    tg_tensor *y = tg_mul(x, x);
    y->grad_fn->user_data = &ecount;
    y->grad_fn->user_release = tt_count_release;
    tg_tensor *l = sum_all(y);
    ck_tg_ok(tg_backward(l, NULL, 0)); /* backward frees saved tensors, not the entry */
    ck_assert_int_eq(ecount, 0);
    tg_tensor_release(y);
    ck_assert_int_eq(ecount, 0); /* l's entry still holds y */
    tg_tensor_release(l);
    ck_assert_int_eq(ecount, 1);
    ck_assert_int_eq(tcount, 0);
    tg_tensor_release(x);
    ck_assert_int_eq(tcount, 1);
    ck_assert_int_eq(ecount, 1);
    /* an entry kept by a recorder dies with the recorder */
    x = tt_vec(2, xv, true);
    tg_recorder *r = tg_recorder_begin();
    y = tg_exp(x);
    ck_tg_ok(tg_recorder_end(r));
    y->grad_fn->user_data = &ecount2;
    y->grad_fn->user_release = tt_count_release;
    tg_tensor_release(y);
    tg_tensor_release(x);
    ck_assert_int_eq(ecount2, 0);
    tg_recorder_free(r);
    ck_assert_int_eq(ecount2, 1);
}
END_TEST

Suite *tape_suite(void) {
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("graph");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_diamond_reused_input);
    tcase_add_test(tc, test_grad_accumulates);
    tcase_add_test(tc, test_retain_graph);
    tcase_add_test(tc, test_freed_graph_error);
    tcase_add_test(tc, test_nonscalar_backward_needs_seed);
    tcase_add_test(tc, test_backward_of_leaf);
    tcase_add_test(tc, test_long_chain);
    tcase_add_test(tc, test_second_derivative_tanh);
    tcase_add_test(tc, test_hessian_vector_product);
    tcase_add_test(tc, test_mixed_dtype_gradients);
    suite_add_tcase(s, tc);

    tc = tcase_create("flags");
    tcase_add_test(tc, test_no_grad);
    tcase_add_test(tc, test_detach);
    tcase_add_test(tc, test_requires_grad_propagation);
    tcase_add_test(tc, test_int64_cannot_require_grad);
    tcase_add_test(tc, test_retain_grad_nonleaf);
    tcase_add_test(tc, test_tg_grad_leaf_and_nonleaf);
    tcase_add_test(tc, test_tg_grad_two_outputs);
    suite_add_tcase(s, tc);

    tc = tcase_create("engine");
    tcase_add_test(tc, test_stepper_matches_backward);
    tcase_add_test(tc, test_last_step_summed_mask);
    tcase_add_test(tc, test_stepper_end_early);
    tcase_add_test(tc, test_step_hooks_once_per_step);
    tcase_add_test(tc, test_step_hook_error_stops);
    tcase_add_test(tc, test_grad_hook_leaf);
    tcase_add_test(tc, test_grad_hook_nonleaf);
    tcase_add_test(tc, test_direct_slice_route_matches_reference);
    tcase_add_test(tc, test_direct_slice_route_in_the_stepper);
    suite_add_tcase(s, tc);

    tc = tcase_create("extension");
    tcase_add_test(tc, test_custom_entry);
    tcase_add_test(tc, test_custom_release_without_backward);
    tcase_add_test(tc, test_custom_vjp_error);
    tcase_add_test(tc, test_vjp_override_mul);
    tcase_add_test(tc, test_recorder_order);
    tcase_add_test(tc, test_recorder_nested);
    tcase_add_test(tc, test_saved_input_modified_in_place);
    tcase_add_test(tc, test_saved_output_modified_in_place);
    tcase_add_test(tc, test_user_data_release_once);
    suite_add_tcase(s, tc);
    return s;
}
