/*
 * vmath.c -- the baseline build of the vector math kernels and the
 * run-time choice between it and the SIMD builds of the architecture:
 * AVX-512 then AVX2 on x86-64 (vmath_avx512.c, vmath_avx2.c), NEON on arm64
 * (vmath_neon.c); see vmath.h.
 */
#include "vmath.h"
#include "dispatch.h"

#include <math.h>
#include "platform.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VM(name) tg_vm_##name##_base
#define VM_VBYTES 16
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#include "vmath_impl.h"

#define VM_TABLE(SUFFIX, NAME)                                                         \
    {NAME, tg_vm_exp_f32_##SUFFIX, tg_vm_log_f32_##SUFFIX, tg_vm_tanh_f32_##SUFFIX,   \
     tg_vm_sigmoid_f32_##SUFFIX, tg_vm_sum_f32_##SUFFIX, tg_vm_sum_f64_##SUFFIX,      \
     tg_vm_sumsq_f32_##SUFFIX, tg_vm_sumsq_f64_##SUFFIX,                              \
     tg_vm_acc_f32_##SUFFIX, tg_vm_acc_f64_##SUFFIX, tg_vm_max_f32_##SUFFIX,          \
     tg_vm_min_f32_##SUFFIX, tg_vm_max_f64_##SUFFIX, tg_vm_min_f64_##SUFFIX,          \
     tg_vm_adam_f32_##SUFFIX, tg_vm_sgd_f32_##SUFFIX, tg_vm_rmsprop_f32_##SUFFIX,     \
     tg_vm_erf_f32_##SUFFIX, tg_vm_gelu_f32_##SUFFIX, tg_vm_gelu_tanh_f32_##SUFFIX,   \
     tg_vm_gelu_grad_f32_##SUFFIX, tg_vm_gelu_tanh_grad_f32_##SUFFIX,                 \
     tg_vm_ln_sums_f32_##SUFFIX, tg_vm_ln_dots_f32_##SUFFIX, tg_vm_ln_apply_f32_##SUFFIX, \
     tg_vm_ln_grad_f32_##SUFFIX, tg_vm_gelu_fwd_grad_f32_##SUFFIX,                    \
     tg_vm_dot_f32_##SUFFIX, tg_vm_dot_f64_##SUFFIX, tg_vm_rowmat_f32_##SUFFIX,       \
     tg_vm_rowmat_f64_##SUFFIX, tg_vm_accmax_f32_##SUFFIX, tg_vm_accmax_f64_##SUFFIX,  \
     tg_vm_accmin_f32_##SUFFIX, tg_vm_accmin_f64_##SUFFIX}

static const tg_vmath_table table_base = VM_TABLE(base, "baseline");

/* The SIMD build's functions (defined in vmath_<suffix>.c). */
#define VM_DECLARE(SUFFIX)                                                              \
    void tg_vm_exp_f32_##SUFFIX(int64_t, const float *, float *);                       \
    void tg_vm_log_f32_##SUFFIX(int64_t, const float *, float *);                       \
    void tg_vm_tanh_f32_##SUFFIX(int64_t, const float *, float *);                      \
    void tg_vm_sigmoid_f32_##SUFFIX(int64_t, const float *, float *);                   \
    double tg_vm_sum_f32_##SUFFIX(int64_t, const float *);                              \
    double tg_vm_sum_f64_##SUFFIX(int64_t, const double *);                             \
    double tg_vm_sumsq_f32_##SUFFIX(int64_t, const float *);                            \
    double tg_vm_sumsq_f64_##SUFFIX(int64_t, const double *);                           \
    void tg_vm_acc_f32_##SUFFIX(int64_t, int64_t, const float *, int64_t, double *);    \
    void tg_vm_acc_f64_##SUFFIX(int64_t, int64_t, const double *, int64_t, double *);   \
    double tg_vm_max_f32_##SUFFIX(int64_t, const float *);                              \
    double tg_vm_min_f32_##SUFFIX(int64_t, const float *);                              \
    double tg_vm_max_f64_##SUFFIX(int64_t, const double *);                             \
    double tg_vm_min_f64_##SUFFIX(int64_t, const double *);                             \
    void tg_vm_adam_f32_##SUFFIX(int64_t, float *, const float *, float *, float *,     \
                                 const float *, int);                                   \
    void tg_vm_sgd_f32_##SUFFIX(int64_t, float *, const float *, float *, const double *, \
                                int);                                                   \
    void tg_vm_rmsprop_f32_##SUFFIX(int64_t, float *, const float *, float *, float *,  \
                                    const double *, int);                               \
    void tg_vm_erf_f32_##SUFFIX(int64_t, const float *, float *);                       \
    void tg_vm_gelu_f32_##SUFFIX(int64_t, const float *, float *);                      \
    void tg_vm_gelu_tanh_f32_##SUFFIX(int64_t, const float *, float *);                 \
    void tg_vm_gelu_grad_f32_##SUFFIX(int64_t, const float *, const float *, float *);  \
    void tg_vm_gelu_tanh_grad_f32_##SUFFIX(int64_t, const float *, const float *, float *);  \
    void tg_vm_ln_sums_f32_##SUFFIX(int64_t, const float *, float, double *);           \
    void tg_vm_ln_dots_f32_##SUFFIX(int64_t, const float *, const float *, const float *, float, \
                                    float, double *);                                   \
    void tg_vm_ln_apply_f32_##SUFFIX(int64_t, const float *, float, float, const float *, \
                                     const float *, float *);                           \
    void tg_vm_ln_grad_f32_##SUFFIX(int64_t, const float *, const float *, const float *, float, \
                                    float, float, float, float *, float *, float *);       \
    void tg_vm_gelu_fwd_grad_f32_##SUFFIX(int64_t, const float *, float *, float *);   \
    float tg_vm_dot_f32_##SUFFIX(int64_t, const float *, const float *);                \
    double tg_vm_dot_f64_##SUFFIX(int64_t, const double *, const double *);             \
    void tg_vm_rowmat_f32_##SUFFIX(int64_t, int64_t, float, const float *, int64_t,     \
                                   const float *, int64_t, float *);                    \
    void tg_vm_rowmat_f64_##SUFFIX(int64_t, int64_t, double, const double *, int64_t,   \
                                   const double *, int64_t, double *);                  \
    void tg_vm_accmax_f32_##SUFFIX(int64_t, int64_t, const float *, int64_t, double *); \
    void tg_vm_accmax_f64_##SUFFIX(int64_t, int64_t, const double *, int64_t, double *); \
    void tg_vm_accmin_f32_##SUFFIX(int64_t, int64_t, const float *, int64_t, double *); \
    void tg_vm_accmin_f64_##SUFFIX(int64_t, int64_t, const double *, int64_t, double *);

