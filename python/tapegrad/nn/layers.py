"""Layers built on the ops of ``csrc/ops/nn.c``: ``Embedding`` and
``GroupNorm`` (``LayerNorm`` is in ``tg.nn.modules`` and uses the same
``layer_norm`` op).

>>> import tapegrad as tg
>>> emb = tg.nn.Embedding(10, 4, padding_idx=0)
>>> emb(tg.tensor([[0, 3, 9]])).shape
(1, 3, 4)
"""
from __future__ import annotations

from .. import _C
from .._parameter import Parameter
from ..autograd import no_grad
from .modules import Module

__all__ = ["Embedding", "GroupNorm"]


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``:
    ``emb(indices)`` has shape ``indices.shape + (embedding_dim,)``.

    Initialised N(0, 1) as PyTorch, with the ``padding_idx`` row zero; that
    row gets no gradient (``tg.nn.functional.embedding``), so it stays what it
    is. ``max_norm`` and sparse gradients are not supported.

    >>> import tapegrad as tg
    >>> emb = tg.nn.Embedding.from_pretrained(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> emb(tg.tensor([1, 1, 0])).tolist()
    [[3.0, 4.0], [3.0, 4.0], [1.0, 2.0]]
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 _weight=None, _freeze: bool = False, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"[-{num_embeddings}, {num_embeddings})")
            if padding_idx < 0:
                padding_idx += num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is None:
            w = _C.randn(num_embeddings, embedding_dim, dtype=dtype or _C.float32)
            if padding_idx is not None:
                with no_grad():
                    w[padding_idx] = 0.0
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            w = _weight.detach().clone()
        self.weight = Parameter(w)
        if _freeze:
            self.weight.requires_grad = False

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None):
        """An Embedding holding a copy of the 2-D tensor ``embeddings``; with
        ``freeze`` (the default, as PyTorch) its weight does not require grad."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        n, d = embeddings.shape
        return cls(n, d, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return _C.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class GroupNorm(Module):
    """Group normalisation of (N, C, ...): the ``num_channels`` channels in
    ``num_groups`` groups, each sample's group standardised, then an affine
    map per channel (weight 1, bias 0 at the start). One ``group_norm`` op.

    >>> import tapegrad as tg
    >>> tg.nn.GroupNorm(2, 4)(tg.randn(3, 4, 5)).shape
    (3, 4, 5)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=None):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        dt = dtype or _C.float32
        if affine:
            self.weight = Parameter(_C.ones(num_channels, dtype=dt))
            self.bias = Parameter(_C.zeros(num_channels, dtype=dt))
        else:
            object.__setattr__(self, "weight", None)
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        return _C.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
