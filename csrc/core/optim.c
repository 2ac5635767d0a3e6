/*
 * optim.c -- fused optimizer steps: one call updates every parameter of a
 * list in place, with a plain C loop over the elements (no op per element,
 * no tape).  The update formulas are PyTorch's (torch.optim, version 2.x,
 * maximize=False, the single-tensor implementation), written out above
 * each function.
 *
 * Precision: each element is computed in double and every state value
 * (momentum buffers, moving averages, the parameter) is rounded to the
 * tensor's dtype when it is stored and read back from there, as PyTorch
 * stores its state; so float32 results agree with PyTorch's to a few ulps.
 *
 * Every function checks all its arguments before writing anything: a
 * failed call leaves every tensor unchanged.
 *
 * Threads: Adam's float32 update of all the parameters is one parallel loop
 * over their elements laid end to end (adam_range), so a step wakes the
 * pool's workers once; each element's update is its own, so the bits do
 * not depend on the thread count or the cut.
 */
#include "internal.h"
#include "../kernels/vmath.h"
#include "../kernels/threadpool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* Checks                                                                 */
/* ===================================================================== */

/* A tensor the step writes in place: float, contiguous, writable.  `like`
 * (may be NULL) is the parameter whose shape and dtype it must have. */
static tg_status check_state(const char *who, const char *what, int i, const tg_tensor *t,
                             const tg_tensor *like) {
    if (!t) return tg_error_set(TG_ERR_VALUE, "%s: %s %d is NULL", who, what, i);
    if (!tg_dtype_is_float(t->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: %s %d is %s; expected float32 or float64", who, what,
                            i, tg_dtype_name(t->dtype));
    if (like && (t->dtype != like->dtype || !tg__same_shape(t->ndim, t->shape, like->ndim, like->shape)))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: %s %d is %s %s but parameter %d is %s %s; they must match", who,
                            what, i, tg_dtype_name(t->dtype), tg__shp(t), i,
                            tg_dtype_name(like->dtype), tg__shp(like));
    if (!tg_tensor_is_contiguous(t))
        return tg_error_set(TG_ERR_VALUE, "%s: %s %d (shape %s) is not contiguous; the step "
                                          "updates it in place and needs contiguous memory",
                            who, what, i, tg__shp(t));
    if (t->storage->readonly)
        return tg_error_set(TG_ERR_RUNTIME, "%s: %s %d (shape %s) is read-only", who, what, i,
                            tg__shp(t));
    return TG_OK;
}

/* Each parameter once: the same tensor twice would be stepped twice with
 * one gradient (tapegrad.optim keeps a repeated parameter once). */
static tg_status check_unique(const char *who, int n, tg_tensor *const *params) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (params[i] && params[i] == params[j])
                return tg_error_set(TG_ERR_VALUE,
                                    "%s: parameter %d is the same tensor as parameter %d; list "
                                    "each parameter once (it would be updated twice)",
                                    who, i, j);
    return TG_OK;
}

/* A gradient: same shape and dtype as its parameter, any layout. */
static tg_status check_grad(const char *who, int i, const tg_tensor *g, const tg_tensor *p) {
    if (g->dtype != p->dtype || !tg__same_shape(g->ndim, g->shape, p->ndim, p->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: gradient %d is %s %s but parameter %d is %s %s; they must match",
                            who, i, tg_dtype_name(g->dtype), tg__shp(g), i, tg_dtype_name(p->dtype),
                            tg__shp(p));
    return TG_OK;
}

static tg_status check_hyper(const char *who, const char *name, double v, double lo, double hi,
                             bool hi_open) {
    if (!(v >= lo) || (hi_open ? !(v < hi) : !(v <= hi)))
        return tg_error_set(TG_ERR_VALUE, "%s: invalid %s %g (expected %g <= %s %s %g)", who, name,
                            v, lo, name, hi_open ? "<" : "<=", hi);
    return TG_OK;
}

/* Contiguous versions of the gradients (NULL where grads[i] is NULL): NEW
 * references in a new array of n, freed with release_grads.  NULL on
 * failure (error set). */
static tg_tensor **dense_grads(const char *who, int n, tg_tensor **grads) {
    tg_tensor **out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out) return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory", who);
    for (int i = 0; i < n; i++) {
        tg_tensor *g = grads[i];
        if (!g) continue;
        if (tg_tensor_is_contiguous(g)) {
            tg_tensor_retain(g);
            out[i] = g;
        } else if (!(out[i] = tg__copy(g))) {
            for (int k = 0; k < i; k++) tg_tensor_release(out[k]);
            free(out);
            return NULL;
        }
    }
    return out;
}
static void release_grads(int n, tg_tensor **g) {
    for (int i = 0; i < n; i++) tg_tensor_release(g[i]);
    free(g);
}

