"""Assertions for coursework tests, with feedback a student can act on.

The notebooks' test cells call these; each raises an ``AssertionError``
(:class:`CheckError`) whose message names what is wrong and where:

- :func:`assert_vjp_correct` checks a student's VJP rule for one op: it
  records a small graph, calls the rule on every entry of that op, checks
  the returned gradients' count, type, shape and dtype, gradchecks each
  entry with the rule installed (``tg.testing.check_entry``), compares with
  the built-in VJP, and compares the whole graph's gradients with the
  built-in ones. A failure names the tape entry (op and sequence number),
  the input, and the worst element with both values.
- :func:`assert_grads_close` compares named gradients (or parameters)
  computed by hand with the expected ones and names the first that differs
  and its worst element.

An exception raised by the student's own code (``NotImplementedError`` from
an unwritten exercise, a ``TypeError`` from a typo) is not caught: it
reaches the test cell unchanged, and the checker reports it as it is.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Mapping

import numpy as np

from .. import _C
from .._C import Tensor, TapeEntry
from ..autograd import Tape, no_grad, override_vjp

__all__ = ["CheckError", "assert_vjp_correct", "assert_grads_close", "example_graph",
           "GRAPH_OPS", "attention_case", "AttentionCase"]


class CheckError(AssertionError):
    """A coursework check failed. ``str(err)`` is the feedback; the
    attributes (``op``, ``seq``, ``input``, ``index``, ``yours``,
    ``expected``) are set when they apply, else None. ``seq`` is the
    entry's number in the test's graph, counted from 1 (not the process's
    sequence number), so that the same mistake gets the same message in
    ``check`` and ``grade``."""

    def __init__(self, message: str, op=None, seq=None, input=None, index=None, yours=None,
                 expected=None):
        super().__init__(message)
        self.op, self.seq, self.input, self.index = op, seq, input, index
        self.yours, self.expected = yours, expected


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------

def _shape(shape) -> str:
    shape = tuple(int(s) for s in shape)
    return f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"


def _num(x) -> str:
    return f"{float(x) + 0.0:.6g}"   # + 0.0: no "-0"


def _idx(index) -> str:
    return "()" if index == () else str(tuple(int(i) for i in index))


def _label(t: Tensor) -> str:
    """``b`` for a named tensor, else ``the output of #3 (matmul)`` or ``a constant``."""
    if t.name:
        return t.name
    if t.grad_fn is not None:
        return f"the output of #{_n(t.grad_fn.seq)} ({t.grad_fn.op})"
    return "a leaf" if t.requires_grad else "a constant"


#: entries are numbered from 1 in each test graph (the first entry's sequence
#: number minus one), so that ``check`` and ``grade`` show the same numbers
_SEQ_BASE = 0


def _n(seq) -> int:
    return int(seq) - _SEQ_BASE


#: the longest first line of a message: with "CheckError: " in front it stays under
#: the ~90 characters that ``nbgrader validate`` and one-line views keep
HEAD = 76


def _lines(head: str, full: str) -> str:
    """``full`` when its first line is short (``HEAD``), else the short
    ``head`` (what is wrong, in a few words) on a line of its own above it."""
    return full if len(full.split("\n")[0]) <= HEAD else f"{head}\n{full}"


def _head(fname: str, e: TapeEntry, i: int, rest: str) -> str:
    """The short form of :func:`_where` followed by ``rest``:
    ``mul_vjp on tape entry #1 (mul), input b: ...``, without ``(mul)`` when
    that is too long."""
    x = _label(e.inputs[i])
    line = f"{fname} on tape entry #{_n(e.seq)} ({e.op}), input {x}: {rest}"
    return line if len(line) <= HEAD else f"{fname} on tape entry #{_n(e.seq)}, input {x}: {rest}"


def _where(fname: str, e: TapeEntry, i: int) -> str:
    x = e.inputs[i]
    return (f"{fname} on tape entry #{_n(e.seq)} ({e.op}), input {i} ({_label(x)}, shape "
            f"{_shape(x.shape)})")