/* The SIMD builds of each architecture, best first, under the names of
 * their instruction sets; the other architecture's names are known, and
 * refused with the reason. */
#if defined(__x86_64__) && defined(__GNUC__)
#define TG_VMATH_HAVE_SIMD 1
VM_DECLARE(avx512)
VM_DECLARE(avx2)
static const tg_vmath_table table_avx512 = VM_TABLE(avx512, "avx512");
static const tg_vmath_table table_avx2 = VM_TABLE(avx2, "avx2");
#elif defined(__aarch64__) && defined(__GNUC__)
#define TG_VMATH_HAVE_SIMD 1
VM_DECLARE(neon)
static const tg_vmath_table table_neon = VM_TABLE(neon, "neon");
#endif

/* A known path name this build does not have: the reason, else NULL. */
static const char *foreign_path(const char *name) {
    if (name == NULL) return NULL;
    int x86 = strcmp(name, "avx512") == 0 || strcmp(name, "avx2") == 0;
    int arm = strcmp(name, "neon") == 0;
#ifdef TG_VMATH_HAVE_SIMD
#if defined(__x86_64__)
    if (x86) return NULL;
#else
    if (arm) return NULL;
#endif
#endif
#ifdef TG_ARCH_X86 /* and no SIMD build: a compiler without GCC's vector types (cl.exe) */
    if (x86) return "not in a build without GCC vector extensions";
#endif
#ifdef TG_ARCH_ARM64
    if (arm) return "not in a build without GCC vector extensions";
#endif
    if (x86) return "not an x86-64 build";
    if (arm) return "not an arm64 build";
    return NULL;
}

/* Whether `name` is a vector-math path of any build. */
static int known_path(const char *name) {
    return name != NULL && (strcmp(name, "baseline") == 0 || strcmp(name, "avx512") == 0 ||
                            strcmp(name, "avx2") == 0 || strcmp(name, "neon") == 0);
}

#define VM_PATH_NAMES "avx512, avx2, neon or baseline"

#ifdef TG_VMATH_HAVE_SIMD
/* One SIMD path: its table, the CPU features it needs, and (under
 * choose_lock) its self-test result. */
typedef struct {
    const char *name;
    const tg_vmath_table *real;
    tg_cpu_feature need[2]; /* both must be present (the second may repeat the first) */
    _Atomic(const tg_vmath_table *) override; /* tg_vmath_testing_set_path_table */
    int result;                               /* 0 not tested, 1 passed, -1 failed */
    char why[400];
    double us;
} simd_path;

