/*
 * vmath.h -- vectorized float32 exp, log, tanh, sigmoid and erf, GELU and
 * its gradient, and the contiguous reduction loops (sum, max, min) used by
 * the ops.
 *
 * Why not call expf() in a loop?  libm's expf is accurate but it is a
 * function call per element that the compiler cannot vectorize: about 5 ns
 * an element here, 10-20x slower than the memory can deliver the data.  The
 * functions below compute the same values with a short polynomial that the
 * compiler turns into SIMD code (8 floats per instruction with AVX2), so a
 * 10^7-element exp is limited by memory bandwidth, like an add.
 *
 * How each function works (vmath_impl.h has the code and the derivations):
 *
 *   exp(x)  = 2^n * e^r with n = round(x / ln 2) and r = x - n ln 2 in
 *             [-ln2/2, ln2/2] (Cody-Waite: ln 2 split in a high part with
 *             trailing zero bits and a low correction, so n*hi is exact);
 *             e^r = 1 + r + r^2 P(r), P of degree 4 fitted for relative error;
 *             2^n is built from its bits, in two halves so that results in
 *             the subnormal range are rounded once, correctly.
 *   log(x)  = k ln 2 + log(m) with x = m 2^k, m in [sqrt(1/2), sqrt(2));
 *             log(1+f) = f - f^2/2 + f^3 Q(f), Q of degree 7.
 *   tanh(x) = x + x^3 R(x^2) for |x| < 0.625, else sign(x) (1 - 2/(e^{2|x|}+1)).
 *   sigmoid(x) = 1/(1+t) for x >= 0, t/(1+t) for x < 0, with t = e^{-|x|}
 *             (no overflow, no cancellation on either side).
 *   erf(x)  = x + x Q(x^2) for |x| < 1, else sign(x) (1 - e^{-x^2} R(|x|)),
 *             R fitted on [1, 4] (erf rounds to +-1 from 3.92 on).
 *   gelu(x) = x Phi(x) through the Gaussian tail h(a) = Phi(-a), a = |x|:
 *             x - x h(a) for x > 0 (one FMA), x h(a) otherwise, with
 *             h(a) = e^{-a^2/2} H(a) and H one polynomial of degree 12 in
 *             a - 1 fitted for the absolute error of h on [0, 5.5426]
 *             (one branch where erf needs two); gradient Phi(x) + x phi(x)
 *             with the same e^{-a^2/2}; gelu_tanh(x) =
 *             0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) and its
 *             gradient through the tanh above.
 *
 * Accuracy (measured against float64 libm on every float32 in [-104, 104]
 * at a stride, plus the special values; tests/c/test_vmath.c and
 * tests/python/test_vmath.py assert these bounds):
 *
 *     exp      <= 1 ulp      log      <= 1 ulp
 *     tanh     <= 2 ulp      sigmoid  <= 2 ulp
 *     erf      <= 1.5 ulp    (measured 1.29 baseline, 0.99 with FMA, on every
 *                            float32 in [1e-3, 4.5] and a sweep of the rest)
 *
 * GELU's error is absolute, because Phi(x) is tiny for x < 0 (PyTorch's
 * formula 0.5 x (1 + erf(x / sqrt 2)) cancels there): |gelu(x) error| <= 2
 * ulp of x (measured 1.49 baseline, 1.14 with FMA); the gradient g * f'(x)
 * with g = 1: |error| <= 3 * 2^-24 for gelu (measured 1.77 baseline, 1.70
 * with FMA), <= 12 * 2^-24 for gelu_tanh (measured 9.4, at x near 4.9
 * where 1 - tanh^2 cancels); gelu_tanh itself <= 2 ulp of x.  Measured on
 * [-12, 12] at a step of 1e-5 (tests/c/test_vmath.c).
 *
 * (libm's expf and logf are correctly rounded to within 0.5-1 ulp.)  Special
 * values follow C99 Annex F: exp(+inf) = +inf, exp(-inf) = 0, overflow to
 * +inf above 88.72, subnormal results below -87.3 rounded once, 0 below
 * -103.97; log(0) = -inf, log(x < 0) = NaN, log(+inf) = +inf, subnormal x
 * handled; tanh(+-inf) = +-1; tanh(-0) = -0; sigmoid(+inf) = 1,
 * sigmoid(-inf) = 0; erf(+-inf) = +-1, erf(-0) = -0, erf of a subnormal
 * rounded once (with FMA) or twice; gelu(x) = -0 for x < -5.5426 and
 * gelu(-0) = -0, as PyTorch's; gelu(+inf) = +inf, gelu(-inf) = NaN
 * (-inf * 0, as the formula and PyTorch's float32 kernel give), and the
 * gradients at +-inf are NaN (inf * 0), as PyTorch's; NaN in gives NaN out
 * everywhere.
 *
 * Dispatch: every function is compiled from the same source (vmath_impl.h)
 * once as the baseline (16-byte vectors: SSE2 on x86-64, NEON on arm64, 4
 * floats a step, no fused multiply-add) and once per SIMD build of the
 * architecture: on x86-64 AVX-512F (vmath_avx512.c, 16 floats a step, with
 * FMA) and AVX2+FMA (vmath_avx2.c, 8 floats a step); on arm64 NEON with FMA
 * (vmath_neon.c, 4 floats a step).  The first call picks the best SIMD build
 * the CPU (and the OS: XCR0 for the ymm/zmm state) supports and that passes
 * its self-test against the baseline, else the next one down (dispatch.h).
 * The sums give bit-identical results on every path (fixed accumulation
 * order, no FMA); exp/log/tanh/sigmoid may differ from the baseline by one
 * ulp (FMA rounds once where the baseline rounds twice), erf by up to 2.5
 * ulp and gelu by up to twice its bound (each within its own bound).  The
 * AVX-512 and AVX2 builds give the same bits for every function: each
 * element goes through the same operations with the same FMAs, only the
 * number of elements a step differs (tests/c/test_vmath.c and
 * tests/python/test_vmath_avx512.py check it).
 *
 * Memory: no function allocates or keeps a pointer.  x and y may be the
 * same array (in place), and a gradient kernel's out may be g or x; other
 * overlaps are not allowed.  None can fail.
 */
