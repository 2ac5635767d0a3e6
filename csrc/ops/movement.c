/*
 * movement.c -- ops that move or select elements: reshape, permute,
 * broadcast_to, contiguous, slicing, index_select, gather, concat, pad (and
 * squeeze, unsqueeze, flatten, transpose and stack built on them).
 *
 * Views share the input's storage (no copy): reshape of a compatible layout,
 * permute, broadcast_to and slice.  Their VJPs are ops too: the gradient of a
 * slice is scattered back by slice_backward, whose own VJP is a slice, so
 * higher-order gradients work through them.
 */
#include "ops_internal.h"

#include <stdlib.h>


/* The index of index_select/gather (and their VJP ops) is read again by the
 * VJP: save it, so that a write into it before backward is caught (version
 * counter, safe aliasing) instead of silently moving the gradient.  On
 * failure releases *out and returns the status. */
static tg_status save_index(tg_entry *e, tg_tensor **out, tg_tensor *index) {
    tg_status st = tg__save(e, index);
    if (st) {
        tg_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ===================================================================== */
/* reshape                                                                */
/* ===================================================================== */

/* Strides for viewing x with a new shape without copying, if possible (the
 * old and new dims are matched in groups with equal products; each group of
 * old dims must be contiguous within itself).  Returns false if a copy is
 * needed. */
static bool view_strides(const tg_tensor *x, int nd, const int64_t *shape, int64_t *out) {
    int64_t osh[TG_MAX_DIMS], ost[TG_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != 1) {
            osh[on] = x->shape[i];
            ost[on++] = x->strides[i];
        }
    if (x->numel == 0) {
        tg__contiguous_strides(nd, shape, out);
        return true;
    }
    int oi = 0, ni = 0;
    while (ni < nd) {
        if (shape[ni] == 1) {
            out[ni] = 1;
            ni++;
            continue;
        }
        if (oi >= on) return false;
        /* grow a group until the products match */
        int ob = oi, nb = ni;
        int64_t po = osh[oi++], pn = shape[ni++];
        while (po != pn) {
            if (po < pn) {
                if (oi >= on) return false;
                po *= osh[oi++];
            } else {
                while (ni < nd && shape[ni] == 1) out[ni++] = 1;
                if (ni >= nd) return false;
                pn *= shape[ni++];
            }
        }
        for (int k = ob; k < oi - 1; k++)
            if (ost[k] != ost[k + 1] * osh[k + 1]) return false;
        /* new strides inside the group, from its innermost old stride */
        int64_t s = ost[oi - 1];
        for (int k = ni - 1; k >= nb; k--) {
            out[k] = s;
            s *= shape[k];
        }
    }
    return oi == on;
}

tg_tensor *tg_reshape(tg_tensor *x, int nd, const int64_t *shape_in) {
    int64_t shape[TG_MAX_DIMS];
    if (nd < 0 || nd > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "reshape: %d dimensions requested, at most %d", nd, TG_MAX_DIMS);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            if (infer >= 0) return TG_FAIL(TG_ERR_VALUE, "reshape: can only specify one unknown dimension (-1)");
            infer = i;
        } else if (shape[i] < 0) {
            return TG_FAIL(TG_ERR_VALUE, "reshape: invalid size %lld in shape %s", (long long)shape[i],
                           tg__shp2(nd, shape_in));
        } else if (__builtin_mul_overflow(known, shape[i], &known)) {
            return TG_FAIL(TG_ERR_VALUE, "reshape: shape %s is too large", tg__shp2(nd, shape_in));
        }
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known)
            return TG_FAIL(TG_ERR_VALUE, "reshape: cannot reshape a tensor of size %lld into shape %s",
                           (long long)x->numel, tg__shp2(nd, shape_in));
        shape[infer] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel)
        return TG_FAIL(TG_ERR_VALUE,
                       "reshape: cannot reshape a tensor of shape %s (%lld elements) into shape %s "
                       "(%lld elements)",
                       tg__shp(x), (long long)x->numel, tg__shp2(nd, shape), (long long)known);
    int64_t st[TG_MAX_DIMS], n;
    tg_tensor *out;
    /* an empty result may still have huge sizes ((2**62, 3, 0)): its strides
     * must fit, as for any new tensor */
    if (tg__check_shape("reshape", nd, shape, tg_dtype_size(x->dtype), &n)) return NULL;
    if (view_strides(x, nd, shape, st)) {
        out = tg__view(x, nd, shape, st, x->offset);
    } else {
        tg_tensor *c = tg__copy(x);
        out = c ? tg__view(c, nd, shape, NULL, 0) : NULL;
        tg_tensor_release(c);
    }
    tg_entry *e;
    out = tg__finish(&tg_opdef_reshape, 1, &x, out, &e);
    if (e) {
        e->params.ndim = x->ndim;
        memcpy(e->params.shape, x->shape, sizeof e->params.shape);
    }
    return out;
}
static tg_status reshape_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = tg_reshape(g, e->params.ndim, e->params.shape));
    return TG_OK;
}
/* tg_opdef.grad_view: the target (the input's shape) seen with the
 * output's shape, when that is a view (a slice of qkv seen as heads) */
static tg_tensor *reshape_grad_view(tg_entry *e, tg_tensor *target) {
    int64_t st[TG_MAX_DIMS];
    if (!view_strides(target, e->out_ndim, e->out_shape, st)) return NULL;
    return tg__view(target, e->out_ndim, e->out_shape, st, target->offset);
}
static tg_tensor *apply_reshape(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_reshape(in[0], p->ndim, p->shape);
}
TG_DEFINE_OP(reshape, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = reshape(x, shape)", .forward_tex = "y = \\operatorname{reshape}(x)",
             .vjp = "dx = reshape(dy, x.shape)", .vjp_tex = "\\bar x = \\operatorname{reshape}(\\bar y, \\text{shape}(x))",
             .doc = "New shape, same elements in C order; a view when the layout allows.",
             .backward = reshape_vjp, .grad_view = reshape_grad_view, .apply = apply_reshape,
             .examples = "3x4|shape=12;3x4|shape=2,-1,3;T3x4|shape=12;2x3x4|shape=6,4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_squeeze(tg_tensor *x, const int64_t *axes, int naxes) {
    uint32_t mask = 0;
    if (axes) {
        if (tg__axes_mask("squeeze", axes, naxes, x->ndim, &mask)) return NULL;
        for (int d = 0; d < x->ndim; d++)
            if ((mask & (1u << d)) && x->shape[d] != 1)
                return TG_FAIL(TG_ERR_VALUE,
                               "squeeze: cannot select an axis to squeeze out which has size not "
                               "equal to one (axis %d of shape %s)",
                               d, tg__shp(x));
    } else {
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] == 1) mask |= 1u << d;
    }
    int64_t sh[TG_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(mask & (1u << d))) sh[nd++] = x->shape[d];
    return tg_reshape(x, nd, sh);
}

