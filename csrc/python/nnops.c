/*
 * nnops.c -- the binding of convolution, pooling and the fused optimizer
 * steps: tapegrad._C.conv1d, conv2d, conv_transpose2d, max_pool2d,
 * avg_pool2d, max_unpool2d, adaptive_avg_pool2d, interpolate, and the private
 * helpers behind tapegrad.optim (_sgd_step, _adam_step, _rmsprop_step,
 * _clip_grad_norm), which take Python lists of Tensors.
 */
#include "common.h"
#include "../kernels/gemm.h"

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

/* An int or a pair of ints (PyTorch's `int or tuple`) into out[0], out[1];
 * o == NULL or None -> deflt (which may be NULL: then the argument is
 * required).  0, or -1 with TypeError. */
static int int_pair(const char *fname, const char *arg, PyObject *o, const int64_t *deflt,
                    int64_t *out) {
    if (!o || o == Py_None) {
        if (deflt) {
            out[0] = deflt[0];
            out[1] = deflt[1];
            return 0;
        }
        PyErr_Format(PyExc_TypeError, "%s() missing argument '%s'", fname, arg);
        return -1;
    }
    if (PyIndex_Check(o)) {
        Py_ssize_t v = PyNumber_AsSsize_t(o, PyExc_OverflowError);
        if (v == -1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: %s %R is out of range (expected a small "
                             "non-negative int)", fname, arg, o);
            }
            return -1;
        }
        out[0] = out[1] = v;
        return 0;
    }
    if (PySequence_Check(o) && !PyUnicode_Check(o)) {
        Py_ssize_t len = PySequence_Size(o);
        if (len < 0) return -1;
        int ok = len == 2;
        for (Py_ssize_t i = 0; ok && i < 2; i++) {
            PyObject *it = PySequence_GetItem(o, i);
            if (!it) return -1;
            ok = PyIndex_Check(it);
            Py_ssize_t v = ok ? PyNumber_AsSsize_t(it, PyExc_OverflowError) : 0;
            if (v == -1 && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: %s entry %zd (%R) is out of range (expected "
                             "a small non-negative int)", fname, arg, i, it);
            }
            Py_DECREF(it);
            if (v == -1 && PyErr_Occurred()) return -1;
            out[i] = v;
        }
        if (ok) return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s(): %s must be an int or a pair of ints, got %R", fname, arg, o);
    return -1;
}

/* A float argument; absent -> deflt.  0, or -1 with an exception. */
static int get_double(PyObject *o, double deflt, double *out) {
    if (!o) {
        *out = deflt;
        return 0;
    }
    *out = PyFloat_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* A list of n Tensors (or None where allow_none) as BORROWED tg_tensor
 * pointers in a new array (PyMem_Free it).  `o` == None with allow_null:
 * *out = NULL.  n < 0: the length is taken from the list and stored in *n.
 * 0, or -1 with TypeError/ValueError. */
static int tensor_ptrs(const char *fname, const char *arg, PyObject *o, int *n, bool allow_none,
                       bool allow_null, tg_tensor ***out) {
    *out = NULL;
    if (o == Py_None && allow_null) return 0;
    if (!o || !PyList_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be a list of Tensors", fname, arg);
        return -1;
    }
    Py_ssize_t len = PyList_GET_SIZE(o);
    if (len > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): %s is too long", fname, arg);
        return -1;
    }
    if (*n >= 0 && len != *n) {
        PyErr_Format(PyExc_ValueError, "%s(): %s has %zd entries, expected %d (one per parameter)",
                     fname, arg, len, *n);
        return -1;
    }
    tg_tensor **ts = PyMem_Calloc(len > 0 ? (size_t)len : 1, sizeof *ts);
    if (!ts) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *it = PyList_GET_ITEM(o, i);
        if (it == Py_None && allow_none) continue;
        if (!tgpy_is_tensor(it)) {
            PyErr_Format(PyExc_TypeError, "%s(): %s[%zd] must be a Tensor%s, got %.100s", fname, arg,
                         i, allow_none ? " or None" : "", Py_TYPE(it)->tp_name);
            PyMem_Free(ts);
            return -1;
        }
        ts[i] = TENSOR(it);
    }
    *n = (int)len;
    *out = ts;
    return 0;
}

/* ===================================================================== */
/* Convolution and pooling                                                */
/* ===================================================================== */

/* An int or a sequence of n ints into out[0..n) (an int is repeated); o NULL
 * or None -> deflt (NULL: required).  0, or -1 with TypeError/ValueError. */
