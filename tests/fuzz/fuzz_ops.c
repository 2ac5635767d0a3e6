/*
 * fuzz_ops.c -- a libFuzzer harness over the public C API (tapegrad.h).
 *
 * The fuzzer's bytes are read as a small program over a pool of 8 tensor
 * slots: each instruction is one byte (its kind) followed by the bytes its
 * arguments need (a missing byte reads as 0, so every input is a program).
 * Instructions create tensors (every dtype, 0-d to 5-d, empty dims, absurd
 * sizes), call any op of the registry through tg_op_apply with arbitrary
 * parameters, make views (transpose, slice with any steps, broadcast,
 * reshape, permute, squeeze, from_storage with arbitrary strides), write in
 * place, call backward / grad / the stepping engine (kept open across
 * instructions), record custom entries with C VJPs that fail or misbehave,
 * install gradient hooks, toggle grad mode, open tapes, run the optimizers.
 *
 * The contract checked (a violation calls abort(), which libFuzzer reports):
 *   - a call that fails returns NULL / a status and sets a status in 1..6 and
 *     a non-empty message (tg_error_clear() runs before every call);
 *   - a call that succeeds returns a well-formed tensor: valid dtype and
 *     ndim, numel equal to the product of the shape, every element inside its
 *     storage (each element is then read, so ASan sees any stray stride);
 *   - no crash, no undefined behaviour (UBSan), no leak (LeakSanitizer:
 *     everything is released at the end of each input).
 * The harness itself respects the documented preconditions (non-NULL
 * tensors, arrays of the documented length): breaking those is a caller
 * bug, not the library's.
 *
 * Build and run: tests/fuzz/run.sh (libFuzzer with clang), or the standalone
 * driver (driver.c, any compiler) that replays files and random inputs.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* setenv: the convolution path (conv_family) */
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/* ---- reading the program ----------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, i;
} rd;

static uint8_t u8(rd *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static int more(const rd *r) { return r->i < r->n; }

/* Mostly a small integer in [lo, hi]; one time in 32 an extreme value. */
static int64_t ival(rd *r, int64_t lo, int64_t hi) {
    static const int64_t wild[] = {-1, -2, INT64_MIN, INT64_MAX, (int64_t)1 << 40,
                                   (int64_t)1 << 62, -((int64_t)1 << 40), 1 << 30};
    uint8_t b = u8(r);
    if (b >= 248) return wild[b - 248];
    return lo + (int64_t)(b % (uint64_t)(hi - lo + 1));
}

static double fval(rd *r) {
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 1e-310,
                                     1e308, -1e308, 100.0, 1e-3};
    uint8_t b = u8(r);
    if (b < 12) return special[b];
    if (b == 12) return NAN;
    if (b == 13) return INFINITY;
    if (b == 14) return -INFINITY;
    return ((double)b - 128.0) / 16.0;
}

/* ---- the contract ------------------------------------------------------- */

static void die(const char *what, const char *why) {
    fprintf(stderr, "fuzz_ops: contract violated in %s: %s (status %d, message '%s')\n", what,
            why, (int)tg_error_status(), tg_error_message());
    abort();
}

/* After a failed call: a status in 1..6 and a message. */
static void failed_cleanly(const char *what) {
    tg_status st = tg_error_status();
    if (st < TG_ERR_VALUE || st > TG_ERR_CALLBACK) die(what, "failed without an error status");
    if (!tg_error_message()[0]) die(what, "failed without a message");
}

static volatile double sink;
static int tracing = -1; /* TG_FUZZ_TRACE=1: print each call and its outcome */

static void trace(const char *what, const void *ok) {
    if (tracing < 0) tracing = getenv("TG_FUZZ_TRACE") != NULL;
    if (tracing) fprintf(stderr, "  %-20s %s%s\n", what, ok ? "ok" : "failed: ", ok ? "" : tg_error_message());
}

/* A successful result must be well formed; every element is read. */
static void check_tensor(const tg_tensor *t, const char *what) {
    if (t->refcount < 1) die(what, "refcount < 1");
    if ((int)t->dtype < 0 || t->dtype >= TG_N_DTYPES) die(what, "bad dtype");
    if (t->ndim < 0 || t->ndim > TG_MAX_DIMS) die(what, "bad ndim");
    if (!t->storage) die(what, "no storage");
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) die(what, "negative size");
        n *= t->shape[i];
    }
    if (n != t->numel) die(what, "numel != product of the shape");
    if (n == 0) return;
    int64_t lo = t->offset, hi = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        int64_t span = (t->shape[i] - 1) * t->strides[i];
        if (span < 0) lo += span;
        else hi += span;
    }
    size_t isz = tg_dtype_size(t->dtype);
    if (lo < 0 || (uint64_t)(hi + 1) * isz > t->storage->nbytes) die(what, "a view outside its storage");
    int64_t lim = n < 65536 ? n : 65536;
    double s = 0;
    for (int64_t i = 0; i < lim; i++) s += tg_tensor_get_flat(t, i);
    sink = s;
    if (t->requires_grad && !tg_dtype_is_float(t->dtype)) die(what, "an int64 tensor requires grad");
}

/* ---- the pool ----------------------------------------------------------- */

#define NSLOT 8
static tg_tensor *pool[NSLOT];
static tg_stepper *open_bw;          /* a step-through kept open across instructions */
static tg_recorder *open_rec;        /* a tg.Tape kept open */
static int hook_mode[NSLOT];         /* contexts for the gradient hooks */
static int custom_released, custom_made;

static void put(int slot, tg_tensor *t) {
    if (tracing > 0 && t) fprintf(stderr, "    -> slot %d (t%llu)\n", slot, (unsigned long long)t->id);
    tg_tensor_release(pool[slot]);
    pool[slot] = t;
}

static tg_tensor *get(rd *r) { return pool[u8(r) % NSLOT]; }

/* Store a result or check the failure; returns the tensor (borrowed) or NULL. */
static tg_tensor *result(rd *r, tg_tensor *t, const char *what) {
    trace(what, t);
    if (!t) {
        failed_cleanly(what);
        return NULL;
    }
    check_tensor(t, what);
    if (t->numel > (1 << 16)) { /* keep the pool small: later ops stay fast */
        tg_tensor_release(t);
        return NULL;
    }
    put(u8(r) % NSLOT, t);
    return t;
}

static void status(tg_status st, const char *what) {
    trace(what, st == TG_OK ? "" : NULL);
    if (st != TG_OK) failed_cleanly(what);
}

static int too_big(tg_tensor *const *in, int n) {
    for (int i = 0; i < n; i++)
        if (!in[i] || in[i]->numel > (1 << 14)) return 1;
    return 0;
}

