"""nbgrader's cell conventions: which cell is what, and the region markers.

Each cell that matters to grading carries ``metadata["nbgrader"]``
(schema version 3)::

    {"grade": bool, "grade_id": "...", "locked": bool, "points": N,
     "schema_version": 3, "solution": bool}

- **answer cell** (``solution: true, grade: false``, code): the student's
  code; the solution lies between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` lines;
- **test cell** (``grade: true, solution: false``, code, usually
  ``locked``): worth ``points``; its hidden part lies between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``;
- **manually graded answer** (``grade: true, solution: true``, markdown or
  code): graded by a person, worth ``points``;
- **read-only cell** (``locked: true`` only): instructions or given code.

This module reads these conventions; it does not execute anything.
"""
from __future__ import annotations

import re

import nbformat

BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)

CODE_STUB = "# YOUR CODE HERE"
ANSWER_STUB = "YOUR ANSWER HERE"

_GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")


class NotebookFormatError(ValueError):
    """The notebook breaks nbgrader's conventions (a marker without its
    pair, a duplicate or invalid grade_id, a region in the wrong kind of
    cell); the message names the cell."""


def read(path) -> nbformat.NotebookNode:
    """Read a notebook (nbformat 4)."""
    return nbformat.read(str(path), as_version=4)


def meta(cell) -> dict:
    """The cell's nbgrader metadata ({} if none)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_solution(cell) -> bool:
    return bool(meta(cell).get("solution", False))


def is_grade(cell) -> bool:
    return bool(meta(cell).get("grade", False))


def is_test(cell) -> bool:
    """An autograded test cell: a graded code cell that is not an answer."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def is_manual(cell) -> bool:
    """A manually graded answer (markdown, or code that is both graded and a solution)."""
    return is_grade(cell) and is_solution(cell)


def grade_id(cell) -> str | None:
    return meta(cell).get("grade_id")


def points(cell) -> float:
    p = meta(cell).get("points", 0) or 0
    return int(p) if float(p).is_integer() else float(p)


def describe(index: int, cell) -> str:
    """``cell 5 (grade_id 'mul_vjp')`` or ``cell 5``, for error messages."""
    gid = grade_id(cell)
    return f"cell {index}" + (f" (grade_id {gid!r})" if gid else "")


def regions(source: str, begin: str, end: str, where: str):
    """The (begin_line, end_line) index pairs of the marked regions of
    ``source`` (lines containing ``begin`` / ``end``). Raises
    NotebookFormatError for a region left open, closed twice or nested."""
    out, start = [], None
    for n, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                raise NotebookFormatError(f"{where}: '{begin}' at line {n + 1} inside another "
                                          f"region (opened at line {start + 1})")
            start = n
        elif end in line:
            if start is None:
                raise NotebookFormatError(f"{where}: '{end}' at line {n + 1} without '{begin}'")
            out.append((start, n))
            start = None
    if start is not None:
        raise NotebookFormatError(f"{where}: '{begin}' at line {start + 1} is never closed "
                                  f"by '{end}'")
    return out


def validate(nb) -> None:
    """Check nbgrader's rules (schema 3): graded/answer/locked cells have a
    valid, unique grade_id; graded cells have points; markdown answers are
    graded; markers are paired and sit in the right kind of cell.

    >>> import nbformat
    >>> from tapegrad.coursework import notebook
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\\nx = 1\\n### END SOLUTION")]
    >>> notebook.validate(nb)
    Traceback (most recent call last):
    ...
    tapegrad.coursework.notebook.NotebookFormatError: cell 0: a solution region in a cell that is not an answer cell (set metadata nbgrader.solution = true)
    """
    seen = {}
    for i, cell in enumerate(nb.cells):
        m = meta(cell)
        where = describe(i, cell)
        if m:
            if m.get("grade") or m.get("solution") or m.get("locked"):
                gid = m.get("grade_id")
                if not gid or not _GRADE_ID.match(str(gid)):
                    raise NotebookFormatError(f"{where}: grade_id {gid!r} must be a non-empty "
                                              f"string of letters, digits, '_' and '-'")
                if gid in seen:
                    raise NotebookFormatError(f"{where}: duplicate grade_id {gid!r} (also cell "
                                              f"{seen[gid]})")
                seen[gid] = i
            if m.get("grade") and "points" not in m:
                raise NotebookFormatError(f"{where}: a graded cell needs 'points'")
            if cell.cell_type == "markdown" and bool(m.get("grade")) != bool(m.get("solution")):
                raise NotebookFormatError(f"{where}: a markdown cell must be both grade and "
                                          f"solution (a manually graded answer) or neither")
        src = cell.source
        sol = regions(src, BEGIN_SOLUTION, END_SOLUTION, where)
        hid = regions(src, BEGIN_HIDDEN, END_HIDDEN, where)
        if sol and not is_solution(cell):
            raise NotebookFormatError(f"{where}: a solution region in a cell that is not an "
                                      f"answer cell (set metadata nbgrader.solution = true)")
        if hid and not is_grade(cell):
            raise NotebookFormatError(f"{where}: a hidden-test region in a cell that is not "
                                      f"graded (set metadata nbgrader.grade = true)")


def test_cells(nb) -> list:
    """``[(index, cell), ...]`` of the autograded test cells, in order."""
    return [(i, c) for i, c in enumerate(nb.cells) if is_test(c)]