static int int_seq(const char *fname, const char *arg, PyObject *o, int n, const int64_t *deflt,
                   int64_t *out) {
    if (n == 2 || !o || o == Py_None || PyIndex_Check(o)) {
        int64_t two[2], d2[2] = {deflt ? deflt[0] : 0, deflt ? deflt[0] : 0};
        if (int_pair(fname, arg, o, deflt ? (n == 2 ? deflt : d2) : NULL, two)) return -1;
        if (n == 2) {
            out[0] = two[0];
            out[1] = two[1];
        } else {
            for (int i = 0; i < n; i++) out[i] = (!o || o == Py_None) && deflt ? deflt[i] : two[0];
        }
        return 0;
    }
    if (PySequence_Check(o) && !PyUnicode_Check(o)) {
        Py_ssize_t len = PySequence_Size(o);
        if (len < 0) return -1;
        if (len == n) {
            for (int i = 0; i < n; i++) {
                PyObject *it = PySequence_GetItem(o, i);
                if (!it) return -1;
                int64_t v[2];
                int r = PyIndex_Check(it) ? int_pair(fname, arg, it, NULL, v) : 1;
                Py_DECREF(it);
                if (r < 0) return -1;
                if (r > 0) break;
                out[i] = v[0];
                if (i == n - 1) return 0;
            }
        }
    }
    PyErr_Format(PyExc_TypeError, "%s(): %s must be an int or a sequence of %d ints, got %R", fname,
                 arg, n, o);
    return -1;
}

/* A bool argument (absent/None -> deflt); -1 with an exception. */
static int flag(PyObject *o, int deflt) {
    if (!o || o == Py_None) return deflt;
    return PyObject_IsTrue(o);
}

/* conv padding: 'valid', 'same', an int, one int per spatial axis, or (for
 * 2-D) four ints (left, right, top, bottom) as F.pad orders them.  Fills
 * before[d], after[d] for the nsp spatial axes; 'same' needs stride 1 and
 * the (dilated) kernel sizes k[d], d[d]. */
static int conv_padding(const char *fname, PyObject *o, int nsp, const int64_t *stride,
                        const int64_t *k, const int64_t *dil, int64_t *before, int64_t *after) {
    if (o && PyUnicode_Check(o)) {
        const char *s = tgpy_utf8(o);
        if (!s) return -1;
        if (!strcmp(s, "valid")) {
            for (int d = 0; d < nsp; d++) before[d] = after[d] = 0;
            return 0;
        }
        if (!strcmp(s, "same")) {
            for (int d = 0; d < nsp; d++)
                if (stride[d] != 1) {
                    PyErr_Format(PyExc_ValueError, "%s: padding='same' is not supported for strided "
                                 "convolutions (stride %lld)", fname, (long long)stride[d]);
                    return -1;
                }
            for (int d = 0; d < nsp; d++) { /* PyTorch: the odd extra one goes after */
                int64_t total = dil[d] * (k[d] - 1);
                before[d] = total / 2;
                after[d] = total - before[d];
            }
            return 0;
        }
        PyErr_Format(PyExc_ValueError, "%s: padding must be 'valid', 'same', an int or a tuple of "
                     "ints, got '%s'", fname, s);
        return -1;
    }
    if (nsp == 2 && o && PySequence_Check(o) && PySequence_Size(o) == 4) {
        int64_t v[4];
        if (int_seq(fname, "padding", o, 4, NULL, v)) return -1;
        before[1] = v[0], after[1] = v[1], before[0] = v[2], after[0] = v[3];
        return 0;
    }
    if (PyErr_Occurred()) return -1;
    static const int64_t zero[2] = {0, 0};
    int64_t p[2];
    if (int_seq(fname, "padding", o, nsp, zero, p)) return -1;
    for (int d = 0; d < nsp; d++) before[d] = after[d] = p[d];
    return 0;
}

/* input, weight and an optional bias as new references; 0 or -1. */
static int conv_tensors(const char *fname, PyObject **a, tg_tensor **x, tg_tensor **w, tg_tensor **b) {
    *x = *w = *b = NULL;
    if (!a[0] || !a[1]) {
        PyErr_Format(PyExc_TypeError, "%s() needs input and weight", fname);
        return -1;
    }
    *x = tgpy_as_tensor(a[0], NULL);
    *w = *x ? tgpy_as_tensor(a[1], *x) : NULL;
    *b = (*w && a[2] && a[2] != Py_None) ? tgpy_as_tensor(a[2], *w) : NULL;
    if (*w && (*b || !a[2] || a[2] == Py_None)) return 0;
    tg_tensor_release(*x);
    tg_tensor_release(*w);
    *x = *w = NULL;
    return -1;
}

static PyObject *conv_result(tg_tensor *x, tg_tensor *w, tg_tensor *b, tg_tensor *r) {
    tg_tensor_release(x);
    tg_tensor_release(w);
    tg_tensor_release(b);
    if (!r) return PyErr_Occurred() ? NULL : tgpy_raise();
    return tgpy_wrap(r);
}

FUNC(conv2d) {
    ARGS("conv2d", 7, 7, "input", "weight", "bias", "stride", "padding", "dilation", "groups")
    static const int64_t one[2] = {1, 1};
    int64_t stride[2], dil[2], groups[2], pb[2], pa[2];
    if (int_pair("conv2d", "stride", a[3], one, stride) ||
        int_pair("conv2d", "dilation", a[5], one, dil) || int_seq("conv2d", "groups", a[6], 1, one, groups))
        return NULL;
    tg_tensor *x, *w, *b;
    if (conv_tensors("conv2d", a, &x, &w, &b)) return NULL;
    int64_t k[2] = {w->ndim == 4 ? w->shape[2] : 1, w->ndim == 4 ? w->shape[3] : 1};
    if (conv_padding("conv2d", a[4], 2, stride, k, dil, pb, pa)) return conv_result(x, w, b, NULL);
    int64_t cv[9] = {stride[0], stride[1], pb[0], pb[1], dil[0], dil[1], groups[0], pa[0], pa[1]};
    return conv_result(x, w, b, tg_conv2d_ex(x, w, b, cv));
}