static simd_path simd_paths[] = {
#if defined(__x86_64__)
    /* AVX-512F for the registers, and the AVX2+FMA feature for the FMA that
     * fmaf() compiles to (every AVX-512 CPU has it; a CPU or an
     * environment that hides AVX2 hides this build too) */
    {"avx512", &table_avx512, {TG_CPU_AVX512, TG_CPU_AVX2}, NULL, 0, "", 0},
    {"avx2", &table_avx2, {TG_CPU_AVX2, TG_CPU_AVX2}, NULL, 0, "", 0},
#else
    {"neon", &table_neon, {TG_CPU_NEON, TG_CPU_NEON}, NULL, 0, "", 0},
#endif
};
enum { N_SIMD = (int)(sizeof simd_paths / sizeof simd_paths[0]) };

static int find_simd(const char *name) {
    for (int i = 0; name && i < N_SIMD; i++)
        if (strcmp(name, simd_paths[i].name) == 0) return i;
    return -1;
}

static int have_simd(int i) {
    return tg_cpu_has(simd_paths[i].need[0]) && tg_cpu_has(simd_paths[i].need[1]);
}

/* Why path i cannot run here ("" if it can). */
static const char *simd_missing(int i) {
    const char *why = tg_cpu_missing(simd_paths[i].need[0]);
    return *why ? why : tg_cpu_missing(simd_paths[i].need[1]);
}

/* The table of path i: the real one, or one a test put in its place. */
static const tg_vmath_table *simd_table(int i) {
    const tg_vmath_table *t = atomic_load(&simd_paths[i].override);
    return t ? t : simd_paths[i].real;
}
#endif

const tg_vmath_table *tg_vmath_by_name(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "baseline") == 0) return &table_base;
#ifdef TG_VMATH_HAVE_SIMD
    int i = find_simd(name);
    if (i >= 0) return have_simd(i) ? simd_paths[i].real : NULL;
#endif
    return NULL;
}

/* ---- the known-answer self-test (dispatch.h) ------------------------------
 * The SIMD build is compared with the baseline build (the portable path) on
 * fixed inputs that reach every part of the loops: lengths that leave a
 * tail after the vector body, an odd start address (x + 1), the special
 * values and the edges of every range (overflow, subnormal results, the
 * tanh switch at 0.625, log of subnormals and negatives).  The bounds are
 * the ones vmath.h states between the two builds:
 *   exp/log/tanh/sigmoid: equal, or both NaN, or within 2 ulp of the
 *     baseline result (measured: at most 1 ulp; FMA rounds once where
 *     SSE2 rounds twice);
 *   sums, sums of squares, column sums, max, min, and the optimizer steps:
 *     the same bits (one fixed order of operations on every path).
 * Returns 0, or -1 with the first difference described in why[0..n). */
#ifdef TG_VMATH_HAVE_SIMD /* (the self-test exists where a SIMD build does) */
static uint32_t vm_bits(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }

static int vm_close(float got, float want) {
    if (got != got || want != want) return got != got && want != want;
    if (got == want) return vm_bits(got) == vm_bits(want) || got == 0; /* +-0 only where equal */
    if (isinf(got) || isinf(want)) return 0;
    double ulp = fabs((double)nextafterf(want, INFINITY) - (double)want);
    return fabs((double)got - (double)want) <= 2.0 * ulp;
}

/* For gelu and its gradients, whose error is stated in absolute terms
 * (vmath.h): equal, both NaN, or |got - want| <= tol. */
static int vm_close_abs(float got, float want, double tol) {
    if (got != got || want != want) return got != got && want != want;
    if (got == want) return 1;
    if (isinf(got) || isinf(want)) return 0;
    return fabs((double)got - (double)want) <= tol;
}

static int same64(double a, double b) { return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b); }

enum { VM_ST_N = 67 };

