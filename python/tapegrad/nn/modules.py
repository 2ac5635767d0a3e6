"""Modules: containers of parameters with a forward method, as in PyTorch.

A module's parameters are named with dotted paths (``fc1.weight``); the names
are also given to the tensors, so the tape and the drawings show them.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from .. import _C
from .._C import Tensor
from .._parameter import Parameter
from ..autograd import no_grad
from . import functional as F
from . import init

__all__ = ["Parameter", "Module", "Linear", "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "ParameterDict", "Flatten", "ReLU",
           "Sigmoid", "Tanh", "LeakyReLU", "Softmax", "LogSoftmax", "Identity", "Dropout",
           "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "MSELoss",
           "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss"]


def _check_child_name(owner, name, what: str):
    """PyTorch's rules for the name of a sub-module or parameter."""
    cls = type(owner).__name__
    if not isinstance(name, str):
        raise TypeError(f"{cls}: {what} should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f"{cls}: {what} must not be the empty string")
    if "." in name:
        raise KeyError(f"{cls}: {what} must not contain \".\" (dots separate the levels of "
                       f"state_dict names), got {name!r}")
    d = owner.__dict__
    if name not in d["_modules"] and name not in d["_parameters"] and name not in d["_buffers"] \
            and hasattr(owner, name):
        raise KeyError(f"{cls}: {what} {name!r} is already an attribute of {cls}")


def _warn_if_hidden(owner, name: str, value):
    """A plain list/tuple/dict of modules or parameters is not registered (in
    PyTorch neither), so parameters(), state_dict(), train() and the optimizer
    never see them: the most common silent mistake, so say it."""
    if isinstance(value, dict):
        items, kind = list(value.values()), "dict"
    elif isinstance(value, (list, tuple)):
        items, kind = list(value), type(value).__name__
    else:
        return
    if not items:
        return
    if all(isinstance(v, Module) for v in items):
        fix = "nn.ModuleDict" if kind == "dict" else "nn.ModuleList"
        what = "Modules"
    elif all(isinstance(v, Parameter) for v in items):
        fix = "nn.ParameterDict" if kind == "dict" else "nn.ParameterList"
        what = "Parameters"
    else:
        return
    warnings.warn(f"{type(owner).__name__}.{name}: a plain {kind} of {len(items)} {what} is not "
                  f"registered, so parameters(), state_dict(), train()/eval() and the optimizer "
                  f"will not see them; wrap it: self.{name} = {fix}(...)", UserWarning, stacklevel=3)


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
            _warn_if_hidden(self, name, value)
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
        """Register ``param`` under ``name`` (as ``self.name = param``); None
        removes it. The name must be a non-empty string without ``.``."""
        _check_child_name(self, name, "parameter name")
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        elif not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: cannot register a "
                            f"{type(param).__name__} as parameter {name!r} (a tg.nn.Parameter "
                            f"or None is required)")
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: "Module"):
        """Register ``module`` under ``name`` (as ``self.name = module``). The
        name must be a non-empty string without ``.`` that is not already
        another attribute."""
        _check_child_name(self, name, "module name")
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: expected a Module for {name!r}, "
                            f"got {type(module).__name__}")
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
        """Copy values into the parameters and buffers (shapes must match).
        A buffer its module lists in ``_optional_state`` may be absent (it then
        keeps its value): BatchNorm's ``num_batches_tracked``, which state
        dicts saved before session 14 do not have."""
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        optional = {f"{p}.{n}" if p else n for p, m in self.named_modules()
                    for n in getattr(m, "_optional_state", ())}
        missing = [k for k in own if k not in state and k not in optional]
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

    def save(self, path):
        """Save the state dict to ``path`` (a path or a binary file object):
        the same as ``tg.save(self.state_dict(), path)``, so the name is kept
        as given and nothing is pickled."""
        from ..serialization import save
        save(self.state_dict(), path)

    def load(self, path, strict: bool = True):
        """Load a state dict saved with ``save`` (or ``tg.save``); a plain
        ``.npz`` of arrays named like the state dict (what ``save`` wrote
        before ``tg.save`` existed) loads too. Returns the module."""
        from ..serialization import load
        try:
            state = load(path)
        except ValueError as e:
            if "an .npz without a manifest" not in str(e):
                raise
            if hasattr(path, "seek"):
                path.seek(0)
            with np.load(path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        if not isinstance(state, dict):
            raise ValueError(f"{type(self).__name__}.load: the file holds a "
                             f"{type(state).__name__}, not a state dict")
        self.load_state_dict(state, strict=strict)
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
        if self._forward_hooks:  # a copy: a hook may remove itself
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


def _typename(v) -> str:
    return type(v).__name__


class _ListContainer(Module):
    """Shared code of ModuleList and ParameterList: the items live in
    ``_modules`` or ``_parameters`` under the keys "0", "1", ..., renumbered
    after an insertion or a deletion (as PyTorch does), so ``state_dict``
    names stay ``layers.0.weight``, ``layers.1.weight``, ..."""

    _store = "_modules"

    def __init__(self, items=None):
        super().__init__()
        if items is not None:
            self.extend(items)

    # subclasses turn an accepted value into what is stored, or raise TypeError
    def _convert(self, value, where: str):
        raise NotImplementedError

    def _items(self) -> list:
        return list(self.__dict__[self._store].values())

    def _rebuild(self, items: list):
        store = self.__dict__[self._store]
        store.clear()
        for i, v in enumerate(items):
            store[str(i)] = v
        self._mark_unnamed()

    def _index(self, i, where: str) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"{type(self).__name__}.{where}: indices must be integers or slices, "
                            f"not {_typename(i)}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {int(i)} is out of range for "
                             f"{n} item{'s' if n != 1 else ''}")
        return int(i) % n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return type(self)(self._items()[i])
        return self.__dict__[self._store][str(self._index(i, "__getitem__"))]

    def __setitem__(self, i, value):
        i = self._index(i, "__setitem__")
        self.__dict__[self._store][str(i)] = self._convert(value, "__setitem__")
        self._mark_unnamed()

    def __len__(self):
        return len(self.__dict__[self._store])

    def __iter__(self):
        return iter(self._items())

    def __iadd__(self, items):
        return self.extend(items)

    def append(self, value):
        """Add one item at the end; returns the container."""
        self.__dict__[self._store][str(len(self))] = self._convert(value, "append")
        self._mark_unnamed()
        return self

    def extend(self, items):
        """Add the items of an iterable at the end; returns the container."""
        try:
            items = list(items)
        except TypeError:
            raise TypeError(f"{type(self).__name__}.extend: expected an iterable, got "
                            f"{_typename(items)}") from None
        converted = [self._convert(v, "extend") for v in items]  # all or nothing
        for v in converted:
            self.__dict__[self._store][str(len(self))] = v
        self._mark_unnamed()
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} is a container, not a layer: it has no forward(). Use its "
            f"items in your own forward (e.g. `for layer in self.layers: x = layer(x)`), or use "
            f"nn.Sequential to chain modules")


