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

#define TG_SCRATCH_CACHE ((size_t)64 << 20)

void *tg_scratch_alloc(size_t bytes);
void tg_scratch_free(void *p);
void tg_scratch_trim(void);
size_t tg_scratch_cached_bytes(void);

#endif