/* Whether the vectorized float32 loops (kernels/vmath.h) may run: every
 * tensor given (NULLs skipped) is float32 and has its own storage, so the
 * arrays cannot overlap. */
static bool f32_separate(tg_tensor *const *t, int n) {
    for (int i = 0; i < n; i++) {
        if (!t[i]) continue;
        if (t[i]->dtype != TG_FLOAT32) return false;
        for (int j = 0; j < i; j++)
            if (t[j] && t[j]->storage == t[i]->storage) return false;
    }
    return true;
}

/* Element k of a contiguous float tensor as a double, and a store. */
#define LD(t, k) ((t)->dtype == TG_FLOAT32 ? (double)((const float *)tg_tensor_data(t))[k] \
                                           : ((const double *)tg_tensor_data(t))[k])
/* Store v rounded to the tensor's dtype and return the stored value. */
static inline double st(tg_tensor *t, int64_t k, double v) {
    if (t->dtype == TG_FLOAT32) {
        float f = (float)v;
        ((float *)tg_tensor_data(t))[k] = f;
        return (double)f;
    }
    ((double *)tg_tensor_data(t))[k] = v;
    return v;
}

/* ===================================================================== */
/* SGD                                                                    */
/* ===================================================================== */

/*
 * tg_sgd_step -- torch.optim.SGD.step for n parameters:
 *
 *     g = grad + weight_decay * p
 *     if momentum != 0:
 *         buf = g                                     (first step)
 *         buf = momentum * buf + (1 - dampening) * g  (later steps)
 *         g = g + momentum * buf  if nesterov  else  buf
 *     p = p - lr * g
 *
 * params[i], grads[i] (NULL: skip parameter i), momentum_bufs[i]: same
 * shape and dtype; params and buffers contiguous and writable (updated in
 * place, storage versions bumped); momentum_bufs may be NULL when
 * momentum == 0.  A parameter that requires grad is updated all the same
 * (the step is not recorded on the tape).  Borrowed arguments.  Returns
 * TG_OK, or TG_ERR_VALUE/TYPE/RUNTIME/MEMORY with nothing modified.
 */
