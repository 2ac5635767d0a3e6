"""How tensors and tape entries are shown: how a tensor is named, how shapes,
values and byte counts are printed, HTML escaping, and the tape as a table
(:class:`TapeTable`).

It stands below both ``tapegrad.autograd`` (``tg.Tape().table()``) and
``tapegrad.inspect``, and uses only ``_C``: the inspector builds on it, and
nothing here imports the inspector (no import loop)."""
from __future__ import annotations

import html
import math
from typing import Iterable

import numpy as np

from . import _C
from ._C import Tensor, TapeEntry

#: tensors with at most this many elements show their values in tables,
#: step records and drawings (larger ones show a summary)
MAX_VALUES = 12


def label(t: Tensor | None) -> str:
    """The name a learner sees for a tensor: its ``name`` (``"fc1.weight"``)
    if set, else a short id such as ``"t17"``."""
    if t is None:
        return "—"
    return t.name or f"t{t._id}"


def kind(t: Tensor) -> str:
    """``"leaf"`` (requires grad, no grad_fn), ``"const"`` (does not require
    grad) or ``"intermediate"`` (made by a tape entry)."""
    if t.grad_fn is not None:
        return "intermediate"
    return "leaf" if t.requires_grad else "const"


def describe_input(t: Tensor) -> str:
    """``"W1 (leaf)"``, ``"x (const)"`` or ``"t17 (#3)"`` (made by entry #3)."""
    k = kind(t)
    if k == "intermediate":
        return f"{label(t)} (#{t.grad_fn.seq})"
    return f"{label(t)} ({k})"


def op_label(e) -> str:
    """An entry's op as a learner reads it: ``"mul"``, or for an entry
    recorded by an in-place write ``"mul (mul_, in-place)"`` (see
    docs/concepts/inplace.md)."""
    w = getattr(e, "inplace", None)
    return f"{e.op} ({w}, in-place)" if w else e.op


def shape_str(shape) -> str:
    """``(64, 128)``; ``()`` for a scalar."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(s) for s in shape) + ")"


def shape_tex(shape) -> str:
    """``\\mathbb{R}^{64 \\times 128}`` (``\\mathbb{R}`` for a scalar)."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        return r"\mathbb{R}"
    return r"\mathbb{R}^{" + r" \times ".join(str(s) for s in shape) + "}"


def fmt_bytes(n: int) -> str:
    """``"1.5 KB"`` style (powers of 1024)."""
    n = int(n)
    if n < 1024:
        return f"{n} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024.0
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} TB"  # pragma: no cover


def fmt_num(x: float) -> str:
    """A number in 4 significant digits (``nan``/``inf`` kept)."""
    if x is None:
        return "—"
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def to_numpy(t) -> np.ndarray | None:
    """A copy of a tensor's (or array's) values as a NumPy array, or None."""
    if t is None:
        return None
    if isinstance(t, Tensor):
        return np.array(t.detach().numpy(), copy=True)
    return np.array(t, copy=True)


def values_text(a, max_values: int = MAX_VALUES) -> str:
    """The values of a small array, else a summary: shape, min, max, mean."""
    if a is None:
        return "—"
    if isinstance(a, Tensor):
        a = to_numpy(a)
    a = np.asarray(a)
    if a.size <= max_values:
        return np.array2string(a, precision=4, separator=", ", suppress_small=False,
                               max_line_width=10**6).replace("\n", "")
    return summary_text(a)


def summary_text(a: np.ndarray) -> str:
    """``"(64, 128) min -0.31 max 0.42 mean 0.001"``; NaN/Inf counts when present."""
    a = np.asarray(a)
    s = shape_str(a.shape)
    if a.size == 0:
        return s + " (empty)"
    if not np.issubdtype(a.dtype, np.floating):
        return f"{s} min {a.min()} max {a.max()}"
    fin = a[np.isfinite(a)]
    parts = [s]
    if fin.size:
        parts.append(f"min {fin_fmt(fin.min())} max {fin_fmt(fin.max())} mean {fin_fmt(fin.mean())}")
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} Inf")
    return " ".join(parts)


def fin_fmt(x) -> str:
    return fmt_num(float(x))


def esc(s) -> str:
    """HTML-escape any object's text."""
    return html.escape(str(s), quote=True)


def pre(s: str) -> str:
    """Text in a ``<pre>`` that keeps the page's font size."""
    return f"<pre style='margin:0;white-space:pre-wrap;font-size:90%'>{esc(s)}</pre>"


TABLE_STYLE = ("border-collapse:collapse;font-family:monospace;font-size:12px;"
               "text-align:left")
CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top"