def _array(x, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().numpy().astype(np.float64)
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckError(f"{what} is a {type(x).__name__}, expected a tensor, array or number") \
            from None


def _worst(a: np.ndarray, b: np.ndarray, rtol: float, atol: float):
    """(index, number of bad elements, max |a - b|) of the worst element of a vs b."""
    diff = np.abs(a - b)
    bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return None, 0, float(np.nanmax(diff)) if diff.size else 0.0
    excess = np.where(bad, np.where(np.isfinite(diff), diff, np.inf), -1.0)
    index = np.unravel_index(int(np.argmax(excess)), a.shape) if a.ndim else ()
    return tuple(int(i) for i in index), int(bad.sum()), float(np.nanmax(np.where(bad, diff, 0)))


def _ratio(a: np.ndarray, e: np.ndarray) -> str:
    """``"; yours is 1/5 of the expected"`` when ``a`` is a constant multiple
    (not 0 or 1) of ``e``: a mean for a sum, a missing factor n, a sign."""
    if a.shape != e.shape or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(e).all()):
        return ""
    ee = float((e * e).sum())
    if ee == 0.0:
        return ""
    c = float((a * e).sum()) / ee
    if abs(c) < 1e-12 or abs(c - 1.0) < 1e-6 or not np.allclose(a, c * e, rtol=1e-6, atol=1e-9):
        return ""
    sign = "-" if c < 0 else ""
    n, inv = round(abs(c)), round(1.0 / abs(c))
    if abs(c) == 1.0 or (n >= 1 and abs(abs(c) - n) < 1e-6 * n):
        what = "minus the expected (a sign error?)" if c == -1 else f"{sign}{n} times the expected"
    elif inv >= 2 and abs(1.0 / abs(c) - inv) < 1e-6 * inv:
        what = f"{sign}1/{inv} of the expected"
    else:
        what = f"{c:.4g} times the expected"
    return f"; yours is {what}"


# ---------------------------------------------------------------------------
# assert_grads_close
# ---------------------------------------------------------------------------

def _as_named(x, names):
    if isinstance(x, Mapping):
        return dict(x)
    if isinstance(x, (list, tuple)):
        names = names or [f"#{i}" for i in range(len(x))]
        if len(names) != len(x):
            raise CheckError(f"expected {len(names)} values, got {len(x)}")
        return dict(zip(names, x))
    return {(names[0] if names else "the value"): x}