class ModuleList(_ListContainer):
    """A list of modules whose parameters are registered with the module that
    holds the list (a plain Python list would hide them from ``parameters()``,
    ``state_dict()``, ``train()``/``eval()`` and ``zero_grad()``).

    Indexing (negative indices, slices), ``append``, ``extend``, ``insert``,
    ``pop``, ``del``, ``+=``, ``len`` and iteration work as on a list; the
    items are renumbered so that their names stay ``0, 1, 2, ...``. Anything
    that is not a Module raises ``TypeError``.

    >>> import tapegrad as tg
    >>> layers = tg.nn.ModuleList([tg.nn.Linear(4, 4) for _ in range(3)])
    >>> layers.append(tg.nn.Linear(4, 2))
    ModuleList(...)
    >>> len(layers), [n for n, _ in layers.named_parameters()][-2:]
    (4, ['3.weight', '3.bias'])
    >>> x = tg.zeros(5, 4)
    >>> for layer in layers:
    ...     x = layer(x)
    >>> x.shape
    (5, 2)
    """

    _store = "_modules"

    def _convert(self, value, where):
        if not isinstance(value, Module):
            hint = (" (a tensor belongs in nn.ParameterList, or register it as a Parameter)"
                    if isinstance(value, Tensor) else "")
            raise TypeError(f"ModuleList.{where}: expected a Module, got {_typename(value)}{hint}")
        return value

    def __delitem__(self, i):
        items = self._items()
        if isinstance(i, slice):
            del items[i]
        else:
            del items[self._index(i, "__delitem__")]
        self._rebuild(items)

    def __add__(self, other):
        if not isinstance(other, ModuleList):
            return NotImplemented
        return ModuleList(self._items() + other._items())

    def insert(self, index: int, module: Module):
        """Insert ``module`` before ``index`` (as ``list.insert``)."""
        items = self._items()
        items.insert(index, self._convert(module, "insert"))
        self._rebuild(items)

    def pop(self, index: int = -1) -> Module:
        """Remove and return the module at ``index`` (the last by default)."""
        m = self[index]
        del self[index]
        return m


