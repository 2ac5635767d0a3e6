#!/usr/bin/env bash
# tests/fuzz/run.sh -- bounded fuzzing runs (see tests/fuzz/README.md).
#
#   bash tests/fuzz/run.sh [SECONDS]        default 60 (or $TG_FUZZ_SECONDS)
#   bash tests/fuzz/run.sh [SECONDS] c      only the C harness
#   bash tests/fuzz/run.sh [SECONDS] python only the Hypothesis state machine
#
# 1. The C harness tests/fuzz/fuzz_ops.c over the public API, with
#    AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer):
#    - with clang's libFuzzer when available (coverage-guided, -max_total_time=SECONDS),
#      starting from tests/fuzz/corpus (the regression inputs) and keeping what it
#      finds in $TG_FUZZ_DIR/corpus (default /tmp/tg-fuzz);
#    - always also with gcc and the standalone driver (driver.c): the corpus
#      replayed, then random programs for SECONDS/2 seconds.
#    The core is built into $TG_FUZZ_DIR with the same flags (never into csrc/build).
# 2. The Python harness tests/python/test_fuzz_api.py (Hypothesis
#    RuleBasedStateMachine) with TAPEGRAD_FUZZ_EXAMPLES=${TAPEGRAD_FUZZ_EXAMPLES:-300}.
#
# Exit status non-zero on any crash, sanitizer report, contract violation
# (fuzz_ops.c aborts) or failing Hypothesis property; a crashing input is left
# in $TG_FUZZ_DIR (crash-*): add it to tests/fuzz/corpus and as a test in
# tests/c/test_regressions.c.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${TG_FUZZ_DIR:-/tmp/tg-fuzz}
T=${1:-${TG_FUZZ_SECONDS:-60}}
PART=${2:-all}
PY=${PYTHON:-python}
mkdir -p "$OUT/corpus"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
# allocator_may_return_null + max_allocation_size_mb: an absurd size must come
# back as TG_ERR_MEMORY (NULL from malloc), never abort the process
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=256:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TAPEGRAD_NUM_THREADS=${TAPEGRAD_NUM_THREADS:-2}
rc=0

build_core() { # compiler build-dir extra-flags
  make -s -C csrc CC="$1" BUILD="$2" CFLAGS_EXTRA="$3" >"$2.log" 2>&1 \
    || { tail -n 30 "$2.log"; echo "fuzz: building the core with $1 failed"; return 1; }
}

has_libfuzzer() {
  command -v clang >/dev/null || return 1
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){return 0;}' \
    | clang -x c -fsanitize=fuzzer -o "$OUT/probe" - >/dev/null 2>&1
}

part_c() {
  local t0=$SECONDS
  if has_libfuzzer; then
    echo "== fuzz: libFuzzer (clang), ${T} s"
    build_core clang "$OUT/clang" "$SAN -fsanitize=fuzzer-no-link" || return 1
    clang -std=c11 $SAN -fsanitize=fuzzer -Icsrc/include tests/fuzz/fuzz_ops.c \
      "$OUT/clang/libtapegrad.a" -lm -pthread -o "$OUT/fuzz_ops"
    (cd "$OUT" && ./fuzz_ops -max_total_time="$T" -timeout=30 -rss_limit_mb=4096 \
        -print_final_stats=1 "$OUT/corpus" "$ROOT/tests/fuzz/corpus") >"$OUT/libfuzzer.log" 2>&1 \
      || { echo "fuzz: libFuzzer found a failure:"; grep -E -B2 -A40 "ERROR|runtime error|contract" \
             "$OUT/libfuzzer.log" | head -80; ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* 2>/dev/null; return 1; }
    grep -E "^stat::|Done|INFO: seed corpus" "$OUT/libfuzzer.log" | tail -n 8
  else
    echo "== fuzz: clang/libFuzzer not available (apt-get install clang): gcc driver only"
  fi
  echo "== fuzz: standalone driver (gcc), corpus + $((T / 2)) s of random programs"
  build_core gcc "$OUT/gcc" "$SAN" || return 1
  gcc -std=c11 $SAN -Icsrc/include tests/fuzz/fuzz_ops.c tests/fuzz/driver.c \
    "$OUT/gcc/libtapegrad.a" -lm -pthread -o "$OUT/fuzz_ops_driver"
  local corp=("$ROOT/tests/fuzz/corpus")
  [ -n "$(ls -A "$OUT/corpus" 2>/dev/null)" ] && corp+=("$OUT/corpus")
  (cd "$OUT" && ./fuzz_ops_driver "${corp[@]}" -time $((T / 2)) -seed "${TG_FUZZ_SEED:-$RANDOM}") \
      >"$OUT/driver.log" 2>&1 \
    || { echo "fuzz: the driver found a failure:"; grep -E -B2 -A40 "ERROR|runtime error|contract" \
           "$OUT/driver.log" | head -80; echo "input: $OUT/crash-driver-current"; return 1; }
  tail -n 3 "$OUT/driver.log"
  echo "fuzz (C): OK in $((SECONDS - t0)) s"
}

part_python() {
  local t0=$SECONDS
  echo "== fuzz: Hypothesis state machine (tests/python/test_fuzz_api.py)"
  TAPEGRAD_FUZZ_EXAMPLES=${TAPEGRAD_FUZZ_EXAMPLES:-300} timeout $((T * 5 + 120)) \
    "$PY" -m pytest -q -p no:cacheprovider tests/python/test_fuzz_api.py || return 1
  echo "fuzz (Python): OK in $((SECONDS - t0)) s"
}

case "$PART" in
  c) part_c || rc=1 ;;
  python) part_python || rc=1 ;;
  all) part_c || rc=1; part_python || rc=1 ;;
  *) echo "usage: $0 [SECONDS] [all|c|python]"; exit 2 ;;
esac
[ $rc = 0 ] && echo "fuzz: OK" || echo "fuzz: FAILED"
exit $rc
