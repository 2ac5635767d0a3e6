/*
 * shapeops.c -- the Python face of the shape and indexing ops of
 * csrc/ops/shape.c (issue 14), and the functions that return several
 * tensors (split, chunk, unbind, array_split: tuples of recorded slices;
 * nonzero(as_tuple=True) and where(condition)).
 *
 * Every op is both a module function (tg.flip(x, ...)) and a Tensor method
 * (x.flip(...)); PyTorch's argument names are accepted next to NumPy's
 * (axis/dim/dims, k/diagonal, axis1/dim1, shift/shifts).
 */
#include "common.h"

#include <string.h>

#define METHOD(name) static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* The first of two aliases that was given (NULL if neither); both given is
 * a TypeError naming the op. */
static int alias(const char *fname, PyObject *x, PyObject *y, const char *nx, const char *ny, PyObject **out) {
    if (x && y) {
        PyErr_Format(PyExc_TypeError, "%s() got both '%s' and its alias '%s'", fname, nx, ny);
        return -1;
    }
    *out = x ? x : y;
    return 0;
}

/* An integer argument (None or absent: deflt). */
static int int_arg(const char *fname, const char *what, PyObject *o, long long deflt, long long *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    if (PyBool_Check(o) || PyFloat_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an integer, got %s", fname, what, Py_TYPE(o)->tp_name);
        return -1;
    }
    PyObject *i = PyNumber_Index(o);
    if (!i) return -1;
    *out = PyLong_AsLongLong(i);
    Py_DECREF(i);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%s: %s is out of range for int64", fname, what);
        return -1;
    }
    return 0;
}

/* An int or a sequence of ints (a Tensor or array of integers too) into a
 * NEW PyMem buffer (*n values).  NULL with an exception naming the op. */
static int64_t *int_list(const char *fname, const char *what, PyObject *o, Py_ssize_t *n, int *was_scalar) {
    if (was_scalar) *was_scalar = 0;
    if (PyIndex_Check(o) && !PyBool_Check(o) && !tgpy_is_tensor(o)) {
        int64_t *v = PyMem_Malloc(sizeof *v);
        long long x;
        if (!v) return (int64_t *)PyErr_NoMemory();
        if (int_arg(fname, what, o, 0, &x)) {
            PyMem_Free(v);
            return NULL;
        }
        *v = x;
        *n = 1;
        if (was_scalar) *was_scalar = 1;
        return v;
    }
    if (tgpy_is_tensor(o) || PyArray_Check(o)) {
        tg_tensor *t = tgpy_as_tensor(o, NULL);
        if (!t) return NULL;
        if (t->dtype != TG_INT64 || t->ndim > 1) {
            PyErr_Format(PyExc_TypeError, "%s: %s must be an int or a 1-D integer sequence, got a %s tensor of shape (%s)",
                         fname, what, tg_dtype_name(t->dtype), t->ndim ? "..." : "");
            tg_tensor_release(t);
            return NULL;
        }
        int64_t *v = PyMem_Malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
        if (!v) {
            tg_tensor_release(t);
            return (int64_t *)PyErr_NoMemory();
        }
        for (int64_t i = 0; i < t->numel; i++) v[i] = (int64_t)tg_tensor_get_flat(t, i);
        if (t->ndim == 0 && was_scalar) *was_scalar = 1;
        *n = t->numel;
        tg_tensor_release(t);
        return v;
    }
    PyObject *f = PySequence_Fast(o, "");
    if (!f) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int or a sequence of ints, got %s", fname, what,
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(f);
    int64_t *v = PyMem_Malloc((size_t)(len ? len : 1) * sizeof *v);
    if (!v) {
        Py_DECREF(f);
        return (int64_t *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        long long x;
        if (int_arg(fname, what, PySequence_Fast_GET_ITEM(f, i), 0, &x)) {
            PyMem_Free(v);
            Py_DECREF(f);
            return NULL;
        }
        v[i] = x;
    }
    Py_DECREF(f);
    *n = len;
    return v;
}

/* An int list that fits in TG_MAX_DIMS (axes, reps). */
static int small_list(const char *fname, const char *what, PyObject *o, int64_t *out, int *n) {
    Py_ssize_t len;
    int64_t *v = int_list(fname, what, o, &len, NULL);
    if (!v) return -1;
    if (len > TG_MAX_DIMS) {
        PyMem_Free(v);
        PyErr_Format(PyExc_ValueError, "%s: %zd values for %s, at most %d", fname, len, what, TG_MAX_DIMS);
        return -1;
    }
    memcpy(out, v, (size_t)len * sizeof *v);
    *n = (int)len;
    PyMem_Free(v);
    return 0;
}

static double num_arg(const char *fname, const char *what, PyObject *o, int *err) {
    double v = 0;
    *err = 0;
    if (tgpy_is_tensor(o)) {
        if (tg_tensor_item(TENSOR(o), &v)) {
            *err = 1;
            tgpy_raise();
        }
        return v;
    }
    v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a number, got %s", fname, what, Py_TYPE(o)->tp_name);
        *err = 1;
    }
    return v;
}

