"""The committed notebooks render in a real browser, in an untrusted
JupyterLab (issue 17), checked by ``notebooks/src/check_render.py``.

Opt-in (``python -m pytest -m browser tests/python/test_notebook_render.py``):
it needs JupyterLab, Selenium and Debian's ``chromium`` + ``chromium-driver``,
and skips, saying which is missing, only when one of them is not installed.
The first test shows the check can fail: a notebook of broken outputs (an
SVG-only drawing that an untrusted JupyterLab shows as its bare repr, a
formula MathJax refuses, an error, an image that does not load, an
``explore`` output without its static view) gets each problem reported,
while a real drawing beside them gets none, in JupyterLab and (but for the
SVG, which nbconvert's page shows) in nbconvert's HTML.
"""
import base64
import importlib.util
import itertools
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "notebooks"
_IDS = itertools.count()


def _checker():
    pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
    pytest.importorskip("jupyterlab", reason="jupyterlab not installed (pip install jupyterlab)")
    spec = importlib.util.spec_from_file_location("check_render",
                                                  NB_DIR / "src" / "check_render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    browser, driver = mod.find_browser()
    if not browser or not driver:
        pytest.skip("chromium or chromedriver not installed "
                    "(apt-get install chromium chromium-driver)")
    return mod


def _cell(kind, source, outputs=()):
    c = {"cell_type": kind, "id": f"c{next(_IDS)}", "metadata": {}, "source": source}
    if kind == "code":
        c.update(execution_count=1, outputs=list(outputs))
    return c


def _display(data):
    return {"output_type": "display_data", "metadata": {}, "data": data}


def test_the_check_reports_broken_outputs(tmp_path):
    check = _checker()
    import tapegrad as tg
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    good = tg.inspect.draw((x * x).sum())._repr_mimebundle_()
    svg = good["image/svg+xml"]
    bad_png = base64.b64encode(b"not a png").decode()
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "cells": [
              _cell("markdown", "Fine: $a + b$."),
              _cell("markdown", "Broken: $x_a_b$, and\n\n$$\\frac{1}{2$$"),
              _cell("code", "draw(y)", [_display({
                  "text/plain": "<tapegrad.inspect.draw.GraphDrawing at 0x7f3a2c1b9d50>",
                  "image/svg+xml": svg})]),
              _cell("code", "1 / 0", [{"output_type": "error", "ename": "ZeroDivisionError",
                                       "evalue": "division by zero",
                                       "traceback": ["Traceback (most recent call last)",
                                                     "ZeroDivisionError: division by zero"]}]),
              _cell("code", "show()", [_display({
                  "text/plain": "<picture>",
                  "text/html": f"<img src='data:image/png;base64,{bad_png}'>"})]),
              _cell("code", "explore(y)", [_display({
                  "text/plain": "<tg.inspect.Explorer: backward of t in 3 steps>",
                  "text/html": "<p>nothing here</p>"})]),
              _cell("code", "draw(y)", [_display(good)]),
          ]}
    folder = tmp_path / "nb"
    folder.mkdir()
    (folder / "bad.ipynb").write_text(json.dumps(nb))
    problems = check.check_notebooks([str(folder / "bad.ipynb")], log=lambda m: None)
    html = [p for p in problems if p.startswith("bad.ipynb (nbconvert HTML): ")]
    lab = [p for p in problems if p not in html]
    # nbconvert's page shows the SVG (no bare repr there) but not the rest
    assert sorted({p.split(": cell ")[1][0] for p in html}) == ["3", "4", "5"], html
    by_cell = {}
    for p in lab:
        cell = int(p.split(": cell ")[1].split(",")[0].split(":")[0])
        by_cell.setdefault(cell, []).append(p)
    assert sorted(by_cell) == [1, 2, 3, 4, 5], lab
    assert any("MathJax could not typeset a formula: Double subscripts" in p
               for p in by_cell[1]), by_cell[1]
    assert any("raw TeX left in rendered markdown" in p for p in by_cell[1])
    assert any("bare repr: <tapegrad.inspect.draw.GraphDrawing at 0x7f3a2c1b9d50>" in p
               for p in by_cell[2]), by_cell[2]
    assert any("shown as text/plain" in p for p in by_cell[2])
    assert any("an error/traceback" in p for p in by_cell[3])
    assert any("did not load" in p for p in by_cell[4])
    assert by_cell[5] == ["bad.ipynb: cell 5, output 0: explore output without its static "
                          "step list"]


def test_committed_notebooks_render_in_an_untrusted_jupyterlab(tmp_path):
    check = _checker()
    paths = sorted(str(p) for p in NB_DIR.glob("*.ipynb"))
    assert len(paths) >= 5
    shots = os.environ.get("TAPEGRAD_RENDER_SHOTS")  # to look at them: a folder
    problems = check.check_notebooks(paths, shots=shots, log=print)
    assert not problems, "\n".join(problems)
