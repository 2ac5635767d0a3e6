"""Grad mode, the recording tape, Python-defined ops and VJP overrides."""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, Sequence

from . import _C
from ._C import Tensor, TapeEntry


class _GradMode:
    """Base of no_grad / enable_grad: a context manager and a decorator."""

    _mode = True

    def __enter__(self):
        self._prev = _C.set_grad_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Turn off recording: ops run but nothing goes on the tape.

    Use it for evaluation and for parameter updates.

    >>> import tapegrad as tg
    >>> w = tg.ones(2, requires_grad=True)
    >>> with tg.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block (also a decorator)."""

    _mode = True


class Tape:
    """Record every tape entry made inside a ``with`` block, in order.

    Entries are listed (``len(tape)``, ``tape[i].op``, iteration) for
    inspection, and ``tape.gradient(target, sources)`` returns gradients as
    TensorFlow's ``GradientTape`` does.

    >>> import tapegrad as tg
    >>> x = tg.tensor(3.0, requires_grad=True)
    >>> with tg.Tape() as tape:
    ...     y = x * x + x
    >>> [e.op for e in tape]
    ['mul', 'add']
    >>> tape.gradient(y, x).item()
    7.0
    """

    def __init__(self):
        self._rec = _C._Recorder()
        self._active = False

    def __enter__(self) -> "Tape":
        self._rec._begin()
        self._active = True
        return self

    def __exit__(self, *exc):
        self._rec._end()
        self._active = False
        return False

    def __len__(self) -> int:
        return len(self._rec)

    def __getitem__(self, i: int) -> TapeEntry:
        if isinstance(i, slice):
            return [self._rec[k] for k in range(*i.indices(len(self)))]
        return self._rec[i]

    def __iter__(self) -> Iterator[TapeEntry]:
        for i in range(len(self)):
            yield self._rec[i]

    @property
    def entries(self) -> list:
        """The recorded entries, oldest first."""
        return list(self)

    def gradient(self, target: Tensor, sources, output_gradients=None, retain_graph=True):
        """Gradients of ``target`` with respect to ``sources`` (a tensor, or a
        list/tuple/dict of tensors; the result has the same structure). The
        graph is kept (``retain_graph=True``) so several gradients can be asked."""
        if isinstance(sources, dict):
            keys = list(sources)
            gs = _C.grad(target, [sources[k] for k in keys], output_gradients, retain_graph=retain_graph)
            return dict(zip(keys, gs))
        single = isinstance(sources, Tensor)
        srcs = [sources] if single else list(sources)
        gs = _C.grad(target, srcs, output_gradients, retain_graph=retain_graph)
        return gs[0] if single else type(sources)(gs) if isinstance(sources, tuple) else list(gs)

    def table(self):
        """The entries as a table (see ``tg.inspect.TapeTable``)."""
        from ._display import TapeTable  # a lower module, loaded on first use (import time)
        return TapeTable(list(self))

    def _repr_html_(self):
        return self.table()._repr_html_()

    def __str__(self):
        return str(self.table())

    def __repr__(self):
        return f"<tg.Tape with {len(self)} entries>"


class FunctionCtx:
    """The ``ctx`` given to ``Function.forward`` and ``Function.backward``:
    save tensors with ``ctx.save_for_backward(*tensors)``, read them back as
    ``ctx.saved_tensors``; any other attribute can be stored on it too."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tuple(tensors)


class Function:
    """An op defined in Python, recorded on the C tape like a built-in op.

    Subclass it with two static methods and call ``apply``::

        class Square(tg.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return 2 * x * grad

        y = Square.apply(x)

    ``forward`` runs with recording off; ``backward`` receives the gradient of
    the output and returns one gradient per tensor input (None for inputs
    without one), written with tapegrad ops so that ``create_graph`` works.
    The entry works with the stepper, gradcheck and anomaly detection.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Function subclasses define backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        tensors = [a for a in args if isinstance(a, Tensor)]
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx.needs_input_grad = tuple(a.requires_grad if isinstance(a, Tensor) else False for a in args)
        with no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor, got {type(out).__name__}")
        if not any(t.requires_grad for t in tensors) or not _C.is_grad_enabled():
            return out
        n_args = len(args)
        # the tensors saved for backward, with their storage versions: an
        # in-place write before backward is an error, as for built-in ops
        saved = [(t, t._version) for t in ctx.saved_tensors if isinstance(t, Tensor)]

        def vjp(grad):
            for k, (t, version) in enumerate(saved):
                if t._version != version:
                    raise RuntimeError(
                        f"backward: tensor {k} of shape {t.shape} saved by {cls.__name__} "
                        f"(ctx.save_for_backward) was modified in place after it was saved "
                        f"(version {version}, now {t._version}); its gradient would be wrong. "
                        f"Use an out-of-place operation, or .clone() before modifying")
            grads = cls.backward(ctx, grad)
            if not isinstance(grads, (tuple, list)):
                grads = (grads,)
            grads = tuple(grads)
            if len(grads) == n_args and n_args != len(tensors):
                grads = tuple(grads[i] for i in positions)  # drop non-tensor args
            if len(grads) != len(tensors):
                raise ValueError(
                    f"{cls.__name__}.backward returned {len(grads)} gradients, expected "
                    f"{len(tensors)} (one per tensor input, None where there is none)")
            return grads

        return _C._custom_record(cls.__name__, tensors, out, vjp)


class override_vjp:
    """Make the tape use a Python function as one built-in op's VJP.

    ``fn(entry, grad_output)`` returns one gradient per input of the entry
    (None where there is none); ``entry.inputs`` and ``entry.saved`` give the
    tensors. Use it as a context manager (restores the previous VJP on exit)
    or call ``.enable()``/``.disable()``. A gradient of the wrong shape or
    dtype raises an error naming the op, the input and the expected shape.

    >>> import tapegrad as tg
    >>> def my_mul_vjp(entry, g):
    ...     a, b = entry.inputs
    ...     return g * b, g * a
    >>> with tg.override_vjp("mul", my_mul_vjp):
    ...     x = tg.tensor([2.0], requires_grad=True)
    ...     (x * x).sum().backward()
    >>> x.grad.tolist()
    [4.0]
    """

    def __init__(self, op: str, fn: Callable):
        self.op, self.fn = op, fn
        self._prevs = []  # what each enable() replaced: the same object may be entered twice

    def enable(self):
        self._prevs.append(_C._set_vjp_override(self.op, self.fn))
        return self

    def disable(self):
        """Restore the VJP that the matching ``enable()`` replaced (enable and
        disable nest: undo them in reverse order)."""
        if self._prevs:
            _C._set_vjp_override(self.op, self._prevs.pop())

    def __enter__(self):
        return self.enable()

    def __exit__(self, *exc):
        self.disable()
        return False