class ParameterList(_ListContainer):
    """A list of parameters registered with the module that holds it.

    A plain ``Tensor`` is stored as a ``Parameter`` made from it (a copy, with
    ``requires_grad=True``, as PyTorch wraps it); anything else raises
    ``TypeError``. The parameters are named ``0, 1, 2, ...``.

    >>> import tapegrad as tg
    >>> class Poly(tg.nn.Module):
    ...     def __init__(self, degree):
    ...         super().__init__()
    ...         self.coef = tg.nn.ParameterList([tg.nn.Parameter(tg.zeros(())) for _ in range(degree + 1)])
    ...     def forward(self, x):
    ...         return sum(c * x ** k for k, c in enumerate(self.coef))
    >>> [n for n, _ in Poly(2).named_parameters()]
    ['coef.0', 'coef.1', 'coef.2']
    """

    _store = "_parameters"

    def _convert(self, value, where):
        if isinstance(value, Parameter):
            return value
        if isinstance(value, Tensor):
            return Parameter(value)
        raise TypeError(f"ParameterList.{where}: expected a Parameter or a Tensor, got "
                        f"{_typename(value)}")

    def __repr__(self):
        return f"ParameterList({_param_lines(self._parameters.items())})"


def _param_lines(items) -> str:
    lines = [f"  ({k}): Parameter of shape {tuple(p.shape)}, dtype {p.dtype}" for k, p in items]
    return "\n" + "\n".join(lines) + "\n" if lines else ""


class _DictContainer(Module):
    """Shared code of ModuleDict and ParameterDict: an ordered mapping from
    string keys to registered items (insertion order is kept)."""

    _store = "_modules"

    def __init__(self, items=None):
        super().__init__()
        if items is not None:
            self.update(items)

    def _convert(self, value, key):
        raise NotImplementedError

    def __getitem__(self, key: str):
        return self.__dict__[self._store][key]

    def __setitem__(self, key: str, value):
        _check_child_name(self, key, "key")
        value = self._convert(value, key)
        for d in ("_modules", "_parameters", "_buffers"):
            if d != self._store:
                self.__dict__[d].pop(key, None)
        self.__dict__[self._store][key] = value  # a replaced key keeps its place
        self._mark_unnamed()

    def __delitem__(self, key: str):
        del self.__dict__[self._store][key]
        self._mark_unnamed()

    def __len__(self):
        return len(self.__dict__[self._store])

    def __iter__(self):
        return iter(list(self.__dict__[self._store]))

    def __contains__(self, key) -> bool:
        return key in self.__dict__[self._store]

    def keys(self):
        """The keys, in insertion order."""
        return self.__dict__[self._store].keys()

    def values(self):
        """The items, in insertion order."""
        return self.__dict__[self._store].values()

    def items(self):
        """(key, item) pairs, in insertion order."""
        return self.__dict__[self._store].items()

    def get(self, key: str, default=None):
        return self.__dict__[self._store].get(key, default)

    def pop(self, key: str):
        """Remove ``key`` and return its item."""
        v = self[key]
        del self[key]
        return v

    def clear(self):
        """Remove every item."""
        self.__dict__[self._store].clear()
        self._mark_unnamed()

    def update(self, items):
        """Add or replace items from a mapping or from an iterable of
        (key, item) pairs."""
        if isinstance(items, (dict, _DictContainer)):
            pairs = list(items.items())
        else:
            try:
                pairs = list(items)
            except TypeError:
                raise TypeError(f"{type(self).__name__}.update: expected a mapping or an iterable "
                                f"of (key, value) pairs, got {_typename(items)}") from None
            for j, pair in enumerate(pairs):
                if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
                    raise ValueError(f"{type(self).__name__}.update: element #{j} of the sequence "
                                     f"is not a (key, value) pair: {pair!r}")
        for k, v in pairs:  # validate everything before changing anything
            _check_child_name(self, k, "key")
            self._convert(v, k)
        for k, v in pairs:
            self[k] = v
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} is a container, not a layer: it has no forward(). Look up "
            f"its items in your own forward (e.g. `self.heads[name](x)`)")


