"""Gradient checks of ONE tape entry (``tg.inspect.check_entry``, also
``tg.testing.check_entry``).

The check itself lives in ``tapegrad._gradcheck``, below both ``tapegrad.testing``
and this package, so that the two share it without importing each other.

>>> import tapegrad as tg
>>> x = tg.randn(3, dtype=tg.float64, requires_grad=True)
>>> tg.inspect.check_entry(x.exp().grad_fn).ok
True
"""
from .._gradcheck import EntryCheck, check_entry

__all__ = ["EntryCheck", "check_entry"]
