"""``Parameter``, the tensor type of a module's learnable weights.

It lives below ``tapegrad.nn`` (which re-exports it as ``tg.nn.Parameter``)
so that ``tapegrad.serialization`` can keep the parameter type of what it
saves and loads without importing ``nn``, whose ``Module.save``/``load`` call
``tg.save``/``tg.load``: one floor, no import loop.
"""
from ._C import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A tensor that is a module's learnable parameter: ``requires_grad`` is
    on, and assigning it to a module attribute registers it.

    >>> import tapegrad as tg
    >>> p = tg.nn.Parameter(tg.zeros(3))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    def __new__(cls, data, requires_grad: bool = True):
        return super().__new__(cls, data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)