tg_status tg_sgd_step(int n, tg_tensor **params, tg_tensor **grads, tg_tensor **bufs, double lr,
                      double momentum, double dampening, double weight_decay, bool nesterov,
                      bool first_step) {
    const char *who = "sgd_step";
    if (n < 0 || (n > 0 && (!params || !grads)))
        return tg_error_set(TG_ERR_VALUE, "%s: bad parameter list (n = %d)", who, n);
    if (check_hyper(who, "lr", lr, 0, INFINITY, false) ||
        check_hyper(who, "momentum", momentum, 0, INFINITY, false) ||
        check_hyper(who, "weight_decay", weight_decay, 0, INFINITY, false))
        return tg_error_status();
    if (isnan(dampening)) return tg_error_set(TG_ERR_VALUE, "%s: dampening is NaN", who);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: Nesterov momentum requires a momentum > 0 and zero dampening "
                            "(got momentum %g, dampening %g)",
                            who, momentum, dampening);
    if (momentum != 0 && !bufs)
        return tg_error_set(TG_ERR_VALUE, "%s: momentum %g needs momentum buffers", who, momentum);
    if (check_unique(who, n, params)) return tg_error_status();
    for (int i = 0; i < n; i++) {
        if (check_state(who, "parameter", i, params[i], NULL)) return tg_error_status();
        if (!grads[i]) continue;
        if (check_grad(who, i, grads[i], params[i])) return tg_error_status();
        if (momentum != 0 && check_state(who, "momentum buffer", i, bufs[i], params[i]))
            return tg_error_status();
    }
    tg_tensor **gs = dense_grads(who, n, grads);
    if (!gs) return tg_error_status();
    for (int i = 0; i < n; i++) {
        tg_tensor *p = params[i], *g = gs[i], *b = momentum != 0 ? bufs[i] : NULL;
        if (!g) continue;
        tg_tensor *all[3] = {p, g, b};
        if (f32_separate(all, 3)) {
            const double c[5] = {lr, momentum, dampening, weight_decay, 0};
            int flags = (b ? TG_VM_HAS_BUF : 0) | (first_step ? TG_VM_FIRST : 0) |
                        (nesterov ? TG_VM_NESTEROV : 0) | (weight_decay != 0 ? TG_VM_DECAY : 0);
            tg_vmath()->sgd_f32(p->numel, tg_tensor_data(p), tg_tensor_data(g),
                                b ? tg_tensor_data(b) : NULL, c, flags);
        } else for (int64_t k = 0; k < p->numel; k++) {
            double gk = LD(g, k), pk = LD(p, k);
            if (weight_decay != 0) gk += weight_decay * pk;
            if (b) {
                double bk = first_step ? gk : momentum * LD(b, k) + (1 - dampening) * gk;
                bk = st(b, k, bk);
                gk = nesterov ? gk + momentum * bk : bk;
            }
            st(p, k, pk - lr * gk);
        }
        p->storage->version++;
        if (b) b->storage->version++;
    }
    release_grads(n, gs);
    return TG_OK;
}

/* ===================================================================== */
/* Adam / AdamW                                                           */
/* ===================================================================== */

/*
 * tg_adam_step -- torch.optim.Adam (decoupled = false) and torch.optim.AdamW
 * (decoupled = true), amsgrad=False, for n parameters at step `step` (the
 * count AFTER this update: 1 on the first call):
 *
 *     Adam:   g = grad + weight_decay * p
 *     AdamW:  g = grad;  p = p * (1 - lr * weight_decay)
 *     m = m + (1 - beta1) * (g - m)          (torch's lerp)
 *     v = beta2 * v + (1 - beta2) * g * g
 *     step_size = lr / (1 - beta1^step)
 *     denom = sqrt(v) / sqrt(1 - beta2^step) + eps
 *     p = p - step_size * m / denom
 *
 * `step` is shared by the n parameters; PyTorch keeps one count per
 * parameter (the steps it had a gradient for), so a caller that skips
 * parameters calls this once per distinct count.
 *
 * exp_avg[i] (m) and exp_avg_sq[i] (v): contiguous, writable, shape and
 * dtype of params[i] (zeros before the first step).  grads[i] NULL: skip.
 * Hyper-parameters as PyTorch checks them (lr, eps, weight_decay >= 0,
 * 0 <= beta < 1, step >= 1).  Returns TG_OK or an error with nothing
 * modified.
 */
/* The float32 Adam update, cut into ranges of elements run on the pool's
 * threads.  Each element's update reads and writes only its own p, g, m, v
 * (the vector loop and its scalar tail do the same IEEE operations), so any
 * cut gives the same bits.  The float32 parameters whose tensors are all
 * separate (f32_separate, and no memory shared between two parameters'
 * tensors: adam_all_separate) are one loop over their elements laid end to
 * end, a range crossing from one tensor into the next: one wake-up of the
 * workers per step instead of one per parameter, and the small tensors
 * (biases, a 16x1x5x5 kernel) split with the large ones instead of running
 * serially one after another.  A range gets at least ADAM_MIN_PER_CHUNK
 * elements: below that, waking a worker costs more than the update (about
 * 1 ns an element on one core). */
