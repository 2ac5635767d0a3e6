"""The tape as a table: one row per entry, oldest first."""
from __future__ import annotations

from typing import Iterable

from .._C import Tensor, TapeEntry
from ._common import (Raw, describe_input, esc, fmt_bytes, html_table, kind, label,
                      reachable_entries, shape_str, text_table)


def _saved_text(e: TapeEntry) -> str:
    if e.freed:
        return "freed by backward"
    saved = e.saved or ()
    parts = [f"{label(t)}{shape_str(t.shape)}" for t in saved]
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
            "op": e.op,
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
