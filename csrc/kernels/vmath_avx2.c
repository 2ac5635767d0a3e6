/*
 * vmath_avx2.c -- the AVX2 + FMA build of the vector math kernels: the
 * same source as the baseline (vmath_impl.h), compiled for 256-bit
 * registers with fused multiply-adds.  vmath.c calls these only after
 * checking the CPU (see vmath.h).
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <math.h>
#include <stdint.h>
/* GCC takes "#pragma GCC target"; clang ignores it (and warns), so under
 * clang the same target attribute is put on every function of the file. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif

#define VM(name) tg_vm_##name##_avx2
#define VM_VBYTES 32
#define VM_FMA(a, b, c) fmaf((a), (b), (c))
/* public (not static) so that vmath.c can build its table */
#include "vmath_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int tg_vmath_avx2_unused; /* ISO C: a translation unit is not empty */
#endif