#define ADAM_MIN_PER_CHUNK 32768
typedef struct {
    float *p, *m, *v;
    const float *g;
    int64_t start, n; /* elements [start, start + n) of the whole loop */
} adam_seg;
typedef struct {
    const adam_seg *seg;
    int nseg;
    const float *c;
    int mode;
} adam_job;

static void adam_range(int64_t b, int64_t e, void *ctx) {
    const adam_job *j = ctx;
    int lo = 0, hi = j->nseg - 1; /* the segment holding element b */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (j->seg[mid].start <= b) lo = mid;
        else hi = mid - 1;
    }
    for (int k = lo; k < j->nseg && b < e; k++) {
        const adam_seg *sg = &j->seg[k];
        int64_t o = b - sg->start, m = sg->n - o;
        if (m > e - b) m = e - b;
        if (m > 0) tg_vmath()->adam_f32(m, sg->p + o, sg->g + o, sg->m + o, sg->v + o, j->c, j->mode);
        b += m;
    }
}

typedef struct { uintptr_t lo, hi; } mem_range;
static int cmp_range(const void *a, const void *b) {
    uintptr_t x = ((const mem_range *)a)->lo, y = ((const mem_range *)b)->lo;
    return x < y ? -1 : x > y;
}

/* Whether the memory of the n float32 contiguous tensors (NULLs skipped)
 * is pairwise disjoint -- by address, not by storage, since two storages
 * can wrap one buffer (from_numpy of two views of one array): then the
 * parameters' updates may run in one loop, in any order.  On out of
 * memory, false (the caller then steps one parameter at a time, in order,
 * which is always what it did). */
static bool adam_all_separate(tg_tensor *const *t, int n) {
    mem_range *r = malloc((n > 0 ? (size_t)n : 1) * sizeof *r);
    if (!r) return false;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (t[i] && t[i]->numel > 0) {
            uintptr_t lo = (uintptr_t)tg_tensor_data(t[i]);
            r[k++] = (mem_range){lo, lo + (uintptr_t)t[i]->numel * sizeof(float)};
        }
    qsort(r, (size_t)k, sizeof *r, cmp_range);
    bool ok = true;
    for (int i = 1; i < k && ok; i++) ok = r[i].lo >= r[i - 1].hi;
    free(r);
    return ok;
}

