/*
 * index.c -- Tensor indexing, NumPy's rules: t[i], t[1:3, ::2], t[None],
 * t[..., 0] (views through tg_slice/reshape), integer arrays (gather through
 * index_select), and assignment t[key] = value (in place, not recorded).
 */
#include "common.h"

#include <string.h>

enum { IX_INT, IX_SLICE, IX_NONE, IX_ELLIPSIS, IX_ARRAY };

/* An integer index array (new reference) from a list, ndarray or Tensor. */
tg_tensor *tgpy_index_array(PyObject *o) {
    if (tgpy_is_tensor(o)) {
        tg_tensor *t = TENSOR(o);
        if (t->dtype != TG_INT64) {
            PyErr_Format(PyExc_IndexError,
                         "index: tensors used as indices must be int64 (or bool masks), got %s",
                         tg_dtype_name(t->dtype));
            return NULL;
        }
        tg_tensor_retain(t);
        return t;
    }
    PyObject *a = PyArray_FROM_O(o);
    if (!a) return NULL;
    int tn = PyArray_TYPE((PyArrayObject *)a);
    if (PyTypeNum_ISBOOL(tn)) {
        Py_DECREF(a);
        PyErr_SetString(PyExc_IndexError,
                        "index: a boolean mask is only valid as an index of its own (x[mask], "
                        "x[:, mask]), not nested in a list or used by take/index_select");
        return NULL;
    }
    if (!PyTypeNum_ISINTEGER(tn) && !(PyArray_SIZE((PyArrayObject *)a) == 0)) {
        Py_DECREF(a);
        PyErr_SetString(PyExc_IndexError, "index: arrays used as indices must be of integer type");
        return NULL;
    }
    PyObject *c = PyArray_FromAny(a, PyArray_DescrFromType(NPY_INT64), 0, 0,
                                  NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST, NULL);
    Py_DECREF(a);
    if (!c) return NULL;
    int64_t shape[TG_MAX_DIMS];
    int nd = PyArray_NDIM((PyArrayObject *)c);
    if (nd > TG_MAX_DIMS) {
        Py_DECREF(c);
        PyErr_SetString(PyExc_IndexError, "index: index array has too many dimensions");
        return NULL;
    }
    for (int i = 0; i < nd; i++) shape[i] = PyArray_DIM((PyArrayObject *)c, i);
    tg_tensor *t = tg_tensor_from_buffer(nd, shape, TG_INT64, PyArray_DATA((PyArrayObject *)c));
    Py_DECREF(c);
    if (!t) tgpy_raise();
    return t;
}

typedef struct {
    int n;
    int kind[32];
    PyObject *item[32];
} index_spec;