static int tg__same_shape_fuzz(const tg_tensor *a, const tg_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* ---- answers (issue 15: silent wrong answers, not only crashes) --------- */

static int same_value(double a, double b) { return a == b || (a != a && b != b); }

/* softmax / log_softmax of a 0-d or 1-d x (one row): PyTorch's answers. */
static void check_softmax_row(const char *what, const tg_tensor *x, const tg_tensor *t, int is_log) {
    int has_nan_or_posinf = 0, all_neginf = 1;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tg_tensor_get_flat(x, i);
        if (v != v || v == INFINITY) has_nan_or_posinf = 1;
        if (v != -INFINITY) all_neginf = 0;
    }
    if (x->numel == 0) return;
    if (has_nan_or_posinf || all_neginf) { /* x - max is NaN somewhere: NaN everywhere */
        for (int64_t i = 0; i < t->numel; i++)
            if (tg_tensor_get_flat(t, i) == tg_tensor_get_flat(t, i))
                die(what, "a row with +inf, NaN or only -inf must be NaN everywhere (PyTorch)");
        return;
    }
    double sum = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_tensor_get_flat(t, i);
        if (is_log) v = exp(v);
        if (!(v >= 0 && v <= 1.0 + 1e-6)) die(what, "a probability outside [0, 1]");
        sum += v;
    }
    if (fabs(sum - 1) > 1e-3) die(what, "probabilities that do not sum to 1");
}

/* min(max(x, lo), hi) elementwise, for float clip. */
static void check_clip(const tg_tensor *x, const tg_params *p, const tg_tensor *t) {
    if (!tg_dtype_is_float(x->dtype) || t->numel != x->numel) return;
    double lo = p->f[0] != p->f[0] ? -INFINITY : p->f[0];
    double hi = p->f[1] != p->f[1] ? INFINITY : p->f[1];
    if (x->dtype == TG_FLOAT32) {
        lo = (float)lo;
        hi = (float)hi;
    }
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tg_tensor_get_flat(x, i), m = v < lo ? lo : v, want = m > hi ? hi : m;
        if (!same_value(tg_tensor_get_flat(t, i), want)) die("clip", "not min(max(x, lo), hi)");
    }
}

/* pow: where the exponent is 0 the base's gradient is 0; where the base is
 * 0 and the exponent >= 0 the exponent's gradient is 0 (PyTorch's masks). */
static void check_pow_grad(tg_tensor *const *in, tg_tensor *t) {
    tg_tensor *a = in[0], *b = in[1];
    if (!t->requires_grad || !tg_grad_enabled() || !tg_dtype_is_float(t->dtype)) return;
    if (!tg__same_shape_fuzz(a, b) || !tg__same_shape_fuzz(a, t)) return;
    /* leaves only: with b computed from a (b = cumsum(f(a))), d/da also
     * flows through b, and is not pow's own 0 (a false alarm the registry
     * instruction found) */
    if (a->grad_fn || b->grad_fn) return;
    tg_tensor *ins[2] = {a, b}, *res[2] = {NULL, NULL};
    int nin = 0;
    if (a->requires_grad) ins[nin++] = a;
    if (b->requires_grad && b != a) ins[nin++] = b;
    if (!nin) return;
    tg_tensor *s = tg_sum(t, NULL, 0, false);
    if (!s) { failed_cleanly("pow grad"); return; }
    tg_error_clear();
    tg_status st = tg_grad(1, &s, NULL, nin, ins, TG_RETAIN_GRAPH, res);
    tg_tensor_release(s);
    if (st) { failed_cleanly("pow grad"); return; }
    for (int k = 0; k < nin; k++) {
        for (int64_t i = 0; i < a->numel; i++) {
            double av = tg_tensor_get_flat(a, i), bv = tg_tensor_get_flat(b, i);
            double g = tg_tensor_get_flat(res[k], i);
            if (ins[k] == a && bv == 0 && g != 0) die("pow", "d(a**0)/da is not 0");
            if (ins[k] == b && av == 0 && bv >= 0 && g != 0 && a != b)
                die("pow", "d(0**b)/db is not 0 for b >= 0");
        }
        tg_tensor_release(res[k]);
    }
}

static void check_answer(const tg_opdef *op, tg_tensor *const *in, const tg_params *p, tg_tensor *t) {
    if (!strcmp(op->name, "clip")) check_clip(in[0], p, t);
    else if ((!strcmp(op->name, "softmax") || !strcmp(op->name, "log_softmax")) && in[0]->ndim <= 1 &&
             tg_dtype_is_float(in[0]->dtype))
        check_softmax_row(op->name, in[0], t, op->name[0] == 'l');
    else if (!strcmp(op->name, "pow")) check_pow_grad(in, t);
}

/* ---- instructions ------------------------------------------------------- */

static void op_create(rd *r) {
    tg_dtype dt = (tg_dtype)(u8(r) % (TG_N_DTYPES + 1)); /* TG_N_DTYPES is not a dtype */
    int ndim = u8(r) % 6;
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < ndim; i++) shape[i] = ival(r, 0, 4);
    tg_tensor *t = NULL;
    tg_error_clear();
    switch (u8(r) % 9) {
    case 0: t = tg_tensor_zeros(ndim, shape, dt); break;
    case 1: t = tg_tensor_full(ndim, shape, fval(r), dt); break;
    case 2: t = tg_tensor_randn(ndim, shape, fval(r), fval(r), dt); break;
    case 3: t = tg_tensor_rand(ndim, shape, fval(r), fval(r), dt); break;
    case 4: t = tg_tensor_bernoulli(ndim, shape, fval(r), dt); break;
    case 5: { /* not 10**8 elements (a legitimate size, but minutes under the sanitizers) */
        double a = (double)ival(r, -8, 8), b = (double)ival(r, -8, 8), s = fval(r);
        if (fabs((b - a) / s) > 1e6) s = b - a;
        t = tg_tensor_arange(a, b, s, dt);
        break;
    }
    case 6: t = tg_tensor_eye(ival(r, 0, 5), ival(r, 0, 5), ival(r, -3, 3), dt); break;
    case 7: t = tg_tensor_scalar(fval(r), dt); break;
    default: { /* from_buffer with values from the program */
        int64_t n = 1;
        int ok = 1;
        for (int i = 0; i < ndim; i++) {
            if (shape[i] < 0 || shape[i] > 64) ok = 0;
            else n *= shape[i];
        }
        if (!ok || (int)dt >= TG_N_DTYPES) { /* bad or absurd: must fail or stay unread */
            t = tg_tensor_empty(ndim, shape, dt);
            break;
        }
        double *buf = malloc((size_t)(n ? n : 1) * 8);
        if (!buf) return;
        for (int64_t i = 0; i < n; i++) {
            double v = fval(r);
            int64_t iv = (isfinite(v) && fabs(v) < 1e18) ? (int64_t)v : 7;
            switch (dt) {
            case TG_FLOAT32: ((float *)buf)[i] = (float)v; break;
            case TG_FLOAT64: buf[i] = v; break;
            case TG_INT32: ((int32_t *)buf)[i] = (int32_t)(iv % 100000); break;
            case TG_UINT8: ((uint8_t *)buf)[i] = (uint8_t)(iv & 0xff); break;
            case TG_BOOL: ((uint8_t *)buf)[i] = iv != 0; break; /* bool bytes are 0 or 1 */
            default: ((int64_t *)buf)[i] = iv; break;
            }
        }
        int null_data = n > 0 && (u8(r) % 8) == 0; /* NULL data must be refused */
        t = tg_tensor_from_buffer(ndim, shape, dt, null_data ? NULL : buf);
        free(buf);
        if (t && null_data) die("from_buffer", "NULL data accepted");
    }
    }
    if (!t) {
        failed_cleanly("create");
        return;
    }
    if (u8(r) & 1) {
        tg_error_clear();
        tg_status st = tg_tensor_set_requires_grad(t, true);
        if (st) failed_cleanly("set_requires_grad");
        if (st == TG_OK && !tg_dtype_is_float(t->dtype)) die("set_requires_grad", "int64 accepted");
    }
    result(r, t, "create");
}