class ModuleDict(_DictContainer):
    """A dict of modules (string keys, insertion order kept) whose parameters
    are registered with the module that holds it. Keys follow PyTorch's rules:
    strings, not empty, without ``.``, and not the name of an existing
    attribute (``"train"``, ``"keys"`` ...) -- ``KeyError`` otherwise; values
    that are not Modules raise ``TypeError``.

    >>> import tapegrad as tg
    >>> acts = tg.nn.ModuleDict({"relu": tg.nn.ReLU(), "tanh": tg.nn.Tanh()})
    >>> acts["lin"] = tg.nn.Linear(2, 2)
    >>> list(acts.keys()), [n for n, _ in acts.named_parameters()]
    (['relu', 'tanh', 'lin'], ['lin.weight', 'lin.bias'])
    >>> acts["tanh"](tg.zeros(2)).tolist()
    [0.0, 0.0]
    """

    _store = "_modules"

    def _convert(self, value, key):
        if not isinstance(value, Module):
            raise TypeError(f"ModuleDict[{key!r}]: expected a Module, got {_typename(value)}")
        return value


class ParameterDict(_DictContainer):
    """A dict of parameters (string keys, insertion order kept) registered
    with the module that holds it; a plain Tensor is stored as a Parameter
    made from it (a copy), anything else raises ``TypeError``.

    >>> import tapegrad as tg
    >>> pd = tg.nn.ParameterDict({"scale": tg.nn.Parameter(tg.ones(3))})
    >>> pd["shift"] = tg.zeros(3)
    >>> [(n, p.requires_grad) for n, p in pd.named_parameters()]
    [('scale', True), ('shift', True)]
    """

    _store = "_parameters"

    def _convert(self, value, key):
        if isinstance(value, Parameter):
            return value
        if isinstance(value, Tensor):
            return Parameter(value)
        raise TypeError(f"ParameterDict[{key!r}]: expected a Parameter or a Tensor, got "
                        f"{_typename(value)}")

    def __repr__(self):
        return f"ParameterDict({_param_lines(self._parameters.items())})"

class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


def _activation(name, fn, doc, **params):
    """A Module class applying ``fn`` elementwise.  ``params`` are its
    constructor arguments with their defaults, in PyTorch's order: stored as
    attributes, passed to ``fn`` as keywords and shown by ``extra_repr`` as
    PyTorch shows them.  ``inplace`` (PyTorch's flag) is accepted and shown
    but not passed: the result is computed out of place (the same values;
    the input is left unchanged)."""
    names = list(params)
    passed = [k for k in names if k != "inplace"]

    if passed:
        def forward(self, x):
            return fn(x, **{k: getattr(self, k) for k in passed})
    else:  # ReLU, Tanh, ...: no dict built per call
        def forward(self, x):
            return fn(x)
    attrs = {"forward": forward, "__doc__": doc}
    if names:
        def __init__(self, *args, **kwargs):
            Module.__init__(self)
            if len(args) > len(names):
                raise TypeError(f"{name}() takes at most {len(names)} arguments ({len(args)} given)")
            values = dict(params, **dict(zip(names, args)))
            for k, v in kwargs.items():
                if k not in params:
                    raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
                if k in names[:len(args)]:
                    raise TypeError(f"{name}() got multiple values for argument {k!r}")
                values[k] = v
            for k in names:
                setattr(self, k, values[k])

        def extra_repr(self):
            shown = [f"{k}={getattr(self, k)!r}" for k in names if k != "inplace"]
            if getattr(self, "inplace", False):
                shown.append("inplace=True")
            return ", ".join(shown)
        attrs.update(__init__=__init__, extra_repr=extra_repr)
    return type(name, (Module,), attrs)


