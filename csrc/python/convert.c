/*
 * convert.c -- errors, wrapping, argument parsing, and the NumPy bridge
 * (zero-copy both ways).
 */
#include "common.h"

#include <ctype.h>
#include <string.h>

ModState *tgpy_state;

/* ===================================================================== */
/* Errors                                                                 */
/* ===================================================================== */

PyObject *tgpy_raise(void) {
    tg_status st = tg_error_status();
    if (st == TG_ERR_CALLBACK && PyErr_Occurred()) return NULL; /* keep the callback's exception */
    if (PyErr_Occurred() && st == TG_OK) return NULL;
    PyObject *exc;
    switch (st) {
    case TG_ERR_VALUE: exc = PyExc_ValueError; break;
    case TG_ERR_TYPE: exc = PyExc_TypeError; break;
    case TG_ERR_INDEX: exc = PyExc_IndexError; break;
    case TG_ERR_MEMORY: exc = PyExc_MemoryError; break;
    case TG_ERR_CALLBACK:
    case TG_ERR_RUNTIME: exc = PyExc_RuntimeError; break;
    default: exc = PyExc_RuntimeError; break;
    }
    /* a pending Python error becomes the cause */
    PyObject *t = NULL, *v = NULL, *tb = NULL;
    if (PyErr_Occurred()) {
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
    }
    /* the message as text even if an op printed a byte that is not UTF-8
     * (einsum's subscripts from a generic call's ints): \xff, never a
     * UnicodeDecodeError in place of the op's error */
    const char *msg = tg_error_message()[0] ? tg_error_message() : "tapegrad: operation failed";
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
    if (text) {
        PyErr_SetObject(exc, text);
        Py_DECREF(text);
    }
    if (v) {
        PyObject *t2, *v2, *tb2;
        PyErr_Fetch(&t2, &v2, &tb2);
        PyErr_NormalizeException(&t2, &v2, &tb2);
        if (v2) PyException_SetCause(v2, v); /* steals v */
        else Py_DECREF(v);
        PyErr_Restore(t2, v2, tb2);
    }
    Py_XDECREF(t);
    Py_XDECREF(tb);
    tg_error_clear();
    return NULL;
}

/* ===================================================================== */
/* Wrapping                                                               */
/* ===================================================================== */

static void data_release(void *p) {
    TensorData *d = p;
    Py_XDECREF(d->hooks);
    PyMem_Free(d);
}

TensorData *tgpy_data(tg_tensor *t) {
    if (t->user_data) return t->user_data;
    TensorData *d = PyMem_Calloc(1, sizeof *d);
    if (!d) {
        PyErr_NoMemory();
        return NULL;
    }
    t->user_data = d;
    t->user_release = data_release;
    return d;
}

int tgpy_is_tensor(PyObject *o) { return PyObject_TypeCheck(o, tgpy_state->Tensor); }

PyObject *tgpy_wrap(tg_tensor *t) {
    if (!t) return tgpy_raise();
    TensorData *d = t->user_data;
    if (d && d->wrapper) {
        PyObject *w = (PyObject *)d->wrapper;
        Py_INCREF(w);
        tg_tensor_release(t); /* the wrapper already owns one */
        return w;
    }
    d = tgpy_data(t);
    if (!d) {
        tg_tensor_release(t);
        return NULL;
    }
    PyTypeObject *tp = tgpy_state->Tensor;
    TensorObject *o = (TensorObject *)tp->tp_alloc(tp, 0);
    if (!o) {
        tg_tensor_release(t);
        return NULL;
    }
    o->t = t;
    d->wrapper = o;
    return (PyObject *)o;
}

PyObject *tgpy_wrap_borrowed(tg_tensor *t) {
    if (!t) Py_RETURN_NONE;
    tg_tensor_retain(t);
    return tgpy_wrap(t);
}

/* ===================================================================== */
/* Dtypes                                                                 */
/* ===================================================================== */

PyObject *tgpy_dtype_object(tg_dtype dt) { return tgpy_state->dtypes[dt]; }

/* NumPy type number -> tapegrad dtype (-1: not one of the six).  The C
 * integer type numbers are matched by size, so that np.longlong on Linux
 * and np.int_ (a 32-bit long) on Windows land where their width says. */
static int npy_to_tg(int npy, tg_dtype *out) {
    switch (npy) {
    case NPY_FLOAT32: *out = TG_FLOAT32; return 0;
    case NPY_FLOAT64: *out = TG_FLOAT64; return 0;
    case NPY_BOOL: *out = TG_BOOL; return 0;
    case NPY_UBYTE: *out = TG_UINT8; return 0;
    case NPY_INT: case NPY_LONG: case NPY_LONGLONG: {
        int size = npy == NPY_INT ? NPY_SIZEOF_INT : npy == NPY_LONG ? NPY_SIZEOF_LONG : NPY_SIZEOF_LONGLONG;
        if (size == 8) *out = TG_INT64;
        else if (size == 4) *out = TG_INT32;
        else return -1;
        return 0;
    }
    default: return -1;
    }
}

static int tg_to_npy(tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return NPY_FLOAT32;
    case TG_FLOAT64: return NPY_FLOAT64;
    case TG_BOOL: return NPY_BOOL;
    case TG_INT32: return NPY_INT32;
    case TG_UINT8: return NPY_UINT8;
    default: return NPY_INT64;
    }
}

