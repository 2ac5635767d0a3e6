"""Tests that a student's notebook cannot game: the grader's side.

The student's notebook runs in a Jupyter kernel that the student's code
controls: any name there can be rebound, any module attribute replaced. So
the grader (``run_tests``, used by ``check``, ``grade`` and ``grade-all``)
does not take the checkers from the notebook's namespace:

1. **Before the notebook runs**, the grader reads ``checks.py`` (once, in
   its own process) and asks the fresh kernel for a fingerprint of what the
   checks rely on (:func:`tapegrad.coursework.checks._fingerprint`: the
   tapegrad, C-core, autograd, testing and NumPy functions, the ``Tensor``
   methods, some builtins), which it keeps.
2. **Before each test cell**, it sends a prelude that builds a *fresh*
   module object from that source (not the one in ``sys.modules``), checks
   the fingerprint against the one taken before the notebook ran (a
   difference fails the test with "the checking code was modified"), and
   binds ``assert_vjp_correct`` and ``assert_grads_close`` (and
   ``attention_case``, the reference of assignment 5) in the test's
   namespace, right before the test's lines run.
3. **The verdict of the gradient checks is the grader's**: the fresh
   ``assert_vjp_correct`` records the gradients the student's rule returns
   on each test entry and with the rule installed, as numbers; after the
   test cell, the grader takes them out of the kernel (with a nonce that
   only a test cell that ran to its end hands back) and compares them with
   the built-in VJPs that *it* computes on the same graphs (:func:`verify`).
   Patching tapegrad inside the kernel cannot change those references.

What this does not defend against is in ``docs/coursework.md`` ("What the
grader defends against").
"""
from __future__ import annotations

import ast
import json
import secrets
from pathlib import Path

import numpy as np

from . import checks as _checks

__all__ = ["checks_source", "setup_code", "prelude", "epilogue", "expected_vjp_checks",
           "verify", "TAMPERED"]

TAMPERED = "the checking code was modified"
_VAR = "_tapegrad_sealed_"


def checks_source() -> tuple:
    """``(path, source)`` of ``checks.py`` as the grader's process read it."""
    path = Path(_checks.__file__).resolve()
    return str(path), path.read_text()


def new_nonce() -> str:
    return secrets.token_hex(8)


def _module_code(var: str, path: str, source: str) -> str:
    return (f"{var} = type(__import__('sys'))('tapegrad.coursework._sealed')\n"
            f"{var}.__dict__.update(__file__={path!r}, __package__='tapegrad.coursework')\n"
            f"exec(compile({source!r}, {path!r}, 'exec'), {var}.__dict__)\n")


def setup_code(path: str, source: str) -> tuple:
    """(code, user-expression) that fingerprint the fresh kernel."""
    var = _VAR + "setup"
    code = _module_code(var, path, source)
    code += f"{var}_fp = __import__('json').dumps({var}._fingerprint(load=True))\ndel {var}\n"
    return code, f"{var}_fp"


def prelude(nonce: str, path: str, source: str, fingerprint: dict | None) -> str:
    """Code run just before a test cell: a fresh checks module, sealed."""
    var = _VAR + nonce
    return (_module_code(var, path, source) +
            f"assert_vjp_correct, assert_grads_close = {var}._seal({fingerprint!r})\n"
            f"attention_case = {var}.attention_case\n")


def epilogue(nonce: str) -> tuple:
    """(line appended to the test's code, user-expression reading it): the
    records exist only if the test cell ran to its end."""
    var = _VAR + nonce
    return f"\n{var}_out = {var}._records_json({nonce!r})\n", f"{var}_out"


def read_records(user_expressions: dict, name: str, nonce: str):
    """The records a test handed back, or None."""
    item = (user_expressions or {}).get(name) or {}
    text = (item.get("data") or {}).get("text/plain") if item.get("status") == "ok" else None
    if not isinstance(text, str):
        return None
    try:
        payload = json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("nonce") != nonce:
        return None
    recs = payload.get("records")
    return recs if isinstance(recs, list) else None


# ---------------------------------------------------------------------------
# the checks a test cell must run, read from its code
# ---------------------------------------------------------------------------

