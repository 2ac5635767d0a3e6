"""Stateful fuzzing of the Python API with Hypothesis (GitHub issue 9).

A RuleBasedStateMachine keeps a pool of tensors of random shapes (0-d to 4-d,
empty dimensions included), dtypes and layouts (transposes, negative-step
slices, broadcast views, NumPy arrays shared without a copy) and applies
random rules to them: elementwise ops, reductions, matmul, indexing, views,
in-place writes, backward (retained or not, with and without a seed), NumPy
round trips, grad-mode changes, and deliberately bad calls (wrong shapes,
axes, dtypes, argument types).  The rule ``any_op`` calls every op of the
registry (issue 14) through its public function or Tensor method, with
arguments drawn by parameter name from the docstring's signature line:
axes as ints, NumPy ints, tuples and past int64, PyTorch's keyword aliases
(``dim=``, ``keepdim=``), NaN/Inf and NumPy float scalars, bad strings, then
backward through the result.  What it checks:

  - nothing crashes (a crash kills the test process);
  - every failure is one of the documented exception types (ValueError,
    TypeError, IndexError, MemoryError, RuntimeError) and, when it comes from
    an op, its message names the op;
  - results agree with NumPy (values, shapes, dtypes) whenever NumPy accepts
    the same call;
  - grad mode is on again after every rule (the context managers restore it).

The budget is small in the normal test run; tests/fuzz/run.sh raises it
(TAPEGRAD_FUZZ_EXAMPLES=300).  Every example runs under an address-space cap
(TAPEGRAD_FUZZ_MEMORY_MB above its size at the start, default 512): a
legitimate request of many gigabytes (tile(x, 2**31)) fails as a MemoryError,
which the rule ``huge_but_allowed`` checks on purpose, instead of growing the
process (see MEMORY_MB).  TAPEGRAD_FUZZ_LOG=path logs every rule with the
memory after it, TAPEGRAD_FUZZ_TRACEMALLOC=N where the Python heap grew.  A failure prints the shortest program that
reproduces it (Hypothesis shrinks it): turn it into a test in
test_robustness.py.
"""
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, invariant, precondition,  # noqa: E402
                                 rule)

import tapegrad as tg  # noqa: E402
from memory_cap import cap_address_space, restore_address_space  # noqa: E402

DOCUMENTED = (ValueError, TypeError, IndexError, MemoryError, RuntimeError)
EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "30"))
# TAPEGRAD_FUZZ_LOG=path: one line per rule and per example (rule, argument
# shapes, current and peak RSS, tapegrad's live and peak bytes) and one per
# MemoryError with its message, appended as the run goes (so that a run killed
# by the OOM killer leaves its last steps behind).
LOG = os.environ.get("TAPEGRAD_FUZZ_LOG")
DTYPES = [tg.float32, tg.float64, tg.int64, tg.bool, tg.int32, tg.uint8]

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)
small_axis = st.integers(-5, 5)


# ---- a bound on memory ----------------------------------------------------------
# The machine draws adversarial integers (_BIG_INTS) for size parameters, and
# some of them are legitimate, huge requests: pad(x, 2**31) of a one-element
# float32 tensor asks for 16 GB, repeat_interleave(x, 2**31) for 8 GB (and
# until session 8 16 GB more for an int64 index of the output's length),
# tile(x, 2**31) of a few bytes for gigabytes.  On Linux the default overcommit heuristic grants
# any single request below RAM + swap (23 GB here), and the op then writes
# every byte: one such example took a 5,000-example run to 24 GB resident and
# the OOM killer (under `ulimit -v` the same request failed cleanly, which is
# why capped runs never reproduced it).  So every example runs with its address
# space capped at what it uses when it starts plus TAPEGRAD_FUZZ_MEMORY_MB
# (default 512; 0 turns the cap off): such a request must then fail as a clean
# MemoryError -- which the rules accept and check -- instead of growing the
# process.  Not under AddressSanitizer (TAPEGRAD_SANITIZED=1), whose shadow
# memory needs a huge address space: there ASAN_OPTIONS' max_allocation_size_mb
# is the bound.  (The cap itself: memory_cap.py, shared with test_fuzz_regressions.)
MEMORY_MB = int(os.environ.get("TAPEGRAD_FUZZ_MEMORY_MB", "512"))


def _asan_allocation_cap():
    """Bytes above which one allocation fails under AddressSanitizer
    (ASAN_OPTIONS' max_allocation_size_mb with allocator_may_return_null=1,
    as tests/sanitize.sh sets them); None when not sanitized or not set."""
    if not os.environ.get("TAPEGRAD_SANITIZED"):
        return None
    opts = dict(kv.split("=", 1) for kv in os.environ.get("ASAN_OPTIONS", "").split(":") if "=" in kv)
    if opts.get("allocator_may_return_null") != "1" or "max_allocation_size_mb" not in opts:
        return None
    return int(opts["max_allocation_size_mb"]) << 20


@pytest.fixture(autouse=True)
def _address_space_restored():
    """Whatever an example did, the tests after this one get the limit back."""
    import resource
    old = resource.getrlimit(resource.RLIMIT_AS)
    yield
    resource.setrlimit(resource.RLIMIT_AS, old)


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _log(kind, **info):
    if LOG:
        import resource
        import time
        m = tg.memory_stats()
        with open(LOG, "a") as f:
            f.write(f"{time.time():.3f} {kind} rss={_rss_mb():.0f} "
                    f"maxrss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
                    f"live={m['live_bytes'] >> 20} peak={m['peak_bytes'] >> 20} "
                    + " ".join(f"{k}={v!r}" for k, v in info.items()) + "\n")