def html_table(header, rows, title: str | None = None, row_styles=None) -> str:
    """A small HTML table; cells are escaped unless they are ``Raw``."""
    out = [f"<table style='{TABLE_STYLE}'>"]
    if title:
        out.append(f"<caption style='text-align:left;font-weight:bold'>{esc(title)}</caption>")
    out.append("<tr>" + "".join(f"<th style='{CELL};background:#f0f0f0'>{esc(h)}</th>"
                                 for h in header) + "</tr>")
    for i, r in enumerate(rows):
        st = (row_styles[i] if row_styles else "") or ""
        out.append(f"<tr style='{st}'>" + "".join(
            f"<td style='{CELL}'>{c if isinstance(c, Raw) else esc(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


class Raw(str):
    """A table cell that is already HTML."""


def text_table(header, rows) -> str:
    """Columns aligned with spaces (multi-line cells are not supported)."""
    cols = [list(map(str, col)) for col in zip(header, *rows)] if rows else [[h] for h in header]
    widths = [max(len(c) for c in col) for col in cols]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def reachable_entries(t: Tensor) -> list:
    """The tape entries that lead to ``t``, oldest first (no recursion)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a Tensor, got {type(t).__name__}")
    root = t.grad_fn
    if root is None:
        return []
    seen = {root}
    stack = [root]
    while stack:
        e = stack.pop()
        for n in e.next_entries:
            if n is not None and n not in seen:
                seen.add(n)
                stack.append(n)
    return sorted(seen, key=lambda e: e.seq)


__all__ = ["label", "kind", "describe_input", "op_label", "shape_str", "fmt_bytes", "values_text",
           "reachable_entries", "TapeEntry", "_C"]


def _saved_text(e: TapeEntry) -> str:
    if e.freed:
        return "freed by backward"
    saved = e.saved or ()
    parts = [f"{label(t)}{shape_str(t.shape)}" for t in saved if t is not None]
    if e.saves_output:
        parts.append("output")
    return ", ".join(parts) if parts else "—"


class TapeTable:
    """A list of tape entries shown as a table: sequence number, op, inputs,
    output shape and dtype, what is saved for backward (and its bytes), and
    the op's forward formula. HTML in Jupyter, aligned text elsewhere.

    Inputs are shown by ``name`` when set (``fc1.weight``), else by a short
    id (``t17``); ``(leaf)`` marks leaves that require grad, ``(const)``
    tensors that do not, ``(#3)`` the entry that made an intermediate.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, 2.0], requires_grad=True); w.name = "w"
    >>> loss = (w * w).sum()
    >>> table = loss.tape()            # same as tg.inspect.tape_of(loss)
    >>> [row["op"] for row in table]
    ['mul', 'sum']
    >>> table[0]["inputs"]
    'w (leaf), w (leaf)'
    >>> print(table)                   # doctest: +ELLIPSIS
    tape of ...
    seq ... inputs ...
    #...mul  w (leaf), w (leaf) ...
    """

    columns = ("seq", "op", "inputs", "output", "saved", "saved bytes", "formula")

    def __init__(self, entries: Iterable[TapeEntry], title: str | None = None):
        self.entries = list(entries)
        self.title = title
        self.rows = [self._row(e) for e in self.entries]

    @staticmethod
    def _row(e: TapeEntry) -> dict:
        return {
            "seq": e.seq,
            "op": op_label(e),
            "inputs": ", ".join(describe_input(t) for t in e.inputs),
            "output": f"{shape_str(e.output_shape)} {e.output_dtype}",
            "saved": _saved_text(e),
            "saved_bytes": e.saved_bytes,
            "formula": (e.forward or "") if not e.is_custom else "Python-defined (tg.Function)",
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __iter__(self):
        return iter(self.rows)

    @property
    def saved_bytes(self) -> int:
        """Bytes held for backward by all the entries."""
        return sum(r["saved_bytes"] for r in self.rows)

    def _cells(self, r):
        return [f"#{r['seq']}", r["op"], r["inputs"], r["output"], r["saved"],
                fmt_bytes(r["saved_bytes"]), r["formula"]]

    def __str__(self) -> str:
        if not self.rows:
            return "(empty tape: nothing recorded; do the inputs require grad?)"
        body = text_table(["seq", "op", "inputs", "output", "saved", "bytes", "formula"],
                          [self._cells(r) for r in self.rows])
        foot = f"{len(self.rows)} entries, {fmt_bytes(self.saved_bytes)} saved for backward"
        return (self.title + "\n" if self.title else "") + body + "\n" + foot

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<p><i>empty tape: nothing recorded (do the inputs require grad?)</i></p>"
        rows = []
        for e, r in zip(self.entries, self.rows):
            ins = []
            for t in e.inputs:
                k = kind(t)
                color = {"leaf": "#1f5fbf", "const": "#888", "intermediate": "#000"}[k]
                ins.append(f"<span style='color:{color}' title='{esc(k)} {esc(shape_str(t.shape))}'>"
                           f"{esc(describe_input(t))}</span>")
            cells = self._cells(r)
            cells[2] = Raw(", ".join(ins))
            cells[1] = Raw(f"<b>{esc(r['op'])}</b>")
            rows.append(cells)
        foot = (f"<div style='font-size:12px;color:#555'>{len(self.rows)} entries, "
                f"{esc(fmt_bytes(self.saved_bytes))} saved for backward. "
                f"<span style='color:#1f5fbf'>(leaf)</span>: requires grad; "
                f"(const): no grad; (#n): made by entry n.</div>")
        return html_table(["seq", "op", "inputs", "output", "saved for backward", "bytes",
                           "forward"], rows, title=self.title) + foot


def tape_of(t: Tensor) -> TapeTable:
    """The entries reachable from ``t`` (everything its value depends on
    through recorded ops), oldest first, as a :class:`TapeTable`.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> y = x.relu().sum()
    >>> [r["op"] for r in tg.inspect.tape_of(y)]
    ['relu', 'sum']
    """
    return TapeTable(reachable_entries(t),
                     title=f"tape of {label(t)} {shape_str(t.shape)}")
