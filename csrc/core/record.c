/*
 * record.c -- recording: tape entries, what they save for backward (with
 * the storage version that detects a later in-place change), custom entries
 * (Python-defined ops), VJP overrides and recorders (tg.Tape).
 *
 * Every differentiable op that runs with grad mode on and an input that
 * requires grad records one entry: the op, its inputs (the edges of the
 * graph), what it saved for backward, a weak pointer to its output and a
 * sequence number.  The output holds the entry as its grad_fn; entries hold
 * their inputs; so the graph lives exactly as long as the tensors that can
 * reach it (no global tape grows in a loop).
 *
 * Recording stands below the ops: it knows an op only through its
 * tg_opdef (name, VJP pointer, text) and calls none.  Running the entries
 * backward is the engine's job (csrc/engine/backward.c); freeing them is
 * lifetime.c's.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ===================================================================== */
/* Entries                                                                */
/* ===================================================================== */

static tg_atomic_u64 next_seq = 1;

struct tg_recorder {
    tg_entry **items;
    int64_t n, cap;
    bool active;
    tg_recorder *parent;
};
static TG_THREAD_LOCAL tg_recorder *active_recorder;

const char *tg_entry_name(const tg_entry *e) { return tg__entry_name(e); }

tg_tensor *tg_entry_input(const tg_entry *e, int i) {
    return (i >= 0 && i < e->n_inputs) ? e->inputs[i] : NULL;
}

bool tg_entry_needs_grad(const tg_entry *e, int i) {
    if (i < 0 || i >= e->n_inputs) return false;
    tg_tensor *t = e->inputs[i];
    if (!t->requires_grad || !tg_dtype_is_float(t->dtype)) return false;
    if (!e->custom_vjp && e->op->diff_mask != 0xFFFFFFFFu && !(e->op->diff_mask & (1u << (i < 31 ? i : 31))))
        return false;
    return true;
}

tg_status tg__freed_error(const tg_entry *e) {
    return tg_error_set(TG_ERR_RUNTIME,
                        "backward: tape entry #%llu (%s) was already used by a backward pass and "
                        "its saved tensors were freed; to backward through the graph a second "
                        "time, call backward(retain_graph=True) the first time",
                        (unsigned long long)e->seq, tg_entry_name(e));
}

static tg_status modified_error(const tg_entry *e, const tg_tensor *t, uint64_t was, uint64_t now) {
    char who[160] = "";
    if (t->name) snprintf(who, sizeof who, " '%s'", t->name); /* e.g. 'fc1.weight' */
    return tg_error_set(TG_ERR_RUNTIME,
                        "backward: a tensor%s of shape %s saved by tape entry #%llu (%s) was "
                        "modified in place after it was saved (version %llu, now %llu); its "
                        "gradient would be wrong. Use an out-of-place operation, or .clone() "
                        "before modifying",
                        who, tg__shp(t), (unsigned long long)e->seq, tg_entry_name(e),
                        (unsigned long long)was, (unsigned long long)now);
}

tg_tensor *tg_entry_saved(tg_entry *e, int i) {
    if (e->freed) return tg__freed_error(e), NULL;
    if (i < 0 || i >= e->n_saved || !e->saved[i])
        return TG_FAIL(TG_ERR_RUNTIME, "backward: entry #%llu (%s) has no saved tensor %d",
                       (unsigned long long)e->seq, tg_entry_name(e), i);
    tg_tensor *t = e->saved[i];
    if (t->storage->version != e->saved_version[i])
        return modified_error(e, t, e->saved_version[i], t->storage->version), NULL;
    return t;
}

tg_tensor *tg_entry_output(tg_entry *e) {
    if (e->freed) return tg__freed_error(e), NULL;
    if (!e->out_storage)
        return TG_FAIL(TG_ERR_RUNTIME, "backward: entry #%llu (%s) did not save its output",
                       (unsigned long long)e->seq, tg_entry_name(e));
    if (e->out_storage->version != e->saved_version[TG_ENTRY_MAX_SAVED - 1] && e->n_saved < TG_ENTRY_MAX_SAVED) {
        /* the output's version is kept in the last slot (see tg__save_output) */
        tg_tensor tmp = {.ndim = e->out_ndim};
        memcpy(tmp.shape, e->out_shape, sizeof tmp.shape);
        return modified_error(e, &tmp, e->saved_version[TG_ENTRY_MAX_SAVED - 1],
                              e->out_storage->version), NULL;
    }
    tg_tensor *t = tg_tensor_from_storage(e->out_storage, e->out_dtype, e->out_ndim, e->out_shape,
                                          e->out_strides, e->out_offset);
    if (!t) return NULL;
    tg_entry_retain(e);
    t->grad_fn = e;
    t->requires_grad = true;
    return t;
}