static void op_registry(rd *r) {
    const tg_opdef *op = tg_op_get(u8(r) % tg_op_count());
    int n = op->arity >= 0 ? op->arity : 1 + u8(r) % 4;
    tg_tensor *in[8] = {0};
    for (int i = 0; i < n && i < 8; i++) in[i] = get(r);
    tg_params p;
    memset(&p, 0, sizeof p);
    p.naxes = (int)(u8(r) % 5) - 1;
    for (int i = 0; i < TG_MAX_DIMS; i++) p.axes[i] = ival(r, -4, 4);
    p.keepdims = u8(r) & 1;
    p.ndim = u8(r) % 6;
    for (int i = 0; i < TG_MAX_DIMS; i++) p.shape[i] = ival(r, -1, 5);
    for (int i = 0; i < 4 * TG_MAX_DIMS; i++) p.ints[i] = ival(r, -3, 6);
    for (int i = 0; i < 4; i++) p.f[i] = fval(r);
    for (int i = 0; i < 4; i++) p.i[i] = ival(r, -3, 6);
    if (too_big(in, n)) return;
    tg_error_clear();
    tg_tensor *t = tg_op_apply(op, n, in, &p);
    if (t) check_answer(op, in, &p, t);
    result(r, t, op->name);
}

static void op_view(rd *r) {
    tg_tensor *x = get(r);
    if (!x) return;
    int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS], c[TG_MAX_DIMS];
    int nd = u8(r) % 6;
    tg_tensor *t = NULL;
    const char *what = "view";
    tg_error_clear();
    switch (u8(r) % 11) {
    case 0: what = "transpose"; t = tg_transpose(x, ival(r, -4, 4), ival(r, -4, 4)); break;
    case 1:
        what = "slice";
        for (int i = 0; i < x->ndim; i++) {
            a[i] = ival(r, -6, 6);
            b[i] = ival(r, -6, 6);
            c[i] = ival(r, -3, 3);
        }
        t = tg_slice(x, a, b, c, u8(r));
        break;
    case 2:
        what = "broadcast_to";
        for (int i = 0; i < nd; i++) a[i] = ival(r, 0, 5);
        t = tg_broadcast_to(x, nd, a);
        break;
    case 3:
        what = "reshape";
        for (int i = 0; i < nd; i++) a[i] = ival(r, -1, 6);
        t = tg_reshape(x, nd, a);
        break;
    case 4:
        what = "permute";
        for (int i = 0; i < x->ndim; i++) a[i] = ival(r, -4, 4);
        t = tg_permute(x, a);
        break;
    case 5:
        what = "squeeze";
        for (int i = 0; i < nd; i++) a[i] = ival(r, -4, 4);
        t = tg_squeeze(x, (u8(r) & 1) ? NULL : a, nd);
        break;
    case 6: what = "unsqueeze"; t = tg_unsqueeze(x, ival(r, -5, 5)); break;
    case 7: what = "flatten"; t = tg_flatten(x, ival(r, -4, 4), ival(r, -4, 4)); break;
    case 8: what = "contiguous"; t = tg_contiguous(x); break;
    case 9: what = "detach"; t = tg_tensor_detach(x); break;
    default: { /* an arbitrary view of x's storage */
        what = "from_storage";
        for (int i = 0; i < nd; i++) {
            a[i] = ival(r, 0, 4);
            b[i] = ival(r, -3, 3);
        }
        t = tg_tensor_from_storage(x->storage, (tg_dtype)(u8(r) % TG_N_DTYPES), nd, a, (u8(r) & 1) ? b : NULL,
                                   ival(r, -2, 8));
    }
    }
    result(r, t, what);
}

static tg_tensor *seed_for(rd *r, tg_tensor *t) {
    switch (u8(r) % 4) {
    case 0: return NULL;
    case 1: return tg_tensor_ones(t->ndim, t->shape, t->dtype);
    case 2: { int64_t s = 3; return tg_tensor_ones(1, &s, TG_FLOAT64); } /* often the wrong shape */
    default: return tg_tensor_full(t->ndim, t->shape, fval(r), TG_INT64);
    }
}

static void op_backward(rd *r) {
    tg_tensor *t = get(r);
    if (!t) return;
    /* not TG_CREATE_GRAPH here: a .grad that is on a graph through its own
     * tensor is a reference cycle (documented, as in PyTorch) that would be
     * reported as a leak; tg_grad below covers create_graph */
    int flags = u8(r) & TG_RETAIN_GRAPH;
    tg_tensor *seed = seed_for(r, t);
    tg_error_clear();
    status(tg_backward(t, seed, flags), "backward");
    tg_tensor_release(seed);
}

static void op_grad(rd *r) {
    tg_tensor *out = get(r);
    int n = 1 + u8(r) % 3;
    tg_tensor *in[3], *res[3];
    for (int i = 0; i < n; i++) in[i] = get(r);
    if (!out) return;
    for (int i = 0; i < n; i++)
        if (!in[i]) return;
    tg_tensor *seed = seed_for(r, out);
    int flags = u8(r) & 3;
    tg_error_clear();
    tg_status st = tg_grad(1, &out, &seed, n, in, flags, res);
    tg_tensor_release(seed);
    if (st) {
        failed_cleanly("grad");
        for (int i = 0; i < n; i++)
            if (res[i]) die("grad", "a result left after a failure");
        return;
    }
    for (int i = 0; i < n; i++) {
        check_tensor(res[i], "grad");
        if (res[i]->ndim != in[i]->ndim) die("grad", "a gradient without its input's shape");
        for (int j = 0; j < i; j++) /* an input given twice gets its gradient twice */
            if (in[j] == in[i]) {
                /* (a result on a graph, with create_graph, may be one tensor twice) */
                if (res[j] == res[i] && !res[i]->grad_fn && !res[i]->requires_grad)
                    die("grad", "one result aliased at two positions");
                for (int64_t k = 0; k < res[i]->numel && k < 65536; k++)
                    if (!same_value(tg_tensor_get_flat(res[i], k), tg_tensor_get_flat(res[j], k)))
                        die("grad", "a repeated input got two different gradients");
            }
    }
    for (int i = 0; i < n; i++) tg_tensor_release(res[i]);
}

