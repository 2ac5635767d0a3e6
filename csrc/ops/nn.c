/*
 * nn.c -- functions for networks: softmax, log_softmax, the losses,
 * one_hot and dropout.
 *
 * cross_entropy is fused (log-softmax and the pick of the label's entry in
 * one pass, numerically stable), but its VJP is still written with ops:
 * (softmax(z) - onehot(y)) * dL, so second derivatives work.
 */
#include "ops_internal.h"

#include <math.h>
#include <stdlib.h>



static tg_status check_red(const char *who, tg_reduction r) {
    if (r != TG_REDUCTION_NONE && r != TG_REDUCTION_MEAN && r != TG_REDUCTION_SUM)
        return tg_error_set(TG_ERR_VALUE, "%s: reduction must be 'mean', 'sum' or 'none', got %d", who, (int)r);
    return TG_OK;
}

/* ===================================================================== */
/* softmax / log_softmax                                                  */
/* ===================================================================== */

/* logsumexp along ax as softmax and log_softmax need it: PyTorch and a
 * max-shifted NumPy softmax compute x - max first, so a row whose max is
 * +-inf gives NaN everywhere (inf - inf); tg_logsumexp gives inf for such a
 * row (right for logsumexp itself), after which softmax([inf, 1]) would be
 * [nan, 0].  lse + (m - m) is lse exactly where m is finite and NaN where
 * it is infinite.  Grad mode is off in the callers. */
static tg_tensor *shift_lse(tg_tensor *x, int64_t ax) {
    tg_tensor *lse = x->ndim ? tg_logsumexp(x, &ax, 1, true) : tg_logsumexp(x, NULL, 0, true);
    tg_tensor *m = lse ? (x->ndim ? tg_max(x, &ax, 1, true) : tg_max(x, NULL, 0, true)) : NULL;
    tg_tensor *z = m ? tg_sub(m, m) : NULL;
    tg_tensor_release(m);
    return take2(tg_add, lse, z);
}

