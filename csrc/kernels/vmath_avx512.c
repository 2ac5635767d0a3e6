/*
 * vmath_avx512.c -- the AVX-512 build of the vector math kernels: the same
 * source as the baseline and the AVX2 build (vmath_impl.h), compiled for
 * 512-bit registers (16 floats a step) with fused multiply-adds.
 *
 * What AVX-512 adds for these loops, beyond the width: the comparisons
 * write mask registers and the ternaries of vmath_impl.h become masked
 * moves (one instruction, no blend through a vector of all-ones lanes), and
 * the float<->int bit games of exp and log stay in the vector unit.  On a
 * CPU that executes a 512-bit instruction as two 256-bit halves (AMD Zen 4)
 * the width alone would gain little; the shorter instruction stream does.
 *
 * Only AVX-512F is used (the target below): every AVX-512 CPU has it, and the
 * loops need nothing of DQ, BW or VL.  FMA is named too, because the EVEX
 * FMA of AVX-512F is what fmaf() compiles to here; vmath.c runs these only
 * on a CPU that reports both AVX-512F (with the OS saving the zmm state,
 * XCR0) and AVX2+FMA, and only after they pass the self-test against the
 * baseline build.
 *
 * prefer-vector-width=512: without it a compiler tuned for some AVX-512
 * CPUs vectorizes with 256-bit registers (to avoid the clock drop of wide
 * instructions on older Intel parts), and this build would be the AVX2 one
 * again.
 *
 * Not built for cl.exe (no GCC vector extensions, so vmath has no SIMD build
 * there at all) nor on arm64: the file is then empty.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <math.h>
#include <stdint.h>
#if defined(__clang__)
/* (clang takes no prefer-vector-width in a target attribute: for a generic
 * tuning it uses the full width by itself) */
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma,prefer-vector-width=512")
#endif

#define VM(name) tg_vm_##name##_avx512
#define VM_VBYTES 64
#define VM_FMA(a, b, c) fmaf((a), (b), (c))
/* public (not static) so that vmath.c can build its table */
#include "vmath_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int tg_vmath_avx512_unused; /* ISO C: a translation unit is not empty */
#endif
