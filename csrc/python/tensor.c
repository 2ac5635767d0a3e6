/*
 * tensor.c -- the tapegrad.Tensor type and its lifetime, its attributes, the
 * methods bound by hand (ops with unusual signatures, conversions, autograd)
 * and the same ops as module functions.  Its operators are in number.c,
 * indexing in index.c, the buffer protocol in buffer.c, and the methods
 * generated from the op registry in opbind.c.
 *
 * Hot paths (operators, methods) reach C through METH_FASTCALL and the
 * number protocol with no Python wrapper in between.
 */
#include "common.h"

#include <string.h>


/* ===================================================================== */
/* Lifetime                                                               */
/* ===================================================================== */

static int tensor_traverse(TensorObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    if (self->t && self->t->user_data) Py_VISIT(((TensorData *)self->t->user_data)->hooks);
    return 0;
}

static int tensor_clear(TensorObject *self) {
    if (self->t && self->t->user_data) Py_CLEAR(((TensorData *)self->t->user_data)->hooks);
    return 0;
}

static void tensor_dealloc(TensorObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakrefs) PyObject_ClearWeakRefs((PyObject *)self);
    if (self->t) {
        TensorData *d = self->t->user_data;
        if (d && d->wrapper == self) d->wrapper = NULL;
        tg_tensor_release(self->t);
        self->t = NULL;
    }
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Tensor(data, dtype=None, requires_grad=False): same as tg.tensor. */
static PyObject *tensor_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"data", "dtype", "requires_grad", NULL};
    PyObject *data, *dtype = Py_None;
    int rg = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Op:Tensor", kw, &data, &dtype, &rg)) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(dtype, TG_FLOAT32, &dt)) return NULL;
    tg_tensor *t = tgpy_new_tensor(data, dtype != Py_None, dt);
    if (!t) return NULL;
    if (rg && tg_tensor_set_requires_grad(t, true)) {
        tg_tensor_release(t);
        return tgpy_raise();
    }
    if (tp == tgpy_state->Tensor) return W(t);
    /* a Python subclass (nn.Parameter): the new object is the wrapper */
    TensorData *d = tgpy_data(t);
    TensorObject *o = d ? (TensorObject *)tp->tp_alloc(tp, 0) : NULL;
    if (!o) {
        tg_tensor_release(t);
        return NULL;
    }
    o->t = t;
    d->wrapper = o;
    return (PyObject *)o;
}

/* ===================================================================== */
/* Attributes                                                             */
/* ===================================================================== */

static PyObject *shape_tuple(int nd, const int64_t *s) {
    PyObject *r = PyTuple_New(nd);
    if (!r) return NULL;
    for (int i = 0; i < nd; i++) PyTuple_SET_ITEM(r, i, PyLong_FromLongLong(s[i]));
    return r;
}

