/*
 * .ci/msvc/force.h -- included before every file that .ci/msvc.sh compiles
 * in MSVC mode (clang --target=x86_64-pc-windows-msvc: no __GNUC__, so the
 * core takes its cl.exe branches).
 *
 * clang itself accepts GCC's extensions in that mode; cl.exe does not.  So
 * this header first includes every system header the core uses (and
 * csrc/kernels/compiler.h, the one place allowed to name the extensions),
 * then poisons the extensions: any later use of one in the core is an
 * error.  (Macros defined before the poison, such as the C library's, may
 * still expand to them.)
 */
#include <float.h>
#if defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h> /* clang defines __aarch64__ for arm64 Windows too; cl.exe does not */
#endif
#include <intrin.h>
#include <malloc.h>
#include <math.h>
#include <process.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
/* C99's fmaf: the UCRT's math.h (cl.exe) declares it, Wine's MSVC-style
 * math.h, which stands in for it here, does not */
float __cdecl fmaf(float, float, float);

#include "../../csrc/kernels/compiler.h"

#pragma GCC poison __attribute__ __typeof__ __typeof typeof __thread __int128 __asm__ __asm asm
#pragma GCC poison __extension__ __label__ __auto_type __alignof__ _Thread_local
#pragma GCC poison __builtin_cpu_supports __builtin_cpu_init __builtin_expect __builtin_unreachable
#pragma GCC poison __builtin_inf __builtin_inff __builtin_nan __builtin_nanf __builtin_huge_val
#pragma GCC poison __builtin_huge_valf __builtin_sqrt __builtin_sqrtf __builtin_fabs __builtin_fma
#pragma GCC poison __builtin_clz __builtin_clzll __builtin_ctz __builtin_ctzll __builtin_popcount
#pragma GCC poison __builtin_popcountll __builtin_prefetch __builtin_assume_aligned __builtin_trap
#pragma GCC poison __builtin_memcpy __builtin_memset __builtin_bswap32 __builtin_bswap64
#pragma GCC poison __builtin_constant_p __builtin_types_compatible_p __builtin_choose_expr
#pragma GCC poison __builtin_ia32_pause __builtin_ia32_xgetbv
/* atomics: C11 <stdatomic.h> through compiler.h's tg_atomic_*() (cl.exe with
 * /experimental:c11atomics); GCC's builtins and clang's own (which clang's
 * <stdatomic.h>, included above, expands to) do not exist in cl.exe */
#pragma GCC poison __atomic_load_n __atomic_load __atomic_store_n __atomic_store
#pragma GCC poison __atomic_exchange_n __atomic_exchange __atomic_compare_exchange_n
#pragma GCC poison __atomic_compare_exchange __atomic_add_fetch __atomic_sub_fetch
#pragma GCC poison __atomic_and_fetch __atomic_or_fetch __atomic_xor_fetch __atomic_nand_fetch
#pragma GCC poison __atomic_fetch_add __atomic_fetch_sub __atomic_fetch_and __atomic_fetch_or
#pragma GCC poison __atomic_fetch_xor __atomic_fetch_nand __atomic_test_and_set __atomic_clear
#pragma GCC poison __atomic_thread_fence __atomic_signal_fence __atomic_always_lock_free
#pragma GCC poison __atomic_is_lock_free
#pragma GCC poison __sync_fetch_and_add __sync_fetch_and_sub __sync_fetch_and_or
#pragma GCC poison __sync_fetch_and_and __sync_fetch_and_xor __sync_fetch_and_nand
#pragma GCC poison __sync_add_and_fetch __sync_sub_and_fetch __sync_or_and_fetch
#pragma GCC poison __sync_and_and_fetch __sync_xor_and_fetch __sync_nand_and_fetch
#pragma GCC poison __sync_bool_compare_and_swap __sync_val_compare_and_swap
#pragma GCC poison __sync_synchronize __sync_lock_test_and_set __sync_lock_release
#pragma GCC poison __c11_atomic_init __c11_atomic_load __c11_atomic_store __c11_atomic_exchange
#pragma GCC poison __c11_atomic_compare_exchange_strong __c11_atomic_compare_exchange_weak
#pragma GCC poison __c11_atomic_fetch_add __c11_atomic_fetch_sub __c11_atomic_fetch_and
#pragma GCC poison __c11_atomic_fetch_or __c11_atomic_fetch_xor __c11_atomic_thread_fence
#pragma GCC poison __c11_atomic_signal_fence __c11_atomic_is_lock_free
/* cl.exe's math.h has these only under _USE_MATH_DEFINES; Wine's always */
#undef M_PI
#undef M_PI_2
#undef M_E
#undef M_LN2
#undef M_SQRT2
#pragma GCC poison M_PI M_PI_2 M_E M_LN2 M_SQRT2