int tgpy_parse_dtype(PyObject *o, tg_dtype deflt, tg_dtype *out) {
    if (!o || o == Py_None) {
        *out = deflt;
        return 0;
    }
    if (o == (PyObject *)&PyFloat_Type) { /* Python float is float64, as in NumPy */
        *out = TG_FLOAT64;
        return 0;
    }
    if (o == (PyObject *)&PyLong_Type) {
        *out = TG_INT64;
        return 0;
    }
    PyArray_Descr *d = NULL;
    if (!PyArray_DescrConverter2(o, &d) || !d) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "dtype: %R is not a dtype; use tg.float32, tg.float64, tg.int64, tg.int32, "
                     "tg.uint8 or tg.bool", o);
        return -1;
    }
    int r = npy_to_tg(d->type_num, out);
    if (r) {
        PyErr_Format(PyExc_TypeError,
                     "dtype: %R is not supported; tapegrad tensors are float32 (the default), "
                     "float64, int64, int32, uint8 or bool",
                     (PyObject *)d);
    }
    Py_DECREF(d);
    return r;
}

/* ===================================================================== */
/* Safe aliasing: NumPy arrays of saved memory are read-only              */
/* ===================================================================== */
/*
 * A write through NumPy into memory that a tape entry saved for backward
 * would change a gradient without the version counter seeing it.  So the
 * binding keeps, per storage (s->user_data), weak references to the ndarrays
 * that alias it and that it knows of: those made by tgpy_to_numpy
 * (t.numpy(), __array__, DLPack export) and the array given to from_numpy.
 * The core calls save_hook(s, +1) when s gains its first saved reference:
 * each of those arrays that is writeable is made read-only and remembered;
 * save_hook(s, -1), when the last saved reference goes (a backward without
 * retain_graph, or the entries died), makes exactly those writeable again.
 * A write meanwhile fails with NumPy's own "assignment destination is
 * read-only" (ValueError).  An array made while s is saved starts read-only
 * and is restored with the others.
 *
 * The buffer protocol (memoryview(t); np.asarray(t), which NumPy builds from
 * a memoryview) cannot be revoked: while s is saved, buffers are exported
 * read-only (and a writable one is refused); a writable buffer exported
 * before and still alive makes the entry save a private copy instead (the
 * hook returns true).  Arrays over one buffer share one storage (see
 * tgpy_from_numpy), so the lock of any of them covers the root array and
 * every array given to from_numpy.  Not covered: views that NumPy derives
 * from these arrays, DLPack consumers: see tests/fuzz/GUARANTEES.md.
 */
typedef struct {
    PyObject *arrays;            /* list of weakrefs to aliasing ndarrays, or NULL */
    PyObject *flipped;           /* weakrefs to the arrays made read-only, or NULL */
    Py_ssize_t writable_buffers; /* live writable buffer exports */
    Py_ssize_t prune_at;         /* prune dead weakrefs of arrays when it grows this long */
    PyObject *buffer_key;        /* key in buffer_registry (see from_numpy) or NULL */
    tg_storage *storage;         /* the storage this belongs to (borrowed) */
} AliasData;

/* One storage per NumPy buffer (see tgpy_from_numpy): root ndarray's address
 * -> the tg_storage over its memory (both as ints).  The storage holds a
 * reference to the root array, so the address cannot be reused while the
 * entry exists; the entry goes when the storage dies (alias_release). */
static PyObject *buffer_registry;

static void alias_release(void *p) {
    AliasData *d = p;
    PyGILState_STATE g = PyGILState_Ensure();
    /* a storage often dies while an exception propagates (the temporary
     * from_numpy(a) argument of an op that failed): keep it aside, or the
     * PyErr_Clear below would swallow it (SystemError: error return without
     * exception set) */
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    if (d->buffer_key && buffer_registry) {
        PyObject *v = PyDict_GetItemWithError(buffer_registry, d->buffer_key); /* borrowed */
        if (v && PyLong_AsVoidPtr(v) == (void *)d->storage)
            PyDict_DelItem(buffer_registry, d->buffer_key);
        PyErr_Clear();
    }
    Py_XDECREF(d->buffer_key);
    Py_XDECREF(d->arrays);
    Py_XDECREF(d->flipped);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    PyMem_RawFree(d);
}

/* s's AliasData, created if needed (NULL + MemoryError on failure). */
static AliasData *alias_data(tg_storage *s) {
    if (s->user_data) return s->user_data;
    AliasData *d = PyMem_RawCalloc(1, sizeof *d);
    if (!d) {
        PyErr_NoMemory();
        return NULL;
    }
    d->storage = s;
    s->user_data = d;
    s->user_release = alias_release;
    return d;
}

/* The object of weak reference w as a NEW reference, or NULL if it died. */
static PyObject *weak_get(PyObject *w) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    if (PyWeakref_GetRef(w, &o) <= 0) {
        PyErr_Clear();
        return NULL;
    }
    return o;
#else
    PyObject *o = PyWeakref_GetObject(w);
    if (!o || o == Py_None) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(o);
    return o;
#endif
}

/* Drop the dead weak references of a list. */
static void prune_dead(PyObject *list) {
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--) {
        PyObject *o = weak_get(PyList_GET_ITEM(list, i));
        if (o) Py_DECREF(o);
        else if (PySequence_DelItem(list, i) < 0) PyErr_Clear();
    }
}

/* Make arr read-only if it is writeable, remembering it (weakref w) to
 * restore later.  Never fails: an array that cannot be remembered is left
 * alone (best effort under MemoryError). */
