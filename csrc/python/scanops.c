/*
 * scanops.c -- the hand-written bindings of the ops of csrc/ops/scan.c
 * (reductions, scans, sorting; issue 14) whose Python signatures are not
 * the generated unary/binary/reduce ones: the Tensor methods
 * (tgpy_scan_methods, appended to the type by tensor.c) and the module
 * functions (tgpy_scan_functions, added by module.c).
 *
 * Names and keywords follow NumPy where it has the function and PyTorch
 * otherwise; `axis=` everywhere with `dim=` as an alias (and `keepdims=`
 * with `keepdim=`).  The ops returning values and indices (sort, topk,
 * cummax, cummin, median with an axis) return a named tuple with `.values`
 * and `.indices`, like PyTorch's torch.return_types.
 */
#include "common.h"

#include <math.h>
#include <string.h>

#define METHOD(name) static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* the value of one of two alias arguments ("axis" / "dim"); both given is
 * a TypeError naming the op */
static int alias(const char *fname, const char *n1, PyObject *a, const char *n2, PyObject *b,
                 PyObject **out) {
    if (a && b) {
        PyErr_Format(PyExc_TypeError, "%s() got both '%s' and its alias '%s'", fname, n1, n2);
        return -1;
    }
    *out = a ? a : b;
    return 0;
}

