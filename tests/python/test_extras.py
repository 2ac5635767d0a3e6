"""The optional extras: what each installs, and the one-line message that
names the extra when a command needs a package that is not installed (the
package is hidden from a fresh interpreter with sys.modules[name] = None)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HINT = 'pip install "tapegrad[coursework]"'


def extras():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def names(reqs):
    return {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in reqs}


def test_extras_install_what_their_commands_need():
    ex = extras()
    assert {"nbformat", "nbclient", "jupyter_client", "ipykernel"} <= names(ex["coursework"])
    assert {"jupyterlab", "ipywidgets", "matplotlib", "ipykernel"} <= names(ex["notebooks"])
    assert {"pytest", "ipywidgets", "nbformat", "nbclient", "ipykernel"} <= names(ex["test"])


def test_coursework_requires_matches_the_extra():
    from tapegrad import coursework
    assert set(coursework.REQUIRES) <= names(extras()["coursework"])


def run_without(hidden, code):
    prelude = "".join(f"import sys; sys.modules[{m!r}] = None\n" for m in hidden)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          env=env, timeout=300)


CLI = "import runpy; sys.argv = {argv!r}; runpy.run_module('tapegrad.coursework', run_name='__main__')"


def test_help_works_without_the_extra():
    proc = run_without(["nbformat"], CLI.format(argv=["coursework", "--help"]))
    assert proc.returncode == 0, proc.stderr
    assert "release" in proc.stdout and "grade" in proc.stdout


@pytest.mark.parametrize("hidden,argv,missing", [
    (["nbformat"], ["release", "a.ipynb", "b.ipynb"], "nbformat"),
    (["nbformat"], ["export-tests", "a.ipynb", "d"], "nbformat"),
    (["ipykernel"], ["check", "a.ipynb"], "ipykernel"),
    (["jupyter_client"], ["grade", "a.ipynb", "--tests", "t"], "jupyter_client"),
])
def test_a_missing_package_is_one_line_naming_the_extra(hidden, argv, missing):
    proc = run_without(hidden, CLI.format(argv=["coursework"] + argv))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"'{missing}'" in proc.stderr and HINT in proc.stderr and "Traceback" not in proc.stderr


def test_fetch_needs_no_extra(tmp_path):
    proc = run_without(["nbformat"], CLI.format(argv=["coursework", "fetch", str(tmp_path)]))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "01_backprop_by_hand.ipynb"


def test_python_api_says_which_extra():
    proc = run_without(["nbformat"], "\n".join([
        "from tapegrad.coursework import assert_vjp_correct  # needs no extra",
        "try:",
        "    from tapegrad.coursework import release",
        "except ModuleNotFoundError as e:",
        "    print(e.name, '|', e)",
    ]))
    assert proc.returncode == 0, proc.stderr
    name, msg = proc.stdout.strip().split(" | ")
    assert name == "nbformat" and HINT in msg
