/*
 * backward.c -- the stepping backward engine: begin (collect and order the
 * entries reachable from the outputs), step (run one entry's VJP, undo
 * broadcasting, accumulate), end.  Plain backward and tg_grad are the loop
 * over steps, so the inspector and backward can never disagree.
 *
 * Backward replays the entries in descending sequence number.  Inputs of an
 * op always exist before the op runs, so their entries have smaller numbers:
 * descending order is a topological order, and no recursion is needed.
 *
 * The engine stands ABOVE the ops: a VJP is written with ops, and
 * accumulating (add), casting a promoted gradient back (cast) and undoing
 * broadcasting (sum_to_shape) are ops too -- that is what makes
 * create_graph=True give gradients of gradients.  Nothing in core/ or ops/
 * calls the engine.
 */
#include "../core/internal.h"

#include <stdio.h>
#include <stdlib.h>

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
    bool private_steps; /* TG_PRIVATE_STEPS (tg_backward/tg_grad, a profiler): no caller reads the step records' gradients */
};

static tg_atomic_u64 backward_mark;
static bool direct_enabled = true; /* tg_set_direct_backward */

bool tg_set_direct_backward(bool on) {
    bool prev = direct_enabled;
    direct_enabled = on;
    return prev;
}
static tg_step_hook_fn global_hook;
static void *global_hook_ctx;

void tg_set_global_step_hook(tg_step_hook_fn fn, void *ctx) {
    global_hook = fn;
    global_hook_ctx = ctx;
}

/* Whether *slot += g may be done in place: grad mode off (nothing is
 * recorded), and the slot's tensor is a float gradient only the engine can
 * see (one reference, its own storage of one reference that owns its bytes,
 * nothing saved over it, no binding data, no graph), of g's shape and dtype,
 * dense and not empty (g may have any strides: tg_tensor_axpy_ reads any
 * layout, the same accumulator the direct route of views writes with).  A gradient that is also another input's, or that a VJP
 * returned as a view, or that the inspector or a hook holds, has a second
 * reference and is summed out of place. */
static bool accumulate_in_place(const tg_tensor *s, const tg_tensor *g) {
    const tg_storage *st = s->storage;
    return !tg_grad_enabled() && s->refcount == 1 && st->refcount == 1 && !st->release &&
           !st->readonly && st->saved_count == 0 && !st->user_data && !s->user_data && !s->grad_fn &&
           !s->requires_grad && s->dtype == g->dtype && tg_dtype_is_float(s->dtype) &&
           tg__same_shape(s->ndim, s->shape, g->ndim, g->shape) && tg_tensor_is_contiguous(s) &&
           s->offset == 0 && s->numel > 0;
}

/* *slot += g: out of place (so that a gradient tensor shared by two inputs is
 * never modified), recorded when create_graph is on; in place when no one
 * else can see the slot's tensor (accumulate_in_place): the same bits as
 * the add, without a new buffer per contribution (a tensor used by several
 * ops, the q, k, v slices of one projection, a residual stream). */
