"""Step-through backward: run one entry's VJP at a time and see what it did.

``BackwardStepper`` drives the C stepping engine (``tg._C._Stepper``), the
same engine ``backward()`` loops over, so stepping to the end gives exactly
the gradients ``backward()`` gives. Each step returns a :class:`StepRecord`.
"""
from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from .. import _C
from .._C import Tensor, TapeEntry
from .._display import (Raw, esc, html_table, kind, label, op_label, shape_str, shape_tex, summary_text,
                      values_text)

# ---------------------------------------------------------------------------
# op metadata and formulas
# ---------------------------------------------------------------------------

_OPS: dict | None = None


def op_info(name: str) -> dict | None:
    """The registry's description of an op (``tg.ops()`` row), or None."""
    global _OPS
    if _OPS is None:
        _OPS = {o["name"]: o for o in _C.ops()}
    return _OPS.get(name)


def current_override(op: str):
    """The Python function overriding ``op``'s VJP now (``tg.override_vjp``), or None
    (read from the core's override slot: nothing is cleared or put back)."""
    if op_info(op) is None:
        return None
    return _C._vjp_override(op)


def tex_escape(s: str) -> str:
    """Text safe inside ``\\texttt{...}``."""
    rep = {"\\": r"\backslash ", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}", "#": r"\#",
           "$": r"\$", "%": r"\%", "&": r"\&", "~": r"\~{}"}
    return "".join(rep.get(c, c) for c in s)


def _dims(shape) -> str:
    shape = tuple(int(s) for s in shape)
    return r"\times ".join(str(s) for s in shape) if shape else "1"


def vjp_symbols(entry: TapeEntry):
    """(output bar token, {input position: bar token}) of an entry's VJP
    formula, e.g. matmul: ``("\\bar C", {0: "\\bar A", 1: "\\bar B"})``.
    Read from the registry (``grad_out_latex``; ``grad_in_latex``, one symbol
    per differentiable input, the ones the VJP writes), not from the text."""
    info = op_info(entry.op) if not entry.is_custom else None
    if not info or not entry.vjp_latex:
        return None, {}
    diff = info["differentiable_inputs"]
    if info["arity"] < 0:
        diff = [i for i in diff if i < len(entry.inputs)]
    writes = info["grad_in_latex"]
    inputs = dict(zip(diff, writes)) if len(writes) == len(diff) else {}
    return info["grad_out_latex"], inputs


def _unbar(tok: str) -> str:
    s = tok[len("\\bar"):].strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    return s


def annotate_shapes(tex: str, shapes: dict) -> str:
    """Put each ``\\bar X`` token of ``tex`` over its shape:
    ``{\\underset{64\\times 10}{\\bar C}}`` (one pass, longest tokens first).
    Scalars are left bare: a "1" under a symbol inside a fraction reads as
    part of the formula (the record's "where" line says they are scalars)."""
    shapes = {t: s for t, s in (shapes or {}).items() if len(tuple(s)) > 0}
    if not shapes:
        return tex
    toks = sorted(shapes, key=len, reverse=True)
    rx = re.compile("(" + "|".join(re.escape(t) for t in toks) + r")(?![A-Za-z])")
    # the braces make the annotated symbol one atom, so that a subscript the
    # formula gives it (softmax's ``\bar y_j``) is not a second one under
    # ``\underset``: MathJax refuses that ("Double subscripts")
    return rx.sub(lambda m: r"{\underset{" + _dims(shapes[m.group(1)]) + "}{" + m.group(1) + "}}", tex)


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------

