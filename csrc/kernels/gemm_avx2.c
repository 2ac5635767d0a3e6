/*
 * gemm_avx2.c -- the AVX2 + FMA micro-kernels (see gemm.c for the lesson,
 * gemm.h for the contract of a micro-kernel).
 *
 * The register tile.  An AVX2 register (ymm) holds 8 floats or 4 doubles,
 * and x86-64 has 16 of them.  The micro-kernel keeps an MR x NR tile of C in
 * registers for the whole k loop, so its size is set by the register file:
 *
 *     f32: MR x NR = 6 x 16  ->  6 rows x 2 ymm = 12 accumulators
 *     f64: MR x NR = 6 x 8   ->  6 rows x 2 ymm = 12 accumulators
 *
 * plus 2 registers for the current row of B and 1 for a broadcast element of
 * A: 15 of the 16 registers.  Each k step does 2 loads of B, 6 broadcasts of
 * A and 12 FMAs.  A core with two FMA units (Haswell and later, AMD Zen)
 * needs at least 2 x (FMA latency 4-5 cycles) = 8-10 independent FMAs in
 * flight to stay busy: 12 independent accumulators are enough, and 12 FMAs
 * per 8 loads keeps the load ports below their limit.  A squarer tile (8 x 8
 * floats = 8 accumulators) would leave the FMA units waiting.
 *
 * The functions carry TG_TARGET("avx2,fma") (compiler.h: GCC's and clang's
 * __attribute__((target(...))); cl.exe needs nothing) so this file compiles
 * with no special flags; gemm.c only calls them after the CPU has said it
 * has AVX2 and FMA (dispatch.c).
 */
#define TG_GEMM_INTERNAL
#include "gemm.h"

#ifdef TG_ARCH_X86
#include <immintrin.h>

/* Fully unroll the loops over the tile: with constant trip counts the
 * accumulator arrays then become plain registers (without it gcc keeps the
 * arrays on the stack and stores every accumulator on every k step). */
#define TG_UNROLL TG_PRAGMA_UNROLL(16)

#define MR_F32 TG_GEMM_AVX2_MR_F32
#define NV_F32 (TG_GEMM_AVX2_NR_F32 / 8)/* ymm registers per row */
#define MR_F64 TG_GEMM_AVX2_MR_F64
#define NV_F64 (TG_GEMM_AVX2_NR_F64 / 4)

/* C[0:6, 0:16] = alpha * A @ Bp + beta * C, float32, with A(i, p) at
 * A[i * rsa + p * csa]: both micro-kernels below are this one body (inlined,
 * so the strides are constants for the packed kernel). */
TG_TARGET("avx2,fma")
static TG_ALWAYS_INLINE void ukr_f32(int64_t kc, float alpha, const float *A, int64_t rsa, int64_t csa,
                                     const float *Bp, float beta, float *C, int64_t rsc)
{
    /* The tile of C lives in acc[][] (12 registers) for the whole loop. */
    __m256 acc[MR_F32][NV_F32];
    TG_UNROLL for (int i = 0; i < MR_F32; ++i)
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            acc[i][v] = _mm256_setzero_ps();

    /* Ask for C's rows now: they are needed only after the loop, and the
     * loads then hit the cache. */
    TG_UNROLL for (int i = 0; i < MR_F32; ++i)
        _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);

    /* A's rows' offsets, loop-invariant (0, 1, 2, ... for a packed panel) */
    int64_t off[MR_F32];
    TG_UNROLL for (int i = 0; i < MR_F32; ++i)
        off[i] = i * rsa;

    /* The rank-1 updates: acc += A[:, p] (column of A) x Bp[p, :] (row of B).
     * (Unrolling by 4 saves a little loop overhead: measured +5-10%.) */
    TG_PRAGMA_UNROLL(4)
    for (int64_t p = 0; p < kc; ++p) {
        __m256 b[NV_F32];
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            b[v] = _mm256_loadu_ps(Bp + 8 * v);
        TG_UNROLL for (int i = 0; i < MR_F32; ++i) {
            __m256 a = _mm256_broadcast_ss(A + off[i]);     /* A(i, p) in all 8 lanes */
            TG_UNROLL for (int v = 0; v < NV_F32; ++v)
                acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
        }
        A += csa;
        Bp += 8 * NV_F32;
    }

    /* Write back: C = (alpha * acc) + (beta * C), never reading C if beta == 0. */
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v)
                _mm256_storeu_ps(C + i * rsc + 8 * v, _mm256_mul_ps(va, acc[i][v]));
    } else {
        __m256 vb = _mm256_set1_ps(beta);
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v) {
                float *c = C + i * rsc + 8 * v;
                __m256 old = _mm256_mul_ps(vb, _mm256_loadu_ps(c));
                _mm256_storeu_ps(c, _mm256_add_ps(_mm256_mul_ps(va, acc[i][v]), old));
            }
    }
}

