/*
 * gemm_avx512.c -- the AVX-512F micro-kernels (see gemm.c for the lesson,
 * gemm.h for the contract of a micro-kernel, gemm_avx2.c for the AVX2
 * version, which has exactly the same shape).
 *
 * The register tile.  An AVX-512 register (zmm) holds 16 floats or 8
 * doubles, and there are 32 of them, so the tile can be larger:
 *
 *     f32: MR x NR = 8 x 32  ->  8 rows x 2 zmm = 16 accumulators
 *     f64: MR x NR = 8 x 16  ->  8 rows x 2 zmm = 16 accumulators
 *
 * plus 2 registers for the row of B and 1 for the broadcast of A.  Each k
 * step: 2 loads of B, 8 broadcasts of A, 16 FMAs.  With two 512-bit FMA
 * units and a 4-cycle latency at least 8 independent FMAs must be in
 * flight; 16 leave room to hide the loads.  (A 12 x 32 tile, 24
 * accumulators, would do fewer loads per FMA, but gcc 12 then runs out of
 * registers for the loop and spills a row of B to the stack on every step.)
 *
 * TG_TARGET("avx512f") (compiler.h) lets the file compile with no special
 * flags; gemm.c only calls these after the CPU has said it has AVX-512F.
 */
#define TG_GEMM_INTERNAL
#include "gemm.h"

#ifdef TG_ARCH_X86
#include <immintrin.h>

/* Fully unroll the loops over the tile: with constant trip counts the
 * accumulator arrays then become plain registers (without it gcc keeps the
 * arrays on the stack and stores every accumulator on every k step). */
#define TG_UNROLL TG_PRAGMA_UNROLL(16)

#define MR_F32 TG_GEMM_AVX512_MR_F32
#define NV_F32 (TG_GEMM_AVX512_NR_F32 / 16)   /* zmm registers per row */
#define MR_F64 TG_GEMM_AVX512_MR_F64
#define NV_F64 (TG_GEMM_AVX512_NR_F64 / 8)

/* C[0:12, 0:32] = alpha * A @ Bp + beta * C, float32, with A(i, p) at
 * A[i * rsa + p * csa]: both micro-kernels below are this one body (inlined,
 * so the strides are constants for the packed kernel). */
TG_TARGET("avx512f")
static TG_ALWAYS_INLINE void ukr_f32(int64_t kc, float alpha, const float *A, int64_t rsa, int64_t csa,
                                     const float *Bp, float beta, float *C, int64_t rsc)
{
    /* The tile of C lives in acc[][] (24 registers) for the whole loop. */
    __m512 acc[MR_F32][NV_F32];
    TG_UNROLL for (int i = 0; i < MR_F32; ++i)
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            acc[i][v] = _mm512_setzero_ps();

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
        __m512 b[NV_F32];
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            b[v] = _mm512_loadu_ps(Bp + 16 * v);
        TG_UNROLL for (int i = 0; i < MR_F32; ++i) {
            __m512 a = _mm512_set1_ps(A[off[i]]);     /* A(i, p) in all 16 lanes */
            TG_UNROLL for (int v = 0; v < NV_F32; ++v)
                acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
        }
        A += csa;
        Bp += 16 * NV_F32;
    }

    /* Write back: C = (alpha * acc) + (beta * C), never reading C if beta == 0. */
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v)
                _mm512_storeu_ps(C + i * rsc + 16 * v, _mm512_mul_ps(va, acc[i][v]));
    } else {
        __m512 vb = _mm512_set1_ps(beta);
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v) {
                float *c = C + i * rsc + 16 * v;
                __m512 old = _mm512_mul_ps(vb, _mm512_loadu_ps(c));
                _mm512_storeu_ps(c, _mm512_add_ps(_mm512_mul_ps(va, acc[i][v]), old));
            }
    }
}

/* The packed micro-kernel (contract in gemm.h): a packed micro-panel of A
 * is A with rsa = 1 and csa = MR. */
