/*
 * inspect.c -- the C half of tapegrad.inspect: anomaly mode, per-entry
 * timestamps for the profiler, creation sites of tape entries, and a way to
 * re-run the op of an entry on new inputs (per-entry gradient checks and
 * forward timing).
 *
 * Anomaly mode installs two process-wide hooks of the core:
 *   - the record hook (tg_set_record_hook), called right after an entry is
 *     recorded: it remembers the Python frames that created the entry in
 *     entry->user_data and, if the output holds a NaN (or an Inf), calls the
 *     Python anomaly callback, which raises tg.inspect.AnomalyError;
 *   - the global step hook (tg_set_global_step_hook), called after every
 *     backward step: a gradient holding a NaN/Inf calls the callback too.
 * When anomaly mode and the profiler are off both hooks are NULL and
 * recording costs nothing extra.
 *
 * All callbacks run with the GIL held (ops and backward are called from
 * Python); they take it with PyGILState_Ensure anyway, to be safe.
 */
#include "common.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../kernels/platform.h"

#define FUNC(name) static PyObject *f_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
#define ARGS(fname, n, npos, ...)                                                     \
    static const char *const names_[] = {__VA_ARGS__};                                \
    PyObject *a[n];                                                                   \
    if (tgpy_args(fname, args, nargs, kw, names_, n, npos, a)) return NULL;

/* autograd.c: the TapeEntry object (same layout) and its constructor. */
typedef struct {
    PyObject_HEAD
    tg_entry *e;
} InspEntryObject;
PyObject *tgpy_entry_wrap(tg_entry *e);

static tg_entry *entry_arg(PyObject *o, const char *who) {
    if (!o || Py_TYPE(o) != tgpy_state->Entry) {
        PyErr_Format(PyExc_TypeError, "%s: expected a TapeEntry, got %s", who,
                     o ? Py_TYPE(o)->tp_name : "nothing");
        return NULL;
    }
    return ((InspEntryObject *)o)->e;
}

/* ===================================================================== */
/* What the binding keeps on an entry (entry->user_data)                  */
/* ===================================================================== */

#define INFO_MAGIC 0x7467696eu /* "tgin" */
#define MAX_FRAMES 16

typedef struct {
    uint32_t magic;
    PyObject *created_at; /* tuple of (filename, lineno, function), innermost first; owned */
    double t_record;      /* monotonic seconds when recorded, or -1 */
} EntryInfo;

static void info_release(void *p) {
    EntryInfo *info = p;
    if (!info) return;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(info->created_at);
    PyGILState_Release(g);
    PyMem_RawFree(info);
}

/* The entry's info, created when absent; NULL if the slot belongs to someone
 * else or memory runs out (the caller then just records nothing). */
static EntryInfo *info_of(tg_entry *e, bool create) {
    if (e->user_data) {
        EntryInfo *info = e->user_data;
        return e->user_release == info_release && info->magic == INFO_MAGIC ? info : NULL;
    }
    if (!create) return NULL;
    EntryInfo *info = PyMem_RawCalloc(1, sizeof *info);
    if (!info) return NULL;
    info->magic = INFO_MAGIC;
    info->t_record = -1;
    e->user_data = info;
    e->user_release = info_release;
    return info;
}

static double now_seconds(void) {
    return 1e-9 * (double)tg_monotonic_ns(); /* a monotonic clock on POSIX and Windows */
}

/* The Python frames that are running now, innermost first, as a tuple of
 * (filename, lineno, function); NULL with no exception if there is none. */
static PyObject *current_frames(void) {
    PyFrameObject *f = PyEval_GetFrame(); /* borrowed */
    if (!f) return NULL;
    PyObject *items[MAX_FRAMES];
    int n = 0;
    Py_INCREF(f);
    while (f && n < MAX_FRAMES) {
        PyCodeObject *code = PyFrame_GetCode(f); /* new reference */
        int line = PyFrame_GetLineNumber(f);
        PyObject *item = code ? Py_BuildValue("(OiO)", code->co_filename, line, code->co_name) : NULL;
        Py_XDECREF(code);
        if (!item) break;
        items[n++] = item;
        PyFrameObject *back = PyFrame_GetBack(f); /* new reference or NULL */
        Py_DECREF(f);
        f = back;
    }
    Py_XDECREF(f);
    PyErr_Clear();
    PyObject *t = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        if (t) PyTuple_SET_ITEM(t, i, items[i]);
        else Py_DECREF(items[i]);
    }
    if (!t) PyErr_Clear();
    return t;
}