tg_tensor *tg_unsqueeze(tg_tensor *x, int64_t axis) {
    if (x->ndim >= TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "unsqueeze: the result would have more than %d dimensions", TG_MAX_DIMS);
    int64_t a;
    if (axis < -(x->ndim + 1) || axis > x->ndim)
        return TG_FAIL(TG_ERR_INDEX, "unsqueeze: axis %lld is out of range for a result with %d dimensions",
                       (long long)axis, x->ndim + 1);
    a = axis < 0 ? axis + x->ndim + 1 : axis;
    int64_t sh[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d <= x->ndim; d++) {
        if (d == a) sh[k++] = 1;
        if (d < x->ndim) sh[k++] = x->shape[d];
    }
    return tg_reshape(x, x->ndim + 1, sh);
}

tg_tensor *tg_flatten(tg_tensor *x, int64_t start, int64_t end) {
    if (x->ndim == 0) {
        int64_t one = 1;
        return tg_reshape(x, 1, &one);
    }
    int64_t s, e;
    if (tg__norm_axis("flatten", start, x->ndim, &s) || tg__norm_axis("flatten", end, x->ndim, &e))
        return NULL;
    if (s > e) return TG_FAIL(TG_ERR_VALUE, "flatten: start_axis %lld is after end_axis %lld", (long long)s, (long long)e);
    int64_t sh[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d <= s || d > e) sh[k++] = x->shape[d];
        else sh[k - 1] *= x->shape[d];
    }
    return tg_reshape(x, k, sh);
}

/* ===================================================================== */
/* permute / transpose                                                    */
/* ===================================================================== */

tg_tensor *tg_permute(tg_tensor *x, const int64_t *axes) {
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS], perm[TG_MAX_DIMS];
    uint32_t seen = 0;
    for (int i = 0; i < x->ndim; i++) {
        int64_t a;
        if (tg__norm_axis("permute", axes[i], x->ndim, &a)) return NULL;
        if (seen & (1u << a))
            return TG_FAIL(TG_ERR_VALUE, "permute: axis %lld is repeated in the permutation", (long long)axes[i]);
        seen |= 1u << a;
        perm[i] = a;
        sh[i] = x->shape[a];
        st[i] = x->strides[a];
    }
    tg_entry *e;
    tg_tensor *out = tg__finish(&tg_opdef_permute, 1, &x, tg__view(x, x->ndim, sh, st, x->offset), &e);
    if (e) {
        e->params.naxes = x->ndim;
        memcpy(e->params.axes, perm, sizeof perm);
    }
    return out;
}
static tg_status permute_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    int64_t inv[TG_MAX_DIMS];
    for (int i = 0; i < e->params.naxes; i++) inv[e->params.axes[i]] = i;
    CHECK(gi[0] = tg_permute(g, inv));
    return TG_OK;
}
/* tg_opdef.grad_view: the target (the input's shape) permuted as the
 * input was */
static tg_tensor *permute_grad_view(tg_entry *e, tg_tensor *target) {
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    if (e->params.naxes != target->ndim) return NULL;
    for (int i = 0; i < target->ndim; i++) {
        sh[i] = target->shape[e->params.axes[i]];
        st[i] = target->strides[e->params.axes[i]];
    }
    return tg__view(target, target->ndim, sh, st, target->offset);
}
static tg_tensor *apply_permute(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    if (p->naxes != in[0]->ndim) return TG_FAIL(TG_ERR_VALUE, "permute: %d axes for %d dims", p->naxes, in[0]->ndim);
    return tg_permute(in[0], p->axes);
}
TG_DEFINE_OP(permute, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = permute(x, axes)", .forward_tex = "y_{i_{p(0)} \\dots} = x_{i_0 \\dots}",
             .vjp = "dx = permute(dy, inverse(axes))", .vjp_tex = "\\bar x = \\operatorname{permute}(\\bar y, p^{-1})",
             .doc = "Reorder the axes (a view); transpose swaps two.", .backward = permute_vjp,
             .grad_view = permute_grad_view,
             .apply = apply_permute, .examples = "3x4|axes=1,0;2x3x4|axes=2,0,1;T3x4|axes=1,0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_transpose(tg_tensor *x, int64_t a, int64_t b) {
    int64_t aa, bb, perm[TG_MAX_DIMS];
    if (x->ndim < 2) { /* like NumPy's .T on 1-D: nothing to swap */
        if (x->ndim == 0 || (tg__norm_axis("transpose", a, x->ndim, &aa) == TG_OK &&
                             tg__norm_axis("transpose", b, x->ndim, &bb) == TG_OK)) {
            int64_t p0 = 0;
            return x->ndim == 0 ? tg_reshape(x, 0, NULL) : tg_permute(x, &p0);
        }
        return NULL;
    }
    if (tg__norm_axis("transpose", a, x->ndim, &aa) || tg__norm_axis("transpose", b, x->ndim, &bb))
        return NULL;
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[aa] = bb;
    perm[bb] = aa;
    return tg_permute(x, perm);
}

/* ===================================================================== */
/* broadcast_to                                                           */
/* ===================================================================== */

