/*
 * module.c -- the tapegrad._C module: multi-phase initialisation, module
 * state, tensor creation, the ops that take several tensors, grad mode, the
 * op registry and runtime settings.
 */
#define TGPY_IMPORT_ARRAY
#include "common.h"

#define TG_GEMM_INTERNAL
#include "../kernels/gemm.h"
#include "../kernels/threadpool.h"
#include "../kernels/vmath.h"
#include "../kernels/winograd.h"

#include <string.h>

/* every error of f_name names `name` (common.h) */
#define FUNC(name) TGPY_NAMED_FUNC(name)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* The creation functions of the core share tg_tensor_empty, whose errors
 * say "empty: ..."; name the function the user called instead. */
static PyObject *raise_as(const char *fname) {
    const char *msg = tg_error_message();
    if (fname && !strncmp(msg, "empty: ", 7)) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s: %s", fname, msg + 7);
        tg_error_set(tg_error_status(), "%s", buf);
    }
    return tgpy_raise();
}

static PyObject *finish_rg_named(const char *fname, tg_tensor *t, PyObject *rg) {
    if (!t) return raise_as(fname);
    int b = tgpy_bool(rg, 0);
    if (b < 0) {
        tg_tensor_release(t);
        return NULL;
    }
    if (b && tg_tensor_set_requires_grad(t, true)) {
        tg_tensor_release(t);
        return tgpy_raise();
    }
    return W(t);
}
#define finish_rg(t, rg) finish_rg_named(NULL, (t), (rg))

/* ===================================================================== */
/* Creation                                                               */
/* ===================================================================== */

FUNC(tensor) {
    ARGS("tensor", 3, 2, "data", "dtype", "requires_grad")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "tensor() missing argument 'data'");
        return NULL;
    }
    tg_dtype dt;
    if (tgpy_parse_dtype(a[1], TG_FLOAT32, &dt)) return NULL;
    tg_tensor *t = tgpy_new_tensor(a[0], a[1] && a[1] != Py_None, dt);
    if (!t) return NULL;
    return finish_rg(t, a[2]);
}

FUNC(from_numpy) {
    ARGS("from_numpy", 2, 1, "array", "requires_grad")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "from_numpy() missing argument 'array'");
        return NULL;
    }
    tg_tensor *t = tgpy_from_numpy(a[0]);
    if (!t) return NULL;
    return finish_rg(t, a[1]);
}

/* shape (varargs or a tuple), dtype=None, requires_grad=False */
typedef tg_tensor *(*shapefn)(int, const int64_t *, tg_dtype);
static PyObject *make_shaped(const char *fname, shapefn f, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kw, int npos_extra) {
    static const char *const names[] = {"dtype", "requires_grad"};
    PyObject *a[2];
    if (tgpy_args(fname, args + nargs, 0, kw, names, 2, 0, a)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    int nd;
    (void)npos_extra;
    if (tgpy_shape(fname, args, nargs, shape, &nd)) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[0], TG_FLOAT32, &dt)) return NULL;
    return finish_rg_named(fname, f(nd, shape, dt), a[1]);
}
FUNC(zeros) { return make_shaped("zeros", tg_tensor_zeros, args, nargs, kw, 0); }
FUNC(ones) { return make_shaped("ones", tg_tensor_ones, args, nargs, kw, 0); }
FUNC(empty) { return make_shaped("empty", tg_tensor_empty, args, nargs, kw, 0); }

FUNC(full) {
    ARGS("full", 4, 2, "shape", "fill_value", "dtype", "requires_grad")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "full() needs shape and fill_value");
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape_obj("full", a[0], shape, &nd)) return NULL;
    double v = PyFloat_AsDouble(a[1]);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "full: fill_value must be a number, got %s", Py_TYPE(a[1])->tp_name);
        return NULL;
    }
    tg_dtype dt;
    bool is_int = !PyBool_Check(a[1]) && !PyFloat_Check(a[1]) && (PyLong_Check(a[1]) || PyIndex_Check(a[1]));
    tg_dtype deflt = is_int ? TG_INT64 : PyBool_Check(a[1]) ? TG_BOOL : TG_FLOAT32; /* NumPy's */
    if (tgpy_parse_dtype(a[2], deflt, &dt)) return NULL;
    if (is_int && dt == TG_INT64) {
        int overflow = 0;
        PyObject *n = PyNumber_Index(a[1]);
        if (!n) return NULL;
        PyLong_AsLongLongAndOverflow(n, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_OverflowError,
                         "full: fill_value %R does not fit in int64 (expected -2**63 <= value < "
                         "2**63; pass a float or dtype=tg.float64)",
                         n);
            Py_DECREF(n);
            return NULL;
        }
        Py_DECREF(n);
    }
    tg_tensor *t = tg_tensor_full(nd, shape, v, dt);
    if (t && is_int && dt == TG_INT64) { /* exact beyond 2**53 */
        long long iv = PyLong_AsLongLong(a[1]);
        if (iv == -1 && PyErr_Occurred()) {
            tg_tensor_release(t);
            return NULL;
        }
        int64_t *d = tg_tensor_data(t);
        for (int64_t i = 0; i < t->numel; i++) d[i] = iv;
    }
    return finish_rg_named("full", t, a[3]);
}

static PyObject *make_random(const char *fname, int kind, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kw) {
    static const char *const names[] = {"dtype", "requires_grad", "generator"};
    PyObject *a[3];
    if (tgpy_args(fname, args + nargs, 0, kw, names, 3, 0, a)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape(fname, args, nargs, shape, &nd)) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[0], TG_FLOAT32, &dt)) return NULL;
    tg_generator *g;
    if (tgpy_generator(fname, a[2], &g)) return NULL;
    tg_tensor *t = kind ? tg_tensor_randn_gen(nd, shape, 0, 1, dt, g)
                        : tg_tensor_rand_gen(nd, shape, 0, 1, dt, g);
    return finish_rg_named(fname, t, a[1]);
}
FUNC(rand) { return make_random("rand", 0, args, nargs, kw); }
FUNC(randn) { return make_random("randn", 1, args, nargs, kw); }

