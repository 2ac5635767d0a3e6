/*
 * dispatch.h -- what the run-time choice of SIMD kernels shares between
 * gemm.c and vmath.c: which instruction sets the CPU can run, and a log of
 * what went wrong while choosing (a self-test that failed, a forced path the
 * CPU cannot run).
 *
 * How a SIMD path is chosen (the same for the matmul micro-kernels and the
 * vector math / reduction kernels):
 *   1. the best path the CPU can run is the candidate (or the one forced by
 *      TAPEGRAD_GEMM / TAPEGRAD_VMATH or tg_gemm_force_isa / tg_vmath_force);
 *   2. before its first use it runs a known-answer self-test: small fixed
 *      problems (edge tiles, strided and transposed operands, tails of the
 *      vector loops, special values) compared with the portable C path;
 *   3. if the test fails, the next path is tried, down to the portable C
 *      one, and a line saying why goes to the log (once);
 *   4. the choice is made once per process, under a lock, so that several
 *      threads calling a kernel for the first time run one self-test and see
 *      one answer.
 * docs/performance.md ("Kernel self-tests") describes it for users.
 */
#ifndef TG_DISPATCH_H
#define TG_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TG_CPU_AVX2 = 0,   /* AVX2 and FMA (and the OS saves the ymm state) */
    TG_CPU_AVX512 = 1, /* AVX-512F (and the OS saves the zmm state) */
    TG_CPU_NEON = 2,   /* AArch64 Advanced SIMD: part of every arm64 CPU */
    TG_CPU_N_FEATURES
} tg_cpu_feature;

/* Whether the kernels of feature f may run here: the CPU has it (gcc's and
 * clang's __builtin_cpu_supports, which includes the OS's XSAVE state; under
 * cl.exe CPUID and XGETBV read by dispatch.c, tg_cpu_decode_x86) and the
 * comma-separated list TAPEGRAD_DISABLE_CPU_FEATURES (e.g. "avx512", as
 * NumPy's NPY_DISABLE_CPU_FEATURES) does not name it.  The variable is read
 * on every call, so call it when choosing, not in a loop.  Thread-safe. */
int tg_cpu_has(tg_cpu_feature f);

/* What cl.exe builds use instead of __builtin_cpu_supports (dispatch.c):
 * whether x86 feature f (TG_CPU_AVX2 or TG_CPU_AVX512) is usable given CPUID
 * leaf 1's ECX, leaf 7's EBX (subleaf 0) and XCR0 (read only when ECX says
 * OSXSAVE).  Every build has it: the tests compare it with GCC's answer. */
int tg_cpu_decode_x86(tg_cpu_feature f, uint32_t leaf1_ecx, uint32_t leaf7_ebx, uint64_t xcr0);

/* Why tg_cpu_has(f) is 0 ("this CPU lacks AVX-512F", "disabled by
 * TAPEGRAD_DISABLE_CPU_FEATURES", "not an x86-64 build", "not an arm64
 * build"), or "" when it is
 * 1.  Static string. */
const char *tg_cpu_missing(tg_cpu_feature f);

/* Append one line (printf format, no newline needed) to the process-wide
 * dispatch log, unless the same line is already there: each problem is
 * reported once.  The log holds up to 4 KiB; later lines are dropped.
 * Thread-safe. */
void tg_dispatch_log(const char *fmt, ...) TG_PRINTF_FORMAT(1, 2);

/* Copy the log (lines ending in '\n'; "" if nothing went wrong) into
 * buf[0..size), NUL-terminated and truncated if needed.  Returns the
 * length of the whole log (as snprintf does).  Thread-safe. */
size_t tg_dispatch_log_copy(char *buf, size_t size);

/* For tests: empty the log. */
void tg_dispatch_log_clear(void);

/* The state of one compiled path of a kernel family, for the
 * configuration report (tg_gemm_paths, tg_vmath_paths). */
typedef struct {
    const char *name;   /* "avx512", "avx2", "generic" / "baseline" */
    int available;      /* this CPU can run it (tg_cpu_has) */
    int selftest;       /* 1 passed, -1 failed, 0 not run (not chosen yet,
                           unavailable, or the portable path, which is the
                           reference and needs none) */
    int in_use;         /* the path the kernels use now */
    const char *detail; /* failed: what differed; unavailable: why; else "" */
    double selftest_us; /* time its self-test took, 0 if not run */
} tg_kernel_path_info;

/* Monotonic time in nanoseconds (to measure the self-tests). */
int64_t tg_dispatch_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif /* TG_DISPATCH_H */
