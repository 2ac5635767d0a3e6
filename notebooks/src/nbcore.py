"""What the notebook makers share: plain cells, a notebook with the kernel's
metadata, writing it, and executing one in its own folder.

Two tools stand on this module: ``nbtools.py`` (beside it: the tutorials,
their Chinese editions, outputs cleaned for reading without a kernel) and
``notebooks/assignments/src/cwtools.py`` (the assignments: nbgrader's cell
metadata, stable cell ids, the release into the package). It imports neither.
"""
import os

import nbformat
from nbclient import NotebookClient

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def markdown_cell(text):
    """A markdown cell (surrounding blank lines dropped)."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code_cell(text):
    """A code cell (surrounding blank lines dropped)."""
    return nbformat.v4.new_code_cell(text.strip("\n"))


def new_notebook(cells):
    """A notebook of ``cells`` for the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_notebook(nb, folder, name):
    """Write ``nb`` as ``folder/name``; returns the path."""
    path = os.path.join(folder, name)
    nbformat.write(nb, path)
    return path


def execute(path, timeout=3600, env=None):
    """Execute the notebook at ``path`` top to bottom in its own folder, with
    ``env`` added to the environment for the kernel (restored afterwards);
    returns the executed notebook, unsaved."""
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb
