"""The thread pool's spin before a worker sleeps (csrc/kernels/threadpool.c).

A worker that finished a loop spins up to 100 us watching for the next one
(waking a sleeping worker costs more than most loops of a training step);
``TAPEGRAD_SPIN_US`` sets another default, read on first use, and only a
whole number in [0, 10^6] counts.  Read back through the C function
``tg_threadpool_get_spin_us`` in a fresh process per value.
"""
import os
import subprocess
import sys

import pytest

import tapegrad as tg

_PY = os.path.dirname(os.path.dirname(tg.__file__))
_SCRIPT = """
import ctypes, tapegrad as tg
lib = ctypes.CDLL(tg._C.__file__)
tg.set_num_threads(2)
x = tg.ones(1 << 20)
(x * 2.0).sum()   # the pool has run loops with the spin in force
print(lib.tg_threadpool_get_spin_us())
"""


def _spin_in_fresh_process(value):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_PY, os.environ.get("PYTHONPATH", "")]))
    env.pop("TAPEGRAD_SPIN_US", None)
    if value is not None:
        env["TAPEGRAD_SPIN_US"] = value
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return int(out.stdout.strip())


@pytest.mark.parametrize("value,want", [
    (None, 100), ("", 100), ("0", 0), ("250", 250), ("1000000", 1000000),
    ("1000001", 100), ("-1", 100), ("abc", 100), ("1.5", 100), (" 5", 100)])
def test_spin_default_and_environment(value, want):
    assert _spin_in_fresh_process(value) == want


def test_set_spin_us_range():
    import ctypes
    lib = ctypes.CDLL(tg._C.__file__)
    before = lib.tg_threadpool_get_spin_us()
    try:
        assert lib.tg_threadpool_set_spin_us(-1) == -1
        assert lib.tg_threadpool_set_spin_us(1000001) == -1
        assert lib.tg_threadpool_get_spin_us() == before
        assert lib.tg_threadpool_set_spin_us(0) == 0
        assert lib.tg_threadpool_get_spin_us() == 0
        # a pool that sleeps at once still gives the threaded results
        tg.set_num_threads(2)
        x = tg.arange(1 << 20, dtype=tg.float64)
        assert (x * 2.0).sum().item() == float((1 << 20) * ((1 << 20) - 1))
    finally:
        lib.tg_threadpool_set_spin_us(before)