static void make_readonly(AliasData *d, PyObject *arr, PyObject *w) {
    if (!PyArray_ISWRITEABLE((PyArrayObject *)arr)) return;
    if (!d->flipped && !(d->flipped = PyList_New(0))) {
        PyErr_Clear();
        return;
    }
    if (PyList_Append(d->flipped, w) < 0) {
        PyErr_Clear();
        return;
    }
    PyArray_CLEARFLAGS((PyArrayObject *)arr, NPY_ARRAY_WRITEABLE);
}

/* Remember that ndarray `arr` aliases s (and make it read-only now if s is
 * saved).  Returns 0, or -1 with a Python exception. */
static int track_array(tg_storage *s, PyObject *arr) {
    AliasData *d = alias_data(s);
    if (!d) return -1;
    PyObject *w = PyWeakref_NewRef(arr, NULL);
    if (!w) return -1;
    if (!d->arrays && !(d->arrays = PyList_New(0))) {
        Py_DECREF(w);
        return -1;
    }
    /* the same array again (from_numpy(a) in a loop): CPython hands out one
     * weakref per object, so it is already listed -- appending it again made
     * the list, and every later call, grow without bound */
    for (Py_ssize_t i = PyList_GET_SIZE(d->arrays) - 1; i >= 0; i--)
        if (PyList_GET_ITEM(d->arrays, i) == w) {
            if (s->saved_count > 0) make_readonly(d, arr, w);
            Py_DECREF(w);
            return 0;
        }
    if (PyList_GET_SIZE(d->arrays) >= d->prune_at) { /* temporaries (tolist, t.numpy()) */
        prune_dead(d->arrays);
        /* amortised: prune again only when the live ones have doubled */
        d->prune_at = PyList_GET_SIZE(d->arrays) < 8 ? 16 : 2 * PyList_GET_SIZE(d->arrays);
    }
    int r = PyList_Append(d->arrays, w);
    if (r == 0 && s->saved_count > 0) make_readonly(d, arr, w);
    Py_DECREF(w);
    return r;
}

/* The core's save hook (tg_set_save_hook). */
static bool save_hook(tg_storage *s, int delta, void *ctx) {
    (void)ctx;
    AliasData *d = s->user_data;
    if (!d) return false;
    bool want_copy = delta > 0 && d->writable_buffers > 0;
    if (delta > 0 ? !d->arrays : !d->flipped) return want_copy;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* may run while an exception propagates */
    if (delta > 0) {
        PyObject *arrays = d->arrays;
        Py_INCREF(arrays);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(arrays); i++) {
            PyObject *w = PyList_GET_ITEM(arrays, i);
            PyObject *a = weak_get(w);
            if (!a) continue;
            make_readonly(d, a, w);
            Py_DECREF(a);
        }
        Py_DECREF(arrays);
    } else {
        PyObject *flipped = d->flipped;
        d->flipped = NULL;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(flipped); i++) {
            PyObject *a = weak_get(PyList_GET_ITEM(flipped, i));
            if (!a) continue;
            PyArray_ENABLEFLAGS((PyArrayObject *)a, NPY_ARRAY_WRITEABLE);
            Py_DECREF(a);
        }
        Py_DECREF(flipped);
    }
    PyErr_Clear();
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return want_copy;
}

void tgpy_aliasing_init(void) { tg_set_save_hook(save_hook, NULL); }

int tgpy_buffer_export(tg_storage *s) {
    AliasData *d = alias_data(s);
    if (!d) return -1;
    d->writable_buffers++;
    return 0;
}

void tgpy_buffer_release(tg_storage *s) {
    AliasData *d = s->user_data;
    if (d && d->writable_buffers > 0) d->writable_buffers--;
}

/* ===================================================================== */
/* NumPy -> tensor (zero copy)                                            */
/* ===================================================================== */

static void release_array(void *data, void *ctx) {
    (void)data;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF((PyObject *)ctx);
    PyGILState_Release(g);
}

/* Is ndarray `a` (read-only now) one that the safe-aliasing lock of storage
 * s made read-only, rather than read-only by itself? */
static bool locked_by(tg_storage *s, PyObject *a) {
    AliasData *d = s->user_data;
    if (!d || !d->flipped || s->saved_count <= 0) return false;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(d->flipped); i++) {
        PyObject *o = weak_get(PyList_GET_ITEM(d->flipped, i));
        if (!o) continue;
        Py_DECREF(o);
        if (o == a) return true;
    }
    return false;
}

/* The memory span [lo, hi) of an ndarray's elements (lo == hi when empty). */
static void array_span(PyArrayObject *a, char **lo, char **hi) {
    char *base = PyArray_BYTES(a);
    *lo = *hi = base;
    int nd = PyArray_NDIM(a);
    for (int i = 0; i < nd; i++)
        if (PyArray_DIM(a, i) == 0) return;
    for (int i = 0; i < nd; i++) {
        npy_intp n = PyArray_DIM(a, i), sb = PyArray_STRIDE(a, i);
        if (n <= 1) continue;
        if (sb < 0) *lo += (n - 1) * sb;
        else *hi += (n - 1) * sb;
    }
    *hi += PyArray_ITEMSIZE(a);
}

