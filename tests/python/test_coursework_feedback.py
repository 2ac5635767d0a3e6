"""Feedback first lines, assignments 01-04 in both languages (issue 17).

``nbgrader validate`` and the gradebook's one-line views keep about 90
characters of a failure. For each assignment 01-04, released in English and
in Chinese, a class of wrong students (the mistakes the graders know: a
swapped product, a sign error, a missing factor or mean, a transpose, a
missing unbroadcast, a wrong return count, None, an exception, a forgotten
momentum or bias correction) is graded with ``grade-all`` in one command,
and every failing test's feedback

- has a first line of fewer than 90 characters,
- names the useful part: the student's function or the gradient that is
  wrong (not only the exception's name),
- shows no library traceback,

and the Chinese submissions get exactly the English ones' feedback (the code
and tests are the same cells). Assignment 05 has its own sweep
(test_coursework_attention.py).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from tapegrad.coursework.release import translate_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = ROOT / "notebooks" / "assignments"
MNIST = os.environ.get("TAPEGRAD_DATA") or str(ROOT.parent / "shared" / "data" / "mnist")
LIMIT = 90

# assignment -> student -> [(grade_id, old text of the solution, new text)]
MISTAKES = {
    "01_backprop_by_hand": {
        "factors": [
            ("df", "2 * s * np.cos(x)", "s * np.cos(x)"),                    # 1/2 of the expected
            ("neuron", "dz = 2 * (y - t)", "dz = 2 * (t - y)"),              # sign
            ("sigmoid_backward", "dy * y * (1 - y)", "dy * y"),
            ("backprop", "dY = 2 * (Y - T) / Y.size", "dY = 2 * (Y - T)"),   # the mean forgotten
        ],
        "shapes": [
            ("df", "return float(np.exp(s * s) * 2 * s * np.cos(x))", "return None"),
            ("neuron", 'return {"w": dz * x, "b": dz, "x": dz * w}', 'return {"w": dz * x, "x": dz * w}'),
            ("sigmoid_backward", "return dy * y * (1 - y)", "return undefined_name"),
            ("backprop", '"W1": d1.T @ X', '"W1": X.T @ d1'),                 # transposed
        ],
    },
    "02_vjp_rules": {
        "values": [
            ("mul_vjp", "return g * b, g * a", "return g * a, g * b"),          # swapped
            ("div_vjp", "-g * a / (b * b)", "g * a / (b * b)"),                 # sign
            ("exp_vjp", "return g * entry.output", "return g"),
            ("sigmoid_vjp", "return g * y * (1 - y)", "return 0.25 * g * y * (1 - y)"),
            ("add_vjp", "return unbroadcast(g, a.shape), unbroadcast(g, b.shape)", "return g, g"),
            ("matmul_vjp", "return g @ B.T, A.T @ g", "return g @ B.T, g.T @ A"),
            ("cross_entropy_vjp", "* (g / n), None", "* g, None"),               # n times
        ],
        "forms": [
            ("mul_vjp", "return g * b, g * a", "return (g * b,)"),
            ("div_vjp", "return g / b, -g * a / (b * b)", "return g / b, None"),
            ("exp_vjp", "return g * entry.output", "return 'exp'"),
            ("sigmoid_vjp", "return g * y * (1 - y)", "return g * y * (1 - y) / undefined_name"),
            ("sum_vjp", "return g.broadcast_to(*x.shape)", "return g"),
            ("add_vjp", "    return g\n", "    return g * 1\n"),                 # unbroadcast: nothing
            ("matmul_vjp", "return g @ B.T, A.T @ g", "return g @ B, A @ g"),
            ("cross_entropy_vjp", "return (p - tg.one_hot(labels, c, dtype=z.dtype)) * (g / n), None",
             "return p * (g / n), None"),
        ],
    },
    "03_mnist_with_your_vjps": {
        "values": [
            ("rules_from_02", "return g @ B.T, A.T @ g", "return g @ B.T, g.T @ A"),
            ("rules_from_02", "return unbroadcast(g, a.shape), unbroadcast(g, b.shape)", "return g, g"),
            ("rules_from_02", "* (g / n), None", "* g, None"),
            ("relu_vjp", "return g * (x > 0).astype(g.dtype)", "return g"),
        ],
    },
    "04_optimizer": {
        "steps": [
            ("my_sgd", "p -= self.lr * g", "p += self.lr * g"),              # ascent
            ("my_adam", "m_hat = m / (1 - beta1 ** self.t)", "m_hat = m"),    # no bias correction
        ],
        "momentum": [
            ("my_sgd", "self.buffers[i] += g", "self.buffers[i] += (1 - self.momentum) * g"),
            ("my_adam", "v += (1 - beta2) * g * g", "v += (1 - beta2) * g"),
        ],
    },
}

# what a failing test's first line must name (any of these): the student's
# function or the gradient, or, for an error raised by the student's code, its
# culprit (the op and shapes a library call refused, the undefined name)
NAMES = {
    "df_test": ("f'(",), "neuron_test": ("of w", "of b", "of x", "entry 'b'", "of L"),
    "sigmoid_backward_test": ("dz", "undefined_name"),
    "backprop_test": ("W1", "W2", "b1", "b2", "undefined_name"), "training_test": ("losses", "loss"),
    "mul_vjp_test": ("mul_vjp",), "div_vjp_test": ("div_vjp",), "exp_vjp_test": ("exp_vjp",),
    "sigmoid_vjp_test": ("sigmoid_vjp", "undefined_name"), "sum_vjp_test": ("sum_vjp",),
    "add_vjp_test": ("add_vjp", "unbroadcast"), "matmul_vjp_test": ("matmul_vjp", "matmul: shapes"),
    "cross_entropy_vjp_test": ("cross_entropy_vjp",), "relu_vjp_test": ("relu_vjp",),
    "all_together_test": ("gradient of", "rules were never called", "_vjp", "the VJP of '"),
    "accuracy_test": ("accuracy", "never called"),
    "sgd_test": ("MySGD", "parameter", "SGD"), "sgd_momentum_test": ("MySGD", "parameter", "momentum"),
    "adam_test": ("MyAdam", "parameter", "Adam"),
}


def _student(source: Path, mistakes) -> nbformat.NotebookNode:
    nb = nbformat.read(str(source), as_version=4)
    for gid, old, new in mistakes:
        (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
        assert old in cell.source, (source.name, gid, old)
        cell.source = cell.source.replace(old, new, 1)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    sub = tmp / "submitted"
    for name, students in MISTAKES.items():
        source = SRC_DIR / f"{name}.ipynb"
        for st, mistakes in students.items():
            nb = _student(source, mistakes)
            for lang in ("en", "zh"):
                d = sub / f"{st}_{lang}" / name[:2]
                d.mkdir(parents=True)
                nbformat.write(translate_notebook(nb, lang), str(d / source.name))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), TAPEGRAD_NOTEBOOK_FAST="1")
    if os.path.isdir(MNIST):
        env["TAPEGRAD_DATA"] = MNIST
    out = tmp / "grades"
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "grade-all", str(sub),
                        "--source", str(SRC_DIR), "--out", str(out), "--jobs", "2",
                        "--time-limit", "600", "--timeout", "300"],
                       capture_output=True, text=True, env=env, timeout=3000)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    import json
    reports = {}
    for path in out.glob("*/*/*.report.json"):
        st, a = path.parts[-3], path.parts[-2]
        reports[(st, a)] = json.loads(path.read_text())
    return reports


def _failures(graded, lang):
    for (st, a), rep in sorted(graded.items()):
        if st.endswith("_" + lang):
            for t in rep["tests"]:
                if t["passed"] is False:
                    yield st, a, t


def test_every_student_was_graded_and_every_mistake_costs_points(graded):
    expected = {(f"{st}_{lang}", name[:2]) for name, sts in MISTAKES.items() for st in sts
                for lang in ("en", "zh")}
    assert set(graded) == expected
    for key, rep in graded.items():
        assert rep["score"] < rep["max_score"], key
        # (a wrong rule may break a cell that is not a test, e.g. the training
        # loop of 03: that is reported as an error, and must read well too)
        for err in rep["errors"]:
            assert "Traceback" not in err["error"], (key, err)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_first_lines_are_short_and_name_the_mistake(graded, lang):
    checked = 0
    problems = []
    for st, a, t in _failures(graded, lang):
        fb = t["feedback"]
        first = fb.split("\n")[0]
        where = f"{st}/{a}/{t['grade_id']}: {first!r}"
        if len(first) >= LIMIT:
            problems.append(f"{len(first)} characters: {where}")
        if not any(n in first for n in NAMES[t["grade_id"]]):
            problems.append(f"names none of {NAMES[t['grade_id']]}: {where}")
        if "Traceback" in fb or re.search(r'File "[^"]*tapegrad', fb):
            problems.append(f"a library traceback: {where}")
        if not fb.startswith(("CheckError: ", "AssertionError: ")) and "(raised at In [" not in fb:
            problems.append(f"an error without its place in the notebook: {where}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 30


def test_chinese_submissions_get_the_english_feedback(graded):
    for (st, a), rep in graded.items():
        if st.endswith("_zh"):
            en = graded[(st[:-3] + "_en", a)]
            assert [(t["grade_id"], t["points"], t["feedback"]) for t in rep["tests"]] == \
                   [(t["grade_id"], t["points"], t["feedback"]) for t in en["tests"]], (st, a)


def test_a_test_cell_shows_no_result_that_nbgrader_takes_for_a_score():
    """nbgrader's autograde reads a test cell's result (execute_result) as
    its partial-credit score and writes a warning when it is not a number;
    a cell ending with assert_vjp_correct(...) prints the checks instead."""
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\nsys.path.insert(0, %r)\n"
        "from tapegrad.coursework import assert_vjp_correct\n"
        "def mul_vjp(entry, g):\n    a, b = entry.inputs\n    return g * b, g * a\n"
        "assert_vjp_correct('mul', mul_vjp)" % str(ROOT / "python"))]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outs = nb.cells[0].outputs
    assert [o.output_type for o in outs] == ["stream"], outs
    assert outs[0].name == "stdout" and outs[0].text.count("check_entry #") == 2
    assert "OK" in outs[0].text
    try:
        from nbgrader.utils import determine_grade
    except ImportError:
        return
    nb.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t",
                                        "points": 2, "locked": True, "schema_version": 3}
    assert determine_grade(nb.cells[0]) == (2, 2)


@pytest.mark.parametrize("src", sorted(SRC_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_test_cells_show_nothing_nbgrader_scores(src):
    """In the executed instructor notebooks, no test cell has a result
    (nbgrader: partial credit) or writes to stderr (nbgrader: 0 points)."""
    nb = nbformat.read(str(src), as_version=4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
             and c.cell_type == "code"]
    assert tests
    for c in tests:
        kinds = [(o.output_type, o.get("name")) for o in c.outputs]
        assert ("execute_result", None) not in kinds and ("stream", "stderr") not in kinds, \
            (c.metadata["nbgrader"]["grade_id"], kinds)
