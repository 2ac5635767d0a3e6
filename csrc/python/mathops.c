/*
 * mathops.c -- the hand-written bindings of the elementwise math and
 * activation ops of issue 14 whose Python signatures are not UNARY/BINARY
 * (parameters such as decimals=, rounding_mode=, alpha=, approximate=):
 * each is a Tensor method and a module function (tg.round(x, 2),
 * x.round(2)).  The ops themselves are in csrc/ops/elementwise.c.
 */
#include "common.h"

#include <math.h>
#include <string.h>

#define METHOD(name) \
    static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;
#define FN(name)                                                                      \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, \
                               PyObject *kw) {                                        \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                    \
    }

/* A float argument (absent or None: deflt); -1 with "fname: arg: ..." */
static int get_float(const char *fname, const char *arg, PyObject *o, double deflt, double *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a number, got %R", fname, arg, o);
        return -1;
    }
    return 0;
}
/* An int argument (absent: deflt); -1 with "fname: arg: ..." */
static int get_int(const char *fname, const char *arg, PyObject *o, long long deflt, long long *out) {
    if (!o) {
        *out = deflt;
        return 0;
    }
    if (!PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %R", fname, arg, o);
        return -1;
    }
    *out = PyLong_AsLongLong(o);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: %s=%R is out of range", fname, arg, o);
        return -1;
    }
    return 0;
}
/* A string option among `choices` (NULL-terminated); absent or None:
 * index `deflt` (when none_ok).  Returns the index, -1 with ValueError. */
static int get_choice(const char *fname, const char *arg, PyObject *o, const char *const *choices,
                      int deflt, const char *expected) {
    if (!o || o == Py_None) {
        if (deflt >= 0) return deflt;
    } else if (PyUnicode_Check(o)) {
        const char *s = tgpy_utf8(o);
        if (!s) return -1;
        for (int i = 0; choices[i]; i++)
            if (!strcmp(s, choices[i])) return i;
    }
    PyErr_Format(PyExc_ValueError, "%s: %s must be %s, got %R", fname, arg, expected, o ? o : Py_None);
    return -1;
}
/* The tensor argument `o` converted next to self (scalars take self's dtype). */
static tg_tensor *tensor_arg(const char *fname, const char *arg, PyObject *o, PyObject *self) {
    if (!o) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument '%s'", fname, arg);
        return NULL;
    }
    tg_tensor *t = tgpy_as_tensor(o, TENSOR(self));
    if (!t) tgpy_prefix_error(fname);
    return t;
}

/* ===================================================================== */
/* Elementwise math                                                       */
/* ===================================================================== */

METHOD(round) {
    ARGS("round", 1, 1, "decimals")
    long long d;
    if (get_int("round", "decimals", a[0], 0, &d)) return NULL;
    if (d > 300 || d < -300) {
        PyErr_Format(PyExc_ValueError, "round: decimals=%lld is out of range (expected -300..300)", d);
        return NULL;
    }
    return W(tg_round(TENSOR(self), (int)d));
}

/* div(other, rounding_mode=None): true division, or rounded towards zero
 * ('trunc') or down ('floor', the same as floor_divide and //). */
static tgpy_binfn div_fn(PyObject *mode) {
    static const char *const modes[] = {"true", "trunc", "floor", NULL};
    int k = get_choice("div", "rounding_mode", mode, modes, 0, "None, 'trunc' or 'floor'");
    if (k == 0 && mode && mode != Py_None) { /* "true" is not one of PyTorch's spellings */
        PyErr_Format(PyExc_ValueError, "div: rounding_mode must be None, 'trunc' or 'floor', got %R", mode);
        return NULL;
    }
    return k < 0 ? NULL : k == 0 ? tg_div : k == 1 ? tg_trunc_divide : tg_floor_divide;
}
METHOD(div) {
    ARGS("div", 2, 1, "other", "rounding_mode")
    tgpy_binfn f = div_fn(a[1]);
    if (!f) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "div() missing argument 'other'");
        return NULL;
    }
    PyObject *other[1] = {a[0]};
    return tgpy_binary_method("div", f, self, other, 1, NULL);
}
static PyObject *fn_div(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    ARGS("div", 3, 2, "input", "other", "rounding_mode")
    tgpy_binfn f = div_fn(a[2]);
    if (!f) return NULL;
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "div() takes two tensors (input, other)");
        return NULL;
    }
    PyObject *ab[2] = {a[0], a[1]};
    return tgpy_binary_function("div", f, ab, 2, NULL);
}

