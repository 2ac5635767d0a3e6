"""Every error names the function the user called (the project's rule: a
Python exception naming the op, the shapes and what was expected), checked
for whole classes of calls at once rather than one function at a time:

- every ``tg.nn.functional`` entry, each of its parameters given a value of a
  wrong type (a string, a dict, a bare object): the call either raises an
  exception whose message names the function, or (for flags, which follow
  Python's truth rules as PyTorch's do not) accepts it;
- every module function of the op registry given a string or an object as
  its tensor argument;
- every ``tg.linalg`` function given a NumPy object array (and a string)
  wherever it takes a matrix.

Found by the fuzzing sessions of issue 14: ``conv_transpose2d`` given a
string weight said only "expected a Tensor, a NumPy array, a list or a
number, got str", and ``tg.linalg.inv`` of an object array
"tensor: arrays of dtype dtype('O') are not supported".
"""
from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

F = tg.nn.functional

_X4 = tg.randn(2, 3, 4, 4)


def _valid_call(name):
    """Keyword arguments of one call of F.<name> that succeeds."""
    x4, r3 = _X4, tg.rand(3)
    calls = {
        "adaptive_avg_pool2d": dict(input=x4, output_size=2),
        "avg_pool2d": dict(input=x4, kernel_size=2),
        "max_pool2d": dict(input=x4, kernel_size=2),
        "binary_cross_entropy": dict(input=r3, target=r3),
        "binary_cross_entropy_with_logits": dict(input=r3, target=r3),
        "huber_loss": dict(input=r3, target=r3),
        "kl_div": dict(input=r3, target=r3),
        "l1_loss": dict(input=r3, target=r3),
        "mse_loss": dict(input=r3, target=r3),
        "smooth_l1_loss": dict(input=r3, target=r3),
        "conv1d": dict(input=tg.randn(2, 3, 5), weight=tg.randn(4, 3, 2)),
        "conv2d": dict(input=x4, weight=tg.randn(4, 3, 2, 2)),
        "conv_transpose2d": dict(input=x4, weight=tg.randn(3, 2, 2, 2)),
        "cosine_similarity": dict(x1=tg.randn(2, 3), x2=tg.randn(2, 3)),
        "cross_entropy": dict(input=tg.randn(2, 3), target=tg.tensor([0, 2])),
        "nll_loss": dict(input=tg.randn(2, 3), target=tg.tensor([0, 2])),
        "embedding": dict(input=tg.tensor([0, 2]), weight=tg.randn(3, 4)),
        "group_norm": dict(input=x4, num_groups=3),
        "interpolate": dict(input=x4, size=8),
        "layer_norm": dict(input=x4, normalized_shape=(4,)),
        "linear": dict(input=tg.randn(2, 3), weight=tg.randn(4, 3)),
        "normalize": dict(input=x4),
        "one_hot": dict(labels=tg.tensor([0, 2])),
        "scaled_dot_product_attention": dict(query=tg.randn(2, 3, 4), key=tg.randn(2, 3, 4),
                                             value=tg.randn(2, 3, 4)),
        "pad": dict(input=x4, pad=(1, 1)),
        "glu": dict(x=tg.randn(2, 4)),
    }
    if name == "max_unpool2d":
        out, idx = F.max_pool2d(x4, 2, return_indices=True)
        return dict(input=out, indices=idx, kernel_size=2)
    if name in calls:
        return calls[name]
    first = _params(name)[0]            # the activations: x (or input) alone
    return {first: x4}


def _params(name):
    """The parameter names of F.<name>, from the signature line that starts
    every docstring of the C bindings (inspect.signature cannot read them)."""
    f = getattr(F, name)
    if f.__doc__.startswith(f.__name__ + "("):
        line = f.__doc__.splitlines()[0]
        inside = line[line.index("(") + 1: line.rindex(")")]
        return [p.split("=")[0].strip() for p in inside.split(",")]
    import inspect
    return list(inspect.signature(f).parameters)


def _call(name, kwargs):
    ps = _params(name)
    kwargs = dict(kwargs)
    first = kwargs.pop(ps[0])           # the tensor positionally, as users write it
    return getattr(F, name)(first, **kwargs)


# flags: Python's truth rules (bool("abc") is True), as tg.Tensor's own flags
_FLAGS = {"ceil_mode", "count_include_pad", "return_indices", "training", "log_target",
          "is_causal", "recompute_scale_factor", "align_corners", "antialias"}
_WRONG = ["abc", {"a": 1}, object()]


@pytest.mark.parametrize("name", F.__all__)
def test_functional_wrong_type_names_the_function(name):
    f = getattr(F, name)
    _call(name, _valid_call(name))      # the valid call works, so each error below is the argument's
    raised = 0
    for p in _params(name):
        for bad in _WRONG:
            kwargs = dict(_valid_call(name))
            kwargs[p] = bad
            try:
                _call(name, kwargs)
            except (TypeError, ValueError, IndexError, OverflowError) as e:
                raised += 1
                assert f.__name__ in str(e), (name, p, bad, str(e))
            else:
                assert p in _FLAGS, f"{name}({p}={bad!r}) was accepted"
    assert raised >= len(_WRONG)        # at least the tensor argument was refused


