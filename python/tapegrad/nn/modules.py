"""Modules: containers of parameters with a forward method, as in PyTorch.

A module's parameters are named with dotted paths (``fc1.weight``); the names
are also given to the tensors, so the tape and the drawings show them.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from .. import _C
from .._C import Tensor
from ..autograd import no_grad
from . import functional as F
from . import init

__all__ = ["Parameter", "Module", "Linear", "Sequential", "ModuleList", "Flatten", "ReLU",
           "Sigmoid", "Tanh", "GELU", "LeakyReLU", "Softmax", "LogSoftmax", "Identity", "Dropout",
           "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "LayerNorm", "MSELoss",
           "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss"]


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


class Module:
    """Base class of layers and models.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and
    define ``forward``; calling the module calls ``forward`` (and its hooks).
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_named", False)

    # ---- registration ---------------------------------------------------
    def __setattr__(self, name: str, value: Any):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning "
                               f"attributes")
        for d in (self._parameters, self._modules, self._buffers):
            d.pop(name, None)
        if isinstance(value, (Parameter, Module)):
            self.__dict__.pop(name, None)  # e.g. a `self.kernel = None` placeholder
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
            self._mark_unnamed()
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        for key in ("_parameters", "_modules", "_buffers"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for d in (self._parameters, self._modules, self._buffers):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None):
        """A tensor that belongs to the module's state (saved in state_dict)
        but is not a parameter, such as BatchNorm's running mean."""
        self._buffers[name] = tensor

    def register_parameter(self, name: str, param: Parameter | None):
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: "Module"):
        setattr(self, name, module)

    def _mark_unnamed(self):
        object.__setattr__(self, "_named", False)

    # ---- traversal ------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ``('fc1.weight', ...)``. The
        names are also set on the tensors (``p.name``) for the tape views."""
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                full = f"{mname}.{pname}" if mname else pname
                # the most qualified name wins (the outermost module's view)
                if p.name is None or full.count(".") > p.name.count("."):
                    p.name = full
                yield full, p
        object.__setattr__(self, "_named", True)

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = ""):
        for mname, m in self.named_modules(prefix):
            for bname, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    # ---- modes and grads --------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, batch statistics in BatchNorm)."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients of all parameters (to None by default)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                with no_grad():
                    p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # ---- state --------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters and buffers by dotted name (copies, detached)."""
        sd = OrderedDict()
        for n, p in self.named_parameters():
            sd[n] = p.detach().clone()
        for n, b in self.named_buffers():
            sd[n] = b.detach().clone()
        return sd

    def load_state_dict(self, state: dict, strict: bool = True):
        """Copy values into the parameters and buffers (shapes must match)."""
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        with no_grad():
            for k, v in state.items():
                if k not in own:
                    continue
                t = own[k]
                src = v if isinstance(v, Tensor) else _C.tensor(np.asarray(v), dtype=t.dtype)
                if tuple(src.shape) != tuple(t.shape):
                    raise ValueError(f"load_state_dict: '{k}' has shape {tuple(src.shape)} in the "
                                     f"state dict but {tuple(t.shape)} in the model")
                t.copy_(src)
        return self

    def save(self, path: str):
        """Save the state dict to a ``.npz`` file (NumPy's format)."""
        np.savez(path, **{k: v.numpy() for k, v in self.state_dict().items()})

    def load(self, path: str, strict: bool = True):
        """Load a state dict saved with ``save``."""
        with np.load(path) as z:
            self.load_state_dict({k: z[k] for k in z.files}, strict=strict)
        return self

    # ---- calling ----------------------------------------------------------
    def register_forward_hook(self, hook: Callable):
        """Call ``hook(module, inputs, output)`` after every forward; a non-None
        return value replaces the output. Returns a handle with ``remove()``."""
        self._forward_hooks.append(hook)
        hooks = self._forward_hooks

        class _Handle:
            def remove(self_inner):
                if hook in hooks:
                    hooks.remove(hook)
        return _Handle()

    def __call__(self, *args, **kwargs):
        if not self._named:
            for _ in self.named_parameters():
                pass
        out = self.forward(*args, **kwargs)
        for h in list(self._forward_hooks):
            r = h(self, args, out)
            if r is not None:
                out = r
        return out

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- printing --------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def num_parameters(self) -> int:
        """Total number of parameter elements."""
        return sum(p.size for p in self.parameters())


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