ReLU = _activation("ReLU", _C.relu, "max(x, 0), elementwise.")
Sigmoid = _activation("Sigmoid", _C.sigmoid, "1 / (1 + exp(-x)), elementwise.")
Tanh = _activation("Tanh", _C.tanh, "tanh(x), elementwise.")
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
    """2-D convolution over (N, C, H, W) inputs; weight (out, in/groups, kh, kw).

    PyTorch's arguments: ``stride``, ``padding`` (an int, a pair, ``'same'``,
    ``'valid'``), ``dilation``, ``groups``, ``bias`` (only ``padding_mode='zeros'``).
    Initialisation as PyTorch (kaiming-uniform with a = sqrt(5)): weight and
    bias uniform in (-k, k), k = 1/sqrt(in/groups * kh * kw).

    >>> import tapegrad as tg
    >>> conv = tg.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
    >>> conv
    Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=2)
    >>> conv(tg.ones(1, 4, 9, 9)).shape
    (1, 8, 9, 9)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        Conv2d._check_args(type(self).__name__, in_channels, out_channels, groups, padding, padding_mode)
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = (kh, kw), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
        self.groups, self.padding_mode = groups, padding_mode
        k = 1.0 / math.sqrt(in_channels // groups * kh * kw)
        dt = dtype or _C.float32
        self.weight = Parameter(init._uniform((out_channels, in_channels // groups, kh, kw), -k, k, dt))
        self.bias = Parameter(init._uniform((out_channels,), -k, k, dt)) if bias else None
        if not bias:
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return Conv2d._repr(self)

    @staticmethod
    def _check_args(cls, in_channels, out_channels, groups, padding, padding_mode):
        """PyTorch's constructor checks of the convolution modules."""
        if groups <= 0:
            raise ValueError(f"{cls}: groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{cls}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{cls}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"{cls}: padding must be 'same', 'valid' or ints, got {padding!r}")
        if padding_mode != "zeros":
            raise ValueError(f"{cls}: padding_mode {padding_mode!r} is not supported (only 'zeros'; "
                             f"pad the input with tg.pad first)")

    @staticmethod
    def _repr(m):
        """PyTorch's extra_repr of the convolution modules: the non-default settings only."""
        n = len(m.kernel_size)
        s = f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}"
        if m.padding != (0,) * n:
            s += f", padding={m.padding}"
        if m.dilation != (1,) * n:
            s += f", dilation={m.dilation}"
        if getattr(m, "output_padding", (0,) * n) != (0,) * n:
            s += f", output_padding={m.output_padding}"
        if m.groups != 1:
            s += f", groups={m.groups}"
        if m.bias is None:
            s += ", bias=False"
        return s