METHOD(lerp) {
    ARGS("lerp", 2, 2, "end", "weight")
    tg_tensor *b = tensor_arg("lerp", "end", a[0], self);
    tg_tensor *w = b ? tensor_arg("lerp", "weight", a[1], self) : NULL;
    tg_tensor *r = w ? tg_lerp(TENSOR(self), b, w) : NULL;
    tg_tensor_release(b);
    tg_tensor_release(w);
    if (!r && PyErr_Occurred()) return NULL;
    return W(r);
}

METHOD(nan_to_num) {
    ARGS("nan_to_num", 3, 3, "nan", "posinf", "neginf")
    double n, p, m;
    if (get_float("nan_to_num", "nan", a[0], 0.0, &n) || get_float("nan_to_num", "posinf", a[1], NAN, &p) ||
        get_float("nan_to_num", "neginf", a[2], NAN, &m))
        return NULL;
    /* an explicit NaN replacement for +-inf is kept as given */
    if (a[1] && a[1] != Py_None && isnan(p)) p = NAN;
    return W(tg_nan_to_num(TENSOR(self), n, p, m));
}

FN(round) FN(lerp) FN(nan_to_num)

/* ===================================================================== */
/* Activations                                                            */
/* ===================================================================== */

METHOD(gelu) {
    ARGS("gelu", 1, 1, "approximate")
    static const char *const modes[] = {"none", "tanh", NULL};
    int k = get_choice("gelu", "approximate", a[0], modes, 0, "'none' or 'tanh'");
    if (k < 0) return NULL;
    return W(k == 0 ? tg_gelu(TENSOR(self)) : tg_gelu_tanh(TENSOR(self)));
}

/* softplus(beta=1, threshold=20): PyTorch's; threshold=None or inf with
 * beta=1 is the plain (stable) softplus op */
METHOD(softplus) {
    ARGS("softplus", 2, 2, "beta", "threshold")
    double beta, th;
    if (get_float("softplus", "beta", a[0], 1.0, &beta)) return NULL;
    if (a[1] == Py_None) th = INFINITY;
    else if (get_float("softplus", "threshold", a[1], 20.0, &th)) return NULL;
    if (beta == 1.0 && th == INFINITY) return W(tg_softplus(TENSOR(self)));
    return W(tg_softplus_beta(TENSOR(self), beta, th));
}

METHOD(elu) {
    ARGS("elu", 1, 1, "alpha")
    double alpha;
    if (get_float("elu", "alpha", a[0], 1.0, &alpha)) return NULL;
    return W(tg_elu(TENSOR(self), alpha));
}
METHOD(celu) {
    ARGS("celu", 1, 1, "alpha")
    double alpha;
    if (get_float("celu", "alpha", a[0], 1.0, &alpha)) return NULL;
    return W(tg_celu(TENSOR(self), alpha));
}
METHOD(hardtanh) {
    ARGS("hardtanh", 2, 2, "min_val", "max_val")
    double lo, hi;
    if (get_float("hardtanh", "min_val", a[0], -1.0, &lo) || get_float("hardtanh", "max_val", a[1], 1.0, &hi))
        return NULL;
    return W(tg_hardtanh(TENSOR(self), lo, hi));
}