FUNC(conv1d) {
    ARGS("conv1d", 7, 7, "input", "weight", "bias", "stride", "padding", "dilation", "groups")
    static const int64_t one[1] = {1};
    int64_t stride[1], dil[1], groups[1], pb[1], pa[1];
    if (int_seq("conv1d", "stride", a[3], 1, one, stride) ||
        int_seq("conv1d", "dilation", a[5], 1, one, dil) || int_seq("conv1d", "groups", a[6], 1, one, groups))
        return NULL;
    tg_tensor *x, *w, *b;
    if (conv_tensors("conv1d", a, &x, &w, &b)) return NULL;
    int64_t k[1] = {w->ndim == 3 ? w->shape[2] : 1};
    if (conv_padding("conv1d", a[4], 1, stride, k, dil, pb, pa)) return conv_result(x, w, b, NULL);
    int64_t c1[5] = {stride[0], pb[0], dil[0], groups[0], pa[0]};
    return conv_result(x, w, b, tg_conv1d(x, w, b, c1));
}

FUNC(conv_transpose2d) {
    ARGS("conv_transpose2d", 8, 8, "input", "weight", "bias", "stride", "padding", "output_padding",
         "groups", "dilation")
    static const int64_t one[2] = {1, 1}, zero[2] = {0, 0};
    int64_t s[2], p[2], op[2], g[1], d[2];
    if (int_pair("conv_transpose2d", "stride", a[3], one, s) ||
        int_pair("conv_transpose2d", "padding", a[4], zero, p) ||
        int_pair("conv_transpose2d", "output_padding", a[5], zero, op) ||
        int_seq("conv_transpose2d", "groups", a[6], 1, one, g) ||
        int_pair("conv_transpose2d", "dilation", a[7], one, d))
        return NULL;
    tg_tensor *x, *w, *b;
    if (conv_tensors("conv_transpose2d", a, &x, &w, &b)) return NULL;
    int64_t ct[9] = {s[0], s[1], p[0], p[1], op[0], op[1], g[0], d[0], d[1]};
    return conv_result(x, w, b, tg_conv_transpose2d(x, w, b, ct));
}

FUNC(linear) {
    ARGS("linear", 3, 3, "input", "weight", "bias")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "linear() needs input and weight");
        return NULL;
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    tg_tensor *w = x ? tgpy_as_tensor(a[1], x) : NULL;
    tg_tensor *b = (w && a[2] && a[2] != Py_None) ? tgpy_as_tensor(a[2], w) : NULL;
    tg_tensor *r = NULL;
    if (w && (b || !a[2] || a[2] == Py_None)) r = tg_linear(x, w, b);
    tg_tensor_release(x);
    tg_tensor_release(w);
    tg_tensor_release(b);
    if (!r) return PyErr_Occurred() ? NULL : tgpy_raise();
    return tgpy_wrap(r);
}

/* kernel_size, stride (None: the kernel size, as PyTorch), padding into
 * pp[0..6) of the pooling parameters. */
static int pool_window(const char *fname, PyObject *k, PyObject *s, PyObject *p, int64_t *pp) {
    static const int64_t zero[2] = {0, 0};
    if (int_pair(fname, "kernel_size", k, NULL, pp) || int_pair(fname, "stride", s, pp, pp + 2) ||
        int_pair(fname, "padding", p, zero, pp + 4))
        return -1;
    return 0;
}

FUNC(max_pool2d) {
    ARGS("max_pool2d", 7, 7, "input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
         "return_indices")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "max_pool2d() missing argument 'input'");
        return NULL;
    }
    static const int64_t one[2] = {1, 1};
    int64_t pp[11] = {0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0};
    int cm = flag(a[5], 0), ri = flag(a[6], 0);
    if (cm < 0 || ri < 0 || pool_window("max_pool2d", a[1], a[2], a[3], pp) ||
        int_pair("max_pool2d", "dilation", a[4], one, pp + 6))
        return NULL;
    pp[8] = cm;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_tensor *idx = NULL;
    tg_tensor *r = tg_max_pool2d_ex(x, pp, ri ? &idx : NULL);
    tg_tensor_release(x);
    if (!r) return tgpy_raise();
    if (!ri) return tgpy_wrap(r);
    PyObject *y = tgpy_wrap(r), *i = y ? tgpy_wrap(idx) : NULL;
    if (!y) tg_tensor_release(idx);
    PyObject *t = i ? PyTuple_Pack(2, y, i) : NULL;
    Py_XDECREF(y);
    Py_XDECREF(i);
    return t;
}

