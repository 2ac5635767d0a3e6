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
