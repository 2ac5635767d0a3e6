"""The assignments' instructions in Chinese (issue 21): ``release --lang zh``.

The instructor notebooks carry the Chinese text of each markdown cell in its
metadata (written by ``notebooks/assignments/src/make_NN.py`` with ``zh=``).
Released in either language, a notebook has the same cells, the same grade
ids and the same code and tests, so one grader and one gradebook serve both:
a Chinese submission is graded into the same gradebook as English ones.
"""
import csv
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from tapegrad import coursework as cw  # noqa: E402
from tapegrad.coursework import NotebookFormatError  # noqa: E402
from tapegrad.coursework.release import translate_notebook, translations  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = ROOT / "notebooks" / "assignments"
SOURCES = sorted(SRC_DIR.glob("*.ipynb"))
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
CJK = re.compile(r"[\u4e00-\u9fff]")


def nbgrader(cell):
    return cell.metadata.get("nbgrader")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("released")
    en = cw.release(SRC_DIR, out / "en")
    zh = cw.release(SRC_DIR, out / "zh", lang="zh")
    return out, en, zh


def test_both_languages_release_the_same_notebooks(released):
    out, en, zh = released
    assert [p.name for p in en] == [p.name for p in zh] == [p.name for p in SOURCES]
    # the English release is the shipped one, byte for byte (no translations left in it)
    for p in en:
        assert p.read_bytes() == (cw.assignments_dir() / p.name).read_bytes()


@pytest.mark.parametrize("name", [p.name for p in SOURCES])
def test_grade_ids_and_code_cells_are_the_same_only_the_instructions_differ(released, name):
    out, _, _ = released
    a = nbformat.read(str(out / "en" / name), as_version=4)
    b = nbformat.read(str(out / "zh" / name), as_version=4)
    assert len(a.cells) == len(b.cells)
    assert [c.cell_type for c in a.cells] == [c.cell_type for c in b.cells]
    assert [nbgrader(c) for c in a.cells] == [nbgrader(c) for c in b.cells]
    assert [c.get("id") for c in a.cells] == [c.get("id") for c in b.cells]
    assert any(nbgrader(c) and nbgrader(c)["grade"] for c in a.cells)
    n_md = 0
    for x, y in zip(a.cells, b.cells):
        assert x.metadata == y.metadata
        assert "translations" not in json.dumps(y.metadata)
        if x.cell_type == "markdown" and x.source.strip() == cw.notebook.ANSWER_STUB:
            # an answer cell holding only the answer (the question is in the cell
            # before it): the stub, the same in both languages
            assert y.source == x.source
        elif x.cell_type == "markdown":
            n_md += 1
            assert CJK.search(y.source) and not CJK.search(x.source), y.source[:80]
            # code spans and displayed formulas are kept as they are
            for kept in re.findall(r"`[^`]+`", x.source) + re.findall(r"\$\$.*?\$\$", x.source, re.S):
                assert kept in y.source, f"{name}: {kept!r} is not in the zh text"
        else:
            assert x.source == y.source
    assert n_md >= 5
    # a manually graded answer is still a blank answer for the student
    for c in b.cells:
        if c.cell_type == "markdown" and nbgrader(c) and nbgrader(c)["solution"]:
            assert "YOUR ANSWER HERE" in c.source and "BEGIN SOLUTION" not in c.source


def test_instructor_notebooks_carry_what_their_makers_write():
    """The zh texts in the instructor notebooks come from make_NN.py (zh=)."""
    sys.path.insert(0, str(SRC_DIR / "src"))
    try:
        for src in sorted((SRC_DIR / "src").glob("make_*.py")):
            cells = runpy.run_path(str(src), run_name="maker")["cells"]
            name = next(p for p in SOURCES if p.name[:2] == src.stem[-2:])
            nb = nbformat.read(str(name), as_version=4)
            assert [(c.cell_type, c.source, translations(c)) for c in nb.cells] == \
                   [(c.cell_type, c.source, translations(c)) for c in cells], name.name
            assert all("zh" in translations(c) for c in nb.cells if c.cell_type == "markdown")
    finally:
        sys.path.remove(str(SRC_DIR / "src"))


