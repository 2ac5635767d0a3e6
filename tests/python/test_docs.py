"""The documentation is tested: its examples run, and the site builds.

1. The examples in docstrings (``>>>``) of every module of the package, of the
   C functions of ``tapegrad._C`` and of the methods and properties of the C
   types (``Tensor``, ``TapeEntry``), run as doctests with ``tg`` and ``np`` in
   their globals. So do the examples of the pages under ``docs/``.
2. The Sphinx site builds with warnings as errors (``-W``), and its API pages
   show every public name of ``dir(tapegrad)``, its op reference every op of
   ``tg.ops()``. Skipped when Sphinx is not installed (``pip install -e
   ".[docs]"``; CI installs it).
"""
from __future__ import annotations

import doctest
import importlib
import io
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


# ---------------------------------------------------------------------------
# 1. examples
# ---------------------------------------------------------------------------

def _modules() -> list[str]:
    names = ["tapegrad"]
    for info in pkgutil.walk_packages(tg.__path__, "tapegrad."):
        if info.name == "tapegrad._C" or info.name.endswith(".__main__"):
            continue
        names.append(info.name)
    return names


def _run(tests, label: str) -> None:
    """Run doctests (each with a freshly seeded generator and grad mode on)
    and fail with every failure's report."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        if not test.examples:
            continue
        tg.manual_seed(0)
        tg.set_grad_enabled(True)
        runner.run(test, out=out.write)
    tg.set_grad_enabled(True)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {label}:\n{out.getvalue()}"


def _globs() -> dict:
    return {"tg": tg, "np": np}


@pytest.mark.parametrize("modname", _modules())
def test_module_docstring_examples(modname):
    mod = importlib.import_module(modname)
    tests = doctest.DocTestFinder(exclude_empty=True).find(mod, modname, globs=_globs())
    _run(tests, modname)


def _c_tests() -> list:
    """Doctests of the compiled core: its functions, and the methods of its
    public types (DocTestFinder), plus their properties (which DocTestFinder
    does not look at when they are C getset descriptors)."""
    finder, parser = doctest.DocTestFinder(exclude_empty=True), doctest.DocTestParser()
    tests = finder.find(_C, "tapegrad._C", globs=_globs())
    types_ = [obj for name, obj in vars(_C).items() if isinstance(obj, type) and not name.startswith("_")
              and obj.__module__ in ("tapegrad", "tapegrad._C")]
    for cls in types_:
        tests += finder.find(cls, f"tapegrad.{cls.__name__}", module=False, globs=_globs())
    seen = {t.name for t in tests}
    for cls in types_:
        for name, obj in sorted(vars(cls).items()):
            if not isinstance(obj, (types.GetSetDescriptorType, types.MemberDescriptorType, property)):
                continue
            full = f"tapegrad.{cls.__name__}.{name}"
            doc = obj.__doc__
            if full in seen or not isinstance(doc, str) or ">>>" not in doc:
                continue
            seen.add(full)
            tests.append(parser.get_doctest(doc, _globs(), full, None, None))
    return tests


def test_c_docstring_examples():
    tests = _c_tests()
    assert any(t.examples for t in tests), "no examples found in the C docstrings"
    _run(tests, "tapegrad._C and its types")


def _doc_pages() -> list[Path]:
    if not DOCS.is_dir():
        return []
    skip = {"_build", "_generated", "_ext", "_static"}
    return sorted(p for p in DOCS.rglob("*.md") if not skip & set(p.relative_to(DOCS).parts))


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_page_examples(page):
    # fence lines would be read as expected output: blank them (keeps line numbers)
    text = re.sub(r"(?m)^[ \t]*(```|~~~|:::).*$", "", page.read_text(encoding="utf-8"))
    test = doctest.DocTestParser().get_doctest(text, _globs(), str(page.relative_to(ROOT)), str(page), 0)
    _run([test], str(page.relative_to(ROOT)))


# ---------------------------------------------------------------------------
# 2. the site
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("docs")
    html, doctrees = out / "html", out / "doctrees"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python")] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(doctrees), str(DOCS), str(html)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (f"the documentation does not build with -W:\n{proc.stdout[-5000:]}\n"
                                  f"{proc.stderr[-10000:]}")
    return html


def test_docs_build_lists_every_public_name(built_site):
    api = built_site / "reference" / "python"
    text = "".join(p.read_text(encoding="utf-8") for p in api.glob("*.html"))
    missing = []
    for name in dir(tg):
        if name.startswith("_"):
            continue
        obj = getattr(tg, name)
        ids = [f'id="tapegrad.{name}"']
        if isinstance(obj, types.ModuleType):
            ids.append(f'id="module-{obj.__name__}"')
        if not any(i in text for i in ids):
            missing.append(name)
    assert not missing, f"public names missing from the API pages: {missing}"


def test_docs_build_lists_every_op(built_site):
    from docutils.nodes import make_id

    text = (built_site / "reference" / "ops.html").read_text(encoding="utf-8")
    missing = [op["name"] for op in tg.ops() if f'id="{make_id("op-" + op["name"])}"' not in text]
    assert not missing, f"ops missing from the op reference: {missing}"


def test_every_top_level_function_has_a_group():
    """The API page's groups are derived (ops by their file, the core's other
    names by tapegrad._CORE_NAMES, Python functions by their module, aliases
    with what they alias): every public function and class of tapegrad is in
    one of them, none falls through to "Other functions", and no group names
    a name tapegrad does not have."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import tapegrad_docgen as docgen
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    groups = docgen._top_groups()
    assert [h for h, _ in groups] == docgen.TOP_GROUPS
    placed = [n for _, names in groups for n in names]
    assert len(placed) == len(set(placed)), "a name is in two groups"
    assert [n for n in placed if not hasattr(tg, n)] == []
    ungrouped = [n for n in docgen.public_names(tg) if n not in placed
                 and docgen._kind(getattr(tg, n)) in ("function", "class", "exception")]
    assert ungrouped == [], f"public names the API page lists under 'Other': {ungrouped}"
    by_name = {n: h for h, names in groups for n in names}
    assert by_name["exp"] == "Elementwise: functions" and by_name["arcsin"] == "Elementwise: functions"
    assert by_name["no_grad"] == "Autograd" and by_name["save"] == "Saving and loading"
    assert by_name["concatenate"] == by_name["split"] == "Shapes, views and indexing"
    assert by_name["linspace"] == "Creating tensors"  # by _shape.py's own _API_GROUPS


def test_docs_build_renders_the_notebooks(built_site):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (built_site / "tutorials" / (nb.stem + ".html")).exists(), f"{nb.name} is not in the docs"


def test_docs_build_has_the_chinese_landing_page(built_site):
    """docs/zh/index.md (issue 21): in the toctree, its CJK text intact, linking
    to the Chinese editions of the notebooks."""
    page = (built_site / "zh" / "index.html").read_text(encoding="utf-8")
    assert "tapegrad 中文入门" in page and "均方误差" in page
    for nb in ("01_three_layer_network", "02_mnist", "03_inspecting_gradients"):
        assert f'href="../tutorials/{nb}.zh.html"' in page, nb
        assert (built_site / "tutorials" / f"{nb}.zh.html").exists()
    assert 'href="zh/index.html"' in (built_site / "index.html").read_text(encoding="utf-8")
