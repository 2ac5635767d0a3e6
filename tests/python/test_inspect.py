"""Tests of tapegrad.inspect: the tape table, the backward stepper, drawings,
the explorer, anomaly mode, per-entry gradient checks, the profiler,
compare_grads, gradient hooks, and the notebook that shows them."""
import html.parser
import inspect as pyinspect
import os
import shutil
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def line_here() -> int:
    """The caller's line number."""
    return pyinspect.currentframe().f_back.f_lineno


def named(t, name):
    t.name = name
    return t


# ---------------------------------------------------------------------------
# graphs used by several tests
# ---------------------------------------------------------------------------

def mlp(seed=0, n=6):
    """h = sigmoid(x W1 + b1), y = sigmoid(h W2 + b2), MSE."""
    tg.manual_seed(seed)
    x = named(tg.randn(n, 4), "x")
    y = named(tg.rand(n, 3), "y")
    W1 = named(tg.randn(4, 5, requires_grad=True), "W1")
    b1 = named(tg.randn(5, requires_grad=True), "b1")
    W2 = named(tg.randn(5, 3, requires_grad=True), "W2")
    b2 = named(tg.randn(3, requires_grad=True), "b2")

    def loss_fn():
        h = (x @ W1 + b1).sigmoid()
        out = (h @ W2 + b2).sigmoid()
        return tg.mse_loss(out, y)
    return loss_fn, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def diamond(seed=1):
    """a is reused: c = a*b, d = exp(a), loss = sum(c*d + a*a)."""
    tg.manual_seed(seed)
    a = named(tg.randn(3, requires_grad=True), "a")
    b = named(tg.randn(3, requires_grad=True), "b")

    def loss_fn():
        c = a * b
        d = a.exp()
        return (c * d + a * a).sum()
    return loss_fn, {"a": a, "b": b}


def broadcasting(seed=2):
    """Biases broadcast over a batch and a middle axis."""
    tg.manual_seed(seed)
    x = named(tg.randn(2, 4, 3), "x")
    w = named(tg.randn(1, 3, requires_grad=True), "w")
    b = named(tg.randn(3, requires_grad=True), "b")
    s = named(tg.randn(2, 1, 1, requires_grad=True), "s")

    def loss_fn():
        return ((x * w + b) * s).tanh().sum()
    return loss_fn, {"w": w, "b": b, "s": s}


GRAPHS = {"mlp": mlp, "diamond": diamond, "broadcasting": broadcasting}


def grads_of(params):
    return {k: (None if v.grad is None else v.grad.numpy().copy()) for k, v in params.items()}


def clear(params):
    for v in params.values():
        v.grad = None


class StrictHTML(html.parser.HTMLParser):
    VOID = {"br", "hr", "img", "meta", "input", "link", "col", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append((tag, self.stack[-3:]))


def assert_html(text):
    assert isinstance(text, str) and text
    p = StrictHTML()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:3]
    assert not p.stack, p.stack


def assert_svg(text):
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    return root


# ---------------------------------------------------------------------------
# the stepper agrees with backward
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_stepper_matches_backward(graph):
    loss_fn, params = GRAPHS[graph]()
    loss_fn().backward()
    expected = grads_of(params)
    clear(params)
    st = tg.inspect.BackwardStepper(loss_fn())
    st.finish()
    assert st.done and st.position == st.size == len(st.history)
    got = grads_of(params)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_backward_steps_iteration_matches_backward(graph):
    loss_fn, params = GRAPHS[graph]()
    loss_fn().backward()
    expected = grads_of(params)
    clear(params)
    loss = loss_fn()
    recs = list(loss.backward_steps())
    assert [r.index for r in recs] == list(range(len(recs)))
    assert [r.seq for r in recs] == sorted((r.seq for r in recs), reverse=True)
    for k, v in grads_of(params).items():
        np.testing.assert_array_equal(v, expected[k], err_msg=k)


def test_stepping_twice_accumulates_like_backward():
    loss_fn, params = mlp()
    loss_fn().backward()
    loss_fn().backward()
    expected = grads_of(params)
    clear(params)
    tg.inspect.BackwardStepper(loss_fn()).finish()
    tg.inspect.BackwardStepper(loss_fn()).finish()
    for k, v in grads_of(params).items():
        np.testing.assert_allclose(v, expected[k], rtol=1e-6, err_msg=k)


