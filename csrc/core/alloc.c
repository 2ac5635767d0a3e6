/*
 * alloc.c -- memory for tensor data.
 *
 * All tensor buffers are 64-byte aligned (a cache line, and the widest SIMD
 * load).  Freed blocks are kept in per-size-class free lists and reused, so a
 * training loop that makes the same shapes every step stops calling malloc
 * after its first step.  Size classes are powers of two from 64 bytes; blocks
 * above 256 MiB are never cached.  The cache holds at most TG_CACHE_LIMIT
 * bytes; beyond that, freed blocks go back to the system.
 */
#include "internal.h"

#include "../kernels/platform.h"
#include "../kernels/scratch.h"
#include <stdlib.h>

#define TG_N_CLASSES 23              /* 64 B << 22 = 256 MiB */
#define TG_CACHE_LIMIT ((size_t)1 << 30)

typedef struct block { struct block *next; } block;

static tg_mutex lock = TG_MUTEX_INIT;
static block *free_lists[TG_N_CLASSES];
static size_t cached_bytes, live_bytes, peak_bytes;
static uint64_t n_alloc, n_hits;

static int size_class(size_t nbytes) {
    size_t sz = 64;
    for (int c = 0; c < TG_N_CLASSES; c++, sz <<= 1)
        if (nbytes <= sz) return c;
    return -1;
}

void *tg__alloc(size_t nbytes, const char *who) {
    if (nbytes == 0) nbytes = 1;
    int c = size_class(nbytes);
    size_t real = c >= 0 ? (size_t)64 << c : (nbytes + 63) / 64 * 64;
    if (real < nbytes) {
        tg_error_set(TG_ERR_MEMORY, "%s: cannot allocate %zu bytes", who, nbytes);
        return NULL;
    }
    void *p = NULL;
    tg_mutex_lock(&lock);
    n_alloc++;
    if (c >= 0 && free_lists[c]) {
        block *b = free_lists[c];
        free_lists[c] = b->next;
        cached_bytes -= real;
        p = b;
        n_hits++;
        live_bytes += real;
        if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    }
    tg_mutex_unlock(&lock);
    if (!p) {
        /* live (and the peak) only once the block exists: a refused request
         * of terabytes is no peak */
        p = tg_aligned_alloc(64, real);
        if (!p) {
            tg_error_set(TG_ERR_MEMORY, "%s: out of memory allocating %zu bytes", who, nbytes);
            return NULL;
        }
        tg_mutex_lock(&lock);
        live_bytes += real;
        if (live_bytes > peak_bytes) peak_bytes = live_bytes;
        tg_mutex_unlock(&lock);
    }
    return p;
}

void tg__free(void *p, size_t nbytes) {
    if (!p) return;
    if (nbytes == 0) nbytes = 1;
    int c = size_class(nbytes);
    size_t real = c >= 0 ? (size_t)64 << c : (nbytes + 63) / 64 * 64;
    tg_mutex_lock(&lock);
    live_bytes -= real;
    if (c >= 0 && cached_bytes + real <= TG_CACHE_LIMIT) {
        block *b = p;
        b->next = free_lists[c];
        free_lists[c] = b;
        cached_bytes += real;
        p = NULL;
    }
    tg_mutex_unlock(&lock);
    tg_aligned_free(p);
}

void tg_memory_stats(tg_memory_stats_t *out) {
    tg_mutex_lock(&lock);
    out->live_bytes = live_bytes;
    out->peak_bytes = peak_bytes;
    out->cached_bytes = cached_bytes;
    out->n_alloc = n_alloc;
    out->n_cache_hits = n_hits;
    tg_mutex_unlock(&lock);
}

void tg_memory_empty_cache(void) {
    tg_mutex_lock(&lock);
    for (int c = 0; c < TG_N_CLASSES; c++) {
        while (free_lists[c]) {
            block *b = free_lists[c];
            free_lists[c] = b->next;
            tg_aligned_free(b);
        }
    }
    cached_bytes = 0;
    tg_mutex_unlock(&lock);
    tg_scratch_trim(); /* the kernels' kept scratch buffers too */
}

void tg_memory_reset_peak(void) {
    tg_mutex_lock(&lock);
    peak_bytes = live_bytes;
    tg_mutex_unlock(&lock);
}
