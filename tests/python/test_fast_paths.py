"""The fast paths of issue 6 checked against simple references.

* the vectorized float32 exp/log/tanh/sigmoid (csrc/kernels/vmath.h) against
  float64 NumPy, with the error bounds the header states;
* layout invariance: a strided or broadcast operand gives the same bits as
  a contiguous copy (strided rows go through the same vector kernel);
* thread invariance: elementwise ops and reductions give the same bits on
  one thread and on several (the pool splits rows at arbitrary points; the
  reductions combine fixed blocks in a fixed order);
* the reduction fast paths against float64 NumPy for every axis pattern,
  NaN propagation included;
* the baseline (non-AVX2) build of the kernels, forced with
  TAPEGRAD_VMATH=baseline in a subprocess, against the default one.

Every test runs once per vector-math path this CPU can run (the autouse
``_every_vmath_path`` fixture forces each in turn; conftest.py's terminal
summary lists what ran and what could not run here).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
from optim_reference import accessors, adam_reference
from assertions import ulp_errors


@pytest.fixture(autouse=True)
def _every_vmath_path(vmath_path):
    yield vmath_path


# The bounds of csrc/kernels/vmath.h, in ulps of the correctly rounded result.
BOUNDS = {"exp": 1.5, "log": 1.0, "tanh": 1.5, "sigmoid": 2.5}


def reference(name, x):
    with np.errstate(all="ignore"):  # signalling-NaN bit patterns warn when cast
        x64 = x.astype(np.float64)
        if name == "exp":
            return np.exp(x64)
        if name == "log":
            return np.log(x64)
        if name == "tanh":
            return np.tanh(x64)
        return np.where(x64 >= 0, 1 / (1 + np.exp(-x64)), np.exp(x64) / (1 + np.exp(x64)))


def sample_inputs(name):
    rng = np.random.default_rng(7)
    # every 6007th float32 bit pattern: all exponents, both signs, subnormals
    bits = np.arange(0, 2**32, 6007, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    dense = np.linspace(-110, 110, 200_001, dtype=np.float32)
    small = rng.standard_normal(50_000).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -87.33, -103.9, -104.0,
                         0.625, -0.625, 1e-45, 1.17549435e-38, 3.4e38], np.float32)
    x = np.concatenate([x, dense, small, specials])
    if name == "log":
        with np.errstate(all="ignore"):
            x = np.concatenate([x, np.abs(x) * np.float32(1.0001)])
    return x


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_vectorized_unary_accuracy(name):
    x = sample_inputs(name)
    got = getattr(tg, name)(tg.tensor(x)).numpy()
    err = ulp_errors(got, reference(name, x))
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS[name], (
        f"{name}({x[worst]!r}) = {got[worst]!r}, float64 says {reference(name, x[worst:worst + 1])[0]!r}: "
        f"{err[worst]:.3f} ulp > {BOUNDS[name]}")


def test_special_values_follow_c99():
    x = tg.tensor(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -1.0], np.float32))
    exp, log, tanh, sig = (f(x).numpy() for f in (tg.exp, tg.log, tg.tanh, tg.sigmoid))
    np.testing.assert_array_equal(exp[[0, 1, 3, 4]], [np.inf, 0, 1, 1])
    assert np.isnan(exp[2])
    np.testing.assert_array_equal(log[[0, 3, 4]], [np.inf, -np.inf, -np.inf])
    assert np.isnan(log[[1, 2, 5]]).all()
    np.testing.assert_array_equal(tanh[[0, 1]], [1, -1])
    assert tanh[4] == 0 and np.signbit(tanh[4]) and not np.signbit(tanh[3])
    np.testing.assert_array_equal(sig[[0, 1, 3]], [1, 0, 0.5])


def layouts(rng):
    base = rng.standard_normal((64, 301)).astype(np.float32) * 4
    yield "transposed", base.T
    yield "sliced", base[::3, 5:250:2]
    yield "reversed", base[::-1, ::-1]
    yield "column", base[:, 7:8]


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "log"])
def test_strided_rows_match_contiguous_bits(name):
    rng = np.random.default_rng(1)
    f = getattr(tg, name)
    for label, arr in layouts(rng):
        if name == "log":
            arr = np.abs(arr)
        strided = f(tg.from_numpy(arr)).numpy()
        contiguous = f(tg.tensor(np.ascontiguousarray(arr))).numpy()
        np.testing.assert_array_equal(strided, contiguous, err_msg=label)


@pytest.fixture
def threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


def run_with_threads(n, fn):
    tg.set_num_threads(n)
    return fn()


ELEMENTWISE_CASES = {
    "add contiguous": lambda a, b: a + b,
    "mul broadcast row": lambda a, b: a * b[:1],
    "sub broadcast column": lambda a, b: a - b[:, :1],
    "exp transposed": lambda a, b: tg.exp(a.T),
    "tanh sliced": lambda a, b: tg.tanh(a[:, 1::3]),
    "sigmoid": lambda a, b: tg.sigmoid(a),
    "log abs": lambda a, b: tg.log(tg.abs(b)),
    "pow": lambda a, b: tg.abs(a) ** 1.5,
    "div scalar": lambda a, b: a / 3.0,
    "maximum": lambda a, b: tg.maximum(a, b.T.T),
    "where broadcast": lambda a, b: tg.where(a[:, :1] > 0, a, b),
    "clip": lambda a, b: a.clip(-0.5, 0.5),
}


@pytest.mark.parametrize("case", sorted(ELEMENTWISE_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_same_bits_on_one_and_two_threads(case, dtype, threads):
    # 257 x 2003 = 514,771 elements: enough work to be split, rows cut mid-way
    rng = np.random.default_rng(2)
    a = tg.tensor(rng.standard_normal((257, 2003)).astype(dtype))
    b = tg.tensor(rng.standard_normal((257, 2003)).astype(dtype))
    fn = ELEMENTWISE_CASES[case]
    one = run_with_threads(1, lambda: fn(a, b).numpy())
    two = run_with_threads(2, lambda: fn(a, b).numpy())
    np.testing.assert_array_equal(one, two)
    # and the simple path: NumPy in float64
    ref = {"add contiguous": lambda x, y: x + y, "mul broadcast row": lambda x, y: x * y[:1],
           "sub broadcast column": lambda x, y: x - y[:, :1], "exp transposed": lambda x, y: np.exp(x.T),
           "tanh sliced": lambda x, y: np.tanh(x[:, 1::3]), "sigmoid": lambda x, y: 1 / (1 + np.exp(-x)),
           "log abs": lambda x, y: np.log(np.abs(y)), "pow": lambda x, y: np.abs(x) ** 1.5,
           "div scalar": lambda x, y: x / 3.0, "maximum": np.maximum,
           "where broadcast": lambda x, y: np.where(x[:, :1] > 0, x, y),
           "clip": lambda x, y: np.clip(x, -0.5, 0.5)}[case]
    want = ref(a.numpy().astype(np.float64), b.numpy().astype(np.float64))
    np.testing.assert_allclose(two, want, rtol=2e-6 if dtype == np.float32 else 1e-13, atol=1e-30)


REDUCE_SHAPES = [
    ((1000, 1000), [0, 1, None, (0, 1)]),
    ((3, 70001), [0, 1, None]),               # rows longer than one block (32768)
    ((5, 3000, 7), [0, 1, 2, (0, 1), (1, 2), (0, 2), None]),  # (0, 2): not adjacent
    ((2, 1, 2500, 1), [0, 2, (0, 2), (2, 3), None]),  # size-1 dims between
    ((4100,), [0, None]),
    ((6, 0, 3), [0, 2]),                      # empty reduced axis: sum 0
    # axes in several blocks: one pass per block (reduce.c's reduce_fast)
    ((32, 16, 14, 14), [(0, 2, 3), (0, 2), (1, 3)]),  # BatchNorm's statistics
    ((3, 2, 5, 4, 6), [(0, 2, 4), (1, 3), (0, 1, 3, 4)]),
    ((3, 4, 40000), [(0, 2)]),                # first pass: rows longer than one block
    ((3, 2000, 5), [(0, 2)]),                 # second pass: more than 1024 columns
    ((2, 1, 3, 1, 4), [(0, 1, 2), (0, 3, 4), (1, 3)]),  # size-1 dims among the axes
    ((0, 3, 4), [(0, 2)]),
]


def _axes_list():
    for shape, axes in REDUCE_SHAPES:
        for axis in axes:
            yield shape, axis


@pytest.mark.parametrize("shape,axis", list(_axes_list()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_match_numpy_and_threads(shape, axis, dtype, threads):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    t = tg.tensor(x)
    tol = dict(rtol=3e-6, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)
    for keepdims in (False, True):
        one = run_with_threads(1, lambda: t.sum(axis=axis, keepdims=keepdims).numpy())
        two = run_with_threads(2, lambda: t.sum(axis=axis, keepdims=keepdims).numpy())
        np.testing.assert_array_equal(one, two)
        want = x.astype(np.float64).sum(axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(one, want, **tol)
        assert one.dtype == dtype and one.shape == want.shape
        if x.size:
            np.testing.assert_allclose(t.mean(axis=axis, keepdims=keepdims).numpy(),
                                       x.astype(np.float64).mean(axis=axis, keepdims=keepdims), **tol)
            for red in ("max", "min"):
                got = run_with_threads(2, lambda: getattr(t, red)(axis=axis, keepdims=keepdims).numpy())
                np.testing.assert_array_equal(got, getattr(x, red)(axis=axis, keepdims=keepdims))


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.sampled_from([0, 1, 2, 3, 5, 17, 40, 130]), min_size=1, max_size=5),
       data=st.data(), f64=st.booleans(), keepdims=st.booleans(), nans=st.integers(0, 3))
def test_sum_over_any_axes_property(shape, data, f64, keepdims, nans):
    """A sum over any set of axes of a contiguous float tensor -- reduced
    axes in one block (one pass) or in several (one pass per block, the last
    first, through float64 buffers), size-1 and empty dims among them --
    is NumPy's float64 sum within the float32 rounding of the result, gives
    the same bits on one and two threads, and mean is sum / count; max and
    min (the same passes, the column ones through vmath's accmax/accmin) are
    NumPy's exactly, NaN where a reduced run holds one."""
    if int(np.prod(shape)) > 400_000:
        shape = shape[:3]
    nd = len(shape)
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, nd - 1), min_size=1))))
    dtype = np.float64 if f64 else np.float32
    x = np.random.default_rng(nd * 31 + sum(shape)).standard_normal(shape).astype(dtype)
    t = tg.tensor(x)
    one = run_with_threads(1, lambda: t.sum(axis=axes, keepdims=keepdims).numpy())
    two = run_with_threads(2, lambda: t.sum(axis=axes, keepdims=keepdims).numpy())
    np.testing.assert_array_equal(one, two)
    want = x.astype(np.float64).sum(axis=axes, keepdims=keepdims)
    assert one.dtype == dtype and one.shape == want.shape
    # float32: one rounding of a float64 sum of terms each below 6 in size
    tol = dict(rtol=2e-7, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(one, want, **tol)
    if x.size and all(shape[a] for a in axes):
        np.testing.assert_allclose(t.mean(axis=axes, keepdims=keepdims).numpy(),
                                   x.astype(np.float64).mean(axis=axes, keepdims=keepdims), **tol)
        xn = x.copy()
        pos = np.random.default_rng(nans).integers(0, x.size, nans)
        xn.reshape(-1)[pos] = np.nan
        tn = tg.tensor(xn)
        for red in ("max", "min"):
            one = run_with_threads(1, lambda: getattr(tn, red)(axis=axes, keepdims=keepdims).numpy())
            two = run_with_threads(2, lambda: getattr(tn, red)(axis=axes, keepdims=keepdims).numpy())
            np.testing.assert_array_equal(one, getattr(xn, red)(axis=axes, keepdims=keepdims))
            np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_on_strided_input(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 400)).astype(dtype)
    for view in (x.T, x[::2, ::-3], x[:, 100:101]):
        t = tg.from_numpy(view)
        for axis in (0, 1, None):
            np.testing.assert_allclose(t.sum(axis=axis).numpy(), view.astype(np.float64).sum(axis=axis),
                                       rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
            np.testing.assert_array_equal(t.max(axis=axis).numpy(), view.max(axis=axis))


def test_max_min_propagate_nan_from_any_position():
    for n in (1, 7, 16, 33, 40000, 70001):
        for pos in sorted({0, n // 2, n - 1}):
            x = np.arange(n, dtype=np.float32)
            x[pos] = np.nan
            t = tg.tensor(x.reshape(1, n))
            for red in ("max", "min"):
                assert np.isnan(getattr(t, red)().item()), (red, n, pos)
                assert np.isnan(getattr(t, red)(axis=1).numpy()).all(), (red, n, pos)
    x = np.full((3, 50000), -np.inf, np.float32)
    assert tg.tensor(x).max(axis=1).numpy().tolist() == [-np.inf] * 3


def _column_extremum_rule(a, red):
    """The rule reduce.c states for max and min, row after row in order: a
    NaN already held sticks (the first NaN seen, its bits kept), a NaN
    arriving wins, otherwise a value wins only where strictly beyond."""
    m = a[0].copy()
    for v in a[1:]:
        beyond = v > m if red == "max" else v < m
        m = np.where(np.isnan(m), m, np.where(beyond | np.isnan(v), v, m))
    return m


@pytest.mark.parametrize("rows,cols", [(2, 5), (3, 17), (4, 16), (7, 1030), (9, 2100),
                                       (1000, 33), (13, 1024)])
@pytest.mark.parametrize("dtype,uint", [(np.float32, np.uint32), (np.float64, np.uint64)])
@pytest.mark.parametrize("nans", [False, True])
def test_column_max_min_follow_the_rule_bit_for_bit(rows, cols, dtype, uint, nans, threads):
    """max and min over axis 0 of a contiguous matrix (vmath's accmax/accmin:
    the rows folded by a plain comparison, then again by the full rule in a
    block that saw a NaN) give the rule's bits: which of -0 and +0 (the
    first), infinities, and with ``nans`` which of two NaNs of different
    payloads (the first), at every row position the kernel's four-row steps
    and its tail reach, in blocks past its 1024 columns. Without NaNs the
    plain comparison's result is the one returned, with them the refold's;
    the general path (a strided view of the same values) gives the same
    bits."""
    rng = np.random.default_rng(rows * 7 + cols)
    a = rng.standard_normal((rows, cols)).astype(dtype)
    nan1, nan2 = (np.array([0x7FC00001, 0x7FC00002], np.uint32).view(np.float32) if dtype == np.float32
                  else np.array([0x7FF8000000000001, 0x7FF8000000000002], np.uint64).view(np.float64))
    for j in range(cols):
        kind, r = j % 6, (j * 5) % rows
        if kind == 0 and nans:             # a NaN, and a second one of another payload below it
            a[r, j] = nan1
            if r + 1 < rows:
                a[rows - 1, j] = nan2
        elif kind == 1:                    # only signed zeros: the first one stays
            a[:, j] = np.where(rng.random(rows) < 0.5, -0.0, 0.0)
        elif kind == 2:                    # infinities
            a[r, j] = np.inf if j % 4 else -np.inf
    strided = np.zeros((rows, 2 * cols), dtype)
    strided[:, ::2] = a
    for red in ("max", "min"):
        want = _column_extremum_rule(a, red).view(uint)
        for n in (1, 2):
            got = run_with_threads(n, lambda: getattr(tg.tensor(a), red)(axis=0).numpy())
            np.testing.assert_array_equal(got.view(uint), want, err_msg=f"{red}, {n} threads")
        general = getattr(tg.from_numpy(strided[:, ::2]), red)(axis=0).numpy()
        np.testing.assert_array_equal(general.view(uint), want, err_msg=f"{red}, general path")


def test_float32_sums_accumulate_in_float64():
    # 2^24 + 1 ones: a float32 running sum would stop at 2^24
    x = np.ones(2**24 + 8, np.float32)
    assert tg.tensor(x).sum().numpy().astype(np.float64) == np.float32(2**24 + 8)
    # cancellation: large values that cancel, then small ones
    y = np.concatenate([np.full(1000, 1e7, np.float32), np.full(1000, -1e7, np.float32),
                        np.full(1000, 1e-3, np.float32)])
    assert abs(tg.tensor(y).sum().item() - 1.0) < 1e-6


_BASELINE_SCRIPT = r"""
import json, sys, numpy as np, tapegrad as tg
x = np.linspace(-100, 100, 100003, dtype=np.float32)
out = {"isa": tg._C.vmath_isa()}
for name in ("exp", "tanh", "sigmoid"):
    out[name] = getattr(tg, name)(tg.tensor(x)).numpy().view(np.uint32).tolist()
out["log"] = tg.log(tg.tensor(np.abs(x) + 1e-3)).numpy().view(np.uint32).tolist()
m = np.random.default_rng(5).standard_normal((123, 4567)).astype(np.float32)
out["sums"] = [tg.tensor(m).sum(axis=a).numpy().astype(np.float64).tolist() for a in (0, 1, None)]
json.dump(out, sys.stdout)
"""


def _run_vmath(env_value):
    env = dict(os.environ)
    env.pop("TAPEGRAD_VMATH", None)
    if env_value:
        env["TAPEGRAD_VMATH"] = env_value
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(tg.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout)


def test_baseline_build_agrees_with_the_default_build():
    base = _run_vmath("baseline")
    default = _run_vmath(None)
    assert base["isa"] == "baseline"
    assert default["isa"] in ("avx512", "avx2", "neon", "baseline")
    for name in ("exp", "tanh", "sigmoid", "log"):
        a = np.array(base[name], np.uint32).view(np.float32)
        b = np.array(default[name], np.uint32).view(np.float32)
        # the same algorithm: within one ulp (FMA rounds once where SSE2 rounds twice)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        with np.errstate(invalid="ignore"):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            close = diff <= np.spacing(np.abs(a)).astype(np.float64) * 1.01
        assert np.all(same | close), (name, a[~(same | close)][:5], b[~(same | close)][:5])
    # sums: a fixed order of float64 additions on both builds, so the same bits
    assert base["sums"] == default["sums"]


# ---- optimizer loops: the vectorized float32 paths against a NumPy replay --


def _params(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shapes = [(37, 23), (23,), (5, 7, 3)]
    ps = [tg.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    return ps, grads


def _run(opt_factory, ps, grads):
    opt = opt_factory(ps)
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = tg.tensor(g)
        opt.step()
    return [p.numpy().copy() for p in ps]


@pytest.mark.parametrize("momentum,dampening,nesterov,wd", [
    (0.0, 0.0, False, 0.0), (0.0, 0.0, False, 0.01), (0.9, 0.0, False, 0.0),
    (0.9, 0.1, False, 0.01), (0.9, 0.0, True, 0.0), (0.5, 0.0, True, 0.02)])
def test_sgd_float32_loop_is_the_float64_formula_rounded_at_each_store(momentum, dampening, nesterov, wd):
    ps, grads = _params(1)
    want = [p.numpy().copy() for p in ps]
    bufs = [None] * len(ps)
    lr = 0.05
    for step in grads:
        for i, g in enumerate(step):
            gk, pk = g.astype(np.float64), want[i].astype(np.float64)
            if wd:
                gk = gk + wd * pk
            if momentum:
                bk = gk if bufs[i] is None else momentum * bufs[i].astype(np.float64) + (1 - dampening) * gk
                bufs[i] = bk.astype(np.float32)
                gk = gk + momentum * bufs[i].astype(np.float64) if nesterov else bufs[i].astype(np.float64)
            want[i] = (pk - lr * gk).astype(np.float32)
    got = _run(lambda ps: tg.optim.SGD(ps, lr=lr, momentum=momentum, dampening=dampening,
                                       nesterov=nesterov, weight_decay=wd), ps, grads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.0, 0.01), (0.5, 0.02)])
def test_rmsprop_float32_loop_is_the_float64_formula_rounded_at_each_store(momentum, wd):
    ps, grads = _params(2)
    want = [p.numpy().copy() for p in ps]
    sq = [np.zeros_like(w) for w in want]
    bufs = [np.zeros_like(w) for w in want]
    lr, alpha, eps = 0.01, 0.99, 1e-8
    for step in grads:
        for i, g in enumerate(step):
            gk, pk = g.astype(np.float64), want[i].astype(np.float64)
            if wd:
                gk = gk + wd * pk
            sq[i] = (alpha * sq[i].astype(np.float64) + (1 - alpha) * gk * gk).astype(np.float32)
            avg = np.sqrt(sq[i].astype(np.float64)) + eps
            if momentum:
                bufs[i] = (momentum * bufs[i].astype(np.float64) + gk / avg).astype(np.float32)
                want[i] = (pk - lr * bufs[i].astype(np.float64)).astype(np.float32)
            else:
                want[i] = (pk - lr * gk / avg).astype(np.float32)
    got = _run(lambda ps: tg.optim.RMSprop(ps, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                                           weight_decay=wd), ps, grads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("wd,decoupled", [(0.0, False), (0.01, False), (0.01, True)])
def test_adam_float32_loop_is_the_float32_formula(wd, decoupled):
    ps, grads = _params(3)
    want = [p.numpy().copy() for p in ps]
    lr = 1e-3

    adam_reference(accessors(want), grads, lr, wd, decoupled)
    opt = (lambda ps: tg.optim.AdamW(ps, lr=lr, weight_decay=wd)) if decoupled else \
        (lambda ps: tg.optim.Adam(ps, lr=lr, weight_decay=wd))
    got = _run(opt, ps, grads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
