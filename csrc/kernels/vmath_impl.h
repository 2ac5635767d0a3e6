/*
 * vmath_impl.h -- the kernels of vmath.h, written once in plain C.
 *
 * Included once per build: by vmath.c (baseline flags), vmath_avx2.c (under
 * "#pragma GCC target("avx2,fma")"), vmath_avx512.c (AVX-512F + FMA, 512-bit
 * vectors) and vmath_neon.c.  Before including, the file defines
 *
 *     VM(name)         the suffixed name of a function (exp_f32_avx2, ...)
 *     VM_FMA(a, b, c)  a*b + c: fmaf() where the target has FMA (one
 *                      rounding, one instruction), a*b + c otherwise
 *     VM_VBYTES        the SIMD register size in bytes (16, 32 or 64)
 *
 * Every loop body is branch-free (ternaries become SIMD blends), calls no
 * library function and reinterprets floats through memcpy, so the compiler
 * vectorizes each loop: 4 floats a step with SSE2, 8 with AVX2, 16 with
 * AVX-512 (there the ternaries become masked moves).  Compile
 * with -O3 (or at least -ftree-vectorize): `gcc -O3 -fopt-info-vec` lists
 * the loops it vectorized.
 *
 * Polynomial coefficients were fitted by weighted least squares for relative
 * error on 400 Chebyshev nodes of each interval at 40-digit precision
 * (mpmath), then rounded to float32; the error bounds in vmath.h are
 * measured, not derived.
 */
#include <stdint.h>
#include <string.h>

#include "compiler.h"
#include "vmath.h"

