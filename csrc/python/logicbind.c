/*
 * logicbind.c -- the hand-bound parts of the logic ops (csrc/ops/logic.c):
 * isclose and allclose (extra parameters), as tg.isclose / tg.allclose and
 * the Tensor methods x.isclose / x.allclose.  The other logic ops are bound
 * from the registry (opbind.c); their operators (&, |, ^, ~, <<, >>) are in
 * number.c.
 */
#include "common.h"

#include <math.h>

#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

static int tol_arg(const char *who, const char *name, PyObject *o, double deflt, double *out) {
    *out = deflt;
    if (!o || o == Py_None) return 0;
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a number, got %s", who, name, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = v;
    return 0;
}

/* isclose(a, other, rtol, atol, equal_nan) as a new tensor, or NULL. */
static tg_tensor *isclose_of(const char *who, PyObject *self, PyObject **a) {
    double rtol, atol;
    if (tol_arg(who, "rtol", a[1], 1e-05, &rtol) || tol_arg(who, "atol", a[2], 1e-08, &atol)) return NULL;
    int equal_nan = a[3] ? PyObject_IsTrue(a[3]) : 0;
    if (equal_nan < 0) return NULL;
    if (!a[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing its second tensor argument", who);
        return NULL;
    }
    tg_tensor *b = tgpy_as_tensor(a[0], TENSOR(self));
    if (!b) return NULL;
    tg_tensor *r = tg_isclose(TENSOR(self), b, rtol, atol, equal_nan != 0);
    tg_tensor_release(b);
    if (!r) tgpy_raise();
    return r;
}

PyObject *tgpy_m_isclose(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    ARGS("isclose", 4, 4, "other", "rtol", "atol", "equal_nan")
    tg_tensor *r = isclose_of("isclose", self, a);
    return r ? W(r) : NULL;
}

PyObject *tgpy_m_allclose(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    ARGS("allclose", 4, 4, "other", "rtol", "atol", "equal_nan")
    tg_tensor *c = isclose_of("allclose", self, a);
    tg_tensor *all = c ? tg_all(c, NULL, 0, false) : NULL;
    tg_tensor_release(c);
    if (!all) return c ? tgpy_raise() : NULL;
    bool v = *(const uint8_t *)tg_tensor_data(all) != 0;
    tg_tensor_release(all);
    return PyBool_FromLong(v);
}

static PyObject *fn_isclose(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    (void)mod;
    return tgpy_as_function("isclose", tgpy_m_isclose, args, nargs, kw);
}
static PyObject *fn_allclose(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
    (void)mod;
    return tgpy_as_function("allclose", tgpy_m_allclose, args, nargs, kw);
}

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))fn_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_logic_functions[] = {
    F(isclose, "isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False)\n\n"
               "Elementwise |a - b| <= atol + rtol * |b| (NumPy's rule: not symmetric in a\n"
               "and b), as a bool tensor. Infinities are close only to themselves; NaNs\n"
               "only to NaNs, and only with equal_nan=True. Not differentiable.\n\n"
               ">>> import tapegrad as tg\n"
               ">>> tg.isclose(tg.tensor([1.0, 2.0]), tg.tensor([1.0 + 1e-9, 2.1])).tolist()\n"
               "[True, False]"),
    F(allclose, "allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False)\n\n"
                "True if every element of isclose(a, b, rtol, atol, equal_nan) is true: a\n"
                "Python bool, as numpy.allclose.\n\n"
                ">>> import tapegrad as tg\n"
                ">>> tg.allclose(tg.tensor([1.0, 2.0]), tg.tensor([1.0, 2.0 + 1e-7]))\n"
                "True"),
    {NULL}};
#undef F
