"""The tape as a table: one row per entry, oldest first.

:class:`TapeTable` itself lives in ``tapegrad._display`` (``tg.Tape().table()``
uses it, and ``tapegrad.autograd`` stands below the inspector); this module
adds :func:`tape_of`, the table of everything a tensor depends on.

>>> import tapegrad as tg
>>> x = tg.tensor([1.0, 2.0], requires_grad=True)
>>> type(tg.inspect.tape_of(x * x)).__name__
'TapeTable'
"""
from __future__ import annotations

from .._C import Tensor
from .._display import TapeTable, label, reachable_entries, shape_str

__all__ = ["TapeTable", "tape_of"]


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