def test_functional_sweep_covers_every_entry():
    # the sweep above takes its names from F.__all__; this guards that it
    # still sees the registry's functional ops (a new op is swept unedited)
    functional = {o["name"] for o in tg._C.ops() if o["functional"] and hasattr(tg._C, o["name"])}
    assert functional <= set(F.__all__)
    assert {"conv_transpose2d", "cross_entropy", "relu", "pad"} <= set(F.__all__)


def test_conv_transpose2d_string_weight_and_stride():
    x, w = tg.randn(1, 2, 4, 4), tg.randn(2, 3, 3, 3)
    with pytest.raises(TypeError, match=r"^conv_transpose2d: .*got str"):
        F.conv_transpose2d(x, "w")
    with pytest.raises(TypeError, match=r"conv_transpose2d.*stride.*'a'"):
        F.conv_transpose2d(x, w, stride="a")
    with pytest.raises(TypeError, match=r"^conv_transpose2d: .*got str"):
        F.conv_transpose2d(x, w, bias="b")


_OPS = sorted({o["name"] for o in tg._C.ops() if callable(getattr(tg._C, o["name"], None))})


@pytest.mark.parametrize("bad", ["abc", object()], ids=["str", "object"])
def test_every_op_function_names_itself_for_a_wrong_tensor(bad):
    unnamed = []
    for name in _OPS:
        try:
            getattr(tg._C, name)(bad)
        except (TypeError, ValueError, IndexError) as e:
            if name not in str(e):
                unnamed.append((name, str(e)))
    assert not unnamed
    assert len(_OPS) > 100


def test_binary_function_refuses_an_unknown_operand():
    # tg.add(t, "abc") returned the NotImplemented object (the operator's
    # protocol value) instead of raising
    for args in [(tg.ones(2), "abc"), ("abc", tg.ones(2)), (2, "abc")]:
        with pytest.raises(TypeError, match=r"^add: unsupported operand type str"):
            tg.add(*args)
    assert tg.add(tg.ones(2), 1).tolist() == [2.0, 2.0]


_LINALG = [n for n in tg.linalg.__all__ if not isinstance(getattr(tg.linalg, n), type)]
_OBJ = np.array([[1, None], [2, 3]], dtype=object)


def _linalg_args(name, bad):
    good = tg.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=tg.float64)
    two = {"solve", "lstsq"}
    if name in two:
        return [(bad, good), (good, bad)]
    if name == "matrix_power":
        return [(bad, 2)]
    return [(bad,)]


@pytest.mark.parametrize("bad", [_OBJ, np.array([None, 1.0], dtype=object), "abc"],
                         ids=["object-matrix", "object-vector", "str"])
@pytest.mark.parametrize("name", _LINALG)
def test_linalg_object_array_names_the_function(name, bad):
    f = getattr(tg.linalg, name)
    for args in _linalg_args(name, bad):
        with pytest.raises((TypeError, ValueError)) as info:
            f(*args)
        assert f"linalg.{name}" in str(info.value), str(info.value)


def test_linalg_sweep_covers_every_function():
    assert {"inv", "det", "solve", "svd", "qr", "norm", "lstsq", "pinv", "cond"} <= set(_LINALG)


def test_linalg_keeps_names_it_already_gives():
    # a message naming the function (or its op) is not prefixed twice
    with pytest.raises(ValueError, match=r"^linalg_inv: expected a square matrix"):
        tg.linalg.inv(tg.ones(2, 3))
    with pytest.raises(ValueError, match=r"^linalg\.solve: A must be"):
        tg.linalg.solve(tg.ones(3), tg.ones(3))
    # and the wrapper keeps the name, docstring and signature for help() and the docs
    import inspect
    assert tg.linalg.inv.__name__ == "inv" and "inverse" in tg.linalg.inv.__doc__
    assert list(inspect.signature(tg.linalg.solve).parameters) == ["A", "B"]


# Requests too large to exist (the byte count overflows, or far beyond any
# machine's memory, so the allocator refuses at once): the MemoryError names
# the function the learner called, then the inner op that found the size.
# Found by the fuzz machine's huge_but_allowed rule: "pad: shape ..." for
# tg.diag, "broadcast_to: ..." for tg.tile, "storage: out of memory ..." with
# no op at all for zeros/ones/full/randn/pad.
_F1 = np.ones(4, np.float32)
_HUGE = [
    ("diag", lambda: tg.diag(tg.tensor(np.ones(4, np.int32)), 2 ** 40)),
    ("tile", lambda: tg.tile(tg.tensor(np.ones(1, bool)), (2 ** 63 - 1,))),
    ("zeros", lambda: tg.zeros((2 ** 61,))),
    ("ones", lambda: tg.ones((2 ** 61,))),
    ("full", lambda: tg.full((2 ** 61,), 1.0)),
    ("randn", lambda: tg.randn(2 ** 61)),
    ("pad", lambda: tg.pad(tg.tensor(_F1), (2 ** 61, 0))),
    ("repeat_interleave", lambda: tg.repeat_interleave(tg.tensor(_F1), 2 ** 60)),
]


@pytest.mark.parametrize("name,call", _HUGE, ids=[n for n, _ in _HUGE])
def test_impossible_allocation_names_the_function(name, call):
    with pytest.raises((MemoryError, ValueError)) as info:
        call()
    assert str(info.value).startswith(name + ":"), str(info.value)
