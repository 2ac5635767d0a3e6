/*
 * buffer.c -- Tensor's buffer protocol: memoryview(t) and np.asarray(t)
 * share the tensor's memory without a copy.
 */
#include "common.h"

/* Safe aliasing (see convert.c): while a tape entry keeps the memory for
 * backward, buffers are exported read-only (a writable one is refused);
 * otherwise a writable export is counted until released (mem[2 * TG_MAX_DIMS]
 * says so), and an entry saving the tensor meanwhile keeps a copy. */
/* The struct-module format of each dtype ("?" is C's _Bool: one byte). */
static char *buffer_format(tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return "f";
    case TG_FLOAT64: return "d";
    case TG_BOOL: return "?";
    case TG_INT32: return "i";
    case TG_UINT8: return "B";
    default: return "q";
    }
}

static int tensor_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    tg_tensor *t = TENSOR(self);
    if ((flags & PyBUF_WRITABLE) && t->storage->readonly) {
        PyErr_SetString(PyExc_BufferError, "the tensor's memory is read-only");
        return -1;
    }
    bool bcast = tgpy_is_broadcast_view(t);
    if ((flags & PyBUF_WRITABLE) && bcast) {
        PyErr_SetString(PyExc_BufferError,
                        "the tensor is a broadcast view (several elements share one memory "
                        "location): its buffer is read-only, as numpy.broadcast_to's is; use a "
                        "copy (t.contiguous())");
        return -1;
    }
    bool saved = t->storage->saved_count > 0;
    if ((flags & PyBUF_WRITABLE) && saved) {
        PyErr_SetString(PyExc_BufferError,
                        "the tensor's memory is read-only while a tape entry keeps it for "
                        "backward (safe aliasing): call backward() first, or use a copy");
        return -1;
    }
    Py_ssize_t *mem = PyMem_Malloc((2 * TG_MAX_DIMS + 1) * sizeof(Py_ssize_t));
    if (!mem) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t isz = (Py_ssize_t)tg_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        mem[i] = (Py_ssize_t)t->shape[i];
        mem[TG_MAX_DIMS + i] = (Py_ssize_t)t->strides[i] * isz;
    }
    if (!(flags & PyBUF_STRIDES) && !tg_tensor_is_contiguous(t)) {
        PyMem_Free(mem);
        PyErr_SetString(PyExc_BufferError, "the tensor is not contiguous; ask for a strided buffer");
        return -1;
    }
    int readonly = t->storage->readonly || saved || bcast;
    mem[2 * TG_MAX_DIMS] = !readonly;
    if (!readonly && tgpy_buffer_export(t->storage) < 0) {
        PyMem_Free(mem);
        return -1;
    }
    view->buf = tg_tensor_data(t);
    view->obj = self;
    Py_INCREF(self);
    view->len = (Py_ssize_t)t->numel * isz;
    view->readonly = readonly;
    view->itemsize = isz;
    view->format = (flags & PyBUF_FORMAT) ? buffer_format(t->dtype) : NULL;
    view->ndim = t->ndim;
    view->shape = mem;
    view->strides = (flags & PyBUF_STRIDES) ? mem + TG_MAX_DIMS : NULL;
    view->suboffsets = NULL;
    view->internal = mem;
    return 0;
}

static void tensor_releasebuffer(PyObject *self, Py_buffer *view) {
    Py_ssize_t *mem = view->internal;
    if (mem[2 * TG_MAX_DIMS]) tgpy_buffer_release(TENSOR(self)->storage);
    PyMem_Free(mem);
}

/* The buffer protocol of Tensor (tensor.c adds it to the type). */
PyType_Slot tgpy_buffer_slots[] = {
    {Py_bf_getbuffer, tensor_getbuffer},
    {Py_bf_releasebuffer, tensor_releasebuffer},
    {0, NULL}};