static void op_inplace(rd *r) {
    tg_tensor *x = get(r), *y = get(r);
    if (!x) return;
    tg_error_clear();
    switch (u8(r) % 4) {
    case 0: status(tg_tensor_fill_(x, fval(r)), "fill_"); break;
    case 1: if (y) status(tg_tensor_copy_(x, y), "copy_"); break;
    case 2: if (y) status(tg_tensor_inplace_(x, y, "+-*/x%"[u8(r) % 6]), "inplace_"); break;
    default: if (y) status(tg_tensor_axpy_(x, fval(r), y), "axpy_"); break;
    }
}

static void op_misc(rd *r) {
    tg_tensor *x = get(r), *y = get(r);
    if (!x) return;
    double v;
    tg_error_clear();
    switch (u8(r) % 9) {
    case 0: /* a gradient that leads back to x is a documented cycle (a leak): not that */
        if (!y || y->grad_fn || (y->grad && y->grad != x) || y->bw_pending) break;
        status(tg_tensor_set_grad(x, y), "set_grad");
        if (y == x && !tg_error_status()) die("set_grad", "a tensor accepted as its own gradient");
        break;
    case 1: status(tg_tensor_retain_grad(x), "retain_grad"); break;
    case 2: status(tg_tensor_set_requires_grad(x, u8(r) & 1), "set_requires_grad"); break;
    case 3: status(tg_tensor_set_name(x, (u8(r) & 1) ? "fuzz.name" : NULL), "set_name"); break;
    case 4: status(tg_tensor_item(x, &v), "item"); break;
    case 5: {
        void *buf = malloc((size_t)x->numel * 8 + 8);
        if (buf) tg_tensor_copy_to_buffer(x, buf);
        free(buf);
        break;
    }
    case 6: { /* read what the graph kept */
        tg_entry *e = x->grad_fn;
        if (!e) break;
        int i = u8(r) % 5;
        tg_tensor *s = tg_entry_saved(e, i);
        if (s) check_tensor(s, "entry_saved");
        else failed_cleanly("entry_saved");
        tg_error_clear();
        tg_tensor *o = tg_entry_output(e);
        if (o) {
            check_tensor(o, "entry_output");
            tg_tensor_release(o);
        } else {
            failed_cleanly("entry_output");
        }
        (void)tg_entry_input(e, i);
        (void)tg_entry_needs_grad(e, i);
        (void)tg_entry_name(e);
        break;
    }
    case 7: if (x->grad) check_tensor(x->grad, "grad"); break;
    default: if (y) result(r, tg_sum_to_shape(x, y->ndim, y->shape), "sum_to_shape"); break;
    }
}

static void op_stepper(rd *r) {
    tg_error_clear();
    if (!open_bw) {
        tg_tensor *t = get(r);
        if (!t) return;
        tg_tensor *seed = seed_for(r, t);
        open_bw = tg_backward_begin(1, &t, seed ? &seed : NULL, u8(r) & TG_RETAIN_GRAPH, 0, NULL);
        tg_tensor_release(seed);
        if (!open_bw) failed_cleanly("backward_begin");
        return;
    }
    int k = u8(r) % 5;
    for (int i = 0; i < k; i++) {
        tg_error_clear();
        int s = tg_backward_step(open_bw);
        if (s < 0) {
            failed_cleanly("backward_step");
            break;
        }
        if (s == 0) break;
        const tg_step *st = tg_backward_last_step(open_bw);
        if (!st) die("backward_step", "no last step after a step");
        for (int j = 0; j < st->n_inputs; j++)
            if (st->grad_in[j]) check_tensor(st->grad_in[j], "step grad_in");
    }
    (void)tg_backward_pending(open_bw, ival(r, -1, 4));
    (void)tg_backward_entry(open_bw, ival(r, -1, 4));
    if (u8(r) & 1) {
        tg_backward_end(open_bw);
        open_bw = NULL;
    }
}

static void op_recorder(rd *r) {
    (void)r;
    tg_error_clear();
    if (!open_rec) {
        open_rec = tg_recorder_begin();
        if (!open_rec) failed_cleanly("recorder_begin");
    } else {
        status(tg_recorder_end(open_rec), "recorder_end");
        for (int64_t i = 0; i < tg_recorder_count(open_rec); i++)
            if (!tg_recorder_entry(open_rec, i)) die("recorder", "a NULL entry");
        tg_recorder_free(open_rec);
        open_rec = NULL;
    }
}

/* A custom entry whose VJP behaves per its context: 0 returns the gradient
 * of each input that needs one (ones), 1 fails, 2 returns nothing, 3 returns
 * a gradient of the wrong shape. */
static tg_status custom_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    int mode = *(int *)ctx;
    if (mode == 1) return tg_error_set(TG_ERR_CALLBACK, "fuzz_custom: the VJP failed on purpose");
    if (mode == 2) return TG_OK;
    for (int i = 0; i < e->n_inputs; i++) {
        if (!tg_entry_needs_grad(e, i)) continue;
        tg_tensor *x = tg_entry_input(e, i);
        if (mode == 3) {
            int64_t s = x->numel + 1;
            gi[i] = tg_tensor_ones(1, &s, x->dtype);
        } else {
            gi[i] = tg_tensor_ones(x->ndim, x->shape, x->dtype);
        }
        if (!gi[i]) return tg_error_status();
    }
    (void)g;
    return TG_OK;
}

static void custom_release(void *ctx) {
    custom_released++;
    free(ctx);
}

static void op_custom(rd *r) {
    int n = 1 + u8(r) % 3;
    tg_tensor *in[3];
    for (int i = 0; i < n; i++) {
        in[i] = get(r);
        if (!in[i]) return;
    }
    tg_tensor *out = get(r);
    if (!out) return;
    int *mode = malloc(sizeof *mode);
    if (!mode) return;
    *mode = u8(r) % 4;
    custom_made++;
    tg_error_clear();
    tg_tensor *t = tg_custom_record("fuzz_custom", n, in, out, custom_vjp, mode, custom_release);
    if (t && t != out && (u8(r) & 1)) { /* a new custom entry: save an input, or its output (refused) */
        tg_tensor *s = (u8(r) & 3) ? in[0] : t;
        tg_error_clear();
        tg_status st = tg_entry_save(t->grad_fn, s);
        status(st, "entry_save");
        if (s == t && st == TG_OK) die("entry_save", "an entry saved its own output");
    }
    result(r, t, "custom_record");
}

/* A gradient hook: mode 0 keeps the gradient, 1 doubles it, 2 fails. */
static tg_status grad_hook(tg_tensor *t, tg_tensor *g, tg_tensor **rep, void *ctx) {
    int mode = *(int *)ctx;
    (void)t;
    if (mode == 2) return tg_error_set(TG_ERR_CALLBACK, "fuzz_hook: failed on purpose");
    if (mode == 1) {
        *rep = tg_mul_scalar(g, 2.0);
        if (!*rep) return tg_error_status();
    }
    return TG_OK;
}

static void op_hook(rd *r) {
    int slot = u8(r) % NSLOT;
    tg_tensor *x = pool[slot];
    if (!x) return;
    int mode = u8(r) % 4;
    if (mode == 3) {
        tg_tensor_set_grad_hook(x, NULL, NULL);
        return;
    }
    hook_mode[slot] = mode;
    tg_tensor_set_grad_hook(x, grad_hook, &hook_mode[slot]);
}

