"""Gradient checks against central finite differences.

``gradcheck(fn, inputs)`` compares the gradients computed by the tape with
central differences in float64 and, on failure, names the input, the worst
element, and the analytic and numeric values.
"""
from __future__ import annotations

from typing import Callable, Sequence

import math

import numpy as np

from . import _C
from ._C import Tensor
from ._gradcheck import EntryCheck, GradcheckError, check_entry  # noqa: F401  (per-entry gradcheck)

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "assert_close", "check_entry"]


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _projection(outputs, seed):
    rng = np.random.default_rng(seed)
    return [_C.tensor(rng.standard_normal(o.shape), dtype=o.dtype) for o in outputs]


def _scalar(fn, inputs, vs):
    # grad mode stays as it is: gradgradcheck's fn itself calls grad()
    outs = _as_tuple(fn(*inputs))
    return float(sum(float((o.numpy().astype(np.float64) * v.numpy().astype(np.float64)).sum())
                     for o, v in zip(outs, vs)))


def gradcheck(fn: Callable, inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central finite
    differences.

    ``fn`` maps the input tensors to a tensor (or a tuple of tensors). The
    check projects the outputs on a fixed random direction v (so one backward
    pass gives all input gradients) and compares, for every element of every
    float input that requires grad, the analytic derivative of <fn(x), v> with
    ``(f(x + eps) - f(x - eps)) / (2 eps)``. Use float64 inputs.

    Returns True, or raises ``GradcheckError`` naming the input, the worst
    index, and the analytic and numeric values.

    >>> import tapegrad as tg
    >>> x = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    >>> tg.testing.gradcheck(lambda x: (x * x).tanh(), [x])
    True
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a positive finite number (the finite-difference "
                         f"step), got {eps!r}")
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != _C.float64:
            raise ValueError(f"gradcheck: input {i} is {x.dtype}; finite differences need "
                             f"float64 inputs (x.astype(tg.float64))")
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    # work on private copies of the inputs it perturbs: the caller's tensors may
    # be saved by a graph the caller still holds (which makes their memory
    # read-only), and must not be touched anyway
    inputs = tuple(_C.tensor(x.numpy(force=True).copy(), requires_grad=True) if i in diff else x
                   for i, x in enumerate(inputs))
    outs = _as_tuple(fn(*inputs))
    vs = _projection(outs, seed)
    # an output that does not require grad is constant in the inputs (e.g.
    # the first derivative of a linear function, in gradgradcheck): its
    # analytic derivative is zero, which the finite differences then check
    live = [k for k, o in enumerate(outs) if o.requires_grad]
    if live:
        grads = _C.grad([outs[k] for k in live], [inputs[i] for i in diff], [vs[k] for k in live])
    else:
        grads = [_C.zeros_like(inputs[i]) for i in diff]
    anas = [g.numpy().astype(np.float64) for g in grads]
    # the outputs' graph keeps the inputs saved for backward, which makes their
    # NumPy views read-only (safe aliasing): drop it before perturbing in place
    del outs, grads
    for k, i in enumerate(diff):
        x = inputs[i]
        ana = anas[k]
        num = np.zeros(x.shape)
        view = x.numpy()  # shares memory: perturb in place
        for idx in np.ndindex(*x.shape):
            x0 = view[idx]
            view[idx] = x0 + eps
            fp = _scalar(fn, inputs, vs)
            view[idx] = x0 - eps
            fm = _scalar(fn, inputs, vs)
            view[idx] = x0
            num[idx] = (fp - fm) / (2 * eps)
        err = np.abs(ana - num) - (atol + rtol * np.abs(num))
        if err.size and (np.max(err) > 0 or not np.all(np.isfinite(ana))):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))), err.shape)
            msg = (f"gradcheck: the gradient of input {i} (shape {x.shape}) is wrong at index "
                   f"{tuple(int(j) for j in worst)}: analytic {ana[worst]:.10g}, numeric "
                   f"{num[worst]:.10g} (atol={atol}, rtol={rtol}); max abs difference "
                   f"{np.nanmax(np.abs(ana - num)):.3g}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn: Callable, inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0,
                  raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of x -> grad(<fn(x), v>, x)
    computed with ``create_graph=True`` (so the VJPs themselves are on the
    tape).

    >>> import tapegrad as tg
    >>> x = tg.randn(5, dtype=tg.float64, requires_grad=True)
    >>> tg.testing.gradgradcheck(lambda x: x.tanh(), [x])
    True
    """
    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outs = _as_tuple(fn(*inputs))
    vs = _projection(outs, seed + 1)
    del outs  # its graph would keep the inputs read-only (see gradcheck)

    def first_grad(*xs):
        o = _as_tuple(fn(*xs))
        d = [xs[i] for i in diff]
        return _C.grad(list(o), d, vs, create_graph=True)

    return gradcheck(first_grad, inputs, eps, atol, rtol, seed + 2, raise_exception)


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-8, msg: str = ""):
    """Assert two tensors/arrays are elementwise close (NumPy's rule), with a
    message giving the worst element."""
    a = actual.numpy() if isinstance(actual, Tensor) else np.asarray(actual)
    b = expected.numpy() if isinstance(expected, Tensor) else np.asarray(expected)
    if a.shape != b.shape:
        raise AssertionError(f"{msg}shapes differ: {a.shape} vs {b.shape}")
    bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        idx = np.unravel_index(int(np.argmax(np.abs(a - b) * bad)), a.shape) if a.ndim else ()
        raise AssertionError(f"{msg}{int(bad.sum())} of {a.size} elements differ; worst at "
                             f"{idx}: {a[idx]!r} vs {b[idx]!r}")

