/* test_gemm.c -- Check suite for csrc/kernels/gemm.c: every variant of the
 * lesson and every micro-kernel this CPU can run, against a reference
 * computed in extended precision, on every layout.
 *
 * Exposes Suite *gemm_suite(void).  Standalone run (from the repo root):
 *
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -pthread -Icsrc/kernels csrc/kernels/[a-z]*.c \
 *       tests/c/test_gemm.c -DTG_GEMM_TEST_MAIN $(pkg-config --cflags --libs check) -lm \
 *       -o /tmp/tg_gemm_test && /tmp/tg_gemm_test
 *
 * TG_TEST_LIGHT=1 (valgrind runs) keeps only the small sizes.
 *
 * How a case is checked
 * ---------------------
 * The operands are written into buffers through their strided views; every
 * element of a buffer that the view does not cover is poisoned: NaN in A
 * and B (a kernel that reads outside the view gets NaN in its result) and a
 * sentinel in C (a kernel that writes outside the view changes it).  With
 * beta == 0 the elements of C inside the view are NaN too: they must not
 * leak into the result.
 *
 * Tolerance.  The reference S = A @ B and |A| @ |B| are computed in long
 * double (64-bit mantissa: its own error is negligible).  Any algorithm that
 * sums K products in floating point with unit roundoff u = eps/2, in ANY
 * order (blocked, SIMD lanes, FMA or not), satisfies
 *     |fl(S) - S| <= gamma_K * (|A| @ |B|),   gamma_K = K u / (1 - K u)
 * (Higham, Accuracy and Stability of Numerical Algorithms, sec. 3.5).
 * Scaling by alpha, by beta and the final add cost up to 3 more roundings.
 * So each element must satisfy
 *     |C - (alpha S + beta C0)| <= (K + 4) * eps * (|alpha| (|A|@|B|) + |beta| |C0|)
 * which is the worst-case bound with a factor-2 margin (eps = 2u); it is
 * proportional to K and to eps of the type tested, so it can not hide a
 * wrong index (an error of the size of one product) but never flakes. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_GEMM_INTERNAL
#include "../../csrc/kernels/gemm.h"
#include "../../csrc/kernels/threadpool.h"
#include "../../csrc/kernels/dispatch.h"
#include "tapegrad.h"

/* ------------------------------------------------------------ helpers */

static int light(void)
{
    const char *s = getenv("TG_TEST_LIGHT");
    return s != NULL && *s != '\0' && strcmp(s, "0") != 0;
}

/* Deterministic pseudo-random numbers in [-1, 1). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* A strided view of a rows x cols matrix inside a buffer of len elements:
 * element (i, j) is at buf[off + i*rs + j*cs].  Strides may be 0 or < 0. */
typedef struct {
    int64_t rows, cols, rs, cs, off, len;
} view;

static view make_view(int64_t rows, int64_t cols, int64_t rs, int64_t cs)
{
    view v = { rows, cols, rs, cs, 0, 1 };
    if (rows > 0 && cols > 0) {
        int64_t r = (rows - 1) * rs, c = (cols - 1) * cs;
        int64_t lo = (r < 0 ? r : 0) + (c < 0 ? c : 0);
        int64_t hi = (r > 0 ? r : 0) + (c > 0 ? c : 0);
        v.off = -lo;
        v.len = hi - lo + 1;
    }
    return v;
}

static int64_t at(const view *v, int64_t i, int64_t j) { return v->off + i * v->rs + j * v->cs; }

/* The layouts tested.  A is M x K, B is K x N, C is M x N. */
enum { L_NN, L_TN, L_NT, L_TT, L_STRIDED, L_BCAST_NEG, N_LAYOUTS };
static const char *layout_name[N_LAYOUTS] = {
    "A B", "A^T B", "A B^T", "A^T B^T, C col-major", "every other column", "broadcast A, reversed B"
};

static void layout_views(int layout, int64_t M, int64_t N, int64_t K, view *a, view *b, view *c)
{
    switch (layout) {
    case L_NN:
        *a = make_view(M, K, K, 1); *b = make_view(K, N, N, 1); *c = make_view(M, N, N, 1);
        break;
    case L_TN:       /* A stored as its transpose, K x M row-major */
        *a = make_view(M, K, 1, M); *b = make_view(K, N, N, 1); *c = make_view(M, N, N, 1);
        break;
    case L_NT:
        *a = make_view(M, K, K, 1); *b = make_view(K, N, 1, K); *c = make_view(M, N, N, 1);
        break;
    case L_TT:
        *a = make_view(M, K, 1, M); *b = make_view(K, N, 1, K); *c = make_view(M, N, 1, M);
        break;
    case L_STRIDED:  /* every other (or third) column, padded rows */
        *a = make_view(M, K, 2 * K + 3, 2); *b = make_view(K, N, 3 * N + 1, 3);
        *c = make_view(M, N, 2 * N + 5, 2);
        break;
    default:         /* one row of A broadcast to M rows; B's rows in reverse order */
        *a = make_view(M, K, 0, 1); *b = make_view(K, N, -N, 1); *c = make_view(M, N, N, 1);
        break;
    }
}

/* Buffers of one type, f32 or f64, addressed as doubles by the test. */
typedef struct {
    int f64;
    void *p;
    int64_t len;
} buf;

static buf buf_new(int f64, int64_t len)
{
    buf b = { f64, malloc((size_t)len * (f64 ? sizeof(double) : sizeof(float))), len };
    ck_assert_ptr_nonnull(b.p);
    return b;
}
static double get(const buf *b, int64_t i) { return b->f64 ? ((double *)b->p)[i] : ((float *)b->p)[i]; }
static void put(buf *b, int64_t i, double x)
{
    if (b->f64) ((double *)b->p)[i] = x; else ((float *)b->p)[i] = (float)x;
}
static void buf_fill(buf *b, double x) { for (int64_t i = 0; i < b->len; ++i) put(b, i, x); }

/* Who computes: a variant, or tg_gemm_* itself (VAR_AUTO). */
#define VAR_AUTO (-1)

static int run_gemm(int var, int f64, int64_t M, int64_t N, int64_t K, double alpha,
                    const buf *A, const view *va, const buf *B, const view *vb,
                    double beta, buf *C, const view *vc)
{
    if (f64) {
        const double *a = (const double *)A->p + va->off, *b = (const double *)B->p + vb->off;
        double *c = (double *)C->p + vc->off;
        if (var == VAR_AUTO) {
            tg_gemm_f64(M, N, K, alpha, a, va->rs, va->cs, b, vb->rs, vb->cs, beta, c, vc->rs, vc->cs);
            return 0;
        }
        return tg_gemm_variant_f64((tg_gemm_variant)var, M, N, K, alpha, a, va->rs, va->cs,
                                   b, vb->rs, vb->cs, beta, c, vc->rs, vc->cs);
    }
    const float *a = (const float *)A->p + va->off, *b = (const float *)B->p + vb->off;
    float *c = (float *)C->p + vc->off;
    if (var == VAR_AUTO) {
        tg_gemm_f32(M, N, K, (float)alpha, a, va->rs, va->cs, b, vb->rs, vb->cs, (float)beta, c,
                    vc->rs, vc->cs);
        return 0;
    }
    return tg_gemm_variant_f32((tg_gemm_variant)var, M, N, K, (float)alpha, a, va->rs, va->cs,
                               b, vb->rs, vb->cs, (float)beta, c, vc->rs, vc->cs);
}

typedef struct { int64_t M, N, K; } shape;

/* Check one variant on one shape, in every layout and alpha/beta case.
 * Returns the number of elements checked (so callers can assert work). */
