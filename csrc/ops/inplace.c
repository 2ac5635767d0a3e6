/*
 * inplace.c -- in-place writes on the tape, with PyTorch's rules.
 *
 * An in-place op (x += y, x.mul_(2), x.relu_(), x[0] = y, x[mask] = 0,
 * x.copy_(y), x.fill_(v) ...) on a tensor that is part of the graph is
 * recorded like an out-of-place op, and the tensor's grad_fn is REBASED onto
 * the new entry:
 *
 *   1. the old value is kept as a snapshot: a copy of the tensor's memory
 *      that carries the old grad_fn (so the graph before the write is
 *      untouched, and whatever the op saves is never overwritten);
 *   2. the new value is computed out of place from it, r = f(old), which
 *      records ordinary entries (add, mul, relu, where ...);
 *   3. r is written into the tensor's memory, the storage version is bumped
 *      (an entry that saved the old memory -- exp saves its output -- then
 *      raises at backward, as in PyTorch), and the tensor's grad_fn becomes
 *      r's entry, marked entry->inplace = "add_" for the stepper and the
 *      drawings.
 *
 * Views (PyTorch's CopySlices).  A write into a view of a tensor in the graph
 * (v = y[1:3] made by slicing, reshape or permute: each view's grad_fn is a
 * view op whose input shares the memory) changes the base too, so the base
 * B is found by walking those view entries up and rebased as
 *
 *     B_new = copy_slices(B_old, r)        (B with the view's region := r)
 *     v_new = as_strided(B_new)            (the region read back)
 *
 * Both ops are defined below by the view's geometry relative to the base
 * (shape, strides, offset in elements: what PyTorch's as_strided takes);
 * each one's VJP is written with the other, so second order works.
 * Assignment (x[key] = value) is the same write with the base known: the
 * binding passes x and the view x[key], so `buf = zeros(6); buf[0:3] = x`
 * makes buf part of the graph even though buf was not in it.
 *
 * Rules: a leaf that requires grad (or a view of one) is refused while grad
 * mode is on; under no_grad nothing is recorded and the write is done
 * directly (optimizers).  Sibling views made BEFORE the write keep their old
 * grad_fn (PyTorch regenerates them; tapegrad does not): take views after
 * writing, or write through the base.
 */
#include "ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ===================================================================== */
/* Geometry: a view relative to a base                                    */
/* ===================================================================== */

/* Params of copy_slices and as_strided: ndim/shape: the view's shape;
 * ints[0..8): the view's strides; ints[8..16): the base's strides (elements);
 * i[0]: the view's offset minus the base's; i[1]: the base's ndim. */
static void geometry(const tg_tensor *base, const tg_tensor *view, tg_params *p) {
    memset(p, 0, sizeof *p);
    p->ndim = view->ndim;
    for (int d = 0; d < view->ndim; d++) {
        p->shape[d] = view->shape[d];
        p->ints[d] = view->strides[d];
    }
    for (int d = 0; d < base->ndim; d++) p->ints[8 + d] = base->strides[d];
    p->i[0] = view->offset - base->offset;
    p->i[1] = base->ndim;
}

/* The lowest and highest element positions of shape/strides at offset off
 * (false on overflow).  An empty shape has no positions (lo > hi). */
static bool positions(int nd, const int64_t *shape, const int64_t *strides, int64_t off,
                      int64_t *lo, int64_t *hi) {
    *lo = *hi = off;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 0) {
            *lo = 1;
            *hi = 0;
            return true;
        }
        int64_t s;
        if (__builtin_mul_overflow(shape[d] - 1, strides[d], &s)) return false;
        if (__builtin_add_overflow(s < 0 ? *lo : *hi, s, s < 0 ? lo : hi)) return false;
    }
    return true;
}

/* A zeroed scratch buffer holding both geometries, and the base (*bv) and
 * view (*vv) over it (new references).  The scratch stands for the storage
 * the two shared; it is released by the caller. */
