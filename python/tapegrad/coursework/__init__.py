"""tapegrad.coursework: assignments in nbgrader's format, and the tools to
release, check and grade them.

Instructors write notebooks with solutions and hidden tests (see
``docs/coursework.md``); the command line does the rest::

    python -m tapegrad.coursework release SRC DST          # student versions
    python -m tapegrad.coursework release --lang zh SRC DST   # ... with Chinese instructions
    python -m tapegrad.coursework check NOTEBOOK           # run its tests, per test
    python -m tapegrad.coursework export-tests SRC DIR     # hidden tests to DIR/<grade_id>.py
    python -m tapegrad.coursework grade NOTEBOOK --tests DIR --out report.json
    python -m tapegrad.coursework grade NOTEBOOK --source INSTRUCTOR.ipynb --out report.json
    python -m tapegrad.coursework grade-all SUBMITTED/ --source SOURCE/ --out GRADES/
    python -m tapegrad.coursework fetch DST                # copy the shipped assignments
    python -m tapegrad.coursework fetch --lang zh DST      # ... with Chinese instructions

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

from .checks import (GRAPH_OPS, CheckError, assert_grads_close, assert_vjp_correct,
                     attention_case, example_graph)

#: The packages of the ``coursework`` extra (``pip install "tapegrad[coursework]"``):
#: notebooks are read with nbformat and run in a Jupyter kernel.
REQUIRES = ("nbformat", "jupyter_client", "ipykernel", "nbclient")


def missing_message(package: str) -> str:
    """One line saying that ``package`` is missing and which extra installs it."""
    return (f"tapegrad.coursework needs the optional package {package!r}, which is not "
            f"installed: pip install \"tapegrad[coursework]\"")


try:
    from .grade import Report, TestResult, check, grade, run_tests
    from .gradeall import grade_all
    from .notebook import NotebookFormatError
    from .release import export_tests, release, release_notebook
except ModuleNotFoundError as _exc:
    if _exc.name not in REQUIRES:
        raise
    _MISSING = _exc.name
    del _exc

    def __getattr__(name):
        # the checks above work without the extra; release/check/grade need it
        if name in __all__:
            raise ModuleNotFoundError(missing_message(_MISSING), name=_MISSING)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["assert_vjp_correct", "assert_grads_close", "CheckError", "example_graph",
           "attention_case",
           "GRAPH_OPS", "release", "release_notebook", "export_tests", "check", "grade",
           "run_tests", "grade_all", "Report", "TestResult", "NotebookFormatError",
           "assignments_dir"]


#: The languages the shipped assignments are released in (``assignments_dir(lang)``).
LANGS = ("en", "zh")


def assignments_dir(lang: str = "en") -> Path:
    """The directory of the shipped student versions of the assignments,
    with their instructions in ``lang``: ``"en"`` (English) or ``"zh"``
    (Chinese; the same notebooks, names, code and grade ids).

    >>> from tapegrad.coursework import assignments_dir
    >>> sorted(p.name for p in assignments_dir().glob("*.ipynb"))[0]
    '01_backprop_by_hand.ipynb'
    >>> sorted(p.name for p in assignments_dir("zh").glob("*.ipynb"))[0]
    '01_backprop_by_hand.ipynb'
    """
    if lang not in LANGS:
        raise ValueError(f"assignments_dir: no assignments in {lang!r}; expected one of {LANGS}")
    base = Path(__file__).resolve().parent / "assignments"
    return base if lang == "en" else base / lang