static int classify(PyObject *key, index_spec *sp) {
    PyObject *items[32];
    int n;
    if (PyTuple_Check(key)) {
        n = (int)PyTuple_GET_SIZE(key);
        if (n > 32) {
            PyErr_SetString(PyExc_IndexError, "index: too many indices");
            return -1;
        }
        for (int i = 0; i < n; i++) items[i] = PyTuple_GET_ITEM(key, i);
    } else {
        n = 1;
        items[0] = key;
    }
    sp->n = n;
    for (int i = 0; i < n; i++) {
        PyObject *o = items[i];
        sp->item[i] = o;
        if (o == Py_None) sp->kind[i] = IX_NONE;
        else if (o == Py_Ellipsis) sp->kind[i] = IX_ELLIPSIS;
        else if (PySlice_Check(o)) sp->kind[i] = IX_SLICE;
        else if (PyBool_Check(o)) {
            PyErr_SetString(PyExc_IndexError, "index: boolean indices are not supported");
            return -1;
        } else if (tgpy_is_tensor(o) && TENSOR(o)->ndim == 0 && TENSOR(o)->dtype == TG_INT64) {
            sp->kind[i] = IX_INT;
        } else if (PyLong_Check(o) || (PyIndex_Check(o) && !tgpy_is_tensor(o) && !PyArray_Check(o)))
            sp->kind[i] = IX_INT;
        else if (PyList_Check(o) || PyArray_Check(o) || tgpy_is_tensor(o) || PyTuple_Check(o))
            sp->kind[i] = IX_ARRAY;
        else {
            PyErr_Format(PyExc_IndexError,
                         "index: only integers, slices (`:`), ellipsis (`...`), None and integer "
                         "arrays are valid indices, got %s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
    }
    return 0;
}

/* The size-1 dims of the key's None items, put into r (the result of the
 * key without them): as NumPy lays the result out, one dim per None and per
 * slice in key order, with the dims of the advanced indices (arrays) where
 * the first one stands when they are `together`, first otherwise.  kfull:
 * the kinds of the expanded key (n items), nslices of them slices.  Steals
 * r; NULL with the exception set. */
static tg_tensor *add_new_axes(tg_tensor *r, const int *kfull, int n, int n_none, bool together, int nslices) {
    if (!n_none) return r;
    int nblock = r->ndim - nslices; /* the dims the arrays gave */
    if (r->ndim + n_none > TG_MAX_DIMS) {
        PyErr_Format(PyExc_IndexError, "index: the result would have more than %d dimensions (%d new axes)",
                     TG_MAX_DIMS, n_none);
        tg_tensor_release(r);
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int k = 0, d = 0;
    bool block_done = false;
    if (!together && nblock > 0) {
        for (; d < nblock; d++) shape[k++] = r->shape[d];
        block_done = true;
    }
    for (int i = 0; i < n; i++) {
        if (kfull[i] == IX_NONE) {
            shape[k++] = 1;
        } else if (kfull[i] == IX_SLICE) {
            shape[k++] = r->shape[d++];
        } else if (kfull[i] == IX_ARRAY && !block_done) {
            for (int j = 0; j < nblock; j++) shape[k++] = r->shape[d++];
            block_done = true;
        }
    }
    tg_tensor *v = tg_reshape(r, k, shape);
    tg_tensor_release(r);
    if (!v) tgpy_raise();
    return v;
}

/* x[key] following NumPy's rules, as tape ops (views where NumPy gives views):
 *
 *  1. the Ellipsis (or the end of the key) stands for the dims not indexed;
 *  2. each None becomes a new size-1 dim, added last (one reshape view) so
 *     that no intermediate has more dims than the result;
 *  3. integers and slices: one slice view (integers remove their dim);
 *  4. integer arrays ("advanced" indices): broadcast together and picked with
 *     one index_select over the merged dims.  As in NumPy, their result dims
 *     stay in place when the advanced indices (arrays and integers) are next
 *     to each other in the key, and go first otherwise.
 * `basic_only` (assignment): arrays are refused and nothing is recorded. */
static tg_tensor *apply_index(tg_tensor *x, PyObject *key, bool basic_only) {
    index_spec sp;
    if (classify(key, &sp)) return NULL;
    int consumed = 0, n_ell = 0, n_arr = 0;
    int first_adv = -1, last_adv = -1, n_adv = 0; /* integers and arrays, in the key as written */
    for (int i = 0; i < sp.n; i++) {
        if (sp.kind[i] == IX_INT || sp.kind[i] == IX_SLICE || sp.kind[i] == IX_ARRAY) consumed++;
        if (sp.kind[i] == IX_ELLIPSIS) n_ell++;
        if (sp.kind[i] == IX_ARRAY) n_arr++;
        if (sp.kind[i] == IX_INT || sp.kind[i] == IX_ARRAY) {
            if (first_adv < 0) first_adv = i;
            last_adv = i;
            n_adv++;
        }
    }
    if (n_ell > 1) {
        PyErr_SetString(PyExc_IndexError, "index: an index can only have a single ellipsis ('...')");
        return NULL;
    }
    if (consumed > x->ndim) {
        PyErr_Format(PyExc_IndexError,
                     "index: too many indices for tensor: tensor is %d-dimensional, but %d were indexed",
                     x->ndim, consumed);
        return NULL;
    }
    if (n_arr && basic_only) {
        PyErr_SetString(PyExc_IndexError,
                        "index: assignment through integer-array indices is not supported; use "
                        "basic slices");
        return NULL;
    }
    /* 1. expand: one item per dim of the tensor with the new axes */
    int kind[TG_MAX_DIMS + 32];
    PyObject *item[TG_MAX_DIMS + 32];
    int n = 0, n_none = 0;
    for (int i = 0; i < sp.n; i++) {
        if (sp.kind[i] == IX_ELLIPSIS) {
            for (int k = 0; k < x->ndim - consumed; k++) {
                kind[n] = IX_SLICE;
                item[n++] = NULL; /* a full slice */
            }
            continue;
        }
        if (sp.kind[i] == IX_NONE) n_none++;
        kind[n] = sp.kind[i];
        item[n++] = sp.item[i];
    }
    if (!n_ell)
        for (int k = 0; k < x->ndim - consumed; k++) {
            kind[n] = IX_SLICE;
            item[n++] = NULL;
        }
    /* 2. new axes: inserted at the end (add_new_axes), so that the integers
     * and the merged arrays have removed their dims first: x[None, 0] of an
     * 8-dim x, whose result fits, never makes a 9-dim intermediate.  The
     * steps below see the key without them. */
    int kfull[TG_MAX_DIMS + 32], nfull = n, nslices = 0;
    memcpy(kfull, kind, sizeof kfull);
    {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (kind[i] != IX_NONE) {
                nslices += kind[i] == IX_SLICE;
                kind[k] = kind[i];
                item[k++] = item[i];
            }
        n = k;
    }
    bool prev = tg_set_grad_enabled(tg_grad_enabled() && !basic_only);
    tg_tensor *r;
    tg_tensor_retain(x);
    r = x;
    /* 3. integers and slices */
    int64_t starts[TG_MAX_DIMS], stops[TG_MAX_DIMS], steps[TG_MAX_DIMS];
    uint32_t imask = 0;
    int arr_item[TG_MAX_DIMS], arr_dim[TG_MAX_DIMS], arr_xdim[TG_MAX_DIMS], na = 0, rdim = 0, nones = 0;
    for (int i = 0; r && i < n; i++) {
        starts[i] = 0;
        stops[i] = INT64_MAX;
        steps[i] = 1;
        PyObject *o = item[i];
        if (kind[i] == IX_INT) {
            int64_t v;
            if (tgpy_is_tensor(o)) {
                v = *(const int64_t *)tg_tensor_data(TENSOR(o));
            } else {
                int overflow = 0;
                v = PyLong_AsLongLongAndOverflow(o, &overflow);
                if (overflow)
                    PyErr_Format(PyExc_IndexError,
                                 "index: index %R is out of range (an index must lie in "
                                 "-size <= i < size of its dimension)",
                                 o);
                if (overflow || (v == -1 && PyErr_Occurred())) {
                    tg_tensor_release(r);
                    r = NULL;
                    break;
                }
            }
            starts[i] = v;
            imask |= 1u << i;
        } else if (kind[i] == IX_SLICE && o) {
            Py_ssize_t a, b, c;
            if (PySlice_Unpack(o, &a, &b, &c) < 0) {
                tg_tensor_release(r);
                r = NULL;
                break;
            }
            starts[i] = a == PY_SSIZE_T_MIN ? INT64_MIN : a == PY_SSIZE_T_MAX ? INT64_MAX : a;
            stops[i] = b == PY_SSIZE_T_MIN ? INT64_MIN : b == PY_SSIZE_T_MAX ? INT64_MAX : b;
            steps[i] = c;
        }
        if (kind[i] == IX_NONE) nones++;
        if (kind[i] == IX_ARRAY) {
            arr_item[na] = i;
            arr_xdim[na] = i - nones; /* the dim of x, for messages */
            arr_dim[na++] = rdim;
        }
        if (kind[i] != IX_INT) rdim++;
    }
    if (r) {
        tg_tensor *s = tg_slice(r, starts, stops, steps, imask);
        tg_tensor_release(r);
        r = s;
    }
    tg_set_grad_enabled(prev);
    if (!r) {
        if (!PyErr_Occurred()) tgpy_raise();
        return NULL;
    }
    bool together = last_adv - first_adv + 1 == n_adv;
    if (!na) { /* (assignment records nothing, as above) */
        bool p2 = tg_set_grad_enabled(tg_grad_enabled() && !basic_only);
        r = add_new_axes(r, kfull, nfull, n_none, together, nslices);
        tg_set_grad_enabled(p2);
        return r;
    }

    /* 4. integer arrays: bring their dims together at a0 (NumPy: in place when
     * the integers and arrays are next to each other in the key as written, a
     * None, slice or Ellipsis between them sends the dims first) */
    int a0 = together ? arr_dim[0] : 0;
    bool moved = false;
    for (int k = 0; k < na; k++) moved |= arr_dim[k] != a0 + k;
    if (moved) {
        int64_t perm[TG_MAX_DIMS];
        int q = 0;
        bool is_arr[TG_MAX_DIMS] = {false};
        for (int k = 0; k < na; k++) is_arr[arr_dim[k]] = true;
        for (int d = 0; d < r->ndim && q < a0; d++)
            if (!is_arr[d]) perm[q++] = d;
        for (int k = 0; k < na; k++) perm[q++] = arr_dim[k];
        for (int d = 0; d < r->ndim; d++) {
            bool used = is_arr[d];
            for (int j = 0; j < a0 && !used; j++) used = perm[j] == d;
            if (!used) perm[q++] = d;
        }
        tg_tensor *p = tg_permute(r, perm);
        tg_tensor_release(r);
        if (!p) return (tg_tensor *)tgpy_raise();
        r = p;
    }
    tg_tensor *idx[TG_MAX_DIMS];
    for (int k = 0; k < na; k++) {
        idx[k] = tgpy_index_array(item[arr_item[k]]);
        if (!idx[k]) {
            for (int j = 0; j < k; j++) tg_tensor_release(idx[j]);
            tg_tensor_release(r);
            return NULL;
        }
    }
    tg_tensor *lin = NULL;
    if (na == 1) {
        lin = idx[0];
    } else {
        /* linear index over the merged dims: bound-check, wrap, combine (broadcasting) */
        bool pg = tg_set_grad_enabled(false);
        for (int k = 0; k < na && !PyErr_Occurred(); k++) {
            int64_t len = r->shape[a0 + k];
            /* read the int64 indices exactly: through a double, INT64_MAX
             * would round to 2**63, whose conversion back is undefined */
            tg_tensor *ic = tg_contiguous(idx[k]);
            if (!ic) {
                tgpy_raise();
                break;
            }
            const int64_t *iv = tg_tensor_data(ic);
            for (int64_t q = 0; q < ic->numel; q++) {
                int64_t v = iv[q];
                if (v < -len || v >= len) {
                    PyErr_Format(PyExc_IndexError,
                                 "index: index %lld is out of bounds for axis %d with size %lld",
                                 (long long)v, arr_xdim[k], (long long)len);
                    break;
                }
            }
            tg_tensor_release(ic);
            if (PyErr_Occurred()) break;
            /* wrap negatives: v + len * (v < 0) */
            tg_tensor *z = tg_tensor_scalar(0, TG_INT64);
            tg_tensor *neg = z ? tg_lt(idx[k], z) : NULL;
            tg_tensor *nn = neg ? tg_mul_scalar(neg, (double)len) : NULL;
            tg_tensor *w = nn ? tg_add(idx[k], nn) : NULL;
            tg_tensor_release(z);
            tg_tensor_release(neg);
            tg_tensor_release(nn);
            if (!w) break;
            if (!lin) {
                lin = w;
            } else {
                tg_tensor *m = tg_mul_scalar(lin, (double)len);
                tg_tensor_release(lin);
                lin = m ? tg_add(m, w) : NULL;
                tg_tensor_release(m);
                tg_tensor_release(w);
                if (!lin) break;
            }
        }
        tg_set_grad_enabled(pg);
        for (int k = 0; k < na; k++) tg_tensor_release(idx[k]);
        if (lin && PyErr_Occurred()) { /* an index out of bounds after the first array */
            tg_tensor_release(lin);
            lin = NULL;
        }
        if (!lin) {
            tg_tensor_release(r);
            if (!PyErr_Occurred()) tgpy_raise();
            return NULL;
        }
        /* merge dims a0 .. a0+na-1 of r (a copy if r is not laid out for it) */
        int64_t sh[TG_MAX_DIMS];
        int nd = 0;
        for (int d = 0; d < r->ndim; d++) {
            if (d > a0 && d < a0 + na) sh[nd - 1] *= r->shape[d];
            else sh[nd++] = r->shape[d];
        }
        tg_tensor *m = tg_reshape(r, nd, sh);
        tg_tensor_release(r);
        if (!m) {
            tg_tensor_release(lin);
            return (tg_tensor *)tgpy_raise();
        }
        r = m;
    }
    tg_tensor *s = tg_index_select(r, a0, lin);
    tg_tensor_release(lin);
    tg_tensor_release(r);
    if (!s) return (tg_tensor *)tgpy_raise();
    return add_new_axes(s, kfull, nfull, n_none, together, nslices);
}

static PyObject *tensor_getitem(PyObject *self, PyObject *key) {
    PyObject *k = tgpy_expand_bool_masks(key, TENSOR(self)); /* x[mask]: masks.c */
    if (!k) return NULL;
    tg_tensor *r = apply_index(TENSOR(self), k, false);
    Py_DECREF(k);
    if (!r) return NULL;
    return W(r);
}

/* x[rows, cols] = value: integer-array assignment is done by NumPy on a view
 * of the tensor's memory (its rules: broadcasting, the last write wins for
 * repeated indices), with the arrays checked as for x[...] and the storage
 * version bumped so that a saved tensor changed this way is detected. */
static int setitem_advanced(PyObject *self, index_spec *sp, PyObject *value) {
    tg_tensor *x = TENSOR(self);
    if (x->storage->readonly) {
        PyErr_SetString(PyExc_RuntimeError, "setitem: the tensor's memory is read-only");
        return -1;
    }
    if (tgpy_is_broadcast_view(x)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "setitem: the tensor is a broadcast view (stride 0); several elements "
                        "share one memory location");
        return -1;
    }
    PyObject *key = PyTuple_New(sp->n), *arr = NULL, *val = NULL;
    int rc = -1;
    if (!key) return -1;
    for (int i = 0; i < sp->n; i++) {
        PyObject *o = sp->item[i];
        if (sp->kind[i] == IX_ARRAY) {
            tg_tensor *idx = tgpy_index_array(o); /* int64 only, as for getitem */
            PyObject *io = idx ? W(idx) : NULL;
            if (!io) goto done;
            o = tgpy_to_numpy(TENSOR(io), io); /* the array keeps io alive */
            Py_DECREF(io);
            if (!o) goto done;
        } else if (sp->kind[i] == IX_INT && tgpy_is_tensor(o)) {
            o = PyLong_FromLongLong(*(const int64_t *)tg_tensor_data(TENSOR(o)));
            if (!o) goto done;
        } else {
            Py_INCREF(o);
        }
        PyTuple_SET_ITEM(key, i, o);
    }
    arr = tgpy_to_numpy(x, self);
    if (!arr) goto done;
    /* a private temporary, not an alias: writeable even while the memory is
     * saved for backward (safe aliasing); the version bump below records it */
    PyArray_ENABLEFLAGS((PyArrayObject *)arr, NPY_ARRAY_WRITEABLE);
    if (tgpy_is_tensor(value)) {
        val = tgpy_to_numpy(TENSOR(value), value);
        if (!val) goto done;
    } else {
        Py_INCREF(value);
        val = value;
    }
    if (PyObject_SetItem(arr, key, val) < 0) {
        /* NumPy's message, with the op's name in front */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        if (s && t && PyUnicode_AsUTF8(s)) {
            PyErr_Format(PyExc_IndexError == t ? PyExc_IndexError : PyExc_ValueError, "setitem: %s",
                         PyUnicode_AsUTF8(s));
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        } else {
            PyErr_Clear();
            PyErr_Restore(t, v, tb);
        }
        Py_XDECREF(s);
        goto done;
    }
    x->storage->version++; /* an in-place write, like tg_tensor_copy_ */
    rc = 0;
done:
    Py_XDECREF(key);
    Py_XDECREF(arr);
    Py_XDECREF(val);
    return rc;
}

static int tensor_setitem_key(PyObject *self, PyObject *key, PyObject *value);
/* Is key a boolean mask (a NumPy bool array, a list of bools, or a tapegrad
 * tensor of dtype bool)?  1 yes, 0 no, -1 error. */
static int setitem_is_mask(PyObject *key) {
    if (tgpy_is_tensor(key)) return strcmp(tg_dtype_name(TENSOR(key)->dtype), "bool") == 0;
    if (PyArray_Check(key)) return PyArray_ISBOOL((PyArrayObject *)key) ? 1 : 0;
    if (PyList_Check(key) && PyList_GET_SIZE(key) > 0) {
        PyObject *a = PyArray_FROM_O(key);
        if (!a) {
            PyErr_Clear();
            return 0;
        }
        int r = PyArray_ISBOOL((PyArrayObject *)a) ? 1 : 0;
        Py_DECREF(a);
        return r;
    }
    return 0;
}

/* x[mask] = value: where(mask, value, x), the mask's dims matching x's
 * leading dims (as in NumPy); recorded like masked_fill_. */
static int setitem_mask(PyObject *self, PyObject *key, PyObject *value) {
    tg_tensor *x = TENSOR(self);
    tg_tensor *m = NULL;
    if (tgpy_is_tensor(key)) {
        m = TENSOR(key);
        tg_tensor_retain(m);
    } else {
        PyObject *a = PyArray_FROM_O(key);
        if (!a) return -1;
        PyObject *f = PyArray_Cast((PyArrayObject *)a, NPY_FLOAT64);
        Py_DECREF(a);
        if (!f) return -1;
        m = tgpy_as_tensor(f, NULL);
        Py_DECREF(f);
        if (!m) return -1;
    }
    if (m->ndim > x->ndim) goto bad;
    for (int d = 0; d < m->ndim; d++)
        if (m->shape[d] != x->shape[d]) goto bad;
    if (m->ndim < x->ndim) { /* a mask over the leading dims: broadcast over the rest */
        int64_t sh[TG_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++) sh[d] = d < m->ndim ? m->shape[d] : 1;
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *r = tg_reshape(m, x->ndim, sh);
        tg_set_grad_enabled(prev);
        tg_tensor_release(m);
        if (!r) {
            tgpy_raise();
            return -1;
        }
        m = r;
    }
    tg_tensor *src = tgpy_as_tensor(value, x);
    if (!src) {
        tg_tensor_release(m);
        tgpy_prefix_error("setitem");
        return -1;
    }
    tg_status st = tg_setitem_mask_(x, m, src);
    tg_tensor_release(m);
    tg_tensor_release(src);
    if (st) {
        tgpy_raise();
        return -1;
    }
    return 0;
bad: {
    char ms[160], xs[160];
    tg_shape_str(m->ndim, m->shape, ms, sizeof ms);
    tg_shape_str(x->ndim, x->shape, xs, sizeof xs);
    tg_tensor_release(m); /* first: releasing memory borrowed from NumPy may clear errors */
    PyErr_Format(PyExc_IndexError,
                 "setitem: a boolean mask of shape %s does not match the tensor's shape %s (its "
                 "dims must equal the tensor's leading dims)",
                 ms, xs);
    return -1;
}
}

static int tensor_setitem(PyObject *self, PyObject *key, PyObject *value) {
    if (!value) return tensor_setitem_key(self, key, value);
    /* a whole-key bool mask over the leading dims: recorded like masked_fill_ */
    int mk = setitem_is_mask(key);
    if (mk < 0) return -1;
    if (mk) return setitem_mask(self, key, value);
    /* masks inside a longer key (x[:, mask] = v): integer arrays, masks.c */
    PyObject *k = tgpy_expand_bool_masks(key, TENSOR(self));
    if (!k) return -1;
    int rc = tensor_setitem_key(self, k, value);
    Py_DECREF(k);
    return rc;
}
static int tensor_setitem_key(PyObject *self, PyObject *key, PyObject *value) {
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "tensor elements cannot be deleted");
        return -1;
    }
    tg_tensor *x = TENSOR(self);
    int mk = setitem_is_mask(key);
    if (mk < 0) return -1;
    if (mk) return setitem_mask(self, key, value);
    index_spec sp;
    if (classify(key, &sp)) return -1;
    bool has_array = false;
    for (int i = 0; i < sp.n; i++) has_array |= sp.kind[i] == IX_ARRAY;
    if (has_array) {
        if (tg_grad_enabled() && (x->requires_grad ||
                                  (tgpy_is_tensor(value) && TENSOR(value)->requires_grad))) {
            PyErr_SetString(PyExc_RuntimeError,
                            "setitem: assignment with integer-array indices is not recorded on "
                            "the tape; use a boolean mask (x[mask] = v), slices, or "
                            "tg.where, or do it inside `with tg.no_grad():`");
            return -1;
        }
        return setitem_advanced(self, &sp, value);
    }
    if (x->dtype == TG_INT64 && PyLong_Check(value) && !PyBool_Check(value)) {
        int overflow = 0;
        PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_OverflowError,
                         "setitem: the Python int %R does not fit in the tensor's dtype int64 "
                         "(expected -2**63 <= value < 2**63)",
                         value);
            return -1;
        }
    }
    tg_tensor *v = apply_index(x, key, true);
    if (!v) return -1;
    tg_tensor *src = tgpy_as_tensor(value, x);
    if (!src) {
        tg_tensor_release(v);
        tgpy_prefix_error("setitem");
        return -1;
    }
    /* recorded when x or the value is in the graph (csrc/ops/inplace.c) */
    tg_status st = tg_setitem_(x, v, src);
    tg_tensor_release(v);
    tg_tensor_release(src);
    if (st) {
        tgpy_raise();
        return -1;
    }
    return 0;
}

static Py_ssize_t tensor_len(PyObject *self) {
    if (TENSOR(self)->ndim == 0) {
        PyErr_SetString(PyExc_TypeError, "len() of a 0-d tensor");
        return -1;
    }
    return (Py_ssize_t)TENSOR(self)->shape[0];
}

/* The mapping protocol of Tensor (tensor.c adds it to the type). */
PyType_Slot tgpy_index_slots[] = {
    {Py_mp_subscript, tensor_getitem},
    {Py_mp_ass_subscript, tensor_setitem},
    {Py_mp_length, tensor_len},
    {0, NULL}};