/* an optional int axis: absent or None -> deflt */
static int int_axis(const char *fname, PyObject *o, int64_t deflt, int64_t *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: axis must be an int, got %s", fname, Py_TYPE(o)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* ---- (values, indices) named tuples ------------------------------------ */

static PyStructSequence_Field vi_fields[] = {
    {"values", "The values (a Tensor; differentiable through the indices)."},
    {"indices", "Their int64 indices along the axis (a Tensor)."},
    {NULL, NULL}};
static const char *const vi_names[] = {"sort", "topk", "cummax", "cummin", "median"};
#define VI_N (sizeof vi_names / sizeof *vi_names)
static PyTypeObject *vi_types[VI_N];

static PyTypeObject *vi_type(int k) {
    if (vi_types[k]) return vi_types[k];
    static char qual[VI_N][64];
    snprintf(qual[k], sizeof qual[k], "tapegrad.return_types.%s", vi_names[k]);
    PyStructSequence_Desc desc = {qual[k],
                                  "A (values, indices) named tuple: unpacks as a tuple, and has "
                                  ".values and .indices (like torch.return_types).",
                                  vi_fields, 2};
    vi_types[k] = PyStructSequence_NewType(&desc); /* lives as long as the process */
    return vi_types[k];
}

/* a named tuple of two NEW references (stolen); NULL v: raise */
static PyObject *vi_result(int k, tg_tensor *v, tg_tensor *idx) {
    if (!v) {
        tg_tensor_release(idx);
        return tgpy_raise();
    }
    PyTypeObject *tp = vi_type(k);
    PyObject *r = tp ? PyStructSequence_New(tp) : NULL;
    PyObject *pv = W(v), *pi = pv ? W(idx) : (tg_tensor_release(idx), NULL);
    if (!r || !pv || !pi) {
        Py_XDECREF(r);
        Py_XDECREF(pv);
        Py_XDECREF(pi);
        return NULL;
    }
    PyStructSequence_SetItem(r, 0, pv);
    PyStructSequence_SetItem(r, 1, pi);
    return r;
}

/* ---- scans ---------------------------------------------------------------- */

typedef tg_tensor *(*scanfn)(tg_tensor *, int64_t, bool);

/* cumsum / cumprod: axis=None flattens (NumPy); dtype= converts first */
static PyObject *cum(PyObject *self, const char *fname, scanfn f, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kw) {
    ARGS(fname, 3, 2, "axis", "dtype", "dim")
    PyObject *ax;
    if (alias(fname, "axis", a[0], "dim", a[2], &ax)) return NULL;
    tg_tensor *x = TENSOR(self);
    tg_tensor_retain(x);
    if (a[1] && a[1] != Py_None) {
        tg_dtype dt;
        if (tgpy_parse_dtype(a[1], x->dtype, &dt)) {
            tg_tensor_release(x);
            return tgpy_prefix_error(fname);
        }
        tg_tensor *c = tg_cast(x, dt);
        tg_tensor_release(x);
        if (!c) return tgpy_raise();
        x = c;
    }
    int64_t axis;
    if (int_axis(fname, ax, TG_AXIS_NONE, &axis)) {
        tg_tensor_release(x);
        return tgpy_prefix_error(fname);
    }
    if (axis == TG_AXIS_NONE) {
        int64_t n = -1;
        tg_tensor *r = tg_reshape(x, 1, &n);
        tg_tensor_release(x);
        if (!r) return tgpy_raise();
        x = r;
        axis = 0;
    }
    tg_tensor *out = f(x, axis, false);
    tg_tensor_release(x);
    return W(out);
}
METHOD(cumsum) { return cum(self, "cumsum", tg_cumsum, args, nargs, kw); }
METHOD(cumprod) { return cum(self, "cumprod", tg_cumprod, args, nargs, kw); }

METHOD(logcumsumexp) {
    ARGS("logcumsumexp", 2, 1, "axis", "dim")
    PyObject *ax;
    if (alias("logcumsumexp", "axis", a[0], "dim", a[1], &ax)) return NULL;
    if (!ax || ax == Py_None) {
        PyErr_SetString(PyExc_TypeError, "logcumsumexp() missing its argument 'axis' (or 'dim')");
        return NULL;
    }
    int64_t axis;
    if (int_axis("logcumsumexp", ax, 0, &axis)) return tgpy_prefix_error("logcumsumexp");
    return W(tg_logcumsumexp(TENSOR(self), axis, false));
}

static PyObject *cumext(PyObject *self, const char *fname, int k,
                        tg_tensor *(*f)(tg_tensor *, int64_t, tg_tensor **), PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kw) {
    ARGS(fname, 2, 1, "axis", "dim")
    PyObject *ax;
    if (alias(fname, "axis", a[0], "dim", a[1], &ax)) return NULL;
    if (!ax || ax == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s() missing its argument 'axis' (or 'dim')", fname);
        return NULL;
    }
    int64_t axis;
    if (int_axis(fname, ax, 0, &axis)) return tgpy_prefix_error(fname);
    tg_tensor *idx = NULL;
    tg_tensor *v = f(TENSOR(self), axis, &idx);
    return vi_result(k, v, idx);
}
METHOD(cummax) { return cumext(self, "cummax", 2, tg_cummax, args, nargs, kw); }
METHOD(cummin) { return cumext(self, "cummin", 3, tg_cummin, args, nargs, kw); }

/* ---- sorting ---------------------------------------------------------------- */

/* sort and argsort: (axis=-1, descending=False, stable=False); sorting is
 * always stable here, so stable= only documents the caller's wish.
 * axis=None (given explicitly) sorts the flattened tensor, as NumPy's. */
static int sort_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kw,
                     int64_t *axis, int *desc, int *flatten) {
    static const char *const names[] = {"axis", "descending", "stable", "dim", "kind"};
    PyObject *a[5];
    if (tgpy_args(fname, args, nargs, kw, names, 5, 2, a)) return -1;
    PyObject *ax;
    if (alias(fname, "axis", a[0], "dim", a[3], &ax)) return -1;
    *flatten = ax == Py_None;
    if (int_axis(fname, ax, -1, axis)) {
        tgpy_prefix_error(fname);
        return -1;
    }
    *desc = tgpy_bool(a[1], 0);
    int st = tgpy_bool(a[2], 0);
    if (*desc < 0 || st < 0) return -1;
    if (a[4] && a[4] != Py_None) { /* NumPy's kind=: every kind gives the stable order here */
        const char *k = PyUnicode_Check(a[4]) ? tgpy_utf8(a[4]) : NULL;
        if (!k || (strcmp(k, "quicksort") && strcmp(k, "mergesort") && strcmp(k, "heapsort") &&
                   strcmp(k, "stable"))) {
            PyErr_Format(PyExc_ValueError,
                         "%s: kind must be 'quicksort', 'mergesort', 'heapsort' or 'stable'", fname);
            return -1;
        }
    }
    return 0;
}
/* x, or x flattened (a new reference) */
static tg_tensor *maybe_flat(tg_tensor *x, int flatten) {
    if (!flatten) {
        tg_tensor_retain(x);
        return x;
    }
    int64_t n = -1;
    return tg_reshape(x, 1, &n);
}
METHOD(sort) {
    int64_t axis;
    int desc, flat;
    if (sort_args("sort", args, nargs, kw, &axis, &desc, &flat)) return NULL;
    tg_tensor *x = maybe_flat(TENSOR(self), flat);
    if (!x) return tgpy_raise();
    tg_tensor *idx = NULL;
    tg_tensor *v = tg_sort(x, axis, desc, &idx);
    tg_tensor_release(x);
    return vi_result(0, v, idx);
}
METHOD(argsort) {
    int64_t axis;
    int desc, flat;
    if (sort_args("argsort", args, nargs, kw, &axis, &desc, &flat)) return NULL;
    tg_tensor *x = maybe_flat(TENSOR(self), flat);
    if (!x) return tgpy_raise();
    tg_tensor *r = tg_argsort(x, axis, desc);
    tg_tensor_release(x);
    return W(r);
}

