"""Helpers to write the assignment notebooks from Python sources, with
nbgrader's cell metadata, and to execute them.

    python notebooks/assignments/src/make_02.py          # write notebooks/assignments/02_...ipynb
    python notebooks/assignments/src/cwtools.py run NB   # execute in place (outputs saved)
    python notebooks/assignments/src/cwtools.py all      # write + execute all, then release
                                                         # into python/tapegrad/coursework/assignments
                                                         # (and assignments/zh: Chinese instructions)

Cell kinds (see docs/coursework.md):

- ``md(text)`` / ``code(text)``: plain cells (no nbgrader metadata);
- ``given(text, gid)``: read-only code (locked);
- ``answer(text, gid)``: the student's code, solution between
  ``### BEGIN SOLUTION`` / ``### END SOLUTION``;
- ``tests(text, gid, points)``: an autograded test cell (locked), hidden
  part between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``;
- ``written(text, gid, points)``: a markdown answer graded by hand.

Markdown cells take their Chinese text as ``zh=`` (stored in the cell's
metadata, ``tapegrad.translations``): ``python -m tapegrad.coursework
release --lang zh SRC DST`` releases the student versions with Chinese
instructions, the same code cells and the same grade ids.

Plain cells, writing and executing come from ``notebooks/src/nbcore.py``,
which the tutorials' ``nbtools.py`` shares.
"""
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(NB_DIR))
SHIPPED = os.path.join(ROOT, "python", "tapegrad", "coursework", "assignments")
sys.path.insert(0, os.path.join(os.path.dirname(NB_DIR), "src"))  # notebooks/src: nbcore

from nbcore import code_cell, execute, markdown_cell, new_notebook, write_notebook  # noqa: E402


def _nbg(cell, gid, grade=False, solution=False, locked=False, points=None):
    m = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3,
         "solution": solution}
    if grade:
        m["points"] = points
    cell.metadata["nbgrader"] = m
    return cell


def _translated(cell, zh):
    if zh is not None:
        cell.metadata["tapegrad"] = {"translations": {"zh": zh.strip("\n")}}
    return cell


def md(text, zh=None):
    return _translated(markdown_cell(text), zh)


def code(text):
    return code_cell(text)


def given(text, gid):
    return _nbg(code(text), gid, locked=True)


def answer(text, gid):
    return _nbg(code(text), gid, solution=True)


def tests(text, gid, points):
    return _nbg(code(text), gid, grade=True, locked=True, points=points)


def written(text, gid, points, zh=None):
    return _nbg(md(text, zh), gid, grade=True, solution=True, points=points)


def write(name, cells):
    for i, c in enumerate(cells):  # stable ids: regenerating gives the same file
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        c.id = gid or f"cell-{i}"
    return write_notebook(new_notebook(cells), NB_DIR, name)


def run(path, timeout=3600, env=None):
    """Execute a notebook in its own directory and save the outputs (the
    kernel imports this checkout's tapegrad; MNIST from $TAPEGRAD_DATA, else
    the shared copy if there is one)."""
    py = os.path.join(ROOT, "python")
    kernel_env = {"PYTHONPATH": os.pathsep.join(p for p in [py, os.environ.get("PYTHONPATH", "")] if p),
                  "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}
    shared = "/work/shared/data/mnist"
    if "TAPEGRAD_DATA" not in os.environ and os.path.isdir(shared):
        kernel_env["TAPEGRAD_DATA"] = shared
    nb = execute(path, timeout, {**kernel_env, **(env or {})})
    for c in nb.cells:  # no timings in the committed file
        c.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return nb


def release_all():
    """Release every source assignment into the package (student versions):
    English into assignments/, Chinese into assignments/zh/."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from tapegrad.coursework import release
    return release(NB_DIR, SHIPPED) + release(NB_DIR, os.path.join(SHIPPED, "zh"), lang="zh")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        for p in sys.argv[2:]:
            run(p)
            print("executed", p)
    elif len(sys.argv) == 2 and sys.argv[1] == "all":
        import runpy
        for name in sorted(os.listdir(HERE)):
            if name.startswith("make_") and name.endswith(".py"):
                runpy.run_path(os.path.join(HERE, name), run_name="__main__")
        for name in sorted(os.listdir(NB_DIR)):
            if name.endswith(".ipynb"):
                run(os.path.join(NB_DIR, name))
                print("executed", name)
        for p in release_all():
            print("released", p)
    elif len(sys.argv) == 2 and sys.argv[1] == "release":
        for p in release_all():
            print("released", p)
    else:
        print(__doc__)