class InputGrad:
    """What one step sent to one input of its entry.

    Attributes: ``position``, ``tensor`` (the input), ``label``, ``kind``
    (``"leaf"``/``"const"``/``"intermediate"``), ``grad`` (the gradient
    sent, a NumPy array after broadcasting was undone, or None),
    ``summed_axes`` and ``ndim_before`` (axes of the VJP's result that were
    summed to get back to the input's shape), ``shape_before``, ``before`` /
    ``after`` (the input's accumulated gradient in this backward before and
    after the step), and for leaves ``grad_attr_before`` / ``grad_attr_after``
    (its ``.grad``) and ``finalized`` (True when this step brought the last
    contribution, so ``.grad`` was written now).

    >>> import tapegrad as tg
    >>> b = tg.zeros(3, requires_grad=True)
    >>> rec = tg.inspect.BackwardStepper((tg.ones(2, 3) + b).sum()).run_to("add")
    >>> ig = rec.inputs[1]
    >>> ig.summed_axes, ig.shape_before, ig.grad.tolist(), ig.finalized
    ([0], (2, 3), [2.0, 2.0, 2.0], True)
    """

    def __init__(self, position, tensor, grad_tensor, summed, out_shape):
        self.position = position
        self.tensor = tensor
        self.label = label(tensor)
        self.kind = kind(tensor)
        self.shape = tuple(tensor.shape)
        self.producer_seq = tensor.grad_fn.seq if tensor.grad_fn is not None else None
        self.grad_tensor = grad_tensor
        self.grad = _np(grad_tensor)
        axes, nd = summed
        self.summed_axes = list(axes)
        self.ndim_before = nd
        self.shape_before = None
        if self.summed_axes:
            shp = list(self.shape)
            full = [1] * (nd - len(shp)) + shp
            off = nd - len(out_shape)
            for d in self.summed_axes:
                full[d] = out_shape[d - off] if 0 <= d - off < len(out_shape) else "?"
            self.shape_before = tuple(full)
        self.before = self.after = None
        self.grad_attr_before = self.grad_attr_after = None
        self.finalized = False

    @property
    def broadcast_text(self) -> str:
        """``"summed over axis 0: (64, 128) → b1 (128,)"`` or ``""``."""
        if not self.summed_axes:
            return ""
        ax = ", ".join(str(a) for a in self.summed_axes)
        word = "axis" if len(self.summed_axes) == 1 else "axes"
        before = shape_str(self.shape_before) if self.shape_before else f"{self.ndim_before}-d"
        return f"summed over {word} {ax}: {before} → {self.label} {shape_str(self.shape)}"

    def __repr__(self):
        return (f"<InputGrad {self.position} {self.label} {shape_str(self.shape)} "
                f"grad={'None' if self.grad is None else shape_str(self.grad.shape)}>")


def _np(t):
    if t is None:
        return None
    if isinstance(t, np.ndarray):
        return t
    return t.detach().numpy()


