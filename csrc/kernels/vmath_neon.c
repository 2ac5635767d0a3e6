/*
 * vmath_neon.c -- the arm64 build of the vector math kernels: the same
 * source as the baseline (vmath_impl.h), with fused multiply-adds.
 *
 * A lesson in what "a NEON build" means here.  On x86-64 the baseline is
 * SSE2 (4 floats a step) and the AVX2 build doubles the width and adds FMA.
 * On arm64 the register width does not change: NEON is the only SIMD every
 * AArch64 CPU has, 128 bits (4 floats), so the baseline build of
 * vmath_impl.h, written with GCC's portable vector types of 16 bytes,
 * already compiles to NEON instructions.  What this build adds is the
 * fused multiply-add (FMLA: a*b + c rounded once) in the polynomials of
 * exp, log, tanh and sigmoid, exactly as vmath_avx2.c does on x86.  The
 * results therefore differ from the baseline build by the same <= 1 ulp,
 * and the sums, which use no FMA, are the same bits (vmath.c checks both in
 * its self-test before the first use).  (The baseline has to be built with
 * -ffp-contract=off, as csrc/Makefile and setup.py do: otherwise the
 * compiler could fuse there too, on some compilers and not others.)
 */
#if defined(__aarch64__) && defined(__GNUC__)
#include <math.h>
#include <stdint.h>

#define VM(name) tg_vm_##name##_neon
#define VM_VBYTES 16
#define VM_FMA(a, b, c) fmaf((a), (b), (c))
/* public (not static) so that vmath.c can build its table */
#include "vmath_impl.h"
#else
typedef int tg_vmath_neon_unused; /* ISO C: a translation unit is not empty */
#endif