static tg_tensor *scratch_views(const char *who, const int64_t *base_shape, int base_ndim,
                                const tg_params *p, tg_dtype dt, tg_tensor **bv, tg_tensor **vv) {
    *bv = *vv = NULL;
    if (p->ndim < 0 || p->ndim > TG_MAX_DIMS || p->i[1] != base_ndim)
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: the geometry is for a view of %d dims of a base of %lld dims, got a "
                       "base of %d dims",
                       who, p->ndim, (long long)p->i[1], base_ndim);
    for (int d = 0; d < p->ndim; d++)
        if (p->shape[d] < 0 || (p->ints[d] == 0 && p->shape[d] > 1))
            return TG_FAIL(TG_ERR_VALUE,
                           "%s: the view must have sizes >= 0 and no broadcast (stride 0) "
                           "dimension, got size %lld stride %lld on dim %d",
                           who, (long long)p->shape[d], (long long)p->ints[d], d);
    for (int d = 0; d < base_ndim; d++)
        if (p->ints[8 + d] == 0 && base_shape[d] > 1)
            return TG_FAIL(TG_ERR_VALUE,
                           "%s: the base is a broadcast view (stride 0 on dim %d); several "
                           "elements share one memory location",
                           who, d);
    int64_t blo, bhi, vlo, vhi;
    if (!positions(base_ndim, base_shape, p->ints + 8, 0, &blo, &bhi) ||
        !positions(p->ndim, p->shape, p->ints, p->i[0], &vlo, &vhi))
        return TG_FAIL(TG_ERR_VALUE, "%s: the view's strides overflow", who);
    int64_t lo = blo, hi = bhi;
    if (vlo <= vhi) {
        if (lo > hi) {
            lo = vlo;
            hi = vhi;
        } else {
            lo = vlo < lo ? vlo : lo;
            hi = vhi > hi ? vhi : hi;
        }
    }
    int64_t n = 0;
    if (lo <= hi && (lo == INT64_MIN || __builtin_sub_overflow(hi, lo, &n))) /* -lo below */
        return TG_FAIL(TG_ERR_VALUE, "%s: the view's strides overflow", who);
    if (lo <= hi && __builtin_add_overflow(n, 1, &n)) /* hi - lo == INT64_MAX */
        return TG_FAIL(TG_ERR_VALUE, "%s: the view's strides overflow", who);
    if (n > INT64_MAX / 16)
        return TG_FAIL(TG_ERR_VALUE, "%s: the view's strides overflow (they span %lld elements)",
                       who, (long long)n);
    tg_tensor *s = tg_tensor_zeros(1, &n, dt);
    if (!s) return NULL;
    int64_t bst[TG_MAX_DIMS];
    memcpy(bst, p->ints + 8, sizeof bst);
    *bv = tg_tensor_from_storage(s->storage, dt, base_ndim, base_shape, bst, lo <= hi ? -lo : 0);
    *vv = *bv ? tg_tensor_from_storage(s->storage, dt, p->ndim, p->shape, p->ints,
                                        vlo <= vhi ? p->i[0] - lo : 0) /* (an empty view: anywhere) */
              : NULL;
    if (!*vv) {
        tg_tensor_release(*bv);
        tg_tensor_release(s);
        *bv = NULL;
        return NULL;
    }
    return s;
}