def _diagnosis(a: np.ndarray, e: np.ndarray, mistakes: Mapping, rtol: float,
               atol: float) -> str:
    """What a wrong ``a`` looks like next to the expected ``e``, in a few
    words (or ""): one of the caller's named ``mistakes`` (description ->
    the value that mistake gives), a constant multiple, the transpose, or
    non-zero entries where the expected value is exactly 0 (a mask)."""
    if a.ndim == 0:
        return ""
    for desc, m in (mistakes or {}).items():
        try:
            m = np.asarray(m, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if (m.shape == a.shape and np.allclose(a, m, rtol=rtol, atol=atol)
                and not np.allclose(m, e, rtol=rtol, atol=atol)):
            return f"yours is {desc}"
    ratio = _ratio(a, e)
    if ratio:
        return ratio[2:]
    if (a.ndim == 2 and a.shape[0] == a.shape[1]
            and np.allclose(a, e.T, rtol=rtol, atol=atol)):
        return "yours is its transpose"
    # masked entries: the only errors are at exact zeros of e, or most of them leak
    zero = e == 0
    leak = zero & ~np.isclose(a, 0.0, rtol=0.0, atol=atol)
    rest_ok = np.allclose(a[~zero], e[~zero], rtol=rtol, atol=atol)
    if leak.any() and (~zero).any() and (rest_ok or 2 * leak.sum() >= max(zero.sum(), 2)):
        index = tuple(int(i) for i in np.argwhere(leak)[0])
        n = int(leak.sum())
        return f"{n} entr{'ies' if n > 1 else 'y'} should be 0, e.g. {_idx(index)} (masked?)"
    return ""


def assert_grads_close(actual, expected, *, rtol: float = 1e-5, atol: float = 1e-8,
                       names=None, what: str = "the gradient of", mistakes=None) -> None:
    """Assert that named gradients (or parameters) equal the expected ones.

    ``actual`` and ``expected`` are dicts ``name -> tensor/array/number``
    (or two sequences, named ``#0, #1, ...`` or by ``names``, or two single
    values). Every expected name must be in ``actual`` with the same shape
    and values close in NumPy's sense (``|a - e| <= atol + rtol |e|``). The
    first mismatch raises :class:`CheckError` naming it (``what`` + name,
    e.g. "the gradient of W1"), the worst index, both values and how many
    elements differ; a shape mismatch names both shapes (with a hint when
    the shapes are transposes of each other or differ only by size-1 axes).

    When the wrong values have a recognisable pattern, the message's first
    line says so in a few words (short enough for nbgrader's feedback) and
    the second gives the worst element (otherwise a message whose line is
    longer than ``HEAD`` characters starts with a short line of its own: what
    is wrong and where): a constant multiple of the expected
    ("yours is 1/5 of the expected"), the transpose of a square expected
    value, non-zero entries where the expected value is exactly 0 (a causal
    mask's entries), or one of ``mistakes``: ``{name: {description: value}}``,
    the values that known mistakes give, e.g. ``{"dK": {"dS @ Q (use dS.T)":
    dS @ Q}}`` gives "the gradient of dK is wrong: yours is dS @ Q (use dS.T)".

    >>> import numpy as np
    >>> from tapegrad.coursework import assert_grads_close
    >>> assert_grads_close({"w": [2.0, 4.0]}, {"w": np.array([2.0, 4.0])})
    >>> try:
    ...     assert_grads_close({"w": [2.0, 5.0]}, {"w": np.array([2.0, 4.0])})
    ... except AssertionError as err:
    ...     print(err)
    the gradient of w is wrong at index (1,)
    the gradient of w is wrong at index (1,): yours 5, expected 4 (1 of 2 elements differ, max |difference| 1)
    """
    act = _as_named(actual, names)
    exp = _as_named(expected, names)
    for name, e in exp.items():
        label = f"{what} {name}"
        if name not in act:
            have = ", ".join(map(str, act)) or "nothing"
            raise CheckError(_lines(f"{label}: your result has no entry {name!r}",
                                    f"{label}: your result has no entry {name!r} (it has: {have})"),
                             input=name)
        a = act[name]
        if a is None:
            raise CheckError(f"{label} is None in your result", input=name)
        a = _array(a, f"{label} (yours)")
        e = _array(e, f"{label} (expected)")
        if a.shape != e.shape:
            hint = ""
            if a.ndim == 2 and a.T.shape == e.shape:
                hint = " (transposed?)"
            elif a.size == e.size:
                hint = " (same number of elements: a missing or extra axis of size 1?)"
            raise CheckError(_lines(f"{label} has the wrong shape",
                                    f"{label} has shape {_shape(a.shape)}, expected "
                                    f"{_shape(e.shape)}{hint}"), input=name)
        index, nbad, maxd = _worst(a, e, rtol, atol)
        if index is not None:
            where = (f" at index {_idx(index)}" if a.ndim else "")
            count = (f" ({nbad} of {a.size} elements differ, max |difference| {_num(maxd)})"
                     if a.ndim else "")
            why = _diagnosis(a, e, (mistakes or {}).get(name) or {}, rtol, atol)
            full = (f"{label} is wrong{where}: yours {_num(a[index])}, expected "
                    f"{_num(e[index])}{count}{_ratio(a, e)}")
            # the first line: the pattern when there is one, else what and where
            msg = f"{label} is wrong: {why}\n{full}" if why else _lines(f"{label} is wrong{where}", full)
            raise CheckError(msg, input=name, index=index, yours=float(a[index]),
                             expected=float(e[index]))


# ---------------------------------------------------------------------------
# example graphs, one per op
# ---------------------------------------------------------------------------

def _away_from(rng, shape, lo):
    """Standard normal values with |x| >= lo (no kinks within finite-difference reach)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < lo, np.sign(x + 1e-300) * lo + x, x)


def _const(a):
    return _C.tensor(a, dtype=_C.float64)


def example_graph(op: str, seed: int = 0, variant: int = 0):
    """A small float64 graph that uses ``op``: ``(fn, inputs)``.

    ``fn(**leaves)`` returns a scalar loss; ``inputs`` maps names to NumPy
    arrays (float arrays become leaves that require grad, int arrays labels)
    or to tensors used as they are (constants). ``variant`` 1 and 2 give
    other shapes (broadcasting for add, keepdims, a single row); for sub,
    mul and div, variants 0-2 have same-shape inputs and 3-4 broadcast. The ops covered are listed in :data:`GRAPH_OPS`.

    >>> from tapegrad.coursework import example_graph
    >>> fn, inputs = example_graph("add")
    >>> sorted(inputs), inputs["b"].shape
    (['a', 'b', 'w'], (4,))
    """
    rng = np.random.default_rng(seed * 7919 + variant)
    r = rng.standard_normal
    v = variant
    if op in ("add", "sub", "mul", "div"):
        if op == "add":            # variant 0 is a bias: the course's broadcasting example
            shapes = [((3, 4), (4,)), ((3, 4), (3, 4)), ((3, 1), (1, 4))][v % 3]
        else:                      # same shapes (the course's sub/mul/div come before broadcasting)
            shapes = [((3, 4), (3, 4)), ((5,), (5,)), ((2, 3, 2), (2, 3, 2))][v % 3]
            if v >= 3:             # variants 3 and 4 broadcast
                shapes = [((3, 4), (4,)), ((3, 1), (1, 4))][(v - 3) % 2]
        a = r(shapes[0])
        b = (rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1.0, 1.0], shapes[1])
             if op == "div" else r(shapes[1]))
        out = np.broadcast_shapes(shapes[0], shapes[1])
        f = {"add": lambda a, b, w: ((a + b) * w).sum(), "sub": lambda a, b, w: ((a - b) * w).sum(),
             "mul": lambda a, b, w: ((a * b) * w).sum(), "div": lambda a, b, w: ((a / b) * w).sum()}[op]
        return f, {"a": a, "b": b, "w": _const(r(out))}
    if op in ("exp", "log", "tanh", "sigmoid", "relu", "sqrt", "neg", "abs"):
        shape = [(3, 4), (5,), (2, 3, 2)][v % 3]
        a = r(shape)
        if op in ("log", "sqrt"):
            a = rng.uniform(0.5, 2.0, shape)
        elif op in ("relu", "abs"):
            a = _away_from(rng, shape, 0.1)
        return (lambda a, w: (getattr(a, op)() * w).sum()), {"a": a, "w": _const(r(shape))}
    if op in ("sum", "mean"):
        axis, keep, shape = [(1, False, (3, 4)), (0, True, (3, 4)), ((0, 2), False, (2, 3, 4))][v % 3]
        a = r(shape)
        red = op
        w_shape = _C.zeros(*shape).sum(axis=axis, keepdims=keep).shape
        # the final .sum() is a second sum entry (over all axes)
        return (lambda a, w: (getattr(a, red)(axis=axis, keepdims=keep) * w).sum()), \
            {"a": a, "w": _const(r(w_shape))}
    if op == "matmul":
        n, k, m = [(3, 4, 5), (1, 6, 2), (4, 1, 3)][v % 3]
        return (lambda x, W, w: ((x @ W) * w).sum()), \
            {"x": r((n, k)), "W": r((k, m)), "w": _const(r((n, m)))}
    if op in ("softmax", "log_softmax"):
        shape = [(3, 5), (1, 4), (4, 2)][v % 3]
        f = getattr(_C, op)
        return (lambda z, w: (f(z, axis=1) * w).sum()), {"z": r(shape), "w": _const(r(shape))}
    if op == "cross_entropy":
        n, c = [(5, 4), (1, 3), (8, 10)][v % 3]
        return (lambda z, labels: _C.cross_entropy(z, labels)), \
            {"z": r((n, c)) * 2, "labels": rng.integers(0, c, n).astype(np.int64)}
    raise ValueError(f"example_graph: no example graph for op {op!r} (there are graphs for "
                     f"{', '.join(GRAPH_OPS)}); pass graph= and inputs= to assert_vjp_correct")


#: the ops :func:`example_graph` knows
GRAPH_OPS = ("add", "sub", "mul", "div", "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "neg",
             "abs", "sum", "mean", "matmul", "softmax", "log_softmax", "cross_entropy")


class AttentionCase:
    """One causal attention head on small float64 inputs, with the
    gradients of ``L = sum(Y * dY)`` from the tape and from finite
    differences: see :func:`attention_case`."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        if not all(hasattr(self, k) for k in ("X", "Wq")):  # built by hand, not attention_case
            return f"AttentionCase({', '.join(sorted(self.__dict__))})"
        return (f"AttentionCase(T={self.X.shape[0]}, d_model={self.X.shape[1]}, "
                f"d_k={self.Wq.shape[1]})")


def _attention_forward(X, Wq, Wk, Wv, M):
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    S = Q @ K.T / np.sqrt(Q.shape[1]) + M
    E = np.exp(S - S.max(axis=1, keepdims=True))
    P = E / E.sum(axis=1, keepdims=True)
    return Q, K, V, S, P, P @ V


def attention_case(seed: int = 0, T: int = 4, d_model: int = 3, d_k: int = 3) -> AttentionCase:
    """A causal attention head on float64 inputs, for coursework tests.

    With ``X`` of shape ``(T, d_model)``, ``Wq``, ``Wk``, ``Wv`` of shape
    ``(d_model, d_k)`` and the upstream gradient ``dY`` ``(T, d_k)`` drawn
    from ``seed``, the head
    ``Q = X Wq``, ``K = X Wk``, ``V = X Wv``, ``S = Q K^T / sqrt(d_k) + M``
    (``M`` is 0 on and below the diagonal, -inf above), ``P =
    softmax(S)`` by rows, ``Y = P V`` is recorded on the tape and
    ``L = sum(Y * dY)`` differentiated. The case holds the NumPy arrays
    (``X, Wq, Wk, Wv, dY, M, Q, K, V, S, P, Y``), ``grads`` (the tape's
    gradients of L: ``dP, dS, dQ, dK, dV, dWq, dWk, dWv``), ``fd`` (central
    finite differences of L for ``dWq, dWk, dWv``) and ``mistakes``: for
    each gradient, what the usual mistakes give (for
    ``assert_grads_close(..., mistakes=case.mistakes)``).

    >>> from tapegrad.coursework import attention_case
    >>> case = attention_case(seed=1, T=5)
    >>> case, case.grads["dS"].shape
    (AttentionCase(T=5, d_model=3, d_k=3), (5, 5))
    >>> float(abs(np.triu(case.grads["dS"], k=1)).max())   # nothing flows into the future
    0.0
    """
    rng = np.random.default_rng(10007 * seed + 31 * T + d_model * 7 + d_k)
    X = rng.standard_normal((T, d_model))
    # scaled so that the scores are of order 1: no row of P is one-hot
    Wq, Wk, Wv = (rng.standard_normal((d_model, d_k)) / np.sqrt(d_model) for _ in range(3))
    dY = rng.standard_normal((T, d_k))
    M = np.triu(np.full((T, T), -np.inf), k=1)
    t = {k: _C.tensor(v, dtype=_C.float64, requires_grad=True)
         for k, v in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv))}
    Xt, Mt, dYt = _const(X), _const(M), _const(dY)
    Q, K, V = Xt @ t["Wq"], Xt @ t["Wk"], Xt @ t["Wv"]
    S = Q @ K.T * (1.0 / np.sqrt(d_k)) + Mt
    P = _C.softmax(S, axis=-1)
    Y = P @ V
    L = (Y * dYt).sum()
    names = ("dP", "dS", "dQ", "dK", "dV", "dWq", "dWk", "dWv")
    got = _C.grad(L, [P, S, Q, K, V, t["Wq"], t["Wk"], t["Wv"]])
    grads = {n: g.numpy().astype(np.float64) for n, g in zip(names, got)}

    def loss(Wq, Wk, Wv):
        return float((_attention_forward(X, Wq, Wk, Wv, M)[-1] * dY).sum())

    fd, eps = {}, 1e-6
    w = {"Wq": Wq, "Wk": Wk, "Wv": Wv}
    for name in w:
        out = np.zeros_like(w[name])
        for i in np.ndindex(out.shape):
            plus = {k: v.copy() for k, v in w.items()}
            minus = {k: v.copy() for k, v in w.items()}
            plus[name][i] += eps
            minus[name][i] -= eps
            out[i] = (loss(**plus) - loss(**minus)) / (2 * eps)
        fd["d" + name] = out
    q, k, v, s, p, y = _attention_forward(X, Wq, Wk, Wv, M)
    g = grads
    r = np.sqrt(d_k)
    mistakes = {   # the first line of the feedback must stay under ~90 characters
        "dS": {"missing the factor P: masked ones leak":
               g["dP"] - (p * g["dP"]).sum(axis=1, keepdims=True),
               "P * dP: rowsum(P * dP) term missing": p * g["dP"],
               "summed over axis 0: rowsum is axis 1":
               p * (g["dP"] - (p * g["dP"]).sum(axis=0, keepdims=True))},
        "dV": {"P @ dY, use P.T @ dY (transpose)": p @ dY},
        "dQ": {"dS.T @ K, use dS @ K (no transpose)": g["dS"].T @ k / r,
               "missing the 1/sqrt(d_k) scale": g["dS"] @ k},
        "dK": {"dS @ Q: transposed, use dS.T @ Q": g["dS"] @ q / r,
               "missing the 1/sqrt(d_k) scale": g["dS"].T @ q},
        "dWq": {"X.T @ dK: that is dWk": X.T @ g["dK"]},
        "dWk": {"X.T @ dQ: that is dWq": X.T @ g["dQ"]},
    }
    return AttentionCase(X=X, Wq=Wq, Wk=Wk, Wv=Wv, dY=dY, M=M, Q=q, K=k, V=v, S=s, P=p, Y=y,
                         grads=grads, fd=fd, mistakes=mistakes)


