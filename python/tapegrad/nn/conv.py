"""Convolution, pooling and resampling modules beyond ``Conv2d``/``MaxPool2d``/
``AvgPool2d`` (those live in :mod:`tapegrad.nn.modules`): ``Conv1d``,
``ConvTranspose2d``, ``MaxUnpool2d``, ``AdaptiveAvgPool2d`` and ``Upsample``,
with PyTorch's constructor arguments, defaults, parameter layout and
initialisation, so that a PyTorch state dict loads and gives PyTorch's outputs.

>>> import tapegrad as tg
>>> net = tg.nn.Sequential(tg.nn.Conv1d(2, 4, 3, padding="same"), tg.nn.ReLU())
>>> net(tg.ones(1, 2, 7)).shape
(1, 4, 7)
"""
from __future__ import annotations

import math

from .. import _C
from .._parameter import Parameter
from . import functional as F
from . import init
from .modules import Conv2d, Module

__all__ = ["Conv1d", "ConvTranspose2d", "MaxUnpool2d", "AdaptiveAvgPool2d", "Upsample"]


def _single(v):
    return (v,) if isinstance(v, int) else tuple(v)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _params(module, weight_shape, fan_in, out_channels, bias, dtype):
    """weight and bias uniform in (-k, k), k = 1/sqrt(fan_in): PyTorch's
    kaiming_uniform_(a=sqrt(5)) and its bias rule."""
    k = 1.0 / math.sqrt(fan_in)
    dt = dtype or _C.float32
    module.weight = Parameter(init._uniform(weight_shape, -k, k, dt))
    if bias:
        module.bias = Parameter(init._uniform((out_channels,), -k, k, dt))
    else:
        object.__setattr__(module, "bias", None)


class Conv1d(Module):
    """1-D convolution over (N, C, L) inputs; weight (out, in/groups, k).

    PyTorch's arguments (``padding``: an int, ``'same'`` or ``'valid'``) and
    initialisation (uniform in (-k, k), k = 1/sqrt(in/groups * kernel_size)).

    >>> import tapegrad as tg
    >>> conv = tg.nn.Conv1d(4, 6, 3, stride=2, groups=2, bias=False)
    >>> conv
    Conv1d(4, 6, kernel_size=(3,), stride=(2,), groups=2, bias=False)
    >>> conv(tg.ones(2, 4, 9)).shape
    (2, 6, 4)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        Conv2d._check_args("Conv1d", in_channels, out_channels, groups, padding, padding_mode)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = _single(kernel_size), _single(stride), _single(dilation)
        self.padding = padding if isinstance(padding, str) else _single(padding)
        if self.padding == "same" and self.stride != (1,):
            raise ValueError("Conv1d: padding='same' is not supported for strided convolutions")
        self.groups, self.padding_mode = groups, padding_mode
        (k,) = self.kernel_size
        _params(self, (out_channels, in_channels // groups, k), in_channels // groups * k,
                out_channels, bias, dtype)

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return Conv2d._repr(self)


class ConvTranspose2d(Module):
    """Transposed 2-D convolution; weight (in, out/groups, kh, kw) as PyTorch.

    ``forward(x, output_size=None)``: ``output_size`` (the last two sizes are
    used) picks the output_padding that gives that size, as PyTorch.

    >>> import tapegrad as tg
    >>> up = tg.nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
    >>> up(tg.ones(1, 8, 5, 5)).shape
    (1, 4, 10, 10)
    >>> up(tg.ones(1, 8, 5, 5), output_size=(9, 9)).shape
    (1, 4, 9, 9)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        Conv2d._check_args("ConvTranspose2d", in_channels, out_channels, groups, 0, padding_mode)
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be ints, got {padding!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.output_padding, self.dilation = _pair(output_padding), _pair(dilation)
        self.groups, self.padding_mode = groups, padding_mode
        kh, kw = self.kernel_size
        # PyTorch's fan_in of this layout is weight.shape[1] * kh * kw
        _params(self, (in_channels, out_channels // groups, kh, kw), out_channels // groups * kh * kw,
                out_channels, bias, dtype)

    def _output_padding(self, x, output_size):
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        op = []
        for d in range(2):
            s, p, k, dil = self.stride[d], self.padding[d], self.kernel_size[d], self.dilation[d]
            least = (x.shape[2 + d] - 1) * s - 2 * p + dil * (k - 1) + 1
            if not least <= size[d] < least + s:
                raise ValueError(f"ConvTranspose2d: requested an output size of {size}, but valid sizes "
                                 f"range from {least} to {least + s - 1} along axis {2 + d} "
                                 f"(input shape {x.shape})")
            op.append(size[d] - least)
        return tuple(op)

    def forward(self, x, output_size=None):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x, output_size), self.groups, self.dilation)

    def extra_repr(self):
        return Conv2d._repr(self)


class MaxUnpool2d(Module):
    """The partial inverse of ``MaxPool2d(..., return_indices=True)``.

    >>> import tapegrad as tg
    >>> pool, unpool = tg.nn.MaxPool2d(2, return_indices=True), tg.nn.MaxUnpool2d(2)
    >>> y, idx = pool(tg.randn(1, 1, 4, 4))
    >>> unpool(y, idx).shape
    (1, 1, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (PyTorch's windows).

    >>> import tapegrad as tg
    >>> tg.nn.AdaptiveAvgPool2d((2, None))(tg.ones(1, 3, 7, 5)).shape
    (1, 3, 2, 5)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Resampling by ``interpolate`` (modes 'nearest', 'linear', 'bilinear').

    >>> import tapegrad as tg
    >>> up = tg.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    >>> up
    Upsample(scale_factor=2.0, mode='bilinear')
    >>> up(tg.ones(1, 1, 3, 3)).shape
    (1, 1, 6, 6)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"
