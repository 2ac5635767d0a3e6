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
pad = _C.pad
conv2d = _C.conv2d
max_pool2d = _C.max_pool2d
avg_pool2d = _C.avg_pool2d


linear = _C.linear

# nn.c / nnlayers.c: losses with PyTorch's options, layers as ops (issue 14)
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