static PyObject *get_shape(TensorObject *s, void *c) { return shape_tuple(s->t->ndim, s->t->shape); }
static PyObject *get_ndim(TensorObject *s, void *c) { return PyLong_FromLong(s->t->ndim); }
static PyObject *get_size(TensorObject *s, void *c) { return PyLong_FromLongLong(s->t->numel); }
static PyObject *get_itemsize(TensorObject *s, void *c) {
    return PyLong_FromSize_t(tg_dtype_size(s->t->dtype));
}
static PyObject *get_nbytes(TensorObject *s, void *c) {
    return PyLong_FromLongLong(s->t->numel * (int64_t)tg_dtype_size(s->t->dtype));
}
static PyObject *get_dtype(TensorObject *s, void *c) {
    PyObject *d = tgpy_dtype_object(s->t->dtype);
    Py_INCREF(d);
    return d;
}
static PyObject *get_strides(TensorObject *s, void *c) {
    int64_t b[TG_MAX_DIMS];
    for (int i = 0; i < s->t->ndim; i++) b[i] = s->t->strides[i] * (int64_t)tg_dtype_size(s->t->dtype);
    return shape_tuple(s->t->ndim, b);
}
static PyObject *get_T(TensorObject *s, void *c) {
    int64_t perm[TG_MAX_DIMS];
    for (int i = 0; i < s->t->ndim; i++) perm[i] = s->t->ndim - 1 - i;
    return W(tg_permute(s->t, perm));
}
static PyObject *get_mT(TensorObject *s, void *c) { return W(tg_transpose(s->t, -1, -2)); }
static PyObject *get_requires_grad(TensorObject *s, void *c) { return PyBool_FromLong(s->t->requires_grad); }
static int set_requires_grad(TensorObject *s, PyObject *v, void *c) {
    if (!v) {
        PyErr_SetString(PyExc_AttributeError, "requires_grad cannot be deleted");
        return -1;
    }
    int b = PyObject_IsTrue(v);
    if (b < 0) return -1;
    if (tg_tensor_set_requires_grad(s->t, b)) {
        tgpy_raise();
        return -1;
    }
    return 0;
}
static PyObject *get_grad(TensorObject *s, void *c) { return tgpy_wrap_borrowed(s->t->grad); }
static int set_grad(TensorObject *s, PyObject *v, void *c) {
    if (!v || v == Py_None) {
        tg_tensor_set_grad(s->t, NULL);
        return 0;
    }
    tg_tensor *g = tgpy_as_tensor(v, s->t);
    if (!g) return -1;
    tg_status st = tg_tensor_set_grad(s->t, g);
    tg_tensor_release(g);
    if (st) {
        tgpy_raise();
        return -1;
    }
    return 0;
}
PyObject *tgpy_entry_wrap(tg_entry *e); /* autograd.c */
static PyObject *get_grad_fn(TensorObject *s, void *c) {
    if (!s->t->grad_fn) Py_RETURN_NONE;
    return tgpy_entry_wrap(s->t->grad_fn);
}
static PyObject *get_is_leaf(TensorObject *s, void *c) { return PyBool_FromLong(s->t->grad_fn == NULL); }
static PyObject *get_name(TensorObject *s, void *c) {
    if (!s->t->name) Py_RETURN_NONE;
    return PyUnicode_FromString(s->t->name);
}
static int set_name(TensorObject *s, PyObject *v, void *c) {
    if (!v || v == Py_None) {
        tg_tensor_set_name(s->t, NULL);
        return 0;
    }
    const char *n = tgpy_utf8(v);
    if (!n) return -1;
    if (tg_tensor_set_name(s->t, n)) {
        tgpy_raise();
        return -1;
    }
    return 0;
}
static PyObject *get_data(TensorObject *s, void *c) { return W(tg_tensor_detach(s->t)); }
static PyObject *get_version(TensorObject *s, void *c) {
    return PyLong_FromUnsignedLongLong(s->t->storage->version);
}
static PyObject *get_id(TensorObject *s, void *c) { return PyLong_FromUnsignedLongLong(s->t->id); }
static PyObject *get_retains_grad(TensorObject *s, void *c) { return PyBool_FromLong(s->t->retains_grad); }
static PyObject *get_is_contiguous(TensorObject *s, void *c) {
    return PyBool_FromLong(tg_tensor_is_contiguous(s->t));
}
static PyObject *get_data_ptr(TensorObject *s, void *c) {
    return PyLong_FromVoidPtr(tg_tensor_data(s->t));
}
static PyObject *get_readonly(TensorObject *s, void *c) { return PyBool_FromLong(s->t->storage->readonly); }

static PyGetSetDef tensor_getset[] = {
    {"shape", (getter)get_shape, NULL, "The size of each dimension, a tuple.", NULL},
    {"ndim", (getter)get_ndim, NULL, "Number of dimensions.", NULL},
    {"size", (getter)get_size, NULL, "Number of elements (NumPy's size).", NULL},
    {"itemsize", (getter)get_itemsize, NULL, "Bytes per element.", NULL},
    {"nbytes", (getter)get_nbytes, NULL, "Bytes of the elements.", NULL},
    {"dtype", (getter)get_dtype, NULL, "The element type: tg.float32, tg.float64 or tg.int64 (NumPy dtypes).", NULL},
    {"strides", (getter)get_strides, NULL, "Bytes to step in each dimension (as NumPy).", NULL},
    {"T", (getter)get_T, NULL, "The tensor with its axes reversed (a view).", NULL},
    {"mT", (getter)get_mT, NULL, "The last two axes swapped (a view).", NULL},
    {"requires_grad", (getter)get_requires_grad, (setter)set_requires_grad,
     "Whether operations on this tensor are recorded on the tape so that backward computes its gradient.\n"
     "Settable on leaves (tensors not produced by an op).", NULL},
    {"grad", (getter)get_grad, (setter)set_grad,
     "The gradient accumulated by backward() (None before). Assign None to reset it.", NULL},
    {"grad_fn", (getter)get_grad_fn, NULL,
     "The tape entry that produced this tensor (op name and sequence number), None for leaves.", NULL},
    {"is_leaf", (getter)get_is_leaf, NULL, "True if the tensor was not produced by a recorded op.", NULL},
    {"name", (getter)get_name, (setter)set_name, "A name shown on the tape and in drawings (e.g. 'fc1.weight').", NULL},
    {"data", (getter)get_data, NULL, "The same memory as a tensor that does not require grad.", NULL},
    {"retains_grad", (getter)get_retains_grad, NULL, "True after retain_grad() on a non-leaf.", NULL},
    {"is_contiguous", (getter)get_is_contiguous, NULL, "True if the elements are laid out in C order.", NULL},
    {"data_ptr", (getter)get_data_ptr, NULL, "Address of the first element.", NULL},
    {"readonly", (getter)get_readonly, NULL, "True if the memory is read-only (e.g. a read-only NumPy array).", NULL},
    {"_version", (getter)get_version, NULL, "Counter of in-place writes to the storage.", NULL},
    {"_id", (getter)get_id, NULL, "Unique id of the tensor (for display).", NULL},
    {NULL}};

/* ===================================================================== */
/* Methods                                                                */
/* ===================================================================== */

#define METHOD(name) static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* Re-raise the pending exception (a bad argument) with the op's name in
 * front, so that every error names the op: "softmax: 'str' object cannot be
 * interpreted as an integer".  Returns NULL. */
static PyObject *named(const char *fname) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *m = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!m || !t) {
        PyErr_Clear();
        PyErr_Restore(t, v, tb);
        Py_XDECREF(s);
        return NULL;
    }
    size_t n = strlen(fname);
    if (!strncmp(m, fname, n) && m[n] == ':') {
        PyErr_Restore(t, v, tb);
    } else {
        PyErr_Format(t, "%s: %s", fname, m);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    Py_DECREF(s);
    return NULL;
}

METHOD(leaky_relu) {
    ARGS("leaky_relu", 1, 1, "negative_slope")
    double s = a[0] ? PyFloat_AsDouble(a[0]) : 0.01;
    if (s == -1.0 && PyErr_Occurred()) return named("leaky_relu");
    return W(tg_leaky_relu(TENSOR(self), s));
}

static int opt_double(PyObject *o, double deflt, double *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    *out = PyFloat_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

METHOD(clip) {
    ARGS("clip", 2, 2, "min", "max")
    double lo, hi;
    if (opt_double(a[0], -INFINITY, &lo) || opt_double(a[1], INFINITY, &hi)) return named("clip");
    return W(tg_clip(TENSOR(self), lo, hi));
}

/* Reductions: axis=None (alias dim), keepdims=False (alias keepdim); sum,
 * prod and mean also take dtype= (NumPy and PyTorch): the input is converted
 * to it first (differentiable between floats). */
PyObject *tgpy_reduction(PyObject *self, const char *fname, tgpy_redfn f, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"axis", "keepdims", "dim", "keepdim", "dtype"};
    PyObject *a[5];
    if (tgpy_args(fname, args, nargs, kw, names, 5, 2, a)) return NULL;
    PyObject *ax = a[0] ? a[0] : a[2];
    int keep = tgpy_bool(a[1] ? a[1] : a[3], 0);
    if (keep < 0) return NULL;
    int64_t axes[TG_MAX_DIMS];
    int na;
    if (tgpy_axes(ax, axes, &na)) return named(fname);
    if (!a[4] || a[4] == Py_None)
        return W(f(TENSOR(self), na < 0 ? NULL : axes, na < 0 ? 0 : na, keep));
    if (strcmp(fname, "sum") && strcmp(fname, "prod") && strcmp(fname, "mean")) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument 'dtype'", fname);
        return NULL;
    }
    tg_dtype dt;
    if (tgpy_parse_dtype(a[4], TENSOR(self)->dtype, &dt)) return named(fname);
    tg_tensor *c = tg_cast(TENSOR(self), dt);
    tg_tensor *r = c ? f(c, na < 0 ? NULL : axes, na < 0 ? 0 : na, keep) : NULL;
    tg_tensor_release(c);
    return W(r);
}
/* NumPy's rule: the mean, variance and standard deviation of integers are
 * float64 ((pred == labels).mean() is an accuracy).  Ints never require grad,
 * so the conversion is not recorded. */
static tg_tensor *float_of(tg_tensor *x) {
    if (tg_dtype_is_float(x->dtype)) {
        tg_tensor_retain(x);
        return x;
    }
    return tg_cast(x, TG_FLOAT64);
}
static tg_tensor *mean_any(tg_tensor *x, const int64_t *axes, int naxes, bool keep) {
    tg_tensor *f = float_of(x);
    tg_tensor *r = f ? tg_mean(f, axes, naxes, keep) : NULL;
    tg_tensor_release(f);
    return r;
}
METHOD(mean) { return tgpy_reduction(self, "mean", mean_any, args, nargs, kw); }

static PyObject *arg_ext(PyObject *self, const char *fname, tg_tensor *(*f)(tg_tensor *, int64_t, bool),
                         PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"axis", "keepdims", "dim", "keepdim"};
    PyObject *a[4];
    if (tgpy_args(fname, args, nargs, kw, names, 4, 2, a)) return NULL;
    PyObject *ax = a[0] ? a[0] : a[2];
    int keep = tgpy_bool(a[1] ? a[1] : a[3], 0);
    if (keep < 0) return NULL;
    int64_t axis = TG_AXIS_NONE;
    if (ax && ax != Py_None) {
        axis = PyLong_AsLongLong(ax);
        if (axis == -1 && PyErr_Occurred()) return named(fname);
    }
    return W(f(TENSOR(self), axis, keep));
}
METHOD(argmax) { return arg_ext(self, "argmax", tg_argmax, args, nargs, kw); }
METHOD(argmin) { return arg_ext(self, "argmin", tg_argmin, args, nargs, kw); }

METHOD(reshape) {
    if (kw) {
        PyErr_SetString(PyExc_TypeError, "reshape() takes the shape as positional arguments");
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape("reshape", args, nargs, shape, &nd)) return NULL;
    return W(tg_reshape(TENSOR(self), nd, shape));
}

