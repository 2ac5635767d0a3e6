"""Run tests once per kernel path the CPU can run, and remember what ran.

The matmul ("gemm") and vector-math/reduction ("vmath") kernels have a SIMD
path per instruction set and a portable C one (``tg._C.kernel_paths()``).
A test that takes the ``gemm_path`` or ``vmath_path`` fixture of
conftest.py runs once per path this CPU can run, with that path forced;
the paths that were compiled but cannot run here are not tests at all, and
the terminal summary (conftest.py, ``pytest_terminal_summary``) lists them
as "not run here" next to the count of tests each path ran.
"""
import contextlib
import json
import os
import subprocess
import sys

import tapegrad as tg

# family -> path -> number of tests run with that path forced
RUN = {"gemm": {}, "vmath": {}}


def compiled(family):
    """[(name, available, detail)] for every compiled path, best first."""
    return [(p["name"], p["available"], p["detail"]) for p in tg._C.kernel_paths()[family]["paths"]]


def available(family):
    return [name for name, ok, _ in compiled(family) if ok]


@contextlib.contextmanager
def forced(family, path):
    """Use `path` for `family` inside the block, then the default again."""
    tg._C._force_kernel(family, path)
    try:
        assert tg._C.kernel_paths()[family]["path"] == (path if path != "baseline" or family == "vmath"
                                                         else "generic")
        RUN[family][path] = RUN[family].get(path, 0) + 1
        yield path
    finally:
        tg._C._force_kernel(family, None)


def summary_lines():
    lines = []
    for family, label in (("gemm", "matmul"), ("vmath", "vector math + reductions")):
        ran = ", ".join(f"{p} ({n} tests)" for p, n in RUN[family].items()) or "no per-path tests ran"
        lines.append(f"{label} ({family}) paths run here: {ran}")
        for name, ok, detail in compiled(family):
            if not ok:
                lines.append(f"{label} ({family}) path {name}: NOT RUN HERE ({detail}); compiled only")
    return lines


def run_in_fresh_process(script, **env_vars):
    """Run `script` in a new Python with `env_vars` set (the kernel paths are
    chosen once per process, from the environment) and no path forced by the
    caller's environment.  The script prints one JSON value; returns it
    parsed, and the process's stderr.  A crash (SIGILL of an unsupported
    build) or an exception fails the calling test."""
    env = dict(os.environ)
    for k in ("TAPEGRAD_GEMM", "TAPEGRAD_VMATH", "TAPEGRAD_DISABLE_CPU_FEATURES"):
        env.pop(k, None)
    env.update(env_vars)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(tg.__file__)),
                                         env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]   # never SIGILL, never an exception
    return json.loads(r.stdout), r.stderr


def with_threads(n, fn):
    """fn() with the pool set to n threads, then the count as it was."""
    old = tg.get_num_threads()
    tg.set_num_threads(n)
    try:
        return fn()
    finally:
        tg.set_num_threads(old)
