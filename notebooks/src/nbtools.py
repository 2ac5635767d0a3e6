"""Tiny helpers to write notebooks from Python sources (so their text is
reviewable in diffs) and to execute them top to bottom.

    python notebooks/src/make_01.py            # write notebooks/01_...ipynb
    python notebooks/src/nbtools.py run NB     # execute in place (outputs saved)
    python notebooks/src/nbtools.py run-all    # both, for every notebooks/src/make_NN.py
    python notebooks/src/nbtools.py run-all 02 04   # only these
    python notebooks/src/check_render.py       # open them in an untrusted JupyterLab: do they read?

Notebooks 01-03 have a Chinese (zh-CN) edition written from the same source:
their prose cells are ``md(en, zh=...)``, their code cells are shared, and
``write_editions`` writes ``NN_name.ipynb`` and ``NN_name.zh.ipynb`` side by
side (same folder, so relative paths work in both; ASCII file names, safe in
archives and on every file system). Plot labels go through ``tr("...")``,
defined by the one cell that differs between editions (``edition(ZH_LABELS)``,
tagged ``edition``): English as written, or Chinese when a CJK font is found.

Saved outputs are made to read without a kernel: an output that carries both
a widget view and a static fallback (``tg.inspect.explore``) keeps only the
fallback, since a saved widget view shows nothing in nbconvert's HTML or on
GitHub (and would win over the fallback there).

Plain cells, writing and executing come from ``nbcore.py`` (beside this file),
which the assignments' ``cwtools.py`` shares.
"""
import copy
import glob
import os
import re
import subprocess
import sys

import nbformat

from nbcore import code_cell, execute, markdown_cell, new_notebook, write_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)


LANGS = ("en", "zh")


class Prose:
    """A markdown cell in several languages (``md(en, zh=...)``)."""

    def __init__(self, texts):
        self.texts = texts

    def cell(self, lang):
        if lang not in self.texts:
            first = self.texts["en"].strip().splitlines()[0]
            raise ValueError(f"markdown cell {first[:60]!r} has no {lang!r} text")
        return markdown_cell(self.texts[lang])


def md(text, zh=None):
    """A markdown cell; with ``zh=`` the same cell in Chinese for the zh edition."""
    if zh is None:
        return markdown_cell(text)
    return Prose({"en": text, "zh": zh})


def code(text, tags=()):
    """A code cell. ``tags=("expected-warning",)`` marks a cell whose saved
    output shows a warning on purpose (tests/python/test_notebook_outputs.py
    allows it there and nowhere else)."""
    c = code_cell(text)
    if tags:
        c.metadata["tags"] = list(tags)
    return c


EDITION_EN = """
def tr(text):
    \"\"\"The plots' labels in this edition's language: English, as written.\"\"\"
    return text
"""

# the zh edition's labels: Chinese where matplotlib has a CJK font, else English
# with one printed note (never tofu boxes or one "Glyph missing" warning per label)
EDITION_ZH = """
# 图中的标题、坐标轴和图例用中文；这需要一种能显示汉字的字体 (CJK font)。
# 找到就用它；找不到就保留英文标签，只打印一行说明（不会出现方框或一串警告）。
import logging
import matplotlib
import matplotlib.pyplot as plt
from matplotlib import font_manager

ZH_LABELS = {labels}
CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC"]


def find_cjk_font():
    def known():
        names = {{f.name for f in font_manager.fontManager.ttflist}}
        return next((name for name in CJK_FONTS if name in names), None)
    if known() is None:   # a font installed after matplotlib built its font cache
        for path in font_manager.findSystemFonts():
            if any(k in path.lower() for k in ("cjk", "wqy", "sourcehan", "simhei", "msyh", "pingfang")):
                try:
                    font_manager.fontManager.addfont(path)
                except Exception:  # an unreadable font file: skip it
                    pass
    return known()


CJK_FONT = find_cjk_font()
if CJK_FONT and tuple(map(int, matplotlib.__version__.split(".")[:2])) >= (3, 6):
    # per-glyph fallback, in order: Latin letters and math from DejaVu Sans, Chinese from CJK_FONT
    plt.rcParams["font.family"] = ["DejaVu Sans", CJK_FONT]
elif CJK_FONT:  # matplotlib < 3.6 has no fallback: all text in the CJK font, an ASCII minus
    plt.rcParams["font.family"] = [CJK_FONT]
    plt.rcParams["axes.unicode_minus"] = False
if CJK_FONT:
    # some CJK fonts come in one weight only (WenQuanYi Zen Hei: 500); matplotlib
    # would log that once per text style, harmlessly: keep that one message out
    logging.getLogger("matplotlib.font_manager").addFilter(
        lambda r: not r.getMessage().startswith("findfont: Failed to find font weight"))
    print(f"图中文字使用字体 {{CJK_FONT}}")
else:
    print("说明：没有找到中文字体，图中的标签保留英文。"
          "安装一种中文字体（如 Debian/Ubuntu 的 fonts-noto-cjk）后重新运行即可。")


def tr(text):
    \"\"\"图中的文字：有中文字体时用中文，否则用英文原文。\"\"\"
    return ZH_LABELS.get(text, text) if CJK_FONT else text
"""


def edition(zh_labels):
    """The one code cell that differs between the editions: it defines
    ``tr(text)`` for the plots' labels (``zh_labels``: English -> Chinese)."""
    return ("edition", zh_labels)


def edition_cell(lang, zh_labels):
    if lang == "en":
        src = EDITION_EN
    else:
        body = "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in zh_labels.items()) + "}"
        src = EDITION_ZH.format(labels=body)
    return code(src, tags=("edition",))


def notebook(cells, lang="en"):
    """The notebook of ``cells`` in edition ``lang``."""
    out = []
    for c in cells:
        if isinstance(c, Prose):
            out.append(c.cell(lang))
        elif isinstance(c, tuple) and c and c[0] == "edition":
            out.append(edition_cell(lang, c[1]))
        elif c.cell_type == "markdown" and lang != "en":   # md(text) without zh=
            first = c.source.strip().splitlines()[0] if c.source.strip() else ""
            raise ValueError(f"markdown cell {first[:60]!r} has no {lang!r} text")
        else:
            out.append(copy.deepcopy(c))
    return new_notebook(out)


def edition_name(name, lang):
    """``01_x.ipynb`` -> ``01_x.zh.ipynb`` (English keeps its name)."""
    return name if lang == "en" else name[:-len(".ipynb")] + f".{lang}.ipynb"


def write_editions(name, cells, langs=LANGS):
    """Write every edition of ``cells`` (a ValueError names a prose cell that
    lacks a language, before anything is written). Returns the paths."""
    nbs = [(edition_name(name, lang), notebook(cells, lang)) for lang in langs]
    return [write_notebook(nb, NB_DIR, n) for n, nb in nbs]


def write(name, cells):
    """Write a notebook of ``cells`` (one edition) as ``notebooks/name``."""
    return write_notebook(new_notebook(cells), NB_DIR, name)


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
    nb = execute(path, timeout, env)
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
        outs = subprocess.run([sys.executable, src], cwd=HERE, check=True, capture_output=True,
                              text=True).stdout.strip().splitlines()
        for out in outs:  # one line per edition written
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