/* ===================================================================== */
/* ops of shape.c                                                         */
/* ===================================================================== */

METHOD(flip) {
    ARGS("flip", 3, 1, "axis", "dims", "dim")
    PyObject *o;
    if (alias("flip", a[0], a[1], "axis", "dims", &o) || alias("flip", o, a[2], "axis", "dim", &o)) return NULL;
    int64_t axes[TG_MAX_DIMS];
    int n = -1;
    if (o && o != Py_None && small_list("flip", "axis", o, axes, &n)) return NULL;
    return W(tg_flip(TENSOR(self), axes, n));
}

METHOD(roll) {
    ARGS("roll", 5, 2, "shift", "axis", "shifts", "dims", "dim")
    PyObject *sh, *ax;
    if (alias("roll", a[0], a[2], "shift", "shifts", &sh) || alias("roll", a[1], a[3], "axis", "dims", &ax) ||
        alias("roll", ax, a[4], "axis", "dim", &ax))
        return NULL;
    if (!sh) {
        PyErr_SetString(PyExc_TypeError, "roll() missing argument 'shift'");
        return NULL;
    }
    int64_t shifts[TG_MAX_DIMS], axes[TG_MAX_DIMS];
    int ns, na = -1;
    if (small_list("roll", "shift", sh, shifts, &ns)) return NULL;
    if (ax && ax != Py_None) {
        if (small_list("roll", "axis", ax, axes, &na)) return NULL;
        if (ns == 1 && na > 1)
            for (int i = 1; i < na; i++) shifts[i] = shifts[0]; /* NumPy broadcasts one shift */
        else if (ns != na) {
            PyErr_Format(PyExc_ValueError, "roll: %d shifts for %d axes; give one shift per axis", ns, na);
            return NULL;
        }
    } else if (ns != 1) {
        PyErr_Format(PyExc_ValueError, "roll: %d shifts without axes; give one shift (the flattened tensor) "
                     "or the axes", ns);
        return NULL;
    }
    return W(tg_roll(TENSOR(self), shifts, axes, na));
}

static PyObject *tri(PyObject *self, const char *fname, tg_tensor *(*f)(tg_tensor *, int64_t),
                     PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"k", "diagonal"};
    PyObject *a[2], *o;
    long long k;
    if (tgpy_args(fname, args, nargs, kw, names, 2, 1, a) || alias(fname, a[0], a[1], "k", "diagonal", &o) ||
        int_arg(fname, "k", o, 0, &k))
        return NULL;
    return W(f(TENSOR(self), k));
}
METHOD(tril) { return tri(self, "tril", tg_tril, args, nargs, kw); }
METHOD(triu) { return tri(self, "triu", tg_triu, args, nargs, kw); }

/* diagonal and trace: (offset=0, axis1=0, axis2=1), PyTorch's dim1/dim2 too */
static PyObject *diag_like(PyObject *self, const char *fname,
                           tg_tensor *(*f)(tg_tensor *, int64_t, int64_t, int64_t), PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"offset", "axis1", "axis2", "dim1", "dim2"};
    PyObject *a[5], *o1, *o2;
    long long off, a1, a2;
    if (tgpy_args(fname, args, nargs, kw, names, 5, 3, a) || alias(fname, a[1], a[3], "axis1", "dim1", &o1) ||
        alias(fname, a[2], a[4], "axis2", "dim2", &o2) || int_arg(fname, "offset", a[0], 0, &off) ||
        int_arg(fname, "axis1", o1, 0, &a1) || int_arg(fname, "axis2", o2, 1, &a2))
        return NULL;
    return W(f(TENSOR(self), off, a1, a2));
}
METHOD(diagonal) { return diag_like(self, "diagonal", tg_diagonal, args, nargs, kw); }
METHOD(trace) { return diag_like(self, "trace", tg_trace, args, nargs, kw); }

METHOD(diag) {
    ARGS("diag", 2, 1, "k", "diagonal")
    PyObject *o;
    long long k;
    if (alias("diag", a[0], a[1], "k", "diagonal", &o) || int_arg("diag", "k", o, 0, &k)) return NULL;
    return W(tg_diag(TENSOR(self), k));
}