static int selftest_table(const tg_vmath_table *t, char *why, size_t n) {
    const tg_vmath_table *b = &table_base;
    static const float special[] = {
        0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, 88.72f, 88.73f, -87.33f,
        -103.9f, -104.5f, 1e-45f, 1.17549435e-38f, 3.4e38f, 0.625f, -0.625f, 0.62499f,
        9.5f, -17.25f, 0.3466f, 0.70710678f, 1.41421356f, 1e-7f, -3e-5f};
    float x[VM_ST_N + 1], y1[VM_ST_N], y2[VM_ST_N];
    double xd[VM_ST_N + 1];
    int ns = (int)(sizeof special / sizeof special[0]);
    float xs[VM_ST_N + 1]; /* finite values for the sums */
    for (int i = 0; i <= VM_ST_N; i++) {
        x[i] = i < ns ? special[i] : (float)((i * 37) % 61 - 30) * 0.37f;
        xs[i] = (float)((i * 37) % 61 - 30) * 0.37f * (float)(1 + i % 3);
        xd[i] = (double)xs[i] * 1.0000001;
    }
    static const char *names[4] = {"exp", "log", "tanh", "sigmoid"};
    tg_vmath_unary_fn f1[4] = {t->exp_f32, t->log_f32, t->tanh_f32, t->sigmoid_f32};
    tg_vmath_unary_fn f2[4] = {b->exp_f32, b->log_f32, b->tanh_f32, b->sigmoid_f32};
    static const int lens[] = {VM_ST_N, 5, 17};
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 3; l++) {
            const float *in = x + (l == 0 ? 0 : 1); /* an odd start address */
            f1[k](lens[l], in, y1);
            f2[k](lens[l], in, y2);
            for (int i = 0; i < lens[l]; i++)
                if (!vm_close(y1[i], y2[i])) {
                    snprintf(why, n, "%s(%.9g) = %.9g, the baseline gives %.9g", names[k],
                             (double)in[i], (double)y1[i], (double)y2[i]);
                    return -1;
                }
        }
    /* erf (each build within 1.5 ulp of erf: within 3 of each other), gelu and
     * gelu_tanh (within 2 ulp of x each) and their gradients (g = 1.5; the
     * bounds of vmath.h, widened for the difference of two builds) */
    for (int l = 0; l < 3; l++) {
        const float *in = x + (l == 0 ? 0 : 1);
        float g[VM_ST_N];
        for (int i = 0; i < lens[l]; i++) g[i] = 1.5f;
        t->erf_f32(lens[l], in, y1);
        b->erf_f32(lens[l], in, y2);
        for (int i = 0; i < lens[l]; i++)
            if (!vm_close(y1[i], y2[i]) &&
                !vm_close_abs(y1[i], y2[i], 3.0 * fabs((double)nextafterf(y2[i], INFINITY) - y2[i]))) {
                snprintf(why, n, "erf(%.9g) = %.9g, the baseline gives %.9g", (double)in[i],
                         (double)y1[i], (double)y2[i]);
                return -1;
            }
        static const char *gnames[4] = {"gelu", "gelu_tanh", "gelu gradient", "gelu_tanh gradient"};
        for (int k = 0; k < 4; k++) {
            if (k < 2) {
                (k == 0 ? t->gelu_f32 : t->gelu_tanh_f32)(lens[l], in, y1);
                (k == 0 ? b->gelu_f32 : b->gelu_tanh_f32)(lens[l], in, y2);
            } else {
                (k == 2 ? t->gelu_grad_f32 : t->gelu_tanh_grad_f32)(lens[l], g, in, y1);
                (k == 2 ? b->gelu_grad_f32 : b->gelu_tanh_grad_f32)(lens[l], g, in, y2);
            }
            for (int i = 0; i < lens[l]; i++) {
                double ax = fabs((double)in[i]);
                double tol = k < 2 ? 4.0 * (ax > 1e-30 ? ax : 1e-30) * 1.1920928955078125e-07
                                   : 48.0 * (ax > 1.0 ? ax : 1.0) * 5.9604644775390625e-08;
                if (!vm_close_abs(y1[i], y2[i], tol)) {
                    snprintf(why, n, "%s(%.9g) = %.9g, the baseline gives %.9g", gnames[k],
                             (double)in[i], (double)y1[i], (double)y2[i]);
                    return -1;
                }
            }
        }
    }
    /* the reductions: every length up to 2 x 16 lanes + 3, then the whole array */
    for (int len = 0; len <= VM_ST_N; len += len < 35 ? 1 : VM_ST_N - 35) {
        /* xs + 1: an odd start address; len <= VM_ST_N stays inside xs */
        double r1[6] = {t->sum_f32(len, xs + 1), t->sum_f64(len, xd), t->sumsq_f32(len, xs + 1),
                        t->sumsq_f64(len, xd), t->dot_f32(len, xs + 1, xs), t->dot_f64(len, xd, xd + 1)};
        double r2[6] = {b->sum_f32(len, xs + 1), b->sum_f64(len, xd), b->sumsq_f32(len, xs + 1),
                        b->sumsq_f64(len, xd), b->dot_f32(len, xs + 1, xs), b->dot_f64(len, xd, xd + 1)};
        for (int k = 0; k < 6; k++)
            if (!same64(r1[k], r2[k])) {
                snprintf(why, n, "%s of %d elements = %.17g, the baseline gives %.17g",
                         (const char *[]){"sum_f32", "sum_f64", "sumsq_f32", "sumsq_f64", "dot_f32",
                                          "dot_f64"}[k],
                         len, r1[k], r2[k]);
                return -1;
            }
        if (len < 1) continue;
        /* finite values only from x + 25 on (special[] is first): max/min, then with a
         * NaN in the vector body or the tail */
        for (int nanpos = -1; nanpos < len; nanpos += len > 4 ? len / 3 + 1 : 1) {
            float xf[VM_ST_N];
            double xg[VM_ST_N];
            for (int i = 0; i < len; i++) {
                xf[i] = x[ns + (i % (VM_ST_N - ns))] + (float)i;
                xg[i] = (double)xf[i] * -1.5;
            }
            if (nanpos >= 0) xf[nanpos] = NAN, xg[nanpos] = NAN;
            double m1[4] = {t->max_f32(len, xf), t->min_f32(len, xf), t->max_f64(len, xg),
                            t->min_f64(len, xg)};
            double m2[4] = {b->max_f32(len, xf), b->min_f32(len, xf), b->max_f64(len, xg),
                            b->min_f64(len, xg)};
            for (int k = 0; k < 4; k++)
                if (!same64(m1[k], m2[k])) {
                    snprintf(why, n, "%s of %d elements (NaN at %d) = %g, the baseline gives %g",
                             (const char *[]){"max_f32", "min_f32", "max_f64", "min_f64"}[k],
                             len, nanpos, m1[k], m2[k]);
                    return -1;
                }
        }
    }
    /* column sums of a strided block: 0 to 9 rows of 23 columns, row stride 29 */
    for (int rows = 0; rows <= 9; rows++) {
        static float cf[9 * 29];
        static double cd[9 * 29];
        for (int i = 0; i < 9 * 29; i++) {
            cf[i] = x[ns + i % (VM_ST_N - ns)] * (float)(1 + i % 5);
            cd[i] = (double)cf[i] / 3.0;
        }
        double a1[23], a2[23], d1[23], d2[23];
        for (int j = 0; j < 23; j++) a1[j] = a2[j] = d1[j] = d2[j] = j * 0.5;
        t->acc_f32(rows, 23, cf, 29, a1);
        b->acc_f32(rows, 23, cf, 29, a2);
        t->acc_f64(rows, 23, cd, 29, d1);
        b->acc_f64(rows, 23, cd, 29, d2);
        for (int j = 0; j < 23; j++)
            if (!same64(a1[j], a2[j]) || !same64(d1[j], d2[j])) {
                snprintf(why, n, "column sums of %d rows differ in column %d", rows, j);
                return -1;
            }
        /* column maxima and minima, with a NaN in some columns and signed zeros */
        if (rows > 2) cf[2 * 29 + 5] = NAN, cd[29 + 7] = NAN, cf[3] = -0.0f, cd[4] = 0.0;
        for (int k = 0; k < 2; k++) {
            for (int j = 0; j < 23; j++) {
                a1[j] = a2[j] = d1[j] = d2[j] = k ? INFINITY : -INFINITY;
                if (j == 3) a1[j] = a2[j] = 0.0; /* an accumulator at +0, then -0 arrives */
            }
            (k ? t->accmin_f32 : t->accmax_f32)(rows, 23, cf, 29, a1);
            (k ? b->accmin_f32 : b->accmax_f32)(rows, 23, cf, 29, a2);
            (k ? t->accmin_f64 : t->accmax_f64)(rows, 23, cd, 29, d1);
            (k ? b->accmin_f64 : b->accmax_f64)(rows, 23, cd, 29, d2);
            for (int j = 0; j < 23; j++)
                if (!same64(a1[j], a2[j]) || !same64(d1[j], d2[j])) {
                    snprintf(why, n, "column %s of %d rows differ in column %d",
                             k ? "minima" : "maxima", rows, j);
                    return -1;
                }
        }
    }
    /* a row vector times a matrix stored by rows: 0 to 5 rows of B, whole
     * blocks of 64 (float32) or 32 (float64) columns and the tails, a of
     * stride 2, alpha not 1 */
    {
        enum { RM_LD = 131 };
        static float bf[5 * RM_LD], cf1[RM_LD], cf2[RM_LD];
        static double bd[5 * RM_LD], cd1[RM_LD], cd2[RM_LD];
        for (int i = 0; i < 5 * RM_LD; i++) {
            bf[i] = xs[i % (VM_ST_N + 1)] * (float)(1 + i % 7) * 0.125f;
            bd[i] = (double)bf[i] * 1.0000001;
        }
        static const int ncols[] = {0, 1, 17, 32, 45, 64, 77, 128, 130};
        for (int k = 0; k <= 5; k++)
            for (int c = 0; c < (int)(sizeof ncols / sizeof ncols[0]); c++) {
                int nc = ncols[c];
                for (int j = 0; j < RM_LD; j++) {
                    cf1[j] = cf2[j] = (float)j * 0.25f;
                    cd1[j] = cd2[j] = (double)j / 3.0;
                }
                t->rowmat_f32(k, nc, 1.5f, xs + 1, 2, bf, RM_LD, cf1);
                b->rowmat_f32(k, nc, 1.5f, xs + 1, 2, bf, RM_LD, cf2);
                t->rowmat_f64(k, nc, -0.75, xd, 2, bd, RM_LD, cd1);
                b->rowmat_f64(k, nc, -0.75, xd, 2, bd, RM_LD, cd2);
                for (int j = 0; j < RM_LD; j++)
                    if (!same64(cf1[j], cf2[j]) || !same64(cd1[j], cd2[j])) {
                        snprintf(why, n, "rowmat of %d rows and %d columns differs in column %d",
                                 k, nc, j);
                        return -1;
                    }
            }
    }
    /* gelu with its derivative: the bits of this build's gelu and of its
     * gradient with g = 1 (the backward multiplies by g later) */
    for (int l = 0; l < 3; l++) {
        const float *in = x + (l == 0 ? 0 : 1);
        float one[VM_ST_N], yg[VM_ST_N], dg[VM_ST_N];
        for (int i = 0; i < lens[l]; i++) one[i] = 1.0f;
        t->gelu_fwd_grad_f32(lens[l], in, yg, dg);
        t->gelu_f32(lens[l], in, y1);
        t->gelu_grad_f32(lens[l], one, in, y2);
        for (int i = 0; i < lens[l]; i++)
            if (!same64(yg[i], y1[i]) || !same64(dg[i], y2[i])) {
                snprintf(why, n, "gelu with its derivative at %.9g: %.9g, %.9g; separately %.9g, %.9g",
                         (double)in[i], (double)yg[i], (double)dg[i], (double)y1[i], (double)y2[i]);
                return -1;
            }
    }
    /* layer_norm's row loops: the same bits as the baseline build, lengths 0
     * to 35 (the 8-lane groups and their tails) and 67, with and without
     * the weight and bias */
    for (int len = 0; len <= VM_ST_N; len += len < 35 ? 1 : VM_ST_N - 35) {
        const float *lx = xs + 1, *lg = xs, *lw = xs, *lb = xs + 1; /* inside xs */
        float ly1[VM_ST_N], ly2[VM_ST_N], lw1[VM_ST_N], lw2[VM_ST_N], lb1[VM_ST_N], lb2[VM_ST_N];
        for (int mode = 0; mode < 4; mode++) {
            const float *w = mode & 1 ? lw : NULL, *bb = mode & 2 ? lb : NULL;
            double s1[4], s2[4];
            t->ln_sums_f32(len, lx, 0.75f, s1);
            b->ln_sums_f32(len, lx, 0.75f, s2);
            t->ln_dots_f32(len, lg, w, lx, 0.25f, 1.5f, s1 + 2);
            b->ln_dots_f32(len, lg, w, lx, 0.25f, 1.5f, s2 + 2);
            int bad = 0;
            for (int k = 0; k < 4; k++) bad |= !same64(s1[k], s2[k]);
            t->ln_apply_f32(len, lx, 0.25f, 1.5f, w, bb, ly1);
            b->ln_apply_f32(len, lx, 0.25f, 1.5f, w, bb, ly2);
            for (int i = 0; i < len; i++) bad |= vm_bits(ly1[i]) != vm_bits(ly2[i]);
            for (int i = 0; i < len; i++) lw1[i] = lw2[i] = lb1[i] = lb2[i] = (float)i * 0.125f;
            t->ln_grad_f32(len, lg, w, lx, 0.25f, 1.5f, 0.1f, -0.2f, ly1, lw1, lb1);
            b->ln_grad_f32(len, lg, w, lx, 0.25f, 1.5f, 0.1f, -0.2f, ly2, lw2, lb2);
            for (int i = 0; i < len; i++)
                bad |= vm_bits(ly1[i]) != vm_bits(ly2[i]) || vm_bits(lw1[i]) != vm_bits(lw2[i]) ||
                       vm_bits(lb1[i]) != vm_bits(lb2[i]);
            if (bad) {
                snprintf(why, n, "layer_norm's row loops of %d elements (mode %d) differ from the baseline",
                         len, mode);
                return -1;
            }
        }
    }
    /* one step of each optimizer loop over 37 parameters */
    enum { P = 37 };
    float p1[P], p2[P], m1[P], m2[P], v1[P], v2[P], g[P];
    for (int i = 0; i < P; i++) g[i] = x[ns + i % (VM_ST_N - ns)] * 0.1f;
    static const float ac[8] = {0.1f, 0.999f, 0.001f, 0.01f, 31.6f, 1e-8f, 0.01f, 0.9999f};
    static const double sc[5] = {0.05, 0.9, 0.1, 0.01, 1e-8};
    for (int step = 0; step < 7; step++) {
        for (int i = 0; i < P; i++) {
            p1[i] = p2[i] = (float)i * 0.03f - 0.5f;
            m1[i] = m2[i] = (float)(i % 7) * 0.01f;
            v1[i] = v2[i] = (float)(i % 5) * 0.02f;
        }
        const char *what;
        if (step < 3) {
            what = "adam";
            t->adam_f32(P, p1, g, m1, v1, ac, step);
            b->adam_f32(P, p2, g, m2, v2, ac, step);
        } else if (step < 5) {
            what = "sgd";
            int fl = step == 3 ? TG_VM_HAS_BUF | TG_VM_DECAY : TG_VM_HAS_BUF | TG_VM_NESTEROV;
            t->sgd_f32(P, p1, g, m1, sc, fl);
            b->sgd_f32(P, p2, g, m2, sc, fl);
        } else {
            what = "rmsprop";
            int fl = step == 5 ? TG_VM_HAS_BUF | TG_VM_DECAY : 0;
            t->rmsprop_f32(P, p1, g, v1, m1, sc, fl);
            b->rmsprop_f32(P, p2, g, v2, m2, sc, fl);
        }
        if (memcmp(p1, p2, sizeof p1) || memcmp(m1, m2, sizeof m1) || memcmp(v1, v2, sizeof v1)) {
            snprintf(why, n, "the %s step differs from the baseline", what);
            return -1;
        }
    }
    return 0;
}

