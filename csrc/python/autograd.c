/*
 * autograd.c -- tape entries as Python objects, tg.Tape's recorder, grad(),
 * the stepping backward engine, gradient hooks, Python-defined ops
 * (tg.Function) and VJP overrides.
 *
 * Callbacks into Python (hooks, Function.backward, overrides) run with the
 * GIL held (backward is always called from Python).  When one raises, the
 * callback returns TG_ERR_CALLBACK and the Python exception stays set, so the
 * learner sees their own exception with its traceback.
 */
#include "common.h"

#include <string.h>


/* ===================================================================== */
/* TapeEntry                                                              */
/* ===================================================================== */

typedef struct {
    PyObject_HEAD
    tg_entry *e; /* owned */
} EntryObject;

PyObject *tgpy_entry_wrap(tg_entry *e) {
    PyTypeObject *tp = tgpy_state->Entry;
    EntryObject *o = (EntryObject *)tp->tp_alloc(tp, 0);
    if (!o) return NULL;
    tg_entry_retain(e);
    o->e = e;
    return (PyObject *)o;
}

static void entry_dealloc(EntryObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tg_entry_release(self->e);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *entry_repr(EntryObject *self) {
    return PyUnicode_FromFormat("<TapeEntry #%llu %s>", (unsigned long long)self->e->seq,
                                tg_entry_name(self->e));
}

static PyObject *entry_richcompare(PyObject *a, PyObject *b, int op) {
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE)) Py_RETURN_NOTIMPLEMENTED;
    int eq = ((EntryObject *)a)->e == ((EntryObject *)b)->e;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t entry_hash(EntryObject *self) {
    Py_hash_t h = (Py_hash_t)((uintptr_t)self->e >> 4);
    return h == -1 ? -2 : h;
}

static PyObject *e_op(EntryObject *s, void *c) { return PyUnicode_FromString(tg_entry_name(s->e)); }
static PyObject *e_seq(EntryObject *s, void *c) { return PyLong_FromUnsignedLongLong(s->e->seq); }
static PyObject *e_inputs(EntryObject *s, void *c) {
    PyObject *t = PyTuple_New(s->e->n_inputs);
    if (!t) return NULL;
    for (int i = 0; i < s->e->n_inputs; i++) {
        PyObject *w = tgpy_wrap_borrowed(s->e->inputs[i]);
        if (!w) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, w);
    }
    return t;
}
static PyObject *e_needs_grad(EntryObject *s, void *c) {
    PyObject *t = PyTuple_New(s->e->n_inputs);
    for (int i = 0; t && i < s->e->n_inputs; i++)
        PyTuple_SET_ITEM(t, i, PyBool_FromLong(tg_entry_needs_grad(s->e, i)));
    return t;
}
static PyObject *e_saved(EntryObject *s, void *c) {
    if (s->e->freed) Py_RETURN_NONE;
    PyObject *t = PyTuple_New(s->e->n_saved);
    for (int i = 0; t && i < s->e->n_saved; i++) PyTuple_SET_ITEM(t, i, s->e->saved[i] ? tgpy_wrap_borrowed(s->e->saved[i]) : Py_NewRef(Py_None)); /* NULL: not needed (mul, div) */
    return t;
}
static PyObject *e_saved_bytes(EntryObject *s, void *c) {
    long long b = 0;
    if (!s->e->freed) {
        for (int i = 0; i < s->e->n_saved; i++)
            if (s->e->saved[i]) b += s->e->saved[i]->numel * (long long)tg_dtype_size(s->e->saved[i]->dtype);
        if (s->e->out_storage) {
            long long n = 1;
            for (int d = 0; d < s->e->out_ndim; d++) n *= s->e->out_shape[d];
            b += n * (long long)tg_dtype_size(s->e->out_dtype);
        }
    }
    return PyLong_FromLongLong(b);
}
static PyObject *e_saves_output(EntryObject *s, void *c) { return PyBool_FromLong(s->e->out_storage != NULL); }
static PyObject *e_output(EntryObject *s, void *c) { return tgpy_wrap_borrowed(s->e->out); }
static PyObject *e_output_shape(EntryObject *s, void *c) {
    PyObject *t = PyTuple_New(s->e->out_ndim);
    for (int i = 0; t && i < s->e->out_ndim; i++) PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(s->e->out_shape[i]));
    return t;
}
static PyObject *e_output_dtype(EntryObject *s, void *c) {
    PyObject *d = tgpy_dtype_object(s->e->out_dtype);
    Py_INCREF(d);
    return d;
}
static PyObject *e_freed(EntryObject *s, void *c) { return PyBool_FromLong(s->e->freed); }
static PyObject *e_is_custom(EntryObject *s, void *c) { return PyBool_FromLong(s->e->custom_vjp != NULL); }
#define OPTEXT(fn, field)                                                              \
    static PyObject *fn(EntryObject *s, void *c) {                                     \
        if (s->e->custom_vjp) Py_RETURN_NONE;                                          \
        return PyUnicode_FromString(s->e->op->field ? s->e->op->field : "");          \
    }
