"""Anomaly mode: stop at the first NaN or Inf and say where it came from.

Inside ``with tg.detect_anomaly():`` the C core calls back after every
recorded tape entry and after every backward step (``tg_set_record_hook`` and
``tg_set_global_step_hook``; see ``csrc/python/inspect.c``). Each entry
remembers the Python line that created it; the first non-finite output or
gradient raises :class:`AnomalyError` naming the entry, its inputs'
statistics and that line. Outside the block the hooks are removed and cost
nothing.
"""
from __future__ import annotations

import linecache
import os

import numpy as np

from .. import _C
from .._C import Tensor, TapeEntry
from .._display import fmt_num, label, shape_str

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HINTS = {
    "log": "log(x) is -inf at x = 0 and NaN for x < 0: clamp the input "
           "(x.clip(1e-12, None)) or use a fused op (log_softmax, cross_entropy)",
    "div": "division by zero gives Inf (and 0/0 gives NaN): check the denominator",
    "sqrt": "sqrt(x) is NaN for x < 0, and its derivative 1/(2 sqrt x) is infinite at x = 0: "
            "add a small epsilon (sqrt(x + 1e-12))",
    "pow": "a negative base to a fractional power is NaN; 0 to a negative power is Inf",
    "exp": "exp overflows to Inf for x > 88 (float32) or 709 (float64): subtract the maximum first "
           "(logsumexp, softmax do)",
    "mul": "Inf * 0 is NaN: an earlier Inf (often from log(0) or exp overflow) met a zero",
    "sub": "Inf - Inf is NaN",
    "add": "Inf + (-Inf) is NaN",
    "sum": "a sum of huge values overflows, and Inf - Inf inside it is NaN",
    "mean": "a mean of huge values overflows, and the mean of an empty tensor is NaN",
    "var": "the variance of one element with ddof=1 divides by zero",
    "cross_entropy": "the logits already hold NaN/Inf: look at the layers before",
    "mse_loss": "the predictions already hold NaN/Inf, or they are so large their square overflows",
}


class AnomalyError(RuntimeError):
    """Raised in anomaly mode at the first NaN/Inf.

    Attributes: ``phase`` (``"forward"`` or ``"backward"``), ``entry``,
    ``seq``, ``op``, ``created_at`` (``(filename, lineno, function, source
    line)`` of the Python line that created the entry, or None),
    ``input_stats`` (one dict per input: label, shape, dtype, min, max,
    mean, nan, inf), and for backward ``bad_input`` (the input whose
    gradient is not finite) and ``grad_stats``.

    >>> import tapegrad as tg
    >>> x = tg.tensor([4.0, -1.0], requires_grad=True)
    >>> with tg.detect_anomaly():
    ...     try:
    ...         x.sqrt()
    ...     except tg.inspect.AnomalyError as err:
    ...         e = err
    >>> e.op, e.phase, e.input_stats[0]["negatives"], isinstance(e, RuntimeError)
    ('sqrt', 'forward', 1, True)
    """

    def __init__(self, message, phase, entry, created_at, input_stats, bad_input=None,
                 grad_stats=None, frames=None):
        super().__init__(message)
        self.phase = phase
        self.entry = entry
        self.seq = entry.seq
        self.op = entry.op
        self.created_at = created_at
        self.input_stats = input_stats
        self.bad_input = bad_input
        self.grad_stats = grad_stats
        self.frames = frames or []


def stats(t, name=None) -> dict:
    """min / max / mean over the finite values, and the NaN and Inf counts."""
    if t is None:
        return {"label": name or "—", "shape": None, "dtype": None, "min": None, "max": None,
                "mean": None, "nan": 0, "inf": 0, "numel": 0}
    a = t.detach().numpy() if isinstance(t, Tensor) else np.asarray(t)
    d = {"label": name or (label(t) if isinstance(t, Tensor) else "array"),
         "shape": tuple(a.shape), "dtype": str(a.dtype), "numel": int(a.size)}
    if np.issubdtype(a.dtype, np.floating):
        fin = a[np.isfinite(a)]
        d.update(nan=int(np.isnan(a).sum()), inf=int(np.isinf(a).sum()),
                 posinf=int(np.isposinf(a).sum()), neginf=int(np.isneginf(a).sum()))
    else:
        fin = a.ravel()
        d.update(nan=0, inf=0, posinf=0, neginf=0)
    if fin.size:
        d.update(min=float(fin.min()), max=float(fin.max()), mean=float(fin.astype(np.float64).mean()),
                 zeros=int((fin == 0).sum()), negatives=int((fin < 0).sum()))
    else:
        d.update(min=None, max=None, mean=None, zeros=0, negatives=0)
    return d


