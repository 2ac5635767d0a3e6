#!/usr/bin/env bash
# Build the sdist and the wheel (python -m build), fail on any warning in the
# build log, then install the *sdist* in a clean venv and smoke-test it from
# outside the source tree: an sdist missing a header or oplist.h fails here,
# not for a user. Usage: bash .ci/sdist_smoke.sh [PYTHON]   (needs `build`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${1:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "-- python -m build (sdist, then a wheel from it)"
# PYTHONDONTWRITEBYTECODE makes setuptools warn that byte-compiling is off: not ours
env -u PYTHONDONTWRITEBYTECODE "$PY" -m build --outdir "$WORK/dist" > "$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
if grep -inE "warn" "$WORK/build.log"; then
  echo "python -m build printed warnings (above)"; exit 1
fi
ls "$WORK/dist"
sdist=$(ls "$WORK"/dist/tapegrad-*.tar.gz)
wheel=$(ls "$WORK"/dist/tapegrad-*.whl)
# every C file and header of the tree is in the sdist; the licence is in both
missing=$(comm -23 <(cd "$ROOT" && find csrc -name '*.[ch]' -not -path '*/build/*' | sort) \
                   <(tar tzf "$sdist" | sed -n 's|^tapegrad-[^/]*/\(csrc/.*\.[ch]\)$|\1|p' | sort))
[ -z "$missing" ] || { echo "sdist lacks: $missing"; exit 1; }
contents=$(tar tzf "$sdist")
grep -qE '^tapegrad-[^/]*/LICENSE$' <<<"$contents" || { echo "sdist lacks LICENSE"; exit 1; }
grep -q 'dist-info/licenses/LICENSE' <<<"$("$PY" -m zipfile -l "$wheel")" || { echo "wheel lacks LICENSE"; exit 1; }

echo "-- install the sdist in a clean venv"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$sdist"

echo "-- smoke test from outside the source tree"
cd "$WORK"
env -u PYTHONPATH -u TAPEGRAD_DATA "$WORK/venv/bin/python" - <<'PY'
import tapegrad as tg, numpy as np
assert "site-packages" in tg.__file__, tg.__file__
x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
(x * x).sum().backward()
assert x.grad.tolist() == [2.0, 4.0, 6.0], x.grad
assert len(tg.ops()) > 0
print("tapegrad", tg.__version__, "from", tg.__file__, "-", len(tg.ops()), "ops")
PY
usage=$(env -u PYTHONPATH "$WORK/venv/bin/python" -m tapegrad.examples.mnist --help)
grep -q "^usage: python -m tapegrad.examples.mnist" <<<"$usage" || { echo "$usage"; exit 1; }
echo "sdist smoke test passed"
