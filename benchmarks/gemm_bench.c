/*
 * gemm_bench.c -- GFLOP/s of every step of the GEMM lesson (csrc/kernels/gemm.c).
 *
 * Build and run (from the repository root):
 *
 *     gcc -std=c11 -O3 -D_GNU_SOURCE -pthread -Icsrc/kernels \
 *         csrc/kernels/gemm.c csrc/kernels/gemm_avx2.c csrc/kernels/gemm_avx512.c \
 *         csrc/kernels/threadpool.c benchmarks/gemm_bench.c -lm -o /tmp/gemm_bench
 *     /tmp/gemm_bench                  # 1024^3, f32 and f64, every variant
 *     /tmp/gemm_bench -s 512 -t 2 -i generic -d f32 -r 5
 *     /tmp/gemm_bench -s 4096x64x512   # M x N x K
 *
 * Options: -s N | MxNxK (size), -d f32|f64 (default both), -i generic|avx2|
 * avx512 (force the micro-kernel), -t threads for the MT variant and
 * tg_gemm (default: all CPUs), -r repetitions (best time is kept; default:
 * enough for ~0.3 s, at least 3; the two slow variants run once above 512^3),
 * -V variant name to run only that one ("auto" for tg_gemm), -T transposed
 * operands (A^T and B^T stored), -c measure CPU time of the calling thread
 * (single-threaded variants only; for tuning on a busy machine).
 *
 * Measured on the development machine: a 2-core KVM guest on an AMD EPYC
 * (Zen 3, family 25), AVX2 + FMA, no AVX-512; gcc 12, -O3, no -march.
 * 1024 x 1024 x 1024, GFLOP/s, best of many runs (the machine was shared
 * with other busy processes; single-thread rows with -c, CPU time):
 *
 *     variant                    f32      f64
 *     naive                      0.37     0.23
 *     reordered                 14.3      3.4
 *     blocked                   10.4      2.4    (2.3x reordered at 2048^3: 8.1 vs 3.5)
 *     packed_scalar             21.7      8.4
 *     packed_simd (avx2)        76.4     38.7    1 thread
 *     packed_simd_mt           137.0     66.5    2 threads (1.8x)
 *     tg_gemm (auto)           133.3     63.4    2 threads
 *     NumPy 2.4 / OpenBLAS 1T   84.3     39.3    OPENBLAS_NUM_THREADS=1
 *     NumPy 2.4 / OpenBLAS 2T  146.3     67.4    OPENBLAS_NUM_THREADS=2
 *
 * On a busy machine expect the threaded rows to scale less (NumPy's too).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"
#include "threadpool.h"

/* -c: time with this thread's CPU clock instead of the wall clock (for
 * tuning single-threaded variants on a busy or virtualised machine, where
 * the wall clock also counts the time the thread was not running). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int64_t M, N, K;
    int reps;
    int transposed;
    const char *only;
} bench_opts;

/* -1 stands for "tg_gemm_*" itself (the size-based choice). */
static const char *name_of(int v) { return v < 0 ? "tg_gemm (auto)" : tg_gemm_variant_name((tg_gemm_variant)v); }