#endif

/* ---- the choice ----------------------------------------------------------- */
static _Atomic(const tg_vmath_table *) chosen;
static tg_mutex choose_lock = TG_MUTEX_INIT;
static int selftest_runs;

#ifdef TG_VMATH_HAVE_SIMD
/* Path i's table after its self-test (choose_lock held): NULL if it fails. */
static const tg_vmath_table *simd_tested(int i) {
    simd_path *p = &simd_paths[i];
    if (p->result == 0) {
        int64_t t0 = tg_dispatch_now_ns();
        char why[sizeof p->why] = "";
        p->result = selftest_table(simd_table(i), why, sizeof why) == 0 ? 1 : -1;
        p->us = (double)(tg_dispatch_now_ns() - t0) / 1e3;
        selftest_runs++;
        if (p->result < 0) {
            snprintf(p->why, sizeof p->why, "%s", why);
            tg_dispatch_log("vmath: the %s kernels failed their self-test (%s); "
                            "not using them", p->name, why);
        }
    }
    return p->result > 0 ? simd_table(i) : NULL;
}

/* The first path from `from` on (best first) that the CPU has and that
 * passes its self-test, else NULL (choose_lock held). */
static const tg_vmath_table *first_good(int from) {
    for (int i = from; i < N_SIMD; i++)
        if (have_simd(i)) {
            const tg_vmath_table *t = simd_tested(i);
            if (t) return t;
        }
    return NULL;
}
#endif