FUNC(avg_pool2d) {
    ARGS("avg_pool2d", 7, 7, "input", "kernel_size", "stride", "padding", "ceil_mode",
         "count_include_pad", "divisor_override")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "avg_pool2d() missing argument 'input'");
        return NULL;
    }
    int64_t pp[11] = {0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0};
    int cm = flag(a[4], 0), cip = flag(a[5], 1);
    if (cm < 0 || cip < 0 || pool_window("avg_pool2d", a[1], a[2], a[3], pp)) return NULL;
    pp[8] = cm;
    pp[9] = cip;
    if (a[6] && a[6] != Py_None) {
        int64_t d[2];
        if (int_pair("avg_pool2d", "divisor_override", a[6], NULL, d)) return NULL;
        if (d[0] <= 0) {
            PyErr_Format(PyExc_ValueError, "avg_pool2d: divisor_override must be a positive int, got %lld",
                         (long long)d[0]);
            return NULL;
        }
        pp[10] = d[0];
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_tensor *r = tg_avg_pool2d_ex(x, pp);
    tg_tensor_release(x);
    return tgpy_wrap(r);
}

FUNC(max_unpool2d) {
    ARGS("max_unpool2d", 6, 6, "input", "indices", "kernel_size", "stride", "padding", "output_size")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "max_unpool2d() needs input and indices");
        return NULL;
    }
    int64_t kp[6], out[4];
    if (pool_window("max_unpool2d", a[2], a[3], a[4], kp)) return NULL;
    bool has_out = a[5] && a[5] != Py_None;
    if (has_out) { /* (H, W) or the whole (N, C, H, W), as PyTorch */
        Py_ssize_t n = PySequence_Check(a[5]) ? PySequence_Size(a[5]) : -1;
        if (n != 2 && n != 4) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "max_unpool2d(): output_size must be a sequence of 2 or 4 "
                         "ints, got %R", a[5]);
            return NULL;
        }
        if (int_seq("max_unpool2d", "output_size", a[5], (int)n, NULL, out)) return NULL;
        if (n == 4) out[0] = out[2], out[1] = out[3];
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    tg_tensor *i = x ? tgpy_as_tensor(a[1], NULL) : NULL;
    tg_tensor *r = i ? tg_max_unpool2d(x, i, kp, has_out ? out : NULL) : NULL;
    tg_tensor_release(x);
    tg_tensor_release(i);
    if (!r) return PyErr_Occurred() ? NULL : tgpy_raise();
    return tgpy_wrap(r);
}

/* A float or a sequence of n floats; -1 with an exception. */
static int float_seq(const char *fname, const char *arg, PyObject *o, int n, double *out) {
    if (PyNumber_Check(o) && !PySequence_Check(o)) {
        double v = PyFloat_AsDouble(o);
        if (v == -1.0 && PyErr_Occurred()) return -1;
        for (int i = 0; i < n; i++) out[i] = v;
        return 0;
    }
    if (PySequence_Check(o) && !PyUnicode_Check(o) && PySequence_Size(o) == n) {
        for (int i = 0; i < n; i++) {
            PyObject *it = PySequence_GetItem(o, i);
            if (!it) return -1;
            out[i] = PyFloat_AsDouble(it);
            Py_DECREF(it);
            if (out[i] == -1.0 && PyErr_Occurred()) return -1;
        }
        return 0;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s(): %s must be a number or a sequence of %d numbers, got %R",
                 fname, arg, n, o);
    return -1;
}