tg_tensor *tg_broadcast_to(tg_tensor *x, int nd, const int64_t *shape) {
    if (nd > 0 && !shape) return TG_FAIL(TG_ERR_VALUE, "broadcast_to: shape is NULL");
    if (nd > TG_MAX_DIMS || nd < 0)
        return TG_FAIL(TG_ERR_VALUE,
                       "broadcast_to: %d dimensions requested, at most %d are supported", nd,
                       TG_MAX_DIMS);
    if (nd < x->ndim)
        return TG_FAIL(TG_ERR_VALUE, "broadcast_to: cannot broadcast shape %s to %s (fewer dimensions)",
                       tg__shp(x), tg__shp2(nd, shape));
    int64_t st[TG_MAX_DIMS], numel;
    /* negative sizes and element counts that overflow (the view's numel) */
    if (tg__check_shape("broadcast_to", nd, shape, tg_dtype_size(x->dtype), &numel)) return NULL;
    for (int i = 0; i < nd; i++) {
        int j = x->ndim - nd + i;
        if (j < 0) {
            st[i] = 0;
        } else if (x->shape[j] == shape[i]) {
            st[i] = x->strides[j];
        } else if (x->shape[j] == 1 && shape[i] >= 0) {
            st[i] = 0;
        } else {
            return TG_FAIL(TG_ERR_VALUE,
                           "broadcast_to: cannot broadcast shape %s to %s: dim %d has size %lld, "
                           "expected 1 or %lld (the target size)",
                           tg__shp(x), tg__shp2(nd, shape), j, (long long)x->shape[j],
                           (long long)shape[i]);
        }
    }
    tg_entry *e;
    return tg__finish(&tg_opdef_broadcast_to, 1, &x, tg__view(x, nd, shape, st, x->offset), &e);
}
static tg_status broadcast_to_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    (void)e;
    /* the engine sums g back to the input's shape (sum_to_shape) */
    tg_tensor_retain(g);
    gi[0] = g;
    return TG_OK;
}
static tg_tensor *apply_broadcast_to(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_broadcast_to(in[0], p->ndim, p->shape);
}
TG_DEFINE_OP(broadcast_to, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = broadcast_to(x, shape)", .forward_tex = "y = \\operatorname{broadcast}(x)",
             .vjp = "dx = sum_to_shape(dy, x.shape)", .vjp_tex = "\\bar x = \\sum_{\\text{broadcast axes}} \\bar y",
             .doc = "Repeat size-1 and missing leading dims without copying (stride 0).",
             .backward = broadcast_to_vjp, .apply = apply_broadcast_to,
             .examples = "3x1|shape=3,4;4|shape=2,3,4;T1x3|shape=2,4,3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* contiguous                                                             */
/* ===================================================================== */

tg_tensor *tg_contiguous(tg_tensor *x) {
    if (tg_tensor_is_contiguous(x)) {
        tg_tensor_retain(x);
        return x;
    }
    tg_entry *e;
    return tg__finish(&tg_opdef_contiguous, 1, &x, tg__copy(x), &e);
}
static tg_status contiguous_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    (void)e;
    tg_tensor_retain(g);
    gi[0] = g;
    return TG_OK;
}
static tg_tensor *apply_contiguous(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    (void)p;
    return tg_contiguous(in[0]);
}
TG_DEFINE_OP(contiguous, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = copy of x in C order", .forward_tex = "y = x",
             .vjp = "dx = dy", .vjp_tex = "\\bar x = \\bar y",
             .doc = "A C-contiguous copy (the tensor itself if it already is).",
             .backward = contiguous_vjp, .apply = apply_contiguous, .examples = "T3x4;T2x3x4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* slicing                                                                */
/* ===================================================================== */

/* Python's slice.indices(): clamp start/stop for a dim of length n and
 * return the number of elements. */
static int64_t adjust_slice(int64_t n, int64_t *start, int64_t *stop, int64_t step) {
    if (*start < 0) {
        *start += n;
        if (*start < 0) *start = step < 0 ? -1 : 0;
    } else if (*start >= n) {
        *start = step < 0 ? n - 1 : n;
    }
    if (*stop < 0) {
        *stop += n;
        if (*stop < 0) *stop = step < 0 ? -1 : 0;
    } else if (*stop >= n) {
        *stop = step < 0 ? n - 1 : n;
    }
    if (step == INT64_MIN) return *stop < *start ? 1 : 0; /* -step would overflow */
    if (step < 0) return *stop < *start ? (*start - *stop - 1) / (-step) + 1 : 0;
    return *start < *stop ? (*stop - *start - 1) / step + 1 : 0;
}

/* Params layout for slice and slice_backward: ints[0..8) starts, ints[8..16)
 * steps, ints[16..24) lengths; i[0] index mask; shape/ndim: the input's. */
static tg_tensor *slice_view(tg_tensor *x, const tg_params *p) {
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS], off = x->offset;
    int nd = 0;
    uint32_t imask = (uint32_t)p->i[0];
    for (int d = 0; d < x->ndim; d++) {
        off += p->ints[d] * x->strides[d];
        if (imask & (1u << d)) continue;
        sh[nd] = p->ints[16 + d];
        st[nd++] = x->strides[d] * p->ints[8 + d];
    }
    return tg__view(x, nd, sh, st, off);
}

/* Normalise a slice request into the stored params (see above). */
static tg_status slice_params(int ndim, const int64_t *shape, const int64_t *starts,
                              const int64_t *stops, const int64_t *steps, uint32_t index_mask,
                              tg_params *p) {
    memset(p, 0, sizeof *p);
    for (int d = 0; d < ndim; d++) {
        int64_t n = shape[d];
        if (index_mask & (1u << d)) {
            int64_t i = starts[d];
            if (i < -n || i >= n)
                return tg_error_set(TG_ERR_INDEX,
                                    "index: index %lld is out of bounds for axis %d with size %lld",
                                    (long long)i, d, (long long)n);
            p->ints[d] = i < 0 ? i + n : i;
            p->ints[8 + d] = 1;
            p->ints[16 + d] = 1;
            continue;
        }
        int64_t step = steps ? steps[d] : 1;
        if (step == 0) return tg_error_set(TG_ERR_VALUE, "slice: slice step cannot be zero (dim %d)", d);
        int64_t s = starts[d], e = stops[d];
        int64_t len = adjust_slice(n, &s, &e, step);
        p->ints[d] = len > 0 ? s : 0;
        /* with at most one element the step is irrelevant: 1 keeps the view's
         * stride (stride * step) from overflowing for a step like INT64_MAX */
        p->ints[8 + d] = len > 1 ? step : 1;
        p->ints[16 + d] = len;
    }
    p->i[0] = index_mask;
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    return TG_OK;
}

tg_tensor *tg_slice(tg_tensor *x, const int64_t *starts, const int64_t *stops,
                    const int64_t *steps, uint32_t index_mask) {
    tg_params p;
    if (slice_params(x->ndim, x->shape, starts, stops, steps, index_mask, &p)) return NULL;
    tg_entry *e;
    tg_tensor *out = tg__finish(&tg_opdef_slice, 1, &x, slice_view(x, &p), &e);
    if (e) e->params = p;
    return out;
}

