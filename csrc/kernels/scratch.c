/*
 * scratch.c -- the kernels' temporary buffers, kept for reuse (scratch.h).
 *
 * Each block carries a 64-byte header before the pointer handed out (its
 * size class, and the link of the free list while it is kept), so that the
 * pointer stays 64-byte aligned and tg_scratch_free needs no size.
 */
#include "scratch.h"
#include "platform.h"

#include <stdint.h>

#define HEADER 64
#define N_CLASSES 48 /* 64 B << 47: more than any allocation */

typedef struct hdr {
    struct hdr *next;
    size_t cls;
} hdr;

static tg_mutex lock = TG_MUTEX_INIT;
static hdr *free_lists[N_CLASSES];
static size_t cached;

static size_t class_bytes(size_t c) { return (size_t)64 << c; }

void *tg_scratch_alloc(size_t bytes) {
    size_t c = 0;
    while (c < N_CLASSES - 1 && class_bytes(c) < bytes) c++;
    if (class_bytes(c) < bytes || class_bytes(c) > SIZE_MAX - HEADER) return NULL;
    hdr *h = NULL;
    tg_mutex_lock(&lock);
    if (free_lists[c]) {
        h = free_lists[c];
        free_lists[c] = h->next;
        cached -= class_bytes(c);
    }
    tg_mutex_unlock(&lock);
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
    tg_mutex_lock(&lock);
    if (n <= TG_SCRATCH_CACHE && cached + n <= TG_SCRATCH_CACHE) {
        h->next = free_lists[h->cls];
        free_lists[h->cls] = h;
        cached += n;
        h = NULL;
    }
    tg_mutex_unlock(&lock);
    tg_aligned_free(h); /* not kept (NULL when kept) */
}

void tg_scratch_trim(void) {
    hdr *all[N_CLASSES];
    tg_mutex_lock(&lock);
    for (int c = 0; c < N_CLASSES; c++) {
        all[c] = free_lists[c];
        free_lists[c] = NULL;
    }
    cached = 0;
    tg_mutex_unlock(&lock);
    for (int c = 0; c < N_CLASSES; c++)
        while (all[c]) {
            hdr *n = all[c]->next;
            tg_aligned_free(all[c]);
            all[c] = n;
        }
}

size_t tg_scratch_cached_bytes(void) {
    tg_mutex_lock(&lock);
    size_t n = cached;
    tg_mutex_unlock(&lock);
    return n;
}
