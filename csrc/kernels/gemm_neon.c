/*
 * gemm_neon.c -- the arm64 (AArch64 Advanced SIMD, "NEON") micro-kernels
 * (see gemm.c for the lesson, gemm.h for the contract of a micro-kernel).
 *
 * The register tile.  A NEON register holds 4 floats or 2 doubles, and
 * AArch64 has 32 of them (twice x86-64's 16, each half as wide as AVX2's).
 * As on x86 the MR x NR tile of C stays in registers for the whole k loop:
 *
 *     f32: MR x NR = 8 x 12  ->  8 rows x 3 registers = 24 accumulators
 *     f64: MR x NR = 6 x 8   ->  6 rows x 4 registers = 24 accumulators
 *
 * plus, per k step, the row of B (3 or 4 registers) and the column of A
 * (2 registers of 4 floats, or 3 of 2 doubles): 29 and 31 of the 32.
 *
 * The one new idea is the "by element" FMA.  x86 broadcasts A(i, p) into a
 * whole register before each FMA (_mm256_broadcast_ss); NEON's
 * vfmaq_laneq_f32(acc, b, a, lane) multiplies b by lane `lane` of register
 * a directly.  So the column of A is loaded with two ordinary vector loads
 * (8 floats) and every one of its elements is used in place: 2 loads of A
 * + 3 loads of B feed 24 FMAs, with no broadcast instructions at all.
 * (vfmaq_laneq_f64 does the same for doubles, lanes 0 and 1.)
 *
 * NEON is part of every AArch64 CPU, so no target attribute is needed and
 * the feature test always says yes; TAPEGRAD_DISABLE_CPU_FEATURES=neon
 * (or TAPEGRAD_GEMM=baseline) still forces the portable path for tests.
 * The results differ from the portable kernel only by rounding: one fused
 * multiply-add where the portable code rounds the product and the sum.
 */
#define TG_GEMM_INTERNAL
#include "gemm.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* Fully unroll the loops over the tile, so the accumulator arrays become
 * registers (as in gemm_avx2.c). */
#define TG_UNROLL TG_PRAGMA_UNROLL(16)

#define MR_F32 TG_GEMM_NEON_MR_F32
#define NV_F32 (TG_GEMM_NEON_NR_F32 / 4) /* registers per row of the tile */
#define MR_F64 TG_GEMM_NEON_MR_F64
#define NV_F64 (TG_GEMM_NEON_NR_F64 / 2)

/* acc[i][v] += A(i, p) * b[v], A(i, p) being lane i % 4 of a[i / 4]. */
#define FMA_ROW_F32(i)                                                          \
    TG_UNROLL for (int v = 0; v < NV_F32; ++v)                                  \
        acc[i][v] = vfmaq_laneq_f32(acc[i][v], b[v], a[(i) / 4], (i) % 4);

/* C[0:8, 0:12] = alpha * Ap @ Bp + beta * C, float32 (contract in gemm.h). */
void tg_gemm_ukr_neon_f32(int64_t kc, float alpha, const float *Ap,
                          const float *Bp, float beta, float *C, int64_t rsc)
{
    float32x4_t acc[MR_F32][NV_F32];
    TG_UNROLL for (int i = 0; i < MR_F32; ++i)
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            acc[i][v] = vdupq_n_f32(0.0f);

    for (int64_t p = 0; p < kc; ++p) {
        float32x4_t b[NV_F32], a[MR_F32 / 4];
        TG_UNROLL for (int v = 0; v < NV_F32; ++v)
            b[v] = vld1q_f32(Bp + 4 * v);
        TG_UNROLL for (int r = 0; r < MR_F32 / 4; ++r)
            a[r] = vld1q_f32(Ap + 4 * r);               /* A(0..7, p): 2 registers */
        /* the lane number must be a constant: one line per row */
        FMA_ROW_F32(0) FMA_ROW_F32(1) FMA_ROW_F32(2) FMA_ROW_F32(3)
        FMA_ROW_F32(4) FMA_ROW_F32(5) FMA_ROW_F32(6) FMA_ROW_F32(7)
        Ap += MR_F32;
        Bp += 4 * NV_F32;
    }

    /* Write back: C = (alpha * acc) + (beta * C), never reading C if beta == 0. */
    if (beta == 0.0f) {
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v)
                vst1q_f32(C + i * rsc + 4 * v, vmulq_n_f32(acc[i][v], alpha));
    } else {
        TG_UNROLL for (int i = 0; i < MR_F32; ++i)
            TG_UNROLL for (int v = 0; v < NV_F32; ++v) {
                float *c = C + i * rsc + 4 * v;
                float32x4_t old = vmulq_n_f32(vld1q_f32(c), beta);
                vst1q_f32(c, vaddq_f32(vmulq_n_f32(acc[i][v], alpha), old));
            }
    }
}

#define FMA_ROW_F64(i)                                                          \
    TG_UNROLL for (int v = 0; v < NV_F64; ++v)                                  \
        acc[i][v] = vfmaq_laneq_f64(acc[i][v], b[v], a[(i) / 2], (i) % 2);

/* C[0:6, 0:8] = alpha * Ap @ Bp + beta * C, float64 (contract in gemm.h). */
void tg_gemm_ukr_neon_f64(int64_t kc, double alpha, const double *Ap,
                          const double *Bp, double beta, double *C, int64_t rsc)
{
    float64x2_t acc[MR_F64][NV_F64];
    TG_UNROLL for (int i = 0; i < MR_F64; ++i)
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            acc[i][v] = vdupq_n_f64(0.0);

    for (int64_t p = 0; p < kc; ++p) {
        float64x2_t b[NV_F64], a[MR_F64 / 2];
        TG_UNROLL for (int v = 0; v < NV_F64; ++v)
            b[v] = vld1q_f64(Bp + 2 * v);
        TG_UNROLL for (int r = 0; r < MR_F64 / 2; ++r)
            a[r] = vld1q_f64(Ap + 2 * r);               /* A(0..5, p): 3 registers */
        FMA_ROW_F64(0) FMA_ROW_F64(1) FMA_ROW_F64(2)
        FMA_ROW_F64(3) FMA_ROW_F64(4) FMA_ROW_F64(5)
        Ap += MR_F64;
        Bp += 2 * NV_F64;
    }

    if (beta == 0.0) {
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v)
                vst1q_f64(C + i * rsc + 2 * v, vmulq_n_f64(acc[i][v], alpha));
    } else {
        TG_UNROLL for (int i = 0; i < MR_F64; ++i)
            TG_UNROLL for (int v = 0; v < NV_F64; ++v) {
                double *c = C + i * rsc + 2 * v;
                float64x2_t old = vmulq_n_f64(vld1q_f64(c), beta);
                vst1q_f64(c, vaddq_f64(vmulq_n_f64(acc[i][v], alpha), old));
            }
    }
}
#else
typedef int tg_gemm_neon_unused; /* ISO C: a translation unit is not empty */
#endif
