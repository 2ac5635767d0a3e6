"""Gradient checks of ONE tape entry: does its VJP agree with finite
differences of its op?  And :class:`GradcheckError`, which every gradient
check raises.

This module stands below both ``tapegrad.testing`` (``tg.testing.check_entry``,
``gradcheck``) and ``tapegrad.inspect`` (``tg.inspect.check_entry``), and uses
only ``_C`` and ``_display``: the two share it instead of importing each other.

``check_entry(entry)`` re-runs the entry's op (with the entry's parameters)
on float64 copies of its inputs, gets the VJP the tape would use through the
backward engine on that one-entry graph (so a ``tg.override_vjp`` in force is
what gets checked), and compares it with central differences.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _C
from ._C import Tensor, TapeEntry
from ._display import Raw, esc, fmt_num, html_table, label, shape_str


class GradcheckError(AssertionError):
    """A gradient differs from its finite-difference estimate."""


class EntryCheck:
    """The result of :func:`check_entry`.

    ``ok``; ``worst_error`` (the largest |analytic - numeric| relative to the
    tolerance, reported as the absolute difference at the worst element);
    ``input`` (position of the input holding the worst element) and
    ``input_label``; ``index`` (the element); ``analytic`` and ``numeric``
    (the two values there); ``per_input`` (max abs difference per checked
    input); ``checked`` (elements compared) and ``sampled`` (True when only a
    random subset of a large input was perturbed).

    >>> import tapegrad as tg
    >>> a = tg.randn(2, 3, requires_grad=True)
    >>> r = tg.testing.check_entry(a.tanh().grad_fn)
    >>> r.ok, r.input, r.checked
    (True, 0, 6)
    """

    def __init__(self, entry, ok, worst_error, input, input_label, index, analytic, numeric,
                 per_input, checked, sampled, atol, rtol, overridden, note=""):
        self.entry = entry
        self.seq = entry.seq
        self.op = entry.op
        self.ok = ok
        self.worst_error = worst_error
        self.input = input
        self.input_label = input_label
        self.index = index
        self.analytic = analytic
        self.numeric = numeric
        self.per_input = per_input
        self.checked = checked
        self.sampled = sampled
        self.atol, self.rtol = atol, rtol
        self.overridden = overridden
        self.note = note

    def __bool__(self):
        return bool(self.ok)

    def __repr__(self):
        head = f"check_entry #{self.seq} {self.op}" + (" (overridden VJP)" if self.overridden else "")
        where = (f"input {self.input} ({self.input_label}) at index {self.index}: analytic "
                 f"{self.analytic:.10g}, numeric {self.numeric:.10g}")
        if self.ok:
            s = (f"{head}: OK, worst |analytic - numeric| = {self.worst_error:.3g} ({where}); "
                 f"{self.checked} elements")
        else:
            s = (f"{head}: FAILED: the VJP's gradient for {where} "
                 f"(|difference| {self.worst_error:.3g} > atol {self.atol} + rtol {self.rtol} * |numeric|)")
        if self.sampled:
            s += " [large inputs: a random sample of elements was checked]"
        if self.note:
            s += f" [{self.note}]"
        return s

    __str__ = __repr__

    def _repr_html_(self):
        color = "#2e7d32" if self.ok else "#c62828"
        verdict = "OK" if self.ok else "FAILED"
        rows = [[i, lab, fmt_num(err), "← worst" if i == self.input else ""]
                for i, (lab, err) in self.per_input.items()]
        return (f"<div style='font-family:sans-serif;font-size:13px'><b style='color:{color}'>"
                f"{verdict}</b> {esc(repr(self))}</div>"
                + html_table(["input", "tensor", "max |analytic − numeric|", ""], rows))


def _as_f64(t: Tensor):
    """A float64 copy of a float tensor as (numpy array, zero-copy tensor)."""
    a = np.array(t.detach().numpy(), dtype=np.float64, copy=True, order="C")
    return a, _C.from_numpy(a)


def _dot(out: Tensor, v: np.ndarray) -> float:
    return float((out.detach().numpy().astype(np.float64) * v).sum())


def check_entry(entry: TapeEntry, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                fn: Callable | None = None, max_checks: int = 500, seed: int = 0,
                raise_exception: bool = False) -> EntryCheck:
    """Gradcheck ONE tape entry's VJP with central finite differences.

    The entry's op is run again (same parameters, ``tg._C._entry_apply``) on
    float64 copies of its inputs; the VJP is evaluated through the backward
    engine on that one-entry graph with a random upstream gradient v (so
    an active ``tg.override_vjp`` is what gets checked, as the tape would use
    it); each element of each differentiable input is perturbed by +-eps and
    ``<op(x), v>`` differentiated numerically. Inputs with more than
    ``max_checks`` elements are checked on a random sample of elements.

    For a ``tg.Function`` entry pass ``fn``: a callable taking the entry's
    inputs and returning the Function's output (``fn=lambda x: Square.apply(x)``);
    the entry alone cannot re-run Python code.

    Returns an :class:`EntryCheck` (``ok``, ``worst_error``, ``input``,
    ``index``, ``analytic``, ``numeric``); with ``raise_exception=True`` a
    failure raises ``tg.testing.GradcheckError`` instead.

    >>> import tapegrad as tg
    >>> a = tg.randn(3, 4, requires_grad=True)
    >>> b = tg.randn(4, 2, requires_grad=True)
    >>> c = a @ b
    >>> tg.testing.check_entry(c.grad_fn).ok
    True
    """
    if not isinstance(entry, TapeEntry):
        if isinstance(entry, Tensor) and entry.grad_fn is not None:
            entry = entry.grad_fn
        else:
            raise TypeError("check_entry: expected a TapeEntry (tensor.grad_fn or tape[i])")
    if entry.is_custom and fn is None:
        raise ValueError(
            f"check_entry: tape entry #{entry.seq} ({entry.op}) is a Python-defined op "
            f"(tg.Function): its forward is Python code that the entry cannot re-run. Pass "
            f"fn=lambda *inputs: {entry.op}.apply(*inputs) to check it")
    ins = list(entry.inputs)
    needs = list(entry.needs_grad)
    arrays, xs = [], []
    for t in ins:
        if t.dtype in (_C.float32, _C.float64):
            a, x = _as_f64(t)
        else:
            a, x = None, t
        arrays.append(a)
        xs.append(x)
    diff = [i for i, t in enumerate(ins) if needs[i] and arrays[i] is not None]
    if not diff:
        raise ValueError(f"check_entry: entry #{entry.seq} ({entry.op}) has no input that needs a gradient")

    overridden = (not entry.is_custom) and _C._vjp_override(entry.op) is not None

    def run(inputs):
        if fn is not None:
            return fn(*inputs)
        return _C._entry_apply(entry, list(inputs))

    # analytic: the engine on a one-entry graph
    leaves = list(xs)
    for i in diff:
        leaves[i] = _C.from_numpy(arrays[i], requires_grad=True)
    with _enable_grad():
        out = run(leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"check_entry: the op returned {type(out).__name__}, expected a Tensor")
    if tuple(out.shape) != tuple(entry.output_shape):
        raise RuntimeError(
            f"check_entry: re-running entry #{entry.seq} ({entry.op}) gave shape "
            f"{shape_str(out.shape)}, the entry's output has {shape_str(entry.output_shape)}: the "
            f"op's stored parameters cannot rebuild the call (see _entry_apply in "
            f"csrc/python/inspect.c)")
    note = ""
    if entry.op == "dropout":
        note = "dropout: checked with the entry's own mask"
    elif fn is None and out.grad_fn is not None and out.grad_fn.op != entry.op:
        note = f"re-run recorded as {out.grad_fn.op}"
    orig = entry.output
    if orig is not None and fn is None and entry.op != "dropout":
        ref = orig.detach().numpy().astype(np.float64)
        got = out.detach().numpy()
        tol = 1e-4 if orig.dtype == _C.float32 else 1e-9
        if ref.shape == got.shape and not np.allclose(ref, got, rtol=tol, atol=tol, equal_nan=True):
            raise RuntimeError(
                f"check_entry: re-running entry #{entry.seq} ({entry.op}) does not reproduce its "
                f"output (max difference {np.nanmax(np.abs(ref - got)):.3g}): its inputs were "
                f"modified after the op ran, or its parameters cannot rebuild the call")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(tuple(out.shape))
    if out.grad_fn is None and not out.requires_grad:
        raise RuntimeError(f"check_entry: re-running entry #{entry.seq} ({entry.op}) recorded nothing")
    grads = _C.grad(out, [leaves[i] for i in diff], _C.tensor(v, dtype=out.dtype))
    analytic = {i: g.detach().numpy().astype(np.float64) for i, g in zip(diff, grads)}

    # numeric: central differences of <op(x), v>
    base = list(xs)
    for i in diff:
        base[i] = _C.from_numpy(arrays[i])
    worst = (-np.inf, None, None, 0.0, 0.0, 0.0)  # (excess, input, index, ana, num, |diff|)
    largest = (-1.0, None, None, 0.0, 0.0, 0.0)   # the same at the largest |diff|
    per_input = {}
    checked = 0
    sampled = False
    with _no_grad():
        for i in diff:
            a = arrays[i]
            flat = a.reshape(-1)
            n = flat.size
            if n > max_checks:
                idxs = np.sort(rng.choice(n, size=max_checks, replace=False))
                sampled = True
            else:
                idxs = np.arange(n)
            ana = analytic[i].reshape(-1)
            maxd = 0.0
            for k in idxs:
                x0 = flat[k]
                flat[k] = x0 + eps
                fp = _dot(run(base), v)
                flat[k] = x0 - eps
                fm = _dot(run(base), v)
                flat[k] = x0
                num = (fp - fm) / (2 * eps)
                d = abs(ana[k] - num)
                excess = d - (atol + rtol * abs(num))
                if not np.isfinite(ana[k]) or not np.isfinite(num):
                    excess = np.inf if not (np.isnan(ana[k]) and np.isnan(num)) else -np.inf
                maxd = max(maxd, d) if np.isfinite(d) else np.inf
                if excess > worst[0] or worst[1] is None:
                    worst = (excess, i, tuple(int(j) for j in np.unravel_index(k, a.shape)),
                             float(ana[k]), float(num), float(d))
                if d > largest[0] or largest[1] is None:
                    largest = (d, i, tuple(int(j) for j in np.unravel_index(k, a.shape)),
                               float(ana[k]), float(num), float(d))
                checked += 1
            per_input[i] = (label(ins[i]), maxd)
    ok = bool(worst[0] <= 0)
    if ok:  # report where the two differ most
        worst = largest
    res = EntryCheck(entry, ok, worst[5], worst[1], label(ins[worst[1]]), worst[2], worst[3],
                     worst[4], per_input, checked, sampled, atol, rtol, overridden, note)
    if not ok and raise_exception:
        raise GradcheckError(repr(res))
    return res


class _no_grad:
    def __enter__(self):
        self._p = _C.set_grad_enabled(False)

    def __exit__(self, *e):
        _C.set_grad_enabled(self._p)


class _enable_grad:
    def __enter__(self):
        self._p = _C.set_grad_enabled(True)

    def __exit__(self, *e):
        _C.set_grad_enabled(self._p)
