/* test_vmath.c -- Check suite for csrc/kernels/vmath.c: the vectorized
 * float32 exp/log/tanh/sigmoid and the contiguous reductions.
 *
 * Every available instruction-set version ("baseline" always, SIMD when
 * the CPU has it) is checked against float64 libm, with the error bounds
 * stated in vmath.h, on a sweep of float32 bit patterns, the special values
 * and the edges of every range; against each other (the sums must agree to
 * the bit); and the reductions against simple loops. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/kernels/vmath.h"
#include "../../csrc/kernels/dispatch.h"
#include "test_util.h"

/* The SIMD builds of this architecture (vmath.c), best first; SIMD is the
 * best one, which the default choice takes on a CPU that has it */
#if defined(__aarch64__)
#define SIMD "neon"
static const char *const simd_names[] = {"neon"};
#else
#define SIMD "avx512"
static const char *const simd_names[] = {"avx512", "avx2"};
#endif
enum { N_SIMD_NAMES = (int)(sizeof simd_names / sizeof simd_names[0]) };

/* Error bounds stated in vmath.h, in units in the last place of the
 * correctly rounded float32 result. */
#define ULP_EXP 1.5
#define ULP_LOG 1.0
#define ULP_TANH 1.5
#define ULP_SIGMOID 2.5
#define ULP_ERF 1.5
/* gelu and gelu_tanh: absolute error in ulps of x; their gradients (g = 1):
 * absolute error in units of 2^-24 */
#define ULPX_GELU 2.0
#define U24_GELU_GRAD 3.0
#define U24_GELU_TANH_GRAD 12.0

/* The versions this CPU can run ("baseline", and each SIMD build it has),
 * found when the suite is made: every test runs on each of them, and a
 * version the CPU lacks is not tested (main.c lists it as not run here). */
static const char *isas[1 + N_SIMD_NAMES];
static int n_isas;

/* The best version this CPU can run after index i of simd_names (or
 * "baseline"): where the choice falls when build i is refused. */
static const char *next_after(int i) {
    for (int j = i + 1; j < N_SIMD_NAMES; j++)
        if (tg_vmath_by_name(simd_names[j])) return simd_names[j];
    return "baseline";
}

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* |got - want| in ulps of the float32 result nearest to want.  Results that
 * must be NaN or infinite must match exactly (returns 1e9 otherwise). */
static double ulp_error(float got, double want) {
    if (isnan(want)) return isnan(got) ? 0 : 1e9;
    float w = (float)want;
    if (isinf(w)) return got == w ? 0 : 1e9;
    if (isnan(got) || isinf(got)) return 1e9;
    double ulp;
    if (fabsf(w) < 1.17549435e-38f) {
        ulp = 1.40129846e-45; /* subnormal spacing */
    } else {
        int e;
        frexp(w, &e);
        ulp = ldexp(1.0, e - 24);
    }
    return fabs((double)got - want) / ulp;
}

static double ref(int k, float x) {
    double v = x;
    switch (k) {
    case 0: return exp(v);
    case 1: return log(v);
    case 2: return tanh(v);
    case 3: return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
    default: return erf(v);
    }
}

static tg_vmath_unary_fn fn_of(const tg_vmath_table *t, int k) {
    return k == 0 ? t->exp_f32 : k == 1 ? t->log_f32 : k == 2 ? t->tanh_f32
         : k == 3 ? t->sigmoid_f32 : t->erf_f32;
}

enum { N_UNARY = 5 };
static const double bounds[N_UNARY] = {ULP_EXP, ULP_LOG, ULP_TANH, ULP_SIGMOID, ULP_ERF};
static const char *names[N_UNARY] = {"exp", "log", "tanh", "sigmoid", "erf"};

/* Sweep float32 bit patterns at a stride (both signs, every exponent,
 * subnormals, inf and NaN patterns included) through the vector loop. */
START_TEST(test_unary_accuracy_sweep) {
    const int k = _i;
    const uint64_t stride = tt_light() ? 1000003 : 4099;
    enum { B = 4096 };
    float *x = malloc(B * sizeof *x), *y = malloc(B * sizeof *y);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        tg_vmath_unary_fn f = fn_of(tab, k);
        double worst = 0;
        float worst_x = 0;
        uint64_t b = 0;
        while (b < 0x100000000ull) {
            int m = 0;
            for (; m < B && b < 0x100000000ull; m++, b += stride) x[m] = from_bits((uint32_t)b);
            f(m, x, y);
            for (int i = 0; i < m; i++) {
                double e = ulp_error(y[i], ref(k, x[i]));
                if (e > worst) { worst = e; worst_x = x[i]; }
            }
        }
        ck_assert_msg(worst <= bounds[k], "%s %s: %.3f ulp at x = %.9g (bound %.1f)", isas[t],
                      names[k], worst, (double)worst_x, bounds[k]);
    }
    free(x);
    free(y);
}
END_TEST

/* Dense sweeps where the algorithms switch branch or range. */
START_TEST(test_unary_accuracy_edges) {
    static const float centers[][2] = {
        /* function, center */
        {0, 0.0f}, {0, 88.72f}, {0, -87.33f}, {0, -103.97f}, {0, 0.3466f}, {0, -0.3466f},
        {1, 1.0f}, {1, 0.70710678f}, {1, 1.41421356f}, {1, 1.17549435e-38f}, {1, 3.0e38f},
        {2, 0.625f}, {2, -0.625f}, {2, 0.0f}, {2, 9.0f},
        {3, 0.0f}, {3, -88.0f}, {3, 17.0f},
        /* erf: the switch at |x| = 1, the saturation to +-1 near 3.92, the clamp at 4 */
        {4, 0.0f}, {4, 1.0f}, {4, -1.0f}, {4, 3.9192f}, {4, -3.9192f}, {4, 4.0f}, {4, 1e-38f},
    };
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (size_t c = 0; c < sizeof centers / sizeof centers[0]; c++) {
            int k = (int)centers[c][0];
            float x0 = centers[c][1];
            float x[2001], y[2001];
            uint32_t u;
            memcpy(&u, &x0, sizeof u);
            for (int i = 0; i < 2001; i++) {
                /* 1000 floats either side of the center, by bit pattern */
                int64_t d = (int64_t)i - 1000;
                x[i] = x0 == 0.0f ? (float)d * 1e-3f : from_bits((uint32_t)((int64_t)u + d * 97));
            }
            fn_of(tab, k)(2001, x, y);
            for (int i = 0; i < 2001; i++) {
                double e = ulp_error(y[i], ref(k, x[i]));
                ck_assert_msg(e <= bounds[k], "%s %s(%.9g) = %.9g: %.3f ulp", isas[t], names[k],
                              (double)x[i], (double)y[i], e);
            }
        }
    }
}
END_TEST