static void op_many(rd *r) {
    int n = 1 + u8(r) % 4;
    tg_tensor *in[4];
    for (int i = 0; i < n; i++) {
        in[i] = get(r);
        if (!in[i]) return;
    }
    if (too_big(in, n)) return;
    tg_error_clear();
    if (u8(r) & 1) result(r, tg_concat(n, in, ival(r, -4, 4)), "concat");
    else result(r, tg_stack(n, in, ival(r, -4, 4)), "stack");
}

/* The convolution family with the classic arguments (a 0 byte, what an
 * exhausted input reads: the calls the corpus was made with) or with random
 * dilation, groups and per-side padding (issue 14): conv2d and its two
 * gradients, conv1d, conv_transpose2d.  *what names the op called. */
static tg_tensor *conv_family(rd *r, tg_tensor *x, tg_tensor *w, tg_tensor *b, const int64_t *xs,
                              int64_t s1, int64_t s2, int64_t p1, int64_t p2, const char **what) {
    uint8_t k = u8(r) % 6;
    if (k == 0) return tg_conv2d(x, w, b, s1, s2, p1, p2);
    /* The path (TAPEGRAD_CONV, read at each call): the default, or forced
     * Winograd F(3x3, 5x5) / F(2x2, r x r) (session 8: any float32 5x5
     * stride-1 layer, the fuzzer's small and odd ones included) / F(4x4,
     * 3x3) (session 15: any 3x3 one), or the implicit GEMM. */
    static const char *const paths[5] = {NULL, "winograd3", "winograd2", "implicit", "winograd4"};
    const char *path = paths[u8(r) % 5];
    if (path) setenv("TAPEGRAD_CONV", path, 1);
    else unsetenv("TAPEGRAD_CONV");
    int64_t cv[9] = {s1, s2, p1, p2, ival(r, 0, 3), ival(r, 0, 3), ival(r, 0, 3), ival(r, -1, 2), ival(r, -1, 2)};
    if (path && path[0] == 'w' && k <= 3 && x->ndim == 4 && (u8(r) & 1)) {
        /* Winograd takes float32 5x5 and 3x3 kernels; op_create's sizes
         * (0..4) never make the first and seldom the second with matching
         * channels: a random one matching x's channels, with stride 1,
         * dilation 1 and one group (what Winograd needs; the padding stays
         * random).  conv2d and its input gradient get the kernel, the
         * weight gradient an r x r w_shape. */
        cv[0] = cv[1] = cv[4] = cv[5] = cv[6] = 1;
        int64_t n = ival(r, 0, 9), c = x->shape[1], ks = (u8(r) & 1) ? 5 : 3;
        if (k == 3) {
            int64_t w5s[4] = {w->ndim == 4 ? w->shape[1] : n, c, ks, ks};
            *what = "conv2d_weight_grad";
            return tg_conv2d_weight_grad_ex(x, w, w5s, cv);
        }
        int64_t ws[4] = {k == 1 ? n : c, k == 1 ? c : n, ks, ks};
        if (ws[0] <= 64 && ws[1] <= 64) {
            tg_error_clear();
            tg_tensor *w5 = tg_tensor_randn(4, ws, 0.0, 1.0, TG_FLOAT32), *t;
            if (!w5) return NULL; /* its status is set */
            if (k == 1) t = tg_conv2d_ex(x, w5, NULL, cv);
            else {
                *what = "conv2d_input_grad";
                t = tg_conv2d_input_grad_ex(x, w5, xs, cv);
            }
            tg_tensor_release(w5);
            return t;
        }
    }
    switch (k) {
    case 1: return tg_conv2d_ex(x, w, b, cv);
    case 2: *what = "conv2d_input_grad"; return tg_conv2d_input_grad_ex(x, w, xs, cv);
    case 3: *what = "conv2d_weight_grad"; return tg_conv2d_weight_grad_ex(x, w, xs, cv);
    case 4: {
        int64_t c1[5] = {s1, p1, cv[4], cv[6], cv[7]};
        *what = "conv1d";
        return tg_conv1d(x, w, b, c1);
    }
    default: {
        int64_t ct[9] = {s1, s2, p1, p2, ival(r, -1, 2), ival(r, -1, 2), cv[6], cv[4], cv[5]};
        *what = "conv_transpose2d";
        return tg_conv_transpose2d(x, w, b, ct);
    }
    }
}

/* Pooling with the classic arguments (a 0 byte) or with random dilation,
 * ceil_mode, count_include_pad and divisor_override (issue 14); also
 * max_unpool2d (indices from `idx`), adaptive_avg_pool2d and interpolate. */
static tg_tensor *pool_family(rd *r, tg_tensor *x, tg_tensor *idx, int64_t kh, int64_t kw, int64_t s1,
                              int64_t s2, int64_t p1, int64_t p2, int max, const char **what) {
    uint8_t k = u8(r) % 6;
    if (k == 0) return max ? tg_max_pool2d(x, kh, kw, s1, s2, p1, p2) : tg_avg_pool2d(x, kh, kw, s1, s2, p1, p2);
    int64_t pp[11] = {kh, kw, s1, s2, p1, p2, max ? ival(r, 0, 3) : 1, max ? ival(r, 0, 3) : 1,
                      u8(r) & 1, u8(r) & 1, ival(r, -1, 3)};
    int64_t hw[2] = {ival(r, 0, 6), ival(r, 0, 6)};
    switch (k) {
    case 1: {
        if (!max) return tg_avg_pool2d_ex(x, pp);
        tg_tensor *ind = NULL, *y = tg_max_pool2d_ex(x, pp, (u8(r) & 1) ? &ind : NULL);
        if (y && ind && !tg__same_shape_fuzz(ind, y))
            die("max_pool2d", "indices do not have the output's shape");
        tg_tensor_release(ind);
        return y;
    }
    case 2: *what = "max_unpool2d"; return tg_max_unpool2d(x, idx, pp, (u8(r) & 1) ? hw : NULL);
    case 3: *what = "adaptive_avg_pool2d"; return tg_adaptive_avg_pool2d(x, hw[0], hw[1]);
    default: {
        double sc[2] = {fval(r), fval(r)};
        *what = "interpolate";
        return tg_interpolate(x, hw, (u8(r) & 1) ? sc : NULL, (int)ival(r, -1, 3), u8(r) & 1);
    }
    }
}