static tg_status float_only(const char *who, const tg_tensor *t) {
    if (!tg_dtype_is_float(t->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 tensor, got %s", who,
                            tg_dtype_name(t->dtype));
    return TG_OK;
}

/* ===================================================================== */
/* copy_slices and as_strided                                             */
/* ===================================================================== */

static tg_tensor *as_strided_p(tg_tensor *base, const tg_params *p);

static tg_tensor *copy_slices_p(tg_tensor *base, tg_tensor *value, const tg_params *p) {
    const char *who = "copy_slices";
    if (float_only(who, base) || float_only(who, value)) return NULL;
    if (base->dtype != value->dtype)
        return TG_FAIL(TG_ERR_TYPE, "%s: base is %s but value is %s (expected the same dtype)", who,
                       tg_dtype_name(base->dtype), tg_dtype_name(value->dtype));
    if (p->ndim < 0 || p->ndim > TG_MAX_DIMS) /* before the message below reads p->ndim sizes */
        return TG_FAIL(TG_ERR_VALUE, "%s: a view of %d dims (expected 0 to %d)", who, p->ndim, TG_MAX_DIMS);
    if (!tg__same_shape(value->ndim, value->shape, p->ndim, p->shape))
        return TG_FAIL(TG_ERR_VALUE, "%s: value of shape %s for a view of shape %s", who,
                       tg__shp(value), tg__shp2(p->ndim, p->shape));
    tg_tensor *bv, *vv;
    tg_tensor *s = scratch_views(who, base->shape, base->ndim, p, base->dtype, &bv, &vv);
    if (!s) return NULL;
    tg__copy_into(bv, base);
    tg__copy_into(vv, value);
    tg_tensor *out = tg__copy(bv);
    tg_tensor_release(bv);
    tg_tensor_release(vv);
    tg_tensor_release(s);
    tg_tensor *in[2] = {base, value};
    tg_entry *e;
    out = tg__finish(&tg_opdef_copy_slices, 2, in, out, &e);
    if (e) e->params = *p;
    return out;
}

static tg_tensor *as_strided_p(tg_tensor *base, const tg_params *p) {
    const char *who = "as_strided";
    if (float_only(who, base)) return NULL;
    tg_tensor *bv, *vv;
    tg_tensor *s = scratch_views(who, base->shape, base->ndim, p, base->dtype, &bv, &vv);
    if (!s) return NULL;
    tg__copy_into(bv, base);
    tg_tensor *out = tg__copy(vv);
    tg_tensor_release(bv);
    tg_tensor_release(vv);
    tg_tensor_release(s);
    tg_entry *e;
    out = tg__finish(&tg_opdef_as_strided, 1, &base, out, &e);
    if (e) e->params = *p;
    return out;
}

static tg_status copy_slices_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    if (tg_entry_needs_grad(e, 0)) {
        tg_tensor *z = tg_tensor_zeros(e->params.ndim, e->params.shape, g->dtype);
        CHECK(z);
        gi[0] = copy_slices_p(g, z, &e->params);
        tg_tensor_release(z);
        CHECK(gi[0]);
    }
    if (tg_entry_needs_grad(e, 1)) CHECK(gi[1] = as_strided_p(g, &e->params));
    return TG_OK;
}

static tg_status as_strided_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    const tg_tensor *b = e->inputs[0];
    tg_tensor *z = tg_tensor_zeros(b->ndim, b->shape, g->dtype);
    CHECK(z);
    gi[0] = copy_slices_p(z, g, &e->params);
    tg_tensor_release(z);
    CHECK(gi[0]);
    return TG_OK;
}

static tg_tensor *apply_copy_slices(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return copy_slices_p(in[0], in[1], p);
}
static tg_tensor *apply_as_strided(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return as_strided_p(in[0], p);
}

