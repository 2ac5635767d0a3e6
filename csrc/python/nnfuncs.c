/*
 * nnfuncs.c -- the binding of the losses with PyTorch's options and of the
 * layers as ops (csrc/ops/nn.c): cross_entropy, nll_loss,
 * binary_cross_entropy(_with_logits), huber_loss, smooth_l1_loss, l1_loss,
 * kl_div, embedding, layer_norm, group_norm, normalize, cosine_similarity,
 * scaled_dot_product_attention.  Spelled as torch.nn.functional; `axis=`
 * with `dim=` accepted as an alias.
 */
#include "common.h"

#include <math.h>
#include <string.h>

/* every error of f_name names `name` (common.h) */
#define FUNC(name) TGPY_NAMED_FUNC(name)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* ===================================================================== */
/* Argument helpers                                                       */
/* ===================================================================== */

/* Up to 8 tensors converted for one call, released together */
typedef struct {
    tg_tensor *t[8];
    int n;
} held;

static void held_release(held *h) {
    for (int i = 0; i < h->n; i++) tg_tensor_release(h->t[i]);
    h->n = 0;
}

/* o (required unless optional) as a tensor held in h; None/absent ->
 * *out = NULL.  0, or -1 with an exception. */
static int tensor_arg(const char *fname, const char *arg, PyObject *o, const tg_tensor *like,
                      bool optional, held *h, tg_tensor **out) {
    *out = NULL;
    if (!o || o == Py_None) {
        if (optional) return 0;
        PyErr_Format(PyExc_TypeError, "%s() missing argument '%s'", fname, arg);
        return -1;
    }
    tg_tensor *t = tgpy_as_tensor(o, like);
    if (!t) {
        if (!PyErr_Occurred()) tgpy_raise();
        return -1;
    }
    h->t[h->n++] = t;
    *out = t;
    return 0;
}

static int double_arg(const char *fname, const char *arg, PyObject *o, double deflt, double *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be a number, got %.100s", fname, arg,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

static int int_arg(const char *fname, const char *arg, PyObject *o, long long deflt, long long *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    if (!PyIndex_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be an int, got %.100s", fname, arg,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyLong_AsLongLong(o);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* `axis` or its alias `dim` (not both) */
static int axis_arg(const char *fname, PyObject *axis, PyObject *dim, long long deflt, long long *out) {
    if (axis && dim && axis != Py_None && dim != Py_None) {
        PyErr_Format(PyExc_TypeError, "%s(): pass axis or dim, not both", fname);
        return -1;
    }
    return int_arg(fname, "axis", axis && axis != Py_None ? axis : dim, deflt, out);
}

/* reduction strings; `batchmean` only where allowed (kl_div: 3) */
static int reduction_arg(const char *fname, PyObject *o, bool batchmean, int *out) {
    if (!o) {
        *out = TG_REDUCTION_MEAN;
        return 0;
    }
    const char *s = PyUnicode_Check(o) ? tgpy_utf8(o) : NULL;
    if (s && !strcmp(s, "mean")) *out = TG_REDUCTION_MEAN;
    else if (s && !strcmp(s, "sum")) *out = TG_REDUCTION_SUM;
    else if (s && !strcmp(s, "none")) *out = TG_REDUCTION_NONE;
    else if (s && batchmean && !strcmp(s, "batchmean")) *out = 3;
    else {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: reduction must be 'mean', 'sum'%s or 'none', got %R", fname,
                     batchmean ? ", 'batchmean'" : "", o);
        return -1;
    }
    return 0;
}

static PyObject *result(tg_tensor *r) {
    if (!r) return PyErr_Occurred() ? NULL : tgpy_raise();
    return tgpy_wrap(r);
}

/* ===================================================================== */
/* Losses                                                                 */
/* ===================================================================== */

/* cross_entropy and nll_loss share the signature; a str in weight's place
 * is the reduction (the old positional spelling cross_entropy(x, y, 'sum')) */
static PyObject *class_loss(const char *fname, bool ce, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kw) {
    static const char *const names[] = {"input", "target", "weight", "ignore_index", "reduction",
                                        "label_smoothing"};
    PyObject *a[6];
    int n = ce ? 6 : 5;
    if (tgpy_args(fname, args, nargs, kw, names, n, n, a)) return NULL;
    if (a[2] && PyUnicode_Check(a[2])) {
        if (a[4]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument 'reduction'", fname);
            return NULL;
        }
        a[4] = a[2];
        a[2] = NULL;
    }
    int red;
    long long ignore;
    double ls = 0;
    if (reduction_arg(fname, a[4], false, &red) || int_arg(fname, "ignore_index", a[3], -100, &ignore) ||
        (ce && double_arg(fname, "label_smoothing", a[5], 0.0, &ls)))
        return NULL;
    held h = {0};
    tg_tensor *x, *t, *w;
    tg_tensor *r = NULL;
    if (!tensor_arg(fname, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fname, "target", a[1], NULL, false, &h, &t) &&
        !tensor_arg(fname, "weight", a[2], x, true, &h, &w))
        r = ce ? tg_cross_entropy_ex(x, t, w, ignore, ls, (tg_reduction)red)
               : tg_nll_loss_ex(x, t, w, ignore, (tg_reduction)red);
    held_release(&h);
    return result(r);
}
FUNC(cross_entropy) { return class_loss("cross_entropy", true, args, nargs, kw); }
FUNC(nll_loss) { return class_loss("nll_loss", false, args, nargs, kw); }

FUNC(binary_cross_entropy) {
    ARGS("binary_cross_entropy", 4, 4, "input", "target", "weight", "reduction")
    const char *fn = "binary_cross_entropy";
    int red;
    if (reduction_arg(fn, a[3], false, &red)) return NULL;
    held h = {0};
    tg_tensor *x, *t, *w, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "target", a[1], x, false, &h, &t) &&
        !tensor_arg(fn, "weight", a[2], x, true, &h, &w))
        r = tg_binary_cross_entropy(x, t, w, (tg_reduction)red);
    held_release(&h);
    return result(r);
}