FUNC(arange) {
    ARGS("arange", 5, 3, "start", "stop", "step", "dtype", "requires_grad")
    double start = 0, stop, step = 1;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "arange() needs at least stop");
        return NULL;
    }
    bool all_int = true;
    for (int i = 0; i < 3; i++) /* Python or NumPy integers */
        if (a[i] && a[i] != Py_None && !PyLong_Check(a[i]) && (PyFloat_Check(a[i]) || !PyIndex_Check(a[i])))
            all_int = false;
    if (!a[1] || a[1] == Py_None) {
        stop = PyFloat_AsDouble(a[0]);
    } else {
        start = PyFloat_AsDouble(a[0]);
        stop = PyFloat_AsDouble(a[1]);
    }
    if (a[2] && a[2] != Py_None) step = PyFloat_AsDouble(a[2]);
    if (PyErr_Occurred()) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[3], all_int ? TG_INT64 : TG_FLOAT32, &dt)) return NULL;
    return finish_rg_named("arange", tg_tensor_arange(start, stop, step, dt), a[4]);
}

FUNC(eye) {
    ARGS("eye", 5, 3, "N", "M", "k", "dtype", "requires_grad")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "eye() missing argument 'N'");
        return NULL;
    }
    long long n = PyLong_AsLongLong(a[0]);
    long long m = a[1] && a[1] != Py_None ? PyLong_AsLongLong(a[1]) : n;
    long long k = a[2] ? PyLong_AsLongLong(a[2]) : 0;
    if (PyErr_Occurred()) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[3], TG_FLOAT32, &dt)) return NULL;
    return finish_rg_named("eye", tg_tensor_eye(n, m, k, dt), a[4]);
}

/* zeros_like(x, dtype=None, requires_grad=False) and friends; full_like takes
 * fill_value second. */
static PyObject *make_like(const char *fname, int kind, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kw) {
    static const char *const names[] = {"x", "dtype", "requires_grad"};
    static const char *const fnames[] = {"x", "fill_value", "dtype", "requires_grad"};
    PyObject *a[4] = {NULL, NULL, NULL, NULL}, *fill = NULL;
    if (kind == 3) {
        if (tgpy_args(fname, args, nargs, kw, fnames, 4, 2, a)) return NULL;
        fill = a[1];
        a[1] = a[2];
        a[2] = a[3];
    } else if (tgpy_args(fname, args, nargs, kw, names, 3, 1, a)) {
        return NULL;
    }
    if (!a[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing its tensor argument", fname);
        return NULL;
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[1], x->dtype, &dt)) {
        tg_tensor_release(x);
        return NULL;
    }
    tg_tensor *r = NULL;
    switch (kind) {
    case 0: r = tg_tensor_zeros(x->ndim, x->shape, dt); break;
    case 1: r = tg_tensor_ones(x->ndim, x->shape, dt); break;
    case 2: r = tg_tensor_empty(x->ndim, x->shape, dt); break;
    case 3: {
        double v = fill ? PyFloat_AsDouble(fill) : 0;
        if (v == -1.0 && PyErr_Occurred()) {
            tg_tensor_release(x);
            return NULL;
        }
        r = tg_tensor_full(x->ndim, x->shape, v, dt);
        break;
    }
    case 4: r = tg_tensor_rand(x->ndim, x->shape, 0, 1, dt); break;
    case 5: r = tg_tensor_randn(x->ndim, x->shape, 0, 1, dt); break;
    }
    tg_tensor_release(x);
    return finish_rg_named(fname, r, a[2]);
}
FUNC(zeros_like) { return make_like("zeros_like", 0, args, nargs, kw); }
FUNC(ones_like) { return make_like("ones_like", 1, args, nargs, kw); }
FUNC(empty_like) { return make_like("empty_like", 2, args, nargs, kw); }
FUNC(full_like) { return make_like("full_like", 3, args, nargs, kw); }
FUNC(rand_like) { return make_like("rand_like", 4, args, nargs, kw); }
FUNC(randn_like) { return make_like("randn_like", 5, args, nargs, kw); }

FUNC(manual_seed) {
    ARGS("manual_seed", 1, 1, "seed")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "manual_seed() missing argument 'seed'");
        return NULL;
    }
    unsigned long long s = PyLong_AsUnsignedLongLongMask(a[0]);
    if (PyErr_Occurred()) return NULL;
    tg_manual_seed(s);
    Py_RETURN_NONE;
}

FUNC(_random_u64) { return PyLong_FromUnsignedLongLong(tg_random_u64()); }

/* ===================================================================== */
/* Ops over several tensors                                               */
/* ===================================================================== */

/* A NEW array of n tensors from a sequence (converted), or NULL. */
static tg_tensor **tensor_list(const char *who, PyObject *seq, int *n) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of tensors");
    if (!fast) return (tg_tensor **)tgpy_prefix_error(who);
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    tg_tensor **ts = PyMem_Calloc(len ? (size_t)len : 1, sizeof *ts);
    if (!ts) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        ts[i] = tgpy_as_tensor(PySequence_Fast_GET_ITEM(fast, i), NULL);
        if (!ts[i]) {
            for (Py_ssize_t j = 0; j < i; j++) tg_tensor_release(ts[j]);
            PyMem_Free(ts);
            Py_DECREF(fast);
            return (tg_tensor **)tgpy_prefix_error(who);
        }
    }
    Py_DECREF(fast);
    *n = (int)len;
    return ts;
}
static void free_list(tg_tensor **ts, int n) {
    for (int i = 0; i < n; i++) tg_tensor_release(ts[i]);
    PyMem_Free(ts);
}

