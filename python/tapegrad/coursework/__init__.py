"""tapegrad.coursework: assignments in nbgrader's format, and the tools to
release, check and grade them.

Instructors write notebooks with solutions and hidden tests (see
``docs/coursework.md``); the command line does the rest::

    python -m tapegrad.coursework release SRC DST          # student versions
    python -m tapegrad.coursework check NOTEBOOK           # run its tests, per test
    python -m tapegrad.coursework export-tests SRC DIR     # hidden tests to DIR/<grade_id>.py
    python -m tapegrad.coursework grade NOTEBOOK --tests DIR --out report.json
    python -m tapegrad.coursework grade NOTEBOOK --source INSTRUCTOR.ipynb --out report.json
    python -m tapegrad.coursework grade-all SUBMITTED/ --source SOURCE/ --out GRADES/
    python -m tapegrad.coursework fetch DST                # copy the shipped assignments

The notebooks' tests use the assertions of :mod:`tapegrad.coursework.checks`,
whose failures name the tape entry, the input and the worst element:

>>> import tapegrad as tg
>>> from tapegrad.coursework import assert_vjp_correct
>>> def exp_vjp(entry, g):
...     return g * entry.output          # d exp(x) = exp(x) dx
>>> len(assert_vjp_correct("exp", exp_vjp))
1

Grading is sealed against a student's notebook (fresh checkers in every
test, an integrity check, gradient verdicts computed in the grader's
process): see :mod:`tapegrad.coursework.sealed`.

The package ships only the student versions of the course's assignments
(``assignments_dir()``); the instructor sources live in the repository's
``notebooks/assignments/``.
"""
from pathlib import Path

from .checks import GRAPH_OPS, CheckError, assert_grads_close, assert_vjp_correct, example_graph
from .grade import Report, TestResult, check, grade, run_tests
from .gradeall import grade_all
from .notebook import NotebookFormatError
from .release import export_tests, release, release_notebook

__all__ = ["assert_vjp_correct", "assert_grads_close", "CheckError", "example_graph",
           "GRAPH_OPS", "release", "release_notebook", "export_tests", "check", "grade",
           "run_tests", "grade_all", "Report", "TestResult", "NotebookFormatError",
           "assignments_dir"]


def assignments_dir() -> Path:
    """The directory of the shipped student versions of the assignments.

    >>> from tapegrad.coursework import assignments_dir
    >>> sorted(p.name for p in assignments_dir().glob("*.ipynb"))[0]
    '01_backprop_by_hand.ipynb'
    """
    return Path(__file__).resolve().parent / "assignments"
