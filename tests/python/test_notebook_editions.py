"""The Chinese (zh-CN) editions of notebooks 01-03 (issue 21).

Both editions are written by the same source, ``notebooks/src/make_NN.py``:
the code cells are the same, only the prose differs, and the one cell that
may differ (tagged ``edition``) defines ``tr()`` for the plots' labels. The
committed notebooks are what the sources write, every prose cell has both
languages, and the zh edition's labels render with a CJK font where one is
installed and stay English, with one note, where none is.
(Both editions run top to bottom in test_notebooks.py, and their saved
outputs are checked by test_notebook_outputs.py.)
"""
import contextlib
import io
import json
import logging
import re
import runpy
import sys
import warnings
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "notebooks" / "src"
sys.path.insert(0, str(SRC))
import nbtools  # noqa: E402

EDITIONS = {"01": "01_three_layer_network.ipynb", "02": "02_mnist.ipynb",
            "03": "03_inspecting_gradients.ipynb"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def maker(num):
    return runpy.run_path(str(SRC / f"make_{num}.py"), run_name="maker")


def committed(name):
    return json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))


def text(cell):
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def is_edition(cell):
    return "edition" in cell.get("metadata", {}).get("tags", [])


def test_every_numbered_notebook_with_a_zh_edition_is_listed():
    zh = sorted(p.name for p in (ROOT / "notebooks").glob("*.zh.ipynb"))
    assert zh == sorted(nbtools.edition_name(n, "zh") for n in EDITIONS.values())


@pytest.mark.parametrize("num", sorted(EDITIONS))
def test_every_prose_cell_has_both_languages(num):
    cells = maker(num)["cells"]
    prose = [c for c in cells if isinstance(c, nbtools.Prose)]
    plain_md = [c for c in cells if not isinstance(c, (nbtools.Prose, tuple)) and c.cell_type == "markdown"]
    assert prose and not plain_md, "a markdown cell written in English only"
    for c in prose:
        assert set(c.texts) == set(nbtools.LANGS)
        assert CJK.search(c.texts["zh"]), f"zh text without Chinese: {c.texts['zh'][:60]!r}"
        assert not CJK.search(c.texts["en"]), f"Chinese in the English text: {c.texts['en'][:60]!r}"


@pytest.mark.parametrize("num", sorted(EDITIONS))
def test_code_cells_are_the_same_in_both_editions(num):
    en, zh = committed(EDITIONS[num]), committed(nbtools.edition_name(EDITIONS[num], "zh"))
    assert [c["cell_type"] for c in en["cells"]] == [c["cell_type"] for c in zh["cells"]]
    pairs = [(a, b) for a, b in zip(en["cells"], zh["cells"]) if a["cell_type"] == "code"]
    assert len(pairs) >= 5
    differ = [i for i, (a, b) in enumerate(pairs) if text(a) != text(b)]
    editions = [i for i, (a, b) in enumerate(pairs) if is_edition(a) and is_edition(b)]
    assert differ == editions and len(editions) <= 1, "a code cell differs between the editions"
    for a, b in pairs:
        assert a.get("metadata", {}).get("tags") == b.get("metadata", {}).get("tags")
    # the prose differs cell by cell: the zh edition's is Chinese, the English one's is not
    for a, b in zip(en["cells"], zh["cells"]):
        if a["cell_type"] == "markdown":
            assert CJK.search(text(b)) and not CJK.search(text(a))


@pytest.mark.parametrize("num", sorted(EDITIONS))
@pytest.mark.parametrize("lang", nbtools.LANGS)
def test_committed_notebooks_are_what_the_source_writes(num, lang):
    """Regenerate (without running) and compare the cells' text: a change to
    make_NN.py that was not followed by `nbtools.py run-all NN` fails here."""
    fresh = nbtools.notebook(maker(num)["cells"], lang)
    saved = committed(nbtools.edition_name(EDITIONS[num], lang))
    assert [(c.cell_type, c.source) for c in fresh.cells] == \
        [(c["cell_type"], text(c)) for c in saved["cells"]], \
        f"run `python notebooks/src/nbtools.py run-all {num}`"


def test_a_forgotten_language_is_an_error():
    with pytest.raises(ValueError, match=r"'# Only in English' has no 'zh' text"):
        nbtools.notebook([nbtools.md("# Only in English"), nbtools.code("x = 1")], "zh")
    with pytest.raises(ValueError, match=r"has no 'zh' text"):
        nbtools.notebook([nbtools.Prose({"en": "# Title"})], "zh")
    nb = nbtools.notebook([nbtools.md("# Title", zh="# 标题"), nbtools.code("x = 1")], "zh")
    assert [c.source for c in nb.cells] == ["# 标题", "x = 1"]
    # English-only notebooks (04) keep working
    assert nbtools.notebook([nbtools.md("# Only in English")], "en").cells[0].source == "# Only in English"


def test_edition_names_stay_ascii_and_beside_the_english_one():
    assert nbtools.edition_name("02_mnist.ipynb", "zh") == "02_mnist.zh.ipynb"
    assert nbtools.edition_name("02_mnist.ipynb", "en") == "02_mnist.ipynb"


