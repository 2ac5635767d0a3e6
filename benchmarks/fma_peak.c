/* fma_peak.c -- the float32 FMA peak of one core, measured: ten independent
 * chains of fused multiply-adds on registers only (no memory traffic, enough
 * chains to cover the FMA latency), 256-bit (AVX2) and 512-bit (AVX-512)
 * where the CPU has them; prints the best in GFLOP/s.  benchmarks/run.py
 * builds and runs it to state "fraction of peak" against this machine, not a
 * number from another one.  The best of 60 short samples (about 6 ms each)
 * rather than of 5 long ones: a virtual machine's host can slow a core for
 * a second or more, and the best short sample is the core's own speed, the
 * way the CNN rows are timed.  cc -O2 fma_peak.c -o fma_peak */
#include <stdio.h>
#include <time.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define CHAINS(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9)

__attribute__((target("avx2,fma"))) static double fma256(long n) {
    __m256 a[10], b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 10; i++) a[i] = _mm256_set1_ps((float)i);
    double t = now();
    for (long k = 0; k < n; k++) {
#define F256(i) a[i] = _mm256_fmadd_ps(a[i], b, c);
        CHAINS(F256)
    }
    t = now() - t;
    float s = 0;
    for (int i = 0; i < 10; i++) s += _mm256_cvtss_f32(a[i]);
    if (s == 12345.0f) puts(""); /* keeps the chains alive */
    return (double)n * 10 * 16 / t / 1e9;
}

__attribute__((target("avx512f"))) static double fma512(long n) {
    __m512 a[10], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 10; i++) a[i] = _mm512_set1_ps((float)i);
    double t = now();
    for (long k = 0; k < n; k++) {
#define F512(i) a[i] = _mm512_fmadd_ps(a[i], b, c);
        CHAINS(F512)
    }
    t = now() - t;
    float s = 0;
    for (int i = 0; i < 10; i++) s += _mm512_cvtss_f32(a[i]);
    if (s == 12345.0f) puts("");
    return (double)n * 10 * 32 / t / 1e9;
}

int main(void) {
    double best = 0;
    __builtin_cpu_init();
    for (int r = 0; r < 60; r++) {
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            double g = fma256(4000000L);
            if (g > best) best = g;
        }
        if (__builtin_cpu_supports("avx512f")) {
            double g = fma512(2000000L);
            if (g > best) best = g;
        }
    }
    if (best <= 0) return 1;
    printf("%.1f\n", best);
    return 0;
}
#else
int main(void) { return 1; } /* not measured here: run.py falls back to its stated figure */
#endif
