"""What this tapegrad build runs on: kernels, threads and the other thread
pools in the process (``tg.config()`` and ``tg.show_config()``)."""
import ctypes
import os
import platform

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


def config():
    """The build and run-time configuration, as a dict.

    Keys: ``version``, ``numpy``, ``machine``, ``cpus`` (online CPUs),
    ``matmul_kernel`` (the GEMM micro-kernel chosen for this CPU),
    ``vector_math`` (the build of the exp/log/tanh/sigmoid and sum kernels),
    ``num_threads`` (threads tapegrad's pool may use, the caller included),
    ``num_threads_default_from`` (which rule chose the default:
    ``TAPEGRAD_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``cpus``, i.e. the
    affinity mask and container quota) and ``blas_pools`` (the OpenBLAS
    libraries loaded in the process, e.g. NumPy's, with their thread counts).

    >>> import tapegrad as tg
    >>> cfg = tg.config()
    >>> cfg["num_threads"] == tg.get_num_threads()
    True
    >>> cfg["vector_math"] in ("avx2", "baseline")
    True
    """
    return {
        "version": _C.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "matmul_kernel": _C.gemm_isa(),
        "vector_math": _C.vmath_isa(),
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
    print(f"  matmul kernel : {cfg['matmul_kernel']}")
    print(f"  vector math   : {cfg['vector_math']}")
    print(f"  threads       : {cfg['num_threads']} (default from {cfg['num_threads_default_from']})")
    for pool in cfg["blas_pools"]:
        print(f"  other pool    : {pool['library']}, {pool['num_threads']} threads")
    if not cfg["blas_pools"]:
        print("  other pool    : no OpenBLAS loaded")
