/*
 * test_portable.c -- the cl.exe branches of csrc/kernels/compiler.h,
 * dispatch.c and vmath_impl.h, run here with gcc (cl.exe itself is not
 * available: .ci/msvc.sh only compiles them in MSVC mode).
 *
 *   overflow: tg_{add,sub,mul}_overflow_i64 (what replaces GCC's
 *       __builtin_*_overflow under cl.exe) against the builtins, on the
 *       edge values of int64_t and random pairs: same flag, same result.
 *   cpuid: tg_cpu_decode_x86 (cl.exe's CPU detection) on hand-made CPUID
 *       words, and on this CPU's own words against __builtin_cpu_supports.
 *   maxmin: vmath_impl.h's plain-array max/min (the path without GCC's
 *       vector types) against the library's baseline: the same bits, NaN
 *       and signed zeros included.
 *   ln sums: the plain-array layer_norm sums against the baseline's GCC
 *       vectors: the same bits.
 *   atomics: compiler.h's tg_atomic_*() (C11 <stdatomic.h>, what replaced
 *       GCC's __atomic_* builtins in the core), from 4 threads: the relaxed
 *       counter hands out every value exactly once, a flag published with
 *       a release store is read with its payload after an acquire load.
 * Exposes Suite *portable_suite(void).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "../../csrc/kernels/compiler.h"
#include "../../csrc/kernels/dispatch.h"
#include "../../csrc/kernels/platform.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* the plain-array build of the vector math kernels, as cl.exe compiles it */
#define VM_NO_VECTOR_EXT 1
#define VM(name) tg_vm_##name##_lanes_test
#define VM_VBYTES 16
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#include "../../csrc/kernels/vmath_impl.h"

double tg_vm_max_f32_base(int64_t, const float *);
double tg_vm_min_f32_base(int64_t, const float *);
double tg_vm_max_f64_base(int64_t, const double *);
double tg_vm_min_f64_base(int64_t, const double *);
void tg_vm_ln_sums_f32_base(int64_t, const float *, float, double *);
void tg_vm_ln_dots_f32_base(int64_t, const float *, const float *, const float *, float, float, double *);

static const int64_t edges[] = {0, 1, -1, 2, -2, 3, 7, -7, 1000003, -1000003,
                                INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
                                (int64_t)1 << 31, ((int64_t)1 << 32) + 5, -((int64_t)1 << 32),
                                INT64_MAX / 2, INT64_MIN / 2, INT64_MAX / 2 + 1, INT64_MAX - 1,
                                INT64_MAX, INT64_MIN + 1, INT64_MIN, 3037000499, 3037000500,
                                -3037000499, -3037000500};

static void check_pair(int64_t a, int64_t b)
{
    int64_t r1, r2;
    bool o1 = tg_add_overflow_i64(a, b, &r1), o2 = __builtin_add_overflow(a, b, &r2);
    ck_assert_msg(o1 == o2 && r1 == r2, "add %lld %lld", (long long)a, (long long)b);
    o1 = tg_sub_overflow_i64(a, b, &r1);
    o2 = __builtin_sub_overflow(a, b, &r2);
    ck_assert_msg(o1 == o2 && r1 == r2, "sub %lld %lld", (long long)a, (long long)b);
    o1 = tg_mul_overflow_i64(a, b, &r1);
    o2 = __builtin_mul_overflow(a, b, &r2);
    ck_assert_msg(o1 == o2 && r1 == r2, "mul %lld %lld", (long long)a, (long long)b);
}

START_TEST(test_overflow_matches_builtins)
{
    size_t n = sizeof edges / sizeof edges[0];
    for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j) {
            check_pair(edges[i], edges[j]);
            check_pair((int64_t)(0 - (uint64_t)edges[i]), edges[j]); /* negated, wrapping */
        }
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int k = 0; k < 20000; ++k) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int64_t a = (int64_t)s >> (s & 63);
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int64_t b = (int64_t)s >> (s & 63);
        check_pair(a, b);
    }
}
END_TEST