FUNC(binary_cross_entropy_with_logits) {
    ARGS("binary_cross_entropy_with_logits", 5, 4, "input", "target", "weight", "reduction",
         "pos_weight")
    const char *fn = "binary_cross_entropy_with_logits";
    if (a[2] && PyUnicode_Check(a[2]) && !a[3]) { /* the old (input, target, reduction) */
        a[3] = a[2];
        a[2] = NULL;
    }
    int red;
    if (reduction_arg(fn, a[3], false, &red)) return NULL;
    held h = {0};
    tg_tensor *x, *t, *w, *pw, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "target", a[1], x, false, &h, &t) &&
        !tensor_arg(fn, "weight", a[2], x, true, &h, &w) &&
        !tensor_arg(fn, "pos_weight", a[4], x, true, &h, &pw))
        r = tg_bce_with_logits_ex(x, t, w, pw, (tg_reduction)red);
    held_release(&h);
    return result(r);
}

typedef tg_tensor *(*pair_param_fn)(tg_tensor *, tg_tensor *, double, tg_reduction);

static PyObject *pair_loss(const char *fn, const char *pname, pair_param_fn f, double deflt,
                           PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    const char *names[] = {"input", "target", "reduction", pname};
    PyObject *a[4];
    if (tgpy_args(fn, args, nargs, kw, names, pname ? 4 : 3, pname ? 4 : 3, a)) return NULL;
    int red;
    double v = deflt;
    if (reduction_arg(fn, a[2], false, &red) || (pname && double_arg(fn, pname, a[3], deflt, &v)))
        return NULL;
    held h = {0};
    tg_tensor *x, *t, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "target", a[1], x, false, &h, &t))
        r = pname ? f(x, t, v, (tg_reduction)red) : tg_l1_loss(x, t, (tg_reduction)red);
    held_release(&h);
    return result(r);
}
FUNC(huber_loss) { return pair_loss("huber_loss", "delta", tg_huber_loss, 1.0, args, nargs, kw); }
FUNC(smooth_l1_loss) {
    return pair_loss("smooth_l1_loss", "beta", tg_smooth_l1_loss, 1.0, args, nargs, kw);
}
FUNC(l1_loss) { return pair_loss("l1_loss", NULL, NULL, 0, args, nargs, kw); }

FUNC(kl_div) {
    ARGS("kl_div", 4, 4, "input", "target", "reduction", "log_target")
    const char *fn = "kl_div";
    int red, lt = tgpy_bool(a[3], 0);
    if (lt < 0 || reduction_arg(fn, a[2], true, &red)) return NULL;
    held h = {0};
    tg_tensor *x, *t, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "target", a[1], x, false, &h, &t))
        r = tg_kl_div(x, t, red, lt != 0);
    held_release(&h);
    return result(r);
}