class StepRecord:
    """One step of backward: entry ``#seq`` ran its VJP.

    ``index`` (0-based) of ``total`` steps, ``entry``, ``op``, ``seq``,
    ``grad_out`` (the upstream gradient, NumPy, None if no gradient reached
    the entry), ``inputs`` (one :class:`InputGrad` per input), and the
    formulas ``forward``, ``vjp``, ``vjp_latex`` (the op's registered
    formulas; ``overridden`` tells whether ``tg.override_vjp`` replaced the
    VJP). Displays as HTML (with the formula in LaTeX, shapes annotated),
    LaTeX (``_repr_latex_`` / :meth:`latex`) or text.

    >>> import tapegrad as tg
    >>> x = tg.tensor([[1.0, 2.0], [3.0, 4.0]]); x.name = "x"
    >>> b = tg.tensor([0.5, -0.5], requires_grad=True); b.name = "b"
    >>> loss = (x + b).sum()
    >>> st = tg.inspect.BackwardStepper(loss)
    >>> st.step().op, st.step().op
    ('sum', 'add')
    >>> st.current.inputs[1].broadcast_text
    'summed over axis 0: (2, 2) → b (2,)'
    """

    def __init__(self, raw: dict, total: int):
        e = raw["entry"]
        self.index = raw["index"]
        self.total = total
        self.entry = e
        self.seq = e.seq
        self.op = e.op
        #: the in-place write that recorded the entry (``"add_"``, ``"setitem"``) or None
        self.inplace = e.inplace
        #: the op as shown: ``"add"``, or ``"add (add_, in-place)"``
        self.label = op_label(e)
        self.output_shape = tuple(e.output_shape)
        self.grad_out_tensor = raw["grad_out"]
        self.grad_out = _np(raw["grad_out"])
        self.inputs = [InputGrad(i, t, g, s, self.output_shape)
                       for i, (t, g, s) in enumerate(zip(e.inputs, raw["grad_in"], raw["summed"]))]
        self.forward = e.forward if not e.is_custom else None
        self.vjp = e.vjp if not e.is_custom else None
        self.vjp_latex_raw = e.vjp_latex if not e.is_custom else None
        self.overridden = (not e.is_custom) and current_override(e.op) is not None

    # -- views -------------------------------------------------------------
    @property
    def grads(self) -> list:
        """The gradient sent to each input (NumPy arrays; None for none)."""
        return [ig.grad for ig in self.inputs]

    def latex(self) -> str:
        """The VJP formula in LaTeX with the concrete shapes: each gradient
        symbol is set over its shape, a *where* line gives every symbol's
        tensor and shape, and one line per input whose gradient was summed
        to undo broadcasting."""
        e = self.entry
        head = (r"\textbf{step } %d/%d:\ \text{entry \#%d}\ \texttt{%s}"
                % (self.index + 1, self.total, self.seq, tex_escape(self.label)))
        if e.is_custom:
            lines = [head + r"\qquad \text{Python-defined op (tg.Function): its VJP is Python code}"]
        else:
            fwd = e.forward_latex or ""
            lines = [head + (r"\qquad " + fwd if fwd else "")]
            out_bar, in_bars = vjp_symbols(e)
            shapes = {}
            if out_bar:
                shapes[out_bar] = self.output_shape
            for i, tok in in_bars.items():
                shapes[tok] = self.inputs[i].shape
            vjp = self.vjp_latex_raw or r"\text{(no formula)}"
            lines.append(annotate_shapes(vjp, shapes))
            if self.overridden:
                lines.append(r"\text{(this op's VJP is overridden by tg.override\_vjp: the formula "
                             r"above is the built-in one)}")
            where = []
            if out_bar:
                where.append(out_bar + r" \in " + shape_tex(self.output_shape) + r"\ (\text{upstream})")
            for i, tok in sorted(in_bars.items()):
                ig = self.inputs[i]
                where.append(_unbar(tok) + r" = \texttt{" + tex_escape(ig.label) + "} \\in "
                             + shape_tex(ig.shape))
            if where:
                lines.append(r"\text{where }" + r",\quad ".join(where))
        for ig in self.inputs:
            if ig.summed_axes and ig.shape_before:
                tok = None
                if not e.is_custom:
                    tok = vjp_symbols(e)[1].get(ig.position)
                sym = tok or r"\bar{\texttt{%s}}" % tex_escape(ig.label)
                ax = ",".join(str(a) for a in ig.summed_axes)
                before = tuple(s if s != "?" else 0 for s in ig.shape_before)
                lines.append(sym + r":\ " + shape_tex(before) + r"\ \xrightarrow{\ \sum \text{ axis } "
                             + ax + r"\ }\ " + shape_tex(ig.shape)
                             + r"\quad\text{(undo broadcasting)}")
        return r"\begin{aligned}" + r"\\ ".join("&" + ln for ln in lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __str__(self) -> str:
        e = self.entry
        out = [f"step {self.index + 1}/{self.total}: tape entry #{self.seq} {self.label}"
               + (f"    {self.forward}" if self.forward else "    (Python-defined op)")]
        if self.vjp:
            out.append(f"  VJP: {self.vjp}" + ("   [overridden by tg.override_vjp]" if self.overridden else ""))
        if self.grad_out is None:
            out.append("  upstream gradient: none reached this entry (its inputs get nothing)")
        else:
            out.append(f"  upstream gradient of {label(e.output) if e.output is not None else 'the output'}"
                       f" {shape_str(self.output_shape)}: {values_text(self.grad_out)}")
        for ig in self.inputs:
            who = f"  input {ig.position}: {ig.label} ({ig.kind if ig.kind != 'intermediate' else 'from #%d' % ig.producer_seq}) {shape_str(ig.shape)}"
            if ig.grad is None:
                out.append(who + ": no gradient" + (" (does not require grad)" if ig.kind == "const" else ""))
                continue
            out.append(who + f": gradient {values_text(ig.grad)}")
            if ig.summed_axes:
                out.append("      " + ig.broadcast_text)
            out.append(f"      accumulated in this backward: {values_text(ig.before)}  →  {values_text(ig.after)}")
            if ig.kind == "leaf":
                note = ("written now (its last contribution)" if ig.finalized
                        else "not written yet (more contributions to come)")
                out.append(f"      {ig.label}.grad: {values_text(ig.grad_attr_before)}  →  "
                           f"{values_text(ig.grad_attr_after)}   [{note}]")
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"<StepRecord {self.index + 1}/{self.total}: #{self.seq} {self.label}>"

    def _repr_html_(self) -> str:
        e = self.entry
        head = (f"<div style='font-family:sans-serif;font-size:13px'>"
                f"<b>Step {self.index + 1} of {self.total}</b> · tape entry <b>#{self.seq} "
                f"{esc(self.label)}</b>")
        if self.overridden:
            head += " <span style='color:#b00'>(VJP overridden by tg.override_vjp)</span>"
        parts = [head, "<div>$$" + esc(self.latex()) + "$$</div>"]
        if self.vjp:
            parts.append(f"<div style='color:#555'>VJP: <code>{esc(self.vjp)}</code></div>")
        rows = []
        up = "none reached this entry" if self.grad_out is None else values_text(self.grad_out)
        rows.append(["upstream ∂loss/∂output", shape_str(self.output_shape), Raw(f"<code>{esc(up)}</code>"),
                     "", "", ""])
        styles = ["background:#fff8e6"]
        for ig in self.inputs:
            who = f"{ig.position}: {ig.label} ({ig.kind if ig.kind != 'intermediate' else 'from #%d' % ig.producer_seq})"
            if ig.grad is None:
                rows.append([who, shape_str(ig.shape), "no gradient", "", "", ""])
                styles.append("color:#888")
                continue
            acc_b, acc_a = values_text(ig.before), values_text(ig.after)
            if ig.kind == "leaf":
                acc_a += ("  — .grad written now" if ig.finalized else "  — .grad not written yet")
            rows.append([who, shape_str(ig.shape), Raw(f"<code>{esc(values_text(ig.grad))}</code>"),
                         Raw(f"<b>{esc(ig.broadcast_text)}</b>") if ig.summed_axes else "",
                         Raw(f"<code>{esc(acc_b)}</code>"), Raw(f"<code>{esc(acc_a)}</code>")])
            styles.append("")
        parts.append(html_table(["", "shape", "gradient sent by this step", "broadcasting undone",
                                 "accumulated before", "accumulated after"], rows, row_styles=styles))
        parts.append("</div>")
        return "".join(parts)


# ---------------------------------------------------------------------------
# the stepper
# ---------------------------------------------------------------------------

class Contributions(list):
    """The pieces of a tensor's gradient, one per (step, input position)
    that sent it something; ``total`` is their sum (what ``.grad`` gets,
    before any hook). Items are dicts: step, seq, op, position, grad,
    summed_axes.

    >>> import tapegrad as tg
    >>> w = tg.tensor([3.0], requires_grad=True)
    >>> st = tg.inspect.BackwardStepper((w * w).sum()).finish()
    >>> c = st.contributions(w)
    >>> [piece["position"] for piece in c], c.total.tolist()
    ([0, 1], [6.0])
    """

    def __init__(self, tensor, items):
        super().__init__(items)
        self.tensor = tensor
        self.label = label(tensor)

    @property
    def total(self):
        if not self:
            return None
        out = self[0]["grad"].astype(np.float64)
        for c in self[1:]:
            out = out + c["grad"]
        return out

    def __str__(self):
        if not self:
            return f"no gradient reached {self.label} (yet)"
        lines = [f"{self.label}.grad is the sum of {len(self)} contribution"
                 + ("s" if len(self) != 1 else "") + ":"]
        for c in self:
            extra = f"  (summed over axes {c['summed_axes']})" if c["summed_axes"] else ""
            lines.append(f"  step {c['step'] + 1}, entry #{c['seq']} {c['op']} (input {c['position']}): "
                         f"{values_text(c['grad'])}{extra}")
        lines.append(f"  total: {values_text(self.total)}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self):
        rows = [[c["step"] + 1, f"#{c['seq']} {c['op']}", c["position"],
                 Raw(f"<code>{esc(values_text(c['grad']))}</code>"),
                 ", ".join(map(str, c["summed_axes"]))] for c in self]
        if self:
            rows.append(["", "total", "", Raw(f"<b><code>{esc(values_text(self.total))}</code></b>"), ""])
        return html_table(["step", "entry", "input", "contribution", "summed axes"], rows,
                          title=f"contributions to {self.label}.grad")


class BackwardStepper:
    """Run backward one tape entry at a time.

    ``step()`` runs exactly one entry's VJP (newest entry first) and returns
    a :class:`StepRecord`; ``run_to(target)`` steps until a given entry (a
    sequence number, an op name, a TapeEntry or the tensor it made) has run;
    ``finish()`` runs the rest. ``history`` lists the records so far,
    ``current`` is the last one, and iterating yields the remaining steps.
    When the last step has run the engine finishes (like ``backward()``):
    every ``.grad`` then equals what ``loss.backward()`` would give.

    A leaf's ``.grad`` is written when its last contribution arrives; until
    then the record shows its gradient *pending* in this backward.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, 2.0], requires_grad=True); w.name = "w"
    >>> loss = (w * w).sum()
    >>> st = tg.inspect.BackwardStepper(loss)
    >>> [rec.op for rec in st]
    ['sum', 'mul']
    >>> w.grad.tolist()
    [2.0, 4.0]
    >>> len(st.contributions(w))     # w is used twice by mul
    2
    """

    def __init__(self, loss: Tensor, gradient=None, retain_graph: bool = False,
                 create_graph: bool = False):
        if not isinstance(loss, Tensor):
            raise TypeError(f"BackwardStepper: expected a Tensor, got {type(loss).__name__}")
        self.loss = loss
        if gradient is not None and not isinstance(gradient, Tensor):
            gradient = _C.tensor(np.asarray(gradient), dtype=loss.dtype)
        self._st = _C._Stepper(loss, gradient, retain_graph, create_graph)
        self.size = self._st.size()
        self.order = [self._st.entry(i) for i in range(self.size)]
        self._index = {e: i for i, e in enumerate(self.order)}
        self.history: list[StepRecord] = []
        self.done = self.size == 0
        self._leaf_sum: dict[int, np.ndarray] = {}
        # contributions still to come per leaf (the engine's bw_deps)
        self._deps: dict[int, int] = {}
        for e in self.order:
            for i, t in enumerate(e.inputs):
                if e.needs_grad[i] and t.grad_fn is None:
                    self._deps[t._id] = self._deps.get(t._id, 0) + 1
        if self.done:
            self._end()

    # -- state ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.size

    @property
    def position(self) -> int:
        """Steps run so far."""
        return len(self.history)

    @property
    def current(self) -> StepRecord | None:
        """The last step's record (None before the first step)."""
        return self.history[-1] if self.history else None

    @property
    def next_entry(self) -> TapeEntry | None:
        """The entry the next ``step()`` will run."""
        return None if self.done else self.order[self.position]

    def _end(self):
        if self._st is not None:
            st, self._st = self._st, None
            st.end()
        self.done = True

    def _pending_of(self, t: Tensor):
        """The gradient accumulated so far for tensor t in this backward."""
        if t.grad_fn is not None:
            k = self._index.get(t.grad_fn)
            if k is None or self._st is None:
                return None
            if k < self.position:  # its entry already ran: the pending gradient was consumed
                return self.history[k].grad_out
            return _np(self._st.pending(k))
        return self._leaf_sum.get(t._id)

    # -- stepping -------------------------------------------------------------
    def step(self) -> StepRecord | None:
        """Run exactly one entry's VJP; return its record (None when done)."""
        if self.done:
            return None
        e = self.order[self.position]
        before = [self._pending_of(t) for t in e.inputs]
        grad_before = [_grad_copy(t) if t.grad_fn is None and t.requires_grad else None for t in e.inputs]
        try:
            raw = self._st.step()
        except BaseException:
            self._st = None  # the engine ended itself
            self.done = True
            raise
        if raw is None:  # pragma: no cover (size says otherwise)
            self._end()
            return None
        rec = StepRecord(raw, self.size)
        # leaves: running sums and remaining contributions (as the engine counts them)
        finalize = []
        for i, ig in enumerate(rec.inputs):
            t = ig.tensor
            if t.grad_fn is None and e.needs_grad[i]:
                if ig.grad is not None:
                    s = self._leaf_sum.get(t._id)
                    self._leaf_sum[t._id] = ig.grad.copy() if s is None else s + ig.grad
                if ig.grad is not None or rec.grad_out is None:
                    self._deps[t._id] -= 1
                    if self._deps[t._id] == 0:
                        finalize.append(t._id)
        if self.position + 1 == self.size:
            self.history.append(rec)
            self._end()  # flushes leaves that never got a last contribution
        else:
            self.history.append(rec)
        for i, ig in enumerate(rec.inputs):
            t = ig.tensor
            ig.before = before[i]
            if ig.grad is None and t.grad_fn is None and t._id not in self._leaf_sum:
                ig.after = before[i]
            elif t.grad_fn is not None:
                k = self._index.get(t.grad_fn)
                ig.after = _np(self._st.pending(k)) if (self._st is not None and k is not None) else None
                if ig.after is None and self.done and ig.grad is not None:
                    ig.after = ig.grad if ig.before is None else ig.before + ig.grad
            else:
                ig.after = self._leaf_sum.get(t._id)
            if t.grad_fn is None and t.requires_grad:
                ig.grad_attr_before = grad_before[i]
                ig.grad_attr_after = _grad_copy(t)
                ig.finalized = t._id in finalize
        return rec

    def __iter__(self) -> Iterator[StepRecord]:
        while True:
            rec = self.step()
            if rec is None:
                return
            yield rec

    def run_to(self, target) -> StepRecord:
        """Step until ``target`` has run and return its record. ``target`` is
        a sequence number (int), an op name (str: the next entry with that
        op), a TapeEntry, or a Tensor (the entry that made it)."""
        k = self._find(target)
        rec = None
        while self.position <= k:
            rec = self.step()
        return rec

    def _find(self, target) -> int:
        if isinstance(target, Tensor):
            if target.grad_fn is None:
                raise ValueError(f"run_to: {label(target)} is a leaf: no entry made it")
            target = target.grad_fn
        if isinstance(target, TapeEntry):
            k = self._index.get(target)
            if k is None:
                raise ValueError(f"run_to: entry #{target.seq} ({target.op}) is not on the way "
                                 f"back from the loss")
        elif isinstance(target, str):
            ks = [i for i in range(self.position, self.size) if self.order[i].op == target]
            if not ks:
                ops = sorted({e.op for e in self.order[self.position:]})
                raise ValueError(f"run_to: no entry with op {target!r} is left to run "
                                 f"(remaining ops: {', '.join(ops) or 'none'})")
            k = ks[0]
        elif isinstance(target, (int, np.integer)):
            ks = [i for i, e in enumerate(self.order) if e.seq == int(target)]
            if not ks:
                raise ValueError(f"run_to: no tape entry #{target} on the way back from the loss "
                                 f"(entries: {', '.join('#%d' % e.seq for e in self.order)})")
            k = ks[0]
        else:
            raise TypeError("run_to: expected a sequence number, an op name, a TapeEntry or a Tensor")
        if k < self.position:
            raise ValueError(f"run_to: entry #{self.order[k].seq} ({self.order[k].op}) already ran "
                             f"(step {k + 1}); see stepper.history[{k}]")
        return k

    def finish(self) -> "BackwardStepper":
        """Run every remaining step; afterwards every ``.grad`` is final.
        Returns the stepper."""
        for _ in self:
            pass
        self._end()
        return self

    # -- questions -------------------------------------------------------------
    def contributions(self, t) -> Contributions:
        """The pieces of ``t``'s gradient sent by the steps so far, one per
        (entry, input position) that uses ``t``: why a reused tensor's
        gradient is a sum. ``t`` is a Tensor or its name."""
        items = []
        for rec in self.history:
            for ig in rec.inputs:
                if ig.grad is None:
                    continue
                if (isinstance(t, str) and ig.label == t) or (isinstance(t, Tensor) and ig.tensor._id == t._id):
                    items.append({"step": rec.index, "seq": rec.seq, "op": rec.op,
                                  "position": ig.position, "grad": ig.grad,
                                  "summed_axes": ig.summed_axes})
        tensor = t
        if isinstance(t, str):
            tensor = next((ig.tensor for rec in self.history for ig in rec.inputs if ig.label == t), None)
            if tensor is None:
                for e in self.order:
                    for x in e.inputs:
                        if label(x) == t:
                            tensor = x
            if tensor is None:
                raise KeyError(f"contributions: no tensor named {t!r} on the tape")
        return Contributions(tensor, items)

    def __repr__(self):
        state = "finished" if self.done else f"next: #{self.next_entry.seq} {self.next_entry.op}"
        return f"<BackwardStepper {self.position}/{self.size} steps run, {state}>"

    def _repr_html_(self):
        rows = []
        styles = []
        for i, e in enumerate(self.order):
            status = "ran" if i < self.position else ("next" if i == self.position else "")
            if i == self.position - 1:
                status = "current"
            rows.append([i + 1, f"#{e.seq}", op_label(e), status])
            styles.append({"current": "background:#ffd699", "ran": "background:#e6f5e6",
                           "next": "font-weight:bold"}.get(status, ""))
        return html_table(["step", "entry", "op", "status"], rows, row_styles=styles,
                          title=f"backward of {label(self.loss)}: {self.position}/{self.size} steps run")


def _grad_copy(t: Tensor):
    g = t.grad
    return None if g is None else np.array(g.detach().numpy(), copy=True)