/* ===================================================================== */
/* Non-finite checks                                                      */
/* ===================================================================== */

/* Does t hold a NaN (or, with check_inf, an infinity)?  int64 never does. */
static bool has_nonfinite(const tg_tensor *t, bool check_inf) {
    if (!t || !tg_dtype_is_float(t->dtype)) return false;
    if (tg_tensor_is_contiguous(t)) {
        const void *d = tg_tensor_data(t);
        if (t->dtype == TG_FLOAT32) {
            const float *p = d;
            for (int64_t i = 0; i < t->numel; i++)
                if (check_inf ? !isfinite(p[i]) : isnan(p[i])) return true;
        } else {
            const double *p = d;
            for (int64_t i = 0; i < t->numel; i++)
                if (check_inf ? !isfinite(p[i]) : isnan(p[i])) return true;
        }
        return false;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_tensor_get_flat(t, i);
        if (check_inf ? !isfinite(v) : isnan(v)) return true;
    }
    return false;
}

/* ===================================================================== */
/* The hooks                                                              */
/* ===================================================================== */

static struct {
    PyObject *callback; /* anomaly callback or NULL (owned) */
    bool check_inf;
    bool timestamps;    /* profiler: remember when each entry was recorded */
} mode;

/* The callback returns an exception to raise (raised here, so that the
 * traceback ends at the learner's line), or None to go on; if it raises, its
 * exception is kept.  Either way the op / backward step fails with
 * TG_ERR_CALLBACK (tgpy_raise leaves those exceptions alone). */
static tg_status callback_result(PyObject *r, const char *what) {
    if (r && PyExceptionInstance_Check(r)) {
        PyErr_SetObject((PyObject *)Py_TYPE(r), r);
        Py_DECREF(r);
        r = NULL;
    }
    if (!r) return tg_error_set(TG_ERR_CALLBACK, "anomaly: %s", what);
    Py_DECREF(r);
    return TG_OK;
}

static tg_status record_hook(tg_entry *e, void *ctx) {
    (void)ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    tg_status st = TG_OK;
    EntryInfo *info = info_of(e, true);
    if (info && mode.timestamps) info->t_record = now_seconds();
    if (mode.callback) {
        if (info && !info->created_at) info->created_at = current_frames();
        if (e->out && has_nonfinite(e->out, mode.check_inf)) {
            PyObject *eo = tgpy_entry_wrap(e);
            PyObject *cb = mode.callback;
            Py_INCREF(cb);
            PyObject *r = eo ? PyObject_CallFunction(cb, "sOO", "forward", eo, Py_None) : NULL;
            Py_DECREF(cb);
            Py_XDECREF(eo);
            st = callback_result(r, "a non-finite value in the forward pass");
        }
    }
    PyGILState_Release(g);
    return st;
}

static tg_status step_hook(tg_stepper *bw, const tg_step *s, void *ctx) {
    (void)bw;
    (void)ctx;
    if (!mode.callback) return TG_OK;
    int bad = -1;
    for (int i = 0; i < s->n_inputs && bad < 0; i++)
        if (s->grad_in[i] && has_nonfinite(s->grad_in[i], mode.check_inf)) bad = i;
    if (bad < 0) return TG_OK;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *gin = PyList_New(s->n_inputs);
    for (int i = 0; gin && i < s->n_inputs; i++) PyList_SET_ITEM(gin, i, tgpy_wrap_borrowed(s->grad_in[i]));
    PyObject *info = gin ? Py_BuildValue("{s:L,s:N,s:N,s:i}", "index", (long long)s->index, "grad_out",
                                         tgpy_wrap_borrowed(s->grad_out), "grad_in", gin, "bad_input", bad)
                         : NULL;
    PyObject *eo = info ? tgpy_entry_wrap(s->entry) : NULL;
    PyObject *r = NULL;
    if (eo) {
        PyObject *cb = mode.callback;
        Py_INCREF(cb);
        r = PyObject_CallFunction(cb, "sOO", "backward", eo, info);
        Py_DECREF(cb);
    }
    Py_XDECREF(eo);
    Py_XDECREF(info);
    tg_status st = callback_result(r, "a non-finite gradient in the backward pass");
    PyGILState_Release(g);
    return st;
}

static void install_hooks(void) {
    tg_set_record_hook(mode.callback || mode.timestamps ? record_hook : NULL, NULL);
    tg_set_global_step_hook(mode.callback ? step_hook : NULL, NULL);
}