def test_broadcast_axes_are_reported():
    loss_fn, params = broadcasting()
    st = tg.inspect.BackwardStepper(loss_fn())
    st.finish()
    by_label = {}
    for rec in st.history:
        for ig in rec.inputs:
            if ig.summed_axes:
                by_label[ig.label] = ig
    assert by_label["w"].summed_axes == [0, 1] and by_label["w"].ndim_before == 3
    assert by_label["b"].summed_axes == [0, 1]
    assert by_label["s"].summed_axes == [1, 2]
    assert by_label["b"].broadcast_text == "summed over axes 0, 1: (2, 4, 3) → b (3,)"
    assert by_label["s"].shape_before == (2, 4, 3)
    add = next(r for r in st.history if r.op == "add")
    assert r"\xrightarrow" in add.latex() and r"\underset{3}{\bar b}" in add.latex()


def _scripted_underset(tex: str):
    """The first ``\\underset{..}{..}`` followed directly by ``_`` or ``^``
    (MathJax: "Double subscripts"), or None; braces are matched."""
    def group_end(i):  # tex[i] == "{": index after its matching "}"
        depth = 0
        for j in range(i, len(tex)):
            depth += {"{": 1, "}": -1}.get(tex[j], 0) if tex[j - 1:j] != "\\" else 0
            if depth == 0:
                return j + 1
        raise AssertionError(f"unbalanced braces in {tex!r}")
    for k in range(len(tex)):
        if tex.startswith("\\underset{", k):
            end = group_end(group_end(k + len("\\underset")))
            if tex[end:end + 1] in ("_", "^"):
                return tex[k:end + 1]
    return None


def test_every_formula_annotated_with_shapes_stays_valid_tex():
    """Found in a browser (notebook 05's softmax step): an annotated symbol
    that the formula subscripts (``\\bar y_j``) became ``\\underset{..}{..}_j``,
    which MathJax refuses. Every registered op's formula, with every gradient
    symbol given a shape, must keep one script per atom."""
    from tapegrad.inspect.stepper import annotate_shapes
    assert _scripted_underset(r"\underset{2}{\bar y}_j") == r"\underset{2}{\bar y}_"
    checked = 0
    for op in _C.ops():
        if not op.get("vjp_latex"):
            continue
        toks = [t for t in (op["grad_out_latex"], *op["grad_in_latex"]) if t]
        tex = annotate_shapes(op["vjp_latex"], {t: (2, 3) for t in toks})
        assert _scripted_underset(tex) is None, (op["name"], tex)
        checked += 1
    assert checked > 100
    # and the step record of softmax itself, as notebook 05 shows it
    x = tg.randn(3, 4, requires_grad=True)
    st = tg.inspect.BackwardStepper((tg.softmax(x, axis=-1) * tg.randn(3, 4)).sum())
    rec = st.run_to("softmax")
    assert r"{\underset{3\times 4}{\bar y}}_j" in rec.latex()
    assert _scripted_underset(rec.latex()) is None


def test_bias_summed_over_batch_in_mlp():
    loss_fn, params = mlp(n=7)
    st = tg.inspect.BackwardStepper(loss_fn())
    rec = st.run_to("add")       # the newest add: + b2
    ig = rec.inputs[1]
    assert ig.label == "b2" and ig.summed_axes == [0]
    assert ig.broadcast_text == "summed over axis 0: (7, 3) → b2 (3,)"
    np.testing.assert_allclose(ig.grad, rec.grad_out.sum(axis=0), rtol=1e-6)
    assert "summed over axis 0" in str(rec)


def test_run_to_history_current():
    loss_fn, params = mlp()
    loss = loss_fn()
    st = tg.inspect.BackwardStepper(loss)
    assert st.current is None and st.position == 0 and len(st) == 7
    assert st.next_entry.op == "mse_loss"
    rec = st.run_to("matmul")
    assert rec.op == "matmul" and st.current is rec and st.history[-1] is rec
    assert [r.op for r in st.history] == ["mse_loss", "sigmoid", "add", "matmul"]
    seq_first = st.order[-1].seq
    rec = st.run_to(seq_first)
    assert rec.seq == seq_first and st.done
    assert st.step() is None
    with pytest.raises(ValueError, match="already ran"):
        st.run_to(seq_first)
    st2 = tg.inspect.BackwardStepper(loss_fn())
    with pytest.raises(ValueError, match="no entry with op 'conv2d'"):
        st2.run_to("conv2d")
    with pytest.raises(ValueError, match="no tape entry #999999"):
        st2.run_to(999999)
    h_entry = st2.order[4]  # the first sigmoid
    rec = st2.run_to(h_entry.output)
    assert rec.entry == h_entry and st2.position == 5


