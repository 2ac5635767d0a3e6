"""Attention: ``MultiheadAttention`` with PyTorch's parameter layout, built
from ops (``linear``, ``matmul``, ``softmax``, ``where``, ``dropout``), so its
backward is the tape's. The functional form is
``tg.nn.functional.scaled_dot_product_attention`` (an op of the registry).

>>> import tapegrad as tg
>>> mha = tg.nn.MultiheadAttention(8, 2, batch_first=True)
>>> x = tg.randn(3, 5, 8)
>>> out, w = mha(x, x, x)
>>> out.shape, w.shape
((3, 5, 8), (3, 5, 5))
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from .._parameter import Parameter
from . import functional as F
from . import init
from .modules import Linear, Module

__all__ = ["MultiheadAttention"]


def _additive(mask, dtype):
    """A mask in PyTorch's MultiheadAttention convention as an additive float
    mask: a float mask as it is; any other dtype (bool, int) is True/nonzero =
    NOT allowed to attend, which becomes -inf."""
    if mask is None:
        return None
    if not isinstance(mask, _C.Tensor):  # a list or a NumPy array (bool ones as 0/1)
        a = np.asarray(mask)
        mask = _C.from_numpy(np.ascontiguousarray(a.astype(np.int64) if a.dtype == bool else a))
    if mask.dtype in (_C.float32, _C.float64):
        return mask.astype(dtype)
    return _C.where(mask != 0, float("-inf"), 0.0).astype(dtype)


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention``: the same
    arguments, parameter names and shapes (``in_proj_weight`` (3E, E),
    ``in_proj_bias`` (3E,), ``out_proj.weight``, ``out_proj.bias``; with
    ``kdim``/``vdim`` different from ``embed_dim``: ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight``) and initialisation, so a PyTorch
    state dict loads and gives PyTorch's outputs.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(output, weights)``; weights is None unless ``need_weights``. Inputs are
    (L, N, E), or (N, L, E) with ``batch_first``, or unbatched (L, E). Masks
    follow PyTorch: a bool (or integer) mask is True where attending is NOT
    allowed; a float mask is added to the scores. ``add_bias_kv`` and
    ``add_zero_attn`` are not supported.

    >>> import tapegrad as tg
    >>> mha = tg.nn.MultiheadAttention(4, 1)
    >>> sorted(n for n, _ in mha.named_parameters())
    ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, dtype=None):
        super().__init__()
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not "
                                      "supported")
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads}), both > 0")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        dt = dtype or _C.float32
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(init.xavier_uniform_(_C.zeros(3 * E, E, dtype=dt)))
        else:
            object.__setattr__(self, "in_proj_weight", None)
            self.q_proj_weight = Parameter(init.xavier_uniform_(_C.zeros(E, E, dtype=dt)))
            self.k_proj_weight = Parameter(init.xavier_uniform_(_C.zeros(E, self.kdim, dtype=dt)))
            self.v_proj_weight = Parameter(init.xavier_uniform_(_C.zeros(E, self.vdim, dtype=dt)))
        if bias:
            self.in_proj_bias = Parameter(_C.zeros(3 * E, dtype=dt))
        else:
            object.__setattr__(self, "in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dt)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _proj(self, x, i):
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = self.in_proj_bias[i * E:(i + 1) * E] if self.in_proj_bias is not None else None
        return F.linear(x, w, b)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        who = "MultiheadAttention"
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.swapaxes(0, 1) for t in (query, key, value))
        if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
            raise ValueError(f"{who}: expected query, key and value of 3 dims (or 2 unbatched), "
                             f"got shapes {query.shape}, {key.shape}, {value.shape}")
        L, N, E = query.shape
        S = key.shape[0]
        if E != self.embed_dim or key.shape[2] != self.kdim or value.shape[2] != self.vdim \
                or key.shape[:2] != value.shape[:2] or key.shape[1] != N:
            raise ValueError(f"{who}: shapes query {query.shape}, key {key.shape}, value "
                             f"{value.shape} do not fit embed_dim={self.embed_dim}, kdim={self.kdim}, "
                             f"vdim={self.vdim} (sequence-first: (L, N, E))")
        H, hd = self.num_heads, self.head_dim
        # (L, N, E) -> (N, H, L, hd)
        q = self._proj(query, 0).reshape(L, N, H, hd).permute(1, 2, 0, 3)
        k = self._proj(key, 1).reshape(S, N, H, hd).permute(1, 2, 0, 3)
        v = self._proj(value, 2).reshape(S, N, H, hd).permute(1, 2, 0, 3)
        dt = q.dtype
        mask = _additive(attn_mask, dt)
        if mask is None and is_causal:
            mask = _C.from_numpy(np.where(np.triu(np.ones((L, S), bool), 1), -np.inf, 0.0)).astype(dt)
        if mask is not None:
            if mask.shape == (L, S):
                pass
            elif mask.shape == (N * H, L, S):
                mask = mask.reshape(N, H, L, S)
            else:
                raise ValueError(f"{who}: attn_mask must have shape ({L}, {S}) or ({N * H}, {L}, "
                                 f"{S}), got {mask.shape}")
        kpm = _additive(key_padding_mask, dt)
        if kpm is not None:
            if kpm.shape != (N, S):
                raise ValueError(f"{who}: key_padding_mask must have shape ({N}, {S}), got {kpm.shape}")
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        scores = (q * (1.0 / math.sqrt(hd))) @ k.swapaxes(-2, -1)
        if mask is not None:
            scores = scores + mask
        attn = _C.softmax(scores, axis=-1)
        if self.training and self.dropout > 0:
            attn = F.dropout(attn, self.dropout, True)
        out = (attn @ v).permute(2, 0, 1, 3).reshape(L, N, E)  # (L, N, E)
        out = self.out_proj(out)
        if unbatched:
            out = out.reshape(L, E)
        elif self.batch_first:
            out = out.swapaxes(0, 1)
        weights = None
        if need_weights:
            weights = attn.mean(axis=1) if average_attn_weights else attn
            if unbatched:
                weights = weights.reshape(*weights.shape[1:])
        return out, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