bool tg__should_record(int n, tg_tensor *const *in) {
    if (!tg__grad_on()) return false;
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

static tg_entry *entry_new(const tg_opdef *op, int n, tg_tensor *const *in) {
    tg_entry *e = calloc(1, sizeof *e);
    if (!e) return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory recording a tape entry", op->name);
    e->refcount = 1;
    e->op = op;
    e->inputs = e->inputs_inline;
    if (n > TG_ENTRY_INLINE_INPUTS) {
        e->inputs = malloc((size_t)n * sizeof *e->inputs);
        if (!e->inputs) {
            free(e);
            return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory recording a tape entry", op->name);
        }
    }
    for (int i = 0; i < n; i++) {
        tg_tensor_retain(in[i]);
        e->inputs[i] = in[i];
    }
    e->n_inputs = n;
    e->seq = tg_atomic_fetch_add_relaxed_u64(&next_seq, 1);
    return e;
}

static tg_record_hook_fn record_hook; /* tg_set_record_hook */
static void *record_hook_ctx;

void tg_set_record_hook(tg_record_hook_fn fn, void *ctx) {
    record_hook = fn;
    record_hook_ctx = ctx;
}

/* Link e and its output, add e to the active recorders, then call the record
 * hook; its failure status is returned (out still owns e: the caller
 * releases out and fails). */
static tg_status attach(tg_entry *e, tg_tensor *out) {
    e->out = out;
    e->out_dtype = out->dtype;
    e->out_ndim = out->ndim;
    memcpy(e->out_shape, out->shape, sizeof e->out_shape);
    out->grad_fn = e; /* the output owns the entry's first reference */
    out->requires_grad = true;
    for (tg_recorder *r = active_recorder; r; r = r->parent) {
        if (r->n == r->cap) {
            int64_t cap = r->cap ? 2 * r->cap : 64;
            tg_entry **p = realloc(r->items, (size_t)cap * sizeof *p);
            if (!p) continue; /* the recorder misses this entry; the graph is intact */
            r->items = p;
            r->cap = cap;
        }
        tg_entry_retain(e);
        r->items[r->n++] = e;
    }
    return record_hook ? record_hook(e, record_hook_ctx) : TG_OK;
}

tg_entry *tg__record(const tg_opdef *op, int n, tg_tensor *const *in, tg_tensor *out) {
    tg_entry *e = entry_new(op, n, in);
    if (!e) return NULL;
    return attach(e, out) == TG_OK ? e : NULL;
}

tg_status tg__save(tg_entry *e, tg_tensor *t) {
    if (e->n_saved >= TG_ENTRY_MAX_SAVED - 1) /* last slot: the output's version */
        return tg_error_set(TG_ERR_RUNTIME, "%s: too many saved tensors", tg_entry_name(e));
    if (tg__saved_inc(t->storage, true)) {
        /* writable aliases the binding cannot protect: keep a snapshot */
        tg_tensor *c = tg__copy(t);
        if (!c) return tg_error_status();
        tg__saved_inc(c->storage, false);
        t = c;
    } else {
        tg_tensor_retain(t);
    }
    e->saved_version[e->n_saved] = t->storage->version;
    e->saved[e->n_saved++] = t;
    return TG_OK;
}

tg_status tg_entry_save(tg_entry *e, tg_tensor *t) {
    if (t->grad_fn == e) /* e -> t -> e: a reference cycle, never freed */
        return tg_error_set(TG_ERR_VALUE,
                            "entry_save: tape entry #%llu (%s) cannot save its own output; its "
                            "output is rebuilt from the entry (tg_entry_output)",
                            (unsigned long long)e->seq, tg_entry_name(e));
    return tg__save(e, t);
}

void tg__save_output(tg_entry *e, tg_tensor *out) {
    if (e->out_storage) return; /* saved once */
    tg_storage_retain(out->storage);
    tg__saved_inc(out->storage, false);
    e->out_storage = out->storage;
    memcpy(e->out_strides, out->strides, sizeof e->out_strides);
    e->out_offset = out->offset;
    e->saved_version[TG_ENTRY_MAX_SAVED - 1] = out->storage->version;
}

tg_tensor *tg__finish(const tg_opdef *op, int n, tg_tensor *const *in, tg_tensor *out,
                      tg_entry **e_out) {
    *e_out = NULL;
    if (!out) return NULL;
    if (!tg__should_record(n, in) || !op->backward) return out;
    bool any_float = false;
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->requires_grad && tg_dtype_is_float(in[i]->dtype)) any_float = true;
    if (!any_float || !tg_dtype_is_float(out->dtype)) return out;
    *e_out = tg__record(op, n, in, out);
    if (!*e_out) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

/* ---- custom entries (Python-defined ops) ------------------------------- */

tg_tensor *tg_custom_record(const char *name, int n, tg_tensor *const *in, tg_tensor *out,
                            tg_vjp_fn vjp, void *ctx, void (*release)(void *ctx)) {
    if (!out || !vjp || n < 0) {
        if (release) release(ctx);
        return TG_FAIL(TG_ERR_VALUE, "custom op '%s': output and vjp are required",
                       name ? name : "?");
    }
    if (!tg__should_record(n, in) || !tg_dtype_is_float(out->dtype)) {
        if (release) release(ctx);
        tg_tensor_retain(out);
        return out;
    }
    tg_tensor *res = tg_tensor_detach(out);
    char *nm = strdup(name ? name : "custom");
    tg_entry *e = (res && nm) ? entry_new(&tg_opdef_custom, n, in) : NULL;
    if (!e) {
        tg_tensor_release(res);
        free(nm);
        if (release) release(ctx);
        if (!tg_error_status()) tg_error_set(TG_ERR_MEMORY, "custom op: out of memory");
        return NULL;
    }
    e->custom_name = nm;
    e->custom_vjp = vjp;
    e->custom_ctx = ctx;
    e->custom_release = release;
    if (attach(e, res) != TG_OK) {
        tg_tensor_release(res); /* releases e, which releases ctx */
        return NULL;
    }
    return res;
}

/* ---- VJP overrides ------------------------------------------------------ */

static struct { tg_vjp_fn fn; void *ctx; } overrides[TG_OPID_COUNT];

tg_status tg_op_set_vjp_override(const tg_opdef *op, tg_vjp_fn fn, void *ctx) {
    if (!op || op->id < 0 || op->id >= TG_OPID_COUNT)
        return tg_error_set(TG_ERR_VALUE, "override_vjp: unknown op");
    if (fn && !op->backward)
        return tg_error_set(TG_ERR_VALUE, "override_vjp: op '%s' is not differentiable", op->name);
    overrides[op->id].fn = fn;
    overrides[op->id].ctx = fn ? ctx : NULL;
    return TG_OK;
}

tg_vjp_fn tg_op_get_vjp_override(const tg_opdef *op, void **ctx) {
    tg_vjp_fn fn = (op && op->id >= 0 && op->id < TG_OPID_COUNT) ? overrides[op->id].fn : NULL;
    if (ctx) *ctx = fn ? overrides[op->id].ctx : NULL;
    return fn;
}

tg_vjp_fn tg__vjp_for(const tg_entry *e, void **ctx) {
    if (e->custom_vjp) {
        *ctx = e->custom_ctx;
        return e->custom_vjp;
    }
    if (overrides[e->op->id].fn) {
        *ctx = overrides[e->op->id].ctx;
        return overrides[e->op->id].fn;
    }
    *ctx = NULL;
    return e->op->backward;
}

/* ---- recorders (tg.Tape) ------------------------------------------------ */

tg_recorder *tg_recorder_begin(void) {
    tg_recorder *r = calloc(1, sizeof *r);
    if (!r) return TG_FAIL(TG_ERR_MEMORY, "Tape: out of memory");
    r->active = true;
    r->parent = active_recorder;
    active_recorder = r;
    return r;
}

tg_status tg_recorder_end(tg_recorder *r) {
    if (!r->active) return TG_OK;
    if (active_recorder != r) {
        /* the chain of open recorders is per thread: r not on this thread's
         * chain was opened by another thread */
        tg_recorder *q = active_recorder;
        while (q && q != r) q = q->parent;
        if (!q)
            return tg_error_set(TG_ERR_RUNTIME,
                                "Tape: this tape was opened by another thread; a tape records "
                                "the ops of the thread that opened it and must be closed (its "
                                "`with` block left) in that thread");
        return tg_error_set(TG_ERR_RUNTIME,
                            "Tape: tapes must be closed in the reverse order they were opened");
    }
    active_recorder = r->parent;
    r->active = false;
    r->parent = NULL;
    return TG_OK;
}

int64_t tg_recorder_count(const tg_recorder *r) { return r->n; }

tg_entry *tg_recorder_entry(const tg_recorder *r, int64_t i) {
    return (i >= 0 && i < r->n) ? r->items[i] : NULL;
}

void tg_recorder_free(tg_recorder *r) {
    if (!r) return;
    if (r->active) {
        if (active_recorder == r) {
            active_recorder = r->parent;
        } else { /* unlink from the middle of the chain */
            for (tg_recorder *q = active_recorder; q; q = q->parent)
                if (q->parent == r) q->parent = r->parent;
        }
    }
    for (int64_t i = 0; i < r->n; i++) tg_entry_release(r->items[i]);
    free(r->items);
    free(r);
}

