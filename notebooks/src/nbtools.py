"""Tiny helpers to write notebooks from Python sources (so their text is
reviewable in diffs) and to execute them top to bottom.

    python notebooks/src/make_01.py            # write notebooks/01_...ipynb
    python notebooks/src/nbtools.py run NB     # execute in place (outputs saved)
    python notebooks/src/nbtools.py run-all    # both, for every notebooks/src/make_NN.py
    python notebooks/src/nbtools.py run-all 02 04   # only these

Saved outputs are made to read without a kernel: an output that carries both
a widget view and a static fallback (``tg.inspect.explore``) keeps only the
fallback, since a saved widget view shows nothing in nbconvert's HTML or on
GitHub (and would win over the fallback there).
"""
import glob
import os
import re
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text, tags=()):
    """A code cell. ``tags=("expected-warning",)`` marks a cell whose saved
    output shows a warning on purpose (tests/python/test_notebook_outputs.py
    allows it there and nowhere else)."""
    c = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def write(name, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = os.path.join(NB_DIR, name)
    nbformat.write(nb, path)
    return path


def collapse_carriage_returns(nb):
    """Keep what a terminal shows of progress bars: for each line of a
    stream output, the text after its last carriage return."""
    for c in nb.cells:
        merged = []
        for o in c.get("outputs", []):  # consecutive chunks of one stream belong together
            if (merged and o.get("output_type") == "stream" and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == o.get("name")):
                merged[-1]["text"] += o["text"]
            else:
                merged.append(o)
        for o in merged:
            if o.get("output_type") == "stream" and "\r" in o.get("text", ""):
                o["text"] = "\n".join(line.rsplit("\r", 1)[-1] for line in o["text"].split("\n"))
        if "outputs" in c:
            c["outputs"] = merged
    return nb


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def keep_static_views(nb):
    """Drop widget views from saved outputs that have a static fallback
    (text/html or an image), and the saved widget state: re-running the cell
    brings the widget back."""
    for c in nb.cells:
        for o in c.get("outputs", []):
            data = o.get("data", {})
            if WIDGET_VIEW in data and any(k in data for k in ("text/html", "image/png", "image/svg+xml")):
                del data[WIDGET_VIEW]
    nb.metadata.pop("widgets", None)
    return nb


def run(path, timeout=3600, env=None):
    """Execute a notebook in its own directory and save the outputs."""
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    collapse_carriage_returns(nb)
    keep_static_views(nb)
    nbformat.write(nb, path)
    return nb


def run_all(only=()):
    """Regenerate every notebook from its ``make_NN.py`` and execute it, in
    order (``only``: a subset of the NN numbers). Returns the paths."""
    done = []
    for src in sorted(glob.glob(os.path.join(HERE, "make_*.py"))):
        num = re.match(r"make_(\w+)\.py", os.path.basename(src)).group(1)
        if only and num not in only:
            continue
        out = subprocess.run([sys.executable, src], cwd=HERE, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        run(out)
        print("regenerated and executed", os.path.relpath(out), flush=True)
        done.append(out)
    return done


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        for p in sys.argv[2:]:
            run(p)
            print("executed", p)
    elif len(sys.argv) >= 2 and sys.argv[1] == "run-all":
        run_all(tuple(sys.argv[2:]))
    else:
        sys.exit(__doc__)