/* x.repeat(2, 3) or x.repeat((2, 3)) */
METHOD(repeat) {
    int64_t reps[TG_MAX_DIMS];
    int n;
    if (kw && PyTuple_GET_SIZE(kw)) {
        /* a keyword's name that does not encode (a lone surrogate) or holds
         * a NUL is not 'repeats' either (strcmp was given its NULL: a crash) */
        const char *kname = PyTuple_GET_SIZE(kw) == 1 ? tgpy_utf8(PyTuple_GET_ITEM(kw, 0)) : "";
        if (!kname) {
            PyErr_Clear();
            kname = "";
        }
        if (nargs || PyTuple_GET_SIZE(kw) != 1 || strcmp(kname, "repeats")) {
            PyErr_SetString(PyExc_TypeError, "repeat() takes the repeats as arguments or one sequence 'repeats'");
            return NULL;
        }
        if (small_list("repeat", "repeats", args[0], reps, &n)) return NULL;
    } else if (nargs == 1 && !PyIndex_Check(args[0])) {
        if (small_list("repeat", "repeats", args[0], reps, &n)) return NULL;
    } else {
        if (nargs > TG_MAX_DIMS) {
            PyErr_Format(PyExc_ValueError, "repeat: %zd repeats give more than %d dimensions", nargs, TG_MAX_DIMS);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            long long v;
            if (int_arg("repeat", "repeats", args[i], 0, &v)) return NULL;
            reps[i] = v;
        }
        n = (int)nargs;
    }
    return W(tg_repeat(TENSOR(self), reps, n));
}

METHOD(tile) {
    ARGS("tile", 2, 1, "reps", "dims")
    PyObject *o;
    if (alias("tile", a[0], a[1], "reps", "dims", &o)) return NULL;
    if (!o) {
        PyErr_SetString(PyExc_TypeError, "tile() missing argument 'reps'");
        return NULL;
    }
    int64_t reps[TG_MAX_DIMS];
    int n;
    if (small_list("tile", "reps", o, reps, &n)) return NULL;
    return W(tg_tile(TENSOR(self), reps, n));
}

METHOD(repeat_interleave) {
    ARGS("repeat_interleave", 3, 2, "repeats", "axis", "dim")
    PyObject *ax;
    if (alias("repeat_interleave", a[1], a[2], "axis", "dim", &ax)) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "repeat_interleave() missing argument 'repeats'");
        return NULL;
    }
    long long axis;
    if (int_arg("repeat_interleave", "axis", ax, 0, &axis)) return NULL;
    Py_ssize_t n;
    int scalar;
    int64_t *r = int_list("repeat_interleave", "repeats", a[0], &n, &scalar);
    if (!r) return NULL;
    tg_tensor *y = tg_repeat_interleave(TENSOR(self), r, scalar ? 1 : n, axis, ax && ax != Py_None);
    PyMem_Free(r);
    return W(y);
}

METHOD(unflatten) {
    ARGS("unflatten", 4, 2, "axis", "sizes", "dim", "shape")
    PyObject *ax, *sz;
    if (alias("unflatten", a[0], a[2], "axis", "dim", &ax) || alias("unflatten", a[1], a[3], "sizes", "shape", &sz))
        return NULL;
    if (!ax || !sz) {
        PyErr_SetString(PyExc_TypeError, "unflatten() needs axis and sizes");
        return NULL;
    }
    long long axis;
    int64_t sizes[TG_MAX_DIMS];
    int n;
    if (int_arg("unflatten", "axis", ax, 0, &axis) || small_list("unflatten", "sizes", sz, sizes, &n)) return NULL;
    return W(tg_unflatten(TENSOR(self), axis, n, sizes));
}

/* the columns of an (count, ndim) index tensor as a tuple of 1-D tensors */
static PyObject *columns(tg_tensor *nz) {
    if (!nz) return tgpy_raise();
    int nd = (int)nz->shape[1];
    PyObject *tup = PyTuple_New(nd);
    for (int d = 0; tup && d < nd; d++) {
        int64_t starts[2] = {0, d}, stops[2] = {nz->shape[0], d + 1}, steps[2] = {1, 1};
        tg_tensor *c = tg_slice(nz, starts, stops, steps, 2u); /* nz[:, d] */
        tg_tensor *cc = c ? tg_contiguous(c) : NULL;
        tg_tensor_release(c);
        PyObject *w = cc ? W(cc) : tgpy_raise();
        if (!w) {
            Py_CLEAR(tup);
            break;
        }
        PyTuple_SET_ITEM(tup, d, w);
    }
    tg_tensor_release(nz);
    return tup;
}

METHOD(nonzero) {
    ARGS("nonzero", 1, 0, "as_tuple")
    int t = tgpy_bool(a[0], 0);
    if (t < 0) return NULL;
    tg_tensor *nz = tg_nonzero(TENSOR(self));
    return t ? columns(nz) : W(nz);
}

/* where(condition) with one argument: nonzero(condition, as_tuple=True) */
PyObject *tgpy_where1(PyObject *cond) {
    tg_tensor *c = tgpy_as_tensor(cond, NULL);
    if (!c) return tgpy_prefix_error("where");
    PyObject *r = columns(tg_nonzero(c));
    tg_tensor_release(c);
    return r;
}

/* a mask argument: anything tensor-like (NumPy bool arrays arrive as int64) */
static tg_tensor *mask_arg(const char *fname, PyObject *o) {
    if (!o) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument 'mask'", fname);
        return NULL;
    }
    tg_tensor *m = tgpy_as_tensor(o, NULL);
    return m ? m : (tg_tensor *)tgpy_prefix_error(fname);
}