def test_contributions_of_reused_tensor():
    loss_fn, params = diamond()
    loss = loss_fn()
    st = tg.inspect.BackwardStepper(loss)
    st.finish()
    a = params["a"]
    contrib = st.contributions(a)
    # a is used by a*b, exp(a) and a*a (twice): four pieces
    assert len(contrib) == 4
    assert sorted(c["op"] for c in contrib) == ["exp", "mul", "mul", "mul"]
    np.testing.assert_allclose(contrib.total, a.grad.numpy(), rtol=1e-5)
    assert "sum of 4 contributions" in str(contrib)
    assert len(st.contributions("b")) == 1
    assert_html(contrib._repr_html_())


def test_leaf_grad_written_at_last_contribution():
    loss_fn, params = diamond()
    st = tg.inspect.BackwardStepper(loss_fn())
    a = params["a"]
    seen = []
    for rec in st:
        for ig in rec.inputs:
            if ig.label == "a":
                seen.append((ig.finalized, a.grad is None))
    # every contribution but the last leaves a.grad unwritten
    assert [f for f, _ in seen] == [False] * (len(seen) - 1) + [True]
    assert all(none for _, none in seen[:-2])
    assert seen[-1][1] is False


def test_record_before_after_accumulation():
    loss_fn, params = diamond()
    st = tg.inspect.BackwardStepper(loss_fn())
    st.finish()
    pieces = [ig for rec in st.history for ig in rec.inputs if ig.label == "a" and ig.grad is not None]
    assert pieces[0].before is None
    running = None
    for rec in st.history:
        a_in = [ig for ig in rec.inputs if ig.label == "a" and ig.grad is not None]
        if not a_in:
            continue
        step_sum = sum(ig.grad for ig in a_in)
        running = step_sum if running is None else running + step_sum
        np.testing.assert_allclose(a_in[-1].after, running, rtol=1e-6)


def test_step_record_text_and_latex():
    loss_fn, params = mlp()
    st = tg.inspect.BackwardStepper(loss_fn())
    rec = st.run_to("matmul")
    text = str(rec)
    assert "tape entry #%d matmul" % rec.seq in text and "W2" in text
    tex = rec._repr_latex_()
    assert tex.startswith("$$") and r"\texttt{W2}" in tex and r"\mathbb{R}^{5 \times 3}" in tex
    assert repr(rec).startswith("<StepRecord")


def test_stepper_create_graph_gives_second_derivatives():
    x = tg.tensor([1.5, -0.5], dtype=tg.float64, requires_grad=True)
    st = tg.inspect.BackwardStepper((x ** 3).sum(), create_graph=True)
    st.finish()
    g = x.grad
    assert g.grad_fn is not None
    (gg,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())


def test_stepper_errors_on_freed_graph():
    loss_fn, _ = mlp()
    loss = loss_fn()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        tg.inspect.BackwardStepper(loss)


# ---------------------------------------------------------------------------
# the tape table
# ---------------------------------------------------------------------------

def test_tape_table_rows():
    loss_fn, params = mlp()
    loss = loss_fn()
    table = loss.tape()
    assert [r["op"] for r in table] == ["matmul", "add", "sigmoid", "matmul", "add", "sigmoid",
                                        "mse_loss"]
    assert table[0]["inputs"] == "x (const), W1 (leaf)"
    assert table[1]["inputs"].endswith("b1 (leaf)") and "(#%d)" % table[0]["seq"] in table[1]["inputs"]
    assert table[0]["output"] == "(6, 5) float32"
    assert table[0]["formula"] == "C = A B"
    assert table[0]["saved_bytes"] == table.entries[0].saved_bytes == (6 * 4 + 4 * 5) * 4
    assert table.saved_bytes == sum(r["saved_bytes"] for r in table)
    text = str(table)
    assert "mse_loss" in text and "saved for backward" in text
    assert_html(table._repr_html_())


def test_tape_recorded_with_with_renders():
    x = named(tg.randn(3, requires_grad=True), "x")
    with tg.Tape() as tape:
        y = (x * 2).sum()
    assert [r["op"] for r in tape.table()] == ["mul", "sum"]
    assert "x (leaf)" in str(tape)
    assert_html(tape._repr_html_())


def test_tape_table_shows_freed_entries_and_unnamed_ids():
    x = tg.randn(3, requires_grad=True)
    y = x.exp().sum()
    t = y.tape()
    assert f"t{x._id} (leaf)" == t[0]["inputs"]
    y.backward()
    assert "freed" in y.tape()[0]["saved"]