class _Pool2d(Module):
    """Pooling over (N, C, H, W) windows; the stride defaults to the window."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode


class MaxPool2d(_Pool2d):
    """Max pooling over (N, C, H, W), with PyTorch's arguments.

    >>> import tapegrad as tg
    >>> pool = tg.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    >>> y, idx = pool(tg.randn(1, 2, 6, 6))
    >>> y.shape, idx.dtype == tg.int64
    ((1, 2, 4, 4), True)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """Average pooling over (N, C, H, W), with PyTorch's arguments.

    >>> import tapegrad as tg
    >>> tg.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)(tg.ones(1, 1, 5, 5)).tolist()
    [[[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share: statistics per channel (axis
    1) over every other axis."""

    _shapes = ""  # the input shapes accepted, for the error message
    _ndims = ()
    _optional_state = ("num_batches_tracked",)  # older state dicts lack it

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
        # batches seen in training (PyTorch's buffer of the same name, so
        # state dicts have the same keys); momentum=None averages over them
        self.register_buffer("num_batches_tracked", _C.tensor(0, dtype=_C.int64))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.weight is not None}")

    def forward(self, x):
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input of shape "
                             f"{self._shapes.format(C=self.num_features)}, got {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        if self.training:
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            n = x.size // self.num_features
            with no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                if m is None:  # a cumulative average of the batches' statistics
                    m = 1.0 / int(self.num_batches_tracked.item())
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


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs.

    Training: normalise with the batch mean and (biased) variance and update
    the running statistics (unbiased variance, momentum 0.1 as PyTorch;
    ``momentum=None``: the average over all batches so far, counted in
    ``num_batches_tracked``). Eval: use the running statistics. Built from
    ops, so its gradient comes from the tape."""

    _shapes = "(N, {C}) or (N, {C}, L)"
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images, (N, C, H, W): each channel normalised
    with its mean and (biased) variance over the batch and the positions,
    then scaled by ``weight`` and shifted by ``bias`` (1 and 0 at the start).

    Training: batch statistics, and the running statistics updated as
    PyTorch does (momentum 0.1, unbiased variance; ``momentum=None``: the
    average over all batches so far). Eval (``.eval()``): the
    running statistics. Built from ops (mean and var over axes (0, 2, 3),
    broadcasting), so its gradient comes from the tape and the tape shows
    each step.

    >>> import tapegrad as tg
    >>> bn = tg.nn.BatchNorm2d(3)
    >>> y = bn(tg.randn(4, 3, 5, 5))
    >>> [round(float(v), 4) + 0.0 for v in y.mean(axis=(0, 2, 3)).numpy()]
    [0.0, 0.0, 0.0]
    """

    _shapes = "(N, {C}, H, W)"
    _ndims = (4,)


class LayerNorm(Module):
    """Layer normalisation over the last dims (``normalized_shape``), one
    ``layer_norm`` op (``tg.nn.functional.layer_norm``); weight 1 and bias 0
    at the start, as PyTorch.

    >>> import tapegrad as tg
    >>> tg.nn.LayerNorm(4)(tg.randn(2, 4)).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_C.ones(*self.normalized_shape))
            if bias:
                self.bias = Parameter(_C.zeros(*self.normalized_shape))
            else:
                object.__setattr__(self, "bias", None)
        else:
            object.__setattr__(self, "weight", None)
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm: expected the last dims to be {self.normalized_shape}, "
                             f"got input shape {x.shape}")
        return _C.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


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
    """Softmax cross-entropy of logits (N, C) (or (C,), or (N, C, d1, ...)) and
    int64 class labels (N,) or class probabilities of the input's shape, with
    PyTorch's ``weight``, ``ignore_index`` and ``label_smoothing`` (see
    ``tg.cross_entropy``).

    Takes LOGITS, not probabilities: do not put a Softmax before it.

    >>> import tapegrad as tg
    >>> loss = tg.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0)
    >>> loss(tg.zeros(3, 4), tg.tensor([0, 1, 2])).item() > 0
    True
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return _C.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) (or (C,), or (N, C,
    d1, ...)) and int64 labels, with ``weight`` and ``ignore_index`` (see
    ``tg.nll_loss``).

    >>> import tapegrad as tg
    >>> tg.nn.NLLLoss()(tg.tensor([[-1.0, -2.0]]), tg.tensor([1])).item()
    2.0
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return _C.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, numerically stable, with PyTorch's
    ``weight`` and ``pos_weight`` (both broadcast to the input).

    >>> import tapegrad as tg
    >>> round(tg.nn.BCEWithLogitsLoss(pos_weight=tg.tensor([3.0]))(tg.zeros(2), tg.ones(2)).item(), 4)
    2.0794
    """

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return _C.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                   pos_weight=self.pos_weight)