/* The packed micro-kernel (contract in gemm.h): a packed micro-panel of A
 * is A with rsa = 1 and csa = MR. */
TG_TARGET("avx2,fma")
void tg_gemm_ukr_avx2_f32(int64_t kc, float alpha, const float *Ap,
                          const float *Bp, float beta, float *C, int64_t rsc)
{
    ukr_f32(kc, alpha, Ap, 1, MR_F32, Bp, beta, C, rsc);
}

/* C[0:6, 0:8] = alpha * A @ Bp + beta * C, float64, with A(i, p) at
 * A[i * rsa + p * csa]: both micro-kernels below are this one body (inlined,
 * so the strides are constants for the packed kernel). */
TG_TARGET("avx2,fma")
static TG_ALWAYS_INLINE void ukr_f64(int64_t kc, double alpha, const double *A, int64_t rsa, int64_t csa,
                                     const double *Bp, double beta, double *C, int64_t rsc)
{
    __m256d acc[MR_F64][NV_F64];
    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            acc[i][v] = _mm256_setzero_pd();

    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);

    /* A's rows' offsets, loop-invariant (0, 1, 2, ... for a packed panel) */
    int64_t off[MR_F64];
    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        off[i] = i * rsa;

    TG_PRAGMA_UNROLL(4)
    for (int64_t p = 0; p < kc; ++p) {
        __m256d b[NV_F64];
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            b[v] = _mm256_loadu_pd(Bp + 4 * v);
        TG_UNROLL for (int i = 0; i < MR_F64; ++i) {
            __m256d a = _mm256_broadcast_sd(A + off[i]);
            TG_UNROLL for (int v = 0; v < NV_F64; ++v)
                acc[i][v] = _mm256_fmadd_pd(a, b[v], acc[i][v]);
        }
        A += csa;
        Bp += 4 * NV_F64;
    }

    __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v)
                _mm256_storeu_pd(C + i * rsc + 4 * v, _mm256_mul_pd(va, acc[i][v]));
    } else {
        __m256d vb = _mm256_set1_pd(beta);
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v) {
                double *c = C + i * rsc + 4 * v;
                __m256d old = _mm256_mul_pd(vb, _mm256_loadu_pd(c));
                _mm256_storeu_pd(c, _mm256_add_pd(_mm256_mul_pd(va, acc[i][v]), old));
            }
    }
}

/* The packed micro-kernel (contract in gemm.h): a packed micro-panel of A
 * is A with rsa = 1 and csa = MR. */
TG_TARGET("avx2,fma")
void tg_gemm_ukr_avx2_f64(int64_t kc, double alpha, const double *Ap,
                          const double *Bp, double beta, double *C, int64_t rsc)
{
    ukr_f64(kc, alpha, Ap, 1, MR_F64, Bp, beta, C, rsc);
}

/* The direct kernels (gemm_avx512.c explains them): the same tile and the
 * same FMAs in the same order as above, with A(i, p) read in place at
 * A[i * rsa + p * csa] instead of from a packed micro-panel. */
