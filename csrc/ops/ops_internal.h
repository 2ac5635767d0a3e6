/*
 * ops_internal.h -- what the op files of csrc/ops/ share: the core's
 * internal header, and the few helpers every VJP written with ops uses.
 * Included by the .c files of csrc/ops/ only (the engine and the core never
 * need it).
 */
#ifndef TG_OPS_INTERNAL_H
#define TG_OPS_INTERNAL_H

#include "../core/internal.h"

/* In a VJP: return the error status when a step (an op, a saved tensor)
 * gave NULL. */
#define CHECK(x) do { if (!(x)) return tg_error_status(); } while (0)

/* In a VJP `(tg_entry *e, ...)`: does input i need a gradient?  The saved
 * tensor i (NULL, error set, when it was freed or modified in place). */
#define NEED(i) tg_entry_needs_grad(e, (i))
#define SAVED(i) tg_entry_saved(e, (i))

/* f(a, b), releasing a and b: chains of ops without temporaries
 * (take2(tg_mul, tg_neg(x), y)).  NULL if a or b is NULL (error set). */
static inline tg_tensor *take2(tg_tensor *(*f)(tg_tensor *, tg_tensor *), tg_tensor *a, tg_tensor *b) {
    tg_tensor *r = (a && b) ? f(a, b) : NULL;
    tg_tensor_release(a);
    tg_tensor_release(b);
    return r;
}

/* The generic call of an op of one or two tensors and no parameters, for its
 * block's .apply (registry-driven tests and tools call ops through it):
 * APPLY1(exp) defines apply_exp(in, n, p) = tg_exp(in[0]).  tg_op_apply has
 * checked n against the op's arity; the check here keeps a direct call safe. */
static inline tg_tensor *tg__apply_unary(tg_tensor *(*f)(tg_tensor *), tg_tensor *const *in, int n) {
    if (n != 1) return TG_FAIL(TG_ERR_VALUE, "apply: expected 1 input, got %d", n);
    return f(in[0]);
}
static inline tg_tensor *tg__apply_binary(tg_tensor *(*f)(tg_tensor *, tg_tensor *),
                                          tg_tensor *const *in, int n) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: expected 2 inputs, got %d", n);
    return f(in[0], in[1]);
}
#define APPLY1(NAME)                                                                   \
    static tg_tensor *apply_##NAME(tg_tensor *const *in, int n, const tg_params *p) {  \
        (void)p;                                                                       \
        return tg__apply_unary(tg_##NAME, in, n);                                      \
    }
#define APPLY2(NAME)                                                                   \
    static tg_tensor *apply_##NAME(tg_tensor *const *in, int n, const tg_params *p) {  \
        (void)p;                                                                       \
        return tg__apply_binary(tg_##NAME, in, n);                                     \
    }
/* Record `out` (NULL passes through) as an entry of `op` with inputs a, b,
 * both saved for its VJP (so a write into either before backward is
 * caught: version counter and safe aliasing), and i0 = `i0` (a loss's
 * reduction, tri_matmul's mode). */
static inline tg_tensor *tg__record2(const tg_opdef *op, tg_tensor *a, tg_tensor *b, tg_tensor *out,
                                     int64_t i0) {
    tg_tensor *in[2] = {a, b};
    tg_entry *e;
    out = tg__finish(op, 2, in, out, &e);
    if (e) {
        e->params.i[0] = i0;
        if (tg__save(e, a) || tg__save(e, b)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

/* An int64 parameter (tg_params) for an int argument, saturated rather than
 * truncated: (int)2**32 is 0, which an op would take for a valid count or
 * mode; INT_MAX / INT_MIN is out of every range, so the op refuses it. */
static inline int tg__int_param(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int)v;
}

/* x[start:stop:step] along axis ax (already normalised), other dims whole:
 * a recorded slice (a view).  Shared by the shape ops and the NumPy functions. */
static inline tg_tensor *tg__slice_axis(tg_tensor *x, int64_t ax, int64_t start, int64_t stop,
                                        int64_t step) {
    int64_t starts[TG_MAX_DIMS] = {0}, stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        stops[d] = x->shape[d];
        steps[d] = 1;
    }
    starts[ax] = start;
    stops[ax] = stop;
    steps[ax] = step;
    return tg_slice(x, starts, stops, steps, 0);
}

/* x's values with axis ax moved last, C-contiguous, so that every row along
 * that axis is `x->shape[ax]` consecutive elements (no autograd).  fresh: a
 * new copy the caller may write into (the scans); otherwise x itself
 * (retained) when it is already laid out so (argmax/argmin only read).
 * Shared by the scans (scan.c) and argmax/argmin (reduce.c), which walk all
 * rows along one axis. */
static inline tg_tensor *tg__rows_last(tg_tensor *x, int64_t ax, bool fresh) {
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != ax) {
            sh[k] = x->shape[d];
            st[k++] = x->strides[d];
        }
    sh[k] = x->shape[ax];
    st[k] = x->strides[ax];
    tg_tensor *v = tg__view(x, x->ndim, sh, st, x->offset);
    if (!fresh && v && tg_tensor_is_contiguous(v)) return v;
    tg_tensor *c = v ? tg__copy(v) : NULL;
    tg_tensor_release(v);
    return c;
}

/* A reduction's entry params: the reduced axes (from `mask`), keepdims, the
 * input's shape, and the mask itself in params i[slot] (reduce.c's ops keep
 * it in i[0]; prod and norm in scan.c in i[3]). */
static inline void tg__store_reduced(tg_params *p, const tg_tensor *x, uint32_t mask, bool keepdims,
                                     int slot) {
    p->naxes = 0;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) p->axes[p->naxes++] = d;
    p->keepdims = keepdims;
    p->ndim = x->ndim;
    memcpy(p->shape, x->shape, sizeof p->shape);
    p->i[slot] = (int64_t)mask;
}

/* g (a reduction's output shape) broadcast back to the input's shape stored
 * by tg__store_reduced: reshaped to the keepdims shape, then a stride-0
 * view.  A new reference. */
static inline tg_tensor *tg__expand_reduced(const tg_params *p, tg_tensor *g, int slot) {
    int64_t kshape[TG_MAX_DIMS];
    uint32_t mask = (uint32_t)p->i[slot];
    for (int d = 0; d < p->ndim; d++) kshape[d] = (mask & (1u << d)) ? 1 : p->shape[d];
    tg_tensor *r = tg_reshape(g, p->ndim, kshape);
    tg_tensor *b = r ? tg_broadcast_to(r, p->ndim, p->shape) : NULL;
    tg_tensor_release(r);
    return b;
}

#endif /* TG_OPS_INTERNAL_H */