static PyObject *join(const char *fname, tg_tensor *(*f)(int, tg_tensor *const *, int64_t),
                      PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"tensors", "axis", "dim"};
    PyObject *a[3];
    if (tgpy_args(fname, args, nargs, kw, names, 3, 2, a)) return NULL;
    if (!a[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument 'tensors'", fname);
        return NULL;
    }
    PyObject *ax = a[1] ? a[1] : a[2];
    long long axis = ax ? PyLong_AsLongLong(ax) : 0;
    if (axis == -1 && PyErr_Occurred()) { /* Python's own message does not name the op */
        int ovf = PyErr_ExceptionMatches(PyExc_OverflowError);
        PyErr_Clear();
        PyErr_Format(ovf ? PyExc_OverflowError : PyExc_TypeError, "%s: axis must be an integer%s, got %s",
                     fname, ovf ? " that fits in int64" : "", ovf ? "a larger one" : Py_TYPE(ax)->tp_name);
        return NULL;
    }
    int n;
    tg_tensor **ts = tensor_list(fname, a[0], &n);
    if (!ts) return NULL;
    tg_tensor *r = f(n, ts, axis);
    free_list(ts, n);
    return W(r);
}
FUNC(concat) { return join("concat", tg_concat, args, nargs, kw); }
FUNC(stack) { return join("stack", tg_stack, args, nargs, kw); }

FUNC(where) {
    ARGS("where", 3, 3, "condition", "x", "y")
    extern PyObject *tgpy_where1(PyObject *cond); /* shapeops.c: NumPy's one-argument where */
    if (a[0] && !a[1] && !a[2]) return tgpy_where1(a[0]);
    if (!a[0] || !a[1] || !a[2]) {
        PyErr_SetString(PyExc_TypeError, "where() needs condition, x and y (or only condition)");
        return NULL;
    }
    tg_tensor *c = tgpy_as_tensor(a[0], NULL);
    const tg_tensor *like = tgpy_is_tensor(a[1]) ? TENSOR(a[1]) : tgpy_is_tensor(a[2]) ? TENSOR(a[2]) : NULL;
    tg_tensor *x = c ? tgpy_as_tensor(a[1], like) : NULL;
    tg_tensor *y = x ? tgpy_as_tensor(a[2], like ? like : x) : NULL;
    tg_tensor *r = y ? tg_where(c, x, y) : NULL;
    if (!r && !PyErr_Occurred()) tgpy_raise();
    tg_tensor_release(c);
    tg_tensor_release(x);
    tg_tensor_release(y);
    return r ? W(r) : NULL;
}

FUNC(pad) {
    ARGS("pad", 4, 2, "x", "pad_width", "constant_values", "mode")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "pad() needs x and pad_width");
        return NULL;
    }
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    /* NumPy's pad_width: ((before, after), ...) per dim, or (before, after), or an int */
    int64_t pads[2 * TG_MAX_DIMS];
    PyObject *pw = a[1];
    int ok = 1;
    if (PyLong_Check(pw)) {
        long long v = PyLong_AsLongLong(pw);
        if (v == -1 && PyErr_Occurred()) {
            tg_tensor_release(x);
            return NULL;
        }
        for (int d = 0; d < x->ndim; d++) pads[2 * d] = pads[2 * d + 1] = v;
    } else {
        PyObject *arr = PyArray_FROM_OTF(pw, NPY_INT64, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_FORCECAST);
        if (!arr) ok = 0;
        else {
            PyArrayObject *pa = (PyArrayObject *)arr;
            int64_t *p = PyArray_DATA(pa);
            npy_intp sz = PyArray_SIZE(pa);
            if (sz == 2 && PyArray_NDIM(pa) == 1) {
                for (int d = 0; d < x->ndim; d++) { pads[2 * d] = p[0]; pads[2 * d + 1] = p[1]; }
            } else if (sz == 2 * x->ndim) {
                for (int d = 0; d < 2 * x->ndim; d++) pads[d] = p[d];
            } else {
                PyErr_Format(PyExc_ValueError,
                             "pad: pad_width must be an int, (before, after) or one (before, after) "
                             "pair per dimension (%d pairs)", x->ndim);
                ok = 0;
            }
            Py_DECREF(arr);
        }
    }
    double v = 0;
    if (ok && a[2]) {
        v = PyFloat_AsDouble(a[2]);
        if (PyErr_Occurred()) ok = 0;
    }
    /* mode= and negative widths (cropping): shape.c's pad_mode (issue 14) */
    int mode = 0;
    if (ok && a[3] && a[3] != Py_None) {
        const char *ms = PyUnicode_Check(a[3]) ? tgpy_utf8(a[3]) : NULL;
        mode = ms ? tg_pad_mode_code(ms) : -1;
        if (mode < 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "pad: mode must be 'constant', 'reflect', 'replicate' ('edge'), "
                             "'circular' ('wrap') or 'symmetric', got %R", a[3]);
            ok = 0;
        }
    }
    bool negative = false;
    for (int d = 0; ok && d < 2 * x->ndim; d++) negative |= pads[d] < 0;
    tg_tensor *r = !ok ? NULL : (mode || negative) ? tg_pad_mode(x, pads, mode, v) : tg_pad(x, pads, v);
    tg_tensor_release(x);
    if (!ok) return NULL;
    return W(r);
}

static int parse_reduction(PyObject *o, tg_reduction *r) {
    if (!o) {
        *r = TG_REDUCTION_MEAN;
        return 0;
    }
    const char *s = tgpy_utf8(o);
    if (!s) return -1;
    if (!strcmp(s, "mean")) *r = TG_REDUCTION_MEAN;
    else if (!strcmp(s, "sum")) *r = TG_REDUCTION_SUM;
    else if (!strcmp(s, "none")) *r = TG_REDUCTION_NONE;
    else {
        PyErr_Format(PyExc_ValueError, "reduction must be 'mean', 'sum' or 'none', got '%s'", s);
        return -1;
    }
    return 0;
}

static PyObject *loss2(const char *fname, tg_tensor *(*f)(tg_tensor *, tg_tensor *, tg_reduction),
                       bool int_target, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    static const char *const names[] = {"input", "target", "reduction"};
    PyObject *a[3];
    if (tgpy_args(fname, args, nargs, kw, names, 3, 3, a)) return NULL;
    if (!a[0] || !a[1]) {
        PyErr_Format(PyExc_TypeError, "%s() needs input and target", fname);
        return NULL;
    }
    tg_reduction red;
    if (parse_reduction(a[2], &red)) return NULL;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    tg_tensor *t = x ? tgpy_as_tensor(a[1], int_target ? NULL : x) : NULL;
    tg_tensor *r = t ? f(x, t, red) : NULL;
    if (!r && !PyErr_Occurred()) tgpy_raise();
    tg_tensor_release(x);
    tg_tensor_release(t);
    return r ? W(r) : NULL;
}
FUNC(mse_loss) { return loss2("mse_loss", tg_mse_loss, false, args, nargs, kw); }