OPTEXT(e_forward, forward)
OPTEXT(e_forward_latex, forward_tex)
OPTEXT(e_vjp, vjp)
OPTEXT(e_vjp_latex, vjp_tex)
static PyObject *e_params(EntryObject *s, void *c) {
    const tg_params *p = &s->e->params;
    PyObject *axes = PyTuple_New(p->naxes > 0 ? p->naxes : 0);
    for (int i = 0; axes && i < p->naxes; i++) PyTuple_SET_ITEM(axes, i, PyLong_FromLongLong(p->axes[i]));
    PyObject *shape = PyTuple_New(p->ndim);
    for (int i = 0; shape && i < p->ndim; i++) PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(p->shape[i]));
    return Py_BuildValue("{s:N,s:O,s:N,s:(dddd),s:(LLLL)}", "axes", axes, "keepdims",
                         p->keepdims ? Py_True : Py_False, "shape", shape, "f", p->f[0], p->f[1],
                         p->f[2], p->f[3], "i", (long long)p->i[0], (long long)p->i[1],
                         (long long)p->i[2], (long long)p->i[3]);
}
static PyObject *e_next(EntryObject *s, void *c) {
    PyObject *t = PyTuple_New(s->e->n_inputs);
    for (int i = 0; t && i < s->e->n_inputs; i++) {
        tg_entry *n = s->e->inputs[i]->grad_fn;
        PyObject *o = n ? tgpy_entry_wrap(n) : (Py_INCREF(Py_None), Py_None);
        PyTuple_SET_ITEM(t, i, o);
    }
    return t;
}
static PyObject *e_ptr(EntryObject *s, void *c) { return PyLong_FromVoidPtr(s->e); }
static PyObject *e_inplace(EntryObject *s, void *c) {
    const char *w = tg_entry_inplace(s->e);
    if (!w) Py_RETURN_NONE;
    return PyUnicode_FromString(w);
}

static PyGetSetDef entry_getset[] = {
    {"op", (getter)e_op, NULL, "The op's name (or a Function's name).", NULL},
    {"name", (getter)e_op, NULL, "Same as op.", NULL},
    {"inplace", (getter)e_inplace, NULL,
     "The in-place write that recorded this entry (``'add_'``, ``'setitem'``, ...), or None.", NULL},
    {"seq", (getter)e_seq, NULL, "The sequence number: the entry's place on the tape.", NULL},
    {"inputs", (getter)e_inputs, NULL, "The input tensors (the graph's edges).", NULL},
    {"needs_grad", (getter)e_needs_grad, NULL, "Per input: does backward compute its gradient?", NULL},
    {"saved", (getter)e_saved, NULL, "Tensors saved for backward (None once freed).", NULL},
    {"saved_bytes", (getter)e_saved_bytes, NULL, "Bytes held for backward.", NULL},
    {"saves_output", (getter)e_saves_output, NULL, "True if the VJP reuses the forward output.", NULL},
    {"output", (getter)e_output, NULL, "The output tensor if it is still alive, else None.", NULL},
    {"output_shape", (getter)e_output_shape, NULL, "Shape of the output.", NULL},
    {"output_dtype", (getter)e_output_dtype, NULL, "Dtype of the output.", NULL},
    {"freed", (getter)e_freed, NULL, "True after a backward freed its saved tensors.", NULL},
    {"is_custom", (getter)e_is_custom, NULL, "True for ops defined in Python (tg.Function).", NULL},
    {"forward", (getter)e_forward, NULL, "The forward formula (plain text).", NULL},
    {"forward_latex", (getter)e_forward_latex, NULL, "The forward formula (LaTeX).", NULL},
    {"vjp", (getter)e_vjp, NULL, "The VJP formula (plain text).", NULL},
    {"vjp_latex", (getter)e_vjp_latex, NULL, "The VJP formula (LaTeX).", NULL},
    {"params", (getter)e_params, NULL, "The op's parameters (axes, shapes, scalars).", NULL},
    {"next_entries", (getter)e_next, NULL, "Per input, its producing entry (None for leaves).", NULL},
    {"_ptr", (getter)e_ptr, NULL, "Address (identity).", NULL},
    {NULL}};

/* Entries are made only by the library (an op that records): a TapeEntry()
 * from Python would have no entry behind it. */
static PyObject *entry_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    PyErr_SetString(PyExc_TypeError,
                    "TapeEntry: cannot be created directly; tape entries are made by the ops "
                    "that record them (read them from t.grad_fn or a tg.Tape)");
    return NULL;
}