def stats_text(d: dict) -> str:
    if d["shape"] is None:
        return f"{d['label']}: none"
    fin = "finite " if (d["nan"] or d["inf"]) else ""
    s = (f"{d['label']} {shape_str(d['shape'])} {d['dtype']}: {fin}min {fmt_num(d['min'])}, "
         f"max {fmt_num(d['max'])}, mean {fmt_num(d['mean'])}, NaN {d['nan']}, Inf {d['inf']}")
    extra = []
    if d.get("zeros"):
        extra.append(f"{d['zeros']} zeros")
    if d.get("negatives"):
        extra.append(f"{d['negatives']} negative")
    if d.get("posinf") or d.get("neginf"):
        extra.append(f"+Inf {d['posinf']}, -Inf {d['neginf']}")
    return s + (f" ({', '.join(extra)})" if extra else "")


def creation_frames(entry: TapeEntry) -> list:
    """The frames (file, line, function, source) that created ``entry``,
    innermost first (recorded in anomaly mode only)."""
    fr = _C._entry_created_at(entry)
    if not fr:
        return []
    return [(f, n, fn, linecache.getline(f, n).strip()) for f, n, fn in fr]


def user_frame(frames: list):
    """The innermost frame outside the tapegrad package (the learner's line)."""
    for f in frames:
        path = os.path.abspath(f[0]) if not f[0].startswith("<") else f[0]
        if not path.startswith(_PKG_DIR + os.sep):
            return f
    return frames[0] if frames else None


def _message(phase, entry, created, in_stats, bad_input=None, grad_stats=None, out_stats=None):
    head = f"tape entry #{entry.seq} ({entry.op})"
    if phase == "forward":
        lines = [f"anomaly in the forward pass: {head} produced non-finite values: "
                 f"{stats_text(out_stats)}"]
    else:
        lines = [f"anomaly in the backward pass: the VJP of {head} produced a non-finite gradient "
                 f"for input {bad_input} ({in_stats[bad_input]['label']}): {stats_text(grad_stats)}"]
    if created:
        f, n, fn, src = created
        lines.append(f"  the entry was created at {f}:{n} in {fn}")
        if src:
            lines.append(f"      {src}")
    else:
        lines.append("  (creation site unknown: the entry was recorded outside detect_anomaly)")
    lines.append("  inputs of the entry:")
    for i, d in enumerate(in_stats):
        lines.append(f"    {i}: {stats_text(d)}")
    hint = _HINTS.get(entry.op)
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def _callback(phase, entry, info):
    # called by the C hooks; the exception returned is raised by the op (or backward)
    frames = creation_frames(entry)
    created = user_frame(frames)
    in_stats = [stats(t) for t in entry.inputs]
    if phase == "forward":
        out = entry.output
        out_stats = stats(out, f"output {label(out)}" if out is not None else "output")
        msg = _message(phase, entry, created, in_stats, out_stats=out_stats)
        return AnomalyError(msg, phase, entry, created, in_stats, grad_stats=None, frames=frames)
    bad = info["bad_input"]
    g = info["grad_in"][bad]
    gs = stats(g, f"d{in_stats[bad]['label']}")
    up = stats(info["grad_out"], "∂loss/∂output")
    msg = _message(phase, entry, created, in_stats, bad_input=bad, grad_stats=gs)
    msg += f"\n  upstream gradient: {stats_text(up)}"
    return AnomalyError(msg, phase, entry, created, in_stats, bad_input=bad, grad_stats=gs,
                        frames=frames)


class detect_anomaly:
    """Raise :class:`AnomalyError` at the first NaN (or Inf) in the forward
    or backward pass, naming the tape entry (seq and op), its inputs'
    statistics and the Python line that created it.

    Use it as a context manager (or decorator). ``check_inf=False`` lets
    infinities through and stops only at NaN (for code that masks with
    -inf on purpose). Anomaly mode slows every op down (the frames are
    recorded and each output is scanned): use it to debug, not to train.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 0.0], requires_grad=True)
    >>> with tg.detect_anomaly():
    ...     try:
    ...         y = x.log()
    ...     except tg.inspect.AnomalyError as err:
    ...         print(err.op, err.phase)
    log forward
    """

    def __init__(self, enabled: bool = True, check_inf: bool = True):
        self.enabled = enabled
        self.check_inf = check_inf
        self._prev = None

    def __enter__(self):
        self._prev = _C._set_anomaly_mode(_callback if self.enabled else None, self.check_inf)
        return self

    def __exit__(self, *exc):
        _C._set_anomaly_mode(*self._prev)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with detect_anomaly(self.enabled, self.check_inf):
                return fn(*a, **k)
        return wrapper


def set_detect_anomaly(enabled: bool, check_inf: bool = True) -> None:
    """Turn anomaly mode on or off for the whole process (outside a ``with``).

    >>> import tapegrad as tg
    >>> tg.inspect.set_detect_anomaly(True); tg.inspect.is_anomaly_enabled()
    True
    >>> tg.inspect.set_detect_anomaly(False); tg.inspect.is_anomaly_enabled()
    False
    """
    _C._set_anomaly_mode(_callback if enabled else None, check_inf)


def is_anomaly_enabled() -> bool:
    """Is anomaly mode on?

    >>> import tapegrad as tg
    >>> with tg.detect_anomaly():
    ...     tg.inspect.is_anomaly_enabled()
    True
    """
    return _C._anomaly_mode()[0] is not None
