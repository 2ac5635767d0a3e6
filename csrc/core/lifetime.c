/*
 * lifetime.c -- how tensors and tape entries die: reference counts,
 * deferred non-recursive destruction, and the count of saved references per
 * storage (safe aliasing, tg_set_save_hook) that dying entries give back.
 *
 * Releasing the last tensor of a long graph releases its entry, which
 * releases its inputs, and so on: a chain of 100,000 ops would recurse
 * 300,000 frames deep.  Instead, objects whose count drops to zero go on a
 * per-thread list that one loop empties: no recursion.
 *
 * This file stands with the tensor, below recording: destroying an entry
 * needs only its fields (inputs, saved tensors, callbacks), never an op.
 */
#include "internal.h"

#include <stdlib.h>

static TG_THREAD_LOCAL struct {
    uintptr_t *items; /* pointer | 1 for an entry, | 0 for a tensor */
    int64_t n, cap;
    bool draining;
} dead;

static void destroy_tensor(tg_tensor *t);
static void destroy_entry(tg_entry *e);

static void destroy_one(uintptr_t item) {
    if (item & 1)
        destroy_entry((tg_entry *)(item & ~(uintptr_t)1));
    else
        destroy_tensor((tg_tensor *)item);
}

static void bury(uintptr_t item) {
    if (dead.n == dead.cap) {
        int64_t cap = dead.cap ? dead.cap * 2 : 256;
        uintptr_t *p = realloc(dead.items, (size_t)cap * sizeof *p);
        if (!p) { /* cannot defer: destroy now (recursion only under OOM) */
            destroy_one(item);
            return;
        }
        dead.items = p;
        dead.cap = cap;
    }
    dead.items[dead.n++] = item;
    if (dead.draining) return;
    dead.draining = true;
    while (dead.n > 0) destroy_one(dead.items[--dead.n]);
    dead.draining = false;
    if (dead.cap > 4096) { /* do not keep a huge list around after a big graph */
        free(dead.items);
        dead.items = NULL;
        dead.cap = 0;
    }
}

void tg_tensor_retain(tg_tensor *t) {
    if (t) t->refcount++;
}

void tg_tensor_release(tg_tensor *t) {
    if (!t || --t->refcount > 0) return;
    bury((uintptr_t)t);
}

static void destroy_tensor(tg_tensor *t) {
    if (t->grad_fn && t->grad_fn->out == t) t->grad_fn->out = NULL; /* a weak pointer */
    if (t->user_release) t->user_release(t->user_data);
    tg_tensor_release(t->grad);
    tg_tensor_release(t->bw_pending);
    if (t->grad_fn) tg_entry_release(t->grad_fn);
    tg_storage_release(t->storage);
    free(t->name);
    free(t);
}


void tg_entry_retain(tg_entry *e) {
    if (e) e->refcount++;
}

void tg_entry_release(tg_entry *e) {
    if (!e || --e->refcount > 0) return;
    bury((uintptr_t)e | 1);
}

/* ---- safe aliasing: saved references per storage (tg_set_save_hook) ---- */

static tg_save_hook_fn save_hook;
static void *save_hook_ctx;

void tg_set_save_hook(tg_save_hook_fn fn, void *ctx) {
    save_hook = fn;
    save_hook_ctx = ctx;
}

static void saved_dec(tg_storage *s) {
    if (--s->saved_count == 0 && save_hook) save_hook(s, -1, save_hook_ctx);
}

/* s gains a saved reference.  Returns true (the reference given back at
 * once) when the hook asks for a private copy and `may_copy`. */
bool tg__saved_inc(tg_storage *s, bool may_copy) {
    if (s->saved_count++ == 0 && save_hook && save_hook(s, +1, save_hook_ctx) && may_copy) {
        saved_dec(s);
        return true;
    }
    return false;
}

static void free_saved(tg_entry *e) {
    for (int i = 0; i < e->n_saved; i++) {
        if (!e->saved[i]) continue;
        saved_dec(e->saved[i]->storage);
        tg_tensor_release(e->saved[i]);
        e->saved[i] = NULL;
    }
    if (e->out_storage) {
        saved_dec(e->out_storage);
        tg_storage_release(e->out_storage);
        e->out_storage = NULL;
    }
}

static void destroy_entry(tg_entry *e) {
    free_saved(e);
    for (int i = 0; i < e->n_inputs; i++) tg_tensor_release(e->inputs[i]);
    if (e->inputs != e->inputs_inline) free(e->inputs);
    tg_tensor_release(e->bw_pending);
    if (e->custom_release) e->custom_release(e->custom_ctx);
    if (e->user_release) e->user_release(e->user_data);
    free((char *)e->custom_name);
    free(e);
}

void tg__free_saved(tg_entry *e) { free_saved(e); }
