/*
 * generator.c -- tg.Generator (an independent random stream, PyTorch's
 * torch.Generator) and the functions that draw integers: randint, randperm,
 * multinomial.  rand and randn (module.c) take generator= too.
 */
#include "common.h"

typedef struct {
    PyObject_HEAD
    tg_generator *g; /* owned, or the default generator (never freed) */
} GeneratorObject;

static PyTypeObject *GeneratorType; /* set at module init */

int tgpy_generator(const char *fname, PyObject *o, tg_generator **out) {
    *out = NULL;
    if (!o || o == Py_None) return 0;
    if (GeneratorType && PyObject_TypeCheck(o, GeneratorType)) {
        *out = ((GeneratorObject *)o)->g;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s: generator must be a tg.Generator or None, got %s", fname,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static int seed_arg(const char *fname, PyObject *o, uint64_t *seed) {
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: seed must be an int, got %s", fname, Py_TYPE(o)->tp_name);
        return -1;
    }
    /* any Python int: its value modulo 2**64, as PyTorch accepts negative seeds */
    *seed = PyLong_AsUnsignedLongLongMask(o);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *gen_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"seed", "device", NULL};
    PyObject *seed = NULL, *device = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:Generator", kwlist, &seed, &device)) return NULL;
    if (device && device != Py_None) {
        PyObject *s = PyObject_Str(device);
        int cpu = s && PyUnicode_Check(s) && PyUnicode_CompareWithASCIIString(s, "cpu") == 0;
        Py_XDECREF(s);
        if (!cpu) {
            PyErr_SetString(PyExc_ValueError, "Generator: tapegrad runs on the CPU only (device='cpu')");
            return NULL;
        }
    }
    uint64_t sd = 67280421310721ull; /* PyTorch's default seed of a new generator */
    if (seed && seed != Py_None && seed_arg("Generator", seed, &sd)) return NULL;
    GeneratorObject *self = (GeneratorObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->g = tg_generator_new(sd);
    if (!self->g) {
        Py_DECREF(self);
        return tgpy_raise();
    }
    return (PyObject *)self;
}

