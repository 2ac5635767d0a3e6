"""NumPy's own functions on tensors: they differentiate, or they refuse.

``Tensor.__array_ufunc__`` (NEP 13) and ``Tensor.__array_function__`` (NEP 18)
send a NumPy ufunc or function called with a tensor to the tapegrad op of
the same meaning, so that ``np.exp(x)``, ``np.sum(x, axis=0)``,
``np.concatenate([x, x])`` or ``np.maximum(x, 0)`` record on the tape like
``x.exp()`` does, and return a Tensor:

>>> x = tg.tensor([1.0, 2.0], requires_grad=True)
>>> y = np.exp(x)                       # tg.exp, on the tape
>>> np.sum(y).backward()
>>> x.grad.tolist() == np.exp([1.0, 2.0]).astype(np.float32).tolist()
True

A NumPy function with no tapegrad counterpart never drops a gradient in
silence: called on a tensor that requires grad it raises ``TypeError``
naming the function and the way out; on tensors that do not require grad it
computes in NumPy and returns what NumPy returns, as before. Functions whose
result carries no gradient (``np.allclose``, ``np.argmax``, ``np.shape``, ...)
always compute in NumPy on the values. :func:`dispatch_table` lists what
dispatches (the docs print it).
"""
from __future__ import annotations

import numpy as np

from . import _C
from ._C import Tensor

# NumPy ufunc name -> tapegrad function name, where they differ
_UFUNC_NAMES = {
    "subtract": "sub", "multiply": "mul", "divide": "div", "true_divide": "div",
    "power": "pow", "float_power": "pow", "negative": "neg", "absolute": "abs", "fabs": "abs",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
    "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "rint": "round",
    "equal": "eq", "not_equal": "ne", "less": "lt", "less_equal": "le", "greater": "gt",
    "greater_equal": "ge", "mod": "remainder", "invert": "bitwise_not",
}
# ufunc.reduce -> the reduction of the same meaning
_REDUCE_NAMES = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
                 "logical_and": "all", "logical_or": "any"}
# NumPy function name -> tapegrad function name, where they differ
_FUNCTION_NAMES = {"amax": "max", "amin": "min", "round_": "round", "around": "round"}
# where tapegrad spells a name two ways, the second is tried when the first is missing
_FALLBACK_NAMES = {"concatenate": "concat"}
# functions whose result carries no gradient: computed by NumPy on the values
_NO_GRADIENT = {
    "shape", "ndim", "size", "allclose", "isclose", "array_equal", "array_equiv", "argmax",
    "argmin", "argsort", "argwhere", "nonzero", "flatnonzero", "count_nonzero", "searchsorted",
    "result_type", "can_cast", "iscomplexobj", "isrealobj", "isscalar", "may_share_memory",
    "shares_memory", "all", "any", "isnan", "isinf", "isfinite", "isneginf", "isposinf",
    "sometrue", "alltrue", "bincount", "digitize", "histogram", "histogram_bin_edges",
    "array_repr", "array_str", "array2string", "save", "savez", "savez_compressed", "savetxt",
    "copyto", "unravel_index", "ravel_multi_index", "iscomplex", "isreal", "signbit",
}
# functions whose tapegrad namesake has a different meaning or signature
_NOT_THE_SAME = {"copy", "zeros_like", "ones_like", "empty_like", "full_like"}


def _tg():
    import tapegrad
    return tapegrad


def _lookup(name: str):
    """The tapegrad function called ``name``, or None."""
    tg = _tg()
    if name in ("linalg",):
        return None
    for n in (name, _FALLBACK_NAMES.get(name)):
        f = getattr(tg, n, None) if n else None
        if callable(f) and not isinstance(f, type):
            return f
    return None