METHOD(broadcast_to) {
    if (kw || nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "broadcast_to() takes a shape");
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape("broadcast_to", args, nargs, shape, &nd)) return NULL;
    /* torch's expand: -1 keeps the size */
    tg_tensor *t = TENSOR(self);
    for (int i = 0; i < nd; i++) {
        int j = t->ndim - nd + i;
        if (shape[i] == -1 && j >= 0) shape[i] = t->shape[j];
    }
    return W(tg_broadcast_to(t, nd, shape));
}

METHOD(permute) {
    int64_t axes[TG_MAX_DIMS];
    int nd;
    if (kw) {
        PyErr_SetString(PyExc_TypeError, "permute() takes the axes as positional arguments");
        return NULL;
    }
    if (tgpy_shape("permute", args, nargs, axes, &nd)) return NULL;
    if (nd != TENSOR(self)->ndim) {
        PyErr_Format(PyExc_ValueError, "permute: %d axes given for a tensor with %d dimensions", nd,
                     TENSOR(self)->ndim);
        return NULL;
    }
    return W(tg_permute(TENSOR(self), axes));
}

/* NumPy's transpose: no axes reverses them; otherwise a full permutation. */
METHOD(transpose) {
    tg_tensor *t = TENSOR(self);
    if (kw) {
        PyErr_SetString(PyExc_TypeError, "transpose() takes the axes as positional arguments");
        return NULL;
    }
    if (nargs == 0 || (nargs == 1 && args[0] == Py_None)) return get_T((TensorObject *)self, NULL);
    int64_t axes[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape("transpose", args, nargs, axes, &nd)) return NULL;
    if (nd != t->ndim) {
        PyErr_Format(PyExc_ValueError,
                     "transpose: axes don't match the tensor: %d axes for %d dimensions (NumPy's "
                     "rule: give all axes; to swap two axes use swapaxes(a, b))",
                     nd, t->ndim);
        return NULL;
    }
    /* t.transpose(0, 1) on a matrix: NumPy's identity permutation, but PyTorch's
     * swap -- the one call a ported script gets silently wrong, so say so */
    if (nargs == 2 && nd == 2 && (axes[0] == 0 || axes[0] == -2) && (axes[1] == 1 || axes[1] == -1) &&
        PyErr_WarnEx(PyExc_UserWarning,
                     "transpose(0, 1) of a 2-D tensor is NumPy's transpose: it permutes the "
                     "axes into the order given, which changes nothing here (PyTorch's "
                     "transpose(0, 1) swaps them: use swapaxes(0, 1) or .T)",
                     1) < 0)
        return NULL;
    return W(tg_permute(t, axes));
}

METHOD(swapaxes) {
    ARGS("swapaxes", 2, 2, "axis1", "axis2")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "swapaxes() needs two axes");
        return NULL;
    }
    long long x = PyLong_AsLongLong(a[0]);
    long long y = PyErr_Occurred() ? 0 : PyLong_AsLongLong(a[1]);
    if (PyErr_Occurred()) return named("swapaxes");
    return W(tg_transpose(TENSOR(self), x, y));
}

METHOD(squeeze) {
    ARGS("squeeze", 2, 1, "axis", "dim")
    int64_t axes[TG_MAX_DIMS];
    int na;
    if (tgpy_axes(a[0] ? a[0] : a[1], axes, &na)) return named("squeeze");
    return W(tg_squeeze(TENSOR(self), na < 0 ? NULL : axes, na < 0 ? 0 : na));
}

METHOD(unsqueeze) {
    ARGS("unsqueeze", 2, 1, "axis", "dim")
    PyObject *o = a[0] ? a[0] : a[1];
    if (!o) {
        PyErr_SetString(PyExc_TypeError, "unsqueeze() missing argument 'axis'");
        return NULL;
    }
    long long ax = PyLong_AsLongLong(o);
    if (ax == -1 && PyErr_Occurred()) return named("unsqueeze");
    return W(tg_unsqueeze(TENSOR(self), ax));
}

METHOD(flatten) {
    ARGS("flatten", 4, 2, "start_axis", "end_axis", "start_dim", "end_dim") /* PyTorch's names too */
    for (int i = 0; i < 2; i++) {
        if (a[i] && a[i + 2]) {
            PyErr_Format(PyExc_TypeError, "flatten() got both '%s' and its alias '%s'", i ? "end_axis" : "start_axis",
                         i ? "end_dim" : "start_dim");
            return NULL;
        }
        if (!a[i]) a[i] = a[i + 2];
    }
    long long s = a[0] ? PyLong_AsLongLong(a[0]) : 0;
    long long e = (a[1] && !PyErr_Occurred()) ? PyLong_AsLongLong(a[1]) : -1;
    if (PyErr_Occurred()) return named("flatten");
    return W(tg_flatten(TENSOR(self), s, e));
}

