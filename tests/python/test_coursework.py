"""tapegrad.coursework: the assignments and the release / check / grade tools.

- the released (student) version of every assignment fails all its tests
  with NotImplementedError feedback; the source version passes with full
  points (fast setting for MNIST);
- ``release`` is idempotent and leaves no solution or hidden-test text;
  the shipped student versions are the release of the sources;
- the grader's JSON report is byte-stable; a student function that raises,
  loops forever, returns the wrong shape or kills the kernel is reported;
- the assertion helpers' feedback names the entry, the input and the worst
  element.
"""
import doctest
import functools
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from tapegrad import coursework as cw  # noqa: E402
from tapegrad.coursework import (CheckError, NotebookFormatError, assert_grads_close,  # noqa: E402
                                 assert_vjp_correct)

ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = ROOT / "notebooks" / "assignments"
SOURCES = sorted(SRC_DIR.glob("*.ipynb"))
IDS = [p.stem for p in SOURCES]
SHIPPED = cw.assignments_dir()
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MNIST = os.environ.get("TAPEGRAD_DATA") or "/work/shared/data/mnist"


def kernel_env():
    env = {"TAPEGRAD_NOTEBOOK_FAST": "1"}
    if os.path.isdir(MNIST):
        env["TAPEGRAD_DATA"] = MNIST
    return env


@functools.lru_cache(maxsize=None)
def mnist_available():
    if os.path.isdir(MNIST):
        return True
    try:  # the cache directory, without downloading
        tg.data.mnist.load_data(download=False, verbose=False)
        return True
    except Exception:  # noqa: BLE001
        return False


def needs_data(path):
    if "mnist" in path.name and not mnist_available():
        pytest.fail("MNIST files not found: set TAPEGRAD_DATA to the directory holding them "
                    "(CI sets it to ../shared/data/mnist)")


def regions(source, begin, end):
    out, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def test_there_are_five_assignments():
    assert [p.name for p in SOURCES] == [
        "01_backprop_by_hand.ipynb", "02_vjp_rules.ipynb", "03_mnist_with_your_vjps.ipynb",
        "04_optimizer.ipynb", "05_attention_vjp.ipynb"]