METHOD(topk) {
    ARGS("topk", 5, 4, "k", "axis", "largest", "sorted", "dim")
    PyObject *ax;
    if (alias("topk", "axis", a[1], "dim", a[4], &ax)) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "topk() missing its argument 'k'");
        return NULL;
    }
    if (PyBool_Check(a[0]) || !PyIndex_Check(a[0])) {
        PyErr_Format(PyExc_TypeError, "topk: k must be an int, got %s", Py_TYPE(a[0])->tp_name);
        return NULL;
    }
    long long k = PyLong_AsLongLong(a[0]);
    if (k == -1 && PyErr_Occurred()) return tgpy_prefix_error("topk");
    int64_t axis;
    if (int_axis("topk", ax, -1, &axis)) return tgpy_prefix_error("topk");
    int largest = tgpy_bool(a[2], 1), sorted = tgpy_bool(a[3], 1);
    if (largest < 0 || sorted < 0) return NULL;
    tg_tensor *idx = NULL;
    tg_tensor *v = tg_topk(TENSOR(self), k, axis, largest, &idx);
    return vi_result(1, v, idx);
}

METHOD(median) {
    ARGS("median", 4, 2, "axis", "keepdims", "dim", "keepdim")
    PyObject *ax, *kp;
    if (alias("median", "axis", a[0], "dim", a[2], &ax) ||
        alias("median", "keepdims", a[1], "keepdim", a[3], &kp))
        return NULL;
    int keep = tgpy_bool(kp, 0);
    if (keep < 0) return NULL;
    int64_t axis;
    if (int_axis("median", ax, TG_AXIS_NONE, &axis)) return tgpy_prefix_error("median");
    if (axis == TG_AXIS_NONE) return W(tg_median(TENSOR(self), axis, keep, NULL));
    tg_tensor *idx = NULL;
    tg_tensor *v = tg_median(TENSOR(self), axis, keep, &idx);
    return vi_result(4, v, idx);
}

/* ---- var, std, var_mean, std_mean ---------------------------------------------- */

/* NumPy's rule: the variance of integers is float64 (ints never require
 * grad, so the conversion is not recorded). */
static tg_tensor *float_of(tg_tensor *x) {
    if (x->dtype != TG_INT64) {
        tg_tensor_retain(x);
        return x;
    }
    return tg_cast(x, TG_FLOAT64);
}