/* Examples: base 5x4 (strides 4, 1); rows 1..2; rows 1..2 transposed; column 0. */
TG_DEFINE_OP(copy_slices, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = x; y[view] = v (view: shape, strides, offset into x's memory)",
             .forward_tex = "y = x,\\ y[\\text{view}] = v",
             .vjp = "dx = copy_slices(dy, 0), dv = as_strided(dy)",
             .vjp_tex = "\\bar x = \\bar y,\\ \\bar x[\\text{view}] = 0;\\quad \\bar v = \\bar y[\\text{view}]",
             .doc = "The base of an in-place write through a view: x with the view's region replaced by v (PyTorch's CopySlices).",
             .backward = copy_slices_vjp, .apply = apply_copy_slices,
             .examples = "5x4,2x4|shape=2,4 ints=4,1,0,0,0,0,0,0,4,1 i0=4 i1=2;"
                         "5x4,4x2|shape=4,2 ints=1,4,0,0,0,0,0,0,4,1 i0=4 i1=2;"
                         "5x4,5|shape=5 ints=4,0,0,0,0,0,0,0,4,1 i0=0 i1=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar v");

TG_DEFINE_OP(as_strided, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = x[view] (view: shape, strides, offset into x's memory)",
             .forward_tex = "y = x[\\text{view}]",
             .vjp = "dx = copy_slices(0, dy)",
             .vjp_tex = "\\bar x = 0,\\ \\bar x[\\text{view}] = \\bar y",
             .doc = "A view's value read from its base by shape, strides and offset (after an in-place write through the view).",
             .backward = as_strided_vjp, .apply = apply_as_strided,
             .examples = "5x4|shape=2,4 ints=4,1,0,0,0,0,0,0,4,1 i0=4 i1=2;"
                         "5x4|shape=4,2 ints=1,4,0,0,0,0,0,0,4,1 i0=4 i1=2;"
                         "5x4|shape=5 ints=4,0,0,0,0,0,0,0,4,1 i0=0 i1=2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

const char *tg_entry_inplace(const tg_entry *e) { return e ? e->inplace : NULL; }

/* ===================================================================== */
/* The write                                                              */
/* ===================================================================== */

static bool is_view_entry(const tg_entry *e) {
    return e && !e->custom_vjp && e->n_inputs >= 1 &&
           (e->op == &tg_opdef_slice || e->op == &tg_opdef_reshape ||
            e->op == &tg_opdef_permute || e->op == &tg_opdef_as_strided);
}

/* The tensor whose history a write into t changes: t itself, or the base
 * reached through view entries over the same memory. */
static tg_tensor *graph_base(tg_tensor *t) {
    tg_tensor *b = t;
    while (b->grad_fn && is_view_entry(b->grad_fn) && b->grad_fn->inputs[0]->storage == t->storage)
        b = b->grad_fn->inputs[0];
    return b;
}

static tg_status check_target(const char *who, const tg_tensor *t) {
    if (t->storage->readonly)
        return tg_error_set(TG_ERR_RUNTIME, "%s: the tensor's memory is read-only", who);
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1)
            return tg_error_set(TG_ERR_RUNTIME,
                                "%s: the tensor is a broadcast view (stride 0 on dim %d); several "
                                "elements share one memory location",
                                who, i);
    return TG_OK;
}

static tg_status leaf_error(const char *who, const tg_tensor *leaf, bool view) {
    char nm[200] = "";
    if (leaf->name) snprintf(nm, sizeof nm, " '%s'", leaf->name);
    return tg_error_set(TG_ERR_RUNTIME,
                        "%s: %sa leaf tensor%s of shape %s that requires grad is being used in an "
                        "in-place operation; its gradient would no longer match its value. Wrap "
                        "the update in `with tg.no_grad():` (as optimizers do), or write into a "
                        "clone (x = x.clone() first)",
                        who, view ? "a view of " : "", nm, tg__shp(leaf));
}

/* r made to fit dst: same shape; same dtype (a recorded cast between floats,
 * NumPy's same_kind rule otherwise).  Consumes r; NULL on failure. */
static tg_tensor *fit(const char *who, tg_tensor *dst, tg_tensor *r) {
    if (!tg__same_shape(r->ndim, r->shape, dst->ndim, dst->shape)) {
        tg_error_set(TG_ERR_VALUE, "%s: result of shape %s cannot be written into %s", who,
                     tg__shp(r), tg__shp(dst));
        tg_tensor_release(r);
        return NULL;
    }
    if (r->dtype == dst->dtype) return r;
    if (!(tg_dtype_is_float(dst->dtype) || r->dtype == TG_INT64)) {
        tg_error_set(TG_ERR_TYPE,
                     "%s: the result is %s and cannot be stored in a %s tensor in place "
                     "(NumPy's same_kind rule)",
                     who, tg_dtype_name(r->dtype), tg_dtype_name(dst->dtype));
        tg_tensor_release(r);
        return NULL;
    }
    tg_tensor *c = r->requires_grad && tg_dtype_is_float(dst->dtype) ? tg_cast(r, dst->dtype)
                                                                       : tg__as_dtype(r, dst->dtype);
    tg_tensor_release(r);
    return c;
}

/* f failed: its error, with the in-place op's name in front ("add_: add:
 * shapes (3, 4) and (3, 5) cannot be broadcast ..."). */
static tg_status named_error(const char *who) {
    tg_status st = tg_error_status();
    char msg[768];
    snprintf(msg, sizeof msg, "%s", tg_error_message());
    size_t n = strlen(who);
    if (strncmp(msg, who, n) == 0 && msg[n] == ':') return st;
    return tg_error_set(st ? st : TG_ERR_RUNTIME, "%s: %s", who, msg);
}

static void store(tg_tensor *dst, tg_tensor *r) {
    tg__copy_into(dst, r);
    dst->storage->version++;
}

static tg_rebase_hook_fn rebase_hook;

void tg_set_rebase_hook(tg_rebase_hook_fn fn) { rebase_hook = fn; }

/* The new version of t: a new tensor object over t's memory whose grad_fn is
 * e.  The old object keeps its history, because entries recorded earlier
 * took it as an input and must go on seeing the value they read; what
 * belongs to the user's handle (name, hooks, retain_grad and .grad, the
 * binding's data) moves to the new object, and the rebase hook moves the handle
 * itself (the Python object).  NULL on allocation failure. */
static tg_tensor *rebase(tg_tensor *t, tg_entry *e, const char *name) {
    tg_tensor *n = tg__view(t, t->ndim, t->shape, t->strides, t->offset);
    if (!n) return NULL;
    tg_entry_retain(e);
    n->grad_fn = e;
    n->requires_grad = true;
    e->out = n;
    if (name) e->inplace = name;
    n->name = t->name;
    t->name = NULL;
    n->retains_grad = t->retains_grad;
    t->retains_grad = false;
    n->grad = t->grad; /* a retained .grad from an earlier backward */
    t->grad = NULL;
    n->grad_hook = t->grad_hook;
    n->grad_hook_ctx = t->grad_hook_ctx;
    t->grad_hook = NULL;
    t->grad_hook_ctx = NULL;
    n->user_data = t->user_data;
    n->user_release = t->user_release;
    t->user_data = NULL;
    t->user_release = NULL;
    if (rebase_hook) rebase_hook(t, n);
    return n;
}

/* A tensor over t's memory with t's history (the base's old value for
 * copy_slices, which reads it before the write). */
static tg_tensor *alias_of(tg_tensor *t) {
    tg_tensor *a = tg__view(t, t->ndim, t->shape, t->strides, t->offset);
    if (!a) return NULL;
    a->requires_grad = t->requires_grad;
    a->grad_fn = t->grad_fn;
    tg_entry_retain(a->grad_fn);
    return a;
}

/* Write f(old value of V) into V, the region of base B (V == B: the whole
 * tensor); rebase B and, when it is a view of B, Vobj.  `may_record`: false
 * when the caller knows that nothing f reads besides V requires grad.
 * `history`: false when the new value does not depend on the old one and
 * gets its gradient from elsewhere (x[k] = y with y in the graph): the old
 * value is then passed as a constant (no as_strided entry to read it). */
static tg_status write_impl(const char *who, tg_tensor *B, tg_tensor *V, tg_tensor *Vobj,
                            tg_inplace_fn f, void *ctx, bool may_record, bool history) {
    if (check_target(who, V)) return tg_error_status();
    if (B->storage != V->storage)
        return tg_error_set(TG_ERR_VALUE, "%s: the view does not share the base's memory", who);
    bool rec = tg__grad_on() && (may_record || B->requires_grad);
    if (rec && B->requires_grad && !B->grad_fn) return leaf_error(who, B, B != V);
    if (!rec) {
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *r = f(V, ctx);
        tg_set_grad_enabled(prev);
        if (!r) return named_error(who);
        if (!(r = fit(who, V, r))) return tg_error_status();
        if (r != V) store(V, r); /* (a function may return its argument: nothing to write) */
        tg_tensor_release(r);
        return TG_OK;
    }
    tg_params gv;
    geometry(B, V, &gv);
    /* 1. the old value, with its history */
    tg_tensor *old;
    if (V == B || !B->requires_grad || !history) {
        old = tg__copy(V);
        if (old && V == B && history) {
            old->requires_grad = B->requires_grad;
            old->grad_fn = B->grad_fn;
            tg_entry_retain(old->grad_fn);
        }
    } else {
        old = as_strided_p(B, &gv);
    }
    if (!old) return tg_error_status();
    /* 2. the new value, out of place */
    tg_tensor *r = f(old, ctx);
    tg_tensor_release(old);
    if (!r) return named_error(who);
    if (!(r = fit(who, V, r))) return tg_error_status();
    if (!r->requires_grad) { /* nothing in the graph after all */
        store(V, r);
        tg_tensor_release(r);
        return TG_OK;
    }
    if (!r->grad_fn || (V == B && r->grad_fn == B->grad_fn)) {
        /* tg_inplace_apply with a function that returned a leaf, or the old
         * value itself: no entry of its own to rebase onto */
        bool same = r->grad_fn && r->grad_fn == B->grad_fn;
        tg_tensor_release(r);
        if (same) return TG_OK;
        return tg_error_set(TG_ERR_VALUE,
                            "%s: the in-place function returned a leaf tensor; it must return a "
                            "value computed with ops (a new tensor on the tape)",
                            who);
    }
    /* 3. write and rebase (t, B and Vobj are kept alive: the rebase hook
     * drops the handle's reference to the old objects) */
    tg_status st = TG_OK;
    tg_tensor_retain(B);
    tg_tensor_retain(Vobj);
    if (V == B) {
        store(V, r);
        tg_tensor *nb = rebase(B, r->grad_fn, who);
        if (!nb) st = tg_error_status();
        tg_tensor_release(nb);
    } else {
        tg_tensor *a = alias_of(B);
        tg_tensor *nb = a ? copy_slices_p(a, r, &gv) : NULL;
        tg_tensor_release(a);
        tg_tensor *newb = NULL;
        if (nb) {
            store(V, r);
            r->grad_fn->inplace = who;
            newb = rebase(B, nb->grad_fn, who);
        }
        tg_tensor_release(nb);
        if (!newb) st = tg_error_status();
        if (newb && Vobj && Vobj != B) {
            tg_params go;
            geometry(B, Vobj, &go);
            tg_tensor *dv = as_strided_p(newb, &go);
            tg_tensor *nv = dv ? rebase(Vobj, dv->grad_fn, NULL) : NULL;
            if (!nv) st = tg_error_status();
            tg_tensor_release(nv);
            tg_tensor_release(dv);
        }
        tg_tensor_release(newb);
    }
    tg_tensor_release(Vobj);
    tg_tensor_release(B);
    tg_tensor_release(r);
    return st;
}

tg_status tg_inplace_apply(tg_tensor *dst, const char *name, tg_inplace_fn f, void *ctx) {
    if (!dst || !f) return tg_error_set(TG_ERR_VALUE, "inplace: tensor or function is NULL");
    return write_impl(name ? name : "inplace", graph_base(dst), dst, dst, f, ctx, true, true);
}

tg_status tg_inplace_write(tg_tensor *base, tg_tensor *view, const char *name, tg_inplace_fn f,
                           void *ctx) {
    if (!base || !view || !f) return tg_error_set(TG_ERR_VALUE, "inplace: tensor or function is NULL");
    const char *who = name ? name : "inplace";
    return write_impl(who, graph_base(base), view, base, f, ctx, true, true);
}

/* ===================================================================== */
/* The in-place ops                                                       */
/* ===================================================================== */

typedef struct {
    tg_tensor *src, *mask;
    double alpha, lo, hi;
    char op;
} op_ctx;

/* src in dst's dtype where that keeps the arithmetic honest: between floats
 * a recorded cast (so that the result keeps dst's dtype and the tape shows
 * the op itself as the in-place entry); for an assignment (`assign`) into an
 * integer tensor, converted as NumPy's copy does. */
static tg_tensor *src_like(tg_tensor *src, tg_dtype dt, bool assign) {
    if (src->dtype == dt) {
        tg_tensor_retain(src);
        return src;
    }
    if (tg_dtype_is_float(dt) && tg_dtype_is_float(src->dtype)) return tg_cast(src, dt);
    if (assign || !src->requires_grad) {
        if (assign || tg_dtype_is_float(dt)) return tg__as_dtype(src, dt);
    }
    tg_tensor_retain(src);
    return src;
}

static tg_tensor *binary_f(tg_tensor *old, void *vctx) {
    op_ctx *c = vctx;
    tg_tensor *s = src_like(c->src, old->dtype, false);
    if (!s) return NULL;
    if ((c->op == '+' || c->op == '-') && c->alpha != 1.0) {
        bool whole = fabs(c->alpha) < 9e15 && c->alpha == (double)(int64_t)c->alpha;
        tg_dtype kt = tg_dtype_is_float(s->dtype) ? s->dtype : whole ? TG_INT64 : TG_FLOAT64;
        tg_tensor *k = tg_tensor_scalar(c->alpha, kt);
        tg_tensor *m = k ? tg_mul(s, k) : NULL;
        tg_tensor_release(k);
        tg_tensor_release(s);
        if (!m) return NULL;
        s = m;
    }
    tg_tensor *r = NULL;
    switch (c->op) {
    case '+': r = tg_add(old, s); break;
    case '-': r = tg_sub(old, s); break;
    case '*': r = tg_mul(old, s); break;
    case '/': r = tg_div(old, s); break;
    case '%': r = tg_remainder(old, s); break;    /* x %= y */
    case 'f': r = tg_floor_divide(old, s); break; /* x //= y */
    default: tg_error_set(TG_ERR_VALUE, "inplace: unknown operator '%c'", c->op);
    }
    tg_tensor_release(s);
    return r;
}

static tg_tensor *relu_f(tg_tensor *old, void *vctx) {
    (void)vctx;
    return tg_relu(old);
}

static tg_tensor *clip_f(tg_tensor *old, void *vctx) {
    op_ctx *c = vctx;
    return tg_clip(old, c->lo, c->hi);
}

/* where(mask, src, old): copy_ and fill_ (mask all ones), masked_fill_ and
 * x[mask] = v.  The old value gets a zero gradient where it is replaced. */
static tg_tensor *where_f(tg_tensor *old, void *vctx) {
    op_ctx *c = vctx;
    tg_tensor *m = c->mask;
    if (!m) m = tg_tensor_ones(old->ndim, old->shape, TG_FLOAT32);
    else tg_tensor_retain(m);
    tg_tensor *s = m ? src_like(c->src, old->dtype, true) : NULL;
    tg_tensor *r = s ? tg_where(m, s, old) : NULL;
    tg_tensor_release(s);
    tg_tensor_release(m);
    return r;
}

static bool grad_src(const tg_tensor *t) { return t && t->requires_grad; }

static tg_status run(const char *who, tg_tensor *dst, tg_inplace_fn f, op_ctx *c) {
    if (!dst) return tg_error_set(TG_ERR_VALUE, "%s: tensor is NULL", who);
    /* an assignment of a tensor in the graph (copy_) does not read the old value */
    bool history = !(f == where_f && !c->mask && grad_src(c->src));
    return write_impl(who, graph_base(dst), dst, dst, f, c, grad_src(c->src), history);
}

tg_status tg_tensor_inplace_(tg_tensor *dst, const tg_tensor *src, char op) {
    const char *who = op == '+' ? "iadd" : op == '-' ? "isub" : op == '*' ? "imul"
                      : op == '%' ? "imod" : op == 'f' ? "ifloordiv" : "idiv";
    if (op != '+' && op != '-' && op != '*' && op != '/' && op != '%' && op != 'f')
        return tg_error_set(TG_ERR_VALUE, "inplace: unknown operator '%c'", op);
    if (!src) return tg_error_set(TG_ERR_VALUE, "%s: source is NULL", who);
    op_ctx c = {.src = (tg_tensor *)src, .alpha = 1.0, .op = op};
    return run(who, dst, binary_f, &c);
}

tg_status tg_add_(tg_tensor *dst, tg_tensor *src, double alpha) {
    if (!src) return tg_error_set(TG_ERR_VALUE, "add_: source is NULL");
    op_ctx c = {.src = src, .alpha = alpha, .op = '+'};
    return run("add_", dst, binary_f, &c);
}
tg_status tg_sub_(tg_tensor *dst, tg_tensor *src, double alpha) {
    if (!src) return tg_error_set(TG_ERR_VALUE, "sub_: source is NULL");
    op_ctx c = {.src = src, .alpha = alpha, .op = '-'};
    return run("sub_", dst, binary_f, &c);
}
tg_status tg_mul_(tg_tensor *dst, tg_tensor *src) {
    if (!src) return tg_error_set(TG_ERR_VALUE, "mul_: source is NULL");
    op_ctx c = {.src = src, .alpha = 1.0, .op = '*'};
    return run("mul_", dst, binary_f, &c);
}
tg_status tg_div_(tg_tensor *dst, tg_tensor *src) {
    if (!src) return tg_error_set(TG_ERR_VALUE, "div_: source is NULL");
    op_ctx c = {.src = src, .alpha = 1.0, .op = '/'};
    return run("div_", dst, binary_f, &c);
}
tg_status tg_relu_(tg_tensor *dst) {
    op_ctx c = {0};
    return run("relu_", dst, relu_f, &c);
}
tg_status tg_clip_(tg_tensor *dst, double lo, double hi) {
    op_ctx c = {.lo = lo, .hi = hi};
    return run("clip_", dst, clip_f, &c);
}
tg_status tg_masked_fill_(tg_tensor *dst, tg_tensor *mask, tg_tensor *value) {
    if (!mask || !value) return tg_error_set(TG_ERR_VALUE, "masked_fill_: mask or value is NULL");
    if (!dst) return tg_error_set(TG_ERR_VALUE, "masked_fill_: tensor is NULL");
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes("masked_fill_", dst->ndim, dst->shape, mask->ndim, mask->shape, &nd, sh))
        return tg_error_status();
    if (!tg__same_shape(nd, sh, dst->ndim, dst->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "masked_fill_: a mask of shape %s does not broadcast to the tensor's "
                            "shape %s",
                            tg__shp(mask), tg__shp(dst));
    op_ctx c = {.src = value, .mask = mask};
    return run("masked_fill_", dst, where_f, &c);
}
/* Nothing to record (grad mode off, or neither the tensor's base nor the
 * value in the graph): the plain writes of core/tensor.c, as before. */
static bool plain_write(tg_tensor *dst, tg_tensor *src) {
    return !tg__grad_on() || (!grad_src(src) && !graph_base(dst)->requires_grad);
}

tg_status tg_assign_(tg_tensor *dst, tg_tensor *src) {
    if (!src || !dst) return tg_error_set(TG_ERR_VALUE, "copy_: tensor or source is NULL");
    if (plain_write(dst, src)) {
        bool prev = tg_set_grad_enabled(false);
        tg_status st = tg_tensor_copy_(dst, src);
        tg_set_grad_enabled(prev);
        return st;
    }
    op_ctx c = {.src = src};
    return run("copy_", dst, where_f, &c);
}
tg_status tg_fill_value_(tg_tensor *dst, double value) {
    if (!dst) return tg_error_set(TG_ERR_VALUE, "fill_: tensor is NULL");
    if (plain_write(dst, NULL)) {
        bool prev = tg_set_grad_enabled(false);
        tg_status st = tg_tensor_fill_(dst, value);
        tg_set_grad_enabled(prev);
        return st;
    }
    tg_tensor *v = tg_tensor_scalar(value, dst->dtype);
    if (!v) return tg_error_status();
    op_ctx c = {.src = v};
    tg_status st = run("fill_", dst, where_f, &c);
    tg_tensor_release(v);
    return st;
}

tg_status tg_setitem_(tg_tensor *x, tg_tensor *view, tg_tensor *src) {
    if (!x || !view || !src) return tg_error_set(TG_ERR_VALUE, "setitem: tensor is NULL");
    op_ctx c = {.src = src};
    return write_impl("setitem", graph_base(x), view, x, where_f, &c, grad_src(src), !grad_src(src));
}

tg_status tg_setitem_mask_(tg_tensor *x, tg_tensor *mask, tg_tensor *src) {
    if (!x || !mask || !src) return tg_error_set(TG_ERR_VALUE, "setitem: tensor is NULL");
    int nd;
    int64_t sh[TG_MAX_DIMS];
    if (tg__broadcast_shapes("setitem", x->ndim, x->shape, mask->ndim, mask->shape, &nd, sh))
        return tg_error_status();
    if (!tg__same_shape(nd, sh, x->ndim, x->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "setitem: a boolean mask of shape %s does not broadcast to the "
                            "tensor's shape %s",
                            tg__shp(mask), tg__shp(x));
    op_ctx c = {.src = src, .mask = mask};
    return write_impl("setitem", graph_base(x), x, x, where_f, &c, grad_src(src), true);
}