/* ===================================================================== */
/* Python functions                                                       */
/* ===================================================================== */

/* _set_anomaly_mode(callback or None, check_inf=True) -> previous (callback, check_inf) */
FUNC(_set_anomaly_mode) {
    ARGS("_set_anomaly_mode", 2, 2, "callback", "check_inf")
    PyObject *cb = a[0] && a[0] != Py_None ? a[0] : NULL;
    if (cb && !PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "_set_anomaly_mode: callback must be callable or None");
        return NULL;
    }
    int check_inf = tgpy_bool(a[1], 1);
    if (check_inf < 0) return NULL;
    PyObject *prev = Py_BuildValue("(OO)", mode.callback ? mode.callback : Py_None,
                                   mode.check_inf ? Py_True : Py_False);
    if (!prev) return NULL;
    Py_XINCREF(cb);
    Py_XSETREF(mode.callback, cb);
    mode.check_inf = check_inf != 0;
    install_hooks();
    return prev;
}

FUNC(_anomaly_mode) {
    return Py_BuildValue("(OO)", mode.callback ? mode.callback : Py_None, mode.check_inf ? Py_True : Py_False);
}

/* _set_record_timestamps(on) -> previous setting */
FUNC(_set_record_timestamps) {
    ARGS("_set_record_timestamps", 1, 1, "on")
    int on = tgpy_bool(a[0], 0);
    if (on < 0) return NULL;
    PyObject *prev = PyBool_FromLong(mode.timestamps);
    mode.timestamps = on != 0;
    install_hooks();
    return prev;
}

FUNC(_monotonic) { return PyFloat_FromDouble(now_seconds()); }

/* _entry_created_at(entry) -> ((filename, lineno, function), ...) innermost
 * first, or None (recorded outside anomaly mode). */
FUNC(_entry_created_at) {
    ARGS("_entry_created_at", 1, 1, "entry")
    tg_entry *e = entry_arg(a[0], "_entry_created_at");
    if (!e) return NULL;
    EntryInfo *info = info_of(e, false);
    if (!info || !info->created_at) Py_RETURN_NONE;
    Py_INCREF(info->created_at);
    return info->created_at;
}

/* _entry_record_time(entry) -> monotonic seconds when the entry was recorded
 * (profiler timestamps on), or None. */
FUNC(_entry_record_time) {
    ARGS("_entry_record_time", 1, 1, "entry")
    tg_entry *e = entry_arg(a[0], "_entry_record_time");
    if (!e) return NULL;
    EntryInfo *info = info_of(e, false);
    if (!info || info->t_record < 0) Py_RETURN_NONE;
    return PyFloat_FromDouble(info->t_record);
}

/* The parameters to call op->apply with, rebuilt from those stored on the
 * entry.  Most ops store what apply reads; these differ (see csrc/ops). */
static tg_status apply_params(const tg_entry *e, tg_params *q) {
    *q = e->params;
    const char *op = e->op->name;
    if (!strcmp(op, "reshape") || !strcmp(op, "broadcast_to") || !strcmp(op, "index_add") ||
        !strcmp(op, "scatter_add")) {
        /* stored: the input's shape (for the VJP); apply: the output's */
        q->ndim = e->out_ndim;
        memcpy(q->shape, e->out_shape, sizeof q->shape);
    } else if (!strcmp(op, "cast")) {
        q->i[0] = e->out_dtype; /* stored: the input's dtype */
    } else if (!strcmp(op, "var")) {
        q->i[0] = e->params.i[1]; /* stored: i0 = axes mask, i1 = ddof; apply: i0 = ddof */
    } else if (!strcmp(op, "slice") || !strcmp(op, "slice_backward")) {
        /* stored: starts, steps, lengths (normalised); apply: starts, stops, steps */
        const tg_params *p = &e->params;
        for (int d = 0; d < p->ndim; d++) {
            int64_t start = p->ints[d], step = p->ints[8 + d], len = p->ints[16 + d];
            int64_t stop = start + step * len;
            if (stop < 0) stop = INT64_MIN; /* a negative step down to index 0 */
            q->ints[d] = start;
            q->ints[8 + d] = stop;
            q->ints[16 + d] = step;
        }
    }
    return TG_OK;
}

/* _entry_apply(entry, inputs) -> Tensor: run the entry's op again on new
 * inputs with the entry's parameters (recorded if grad mode is on).  For
 * dropout the entry's saved mask is reused (y = x * mask / (1 - p)), so the
 * result is the function whose VJP the entry computes; the result is then
 * recorded as a mul, not a dropout. */