static PyType_Slot entry_slots[] = {
    {Py_tp_new, entry_new},
    {Py_tp_doc, "One entry of the tape: an op that ran, its inputs, what it saved for backward,\n"
                "its output and its sequence number."},
    {Py_tp_dealloc, entry_dealloc},
    {Py_tp_repr, entry_repr},
    {Py_tp_richcompare, entry_richcompare},
    {Py_tp_hash, entry_hash},
    {Py_tp_getset, entry_getset},
    {0, NULL}};

/* ===================================================================== */
/* Recorder (the C half of tg.Tape)                                       */
/* ===================================================================== */

typedef struct {
    PyObject_HEAD
    tg_recorder *r;
} RecorderObject;

static PyObject *rec_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    RecorderObject *o = (RecorderObject *)tp->tp_alloc(tp, 0);
    return (PyObject *)o;
}
static void rec_dealloc(RecorderObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tg_recorder_free(self->r);
    tp->tp_free(self);
    Py_DECREF(tp);
}
static PyObject *rec_begin(RecorderObject *self, PyObject *unused) {
    if (self->r) {
        PyErr_SetString(PyExc_RuntimeError, "Tape: this tape has already been used; make a new one");
        return NULL;
    }
    self->r = tg_recorder_begin();
    if (!self->r) return tgpy_raise();
    Py_RETURN_NONE;
}
static PyObject *rec_end(RecorderObject *self, PyObject *unused) {
    if (self->r && tg_recorder_end(self->r)) return tgpy_raise();
    Py_RETURN_NONE;
}
static Py_ssize_t rec_len(RecorderObject *self) { return self->r ? (Py_ssize_t)tg_recorder_count(self->r) : 0; }
static PyObject *rec_item(RecorderObject *self, Py_ssize_t i) {
    Py_ssize_t n = rec_len(self);
    if (i < 0) i += n;
    if (i < 0 || i >= n) {
        PyErr_Format(PyExc_IndexError, "Tape: entry %zd is out of range (the tape has %zd entries)", i, n);
        return NULL;
    }
    return tgpy_entry_wrap(tg_recorder_entry(self->r, i));
}
static PyMethodDef rec_methods[] = {
    {"_begin", (PyCFunction)rec_begin, METH_NOARGS, "Start recording."},
    {"_end", (PyCFunction)rec_end, METH_NOARGS, "Stop recording."},
    {NULL}};
static PyType_Slot rec_slots[] = {
    {Py_tp_doc, "The C recorder behind tg.Tape: keeps every entry made while active."},
    {Py_tp_new, rec_new},
    {Py_tp_dealloc, rec_dealloc},
    {Py_tp_methods, rec_methods},
    {Py_sq_length, rec_len},
    {Py_sq_item, rec_item},
    {0, NULL}};

/* ===================================================================== */
/* Helpers                                                                */
/* ===================================================================== */

/* Sequence of tensors -> NEW array; `allow_none`: None entries stay NULL. */
static tg_tensor **tensors_from(PyObject *o, int *n, bool allow_none, const char *what) {
    PyObject *fast;
    if (tgpy_is_tensor(o) || o == Py_None) {
        fast = PyTuple_Pack(1, o);
    } else {
        fast = PySequence_Fast(o, what);
    }
    if (!fast) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    tg_tensor **ts = PyMem_Calloc(len ? (size_t)len : 1, sizeof *ts);
    for (Py_ssize_t i = 0; ts && i < len; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
        if (it == Py_None && allow_none) continue;
        if (!tgpy_is_tensor(it)) {
            PyErr_Format(PyExc_TypeError, "%s: expected Tensors, got %s at position %zd", what,
                         Py_TYPE(it)->tp_name, i);
            for (Py_ssize_t j = 0; j < i; j++) tg_tensor_release(ts[j]);
            PyMem_Free(ts);
            Py_DECREF(fast);
            return NULL;
        }
        ts[i] = TENSOR(it);
        tg_tensor_retain(ts[i]);
    }
    if (!ts) PyErr_NoMemory();
    Py_DECREF(fast);
    *n = (int)len;
    return ts;
}
static void release_all(tg_tensor **ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) tg_tensor_release(ts[i]);
    PyMem_Free(ts);
}

#define FUNC(name) static PyObject *f_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* seeds: None -> NULL array; else one per output (None entries = ones). */
static int make_seeds(PyObject *o, int n_out, tg_tensor **outs, tg_tensor ***seeds) {
    *seeds = NULL;
    if (!o || o == Py_None) return 0;
    int n;
    tg_tensor **s = tensors_from(o, &n, true, "grad_outputs");
    if (!s) return -1;
    if (n != n_out) {
        release_all(s, n);
        PyErr_Format(PyExc_ValueError, "grad: %d grad_outputs for %d outputs", n, n_out);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!s[i]) {
            s[i] = tg_tensor_ones(outs[i]->ndim, outs[i]->shape, outs[i]->dtype);
            if (!s[i]) {
                release_all(s, n);
                tgpy_raise();
                return -1;
            }
        }
    *seeds = s;
    return 0;
}