#ifndef TG_VMATH_H
#define TG_VMATH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = f(x[i]) for i < n (float32, contiguous). */
typedef void (*tg_vmath_unary_fn)(int64_t n, const float *x, float *y);

/* out[i] = g[i] * f'(x[i]) for i < n (float32, contiguous): the gradient of
 * an activation times the incoming gradient, in one pass.  out may be g or x. */
typedef void (*tg_vmath_grad_fn)(int64_t n, const float *g, const float *x, float *out);

/* One instruction set's version of every kernel. */
typedef struct {
    const char *name; /* "avx512", "avx2", "neon" or "baseline" */
    tg_vmath_unary_fn exp_f32, log_f32, tanh_f32, sigmoid_f32;
    /* the float64 sum of x[0..n) in a fixed order (16 interleaved partial
     * sums, then a fixed pairwise tree): the same bits on every path */
    double (*sum_f32)(int64_t n, const float *x);
    double (*sum_f64)(int64_t n, const double *x);
    /* the same order for the sum of squares (2-norms) */
    double (*sumsq_f32)(int64_t n, const float *x);
    double (*sumsq_f64)(int64_t n, const double *x);
    /* column sums: acc[j] += x[r*ld + j] for r < rows, j < n, in float64,
     * in a fixed order (four rows at a time) */
    void (*acc_f32)(int64_t rows, int64_t n, const float *x, int64_t ld, double *acc);
    void (*acc_f64)(int64_t rows, int64_t n, const double *x, int64_t ld, double *acc);
    /* max / min of x[0..n), n >= 1; NaN if any element is NaN */
    double (*max_f32)(int64_t n, const float *x);
    double (*min_f32)(int64_t n, const float *x);
    double (*max_f64)(int64_t n, const double *x);
    double (*min_f64)(int64_t n, const double *x);
    /* one Adam/AdamW step over n float32 parameters (see vmath_impl.h for
     * the constants c[8] and the mode); p, g, m, v must not overlap */
    void (*adam_f32)(int64_t n, float *p, const float *g, float *m, float *v, const float *c,
                     int mode);
    /* SGD and RMSprop over n float32 parameters, in float64 arithmetic with
     * every stored value rounded to float32 (the bits of the general loop in
     * optim.c); c = {lr, momentum, dampening (SGD) or alpha (RMSprop),
     * weight_decay, eps}; flags: TG_VM_* below; b (momentum buffer) may be
     * NULL without TG_VM_HAS_BUF; the arrays must not overlap */
    void (*sgd_f32)(int64_t n, float *p, const float *g, float *b, const double *c, int flags);
    void (*rmsprop_f32)(int64_t n, float *p, const float *g, float *square_avg, float *b,
                        const double *c, int flags);
    /* erf; gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) and gelu with
     * approximate='tanh' (vmath_impl.h has the formulas) */
    tg_vmath_unary_fn erf_f32, gelu_f32, gelu_tanh_f32;
    /* g * d gelu / dx and g * d gelu_tanh / dx */
    tg_vmath_grad_fn gelu_grad_f32, gelu_tanh_grad_f32;
    /* layer_norm's row loops (csrc/ops/nn.c has the formulas; vmath_impl.h
     * the fixed order of the sums): the same bits on every build */
    void (*ln_sums_f32)(int64_t n, const float *x, float c, double *s);
    void (*ln_dots_f32)(int64_t n, const float *g, const float *w, const float *x, float mu,
                        float r, double *s);
    void (*ln_apply_f32)(int64_t n, const float *x, float mu, float r, const float *w,
                         const float *b, float *y);
    void (*ln_grad_f32)(int64_t n, const float *g, const float *w, const float *x, float mu,
                        float r, float m1, float m2, float *dx, float *dw, float *db);
    /* y = gelu(x) and d = d gelu / dx in one pass: the bits of gelu_f32 and
     * of gelu_grad_f32 with g = 1 (g * d is then gelu_grad_f32's result) */
    void (*gelu_fwd_grad_f32)(int64_t n, const float *x, float *y, float *d);
    /* the sum of x[i] * y[i] over i < n in the element type, in a fixed
     * order (64 interleaved partial sums for float32, 32 for float64, each
     * product rounded before it is added, then a fixed pairwise tree): the
     * same bits on every path.  gemm.c's products of a few rows or columns
     * (a row vector times a matrix, a matrix times a vector) */
    float (*dot_f32)(int64_t n, const float *x, const float *y);
    double (*dot_f64)(int64_t n, const double *x, const double *y);
    /* c[j] += sum over p < K of (alpha * a[p * inca]) * B[p * ldb + j] for
     * j < n, added in the order p = 0, 1, ..., each product rounded before
     * it is added (gemm.c's row vector times a matrix stored by rows) */
    void (*rowmat_f32)(int64_t K, int64_t n, float alpha, const float *a, int64_t inca,
                       const float *B, int64_t ldb, float *c);
    void (*rowmat_f64)(int64_t K, int64_t n, double alpha, const double *a, int64_t inca,
                       const double *B, int64_t ldb, double *c);
    /* column maxima / minima into a float64 row: acc[j] = max (min) of acc[j]
     * and x[r*ld + j] for r < rows, a NaN sticking (reduce.c's rule) */
    void (*accmax_f32)(int64_t rows, int64_t n, const float *x, int64_t ld, double *acc);
    void (*accmax_f64)(int64_t rows, int64_t n, const double *x, int64_t ld, double *acc);
    void (*accmin_f32)(int64_t rows, int64_t n, const float *x, int64_t ld, double *acc);
    void (*accmin_f64)(int64_t rows, int64_t n, const double *x, int64_t ld, double *acc);
} tg_vmath_table;

