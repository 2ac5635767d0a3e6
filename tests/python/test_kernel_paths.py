"""Kernel paths and their self-tests (issue 22).

* matmul (forward and backward) on every GEMM path this CPU can run, on
  shapes with edge tiles, transposed, strided and broadcast operands,
  against float64 NumPy;
* a deliberately broken micro-kernel (a wrong edge-tile store) is caught by
  the self-test: the library falls back to the next path, warns once
  (RuntimeWarning), reports it in tg.config()/show_config(), and every
  result stays right;
* forcing: TAPEGRAD_GEMM / TAPEGRAD_VMATH pick each path; a path the CPU
  cannot run is refused with a warning, never run (simulated on any CPU
  with TAPEGRAD_DISABLE_CPU_FEATURES);
* show_config() states which paths the test suite has run on real hardware.
"""

import numpy as np
import pytest

import tapegrad as tg
import kernel_paths

SHAPES = [(17, 67, 9), (1, 33, 5), (33, 1, 40), (13, 35, 1), (100, 90, 80), (8, 32, 17)]


def _views(a):
    """The same matrix, contiguous, transposed-in-memory and strided."""
    yield "contiguous", a
    yield "transposed", np.asfortranarray(a)
    big = np.zeros((a.shape[0], 2 * a.shape[1] + 1), a.dtype)
    big[:, 1::2] = a
    yield "strided", big[:, 1::2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_matmul_on_every_path(gemm_path, M, N, K, dtype):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    eps = np.finfo(dtype).eps
    tol = 2 * (K + 4) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-30
    for la, va in _views(a):
        for lb, vb in _views(b):
            got = (tg.from_numpy(va) @ tg.from_numpy(vb)).numpy()
            assert np.all(np.abs(got - want) <= tol), (gemm_path, la, lb, np.abs(got - want).max())
    # backward: dA = dC B^T, dB = A^T dC go through the transposed layouts
    ta = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    g = rng.standard_normal((M, N)).astype(dtype)
    (ta @ tb).backward(tg.tensor(g))
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(ta.grad.numpy(), g64 @ b.T.astype(np.float64),
                               rtol=0, atol=float(2 * (N + 4) * eps * (np.abs(g64) @ np.abs(b.T)).max()) + 1e-30)
    np.testing.assert_allclose(tb.grad.numpy(), a.T.astype(np.float64) @ g64,
                               rtol=0, atol=float(2 * (M + 4) * eps * (np.abs(a.T) @ np.abs(g64)).max()) + 1e-30)


_python = kernel_paths.run_in_fresh_process


_CHECK = r"""
import json, warnings, numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import tapegrad as tg
    SETUP
    rng = np.random.default_rng(0)
    errs = []
    for M, N, K in [(17, 67, 9), (29, 70, 11), (100, 90, 80), (6, 16, 3)]:
        for dt in (np.float32, np.float64):
            a = rng.integers(-4, 5, (M, K)).astype(dt); b = rng.integers(-4, 5, (K, N)).astype(dt)
            errs.append(float(np.abs((tg.tensor(a) @ tg.tensor(b)).numpy() - a @ b).max()))
            errs.append(float(np.abs((tg.from_numpy(a.T.copy()).T @ tg.from_numpy(b)).numpy() - a @ b).max()))
    cfg = tg.config()
    warns = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
print(json.dumps({"errs": errs, "cfg": {k: cfg[k] for k in ("matmul_kernel", "vector_math", "kernel_paths", "kernel_problems")}, "warns": warns}))
"""


@pytest.mark.parametrize("best", [p for p in kernel_paths.available("gemm") if p != "generic"])
def test_broken_micro_kernel_is_caught_and_the_library_falls_back(best):
    # (one case per SIMD path this CPU has; conftest's summary lists the others)
    # the matmul runs the self-test again (the hook forgot the choice) ...
    out, _ = _python(_CHECK.replace("SETUP", f"tg._C._testing_break_gemm({best!r})"),
                     TAPEGRAD_GEMM=best)
    cfg = out["cfg"]
    # ... catches the wrong edge-tile store, and uses the next path
    assert cfg["matmul_kernel"] != best
    info = {p["name"]: p for p in cfg["kernel_paths"]["gemm"]["paths"]}
    assert info[best]["selftest"] == "failed" and "portable C path gives" in info[best]["detail"]
    assert info[cfg["matmul_kernel"]]["in_use"]
    # warned once (RuntimeWarning), and said in config()
    assert len(out["warns"]) == 1 and best in out["warns"][0] and "self-test" in out["warns"][0]
    assert len(cfg["kernel_problems"]) == 1
    # results stay right (integer data: exact)
    assert max(out["errs"]) == 0.0


def test_every_path_passes_its_self_test_here():
    for family in ("gemm", "vmath"):
        for p in tg._C.kernel_paths()[family]["paths"]:
            assert p["selftest"] != "failed", (family, p)
    assert tg._C.kernel_report() == ""


@pytest.mark.parametrize("path", kernel_paths.available("gemm") + ["baseline"])
def test_tapegrad_gemm_forces_each_path(path):
    out, err = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_GEMM=path)
    assert out["cfg"]["matmul_kernel"] == ("generic" if path == "baseline" else path)
    assert out["warns"] == [] and max(out["errs"]) == 0.0