static int64_t check_shape(int var, int f64, shape s)
{
    static const double ab[][2] = {   /* alpha, beta */
        { 1.0, 0.0 }, { 1.0, 1.0 }, { -1.5, 0.5 }, { 0.75, 0.0 }, { 0.0, 2.0 }, { 2.0, -1.0 },
    };
    const double eps = f64 ? DBL_EPSILON : FLT_EPSILON;
    const double sentinel = 12345.0;
    int64_t M = s.M, N = s.N, K = s.K, checked = 0;

    for (int layout = 0; layout < N_LAYOUTS; ++layout) {
        view va, vb, vc;
        layout_views(layout, M, N, K, &va, &vb, &vc);
        buf A = buf_new(f64, va.len), B = buf_new(f64, vb.len), C = buf_new(f64, vc.len);
        buf_fill(&A, NAN);
        buf_fill(&B, NAN);
        for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; ++k)
                put(&A, at(&va, i, k), rnd());
        for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j)
                put(&B, at(&vb, k, j), rnd());

        /* Reference, from what the views actually read (a broadcast view
         * makes rows equal). */
        long double *S = calloc((size_t)(M * N + 1), sizeof *S);
        long double *Sabs = calloc((size_t)(M * N + 1), sizeof *Sabs);
        double *C0 = malloc((size_t)(M * N + 1) * sizeof *C0);
        ck_assert(S && Sabs && C0);
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                long double acc = 0, accabs = 0;
                for (int64_t k = 0; k < K; ++k) {
                    long double p = (long double)get(&A, at(&va, i, k)) * get(&B, at(&vb, k, j));
                    acc += p;
                    accabs += fabsl(p);
                }
                S[i * N + j] = acc;
                Sabs[i * N + j] = accabs;
            }

        for (size_t c = 0; c < sizeof ab / sizeof ab[0]; ++c) {
            double alpha = ab[c][0], beta = ab[c][1];
            buf_fill(&C, sentinel);
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                    double c0 = f64 ? rnd() : (double)(float)rnd();
                    C0[i * N + j] = c0;
                    put(&C, at(&vc, i, j), beta == 0 ? NAN : c0);
                }
            ck_assert_int_eq(run_gemm(var, f64, M, N, K, alpha, &A, &va, &B, &vb, beta, &C, &vc), 0);

            /* Inside the view: close to the reference. */
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                    long double expect = (long double)alpha * S[i * N + j];
                    long double bound = fabsl((long double)alpha) * Sabs[i * N + j];
                    if (beta != 0) {
                        expect += (long double)beta * C0[i * N + j];
                        bound += fabsl((long double)beta * C0[i * N + j]);
                    }
                    double tol = (double)((K + 4) * eps * bound) + (f64 ? DBL_MIN : FLT_MIN);
                    double got = get(&C, at(&vc, i, j));
                    double err = fabs(got - (double)expect);
                    if (!(err <= tol))
                        ck_abort_msg("%s %s: %s, M=%lld N=%lld K=%lld alpha=%g beta=%g: "
                                     "C[%lld,%lld] = %.9g, expected %.9g (error %.3g > tol %.3g)",
                                     var == VAR_AUTO ? "tg_gemm" : tg_gemm_variant_name(var),
                                     f64 ? "f64" : "f32", layout_name[layout],
                                     (long long)M, (long long)N, (long long)K, alpha, beta,
                                     (long long)i, (long long)j, got, (double)expect, err, tol);
                    ++checked;
                }
            /* Outside the view: untouched.  Mark the view, then scan. */
            char *in = calloc((size_t)vc.len, 1);
            ck_assert_ptr_nonnull(in);
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j)
                    in[at(&vc, i, j)] = 1;
            for (int64_t x = 0; x < vc.len; ++x)
                if (!in[x] && get(&C, x) != sentinel)
                    ck_abort_msg("%s %s: %s, M=%lld N=%lld K=%lld: wrote outside C at offset %lld",
                                 var == VAR_AUTO ? "tg_gemm" : tg_gemm_variant_name(var),
                                 f64 ? "f64" : "f32", layout_name[layout],
                                 (long long)M, (long long)N, (long long)K, (long long)x);
            free(in);
        }
        free(S); free(Sabs); free(C0);
        free(A.p); free(B.p); free(C.p);
    }
    return checked;
}

/* Shapes: the squares of the brief, then rectangles that cross every block
 * boundary (MC, KC, NC of every kernel table, tile edges) and empty ones. */
static const int64_t square_sizes[] = { 0, 1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 64, 100, 129 };
static const shape rect_shapes[] = {
    { 1, 17, 5 }, { 17, 1, 33 }, { 7, 100, 3 }, { 129, 31, 16 }, { 33, 64, 0 }, { 0, 5, 5 },
    { 5, 0, 5 }, { 6, 16, 1 }, { 13, 47, 9 },
    { 257, 131, 300 },      /* K split in two equal blocks; many edge tiles */
    { 200, 20, 1100 },      /* K > 2 * KC */
    { 150, 40, 20 },        /* M > MC: several ic blocks */
    { 3, 4200, 5 },         /* N > NC: several jc blocks */
    { 1, 300, 40 },         /* a row vector times a matrix */
    { 300, 1, 40 },         /* a matrix times a column vector */
    { 2, 300, 130 },        /* a few rows: dot products (L_NT) or rows of C in */
    { 4, 70, 200 },         /*   registers (L_NN); 64-lane dots with a tail   */
    { 3, 130, 64 },         /*   and rows of C in whole blocks of 64 and a tail */
    { 300, 3, 70 },         /* a few columns: dot products */
    { 5, 40, 70 },          /* one row too many for either: packed */
    { 64, 32, 64 },         /* attention's items: A read in place (direct kernel) */
    { 67, 64, 33 },         /* the same with edge rows, two panels of B */
};

/* ---------------------------------------------------------- the cases */

/* What one loop iteration of the main test runs. */
typedef struct {
    int var;                /* a tg_gemm_variant, or VAR_AUTO */
    const char *isa;        /* micro-kernel to force, NULL = the CPU's best */
} combo;

static const combo combos[] = {
    { TG_GEMM_NAIVE, NULL },
    { TG_GEMM_REORDERED, NULL },
    { TG_GEMM_BLOCKED, NULL },
    { TG_GEMM_PACKED_SCALAR, NULL },
    { TG_GEMM_PACKED_SIMD, "generic" },
    { TG_GEMM_PACKED_SIMD, "avx2" },
    { TG_GEMM_PACKED_SIMD, "avx512" },
    { TG_GEMM_PACKED_SIMD, "neon" },
    { TG_GEMM_PACKED_SIMD_MT, "generic" },
    { TG_GEMM_PACKED_SIMD_MT, "avx2" },
    { TG_GEMM_PACKED_SIMD_MT, "avx512" },
    { TG_GEMM_PACKED_SIMD_MT, "neon" },
    { VAR_AUTO, NULL },
};
#define N_COMBOS ((int)(sizeof combos / sizeof combos[0]))

/* Every fixture leaves the process as it found it (CK_FORK=no runs all the
 * tests in one process). */
static int saved_threads;
static void setup(void) { saved_threads = tg_get_num_threads(); }
static void teardown(void)
{
    tg_gemm_force_isa(NULL);
    tg_gemm_testing_fail_alloc(0);
    tg_set_num_threads(saved_threads);
}

/* The combos this CPU can run, found when the suite is made (a combo whose
 * path the CPU lacks is not a test at all, so it can not pass silently:
 * main.c lists it as "not run here"). */
static int runnable[N_COMBOS];
static int n_runnable;

/* Loop index i: runnable combo i / 2, f32 (even) or f64 (odd). */
START_TEST(test_variant_vs_reference)
{
    const combo *c = &combos[runnable[_i / 2]];
    int f64 = _i % 2;
    if (c->isa != NULL) {
        ck_assert_int_eq(tg_gemm_force_isa(c->isa), 0);
        ck_assert_str_eq(tg_gemm_isa(), c->isa);
    }
    if (c->var == TG_GEMM_PACKED_SIMD_MT)
        tg_set_num_threads(3);   /* more slabs than cores: uneven splits */
    int64_t checked = 0;
    int64_t max_size = light() ? 33 : 1000000;
    for (size_t k = 0; k < sizeof square_sizes / sizeof square_sizes[0]; ++k) {
        int64_t n = square_sizes[k];
        if (n <= max_size)
            checked += check_shape(c->var, f64, (shape){ n, n, n });
    }
    for (size_t k = 0; k < sizeof rect_shapes / sizeof rect_shapes[0]; ++k) {
        shape s = rect_shapes[k];
        if (light() && s.M * s.N * s.K > 40000)
            continue;
        /* The naive kernels are slow on the large shapes; fine all the same. */
        checked += check_shape(c->var, f64, s);
    }
    ck_assert_int_gt(checked, 0);
}
END_TEST

