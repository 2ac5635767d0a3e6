"""Student versions of assignments, and hidden tests exported to files.

``release_notebook(nb)`` follows nbgrader's "generate assignment" rules:

- in answer cells, each solution region (the lines from ``### BEGIN
  SOLUTION`` to ``### END SOLUTION``) becomes, at the indentation of the
  ``BEGIN`` line::

      # YOUR CODE HERE
      raise NotImplementedError("mul_vjp is not written yet: replace this line with your code")

  so the function's signature and docstring stay; an answer cell without
  markers is replaced whole. In markdown answers a region (or the whole
  cell) becomes ``YOUR ANSWER HERE``;
- hidden-test regions (``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN
  TESTS``) are removed;
- outputs and execution counts are cleared, execution timing metadata is
  dropped, and locked/graded cells are marked not deletable (locked ones
  not editable), as nbgrader does.

Releasing a released notebook changes nothing.

**Languages.** A markdown cell of an instructor notebook may carry its text
in other languages in its metadata, ``{"tapegrad": {"translations": {"zh":
"..."}}}`` (the course's assignments carry Chinese). ``release(src, dst,
lang="zh")`` writes the student versions with those texts in place of the
English ones; code cells, grade ids and tests are the same in every
language, so one grader and one gradebook serve all of them. Every markdown
cell must have a text in ``lang`` (an error names the first that has none);
the translations are not copied into the released notebooks.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from . import notebook as nbmod
from .notebook import (ANSWER_STUB, BEGIN_HIDDEN, BEGIN_SOLUTION, CODE_STUB, END_HIDDEN,
                       END_SOLUTION, NotebookFormatError)

__all__ = ["release_notebook", "release", "export_tests", "stub_message", "translate_notebook",
           "translations"]

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")
_CLASS = re.compile(r"^(\s*)class\s+([A-Za-z_]\w*)\s*[(:]")


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _enclosing(lines: list, n: int) -> str | None:
    """``"MySGD.step"`` / ``"mul_vjp"``: the function around line n, if any."""
    width = len(_indent(lines[n]).expandtabs())
    names = []
    for line in reversed(lines[:n]):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        w = len(_indent(line).expandtabs())
        if w >= width:
            continue
        width = w
        d, c = _DEF.match(line), _CLASS.match(line)
        if d and not names:
            names.append(d.group(2))
        elif c and names:
            names.insert(0, c.group(2))
            break
        elif d:
            break
        if w == 0:
            break
    return ".".join(names) or None


def stub_message(name: str | None, grade_id: str | None = None) -> str:
    """The text of the ``NotImplementedError`` put in place of a solution.

    >>> from tapegrad.coursework.release import stub_message
    >>> stub_message("mul_vjp")
    'mul_vjp is not written yet: replace this line with your code'
    """
    what = name or (f"the answer {grade_id!r}" if grade_id else "this answer")
    return f"{what} is not written yet: replace this line with your code"


def _code_stub(indent: str, message: str) -> list:
    return [f"{indent}{CODE_STUB}", f"{indent}raise NotImplementedError({message!r})"]


def _clear_code(cell) -> None:
    lines = cell.source.split("\n")
    where = nbmod.describe(0, cell)
    spans = nbmod.regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, where)
    if not spans:
        if CODE_STUB in cell.source or "NotImplementedError" in cell.source:
            return  # already a stub: releasing twice changes nothing
        cell.source = "\n".join(_code_stub("", stub_message(None, nbmod.grade_id(cell))))
        return
    out, pos = [], 0
    for b, e in spans:
        out += lines[pos:b]
        out += _code_stub(_indent(lines[b]), stub_message(_enclosing(lines, b), nbmod.grade_id(cell)))
        pos = e + 1
    out += lines[pos:]
    cell.source = "\n".join(out)


def _clear_markdown(cell) -> None:
    lines = cell.source.split("\n")
    spans = nbmod.regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, "markdown answer")
    if not spans:
        if ANSWER_STUB not in cell.source:  # (already released: leave it)
            cell.source = ANSWER_STUB
        return
    out, pos = [], 0
    for b, e in spans:
        out += lines[pos:b] + [ANSWER_STUB]
        pos = e + 1
    out += lines[pos:]
    cell.source = "\n".join(out)


def _remove_hidden(cell) -> None:
    lines = cell.source.split("\n")
    spans = nbmod.regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, "test cell")
    if not spans:
        return
    keep, pos = [], 0
    for b, e in spans:
        keep += lines[pos:b]
        pos = e + 1
    keep += lines[pos:]
    while keep and not keep[-1].strip():
        keep.pop()
    cell.source = "\n".join(keep)


def translations(cell) -> dict:
    """``{lang: text}``: the other languages a markdown cell is written in."""
    return dict(cell.get("metadata", {}).get("tapegrad", {}).get("translations", {}))


def _drop_translations(cell) -> None:
    tg_meta = cell.metadata.get("tapegrad")
    if isinstance(tg_meta, dict) and "translations" in tg_meta:
        del tg_meta["translations"]
        if not tg_meta:
            del cell.metadata["tapegrad"]


def translate_notebook(nb, lang: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose markdown cells are in ``lang`` (``"en"``: as
    written), without the translations' metadata. Code cells are unchanged.
    Raises :class:`NotebookFormatError` naming the first markdown cell that
    has no text in ``lang``.

    >>> import nbformat
    >>> from tapegrad.coursework.release import translate_notebook
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_markdown_cell("# Assignment"), nbformat.v4.new_code_cell("x = 1")]
    >>> nb.cells[0].metadata["tapegrad"] = {"translations": {"zh": "# 作业"}}
    >>> [c.source for c in translate_notebook(nb, "zh").cells]
    ['# 作业', 'x = 1']
    >>> translate_notebook(nb, "fr")
    Traceback (most recent call last):
        ...
    tapegrad.coursework.notebook.NotebookFormatError: cell 0 (markdown, '# Assignment'): no 'fr' text to release in 'fr' (add it to the cell's metadata tapegrad.translations)
    """
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        if cell.cell_type == "markdown" and lang != "en":
            texts = translations(cell)
            if lang not in texts:
                head = cell.source.strip().split("\n")[0][:40]
                raise NotebookFormatError(
                    f"cell {i} (markdown, {head!r}): no {lang!r} text to release in {lang!r} "
                    f"(add it to the cell's metadata tapegrad.translations)")
            cell.source = texts[lang]
        _drop_translations(cell)
    return out


