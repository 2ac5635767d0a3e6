"""The AVX-512 build of the vector math (csrc/kernels/vmath_avx512.c, issue 16).

* the build is compiled on x86-64, listed best first, chosen by default on a
  CPU (and OS) with AVX-512F, and its self-test passed;
* it gives the same bits as the AVX2 build for every function of the
  template (exp, log, tanh, sigmoid, erf, gelu, gelu_tanh and both gelu
  gradients, the sums, max/min, the optimizer steps), through the ops, on
  special values, odd lengths and strided views: vmath.h promises it (same
  operations and FMAs per element, only the width differs);
* a deliberately broken AVX-512 build (tanh wrong in the loop's tail) fails
  its self-test: the library warns once, uses AVX2, and every result stays
  right; a broken AVX2 build asked for by TAPEGRAD_VMATH gives the baseline;
* TAPEGRAD_VMATH=avx512 forces it, TAPEGRAD_DISABLE_CPU_FEATURES=avx512 (or
  avx2: its FMA is the AVX2+FMA feature) hides it, and a forced build the
  CPU lacks is refused with the reason, never run.

The ulp sweeps of every function run on this build too: test_fast_paths.py,
test_vmath_erf.py and the C suite (tests/c/test_vmath.c) run once per
vector-math path the CPU has.  Tests that need AVX-512 are skipped on a CPU
without it (the conftest summary then lists avx512 as compiled, not run).
"""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
import kernel_paths

X86 = platform.machine() in ("x86_64", "AMD64")
HAVE_512 = "avx512" in kernel_paths.available("vmath")
need_512 = pytest.mark.skipif(not HAVE_512, reason="this CPU cannot run the avx512 build "
                              "(conftest's summary lists it as compiled, not run)")


def test_avx512_build_is_compiled_and_listed_best_first():
    names = [p["name"] for p in tg._C.kernel_paths()["vmath"]["paths"]]
    if X86:
        assert names == ["avx512", "avx2", "baseline"]
    else:
        assert "avx512" not in names and names[-1] == "baseline"


@need_512
def test_avx512_is_the_default_here_and_passed_its_self_test():
    out, _ = _python("pass")
    info = {p["name"]: p for p in out["cfg"]["kernel_paths"]["vmath"]["paths"]}
    assert out["cfg"]["vector_math"] == "avx512"
    assert info["avx512"]["selftest"] == "passed" and info["avx512"]["in_use"]
    assert info["avx2"]["selftest"] == "not run"      # the best one passed: no other test run
    assert out["warns"] == [] and out["cfg"]["kernel_problems"] == []


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -87.33, -103.9,
                    -104.5, 1e-45, 1.17549435e-38, 3.4e38, 0.625, -0.625, 0.62499, 3.9192057,
                    -3.9192057, 4.0, 5.54, -5.54, 9.5, -17.25, 1e-7, -3e-5], np.float32)