TG_TARGET("avx512f")
void tg_gemm_ukr_avx512_f32(int64_t kc, float alpha, const float *Ap,
                            const float *Bp, float beta, float *C, int64_t rsc)
{
    ukr_f32(kc, alpha, Ap, 1, MR_F32, Bp, beta, C, rsc);
}

/* C[0:12, 0:16] = alpha * A @ Bp + beta * C, float64, with A(i, p) at
 * A[i * rsa + p * csa]: both micro-kernels below are this one body (inlined,
 * so the strides are constants for the packed kernel). */
TG_TARGET("avx512f")
static TG_ALWAYS_INLINE void ukr_f64(int64_t kc, double alpha, const double *A, int64_t rsa, int64_t csa,
                                     const double *Bp, double beta, double *C, int64_t rsc)
{
    __m512d acc[MR_F64][NV_F64];
    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            acc[i][v] = _mm512_setzero_pd();

    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);

    /* A's rows' offsets, loop-invariant (0, 1, 2, ... for a packed panel) */
    int64_t off[MR_F64];
    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        off[i] = i * rsa;

    TG_PRAGMA_UNROLL(4)
    for (int64_t p = 0; p < kc; ++p) {
        __m512d b[NV_F64];
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            b[v] = _mm512_loadu_pd(Bp + 8 * v);
        TG_UNROLL for (int i = 0; i < MR_F64; ++i) {
            __m512d a = _mm512_set1_pd(A[off[i]]);
            TG_UNROLL for (int v = 0; v < NV_F64; ++v)
                acc[i][v] = _mm512_fmadd_pd(a, b[v], acc[i][v]);
        }
        A += csa;
        Bp += 8 * NV_F64;
    }

    __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0.0) {
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v)
                _mm512_storeu_pd(C + i * rsc + 8 * v, _mm512_mul_pd(va, acc[i][v]));
    } else {
        __m512d vb = _mm512_set1_pd(beta);
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v) {
                double *c = C + i * rsc + 8 * v;
                __m512d old = _mm512_mul_pd(vb, _mm512_loadu_pd(c));
                _mm512_storeu_pd(c, _mm512_add_pd(_mm512_mul_pd(va, acc[i][v]), old));
            }
    }
}

/* The packed micro-kernel (contract in gemm.h): a packed micro-panel of A
 * is A with rsa = 1 and csa = MR. */
TG_TARGET("avx512f")
void tg_gemm_ukr_avx512_f64(int64_t kc, double alpha, const double *Ap,
                            const double *Bp, double beta, double *C, int64_t rsc)
{
    ukr_f64(kc, alpha, Ap, 1, MR_F64, Bp, beta, C, rsc);
}

/* The direct ("no-pack") kernels: the same tile, the same FMAs in the same
 * order as above, but A(i, p) is read where it lies, A[i * rsa + p * csa],
 * instead of from a packed micro-panel.  For the small products of
 * attention (64 x 32 x 64, one or two micro-panels of B) every element of A
 * is used by one or two tiles only, so packing A copied it once more than it
 * was used (gemm.c, direct_block).  The broadcasts read the 8 rows (or,
 * for a transposed A, the 8 neighbours of a column) straight from the
 * operand; the result is bitwise the packed kernel's. */
TG_TARGET("avx512f")
void tg_gemm_ukr_direct_avx512_f32(int64_t kc, float alpha, const float *A, int64_t rsa,
                                   int64_t csa, const float *Bp, float beta, float *C,
                                   int64_t rsc)
{
    ukr_f32(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
}

/* The same in float64. */
TG_TARGET("avx512f")
void tg_gemm_ukr_direct_avx512_f64(int64_t kc, double alpha, const double *A, int64_t rsa,
                                   int64_t csa, const double *Bp, double beta, double *C,
                                   int64_t rsc)
{
    ukr_f64(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
}

#else
/* Not x86: no AVX-512 kernels; gemm.c uses the generic one.  (ISO C forbids an
 * empty translation unit.) */
typedef int tg_gemm_avx512_unused;
#endif
