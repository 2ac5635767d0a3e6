#!/usr/bin/env bash
# tests/sanitize.sh -- the AddressSanitizer + UndefinedBehaviorSanitizer pass.
#
#   bash tests/sanitize.sh            both parts below
#   bash tests/sanitize.sh c          only (a)
#   bash tests/sanitize.sh python     only (b)
#
# (a) The C core's Check suites, the header tutorial and the C example, built
#     with -fsanitize=address,undefined: exactly `make -C tests/c asan` (its own
#     build directory; leak detection ON there: a C program has no excuse).
# (b) The extension tapegrad._C built with TAPEGRAD_SANITIZE=1 into a separate
#     directory ($TG_SANITIZE_DIR, default /tmp/tg-asan: the normal in-place .so
#     is never touched), next to a copy of the Python package, first on
#     PYTHONPATH; then a subset of the pytest suite under
#         LD_PRELOAD=$(gcc -print-file-name=libasan.so)  (CPython itself is not
#                                  instrumented, so the ASan runtime must be loaded first)
#         PYTHONMALLOC=malloc      (Python objects come from malloc, so ASan also sees a
#                                  use-after-free of a PyObject: a refcount bug in the binding)
#         ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
#                                  leaks are NOT checked here: CPython keeps interned
#                                  strings, type caches and module state until exit (and
#                                  never frees some), so LeakSanitizer would report
#                                  thousands of blocks that are not ours.  Leaks are
#                                  checked by valgrind over the C suites (make -C tests/c
#                                  valgrind), by LeakSanitizer in (a), and in Python by
#                                  test_robustness.py (memory flat over 10,000 steps).
#                                  allocator_may_return_null: the overflow tests ask for
#                                  absurd sizes and expect MemoryError, not an abort.
#         UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
#     The subset leaves out what does not exercise our C code, is too slow
#     under ASan, or measures memory (ASan's allocator and PYTHONMALLOC=malloc
#     make heap sizes meaningless: test_refcounts.py and the leak test of
#     test_robustness.py, which skips itself when TAPEGRAD_SANITIZED=1 is set):
#     the C suites again (test_c_core.py: done in (a)), notebooks,
#     MNIST training and loading, PyTorch parity (PyTorch under ASan is huge),
#     and keeps Hypothesis budgets small (TAPEGRAD_FUZZ_EXAMPLES).
#
# Exit status: non-zero if a build fails, a test fails, or any sanitizer
# report appears (the log is also searched, so a report printed by a
# subprocess or in a thread is not missed).  Bounded: each part runs under
# `timeout` ($TG_SANITIZE_TIMEOUT seconds, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${TG_SANITIZE_DIR:-/tmp/tg-asan}
LIMIT=${TG_SANITIZE_TIMEOUT:-900}
PART=${1:-all}
PY=${PYTHON:-python}
mkdir -p "$OUT"

PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer'

check_log() { # name logfile
  if grep -Eq "$PATTERN" "$2"; then
    echo "sanitize: $1: sanitizer report(s):"
    grep -E -A30 "$PATTERN" "$2" | head -120
    return 1
  fi
}

part_c() {
  echo "== sanitize (a): make -C tests/c asan"
  local log="$OUT/c.log" t0=$SECONDS st=0
  timeout "$LIMIT" make -C tests/c asan >"$log" 2>&1 || st=$?
  grep -E "Checks:|^tutorial:|final loss" "$log" || tail -n 15 "$log"
  check_log "C suites" "$log" || st=1
  echo "sanitize (a): exit $st in $((SECONDS - t0)) s"
  return $st
}

part_python() {
  echo "== sanitize (b): tapegrad._C with ASan+UBSan, pytest subset"
  local t0=$SECONDS st=0
  local asan
  asan=$(gcc -print-file-name=libasan.so)
  # libstdc++ preloaded too: without it ASan's __cxa_throw interceptor has no real function to
  # call, and the first C++ exception of another extension (matplotlib's ft2font, used by the
  # drawings' PNG output) stops the process with "CHECK failed: real___cxa_throw"
  cxx=$(gcc -print-file-name=libstdc++.so.6)
  if [ ! -e "$asan" ]; then
    echo "sanitize: libasan.so not found (gcc -print-file-name=libasan.so)"; return 1
  fi
  # the package: a fresh copy of python/tapegrad without the in-place .so
  rm -rf "$OUT/pkg"; mkdir -p "$OUT/pkg"
  cp -r python/tapegrad "$OUT/pkg/"
  find "$OUT/pkg" -name '_C*.so' -delete
  find "$OUT/pkg" -name '__pycache__' -type d -prune -exec rm -rf {} +
  TAPEGRAD_SANITIZE=1 CC=${CC:-gcc} "$PY" setup.py -q build_ext -j2 \
      --build-lib "$OUT/lib" --build-temp "$OUT/tmp" >"$OUT/build.log" 2>&1 \
    || { tail -n 40 "$OUT/build.log"; echo "sanitize: build failed"; return 1; }
  cp "$OUT"/lib/tapegrad/_C*.so "$OUT/pkg/tapegrad/"

  local tests=(test_autograd.py test_errors.py test_zero_copy.py
               test_tensor_api.py test_ops_registry.py test_nn.py test_conv_optim.py
               test_data.py test_inspect.py test_robustness.py test_fuzz_api.py
               test_adversarial.py test_kernel_paths.py test_adam_parallel.py
               test_where_rows.py test_conv_winograd.py test_conv_fast.py)
  local args=()
  for f in "${tests[@]}"; do [ -e "tests/python/$f" ] && args+=("tests/python/$f"); done
  local log="$OUT/pytest.log"
  # which .so is loaded is checked first: a run against the normal build would prove nothing.
  # max_allocation_size_mb: the fuzz machine's bound on one request here (its RLIMIT_AS cap
  # would break ASan's shadow memory); a larger request returns NULL -> a MemoryError.
  env LD_PRELOAD="$asan $cxx" PYTHONMALLOC=malloc PYTHONPATH="$OUT/pkg" \
      ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:handle_abort=1:max_allocation_size_mb=2048 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      TAPEGRAD_FUZZ_EXAMPLES=${TAPEGRAD_FUZZ_EXAMPLES:-25} TAPEGRAD_SANITIZED=1 \
      timeout "$LIMIT" "$PY" -c '
import sys, tapegrad._C as C
assert C.__file__.startswith(sys.argv[1]), "not the sanitized build: " + C.__file__
print("sanitize: using", C.__file__)
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[2:]]))
' "$OUT/pkg" "${args[@]}" >"$log" 2>&1 || st=$?
  tail -n 15 "$log"
  check_log "pytest" "$log" || st=1
  echo "sanitize (b): exit $st in $((SECONDS - t0)) s"
  return $st
}

rc=0
case "$PART" in
  c) part_c || rc=1 ;;
  python) part_python || rc=1 ;;
  all) part_c || rc=1; part_python || rc=1 ;;
  *) echo "usage: $0 [all|c|python]"; exit 2 ;;
esac
[ $rc = 0 ] && echo "sanitize: OK (no sanitizer report)" || echo "sanitize: FAILED"
exit $rc
