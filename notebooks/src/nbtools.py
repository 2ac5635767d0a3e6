"""Tiny helpers to write notebooks from Python sources (so their text is
reviewable in diffs) and to execute them top to bottom.

    python notebooks/src/make_01.py            # write notebooks/01_...ipynb
    python notebooks/src/nbtools.py run NB     # execute in place (outputs saved)
"""
import os
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text):
    return nbformat.v4.new_code_cell(text.strip("\n"))


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
    nbformat.write(nb, path)
    return nb


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        for p in sys.argv[2:]:
            run(p)
            print("executed", p)
