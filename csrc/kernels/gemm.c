/*
 * gemm.c -- how a fast matrix multiply works, in six steps.
 *
 *     C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C[M,N]
 *
 * The contract is in gemm.h.  This file is written to be read from top to
 * bottom; every step is a variant you can call and time on its own
 * (tg_gemm_variant_f32, benchmarks/gemm_bench.c).
 *
 * ------------------------------------------------------------------------
 * Step 1, NAIVE: the definition.  C[i,j] = sum_k A[i,k] * B[k,j], loops
 * i, j, k.  2*M*N*K floating-point operations ("flops").  The inner loop
 * walks down a COLUMN of B: with row-major B every step jumps N elements,
 * so each multiply touches a new cache line, and the loop cannot use SIMD.
 * 0.4 GFLOP/s (f32, 1024^3) on the AMD EPYC core we measured on, which can
 * do about 80.
 *
 * Step 2, REORDERED: swap the two inner loops (i, k, j):
 *     for i, for k:   C[i, :] += A[i,k] * B[k, :]
 * Now the inner loop reads a row of B and updates a row of C, both with
 * unit stride: the compiler vectorizes it.  Fast while B fits in the cache
 * (14 GFLOP/s at 1024^3, where B is 4 MiB and the L3 32 MiB); for larger
 * matrices every row i streams all of B (K x N) from memory again, and
 * memory bandwidth, not arithmetic, becomes the limit (3.5 GFLOP/s at
 * 2048^3).
 *
 * Step 3, BLOCKED: cut the loops into blocks so that a block of B stays in
 * the cache while many rows of A use it.  Data loaded once from memory is
 * now reused many times: 8-9 GFLOP/s at 2048^3 and 3000^3, 2.3 times
 * step 2 (at 1024^3, where step 2 is fed from L3 already, the shorter
 * inner loops make it a little slower: 10).  But the inner loop still
 * loads and stores C on every multiply-add: the CPU does 2 loads + 1
 * store per FMA and the load/store units, not the FMA units, set the
 * speed.
 *
 * Step 4, PACKED (the GotoBLAS / BLIS algorithm).  Two ideas.
 *
 *   The micro-kernel.  Keep a small MR x NR tile of C in REGISTERS for a
 *   long run of k.  Each k step loads MR numbers of A and NR numbers of B
 *   and does MR*NR multiply-adds: with MR x NR = 6 x 16 that is 96 FMAs
 *   for 22 loads, and C is touched only once at the end.  The tile size is
 *   set by the register file (see gemm_avx2.c).  In portable C (a 4 x 8
 *   tile that the compiler vectorizes with baseline SSE2 only): 22 GFLOP/s
 *   at 1024^3.
 *
 *   Packing.  Before the micro-kernel runs, copy the blocks of A and B it
 *   will read into small contiguous buffers, in exactly the order the
 *   micro-kernel reads them:
 *     - Ap: MR rows of A interleaved column by column: Ap[p*MR + i] = A(i,p)
 *     - Bp: NR columns of B row by row:                 Bp[p*NR + j] = B(p,j)
 *   The copy costs O(MK + KN), the product O(MNK), and it buys a lot:
 *     - the micro-kernel reads two sequential streams, the best case for
 *       the cache, the prefetcher and the TLB, whatever A's and B's layout:
 *       transposes and general strides are handled here, once, and never
 *       reach the micro-kernel;
 *     - edges are padded with zeros to whole MR / NR panels, so the
 *       micro-kernel always computes a full tile and has no edge branches:
 *       a partial tile is computed into a scratch tile and only its valid
 *       part is copied to C.  (The padded rows and columns of the scratch
 *       tile are thrown away; padding them with zeros rather than leaving
 *       whatever the buffer held avoids reading uninitialised memory and
 *       the very slow arithmetic on denormal garbage.)
 *
 *   The five loops around the micro-kernel, each choosing which block
 *   stays in which cache level:
 *
 *     loop 5  for jc in [0, N) step NC        a panel of NC columns of B and C
 *     loop 4    for pc in [0, K) step KC      pack B[pc:+KC, jc:+NC] -> Bp: KC x NC, stays in L3
 *     loop 3      for ic in [0, M) step MC    pack A[ic:+MC, pc:+KC] -> Ap: MC x KC, stays in L2
 *     loop 2        for jr in [0, NC) step NR     one KC x NR micro-panel of Bp: stays in L1
 *     loop 1          for ir in [0, MC) step MR   one MR x KC micro-panel of Ap, streamed from L2
 *                       micro-kernel: C[ic+ir:+MR, jc+jr:+NR] += Ap_ir @ Bp_jr
 *
 *   Choosing the block sizes (the numbers are in the table near the end
 *   of the first part of this file).  For f32 on the machine we tuned on,
 *   an AMD EPYC (Zen 3) with L1d 32 KiB and L2 512 KiB per core and a
 *   shared L3 of 32 MiB:
 *     - MR x NR = 6 x 16: as many accumulators as the 16 vector registers
 *       allow (gemm_avx2.c explains).
 *     - KC: the KC x NR micro-panel of Bp is read again for every MR rows
 *       of Ap, so it should stay in L1: 512 * 16 * 4 bytes = 32 KiB, the
 *       whole L1d, while the MR x KC sliver of Ap (12 KiB) streams in from
 *       L2 beside it.  A long KC also spreads the cost of loading and
 *       storing the C tile (2 * MR * NR numbers) over more FMAs.  KC = 512.
 *     - MC: Ap (MC x KC) is read once for each micro-panel of Bp, so it
 *       must stay in L2, with room left for the Bp micro-panels passing
 *       through: 72 * 512 * 4 = 144 KiB.  MC is a multiple of MR.
 *     - NC: Bp (KC x NC) is reused by every ic block, so it should stay in
 *       L3: 512 * 4080 * 4 = 8 MiB.  NC is a multiple of NR; matrices up to
 *       NC columns wide need a single jc step.
 *   The cache sizes give the range, measurement picks the point: at
 *   1024^3, KC = 256 was 10-15% slower than 384..1024 (flat), and MC from
 *   48 to 96 was best, 144 and more up to 20% slower.  K is cut into equal
 *   blocks of at most KC (K = 600 runs as 300 + 300, not 512 + 88).
 *
 * Step 5, PACKED_SIMD: the same loops with a micro-kernel written with
 * AVX2/FMA or AVX-512 intrinsics (gemm_avx2.c, gemm_avx512.c), chosen at
 * run time: __builtin_cpu_supports() is asked once and the answer picks a
 * row of a table of kernels and block sizes.  The library itself is built
 * for the baseline x86-64 (no -march flags), so it runs on any x86-64 and
 * uses what the CPU has.  The portable C micro-kernel of step 4 is the
 * fallback on other CPUs.  A SIMD row is trusted only after a known-answer
 * self-test at its first use (selftest below): a kernel that never ran on
 * the machines it was written on must not give a silently wrong matmul on
 * the first machine that has the instructions.  With AVX2 + FMA: 73-76 GFLOP/s at 1024^3, about
 * 90% of OpenBLAS (NumPy) on the same core.
 *
 * Packing pays when a packed panel is read many times.  A product with at
 * most four micro-panels of B (N <= 128 on AVX-512, 64 on AVX2: attention's
 * 64 x 32 x 64 items, a 128-wide layer) reads each element of A at most four
 * times, and the copy is mostly overhead (a quarter of attention's products'
 * time).  There the AVX-512 and AVX2 rows use a "direct" micro-kernel that
 * broadcasts A(i, p) from the operand itself, through its strides
 * (direct_block; only rows short of a whole tile are packed): the same FMAs
 * in the same order, so the same bits.
 *
 * Step 6, PACKED_SIMD_MT: threads.  Loop 5's columns (or, for a tall C,
 * loop 3's rows) are split between the threads of the pool
 * (threadpool.h), each thread running the five loops on its own slab of C
 * with its own packing buffers.  Cores have private L1 and L2, so each
 * thread's Ap block stays in its own L2.  Splits fall on NR (or MR)
 * boundaries, so every element of C is computed by exactly the same
 * operations in the same order whatever the number of threads: results
 * are bitwise identical with 1 or 8 threads.  Two cores: 130-137 GFLOP/s
 * at 1024^3, 1.8-1.9 times one core.
 *
 * Step 6 for big C (at least 4 row blocks of MC per thread): slabs would
 * each pack all of A (or B) again, and a slab is only as fast as the core
 * it lands on.  So, as BLIS does, the threads first pack each kc x nc panel
 * of B together into one shared buffer, then take MC-row blocks of C one at
 * a time (gemm_shared_b).  Nothing is packed twice, and a core that is busy
 * with something else -- another program, or NumPy's BLAS threads, which
 * keep spinning for a tenth of a second after each call -- just computes
 * fewer blocks instead of making the whole product wait for its slab.
 *
 * Numbers: see benchmarks/gemm_bench.c and the table in its header.
 *
 * And the other end: a product with a few rows (or columns) -- one sample
 * through a layer, a matrix times a vector -- does so little work per
 * element of B that packing B costs more than the product, and the 8-row
 * tile would be mostly padding.  tg_gemm_* sends those to steps 2b (DOTS:
 * contiguous rows of A and columns of B, one dot product per element) and
 * 2c (ROWS: step 2 with a block of C's row held in registers), below step 2.
 *
 * ------------------------------------------------------------------------
 * How this file is compiled.  Most of the code is the same for float and
 * double, so it is written once, between the "#else" of the outer
 * "#ifndef TG_GEMM_TEMPLATE" and the final "#endif", using the type name
 * `real` and the name macro SFX():
 * the file includes ITSELF twice, first with real = float and SFX(x) =
 * x##_f32, then with real = double and SFX(x) = x##_f64.  So
 * `void SFX(tg_gemm)(...)` below defines tg_gemm_f32 and tg_gemm_f64.
 *
 * Rounding.  The build must not use -ffast-math, and must keep floating-
 * point contraction off (the default with -std=c11): the edge-tile code
 * computes (alpha * acc) + (beta * C) with the same roundings as the SIMD
 * kernels' write-back, so that edge and full tiles agree bit for bit.
 */
#ifndef TG_GEMM_TEMPLATE
/* ======================================================================
 * First pass: what is shared by both element types.
 * ====================================================================== */
#define TG_GEMM_INTERNAL
#include "gemm.h"
#include "scratch.h"
#include "threadpool.h"
#include "dispatch.h"
#include "vmath.h"

#include "platform.h"
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The portable micro-kernel's tile (any small values work; 4 x 8 lets the
 * compiler use 128-bit SIMD on the rows of B even in a baseline build). */
#define TG_GENERIC_MR 4
#define TG_GENERIC_NR 8

/* Largest MR * NR of any kernel (AVX-512 f32: 8 x 32): the scratch tile. */
#define TG_GEMM_MAX_TILE 256

/* Up to this many multiply-adds (M*N*K) tg_gemm_* uses the plain
 * REORDERED loop: packing, allocating the buffers and calling the kernel
 * are not paid back.  Measured with benchmarks/gemm_bench.c: the packed
 * kernel is already ahead from about 8 x 8 x 8 on. */
#define TG_GEMM_SMALL_MNK 512.0

/* A few rows: products with at most this many rows (or columns), whose
 * rows of A and columns of B are both contiguous, are dot products (DOTS
 * below); with at most this many rows, and rows of B and C contiguous, rows
 * of C kept in registers (ROWS below).  tg_gemm_packb declines them. */
#define TG_GEMM_FEW 4

/* tg_gemm_* gives each thread at least this many flops (2*M*N*K): waking
 * a sleeping worker costs ~10-50 us, the time of a few million flops. */
#define TG_GEMM_FLOPS_PER_THREAD 4.0e6

/* One kernel and its blocking, for one element type (see the lesson). */
typedef struct {
    int mr, nr;             /* register tile */
    int64_t mc, kc, nc;     /* cache blocks; mc % mr == 0, nc % nr == 0 */
    tg_gemm_ukr_f32 ukr;
    tg_gemm_ukr_direct_f32 ukr_direct;  /* the same tile reading A in place, or NULL */
} tg_gemm_kernel_f32;

typedef struct {
    int mr, nr;
    int64_t mc, kc, nc;
    tg_gemm_ukr_f64 ukr;
    tg_gemm_ukr_direct_f64 ukr_direct;
} tg_gemm_kernel_f64;

/* One row of the dispatch table. */
typedef struct {
    const char *name;       /* "generic", "avx2", "avx512" */
    tg_gemm_kernel_f32 f32;
    tg_gemm_kernel_f64 f64;
} tg_gemm_isa_desc;

/* Defined after the templates (they need the generic micro-kernels). */
static const tg_gemm_isa_desc *active_isa(void);
static tg_gemm_isa_desc isa_generic;

static int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t abs_i64(int64_t a) { return a < 0 ? -a : a; }
static int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

/* Testing hook state (gemm.h): nonzero makes pack_alloc fail. */
static atomic_int fail_alloc;

void tg_gemm_testing_fail_alloc(int fail) { atomic_store(&fail_alloc, fail != 0); }

/* A 64-byte aligned buffer (one cache line; the SIMD loads never straddle
 * lines when the panels are whole lines) of `bytes` bytes, to be released
 * with tg_scratch_free() (scratch.h: kept for reuse); NULL when out of memory. */
static void *pack_alloc(size_t bytes)
{
    if (atomic_load_explicit(&fail_alloc, memory_order_relaxed))
        return NULL;
    return tg_scratch_alloc((bytes + 63) / 64 * 64);
}

/* A SIMD version of the transposing pack for full float panels of a
 * multiple of 8 lines, installed when an AVX2 (or AVX-512) kernel is
 * chosen; NULL: plain C. */
typedef void (*tg_pack_lines_fn)(int64_t kc, const float *src, int64_t ld, int w, float *dst);
static _Atomic(tg_pack_lines_fn) simd_pack_lines_f32;

/* A SIMD version of the plain (non-transposing) copy of packing, for whole
 * micro-panel pieces of 32, 64 or 128 bytes (gemm_avx2.c), installed with
 * the AVX2 and AVX-512 kernels; NULL: plain C. */
typedef void (*tg_pack_copy_fn)(int64_t kc, int64_t npanels, const void *src, int64_t ld,
                                int piece, int64_t panel, void *dst);
static _Atomic(tg_pack_copy_fn) simd_pack_copy;

/* Instantiate the template below for both element types. */
#define TG_GEMM_TEMPLATE 1

#define real float
#define SFX(name) name##_f32
#define TG_TYPE_FIELD f32       /* member of tg_gemm_isa_desc for this type */
#define TG_VM_DOT dot_f32       /* members of tg_vmath_table (vmath.h) */
#define TG_VM_ROWMAT rowmat_f32
#include "gemm.c"
#undef real
#undef SFX
#undef TG_TYPE_FIELD
#undef TG_VM_DOT
#undef TG_VM_ROWMAT

