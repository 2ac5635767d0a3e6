"""Generate the reference pages of the tapegrad documentation at build time.

``conf.py`` calls :func:`generate` before Sphinx reads any source, so the
generated pages always describe the library being documented:

- ``tutorials/*.ipynb``: copies of ``notebooks/*.ipynb`` (rendered with their
  committed outputs; myst-nb does not execute them);
- ``reference/python/*.rst``: one page per public module, with an autodoc
  entry for every public name (``dir(tapegrad)`` and each module's
  ``__all__``), so a new function is documented without touching the docs;
- ``reference/ops.rst``: every op of ``tg.ops()``, its formulas in LaTeX, its
  differentiable inputs, dtypes and the place it is defined;
- ``reference/c-api.rst``: ``csrc/include/tapegrad.h`` split at its section
  banners, shown with ``literalinclude`` (so the page is the header itself);
- ``_generated/tutorials.md``: the list of notebooks on the tutorials page;
- ``_generated/benchmark-results.md``: ``benchmarks/results.md`` if it exists.

Every file is written only when its text changes, so incremental builds stay
incremental. All of these paths are listed in ``docs/.gitignore``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import shutil
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent

#: Modules that get an API page, in order (the first page that documents an
#: object is its canonical place; later pages link to it). Modules found in
#: ``dir(tapegrad)`` and public sub-packages are added automatically.
API_MODULES = [
    "tapegrad",
    "tapegrad.nn", "tapegrad.nn.functional", "tapegrad.nn.init", "tapegrad.nn.utils",
    "tapegrad.optim", "tapegrad.optim.lr_scheduler",
    "tapegrad.data", "tapegrad.data.mnist", "tapegrad.data.text",
    "tapegrad.keras", "tapegrad.keras.layers", "tapegrad.keras.losses",
    "tapegrad.keras.optimizers",
    "tapegrad.inspect", "tapegrad.testing", "tapegrad.coursework",
    "tapegrad.autograd", "tapegrad.interop", "tapegrad.linalg",
]

#: The headings of the top-level API page, in order.  What goes under each
#: is derived, so that a new function is grouped without an edit here: a
#: registry op by the file of ``csrc/ops/`` that defines it (``OP_GROUPS``),
#: a name of the compiled core that is not an op by ``tapegrad._CORE_NAMES``
#: (the table beside the names' export in ``tapegrad/__init__.py``), a Python
#: function by the module that defines it (``MODULE_GROUPS``), an alias (``cat``,
#: ``arcsin``) with the function it is.  A name in no group is listed under
#: "Other functions" (so nothing is ever left out).
TOP_GROUPS = [
    "Creating tensors",
    "Elementwise: arithmetic and comparisons",
    "Elementwise: functions",
    "Reductions",
    "Linear algebra",
    "Shapes, views and indexing",
    "Network functions and losses",
    "Autograd",
    "Saving and loading",
    "Runtime: the op registry, memory and threads",
]

#: Which group of TOP_GROUPS an op joins: by its file (and, in elementwise.c,
#: by its number of inputs).
OP_GROUPS = {
    ("elementwise.c", 2): "Elementwise: arithmetic and comparisons",
    ("elementwise.c", 1): "Elementwise: functions",
    "reduce.c": "Reductions",
    "linalg.c": "Linear algebra",
    "movement.c": "Shapes, views and indexing",
    "nn.c": "Network functions and losses",
    "conv.c": "Network functions and losses",
    "logic.c": "Elementwise: arithmetic and comparisons",
    "scan.c": "Reductions",
    "shape.c": "Shapes, views and indexing",
    "decomp.c": "Linear algebra",
    ("npfuncs.c", 2): "Linear algebra",
    ("npfuncs.c", 1): "Elementwise: functions",
}
#: Ops whose file holds several families (npfuncs.c: products and NumPy's
#: elementwise functions): their group by name, before OP_GROUPS.
OP_NAME_GROUPS = {"fmax": "Elementwise: arithmetic and comparisons",
                  "fmin": "Elementwise: arithmetic and comparisons",
                  "logaddexp2": "Elementwise: arithmetic and comparisons"}

#: Which group a top-level name defined in Python joins: by its module, unless
#: the module's own ``_API_GROUPS`` (heading -> names, beside the definitions)
#: names it, for a module that holds several families.
MODULE_GROUPS = {
    "tapegrad.interop": "Creating tensors",
    "tapegrad._shape": "Shapes, views and indexing",
    "tapegrad._npfuncs": "Shapes, views and indexing",
    "tapegrad.autograd": "Autograd",
    "tapegrad.serialization": "Saving and loading",
    "tapegrad._config": "Runtime: the op registry, memory and threads",
}


def _top_groups() -> list[tuple[str, list[str]]]:
    """The headings of TOP_GROUPS with the top-level names that go under each."""
    import tapegrad as tg
    groups: dict[str, list[str]] = {head: [] for head in TOP_GROUPS}
    for op in tg.ops():  # registry order: the order of oplist.h
        f = Path(op["file"]).name
        head = (OP_NAME_GROUPS.get(op["name"]) or OP_GROUPS.get((f, 1 if op["arity"] == 1 else 2))
                or OP_GROUPS.get(f))
        if head and hasattr(tg, op["name"]):
            groups[head].append(op["name"])
    for head, words in tg._CORE_NAMES.items():
        groups[head] += [w for w in words.split() if w not in groups[head]]
    placed = {n for names in groups.values() for n in names}
    of_object = {id(getattr(tg, n)): head for head, names in groups.items() for n in names}
    for name in public_names(tg):
        if name in placed:
            continue
        obj = getattr(tg, name)
        if isinstance(obj, types.ModuleType):
            continue
        modname = getattr(obj, "__module__", None) or ""
        own = getattr(sys.modules.get(modname), "_API_GROUPS", {})
        head = (of_object.get(id(obj)) or next((h for h, ns in own.items() if name in ns.split()), None)
                or MODULE_GROUPS.get(modname))
        if head:
            groups[head].append(name)
    return [(head, groups[head]) for head in TOP_GROUPS]

DATA_DOCS = {
    "float32": "The default dtype (NumPy's ``float32``).",
    "float64": "Double precision, for gradient checks (NumPy's ``float64``).",
    "int64": "Integers, for labels and indices; never requires grad (NumPy's ``int64``).",
    "bool": "Booleans (NumPy's ``bool``): what comparisons, masks and ``all``/``any`` return; also ``tg.bool_``.",
    "bool_": "The same dtype as ``tg.bool`` (NumPy's spelling ``np.bool_``).",
    "int32": "32-bit integers (NumPy's ``int32``); arithmetic wraps around as in NumPy.",
    "uint8": "Bytes 0..255 (NumPy's ``uint8``, raw image pixels such as MNIST's); arithmetic wraps around.",
    "dtype_names": "The names of the six dtypes.",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def title(text: str, char: str = "=", over: bool = False) -> str:
    line = char * max(len(text), 3)
    return (line + "\n" if over else "") + text + "\n" + line + "\n\n"


def rst_literal(text: str) -> str:
    """Inline literal, safe for any text without double backquotes."""
    text = " ".join(str(text).split()).replace("`", "'")
    return f"``{text}``" if text else ""


def indent(text: str, n: int = 3) -> str:
    pad = " " * n
    return "\n".join(pad + ln if ln.strip() else "" for ln in text.splitlines())


# --------------------------------------------------------------------------
# notebooks
# --------------------------------------------------------------------------

def copy_notebooks() -> list[str]:
    """Copy ``notebooks/*.ipynb`` to ``docs/tutorials/`` (and remove copies
    whose notebook is gone). Returns the copied names."""
    src_dir, dst_dir = ROOT / "notebooks", DOCS / "tutorials"
    dst_dir.mkdir(exist_ok=True)
    names = sorted(p.name for p in src_dir.glob("*.ipynb"))
    for name in names:
        src, dst = src_dir / name, dst_dir / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
    for old in dst_dir.glob("*.ipynb"):
        if old.name not in names:
            old.unlink()
    return names


NOTEBOOK_BLURBS = {
    "01": "A network h = σ(W1·x + b1), y = σ(W2·h + b2) with a mean squared error: the "
          "gradients derived by hand, computed with NumPy and with the tape (they agree to "
          "1e-10 in float64), then gradient descent.",
    "02": "The documents' Keras MNIST code running on `tapegrad.keras`: the softmax + "
          "`from_logits=True` mistake and its fix, learning curves, the misclassified "
          "digits, mean squared error against cross-entropy, and a small CNN.",
    "03": "`tg.inspect` on real graphs: the tape as a table and a drawing, backward one step "
          "at a time, the bias gradient summed over the batch, reused weights, a hand "
          "derivation checked against the tape, anomaly mode and per-entry profiles.",
    "04": "",
    "05": "Character-level language models on the makemore names: bigram counts, an "
          "embedding MLP, one causal attention head stepped through backward (the masked "
          "softmax's VJP checked by hand and by finite differences), a tiny GPT trained with "
          "AdamW, sampled names and attention maps.",
}


def write_tutorial_list(names: list[str]) -> None:
    """``_generated/tutorials.md``: one line per notebook (title and a blurb)."""
    import json

    lines = []
    for name in names:
        try:
            nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
            first = next(("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"), "")
            head = next((ln.lstrip("#").strip() for ln in first.splitlines() if ln.startswith("# ")), name)
        except (OSError, ValueError, KeyError):
            head = name
        blurb = NOTEBOOK_BLURBS.get(name[:2], "")
        if name.endswith(".zh.ipynb"):  # a Chinese edition, listed after its English original
            blurb = f"the Chinese (zh-CN) edition of notebook {name[:2]}, same code, prose in Chinese."
        stem = name[:-len(".ipynb")]
        lines.append(f"- [{head}]({stem}.ipynb)" + (f": {blurb}" if blurb else ""))
    write_if_changed(DOCS / "_generated" / "tutorials.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------

def _is_public(name: str) -> bool:
    return not name.startswith("_")


def public_names(mod: types.ModuleType) -> list[str]:
    """The public names of a module: ``__all__`` if it has one, everything in
    ``dir(tapegrad)`` for the top level, else the names defined in the module
    (or re-exported from the compiled core) and its public submodules."""
    if mod.__name__ == "tapegrad":
        return list(dict.fromkeys(n for n in dir(mod) if _is_public(n)))
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    out = []
    for name in dir(mod):
        if not _is_public(name) or name == "annotations":
            continue
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(mod.__name__ + "."):
                out.append(name)
            continue
        owner = getattr(obj, "__module__", None) or ""
        if owner == mod.__name__ or owner.startswith(mod.__name__ + ".") or owner == "tapegrad._C":
            out.append(name)
    return out


def _kind(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):  # Python functions and the C core's builtins
        return "function"
    return "data"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    lines = doc.splitlines()
    # the first line of a C docstring is its signature
    if lines and re.match(r"^[A-Za-z_][\w.]*\(.*\)\s*(->.*)?$", lines[0]):
        lines = lines[1:]
    para = []
    for ln in lines:
        if not ln.strip():
            if para:
                break
            continue
        para.append(ln.strip())
    text = " ".join(para)
    m = re.match(r"(.+?\.)(\s|$)", text)
    return m.group(1) if m else text


def discover_modules() -> list[str]:
    import pkgutil

    import tapegrad as tg

    # every public subpackage, whether or not something imported it yet, so
    # that dir(tapegrad) lists (and this documents) all of them
    for info in pkgutil.iter_modules(tg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module("tapegrad." + info.name)
    mods = []

    def add(name):
        if name in mods:
            return
        if importlib.util.find_spec(name) is None:
            return
        mods.append(name)

    for name in API_MODULES:
        try:
            add(name)
        except ModuleNotFoundError:
            pass
    for name in public_names(tg):
        obj = getattr(tg, name)
        if isinstance(obj, types.ModuleType):
            add(obj.__name__)
    # the public submodules of each documented package: all of them when the
    # package has no __all__, else only those its __all__ names; in both cases
    # except implementation modules whose every public name the package
    # re-exports (tapegrad.nn.modules, tapegrad.data.dataset, ...)
    i = 0
    while i < len(mods):
        mod = importlib.import_module(mods[i])
        i += 1
        if not hasattr(mod, "__path__"):
            continue
        exported = getattr(mod, "__all__", None)
        for info in pkgutil.iter_modules(mod.__path__):
            existing = getattr(mod, info.name, None)
            if info.name.startswith("_") or not isinstance(existing, (types.ModuleType, type(None))):
                continue  # private, or shadowed by a function of the same name
            if exported is not None and not (info.name in exported and isinstance(
                    getattr(mod, info.name, None), types.ModuleType)):
                continue
            sub = importlib.import_module(f"{mod.__name__}.{info.name}")
            own = [getattr(sub, n) for n in public_names(sub)
                   if not isinstance(getattr(sub, n), types.ModuleType)]
            if own and all(any(o is getattr(mod, n, None) for n in dir(mod)) for o in own):
                continue
            add(sub.__name__)
    return mods


def page_name(modname: str) -> str:
    return modname


def _autodoc_class(full: str, obj, directive: str) -> str:
    out = [f".. {directive}:: {full}", "   :members:", "   :undoc-members:"]
    bases = [b for b in obj.__bases__ if b is not object]
    if bases:
        out.append("   :show-inheritance:")
    return "\n".join(out) + "\n\n"


def _data_entry(full: str, name: str, obj) -> str:
    text = DATA_DOCS.get(name)
    if text is None:
        text = f"A {type(obj).__name__} constant."
    value = repr(obj)
    if len(value) > 70 or "\n" in value:
        value = None
    modname, _, short = full.rpartition(".")
    out = f".. py:data:: {short}\n   :module: {modname}\n"
    if value is not None:
        out += f"   :value: {value}\n"
    out += f"   :type: {type(obj).__module__}.{type(obj).__qualname__}\n\n" if type(obj).__module__ != "builtins" \
        else f"   :type: {type(obj).__qualname__}\n\n"
    return out + indent(text) + "\n\n"


_OPS: dict | None = None


def _op_for(name: str, obj) -> dict | None:
    """The registry entry of the op a C function runs (same name), or None."""
    global _OPS
    if _OPS is None:
        import tapegrad as tg
        _OPS = {o["name"]: o for o in tg.ops()}
    if getattr(obj, "__module__", None) != "tapegrad._C":
        return None
    return _OPS.get(getattr(obj, "__name__", name))


def _op_doc(name: str, obj) -> str:
    op = _op_for(name, obj)
    return op["doc"] if op else ""


def _op_note(name: str, obj) -> str:
    """Directive content appended after a C function's docstring: the op it
    records, its formulas, and a link to the op reference."""
    op = _op_for(name, obj)
    if not op:
        return ""
    lines = []
    if not _summary(obj) and op["doc"]:
        lines.append(_escape_summary(op["doc"]))
        lines.append("")
    ref = f":ref:`{op['name']} <op-{op['name']}>`"
    if op["forward_latex"]:
        text = f"Records the op {ref} on the tape: :math:`{' '.join(op['forward_latex'].split())}`"
        if op["vjp_latex"]:
            text += f", with VJP :math:`{' '.join(op['vjp_latex'].split())}`"
        lines.append(text + ".")
    else:
        lines.append(f"Runs the op {ref}.")
    return indent("\n".join(lines)) + "\n\n"


def _table(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    out = [".. list-table::", "   :widths: 30 70", "   :class: tg-api-table", ""]
    for ref, summary in rows:
        out.append(f"   * - {ref}")
        out.append(f"     - {summary or ' '}")
    return "\n".join(out) + "\n\n"


_SUBST = re.compile(r"(?<![\\`|])\|(?=\S)([^|`\n]*?\S)\|(?![|\w])")


def escape_substitutions(line: str) -> str:
    """``|x|`` (an absolute value in a docstring) would be an RST substitution
    reference: escape the bars, outside ``inline literals``."""
    parts = line.split("``")
    for k in range(0, len(parts), 2):  # even parts are outside literals
        parts[k] = _SUBST.sub(lambda m: "\\|" + m.group(1) + "\\|", parts[k])
    return "``".join(parts)


def escape_docstring(lines: list[str]) -> list[str]:
    """Escape substitution-like ``|...|`` in prose lines of a docstring,
    leaving doctest examples and literal blocks alone."""
    out, in_doctest, literal_indent, prev_literal_start, prev_indent = [], False, None, False, 0
    for ln in lines:
        stripped = ln.strip()
        ind = len(ln) - len(ln.lstrip())
        if not stripped:
            in_doctest = False
            out.append(ln)
            continue
        if literal_indent is not None:
            if ind > literal_indent:
                out.append(ln)
                continue
            literal_indent = None
        if prev_literal_start:
            prev_literal_start = False
            if ind > prev_indent:
                literal_indent = prev_indent
                out.append(ln)
                continue
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest or stripped.startswith(("+", "|")):  # doctests, tables, line blocks
            out.append(ln)
            continue
        out.append(escape_substitutions(ln))
        if stripped.endswith("::") or stripped.startswith(".. code"):
            prev_literal_start, prev_indent = True, ind
    return out


def _escape_summary(text: str) -> str:
    # summaries come from docstrings that are valid RST in their own context;
    # an unbalanced inline markup start would warn out of context
    if text.count("``") % 2 or (text.replace("``", "").count("`") % 2):
        return rst_literal(text)
    parts = text.split("``")
    prose = "".join(parts[0::2])
    if prose.replace("**", "").count("*") % 2:  # a lone * would start emphasis
        parts[0::2] = [p.replace("*", "\\*") for p in parts[0::2]]
    return escape_substitutions("``".join(parts))


def write_api() -> list[str]:
    """Write ``reference/python/<module>.rst`` and ``index.rst``; returns the
    documented full names of the top level (for the tests)."""
    import tapegrad as tg

    out_dir = DOCS / "reference" / "python"
    mods = discover_modules()
    canonical: dict[int, str] = {}   # id(object) -> documented full name
    keep_alive = []
    written = set()

    for modname in mods:
        mod = importlib.import_module(modname)
        names = public_names(mod)
        body = [title(modname), f".. automodule:: {modname}\n   :no-members:\n\n"]
        if modname == "tapegrad":
            body.append(
                "Every public name of the package, grouped; ``dir(tapegrad)`` is the list "
                "this page is generated from. The :class:`~tapegrad.Tensor` methods have "
                ":doc:`their own page <tapegrad.Tensor>`; the ops' formulas are in the "
                ":doc:`op reference <../ops>`.\n\n")
            groups = []
            seen = set()
            for head, words in _top_groups():
                g = [n for n in words if n in names]
                seen.update(g)
                groups.append((head, g))
            rest = [n for n in names if n not in seen]
            groups.append(("Dtypes and constants",
                           [n for n in rest if _kind(getattr(mod, n)) == "data"]))
            groups.append(("Submodules", [n for n in rest if _kind(getattr(mod, n)) == "module"]))
            groups.append(("Other classes", [n for n in rest if _kind(getattr(mod, n)) in ("class", "exception")]))
            groups.append(("Other functions", [n for n in rest if _kind(getattr(mod, n)) == "function"]))
        else:
            kinds = {"module": [], "class": [], "exception": [], "function": [], "data": []}
            for n in names:
                kinds[_kind(getattr(mod, n))].append(n)
            groups = [("Submodules", kinds["module"]), ("Classes", kinds["class"]),
                      ("Exceptions", kinds["exception"]), ("Functions", kinds["function"]),
                      ("Constants", kinds["data"])]

        entries = []  # the autodoc part, after the tables
        for head, group in groups:
            if not group:
                continue
            rows = []
            for name in group:
                obj = getattr(mod, name)
                full = f"{modname}.{name}"
                kind = _kind(obj)
                if kind == "module":
                    target = obj.__name__
                    if target not in mods:
                        continue  # an implementation module: its names are listed here
                    rows.append((f":doc:`{target} <{page_name(target)}>`", _escape_summary(_summary(obj))))
                    continue
                if kind == "data":
                    rows.append((f":py:data:`{name} <{full}>`", DATA_DOCS.get(name, "")))
                    entries.append(_data_entry(full, name, obj))
                    continue
                summary = _escape_summary(_summary(obj) or _op_doc(name, obj))
                alias_of = None
                real = getattr(obj, "__name__", name)
                if real != name and real in names and getattr(mod, real, None) is obj:
                    alias_of = f"{modname}.{real}"
                if alias_of:
                    rows.append((f":py:obj:`{name} <{full}>`", f"Alias of :py:obj:`{real} <{alias_of}>`."))
                    entries.append(f".. py:function:: {name}(*args, **kwargs)\n   :module: {modname}\n\n"
                                   f"   Alias of :py:func:`{alias_of}` (the same function).\n\n")
                    continue
                if id(obj) in canonical and canonical[id(obj)] != full:
                    target = canonical[id(obj)]
                    rows.append((f":py:obj:`{name} <{target}>`", summary + f" (documented as ``{target}``)"))
                    continue
                canonical[id(obj)] = full
                keep_alive.append(obj)
                rows.append((f":py:obj:`{name} <{full}>`", summary))
                if modname == "tapegrad" and name == "Tensor":
                    continue  # its own page
                if kind in ("class", "exception"):
                    entries.append(_autodoc_class(full, obj, "autoexception" if kind == "exception" else "autoclass"))
                else:
                    entries.append(f".. autofunction:: {full}\n\n" + _op_note(name, obj))
            body.append(title(head, "-"))
            body.append(_table(rows))
        if entries:
            body.append(title("Reference", "-"))
            body.extend(entries)
        fname = f"{page_name(modname)}.rst"
        write_if_changed(out_dir / fname, "".join(body))
        written.add(fname)

    # the Tensor page
    special = [s for s in ("__getitem__", "__setitem__", "__len__", "__iter__", "__array__",
                           "__dlpack__", "__dlpack_device__")
               if s in vars(tg.Tensor)]
    tensor_page = (title("tapegrad.Tensor")
                   + ".. currentmodule:: tapegrad\n\n"
                   + "The n-dimensional array of tapegrad. Operators (``+ - * / ** @``, "
                   "comparisons, indexing) call the same C ops as the functions of "
                   ":doc:`the top level <tapegrad>`; the properties are read from the C "
                   "struct without a copy.\n\n"
                   + ".. autoclass:: tapegrad.Tensor\n   :members:\n   :undoc-members:\n"
                   + (f"   :special-members: {', '.join(special)}\n" if special else "")
                   + "   :member-order: groupwise\n\n")
    write_if_changed(out_dir / "tapegrad.Tensor.rst", tensor_page)
    written.add("tapegrad.Tensor.rst")

    index = (title("Python API")
             + "One page per module. The pages are generated from the package itself "
             "when the documentation is built (``docs/_ext/tapegrad_docgen.py``): every "
             "public name of ``dir(tapegrad)`` and of each module's ``__all__`` is "
             "listed, so a new function is documented as soon as it exists.\n\n"
             + ".. toctree::\n   :maxdepth: 1\n\n"
             + "   tapegrad\n   tapegrad.Tensor\n"
             + "".join(f"   {page_name(m)}\n" for m in mods if m != "tapegrad") + "\n")
    write_if_changed(out_dir / "index.rst", index)
    written.add("index.rst")
    for old in out_dir.glob("*.rst"):
        if old.name not in written:
            old.unlink()
    return mods


# --------------------------------------------------------------------------
# the op reference
# --------------------------------------------------------------------------

FILE_TITLES = {
    "elementwise.c": "Elementwise ops",
    "reduce.c": "Reductions",
    "linalg.c": "Linear algebra",
    "movement.c": "Shapes, views and indexing",
    "nn.c": "Network functions and losses",
    "conv.c": "Convolution and pooling",
}


def _source_link(file: str, line: int, page_dir: Path, outdir: Path | None) -> str:
    base = os.environ.get("TAPEGRAD_DOCS_SOURCE_URL")
    text = f"{file}:{line}"
    if base:
        url = f"{base.rstrip('/')}/{file}#L{line}"
    else:
        # a relative link from the built page to the file in the repository
        built_dir = (outdir / page_dir) if outdir is not None else (DOCS / "_build" / "html" / page_dir)
        url = os.path.relpath(ROOT / file, built_dir).replace(os.sep, "/")
    return f"`{text} <{url}>`__"


def _inputs_text(op: dict) -> str:
    diff, arity = op["differentiable_inputs"], op["arity"]
    if not diff:
        return "no (no input gets a gradient)"
    if arity < 0 and len(diff) >= 8:
        return "every input"
    if arity == 1 and diff == [0]:
        return "yes"
    if arity > 0 and diff == list(range(arity)):
        return "every input (" + ", ".join(str(i) for i in diff) + ")"
    word = "input" if len(diff) == 1 else "inputs"
    text = f"{word} " + ", ".join(str(i) for i in diff)
    if arity > 0:
        rest = [i for i in range(arity) if i not in diff]
        text += " (not " + ", ".join(str(i) for i in rest) + ")"
    return text


def _math(tex: str) -> str:
    tex = " ".join(tex.split())
    return ".. math::\n   :nowrap:\n\n   \\[ " + tex + " \\]\n"


def write_ops(outdir: Path | None) -> list[str]:
    import tapegrad as tg

    ops = tg.ops()
    page_dir = Path("reference")
    by_file: dict[str, list[dict]] = {}
    for op in ops:
        by_file.setdefault(Path(op["file"]).name, []).append(op)

    out = [".. _op-reference:\n\n", title("Op reference"),
           "Every op of the C core, read from the op registry (``tg.ops()``) when the "
           "documentation is built: its forward formula, its vector-Jacobian product "
           "(the VJP: the gradient of the inputs given the gradient of the output, "
           "written :math:`\\bar x` for :math:`\\partial L / \\partial x`), which "
           "inputs are differentiable, the dtypes it accepts, and where it is defined. "
           "The same table drives the parametrised tests (a forward test against NumPy "
           "and a finite-difference gradient check for every op) and the inspector's "
           "formulas. Adding an op to ``csrc/ops/oplist.h`` adds it here.\n\n",
           f"The registry holds **{len(ops)} ops**. Ops without a Python function of the "
           "same name are the building blocks of other ops' VJPs (``slice_backward``, "
           "``conv2d_input_grad``, ...) or are reached through a method or a differently "
           "named function.\n\n",
           title("Summary", "-")]
    rows = [".. list-table::", "   :header-rows: 1", "   :widths: 18 52 15 15",
            "   :class: tg-op-summary", "", "   * - op", "     - what it does",
            "     - differentiable", "     - dtypes"]
    for op in ops:
        rows += [f"   * - :ref:`{op['name']} <op-{op['name']}>`",
                 f"     - {_escape_summary(op['doc']) or ' '}",
                 f"     - {'yes' if op['differentiable_inputs'] else 'no'}",
                 f"     - {rst_literal(op['dtypes'].replace(',', ', '))}"]
    out.append("\n".join(rows) + "\n\n")

    for fname, group in by_file.items():
        out.append(title(FILE_TITLES.get(fname, fname), "-"))
        out.append(f"Defined in ``csrc/ops/{fname}``.\n\n")
        for op in group:
            name = op["name"]
            out.append(f".. _op-{name}:\n\n")
            out.append(title(name, "~"))
            doc = op["doc"] or ""
            if doc:
                out.append(_escape_summary(doc) + "\n\n")
            fields = []
            if op["forward_latex"]:
                fields.append(("Forward", _math(op["forward_latex"]) + "\n"
                               + rst_literal(op["forward"])))
            elif op["forward"]:
                fields.append(("Forward", rst_literal(op["forward"])))
            if op["vjp_latex"]:
                fields.append(("VJP", _math(op["vjp_latex"]) + "\n" + rst_literal(op["vjp"])))
            elif op["vjp"]:
                fields.append(("VJP", rst_literal(op["vjp"])))
            fields.append(("Differentiable", _inputs_text(op)))
            arity = "variadic" if op["arity"] < 0 else str(op["arity"])
            fields.append(("Inputs", f"{arity} tensor input{'s' if op['arity'] != 1 else ''}"))
            fields.append(("Dtypes", rst_literal(op["dtypes"].replace(",", ", "))))
            py = []
            if name in dir(tg) and callable(getattr(tg, name)):
                py.append(f":py:func:`tapegrad.{name}`")
            if name in vars(tg.Tensor):
                py.append(f":py:meth:`Tensor.{name} <tapegrad.Tensor.{name}>`")
            if py:
                fields.append(("Python", ", ".join(py)))
            sig = op["signature"]
            fields.append(("Binding", {
                "custom": "written by hand in ``csrc/python/`` (an unusual signature)",
                "internal": "none: called by VJPs and the engine"}.get(
                    sig, f"generated from its line ``TG_OP({name}, {sig.upper()})`` in "
                         "``csrc/ops/oplist.h`` (``csrc/python/opbind.c``)")))
            if op["cost"] > 1:
                fields.append(("Cost", f"{op['cost']} units per element (an add is 1): "
                                       "threads split it sooner, the profiler counts it as transcendental"))
            fields.append(("Source", _source_link(op["file"], op["line"], page_dir, outdir)))
            lst = [".. list-table::", "   :widths: 18 82", "   :class: tg-op", ""]
            for key, val in fields:
                lst.append(f"   * - {key}")
                vlines = val.splitlines()
                lst.append(f"     - {vlines[0]}")
                for ln in vlines[1:]:
                    lst.append(("       " + ln) if ln.strip() else "")
            out.append("\n".join(lst) + "\n\n")
    write_if_changed(DOCS / "reference" / "ops.rst", "".join(out))
    return [op["name"] for op in ops]


# --------------------------------------------------------------------------
# the C API
# --------------------------------------------------------------------------

_BANNER = re.compile(r"^/\* =+ \*/\s*$")
_DASHES = re.compile(r"^ \* -{20,}\s*$")
_SUB = re.compile(r"^/\* --- (.*?)(?:-{3,}.*)?(?:\*/)?\s*$")
_DECL = re.compile(r"\b(tg_[A-Za-z0-9_]+)\s*$")