METHOD(astype) {
    ARGS("astype", 1, 1, "dtype")
    tg_dtype dt;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "astype() missing argument 'dtype'");
        return NULL;
    }
    if (tgpy_parse_dtype(a[0], TG_FLOAT32, &dt)) return NULL;
    return W(tg_cast(TENSOR(self), dt));
}
METHOD(float) { return W(tg_cast(TENSOR(self), TG_FLOAT32)); }
METHOD(double) { return W(tg_cast(TENSOR(self), TG_FLOAT64)); }
METHOD(long) { return W(tg_cast(TENSOR(self), TG_INT64)); }
METHOD(clone) { return W(tg_cast(TENSOR(self), TENSOR(self)->dtype)); }

METHOD(softmax) {
    ARGS("softmax", 2, 1, "axis", "dim")
    PyObject *o = a[0] ? a[0] : a[1];
    long long ax = o ? PyLong_AsLongLong(o) : -1;
    if (ax == -1 && PyErr_Occurred()) return named("softmax");
    return W(tg_softmax(TENSOR(self), ax));
}
METHOD(log_softmax) {
    ARGS("log_softmax", 2, 1, "axis", "dim")
    PyObject *o = a[0] ? a[0] : a[1];
    long long ax = o ? PyLong_AsLongLong(o) : -1;
    if (ax == -1 && PyErr_Occurred()) return named("log_softmax");
    return W(tg_log_softmax(TENSOR(self), ax));
}

static PyObject *index_op(PyObject *self, const char *fname,
                          tg_tensor *(*f)(tg_tensor *, int64_t, tg_tensor *), PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"axis", "index", "dim"}; /* dim: PyTorch's name */
    PyObject *a[3];
    if (tgpy_args(fname, args, nargs, kw, names, 3, 2, a)) return NULL;
    if (a[0] && a[2]) {
        PyErr_Format(PyExc_TypeError, "%s() got both 'axis' and its alias 'dim'", fname);
        return NULL;
    }
    if (!a[0]) a[0] = a[2];
    if (!a[0] || !a[1]) {
        PyErr_Format(PyExc_TypeError, "%s() needs axis and index", fname);
        return NULL;
    }
    long long ax = PyLong_AsLongLong(a[0]);
    if (ax == -1 && PyErr_Occurred()) return named(fname);
    tg_tensor *idx = tgpy_index_array(a[1]);
    if (!idx) return NULL;
    tg_tensor *r = f(TENSOR(self), ax, idx);
    tg_tensor_release(idx);
    return W(r);
}
METHOD(gather) { return index_op(self, "gather", tg_gather, args, nargs, kw); }
METHOD(index_select) { return index_op(self, "index_select", tg_index_select, args, nargs, kw); }

METHOD(detach) { return W(tg_tensor_detach(TENSOR(self))); }

METHOD(numpy) {
    ARGS("numpy", 1, 0, "force")
    if (tgpy_bool(a[0], 0) == 1) {
        PyObject *v = tgpy_to_numpy(TENSOR(self), self);
        if (!v) return NULL;
        PyObject *c = PyArray_NewCopy((PyArrayObject *)v, NPY_CORDER);
        Py_DECREF(v);
        return c;
    }
    return tgpy_to_numpy(TENSOR(self), self);
}

METHOD(__array__) {
    /* NumPy 2's protocol: copy=True always copies, copy=None copies only if
     * needed (a dtype conversion), copy=False never copies (ValueError). */
    ARGS("__array__", 2, 1, "dtype", "copy")
    int copy = -1; /* None */
    if (a[1] && a[1] != Py_None) {
        copy = PyObject_IsTrue(a[1]);
        if (copy < 0) return NULL;
    }
    PyObject *v = tgpy_to_numpy(TENSOR(self), self);
    if (!v) return NULL;
    if (a[0] && a[0] != Py_None) {
        PyArray_Descr *d = NULL;
        if (!PyArray_DescrConverter(a[0], &d)) {
            Py_DECREF(v);
            return NULL;
        }
        if (!PyArray_EquivTypes(d, PyArray_DESCR((PyArrayObject *)v))) {
            if (copy == 0) {
                Py_DECREF(d);
                Py_DECREF(v);
                PyErr_SetString(PyExc_ValueError,
                                "__array__: a copy is needed to convert the tensor to the requested "
                                "dtype, but copy=False was given");
                return NULL;
            }
            PyObject *c = PyArray_CastToType((PyArrayObject *)v, d, 0); /* steals d */
            Py_DECREF(v);
            return c;
        }
        Py_DECREF(d);
    }
    if (copy == 1) {
        PyObject *c = PyArray_NewCopy((PyArrayObject *)v, NPY_CORDER);
        Py_DECREF(v);
        return c;
    }
    return v;
}

METHOD(item) {
    double v;
    if (tg_tensor_item(TENSOR(self), &v)) return tgpy_raise();
    if (TENSOR(self)->dtype == TG_INT64) /* exact, not through the double */
        return PyLong_FromLongLong(*(const int64_t *)tg_tensor_data(TENSOR(self)));
    if (TENSOR(self)->dtype == TG_BOOL) return PyBool_FromLong(v != 0);
    if (!tg_dtype_is_float(TENSOR(self)->dtype)) return PyLong_FromDouble(v); /* int32, uint8: exact */
    return PyFloat_FromDouble(v);
}