FUNC(interpolate) {
    ARGS("interpolate", 7, 7, "input", "size", "scale_factor", "mode", "align_corners",
         "recompute_scale_factor", "antialias")
    const char *fn = "interpolate";
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "interpolate() missing argument 'input'");
        return NULL;
    }
    const char *mode = "nearest";
    if (a[3] && a[3] != Py_None) {
        if (!PyUnicode_Check(a[3])) {
            PyErr_Format(PyExc_TypeError, "interpolate(): mode must be a string, got %R", a[3]);
            return NULL;
        }
        mode = tgpy_utf8(a[3]);
        if (!mode) return NULL;
    }
    int m = !strcmp(mode, "nearest") ? 0 : !strcmp(mode, "linear") ? 1 : !strcmp(mode, "bilinear") ? 2
          : !strcmp(mode, "nearest-exact") ? 3 : !strcmp(mode, "area") ? 4 : -1;
    if (m < 0) {
        PyErr_Format(PyExc_ValueError, "interpolate: mode must be 'nearest', 'nearest-exact', 'linear', "
                     "'bilinear' or 'area', got '%s'", mode);
        return NULL;
    }
    int align = flag(a[4], 0), recompute = flag(a[5], 0), aa = flag(a[6], 0);
    if (align < 0 || recompute < 0 || aa < 0) return NULL;
    if (aa) {
        PyErr_SetString(PyExc_ValueError, "interpolate: antialias=True is not supported");
        return NULL;
    }
    if (a[4] && a[4] != Py_None && (m == 0 || m >= 3)) {
        PyErr_Format(PyExc_ValueError, "interpolate: align_corners can only be set with the linear "
                     "modes ('linear', 'bilinear'), not '%s'", mode);
        return NULL;
    }
    bool has_size = a[1] && a[1] != Py_None, has_sf = a[2] && a[2] != Py_None;
    if (has_size == has_sf) {
        PyErr_SetString(PyExc_ValueError, has_size ? "interpolate: only one of size or scale_factor "
                        "should be given" : "interpolate: either size or scale_factor should be given");
        return NULL;
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    int nsp = x->ndim - 2;
    tg_tensor *r = NULL;
    int64_t size[2] = {0, 0};
    double sf[2] = {0, 0};
    if (nsp < 1 || nsp > 2) {
        PyErr_Format(PyExc_ValueError, "interpolate: expected a 3-D (N, C, L) or 4-D (N, C, H, W) "
                     "input, got shape %s", tg_shape_str(x->ndim, x->shape, (char[128]){0}, 128));
        goto out;
    }
    if (has_size) {
        if (int_seq(fn, "size", a[1], nsp, NULL, size)) goto out;
    } else {
        if (float_seq(fn, "scale_factor", a[2], nsp, sf)) goto out;
        for (int d = 0; d < nsp; d++) {
            if (!(sf[d] > 0) || !isfinite(sf[d])) {
                PyErr_Format(PyExc_ValueError, "interpolate: scale_factor must be positive and finite, "
                             "got %g", sf[d]);
                goto out;
            }
            double o = floor((double)x->shape[2 + d] * sf[d]);
            size[d] = o > 1e15 ? (int64_t)1e15 : (int64_t)o;
            if (recompute) sf[d] = 0;
        }
    }
    if (m == 4) {
        if (nsp != 2) {
            PyErr_SetString(PyExc_ValueError, "interpolate: mode 'area' needs a 4-D input");
            goto out;
        }
        r = tg_adaptive_avg_pool2d(x, size[0], size[1]);
    } else {
        r = tg_interpolate(x, size, sf, m, align != 0);
    }
    if (!r) tgpy_raise();
out:
    tg_tensor_release(x);
    return r ? tgpy_wrap(r) : NULL;
}

FUNC(adaptive_avg_pool2d) {
    ARGS("adaptive_avg_pool2d", 2, 2, "input", "output_size")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "adaptive_avg_pool2d() needs input and output_size");
        return NULL;
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    int64_t o[2] = {-1, -1};
    /* None entries keep the input's size, as PyTorch */
    if (PySequence_Check(a[1]) && PySequence_Size(a[1]) == 2) {
        for (int d = 0; d < 2; d++) {
            PyObject *it = PySequence_GetItem(a[1], d);
            if (!it) goto fail;
            if (it == Py_None) o[d] = x->ndim == 4 ? x->shape[2 + d] : 1;
            else {
                int64_t v[2];
                int r = int_pair("adaptive_avg_pool2d", "output_size", it, NULL, v);
                o[d] = v[0];
                if (r) {
                    Py_DECREF(it);
                    goto fail;
                }
            }
            Py_DECREF(it);
        }
    } else {
        PyErr_Clear();
        if (int_pair("adaptive_avg_pool2d", "output_size", a[1], NULL, o)) goto fail;
    }
    tg_tensor *r = tg_adaptive_avg_pool2d(x, o[0], o[1]);
    tg_tensor_release(x);
    return tgpy_wrap(r);
fail:
    tg_tensor_release(x);
    return NULL;
}

/* ===================================================================== */
/* Optimizer steps                                                        */
/* ===================================================================== */

static PyObject *status_result(tg_status st) {
    if (st != TG_OK) return tgpy_raise();
    Py_RETURN_NONE;
}

FUNC(_sgd_step) {
    ARGS("_sgd_step", 9, 9, "params", "grads", "bufs", "lr", "momentum", "dampening",
         "weight_decay", "nesterov", "first_step")
    double lr, mom, damp, wd;
    int nest = tgpy_bool(a[7], 0), first = tgpy_bool(a[8], 0);
    if (nest < 0 || first < 0 || !a[3]) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_sgd_step() missing argument 'lr'");
        return NULL;
    }
    if (get_double(a[3], 0, &lr) || get_double(a[4], 0, &mom) || get_double(a[5], 0, &damp) ||
        get_double(a[6], 0, &wd))
        return NULL;
    int n = -1;
    tg_tensor **p = NULL, **g = NULL, **b = NULL;
    PyObject *res = NULL;
    if (tensor_ptrs("_sgd_step", "params", a[0], &n, false, false, &p) == 0 &&
        tensor_ptrs("_sgd_step", "grads", a[1], &n, true, false, &g) == 0 &&
        tensor_ptrs("_sgd_step", "bufs", a[2] ? a[2] : Py_None, &n, true, true, &b) == 0)
        res = status_result(tg_sgd_step(n, p, g, b, lr, mom, damp, wd, nest, first));
    PyMem_Free(p);
    PyMem_Free(g);
    PyMem_Free(b);
    return res;
}