/* The storage that array `a` (whose elements span [lo, hi)) must share with
 * the tensors already made over the same memory, as a NEW reference; NULL
 * when there is none to share (then *root and *register_key say whether to
 * make one and remember it) or on error (-1 in *err with an exception).
 *
 * The version counter and the read-only lock live in the storage, so two
 * tensors over one buffer must have ONE storage.  The buffer is found by
 * following a.base through the ndarrays to the root:
 *   - a root whose base is a tapegrad Tensor (an array made by t.numpy(),
 *     __array__ or DLPack): that tensor's storage;
 *   - otherwise the root ndarray, looked up in buffer_registry (the storage
 *     made by an earlier from_numpy over any array of that root).
 * Arrays that do not lie inside their root's span, or that are read-only
 * on their own while the root's storage is writable (np.broadcast_to of a
 * writable array, a.setflags(write=False) on a view), keep a private
 * storage: see docs/design.md. */
static tg_storage *shared_storage(PyArrayObject *a, char *lo, char *hi, PyObject **root,
                                  int *err) {
    *err = 0;
    *root = NULL;
    if (lo == hi) return NULL; /* no element: nothing to share */
    PyObject *r = (PyObject *)a;
    for (PyObject *b; (b = PyArray_BASE((PyArrayObject *)r)) && PyArray_Check(b);) r = b;
    PyObject *rb = PyArray_BASE((PyArrayObject *)r);
    bool writable = PyArray_ISWRITEABLE(a);
    tg_storage *s = NULL;
    if (rb && tgpy_is_tensor(rb)) {
        s = TENSOR(rb)->storage;
    } else {
        if (!buffer_registry && !(buffer_registry = PyDict_New())) goto fail;
        PyObject *key = PyLong_FromVoidPtr(r);
        if (!key) goto fail;
        PyObject *v = PyDict_GetItemWithError(buffer_registry, key);
        Py_DECREF(key);
        if (!v && PyErr_Occurred()) goto fail;
        if (v) s = PyLong_AsVoidPtr(v);
    }
    if (!s) {
        /* a new storage over the root's whole span, if a's writability is the root's */
        char *rlo, *rhi;
        array_span((PyArrayObject *)r, &rlo, &rhi);
        if (lo >= rlo && hi <= rhi && writable == (bool)PyArray_ISWRITEABLE((PyArrayObject *)r) &&
            !(rb && tgpy_is_tensor(rb)))
            *root = r;
        return NULL;
    }
    char *slo = s->data, *shi = (char *)s->data + s->nbytes;
    if (lo < slo || hi > shi) return NULL;
    if (!writable && !s->readonly && !locked_by(s, (PyObject *)a) && !locked_by(s, r))
        return NULL; /* read-only on its own: a private read-only storage */
    tg_storage_retain(s);
    return s;
fail:
    *err = -1;
    return NULL;
}

tg_tensor *tgpy_from_numpy(PyObject *o) {
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "from_numpy: expected a numpy.ndarray, got %s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    PyArray_Descr *d = PyArray_DESCR(a);
    tg_dtype dt;
    if (npy_to_tg(d->type_num, &dt)) {
        PyErr_Format(PyExc_TypeError,
                     "from_numpy: arrays of dtype %R are not supported; tapegrad tensors are "
                     "float32, float64, int64, int32, uint8 or bool (convert first, e.g. a.astype(np.float32))",
                     (PyObject *)d);
        return NULL;
    }
    if (!PyArray_ISNBO(d->byteorder)) {
        PyErr_Format(PyExc_TypeError,
                     "from_numpy: the array is big-endian (dtype %R); tapegrad tensors are "
                     "float32, float64 or int64 in native byte order: convert it first with "
                     "a.astype(a.dtype.newbyteorder('=')) (tg.tensor(a) does it for you)",
                     (PyObject *)d);
        return NULL;
    }
    int nd = PyArray_NDIM(a);
    if (nd > TG_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "from_numpy: the array has %d dimensions, at most %d are supported",
                     nd, TG_MAX_DIMS);
        return NULL;
    }
    if (!PyArray_ISALIGNED(a)) {
        PyErr_SetString(PyExc_ValueError,
                        "from_numpy: the array's memory is not aligned for its dtype; make an "
                        "aligned copy first (np.ascontiguousarray(a) or a.copy())");
        return NULL;
    }
    int64_t isz = (int64_t)PyArray_ITEMSIZE(a);
    int64_t shape[TG_MAX_DIMS], strides[TG_MAX_DIMS];
    char *base = PyArray_BYTES(a);
    char *lo = base, *hi = base;
    int64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = PyArray_DIM(a, i);
        numel *= shape[i];
    }
    for (int i = 0; i < nd; i++) {
        int64_t sb = PyArray_STRIDE(a, i);
        if (shape[i] <= 1) sb = 0; /* strides of size-0/1 dims are meaningless */
        if (sb % isz) {
            PyErr_SetString(PyExc_ValueError,
                            "from_numpy: the array's strides are not a multiple of its item size; "
                            "make a copy first (np.ascontiguousarray(a))");
            return NULL;
        }
        strides[i] = sb / isz;
        if (numel > 0) {
            if (sb < 0) lo += (shape[i] - 1) * sb;
            else hi += (shape[i] - 1) * sb;
        }
    }
    if (numel > 0) hi += isz;
    bool ro = !PyArray_ISWRITEABLE(a);
    /* one storage per buffer: share the version counter and the lock */
    PyObject *root = NULL;
    int err;
    tg_storage *s = shared_storage(a, lo, hi, &root, &err);
    if (err) return NULL;
    if (s && (base - (char *)s->data) % isz) { /* misaligned for this dtype: keep apart */
        tg_storage_release(s);
        s = NULL;
        root = NULL;
    }
    PyObject *key = NULL;
    if (!s) {
        char *slo = lo, *shi = hi;
        PyObject *keep = o;
        if (root) {
            array_span((PyArrayObject *)root, &slo, &shi);
            if ((base - slo) % isz) { /* a dtype view at an odd byte offset */
                root = NULL;
                slo = lo;
                shi = hi;
            } else {
                keep = root;
                if (!(key = PyLong_FromVoidPtr(root))) return NULL;
            }
        }
        size_t nbytes = (size_t)(shi - slo);
        Py_INCREF(keep);
        s = tg_storage_borrow(slo, nbytes, release_array, keep, ro);
        if (!s) {
            Py_DECREF(keep);
            Py_XDECREF(key);
            tgpy_raise();
            return NULL;
        }
        if (key) { /* remember it for the next array over this buffer */
            AliasData *ad = alias_data(s);
            PyObject *v = ad ? PyLong_FromVoidPtr(s) : NULL;
            if (!v || PyDict_SetItem(buffer_registry, key, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(key);
                tg_storage_release(s);
                return NULL;
            }
            Py_DECREF(v);
            ad->buffer_key = key; /* owned */
            if (!ro && track_array(s, root) < 0) {
                tg_storage_release(s);
                return NULL;
            }
        }
    }
    tg_tensor *t = tg_tensor_from_storage(s, dt, nd, shape, strides,
                                          (int64_t)((base - (char *)s->data) / isz));
    tg_storage_release(s);
    if (!t) return (tg_tensor *)tgpy_raise();
    if (PyArray_ISWRITEABLE(a) && track_array(t->storage, o) < 0) { /* safe aliasing */
        tg_tensor_release(t);
        return NULL;
    }
    return t;
}

