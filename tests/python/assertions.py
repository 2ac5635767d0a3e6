"""Assertions shared by the tests (the error tests: test_errors, test_robustness,
test_adversarial; the ulp bounds of the vector kernels: test_fast_paths,
test_vmath_erf): tests/python is on sys.path (conftest.py)."""
import numpy as np
import pytest


def raises(exc, *words):
    """pytest.raises that also checks every word appears in the message."""
    class _Ctx:
        def __enter__(self):
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            suppressed = self.cm.__exit__(*a)  # raises if nothing was raised
            if suppressed:
                msg = str(self.info.value)
                for w in words:
                    assert w in msg, f"{w!r} not in the message {msg!r}"
            return suppressed
    return _Ctx()


def ulp_errors(got, want):
    """|got - want| in ulps of float32(want); inf/NaN must match exactly."""
    with np.errstate(all="ignore"):
        w32 = want.astype(np.float32)
    special = ~np.isfinite(w32)
    err = np.zeros(got.shape)
    exact = (got == w32) | (np.isnan(got) & np.isnan(w32))
    err[special & ~exact] = np.inf
    fin = ~special
    ulp = np.spacing(np.abs(w32[fin])).astype(np.float64)
    ulp = np.maximum(ulp, np.float64(np.finfo(np.float32).smallest_subnormal))
    err[fin] = np.abs(got[fin].astype(np.float64) - want[fin]) / ulp
    err[fin & ~np.isfinite(got)] = np.inf
    return err
