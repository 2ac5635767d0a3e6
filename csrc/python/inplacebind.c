/*
 * inplacebind.c -- the in-place methods recorded on the tape:
 * t.add_(other, alpha=1), sub_, mul_, div_, relu_, clamp_/clip_,
 * masked_fill_(mask, value).  (fill_, zero_ and copy_ are in tensor.c,
 * x += y in number.c, x[key] = v in index.c; all end in csrc/ops/inplace.c.)
 * Each returns the tensor itself, as in PyTorch.
 */
#include "common.h"

#include <math.h>

#define IMETHOD(name) \
    static PyObject *mi_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)

static PyObject *done(PyObject *self, tg_status st) {
    if (st) return tgpy_raise();
    Py_INCREF(self);
    return self;
}

static int get_double(const char *fname, PyObject *o, double deflt, double *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a number, got %s", fname, Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

/* other (a tensor, number, list or array) converted next to self. */
static tg_tensor *other_of(const char *fname, PyObject *self, PyObject *o, const char *what) {
    if (!o) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument '%s'", fname, what);
        return NULL;
    }
    tg_tensor *t = tgpy_as_tensor(o, TENSOR(self));
    if (!t) tgpy_prefix_error(fname);
    return t;
}

static PyObject *arith(const char *fname, char op, PyObject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kw, bool has_alpha) {
    static const char *const names[] = {"other", "alpha"};
    PyObject *a[2] = {NULL, NULL};
    if (tgpy_args(fname, args, nargs, kw, names, has_alpha ? 2 : 1, 1, a)) return NULL;
    double alpha;
    if (get_double(fname, a[1], 1.0, &alpha)) return NULL;
    tg_tensor *o = other_of(fname, self, a[0], "other");
    if (!o) return NULL;
    tg_status st;
    switch (op) {
    case '+': st = tg_add_(TENSOR(self), o, alpha); break;
    case '-': st = tg_sub_(TENSOR(self), o, alpha); break;
    case '*': st = tg_mul_(TENSOR(self), o); break;
    default: st = tg_div_(TENSOR(self), o); break;
    }
    tg_tensor_release(o);
    return done(self, st);
}

IMETHOD(add_) { return arith("add_", '+', self, args, nargs, kw, true); }
IMETHOD(sub_) { return arith("sub_", '-', self, args, nargs, kw, true); }
IMETHOD(mul_) { return arith("mul_", '*', self, args, nargs, kw, false); }
IMETHOD(div_) { return arith("div_", '/', self, args, nargs, kw, false); }

IMETHOD(relu_) {
    if (tgpy_args("relu_", args, nargs, kw, NULL, 0, 0, NULL)) return NULL;
    return done(self, tg_relu_(TENSOR(self)));
}

static PyObject *clamp(const char *fname, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kw) {
    static const char *const names[] = {"min", "max"};
    PyObject *a[2];
    if (tgpy_args(fname, args, nargs, kw, names, 2, 2, a)) return NULL;
    double lo, hi;
    if (get_double(fname, a[0], NAN, &lo) || get_double(fname, a[1], NAN, &hi)) return NULL;
    return done(self, tg_clip_(TENSOR(self), isnan(lo) ? -INFINITY : lo, isnan(hi) ? INFINITY : hi));
}
IMETHOD(clamp_) { return clamp("clamp_", self, args, nargs, kw); }
IMETHOD(clip_) { return clamp("clip_", self, args, nargs, kw); }

IMETHOD(masked_fill_) {
    static const char *const names[] = {"mask", "value"};
    PyObject *a[2];
    if (tgpy_args("masked_fill_", args, nargs, kw, names, 2, 2, a)) return NULL;
    if (!a[0] || !a[1]) {
        PyErr_Format(PyExc_TypeError, "masked_fill_() missing argument '%s'", a[0] ? "value" : "mask");
        return NULL;
    }
    /* the mask in any dtype: nonzero means true (bool arrays become 0/1) */
    tg_tensor *m = tgpy_is_tensor(a[0]) ? (tg_tensor_retain(TENSOR(a[0])), TENSOR(a[0]))
                                        : tgpy_as_tensor(a[0], NULL);
    if (!m) return tgpy_prefix_error("masked_fill_");
    tg_tensor *v = other_of("masked_fill_", self, a[1], "value");
    if (!v) {
        tg_tensor_release(m);
        return NULL;
    }
    tg_status st = tg_masked_fill_(TENSOR(self), m, v);
    tg_tensor_release(m);
    tg_tensor_release(v);
    return done(self, st);
}

#define IM(name, doc) {#name, (PyCFunction)(void (*)(void))mi_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_inplace_methods[] = {
    IM(add_, "add_(other, alpha=1)\n\n``self += alpha * other``, in place (recorded on the tape; see "
             "docs/concepts/inplace.md).\n\n>>> x = tg.ones(2); x.add_(tg.tensor([1., 2.]), alpha=2)\n"
             "tensor([3., 5.], shape=(2,), dtype=float32)"),
    IM(sub_, "sub_(other, alpha=1)\n\n``self -= alpha * other``, in place (recorded on the tape)."),
    IM(mul_, "mul_(other)\n\n``self *= other``, in place (recorded on the tape)."),
    IM(div_, "div_(other)\n\n``self /= other``, in place (recorded on the tape)."),
    IM(relu_, "relu_()\n\n``self = relu(self)``, in place (recorded on the tape)."),
    IM(clamp_, "clamp_(min=None, max=None)\n\n``self = clip(self, min, max)``, in place (recorded "
               "on the tape)."),
    IM(clip_, "clip_(min=None, max=None)\n\nThe same as ``clamp_``."),
    IM(masked_fill_, "masked_fill_(mask, value)\n\n``self = where(mask, value, self)``, in place "
                     "(recorded on the tape); mask of any dtype, nonzero is true, broadcast to "
                     "self's shape."),
    {NULL, NULL, 0, NULL}};

/* The core's rebase hook (tg_set_rebase_hook): an in-place write recorded on
 * the tape made a new tensor object for the new version; the Python object
 * that was the handle of the old one now stands for the new one, so `x`
 * stays the same Python object (as in PyTorch) while the entries recorded
 * earlier keep the old version. */
static void on_rebase(tg_tensor *old, tg_tensor *n) {
    TensorData *d = n->user_data;
    if (d && d->wrapper && d->wrapper->t == old) {
        tg_tensor_retain(n);
        d->wrapper->t = n;
        tg_tensor_release(old);
    }
}

void tgpy_inplace_init(void) { tg_set_rebase_hook(on_rebase); }