/* ===================================================================== */
/* tensor -> NumPy (zero copy)                                            */
/* ===================================================================== */

PyObject *tgpy_to_numpy(tg_tensor *t, PyObject *owner) {
    npy_intp dims[TG_MAX_DIMS], strides[TG_MAX_DIMS];
    int64_t isz = (int64_t)tg_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        dims[i] = (npy_intp)t->shape[i];
        strides[i] = (npy_intp)(t->strides[i] * isz);
    }
    PyArray_Descr *d = PyArray_DescrFromType(tg_to_npy(t->dtype));
    int flags = t->storage->readonly || tgpy_is_broadcast_view(t) ? 0 : NPY_ARRAY_WRITEABLE;
    PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, d, t->ndim, dims, strides,
                                         tg_tensor_data(t), flags, NULL);
    if (!arr) return NULL;
    Py_INCREF(owner);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, owner) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    if (flags && track_array(t->storage, arr) < 0) { /* safe aliasing */
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

/* ===================================================================== */
/* Anything -> tensor                                                     */
/* ===================================================================== */

/* A Python number next to tensor `like` (NULL: on its own).  Python numbers
 * are "weak" (NumPy 2, NEP 50): a bool takes like's dtype; an int takes
 * like's dtype (bool tensors: int64; out of range for int32/uint8: an
 * OverflowError as in NumPy 2); a float takes like's float dtype, float64
 * next to integers and bools. */
static tg_tensor *scalar_tensor(PyObject *o, const tg_tensor *like) {
    if (PyBool_Check(o)) return tg_tensor_scalar(o == Py_True ? 1.0 : 0.0, like ? like->dtype : TG_BOOL);
    if (PyLong_Check(o) && like && (like->dtype == TG_INT32 || like->dtype == TG_UINT8)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return NULL;
        bool fits = !overflow && (like->dtype == TG_INT32 ? (v >= INT32_MIN && v <= INT32_MAX)
                                                          : (v >= 0 && v <= 255));
        if (!fits) {
            PyErr_Format(PyExc_OverflowError,
                         "%s: the Python int %R is out of bounds for the %s tensor it is used with "
                         "(expected %s; convert the tensor first, e.g. x.astype(tg.int64))",
                         tg_dtype_name(like->dtype), o, tg_dtype_name(like->dtype),
                         like->dtype == TG_INT32 ? "-2**31 <= n < 2**31" : "0 <= n <= 255");
            return NULL;
        }
        return tg_tensor_scalar((double)v, like->dtype);
    }
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow && like && like->dtype == TG_INT64) { /* NumPy 2 refuses it too */
            PyErr_Format(PyExc_OverflowError,
                         "int64: the Python int %R is out of bounds for the int64 tensor it "
                         "is used with (expected -2**63 <= n < 2**63; use a float)",
                         o);
            return NULL;
        }
        if (overflow) {
            double dv = PyLong_AsDouble(o);
            if (dv == -1.0 && PyErr_Occurred()) return NULL;
            return tg_tensor_scalar(dv, like && tg_dtype_is_float(like->dtype) ? like->dtype : TG_FLOAT64);
        }
        if (v == -1 && PyErr_Occurred()) return NULL;
        tg_dtype dt = like && like->dtype != TG_BOOL ? like->dtype : TG_INT64;
        tg_tensor *t = tg_tensor_scalar((double)v, dt);
        if (t && dt == TG_INT64) *(int64_t *)tg_tensor_data(t) = v; /* exact beyond 2**53 */
        return t;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    tg_dtype dt = like ? (tg_dtype_is_float(like->dtype) ? like->dtype : TG_FLOAT64) : TG_FLOAT32;
    return tg_tensor_scalar(v, dt);
}

/* A NEW tg_tensor copying array `a` (any numeric dtype), keeping the six
 * supported dtypes, mapping other ints (int8, int16, uint16, uint32, uint64)
 * -> int64 and float16 -> float32, unless `want` is given (>= 0). */
