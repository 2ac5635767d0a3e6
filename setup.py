"""Build of the tapegrad._C extension from the C core in csrc/.

The core (csrc/core, csrc/ops, csrc/engine, csrc/kernels) and the binding (csrc/python)
are compiled into one extension module. Portable flags only: no -march=native
and never -ffast-math (it would switch the whole process to flush-to-zero and
break isnan); -fno-math-errno only drops errno updates from libm calls so
that loops with sqrt vectorize, and -fno-trapping-math only tells the
compiler that no code reads the floating-point exception flags, so that it
may evaluate both sides of a ternary and vectorize branch-free kernels such
as csrc/kernels/vmath_impl.h (results are unchanged: rounding, NaN, inf and
signed zeros keep their IEEE meaning). SIMD kernels are chosen at run time. Set TAPEGRAD_NATIVE=1 to
add -march=native for a local build, or TAPEGRAD_SANITIZE=1 to build with
AddressSanitizer and UndefinedBehaviorSanitizer (see tests/sanitize.sh).

The C files of the extension are compiled in parallel (one compiler process
per file, with exactly the flags below): as many jobs as CPUs this process may
use, or ``build_ext -j N``, or TAPEGRAD_BUILD_JOBS=N (1 compiles one file after
another, as setuptools does by itself).
"""
import glob
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

here = os.path.dirname(os.path.abspath(__file__))


def sources():
    files = []
    for sub in ("core", "ops", "engine", "kernels", "python"):
        files += sorted(glob.glob(os.path.join("csrc", sub, "*.c")))
    return files


cflags = ["-std=c11", "-O3", "-g0", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fno-strict-aliasing", "-D_GNU_SOURCE", "-pthread",
          "-Wall", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
ldflags = ["-pthread"]
if os.environ.get("TAPEGRAD_NATIVE") == "1":
    cflags.append("-march=native")
if os.environ.get("TAPEGRAD_SANITIZE") == "1":
    cflags += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    ldflags += ["-fsanitize=address,undefined"]

ext = Extension(
    "tapegrad._C",
    sources=sources(),
    include_dirs=[os.path.join("csrc", "include"), np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION")],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    depends=glob.glob("csrc/**/*.h", recursive=True),
)

def build_jobs(requested=None):
    """Number of parallel compile jobs: TAPEGRAD_BUILD_JOBS, else ``-j N``,
    else the CPUs this process may run on."""
    env = os.environ.get("TAPEGRAD_BUILD_JOBS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise SystemExit(f"TAPEGRAD_BUILD_JOBS must be a whole number, got {env!r}")
    if requested:
        return max(1, int(requested))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# MSVC (cl.exe, the compiler setuptools uses on Windows unless told otherwise)
# takes none of the GCC flags above.  /std:c11 and /experimental:c11atomics
# (Visual Studio 2022 17.5 or later) give C11 with <stdatomic.h>; /fp:precise
# keeps IEEE results, and since Visual Studio 2022 17.0 it no longer contracts
# a*b + c into an FMA (the fp_contract default became off: the same rule as
# -ffp-contract=off above, so results agree bitwise); threads are Win32 threads
# (csrc/kernels/platform.h), so there is no -pthread, and the Win32 functions
# are in kernel32, which cl.exe links by default (no extra libraries).
# /std:c11 also turns on the conforming preprocessor (/Zc:preprocessor) that
# _Pragma needs.  The GCC extensions of the core have cl.exe branches
# (csrc/kernels/compiler.h); .ci/msvc.sh compiles every core file with clang
# in MSVC mode against MSVC-style headers.  NOTE: cl.exe itself has not been
# run on this code (README, "Platforms").
msvc_cflags = ["/std:c11", "/experimental:c11atomics", "/O2", "/fp:precise", "/W3",
               "/D_CRT_SECURE_NO_WARNINGS"]


def flags_for(compiler_type):
    """(compile flags, link flags) for a distutils compiler type."""
    if compiler_type == "msvc":
        return list(msvc_cflags), []
    return list(cflags), list(ldflags)


class ParallelBuildExt(build_ext):
    """build_ext whose compiler compiles the sources of one extension in
    parallel: the compiler's own ``compile`` is called once per source file
    from a thread pool (each call runs one compiler process), so flags,
    macros, include directories and object names are the ones setuptools
    would use; only the order of the compiler runs changes."""

    def build_extension(self, ext):
        ext.extra_compile_args, ext.extra_link_args = flags_for(self.compiler.compiler_type)
        jobs = min(build_jobs(self.parallel), len(ext.sources))
        if jobs > 1:
            serial = self.compiler.compile

            def compile(sources, *args, **kwargs):
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    parts = list(pool.map(lambda src: serial([src], *args, **kwargs), sources))
                return [obj for part in parts for obj in part]

            self.compiler.compile = compile
            try:
                return super().build_extension(ext)
            finally:
                del self.compiler.compile  # back to the class's method
        return super().build_extension(ext)


setup(ext_modules=[ext], cmdclass={"build_ext": ParallelBuildExt})