START_TEST(test_unary_special_values) {
    const float inf = INFINITY, nan = NAN;
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        float x[12] = {inf, -inf, nan, -nan, 0.0f, -0.0f, 200.0f, -200.0f, 88.8f, -104.0f,
                       1e-45f, -1.0f};
        float y[12];
        tab->exp_f32(12, x, y);
        ck_assert(y[0] == inf && y[1] == 0.0f && isnan(y[2]) && isnan(y[3]));
        ck_assert(y[4] == 1.0f && y[5] == 1.0f && y[6] == inf && y[7] == 0.0f);
        ck_assert(y[8] == inf && y[9] == 0.0f && y[10] == 1.0f);
        tab->log_f32(12, x, y);
        ck_assert(y[0] == inf && isnan(y[1]) && isnan(y[2]) && isnan(y[3]));
        ck_assert(y[4] == -inf && y[5] == -inf && isnan(y[7]) && isnan(y[11]));
        ck_assert_msg(fabs(y[10] - log((double)x[10])) < 1e-5, "log of the smallest subnormal: %g", y[10]);
        tab->tanh_f32(12, x, y);
        ck_assert(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) && isnan(y[3]));
        ck_assert(y[4] == 0.0f && !signbit(y[4]) && y[5] == 0.0f && signbit(y[5]));
        ck_assert(y[6] == 1.0f && y[7] == -1.0f);
        tab->sigmoid_f32(12, x, y);
        ck_assert(y[0] == 1.0f && y[1] == 0.0f && isnan(y[2]) && isnan(y[3]));
        ck_assert(y[4] == 0.5f && y[5] == 0.5f && y[6] == 1.0f && y[7] == 0.0f);
        tab->erf_f32(12, x, y);
        ck_assert(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) && isnan(y[3]));
        ck_assert(y[4] == 0.0f && !signbit(y[4]) && y[5] == 0.0f && signbit(y[5]));
        ck_assert(y[6] == 1.0f && y[7] == -1.0f && y[8] == 1.0f && y[9] == -1.0f);
        ck_assert(y[10] > 0.0f && y[10] <= 3e-45f && fabsf(y[11] + 0.84270079f) < 1e-7f);
        /* in place: x and y the same array */
        float z[3] = {0.0f, 1.0f, -1.0f};
        tab->exp_f32(3, z, z);
        ck_assert(z[0] == 1.0f && fabsf(z[1] - 2.7182817f) < 3e-7f && fabsf(z[2] - 0.36787945f) < 3e-8f);
    }
}
END_TEST

/* erf on every float32 in [1e-3, 4.5] (both signs in the light run's
 * stride), where both polynomials and the switch between them are. */