/* The default choice (choose_lock held): the best SIMD build the CPU has
 * that passes its self-test, unless TAPEGRAD_VMATH says "baseline"; with
 * TAPEGRAD_VMATH naming a SIMD build, that build (if the CPU has it; if it
 * fails its self-test, the next one down). */
static const tg_vmath_table *default_table(void) {
    const char *force = getenv("TAPEGRAD_VMATH");
    int want_simd = 1, from = 0;
    if (force && *force) {
        if (strcmp(force, "baseline") == 0) {
            want_simd = 0;
        } else if (foreign_path(force)) {
            tg_dispatch_log("vmath: TAPEGRAD_VMATH=%s refused: %s; using the default", force,
                            foreign_path(force));
        } else if (!known_path(force)) {
            tg_dispatch_log("vmath: TAPEGRAD_VMATH=%s is not a path (expected " VM_PATH_NAMES
                            "); using the default", force);
        }
#ifdef TG_VMATH_HAVE_SIMD
        else {
            int i = find_simd(force);
            if (i >= 0 && have_simd(i))
                from = i;
            else if (i >= 0)
                tg_dispatch_log("vmath: TAPEGRAD_VMATH=%s refused: %s; using the default", force,
                                simd_missing(i));
        }
#endif
    }
#ifdef TG_VMATH_HAVE_SIMD
    if (want_simd) {
        const tg_vmath_table *t = first_good(from);
        if (t) return t;
    }
#endif
    (void)want_simd; /* a build without a SIMD path (cl.exe) only parses it */
    (void)from;
    return &table_base;
}