/* axis=-1 (alias dim; None: -1) */
static int get_axis(const char *fname, PyObject *axis, PyObject *dim, long long *out) {
    if (axis && dim) {
        PyErr_Format(PyExc_TypeError, "%s() got both axis and dim (they are the same argument)", fname);
        return -1;
    }
    PyObject *o = axis ? axis : dim;
    return get_int(fname, "axis", o == Py_None ? NULL : o, -1, out);
}
METHOD(softmin) {
    ARGS("softmin", 2, 1, "axis", "dim")
    long long ax;
    if (get_axis("softmin", a[0], a[1], &ax)) return NULL;
    return W(tg_softmin(TENSOR(self), ax));
}
METHOD(glu) {
    ARGS("glu", 2, 1, "axis", "dim")
    long long ax;
    if (get_axis("glu", a[0], a[1], &ax)) return NULL;
    return W(tg_glu(TENSOR(self), ax));
}

FN(gelu) FN(softplus) FN(elu) FN(celu) FN(hardtanh) FN(softmin) FN(glu)

/* ===================================================================== */
/* The tables (tensor.c and module.c add them to Tensor and the module)   */
/* ===================================================================== */

#define M(name, doc) {#name, (PyCFunction)(void (*)(void))m_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_math_methods[] = {
    M(round, "round(decimals=0)\n\nRound half to even (as NumPy and PyTorch) to `decimals` places\n"
             "(negative: tens, hundreds...); integers stay integers. Gradient zero.\n\n"
             ">>> tg.tensor([0.5, 1.5, 2.5, 1.26]).round().tolist()\n[0.0, 2.0, 2.0, 1.0]"),
    M(div, "div(other, rounding_mode=None)\n\nTrue division (None), or rounded towards zero ('trunc') or\n"
           "down ('floor', Python's //). The rounded forms have gradient zero.\n\n"
           ">>> tg.tensor([-7.0, 7.0]).div(2, rounding_mode='trunc').tolist()\n[-3.0, 3.0]"),
    M(lerp, "lerp(end, weight)\n\nself + weight * (end - self); weight is a tensor or a number.\n\n"
            ">>> tg.tensor([0.0, 10.0]).lerp(tg.tensor([1.0, 20.0]), 0.5).tolist()\n[0.5, 15.0]"),
    M(nan_to_num, "nan_to_num(nan=0.0, posinf=None, neginf=None)\n\nReplace NaN, +inf and -inf (None: the "
                  "dtype's largest and lowest\nfinite values). Gradient 1 where x is finite, else 0.\n\n"
                  ">>> tg.tensor([float('nan'), 1.0]).nan_to_num(nan=-1.0).tolist()\n[-1.0, 1.0]"),
    M(gelu, "gelu(approximate='none')\n\nGaussian error linear unit x * Phi(x); approximate='tanh' uses\n"
            "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch.\n\n"
            ">>> round(tg.tensor([1.0]).gelu(approximate='tanh').item(), 4)\n0.8412"),
    M(softplus, "softplus(beta=1, threshold=20)\n\nlog(1 + exp(beta x)) / beta, and x where beta x > threshold\n"
                "(PyTorch's). threshold=None: never linear.\n\n"
                ">>> round(tg.tensor([0.0]).softplus().item(), 4)\n0.6931"),
    M(elu, "elu(alpha=1.0)\n\nx if x > 0 else alpha * (exp(x) - 1).\n\n"
           ">>> tg.tensor([2.0, 0.0]).elu().tolist()\n[2.0, 0.0]"),
    M(celu, "celu(alpha=1.0)\n\nx if x > 0 else alpha * (exp(x / alpha) - 1); alpha must not be 0.\n\n"
            ">>> tg.tensor([2.0, 0.0]).celu(0.5).tolist()\n[2.0, 0.0]"),
    M(hardtanh, "hardtanh(min_val=-1.0, max_val=1.0)\n\nClamp to [min_val, max_val]; gradient 0 at and beyond "
                "the corners.\n\n>>> tg.tensor([-3.0, 0.5, 3.0]).hardtanh().tolist()\n[-1.0, 0.5, 1.0]"),
    M(softmin, "softmin(axis=-1)\n\nsoftmax(-x) along axis (alias dim).\n\n"
               ">>> tg.tensor([0.0, 0.0]).softmin().tolist()\n[0.5, 0.5]"),
    M(glu, "glu(axis=-1)\n\nGated linear unit: a * sigmoid(b), a and b the two halves of x along\n"
           "axis (alias dim; its size must be even).\n\n"
           ">>> tg.tensor([2.0, 0.0]).glu().tolist()\n[1.0]"),
    {NULL}};