START_TEST(test_erf_dense) {
    const uint32_t lo = 0x3a83126fu /* 1e-3 */, hi = 0x40900000u /* 4.5 */;
    const uint32_t step = tt_light() ? 97 : 1;
    enum { B = 4096 };
    static float x[B], y[B];
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        double worst = 0;
        float worst_x = 0;
        for (int sign = 0; sign < 2; sign++)
            for (uint32_t b = lo; b < hi;) {
                int m = 0;
                for (; m < B && b < hi; m++, b += step) x[m] = from_bits(b | (uint32_t)sign << 31);
                tab->erf_f32(m, x, y);
                for (int i = 0; i < m; i++) {
                    double e = ulp_error(y[i], erf((double)x[i]));
                    if (e > worst) { worst = e; worst_x = x[i]; }
                }
            }
        ck_assert_msg(worst <= ULP_ERF, "%s erf: %.3f ulp at x = %.9g (bound %.1f)", isas[t], worst,
                      (double)worst_x, ULP_ERF);
    }
}
END_TEST

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }
static double gelu_grad_ref(double x) {
    return 0.5 * (1.0 + erf(x * 0.70710678118654752)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}
static double gelu_tanh_ref(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
static double gelu_tanh_grad_ref(double x) {
    double t = tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
}
/* ulp of |v| as a float32 (the subnormal spacing below the normal range) */
static double ulp_of(double v) {
    float w = (float)fabs(v);
    if (w < 1.17549435e-38f) return 1.40129846e-45;
    int e;
    frexp(w, &e);
    return ldexp(1.0, e - 24);
}

/* gelu, gelu_tanh and their gradients (times g) against float64, on
 * [-12, 12] at a step of 1e-5, with the absolute bounds of vmath.h; then
 * the special values. */
START_TEST(test_gelu_accuracy) {
    enum { N = 2400001 };
    float *x = malloc(N * sizeof *x), *g = malloc(N * sizeof *g), *y = malloc(N * sizeof *y);
    ck_assert(x && g && y);
    const int step = tt_light() ? 37 : 1;
    int n = 0;
    for (int i = 0; i < N; i += step, n++) {
        x[n] = (float)((double)(i - N / 2) * 1e-5);
        g[n] = (float)(1 + i % 3) * 0.5f; /* g varies: the product is part of the kernel */
    }
    static const char *what[4] = {"gelu", "gelu_tanh", "gelu gradient", "gelu_tanh gradient"};
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (int k = 0; k < 4; k++) {
            if (k == 0) tab->gelu_f32(n, x, y);
            if (k == 1) tab->gelu_tanh_f32(n, x, y);
            if (k == 2) tab->gelu_grad_f32(n, g, x, y);
            if (k == 3) tab->gelu_tanh_grad_f32(n, g, x, y);
            double worst = 0;
            float worst_x = 0;
            for (int i = 0; i < n; i++) {
                double xi = x[i], want, unit;
                if (k < 2) {
                    want = k == 0 ? gelu_ref(xi) : gelu_tanh_ref(xi);
                    unit = ulp_of(xi);
                } else {
                    want = g[i] * (k == 2 ? gelu_grad_ref(xi) : gelu_tanh_grad_ref(xi));
                    unit = g[i] * 5.9604644775390625e-08; /* 2^-24 */
                }
                double e = fabs((double)y[i] - want) / unit;
                if (!(e <= worst)) { worst = e; worst_x = x[i]; }
            }
            double bound = k < 2 ? ULPX_GELU : k == 2 ? U24_GELU_GRAD : U24_GELU_TANH_GRAD;
            ck_assert_msg(worst <= bound, "%s %s: error %.3f at x = %.9g (bound %.1f)", isas[t],
                          what[k], worst, (double)worst_x, bound);
        }
        /* special values: +-0, +-inf, NaN, beyond the saturation, the largest floats */
        const float inf = INFINITY;
        float xs[10] = {0.0f, -0.0f, inf, -inf, NAN, -6.0f, 6.0f, -30.0f, 3.4e38f, -3.4e38f};
        float ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, ys[10];
        tab->gelu_f32(10, xs, ys);
        ck_assert(ys[0] == 0.0f && !signbit(ys[0]) && ys[1] == 0.0f && signbit(ys[1]));
        ck_assert(ys[2] == inf && isnan(ys[3]) && isnan(ys[4]));
        /* erf(-6 / sqrt 2) rounds to -1: -0, as PyTorch's float32 gelu */
        ck_assert_msg(ys[5] == 0.0f && signbit(ys[5]), "gelu(-6) = %g", (double)ys[5]);
        ck_assert(ys[6] == 6.0f && ys[7] == 0.0f && signbit(ys[7]) && ys[8] == 3.4e38f);
        ck_assert(ys[9] == 0.0f && signbit(ys[9]));
        tab->gelu_grad_f32(10, ones, xs, ys);
        ck_assert(ys[0] == 0.5f && ys[1] == 0.5f && isnan(ys[2]) && isnan(ys[3]) && isnan(ys[4]));
        ck_assert(ys[6] == 1.0f && ys[7] == 0.0f && ys[8] == 1.0f);
        tab->gelu_tanh_f32(10, xs, ys);
        ck_assert(ys[0] == 0.0f && ys[1] == 0.0f && signbit(ys[1]) && ys[2] == inf && isnan(ys[3]));
        ck_assert(isnan(ys[4]) && ys[6] == 6.0f && ys[7] == 0.0f && ys[8] == 3.4e38f);
        tab->gelu_tanh_grad_f32(10, ones, xs, ys);
        ck_assert(ys[0] == 0.5f && ys[1] == 0.5f && isnan(ys[4]) && ys[6] == 1.0f && ys[7] == 0.0f);
        /* in place: out is g */
        float gx[3] = {2.0f, 2.0f, 2.0f}, xx[3] = {0.0f, 50.0f, -50.0f};
        tab->gelu_grad_f32(3, gx, xx, gx);
        ck_assert(gx[0] == 1.0f && gx[1] == 2.0f && gx[2] == 0.0f);
        /* at +-inf the gradient is inf * 0 = NaN (as PyTorch's); gelu(-inf) = NaN,
         * gelu(+inf) = +inf, gelu(-6) = -0 (the tail is 0 from 5.5426 on) */
        float gi[4] = {1.0f, 1.0f, 1.0f, 1.0f}, xi[4] = {INFINITY, -INFINITY, -6.0f, 6.0f}, yi[4];
        tab->gelu_grad_f32(2, gi, xi, gi);
        ck_assert_msg(isnan(gi[0]) && isnan(gi[1]), "%s gelu grad at +-inf: %g %g", isas[t],
                      (double)gi[0], (double)gi[1]);
        tab->gelu_f32(4, xi, yi);
        ck_assert(yi[0] == INFINITY && isnan(yi[1]) && yi[2] == 0.0f && signbit(yi[2]) && yi[3] == 6.0f);
    }
    free(x);
    free(g);
    free(y);
}
END_TEST

/* The builds compute the same algorithm: each SIMD build within one ulp of
 * the baseline (FMA rounds once where the baseline rounds twice). */
START_TEST(test_unary_isas_agree) {
    const tg_vmath_table *a = tg_vmath_by_name("baseline");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(tg_vmath());
    ck_assert_ptr_null(tg_vmath_by_name("sse9"));
    ck_assert_ptr_null(tg_vmath_by_name(NULL));
    enum { N = 20000 };
    static float x[N], ya[N], yb[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i - N / 2) * 0.01f;
    for (int t = 1; t < n_isas; t++) {
        const tg_vmath_table *b = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(b); /* registered only where the CPU has the SIMD build */
        for (int k = 0; k < N_UNARY; k++) {
            /* erf: each build within 1.5 ulp of erf, so within 2.5 of each other */
            const float tol = k == 4 ? 2.51f : 1.01f;
            fn_of(a, k)(N, x, ya);
            fn_of(b, k)(N, x, yb);
            for (int i = 0; i < N; i++) {
                if (isnan(ya[i]) || isnan(yb[i]) || ya[i] == yb[i]) {
                    ck_assert(ya[i] == yb[i] || (isnan(ya[i]) && isnan(yb[i])));
                    continue;
                }
                ck_assert_msg(fabsf(ya[i] - yb[i]) <= tol * fabsf(nextafterf(ya[i], INFINITY) - ya[i]),
                              "%s(%g): baseline %.9g %s %.9g", names[k], (double)x[i],
                              (double)ya[i], isas[t], (double)yb[i]);
            }
        }
    }
}
END_TEST

/* The AVX-512 and AVX2 builds give the same bits for every function
 * (vmath.h): each element goes through the same operations and FMAs, only
 * the number of elements a step differs.  Checked on a sweep of float32 bit
 * patterns (every exponent, both signs, subnormals, inf and NaN) at odd
 * lengths and start addresses, so that both vector bodies and both tails
 * meet every value; and on the optimizer loops. */
START_TEST(test_avx512_and_avx2_agree_bitwise) {
    const tg_vmath_table *a = tg_vmath_by_name("avx2"), *b = tg_vmath_by_name("avx512");
    if (!a || !b) return; /* not on this CPU (or arm64): main.c lists what ran */
    enum { B = 4099 };
    static float x[B + 1], g[B + 1], ya[B], yb[B];
    const uint64_t stride = tt_light() ? 1000003 : 65537;
    uint64_t bits = 0, checked = 0;
    for (int round = 0; bits < 0x100000000ull; round++) {
        int m = 0;
        for (; m < B && bits < 0x100000000ull; m++, bits += stride) {
            x[m] = from_bits((uint32_t)bits);
            g[m] = (float)((m * 37) % 23 - 11) * 0.375f;
        }
        int off = round & 1, len = m - off; /* odd start address every other round */
        const tg_vmath_unary_fn fa[7] = {a->exp_f32, a->log_f32, a->tanh_f32, a->sigmoid_f32,
                                         a->erf_f32, a->gelu_f32, a->gelu_tanh_f32};
        const tg_vmath_unary_fn fb[7] = {b->exp_f32, b->log_f32, b->tanh_f32, b->sigmoid_f32,
                                         b->erf_f32, b->gelu_f32, b->gelu_tanh_f32};
        static const char *fnames[9] = {"exp", "log", "tanh", "sigmoid", "erf", "gelu",
                                        "gelu_tanh", "gelu_grad", "gelu_tanh_grad"};
        for (int k = 0; k < 9; k++) {
            if (k < 7) {
                fa[k](len, x + off, ya);
                fb[k](len, x + off, yb);
            } else {
                (k == 7 ? a->gelu_grad_f32 : a->gelu_tanh_grad_f32)(len, g + off, x + off, ya);
                (k == 7 ? b->gelu_grad_f32 : b->gelu_tanh_grad_f32)(len, g + off, x + off, yb);
            }
            for (int i = 0; i < len; i++) {
                uint32_t ua, ub;
                memcpy(&ua, &ya[i], 4);
                memcpy(&ub, &yb[i], 4);
                ck_assert_msg(ua == ub || (isnan(ya[i]) && isnan(yb[i])),
                              "%s(%.9g): avx2 %.9g, avx512 %.9g", fnames[k], (double)x[off + i],
                              (double)ya[i], (double)yb[i]);
            }
            checked += (uint64_t)len;
        }
        /* the reductions over the same finite-or-not data: same bits (NaN: both NaN) */
        double ra[4] = {a->sum_f32(len, g + off), a->sumsq_f32(len, g + off),
                        a->max_f32(len, x + off), a->min_f32(len, x + off)};
        double rb[4] = {b->sum_f32(len, g + off), b->sumsq_f32(len, g + off),
                        b->max_f32(len, x + off), b->min_f32(len, x + off)};
        for (int k = 0; k < 4; k++)
            ck_assert_msg(memcmp(&ra[k], &rb[k], sizeof(double)) == 0 || (isnan(ra[k]) && isnan(rb[k])),
                          "reduction %d of %d elements: avx2 %.17g, avx512 %.17g", k, len, ra[k], rb[k]);
    }
    ck_assert(checked > 500000 || tt_light());
    /* the optimizer loops: one step each on 1001 parameters */
    enum { P = 1001 };
    static float p1[P], p2[P], m1[P], m2[P], v1[P], v2[P], gg[P];
    static const float ac[8] = {0.1f, 0.999f, 0.001f, 0.01f, 31.6f, 1e-8f, 0.01f, 0.9999f};
    static const double sc[5] = {0.05, 0.9, 0.1, 0.01, 1e-8};
    for (int step = 0; step < 6; step++) {
        for (int i = 0; i < P; i++) {
            p1[i] = p2[i] = (float)i * 0.003f - 1.5f;
            m1[i] = m2[i] = (float)(i % 7) * 0.01f;
            v1[i] = v2[i] = (float)(i % 5) * 0.02f;
            gg[i] = (float)((i * 53) % 41 - 20) * 0.05f;
        }
        if (step < 3) {
            a->adam_f32(P, p1, gg, m1, v1, ac, step);
            b->adam_f32(P, p2, gg, m2, v2, ac, step);
        } else if (step < 5) {
            int fl = step == 3 ? TG_VM_HAS_BUF | TG_VM_DECAY : TG_VM_HAS_BUF | TG_VM_NESTEROV;
            a->sgd_f32(P, p1, gg, m1, sc, fl);
            b->sgd_f32(P, p2, gg, m2, sc, fl);
        } else {
            a->rmsprop_f32(P, p1, gg, v1, m1, sc, TG_VM_HAS_BUF | TG_VM_DECAY);
            b->rmsprop_f32(P, p2, gg, v2, m2, sc, TG_VM_HAS_BUF | TG_VM_DECAY);
        }
        ck_assert_msg(!memcmp(p1, p2, sizeof p1) && !memcmp(m1, m2, sizeof m1) &&
                      !memcmp(v1, v2, sizeof v1), "optimizer step %d differs", step);
    }
}
END_TEST

/* Every element of a call gets the bits it would get alone (n = 1: the scalar
 * tail), whatever part of the loop computes it: the vector body, the
 * 256-bit half step of the AVX-512 build (n % 16 >= 8), or the scalar tail;
 * lengths 1..40 at two start addresses, on every build this CPU has. */
START_TEST(test_tails_give_the_same_bits) {
    enum { L = 41 };
    float x[L + 1], g[L + 1], y[L], one;
    for (int i = 0; i <= L; i++) {
        x[i] = (float)((i * 37) % 29 - 14) * 0.43f;
        g[i] = 1.0f + (float)(i % 5) * 0.25f;
    }
    x[5] = -0.0f, x[9] = 7.5f, x[20] = -6.0f, x[33] = 0.6249f;
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        const tg_vmath_unary_fn f[7] = {tab->exp_f32, tab->log_f32, tab->tanh_f32, tab->sigmoid_f32,
                                        tab->erf_f32, tab->gelu_f32, tab->gelu_tanh_f32};
        for (int k = 0; k < 9; k++)
            for (int off = 0; off < 2; off++)
                for (int n = 1; n < L; n++) {
                    const float *in = x + off, *gin = g + off;
                    if (k < 7) f[k](n, in, y);
                    else (k == 7 ? tab->gelu_grad_f32 : tab->gelu_tanh_grad_f32)(n, gin, in, y);
                    for (int i = 0; i < n; i++) {
                        if (k < 7) f[k](1, in + i, &one);
                        else (k == 7 ? tab->gelu_grad_f32 : tab->gelu_tanh_grad_f32)(1, gin + i, in + i, &one);
                        ck_assert_msg(memcmp(&one, &y[i], sizeof one) == 0 || (isnan(one) && isnan(y[i])),
                                      "%s function %d, n = %d, element %d: %.9g alone, %.9g in the call",
                                      isas[t], k, n, i, (double)one, (double)y[i]);
                    }
                }
    }
}
END_TEST