/* ===================================================================== */
/* Layers                                                                 */
/* ===================================================================== */

FUNC(embedding) {
    ARGS("embedding", 3, 3, "input", "weight", "padding_idx")
    const char *fn = "embedding";
    long long pad = 0;
    bool has_pad = a[2] && a[2] != Py_None;
    if (has_pad && int_arg(fn, "padding_idx", a[2], 0, &pad)) return NULL;
    held h = {0};
    tg_tensor *idx, *w, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &idx) &&
        !tensor_arg(fn, "weight", a[1], NULL, false, &h, &w))
        r = tg_embedding(w, idx, has_pad, pad);
    held_release(&h);
    return result(r);
}

FUNC(layer_norm) {
    ARGS("layer_norm", 5, 5, "input", "normalized_shape", "weight", "bias", "eps")
    const char *fn = "layer_norm";
    int64_t shape[TG_MAX_DIMS];
    int nd = 0;
    double eps;
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "layer_norm() missing argument 'normalized_shape'");
        return NULL;
    }
    if (PyIndex_Check(a[1])) {
        long long v;
        if (int_arg(fn, "normalized_shape", a[1], 0, &v)) return NULL;
        shape[0] = v;
        nd = 1;
    } else if (tgpy_shape_obj(fn, a[1], shape, &nd)) {
        return NULL;
    }
    if (double_arg(fn, "eps", a[4], 1e-5, &eps)) return NULL;
    held h = {0};
    tg_tensor *x, *w, *b, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "weight", a[2], x, true, &h, &w) &&
        !tensor_arg(fn, "bias", a[3], x, true, &h, &b))
        r = tg_layer_norm(x, nd, shape, w, b, eps);
    held_release(&h);
    return result(r);
}

FUNC(group_norm) {
    ARGS("group_norm", 5, 5, "input", "num_groups", "weight", "bias", "eps")
    const char *fn = "group_norm";
    long long g;
    double eps;
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "group_norm() missing argument 'num_groups'");
        return NULL;
    }
    if (int_arg(fn, "num_groups", a[1], 0, &g) || double_arg(fn, "eps", a[4], 1e-5, &eps)) return NULL;
    held h = {0};
    tg_tensor *x, *w, *b, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "weight", a[2], x, true, &h, &w) &&
        !tensor_arg(fn, "bias", a[3], x, true, &h, &b))
        r = tg_group_norm(x, g, w, b, eps);
    held_release(&h);
    return result(r);
}

FUNC(normalize) {
    ARGS("normalize", 5, 4, "input", "p", "axis", "eps", "dim")
    const char *fn = "normalize";
    double p, eps;
    long long ax;
    if (double_arg(fn, "p", a[1], 2.0, &p) || axis_arg(fn, a[2], a[4], 1, &ax) ||
        double_arg(fn, "eps", a[3], 1e-12, &eps))
        return NULL;
    held h = {0};
    tg_tensor *x, *r = NULL;
    if (!tensor_arg(fn, "input", a[0], NULL, false, &h, &x)) r = tg_normalize(x, p, ax, eps);
    held_release(&h);
    return result(r);
}

FUNC(cosine_similarity) {
    ARGS("cosine_similarity", 5, 4, "x1", "x2", "axis", "eps", "dim")
    const char *fn = "cosine_similarity";
    double eps;
    long long ax;
    if (axis_arg(fn, a[2], a[4], 1, &ax) || double_arg(fn, "eps", a[3], 1e-8, &eps)) return NULL;
    held h = {0};
    tg_tensor *x, *y, *r = NULL;
    if (!tensor_arg(fn, "x1", a[0], NULL, false, &h, &x) &&
        !tensor_arg(fn, "x2", a[1], x, false, &h, &y))
        r = tg_cosine_similarity(x, y, ax, eps);
    held_release(&h);
    return result(r);
}