/* (axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None,
 * dim=, keepdim=): ddof (NumPy), correction (PyTorch) or unbiased (old
 * PyTorch: True = 1, False = 0); at most one; 0 when none is given
 * (NumPy's default). */
typedef enum { ST_VAR, ST_STD, ST_VAR_MEAN, ST_STD_MEAN } stkind;
static PyObject *stat_op(PyObject *self, const char *fname, stkind kind, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kw) {
    ARGS(fname, 7, 2, "axis", "keepdims", "ddof", "correction", "unbiased", "dim", "keepdim")
    PyObject *ax, *kp;
    if (alias(fname, "axis", a[0], "dim", a[5], &ax) || alias(fname, "keepdims", a[1], "keepdim", a[6], &kp))
        return NULL;
    int keep = tgpy_bool(kp, 0);
    if (keep < 0) return NULL;
    int given = 0;
    long long ddof = 0;
    for (int i = 2; i <= 4; i++) {
        if (!a[i] || a[i] == Py_None) continue;
        if (given++) {
            PyErr_Format(PyExc_TypeError, "%s: give only one of ddof, correction and unbiased", fname);
            return NULL;
        }
        if (i == 4) {
            int u = PyObject_IsTrue(a[i]);
            if (u < 0) return NULL;
            ddof = u;
        } else {
            if (PyFloat_Check(a[i])) {
                double d = PyFloat_AsDouble(a[i]);
                if (d != floor(d)) {
                    PyErr_Format(PyExc_ValueError, "%s: %s = %g is not supported (expected a whole number)",
                                 fname, i == 2 ? "ddof" : "correction", d);
                    return NULL;
                }
                ddof = (long long)d;
            } else {
                ddof = PyLong_AsLongLong(a[i]);
                if (ddof == -1 && PyErr_Occurred()) return tgpy_prefix_error(fname);
            }
        }
    }
    int64_t axes[TG_MAX_DIMS];
    int na;
    if (tgpy_axes(ax, axes, &na)) return tgpy_prefix_error(fname);
    tg_tensor *f = float_of(TENSOR(self));
    if (!f) return tgpy_raise();
    const int64_t *ap = na < 0 ? NULL : axes;
    int n = na < 0 ? 0 : na;
    tg_tensor *r = NULL, *m = NULL;
    switch (kind) {
    case ST_VAR: r = tg_var(f, ap, n, keep, ddof); break;
    case ST_STD: r = tg_std(f, ap, n, keep, ddof); break;
    case ST_VAR_MEAN: r = tg_var_mean(f, ap, n, keep, ddof, &m); break;
    case ST_STD_MEAN: r = tg_std_mean(f, ap, n, keep, ddof, &m); break;
    }
    tg_tensor_release(f);
    if (kind == ST_VAR || kind == ST_STD) return W(r);
    if (!r) return tgpy_raise();
    PyObject *pr = W(r), *pm = pr ? W(m) : (tg_tensor_release(m), NULL);
    if (!pr || !pm) {
        Py_XDECREF(pr);
        return NULL;
    }
    PyObject *t = PyTuple_Pack(2, pr, pm);
    Py_DECREF(pr);
    Py_DECREF(pm);
    return t;
}
METHOD(var) { return stat_op(self, "var", ST_VAR, args, nargs, kw); }
METHOD(std) { return stat_op(self, "std", ST_STD, args, nargs, kw); }
METHOD(var_mean) { return stat_op(self, "var_mean", ST_VAR_MEAN, args, nargs, kw); }
METHOD(std_mean) { return stat_op(self, "std_mean", ST_STD_MEAN, args, nargs, kw); }

/* ---- norm ------------------------------------------------------------------------ */

/* norm(p=None, axis=None, keepdims=False, *, ord=, dim=, keepdim=): p a
 * number (any p > 0, inf, -inf, 0), 'fro' (p = 2 over one or two axes) or
 * None (2); 'nuc' is refused (it needs an SVD). */