/* ---- reductions ---------------------------------------------------------- */

START_TEST(test_sums) {
    enum { N = 3000 };
    static float xf[N];
    static double xd[N];
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        xf[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 100.0f;
        xd[i] = xf[i] * 1.000000123;
    }
    const tg_vmath_table *tabs[1 + N_SIMD_NAMES];
    for (int t = 0; t < n_isas; t++) tabs[t] = tg_vmath_by_name(isas[t]);
    ck_assert_ptr_nonnull(tabs[0]);
    for (int n = 0; n <= N; n += (n < 70 ? 1 : 293)) {
        double ref_f = 0, ref_d = 0, ref_qf = 0, ref_qd = 0;
        for (int i = 0; i < n; i++) {
            ref_f += xf[i];
            ref_d += xd[i];
            ref_qf += (double)xf[i] * xf[i];
            ref_qd += xd[i] * xd[i];
        }
        double got[1 + N_SIMD_NAMES][4] = {{0}};
        for (int t = 0; t < n_isas; t++) {
            got[t][0] = tabs[t]->sum_f32(n, xf);
            got[t][1] = tabs[t]->sum_f64(n, xd);
            got[t][2] = tabs[t]->sumsq_f32(n, xf);
            got[t][3] = tabs[t]->sumsq_f64(n, xd);
            ck_assert_msg(fabs(got[t][0] - ref_f) <= 1e-12 * (1 + fabs(ref_f)) * n, "sum_f32 n=%d", n);
            ck_assert_msg(fabs(got[t][1] - ref_d) <= 1e-12 * (1 + fabs(ref_d)) * n, "sum_f64 n=%d", n);
            ck_assert_msg(fabs(got[t][2] - ref_qf) <= 1e-12 * (1 + ref_qf), "sumsq_f32 n=%d", n);
            ck_assert_msg(fabs(got[t][3] - ref_qd) <= 1e-12 * (1 + ref_qd), "sumsq_f64 n=%d", n);
        }
        for (int t = 1; t < n_isas; t++) /* a fixed order: the same bits on every path */
            for (int k = 0; k < 4; k++)
                ck_assert_msg(memcmp(&got[0][k], &got[t][k], sizeof(double)) == 0, "%s sum %d n=%d",
                              isas[t], k, n);
    }
}
END_TEST