def expected_vjp_checks(source: str) -> list:
    """The ``assert_vjp_correct(op, fn, ...)`` calls of a test's code whose
    arguments are literals: ``[{"op", "variants", "seed", "text"}]``. Each
    must hand back a record; calls with ``graph=`` are not judged here.

    >>> from tapegrad.coursework.sealed import expected_vjp_checks
    >>> [(c["op"], c["variants"], c["seed"]) for c in expected_vjp_checks(
    ...     "assert_vjp_correct('mul', mul_vjp)\\nassert_vjp_correct('mul', f, variants=(1, 2), seed=3)")]
    [('mul', [0], 0), ('mul', [1, 2], 3)]
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "assert_vjp_correct" and node.args):
            continue
        try:
            op = ast.literal_eval(node.args[0])
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords
                  if k.arg in ("variants", "seed")}
        except ValueError:
            continue
        if len(node.args) > 2 or any(k.arg in ("graph", "inputs", None) for k in node.keywords):
            continue
        if not isinstance(op, str):
            continue
        out.append({"op": op, "variants": [int(v) for v in kw.get("variants", (0,))],
                    "seed": int(kw.get("seed", 0)), "text": ast.get_source_segment(source, node)
                    or f"assert_vjp_correct({op!r}, ...)"})
    return out


# ---------------------------------------------------------------------------
# the verdict, in the grader's process
# ---------------------------------------------------------------------------

def _as_array(x):
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a


def _compare(mine, ref: np.ndarray, what: str):
    a = _as_array(mine)
    if a is None:
        return f"{what}: the grader could not read your result"
    if a.shape != ref.shape:
        return f"{what}: shape {_checks._shape(a.shape)}, expected {_checks._shape(ref.shape)}"
    index, nbad, _ = _checks._worst(a, ref, 1e-6, 1e-9)
    if index is None:
        return None
    where = f" at index {_checks._idx(index)}" if a.ndim else ""
    return (f"{what} is wrong{where}: yours {_checks._num(a[index])}, expected "
            f"{_checks._num(ref[index])} ({nbad} of {a.size} elements differ)")


def _verify_record(rec) -> str | None:
    """None if the record's gradients match the built-in VJPs computed
    here, else the feedback."""
    from .._C import _builtin_vjp, tensor
    from ..autograd import Tape, no_grad
    op, seed, variants = rec.get("op"), rec.get("seed"), rec.get("variants")
    cases = rec.get("cases")
    if (not isinstance(op, str) or not isinstance(seed, int) or not isinstance(variants, list)
            or not isinstance(cases, list) or len(cases) != len(variants)
            or not 0 < len(variants) <= 16):
        return "the record of a gradient check is incomplete"
    rng = np.random.default_rng(seed)
    for v, case in zip(variants, cases):
        graph, inputs = _checks.example_graph(op, seed, v)
        leaves = _checks._leaves(inputs)
        with Tape() as tape:
            loss = graph(**leaves)
        entries = [e for e in tape if e.op == op and any(e.needs_grad)]
        got = case.get("entries") if isinstance(case, dict) else None
        if not isinstance(got, list) or len(got) != len(entries):
            return (f"{op!r} (variant {v}): your run recorded {len(got or [])} entries of the "
                    f"op, the grader's {len(entries)}")
        for k, (e, rec_e) in enumerate(zip(entries, got)):
            g = tensor(rng.standard_normal(tuple(e.output_shape)), dtype=e.output_dtype)
            with no_grad():
                builtin = _builtin_vjp(e, g)
            grads = rec_e.get("grads") if isinstance(rec_e, dict) else None
            if not isinstance(grads, list) or len(grads) != len(e.inputs):
                return f"{op!r} (variant {v}): entry {k + 1}: wrong number of gradients"
            for i, ref in enumerate(builtin):
                if not e.needs_grad[i] or ref is None:
                    continue
                bad = _compare(grads[i], ref.detach().numpy().astype(np.float64),
                               f"{op!r} entry {k + 1} of variant {v}, input {i}")
                if bad:
                    return bad
        del loss, tape, leaves
        ref = _checks._graph_grads(graph, inputs)
        mine = case.get("graph") if isinstance(case, dict) else None
        if not isinstance(mine, dict):
            return f"{op!r} (variant {v}): the whole-graph gradients were not recorded"
        for name, r in ref.items():
            if r is None:
                continue
            bad = _compare(mine.get(name), r.detach().numpy().astype(np.float64),
                           f"with your rule installed for {op!r}, the gradient of {name} "
                           f"(variant {v})")
            if bad:
                return bad
    return None


def verify(source: str, records) -> str | None:
    """The grader's verdict on a test cell that ran to its end: None if
    every gradient check it holds was recorded and matches the references
    computed in this process, else the feedback (first line short)."""
    if records is None:
        return (f"{TAMPERED}: the test did not hand its results back to the grader")
    for exp in expected_vjp_checks(source):
        if not any(isinstance(r, dict) and r.get("op") == exp["op"] and
                   r.get("seed") == exp["seed"] and r.get("variants") == exp["variants"] and
                   not r.get("custom") for r in records):
            return f"{TAMPERED}: the check {exp['text']} did not run"
    for r in records:
        if not isinstance(r, dict):
            return f"{TAMPERED}: a record of the checks is not readable"
        if r.get("custom"):
            continue
        try:
            bad = _verify_record(r)
        except Exception as err:  # noqa: BLE001  (a malformed record is the student's failure)
            bad = f"the grader could not check a gradient record ({type(err).__name__}: {err})"
        if bad:
            return f"wrong gradient (checked by the grader): {bad}"
    return None
