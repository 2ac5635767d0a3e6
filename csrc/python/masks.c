/*
 * masks.c -- boolean-mask indexing: x[mask], x[mask] = v, x[:, mask].
 *
 * NumPy's rule: a boolean array of k dims in a key stands for the k integer
 * arrays of its true positions (np.nonzero(mask)), and its shape must equal
 * the k dims of x it covers.  tgpy_expand_bool_masks rewrites such a key
 * into the integer-array key that index.c already handles (a gather through
 * index_select, differentiable for x), after checking the shapes.
 */
#include "common.h"

/* A bool mask (tensor, ndarray, or list of Python bools) as a new NumPy
 * bool array reference; NULL without an error if `o` is not one. */
static PyObject *as_bool_array(PyObject *o) {
    if (tgpy_is_tensor(o)) {
        if (TENSOR(o)->dtype != TG_BOOL) return NULL;
        return tgpy_to_numpy(TENSOR(o), o);
    }
    if (PyArray_Check(o)) {
        if (PyArray_TYPE((PyArrayObject *)o) != NPY_BOOL) return NULL;
        Py_INCREF(o);
        return o;
    }
    if (PyList_Check(o) && PyList_GET_SIZE(o) > 0) {
        /* only a list whose items are all Python bools (NumPy's rule too) */
        PyObject *a = PyArray_FROM_O(o);
        if (!a) {
            PyErr_Clear();
            return NULL;
        }
        if (PyArray_TYPE((PyArrayObject *)a) != NPY_BOOL) {
            Py_DECREF(a);
            return NULL;
        }
        return a;
    }
    return NULL;
}

/* How many dims of x an item of a key consumes (-1: the ellipsis). */
static int item_dims(PyObject *o) {
    if (o == Py_None) return 0;
    if (o == Py_Ellipsis) return -1;
    PyObject *m = as_bool_array(o);
    if (m) {
        int k = PyArray_NDIM((PyArrayObject *)m);
        Py_DECREF(m);
        return k;
    }
    return 1;
}

PyObject *tgpy_expand_bool_masks(PyObject *key, const tg_tensor *x) {
    bool tuple = PyTuple_Check(key);
    Py_ssize_t n = tuple ? PyTuple_GET_SIZE(key) : 1;
    bool any = false;
    for (Py_ssize_t i = 0; i < n && !any; i++) {
        PyObject *m = as_bool_array(tuple ? PyTuple_GET_ITEM(key, i) : key);
        if (m) any = true;
        Py_XDECREF(m);
    }
    if (!any) {
        Py_INCREF(key);
        return key;
    }
    /* dims consumed after each item, to place the items behind an ellipsis */
    int total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int k = item_dims(tuple ? PyTuple_GET_ITEM(key, i) : key);
        if (k > 0) total += k;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    int pos = 0; /* the first dim of x the current item covers */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = tuple ? PyTuple_GET_ITEM(key, i) : key;
        int k = item_dims(o);
        if (k < 0) { /* ellipsis: the items after it cover the last dims */
            int after = 0;
            for (Py_ssize_t j = i + 1; j < n; j++) {
                int kj = item_dims(PyTuple_GET_ITEM(key, j));
                if (kj > 0) after += kj;
            }
            int here = x->ndim - after;
            pos = here > pos ? here : pos;
            if (PyList_Append(out, o) < 0) goto fail;
            continue;
        }
        PyObject *m = as_bool_array(o);
        if (!m) {
            pos += k;
            if (PyList_Append(out, o) < 0) goto fail;
            continue;
        }
        PyArrayObject *ma = (PyArrayObject *)m;
        if (k == 0) {
            Py_DECREF(m);
            PyErr_SetString(PyExc_IndexError,
                            "index: a 0-d boolean mask (x[True]) is not supported; use a mask with "
                            "the shape of the dims it selects");
            goto fail;
        }
        char sb[160];
        tg_shape_str(x->ndim, x->shape, sb, sizeof sb);
        if (pos + k > x->ndim || total > x->ndim) {
            PyErr_Format(PyExc_IndexError,
                         "index: too many indices for tensor: tensor of shape %s is %d-dimensional, "
                         "but the boolean mask of %d dims at key position %zd would index dims "
                         "%d..%d",
                         sb, x->ndim, k, i, pos, pos + k - 1);
            Py_DECREF(m);
            goto fail;
        }
        for (int d = 0; d < k; d++)
            if (PyArray_DIM(ma, d) != x->shape[pos + d]) {
                PyErr_Format(PyExc_IndexError,
                             "index: boolean index did not match the indexed tensor along axis %d: "
                             "the tensor (shape %s) has size %lld there but the corresponding "
                             "boolean axis has size %lld",
                             pos + d, sb, (long long)x->shape[pos + d],
                             (long long)PyArray_DIM(ma, d));
                Py_DECREF(m);
                goto fail;
            }
        PyObject *nz = PyArray_Nonzero(ma); /* a tuple of k int64 arrays */
        Py_DECREF(m);
        if (!nz) goto fail;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(nz); j++)
            if (PyList_Append(out, PyTuple_GET_ITEM(nz, j)) < 0) {
                Py_DECREF(nz);
                goto fail;
            }
        Py_DECREF(nz);
        pos += k;
    }
    PyObject *t = PyList_AsTuple(out);
    Py_DECREF(out);
    return t;
fail:
    Py_DECREF(out);
    return NULL;
}