FUNC(one_hot) {
    ARGS("one_hot", 3, 2, "labels", "num_classes", "dtype")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "one_hot() missing argument 'labels'");
        return NULL;
    }
    long long c = a[1] && a[1] != Py_None ? PyLong_AsLongLong(a[1]) : -1;
    if (c == -1 && PyErr_Occurred()) return NULL;
    tg_dtype dt;
    if (tgpy_parse_dtype(a[2], TG_FLOAT32, &dt)) return NULL;
    tg_tensor *l = tgpy_as_tensor(a[0], NULL);
    if (!l) return NULL;
    tg_tensor *r = tg_one_hot(l, c, dt);
    tg_tensor_release(l);
    return W(r);
}

FUNC(dropout) {
    ARGS("dropout", 3, 3, "x", "p", "training")
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "dropout() missing argument 'x'");
        return NULL;
    }
    double p = a[1] ? PyFloat_AsDouble(a[1]) : 0.5;
    int tr = tgpy_bool(a[2], 1);
    if ((p == -1.0 && PyErr_Occurred()) || tr < 0) return NULL;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_tensor *r = tg_dropout(x, p, tr);
    tg_tensor_release(x);
    return W(r);
}

FUNC(sum_to_shape) {
    ARGS("sum_to_shape", 2, 2, "x", "shape")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "sum_to_shape() needs x and shape");
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int nd;
    if (tgpy_shape_obj("sum_to_shape", a[1], shape, &nd)) return NULL;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_tensor *r = tg_sum_to_shape(x, nd, shape);
    tg_tensor_release(x);
    return W(r);
}

/* ===================================================================== */
/* Grad mode                                                              */
/* ===================================================================== */

FUNC(is_grad_enabled) { return PyBool_FromLong(tg_grad_enabled()); }
FUNC(set_grad_enabled) {
    ARGS("set_grad_enabled", 1, 1, "mode")
    int b = tgpy_bool(a[0], 1);
    if (b < 0) return NULL;
    return PyBool_FromLong(tg_set_grad_enabled(b));
}

/* ===================================================================== */
/* The op registry                                                        */
/* ===================================================================== */