FUNC(_adam_step) {
    ARGS("_adam_step", 11, 11, "params", "grads", "exp_avg", "exp_avg_sq", "step", "lr", "beta1",
         "beta2", "eps", "weight_decay", "decoupled")
    if (!a[4]) {
        PyErr_SetString(PyExc_TypeError, "_adam_step() missing argument 'step'");
        return NULL;
    }
    long long step = PyLong_AsLongLong(a[4]);
    if (step == -1 && PyErr_Occurred()) return NULL;
    double lr, b1, b2, eps, wd;
    int dec = tgpy_bool(a[10], 0);
    if (dec < 0 || get_double(a[5], 1e-3, &lr) || get_double(a[6], 0.9, &b1) ||
        get_double(a[7], 0.999, &b2) || get_double(a[8], 1e-8, &eps) || get_double(a[9], 0, &wd))
        return NULL;
    int n = -1;
    tg_tensor **p = NULL, **g = NULL, **m = NULL, **v = NULL;
    PyObject *res = NULL;
    if (tensor_ptrs("_adam_step", "params", a[0], &n, false, false, &p) == 0 &&
        tensor_ptrs("_adam_step", "grads", a[1], &n, true, false, &g) == 0 &&
        tensor_ptrs("_adam_step", "exp_avg", a[2], &n, true, false, &m) == 0 &&
        tensor_ptrs("_adam_step", "exp_avg_sq", a[3], &n, true, false, &v) == 0)
        res = status_result(tg_adam_step(n, p, g, m, v, step, lr, b1, b2, eps, wd, dec));
    PyMem_Free(p);
    PyMem_Free(g);
    PyMem_Free(m);
    PyMem_Free(v);
    return res;
}

FUNC(_rmsprop_step) {
    ARGS("_rmsprop_step", 9, 9, "params", "grads", "square_avg", "momentum_buf", "lr", "alpha",
         "eps", "weight_decay", "momentum")
    double lr, alpha, eps, wd, mom;
    if (get_double(a[4], 1e-2, &lr) || get_double(a[5], 0.99, &alpha) ||
        get_double(a[6], 1e-8, &eps) || get_double(a[7], 0, &wd) || get_double(a[8], 0, &mom))
        return NULL;
    int n = -1;
    tg_tensor **p = NULL, **g = NULL, **s = NULL, **b = NULL;
    PyObject *res = NULL;
    if (tensor_ptrs("_rmsprop_step", "params", a[0], &n, false, false, &p) == 0 &&
        tensor_ptrs("_rmsprop_step", "grads", a[1], &n, true, false, &g) == 0 &&
        tensor_ptrs("_rmsprop_step", "square_avg", a[2], &n, true, false, &s) == 0 &&
        tensor_ptrs("_rmsprop_step", "momentum_buf", a[3] ? a[3] : Py_None, &n, true, true, &b) == 0)
        res = status_result(tg_rmsprop_step(n, p, g, s, b, lr, alpha, eps, wd, mom));
    PyMem_Free(p);
    PyMem_Free(g);
    PyMem_Free(s);
    PyMem_Free(b);
    return res;
}

FUNC(_clip_grad_norm) {
    ARGS("_clip_grad_norm", 3, 3, "grads", "max_norm", "norm_type")
    double max_norm, norm_type;
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "_clip_grad_norm() missing argument 'max_norm'");
        return NULL;
    }
    if (get_double(a[1], 0, &max_norm) || get_double(a[2], 2.0, &norm_type)) return NULL;
    int n = -1;
    tg_tensor **g = NULL;
    if (tensor_ptrs("_clip_grad_norm", "grads", a[0], &n, true, false, &g)) return NULL;
    double total = 0;
    tg_status st = tg_clip_grad_norm(n, g, max_norm, norm_type, &total);
    PyMem_Free(g);
    if (st) return tgpy_raise();
    return PyFloat_FromDouble(total);
}

/* ===================================================================== */
/* Table                                                                  */
/* ===================================================================== */

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL | METH_KEYWORDS, doc}
/* _gemm_variant(variant, a, b) -> a @ b computed by one step of the matmul
 * lesson (2-D float tensors of one dtype), for notebook 04 and tests. */