START_TEST(test_cpuid_decode)
{
    const uint32_t osxsave = 1u << 27, avx = 1u << 28, fma = 1u << 12;
    const uint32_t avx2 = 1u << 5, avx512f = 1u << 16;
    const uint32_t ecx = osxsave | avx | fma;
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx, avx2, 0x7), 1);
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx & ~fma, avx2, 0x7), 0);       /* no FMA */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx & ~avx, avx2, 0x7), 0);       /* no AVX */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx, 0, 0x7), 0);                 /* no AVX2 */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx, avx2, 0x3), 0);              /* OS: no ymm */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx & ~osxsave, avx2, 0x7), 0);   /* no XSAVE */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX512, ecx, avx2 | avx512f, 0xe7), 1);
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX512, ecx, avx2 | avx512f, 0x7), 0);  /* OS: no zmm */
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX512, ecx, avx2, 0xe7), 0);
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_NEON, ecx, avx2 | avx512f, 0xe7), 0);
}
END_TEST

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("xsave"))) static uint64_t read_xcr0(void) { return _xgetbv(0); }

/* this CPU's CPUID words, decoded as the cl.exe build does, give GCC's answer */
START_TEST(test_cpuid_decode_agrees_with_gcc)
{
    unsigned a, b, c, d, ecx1, ebx7 = 0;
    ck_assert(__get_cpuid(1, &a, &b, &ecx1, &d));
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        ebx7 = b;
    }
    uint64_t xcr0 = (ecx1 >> 27 & 1) ? read_xcr0() : 0;
    __builtin_cpu_init();
    int gcc_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int gcc_avx512 = __builtin_cpu_supports("avx512f") != 0;
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX2, ecx1, ebx7, xcr0), gcc_avx2);
    ck_assert_int_eq(tg_cpu_decode_x86(TG_CPU_AVX512, ecx1, ebx7, xcr0), gcc_avx512);
}
END_TEST
#endif

START_TEST(test_plain_maxmin_matches_baseline)
{
    uint64_t s = 12345;
    float xf[203];
    double xd[203];
    for (int trial = 0; trial < 400; ++trial) {
        int n = 1 + trial % 203;
        for (int i = 0; i < n; ++i) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            int kind = (int)(s >> 60);
            double v = (double)(int64_t)(s >> 20) / 1e9;
            /* signed zeros, ties, infinities and (rarely) NaN */
            v = kind < 3 ? 0.0 : kind < 6 ? -0.0 : kind == 6 ? 1.5 : kind == 7 ? -INFINITY : v;
            if (kind == 4 && trial % 7 == 0) v = NAN;
            /* every third array <= 0 (and every third >= 0): the max (min) is then a zero,
             * and which zero comes back depends on the order of the comparisons */
            if (trial % 3 == 1 && v > 0) v = -v;
            if (trial % 3 == 2 && v < 0) v = -v;
            xf[i] = (float)v;
            xd[i] = v;
        }
        double a, b;
#define SAME(F, X)                                                                      \
        a = tg_vm_##F##_lanes_test(n, X);                                               \
        b = tg_vm_##F##_base(n, X);                                                     \
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b),             \
                      #F " n=%d: %g vs %g", n, a, b);
        SAME(max_f32, xf) SAME(min_f32, xf) SAME(max_f64, xd) SAME(min_f64, xd)
#undef SAME
    }
}
END_TEST