FUNC(scaled_dot_product_attention) {
    ARGS("scaled_dot_product_attention", 7, 7, "query", "key", "value", "attn_mask", "dropout_p",
         "is_causal", "scale")
    const char *fn = "scaled_dot_product_attention";
    double p, scale;
    int causal = tgpy_bool(a[5], 0);
    if (causal < 0 || double_arg(fn, "dropout_p", a[4], 0.0, &p) ||
        double_arg(fn, "scale", a[6], NAN, &scale))
        return NULL;
    held h = {0};
    tg_tensor *q, *k, *v, *m, *r = NULL;
    if (!tensor_arg(fn, "query", a[0], NULL, false, &h, &q) &&
        !tensor_arg(fn, "key", a[1], q, false, &h, &k) &&
        !tensor_arg(fn, "value", a[2], q, false, &h, &v) &&
        !tensor_arg(fn, "attn_mask", a[3], q, true, &h, &m))
        r = tg_scaled_dot_product_attention(q, k, v, m, p, causal != 0, scale);
    held_release(&h);
    return result(r);
}

/* ===================================================================== */
/* Table                                                                  */
/* ===================================================================== */

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_nnfuncs_methods[] = {
    F(cross_entropy,
      "cross_entropy(input, target, weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0)\n\n"
      "Softmax cross-entropy of logits, as torch.nn.functional.cross_entropy. input (N, C),\n"
      "(C,) or (N, C, d1, ...); target int64 class indices (N,), () or (N, d1, ...), or float\n"
      "class probabilities of the input's shape. weight (C,): per-class weights (the mean\n"
      "divides by the total weight of the counted targets); targets equal to ignore_index\n"
      "count for nothing (an all-ignored mean is nan, as in PyTorch); label_smoothing mixes\n"
      "the target with the uniform distribution. Takes LOGITS: no softmax before it.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> z = tg.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])\n"
      ">>> round(tg.cross_entropy(z, tg.tensor([0, 1]), label_smoothing=0.1).item(), 4)\n"
      "0.3729"),
    F(nll_loss,
      "nll_loss(input, target, weight=None, ignore_index=-100, reduction='mean')\n\n"
      "Negative log-likelihood of log-probabilities, as torch.nn.functional.nll_loss: input\n"
      "(N, C), (C,) or (N, C, d1, ...), target int64 (N,), () or (N, d1, ...); weight and\n"
      "ignore_index as in cross_entropy.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> lp = tg.tensor([[-0.5, -1.0], [-2.0, -0.1]])\n"
      ">>> tg.nll_loss(lp, tg.tensor([0, -100])).item()\n"
      "0.5"),
    F(binary_cross_entropy,
      "binary_cross_entropy(input, target, weight=None, reduction='mean')\n\n"
      "Binary cross-entropy of PROBABILITIES in [0, 1] (for logits use\n"
      "binary_cross_entropy_with_logits, which is stabler): -w (t log p + (1 - t) log(1 - p)),\n"
      "the logs clamped at -100 as in PyTorch. weight broadcasts to the input.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> round(tg.binary_cross_entropy(tg.tensor([0.5]), tg.tensor([1.0])).item(), 4)\n"
      "0.6931"),
    F(binary_cross_entropy_with_logits,
      "binary_cross_entropy_with_logits(input, target, weight=None, reduction='mean', pos_weight=None)\n\n"
      "Binary cross-entropy of logits, numerically stable: w (pw t softplus(-x) + (1 - t)\n"
      "softplus(x)). weight and pos_weight (the positive class's weight, typically (C,))\n"
      "broadcast to the input.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> round(tg.binary_cross_entropy_with_logits(tg.zeros(2), tg.ones(2), pos_weight=tg.tensor([2.0, 2.0])).item(), 4)\n"
      "1.3863"),
    F(huber_loss,
      "huber_loss(input, target, reduction='mean', delta=1.0)\n\n"
      "Huber loss: 0.5 d^2 where |d| < delta, delta (|d| - delta / 2) elsewhere (d = input - target).\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.huber_loss(tg.tensor([0.0, 3.0]), tg.zeros(2), reduction='none').tolist()\n"
      "[0.0, 2.5]"),
    F(smooth_l1_loss,
      "smooth_l1_loss(input, target, reduction='mean', beta=1.0)\n\n"
      "Smooth L1 loss: 0.5 d^2 / beta where |d| < beta, |d| - beta / 2 elsewhere (beta = 0: L1).\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.smooth_l1_loss(tg.tensor([0.5, 3.0]), tg.zeros(2), reduction='none').tolist()\n"
      "[0.125, 2.5]"),
    F(l1_loss,
      "l1_loss(input, target, reduction='mean')\n\n"
      "Mean absolute error |input - target|.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.l1_loss(tg.tensor([1.0, -1.0]), tg.zeros(2)).item()\n"
      "1.0"),
    F(kl_div,
      "kl_div(input, target, reduction='mean', log_target=False)\n\n"
      "Kullback-Leibler divergence, as torch.nn.functional.kl_div: input holds LOG-probabilities,\n"
      "target probabilities (log-probabilities with log_target=True); pointwise t (log t - input),\n"
      "0 where t = 0. reduction 'batchmean' divides the sum by the batch size (the\n"
      "mathematically right KL divergence per sample); 'mean' divides by the element count.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> p = tg.tensor([[0.5, 0.5]])\n"
      ">>> tg.kl_div(p.log(), p, reduction='batchmean').item()\n"
      "0.0"),
    F(embedding,
      "embedding(input, weight, padding_idx=None)\n\n"
      "The rows of weight (num_embeddings, embedding_dim) at the int64 indices input (any shape):\n"
      "a result of shape input.shape + (embedding_dim,). Its gradient adds the upstream rows\n"
      "into the weight's rows (an index_add); the padding_idx row gets none.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.embedding(tg.tensor([[2, 0]]), tg.arange(6.0).reshape(3, 2)).tolist()\n"
      "[[[4.0, 5.0], [0.0, 1.0]]]"),
    F(layer_norm,
      "layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05)\n\n"
      "Layer normalisation over the last len(normalized_shape) dims (biased variance), then\n"
      "* weight + bias (both of normalized_shape), as torch.nn.functional.layer_norm.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> [round(v, 3) for v in tg.layer_norm(tg.tensor([1.0, 2.0, 3.0]), (3,)).tolist()]\n"
      "[-1.225, 0.0, 1.225]"),
    F(group_norm,
      "group_norm(input, num_groups, weight=None, bias=None, eps=1e-05)\n\n"
      "Group normalisation of (N, C, ...): the channels split into num_groups groups, each\n"
      "sample's group standardised, then * weight[c] + bias[c] (both (C,)).\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.group_norm(tg.ones(2, 4, 3), 2).shape\n"
      "(2, 4, 3)"),
    F(normalize,
      "normalize(input, p=2.0, axis=1, eps=1e-12)\n\n"
      "input divided by its p-norm along axis (clamped at eps), as\n"
      "torch.nn.functional.normalize (dim= accepted as an alias of axis=).\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.normalize(tg.tensor([[3.0, 4.0]], dtype=tg.float64)).tolist()\n"
      "[[0.6, 0.8]]"),
    F(cosine_similarity,
      "cosine_similarity(x1, x2, axis=1, eps=1e-08)\n\n"
      "Cosine of the angle between x1 and x2 (broadcast together) along axis: each divided\n"
      "by its norm clamped at eps, then summed products (dim= accepted as an alias).\n\n"
      ">>> import tapegrad as tg\n"
      ">>> tg.cosine_similarity(tg.tensor([[1.0, 0.0]]), tg.tensor([[1.0, 1.0]])).tolist()[0] > 0.707\n"
      "True"),
    F(scaled_dot_product_attention,
      "scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None)\n\n"
      "softmax(query @ key^T * scale + mask) @ value, as\n"
      "torch.nn.functional.scaled_dot_product_attention: query (..., L, E), key (..., S, E),\n"
      "value (..., S, Ev) -> (..., L, Ev); scale defaults to 1/sqrt(E). attn_mask broadcasts\n"
      "to (..., L, S): a float mask is added to the scores, a mask of any other dtype (bool,\n"
      "int) keeps the positions where it is nonzero. is_causal keeps key j <= query i; a query\n"
      "that keeps no key gets 0, as in PyTorch. A composite of ops (matmul, softmax, or one\n"
      "masked_softmax for is_causal and keep-masks, dropout): its backward is theirs.\n\n"
      ">>> import tapegrad as tg\n"
      ">>> q = tg.randn(2, 3, 4)\n"
      ">>> tg.scaled_dot_product_attention(q, q, q, is_causal=True).shape\n"
      "(2, 3, 4)"),
    {NULL}};
#undef F
