/*
 * tape.c -- tape entries, recording, and the stepping backward engine.
 *
 * Every differentiable op that runs with grad mode on and an input that
 * requires grad records one entry: the op, its inputs (the edges of the
 * graph), what it saved for backward, a weak pointer to its output and a
 * sequence number.  The output holds the entry as its grad_fn; entries hold
 * their inputs; so the graph lives exactly as long as the tensors that can
 * reach it (no global tape grows in a loop).
 *
 * Backward replays the entries reachable from the target in descending
 * sequence number.  Inputs of an op always exist before the op runs, so their
 * entries have smaller numbers: descending order is a topological order, and
 * no recursion is needed.  The engine steps one entry at a time; plain
 * backward is the loop over steps, so the inspector and backward can never
 * disagree.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ===================================================================== */
/* Grad mode                                                              */
/* ===================================================================== */

static _Thread_local bool grad_disabled; /* zero-initialised: grad mode on */

bool tg_grad_enabled(void) { return !grad_disabled; }

bool tg_set_grad_enabled(bool enabled) {
    bool prev = !grad_disabled;
    grad_disabled = !enabled;
    return prev;
}

/* ===================================================================== */
/* Entries                                                                */
/* ===================================================================== */

static uint64_t next_seq = 1;

struct tg_recorder {
    tg_entry **items;
    int64_t n, cap;
    bool active;
    tg_recorder *parent;
};
static _Thread_local tg_recorder *active_recorder;

void tg_entry_retain(tg_entry *e) {
    if (e) e->refcount++;
}

void tg__bury(uintptr_t item); /* tensor.c: deferred, non-recursive destruction */