tg_status tg_adam_step(int n, tg_tensor **params, tg_tensor **grads, tg_tensor **exp_avg,
                       tg_tensor **exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                       double eps, double weight_decay, bool decoupled) {
    const char *who = decoupled ? "adamw_step" : "adam_step";
    if (n < 0 || (n > 0 && (!params || !grads || !exp_avg || !exp_avg_sq)))
        return tg_error_set(TG_ERR_VALUE, "%s: bad parameter or state list (n = %d)", who, n);
    if (step < 1)
        return tg_error_set(TG_ERR_VALUE, "%s: step must be >= 1 (the count after this update), got %lld",
                            who, (long long)step);
    if (check_hyper(who, "lr", lr, 0, INFINITY, false) ||
        check_hyper(who, "beta1", beta1, 0, 1, true) || check_hyper(who, "beta2", beta2, 0, 1, true) ||
        check_hyper(who, "eps", eps, 0, INFINITY, false) ||
        check_hyper(who, "weight_decay", weight_decay, 0, INFINITY, false))
        return tg_error_status();
    if (check_unique(who, n, params)) return tg_error_status();
    for (int i = 0; i < n; i++) {
        if (check_state(who, "parameter", i, params[i], NULL)) return tg_error_status();
        if (!grads[i]) continue;
        if (check_grad(who, i, grads[i], params[i]) ||
            check_state(who, "exp_avg", i, exp_avg[i], params[i]) ||
            check_state(who, "exp_avg_sq", i, exp_avg_sq[i], params[i]))
            return tg_error_status();
    }
    tg_tensor **gs = dense_grads(who, n, grads);
    if (!gs) return tg_error_status();
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    /* the float32 hot path: float32 throughout (as PyTorch computes it),
     * in the vectorized loop of kernels/vmath (AVX2 when available) */
    const float c[8] = {(float)(1 - beta1), (float)beta2, (float)(1 - beta2),
                        (float)step_size, (float)(1 / bc2_sqrt), (float)eps,
                        (float)weight_decay, (float)(1 - lr * weight_decay)};
    const int mode = weight_decay == 0 ? 0 : decoupled ? 1 : 2;
    /* the parameters that take it, as segments of one loop (see adam_range);
     * done[i]: parameter i is in it */
    adam_seg *seg = malloc((n > 0 ? (size_t)n : 1) * sizeof *seg);
    tg_tensor **every = seg ? malloc((n > 0 ? (size_t)n : 1) * 4 * sizeof *every) : NULL;
    bool *done = every ? calloc(n > 0 ? (size_t)n : 1, sizeof *done) : NULL;
    int nseg = 0;
    int64_t total = 0;
    if (done) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            tg_tensor *all[4] = {params[i], gs[i], exp_avg[i], exp_avg_sq[i]};
            if (!gs[i] || !f32_separate(all, 4)) continue;
            for (int q = 0; q < 4; q++) every[k++] = all[q];
            done[i] = true;
            seg[nseg++] = (adam_seg){tg_tensor_data(params[i]), tg_tensor_data(exp_avg[i]),
                                     tg_tensor_data(exp_avg_sq[i]), tg_tensor_data(gs[i]), total,
                                     params[i]->numel};
            total += params[i]->numel;
        }
        if (!adam_all_separate(every, k)) { /* step them one at a time */
            nseg = 0;
            memset(done, 0, (size_t)n * sizeof *done);
        }
    }
    if (nseg > 0) {
        adam_job j = {seg, nseg, c, mode};
        tg_parallel_for(total, ADAM_MIN_PER_CHUNK, adam_range, &j);
    }
    for (int i = 0; i < n; i++) {
        tg_tensor *p = params[i], *g = gs[i], *m = exp_avg[i], *v = exp_avg_sq[i];
        if (!g) continue;
        tg_tensor *all[4] = {p, g, m, v};
        if (done && done[i]) {
            /* updated by the loop above */
        } else if (f32_separate(all, 4)) {
            adam_seg one = {tg_tensor_data(p), tg_tensor_data(m), tg_tensor_data(v),
                            tg_tensor_data(g), 0, p->numel};
            adam_job j = {&one, 1, c, mode};
            tg_parallel_for(p->numel, ADAM_MIN_PER_CHUNK, adam_range, &j);
        } else {
            for (int64_t k = 0; k < p->numel; k++) {
                double gk = LD(g, k), pk = LD(p, k);
                if (weight_decay != 0) {
                    if (decoupled) pk = st(p, k, pk * (1 - lr * weight_decay));
                    else gk += weight_decay * pk;
                }
                double mk = LD(m, k);
                mk = st(m, k, mk + (1 - beta1) * (gk - mk));
                double vk = st(v, k, beta2 * LD(v, k) + (1 - beta2) * gk * gk);
                double denom = sqrt(vk) / bc2_sqrt + eps;
                st(p, k, pk - step_size * mk / denom);
            }
        }
        p->storage->version++;
        m->storage->version++;
        v->storage->version++;
    }
    free(done);
    free(every);
    free(seg);
    release_grads(n, gs);
    return TG_OK;
}

/* ===================================================================== */
/* RMSprop                                                                */
/* ===================================================================== */

/*
 * tg_rmsprop_step -- torch.optim.RMSprop (centered=False) for n parameters:
 *
 *     g = grad + weight_decay * p
 *     s = alpha * s + (1 - alpha) * g * g
 *     avg = sqrt(s) + eps
 *     if momentum > 0:  buf = momentum * buf + g / avg;  p = p - lr * buf
 *     else:             p = p - lr * g / avg
 *
 * square_avg[i] (s) and momentum_buf[i] (buf, may be NULL when momentum
 * is 0): contiguous, writable, shape and dtype of params[i], zeros before
 * the first step.  grads[i] NULL: skip.  Returns TG_OK or an error with
 * nothing modified.
 */