/* ===================================================================== */
/* grad()                                                                 */
/* ===================================================================== */

FUNC(grad) {
    ARGS("grad", 5, 3, "outputs", "inputs", "grad_outputs", "retain_graph", "create_graph")
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "grad() needs outputs and inputs");
        return NULL;
    }
    int create = tgpy_bool(a[4], 0);
    int retain = a[3] && a[3] != Py_None ? PyObject_IsTrue(a[3]) : create;
    if (create < 0 || retain < 0) return NULL;
    int no, ni;
    tg_tensor **outs = tensors_from(a[0], &no, false, "grad(outputs)");
    if (!outs) return NULL;
    tg_tensor **ins = tensors_from(a[1], &ni, false, "grad(inputs)");
    if (!ins) {
        release_all(outs, no);
        return NULL;
    }
    tg_tensor **seeds;
    if (make_seeds(a[2], no, outs, &seeds)) {
        release_all(outs, no);
        release_all(ins, ni);
        return NULL;
    }
    tg_tensor **res = PyMem_Calloc((size_t)ni + 1, sizeof *res);
    tg_status st = res ? tg_grad(no, outs, seeds, ni, ins,
                                 (retain ? TG_RETAIN_GRAPH : 0) | (create ? TG_CREATE_GRAPH : 0), res)
                       : TG_ERR_MEMORY;
    release_all(outs, no);
    release_all(ins, ni);
    release_all(seeds, no);
    if (st) {
        PyMem_Free(res);
        return tgpy_raise();
    }
    PyObject *t = PyTuple_New(ni);
    for (int i = 0; i < ni; i++) PyTuple_SET_ITEM(t, i, W(res[i]));
    PyMem_Free(res);
    return t;
}

/* ===================================================================== */
/* The stepping engine                                                    */
/* ===================================================================== */

typedef struct {
    PyObject_HEAD
    tg_stepper *bw;
    int done;
    int priv; /* private=True: the records show no gradients (TG_PRIVATE_STEPS) */
} StepperObject;

static PyObject *stepper_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
    static char *kwl[] = {"outputs", "grad_outputs", "retain_graph", "create_graph", "direct", "private", NULL};
    PyObject *outs_o, *seeds_o = Py_None;
    int retain = 0, create = 0, direct = 0, priv = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Opppp:_Stepper", kwl, &outs_o, &seeds_o, &retain,
                                     &create, &direct, &priv))
        return NULL;
    int no;
    tg_tensor **outs = tensors_from(outs_o, &no, false, "outputs");
    if (!outs) return NULL;
    tg_tensor **seeds;
    if (make_seeds(seeds_o, no, outs, &seeds)) {
        release_all(outs, no);
        return NULL;
    }
    StepperObject *o = (StepperObject *)tp->tp_alloc(tp, 0);
    if (o) {
        o->bw = tg_backward_begin(no, outs, seeds,
                                  (retain ? TG_RETAIN_GRAPH : 0) | (create ? TG_CREATE_GRAPH : 0) |
                                      (direct ? TG_DIRECT : 0) | (priv ? TG_PRIVATE_STEPS : 0),
                                  0, NULL);
        o->priv = priv;
        if (!o->bw) {
            Py_DECREF(o);
            o = NULL;
            tgpy_raise();
        }
    }
    release_all(outs, no);
    release_all(seeds, no);
    return (PyObject *)o;
}