# ---------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_release_is_idempotent_and_leaves_nothing_behind(src, tmp_path):
    (once,) = cw.release(src, tmp_path / "once")
    (twice,) = cw.release(once, tmp_path / "twice")
    assert once.read_bytes() == twice.read_bytes()
    text = once.read_text()
    for marker in MARKERS:
        assert marker not in text
    source = nbformat.read(str(src), as_version=4)
    student = nbformat.read(str(once), as_version=4)
    hidden_or_solution = []
    for cell in source.cells:
        hidden_or_solution += regions(cell.source, "BEGIN SOLUTION", "END SOLUTION")
        hidden_or_solution += regions(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    # the text outside the regions: a hidden test may repeat a visible line
    visible = []
    for cell in source.cells:
        inside = False
        for line in cell.source.split("\n"):
            if any(m in line for m in MARKERS):
                inside = "BEGIN" in line
            elif not inside:
                visible.append(line.strip())
    body = {line.strip() for c in student.cells for line in c.source.split("\n")}
    leaked = [line.strip() for line in hidden_or_solution
              if len(line.strip()) >= 8 and line.strip() in body and line.strip() not in visible]
    assert len([x for x in hidden_or_solution if x.strip()]) > 3
    assert not leaked, leaked
    assert len(student.cells) == len(source.cells)
    for s, c in zip(source.cells, student.cells):
        assert c.metadata.get("nbgrader") == s.metadata.get("nbgrader")
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
            assert "execution" not in c.metadata
        if cw.notebook.is_solution(s) and s.cell_type == "code":
            # the signatures stay, the bodies become stubs
            for line in s.source.split("\n"):
                if line.lstrip().startswith(("def ", "class ")):
                    assert line in c.source
            assert "raise NotImplementedError(" in c.source and "# YOUR CODE HERE" in c.source
        if cw.notebook.is_solution(s) and s.cell_type == "markdown":
            assert "YOUR ANSWER HERE" in c.source


def test_source_notebooks_are_executed_with_outputs():
    for src in SOURCES:
        nb = nbformat.read(str(src), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), src.name
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, src.name


def test_committed_mnist_run_reaches_97_percent():
    nb = nbformat.read(str(SRC_DIR / "03_mnist_with_your_vjps.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    accs = [float(a) for a in re.findall(r"test accuracy (0\.\d+)", text)]
    assert len(accs) == 10 and accs[-1] >= 0.97, accs


def test_shipped_student_versions_are_the_release_of_the_sources(tmp_path):
    written = cw.release(SRC_DIR, tmp_path)
    assert sorted(p.name for p in SHIPPED.glob("*.ipynb")) == sorted(p.name for p in written)
    for p in written:
        assert p.read_bytes() == (SHIPPED / p.name).read_bytes(), (
            f"{p.name}: run `python notebooks/assignments/src/cwtools.py release`")


def test_release_directory_takes_only_notebooks(tmp_path):
    written = cw.release(SRC_DIR, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in SOURCES]
    assert len(written) == 5


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = list(cells)
    return nb


def _cell(src, kind="code", **meta):
    c = nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src)
    if meta:
        m = {"grade": False, "solution": False, "locked": False, "schema_version": 3}
        m.update(meta)
        c.metadata["nbgrader"] = m
    return c


def test_release_keeps_indentation_and_names_the_method():
    nb = _nb(_cell("class Opt:\n    def step(self):\n        for p in self.params:\n"
                   "            ### BEGIN SOLUTION\n            p -= 1\n            ### END SOLUTION\n"
                   "        return self", solution=True, grade_id="opt"),
             _cell("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION", solution=True, grade_id="top"),
             _cell("no markers at all", solution=True, grade_id="whole"),
             _cell("Explain.\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", kind="markdown",
                   solution=True, grade=True, grade_id="why", points=1),
             _cell("Because.", kind="markdown", solution=True, grade=True, grade_id="why2", points=1),
             _cell("assert x == 2\n### BEGIN HIDDEN TESTS\nassert x != 3\n### END HIDDEN TESTS\n",
                   grade=True, grade_id="t", points=1))
    out = cw.release_notebook(nb)
    assert out.cells[0].source == (
        "class Opt:\n    def step(self):\n        for p in self.params:\n"
        "            # YOUR CODE HERE\n"
        "            raise NotImplementedError('Opt.step is not written yet: replace this line with your code')\n"
        "        return self")
    assert out.cells[1].source.startswith("x = 1\n# YOUR CODE HERE\nraise NotImplementedError(")
    assert "'top'" in out.cells[1].source
    assert out.cells[2].source.startswith("# YOUR CODE HERE\nraise NotImplementedError(")
    assert out.cells[3].source == "Explain.\n\nYOUR ANSWER HERE"
    assert out.cells[4].source == "YOUR ANSWER HERE"
    assert out.cells[5].source == "assert x == 2"
    again = cw.release_notebook(out)
    assert [c.source for c in again.cells] == [c.source for c in out.cells]
    assert nb.cells[0].source.count("BEGIN SOLUTION") == 1  # the input is not modified


@pytest.mark.parametrize("cells, match", [
    ([_cell("### BEGIN SOLUTION\nx = 1", solution=True, grade_id="a")], "never closed"),
    ([_cell("x = 1\n### END SOLUTION", solution=True, grade_id="a")], "without"),
    ([_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "not an answer cell"),
    ([_cell("### BEGIN HIDDEN TESTS\nx = 1\n### END HIDDEN TESTS", solution=True, grade_id="a")],
     "not graded"),
    ([_cell("x", solution=True, grade_id="a"), _cell("y", solution=True, grade_id="a")], "duplicate"),
    ([_cell("x", solution=True, grade_id="bad id!")], "grade_id"),
    ([_cell("x", grade=True, grade_id="g")], "points"),
    ([_cell("text", kind="markdown", solution=True, grade_id="m")], "markdown"),
])
def test_release_rejects_broken_notebooks(cells, match):
    with pytest.raises(NotebookFormatError, match=match):
        cw.release_notebook(_nb(*cells))


def test_release_cli_and_errors(tmp_path):
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_nb(_cell("### BEGIN SOLUTION\nx = 1", solution=True, grade_id="a")), str(bad))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "release", str(bad),
                        str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "bad.ipynb" in r.stderr and "never closed" in r.stderr
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "release",
                        str(SOURCES[0]), str(tmp_path / "x.ipynb")], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and (tmp_path / "x.ipynb").exists(), r.stderr


def test_export_tests_writes_points_and_hidden_tests(tmp_path):
    written = cw.export_tests(SRC_DIR / "02_vjp_rules.ipynb", tmp_path)
    names = sorted(p.stem for p in written)
    assert "mul_vjp_test" in names and len(names) == 9
    text = (tmp_path / "add_vjp_test.py").read_text()
    assert text.startswith("# points: 3\n")
    assert "variants=(1, 2)" in text  # the hidden part is there, without its markers
    assert "HIDDEN" not in text


# ---------------------------------------------------------------------------
# the assertion helpers
# ---------------------------------------------------------------------------

def builtin(entry, g):
    return tg._C._builtin_vjp(entry, g)


@pytest.mark.parametrize("op", cw.GRAPH_OPS)
def test_builtin_rules_pass_assert_vjp_correct(op):
    variants = (0, 1, 2, 3, 4) if op in ("mul", "div", "sub") else (0, 1, 2)
    results = assert_vjp_correct(op, builtin, variants=variants)
    assert results and all(r.ok for r in results)


def test_wrong_values_name_entry_input_and_element():
    def mul_vjp(entry, g):
        a, b = entry.inputs
        return g * a, g * b  # swapped

    with pytest.raises(CheckError) as info:
        assert_vjp_correct("mul", mul_vjp)
    err = info.value
    msg = str(err)
    assert isinstance(err, AssertionError)
    assert msg.startswith("mul_vjp on tape entry #") and "(mul)" in msg
    assert re.search(r"input [01] \([ab], shape \(3, 4\)\): wrong at index \(\d, \d\): your VJP "
                     r"gives [-\d.e]+, finite differences give [-\d.e]+", msg), msg
    assert err.op == "mul" and err.seq >= 1 and err.input in (0, 1) and len(err.index) == 2


@pytest.mark.parametrize("rule, match", [
    (lambda e, g: (g,), r"returned 1 gradient for tape entry #\d+ \(mul\), expected 2"),
    (lambda e, g: "oops", r"returned a str for tape entry"),
    (lambda e, g: (None, g), r"input 0 \(a, shape \(3, 4\)\): returned None"),
    (lambda e, g: (g.sum(), g), r"input 0 \(a, shape \(3, 4\)\): the gradient returned has shape "
                                r"\(\), expected \(3, 4\)"),
    (lambda e, g: (g.astype(tg.float32), g), r"has dtype float32, expected float64"),
    (lambda e, g: (g * e.inputs[1] * 1.01, g * e.inputs[0]), r"wrong at index"),
])
def test_bad_rules_are_reported(rule, match):
    with pytest.raises(CheckError, match=match):
        assert_vjp_correct("mul", rule)


def test_small_errors_below_finite_difference_tolerance_are_caught_by_the_builtin_comparison():
    def mul_vjp(entry, g):
        a, b = entry.inputs
        return g * b * (1 + 1e-5), g * a

    with pytest.raises(CheckError, match="the built-in VJP gives"):
        assert_vjp_correct("mul", mul_vjp)


def test_broadcast_shape_gets_a_hint():
    def add_vjp(entry, g):
        return g, g

    with pytest.raises(CheckError, match=r"input 1 \(b, shape \(4,\)\): the gradient returned has "
                                         r"shape \(3, 4\), expected \(4,\).*broadcast along axes "
                                         r"\(0,\)"):
        assert_vjp_correct("add", add_vjp)


def test_student_exceptions_propagate_unchanged():
    boom = NotImplementedError("mul_vjp is not written yet")

    def mul_vjp(entry, g):
        raise boom

    with pytest.raises(NotImplementedError) as info:
        assert_vjp_correct("mul", mul_vjp)
    assert info.value is boom


def test_override_is_removed_after_a_failed_check():
    with pytest.raises(CheckError):
        assert_vjp_correct("exp", lambda e, g: g)
    x = tg.tensor([1.0], dtype=tg.float64, requires_grad=True)
    x.exp().sum().backward()
    assert x.grad.item() == pytest.approx(np.e)


def test_custom_graph():
    def tanh_vjp(entry, g):
        (x,) = entry.inputs
        return g * (1 - x.tanh() ** 2)

    res = assert_vjp_correct("tanh", tanh_vjp, graph=lambda x, W: (x @ W).tanh().sum(),
                             inputs={"x": np.ones((2, 3)), "W": np.eye(3)})
    assert len(res) == 1 and res[0].op == "tanh"
    with pytest.raises(ValueError, match="records no 'exp' entry"):
        assert_vjp_correct("exp", tanh_vjp, graph=lambda x: x.sum(), inputs={"x": np.ones(2)})


def test_assert_grads_close_messages():
    assert_grads_close({"W": np.ones((2, 3))}, {"W": tg.ones(2, 3)})
    with pytest.raises(CheckError, match=r"the gradient of W has shape \(3, 2\), expected \(2, 3\) "
                                         r"\(transposed\?\)"):
        assert_grads_close({"W": np.ones((3, 2))}, {"W": np.ones((2, 3))})
    with pytest.raises(CheckError, match=r"the gradient of b has shape \(1, 3\), expected \(3,\) "
                                         r"\(same number"):
        assert_grads_close({"b": np.ones((1, 3))}, {"b": np.ones(3)})
    with pytest.raises(CheckError, match="your result has no entry 'b'"):
        assert_grads_close({"W": 1.0}, {"b": 1.0})
    with pytest.raises(CheckError, match="the gradient of b is None"):
        assert_grads_close({"b": None}, {"b": 1.0})
    with pytest.raises(CheckError, match=r"the parameter W is wrong at index \(1, 0\): yours 5, "
                                         r"expected 1 \(1 of 4 elements differ"):
        assert_grads_close({"W": [[1.0, 1.0], [5.0, 1.0]]}, {"W": np.ones((2, 2))},
                           what="the parameter")
    with pytest.raises(CheckError, match=r"^the derivative f' is wrong: yours 2, expected 1$"):
        assert_grads_close({"f'": 2.0}, {"f'": 1.0}, what="the derivative")


@pytest.mark.parametrize("name", ["checks", "notebook", "release", "grade", "sealed", "gradeall"])
def test_docstring_examples(name):
    importlib.import_module(f"tapegrad.coursework.{name}")
    mod = sys.modules[f"tapegrad.coursework.{name}"]  # (the package exports functions of these names)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0


def test_package_docstring_examples():
    res = doctest.testmod(cw, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted >= 3


# ---------------------------------------------------------------------------
# check and grade (run notebooks in a kernel)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_source_version_passes_with_full_points(src, tmp_path):
    needs_data(src)
    report = cw.check(src, env=kernel_env(), timeout=600)
    assert report.ok, str(report)
    assert report.score == report.max_score > 0
    assert not report.errors, report.errors
    assert all(t.feedback == "passed" for t in report.auto)


@pytest.mark.parametrize("name", [p.name for p in SOURCES], ids=IDS)
def test_released_version_fails_every_test_with_not_implemented(name, tmp_path):
    path = SHIPPED / name
    needs_data(path)
    report = cw.check(path, env=kernel_env(), timeout=600)
    assert report.auto and not any(t.passed for t in report.auto)
    assert report.score == 0 and report.max_score > 0
    for t in report.auto:
        assert "NotImplementedError" in t.feedback, (t.grade_id, t.feedback)
        assert "is not written yet: replace this line with your code" in t.feedback


def _student_notebook(path):
    """A synthetic student: one correct rule, one that raises, one that
    loops forever, one with the wrong shape, then a cell that kills the kernel."""
    setup = _cell("import tapegrad as tg\nfrom tapegrad.coursework import assert_vjp_correct",
                  locked=True, grade_id="setup")
    cells = [setup,
             _cell("def mul_vjp(entry, g):\n    a, b = entry.inputs\n    return g * b, g * a",
                   solution=True, grade_id="mul"),
             _cell("assert_vjp_correct('mul', mul_vjp)", grade=True, grade_id="mul_test", points=2,
                   locked=True),
             _cell("def exp_vjp(entry, g):\n    return g / 0.0 + undefined_name",
                   solution=True, grade_id="exp"),
             _cell("assert_vjp_correct('exp', exp_vjp)", grade=True, grade_id="exp_test", points=1,
                   locked=True),
             _cell("def sigmoid_vjp(entry, g):\n    while True:\n        pass",
                   solution=True, grade_id="sigmoid"),
             _cell("assert_vjp_correct('sigmoid', sigmoid_vjp)", grade=True,
                   grade_id="sigmoid_test", points=1, locked=True),
             _cell("def add_vjp(entry, g):\n    return g, g", solution=True, grade_id="add"),
             _cell("assert_vjp_correct('add', add_vjp)", grade=True, grade_id="add_test", points=3,
                   locked=True),
             _cell("x = 1\nassert x == 2", grade=True, grade_id="bare_assert", points=1, locked=True),
             _cell("Because.", kind="markdown", solution=True, grade=True, grade_id="essay", points=2),
             _cell("import os\nos._exit(1)", grade=True, grade_id="crash", points=1, locked=True),
             _cell("assert True", grade=True, grade_id="after_crash", points=1, locked=True)]
    nbformat.write(_nb(*cells), str(path))
    return path


def test_grader_reports_bad_students_and_its_report_is_stable(tmp_path):
    nb = _student_notebook(tmp_path / "student.ipynb")
    tests = tmp_path / "hidden"
    cw.export_tests(nb, tests)  # (the instructor's tests are the notebook's; only they count)
    # hidden tests replace the notebook's cell (points from the file), or run at the end
    (tests / "mul_test.py").write_text("# points: 5\nassert_vjp_correct('mul', mul_vjp, variants=(1, 2))\n")
    (tests / "orphan.py").write_text("# points: 1\nassert mul_vjp is not None\n")
    out1, out2 = tmp_path / "r1.json", tmp_path / "r2.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    for out in (out1, out2):
        r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "grade", str(nb),
                            "--tests", str(tests), "--out", str(out), "--timeout", "4"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
    assert out1.read_bytes() == out2.read_bytes()
    text = out1.read_text()
    assert str(tmp_path) not in text
    rep = json.loads(text)
    assert list(rep) == sorted(rep)
    by_id = {t["grade_id"]: t for t in rep["tests"]}
    assert [t["grade_id"] for t in rep["tests"]] == [
        "mul_test", "exp_test", "sigmoid_test", "add_test", "bare_assert", "essay", "crash",
        "after_crash", "orphan"]
    for t in rep["tests"]:
        assert sorted(t) == ["feedback", "grade_id", "max_points", "passed", "points"]
    assert by_id["mul_test"] == {"grade_id": "mul_test", "points": 5, "max_points": 5,
                                 "passed": True, "feedback": "passed"}
    assert by_id["exp_test"]["passed"] is False
    assert by_id["exp_test"]["feedback"].startswith(
        "NameError: name 'undefined_name' is not defined (raised at In [")
    assert by_id["sigmoid_test"]["feedback"] == "timed out after 4 s"
    add = by_id["add_test"]["feedback"]
    assert add.startswith("CheckError: add_vjp on tape entry #") and "expected (4,)" in add
    assert by_id["bare_assert"]["feedback"].startswith("AssertionError: failed: assert x == 2")
    assert by_id["essay"] == {"grade_id": "essay", "points": 0, "max_points": 2, "passed": None,
                              "feedback": "graded by hand"}
    assert "kernel died" in by_id["crash"]["feedback"]
    assert by_id["after_crash"]["feedback"] == "not run: the kernel died while running an earlier cell"
    assert by_id["orphan"]["passed"] is False and "no cell with this grade_id" in by_id["orphan"]["feedback"]
    assert rep["score"] == 5 and rep["max_score"] == 5 + 1 + 1 + 3 + 1 + 1 + 1 + 1
    assert rep["manual_points"] == 2 and rep["passed"] == 1


def test_grade_with_exported_hidden_tests(tmp_path):
    src = SRC_DIR / "04_optimizer.ipynb"
    tests = tmp_path / "hidden"
    cw.export_tests(src, tests)
    good = cw.grade(src, tests, out=tmp_path / "good.json", timeout=300)
    assert good.ok and good.score == good.max_score == 6
    bad = cw.grade(SHIPPED / src.name, tests, timeout=300)
    assert bad.score == 0 and all("NotImplementedError" in t.feedback for t in bad.auto)
    assert json.loads((tmp_path / "good.json").read_text())["score"] == 6


def test_check_cli_prints_pass_and_fail(tmp_path):
    nb = _nb(_cell("def f():\n    return 1", solution=True, grade_id="f"),
             _cell("assert f() == 1", grade=True, grade_id="ok_test", points=1, locked=True),
             _cell("assert f() == 2, 'f() should be 2'", grade=True, grade_id="bad_test", points=2,
                   locked=True))
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(path))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "check", str(path)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0] == "tiny.ipynb: 1 of 2 tests passed, 1/3 points"
    assert re.match(r"\s+PASS\s+1/1\s+ok_test$", lines[1])
    assert re.match(r"\s+FAIL\s+0/2\s+bad_test$", lines[2])
    assert lines[3].strip().startswith("AssertionError: f() should be 2 (raised at In [3], line 1)")


