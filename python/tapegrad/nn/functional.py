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
