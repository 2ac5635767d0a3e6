"""Functions for networks (the ``torch.nn.functional`` of tapegrad).

All are C ops recorded on the tape, or short compositions of them.
"""
from __future__ import annotations

from .. import _C
from .._C import Tensor

# Every op of the registry that tg.ops() marks 'functional' (the public ops of
# csrc/ops/nn.c and conv.c, and the ops of other families whose block sets
# .functional = true: the activations, linear), under its own name: F.relu,
# F.cross_entropy, F.conv2d, ...  A new one appears here without an edit.
_NAMES = [_op["name"] for _op in _C.ops() if _op["functional"] and hasattr(_C, _op["name"])]
globals().update({_name: getattr(_C, _name) for _name in _NAMES})

# PyTorch's names for ops bound under another name, and their other spellings
binary_cross_entropy_with_logits = _C.binary_cross_entropy_with_logits  # the op bce_with_logits
swish = _C.silu

# shape and indexing (issue 14): PyTorch's F.pad
def pad(input, pad, mode="constant", value=None):
    """PyTorch's ``F.pad``: ``pad`` is a flat tuple of widths, last dim first
    (``(left, right)``, ``(left, right, top, bottom)``, ...), covering as many
    trailing dims as it has pairs; negative widths crop.  ``mode``:
    ``'constant'`` (with ``value``, default 0), ``'reflect'``, ``'replicate'``,
    ``'circular'``.  ``tg.pad`` takes NumPy's ``pad_width`` instead.

    >>> import tapegrad as tg
    >>> tg.nn.functional.pad(tg.ones(1, 2), (1, 0)).tolist()
    [[0.0, 1.0, 1.0]]
    """
    try:
        x = input if isinstance(input, Tensor) else _C.tensor(input)
        widths = [int(w) for w in pad]
    except (TypeError, ValueError) as e:  # name this function, as the C bindings do
        raise type(e)(f"pad: expected a tensor and a flat tuple of int widths, got "
                        f"{type(input).__name__} and {pad!r}: {e}") from e
    if len(widths) % 2 or len(widths) // 2 > x.ndim:
        raise ValueError(f"pad: the widths {tuple(widths)} must be pairs, at most one per dim of the input "
                         f"of shape {x.shape} (last dim first)")
    pairs = [(0, 0)] * x.ndim
    for i in range(len(widths) // 2):
        pairs[x.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    return _C.pad(x, pairs, constant_values=0.0 if value is None else value, mode=mode)


__all__ = sorted(_NAMES + ["binary_cross_entropy_with_logits", "swish", "pad"])