static tg_tensor *copy_array(PyArrayObject *a, int want) {
    int tn = PyArray_TYPE(a);
    int target;
    if (want >= 0) target = want;
    else if (npy_to_tg(tn, &(tg_dtype){TG_FLOAT32}) == 0) target = tn;
    else if (PyTypeNum_ISINTEGER(tn)) target = NPY_INT64;
    else if (tn == NPY_FLOAT16) target = NPY_FLOAT32;
    else if (PyTypeNum_ISFLOAT(tn)) target = NPY_FLOAT64;
    else {
        PyErr_Format(PyExc_TypeError,
                     "tensor: arrays of dtype %R are not supported; tapegrad tensors are float32, "
                     "float64, int64, int32, uint8 or bool",
                     (PyObject *)PyArray_DESCR(a));
        return NULL;
    }
    PyObject *c = PyArray_FromAny((PyObject *)a, PyArray_DescrFromType(target), 0, 0,
                                  NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST,
                                  NULL);
    if (!c) return NULL;
    PyArrayObject *ca = (PyArrayObject *)c;
    int nd = PyArray_NDIM(ca);
    if (nd > TG_MAX_DIMS) {
        Py_DECREF(c);
        PyErr_Format(PyExc_ValueError, "tensor: %d dimensions, at most %d are supported", nd, TG_MAX_DIMS);
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = PyArray_DIM(ca, i);
    tg_dtype dt = TG_FLOAT32;
    npy_to_tg(target, &dt);
    tg_tensor *t = tg_tensor_from_buffer(nd, shape, dt, PyArray_DATA(ca));
    Py_DECREF(c);
    if (!t) tgpy_raise();
    return t;
}

/* NumPy makes uint64 of Python ints in [2**63, 2**64): stored as int64 they
 * would wrap to negative numbers.  -1 + OverflowError if an element does
 * not fit (NumPy refuses np.array([2**63], dtype=np.int64) the same way). */
static int uint64_fits(PyArrayObject *a, const char *who) {
    if (!PyTypeNum_ISUNSIGNED(PyArray_TYPE(a)) || PyArray_ITEMSIZE(a) < 8) return 0;
    PyObject *mx = PyArray_Max(a, NPY_RAVEL_AXIS, NULL);
    if (!mx) {
        PyErr_Clear(); /* empty: nothing to store */
        return 0;
    }
    PyObject *lim = PyLong_FromLongLong(INT64_MAX);
    int over = lim ? PyObject_RichCompareBool(mx, lim, Py_GT) : -1;
    Py_XDECREF(lim);
    if (over > 0)
        PyErr_Format(PyExc_OverflowError,
                     "%s: the Python int %S does not fit in int64 (expected -2**63 <= n < "
                     "2**63; use floats, e.g. float(n), or dtype=tg.float64)",
                     who, mx);
    Py_DECREF(mx);
    return over ? -1 : 0;
}

/* tg.tensor(data, dtype): always a new tensor (copy), never requiring grad. */
tg_tensor *tgpy_new_tensor(PyObject *o, int has_dtype, tg_dtype dt) {
    if (tgpy_is_tensor(o)) {
        tg_tensor *src = TENSOR(o);
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *r = tg_cast(src, has_dtype ? dt : src->dtype); /* always copies */
        tg_set_grad_enabled(prev);
        if (!r) tgpy_raise();
        return r;
    }
    if (PyArray_Check(o)) return copy_array((PyArrayObject *)o, has_dtype ? tg_to_npy(dt) : -1);
    if (PyArray_IsScalar(o, Generic) && !PyArray_IsScalar(o, Object)) { /* np.float64(1): keeps its dtype */
        PyObject *a = PyArray_FromScalar(o, NULL);
        if (!a) return NULL;
        tg_tensor *t = copy_array((PyArrayObject *)a, has_dtype ? tg_to_npy(dt) : -1);
        Py_DECREF(a);
        return t;
    }
    PyObject *a = PyArray_FROM_O(o);
    if (!a) return NULL;
    int tn = PyArray_TYPE((PyArrayObject *)a);
    if (tn == NPY_OBJECT && PyLong_Check(o)) { /* NumPy keeps it as an object */
        Py_DECREF(a);
        PyErr_Format(PyExc_OverflowError,
                     "tensor: the Python int %R does not fit in int64 (use a float: "
                     "tg.tensor(float(n)))",
                     o);
        return NULL;
    }
    if (tn == NPY_OBJECT) { /* an int past int64 makes NumPy keep objects: say so */
        PyObject *flat = PyArray_Ravel((PyArrayObject *)a, NPY_CORDER);
        Py_ssize_t n = flat ? PySequence_Size(flat) : -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PySequence_GetItem(flat, i);
            if (!it) break;
            int overflow = 0;
            if (PyLong_Check(it) && !PyBool_Check(it)) PyLong_AsLongLongAndOverflow(it, &overflow);
            if (overflow) {
                PyErr_Format(PyExc_OverflowError,
                             "tensor: the Python int %R (item %zd) does not fit in int64 "
                             "(expected -2**63 <= n < 2**63; use floats, e.g. float(n), or "
                             "dtype=tg.float64)",
                             it, i);
                Py_DECREF(it);
                Py_DECREF(flat);
                Py_DECREF(a);
                return NULL;
            }
            Py_DECREF(it);
        }
        Py_XDECREF(flat);
        PyErr_Clear();
    }
    if (tn == NPY_OBJECT || tn == NPY_STRING || tn == NPY_UNICODE) {
        Py_DECREF(a);
        PyErr_Format(PyExc_TypeError,
                     "tensor: cannot make a tensor from %s: expected numbers or (nested, "
                     "rectangular) lists of numbers",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    if ((!has_dtype || dt == TG_INT64) && uint64_fits((PyArrayObject *)a, "tensor")) {
        Py_DECREF(a);
        return NULL;
    }
    int want = has_dtype ? tg_to_npy(dt) : PyTypeNum_ISFLOAT(tn) ? NPY_FLOAT32 : -1;
    tg_tensor *t = copy_array((PyArrayObject *)a, want);
    Py_DECREF(a);
    return t;
}

tg_tensor *tgpy_as_tensor(PyObject *o, const tg_tensor *like) {
    if (tgpy_is_tensor(o)) {
        tg_tensor_retain(TENSOR(o));
        return TENSOR(o);
    }
    /* NumPy scalars (np.float64 is a subclass of float) keep their dtype, as
     * in NumPy 2; only Python numbers are "weak" and take the tensor's dtype */
    if (!PyFloat_CheckExact(o) && !PyLong_CheckExact(o) && PyArray_IsScalar(o, Generic)) {
        PyObject *a = PyArray_FromScalar(o, NULL);
        if (!a) return NULL;
        tg_tensor *t = copy_array((PyArrayObject *)a, -1);
        Py_DECREF(a);
        return t;
    }
    if (PyFloat_Check(o) || PyLong_Check(o) || PyBool_Check(o)) {
        tg_tensor *t = scalar_tensor(o, like);
        if (!t && !PyErr_Occurred()) tgpy_raise();
        return t;
    }
    if (PyArray_Check(o)) {
        PyArrayObject *a = (PyArrayObject *)o;
        int tn = PyArray_TYPE(a);
        if (npy_to_tg(tn, &(tg_dtype){TG_FLOAT32}) == 0 &&
            PyArray_ISNBO(PyArray_DESCR(a)->byteorder) && PyArray_ISALIGNED(a) &&
            PyArray_NDIM(a) <= TG_MAX_DIMS)
            return tgpy_from_numpy(o);
        return copy_array(a, -1);
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *a = PyArray_FROM_O(o);
        if (!a) return NULL;
        int tn = PyArray_TYPE((PyArrayObject *)a);
        /* Python floats become float32 (the default dtype), ints int64 */
        int want = PyTypeNum_ISFLOAT(tn) ? NPY_FLOAT32 : -1;
        if (uint64_fits((PyArrayObject *)a, "tensor")) {
            Py_DECREF(a);
            return NULL;
        }
        if (tn == NPY_OBJECT) {
            Py_DECREF(a);
            PyErr_SetString(PyExc_TypeError,
                            "tensor: the data is not a rectangular list of numbers (ragged "
                            "nested lists or non-numeric items)");
            return NULL;
        }
        tg_tensor *t = copy_array((PyArrayObject *)a, want);
        Py_DECREF(a);
        return t;
    }
    PyErr_Format(PyExc_TypeError,
                 "expected a Tensor, a NumPy array, a list or a number, got %s",
                 Py_TYPE(o)->tp_name);
    return NULL;
}

/* Put "who: " in front of the message of the pending exception (same type),
 * unless it already starts with it.  Returns NULL. */
PyObject *tgpy_prefix_error(const char *who) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t) return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    size_t n = strlen(who);
    if (!msg || (strncmp(msg, who, n) == 0 && msg[n] == ':')) {
        PyErr_Clear();
        Py_XDECREF(s);
        PyErr_Restore(t, v, tb);
        return NULL;
    }
    /* the Unicode errors take five constructor arguments, not a message (a
     * lone surrogate in a str argument): the named error is a ValueError,
     * their base, with the original as its cause */
    PyErr_Format(PyErr_GivenExceptionMatches(t, PyExc_UnicodeError) ? PyExc_ValueError : t, "%s: %s",
                 who, msg);
    Py_DECREF(s);
    PyObject *t2, *v2, *tb2;
    PyErr_Fetch(&t2, &v2, &tb2);
    PyErr_NormalizeException(&t2, &v2, &tb2);
    if (v2 && v) PyException_SetCause(v2, v); /* steals v */
    else Py_XDECREF(v);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    PyErr_Restore(t2, v2, tb2);
    return NULL;
}

