/*
 * number.c -- Tensor's operators: the number protocol (a + b, a @ b, -a,
 * a += b, bool(t), float(t)), comparisons, and the binary ops as methods and
 * module functions (t.add(other), tg.add(2, t); generated in opbind.c).
 * Operands that are not tensors (Python numbers, lists, arrays) are
 * converted next to the tensor's dtype.
 */
#include "common.h"

/* Convert both operands (one is a Tensor) and apply f; NotImplemented for
 * types we do not know, so Python can try the other operand. */
static PyObject *binop(PyObject *a, PyObject *b, tgpy_binfn f) {
    tg_tensor *ta, *tb;
    if (tgpy_is_tensor(a)) {
        ta = TENSOR(a);
        tg_tensor_retain(ta);
        tb = tgpy_as_tensor(b, ta);
    } else {
        tb = TENSOR(b);
        tg_tensor_retain(tb);
        ta = tgpy_as_tensor(a, tb);
    }
    if (!ta || !tb) {
        tg_tensor_release(ta);
        tg_tensor_release(tb);
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            Py_RETURN_NOTIMPLEMENTED;
        }
        return NULL;
    }
    tg_tensor *r = f(ta, tb);
    tg_tensor_release(ta);
    tg_tensor_release(tb);
    return W(r);
}

static PyObject *nb_add(PyObject *a, PyObject *b) { return binop(a, b, tg_add); }
static PyObject *nb_sub(PyObject *a, PyObject *b) { return binop(a, b, tg_sub); }
static PyObject *nb_mul(PyObject *a, PyObject *b) { return binop(a, b, tg_mul); }
static PyObject *nb_div(PyObject *a, PyObject *b) { return binop(a, b, tg_div); }
static PyObject *nb_matmul(PyObject *a, PyObject *b) { return binop(a, b, tg_matmul); }
/* Python's sign convention (the sign of b), as NumPy's % and //; fmod is C's */
static PyObject *nb_mod(PyObject *a, PyObject *b) { return binop(a, b, tg_remainder); }
static PyObject *nb_floordiv(PyObject *a, PyObject *b) { return binop(a, b, tg_floor_divide); }
static PyObject *nb_pow(PyObject *a, PyObject *b, PyObject *m) {
    if (m != Py_None) Py_RETURN_NOTIMPLEMENTED;
    return binop(a, b, tg_pow);
}
/* logic.c's operators: & | ^ << >> (either side may be the tensor) and ~ */
static PyObject *nb_and(PyObject *a, PyObject *b) { return binop(a, b, tg_bitwise_and); }
static PyObject *nb_or(PyObject *a, PyObject *b) { return binop(a, b, tg_bitwise_or); }
static PyObject *nb_xor(PyObject *a, PyObject *b) { return binop(a, b, tg_bitwise_xor); }
static PyObject *nb_lshift(PyObject *a, PyObject *b) { return binop(a, b, tg_left_shift); }
static PyObject *nb_rshift(PyObject *a, PyObject *b) { return binop(a, b, tg_right_shift); }
static PyObject *nb_invert(PyObject *a) { return W(tg_bitwise_not(TENSOR(a))); }
static PyObject *nb_neg(PyObject *a) { return W(tg_neg(TENSOR(a))); }
static PyObject *nb_pos(PyObject *a) {
    Py_INCREF(a);
    return a;
}
static PyObject *nb_abs(PyObject *a) { return W(tg_abs(TENSOR(a))); }

static PyObject *inplace(PyObject *a, PyObject *b, char op) {
    tg_tensor *tb = tgpy_as_tensor(b, TENSOR(a));
    if (!tb) return NULL;
    tg_status st = tg_tensor_inplace_(TENSOR(a), tb, op);
    tg_tensor_release(tb);
    if (st) return tgpy_raise();
    Py_INCREF(a);
    return a;
}
static PyObject *nb_iadd(PyObject *a, PyObject *b) { return inplace(a, b, '+'); }
static PyObject *nb_isub(PyObject *a, PyObject *b) { return inplace(a, b, '-'); }
static PyObject *nb_imul(PyObject *a, PyObject *b) { return inplace(a, b, '*'); }
static PyObject *nb_idiv(PyObject *a, PyObject *b) { return inplace(a, b, '/'); }
static PyObject *nb_imod(PyObject *a, PyObject *b) { return inplace(a, b, '%'); }
static PyObject *nb_ifloordiv(PyObject *a, PyObject *b) { return inplace(a, b, 'f'); }

