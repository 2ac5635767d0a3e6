/*
 * compiler.h -- the few places where the core needs more than ISO C11, with
 * one branch for GCC-compatible compilers (gcc, clang, MinGW-w64: they
 * define __GNUC__) and one for the rest, which in practice means Microsoft's
 * cl.exe.  platform.h does the same for the operating system.
 *
 * Lesson: "portable C" is a promise about the language, and compilers keep
 * their own extensions.  GCC and clang give checked arithmetic
 * (__builtin_mul_overflow), per-function instruction sets
 * (__attribute__((target("avx2")))), unrolling pragmas and printf-format
 * checking; cl.exe has none of these, but lets any function use any
 * intrinsic of <immintrin.h> without a target option.  The GCC code below
 * is what gcc and clang compiled before this header existed; the other
 * branch gives the same results with plain C.
 *
 *   TG_ARCH_X86, TG_ARCH_ARM64   the architecture, as either compiler spells
 *       it (__x86_64__ / _M_X64, __aarch64__ / _M_ARM64).
 *   TG_TARGET("avx2,fma")   put before a function that uses those
 *       instructions' intrinsics (GCC/clang); nothing for cl.exe.
 *   TG_ALWAYS_INLINE        inline this static function into every caller
 *       (a micro-kernel body shared by two entry points whose strides are
 *       constants in one of them).
 *   TG_PRAGMA_UNROLL(n)     unroll the next loop n times (GCC/clang); a
 *       hint only, so nothing for cl.exe.
 *   TG_PRINTF_FORMAT(f, a)  check a printf-style call (GCC/clang only).
 *   TG_THREAD_LOCAL         C11's _Thread_local; cl.exe's C compiler does
 *       not take that keyword and spells it __declspec(thread).
 *   TG_PI                   pi (M_PI is POSIX, not ISO C: cl.exe's math.h
 *       defines it only under _USE_MATH_DEFINES).
 *   restrict                under cl.exe, its __restrict.
 *   __builtin_{add,sub,mul}_overflow(a, b, &r)   on a compiler without
 *       them: the same contract for int64_t results, in portable C (the
 *       tg_*_overflow_i64 functions below; tests/c/test_portable.c
 *       compares them with GCC's builtins).
 *   TG_INFF, TG_NANF, TG_NAN, TG_SQRTF, TG_SQRT   constants and square
 *       roots usable in branch-free kernel loops.
 *   tg_atomic_int, tg_atomic_u64 and tg_atomic_*()   the core's few shared
 *       counters and flags (see "atomics" below): C11 <stdatomic.h> on
 *       every compiler, never GCC's __atomic_* builtins.
 *
 * .ci/msvc.sh compiles the core with clang in MSVC mode (no __GNUC__, so
 * the second branch) against MSVC-style C library headers, with every GCC
 * extension outside this header made an error.
 */
#ifndef TG_COMPILER_H
#define TG_COMPILER_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define TG_ARCH_X86 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define TG_ARCH_ARM64 1
#endif

/* TG_X86_INTRIN: x86 intrinsics of an instruction set above the build's
 * baseline may be used in a function marked TG_TARGET(isa), in a file
 * compiled for the baseline.  GCC and clang (MinGW-w64 too) declare every
 * intrinsic in any file; clang in MSVC mode (.ci/msvc.sh, our stand-in for
 * cl.exe) declares only those of its -m flags.  So the files that mix plain
 * loops with AVX2/AVX-512 ones (conv_small.c, winograd.c's transposes,
 * conv.c's pooling) compile their SIMD loops where this is defined and keep
 * the plain ones elsewhere: a cl.exe build runs those plain loops, as it
 * runs the baseline vector math (vmath_impl.h), with the same results. */
#if defined(TG_ARCH_X86) && defined(__GNUC__)
#define TG_X86_INTRIN 1
#endif

/* _Pragma takes a string literal: TG_PRAGMA(GCC unroll 4) */
#define TG_PRAGMA(x) _Pragma(#x)

#if defined(__GNUC__) || defined(__clang__)
/* clang in MSVC mode (clang-cl) also needs the target attribute: unlike
 * cl.exe it refuses an AVX2 intrinsic in a function compiled for SSE2 */
#define TG_TARGET(isa) __attribute__((target(isa)))
#define TG_PRAGMA_UNROLL(n) TG_PRAGMA(GCC unroll n)
#define TG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TG_TARGET(isa)
#define TG_PRAGMA_UNROLL(n)
#define TG_ALWAYS_INLINE __forceinline
#endif

#if defined(__GNUC__)
#define TG_THREAD_LOCAL _Thread_local
#else
#define TG_THREAD_LOCAL __declspec(thread)
#endif

#define TG_PI 3.14159265358979323846

/* C99's restrict: cl.exe documents only its own spelling, __restrict, for C
 * (clang in MSVC mode has the keyword, so this is not seen by .ci/msvc.sh) */
#if defined(_MSC_VER) && !defined(__clang__) && !defined(__GNUC__)
#define restrict __restrict
#endif

#if defined(__MINGW32__) /* MinGW-w64 formats with its own C99 printf (%zu) */
#define TG_PRINTF_FORMAT(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__)
#define TG_PRINTF_FORMAT(f, a) __attribute__((format(printf, f, a)))
#else
#define TG_PRINTF_FORMAT(f, a)
#endif

/* ---- checked int64_t arithmetic ------------------------------------------
 * Each stores the wrapped (two's complement) result in *r, as the GCC
 * builtins do, and returns true when the exact result does not fit.  The
 * tests run them on every compiler; the core calls them only where the GCC
 * builtins are missing. */