void tg_entry_release(tg_entry *e) {
    if (!e || --e->refcount > 0) return;
    tg__bury((uintptr_t)e | 1);
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
static bool saved_inc(tg_storage *s, bool may_copy) {
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

void tg__destroy_entry(tg_entry *e) {
    free_saved(e);
    for (int i = 0; i < e->n_inputs; i++) tg_tensor_release(e->inputs[i]);
    if (e->inputs != e->inputs_inline) free(e->inputs);
    tg_tensor_release(e->bw_pending);
    if (e->custom_release) e->custom_release(e->custom_ctx);
    if (e->user_release) e->user_release(e->user_data);
    free((char *)e->custom_name);
    free(e);
}

void tg__entry_output_died(tg_entry *e, tg_tensor *t) {
    if (e->out == t) e->out = NULL;
}

const char *tg_entry_name(const tg_entry *e) {
    return e->custom_name ? e->custom_name : e->op->name;
}

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

static tg_status freed_error(const tg_entry *e) {
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
    if (e->freed) return freed_error(e), NULL;
    if (i < 0 || i >= e->n_saved || !e->saved[i])
        return TG_FAIL(TG_ERR_RUNTIME, "backward: entry #%llu (%s) has no saved tensor %d",
                       (unsigned long long)e->seq, tg_entry_name(e), i);
    tg_tensor *t = e->saved[i];
    if (t->storage->version != e->saved_version[i])
        return modified_error(e, t, e->saved_version[i], t->storage->version), NULL;
    return t;
}

tg_tensor *tg_entry_output(tg_entry *e) {
    if (e->freed) return freed_error(e), NULL;
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
    if (grad_disabled) return false;
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
    e->seq = __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED);
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
    if (saved_inc(t->storage, true)) {
        /* writable aliases the binding cannot protect: keep a snapshot */
        tg_tensor *c = tg__copy(t);
        if (!c) return tg_error_status();
        saved_inc(c->storage, false);
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
    saved_inc(out->storage, false);
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
    if (active_recorder != r)
        return tg_error_set(TG_ERR_RUNTIME,
                            "Tape: tapes must be closed in the reverse order they were opened");
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

/* ===================================================================== */
/* The backward engine                                                    */
/* ===================================================================== */

struct tg_stepper {
    tg_entry **order;  /* reachable entries, descending seq (each retained) */
    int64_t n, pos;
    int flags;
    uint64_t mark;
    tg_tensor **leaves; /* leaves reached (retained) */
    int64_t n_leaves;
    int n_capture;
    tg_tensor **capture; /* retained */
    tg_tensor **results; /* owned */
    tg_step_hook_fn hook;
    void *hook_ctx;
    /* the last step, kept alive until the next one */
    tg_step step;
    tg_tensor *step_grad_out;
    tg_tensor **step_grad_in;
    uint32_t *step_mask;
    int *step_ndim;
    int step_cap;
    bool failed;
};

static uint64_t backward_mark;
static tg_step_hook_fn global_hook;
static void *global_hook_ctx;

void tg_set_global_step_hook(tg_step_hook_fn fn, void *ctx) {
    global_hook = fn;
    global_hook_ctx = ctx;
}

/* *slot += g, out of place (so that a gradient tensor shared by two inputs is
 * never modified); recorded when create_graph is on. */
static tg_status accumulate(tg_tensor **slot, tg_tensor *g) {
    if (!*slot) {
        tg_tensor_retain(g);
        *slot = g;
        return TG_OK;
    }
    tg_tensor *s = tg_add(*slot, g);
    if (!s) return tg_error_status();
    tg_tensor_release(*slot);
    *slot = s;
    return TG_OK;
}

static int cmp_seq_desc(const void *a, const void *b) {
    uint64_t x = (*(tg_entry *const *)a)->seq, y = (*(tg_entry *const *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int capture_index(const tg_stepper *bw, const tg_tensor *t) {
    for (int j = 0; j < bw->n_capture; j++)
        if (bw->capture[j] == t) return j;
    return -1;
}

static int push(void ***arr, int64_t *n, int64_t *cap, void *p) {
    if (*n == *cap) {
        int64_t c = *cap ? 2 * *cap : 64;
        void **q = realloc(*arr, (size_t)c * sizeof *q);
        if (!q) return -1;
        *arr = q;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* Another backward pass that has not ended owns this node's bookkeeping
 * (bw_mark/bw_pending/bw_deps live on the tensors and entries): running a
 * second one over it would silently lose gradients, so it is refused. */
static tg_status busy_error(const tg_tensor *t, const tg_entry *e) {
    char what[160];
    if (e)
        snprintf(what, sizeof what, "tape entry #%llu (%s)", (unsigned long long)e->seq,
                 tg_entry_name(e));
    else
        snprintf(what, sizeof what, "the leaf tensor of shape %s", tg__shp(t));
    return tg_error_set(TG_ERR_RUNTIME,
                        "backward: %s is part of another backward pass that has not finished "
                        "(one running on another thread, a step-through that was not finished, or "
                        "a backward called from a hook or VJP of that pass); a graph can be used "
                        "by one backward pass at a time",
                        what);
}

tg_stepper *tg_backward_begin(int n_out, tg_tensor *const *outs, tg_tensor *const *seeds,
                               int flags, int n_capture, tg_tensor *const *capture) {
    tg_stepper *bw = calloc(1, sizeof *bw);
    if (!bw) return TG_FAIL(TG_ERR_MEMORY, "backward: out of memory");
    bw->flags = flags;
    bw->mark = __atomic_add_fetch(&backward_mark, 1, __ATOMIC_RELAXED);
    tg_entry **stack = NULL;
    int64_t ns = 0, cs = 0, cap_order = 0, cap_leaves = 0;

    if (n_capture > 0) {
        bw->capture = calloc((size_t)n_capture, sizeof *bw->capture);
        bw->results = calloc((size_t)n_capture, sizeof *bw->results);
        if (!bw->capture || !bw->results) goto oom;
        bw->n_capture = n_capture;
        for (int j = 0; j < n_capture; j++) {
            tg_tensor_retain(capture[j]);
            bw->capture[j] = capture[j];
        }
    }

    /* 1. check the outputs and seeds */
    for (int k = 0; k < n_out; k++) {
        tg_tensor *o = outs[k];
        if (!o->requires_grad) {
            tg_error_set(TG_ERR_RUNTIME,
                         "backward: the tensor of shape %s does not require grad and has no "
                         "grad_fn: nothing on the tape leads to it (was it computed under "
                         "no_grad, or from tensors without requires_grad=True?)",
                         tg__shp(o));
            goto fail;
        }
        tg_tensor *s = seeds ? seeds[k] : NULL;
        if (!s && o->numel != 1) {
            tg_error_set(TG_ERR_RUNTIME,
                         "backward: grad can be implicitly created only for a one-element "
                         "output; this output has shape %s, so pass a gradient of that shape "
                         "(e.g. t.backward(tg.ones_like(t)))",
                         tg__shp(o));
            goto fail;
        }
        if (s && !tg__same_shape(s->ndim, s->shape, o->ndim, o->shape)) {
            tg_error_set(TG_ERR_VALUE,
                         "backward: the gradient has shape %s but the output has shape %s",
                         tg__shp(s), tg__shp(o));
            goto fail;
        }
    }

    /* 2. collect the reachable entries and leaves with an explicit stack */
    /* A node gets this pass's mark when it is first reached and goes on the
     * stack (entries) or the leaf list (leaves, retained); every marked node
     * is unmarked again by tg_backward_end or on failure below. */
    for (int k = 0; k < n_out; k++) {
        tg_tensor *o = outs[k];
        if (o->grad_fn && o->grad_fn->bw_mark != bw->mark) {
            if (o->grad_fn->bw_mark) {
                busy_error(o, o->grad_fn);
                goto fail;
            }
            if (push((void ***)&stack, &ns, &cs, o->grad_fn)) goto oom;
            o->grad_fn->bw_mark = bw->mark;
        } else if (!o->grad_fn && o->bw_mark != bw->mark) {
            if (o->bw_mark) {
                busy_error(o, NULL);
                goto fail;
            }
            if (push((void ***)&bw->leaves, &bw->n_leaves, &cap_leaves, o)) goto oom;
            tg_tensor_retain(o);
            o->bw_mark = bw->mark;
            o->bw_deps = 0;
            tg_tensor_release(o->bw_pending);
            o->bw_pending = NULL;
        }
    }
    while (ns > 0) {
        tg_entry *e = stack[ns - 1];
        if (e->freed) {
            freed_error(e);
            goto fail;
        }
        if (push((void ***)&bw->order, &bw->n, &cap_order, e)) goto oom;
        ns--;
        tg_entry_retain(e);
        tg_tensor_release(e->bw_pending);
        e->bw_pending = NULL;
        for (int i = 0; i < e->n_inputs; i++) {
            if (!tg_entry_needs_grad(e, i)) continue;
            tg_tensor *t = e->inputs[i];
            if (t->grad_fn) {
                if (t->grad_fn->bw_mark != bw->mark) {
                    if (t->grad_fn->bw_mark) {
                        busy_error(t, t->grad_fn);
                        goto fail;
                    }
                    if (push((void ***)&stack, &ns, &cs, t->grad_fn)) goto oom;
                    t->grad_fn->bw_mark = bw->mark;
                }
            } else {
                if (t->bw_mark != bw->mark) {
                    if (t->bw_mark) {
                        busy_error(t, NULL);
                        goto fail;
                    }
                    if (push((void ***)&bw->leaves, &bw->n_leaves, &cap_leaves, t)) goto oom;
                    tg_tensor_retain(t);
                    t->bw_mark = bw->mark;
                    t->bw_deps = 0;
                    tg_tensor_release(t->bw_pending);
                    t->bw_pending = NULL;
                }
                t->bw_deps++;
            }
        }
    }
    free(stack);
    stack = NULL;
    if (bw->n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(bw->order, (size_t)bw->n, sizeof *bw->order, cmp_seq_desc);

    /* 3. seed the outputs */
    for (int k = 0; k < n_out; k++) {
        tg_tensor *o = outs[k];
        tg_tensor *s = seeds ? seeds[k] : NULL;
        tg_tensor *seed = s ? tg__as_dtype(s, o->dtype) : tg_tensor_ones(o->ndim, o->shape, o->dtype);
        if (!seed) goto fail;
        tg_status st = accumulate(o->grad_fn ? &o->grad_fn->bw_pending : &o->bw_pending, seed);
        tg_tensor_release(seed);
        if (st) goto fail;
    }
    return bw;

oom:
    tg_error_set(TG_ERR_MEMORY, "backward: out of memory collecting the graph");
fail:
    for (int64_t i = 0; i < ns; i++) stack[i]->bw_mark = 0; /* marked, not yet in order */
    free(stack);
    bw->failed = true;
    tg_backward_end(bw);
    return NULL;
}

/* Leaf t got its last contribution: run its hook, then store the gradient. */
static tg_status finalize_leaf(tg_stepper *bw, tg_tensor *t) {
    tg_tensor *g = t->bw_pending;
    t->bw_pending = NULL;
    if (!g) return TG_OK;
    tg_status st = TG_OK;
    if (t->grad_hook) {
        tg_tensor *rep = NULL;
        st = t->grad_hook(t, g, &rep, t->grad_hook_ctx);
        if (st == TG_OK && rep) {
            tg_tensor_release(g);
            g = rep;
        } else if (rep) {
            tg_tensor_release(rep);
        }
        if (st) goto done;
    }
    int j = capture_index(bw, t);
    if (j >= 0) {
        st = accumulate(&bw->results[j], g);
        goto done;
    }
    if (bw->flags & TG_NO_ACCUMULATE) goto done;
    /* with create_graph a gradient on the graph is stored as is; a constant
     * one (no graph) gets a private copy below, never an alias */
    if ((bw->flags & TG_CREATE_GRAPH) && (t->grad || g->requires_grad)) {
        st = accumulate(&t->grad, g);
    } else if (!t->grad) {
        /* keep a private contiguous copy, never an alias of another gradient */
        bool own = g->refcount == 1 && g->storage->refcount == 1 && tg_tensor_is_contiguous(g) &&
                   !g->grad_fn && g->dtype == t->dtype;
        if (own) {
            tg_tensor_retain(g);
            t->grad = g;
        } else {
            t->grad = tg__as_dtype(g, t->dtype);
            if (t->grad == g) { /* as_dtype returned g itself: copy */
                tg_tensor_release(t->grad);
                t->grad = tg__copy(g);
            }
            if (!t->grad) st = tg_error_status();
        }
    } else if (tg_tensor_is_contiguous(t->grad) && !t->grad->grad_fn &&
               t->grad->dtype == g->dtype && !t->grad->storage->readonly &&
               tg_tensor_is_contiguous(g)) {
        tg_tensor_axpy_(t->grad, 1.0, g); /* in place, like PyTorch */
    } else {
        st = accumulate(&t->grad, g);
    }
done:
    tg_tensor_release(g);
    return st;
}

static void clear_step(tg_stepper *bw) {
    tg_tensor_release(bw->step_grad_out);
    bw->step_grad_out = NULL;
    for (int i = 0; i < bw->step_cap; i++) {
        tg_tensor_release(bw->step_grad_in[i]);
        bw->step_grad_in[i] = NULL;
    }
}

static tg_status vjp_shape_error(const tg_entry *e, int i, const tg_tensor *g, const char *why) {
    const tg_tensor *x = e->inputs[i];
    return tg_error_set(TG_ERR_VALUE,
                        "backward: the VJP of '%s' (tape entry #%llu) returned a gradient of %s %s "
                        "%s for input %d, expected %s %s (the input's)",
                        tg_entry_name(e), (unsigned long long)e->seq, why,
                        why[0] == 's' ? tg__shp(g) : tg_dtype_name(g->dtype),
                        why[0] == 's' ? tg_dtype_name(g->dtype) : tg__shp(g), i, why,
                        why[0] == 's' ? tg__shp(x) : tg_dtype_name(x->dtype));
}

int tg_backward_step(tg_stepper *bw) {
    if (bw->failed) { /* every failing call sets the error, this one too */
        tg_error_set(TG_ERR_RUNTIME,
                     "backward: this backward pass already failed; no step can run (end it)");
        return -1;
    }
    if (bw->pos >= bw->n) return 0;
    tg_entry *e = bw->order[bw->pos];
    int n_in = e->n_inputs;
    clear_step(bw);
    if (n_in > bw->step_cap) {
        int c = n_in;
        tg_tensor **gi = realloc(bw->step_grad_in, (size_t)c * sizeof *gi);
        if (gi) bw->step_grad_in = gi;
        uint32_t *m = gi ? realloc(bw->step_mask, (size_t)c * sizeof *m) : NULL;
        if (m) bw->step_mask = m;
        int *nd = m ? realloc(bw->step_ndim, (size_t)c * sizeof *nd) : NULL;
        if (!nd) {
            tg_error_set(TG_ERR_MEMORY, "backward: out of memory");
            bw->failed = true;
            return -1;
        }
        bw->step_ndim = nd;
        for (int i = bw->step_cap; i < c; i++) bw->step_grad_in[i] = NULL;
        bw->step_cap = c;
    }
    for (int i = 0; i < n_in; i++) {
        bw->step_mask[i] = 0;
        bw->step_ndim[i] = 0;
    }

    tg_status st = TG_OK;
    tg_tensor *gout = e->bw_pending;
    e->bw_pending = NULL;
    bool create = (bw->flags & TG_CREATE_GRAPH) != 0;

    if (gout && e->out && e->out->grad_hook) {
        tg_tensor *rep = NULL;
        st = e->out->grad_hook(e->out, gout, &rep, e->out->grad_hook_ctx);
        if (rep && st == TG_OK) {
            tg_tensor_release(gout);
            gout = rep;
        } else if (rep) {
            tg_tensor_release(rep);
        }
        if (st) goto out;
    }
    if (gout) {
        int j = -1;
        for (int k = 0; k < bw->n_capture; k++)
            if (bw->capture[k]->grad_fn == e) j = k;
        if (j >= 0 && (st = accumulate(&bw->results[j], gout))) goto out;
        if (e->out && e->out->retains_grad && !(bw->flags & TG_NO_ACCUMULATE)) {
            if (create || !e->out->grad) {
                tg_tensor *g = create ? gout : tg__copy(gout);
                if (!g || (st = accumulate(&e->out->grad, g))) {
                    if (!create) tg_tensor_release(g);
                    if (!st) st = tg_error_status();
                    goto out;
                }
                if (!create) tg_tensor_release(g);
            } else if ((st = accumulate(&e->out->grad, gout))) {
                goto out;
            }
        }
    }

    if (gout) {
        void *ctx;
        tg_vjp_fn vjp = tg__vjp_for(e, &ctx);
        bool prev = tg_set_grad_enabled(create);
        st = vjp ? vjp(e, gout, bw->step_grad_in, ctx)
                 : tg_error_set(TG_ERR_RUNTIME, "backward: op '%s' has no VJP", tg_entry_name(e));
        tg_set_grad_enabled(prev);
        if (st) {
            if (!tg_error_message()[0]) tg_error_set(st, "backward: the VJP of '%s' failed", tg_entry_name(e));
            goto out;
        }
        /* check each gradient and undo broadcasting in one place */
        for (int i = 0; i < n_in; i++) {
            tg_tensor *g = bw->step_grad_in[i];
            if (!g) continue;
            if (!tg_entry_needs_grad(e, i)) {
                tg_tensor_release(g);
                bw->step_grad_in[i] = NULL;
                continue;
            }
            tg_tensor *x = e->inputs[i];
            if (g->dtype != x->dtype && tg_dtype_is_float(g->dtype)) {
                /* a promoted op (f32 * f64 -> f64): the gradient goes back to
                 * the input's dtype, as in PyTorch (differentiable cast) */
                bool prev1 = tg_set_grad_enabled(create);
                tg_tensor *c = tg_cast(g, x->dtype);
                tg_set_grad_enabled(prev1);
                if (!c) {
                    st = tg_error_status();
                    goto out;
                }
                tg_tensor_release(g);
                bw->step_grad_in[i] = g = c;
            }
            if (g->dtype != x->dtype) {
                st = vjp_shape_error(e, i, g, "dtype");
                goto out;
            }
            bw->step_ndim[i] = g->ndim;
            if (!tg__same_shape(g->ndim, g->shape, x->ndim, x->shape)) {
                /* g must be x broadcast to g's shape */
                bool ok = g->ndim >= x->ndim;
                uint32_t mask = 0;
                for (int d = 0; ok && d < g->ndim; d++) {
                    int dx = x->ndim - g->ndim + d;
                    if (dx < 0) mask |= 1u << d;
                    else if (x->shape[dx] == 1 && g->shape[d] != 1) mask |= 1u << d;
                    else if (x->shape[dx] != g->shape[d]) ok = false;
                }
                if (!ok) {
                    st = vjp_shape_error(e, i, g, "shape");
                    goto out;
                }
                bool prev2 = tg_set_grad_enabled(create);
                tg_tensor *r = tg_sum_to_shape(g, x->ndim, x->shape);
                tg_set_grad_enabled(prev2);
                if (!r) {
                    st = tg_error_status();
                    goto out;
                }
                tg_tensor_release(g);
                bw->step_grad_in[i] = r;
                bw->step_mask[i] = mask;
            }
        }
        /* distribute */
        for (int i = 0; i < n_in; i++) {
            tg_tensor *g = bw->step_grad_in[i];
            if (!g) continue;
            tg_tensor *x = e->inputs[i];
            bool prev3 = tg_set_grad_enabled(create);
            if (x->grad_fn) {
                if (x->grad_fn->bw_mark == bw->mark) st = accumulate(&x->grad_fn->bw_pending, g);
            } else if (x->bw_mark == bw->mark) {
                st = accumulate(&x->bw_pending, g);
                if (!st && --x->bw_deps == 0) st = finalize_leaf(bw, x);
            }
            tg_set_grad_enabled(prev3);
            if (st) goto out;
        }
    } else {
        /* no gradient reached this entry: its leaves lose a dependency */
        for (int i = 0; i < n_in; i++) {
            tg_tensor *x = e->inputs[i];
            if (tg_entry_needs_grad(e, i) && !x->grad_fn && x->bw_mark == bw->mark &&
                --x->bw_deps == 0 && (st = finalize_leaf(bw, x)))
                goto out;
        }
    }

    /* create_graph implies retain_graph (PyTorch's default): the recorded
     * gradient graph goes through these entries again (tg_entry_output). */
    if (!(bw->flags & (TG_RETAIN_GRAPH | TG_CREATE_GRAPH))) {
        free_saved(e);
        e->freed = true;
    }
    bw->step_grad_out = gout;
    gout = NULL;
    bw->step.entry = e;
    bw->step.index = bw->pos;
    bw->step.grad_out = bw->step_grad_out;
    bw->step.n_inputs = n_in;
    bw->step.grad_in = bw->step_grad_in;
    bw->step.summed_mask = bw->step_mask;
    bw->step.summed_ndim = bw->step_ndim;
    bw->pos++;
    if (global_hook && (st = global_hook(bw, &bw->step, global_hook_ctx))) goto out;
    if (bw->hook && (st = bw->hook(bw, &bw->step, bw->hook_ctx))) goto out;
    return 1;
out:
    tg_tensor_release(gout);
    bw->failed = true;
    if (!st) st = TG_ERR_RUNTIME;
    return -1;
}

int64_t tg_backward_size(const tg_stepper *bw) { return bw->n; }
int64_t tg_backward_position(const tg_stepper *bw) { return bw->pos; }

tg_entry *tg_backward_entry(const tg_stepper *bw, int64_t i) {
    return (i >= 0 && i < bw->n) ? bw->order[i] : NULL;
}

const tg_step *tg_backward_last_step(const tg_stepper *bw) {
    return bw->pos > 0 && bw->step.entry ? &bw->step : NULL;
}

tg_tensor *tg_backward_pending(const tg_stepper *bw, int64_t i) {
    return (i >= 0 && i < bw->n) ? bw->order[i]->bw_pending : NULL;
}

tg_tensor *tg_backward_result(tg_stepper *bw, int j) {
    if (j < 0 || j >= bw->n_capture || !bw->results[j]) return NULL;
    tg_tensor_retain(bw->results[j]);
    return bw->results[j];
}

void tg_backward_set_hook(tg_stepper *bw, tg_step_hook_fn fn, void *ctx) {
    bw->hook = fn;
    bw->hook_ctx = ctx;
}

/* Leaves whose gradient is still pending when every step has run (a leaf
 * that is itself an output) get it now. */
static tg_status flush_leaves(tg_stepper *bw) {
    bool prev = tg_set_grad_enabled((bw->flags & TG_CREATE_GRAPH) != 0);
    tg_status st = TG_OK;
    for (int64_t i = 0; i < bw->n_leaves && !st; i++)
        if (bw->leaves[i]->bw_pending) st = finalize_leaf(bw, bw->leaves[i]);
    tg_set_grad_enabled(prev);
    return st;
}

void tg_backward_end(tg_stepper *bw) {
    if (!bw) return;
    if (!bw->failed && bw->pos == bw->n && flush_leaves(bw)) bw->failed = true;
    for (int64_t i = 0; i < bw->n_leaves; i++) {
        tg_tensor *t = bw->leaves[i];
        tg_tensor_release(t->bw_pending);
        t->bw_pending = NULL;
        t->bw_mark = 0;
        tg_tensor_release(t);
    }
    for (int64_t i = 0; i < bw->n; i++) {
        tg_entry *e = bw->order[i];
        tg_tensor_release(e->bw_pending);
        e->bw_pending = NULL;
        e->bw_mark = 0;
        tg_entry_release(e);
    }
    clear_step(bw);
    for (int j = 0; j < bw->n_capture; j++) {
        tg_tensor_release(bw->capture[j]);
        tg_tensor_release(bw->results[j]);
    }
    free(bw->capture);
    free(bw->results);
    free(bw->order);
    free(bw->leaves);
    free(bw->step_grad_in);
    free(bw->step_mask);
    free(bw->step_ndim);
    free(bw);
}

/* Run every step, then flush; returns the status. */
static tg_status run_all(tg_stepper *bw) {
    int r;
    while ((r = tg_backward_step(bw)) == 1) {
    }
    if (r < 0) return tg_error_status() ? tg_error_status() : TG_ERR_RUNTIME;
    tg_status st = flush_leaves(bw);
    if (st) bw->failed = true;
    return st;
}

tg_status tg_backward(tg_tensor *target, tg_tensor *seed, int flags) {
    tg_stepper *bw = tg_backward_begin(1, &target, seed ? &seed : NULL,
                                        flags & ~TG_NO_ACCUMULATE, 0, NULL);
    if (!bw) return tg_error_status();
    tg_status st = run_all(bw);
    tg_backward_end(bw);
    return st;
}

tg_status tg_grad(int n_out, tg_tensor *const *outputs, tg_tensor *const *seeds, int n_in,
                  tg_tensor *const *inputs, int flags, tg_tensor **results) {
    for (int j = 0; j < n_in; j++) results[j] = NULL;
    for (int j = 0; j < n_in; j++)
        if (!inputs[j]->requires_grad)
            return tg_error_set(TG_ERR_RUNTIME,
                                "grad: input %d (shape %s) does not require grad", j,
                                tg__shp(inputs[j]));
    tg_stepper *bw = tg_backward_begin(n_out, outputs, seeds, flags | TG_NO_ACCUMULATE, n_in,
                                        inputs);
    if (!bw) return tg_error_status();
    tg_status st = run_all(bw);
    if (st) {
        tg_backward_end(bw);
        return st;
    }
    for (int j = 0; j < n_in && !st; j++) {
        results[j] = tg_backward_result(bw, j);
        if (!results[j]) results[j] = tg__zeros_like(inputs[j]);
        if (!results[j]) st = tg_error_status();
    }
    tg_backward_end(bw);
    /* a result that is not on a graph is the caller's own contiguous tensor:
     * never a broadcast view, nor an alias of another result or of a seed */
    for (int j = 0; j < n_in && !st; j++) {
        tg_tensor *g = results[j];
        if (g->requires_grad || g->grad_fn) continue;
        if (g->refcount == 1 && g->storage->refcount == 1 && tg_tensor_is_contiguous(g)) continue;
        results[j] = tg__copy(g);
        tg_tensor_release(g);
        if (!results[j]) st = tg_error_status();
    }
    if (st)
        for (int j = 0; j < n_in; j++) {
            tg_tensor_release(results[j]);
            results[j] = NULL;
        }
    return st;
}