#define real double
#define SFX(name) name##_f64
#define TG_TYPE_FIELD f64
#define TG_VM_DOT dot_f64
#define TG_VM_ROWMAT rowmat_f64
#include "gemm.c"
#undef real
#undef SFX
#undef TG_VM_DOT
#undef TG_VM_ROWMAT
#undef TG_TYPE_FIELD

/* ----------------------------------------------------------------------
 * Run-time dispatch: the table of kernels and block sizes, the CPU check,
 * and the known-answer self-test that a SIMD row must pass before its
 * first use (dispatch.h explains the scheme).
 * ---------------------------------------------------------------------- */

/* Portable C: the reference for the SIMD kernels.  (The rows are not const
 * only so that a test can put a deliberately broken kernel in one:
 * tg_gemm_testing_set_ukr.) */
static tg_gemm_isa_desc isa_generic = {
    "generic",
    { TG_GENERIC_MR, TG_GENERIC_NR, 128, 256, 4096, ukr_generic_f32, NULL },
    { TG_GENERIC_MR, TG_GENERIC_NR, 128, 256, 4096, ukr_generic_f64, NULL },
};

#ifdef TG_ARCH_X86
#define TG_GEMM_HAVE_X86 1
/* AVX2 + FMA, tuned on AMD EPYC (Zen 3).  f32: see the lesson above.
 * Direct kernels too (A read in place for narrow products: direct_block).
 * f64: the 6 x 8 tile is 6 x 2 registers as for f32, each element twice
 * as large: KC = 256 gives a 256 x 8 x 8 = 16 KiB micro-panel of B in L1,
 * Ap = 72 x 256 x 8 = 144 KiB in L2 as for f32, Bp = 256 x 4096 x 8 =
 * 8 MiB in L3.  (Measured: MC 24..72 and KC 256..512 within noise.) */
static tg_gemm_isa_desc isa_avx2 = {
    "avx2",
    { TG_GEMM_AVX2_MR_F32, TG_GEMM_AVX2_NR_F32, 72, 512, 4080, tg_gemm_ukr_avx2_f32,
      tg_gemm_ukr_direct_avx2_f32 },
    { TG_GEMM_AVX2_MR_F64, TG_GEMM_AVX2_NR_F64, 72, 256, 4096, tg_gemm_ukr_avx2_f64,
      tg_gemm_ukr_direct_avx2_f64 },
};

/* AVX-512F (Intel Skylake-SP and later, AMD Zen 4): L1d 32-48 KiB, L2
 * 1-2 MiB.  The 8 x 32 f32 micro-panel of B is KC x 32 x 4 bytes: KC = 192
 * keeps it at 24 KiB of L1; Ap = 192 x 192 x 4 = 144 KiB, a small part of
 * the larger L2.  f64 (8 x 16 tile): the same byte sizes.  Not tuned on
 * hardware.  This row also has direct kernels (A read in place, for
 * products with at most four micro-panels of B: direct_block). */
static tg_gemm_isa_desc isa_avx512 = {
    "avx512",
    { TG_GEMM_AVX512_MR_F32, TG_GEMM_AVX512_NR_F32, 192, 192, 4096, tg_gemm_ukr_avx512_f32,
      tg_gemm_ukr_direct_avx512_f32 },
    { TG_GEMM_AVX512_MR_F64, TG_GEMM_AVX512_NR_F64, 96, 192, 4096, tg_gemm_ukr_avx512_f64,
      tg_gemm_ukr_direct_avx512_f64 },
};

_Static_assert(TG_GEMM_AVX2_MR_F32 * TG_GEMM_AVX2_NR_F32 <= TG_GEMM_MAX_TILE, "tile");
_Static_assert(TG_GEMM_AVX2_MR_F64 * TG_GEMM_AVX2_NR_F64 <= TG_GEMM_MAX_TILE, "tile");
_Static_assert(TG_GEMM_AVX512_MR_F32 * TG_GEMM_AVX512_NR_F32 <= TG_GEMM_MAX_TILE, "tile");
_Static_assert(TG_GEMM_AVX512_MR_F64 * TG_GEMM_AVX512_NR_F64 <= TG_GEMM_MAX_TILE, "tile");

/* Every row, best first: the order in which they are tried. */
static tg_gemm_isa_desc *const isa_rows[] = { &isa_avx512, &isa_avx2, &isa_generic };
#elif defined(__aarch64__)
#define TG_GEMM_HAVE_NEON 1
/* NEON (gemm_neon.c).  Cache sizes vary more on arm64 than on x86 (Apple M1
 * performance cores: 128 KiB L1d, 12 MiB shared L2; Cortex-A72: 32 KiB L1d,
 * 1 MiB L2), so the blocks are sized for the small ones: f32 KC = 256 gives
 * a 256 x 12 x 4 = 12 KiB micro-panel of B in L1, Ap = 96 x 256 x 4 = 96
 * KiB in L2; f64 halves KC for the same bytes.  Not tuned on hardware (the
 * CI runs it under qemu, where timings mean nothing). */
static tg_gemm_isa_desc isa_neon = {
    "neon",
    { TG_GEMM_NEON_MR_F32, TG_GEMM_NEON_NR_F32, 96, 256, 4092, tg_gemm_ukr_neon_f32, NULL },
    { TG_GEMM_NEON_MR_F64, TG_GEMM_NEON_NR_F64, 96, 128, 4096, tg_gemm_ukr_neon_f64, NULL },
};
_Static_assert(TG_GEMM_NEON_MR_F32 * TG_GEMM_NEON_NR_F32 <= TG_GEMM_MAX_TILE, "tile");
_Static_assert(TG_GEMM_NEON_MR_F64 * TG_GEMM_NEON_NR_F64 <= TG_GEMM_MAX_TILE, "tile");
static tg_gemm_isa_desc *const isa_rows[] = { &isa_neon, &isa_generic };
#else
static tg_gemm_isa_desc *const isa_rows[] = { &isa_generic };
#endif
_Static_assert(TG_GENERIC_MR * TG_GENERIC_NR <= TG_GEMM_MAX_TILE, "tile");
#define N_ISA ((int)(sizeof isa_rows / sizeof isa_rows[0]))

/* The self-test's state of each row (index as in isa_rows), written under
 * dispatch_lock. */
typedef struct {
    int result;             /* 0 not run, 1 passed, -1 failed */
    char why[400];          /* what differed, if it failed */
    double us;              /* how long it took */
} isa_state;
static isa_state isa_st[N_ISA];
static int selftest_runs;   /* row self-tests run in this process (tests) */
static tg_mutex dispatch_lock = TG_MUTEX_INIT;

static int row_index(const tg_gemm_isa_desc *d)
{
    for (int i = 0; i < N_ISA; ++i)
        if (isa_rows[i] == d)
            return i;
    return N_ISA - 1;
}

/* The row called `name` ("baseline" is another name of "generic", as in
 * vmath.h), or NULL. */
static tg_gemm_isa_desc *row_named(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "baseline") == 0)
        name = "generic";
    for (int i = 0; i < N_ISA; ++i)
        if (strcmp(isa_rows[i]->name, name) == 0)
            return isa_rows[i];
    return NULL;
}

#ifdef TG_GEMM_HAVE_X86
static tg_cpu_feature row_feature(const tg_gemm_isa_desc *d)
{
    return d == &isa_avx512 ? TG_CPU_AVX512 : TG_CPU_AVX2;
}
#elif defined(TG_GEMM_HAVE_NEON)
static tg_cpu_feature row_feature(const tg_gemm_isa_desc *d)
{
    (void)d;
    return TG_CPU_NEON;
}
#endif

/* Paths of the other architectures: known names, refused with a reason
 * (so TAPEGRAD_GEMM=avx2 on an arm64 laptop says why it is not used). */
static const char *foreign_path(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0)
        return "not an x86-64 build";
    if (strcmp(name, "neon") == 0)
        return "not an arm64 build";
    return NULL;
}

/* Whether this CPU (and OS: gcc's check includes the XSAVE state bits) can
 * run the kernels of `d` and TAPEGRAD_DISABLE_CPU_FEATURES allows them. */
static int isa_usable(const tg_gemm_isa_desc *d)
{
    if (d == &isa_generic)
        return 1;
#if defined(TG_GEMM_HAVE_X86) || defined(TG_GEMM_HAVE_NEON)
    return tg_cpu_has(row_feature(d));
#else
    return 0;
#endif
}

static const char *isa_missing(const tg_gemm_isa_desc *d)
{
    if (d == &isa_generic)
        return "";
#if defined(TG_GEMM_HAVE_X86) || defined(TG_GEMM_HAVE_NEON)
    return tg_cpu_missing(row_feature(d));
#else
    return "not an x86-64 build";
#endif
}

/* The row in use; NULL until the first GEMM (then set once). */
static _Atomic(const tg_gemm_isa_desc *) active;

/* The SIMD packing helpers that go with a row of the table. */
static void install_packers(const tg_gemm_isa_desc *d)
{
    tg_pack_lines_fn f = NULL;
    tg_pack_copy_fn c = NULL;
#ifdef TG_GEMM_HAVE_X86
    if (d != &isa_generic && tg_cpu_has(TG_CPU_AVX2)) {
        f = tg_gemm_pack_lines_avx2_f32;
        c = tg_gemm_pack_copy_avx2;
    }
#endif
    atomic_store_explicit(&simd_pack_lines_f32, f, memory_order_relaxed);
    atomic_store_explicit(&simd_pack_copy, c, memory_order_relaxed);
}

/* Run the self-test of row d (both element types, with its packers), once;
 * dispatch_lock held.  Returns 1 if it passed. */
static int row_selftest(tg_gemm_isa_desc *d)
{
    isa_state *st = &isa_st[row_index(d)];
    if (d == &isa_generic)
        return 1;                       /* the reference itself */
    if (st->result != 0)
        return st->result > 0;
    install_packers(d);
    int64_t t0 = tg_dispatch_now_ns();
    char why[sizeof st->why - 64] = "";
    int ok = selftest_f32(&d->f32, why, sizeof why) == 0 &&
             selftest_f64(&d->f64, why, sizeof why) == 0;
    st->us = (double)(tg_dispatch_now_ns() - t0) / 1e3;
    ++selftest_runs;
    st->result = ok ? 1 : -1;
    if (!ok) {
        snprintf(st->why, sizeof st->why, "%s", why);
        tg_dispatch_log("gemm: the %s micro-kernels failed their self-test (%s); "
                        "not using them", d->name, why);
    }
    return ok;
}

/* The first row from isa_rows[start] on that the CPU can run and that
 * passes its self-test; dispatch_lock held.  Never fails: the portable
 * row is last and always passes. */
static const tg_gemm_isa_desc *choose_from(int start)
{
    for (int i = start; i < N_ISA; ++i)
        if (isa_usable(isa_rows[i]) && row_selftest(isa_rows[i]))
            return isa_rows[i];
    return &isa_generic;
}

/* The default choice: the best row, or the one TAPEGRAD_GEMM names (if the
 * CPU can run it and it passes its self-test; otherwise the next one, and
 * the log says why).  dispatch_lock held. */
static const tg_gemm_isa_desc *default_choice(void)
{
    const char *force = getenv("TAPEGRAD_GEMM");
    if (force == NULL || *force == '\0')
        return choose_from(0);
    tg_gemm_isa_desc *d = row_named(force);
    if (d == NULL && foreign_path(force) != NULL) {
        const tg_gemm_isa_desc *c = choose_from(0);
        tg_dispatch_log("gemm: TAPEGRAD_GEMM=%s refused: %s; using %s", force,
                        foreign_path(force), c->name);
        return c;
    }
    if (d == NULL) {
        const tg_gemm_isa_desc *c = choose_from(0);
        tg_dispatch_log("gemm: TAPEGRAD_GEMM=%s is not a path (expected avx512, avx2, neon or "
                        "baseline); using %s", force, c->name);
        return c;
    }
    if (!isa_usable(d)) {
        const tg_gemm_isa_desc *c = choose_from(row_index(d) + 1);
        tg_dispatch_log("gemm: TAPEGRAD_GEMM=%s refused: %s; using %s", force, isa_missing(d),
                        c->name);
        return c;
    }
    return choose_from(row_index(d));
}

static const tg_gemm_isa_desc *active_isa(void)
{
    const tg_gemm_isa_desc *d = atomic_load_explicit(&active, memory_order_acquire);
    if (d == NULL) {
        /* The first GEMM of the process (maybe on several threads at once):
         * one thread runs the self-tests, the others wait for its answer. */
        tg_mutex_lock(&dispatch_lock);
        d = atomic_load_explicit(&active, memory_order_relaxed);
        if (d == NULL) {
            d = default_choice();
            install_packers(d);
            atomic_store_explicit(&active, d, memory_order_release);
        }
        tg_mutex_unlock(&dispatch_lock);
    }
    return d;
}

const char *tg_gemm_isa(void) { return active_isa()->name; }

int tg_gemm_force_isa(const char *isa)
{
    int rc = -1;
    tg_mutex_lock(&dispatch_lock);
    const tg_gemm_isa_desc *d = isa == NULL ? default_choice() : row_named(isa);
    if (d != NULL && isa_usable(d) && row_selftest((tg_gemm_isa_desc *)d)) {
        install_packers(d);
        atomic_store(&active, d);
        rc = 0;
    } else {
        /* refused: put back the packers of the row still in use */
        const tg_gemm_isa_desc *cur = atomic_load(&active);
        if (cur != NULL)
            install_packers(cur);
    }
    tg_mutex_unlock(&dispatch_lock);
    return rc;
}

const char *tg_gemm_isa_refusal(const char *isa)
{
    tg_gemm_isa_desc *d = row_named(isa);
    if (d == NULL && foreign_path(isa) != NULL)
        return foreign_path(isa);
    if (d == NULL)
        return "not a matmul kernel path (expected avx512, avx2, neon or baseline)";
    if (!isa_usable(d))
        return isa_missing(d);
    tg_mutex_lock(&dispatch_lock);
    int failed = isa_st[row_index(d)].result < 0;
    tg_mutex_unlock(&dispatch_lock);
    return failed ? "it failed its self-test" : "";
}

int tg_gemm_paths(tg_kernel_path_info *out, int max)
{
    const tg_gemm_isa_desc *cur = active_isa();
    tg_mutex_lock(&dispatch_lock);
    for (int i = 0; i < N_ISA && i < max; ++i) {
        const tg_gemm_isa_desc *d = isa_rows[i];
        int usable = isa_usable(d);
        out[i] = (tg_kernel_path_info){ d->name, usable, isa_st[i].result, d == cur,
                                        !usable ? isa_missing(d)
                                        : isa_st[i].result < 0 ? isa_st[i].why : "",
                                        isa_st[i].us };
    }
    tg_mutex_unlock(&dispatch_lock);
    return N_ISA;
}