static inline bool tg_add_overflow_i64(int64_t a, int64_t b, int64_t *r)
{
    *r = (int64_t)((uint64_t)a + (uint64_t)b);
    return b > 0 ? a > INT64_MAX - b : a < INT64_MIN - b;
}

static inline bool tg_sub_overflow_i64(int64_t a, int64_t b, int64_t *r)
{
    *r = (int64_t)((uint64_t)a - (uint64_t)b);
    return b < 0 ? a > INT64_MAX + b : a < INT64_MIN + b;
}

static inline bool tg_mul_overflow_i64(int64_t a, int64_t b, int64_t *r)
{
    *r = (int64_t)((uint64_t)a * (uint64_t)b);
    if (a == 0 || b == 0)
        return false;
    if (a > 0)
        return b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a;
    return b > 0 ? a < INT64_MIN / b : a < INT64_MAX / b;
}

#if !defined(__GNUC__)
/* Only int64_t results are supported: any other type of r does not compile
 * (add a case here when the core needs one). */
#define __builtin_add_overflow(a, b, r) _Generic((r), int64_t *: tg_add_overflow_i64)((a), (b), (r))
#define __builtin_sub_overflow(a, b, r) _Generic((r), int64_t *: tg_sub_overflow_i64)((a), (b), (r))
#define __builtin_mul_overflow(a, b, r) _Generic((r), int64_t *: tg_mul_overflow_i64)((a), (b), (r))
#endif

/* ---- constants and square roots for kernel loops ------------------------ */
#if defined(__GNUC__)
#define TG_INFF __builtin_inff()
#define TG_NANF __builtin_nanf("")
#define TG_NAN __builtin_nan("")
/* the instruction, never a library call that could set errno */
#define TG_SQRTF __builtin_sqrtf
#define TG_SQRT __builtin_sqrt
#else
#define TG_INFF INFINITY
#define TG_NANF NAN
#define TG_NAN ((double)NAN)
#define TG_SQRTF sqrtf
#define TG_SQRT sqrt
#endif

/* ---- atomics --------------------------------------------------------------
 * The core shares a few words between threads outside the thread pool
 * and the scratch cache's lock (which use <stdatomic.h> directly):
 * tensor ids and tape sequence numbers (core/tensor.c, core/record.c), the
 * engine's backward mark (engine/backward.c), the one-time self-test
 * states of the kernel dispatchers (winograd.c, conv_small.c, conv.c's
 * pooling) and the "a worker failed" flags of parallel jobs.  Each is
 * touched once per call, never in a loop, so these are about correctness
 * and portability, not speed (gcc 12 -O3, x86-64: the object code of
 * tensor.c, record.c, backward.c and conv_small.c is the same as with the
 * builtins; conv.c and winograd.c differ only in register choices around
 * their job setup, none in a kernel loop).  They used GCC's __atomic_* builtins on plain
 * ints, which clang (also in MSVC mode) accepts and cl.exe does not.  Now
 * the object has an atomic type and only these functions touch it:
 *
 *   tg_atomic_load_acquire_int(p)      read a once-computed state; pairs with
 *   tg_atomic_store_release_int(p, v)  its publication (the work done
 *       before the store, e.g. a self-test, is visible after the load).
 *   tg_atomic_store_relaxed_int(p, v)  set a flag that the caller reads after
 *       the pool's join (the join orders it, as for every other result).
 *   tg_atomic_fetch_add_relaxed_u64(p, v)  a counter: returns the value
 *       before the add; unique values, no ordering with other memory.
 *
 * The memory orders are the ones the builtins had.  A plain read of such
 * an object (j.failed after the join) is C11's sequentially consistent
 * load: legal, and once per call.  Initialise them as any static or
 * struct member (an initializer or zero), not with memset.
 *
 * Why C11 <stdatomic.h> on every compiler and no Interlocked* branch for
 * cl.exe: the thread pool (threadpool.c) already needs <stdatomic.h>, so
 * setup.py passes cl.exe /std:c11 /experimental:c11atomics (Visual Studio
 * 2022 17.5 or later); a second, hand-made implementation (Interlocked* on
 * volatile LONG64: cl.exe gives volatile acquire/release semantics only
 * under /volatile:ms, its default on x86 but not on arm64) would be a branch
 * that nothing here compiles or runs.  A typed atomic also makes the
 * compiler warn when a plain int is passed where a shared one is meant.  cl.exe keeps
 * defining __STDC_NO_ATOMICS__ under /experimental:c11atomics (its atomics
 * are lock-free only, all ours are), hence the _MSC_VER exception below.
 * .ci/msvc/force.h poisons the GCC builtins (__atomic_*, __sync_*) and
 * clang's (__c11_atomic_*) so that a new use fails .ci/msvc.sh. */
#if defined(__STDC_NO_ATOMICS__) && !defined(_MSC_VER)
#error "tapegrad needs C11 atomics (<stdatomic.h>)"
#endif
#include <stdatomic.h>

typedef _Atomic(int) tg_atomic_int;
typedef _Atomic(uint64_t) tg_atomic_u64;

static inline int tg_atomic_load_acquire_int(tg_atomic_int *p)
{
    return atomic_load_explicit(p, memory_order_acquire);
}

static inline void tg_atomic_store_release_int(tg_atomic_int *p, int v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

static inline void tg_atomic_store_relaxed_int(tg_atomic_int *p, int v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline uint64_t tg_atomic_fetch_add_relaxed_u64(tg_atomic_u64 *p, uint64_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}

#endif /* TG_COMPILER_H */