METHOD(masked_select) {
    ARGS("masked_select", 1, 1, "mask")
    tg_tensor *m = mask_arg("masked_select", a[0]);
    if (!m) return NULL;
    tg_tensor *y = tg_masked_select(TENSOR(self), m);
    tg_tensor_release(m);
    return W(y);
}

METHOD(masked_fill) {
    ARGS("masked_fill", 2, 2, "mask", "value")
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "masked_fill() needs mask and value");
        return NULL;
    }
    int err;
    double v = num_arg("masked_fill", "value", a[1], &err);
    if (err) return NULL;
    tg_tensor *m = mask_arg("masked_fill", a[0]);
    if (!m) return NULL;
    tg_tensor *y = tg_masked_fill(TENSOR(self), m, v);
    tg_tensor_release(m);
    return W(y);
}

/* scatter(axis, index, src) or scatter(axis, index, value=v); a number as
 * src is a value, as in PyTorch */
METHOD(scatter) {
    ARGS("scatter", 5, 3, "axis", "index", "src", "value", "dim")
    PyObject *ax;
    if (alias("scatter", a[0], a[4], "axis", "dim", &ax)) return NULL;
    if (!ax || !a[1] || (!a[2] && !a[3]) || (a[2] && a[3])) {
        PyErr_SetString(PyExc_TypeError, "scatter() needs axis, index and one of src or value");
        return NULL;
    }
    long long axis;
    if (int_arg("scatter", "axis", ax, 0, &axis)) return NULL;
    tg_tensor *idx = tgpy_index_array(a[1]);
    if (!idx) return tgpy_prefix_error("scatter");
    tg_tensor *y;
    PyObject *sv = a[2] ? a[2] : a[3];
    if (a[3] || PyFloat_Check(sv) || PyLong_Check(sv)) {
        int err;
        double v = num_arg("scatter", "value", sv, &err);
        y = err ? NULL : tg_scatter_value(TENSOR(self), axis, idx, v);
        if (err) {
            tg_tensor_release(idx);
            return NULL;
        }
    } else {
        tg_tensor *src = tgpy_as_tensor(sv, TENSOR(self));
        if (!src) {
            tg_tensor_release(idx);
            return tgpy_prefix_error("scatter");
        }
        y = tg_scatter(TENSOR(self), axis, idx, src);
        tg_tensor_release(src);
    }
    tg_tensor_release(idx);
    return W(y);
}

METHOD(scatter_reduce) {
    ARGS("scatter_reduce", 6, 5, "axis", "index", "src", "reduce", "include_self", "dim")
    PyObject *ax;
    if (alias("scatter_reduce", a[0], a[5], "axis", "dim", &ax)) return NULL;
    if (!ax || !a[1] || !a[2] || !a[3]) {
        PyErr_SetString(PyExc_TypeError, "scatter_reduce() needs axis, index, src and reduce");
        return NULL;
    }
    long long axis;
    if (int_arg("scatter_reduce", "axis", ax, 0, &axis)) return NULL;
    const char *r = PyUnicode_Check(a[3]) ? tgpy_utf8(a[3]) : NULL;
    int code = r ? tg_scatter_reduce_code(r) : -1;
    if (code < 0) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' or "
                         "'amin', got %R", a[3]);
        return NULL;
    }
    int inc = tgpy_bool(a[4], 1);
    if (inc < 0) return NULL;
    tg_tensor *idx = tgpy_index_array(a[1]);
    if (!idx) return tgpy_prefix_error("scatter_reduce");
    tg_tensor *src = tgpy_as_tensor(a[2], TENSOR(self));
    if (!src) {
        tg_tensor_release(idx);
        return tgpy_prefix_error("scatter_reduce");
    }
    tg_tensor *y = tg_scatter_reduce(TENSOR(self), axis, idx, src, code, inc);
    tg_tensor_release(idx);
    tg_tensor_release(src);
    return W(y);
}

/* x.unfold(axis, size, step) (PyTorch's dimension= accepted) */
METHOD(unfold) {
    ARGS("unfold", 5, 3, "axis", "size", "step", "dim", "dimension")
    PyObject *ax;
    long long axis, size, step;
    if (alias("unfold", a[0], a[3], "axis", "dim", &ax) || alias("unfold", ax, a[4], "axis", "dimension", &ax))
        return NULL;
    if (!ax || !a[1] || !a[2]) {
        PyErr_SetString(PyExc_TypeError, "unfold() needs axis, size and step");
        return NULL;
    }
    if (int_arg("unfold", "axis", ax, 0, &axis) || int_arg("unfold", "size", a[1], 0, &size) ||
        int_arg("unfold", "step", a[2], 0, &step))
        return NULL;
    return W(tg_unfold(TENSOR(self), axis, size, step));
}

