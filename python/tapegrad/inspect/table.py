"""The tape as a table: one row per entry, oldest first.

:class:`TapeTable` and :func:`tape_of` (the table of everything a tensor
depends on) live in ``tapegrad._display``, below ``tapegrad.autograd`` and the
Tensor methods (``tg.Tape().table()``, ``t.tape()``) that use them; the
inspector shows them here.

>>> import tapegrad as tg
>>> x = tg.tensor([1.0, 2.0], requires_grad=True)
>>> type(tg.inspect.tape_of(x * x)).__name__
'TapeTable'
"""
from __future__ import annotations

from .._display import TapeTable, tape_of

__all__ = ["TapeTable", "tape_of"]
