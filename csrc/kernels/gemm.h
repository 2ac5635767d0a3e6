/*
 * gemm.h -- general matrix multiply (GEMM) kernels for float and double.
 *
 *     C = alpha * op(A) @ op(B) + beta * C
 *
 * with op(A) of shape [M, K], op(B) of shape [K, N] and C of shape [M, N].
 *
 * Layout.  Every matrix is given as a base pointer plus a ROW stride and a
 * COLUMN stride, both counted in ELEMENTS: element (i, j) of A is
 * A[i * rsa + j * csa].  So one function covers every layout:
 *
 *     row-major A (lda = row length)       rsa = lda, csa = 1
 *     A transposed (A^T of a row-major A)  rsa = 1,   csa = lda
 *     every other column                   rsa = lda, csa = 2
 *     a broadcast row repeated M times     rsa = 0,   csa = 1
 *
 * Strides may be any value, including 0 and negative (reversed views).
 * C must not overlap A or B, and distinct (i, j) must address distinct
 * elements of C (no zero stride in C unless that dimension has size 1).
 *
 * Semantics (the same for every variant, as in the reference BLAS):
 *   - M <= 0 or N <= 0: nothing happens.
 *   - K <= 0 or alpha == 0: C = beta * C, and A and B are not read.
 *   - beta == 0: C is written without being read, so NaN or garbage in C
 *     never leaks into the result.
 *   - no allocation failure can crash: if the packing buffers cannot be
 *     allocated the product is computed by the reference kernel.
 * The functions are thread-safe (they may be called concurrently on
 * different C), and never fail.
 *
 * The lesson: gemm.c builds the fast kernel one step at a time, and each
 * step stays callable (tg_gemm_variant_f32) so that a notebook can time it.
 */
#ifndef TG_GEMM_H
#define TG_GEMM_H

#include <stdint.h>

#include "dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C[M,N], float32.
 * Picks the fastest path for the size: a simple loop for tiny products
 * (M*N*K <= 512) and for vector-matrix products (M == 1 or N == 1), else
 * the packed SIMD kernel, on as many pool threads (threadpool.h) as the
 * size pays for (about 4 Mflop per thread).  Safe to call from inside a
 * tg_parallel_for body (it then runs on the calling thread only). */
void tg_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t rsa, int64_t csa,
                 const float *B, int64_t rsb, int64_t csb,
                 float beta, float *C, int64_t rsc, int64_t csc);

/* The same in float64. */
void tg_gemm_f64(int64_t M, int64_t N, int64_t K, double alpha,
                 const double *A, int64_t rsa, int64_t csa,
                 const double *B, int64_t rsb, int64_t csb,
                 double beta, double *C, int64_t rsc, int64_t csc);

/* A batch of products with one shape: for every index i of a batch of
 * shape bshape[0..nbd) (nbd <= TG_GEMM_MAX_BATCH_DIMS),
 *     C_i[M,N] = alpha * A_i[M,K] @ B_i[K,N] + beta * C_i[M,N]
 * where A_i starts at A + sum_d i_d * bsa[d] (likewise B_i with bsb, C_i
 * with bsc; strides in elements, 0 for an operand shared by the batch) and
 * each matrix has the row and column strides given, as in tg_gemm_f32.
 * The C_i must not overlap each other, A or B.  Small items are dealt out
 * to the pool threads in chunks (packing buffers allocated once per chunk);
 * each item's result is exactly what tg_gemm_f32 gives for it, on any
 * number of threads.  Never fails (the reference kernel if memory is
 * short). */
#define TG_GEMM_MAX_BATCH_DIMS 16
void tg_gemm_batched_f32(int nbd, const int64_t *bshape, const int64_t *bsa,
                         const int64_t *bsb, const int64_t *bsc,
                         int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t rsa, int64_t csa,
                         const float *B, int64_t rsb, int64_t csb,
                         float beta, float *C, int64_t rsc, int64_t csc);

