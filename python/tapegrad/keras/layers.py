"""Keras layers built on tg.nn. Dense weights are created on the first call
(when the input size is known), with Keras's initialisers: Glorot-uniform
kernels and zero biases."""
from __future__ import annotations

import math

from .. import _C
from .. import nn
from ..nn import init

_ACTIVATIONS = {
    None: None, "linear": None, "relu": _C.relu, "sigmoid": _C.sigmoid, "tanh": _C.tanh,
    "gelu": _C.gelu, "softplus": _C.softplus,
    "softmax": lambda x: _C.softmax(x, -1),
}


def _activation(a):
    if callable(a) or a is None:
        return a
    if a not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {a!r}; choose one of "
                         f"{sorted(k for k in _ACTIVATIONS if k)}")
    return _ACTIVATIONS[a]


class Layer(nn.Module):
    """Base of the Keras layers: an ``nn.Module`` that may know its input shape."""

    def __init__(self, input_shape=None, name=None):
        super().__init__()
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.layer_name = name

    def output_shape(self, input_shape):
        return input_shape


class Flatten(Layer):
    """Flatten everything but the batch dimension: (N, 28, 28) -> (N, 784)."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def output_shape(self, s):
        return (math.prod(s),)


class Dense(Layer):
    """``activation(x @ kernel + bias)`` with kernel (in, units) as in Keras."""

    def __init__(self, units: int, activation=None, use_bias: bool = True, input_shape=None,
                 name=None):
        super().__init__(input_shape, name)
        self.units, self.use_bias = units, use_bias
        self.activation_name = activation if isinstance(activation, str) else None
        object.__setattr__(self, "activation", _activation(activation))
        self.kernel = None
        self.bias = None

    def build(self, in_features: int):
        k = nn.Parameter(_C.zeros(in_features, self.units))
        init.xavier_uniform_(k)
        self.kernel = k
        if self.use_bias:
            self.bias = nn.Parameter(_C.zeros(self.units))

    def forward(self, x):
        if self.kernel is None:
            self.build(x.shape[-1])
        y = x @ self.kernel
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def output_shape(self, s):
        return (*s[:-1], self.units)


class Dropout(Layer):
    """Drop each input with probability ``rate`` while training."""

    def __init__(self, rate: float, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.rate = rate

    def forward(self, x):
        return _C.dropout(x, self.rate, self.training)


class Activation(Layer):
    def __init__(self, activation, input_shape=None, name=None):
        super().__init__(input_shape, name)
        object.__setattr__(self, "fn", _activation(activation))

    def forward(self, x):
        return self.fn(x) if self.fn else x


class Reshape(Layer):
    """Reshape each sample to ``target_shape``."""

    def __init__(self, target_shape, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.target_shape = tuple(target_shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.target_shape)

    def output_shape(self, s):
        return self.target_shape


class Conv2D(Layer):
    """2-D convolution over channels-first (N, C, H, W) inputs (tapegrad's
    layout; add a Reshape((1, 28, 28)) before it for MNIST)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.filters = filters
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.strides = strides
        self.padding = padding
        object.__setattr__(self, "activation", _activation(activation))
        self.conv = None

    def forward(self, x):
        if self.conv is None:
            pad = (self.kernel_size[0] // 2) if self.padding == "same" else 0
            self.conv = nn.Conv2d(x.shape[1], self.filters, self.kernel_size, self.strides, pad)
        y = self.conv(x)
        return self.activation(y) if self.activation else y


class MaxPooling2D(Layer):
    def __init__(self, pool_size=2, strides=None, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.pool = nn.MaxPool2d(pool_size, strides)

    def forward(self, x):
        return self.pool(x)