/* Time one variant; returns the best GFLOP/s over the repetitions. */
static double bench_f32(int v, const bench_opts *o, const float *A, const float *B, float *C)
{
    int64_t M = o->M, N = o->N, K = o->K;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    /* A row-major M x K (or its transpose stored K x M), B row-major K x N (or N x K). */
    int64_t rsa = o->transposed ? 1 : K, csa = o->transposed ? M : 1;
    int64_t rsb = o->transposed ? 1 : N, csb = o->transposed ? K : 1;
    int slow = v == TG_GEMM_NAIVE || v == TG_GEMM_REORDERED || v == TG_GEMM_BLOCKED;
    int reps = o->reps;
    if (reps <= 0)
        reps = slow && flops > 2.0 * 512 * 512 * 512 ? 1 : 3;
    double best = 1e30, total = 0;
    for (int r = 0; r < reps || (o->reps <= 0 && !slow && total < 0.3 && r < 1000); ++r) {
        double t0 = now();
        if (v < 0)
            tg_gemm_f32(M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, 0.0f, C, N, 1);
        else
            tg_gemm_variant_f32((tg_gemm_variant)v, M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, 0.0f, C, N, 1);
        double dt = now() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    return flops / best * 1e-9;
}

static double bench_f64(int v, const bench_opts *o, const double *A, const double *B, double *C)
{
    int64_t M = o->M, N = o->N, K = o->K;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int64_t rsa = o->transposed ? 1 : K, csa = o->transposed ? M : 1;
    int64_t rsb = o->transposed ? 1 : N, csb = o->transposed ? K : 1;
    int slow = v == TG_GEMM_NAIVE || v == TG_GEMM_REORDERED || v == TG_GEMM_BLOCKED;
    int reps = o->reps;
    if (reps <= 0)
        reps = slow && flops > 2.0 * 512 * 512 * 512 ? 1 : 3;
    double best = 1e30, total = 0;
    for (int r = 0; r < reps || (o->reps <= 0 && !slow && total < 0.3 && r < 1000); ++r) {
        double t0 = now();
        if (v < 0)
            tg_gemm_f64(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, 0.0, C, N, 1);
        else
            tg_gemm_variant_f64((tg_gemm_variant)v, M, N, K, 1.0, A, rsa, csa, B, rsb, csb, 0.0, C, N, 1);
        double dt = now() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    return flops / best * 1e-9;
}

int main(int argc, char **argv)
{
    bench_opts o = { 1024, 1024, 1024, 0, 0, NULL };
    const char *dtype = NULL, *isa = NULL;
    int threads = 0, opt;
    while ((opt = getopt(argc, argv, "s:d:i:t:r:V:Tc")) != -1) {
        switch (opt) {
        case 's': {
            long long m = 0, n = 0, k = 0;
            int got = sscanf(optarg, "%lldx%lldx%lld", &m, &n, &k);
            if (got == 1)
                n = k = m;
            else if (got != 3) {
                fprintf(stderr, "bad size %s\n", optarg);
                return 2;
            }
            o.M = m; o.N = n; o.K = k;
            break;
        }
        case 'd': dtype = optarg; break;
        case 'i': isa = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'r': o.reps = atoi(optarg); break;
        case 'V': o.only = optarg; break;
        case 'T': o.transposed = 1; break;
        case 'c': bench_clock = CLOCK_THREAD_CPUTIME_ID; break;
        default:
            fprintf(stderr, "usage: %s [-s N|MxNxK] [-d f32|f64] [-i isa] [-t threads] [-r reps] [-V variant] [-T] [-c]\n", argv[0]);
            return 2;
        }
    }
    if (isa)
        tg_gemm_force_isa(isa);
    if (threads > 0 && tg_set_num_threads(threads) != 0) {
        fprintf(stderr, "bad thread count %d\n", threads);
        return 2;
    }
    printf("gemm %lld x %lld x %lld%s, micro-kernel %s, %d threads for MT\n",
           (long long)o.M, (long long)o.N, (long long)o.K, o.transposed ? " (A^T, B^T)" : "",
           tg_gemm_isa(), tg_get_num_threads());

    size_t na = (size_t)(o.M * o.K), nb = (size_t)(o.K * o.N), nc = (size_t)(o.M * o.N);
    for (int d = 0; d < 2; ++d) {
        int f64 = d == 1;
        if (dtype && strcmp(dtype, f64 ? "f64" : "f32") != 0)
            continue;
        size_t es = f64 ? sizeof(double) : sizeof(float);
        void *A = malloc(na * es), *B = malloc(nb * es), *C = malloc(nc * es);
        if (!A || !B || !C) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        srand(1);
        for (size_t i = 0; i < na; ++i) {
            double r = (double)rand() / RAND_MAX - 0.5;
            if (f64) ((double *)A)[i] = r; else ((float *)A)[i] = (float)r;
        }
        for (size_t i = 0; i < nb; ++i) {
            double r = (double)rand() / RAND_MAX - 0.5;
            if (f64) ((double *)B)[i] = r; else ((float *)B)[i] = (float)r;
        }
        printf("%s\n", f64 ? "float64" : "float32");
        for (int v = 0; v <= TG_GEMM_N_VARIANTS; ++v) {
            int var = v == TG_GEMM_N_VARIANTS ? -1 : v;
            if (o.only && strcmp(o.only, name_of(var)) != 0 &&
                !(var < 0 && strcmp(o.only, "auto") == 0))
                continue;
            double g = f64 ? bench_f64(var, &o, A, B, C) : bench_f32(var, &o, A, B, C);
            printf("  %-16s %8.2f GFLOP/s\n", name_of(var), g);
            fflush(stdout);
        }
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
