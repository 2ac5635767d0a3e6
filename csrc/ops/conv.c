/*
 * conv.c -- 2-D convolution and pooling of NCHW tensors, with PyTorch's
 * semantics (cross-correlation, zero padding, floor rounding of the output
 * size, no dilation, no groups).
 *
 *   x (N, C, H, W)  *  w (O, C, KH, KW)  (+ b (O,))  ->  y (N, O, OH, OW)
 *   OH = (H + 2 ph - KH) / sh + 1,  OW = (W + 2 pw - KW) / sw + 1
 *
 * How the convolution is computed: im2col + GEMM.  For one image, every
 * window of x that the kernel visits is copied into one column of a matrix
 * cols (C*KH*KW, OH*OW) (zeros where the window hangs over the padding); the
 * convolution is then a single matrix product with the weight seen as a
 * (O, C*KH*KW) matrix:
 *
 *   y_n (O, OH*OW) = w (O, C*KH*KW) @ cols_n (C*KH*KW, OH*OW)
 *
 * done by tg_gemm_f32/f64 (kernels/gemm.c).  The backward products are the
 * same matrices the other way round:
 *
 *   dx:  cols = w^T @ dy_n, then col2im adds each column back into its window
 *   dw:  dw  += dy_n @ cols_n^T        (summed over the images; for wide
 *        kernels cols_n^T is built directly (im2row), which packs faster)
 *   db:  sum of dy over N, OH, OW
 *
 * The images are processed in parallel (threadpool.h), each worker with its
 * own cols buffer; dw is summed from a fixed number of partial sums, in a
 * fixed order, so the result does not depend on the number of threads.
 *
 * Second derivatives.  The VJPs are ops too.  conv2d_input_grad(dy, w) (dx,
 * a transposed convolution) and conv2d_weight_grad(x, dy) (dw) are
 * registered ops; all three are bilinear and adjoint to one another, so the
 * VJP of each is again one of the three:
 *
 *   conv2d(x, w):              dx = input_grad(dy, w),   dw = weight_grad(x, dy)
 *   input_grad(g, w) = dx:     dg = conv2d(u, w),        dw = weight_grad(u, g)
 *   weight_grad(x, g) = dw:    dx = input_grad(g, v),    dg = conv2d(x, v)
 *
 * (u, v: the gradients flowing into dx and dw).  Pooling works the same way:
 * max_pool2d saves the position of each window's maximum and its VJP is the
 * op max_pool2d_backward (scatter-add to those positions), whose VJP is a
 * gather; avg_pool2d and avg_pool2d_backward are each other's VJP.
 */
#include "ops_internal.h"
#include "../kernels/gemm.h"
#include "../kernels/threadpool.h"
#include "../kernels/platform.h"

#include <math.h>
#include <stdlib.h>


/* Work (multiply-adds) below which a parallel loop is not worth waking the
 * pool for; a chunk of images gets at least this much. */
#define CONV_MIN_WORK_PER_CHUNK 262144.0
/* dw is accumulated in at most this many partial sums (see weight_grad). */
#define CONV_MAX_DW_PARTS 8

/* ===================================================================== */
/* Geometry                                                               */
/* ===================================================================== */

/* The shape of one convolution or pooling: input (N, C, H, W), window
 * (KH, KW), stride, padding, output (OH, OW).  O: output channels of a
 * convolution (= C for pooling). */
typedef struct {
    int64_t N, C, H, W;
    int64_t O, KH, KW;
    int64_t sh, sw, ph, pw;
    int64_t OH, OW;
} geom;

/* Fill g from the input shape xs (4 sizes), the window and the stride and
 * padding; checks the values and that the window fits in the padded input.
 * TG_ERR_VALUE naming `who` otherwise. */
static tg_status make_geom(const char *who, const int64_t *xs, int64_t O, int64_t KH, int64_t KW,
                           int64_t sh, int64_t sw, int64_t ph, int64_t pw, geom *g) {
    if (sh <= 0 || sw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: stride must be positive, got (%lld, %lld)", who,
                            (long long)sh, (long long)sw);
    if (ph < 0 || pw < 0)
        return tg_error_set(TG_ERR_VALUE, "%s: padding must be non-negative, got (%lld, %lld)", who,
                            (long long)ph, (long long)pw);
    if (KH <= 0 || KW <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size must be positive, got (%lld, %lld)", who,
                            (long long)KH, (long long)KW);
    int64_t Hp, Wp;
    if (__builtin_mul_overflow(ph, 2, &Hp) || __builtin_add_overflow(Hp, xs[2], &Hp) ||
        __builtin_mul_overflow(pw, 2, &Wp) || __builtin_add_overflow(Wp, xs[3], &Wp))
        return tg_error_set(TG_ERR_VALUE, "%s: padding (%lld, %lld) is out of range (the padded "
                            "size overflows int64)", who, (long long)ph, (long long)pw);
    if (KH > Hp || KW > Wp)
        return tg_error_set(TG_ERR_VALUE,
                            "%s: kernel size (%lld, %lld) is larger than the padded input size "
                            "(%lld, %lld) (input shape %s, padding (%lld, %lld))",
                            who, (long long)KH, (long long)KW, (long long)Hp, (long long)Wp,
                            tg__shp2(4, xs), (long long)ph, (long long)pw);
    *g = (geom){.N = xs[0], .C = xs[1], .H = xs[2], .W = xs[3], .O = O, .KH = KH, .KW = KW,
                .sh = sh, .sw = sw, .ph = ph, .pw = pw,
                .OH = (Hp - KH) / sh + 1, .OW = (Wp - KW) / sw + 1};
    /* the per-image im2col buffer (C*KH*KW, OH*OW) in float64 must be addressable */
    int64_t n;
    if (__builtin_mul_overflow(g->C, KH, &n) || __builtin_mul_overflow(n, KW, &n) ||
        __builtin_mul_overflow(n, g->OH, &n) || __builtin_mul_overflow(n, g->OW, &n) ||
        __builtin_mul_overflow(n, (int64_t)sizeof(double), &n) ||
        __builtin_mul_overflow(g->OH, g->OW, &n) || __builtin_mul_overflow(n, O, &n)) {
        if (ph > xs[2] || pw > xs[3]) /* the padding, not the input, makes it huge */
            return tg_error_set(TG_ERR_VALUE,
                                "%s: padding (%lld, %lld) is out of range for input %s with a "
                                "(%lld, %lld) kernel: the output would have (%lld, %lld) positions "
                                "per channel, too many to compute (expected a padding of at most "
                                "a few kernel sizes)",
                                who, (long long)ph, (long long)pw, tg__shp2(4, xs), (long long)KH,
                                (long long)KW, (long long)g->OH, (long long)g->OW);
        return tg_error_set(TG_ERR_MEMORY, "%s: input %s with a (%lld, %lld) kernel is too large", who,
                            tg__shp2(4, xs), (long long)KH, (long long)KW);
    }
    return TG_OK;
}

/* The outputs o in [0, on) whose window tap k lands inside [0, n):
 * 0 <= o*s - p + k < n  <=>  o in [*o0, *o1). */
static void valid_range(int64_t k, int64_t p, int64_t s, int64_t n, int64_t on, int64_t *o0,
                        int64_t *o1) {
    int64_t lo = p - k, hi = n + p - k;
    /* ceil(v / s) for v > 0 as (v - 1) / s + 1: no overflow for any stride */
    int64_t a = lo <= 0 ? 0 : (lo - 1) / s + 1;
    int64_t b = hi <= 0 ? 0 : (hi - 1) / s + 1;
    if (b > on) b = on;
    if (a > b) a = b;
    *o0 = a;
    *o1 = b;
}

