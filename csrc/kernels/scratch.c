/*
 * scratch.c -- the kernels' temporary buffers, kept for reuse (scratch.h).
 *
 * Each block carries a 64-byte header before the pointer handed out (its
 * size class, and the link of the free list while it is kept), so that the
 * pointer stays 64-byte aligned and tg_scratch_free needs no size.
 */
#include "scratch.h"
#include "compiler.h"
#include "platform.h"

#include <stdatomic.h>
#include <stdint.h>

#define HEADER 64
#define N_CLASSES 48 /* 64 B << 47: more than any allocation */

typedef struct hdr {
    struct hdr *next;
    size_t cls;
    const void *owner; /* the thread that gave it back (this_thread()) */
} hdr;

/* Whose block.  A kept block is handed out preferably to the thread that
 * gave it back: its lines are still in that thread's core's cache (L2),
 * while another core would first have to fetch them, and take ownership
 * of each line it writes, from there.  Until session 17 the lists were
 * plain stacks: the two threads of a parallel loop each take four
 * Winograd buffers at the start of every chunk and give them back at its
 * end, in whatever order the chunks finish, so a thread got the other's
 * buffers about half the time.  Measured on the MNIST CNN's batch-32 step
 * on two threads (perf, 1,000 steps): the CPU time of a two-thread step
 * was 1.34x that of a one-thread step before, 1.15x after (memset on the
 * buffers +39 % -> +8 %); per-round ratio of two-thread steps interleaved
 * with the preference switched off, median of 100 rounds: 1.2 % and 2.1 %
 * faster with it.  The preference only picks among the blocks of one size
 * class (a handful): the tag is the address of a thread-local byte, unique
 * among living threads (a new thread may reuse a dead one's: harmless). */
static TG_THREAD_LOCAL char thread_tag;
static const void *this_thread(void) { return &thread_tag; }

/* The free lists' lock: a spin lock, not a mutex.  Its critical sections
 * are a few loads and stores, but the pool's threads ask for their buffers
 * at the same moment, at the start of each chunk of a parallel loop (a
 * Winograd chunk takes four and gives four back).  With a pthread mutex
 * the thread that found it taken slept in the kernel and was woken by the
 * other's unlock: a futex call on each side, and a wake-up that takes
 * microseconds to tens of microseconds on a virtual machine while the loop
 * waits.  Measured on the MNIST CNN's batch-32 step on two threads (perf
 * on the futex system calls): this lock was the most contended one in the
 * process, its waits and wakes alternating between the two threads.  The
 * spin yields the core after a while, in case the holder was descheduled. */
static atomic_int lock_word;
static void lock(void) {
    for (unsigned spins = 0; atomic_exchange_explicit(&lock_word, 1, memory_order_acquire);) {
        while (atomic_load_explicit(&lock_word, memory_order_relaxed)) {
            if (++spins % 1024 == 0) tg_thread_yield();
            tg_cpu_relax();
        }
    }
}
static void unlock(void) { atomic_store_explicit(&lock_word, 0, memory_order_release); }

/* fork(): only the forking thread exists in the child, so a lock another
 * thread held at that moment would stay taken there and the child would
 * spin forever.  The lock is taken around fork() (registered at the first
 * allocation), so the child's copy of the free lists is whole. */
#ifndef _WIN32
static tg_once atfork_once = TG_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(lock, unlock, unlock); }
#endif
static hdr *free_lists[N_CLASSES];
static size_t cached;

static size_t class_bytes(size_t c) { return (size_t)64 << c; }

void *tg_scratch_alloc(size_t bytes) {
    size_t c = 0;
    while (c < N_CLASSES - 1 && class_bytes(c) < bytes) c++;
    if (class_bytes(c) < bytes || class_bytes(c) > SIZE_MAX - HEADER) return NULL;
    hdr *h = NULL;
#ifndef _WIN32
    tg_once_run(&atfork_once, register_atfork);
#endif
    const void *me = this_thread();
    lock();
    if (free_lists[c]) { /* the first block this thread gave back, else the first */
        hdr **at = &free_lists[c];
        for (hdr **p = at; *p; p = &(*p)->next)
            if ((*p)->owner == me) {
                at = p;
                break;
            }
        h = *at;
        *at = h->next;
        cached -= class_bytes(c);
    }
    unlock();
    if (!h) {
        h = tg_aligned_alloc(64, HEADER + class_bytes(c));
        if (!h) return NULL;
        h->cls = c;
    }
    return (char *)h + HEADER;
}

void tg_scratch_free(void *p) {
    if (!p) return;
    hdr *h = (hdr *)((char *)p - HEADER);
    size_t n = class_bytes(h->cls);
    h->owner = this_thread();
    lock();
    if (n <= TG_SCRATCH_CACHE && cached + n <= TG_SCRATCH_CACHE) {
        h->next = free_lists[h->cls];
        free_lists[h->cls] = h;
        cached += n;
        h = NULL;
    }
    unlock();
    tg_aligned_free(h); /* not kept (NULL when kept) */
}

void tg_scratch_trim(void) {
    hdr *all[N_CLASSES];
    lock();
    for (int c = 0; c < N_CLASSES; c++) {
        all[c] = free_lists[c];
        free_lists[c] = NULL;
    }
    cached = 0;
    unlock();
    for (int c = 0; c < N_CLASSES; c++)
        while (all[c]) {
            hdr *n = all[c]->next;
            tg_aligned_free(all[c]);
            all[c] = n;
        }
}

size_t tg_scratch_cached_bytes(void) {
    lock();
    size_t n = cached;
    unlock();
    return n;
}