static void stepper_dealloc(StepperObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tg_backward_end(self->bw);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* step() -> dict describing the step, or None when every entry has run. */
static PyObject *stepper_step(StepperObject *self, PyObject *unused) {
    if (!self->bw) {
        PyErr_SetString(PyExc_RuntimeError, "backward stepper: already finished");
        return NULL;
    }
    int r = tg_backward_step(self->bw);
    if (r < 0) {
        PyObject *e = tgpy_raise();
        tg_backward_end(self->bw);
        self->bw = NULL;
        return e;
    }
    if (r == 0) Py_RETURN_NONE;
    const tg_step *s = tg_backward_last_step(self->bw);
    PyObject *gin = PyList_New(s->n_inputs), *masks = PyList_New(s->n_inputs);
    for (int i = 0; i < s->n_inputs; i++) {
        PyList_SET_ITEM(gin, i, tgpy_wrap_borrowed(self->priv ? NULL : s->grad_in[i]));
        PyObject *summed = PyList_New(0);
        for (int d = 0; d < s->summed_ndim[i]; d++)
            if (s->summed_mask[i] & (1u << d)) {
                PyObject *v = PyLong_FromLong(d);
                PyList_Append(summed, v);
                Py_DECREF(v);
            }
        PyList_SET_ITEM(masks, i, Py_BuildValue("(Ni)", summed, s->summed_ndim[i]));
    }
    return Py_BuildValue("{s:N,s:L,s:N,s:N,s:N}", "entry", tgpy_entry_wrap(s->entry), "index",
                         (long long)s->index, "grad_out", tgpy_wrap_borrowed(self->priv ? NULL : s->grad_out), "grad_in",
                         gin, "summed", masks);
}

/* finish(): flush pending leaf gradients and release the engine. */
static PyObject *stepper_end(StepperObject *self, PyObject *unused) {
    if (self->bw) {
        tg_backward_end(self->bw);
        self->bw = NULL;
        if (tg_error_status() && PyErr_Occurred()) return NULL;
    }
    Py_RETURN_NONE;
}
static PyObject *stepper_size(StepperObject *self, PyObject *u) {
    return PyLong_FromLongLong(self->bw ? tg_backward_size(self->bw) : 0);
}
static PyObject *stepper_position(StepperObject *self, PyObject *u) {
    return PyLong_FromLongLong(self->bw ? tg_backward_position(self->bw) : 0);
}
static PyObject *stepper_entry(StepperObject *self, PyObject *i) {
    long long k = PyLong_AsLongLong(i);
    if (k == -1 && PyErr_Occurred()) return NULL;
    tg_entry *e = self->bw ? tg_backward_entry(self->bw, k) : NULL;
    if (!e) {
        PyErr_SetString(PyExc_IndexError, "backward stepper: no such entry");
        return NULL;
    }
    return tgpy_entry_wrap(e);
}
static PyObject *stepper_pending(StepperObject *self, PyObject *i) {
    long long k = PyLong_AsLongLong(i);
    if (k == -1 && PyErr_Occurred()) return NULL;
    return tgpy_wrap_borrowed(self->bw ? tg_backward_pending(self->bw, k) : NULL);
}
static PyMethodDef stepper_methods[] = {
    {"step", (PyCFunction)stepper_step, METH_NOARGS, "Run exactly one entry's VJP; None when done."},
    {"end", (PyCFunction)stepper_end, METH_NOARGS, "Finish: store pending leaf gradients, free the engine."},
    {"size", (PyCFunction)stepper_size, METH_NOARGS, "Number of entries to run."},
    {"position", (PyCFunction)stepper_position, METH_NOARGS, "Entries run so far."},
    {"entry", (PyCFunction)stepper_entry, METH_O, "The i-th entry in run order."},
    {"pending", (PyCFunction)stepper_pending, METH_O, "Gradient accumulated so far for entry i's output."},
    {NULL}};
static PyType_Slot stepper_slots[] = {
    {Py_tp_doc, "_Stepper(outputs, grad_outputs=None, retain_graph=False, create_graph=False,\n"
                "         direct=False, private=False)\n\n"
                "The C stepping backward engine (tg.inspect.BackwardStepper builds on it).\n"
                "private=True: the steps run as in backward() (a VJP may write over its\n"
                "incoming gradient), and the step records show no gradients (None)."},
    {Py_tp_new, stepper_new},
    {Py_tp_dealloc, stepper_dealloc},
    {Py_tp_methods, stepper_methods},
    {0, NULL}};

/* ===================================================================== */
/* Gradient hooks                                                         */
/* ===================================================================== */

/* Calls each hook in the tensor's list with the gradient; a hook may return
 * a replacement (same shape). */
static tg_status grad_hook_trampoline(tg_tensor *t, tg_tensor *grad, tg_tensor **rep, void *ctx) {
    TensorData *d = t->user_data;
    if (!d || !d->hooks || PyList_GET_SIZE(d->hooks) == 0) return TG_OK;
    PyObject *hooks = PySequence_List(d->hooks); /* copy: hooks may remove themselves */
    if (!hooks) return tg_error_set(TG_ERR_CALLBACK, "hook: failed");
    tg_tensor_retain(grad);
    tg_tensor *cur = grad;
    tg_status st = TG_OK;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hooks); i++) {
        PyObject *g = tgpy_wrap_borrowed(cur);
        if (!g) {
            st = tg_error_set(TG_ERR_CALLBACK, "hook: failed");
            break;
        }
        PyObject *r = PyObject_CallOneArg(PyList_GET_ITEM(hooks, i), g);
        Py_DECREF(g);
        if (!r) {
            st = tg_error_set(TG_ERR_CALLBACK, "hook: the hook raised an exception");
            break;
        }
        if (r != Py_None) {
            tg_tensor *n = tgpy_as_tensor(r, cur);
            if (!n) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "hook: a gradient hook must return None or a tensor of the "
                             "gradient's shape, got %s",
                             Py_TYPE(r)->tp_name);
                Py_DECREF(r);
                st = tg_error_set(TG_ERR_CALLBACK, "hook: bad return value");
                break;
            }
            Py_DECREF(r);
            if (n->ndim != cur->ndim || memcmp(n->shape, cur->shape, sizeof(int64_t) * (size_t)n->ndim)) {
                char a1[128], a2[128];
                tg_shape_str(n->ndim, n->shape, a1, sizeof a1);
                tg_shape_str(cur->ndim, cur->shape, a2, sizeof a2);
                tg_tensor_release(n);
                PyErr_Format(PyExc_ValueError,
                             "hook: a gradient hook returned a tensor of shape %s, expected %s (the "
                             "gradient's shape)",
                             a1, a2);
                st = tg_error_set(TG_ERR_CALLBACK, "hook: wrong shape");
                break;
            }
            if (n->dtype != cur->dtype) {
                tg_tensor *c = tg_cast(n, cur->dtype);
                tg_tensor_release(n);
                n = c;
            }
            tg_tensor_release(cur);
            cur = n;
        } else {
            Py_DECREF(r);
        }
    }
    Py_DECREF(hooks);
    if (st || cur == grad) {
        tg_tensor_release(cur);
        return st;
    }
    *rep = cur;
    return TG_OK;
}