/* einsum(subscripts, *operands) or einsum(subscripts, [operands]) */
static PyObject *fn_einsum(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    if (kw && PyTuple_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "einsum() takes no keyword arguments");
        return NULL;
    }
    if (nargs < 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "einsum() needs the subscripts (a str) and at least one operand");
        return NULL;
    }
    const char *subs = tgpy_utf8(args[0]);
    if (!subs) return tgpy_prefix_error("einsum");
    PyObject *seq = NULL;
    PyObject *const *items = args + 1;
    Py_ssize_t n = nargs - 1;
    if (n == 1 && !tgpy_is_tensor(args[1]) && PyList_Check(args[1])) { /* PyTorch's list form */
        seq = PySequence_Fast(args[1], "einsum: operands");
        if (!seq) return NULL;
        items = PySequence_Fast_ITEMS(seq);
        n = PySequence_Fast_GET_SIZE(seq);
    }
    tg_tensor **ts = PyMem_Calloc(n ? (size_t)n : 1, sizeof *ts);
    PyObject *r = NULL;
    if (!ts) {
        PyErr_NoMemory();
        goto out;
    }
    const tg_tensor *like = NULL;
    for (Py_ssize_t i = 0; i < n && !like; i++)
        if (tgpy_is_tensor(items[i])) like = TENSOR(items[i]);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(ts[i] = tgpy_as_tensor(items[i], like))) {
            tgpy_prefix_error("einsum");
            goto out;
        }
    r = W(tg_einsum(subs, (int)n, ts));
out:
    if (ts)
        for (Py_ssize_t i = 0; i < n; i++) tg_tensor_release(ts[i]);
    PyMem_Free(ts);
    Py_XDECREF(seq);
    return r;
}

/* ===================================================================== */
/* several results: split, chunk, unbind, array_split                     */
/* ===================================================================== */

/* A tuple of n slices of x along ax: [bounds[i], bounds[i+1]). */
static PyObject *pieces(tg_tensor *x, int64_t ax, const int64_t *bounds, Py_ssize_t n, bool drop_axis) {
    PyObject *tup = PyTuple_New(n);
    for (Py_ssize_t i = 0; tup && i < n; i++) {
        int64_t starts[TG_MAX_DIMS] = {0}, stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++) {
            stops[d] = x->shape[d];
            steps[d] = 1;
        }
        starts[ax] = bounds[i];
        stops[ax] = bounds[i + 1];
        PyObject *w = W(tg_slice(x, starts, stops, steps, drop_axis ? 1u << ax : 0));
        if (!w) {
            Py_CLEAR(tup);
            break;
        }
        PyTuple_SET_ITEM(tup, i, w);
    }
    return tup;
}

static int axis_of(const char *fname, tg_tensor *x, PyObject *o1, PyObject *o2, int64_t *ax) {
    PyObject *o;
    long long axis;
    if (alias(fname, o1, o2, "axis", "dim", &o) || int_arg(fname, "axis", o, 0, &axis)) return -1;
    if (x->ndim == 0) {
        PyErr_Format(PyExc_IndexError, "%s: a 0-d tensor cannot be split", fname);
        return -1;
    }
    if (axis < -x->ndim || axis >= x->ndim) {
        PyErr_Format(PyExc_IndexError, "%s: axis %lld is out of range for a tensor of %d dimensions",
                     fname, axis, x->ndim);
        return -1;
    }
    *ax = axis < 0 ? axis + x->ndim : axis;
    return 0;
}

/* PyTorch's split: an int is the size of each piece (the last may be
 * smaller), a sequence the sizes of the pieces (they must add up). */
METHOD(split) {
    ARGS("split", 4, 2, "split_size_or_sections", "axis", "dim", "split_size")
    PyObject *s;
    int64_t ax;
    tg_tensor *x = TENSOR(self);
    if (alias("split", a[0], a[3], "split_size_or_sections", "split_size", &s) ||
        axis_of("split", x, a[1], a[2], &ax))
        return NULL;
    if (!s) {
        PyErr_SetString(PyExc_TypeError, "split() missing argument 'split_size_or_sections'");
        return NULL;
    }
    Py_ssize_t n;
    int scalar;
    int64_t *v = int_list("split", "split_size_or_sections", s, &n, &scalar);
    if (!v) return NULL;
    int64_t len = x->shape[ax];
    int64_t *b = NULL;
    Py_ssize_t np_ = 0;
    if (scalar) {
        int64_t size = v[0];
        if (size <= 0 && !(size == 0 && len == 0)) {
            PyErr_Format(PyExc_ValueError, "split: split_size must be positive, got %lld", (long long)size);
        } else {
            np_ = size == 0 ? 1 : (len + size - 1) / size;
            if (np_ == 0) np_ = 1;
            b = PyMem_Malloc((size_t)(np_ + 1) * sizeof *b);
            if (!b) PyErr_NoMemory();
            else
                for (Py_ssize_t i = 0; i <= np_; i++) b[i] = i * size < len ? i * size : len;
        }
    } else {
        int64_t total = 0;
        int bad = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (v[i] < 0 || __builtin_add_overflow(total, v[i], &total)) bad = 1;
        }
        if (bad || total != len) {
            PyErr_Format(PyExc_ValueError,
                         "split: the sizes must be >= 0 and add up to the size %lld of axis %lld, got %lld",
                         (long long)len, (long long)ax, (long long)total);
        } else {
            np_ = n;
            b = PyMem_Malloc((size_t)(n + 1) * sizeof *b);
            if (!b) PyErr_NoMemory();
            else {
                b[0] = 0;
                for (Py_ssize_t i = 0; i < n; i++) b[i + 1] = b[i] + v[i];
            }
        }
    }
    PyMem_Free(v);
    if (!b) return NULL;
    PyObject *r = pieces(x, ax, b, np_, false);
    PyMem_Free(b);
    return r;
}