# ---------------------------------------------------------------------------
# HTML and SVG
# ---------------------------------------------------------------------------

def test_html_outputs_parse():
    loss_fn, params = mlp()
    loss = loss_fn()
    st = tg.inspect.BackwardStepper(loss, retain_graph=True)
    for rec in st:
        assert_html(rec._repr_html_())
    assert_html(st._repr_html_())
    assert_html(tg.inspect.explore(loss, widget=False)._repr_html_())
    assert_html(tg.testing.check_entry(loss.grad_fn)._repr_html_())
    assert_html(tg.inspect.compare_grads({"W1": np.zeros((4, 5))}, params)._repr_html_())
    assert_html(tg.inspect.profile(loss_fn)._repr_html_())


def test_svg_parses_and_highlights_current():
    loss_fn, params = mlp()
    loss = loss_fn()
    d = tg.inspect.draw(loss)
    root = assert_svg(d._repr_svg_())
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "W1 (leaf)" in texts and "(4, 5) float32" in texts and "mse_loss" in texts
    st = tg.inspect.BackwardStepper(loss)
    rec = st.run_to("matmul")
    svg = tg.inspect.draw(loss, st).svg()
    assert_svg(svg)
    assert "#ffd699" in svg and f"#{rec.seq} matmul" in svg
    assert "∂" in svg  # gradients known so far are shown
    # a step in the past
    assert_svg(tg.inspect.draw(loss, st, step=0).svg())


def test_draw_save_svg_and_dot(tmp_path):
    loss_fn, _ = diamond()
    d = tg.inspect.draw(loss_fn())
    p = d.save(str(tmp_path / "g.svg"))
    assert_svg(open(p, encoding="utf-8").read())
    p = d.save(str(tmp_path / "g.dot"))
    text = open(p).read()
    assert text.startswith("digraph") and "->" in text
    with pytest.raises(ValueError):
        d.save(str(tmp_path / "g.xyz"))


def test_draw_small_values_and_grads():
    x = named(tg.tensor([1.0, 2.0], requires_grad=True), "x")
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    svg = tg.inspect.draw(loss).svg()
    assert "= [1., 2.]" in svg and "∂ [2., 4.]" in svg


def test_draw_leaf_only_tensor():
    assert_svg(tg.inspect.draw(tg.ones(2)).svg())


# ---------------------------------------------------------------------------
# explore
# ---------------------------------------------------------------------------

def test_explore_static_restores_grads():
    loss_fn, params = mlp()
    loss = loss_fn()
    ex = tg.inspect.explore(loss, widget=False)
    assert ex.n == 7 and ex.widget is None
    assert all(p.grad is None for p in params.values())
    page = ex._repr_html_()
    assert "pip install ipywidgets" in page and page.count("<details>") == 7
    assert_html(page)
    for k in range(ex.n + 1):
        assert_svg(ex.drawing(k).svg())
    loss.backward()  # the graph was retained
    assert all(p.grad is not None for p in params.values())


def test_explore_widget():
    pytest.importorskip("ipywidgets")
    loss_fn, params = diamond()
    a = params["a"]
    a.grad = tg.ones(3)
    ex = tg.inspect.explore(loss_fn())
    assert ex.widget is not None
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
    ex._slider.value = 3          # Next, Next, Next
    ex._slider.value = 1          # Previous, Previous
    assert ex._slider.value == 1


# ---------------------------------------------------------------------------
# anomaly mode
# ---------------------------------------------------------------------------

def test_anomaly_forward_names_entry_and_line():
    x = named(tg.tensor([1.0, 0.0, 2.0], requires_grad=True), "x")
    with tg.detect_anomaly():
        with pytest.raises(tg.inspect.AnomalyError) as info:
            line = line_here(); y = x.log() * 0  # noqa: E702
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.op == "log" and err.phase == "forward"
    assert err.seq == err.entry.seq and err.entry.op == "log"
    f, n, fn, src = err.created_at
    assert os.path.samefile(f, __file__) and n == line and "x.log()" in src
    assert f"#{err.seq} (log)" in str(err) and f"{__file__}:{line}" in str(err)
    assert err.input_stats[0]["zeros"] == 1 and err.input_stats[0]["min"] == 0
    assert "hint" in str(err)
    assert not tg.inspect.is_anomaly_enabled()