def release_notebook(nb, lang: str = "en") -> nbformat.NotebookNode:
    """The student version of notebook ``nb`` (a new notebook; ``nb`` is
    not modified), its instructions in ``lang`` (see the module's
    docstring). Raises :class:`NotebookFormatError` if ``nb`` breaks
    nbgrader's conventions (see ``notebook.validate``) or a markdown cell
    has no text in ``lang``.

    >>> import nbformat
    >>> from tapegrad.coursework import release_notebook
    >>> nb = nbformat.v4.new_notebook()
    >>> cell = nbformat.v4.new_code_cell(
    ...     "def double(x):\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION")
    >>> cell.metadata["nbgrader"] = {"grade": False, "grade_id": "double", "locked": False,
    ...                              "schema_version": 3, "solution": True}
    >>> nb.cells = [cell]
    >>> print(release_notebook(nb).cells[0].source)
    def double(x):
        # YOUR CODE HERE
        raise NotImplementedError('double is not written yet: replace this line with your code')
    """
    nbmod.validate(nb)
    out = translate_notebook(nb, lang)
    for cell in out.cells:
        m = nbmod.meta(cell)
        _remove_hidden(cell)
        if nbmod.is_solution(cell):
            if cell.cell_type == "code":
                _clear_code(cell)
            elif cell.cell_type == "markdown":
                _clear_markdown(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        if m:
            if m.get("locked"):
                cell.metadata["editable"] = False
            if m.get("locked") or m.get("grade") or m.get("solution"):
                cell.metadata["deletable"] = False
    out.metadata.pop("widgets", None)
    for cell in out.cells:  # nothing marked may remain
        for marker in nbmod.MARKERS:
            if marker in cell.source:
                raise NotebookFormatError(f"release: {marker!r} is left in a cell after release")
    return out


def _notebooks(src: Path) -> list:
    return sorted(p for p in src.glob("*.ipynb") if not p.name.startswith("."))


def release(src, dst, lang: str = "en") -> list:
    """Write the student versions of ``src`` to ``dst``, with their
    instructions in ``lang`` (file names are the same in every language:
    release each language to its own folder).

    ``src`` is a notebook or a directory (its ``*.ipynb`` files, not
    sub-directories and no other files: solutions' generators and data stay
    behind). ``dst`` is a notebook path (``.ipynb``) or a directory
    (created if needed). Returns the paths written.

    >>> import tempfile
    >>> from tapegrad.coursework import assignments_dir, release
    >>> out = tempfile.mkdtemp()
    >>> [p.name for p in release(assignments_dir(), out)]   # doctest: +NORMALIZE_WHITESPACE
    ['01_backprop_by_hand.ipynb', '02_vjp_rules.ipynb', '03_mnist_with_your_vjps.ipynb',
     '04_optimizer.ipynb', '05_attention_vjp.ipynb']
    """
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        items = [(p, dst / p.name) for p in _notebooks(src)]
        if not items:
            raise FileNotFoundError(f"release: no notebooks in {src}")
    elif src.is_file():
        target = dst if dst.suffix == ".ipynb" else dst / src.name
        items = [(src, target)]
    else:
        raise FileNotFoundError(f"release: {src} does not exist")
    written = []
    for s, d in items:
        nb = nbmod.read(s)
        try:
            student = release_notebook(nb, lang)
        except NotebookFormatError as err:
            raise NotebookFormatError(f"{s.name}: {err}") from None
        d.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, str(d))
        written.append(d)
    return written


