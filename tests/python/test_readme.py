"""README.md as a newcomer uses it.

* Every ```python block is pasted, line by line, into a fresh interactive
  console (``code.InteractiveConsole`` in a new interpreter, as a person pastes
  into ``python``): no line may raise or be a syntax error, and every line that
  prints something must say what it prints in its trailing comment, exactly.
* Every relative link of README.md and of the docs, and every repository path
  the README names in backticks, exists inside the repository.
"""
import glob
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def python_blocks(text):
    """(first line number, code) of every ```python block."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) == "python":
            out.append((text.count("\n", 0, m.start(2)) + 1, m.group(2)))
    return out


# Runs in a fresh interpreter: pastes the lines into an InteractiveConsole and
# reports, per line, what was printed and any error.
DRIVER = r'''
import code, io, json, sys, traceback
lines = json.load(sys.stdin)
real = sys.stdout
records = []
class Console(code.InteractiveConsole):
    def showtraceback(self):
        records[-1]["error"] = traceback.format_exc(limit=-3)
    def showsyntaxerror(self, filename=None, **kwargs):
        records[-1]["error"] = "SyntaxError: " + traceback.format_exc(limit=0)
console = Console()
for line in lines + [""]:
    records.append({"line": line, "out": "", "error": None})
    buf = io.StringIO()
    sys.stdout = buf
    try:
        console.push(line)
    finally:
        sys.stdout = real
    records[-1]["out"] = buf.getvalue()
real.write(json.dumps(records))
'''


def paste(code_text):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(code_text.splitlines()),
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def trailing_comment(line):
    """The text of the line's trailing ``# comment`` (None if it has none)."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return tok.string[1:].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return None


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_the_python_blocks():
    assert len(BLOCKS) >= 2  # the first example and "The Python API in one screen"


@pytest.mark.parametrize("start,code_text", BLOCKS, ids=[f"line{s}" for s, _ in BLOCKS])
def test_readme_block_pastes_into_a_console(start, code_text):
    records = paste(code_text)
    for i, rec in enumerate(records):
        where = f"README.md line {start + i}: {rec['line']!r}"
        assert rec["error"] is None, f"{where} fails when pasted:\n{rec['error']}"
    # what the lines print: a line that prints must say what in its comment
    # (the output of a compound statement appears at the blank line ending it)
    checked = 0
    for i, rec in enumerate(records):
        out = rec["out"].strip()
        if not out:
            continue
        where = f"README.md line {start + i}: {rec['line']!r}"
        comment = trailing_comment(rec["line"])
        assert comment is not None, f"{where} prints {out!r} but its comment does not say so"
        assert comment == out, f"{where} prints {out!r}, the README says {comment!r}"
        checked += 1
    assert checked >= 1, "the block prints nothing: nothing of it was compared"


def test_a_missing_blank_line_after_a_block_is_caught():
    """The check above would catch the README's old mistake (no blank line
    after an indented block, so the next line is a SyntaxError at the prompt)."""
    records = paste("if True:\n    n = 1\nprint(n)")
    assert any(r["error"] and "SyntaxError" in r["error"] for r in records)


def test_a_wrong_printed_value_is_caught():
    records = paste("print(1 + 1)   # 3")
    rec = next(r for r in records if r["out"])
    assert rec["out"].strip() == "2" and trailing_comment(rec["line"]) == "3"


# ---------------------------------------------------------------- links

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
TOP = ("csrc/", "python/", "tests/", "docs/", "notebooks/", "benchmarks/", "examples/", ".ci/")


def relative_targets(md_file):
    text = md_file.read_text(encoding="utf-8")
    text = FENCE.sub("", text)  # code blocks are not links
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        yield target.split("#", 1)[0]


# not the build output nor the pages the docs build generates (docs/conf.py's
# exclude_patterns: they are included into other pages, relative to those)
MD_FILES = [README] + sorted(p for p in (ROOT / "docs").rglob("*.md")
                             if not {"_build", "_generated", "_ext"} & set(p.parts))


@pytest.mark.parametrize("md_file", MD_FILES, ids=[str(p.relative_to(ROOT)) for p in MD_FILES])
def test_relative_links_resolve_inside_the_repository(md_file):
    for target in relative_targets(md_file):
        path = (md_file.parent / target).resolve()
        assert path == ROOT or ROOT in path.parents, \
            f"{md_file.relative_to(ROOT)} links to {target}, outside the repository"
        assert path.exists(), f"{md_file.relative_to(ROOT)} links to {target}, which does not exist"


def test_readme_links_are_checked():
    targets = list(relative_targets(README))
    assert "docs/architecture.md" in targets and "LICENSE" in targets


def test_repository_paths_named_in_the_readme_exist():
    text = README.read_text(encoding="utf-8")
    named = sorted({m for m in re.findall(r"`([^`\s]+)`", text)
                    if m.startswith(TOP) and not m.startswith("docs/_build")})  # built, not kept
    assert len(named) > 10
    missing = [m for m in named if not glob.glob(str(ROOT / m))]
    assert not missing, f"README.md names paths that do not exist: {missing}"
    assert "../" not in "".join(named)