def _leaves(inputs: Mapping) -> dict:
    out = {}
    for name, v in inputs.items():
        if isinstance(v, Tensor):
            out[name] = v
            continue
        a = np.asarray(v)
        if a.dtype.kind == "f":
            t = _C.tensor(a, dtype=_C.float64, requires_grad=True)
        else:
            t = _C.tensor(a.astype(np.int64))
        t.name = name
        out[name] = t
    return out


def _graph_grads(graph, inputs, op=None, fn=None):
    leaves = _leaves(inputs)
    ctx = override_vjp(op, fn) if fn is not None else contextlib.nullcontext()
    with ctx:
        loss = graph(**leaves)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("assert_vjp_correct: graph(**inputs) must return a scalar tensor")
        loss.backward()
    return {k: t.grad for k, t in leaves.items() if t.requires_grad}


# ---------------------------------------------------------------------------
# assert_vjp_correct
# ---------------------------------------------------------------------------

def _check_returned(fname: str, e: TapeEntry, grads) -> list:
    """The student's return value as a list with one item per input, or a
    CheckError naming what is wrong."""
    n = len(e.inputs)
    if isinstance(grads, (Tensor, np.ndarray)) or grads is None:
        grads = [grads]
    elif isinstance(grads, (tuple, list)):
        grads = list(grads)
    else:
        full = (f"{fname} returned a {type(grads).__name__} for tape entry #{_n(e.seq)} "
                f"({e.op}), expected {'a tensor' if n == 1 else f'a tuple of {n} tensors'}")
        raise CheckError(_lines(f"{fname} returned a {type(grads).__name__} for tape entry "
                                f"#{_n(e.seq)}, expected {'a tensor' if n == 1 else 'a tuple'}",
                                full), op=e.op, seq=_n(e.seq))
    if len(grads) != n:
        head = (f"{fname} returned {len(grads)} gradient{'s' * (len(grads) != 1)} for tape "
                f"entry #{_n(e.seq)} ({e.op}), expected {n}")
        raise CheckError(_lines(head, f"{head}: one per input "
                                f"({', '.join(_label(x) for x in e.inputs)}), None for an input "
                                f"that needs no gradient"), op=e.op, seq=_n(e.seq))
    for i, (g, x) in enumerate(zip(grads, e.inputs)):
        if not e.needs_grad[i]:
            continue
        where = _where(fname, e, i)
        if g is None:
            raise CheckError(_lines(_head(fname, e, i, "returned None, but it needs a gradient"),
                                    f"{where}: returned None, but this input needs a gradient"),
                             op=e.op, seq=_n(e.seq), input=i)
        if isinstance(g, np.ndarray):
            g = _C.tensor(g)
            grads[i] = g
        if not isinstance(g, Tensor):
            raise CheckError(_lines(_head(fname, e, i, f"returned a {type(g).__name__}, expected a tensor"),
                                    f"{where}: returned a {type(g).__name__}, expected a tensor "
                                    f"of shape {_shape(x.shape)}"), op=e.op, seq=_n(e.seq), input=i)
        if tuple(g.shape) != tuple(x.shape):
            hint = ""
            try:
                out = np.broadcast_shapes(tuple(g.shape), tuple(x.shape))
            except ValueError:
                out = None
            if out == tuple(g.shape) and g.ndim >= x.ndim:
                lead = g.ndim - x.ndim
                axes = tuple(range(lead)) + tuple(
                    lead + d for d, s in enumerate(x.shape) if s == 1 and g.shape[lead + d] != 1)
                hint = (f"; the input was broadcast along axes {axes} in the forward pass, so its "
                        f"gradient is the sum over those axes")
            elif g.ndim == 2 and tuple(g.shape)[::-1] == tuple(x.shape):
                hint = " (transposed?)"
            raise CheckError(_lines(_head(fname, e, i, f"shape {_shape(g.shape)}, expected {_shape(x.shape)}"),
                                    f"{where}: the gradient returned has shape {_shape(g.shape)}, "
                                    f"expected {_shape(x.shape)} (the input's shape){hint}"),
                             op=e.op, seq=_n(e.seq), input=i)
        if g.dtype != x.dtype:
            raise CheckError(_lines(_head(fname, e, i, f"dtype {g.dtype}, expected {x.dtype}"),
                                    f"{where}: the gradient returned has dtype {g.dtype}, expected "
                                    f"{x.dtype} (the input's dtype)"), op=e.op, seq=_n(e.seq), input=i)
    return grads


