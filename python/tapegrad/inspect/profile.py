"""Cost per tape entry: FLOPs, bytes moved, forward and backward time."""
from __future__ import annotations

import time

import numpy as np

from .. import _C
from .._C import Tensor
from .._display import Raw, esc, fmt_bytes, html_table, shape_str, text_table

# How an op's floating-point work is counted comes from the registry: each op
# block's .flops (tg.ops()'s 'flops': the unit, flops per unit forward and
# backward, and whether the backward count is per input needing a gradient;
# an op that sets none gets one derived from its arity and cost mark), so a
# new op is counted without an edit here.
_FLOPS = {o["name"]: o["flops"] for o in _C.ops()}


def _numel(shape):
    return int(np.prod(shape)) if len(shape) else 1


def _units(per, input_shapes, output_shape):
    """How many units of an op's work its shapes make (see tg.ops()'s 'flops')."""
    if per == "none":
        return 0
    if per == "input":
        return _numel(input_shapes[0]) if input_shapes else 0
    out_n = _numel(output_shape)
    if per == "output":
        return out_n
    if per == "matmul":  # M N K: the output's elements times the inner size
        a = input_shapes[0]
        return out_n * (a[-1] if len(a) else 1)
    if per == "conv":  # the output's elements times a filter's (C/groups kH kW)
        return out_n * _numel(input_shapes[1][1:])
    if per == "conv_grad":  # conv2d's VJP kernels: first input times a filter of input 1
        return _numel(input_shapes[0]) * _numel(input_shapes[1][1:])
    raise ValueError(f"estimate_flops: unknown flop unit {per!r}")


def op_flops(op: str, input_shapes, output_shape, grad_inputs: int = 1):
    """(forward, backward) floating-point operations of one call of the
    registry op ``op`` on inputs of ``input_shapes`` giving ``output_shape``,
    with ``grad_inputs`` of its inputs needing a gradient: the op's own rule
    from ``tg.ops()`` ('flops'). A ValueError for a name the registry does
    not know.

    >>> import tapegrad as tg
    >>> tg.inspect.op_flops("matmul", [(8, 4), (4, 3)], (8, 3), grad_inputs=2)
    (192, 384)
    >>> tg.inspect.op_flops("exp", [(10,)], (10,))
    (10, 30)
    """
    rule = _FLOPS.get(op)
    if rule is None:
        raise ValueError(f"op_flops: {op!r} is not a registry op (tg.ops() lists them)")
    try:
        shapes = [tuple(int(n) for n in s) for s in input_shapes]
        u = _units(rule["per"], shapes, tuple(int(n) for n in output_shape))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"op_flops: {op} counts {rule['per']!r} units, which the input shapes "
                         f"{input_shapes!r} and output shape {output_shape!r} do not give (expected "
                         f"a list of shapes, one per input, and a shape)") from None
    back = rule["backward"] * u * (grad_inputs if rule["per_grad_input"] else 1)
    return rule["forward"] * u, back


def estimate_flops(entry):
    """(forward, backward) floating-point operations of an entry, estimated
    from its shapes by its op's rule in the registry (``tg.ops()``'s
    'flops', see :func:`op_flops`): matmul 2MNK (backward 2MNK per input
    needing a gradient), elementwise ops n (transcendental ones 3n
    backward), reductions n, softmax-like ~5n, movement ops 0. None for
    Python-defined ops.

    >>> import tapegrad as tg
    >>> a = tg.randn(8, 4, requires_grad=True); b = tg.randn(4, 3)
    >>> tg.inspect.estimate_flops((a @ b).grad_fn)
    (192, 192)
    """
    if entry.is_custom:
        return None, None
    ngrad = sum(1 for g in entry.needs_grad if g)
    return op_flops(entry.op, [x.shape for x in entry.inputs], entry.output_shape, ngrad)


def _nbytes(shape, dtype):
    return _numel(shape) * np.dtype(dtype).itemsize


def _time_rerun(entry, budget=0.002, max_runs=50):
    """Median time of re-running the entry's op (no grad), in seconds."""
    ins = list(entry.inputs)
    prev = _C.set_grad_enabled(False)
    try:
        _C._entry_apply(entry, ins)  # warm up
        times = []
        t_all = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - t_all < budget and len(times) < max_runs):
            t0 = time.perf_counter()
            _C._entry_apply(entry, ins)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))
    finally:
        _C.set_grad_enabled(prev)