/* _set_grad_hooks(t, list): the list object is kept and read at backward. */
FUNC(_set_grad_hooks) {
    ARGS("_set_grad_hooks", 2, 2, "tensor", "hooks")
    if (!a[0] || !tgpy_is_tensor(a[0]) || !a[1] || (a[1] != Py_None && !PyList_Check(a[1]))) {
        PyErr_SetString(PyExc_TypeError, "_set_grad_hooks(tensor, list or None)");
        return NULL;
    }
    tg_tensor *t = TENSOR(a[0]);
    TensorData *d = tgpy_data(t);
    if (!d) return NULL;
    Py_XSETREF(d->hooks, a[1] == Py_None ? NULL : (Py_INCREF(a[1]), a[1]));
    tg_tensor_set_grad_hook(t, d->hooks ? grad_hook_trampoline : NULL, NULL);
    Py_RETURN_NONE;
}

FUNC(_get_grad_hooks) {
    if (nargs != 1 || !tgpy_is_tensor(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_get_grad_hooks(tensor)");
        return NULL;
    }
    TensorData *d = TENSOR(args[0])->user_data;
    if (!d || !d->hooks) Py_RETURN_NONE;
    Py_INCREF(d->hooks);
    return d->hooks;
}

/* ===================================================================== */
/* Python-defined ops and VJP overrides                                   */
/* ===================================================================== */

/* Store the gradients returned by a Python VJP into grad_in: a Tensor (one
 * input) or a sequence with one item per input (None = no gradient). */
static tg_status store_grads(tg_entry *e, PyObject *r, tg_tensor **gi, const char *who) {
    PyObject *fast;
    if (tgpy_is_tensor(r) || r == Py_None) fast = PyTuple_Pack(1, r);
    else fast = PySequence_Fast(r, "a VJP must return a tensor or a tuple of tensors");
    if (!fast) return tg_error_set(TG_ERR_CALLBACK, "%s: bad return value", who);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n != e->n_inputs) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError,
                     "%s: the VJP of '%s' returned %zd gradient%s, expected %d (one per input, "
                     "None for inputs without a gradient)",
                     who, tg_entry_name(e), n, n == 1 ? "" : "s", e->n_inputs);
        return tg_error_set(TG_ERR_CALLBACK, "%s: wrong number of gradients", who);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *g = PySequence_Fast_GET_ITEM(fast, i);
        if (g == Py_None) continue;
        tg_tensor *x = e->inputs[i];
        if (!tgpy_is_tensor(g) && !PyArray_Check(g) && !PyFloat_Check(g) && !PyLong_Check(g)) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_TypeError, "%s: the VJP of '%s' returned a %s for input %zd, expected a Tensor",
                         who, tg_entry_name(e), Py_TYPE(g)->tp_name, i);
            return tg_error_set(TG_ERR_CALLBACK, "%s: wrong type", who);
        }
        tg_tensor *t = tgpy_as_tensor(g, x);
        if (!t) {
            Py_DECREF(fast);
            return tg_error_set(TG_ERR_CALLBACK, "%s: bad gradient", who);
        }
        gi[i] = t; /* the engine checks shape and dtype and names the op */
    }
    Py_DECREF(fast);
    return TG_OK;
}

static void release_pyobj(void *ctx) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF((PyObject *)ctx);
    PyGILState_Release(g);
}

static tg_status custom_vjp(tg_entry *e, tg_tensor *grad_out, tg_tensor **gi, void *ctx) {
    PyObject *g = tgpy_wrap_borrowed(grad_out);
    if (!g) return tg_error_set(TG_ERR_CALLBACK, "custom op: failed");
    PyObject *r = PyObject_CallOneArg((PyObject *)ctx, g);
    Py_DECREF(g);
    if (!r) return tg_error_set(TG_ERR_CALLBACK, "%s: backward raised an exception", tg_entry_name(e));
    tg_status st = store_grads(e, r, gi, tg_entry_name(e));
    Py_DECREF(r);
    return st;
}