/* The threaded kernel gives bitwise the same C with 1, 2 or 3 threads
 * (slabs fall on tile boundaries; shared-B row blocks are computed as on
 * one thread), for both types, for tg_gemm_* too. */
static void mt_run(int f64, int threads, int var, int64_t M, int64_t N, int64_t K, buf *A, buf *B, buf *C)
{
    tg_set_num_threads(threads);
    view va = make_view(M, K, K, 1), vb = make_view(K, N, N, 1), vc = make_view(M, N, N, 1);
    buf_fill(C, NAN);
    ck_assert_int_eq(run_gemm(var, f64, M, N, K, 1.0, A, &va, B, &vb, 0.0, C, &vc), 0);
}

START_TEST(test_threads_bitwise_identical)
{
    /* the last shape has enough row blocks for the shared-B path on two
     * threads (gemm_shared_b) and K over two cache blocks */
    static const shape shapes[] = { { 300, 280, 200 }, { 500, 37, 130 }, { 41, 700, 90 },
                                    { 650, 90, 600 } };
    int64_t nshapes = light() ? 1 : 4;
    static const int vars[] = { TG_GEMM_PACKED_SIMD_MT, VAR_AUTO };
    for (int f64 = 0; f64 < 2; ++f64)
        for (int64_t s = 0; s < nshapes; ++s)
            for (int v = 0; v < 2; ++v) {
                int var = vars[v];
                int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
                if (light()) { M /= 4; N /= 4; }
                buf A = buf_new(f64, M * K), B = buf_new(f64, K * N);
                buf C1 = buf_new(f64, M * N), C2 = buf_new(f64, M * N), C3 = buf_new(f64, M * N);
                for (int64_t i = 0; i < A.len; ++i) put(&A, i, rnd());
                for (int64_t i = 0; i < B.len; ++i) put(&B, i, rnd());
                mt_run(f64, 1, var, M, N, K, &A, &B, &C1);
                mt_run(f64, 2, var, M, N, K, &A, &B, &C2);
                mt_run(f64, 3, var, M, N, K, &A, &B, &C3);
                size_t bytes = (size_t)(M * N) * (f64 ? sizeof(double) : sizeof(float));
                ck_assert_msg(memcmp(C1.p, C2.p, bytes) == 0, "1 vs 2 threads differ (%s, %lldx%lldx%lld)",
                              f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K);
                ck_assert_msg(memcmp(C1.p, C3.p, bytes) == 0, "1 vs 3 threads differ");
                free(A.p); free(B.p); free(C1.p); free(C2.p); free(C3.p);
            }
}
END_TEST

/* The products of a few rows or columns (gemm.c's DOTS and ROWS steps)
 * split their columns (or rows) among the threads: bitwise the same C on
 * 1, 2 and 3 threads, with alpha and beta, B stored by rows (ROWS) or by
 * columns (DOTS), and sizes that give every thread several pieces. */
START_TEST(test_skinny_threads_bitwise_identical)
{
    static const shape shapes[] = { { 1, 5000, 700 }, { 4, 3000, 600 }, { 3000, 2, 700 },
                                    { 2, 4100, 1100 } };
    for (int f64 = 0; f64 < 2; ++f64)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int bcols = 0; bcols < 2; ++bcols) {
                int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
                view va = make_view(M, K, K, 1), vc = make_view(M, N, N, 1);
                view vb = bcols ? make_view(K, N, 1, K) : make_view(K, N, N, 1);
                buf A = buf_new(f64, va.len), B = buf_new(f64, vb.len), C[3];
                for (int64_t i = 0; i < A.len; ++i) put(&A, i, rnd());
                for (int64_t i = 0; i < B.len; ++i) put(&B, i, rnd());
                for (int t = 0; t < 3; ++t) {
                    C[t] = buf_new(f64, vc.len);
                    for (int64_t i = 0; i < C[t].len; ++i) put(&C[t], i, (double)(i % 7) - 3.0);
                    tg_set_num_threads(t + 1);
                    ck_assert_int_eq(run_gemm(VAR_AUTO, f64, M, N, K, -1.25, &A, &va, &B, &vb, 0.5,
                                              &C[t], &vc), 0);
                }
                size_t bytes = (size_t)vc.len * (f64 ? sizeof(double) : sizeof(float));
                for (int t = 1; t < 3; ++t)
                    ck_assert_msg(memcmp(C[0].p, C[t].p, bytes) == 0,
                                  "1 vs %d threads differ (%s, %lldx%lldx%lld, B by %s)", t + 1,
                                  f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K,
                                  bcols ? "columns" : "rows");
                free(A.p); free(B.p);
                for (int t = 0; t < 3; ++t) free(C[t].p);
            }
}
END_TEST

/* tg_gemm_batched_*: every item is bitwise what tg_gemm_* gives for it
 * alone, on 1, 2 and 3 threads, on every path this CPU can run, for batches
 * of small items (dealt out to the threads, one pair of packing buffers per
 * chunk), big items (tg_gemm per item), tiny and vector items, a shared
 * operand (batch stride 0), a transposed A, a column-major C, two batch
 * dims, and with the packing buffers unavailable. */
static void batched_case(int f64, int threads, int64_t M, int64_t N, int64_t K, int trans_a,
                         int col_c, int share_b, buf *A, buf *B, buf *Cb, buf *Cl)
{
    const int64_t bshape[2] = { 3, 5 };
    const int64_t nitems = 15;
    int64_t bsa[2] = { 5 * M * K, M * K }, bsb[2] = { share_b ? 0 : 5 * K * N, share_b ? 0 : K * N };
    int64_t bsc[2] = { 5 * M * N, M * N };
    int64_t rsa = trans_a ? 1 : K, csa = trans_a ? M : 1, rsb = N, csb = 1;
    int64_t rsc = col_c ? 1 : N, csc = col_c ? M : 1;
    tg_set_num_threads(threads);
    buf_fill(Cb, 0.25);
    buf_fill(Cl, 0.25);
    double alpha = 1.5, beta = col_c ? 0.5 : 0.0;
    if (f64) {
        tg_gemm_batched_f64(2, bshape, bsa, bsb, bsc, M, N, K, alpha, A->p, rsa, csa, B->p, rsb, csb,
                            beta, Cb->p, rsc, csc);
        for (int64_t it = 0; it < nitems; ++it)
            tg_gemm_f64(M, N, K, alpha, (double *)A->p + it * M * K, rsa, csa,
                        (double *)B->p + (share_b ? 0 : it * K * N), rsb, csb, beta,
                        (double *)Cl->p + it * M * N, rsc, csc);
    } else {
        tg_gemm_batched_f32(2, bshape, bsa, bsb, bsc, M, N, K, (float)alpha, A->p, rsa, csa, B->p,
                            rsb, csb, (float)beta, Cb->p, rsc, csc);
        for (int64_t it = 0; it < nitems; ++it)
            tg_gemm_f32(M, N, K, (float)alpha, (float *)A->p + it * M * K, rsa, csa,
                        (float *)B->p + (share_b ? 0 : it * K * N), rsb, csb, (float)beta,
                        (float *)Cl->p + it * M * N, rsc, csc);
    }
}