class CheckResults(list):
    """What :func:`assert_vjp_correct` returns: a list of ``check_entry``
    results. As the value of a notebook cell it prints them, one a line,
    instead of being the cell's result: nbgrader's autograde reads the result
    of a test cell as its partial-credit score (and warns when it is not a
    number), so a test cell that ends with a check shows no result."""

    def _ipython_display_(self):
        for r in self:
            print(r)


def assert_vjp_correct(op: str, fn: Callable, graph: Callable | None = None,
                       inputs: Mapping | None = None, *, variants=(0,), atol: float = 1e-5,
                       rtol: float = 1e-3, seed: int = 0, name: str | None = None) -> list:
    """Check a VJP rule ``fn(entry, grad_output)`` for the built-in op ``op``.

    On the graph ``graph(**inputs)`` (by default :func:`example_graph` of
    the op, for each of ``variants``), for every tape entry of ``op``:

    1. ``fn(entry, g)`` is called with a random upstream gradient ``g``; it
       must return one gradient per input (None for an input that needs
       none) with exactly the input's shape and dtype (summing over
       broadcast axes is the VJP's job here, although the engine would do it);
    2. ``tg.testing.check_entry(entry)`` gradchecks the entry with ``fn``
       installed by ``tg.override_vjp`` (finite differences);
    3. the result is compared with the op's built-in VJP;

    then the gradients of the whole graph with ``fn`` installed are compared
    with the built-in ones. The first failure raises :class:`CheckError`
    naming the tape entry (op, sequence number), the input and the worst
    element. Exceptions raised by ``fn`` itself propagate unchanged.

    Returns the ``check_entry`` results (one per entry checked), as a
    ``CheckResults`` list (printed, not shown as a value, in a notebook).

    >>> import tapegrad as tg
    >>> from tapegrad.coursework import assert_vjp_correct
    >>> def mul_vjp(entry, g):
    ...     a, b = entry.inputs
    ...     return g * b, g * a
    >>> [r.ok for r in assert_vjp_correct("mul", mul_vjp)]
    [True, True]
    >>> def wrong_mul_vjp(entry, g):
    ...     a, b = entry.inputs
    ...     return g * a, g * b
    >>> try:
    ...     assert_vjp_correct("mul", wrong_mul_vjp)
    ... except AssertionError as err:
    ...     print(err)
    wrong_mul_vjp on tape entry #... (mul), input ... wrong at index ...: your VJP gives ..., finite differences give ...
    """
    global _SEQ_BASE
    from ..testing import check_entry

    if not callable(fn):
        raise CheckError(f"the VJP for {op!r} must be a function fn(entry, grad_output), got "
                         f"{type(fn).__name__}")
    fname = name or getattr(fn, "__name__", None) or "your VJP"
    if fname == "<lambda>":
        fname = "your VJP"
    if graph is None:
        cases = [example_graph(op, seed, v) for v in variants]
    else:
        if inputs is None:
            raise TypeError("assert_vjp_correct: pass inputs= (name -> array) with graph=")
        cases = [(graph, inputs)]
    results = CheckResults()
    rng = np.random.default_rng(seed)
    record = None
    if _RECORD is not None:
        record = {"op": op, "seed": int(seed), "variants": [int(v) for v in variants],
                  "custom": graph is not None, "cases": []}
        _RECORD.append(record)
    for graph_fn, graph_inputs in cases:
        rec_entries = []
        if record is not None:
            record["cases"].append({"entries": rec_entries, "graph": None})
        leaves = _leaves(graph_inputs)
        with Tape() as tape:
            loss = graph_fn(**leaves)
        _SEQ_BASE = min((int(e.seq) for e in tape), default=1) - 1
        entries = [e for e in tape if e.op == op and any(e.needs_grad)]
        if not entries:
            raise ValueError(f"assert_vjp_correct: the graph records no {op!r} entry that needs a "
                             f"gradient (it records: {', '.join(e.op for e in tape)})")
        for e in entries:
            g = _C.tensor(rng.standard_normal(tuple(e.output_shape)), dtype=e.output_dtype)
            with no_grad():
                returned = fn(e, g)  # the student's code: exceptions propagate as they are
            grads = _check_returned(fname, e, returned)
            if _RECORD is not None:   # sealed grading: hand the student's gradients out
                rec_entries.append({"seq": int(e.seq), "grads": [
                    None if (not e.needs_grad[i] or gi is None) else _array(gi, "").tolist()
                    for i, gi in enumerate(grads)]})
            with override_vjp(op, fn):
                res = check_entry(e, atol=atol, rtol=rtol, seed=seed)
            if not res.ok:
                i = res.input
                hint = ""
                if 0 <= i < len(grads) and grads[i] is not None:
                    with no_grad():
                        ref = _C._builtin_vjp(e, g)[i]
                    if ref is not None:
                        hint = _ratio(_array(grads[i], "the gradient"), _array(ref, "the gradient"))
                head = _head(fname, e, i, hint[2:] or f"wrong at index {_idx(res.index)}")
                raise CheckError(_lines(
                    head, f"{_where(fname, e, i)}: wrong at index {_idx(res.index)}: your VJP gives "
                    f"{_num(res.analytic)}, finite differences give {_num(res.numeric)} "
                    f"(|difference| {res.worst_error:.3g} > {atol} + {rtol} * |numeric|){hint}"),
                    op=e.op, seq=_n(e.seq), input=i, index=res.index, yours=res.analytic,
                    expected=res.numeric)
            results.append(res)
            with no_grad():
                builtin = _C._builtin_vjp(e, g)
            for i, (mine, ref) in enumerate(zip(grads, builtin)):
                if not e.needs_grad[i] or ref is None:
                    continue
                a, b = _array(mine, "the gradient"), _array(ref, "the gradient")
                index, nbad, _ = _worst(a, b, 1e-6, 1e-9)
                if index is not None:
                    ratio = _ratio(a, b)
                    head = _head(fname, e, i, ratio[2:] or f"wrong at index {_idx(index)}")
                    raise CheckError(_lines(
                        head, f"{_where(fname, e, i)}: wrong at index {_idx(index)}: your VJP gives "
                        f"{_num(a[index])}, the built-in VJP gives {_num(b[index])} ({nbad} of "
                        f"{a.size} elements differ){ratio}"), op=e.op, seq=_n(e.seq), input=i, index=index,
                        yours=float(a[index]), expected=float(b[index]))
        del loss, tape, leaves
        mine = _graph_grads(graph_fn, graph_inputs, op, fn)
        if record is not None:
            record["cases"][-1]["graph"] = {
                k: None if v is None else _array(v, "").tolist() for k, v in mine.items()}
        ref = _graph_grads(graph_fn, graph_inputs)
        try:
            assert_grads_close(mine, ref, rtol=1e-6, atol=1e-9)
        except CheckError as err:
            first = str(err).split("\n")[0]
            raise CheckError(_lines(f"{fname} installed for {op!r}: {err.input} is wrong",
                                    f"{fname} installed for {op!r}: {first}")
                             + str(err)[len(first):], op=op, input=err.input,
                             index=err.index, yours=err.yours, expected=err.expected) from None
    return results


