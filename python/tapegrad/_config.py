"""What this tapegrad build runs on: kernels, threads and the other thread
pools in the process (``tg.config()`` and ``tg.show_config()``)."""
import ctypes
import os
import platform
import warnings

import numpy as np

from . import _C

# The functions an OpenBLAS build exports to report its thread count, under
# the names of the builds NumPy and SciPy ship (scipy-openblas, 64-bit ints)
# and of a system OpenBLAS.
_OPENBLAS_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads")


_OPENBLAS_SETTERS = tuple(n.replace("get_num", "set_num") for n in _OPENBLAS_GETTERS)


def _blas_libraries():
    """(file name, ctypes library, getter name, setter name) of every
    OpenBLAS loaded in this process, found through /proc/self/maps (Linux;
    an empty list elsewhere).  Never raises."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    except OSError:
        return found
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in zip(_OPENBLAS_GETTERS, _OPENBLAS_SETTERS):
            if getattr(lib, get, None) is not None:
                found.append((os.path.basename(path), lib, get, put))
                break
    return found


def _blas_pools():
    """OpenBLAS libraries loaded in this process and their thread counts."""
    pools = []
    for name, lib, get, _ in _blas_libraries():
        getter = getattr(lib, get)
        getter.restype = ctypes.c_int
        pools.append({"library": name, "num_threads": int(getter())})
    return pools


def _set_blas_threads(n):
    """Set the thread count of every loaded OpenBLAS (benchmarks use this to
    give NumPy the same threads as tapegrad when threadpoolctl is missing).
    Returns how many libraries were set."""
    done = 0
    for _, lib, _, put in _blas_libraries():
        setter = getattr(lib, put, None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter(int(n))
            done += 1
    return done


# The kernel paths that the test suite (tests/c, tests/python) has run on real
# hardware, by family, as recorded in README.md ("Kernel paths").  Every path
# the test machine can run is tested once per path (forced in turn), and a
# path it cannot run is listed as "not run here" in the test summaries; a
# compiled path missing below has only been compiled, never run by the
# suite.  Update this when the suite runs on a machine with other paths.
TESTED_PATHS = {"gemm": ("avx512", "avx2", "generic"), "vmath": ("avx512", "avx2", "baseline")}

_reported = set()


def _report_kernel_problems(stacklevel=2):
    """Warn (RuntimeWarning, once per problem per process) about what went
    wrong while the kernel paths were chosen: a SIMD path that failed its
    known-answer self-test (the next path is used instead), a refused
    TAPEGRAD_GEMM / TAPEGRAD_VMATH.  Runs at import (which makes the choice
    and runs the self-tests) and from config() / show_config().  Returns the
    lines of the report."""
    lines = [line for line in _C.kernel_report().splitlines() if line]
    for line in lines:
        if line not in _reported:
            _reported.add(line)
            warnings.warn("tapegrad kernels: " + line, RuntimeWarning, stacklevel=stacklevel + 1)
    return lines


def config():
    """The build and run-time configuration, as a dict.

    Keys: ``version``, ``numpy``, ``machine``, ``cpus`` (online CPUs),
    ``matmul_kernel`` (the GEMM micro-kernel chosen for this CPU),
    ``vector_math`` (the build of the exp/log/tanh/sigmoid and sum kernels),
    ``kernel_paths`` (for ``"gemm"`` and ``"vmath"``: the path in use and, for
    each compiled path, whether this CPU can run it, its known-answer
    self-test result -- ``"passed"``, ``"failed"`` or ``"not run"`` --, why,
    and its cost in microseconds), ``kernel_problems`` (a failed self-test
    or a refused ``TAPEGRAD_GEMM``/``TAPEGRAD_VMATH``, one line each),
    ``kernel_paths_tested`` (:data:`TESTED_PATHS`: the paths the test suite
    has run on real hardware),
    ``num_threads`` (threads tapegrad's pool may use, the caller included),
    ``num_threads_default_from`` (which rule chose the default:
    ``TAPEGRAD_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``cpus``, i.e. the
    affinity mask and container quota) and ``blas_pools`` (the OpenBLAS
    libraries loaded in the process, e.g. NumPy's, with their thread counts).

    >>> import tapegrad as tg
    >>> cfg = tg.config()
    >>> cfg["num_threads"] == tg.get_num_threads()
    True
    >>> cfg["vector_math"] in ("avx512", "avx2", "neon", "baseline")
    True
    """
    problems = _report_kernel_problems()
    return {
        "version": _C.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "matmul_kernel": _C.gemm_isa(),
        "vector_math": _C.vmath_isa(),
        "kernel_paths": _C.kernel_paths(),
        "kernel_problems": problems,
        "kernel_paths_tested": {k: list(v) for k, v in TESTED_PATHS.items()},
        "num_threads": _C.get_num_threads(),
        "num_threads_default_from": _C.threads_default_source(),
        "blas_pools": _blas_pools(),
    }


def show_config():
    """Print :func:`config` as a short report, with a note on thread pools.

    tapegrad never calls NumPy's BLAS, and its own workers sleep between
    loops, so the two pools take turns rather than fight over the cores.  Two
    things do oversubscribe: running NumPy (or PyTorch) work in another Python
    thread while a tapegrad kernel runs (tapegrad releases the GIL), and
    running several processes that each use every core.  For those, lower
    the counts: ``tg.set_num_threads(n)``, ``TAPEGRAD_NUM_THREADS`` or
    ``OMP_NUM_THREADS``.
    """
    cfg = config()
    print(f"tapegrad {cfg['version']} (NumPy {cfg['numpy']}), {cfg['machine']}, "
          f"{cfg['cpus']} CPUs")
    for label, family in (("matmul kernel", "gemm"), ("vector math  ", "vmath")):
        print(f"  {label} : {_describe_family(cfg['kernel_paths'][family])}")
    print(f"  tested paths  : {_describe_tested(cfg['kernel_paths'])}")
    for line in cfg["kernel_problems"]:
        print(f"  problem       : {line}")
    print(f"  threads       : {cfg['num_threads']} (default from {cfg['num_threads_default_from']})")
    for pool in cfg["blas_pools"]:
        print(f"  other pool    : {pool['library']}, {pool['num_threads']} threads")
    if not cfg["blas_pools"]:
        print("  other pool    : no OpenBLAS loaded")


def _describe_family(info):
    """'avx2 (self-test passed, 14 us; avx512: this CPU lacks AVX-512F)'."""
    notes = []
    for p in info["paths"]:
        if p["in_use"]:
            if p["selftest"] == "passed":
                notes.insert(0, f"self-test passed, {p['selftest_us']:.0f} us")
            elif p["selftest"] == "not run":
                notes.insert(0, "portable C, the reference")
        elif p["selftest"] == "failed":
            notes.append(f"{p['name']} FAILED its self-test: {p['detail']}")
        elif not p["available"]:
            notes.append(f"{p['name']}: {p['detail']}")
    return f"{info['path']} ({'; '.join(notes)})" if notes else info["path"]


def _describe_tested(paths):
    """Which compiled paths the test suite has run on real hardware and
    which it has only compiled (TESTED_PATHS)."""
    run, only = [], []
    for family, label in (("gemm", "matmul"), ("vmath", "vector math")):
        for p in paths[family]["paths"]:
            (run if p["name"] in TESTED_PATHS[family] else only).append(f"{label} {p['name']}")
    text = "run by the test suite on real hardware: " + ", ".join(run)
    return text + ("; compiled only, never run by the suite: " + ", ".join(only) if only else "")


_report_kernel_problems(stacklevel=3)