int tg_gemm_isa_available(const char *isa)
{
    const tg_gemm_isa_desc *d = row_named(isa);
    return d != NULL && isa_usable(d);
}

/* ---- testing hooks (gemm.h) -------------------------------------------- */

void tg_gemm_testing_reset(void)
{
    tg_mutex_lock(&dispatch_lock);
    for (int i = 0; i < N_ISA; ++i)
        isa_st[i] = (isa_state){ 0, "", 0 };
    atomic_store(&active, NULL);
    tg_mutex_unlock(&dispatch_lock);
}

int tg_gemm_testing_selftest_runs(void)
{
    tg_mutex_lock(&dispatch_lock);
    int n = selftest_runs;
    tg_mutex_unlock(&dispatch_lock);
    return n;
}

int tg_gemm_testing_set_ukr(const char *isa, tg_gemm_ukr_f32 f32, tg_gemm_ukr_f64 f64)
{
    tg_gemm_isa_desc *d = row_named(isa);
    if (d == NULL || d == &isa_generic)
        return -1;
    tg_mutex_lock(&dispatch_lock);
#ifdef TG_GEMM_HAVE_X86
    d->f32.ukr = f32 ? f32 : d == &isa_avx2 ? tg_gemm_ukr_avx2_f32 : tg_gemm_ukr_avx512_f32;
    d->f64.ukr = f64 ? f64 : d == &isa_avx2 ? tg_gemm_ukr_avx2_f64 : tg_gemm_ukr_avx512_f64;
    /* a test's own kernels are used everywhere: no direct kernel beside them */
    d->f32.ukr_direct = f32 ? NULL : d == &isa_avx2 ? tg_gemm_ukr_direct_avx2_f32
                                                    : tg_gemm_ukr_direct_avx512_f32;
    d->f64.ukr_direct = f64 ? NULL : d == &isa_avx2 ? tg_gemm_ukr_direct_avx2_f64
                                                    : tg_gemm_ukr_direct_avx512_f64;
#elif defined(TG_GEMM_HAVE_NEON)
    d->f32.ukr = f32 ? f32 : tg_gemm_ukr_neon_f32;
    d->f64.ukr = f64 ? f64 : tg_gemm_ukr_neon_f64;
#endif
    tg_mutex_unlock(&dispatch_lock);
    tg_gemm_testing_reset();
    return 0;
}

int tg_gemm_testing_set_ukr_direct(const char *isa, tg_gemm_ukr_direct_f32 f32,
                                   tg_gemm_ukr_direct_f64 f64)
{
#ifdef TG_GEMM_HAVE_X86
    tg_gemm_isa_desc *d = row_named(isa);
    if (d != &isa_avx512 && d != &isa_avx2)
        return -1;
    tg_mutex_lock(&dispatch_lock);
    if (d == &isa_avx2) {
        d->f32.ukr_direct = f32 ? f32 : tg_gemm_ukr_direct_avx2_f32;
        d->f64.ukr_direct = f64 ? f64 : tg_gemm_ukr_direct_avx2_f64;
    } else {
        d->f32.ukr_direct = f32 ? f32 : tg_gemm_ukr_direct_avx512_f32;
        d->f64.ukr_direct = f64 ? f64 : tg_gemm_ukr_direct_avx512_f64;
    }
    tg_mutex_unlock(&dispatch_lock);
    tg_gemm_testing_reset();
    return 0;
#else
    (void)isa;
    (void)f32;
    (void)f64;
    return -1;
#endif
}

/* The library's own broken micro-kernel, for tests that cannot build one
 * (the Python suite): the row's real kernel, then a wrong store at the
 * tile's edge (the last element of the last row gets its left
 * neighbour's value). */
static tg_gemm_ukr_f32 broken_base_f32;
static tg_gemm_ukr_f64 broken_base_f64;
static int broken_mr_f32, broken_nr_f32, broken_mr_f64, broken_nr_f64;

static void broken_ukr_f32(int64_t kc, float alpha, const float *Ap, const float *Bp,
                           float beta, float *C, int64_t rsc)
{
    broken_base_f32(kc, alpha, Ap, Bp, beta, C, rsc);
    C[(broken_mr_f32 - 1) * rsc + broken_nr_f32 - 1] = C[(broken_mr_f32 - 1) * rsc + broken_nr_f32 - 2];
}

static void broken_ukr_f64(int64_t kc, double alpha, const double *Ap, const double *Bp,
                           double beta, double *C, int64_t rsc)
{
    broken_base_f64(kc, alpha, Ap, Bp, beta, C, rsc);
    C[(broken_mr_f64 - 1) * rsc + broken_nr_f64 - 1] = C[(broken_mr_f64 - 1) * rsc + broken_nr_f64 - 2];
}

int tg_gemm_testing_break(const char *isa)
{
    tg_gemm_isa_desc *d = row_named(isa);
    if (d == NULL || d == &isa_generic)
        return -1;
    for (int i = 0; i < N_ISA; ++i)             /* every row's own kernels first */
        if (isa_rows[i] != &isa_generic)
            tg_gemm_testing_set_ukr(isa_rows[i]->name, NULL, NULL);
    broken_base_f32 = d->f32.ukr;
    broken_base_f64 = d->f64.ukr;
    broken_mr_f32 = d->f32.mr;
    broken_nr_f32 = d->f32.nr;
    broken_mr_f64 = d->f64.mr;
    broken_nr_f64 = d->f64.nr;
    return tg_gemm_testing_set_ukr(isa, broken_ukr_f32, broken_ukr_f64);
}

const char *tg_gemm_variant_name(tg_gemm_variant v)
{
    switch (v) {
    case TG_GEMM_NAIVE: return "naive";
    case TG_GEMM_REORDERED: return "reordered";
    case TG_GEMM_BLOCKED: return "blocked";
    case TG_GEMM_PACKED_SCALAR: return "packed_scalar";
    case TG_GEMM_PACKED_SIMD: return "packed_simd";
    case TG_GEMM_PACKED_SIMD_MT: return "packed_simd_mt";
    default: return "unknown";
    }
}

#else /* TG_GEMM_TEMPLATE */
/* ======================================================================
 * The template: compiled once with real = float, once with real = double.
 * ====================================================================== */
#ifdef TG_GEMM_IN_TEMPLATE
#error "gemm.c: the template includes itself (a misplaced #include \"gemm.c\")"
#endif
#define TG_GEMM_IN_TEMPLATE 1

/* C[M,N] = beta * C, writing zeros without reading C when beta == 0. */
static void SFX(scale_c)(int64_t M, int64_t N, real beta, real *C, int64_t rsc, int64_t csc)
{
    if (beta == 1)
        return;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            real *c = C + i * rsc + j * csc;
            *c = beta == 0 ? 0 : beta * *c;
        }
}

/* ---------------------------------------------------------------------
 * Step 1, NAIVE: C[i,j] = alpha * (sum_k A[i,k] B[k,j]) + beta * C[i,j].
 * The reference kernel: every other variant is tested against it, and it
 * is the fallback when a packing buffer cannot be allocated.  Any strides;
 * K >= 1.  Never fails.
 * --------------------------------------------------------------------- */
static void SFX(gemm_naive)(int64_t M, int64_t N, int64_t K, real alpha,
                            const real *A, int64_t rsa, int64_t csa,
                            const real *B, int64_t rsb, int64_t csb,
                            real beta, real *C, int64_t rsc, int64_t csc)
{
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            real acc = 0;
            for (int64_t k = 0; k < K; ++k)
                acc += A[i * rsa + k * csa] * B[k * rsb + j * csb];
            real *c = C + i * rsc + j * csc;
            real t = alpha * acc;
            *c = beta == 0 ? t : t + beta * *c;
        }
}

/* y[0:n] += a * x[0:n], both contiguous and not overlapping: the loop the
 * compiler vectorizes (restrict promises there is no aliasing). */
static void SFX(axpy_contig)(int64_t n, real a, const real *restrict x, real *restrict y)
{
    for (int64_t j = 0; j < n; ++j)
        y[j] += a * x[j];
}

/* y[j*incy] += a * x[j*incx], j in [0, n): the strided fallback. */
static void SFX(axpy_strided)(int64_t n, real a, const real *x, int64_t incx, real *y, int64_t incy)
{
    for (int64_t j = 0; j < n; ++j)
        y[j * incy] += a * x[j * incx];
}

/* C[i, 0:n] += a * B[k, 0:n], for the rows pointed to; picks the unit-
 * stride loop when both rows are contiguous. */
static void SFX(row_update)(int64_t n, real a, const real *brow, int64_t csb, real *crow, int64_t csc)
{
    if (csb == 1 && csc == 1)
        SFX(axpy_contig)(n, a, brow, crow);
    else
        SFX(axpy_strided)(n, a, brow, csb, crow, csc);
}

/* ---------------------------------------------------------------------
 * Step 2, REORDERED: loops i, k, j.  First C = beta*C, then
 *     C[i, :] += (alpha * A[i,k]) * B[k, :]
 * The inner loop runs along rows of B and C: unit stride for row-major B
 * and C, so it vectorizes.  Any strides; K >= 1.  Never fails.
 * --------------------------------------------------------------------- */
static void SFX(gemm_reordered)(int64_t M, int64_t N, int64_t K, real alpha,
                                const real *A, int64_t rsa, int64_t csa,
                                const real *B, int64_t rsb, int64_t csb,
                                real beta, real *C, int64_t rsc, int64_t csc)
{
    SFX(scale_c)(M, N, beta, C, rsc, csc);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k)
            SFX(row_update)(N, alpha * A[i * rsa + k * csa], B + k * rsb, csb,
                            C + i * rsc, csc);
}

/* ---------------------------------------------------------------------
 * Step 2b, DOTS: C = alpha * A @ B + beta * C when one side has at most
 * TG_GEMM_FEW rows (or columns) and every row of A and every column of
 * B is contiguous (csa == rsb == 1): a row vector times nn.Linear's weight
 * read as its transpose (W is (out, in); x @ W^T), a matrix times a
 * vector.  Each element of C is one dot product of two contiguous runs of
 * K (vmath.h's dot: vectorized, 64 (float32) or 32 (float64) partial sums
 * in a fixed order), combined as the micro-kernels do, (alpha * acc) +
 * (beta * C).  The REORDERED loop walked such a B across its rows, K times
 * N strided loads (1 x 1568 @ (128 x 1568)^T: 92 us against NumPy's 10, now
 * 14; 1 x 4096 @ (4096 x 4096)^T: 99 ms against 1.4, now 2.4), and packing
 * B for one or two rows of A costs more than the product.  The many long
 * runs (the columns of B for a few rows of A, the rows of A for a few
 * columns of B) are split among the threads; each element is computed
 * alone, so the bits do not depend on the thread count.
 * --------------------------------------------------------------------- */
typedef struct {
    int64_t K, inner;   /* inner: the few rows (by_rows == 0) or columns */
    int by_rows;        /* 0: the outer loop is over columns of B */
    real alpha, beta;
    const real *A, *B;
    int64_t rsa, csb;
    real *C;
    int64_t rsc, csc;
} SFX(dots_job);

static void SFX(dots_range)(int64_t o0, int64_t o1, void *vjob)
{
    const SFX(dots_job) *j = vjob;
    real (*dot)(int64_t, const real *, const real *) = tg_vmath()->TG_VM_DOT;
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t q = 0; q < j->inner; ++q) {
            int64_t i = j->by_rows ? o : q, c = j->by_rows ? q : o;
            real v = j->alpha * dot(j->K, j->A + i * j->rsa, j->B + c * j->csb);
            real *cp = j->C + i * j->rsc + c * j->csc;
            *cp = j->beta == 0 ? v : v + j->beta * *cp;
        }
}

static void SFX(gemm_dots)(int64_t M, int64_t N, int64_t K, real alpha,
                           const real *A, int64_t rsa, const real *B, int64_t csb,
                           real beta, real *C, int64_t rsc, int64_t csc)
{
    int by_rows = !(M <= TG_GEMM_FEW && (N > TG_GEMM_FEW || M <= N));
    SFX(dots_job) j = {K, by_rows ? N : M, by_rows, alpha, beta, A, B, rsa, csb, C, rsc, csc};
    int64_t outer = by_rows ? M : N, per = j.inner * K;
    int64_t grain = (double)outer * (double)per * 2.0 < TG_GEMM_FLOPS_PER_THREAD
                        ? outer : (int64_t)(TG_GEMM_FLOPS_PER_THREAD / 8.0 / (double)per) + 1;
    tg_parallel_for(outer, grain, SFX(dots_range), &j);
}

/* ---------------------------------------------------------------------
 * Step 2c, ROWS: C = alpha * A @ B + beta * C for at most TG_GEMM_FEW
 * rows of A, with the rows of B and C contiguous (csb == csc == 1): a row
 * vector times a matrix stored by rows (x @ W with W of shape (in, out)).
 * The REORDERED loop's sums in its order (beta * C first, then the terms
 * (alpha * A(i, p)) * B(p, :) for p = 0, 1, ...: the same bits), but with
 * a block of 64 (float32) or 32 (float64) elements of a row of C held in
 * registers for the whole of K (vmath.h's rowmat) instead of loaded and
 * stored for every p, and built for the vector width of the CPU rather
 * than the baseline's 128 bits.  K goes in pieces of TG_GEMM_ROWS_KB rows
 * of B (the block of C is stored and loaded again between them, exactly:
 * no bit changes), so that a wide B is read as a few rows at a time rather
 * than as one column strip of all K rows, a stride no prefetcher follows
 * (1 x 4096 @ 4096 x 4096: one pass 5.0 ms, pieces of 16 rows 2.9).  One
 * thread, best of 300: 1 x 1568 @ 1568 x 128, 25-30 -> 9-11 us (NumPy 10);
 * 4 x 1568 @ 1568 x 128 (packed before) 56 -> 29.  Blocks of columns are
 * split among the threads (each element computed alone).
 * --------------------------------------------------------------------- */
#define TG_GEMM_ROWS_BLOCK 64
#define TG_GEMM_ROWS_KB 16
typedef struct {
    int64_t M, N, K;
    real alpha, beta;
    const real *A, *B;
    int64_t rsa, csa, rsb;
    real *C;
    int64_t rsc;
} SFX(rows_job);

static void SFX(rows_range)(int64_t b0, int64_t b1, void *vjob)
{
    const SFX(rows_job) *j = vjob;
    void (*rowmat)(int64_t, int64_t, real, const real *, int64_t, const real *, int64_t, real *) =
        tg_vmath()->TG_VM_ROWMAT;
    int64_t j0 = b0 * TG_GEMM_ROWS_BLOCK, n = min_i64(b1 * TG_GEMM_ROWS_BLOCK, j->N) - j0;
    int64_t kb = TG_GEMM_ROWS_KB;
    SFX(scale_c)(j->M, n, j->beta, j->C + j0, j->rsc, 1);
    for (int64_t p0 = 0; p0 < j->K; p0 += kb)
        for (int64_t i = 0; i < j->M; ++i)
            rowmat(min_i64(kb, j->K - p0), n, j->alpha, j->A + i * j->rsa + p0 * j->csa, j->csa,
                   j->B + p0 * j->rsb + j0, j->rsb, j->C + i * j->rsc + j0);
}