FUNC(_entry_apply) {
    ARGS("_entry_apply", 2, 2, "entry", "inputs")
    tg_entry *e = entry_arg(a[0], "_entry_apply");
    if (!e) return NULL;
    if (e->custom_vjp) {
        PyErr_Format(PyExc_ValueError,
                     "_entry_apply: tape entry #%llu (%s) is a Python-defined op (tg.Function); it "
                     "cannot be re-run from the entry: call the Function again instead",
                     (unsigned long long)e->seq, tg_entry_name(e));
        return NULL;
    }
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "_entry_apply(entry, inputs)");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(a[1], "_entry_apply: inputs must be a sequence of tensors");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n != e->n_inputs) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "_entry_apply: tape entry #%llu (%s) has %d inputs, got %zd",
                     (unsigned long long)e->seq, tg_entry_name(e), e->n_inputs, n);
        return NULL;
    }
    tg_tensor **ts = PyMem_Calloc(n ? (size_t)n : 1, sizeof *ts);
    if (!ts) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
        if (!tgpy_is_tensor(it)) {
            PyErr_Format(PyExc_TypeError, "_entry_apply: input %zd is a %s, expected a Tensor", i,
                         Py_TYPE(it)->tp_name);
            for (Py_ssize_t j = 0; j < i; j++) tg_tensor_release(ts[j]);
            PyMem_Free(ts);
            Py_DECREF(fast);
            return NULL;
        }
        ts[i] = TENSOR(it);
        tg_tensor_retain(ts[i]);
    }
    Py_DECREF(fast);
    tg_tensor *r = NULL;
    if (!strcmp(e->op->name, "dropout")) {
        tg_tensor *m = tg_entry_saved(e, 0); /* mask / (1 - p), never requires grad */
        tg_tensor *mc = m ? tg_cast(m, ts[0]->dtype) : NULL;
        r = mc ? tg_mul(ts[0], mc) : NULL;
        tg_tensor_release(mc);
    } else {
        tg_params q;
        if (apply_params(e, &q) == TG_OK) r = tg_op_apply(e->op, (int)n, ts, &q);
    }
    for (Py_ssize_t i = 0; i < n; i++) tg_tensor_release(ts[i]);
    PyMem_Free(ts);
    return W(r);
}

/* _nonfinite_count(tensor) -> (number of NaN, number of +-Inf) */
FUNC(_nonfinite_count) {
    ARGS("_nonfinite_count", 1, 1, "tensor")
    if (!a[0] || !tgpy_is_tensor(a[0])) {
        PyErr_SetString(PyExc_TypeError, "_nonfinite_count(tensor)");
        return NULL;
    }
    tg_tensor *t = TENSOR(a[0]);
    long long nan = 0, inf = 0;
    if (tg_dtype_is_float(t->dtype))
        for (int64_t i = 0; i < t->numel; i++) {
            double v = tg_tensor_get_flat(t, i);
            nan += isnan(v) != 0;
            inf += isinf(v) != 0;
        }
    return Py_BuildValue("(LL)", nan, inf);
}

#define F(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL | METH_KEYWORDS, doc}
PyMethodDef tgpy_inspect_methods[] = {
    F(_set_anomaly_mode, "_set_anomaly_mode(callback, check_inf=True)\n\n"
                         "Anomaly mode on or off (None). callback(phase, entry, info) is called at a\n"
                         "NaN/Inf; it returns an exception to raise (or raises) or None to go on.\n"
                         "Returns the previous (callback, check_inf). Use tg.detect_anomaly()."),
    F(_anomaly_mode, "_anomaly_mode()\n\nThe current (callback, check_inf)."),
    F(_set_record_timestamps, "_set_record_timestamps(on)\n\nRemember when each entry is recorded (profiler)."),
    F(_monotonic, "_monotonic()\n\nThe clock of _entry_record_time, in seconds."),
    F(_entry_created_at, "_entry_created_at(entry)\n\n"
                         "The Python frames ((file, line, function), innermost first) that created the\n"
                         "entry, recorded in anomaly mode; None otherwise."),
    F(_entry_record_time, "_entry_record_time(entry)\n\nWhen the entry was recorded (profiler), or None."),
    F(_entry_apply, "_entry_apply(entry, inputs)\n\n"
                    "Run the entry's op again on new inputs with the entry's parameters."),
    F(_nonfinite_count, "_nonfinite_count(tensor)\n\n(number of NaN, number of Inf) in a tensor."),
    {NULL}};
#undef F
