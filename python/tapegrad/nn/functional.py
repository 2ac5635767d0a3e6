"""Functions for networks (the ``torch.nn.functional`` of tapegrad).

All are C ops recorded on the tape, or short compositions of them.
"""
from __future__ import annotations

from .. import _C
from .._C import Tensor

relu = _C.relu
sigmoid = _C.sigmoid
tanh = _C.tanh
gelu = _C.gelu
softplus = _C.softplus
leaky_relu = _C.leaky_relu
softmax = _C.softmax
log_softmax = _C.log_softmax
cross_entropy = _C.cross_entropy
nll_loss = _C.nll_loss
mse_loss = _C.mse_loss
binary_cross_entropy_with_logits = _C.binary_cross_entropy_with_logits
one_hot = _C.one_hot
dropout = _C.dropout
conv2d = _C.conv2d
max_pool2d = _C.max_pool2d
avg_pool2d = _C.avg_pool2d
conv1d = _C.conv1d
conv_transpose2d = _C.conv_transpose2d
max_unpool2d = _C.max_unpool2d
adaptive_avg_pool2d = _C.adaptive_avg_pool2d
interpolate = _C.interpolate


linear = _C.linear

# activations (issue 14); gelu(approximate=) and softplus(beta, threshold) are above
elu = _C.elu
selu = _C.selu
celu = _C.celu
silu = swish = _C.silu
mish = _C.mish
hardtanh = _C.hardtanh
relu6 = _C.relu6
hardsigmoid = _C.hardsigmoid
hardswish = _C.hardswish
softsign = _C.softsign
logsigmoid = _C.logsigmoid
softmin = _C.softmin
glu = _C.glu

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
    x = input if isinstance(input, Tensor) else _C.tensor(input)
    widths = [int(w) for w in pad]
    if len(widths) % 2 or len(widths) // 2 > x.ndim:
        raise ValueError(f"pad: the widths {tuple(widths)} must be pairs, at most one per dim of the input "
                         f"of shape {x.shape} (last dim first)")
    pairs = [(0, 0)] * x.ndim
    for i in range(len(widths) // 2):
        pairs[x.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    return _C.pad(x, pairs, constant_values=0.0 if value is None else value, mode=mode)
# nn.c: losses with PyTorch's options, layers as ops (issue 14)
binary_cross_entropy = _C.binary_cross_entropy
huber_loss = _C.huber_loss
smooth_l1_loss = _C.smooth_l1_loss
l1_loss = _C.l1_loss
kl_div = _C.kl_div
embedding = _C.embedding
layer_norm = _C.layer_norm
group_norm = _C.group_norm
normalize = _C.normalize
cosine_similarity = _C.cosine_similarity
scaled_dot_product_attention = _C.scaled_dot_product_attention