/* The same in float64. */
void tg_gemm_batched_f64(int nbd, const int64_t *bshape, const int64_t *bsa,
                         const int64_t *bsb, const int64_t *bsc,
                         int64_t M, int64_t N, int64_t K, double alpha,
                         const double *A, int64_t rsa, int64_t csa,
                         const double *B, int64_t rsb, int64_t csb,
                         double beta, double *C, int64_t rsc, int64_t csc);

/* Triangular products, for causal attention (ops/linalg.c, tri_matmul):
 * in each item's own row i, column j and inner index p,
 *   TG_TRI_LOWER_C  C = tril(alpha A @ B + beta C): C[i,j] = 0 for j > i
 *   TG_TRI_UPPER_C  C = triu(...):                  C[i,j] = 0 for j < i
 *   TG_TRI_LOWER_A  C = alpha tril(A) @ B + beta C: A[i,p] with p > i taken as 0
 *   TG_TRI_UPPER_A  C = alpha triu(A) @ B + beta C: A[i,p] with p < i taken as 0
 * "Taken as 0" whatever A holds there (NaN too): the packed kernel zeroes
 * those entries in its copy of A and never multiplies by them.  The tiles
 * of C outside the triangle, and the parts of K that a row block's kept
 * triangle does not reach, are skipped: about half the work of a square
 * product.  Items (and blocks of rows of one large item) are dealt out to
 * the pool threads; the result does not depend on the thread count.  Same
 * arguments and contract as tg_gemm_batched_* otherwise. */
typedef enum {
    TG_TRI_LOWER_C = 0,
    TG_TRI_UPPER_C,
    TG_TRI_LOWER_A,
    TG_TRI_UPPER_A,
    TG_TRI_N_MODES
} tg_gemm_tri;
void tg_gemm_tri_batched_f32(tg_gemm_tri tri, int nbd, const int64_t *bshape, const int64_t *bsa,
                             const int64_t *bsb, const int64_t *bsc,
                             int64_t M, int64_t N, int64_t K, float alpha,
                             const float *A, int64_t rsa, int64_t csa,
                             const float *B, int64_t rsb, int64_t csb,
                             float beta, float *C, int64_t rsc, int64_t csc);
void tg_gemm_tri_batched_f64(tg_gemm_tri tri, int nbd, const int64_t *bshape, const int64_t *bsa,
                             const int64_t *bsb, const int64_t *bsc,
                             int64_t M, int64_t N, int64_t K, double alpha,
                             const double *A, int64_t rsa, int64_t csa,
                             const double *B, int64_t rsb, int64_t csb,
                             double beta, double *C, int64_t rsc, int64_t csc);

/* The steps of the lesson, from the textbook loop to the threaded kernel. */
typedef enum {
    TG_GEMM_NAIVE = 0,        /* i-j-k triple loop, the textbook definition (the reference kernel) */
    TG_GEMM_REORDERED,        /* i-k-j loop order: unit-stride inner loop the compiler can vectorize */
    TG_GEMM_BLOCKED,          /* cache blocking, no packing */
    TG_GEMM_PACKED_SCALAR,    /* BLIS/GotoBLAS structure: pack panels of A and B, portable C micro-kernel */
    TG_GEMM_PACKED_SIMD,      /* same with the best SIMD micro-kernel for this CPU, one thread */
    TG_GEMM_PACKED_SIMD_MT,   /* same, threaded over the pool (what tg_gemm_* uses for large sizes) */
    TG_GEMM_N_VARIANTS
} tg_gemm_variant;

/* Short name of a variant ("naive", "reordered", "blocked", "packed_scalar",
 * "packed_simd", "packed_simd_mt"); "unknown" for an invalid value.
 * The string is static. */
const char *tg_gemm_variant_name(tg_gemm_variant v);

/* The SIMD micro-kernel in use: "avx512", "avx2" or "generic" (chosen once,
 * see below, unless overridden by tg_gemm_force_isa).  Static string. */
const char *tg_gemm_isa(void);