def _logged(fn):
    """A rule that logs its name, its arguments' shapes and the memory after it."""
    import functools

    @functools.wraps(fn)
    def run(self, **kw):
        tg.reset_peak_memory()
        shapes_ = {k: (v.shape, str(v.dtype)) if isinstance(v, tg.Tensor) else v for k, v in kw.items()
                   if k != "data"}
        _log("rule", name=fn.__name__, args=shapes_)
        try:
            return fn(self, **kw)
        finally:
            _log("end", name=fn.__name__)
    return run


_EXAMPLES_SEEN = [0, None]


def _trace_python_heap():
    """TAPEGRAD_FUZZ_TRACEMALLOC=N: every N examples, the Python heap traced
    by tracemalloc and where it grew since the first snapshot (by file), to
    tell Python objects that pile up from memory allocated in C."""
    every = int(os.environ.get("TAPEGRAD_FUZZ_TRACEMALLOC", "0"))
    if not every:
        return
    import tracemalloc
    _EXAMPLES_SEEN[0] += 1
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
        _EXAMPLES_SEEN[1] = tracemalloc.take_snapshot()
        return
    if _EXAMPLES_SEEN[0] % every == 0:
        snap = tracemalloc.take_snapshot()
        top = snap.compare_to(_EXAMPLES_SEEN[1], "filename")[:6]
        _log("pyheap", traced=tracemalloc.get_traced_memory()[0] >> 10,
             growth=[(str(d.traceback[0].filename)[-60:], d.size_diff >> 10) for d in top])


def documented(exc, *names):
    """The exception is a documented type and, for an op, names it."""
    if isinstance(exc, MemoryError):
        _log("memoryerror", msg=str(exc)[:200])
    assert isinstance(exc, DOCUMENTED), f"undocumented exception {type(exc).__name__}: {exc}"
    msg = str(exc).lower()
    if names:
        assert any(n.lower() in msg for n in names), f"{names} not named in {exc!r}"


def as_np(t):
    return np.array(t.numpy(), copy=True)


