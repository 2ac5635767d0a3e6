"""setup.py's compiler flags per compiler (issue 20): cl.exe gets MSVC's own options (C11
with atomics, /O2, IEEE-preserving /fp:precise, no -pthread, no GCC flag), gcc/clang the
GCC ones; neither gets a flag that changes floating-point results or the target CPU.  cl.exe
is not available here, so this checks what setup.py would pass to it, not that it builds."""
import runpy
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup_ns():
    """setup.py's namespace, with setuptools.setup replaced so that nothing is built."""
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    mp.delenv("TAPEGRAD_NATIVE", raising=False)
    mp.delenv("TAPEGRAD_SANITIZE", raising=False)
    called = []
    mp.setattr(setuptools, "setup", lambda **kw: called.append(kw))
    try:
        ns = runpy.run_path(str(ROOT / "setup.py"))
    finally:
        mp.undo()
    assert len(called) == 1
    return ns


def test_msvc_gets_msvc_options_only(setup_ns):
    cflags, ldflags = setup_ns["flags_for"]("msvc")
    assert {"/std:c11", "/experimental:c11atomics", "/O2", "/fp:precise"} <= set(cflags)
    assert all(f.startswith("/") for f in cflags), cflags      # no GCC-style option
    assert not any("pthread" in f for f in cflags + ldflags)    # Win32 threads (platform.h)
    assert not any(f.lower().startswith(("/fp:fast", "/arch", "/fp:contract")) for f in cflags)
    assert ldflags == []


def test_gcc_and_clang_get_the_gcc_options(setup_ns):
    for ctype in ("unix", "mingw32"):
        cflags, ldflags = setup_ns["flags_for"](ctype)
        assert "-std=c11" in cflags and "-pthread" in cflags and "-pthread" in ldflags
        assert "-ffp-contract=off" in cflags  # clang would fuse a*b+c and change results
        assert not {"-ffast-math", "-Ofast", "-march=native"} & set(cflags)
        assert not any(f.startswith("/") for f in cflags)


def test_the_lists_are_copies(setup_ns):
    # build_extension assigns them to the extension: a caller must not edit setup.py's lists
    a, _ = setup_ns["flags_for"]("msvc")
    a.append("/X")
    assert "/X" not in setup_ns["flags_for"]("msvc")[0]