def _strip_comments(code: str) -> str:
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    return re.sub(r"//[^\n]*", " ", code)


def declared_functions(code: str) -> list[str]:
    """The functions declared in a piece of the header, in order: in each
    statement (comments and preprocessor lines removed) that is not a
    typedef, the identifier just before the first parenthesis."""
    code = _strip_comments(code)
    code = "\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith("#"))
    out = []
    for stmt in code.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt or stmt.startswith(("typedef", "struct", "enum", "}")) or "(" not in stmt:
            continue
        m = _DECL.search(stmt[: stmt.index("(")])
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def _short_title(text: str) -> tuple[str, str]:
    text = " ".join(text.split())
    m = re.match(r"^(.*?)(?:[.:]\s+|\s+\(|$)(.*)$", text)
    head, rest = (m.group(1), text[len(m.group(1)):].strip(" .:")) if m else (text, "")
    return head.strip() or text, rest


def write_capi() -> None:
    header = ROOT / "csrc" / "include" / "tapegrad.h"
    lines = header.read_text(encoding="utf-8").splitlines()
    rel = "../../csrc/include/tapegrad.h"  # from docs/reference/

    # the opening comment: its parts are separated by dashed banners
    end_top = next(i for i, ln in enumerate(lines) if ln.strip() == "*/")
    top = lines[: end_top + 1]
    parts, cur_title, cur = [], None, []
    i = 0
    while i < len(top):
        if _DASHES.match(top[i]) and i + 2 < len(top) and _DASHES.match(top[i + 2]):
            if cur_title is not None:
                parts.append((cur_title, cur))
            cur_title = top[i + 1].lstrip(" *").strip()
            cur = []
            i += 3
            continue
        if cur_title is not None:
            cur.append(re.sub(r"^ \*( |$)", "", top[i]) if top[i].strip() != "*/" else "")
        i += 1
    if cur_title is not None:
        parts.append((cur_title, cur))

    out = [".. _c-api:\n\n", title("C API"),
           "The C core is plain C11 with one public header, ``csrc/include/tapegrad.h``. "
           "This page is that header, generated from it when the documentation is built: "
           "its opening tutorial, the rules it states once (ownership, errors, threads, "
           "layout), then each section of declarations as it stands in the file, with "
           "the header's own line numbers. To build and link a program, see "
           ":doc:`../howto/use-the-c-library`.\n\n",
           ".. contents:: Sections\n   :local:\n   :depth: 1\n\n"]
    for ptitle, body in parts:
        text = "\n".join(body).strip("\n")
        out.append(title(ptitle, "-"))
        if "tutorial" in ptitle.lower():
            code = "\n".join(ln[4:] if ln.startswith("    ") else ln for ln in text.splitlines())
            out.append("The program below is compiled and run by ``make -C tests/c tutorial``, "
                       "so it always works with the header it comes from.\n\n")
            out.append(".. code-block:: c\n\n" + indent(code.strip("\n")) + "\n\n")
        else:
            out.append(".. code-block:: text\n\n" + indent(text) + "\n\n")

    # sections between banners
    banners = [i for i, ln in enumerate(lines) if _BANNER.match(ln)]
    pairs = []
    k = 0
    while k + 1 < len(banners):
        pairs.append((banners[k], banners[k + 1]))
        k += 2
    end_code = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("#ifdef __cplusplus")),
                    len(lines))
    # the preamble: from the end of the opening comment to the first banner
    first = pairs[0][0] if pairs else end_code
    out.append(title("Preamble", "-"))
    out.append(f".. literalinclude:: {rel}\n   :language: c\n   :lines: {end_top + 2}-{first}\n"
               "   :lineno-match:\n\n")
    all_funcs: list[tuple[str, str]] = []
    for n, (a, b) in enumerate(pairs):
        head_lines = [re.sub(r"^/\*\s*|\s*\*/\s*$", "", ln).strip() for ln in lines[a + 1:b]]
        head, rest = _short_title(" ".join(h for h in head_lines if h))
        stop = pairs[n + 1][0] if n + 1 < len(pairs) else end_code
        label = "capi-" + re.sub(r"[^a-z0-9]+", "-", head.lower()).strip("-")
        out.append(f".. _{label}:\n\n")
        out.append(title(head, "-"))
        if rest:
            rest = rest[:1].upper() + rest[1:]
            out.append(rest.rstrip(".") + ".\n\n" if not rest.startswith("(") else rest + "\n\n")
        # split at "/* --- name --- */" sub-banners
        # into [start, next cut) chunks; a chunk starting at a sub-banner is
        # titled by it
        cuts = [i for i in range(b + 1, stop) if _SUB.match(lines[i])]
        chunks = []
        bounds = [b + 1] + cuts + [stop]
        for j in range(len(bounds) - 1):
            s, e = bounds[j], bounds[j + 1] - 1
            while e > s and not lines[e].strip():
                e -= 1
            while s < e and not lines[s].strip():
                s += 1
            if s > e or not any(lines[x].strip() for x in range(s, e + 1)):
                continue
            m = _SUB.match(lines[s])
            sub = None
            if m:
                sub = re.split(r"[:(]", m.group(1))[0].strip(" -")
            chunks.append((sub, s, e))
        funcs = []
        for sub, s, e in chunks:
            if sub:
                out.append(title(sub[:1].upper() + sub[1:], "~"))
            out.append(f".. literalinclude:: {rel}\n   :language: c\n   :lines: {s + 1}-{e + 1}\n"
                       "   :lineno-match:\n\n")
            funcs += [f for f in declared_functions("\n".join(lines[s:e + 1])) if f not in funcs]
        if funcs:
            out.append("Declared here: " + ", ".join(f"``{f}``" for f in funcs) + ".\n\n")
            all_funcs += [(f, label, head) for f in funcs]
    if all_funcs:
        out.append(title("Index of functions", "-"))
        rows = [".. list-table::", "   :header-rows: 1", "   :widths: 50 50", "",
                "   * - function", "     - section"]
        for f, label, head in sorted(all_funcs):
            rows += [f"   * - ``{f}``", f"     - :ref:`{head} <{label}>`"]
        out.append("\n".join(rows) + "\n")
    write_if_changed(DOCS / "reference" / "c-api.rst", "".join(out))


