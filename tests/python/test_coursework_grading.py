"""Grading that a student cannot game (issue 23), and grading a class.

A class of submissions of assignment 2 (and two of assignment 4) is graded
once with ``grade-all``: the honest solution gets full marks, the blank
notebook 0, and every cheating notebook (each starts from wrong "return
zeros" rules or the blank notebook, plus one trick in its first answer
cell) scores what the blank notebook scores. The tricks: rebinding each
checker name, assigning to ``tapegrad.coursework.*``, patching ``tg.Tensor``
methods and the functions the checks use, making every later cell skip its
code, writing the instructor's notebook and another student's submission on
disk, an infinite loop (one that ignores interrupts too), ``os._exit(0)``,
printing a fake score and adding a test cell of its own.
"""
import csv
import json
import os
import re
import shutil
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
from tapegrad.coursework import gradeall, sealed  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = ROOT / "notebooks" / "assignments"
SHIPPED = cw.assignments_dir()
NB2, NB4 = "02_vjp_rules.ipynb", "04_optimizer.ipynb"
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "python"))

ZERO_RULE = "return tuple(tg.zeros_like(x) for x in entry.inputs)"
STUB = re.compile(r"^(\s*)raise NotImplementedError\(.*\)$", re.M)


def _zeros(nb):
    """Every VJP answers zeros (wrong, but it runs): the work not done."""
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code":
            def repl(m):
                before = c.source[:m.start()]
                in_unbroadcast = before.rfind("def unbroadcast") > before.rfind("def add_vjp")
                return m.group(1) + ("return g" if in_unbroadcast else ZERO_RULE)
            c.source = STUB.sub(repl, c.source)
    return nb


def _first_answer(nb, code):
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code":
            c.source = code.strip("\n") + "\n" + c.source
            return nb
    raise AssertionError("no answer cell")


def _blank():
    return nbformat.read(str(SHIPPED / NB2), as_version=4)


NOOP_CHECKERS = """
assert_vjp_correct = lambda *a, **k: None
assert_grads_close = lambda *a, **k: None
"""

MODULE_ATTRS = """
import tapegrad.coursework as cw_, tapegrad.coursework.checks as ck_
for m_ in (cw_, ck_):
    m_.assert_vjp_correct = lambda *a, **k: []
    m_.assert_grads_close = lambda *a, **k: None
from tapegrad.coursework import assert_vjp_correct, assert_grads_close
"""

# every array the checks compare becomes zeros, and the entry gradcheck always passes:
# without the seal, assert_vjp_correct accepts a zeros rule (test_the_patch_attack_is_real)
PATCH_TENSOR = """
class _Ok:
    ok, input, index, analytic, numeric, worst_error = True, 0, (), 0.0, 0.0, 0.0
tg.Tensor.numpy = lambda self, *a, **k: np.zeros(tuple(self.shape))
tg.testing.check_entry = lambda *a, **k: _Ok()
"""

# every later cell runs `pass` instead of its code, and reports success
SKIP_CELLS = """
ip_ = get_ipython()
orig_run_ = ip_.run_cell
def run_cell_(raw_cell, store_history=False, silent=False, shell_futures=True, cell_id=None, **k):
    return orig_run_("pass", store_history=store_history, silent=silent,
                     shell_futures=shell_futures, cell_id=cell_id)
ip_.run_cell = run_cell_
"""

LOOP = """
while True:
    pass
"""

STUBBORN_LOOP = """
import time
while True:
    try:
        time.sleep(0.2)
    except KeyboardInterrupt:
        pass
"""

EXIT = """
import os
os._exit(0)
"""

FAKE_SCORE = """
import json
print("Score: 18/18")
print(json.dumps({"score": 18, "max_score": 18, "passed": 9, "failed": 0}))
from IPython.display import display
display({"application/json": {"score": 18, "tests": []}}, raw=True)
"""


def _writer(source_nb, victim):
    """Rewrites the instructor's notebook (every test becomes `pass`) and
    another student's blank submission (into the solution)."""
    return f"""
import json
with open({str(source_nb)!r}) as f_:
    nb_ = json.load(f_)
for c_ in nb_["cells"]:
    if c_.get("metadata", {{}}).get("nbgrader", {{}}).get("grade") and c_["cell_type"] == "code":
        c_["source"] = "pass"
for path_ in ({str(source_nb)!r}, {str(victim)!r}):
    with open(path_, "w") as f_:
        json.dump(nb_, f_)
"""


