"""Python-level parts of tapegrad.Tensor: printing, iteration, hooks, views
of the tape, pickling and copying.

This module is the one documented home of the Tensor methods written in
Python (docs/design.md, "One op, one place"): the type and every other method
are defined in C (csrc/python/tensor.c, and csrc/python/opbind.c for the
methods generated from the op registry), and these are attached to the C type
here, once, when tapegrad is imported.  No other module adds methods to
Tensor."""
from __future__ import annotations

import html

import numpy as np

from ._C import Tensor


def _values_text(t: Tensor) -> str:
    a = t.numpy()
    return np.array2string(a, separator=", ", prefix="tensor(", threshold=200, edgeitems=3,
                           precision=4 if a.dtype == np.float32 else 8)


def _repr(self: Tensor) -> str:
    parts = [f"shape={self.shape}", f"dtype={self.dtype}"]
    if self.grad_fn is not None:
        parts.append(f"grad_fn=<{self.grad_fn.op} #{self.grad_fn.seq}>")
    elif self.requires_grad:
        parts.append("requires_grad=True")
    if self.name:
        parts.append(f"name={self.name!r}")
    return f"tensor({_values_text(self)}, " + ", ".join(parts) + ")"


def _html(self: Tensor) -> str:
    def block(t):
        return f"<pre style='margin:0'>{html.escape(_values_text(t))}</pre>"
    rows = [("shape", str(self.shape)), ("dtype", str(self.dtype)),
            ("requires_grad", str(self.requires_grad))]
    if self.grad_fn is not None:
        rows.append(("grad_fn", f"{self.grad_fn.op} (tape entry #{self.grad_fn.seq})"))
    if self.name:
        rows.append(("name", self.name))
    meta = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
    out = (f"<div class='tapegrad-tensor'><b>Tensor</b>{block(self)}"
           f"<table style='font-size:90%'>{meta}</table>")
    if self.grad is not None:
        out += f"<div><b>grad</b>{block(self.grad)}</div>"
    return out + "</div>"


