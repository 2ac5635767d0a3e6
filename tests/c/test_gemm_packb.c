/* test_gemm_packb.c -- Check suite for tg_gemm_packb_f32 / _f64 (gemm.h,
 * "Implicit B"): the packed GEMM whose B panels a callback writes, as the
 * convolutions use it (csrc/ops/conv.c).
 *
 * The callback here packs from a formed B, read through general strides,
 * so the product must be the same bits as tg_gemm_* given that B: for
 * every kernel row this CPU can run, on one and two threads, with several
 * K blocks, with M above and below one block of rows (the two loop orders
 * of the implicit path), N not a multiple of the tile, and beta 0 and 1.
 * The cases gemm.c declines (tiny, at most 4 rows or 4 columns, no memory)
 * return -1 and leave C untouched.
 *
 * Exposes Suite *gemm_packb_suite(void).
 */
#define TG_GEMM_INTERNAL
#include "../../csrc/kernels/gemm.h"
#include "../../csrc/kernels/threadpool.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const void *B;
    int64_t rsb, csb;
    int f64;
    int calls;      /* callback calls (atomic: the pool's threads call it) */
} formed_b;

#define PACK_FORMED(SFX, T)                                                               \
    static void pack_formed_##SFX(void *vctx, int64_t pc, int64_t kc, int64_t jc,         \
                                  int64_t nc, int nr, T *Bp) {                            \
        formed_b *f = vctx;                                                               \
        const T *B = f->B;                                                                \
        __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);                               \
        for (int64_t jr = 0; jr < nc; jr += nr)                                           \
            for (int64_t p = 0; p < kc; p++)                                              \
                for (int64_t j = 0; j < nr; j++)                                          \
                    Bp[jr * kc + p * nr + j] = jr + j < nc                                \
                        ? B[(pc + p) * f->rsb + (jc + jr + j) * f->csb] : (T)0;           \
    }
PACK_FORMED(f32, float)
PACK_FORMED(f64, double)

static uint64_t rng_state;
static double next_value(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)((int64_t)(rng_state >> 33) % 2001 - 1000) / 997.0;
}

/* tg_gemm_packb against tg_gemm with the formed B (stored column-major
 * when `trans`), bit for bit. */
static void check_case(int f64, int64_t M, int64_t N, int64_t K, double beta, int trans, int threads) {
    tg_set_num_threads(threads);
    size_t isz = f64 ? sizeof(double) : sizeof(float);
    void *A = malloc((size_t)(M * K) * isz), *B = malloc((size_t)(K * N) * isz);
    void *C1 = malloc((size_t)(M * N) * isz), *C2 = malloc((size_t)(M * N) * isz);
    ck_assert(A && B && C1 && C2);
    for (int64_t i = 0; i < M * K; i++) {
        if (f64) ((double *)A)[i] = next_value();
        else ((float *)A)[i] = (float)next_value();
    }
    for (int64_t i = 0; i < K * N; i++) {
        if (f64) ((double *)B)[i] = next_value();
        else ((float *)B)[i] = (float)next_value();
    }
    for (int64_t i = 0; i < M * N; i++) {
        double v = next_value();
        if (f64) ((double *)C1)[i] = ((double *)C2)[i] = v;
        else ((float *)C1)[i] = ((float *)C2)[i] = (float)v;
    }
    int64_t rsb = trans ? 1 : N, csb = trans ? K : 1;
    formed_b f = { B, rsb, csb, f64, 0 };
    int rc;
    if (f64) {
        tg_gemm_f64(M, N, K, 1.0, A, K, 1, B, rsb, csb, beta, C1, N, 1);
        rc = tg_gemm_packb_f64(M, N, K, 1.0, A, K, 1, pack_formed_f64, &f, beta, C2, N);
    } else {
        tg_gemm_f32(M, N, K, 1.0f, A, K, 1, B, rsb, csb, (float)beta, C1, N, 1);
        rc = tg_gemm_packb_f32(M, N, K, 1.0f, A, K, 1, pack_formed_f32, &f, (float)beta, C2, N);
    }
    ck_assert_msg(rc == 0, "packb declined M=%lld N=%lld K=%lld", (long long)M, (long long)N,
                  (long long)K);
    ck_assert_int_gt(f.calls, 0);
    ck_assert_msg(memcmp(C1, C2, (size_t)(M * N) * isz) == 0,
                  "%s %s M=%lld N=%lld K=%lld beta=%g trans=%d threads=%d: not the bits of tg_gemm",
                  f64 ? "f64" : "f32", tg_gemm_isa(), (long long)M, (long long)N, (long long)K,
                  beta, trans, threads);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

static int saved_threads;
static void setup(void) { saved_threads = tg_get_num_threads(); rng_state = 12345; }
static void teardown(void) {
    tg_gemm_force_isa(NULL);
    tg_gemm_testing_fail_alloc(0);
    tg_set_num_threads(saved_threads);
}

START_TEST(test_packb_same_bits_as_tg_gemm) {
    static const char *isas[] = { "avx512", "avx2", "neon", "generic" };
    /* (M, N, K): M = 32 (one row block: B packed panel by panel), M = 250
     * (more than one row block for every kernel row: the whole kc x nc
     * panel packed first), K above every row's KC, N with an edge tile. */
    static const int64_t shapes[][3] = { { 32, 200, 400 }, { 250, 77, 33 }, { 16, 785, 25 },
                                         { 9, 31, 600 }, { 5, 5, 200 } };
    for (size_t r = 0; r < sizeof isas / sizeof isas[0]; r++) {
        if (!tg_gemm_isa_available(isas[r]) || tg_gemm_force_isa(isas[r]) != 0) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int f64 = 0; f64 < 2; f64++)
                for (int threads = 1; threads <= 2; threads++)
                    check_case(f64, shapes[s][0], shapes[s][1], shapes[s][2],
                               (s + threads) % 2 ? 1.0 : 0.0, (int)(s % 2), threads);
    }
}
END_TEST