/* Flags of sgd_f32 / rmsprop_f32. */
enum {
    TG_VM_HAS_BUF = 1,   /* a momentum buffer is updated */
    TG_VM_FIRST = 2,     /* SGD: the first step (the buffer starts as the gradient) */
    TG_VM_NESTEROV = 4,  /* SGD: Nesterov momentum */
    TG_VM_DECAY = 8      /* weight_decay != 0 (L2: g += weight_decay * p) */
};

/* The kernels for this CPU (chosen once, thread-safe). Never NULL.
 * The best SIMD build (AVX-512F, then AVX2 + FMA on x86-64; NEON on arm64)
 * that the CPU has and that passes a known-answer self-test against the
 * baseline build before its first use (vmath.c, selftest_table; dispatch.h
 * describes the scheme); a build that fails is not used, the next one down
 * is tried, and the dispatch log says why (once).  The AVX-512 build needs
 * both TG_CPU_AVX512 and TG_CPU_AVX2 (for FMA): TAPEGRAD_DISABLE_CPU_FEATURES
 * naming either hides it.
 * TAPEGRAD_VMATH=baseline in the environment forces the baseline version
 * (to compare the paths, or to rule the SIMD paths out when debugging);
 * TAPEGRAD_VMATH=avx512, avx2 (or neon) asks for that SIMD build (refused,
 * with a log line, on a CPU without it or on the other architecture: then
 * the default choice). */