static tg_status accumulate(tg_tensor **slot, tg_tensor *g) {
    if (!*slot) {
        tg_tensor_retain(g);
        *slot = g;
        return TG_OK;
    }
    if (accumulate_in_place(*slot, g)) return tg_tensor_axpy_(*slot, 1.0, g);
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
    bw->private_steps = (flags & TG_PRIVATE_STEPS) != 0;
    bw->mark = tg_atomic_fetch_add_relaxed_u64(&backward_mark, 1) + 1;
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
            tg__freed_error(e);
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
/* Whether anyone can see the last step's record (its grad_in tensors): a
 * stepper its caller drives (BackwardStepper), or a step hook. */
static bool steps_seen(const tg_stepper *bw) { return !bw->private_steps || global_hook || bw->hook; }

/* t's gradient is complete: run its hook, then store it in .grad (or in the
 * tg_grad results).  record_refs: references to the pending sum held by the
 * step record that no one can see (1 when the sum is the step's own
 * grad_in, 0 otherwise): such a sum may become .grad itself. */
static tg_status finalize_leaf(tg_stepper *bw, tg_tensor *t, int record_refs) {
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
        bool own = g->refcount == 1 + record_refs && g->storage->refcount == 1 &&
                   tg_tensor_is_contiguous(g) && !g->grad_fn && g->dtype == t->dtype;
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
               t->grad->dtype == g->dtype && !t->grad->storage->readonly) {
        st = tg_tensor_axpy_(t->grad, 1.0, g); /* in place, like PyTorch */
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

/* ---- the helpers of one step, in the order the step calls them ---------- */

/* Room for n_in input gradients in the step record, all cleared. */
static tg_status prepare_step(tg_stepper *bw, int n_in) {
    clear_step(bw);
    if (n_in > bw->step_cap) {
        int c = n_in;
        tg_tensor **gi = realloc(bw->step_grad_in, (size_t)c * sizeof *gi);
        if (gi) bw->step_grad_in = gi;
        uint32_t *m = gi ? realloc(bw->step_mask, (size_t)c * sizeof *m) : NULL;
        if (m) bw->step_mask = m;
        int *nd = m ? realloc(bw->step_ndim, (size_t)c * sizeof *nd) : NULL;
        if (!nd) return tg_error_set(TG_ERR_MEMORY, "backward: out of memory");
        bw->step_ndim = nd;
        for (int i = bw->step_cap; i < c; i++) bw->step_grad_in[i] = NULL;
        bw->step_cap = c;
    }
    for (int i = 0; i < n_in; i++) {
        bw->step_mask[i] = 0;
        bw->step_ndim[i] = 0;
    }
    return TG_OK;
}

/* The output's gradient hook (register_hook on a non-leaf) may replace the
 * gradient that reached the entry. */
static tg_status run_output_hook(tg_entry *e, tg_tensor **gout) {
    if (!e->out || !e->out->grad_hook) return TG_OK;
    tg_tensor *rep = NULL;
    tg_status st = e->out->grad_hook(e->out, *gout, &rep, e->out->grad_hook_ctx);
    if (rep && st == TG_OK) {
        tg_tensor_release(*gout);
        *gout = rep;
    } else if (rep) {
        tg_tensor_release(rep);
    }
    return st;
}

/* Where the gradient of the entry's OUTPUT is wanted as a result: tg_grad
 * asked for it (capture), or the output called retain_grad(). */
static tg_status capture_output_grad(tg_stepper *bw, tg_entry *e, tg_tensor *gout) {
    bool create = (bw->flags & TG_CREATE_GRAPH) != 0;
    tg_status st;
    int j = -1;
    for (int k = 0; k < bw->n_capture; k++)
        if (bw->capture[k]->grad_fn == e) j = k;
    if (j >= 0 && (st = accumulate(&bw->results[j], gout))) return st;
    if (!e->out || !e->out->retains_grad || (bw->flags & TG_NO_ACCUMULATE)) return TG_OK;
    if (!create && e->out->grad) return accumulate(&e->out->grad, gout);
    tg_tensor *g = create ? gout : tg__copy(gout); /* a constant grad: a private copy */
    if (!g) return tg_error_status();
    st = accumulate(&e->out->grad, g);
    if (!create) tg_tensor_release(g);
    return st;
}

/* Whether the op's own VJP may write its result into gout
 * (tg__vjp_writable_grad): first order, no one sees the step records
 * (a backward()/grad() run whole with no step hook, or a stepper started
 * private), and gout is a dense float buffer whose only reference is the
 * engine's -- no hook, retain_grad, capture or other input kept it, nothing
 * saved it, no view or NumPy array shares its storage.  Then relu's
 * backward writes g * [x > 0] over g: no new 1.6 MB (batch 32) to 6.4 MB
 * (batch 128) buffer per ReLU of the CNN step, half the memory traffic. */
static bool grad_writable(const tg_stepper *bw, const tg_entry *e, tg_vjp_fn vjp, const tg_tensor *g) {
    const tg_storage *st = g->storage;
    return !(bw->flags & TG_CREATE_GRAPH) && !steps_seen(bw) && e->op && !e->custom_vjp &&
           vjp == e->op->backward && g->refcount == 1 && st->refcount == 1 && !st->release &&
           !st->readonly && st->saved_count == 0 && !st->user_data && !g->user_data && !g->grad_fn &&
           !g->requires_grad && tg_dtype_is_float(g->dtype) && tg_tensor_is_contiguous(g) &&
           g->offset == 0 && g->numel > 0;
}

/* The VJP (an override, a Python-defined op's, or the op's own) fills
 * bw->step_grad_in; recorded on the tape when create_graph is on. */
static tg_status call_vjp(tg_stepper *bw, tg_entry *e, tg_tensor *gout) {
    void *ctx;
    tg_vjp_fn vjp = tg__vjp_for(e, &ctx);
    bool prev = tg_set_grad_enabled((bw->flags & TG_CREATE_GRAPH) != 0);
    const tg_tensor *prev_w = tg__vjp_writable_grad; /* a VJP may run a nested backward */
    tg__vjp_writable_grad = vjp && grad_writable(bw, e, vjp, gout) ? gout : NULL;
    tg_status st = vjp ? vjp(e, gout, bw->step_grad_in, ctx)
                       : tg_error_set(TG_ERR_RUNTIME, "backward: op '%s' has no VJP", tg_entry_name(e));
    tg__vjp_writable_grad = prev_w;
    tg_set_grad_enabled(prev);
    if (st && !tg_error_message()[0]) tg_error_set(st, "backward: the VJP of '%s' failed", tg_entry_name(e));
    return st;
}

/* Input i's gradient made to fit input i: dropped if the input needs none,
 * cast back to its dtype (a promoted op, f32 * f64 -> f64, as in PyTorch),
 * and summed over the broadcast dimensions (one shared place that undoes
 * broadcasting; the summed dimensions are kept in the step record). */
static tg_status fit_to_input(tg_stepper *bw, tg_entry *e, int i) {
    tg_tensor *g = bw->step_grad_in[i];
    if (!g) return TG_OK;
    if (!tg_entry_needs_grad(e, i)) {
        tg_tensor_release(g);
        bw->step_grad_in[i] = NULL;
        return TG_OK;
    }
    bool create = (bw->flags & TG_CREATE_GRAPH) != 0;
    tg_tensor *x = e->inputs[i];
    if (g->dtype != x->dtype && tg_dtype_is_float(g->dtype)) {
        bool prev = tg_set_grad_enabled(create); /* a differentiable cast */
        tg_tensor *c = tg_cast(g, x->dtype);
        tg_set_grad_enabled(prev);
        if (!c) return tg_error_status();
        tg_tensor_release(g);
        bw->step_grad_in[i] = g = c;
    }
    if (g->dtype != x->dtype) return vjp_shape_error(e, i, g, "dtype");
    bw->step_ndim[i] = g->ndim;
    if (tg__same_shape(g->ndim, g->shape, x->ndim, x->shape)) return TG_OK;
    /* g must be x broadcast to g's shape */
    bool ok = g->ndim >= x->ndim;
    uint32_t mask = 0;
    for (int d = 0; ok && d < g->ndim; d++) {
        int dx = x->ndim - g->ndim + d;
        if (dx < 0) mask |= 1u << d;
        else if (x->shape[dx] == 1 && g->shape[d] != 1) mask |= 1u << d;
        else if (x->shape[dx] != g->shape[d]) ok = false;
    }
    if (!ok) return vjp_shape_error(e, i, g, "shape");
    bool prev = tg_set_grad_enabled(create);
    tg_tensor *r = tg_sum_to_shape(g, x->ndim, x->shape);
    tg_set_grad_enabled(prev);
    if (!r) return tg_error_status();
    tg_tensor_release(g);
    bw->step_grad_in[i] = r;
    bw->step_mask[i] = mask;
    return TG_OK;
}

/* Input i's gradient added to what its own entry (or leaf) has pending; a
 * leaf whose last contribution this was gets its .grad now. */
static tg_status send_to_input(tg_stepper *bw, tg_entry *e, int i, const tg_tensor *gout) {
    tg_tensor *g = bw->step_grad_in[i];
    if (!g) return TG_OK;
    tg_tensor *x = e->inputs[i];
    tg_status st = TG_OK;
    bool prev = tg_set_grad_enabled((bw->flags & TG_CREATE_GRAPH) != 0);
    if (x->grad_fn) {
        if (x->grad_fn->bw_mark == bw->mark) st = accumulate(&x->grad_fn->bw_pending, g);
    } else if (x->bw_mark == bw->mark) {
        st = accumulate(&x->bw_pending, g);
        /* a first contribution is the step record's grad_in[i] itself (and
         * its grad_out too when the VJP wrote over gout, relu): in a
         * backward() whose steps no one sees, the weight's gradient a VJP
         * made becomes its .grad without a copy */
        if (!st && --x->bw_deps == 0)
            st = finalize_leaf(bw, x, x->bw_pending == g && !steps_seen(bw) ? 1 + (g == gout) : 0);
    }
    tg_set_grad_enabled(prev);
    return st;
}

/* ---- the direct route (TG_DIRECT) ----------------------------------------
 * A view op (slice, reshape, permute: tg_opdef.grad_view) only moves its
 * output's gradient into its input's shape: the engine adds it straight
 * into the input's pending sum, seen through the op's view, instead of
 * running the VJP (a slice's: a zero tensor of the input's shape with the
 * gradient copied in, then an add of all of it).  Through a chain of view
 * ops it goes further: the q of q = qkv[..., :C].reshape(B, T, H, hs)
 * .permute(0, 2, 1, 3) adds its gradient (strided, as attention's VJP
 * left it) into the slice of qkv's pending sum seen as heads -- no copy
 * for the reshape, no zeros for the slice.  Gradients are linear, so the
 * chain's other consumers still add theirs through the ordinary route.
 *
 * Only where nothing can tell the difference: first order (nothing
 * recorded), no step hook (the step record then has no gradient for the
 * input), each op's own VJP (no override), no hook, retain_grad or
 * tg_grad capture on a tensor the chain passes over (their gradient is
 * never formed), and a pending sum only the engine holds -- one that a
 * hook, retain_grad, the inspector or another input shares is first
 * replaced by a private copy, never written.  An entry whose input has no
 * pending sum yet anywhere along the chain takes the ordinary route (the
 * first slice of qkv creates qkv's sum). */

#define DIRECT_MAX_CHAIN 4

/* the entry runs its op's own VJP and is a plain one-input view op */
static bool direct_op(const tg_stepper *bw, const tg_entry *e) {
    void *ctx;
    return e->op && e->op->grad_view && !e->custom_vjp && !e->inplace && e->n_inputs == 1 &&
           e->bw_mark == bw->mark && tg_entry_needs_grad(e, 0) && tg__vjp_for(e, &ctx) == e->op->backward;
}

/* Nothing would see the gradient of entry e's output formed as a whole. */
static bool unobserved(const tg_stepper *bw, const tg_entry *e) {
    if (e->out && (e->out->grad_hook || e->out->retains_grad)) return false;
    for (int k = 0; k < bw->n_capture; k++)
        if (bw->capture[k]->grad_fn == e) return false;
    return true;
}

/* The pending slot of tensor x in this pass, or NULL. */
static tg_tensor **pending_slot(const tg_stepper *bw, tg_tensor *x) {
    if (x->grad_fn) return x->grad_fn->bw_mark == bw->mark ? &x->grad_fn->bw_pending : NULL;
    return x->bw_mark == bw->mark ? &x->bw_pending : NULL;
}

static bool private_sum(const tg_tensor *s, const tg_tensor *x) {
    const tg_storage *st = s->storage;
    return s->refcount == 1 && st->refcount == 1 && !st->release && !st->readonly && st->saved_count == 0 &&
           !st->user_data && !s->user_data && !s->grad_fn && !s->requires_grad && s->dtype == x->dtype &&
           tg__same_shape(s->ndim, s->shape, x->ndim, x->shape) && tg_tensor_is_contiguous(s) &&
           s->offset == 0;
}

/* Returns 1 when the gradient went the direct route, 0 when the ordinary
 * route must run, -1 on failure (error set). */
static int direct_route(tg_stepper *bw, tg_entry *e, tg_tensor *gout) {
    if (!(bw->flags & TG_DIRECT) || (bw->flags & TG_CREATE_GRAPH) || global_hook || bw->hook ||
        !direct_op(bw, e))
        return 0;
    tg_tensor *x0 = e->inputs[0];
    if (gout->dtype != x0->dtype || !tg_dtype_is_float(x0->dtype) || gout->numel == 0 ||
        !tg__same_shape(gout->ndim, gout->shape, e->out_ndim, e->out_shape))
        return 0;
    /* chain[0] = e; chain[k + 1] made chain[k]'s input; the target is the
     * input of the deepest chain[k] whose input has a pending sum */
    tg_entry *chain[DIRECT_MAX_CHAIN];
    int n = 0, depth = -1, reach = -1;
    for (tg_entry *c = e; n < DIRECT_MAX_CHAIN; ) {
        chain[n++] = c;
        tg_tensor **slot = pending_slot(bw, c->inputs[0]);
        if (!slot) break;
        reach = n - 1;
        if (*slot) depth = n - 1;
        tg_entry *next = c->inputs[0]->grad_fn;
        if (!next || !direct_op(bw, next) || !unobserved(bw, next) || next->inputs[0]->dtype != x0->dtype)
            break;
        c = next;
    }
    /* No sum yet along the chain: a chain of two or more views that ends in
     * one selecting part of its input (q, k, v = qkv.split(C, -1), each
     * seen as heads: their slices run after all three reshapes) starts the
     * deepest sum as zeros -- which that part's gradient needs around it
     * anyway -- instead of a copy for the reshape and a zero-padded one
     * for the slice; the other chains then add into it.  A single view
     * takes the ordinary route (one pass, or none for a permute). */
    bool create = false;
    if (depth < 0) {
        if (reach < 1) return 0;
        tg_entry *last = chain[reach];
        int64_t out_numel = 1;
        for (int d = 0; d < last->out_ndim; d++) out_numel *= last->out_shape[d];
        if (out_numel >= last->inputs[0]->numel) return 0;
        depth = reach;
        create = true;
    }
    tg_tensor *x = chain[depth]->inputs[0];
    tg_tensor **slot = pending_slot(bw, x);
    if (!create && (!tg__same_shape((*slot)->ndim, (*slot)->shape, x->ndim, x->shape) ||
                    (*slot)->dtype != x->dtype))
        return 0;
    bool prev = tg_set_grad_enabled(false);
    tg_status st = TG_OK;
    if (create) {
        if (!(*slot = tg_tensor_zeros(x->ndim, x->shape, x->dtype))) st = tg_error_status();
    } else if (!private_sum(*slot, x)) { /* someone else can see it: a private copy */
        tg_tensor *c = tg__copy(*slot);
        if (!c) st = tg_error_status();
        else {
            tg_tensor_release(*slot);
            *slot = c;
        }
    }
    /* the target seen through the chain, deepest op first */
    tg_tensor *v = NULL;
    if (!st) {
        tg_error_clear(); /* a grad_view that is no view returns NULL without an error */
        tg_tensor_retain(*slot);
        v = *slot;
        for (int k = depth; k >= 0 && v; k--) {
            tg_tensor *w = chain[k]->op->grad_view(chain[k], v);
            tg_tensor_release(v);
            v = w;
        }
        if (!v && tg_error_status()) st = tg_error_status();
    }
    int r = 0;
    if (!st && v) {
        if (tg__same_shape(v->ndim, v->shape, gout->ndim, gout->shape)) {
            st = tg_tensor_axpy_(v, 1.0, gout);
            r = !st;
        }
    }
    tg_tensor_release(v);
    /* the leaf's edge from e is consumed (deeper edges at their own steps) */
    if (!st && r && depth == 0 && !x->grad_fn && --x->bw_deps == 0) st = finalize_leaf(bw, x, 0);
    tg_set_grad_enabled(prev);
    return st ? -1 : r;
}

/* No gradient reached this entry: its leaves lose a dependency. */
static tg_status skip_entry(tg_stepper *bw, tg_entry *e) {
    for (int i = 0; i < e->n_inputs; i++) {
        tg_tensor *x = e->inputs[i];
        if (tg_entry_needs_grad(e, i) && !x->grad_fn && x->bw_mark == bw->mark && --x->bw_deps == 0) {
            tg_status st = finalize_leaf(bw, x, 0);
            if (st) return st;
        }
    }
    return TG_OK;
}

/* The step is done: free what the entry saved (unless the graph is kept;
 * create_graph implies retain_graph, PyTorch's default, since the recorded
 * gradient graph goes through these entries again), fill the step record
 * (it owns gout now) and call the step hooks. */
static tg_status end_step(tg_stepper *bw, tg_entry *e, tg_tensor *gout) {
    if (!(bw->flags & (TG_RETAIN_GRAPH | TG_CREATE_GRAPH))) {
        tg__free_saved(e);
        e->freed = true;
    }
    bw->step_grad_out = gout;
    bw->step.entry = e;
    bw->step.index = bw->pos;
    bw->step.grad_out = bw->step_grad_out;
    bw->step.n_inputs = e->n_inputs;
    bw->step.grad_in = bw->step_grad_in;
    bw->step.summed_mask = bw->step_mask;
    bw->step.summed_ndim = bw->step_ndim;
    bw->pos++;
    tg_status st = global_hook ? global_hook(bw, &bw->step, global_hook_ctx) : TG_OK;
    if (!st && bw->hook) st = bw->hook(bw, &bw->step, bw->hook_ctx);
    return st;
}

/* ---- one step: the algorithm -------------------------------------------- */

int tg_backward_step(tg_stepper *bw) {
    if (bw->failed) { /* every failing call sets the error, this one too */
        tg_error_set(TG_ERR_RUNTIME,
                     "backward: this backward pass already failed; no step can run (end it)");
        return -1;
    }
    if (bw->pos >= bw->n) return 0;
    tg_entry *e = bw->order[bw->pos]; /* 1. the next entry (descending seq) */
    tg_status st = prepare_step(bw, e->n_inputs);
    if (st) {
        bw->failed = true;
        return -1;
    }
    tg_tensor *gout = e->bw_pending; /* the gradient of its output, summed */
    e->bw_pending = NULL;
    if (gout) {
        st = run_output_hook(e, &gout);
        if (!st) st = capture_output_grad(bw, e, gout);
        int direct = st ? 0 : direct_route(bw, e, gout); /* 2-4 in one, where possible */
        if (direct < 0) st = tg_error_status() ? tg_error_status() : TG_ERR_RUNTIME;
        if (!st && !direct) {
            st = call_vjp(bw, e, gout);                                               /* 2. its VJP */
            for (int i = 0; i < e->n_inputs && !st; i++) st = fit_to_input(bw, e, i);  /* 3. unbroadcast */
            for (int i = 0; i < e->n_inputs && !st; i++) st = send_to_input(bw, e, i, gout); /* 4. accumulate */
        }
    } else {
        st = skip_entry(bw, e);
    }
    if (st) {
        tg_tensor_release(gout);
        bw->failed = true;
        return -1;
    }
    if (end_step(bw, e, gout)) { /* the step record owns gout now */
        bw->failed = true;
        return -1;
    }
    return 1;
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
        if (bw->leaves[i]->bw_pending) st = finalize_leaf(bw, bw->leaves[i], 0);
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
                                        (flags & ~TG_NO_ACCUMULATE) | TG_PRIVATE_STEPS |
                                            (direct_enabled ? TG_DIRECT : 0),
                                        0, NULL);
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
    /* an input given twice gets the same gradient twice (PyTorch): the
     * engine is asked once per distinct tensor, first[j] = its position */
    size_t cap = (size_t)(n_in > 0 ? n_in : 1);
    tg_tensor **uniq = malloc(cap * (sizeof(tg_tensor *) + sizeof(int)));
    if (!uniq) return tg_error_set(TG_ERR_MEMORY, "grad: out of memory");
    int *first = (int *)(uniq + cap);
    int n_uniq = 0;
    for (int j = 0; j < n_in; j++) {
        int k = 0;
        while (k < n_uniq && uniq[k] != inputs[j]) k++;
        if (k == n_uniq) uniq[n_uniq++] = inputs[j];
        first[j] = k;
    }
    tg_stepper *bw = tg_backward_begin(n_out, outputs, seeds,
                                        flags | TG_NO_ACCUMULATE | TG_PRIVATE_STEPS | (direct_enabled ? TG_DIRECT : 0),
                                        n_uniq, uniq);
    if (!bw) {
        free(uniq);
        return tg_error_status();
    }
    tg_status st = run_all(bw);
    if (st) {
        tg_backward_end(bw);
        free(uniq);
        return st;
    }
    for (int j = 0; j < n_in && !st; j++) {
        results[j] = tg_backward_result(bw, first[j]);
        if (!results[j]) results[j] = tg__zeros_like(inputs[j]);
        if (!results[j]) st = tg_error_status();
    }
    tg_backward_end(bw);
    free(uniq);
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