START_TEST(test_packb_declines_and_leaves_c) {
    float A[64], C[64], C0[64];
    for (int i = 0; i < 64; i++) A[i] = C[i] = C0[i] = (float)i;
    formed_b f = { A, 8, 1, 0, 0 };
    /* tiny (M*N*K <= 512), a row vector, a column vector, four rows, four columns */
    ck_assert_int_eq(tg_gemm_packb_f32(4, 4, 4, 1.0f, A, 4, 1, pack_formed_f32, &f, 0.0f, C, 4), -1);
    ck_assert_int_eq(tg_gemm_packb_f32(1, 64, 64, 1.0f, A, 64, 1, pack_formed_f32, &f, 0.0f, C, 64), -1);
    ck_assert_int_eq(tg_gemm_packb_f32(64, 1, 64, 1.0f, A, 64, 1, pack_formed_f32, &f, 0.0f, C, 1), -1);
    ck_assert_int_eq(tg_gemm_packb_f32(4, 16, 64, 1.0f, A, 64, 1, pack_formed_f32, &f, 0.0f, C, 16), -1);
    ck_assert_int_eq(tg_gemm_packb_f32(16, 4, 64, 1.0f, A, 64, 1, pack_formed_f32, &f, 0.0f, C, 4), -1);
    ck_assert_int_eq(f.calls, 0);
    ck_assert(memcmp(C, C0, sizeof C) == 0);
    /* no memory for the panels */
    tg_gemm_testing_fail_alloc(1);
    float *Ab = calloc(64 * 64, sizeof(float)), *Bb = calloc(64 * 64, sizeof(float));
    float *Cb = malloc(64 * 64 * sizeof(float));
    ck_assert(Ab && Bb && Cb);
    for (int i = 0; i < 64 * 64; i++) Cb[i] = 7.0f;
    formed_b fb = { Bb, 64, 1, 0, 0 };
    for (int threads = 1; threads <= 2; threads++) {
        tg_set_num_threads(threads);
        ck_assert_int_eq(tg_gemm_packb_f32(64, 64, 64, 1.0f, Ab, 64, 1, pack_formed_f32, &fb, 0.0f,
                                           Cb, 64), -1);
    }
    tg_gemm_testing_fail_alloc(0);
    ck_assert_int_eq(fb.calls, 0);
    for (int i = 0; i < 64 * 64; i++) ck_assert(Cb[i] == 7.0f);
    /* K == 0: C = beta C, B not read */
    ck_assert_int_eq(tg_gemm_packb_f32(64, 64, 0, 1.0f, Ab, 64, 1, pack_formed_f32, &fb, 0.5f, Cb, 64), 0);
    ck_assert_int_eq(fb.calls, 0);
    for (int i = 0; i < 64 * 64; i++) ck_assert(Cb[i] == 3.5f);
    free(Ab);
    free(Bb);
    free(Cb);
}
END_TEST

/* conv2d's implicit products (csrc/ops/conv.c) when gemm.c has no memory
 * for its panels: tg_gemm_packb declines, the convolution forms its columns
 * and runs tg_gemm, which falls back to the reference loop.  The results
 * are the same numbers up to the summation order. */
START_TEST(test_conv2d_without_panel_memory) {
    const int64_t xs[4] = { 3, 4, 9, 8 }, ws[4] = { 6, 4, 5, 5 };
    tg_tensor *x = tg_tensor_empty(4, xs, TG_FLOAT64), *w = tg_tensor_empty(4, ws, TG_FLOAT64);
    ck_tg(x);
    ck_tg(w);
    double *xd = tg_tensor_data(x), *wd = tg_tensor_data(w);
    for (int64_t i = 0; i < x->numel; i++) xd[i] = next_value();
    for (int64_t i = 0; i < w->numel; i++) wd[i] = next_value();
    tg_tensor *y[2], *dw[2];
    for (int fail = 0; fail < 2; fail++) {
        tg_gemm_testing_fail_alloc(fail);
        y[fail] = tg_conv2d(x, w, NULL, 1, 1, 2, 2);
        ck_tg(y[fail]);
        dw[fail] = tg_conv2d_weight_grad(x, y[fail], ws, 1, 1, 2, 2);
        ck_tg(dw[fail]);
    }
    tg_gemm_testing_fail_alloc(0);
    ck_assert_int_eq(y[0]->numel, 3 * 6 * 9 * 8);
    ck_assert(tt_max_abs_diff(y[0], y[1]) < 1e-12);
    /* dw from the two y's, which differ by rounding only */
    ck_assert(tt_max_abs_diff(dw[0], dw[1]) < 1e-9);
    double m = 0;
    for (int64_t i = 0; i < y[0]->numel; i++) m = fmax(m, fabs(((double *)tg_tensor_data(y[0]))[i]));
    ck_assert(m > 0.1); /* not all zeros */
    for (int k = 0; k < 2; k++) {
        tg_tensor_release(y[k]);
        tg_tensor_release(dw[k]);
    }
    tg_tensor_release(x);
    tg_tensor_release(w);
}
END_TEST

Suite *gemm_packb_suite(void) {
    Suite *s = suite_create("gemm_packb");
    TCase *tc = tcase_create("packb");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_packb_same_bits_as_tg_gemm);
    tcase_add_test(tc, test_packb_declines_and_leaves_c);
    tcase_add_test(tc, test_conv2d_without_panel_memory);
    suite_add_tcase(s, tc);
    return s;
}