const tg_vmath_table *tg_vmath(void) {
    const tg_vmath_table *t = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!t) {
        tg_mutex_lock(&choose_lock);
        t = atomic_load_explicit(&chosen, memory_order_relaxed);
        if (!t) {
            t = default_table();
            atomic_store_explicit(&chosen, t, memory_order_release);
        }
        tg_mutex_unlock(&choose_lock);
    }
    return t;
}

int tg_vmath_force(const char *name) {
    int rc = -1;
    tg_mutex_lock(&choose_lock);
    const tg_vmath_table *t = NULL;
    if (name == NULL) t = default_table();
    else if (strcmp(name, "baseline") == 0) t = &table_base;
#ifdef TG_VMATH_HAVE_SIMD
    else {
        int i = find_simd(name);
        if (i >= 0 && have_simd(i)) t = simd_tested(i);
    }
#endif
    if (t) {
        atomic_store(&chosen, t);
        rc = 0;
    }
    tg_mutex_unlock(&choose_lock);
    return rc;
}

const char *tg_vmath_refusal(const char *name) {
    if (!known_path(name))
        return "not a vector-math path (expected " VM_PATH_NAMES ")";
    if (strcmp(name, "baseline") == 0) return "";
    if (foreign_path(name)) return foreign_path(name);
#ifdef TG_VMATH_HAVE_SIMD
    int i = find_simd(name);
    if (!have_simd(i)) return simd_missing(i);
    tg_mutex_lock(&choose_lock);
    int failed = simd_paths[i].result < 0;
    tg_mutex_unlock(&choose_lock);
    return failed ? "it failed its self-test" : "";
#else
    return "no SIMD build of the vector math for this compiler or CPU";
#endif
}