TG_TARGET("avx2,fma")
void tg_gemm_ukr_direct_avx2_f32(int64_t kc, float alpha, const float *A, int64_t rsa,
                                 int64_t csa, const float *Bp, float beta, float *C, int64_t rsc)
{
    ukr_f32(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
}

/* The same in float64. */
TG_TARGET("avx2,fma")
void tg_gemm_ukr_direct_avx2_f64(int64_t kc, double alpha, const double *A, int64_t rsa,
                                 int64_t csa, const double *Bp, double beta, double *C,
                                 int64_t rsc)
{
    ukr_f64(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
}

/* The transposing copy of packing (gemm.c, pack_lines) for whole f32
 * micro-panels of w lines (w a multiple of 8: the AVX2 kernel's 16-wide B
 * panels, the AVX-512 kernel's 8-row A panels and 32-wide B panels):
 *     dst[p*w + i] = src[i*ld + p],  i < w, p < kc.
 * Eight lines x eight values are loaded as eight registers and transposed
 * in registers (unpack, shuffle, swap 128-bit halves: 24 instructions), so
 * every store writes eight consecutive floats instead of one.  (The plain
 * C loop stores one float at a time, 32 bytes apart; for the small
 * products of attention, 64 x 64 x 32, it took a third of the time.) */
TG_TARGET("avx2")
void tg_gemm_pack_lines_avx2_f32(int64_t kc, const float *src, int64_t ld, int w, float *dst)
{
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int i0 = 0; i0 < w; i0 += 8) {
            __m256 r[8], t[8], s[8];
            TG_UNROLL for (int i = 0; i < 8; ++i)
                r[i] = _mm256_loadu_ps(src + (i0 + i) * ld + p);
            TG_UNROLL for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      /* a0 b0 a1 b1 | a4 b4 a5 b5 */
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  /* a2 b2 a3 b3 | a6 b6 a7 b7 */
            }
            TG_UNROLL for (int i = 0; i < 8; i += 4) {
                s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
                s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
                s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
                s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
            }
            /* s[0..3]: values p..p+3 of lines 0-3 (low half) and p+4..p+7
             * (high half); s[4..7] the same for lines 4-7 */
            TG_UNROLL for (int j = 0; j < 4; ++j) {
                _mm256_storeu_ps(dst + (p + j) * w + i0, _mm256_permute2f128_ps(s[j], s[j + 4], 0x20));
                _mm256_storeu_ps(dst + (p + j + 4) * w + i0, _mm256_permute2f128_ps(s[j], s[j + 4], 0x31));
            }
        }
    }
    for (; p < kc; ++p)
        for (int i = 0; i < w; ++i)
            dst[p * w + i] = src[i * ld + p];
}

/* The plain copy of packing (gemm.c, pack_a when the packed lines are
 * already contiguous in memory: a transposed A, a row-major B): for every
 * p < kc, npanels pieces of `piece` bytes (32, 64 or 128), read side by
 * side from src + p * ld and dealt out to the micro-panels,
 *     dst + q * panel + p * piece  <-  src + p * ld + q * piece,  q < npanels.
 * Byte counts, so that one function serves float and double.  The generic
 * code's memcpy of a constant size compiles to 16-byte moves in the
 * baseline x86-64 build; here each piece is one to four 32-byte moves. */
TG_TARGET("avx2")
void tg_gemm_pack_copy_avx2(int64_t kc, int64_t npanels, const void *src, int64_t ld,
                            int piece, int64_t panel, void *dst)
{
    const char *s = src;
    char *d = dst;
    for (int64_t p = 0; p < kc; ++p, s += ld, d += piece) {
        const char *sp = s;
        char *dp = d;
        switch (piece) {
        case 32:
            for (int64_t q = 0; q < npanels; ++q, sp += 32, dp += panel)
                _mm256_storeu_si256((__m256i *)dp, _mm256_loadu_si256((const __m256i *)sp));
            break;
        case 64:
            for (int64_t q = 0; q < npanels; ++q, sp += 64, dp += panel) {
                __m256i a = _mm256_loadu_si256((const __m256i *)sp);
                __m256i b = _mm256_loadu_si256((const __m256i *)(sp + 32));
                _mm256_storeu_si256((__m256i *)dp, a);
                _mm256_storeu_si256((__m256i *)(dp + 32), b);
            }
            break;
        default: /* 128 */
            for (int64_t q = 0; q < npanels; ++q, sp += 128, dp += panel) {
                __m256i a = _mm256_loadu_si256((const __m256i *)sp);
                __m256i b = _mm256_loadu_si256((const __m256i *)(sp + 32));
                __m256i c = _mm256_loadu_si256((const __m256i *)(sp + 64));
                __m256i e = _mm256_loadu_si256((const __m256i *)(sp + 96));
                _mm256_storeu_si256((__m256i *)dp, a);
                _mm256_storeu_si256((__m256i *)(dp + 32), b);
                _mm256_storeu_si256((__m256i *)(dp + 64), c);
                _mm256_storeu_si256((__m256i *)(dp + 96), e);
            }
            break;
        }
    }
}

#else
/* Not x86: no AVX2 kernels; gemm.c uses the generic one.  (ISO C forbids an
 * empty translation unit.) */
typedef int tg_gemm_avx2_unused;
#endif