/* Run one variant of the lesson, with the semantics of tg_gemm_f32 (the
 * threaded variant uses every pool thread it can keep busy, whatever the
 * size).  Returns 0, or -1 (and does nothing) if v is not a valid variant. */
int tg_gemm_variant_f32(tg_gemm_variant v,
                        int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t rsa, int64_t csa,
                        const float *B, int64_t rsb, int64_t csb,
                        float beta, float *C, int64_t rsc, int64_t csc);

/* The same in float64. */
int tg_gemm_variant_f64(tg_gemm_variant v,
                        int64_t M, int64_t N, int64_t K, double alpha,
                        const double *A, int64_t rsa, int64_t csa,
                        const double *B, int64_t rsb, int64_t csb,
                        double beta, double *C, int64_t rsc, int64_t csc);

/* Choosing the micro-kernels.  The first GEMM of the process picks the best
 * row of the table this CPU can run ("avx512", then "avx2", then the
 * portable "generic"), or the one the environment variable TAPEGRAD_GEMM
 * names ("avx512", "avx2", "generic" or its alias "baseline").  A SIMD row
 * is used only after it passes a known-answer self-test against the
 * reference kernel (gemm.c, selftest; dispatch.h describes the scheme);
 * if it fails, or the CPU cannot run a forced row, the next row is used and
 * the dispatch log (tg_dispatch_log_copy) says why, once.  Thread-safe: the
 * choice is made once, under a lock. */

/* Use the micro-kernels of `isa` (a name as above), or make the default
 * choice again if isa is NULL.  Returns 0 if `isa` is now in use, or -1 if
 * it is refused -- an unknown name, a row this CPU cannot run (never
 * SIGILL), or one that failed its self-test -- and then leaves the choice
 * unchanged (tg_gemm_isa_refusal says why).  Process-wide; do not call
 * while other threads run GEMMs.  For tests and benchmarks. */
int tg_gemm_force_isa(const char *isa);

/* Why tg_gemm_force_isa(isa) would refuse isa ("this CPU lacks AVX-512F",
 * "it failed its self-test", ...), or "" if it would not.  Static string. */
const char *tg_gemm_isa_refusal(const char *isa);

/* Whether this CPU can run the micro-kernels of `isa` (self-test aside). */
int tg_gemm_isa_available(const char *isa);

/* The state of every compiled row, best first, into out[0..max) (see
 * tg_kernel_path_info in dispatch.h); returns the number of rows (3 on
 * x86-64, 1 elsewhere).  Makes the default choice if none was made. */
int tg_gemm_paths(tg_kernel_path_info *out, int max);

/* ------------------------------------------------------------------------
 * Internal: the micro-kernels, shared by gemm.c (which dispatches) and
 * gemm_avx2.c / gemm_avx512.c (which define them).  Not for other callers.
 *
 * A micro-kernel computes one MR x NR tile of C from packed panels:
 *
 *     C[0:MR, 0:NR] = alpha * Ap @ Bp + beta * C       (beta == 0: C not read)
 *
 * where Ap holds kc columns of MR values (Ap[p*MR + i] = A(i, p)) and Bp
 * holds kc rows of NR values (Bp[p*NR + j] = B(p, j)); kc >= 1.  C is a
 * full tile with row stride rsc and column stride 1.  The result is
 * computed as (alpha * acc) + (beta * C) with each product rounded, the same
 * expression gemm.c uses for edge tiles, so tiles do not depend on the path.
 * ------------------------------------------------------------------------ */
#ifdef TG_GEMM_INTERNAL
typedef void (*tg_gemm_ukr_f32)(int64_t kc, float alpha, const float *Ap,
                                const float *Bp, float beta, float *C, int64_t rsc);
typedef void (*tg_gemm_ukr_f64)(int64_t kc, double alpha, const double *Ap,
                                const double *Bp, double beta, double *C, int64_t rsc);
/* A direct micro-kernel: the same tile and arithmetic, with A(i, p) read
 * in place at A[i * rsa + p * csa] instead of from a packed panel. */