def _iter(self: Tensor):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    for i in range(self.shape[0]):
        yield self[i]


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook off."""

    def __init__(self, hooks: list, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


def _register_hook(self: Tensor, fn):
    """Call ``fn(grad)`` whenever backward computes this tensor's gradient;
    ``fn`` may return a replacement gradient of the same shape.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> h = x.register_hook(lambda g: g * 10)
    >>> (x * 3).sum().backward()
    >>> x.grad.tolist()
    [30.0, 30.0]
    """
    from . import _C
    if not self.requires_grad:
        raise RuntimeError("register_hook: the tensor does not require grad, so no gradient "
                           "will ever reach it")
    if not callable(fn):
        raise TypeError("register_hook: fn must be callable(grad)")
    hooks = _C._get_grad_hooks(self)
    if hooks is None:
        hooks = []
        _C._set_grad_hooks(self, hooks)
    hooks.append(fn)
    return RemovableHandle(hooks, fn)


def _format(self: Tensor, spec: str) -> str:
    if self.size == 1 and spec:
        return format(self.item(), spec)
    return repr(self) if not spec else format(self.numpy(), spec)


def _tape(self: Tensor):
    """The tape entries that lead to this tensor, oldest first, as a table
    (``tg.inspect.TapeTable``: HTML in Jupyter, aligned text in a terminal)."""
    from ._display import tape_of  # below the inspector: no arrow up a floor
    return tape_of(self)


def _backward_steps(self: Tensor, gradient=None, retain_graph=False, create_graph=False):
    """Iterate over the steps of backward: each item is a step record (see
    ``tg.inspect.BackwardStepper``). At the end every .grad is what
    ``backward()`` gives."""
    from .inspect import BackwardStepper
    stepper = BackwardStepper(self, gradient, retain_graph=retain_graph, create_graph=create_graph)
    yield from stepper


Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor._repr_html_ = _html
Tensor.__iter__ = _iter
Tensor.__format__ = _format
Tensor.register_hook = _register_hook
Tensor.tape = _tape
Tensor.backward_steps = _backward_steps
Tensor.__array_priority__ = 1000  # ndarray (op) tensor defers to Tensor's reflected operators

# NumPy's functions on tensors dispatch to the ops or refuse (never drop a gradient)
from . import _numpy_protocol  # noqa: E402
_numpy_protocol.attach()


# ---- copy and pickle ---------------------------------------------------------

def _rebuild_tensor(cls, values, requires_grad, name, grad, state):
    t = Tensor.__new__(cls, values, requires_grad=requires_grad)
    if name is not None:
        t.name = name
    if grad is not None:
        t.grad = grad
    if state:
        t.__dict__.update(state)
    return t


def _reduce_ex(self, protocol):
    """Pickle the values (a copy), and for a leaf its requires_grad, name and
    grad; the graph is not saved (a non-leaf comes back as a plain leaf)."""
    leaf = self.grad_fn is None
    grad = self.grad.numpy(force=True) if (leaf and self.grad is not None) else None
    state = getattr(self, "__dict__", None) or None
    return (_rebuild_tensor, (type(self), self.numpy(force=True), leaf and self.requires_grad,
                              self.name, grad, state))


def _deepcopy(self, memo):
    """A copy with its own memory; like PyTorch, only leaves can be deep-copied
    (a copy of a graph's inner tensor would silently lose its history)."""
    import copy
    if self.grad_fn is not None:
        raise RuntimeError("deepcopy: only tensors created by the user (graph leaves) support the "
                           "deepcopy protocol; this one is the output of "
                           f"'{self.grad_fn.op}'. Use t.detach() first")
    if id(self) in memo:
        return memo[id(self)]
    t = Tensor.__new__(type(self), self.numpy(force=True), requires_grad=self.requires_grad)
    memo[id(self)] = t
    if self.name is not None:
        t.name = self.name
    if self.grad is not None:
        t.grad = copy.deepcopy(self.grad, memo)
    state = getattr(self, "__dict__", None)
    if state:
        t.__dict__.update(copy.deepcopy(state, memo))
    return t


Tensor.__reduce_ex__ = _reduce_ex
Tensor.__deepcopy__ = _deepcopy


# DLPack export (tg.from_dlpack in interop.py is the import side)
def _dlpack(self, *args, **kwargs):
    # NumPy's capsule keeps the array alive, and the array keeps this tensor alive
    return self.numpy().__dlpack__(*args, **kwargs)


def _dlpack_device(self):
    return (1, 0)  # kDLCPU, device 0


Tensor.__dlpack__ = _dlpack
Tensor.__dlpack__.__doc__ = "DLPack export (CPU, zero-copy); see tg.from_dlpack."
Tensor.__dlpack_device__ = _dlpack_device


# NumPy's products and splits as methods (issue 19; the functions are in _npfuncs.py)
from . import _npfuncs  # noqa: E402

Tensor.dot = _npfuncs.dot
Tensor.cross = _npfuncs.cross
Tensor.diff = _npfuncs.diff
Tensor.hsplit = _npfuncs.hsplit
Tensor.vsplit = _npfuncs.vsplit
Tensor.dsplit = _npfuncs.dsplit


# PyTorch's view and expand (issue 19: the course scripts use them): reshape and
# broadcast_to under PyTorch's names, with PyTorch's promises (never a copy; -1 keeps a dim)
def _shape_args(who, shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{who}: sizes must be integers, got {s!r} (a dtype view is not supported)")
    return tuple(int(s) for s in shape)


def _view(self: Tensor, *shape):
    """PyTorch's ``view``: ``reshape`` that never copies.  A shape the
    strides cannot give without a copy (a transposed tensor flattened, say)
    raises ``RuntimeError``; ``reshape`` copies in that case.

    >>> tg.arange(6).view(2, -1).shape
    (2, 3)
    """
    shape = _shape_args("view", shape)
    y = self.reshape(*shape)
    if self.size and y.data_ptr != self.data_ptr:
        raise RuntimeError(f"view: shape {shape} is not compatible with the strides {self.strides} of a "
                           f"tensor of shape {self.shape} (it would need a copy); use .reshape(...) instead")
    return y


def _expand(self: Tensor, *sizes):
    """PyTorch's ``expand``: a broadcast view (``broadcast_to``) where ``-1``
    keeps the size of that dim, and new dims may be added in front.

    >>> tg.zeros(1, 3).expand(4, -1).shape
    (4, 3)
    """
    sizes = _shape_args("expand", sizes)
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of shape {self.shape}: the number "
                         f"of sizes must be at least its number of dims ({self.ndim})")
    out = []
    for i, s in enumerate(sizes):
        if s == -1:
            if i < lead:
                raise ValueError(f"expand: -1 is not allowed for the new leading dim {i} in {sizes}")
            s = self.shape[i - lead]
        out.append(s)
    return self.broadcast_to(tuple(out))


Tensor.view = _view
Tensor.expand = _expand