static void op_direct(rd *r) {
    tg_tensor *x = get(r), *y = get(r), *z = get(r);
    if (!x || !y || !z) return;
    tg_tensor *in[3] = {x, y, z};
    if (too_big(in, 3)) return;
    int64_t pads[2 * TG_MAX_DIMS];
    for (int i = 0; i < 2 * x->ndim; i++) pads[i] = ival(r, -1, 4);
    int64_t xs[4];
    for (int i = 0; i < 4; i++) xs[i] = ival(r, 0, 5);
    int64_t s1 = ival(r, 0, 3), s2 = ival(r, 0, 3), p1 = ival(r, -1, 2), p2 = ival(r, -1, 2);
    tg_tensor *t = NULL;
    const char *what = "op";
    tg_error_clear();
    switch (u8(r) % 14) {
    case 0: what = "index_select"; t = tg_index_select(x, ival(r, -3, 3), y); break;
    case 1: what = "gather"; t = tg_gather(x, ival(r, -3, 3), y); break;
    case 2: what = "where"; t = tg_where(x, y, z); break;
    case 3: what = "pad"; t = tg_pad(x, pads, fval(r)); break;
    case 4: {
        what = "one_hot";
        int64_t C = ival(r, -1, 6);
        t = tg_one_hot(x, C, (tg_dtype)(u8(r) % (TG_N_DTYPES + 1)));
        if (t && C < -1) die("one_hot", "a negative num_classes other than -1 accepted");
        break;
    }
    case 5: what = "cross_entropy"; t = tg_cross_entropy(x, y, (tg_reduction)(u8(r) % 4)); break;
    case 6: what = "conv2d"; t = conv_family(r, x, y, (u8(r) & 1) ? z : NULL, xs, s1, s2, p1, p2, &what); break;
    case 7: what = "max_pool2d"; t = pool_family(r, x, y, ival(r, 0, 3), ival(r, 0, 3), s1, s2, p1, p2, 1, &what); break;
    case 8: what = "avg_pool2d"; t = pool_family(r, x, y, ival(r, 0, 3), ival(r, 0, 3), s1, s2, p1, p2, 0, &what); break;
    case 9: what = "conv2d_input_grad"; t = tg_conv2d_input_grad(x, y, xs, s1, s2, p1, p2); break;
    case 10: what = "conv2d_weight_grad"; t = tg_conv2d_weight_grad(x, y, xs, s1, s2, p1, p2); break;
    case 11: what = "cast"; t = tg_cast(x, (tg_dtype)(u8(r) % (TG_N_DTYPES + 1))); break;
    case 12: what = "dropout"; t = tg_dropout(x, fval(r), u8(r) & 1); break;
    default: {
        int64_t ax[2] = {ival(r, -3, 3), ival(r, -3, 3)};
        what = "var";
        t = tg_var(x, (u8(r) & 1) ? NULL : ax, 1 + (u8(r) & 1), u8(r) & 1, ival(r, -1, 3));
    }
    }
    result(r, t, what);
}

static void op_optim(rd *r) {
    int n = 1 + u8(r) % 2;
    tg_tensor *p[2], *g[2], *s1[2] = {0}, *s2[2] = {0};
    for (int i = 0; i < n; i++) {
        p[i] = get(r);
        g[i] = (u8(r) & 3) ? get(r) : NULL;
        if (!p[i]) return;
    }
    tg_status st = TG_OK;
    for (int i = 0; i < n && !st; i++) {
        s1[i] = tg_tensor_zeros(p[i]->ndim, p[i]->shape, p[i]->dtype);
        s2[i] = tg_tensor_zeros(p[i]->ndim, p[i]->shape, p[i]->dtype);
        if (!s1[i] || !s2[i]) st = TG_ERR_MEMORY;
    }
    if (!st) {
        tg_error_clear();
        switch (u8(r) % 4) {
        case 0:
            status(tg_sgd_step(n, p, g, s1, fval(r), fval(r), fval(r), fval(r), u8(r) & 1, u8(r) & 1), "sgd");
            break;
        case 1:
            status(tg_adam_step(n, p, g, s1, s2, ival(r, -1, 5), fval(r), fval(r), fval(r), fval(r),
                                fval(r), u8(r) & 1),
                   "adam");
            break;
        case 2:
            status(tg_rmsprop_step(n, p, g, s1, s2, fval(r), fval(r), fval(r), fval(r), fval(r)), "rmsprop");
            break;
        default: {
            double norm;
            status(tg_clip_grad_norm(n, g, fval(r), fval(r), &norm), "clip_grad_norm");
        }
        }
    }
    for (int i = 0; i < n; i++) {
        tg_tensor_release(s1[i]);
        tg_tensor_release(s2[i]);
    }
}

/* ---- the registry, adversarially (issue 14) ---------------------------- */

/* Extreme integers for op parameters (axes, offsets, sizes, kernel, stride,
 * padding, dilation, groups, counts): the boundaries of int64, of int32 and
 * of uint8, the overflow points of products, and the small edge values. */
static int64_t xval(rd *r) {
    static const int64_t x[] = {0, -1, -2, 1, INT64_MIN, INT64_MAX, INT64_MIN + 1, (int64_t)1 << 62,
                                -((int64_t)1 << 62), (int64_t)1 << 40, (int64_t)1 << 31,
                                -((int64_t)1 << 31) - 1, (int64_t)1 << 32, 255, 256, 9};
    return x[u8(r) % 16];
}

/* Which registry op: two bytes, so that every op is reached evenly however
 * long the registry grows. */
static const tg_opdef *pick_op(rd *r) {
    int hi = u8(r), lo = u8(r);
    return tg_op_get((hi << 8 | lo) % tg_op_count());
}

/* x with the same shape (and values, except case 4's) in another layout:
 * reversed strides, negative strides, a step of 2, a broadcast (stride 0),
 * huge strides on its size-1 dims, a storage offset.  NULL when the layout
 * cannot be made (then the caller keeps x); the error is checked. */
static tg_tensor *relayout(rd *r, tg_tensor *x) {
    int nd = x->ndim;
    int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS], c[TG_MAX_DIMS], shp[TG_MAX_DIMS];
    tg_tensor *t = NULL, *u = NULL;
    tg_error_clear();
    switch (u8(r) % 6) {
    case 0: /* reversed strides: the transpose of a contiguous transpose */
        for (int i = 0; i < nd; i++) a[i] = nd - 1 - i;
        u = tg_permute(x, a);
        t = u ? tg_contiguous(u) : NULL;
        tg_tensor_release(u);
        u = t;
        t = u ? tg_permute(u, a) : NULL;
        break;
    case 1: /* every dim reversed: negative strides */
        for (int i = 0; i < nd; i++) {
            a[i] = -1;
            b[i] = -x->shape[i] - 1;
            c[i] = -1;
        }
        t = tg_slice(x, a, b, c, 0);
        break;
    case 2: /* x copied into [..., 0] of a (..., 2) buffer: the last stride is 2 */
        if (nd >= TG_MAX_DIMS) return NULL;
        for (int i = 0; i < nd; i++) {
            shp[i] = x->shape[i];
            a[i] = 0;
            b[i] = x->shape[i];
            c[i] = 1;
        }
        shp[nd] = 2, a[nd] = 0, b[nd] = 1, c[nd] = 1;
        u = tg_tensor_zeros(nd + 1, shp, x->dtype);
        t = u ? tg_slice(u, a, b, c, 1u << nd) : NULL;
        if (t && tg_tensor_copy_(t, x)) {
            tg_tensor_release(t);
            t = NULL;
        }
        break;
    case 3: /* x's first element broadcast to x's shape (stride 0) */
        if (x->numel == 0) return NULL;
        for (int i = 0; i < nd; i++) {
            a[i] = 0;
            b[i] = 1;
            c[i] = 1;
        }
        u = tg_slice(x, a, b, c, 0);
        t = u ? tg_broadcast_to(u, nd, x->shape) : NULL;
        break;
    case 4: { /* a fresh storage viewed with an extreme stride on each size-1 dim */
        u = tg_contiguous(x);
        if (!u) break;
        for (int i = 0; i < nd; i++) a[i] = x->shape[i] == 1 ? xval(r) : u->strides[i];
        t = tg_tensor_from_storage(u->storage, u->dtype, nd, u->shape, a, u->offset);
        break;
    }
    default: { /* a storage offset: x copied into a flat buffer from element 1 */
        int64_t n = x->numel + 1, one = 1, stop = n, step = 1;
        u = tg_tensor_zeros(1, &n, x->dtype);
        tg_tensor *v = u ? tg_slice(u, &one, &stop, &step, 0) : NULL;
        t = v ? tg_reshape(v, nd, x->shape) : NULL;
        tg_tensor_release(v);
        if (t && tg_tensor_copy_(t, x)) {
            tg_tensor_release(t);
            t = NULL;
        }
    }
    }
    tg_tensor_release(u);
    if (!t) failed_cleanly("relayout");
    else check_tensor(t, "relayout");
    return t;
}

