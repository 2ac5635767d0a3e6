/*
 * nnops.c -- the binding of convolution, pooling and the fused optimizer
 * steps: tapegrad._C.conv2d, max_pool2d, avg_pool2d, and the private
 * helpers behind tapegrad.optim (_sgd_step, _adam_step, _rmsprop_step,
 * _clip_grad_norm), which take Python lists of Tensors.
 */
#include "common.h"
#include "../kernels/gemm.h"

#include <math.h>
#include <string.h>

#define FUNC(name) \
    static PyObject *f_##name(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs, \
                              PyObject *kw)
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

FUNC(conv2d) {
    ARGS("conv2d", 5, 5, "input", "weight", "bias", "stride", "padding")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "conv2d() needs input and weight");
        return NULL;
    }
    static const int64_t one[2] = {1, 1}, zero[2] = {0, 0};
    int64_t stride[2], pad[2];
    if (int_pair("conv2d", "stride", a[3], one, stride) ||
        int_pair("conv2d", "padding", a[4], zero, pad))
        return NULL;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    tg_tensor *w = x ? tgpy_as_tensor(a[1], x) : NULL;
    tg_tensor *b = (w && a[2] && a[2] != Py_None) ? tgpy_as_tensor(a[2], w) : NULL;
    tg_tensor *r = NULL;
    if (w && (b || !a[2] || a[2] == Py_None))
        r = tg_conv2d(x, w, b, stride[0], stride[1], pad[0], pad[1]);
    tg_tensor_release(x);
    tg_tensor_release(w);
    tg_tensor_release(b);
    if (!r) return PyErr_Occurred() ? NULL : tgpy_raise();
    return tgpy_wrap(r);
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

typedef tg_tensor *(*pool_fn)(tg_tensor *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);

static PyObject *pool(const char *fname, pool_fn f, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kw) {
    static const char *const names[] = {"input", "kernel_size", "stride", "padding"};
    PyObject *a[4];
    if (tgpy_args(fname, args, nargs, kw, names, 4, 4, a)) return NULL;
    if (!a[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing argument 'input'", fname);
        return NULL;
    }
    static const int64_t zero[2] = {0, 0};
    int64_t k[2], s[2], p[2];
    if (int_pair(fname, "kernel_size", a[1], NULL, k) ||
        int_pair(fname, "stride", a[2], k, s) || /* PyTorch: stride defaults to kernel_size */
        int_pair(fname, "padding", a[3], zero, p))
        return NULL;
    tg_tensor *x = tgpy_as_tensor(a[0], NULL);
    if (!x) return NULL;
    tg_tensor *r = f(x, k[0], k[1], s[0], s[1], p[0], p[1]);
    tg_tensor_release(x);
    return tgpy_wrap(r);
}
FUNC(max_pool2d) { return pool("max_pool2d", tg_max_pool2d, args, nargs, kw); }
FUNC(avg_pool2d) { return pool("avg_pool2d", tg_avg_pool2d, args, nargs, kw); }

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
        const char *nm = PyUnicode_AsUTF8(a[0]);
        for (int i = 0; nm && i < TG_GEMM_N_VARIANTS; i++)
            if (!strcmp(nm, tg_gemm_variant_name((tg_gemm_variant)i))) v = i;
    } else {
        v = (int)PyLong_AsLong(a[0]);
        if (v == -1 && PyErr_Occurred()) return NULL;
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
    F(conv2d, "conv2d(input, weight, bias=None, stride=1, padding=0)\n\n"
              "2-D convolution (cross-correlation, as torch.nn.functional.conv2d) of input\n"
              "(N, C, H, W) with weight (O, C, kH, kW) and an optional bias (O,). stride and\n"
              "padding: an int or an (h, w) pair. Differentiable in all three, to any order.\n\n"
              ">>> import tapegrad as tg\n"
              ">>> tg.nn.functional.conv2d(tg.ones(1, 1, 5, 5), tg.ones(2, 1, 3, 3), padding=1).shape\n"
              "(1, 2, 5, 5)"),
    F(max_pool2d, "max_pool2d(input, kernel_size, stride=None, padding=0)\n\n"
                  "2-D max pooling of (N, C, H, W); stride defaults to kernel_size; padding is -inf\n"
                  "and at most half the kernel. The gradient goes to the first maximum of a window.\n\n"
                  ">>> import tapegrad as tg\n"
                  ">>> tg.nn.functional.max_pool2d(tg.ones(1, 1, 4, 4), 2).shape\n(1, 1, 2, 2)"),
    F(avg_pool2d, "avg_pool2d(input, kernel_size, stride=None, padding=0)\n\n"
                  "2-D average pooling of (N, C, H, W); padding counts as zeros in the average\n"
                  "(PyTorch's count_include_pad=True).\n\n"
                  ">>> import tapegrad as tg\n"
                  ">>> tg.nn.functional.avg_pool2d(tg.ones(1, 1, 4, 4), 2).tolist()\n"
                  "[[[[1.0, 1.0], [1.0, 1.0]]]]"),
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