METHOD(norm) {
    ARGS("norm", 6, 3, "p", "axis", "keepdims", "ord", "dim", "keepdim")
    PyObject *po, *ax, *kp;
    if (alias("norm", "p", a[0], "ord", a[3], &po) || alias("norm", "axis", a[1], "dim", a[4], &ax) ||
        alias("norm", "keepdims", a[2], "keepdim", a[5], &kp))
        return NULL;
    int keep = tgpy_bool(kp, 0);
    if (keep < 0) return NULL;
    int64_t axes[TG_MAX_DIMS];
    int na;
    if (tgpy_axes(ax, axes, &na)) return tgpy_prefix_error("norm");
    double p = 2;
    if (po && po != Py_None) {
        if (PyUnicode_Check(po)) {
            const char *s = tgpy_utf8(po);
            if (!s) return NULL;
            if (!strcmp(s, "fro")) {
                if (na > 2) {
                    PyErr_Format(PyExc_ValueError,
                                 "norm: the Frobenius norm ('fro') takes one or two axes, got %d "
                                 "(input shape %s)", na, tg_shape_str(TENSOR(self)->ndim, TENSOR(self)->shape,
                                                                        (char[128]){0}, 128));
                    return NULL;
                }
            } else if (!strcmp(s, "nuc")) {
                PyErr_SetString(PyExc_ValueError,
                                "norm: the nuclear norm ('nuc') is a matrix norm, the sum of the "
                                "singular values: use tg.linalg.matrix_norm(x, 'nuc') or "
                                "tg.linalg.norm(x, 'nuc') (this vector norm takes p=2, 'fro', 1, "
                                "inf, -inf, 0 or any p > 0)");
                return NULL;
            } else {
                PyErr_Format(PyExc_ValueError,
                             "norm: unknown norm '%s' (expected a number, 'fro' or None)", s);
                return NULL;
            }
        } else {
            p = PyFloat_AsDouble(po);
            if (p == -1.0 && PyErr_Occurred()) return tgpy_prefix_error("norm");
        }
    }
    return W(tg_norm(TENSOR(self), p, na < 0 ? NULL : axes, na < 0 ? 0 : na, keep));
}

/* ---- the tables ------------------------------------------------------------------- */