START_TEST(test_column_sums) {
    enum { R = 11, C = 37, LD = 41 };
    static float xf[R * LD];
    static double xd[R * LD];
    for (int i = 0; i < R * LD; i++) {
        xf[i] = (float)((i * 7919) % 101) - 50.25f;
        xd[i] = xf[i] / 3.0;
    }
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (int rows = 0; rows <= R; rows++) {
            double af[C], ad[C];
            for (int j = 0; j < C; j++) af[j] = ad[j] = j; /* accumulates onto what is there */
            tab->acc_f32(rows, C, xf, LD, af);
            tab->acc_f64(rows, C, xd, LD, ad);
            for (int j = 0; j < C; j++) {
                double rf = j, rd = j;
                for (int r = 0; r < rows; r++) {
                    rf += xf[r * LD + j];
                    rd += xd[r * LD + j];
                }
                ck_assert_msg(af[j] == rf, "acc_f32 rows=%d col=%d: %g != %g", rows, j, af[j], rf);
                ck_assert_msg(fabs(ad[j] - rd) <= 1e-12 * (1 + fabs(rd)), "acc_f64 rows=%d", rows);
            }
        }
    }
}
END_TEST

/* layer_norm's row loops on every build: the sums in the documented order
 * (vmath_impl.h: 8 float32 lanes per chunk of 512, added in lane order into
 * float64, the tail one by one), written here lane by lane as the scalar
 * reference, and the elementwise loops by their formulas: the same bits, for
 * lengths around the 8/16-lane steps and the 512-element chunks. */