int tg_vmath_paths(tg_kernel_path_info *out, int max) {
    const tg_vmath_table *cur = tg_vmath();
    int k = 0;
    tg_mutex_lock(&choose_lock);
#ifdef TG_VMATH_HAVE_SIMD
    for (int i = 0; i < N_SIMD; i++, k++) {
        if (k >= max) continue;
        const simd_path *p = &simd_paths[i];
        int usable = have_simd(i);
        out[k] = (tg_kernel_path_info){p->name, usable, p->result, cur == simd_table(i),
                                       !usable ? simd_missing(i) : p->result < 0 ? p->why : "",
                                       p->us};
    }
#endif
    if (k < max)
        out[k] = (tg_kernel_path_info){"baseline", 1, 0, cur == &table_base, "", 0};
    k++;
    tg_mutex_unlock(&choose_lock);
    return k;
}

/* ---- testing hooks -------------------------------------------------------- */
void tg_vmath_testing_reset(void) {
    tg_mutex_lock(&choose_lock);
#ifdef TG_VMATH_HAVE_SIMD
    for (int i = 0; i < N_SIMD; i++) {
        simd_paths[i].result = 0;
        simd_paths[i].why[0] = '\0';
        simd_paths[i].us = 0;
    }
#endif
    atomic_store(&chosen, NULL);
    tg_mutex_unlock(&choose_lock);
}

int tg_vmath_testing_set_path_table(const char *name, const tg_vmath_table *t) {
#ifdef TG_VMATH_HAVE_SIMD
    int i = find_simd(name);
    if (i < 0) return -1;
    atomic_store(&simd_paths[i].override, t);
    tg_vmath_testing_reset();
    return 0;
#else
    (void)name;
    (void)t;
    return -1;
#endif
}

#ifdef TG_VMATH_HAVE_SIMD
/* tg_vmath_testing_break: the build's own table with a tanh that is right
 * in the vector body and wrong on the last element of a length that is not
 * a multiple of 8 (the loop's tail), as a wrong tail mask would be. */
static tg_vmath_table broken_table;
static tg_vmath_unary_fn broken_real_tanh;
static void broken_tanh(int64_t n, const float *x, float *y) {
    broken_real_tanh(n, x, y);
    if (n % 8) y[n - 1] = 0.25f - y[n - 1];
}
#endif

int tg_vmath_testing_break(const char *name) {
#ifdef TG_VMATH_HAVE_SIMD
    int i = find_simd(name);
    if (i < 0) return -1;
    for (int j = 0; j < N_SIMD; j++) atomic_store(&simd_paths[j].override, NULL);
    broken_table = *simd_paths[i].real;
    broken_real_tanh = simd_paths[i].real->tanh_f32;
    broken_table.tanh_f32 = broken_tanh;
    return tg_vmath_testing_set_path_table(name, &broken_table);
#else
    (void)name;
    return -1;
#endif
}

int tg_vmath_testing_set_table(const tg_vmath_table *t) {
#ifdef TG_VMATH_HAVE_SIMD
    if (t == NULL)
        for (int i = 1; i < N_SIMD; i++) atomic_store(&simd_paths[i].override, NULL);
    return tg_vmath_testing_set_path_table(simd_paths[0].name, t);
#else
    (void)t;
    return -1;
#endif
}

int tg_vmath_testing_selftest_runs(void) {
    tg_mutex_lock(&choose_lock);
    int n = selftest_runs;
    tg_mutex_unlock(&choose_lock);
    return n;
}