/* _custom_record(name, inputs, output, backward) -> output with grad_fn */
FUNC(_custom_record) {
    ARGS("_custom_record", 4, 4, "name", "inputs", "output", "backward")
    if (!a[0] || !a[1] || !a[2] || !a[3] || !tgpy_is_tensor(a[2]) || !PyCallable_Check(a[3])) {
        PyErr_SetString(PyExc_TypeError, "_custom_record(name, inputs, output: Tensor, backward: callable)");
        return NULL;
    }
    const char *name = tgpy_utf8(a[0]);
    if (!name) return NULL;
    int n;
    tg_tensor **ins = tensors_from(a[1], &n, false, "Function inputs");
    if (!ins) return NULL;
    Py_INCREF(a[3]);
    tg_tensor *r = tg_custom_record(name, n, ins, TENSOR(a[2]), custom_vjp, a[3], release_pyobj);
    release_all(ins, n);
    return W(r);
}

FUNC(_entry_save) {
    ARGS("_entry_save", 2, 2, "entry", "tensor")
    if (!a[0] || !a[1] || Py_TYPE(a[0]) != tgpy_state->Entry || !tgpy_is_tensor(a[1])) {
        PyErr_SetString(PyExc_TypeError, "_entry_save(entry, tensor)");
        return NULL;
    }
    if (tg_entry_save(((EntryObject *)a[0])->e, TENSOR(a[1]))) return tgpy_raise();
    Py_RETURN_NONE;
}

static PyObject *overrides[256];

static tg_status override_vjp(tg_entry *e, tg_tensor *grad_out, tg_tensor **gi, void *ctx) {
    PyObject *fn = ctx;
    PyObject *eo = tgpy_entry_wrap(e);
    PyObject *g = eo ? tgpy_wrap_borrowed(grad_out) : NULL;
    PyObject *r = g ? PyObject_CallFunctionObjArgs(fn, eo, g, NULL) : NULL;
    Py_XDECREF(eo);
    Py_XDECREF(g);
    if (!r) return tg_error_set(TG_ERR_CALLBACK, "%s: the overriding VJP raised an exception", tg_entry_name(e));
    tg_status st = store_grads(e, r, gi, tg_entry_name(e));
    Py_DECREF(r);
    return st;
}

/* The op named by the str o (NULL and ValueError naming `who` if none). */
static const tg_opdef *op_named(PyObject *o, const char *who) {
    const char *name = o ? tgpy_utf8(o) : NULL;
    if (!name) return NULL;
    const tg_opdef *op = tg_op_find(name);
    if (!op) PyErr_Format(PyExc_ValueError, "%s: there is no op named '%s' (see tg.ops())", who, name);
    return op;
}

/* _set_vjp_override(op_name, fn or None) -> the previous override or None */
FUNC(_set_vjp_override) {
    ARGS("_set_vjp_override", 2, 2, "op", "fn")
    const tg_opdef *op = op_named(a[0], "override_vjp");
    if (!op) return NULL;
    const char *name = op->name;
    if (!op->backward) {
        PyErr_Format(PyExc_ValueError, "override_vjp: op '%s' is not differentiable", name);
        return NULL;
    }
    PyObject *fn = a[1] && a[1] != Py_None ? a[1] : NULL;
    if (fn && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "override_vjp: fn must be callable(entry, grad_output)");
        return NULL;
    }
    PyObject *prev = overrides[op->id];
    Py_XINCREF(fn);
    overrides[op->id] = fn;
    tg_op_set_vjp_override(op, fn ? override_vjp : NULL, fn);
    if (!prev) Py_RETURN_NONE;
    return prev; /* the reference held by the table passes to the caller */
}

/* _vjp_override(op_name) -> the Python function overriding the op's VJP, or
 * None: read from the core's override slot, nothing is changed. */
FUNC(_vjp_override) {
    ARGS("_vjp_override", 1, 1, "op")
    const tg_opdef *op = op_named(a[0], "_vjp_override");
    if (!op) return NULL;
    void *ctx = NULL;
    tg_vjp_fn fn = tg_op_get_vjp_override(op, &ctx);
    if (fn != override_vjp || !ctx) Py_RETURN_NONE; /* none, or one set from C */
    return Py_NewRef((PyObject *)ctx);
}