static void SFX(gemm_rows)(int64_t M, int64_t N, int64_t K, real alpha,
                           const real *A, int64_t rsa, int64_t csa, const real *B, int64_t rsb,
                           real beta, real *C, int64_t rsc)
{
    SFX(rows_job) j = {M, N, K, alpha, beta, A, B, rsa, csa, rsb, C, rsc};
    int64_t blocks = (N + TG_GEMM_ROWS_BLOCK - 1) / TG_GEMM_ROWS_BLOCK;
    double per = (double)M * (double)K * TG_GEMM_ROWS_BLOCK;
    int64_t grain = (double)M * (double)N * (double)K * 2.0 < TG_GEMM_FLOPS_PER_THREAD
                        ? blocks : (int64_t)(TG_GEMM_FLOPS_PER_THREAD / 8.0 / per) + 1;
    tg_parallel_for(blocks, grain, SFX(rows_range), &j);
}

/* ---------------------------------------------------------------------
 * Step 3, BLOCKED: the i-k-j loops, run block by block.  A KB x NB block of
 * B (128 x 256 floats = 128 KiB) stays in L2 while the MB rows of the
 * current block of A use it, and the NB-wide piece of a row of C (1 KiB)
 * stays in L1 for the KB updates it receives.  No copies: every access
 * still goes through the original strides.  Any strides; K >= 1.
 * --------------------------------------------------------------------- */
#define TG_BLOCK_M 64
#define TG_BLOCK_K 128
#define TG_BLOCK_N 256

static void SFX(gemm_blocked)(int64_t M, int64_t N, int64_t K, real alpha,
                              const real *A, int64_t rsa, int64_t csa,
                              const real *B, int64_t rsb, int64_t csb,
                              real beta, real *C, int64_t rsc, int64_t csc)
{
    SFX(scale_c)(M, N, beta, C, rsc, csc);
    for (int64_t jb = 0; jb < N; jb += TG_BLOCK_N) {
        int64_t nb = min_i64(TG_BLOCK_N, N - jb);
        for (int64_t kb = 0; kb < K; kb += TG_BLOCK_K) {
            int64_t kbn = min_i64(TG_BLOCK_K, K - kb);
            for (int64_t ib = 0; ib < M; ib += TG_BLOCK_M) {
                int64_t mb = min_i64(TG_BLOCK_M, M - ib);
                /* One block: C[ib:+mb, jb:+nb] += A[ib:+mb, kb:+kbn] @ B[kb:+kbn, jb:+nb] */
                for (int64_t i = ib; i < ib + mb; ++i)
                    for (int64_t k = kb; k < kb + kbn; ++k)
                        SFX(row_update)(nb, alpha * A[i * rsa + k * csa],
                                        B + k * rsb + jb * csb, csb,
                                        C + i * rsc + jb * csc, csc);
            }
        }
    }
}

/* ---------------------------------------------------------------------
 * Step 4, PACKED: packing, the portable micro-kernel, the five loops.
 * --------------------------------------------------------------------- */

/* A packing buffer for n elements (see pack_alloc); NULL if out of memory. */
static real *SFX(pack_alloc_real)(int64_t n)
{
    return pack_alloc((size_t)n * sizeof(real));
}

/* d[0:n] = s[k * incs], then d[n:width] = 0: one row piece of a packed
 * micro-panel with its zero padding.  The common full pieces of contiguous
 * rows are copied with a constant-size memcpy, which the compiler turns
 * into a few vector moves (a loop of unknown length would become a call to
 * memcpy for every 32 to 128 bytes). */
static inline void SFX(copy_piece)(real *restrict d, const real *restrict s, int64_t incs,
                                   int64_t n, int width)
{
    if (incs == 1 && n == width && width == 4)
        memcpy(d, s, 4 * sizeof(real));
    else if (incs == 1 && n == width && width == 6)
        memcpy(d, s, 6 * sizeof(real));
    else if (incs == 1 && n == width && width == 8)
        memcpy(d, s, 8 * sizeof(real));
    else if (incs == 1 && n == width && width == 16)
        memcpy(d, s, 16 * sizeof(real));
    else if (incs == 1 && n == width && width == 32)
        memcpy(d, s, 32 * sizeof(real));
    else {
        for (int64_t k = 0; k < n; ++k)
            d[k] = s[k * incs];
        for (int64_t k = n; k < width; ++k)
            d[k] = 0;
    }
}

/* The transposing copy shared by both packers: m <= w source lines, each
 * read along p (element p of line i at src[i*ld + p*inc]), dealt out
 * across the micro-panel:  dst[p*w + i] = line i, element p;  lines m..w-1
 * of the panel are zero.  Done in tiles of TG_PACK_TILE values of p: one
 * tile touches w * TG_PACK_TILE destination elements (a few cache lines)
 * and m short runs of the source, all of it in L1.  Without the tiling,
 * each of the w passes over a kc-long panel (32 KiB for kc = 512, w = 16
 * floats) would evict the previous pass's lines before they are reused. */
#define TG_PACK_TILE 16
static void SFX(pack_lines)(int64_t kc, int64_t m, int w, const real *src, int64_t ld,
                            int64_t inc, real *dst)
{
    if (sizeof(real) == sizeof(float) && w % 8 == 0 && m == w && inc == 1) {
        tg_pack_lines_fn fast = atomic_load_explicit(&simd_pack_lines_f32, memory_order_relaxed);
        if (fast) {
            fast(kc, (const float *)src, ld, w, (float *)dst);
            return;
        }
    }
    for (int64_t p0 = 0; p0 < kc; p0 += TG_PACK_TILE) {
        int64_t p1 = min_i64(p0 + TG_PACK_TILE, kc);
        for (int64_t i = 0; i < m; ++i) {
            const real *line = src + i * ld;
            for (int64_t p = p0; p < p1; ++p)
                dst[p * w + i] = line[p * inc];
        }
        for (int64_t p = p0; m < w && p < p1; ++p)
            for (int64_t i = m; i < w; ++i)
                dst[p * w + i] = 0;
    }
}

/* Pack the mc x kc block of A (element (i,p) at A[i*rsa + p*csa]) into Ap
 * as ceil(mc/mr) micro-panels of mr x kc, each stored column by column:
 *     Ap[ir*kc + p*mr + i] = A(ir + i, p)
 * Rows past mc are zero.  Ap holds round_up(mc, mr) * kc elements.
 * Works for any strides; the loop order only decides which side of the copy
 * is sequential: we read A along its smaller stride. */
static void SFX(pack_a)(int64_t mc, int64_t kc, const real *A, int64_t rsa, int64_t csa,
                        int mr, real *Ap)
{
    if (abs_i64(rsa) <= abs_i64(csa)) {
        /* Columns of A are contiguous (A is a transpose, rsa == 1): read
         * each column of the block once, top to bottom, dealing pieces of mr
         * elements out to the micro-panels.  (Going panel by panel instead
         * would read a few bytes from each of kc columns lying far apart in
         * memory: a cache and TLB miss for almost every piece.) */
        int64_t full = 0;       /* rows in whole panels copied by the SIMD helper */
        int piece = mr * (int)sizeof(real);
        if (rsa == 1 && mc >= mr && (piece == 32 || piece == 64 || piece == 128)) {
            tg_pack_copy_fn fast = atomic_load_explicit(&simd_pack_copy, memory_order_relaxed);
            if (fast) {
                full = mc / mr * mr;
                fast(kc, mc / mr, A, csa * (int64_t)sizeof(real), piece,
                     kc * (int64_t)piece, Ap);
            }
        }
        for (int64_t p = 0; full < mc && p < kc; ++p)
            for (int64_t ir = full; ir < mc; ir += mr)
                SFX(copy_piece)(Ap + ir * kc + p * mr, A + ir * rsa + p * csa, rsa,
                                min_i64(mr, mc - ir), mr);
    } else {
        /* Rows of A are contiguous (row-major A): each micro-panel reads mr
         * rows side by side, mr sequential streams. */
        for (int64_t ir = 0; ir < mc; ir += mr)
            SFX(pack_lines)(kc, min_i64(mr, mc - ir), mr, A + ir * rsa, rsa, csa, Ap + ir * kc);
    }
}

/* Pack the kc x nc block of B (element (p,j) at B[p*rsb + j*csb]) into Bp
 * as ceil(nc/nr) micro-panels of kc x nr, each stored row by row:
 *     Bp[jr*kc + p*nr + j] = B(p, jr + j)
 * Columns past nc are zero.  Bp holds kc * round_up(nc, nr) elements.
 * This is exactly pack_a applied to B^T (an nc x kc matrix with row stride
 * csb and column stride rsb): the same layout, the same choice of which
 * side is read sequentially.  For a row-major B that is the copy_piece
 * branch, and with Bp aligned to 64 bytes and nr * sizeof(real) = 64 every
 * piece is one whole cache line. */
static void SFX(pack_b)(int64_t kc, int64_t nc, const real *B, int64_t rsb, int64_t csb,
                        int nr, real *Bp)
{
    SFX(pack_a)(nc, kc, B, csb, rsb, nr, Bp);
}

/* The portable micro-kernel, TG_GENERIC_MR x TG_GENERIC_NR (contract of a
 * micro-kernel in gemm.h): C[0:MR, 0:NR] = alpha * Ap @ Bp + beta * C.
 * Plain C; the compiler may vectorize the j loop with baseline SIMD. */
static void SFX(ukr_generic)(int64_t kc, real alpha, const real *Ap, const real *Bp,
                             real beta, real *C, int64_t rsc)
{
    real acc[TG_GENERIC_MR][TG_GENERIC_NR] = { { 0 } };
    for (int64_t p = 0; p < kc; ++p) {
        for (int i = 0; i < TG_GENERIC_MR; ++i) {
            real a = Ap[i];
            for (int j = 0; j < TG_GENERIC_NR; ++j)
                acc[i][j] += a * Bp[j];
        }
        Ap += TG_GENERIC_MR;
        Bp += TG_GENERIC_NR;
    }
    for (int i = 0; i < TG_GENERIC_MR; ++i)
        for (int j = 0; j < TG_GENERIC_NR; ++j) {
            real *c = C + i * rsc + j;
            real t = alpha * acc[i][j];
            *c = beta == 0 ? t : t + beta * *c;
        }
}

/* Loops 2 and 1 (the "macro-kernel"): C[0:mc, 0:nc] = alpha * Ap @ Bp +
 * beta * C for one packed mc x kc block Ap and kc x nc panel Bp.  Full
 * tiles of a row-major C go straight to the micro-kernel; edge tiles and
 * tiles of a C with a non-unit column stride are computed into a scratch
 * tile, and their valid part is merged into C with the same arithmetic as
 * the micro-kernel's write-back. */
/* The valid m x n part of a scratch tile merged into C (c[i*rsc + j*csc] =
 * t, or t + beta c), along C's memory: column by column when C's columns
 * are contiguous (a transposed C: the swapped product of a narrow N, the
 * GPT's lm head of 65 columns, stored 8 contiguous floats at a time instead
 * of 8 x 32 scattered ones).  Each element is one operation: the same bits
 * in either order. */
static void SFX(merge_tile)(int64_t m, int64_t n, const real *tile, int nr, real beta, real *c,
                            int64_t rsc, int64_t csc)
{
    if (abs_i64(rsc) < abs_i64(csc)) {
        for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < m; ++i) {
                real *cij = c + i * rsc + j * csc;
                real t = tile[i * nr + j];
                *cij = beta == 0 ? t : t + beta * *cij;
            }
        return;
    }
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            real *cij = c + i * rsc + j * csc;
            real t = tile[i * nr + j];
            *cij = beta == 0 ? t : t + beta * *cij;
        }
}

static void SFX(macro_kernel)(const SFX(tg_gemm_kernel) *kd, int64_t mc, int64_t nc,
                              int64_t kc, real alpha, const real *Ap, const real *Bp,
                              real beta, real *C, int64_t rsc, int64_t csc)
{
    const int mr = kd->mr, nr = kd->nr;
    _Alignas(64) real tile[TG_GEMM_MAX_TILE];
    for (int64_t jr = 0; jr < nc; jr += nr) {           /* loop 2 */
        int64_t n = min_i64(nr, nc - jr);
        for (int64_t ir = 0; ir < mc; ir += mr) {       /* loop 1 */
            int64_t m = min_i64(mr, mc - ir);
            const real *a = Ap + ir * kc, *b = Bp + jr * kc;
            real *c = C + ir * rsc + jr * csc;
            if (m == mr && n == nr && csc == 1) {
                kd->ukr(kc, alpha, a, b, beta, c, rsc);
            } else {
                kd->ukr(kc, alpha, a, b, 0, tile, nr);  /* tile = alpha * a @ b */
                SFX(merge_tile)(m, n, tile, nr, beta, c, rsc, csc);
            }
        }
    }
}

/* Whether the mc x kc block of A is better read in place than packed: with
 * a direct kernel, when the block meets at most TG_DIRECT_MAX_PANELS micro-
 * panels of B (nc columns), so that each element of A is read by at most
 * that many tiles.  Packing copies every element of A once to save reads
 * later; with a few reads there is little to save, and the copy (plus its
 * stores and reloads) cost a fifth of attention's 64 x 32 x 64 products.
 * Measured on Zen 4 (one thread, best of 100, GFLOP/s), at most 2 panels
 * -> at most 4: 1024 x 128 x 128 109 -> 112, 1024 x 96 x 128 107 -> 113,
 * 1024 x 128 x 512 107 -> 112, 64 items of 64 x 128 x 128 98 -> 103; with
 * 16 or unlimited the GPT benchmark's wider products (N = 384, 512) were
 * within noise of the packed path, so the packed path keeps them. */
#define TG_DIRECT_MAX_PANELS 4
static int SFX(direct_pays)(const SFX(tg_gemm_kernel) *kd, int64_t mc, int64_t nc)
{
    return kd->ukr_direct != NULL && mc >= kd->mr &&
           (nc + kd->nr - 1) / kd->nr <= TG_DIRECT_MAX_PANELS;
}

/* macro_kernel with A read in place (A: element (i, p) at A[i*rsa + p*csa]):
 * the whole micro-panels of rows go to the direct kernel, and only the
 * rows past the last whole panel (fewer than MR) are packed, into Ap.  The
 * same tiles, the same products in the same order: the same bits as
 * pack_a + macro_kernel. */