static PyObject *opdef_dict(const tg_opdef *op) {
    PyObject *diff = PyList_New(0);
    if (!diff) return NULL;
    if (op->backward || op->composite || op->id == tg_op_find("custom")->id) {
        /* variadic ops (concat, conv2d with its optional bias, custom): every
         * bit of the mask up to 31 (bit 31 stands for all later inputs) */
        int n = op->arity < 0 ? 32 : op->arity;
        for (int i = 0; i < n; i++)
            if (op->diff_mask & (1u << i)) {
                PyObject *v = PyLong_FromLong(i);
                PyList_Append(diff, v);
                Py_DECREF(v);
            }
    }
    PyObject *writes = PyList_New(0); /* grad_in_tex split at ';' */
    if (!writes) {
        Py_DECREF(diff);
        return NULL;
    }
    for (const char *p = op->grad_in_tex; p && *p;) {
        const char *q = strchr(p, ';');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        PyObject *v = PyUnicode_FromStringAndSize(p, (Py_ssize_t)n);
        if (!v || PyList_Append(writes, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(writes);
            Py_DECREF(diff);
            return NULL;
        }
        Py_DECREF(v);
        p = q ? q + 1 : p + n;
    }
    tg_flops fl = tg_op_flops(op);
    return Py_BuildValue("{s:s,s:i,s:i,s:N,s:O,s:O,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:i,s:z,s:N,"
                         "s:{s:s,s:i,s:i,s:O},s:O}",
                         "name", op->name, "id", op->id, "arity", op->arity, "differentiable_inputs",
                         diff, "differentiable", op->backward || op->composite ? Py_True : Py_False,
                         "composite", op->composite ? Py_True : Py_False, "dtypes",
                         op->dtypes, "forward", op->forward, "forward_latex", op->forward_tex, "vjp",
                         op->vjp, "vjp_latex", op->vjp_tex, "doc", op->doc, "file", op->file,
                         "line", op->line, "examples", op->examples ? op->examples : "",
                         "signature", tg_op_sig_name(tg_op_signature(op)), "cost",
                         op->cost > 0 ? op->cost : 1, "grad_out_latex", op->grad_out_tex,
                         "grad_in_latex", writes, "flops", "per", tg_flops_kind_name(fl.per),
                         "forward", fl.forward, "backward", fl.backward, "per_grad_input",
                         fl.per_grad_input ? Py_True : Py_False, "functional",
                         tg_op_functional(op) ? Py_True : Py_False);
}

FUNC(ops) {
    PyObject *r = PyList_New(0);
    if (!r) return NULL;
    for (int i = 0; i < tg_op_count(); i++) {
        PyObject *d = opdef_dict(tg_op_get(i));
        if (!d || PyList_Append(r, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(r);
            return NULL;
        }
        Py_DECREF(d);
    }
    return r;
}

static PyObject *params_dict(const tg_params *p) {
    PyObject *axes = PyTuple_New(p->naxes < 0 ? 0 : p->naxes);
    for (int i = 0; i < p->naxes; i++) PyTuple_SET_ITEM(axes, i, PyLong_FromLongLong(p->axes[i]));
    PyObject *shape = PyTuple_New(p->ndim);
    for (int i = 0; i < p->ndim; i++) PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(p->shape[i]));
    PyObject *ints = PyTuple_New(4 * TG_MAX_DIMS);
    for (int i = 0; i < 4 * TG_MAX_DIMS; i++) PyTuple_SET_ITEM(ints, i, PyLong_FromLongLong(p->ints[i]));
    return Py_BuildValue("{s:N,s:i,s:O,s:N,s:N,s:(dddd),s:(LLLL)}", "axes", p->naxes < 0 ? (Py_INCREF(Py_None), Py_None) : axes,
                         "naxes", p->naxes, "keepdims", p->keepdims ? Py_True : Py_False, "shape", shape,
                         "ints", ints, "f", p->f[0], p->f[1], p->f[2], p->f[3], "i",
                         (long long)p->i[0], (long long)p->i[1], (long long)p->i[2], (long long)p->i[3]);
}

/* _op_example(name, k, dtype): (inputs list, params dict) from the registry's
 * example k, with the library generator seeded by the caller. */
FUNC(_op_example) {
    ARGS("_op_example", 3, 3, "name", "k", "dtype")
    const char *name = a[0] ? tgpy_utf8(a[0]) : NULL;
    long k = a[1] ? PyLong_AsLong(a[1]) : 0;
    if (!name || PyErr_Occurred()) return NULL;
    if (k < 0 || k > INT_MAX) { /* (int) of 2**32 was example 0 */
        PyErr_Format(PyExc_IndexError, "_op_example: %s has no example %ld", name, k);
        return NULL;
    }
    tg_dtype dt;
    if (tgpy_parse_dtype(a[2], TG_FLOAT64, &dt)) return NULL;
    const tg_opdef *op = tg_op_find(name);
    if (!op) {
        PyErr_Format(PyExc_KeyError, "no op named '%s'", name);
        return NULL;
    }
    int n;
    tg_tensor *in[8];
    tg_params p;
    if (tg_op_example(op, (int)k, dt, &n, in, &p)) return tgpy_raise();
    PyObject *lst = PyList_New(n);
    for (int i = 0; i < n; i++) PyList_SET_ITEM(lst, i, W(in[i]));
    PyObject *pd = params_dict(&p);
    PyObject *r = Py_BuildValue("(NN)", lst, pd);
    return r;
}

/* _op_apply(name, inputs, params_text): call an op generically. */
FUNC(_op_apply) {
    ARGS("_op_apply", 3, 3, "name", "inputs", "params")
    const char *name = a[0] ? tgpy_utf8(a[0]) : NULL;
    const char *ptext = a[2] ? tgpy_utf8(a[2]) : "";
    if (!name || !ptext || !a[1]) return NULL;
    const tg_opdef *op = tg_op_find(name);
    if (!op) {
        PyErr_Format(PyExc_KeyError, "no op named '%s'", name);
        return NULL;
    }
    tg_params p;
    if (tg_params_parse(ptext, &p)) return tgpy_raise();
    int n;
    tg_tensor **ts = tensor_list(name, a[1], &n);
    if (!ts) return NULL;
    tg_tensor *r = tg_op_apply(op, n, ts, &p);
    free_list(ts, n);
    return W(r);
}

/* ===================================================================== */
/* Runtime                                                                */
/* ===================================================================== */

FUNC(memory_stats) {
    tg_memory_stats_t s;
    tg_memory_stats(&s);
    return Py_BuildValue("{s:n,s:n,s:n,s:K,s:K}", "live_bytes", (Py_ssize_t)s.live_bytes,
                         "peak_bytes", (Py_ssize_t)s.peak_bytes, "cached_bytes",
                         (Py_ssize_t)s.cached_bytes, "allocations", (unsigned long long)s.n_alloc,
                         "cache_hits", (unsigned long long)s.n_cache_hits);
}
FUNC(empty_cache) {
    tg_memory_empty_cache();
    Py_RETURN_NONE;
}
FUNC(reset_peak_memory) {
    tg_memory_reset_peak();
    Py_RETURN_NONE;
}
FUNC(get_num_threads) { return PyLong_FromLong(tg_get_num_threads()); }
FUNC(set_num_threads) {
    ARGS("set_num_threads", 1, 1, "n")
    long n = a[0] ? PyLong_AsLong(a[0]) : -1;
    if (n == -1 && PyErr_Occurred()) return NULL;
    /* the range before the cast: (int) of 2**32 + 1 was 1 thread */
    if (n < 1 || n > INT_MAX || tg_set_num_threads((int)n)) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected a number of threads from 1 to %d, got %ld",
                     TG_MAX_THREADS, n);
        return NULL;
    }
    Py_RETURN_NONE;
}
FUNC(gemm_isa) { return PyUnicode_FromString(tg_gemm_isa()); }
FUNC(threads_default_source) { return PyUnicode_FromString(tg_threads_default_source()); }
FUNC(vmath_isa) { return PyUnicode_FromString(tg_vmath()->name); }

/* {"path": ..., "paths": [{"name", "available", "selftest", "detail",
 * "selftest_us", "in_use"}, ...]} for one family. */