def same(got, want, rtol):
    """Values agree (NaN where NumPy has NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "iu" and got.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                                   atol=rtol, equal_nan=True)


def tol(*ts):
    return 1e-4 if any(t.dtype == tg.float32 for t in ts) else 1e-9


BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.true_divide),
    "maximum": (tg.maximum, np.maximum), "minimum": (tg.minimum, np.minimum),
    "lt": (lambda a, b: a < b, np.less), "eq": (lambda a, b: a == b, np.equal),
}
UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin,
    "cos": np.cos, "tanh": np.tanh, "neg": np.negative, "relu": None, "sigmoid": None,
    "softplus": None, "gelu": None, "erf": None,
}
REDUCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}



# ---- every registry op from Python (issue 14) --------------------------------
# The op's public function (tg.NAME, tg.nn.functional.NAME, tg.linalg.NAME)
# and its parameters, read from the first line of its docstring
# ("cumsum(x, axis=None, dtype=None)"), so that a new op joins the fuzzer
# without a line here.

def _public(name):
    import ast
    import inspect
    import tapegrad.nn.functional as F
    alias = {"bce_with_logits": (F, "binary_cross_entropy_with_logits")}
    mod, fname = alias.get(name, (None, name))
    fn = getattr(mod, fname, None) if mod else None
    for m in (tg, F, tg.linalg):
        fn = fn or getattr(m, fname, None) or (getattr(m, fname[7:], None) if fname.startswith("linalg_")
                                               else None)
    if fn is None:
        return None
    try:
        sig = inspect.signature(fn)
        names = [(q.name, q.kind == q.VAR_POSITIONAL, q.default is q.empty and q.kind <= q.POSITIONAL_OR_KEYWORD,
                  q.kind == q.KEYWORD_ONLY) for q in sig.parameters.values() if q.kind != q.VAR_KEYWORD]
    except (TypeError, ValueError):  # a C function: its docstring's first line
        line = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        try:
            args = ast.parse(f"def f({line.split('(', 1)[1].rsplit(')', 1)[0]}): pass").body[0].args
        except (SyntaxError, IndexError):
            return None
        pos = args.posonlyargs + args.args
        ndef = len(pos) - len(args.defaults)
        names = [(a.arg, False, i < ndef, False) for i, a in enumerate(pos)]
        if args.vararg:
            names.append((args.vararg.arg, True, False, False))
        names += [(a.arg, False, False, True) for a in args.kwonlyargs]
    return fn, names


PUBLIC_OPS = sorted(n for n in (o["name"] for o in tg.ops() if o["signature"] != "internal")
                    if _public(n) is not None)

_TENSORISH = {"a", "b", "x", "y", "input", "bias", "target", "index", "indices", "src", "mask",
              "condition", "other", "query", "key", "attn_mask", "labels", "x1", "x2", "end",
              "operands", "tensors"}
_AXES = {"axis", "axis1", "axis2", "axes"}
_BOOLS = {"align_corners", "antialias", "as_tuple", "ceil_mode", "count_include_pad", "descending",
          "equal_nan", "include_self", "is_causal", "keepdims", "largest", "log_target",
          "return_indices", "sorted", "stable", "training", "unbiased", "recompute_scale_factor"}
_FLOATS = {"alpha", "beta", "atol", "rtol", "eps", "delta", "dropout_p", "label_smoothing", "max",
           "min", "max_val", "min_val", "nan", "posinf", "neginf", "negative_slope", "p", "scale",
           "threshold", "constant_values", "value", "weight", "scale_factor", "ord"}
_STRINGS = {"approximate": ["tanh", "none"], "mode": ["nearest", "bilinear", "reflect", "replicate",
                                                     "circular", "constant", "fro", "nuc"],
            "reduce": ["sum", "prod", "mean", "amax", "amin"], "reduction": ["mean", "sum", "none"],
            "rounding_mode": ["trunc", "floor", None], "subscripts": ["ij,jk->ik", "ii", "i,i", "...i->i",
                                                                    "ij->ji", "bij,bjk->bik"]}
# extreme integers: int64's bounds and past them, int32's, the overflow points of products
_BIG_INTS = [2**62, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 2**31, -(2**31) - 1, 2**40]


def _an_int(draw):
    v = draw(st.one_of(st.integers(-3, 6), st.sampled_from(_BIG_INTS)))
    wrap = draw(st.sampled_from(["int", "int", "int", "np.int64", "np.int32", "np.uint8", "bool"]))
    if wrap == "np.int64" and -(2**63) <= v < 2**63:
        return np.int64(v)
    if wrap == "np.int32" and -(2**31) <= v < 2**31:
        return np.int32(v)
    if wrap == "np.uint8" and 0 <= v < 256:
        return np.uint8(v)
    if wrap == "bool":
        return bool(v % 2)
    return v


def _an_arg(draw, name, pool):
    """A value for the parameter `name`: mostly of the right kind (so that the
    call gets past the first checks), sometimes of another."""
    kind = draw(st.sampled_from(["right"] * 6 + ["int", "float", "tuple", "none", "str", "tensor"]))
    if kind == "right":
        if name in _TENSORISH:
            kind = "tensor"
        elif name in _AXES:
            kind = draw(st.sampled_from(["int", "int", "tuple", "none"]))
        elif name in _BOOLS:
            return draw(st.sampled_from([True, False, np.bool_(True), None]))
        elif name in _FLOATS:
            return draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                  st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e-5, 2.0])).map(
                draw(st.sampled_from([float, np.float64, lambda v: v,
                                      lambda v: np.float32(v) if abs(v) < 1e38 else v]))))
        elif name in _STRINGS:
            v = draw(st.sampled_from(_STRINGS[name] + ["bogus"]))
            # a NUL or a lone surrogate after a right value: C strings end at
            # the NUL ("mean\0x" was read as "mean"), the surrogate has no UTF-8
            tail = draw(st.sampled_from(["", "", "", "", "\x00", "\x00x", "\udc80"]))
            return v + tail if isinstance(v, str) else v
        elif name == "dtype":
            return draw(st.sampled_from(DTYPES + [None, np.float32, "float64", "bogus"]))
        else:  # sizes, counts, kernel/stride/padding/dilation/groups, offsets, shapes
            kind = draw(st.sampled_from(["int", "int", "tuple"]))
    if kind == "tensor":
        return draw(st.sampled_from(pool)) if pool else 1.0
    if kind == "int":
        return _an_int(draw)
    if kind == "float":
        return draw(st.sampled_from([0.5, float("nan"), float("inf"), np.float64(2.0), -0.0]))
    if kind == "tuple":
        return tuple(_an_int(draw) for _ in range(draw(st.integers(0, 4))))
    if kind == "str":
        return "bogus"
    return None


def _check_result(r, name):
    """A tensor (or a tuple/list of them, or a Python value) that is well
    formed: its shape, its dtype and its values can be read."""
    if isinstance(r, (tuple, list)):
        for x in r:
            _check_result(x, name)
        return
    if isinstance(r, tg.Tensor):
        assert all(isinstance(n, int) and n >= 0 for n in r.shape), (name, r.shape)
        assert r.dtype in DTYPES, (name, r.dtype)
        a = r.numpy()
        assert a.shape == r.shape and a.size == int(np.prod(r.shape)), name


class APIMachine(RuleBasedStateMachine):
    tensors = Bundle("tensors")

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.op_cursor = None
        self.address_space = cap_address_space(MEMORY_MB)  # (restored by teardown)

    # ---- making tensors ---------------------------------------------------

    @rule(target=tensors, shape=shapes, dt=st.sampled_from(DTYPES), rg=st.booleans(),
          kind=st.sampled_from(["randn", "zeros", "from_numpy", "special", "arange"]))
    def create(self, shape, dt, rg, kind):
        n = int(np.prod(shape)) if shape else 1
        if kind == "randn":
            a = self.rng.normal(size=shape) * 3
        elif kind == "zeros":
            a = np.zeros(shape)
        elif kind == "special":
            a = self.rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 1e300], size=shape)
        else:
            a = np.arange(n, dtype=np.float64).reshape(shape) - n / 2
        np_dt = np.dtype(dt)
        if np_dt.kind in "iub":
            a = np.nan_to_num(a, nan=0.0, posinf=7.0, neginf=-7.0).clip(-1e6, 1e6)
        with np.errstate(all="ignore"):  # rng.normal(size=()) is a scalar, not an array
            a = np.asarray(a).astype(np_dt)
        try:
            t = tg.from_numpy(a, requires_grad=rg) if kind == "from_numpy" else \
                tg.tensor(a, dtype=dt, requires_grad=rg)
        except DOCUMENTED as e:
            assert rg and np_dt.kind != "f", e  # only an integer or bool tensor asked to require grad
            documented(e, np_dt.name, "requires_grad", "float")
            t = tg.tensor(a, dtype=dt)
        assert t.shape == shape and t.dtype == np_dt
        same(t.numpy(), a, 0)
        return t

    @rule(target=tensors, t=tensors, kind=st.sampled_from(["T", "flip", "step", "bcast", "reshape",
                                                           "unsqueeze", "squeeze", "index", "numpy"]),
          data=st.data())
    def view(self, t, kind, data):
        a = as_np(t)
        try:
            if kind == "T":
                r, w = t.T, a.T
            elif kind == "flip":
                key = tuple(slice(None, None, -1) for _ in range(t.ndim))
                r, w = t[key], a[key]
            elif kind == "step":
                key = tuple(slice(data.draw(st.integers(-5, 5)), data.draw(st.integers(-5, 5)),
                                  data.draw(st.sampled_from([1, 2, -1, -3]))) for _ in range(t.ndim))
                r, w = t[key], a[key]
            elif kind == "bcast":
                shape = data.draw(shapes)
                try:
                    w = np.broadcast_to(a, shape)
                except ValueError:
                    with pytest.raises(DOCUMENTED) as info:
                        t.broadcast_to(shape)
                    documented(info.value, "broadcast")
                    return t
                r = t.broadcast_to(shape)
            elif kind == "reshape":
                shape = data.draw(shapes)
                try:
                    w = a.reshape(shape)
                except ValueError:
                    with pytest.raises(DOCUMENTED) as info:
                        t.reshape(shape)
                    documented(info.value, "reshape")
                    return t
                r = t.reshape(shape)
            elif kind == "unsqueeze":
                ax = data.draw(small_axis)
                try:
                    w = np.expand_dims(a, ax)
                except (ValueError, np.exceptions.AxisError):
                    with pytest.raises(DOCUMENTED) as info:
                        t.unsqueeze(ax)
                    documented(info.value, "unsqueeze", "axis")
                    return t
                r = t.unsqueeze(ax)
            elif kind == "squeeze":
                r, w = t.squeeze(), a.squeeze()
            elif kind == "index":
                if t.ndim == 0:
                    return t
                i = data.draw(st.integers(-6, 6))
                if -t.shape[0] <= i < t.shape[0]:
                    r, w = t[i], a[i]
                else:
                    with pytest.raises(IndexError) as info:
                        t[i]
                    documented(info.value, "index")
                    return t
            else:  # a NumPy view of the tensor back through from_numpy
                n = t.numpy()
                r, w = tg.from_numpy(n), a
        except DOCUMENTED as e:  # a documented refusal is fine; a crash is not
            documented(e)
            return t
        same(r.numpy(), w, 0)
        return r

    # ---- ops ----------------------------------------------------------------

    @rule(target=tensors, a=tensors, b=tensors, name=st.sampled_from(sorted(BINARY)))
    def binary(self, a, b, name):
        f, npf = BINARY[name]
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                want = npf(as_np(a), as_np(b))
        except Exception:
            want = None
        try:
            with np.errstate(all="ignore"):
                r = f(a, b)
        except DOCUMENTED as e:
            documented(e, name, "broadcast")
            assert want is None or want.shape != np.broadcast_shapes(a.shape, b.shape) or \
                "broadcast" not in str(e), e
            return a
        assert want is not None, f"{name} accepted shapes NumPy refuses: {a.shape}, {b.shape}"
        if name == "div" or want.dtype.kind == "f":
            same(r.numpy(), want, tol(a, b))
        else:
            same(r.numpy(), want.astype(np.dtype(r.dtype)), 0)
        return r

    @rule(target=tensors, t=tensors, name=st.sampled_from(sorted(UNARY)))
    def unary(self, t, name):
        try:
            with np.errstate(all="ignore"):
                r = getattr(tg, name)(t)
        except DOCUMENTED as e:
            documented(e, name)
            assert t.dtype.kind != "f", e  # some ops refuse integers or bools, nothing refuses floats
            return t
        npf = UNARY[name]
        if npf is not None and t.dtype.kind == "f":
            with np.errstate(all="ignore"):
                same(r.numpy(), npf(as_np(t)), tol(t))
        assert r.shape == t.shape
        return r

    @rule(target=tensors, t=tensors, name=st.sampled_from(sorted(REDUCE)),
          axis=st.one_of(st.none(), small_axis), keep=st.booleans())
    def reduce(self, t, name, axis, keep):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                want = REDUCE[name](as_np(t), axis=axis, keepdims=keep)
        except Exception:
            want = None
        try:
            r = getattr(t, name)(axis=axis, keepdims=keep)
        except DOCUMENTED as e:
            documented(e, name)
            return t
        if want is not None:
            same(r.numpy(), want, tol(t) * 10)
        return r

    @rule(target=tensors, a=tensors, b=tensors)
    def matmul(self, a, b):
        try:
            with np.errstate(all="ignore"):
                want = as_np(a) @ as_np(b)
        except Exception:
            want = None
        try:
            with np.errstate(all="ignore"):
                r = a @ b
        except DOCUMENTED as e:
            documented(e, "matmul")
            return a
        assert want is not None, f"matmul accepted {a.shape} @ {b.shape}"
        # Where a dot product meets an infinity or can overflow (the pool holds
        # inf and 1e300), its value depends on the order of the sum: (inf +
        # -1e300) + -1e300 is inf, inf + (-1e300 + -1e300) is NaN, and a packed
        # GEMM adds in another order than NumPy's BLAS (as PyTorch's does).  So
        # float results are compared where |a| @ |b| stays below half the
        # dtype's largest value (no partial sum can overflow, no term is inf or
        # NaN); integer sums are exact in any order and compared everywhere.
        got = np.asarray(r.numpy())
        want = np.asarray(want)
        if got.dtype.kind == "f":
            with np.errstate(all="ignore"):
                mag = np.abs(as_np(a).astype(np.float64)) @ np.abs(as_np(b).astype(np.float64))
            keep = np.broadcast_to(np.asarray(mag < np.finfo(got.dtype).max / 2), got.shape)
            got, want = got[keep], want[keep]
        same(got, want, 1e-3 if (a.dtype == tg.float32 or b.dtype == tg.float32) else 1e-8)
        return r

    @rule(target=tensors, t=tensors, fn=st.sampled_from(["softmax", "log_softmax", "logsumexp"]),
          axis=small_axis)
    def softmax(self, t, fn, axis):
        # the pool holds inf, -inf and NaN ("special"): the answers must be
        # those of NumPy's max-shifted formulas, which are PyTorch's (issue 15)
        try:
            with np.errstate(all="ignore"):
                r = getattr(tg, fn)(t, axis=axis)
        except DOCUMENTED as e:
            documented(e, fn)
            return t
        a = as_np(t).astype(np.float64)
        if a.size:
            ax = axis % max(a.ndim, 1) if a.ndim else None
            with np.errstate(all="ignore"):
                m = np.max(a, axis=ax, keepdims=True)
                if fn == "logsumexp":
                    m0 = np.where(np.isinf(m), 0.0, m)
                    want = (np.log(np.sum(np.exp(a - m0), axis=ax, keepdims=True)) + m0)
                    want = want.reshape(r.shape)
                else:
                    lse = np.log(np.sum(np.exp(a - m), axis=ax, keepdims=True)) + m
                    want = a - lse if fn == "log_softmax" else np.exp(a - lse)
            # x - logsumexp(x) is rounded at the magnitude of its row's x (float32:
            # an ulp of 65536 is 0.008), so the absolute tolerance grows with the
            # largest finite |x| of each row, not of the whole tensor: one 1e300
            # made the tolerance of every row about 1e285 (and overflowed
            # NumPy's rtol * |want|), a check that could not fail
            rt = tol(t) * 10
            eps = float(np.finfo(np.dtype(t.dtype)).eps) if t.dtype.kind == "f" else 0.0
            with np.errstate(all="ignore"):
                fin = np.where(np.isfinite(a), np.abs(a), 0.0)
                mag = np.max(fin, axis=ax, keepdims=True) if a.ndim else fin
                at = np.broadcast_to(rt + 4 * eps * mag, a.shape)
                if fn == "logsumexp":
                    at = np.max(at, axis=ax, keepdims=True).reshape(r.shape) if a.ndim else at
                got = r.numpy().astype(np.float64)
                ok = np.isclose(got, want, rtol=rt, atol=at, equal_nan=True)
            assert ok.all(), (fn, axis, a, got, want)
        return r

    @rule(t=tensors, eps=st.sampled_from([1e-5, 0.0]))
    def layer_norm(self, t, eps):
        if t.ndim < 1 or t.shape[-1] == 0:
            return
        ln = tg.nn.LayerNorm(t.shape[-1], eps=eps, elementwise_affine=False)
        if np.dtype(t.dtype).kind != "f":  # integer and bool tensors are refused, naming the op
            with pytest.raises(TypeError, match="layer_norm"):
                ln(t)
            return
        with np.errstate(all="ignore"):
            r = as_np(ln(t)).astype(np.float64)
            a = as_np(t).astype(np.float64)
            var = a.var(-1, keepdims=True)
            want = (a - a.mean(-1, keepdims=True)) / np.sqrt(var + eps)
        # rows holding inf or NaN are NaN throughout (as in PyTorch); rows of
        # finite values agree where the variance is not lost to rounding
        bad = ~np.isfinite(a).all(-1, keepdims=True)
        assert np.isnan(r[np.broadcast_to(bad, r.shape)]).all()
        with np.errstate(all="ignore"):
            big = 1e-4 * (1 + np.abs(a).max(-1, keepdims=True) ** 2)
        well = np.broadcast_to(~bad & (var > big), r.shape)
        same(r[well], want[well], 1e-2 if t.dtype == tg.float32 else 1e-7)

    @rule(t=tensors, data=st.data())
    def pow_zero_base(self, t, data):
        # zero bases (and a zero exponent): PyTorch's gradients, which mask the
        # 0 * inf and log(0) terms (issue 15)
        if t.dtype == tg.int64:
            return
        e = as_np(t).astype(np.float64)
        base0 = data.draw(st.booleans())
        x = tg.tensor(np.zeros(e.shape) if base0 else np.abs(e), dtype=tg.float64,
                      requires_grad=True)
        y = tg.tensor(e, dtype=tg.float64, requires_grad=True)
        with np.errstate(all="ignore"):
            gx, gy = tg.grad((x ** y).sum(), [x, y])
            xv, yv = as_np(x), e
            c = xv ** yv
            want_x = np.where(yv == 0, 0.0, yv * xv ** (yv - 1))
            want_y = np.where((xv == 0) & (yv >= 0), 0.0, c * np.log(xv))
        same(gx.numpy(), want_x, 1e-9)
        same(gy.numpy(), want_y, 1e-9)

    # ---- several tensors over one buffer, duplicated arguments, big ints ----

    @rule(t=tensors, how=st.sampled_from(["same", "view", "numpy"]))
    def shared_buffer(self, t, how):
        # two tensors over one memory share one version counter: a write
        # through either one after the other was saved is caught (issue 15)
        if t.dtype == tg.int64 or t.numel() == 0:
            return
        a = np.ascontiguousarray(as_np(t), dtype=np.float64)  # reshape(-1) is then a view
        if how == "same":
            t1, t2 = tg.from_numpy(a), tg.from_numpy(a)
        elif how == "view":
            t1, t2 = tg.from_numpy(a.reshape(-1)[::-1]), tg.from_numpy(a)
        else:
            base = tg.from_numpy(a)
            t1, t2 = base, tg.from_numpy(base.numpy())
        w = tg.ones(t1.shape, dtype=tg.float64, requires_grad=True)
        y = (w * t1).sum()
        with tg.no_grad():
            t2 += 1.0
        with pytest.raises(RuntimeError) as info:
            y.backward()
        documented(info.value, "modified in place")

    @rule(t=tensors, k=st.integers(2, 3))
    def duplicated_arguments(self, t, k):
        if t.dtype == tg.int64:
            return
        x = tg.tensor(as_np(t), dtype=tg.float64, requires_grad=True)
        with np.errstate(all="ignore"):
            gs = tg.grad((x * x).sum(), [x] * k)
            (g1,) = tg.grad((x * x).sum(), [x])
        assert len(gs) == k
        for g in gs:
            same(g.numpy(), g1.numpy(), 0)
        # an optimizer given the same tensor twice steps it once
        if t.numel() and np.isfinite(as_np(x)).all():
            p = tg.tensor(as_np(x), dtype=tg.float64, requires_grad=True)
            q = tg.tensor(as_np(x), dtype=tg.float64, requires_grad=True)
            with pytest.warns(UserWarning, match="more than once"):
                opt = tg.optim.SGD([p] * k, lr=0.5)
            ref = tg.optim.SGD([q], lr=0.5)
            p.grad = tg.ones_like(p)
            q.grad = tg.ones_like(q)
            opt.step()
            ref.step()
            same(p.numpy(), q.numpy(), 0)

    @rule(t=tensors, big=st.sampled_from([2**63, -(2**63) - 1, 2**70, -(2**100)]),
          how=st.sampled_from(["setitem", "fill", "iadd", "full", "tensor", "index"]))
    def int_past_int64(self, t, big, how):
        # never stored silently as INT64_MIN: a documented error naming the op
        ti = tg.zeros(3, dtype=tg.int64)
        try:
            if how == "setitem":
                ti[0] = big
            elif how == "fill":
                ti.fill_(big)
            elif how == "iadd":
                with tg.no_grad():
                    ti += big
            elif how == "full":
                tg.full((2,), big)
            elif how == "tensor":  # ([1, 2**63] is float64 for NumPy: not this case)
                tg.tensor([big])
            else:
                t[big]
        except (OverflowError, IndexError) as e:
            assert str(e).split(":")[0] in ("setitem", "fill_", "int64", "full", "tensor",
                                            "index"), e
        else:
            raise AssertionError(f"{how} with {big} did not raise")
        assert ti.numpy().tolist() == [0, 0, 0]

    @rule(t=tensors, data=st.data())
    def loss(self, t, data):
        if t.ndim != 2:
            return
        n, c = t.shape
        labels = tg.tensor(data.draw(st.lists(st.integers(-1, c), min_size=n, max_size=n)),
                           dtype=tg.int64).reshape(n)
        try:
            with np.errstate(all="ignore"):
                l = tg.cross_entropy(t, labels)
            if l.requires_grad:
                l.backward()
        except DOCUMENTED as e:
            documented(e, "cross_entropy", "backward")

    # ---- autograd -----------------------------------------------------------

    @rule(t=tensors, retain=st.booleans(), seeded=st.booleans())
    def backward(self, t, retain, seeded):
        try:
            with np.errstate(all="ignore"):
                if seeded:
                    t.backward(tg.ones_like(t), retain_graph=retain)
                else:
                    t.sum().backward(retain_graph=retain) if t.requires_grad else t.backward()
        except DOCUMENTED as e:
            documented(e, "backward", "grad", "sum")

    @rule(a=tensors)
    def grad_of_leaf(self, a):
        if not a.requires_grad:
            return
        try:
            with np.errstate(all="ignore"):
                (g,) = tg.grad((a * a).sum(), [a])
            assert g.shape == a.shape
        except DOCUMENTED as e:
            documented(e, "grad", "backward")

    @rule(t=tensors, value=st.floats(allow_nan=True, allow_infinity=True), nograd=st.booleans(),
          how=st.sampled_from(["iadd", "fill", "setitem", "numpy"]))
    def write(self, t, value, nograd, how):
        try:
            if nograd:
                with tg.no_grad():
                    self._write(t, value, how)
            else:
                self._write(t, value, how)
        except DOCUMENTED as e:
            # read-only memory, a tensor requiring grad, a broadcast view, an
            # alias locked for backward (NumPy's own read-only ValueError)
            documented(e, how, "iadd", "fill", "setitem", "read-only", "requires grad",
                       "broadcast", "grad", "cannot", "integer", "int64", "nan")

    @staticmethod
    def _write(t, value, how):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if how == "iadd":
                t += value
            elif how == "fill":
                t.fill_(value)
            elif how == "setitem":
                t[...] = value
            else:
                try:
                    t.numpy()[...] = value
                except OverflowError:  # NumPy's own rule for int64 arrays, not ours
                    pass

    @rule(t=tensors)
    def roundtrip(self, t):
        a = t.numpy()
        assert a.shape == t.shape
        b = np.asarray(t)
        np.testing.assert_array_equal(a, b)
        c = tg.tensor(a)
        same(c.numpy(), a, 0)
        assert t.tolist() == a.tolist() or np.isnan(a).any()
        if a.size and a.flags.writeable:
            assert np.shares_memory(a, b)

    # ---- bad calls ------------------------------------------------------------

    @rule(t=tensors, bad=st.sampled_from([
        ("sum", {"axis": "x"}), ("sum", {"axis": (0, 0)}), ("sum", {"axis": 99}),
        ("reshape", ((-1, -1),)), ("reshape", ((-2,),)), ("transpose", (0, 7)),
        ("astype", ("complex128",)), ("astype", (None, 3)), ("permute", ((0, 0, 0),)),
        ("__getitem__", ("key",)), ("__getitem__", ((0.5,),)), ("__getitem__", ((None, 1, 2, 3, 4, 5, 6),)),
        ("__matmul__", ("text",)), ("__add__", ([[1, 2], [3]],)), ("broadcast_to", ((-1,),)),
        ("softmax", {"axis": 1.5}), ("var", {"ddof": "one"}), ("clip", ("lo", "hi")),
        ("gather", (0, "idx")), ("index_select", (9, None)), ("unsqueeze", (2**62,)),
        ("flatten", (3, 0)), ("max", {"axis": (0, 1, 2, 3, 4, 5, 6, 7, 8)}),
    ]))
    def bad_call(self, t, bad):
        name, args = bad
        kwargs = args if isinstance(args, dict) else {}
        args = () if isinstance(args, dict) else args
        try:
            getattr(t, name)(*args, **kwargs)
        except DOCUMENTED as e:
            documented(e)
        except NotImplementedError:  # Python's binary-operator fallback: TypeError upstream
            pass

    @rule(shape=st.lists(st.sampled_from([0, 1, 2**42, 2**62, -1]), min_size=1, max_size=4),
          fn=st.sampled_from(["zeros", "ones", "empty", "randn"]))
    def absurd_sizes(self, shape, fn):
        # only sizes that cannot be allocated (terabytes, or an overflowing
        # count): they must fail at once with MemoryError/ValueError
        if -1 not in shape and max(shape) <= 1:
            return
        if -1 not in shape and 0 in shape and 2**62 not in shape:
            return  # an empty tensor of a sane shape: legitimate
        try:
            getattr(tg, fn)(*shape)
        except DOCUMENTED as e:
            documented(e, fn, "empty", "shape", "dimension", "memory", "allocat", "too")

    @rule(fn=st.sampled_from(["zeros", "ones", "empty", "randn", "full", "pad", "repeat_interleave"]),
          log2=st.integers(29, 31), dt=st.sampled_from([tg.float32, tg.float64, tg.uint8]))
    def huge_but_allowed(self, fn, log2, dt):
        # 0.5-16 GB: sizes the kernel grants (see MEMORY_MB), well above the
        # cap of this example; they must fail as a MemoryError, with the process
        # no bigger afterwards and no tensor memory left behind
        import resource
        n = 2**log2
        dt = tg.float32 if fn == "randn" and dt == tg.uint8 else dt
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        room = None if soft == resource.RLIM_INFINITY else soft - vm
        if _asan_allocation_cap() is not None:  # under ASan: its bound on one allocation
            room = _asan_allocation_cap()
        if room is None or n * np.dtype(dt).itemsize < 2 * room:
            return  # no cap, or not far above it: not asked for
        x = tg.ones(1, dtype=dt)
        live, rss = tg.memory_stats()["live_bytes"], _rss_mb()
        with pytest.raises(MemoryError) as info:
            if fn == "full":
                tg.full((n,), 1, dtype=dt)
            elif fn == "pad":
                tg.pad(x, n)
            elif fn == "repeat_interleave":
                tg.repeat_interleave(x, n)
            else:
                getattr(tg, fn)(n, dtype=dt)
        documented(info.value, fn, "memory")
        assert tg.memory_stats()["live_bytes"] <= live  # (gc may free others meanwhile)
        assert _rss_mb() < rss + 64

    # ---- every public op, with adversarial arguments (issue 14) -------------

    @rule(t=tensors, data=st.data())
    def any_op(self, t, data):
        """Ops of the registry through their public function (or the Tensor
        method of the same name), their arguments drawn by parameter name:
        tensors of the pool, axes as ints, NumPy ints, tuples, None and
        past int64, PyTorch's keyword aliases (dim=, keepdim=), NaN/Inf
        floats, bad strings.  Any answer is well formed, any failure a
        documented exception; then backward through the result.  Up to 8
        ops per step, taken in turn from a drawn starting point, so that a
        run reaches every op rather than a few."""
        draw = data.draw
        if self.op_cursor is None:  # (hashed: Hypothesis draws small integers more often)
            self.op_cursor = draw(st.integers(0, 2**32)) * 2654435761 % len(PUBLIC_OPS)
        pool = [t] + [draw(self.tensors) for _ in range(2)]
        for _ in range(draw(st.integers(1, 8))):
            name = PUBLIC_OPS[self.op_cursor % len(PUBLIC_OPS)]
            self.op_cursor += 1
            self._call_op(name, pool, draw)

    def _call_op(self, name, pool, draw):
        t = pool[0]
        fn, params = _public(name)
        args, kwargs, first = [], {}, True
        for pname, var, required, kwonly in params:
            if var:
                one = {"axes": "axis", "shape": "size"}.get(pname, pname)  # (x.permute(*axes))
                args += [_an_arg(draw, one, pool) for _ in range(draw(st.integers(0, 3)))]
                continue
            if not required and draw(st.integers(0, 2)) == 0:
                continue  # left at its default
            v = t if first and pname in _TENSORISH else _an_arg(draw, pname, pool)
            first = False
            if required and not kwonly and not kwargs:
                args.append(v)
            else:
                alias = {"axis": "dim", "keepdims": "keepdim"}.get(pname)
                kwargs[alias if alias and draw(st.booleans()) else pname] = v
        method = args and isinstance(args[0], tg.Tensor) and hasattr(tg.Tensor, name) and draw(st.booleans())
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                r = getattr(args[0], name)(*args[1:], **kwargs) if method else fn(*args, **kwargs)
        except DOCUMENTED + (OverflowError,) as e:
            if isinstance(e, MemoryError):
                _log("memoryerror", op=name, msg=str(e)[:200],
                     args=[(a.shape, str(a.dtype)) if isinstance(a, tg.Tensor) else a for a in args],
                     kwargs={k: (a.shape, str(a.dtype)) if isinstance(a, tg.Tensor) else a
                             for k, a in kwargs.items()})
            assert str(e), (name, args, kwargs)
            assert not isinstance(e, OverflowError) or "int" in str(e), (name, e)
            return
        bad = [a for a in list(args) + list(kwargs.values())
               if isinstance(a, str) and ("\x00" in a or any("\ud800" <= c <= "\udfff" for c in a))]
        assert not bad, (name, "took a str holding a NUL or a lone surrogate", bad)
        _check_result(r, name)
        outs = [x for x in (r if isinstance(r, (tuple, list)) else [r])
                if isinstance(x, tg.Tensor) and x.requires_grad]
        if outs:
            try:
                with np.errstate(all="ignore"):
                    sum(o.sum() for o in outs).backward(retain_graph=draw(st.booleans()))
            except DOCUMENTED as e:
                assert str(e), name

    @invariant()
    def grad_mode_restored(self):
        assert tg.is_grad_enabled()

    def teardown(self):
        restore_address_space(self.address_space)
        if LOG:
            import gc
            import sys
            gc.collect()
            objs = gc.get_objects()
            _log("example", tensors=sum(isinstance(o, tg.Tensor) for o in objs), objects=len(objs),
                 blocks=sys.getallocatedblocks())
            _trace_python_heap()


if LOG:  # (each rule's function, wrapped after @rule has recorded it)
    from hypothesis.stateful import RULE_MARKER as _MARK
    for _f in list(vars(APIMachine).values()):
        if getattr(_f, _MARK, None) is not None:
            getattr(_f, _MARK).function = _logged(getattr(_f, _MARK).function)


def test_public_constructors_without_arguments():
    """Every public class of tapegrad and its subpackages, called with no
    arguments, raises a documented exception or gives an object whose repr
    and public attributes can be read (issue 15: tg.TapeEntry() crashed).
    Run in a child process, so that a crash is a failure, not a dead run."""
    import subprocess
    import sys
    code = r'''
import importlib, inspect, pkgutil, warnings
import tapegrad as tg
mods = [tg, tg._C]
for m in pkgutil.walk_packages(tg.__path__, "tapegrad."):
    if m.name.rsplit(".", 1)[-1].startswith("_") or ".examples" in m.name:
        continue
    try:
        mods.append(importlib.import_module(m.name))
    except Exception:
        pass
seen = set()
count = 0
for mod in mods:
    for name in dir(mod):
        cls = getattr(mod, name)
        if name.startswith("_") and mod is not tg._C or not inspect.isclass(cls) or cls in seen:
            continue
        if issubclass(cls, BaseException) or not (cls.__module__ or "").startswith("tapegrad"):
            continue
        seen.add(cls)
        count += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = cls()
        except (TypeError, ValueError, RuntimeError) as e:
            assert str(e), cls
            continue
        repr(obj)
        for attr in dir(obj):
            if attr.startswith("__"):
                continue
            try:
                getattr(obj, attr)
            except Exception as e:   # a Python exception is fine, a crash is not
                pass
print("classes", count)
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert int(r.stdout.split()[-1]) > 20, r.stdout


APIMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=40, deadline=None, database=None,
    suppress_health_check=list(HealthCheck), print_blob=True)
TestAPIFuzz = APIMachine.TestCase