@pytest.mark.parametrize("path", kernel_paths.available("vmath"))
def test_tapegrad_vmath_forces_each_path(path):
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_VMATH=path)
    assert out["cfg"]["vector_math"] == path and out["warns"] == []


def test_forced_path_the_cpu_lacks_is_refused_not_run():
    # an AVX-2-only CPU, simulated: AVX-512 hidden from the library
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_GEMM="avx512",
                     TAPEGRAD_DISABLE_CPU_FEATURES="avx512")
    cfg = out["cfg"]
    assert cfg["matmul_kernel"] != "avx512"
    info = {p["name"]: p for p in cfg["kernel_paths"]["gemm"]["paths"]}
    assert not info["avx512"]["available"] and info["avx512"]["selftest"] == "not run"
    assert any("TAPEGRAD_GEMM=avx512 refused" in w for w in out["warns"])
    assert max(out["errs"]) == 0.0
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_VMATH="avx2",
                     TAPEGRAD_DISABLE_CPU_FEATURES="avx2,avx512")
    assert out["cfg"]["vector_math"] == "baseline" and out["cfg"]["matmul_kernel"] == "generic"
    assert any("TAPEGRAD_VMATH=avx2 refused" in w for w in out["warns"])
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_GEMM="avx9000")
    assert any("TAPEGRAD_GEMM=avx9000 is not a path" in w for w in out["warns"])


def test_path_of_another_architecture_is_refused_with_the_reason():
    # the path names of every architecture are known: TAPEGRAD_GEMM=neon on
    # x86-64 (or avx2 on arm64) is refused with why, and the best path is used
    import platform
    foreign, why = (("avx2", "not an x86-64 build") if platform.machine() in ("aarch64", "arm64")
                    else ("neon", "not an arm64 build"))
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_GEMM=foreign)
    assert out["cfg"]["matmul_kernel"] != foreign
    assert any(f"TAPEGRAD_GEMM={foreign} refused: {why}" in w for w in out["warns"]), out["warns"]
    assert max(out["errs"]) == 0.0
    with pytest.raises(RuntimeError, match=f"gemm path '{foreign}' refused: {why}"):
        tg._C._force_kernel("gemm", foreign)
    # the same for the vector math
    out, _ = _python(_CHECK.replace("SETUP", "pass"), TAPEGRAD_VMATH=foreign)
    assert out["cfg"]["vector_math"] != foreign
    assert any(f"TAPEGRAD_VMATH={foreign} refused: {why}" in w for w in out["warns"]), out["warns"]
    with pytest.raises(RuntimeError, match=f"vmath path '{foreign}' refused: {why}"):
        tg._C._force_kernel("vmath", foreign)


def test_force_kernel_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown kernel family 'blas'"):
        tg._C._force_kernel("blas", "avx2")
    with pytest.raises(ValueError, match="'avx9000' is not a matmul kernel path"):
        tg._C._force_kernel("gemm", "avx9000")
    before = tg._C.kernel_paths()["gemm"]["path"]
    out, _ = _python(r"""
import json, tapegrad as tg
try:
    tg._C._force_kernel("gemm", "avx512"); r = "accepted"
except RuntimeError as e:
    r = str(e)
print(json.dumps({"r": r, "path": tg._C.kernel_paths()["gemm"]["path"]}))
""", TAPEGRAD_DISABLE_CPU_FEATURES="avx512")
    assert "refused" in out["r"] and "TAPEGRAD_DISABLE_CPU_FEATURES" in out["r"]
    assert out["path"] != "avx512"
    assert tg._C.kernel_paths()["gemm"]["path"] == before


def test_show_config_states_paths_and_what_the_suite_ran(capsys):
    tg.show_config()
    out = capsys.readouterr().out
    cfg = tg.config()
    assert f"matmul kernel : {cfg['matmul_kernel']} (" in out
    assert "self-test passed" in out or cfg["matmul_kernel"] == "generic"
    assert "run by the test suite on real hardware: matmul " in out
    compiled = {p["name"] for p in cfg["kernel_paths"]["gemm"]["paths"]}
    for name in compiled:
        assert f"matmul {name}" in out
    # what the suite ran here is what config() says it has run on real hardware
    for family in ("gemm", "vmath"):
        for name in kernel_paths.available(family):
            assert name in cfg["kernel_paths_tested"][family], (family, name)