#undef M
#define F(name, doc) {#name, (PyCFunction)(void (*)(void))fn_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_math_functions[] = {
    F(round, "round(x, decimals=0)\n\nRound half to even (as NumPy and PyTorch) to `decimals` places\n"
             "(negative: tens, hundreds...); integers stay integers. Gradient zero.\n\n"
             ">>> tg.round(tg.tensor([1.234, 5.678], dtype=tg.float64), 1).tolist()\n[1.2, 5.7]"),
    F(div, "div(input, other, rounding_mode=None)\n\nTrue division (None), or rounded towards zero "
           "('trunc') or down\n('floor', the same as floor_divide and //). The rounded forms have\n"
           "gradient zero. Integers: rounded division by zero gives 0 (NumPy's convention).\n\n"
           ">>> tg.div(tg.tensor([-7.0, 7.0]), 2, rounding_mode='floor').tolist()\n[-4.0, 3.0]"),
    F(lerp, "lerp(input, end, weight)\n\ninput + weight * (end - input), with broadcasting; weight is a\n"
            "tensor or a number. A composite op (sub, mul, add on the tape).\n\n"
            ">>> tg.lerp(tg.tensor([0.0, 10.0]), tg.tensor([1.0, 20.0]), 0.25).tolist()\n[0.25, 12.5]"),
    F(nan_to_num, "nan_to_num(x, nan=0.0, posinf=None, neginf=None)\n\nReplace NaN, +inf and -inf (None: the "
                  "dtype's largest and lowest\nfinite values), as NumPy. Gradient 1 where x is finite, else 0.\n\n"
                  ">>> tg.nan_to_num(tg.tensor([float('inf'), 2.0]), posinf=9.0).tolist()\n[9.0, 2.0]"),
    F(gelu, "gelu(x, approximate='none')\n\nGaussian error linear unit x * Phi(x); approximate='tanh' uses\n"
            "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch.\n\n"
            ">>> round(tg.gelu(tg.tensor([1.0])).item(), 4)\n0.8413"),
    F(softplus, "softplus(x, beta=1, threshold=20)\n\nlog(1 + exp(beta x)) / beta, and x where beta x > threshold\n"
                "(PyTorch's). threshold=None: never linear.\n\n"
                ">>> tg.softplus(tg.tensor([30.0])).tolist()\n[30.0]"),
    F(elu, "elu(x, alpha=1.0)\n\nx if x > 0 else alpha * (exp(x) - 1).\n\n"
           ">>> round(tg.elu(tg.tensor([-1.0])).item(), 4)\n-0.6321"),
    F(celu, "celu(x, alpha=1.0)\n\nx if x > 0 else alpha * (exp(x / alpha) - 1); alpha must not be 0.\n\n"
            ">>> round(tg.celu(tg.tensor([-1.0]), 2.0).item(), 4)\n-0.7869"),
    F(hardtanh, "hardtanh(x, min_val=-1.0, max_val=1.0)\n\nClamp to [min_val, max_val]; gradient 0 at and beyond "
                "the corners.\n\n>>> tg.hardtanh(tg.tensor([-3.0, 3.0]), 0.0, 2.0).tolist()\n[0.0, 2.0]"),
    F(softmin, "softmin(x, axis=-1)\n\nsoftmax(-x) along axis (alias dim).\n\n"
               ">>> tg.softmin(tg.tensor([[1.0, 1.0]]), dim=1).tolist()\n[[0.5, 0.5]]"),
    F(glu, "glu(x, axis=-1)\n\nGated linear unit: a * sigmoid(b), a and b the two halves of x along\n"
           "axis (alias dim; its size must be even).\n\n"
           ">>> tg.glu(tg.tensor([[3.0], [0.0]]), axis=0).tolist()\n[[1.5]]"),
    {NULL}};
#undef F