FUNC(_builtin_vjp) {
    /* _builtin_vjp(entry, grad_out): run the op's own VJP (for overrides that
     * want to compare with it); returns a tuple of gradients. */
    ARGS("_builtin_vjp", 2, 2, "entry", "grad_output")
    if (!a[0] || Py_TYPE(a[0]) != tgpy_state->Entry || !a[1] || !tgpy_is_tensor(a[1])) {
        PyErr_SetString(PyExc_TypeError, "_builtin_vjp(entry, grad_output)");
        return NULL;
    }
    tg_entry *e = ((EntryObject *)a[0])->e;
    if (!e->op->backward) {
        PyErr_SetString(PyExc_ValueError, "_builtin_vjp: entry has no built-in VJP");
        return NULL;
    }
    tg_tensor **gi = PyMem_Calloc((size_t)e->n_inputs + 1, sizeof *gi);
    if (!gi) return PyErr_NoMemory();
    tg_status st = e->op->backward(e, TENSOR(a[1]), gi, NULL);
    if (st) {
        for (int i = 0; i < e->n_inputs; i++) tg_tensor_release(gi[i]);
        PyMem_Free(gi);
        return tgpy_raise();
    }
    PyObject *t = PyTuple_New(e->n_inputs);
    for (int i = 0; i < e->n_inputs; i++) {
        PyObject *o;
        if (gi[i]) {
            tg_tensor *x = e->inputs[i];
            tg_tensor *r = tg_sum_to_shape(gi[i], x->ndim, x->shape);
            tg_tensor_release(gi[i]);
            o = W(r);
        } else {
            o = Py_None;
            Py_INCREF(o);
        }
        PyTuple_SET_ITEM(t, i, o);
    }
    PyMem_Free(gi);
    return t;
}

static PyObject *f__set_direct_backward(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kw) {
    if (nargs != 1 || (kw && PyTuple_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "_set_direct_backward(on): expected one positional argument");
        return NULL;
    }
    int on = PyObject_IsTrue(args[0]);
    if (on < 0) return NULL;
    return PyBool_FromLong(tg_set_direct_backward(on != 0));
}

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_autograd_methods[] = {
    F(grad, "grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False)\n\n"
            "The gradients of the outputs with respect to the inputs, as a tuple,\n"
            "without touching .grad. With create_graph=True the result is itself on\n"
            "the tape, so it can be differentiated again.\n\n"
            ">>> x = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)\n"
            ">>> (g,) = tg.grad(x ** 3, x, create_graph=True)\n>>> g.item(), tg.grad(g, x)[0].item()\n"
            "(12.0, 12.0)"),
    F(_set_direct_backward, "_set_direct_backward(on) -> previous\n\nWhether backward and grad let ops "
                            "with a direct route (slice) add\ntheir input's gradient straight into its "
                            "pending sum (default True;\nFalse runs every op's VJP: the reference "
                            "path, for tests)."),
    F(_set_grad_hooks, "_set_grad_hooks(tensor, hooks)\n\nInstall the list of gradient hooks of a tensor."),
    F(_get_grad_hooks, "_get_grad_hooks(tensor)\n\nThe tensor's hook list or None."),
    F(_custom_record, "_custom_record(name, inputs, output, backward)\n\nRecord a Python-defined op on the tape."),
    F(_entry_save, "_entry_save(entry, tensor)\n\nSave a tensor on an entry."),
    F(_set_vjp_override, "_set_vjp_override(op, fn)\n\nReplace an op's VJP by fn(entry, grad_output)."),
    F(_vjp_override, "_vjp_override(op)\n\nThe function overriding an op's VJP (tg.override_vjp), or None."),
    F(_builtin_vjp, "_builtin_vjp(entry, grad_output)\n\nRun an entry's built-in VJP."),
    {NULL}};
#undef F

int tgpy_autograd_init(PyObject *m, ModState *st) {
    PyType_Spec es = {"tapegrad.TapeEntry", sizeof(EntryObject), 0, Py_TPFLAGS_DEFAULT, entry_slots};
    st->Entry = (PyTypeObject *)PyType_FromModuleAndSpec(m, &es, NULL);
    if (!st->Entry || PyModule_AddObjectRef(m, "TapeEntry", (PyObject *)st->Entry) < 0) return -1;
    PyType_Spec rs = {"tapegrad._C._Recorder", sizeof(RecorderObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, rec_slots};
    st->Tape = (PyTypeObject *)PyType_FromModuleAndSpec(m, &rs, NULL);
    if (!st->Tape || PyModule_AddObjectRef(m, "_Recorder", (PyObject *)st->Tape) < 0) return -1;
    PyType_Spec ss = {"tapegrad._C._Stepper", sizeof(StepperObject), 0, Py_TPFLAGS_DEFAULT, stepper_slots};
    st->Stepper = (PyTypeObject *)PyType_FromModuleAndSpec(m, &ss, NULL);
    if (!st->Stepper || PyModule_AddObjectRef(m, "_Stepper", (PyObject *)st->Stepper) < 0) return -1;
    return 0;
}