static PyObject *family_info(tg_kernel_path_info *p, int n) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    const char *cur = "";
    for (int i = 0; i < n; i++) {
        if (p[i].in_use) cur = p[i].name;
        const char *st = p[i].selftest > 0 ? "passed" : p[i].selftest < 0 ? "failed" : "not run";
        PyObject *d = Py_BuildValue("{s:s,s:O,s:s,s:s,s:d,s:O}", "name", p[i].name, "available",
                                    p[i].available ? Py_True : Py_False, "selftest", st, "detail",
                                    p[i].detail, "selftest_us", p[i].selftest_us, "in_use",
                                    p[i].in_use ? Py_True : Py_False);
        if (!d || PyList_Append(list, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(d);
    }
    PyObject *r = Py_BuildValue("{s:s,s:N}", "path", cur, "paths", list);
    return r;
}
FUNC(kernel_paths) {
    tg_kernel_path_info g[8], v[8];
    int ng = tg_gemm_paths(g, 8), nv = tg_vmath_paths(v, 8);
    return Py_BuildValue("{s:N,s:N}", "gemm", family_info(g, ng < 8 ? ng : 8), "vmath",
                         family_info(v, nv < 8 ? nv : 8));
}
FUNC(kernel_report) {
    char buf[4096];
    tg_kernel_report(buf, sizeof buf);
    return PyUnicode_FromString(buf);
}
FUNC(_force_kernel) {
    ARGS("_force_kernel", 2, 2, "family", "path")
    const char *family = a[0] ? tgpy_utf8(a[0]) : NULL;
    if (!family) return NULL;
    const char *path = NULL;
    if (a[1] && a[1] != Py_None) {
        path = tgpy_utf8(a[1]);
        if (!path) return NULL;
    }
    if (tg_kernel_force(family, path) != TG_OK) return tgpy_raise();
    Py_RETURN_NONE;
}
FUNC(_testing_break_gemm) {
    ARGS("_testing_break_gemm", 1, 1, "path")
    const char *path = a[0] ? tgpy_utf8(a[0]) : NULL;
    if (!path) return NULL;
    if (tg_gemm_testing_break(path) != 0) {
        PyErr_Format(PyExc_ValueError, "_testing_break_gemm: no SIMD matmul path '%s'", path);
        return NULL;
    }
    Py_RETURN_NONE;
}
FUNC(_testing_break_vmath) {
    ARGS("_testing_break_vmath", 1, 1, "path")
    const char *path = a[0] ? tgpy_utf8(a[0]) : NULL;
    if (!path) return NULL;
    if (tg_vmath_testing_break(path) != 0) {
        PyErr_Format(PyExc_ValueError, "_testing_break_vmath: no SIMD vector-math path '%s'", path);
        return NULL;
    }
    Py_RETURN_NONE;
}
FUNC(_testing_break_winograd) {
    ARGS("_testing_break_winograd", 1, 1, "path")
    const char *path = a[0] ? tgpy_utf8(a[0]) : NULL;
    if (!path) return NULL;
    if (tg_wino_testing_break(path) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "_testing_break_winograd: '%s' is not a SIMD build of the Winograd transforms "
                     "here, or a convolution already chose one (call it first in a fresh process)",
                     path);
        return NULL;
    }
    Py_RETURN_NONE;
}
FUNC(winograd_isa) {
    ARGS("winograd_isa", 2, 2, "tile", "kernel")
    long v[2] = {3, 5};
    for (int k = 0; k < 2; k++)
        if (a[k]) {
            v[k] = PyLong_AsLong(a[k]);
            if (v[k] == -1 && PyErr_Occurred()) return NULL;
        }
    /* the range before the cast ((int) of 2**32 + 3 was 3); tg_wino_isa says which tiles exist */
    bool fits = v[0] >= INT_MIN && v[0] <= INT_MAX && v[1] >= INT_MIN && v[1] <= INT_MAX;
    const char *isa = fits ? tg_wino_isa((int)v[0], (int)v[1]) : NULL;
    if (!isa) {
        PyErr_Format(PyExc_ValueError,
                     "winograd_isa: no F(%ldx%ld, %ldx%ld) transforms; built in: tile 2 or 3 for "
                     "kernel=5, tile 2 or 4 for kernel=3", v[0], v[0], v[1], v[1]);
        return NULL;
    }
    return PyUnicode_FromString(isa);
}
FUNC(_testing_restore_kernels) {
    tg_gemm_testing_set_ukr("avx2", NULL, NULL);
    tg_gemm_testing_set_ukr("avx512", NULL, NULL);
    tg_vmath_testing_set_table(NULL);
    Py_RETURN_NONE;
}

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_module_methods[] = {
    F(tensor, "tensor(data, dtype=None, requires_grad=False)\n\n"
              "A new tensor holding a copy of data (a number, nested lists, a NumPy array\n"
              "or a Tensor). Python floats become float32 (the default dtype), ints int64;\n"
              "NumPy arrays keep their dtype.\n\n>>> tg.tensor([[1, 2], [3, 4]]).shape\n(2, 2)"),
    F(from_numpy, "from_numpy(array, requires_grad=False)\n\n"
                  "A tensor that shares the array's memory (no copy; writes are visible both\n"
                  "ways; the array stays alive while the tensor lives). Strided and negatively\n"
                  "strided arrays are shared as views; read-only arrays give read-only tensors.\n"
                  "Supported dtypes: float32, float64, int64 in native byte order."),
    F(zeros, "zeros(*shape, dtype=float32, requires_grad=False)"),
    F(ones, "ones(*shape, dtype=float32, requires_grad=False)"),
    F(empty, "empty(*shape, dtype=float32, requires_grad=False)\n\nUninitialised memory."),
    F(full, "full(shape, fill_value, dtype=None, requires_grad=False)"),
    F(rand, "rand(*shape, dtype=float32, requires_grad=False, generator=None)\n\nUniform in [0, 1) from the seedable generator (or from generator, a tg.Generator)."),
    F(randn, "randn(*shape, dtype=float32, requires_grad=False, generator=None)\n\nStandard normal from the seedable generator (or from generator, a tg.Generator)."),
    F(arange, "arange(start, stop=None, step=1, dtype=None, requires_grad=False)\n\nLike numpy.arange."),
    F(eye, "eye(N, M=None, k=0, dtype=float32, requires_grad=False)\n\nOnes on a diagonal."),
    F(zeros_like, "zeros_like(x, dtype=None, requires_grad=False)"),
    F(ones_like, "ones_like(x, dtype=None, requires_grad=False)"),
    F(empty_like, "empty_like(x, dtype=None, requires_grad=False)"),
    F(full_like, "full_like(x, fill_value, dtype=None, requires_grad=False)"),
    F(rand_like, "rand_like(x, dtype=None, requires_grad=False)"),
    F(randn_like, "randn_like(x, dtype=None, requires_grad=False)"),
    F(manual_seed, "manual_seed(seed)\n\nSeed the generator behind rand, randn, dropout and init:\n"
                   "the same seed gives the same numbers on every platform."),
    F(_random_u64, "_random_u64()\n\nThe next raw 64-bit number of the generator (for tests)."),
    F(concat, "concat(tensors, axis=0)\n\nJoin tensors along an existing axis."),
    F(stack, "stack(tensors, axis=0)\n\nJoin tensors along a new axis."),
    F(where, "where(condition, x, y)\n\nx where condition is non-zero, else y (broadcasting). With only the\n"
              "condition: NumPy's where, a tuple of int64 index tensors (nonzero(as_tuple=True))."),
    F(pad, "pad(x, pad_width, constant_values=0, mode='constant')\n\nPadding with NumPy's pad_width (an int, (before, after), or one pair per\n"
           "dim); negative widths crop. mode: 'constant', 'reflect', 'replicate' ('edge'),\n"
           "'circular' ('wrap') or 'symmetric'. tg.nn.functional.pad takes PyTorch's\n"
           "flat, last-dim-first widths.\n\n>>> tg.pad(tg.tensor([1, 2, 3, 4]), (2, -1), mode='reflect').tolist()\n[3, 2, 1, 2, 3]"),
    F(mse_loss, "mse_loss(input, target, reduction='mean')\n\nMean squared error."),
    F(one_hot, "one_hot(labels, num_classes=None, dtype=float32)\n\n"
               "Rows of the identity picked by int64 labels; num_classes None or -1 infers it\n"
               "(max label + 1), below -1 is a ValueError."),
    F(dropout, "dropout(x, p=0.5, training=True)\n\nInverted dropout."),
    F(sum_to_shape, "sum_to_shape(x, shape)\n\nSum x down to a shape it was broadcast from."),
    F(is_grad_enabled, "is_grad_enabled()\n\nWhether ops are being recorded on the tape (this thread)."),
    F(set_grad_enabled, "set_grad_enabled(mode)\n\nTurn recording on or off; returns the previous mode."),
    F(ops, "ops()\n\nThe op registry: for every op its name, arity, differentiable inputs,\n"
           "dtypes, its forward and VJP formulas (plain text and LaTeX), its calling\n"
           "'signature' ('unary', 'binary', 'reduce': bindings generated from the registry;\n"
           "'custom': bound by hand; 'internal': no Python function) and 'cost', the\n"
           "work per element relative to an add (8 for the transcendental kernels);\n"
           "'grad_out_latex' and 'grad_in_latex': the gradient symbols the VJP formula\n"
           "reads and writes (one per differentiable input), for the stepper;\n"
           "'flops': how the profiler counts its floating-point work, {'per': the unit\n"
           "('output' element, 'input' element, 'matmul' M*N*K, 'conv', 'conv_grad' or\n"
           "'none'), 'forward' and 'backward' flops per unit, 'per_grad_input': the\n"
           "backward count is per input needing a gradient}; 'functional': also a\n"
           "function of tg.nn.functional.\n\n"
           ">>> [(o['signature'], o['cost']) for o in tg.ops() if o['name'] == 'exp']\n"
           "[('unary', 8)]\n"
           ">>> [o['flops'] for o in tg.ops() if o['name'] == 'matmul']\n"
           "[{'per': 'matmul', 'forward': 2, 'backward': 2, 'per_grad_input': True}]"),
    F(_op_example, "_op_example(name, k, dtype)\n\nInputs and params of an op's registry example k."),
    F(_op_apply, "_op_apply(name, inputs, params)\n\nCall an op generically with a params string."),
    F(memory_stats, "memory_stats()\n\nStatistics of the caching allocator behind tensor data."),
    F(empty_cache, "empty_cache()\n\nReturn cached tensor memory, and the kernels' kept scratch buffers, to the system."),
    F(reset_peak_memory, "reset_peak_memory()\n\nReset memory_stats()['peak_bytes']."),
    F(get_num_threads, "get_num_threads()\n\nThreads the pool may use for large kernels (the calling thread\n"
                       "included). The default is TAPEGRAD_NUM_THREADS if set, else OMP_NUM_THREADS,\n"
                       "else the CPUs this process may use (affinity mask, container CPU quota).\n"
                       "tg.show_config() shows it next to NumPy's BLAS threads.\n\n"
                       ">>> tg.get_num_threads() >= 1\nTrue"),
    F(set_num_threads, "set_num_threads(n)\n\nSet the threads large kernels may use, 1 <= n <= 256 (later calls only).\n"
                       "Results do not depend on it: every kernel gives the same bits on any count.\n\n"
                       ">>> n = tg.get_num_threads(); tg.set_num_threads(1); tg.get_num_threads()\n1\n"
                       ">>> tg.set_num_threads(n)"),
    F(gemm_isa, "gemm_isa()\n\nThe matmul micro-kernel chosen for this CPU."),
    F(threads_default_source, "threads_default_source()\n\nWhich rule set the default thread count: "
                              "'TAPEGRAD_NUM_THREADS', 'OMP_NUM_THREADS' or 'cpus'."),
    F(kernel_paths, "kernel_paths()\n\nFor 'gemm' (matmul) and 'vmath' (exp/log/tanh/sigmoid, reductions, optimizer\n"
                    "loops): the path in use and, for every compiled path, whether this CPU can run\n"
                    "it, its self-test result ('passed', 'failed', 'not run'), why (detail) and its\n"
                    "cost in microseconds. tg.config() reports the same."),
    F(kernel_report, "kernel_report()\n\nWhat went wrong while choosing the kernel paths (a failed self-test, a\n"
                     "refused TAPEGRAD_GEMM / TAPEGRAD_VMATH), one line each; '' if nothing."),
    F(_force_kernel, "_force_kernel(family, path)\n\nFor tests: use path ('avx512', 'avx2', 'baseline', ...) for\n"
                     "family ('gemm' or 'vmath'); None: the default. Raises RuntimeError if this CPU\n"
                     "cannot run it or it failed its self-test, ValueError for an unknown name."),
    F(_testing_break_gemm, "_testing_break_gemm(path)\n\nFor tests: put a deliberately broken micro-kernel (a wrong\n"
                           "edge-tile store) in a SIMD matmul path and forget the choice, so that the next\n"
                           "matmul runs the self-test again."),
    F(_testing_break_vmath, "_testing_break_vmath(path)\n\nFor tests: put a deliberately broken copy of a SIMD\n"
                            "vector-math build (tanh wrong in the loop's tail) in its place and forget the\n"
                            "choice, so that the next kernel call runs the self-test again."),
    F(_testing_break_winograd, "_testing_break_winograd(path)\n\nFor tests, before any convolution of the process: make a\n"
                               "SIMD build ('avx512' or 'avx2') of the Winograd transforms wrong on a remainder\n"
                               "lane, so that its self-test refuses it and the next build down is used."),
    F(winograd_isa, "winograd_isa(tile=3, kernel=5)\n\nThe build of the Winograd convolution transforms "
                    "F(tile x tile, kernel x kernel)\nin use: 'avx512', 'avx2' or 'baseline' (chosen and "
                    "self-tested at the first call).\nBuilt in: tiles 2 and 3 for 5x5 kernels, 2 and 4 for "
                    "3x3 kernels."),
    F(_testing_restore_kernels, "_testing_restore_kernels()\n\nFor tests: undo _testing_break_gemm and\n"
                                "_testing_break_vmath."),
    F(vmath_isa, "vmath_isa()\n\nThe build of the vectorized exp/log/tanh/sigmoid and sum kernels in use:\n"
                 "'avx512', 'avx2' (x86-64), 'neon' (arm64) or 'baseline' (TAPEGRAD_VMATH=baseline\n"
                 "forces the latter)."),
    {NULL}};
