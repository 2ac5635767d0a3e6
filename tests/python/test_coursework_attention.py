"""Assignment 5 (the backward pass of a causal attention head, issue 17).

- ``attention_case``'s reference gradients agree with PyTorch and with
  finite differences, and nothing flows above the diagonal;
- ``assert_grads_close`` names the usual mistakes on a first line short
  enough for nbgrader (< 90 characters with the exception's name): the
  case's known mistakes, a constant factor, a transpose, masked entries;
- graded against the instructor notebook, a blank submission scores 0
  without a crash, a transposed dK gets the intended feedback line and the
  other tests still pass.

(The instructor notebook's full marks and the released versions'
NotImplementedError feedback are checked for every assignment by
test_coursework.py.)
"""
import re
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from tapegrad import coursework as cw  # noqa: E402
from tapegrad.coursework import CheckError, assert_grads_close, attention_case  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "notebooks" / "assignments" / "05_attention_vjp.ipynb"
NAME = SOURCE.name
SHAPES = [(0, 4, 3, 3), (1, 5, 3, 3), (2, 6, 4, 2), (5, 2, 3, 4), (3, 1, 2, 2)]


def first_line(err) -> str:
    return "CheckError: " + str(err).split("\n")[0]


# ---------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed, T, d_model, d_k", SHAPES)
def test_reference_matches_torch_and_finite_differences(seed, T, d_model, d_k):
    torch = pytest.importorskip("torch")
    case = attention_case(seed, T, d_model, d_k)
    assert case.X.shape == (T, d_model) and case.Wq.shape == (d_model, d_k)
    w = {k: torch.tensor(getattr(case, k), requires_grad=True) for k in ("Wq", "Wk", "Wv")}
    X = torch.tensor(case.X)
    Q, K, V = X @ w["Wq"], X @ w["Wk"], X @ w["Wv"]
    for t in (Q, K, V):
        t.retain_grad()
    S = Q @ K.T / np.sqrt(d_k) + torch.tensor(case.M)
    S.retain_grad()
    P = torch.softmax(S, dim=-1)
    P.retain_grad()
    (P @ V * torch.tensor(case.dY)).sum().backward()
    ref = {"dP": P.grad, "dS": S.grad, "dQ": Q.grad, "dK": K.grad, "dV": V.grad,
           "dWq": w["Wq"].grad, "dWk": w["Wk"].grad, "dWv": w["Wv"].grad}
    for name, r in ref.items():
        np.testing.assert_allclose(case.grads[name], r.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(case.P, P.detach().numpy(), rtol=1e-12, atol=1e-15)
    for name in ("dWq", "dWk", "dWv"):
        np.testing.assert_allclose(case.fd[name], case.grads[name], rtol=1e-6, atol=1e-8)
    # nothing flows into the future: exactly zero, not just small
    assert np.all(np.triu(case.grads["dS"], k=1) == 0)
    assert np.all(np.triu(case.P, k=1) == 0)


def test_reference_is_reproducible_and_seeded():
    a, b, c = attention_case(3), attention_case(3), attention_case(4)
    assert np.array_equal(a.grads["dK"], b.grads["dK"])
    assert not np.allclose(a.X, c.X)
    # the scores are of order 1: no row of the default case's P is one-hot
    assert attention_case(0).P.max(axis=1)[1:].max() < 0.99


# ---------------------------------------------------------------------------
# the feedback's first line
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed, T, d_model, d_k", SHAPES[:4])
def test_every_known_mistake_is_named_on_a_short_first_line(seed, T, d_model, d_k):
    case = attention_case(seed, T, d_model, d_k)
    assert set(case.mistakes) >= {"dS", "dV", "dQ", "dK", "dWq", "dWk"}
    for name, known in case.mistakes.items():
        for desc, wrong in known.items():
            with pytest.raises(CheckError) as err:
                assert_grads_close({name: wrong}, {name: case.grads[name]},
                                   mistakes=case.mistakes)
            line = first_line(err.value)
            assert line == f"CheckError: the gradient of {name} is wrong: yours is {desc}"
            assert len(line) < 90, line
            # the second line still gives the worst element
            assert re.search(r"wrong at index \(\d+, \d+\): yours", str(err.value).split("\n")[1])


def test_a_constant_factor_a_transpose_and_masked_entries_are_named():
    case = attention_case(0)
    dS, dK = case.grads["dS"], case.grads["dK"]
    cases = [
        ("dK", dK * 0.5, "the gradient of dK is wrong: yours is 1/2 of the expected"),
        ("dK", -dK, "the gradient of dK is wrong: yours is minus the expected (a sign error?)"),
        ("dS", dS.T, "the gradient of dS is wrong: yours is its transpose"),
        ("dS", dS + np.triu(np.full(dS.shape, 0.1), k=1),
         "the gradient of dS is wrong: 6 entries should be 0, e.g. (0, 1) (masked?)"),
    ]
    for name, wrong, expected in cases:
        with pytest.raises(CheckError) as err:
            assert_grads_close({name: wrong}, {name: case.grads[name]})
        assert str(err.value).split("\n")[0] == expected
        assert len(first_line(err.value)) < 90


def test_no_pattern_no_first_line_and_no_negative_zero():
    case = attention_case(0)
    rng = np.random.default_rng(0)
    dS = case.grads["dS"]
    wrong = np.tril(dS + rng.standard_normal(dS.shape))   # wrong, but zero where it must be
    with pytest.raises(CheckError) as err:
        assert_grads_close({"dS": wrong}, {"dS": dS})
    msg = str(err.value)
    # no pattern: the first line is what and where, short; the values follow
    first, second = msg.split("\n")
    assert re.fullmatch(r"the gradient of dS is wrong at index \(\d, \d\)", first), first
    assert second.startswith(first + ": yours ")
    # a symmetric matrix is its own transpose: not reported as transposed
    sym = np.array([[1.0, 2.0], [2.0, 3.0]])
    with pytest.raises(CheckError) as err:
        assert_grads_close({"w": sym + np.eye(2)}, {"w": sym})
    assert "transpose" not in str(err.value)
    with pytest.raises(CheckError) as err:
        assert_grads_close({"w": [1.0, 1.0]}, {"w": np.array([-0.0, 1.0])})
    assert "expected 0 " in str(err.value) and "-0" not in str(err.value)


# ---------------------------------------------------------------------------
# grading submissions against the instructor notebook
# ---------------------------------------------------------------------------

def _replace(nb, grade_id, source):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
            return
    raise KeyError(grade_id)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("a5")
    blank = out / "blank" / NAME
    cw.release(SOURCE, blank)
    wrong = nbformat.read(str(SOURCE), as_version=4)
    _replace(wrong, "score_grads", "def score_grads(Q, K, dS):\n"
             "    scale = 1.0 / np.sqrt(Q.shape[1])\n"
             "    return dS @ K * scale, dS @ Q * scale      # dK: dS should be transposed\n")
    _replace(wrong, "mask_answer", "Because P is 0 there.")
    (out / "wrong").mkdir()
    nbformat.write(wrong, str(out / "wrong" / NAME))
    return {k: cw.grade(out / k / NAME, source=SOURCE, env={"TAPEGRAD_NOTEBOOK_FAST": "1"},
                        timeout=300) for k in ("blank", "wrong")}


def test_blank_submission_scores_zero_without_crashing(graded):
    rep = graded["blank"]
    assert rep.score == 0 and rep.max_score == 12 and rep.manual_points == 1
    assert not rep.errors, rep.errors
    auto = {t.grade_id: t for t in rep.auto}
    assert list(auto) == ["softmax_vjp_test", "value_grads_test", "score_grads_test",
                          "weight_grads_test", "backward_test"]
    for t in auto.values():
        assert t.passed is False and t.points == 0
        assert t.feedback.startswith("NotImplementedError: "), t.feedback
        assert "is not written yet" in t.feedback
    (manual,) = [t for t in rep.tests if t.passed is None]
    assert manual.grade_id == "mask_answer" and manual.feedback == "not answered"


def test_transposed_dk_gets_the_intended_feedback(graded):
    rep = graded["wrong"]
    by_id = {t.grade_id: t for t in rep.tests}
    # only the tests that use score_grads fail
    assert [g for g, t in by_id.items() if t.passed is False] == ["score_grads_test",
                                                                  "backward_test"]
    assert rep.score == 12 - 3 - 2
    for gid in ("score_grads_test", "backward_test"):
        line = by_id[gid].feedback.split("\n")[0]
        assert line == ("CheckError: the gradient of dK is wrong: yours is dS @ Q: "
                        "transposed, use dS.T @ Q"), line
        assert len(line) < 90
        assert "Traceback" not in by_id[gid].feedback and "File \"" not in by_id[gid].feedback
    assert by_id["mask_answer"].feedback == "graded by hand"


def test_scores_match_nbgraders_autograde(tmp_path):
    """Optional (nbgrader is not a dependency): nbgrader's generate_assignment
    and autograde give each test of assignment 5 the points tapegrad's grader
    gives, for the instructor's notebook, the blank one and a transposed dK."""
    import os
    import shutil
    import subprocess
    import sys

    nbgrader = pytest.importorskip("nbgrader")
    from tapegrad.coursework import gradeall

    course = tmp_path / "course"
    (course / "source" / "a5").mkdir(parents=True)
    shutil.copy(SOURCE, course / "source" / "a5" / NAME)
    site = Path(nbgrader.__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(site)]),
               PATH=os.pathsep.join([str(site / "bin"), os.environ.get("PATH", "")]))

    def nbg(*args):
        r = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=."],
                           cwd=course, capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr

    nbg("db", "assignment", "add", "a5")
    for st in ("honest", "blank", "wrong_dk"):
        nbg("db", "student", "add", st)
    nbg("generate_assignment", "a5", "--force")
    released = nbformat.read(str(course / "release" / "a5" / NAME), as_version=4)
    wrong = nbformat.read(str(SOURCE), as_version=4)
    _replace(wrong, "score_grads", "def score_grads(Q, K, dS):\n"
             "    return dS @ K / np.sqrt(Q.shape[1]), dS @ Q / np.sqrt(Q.shape[1])")
    for st, nb in (("honest", nbformat.read(str(SOURCE), as_version=4)),
                   ("blank", released), ("wrong_dk", wrong)):
        (course / "submitted" / st / "a5").mkdir(parents=True)
        nbformat.write(nb, str(course / "submitted" / st / "a5" / NAME))
    nbg("autograde", "a5", "--force")
    from nbgrader.api import Gradebook
    theirs = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for st in ("honest", "blank", "wrong_dk"):
            nb = gb.find_submission_notebook(NAME[:-6], "a5", st)
            theirs[st] = {g.name: g.score for g in nb.grades if g.auto_score is not None}
    mine = gradeall.grade_all(course / "submitted", course / "source" / "a5", tmp_path / "grades",
                              jobs=2, time_limit=300)
    # nbgrader gives an unchanged by-hand answer an automatic 0: tapegrad says "not answered"
    assert theirs["blank"].pop("mask_answer") == 0
    assert mine[("blank", "a5", NAME)].tests[-1].feedback == "not answered"
    for st in ("honest", "blank", "wrong_dk"):
        rep = mine[(st, "a5", NAME)]
        assert {t.grade_id: t.points for t in rep.auto} == theirs[st], st
    assert sum(theirs["honest"].values()) == 12 and sum(theirs["blank"].values()) == 0
    assert sum(theirs["wrong_dk"].values()) == 7   # score_grads_test (3) and backward_test (2)