def _walk(obj, fn):
    """Apply fn to every Tensor inside (nested lists/tuples of) obj."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_walk(o, fn) for o in obj)
    return obj


def _tensors(objs):
    out = []

    def visit(t):
        out.append(t)
        return t
    for o in objs:
        _walk(o, visit)
    return out


def _needs_grad(tensors) -> bool:
    return _C.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _values(obj):
    return _walk(obj, lambda t: t.numpy(force=True))


def _refuse(what: str, why: str):
    raise TypeError(
        f"{what}: {why}, and an input requires grad: NumPy would compute on the values and the "
        f"gradient would be lost. Use the tapegrad op (the table in docs/concepts/numpy.md lists "
        f"which NumPy names dispatch), or call it on x.detach().numpy() if no gradient should "
        f"flow.")


def _as_tensor(a):
    """A non-tensor operand of a ufunc, as a tensor (ndarrays and NumPy scalars;
    Python numbers stay numbers: the ops take them as they are)."""
    if isinstance(a, Tensor) or isinstance(a, (bool, int, float)):
        return a
    arr = np.asarray(a)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return _C.tensor(arr) if arr.ndim else arr.item()


def _operand(a):
    """A positional argument of a NumPy function: ndarrays (alone or in a
    list, as np.concatenate takes them) become tensors."""
    if isinstance(a, np.ndarray):
        return _as_tensor(a)
    if isinstance(a, (list, tuple)) and any(isinstance(o, Tensor) for o in a):
        return type(a)(_as_tensor(o) if isinstance(o, np.ndarray) else o for o in a)
    return a


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NEP 13: a NumPy ufunc called with a tensor."""
    tensors = _tensors(inputs) + _tensors(kwargs.get("out", ()) or ())
    grad = _needs_grad(tensors)
    what = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    fn = None
    if method == "__call__":
        fn = _lookup(_UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__))
        if ufunc.__name__ == "positive":
            fn = lambda x: x  # noqa: E731
    elif method == "reduce" and ufunc.__name__ in _REDUCE_NAMES:
        fn = _lookup(_REDUCE_NAMES[ufunc.__name__])
    unsupported = sorted(k for k, v in kwargs.items()
                         if not (k in ("axis", "keepdims") and method == "reduce")
                         and not (k == "dtype" and v is None)
                         and not (k == "casting" and v == "same_kind")
                         and not (k == "where" and v is True)
                         and not (k == "out" and (v is None or (isinstance(v, tuple)
                                                                and all(o is None for o in v)))))
    if fn is not None and not unsupported:
        if method == "reduce":
            kw = dict(kwargs)
            axis = kw.pop("axis", 0)
            kw.pop("dtype", None)
            kw.pop("out", None)
            return fn(inputs[0] if isinstance(inputs[0], Tensor) else _as_tensor(inputs[0]),
                      axis=axis, **kw)
        return fn(*[_as_tensor(a) for a in inputs])
    if grad:
        why = (f"the arguments {', '.join(f'{k}=' for k in unsupported)} are not supported on "
               f"tensors" if fn is not None else "tapegrad has no op for it")
        _refuse(what, why)
    if "out" in kwargs and _tensors(kwargs["out"] or ()):
        raise TypeError(f"{what}: out= cannot be a tapegrad tensor (write with x[...] = value "
                        f"or use the op's result)")
    args = [a.numpy(force=True) if isinstance(a, Tensor) else a for a in inputs]
    return getattr(ufunc, method)(*args, **kwargs)


def array_function(self, func, types, args, kwargs):
    """NEP 18: a NumPy function (not a ufunc) called with a tensor."""
    name = func.__name__
    module = getattr(func, "__module__", "") or ""
    what = f"np.{name}" if module in ("numpy", "numpy.core.fromnumeric") or \
        module.startswith("numpy._core") or module.startswith("numpy.core") else f"{module}.{name}"
    if name in _NO_GRADIENT:
        return func(*_values(args), **_values(kwargs))
    fn = None
    if module.endswith("linalg"):
        linalg = getattr(_tg(), "linalg", None)
        fn = getattr(linalg, name, None) if linalg is not None else None
        what = f"np.linalg.{name}"
    elif name not in _NOT_THE_SAME:
        fn = _lookup(_FUNCTION_NAMES.get(name, name))
    tensors = _tensors(args) + _tensors(kwargs.values())
    grad = _needs_grad(tensors)
    if fn is not None and not any(k in kwargs and kwargs[k] is not None for k in ("out",)):
        return fn(*[_operand(a) for a in args], **kwargs)
    if grad:
        _refuse(what, "out= is not supported on tensors" if fn is not None
                else "tapegrad has no op for it")
    return func(*_values(args), **_values(kwargs))


def dispatch_table():
    """[(NumPy name, tapegrad name or None)] for every NumPy ufunc and for
    the NumPy functions a course is likely to call, as this installation
    dispatches them (the docs print it)."""
    rows = []
    for name in sorted(n for n in dir(np) if isinstance(getattr(np, n), np.ufunc)):
        target = _UFUNC_NAMES.get(name, name)
        rows.append((f"np.{name}", target if (_lookup(target) or name == "positive") else None))
    for name in ("sum", "mean", "var", "std", "prod", "max", "min", "amax", "amin", "cumsum",
                 "cumprod", "reshape", "transpose", "swapaxes", "squeeze", "expand_dims",
                 "concatenate", "stack", "hstack", "vstack", "where", "clip", "dot", "tensordot",
                 "outer", "einsum", "sort", "flip", "roll", "tile", "repeat", "tril", "triu",
                 "diag", "diagonal", "trace", "pad", "broadcast_to", "split", "array_split",
                 "diff", "kron", "cross", "inner", "linspace", "take_along_axis",
                 # npfn: products and NumPy functions (issue 19); np.dot is tg.dot (NumPy's N-d
                 # rule), np.fmax/fmin/logaddexp2/deg2rad/rad2deg/radians/degrees are ufuncs (above)
                 "sinc", "hsplit", "vsplit", "dsplit", "dstack", "column_stack"):
        target = _FUNCTION_NAMES.get(name, name)
        found = _lookup(target)
        rows.append((f"np.{name}", found.__name__ if found is not None else None))
    linalg = getattr(_tg(), "linalg", None)
    for name in ("norm", "inv", "solve", "det", "slogdet", "cholesky", "qr", "svd", "eigh",
                 "pinv", "lstsq", "matrix_power", "cond"):
        rows.append((f"np.linalg.{name}", f"linalg.{name}" if linalg is not None
                     and hasattr(linalg, name) else None))
    return rows


def attach():
    Tensor.__array_ufunc__ = array_ufunc
    Tensor.__array_function__ = array_function
