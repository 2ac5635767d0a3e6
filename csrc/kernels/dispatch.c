/*
 * dispatch.c -- CPU features and the dispatch log (see dispatch.h).
 */
/* MinGW-w64: the C99 printf family (with %zu), not the old msvcrt one */
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1
#endif
#include "dispatch.h"

#include "platform.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const feature_name[TG_CPU_N_FEATURES] = {"avx2", "avx512", "neon"};

/* strncasecmp for ASCII names (not in ISO C; absent on Windows). */
static int same_name(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

/* Whether the comma/space-separated list in TAPEGRAD_DISABLE_CPU_FEATURES
 * names feature f (case-insensitive). */
static int disabled(tg_cpu_feature f)
{
    const char *s = getenv("TAPEGRAD_DISABLE_CPU_FEATURES");
    if (s == NULL)
        return 0;
    const char *name = feature_name[f];
    size_t n = strlen(name);
    while (*s) {
        while (*s == ',' || *s == ' ')
            ++s;
        size_t len = strcspn(s, ", ");
        if (len == n && same_name(s, name, n))
            return 1;
        s += len;
    }
    return 0;
}

/* CPUID leaf 1 ECX: FMA (bit 12), OSXSAVE (27: the OS uses XSAVE, so XGETBV
 * may be read), AVX (28); leaf 7 EBX: AVX2 (5), AVX-512F (16).  XCR0 says
 * which register state the OS saves on a context switch: SSE and AVX
 * (bits 1, 2) for ymm; also opmask, upper zmm and zmm16-31 (5, 6, 7) for
 * AVX-512.  A CPU feature the OS does not save is not usable. */
int tg_cpu_decode_x86(tg_cpu_feature f, uint32_t leaf1_ecx, uint32_t leaf7_ebx, uint64_t xcr0)
{
    if (!(leaf1_ecx >> 27 & 1))
        return 0;
    int ymm = (xcr0 & 0x6) == 0x6;
    if (f == TG_CPU_AVX2)
        return ymm && (leaf1_ecx >> 28 & 1) && (leaf1_ecx >> 12 & 1) && (leaf7_ebx >> 5 & 1);
    if (f == TG_CPU_AVX512)
        return ymm && (xcr0 & 0xe0) == 0xe0 && (leaf7_ebx >> 16 & 1);
    return 0;
}

#if defined(_MSC_VER) && !defined(__GNUC__) && defined(TG_ARCH_X86)
#include <immintrin.h> /* _xgetbv */
#include <intrin.h>    /* __cpuid, __cpuidex */
/* cl.exe has no __builtin_cpu_supports: read CPUID and XCR0 ourselves
 * (clang in MSVC mode wants the xsave target for _xgetbv; cl.exe does not) */
TG_TARGET("xsave")
static int cpu_has_x86_cpuid(tg_cpu_feature f)
{
    int r[4];
    __cpuid(r, 0);
    int max_leaf = r[0];
    __cpuid(r, 1);
    uint32_t ecx1 = (uint32_t)r[2], ebx7 = 0;
    if (max_leaf >= 7) {
        __cpuidex(r, 7, 0);
        ebx7 = (uint32_t)r[1];
    }
    uint64_t xcr0 = (ecx1 >> 27 & 1) ? (uint64_t)_xgetbv(0) : 0;
    return tg_cpu_decode_x86(f, ecx1, ebx7, xcr0);
}
#endif

static int cpu_has_raw(tg_cpu_feature f)
{
#if defined(__aarch64__)
    /* Advanced SIMD is mandatory in AArch64: no run-time test needed */
    return f == TG_CPU_NEON;
#elif defined(TG_ARCH_X86) && defined(__GNUC__)
    /* GCC and clang (also MinGW-w64 on Windows): the compiler's runtime
     * reads CPUID and checks that the OS saves the wide registers (XGETBV). */
    __builtin_cpu_init();
    if (f == TG_CPU_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (f == TG_CPU_AVX512)
        return __builtin_cpu_supports("avx512f");
    return 0;
#elif defined(_MSC_VER) && defined(TG_ARCH_X86)
    /* MSVC: the same test from CPUID and XGETBV (tg_cpu_decode_x86) */
    return f != TG_CPU_NEON && cpu_has_x86_cpuid(f);
#else
    (void)f;
    return 0;
#endif
}

int tg_cpu_has(tg_cpu_feature f)
{
    if ((unsigned)f >= TG_CPU_N_FEATURES)
        return 0;
    return cpu_has_raw(f) && !disabled(f);
}

const char *tg_cpu_missing(tg_cpu_feature f)
{
    if ((unsigned)f >= TG_CPU_N_FEATURES)
        return "unknown CPU feature";
    if (f == TG_CPU_NEON) {
#if defined(__aarch64__)
        return disabled(f) ? "disabled by TAPEGRAD_DISABLE_CPU_FEATURES" : "";
#else
        return "not an arm64 build";
#endif
    }
#ifndef TG_ARCH_X86
    return "not an x86-64 build";
#else
    if (!cpu_has_raw(f))
        return f == TG_CPU_AVX2 ? "this CPU lacks AVX2 or FMA" : "this CPU lacks AVX-512F";
    if (disabled(f))
        return "disabled by TAPEGRAD_DISABLE_CPU_FEATURES";
    return "";
#endif
}

/* The log: lines appended under a lock, never longer than LOG_CAP - 1. */
#define LOG_CAP 4096
static tg_mutex log_lock = TG_MUTEX_INIT;
static char log_text[LOG_CAP];
static size_t log_len;

void tg_dispatch_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    size_t n = strlen(line);
    tg_mutex_lock(&log_lock);
    /* once: skip a line that is already there (whole lines only) */
    int seen = 0;
    for (const char *p = log_text; !seen && (p = strstr(p, line)) != NULL; ++p)
        seen = p == log_text || p[-1] == '\n';
    if (!seen && log_len + n < LOG_CAP) {
        memcpy(log_text + log_len, line, n + 1);
        log_len += n;
    }
    tg_mutex_unlock(&log_lock);
}

size_t tg_dispatch_log_copy(char *buf, size_t size)
{
    tg_mutex_lock(&log_lock);
    size_t n = log_len;
    if (buf != NULL && size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(buf, log_text, k);
        buf[k] = '\0';
    }
    tg_mutex_unlock(&log_lock);
    return n;
}

void tg_dispatch_log_clear(void)
{
    tg_mutex_lock(&log_lock);
    log_len = 0;
    log_text[0] = '\0';
    tg_mutex_unlock(&log_lock);
}

int64_t tg_dispatch_now_ns(void)
{
    return tg_monotonic_ns();
}