/* The common slice x[..., a:b, ...] (one axis, step 1, no integer index)
 * of a contiguous gradient: out written in one pass, zeros around each
 * copied block (instead of zeroing all of out and copying over it).  *res
 * is out (new), or NULL when the slice is not of that kind; returns the
 * status (an allocation failure). */
static tg_status slice_backward_block(tg_tensor *g, const tg_params *p, tg_tensor **res) {
    *res = NULL;
    if (p->i[0] != 0 || !tg_tensor_is_contiguous(g) || g->ndim != p->ndim) return TG_OK;
    int ax = -1;
    for (int d = 0; d < p->ndim; d++) {
        bool whole = p->ints[d] == 0 && p->ints[8 + d] == 1 && p->ints[16 + d] == p->shape[d];
        if (whole) continue;
        if (ax >= 0 || p->ints[8 + d] != 1) return TG_OK;
        ax = d;
    }
    for (int d = 0; d < p->ndim; d++)
        if (g->shape[d] != (d == ax ? p->ints[16 + d] : p->shape[d])) return TG_OK; /* the caller reports it */
    tg_tensor *out = tg_tensor_empty(p->ndim, p->shape, g->dtype);
    if (!out) return tg_error_status();
    *res = out;
    if (ax < 0) { /* the whole tensor */
        if (g->numel) memcpy(tg_tensor_data(out), tg_tensor_data(g), (size_t)g->numel * tg_dtype_size(g->dtype));
        return TG_OK;
    }
    /* nothing to write: without this an empty tensor whose axes after the
     * slice's hold a 0 but whose axes before it are huge ran the loop below
     * outer times over zero bytes (found by the bounded fuzzing: a 38 s
     * timeout) */
    if (out->numel == 0) return TG_OK;
    size_t isz = tg_dtype_size(g->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= p->shape[d];
    for (int d = ax + 1; d < p->ndim; d++) inner *= p->shape[d];
    size_t before = (size_t)(p->ints[ax] * inner) * isz, block = (size_t)(p->ints[16 + ax] * inner) * isz;
    size_t row = (size_t)(p->shape[ax] * inner) * isz, after = row - before - block;
    char *o = tg_tensor_data(out);
    const char *src = tg_tensor_data(g);
    for (int64_t i = 0; i < outer; i++, o += row, src += block) {
        memset(o, 0, before);
        if (block) memcpy(o + before, src, block);
        memset(o + before + block, 0, after);
    }
    return TG_OK;
}

static tg_tensor *slice_backward(tg_tensor *g, const tg_params *p) {
    tg_tensor *out;
    if (slice_backward_block(g, p, &out)) return NULL;
    if (out) {
        tg_entry *e;
        out = tg__finish(&tg_opdef_slice_backward, 1, &g, out, &e);
        if (e) e->params = *p;
        return out;
    }
    out = tg_tensor_zeros(p->ndim, p->shape, g->dtype);
    if (!out) return NULL;
    tg_tensor *v = slice_view(out, p);
    if (!v) {
        tg_tensor_release(out);
        return NULL;
    }
    if (!tg__same_shape(v->ndim, v->shape, g->ndim, g->shape)) {
        tg_error_set(TG_ERR_VALUE, "slice_backward: gradient of shape %s for a slice of shape %s",
                     tg__shp(g), tg__shp(v));
        tg_tensor_release(v);
        tg_tensor_release(out);
        return NULL;
    }
    tg__copy_into(v, g);
    tg_tensor_release(v);
    tg_entry *e;
    out = tg__finish(&tg_opdef_slice_backward, 1, &g, out, &e);
    if (e) e->params = *p;
    return out;
}
static tg_status slice_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = slice_backward(g, &e->params));
    return TG_OK;
}
/* The engine's direct route (tg_opdef.grad_view): where the slice's
 * gradient goes in a tensor of the input's shape is the same slice of it,
 * so q, k, v = qkv.split(C, -1) add their gradients into qkv's pending sum
 * with one pass over their own bytes (no zero tensor of qkv's shape, no
 * add of all of it). */
static tg_tensor *slice_grad_view(tg_entry *e, tg_tensor *target) {
    return slice_view(target, &e->params);
}
static tg_status slice_backward_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* the same slice, recorded, so that third derivatives work too */
    const tg_params *p = &e->params;
    int64_t starts[TG_MAX_DIMS], stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int d = 0; d < p->ndim; d++) {
        starts[d] = p->ints[d];
        steps[d] = p->ints[8 + d];
        stops[d] = p->ints[d] + p->ints[8 + d] * p->ints[16 + d];
        if (stops[d] < 0) stops[d] = INT64_MIN; /* a negative step down to index 0 */
    }
    CHECK(gi[0] = tg_slice(g, starts, stops, steps, (uint32_t)p->i[0]));
    return TG_OK;
}
/* apply params for both: ints[0..8) starts, ints[8..16) stops, ints[16..24)
 * steps, i0 index mask (the API's layout); slice_backward also takes the
 * sliced tensor's shape in `shape`. */