#define M(name, doc) {#name, (PyCFunction)(void (*)(void))m_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_scan_methods[] = {
    M(cumsum, "cumsum(axis=None, dtype=None)\n\nCumulative sum along an axis (dim= is an alias); axis=None\n"
              "scans the flattened tensor (NumPy). dtype= converts the input first.\n\n"
              ">>> tg.tensor([1.0, 2.0, 3.0]).cumsum(0).tolist()\n[1.0, 3.0, 6.0]"),
    M(cumprod, "cumprod(axis=None, dtype=None)\n\nCumulative product along an axis; the gradient is right\n"
               "with zeros in the input.\n\n"
               ">>> tg.tensor([1.0, 2.0, 3.0]).cumprod(0).tolist()\n[1.0, 2.0, 6.0]"),
    M(logcumsumexp, "logcumsumexp(axis)\n\nlog(cumsum(exp(x))) along an axis, computed stably.\n\n"
                    ">>> [round(v, 4) for v in tg.tensor([0.0, 0.0]).logcumsumexp(0).tolist()]\n[0.0, 0.6931]"),
    M(cummax, "cummax(axis)\n\nRunning maximum along an axis: a named tuple (values, indices); ties\n"
              "take the later index and a NaN propagates (PyTorch's rules).\n\n"
              ">>> tg.tensor([1.0, 3.0, 2.0]).cummax(0).indices.tolist()\n[0, 1, 1]"),
    M(cummin, "cummin(axis)\n\nRunning minimum along an axis: a named tuple (values, indices).\n\n"
              ">>> tg.tensor([3.0, 1.0, 2.0]).cummin(0).values.tolist()\n[3.0, 1.0, 1.0]"),
    M(sort, "sort(axis=-1, descending=False, stable=False)\n\nSorted values and their int64 indices, a "
            "named tuple (values, indices)\n(PyTorch's sort). Always stable; NaN sorts last (first when\n"
            "descending). axis=None sorts the flattened tensor (NumPy). The gradient\n"
            "flows through the indices.\n\n"
            ">>> tg.tensor([3.0, 1.0, 2.0]).sort().indices.tolist()\n[1, 2, 0]"),
    M(argsort, "argsort(axis=-1, descending=False, stable=False)\n\nThe int64 indices that sort the "
               "tensor along an axis (stable; axis=None:\nof the flattened tensor, as NumPy).\n\n"
               ">>> tg.tensor([3.0, 1.0, 2.0]).argsort(descending=True).tolist()\n[0, 2, 1]"),
    M(topk, "topk(k, axis=-1, largest=True, sorted=True)\n\nThe k largest (or smallest) values along an "
            "axis and their indices, a\nnamed tuple (values, indices), in sorted order; ties are broken by "
            "the\nlower index (stable).\n\n"
            ">>> tg.tensor([1.0, 5.0, 3.0]).topk(2).values.tolist()\n[5.0, 3.0]"),
    M(median, "median(axis=None, keepdims=False)\n\nPyTorch's median: the lower of the two middle values "
              "(not NumPy's mean\nof them); NaN if there is a NaN. With an axis: a named tuple (values,\n"
              "indices).\n\n>>> tg.tensor([4.0, 1.0, 3.0, 2.0]).median().item()\n2.0"),
    M(var, "var(axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\nVariance. "
           "ddof (NumPy), correction (PyTorch) or unbiased=True (ddof 1):\nthe divisor is n - ddof; "
           "the default is NumPy's ddof=0.\n\n"
           ">>> tg.tensor([1.0, 3.0, 5.0]).var(correction=1).item()\n4.0"),
    M(std, "std(axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\nStandard "
           "deviation sqrt(var) (same options as var; NumPy's ddof=0\nby default).\n\n"
           ">>> tg.tensor([1.0, 3.0]).std().item()\n1.0"),
    M(var_mean, "var_mean(axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
                "The tuple (variance, mean), as torch.var_mean (NumPy's ddof=0 by default).\n\n"
                ">>> [t.item() for t in tg.tensor([1.0, 3.0]).var_mean()]\n[1.0, 2.0]"),
    M(std_mean, "std_mean(axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
                "The tuple (standard deviation, mean), as torch.std_mean.\n\n"
                ">>> [t.item() for t in tg.tensor([1.0, 3.0]).std_mean()]\n[1.0, 2.0]"),
    M(norm, "norm(p=None, axis=None, keepdims=False, *, ord=None)\n\nVector p-norm over the axes (all by "
            "default): p = 2 (None), 1, inf,\n-inf, 0 (count of non-zeros) or any p > 0; 'fro' is the 2-norm "
            "over one\nor two axes; 'nuc' raises (no SVD). The gradient at 0 is 0.\n\n"
            ">>> tg.tensor([3.0, 4.0]).norm().item()\n5.0"),
    {NULL}};
#undef M

#define FN(name)                                                                      \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, \
                               PyObject *kw) {                                        \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                    \
    }
