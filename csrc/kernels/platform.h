/*
 * platform.h -- the few operating-system services the core needs, with one
 * branch for POSIX (Linux, macOS: pthreads) and one for Windows (Win32:
 * slim reader/writer locks, condition variables, _beginthreadex).
 *
 * Lesson: portable C11 covers arithmetic, memory and files, but not threads
 * (C11's <threads.h> is optional and missing from macOS and older MSVC),
 * aligned memory on Windows (its C library has no aligned_alloc, because
 * its free() cannot release an over-aligned block), or a monotonic clock.
 * Everything the core needs from the system goes through this header, so
 * the rest of the code is written once:
 *
 *   tg_mutex / tg_cond / tg_thread / tg_once   a mutex, a condition variable,
 *       a joinable thread and a run-once flag; TG_MUTEX_INIT, TG_COND_INIT and
 *       TG_ONCE_INIT initialise statics (both systems allow that).
 *   tg_aligned_alloc / tg_aligned_free    64-byte-aligned blocks; a block from
 *       tg_aligned_alloc must be released with tg_aligned_free (on POSIX that
 *       is free(); on Windows it is _aligned_free()).
 *   tg_monotonic_ns()                     a clock that never goes backwards.
 *   tg_thread_yield()                     give the core to another thread.
 *   tg_cpu_relax()                        the pause hint of a spin-wait loop
 *       (x86 PAUSE; nothing elsewhere): the thread pool's and the scratch
 *       cache's spins.
 *
 * fork() exists only on POSIX, so the thread pool's fork handlers are POSIX
 * only (see threadpool.c).
 */
#ifndef TG_PLATFORM_H
#define TG_PLATFORM_H

#include "compiler.h"
#ifdef TG_ARCH_X86
#include <immintrin.h>
#define tg_cpu_relax() _mm_pause()
#else
#define tg_cpu_relax() ((void)0)
#endif

#include <stdint.h>
#include <stdlib.h>

#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <malloc.h>
#include <process.h>

typedef SRWLOCK tg_mutex;
typedef CONDITION_VARIABLE tg_cond;
typedef HANDLE tg_thread;
typedef INIT_ONCE tg_once;
#define TG_MUTEX_INIT SRWLOCK_INIT
#define TG_COND_INIT CONDITION_VARIABLE_INIT
#define TG_ONCE_INIT INIT_ONCE_STATIC_INIT

static inline void tg_mutex_init(tg_mutex *m) { InitializeSRWLock(m); }
static inline void tg_mutex_lock(tg_mutex *m) { AcquireSRWLockExclusive(m); }
static inline void tg_mutex_unlock(tg_mutex *m) { ReleaseSRWLockExclusive(m); }
/* 0 when the lock was taken (as pthread_mutex_trylock) */
static inline int tg_mutex_trylock(tg_mutex *m) { return TryAcquireSRWLockExclusive(m) ? 0 : 1; }
static inline void tg_cond_init(tg_cond *c) { InitializeConditionVariable(c); }
static inline void tg_cond_wait(tg_cond *c, tg_mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static inline void tg_cond_signal(tg_cond *c) { WakeConditionVariable(c); }
static inline void tg_cond_broadcast(tg_cond *c) { WakeAllConditionVariable(c); }

typedef struct {
    void *(*fn)(void *);
    void *arg;
} tg__thread_start;

static inline unsigned __stdcall tg__thread_trampoline(void *p)
{
    tg__thread_start s = *(tg__thread_start *)p;
    free(p);
    s.fn(s.arg);
    return 0;
}

/* 0 on success (as pthread_create) */
static inline int tg_thread_create(tg_thread *t, void *(*fn)(void *), void *arg)
{
    tg__thread_start *s = malloc(sizeof *s);
    if (s == NULL)
        return -1;
    s->fn = fn;
    s->arg = arg;
    uintptr_t h = _beginthreadex(NULL, 0, tg__thread_trampoline, s, 0, NULL);
    if (h == 0) {
        free(s);
        return -1;
    }
    *t = (HANDLE)h;
    return 0;
}

static inline void tg_thread_join(tg_thread t)
{
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}

static inline BOOL CALLBACK tg__once_trampoline(PINIT_ONCE once, PVOID fn, PVOID *ctx)
{
    (void)once;
    (void)ctx;
    ((void (*)(void))(uintptr_t)fn)();
    return TRUE;
}
static inline void tg_once_run(tg_once *o, void (*fn)(void))
{
    InitOnceExecuteOnce(o, tg__once_trampoline, (PVOID)(uintptr_t)fn, NULL);
}

static inline void *tg_aligned_alloc(size_t align, size_t size) { return _aligned_malloc(size, align); }
static inline void tg_aligned_free(void *p) { _aligned_free(p); }

static inline int64_t tg_monotonic_ns(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (int64_t)((double)c.QuadPart * (1e9 / (double)f.QuadPart));
}

static inline void tg_thread_yield(void) { SwitchToThread(); }

#else /* POSIX */

#include <pthread.h>
#include <sched.h>
#include <time.h>

typedef pthread_mutex_t tg_mutex;
typedef pthread_cond_t tg_cond;
typedef pthread_t tg_thread;
typedef pthread_once_t tg_once;
#define TG_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define TG_COND_INIT PTHREAD_COND_INITIALIZER
#define TG_ONCE_INIT PTHREAD_ONCE_INIT

static inline void tg_mutex_init(tg_mutex *m) { pthread_mutex_init(m, NULL); }
static inline void tg_mutex_lock(tg_mutex *m) { pthread_mutex_lock(m); }
static inline void tg_mutex_unlock(tg_mutex *m) { pthread_mutex_unlock(m); }
static inline int tg_mutex_trylock(tg_mutex *m) { return pthread_mutex_trylock(m); }
static inline void tg_cond_init(tg_cond *c) { pthread_cond_init(c, NULL); }
static inline void tg_cond_wait(tg_cond *c, tg_mutex *m) { pthread_cond_wait(c, m); }
static inline void tg_cond_signal(tg_cond *c) { pthread_cond_signal(c); }
static inline void tg_cond_broadcast(tg_cond *c) { pthread_cond_broadcast(c); }
static inline int tg_thread_create(tg_thread *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg);
}
static inline void tg_thread_join(tg_thread t) { pthread_join(t, NULL); }
static inline void tg_once_run(tg_once *o, void (*fn)(void)) { pthread_once(o, fn); }

static inline void *tg_aligned_alloc(size_t align, size_t size) { return aligned_alloc(align, size); }
static inline void tg_aligned_free(void *p) { free(p); }

static inline int64_t tg_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void tg_thread_yield(void) { sched_yield(); }

#endif

#endif /* TG_PLATFORM_H */