/* Write v into one element of x (a view of x's element, then fill_). */
static void poke(rd *r, tg_tensor *x, double v) {
    if (x->numel == 0) return;
    int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS], c[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        a[i] = u8(r) % x->shape[i];
        b[i] = a[i] + 1;
        c[i] = 1;
    }
    tg_error_clear();
    tg_tensor *e = tg_slice(x, a, b, c, 0);
    if (!e) {
        failed_cleanly("poke");
        return;
    }
    tg_error_clear();
    status(tg_tensor_fill_(e, v), "poke fill_");
    tg_tensor_release(e);
}

/* One extreme or off-by-a-little value in one parameter field. */
static int64_t nudge(int64_t v, int64_t d) { return (int64_t)((uint64_t)v + (uint64_t)d); } /* wraps */

static void mutate_params(rd *r, tg_params *p) {
    int k = u8(r), small = k & 1;
    int64_t d = ival(r, -2, 2);
    switch ((k >> 1) % 6) {
    case 0: { int j = u8(r) % TG_MAX_DIMS; p->axes[j] = small ? nudge(p->axes[j], d) : xval(r); break; }
    case 1: { int j = u8(r) % (4 * TG_MAX_DIMS); p->ints[j] = small ? nudge(p->ints[j], d) : xval(r); break; }
    case 2: { int j = u8(r) % 4; p->i[j] = small ? nudge(p->i[j], d) : xval(r); break; }
    case 3: { int j = u8(r) % TG_MAX_DIMS; p->shape[j] = small ? nudge(p->shape[j], d) : xval(r); break; }
    case 4: p->f[u8(r) % 4] = fval(r); break;
    default:
        if (small) p->ndim = (int)ival(r, -1, TG_MAX_DIMS + 1);
        else p->naxes = (int)ival(r, -2, TG_MAX_DIMS + 1);
        p->keepdims = u8(r) & 1;
    }
}

/* d sum(t) / d inputs, maybe with create_graph and then once more (second
 * order): every gradient has its input's shape. */
static void grad_through(rd *r, tg_tensor *t, tg_tensor *const *in, int n) {
    tg_tensor *xs[8];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (in[i]->requires_grad) {
            int dup = 0;
            for (int j = 0; j < m; j++) dup |= xs[j] == in[i];
            if (!dup) xs[m++] = in[i];
        }
    if (!m || !t->requires_grad || !tg_grad_enabled()) return;
    int create = u8(r) & 1;
    for (int order = 0; order < 1 + create && t; order++) {
        tg_tensor *seed = NULL, *res[8] = {0};
        if (order == 0 && (u8(r) & 3) == 0) seed = tg_tensor_full(t->ndim, t->shape, fval(r), t->dtype);
        tg_error_clear();
        tg_status st = tg_grad(1, &t, seed ? &seed : NULL, m, xs,
                               (order == 0 && create) ? TG_CREATE_GRAPH : TG_RETAIN_GRAPH, res);
        tg_tensor_release(seed);
        if (order > 0) tg_tensor_release(t);
        t = NULL;
        if (st) {
            failed_cleanly(order ? "grad (2nd order)" : "grad (registry op)");
            for (int i = 0; i < m; i++)
                if (res[i]) die("grad", "a result left after a failure");
            return;
        }
        for (int i = 0; i < m; i++) {
            check_tensor(res[i], "grad (registry op)");
            if (!tg__same_shape_fuzz(res[i], xs[i])) die("grad", "a gradient without its input's shape");
        }
        if (order == 0 && create) { /* the next order: d sum(grads) / d inputs */
            for (int i = 0; i < m && !t; i++)
                if (res[i]->requires_grad) {
                    tg_error_clear();
                    t = tg_sum(res[i], NULL, 0, false);
                    if (!t) failed_cleanly("sum of a gradient");
                }
        }
        for (int i = 0; i < m; i++) tg_tensor_release(res[i]);
    }
}

/* A registry op called with one of its own examples (inputs the op accepts,
 * so that the call reaches its kernel), then made adversarial: extreme or
 * off-by-one parameters, inputs cast to another dtype, in another layout,
 * with NaN/Inf/huge elements, with unit dims up to 8 (and one too many), with
 * an empty dim, replaced by a pool tensor, one input fewer or more; then its
 * gradient (second order too) through every input that requires grad.  The
 * result and an input join the pool (later instructions write in place
 * through them, view them, backpropagate). */