FN(cumsum) FN(cumprod) FN(logcumsumexp) FN(cummax) FN(cummin) FN(sort) FN(argsort) FN(topk)
FN(median) FN(var) FN(std) FN(var_mean) FN(std_mean) FN(norm)
#undef FN

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))fn_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_scan_functions[] = {
    F(cumsum, "cumsum(x, axis=None, dtype=None)\n\nCumulative sum along an axis (dim= is an alias; "
              "axis=None: flattened).\n\n>>> tg.cumsum(tg.tensor([1, 2, 3]), 0).tolist()\n[1, 3, 6]"),
    F(cumprod, "cumprod(x, axis=None, dtype=None)\n\nCumulative product along an axis (gradient right "
               "with zeros).\n\n>>> tg.cumprod(tg.tensor([1, 2, 3]), 0).tolist()\n[1, 2, 6]"),
    F(logcumsumexp, "logcumsumexp(x, axis)\n\nlog(cumsum(exp(x))) along an axis, computed stably.\n\n"
                    ">>> tg.logcumsumexp(tg.tensor([-1000.0, 0.0]), 0).tolist()\n[-1000.0, 0.0]"),
    F(cummax, "cummax(x, axis)\n\nRunning maximum and its indices: a named tuple (values, indices).\n\n"
              ">>> tg.cummax(tg.tensor([1.0, 3.0, 2.0]), 0).values.tolist()\n[1.0, 3.0, 3.0]"),
    F(cummin, "cummin(x, axis)\n\nRunning minimum and its indices: a named tuple (values, indices).\n\n"
              ">>> tg.cummin(tg.tensor([3.0, 1.0, 2.0]), 0).indices.tolist()\n[0, 1, 1]"),
    F(sort, "sort(x, axis=-1, descending=False, stable=False)\n\nSorted values and indices, a named tuple "
            "(PyTorch's sort; stable, NaN last).\n\n"
            ">>> values, indices = tg.sort(tg.tensor([3.0, 1.0, 2.0]))\n>>> values.tolist()\n[1.0, 2.0, 3.0]"),
    F(argsort, "argsort(x, axis=-1, descending=False, stable=False)\n\nThe int64 indices that sort x "
               "along an axis (stable).\n\n>>> tg.argsort(tg.tensor([3.0, 1.0, 2.0])).tolist()\n[1, 2, 0]"),
    F(topk, "topk(x, k, axis=-1, largest=True, sorted=True)\n\nThe k largest (or smallest) values and "
            "their indices, a named tuple;\nties: the lower index first.\n\n"
            ">>> tg.topk(tg.tensor([1.0, 5.0, 3.0]), 2).indices.tolist()\n[1, 2]"),
    F(median, "median(x, axis=None, keepdims=False)\n\nPyTorch's lower median (not NumPy's mean of the "
              "two middle values);\nwith an axis, a named tuple (values, indices).\n\n"
              ">>> tg.median(tg.tensor([4.0, 1.0, 3.0, 2.0])).item()\n2.0"),
    F(var, "var(x, axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
           "Variance (NumPy's ddof=0 by default; correction/unbiased as PyTorch).\n\n"
           ">>> tg.var(tg.tensor([1.0, 3.0])).item()\n1.0"),
    F(std, "std(x, axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
           "Standard deviation (NumPy's ddof=0 by default; correction/unbiased as PyTorch).\n\n"
           ">>> tg.std(tg.tensor([1.0, 3.0, 5.0]), correction=1).item()\n2.0"),
    F(var_mean, "var_mean(x, axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
                "The tuple (variance, mean).\n\n>>> v, m = tg.var_mean(tg.tensor([1.0, 3.0]))\n"
                ">>> (v.item(), m.item())\n(1.0, 2.0)"),
    F(std_mean, "std_mean(x, axis=None, keepdims=False, ddof=None, *, correction=None, unbiased=None)\n\n"
                "The tuple (standard deviation, mean).\n\n>>> s, m = tg.std_mean(tg.tensor([1.0, 3.0]))\n"
                ">>> (s.item(), m.item())\n(1.0, 2.0)"),
    F(norm, "norm(x, p=None, axis=None, keepdims=False, *, ord=None)\n\nVector p-norm over axes (p = 2 by "
            "default; 1, inf, -inf, 0, any p > 0;\n'fro' = 2 over one or two axes; 'nuc' raises).\n\n"
            ">>> tg.norm(tg.tensor([3.0, 4.0])).item()\n5.0"),
    {NULL}};
#undef F