static void ln_ref_sums(int64_t n, const float *x, const float *g, const float *w, float c, float r,
                        int dots, double *s) {
    s[0] = s[1] = 0;
    for (int64_t k0 = 0; k0 < n; k0 += 512) {
        int64_t e = k0 + 512 < n ? k0 + 512 : n, k = k0;
        float a[8] = {0}, b[8] = {0};
        for (; k + 8 <= e; k += 8)
            for (int l = 0; l < 8; l++) {
                float d = x[k + l] - c, gx = dots ? (w ? g[k + l] * w[k + l] : g[k + l]) : d;
                float q = dots ? gx * (d * r) : d * d;
                a[l] += gx;
                b[l] += q;
            }
        double ta = 0, tb = 0;
        for (int l = 0; l < 8; l++) ta += a[l];
        for (int l = 0; l < 8; l++) tb += b[l];
        for (; k < e; k++) {
            float d = x[k] - c, gx = dots ? (w ? g[k] * w[k] : g[k]) : d;
            ta += gx;
            tb += dots ? gx * (d * r) : d * d;
        }
        s[0] += ta;
        s[1] += tb;
    }
}

START_TEST(test_layer_norm_rows) {
    enum { N = 1100 };
    static float x[N], g[N], w[N], b[N], y[N], dw[N], db[N], ry[N], rdw[N], rdb[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i * 7919) % 211) * 0.037f + 3.0f;
        g[i] = (float)((i * 104729) % 97) * 0.021f - 1.0f;
        w[i] = 1.0f + (float)(i % 13) * 0.05f;
        b[i] = (float)(i % 7) * 0.25f - 0.5f;
    }
    static const int lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 128, 129, 511, 512, 513, 520, 1030, N};
    const float mu = 3.1f, r = 0.7f, m1 = 0.05f, m2 = -0.3f;
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int n = lens[li];
            for (int mode = 0; mode < 4; mode++) {
                const float *wm = mode & 1 ? w : NULL, *bm = mode & 2 ? b : NULL;
                double s[2], rs[2];
                tab->ln_sums_f32(n, x, x[0], s);
                ln_ref_sums(n, x, NULL, NULL, x[0], 0, 0, rs);
                ck_assert_msg(s[0] == rs[0] && s[1] == rs[1], "%s ln_sums n=%d", isas[t], n);
                tab->ln_dots_f32(n, g, wm, x, mu, r, s);
                ln_ref_sums(n, x, g, wm, mu, r, 1, rs);
                ck_assert_msg(s[0] == rs[0] && s[1] == rs[1], "%s ln_dots n=%d mode %d", isas[t], n, mode);
                tab->ln_apply_f32(n, x, mu, r, wm, bm, y);
                for (int i = 0; i < n; i++) {
                    float v = (x[i] - mu) * r;
                    if (wm) v = v * wm[i];
                    if (bm) v = v + bm[i];
                    ck_assert_msg(memcmp(&v, &y[i], 4) == 0, "%s ln_apply n=%d mode %d at %d", isas[t], n,
                                  mode, i);
                }
                for (int i = 0; i < n; i++) dw[i] = rdw[i] = db[i] = rdb[i] = (float)i * 0.5f;
                tab->ln_grad_f32(n, g, wm, x, mu, r, m1, m2, y, mode & 1 ? dw : NULL, mode & 2 ? db : NULL);
                for (int i = 0; i < n; i++) {
                    float gx = wm ? g[i] * wm[i] : g[i];
                    ry[i] = r * (gx - m1 - (x[i] - mu) * r * m2);
                    if (mode & 1) rdw[i] += g[i] * ((x[i] - mu) * r);
                    if (mode & 2) rdb[i] += g[i];
                }
                ck_assert_msg(memcmp(y, ry, (size_t)n * 4) == 0 && memcmp(dw, rdw, (size_t)n * 4) == 0 &&
                                  memcmp(db, rdb, (size_t)n * 4) == 0,
                              "%s ln_grad n=%d mode %d", isas[t], n, mode);
            }
        }
    }
}
END_TEST

/* gelu_fwd_grad_f32 on every build: y and d with the bits of that build's
 * gelu_f32 and of gelu_grad_f32 with g = 1, on a sweep of [-8, 8], the
 * specials and the lengths around the vector widths. */
START_TEST(test_gelu_fwd_grad_bits) {
    enum { N = 40001 };
    static float x[N + 8], y1[N], d1[N], y2[N], d2[N], one[N];
    static const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 5.5426f, -5.5426f, 5.6f, -5.6f,
                               1e-30f, -1e-30f, 88.0f, -88.0f};
    int ns = (int)(sizeof sp / sizeof sp[0]);
    for (int i = 0; i < N; i++) {
        x[i] = i < ns ? sp[i] : (float)((double)(i - N / 2) * 4e-4);
        one[i] = 1.0f;
    }
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (int n = 1; n <= N; n += n < 40 ? 1 : N - 40) {
            tab->gelu_fwd_grad_f32(n, x, y1, d1);
            tab->gelu_f32(n, x, y2);
            tab->gelu_grad_f32(n, one, x, d2);
            for (int i = 0; i < n; i++)
                ck_assert_msg((memcmp(&y1[i], &y2[i], 4) == 0 || (isnan(y1[i]) && isnan(y2[i]))) &&
                                  (memcmp(&d1[i], &d2[i], 4) == 0 || (isnan(d1[i]) && isnan(d2[i]))),
                              "%s n=%d x=%.9g: %.9g %.9g vs %.9g %.9g", isas[t], n, (double)x[i],
                              (double)y1[i], (double)d1[i], (double)y2[i], (double)d2[i]);
        }
    }
}
END_TEST