START_TEST(test_plain_ln_sums_match_baseline)
{
    static float x[1100], g[1100], w[1100];
    for (int i = 0; i < 1100; ++i) {
        x[i] = (float)((i * 7919) % 211) * 0.037f + 3.0f;
        g[i] = (float)((i * 104729) % 97) * 0.021f - 1.0f;
        w[i] = 1.0f + (float)(i % 13) * 0.05f;
    }
    for (int n = 0; n <= 1100; n += n < 40 ? 1 : 53) {
        double a[2], b[2];
        tg_vm_ln_sums_f32_lanes_test(n, x, 2.5f, a);
        tg_vm_ln_sums_f32_base(n, x, 2.5f, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "ln_sums n=%d", n);
        for (int k = 0; k < 2; ++k) {
            tg_vm_ln_dots_f32_lanes_test(n, g, k ? w : NULL, x, 3.1f, 0.7f, a);
            tg_vm_ln_dots_f32_base(n, g, k ? w : NULL, x, 3.1f, 0.7f, b);
            ck_assert_msg(memcmp(a, b, sizeof a) == 0, "ln_dots n=%d w=%d", n, k);
        }
    }
}
END_TEST

enum { AT_THREADS = 4, AT_ADDS = 20000 };
typedef struct {
    tg_atomic_u64 *counter;
    uint64_t *got;        /* this thread's AT_ADDS values */
    tg_atomic_int *ready; /* published once, by the last thread to finish */
    int *payload;
    tg_atomic_int *done;  /* the reader's result (relaxed: the join orders it) */
} at_arg;

static void *at_worker(void *p)
{
    at_arg *a = p;
    for (int i = 0; i < AT_ADDS; i++)
        a->got[i] = tg_atomic_fetch_add_relaxed_u64(a->counter, 1);
    return NULL;
}

static void *at_reader(void *p)
{
    at_arg *a = p;
    while (!tg_atomic_load_acquire_int(a->ready)) {
    }
    tg_atomic_store_relaxed_int(a->done, *a->payload); /* 42 if the acquire saw the payload */
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

START_TEST(test_atomics_portable)
{
    static tg_atomic_u64 counter = 7;
    static tg_atomic_int ready, done;
    static int payload;
    uint64_t *got = malloc(sizeof(uint64_t) * AT_THREADS * AT_ADDS);
    ck_assert_ptr_nonnull(got);
    at_arg args[AT_THREADS];
    tg_thread th[AT_THREADS];
    for (int t = 0; t < AT_THREADS; t++) {
        args[t] = (at_arg){&counter, got + (size_t)t * AT_ADDS, &ready, &payload, &done};
        ck_assert_int_eq(tg_thread_create(&th[t], at_worker, &args[t]), 0);
    }
    for (int t = 0; t < AT_THREADS; t++)
        tg_thread_join(th[t]);
    /* every value 7 .. 7 + 4*20000 - 1 exactly once, and the counter past them */
    qsort(got, (size_t)AT_THREADS * AT_ADDS, sizeof *got, cmp_u64);
    for (int i = 0; i < AT_THREADS * AT_ADDS; i++)
        ck_assert_uint_eq(got[i], 7 + (uint64_t)i);
    ck_assert_uint_eq(tg_atomic_fetch_add_relaxed_u64(&counter, 0), 7 + (uint64_t)AT_THREADS * AT_ADDS);
    free(got);

    /* release / acquire: the reader waits for `ready`, then must see the payload */
    tg_thread r;
    ck_assert_int_eq(tg_thread_create(&r, at_reader, &args[0]), 0);
    payload = 42;
    tg_atomic_store_release_int(&ready, 1);
    tg_thread_join(r);
    ck_assert_int_eq(tg_atomic_load_acquire_int(&done), 42);
}
END_TEST

Suite *portable_suite(void)
{
    Suite *s = suite_create("portable");
    TCase *tc = tcase_create("msvc_branches");
    tcase_add_test(tc, test_overflow_matches_builtins);
    tcase_add_test(tc, test_cpuid_decode);
#if defined(__x86_64__) || defined(__i386__)
    tcase_add_test(tc, test_cpuid_decode_agrees_with_gcc);
#endif
    tcase_add_test(tc, test_plain_maxmin_matches_baseline);
    tcase_add_test(tc, test_plain_ln_sums_match_baseline);
    tcase_add_test(tc, test_atomics_portable);
    suite_add_tcase(s, tc);
    return s;
}