const tg_vmath_table *tg_vmath(void);

/* A specific version, for tests and benchmarks: "baseline" always exists,
 * "avx512" and "avx2" (x86-64) or "neon" (arm64) exist when the CPU supports
 * them (NULL otherwise, or for any other name).  No self-test: the tests
 * test it. */
const tg_vmath_table *tg_vmath_by_name(const char *name);

/* Use version `name` for tg_vmath() from now on ("baseline", "avx512", "avx2", "neon"), or
 * make the default choice again (NULL).  Returns 0, or -1 if refused (an
 * unknown name, a CPU without it, a failed self-test: tg_vmath_refusal
 * says which), leaving the choice unchanged.  Process-wide; do not call
 * while other threads use the kernels.  For tests and benchmarks. */
int tg_vmath_force(const char *name);

/* Why tg_vmath_force(name) would refuse, or "" if it would not. Static. */
const char *tg_vmath_refusal(const char *name);

/* The state of every compiled version (the SIMD ones best first, then baseline), as
 * tg_gemm_paths does for the matmul kernels.  Returns the count. */
#include "dispatch.h"
int tg_vmath_paths(tg_kernel_path_info *out, int max);

/* Testing hooks, not thread-safe with running kernels:
 *   set_path_table: use t in place of the table of SIMD build `name` (NULL:
 *              the real one), then forget the choice and the self-tests, so
 *              that the next tg_vmath() tests t; -1 where there is no such
 *              SIMD build in this binary;
 *   set_table: the same for the best SIMD build of the architecture (avx512
 *              on x86-64, neon on arm64); with NULL, every build gets its
 *              real table back;
 *   reset:     forget the choice and the self-test result;
 *   selftest_runs: how many self-tests this process has run. */
int tg_vmath_testing_set_table(const tg_vmath_table *t);
int tg_vmath_testing_set_path_table(const char *name, const tg_vmath_table *t);
/* For tests of the fallback from Python: put a copy of SIMD build `name`
 * with a tanh that is wrong in the loop's tail in its place (as
 * set_path_table; every other build gets its real table back).  -1 where
 * there is no such SIMD build in this binary. */
int tg_vmath_testing_break(const char *name);
void tg_vmath_testing_reset(void);
int tg_vmath_testing_selftest_runs(void);

#ifdef __cplusplus
}
#endif

#endif /* TG_VMATH_H */