static int one_value(PyObject *a, double *v, const char *what) {
    if (TENSOR(a)->numel != 1) {
        char sh[160];
        tg_shape_str(TENSOR(a)->ndim, TENSOR(a)->shape, sh, sizeof sh);
        PyErr_Format(PyExc_ValueError,
                     "%s: only a tensor with one element can be converted, this one has shape %s "
                     "(use .any()/.all() style reductions such as (t > 0).sum())",
                     what, sh);
        return -1;
    }
    *v = tg_tensor_get_flat(TENSOR(a), 0);
    return 0;
}
static int nb_bool(PyObject *a) {
    double v;
    if (one_value(a, &v, "bool")) return -1;
    return v != 0;
}
static PyObject *nb_float(PyObject *a) {
    double v;
    if (one_value(a, &v, "float")) return NULL;
    return PyFloat_FromDouble(v);
}
static PyObject *nb_int(PyObject *a) {
    double v;
    if (one_value(a, &v, "int")) return NULL;
    /* the element itself, not through a double: int64 values above 2**53 stay exact */
    if (TENSOR(a)->dtype == TG_INT64) return PyLong_FromLongLong(*(const int64_t *)tg_tensor_data(TENSOR(a)));
    return PyLong_FromDouble(v);
}

static PyObject *richcompare(PyObject *a, PyObject *b, int op) {
    tgpy_binfn f;
    switch (op) {
    case Py_EQ: f = tg_eq; break;
    case Py_NE: f = tg_ne; break;
    case Py_LT: f = tg_lt; break;
    case Py_LE: f = tg_le; break;
    case Py_GT: f = tg_gt; break;
    default: f = tg_ge; break;
    }
    if (b == Py_None) Py_RETURN_NOTIMPLEMENTED;
    return binop(a, b, f);
}

static Py_hash_t tensor_hash(PyObject *a) {
    /* identity, as for any mutable container that defines == elementwise */
    Py_hash_t h = (Py_hash_t)((uintptr_t)a >> 4);
    return h == -1 ? -2 : h;
}

/* Binary methods: t.add(other) etc. (generated in opbind.c). */
PyObject *tgpy_binary_method(const char *fname, tgpy_binfn f, PyObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kw) {
    static const char *const names_[] = {"other"};
    PyObject *a[1];
    if (tgpy_args(fname, args, nargs, kw, names_, 1, 1, a)) return NULL;
    if (!a[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument 'other'", fname);
        return NULL;
    }
    PyObject *r = binop(self, a[0], f);
    if (r == Py_NotImplemented) {
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "%s: unsupported operand type %s", fname, Py_TYPE(a[0])->tp_name);
        return NULL;
    }
    return r;
}

/* Binary functions accept scalars on either side: tg.add(2, t) (generated
 * in opbind.c). */
PyObject *tgpy_binary_function(const char *fname, tgpy_binfn f, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kw) {
    if (nargs != 2 || kw) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly two arguments", fname);
        return NULL;
    }
    PyObject *r;
    if (!tgpy_is_tensor(args[0]) && !tgpy_is_tensor(args[1])) {
        tg_tensor *t = tgpy_as_tensor(args[0], NULL);
        if (!t) return tgpy_named(fname, NULL);
        PyObject *xo = W(t);
        if (!xo) return NULL;
        r = binop(xo, args[1], f);
        Py_DECREF(xo);
    } else {
        r = binop(args[0], args[1], f);
    }
    if (r == Py_NotImplemented) { /* an operator may say so; a function must raise */
        Py_DECREF(r);
        PyObject *bad = tgpy_is_tensor(args[1]) ? args[0] : args[1];
        PyErr_Format(PyExc_TypeError, "%s: unsupported operand type %s (expected a Tensor, a "
                     "NumPy array, a list or a number)", fname, Py_TYPE(bad)->tp_name);
        return NULL;
    }
    return tgpy_named(fname, r);
}

/* The number protocol and comparisons of Tensor (tensor.c adds them to the type). */
PyType_Slot tgpy_number_slots[] = {
    {Py_tp_richcompare, richcompare},
    {Py_tp_hash, tensor_hash},
    {Py_nb_add, nb_add},
    {Py_nb_subtract, nb_sub},
    {Py_nb_multiply, nb_mul},
    {Py_nb_true_divide, nb_div},
    {Py_nb_power, nb_pow},
    {Py_nb_matrix_multiply, nb_matmul},
    {Py_nb_remainder, nb_mod},
    {Py_nb_floor_divide, nb_floordiv},
    {Py_nb_negative, nb_neg},
    {Py_nb_positive, nb_pos},
    {Py_nb_absolute, nb_abs},
    {Py_nb_inplace_add, nb_iadd},
    {Py_nb_inplace_subtract, nb_isub},
    {Py_nb_inplace_multiply, nb_imul},
    {Py_nb_inplace_true_divide, nb_idiv},
    {Py_nb_and, nb_and},
    {Py_nb_or, nb_or},
    {Py_nb_xor, nb_xor},
    {Py_nb_lshift, nb_lshift},
    {Py_nb_rshift, nb_rshift},
    {Py_nb_invert, nb_invert},
    {Py_nb_inplace_remainder, nb_imod},
    {Py_nb_inplace_floor_divide, nb_ifloordiv},
    {Py_nb_bool, nb_bool},
    {Py_nb_float, nb_float},
    {Py_nb_int, nb_int},
    {0, NULL}};
