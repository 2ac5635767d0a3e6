/*
 * conv_small.c -- direct convolution for few input channels (conv_small.h).
 *
 * Why.  The first layer of an image network sees 1-3 channels: the MNIST
 * CNN's conv1 (1 -> 16, 5x5, padding 2, 28x28).  As a GEMM its products
 * are degenerate (K = C*KH*KW = 25 for the forward pass, M = O = 16 and N
 * = 25 for the weight gradient), so gemm.c's packed kernel spends as long
 * packing as multiplying, and Winograd loses 3-7x (conv.c's table).  Here
 * the convolution is written out along the output row:
 *
 *   forward  a row chunk of 16 outputs of OBF output channels (16 on
 *            AVX-512: 16 zmm accumulators) is summed over the taps (c, kh,
 *            kw): one load of 16 inputs, OBF broadcast weights;
 *   dw       for a tap row (c, kh), OBW output channels x KW taps of 16
 *            lanes each (4 x 5 = 20 zmm accumulators) summed over the
 *            images' rows: per row chunk, OBW loads of dy and KW of x for
 *            OBW*KW products.  A lane j sums the products of the output
 *            columns c0 + j (c0 a multiple of 16), over the images, rows
 *            and chunks in order; the 16 lanes are added at the end in a
 *            fixed tree (8, 4, 2, 1 apart).
 *
 * Each image is first copied zero-padded (C, Hx, Wx) with Wx = OW rounded
 * up to 16, plus KW - 1, so that no load needs a bounds check; the
 * forward's last chunk of a row stores its first OW % 16 lanes only, dw's
 * last chunk adds only those lanes (a masked add, not a multiplication by
 * zero: an inf past the row's end must not make a NaN).
 *
 * Same bits everywhere.  A lane is a lane whatever register holds it: the
 * AVX-512 build (zmm), the AVX2 build (two ymm per 16 lanes) and the plain
 * C build (16 floats, fmaf) do the same fused multiply-adds in the same
 * order; the blocking (OBF, OBW) changes which sums share a loop, not any
 * sum's order.  FMA, not a multiplication and an addition: an output is
 * then the sum gemm.c's SIMD kernels make for the implicit GEMM (from 0,
 * the taps in order, then + bias), bit for bit.  With a multiplication and
 * an addition (first version), 60 % of conv1's outputs differed from the
 * GEMM's (and PyTorch's) in the last bit, and three Adam steps of the
 * CNN's test (tests/python/test_cnn_model.py, seed 3) moved 6 % of conv1's
 * weights and 2 of its 16 biases by more than 1e-5 from PyTorch's (a max
 * pooling decided by a rounding); with FMA none moved.  The weight gradient's work is cut by output
 * channels (4 per task, every image in each), so it needs no partial sums
 * and its bits do not depend on the number of threads; the forward's by
 * images.  The SIMD builds are self-tested against the plain one at the
 * first call (as winograd.c's transforms; TAPEGRAD_DISABLE_CPU_FEATURES
 * picks a lower build).
 *
 * Measured (conv1 of the MNIST CNN, batch 32, one thread, best of 40,
 * loaded machine), see conv.c's header for the table.
 */
#include "conv_small.h"
#include "compiler.h"
#include "dispatch.h"
#include "scratch.h"
#include "threadpool.h"

#include <math.h>
#include <string.h>

#ifdef TG_X86_INTRIN
#include <immintrin.h>
#endif

/* Sizes of one call: the geometry plus the padded image's (Hx, Wx). */
typedef struct {
    int64_t N, C, H, W, O, KH, KW, pt, pl, OH, OW, Hx, Wx;
} cs_dims;

#define CS_UNROLL TG_PRAGMA_UNROLL(32)

/* ---- plain C: the reference build --------------------------------------- */
typedef struct {
    float v[16];
} vf_base;
static inline vf_base vzero_base(void) {
    vf_base r;
    for (int j = 0; j < 16; j++) r.v[j] = 0.0f;
    return r;
}
static inline vf_base vld_base(const float *p) {
    vf_base r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}
static inline vf_base vldn_base(const float *p, int n) {
    vf_base r;
    for (int j = 0; j < 16; j++) r.v[j] = j < n ? p[j] : 0.0f;
    return r;
}
static inline vf_base vbc_base(const float *p) {
    vf_base r;
    for (int j = 0; j < 16; j++) r.v[j] = *p;
    return r;
}
static inline vf_base vadd_base(vf_base a, vf_base b) {
    for (int j = 0; j < 16; j++) a.v[j] = a.v[j] + b.v[j];
    return a;
}
/* a * b + c rounded once (fmaf: one instruction on arm64 and where the
 * C library finds FMA at run time), as the SIMD builds' FMA */