# --------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------

def write_benchmarks() -> bool:
    src = ROOT / "benchmarks" / "results.md"
    dst = DOCS / "_generated" / "benchmark-results.md"
    if src.exists():
        text, fence = [], False
        for ln in src.read_text(encoding="utf-8").splitlines():
            if ln.lstrip().startswith(("```", "~~~")):
                fence = not fence
            if not fence and re.match(r"^#{1,5} ", ln):
                ln = "#" + ln  # one level below the page title
            text.append(ln)
        body = ("## The committed results\n\n"
                "From `benchmarks/results.md` (the machine and thread count are stated in "
                "its header):\n\n" + "\n".join(text) + "\n")
    else:
        body = ("## The committed results\n\n"
                "No results are committed yet (`benchmarks/results.md` does not exist): "
                "run the benchmark as shown above to get the table for your machine.\n")
    write_if_changed(dst, body)
    return src.exists()


# --------------------------------------------------------------------------

def write_numpy_dispatch() -> None:
    """``_generated/numpy-dispatch.md``: which NumPy names dispatch to which
    tapegrad op (read from the dispatcher itself, so it cannot drift)."""
    from tapegrad import _numpy_protocol

    rows = _numpy_protocol.dispatch_table()
    lines = ["| NumPy | tapegrad |", "|---|---|"]
    lines += [f"| `{np_name}` | " + (f"`tg.{tg_name}`" if tg_name else "— (refused when an input "
                                      "requires grad)") + " |" for np_name, tg_name in rows]
    write_if_changed(DOCS / "_generated" / "numpy-dispatch.md", "\n".join(lines) + "\n")


def generate(outdir: str | os.PathLike | None = None) -> dict:
    """Write every generated page; ``outdir`` is the HTML output directory
    (for the relative links from the op reference to the sources)."""
    nbs = copy_notebooks()
    write_tutorial_list(nbs)
    mods = write_api()
    ops = write_ops(Path(outdir) if outdir else None)
    write_capi()
    write_numpy_dispatch()
    bench = write_benchmarks()
    return {"notebooks": nbs, "modules": mods, "ops": ops, "benchmarks": bench}
