"""The C core's Check suites, the header tutorial and the C example
(examples/c, which must end with a loss below a tenth of its start), all run
by `make -C tests/c`, so that `python -m pytest` is the one test command."""
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=900):
    assert shutil.which("make"), "make is required to build the C core"
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_check_suites_pass():
    r = run("make", "-C", "tests/c")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "100%" in r.stdout or "Failures: 0" in r.stdout, r.stdout[-2000:]