/* Does msg name `who` as a word (not inside a longer identifier)? */
static int names_word(const char *msg, const char *who) {
    size_t n = strlen(who);
    for (const char *p = strstr(msg, who); p; p = strstr(p + 1, who)) {
        int before = p > msg && (p[-1] == '_' || isalnum((unsigned char)p[-1]));
        int after = p[n] == '_' || isalnum((unsigned char)p[n]);
        if (!before && !after) return 1;
    }
    return 0;
}

PyObject *tgpy_named(const char *who, PyObject *r) {
    if (r || who[0] == '_') return r; /* private hooks (_op_apply) keep the op's own message */
    PyObject *t = PyErr_Occurred();
    if (!t || (t != PyExc_TypeError && t != PyExc_ValueError && t != PyExc_IndexError &&
               t != PyExc_OverflowError && t != PyExc_MemoryError))
        return NULL;
    PyObject *et, *v, *tb;
    PyErr_Fetch(&et, &v, &tb);
    PyErr_NormalizeException(&et, &v, &tb);
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    int named = !msg || names_word(msg, who);
    PyErr_Clear(); /* from str() or UTF-8, if any: the original error wins */
    Py_XDECREF(s);
    PyErr_Restore(et, v, tb);
    return named ? NULL : tgpy_prefix_error(who);
}