/* A 1x1 window with stride 1 and no padding: the image itself is cols. */
static bool is_pointwise(const geom *g) {
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* x converted to dt and made C-contiguous (a new reference; x itself when
 * it already is).  No autograd. */
static tg_tensor *dense(tg_tensor *x, tg_dtype dt) {
    tg_tensor *c = tg__as_dtype(x, dt);
    if (!c || tg_tensor_is_contiguous(c)) return c;
    tg_tensor *d = tg__copy(c);
    tg_tensor_release(c);
    return d;
}

/* Scratch memory for worker threads (64-byte aligned; NULL on failure).
 * Not tg__alloc: that one reports errors in the caller's thread state. */
static void *scratch(size_t nbytes) { return tg_aligned_alloc(64, (nbytes + 63) / 64 * 64 + 64); }

/* ===================================================================== */
/* Kernels: im2col, col2im, pooling loops (float and double)              */
/* ===================================================================== */

/* im2col: x one image (C, H, W) contiguous -> cols (C*KH*KW, OH*OW).
 * col2im: the adjoint, dx (C, H, W) += cols scattered back to the windows. */
#define IM2COL(SFX, T)                                                                    \
    static void im2col_##SFX(const geom *g, const T *x, T *cols) {                        \
        const int64_t OHW = g->OH * g->OW;                                                \
        for (int64_t c = 0; c < g->C; c++)                                                \
            for (int64_t kh = 0; kh < g->KH; kh++) {                                      \
                int64_t oh0, oh1;                                                         \
                valid_range(kh, g->ph, g->sh, g->H, g->OH, &oh0, &oh1);                   \
                for (int64_t kw = 0; kw < g->KW; kw++) {                                  \
                    T *row = cols + ((c * g->KH + kh) * g->KW + kw) * OHW;                \
                    int64_t ow0, ow1;                                                     \
                    valid_range(kw, g->pw, g->sw, g->W, g->OW, &ow0, &ow1);               \
                    for (int64_t oh = 0; oh < g->OH; oh++) {                              \
                        T *r = row + oh * g->OW;                                          \
                        if (oh < oh0 || oh >= oh1) {                                      \
                            memset(r, 0, (size_t)g->OW * sizeof(T));                      \
                            continue;                                                     \
                        }                                                                 \
                        int64_t base = (c * g->H + oh * g->sh - g->ph + kh) * g->W + kw - g->pw; \
                        for (int64_t ow = 0; ow < ow0; ow++) r[ow] = 0;                   \
                        if (g->sw == 1)                                                   \
                            memcpy(r + ow0, x + base + ow0, (size_t)(ow1 - ow0) * sizeof(T)); \
                        else                                                              \
                            for (int64_t ow = ow0; ow < ow1; ow++) r[ow] = x[base + ow * g->sw]; \
                        for (int64_t ow = ow1; ow < g->OW; ow++) r[ow] = 0;               \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
    }                                                                                     \
    static void col2im_##SFX(const geom *g, const T *cols, T *x) {                        \
        const int64_t OHW = g->OH * g->OW;                                                \
        for (int64_t c = 0; c < g->C; c++)                                                \
            for (int64_t kh = 0; kh < g->KH; kh++) {                                      \
                int64_t oh0, oh1;                                                         \
                valid_range(kh, g->ph, g->sh, g->H, g->OH, &oh0, &oh1);                   \
                for (int64_t kw = 0; kw < g->KW; kw++) {                                  \
                    const T *row = cols + ((c * g->KH + kh) * g->KW + kw) * OHW;          \
                    int64_t ow0, ow1;                                                     \
                    valid_range(kw, g->pw, g->sw, g->W, g->OW, &ow0, &ow1);               \
                    for (int64_t oh = oh0; oh < oh1; oh++) {                              \
                        const T *r = row + oh * g->OW;                                    \
                        int64_t base = (c * g->H + oh * g->sh - g->ph + kh) * g->W + kw - g->pw; \
                        if (g->sw == 1) {                                                 \
                            /* by 4, all loads before the stores: the compiler makes  \
                             * vector instructions of it even at -O2 */               \
                            T *xr = x + base;                                             \
                            int64_t ow = ow0;                                             \
                            for (; ow + 4 <= ow1; ow += 4) {                              \
                                T s0 = xr[ow] + r[ow], s1 = xr[ow + 1] + r[ow + 1];       \
                                T s2 = xr[ow + 2] + r[ow + 2], s3 = xr[ow + 3] + r[ow + 3]; \
                                xr[ow] = s0;                                              \
                                xr[ow + 1] = s1;                                          \
                                xr[ow + 2] = s2;                                          \
                                xr[ow + 3] = s3;                                          \
                            }                                                             \
                            for (; ow < ow1; ow++) xr[ow] += r[ow];                       \
                        } else {                                                          \
                            for (int64_t ow = ow0; ow < ow1; ow++) x[base + ow * g->sw] += r[ow]; \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
    }
IM2COL(f32, float)
IM2COL(f64, double)

/* im2row: the transpose of im2col, x one image (C, H, W) -> patches
 * (OH*OW, C*KH*KW): row p holds the window of output position p.  Its rows
 * are made of whole kernel rows (KW elements contiguous in x), and as the
 * B operand of dw = dy_n @ patches it is read row by row, which packs
 * faster than im2col's transpose. */
#define IM2ROW(SFX, T)                                                                    \
    static void im2row_##SFX(const geom *g, const T *x, T *patches) {                     \
        const int64_t CKK = g->C * g->KH * g->KW;                                         \
        for (int64_t oh = 0; oh < g->OH; oh++)                                            \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                      \
                T *prow = patches + (oh * g->OW + ow) * CKK;                              \
                int64_t iw0 = ow * g->sw - g->pw;                                         \
                bool inside = iw0 >= 0 && iw0 + g->KW <= g->W;                            \
                for (int64_t c = 0; c < g->C; c++)                                        \
                    for (int64_t kh = 0; kh < g->KH; kh++) {                              \
                        T *d = prow + (c * g->KH + kh) * g->KW;                           \
                        int64_t ih = oh * g->sh - g->ph + kh;                             \
                        if (ih < 0 || ih >= g->H) {                                       \
                            for (int64_t kw = 0; kw < g->KW; kw++) d[kw] = 0;             \
                            continue;                                                     \
                        }                                                                 \
                        const T *xr = x + (c * g->H + ih) * g->W;                         \
                        if (inside) { /* no memcpy: KW is small, a call costs more */ \
                            const T *src = xr + iw0;                                      \
                            int64_t kw = 0;                                               \
                            for (; kw + 4 <= g->KW; kw += 4) {                            \
                                T a0 = src[kw], a1 = src[kw + 1], a2 = src[kw + 2], a3 = src[kw + 3]; \
                                d[kw] = a0;                                               \
                                d[kw + 1] = a1;                                           \
                                d[kw + 2] = a2;                                           \
                                d[kw + 3] = a3;                                           \
                            }                                                             \
                            for (; kw < g->KW; kw++) d[kw] = src[kw];                     \
                        } else {                                                          \
                            for (int64_t kw = 0; kw < g->KW; kw++) {                      \
                                int64_t iw = iw0 + kw;                                    \
                                d[kw] = (iw >= 0 && iw < g->W) ? xr[iw] : 0;              \
                            }                                                             \
                        }                                                                 \
                    }                                                                     \
            }                                                                             \
    }
IM2ROW(f32, float)
IM2ROW(f64, double)

static void im2col(tg_dtype dt, const geom *g, const void *x, void *cols) {
    if (dt == TG_FLOAT32) im2col_f32(g, x, cols);
    else im2col_f64(g, x, cols);
}
static void col2im(tg_dtype dt, const geom *g, const void *cols, void *x) {
    if (dt == TG_FLOAT32) col2im_f32(g, cols, x);
    else col2im_f64(g, cols, x);
}
static void im2row(tg_dtype dt, const geom *g, const void *x, void *patches) {
    if (dt == TG_FLOAT32) im2row_f32(g, x, patches);
    else im2row_f64(g, x, patches);
}

/* C (M, N), row stride rsc, = A @ B + beta C in dtype dt (see gemm.h). */
static void gemm(tg_dtype dt, int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa,
                 int64_t csa, const void *B, int64_t rsb, int64_t csb, double beta, void *C,
                 int64_t rsc) {
    if (dt == TG_FLOAT32)
        tg_gemm_f32(M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, 1);
    else
        tg_gemm_f64(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, beta, C, rsc, 1);
}

/* Pooling over planes [p0, p1) of (N*C) planes (H, W) -> (OH, OW).
 * max: out = window max (padding is -inf), idx = flat position h*W + w of
 *      the first maximum (a NaN counts as the maximum), idx may be NULL.
 * avg: out = window sum / (KH*KW) (count_include_pad).
 * max_bw: dx plane = 0, then dx[idx[o]] += dy[o].
 * avg_bw: dx plane = 0, then dy[o] / (KH*KW) added to each input of window o. */
#define POOL(SFX, T)                                                                      \
    static void maxpool_##SFX(const geom *g, int64_t p0, int64_t p1, const T *x, T *out,   \
                              int64_t *idx) {                                             \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            const T *xp = x + p * HW;                                                     \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, h0 = hs < 0 ? 0 : hs;                    \
                int64_t h1 = hs + g->KH < g->H ? hs + g->KH : g->H;                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, w0 = ws < 0 ? 0 : ws;                \
                    int64_t w1 = ws + g->KW < g->W ? ws + g->KW : g->W;                   \
                    int64_t bi = h0 * g->W + w0;                                          \
                    T best = xp[bi];                                                      \
                    for (int64_t h = h0; h < h1; h++)                                     \
                        for (int64_t w = w0; w < w1; w++) {                               \
                            T v = xp[h * g->W + w];                                       \
                            if (v > best || (v != v && best == best)) {                   \
                                best = v;                                                 \
                                bi = h * g->W + w;                                        \
                            }                                                             \
                        }                                                                 \
                    out[p * OHW + oh * g->OW + ow] = best;                                \
                    if (idx) idx[p * OHW + oh * g->OW + ow] = bi;                         \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    static void avgpool_##SFX(const geom *g, int64_t p0, int64_t p1, const T *x, T *out) { \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        const double inv = 1.0 / (double)(g->KH * g->KW);                                 \
        for (int64_t p = p0; p < p1; p++) {                                               \
            const T *xp = x + p * HW;                                                     \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, h0 = hs < 0 ? 0 : hs;                    \
                int64_t h1 = hs + g->KH < g->H ? hs + g->KH : g->H;                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, w0 = ws < 0 ? 0 : ws;                \
                    int64_t w1 = ws + g->KW < g->W ? ws + g->KW : g->W;                   \
                    double s = 0;                                                         \
                    for (int64_t h = h0; h < h1; h++)                                     \
                        for (int64_t w = w0; w < w1; w++) s += xp[h * g->W + w];          \
                    out[p * OHW + oh * g->OW + ow] = (T)(s * inv);                        \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    static void maxpool_bw_##SFX(const geom *g, int64_t p0, int64_t p1, const T *dy,       \
                                 const int64_t *idx, T *dx) {                             \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            T *d = dx + p * HW;                                                           \
            memset(d, 0, (size_t)HW * sizeof(T));                                         \
            for (int64_t o = 0; o < OHW; o++) d[idx[p * OHW + o]] += dy[p * OHW + o];     \
        }                                                                                 \
    }                                                                                     \
    static void avgpool_bw_##SFX(const geom *g, int64_t p0, int64_t p1, const T *dy, T *dx) { \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        const T inv = (T)(1.0 / (double)(g->KH * g->KW));                                 \
        for (int64_t p = p0; p < p1; p++) {                                               \
            T *d = dx + p * HW;                                                           \
            memset(d, 0, (size_t)HW * sizeof(T));                                         \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, h0 = hs < 0 ? 0 : hs;                    \
                int64_t h1 = hs + g->KH < g->H ? hs + g->KH : g->H;                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, w0 = ws < 0 ? 0 : ws;                \
                    int64_t w1 = ws + g->KW < g->W ? ws + g->KW : g->W;                   \
                    T v = dy[p * OHW + oh * g->OW + ow] * inv;                            \
                    for (int64_t h = h0; h < h1; h++)                                     \
                        for (int64_t w = w0; w < w1; w++) d[h * g->W + w] += v;           \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
POOL(f32, float)
POOL(f64, double)

/* ===================================================================== */
/* The three convolution drivers (no autograd): contiguous buffers of     */
/* dtype dt in, a new contiguous tensor out.                              */
/* ===================================================================== */

typedef struct {
    const geom *g;
    tg_dtype dt;
    const char *x;  /* (N, C, H, W) */
    const char *w;  /* (O, C*KH*KW) */
    const char *b;  /* (O,) or NULL */
    const char *dy; /* (N, O, OH, OW) */
    char *out;      /* y, dx or the dw partial sums */
    int64_t nparts; /* weight_grad: number of partial sums */
    int failed;     /* a worker could not get its scratch buffer */
} conv_job;

/* Images per chunk so that a chunk is worth a thread. */
static int64_t image_grain(const geom *g) {
    double work = (double)g->O * (double)(g->C * g->KH * g->KW) * (double)(g->OH * g->OW);
    if (work <= 0) return g->N > 0 ? g->N : 1;
    double grain = ceil(CONV_MIN_WORK_PER_CHUNK / work);
    return grain < 1 ? 1 : grain > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)grain;
}

/* y_n = w @ im2col(x_n) (+ b), images [n0, n1). */
static void fwd_range(int64_t n0, int64_t n1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW;
    bool direct = is_pointwise(g);
    void *cols = direct ? NULL : scratch((size_t)(CKK * OHW) * isz);
    if (!direct && !cols) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        const char *xn = j->x + (size_t)(n * g->C * g->H * g->W) * isz;
        char *yn = j->out + (size_t)(n * g->O * OHW) * isz;
        if (!direct) im2col(j->dt, g, xn, cols);
        if (j->b) { /* start from the bias, then C = W cols + C */
            for (int64_t o = 0; o < g->O; o++) {
                if (j->dt == TG_FLOAT32) {
                    float v = ((const float *)j->b)[o], *r = (float *)yn + o * OHW;
                    for (int64_t k = 0; k < OHW; k++) r[k] = v;
                } else {
                    double v = ((const double *)j->b)[o], *r = (double *)yn + o * OHW;
                    for (int64_t k = 0; k < OHW; k++) r[k] = v;
                }
            }
        }
        gemm(j->dt, g->O, OHW, CKK, j->w, CKK, 1, direct ? xn : cols, OHW, 1, j->b ? 1.0 : 0.0, yn,
             OHW);
    }
    tg_aligned_free(cols);
}

/* dx_n = col2im(w^T @ dy_n), images [n0, n1). */
static void dx_range(int64_t n0, int64_t n1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW, CHW = g->C * g->H * g->W;
    bool direct = is_pointwise(g);
    void *cols = direct ? NULL : scratch((size_t)(CKK * OHW) * isz);
    if (!direct && !cols) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        char *dxn = j->out + (size_t)(n * CHW) * isz;
        const char *dyn = j->dy + (size_t)(n * g->O * OHW) * isz;
        gemm(j->dt, CKK, OHW, g->O, j->w, 1, CKK, dyn, OHW, 1, 0.0, direct ? (void *)dxn : cols, OHW);
        if (!direct) {
            memset(dxn, 0, (size_t)CHW * isz);
            col2im(j->dt, g, cols, dxn);
        }
    }
    tg_aligned_free(cols);
}

/* Partial sum k of dw = sum_n dy_n @ im2col(x_n)^T over its share of the
 * images (parts [k0, k1)). */
static void dw_range(int64_t k0, int64_t k1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW;
    bool direct = is_pointwise(g);
    void *cols = direct ? NULL : scratch((size_t)(CKK * OHW) * isz);
    if (!direct && !cols) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    /* Which layout of the windows the GEMM reads faster depends on the
     * shape; measured on LeNet-like layers: the patches (im2row) for kernels
     * at least 4 wide, im2col's transpose for narrower ones (3x3), whose
     * patch rows are too short to copy efficiently. */
    bool rows = g->KW >= 4;
    for (int64_t k = k0; k < k1; k++) {
        int64_t n0 = g->N * k / j->nparts, n1 = g->N * (k + 1) / j->nparts;
        char *part = j->out + (size_t)(k * g->O * CKK) * isz;
        if (n0 == n1) memset(part, 0, (size_t)(g->O * CKK) * isz);
        for (int64_t n = n0; n < n1; n++) {
            const char *xn = j->x + (size_t)(n * g->C * g->H * g->W) * isz;
            const char *dyn = j->dy + (size_t)(n * g->O * OHW) * isz;
            if (direct || !rows) { /* B = cols^T: x_n itself in the pointwise case */
                if (!direct) im2col(j->dt, g, xn, cols);
                gemm(j->dt, g->O, CKK, OHW, dyn, OHW, 1, direct ? xn : cols, 1, OHW,
                     n == n0 ? 0.0 : 1.0, part, CKK);
            } else { /* B = the patches, row-major */
                im2row(j->dt, g, xn, cols);
                gemm(j->dt, g->O, CKK, OHW, dyn, OHW, 1, cols, CKK, 1, n == n0 ? 0.0 : 1.0, part, CKK);
            }
        }
    }
    tg_aligned_free(cols);
}

/* Run fn over the images: in parallel chunks when there are enough images
 * to keep the threads busy, else one call (the GEMMs then use the threads). */
static void over_images(const geom *g, tg_range_fn fn, conv_job *j) {
    if (g->N >= tg_get_num_threads() && g->N > 1)
        tg_parallel_for(g->N, image_grain(g), fn, j);
    else
        fn(0, g->N, j);
}

static tg_tensor *job_failed(tg_tensor *out, const char *who) {
    tg_tensor_release(out);
    return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory for the im2col buffer", who);
}

/* y = conv(x, w) + b; x, w, b contiguous of dtype dt.  New reference. */
static tg_tensor *conv_forward(const geom *g, tg_dtype dt, tg_tensor *x, tg_tensor *w, tg_tensor *b) {
    int64_t sh[4] = {g->N, g->O, g->OH, g->OW};
    tg_tensor *y = tg_tensor_empty(4, sh, dt);
    if (!y || y->numel == 0) return y;
    conv_job j = {.g = g, .dt = dt, .x = tg_tensor_data(x), .w = tg_tensor_data(w),
                  .b = b ? tg_tensor_data(b) : NULL, .out = tg_tensor_data(y)};
    over_images(g, fwd_range, &j);
    return j.failed ? job_failed(y, "conv2d") : y;
}

/* dx = conv^T(dy, w).  New reference. */
static tg_tensor *conv_input_grad(const geom *g, tg_dtype dt, tg_tensor *dy, tg_tensor *w) {
    int64_t sh[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dx = tg_tensor_empty(4, sh, dt);
    if (!dx || dx->numel == 0) return dx;
    conv_job j = {.g = g, .dt = dt, .w = tg_tensor_data(w), .dy = tg_tensor_data(dy),
                  .out = tg_tensor_data(dx)};
    over_images(g, dx_range, &j);
    return j.failed ? job_failed(dx, "conv2d_input_grad") : dx;
}

/* dw = sum_n dy_n @ im2col(x_n)^T.  New reference. */
static tg_tensor *conv_weight_grad(const geom *g, tg_dtype dt, tg_tensor *x, tg_tensor *dy) {
    int64_t sh[4] = {g->O, g->C, g->KH, g->KW};
    if (g->N == 0) return tg_tensor_zeros(4, sh, dt);
    tg_tensor *dw = tg_tensor_empty(4, sh, dt);
    if (!dw || dw->numel == 0) return dw;
    size_t isz = tg_dtype_size(dt);
    int64_t nw = dw->numel;
    /* The number of partial sums depends on the shapes only (never on the
     * thread count), so the result is the same with any number of threads. */
    int64_t nparts = g->N < CONV_MAX_DW_PARTS ? g->N : CONV_MAX_DW_PARTS;
    int64_t per_part = (g->N + nparts - 1) / nparts;
    int64_t want = image_grain(g); /* images a chunk should have */
    while (nparts > 1 && (per_part < want || (double)nparts * (double)nw * (double)isz > 64e6)) {
        nparts--;
        per_part = (g->N + nparts - 1) / nparts;
    }
    char *parts = nparts == 1 ? tg_tensor_data(dw) : tg__alloc((size_t)(nparts * nw) * isz, "conv2d_weight_grad");
    if (!parts) {
        tg_tensor_release(dw);
        return NULL;
    }
    conv_job j = {.g = g, .dt = dt, .x = tg_tensor_data(x), .dy = tg_tensor_data(dy), .out = parts,
                  .nparts = nparts};
    if (nparts > 1) tg_parallel_for(nparts, 1, dw_range, &j);
    else dw_range(0, 1, &j);
    if (nparts > 1) {
        if (!j.failed) { /* sum the parts in a fixed order */
            if (dt == TG_FLOAT32) {
                float *d = tg_tensor_data(dw);
                const float *p = (const float *)parts;
                for (int64_t i = 0; i < nw; i++) {
                    float s = p[i];
                    for (int64_t k = 1; k < nparts; k++) s += p[k * nw + i];
                    d[i] = s;
                }
            } else {
                double *d = tg_tensor_data(dw);
                const double *p = (const double *)parts;
                for (int64_t i = 0; i < nw; i++) {
                    double s = p[i];
                    for (int64_t k = 1; k < nparts; k++) s += p[k * nw + i];
                    d[i] = s;
                }
            }
        }
        tg__free(parts, (size_t)(nparts * nw) * isz);
    }
    return j.failed ? job_failed(dw, "conv2d_weight_grad") : dw;
}

/* ===================================================================== */
/* Argument checks                                                        */
/* ===================================================================== */

static tg_status need_float(const char *who, const char *what, const tg_tensor *t) {
    if (!t) return tg_error_set(TG_ERR_VALUE, "%s: %s is NULL", who, what);
    if (!tg_dtype_is_float(t->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 %s, got %s (shape %s)",
                            who, what, tg_dtype_name(t->dtype), tg__shp(t));
    return TG_OK;
}

static tg_status need_4d(const char *who, const char *what, const char *layout, const tg_tensor *t) {
    if (t->ndim != 4)
        return tg_error_set(TG_ERR_VALUE, "%s: expected a 4-D %s %s, got shape %s%s", who, what,
                            layout, tg__shp(t),
                            t->ndim == 3 && !strcmp(what, "input")
                                ? " (add a batch axis of size 1 for a single image)"
                                : "");
    return TG_OK;
}

/* The geometry of conv(x of shape xs, w of shape ws); checks the channels. */
static tg_status conv_geom(const char *who, const int64_t *xs, const int64_t *ws, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, geom *g) {
    if (xs[1] != ws[1])
        return tg_error_set(TG_ERR_VALUE,
                            "%s: input has %lld channels but weight expects %lld (weight shape %s); "
                            "input shape %s",
                            who, (long long)xs[1], (long long)ws[1], tg__shp2(4, ws), tg__shp2(4, xs));
    return make_geom(who, xs, ws[0], ws[2], ws[3], sh, sw, ph, pw, g);
}

/* dy must have the shape of conv's output for geometry g. */
static tg_status check_dy(const char *who, const tg_tensor *dy, const geom *g) {
    int64_t want[4] = {g->N, g->O, g->OH, g->OW};
    if (!tg__same_shape(dy->ndim, dy->shape, 4, want))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: grad_output has shape %s but the convolution's output has shape %s "
                            "(input %s, weight (%lld, %lld, %lld, %lld), stride (%lld, %lld), "
                            "padding (%lld, %lld))",
                            who, tg__shp(dy), tg__shp2(4, want),
                            tg__shp2(4, (int64_t[]){g->N, g->C, g->H, g->W}), (long long)g->O,
                            (long long)g->C, (long long)g->KH, (long long)g->KW, (long long)g->sh,
                            (long long)g->sw, (long long)g->ph, (long long)g->pw);
    return TG_OK;
}

static void store_conv_params(tg_entry *e, const int64_t *shape, int64_t sh, int64_t sw, int64_t ph,
                              int64_t pw) {
    e->params.i[0] = sh;
    e->params.i[1] = sw;
    e->params.i[2] = ph;
    e->params.i[3] = pw;
    e->params.ndim = 4;
    memcpy(e->params.shape, shape, 4 * sizeof *shape);
}

/* Record `out` for op with inputs in[0..n), saving in[0] and in[1]. */
static tg_tensor *finish_conv(const tg_opdef *op, int n, tg_tensor **in, tg_tensor *out,
                              const int64_t *pshape, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    tg_entry *e;
    out = tg__finish(op, n, in, out, &e);
    if (e) {
        store_conv_params(e, pshape, sh, sw, ph, pw);
        if (tg__save(e, in[0]) || tg__save(e, in[1])) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

/* ===================================================================== */
/* conv2d                                                                 */
/* ===================================================================== */

/* y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, KH, KW)) + b (O,) or no
 * bias (b NULL).  Returns a NEW reference (recorded on the tape when an
 * input requires grad; x and w are saved for backward); NULL with
 * TG_ERR_TYPE (int64) or TG_ERR_VALUE (shapes, stride, padding) or
 * TG_ERR_MEMORY set.  Arguments borrowed. */
tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *b, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw) {
    const char *who = "conv2d";
    if (need_float(who, "input", x) || need_float(who, "weight", w) ||
        (b && need_float(who, "bias", b)))
        return NULL;
    if (need_4d(who, "input", "(N, C, H, W)", x) ||
        need_4d(who, "weight", "(out_channels, in_channels, kH, kW)", w))
        return NULL;
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return TG_FAIL(TG_ERR_VALUE, "conv2d: bias has shape %s but the weight %s has %lld output "
                                     "channels (expected shape (%lld,))",
                       tg__shp(b), tg__shp(w), (long long)w->shape[0], (long long)w->shape[0]);
    geom g;
    if (conv_geom(who, x->shape, w->shape, sh, sw, ph, pw, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(x->dtype, w->dtype);
    if (b) dt = tg_dtype_promote(dt, b->dtype);
    tg_tensor *xc = dense(x, dt), *wc = xc ? dense(w, dt) : NULL;
    tg_tensor *bc = (wc && b) ? dense(b, dt) : NULL;
    tg_tensor *y = (wc && (bc || !b)) ? conv_forward(&g, dt, xc, wc, bc) : NULL;
    tg_tensor_release(xc);
    tg_tensor_release(wc);
    tg_tensor_release(bc);
    tg_tensor *in[3] = {x, w, b};
    return finish_conv(&tg_opdef_conv2d, b ? 3 : 2, in, y, x->shape, sh, sw, ph, pw);
}

static tg_status conv2d_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *w = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(w);
    const int64_t *p = e->params.i;
    if (tg_entry_needs_grad(e, 0))
        CHECK(gi[0] = tg_conv2d_input_grad(g, w, x->shape, p[0], p[1], p[2], p[3]));
    if (tg_entry_needs_grad(e, 1))
        CHECK(gi[1] = tg_conv2d_weight_grad(x, g, w->shape, p[0], p[1], p[2], p[3]));
    if (e->n_inputs == 3 && tg_entry_needs_grad(e, 2)) {
        int64_t axes[3] = {0, 2, 3};
        CHECK(gi[2] = tg_sum(g, axes, 3, false));
    }
    return TG_OK;
}
static tg_tensor *apply_conv2d(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2 && n != 3) return TG_FAIL(TG_ERR_VALUE, "conv2d: expected 2 or 3 inputs, got %d", n);
    return tg_conv2d(in[0], in[1], n == 3 ? in[2] : NULL, p->i[0], p->i[1], p->i[2], p->i[3]);
}
TG_DEFINE_OP(conv2d, .arity = -1, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x[n,c,i*sh+p-ph,j*sw+q-pw]",
             .forward_tex = "y_{noij} = b_o + \\sum_{c,p,q} w_{ocpq}\\, x_{n,c,\\,i s_h + p - p_h,\\,j s_w + q - p_w}",
             .vjp = "dx = conv2d_input_grad(dy, w), dw = conv2d_weight_grad(x, dy), db = sum(dy, (0, 2, 3))",
             .vjp_tex = "\\bar x = \\bar y \\star^{\\top} w,\\quad \\bar w = \\sum_n \\bar y_n \\star x_n,"
                        "\\quad \\bar b_o = \\sum_{n,i,j} \\bar y_{noij}",
             .doc = "2-D convolution (cross-correlation) of x (N, C, H, W) with w (O, C, kH, kW) and an "
                    "optional bias (O,), by im2col + GEMM; params i0, i1 = stride (h, w), i2, i3 = "
                    "padding (h, w).",
             .backward = conv2d_vjp, .apply = apply_conv2d,
             .examples = "2x3x6x5,4x3x3x2,4|i0=1 i1=2 i2=1 i3=0;"
                         "2x2x7x6,3x2x3x3|i0=2 i1=2 i2=0 i3=1;"
                         "T2x3x5x4,2x3x1x1,2|i0=1 i1=1 i2=0 i3=0;"
                         "1x2x4x5,3x2x2x3,3|i0=3 i1=1 i2=2 i3=2;"
                         "1x2x5x6,2x2x3x4,2|i0=2 i1=1 i2=1 i3=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

/* ===================================================================== */
/* conv2d_input_grad (dx, a transposed convolution)                       */
/* ===================================================================== */

/* dx (x_shape) = the transposed convolution of dy (N, O, OH, OW) with w
 * (O, C, KH, KW); dy must have conv2d's output shape for x_shape.  A NEW
 * reference (recorded, differentiable in dy and w) or NULL with the error
 * set.  Arguments borrowed; x_shape: 4 sizes, read only. */
tg_tensor *tg_conv2d_input_grad(tg_tensor *dy, tg_tensor *w, const int64_t *x_shape, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw) {
    const char *who = "conv2d_input_grad";
    if (need_float(who, "grad_output", dy) || need_float(who, "weight", w)) return NULL;
    if (need_4d(who, "grad_output", "(N, O, OH, OW)", dy) ||
        need_4d(who, "weight", "(out_channels, in_channels, kH, kW)", w))
        return NULL;
    if (!x_shape) return TG_FAIL(TG_ERR_VALUE, "%s: the input shape is NULL", who);
    for (int d = 0; d < 4; d++)
        if (x_shape[d] < 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: invalid input shape %s", who, tg__shp2(4, x_shape));
    geom g;
    if (conv_geom(who, x_shape, w->shape, sh, sw, ph, pw, &g) || check_dy(who, dy, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(dy->dtype, w->dtype);
    tg_tensor *dc = dense(dy, dt), *wc = dc ? dense(w, dt) : NULL;
    tg_tensor *dx = wc ? conv_input_grad(&g, dt, dc, wc) : NULL;
    tg_tensor_release(dc);
    tg_tensor_release(wc);
    tg_tensor *in[2] = {dy, w};
    return finish_conv(&tg_opdef_conv2d_input_grad, 2, in, dx, x_shape, sh, sw, ph, pw);
}

static tg_status conv2d_input_grad_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *dy = tg_entry_saved(e, 0), *w = dy ? tg_entry_saved(e, 1) : NULL;
    CHECK(w);
    const int64_t *p = e->params.i;
    if (tg_entry_needs_grad(e, 0)) CHECK(gi[0] = tg_conv2d(u, w, NULL, p[0], p[1], p[2], p[3]));
    if (tg_entry_needs_grad(e, 1))
        CHECK(gi[1] = tg_conv2d_weight_grad(u, dy, w->shape, p[0], p[1], p[2], p[3]));
    return TG_OK;
}
static tg_tensor *apply_conv2d_input_grad(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "conv2d_input_grad: shape= must give the 4-D input shape");
    return tg_conv2d_input_grad(in[0], in[1], p->shape, p->i[0], p->i[1], p->i[2], p->i[3]);
}
TG_DEFINE_OP(conv2d_input_grad, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "dx = col2im(w^T dy): the gradient of conv2d with respect to its input",
             .forward_tex = "\\bar x_{nc,\\,i s_h + p - p_h,\\,j s_w + q - p_w} \\mathrel{+}= \\sum_o w_{ocpq}\\, \\bar y_{noij}",
             .vjp = "d(dy) = conv2d(u, w), dw = conv2d_weight_grad(u, dy)",
             .vjp_tex = "\\bar{\\bar y} = u \\star w,\\quad \\bar w = \\sum_n \\bar y_n \\star u_n",
             .doc = "Transposed convolution: the VJP of conv2d for its input (inputs dy, w); shape = "
                    "the input's shape, i0..i3 = stride (h, w), padding (h, w).",
             .backward = conv2d_input_grad_vjp, .apply = apply_conv2d_input_grad,
             .examples = "2x4x6x2,4x3x3x2|shape=2,3,6,5 i0=1 i1=2 i2=1 i3=0;"
                         "2x3x2x3,3x2x3x3|shape=2,2,6,6 i0=2 i1=2 i2=0 i3=1;"
                         "T2x2x3x4,2x3x1x1|shape=2,3,3,4 i0=1 i1=1 i2=0 i3=0",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y;\\bar w");

/* ===================================================================== */
/* conv2d_weight_grad (dw)                                                */
/* ===================================================================== */

/* dw (w_shape = (O, C, KH, KW)) = sum over the images of dy_n correlated
 * with x_n; x (N, C, H, W), dy (N, O, OH, OW) the output shape of that
 * convolution.  A NEW reference (recorded, differentiable in x and dy) or
 * NULL with the error set.  Arguments borrowed; w_shape read only. */
tg_tensor *tg_conv2d_weight_grad(tg_tensor *x, tg_tensor *dy, const int64_t *w_shape, int64_t sh,
                                 int64_t sw, int64_t ph, int64_t pw) {
    const char *who = "conv2d_weight_grad";
    if (need_float(who, "input", x) || need_float(who, "grad_output", dy)) return NULL;
    if (need_4d(who, "input", "(N, C, H, W)", x) || need_4d(who, "grad_output", "(N, O, OH, OW)", dy))
        return NULL;
    if (!w_shape) return TG_FAIL(TG_ERR_VALUE, "%s: the weight shape is NULL", who);
    for (int d = 0; d < 4; d++)
        if (w_shape[d] < 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: invalid weight shape %s", who, tg__shp2(4, w_shape));
    geom g;
    if (conv_geom(who, x->shape, w_shape, sh, sw, ph, pw, &g) || check_dy(who, dy, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(x->dtype, dy->dtype);
    tg_tensor *xc = dense(x, dt), *dc = xc ? dense(dy, dt) : NULL;
    tg_tensor *dw = dc ? conv_weight_grad(&g, dt, xc, dc) : NULL;
    tg_tensor_release(xc);
    tg_tensor_release(dc);
    tg_tensor *in[2] = {x, dy};
    return finish_conv(&tg_opdef_conv2d_weight_grad, 2, in, dw, w_shape, sh, sw, ph, pw);
}

static tg_status conv2d_weight_grad_vjp(tg_entry *e, tg_tensor *v, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *dy = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(dy);
    const int64_t *p = e->params.i;
    if (tg_entry_needs_grad(e, 0))
        CHECK(gi[0] = tg_conv2d_input_grad(dy, v, x->shape, p[0], p[1], p[2], p[3]));
    if (tg_entry_needs_grad(e, 1)) CHECK(gi[1] = tg_conv2d(x, v, NULL, p[0], p[1], p[2], p[3]));
    return TG_OK;
}
static tg_tensor *apply_conv2d_weight_grad(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "conv2d_weight_grad: shape= must give the 4-D weight shape");
    return tg_conv2d_weight_grad(in[0], in[1], p->shape, p->i[0], p->i[1], p->i[2], p->i[3]);
}
TG_DEFINE_OP(conv2d_weight_grad, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "dw = sum_n dy_n im2col(x_n)^T: the gradient of conv2d with respect to its weight",
             .forward_tex = "\\bar w_{ocpq} = \\sum_{n,i,j} \\bar y_{noij}\\, x_{n,c,\\,i s_h + p - p_h,\\,j s_w + q - p_w}",
             .vjp = "dx = conv2d_input_grad(dy, v), d(dy) = conv2d(x, v)",
             .vjp_tex = "\\bar x = \\bar y \\star^{\\top} v,\\quad \\bar{\\bar y} = x \\star v",
             .doc = "The VJP of conv2d for its weight (inputs x, dy); shape = the weight's shape, "
                    "i0..i3 = stride (h, w), padding (h, w).",
             .backward = conv2d_weight_grad_vjp, .apply = apply_conv2d_weight_grad,
             .examples = "2x3x6x5,2x4x6x2|shape=4,3,3,2 i0=1 i1=2 i2=1 i3=0;"
                         "3x2x6x6,3x3x2x3|shape=3,2,3,3 i0=2 i1=2 i2=0 i3=1;"
                         "T2x3x3x4,2x2x3x4|shape=2,3,1,1 i0=1 i1=1 i2=0 i3=0;"
                         "2x2x5x7,2x3x6x3|shape=3,2,2,4 i0=1 i1=2 i2=1 i3=1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar x;\\bar y");

/* ===================================================================== */
/* Pooling                                                                */
/* ===================================================================== */

/* Checks shared by the pooling ops; fills g (O = C). */
static tg_status pool_geom(const char *who, const int64_t *xs, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, geom *g) {
    if (kh <= 0 || kw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size must be positive, got (%lld, %lld)", who,
                            (long long)kh, (long long)kw);
    if (ph >= 0 && pw >= 0 && (ph > kh / 2 || pw > kw / 2))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: padding (%lld, %lld) must be at most half of the kernel size "
                            "(%lld, %lld)",
                            who, (long long)ph, (long long)pw, (long long)kh, (long long)kw);
    if (xs[2] <= 0 || xs[3] <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: the input's height and width must be positive, got "
                                          "shape %s", who, tg__shp2(4, xs));
    return make_geom(who, xs, xs[1], kh, kw, sh, sw, ph, pw, g);
}

static void store_pool_params(tg_entry *e, const geom *g) {
    int64_t v[6] = {g->KH, g->KW, g->sh, g->sw, g->ph, g->pw};
    memcpy(e->params.ints, v, sizeof v);
    e->params.ndim = 4;
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    memcpy(e->params.shape, xs, sizeof xs);
}

/* Pooling job: planes [p0, p1) of N*C. */
typedef struct {
    const geom *g;
    tg_dtype dt;
    int kind; /* 0 max, 1 avg, 2 max backward, 3 avg backward */
    const void *in;
    const int64_t *idx_in;
    void *out;
    int64_t *idx_out;
} pool_job;

static void pool_range(int64_t p0, int64_t p1, void *vjob) {
    const pool_job *j = vjob;
    bool f = j->dt == TG_FLOAT32;
    switch (j->kind) {
    case 0:
        if (f) maxpool_f32(j->g, p0, p1, j->in, j->out, j->idx_out);
        else maxpool_f64(j->g, p0, p1, j->in, j->out, j->idx_out);
        break;
    case 1:
        if (f) avgpool_f32(j->g, p0, p1, j->in, j->out);
        else avgpool_f64(j->g, p0, p1, j->in, j->out);
        break;
    case 2:
        if (f) maxpool_bw_f32(j->g, p0, p1, j->in, j->idx_in, j->out);
        else maxpool_bw_f64(j->g, p0, p1, j->in, j->idx_in, j->out);
        break;
    default:
        if (f) avgpool_bw_f32(j->g, p0, p1, j->in, j->out);
        else avgpool_bw_f64(j->g, p0, p1, j->in, j->out);
        break;
    }
}

static void run_pool(pool_job *j) {
    const geom *g = j->g;
    int64_t planes = g->N * g->C;
    double work = (double)(g->OH * g->OW) * (double)(g->KH * g->KW) + (double)(g->H * g->W);
    double gr = ceil(CONV_MIN_WORK_PER_CHUNK / (work > 0 ? work : 1));
    tg_parallel_for(planes, gr > (double)planes ? planes : (int64_t)gr, pool_range, j);
}

/* ---- max_pool2d ---------------------------------------------------------- */

static tg_tensor *max_pool2d_backward(tg_tensor *dy, tg_tensor *idx, const geom *g);

/* y (N, C, OH, OW) = the max of each (kh, kw) window of x (N, C, H, W),
 * padding -inf.  A NEW reference (recorded with the int64 positions of the
 * maxima saved) or NULL with the error set.  x borrowed. */
tg_tensor *tg_max_pool2d(tg_tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw) {
    const char *who = "max_pool2d";
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    geom g;
    if (pool_geom(who, x->shape, kh, kw, sh, sw, ph, pw, &g)) return NULL;
    int64_t os[4] = {g.N, g.C, g.OH, g.OW};
    bool rec = tg__should_record(1, &x);
    tg_tensor *xc = dense(x, x->dtype);
    tg_tensor *out = xc ? tg_tensor_empty(4, os, x->dtype) : NULL;
    tg_tensor *idx = (out && rec) ? tg_tensor_empty(4, os, TG_INT64) : NULL;
    if (!out || (rec && !idx)) {
        tg_tensor_release(xc);
        tg_tensor_release(out);
        return NULL;
    }
    if (out->numel > 0) {
        pool_job j = {.g = &g, .dt = x->dtype, .kind = 0, .in = tg_tensor_data(xc),
                      .out = tg_tensor_data(out), .idx_out = idx ? tg_tensor_data(idx) : NULL};
        run_pool(&j);
    }
    tg_tensor_release(xc);
    tg_entry *e;
    out = tg__finish(&tg_opdef_max_pool2d, 1, &x, out, &e);
    if (e) {
        store_pool_params(e, &g);
        if (tg__save(e, idx)) {
            tg_tensor_release(out);
            out = NULL;
        }
    }
    tg_tensor_release(idx);
    return out;
}

static tg_status max_pool2d_vjp(tg_entry *e, tg_tensor *dy, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *idx = tg_entry_saved(e, 0);
    CHECK(idx);
    const int64_t *k = e->params.ints;
    geom g;
    CHECK(pool_geom("max_pool2d", e->params.shape, k[0], k[1], k[2], k[3], k[4], k[5], &g) == TG_OK);
    CHECK(gi[0] = max_pool2d_backward(dy, idx, &g));
    return TG_OK;
}
static tg_tensor *apply_max_pool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const int64_t *k = p->ints;
    return tg_max_pool2d(in[0], k[0], k[1], k[2], k[3], k[4], k[5]);
}
TG_DEFINE_OP(max_pool2d, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y[n,c,i,j] = max over the window (i*sh-ph .. +kh, j*sw-pw .. +kw) of x, padding -inf",
             .forward_tex = "y_{ncij} = \\max_{p<k_h,\\,q<k_w} x_{n,c,\\,i s_h + p - p_h,\\,j s_w + q - p_w}",
             .vjp = "dx = max_pool2d_backward(dy, argmax): dy goes to the (first) maximum of each window",
             .vjp_tex = "\\bar x_{nc,\\,\\arg\\max(i,j)} \\mathrel{+}= \\bar y_{ncij}",
             .doc = "2-D max pooling of x (N, C, H, W); ints = kh, kw, sh, sw, ph, pw (padding at most "
                    "half the kernel, as in PyTorch).",
             .backward = max_pool2d_vjp, .apply = apply_max_pool2d,
             .examples = "2x3x6x5|ints=2,2,2,2,0,0;2x2x7x6|ints=3,2,2,1,1,1;T2x3x5x4|ints=3,3,1,1,1,0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* dx (N, C, H, W) = 0; dx[n, c, idx] += dy[n, c, ...].  Records max_pool2d_backward. */
static tg_tensor *max_pool2d_backward(tg_tensor *dy, tg_tensor *idx, const geom *g) {
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dc = dense(dy, dy->dtype);
    tg_tensor *ic = dc ? dense(idx, TG_INT64) : NULL;
    tg_tensor *dx = ic ? tg_tensor_empty(4, xs, dy->dtype) : NULL;
    if (dx && dx->numel > 0) {
        pool_job j = {.g = g, .dt = dy->dtype, .kind = 2, .in = tg_tensor_data(dc),
                      .idx_in = tg_tensor_data(ic), .out = tg_tensor_data(dx)};
        run_pool(&j);
    }
    tg_tensor_release(dc);
    tg_tensor_release(ic);
    tg_tensor *in[2] = {dy, idx};
    tg_entry *e;
    dx = tg__finish(&tg_opdef_max_pool2d_backward, 2, in, dx, &e);
    if (e) store_pool_params(e, g);
    return dx;
}
static tg_status max_pool2d_backward_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* d(dy)[n, c, o] = u[n, c, idx[n, c, o]]: a gather over the flattened planes */
    tg_tensor *dy = e->inputs[0], *idx = e->inputs[1];
    int64_t N = e->params.shape[0], C = e->params.shape[1];
    int64_t us[2] = {N * C, e->params.shape[2] * e->params.shape[3]};
    int64_t is[2] = {N * C, dy->shape[2] * dy->shape[3]};
    tg_tensor *u2 = tg_reshape(u, 2, us);
    tg_tensor *i2 = u2 ? tg_reshape(idx, 2, is) : NULL;
    tg_tensor *g2 = i2 ? tg_gather(u2, 1, i2) : NULL;
    tg_tensor_release(u2);
    tg_tensor_release(i2);
    CHECK(g2);
    gi[0] = tg_reshape(g2, 4, dy->shape);
    tg_tensor_release(g2);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_max_pool2d_backward(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const char *who = "max_pool2d_backward";
    tg_tensor *dy = in[0], *idx = in[1];
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "%s: shape= must give the 4-D input shape", who);
    if (need_float(who, "grad_output", dy) || need_4d(who, "grad_output", "(N, C, OH, OW)", dy)) return NULL;
    if (idx->dtype != TG_INT64 || !tg__same_shape(idx->ndim, idx->shape, 4, dy->shape))
        return TG_FAIL(TG_ERR_VALUE, "%s: indices must be int64 of shape %s, got %s %s", who,
                       tg__shp(dy), tg_dtype_name(idx->dtype), tg__shp(idx));
    const int64_t *s = p->shape;
    if (s[0] != dy->shape[0] || s[1] != dy->shape[1] || s[2] < 0 || s[3] < 0)
        return TG_FAIL(TG_ERR_VALUE, "%s: input shape %s does not match grad_output %s", who,
                       tg__shp2(4, s), tg__shp(dy));
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        if (v < 0 || v >= s[2] * s[3])
            return TG_FAIL(TG_ERR_INDEX, "%s: index %lld is outside a %lld x %lld plane", who,
                           (long long)v, (long long)s[2], (long long)s[3]);
    }
    /* only the plane sizes matter to the scatter: a geometry whose output is dy's */
    geom g = {.N = s[0], .C = s[1], .H = s[2], .W = s[3], .O = s[1], .KH = 1, .KW = 1, .sh = 1,
              .sw = 1, .OH = dy->shape[2], .OW = dy->shape[3]};
    return max_pool2d_backward(dy, idx, &g);
}
TG_DEFINE_OP(max_pool2d_backward, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64; indices int64",
             .forward = "dx = zeros(x.shape); dx[n, c, idx[n,c,i,j]] += dy[n,c,i,j]",
             .forward_tex = "\\bar x_{nc,\\,\\mathrm{idx}_{ncij}} \\mathrel{+}= \\bar y_{ncij}",
             .vjp = "d(dy)[n,c,i,j] = u[n, c, idx[n,c,i,j]] (a gather)",
             .vjp_tex = "\\bar{\\bar y}_{ncij} = u_{nc,\\,\\mathrm{idx}_{ncij}}",
             .doc = "The VJP of max_pool2d: scatter-add dy to the saved flat positions h*W + w of "
                    "the maxima (inputs dy, idx int64); shape = the input's shape.",
             .backward = max_pool2d_backward_vjp, .apply = apply_max_pool2d_backward,
             .examples = "2x3x3x2,i30:2x3x3x2|shape=2,3,6,5;1x2x2x2,i4:1x2x2x2|shape=1,2,2,2",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y");

/* ---- avg_pool2d ---------------------------------------------------------- */

static tg_tensor *avg_pool2d_backward(tg_tensor *dy, const geom *g);

/* y (N, C, OH, OW) = the mean of each (kh, kw) window of x (N, C, H, W),
 * padding counted as zeros.  A NEW reference (recorded) or NULL with the
 * error set.  x borrowed. */
tg_tensor *tg_avg_pool2d(tg_tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw) {
    const char *who = "avg_pool2d";
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    geom g;
    if (pool_geom(who, x->shape, kh, kw, sh, sw, ph, pw, &g)) return NULL;
    int64_t os[4] = {g.N, g.C, g.OH, g.OW};
    tg_tensor *xc = dense(x, x->dtype);
    tg_tensor *out = xc ? tg_tensor_empty(4, os, x->dtype) : NULL;
    if (out && out->numel > 0) {
        pool_job j = {.g = &g, .dt = x->dtype, .kind = 1, .in = tg_tensor_data(xc),
                      .out = tg_tensor_data(out)};
        run_pool(&j);
    }
    tg_tensor_release(xc);
    tg_entry *e;
    out = tg__finish(&tg_opdef_avg_pool2d, 1, &x, out, &e);
    if (e) store_pool_params(e, &g);
    return out;
}
static tg_status avg_pool2d_vjp(tg_entry *e, tg_tensor *dy, tg_tensor **gi, void *ctx) {
    (void)ctx;
    const int64_t *k = e->params.ints;
    geom g;
    CHECK(pool_geom("avg_pool2d", e->params.shape, k[0], k[1], k[2], k[3], k[4], k[5], &g) == TG_OK);
    CHECK(gi[0] = avg_pool2d_backward(dy, &g));
    return TG_OK;
}
static tg_tensor *apply_avg_pool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const int64_t *k = p->ints;
    return tg_avg_pool2d(in[0], k[0], k[1], k[2], k[3], k[4], k[5]);
}
TG_DEFINE_OP(avg_pool2d, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y[n,c,i,j] = sum over the window of x / (kh*kw), padding counted as zeros",
             .forward_tex = "y_{ncij} = \\frac{1}{k_h k_w} \\sum_{p<k_h,\\,q<k_w} x_{n,c,\\,i s_h + p - p_h,\\,j s_w + q - p_w}",
             .vjp = "dx = avg_pool2d_backward(dy): dy / (kh*kw) spread over each window",
             .vjp_tex = "\\bar x_{nc,\\,i s_h + p - p_h,\\,j s_w + q - p_w} \\mathrel{+}= \\bar y_{ncij} / (k_h k_w)",
             .doc = "2-D average pooling of x (N, C, H, W) (count_include_pad, as PyTorch's default); "
                    "ints = kh, kw, sh, sw, ph, pw.",
             .backward = avg_pool2d_vjp, .apply = apply_avg_pool2d,
             .examples = "2x3x6x5|ints=2,2,2,2,0,0;2x2x7x6|ints=3,2,2,1,1,1;T2x3x5x4|ints=3,3,1,1,1,0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* dx = the adjoint of avg_pool2d applied to dy.  Records avg_pool2d_backward. */
static tg_tensor *avg_pool2d_backward(tg_tensor *dy, const geom *g) {
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dc = dense(dy, dy->dtype);
    tg_tensor *dx = dc ? tg_tensor_empty(4, xs, dy->dtype) : NULL;
    if (dx && dx->numel > 0) {
        pool_job j = {.g = g, .dt = dy->dtype, .kind = 3, .in = tg_tensor_data(dc),
                      .out = tg_tensor_data(dx)};
        run_pool(&j);
    }
    tg_tensor_release(dc);
    tg_entry *e;
    dx = tg__finish(&tg_opdef_avg_pool2d_backward, 1, &dy, dx, &e);
    if (e) store_pool_params(e, g);
    return dx;
}
static tg_status avg_pool2d_backward_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    const int64_t *k = e->params.ints;
    CHECK(gi[0] = tg_avg_pool2d(u, k[0], k[1], k[2], k[3], k[4], k[5]));
    return TG_OK;
}
static tg_tensor *apply_avg_pool2d_backward(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const char *who = "avg_pool2d_backward";
    tg_tensor *dy = in[0];
    const int64_t *k = p->ints;
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "%s: shape= must give the 4-D input shape", who);
    if (need_float(who, "grad_output", dy) || need_4d(who, "grad_output", "(N, C, OH, OW)", dy)) return NULL;
    for (int d = 0; d < 4; d++)
        if (p->shape[d] < 0) return TG_FAIL(TG_ERR_VALUE, "%s: invalid input shape %s", who, tg__shp2(4, p->shape));
    geom g;
    if (pool_geom(who, p->shape, k[0], k[1], k[2], k[3], k[4], k[5], &g)) return NULL;
    int64_t want[4] = {g.N, g.C, g.OH, g.OW};
    if (!tg__same_shape(4, dy->shape, 4, want))
        return TG_FAIL(TG_ERR_VALUE, "%s: grad_output has shape %s, expected %s for input %s", who,
                       tg__shp(dy), tg__shp2(4, want), tg__shp2(4, p->shape));
    return avg_pool2d_backward(dy, &g);
}
TG_DEFINE_OP(avg_pool2d_backward, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "dx = zeros(x.shape); each window of dx += dy[n,c,i,j] / (kh*kw)",
             .forward_tex = "\\bar x_{nc,\\,i s_h + p - p_h,\\,j s_w + q - p_w} \\mathrel{+}= \\bar y_{ncij} / (k_h k_w)",
             .vjp = "d(dy) = avg_pool2d(u)", .vjp_tex = "\\bar{\\bar y} = \\operatorname{avgpool}(u)",
             .doc = "The VJP of avg_pool2d (input dy); shape = the input's shape, ints = kh, kw, sh, sw, "
                    "ph, pw.",
             .backward = avg_pool2d_backward_vjp, .apply = apply_avg_pool2d_backward,
             .examples = "2x3x3x2|shape=2,3,6,5 ints=2,2,2,2,0,0;2x2x4x7|shape=2,2,7,6 ints=3,2,2,1,1,1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y");
