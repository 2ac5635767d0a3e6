"""Sphinx configuration of the tapegrad documentation.

Build (offline; warnings are errors):

    python -m sphinx -W -b html docs docs/_build/html

The package is imported from ``python/`` (build the extension first:
``python setup.py build_ext --inplace``) unless tapegrad is installed. Before
Sphinx reads the sources, ``_ext/tapegrad_docgen.py`` copies the notebooks
and writes the generated reference pages (see its docstring).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
if importlib.util.find_spec("tapegrad") is None:
    sys.path.insert(0, str(ROOT / "python"))

import tapegrad  # noqa: E402

# -- project -----------------------------------------------------------------
project = "tapegrad"
author = "the tapegrad authors"
copyright = "the tapegrad authors"
version = release = tapegrad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",                  # Markdown pages (MyST) and the notebooks
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "_ext", "**/.ipynb_checkpoints"]
templates_path: list[str] = []

# No network at build time: no intersphinx, no remote images.
# (MathJax is loaded by the reader's browser from its CDN.)

# -- MyST and the notebooks ---------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"       # render the committed outputs, never execute
nb_merge_streams = True
# a widget needs a live kernel: show the static HTML snapshot it carries instead
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("dirhtml", "application/vnd.jupyter.widget-view+json", None),
    ("singlehtml", "application/vnd.jupyter.widget-view+json", None),
]

# -- autodoc ------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_docstring_signature = True   # C functions carry "name(args)" as line one
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
add_module_names = False

# -- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"tapegrad {release}"
html_static_path = ["_static"]
html_css_files = ["tapegrad.css"]
html_theme_options = {
    "source_repository": os.environ.get("TAPEGRAD_DOCS_REPOSITORY", ""),
    "navigation_with_keys": True,
}
if not html_theme_options["source_repository"]:
    del html_theme_options["source_repository"]
pygments_style = "friendly"
pygments_dark_style = "monokai"


# -- generated pages ----------------------------------------------------------
def _generate(app):
    import tapegrad_docgen

    app.tapegrad_docgen = tapegrad_docgen.generate(app.outdir)


def _drop_missing_coursework(app, docname, source):
    """docs/coursework.md is written separately; until it exists, its toctree
    lines and links are left out instead of failing the build."""
    if (DOCS / "coursework.md").exists():
        return
    text = source[0]
    lines = [ln for ln in text.splitlines(keepends=True)
             if ln.strip() not in ("coursework", "../coursework", "/coursework")]
    text = "".join(lines).replace("{doc}`../coursework`", "the coursework guide (``docs/coursework.md``)")
    text = text.replace("{doc}`coursework`", "the coursework guide (``docs/coursework.md``)")
    source[0] = text


def _escape_docstring(app, what, name, obj, options, lines):
    """Docstrings are written for ``help()`` as much as for Sphinx: an absolute
    value such as ``|x|`` must not become an RST substitution reference."""
    import tapegrad_docgen

    lines[:] = tapegrad_docgen.escape_docstring(lines)


def _attribute_docstring(app, what, name, obj, options, lines):
    """napoleon reads "text: more" on the first line of an attribute's
    docstring as "type: description" (``dtype`` would get the type "The
    element type"); tapegrad's attribute docstrings are prose, so they are
    put back as written."""
    import inspect

    import tapegrad_docgen
    from sphinx.util.docstrings import prepare_docstring

    doc = inspect.getdoc(obj) if what in ("attribute", "property") else None
    if doc and any(ln.startswith(":type:") for ln in lines):
        lines[:] = tapegrad_docgen.escape_docstring(prepare_docstring(doc))


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _escape_docstring)
    app.connect("autodoc-process-docstring", _attribute_docstring, priority=600)  # after napoleon
    app.connect("source-read", _drop_missing_coursework)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