METHOD(tolist) {
    PyObject *v = tgpy_to_numpy(TENSOR(self), self);
    if (!v) return NULL;
    PyObject *r = PyArray_ToList((PyArrayObject *)v);
    Py_DECREF(v);
    return r;
}

METHOD(backward) {
    ARGS("backward", 3, 1, "gradient", "retain_graph", "create_graph")
    int create = tgpy_bool(a[2], 0);
    int retain = a[1] && a[1] != Py_None ? PyObject_IsTrue(a[1]) : create;
    if (create < 0 || retain < 0) return NULL;
    tg_tensor *seed = NULL;
    if (a[0] && a[0] != Py_None) {
        seed = tgpy_as_tensor(a[0], TENSOR(self));
        if (!seed) return NULL;
    }
    tg_status st = tg_backward(TENSOR(self), seed,
                               (retain ? TG_RETAIN_GRAPH : 0) | (create ? TG_CREATE_GRAPH : 0));
    tg_tensor_release(seed);
    if (st) return tgpy_raise();
    Py_RETURN_NONE;
}

METHOD(retain_grad) {
    if (tg_tensor_retain_grad(TENSOR(self))) return tgpy_raise();
    Py_RETURN_NONE;
}

METHOD(requires_grad_) {
    ARGS("requires_grad_", 1, 1, "requires_grad")
    int b = tgpy_bool(a[0], 1);
    if (b < 0) return NULL;
    if (tg_tensor_set_requires_grad(TENSOR(self), b)) return tgpy_raise();
    Py_INCREF(self);
    return self;
}

METHOD(fill_) {
    ARGS("fill_", 1, 1, "value")
    double v;
    tg_tensor *x = TENSOR(self);
    long long iv = 0;
    bool exact_int = false;
    if (a[0] && x->dtype == TG_INT64 && PyLong_Check(a[0]) && !PyBool_Check(a[0])) {
        int overflow = 0;
        iv = PyLong_AsLongLongAndOverflow(a[0], &overflow);
        if (iv == -1 && PyErr_Occurred()) return NULL;
        if (overflow) {
            PyErr_Format(PyExc_OverflowError,
                         "fill_: the Python int %R does not fit in the tensor's dtype int64 "
                         "(expected -2**63 <= value < 2**63)",
                         a[0]);
            return NULL;
        }
        exact_int = true;
    }
    if (!a[0] || opt_double(a[0], 0, &v)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "fill_() missing argument 'value'");
        return NULL;
    }
    if (tg_fill_value_(x, v)) return tgpy_raise();
    if (exact_int && x->numel > 0 && (iv > (1LL << 53) || iv < -(1LL << 53))) {
        /* beyond 2**53 the double is not the int: store the exact value */
        tg_tensor *sv = tg_tensor_scalar(0, TG_INT64);
        if (!sv) return tgpy_raise();
        *(int64_t *)tg_tensor_data(sv) = iv;
        tg_status st = tg_tensor_copy_(x, sv);
        tg_tensor_release(sv);
        if (st) return tgpy_raise();
    }
    Py_INCREF(self);
    return self;
}
METHOD(zero_) {
    if (tg_fill_value_(TENSOR(self), 0)) return tgpy_raise();
    Py_INCREF(self);
    return self;
}
METHOD(copy_) {
    ARGS("copy_", 1, 1, "src")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "copy_() missing argument 'src'");
        return NULL;
    }
    tg_tensor *s = tgpy_as_tensor(a[0], TENSOR(self));
    if (!s) return NULL;
    tg_status st = tg_assign_(TENSOR(self), s);
    tg_tensor_release(s);
    if (st) return tgpy_raise();
    Py_INCREF(self);
    return self;
}

METHOD(dim) { return PyLong_FromLong(TENSOR(self)->ndim); }
METHOD(numel) { return PyLong_FromLongLong(TENSOR(self)->numel); }