class Linear(Module):
    """``y = x W^T + b`` with W of shape (out_features, in_features).

    Initialisation (as PyTorch): W and b are uniform in (-k, k) with
    k = 1/sqrt(in_features) (Kaiming-uniform with a = sqrt(5)), drawn from the
    seedable generator (``tg.manual_seed``).

    >>> import tapegrad as tg
    >>> layer = tg.nn.Linear(784, 128)
    >>> layer(tg.zeros(32, 784)).shape
    (32, 128)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dt = dtype or _C.float32
        k = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = Parameter(init._uniform((out_features, in_features), -k, k, dt))
        self.bias = Parameter(init._uniform((out_features,), -k, k, dt)) if bias else None
        if not bias:
            object.__setattr__(self, "bias", None)

    def forward(self, x: Tensor) -> Tensor:
        # one tape entry "linear" (y = x W^T + b), as PyTorch's addmm
        return _C.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied in order.

    >>> import tapegrad as tg
    >>> net = tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.ReLU(), tg.nn.Linear(8, 2))
    >>> net(tg.zeros(3, 4)).shape
    (3, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for k, m in modules[0].items():
                setattr(self, k, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, m: Module):
        setattr(self, str(len(self._modules)), m)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m):
        setattr(self, str(len(self._modules)), m)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


def _activation(name, fn, doc):
    def forward(self, x):
        return fn(x)
    return type(name, (Module,), {"forward": forward, "__doc__": doc})


ReLU = _activation("ReLU", _C.relu, "max(x, 0), elementwise.")
Sigmoid = _activation("Sigmoid", _C.sigmoid, "1 / (1 + exp(-x)), elementwise.")
Tanh = _activation("Tanh", _C.tanh, "tanh(x), elementwise.")
GELU = _activation("GELU", _C.gelu, "x * Phi(x), elementwise.")
Identity = _activation("Identity", lambda x: x, "Returns its input.")


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return x.leaky_relu(self.negative_slope)


class _AlongDim(Module):
    """A function applied along one dimension ``dim``."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """Softmax along ``dim``."""

    def forward(self, x):
        return x.softmax(self.dim)


class LogSoftmax(_AlongDim):
    """Log-softmax along ``dim``."""

    def forward(self, x):
        return x.log_softmax(self.dim)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p
    and scale the rest by 1/(1-p); identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return _C.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) inputs; weight (out, in, kh, kw).

    Initialisation as PyTorch: uniform in (-k, k), k = 1/sqrt(in * kh * kw).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=None):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), _pair(stride), _pair(padding)
        k = 1.0 / math.sqrt(in_channels * kh * kw)
        dt = dtype or _C.float32
        self.weight = Parameter(init._uniform((out_channels, in_channels, kh, kw), -k, k, dt))
        self.bias = Parameter(init._uniform((out_channels,), -k, k, dt)) if bias else None
        if not bias:
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class _Pool2d(Module):
    """Pooling over (N, C, H, W) windows; the stride defaults to the window."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling over (N, C, H, W)."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Average pooling over (N, C, H, W)."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class BatchNorm1d(Module):
    """Batch normalisation over (N, C) or (N, C, L) inputs.

    Training: normalise with the batch mean and (biased) variance and update
    the running statistics (unbiased variance, momentum 0.1 as PyTorch).
    Eval: use the running statistics. Built from ops, so its gradient comes
    from the tape."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        if affine:
            self.weight = Parameter(_C.ones(num_features))
            self.bias = Parameter(_C.zeros(num_features))
        else:
            object.__setattr__(self, "weight", None)
            object.__setattr__(self, "bias", None)
        self.register_buffer("running_mean", _C.zeros(num_features))
        self.register_buffer("running_var", _C.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: expected input of shape (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got {x.shape}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, self.num_features) if x.ndim == 2 else (1, self.num_features, 1)
        if self.training:
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            n = x.size // self.num_features
            with no_grad():
                m = self.momentum
                self.running_mean.copy_(self.running_mean * (1 - m) + mean.reshape(-1) * m)
                unbiased = var.reshape(-1) * (n / max(n - 1, 1))
                self.running_var.copy_(self.running_var * (1 - m) + unbiased * m)
        else:
            mean = self.running_mean.reshape(*shape)
            var = self.running_var.reshape(*shape)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(*shape) + self.bias.reshape(*shape)
        return y


class LayerNorm(Module):
    """Layer normalisation over the last dims (``normalized_shape``)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            self.weight = Parameter(_C.ones(*self.normalized_shape))
            self.bias = Parameter(_C.zeros(*self.normalized_shape))
        else:
            object.__setattr__(self, "weight", None)
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm: expected the last dims to be {self.normalized_shape}, "
                             f"got input shape {x.shape}")
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error between input and target (same shape)."""

    def forward(self, input, target):
        return _C.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) and int64 class labels (N,).

    Takes LOGITS, not probabilities: do not put a Softmax before it."""

    def forward(self, input, target):
        return _C.cross_entropy(input, target, self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) and labels (N,)."""

    def forward(self, input, target):
        return _C.nll_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, numerically stable."""

    def forward(self, input, target):
        return _C.binary_cross_entropy_with_logits(input, target, self.reduction)
