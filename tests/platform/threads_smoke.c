/*
 * threads_smoke.c -- a check of the thread pool and the aligned allocator on
 * a system where the Check suites cannot run (Windows through MinGW-w64 and
 * wine: .ci/mingw.sh).  It uses the core's internal thread pool
 * (csrc/kernels/threadpool.h) and public API, and exits non-zero on any
 * wrong answer:
 *   1. 200 parallel loops over 1,000,003 items with 4 threads: every item is
 *      visited exactly once (each writes its own slot; then all are counted);
 *   2. a 300 x 200 by 200 x 250 float64 matmul (the packed GEMM, its 64-byte
 *      aligned panels and the pool) against a naive triple loop;
 *   3. the pool shut down and used again.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad.h"
#include "threadpool.h"

static void mark(int64_t b, int64_t e, void *ctx)
{
    unsigned char *seen = ctx;
    for (int64_t i = b; i < e; ++i)
        seen[i]++;
}

static int loops(int rounds)
{
    const int64_t n = 1000003;
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen)
        return 1;
    for (int r = 0; r < rounds; ++r) {
        tg_parallel_for(n, 1000, mark, seen);
        for (int64_t i = 0; i < n; ++i)
            if (seen[i] != (unsigned char)(r + 1)) {
                printf("loop %d: item %lld visited %d times\n", r, (long long)i, seen[i] - r);
                free(seen);
                return 1;
            }
    }
    free(seen);
    return 0;
}

static int matmul(void)
{
    enum { M = 300, K = 200, N = 250 };
    int64_t sa[2] = {M, K}, sb[2] = {K, N};
    double *a = malloc(sizeof(double) * M * K), *b = malloc(sizeof(double) * K * N);
    if (!a || !b)
        return 1;
    for (int i = 0; i < M * K; ++i)
        a[i] = (double)(((int64_t)i * 7919) % 1000) / 500.0 - 1.0;
    for (int i = 0; i < K * N; ++i)
        b[i] = (double)(((int64_t)i * 104729) % 1000) / 500.0 - 1.0;
    tg_tensor *ta = tg_tensor_from_buffer(2, sa, TG_FLOAT64, a);
    tg_tensor *tb = tg_tensor_from_buffer(2, sb, TG_FLOAT64, b);
    tg_tensor *tc = ta && tb ? tg_matmul(ta, tb) : NULL;
    int bad = tc == NULL;
    if (tc) {
        const double *c = tg_tensor_data(tc);
        double worst = 0;
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                double ref = 0;
                for (int k = 0; k < K; ++k)
                    ref += a[i * K + k] * b[k * N + j];
                double err = fabs(c[i * N + j] - ref);
                if (err > worst)
                    worst = err;
            }
        printf("matmul %dx%d @ %dx%d: max |error| %.3g\n", M, K, K, N, worst);
        bad = !(worst <= 1e-12 * K);
    } else {
        printf("matmul failed: %s\n", tg_error_message());
    }
    tg_tensor_release(tc);
    tg_tensor_release(tb);
    tg_tensor_release(ta);
    free(a);
    free(b);
    return bad;
}

int main(void)
{
    if (tg_set_num_threads(4) != 0)
        return 1;
    int bad = loops(200);
    bad |= matmul();
    tg_threadpool_shutdown();
    bad |= loops(3);
    bad |= matmul();
    tg_threadpool_shutdown();
    printf("threads_smoke: %s (%d threads)\n", bad ? "FAILED" : "ok", tg_get_num_threads());
    return bad;
}