START_TEST(test_batched_matches_per_item)
{
    static const shape shapes[] = { { 64, 64, 32 }, { 17, 35, 9 }, { 1, 40, 30 }, { 30, 1, 20 },
                                    { 3, 4, 5 }, { 200, 180, 150 } };
    static const char *isas[] = { "avx512", "avx2", "generic", "neon" };
    int64_t nshapes = light() ? 5 : 6;
    for (size_t r = 0; r < sizeof isas / sizeof isas[0]; ++r) {
        if (!tg_gemm_isa_available(isas[r]))
            continue;
        ck_assert_int_eq(tg_gemm_force_isa(isas[r]), 0);
        for (int f64 = 0; f64 < 2; ++f64)
            for (int64_t s = 0; s < nshapes; ++s)
                for (int variant = 0; variant < 4; ++variant) {
                    int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
                    int trans_a = variant & 1, col_c = variant == 2, share_b = variant >= 2;
                    buf A = buf_new(f64, 15 * M * K), B = buf_new(f64, 15 * K * N);
                    buf Cb = buf_new(f64, 15 * M * N), Cl = buf_new(f64, 15 * M * N);
                    for (int64_t i = 0; i < A.len; ++i) put(&A, i, rnd());
                    for (int64_t i = 0; i < B.len; ++i) put(&B, i, rnd());
                    size_t bytes = (size_t)(15 * M * N) * (f64 ? sizeof(double) : sizeof(float));
                    for (int threads = 1; threads <= 3; ++threads) {
                        batched_case(f64, threads, M, N, K, trans_a, col_c, share_b, &A, &B, &Cb, &Cl);
                        ck_assert_msg(memcmp(Cb.p, Cl.p, bytes) == 0,
                                      "batched != per item (%s %s, %lldx%lldx%lld, variant %d, %d threads)",
                                      isas[r], f64 ? "f64" : "f32", (long long)M, (long long)N,
                                      (long long)K, variant, threads);
                    }
                    /* no memory for packing: the reference kernel, the same as per item */
                    tg_gemm_testing_fail_alloc(1);
                    batched_case(f64, 2, M, N, K, trans_a, col_c, share_b, &A, &B, &Cb, &Cl);
                    tg_gemm_testing_fail_alloc(0);
                    ck_assert_msg(memcmp(Cb.p, Cl.p, bytes) == 0, "batched fallback differs");
                    /* and right: item 14 against the long double reference */
                    for (int64_t i = 0; i < M; ++i)
                        for (int64_t j = 0; j < N; ++j) {
                            long double acc = 0, mag = 0;
                            for (int64_t k = 0; k < K; ++k) {
                                long double x = get(&A, 14 * M * K + (trans_a ? i + k * M : i * K + k));
                                long double y = get(&B, (share_b ? 0 : 14 * K * N) + k * N + j);
                                acc += x * y;
                                mag += fabsl(x * y);
                            }
                            double beta = col_c ? 0.5 : 0.0;
                            long double want = 1.5L * acc + beta * 0.25L;
                            int64_t ci = 14 * M * N + (col_c ? i + j * M : i * N + j);
                            double eps = f64 ? DBL_EPSILON : FLT_EPSILON;
                            ck_assert_msg(fabsl(get(&Cb, ci) - want) <= (K + 4) * eps * (1.5L * mag + 0.25L) + 1e-30,
                                          "batched result wrong at item 14 (%lld, %lld)", (long long)i, (long long)j);
                        }
                    free(A.p); free(B.p); free(Cb.p); free(Cl.p);
                }
    }
}
END_TEST

/* tg_gemm_tri_batched_*: each mode against the definition in long double
 * (tril/triu of the product, or of A), on every path this CPU can run, for
 * a batch of attention-sized items, edge tiles, several K blocks and a tall
 * item whose row blocks are dealt out to the threads; A transposed or not,
 * beta 0 and 0.5.  Outside a triangular C the result is exactly 0; A's
 * dropped triangle holds NaN and must never reach C; the bits are the same
 * on 1, 2 and 3 threads and the packing-buffer fallback is right too. */
static void tri_case(int f64, tg_gemm_tri tri, int64_t M, int64_t N, int64_t K, int trans_a,
                     double beta, const buf *A, const buf *B, buf *C)
{
    const int64_t bshape[1] = { 3 }, bsa[1] = { M * K }, bsb[1] = { K * N }, bsc[1] = { M * N };
    int64_t rsa = trans_a ? 1 : K, csa = trans_a ? M : 1;
    buf_fill(C, 0.25);
    if (f64)
        tg_gemm_tri_batched_f64(tri, 1, bshape, bsa, bsb, bsc, M, N, K, 1.5, A->p, rsa, csa, B->p,
                                N, 1, beta, C->p, N, 1);
    else
        tg_gemm_tri_batched_f32(tri, 1, bshape, bsa, bsb, bsc, M, N, K, 1.5f, A->p, rsa, csa,
                                B->p, N, 1, (float)beta, C->p, N, 1);
}

START_TEST(test_tri_batched_matches_definition)
{
    static const shape shapes[] = { { 64, 64, 32 }, { 64, 32, 64 }, { 17, 35, 9 }, { 9, 9, 700 },
                                    { 300, 40, 300 } };
    static const char *isas[] = { "avx512", "avx2", "generic", "neon" };
    int64_t nshapes = light() ? 4 : 5;
    for (size_t r = 0; r < sizeof isas / sizeof isas[0]; ++r) {
        if (!tg_gemm_isa_available(isas[r]))
            continue;
        ck_assert_int_eq(tg_gemm_force_isa(isas[r]), 0);
        for (int f64 = 0; f64 < 2; ++f64)
            for (int64_t s = 0; s < nshapes; ++s)
                for (int mode = 0; mode < TG_TRI_N_MODES; ++mode)
                    for (int v = 0; v < 2; ++v) {
                        int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
                        int trans_a = v, a_tri = mode >= TG_TRI_LOWER_A;
                        double beta = v ? 0.5 : 0.0;
                        buf A = buf_new(f64, 3 * M * K), B = buf_new(f64, 3 * K * N);
                        buf C = buf_new(f64, 3 * M * N), C2 = buf_new(f64, 3 * M * N);
                        for (int64_t it = 0; it < 3; ++it)
                            for (int64_t i = 0; i < M; ++i)
                                for (int64_t p = 0; p < K; ++p) {
                                    int drop = (mode == TG_TRI_LOWER_A && p > i) ||
                                               (mode == TG_TRI_UPPER_A && p < i);
                                    put(&A, it * M * K + (trans_a ? i + p * M : i * K + p),
                                        drop ? NAN : rnd());
                                }
                        for (int64_t i = 0; i < B.len; ++i) put(&B, i, rnd());
                        size_t bytes = (size_t)(3 * M * N) * (f64 ? sizeof(double) : sizeof(float));
                        tri_case(f64, (tg_gemm_tri)mode, M, N, K, trans_a, beta, &A, &B, &C);
                        for (int threads = 2; threads <= 3; ++threads) {
                            tg_set_num_threads(threads);
                            tri_case(f64, (tg_gemm_tri)mode, M, N, K, trans_a, beta, &A, &B, &C2);
                            ck_assert_msg(memcmp(C.p, C2.p, bytes) == 0,
                                          "tri mode %d: 1 vs %d threads differ (%s %s %lldx%lldx%lld)",
                                          mode, threads, isas[r], f64 ? "f64" : "f32", (long long)M,
                                          (long long)N, (long long)K);
                        }
                        tg_set_num_threads(1);
                        for (int fb = 0; fb < 2; ++fb) {
                            if (fb) {   /* no memory for packing: the reference loop */
                                tg_gemm_testing_fail_alloc(1);
                                tri_case(f64, (tg_gemm_tri)mode, M, N, K, trans_a, beta, &A, &B, &C);
                                tg_gemm_testing_fail_alloc(0);
                            }
                            for (int64_t it = 0; it < 3; it += 2)
                                for (int64_t i = 0; i < M; ++i)
                                    for (int64_t j = 0; j < N; ++j) {
                                        double got = get(&C, it * M * N + i * N + j);
                                        if ((mode == TG_TRI_LOWER_C && j > i) ||
                                            (mode == TG_TRI_UPPER_C && j < i)) {
                                            ck_assert_msg(got == 0 && !signbit(got),
                                                          "tri mode %d: C[%lld,%lld] = %g outside "
                                                          "the triangle", mode, (long long)i,
                                                          (long long)j, got);
                                            continue;
                                        }
                                        long double acc = 0, mag = 0;
                                        for (int64_t p = 0; p < K; ++p) {
                                            if (a_tri && ((mode == TG_TRI_LOWER_A && p > i) ||
                                                          (mode == TG_TRI_UPPER_A && p < i)))
                                                continue;
                                            long double x = get(&A, it * M * K + (trans_a ? i + p * M : i * K + p));
                                            long double y = get(&B, it * K * N + p * N + j);
                                            acc += x * y;
                                            mag += fabsl(x * y);
                                        }
                                        long double want = 1.5L * acc + beta * 0.25L;
                                        double eps = f64 ? DBL_EPSILON : FLT_EPSILON;
                                        ck_assert_msg(fabsl(got - want) <= (K + 4) * eps * (1.5L * mag + 0.25L) + 1e-30,
                                                      "tri mode %d (%s %s %lldx%lldx%lld, trans %d, "
                                                      "fallback %d): C[%lld,%lld] = %g, want %Lg",
                                                      mode, isas[r], f64 ? "f64" : "f32", (long long)M,
                                                      (long long)N, (long long)K, trans_a, fb,
                                                      (long long)i, (long long)j, got, want);
                                    }
                        }
                        free(A.p); free(B.p); free(C.p); free(C2.p);
                    }
    }
    tg_gemm_force_isa(NULL);
}
END_TEST