#undef F

/* ===================================================================== */
/* Module definition                                                      */
/* ===================================================================== */

extern PyMethodDef tgpy_op_functions[];
extern PyMethodDef tgpy_nn_methods[];
extern PyMethodDef tgpy_inspect_methods[]; /* inspect.c */
extern PyMethodDef tgpy_shape_functions[];  /* shapeops.c (issue 14, shape) */
extern PyMethodDef tgpy_nnfuncs_methods[]; /* nnfuncs.c: losses with options, layers as ops */

static int add_functions(PyObject *m, PyMethodDef *defs) {
    for (PyMethodDef *d = defs; d->ml_name; d++) {
        PyObject *f = PyCMethod_New(d, m, PyModule_GetNameObject(m), NULL);
        if (!f) return -1;
        Py_DECREF(PyModule_GetNameObject(m));
        if (PyModule_AddObject(m, d->ml_name, f) < 0) {
            Py_DECREF(f);
            return -1;
        }
    }
    return 0;
}

/* Long kernels run without the GIL, so other Python threads can work. */
static void *leave_gil(void) { return PyEval_SaveThread(); }
static void enter_gil(void *ts) { PyEval_RestoreThread((PyThreadState *)ts); }

static int exec_module(PyObject *m) {
    if (PyArray_ImportNumPyAPI() < 0) return -1;
    ModState *st = PyModule_GetState(m);
    tgpy_state = st;
    /* in tg_dtype order; "bool" is also exported as tg.bool_ (python/tapegrad/__init__.py) */
    const char *names[TG_N_DTYPES] = {"float32", "float64", "int64", "bool", "int32", "uint8"};
    int types[TG_N_DTYPES] = {NPY_FLOAT32, NPY_FLOAT64, NPY_INT64, NPY_BOOL, NPY_INT32, NPY_UINT8};
    for (int i = 0; i < TG_N_DTYPES; i++) {
        st->dtypes[i] = (PyObject *)PyArray_DescrFromType(types[i]);
        if (!st->dtypes[i] || PyModule_AddObjectRef(m, names[i], st->dtypes[i]) < 0) return -1;
    }
    if (tgpy_opbind_init() < 0) return -1; /* docstrings of the generated bindings */
    if (tgpy_tensor_type_init(m, st) < 0) return -1;
    if (tgpy_autograd_init(m, st) < 0) return -1;
    if (tgpy_generator_init(m) < 0) return -1;
    if (add_functions(m, tgpy_op_functions) < 0) return -1;
    if (add_functions(m, tgpy_op_generated_functions) < 0) return -1;
    if (add_functions(m, tgpy_math_functions) < 0) return -1;
    if (add_functions(m, tgpy_scan_functions) < 0) return -1;
    if (add_functions(m, tgpy_autograd_methods) < 0) return -1;
    if (add_functions(m, tgpy_nn_methods) < 0) return -1;
    if (add_functions(m, tgpy_inspect_methods) < 0) return -1;
    if (add_functions(m, tgpy_logic_functions) < 0) return -1; /* logicbind.c */
    if (add_functions(m, tgpy_shape_functions) < 0) return -1;
    if (add_functions(m, tgpy_nnfuncs_methods) < 0) return -1;
    tg_set_kernel_bracket(leave_gil, enter_gil);
    tgpy_aliasing_init(); /* NumPy aliases of saved tensors are read-only */
    tgpy_inplace_init();  /* x += y on the tape: x's Python object follows the new version */
    if (PyModule_AddStringConstant(m, "__version__", TG_VERSION) < 0) return -1;
    return 0;
}