#define M(name, doc) {#name, (PyCFunction)(void (*)(void))m_##name, METH_FASTCALL | METH_KEYWORDS, doc}
static PyMethodDef tensor_methods[] = {
    {"isclose", (PyCFunction)(void (*)(void))tgpy_m_isclose, METH_FASTCALL | METH_KEYWORDS, /* logicbind.c */
     "isclose(other, rtol=1e-05, atol=1e-08, equal_nan=False)\n\nElementwise |x - other| <= atol + rtol * |other|, as a bool tensor."},
    {"allclose", (PyCFunction)(void (*)(void))tgpy_m_allclose, METH_FASTCALL | METH_KEYWORDS,
     "allclose(other, rtol=1e-05, atol=1e-08, equal_nan=False)\n\nTrue if every element is close (a Python bool)."},
    
    
    
    
    M(leaky_relu, "leaky_relu(negative_slope=0.01)\n\nx if x > 0 else negative_slope * x."),
    
    M(clip, "clip(min=None, max=None)\n\nClamp the values into [min, max]: min(max(x, min), max), so max wins\nwhen min > max (as in NumPy and PyTorch)."),
    
    
    
    
    
    
    M(mean, "mean(axis=None, keepdims=False, dtype=None)\n\nMean over the given axes (all by default); dtype= converts the input first."),
    
    M(argmax, "argmax(axis=None, keepdims=False)\n\nIndex of the maximum (int64, not differentiable)."),
    M(argmin, "argmin(axis=None, keepdims=False)\n\nIndex of the minimum (int64, not differentiable)."),
    M(reshape, "reshape(*shape)\n\nSame elements, new shape (one -1 is inferred); a view when possible."),
    M(broadcast_to, "broadcast_to(*shape)\n\nA stride-0 view repeating size-1 dims (like torch's expand)."),
    M(permute, "permute(*axes)\n\nReorder the axes (a view)."),
    M(transpose, "transpose(*axes)\n\nNumPy's transpose: reverse the axes, or permute them as given."),
    M(swapaxes, "swapaxes(axis1, axis2)\n\nSwap two axes (a view)."),
    M(squeeze, "squeeze(axis=None)\n\nRemove size-1 axes."),
    M(unsqueeze, "unsqueeze(axis)\n\nInsert a size-1 axis."),
    M(flatten, "flatten(start_axis=0, end_axis=-1)\n\nMerge a range of axes into one (aliases start_dim, end_dim)."),
    M(astype, "astype(dtype)\n\nConvert to another dtype (differentiable between floats)."),
    M(float, "float()\n\nConvert to float32."), M(double, "double()\n\nConvert to float64."),
    M(long, "long()\n\nConvert to int64."),
    M(clone, "clone()\n\nA copy that stays on the tape (differentiable)."),
    M(softmax, "softmax(axis=-1)\n\nSoftmax along an axis."),
    M(log_softmax, "log_softmax(axis=-1)\n\nLog-softmax along an axis, computed stably."),
    M(gather, "gather(axis, index)\n\nPick one element per position along axis (torch.gather; alias dim)."),
    M(index_select, "index_select(axis, index)\n\nPick whole slices along axis with an int64 index array (alias dim)."),
    M(detach, "detach()\n\nThe same memory as a new leaf that does not require grad."),
    M(numpy, "numpy(force=False)\n\nA NumPy array sharing this tensor's memory (no copy; it keeps the\n"
             "tensor alive). Works on tensors that require grad too: the array is\nthe values only. "
             "force=True returns a copy."),
    M(__array__, "__array__(dtype=None, copy=None)\n\nNumPy interop: np.asarray(t) shares memory."),
    M(item, "item()\n\nThe value of a one-element tensor as a Python number."),
    M(tolist, "tolist()\n\nThe values as nested Python lists."),
    M(backward, "backward(gradient=None, retain_graph=None, create_graph=False)\n\n"
                "Replay the tape in reverse from this tensor and accumulate gradients into\n"
                "the .grad of every leaf that requires grad. A non-scalar tensor needs an\n"
                "explicit gradient of its shape. The graph's saved tensors are freed unless\n"
                "retain_graph=True; create_graph=True records the backward pass itself so\n"
                "that gradients of gradients can be taken.\n\n"
                ">>> x = tg.tensor([3.0], requires_grad=True)\n>>> (x * x).sum().backward()\n"
                ">>> x.grad.tolist()\n[6.0]"),
    M(retain_grad, "retain_grad()\n\nKeep this non-leaf tensor's gradient in .grad after backward."),
    M(requires_grad_, "requires_grad_(requires_grad=True)\n\nSet requires_grad in place; returns self."),
    M(fill_, "fill_(value)\n\nSet every element (in place; recorded on the tape when the tensor is in the graph)."),
    M(zero_, "zero_()\n\nSet every element to 0 (in place; recorded on the tape when the tensor is in the graph)."),
    M(copy_, "copy_(src)\n\nCopy src (broadcast) into this tensor (in place; recorded on the tape when\nsrc or the tensor is in the graph)."),
    M(dim, "dim()\n\nNumber of dimensions."), M(numel, "numel()\n\nNumber of elements."),
    {NULL}};
#undef M

/* ===================================================================== */
/* The type                                                               */
/* ===================================================================== */

static PyType_Slot tensor_slots[] = {
    {Py_tp_doc, "Tensor(data, dtype=None, requires_grad=False)\n\n"
                "An n-dimensional array that records the operations applied to it on a tape,\n"
                "so that backward() can compute gradients. Create tensors with tg.tensor,\n"
                "tg.from_numpy (zero-copy), tg.zeros, tg.randn, ..."},
    {Py_tp_new, tensor_new},
    {Py_tp_dealloc, tensor_dealloc},
    {Py_tp_traverse, tensor_traverse},
    {Py_tp_clear, tensor_clear},
    {Py_tp_getset, tensor_getset},
    {0, NULL}};

static PyMemberDef tensor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TensorObject, weakrefs), READONLY},
    {NULL}};

/* The methods of Tensor: the ones bound by hand above, then the ones
 * generated from the op registry (opbind.c); one table, built once. */
