/*
 * opbind.c -- the Python bindings generated from the op registry.
 *
 * Every op whose line in csrc/ops/oplist.h says UNARY, BINARY or REDUCE gets,
 * from that line alone, a module function (tg.exp(x), tg.add(a, b),
 * tg.sum(x, axis=None, keepdims=False)) and a Tensor method (x.exp(),
 * a.add(b), x.sum(...)), both METH_FASTCALL, and their docstrings, filled at
 * start-up from the registry (the op's .doc and formulas: written once, in
 * the op block).  CUSTOM ops are bound by hand in tensor.c and nnops.c;
 * INTERNAL ops have no Python function.
 */
#include "common.h"

#include <string.h>

/* ---- the bodies: one or two lines each, calling the shared helpers ------ */

#define BIND_UNARY(name)                                                                 \
    static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs,   \
                              PyObject *kw) {                                            \
        if (nargs || kw) {                                                               \
            PyErr_SetString(PyExc_TypeError, #name "() takes no arguments");             \
            return NULL;                                                                 \
        }                                                                                \
        return W(tg_##name(TENSOR(self)));                                               \
    }                                                                                    \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,   \
                               PyObject *kw) {                                           \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                       \
    }
#define BIND_BINARY(name)                                                                \
    static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs,   \
                              PyObject *kw) {                                            \
        return tgpy_binary_method(#name, tg_##name, self, args, nargs, kw);              \
    }                                                                                    \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,   \
                               PyObject *kw) {                                           \
        return tgpy_binary_function(#name, tg_##name, args, nargs, kw);                  \
    }
#define BIND_REDUCE(name)                                                                \
    static PyObject *m_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs,   \
                              PyObject *kw) {                                            \
        return tgpy_reduction(self, #name, tg_##name, args, nargs, kw);                  \
    }                                                                                    \
    static PyObject *fn_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,   \
                               PyObject *kw) {                                           \
        return tgpy_as_function(#name, m_##name, args, nargs, kw);                       \
    }
#define BIND_CUSTOM(name)
#define BIND_INTERNAL(name)

#define TG_OP(name, sig) BIND_##sig(name)
#include "../ops/oplist.h"
#undef TG_OP
#undef BIND_UNARY
#undef BIND_BINARY
#undef BIND_REDUCE

/* ---- the tables (docstrings filled by tgpy_opbind_init) ----------------- */

#define ENTRY(fn) {#fn, (PyCFunction)(void (*)(void))m_##fn, METH_FASTCALL | METH_KEYWORDS, NULL},
#define BIND_UNARY(name) ENTRY(name)
#define BIND_BINARY(name) ENTRY(name)
#define BIND_REDUCE(name) ENTRY(name)
#define TG_OP(name, sig) BIND_##sig(name)
PyMethodDef tgpy_op_methods[] = {
#include "../ops/oplist.h"
    {NULL}};
#undef ENTRY
#define ENTRY(fn) {#fn, (PyCFunction)(void (*)(void))fn_##fn, METH_FASTCALL | METH_KEYWORDS, NULL},
PyMethodDef tgpy_op_generated_functions[] = {
#include "../ops/oplist.h"
    {NULL}};
#undef ENTRY
#undef TG_OP

/* "name(args)\n\n<doc>\n\nforward: <formula>\nVJP: <formula>" for one op. */
static char *make_doc(const tg_opdef *op, bool method) {
    static const char *const args[][2] = {
        /* method, function */
        {"()", "(x)"},                                                  /* UNARY */
        {"(other)", "(a, b)"},                                          /* BINARY */
        {"(axis=None, keepdims=False)", "(x, axis=None, keepdims=False)"}, /* REDUCE */
    };
    tg_op_sig sig = tg_op_signature(op);
    const char *a = sig <= TG_SIG_REDUCE ? args[sig][method ? 0 : 1] : "(...)";
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s%s\n\n%s", op->name, a, op->doc ? op->doc : "");
    if (op->forward && op->forward[0] && n < (int)sizeof buf)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\n\nforward: %s", op->forward);
    if (n < (int)sizeof buf)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      (op->backward || op->composite) && op->vjp && op->vjp[0]
                          ? (op->composite ? "\nVJP (through its constituent ops): %s" : "\nVJP: %s")
                          : "\nnot differentiable%s",
                      (op->backward || op->composite) && op->vjp ? op->vjp : "");
    char *s = PyMem_RawMalloc(strlen(buf) + 1); /* lives as long as the process */
    if (s) strcpy(s, buf);
    return s;
}

static int fill_docs(PyMethodDef *defs, bool method) {
    for (PyMethodDef *d = defs; d->ml_name; d++) {
        if (d->ml_doc) continue; /* a second interpreter: already filled */
        const tg_opdef *op = tg_op_find(d->ml_name);
        char *doc = op ? make_doc(op, method) : NULL;
        if (!doc) {
            PyErr_NoMemory();
            return -1;
        }
        d->ml_doc = doc;
    }
    return 0;
}

int tgpy_opbind_init(void) {
    if (fill_docs(tgpy_op_methods, true) < 0) return -1;
    return fill_docs(tgpy_op_generated_functions, false);
}