static void gen_dealloc(GeneratorObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tg_generator_free(self->g);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *gen_manual_seed(GeneratorObject *self, PyObject *seed) {
    uint64_t sd;
    if (seed_arg("Generator.manual_seed", seed, &sd)) return NULL;
    tg_generator_manual_seed(self->g, sd);
    return Py_NewRef(self);
}

static PyObject *gen_initial_seed(GeneratorObject *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromUnsignedLongLong(tg_generator_initial_seed(self->g));
}

static PyObject *gen_get_state(GeneratorObject *self, PyObject *unused) {
    (void)unused;
    uint64_t st[4];
    tg_generator_get_state(self->g, st);
    int64_t four = 4;
    return W(tg_tensor_from_buffer(1, &four, TG_INT64, st)); /* the bits, as int64 */
}

static PyObject *gen_set_state(GeneratorObject *self, PyObject *state) {
    if (!tgpy_is_tensor(state) || TENSOR(state)->dtype != TG_INT64 || TENSOR(state)->ndim != 1 ||
        TENSOR(state)->shape[0] != 4) {
        PyErr_SetString(PyExc_TypeError, "Generator.set_state: expected the int64 tensor of 4 "
                                         "words that get_state() returns");
        return NULL;
    }
    tg_tensor *c = TENSOR(state);
    uint64_t st[4];
    for (int i = 0; i < 4; i++)
        st[i] = (uint64_t)*(int64_t *)((char *)tg_tensor_data(c) + i * c->strides[0] * 8);
    if (tg_generator_set_state(self->g, st)) return tgpy_raise();
    return Py_NewRef(self);
}

static PyObject *gen_repr(GeneratorObject *self) {
    return PyUnicode_FromFormat("<tg.Generator initial_seed=%llu>",
                                (unsigned long long)tg_generator_initial_seed(self->g));
}

static PyMethodDef gen_methods[] = {
    {"manual_seed", (PyCFunction)gen_manual_seed, METH_O,
     "manual_seed(seed)\n\nReseed this generator (returns it, so tg.Generator().manual_seed(0) works)."},
    {"initial_seed", (PyCFunction)gen_initial_seed, METH_NOARGS,
     "initial_seed()\n\nThe seed this generator was last given."},
    {"get_state", (PyCFunction)gen_get_state, METH_NOARGS,
     "get_state()\n\nThe generator's state: an int64 tensor of its 4 xoshiro256** words."},
    {"set_state", (PyCFunction)gen_set_state, METH_O,
     "set_state(state)\n\nRestore a state from get_state() (returns the generator)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot gen_slots[] = {
    {Py_tp_new, gen_new},
    {Py_tp_dealloc, gen_dealloc},
    {Py_tp_methods, gen_methods},
    {Py_tp_repr, gen_repr},
    {Py_tp_doc, "Generator(seed=None, device='cpu')\n\n"
                "An independent random stream (PyTorch's torch.Generator): the same\n"
                "xoshiro256** generator as tg.manual_seed's, with its own state. Pass it\n"
                "as generator= to rand, randn, randint, randperm, multinomial and the\n"
                "data samplers; reseed with manual_seed, save and restore with\n"
                "get_state / set_state.\n\n"
                ">>> g = tg.Generator().manual_seed(0)\n"
                ">>> a = tg.randn(3, generator=g)\n"
                ">>> b = tg.randn(3, generator=tg.Generator().manual_seed(0))\n"
                ">>> a.tolist() == b.tolist()\n"
                "True"},
    {0, NULL},
};

static PyType_Spec gen_spec = {"tapegrad.Generator", sizeof(GeneratorObject), 0,
                               Py_TPFLAGS_DEFAULT, gen_slots};

/* ---- functions ---------------------------------------------------------- */

#define GFUNC(name) static PyObject *g_##name(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)

static int as_i64(const char *fname, const char *what, PyObject *o, int64_t *out) {
    if (!PyIndex_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %s", fname, what, Py_TYPE(o)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* randint(low=0, high, size, generator=None) or randint(high, size): NumPy's
 * and PyTorch's argument orders both work when size is given by name. */
GFUNC(randint) {
    (void)mod;
    static const char *const names[] = {"low", "high", "size", "generator", "dtype"};
    PyObject *a[5];
    if (tgpy_args("randint", args, nargs, kw, names, 5, 3, a)) return NULL;
    PyObject *lo = a[0], *hi = a[1], *size = a[2];
    if (lo && hi && !size && !PyLong_Check(hi)) { /* randint(high, size) */
        size = hi;
        hi = lo;
        lo = NULL;
    } else if (lo && !hi) {
        hi = lo;
        lo = NULL;
    }
    if (!hi) {
        PyErr_SetString(PyExc_TypeError, "randint() missing argument 'high'");
        return NULL;
    }
    int64_t low = 0, high;
    if ((lo && as_i64("randint", "low", lo, &low)) || as_i64("randint", "high", hi, &high)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    int nd = 0;
    if (size && size != Py_None && tgpy_shape_obj("randint", size, shape, &nd)) return NULL;
    tg_generator *g;
    if (tgpy_generator("randint", a[3], &g)) return NULL;
    if (a[4] && a[4] != Py_None) {
        tg_dtype dt;
        if (tgpy_parse_dtype(a[4], TG_INT64, &dt)) return NULL;
        if (dt != TG_INT64) {
            PyErr_SetString(PyExc_TypeError, "randint: dtype must be int64");
            return NULL;
        }
    }
    return W(tg_randint(low, high, nd, shape, g));
}

GFUNC(randperm) {
    (void)mod;
    static const char *const names[] = {"n", "generator", "dtype"};
    PyObject *a[3];
    if (tgpy_args("randperm", args, nargs, kw, names, 3, 1, a)) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "randperm() missing argument 'n'");
        return NULL;
    }
    int64_t n;
    if (as_i64("randperm", "n", a[0], &n)) return NULL;
    tg_generator *g;
    if (tgpy_generator("randperm", a[1], &g)) return NULL;
    return W(tg_randperm(n, g));
}

GFUNC(multinomial) {
    (void)mod;
    static const char *const names[] = {"probs", "num_samples", "replacement", "generator"};
    PyObject *a[4];
    if (tgpy_args("multinomial", args, nargs, kw, names, 4, 3, a)) return NULL;
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "multinomial() missing argument 'probs' or 'num_samples'");
        return NULL;
    }
    if (!tgpy_is_tensor(a[0])) {
        PyErr_Format(PyExc_TypeError, "multinomial: probs must be a Tensor, got %s", Py_TYPE(a[0])->tp_name);
        return NULL;
    }
    int64_t n;
    if (as_i64("multinomial", "num_samples", a[1], &n)) return NULL;
    int repl = a[2] ? PyObject_IsTrue(a[2]) : 0;
    if (repl < 0) return NULL;
    tg_generator *g;
    if (tgpy_generator("multinomial", a[3], &g)) return NULL;
    return W(tg_multinomial(TENSOR(a[0]), n, repl != 0, g));
}

static PyMethodDef gen_functions[] = {
    {"randint", (PyCFunction)(void (*)(void))g_randint, METH_FASTCALL | METH_KEYWORDS,
     "randint(low=0, high, size=(), generator=None)\n\n"
     "Integers uniform in [low, high), int64 (randint(high, size) works too).\n\n"
     ">>> r = tg.randint(0, 10, (1000,)).numpy()\n"
     ">>> int(r.min()), int(r.max())\n"
     "(0, 9)"},
    {"randperm", (PyCFunction)(void (*)(void))g_randperm, METH_FASTCALL | METH_KEYWORDS,
     "randperm(n, generator=None)\n\nA random permutation of 0..n-1 (int64).\n\n"
     ">>> sorted(tg.randperm(5).tolist())\n[0, 1, 2, 3, 4]"},
    {"multinomial", (PyCFunction)(void (*)(void))g_multinomial, METH_FASTCALL | METH_KEYWORDS,
     "multinomial(probs, num_samples, replacement=False, generator=None)\n\n"
     "Category indices drawn from the weights of probs (1-D, or 2-D: one row per\n"
     "distribution; weights need not sum to 1), int64, with or without replacement.\n\n"
     ">>> tg.multinomial(tg.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()\n[1, 1]"},
    {NULL, NULL, 0, NULL},
};

int tgpy_generator_init(PyObject *m) {
    PyObject *t = PyType_FromModuleAndSpec(m, &gen_spec, NULL);
    if (!t) return -1;
    GeneratorType = (PyTypeObject *)t;
    if (PyModule_AddObjectRef(m, "Generator", t) < 0) return -1;
    /* the default generator, as an object (never freed) */
    GeneratorObject *d = PyObject_New(GeneratorObject, GeneratorType);
    if (!d) return -1;
    d->g = tg_default_generator();
    if (PyModule_AddObject(m, "default_generator", (PyObject *)d) < 0) {
        Py_DECREF(d);
        return -1;
    }
    Py_INCREF(d); /* immortal in practice: its dealloc would not free the default */
    return PyModule_AddFunctions(m, gen_functions);
}