static inline uint32_t VM(bits)(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static inline float VM(from_bits)(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

/* ---- exp ------------------------------------------------------------------
 * 1. Clamp x to [-104, 89]: below -103.97 the result rounds to 0, above
 *    88.73 it overflows to inf, and the clamped values still produce exactly
 *    those results.  A NaN fails both comparisons and flows through.
 * 2. n = round(x * log2(e)).  Adding 1.5 * 2^23 pushes the fraction bits out
 *    of a float, so the sum is rounded to an integer, and its low mantissa
 *    bits hold n: no float->int conversion (undefined for NaN) is needed.
 * 3. r = x - n ln2, in two steps with ln2 = HI + LO: HI has only 10
 *    significant bits, so n * HI (|n| <= 150) is exact and the subtraction
 *    x - n*HI loses nothing (Cody and Waite's trick).
 * 4. e^r = 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= ln2/2.
 * 5. times 2^n, built from the exponent bits (n + 127) << 23.  2^n itself is
 *    not a normal float for n < -126, so scale by 2^(n/2) twice: the first
 *    product is exact and the second rounds once, even into subnormals. */
#define VM_EXP_LOG2E 1.44269502f
#define VM_EXP_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define VM_LN2_HI 0.693359375f
#define VM_LN2_LO -2.12194440e-4f

/* The reduction and polynomial of e^x shared by exp1 and exp_neg1: x is
 * already clamped; returns p with e^x = p * 2^n (p within [0.7, 1.42]). */
static inline float VM(exp_reduced)(float x, int32_t *n_out) {
    float kf = VM_FMA(x, VM_EXP_LOG2E, VM_EXP_MAGIC);
    *n_out = (int32_t)(VM(bits)(kf) - VM(bits)(VM_EXP_MAGIC));
    kf -= VM_EXP_MAGIC;
    float r = VM_FMA(kf, -VM_LN2_HI, x);
    r = VM_FMA(kf, -VM_LN2_LO, r);
    float p = VM_FMA(0.0013751407f, r, 0.0083689159f);
    p = VM_FMA(p, r, 0.041669533f);
    p = VM_FMA(p, r, 0.16666518f);
    p = VM_FMA(p, r, 0.49999988f);
    p = VM_FMA(p, r * r, r) + 1.0f;
    return p;
}

static inline float VM(exp1)(float x) {
    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;
    int32_t n;
    float p = VM(exp_reduced)(x, &n);
    int32_t n1 = n >> 1, n2 = n - n1;
    float s1 = VM(from_bits)((uint32_t)(n1 + 127) << 23);
    float s2 = VM(from_bits)((uint32_t)(n2 + 127) << 23);
    return p * s1 * s2;
}

/* e^x for x <= 0 whose result is a normal float or negligible: the
 * function above without its upper clamp and without the two-step scaling
 * for subnormal results (x is clamped to -87, where e^x = 1.6e-38 is still
 * normal, so one multiplication by 2^n is exact).  For x in [-87, 0] it gives
 * exp1's bits; below, 0 (so e^-inf = 0, and inf * e^-inf = NaN as with exp1).
 * gelu uses it for e^{-x^2/2}, where the difference is below 1e-36 in the
 * result. */
static inline float VM(exp_neg1)(float x0) {
    float x = x0 < -87.0f ? -87.0f : x0;
    int32_t n;
    float p = VM(exp_reduced)(x, &n);
    p *= VM(from_bits)((uint32_t)(n + 127) << 23);
    return x0 < -87.0f ? 0.0f : p;
}

/* ---- log ------------------------------------------------------------------
 * 1. Subnormal x (below 2^-126) is multiplied by 2^23 first (k -= 23).
 * 2. Split x = m * 2^k with m in [sqrt(1/2), sqrt(2)): subtracting the bits
 *    of sqrt(1/2) moves that boundary to an exponent step, so the exponent
 *    field of the difference is k and the mantissa bits, added back, are m.
 * 3. f = m - 1 is exact (Sterbenz); log(1+f) = f - f^2/2 + f^3 Q(f) on
 *    [-0.293, 0.414].
 * 4. + k ln2, again split in HI (exact product) and LO, summing the small
 *    terms first.
 * 5. Special values by blends: +inf -> +inf, 0 -> -inf, negative -> NaN,
 *    NaN -> NaN. */
#define VM_SQRTHALF_BITS 0x3f3504f3u

static inline float VM(log1)(float x) {
    int sub = x < 1.17549435e-38f; /* also true for 0 and negatives: fixed below */
    float xs = sub ? x * 8388608.0f : x;
    int32_t kadj = sub ? -23 : 0;
    uint32_t u = VM(bits)(xs) - VM_SQRTHALF_BITS;
    int32_t k = ((int32_t)u >> 23) + kadj;
    float m = VM(from_bits)((u & 0x007fffffu) + VM_SQRTHALF_BITS);
    float f = m - 1.0f;
    float kf = (float)k;
    float q = VM_FMA(-0.073628679f, f, 0.12620327f);
    q = VM_FMA(q, f, -0.13202104f);
    q = VM_FMA(q, f, 0.14227115f);
    q = VM_FMA(q, f, -0.16621371f);
    q = VM_FMA(q, f, 0.19999826f);
    q = VM_FMA(q, f, -0.25000852f);
    q = VM_FMA(q, f, 0.33333355f);
    float f2 = f * f;
    float y = f2 * f * q;
    y = VM_FMA(kf, VM_LN2_LO, y);
    y = VM_FMA(-0.5f, f2, y);
    y = f + y;
    y = VM_FMA(kf, VM_LN2_HI, y);
    y = x == TG_INFF ? x : y;
    y = x == 0.0f ? -TG_INFF : y;
    y = x < 0.0f ? TG_NANF : y;
    y = x != x ? x : y;
    return y;
}

/* ---- tanh -----------------------------------------------------------------
 * Small |x|: the odd polynomial x + x^3 R(x^2) (no cancellation near 0).  Otherwise 1 - 2/(e^{2|x|} + 1) with x's sign: the
 * subtraction is mild (the result is above 0.55) and e^{2|x|} = inf gives
 * exactly 1.  Both are computed and one is selected, branch-free. */
static inline float VM(tanh1)(float x) {
    float ax = VM(from_bits)(VM(bits)(x) & 0x7fffffffu);
    float x2 = x * x;
    float p = VM_FMA(-0.0057189628f, x2, 0.020653125f);
    p = VM_FMA(p, x2, -0.053744659f);
    p = VM_FMA(p, x2, 0.13331513f);
    p = VM_FMA(p, x2, -0.33333287f);
    float small = VM_FMA(x * x2, p, x);
    float e = VM(exp1)(2.0f * ax);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float y = ax < 0.625f ? small : big;
    /* tanh is odd: give the result x's sign (this also makes tanh(-0) = -0,
     * which the polynomial alone would round to +0) */
    return VM(from_bits)((VM(bits)(y) & 0x7fffffffu) | (VM(bits)(x) & 0x80000000u));
}

/* ---- sigmoid --------------------------------------------------------------
 * t = e^{-|x|} is in (0, 1], so neither form overflows: 1/(1+t) for x >= 0
 * and t/(1+t) for x < 0 (which keeps full relative accuracy for very
 * negative x, where 1 - 1/(1+e^{-x}) would cancel to 0). */
static inline float VM(sigmoid1)(float x) {
    float t = VM(exp1)(VM(from_bits)(VM(bits)(x) | 0x80000000u));
    float d = 1.0f + t;
    return x >= 0.0f ? 1.0f / d : t / d;
}

/* ---- erf ------------------------------------------------------------------
 * With a = |x| (erf is odd: the sign of x is put back at the end, which also
 * gives erf(-0) = -0):
 *   a < 1:  erf(a) = a + a Q(a^2), Q of degree 6 in a^2 (Q(0) = 2/sqrt(pi) - 1,
 *           so the leading term a is exact and Q's error is damped);
 *   a >= 1: erf(a) = 1 - erfc(a), erfc(a) = e^{-a^2} R(a), R of degree 8 in
 *           a - 2.5 fitted on [1, 4] for the absolute error of erfc
 *           (erfc(1) = 0.157, so the subtraction loses nothing that
 *           matters).  a is clamped to 4 in R, and above 3.9192057 (where
 *           erfc(a) falls below half an ulp of 1) the result is exactly 1,
 *           as erff's; e^{-a^2} is 0 for infinite a.
 * Fitted errors (float32 coefficients, fitted one at a time, each after the
 * ones before it were rounded): |dQ| < 1.3e-9, |d erfc| < 2.5e-9; the
 * measured error of the whole float32 computation is in vmath.h.  (A switch
 * at 1.25 instead of 1 was tried: the rounding in Horner's rule with a^2 up
 * to 1.56 gave 2.0 ulp near 1.25.)  Both branches are computed and one is
 * selected, so the loop is branch-free.  e^{-a^2} is computed from the
 * rounded a^2: its relative error (at most 2^-24 a^2) costs at most 0.1 ulp.
 * e = e^{-a^2} is an argument because gelu's gradient needs it too
 * (phi(x) = e^{-x^2/2} / sqrt(2 pi) with a = |x| / sqrt(2)).
 * Returns erf(a) for a >= 0 (any value for NaN: the callers select). */
static inline float VM(erf_abs)(float a, float e) {
    float s = a * a;
    float q = VM_FMA(7.920303324e-05f, s, -8.030750323e-04f);
    q = VM_FMA(q, s, 5.190733355e-03f);
    q = VM_FMA(q, s, -2.685512602e-02f);
    q = VM_FMA(q, s, 1.128361821e-01f);
    q = VM_FMA(q, s, -3.761262894e-01f);
    q = VM_FMA(q, s, 1.283791661e-01f);
    float small = VM_FMA(a, q, a);
    float u = (a < 4.0f ? a : 4.0f) - 2.5f;
    float r = VM_FMA(1.068518686e-04f, u, 2.251050755e-04f);
    r = VM_FMA(r, u, 5.433909828e-04f);
    r = VM_FMA(r, u, -6.610871642e-04f);
    r = VM_FMA(r, u, 2.302470850e-03f);
    r = VM_FMA(r, u, -8.132291026e-03f);
    r = VM_FMA(r, u, 2.491461672e-02f);
    r = VM_FMA(r, u, -7.434218377e-02f);
    r = VM_FMA(r, u, 2.108076066e-01f);
    float big = VM_FMA(-e, r, 1.0f);
    /* above 3.9192057 the correctly rounded erf is 1: there 1 - e R rounds
     * to 1 - 2^-24 for a few thousand floats more (R's error is 0.5 ulp of 1
     * at most), so the saturation is made exact, as erff's */
    big = a > 3.9192057f ? 1.0f : big;
    return a < 1.0f ? small : big;
}

static inline float VM(abs1)(float x) { return VM(from_bits)(VM(bits)(x) & 0x7fffffffu); }
/* |y| with the sign of x */
static inline float VM(signed1)(float y, float x) {
    return VM(from_bits)((VM(bits)(y) & 0x7fffffffu) | (VM(bits)(x) & 0x80000000u));
}

static inline float VM(erf1)(float x) {
    float a = VM(abs1)(x);
    float y = VM(signed1)(VM(erf_abs)(a, VM(exp1)(-(a * a))), x);
    return x != x ? x : y;
}

/* ---- gelu -----------------------------------------------------------------
 * gelu(x) = x Phi(x) with Phi the normal distribution function.  Computed
 * through the Gaussian tail h(a) = Phi(-a) = erfc(a / sqrt 2) / 2, a = |x|:
 *
 *   x > 0:   gelu(x) = x - x h(a)   (one FMA: no rounding of 1 - h)
 *   x <= 0:  gelu(x) = x h(a)
 *
 * and h(a) = e^{-a^2/2} H(a), where H(a) = erfcx(a / sqrt 2) / 2 is smooth
 * and slowly varying (0.5 at 0, about 1/(a sqrt(2 pi)) far out): one
 * polynomial of degree 12 in a - 1 on [0, 5.5426], fitted by weighted
 * minimax (Lawson's iteration) for the absolute error of h, that is with the
 * weight e^{-a^2/2} (fitted error 8.5e-9 with the float32 coefficients,
 * rounded one at a time from the highest, each refit after the rounding of
 * the ones above it).  The exact erf above needs two polynomials and both
 * are computed (the loop is branch-free); gelu's error is absolute in units
 * of x (see vmath.h), so it needs erf's relative accuracy near 0 nowhere,
 * and one branch does: about half the instructions of erf's route (the
 * exponential is the other half).  a is exact (|x|), and 1 is subtracted
 * exactly for a in [0.5, 2] where the weight is largest.
 * Above a = 5.5426 the tail is taken as 0: there x - x h rounds to x, and
 * x h (x < 0) is -0, as PyTorch's float32 formula gives (its
 * 1 + erf(x / sqrt 2) rounds to 0 from x = -5.54 on).  gelu(+inf) = +inf
 * (selected), gelu(-inf) = -inf * 0 = NaN, as PyTorch's.
 * The gradient Phi(x) + x phi(x), phi(x) = e^{-x^2/2} / sqrt(2 pi), reuses
 * the same e^{-a^2/2}: 1 + (x phi - h) for x > 0, h + x phi otherwise; at
 * x = +-inf it is inf * 0 = NaN, as PyTorch's. */
#define VM_INV_SQRT_2PI 0.398942280f
#define VM_GELU_CUT 5.5426f

/* h(a) = Phi(-a) from e = e^{-a^2/2}, for a >= 0 (any value for NaN: the
 * NaN of e flows through) */
static inline float VM(gelu_tail)(float a, float e) {
    float u = (a < VM_GELU_CUT ? a : VM_GELU_CUT) - 1.0f;
    float p = VM_FMA(5.851694596e-08f, u, -9.011181987e-07f);
    p = VM_FMA(p, u, 6.115521501e-06f);
    p = VM_FMA(p, u, -2.618498002e-05f);
    p = VM_FMA(p, u, 9.111042164e-05f);
    p = VM_FMA(p, u, -3.061268071e-04f);
    p = VM_FMA(p, u, 1.011493849e-03f);
    p = VM_FMA(p, u, -3.166158218e-03f);
    p = VM_FMA(p, u, 9.257050231e-03f);
    p = VM_FMA(p, u, -2.508563362e-02f);
    p = VM_FMA(p, u, 6.210687011e-02f);
    p = VM_FMA(p, u, -1.373640001e-01f);
    p = VM_FMA(p, u, 2.615782917e-01f);
    float h = e * p;
    return a > VM_GELU_CUT ? 0.0f : h;
}

static inline float VM(gelu1)(float x) {
    float a = VM(abs1)(x);
    float h = VM(gelu_tail)(a, VM(exp_neg1)(-0.5f * (a * a)));
    float pos = VM_FMA(-x, h, x);
    pos = a > VM_GELU_CUT ? x : pos;
    return x > 0.0f ? pos : x * h;
}

static inline float VM(gelu_grad1)(float g, float x) {
    float a = VM(abs1)(x);
    float e = VM(exp_neg1)(-0.5f * (a * a));
    float h = VM(gelu_tail)(a, e);
    float d = VM_FMA(x, e * VM_INV_SQRT_2PI, x > 0.0f ? -h : h);
    d = x > 0.0f ? d + 1.0f : d;
    return g * d;
}

/* y = gelu(x) and d = gelu'(x) together (the forward of a gelu whose
 * gradient will be needed): e and h computed once for both, each value with
 * exactly the operations of gelu1 and of gelu_grad1 without its g, so the
 * same bits as those two (and g * d later has the bits of gelu_grad1). */
static inline void VM(gelu_fwd_grad1)(float x, float *y, float *d) {
    float a = VM(abs1)(x);
    float e = VM(exp_neg1)(-0.5f * (a * a));
    float h = VM(gelu_tail)(a, e);
    float pos = VM_FMA(-x, h, x);
    pos = a > VM_GELU_CUT ? x : pos;
    *y = x > 0.0f ? pos : x * h;
    float dd = VM_FMA(x, e * VM_INV_SQRT_2PI, x > 0.0f ? -h : h);
    *d = x > 0.0f ? dd + 1.0f : dd;
}

/* gelu(x, approximate='tanh') = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
 * and its gradient (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2)
 * with t = tanh(u): the vector tanh above (<= 2 ulp) does the work. */
#define VM_GELU_K0 0.797884561f /* sqrt(2 / pi) */
#define VM_GELU_K1 0.044715f

static inline float VM(gelu_tanh1)(float x) {
    float u = VM_GELU_K0 * VM_FMA(VM_GELU_K1 * x, x * x, x);
    return 0.5f * x * (1.0f + VM(tanh1)(u));
}

static inline float VM(gelu_tanh_grad1)(float g, float x) {
    float x2 = x * x;
    float u = VM_GELU_K0 * VM_FMA(VM_GELU_K1 * x, x2, x);
    float t = VM(tanh1)(u);
    float dt = VM_FMA(-t, t, 1.0f) * VM_FMA(3.0f * VM_GELU_K1, x2, 1.0f);
    float d = VM_FMA(0.5f * x, VM_GELU_K0 * dt, 0.5f * (1.0f + t));
    return g * d;
}

/* The loops run whole vectors, then (in the 64-byte build) one step of 8
 * more with a 256-bit vector, then at most 7 elements one by one: the
 * compiler's own remainder of a 16-wide loop goes one by one through up to
 * 15, which doubles the cost of the short rows of a softmax or a loss.
 * Every element goes through the same operations either way: the same bits. */
#if VM_VBYTES > 32
#define VM_HALF_STEP(BODY)                                                     \
    for (; i + 8 <= n; i += 8)                                                 \
        for (int k = 0; k < 8; k++) BODY;
#else
#define VM_HALF_STEP(BODY)
#endif
#define VM_UNARY_LOOP(NAME)                                                    \
    void VM(NAME##_f32)(int64_t n, const float *x, float *y) {                 \
        int64_t i = 0, nv = n - n % (VM_VBYTES / 4);                           \
        for (; i < nv; i++) y[i] = VM(NAME##1)(x[i]);                          \
        VM_HALF_STEP(y[i + k] = VM(NAME##1)(x[i + k]))                         \
        for (; i < n; i++) y[i] = VM(NAME##1)(x[i]);                           \
    }
VM_UNARY_LOOP(exp)
VM_UNARY_LOOP(log)
VM_UNARY_LOOP(tanh)
VM_UNARY_LOOP(sigmoid)
VM_UNARY_LOOP(erf)
VM_UNARY_LOOP(gelu)
VM_UNARY_LOOP(gelu_tanh)

void VM(gelu_fwd_grad_f32)(int64_t n, const float *x, float *y, float *d) {
    int64_t i = 0, nv = n - n % (VM_VBYTES / 4);
    for (; i < nv; i++) VM(gelu_fwd_grad1)(x[i], &y[i], &d[i]);
    VM_HALF_STEP(VM(gelu_fwd_grad1)(x[i + k], &y[i + k], &d[i + k]))
    for (; i < n; i++) VM(gelu_fwd_grad1)(x[i], &y[i], &d[i]);
}

/* out[i] = g[i] * f'(x[i]): the first-order gradient of gelu in one pass */
#define VM_GRAD_LOOP(NAME)                                                     \
    void VM(NAME##_f32)(int64_t n, const float *g, const float *x, float *out) { \
        int64_t i = 0, nv = n - n % (VM_VBYTES / 4);                           \
        for (; i < nv; i++) out[i] = VM(NAME##1)(g[i], x[i]);                  \
        VM_HALF_STEP(out[i + k] = VM(NAME##1)(g[i + k], x[i + k]))             \
        for (; i < n; i++) out[i] = VM(NAME##1)(g[i], x[i]);                   \
    }
VM_GRAD_LOOP(gelu_grad)
VM_GRAD_LOOP(gelu_tanh_grad)

/* ---- sums -----------------------------------------------------------------
 * 16 partial sums in float64, element i going to partial i % 16.  Each
 * partial is its own chain of additions, so the compiler may put them in
 * SIMD lanes without reordering anything: the result is the same on every
 * instruction set.  The partials are combined by a fixed pairwise tree.  In
 * float64 the error stays far below float32's rounding for any n we can hold
 * in memory; for float64 input the 16 chains cut the error growth by 16
 * compared with one running sum.
 *
 * Column sums (acc) add four rows at a time, (x0 + x1) + (x2 + x3), to a
 * float64 accumulator row: a quarter of the accumulator loads and stores
 * of a row-by-row loop, and again one fixed order on every path. */
#define VM_LANES 16

static inline double VM(combine)(double *a) {
    for (int w = VM_LANES / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) a[k] += a[k + w];
    return a[0];
}

/* sum of f(x[i]) in the fixed 16-lane order, f applied in float64 */
#define VM_LANE_SUM(NAME, T, F)                                                \
    double VM(NAME##_##T)(int64_t n, const T##_t_ *x) {                        \
        double a[VM_LANES] = {0};                                              \
        int64_t i = 0;                                                         \
        for (; i + VM_LANES <= n; i += VM_LANES)                               \
            for (int k = 0; k < VM_LANES; k++) {                               \
                double v = (double)x[i + k];                                   \
                a[k] += F;                                                     \
            }                                                                  \
        for (int k = 0; i < n; i++, k++) {                                     \
            double v = (double)x[i];                                           \
            a[k] += F;                                                         \
        }                                                                      \
        return VM(combine)(a);                                                 \
    }
/* sum of x[i] * y[i] in the element type: VM_DOT_LANES interleaved partial
 * sums (four AVX-512 registers of either type: enough independent chains to
 * hide the adds' latency), each product rounded and then added (no fused
 * multiply-add, so every path gives the same bits), the lanes combined by a
 * fixed pairwise tree.  The last n % L elements go through the same lanes
 * from a zero-padded copy (a lane never holds -0, so adding 0 * 0 changes
 * no bit), and the tree is written out level by level: as two loops with
 * variable bounds, they were a chain of scalar adds through memory that
 * took two thirds of the time of a dot of 128 elements. */
#define VM_DOT_LANES_f32 64
#define VM_DOT_LANES_f64 32
#define VM_FOLD(a, w)                                                          \
    for (int k = 0; k < (w); k++) a[k] += a[k + (w)];
#define VM_DOT_TREE_f64(a)                                                     \
    VM_FOLD(a, 16) VM_FOLD(a, 8) VM_FOLD(a, 4) VM_FOLD(a, 2) VM_FOLD(a, 1)
#define VM_DOT_TREE_f32(a) VM_FOLD(a, 32) VM_DOT_TREE_f64(a)
#define VM_LANE_DOT(T)                                                         \
    T##_t_ VM(dot_##T)(int64_t n, const T##_t_ *x, const T##_t_ *y) {          \
        enum { L = VM_DOT_LANES_##T };                                         \
        T##_t_ a[L] = {0};                                                     \
        int64_t i = 0;                                                         \
        for (; i + L <= n; i += L)                                             \
            for (int k = 0; k < L; k++) a[k] += x[i + k] * y[i + k];           \
        if (i < n) {                                                           \
            T##_t_ xt[L] = {0}, yt[L] = {0};                                   \
            memcpy(xt, x + i, (size_t)(n - i) * sizeof *x);                    \
            memcpy(yt, y + i, (size_t)(n - i) * sizeof *y);                    \
            for (int k = 0; k < L; k++) a[k] += xt[k] * yt[k];                 \
        }                                                                      \
        VM_DOT_TREE_##T(a)                                                     \
        return a[0];                                                           \
    }

/* c[j] += sum over p < K of (alpha * a[p * inca]) * B[p * ldb + j], j < n,
 * added to c[j] in the order p = 0, 1, ... (each product rounded, then
 * added): the REORDERED loop of gemm.c, the same bits, with a block of
 * VM_DOT_LANES columns of c held in registers across all of K instead of
 * loaded and stored again for every p */
#define VM_ROWMAT(T)                                                           \
    void VM(rowmat_##T)(int64_t K, int64_t n, T##_t_ alpha, const T##_t_ *a,   \
                        int64_t inca, const T##_t_ *B, int64_t ldb, T##_t_ *c) { \
        enum { W = VM_DOT_LANES_##T };                                         \
        int64_t j = 0;                                                         \
        for (; j + W <= n; j += W) {                                           \
            T##_t_ acc[W];                                                     \
            for (int k = 0; k < W; k++) acc[k] = c[j + k];                     \
            for (int64_t p = 0; p < K; p++) {                                  \
                T##_t_ s = alpha * a[p * inca];                                \
                const T##_t_ *b = B + p * ldb + j;                             \
                for (int k = 0; k < W; k++) acc[k] += s * b[k];                \
            }                                                                  \
            for (int k = 0; k < W; k++) c[j + k] = acc[k];                     \
        }                                                                      \
        for (int64_t p = 0; j < n && p < K; p++) {                             \
            T##_t_ s = alpha * a[p * inca];                                    \
            const T##_t_ *b = B + p * ldb;                                     \
            for (int64_t q = j; q < n; q++) c[q] += s * b[q];                  \
        }                                                                      \
    }
/* column maxima and minima: acc[j] = the extremum of acc[j] and x[r*ld + j]
 * for r < rows, in float64; a NaN sticks (the first one seen) and otherwise
 * a later value wins only where it is strictly beyond: the general loop's
 * rule in reduce.c (VM_EXT).  That rule is associative (it picks the first
 * NaN, else the first of the extreme values) and exact, so a block of
 * VM_EXT_COLS columns is reduced over all the rows in the element type, in
 * order, in a buffer that stays in L1, and only the block's result is
 * combined with acc.  The rows are first folded by the plain comparison
 * (v OP m ? v : m: one compare and one blend, no NaN test), which is the
 * rule itself while no value is NaN, and each lane notes whether it saw a
 * NaN (v != v); a block that saw one is folded again by the full rule, so
 * NaNs cost time, never the result.  Until session 16 four rows were
 * combined by the full rule and then with acc in float64 (a conversion,
 * compares and a store per four rows): a max over axis 0 of a float32
 * 1000 x 1000 took 250-317 us on one thread, now 96-98 (NumPy 97-98,
 * PyTorch 114; benchmarks/run.py --only reductions).  Four rows are read
 * at once (four streams: one row at a time was 30 % slower), and the
 * block is the caller's whole chunk of columns (reduce.c's RCOLS, 1024),
 * so that every row's run is long (256 columns: 1.5x slower on 1000 x
 * 1000).  Branch-free inner loops, so that they vectorize. */
#define VM_EXT(a, v, OP) ((a) != (a) ? (a) : ((v) OP (a) || (v) != (v)) ? (v) : (a))
#define VM_EXT_COLS 1024
#define VM_ACC_EXT(T, NAME, OP)                                                \
    void VM(acc##NAME##_##T)(int64_t rows, int64_t n, const T##_t_ *x,        \
                             int64_t ld, double *acc) {                        \
        T##_t_ m[VM_EXT_COLS];                                                 \
        T##_i_ nan[VM_EXT_COLS]; /* lanes of T's width: a compare's mask */  \
        if (rows < 1) return;                                                  \
        for (int64_t j0 = 0; j0 < n; j0 += VM_EXT_COLS) {                      \
            int64_t w = n - j0 < VM_EXT_COLS ? n - j0 : VM_EXT_COLS;          \
            const T##_t_ *xc = x + j0;                                         \
            for (int64_t j = 0; j < w; j++) m[j] = xc[j], nan[j] = 0;          \
            int64_t r = 0; /* from row 0 again: its NaNs are noted too */      \
            for (; r + 4 <= rows; r += 4) { /* four streams of rows at once */ \
                const T##_t_ *x0 = xc + r * ld, *x1 = x0 + ld, *x2 = x1 + ld,  \
                             *x3 = x2 + ld;                                    \
                for (int64_t j = 0; j < w; j++) {                              \
                    T##_t_ v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];     \
                    T##_t_ a = m[j];                                           \
                    a = v0 OP a ? v0 : a;                                      \
                    a = v1 OP a ? v1 : a;                                      \
                    a = v2 OP a ? v2 : a;                                      \
                    a = v3 OP a ? v3 : a;                                      \
                    m[j] = a;                                                  \
                    nan[j] |= (T##_i_)((v0 != v0) | (v1 != v1) | (v2 != v2) |  \
                                       (v3 != v3));                            \
                }                                                              \
            }                                                                  \
            for (; r < rows; r++) {                                            \
                const T##_t_ *xr = xc + r * ld;                                \
                for (int64_t j = 0; j < w; j++) {                              \
                    T##_t_ v = xr[j];                                          \
                    m[j] = v OP m[j] ? v : m[j];                               \
                    nan[j] |= (T##_i_)(v != v);                                \
                }                                                              \
            }                                                                  \
            int seen = 0;                                                      \
            for (int64_t j = 0; j < w; j++) seen |= nan[j] != 0;              \
            if (seen) {                                                        \
                for (int64_t j = 0; j < w; j++) m[j] = xc[j];                  \
                for (int64_t r = 1; r < rows; r++) {                           \
                    const T##_t_ *xr = xc + r * ld;                            \
                    for (int64_t j = 0; j < w; j++)                            \
                        m[j] = VM_EXT(m[j], xr[j], OP);                        \
                }                                                              \
            }                                                                  \
            for (int64_t j = 0; j < w; j++) {                                  \
                double a = acc[j0 + j], d = (double)m[j];                      \
                acc[j0 + j] = VM_EXT(a, d, OP);                                \
            }                                                                  \
        }                                                                      \
    }
#define VM_SUM(T)                                                              \
    VM_ROWMAT(T)                                                               \
    VM_ACC_EXT(T, max, >)                                                      \
    VM_ACC_EXT(T, min, <)                                                      \
    VM_LANE_SUM(sum, T, v)                                                     \
    VM_LANE_SUM(sumsq, T, v * v)                                               \
    VM_LANE_DOT(T)                                                             \
    void VM(acc_##T)(int64_t rows, int64_t n, const T##_t_ *x, int64_t ld,    \
                     double *acc) {                                            \
        int64_t r = 0;                                                         \
        for (; r + 4 <= rows; r += 4) {                                        \
            const T##_t_ *x0 = x + r * ld, *x1 = x0 + ld, *x2 = x1 + ld,       \
                         *x3 = x2 + ld;                                        \
            for (int64_t j = 0; j < n; j++)                                    \
                acc[j] += ((double)x0[j] + (double)x1[j]) +                    \
                          ((double)x2[j] + (double)x3[j]);                     \
        }                                                                      \
        for (; r < rows; r++)                                                  \
            for (int64_t j = 0; j < n; j++) acc[j] += (double)x[r * ld + j];   \
    }

/* ---- max / min ------------------------------------------------------------
 * Written with GCC's vector extensions (VM_VBYTES-byte vectors: one SSE2
 * or one AVX2 register) because the compiler does not
 * vectorize a scalar max loop that must keep NaN semantics.  Two running
 * maxima hide the latency; `v > m` is a lane mask and the select is a blend.
 * Max instructions do not propagate NaN, so a separate mask records whether
 * any lane ever saw one.
 *
 * After the pairs of vectors, one more single vector if W elements are
 * left, and the two running maxima are blended into one before the scalar
 * scan of the lanes (W steps instead of 2W interleaved with the NaN lanes):
 * a causal softmax's rows are 1..64 long, and with 16-lane AVX-512 vectors
 * every row shorter than 32 went one by one and the final scan of 32 lanes
 * was the rest (the max was a quarter of masked_softmax's time on GPT's
 * (16, 4, 64, 64) scores: that forward 0.286 -> 0.244 ms, one thread).
 *
 * Compilers without the vector extensions (cl.exe) get the same algorithm
 * on arrays of W lanes: lane k sees the same elements in the same order,
 * so the result is the same value (even which of -0 and +0 a max returns).
 * cl.exe decides by itself whether to vectorize those loops. */
#define VM_EXTREMUM(T, VT, VI, W, NAME, OP)                                    \
    double VM(NAME##_##T)(int64_t n, const T##_t_ *x) {                        \
        VT m0, m1, v0, v1;                                                     \
        VI nan = {0};                                                          \
        for (int k = 0; k < W; k++) m0[k] = x[0];                              \
        m1 = m0;                                                               \
        int64_t i = 0;                                                         \
        for (; i + 2 * W <= n; i += 2 * W) {                                   \
            memcpy(&v0, x + i, sizeof v0);                                     \
            memcpy(&v1, x + i + W, sizeof v1);                                 \
            VI c0 = v0 OP m0, c1 = v1 OP m1;                                   \
            m0 = (VT)((c0 & (VI)v0) | (~c0 & (VI)m0));                         \
            m1 = (VT)((c1 & (VI)v1) | (~c1 & (VI)m1));                         \
            nan |= (v0 != v0) | (v1 != v1);                                    \
        }                                                                      \
        if (i + W <= n) { /* one more vector: short rows (see above) */       \
            memcpy(&v0, x + i, sizeof v0);                                     \
            VI c0 = v0 OP m0;                                                  \
            m0 = (VT)((c0 & (VI)v0) | (~c0 & (VI)m0));                         \
            nan |= v0 != v0;                                                   \
            i += W;                                                            \
        }                                                                      \
        /* m1 into m0 lane by lane first (a blend: m1[k] wins only where  \
         * it is strictly beyond, as in a scan of m0[k] then m1[k]), then  \
         * one scalar scan of W lanes and an OR of the NaN lanes: the same \
         * result as scanning m0[0], m1[0], m0[1], ... one by one */          \
        VI cm = m1 OP m0;                                                      \
        m0 = (VT)((cm & (VI)m1) | (~cm & (VI)m0));                             \
        T##_t_ r = x[0];                                                       \
        int bad = 0;                                                           \
        for (int k = 0; k < W; k++) bad |= nan[k] != 0;                        \
        for (int k = 0; k < W; k++) r = m0[k] OP r ? m0[k] : r;                \
        for (; i < n; i++) {                                                   \
            bad |= x[i] != x[i];                                               \
            r = x[i] OP r ? x[i] : r;                                          \
        }                                                                      \
        return bad || r != r ? TG_NAN : (double)r;                             \
    }

#define VM_EXTREMUM_LANES(T, W, NAME, OP)                                      \
    double VM(NAME##_##T)(int64_t n, const T##_t_ *x) {                        \
        T##_t_ m0[W], m1[W];                                                   \
        int nan[W] = {0};                                                      \
        for (int k = 0; k < W; k++) m0[k] = m1[k] = x[0];                      \
        int64_t i = 0;                                                         \
        for (; i + 2 * W <= n; i += 2 * W)                                     \
            for (int k = 0; k < W; k++) {                                      \
                T##_t_ v0 = x[i + k], v1 = x[i + W + k];                       \
                m0[k] = v0 OP m0[k] ? v0 : m0[k];                              \
                m1[k] = v1 OP m1[k] ? v1 : m1[k];                              \
                nan[k] |= (v0 != v0) | (v1 != v1);                             \
            }                                                                  \
        if (i + W <= n) {                                                      \
            for (int k = 0; k < W; k++) {                                      \
                T##_t_ v0 = x[i + k];                                          \
                m0[k] = v0 OP m0[k] ? v0 : m0[k];                              \
                nan[k] |= v0 != v0;                                            \
            }                                                                  \
            i += W;                                                            \
        }                                                                      \
        for (int k = 0; k < W; k++) /* as the vector build does it */          \
            m0[k] = m1[k] OP m0[k] ? m1[k] : m0[k];                            \
        T##_t_ r = x[0];                                                       \
        int bad = 0;                                                           \
        for (int k = 0; k < W; k++) bad |= nan[k] != 0;                        \
        for (int k = 0; k < W; k++) r = m0[k] OP r ? m0[k] : r;                \
        for (; i < n; i++) {                                                   \
            bad |= x[i] != x[i];                                               \
            r = x[i] OP r ? x[i] : r;                                          \
        }                                                                      \
        return bad || r != r ? TG_NAN : (double)r;                             \
    }

#if defined(__GNUC__) && !defined(VM_NO_VECTOR_EXT) /* the tests define it to run the other */
typedef float vm_vf32 __attribute__((vector_size(VM_VBYTES)));
typedef int32_t vm_vi32 __attribute__((vector_size(VM_VBYTES)));
typedef double vm_vf64 __attribute__((vector_size(VM_VBYTES)));
typedef int64_t vm_vi64 __attribute__((vector_size(VM_VBYTES)));
#define VM_MAXMIN(T, VT, VI, W, NAME, OP) VM_EXTREMUM(T, VT, VI, W, NAME, OP)
#else
#define VM_MAXMIN(T, VT, VI, W, NAME, OP) VM_EXTREMUM_LANES(T, W, NAME, OP)
#endif

typedef float f32_t_;
typedef double f64_t_;
typedef int32_t f32_i_; /* an integer of the element's width (VM_ACC_EXT) */
typedef int64_t f64_i_;
VM_SUM(f32)
VM_SUM(f64)
VM_MAXMIN(f32, vm_vf32, vm_vi32, VM_VBYTES / 4, max, >)
VM_MAXMIN(f32, vm_vf32, vm_vi32, VM_VBYTES / 4, min, <)
VM_MAXMIN(f64, vm_vf64, vm_vi64, VM_VBYTES / 8, max, >)
VM_MAXMIN(f64, vm_vf64, vm_vi64, VM_VBYTES / 8, min, <)

/* ---- layer_norm's rows, float32 -------------------------------------------
 * The loops of nn.c's fused layer_norm (the formulas are there), here so
 * that they run 8 or 16 floats a step instead of SSE2's 4; rows of the GPT
 * step's width 128.  Sums have one fixed order on every build: within each
 * chunk of 512 elements, 8 float32 partial sums (partial l takes elements
 * k + l of each group of 8), added in lane order into a float64 total, then
 * the chunk's last (length mod 8) elements into that total one by one, and
 * the chunks' totals in order.  That is the order of the SSE2 code nn.c had
 * (two 4-lane vectors): the same bits as before, on every build.  Products
 * and sums are rounded one at a time (no FMA), as there. */
#define VM_LN_CHUNK 512
/* The 8 partial sums: one 8-float vector with GCC's vector extensions (an
 * array of 8 lanes is vectorized across iterations into shuffles by GCC,
 * slower than SSE2's two vectors); plain lanes elsewhere (cl.exe). */
#if defined(__GNUC__) && !defined(VM_NO_VECTOR_EXT)
typedef float vm_ln8 __attribute__((vector_size(32)));
#define VM_LN_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define VM_LN_ZERO(v) (v) = (vm_ln8){0}
#define VM_LN_SPLAT(v, s) (v) = (vm_ln8){s, s, s, s, s, s, s, s}
#else
#define VM_LN_LANES_ONLY 1
#endif
/* s[0] = sum(x - c), s[1] = sum((x - c)^2) */
void VM(ln_sums_f32)(int64_t n, const float *x, float c, double *s) {
    s[0] = s[1] = 0;
    for (int64_t k0 = 0; k0 < n; k0 += VM_LN_CHUNK) {
        int64_t e = k0 + VM_LN_CHUNK < n ? k0 + VM_LN_CHUNK : n, k = k0;
        float a[8], b[8];
#ifndef VM_LN_LANES_ONLY
        vm_ln8 va, vb, vc, v;
        VM_LN_ZERO(va);
        VM_LN_ZERO(vb);
        VM_LN_SPLAT(vc, c);
        for (; k + 8 <= e; k += 8) {
            VM_LN_LOAD(v, x + k);
            v = v - vc;
            va = va + v;
            vb = vb + v * v;
        }
        memcpy(a, &va, sizeof a);
        memcpy(b, &vb, sizeof b);
#else
        for (int l = 0; l < 8; l++) a[l] = b[l] = 0;
        for (; k + 8 <= e; k += 8)
            for (int l = 0; l < 8; l++) {
                float d = x[k + l] - c;
                a[l] += d;
                b[l] += d * d;
            }
#endif
        double ta = 0, tb = 0;
        for (int l = 0; l < 8; l++) ta += a[l];
        for (int l = 0; l < 8; l++) tb += b[l];
        for (; k < e; k++) {
            float d = x[k] - c;
            ta += d;
            tb += d * d;
        }
        s[0] += ta;
        s[1] += tb;
    }
}
/* s[0] = sum(gx), s[1] = sum(gx xh), gx = g w (w NULL: g), xh = (x - mu) r */
void VM(ln_dots_f32)(int64_t n, const float *g, const float *w, const float *x, float mu, float r,
                     double *s) {
    s[0] = s[1] = 0;
    for (int64_t k0 = 0; k0 < n; k0 += VM_LN_CHUNK) {
        int64_t e = k0 + VM_LN_CHUNK < n ? k0 + VM_LN_CHUNK : n, k = k0;
        float a[8], b[8];
#ifndef VM_LN_LANES_ONLY
        vm_ln8 va, vb, vm, vr, vg, vw, vx;
        VM_LN_ZERO(va);
        VM_LN_ZERO(vb);
        VM_LN_SPLAT(vm, mu);
        VM_LN_SPLAT(vr, r);
        for (; k + 8 <= e; k += 8) {
            VM_LN_LOAD(vg, g + k);
            VM_LN_LOAD(vx, x + k);
            if (w) {
                VM_LN_LOAD(vw, w + k);
                vg = vg * vw;
            }
            va = va + vg;
            vb = vb + vg * ((vx - vm) * vr);
        }
        memcpy(a, &va, sizeof a);
        memcpy(b, &vb, sizeof b);
#else
        for (int l = 0; l < 8; l++) a[l] = b[l] = 0;
        for (; k + 8 <= e; k += 8)
            for (int l = 0; l < 8; l++) {
                float gx = w ? g[k + l] * w[k + l] : g[k + l];
                a[l] += gx;
                b[l] += gx * ((x[k + l] - mu) * r);
            }
#endif
        double ta = 0, tb = 0;
        for (int l = 0; l < 8; l++) ta += a[l];
        for (int l = 0; l < 8; l++) tb += b[l];
        for (; k < e; k++) {
            float gx = w ? g[k] * w[k] : g[k];
            ta += gx;
            tb += gx * ((x[k] - mu) * r);
        }
        s[0] += ta;
        s[1] += tb;
    }
}
/* y = (x - mu) r w + b (w, b may be NULL) */
void VM(ln_apply_f32)(int64_t n, const float *x, float mu, float r, const float *w, const float *b,
                      float *y) {
    if (w && b)
        for (int64_t k = 0; k < n; k++) y[k] = (x[k] - mu) * r * w[k] + b[k];
    else if (w)
        for (int64_t k = 0; k < n; k++) y[k] = (x[k] - mu) * r * w[k];
    else if (b)
        for (int64_t k = 0; k < n; k++) y[k] = (x[k] - mu) * r + b[k];
    else
        for (int64_t k = 0; k < n; k++) y[k] = (x[k] - mu) * r;
}
/* dx = r (g w - m1 - (x - mu) r m2) if dx; dw += g (x - mu) r if dw;
 * db += g if db (w may be NULL: 1) */
void VM(ln_grad_f32)(int64_t n, const float *g, const float *w, const float *x, float mu, float r,
                     float m1, float m2, float *dx, float *dw, float *db) {
    if (dx) {
        if (w)
            for (int64_t k = 0; k < n; k++) dx[k] = r * (g[k] * w[k] - m1 - (x[k] - mu) * r * m2);
        else
            for (int64_t k = 0; k < n; k++) dx[k] = r * (g[k] - m1 - (x[k] - mu) * r * m2);
    }
    if (dw && db)
        for (int64_t k = 0; k < n; k++) {
            dw[k] += g[k] * ((x[k] - mu) * r);
            db[k] += g[k];
        }
    else if (dw)
        for (int64_t k = 0; k < n; k++) dw[k] += g[k] * ((x[k] - mu) * r);
    else if (db)
        for (int64_t k = 0; k < n; k++) db[k] += g[k];
}

/* ---- Adam / AdamW update, float32 -----------------------------------------
 * The loop of tg_adam_step (csrc/core/optim.c documents the formulas), here
 * so that it is vectorized like the rest: one pass over p, g, m, v.
 * c = {1 - beta1, beta2, 1 - beta2, lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t),
 * eps, weight_decay, 1 - lr * weight_decay}; mode 0: no weight decay, 1:
 * decoupled (AdamW), 2: L2 (Adam).  A constant mode per loop lets the
 * compiler drop the other branches. */
static inline void VM(adam_f32_loop)(int64_t n, float *restrict P, const float *restrict G,
                                     float *restrict M, float *restrict V, const float *c,
                                     const int mode) {
    const float b1c = c[0], b2 = c[1], b2c = c[2], ss = c[3], inv_bc2 = c[4], e = c[5];
    const float wd = c[6], shrink = c[7];
    for (int64_t k = 0; k < n; k++) {
        float gk = G[k], pk = P[k];
        if (mode == 1) pk *= shrink;
        else if (mode == 2) gk += wd * pk;
        float mk = M[k] + b1c * (gk - M[k]);
        float vk = b2 * V[k] + b2c * gk * gk;
        M[k] = mk;
        V[k] = vk;
        P[k] = pk - ss * mk / (TG_SQRTF(vk) * inv_bc2 + e);
    }
}

void VM(adam_f32)(int64_t n, float *p, const float *g, float *m, float *v, const float *c,
                  int mode) {
    if (mode == 1) VM(adam_f32_loop)(n, p, g, m, v, c, 1);
    else if (mode == 2) VM(adam_f32_loop)(n, p, g, m, v, c, 2);
    else VM(adam_f32_loop)(n, p, g, m, v, c, 0);
}

/* ---- SGD and RMSprop updates, float32 parameters --------------------------
 * The loops of tg_sgd_step and tg_rmsprop_step (csrc/core/optim.c has the
 * formulas) for float32 tensors.  They compute in float64 and round every
 * stored value to float32, exactly as the general loop does, so both give
 * the same bits; here the loads, conversions and arithmetic vectorize.
 * c = {lr, momentum, dampening or alpha, weight_decay, eps}; the flags
 * (TG_VM_* in vmath.h) are constants in each specialised loop. */

static inline void VM(sgd_f32_loop)(int64_t n, float *restrict P, const float *restrict G,
                                    float *restrict B, const double *c, const int f) {
    const double lr = c[0], mom = c[1], keep = 1 - c[2], wd = c[3];
    for (int64_t k = 0; k < n; k++) {
        double gk = G[k], pk = P[k];
        if (f & TG_VM_DECAY) gk += wd * pk;
        if (f & TG_VM_HAS_BUF) {
            double bk = (f & TG_VM_FIRST) ? gk : mom * (double)B[k] + keep * gk;
            float bf = (float)bk;
            B[k] = bf;
            gk = (f & TG_VM_NESTEROV) ? gk + mom * (double)bf : (double)bf;
        }
        P[k] = (float)(pk - lr * gk);
    }
}

#define VM_SGD_CASE(F) case F: VM(sgd_f32_loop)(n, p, g, b, c, F); break;
void VM(sgd_f32)(int64_t n, float *p, const float *g, float *b, const double *c, int flags) {
    switch (flags & 15) {
        VM_SGD_CASE(0) VM_SGD_CASE(1) VM_SGD_CASE(2) VM_SGD_CASE(3)
        VM_SGD_CASE(4) VM_SGD_CASE(5) VM_SGD_CASE(6) VM_SGD_CASE(7)
        VM_SGD_CASE(8) VM_SGD_CASE(9) VM_SGD_CASE(10) VM_SGD_CASE(11)
        VM_SGD_CASE(12) VM_SGD_CASE(13) VM_SGD_CASE(14) VM_SGD_CASE(15)
    }
}

static inline void VM(rmsprop_f32_loop)(int64_t n, float *restrict P, const float *restrict G,
                                        float *restrict S, float *restrict B, const double *c,
                                        const int f) {
    const double lr = c[0], mom = c[1], alpha = c[2], wd = c[3], eps = c[4];
    const double keep = 1 - alpha;
    for (int64_t k = 0; k < n; k++) {
        double gk = G[k], pk = P[k];
        if (f & TG_VM_DECAY) gk += wd * pk;
        float sf = (float)(alpha * (double)S[k] + keep * gk * gk);
        S[k] = sf;
        double avg = TG_SQRT((double)sf) + eps;
        if (f & TG_VM_HAS_BUF) {
            float bf = (float)(mom * (double)B[k] + gk / avg);
            B[k] = bf;
            P[k] = (float)(pk - lr * (double)bf);
        } else {
            P[k] = (float)(pk - lr * gk / avg);
        }
    }
}

void VM(rmsprop_f32)(int64_t n, float *p, const float *g, float *s, float *b, const double *c,
                     int flags) {
    switch (flags & (TG_VM_HAS_BUF | TG_VM_DECAY)) {
    case 0: VM(rmsprop_f32_loop)(n, p, g, s, b, c, 0); break;
    case TG_VM_HAS_BUF: VM(rmsprop_f32_loop)(n, p, g, s, b, c, TG_VM_HAS_BUF); break;
    case TG_VM_DECAY: VM(rmsprop_f32_loop)(n, p, g, s, b, c, TG_VM_DECAY); break;
    default: VM(rmsprop_f32_loop)(n, p, g, s, b, c, TG_VM_HAS_BUF | TG_VM_DECAY); break;
    }
}