# ---------------------------------------------------------------------------
# sealed grading (see tapegrad.coursework.sealed): run in a fresh copy of this
# module inside the student's kernel
# ---------------------------------------------------------------------------

#: when a list, assert_vjp_correct appends what the student's rule returned
#: (as nested lists) so that the grader can judge it in its own process
_RECORD = None

_BUILTIN_NAMES = ("isinstance", "issubclass", "len", "type", "getattr", "setattr", "hasattr",
                  "callable", "float", "int", "bool", "str", "repr", "tuple", "list", "dict",
                  "set", "range", "zip", "enumerate", "any", "all", "sorted", "sum", "max", "min",
                  "abs", "iter", "next", "map", "super", "object", "print", "exec", "compile",
                  "__import__", "AssertionError", "Exception", "BaseException", "ValueError",
                  "TypeError", "NotImplementedError")
_WATCHED_MODULES = ("tapegrad", "tapegrad._C", "tapegrad.autograd", "tapegrad.testing",
                    "tapegrad._tensor", "numpy", "numpy.random", "contextlib")


def _signature(obj) -> str:
    """What identifies a function, class or value as the original: its type,
    name, identity and, for Python code, a hash of its bytecode."""
    import hashlib
    code = getattr(obj, "__code__", None) or getattr(getattr(obj, "__func__", None), "__code__",
                                                      None)
    h = ""
    if code is not None:
        h = hashlib.sha256(code.co_code + repr(code.co_names).encode()).hexdigest()[:12]
    return f"{type(obj).__qualname__}|{getattr(obj, '__qualname__', '')}|{id(obj):x}|{h}"