static inline vf_base vfma_base(vf_base a, vf_base b, vf_base c) {
    for (int j = 0; j < 16; j++) c.v[j] = fmaf(a.v[j], b.v[j], c.v[j]);
    return c;
}
/* the same on lanes j < n; the others keep c */
static inline vf_base vfman_base(vf_base a, vf_base b, vf_base c, int n) {
    for (int j = 0; j < n; j++) c.v[j] = fmaf(a.v[j], b.v[j], c.v[j]);
    return c;
}
static inline void vst_base(float *p, vf_base a) { memcpy(p, a.v, sizeof a.v); }
static inline void vstn_base(float *p, vf_base a, int n) { memcpy(p, a.v, (size_t)n * sizeof(float)); }

#define CS_NAME(n) n##_base
#define CS_ATTR
#define VF vf_base
#define VZERO vzero_base
#define VLD vld_base
#define VLDN vldn_base
#define VBC vbc_base
#define VADD vadd_base
#define VFMA vfma_base
#define VFMAN vfman_base
#define VST vst_base
#define VSTN vstn_base
#define OBF 4
#define OBW(kw) 1
#include "conv_small_impl.h" /* it undefines its parameters at its end */

#ifdef TG_X86_INTRIN
/* ---- AVX2: 16 lanes in two ymm ------------------------------------------ */
typedef struct {
    __m256 a, b;
} vf_avx2;
#define A2 TG_TARGET("avx2,fma") static TG_ALWAYS_INLINE
A2 vf_avx2 vzero_avx2(void) {
    vf_avx2 r = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    return r;
}
A2 vf_avx2 vld_avx2(const float *p) {
    vf_avx2 r = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
    return r;
}
/* lanes j < n of the 16 (n in 1..16): all ones in ma (0..7), mb (8..15) */
A2 __m256i mask_lo_avx2(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
A2 __m256i mask_hi_avx2(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
}
A2 vf_avx2 vldn_avx2(const float *p, int n) {
    vf_avx2 r = {_mm256_maskload_ps(p, mask_lo_avx2(n)), _mm256_maskload_ps(p + 8, mask_hi_avx2(n))};
    return r;
}
A2 vf_avx2 vbc_avx2(const float *p) {
    __m256 v = _mm256_broadcast_ss(p);
    vf_avx2 r = {v, v};
    return r;
}
A2 vf_avx2 vadd_avx2(vf_avx2 x, vf_avx2 y) {
    vf_avx2 r = {_mm256_add_ps(x.a, y.a), _mm256_add_ps(x.b, y.b)};
    return r;
}
A2 vf_avx2 vfma_avx2(vf_avx2 x, vf_avx2 y, vf_avx2 z) {
    vf_avx2 r = {_mm256_fmadd_ps(x.a, y.a, z.a), _mm256_fmadd_ps(x.b, y.b, z.b)};
    return r;
}
A2 vf_avx2 vfman_avx2(vf_avx2 x, vf_avx2 y, vf_avx2 z, int n) {
    vf_avx2 r = {_mm256_blendv_ps(z.a, _mm256_fmadd_ps(x.a, y.a, z.a), _mm256_castsi256_ps(mask_lo_avx2(n))),
                 _mm256_blendv_ps(z.b, _mm256_fmadd_ps(x.b, y.b, z.b), _mm256_castsi256_ps(mask_hi_avx2(n)))};
    return r;
}
A2 void vst_avx2(float *p, vf_avx2 x) {
    _mm256_storeu_ps(p, x.a);
    _mm256_storeu_ps(p + 8, x.b);
}
A2 void vstn_avx2(float *p, vf_avx2 x, int n) {
    _mm256_maskstore_ps(p, mask_lo_avx2(n), x.a);
    _mm256_maskstore_ps(p + 8, mask_hi_avx2(n), x.b);
}
#undef A2

#define CS_NAME(n) n##_avx2
#define CS_ATTR TG_TARGET("avx2,fma")
#define VF vf_avx2
#define VZERO vzero_avx2
#define VLD vld_avx2
#define VLDN vldn_avx2
#define VBC vbc_avx2
#define VADD vadd_avx2
#define VFMA vfma_avx2
#define VFMAN vfman_avx2
#define VST vst_avx2
#define VSTN vstn_avx2
#define OBF 4
#define OBW(kw) 1
#include "conv_small_impl.h" /* it undefines its parameters at its end */

/* ---- AVX-512: 16 lanes in one zmm --------------------------------------- */
#define A5 TG_TARGET("avx512f") static TG_ALWAYS_INLINE
A5 __mmask16 mask_avx512(int n) { return (__mmask16)((1u << n) - 1u); }
A5 __m512 vzero_avx512(void) { return _mm512_setzero_ps(); }
A5 __m512 vld_avx512(const float *p) { return _mm512_loadu_ps(p); }
A5 __m512 vldn_avx512(const float *p, int n) { return _mm512_maskz_loadu_ps(mask_avx512(n), p); }
A5 __m512 vbc_avx512(const float *p) { return _mm512_set1_ps(*p); }
A5 __m512 vadd_avx512(__m512 x, __m512 y) { return _mm512_add_ps(x, y); }
A5 __m512 vfma_avx512(__m512 x, __m512 y, __m512 z) { return _mm512_fmadd_ps(x, y, z); }
A5 __m512 vfman_avx512(__m512 x, __m512 y, __m512 z, int n) {
    return _mm512_mask3_fmadd_ps(x, y, z, mask_avx512(n));
}
A5 void vst_avx512(float *p, __m512 x) { _mm512_storeu_ps(p, x); }
A5 void vstn_avx512(float *p, __m512 x, int n) { _mm512_mask_storeu_ps(p, mask_avx512(n), x); }
#undef A5

#define CS_NAME(n) n##_avx512
#define CS_ATTR TG_TARGET("avx512f")
#define VF __m512
#define VZERO vzero_avx512
#define VLD vld_avx512
#define VLDN vldn_avx512
#define VBC vbc_avx512
#define VADD vadd_avx512
#define VFMA vfma_avx512
#define VFMAN vfman_avx512
#define VST vst_avx512
#define VSTN vstn_avx512
#define OBF 16
/* 4 x KW accumulators + 4 of dy + 1 of x within the 32 zmm */
#define OBW(kw) ((kw) <= 5 ? 4 : 3)
#include "conv_small_impl.h" /* it undefines its parameters at its end */
#endif

/* ---- dispatch ------------------------------------------------------------ */
typedef void (*cs_fwd_fn)(const cs_dims *, const float *restrict, const float *restrict,
                          const float *restrict, float *restrict);
typedef void (*cs_dw_fn)(const cs_dims *, const float *restrict, const float *restrict, int64_t,
                         int64_t, float *restrict, int);
typedef struct {
    cs_fwd_fn fwd;
    cs_dw_fn dw;
    int obf; /* output channels per forward block (the packed weights' layout) */
    const char *name;
} cs_fns;

static const cs_fns fns_base = {fwd_base, dw_base, 4, "baseline"};
#ifdef TG_X86_INTRIN
static const cs_fns fns_avx2 = {fwd_avx2, dw_avx2, 4, "avx2"};
static const cs_fns fns_avx512 = {fwd_avx512, dw_avx512, 16, "avx512"};
#endif

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

static cs_dims dims_of(const tg_csmall_geom *g) {
    cs_dims d = {.N = g->N, .C = g->C, .H = g->H, .W = g->W, .O = g->O, .KH = g->KH, .KW = g->KW,
                 .pt = g->pt, .pl = g->pl, .OH = g->OH, .OW = g->OW};
    d.Hx = g->OH + g->KH - 1;
    d.Wx = round16(g->OW) + g->KW - 1;
    return d;
}

/* xp (C, Hx, Wx) = image x (C, H, W) zero-padded. */
static void pad_image(const cs_dims *d, const float *x, float *xp) {
    memset(xp, 0, (size_t)(d->C * d->Hx * d->Wx) * sizeof(float));
    for (int64_t c = 0; c < d->C; c++)
        for (int64_t h = 0; h < d->H; h++)
            memcpy(xp + (c * d->Hx + h + d->pt) * d->Wx + d->pl, x + (c * d->H + h) * d->W,
                   (size_t)d->W * sizeof(float));
}

/* wt (O rounded up to obf, C, KH, KW, obf) = w (O, C, KH, KW), zeros for
 * the channels past O. */
static void pack_weights(const cs_dims *d, int obf, const float *w, float *wt) {
    int64_t K = d->C * d->KH * d->KW, Ob = (d->O + obf - 1) / obf * obf;
    for (int64_t ob = 0; ob < Ob; ob += obf)
        for (int64_t k = 0; k < K; k++)
            for (int64_t o = 0; o < obf; o++)
                wt[ob * K + k * obf + o] = ob + o < d->O ? w[(ob + o) * K + k] : 0.0f;
}

/* The 16 lanes of a sum, added 8, 4, 2, 1 apart. */
static float lane_sum(const float *l) {
    float t[16];
    memcpy(t, l, sizeof t);
    for (int s = 8; s >= 1; s /= 2)
        for (int j = 0; j < s; j++) t[j] = t[j] + t[j + s];
    return t[0];
}

typedef struct {
    const cs_dims *d;
    const cs_fns *f;
    const float *x, *w, *b, *dy;
    float *out;
    tg_atomic_int failed;
} cs_job;

static void fwd_range(int64_t n0, int64_t n1, void *vj) {
    cs_job *j = vj;
    const cs_dims *d = j->d;
    float *xp = tg_scratch_floats(d->C * d->Hx * d->Wx);
    if (!xp) {
        tg_atomic_store_relaxed_int(&j->failed, 1);
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        pad_image(d, j->x + n * d->C * d->H * d->W, xp);
        j->f->fwd(d, xp, j->w, j->b, j->out + n * d->O * d->OH * d->OW);
    }
    tg_scratch_free(xp);
}

/* Tasks t0..t1 of the weight gradient: output channels 4t .. 4t+3. */
static void dw_range(int64_t t0, int64_t t1, void *vj) {
    cs_job *j = vj;
    const cs_dims *d = j->d;
    int64_t K = d->C * d->KH * d->KW;
    float *xp = tg_scratch_floats(d->C * d->Hx * d->Wx), *acc = tg_scratch_floats(4 * K * 16);
    if (!xp || !acc) {
        tg_atomic_store_relaxed_int(&j->failed, 1);
        goto done;
    }
    for (int64_t t = t0; t < t1; t++) {
        int64_t o0 = 4 * t, ov = d->O - o0 < 4 ? d->O - o0 : 4;
        for (int64_t n = 0; n < d->N; n++) {
            pad_image(d, j->x + n * d->C * d->H * d->W, xp);
            j->f->dw(d, xp, j->dy + n * d->O * d->OH * d->OW, o0, ov, acc, n == 0);
        }
        for (int64_t o = 0; o < ov; o++)
            for (int64_t k = 0; k < K; k++) j->out[(o0 + o) * K + k] = lane_sum(acc + (o * K + k) * 16);
    }
done:
    tg_scratch_free(xp);
    tg_scratch_free(acc);
}

static int run_fwd(const cs_fns *f, const tg_csmall_geom *g, const float *x, const float *w,
                   const float *b, float *y, int threads) {
    cs_dims d = dims_of(g);
    int64_t Ob = (d.O + f->obf - 1) / f->obf * f->obf;
    float *wt = tg_scratch_floats(Ob * d.C * d.KH * d.KW);
    if (!wt) return -1;
    pack_weights(&d, f->obf, w, wt);
    cs_job j = {.d = &d, .f = f, .x = x, .w = wt, .b = b, .out = y};
    /* a chunk of images: at least 2^18 multiply-adds (as conv.c's) */
    double work = (double)d.O * (double)(d.C * d.KH * d.KW) * (double)(d.OH * d.OW);
    int64_t grain = work > 0 ? (int64_t)ceil(262144.0 / work) : 1;
    if (threads && d.N > 1 && tg_get_num_threads() > 1)
        tg_parallel_for(d.N, grain < 1 ? 1 : grain, fwd_range, &j);
    else
        fwd_range(0, d.N, &j);
    tg_scratch_free(wt);
    return j.failed ? -1 : 0;
}

static int run_dw(const cs_fns *f, const tg_csmall_geom *g, const float *x, const float *dy,
                  float *dw, int threads) {
    cs_dims d = dims_of(g);
    int64_t K = d.C * d.KH * d.KW;
    if (d.N == 0) {
        memset(dw, 0, (size_t)(d.O * K) * sizeof(float));
        return 0;
    }
    cs_job j = {.d = &d, .f = f, .x = x, .dy = dy, .out = dw};
    int64_t tasks = (d.O + 3) / 4;
    double work = 4.0 * (double)K * (double)(d.OH * d.OW) * (double)d.N;
    if (threads && tasks > 1 && work >= 262144.0 && tg_get_num_threads() > 1)
        tg_parallel_for(tasks, 1, dw_range, &j);
    else
        dw_range(0, tasks, &j);
    return j.failed ? -1 : 0;
}

/* ---- self-test and choice -------------------------------------------------- */
#ifdef TG_X86_INTRIN
/* The build f against the plain one on small fixed problems (rows of 18
 * and 15 outputs: a full chunk and remainders; 6 output channels: a part
 * block; 3x5 and 2x7 kernels; an inf in the input, also in the lanes past
 * a row's end): the same bits. */
static int same_as_base(const cs_fns *f) {
    enum { N = 2, C = 2, O = 6, H = 5, W = 19, NX = N * C * H * W };
    static const int64_t shapes[2][6] = {{3, 5, 1, 2, 2, 1}, {2, 7, 0, 1, 2, 0}}; /* KH KW pt pb pl pr */
    float x[NX], w[O * C * 2 * 8], b[O], dy[N * O * 8 * 32];
    uint32_t st = 2463534242u;
    for (int64_t s = 0; s < 2; s++) {
        const int64_t *sh = shapes[s];
        tg_csmall_geom g = {.N = N, .C = C, .H = H, .W = W, .O = O, .KH = sh[0], .KW = sh[1],
                            .pt = sh[2], .pb = sh[3], .pl = sh[4], .pr = sh[5]};
        g.OH = H + g.pt + g.pb - g.KH + 1;
        g.OW = W + g.pl + g.pr - g.KW + 1;
        float *all[4] = {x, w, b, dy};
        int64_t cnt[4] = {NX, O * C * g.KH * g.KW, O, N * O * g.OH * g.OW};
        for (int a = 0; a < 4; a++)
            for (int64_t i = 0; i < cnt[a]; i++) {
                st ^= st << 13, st ^= st >> 17, st ^= st << 5;
                all[a][i] = (float)((int32_t)(st >> 8) - (1 << 23)) / (float)(1 << 21);
            }
        x[W - 1] = TG_INFF; /* a row's last input: past OW in dw's padded lanes */
        float y1[N * O * 8 * 32], y2[N * O * 8 * 32], d1[O * C * 2 * 8], d2[O * C * 2 * 8];
        int64_t ny = N * O * g.OH * g.OW, nw = O * C * g.KH * g.KW;
        if (run_fwd(f, &g, x, w, b, y1, 0) || run_fwd(&fns_base, &g, x, w, b, y2, 0) ||
            run_dw(f, &g, x, dy, d1, 0) || run_dw(&fns_base, &g, x, dy, d2, 0))
            return 0;
        if (memcmp(y1, y2, (size_t)ny * sizeof(float)) || memcmp(d1, d2, (size_t)nw * sizeof(float)))
            return 0;
    }
    return 1;
}
static tg_atomic_int state; /* 0 unknown, 1 avx512, 2 avx2, 3 base */
#endif

static const cs_fns *pick(void) {
#ifdef TG_X86_INTRIN
    int s = tg_atomic_load_acquire_int(&state);
    if (!s) {
        s = 3;
        if (tg_cpu_has(TG_CPU_AVX512) && same_as_base(&fns_avx512))
            s = 1;
        else if (tg_cpu_has(TG_CPU_AVX2) && same_as_base(&fns_avx2))
            s = 2;
        if (tg_cpu_has(TG_CPU_AVX512) && s != 1)
            tg_dispatch_log("conv_small: the avx512 build differs from the plain one; not used");
        if (tg_cpu_has(TG_CPU_AVX2) && s == 3)
            tg_dispatch_log("conv_small: the avx2 build differs from the plain one; not used");
        tg_atomic_store_release_int(&state, s);
    }
    return s == 1 ? &fns_avx512 : s == 2 ? &fns_avx2 : &fns_base;
#else
    return &fns_base;
#endif
}

const char *tg_csmall_isa(void) { return pick()->name; }

int tg_csmall_supported(const tg_csmall_geom *g) {
    if (g->N < 0 || g->C <= 0 || g->O <= 0 || g->KH <= 0 || g->KW <= 0 || g->KW > 8 || g->OH <= 0 ||
        g->OW <= 0)
        return 0;
    if (g->OH != g->H + g->pt + g->pb - g->KH + 1 || g->OW != g->W + g->pl + g->pr - g->KW + 1)
        return 0;
    /* the padded image and the weight gradient's lanes stay small */
    double img = (double)g->C * (double)(g->OH + g->KH) * (double)(g->OW + 16 + g->KW);
    double lanes = 64.0 * (double)g->C * (double)(g->KH * g->KW);
    return img <= 4e6 && lanes <= 4e6 && (double)g->O * (double)g->C * (double)g->KH <= 1e8;
}

int tg_csmall_conv_f32(const tg_csmall_geom *g, const float *x, const float *w, const float *b,
                       float *y) {
    if (!tg_csmall_supported(g)) return -1;
    if (g->N == 0) return 0;
    return run_fwd(pick(), g, x, w, b, y, 1);
}

int tg_csmall_weight_grad_f32(const tg_csmall_geom *g, const float *x, const float *dy, float *dw) {
    if (!tg_csmall_supported(g)) return -1;
    return run_dw(pick(), g, x, dy, dw, 1);
}
