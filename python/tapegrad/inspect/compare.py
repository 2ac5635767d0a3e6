"""Check a derivation by hand against the tape: compare_grads."""
from __future__ import annotations

import numpy as np

from .._C import Tensor
from .._display import Raw, esc, fmt_num, html_table, shape_str


def _arr(x):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x.detach().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


class GradComparison:
    """The result of :func:`compare_grads`: ``ok``; ``results`` (one dict per
    name: name, ok, message, max_abs, index, expected, actual, hint);
    ``first_mismatch`` (the first failing result, or None).

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()                      # w.grad = [2, 4]
    >>> rep = tg.inspect.compare_grads({"w": [2.0, 5.0]}, {"w": w})
    >>> rep.ok, rep.first_mismatch["name"], rep["w"]["index"]
    (False, 'w', (1,))
    """

    def __init__(self, results, rtol, atol):
        self.results = results
        self.rtol, self.atol = rtol, atol
        self.ok = all(r["ok"] for r in results)
        self.first_mismatch = next((r for r in results if not r["ok"]), None)

    def __bool__(self):
        return self.ok

    def __getitem__(self, name):
        for r in self.results:
            if r["name"] == name:
                return r
        raise KeyError(name)

    def __repr__(self):
        if self.ok:
            return (f"compare_grads: all {len(self.results)} gradients match the tape "
                    f"(rtol={self.rtol}, atol={self.atol}): "
                    + ", ".join(f"{r['name']} (max |diff| {fmt_num(r['max_abs'])})" for r in self.results))
        lines = [f"compare_grads: {sum(not r['ok'] for r in self.results)} of {len(self.results)} "
                 f"gradients differ from the tape; first: {self.first_mismatch['name']}"]
        for r in self.results:
            lines.append(("  ok    " if r["ok"] else "  WRONG ") + f"{r['name']}: {r['message']}")
            if r.get("hint"):
                lines.append(f"          hint: {r['hint']}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self):
        rows, styles = [], []
        for r in self.results:
            mark = "✔" if r["ok"] else "✘"
            rows.append([Raw(f"<b>{mark}</b>"), r["name"], r["message"], r.get("hint") or ""])
            styles.append("" if r["ok"] else ("background:#fde0e0" if r is self.first_mismatch
                                              else "background:#fff0f0"))
        title = ("all gradients match the tape" if self.ok else
                 f"first mismatch: {self.first_mismatch['name']}")
        return html_table(["", "name", "comparison (yours vs the tape)", "hint"], rows,
                          title=f"compare_grads (rtol={self.rtol}, atol={self.atol}): {title}",
                          row_styles=styles)


def _hint(exp, act):
    """Common derivation slips: a transpose, a constant factor, a sign."""
    if exp.shape != act.shape:
        if exp.ndim == 2 and exp.T.shape == act.shape and np.allclose(exp.T, act, rtol=1e-3, atol=1e-6):
            return "yours is the transpose of the tape's"
        if exp.size == act.size and np.allclose(exp.reshape(act.shape), act, rtol=1e-3, atol=1e-6):
            return "same values, different shape: reshape yours"
        if act.ndim == 1 and exp.ndim == 2 and exp.shape[-1] == act.shape[0] and \
                np.allclose(exp.sum(axis=0), act, rtol=1e-3, atol=1e-6):
            return "sum yours over axis 0 (the batch): the bias is broadcast over the rows"
        return None
    if np.allclose(exp, -act, rtol=1e-3, atol=1e-8) and np.abs(act).max() > 0:
        return "the sign is flipped"
    nz = np.abs(exp) > 1e-12
    if nz.sum() >= 1 and np.all(np.abs(act[nz]) > 1e-12):
        ratio = act[nz] / exp[nz]
        c = float(np.median(ratio))
        if np.allclose(ratio, c, rtol=1e-3) and not np.isclose(c, 1.0, rtol=1e-3):
            inv = 1 / c
            if abs(inv - round(inv)) < 1e-3 and round(inv) > 1:
                n = round(inv)
                return (f"yours is {n}x the tape's: a division by {n} is missing (the "
                        f"1/N of a mean over {n} items?)")
            if abs(c - round(c)) < 1e-3 and round(c) > 1:
                n = round(c)
                why = " (the 2 from differentiating a square)" if n == 2 else ""
                return (f"yours is 1/{n} of the tape's: did you average over {n} items where the "
                        f"tape sums (a bias gradient is a sum over the batch), or drop a factor "
                        f"{n}{why}?")
            return f"off by a constant factor: tape / yours = {c:.4g}"
    return None


def compare_grads(expected: dict, model_or_tensors, rtol: float = 1e-4, atol: float = 1e-6) -> GradComparison:
    """Compare gradients derived by hand with the tape's ``.grad``.

    ``expected`` maps names to NumPy arrays or tensors (``{"W1": dW1, ...}``);
    ``model_or_tensors`` is anything with ``named_parameters()`` (a
    ``tg.nn.Module``) or a dict name -> tensor. Each pair is compared with
    NumPy's rule ``|yours - tape| <= atol + rtol |tape|``; the report points at
    the first name that differs (worst index, both values) and suggests a
    likely slip (transposed, a missing 1/N, a flipped sign).

    >>> import numpy as np, tapegrad as tg
    >>> W = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> x = tg.tensor([1.0, -1.0])
    >>> (W @ x).sum().backward()
    >>> tg.inspect.compare_grads({"W": np.array([[1.0, -1.0], [1.0, -1.0]])}, {"W": W}).ok
    True
    """
    if hasattr(model_or_tensors, "named_parameters"):
        actual = dict(model_or_tensors.named_parameters())
    elif isinstance(model_or_tensors, dict):
        actual = dict(model_or_tensors)
    else:
        raise TypeError("compare_grads: pass a model (with named_parameters()) or a dict name -> tensor")
    results = []
    for name, exp_raw in expected.items():
        r = {"name": name, "ok": False, "max_abs": None, "index": None, "expected": None,
             "actual": None, "hint": None}
        results.append(r)
        if name not in actual:
            r["message"] = (f"no tensor named {name!r} (the tape has: "
                            f"{', '.join(map(str, actual)) or 'nothing'})")
            continue
        t = actual[name]
        g = getattr(t, "grad", None)
        if g is None:
            r["message"] = (f"{name}.grad is None: call loss.backward() first (and check that "
                            f"{name} requires grad and is used by the loss)")
            continue
        exp, act = _arr(exp_raw), _arr(g)
        if exp.shape != act.shape:
            r["message"] = f"shapes differ: yours {shape_str(exp.shape)}, the tape's {shape_str(act.shape)}"
            r["hint"] = _hint(exp, act)
            continue
        diff = np.abs(exp - act)
        excess = diff - (atol + rtol * np.abs(act))
        excess = np.where(np.isnan(excess), np.inf, excess)
        r["max_abs"] = float(np.nanmax(diff)) if diff.size else 0.0
        if diff.size == 0 or np.max(excess) <= 0:
            r["ok"] = True
            r["message"] = f"match, max |difference| {fmt_num(r['max_abs'])}"
            continue
        k = int(np.argmax(excess))
        idx = tuple(int(i) for i in np.unravel_index(k, exp.shape))
        r["index"] = idx
        r["expected"] = float(exp[idx]) if exp.ndim else float(exp)
        r["actual"] = float(act[idx]) if act.ndim else float(act)
        n_bad = int((excess > 0).sum())
        r["message"] = (f"{n_bad} of {exp.size} elements differ; worst at index {idx}: yours "
                        f"{r['expected']:.8g}, the tape's {r['actual']:.8g}")
        r["hint"] = _hint(exp, act)
    return GradComparison(results, rtol, atol)