def _fingerprint(load: bool = False) -> dict:
    """``{name: short hash}`` of everything the checks rely on, looked up as
    the notebook's code would find it: the modules in ``sys.modules``
    (tapegrad, its C core, autograd, testing, NumPy), the attributes of their
    classes (``Tensor`` and ``TapeEntry`` methods), and a few builtins."""
    import builtins
    import hashlib
    import sys
    import types
    if load:  # before the notebook runs: what its code will find
        import importlib
        for modname in _WATCHED_MODULES:
            importlib.import_module(modname)
    out = {}

    def add(name, obj):
        out[name] = hashlib.sha256(_signature(obj).encode()).hexdigest()[:10]

    for modname in _WATCHED_MODULES:
        mod = sys.modules.get(modname)
        add(f"sys.modules[{modname!r}]", mod)
        for k, v in sorted(vars(mod).items()) if mod is not None else ():
            if isinstance(v, types.ModuleType) or k.startswith("__"):
                continue
            if callable(v) or isinstance(v, type):
                add(f"{modname}.{k}", v)
            if isinstance(v, type) and v.__module__.startswith("tapegrad"):
                for a, d in sorted(vars(v).items()):
                    if a not in ("__doc__", "__dict__", "__weakref__", "__module__"):
                        add(f"{modname}.{k}.{a}", d)
    for k in _BUILTIN_NAMES:
        add(f"builtins.{k}", getattr(builtins, k, None))
    return out


def _seal(expected: dict | None):
    """Check that what the checks rely on is what the grader saw before the
    notebook ran (``expected``, from :func:`_fingerprint` then), start
    recording, and return this module's checkers. A difference raises
    :class:`CheckError` "the checking code was modified"."""
    global _RECORD
    if expected is not None:
        now = _fingerprint()
        changed = sorted(k for k, v in expected.items() if now.get(k) != v)
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise CheckError(f"the checking code was modified: {', '.join(changed[:3])}{more} "
                             f"changed since the notebook started")
    _RECORD = []
    return assert_vjp_correct, assert_grads_close


def _records_json(nonce: str) -> str:
    """The records of this test, for the grader."""
    import json
    return json.dumps({"nonce": nonce, "records": _RECORD})