class ProfileReport:
    """The result of :func:`profile`: ``rows`` (one dict per entry: seq, op,
    shape, flops, bwd_flops, bytes, fwd_ms, bwd_ms, fwd_source), totals
    (``total_flops``, ``total_bwd_flops``, ``total_bytes``,
    ``total_fwd_ms``, ``total_bwd_ms``) and the wall-clock times of the whole
    forward and backward (``wall_fwd_ms``, ``wall_bwd_ms``: they include the
    Python between the ops). HTML and text tables; :meth:`by_op` sums per op.

    >>> import tapegrad as tg
    >>> W = tg.randn(32, 16, requires_grad=True)
    >>> rep = tg.inspect.profile(lambda: (tg.randn(8, 32) @ W).tanh().sum())
    >>> rep.by_op()[0]["op"] in ("matmul", "tanh", "sum"), rep.total_flops == 2 * 8 * 32 * 16 + 2 * 8 * 16
    (True, True)
    """

    def __init__(self, rows, wall_fwd, wall_bwd, loss_value):
        self.rows = rows
        self.wall_fwd_ms = wall_fwd * 1e3
        self.wall_bwd_ms = wall_bwd * 1e3 if wall_bwd is not None else None
        self.loss = loss_value
        self.total_flops = sum(r["flops"] or 0 for r in rows)
        self.total_bwd_flops = sum(r["bwd_flops"] or 0 for r in rows)
        self.total_bytes = sum(r["bytes"] for r in rows)
        self.total_fwd_ms = sum(r["fwd_ms"] or 0 for r in rows)
        self.total_bwd_ms = sum(r["bwd_ms"] or 0 for r in rows)

    def by_op(self) -> list:
        """Totals per op name, most expensive (forward + backward time) first."""
        agg = {}
        for r in self.rows:
            a = agg.setdefault(r["op"], {"op": r["op"], "count": 0, "flops": 0, "bwd_flops": 0,
                                         "bytes": 0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            a["count"] += 1
            a["flops"] += r["flops"] or 0
            a["bwd_flops"] += r["bwd_flops"] or 0
            a["bytes"] += r["bytes"]
            a["fwd_ms"] += r["fwd_ms"] or 0
            a["bwd_ms"] += r["bwd_ms"] or 0
        return sorted(agg.values(), key=lambda a: -(a["fwd_ms"] + a["bwd_ms"]))

    @staticmethod
    def _f(x):
        if x is None:
            return "?"
        for unit, d in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if x >= d:
                return f"{x / d:.2f}{unit}"
        return str(int(x))

    def _cells(self, r):
        ms = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        return [f"#{r['seq']}", r["op"], shape_str(r["shape"]), self._f(r["flops"]),
                self._f(r["bwd_flops"]), fmt_bytes(r["bytes"]),
                ms(r["fwd_ms"]) + ("~" if r["fwd_source"] == "timestamps" else ""), ms(r["bwd_ms"])]

    def _total_cells(self):
        return ["total", f"{len(self.rows)} entries", "", self._f(self.total_flops),
                self._f(self.total_bwd_flops), fmt_bytes(self.total_bytes),
                f"{self.total_fwd_ms:.3f}", f"{self.total_bwd_ms:.3f}"]

    header = ["seq", "op", "output", "FLOPs fwd", "FLOPs bwd (est.)", "bytes moved", "fwd ms", "bwd ms"]

    def __str__(self):
        body = text_table(self.header, [self._cells(r) for r in self.rows] + [self._total_cells()])
        bw = f"{self.wall_bwd_ms:.3f} ms" if self.wall_bwd_ms is not None else "not run"
        return (body + f"\nwall clock: forward {self.wall_fwd_ms:.3f} ms, backward {bw} "
                "(fwd ms: the op re-run alone, median; ~ = from record timestamps)")

    __repr__ = __str__

    def _repr_html_(self):
        tmax = max([(r["fwd_ms"] or 0) + (r["bwd_ms"] or 0) for r in self.rows] + [1e-12])
        rows = []
        for r in self.rows:
            c = self._cells(r)
            f = (r["fwd_ms"] or 0) / tmax * 120
            b = (r["bwd_ms"] or 0) / tmax * 120
            bar = (f"<span style='display:inline-block;height:9px;width:{f:.0f}px;background:#5b8def'></span>"
                   f"<span style='display:inline-block;height:9px;width:{b:.0f}px;background:#ef8d5b'></span>")
            rows.append(c + [Raw(bar)])
        rows.append(self._total_cells() + [""])
        bw = f"{self.wall_bwd_ms:.3f} ms" if self.wall_bwd_ms is not None else "not run"
        return (html_table(self.header + ["time (blue fwd, orange bwd)"], rows,
                           title="cost per tape entry")
                + f"<div style='font-size:12px;color:#555'>wall clock: forward {self.wall_fwd_ms:.3f} ms, "
                  f"backward {esc(bw)}. fwd ms: the op re-run alone (median); ~: from record "
                  f"timestamps (Python-defined ops). FLOPs are estimates from the shapes.</div>")


def profile(fn, *args, backward: bool = True, gradient=None, **kwargs) -> ProfileReport:
    """Run ``fn(*args, **kwargs)`` (the forward pass, recorded with a Tape)
    and then backward of its result, and report per tape entry: estimated
    FLOPs (forward and backward), bytes moved (inputs + output), forward
    time (each op re-run alone, median of a few runs) and backward time (each
    step of the stepping engine timed), with totals.

    ``fn`` returns the loss (or a tuple whose first item is the loss). Like
    one training step, the backward accumulates into ``.grad``; pass
    ``backward=False`` to time the forward pass only.

    >>> import tapegrad as tg
    >>> W = tg.randn(16, 8, requires_grad=True)
    >>> x = tg.randn(4, 16)
    >>> rep = tg.inspect.profile(lambda: (x @ W).relu().sum())
    >>> [r["op"] for r in rep.rows], rep.total_flops > 0
    (['matmul', 'relu', 'sum'], True)
    """
    from ..autograd import Tape
    prev_ts = _C._set_record_timestamps(True)
    try:
        t_start = _C._monotonic()
        t0 = time.perf_counter()
        with Tape() as tape:
            out = fn(*args, **kwargs)
        wall_fwd = time.perf_counter() - t0
    finally:
        _C._set_record_timestamps(prev_ts)
    loss = out[0] if isinstance(out, (tuple, list)) else out
    entries = list(tape)
    rows = []
    last = t_start
    for e in entries:
        f, b = estimate_flops(e)
        nb = sum(_nbytes(x.shape, x.dtype) for x in e.inputs) + _nbytes(e.output_shape, e.output_dtype)
        ts = _C._entry_record_time(e)
        fwd, src = None, "rerun"
        if not e.is_custom:
            try:
                fwd = _time_rerun(e)
            except Exception:  # noqa: BLE001 (an op that cannot be re-run: fall back)
                fwd = None
        if fwd is None and ts is not None:
            fwd, src = ts - last, "timestamps"
        if ts is not None:
            last = ts
        rows.append({"seq": e.seq, "op": e.op, "shape": tuple(e.output_shape), "flops": f,
                     "bwd_flops": b, "bytes": nb, "fwd_ms": None if fwd is None else fwd * 1e3,
                     "fwd_source": src, "bwd_ms": None, "entry": e})
    wall_bwd = None
    if backward and isinstance(loss, Tensor) and loss.requires_grad:
        if gradient is None and loss.numel() != 1:
            gradient = _C.ones_like(loss)
        by_seq = {r["seq"]: r for r in rows}
        t0 = time.perf_counter()
        # direct=True, private=True: the steps run as in loss.backward() (a
        # slice adds its gradient straight into its input's, relu writes over
        # its incoming gradient), so their times are backward's; the records
        # then show no gradients (only the entry is read here)
        st = _C._Stepper(loss, gradient, direct=True, private=True)
        while True:
            s0 = time.perf_counter()
            rec = st.step()
            s1 = time.perf_counter()
            if rec is None:
                break
            r = by_seq.get(rec["entry"].seq)
            if r is not None:
                r["bwd_ms"] = (r["bwd_ms"] or 0) + (s1 - s0) * 1e3
        st.end()
        wall_bwd = time.perf_counter() - t0
    lv = None
    if isinstance(loss, Tensor) and loss.numel() == 1:
        lv = loss.item()
    return ProfileReport(rows, wall_fwd, wall_bwd, lv)