def test_a_cell_without_the_language_is_named():
    nb = nbformat.read(str(SOURCES[0]), as_version=4)
    md = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    del nb.cells[md[2]].metadata["tapegrad"]
    with pytest.raises(NotebookFormatError, match=rf"cell {md[2]} \(markdown, .*\): no 'zh' text"):
        cw.release_notebook(nb, "zh")
    assert cw.release_notebook(nb).cells[md[2]].source == nb.cells[md[2]].source  # English: fine
    with pytest.raises(NotebookFormatError, match="no 'fr' text"):
        translate_notebook(nbformat.read(str(SOURCES[0]), as_version=4), "fr")


def test_release_cli_lang(tmp_path):
    run = [sys.executable, "-m", "tapegrad.coursework", "release"]
    r = subprocess.run(run + ["--lang", "zh", str(SOURCES[1]), str(tmp_path / "zh")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    nb = nbformat.read(str(tmp_path / "zh" / SOURCES[1].name), as_version=4)
    assert nb.cells[0].source.startswith("# 作业 2")
    r = subprocess.run(run + ["--lang", "fr", str(SRC_DIR), str(tmp_path / "fr")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and "01_backprop_by_hand.ipynb: cell 0 (markdown" in r.stderr
    assert "no 'fr' text" in r.stderr and not (tmp_path / "fr").exists()


def test_a_chinese_submission_lands_in_the_same_gradebook(released, tmp_path):
    out, _, _ = released
    name = "01_backprop_by_hand.ipynb"
    source = nbformat.read(str(SRC_DIR / name), as_version=4)
    auto = sum(c.metadata["nbgrader"]["points"] for c in source.cells
               if nbgrader(c) and nbgrader(c)["grade"] and not nbgrader(c)["solution"])
    solved_zh = translate_notebook(source, "zh")     # a student who solved the zh release
    for c in solved_zh.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    sub = tmp_path / "submitted"
    students = {"li": solved_zh, "wang": nbformat.read(str(out / "zh" / name), as_version=4),
                "ann": nbformat.read(str(out / "en" / name), as_version=4), "bob": source}
    for st, nb in students.items():
        (sub / st / "a1").mkdir(parents=True)
        nbformat.write(nb, str(sub / st / "a1" / name))
    grades = tmp_path / "grades"
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "grade-all", str(sub),
                        "--source", str(SRC_DIR / name), "--out", str(grades), "--jobs", "2",
                        "--time-limit", "300"], capture_output=True, text=True, env=ENV, timeout=1500)
    assert r.returncode == 0, r.stderr
    with open(grades / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "a1", "total"]
    book = {row[0]: row[1:] for row in rows[1:]}
    assert book == {"li": [str(auto)] * 2, "bob": [str(auto)] * 2, "wang": ["0", "0"], "ann": ["0", "0"]}
    reports = {st: json.loads((grades / st / "a1" / "01_backprop_by_hand.report.json").read_text())
               for st in students}
    ids = [t["grade_id"] for t in reports["bob"]["tests"]]
    assert ids and all([t["grade_id"] for t in rep["tests"]] == ids for rep in reports.values())


def test_shipped_chinese_versions_are_the_zh_release_of_the_sources(released):
    out, _, zh = released
    shipped = cw.assignments_dir("zh")
    assert sorted(p.name for p in shipped.glob("*.ipynb")) == sorted(p.name for p in zh)
    for p in zh:
        assert p.read_bytes() == (shipped / p.name).read_bytes(), (
            f"{p.name}: run `python notebooks/assignments/src/cwtools.py release`")
    with pytest.raises(ValueError, match="no assignments in 'fr'"):
        cw.assignments_dir("fr")


def test_fetch_lang_zh_copies_the_chinese_versions(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tapegrad.coursework", "fetch", "--lang", "zh",
                        str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    got = sorted(p.name for p in tmp_path.iterdir())
    assert got == sorted(p.name for p in cw.assignments_dir().glob("*.ipynb"))
    for name in got:
        assert (tmp_path / name).read_bytes() == (cw.assignments_dir("zh") / name).read_bytes()
        assert CJK.search(nbformat.read(str(tmp_path / name), as_version=4).cells[0].source)