static void SFX(direct_block)(const SFX(tg_gemm_kernel) *kd, int64_t mc, int64_t nc,
                              int64_t kc, real alpha, const real *A, int64_t rsa, int64_t csa,
                              const real *Bp, real beta, real *C, int64_t rsc, int64_t csc,
                              real *Ap)
{
    const int mr = kd->mr, nr = kd->nr;
    const int64_t full = mc / mr * mr;
    _Alignas(64) real tile[TG_GEMM_MAX_TILE];
    if (full < mc)
        SFX(pack_a)(mc - full, kc, A + full * rsa, rsa, csa, mr, Ap);
    for (int64_t jr = 0; jr < nc; jr += nr) {           /* loop 2 */
        int64_t n = min_i64(nr, nc - jr);
        const real *b = Bp + jr * kc;
        for (int64_t ir = 0; ir < mc; ir += mr) {       /* loop 1 */
            int64_t m = min_i64(mr, mc - ir);
            real *c = C + ir * rsc + jr * csc;
            if (m == mr && n == nr && csc == 1) {
                kd->ukr_direct(kc, alpha, A + ir * rsa, rsa, csa, b, beta, c, rsc);
                continue;
            }
            if (m == mr)
                kd->ukr_direct(kc, alpha, A + ir * rsa, rsa, csa, b, 0, tile, nr);
            else
                kd->ukr(kc, alpha, Ap, b, 0, tile, nr);
            SFX(merge_tile)(m, n, tile, nr, beta, c, rsc, csc);
        }
    }
}

/* The cache blocks for an M x N x K product: K cut into equal blocks of at
 * most kd->kc (no thin last block), MC and NC no larger than the problem
 * (rounded up to whole tiles).  Shared by every packed path, so that they
 * all compute each element of C in the same order. */
static void SFX(block_sizes)(const SFX(tg_gemm_kernel) *kd, int64_t M, int64_t N, int64_t K,
                             int64_t *KC, int64_t *MC, int64_t *NC)
{
    int64_t kblocks = (K + kd->kc - 1) / kd->kc;
    *KC = (K + kblocks - 1) / kblocks;
    *MC = min_i64(kd->mc, round_up(M, kd->mr));
    *NC = min_i64(kd->nc, round_up(N, kd->nr));
}

static void SFX(gemm_packed_buf)(const SFX(tg_gemm_kernel) *kd,
                                 int64_t M, int64_t N, int64_t K, real alpha,
                                 const real *A, int64_t rsa, int64_t csa,
                                 const real *B, int64_t rsb, int64_t csb,
                                 real beta, real *C, int64_t rsc, int64_t csc,
                                 real *Ap, real *Bp);

/* Loops 5, 4, 3 around the macro-kernel, with kernel `kd`, on one thread:
 * the whole product C[M,N] = alpha * A @ B + beta * C, K >= 1.
 * Allocates its own packing buffers.  Returns 0, or -1 if they cannot be
 * allocated, in which case C has not been touched. */
static int SFX(gemm_packed)(const SFX(tg_gemm_kernel) *kd,
                            int64_t M, int64_t N, int64_t K, real alpha,
                            const real *A, int64_t rsa, int64_t csa,
                            const real *B, int64_t rsb, int64_t csb,
                            real beta, real *C, int64_t rsc, int64_t csc)
{
    int64_t KC, MC, NC;
    SFX(block_sizes)(kd, M, N, K, &KC, &MC, &NC);

    real *Ap = SFX(pack_alloc_real)(MC * KC);
    real *Bp = SFX(pack_alloc_real)(KC * NC);
    if (Ap == NULL || Bp == NULL) {
        tg_scratch_free(Ap);
        tg_scratch_free(Bp);
        return -1;
    }
    SFX(gemm_packed_buf)(kd, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, Ap, Bp);
    tg_scratch_free(Ap);
    tg_scratch_free(Bp);
    return 0;
}

/* The five loops of gemm_packed with packing buffers the caller owns: Ap
 * of at least MC * KC and Bp of at least KC * NC elements, the blocks that
 * block_sizes gives for this M, N, K.  A batch of small products packs into
 * the same two buffers item after item (gemm_batched), instead of
 * allocating and freeing them for every item. */
static void SFX(gemm_packed_buf)(const SFX(tg_gemm_kernel) *kd,
                                 int64_t M, int64_t N, int64_t K, real alpha,
                                 const real *A, int64_t rsa, int64_t csa,
                                 const real *B, int64_t rsb, int64_t csb,
                                 real beta, real *C, int64_t rsc, int64_t csc,
                                 real *Ap, real *Bp)
{
    int64_t KC, MC, NC;
    SFX(block_sizes)(kd, M, N, K, &KC, &MC, &NC);
    for (int64_t jc = 0; jc < N; jc += NC) {                    /* loop 5 */
        int64_t nc = min_i64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {                /* loop 4 */
            int64_t kc = min_i64(KC, K - pc);
            SFX(pack_b)(kc, nc, B + pc * rsb + jc * csb, rsb, csb, kd->nr, Bp);
            /* The first K block applies the caller's beta; the later ones
             * accumulate onto what the earlier ones wrote. */
            real beta_p = pc == 0 ? beta : 1;
            for (int64_t ic = 0; ic < M; ic += MC) {            /* loop 3 */
                int64_t mc = min_i64(MC, M - ic);
                if (SFX(direct_pays)(kd, mc, nc)) {
                    SFX(direct_block)(kd, mc, nc, kc, alpha, A + ic * rsa + pc * csa, rsa, csa,
                                      Bp, beta_p, C + ic * rsc + jc * csc, rsc, csc, Ap);
                    continue;
                }
                SFX(pack_a)(mc, kc, A + ic * rsa + pc * csa, rsa, csa, kd->mr, Ap);
                SFX(macro_kernel)(kd, mc, nc, kc, alpha, Ap, Bp, beta_p,
                                  C + ic * rsc + jc * csc, rsc, csc);
            }
        }
    }
}

