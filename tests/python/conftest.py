"""Shared setup of the Python test suite.

``import tapegrad`` works from a source checkout: if the package is not
installed, ``python/`` (where ``build_ext --inplace`` puts the extension) is
put on ``sys.path``.  Every test starts with the library generator seeded
and grad mode on, and ends with grad mode on again.
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_PY = os.path.normpath(os.path.join(_HERE, "..", "..", "python"))
if importlib.util.find_spec("tapegrad") is None and _PY not in sys.path:
    sys.path.insert(0, _PY)
if _HERE not in sys.path:  # op_reference.py
    sys.path.insert(0, _HERE)

import tapegrad as tg  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_state():
    """Seed the library generator and make sure grad mode is on."""
    tg.manual_seed(0)
    prev = tg.set_grad_enabled(True)
    yield
    tg.set_grad_enabled(True)
    del prev


@pytest.fixture
def seed():
    """A function that seeds both tapegrad and NumPy: ``seed(n)``."""
    def _seed(n=0):
        tg.manual_seed(n)
        return np.random.default_rng(n)
    return _seed


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(1234)


try:  # no example database, constants cache or patch files in the source tree
    import tempfile

    from hypothesis import settings as _hsettings
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "tapegrad-hypothesis"))

    _hsettings.register_profile("tapegrad", database=None, deadline=None, print_blob=True)
    _hsettings.load_profile("tapegrad")
except ImportError:  # pragma: no cover
    pass


def import_torch():
    """``pytest.importorskip("torch")``, then move every object that exists
    (torch makes hundreds of thousands at import) to the permanent GC
    generation, so that the many ``gc.collect()`` calls of the lifetime
    tests stay fast."""
    import gc

    torch = pytest.importorskip("torch")
    gc.collect()
    gc.freeze()
    return torch


@pytest.fixture
def torch():
    return import_torch()


def pytest_collection_finish(session):
    """Everything imported so far (pytest, Hypothesis, NumPy, the test
    modules) goes to the permanent GC generation: the tests call
    gc.collect() often and only their own objects need scanning."""
    import gc

    gc.collect()
    gc.freeze()


# ---- kernel paths (issue 22): run per path, report what ran --------------
import kernel_paths as _kernel_paths  # noqa: E402


@pytest.fixture(params=_kernel_paths.available("gemm"))
def gemm_path(request):
    """Runs the test once per matmul path this CPU can run, that path forced."""
    with _kernel_paths.forced("gemm", request.param):
        yield request.param


@pytest.fixture(params=_kernel_paths.available("vmath"))
def vmath_path(request):
    """Runs the test once per vector-math path this CPU can run, forced."""
    with _kernel_paths.forced("vmath", request.param):
        yield request.param


def pytest_terminal_summary(terminalreporter):
    """Which kernel paths the tests ran, and which were compiled but could not
    run on this machine (never counted as passed)."""
    terminalreporter.section("kernel paths")
    for line in _kernel_paths.summary_lines():
        terminalreporter.write_line(line)