/* PyTorch's chunk: pieces of ceil(n / chunks) (so possibly fewer than chunks). */
METHOD(chunk) {
    ARGS("chunk", 3, 2, "chunks", "axis", "dim")
    int64_t ax;
    long long c;
    tg_tensor *x = TENSOR(self);
    if (axis_of("chunk", x, a[1], a[2], &ax)) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "chunk() missing argument 'chunks'");
        return NULL;
    }
    if (int_arg("chunk", "chunks", a[0], 0, &c)) return NULL;
    if (c <= 0) {
        PyErr_Format(PyExc_ValueError, "chunk: chunks must be positive, got %lld", c);
        return NULL;
    }
    int64_t len = x->shape[ax], size = (len + c - 1) / c;
    Py_ssize_t n = size ? (Py_ssize_t)((len + size - 1) / size) : (Py_ssize_t)c;
    int64_t *b = PyMem_Malloc((size_t)(n + 1) * sizeof *b);
    if (!b) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i <= n; i++) b[i] = i * size < len ? i * size : len;
    PyObject *r = pieces(x, ax, b, n, false);
    PyMem_Free(b);
    return r;
}

/* NumPy's array_split: an int gives that many pieces (the first len % n one
 * longer), a sequence the indices where the pieces start. */
METHOD(array_split) {
    ARGS("array_split", 3, 2, "indices_or_sections", "axis", "dim")
    int64_t ax;
    tg_tensor *x = TENSOR(self);
    if (axis_of("array_split", x, a[1], a[2], &ax)) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "array_split() missing argument 'indices_or_sections'");
        return NULL;
    }
    Py_ssize_t n;
    int scalar;
    int64_t *v = int_list("array_split", "indices_or_sections", a[0], &n, &scalar);
    if (!v) return NULL;
    int64_t len = x->shape[ax];
    int64_t *b = NULL;
    Py_ssize_t np_ = 0;
    if (scalar) {
        int64_t k = v[0];
        if (k <= 0) {
            PyErr_Format(PyExc_ValueError, "array_split: the number of sections must be positive, got %lld", (long long)k);
        } else {
            np_ = (Py_ssize_t)k;
            b = PyMem_Malloc((size_t)(np_ + 1) * sizeof *b);
            if (!b) PyErr_NoMemory();
            else {
                int64_t q = len / k, r = len % k;
                b[0] = 0;
                for (Py_ssize_t i = 0; i < np_; i++) b[i + 1] = b[i] + q + (i < r);
            }
        }
    } else {
        np_ = n + 1;
        b = PyMem_Malloc((size_t)(np_ + 1) * sizeof *b);
        if (!b) PyErr_NoMemory();
        else {
            b[0] = 0;
            for (Py_ssize_t i = 0; i < n; i++) { /* NumPy clamps like slicing */
                int64_t p = v[i] < 0 ? v[i] + len : v[i];
                b[i + 1] = p < 0 ? 0 : p > len ? len : p;
            }
            b[np_] = len; /* like NumPy, piece i is x[b[i]:b[i+1]]: empty when they decrease */
        }
    }
    PyMem_Free(v);
    if (!b) return NULL;
    PyObject *r = pieces(x, ax, b, np_, false);
    PyMem_Free(b);
    return r;
}

METHOD(unbind) {
    ARGS("unbind", 2, 1, "axis", "dim")
    int64_t ax;
    tg_tensor *x = TENSOR(self);
    if (axis_of("unbind", x, a[0], a[1], &ax)) return NULL;
    int64_t len = x->shape[ax];
    int64_t *b = PyMem_Malloc((size_t)(len + 1) * sizeof *b);
    if (!b) return PyErr_NoMemory();
    for (int64_t i = 0; i <= len; i++) b[i] = i;
    PyObject *r = pieces(x, ax, b, (Py_ssize_t)len, true);
    PyMem_Free(b);
    return r;
}

/* ===================================================================== */
/* tables                                                                 */
/* ===================================================================== */

#define FN(name)                                                                      \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, \
                               PyObject *kw) {                                        \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                    \
    }