typedef void (*tg_gemm_ukr_direct_f32)(int64_t kc, float alpha, const float *A, int64_t rsa,
                                       int64_t csa, const float *Bp, float beta, float *C,
                                       int64_t rsc);
typedef void (*tg_gemm_ukr_direct_f64)(int64_t kc, double alpha, const double *A, int64_t rsa,
                                       int64_t csa, const double *Bp, double beta, double *C,
                                       int64_t rsc);

#ifdef TG_ARCH_X86
/* gemm_avx2.c: MR x NR = 6 x 16 (f32), 6 x 8 (f64); need AVX2 and FMA. */
#define TG_GEMM_AVX2_MR_F32 6
#define TG_GEMM_AVX2_NR_F32 16
#define TG_GEMM_AVX2_MR_F64 6
#define TG_GEMM_AVX2_NR_F64 8
void tg_gemm_ukr_avx2_f32(int64_t kc, float alpha, const float *Ap,
                          const float *Bp, float beta, float *C, int64_t rsc);
void tg_gemm_ukr_avx2_f64(int64_t kc, double alpha, const double *Ap,
                          const double *Bp, double beta, double *C, int64_t rsc);
/* The direct kernels (A read in place, as tg_gemm_ukr_direct_avx512_*). */
void tg_gemm_ukr_direct_avx2_f32(int64_t kc, float alpha, const float *A, int64_t rsa,
                                 int64_t csa, const float *Bp, float beta, float *C, int64_t rsc);
void tg_gemm_ukr_direct_avx2_f64(int64_t kc, double alpha, const double *A, int64_t rsa,
                                 int64_t csa, const double *Bp, double beta, double *C,
                                 int64_t rsc);
/* Transposing pack of w float lines, w a multiple of 8:
 * dst[p*w + i] = src[i*ld + p]. */
void tg_gemm_pack_lines_avx2_f32(int64_t kc, const float *src, int64_t ld, int w, float *dst);
/* Plain copy of whole micro-panel pieces (piece = 32, 64 or 128 bytes):
 * dst + q*panel + p*piece <- src + p*ld + q*piece, q < npanels, p < kc
 * (ld, panel in bytes). */
void tg_gemm_pack_copy_avx2(int64_t kc, int64_t npanels, const void *src, int64_t ld,
                            int piece, int64_t panel, void *dst);

/* gemm_avx512.c: MR x NR = 12 x 32 (f32), 12 x 16 (f64); need AVX-512F. */
#define TG_GEMM_AVX512_MR_F32 8
#define TG_GEMM_AVX512_NR_F32 32
#define TG_GEMM_AVX512_MR_F64 8
#define TG_GEMM_AVX512_NR_F64 16
void tg_gemm_ukr_avx512_f32(int64_t kc, float alpha, const float *Ap,
                            const float *Bp, float beta, float *C, int64_t rsc);
void tg_gemm_ukr_avx512_f64(int64_t kc, double alpha, const double *Ap,
                            const double *Bp, double beta, double *C, int64_t rsc);
/* The direct kernels: the same tile with A read in place, A(i, p) =
 * A[i * rsa + p * csa] (MR whole rows of A must exist), Bp packed. */
void tg_gemm_ukr_direct_avx512_f32(int64_t kc, float alpha, const float *A, int64_t rsa,
                                   int64_t csa, const float *Bp, float beta, float *C,
                                   int64_t rsc);
void tg_gemm_ukr_direct_avx512_f64(int64_t kc, double alpha, const double *A, int64_t rsa,
                                   int64_t csa, const double *Bp, double beta, double *C,
                                   int64_t rsc);
#endif

#if defined(__aarch64__)
/* gemm_neon.c: MR x NR = 8 x 12 (f32), 6 x 8 (f64); NEON (every AArch64 CPU). */
#define TG_GEMM_NEON_MR_F32 8
#define TG_GEMM_NEON_NR_F32 12
#define TG_GEMM_NEON_MR_F64 6
#define TG_GEMM_NEON_NR_F64 8
void tg_gemm_ukr_neon_f32(int64_t kc, float alpha, const float *Ap,
                          const float *Bp, float beta, float *C, int64_t rsc);