/* ===================================================================== */
/* Argument parsing                                                       */
/* ===================================================================== */

int tgpy_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int n, int npos_max, PyObject **out) {
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (nargs > npos_max) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
                     fname, npos_max, npos_max == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    if (kwnames) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nk; k++) {
            PyObject *kwo = PyTuple_GET_ITEM(kwnames, k);
            const char *kw = tgpy_utf8(kwo);
            if (!kw) { /* a NUL or a lone surrogate: no parameter has that name */
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, kwo);
                return -1;
            }
            int found = -1;
            for (int i = 0; i < n; i++)
                if (!strcmp(kw, names[i])) found = i;
            if (found < 0) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%s'", fname, kw);
                return -1;
            }
            if (out[found]) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, kw);
                return -1;
            }
            out[found] = args[nargs + k];
        }
    }
    return 0;
}

int tgpy_bool(PyObject *o, int deflt) {
    if (!o) return deflt;
    return PyObject_IsTrue(o);
}

int tgpy_axes(PyObject *o, int64_t *axes, int *naxes) {
    if (!o || o == Py_None) {
        *naxes = -1;
        return 0;
    }
    if (PyLong_Check(o) || (PyIndex_Check(o) && !PyTuple_Check(o) && !PyList_Check(o) &&
                            !tgpy_is_tensor(o) && !PyArray_Check(o))) { /* int, np.int64 */
        axes[0] = PyLong_AsLongLong(o);
        if (axes[0] == -1 && PyErr_Occurred()) return -1;
        *naxes = 1;
        return 0;
    }
    if (PyTuple_Check(o) || PyList_Check(o)) {
        Py_ssize_t n = PySequence_Size(o);
        if (n > TG_MAX_DIMS) {
            PyErr_Format(PyExc_ValueError, "axis: %zd axes given, at most %d", n, TG_MAX_DIMS);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PySequence_GetItem(o, i);
            if (!it) return -1;
            axes[i] = PyLong_AsLongLong(it);
            Py_DECREF(it);
            if (axes[i] == -1 && PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "axis: expected an int or a tuple of ints");
                return -1;
            }
        }
        *naxes = (int)n;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "axis: expected None, an int or a tuple of ints, got %s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* One shape entry (an int or anything with __index__) into *out. */
static int shape_entry(const char *fname, PyObject *o, Py_ssize_t i, int64_t *out) {
    PyObject *n = PyNumber_Index(o);
    if (!n) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: shape entries must be ints, got %s", fname,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(n, &overflow);
    if (overflow) {
        PyErr_Format(PyExc_ValueError,
                     "%s: shape entry %zd is %R, too large (the number of elements must fit "
                     "in int64)",
                     fname, i, n);
        Py_DECREF(n);
        return -1;
    }
    Py_DECREF(n);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* a 0-d integer ndarray counts as an int (NumPy accepts np.zeros(np.array(3))) */
static int is_int_scalar_array(PyObject *o) {
    return PyArray_Check(o) && PyArray_NDIM((PyArrayObject *)o) == 0 &&
           (PyArray_ISINTEGER((PyArrayObject *)o) || PyArray_ISBOOL((PyArrayObject *)o));
}

int tgpy_shape_obj(const char *fname, PyObject *o, int64_t *shape, int *ndim) {
    if (PyLong_Check(o) || (PyIndex_Check(o) && !tgpy_is_tensor(o) && !PyArray_Check(o)) ||
        is_int_scalar_array(o)) {
        if (shape_entry(fname, o, 0, &shape[0])) return -1;
        *ndim = 1;
        return 0;
    }
    PyObject *seq = PySequence_Fast(o, "shape must be an int or a sequence of ints");
    if (!seq) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: shape must be an int or a sequence of ints, got %s",
                     fname, Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > TG_MAX_DIMS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: %zd dimensions requested, at most %d are supported",
                     fname, n, TG_MAX_DIMS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        if ((!PyLong_Check(it) && !PyIndex_Check(it)) ||
            (PyArray_Check(it) && !is_int_scalar_array(it))) {
            PyErr_Format(PyExc_TypeError, "%s: shape entries must be ints, got %s", fname,
                         Py_TYPE(it)->tp_name);
            Py_DECREF(seq); /* last: `it` may live only in seq (items of an ndarray) */
            return -1;
        }
        if (shape_entry(fname, it, i, &shape[i])) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *ndim = (int)n;
    return 0;
}

int tgpy_shape(const char *fname, PyObject *const *args, Py_ssize_t nargs, int64_t *shape, int *ndim) {
    if (nargs == 1 && ((!PyLong_Check(args[0]) && !PyIndex_Check(args[0])) || PyArray_Check(args[0])))
        return tgpy_shape_obj(fname, args[0], shape, ndim); /* a sequence, or an ndarray */
    if (nargs > TG_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: %zd dimensions requested, at most %d are supported",
                     fname, nargs, TG_MAX_DIMS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyLong_Check(args[i]) && !PyIndex_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "%s: shape entries must be ints, got %s", fname,
                         Py_TYPE(args[i])->tp_name);
            return -1;
        }
        if (shape_entry(fname, args[i], i, &shape[i])) return -1;
    }
    *ndim = (int)nargs;
    return 0;
}
