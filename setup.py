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
"""
import glob
import os

import numpy as np
from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))


def sources():
    files = []
    for sub in ("core", "ops", "engine", "kernels", "python"):
        files += sorted(glob.glob(os.path.join("csrc", sub, "*.c")))
    return files


cflags = ["-std=c11", "-O3", "-g0", "-fno-math-errno", "-fno-trapping-math", "-fno-strict-aliasing", "-D_GNU_SOURCE", "-pthread",
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

setup(ext_modules=[ext])