def _extra_test(nb):
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus_test", "locked": True,
                                 "points": 100, "schema_version": 3, "solution": False}
    nb.cells.insert(3, cell)
    return nb


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Grade the class once: {student: Report}, and the output folder."""
    tmp = tmp_path_factory.mktemp("class")
    source = tmp / "source"
    source.mkdir()
    for name in (NB2, NB4):
        shutil.copy(SRC_DIR / name, source / name)
    sub = tmp / "submitted"
    victim = sub / "z_blank_victim" / "a2" / NB2
    students = {
        "honest": nbformat.read(str(SRC_DIR / NB2), as_version=4),
        "blank": _blank(),
        "zeros": _zeros(_blank()),
        "cheat_issue": _first_answer(_zeros(_blank()), NOOP_CHECKERS),
        "rebind_vjp": _first_answer(_zeros(_blank()), "assert_vjp_correct = lambda *a, **k: []"),
        "rebind_grads": _first_answer(_zeros(_blank()), "assert_grads_close = lambda *a, **k: 0"),
        "module_attrs": _first_answer(_zeros(_blank()), MODULE_ATTRS),
        "patch_tensor": _first_answer(_zeros(_blank()), PATCH_TENSOR),
        "skip_cells": _first_answer(_zeros(_blank()), SKIP_CELLS),
        "a_writer": _first_answer(_blank(), _writer(source / NB2, victim)),
        "loop": _first_answer(_blank(), LOOP),
        "stubborn_loop": _first_answer(_blank(), STUBBORN_LOOP),
        "exits": _first_answer(_blank(), EXIT),
        "fake_score": _extra_test(_first_answer(_blank(), FAKE_SCORE)),
        "z_blank_victim": _blank(),
    }
    for st, nb in students.items():
        (sub / st / "a2").mkdir(parents=True)
        nbformat.write(nb, str(sub / st / "a2" / NB2))
    for st, name in (("honest", NB4), ("blank", NB4)):
        (sub / st / "a4").mkdir(parents=True)
        shutil.copy((SRC_DIR if st == "honest" else SHIPPED) / name, sub / st / "a4" / name)
    (sub / "blank" / "a4" / "notes.txt").write_text("not a notebook: ignored")
    manual = tmp / "manual.csv"
    manual.write_text("student,assignment,grade_id,points,comment\n"
                      "honest,a2,no_such_answer,3,ignored: the notebook has no such answer\n")
    out = tmp / "grades"
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "grade-all", str(sub),
                        "--source", str(source), "--out", str(out), "--jobs", "2",
                        "--time-limit", "150", "--timeout", "25", "--manual", str(manual)],
                       capture_output=True, text=True, env=ENV, timeout=1500)
    assert r.returncode == 0, r.stderr
    reports = {}
    for st in students:
        rep = json.loads((out / st / "a2" / "02_vjp_rules.report.json").read_text())
        reports[st] = rep
    return {"reports": reports, "out": out, "stdout": r.stdout, "sub": sub, "source": source}


def test_honest_solution_gets_full_marks_and_blank_gets_zero(graded_class):
    reps = graded_class["reports"]
    assert reps["honest"]["score"] == reps["honest"]["max_score"] == 18
    assert all(t["feedback"] == "passed" for t in reps["honest"]["tests"])
    assert reps["blank"]["score"] == 0 and reps["blank"]["max_score"] == 18
    assert reps["zeros"]["score"] == 0


CHEATS = ["cheat_issue", "rebind_vjp", "rebind_grads", "module_attrs", "patch_tensor",
          "skip_cells", "a_writer", "loop", "stubborn_loop", "exits", "fake_score"]


@pytest.mark.parametrize("student", CHEATS)
def test_cheating_scores_like_the_blank_notebook(graded_class, student):
    reps = graded_class["reports"]
    rep = reps[student]
    assert rep["max_score"] == reps["blank"]["max_score"] == 18
    assert rep["score"] == reps["blank"]["score"] == 0, json.dumps(rep, indent=1)
    assert [t["grade_id"] for t in rep["tests"]] == [t["grade_id"] for t in reps["blank"]["tests"]]


def test_tampering_is_named_in_the_feedback(graded_class):
    reps = graded_class["reports"]
    fb = {st: [t["feedback"] for t in reps[st]["tests"]] for st in reps}
    assert all(f.startswith(f"CheckError: {sealed.TAMPERED}: ") for f in fb["patch_tensor"])
    assert "tapegrad._C.Tensor.numpy" in fb["patch_tensor"][0]
    assert all(sealed.TAMPERED in f and "hand its results back" in f for f in fb["skip_cells"])
    # rebinding fails on the student's real mistake: the checks are the grader's
    assert fb["cheat_issue"][0].startswith("CheckError: mul_vjp on tape entry #")
    assert "yours 0, expected" in fb["cheat_issue"][-1]
    # the looping answer cell is stopped, the kernel goes on with the next cells
    assert "(an earlier cell failed: cell 11: timed out after 25 s)" in fb["loop"][0]
    assert fb["loop"][1].startswith("NotImplementedError: div_vjp is not written yet")
    # a loop that ignores the interrupt costs the rest of the notebook
    assert reps["stubborn_loop"]["errors"][0]["error"] == "timed out after 25 s"
    assert all(f == "not run: the kernel did not stop after a timeout" for f in fb["stubborn_loop"])
    assert "kernel died" in fb["exits"][0]
    assert all("kernel died" in f for f in fb["exits"][1:])


def test_files_written_by_a_kernel_change_nothing(graded_class):
    # the writer did rewrite the files on disk ...
    source = json.loads((graded_class["source"] / NB2).read_text())
    assert all(c["source"] == "pass" for c in source["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("grade") and
               c["cell_type"] == "code")
    # ... but everything was read before the first kernel started
    reps = graded_class["reports"]
    assert reps["z_blank_victim"]["score"] == 0
    assert reps["honest"]["score"] == 18


def test_an_added_test_cell_scores_nothing(graded_class):
    rep = graded_class["reports"]["fake_score"]
    assert "bonus_test" not in [t["grade_id"] for t in rep["tests"]]


def test_gradebook_results_json_and_feedback(graded_class):
    out = graded_class["out"]
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "a2", "a4", "total"]
    book = {r[0]: r[1:] for r in rows[1:]}
    assert book["honest"] == ["18", "6", "24"]
    assert book["blank"] == ["0", "0", "0"]
    assert book["cheat_issue"] == ["0", "0", "0"]   # no a4 submitted: 0
    assert len(book) == 15
    res = json.loads((out / "honest" / "a2" / "results.json").read_text())
    assert res["score"] == 18
    assert {t["name"] for t in res["tests"]} >= {"mul_vjp_test", "all_together_test"}
    assert all(set(t) == {"name", "score", "max_score", "output"} for t in res["tests"])
    assert sum(t["max_score"] for t in res["tests"]) == 18
    bad = json.loads((out / "cheat_issue" / "a2" / "results.json").read_text())
    assert bad["score"] == 0 and all(t["score"] == 0 for t in bad["tests"])
    html = (out / "cheat_issue" / "feedback.html").read_text()
    assert "a2: 02_vjp_rules.ipynb &mdash; 0/18 points" in html
    assert "mul_vjp_test" in html and "yours 0, expected" in html
    assert "a4: 04_optimizer.ipynb &mdash; 6/6 points" in (out / "honest" / "feedback.html").read_text()
    assert "honest/a4/04_optimizer.ipynb: 6/6 points" in graded_class["stdout"]


def test_the_patch_attack_is_real():
    """Without the seal, the Tensor patch of PATCH_TENSOR makes a zeros rule pass."""
    from tapegrad.coursework.checks import assert_vjp_correct

    def zeros(entry, g):
        return tuple(tg.zeros_like(x) for x in entry.inputs)

    with pytest.raises(AssertionError):
        assert_vjp_correct("mul", zeros)
    saved = tg.Tensor.numpy, tg.testing.check_entry
    ns = {"tg": tg, "np": np}
    try:
        exec(PATCH_TENSOR, ns)
        assert_vjp_correct("mul", zeros)  # fooled
    finally:
        tg.Tensor.numpy, tg.testing.check_entry = saved
    with pytest.raises(AssertionError):
        assert_vjp_correct("mul", zeros)


def _cheat_file(tmp_path):
    path = tmp_path / NB2
    nbformat.write(_first_answer(_zeros(_blank()), NOOP_CHECKERS), str(path))
    return path


def test_the_issues_cheat_scores_zero_under_grade(tmp_path):
    nb = _cheat_file(tmp_path)
    tests = tmp_path / "hidden"
    cw.export_tests(SRC_DIR / NB2, tests)
    out = tmp_path / "reports" / "deeper" / "cheat.json"   # grade --out creates the folder
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "grade", str(nb),
                        "--tests", str(tests), "--out", str(out), "--timeout", "60"],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(f"0/18 points; report in {out}")
    rep = json.loads(out.read_text())
    assert rep["score"] == 0 and rep["max_score"] == 18 and rep["failed"] == 9


def test_grade_source_scores_the_honest_notebook_in_full(tmp_path):
    rep = cw.grade(SRC_DIR / NB2, source=SRC_DIR / NB2, timeout=120)
    assert rep.score == rep.max_score == 18 and not rep.errors


def test_expected_checks_and_records_are_verified():
    src = "assert_vjp_correct('mul', mul_vjp)\nassert_vjp_correct('add', f, variants=(1,), seed=3)"
    assert sealed.verify(src, None).startswith(sealed.TAMPERED)
    assert "did not run" in sealed.verify(src, [])
    # records made by the real checker in this process pass; altered ones do not
    from tapegrad.coursework import checks
    checks._RECORD = []
    try:
        checks.assert_vjp_correct("mul", lambda e, g: (g * e.inputs[1], g * e.inputs[0]))
        checks.assert_vjp_correct("add", lambda e, g: (g.sum(axis=0) if e.inputs[0].ndim == 1
                                                       else g, g.sum(axis=0) if e.inputs[1].ndim
                                                       == 1 else g), variants=(1,), seed=3)
        recs = checks._RECORD
    finally:
        checks._RECORD = None
    assert sealed.verify(src, recs) is None
    recs[0]["cases"][0]["entries"][0]["grads"][0] = np.zeros((3, 4)).tolist()
    bad = sealed.verify(src, recs)
    assert bad.startswith("wrong gradient (checked by the grader): 'mul' entry 1 of variant 0, "
                          "input 0 is wrong at index")
    recs[0]["cases"][0]["entries"] = []
    assert "recorded 0 entries" in sealed.verify(src, recs)


def test_manual_scores_are_merged(tmp_path):
    manual = tmp_path / "m.csv"
    manual.write_text("student,assignment,grade_id,points\nann,a1,essay,5\nbob,a1,essay,1.5\n")
    scores = gradeall.read_manual_scores(manual)
    assert scores[("ann", "a1", "essay")] == (5, "")
    rep = cw.Report("x.ipynb", [cw.TestResult("t", 2, 2, True, "passed"),
                                cw.TestResult("essay", 0, 2, None, "graded by hand")])
    gradeall._merge_manual(rep, "ann", "a1", scores)
    assert rep.tests[1].points == 2  # capped at the answer's points
    assert rep.tests[1].feedback == "graded by hand: 2/2"
    res = gradeall.gradescope_results(rep)
    assert res["score"] == 4 and [t["name"] for t in res["tests"]] == ["t", "essay"]
    (tmp_path / "bad.csv").write_text("student,points\nann,1\n")
    with pytest.raises(ValueError, match="lack the columns assignment, grade_id"):
        gradeall.read_manual_scores(tmp_path / "bad.csv")


def test_scores_match_nbgraders_autograde(tmp_path):
    """Optional (nbgrader is not a dependency): for notebooks that do not
    tamper (honest, blank, one rule wrong, right rules whose test cells write a
    warning to stderr, an answer that loops forever, one that kills the
    kernel), grade-all gives each test the points that
    nbgrader's generate_assignment + autograde give, with the same per-cell
    time limit. (nbgrader gives the killed kernel's student no grades at all
    and exits 1; grade-all gives that student 0 on every test.)"""
    nbgrader = pytest.importorskip("nbgrader")
    course = tmp_path / "course"
    (course / "source" / "a2").mkdir(parents=True)
    shutil.copy(SRC_DIR / NB2, course / "source" / "a2" / NB2)
    site = Path(nbgrader.__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(site)]),
               PATH=os.pathsep.join([str(site / "bin"), os.environ.get("PATH", "")]))

    def nbg(*args, ok=True):
        r = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=.",
                            "--ExecutePreprocessor.timeout=25"],
                           cwd=course, capture_output=True, text=True, env=env, timeout=900)
        assert (r.returncode == 0) == ok, r.stdout + r.stderr
        return r

    students = ("honest", "blank", "partial", "warns", "loop", "crash")
    nbg("db", "assignment", "add", "a2")
    for st in students:
        nbg("db", "student", "add", st)
    nbg("generate_assignment", "a2", "--force")
    released = nbformat.read(str(course / "release" / "a2" / NB2), as_version=4)
    partial = nbformat.read(str(SRC_DIR / NB2), as_version=4)
    for c in partial.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "exp_vjp":
            c.source = "def exp_vjp(entry, g):\n    return g"
    honest = nbformat.read(str(SRC_DIR / NB2), as_version=4)
    # right answers, but exp_vjp warns: every test cell that calls it writes to stderr
    warns = nbformat.read(str(SRC_DIR / NB2), as_version=4)
    for c in warns.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "exp_vjp":
            head, _, body = c.source.partition("def exp_vjp(")
            sig, _, rest = body.partition("\n")
            c.source = (head + "def exp_vjp(" + sig + "\n    import warnings\n"
                        "    warnings.warn('exp_vjp: checking my shapes')\n" + rest)
    for st, nb in (("honest", honest), ("blank", released), ("partial", partial), ("warns", warns),
                   ("loop", _first_answer(nbformat.read(str(SRC_DIR / NB2), as_version=4), LOOP)),
                   ("crash", _first_answer(nbformat.read(str(SRC_DIR / NB2), as_version=4),
                                           "import os\nos._exit(1)"))):
        (course / "submitted" / st / "a2").mkdir(parents=True)
        nbformat.write(nb, str(course / "submitted" / st / "a2" / NB2))
    r = nbg("autograde", "a2", "--force", ok=False)    # the crash fails nbgrader's run
    assert "error processing assignment 'a2' for student 'crash'" in r.stdout + r.stderr
    from nbgrader.api import Gradebook
    theirs = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for st in students:
            nb = gb.find_submission_notebook(NB2[:-6], "a2", st)
            theirs[st] = {g.name: g.score for g in nb.grades if g.auto_score is not None}
    mine = gradeall.grade_all(course / "submitted", course / "source" / "a2", tmp_path / "grades",
                              jobs=2, time_limit=300, timeout=25)
    for st in ("honest", "blank", "partial", "warns", "loop"):
        rep = mine[(st, "a2", NB2)]
        assert {t.grade_id: t.points for t in rep.auto} == theirs[st], st
    # the warning costs what the wrong exp_vjp costs, and says why
    assert theirs["warns"] == theirs["partial"]
    assert any("wrote to stderr" in t.feedback and "checking my shapes" in t.feedback
               for t in mine[("warns", "a2", NB2)].auto)
    assert sum(theirs["honest"].values()) == 18 and sum(theirs["blank"].values()) == 0
    assert sum(theirs["partial"].values()) == 15   # exp_vjp_test (1) and all_together_test (2)
    # the loop costs the tests of its cell's rule (mul) and the one that uses them all
    assert sum(theirs["loop"].values()) == 14 and theirs["loop"]["mul_vjp_test"] == 0
    assert theirs["crash"] == {}
    crash = mine[("crash", "a2", NB2)]
    assert crash.score == 0 and crash.max_score == 18
    assert all("kernel died" in t.feedback for t in crash.auto), [t.feedback for t in crash.auto]


def test_feedback_html_escapes_and_blank_answers_are_not_answered():
    rep = cw.Report("x.ipynb", [cw.TestResult("t", 0, 2, False, "<script>alert(1)</script>"),
                                cw.TestResult("essay", 0, 1, None, "not answered")])
    page = gradeall._feedback_html("<b>ann</b>", [("a1", rep)])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Feedback for &lt;b&gt;ann&lt;/b&gt;" in page and "0/3 points" in page
    from tapegrad.coursework.grade import _unanswered
    md = nbformat.v4.new_markdown_cell
    assert _unanswered(md("YOUR ANSWER HERE")) and _unanswered(md("  "))
    assert not _unanswered(md("The chain rule multiplies local derivatives."))
    stub = "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError('f')"
    assert _unanswered(nbformat.v4.new_code_cell(stub))
    assert not _unanswered(nbformat.v4.new_code_cell("def f():\n    return 1"))
    assert "not answered" in str(rep)


def _tiny(*cells):
    nb = nbformat.v4.new_notebook()
    out = []
    for src, meta in cells:
        c = nbformat.v4.new_code_cell(src)
        if meta:
            c.metadata["nbgrader"] = dict(meta, schema_version=3)
        out.append(c)
    nb.cells = out
    return nb


def test_the_notebook_time_limit_stops_the_rest(tmp_path):
    test = {"grade": True, "solution": False, "locked": True, "points": 1}
    nb = _tiny(("x = 1", None),
               ("assert x == 1", dict(test, grade_id="first")),
               ("import time\ntime.sleep(600)", None),
               ("assert x == 1", dict(test, grade_id="second")))
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, str(path))
    rep = cw.grade(path, source=path, timeout=300, time_limit=30)
    assert [t.passed for t in rep.tests] == [True, False]
    limit = "the notebook's time limit of 30 s was reached"
    assert rep.errors[0]["error"] == f"stopped: {limit}"
    assert rep.tests[1].feedback == f"not run: {limit}"


def test_grade_all_kills_a_worker_that_overruns(tmp_path, monkeypatch):
    """The parent's last resort: a worker still running past the time limit
    plus the grace period is killed with its kernel, and that notebook's
    tests are reported not graded (the others are graded)."""
    test = {"grade": True, "solution": False, "locked": True, "points": 2}
    source = _tiny(("x = 1", {"solution": True, "grade": False, "locked": False,
                              "grade_id": "answer"}),
                   ("assert x == 1", dict(test, grade_id="x_test")))
    (tmp_path / "source").mkdir()
    nbformat.write(source, str(tmp_path / "source" / "hw.ipynb"))
    slow = _tiny(("import time\ntime.sleep(600)\nx = 1", {"solution": True, "grade": False,
                                                          "locked": False, "grade_id": "answer"}),
                 ("assert x == 1", dict(test, grade_id="x_test")))
    for st, nb in (("fast", source), ("slow", slow)):
        (tmp_path / "sub" / st / "hw").mkdir(parents=True)
        nbformat.write(nb, str(tmp_path / "sub" / st / "hw" / "hw.ipynb"))
    # the worker's own limit (300 s) never comes: only the parent's (300 - 260 = 40 s) does
    monkeypatch.setattr(gradeall, "GRACE", -260)
    reps = gradeall.grade_all(tmp_path / "sub", tmp_path / "source", tmp_path / "out",
                              jobs=2, time_limit=300)
    assert reps[("fast", "hw", "hw.ipynb")].score == 2
    slow_rep = reps[("slow", "hw", "hw.ipynb")]
    assert slow_rep.score == 0 and slow_rep.max_score == 2
    assert slow_rep.tests[0].feedback == "not graded: the grader stopped this notebook after 40 s"
    book = (tmp_path / "out" / "gradebook.csv").read_text().splitlines()
    assert book == ["student,hw,total", "fast,2,2", "slow,0,0"]


def test_a_test_cell_that_writes_to_stderr_scores_zero_as_in_nbgrader(tmp_path):
    """nbgrader's autograde gives a test cell with stderr output no points
    (utils.determine_grade); this grader does the same and says why, while
    stdout output and stderr of ordinary cells cost nothing."""
    test = {"grade": True, "solution": False, "locked": True, "points": 1}
    nb = _tiny(("import sys\nsys.stderr.write('setup noise\\n')\nx = 1", None),
               ("print('checking x')\nassert x == 1", dict(test, grade_id="quiet")),
               ("import warnings\nwarnings.warn('x is suspicious')\nassert x == 1",
                dict(test, grade_id="warns")),
               ("assert x == 1", dict(test, grade_id="after")))
    path = tmp_path / "stderr.ipynb"
    nbformat.write(nb, str(path))
    rep = cw.grade(path, source=path, timeout=60)
    assert [(t.grade_id, t.points) for t in rep.tests] == [("quiet", 1), ("warns", 0), ("after", 1)]
    fb = rep.tests[1].feedback
    assert fb.startswith("the test cell wrote to stderr") and "x is suspicious" in fb, fb


def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path, monkeypatch):
    """Two kernels started at once can be handed the same port and one dies
    before answering kernel_info (seen in CI: an honest notebook graded 0,
    every test "not graded: RuntimeError: Kernel died before replying to
    kernel_info"). The grader starts it again; the notebook gets its marks."""
    from jupyter_client import manager
    real, calls = manager.start_new_kernel, []

    def dies_twice(*args, **kwargs):
        calls.append(kwargs.get("kernel_name"))
        if len(calls) <= 2:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(manager, "start_new_kernel", dies_twice)
    rep = cw.grade(SRC_DIR / NB2, source=SRC_DIR / NB2, timeout=120)
    assert len(calls) == 3
    assert rep.score == rep.max_score == 18 and not rep.errors


def test_a_kernel_that_never_starts_is_reported_not_retried_forever(tmp_path, monkeypatch):
    from jupyter_client import manager
    calls = []

    def always_dies(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(manager, "start_new_kernel", always_dies)
    with pytest.raises(RuntimeError, match="Kernel died"):   # grade_all reports it per student
        cw.grade(SRC_DIR / NB2, source=SRC_DIR / NB2, timeout=120)
    assert len(calls) == 3
