/*
 * vmath_avx2.c -- the AVX2 + FMA build of the vector math kernels: the
 * same source as the baseline (vmath_impl.h), compiled for 256-bit
 * registers with fused multiply-adds.  vmath.c calls these only after
 * checking the CPU (see vmath.h).
 */
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma")
#include <math.h>
#include <stdint.h>

#define VM(name) tg_vm_##name##_avx2
#define VM_VBYTES 32
#define VM_FMA(a, b, c) fmaf((a), (b), (c))
/* public (not static) so that vmath.c can build its table */
#include "vmath_impl.h"
#else
typedef int tg_vmath_avx2_unused; /* ISO C: a translation unit is not empty */
#endif
