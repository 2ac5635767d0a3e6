"""where(cond, a, b)'s row kernel paths against NumPy (csrc/ops/elementwise.c).

The contiguous rows choose between two loaded values (a vector blend) and
have their own loops for a scalar a, a scalar b (``where(mask, x, 0.0)``)
and both; any other layout takes the strided loop.  Every path must pick
exactly NumPy's elements: NaN payloads, -0.0 and infinities included, for
every dtype, on one thread and on two (rows split at arbitrary points).
"""
import numpy as np
import pytest

import tapegrad as tg

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_]


def _values(rng, shape, dtype):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    v = rng.standard_normal(shape).astype(dtype)
    flat = v.reshape(-1)
    specials = np.array([np.nan, -0.0, np.inf, -np.inf, 0.0], dtype=dtype)
    idx = rng.choice(flat.size, size=min(flat.size, 40), replace=False)
    flat[idx] = specials[np.arange(idx.size) % specials.size]
    return v


LAYOUTS = {
    "contiguous": lambda a, b: (a, b),
    "scalar b": lambda a, b: (a, b.reshape(-1)[:1].reshape(())),
    "scalar a": lambda a, b: (a.reshape(-1)[:1].reshape(()), b),
    "both scalars": lambda a, b: (a.reshape(-1)[:1].reshape(()), b.reshape(-1)[:1].reshape(())),
    "strided a": lambda a, b: (np.asfortranarray(a), b),
    "broadcast row b": lambda a, b: (a, b[:1]),
}


@pytest.fixture
def _threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("threads", [1, 2])
def test_where_picks_numpys_elements(layout, dtype, threads, _threads):
    tg.set_num_threads(threads)
    rng = np.random.default_rng(7)
    shape = (300, 1001)  # > 2^17 elements: split across the threads when there are two
    cond = rng.random(shape) < 0.5
    a, b = LAYOUTS[layout](_values(rng, shape, dtype), _values(rng, shape, dtype))
    got = tg.where(tg.from_numpy(cond), tg.from_numpy(a), tg.from_numpy(b)).numpy()
    want = np.where(cond, a, b)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    # compare the bits: NaN payloads and the sign of zero must survive the choice
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("cond_dtype", [np.float32, np.int64, np.uint8])
def test_where_non_bool_condition_counts_nonzero(cond_dtype):
    rng = np.random.default_rng(8)
    c = (rng.integers(0, 3, size=(7, 33)) - 1).astype(cond_dtype)  # -1 (or 255), 0, 1
    a = rng.standard_normal((7, 33)).astype(np.float32)
    got = tg.where(tg.from_numpy(c), tg.from_numpy(a), 0.0).numpy()
    np.testing.assert_array_equal(got, np.where(c != 0, a, np.float32(0)))