def export_tests(src, dst_dir) -> list:
    r"""Write each autograded test cell of the instructor's notebook ``src``
    (hidden tests included, markers dropped) to ``dst_dir/<grade_id>.py``,
    for ``grade --tests``. The first line records the points
    (``# points: 2``), which the grader trusts over the student's copy of
    the metadata. Returns the paths written.

    >>> import os, tempfile, nbformat
    >>> from tapegrad.coursework import export_tests
    >>> nb = nbformat.v4.new_notebook()
    >>> cell = nbformat.v4.new_code_cell(
    ...     "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n### END HIDDEN TESTS")
    >>> cell.metadata["nbgrader"] = {"grade": True, "grade_id": "f_test", "locked": True,
    ...                              "points": 2, "schema_version": 3, "solution": False}
    >>> nb.cells = [cell]
    >>> d = tempfile.mkdtemp()
    >>> nbformat.write(nb, os.path.join(d, "a.ipynb"))
    >>> (path,) = export_tests(os.path.join(d, "a.ipynb"), os.path.join(d, "hidden"))
    >>> print(path.read_text())
    # points: 2
    # tests for 'f_test' from a.ipynb; run by `python -m tapegrad.coursework grade` in place of the notebook's cell
    assert f(1) == 2
    assert f(5) == 10
    <BLANKLINE>
    """
    nb = nbmod.read(src)
    nbmod.validate(nb)
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for _, cell in nbmod.test_cells(nb):
        gid = nbmod.grade_id(cell)
        body = [line for line in cell.source.split("\n")
                if BEGIN_HIDDEN not in line and END_HIDDEN not in line]
        text = (f"# points: {nbmod.points(cell)}\n"
                f"# tests for {gid!r} from {os.path.basename(str(src))}; run by "
                f"`python -m tapegrad.coursework grade` in place of the notebook's cell\n"
                + "\n".join(body).rstrip() + "\n")
        path = dst_dir / f"{gid}.py"
        path.write_text(text)
        written.append(path)
    return written