/* max/min agree with a simple loop for every length and every NaN position. */
START_TEST(test_extrema) {
    enum { N = 70 };
    float xf[N];
    double xd[N];
    for (int t = 0; t < n_isas; t++) {
        const tg_vmath_table *tab = tg_vmath_by_name(isas[t]);
        ck_assert_ptr_nonnull(tab);
        for (int n = 1; n <= N; n++) {
            for (int nanpos = -1; nanpos < n; nanpos++) {
                for (int i = 0; i < n; i++) {
                    xf[i] = (float)(((i + n) * 37) % 23) - 11.5f;
                    xd[i] = xf[i] * 1.5;
                }
                if (nanpos >= 0) {
                    xf[nanpos] = NAN;
                    xd[nanpos] = NAN;
                }
                double mxf = tab->max_f32(n, xf), mnf = tab->min_f32(n, xf);
                double mxd = tab->max_f64(n, xd), mnd = tab->min_f64(n, xd);
                if (nanpos >= 0) {
                    ck_assert_msg(isnan(mxf) && isnan(mnf) && isnan(mxd) && isnan(mnd),
                                  "%s n=%d NaN at %d not propagated", isas[t], n, nanpos);
                    continue;
                }
                double rmx = -INFINITY, rmn = INFINITY;
                for (int i = 0; i < n; i++) {
                    rmx = xf[i] > rmx ? xf[i] : rmx;
                    rmn = xf[i] < rmn ? xf[i] : rmn;
                }
                ck_assert(mxf == rmx && mnf == rmn);
                ck_assert(mxd == rmx * 1.5 && mnd == rmn * 1.5);
            }
        }
        float inf[3] = {-INFINITY, -INFINITY, -INFINITY};
        ck_assert(tab->max_f32(3, inf) == -INFINITY);
    }
}
END_TEST

/* ---- the self-test of the SIMD build (vmath.c, selftest_table) ------------ */

static tg_vmath_unary_fn real_tanh;
/* A broken tanh: right in the vector body, wrong in the loop's tail (the
 * last element when n is not a multiple of 8). */
static void broken_tanh(int64_t n, const float *x, float *y) {
    real_tanh(n, x, y);
    if (n % 8) y[n - 1] = -y[n - 1] + 0.25f;
}
static double (*real_max)(int64_t, const float *);
/* A broken max: ignores the last element. */
static double broken_max(int64_t n, const float *x) { return real_max(n > 1 ? n - 1 : n, x); }

static void selftest_teardown(void) {
    tg_vmath_testing_set_table(NULL);
    unsetenv("TAPEGRAD_VMATH");
    unsetenv("TAPEGRAD_DISABLE_CPU_FEATURES");
    tg_dispatch_log_clear();
    tg_vmath_force(NULL);
}

/* Each SIMD build this CPU has, broken in turn (in the vector body's tail,
 * then in a reduction): its self-test refuses it and the choice falls to
 * the next build down, which is still tested and used. */
START_TEST(test_selftest_catches_broken_table) {
    const int i = _i; /* index in simd_names */
    const char *name = simd_names[i];
    const tg_vmath_table *simd = tg_vmath_by_name(name);
    if (!simd) return; /* not on this CPU: main.c lists it as not run here */
    const char *next = next_after(i);
    setenv("TAPEGRAD_VMATH", name, 1);
    tg_vmath_testing_reset();
    tg_dispatch_log_clear();
    ck_assert_str_eq(tg_vmath()->name, name); /* the real one passes */
    ck_assert_uint_eq(tg_dispatch_log_copy(NULL, 0), 0);
    static tg_vmath_table broken[2];
    const char *expect[2] = {"tanh(", "max_f32"};
    for (int k = 0; k < 2; k++) {
        broken[k] = *simd;
        real_tanh = simd->tanh_f32;
        real_max = simd->max_f32;
        if (k == 0) broken[k].tanh_f32 = broken_tanh;
        else broken[k].max_f32 = broken_max;
        tg_dispatch_log_clear();
        ck_assert_int_eq(tg_vmath_testing_set_path_table(name, &broken[k]), 0);
        ck_assert_str_eq(tg_vmath()->name, next); /* fell back to the next build down */
        char log[1024], want[64];
        tg_dispatch_log_copy(log, sizeof log);
        snprintf(want, sizeof want, "the %s kernels failed their self-test", name);
        ck_assert_msg(strstr(log, want) && strstr(log, expect[k]), "log: %s", log);
        ck_assert_int_eq(tg_vmath_force(name), -1);
        ck_assert_str_eq(tg_vmath_refusal(name), "it failed its self-test");
        tg_kernel_path_info info[8];
        int n = tg_vmath_paths(info, 8);
        ck_assert_int_eq(n, N_SIMD_NAMES + 1);
        ck_assert_str_eq(info[i].name, name);
        ck_assert_int_eq(info[i].selftest, -1);
        ck_assert(!info[i].in_use);
        for (int j = 0; j < n; j++)
            ck_assert_int_eq(info[j].in_use, strcmp(info[j].name, next) == 0);
    }
    ck_assert_int_eq(tg_vmath_testing_set_path_table(name, NULL), 0);
    ck_assert_str_eq(tg_vmath()->name, name);
    ck_assert_int_eq(tg_vmath_testing_set_path_table("sse9", NULL), -1);
}
END_TEST

/* Without TAPEGRAD_VMATH, a broken best build makes the default choice the
 * next one down (on x86-64 with AVX-512: avx2, not the baseline). */
START_TEST(test_broken_best_build_falls_to_the_next) {
    const tg_vmath_table *best = tg_vmath_by_name(SIMD);
    if (!best) return;
    static tg_vmath_table broken;
    broken = *best;
    real_tanh = best->tanh_f32;
    broken.tanh_f32 = broken_tanh;
    tg_dispatch_log_clear();
    ck_assert_int_eq(tg_vmath_testing_set_table(&broken), 0);
    ck_assert_str_eq(tg_vmath()->name, next_after(0));
    ck_assert_int_eq(tg_vmath_testing_set_table(NULL), 0);
    ck_assert_str_eq(tg_vmath()->name, SIMD);
}
END_TEST