static tg_tensor *apply_slice(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_slice(in[0], p->ints, p->ints + 8, p->ints + 16, (uint32_t)p->i[0]);
}
static tg_tensor *apply_slice_backward(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_params q;
    int64_t numel; /* the target shape is the caller's: check it before slicing it */
    if (tg__check_shape("slice_backward", p->ndim, p->shape, tg_dtype_size(in[0]->dtype), &numel))
        return NULL;
    if (slice_params(p->ndim, p->shape, p->ints, p->ints + 8, p->ints + 16, (uint32_t)p->i[0], &q))
        return NULL;
    return slice_backward(in[0], &q);
}
TG_DEFINE_OP(slice, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = x[start:stop:step, i, ...]", .forward_tex = "y = x[\\text{slices}]",
             .vjp = "dx = slice_backward(dy): zeros with dy written into the slice",
             .vjp_tex = "\\bar x = 0,\\ \\bar x[\\text{slices}] = \\bar y",
             .doc = "Basic slicing with integers and slices of any step (a view).",
             .backward = slice_vjp, .grad_view = slice_grad_view, .apply = apply_slice,
             .examples = "5x4|ints=1,0,0,0,0,0,0,0,4,4,0,0,0,0,0,0,2,1;"
                         "5x4|ints=4,0,0,0,0,0,0,0,-9223372036854775807,4,0,0,0,0,0,0,-2,1;"
                         "T5x4|ints=2,1,0,0,0,0,0,0,0,3,0,0,0,0,0,0,1,1 i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(slice_backward, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = zeros(shape); y[slices] = x", .forward_tex = "y = 0,\\ y[\\text{slices}] = x",
             .vjp = "dx = dy[slices]", .vjp_tex = "\\bar x = \\bar y[\\text{slices}]",
             .doc = "Scatter a slice's gradient back into zeros of the sliced tensor's shape.",
             .backward = slice_backward_vjp, .apply = apply_slice_backward,
             .examples = "2x4|shape=5,4 ints=1,0,0,0,0,0,0,0,4,4,0,0,0,0,0,0,2,1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* index_select / index_add                                               */
/* ===================================================================== */

static tg_status check_index(const char *who, const tg_tensor *idx, int64_t n, int64_t axis) {
    if (idx->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE, "%s: indices must be int64, got %s", who,
                            tg_dtype_name(idx->dtype));
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        if (n < 0 || v >= n || (v < 0 && v < -n)) /* (n from a generic call's shape=: -n may overflow) */
            return tg_error_set(TG_ERR_INDEX,
                                "%s: index %lld is out of bounds for axis %lld with size %lld", who,
                                (long long)v, (long long)axis, (long long)n);
    }
    return TG_OK;
}

/* d[t] += s[t] for n elements of dtype dt (integers wrap like NumPy's, bool
 * is logical or). */
static void add_elems(char *d, const char *s, int64_t n, tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: for (int64_t t = 0; t < n; t++) ((float *)d)[t] += ((const float *)s)[t]; break;
    case TG_FLOAT64: for (int64_t t = 0; t < n; t++) ((double *)d)[t] += ((const double *)s)[t]; break;
    case TG_INT64:
        for (int64_t t = 0; t < n; t++) ((int64_t *)d)[t] = tg__wrap_add(((int64_t *)d)[t], ((const int64_t *)s)[t]);
        break;
    case TG_INT32:
        for (int64_t t = 0; t < n; t++)
            ((int32_t *)d)[t] = (int32_t)((uint32_t)((int32_t *)d)[t] + (uint32_t)((const int32_t *)s)[t]);
        break;
    case TG_UINT8: for (int64_t t = 0; t < n; t++) ((uint8_t *)d)[t] = (uint8_t)(((uint8_t *)d)[t] + ((const uint8_t *)s)[t]); break;
    case TG_BOOL: for (int64_t t = 0; t < n; t++) ((uint8_t *)d)[t] |= ((const uint8_t *)s)[t]; break;
    default: break;
    }
}

/* Copy (or add, if add) blocks: dst[o, j, :] (+)= src[o, k(j), :]. */
static void move_blocks(char *dst, const char *src, int64_t outer, int64_t nj, int64_t dst_axis,
                        int64_t src_axis, int64_t inner, const int64_t *index, bool scatter,
                        bool add, tg_dtype dt) {
    size_t isz = tg_dtype_size(dt);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < nj; j++) {
            int64_t k = index[j];
            int64_t di = scatter ? k : j, si = scatter ? j : k;
            char *d = dst + ((o * dst_axis + di) * inner) * (int64_t)isz;
            const char *s = src + ((o * src_axis + si) * inner) * (int64_t)isz;
            if (!add) memcpy(d, s, (size_t)inner * isz);
            else add_elems(d, s, inner, dt);
        }
    }
}

static int64_t *flat_index(const tg_tensor *idx, int64_t n) {
    int64_t *ix = malloc((size_t)(idx->numel ? idx->numel : 1) * sizeof *ix);
    if (!ix) return TG_FAIL(TG_ERR_MEMORY, "index: out of memory");
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        ix[i] = v < 0 ? v + n : v;
    }
    return ix;
}

tg_tensor *tg_index_select(tg_tensor *x, int64_t axis, tg_tensor *index) {
    int64_t ax;
    if (x->ndim == 0) return TG_FAIL(TG_ERR_INDEX, "index_select: cannot index a 0-d tensor");
    if (tg__norm_axis("index_select", axis, x->ndim, &ax)) return NULL;
    if (check_index("index_select", index, x->shape[ax], ax)) return NULL;
    int nd = x->ndim - 1 + index->ndim;
    if (nd > TG_MAX_DIMS) return TG_FAIL(TG_ERR_VALUE, "index_select: result has more than %d dims", TG_MAX_DIMS);
    int64_t sh[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < ax; d++) sh[k++] = x->shape[d];
    for (int d = 0; d < index->ndim; d++) sh[k++] = index->shape[d];
    for (int d = (int)ax + 1; d < x->ndim; d++) sh[k++] = x->shape[d];
    tg_tensor *xc = tg__copy(x);
    tg_tensor *out = xc ? tg_tensor_empty(nd, sh, x->dtype) : NULL;
    int64_t *ix = out ? flat_index(index, x->shape[ax]) : NULL;
    if (ix) {
        /* an empty result has nothing to copy, however large its other
         * dims (and their product could even overflow) */
        if (out->numel > 0) {
            int64_t outer = 1, inner = 1;
            for (int d = 0; d < ax; d++) outer *= x->shape[d];
            for (int d = (int)ax + 1; d < x->ndim; d++) inner *= x->shape[d];
            move_blocks(tg_tensor_data(out), tg_tensor_data(xc), outer, index->numel,
                        index->numel, x->shape[ax], inner, ix, false, false, x->dtype);
        }
        free(ix);
    } else {
        tg_tensor_release(out);
        out = NULL;
    }
    tg_tensor_release(xc);
    tg_tensor *in[2] = {x, index};
    tg_entry *e;
    out = tg__finish(&tg_opdef_index_select, 2, in, out, &e);
    if (e) {
        e->params.i[0] = ax;
        e->params.ndim = x->ndim;
        memcpy(e->params.shape, x->shape, sizeof e->params.shape);
        if (save_index(e, &out, index)) return NULL;
    }
    return out;
}