def test_anomaly_forward_nan_only():
    x = tg.tensor([1.0, 0.0, 2.0], requires_grad=True)
    with tg.detect_anomaly(check_inf=False):
        with pytest.raises(tg.inspect.AnomalyError) as info:
            y = x.log()
            line = line_here(); z = y * 0  # noqa: E702
    # -inf passes (check_inf=False); -inf * 0 = NaN stops at the mul
    assert info.value.op == "mul" and info.value.created_at[1] == line
    assert info.value.seq > y.grad_fn.seq


def test_anomaly_backward_names_entry_and_line():
    z = tg.tensor([0.0, 1.0, 4.0], requires_grad=True)
    with tg.detect_anomaly():
        line = line_here(); r = z.sqrt()  # noqa: E702
        loss = r.sum()
        with pytest.raises(tg.inspect.AnomalyError) as info:
            loss.backward()
    err = info.value
    assert err.phase == "backward" and err.op == "sqrt" and err.seq == r.grad_fn.seq
    assert err.bad_input == 0 and err.grad_stats["inf"] == 1
    assert err.created_at[1] == line and os.path.samefile(err.created_at[0], __file__)
    assert "backward" in str(err) and "sqrt" in str(err)


def test_anomaly_backward_nan_through_stepper():
    z = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        line = line_here(); loss = (z.sqrt() * 0).sum()  # noqa: E702
        st = tg.inspect.BackwardStepper(loss)
        with pytest.raises(tg.inspect.AnomalyError) as info:
            st.finish()
    # 0 * (1 / (2 sqrt 0)) = 0 * inf = NaN in the gradient of sqrt
    assert info.value.op == "sqrt" and info.value.created_at[1] == line
    assert st.done


def test_anomaly_skips_library_frames():
    F = tg.nn.functional
    x = tg.tensor([[np.inf, 1.0]])
    W = tg.randn(3, 2, requires_grad=True)
    with tg.detect_anomaly():
        with pytest.raises(tg.inspect.AnomalyError) as info:
            line = line_here(); F.linear(x, W)  # noqa: E702
    assert info.value.created_at[1] == line
    assert any("tapegrad" in fr[0] for fr in info.value.frames) or len(info.value.frames) >= 1


def test_anomaly_off_costs_nothing_and_nests():
    assert _C._anomaly_mode()[0] is None
    x = tg.tensor([0.0], requires_grad=True)
    y = x.log()  # -inf, no error outside anomaly mode
    assert np.isinf(y.numpy()[0])
    with tg.detect_anomaly():
        with tg.detect_anomaly(enabled=False):
            x.log()
        assert tg.inspect.is_anomaly_enabled()
    assert not tg.inspect.is_anomaly_enabled()
    assert _C._entry_created_at(y.grad_fn) is None


def test_anomaly_records_creation_site_of_every_entry():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.detect_anomaly():
        line = line_here(); y = (x * 3).exp().sum()  # noqa: E702
    for row in y.tape().entries:
        frames = _C._entry_created_at(row)
        assert frames[0][1] == line


def test_anomaly_in_function_forward():
    class Bad(tg.Function):
        @staticmethod
        def forward(ctx, a):
            return a / 0

        @staticmethod
        def backward(ctx, g):
            return g

    a = tg.tensor([1.0], requires_grad=True)
    with tg.detect_anomaly():
        with pytest.raises(tg.inspect.AnomalyError) as info:
            line = line_here(); Bad.apply(a)  # noqa: E702
    assert info.value.op == "Bad" and info.value.created_at[1] == line


# ---------------------------------------------------------------------------
# check_entry
# ---------------------------------------------------------------------------

def _builtin_entries():
    tg.manual_seed(3)
    a = tg.randn(3, 4, requires_grad=True)
    b = tg.randn(4, 5, requires_grad=True)
    c = tg.randn(3, 4, requires_grad=True)
    labels = tg.tensor([0, 4, 2], dtype=tg.int64)
    logits = a @ b
    return {
        "matmul": logits,
        "mul": a * c,
        "mul_broadcast": a * tg.randn(4, requires_grad=True),
        "softmax": tg.softmax(a, axis=1),
        "cross_entropy": tg.cross_entropy(logits, labels),
        "sum_axis": a.sum(axis=0),
        "sum_keepdims": a.sum(axis=1, keepdims=True),
        "mean": a.mean(axis=1),
        "slice": a[1:, ::-2],
        "reshape": a.reshape(2, 6),
        "transpose": a.T,
        "var": a.var(axis=0),
        "broadcast_to": tg.broadcast_to(c[0], (2, 4)),
    }