/* alpha == 0 (or K == 0) reads neither A nor B: C = beta C inside the
 * triangle, 0 outside a triangular C. */
START_TEST(test_tri_batched_alpha_zero)
{
    const int64_t bshape[1] = { 2 }, bs[1] = { 16 };
    float A[32], B[32], C[32];
    for (int i = 0; i < 32; ++i) { A[i] = NAN; B[i] = NAN; }
    for (int mode = 0; mode < TG_TRI_N_MODES; ++mode) {
        for (int i = 0; i < 32; ++i) C[i] = 2.0f;
        tg_gemm_tri_batched_f32((tg_gemm_tri)mode, 1, bshape, bs, bs, bs, 4, 4, 4, 0.0f, A, 4, 1,
                                B, 4, 1, 0.5f, C, 4, 1);
        for (int it = 0; it < 2; ++it)
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) {
                    int out = (mode == TG_TRI_LOWER_C && j > i) || (mode == TG_TRI_UPPER_C && j < i);
                    ck_assert_msg(C[it * 16 + i * 4 + j] == (out ? 0.0f : 1.0f), "mode %d (%d,%d): %g",
                                  mode, i, j, C[it * 16 + i * 4 + j]);
                }
    }
}
END_TEST

/* On two threads tg_gemm_* splits C into two slabs also when the split
 * dimension has an odd number of tiles: a grain of ceil(tiles / 2) gave the
 * pool floor(tiles / grain) = 1 chunk, so 32x128 @ 128x1568 (49 column
 * tiles, the MNIST models' first layer) ran on one thread.  The pool's job
 * counter says whether the product was handed to the workers; the result
 * is the one-thread result, bit for bit. */
START_TEST(test_odd_tile_count_is_split)
{
    static const shape shapes[] = { { 32, 1568, 128 }, { 128, 1568, 32 }, { 32, 1568, 256 } };
    for (int f64 = 0; f64 < 2; ++f64)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
            int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
            buf A = buf_new(f64, M * K), B = buf_new(f64, K * N);
            buf C1 = buf_new(f64, M * N), C2 = buf_new(f64, M * N);
            for (int64_t i = 0; i < A.len; ++i) put(&A, i, rnd());
            for (int64_t i = 0; i < B.len; ++i) put(&B, i, rnd());
            mt_run(f64, 1, VAR_AUTO, M, N, K, &A, &B, &C1);
            uint64_t before = tg_threadpool_jobs();
            mt_run(f64, 2, VAR_AUTO, M, N, K, &A, &B, &C2);
            ck_assert_msg(tg_threadpool_jobs() > before, "%lldx%lldx%lld (%s) ran on one thread",
                          (long long)M, (long long)N, (long long)K, f64 ? "f64" : "f32");
            size_t bytes = (size_t)(M * N) * (f64 ? sizeof(double) : sizeof(float));
            ck_assert_msg(memcmp(C1.p, C2.p, bytes) == 0, "1 vs 2 threads differ");
            free(A.p); free(B.p); free(C1.p); free(C2.p);
        }
}
END_TEST

/* If the packing buffers cannot be allocated, every packed path falls back
 * to the reference kernel and still gives the right answer. */
START_TEST(test_alloc_failure_falls_back)
{
    tg_gemm_testing_fail_alloc(1);
    tg_set_num_threads(2);
    static const int vars[] = { TG_GEMM_PACKED_SCALAR, TG_GEMM_PACKED_SIMD, TG_GEMM_PACKED_SIMD_MT, VAR_AUTO };
    shape s = light() ? (shape){ 20, 30, 10 } : (shape){ 100, 90, 80 };
    for (int f64 = 0; f64 < 2; ++f64)
        for (size_t v = 0; v < sizeof vars / sizeof vars[0]; ++v)
            ck_assert_int_gt(check_shape(vars[v], f64, s), 0);
    tg_gemm_testing_fail_alloc(0);
}
END_TEST

START_TEST(test_names_and_bad_variant)
{
    static const char *names[] = { "naive", "reordered", "blocked", "packed_scalar",
                                   "packed_simd", "packed_simd_mt" };
    for (int v = 0; v < TG_GEMM_N_VARIANTS; ++v)
        ck_assert_str_eq(tg_gemm_variant_name((tg_gemm_variant)v), names[v]);
    ck_assert_str_eq(tg_gemm_variant_name(TG_GEMM_N_VARIANTS), "unknown");
    ck_assert_str_eq(tg_gemm_variant_name((tg_gemm_variant)-1), "unknown");

    float a = 1, b = 2, c = 3;
    double da = 1, db = 2, dc = 3;
    ck_assert_int_eq(tg_gemm_variant_f32(TG_GEMM_N_VARIANTS, 1, 1, 1, 1, &a, 1, 1, &b, 1, 1, 0, &c, 1, 1), -1);
    ck_assert_int_eq(tg_gemm_variant_f64((tg_gemm_variant)-1, 1, 1, 1, 1, &da, 1, 1, &db, 1, 1, 0, &dc, 1, 1), -1);
    ck_assert(c == 3 && dc == 3);   /* untouched */
    ck_assert_int_eq(tg_gemm_variant_f32(TG_GEMM_NAIVE, 1, 1, 1, 1, &a, 1, 1, &b, 1, 1, 0, &c, 1, 1), 0);
    ck_assert(c == 2);
}
END_TEST

START_TEST(test_isa_dispatch)
{
    const char *best = tg_gemm_isa();
    ck_assert(strcmp(best, "generic") == 0 || strcmp(best, "avx2") == 0 || strcmp(best, "avx512") == 0 ||
              strcmp(best, "neon") == 0);
    ck_assert_int_eq(tg_gemm_force_isa("generic"), 0);
    ck_assert_str_eq(tg_gemm_isa(), "generic");
    ck_assert_int_eq(tg_gemm_force_isa("no-such-isa"), -1);   /* refused, choice unchanged */
    ck_assert_str_eq(tg_gemm_isa(), "generic");
    ck_assert_str_eq(tg_gemm_isa_refusal("no-such-isa"),
                     "not a matmul kernel path (expected avx512, avx2, neon or baseline)");
    /* a path of another architecture is a known name, refused with the reason */
#if defined(__aarch64__)
    ck_assert_str_eq(tg_gemm_isa_refusal("avx2"), "not an x86-64 build");
#else
    ck_assert_str_eq(tg_gemm_isa_refusal("neon"), "not an arm64 build");
#endif
    ck_assert_int_eq(tg_gemm_force_isa("baseline"), 0);        /* the other name of generic */
    ck_assert_str_eq(tg_gemm_isa(), "generic");
    ck_assert_int_eq(tg_gemm_force_isa(NULL), 0);
    ck_assert_str_eq(tg_gemm_isa(), best);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    ck_assert_int_eq(tg_gemm_force_isa("avx512"), has512 ? 0 : -1);
    ck_assert_str_eq(tg_gemm_isa(), has512 ? "avx512" : best);
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    ck_assert_int_eq(tg_gemm_force_isa("avx2"), has2 ? 0 : -1);
    if (has2)
        ck_assert_str_eq(tg_gemm_isa(), "avx2");
#endif
    tg_gemm_force_isa(NULL);
}
END_TEST

