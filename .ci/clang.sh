#!/usr/bin/env bash
# .ci/clang.sh -- the C core, the Check suites and the extension built with
# clang, every warning an error (gcc builds the same code in the main run).
#
#   (a) make -C tests/c CC=clang CFLAGS_EXTRA=-Werror: the core (csrc/Makefile's
#       flags), the Check runner, the header tutorial and examples/c, all run
#       (objects in their own build directory: never mixed with gcc's)
#   (b) CC=clang CFLAGS=-Werror python setup.py build_ext into a temporary
#       directory (the in-place gcc .so is untouched), then the kernel-path
#       tests import that clang-built extension.
# Prints its duration; exit status non-zero on any warning or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python}
START=$SECONDS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
command -v clang >/dev/null || { echo "clang.sh: clang is not installed"; exit 1; }
clang --version | head -1

echo "-- (a) C core + Check suites + tutorial + examples/c with clang -Werror"
make -C tests/c all CC=clang CFLAGS_EXTRA=-Werror

echo "-- (b) the extension with clang -Werror"
CC=clang LDSHARED="clang -shared" CFLAGS=-Werror "$PY" setup.py -q build_ext \
    -b "$WORK/build" -t "$WORK/tmp" > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
if grep -E "warning:|error:" "$WORK/build.log"; then echo "clang.sh: the extension build warned"; exit 1; fi
# the Python package next to the clang-built .so (never an in-place gcc one)
mkdir -p "$WORK/lib" && cp -r python/tapegrad "$WORK/lib/"
rm -f "$WORK"/lib/tapegrad/_C*.so && cp "$WORK"/build/tapegrad/_C*.so "$WORK/lib/tapegrad/"
PYTHONPATH="$WORK/lib" "$PY" -c "import tapegrad._C as c; print('imported', c.__file__)" \
  | tee "$WORK/imp.log"
grep -q "$WORK/lib" "$WORK/imp.log" || { echo "clang.sh: imported the wrong extension"; exit 1; }
PYTHONPATH="$WORK/lib" "$PY" -m pytest -q -p no:cacheprovider tests/python/test_kernel_paths.py

echo "clang.sh: done in $((SECONDS - START)) s"