tg_status tg_rmsprop_step(int n, tg_tensor **params, tg_tensor **grads, tg_tensor **square_avg,
                          tg_tensor **momentum_buf, double lr, double alpha, double eps,
                          double weight_decay, double momentum) {
    const char *who = "rmsprop_step";
    if (n < 0 || (n > 0 && (!params || !grads || !square_avg)))
        return tg_error_set(TG_ERR_VALUE, "%s: bad parameter or state list (n = %d)", who, n);
    if (check_hyper(who, "lr", lr, 0, INFINITY, false) ||
        check_hyper(who, "alpha", alpha, 0, INFINITY, false) ||
        check_hyper(who, "eps", eps, 0, INFINITY, false) ||
        check_hyper(who, "weight_decay", weight_decay, 0, INFINITY, false) ||
        check_hyper(who, "momentum", momentum, 0, INFINITY, false))
        return tg_error_status();
    if (momentum > 0 && !momentum_buf)
        return tg_error_set(TG_ERR_VALUE, "%s: momentum %g needs momentum buffers", who, momentum);
    if (check_unique(who, n, params)) return tg_error_status();
    for (int i = 0; i < n; i++) {
        if (check_state(who, "parameter", i, params[i], NULL)) return tg_error_status();
        if (!grads[i]) continue;
        if (check_grad(who, i, grads[i], params[i]) ||
            check_state(who, "square_avg", i, square_avg[i], params[i]) ||
            (momentum > 0 && check_state(who, "momentum buffer", i, momentum_buf[i], params[i])))
            return tg_error_status();
    }
    tg_tensor **gs = dense_grads(who, n, grads);
    if (!gs) return tg_error_status();
    for (int i = 0; i < n; i++) {
        tg_tensor *p = params[i], *g = gs[i], *s = square_avg[i];
        tg_tensor *b = momentum > 0 ? momentum_buf[i] : NULL;
        if (!g) continue;
        tg_tensor *all[4] = {p, g, s, b};
        if (f32_separate(all, 4)) {
            const double c[5] = {lr, momentum, alpha, weight_decay, eps};
            int flags = (b ? TG_VM_HAS_BUF : 0) | (weight_decay != 0 ? TG_VM_DECAY : 0);
            tg_vmath()->rmsprop_f32(p->numel, tg_tensor_data(p), tg_tensor_data(g),
                                    tg_tensor_data(s), b ? tg_tensor_data(b) : NULL, c, flags);
        } else for (int64_t k = 0; k < p->numel; k++) {
            double gk = LD(g, k), pk = LD(p, k);
            if (weight_decay != 0) gk += weight_decay * pk;
            double sk = st(s, k, alpha * LD(s, k) + (1 - alpha) * gk * gk);
            double avg = sqrt(sk) + eps;
            if (b) {
                double bk = st(b, k, momentum * LD(b, k) + gk / avg);
                st(p, k, pk - lr * bk);
            } else {
                st(p, k, pk - lr * gk / avg);
            }
        }
        p->storage->version++;
        s->storage->version++;
        if (b) b->storage->version++;
    }
    release_grads(n, gs);
    return TG_OK;
}

/* ===================================================================== */
/* Gradient clipping                                                      */
/* ===================================================================== */

/*
 * tg_clip_grad_norm -- torch.nn.utils.clip_grad_norm_:
 *
 *     total = (sum over all grads of |g|^p)^(1/p)      (p = norm_type)
 *     total = max over all grads of |g|                 (p = INFINITY)
 *     coef = max_norm / (total + 1e-6)
 *     if coef < 1: every gradient *= coef               (in place)
 *
 * (a NaN or infinite total gives NaN gradients, as in PyTorch with
 * error_if_nonfinite=False).  grads[i] may be NULL (skipped); float
 * tensors of any layout, written in place (storage version bumped).
 * *total_norm_out (may be NULL) receives the total norm of the gradients
 * before clipping.  norm_type must be > 0 or INFINITY.  Returns TG_OK, or an
 * error with nothing modified.
 */
/* One row of a strided gradient times coef, rounded to its dtype as the
 * contiguous loop above it does (clip_grad_norm's in-place scaling). */
typedef struct {
    double coef;
    tg_dtype dtype;
} scale_ctx;

