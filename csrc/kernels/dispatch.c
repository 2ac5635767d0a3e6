/*
 * dispatch.c -- CPU features and the dispatch log (see dispatch.h).
 */
#include "dispatch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const feature_name[TG_CPU_N_FEATURES] = {"avx2", "avx512"};

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
        if (len == n && strncasecmp(s, name, n) == 0)
            return 1;
        s += len;
    }
    return 0;
}

static int cpu_has_raw(tg_cpu_feature f)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (f == TG_CPU_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (f == TG_CPU_AVX512)
        return __builtin_cpu_supports("avx512f");
#endif
    (void)f;
    return 0;
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
#if !(defined(__x86_64__) || defined(__i386__))
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
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
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
    pthread_mutex_lock(&log_lock);
    /* once: skip a line that is already there (whole lines only) */
    int seen = 0;
    for (const char *p = log_text; !seen && (p = strstr(p, line)) != NULL; ++p)
        seen = p == log_text || p[-1] == '\n';
    if (!seen && log_len + n < LOG_CAP) {
        memcpy(log_text + log_len, line, n + 1);
        log_len += n;
    }
    pthread_mutex_unlock(&log_lock);
}

size_t tg_dispatch_log_copy(char *buf, size_t size)
{
    pthread_mutex_lock(&log_lock);
    size_t n = log_len;
    if (buf != NULL && size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(buf, log_text, k);
        buf[k] = '\0';
    }
    pthread_mutex_unlock(&log_lock);
    return n;
}

void tg_dispatch_log_clear(void)
{
    pthread_mutex_lock(&log_lock);
    log_len = 0;
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_lock);
}

int64_t tg_dispatch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
