/*
 * common.h -- what the files of the tapegrad._C extension share.
 *
 * The extension is one module (multi-phase init, module state, heap types).
 * A Python Tensor owns one reference to a tg_tensor; the tg_tensor points
 * back at its Python wrapper through its binding data (a borrowed pointer,
 * cleared when the wrapper dies), so the same tg_tensor always comes back as
 * the same Python object while the wrapper lives (`x.grad is x.grad`).
 *
 * Every C failure becomes a Python exception in one place (tgpy_raise).
 * Reference counts of tg objects are not atomic: every call into the core
 * holds the GIL; only pure kernels run without it.
 */
#ifndef TGPY_COMMON_H
#define TGPY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define NPY_NO_DEPRECATED_API NPY_1_23_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL tapegrad_ARRAY_API
#ifndef TGPY_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "tapegrad.h"
#include "../kernels/compiler.h" /* GCC builtins where cl.exe lacks them */

typedef struct {
    PyObject_HEAD
    tg_tensor *t;        /* owned reference, never NULL after construction */
    PyObject *weakrefs;
} TensorObject;

/* What the binding keeps on a tg_tensor (t->user_data). Released with the
 * tg_tensor (GIL held: tensors die in calls made from Python). */
typedef struct {
    TensorObject *wrapper; /* borrowed; NULL when no Python object exists */
    PyObject *hooks;       /* list of callables or NULL (owned) */
} TensorData;

/* Per-module state. */
typedef struct {
    PyTypeObject *Tensor;
    PyTypeObject *Tape;
    PyTypeObject *Entry;
    PyTypeObject *Stepper;
    PyObject *dtypes[TG_N_DTYPES]; /* numpy dtype objects */
} ModState;

extern ModState *tgpy_state; /* the (single) module's state, for C callbacks */

/* Raise the Python exception for the last tapegrad error; returns NULL. */
PyObject *tgpy_raise(void);
/* Prefix the pending exception's message with "who: " (same type); NULL. */
PyObject *tgpy_prefix_error(const char *who);
/* The rule "an error names the function the user called", for a whole
 * binding: r (a call's result) returned as is; when r is NULL and the pending
 * error is a plain TypeError, ValueError, IndexError or OverflowError whose
 * message does not name `who` (as a word), "who: " is put in front (the
 * original chained as the cause).  Other exceptions (user callbacks'
 * subclasses, MemoryError, KeyboardInterrupt) pass untouched. */
PyObject *tgpy_named(const char *who, PyObject *r);
/* FUNC(name) of the binding files: f_name, the function bound as `name`,
 * runs the body written after the macro and names its errors (tgpy_named). */
#define TGPY_NAMED_FUNC(name)                                                                  \
    static PyObject *f_##name##_body(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,   \
                                     PyObject *kw);                                            \
    static PyObject *f_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,          \
                              PyObject *kw) {                                                  \
        return tgpy_named(#name, f_##name##_body(mod, args, nargs, kw));                       \
    }                                                                                          \
    static PyObject *f_##name##_body(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,   \
                                     PyObject *kw)

/* Wrap a NEW tg_tensor reference (stolen) into its Python object (new ref).
 * NULL input -> raise the tapegrad error. */
PyObject *tgpy_wrap(tg_tensor *t);
/* The short form the binding files use: return W(tg_exp(x)); */
#define W(x) tgpy_wrap(x)
/* Wrap a BORROWED tg_tensor (or None for NULL). */
PyObject *tgpy_wrap_borrowed(tg_tensor *t);
int tgpy_is_tensor(PyObject *o);
/* A str argument as UTF-8 for the C core, or NULL with an exception set: its
 * encoding failed (a lone surrogate) or it holds a NUL character, which the
 * core's C strings would take as its end ("mean\0x" read as "mean",
 * "ij,jk->ik\0x" as "ij,jk->ik": a silently different argument).  The check
 * CPython 3.13 put into PyUnicode_AsUTF8, with its message. */
static inline const char *tgpy_utf8(PyObject *o) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s && strlen(s) != (size_t)n) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return NULL;
    }
    return s;
}

/* A broadcast view (stride 0 on a dimension of size > 1): several elements
 * share one memory location, so its NumPy arrays and buffers are read-only,
 * like numpy.broadcast_to's result. */
static inline int tgpy_is_broadcast_view(const tg_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1) return 1;
    return 0;
}
#define TENSOR(o) (((TensorObject *)(o))->t)
TensorData *tgpy_data(tg_tensor *t); /* get or create; NULL + MemoryError */

/* Convert anything tensor-like (Tensor, ndarray, list, scalar) to a NEW
 * tg_tensor reference.  `like`: dtype to give Python scalars (NumPy 2's weak
 * scalars), or NULL. */
