/*
 * vmath.c -- the baseline build of the vector math kernels and the
 * run-time choice between it and the AVX2 build (see vmath.h).
 */
#include "vmath.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VM(name) tg_vm_##name##_base
#define VM_VBYTES 16
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#include "vmath_impl.h"

#define VM_TABLE(SUFFIX, NAME)                                                         \
    {NAME, tg_vm_exp_f32_##SUFFIX, tg_vm_log_f32_##SUFFIX, tg_vm_tanh_f32_##SUFFIX,   \
     tg_vm_sigmoid_f32_##SUFFIX, tg_vm_sum_f32_##SUFFIX, tg_vm_sum_f64_##SUFFIX,      \
     tg_vm_sumsq_f32_##SUFFIX, tg_vm_sumsq_f64_##SUFFIX,                              \
     tg_vm_acc_f32_##SUFFIX, tg_vm_acc_f64_##SUFFIX, tg_vm_max_f32_##SUFFIX,          \
     tg_vm_min_f32_##SUFFIX, tg_vm_max_f64_##SUFFIX, tg_vm_min_f64_##SUFFIX,          \
     tg_vm_adam_f32_##SUFFIX, tg_vm_sgd_f32_##SUFFIX, tg_vm_rmsprop_f32_##SUFFIX}

static const tg_vmath_table table_base = VM_TABLE(base, "baseline");

#if defined(__x86_64__) && defined(__GNUC__)
#define TG_VMATH_HAVE_AVX2 1
/* defined in vmath_avx2.c */
void tg_vm_exp_f32_avx2(int64_t, const float *, float *);
void tg_vm_log_f32_avx2(int64_t, const float *, float *);
void tg_vm_tanh_f32_avx2(int64_t, const float *, float *);
void tg_vm_sigmoid_f32_avx2(int64_t, const float *, float *);
double tg_vm_sum_f32_avx2(int64_t, const float *);
double tg_vm_sum_f64_avx2(int64_t, const double *);
double tg_vm_sumsq_f32_avx2(int64_t, const float *);
double tg_vm_sumsq_f64_avx2(int64_t, const double *);
void tg_vm_acc_f32_avx2(int64_t, int64_t, const float *, int64_t, double *);
void tg_vm_acc_f64_avx2(int64_t, int64_t, const double *, int64_t, double *);
double tg_vm_max_f32_avx2(int64_t, const float *);
double tg_vm_min_f32_avx2(int64_t, const float *);
double tg_vm_max_f64_avx2(int64_t, const double *);
double tg_vm_min_f64_avx2(int64_t, const double *);
void tg_vm_adam_f32_avx2(int64_t, float *, const float *, float *, float *, const float *, int);
void tg_vm_sgd_f32_avx2(int64_t, float *, const float *, float *, const double *, int);
void tg_vm_rmsprop_f32_avx2(int64_t, float *, const float *, float *, float *, const double *, int);
static const tg_vmath_table table_avx2 = VM_TABLE(avx2, "avx2");

static int have_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

const tg_vmath_table *tg_vmath_by_name(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "baseline") == 0) return &table_base;
#ifdef TG_VMATH_HAVE_AVX2
    if (strcmp(name, "avx2") == 0) return have_avx2() ? &table_avx2 : NULL;
#endif
    return NULL;
}

static _Atomic(const tg_vmath_table *) chosen;

const tg_vmath_table *tg_vmath(void) {
    const tg_vmath_table *t = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!t) {
        t = &table_base;
#ifdef TG_VMATH_HAVE_AVX2
        const char *force = getenv("TAPEGRAD_VMATH");
        if (have_avx2() && !(force && strcmp(force, "baseline") == 0)) t = &table_avx2;
#endif
        atomic_store_explicit(&chosen, t, memory_order_release);
    }
    return t;
}