static PyObject *f__gemm_variant(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"variant", "a", "b"};
    PyObject *a[3];
    if (tgpy_args("_gemm_variant", args, nargs, kw, names, 3, 3, a)) return NULL;
    if (!a[0] || !a[1] || !a[2] || !tgpy_is_tensor(a[1]) || !tgpy_is_tensor(a[2])) {
        PyErr_SetString(PyExc_TypeError, "_gemm_variant(variant: int or name, a: Tensor, b: Tensor)");
        return NULL;
    }
    int v = -1;
    if (PyUnicode_Check(a[0])) {
        const char *nm = tgpy_utf8(a[0]);
        if (!nm) return NULL;
        for (int i = 0; i < TG_GEMM_N_VARIANTS; i++)
            if (!strcmp(nm, tg_gemm_variant_name((tg_gemm_variant)i))) v = i;
    } else {
        long lv = PyLong_AsLong(a[0]);
        if (lv == -1 && PyErr_Occurred()) return NULL;
        v = lv >= 0 && lv < TG_GEMM_N_VARIANTS ? (int)lv : -1; /* (int) of 2**32 was variant 0 */
    }
    if (v < 0 || v >= TG_GEMM_N_VARIANTS) {
        PyErr_Format(PyExc_ValueError, "_gemm_variant: unknown variant %R", a[0]);
        return NULL;
    }
    tg_tensor *A = TENSOR(a[1]), *B = TENSOR(a[2]);
    if (A->ndim != 2 || B->ndim != 2 || A->shape[1] != B->shape[0] || A->dtype != B->dtype ||
        A->dtype == TG_INT64) {
        PyErr_Format(PyExc_ValueError,
                     "_gemm_variant: needs two 2-D float tensors of one dtype with aligned inner "
                     "dims, got shapes (%lld, %lld) and (%lld, %lld)",
                     (long long)A->shape[0], (long long)(A->ndim > 1 ? A->shape[1] : 0),
                     (long long)B->shape[0], (long long)(B->ndim > 1 ? B->shape[1] : 0));
        return NULL;
    }
    int64_t M = A->shape[0], K = A->shape[1], N = B->shape[1], shape[2] = {M, N};
    tg_tensor *C = tg_tensor_zeros(2, shape, A->dtype);
    if (!C) return tgpy_raise();
    Py_BEGIN_ALLOW_THREADS
    if (A->dtype == TG_FLOAT32)
        tg_gemm_variant_f32((tg_gemm_variant)v, M, N, K, 1.0f, tg_tensor_data(A), A->strides[0],
                            A->strides[1], tg_tensor_data(B), B->strides[0], B->strides[1], 0.0f,
                            tg_tensor_data(C), N, 1);
    else
        tg_gemm_variant_f64((tg_gemm_variant)v, M, N, K, 1.0, tg_tensor_data(A), A->strides[0],
                            A->strides[1], tg_tensor_data(B), B->strides[0], B->strides[1], 0.0,
                            tg_tensor_data(C), N, 1);
    Py_END_ALLOW_THREADS
    return tgpy_wrap(C);
}

static PyObject *f_gemm_variants(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    PyObject *r = PyList_New(TG_GEMM_N_VARIANTS);
    for (int i = 0; r && i < TG_GEMM_N_VARIANTS; i++)
        PyList_SET_ITEM(r, i, PyUnicode_FromString(tg_gemm_variant_name((tg_gemm_variant)i)));
    return r;
}