/* ---- the self-test (gemm.c, selftest; dispatch.h) ------------------------ */

/* A deliberately broken micro-kernel: the real one of the best SIMD row,
 * then a wrong store at the tile's edge -- the last element of the last
 * row of the tile gets the value of the element to its left, the kind of
 * off-by-one a hand-written store sequence makes. */
static tg_gemm_ukr_f32 real_f32;
static tg_gemm_ukr_f64 real_f64;
static int tile_mr, tile_nr, tile_nr64;

static void broken_f32(int64_t kc, float alpha, const float *Ap, const float *Bp, float beta,
                       float *C, int64_t rsc)
{
    real_f32(kc, alpha, Ap, Bp, beta, C, rsc);
    C[(tile_mr - 1) * rsc + tile_nr - 1] = C[(tile_mr - 1) * rsc + tile_nr - 2];
}

static void broken_f64(int64_t kc, double alpha, const double *Ap, const double *Bp, double beta,
                       double *C, int64_t rsc)
{
    real_f64(kc, alpha, Ap, Bp, beta, C, rsc);
    C[(tile_mr - 1) * rsc + tile_nr64 - 1] = C[(tile_mr - 1) * rsc + tile_nr64 - 2];
}

/* The best SIMD row this CPU has, with its real kernels and tiles; 0 if none. */
static int best_simd_row(const char **name)
{
#if defined(__x86_64__) || defined(__i386__)
    if (tg_gemm_isa_available("avx512")) {
        *name = "avx512";
        real_f32 = tg_gemm_ukr_avx512_f32; real_f64 = tg_gemm_ukr_avx512_f64;
        tile_mr = TG_GEMM_AVX512_MR_F32; tile_nr = TG_GEMM_AVX512_NR_F32;
        tile_nr64 = TG_GEMM_AVX512_NR_F64;
        return 1;
    }
    if (tg_gemm_isa_available("avx2")) {
        *name = "avx2";
        real_f32 = tg_gemm_ukr_avx2_f32; real_f64 = tg_gemm_ukr_avx2_f64;
        tile_mr = TG_GEMM_AVX2_MR_F32; tile_nr = TG_GEMM_AVX2_NR_F32;
        tile_nr64 = TG_GEMM_AVX2_NR_F64;
        return 1;
    }
#elif defined(__aarch64__)
    if (tg_gemm_isa_available("neon")) {
        *name = "neon";
        real_f32 = tg_gemm_ukr_neon_f32; real_f64 = tg_gemm_ukr_neon_f64;
        tile_mr = TG_GEMM_NEON_MR_F32; tile_nr = TG_GEMM_NEON_NR_F32;
        tile_nr64 = TG_GEMM_NEON_NR_F64;
        return 1;
    }
#endif
    (void)name; /* no SIMD row on this architecture */
    return 0;
}

static void selftest_teardown(void)
{
    tg_gemm_testing_set_ukr("avx2", NULL, NULL);
    tg_gemm_testing_set_ukr("avx512", NULL, NULL);
    tg_gemm_testing_set_ukr("neon", NULL, NULL);
    unsetenv("TAPEGRAD_DISABLE_CPU_FEATURES");
    unsetenv("TAPEGRAD_GEMM");
    tg_dispatch_log_clear();
    teardown();
}

/* The broken kernel is caught before it is used: the library falls back to
 * the next path, says why (once), and every result is still right. */
START_TEST(test_selftest_catches_broken_kernel)
{
    const char *row;
    ck_assert(best_simd_row(&row));
    /* the real kernels pass */
    tg_gemm_testing_reset();
    tg_dispatch_log_clear();
    ck_assert_str_eq(tg_gemm_isa(), row);
    char log[4096];
    ck_assert_uint_eq(tg_dispatch_log_copy(log, sizeof log), 0);

    ck_assert_int_eq(tg_gemm_testing_set_ukr(row, broken_f32, broken_f64), 0);
    /* the broken kernel really is wrong: run it directly on one tile */
    {
        enum { MAXT = 256 };
        float Ap[8 * 3], Bp[32 * 3], C[MAXT];
        for (int i = 0; i < 8 * 3; ++i) Ap[i] = (float)(i % 5) - 2;
        for (int i = 0; i < 32 * 3; ++i) Bp[i] = (float)(i % 7) - 3;
        broken_f32(3, 1.0f, Ap, Bp, 0.0f, C, tile_nr);
        float good[MAXT];
        real_f32(3, 1.0f, Ap, Bp, 0.0f, good, tile_nr);
        ck_assert(memcmp(C, good, sizeof(float) * tile_mr * tile_nr) != 0);
    }
    const char *next = strcmp(row, "avx512") == 0 && tg_gemm_isa_available("avx2") ? "avx2" : "generic";
    ck_assert_str_eq(tg_gemm_isa(), next);                   /* fell back */
    size_t len = tg_dispatch_log_copy(log, sizeof log);
    ck_assert_uint_gt(len, 0);
    ck_assert_msg(strstr(log, row) && strstr(log, "failed their self-test") &&
                  strstr(log, "the portable C path gives"), "log: %s", log);
    /* said once: asking again adds nothing */
    ck_assert_int_eq(tg_gemm_force_isa(row), -1);
    ck_assert_str_eq(tg_gemm_isa_refusal(row), "it failed its self-test");
    ck_assert_uint_eq(tg_dispatch_log_copy(NULL, 0), len);
    tg_kernel_path_info info[4];
    int n = tg_gemm_paths(info, 4);
    int seen = 0;
    for (int i = 0; i < n; ++i)
        if (strcmp(info[i].name, row) == 0) {
            ck_assert_int_eq(info[i].selftest, -1);
            ck_assert(!info[i].in_use);
            ck_assert_ptr_nonnull(strstr(info[i].detail, "C["));
            seen = 1;
        }
    ck_assert(seen);
    /* results stay right, on edge shapes, every layout, both types */
    static const shape shapes[] = { { 17, 67, 9 }, { 33, 65, 20 }, { 100, 90, 80 } };
    for (int f64 = 0; f64 < 2; ++f64)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; ++k)
            ck_assert_int_gt(check_shape(VAR_AUTO, f64, shapes[k]), 0);
    /* and with the real kernels back, the row is tested again and used */
    ck_assert_int_eq(tg_gemm_testing_set_ukr(row, NULL, NULL), 0);
    ck_assert_str_eq(tg_gemm_isa(), row);
}
END_TEST

#if defined(__x86_64__) || defined(__i386__)
/* A broken direct kernel (A read in place, the AVX-512 row's narrow
 * products): the real one, then the same wrong store at the tile's edge. */