def _inputs():
    rng = np.random.default_rng(16)
    # every exponent and both signs: random bit patterns (NaN patterns included)
    bits = rng.integers(0, 2 ** 32, 20011, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = np.linspace(-12, 12, 30011, dtype=np.float32)
    return np.concatenate([SPECIAL, bits, dense, SPECIAL])


UNARY = {
    "exp": tg.exp, "log": tg.log, "tanh": tg.tanh, "sigmoid": tg.sigmoid, "erf": tg.erf,
    "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
}


def _run_all(x):
    """Every vmath function through the ops: forward, the fused gelu
    gradients, and the reductions."""
    out = {}
    with np.errstate(all="ignore"):
        for name, f in UNARY.items():
            for off in (0, 1):          # an odd start address: other tails
                out[f"{name}[{off}:]"] = f(tg.tensor(x[off:])).numpy()
            out[f"{name} strided"] = f(tg.from_numpy(x)[::3]).numpy()
        xf = np.where(np.isfinite(x) & (np.abs(x) < 40), x, np.float32(0.5))
        g = np.cos(np.arange(x.size, dtype=np.float32))
        for approx in ("none", "tanh"):
            t = tg.tensor(xf, requires_grad=True)
            F.gelu(t, approximate=approx).backward(tg.tensor(g))
            out[f"gelu_grad {approx}"] = t.grad.numpy()
        t = tg.tensor(xf)
        out["sum"] = t.sum().numpy()
        out["max"] = t.max().numpy()
        out["min"] = tg.tensor(x).min().numpy()
        out["col sum"] = tg.tensor(xf[:30000].reshape(100, 300)).sum(0).numpy()
    return out


@need_512
def test_avx512_and_avx2_give_the_same_bits_through_the_ops():
    x = _inputs()
    res = {}
    for path in ("avx2", "avx512"):
        with kernel_paths.forced("vmath", path):
            res[path] = _run_all(x)
    for key, a in res["avx2"].items():
        b = res["avx512"][key]
        # NaN in the same places; every other element the same bits
        same = (a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
                == b.view(np.uint32 if b.dtype == np.float32 else np.uint64)) | (np.isnan(a) & np.isnan(b))
        assert np.all(same), (key, np.flatnonzero(~same)[:5])


@need_512
def test_avx512_optimizer_steps_match_avx2_bitwise():
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(1001).astype(np.float32)
    g0 = rng.standard_normal(1001).astype(np.float32)
    res = {}
    for path in ("avx2", "avx512"):
        with kernel_paths.forced("vmath", path):
            got = []
            for make in (lambda ps: tg.optim.Adam(ps, lr=0.01),
                         lambda ps: tg.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
                         lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                         lambda ps: tg.optim.RMSprop(ps, lr=0.01, momentum=0.5, weight_decay=0.01)):
                p = tg.tensor(p0, requires_grad=True)
                opt = make([p])
                for _ in range(3):
                    p.grad = tg.tensor(g0)
                    opt.step()
                got.append(p.numpy().copy())
            res[path] = got
    for a, b in zip(res["avx2"], res["avx512"]):
        assert a.tobytes() == b.tobytes()


def _python(setup, **env_vars):
    """Run _SCRIPT in a fresh process (the choice is made once per process)."""
    return kernel_paths.run_in_fresh_process(_SCRIPT.replace("SETUP", setup), **env_vars)


# tanh on lengths with a tail after the vector body (the broken builds are
# wrong there), compared with float64 NumPy within the header's 2 ulp
_SCRIPT = r"""
import json, warnings, numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import tapegrad as tg
    SETUP
    errs = []
    for n in (5, 17, 67, 1001):
        x = np.linspace(-3, 3, n).astype(np.float32)
        got = tg.tanh(tg.tensor(x)).numpy().astype(np.float64)
        want = np.tanh(x.astype(np.float64))
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        errs.append(float(np.max(np.abs(got - want) / ulp)))
    cfg = tg.config()
    warns = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
print(json.dumps({"errs": errs, "cfg": {k: cfg[k] for k in ("vector_math", "kernel_paths", "kernel_problems")}, "warns": warns}))
"""


@need_512
def test_broken_avx512_build_is_refused_and_avx2_used():
    out, _ = _python("tg._C._testing_break_vmath('avx512')")
    cfg = out["cfg"]
    assert cfg["vector_math"] == "avx2"                       # the next build down, not baseline
    info = {p["name"]: p for p in cfg["kernel_paths"]["vmath"]["paths"]}
    assert info["avx512"]["selftest"] == "failed" and "tanh(" in info["avx512"]["detail"]
    assert "the baseline gives" in info["avx512"]["detail"]
    assert info["avx2"]["selftest"] == "passed" and info["avx2"]["in_use"]
    assert len(out["warns"]) == 1 and "avx512 kernels failed their self-test" in out["warns"][0]
    assert len(cfg["kernel_problems"]) == 1
    assert max(out["errs"]) <= 2.0                           # results stay right


@pytest.mark.skipif("avx2" not in kernel_paths.available("vmath"), reason="no AVX2 on this CPU")
def test_broken_avx2_build_asked_for_gives_the_baseline():
    out, _ = _python("tg._C._testing_break_vmath('avx2')", TAPEGRAD_VMATH="avx2")
    cfg = out["cfg"]
    assert cfg["vector_math"] == "baseline"
    info = {p["name"]: p for p in cfg["kernel_paths"]["vmath"]["paths"]}
    assert info["avx2"]["selftest"] == "failed"
    assert len(out["warns"]) == 1 and "avx2 kernels failed their self-test" in out["warns"][0]
    assert max(out["errs"]) <= 2.0


@pytest.mark.skipif(not X86, reason="the x86-64 build names")
def test_break_hook_names_only_simd_builds():
    with pytest.raises(ValueError, match="no SIMD vector-math path 'baseline'"):
        tg._C._testing_break_vmath("baseline")


@need_512
def test_forcing_and_hiding_the_avx512_build():
    out, _ = _python("pass", TAPEGRAD_VMATH="avx512")
    assert out["cfg"]["vector_math"] == "avx512" and out["warns"] == []
    out, _ = _python("pass", TAPEGRAD_VMATH="avx2")            # a lower build on request
    assert out["cfg"]["vector_math"] == "avx2" and out["warns"] == []
    # hidden: the default is AVX2; asked for, it is refused with the reason
    out, _ = _python("pass", TAPEGRAD_DISABLE_CPU_FEATURES="avx512")
    assert out["cfg"]["vector_math"] == "avx2" and out["warns"] == []
    out, _ = _python("pass", TAPEGRAD_VMATH="avx512", TAPEGRAD_DISABLE_CPU_FEATURES="avx512")
    assert out["cfg"]["vector_math"] == "avx2"
    assert any("TAPEGRAD_VMATH=avx512 refused: disabled by TAPEGRAD_DISABLE_CPU_FEATURES" in m
               for m in out["warns"]), out["warns"]
    info = {p["name"]: p for p in out["cfg"]["kernel_paths"]["vmath"]["paths"]}
    assert not info["avx512"]["available"] and info["avx512"]["selftest"] == "not run"
    # hiding AVX2 hides the AVX-512 build too (its FMA is the AVX2+FMA feature)
    out, _ = _python("pass", TAPEGRAD_DISABLE_CPU_FEATURES="avx2")
    assert out["cfg"]["vector_math"] == "baseline"
    assert max(out["errs"]) <= 2.0
    # forcing it at run time raises, naming the reason
    r = subprocess.run(
        [sys.executable, "-c", "import tapegrad as tg; tg._C._force_kernel('vmath', 'avx512')"],
        env={**os.environ, "TAPEGRAD_DISABLE_CPU_FEATURES": "avx512",
             "PYTHONPATH": os.path.dirname(os.path.dirname(tg.__file__))},
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert ("vmath path 'avx512' refused: disabled by TAPEGRAD_DISABLE_CPU_FEATURES"
            in r.stderr), r.stderr[-2000:]


def test_unknown_vmath_path_lists_the_builds():
    out, _ = _python("pass", TAPEGRAD_VMATH="avx9000")
    assert any("TAPEGRAD_VMATH=avx9000 is not a path (expected avx512, avx2, neon or baseline)" in m
               for m in out["warns"]), out["warns"]