START_TEST(test_forcing_and_refusal) {
    ck_assert_int_eq(tg_vmath_force("baseline"), 0);
    ck_assert_str_eq(tg_vmath()->name, "baseline");
    ck_assert_int_eq(tg_vmath_force("sse9"), -1);
    ck_assert_str_eq(tg_vmath()->name, "baseline");
    ck_assert_str_eq(tg_vmath_refusal("sse9"),
                     "not a vector-math path (expected avx512, avx2, neon or baseline)");
    /* each SIMD build, hidden from the library, is refused with the reason;
     * asked for by TAPEGRAD_VMATH it gives the default of what is left */
    for (int i = 0; i < N_SIMD_NAMES; i++) {
        const char *name = simd_names[i];
        setenv("TAPEGRAD_DISABLE_CPU_FEATURES", name, 1);
        ck_assert_int_eq(tg_vmath_force(name), -1);
        const char *why = tg_vmath_refusal(name);
        ck_assert_msg(strstr(why, "AVX") || strstr(why, "TAPEGRAD_DISABLE_CPU_FEATURES") ||
                      strstr(why, "not an x86-64 build"), "%s", why);
        ck_assert_ptr_null(tg_vmath_by_name(name));
        setenv("TAPEGRAD_VMATH", name, 1);
        tg_vmath_testing_reset();
        tg_dispatch_log_clear();
        /* hiding avx2 hides avx512 too (its FMA is the AVX2+FMA feature) */
        const char *left = "baseline";
        for (int j = 0; j < N_SIMD_NAMES; j++)
            if (j != i && tg_vmath_by_name(simd_names[j])) { left = simd_names[j]; break; }
        ck_assert_str_eq(tg_vmath()->name, left);
        char log[1024], want[64];
        tg_dispatch_log_copy(log, sizeof log);
        snprintf(want, sizeof want, "TAPEGRAD_VMATH=%s refused", name);
        ck_assert_msg(strstr(log, want), "log: %s", log);
        unsetenv("TAPEGRAD_VMATH");
    }
#if !defined(__aarch64__)
    /* avx512 needs the AVX2+FMA feature as well */
    if (tg_vmath_by_name("avx512")) {
        setenv("TAPEGRAD_DISABLE_CPU_FEATURES", "avx2", 1);
        ck_assert_ptr_null(tg_vmath_by_name("avx512"));
        ck_assert_str_eq(tg_vmath_refusal("avx512"), "disabled by TAPEGRAD_DISABLE_CPU_FEATURES");
        tg_vmath_testing_reset();
        ck_assert_str_eq(tg_vmath()->name, "baseline");
    }
#endif
    unsetenv("TAPEGRAD_DISABLE_CPU_FEATURES");
    tg_vmath_testing_reset();
    ck_assert_str_eq(tg_vmath()->name, tg_vmath_by_name(SIMD) ? SIMD : next_after(0));
    /* a lower build asked for by name is used even where a better one exists */
    for (int i = 0; i < N_SIMD_NAMES; i++) {
        if (!tg_vmath_by_name(simd_names[i])) continue;
        setenv("TAPEGRAD_VMATH", simd_names[i], 1);
        tg_vmath_testing_reset();
        ck_assert_str_eq(tg_vmath()->name, simd_names[i]);
        ck_assert_int_eq(tg_vmath_force(simd_names[i]), 0);
    }
    setenv("TAPEGRAD_VMATH", "baseline", 1);
    tg_vmath_testing_reset();
    ck_assert_str_eq(tg_vmath()->name, "baseline");
}
END_TEST

static const tg_vmath_table *first_seen[8];
static void *first_use(void *arg) {
    int k = (int)(intptr_t)arg;
    first_seen[k] = tg_vmath();
    return NULL;
}

START_TEST(test_selftest_once_under_threads) {
    tg_vmath_testing_reset();
    int before = tg_vmath_testing_selftest_runs();
    pthread_t th[8];
    for (int k = 0; k < 8; k++) ck_assert_int_eq(pthread_create(&th[k], NULL, first_use, (void *)(intptr_t)k), 0);
    for (int k = 0; k < 8; k++) pthread_join(th[k], NULL);
    for (int k = 1; k < 8; k++) ck_assert_ptr_eq(first_seen[k], first_seen[0]);
    /* one self-test: of the best build, which passes */
    ck_assert_int_eq(tg_vmath_testing_selftest_runs() - before,
                     strcmp(first_seen[0]->name, "baseline") != 0 ? 1 : 0);
}
END_TEST

Suite *vmath_suite(void) {
    n_isas = 0;
    isas[n_isas++] = "baseline";
    for (int i = N_SIMD_NAMES - 1; i >= 0; i--)
        if (tg_vmath_by_name(simd_names[i])) isas[n_isas++] = simd_names[i];
    Suite *s = suite_create("vmath");
    TCase *tc = tcase_create("unary");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_unary_accuracy_sweep, 0, N_UNARY);
    tcase_add_test(tc, test_erf_dense);
    tcase_add_test(tc, test_gelu_accuracy);
    tcase_add_test(tc, test_gelu_fwd_grad_bits);
    tcase_add_test(tc, test_unary_accuracy_edges);
    tcase_add_test(tc, test_unary_special_values);
    if (n_isas > 1) tcase_add_test(tc, test_unary_isas_agree);
    tcase_add_test(tc, test_avx512_and_avx2_agree_bitwise);
    tcase_add_test(tc, test_tails_give_the_same_bits);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("reduce");
    tcase_add_test(tr, test_sums);
    tcase_add_test(tr, test_column_sums);
    tcase_add_test(tr, test_layer_norm_rows);
    tcase_add_test(tr, test_extrema);
    suite_add_tcase(s, tr);
    TCase *ts = tcase_create("selftest");
    tcase_add_checked_fixture(ts, NULL, selftest_teardown);
    tcase_add_loop_test(ts, test_selftest_catches_broken_table, 0, N_SIMD_NAMES);
    tcase_add_test(ts, test_broken_best_build_falls_to_the_next);
    tcase_add_test(ts, test_forcing_and_refusal);
    tcase_add_test(ts, test_selftest_once_under_threads);
    suite_add_tcase(s, ts);
    return s;
}