static void broken_direct_f32(int64_t kc, float alpha, const float *A, int64_t rsa, int64_t csa,
                              const float *Bp, float beta, float *C, int64_t rsc)
{
    tg_gemm_ukr_direct_avx512_f32(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
    C[(TG_GEMM_AVX512_MR_F32 - 1) * rsc + TG_GEMM_AVX512_NR_F32 - 1] =
        C[(TG_GEMM_AVX512_MR_F32 - 1) * rsc + TG_GEMM_AVX512_NR_F32 - 2];
}

static void broken_direct_avx2_f32(int64_t kc, float alpha, const float *A, int64_t rsa,
                                   int64_t csa, const float *Bp, float beta, float *C, int64_t rsc)
{
    tg_gemm_ukr_direct_avx2_f32(kc, alpha, A, rsa, csa, Bp, beta, C, rsc);
    C[(TG_GEMM_AVX2_MR_F32 - 1) * rsc + TG_GEMM_AVX2_NR_F32 - 1] =
        C[(TG_GEMM_AVX2_MR_F32 - 1) * rsc + TG_GEMM_AVX2_NR_F32 - 2];
}

/* The row's self-test runs its problems through the direct kernel too: a
 * row whose packed kernel is right and whose direct kernel is wrong is
 * refused, and the products that would have used it stay right. */
START_TEST(test_selftest_catches_broken_direct_kernel)
{
    char log[4096];
    ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("generic", broken_direct_f32, NULL), -1);
    if (tg_gemm_isa_available("avx2")) {
        ck_assert_int_eq(tg_gemm_force_isa("avx2"), 0);
        tg_dispatch_log_clear();
        ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("avx2", broken_direct_avx2_f32, NULL), 0);
        ck_assert_int_eq(tg_gemm_force_isa("avx2"), -1);
        ck_assert_str_eq(tg_gemm_isa_refusal("avx2"), "it failed its self-test");
        ck_assert_uint_gt(tg_dispatch_log_copy(log, sizeof log), 0);
        ck_assert_msg(strstr(log, "avx2") && strstr(log, "f32 direct problem"), "log: %s", log);
        ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("avx2", NULL, NULL), 0);
        ck_assert_int_eq(tg_gemm_force_isa("avx2"), 0);
        ck_assert_int_gt(check_shape(VAR_AUTO, 0, (shape){ 64, 32, 64 }), 0);
        ck_assert_int_eq(tg_gemm_force_isa(NULL), 0);
    }
    if (!tg_gemm_isa_available("avx512"))
        return;
    ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("avx512", NULL, NULL), 0);
    ck_assert_str_eq(tg_gemm_isa(), "avx512");
    tg_dispatch_log_clear();
    ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("avx512", broken_direct_f32, NULL), 0);
    const char *next = tg_gemm_isa_available("avx2") ? "avx2" : "generic";
    ck_assert_str_eq(tg_gemm_isa(), next);
    ck_assert_uint_gt(tg_dispatch_log_copy(log, sizeof log), 0);
    ck_assert_msg(strstr(log, "avx512") && strstr(log, "f32 direct problem"), "log: %s", log);
    /* narrow products (the direct kernel's shapes) are right on the fallback */
    ck_assert_int_gt(check_shape(VAR_AUTO, 0, (shape){ 64, 32, 64 }), 0);
    ck_assert_int_gt(check_shape(VAR_AUTO, 0, (shape){ 13, 33, 9 }), 0);
    /* and with the real kernel back, the row is tested again and used */
    ck_assert_int_eq(tg_gemm_testing_set_ukr_direct("avx512", NULL, NULL), 0);
    ck_assert_str_eq(tg_gemm_isa(), "avx512");
}
END_TEST
#endif

/* Break every SIMD row: the portable kernels are left, and still right. */
START_TEST(test_selftest_all_rows_broken)
{
    const char *row;
    ck_assert(best_simd_row(&row));
    if (tg_gemm_isa_available("avx2"))
        ck_assert_int_eq(tg_gemm_testing_break("avx2"), 0);      /* the library's broken kernel */
    if (strcmp(row, "avx512") == 0)
        ck_assert_int_eq(tg_gemm_testing_set_ukr("avx512", broken_f32, broken_f64), 0);
    if (tg_gemm_isa_available("neon"))
        ck_assert_int_eq(tg_gemm_testing_break("neon"), 0);
    ck_assert_str_eq(tg_gemm_isa(), "generic");
    ck_assert_int_gt(check_shape(VAR_AUTO, 0, (shape){ 29, 70, 11 }), 0);
    ck_assert_int_gt(check_shape(VAR_AUTO, 1, (shape){ 29, 70, 11 }), 0);
}
END_TEST

/* A forced path the CPU lacks is refused with a reason, never run (the
 * "CPU" here is one with its AVX-512 hidden by TAPEGRAD_DISABLE_CPU_FEATURES,
 * so the test means the same on an AVX-512 machine). */
START_TEST(test_forced_path_refused)
{
    setenv("TAPEGRAD_DISABLE_CPU_FEATURES", "avx512", 1);
    tg_gemm_testing_reset();        /* as in a process started with it */
    ck_assert(!tg_gemm_isa_available("avx512"));
    ck_assert_int_eq(tg_gemm_force_isa("avx512"), -1);
    const char *why = tg_gemm_isa_refusal("avx512");
    ck_assert_msg(strstr(why, "AVX-512F") || strstr(why, "TAPEGRAD_DISABLE_CPU_FEATURES") ||
                  strstr(why, "not an x86-64 build"), "%s", why);
    ck_assert_str_ne(tg_gemm_isa(), "avx512");
    /* the same through the environment, at the first GEMM */
    setenv("TAPEGRAD_GEMM", "avx512", 1);
    tg_gemm_testing_reset();
    tg_dispatch_log_clear();
    const char *got = tg_gemm_isa();
    ck_assert_str_ne(got, "avx512");
    char log[1024];
    tg_dispatch_log_copy(log, sizeof log);
    ck_assert_msg(strstr(log, "TAPEGRAD_GEMM=avx512 refused") != NULL, "log: %s", log);
    ck_assert_int_gt(check_shape(VAR_AUTO, 0, (shape){ 20, 40, 9 }), 0);
    /* each path by name */
    setenv("TAPEGRAD_GEMM", "baseline", 1);
    tg_gemm_testing_reset();
    ck_assert_str_eq(tg_gemm_isa(), "generic");
    if (tg_gemm_isa_available("avx2")) {
        setenv("TAPEGRAD_GEMM", "avx2", 1);
        tg_gemm_testing_reset();
        ck_assert_str_eq(tg_gemm_isa(), "avx2");
    }
}
END_TEST

/* The public C API (tapegrad.h, "Kernel paths"): the path in use, the
 * report of what went wrong, forcing with the library's errors. */