/* out = zeros(shape); out[..., index[j], ...] += src[..., j, ...] */
static tg_tensor *index_add(tg_tensor *src, tg_tensor *index, int64_t ax, int nd, const int64_t *shape) {
    tg_tensor *out = tg_tensor_zeros(nd, shape, src->dtype);
    tg_tensor *sc = out ? tg__copy(src) : NULL;
    int64_t *ix = sc ? flat_index(index, shape[ax]) : NULL;
    if (!ix) {
        tg_tensor_release(out);
        tg_tensor_release(sc);
        return NULL;
    }
    if (sc->numel > 0 && out->numel > 0) { /* nothing to add otherwise (see index_select) */
        int64_t outer = 1, inner = 1;
        for (int d = 0; d < ax; d++) outer *= shape[d];
        for (int d = (int)ax + 1; d < nd; d++) inner *= shape[d];
        move_blocks(tg_tensor_data(out), tg_tensor_data(sc), outer, index->numel, shape[ax],
                    index->numel, inner, ix, true, true, src->dtype);
    }
    free(ix);
    tg_tensor_release(sc);
    tg_tensor *in[2] = {src, index};
    tg_entry *e;
    out = tg__finish(&tg_opdef_index_add, 2, in, out, &e);
    if (e) {
        e->params.i[0] = ax;
        if (save_index(e, &out, index)) return NULL;
    }
    return out;
}
static tg_status index_select_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *index = tg_entry_saved(e, 0);
    CHECK(index);
    CHECK(gi[0] = index_add(g, index, e->params.i[0], e->params.ndim, e->params.shape));
    return TG_OK;
}
static tg_status index_add_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *index = tg_entry_saved(e, 0);
    CHECK(index);
    CHECK(gi[0] = tg_index_select(g, e->params.i[0], index));
    return TG_OK;
}
static tg_tensor *apply_index_select(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_index_select(in[0], p->i[0], in[1]);
}
static tg_tensor *apply_index_add(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    int64_t ax, numel;
    if (p->ndim < 1 || p->ndim > TG_MAX_DIMS)
        return TG_FAIL(TG_ERR_VALUE, "index_add: the target shape must have 1 to %d dimensions", TG_MAX_DIMS);
    if (tg__require_float("index_add", in[0]) || tg__norm_axis("index_add", p->i[0], p->ndim, &ax) ||
        tg__check_shape("index_add", p->ndim, p->shape, tg_dtype_size(in[0]->dtype), &numel))
        return NULL;
    if (check_index("index_add", in[1], p->shape[ax], ax)) return NULL;
    /* the source must be shape[:ax] + index.shape + shape[ax+1:] (the kernel
     * reads it with that geometry) */
    int64_t want[TG_MAX_DIMS];
    int nw = 0;
    bool fits = p->ndim - 1 + in[1]->ndim <= TG_MAX_DIMS;
    for (int d = 0; fits && d < p->ndim; d++) {
        if (d != ax) want[nw++] = p->shape[d];
        else
            for (int k = 0; k < in[1]->ndim; k++) want[nw++] = in[1]->shape[k];
    }
    if (!fits || !tg__same_shape(in[0]->ndim, in[0]->shape, nw, want))
        return TG_FAIL(TG_ERR_VALUE,
                       "index_add: the source has shape %s, expected %s (the target shape with "
                       "axis %lld replaced by the index shape %s)",
                       tg__shp(in[0]), fits ? tg__shp2(nw, want) : "(too many dimensions)",
                       (long long)ax, tg__shp(in[1]));
    return index_add(in[0], in[1], ax, p->ndim, p->shape);
}
TG_DEFINE_OP(index_select, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64,int64; index int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = x[..., index, ...] along axis", .forward_tex = "y = x[\\ldots, \\mathrm{idx}, \\ldots]",
             .vjp = "dx = index_add(zeros(x.shape), axis, index, dy)",
             .vjp_tex = "\\bar x[\\ldots, \\mathrm{idx}_j, \\ldots] \\mathrel{+}= \\bar y[\\ldots, j, \\ldots]",
             .doc = "Pick entries along an axis with an int64 index array of any shape (i0 = axis).",
             .backward = index_select_vjp, .apply = apply_index_select,
             .examples = "5x3,i5:7|i0=0;3x5,i5:2x2|i0=1;T5x3,i3:4|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(index_add, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64; index int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = zeros(shape); y[..., index[j], ...] += x[..., j, ...]",
             .forward_tex = "y[\\ldots, \\mathrm{idx}_j, \\ldots] \\mathrel{+}= x[\\ldots, j, \\ldots]",
             .vjp = "dx = index_select(dy, axis, index)", .vjp_tex = "\\bar x = \\bar y[\\ldots, \\mathrm{idx}, \\ldots]",
             .doc = "Accumulate rows into zeros at the given indices (the VJP of index_select).",
             .backward = index_add_vjp, .apply = apply_index_add,
             .examples = "7x3,i5:7|i0=0 shape=5,3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* gather / scatter_add (torch.gather, numpy.take_along_axis)             */
/* ===================================================================== */

/* Walk every element of `idx` (shape = out shape for gather, src shape for
 * scatter) with its multi-index; map to x's flat offset replacing the axis
 * coordinate by idx's value. */
static void gather_scatter(tg_tensor *big, tg_tensor *small, tg_tensor *idx, int64_t ax, bool scatter) {
    int nd = idx->ndim;
    int64_t pos[TG_MAX_DIMS] = {0};
    size_t isz = tg_dtype_size(big->dtype);
    char *pb = tg_tensor_data(big), *ps = tg_tensor_data(small);
    for (int64_t k = 0; k < idx->numel; k++) {
        int64_t v = tg__get_flat_i64(idx, k);
        if (v < 0) v += big->shape[ax];
        int64_t ob = 0, os = 0;
        for (int d = 0; d < nd; d++) {
            ob += (d == ax ? v : pos[d]) * big->strides[d];
            os += pos[d] * small->strides[d];
        }
        char *b = pb + ob * (int64_t)isz, *s = ps + os * (int64_t)isz;
        if (!scatter) memcpy(s, b, isz);
        else add_elems(b, s, 1, big->dtype);
        for (int d = nd - 1; d >= 0; d--) {
            if (++pos[d] < idx->shape[d]) break;
            pos[d] = 0;
        }
    }
}

static tg_status check_gather(const char *who, const tg_tensor *x, const tg_tensor *idx, int64_t axis,
                              int64_t *ax) {
    if (x->ndim == 0) return tg_error_set(TG_ERR_INDEX, "%s: cannot index a 0-d tensor", who);
    if (tg__norm_axis(who, axis, x->ndim, ax)) return tg_error_status();
    if (idx->ndim != x->ndim)
        return tg_error_set(TG_ERR_VALUE,
                            "%s: index has %d dimensions but the tensor has %d; they must match "
                            "(use index[:, None] to add an axis)",
                            who, idx->ndim, x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (d != *ax && idx->shape[d] > x->shape[d])
            return tg_error_set(TG_ERR_VALUE,
                                "%s: index shape %s is larger than the tensor's %s in dim %d", who,
                                tg__shp(idx), tg__shp(x), d);
    return check_index(who, idx, x->shape[*ax], *ax);
}

tg_tensor *tg_gather(tg_tensor *x, int64_t axis, tg_tensor *index) {
    int64_t ax;
    if (check_gather("gather", x, index, axis, &ax)) return NULL;
    tg_tensor *out = tg_tensor_empty(index->ndim, index->shape, x->dtype);
    if (!out) return NULL;
    gather_scatter(x, out, index, ax, false);
    tg_tensor *in[2] = {x, index};
    tg_entry *e;
    out = tg__finish(&tg_opdef_gather, 2, in, out, &e);
    if (e) {
        e->params.i[0] = ax;
        e->params.ndim = x->ndim;
        memcpy(e->params.shape, x->shape, sizeof e->params.shape);
        if (save_index(e, &out, index)) return NULL;
    }
    return out;
}

static tg_tensor *scatter_add(tg_tensor *src, tg_tensor *index, int64_t ax, int nd, const int64_t *shape) {
    tg_tensor *out = tg_tensor_zeros(nd, shape, src->dtype);
    if (!out) return NULL;
    gather_scatter(out, src, index, ax, true);
    tg_tensor *in[2] = {src, index};
    tg_entry *e;
    out = tg__finish(&tg_opdef_scatter_add, 2, in, out, &e);
    if (e) {
        e->params.i[0] = ax;
        if (save_index(e, &out, index)) return NULL;
    }
    return out;
}
static tg_status gather_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *index = tg_entry_saved(e, 0);
    CHECK(index);
    CHECK(gi[0] = scatter_add(g, index, e->params.i[0], e->params.ndim, e->params.shape));
    return TG_OK;
}
static tg_status scatter_add_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *index = tg_entry_saved(e, 0);
    CHECK(index);
    CHECK(gi[0] = tg_gather(g, e->params.i[0], index));
    return TG_OK;
}
static tg_tensor *apply_gather(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_gather(in[0], p->i[0], in[1]);
}
static tg_tensor *apply_scatter_add(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    tg_tensor tmp = {.ndim = p->ndim};
    memcpy(tmp.shape, p->shape, sizeof tmp.shape);
    int64_t ax;
    if (check_gather("scatter_add", &tmp, in[1], p->i[0], &ax)) return NULL;
    if (!tg__same_shape(in[0]->ndim, in[0]->shape, in[1]->ndim, in[1]->shape))
        return TG_FAIL(TG_ERR_VALUE, "scatter_add: source shape %s must equal the index shape %s",
                       tg__shp(in[0]), tg__shp(in[1]));
    return scatter_add(in[0], in[1], ax, p->ndim, p->shape);
}
TG_DEFINE_OP(gather, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64,int64; index int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y[i][j] = x[i][index[i][j]] (axis 1)",
             .forward_tex = "y_{ij} = x_{i,\\,\\mathrm{idx}_{ij}}",
             .vjp = "dx = scatter_add(zeros(x.shape), axis, index, dy)",
             .vjp_tex = "\\bar x_{i,\\,\\mathrm{idx}_{ij}} \\mathrel{+}= \\bar y_{ij}",
             .doc = "Pick one entry per position along an axis (torch.gather, np.take_along_axis; i0 = axis).",
             .backward = gather_vjp, .apply = apply_gather,
             .examples = "4x5,i5:4x1|i0=1;4x5,i5:4x3|i0=1;4x5,i4:2x5|i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
TG_DEFINE_OP(scatter_add, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64; index int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = zeros(shape); y[i][index[i][j]] += x[i][j] (axis 1)",
             .forward_tex = "y_{i,\\,\\mathrm{idx}_{ij}} \\mathrel{+}= x_{ij}",
             .vjp = "dx = gather(dy, axis, index)", .vjp_tex = "\\bar x_{ij} = \\bar y_{i,\\,\\mathrm{idx}_{ij}}",
             .doc = "Accumulate into zeros at the given positions (the VJP of gather).",
             .backward = scatter_add_vjp, .apply = apply_scatter_add,
             .examples = "4x3,i5:4x3|i0=1 shape=4,5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* concat / stack                                                         */
/* ===================================================================== */

tg_tensor *tg_concat(int n, tg_tensor *const *xs, int64_t axis) {
    if (n <= 0) return TG_FAIL(TG_ERR_VALUE, "concat: need at least one tensor");
    tg_tensor *x0 = xs[0];
    if (x0->ndim == 0) return TG_FAIL(TG_ERR_VALUE, "concat: zero-dimensional tensors cannot be concatenated");
    int64_t ax;
    if (tg__norm_axis("concat", axis, x0->ndim, &ax)) return NULL;
    tg_dtype dt = x0->dtype;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        tg_tensor *x = xs[i];
        if (x->ndim != x0->ndim)
            return TG_FAIL(TG_ERR_VALUE,
                           "concat: all tensors must have the same number of dimensions, tensor 0 "
                           "has %d and tensor %d has %d",
                           x0->ndim, i, x->ndim);
        for (int d = 0; d < x0->ndim; d++)
            if (d != ax && x->shape[d] != x0->shape[d])
                return TG_FAIL(TG_ERR_VALUE,
                               "concat: sizes must match except along axis %lld: tensor 0 has shape "
                               "%s and tensor %d has shape %s (dim %d)",
                               (long long)ax, tg__shp(x0), i, tg__shp(x), d);
        total += x->shape[ax];
        dt = tg_dtype_promote(dt, x->dtype);
    }
    int64_t sh[TG_MAX_DIMS];
    memcpy(sh, x0->shape, sizeof sh);
    sh[ax] = total;
    tg_tensor *out = tg_tensor_empty(x0->ndim, sh, dt);
    if (!out) return NULL;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t vsh[TG_MAX_DIMS];
        memcpy(vsh, sh, sizeof vsh);
        vsh[ax] = xs[i]->shape[ax];
        tg_tensor *v = tg__view(out, out->ndim, vsh, out->strides, off * out->strides[ax]);
        if (!v) {
            tg_tensor_release(out);
            return NULL;
        }
        tg__copy_into(v, xs[i]);
        tg_tensor_release(v);
        off += xs[i]->shape[ax];
    }
    tg_entry *e;
    out = tg__finish(&tg_opdef_concat, n, xs, out, &e);
    if (e) e->params.i[0] = ax;
    return out;
}
static tg_status concat_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    int64_t ax = e->params.i[0], off = 0;
    for (int i = 0; i < e->n_inputs; i++) {
        int64_t len = e->inputs[i]->shape[ax];
        if (tg_entry_needs_grad(e, i)) {
            int64_t starts[TG_MAX_DIMS] = {0}, stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
            for (int d = 0; d < g->ndim; d++) {
                stops[d] = g->shape[d];
                steps[d] = 1;
            }
            starts[ax] = off;
            stops[ax] = off + len;
            tg_tensor *s = tg_slice(g, starts, stops, steps, 0);
            CHECK(s);
            gi[i] = s;
        }
        off += len;
    }
    return TG_OK;
}
static tg_tensor *apply_concat(tg_tensor *const *in, int n, const tg_params *p) {
    return tg_concat(n, in, p->i[0]);
}
TG_DEFINE_OP(concat, .arity = -1, .diff_mask = 0xFFFFFFFFu, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = [x1, x2, ...] along axis", .forward_tex = "y = [x_1; x_2; \\ldots]",
             .vjp = "dx_k = the k-th block of dy", .vjp_tex = "\\bar x_k = \\bar y[\\text{block } k]",
             .doc = "Join tensors along an existing axis (i0).", .backward = concat_vjp,
             .apply = apply_concat, .examples = "2x3,4x3|i0=0;2x3,2x1,T2x2|i0=1;3,2,4|i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_stack(int n, tg_tensor *const *xs, int64_t axis) {
    if (n <= 0) return TG_FAIL(TG_ERR_VALUE, "stack: need at least one tensor");
    int64_t ax;
    int nd = xs[0]->ndim + 1;
    if (axis < -nd || axis >= nd)
        return TG_FAIL(TG_ERR_INDEX, "stack: axis %lld is out of range for a result with %d dimensions",
                       (long long)axis, nd);
    ax = axis < 0 ? axis + nd : axis;
    for (int i = 1; i < n; i++)
        if (!tg__same_shape(xs[i]->ndim, xs[i]->shape, xs[0]->ndim, xs[0]->shape))
            return TG_FAIL(TG_ERR_VALUE, "stack: all tensors must have the same shape, tensor 0 has %s and tensor %d has %s",
                           tg__shp(xs[0]), i, tg__shp(xs[i]));
    tg_tensor **us = calloc((size_t)n, sizeof *us);
    if (!us) return TG_FAIL(TG_ERR_MEMORY, "stack: out of memory");
    tg_tensor *out = NULL;
    int i;
    for (i = 0; i < n; i++)
        if (!(us[i] = tg_unsqueeze(xs[i], ax))) break;
    if (i == n) out = tg_concat(n, us, ax);
    for (int k = 0; k < n; k++) tg_tensor_release(us[k]);
    free(us);
    return out;
}