@pytest.mark.parametrize("factor, hint", [(0.2, "yours is 1/5 of the expected"),
                                          (-1.0, "yours is minus the expected (a sign error?)"),
                                          (3.0, "yours is 3 times the expected"),
                                          (2.5, "yours is 2.5 times the expected")])
def test_a_constant_multiple_of_the_gradient_is_named(factor, hint):
    def scaled_mul_vjp(entry, g):
        a, b = entry.inputs
        return g * b * factor, g * a * factor

    with pytest.raises(CheckError) as err:
        assert_vjp_correct("mul", scaled_mul_vjp)
    assert str(err.value).endswith("; " + hint)
    w = np.array([1.0, -2.0, 3.0])
    with pytest.raises(CheckError) as err:
        assert_grads_close({"w": w * factor}, {"w": w})
    assert str(err.value).endswith("; " + hint)


def test_no_constant_multiple_hint_for_other_mistakes():
    w = np.array([1.0, -2.0, 3.0])
    for wrong in (np.zeros(3), w + 1, w[::-1]):
        with pytest.raises(CheckError) as err:
            assert_grads_close({"w": wrong}, {"w": w})
        assert "yours is" not in str(err.value)


def test_entry_numbers_count_from_the_test_graph():
    """check and grade run different numbers of tests before a given one:
    the entry number in the feedback must not depend on that."""
    def wrong_mul_vjp(entry, g):
        a, b = entry.inputs
        return g * a, g * b

    def message():
        with pytest.raises(CheckError) as err:
            assert_vjp_correct("mul", wrong_mul_vjp)
        return str(err.value), err.value.seq

    first = message()
    for _ in range(5):  # other tapes in between
        (tg.ones(3, requires_grad=True) * 2).sum().backward()
    assert message() == first
    # example_graph("mul") records mul (#1), mul by the weights (#2), sum (#3)
    assert first[0].startswith("wrong_mul_vjp on tape entry #1 (mul), input ") and first[1] == 1
