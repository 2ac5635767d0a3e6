/*
 * storage.c -- the bytes under tensors: owned (from the allocator) or
 * borrowed from another library with a release callback (a NumPy array's
 * memory, shared without a copy).
 */
#include "internal.h"

#include <stdlib.h>

/* ===================================================================== */
/* Storage                                                                */
/* ===================================================================== */

tg_storage *tg_storage_new(size_t nbytes) {
    tg_storage *s = malloc(sizeof *s);
    if (!s) return TG_FAIL(TG_ERR_MEMORY, "storage: out of memory");
    s->data = tg__alloc(nbytes, "storage");
    if (!s->data) {
        free(s);
        return NULL;
    }
    s->refcount = 1;
    s->nbytes = nbytes;
    s->release = NULL;
    s->release_ctx = NULL;
    s->version = 0;
    s->readonly = false;
    s->saved_count = 0;
    s->user_data = NULL;
    s->user_release = NULL;
    return s;
}

/* The release of a borrowed storage without a callback: the memory is the
 * caller's, so nothing to do (a NULL release would mean "owned" and send the
 * caller's memory to the allocator's cache). */
static void borrowed_noop_release(void *data, void *ctx) {
    (void)data;
    (void)ctx;
}

tg_storage *tg_storage_borrow(void *data, size_t nbytes, tg_release_fn release, void *ctx,
                              bool readonly) {
    tg_storage *s = malloc(sizeof *s);
    if (!s) return TG_FAIL(TG_ERR_MEMORY, "storage: out of memory");
    s->refcount = 1;
    s->data = data;
    s->nbytes = nbytes;
    s->release = release ? release : borrowed_noop_release;
    s->release_ctx = ctx;
    s->version = 0;
    s->readonly = readonly;
    s->saved_count = 0;
    s->user_data = NULL;
    s->user_release = NULL;
    return s;
}

void tg_storage_retain(tg_storage *s) {
    if (s) s->refcount++;
}

void tg_storage_release(tg_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->user_release) s->user_release(s->user_data);
    if (s->release)
        s->release(s->data, s->release_ctx);
    else
        tg__free(s->data, s->nbytes);
    free(s);
}