static void scale_row(int64_t n, char **p, const int64_t *s, void *vctx) {
    const scale_ctx *c = vctx;
    if (c->dtype == TG_FLOAT32) {
        float cf = (float)c->coef;
        for (int64_t k = 0; k < n; k++) *(float *)(p[0] + k * s[0]) *= cf;
    } else {
        for (int64_t k = 0; k < n; k++) *(double *)(p[0] + k * s[0]) *= c->coef;
    }
}

tg_status tg_clip_grad_norm(int n, tg_tensor **grads, double max_norm, double norm_type,
                            double *total_norm_out) {
    const char *who = "clip_grad_norm";
    if (n < 0 || (n > 0 && !grads))
        return tg_error_set(TG_ERR_VALUE, "%s: bad gradient list (n = %d)", who, n);
    if (!(norm_type > 0))
        return tg_error_set(TG_ERR_VALUE, "%s: norm_type must be positive or inf, got %g", who,
                            norm_type);
    for (int i = 0; i < n; i++) {
        tg_tensor *g = grads[i];
        if (!g) continue;
        if (!tg_dtype_is_float(g->dtype))
            return tg_error_set(TG_ERR_TYPE, "%s: gradient %d is %s; expected float32 or float64",
                                who, i, tg_dtype_name(g->dtype));
        if (g->storage->readonly)
            return tg_error_set(TG_ERR_RUNTIME, "%s: gradient %d is read-only", who, i);
        for (int d = 0; d < g->ndim; d++)
            if (g->strides[d] == 0 && g->shape[d] > 1)
                return tg_error_set(TG_ERR_RUNTIME,
                                    "%s: gradient %d is a broadcast view (stride 0 on dim %d)", who,
                                    i, d);
    }
    bool inf = isinf(norm_type);
    double acc = 0;
    for (int i = 0; i < n; i++) {
        tg_tensor *g = grads[i];
        if (!g) continue;
        bool c = tg_tensor_is_contiguous(g);
        if (c && norm_type == 2) { /* the common case, vectorized (kernels/vmath.h) */
            acc += g->dtype == TG_FLOAT32 ? tg_vmath()->sumsq_f32(g->numel, tg_tensor_data(g))
                                          : tg_vmath()->sumsq_f64(g->numel, tg_tensor_data(g));
            continue;
        }
        for (int64_t k = 0; k < g->numel; k++) {
            double a = fabs(c ? LD(g, k) : tg_tensor_get_flat(g, k));
            if (inf) acc = (a > acc || a != a) ? a : acc;
            else if (norm_type == 2) acc += a * a;
            else if (norm_type == 1) acc += a;
            else acc += pow(a, norm_type);
        }
    }
    double total = inf ? acc : norm_type == 2 ? sqrt(acc) : norm_type == 1 ? acc : pow(acc, 1.0 / norm_type);
    if (total_norm_out) *total_norm_out = total;
    double coef = max_norm / (total + 1e-6);
    if (coef >= 1.0) return TG_OK; /* clamp(coef, max=1): multiplying by 1 changes nothing */
    for (int i = 0; i < n; i++) {
        tg_tensor *g = grads[i];
        if (!g) continue;
        if (tg_tensor_is_contiguous(g)) {
            if (g->dtype == TG_FLOAT32) {
                float *d = tg_tensor_data(g), cf = (float)coef;
                for (int64_t k = 0; k < g->numel; k++) d[k] *= cf;
            } else {
                double *d = tg_tensor_data(g);
                for (int64_t k = 0; k < g->numel; k++) d[k] *= coef;
            }
            g->storage->version++;
        } else { /* a strided view: the same multiply, row by row through its strides */
            char *base[1] = {tg_tensor_data(g)};
            int64_t strides[1][TG_MAX_DIMS];
            tg__bcast_strides_bytes(g, g->ndim, g->shape, strides[0]);
            scale_ctx sc = {coef, g->dtype};
            tg__iterate(1, g->ndim, g->shape, base, strides, scale_row, &sc);
            g->storage->version++;
        }
    }
    return TG_OK;
}