static int mod_traverse(PyObject *m, visitproc visit, void *arg) {
    ModState *st = PyModule_GetState(m);
    Py_VISIT(st->Tensor);
    Py_VISIT(st->Tape);
    Py_VISIT(st->Entry);
    Py_VISIT(st->Stepper);
    for (int i = 0; i < TG_N_DTYPES; i++) Py_VISIT(st->dtypes[i]);
    return 0;
}

static int mod_clear(PyObject *m) {
    ModState *st = PyModule_GetState(m);
    Py_CLEAR(st->Tensor);
    Py_CLEAR(st->Tape);
    Py_CLEAR(st->Entry);
    Py_CLEAR(st->Stepper);
    for (int i = 0; i < TG_N_DTYPES; i++) Py_CLEAR(st->dtypes[i]);
    return 0;
}

static PyModuleDef_Slot mod_slots[] = {{Py_mod_exec, exec_module}, {0, NULL}};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tapegrad._C",
    .m_doc = "The compiled core of tapegrad: tensors, the tape and the ops.",
    .m_size = sizeof(ModState),
    .m_methods = tgpy_module_methods,
    .m_slots = mod_slots,
    .m_traverse = mod_traverse,
    .m_clear = mod_clear,
};

PyMODINIT_FUNC PyInit__C(void) { return PyModuleDef_Init(&moddef); }
