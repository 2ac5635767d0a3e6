#!/usr/bin/env bash
# .ci/msvc.sh -- the closest check of the cl.exe (MSVC) build that runs here:
# every C file of the core compiled to a Windows object file by clang in MSVC
# mode, every warning an error.
#
#   clang --target=x86_64-pc-windows-msvc -fms-compatibility  (also aarch64)
#       clang then defines _MSC_VER and _WIN32 but NOT __GNUC__, so the core
#       takes its cl.exe branches (csrc/kernels/compiler.h, platform.h,
#       dispatch.c's CPUID reader, vmath_impl.h's plain-array max/min)
#   -nostdlibinc -isystem <Wine's MSVC-style C library and Win32 headers>
#       (Debian libwine-dev) instead of glibc's; clang's own intrinsic
#       headers stay; .ci/msvc/absent/ shadows the POSIX headers that Wine
#       has and cl.exe does not (unistd.h, pthread.h, ...)
#   -include .ci/msvc/force.h
#       poisons GCC's extensions (__attribute__, __builtin_*, typeof,
#       _Thread_local, the __atomic_*/__sync_* builtins and clang's
#       __c11_atomic_*, ...) outside compiler.h: clang would accept them,
#       cl.exe would not; -Werror=vla -Werror=gnu -Werror=pointer-arith likewise
#   gemm_avx2.c with -mavx2 -mfma, gemm_avx512.c with -mavx512f: cl.exe
#       declares every intrinsic in any file, clang 14 in MSVC mode only
#       those of the target's instruction set.  The vector-math builds
#       (vmath_avx2.c, vmath_avx512.c, vmath_neon.c) need GCC's vector types
#       and target pragmas: without __GNUC__ they compile to nothing (cl.exe
#       has only the baseline vector math), so they take no ISA flags here.
#
# What it does not cover: cl.exe itself (its diagnostics, code generation,
# the link with the UCRT), running anything, and compiling the extension
# csrc/python (its headers would have to come from a Windows Python): that
# is only grepped for GCC extensions.  Prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$SECONDS
WINE_INC=${WINE_INC:-/usr/include/wine/wine}
command -v clang >/dev/null || { echo "msvc.sh: clang is not installed"; exit 1; }
[ -f "$WINE_INC/msvcrt/stdio.h" ] || { echo "msvc.sh: $WINE_INC/msvcrt is missing (Debian libwine-dev)"; exit 1; }
clang --version | head -1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
FLAGS=(-fms-compatibility -std=c11 -O2 -nostdlibinc
       -isystem "$ROOT/.ci/msvc/absent" -isystem "$WINE_INC/msvcrt" -isystem "$WINE_INC/windows"
       -include "$ROOT/.ci/msvc/force.h" -Icsrc/include
       -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
       -Werror -Werror=vla -Werror=gnu -Werror=pointer-arith -ffp-contract=off)
n=0
for target in x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
  echo "-- clang --target=$target, every csrc/{core,engine,kernels,ops}/*.c to an object"
  for f in csrc/core/*.c csrc/engine/*.c csrc/kernels/*.c csrc/ops/*.c; do
    isa=()
    if [ "$target" = x86_64-pc-windows-msvc ]; then
      case $f in
        */gemm_avx2.c) isa=(-mavx2 -mfma) ;;
        */gemm_avx512.c) isa=(-mavx512f) ;;
      esac
    fi
    clang --target=$target "${FLAGS[@]}" "${isa[@]}" -c "$f" -o "$OUT/$(basename "$f" .c).$target.obj" || {
      echo "msvc.sh: $f does not compile in MSVC mode (--target=$target); a \"poisoned identifier\" is"
      echo "  a GCC/clang extension that cl.exe lacks (.ci/msvc/force.h says what to use instead:"
      echo "  e.g. compiler.h's tg_atomic_*() for __atomic_*/__sync_*)"; exit 1; }
    n=$((n + 1))
  done
  # the branches that matter: no GCC path was compiled in MSVC mode
  if [ "$target" = x86_64-pc-windows-msvc ]; then
    clang --target=$target "${FLAGS[@]}" -E -dM csrc/kernels/dispatch.c > "$OUT/macros.txt"
    if grep -q "define __GNUC__" "$OUT/macros.txt"; then echo "msvc.sh: __GNUC__ is defined in MSVC mode"; exit 1; fi
    nm "$OUT/dispatch.$target.obj" > "$OUT/syms.txt"
    grep -q "cpu_has_x86_cpuid" "$OUT/syms.txt" || { echo "msvc.sh: dispatch.c did not compile its CPUID reader"; exit 1; }
  fi
done
# the poison in force.h sees only the code compiled in MSVC mode, not the GCC-only branches
# (#ifdef TG_X86_INTRIN: conv_small.c's and winograd.c's self-tests, conv.c's pooling), which
# also build for MinGW-w64; so no GCC/clang atomic builtin anywhere in csrc/ either, by grep
# (compiler.h names them only in comments)
if grep -nE '__atomic_[a-z]|__sync_[a-z]|__c11_atomic' csrc/*/*.[ch] | grep -v '^csrc/kernels/compiler.h:'; then
  echo "msvc.sh: csrc uses GCC/clang atomic builtins (above): use compiler.h's tg_atomic_*()"; exit 1
fi
# force.h includes compiler.h in every file, so the check above would also pass a file that
# uses the overflow builtins without including it (cl.exe would then fail): each file that
# names them must reach compiler.h by its own includes
# (csrc/python's Python and NumPy headers are replaced by empty files for this)
mkdir -p "$OUT/stub/numpy" && touch "$OUT/stub/Python.h" "$OUT/stub/structmember.h" "$OUT/stub/numpy/arrayobject.h"
for f in $(grep -lE '__builtin_(add|sub|mul)_overflow' csrc/*/*.c); do
  clang --target=x86_64-pc-windows-msvc -fms-compatibility -std=c11 -E -dM -Icsrc/include \
      -isystem "$WINE_INC/msvcrt" -isystem "$WINE_INC/windows" -isystem "$OUT/stub" "$f" > "$OUT/macros.txt"
  grep -q "define TG_COMPILER_H" "$OUT/macros.txt" \
    || { echo "msvc.sh: $f uses __builtin_*_overflow without compiler.h"; exit 1; }
done
# csrc/python cannot be compiled here in MSVC mode (Python's headers are the Linux ones);
# a textual check instead: no GCC extension other than the overflow builtins, which
# compiler.h provides under cl.exe (common.h includes it)
if grep -nE '__attribute__|__typeof|\btypeof\b|_Thread_local|__thread\b|__int128|__asm|vector_size|__builtin_|__atomic_|__sync_|__c11_atomic' \
     csrc/python/*.c csrc/python/*.h | grep -vE '__builtin_(add|sub|mul)_overflow'; then
  echo "msvc.sh: csrc/python uses a GCC extension that cl.exe lacks (above)"; exit 1
fi
grep -q '#include "../kernels/compiler.h"' csrc/python/common.h \
  || { echo "msvc.sh: csrc/python/common.h does not include compiler.h"; exit 1; }
echo "msvc.sh: $n objects, no warning; csrc/python: no GCC extension by grep; done in $((SECONDS - START)) s"
