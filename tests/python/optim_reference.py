"""NumPy references of the optimizers' float32 formulas, shared by the tests
that pin the C loops bit for bit (test_fast_paths.py, test_adam_parallel.py)."""
import numpy as np


def adam_reference(params, grads, lr, wd, decoupled, b1=0.9, b2=0.999, eps=1e-8):
    """The float32 Adam/AdamW formula in NumPy, one parameter at a time, in
    order (each parameter's current values read just before its update).
    params: one accessor per parameter, p() its values, p(new) sets them;
    grads: per step, one gradient per parameter."""
    f = np.float32
    m = [np.zeros_like(p()) for p in params]
    v = [np.zeros_like(p()) for p in params]
    for t, step in enumerate(grads, start=1):
        ss = f(lr / (1 - b1 ** t))
        inv = f(1 / np.sqrt(1 - b2 ** t))
        for i, g in enumerate(step):
            pk, gk = params[i](), g
            if wd and decoupled:
                pk = pk * f(1 - lr * wd)
            elif wd:
                gk = gk + f(wd) * pk
            m[i] = m[i] + f(1 - b1) * (gk - m[i])
            v[i] = f(b2) * v[i] + f(1 - b2) * gk * gk
            params[i](pk - ss * m[i] / (np.sqrt(v[i]) * inv + f(eps)))


def accessors(values):
    """One accessor per item of the list `values` (for adam_reference): the
    reference's updates replace the list's items, as float32."""
    def cell(i):
        def access(new=None):
            if new is not None:
                values[i] = new.astype(np.float32)
            return values[i]
        return access
    return [cell(i) for i in range(len(values))]