tg_tensor *tg_softmax(tg_tensor *x, int64_t axis) {
    int64_t ax;
    if (tg__require_float("softmax", x) || tg__norm_axis("softmax", axis, x->ndim, &ax)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y;
    if (x->numel == 0) { /* no element to normalise: an empty result, as in PyTorch */
        y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    } else {
        tg_tensor *lse = shift_lse(x, ax);
        tg_tensor *out = lse ? take2(tg_sub, (tg_tensor_retain(x), x), lse) : NULL;
        y = out ? tg_exp(out) : NULL;
        tg_tensor_release(out);
    }
    tg_set_grad_enabled(prev);
    tg_entry *e;
    y = tg__finish(&tg_opdef_softmax, 1, &x, y, &e);
    if (e) {
        e->params.i[0] = ax;
        tg__save_output(e, y);
    }
    return y;
}
static tg_status softmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* dx = y * (dy - sum(dy * y, axis)) */
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    int64_t ax = e->params.i[0];
    tg_tensor *gy = tg_mul(g, y);
    tg_tensor *s = gy ? (y->ndim ? tg_sum(gy, &ax, 1, true) : tg_sum(gy, NULL, 0, true)) : NULL;
    tg_tensor_release(gy);
    tg_tensor *d = s ? take2(tg_sub, (tg_tensor_retain(g), g), s) : NULL;
    gi[0] = d ? take2(tg_mul, y, d) : (tg_tensor_release(y), NULL);
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_softmax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_softmax(in[0], p->i[0]);
}
TG_DEFINE_OP(softmax, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = exp(x) / sum(exp(x), axis)", .forward_tex = "y_i = \\frac{e^{x_i}}{\\sum_j e^{x_j}}",
             .vjp = "dx = y * (dy - sum(dy * y, axis))",
             .vjp_tex = "\\bar x = y \\odot (\\bar y - \\textstyle\\sum_j \\bar y_j y_j)",
             .doc = "Softmax along an axis (i0), computed stably.", .backward = softmax_vjp,
             .apply = apply_softmax, .examples = "3x5|i0=1;3x5|i0=0;T4x3|i0=-1;2x3x4|i0=1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

tg_tensor *tg_log_softmax(tg_tensor *x, int64_t axis) {
    int64_t ax;
    if (tg__require_float("log_softmax", x) || tg__norm_axis("log_softmax", axis, x->ndim, &ax)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y;
    if (x->numel == 0) { /* see softmax */
        y = tg_tensor_empty(x->ndim, x->shape, x->dtype);
    } else {
        tg_tensor *lse = shift_lse(x, ax);
        y = lse ? take2(tg_sub, (tg_tensor_retain(x), x), lse) : NULL;
    }
    tg_set_grad_enabled(prev);
    tg_entry *e;
    y = tg__finish(&tg_opdef_log_softmax, 1, &x, y, &e);
    if (e) {
        e->params.i[0] = ax;
        tg__save_output(e, y);
    }
    return y;
}
static tg_status log_softmax_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* dx = dy - exp(y) * sum(dy, axis) */
    tg_tensor *y = tg_entry_output(e);
    CHECK(y);
    int64_t ax = e->params.i[0];
    tg_tensor *p = tg_exp(y);
    tg_tensor_release(y);
    tg_tensor *s = p ? (g->ndim ? tg_sum(g, &ax, 1, true) : tg_sum(g, NULL, 0, true)) : NULL;
    tg_tensor *ps = take2(tg_mul, p, s);
    gi[0] = ps ? take2(tg_sub, (tg_tensor_retain(g), g), ps) : NULL;
    CHECK(gi[0]);
    return TG_OK;
}
static tg_tensor *apply_log_softmax(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_log_softmax(in[0], p->i[0]);
}
TG_DEFINE_OP(log_softmax, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x - logsumexp(x, axis)", .forward_tex = "y_i = x_i - \\log\\sum_j e^{x_j}",
             .vjp = "dx = dy - exp(y) * sum(dy, axis)",
             .vjp_tex = "\\bar x = \\bar y - e^{y} \\textstyle\\sum_j \\bar y_j",
             .doc = "Log of the softmax along an axis (i0), computed stably.",
             .backward = log_softmax_vjp, .apply = apply_log_softmax,
             .examples = "3x5|i0=1;3x5|i0=0;T4x3|i0=-1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ===================================================================== */
/* one_hot                                                                */
/* ===================================================================== */

static tg_status check_labels(const char *who, const tg_tensor *labels, int64_t C) {
    if (labels->dtype != TG_INT64)
        return tg_error_set(TG_ERR_TYPE,
                            "%s: class labels must be int64, got %s (convert with .astype(tg.int64))",
                            who, tg_dtype_name(labels->dtype));
    for (int64_t i = 0; i < labels->numel; i++) {
        int64_t v = tg__get_flat_i64(labels, i);
        if (v < 0 || v >= C)
            return tg_error_set(TG_ERR_INDEX,
                                "%s: label %lld at position %lld is out of range for %lld classes "
                                "(expected 0 <= label < %lld)",
                                who, (long long)v, (long long)i, (long long)C, (long long)C);
    }
    return TG_OK;
}

tg_tensor *tg_one_hot(tg_tensor *labels, int64_t C, tg_dtype dt) {
    if (C < -1)
        return TG_FAIL(TG_ERR_VALUE,
                       "one_hot: num_classes must be >= 0, or -1 to infer it from the labels; "
                       "got %lld",
                       (long long)C);
    if (C == -1) { /* infer from the data, like torch */
        C = 0;
        if (labels->dtype == TG_INT64)
            for (int64_t i = 0; i < labels->numel; i++) {
                int64_t v = tg__get_flat_i64(labels, i);
                if (v + 1 > C) C = v + 1;
            }
    }
    if (check_labels("one_hot", labels, C)) return NULL;
    if (labels->ndim >= TG_MAX_DIMS) return TG_FAIL(TG_ERR_VALUE, "one_hot: too many dimensions");
    int64_t sh[TG_MAX_DIMS];
    memcpy(sh, labels->shape, sizeof sh);
    sh[labels->ndim] = C;
    tg_tensor *out = tg_tensor_zeros(labels->ndim + 1, sh, dt);
    if (!out) return NULL;
    char *p = tg_tensor_data(out);
    size_t isz = tg_dtype_size(dt);
    for (int64_t i = 0; i < labels->numel; i++) {
        int64_t v = tg__get_flat_i64(labels, i);
        char *q = p + (i * C + v) * (int64_t)isz;
        switch (dt) {
        case TG_FLOAT32: *(float *)q = 1; break;
        case TG_FLOAT64: *(double *)q = 1; break;
        case TG_INT64: *(int64_t *)q = 1; break;
        case TG_INT32: *(int32_t *)q = 1; break;
        default: *(uint8_t *)q = 1; break; /* uint8, bool */
        }
    }
    return out;
}
static tg_tensor *apply_one_hot(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_one_hot(in[0], p->i[0], (tg_dtype)p->i[1]);
}
TG_DEFINE_OP(one_hot, .arity = 1, .diff_mask = 0, .dtypes = "int64 -> float32,float64,int64,int32,uint8,bool",
             .forward = "y[..., c] = [labels == c]", .forward_tex = "y_{ic} = [\\,y_i = c\\,]",
             .vjp = "not differentiable", .vjp_tex = "",
             .doc = "One-hot encoding of int64 labels (i0 classes, i1 dtype).", .backward = NULL,
             .apply = apply_one_hot, .examples = "i5:6|i0=5;i3:2x3|i0=4 i1=1");

/* ===================================================================== */
/* cross_entropy / nll_loss                                               */
/* ===================================================================== */

/* Reduce per-sample losses (N,) as asked. */
static tg_tensor *reduce_loss(tg_tensor *l, tg_reduction red) {
    if (red == TG_REDUCTION_NONE) {
        tg_tensor_retain(l);
        return l;
    }
    return red == TG_REDUCTION_SUM ? tg_sum(l, NULL, 0, false) : tg_mean(l, NULL, 0, false);
}

/* Scale a (N, C) or same-shape VJP factor d by the upstream gradient g of a
 * reduced loss: mean -> g/N, sum -> g, none -> g per sample (column). */
static tg_tensor *scale_by_upstream(tg_tensor *d, tg_tensor *g, tg_reduction red, int64_t n,
                                    bool per_row) {
    if (red == TG_REDUCTION_NONE) {
        tg_tensor *gg = per_row ? tg_unsqueeze(g, -1) : (tg_tensor_retain(g), g);
        return take2(tg_mul, (tg_tensor_retain(d), d), gg);
    }
    tg_tensor *r = tg_mul(d, g);
    if (!r || red == TG_REDUCTION_SUM) return r;
    tg_tensor *s = tg_mul_scalar(r, n ? 1.0 / (double)n : 0.0);
    tg_tensor_release(r);
    return s;
}

static tg_status check_class_input(const char *who, const tg_tensor *z, const tg_tensor *labels) {
    if (tg__require_float(who, z)) return tg_error_status();
    if (z->ndim != 2 || labels->ndim != 1 || labels->shape[0] != z->shape[0])
        return tg_error_set(TG_ERR_VALUE,
                            "%s: expected input of shape (N, C) and labels of shape (N,), got %s "
                            "and %s",
                            who, tg__shp(z), tg__shp(labels));
    return check_labels(who, labels, z->shape[1]);
}

/* Run `f` on 2-D/1-D-labels versions of z, labels: 1-D z means one sample. */
static tg_tensor *with_batch(tg_tensor *(*f)(tg_tensor *, tg_tensor *, tg_reduction), tg_tensor *z,
                             tg_tensor *labels, tg_reduction red) {
    int64_t one = 1, sh[2] = {1, z->shape[0]};
    tg_tensor *z2 = tg_reshape(z, 2, sh);
    tg_tensor *l2 = z2 ? tg_reshape(labels, 1, &one) : NULL;
    tg_tensor *r = l2 ? f(z2, l2, red) : NULL;
    tg_tensor_release(z2);
    tg_tensor_release(l2);
    if (r && red == TG_REDUCTION_NONE) {
        tg_tensor *s = tg_reshape(r, 0, NULL);
        tg_tensor_release(r);
        r = s;
    }
    return r;
}

tg_tensor *tg_cross_entropy(tg_tensor *z, tg_tensor *labels, tg_reduction red) {
    if (check_red("cross_entropy", red)) return NULL;
    if (z->ndim == 1 && labels->ndim == 0) return with_batch(tg_cross_entropy, z, labels, red);
    if (check_class_input("cross_entropy", z, labels)) return NULL;
    int64_t N = z->shape[0], C = z->shape[1];
    /* per-sample loss: logsumexp(z_i) - z_i[y_i], one pass per row in double */
    tg_tensor *zc = tg__copy(z);
    tg_tensor *l = zc ? tg_tensor_empty(1, &N, z->dtype) : NULL;
    if (!l) {
        tg_tensor_release(zc);
        return NULL;
    }
    for (int64_t i = 0; i < N; i++) {
        int64_t y = tg__get_flat_i64(labels, i);
        double m = -INFINITY, s = 0, zy;
        if (z->dtype == TG_FLOAT32) {
            const float *row = (const float *)tg_tensor_data(zc) + i * C;
            for (int64_t c = 0; c < C; c++) m = row[c] > m || row[c] != row[c] ? row[c] : m;
            if (m == INFINITY) m = NAN; /* log_softmax of the row is NaN (inf - inf), as in PyTorch */
            else if (isinf(m)) m = 0;
            for (int64_t c = 0; c < C; c++) s += exp((double)row[c] - m);
            zy = row[y];
            ((float *)tg_tensor_data(l))[i] = (float)(m + log(s) - zy);
        } else {
            const double *row = (const double *)tg_tensor_data(zc) + i * C;
            for (int64_t c = 0; c < C; c++) m = row[c] > m || row[c] != row[c] ? row[c] : m;
            if (m == INFINITY) m = NAN; /* see above */
            else if (isinf(m)) m = 0;
            for (int64_t c = 0; c < C; c++) s += exp(row[c] - m);
            zy = row[y];
            ((double *)tg_tensor_data(l))[i] = m + log(s) - zy;
        }
    }
    tg_tensor_release(zc);
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = reduce_loss(l, red);
    tg_set_grad_enabled(prev);
    tg_tensor_release(l);
    tg_tensor *in[2] = {z, labels};
    tg_entry *e;
    out = tg__finish(&tg_opdef_cross_entropy, 2, in, out, &e);
    if (e) {
        e->params.i[0] = red;
        /* the labels are saved too: the VJP reads them, so a write into them
         * before backward must be caught (version counter, safe aliasing) */
        if (tg__save(e, z) || tg__save(e, labels)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status cross_entropy_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *z = tg_entry_saved(e, 0);
    CHECK(z);
    tg_tensor *labels = tg_entry_saved(e, 1);
    CHECK(labels);
    /* dz = (softmax(z) - onehot(y)) * dL  (/N for mean) */
    tg_tensor *p = tg_softmax(z, 1);
    tg_tensor *oh = p ? tg_one_hot(labels, z->shape[1], z->dtype) : NULL;
    tg_tensor *d = take2(tg_sub, p, oh);
    CHECK(d);
    gi[0] = scale_by_upstream(d, g, (tg_reduction)e->params.i[0], z->shape[0], true);
    tg_tensor_release(d);
    CHECK(gi[0]);
    return TG_OK;
}
/* the options (nnlayers.c): an optional class-weight input, i1 ignore_index
 * when i2 is 1 (else -100), f0 label_smoothing; float targets are class
 * probabilities.  The plain case runs this op, the others a composite. */
static tg_tensor *apply_cross_entropy(tg_tensor *const *in, int n, const tg_params *p) {
    return tg_cross_entropy_ex(in[0], in[1], n > 2 ? in[2] : NULL, p->i[2] ? p->i[1] : -100,
                               p->f[0], (tg_reduction)p->i[0]);
}
TG_DEFINE_OP(cross_entropy, .arity = -1, .diff_mask = 1, .dtypes = "float32,float64 logits; int64 labels",
             .forward = "L = mean_i(logsumexp(z_i) - z_i[y_i])",
             .forward_tex = "L = \\frac{1}{N}\\sum_i \\Big(\\log\\sum_c e^{z_{ic}} - z_{i y_i}\\Big)",
             .vjp = "dz = (softmax(z) - onehot(y)) * dL / N",
             .vjp_tex = "\\bar z = \\frac{\\bar L}{N}\\,(\\operatorname{softmax}(z) - \\operatorname{onehot}(y))",
             .doc = "Softmax cross-entropy on logits with int64 class labels or class probabilities "
                    "(i0 reduction: 0 none, 1 mean, 2 sum; optional class-weight input; i1 "
                    "ignore_index if i2 = 1; f0 label_smoothing; (N, C, d1, ...) inputs).",
             .backward = cross_entropy_vjp, .apply = apply_cross_entropy,
             .examples = "4x5,i5:4|i0=1;4x5,i5:4|i0=0;4x5,i5:4|i0=2;T5x3,i3:5|i0=1;5,i5:-|i0=1;"
                         "4x5,i5:4,+5|i0=1;6x3,i3:6|i0=1 i1=1 i2=1;6x3,i3:6,+3|i0=1 i1=0 i2=1;"
                         "4x5,i5:4|i0=1 f0=0.2;4x5,i5:4,+5|i0=2 f0=0.1;2x3x4,i3:2x4|i0=0;"
                         "2x3x2x2,i3:2x2x2,+3|i0=1 f0=0.1;4x5,u4x5|i0=1;4x5,u4x5,+5|i0=0 f0=0.3;"
                         "2x3x4,u2x3x4|i0=2",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar z");

tg_tensor *tg_nll_loss(tg_tensor *lp, tg_tensor *labels, tg_reduction red) {
    if (check_red("nll_loss", red)) return NULL;
    if (lp->ndim == 1 && labels->ndim == 0) return with_batch(tg_nll_loss, lp, labels, red);
    if (check_class_input("nll_loss", lp, labels)) return NULL;
    int64_t N = lp->shape[0];
    tg_tensor *l = tg_tensor_empty(1, &N, lp->dtype);
    if (!l) return NULL;
    for (int64_t i = 0; i < N; i++) {
        int64_t y = tg__get_flat_i64(labels, i);
        double v = -tg_tensor_get_flat(lp, i * lp->shape[1] + y);
        if (lp->dtype == TG_FLOAT32) ((float *)tg_tensor_data(l))[i] = (float)v;
        else ((double *)tg_tensor_data(l))[i] = v;
    }
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *out = reduce_loss(l, red);
    tg_set_grad_enabled(prev);
    tg_tensor_release(l);
    tg_tensor *in[2] = {lp, labels};
    tg_entry *e;
    out = tg__finish(&tg_opdef_nll_loss, 2, in, out, &e);
    if (e) {
        e->params.i[0] = red;
        e->params.ndim = 2;
        e->params.shape[0] = lp->shape[0];
        e->params.shape[1] = lp->shape[1];
        if (tg__save(e, labels)) { /* read by the VJP: see cross_entropy */
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status nll_loss_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *labels = tg_entry_saved(e, 0);
    CHECK(labels);
    tg_tensor *oh = tg_one_hot(labels, e->params.shape[1], g->dtype);
    tg_tensor *d = oh ? tg_neg(oh) : NULL;
    tg_tensor_release(oh);
    CHECK(d);
    gi[0] = scale_by_upstream(d, g, (tg_reduction)e->params.i[0], e->params.shape[0], true);
    tg_tensor_release(d);
    CHECK(gi[0]);
    return TG_OK;
}
/* options as cross_entropy's (no label smoothing, no probabilities) */
static tg_tensor *apply_nll_loss(tg_tensor *const *in, int n, const tg_params *p) {
    return tg_nll_loss_ex(in[0], in[1], n > 2 ? in[2] : NULL, p->i[2] ? p->i[1] : -100,
                          (tg_reduction)p->i[0]);
}
TG_DEFINE_OP(nll_loss, .arity = -1, .diff_mask = 1, .dtypes = "float32,float64 log-probs; int64 labels",
             .forward = "L = -mean_i(logp_i[y_i])", .forward_tex = "L = -\\frac{1}{N}\\sum_i \\log p_{i y_i}",
             .vjp = "dlogp = -onehot(y) * dL / N", .vjp_tex = "\\bar{\\ell} = -\\frac{\\bar L}{N}\\operatorname{onehot}(y)",
             .doc = "Negative log-likelihood of log-probabilities (i0 reduction; optional "
                    "class-weight input; i1 ignore_index if i2 = 1; (N, C, d1, ...) inputs).",
             .backward = nll_loss_vjp, .apply = apply_nll_loss,
             .examples = "4x5,i5:4|i0=1;4x5,i5:4|i0=0;4x5,i5:4|i0=2;4x5,i5:4,+5|i0=1;"
                         "6x3,i3:6|i0=1 i1=1 i2=1;6x3,i3:6,+3|i0=0 i1=2 i2=1;2x3x4,i3:2x4,+3|i0=1;"
                         "5,i5:-,+5|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar{\\ell}");

/* ===================================================================== */
/* mse_loss / bce_with_logits                                             */
/* ===================================================================== */

static tg_status check_pair(const char *who, const tg_tensor *a, const tg_tensor *b) {
    if (tg__require_float(who, a) || tg__require_float(who, b)) return tg_error_status();
    if (!tg__same_shape(a->ndim, a->shape, b->ndim, b->shape))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: input and target must have the same shape, got %s and %s (a "
                            "silent broadcast here is a classic bug; reshape one of them)",
                            who, tg__shp(a), tg__shp(b));
    return TG_OK;
}

tg_tensor *tg_mse_loss(tg_tensor *p, tg_tensor *t, tg_reduction red) {
    if (check_red("mse_loss", red) || check_pair("mse_loss", p, t)) return NULL;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *d = tg_sub(p, t);
    tg_tensor *d2 = d ? tg_mul(d, d) : NULL;
    tg_tensor *out = d2 ? reduce_loss(d2, red) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(d);
    tg_tensor_release(d2);
    tg_tensor *in[2] = {p, t};
    tg_entry *e;
    out = tg__finish(&tg_opdef_mse_loss, 2, in, out, &e);
    if (e) {
        e->params.i[0] = red;
        if (tg__save(e, p) || tg__save(e, t)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status mse_loss_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *p = tg_entry_saved(e, 0), *t = p ? tg_entry_saved(e, 1) : NULL;
    CHECK(t);
    tg_tensor *d = tg_sub(p, t);
    tg_tensor *d2 = d ? tg_mul_scalar(d, 2.0) : NULL;
    tg_tensor_release(d);
    CHECK(d2);
    tg_tensor *gp = scale_by_upstream(d2, g, (tg_reduction)e->params.i[0], p->numel, false);
    tg_tensor_release(d2);
    CHECK(gp);
    if (tg_entry_needs_grad(e, 1)) {
        gi[1] = tg_neg(gp);
        if (!gi[1]) {
            tg_tensor_release(gp);
            return tg_error_status();
        }
    }
    if (tg_entry_needs_grad(e, 0)) gi[0] = gp;
    else tg_tensor_release(gp);
    return TG_OK;
}
static tg_tensor *apply_mse_loss(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_mse_loss(in[0], in[1], (tg_reduction)p->i[0]);
}
TG_DEFINE_OP(mse_loss, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean((p - t)^2)", .forward_tex = "L = \\frac{1}{n}\\sum (p - t)^{2}",
             .vjp = "dp = 2 (p - t) dL / n, dt = -dp", .vjp_tex = "\\bar p = \\frac{2\\bar L}{n}(p - t),\\quad \\bar t = -\\bar p",
             .doc = "Mean squared error (i0 reduction).", .backward = mse_loss_vjp,
             .apply = apply_mse_loss, .examples = "3x4,3x4|i0=1;3x4,3x4|i0=0;5,5|i0=2;T3x4,3x4|i0=1",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar p;\\bar t");

tg_tensor *tg_bce_with_logits(tg_tensor *x, tg_tensor *t, tg_reduction red) {
    if (check_red("bce_with_logits", red) || check_pair("bce_with_logits", x, t)) return NULL;
    /* max(x, 0) - x t + log(1 + exp(-|x|)) */
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *r = tg_relu(x);
    tg_tensor *xt = r ? tg_mul(x, t) : NULL;
    tg_tensor *a = xt ? tg_abs(x) : NULL;
    tg_tensor *na = a ? tg_neg(a) : NULL;
    tg_tensor *sp = na ? tg_softplus(na) : NULL;
    tg_tensor *l1 = sp ? tg_sub(r, xt) : NULL;
    tg_tensor *l = l1 ? tg_add(l1, sp) : NULL;
    tg_tensor *out = l ? reduce_loss(l, red) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor *tmp[] = {r, xt, a, na, sp, l1, l};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) tg_tensor_release(tmp[i]);
    tg_tensor *in[2] = {x, t};
    tg_entry *e;
    out = tg__finish(&tg_opdef_bce_with_logits, 2, in, out, &e);
    if (e) {
        e->params.i[0] = red;
        if (tg__save(e, x) || tg__save(e, t)) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}
static tg_status bce_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *t = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(t);
    tg_reduction red = (tg_reduction)e->params.i[0];
    if (tg_entry_needs_grad(e, 0)) {
        tg_tensor *d = take2(tg_sub, tg_sigmoid(x), (tg_tensor_retain(t), t));
        CHECK(d);
        gi[0] = scale_by_upstream(d, g, red, x->numel, false);
        tg_tensor_release(d);
        CHECK(gi[0]);
    }
    if (tg_entry_needs_grad(e, 1)) {
        tg_tensor *d = tg_neg(x);
        CHECK(d);
        gi[1] = scale_by_upstream(d, g, red, x->numel, false);
        tg_tensor_release(d);
        CHECK(gi[1]);
    }
    return TG_OK;
}
/* options (nnlayers.c): i1 bits 1 weight, 2 pos_weight inputs after the
 * first two; with either the loss is a composite */
static tg_tensor *apply_bce(tg_tensor *const *in, int n, const tg_params *p) {
    tg_tensor *opt[2] = {NULL, NULL};
    for (int i = 0, k = 2; i < 2; i++)
        if (((p->i[1] >> i) & 1) && k < n) opt[i] = in[k++];
    return tg_bce_with_logits_ex(in[0], in[1], opt[0], opt[1], (tg_reduction)p->i[0]);
}
TG_DEFINE_OP(bce_with_logits, .arity = -1, .diff_mask = 3, .dtypes = "float32,float64",
             .forward = "L = mean(max(x,0) - x t + log(1 + exp(-|x|)))",
             .forward_tex = "L = \\frac{1}{n}\\sum \\big(\\max(x, 0) - x t + \\log(1 + e^{-|x|})\\big)",
             .vjp = "dx = (sigmoid(x) - t) dL / n, dt = -x dL / n",
             .vjp_tex = "\\bar x = \\frac{\\bar L}{n}(\\sigma(x) - t),\\quad \\bar t = -\\frac{\\bar L}{n} x",
             .doc = "Binary cross-entropy on logits, numerically stable (i0 reduction; i1 bits: "
                    "1 weight, 2 pos_weight inputs).",
             .backward = bce_vjp, .apply = apply_bce,
             .examples = "3x4,u3x4|i0=1;3x4,u3x4|i0=0;5,u5|i0=2;3x4,u3x4,+4|i0=1 i1=2;"
                         "3x4,u3x4,+3x4|i0=0 i1=1;3x4,u3x4,+1x4,+4|i0=2 i1=3;T3x4,u3x4,+4,+4|i0=1 i1=3",
             .grad_out_tex = "\\bar L", .grad_in_tex = "\\bar x;\\bar t");

/* ===================================================================== */
/* dropout                                                                */
/* ===================================================================== */

tg_tensor *tg_dropout(tg_tensor *x, double p, bool training) {
    if (!(p >= 0 && p <= 1)) return TG_FAIL(TG_ERR_VALUE, "dropout: probability must be in [0, 1], got %g", p);
    if (tg__require_float("dropout", x)) return NULL;
    if (!training || p == 0) {
        tg_tensor_retain(x);
        return x;
    }
    tg_tensor *mask = tg_tensor_bernoulli(x->ndim, x->shape, 1.0 - p, x->dtype);
    if (!mask) return NULL;
    double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *m = tg_mul_scalar(mask, scale);
    tg_tensor *out = m ? tg_mul(x, m) : NULL;
    tg_set_grad_enabled(prev);
    tg_tensor_release(mask);
    tg_entry *e;
    out = tg__finish(&tg_opdef_dropout, 1, &x, out, &e);
    if (e) {
        e->params.f[0] = p;
        if (tg__save(e, m)) {
            tg_tensor_release(out);
            out = NULL;
        }
    }
    tg_tensor_release(m);
    return out;
}
static tg_status dropout_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *m = tg_entry_saved(e, 0);
    CHECK(m);
    CHECK(gi[0] = tg_mul(g, m));
    return TG_OK;
}
static tg_tensor *apply_dropout(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_dropout(in[0], p->f[0], p->i[0] != 0);
}
TG_DEFINE_OP(dropout, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y = x * m / (1 - p), m ~ Bernoulli(1 - p)",
             .forward_tex = "y = \\frac{x \\odot m}{1 - p},\\ m \\sim \\mathrm{Bernoulli}(1 - p)",
             .vjp = "dx = dy * m / (1 - p)", .vjp_tex = "\\bar x = \\frac{\\bar y \\odot m}{1 - p}",
             .doc = "Inverted dropout (f0 = p, i0 = training); the mask comes from the seedable generator.",
             .backward = dropout_vjp, .apply = apply_dropout, .examples = "6x5|f0=0.3 i0=1;4|f0=0.5 i0=0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

static tg_tensor *apply_custom(tg_tensor *const *in, int n, const tg_params *p) {
    (void)in;
    (void)n;
    (void)p;
    return TG_FAIL(TG_ERR_RUNTIME, "custom: a custom op is applied through tg_custom_record");
}
TG_DEFINE_OP(custom, .arity = -1, .diff_mask = 0xFFFFFFFFu, .dtypes = "any",
             .forward = "defined by the user", .forward_tex = "", .vjp = "defined by the user",
             .vjp_tex = "", .doc = "An op defined outside the library (tg.Function in Python).",
             .backward = NULL, .apply = apply_custom, .examples = "");

