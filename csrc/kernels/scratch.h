/*
 * scratch.h -- the kernels' temporary buffers (GEMM packing panels,
 * convolution columns and padded images, Winograd tiles), kept for reuse.
 *
 * A training step asks for the same few buffers of a few hundred KiB to a
 * few MiB at every call.  From malloc, blocks that size come and go through
 * mmap/munmap or the heap's trimming (glibc moves its thresholds as blocks
 * are freed), and every call then pays a page fault and a zeroed page per
 * 4 KiB: measured on the MNIST CNN's step (batch 32, one thread), some
 * processes ran 5.5-6.3 ms and others 7.5-8.5 ms for the same code, 4 % of
 * the profile in exc_page_fault (MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_
 * THRESHOLD_ set high made every process fast).  So freed scratch blocks
 * are kept in power-of-two size classes (at most TG_SCRATCH_CACHE bytes in
 * all; blocks above it are not kept) and handed out again.
 *
 * tg_scratch_alloc: a 64-byte aligned block of at least `bytes` bytes, NULL
 * when out of memory.  tg_scratch_free: give it back (NULL is ignored);
 * only for blocks from tg_scratch_alloc.  tg_scratch_trim: free every kept
 * block (tg.empty_cache() calls it); tg_scratch_cached_bytes: how many
 * bytes are kept.  Thread-safe.
 */
#ifndef TG_SCRATCH_H
#define TG_SCRATCH_H

#include <stddef.h>
#include <stdint.h>

#define TG_SCRATCH_CACHE ((size_t)64 << 20)

void *tg_scratch_alloc(size_t bytes);
/* tg_scratch_alloc of `bytes` rounded up to 64, plus 64 bytes to spare
 * after the end (vector loops may read a little past a buffer's last
 * element: conv.c's implicit packer): the convolution kernels' buffers. */
static inline void *tg_scratch_alloc_slack(size_t bytes) {
    return tg_scratch_alloc((bytes + 63) / 64 * 64 + 64);
}
/* The same for n floats. */
static inline float *tg_scratch_floats(int64_t n) {
    return (float *)tg_scratch_alloc_slack((size_t)n * sizeof(float));
}
void tg_scratch_free(void *p);
void tg_scratch_trim(void);
size_t tg_scratch_cached_bytes(void);

#endif