# ---------------------------------------------------------------------------
# the plots' labels
# ---------------------------------------------------------------------------

PLOTTING = [n for n in sorted(EDITIONS) if "ZH_LABELS" in maker(n)]


def test_notebooks_with_plots_have_an_edition_cell():
    assert PLOTTING == ["01", "02"]  # 03 draws graphs only (op names stay as in the code)


@pytest.mark.parametrize("num", PLOTTING)
def test_every_label_goes_through_tr_and_every_translation_is_used(num):
    m = maker(num)
    src = "\n".join(c.source for c in m["cells"] if not isinstance(c, (nbtools.Prose, tuple))
                    and c.cell_type == "code")
    # a literal label, title or legend entry not wrapped in tr(...)
    bare = re.findall(r"""\b(?:x?label|ylabel|title|set_title\()\s*=?\s*f?["']""", src)
    assert not bare, f"untranslated plot text in make_{num}.py: {bare}"
    for key, zh in m["ZH_LABELS"].items():
        # tr("key"), or a literal that reaches tr() through a variable (02's legend names)
        assert f'"{key}"' in src or f"'{key}'" in src, f"{key!r} is never used"
        assert CJK.search(zh)
        # the same placeholders, so that .format() works in both languages
        assert re.findall(r"{\w*(?::[^}]*)?}", key) == re.findall(r"{\w*(?::[^}]*)?}", zh)
        assert "$" not in zh, "mathtext would render the Chinese with the math font: tofu"
    assert sum(isinstance(c, tuple) and c[0] == "edition" for c in m["cells"]) == 1


def _run_edition_cell(num):
    """Execute the zh edition cell as the kernel does; returns (namespace, stdout)."""
    cell = nbtools.edition_cell("zh", maker(num)["ZH_LABELS"])
    ns, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(cell.source, f"<edition cell of {num}>", "exec"), ns)
    return ns, out.getvalue()


def _cjk_font_names():
    from matplotlib import font_manager
    cell = nbtools.edition_cell("zh", {}).source
    names = re.search(r"CJK_FONTS = (\[.*?\])", cell, re.S).group(1)
    return set(eval(names)), font_manager


@pytest.mark.parametrize("num", PLOTTING)
def test_without_a_cjk_font_labels_stay_english_with_one_note(num, monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    names, fm = _cjk_font_names()
    monkeypatch.setattr(fm.fontManager, "ttflist", [f for f in fm.fontManager.ttflist if f.name not in names])
    monkeypatch.setattr(fm, "findSystemFonts", lambda *a, **k: [])
    with mpl.rc_context():
        before = list(mpl.rcParams["font.family"])
        ns, out = _run_edition_cell(num)
        assert ns["CJK_FONT"] is None
        assert mpl.rcParams["font.family"] == before
    for key in maker(num)["ZH_LABELS"]:
        assert ns["tr"](key) == key
    assert len(out.splitlines()) == 1 and "没有找到中文字体" in out and "fonts-noto-cjk" in out


@pytest.mark.parametrize("old_matplotlib", [False, True], ids=["fallback", "mpl<3.6"])
@pytest.mark.parametrize("num", PLOTTING)
def test_with_a_cjk_font_every_label_renders_without_a_missing_glyph(num, old_matplotlib, tmp_path,
                                                                     caplog, monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    names, fm = _cjk_font_names()
    if not any(f.name in names for f in fm.fontManager.ttflist) and not any(
            k in p.lower() for p in fm.findSystemFonts() for k in ("cjk", "wqy", "sourcehan")):
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei or fonts-noto-cjk)")
    import matplotlib.pyplot as plt
    if old_matplotlib:   # no per-glyph font fallback before 3.6: the cell uses the CJK font alone
        monkeypatch.setattr(mpl, "__version__", "3.5.3")
    with mpl.rc_context():
        ns, out = _run_edition_cell(num)
        assert ns["CJK_FONT"] in names and ns["CJK_FONT"] in out
        want = [ns["CJK_FONT"]] if old_matplotlib else ["DejaVu Sans", ns["CJK_FONT"]]
        assert list(mpl.rcParams["font.family"]) == want
        assert mpl.rcParams["axes.unicode_minus"] is (not old_matplotlib)
        labels = {k: ns["tr"](k) for k in maker(num)["ZH_LABELS"]}
        assert all(CJK.search(v) for v in labels.values())
        fig, ax = plt.subplots()
        for i, (key, zh) in enumerate(labels.items()):
            ax.plot([0, 1], [i, i], label=zh.format(c=1, label="x", v=1.5, p=3, t=8))
        ax.set(title=labels[next(iter(labels))], xlabel="σ η x₁")
        ax.plot([-2, 3], [-1, 2])         # negative tick labels: the minus sign
        ax.legend()
        with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="matplotlib"):
            warnings.simplefilter("error")      # "Glyph ... missing from font(s)" would raise
            fig.savefig(tmp_path / "labels.png")
        plt.close(fig)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "font_manager" in r.name]
    assert not [r for r in caplog.records if "does not have a glyph" in r.getMessage()]