FN(flip) FN(roll) FN(tril) FN(triu) FN(diagonal) FN(trace) FN(diag) FN(tile) FN(repeat_interleave)
FN(unflatten) FN(nonzero) FN(masked_select) FN(masked_fill) FN(scatter) FN(split) FN(chunk)
FN(array_split) FN(unbind) FN(scatter_reduce) FN(unfold)

#define DOC_FLIP "flip(x, axis=None)\n\nReverse the order of elements along axis (an int or a tuple; all axes if\nNone; PyTorch's dims= accepted). A view, like NumPy's.\n\n>>> tg.flip(tg.arange(4), 0).tolist()\n[3, 2, 1, 0]"
#define DOC_ROLL "roll(x, shift, axis=None)\n\nRotate elements along axis (NumPy's roll; PyTorch's shifts=/dims= accepted);\nwithout axis, the flattened tensor is rolled and the shape kept.\n\n>>> tg.roll(tg.arange(5), 2).tolist()\n[3, 4, 0, 1, 2]"
#define DOC_TRIL "tril(x, k=0)\n\nThe lower triangle of the last two dims, on and below diagonal k\n(PyTorch's diagonal= accepted); zeros above.\n\n>>> tg.tril(tg.ones(2, 2)).tolist()\n[[1.0, 0.0], [1.0, 1.0]]"
#define DOC_TRIU "triu(x, k=0)\n\nThe upper triangle of the last two dims, on and above diagonal k; zeros below.\n\n>>> tg.triu(tg.ones(2, 2)).tolist()\n[[1.0, 1.0], [0.0, 1.0]]"
#define DOC_DIAGONAL "diagonal(x, offset=0, axis1=0, axis2=1)\n\nThe diagonal of the matrices of axes (axis1, axis2) as the last axis (a\nview; PyTorch's dim1=/dim2= accepted).\n\n>>> tg.diagonal(tg.arange(9).reshape(3, 3)).tolist()\n[0, 4, 8]"
#define DOC_TRACE "trace(x, offset=0, axis1=0, axis2=1)\n\nSum of a diagonal (NumPy's trace).\n\n>>> tg.trace(tg.eye(3)).item()\n3.0"
#define DOC_DIAG "diag(x, k=0)\n\nNumPy's diag: a 1-D tensor becomes a matrix with it on diagonal k, a 2-D\ntensor gives its diagonal k.\n\n>>> tg.diag(tg.tensor([1, 2])).tolist()\n[[1, 0], [0, 2]]"
#define DOC_REPEAT "repeat(*repeats)\n\nPyTorch's Tensor.repeat: the tensor copied repeats[d] times along each dim\n(as many repeats as dims or more). NumPy's np.repeat is repeat_interleave.\n\n>>> tg.tensor([1, 2]).repeat(2).tolist()\n[1, 2, 1, 2]"
#define DOC_TILE "tile(x, reps)\n\nNumPy's tile: x copied reps times (reps shorter than x.ndim get leading 1s).\n\n>>> tg.tile(tg.tensor([1, 2]), 2).tolist()\n[1, 2, 1, 2]"
#define DOC_RI "repeat_interleave(x, repeats, axis=None)\n\nEach element (each slice along axis) repeated repeats times, or repeats[j]\ntimes for a sequence (NumPy's repeat); without axis, the flattened tensor.\n\n>>> tg.repeat_interleave(tg.tensor([1, 2]), 2).tolist()\n[1, 1, 2, 2]"
#define DOC_UNFLATTEN "unflatten(x, axis, sizes)\n\nSplit one axis into several (one size may be -1).\n\n>>> tg.unflatten(tg.zeros(6, 4), 0, (2, 3)).shape\n(2, 3, 4)"
#define DOC_NONZERO "nonzero(x, as_tuple=False)\n\nIndices of the non-zero elements: an int64 (count, ndim) tensor, or with\nas_tuple=True one 1-D index tensor per dim (NumPy's nonzero).\n\n>>> tg.nonzero(tg.tensor([0, 3, 0, 4])).tolist()\n[[1], [3]]"
#define DOC_MSELECT "masked_select(x, mask)\n\nThe elements of x where mask is non-zero (any dtype; broadcast together) as a\n1-D tensor.\n\n>>> tg.masked_select(tg.tensor([1., 2., 3.]), tg.tensor([1, 0, 1])).tolist()\n[1.0, 3.0]"
#define DOC_MFILL "masked_fill(x, mask, value)\n\nA copy of x with value where mask (broadcast to x) is non-zero.\n\n>>> tg.masked_fill(tg.tensor([1., 2.]), tg.tensor([0, 1]), -1.0).tolist()\n[1.0, -1.0]"
#define DOC_SCATTER "scatter(x, axis, index, src=None, value=None)\n\nPyTorch's scatter, out of place: a copy of x with src[i][j] (or value)\nwritten at [i][index[i][j]] (axis 1). With repeated indices only one write\nsurvives and the gradient of src is defined for unique indices only.\n\n>>> tg.scatter(tg.zeros(3), 0, tg.tensor([2]), tg.tensor([5.])).tolist()\n[0.0, 0.0, 5.0]"
#define DOC_SREDUCE "scatter_reduce(x, axis, index, src, reduce, include_self=True)\n\nPyTorch's scatter_reduce, out of place: the src values landing on each\nposition (and x's own value if include_self) reduced with 'sum', 'prod',\n'mean', 'amax' or 'amin'; untouched positions keep x. Gradients as PyTorch\ndefines them (amax/amin share it between ties).\n\n>>> tg.scatter_reduce(tg.zeros(2), 0, tg.tensor([0, 0, 1]), tg.tensor([1., 2., 5.]), 'sum').tolist()\n[3.0, 5.0]"
#define DOC_EINSUM "einsum(subscripts, *operands)\n\nEinstein summation, NumPy's and PyTorch's: explicit ('ij,jk->ik') or implicit\n('ij,jk': the labels seen once, in alphabetical order) output, '...' for\nbroadcast dims, repeated labels for diagonals ('ii->i', 'ii' = trace), sums,\nouter products and batch products. Labels are a-z and A-Z. Contractions run\nas matmul, so it is fast and differentiable through the tape.\n\n>>> tg.einsum('ij,jk->ik', tg.ones(2, 3), tg.ones(3, 4)).shape\n(2, 4)"
#define DOC_UNFOLD "unfold(x, axis, size, step)\n\nPyTorch's Tensor.unfold: sliding windows of size along axis, step apart; axis\nbecomes the window count and a new last axis holds each window.\n\n>>> tg.arange(5).unfold(0, 2, 2).tolist()\n[[0, 1], [2, 3]]"
#define DOC_SPLIT "split(x, split_size_or_sections, axis=0)\n\nPyTorch's split: pieces of split_size along axis (the last may be shorter),\nor pieces of the given sizes. A tuple of views. NumPy's split by number of\nsections or by indices is array_split.\n\n>>> [p.tolist() for p in tg.split(tg.arange(5), 2)]\n[[0, 1], [2, 3], [4]]"
#define DOC_CHUNK "chunk(x, chunks, axis=0)\n\nPyTorch's chunk: pieces of ceil(n / chunks) along axis (so possibly fewer).\n\n>>> [p.tolist() for p in tg.chunk(tg.arange(5), 2)]\n[[0, 1, 2], [3, 4]]"
#define DOC_ASPLIT "array_split(x, indices_or_sections, axis=0)\n\nNumPy's array_split: an int gives that many pieces (the first ones one\nlonger), a sequence the indices where the pieces start.\n\n>>> [p.tolist() for p in tg.array_split(tg.arange(5), [1, 3])]\n[[0], [1, 2], [3, 4]]"
#define DOC_UNBIND "unbind(x, axis=0)\n\nThe slices along axis, that axis removed (a tuple of views).\n\n>>> [p.tolist() for p in tg.unbind(tg.eye(2))]\n[[1.0, 0.0], [0.0, 1.0]]"

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))fn_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_shape_functions[] = {
    F(flip, DOC_FLIP), F(roll, DOC_ROLL), F(tril, DOC_TRIL), F(triu, DOC_TRIU),
    F(diagonal, DOC_DIAGONAL), F(trace, DOC_TRACE), F(diag, DOC_DIAG), F(tile, DOC_TILE),
    F(repeat_interleave, DOC_RI), F(unflatten, DOC_UNFLATTEN), F(nonzero, DOC_NONZERO),
    F(masked_select, DOC_MSELECT), F(masked_fill, DOC_MFILL), F(scatter, DOC_SCATTER),
    F(scatter_reduce, DOC_SREDUCE), F(einsum, DOC_EINSUM), F(unfold, DOC_UNFOLD), F(split, DOC_SPLIT), F(chunk, DOC_CHUNK), F(array_split, DOC_ASPLIT), F(unbind, DOC_UNBIND),
    {NULL}};
#undef F
#define M(name, doc) {#name, (PyCFunction)(void (*)(void))m_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_shape_methods[] = {
    M(flip, DOC_FLIP), M(roll, DOC_ROLL), M(tril, DOC_TRIL), M(triu, DOC_TRIU),
    M(diagonal, DOC_DIAGONAL), M(trace, DOC_TRACE), M(diag, DOC_DIAG), M(repeat, DOC_REPEAT),
    M(tile, DOC_TILE), M(repeat_interleave, DOC_RI), M(unflatten, DOC_UNFLATTEN),
    M(nonzero, DOC_NONZERO), M(masked_select, DOC_MSELECT), M(masked_fill, DOC_MFILL),
    M(scatter, DOC_SCATTER), M(scatter_reduce, DOC_SREDUCE), M(unfold, DOC_UNFOLD), M(split, DOC_SPLIT), M(chunk, DOC_CHUNK), M(unbind, DOC_UNBIND),
    {NULL}};
#undef M