tg_tensor *tgpy_as_tensor(PyObject *o, const tg_tensor *like);
/* tg.tensor(data, dtype): a new tensor copying data (has_dtype: use dt). */
tg_tensor *tgpy_new_tensor(PyObject *o, int has_dtype, tg_dtype dt);
/* Parse a dtype argument (None -> deflt). Returns 0 or -1 with TypeError. */
int tgpy_parse_dtype(PyObject *o, tg_dtype deflt, tg_dtype *out);
/* generator= argument: a tg.Generator or None (NULL: the default one). */
int tgpy_generator(const char *fname, PyObject *o, tg_generator **out);
int tgpy_generator_init(PyObject *m); /* generator.c: the type and randint/randperm/multinomial */
PyObject *tgpy_dtype_object(tg_dtype dt); /* borrowed */
/* A tensor from numpy array `a` sharing its memory. */
tg_tensor *tgpy_from_numpy(PyObject *a);
/* An ndarray viewing t's memory, keeping `owner` (the Tensor) alive.  It is
 * read-only while t's storage is saved for backward (safe aliasing). */
PyObject *tgpy_to_numpy(tg_tensor *t, PyObject *owner);
/* Safe aliasing (convert.c): install the core's save hook; count a writable
 * buffer export of s (0, or -1 with MemoryError) and its release. */
void tgpy_aliasing_init(void);
int tgpy_buffer_export(tg_storage *s);
void tgpy_buffer_release(tg_storage *s);

/* Argument parsing for METH_FASTCALL | METH_KEYWORDS: fills out[i] with the
 * borrowed argument for names[i] (positional first), NULL if absent.
 * `npos_max` = how many may be passed positionally.  -1 with TypeError. */
int tgpy_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int n, int npos_max, PyObject **out);
/* Axis argument: None -> *naxes = -1 (all). */
int tgpy_axes(PyObject *o, int64_t *axes, int *naxes);
/* Shape from varargs (ints) or one sequence. */
int tgpy_shape(const char *fname, PyObject *const *args, Py_ssize_t nargs, int64_t *shape, int *ndim);
int tgpy_shape_obj(const char *fname, PyObject *o, int64_t *shape, int *ndim);
int tgpy_bool(PyObject *o, int deflt);

/* Module parts. */
/* ---- calling ops from Python (tensor.c), shared with opbind.c ---------- */
typedef tg_tensor *(*tgpy_binfn)(tg_tensor *, tg_tensor *);
typedef tg_tensor *(*tgpy_redfn)(tg_tensor *, const int64_t *, int, bool);
typedef PyObject *(*tgpy_methodfn)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);
/* t.add(other): `self (op) other`, a TypeError naming the op for an operand
 * of a type it does not know. */
PyObject *tgpy_binary_method(const char *fname, tgpy_binfn f, PyObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kw);
/* tg.add(a, b): scalars accepted on either side. */
PyObject *tgpy_binary_function(const char *fname, tgpy_binfn f, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kw);
/* t.sum(axis=None, keepdims=False) (aliases dim, keepdim). */
PyObject *tgpy_reduction(PyObject *self, const char *fname, tgpy_redfn f, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kw);
/* tg.f(x, ...): method impl f called with args[0] converted to a Tensor. */
PyObject *tgpy_as_function(const char *fname, tgpy_methodfn f, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kw);
/* The parts of the Tensor type defined in their own files. */
extern PyType_Slot tgpy_number_slots[]; /* number.c: operators, comparisons */
extern PyType_Slot tgpy_index_slots[];  /* index.c: t[key], t[key] = v, len(t) */
extern PyType_Slot tgpy_buffer_slots[]; /* buffer.c: memoryview(t) */
/* index.c: an int64 index tensor (new reference) from a list, ndarray or Tensor. */
tg_tensor *tgpy_index_array(PyObject *o);
/* masks.c: key with every boolean mask replaced by the integer arrays of its
 * true positions (NumPy's rule, shapes checked against x); new reference. */
PyObject *tgpy_expand_bool_masks(PyObject *key, const tg_tensor *x);
/* logicbind.c: x.isclose / x.allclose (Tensor methods) and tg.isclose / tg.allclose. */
PyObject *tgpy_m_isclose(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
PyObject *tgpy_m_allclose(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
extern PyMethodDef tgpy_logic_functions[];
/* opbind.c: the generated methods and functions, and their docstrings. */
extern PyMethodDef tgpy_op_methods[];
extern PyMethodDef tgpy_inplace_methods[]; /* inplacebind.c: add_, mul_, relu_ ... */
void tgpy_inplace_init(void); /* inplacebind.c: the rebase hook */
extern PyMethodDef tgpy_op_generated_functions[];
int tgpy_opbind_init(void);
/* mathops.c: hand-bound math and activation ops (issue 14). */
extern PyMethodDef tgpy_math_methods[];
extern PyMethodDef tgpy_math_functions[];
/* scanops.c: the hand-bound ops of csrc/ops/scan.c (methods, functions). */
extern PyMethodDef tgpy_scan_methods[];
extern PyMethodDef tgpy_scan_functions[];

int tgpy_tensor_type_init(PyObject *m, ModState *st);
int tgpy_autograd_init(PyObject *m, ModState *st);
extern PyMethodDef tgpy_module_methods[];
extern PyMethodDef tgpy_autograd_methods[];

#endif
