#!/usr/bin/env bash
# .ci/arm64.sh -- the C core, the Check suites and examples/c cross-built for
# aarch64 (Debian gcc-aarch64-linux-gnu, check:arm64) and run under
# qemu-aarch64 (qemu-user), every warning an error.
#
#   1. the Check runner with the NEON kernels selected (the default on arm64);
#   2. the same runner with NEON forced off at start-up
#      (TAPEGRAD_DISABLE_CPU_FEATURES=neon TAPEGRAD_GEMM=baseline): the first
#      choice of every family is then the portable path.  (Run 1 already
#      tests the portable paths too: the gemm and vmath suites force each
#      path in turn; and tests that restore the environment in their
#      teardown use NEON again, so run 2's summary still lists neon.)
#   2b. the threadpool suite 30 more times (rare hand-over races show as hangs);
#   3. examples/c/mlp.c, whose printed losses must equal the x86-64 run's.
#
# Emulation settings: CK_FORK=no (in Check's fork mode the emulated runner
# blocked for 10 minutes), TG_TEST_LIGHT=1 (the heavy tests use their small
# sizes, as under valgrind: the default gemm suite did not finish in 5
# minutes of emulation), TG_TEST_NO_FORK=1 (qemu-user aborts when a forked
# child of a threaded process starts threads: the one fork test is listed
# as NOT RUN).  Binaries are linked statically, so qemu needs no sysroot.
# Prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
CC=aarch64-linux-gnu-gcc
QEMU=${QEMU:-qemu-aarch64}
LIMIT=${TG_ARM64_TIMEOUT:-600}
for tool in $CC $QEMU; do
  command -v $tool >/dev/null || { echo "arm64.sh: $tool is not installed"; exit 1; }
done
[ -f /usr/lib/aarch64-linux-gnu/libcheck.a ] || { echo "arm64.sh: check:arm64 is not installed"; exit 1; }
$CC --version | head -1
$QEMU --version | head -1

echo "-- cross-build: core + Check runner (tests/c) for aarch64"
make -C tests/c build/aarch64/run_tests CC=$CC BUILD=build/aarch64 CFLAGS_EXTRA=-Werror \
    CHECK_CFLAGS=-pthread CHECK_LIBS="-static -lcheck -lsubunit -lrt -lm"
RUN=tests/c/build/aarch64/run_tests
export CK_FORK=no TG_TEST_LIGHT=1 TG_TEST_NO_FORK=1

echo "-- 1. Check suites under $QEMU, NEON kernels selected"
t=$SECONDS
(cd tests/c && timeout "$LIMIT" $QEMU ../../$RUN)
echo "   ($((SECONDS - t)) s)"

echo "-- 2. Check suites under $QEMU, NEON forced off at start-up"
t=$SECONDS
(cd tests/c && TAPEGRAD_DISABLE_CPU_FEATURES=neon TAPEGRAD_GEMM=baseline timeout "$LIMIT" $QEMU ../../$RUN)
echo "   ($((SECONDS - t)) s)"

# The thread pool's hand-over races show under emulation as rare hangs (session 11: a
# store then a load of two flags, reordered by qemu on the x86 host, hung 2 % of the
# threadpool suite's runs): run that suite 30 more times, each under its own limit.
echo "-- 2b. the threadpool suite 30 more times under $QEMU"
t=$SECONDS
for i in $(seq 1 30); do
  (cd tests/c && CK_RUN_SUITE=threadpool CK_LOG_FILE_NAME=/dev/stdout timeout 120 $QEMU ../../$RUN \
       > build/aarch64/threadpool-extra.log 2>&1) || {
    echo "arm64.sh: the threadpool suite failed or hung (limit 120 s) in extra run $i of 30;"
    echo "the tests it finished (the next one is where it stopped):"
    tail -5 tests/c/build/aarch64/threadpool-extra.log
    exit 1
  }
done
echo "   30 runs passed ($((SECONDS - t)) s)"

echo "-- 3. examples/c/mlp.c under $QEMU, compared with the x86-64 build"
OUT=csrc/build/aarch64
$CC -std=c11 -O2 -Wall -Wextra -Werror -Icsrc/include -o $OUT/mlp examples/c/mlp.c \
    $OUT/libtapegrad.a -lm -pthread -static
make -C examples/c mlp > /dev/null
arm=$(timeout "$LIMIT" $QEMU $OUT/mlp)
x86=$(examples/c/mlp)
echo "$arm" | tail -2
if [ "$arm" != "$x86" ]; then
  echo "arm64.sh: the aarch64 example printed something else than x86-64:"
  diff <(echo "$x86") <(echo "$arm") || true
  exit 1
fi
echo "   same output as x86-64, line for line"
echo "arm64.sh: done in $((SECONDS - START)) s"