static PyMethodDef *all_methods(void) {
    static PyMethodDef *all;
    if (all) return all;
    extern PyMethodDef tgpy_shape_methods[]; /* shapeops.c (issue 14, shape) */
    /* the hand-bound tables of each op family's binding file, one line each */
    PyMethodDef *const tables[] = {
        tensor_methods, tgpy_op_methods,
        tgpy_math_methods, /* mathops.c */
        tgpy_scan_methods, /* scanops.c */
        tgpy_shape_methods, /* shapeops.c */
        tgpy_inplace_methods, /* inplacebind.c: add_, mul_, relu_ ... */
    };
    size_t total = 0;
    for (size_t k = 0; k < sizeof tables / sizeof *tables; k++)
        for (size_t i = 0; tables[k][i].ml_name; i++) total++;
    all = PyMem_RawCalloc(total + 1, sizeof *all); /* lives as long as the process */
    if (!all) return (PyMethodDef *)PyErr_NoMemory();
    size_t n = 0;
    for (size_t k = 0; k < sizeof tables / sizeof *tables; k++)
        for (size_t i = 0; tables[k][i].ml_name; i++) all[n++] = tables[k][i];
    return all;
}

int tgpy_tensor_type_init(PyObject *m, ModState *st) {
    PyMethodDef *methods = all_methods();
    if (!methods) return -1;
    /* the type's own slots, then the protocols of number.c, index.c, buffer.c */
    const PyType_Slot *parts[] = {tensor_slots, tgpy_number_slots, tgpy_index_slots, tgpy_buffer_slots};
    PyType_Slot slots[64]; /* 32 today; the check below keeps it honest */
    size_t n = 0;
    for (size_t k = 0; k < sizeof parts / sizeof *parts; k++)
        for (const PyType_Slot *sl = parts[k]; sl->slot; sl++) {
            if (n + 3 > sizeof slots / sizeof *slots) {
                PyErr_SetString(PyExc_SystemError, "Tensor: too many type slots");
                return -1;
            }
            slots[n++] = *sl;
        }
    slots[n++] = (PyType_Slot){Py_tp_methods, methods};
    slots[n++] = (PyType_Slot){Py_tp_members, tensor_members};
    slots[n] = (PyType_Slot){0, NULL};
    PyType_Spec spec = {"tapegrad.Tensor", sizeof(TensorObject), 0,
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, slots};
    st->Tensor = (PyTypeObject *)PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!st->Tensor) return -1;
    if (PyModule_AddObjectRef(m, "Tensor", (PyObject *)st->Tensor) < 0) return -1;
    return 0;
}

/* ===================================================================== */
/* Module functions: the same ops with the tensor as first argument       */
/* ===================================================================== */

/* Call method impl `f` with args[0] converted to a Tensor object. */
PyObject *tgpy_as_function(const char *fname, tgpy_methodfn f, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kw) {
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing its tensor argument", fname);
        return NULL;
    }
    PyObject *x = args[0];
    if (tgpy_is_tensor(x)) return tgpy_named(fname, f(x, args + 1, nargs - 1, kw));
    tg_tensor *t = tgpy_as_tensor(x, NULL);
    if (!t) return tgpy_named(fname, NULL);
    PyObject *xo = W(t);
    if (!xo) return NULL;
    PyObject *r = f(xo, args + 1, nargs - 1, kw);
    Py_DECREF(xo);
    return tgpy_named(fname, r);
}

#define FN(name)                                                                      \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, \
                               PyObject *kw) {                                        \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                         \
    }
FN(leaky_relu) FN(clip) FN(mean) FN(argmax) FN(argmin) FN(reshape)
FN(broadcast_to) FN(permute) FN(transpose) FN(swapaxes) FN(squeeze) FN(unsqueeze) FN(flatten)
FN(softmax) FN(log_softmax) FN(gather) FN(index_select) FN(detach)

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))fn_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_op_functions[] = {
    
    
    F(leaky_relu, "leaky_relu(x, negative_slope=0.01)"),
    F(clip, "clip(x, min=None, max=None)"),
    F(mean, "mean(x, axis=None, keepdims=False, dtype=None)"), 
    F(argmax, "argmax(x, axis=None, keepdims=False)"), F(argmin, "argmin(x, axis=None, keepdims=False)"),
    F(reshape, "reshape(x, *shape)"), F(broadcast_to, "broadcast_to(x, shape)"),
    F(permute, "permute(x, *axes)"), F(transpose, "transpose(x, *axes)"),
    F(swapaxes, "swapaxes(x, axis1, axis2)"), F(squeeze, "squeeze(x, axis=None)"),
    F(unsqueeze, "unsqueeze(x, axis)"), F(flatten, "flatten(x, start_axis=0, end_axis=-1)"),
    F(softmax, "softmax(x, axis=-1)"),
    F(log_softmax, "log_softmax(x, axis=-1)"), F(gather, "gather(x, axis, index)"),
    F(index_select, "index_select(x, axis, index)"), F(detach, "detach(x)"),
    
    
    
    {NULL}};
#undef F