static void op_example(rd *r) {
    const tg_opdef *op = pick_op(r);
    int nex = tg_op_example_count(op);
    if (nex <= 0) return;
    tg_dtype dt = (u8(r) & 1) ? TG_FLOAT32 : TG_FLOAT64;
    tg_tensor *in[9] = {0};
    int n = 0;
    tg_params p;
    memset(&p, 0, sizeof p);
    tg_error_clear();
    if (tg_op_example(op, u8(r) % nex, dt, &n, in, &p)) die(op->name, "its own example cannot be built");
    int muts = u8(r) % 5;
    for (int k = 0; k < muts; k++) {
        int kind = u8(r) % 9, j = n ? u8(r) % n : 0;
        tg_tensor *x = n ? in[j] : NULL, *y = NULL;
        int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS], c[TG_MAX_DIMS];
        if (kind == 0 || !x) {
            mutate_params(r, &p);
            continue;
        }
        tg_error_clear();
        switch (kind) {
        case 1: y = tg_cast(x, (tg_dtype)(u8(r) % TG_N_DTYPES)); if (!y) failed_cleanly("cast"); break;
        case 2: y = relayout(r, x); break;
        case 3: if (x->requires_grad) break; poke(r, x, fval(r)); break;
        case 4: { /* unit dims in front up to 8, or 9 (refused) */
            int want = (u8(r) & 1) ? TG_MAX_DIMS : TG_MAX_DIMS + 1;
            y = x;
            tg_tensor_retain(y);
            while (y && y->ndim < want) {
                tg_tensor *z = tg_unsqueeze(y, 0);
                if (!z) failed_cleanly("unsqueeze");
                tg_tensor_release(y);
                y = z;
                tg_error_clear();
            }
            break;
        }
        case 5: { /* one dim emptied */
            if (!x->ndim) break;
            int d = u8(r) % x->ndim;
            for (int i = 0; i < x->ndim; i++) {
                a[i] = 0;
                b[i] = i == d ? 0 : x->shape[i];
                c[i] = 1;
            }
            y = tg_slice(x, a, b, c, 0);
            if (!y) failed_cleanly("slice");
            break;
        }
        case 6: y = get(r); if (y) tg_tensor_retain(y); break;
        case 7: /* one input fewer (or, variadic, one more) */
            if (op->arity < 0 && (u8(r) & 1) && n < 8) {
                in[n++] = x;
                tg_tensor_retain(x);
            } else {
                tg_tensor_release(in[--n]);
                in[n] = NULL;
            }
            break;
        default: mutate_params(r, &p); break;
        }
        if (y) {
            if (y->numel > (1 << 14)) {
                tg_tensor_release(y);
                continue;
            }
            check_tensor(y, "mutated input");
            tg_tensor_release(in[j]);
            in[j] = y;
        }
    }
    uint8_t rg = u8(r); /* bit i clear: input i requires grad (an exhausted input: all do) */
    for (int i = 0; i < n; i++)
        if (!(rg >> (i & 7) & 1) && (op->diff_mask >> i & 1) && tg_dtype_is_float(in[i]->dtype) &&
            !in[i]->grad_fn && !in[i]->requires_grad) {
            tg_error_clear();
            status(tg_tensor_set_requires_grad(in[i], true), "set_requires_grad");
        }
    tg_error_clear();
    tg_tensor *t = tg_op_apply(op, n, in, &p);
    trace(op->name, t);
    if (!t) {
        failed_cleanly(op->name);
    } else {
        check_tensor(t, op->name);
        check_answer(op, in, &p, t);
        if (t->numel <= (1 << 14)) grad_through(r, t, in, n);
        tg_tensor_retain(t);
        result(r, t, op->name);
        tg_tensor_release(t);
    }
    if (n && in[0]->numel <= (1 << 16)) {
        tg_tensor_retain(in[0]);
        put(u8(r) % NSLOT, in[0]);
    }
    for (int i = 0; i < n; i++) tg_tensor_release(in[i]);
}

/* The tape's in-place ops (issue 14: autograd through in-place writes) on
 * pool tensors, on views of them and with views of them as the target of a
 * setitem; the rebase hook below moves the pool's handles to each new
 * version, as the Python binding moves its objects. */
static void follow_rebase(tg_tensor *old, tg_tensor *nw) {
    for (int i = 0; i < NSLOT; i++)
        if (pool[i] == old) {
            tg_tensor_retain(nw);
            pool[i] = nw;
            tg_tensor_release(old);
        }
}

static void op_inplace_tape(rd *r) {
    tg_tensor *x = get(r), *y = get(r), *z = get(r);
    if (!x || !y || !z) return;
    tg_tensor *view = NULL, *dst = x;
    int kind = u8(r) % 12;
    if (kind >= 9 && kind != 11) { /* a view of x: a slice with any steps, or a transpose */
        int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS], c[TG_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++) {
            a[i] = ival(r, -4, 4);
            b[i] = ival(r, -4, 4);
            c[i] = ival(r, -2, 2);
        }
        tg_error_clear();
        view = (u8(r) & 3) ? tg_slice(x, a, b, c, u8(r) & 1) : tg_transpose(x, 0, -1);
        if (!view) {
            failed_cleanly("view for an in-place write");
            return;
        }
        check_tensor(view, "view for an in-place write");
        dst = view;
    }
    tg_error_clear();
    switch (kind) {
    case 0: status(tg_add_(dst, y, fval(r)), "add_"); break;
    case 1: status(tg_sub_(dst, y, fval(r)), "sub_"); break;
    case 2: status(tg_mul_(dst, y), "mul_"); break;
    case 3: status(tg_div_(dst, y), "div_"); break;
    case 4: status(tg_relu_(dst), "relu_"); break;
    case 5: status(tg_clip_(dst, fval(r), fval(r)), "clip_"); break;
    case 6: status(tg_masked_fill_(dst, y, z), "masked_fill_"); break;
    case 7: status(tg_assign_(dst, y), "assign_"); break;
    case 8: status(tg_fill_value_(dst, fval(r)), "fill_value_"); break;
    case 9: status(tg_setitem_(x, view, y), "setitem_"); break;
    case 10: status(tg_add_(dst, y, 1.0), "add_ (through a view)"); break;
    default: status(tg_setitem_mask_(x, y, z), "setitem_mask_"); break;
    }
    if (view) {
        tg_tensor_retain(view);
        result(r, view, "view written in place");
        tg_tensor_release(view);
    }
}

/* ---- one input ---------------------------------------------------------- */

static void reset_all(void) {
    if (open_bw) tg_backward_end(open_bw);
    open_bw = NULL;
    if (open_rec) tg_recorder_free(open_rec);
    open_rec = NULL;
    for (int i = 0; i < NSLOT; i++) put(i, NULL);
    tg_set_grad_enabled(true);
    tg_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rd r = {data, size, 0};
    tg_manual_seed(1234);
    custom_made = custom_released = 0;
    tg_set_rebase_hook(follow_rebase);
    for (int steps = 0; more(&r) && steps < 96; steps++) {
        uint8_t kind = u8(&r);
        /* 224..255: the issue 14 instructions; below, kind % 16 as before
         * (the meaning of most older corpus files is kept) */
        if (kind >= 224) {
            if (kind < 248) op_example(&r);
            else op_inplace_tape(&r);
            continue;
        }
        switch (kind % 16) {
        case 0: case 1: op_create(&r); break;
        case 2: case 3: op_registry(&r); break;
        case 4: op_view(&r); break;
        case 5: op_backward(&r); break;
        case 6: op_grad(&r); break;
        case 7: op_inplace(&r); break;
        case 8: put(u8(&r) % NSLOT, NULL); break;
        case 9: op_misc(&r); break;
        case 10: tg_set_grad_enabled(!tg_grad_enabled()); break;
        case 11: op_stepper(&r); break;
        case 12: op_custom(&r); break;
        case 13: (u8(&r) & 1) ? op_hook(&r) : op_recorder(&r); break;
        case 14: op_many(&r); break;
        default: (u8(&r) & 1) ? op_direct(&r) : op_optim(&r); break;
        }
    }
    reset_all();
    /* every custom entry made was released with its graph: nothing leaked */
    if (custom_released != custom_made) {
        fprintf(stderr, "fuzz_ops: %d custom entries made, %d released\n", custom_made,
                custom_released);
        abort();
    }
    return 0;
}
