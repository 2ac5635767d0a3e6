#!/usr/bin/env bash
# .ci/mingw.sh -- the C core and examples/c cross-compiled for 64-bit Windows
# with MinGW-w64 (Debian gcc-mingw-w64-x86-64), every warning an error, and
# the example run under wine (Debian wine64) when wine is installed.
#
# What this covers: the Windows branches of csrc/kernels/platform.h (Win32
# locks, condition variables, _beginthreadex threads, _aligned_malloc,
# QueryPerformanceCounter), the thread pool's CPU count and the CPU-feature
# detection compiled for Windows; the example trains its MLP under wine and
# exits non-zero unless its loss drops tenfold.  What it does not cover: the
# Check suites (Check is not packaged for MinGW: tests/platform/threads_smoke.c
# stands in for the thread pool, the aligned allocator and the packed GEMM),
# the Python extension, MSVC.
# Prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
CC=x86_64-w64-mingw32-gcc
command -v $CC >/dev/null || { echo "mingw.sh: $CC is not installed"; exit 1; }
$CC --version | head -1
OUT=csrc/build/mingw64
echo "-- the core (csrc/Makefile) with $CC -Werror"
make -C csrc CC=$CC BUILD=build/mingw64 CFLAGS_EXTRA=-Werror
echo "-- examples/c/mlp.c linked statically (no MinGW DLLs needed at run time)"
$CC -std=c11 -O2 -Wall -Wextra -Werror -Icsrc/include -o $OUT/mlp.exe examples/c/mlp.c \
    $OUT/libtapegrad.a -static
$CC -std=c11 -O2 -Wall -Wextra -Werror -Icsrc/include -Icsrc/kernels -o $OUT/threads_smoke.exe \
    tests/platform/threads_smoke.c $OUT/libtapegrad.a -static
WINE=""
for w in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$w" >/dev/null 2>&1; then WINE=$w; break; fi
done
if [ -z "$WINE" ]; then
  echo "mingw.sh: wine is not installed: built, NOT run"
else
  if [ -z "${WINEPREFIX:-}" ]; then
    # a prefix of our own, removed at the end after its wineserver (started by
    # the runs below, for this prefix only) has been stopped
    WINEPREFIX=$(mktemp -d)
    trap 'WINEPREFIX=$WINEPREFIX wineserver -k 2>/dev/null || WINEPREFIX=$WINEPREFIX /usr/lib/wine/wineserver -k 2>/dev/null || true; sleep 1; rm -rf "$WINEPREFIX"' EXIT
  fi
  export WINEDEBUG=-all WINEPREFIX
  echo "-- $WINE $OUT/mlp.exe, then threads_smoke.exe (4 threads)"
  timeout 300 "$WINE" $OUT/mlp.exe | tail -2
  timeout 300 "$WINE" $OUT/threads_smoke.exe
fi
echo "mingw.sh: done in $((SECONDS - START)) s"