/* ===================================================================== */
/* pad                                                                    */
/* ===================================================================== */

tg_tensor *tg_pad(tg_tensor *x, const int64_t *pads, double value) {
    int64_t sh[TG_MAX_DIMS];
    int64_t off = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (pads[2 * d] < 0 || pads[2 * d + 1] < 0)
            return TG_FAIL(TG_ERR_VALUE, "pad: pad widths must be >= 0, got (%lld, %lld) for dim %d",
                           (long long)pads[2 * d], (long long)pads[2 * d + 1], d);
        if (__builtin_add_overflow(x->shape[d], pads[2 * d], &sh[d]) ||
            __builtin_add_overflow(sh[d], pads[2 * d + 1], &sh[d]))
            return TG_FAIL(TG_ERR_MEMORY, "pad: padding %s by (%lld, %lld) on dim %d overflows the size",
                           tg__shp(x), (long long)pads[2 * d], (long long)pads[2 * d + 1], d);
    }
    int64_t numel;
    if (tg__check_shape("pad", x->ndim, sh, tg_dtype_size(x->dtype), &numel)) return NULL;
    tg_tensor *out = tg_tensor_full(x->ndim, sh, value, x->dtype);
    if (!out) return NULL;
    for (int d = 0; d < x->ndim; d++) off += pads[2 * d] * out->strides[d];
    tg_tensor *v = tg__view(out, x->ndim, x->shape, out->strides, off);
    if (!v) {
        tg_tensor_release(out);
        return NULL;
    }
    tg__copy_into(v, x);
    tg_tensor_release(v);
    tg_entry *e;
    out = tg__finish(&tg_opdef_pad, 1, &x, out, &e);
    if (e) {
        for (int d = 0; d < x->ndim; d++) {
            e->params.ints[2 * d] = pads[2 * d];
            e->params.ints[2 * d + 1] = pads[2 * d + 1];
        }
        e->params.f[0] = value;
    }
    return out;
}
static tg_status pad_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = e->inputs[0];
    int64_t starts[TG_MAX_DIMS], stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        starts[d] = e->params.ints[2 * d];
        stops[d] = starts[d] + x->shape[d];
        steps[d] = 1;
    }
    CHECK(gi[0] = tg_slice(g, starts, stops, steps, 0));
    return TG_OK;
}
static tg_tensor *apply_pad(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_pad(in[0], p->ints, p->f[0]);
}
TG_DEFINE_OP(pad, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64,int64",
             .flops = {TG_FLOPS_NONE},
             .forward = "y = x surrounded by a constant", .forward_tex = "y = \\operatorname{pad}(x, c)",
             .vjp = "dx = dy[inner region]", .vjp_tex = "\\bar x = \\bar y[\\text{interior}]",
             .doc = "Constant padding; ints[2d], ints[2d+1] = before/after dim d, f0 = value.",
             .backward = pad_vjp, .apply = apply_pad,
             .examples = "3x4|ints=1,2,0,1 f0=0.5;T2x3|ints=0,0,2,2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