START_TEST(test_public_kernel_api)
{
    ck_assert_str_eq(tg_kernel_path("gemm"), tg_gemm_isa());
    ck_assert_ptr_nonnull(tg_kernel_path("vmath"));
    ck_assert_ptr_null(tg_kernel_path("blas"));
    ck_assert_int_eq(tg_error_status(), TG_ERR_VALUE);
    ck_assert_ptr_nonnull(strstr(tg_error_message(), "unknown kernel family 'blas'"));
    ck_assert_int_eq(tg_kernel_force("gemm", "baseline"), TG_OK);
    ck_assert_str_eq(tg_kernel_path("gemm"), "generic");
    ck_assert_int_eq(tg_kernel_force("gemm", "avx9000"), TG_ERR_VALUE);
    ck_assert_ptr_nonnull(strstr(tg_error_message(), "'avx9000' is not a matmul kernel path"));
    ck_assert_int_eq(tg_kernel_force("vmath", "sse9"), TG_ERR_VALUE);
    ck_assert_int_eq(tg_kernel_force("fft", NULL), TG_ERR_VALUE);
    setenv("TAPEGRAD_DISABLE_CPU_FEATURES", "avx512", 1);
    ck_assert_int_eq(tg_kernel_force("gemm", "avx512"), TG_ERR_RUNTIME);
    ck_assert_msg(strstr(tg_error_message(), "gemm path 'avx512' refused"), "%s", tg_error_message());
    ck_assert_str_eq(tg_kernel_path("gemm"), "generic");      /* unchanged */
    unsetenv("TAPEGRAD_DISABLE_CPU_FEATURES");
    ck_assert_int_eq(tg_kernel_force("gemm", NULL), TG_OK);
    ck_assert_str_eq(tg_kernel_path("gemm"), tg_gemm_isa());
    /* the report: empty while all is well, then the failed self-test */
    tg_dispatch_log_clear();
    char buf[2048];
    ck_assert_uint_eq(tg_kernel_report(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    const char *row;
    if (best_simd_row(&row)) {
        ck_assert_int_eq(tg_gemm_testing_set_ukr(row, broken_f32, broken_f64), 0);
        size_t n = tg_kernel_report(buf, sizeof buf);       /* makes the choice, then reports */
        ck_assert_uint_eq(n, strlen(buf));
        ck_assert_msg(strstr(buf, row) && strstr(buf, "failed their self-test"), "%s", buf);
        ck_assert_str_ne(tg_kernel_path("gemm"), row);
        char small[8];
        ck_assert_uint_eq(tg_kernel_report(small, sizeof small), n);   /* snprintf-like */
        ck_assert_uint_eq(strlen(small), 7);
    }
}
END_TEST

/* The first GEMMs of a process may come from several threads at once: one
 * self-test runs, and every thread sees the same answer. */
static const char *seen_isa[8];
static void *first_gemm(void *arg)
{
    int k = (int)(intptr_t)arg;
    float A[20 * 9], B[9 * 40], C[20 * 40];
    for (int i = 0; i < 20 * 9; ++i) A[i] = (float)(i % 3);
    for (int i = 0; i < 9 * 40; ++i) B[i] = (float)(i % 4);
    tg_gemm_f32(20, 40, 9, 1.0f, A, 9, 1, B, 40, 1, 0.0f, C, 40, 1);
    seen_isa[k] = tg_gemm_isa();
    return NULL;
}

START_TEST(test_selftest_once_under_threads)
{
    tg_gemm_testing_reset();
    int before = tg_gemm_testing_selftest_runs();
    pthread_t th[8];
    for (int k = 0; k < 8; ++k)
        ck_assert_int_eq(pthread_create(&th[k], NULL, first_gemm, (void *)(intptr_t)k), 0);
    for (int k = 0; k < 8; ++k)
        pthread_join(th[k], NULL);
    for (int k = 1; k < 8; ++k)
        ck_assert_str_eq(seen_isa[k], seen_isa[0]);
    int runs = tg_gemm_testing_selftest_runs() - before;
    ck_assert_int_eq(runs, strcmp(seen_isa[0], "generic") == 0 ? 0 : 1);
}
END_TEST

/* Special values: K == 0 gives beta * C (zeros when beta == 0, even over
 * NaN); alpha == 0 does not read A or B (BLAS semantics); NaN and Inf in A
 * propagate to exactly the rows they belong to. */
START_TEST(test_special_values)
{
    for (int var = VAR_AUTO; var < TG_GEMM_N_VARIANTS; ++var) {
        float A[4 * 3], B[3 * 5], C[4 * 5];
        double dA[4 * 3], dB[3 * 5], dC[4 * 5];
        for (int i = 0; i < 12; ++i) A[i] = dA[i] = (float)(i + 1);
        for (int i = 0; i < 15; ++i) B[i] = dB[i] = (float)(i % 4);
        for (int i = 0; i < 20; ++i) C[i] = dC[i] = NAN;
        /* K == 0, beta == 0: zeros over NaN. */
        if (var == VAR_AUTO) {
            tg_gemm_f32(4, 5, 0, 1.0f, A, 3, 1, B, 5, 1, 0.0f, C, 5, 1);
            tg_gemm_f64(4, 5, 0, 1.0, dA, 3, 1, dB, 5, 1, 0.0, dC, 5, 1);
        } else {
            tg_gemm_variant_f32(var, 4, 5, 0, 1.0f, A, 3, 1, B, 5, 1, 0.0f, C, 5, 1);
            tg_gemm_variant_f64(var, 4, 5, 0, 1.0, dA, 3, 1, dB, 5, 1, 0.0, dC, 5, 1);
        }
        for (int i = 0; i < 20; ++i)
            ck_assert(C[i] == 0.0f && dC[i] == 0.0);
        /* alpha == 0: C = beta * C, A not read (NaN in A does not matter). */
        A[0] = dA[0] = NAN;
        for (int i = 0; i < 20; ++i) C[i] = dC[i] = (float)i;
        if (var == VAR_AUTO) {
            tg_gemm_f32(4, 5, 3, 0.0f, A, 3, 1, B, 5, 1, 2.0f, C, 5, 1);
            tg_gemm_f64(4, 5, 3, 0.0, dA, 3, 1, dB, 5, 1, 2.0, dC, 5, 1);
        } else {
            tg_gemm_variant_f32(var, 4, 5, 3, 0.0f, A, 3, 1, B, 5, 1, 2.0f, C, 5, 1);
            tg_gemm_variant_f64(var, 4, 5, 3, 0.0, dA, 3, 1, dB, 5, 1, 2.0, dC, 5, 1);
        }
        for (int i = 0; i < 20; ++i)
            ck_assert(C[i] == 2.0f * i && dC[i] == 2.0 * i);
        /* NaN in A(0,0) poisons row 0 of C only; Inf in A(2,1) makes row 2
         * +-Inf or NaN where B(1, j) is 0 (Inf * 0). */
        A[0] = dA[0] = NAN;
        A[2 * 3 + 1] = dA[2 * 3 + 1] = INFINITY;
        if (var == VAR_AUTO) {
            tg_gemm_f32(4, 5, 3, 1.0f, A, 3, 1, B, 5, 1, 0.0f, C, 5, 1);
            tg_gemm_f64(4, 5, 3, 1.0, dA, 3, 1, dB, 5, 1, 0.0, dC, 5, 1);
        } else {
            tg_gemm_variant_f32(var, 4, 5, 3, 1.0f, A, 3, 1, B, 5, 1, 0.0f, C, 5, 1);
            tg_gemm_variant_f64(var, 4, 5, 3, 1.0, dA, 3, 1, dB, 5, 1, 0.0, dC, 5, 1);
        }
        for (int j = 0; j < 5; ++j) {
            ck_assert(isnan(C[j]) && isnan(dC[j]));
            ck_assert(!isnan(C[5 + j]) && !isnan(C[15 + j]));
            int b1j = (5 + j) % 4;  /* B(1, j) */
            if (b1j == 0)
                ck_assert(isnan(C[10 + j]) && isnan(dC[10 + j]));
            else
                ck_assert(isinf(C[10 + j]) && isinf(dC[10 + j]));
        }
    }
}
END_TEST

Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");

    TCase *tc = tcase_create("variants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    n_runnable = 0;
    for (int i = 0; i < N_COMBOS; ++i)
        if (combos[i].isa == NULL || tg_gemm_isa_available(combos[i].isa))
            runnable[n_runnable++] = i;
    tcase_add_loop_test(tc, test_variant_vs_reference, 0, 2 * n_runnable);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_threads_bitwise_identical);
    tcase_add_test(tc, test_skinny_threads_bitwise_identical);
    tcase_add_test(tc, test_odd_tile_count_is_split);
    tcase_add_test(tc, test_alloc_failure_falls_back);
    tcase_add_test(tc, test_batched_matches_per_item);
    tcase_add_test(tc, test_tri_batched_matches_definition);
    tcase_add_test(tc, test_tri_batched_alpha_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_names_and_bad_variant);
    tcase_add_test(tc, test_isa_dispatch);
    tcase_add_test(tc, test_special_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("selftest");
    tcase_add_checked_fixture(tc, setup, selftest_teardown);
    tcase_set_timeout(tc, 120);
    /* the broken-kernel tests need a SIMD row to break: on a CPU without
     * one they are not tests, and main.c lists the paths not run */
    if (tg_gemm_isa_available("avx512") || tg_gemm_isa_available("avx2") ||
        tg_gemm_isa_available("neon")) {
        tcase_add_test(tc, test_selftest_catches_broken_kernel);
        tcase_add_test(tc, test_selftest_all_rows_broken);
    }
#if defined(__x86_64__) || defined(__i386__)
    if (tg_gemm_isa_available("avx512") || tg_gemm_isa_available("avx2"))
        tcase_add_test(tc, test_selftest_catches_broken_direct_kernel);
#endif
    tcase_add_test(tc, test_forced_path_refused);
    tcase_add_test(tc, test_public_kernel_api);
    tcase_add_test(tc, test_selftest_once_under_threads);
    suite_add_tcase(s, tc);
    return s;
}

#ifdef TG_GEMM_TEST_MAIN
int main(void)
{
    SRunner *sr = srunner_create(gemm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