void tg_gemm_ukr_neon_f64(int64_t kc, double alpha, const double *Ap,
                          const double *Bp, double beta, double *C, int64_t rsc);
#endif

/* Testing hook: while `fail` is nonzero, every packing-buffer allocation
 * fails, so the tests can check the fallback to the reference kernel. */
void tg_gemm_testing_fail_alloc(int fail);

/* Testing hooks for the self-test.  Not thread-safe with running GEMMs.
 *   set_ukr: put micro-kernels f32 / f64 in row `isa` ("avx2", "avx512", "neon";
 *            NULL restores the row's own), then forget the choice and the
 *            self-test results, so that the next GEMM chooses again and
 *            tests the new kernels.  Returns 0, or -1 for another name.
 *   break:   set_ukr with the library's deliberately broken kernels: the
 *            row's own, followed by a wrong store at the tile's edge.
 *   reset:   forget the choice and the self-test results.
 *   selftest_runs: how many row self-tests this process has run. */
int tg_gemm_testing_set_ukr(const char *isa, tg_gemm_ukr_f32 f32, tg_gemm_ukr_f64 f64);
int tg_gemm_testing_break(const char *isa);
/* set_ukr_direct: put direct kernels (A read in place) in row `isa`
 * ("avx512" or "avx2"; NULL restores the row's own) and forget the choice,
 * as set_ukr does.  Returns 0, or -1 for a row without direct kernels. */
int tg_gemm_testing_set_ukr_direct(const char *isa, tg_gemm_ukr_direct_f32 f32,
                                   tg_gemm_ukr_direct_f64 f64);
void tg_gemm_testing_reset(void);
int tg_gemm_testing_selftest_runs(void);
#endif /* TG_GEMM_INTERNAL */

/* ------------------------------------------------------------------------
 * Implicit B (for the convolutions, csrc/ops/conv.c): the packed product
 *
 *     C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C[M,N]    (C row-major, csc = 1)
 *
 * where B is never stored: pack_b(ctx, pc, kc, jc, nc, nr, Bp) writes the
 * block B[pc:pc+kc, jc:jc+nc] as the micro-kernel's panels,
 *
 *     Bp[jr*kc + p*nr + j] = B(pc + p, jc + jr + j)   for jr = 0, nr, 2 nr, ...
 *
 * with zeros for the columns past nc of the last panel (round_up(nc, nr) *
 * kc elements).  Everything else is tg_gemm_*'s packed kernel with its block
 * sizes, so C gets the same bits as from tg_gemm_* with that B, on any
 * number of threads.  pack_b may be called concurrently from several pool
 * threads (for disjoint column ranges) when the call is not already inside
 * a tg_parallel_for body.
 *
 * Returns 0 when done, or -1 with C untouched when tg_gemm_* may not use
 * the packed kernel for these sizes (tiny products; at most 4 rows or 4
 * columns, which it computes as dot products or rows of C in registers
 * when the operands' layout allows) or the packing buffers cannot be
 * allocated: the caller then forms B and calls tg_gemm_*.  M <= 0, N <= 0, K <= 0 and alpha == 0 behave as in tg_gemm_*.
 * ------------------------------------------------------------------------ */
typedef void (*tg_gemm_packb_fn_f32)(void *ctx, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                                     int nr, float *Bp);
typedef void (*tg_gemm_packb_fn_f64)(void *ctx, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                                     int nr, double *Bp);
int tg_gemm_packb_f32(int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t rsa, int64_t csa,
                      tg_gemm_packb_fn_f32 pack_b, void *ctx,
                      float beta, float *C, int64_t rsc);
int tg_gemm_packb_f64(int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t rsa, int64_t csa,
                      tg_gemm_packb_fn_f64 pack_b, void *ctx,
                      double beta, double *C, int64_t rsc);

#ifdef __cplusplus
}
#endif

#endif /* TG_GEMM_H */