@pytest.mark.parametrize("name", sorted(_builtin_entries()))
def test_check_entry_builtin_ops(name):
    out = _builtin_entries()[name]
    r = tg.testing.check_entry(out.grad_fn)
    assert r.ok, repr(r)
    assert bool(r) and r.worst_error < 1e-5 and r.checked > 0
    assert "OK" in repr(r)


def test_check_entry_wrong_override_names_input():
    a = named(tg.randn(3, 4, requires_grad=True), "a")
    b = named(tg.randn(3, 4, requires_grad=True), "b")
    e = (a * b).grad_fn

    def wrong_b(entry, g):
        x, y = entry.inputs
        return g * y, g * y          # db should be g * x

    def wrong_a(entry, g):
        x, y = entry.inputs
        return g * x, g * x          # da should be g * y

    with tg.override_vjp("mul", wrong_b):
        r = tg.testing.check_entry(e)
    assert not r.ok and r.input == 1 and r.input_label == "b" and r.overridden
    assert "FAILED" in repr(r) and "input 1 (b)" in repr(r)
    assert len(r.index) == 2
    assert abs(r.analytic - r.numeric) == pytest.approx(r.worst_error)
    np.testing.assert_allclose(r.numeric, a.numpy()[r.index] * 0 + r.numeric)
    with tg.override_vjp("mul", wrong_a):
        r = tg.testing.check_entry(e)
    assert not r.ok and r.input == 0
    assert tg.testing.check_entry(e).ok  # the override is gone
    with tg.override_vjp("mul", wrong_a):
        with pytest.raises(tg.testing.GradcheckError, match="input 0"):
            tg.testing.check_entry(e, raise_exception=True)


def test_check_entry_correct_override_passes():
    def mul_vjp(entry, g):
        x, y = entry.inputs
        return g * y, g * x

    a = tg.randn(2, 3, requires_grad=True)
    e = (a * a).grad_fn
    with tg.override_vjp("mul", mul_vjp):
        assert tg.testing.check_entry(e).ok