PyMethodDef tgpy_nn_methods[] = {
    {"_gemm_variant", (PyCFunction)(void (*)(void))f__gemm_variant, METH_FASTCALL | METH_KEYWORDS,
     "_gemm_variant(variant, a, b)\n\na @ b by one step of the matmul lesson (see gemm_variants())."},
    {"gemm_variants", (PyCFunction)(void (*)(void))f_gemm_variants, METH_FASTCALL | METH_KEYWORDS,
     "gemm_variants()\n\nThe steps of the matmul lesson, from the naive loop to the threaded kernel."},
    F(linear, "linear(input, weight, bias=None)\n\n"
              "input @ weight.T + bias, as torch.nn.functional.linear: input (..., in_features),\n"
              "weight (out_features, in_features), bias (out_features,) or None. One tape entry\n"
              "(not three), and the weight's gradient comes out in the weight's own layout.\n\n"
              ">>> import tapegrad as tg\n"
              ">>> tg.nn.functional.linear(tg.ones(2, 3), tg.ones(4, 3), tg.zeros(4)).shape\n"
              "(2, 4)"),
    F(conv2d, "conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)\n\n"
              "2-D convolution (cross-correlation, as torch.nn.functional.conv2d) of input\n"
              "(N, C, H, W) with weight (O, C/groups, kH, kW) and an optional bias (O,). stride,\n"
              "dilation: an int or an (h, w) pair; padding: an int, an (h, w) pair, 'valid', 'same'\n"
              "(stride 1; an odd total puts the extra row/column after) or four ints (left, right,\n"
              "top, bottom) as F.pad orders them. groups splits the channels into independent\n"
              "convolutions. Differentiable in all three, to any order.\n\n"
              ">>> import tapegrad as tg\n"
              ">>> tg.nn.functional.conv2d(tg.ones(1, 1, 5, 5), tg.ones(2, 1, 3, 3), padding=1).shape\n"
              "(1, 2, 5, 5)\n"
              ">>> tg.nn.functional.conv2d(tg.ones(1, 4, 6, 6), tg.ones(4, 2, 3, 3), dilation=2, groups=2).shape\n"
              "(1, 4, 2, 2)"),
    F(conv1d, "conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)\n\n"
              "1-D convolution of input (N, C, L) with weight (O, C/groups, kL), as\n"
              "torch.nn.functional.conv1d (padding: an int, 'valid' or 'same'); conv2d on H = 1.\n\n"
              ">>> import tapegrad as tg\n"
              ">>> tg.nn.functional.conv1d(tg.ones(2, 3, 10), tg.ones(4, 3, 3), padding='same').shape\n"
              "(2, 4, 10)"),
    F(conv_transpose2d, "conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1)\n\n"
                        "Transposed convolution, as torch.nn.functional.conv_transpose2d: input\n"
                        "(N, C_in, H, W), weight (C_in, C_out/groups, kH, kW), output height\n"
                        "(H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1\n"
                        "(output_padding below the stride). It is the gradient of conv2d for its input.\n\n"
                        ">>> import tapegrad as tg\n"
                        ">>> tg.nn.functional.conv_transpose2d(tg.ones(1, 2, 3, 3), tg.ones(2, 5, 2, 2), stride=2).shape\n"
                        "(1, 5, 6, 6)"),
    F(max_pool2d, "max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False)\n\n"
                  "2-D max pooling of (N, C, H, W), as torch.nn.functional.max_pool2d; stride defaults\n"
                  "to kernel_size; padding is -inf and at most half the (dilated) kernel. The gradient\n"
                  "goes to the first maximum of a window. return_indices=True also returns the int64\n"
                  "flat positions h*W + w of the maxima in each plane (for max_unpool2d).\n\n"
                  ">>> import tapegrad as tg\n"
                  ">>> tg.nn.functional.max_pool2d(tg.ones(1, 1, 4, 4), 2).shape\n(1, 1, 2, 2)\n"
                  ">>> tg.nn.functional.max_pool2d(tg.ones(1, 1, 5, 5), 2, ceil_mode=True).shape\n(1, 1, 3, 3)"),
    F(avg_pool2d, "avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)\n\n"
                  "2-D average pooling of (N, C, H, W), as torch.nn.functional.avg_pool2d: padding\n"
                  "counts as zeros in the average unless count_include_pad=False (then each window\n"
                  "divides by its number of inputs); divisor_override replaces the divisor.\n\n"
                  ">>> import tapegrad as tg\n"
                  ">>> tg.nn.functional.avg_pool2d(tg.ones(1, 1, 4, 4), 2).tolist()\n"
                  "[[[[1.0, 1.0], [1.0, 1.0]]]]"),
    F(max_unpool2d, "max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None)\n\n"
                    "The partial inverse of max_pool2d, as torch.nn.functional.max_unpool2d: each value\n"
                    "of input goes to its flat position in indices (from max_pool2d(...,\n"
                    "return_indices=True)), zeros elsewhere; positions that repeat add up. Output\n"
                    "size (h - 1)*stride - 2*padding + kernel_size unless output_size is given.\n\n"
                    ">>> import tapegrad as tg\n"
                    ">>> F = tg.nn.functional\n"
                    ">>> y, i = F.max_pool2d(tg.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)\n"
                    ">>> F.max_unpool2d(y, i, 2).tolist()[0][0][1]\n"
                    "[0.0, 5.0, 0.0, 7.0]"),
    F(interpolate, "interpolate(input, size=None, scale_factor=None, mode='nearest', align_corners=None, recompute_scale_factor=None, antialias=False)\n\n"
                   "Resample (N, C, L) or (N, C, H, W) to size (or floor(size * scale_factor)), as\n"
                   "torch.nn.functional.interpolate with its index rules: mode 'nearest',\n"
                   "'nearest-exact', 'linear' (3-D), 'bilinear' (4-D) with align_corners, or 'area'\n"
                   "(adaptive average pooling).\n"
                   "Made of index_select, mul and add, so every order of gradient works.\n\n"
                   ">>> import tapegrad as tg\n"
                   ">>> tg.nn.functional.interpolate(tg.tensor([[[1.0, 2.0]]]), scale_factor=2, mode='linear').tolist()\n"
                   "[[[1.0, 1.25, 1.75, 2.0]]]"),
    F(adaptive_avg_pool2d, "adaptive_avg_pool2d(input, output_size)\n\n"
                           "Average pooling of (N, C, H, W) to output_size (an int, a pair; None keeps a\n"
                           "size) with PyTorch's windows [floor(i*H/OH), ceil((i+1)*H/OH)).\n\n"
                           ">>> import tapegrad as tg\n"
                           ">>> tg.nn.functional.adaptive_avg_pool2d(tg.ones(2, 3, 7, 5), 1).shape\n"
                           "(2, 3, 1, 1)"),
    F(_sgd_step, "_sgd_step(params, grads, bufs, lr, momentum, dampening, weight_decay, nesterov, first_step)\n\n"
                 "One fused torch.optim.SGD step over lists of Tensors (in place; grads[i] None\n"
                 "skips parameter i; bufs None when momentum == 0)."),
    F(_adam_step, "_adam_step(params, grads, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled)\n\n"
                  "One fused Adam (decoupled=False) or AdamW (decoupled=True) step; step counts from 1."),
    F(_rmsprop_step, "_rmsprop_step(params, grads, square_avg, momentum_buf, lr, alpha, eps, weight_decay, momentum)\n\n"
                     "One fused torch.optim.RMSprop step (not centered); momentum_buf None when momentum == 0."),
    F(_clip_grad_norm, "_clip_grad_norm(grads, max_norm, norm_type=2.0)\n\n"
                       "Scale the gradients in place to a total norm of at most max_norm, like\n"
                       "torch.nn.utils.clip_grad_norm_; returns the total norm before clipping."),
    {NULL}};
#undef F