/* gemm_packed, or the reference kernel if the buffers cannot be had. */
static void SFX(gemm_packed_or_naive)(const SFX(tg_gemm_kernel) *kd,
                                      int64_t M, int64_t N, int64_t K, real alpha,
                                      const real *A, int64_t rsa, int64_t csa,
                                      const real *B, int64_t rsb, int64_t csb,
                                      real beta, real *C, int64_t rsc, int64_t csc)
{
    if (SFX(gemm_packed)(kd, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc) != 0)
        SFX(gemm_naive)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

/* ---------------------------------------------------------------------
 * The known-answer self-test of a SIMD kernel (dispatch.h): a few small
 * fixed products computed through the real packing and macro-kernel code
 * with kernel `kd`, compared with the reference kernel (gemm_naive).
 *
 * The problems are sized from the kernel's tile so that each has full
 * tiles and edge tiles in both directions (M, N not multiples of MR, NR),
 * and between them they use every layout the packers distinguish:
 * row-major, transposed and strided A and B, C with padded rows, row-major
 * C (full tiles written by the kernel itself, with beta == 0 and != 0),
 * column-major C (every tile through the scratch tile), K = 1 and K past
 * the AVX2 packer's 8-column blocks.  Elements of the buffers outside the
 * views are poisoned: NaN in A and B, a sentinel in C (a store outside C's
 * view is an error), and with beta == 0 C's own elements start as NaN.
 *
 * The bound: both results are sums of the same K products, in different
 * orders, so each lies within gamma_K (|alpha| |A||B| + |beta C0|) of the
 * exact value (Higham, sec. 3.5) and they differ by at most
 *     2 (K + 4) eps (|alpha| |A||B| + |beta C0|)   (+ the smallest normal)
 * per element.  Most problems use small integers, for which both are exact
 * and must agree to the bit; one uses non-integer values (a kernel that
 * computed in the wrong precision would be far outside the bound).
 *
 * Buffers are static (the self-test runs under dispatch_lock), so it can
 * not fail for lack of memory.  Returns 0, or -1 with a description of the
 * first difference in why[0..n).
 * --------------------------------------------------------------------- */
#define TG_ST_A 512         /* M * K elements at most: 18 * 17 */
#define TG_ST_B 2400        /* K * (2 N + 1): 17 * 135 */
#define TG_ST_C 1400        /* M * (N + 3): 18 * 70 */
#define TG_ST_AP 512        /* round_up(M, MR) * K: 24 * 17 */
#define TG_ST_BP 2048       /* K * round_up(N, NR): 17 * 96 */

static int SFX(selftest)(const SFX(tg_gemm_kernel) *kd, char *why, size_t n)
{
    static real A[TG_ST_A], B[TG_ST_B], C[TG_ST_C], R[TG_ST_C], C0[TG_ST_C], S[TG_ST_C];
    static _Alignas(64) real Ap[TG_ST_AP], Bp[TG_ST_BP];
    const int mr = kd->mr, nr = kd->nr;
    const double eps = sizeof(real) == sizeof(float) ? 1.1920928955078125e-07 : 2.220446049250313e-16;
    const double tiny = sizeof(real) == sizeof(float) ? 1.1754943508222875e-38 : 2.2250738585072014e-308;
    const real sentinel = 777;
    /* layouts: A 0 row-major, 1 transposed; B 0 row-major, 1 transposed,
     * 2 every other column of padded rows; C 0 padded rows, 1 row-major,
     * 2 column-major */
    static const struct {
        int dm, dn, K, la, lb, lc, integer;
        double alpha, beta;
    } prob[] = {
        { 1, 3, 9, 0, 1, 0, 1, 1.0, 0.0 },      /* M = 2MR+1, N = 2NR+3 */
        { 2, -1, 1, 1, 2, 1, 1, -1.5, 0.5 },    /* M = 2MR+2, N = 2NR-1, K = 1 */
        { 0, 0, 17, 0, 0, 1, 0, 0.75, 1.0 },    /* whole tiles, non-integers */
        { -100, -100, 4, 1, 1, 2, 1, 2.0, -1.0 }, /* 3 x 5, smaller than a tile */
    };
    uint64_t s = 0x2545f4914f6cdd1dull;
    for (size_t t = 0; t < sizeof prob / sizeof prob[0]; ++t) {
        int64_t M = prob[t].dm == -100 ? 3 : 2 * mr + prob[t].dm;
        int64_t N = prob[t].dn == -100 ? 5 : 2 * nr + prob[t].dn;
        int64_t K = prob[t].K;
        if (prob[t].dm == 0) { M = mr; N = nr; }
        int64_t rsa = prob[t].la ? 1 : K, csa = prob[t].la ? M : 1;
        int64_t rsb = prob[t].lb == 0 ? N : prob[t].lb == 1 ? 1 : 2 * N + 1;
        int64_t csb = prob[t].lb == 0 ? 1 : prob[t].lb == 1 ? K : 2;
        int64_t rsc = prob[t].lc == 0 ? N + 3 : prob[t].lc == 1 ? N : 1;
        int64_t csc = prob[t].lc == 2 ? M : 1;
        int64_t lenb = prob[t].lb == 2 ? K * (2 * N + 1) : K * N;
        int64_t lenc = prob[t].lc == 0 ? M * (N + 3) : M * N;
        if (M * K > TG_ST_A || lenb > TG_ST_B || lenc > TG_ST_C ||
            round_up(M, mr) * K > TG_ST_AP || K * round_up(N, nr) > TG_ST_BP) {
            snprintf(why, n, "self-test buffers too small for a %d x %d tile", mr, nr);
            return -1;
        }
        real alpha = (real)prob[t].alpha, beta = (real)prob[t].beta;
        for (int64_t i = 0; i < TG_ST_B; ++i) B[i] = (real)NAN;
        for (int64_t i = 0; i < TG_ST_A; ++i) A[i] = (real)NAN;
        for (int64_t i = 0; i < lenc; ++i) C[i] = sentinel;
        /* deterministic values: integers in [-4, 4] or multiples of 1/64 in [-1, 1) */
        for (int64_t k = 0; k < M * K + K * N + M * N; ++k) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            real v = prob[t].integer ? (real)((int)((s >> 33) % 9) - 4)
                                     : (real)((int)((s >> 33) % 128) - 64) / (real)64.1;
            if (k < M * K)
                A[(k / K) * rsa + (k % K) * csa] = v;
            else if (k < M * K + K * N) {
                int64_t q = k - M * K;
                B[(q / N) * rsb + (q % N) * csb] = v;
            } else {
                int64_t q = k - M * K - K * N, i = q / N, j = q % N;
                C0[q] = 2 * v;
                C[i * rsc + j * csc] = beta == 0 ? (real)NAN : 2 * v;
            }
        }
        memcpy(R, C, (size_t)lenc * sizeof(real));
        memcpy(S, C, (size_t)lenc * sizeof(real));
        SFX(gemm_naive)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, R, rsc, csc);
        SFX(pack_b)(K, N, B, rsb, csb, nr, Bp);
        /* via 0: packed A and the kernel; via 1: the direct kernel, A read
         * in place (direct_block), if the row has one */
        for (int via = 0; via < (kd->ukr_direct ? 2 : 1); ++via) {
            if (via == 0) {
                SFX(pack_a)(M, K, A, rsa, csa, mr, Ap);
                SFX(macro_kernel)(kd, M, N, K, alpha, Ap, Bp, beta, C, rsc, csc);
            } else {
                memcpy(C, S, (size_t)lenc * sizeof(real));
                SFX(direct_block)(kd, M, N, K, alpha, A, rsa, csa, Bp, beta, C, rsc, csc, Ap);
            }
            const char *how = via ? "direct " : "";
            for (int64_t x = 0; x < lenc; ++x) {
                int64_t i, j;
                if (csc == 1) { i = x / rsc; j = x % rsc; } else { i = x % M; j = x / M; }
                if (j >= N) {           /* padding of C's rows: untouched */
                    if (C[x] != sentinel) {
                        snprintf(why, n, "%s %sproblem %d: wrote outside C (M=%lld N=%lld K=%lld)",
                                 sizeof(real) == sizeof(float) ? "f32" : "f64", how, (int)t + 1,
                                 (long long)M, (long long)N, (long long)K);
                        return -1;
                    }
                    continue;
                }
                double bound = fabs((double)beta * (double)C0[i * N + j]);
                for (int64_t k = 0; k < K; ++k)
                    bound += fabs((double)alpha * (double)A[i * rsa + k * csa] *
                                  (double)B[k * rsb + j * csb]);
                double tol = 2.0 * (double)(K + 4) * eps * bound + tiny;
                double got = (double)C[x], want = (double)R[x];
                if (!(fabs(got - want) <= tol)) {
                    snprintf(why, n, "%s %sproblem %d (M=%lld N=%lld K=%lld, tile %dx%d): "
                             "C[%lld,%lld] = %.9g, the portable C path gives %.9g",
                             sizeof(real) == sizeof(float) ? "f32" : "f64", how, (int)t + 1,
                             (long long)M, (long long)N, (long long)K, mr, nr,
                             (long long)i, (long long)j, got, want);
                    return -1;
                }
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Step 6, threads: split C into slabs of whole tiles, one packed GEMM per
 * slab, run by tg_parallel_for over the slab's tiles.
 * --------------------------------------------------------------------- */

/* One product's arguments, C = alpha * A @ B + beta * C with kernel kd: what
 * a tg_parallel_for body needs to know of the product (embedded in mt_ctx
 * and batch_ctx). */
typedef struct {
    const SFX(tg_gemm_kernel) *kd;
    int64_t M, N, K;
    real alpha, beta;
    const real *A; int64_t rsa, csa;
    const real *B; int64_t rsb, csb;
    real *C; int64_t rsc, csc;
} SFX(gemm_args);

typedef struct {
    SFX(gemm_args) g;
    int split_n;                /* 1: slabs of columns (loop 5), 0: of rows (loop 3) */
    int64_t slab_tiles, ntiles; /* tiles per slab, tiles in the split dimension */
} SFX(mt_ctx);

/* tg_range_fn: compute slabs [s0, s1) of C, slab s being tiles
 * [s * slab_tiles, (s + 1) * slab_tiles) of the split dimension (tiles of
 * NR columns or MR rows). */
static void SFX(mt_slab)(int64_t s0, int64_t s1, void *vctx)
{
    const SFX(mt_ctx) *m = vctx;
    const SFX(gemm_args) *x = &m->g;
    int64_t t0 = s0 * m->slab_tiles, t1 = min_i64(s1 * m->slab_tiles, m->ntiles);
    if (m->split_n) {
        int64_t j0 = t0 * x->kd->nr, j1 = min_i64(t1 * x->kd->nr, x->N);
        SFX(gemm_packed_or_naive)(x->kd, x->M, j1 - j0, x->K, x->alpha,
                                  x->A, x->rsa, x->csa,
                                  x->B + j0 * x->csb, x->rsb, x->csb,
                                  x->beta, x->C + j0 * x->csc, x->rsc, x->csc);
    } else {
        int64_t i0 = t0 * x->kd->mr, i1 = min_i64(t1 * x->kd->mr, x->M);
        SFX(gemm_packed_or_naive)(x->kd, i1 - i0, x->N, x->K, x->alpha,
                                  x->A + i0 * x->rsa, x->rsa, x->csa,
                                  x->B, x->rsb, x->csb,
                                  x->beta, x->C + i0 * x->rsc, x->rsc, x->csc);
    }
}

/* Big products (many MC row blocks): the BLIS way of sharing work.  For
 * each (jc, pc) step the kc x nc panel of B is packed once, by all threads
 * together, into one shared buffer; then the MC-row blocks of C are handed
 * out one at a time, each thread packing its own block of A.  Nothing is
 * packed twice, and because blocks are taken on demand a thread whose core
 * is busy with something else (another process, or NumPy's BLAS threads
 * still spinning after a call) just computes fewer blocks.  Each block is
 * computed exactly as gemm_packed computes it, so the result is the same
 * bits as on one thread. */
typedef struct {
    const SFX(tg_gemm_kernel) *kd;
    int64_t M, nc, kc, MC;
    real alpha, beta;
    const real *A; int64_t rsa, csa;   /* A + pc * csa */
    const real *B; int64_t rsb, csb;   /* B + pc * rsb + jc * csb */
    real *Bp;                          /* the shared packed panel */
    real *C; int64_t rsc, csc;         /* C + jc * csc */
} SFX(shared_ctx);

/* tg_range_fn: pack micro-panels [t0, t1) of the B panel. */
static void SFX(shared_pack_b)(int64_t t0, int64_t t1, void *vctx)
{
    const SFX(shared_ctx) *x = vctx;
    int nr = x->kd->nr;
    int64_t j0 = t0 * nr, j1 = min_i64(t1 * nr, x->nc);
    SFX(pack_b)(x->kc, j1 - j0, x->B + j0 * x->csb, x->rsb, x->csb, nr, x->Bp + j0 * x->kc);
}

/* tg_range_fn: row blocks [b0, b1) of C against the shared panel. */
static void SFX(shared_rows)(int64_t b0, int64_t b1, void *vctx)
{
    const SFX(shared_ctx) *x = vctx;
    real *Ap = SFX(pack_alloc_real)(x->MC * x->kc);
    for (int64_t blk = b0; blk < b1; ++blk) {
        int64_t ic = blk * x->MC, mc = min_i64(x->MC, x->M - ic);
        if (Ap == NULL) {   /* no memory for the packed block: the reference loop */
            SFX(gemm_naive)(mc, x->nc, x->kc, x->alpha, x->A + ic * x->rsa, x->rsa, x->csa,
                            x->B, x->rsb, x->csb, x->beta, x->C + ic * x->rsc, x->rsc, x->csc);
            continue;
        }
        SFX(pack_a)(mc, x->kc, x->A + ic * x->rsa, x->rsa, x->csa, x->kd->mr, Ap);
        SFX(macro_kernel)(x->kd, mc, x->nc, x->kc, x->alpha, Ap, x->Bp, x->beta,
                          x->C + ic * x->rsc, x->rsc, x->csc);
    }
    tg_scratch_free(Ap);
}

/* Returns 0, or -1 (C untouched) if the shared panel cannot be allocated. */
static int SFX(gemm_shared_b)(const SFX(tg_gemm_kernel) *kd,
                              int64_t M, int64_t N, int64_t K, real alpha,
                              const real *A, int64_t rsa, int64_t csa,
                              const real *B, int64_t rsb, int64_t csb,
                              real beta, real *C, int64_t rsc, int64_t csc)
{
    int64_t KC, MC, NC;
    SFX(block_sizes)(kd, M, N, K, &KC, &MC, &NC);
    real *Bp = SFX(pack_alloc_real)(KC * NC);
    if (Bp == NULL)
        return -1;
    for (int64_t jc = 0; jc < N; jc += NC) {                    /* loop 5 */
        int64_t nc = min_i64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {                /* loop 4 */
            int64_t kc = min_i64(KC, K - pc);
            SFX(shared_ctx) x = { kd, M, nc, kc, MC, alpha, pc == 0 ? beta : 1,
                                  A + pc * csa, rsa, csa, B + pc * rsb + jc * csb, rsb, csb,
                                  Bp, C + jc * csc, rsc, csc };
            int64_t npanels = (nc + kd->nr - 1) / kd->nr;
            tg_parallel_for(npanels, 8, SFX(shared_pack_b), &x);
            tg_parallel_for((M + MC - 1) / MC, 1, SFX(shared_rows), &x);   /* loop 3 */
        }
    }
    tg_scratch_free(Bp);
    return 0;
}

/* The packed GEMM with kernel `kd` on at most `max_threads` pool threads
 * (fewer if C has fewer tiles in the split dimension).  Slabs are whole
 * tiles, so results do not depend on the thread count.  K >= 1. */
static void SFX(gemm_packed_mt)(const SFX(tg_gemm_kernel) *kd, int max_threads,
                                int64_t M, int64_t N, int64_t K, real alpha,
                                const real *A, int64_t rsa, int64_t csa,
                                const real *B, int64_t rsb, int64_t csb,
                                real beta, real *C, int64_t rsc, int64_t csc)
{
    int pool_threads = tg_get_num_threads();
    if (max_threads > pool_threads)
        max_threads = pool_threads;
    if (max_threads > 1 && (M + kd->mc - 1) / kd->mc >= 4 * (int64_t)max_threads &&
        SFX(gemm_shared_b)(kd, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc) == 0)
        return;
    SFX(mt_ctx) x = { { kd, M, N, K, alpha, beta, A, rsa, csa, B, rsb, csb, C, rsc, csc }, 1 };
    /* Split the longer side: N (columns, loop 5) unless C is taller than wide. */
    int64_t ntiles_n = (N + kd->nr - 1) / kd->nr, ntiles_m = (M + kd->mr - 1) / kd->mr;
    x.split_n = N >= M;
    int64_t ntiles = x.split_n ? ntiles_n : ntiles_m;
    if (max_threads < 1)
        max_threads = 1;
    /* At most max_threads slabs of whole tiles, one loop item each: a grain
     * of ceil(ntiles / max_threads) tiles would give floor(ntiles / grain)
     * chunks, one for an odd number of tiles on two threads (1568 columns,
     * 49 tiles of 32: the MNIST models' first layer ran on one thread). */
    x.slab_tiles = (ntiles + max_threads - 1) / max_threads;
    x.ntiles = ntiles;
    tg_parallel_for((ntiles + x.slab_tiles - 1) / x.slab_tiles, 1, SFX(mt_slab), &x);
}

/* ---------------------------------------------------------------------
 * The public entry points of this element type.
 * --------------------------------------------------------------------- */

/* Defines tg_gemm_variant_f32 / _f64 (contract in gemm.h). */
int SFX(tg_gemm_variant)(tg_gemm_variant v,
                         int64_t M, int64_t N, int64_t K, real alpha,
                         const real *A, int64_t rsa, int64_t csa,
                         const real *B, int64_t rsb, int64_t csb,
                         real beta, real *C, int64_t rsc, int64_t csc)
{
    if ((unsigned)v >= (unsigned)TG_GEMM_N_VARIANTS)
        return -1;
    if (M <= 0 || N <= 0)
        return 0;
    if (K <= 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, rsc, csc);
        return 0;
    }
    switch (v) {
    case TG_GEMM_NAIVE:
        SFX(gemm_naive)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        break;
    case TG_GEMM_REORDERED:
        SFX(gemm_reordered)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        break;
    case TG_GEMM_BLOCKED:
        SFX(gemm_blocked)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        break;
    case TG_GEMM_PACKED_SCALAR:
        SFX(gemm_packed_or_naive)(&isa_generic.TG_TYPE_FIELD, M, N, K, alpha, A, rsa, csa,
                                  B, rsb, csb, beta, C, rsc, csc);
        break;
    case TG_GEMM_PACKED_SIMD:
        SFX(gemm_packed_or_naive)(&active_isa()->TG_TYPE_FIELD, M, N, K, alpha, A, rsa, csa,
                                  B, rsb, csb, beta, C, rsc, csc);
        break;
    case TG_GEMM_PACKED_SIMD_MT:
    default:
        SFX(gemm_packed_mt)(&active_isa()->TG_TYPE_FIELD, tg_get_num_threads(), M, N, K, alpha,
                            A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        break;
    }
    return 0;
}

/* Whether to compute C^T[N,M] = B^T[N,K] @ A^T[K,M] instead of C = A B:
 * the same numbers with rows and columns swapped.  Each element is the same
 * sum of the same products in the same order (the micro-kernels multiply
 * and add element by element, and the K blocks depend on K alone), so the
 * result is bitwise the same C either way; only the speed differs.
 *   - C is column-major (its columns are contiguous): swapped, the micro-
 *     kernel writes whole rows of C^T, i.e. contiguous memory, and no tile
 *     needs the scratch path.
 *   - Otherwise, when the padding of the edge tiles wastes much less work
 *     swapped: the GPT benchmark's output layer is 1024 x 65 x 128; with
 *     the 8 x 32 AVX-512 tile, 65 columns are computed as 96 (3 tiles),
 *     while swapped the 65 become rows, 72 (9 tiles of 8): a quarter less
 *     arithmetic for a strided write-back of C. */
static int SFX(swap_pays)(const SFX(tg_gemm_kernel) *kd, int64_t M, int64_t N, int64_t rsc,
                          int64_t csc)
{
    if (abs_i64(csc) > abs_i64(rsc))
        return 1;
    double keep = (double)round_up(M, kd->mr) * (double)round_up(N, kd->nr);
    double swap = (double)round_up(N, kd->mr) * (double)round_up(M, kd->nr);
    return swap < 0.8 * keep;
}

/* Defines tg_gemm_f32 / tg_gemm_f64 (contract in gemm.h): the variant
 * that suits the size. */
void SFX(tg_gemm)(int64_t M, int64_t N, int64_t K, real alpha,
                  const real *A, int64_t rsa, int64_t csa,
                  const real *B, int64_t rsb, int64_t csb,
                  real beta, real *C, int64_t rsc, int64_t csc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, rsc, csc);
        return;
    }
    double mnk = (double)M * (double)N * (double)K;
    if (mnk > TG_GEMM_SMALL_MNK && csa == 1 && rsb == 1 &&
        (M <= TG_GEMM_FEW || N <= TG_GEMM_FEW)) {
        SFX(gemm_dots)(M, N, K, alpha, A, rsa, B, csb, beta, C, rsc, csc);
        return;
    }
    if (csb == 1 && csc == 1 && M <= TG_GEMM_FEW && (mnk > TG_GEMM_SMALL_MNK || M == 1)) {
        SFX(gemm_rows)(M, N, K, alpha, A, rsa, csa, B, rsb, beta, C, rsc);
        return;
    }
    if (mnk <= TG_GEMM_SMALL_MNK || M == 1) {
        /* Tiny, or a row vector times a matrix: one pass over the rows of
         * B, which packing would only copy for a single use. */
        SFX(gemm_reordered)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        return;
    }
    if (N == 1) {
        /* A matrix times a column vector: one dot product per row of A.
         * (The packed kernel would compute NR columns to keep one.) */
        SFX(gemm_naive)(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        return;
    }
    double threads = 2.0 * mnk / TG_GEMM_FLOPS_PER_THREAD;
    int max_threads = threads >= TG_MAX_THREADS ? TG_MAX_THREADS : (int)threads;
    const SFX(tg_gemm_kernel) *kd = &active_isa()->TG_TYPE_FIELD;
    if (SFX(swap_pays)(kd, M, N, rsc, csc)) {
        SFX(gemm_packed_mt)(kd, max_threads, N, M, K, alpha, B, csb, rsb, A, csa, rsa,
                            beta, C, csc, rsc);
        return;
    }
    SFX(gemm_packed_mt)(kd, max_threads, M, N, K, alpha, A, rsa, csa, B, rsb, csb,
                        beta, C, rsc, csc);
}

/* ---------------------------------------------------------------------
 * Batches: C_i = alpha * A_i @ B_i + beta * C_i for every index i of a
 * batch (gemm.h, tg_gemm_batched_*).  What a batched matmul with two
 * batched operands needs (attention's scores q @ k^T and its a @ v: 64
 * products of 64 x 64 x 32 in the GPT benchmark).  Calling tg_gemm per item
 * paid, for each item, two allocations of packing buffers and their frees,
 * and ran the whole batch on one thread because no single item is worth
 * waking a second one.  Here the items are dealt out to the pool threads in
 * chunks (each chunk worth about TG_GEMM_FLOPS_PER_THREAD), and each chunk
 * packs all of its items into one pair of buffers.  Every item is computed
 * by the same packed loops as on one thread, so the result does not depend
 * on the thread count; items big enough to use every thread on their own
 * go through tg_gemm one after another instead.
 * --------------------------------------------------------------------- */
typedef struct {
    SFX(gemm_args) g;                           /* one item's product, at item 0 */
    int nbd;                                    /* batch dims */
    const int64_t *bshape, *bsa, *bsb, *bsc;    /* their sizes and strides */
} SFX(batch_ctx);

/* The element offsets of item `it` (flat index, last batch dim fastest) in
 * A, B and C. */
static void SFX(item_offsets)(const SFX(batch_ctx) *b, int64_t it, int64_t *oa, int64_t *ob,
                              int64_t *oc)
{
    *oa = *ob = *oc = 0;
    for (int d = b->nbd - 1; d >= 0; --d) {
        int64_t id = it % b->bshape[d];
        it /= b->bshape[d];
        *oa += id * b->bsa[d];
        *ob += id * b->bsb[d];
        *oc += id * b->bsc[d];
    }
}

/* tg_range_fn: items [i0, i1) of the batch, on the calling thread. */
static void SFX(batch_items)(int64_t i0, int64_t i1, void *vctx)
{
    const SFX(batch_ctx) *b = vctx;
    const SFX(gemm_args) *x = &b->g;
    int64_t KC, MC, NC;
    SFX(block_sizes)(x->kd, x->M, x->N, x->K, &KC, &MC, &NC);
    real *Ap = SFX(pack_alloc_real)(MC * KC);
    real *Bp = Ap ? SFX(pack_alloc_real)(KC * NC) : NULL;
    for (int64_t it = i0; it < i1; ++it) {
        int64_t oa, ob, oc;
        SFX(item_offsets)(b, it, &oa, &ob, &oc);
        if (Bp != NULL)
            SFX(gemm_packed_buf)(x->kd, x->M, x->N, x->K, x->alpha, x->A + oa, x->rsa, x->csa,
                                 x->B + ob, x->rsb, x->csb, x->beta, x->C + oc, x->rsc, x->csc,
                                 Ap, Bp);
        else
            SFX(gemm_naive)(x->M, x->N, x->K, x->alpha, x->A + oa, x->rsa, x->csa, x->B + ob,
                            x->rsb, x->csb, x->beta, x->C + oc, x->rsc, x->csc);
    }
    tg_scratch_free(Ap);
    tg_scratch_free(Bp);
}

/* Defines tg_gemm_batched_f32 / _f64 (contract in gemm.h). */
void SFX(tg_gemm_batched)(int nbd, const int64_t *bshape, const int64_t *bsa,
                          const int64_t *bsb, const int64_t *bsc,
                          int64_t M, int64_t N, int64_t K, real alpha,
                          const real *A, int64_t rsa, int64_t csa,
                          const real *B, int64_t rsb, int64_t csb,
                          real beta, real *C, int64_t rsc, int64_t csc)
{
    int64_t nitems = 1;
    for (int d = 0; d < nbd; ++d)
        nitems *= bshape[d];
    if (nitems <= 0 || M <= 0 || N <= 0)
        return;
    double mnk = (double)M * (double)N * (double)K;
    int threads = tg_get_num_threads();
    if (nitems == 1 || K <= 0 || alpha == 0 || mnk <= TG_GEMM_SMALL_MNK || M == 1 || N == 1 ||
        2.0 * mnk >= TG_GEMM_FLOPS_PER_THREAD * threads) {
        /* trivial, tiny or vector items (tg_gemm's unpacked loops), or
         * items that each fill every thread: one tg_gemm per item */
        int64_t idx[TG_GEMM_MAX_BATCH_DIMS] = { 0 };
        for (int64_t it = 0; it < nitems; ++it) {
            int64_t oa = 0, ob = 0, oc = 0;
            for (int d = 0; d < nbd; ++d) {
                oa += idx[d] * bsa[d];
                ob += idx[d] * bsb[d];
                oc += idx[d] * bsc[d];
            }
            SFX(tg_gemm)(M, N, K, alpha, A + oa, rsa, csa, B + ob, rsb, csb, beta, C + oc, rsc, csc);
            for (int d = nbd - 1; d >= 0; --d) {
                if (++idx[d] < bshape[d])
                    break;
                idx[d] = 0;
            }
        }
        return;
    }
    SFX(batch_ctx) x = { { &active_isa()->TG_TYPE_FIELD, M, N, K, alpha, beta, A, rsa, csa,
                           B, rsb, csb, C, rsc, csc }, nbd, bshape, bsa, bsb, bsc };
    if (SFX(swap_pays)(x.g.kd, M, N, rsc, csc)) {
        /* compute C^T = B^T A^T, as tg_gemm does */
        x = (SFX(batch_ctx)){ { x.g.kd, N, M, K, alpha, beta, B, csb, rsb, A, csa, rsa,
                                C, csc, rsc }, nbd, bshape, bsb, bsa, bsc };
    }
    /* chunks of whole items, each worth about one thread's share */
    int64_t grain = (int64_t)(TG_GEMM_FLOPS_PER_THREAD / (2.0 * mnk)) + 1;
    tg_parallel_for(nitems, grain, SFX(batch_items), &x);
}

/* ---------------------------------------------------------------------
 * Triangular products: tg_gemm_tri_batched_* (contract in gemm.h).  The
 * products of causal attention: the scores q k^T are needed only on and
 * below the diagonal (C lower), and the weights that multiply v, and the
 * scores' gradient that multiplies k and q, are zero above it (A lower, or
 * A upper for a transpose).  The same packed loops as gemm_packed_buf,
 * with three changes: a tile of C that lies wholly outside its triangle is
 * written as zeros instead of computed; a tile of a triangular A runs the
 * micro-kernel over only the part of K that its rows keep (rows i0..i0+m-1
 * of tril(A) reach p < i0 + m, of triu(A) p >= i0: the packed panels are
 * column by column, so that part is a shorter kc from an offset); and the
 * entries of A outside the triangle, inside that part, are zeroed in the
 * packed copy (when A is read in place, as direct_block does, the band of
 * at most MR - 1 columns along the diagonal is copied with them zeroed:
 * tri_split, macro_tri).  At attention's 64 x 64 x 32 items, with the
 * 8 x 32 AVX-512 tile, a lower C computes 6 of its 8 tiles and a lower A
 * 36 of 64 columns per tile on average.  Row offsets: i_off is the item's
 * row index of the block's first row (a large item is split into blocks
 * of rows for the threads).
 * --------------------------------------------------------------------- */

/* The reference: the definition, any strides, K >= 0; alpha == 0 reads
 * neither A nor B.  The fallback when a packing buffer cannot be had. */
static void SFX(gemm_tri_naive)(tg_gemm_tri tri, int64_t i_off, int64_t M, int64_t N, int64_t K,
                                real alpha, const real *A, int64_t rsa, int64_t csa,
                                const real *B, int64_t rsb, int64_t csb,
                                real beta, real *C, int64_t rsc, int64_t csc)
{
    for (int64_t r = 0; r < M; ++r) {
        int64_t i = i_off + r;
        int64_t k0 = tri == TG_TRI_UPPER_A ? min_i64(i, K) : 0;
        int64_t k1 = tri == TG_TRI_LOWER_A ? min_i64(i + 1, K) : K;
        for (int64_t j = 0; j < N; ++j) {
            real *c = C + r * rsc + j * csc;
            if ((tri == TG_TRI_LOWER_C && j > i) || (tri == TG_TRI_UPPER_C && j < i)) {
                *c = 0;
                continue;
            }
            real acc = 0;
            for (int64_t k = k0; alpha != 0 && k < k1; ++k)
                acc += A[r * rsa + k * csa] * B[k * rsb + j * csb];
            real t = alpha * acc;
            *c = beta == 0 ? t : t + beta * *c;
        }
    }
}

/* Whether the m x n tile of C at item row i0, column j0 lies wholly outside
 * a triangular C. */
static int SFX(tri_tile_out)(tg_gemm_tri tri, int64_t i0, int64_t m, int64_t j0, int64_t n)
{
    return (tri == TG_TRI_LOWER_C && j0 > i0 + m - 1) || (tri == TG_TRI_UPPER_C && j0 + n - 1 < i0);
}

/* The part [*lo, *hi) of the K block [pc, pc + kc), as offsets into the
 * block, that rows i0..i0+m-1 of a triangular A keep (all of it for a
 * triangular C).  Empty when *hi <= *lo. */
static void SFX(tri_k_range)(tg_gemm_tri tri, int64_t i0, int64_t m, int64_t pc, int64_t kc,
                        int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = kc;
    if (tri == TG_TRI_LOWER_A)
        *hi = min_i64(kc, i0 + m - pc);
    else if (tri == TG_TRI_UPPER_A)
        *lo = i0 - pc > 0 ? i0 - pc : 0;
}

/* Zero the entries of a packed block of A (rows i0.., kw columns from
 * item column p0; panels of mr rows, pack_a's layout with kc = kw) that a
 * triangular A drops, where each panel's micro-kernel will read them. */
static void SFX(tri_mask_a)(tg_gemm_tri tri, int64_t i0, int64_t mc, int64_t p0, int64_t kw,
                            int mr, real *Ap)
{
    for (int64_t ir = 0; ir < mc; ir += mr) {
        int64_t m = min_i64(mr, mc - ir), lo, hi;
        SFX(tri_k_range)(tri, i0 + ir, m, p0, kw, &lo, &hi);
        real *panel = Ap + ir * kw;
        for (int64_t r = 0; r < m; ++r) {
            int64_t i = i0 + ir + r, z0, z1;   /* zero block columns [z0, z1) of this row */
            if (tri == TG_TRI_LOWER_A) {
                z0 = i + 1 - p0 > lo ? i + 1 - p0 : lo;
                z1 = hi;
            } else {
                z0 = lo;
                z1 = min_i64(hi, i - p0);
            }
            for (int64_t p = z0; p < z1; ++p)
                panel[p * mr + r] = 0;
        }
    }
}

/* Zero the entries of the m x n tile of C at item row i0, column j0 that
 * lie outside a triangular C. */
static void SFX(tri_mask_c)(tg_gemm_tri tri, int64_t i0, int64_t m, int64_t j0, int64_t n,
                            real *c, int64_t rsc, int64_t csc)
{
    for (int64_t r = 0; r < m; ++r) {
        int64_t i = i0 + r;
        int64_t z0 = tri == TG_TRI_LOWER_C ? i + 1 - j0 : 0;
        int64_t z1 = tri == TG_TRI_LOWER_C ? n : i - j0;
        z0 = z0 > 0 ? z0 : 0;
        z1 = min_i64(z1, n);
        if (z1 > z0 && csc == 1)
            memset(c + r * rsc + z0, 0, (size_t)(z1 - z0) * sizeof(real));
        else
            for (int64_t j = z0; j < z1; ++j)
                c[r * rsc + j * csc] = 0;
    }
}

/* The m x n block of C at c set to 0 (scale_c with beta 0, a row at a time
 * when rows are contiguous). */
static void SFX(zero_c)(int64_t m, int64_t n, real *c, int64_t rsc, int64_t csc)
{
    if (csc != 1) {
        SFX(scale_c)(m, n, 0, c, rsc, csc);
        return;
    }
    for (int64_t r = 0; r < m; ++r)
        memset(c + r * rsc, 0, (size_t)n * sizeof(real));
}

/* The part of the K block [pc, pc + kc) that rows i0..i0+m-1 keep, cut
 * at *cut into two ranges [*lo, *cut) and [*cut, *hi) (block offsets, in
 * K order): the one that every row keeps whole, and the band of at most
 * m - 1 columns along the diagonal that only some rows keep (for tril(A)
 * the whole part comes first, for triu(A) the band).  A triangular C keeps
 * all of K: no band.  Both the direct and the packed route below run the
 * micro-kernel once per range, so a tile is the same sum either way. */
static void SFX(tri_split)(tg_gemm_tri tri, int64_t i0, int64_t m, int64_t pc, int64_t kc,
                           int64_t *lo, int64_t *cut, int64_t *hi)
{
    SFX(tri_k_range)(tri, i0, m, pc, kc, lo, hi);
    int64_t x = *hi;
    if (tri == TG_TRI_LOWER_A)
        x = i0 + 1 - pc;            /* every row keeps p <= i0 */
    else if (tri == TG_TRI_UPPER_A)
        x = i0 + m - 1 - pc;        /* every row keeps p >= i0 + m - 1 */
    *cut = x < *lo ? *lo : x > *hi ? *hi : x;
}

/* macro_kernel for a triangular product, rows from item row i0 and
 * columns from item column j0 of C, K block [pc, pc + kc), Bp its whole
 * kc x nc panel.  A is read in place (Ad: the block's first element, with
 * rsa, csa) for the whole micro-panels of rows below `packed_from`, and
 * from the packed rows Ap (rows from packed_from; kw columns from block
 * column ka, entries outside the triangle zeroed) after it.  In place, a
 * band's few columns are copied with the dropped entries zeroed, into a
 * small panel, for the packed micro-kernel. */
static void SFX(macro_tri)(const SFX(tg_gemm_kernel) *kd, tg_gemm_tri tri, int64_t i0, int64_t j0,
                           int64_t pc, int64_t mc, int64_t nc, int64_t kc, real alpha,
                           const real *Ad, int64_t rsa, int64_t csa, int64_t packed_from,
                           const real *Ap, int64_t ka, int64_t kw,
                           const real *Bp, real beta, real *C, int64_t rsc, int64_t csc)
{
    const int mr = kd->mr, nr = kd->nr;
    const int c_tri = tri == TG_TRI_LOWER_C || tri == TG_TRI_UPPER_C;
    _Alignas(64) real tile[TG_GEMM_MAX_TILE];
    _Alignas(64) real band[TG_GEMM_MAX_TILE];       /* mr x (at most mr - 1) */
    for (int64_t jr = 0; jr < nc; jr += nr) {           /* loop 2 */
        int64_t n = min_i64(nr, nc - jr);
        for (int64_t ir = 0; ir < mc; ir += mr) {       /* loop 1 */
            int64_t m = min_i64(mr, mc - ir), lo, cut, hi;
            real *c = C + ir * rsc + jr * csc;
            if (SFX(tri_tile_out)(tri, i0 + ir, m, j0 + jr, n)) {
                SFX(zero_c)(m, n, c, rsc, csc);
                continue;
            }
            SFX(tri_split)(tri, i0 + ir, m, pc, kc, &lo, &cut, &hi);
            if (hi <= lo) {             /* these rows keep nothing of this K block */
                SFX(scale_c)(m, n, beta, c, rsc, csc);
                continue;
            }
            int whole = m == mr && n == nr && csc == 1;
            real *dst = whole ? c : tile, bp = whole ? beta : 0;
            int64_t ldd = whole ? rsc : nr;
            for (int part = 0; part < 2; ++part) {
                int64_t p0 = part ? cut : lo, p1 = part ? hi : cut;
                if (p1 <= p0)
                    continue;
                const real *b = Bp + jr * kc + p0 * nr;
                int is_band = (tri == TG_TRI_LOWER_A && part == 1) ||
                              (tri == TG_TRI_UPPER_A && part == 0);
                if (ir >= packed_from) {
                    kd->ukr(p1 - p0, alpha, Ap + (ir - packed_from) * kw + (p0 - ka) * mr, b, bp,
                            dst, ldd);
                } else if (!is_band) {
                    kd->ukr_direct(p1 - p0, alpha, Ad + ir * rsa + p0 * csa, rsa, csa, b, bp,
                                   dst, ldd);
                } else {
                    for (int64_t p = p0; p < p1; ++p)
                        for (int r = 0; r < mr; ++r) {
                            int64_t i = i0 + ir + r, q = pc + p;
                            int keep = tri == TG_TRI_LOWER_A ? q <= i : q >= i;
                            band[(p - p0) * mr + r] = keep ? Ad[(ir + r) * rsa + p * csa] : 0;
                        }
                    kd->ukr(p1 - p0, alpha, band, b, bp, dst, ldd);
                }
                bp = 1;                 /* the second range adds to the first */
            }
            if (!whole)
                SFX(merge_tile)(m, n, tile, nr, beta, c, rsc, csc);
            if (c_tri)                  /* a tile across the diagonal: zero its other side */
                SFX(tri_mask_c)(tri, i0 + ir, m, j0 + jr, n, c, rsc, csc);
        }
    }
}

/* gemm_packed_buf for rows [i_off, i_off + M) of a triangular product
 * whose cache blocks are KC, MC, NC (block_sizes of the whole item: the
 * same blocks however the item's rows are split).  A block that
 * direct_pays reads A in place, as gemm_packed_buf's direct_block does;
 * only its rows past the last whole micro-panel are packed. */
static void SFX(gemm_tri_buf)(const SFX(tg_gemm_kernel) *kd, tg_gemm_tri tri, int64_t i_off,
                              int64_t KC, int64_t MC, int64_t NC,
                              int64_t M, int64_t N, int64_t K, real alpha,
                              const real *A, int64_t rsa, int64_t csa,
                              const real *B, int64_t rsb, int64_t csb,
                              real beta, real *C, int64_t rsc, int64_t csc,
                              real *Ap, real *Bp)
{
    const int mr = kd->mr;
    for (int64_t jc = 0; jc < N; jc += NC) {                    /* loop 5 */
        int64_t nc = min_i64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {                /* loop 4 */
            int64_t kc = min_i64(KC, K - pc);
            real beta_p = pc == 0 ? beta : 1;
            int packed_b = 0;
            for (int64_t ic = 0; ic < M; ic += MC) {            /* loop 3 */
                int64_t mc = min_i64(MC, M - ic), i0 = i_off + ic, ka, kb;
                real *c = C + ic * rsc + jc * csc;
                if (SFX(tri_tile_out)(tri, i0, mc, jc, nc)) {
                    SFX(zero_c)(mc, nc, c, rsc, csc);
                    continue;
                }
                SFX(tri_k_range)(tri, i0, mc, pc, kc, &ka, &kb);
                if (kb <= ka) {
                    SFX(scale_c)(mc, nc, beta_p, c, rsc, csc);
                    continue;
                }
                if (!packed_b) {
                    SFX(pack_b)(kc, nc, B + pc * rsb + jc * csb, rsb, csb, kd->nr, Bp);
                    packed_b = 1;
                }
                /* pack the rows read from Ap: all, or those past the whole
                 * micro-panels; only the columns [ka, kb) that they keep */
                const real *Ad = A + ic * rsa + pc * csa;
                int64_t from = SFX(direct_pays)(kd, mc, nc) ? mc / mr * mr : 0;
                if (from < mc) {
                    SFX(pack_a)(mc - from, kb - ka, Ad + from * rsa + ka * csa, rsa, csa, mr, Ap);
                    if (tri == TG_TRI_LOWER_A || tri == TG_TRI_UPPER_A)
                        SFX(tri_mask_a)(tri, i0 + from, mc - from, pc + ka, kb - ka, mr, Ap);
                }
                SFX(macro_tri)(kd, tri, i0, jc, pc, mc, nc, kc, alpha, Ad, rsa, csa, from, Ap, ka,
                               kb - ka, Bp, beta_p, c, rsc, csc);
            }
        }
    }
}

typedef struct {
    SFX(batch_ctx) b;
    tg_gemm_tri tri;
    int64_t KC, MC, NC;         /* block_sizes of one item */
    int64_t rows, nslabs;       /* rows per slab (whole MC blocks), slabs per item */
} SFX(tri_ctx);

/* tg_range_fn: units [u0, u1), unit u being slab u % nslabs of item
 * u / nslabs, on the calling thread. */
static void SFX(tri_units)(int64_t u0, int64_t u1, void *vctx)
{
    const SFX(tri_ctx) *t = vctx;
    const SFX(batch_ctx) *b = &t->b;
    const SFX(gemm_args) *x = &b->g;
    real *Ap = SFX(pack_alloc_real)(t->MC * t->KC);
    real *Bp = Ap ? SFX(pack_alloc_real)(t->KC * t->NC) : NULL;
    for (int64_t u = u0; u < u1; ++u) {
        int64_t r0 = u % t->nslabs * t->rows, rn = min_i64(t->rows, x->M - r0), oa, ob, oc;
        SFX(item_offsets)(b, u / t->nslabs, &oa, &ob, &oc);
        oa += r0 * x->rsa;      /* the slab's first row */
        oc += r0 * x->rsc;
        if (Bp != NULL)
            SFX(gemm_tri_buf)(x->kd, t->tri, r0, t->KC, t->MC, t->NC, rn, x->N, x->K, x->alpha,
                              x->A + oa, x->rsa, x->csa, x->B + ob, x->rsb, x->csb, x->beta,
                              x->C + oc, x->rsc, x->csc, Ap, Bp);
        else
            SFX(gemm_tri_naive)(t->tri, r0, rn, x->N, x->K, x->alpha, x->A + oa, x->rsa, x->csa,
                                x->B + ob, x->rsb, x->csb, x->beta, x->C + oc, x->rsc, x->csc);
    }
    tg_scratch_free(Ap);
    tg_scratch_free(Bp);
}

/* Defines tg_gemm_tri_batched_f32 / _f64 (contract in gemm.h). */
void SFX(tg_gemm_tri_batched)(tg_gemm_tri tri, int nbd, const int64_t *bshape,
                              const int64_t *bsa, const int64_t *bsb, const int64_t *bsc,
                              int64_t M, int64_t N, int64_t K, real alpha,
                              const real *A, int64_t rsa, int64_t csa,
                              const real *B, int64_t rsb, int64_t csb,
                              real beta, real *C, int64_t rsc, int64_t csc)
{
    int64_t nitems = 1;
    for (int d = 0; d < nbd; ++d)
        nitems *= bshape[d];
    if (nitems <= 0 || M <= 0 || N <= 0 || (unsigned)tri >= (unsigned)TG_TRI_N_MODES)
        return;
    SFX(tri_ctx) t = { { { &active_isa()->TG_TYPE_FIELD, M, N, K, alpha, beta, A, rsa, csa,
                           B, rsb, csb, C, rsc, csc }, nbd, bshape, bsa, bsb, bsc }, tri };
    if (K <= 0 || alpha == 0) {
        /* C = beta C (0 outside a triangular C), A and B unread */
        for (int64_t it = 0; it < nitems; ++it) {
            int64_t oa, ob, oc;
            SFX(item_offsets)(&t.b, it, &oa, &ob, &oc);
            SFX(gemm_tri_naive)(tri, 0, M, N, 0, 0, A, rsa, csa, B, rsb, csb, beta, C + oc,
                                rsc, csc);
        }
        return;
    }
    SFX(block_sizes)(t.b.g.kd, M, N, K, &t.KC, &t.MC, &t.NC);
    /* a few items, each of several row blocks: the blocks go to the threads
     * too (the triangle makes them unequal, so one per unit) */
    int threads = tg_get_num_threads();
    int64_t nblocks = (M + t.MC - 1) / t.MC;
    t.nslabs = nitems < 2 * (int64_t)threads ? nblocks : 1;
    t.rows = t.nslabs > 1 ? t.MC : M;
    /* chunks of units, each chunk worth at most one thread's share (counted
     * as full products: the skipped half makes more, smaller chunks) */
    double unit = 2.0 * (double)t.rows * (double)N * (double)K;
    int64_t grain = (int64_t)(TG_GEMM_FLOPS_PER_THREAD / unit) + 1;
    tg_parallel_for(nitems * t.nslabs, grain, SFX(tri_units), &t);
}

/* ---------------------------------------------------------------------
 * Implicit B: tg_gemm_f32_packb / _f64 (contract in gemm.h).  The loops
 * of gemm_packed with B's packed panels written by the caller's callback
 * instead of pack_b, for a B that is never formed (a convolution's
 * windows: csrc/ops/conv.c).  Same block sizes, A packing and macro-kernel
 * as tg_gemm_*, so C is the same bits as tg_gemm_* gives for the matrix B
 * whose panels the callback writes.  Called outside a parallel loop, the
 * columns are cut into slabs of whole NR tiles for the pool's threads, as
 * gemm_packed_mt does; every buffer is allocated before any C is written.
 * --------------------------------------------------------------------- */
typedef struct {
    const SFX(tg_gemm_kernel) *kd;
    int64_t M, N, K, grain;     /* grain: NR tiles per slab */
    real alpha, beta;
    const real *A; int64_t rsa, csa;
    SFX(tg_gemm_packb_fn) pack;
    void *ctx;
    real *C; int64_t rsc;
    real *buf; int64_t apn, bpn; /* per slab: Ap (apn elements) then Bp (bpn) */
} SFX(packb_ctx);

/* tg_range_fn: slabs [s0, s1), slab s being the NR-column tiles [s * grain,
 * (s + 1) * grain); one call runs its slabs in turn with slab s0's buffers. */
static void SFX(packb_slabs)(int64_t s0, int64_t s1, void *vctx)
{
    const SFX(packb_ctx) *x = vctx;
    const SFX(tg_gemm_kernel) *kd = x->kd;
    real *Ap = x->buf + s0 * (x->apn + x->bpn), *Bp = Ap + x->apn;
    for (int64_t s = s0; s < s1; ++s) {
        int64_t j0 = s * x->grain * kd->nr, j1 = min_i64((s + 1) * x->grain * kd->nr, x->N);
        int64_t KC, MC, NC;
        SFX(block_sizes)(kd, x->M, j1 - j0, x->K, &KC, &MC, &NC);
        if (x->M <= MC) {
            /* One block of A's rows (the skinny products of a convolution):
             * pack A's block once per K block, then each micro-panel of B
             * just before the micro-kernels use it, while it is in L1
             * (instead of the whole kc x nc panel, which may not fit in L2,
             * written first and read back).  The same operations in the same
             * order: the same bits. */
            for (int64_t pc = 0; pc < x->K; pc += KC) {         /* loop 4 */
                int64_t kc = min_i64(KC, x->K - pc);
                real beta_p = pc == 0 ? x->beta : 1;
                SFX(pack_a)(x->M, kc, x->A + pc * x->csa, x->rsa, x->csa, kd->mr, Ap);
                for (int64_t jr = j0; jr < j1; jr += kd->nr) {  /* loop 2 */
                    int64_t n = min_i64(kd->nr, j1 - jr);
                    x->pack(x->ctx, pc, kc, jr, n, kd->nr, Bp);
                    SFX(macro_kernel)(kd, x->M, n, kc, x->alpha, Ap, Bp, beta_p, x->C + jr,
                                      x->rsc, 1);
                }
            }
            continue;
        }
        for (int64_t jc = j0; jc < j1; jc += NC) {              /* loop 5 */
            int64_t nc = min_i64(NC, j1 - jc);
            for (int64_t pc = 0; pc < x->K; pc += KC) {         /* loop 4 */
                int64_t kc = min_i64(KC, x->K - pc);
                x->pack(x->ctx, pc, kc, jc, nc, kd->nr, Bp);
                real beta_p = pc == 0 ? x->beta : 1;
                for (int64_t ic = 0; ic < x->M; ic += MC) {     /* loop 3 */
                    int64_t mc = min_i64(MC, x->M - ic);
                    SFX(pack_a)(mc, kc, x->A + ic * x->rsa + pc * x->csa, x->rsa, x->csa,
                                kd->mr, Ap);
                    SFX(macro_kernel)(kd, mc, nc, kc, x->alpha, Ap, Bp, beta_p,
                                      x->C + ic * x->rsc + jc, x->rsc, 1);
                }
            }
        }
    }
}

int SFX(tg_gemm_packb)(int64_t M, int64_t N, int64_t K, real alpha,
                       const real *A, int64_t rsa, int64_t csa,
                       SFX(tg_gemm_packb_fn) pack_b, void *ctx,
                       real beta, real *C, int64_t rsc)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (K <= 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, rsc, 1);
        return 0;
    }
    double mnk = (double)M * (double)N * (double)K;
    if (mnk <= TG_GEMM_SMALL_MNK || M <= TG_GEMM_FEW || N <= TG_GEMM_FEW || abs_i64(rsc) < 1)
        return -1;      /* tg_gemm_* may not use the packed kernel: the caller forms B */
    const SFX(tg_gemm_kernel) *kd = &active_isa()->TG_TYPE_FIELD;
    double threads = 2.0 * mnk / TG_GEMM_FLOPS_PER_THREAD;
    int max_threads = threads >= TG_MAX_THREADS ? TG_MAX_THREADS : (int)threads;
    if (max_threads > tg_get_num_threads())
        max_threads = tg_get_num_threads();
    if (max_threads < 1)
        max_threads = 1;
    int64_t ntiles = (N + kd->nr - 1) / kd->nr;
    int64_t grain = (ntiles + max_threads - 1) / max_threads;
    int64_t nslabs = (ntiles + grain - 1) / grain;
    int64_t KC, MC, NC;
    SFX(block_sizes)(kd, M, min_i64(N, grain * kd->nr), K, &KC, &MC, &NC);
    /* whole cache lines per buffer, so that every Ap and Bp is 64-byte aligned */
    int64_t line = 64 / (int64_t)sizeof(real);
    int64_t apn = round_up(MC * KC, line), bpn = round_up(KC * NC, line);
    real *buf = SFX(pack_alloc_real)(nslabs * (apn + bpn));
    if (buf == NULL)
        return -1;
    SFX(packb_ctx) x = { kd, M, N, K, grain, alpha, beta, A, rsa, csa, pack_b, ctx, C, rsc,
                         buf, apn, bpn };
    tg_parallel_for(nslabs, 1, SFX(packb_slabs), &x);
    tg_scratch_free(buf);
    return 0;
}

#undef TG_GEMM_IN_TEMPLATE
#endif /* TG_GEMM_TEMPLATE */