def test_check_entry_function_needs_fn():
    class Square(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    class WrongSquare(Square):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * g

    x = tg.randn(4, requires_grad=True)
    y = Square.apply(x)
    with pytest.raises(ValueError, match="fn="):
        tg.testing.check_entry(y.grad_fn)
    assert tg.testing.check_entry(y.grad_fn, fn=Square.apply).ok
    w = WrongSquare.apply(x)
    assert not tg.testing.check_entry(w.grad_fn, fn=WrongSquare.apply).ok


def test_check_entry_samples_large_inputs():
    W = tg.randn(60, 50, requires_grad=True)
    x = tg.randn(2, 60)
    r = tg.testing.check_entry((x @ W).grad_fn, max_checks=100)
    assert r.ok and r.sampled and r.checked == 100


def test_entry_apply_reruns_ops():
    a = tg.randn(3, 4, requires_grad=True)
    for out in (a.reshape(4, 3), a[::2, 1:], a.astype(tg.float64), a.var(axis=1),
                tg.broadcast_to(a, (2, 3, 4))):
        again = _C._entry_apply(out.grad_fn, list(out.grad_fn.inputs))
        np.testing.assert_allclose(again.numpy(), out.numpy())


# ---------------------------------------------------------------------------
# profile
# ---------------------------------------------------------------------------

def test_profile_totals():
    loss_fn, params = mlp(n=8)
    rep = tg.inspect.profile(loss_fn)
    assert [r["op"] for r in rep.rows] == ["matmul", "add", "sigmoid", "matmul", "add", "sigmoid",
                                           "mse_loss"]
    mm = rep.rows[0]
    assert mm["flops"] == 2 * 8 * 4 * 5          # 2 M N K
    assert mm["bytes"] == (8 * 4 + 4 * 5 + 8 * 5) * 4
    assert rep.rows[1]["flops"] == 8 * 5          # elementwise: n
    assert rep.total_flops == sum(r["flops"] for r in rep.rows)
    assert rep.total_bytes == sum(r["bytes"] for r in rep.rows)
    assert rep.total_fwd_ms == pytest.approx(sum(r["fwd_ms"] for r in rep.rows))
    assert rep.total_bwd_ms == pytest.approx(sum(r["bwd_ms"] for r in rep.rows))
    assert all(r["fwd_ms"] > 0 and r["bwd_ms"] > 0 for r in rep.rows)
    assert rep.wall_bwd_ms > 0 and rep.loss is not None
    assert all(p.grad is not None for p in params.values())  # one training step's backward
    assert "total" in str(rep) and "matmul" in str(rep)
    by_op = {a["op"]: a for a in rep.by_op()}
    assert by_op["matmul"]["count"] == 2


def test_profile_function_entry_uses_timestamps():
    class Double(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = tg.randn(5, requires_grad=True)
    rep = tg.inspect.profile(lambda: Double.apply(x).sum())
    row = rep.rows[0]
    assert row["op"] == "Double" and row["flops"] is None and row["fwd_source"] == "timestamps"
    assert row["fwd_ms"] is not None and row["fwd_ms"] >= 0


def _example_on_tape(name):
    """Run the registry example 0 of op `name` in float64 with its float inputs
    requiring grad, on a Tape; returns (inputs, outputs, tape entries)."""
    example = next(o["examples"] for o in tg.ops() if o["name"] == name).split(";")[0]
    ptext = example.split("|", 1)[1] if "|" in example else ""
    ins, _ = _C._op_example(name, 0, "float64")
    ins = [x.detach().requires_grad_() if x.dtype == tg.float64 else x for x in ins]
    tg.manual_seed(7)
    with tg.Tape() as tape:
        out = _C._op_apply(name, list(ins), ptext)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return ins, outs, list(tape)


@pytest.mark.parametrize("name", [o["name"] for o in tg.ops()])
def test_every_registry_op_has_a_flop_count(name):
    """For every op of the registry the profiler states a count: its rule
    comes from the op's block (tg.ops()'s 'flops'), and on its registry
    example the op itself and every entry it records (a composite's
    constituents) get non-negative integer forward and backward counts."""
    op = next(o for o in tg.ops() if o["name"] == name)
    rule = op["flops"]
    assert rule["per"] in ("none", "output", "input", "matmul", "conv", "conv_grad"), rule
    assert rule["forward"] >= 0 and rule["backward"] >= 0
    if name == "custom":  # the op of Python-defined Functions: no example, no count (None)
        assert not op["examples"]
        return
    ins, outs, entries = _example_on_tape(name)
    f, b = tg.inspect.op_flops(name, [x.shape for x in ins], outs[0].shape,
                               grad_inputs=len(op["differentiable_inputs"]))
    assert isinstance(f, int) and isinstance(b, int) and f >= 0 and b >= 0, (f, b)
    for e in entries:
        f, b = tg.inspect.estimate_flops(e)
        assert isinstance(f, int) and isinstance(b, int) and f >= 0 and b >= 0, (e.op, f, b)


def test_flop_counts_of_known_ops():
    """The exact counts of a few rules (2MNK for matmul and linear, n and 3n for
    a transcendental op, 2n per gradient for a binary op, ~5n for softmax,
    0 for a view, 2 * out * C kH kW for conv2d)."""
    x = tg.randn(6, 4, requires_grad=True)
    W = tg.randn(4, 3, requires_grad=True)
    with tg.Tape() as tape:
        y = x @ W
        z = y.exp()
        s = z + y
        r = s.reshape(18)
        p = tg.softmax(s, axis=1)
    by = {e.op: e for e in tape}
    assert tg.inspect.estimate_flops(by["matmul"]) == (2 * 6 * 3 * 4, 2 * 2 * 6 * 3 * 4)
    assert tg.inspect.estimate_flops(by["exp"]) == (18, 3 * 18)
    assert tg.inspect.estimate_flops(by["add"]) == (18, 2 * 18 * 2)
    assert tg.inspect.estimate_flops(by["reshape"]) == (0, 0)
    assert tg.inspect.estimate_flops(by["softmax"]) == (5 * 18, 4 * 18)
    assert r.shape == (18,) and p.shape == (6, 3)
    assert tg.inspect.op_flops("linear", [(6, 4), (3, 4), (3,)], (6, 3), grad_inputs=1) == (144, 144)
    assert tg.inspect.op_flops("conv2d", [(2, 3, 8, 8), (5, 3, 3, 3)], (2, 5, 6, 6), grad_inputs=2) \
        == (2 * 2 * 5 * 6 * 6 * 27, 2 * 2 * 2 * 5 * 6 * 6 * 27)
    assert tg.inspect.op_flops("sum", [(7, 2)], ()) == (14, 14)
    with pytest.raises(ValueError, match="not a registry op"):
        tg.inspect.op_flops("no_such_op", [(2,)], (2,))
    for bad in ([(2, 3)], 5, [None]):  # conv2d needs a weight shape; shapes must be shapes
        with pytest.raises(ValueError, match=r"op_flops: conv2d counts 'conv' units.*expected"):
            tg.inspect.op_flops("conv2d", bad, (2, 5, 6, 6))


# ---------------------------------------------------------------------------
# compare_grads
# ---------------------------------------------------------------------------

def test_compare_grads_finds_the_wrong_one():
    loss_fn, params = mlp()
    loss_fn().backward()
    good = {k: v.grad.numpy().copy() for k, v in params.items()}
    assert tg.inspect.compare_grads(good, params).ok
    bad = dict(good)
    bad["W2"] = good["W2"].copy()
    bad["W2"][3, 1] += 0.5
    bad["b2"] = good["b2"] * 2
    rep = tg.inspect.compare_grads(bad, params)
    assert not rep.ok and rep.first_mismatch["name"] == "W2"
    assert rep["W2"]["index"] == (3, 1)
    assert rep["W2"]["expected"] == pytest.approx(good["W2"][3, 1] + 0.5)
    assert rep["W2"]["actual"] == pytest.approx(good["W2"][3, 1])
    assert rep["W1"]["ok"] and rep["b1"]["ok"] and not rep["b2"]["ok"]
    assert "2x" in rep["b2"]["hint"] and "division by 2" in rep["b2"]["hint"]
    assert "W2" in repr(rep)


def test_compare_grads_shapes_missing_and_models():
    loss_fn, params = mlp()
    loss_fn().backward()
    W1 = params["W1"].grad.numpy()
    rep = tg.inspect.compare_grads({"W1": W1.T, "nope": W1, "b1": tg.tensor(params["b1"].grad.numpy())},
                                   params)
    assert rep["W1"]["hint"] == "yours is the transpose of the tape's"
    assert "no tensor named 'nope'" in rep["nope"]["message"]
    assert rep["b1"]["ok"]

    class Model:
        def named_parameters(self):
            return iter(params.items())
    assert tg.inspect.compare_grads({"W1": W1}, Model()).ok
    fresh = tg.randn(2, requires_grad=True)
    assert "call loss.backward()" in tg.inspect.compare_grads({"f": np.zeros(2)}, {"f": fresh})["f"]["message"]


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------

def test_hooks_replace_grads_in_stepper_and_backward():
    loss_fn, params = mlp()
    calls = []
    h = params["b1"].register_hook(lambda g: calls.append(1) or tg.ones_like(g) * 7)
    tg.inspect.BackwardStepper(loss_fn()).finish()
    np.testing.assert_array_equal(params["b1"].grad.numpy(), np.full(5, 7.0))
    assert calls == [1]
    clear(params)
    loss_fn().backward()
    np.testing.assert_array_equal(params["b1"].grad.numpy(), np.full(5, 7.0))
    h.remove()


def test_hook_on_intermediate_changes_upstream_grads():
    x = named(tg.tensor([1.0, 2.0], requires_grad=True), "x")
    y = x * 3
    y.register_hook(lambda g: g * 0)
    st = tg.inspect.BackwardStepper((y * y).sum())
    st.finish()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_matmul_mixed_dtype_transposed_regression():
    """Found while writing the notebook: float64 @ transposed float32 used the
    view's strides on the converted (contiguous) copy (csrc/ops/linalg.c)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 3))
    B = rng.standard_normal((4, 3)).astype(np.float32)
    got = (tg.tensor(A) @ tg.tensor(B).T).numpy()
    np.testing.assert_allclose(got, A @ B.T.astype(np.float64), rtol=1e-6)
    got = (tg.tensor(B).T.astype(tg.float32).T @ tg.tensor(A.T.copy())).numpy()
    np.testing.assert_allclose(got, B.astype(np.float64) @ A.T, rtol=1e-6)


@pytest.mark.parametrize("module", ["tapegrad.inspect", "tapegrad.inspect.table", "tapegrad.inspect.stepper",
                                    "tapegrad.inspect.anomaly", "tapegrad.inspect.checks",
                                    "tapegrad.inspect.compare", "tapegrad.inspect.draw",
                                    "tapegrad.inspect.explore", "tapegrad.inspect.profile",
                                    "tapegrad._display", "tapegrad._gradcheck"])
def test_docstring_examples(module):
    import doctest
    import importlib
    mod = importlib.import_module(module)
    res = doctest.testmod(mod, extraglobs={"tg": tg}, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
