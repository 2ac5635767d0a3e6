"""tapegrad: reverse-mode automatic differentiation with a tape you can see.

The core (tensors, the tape, every op and its vector-Jacobian product) is C;
this package adds the layers a learner uses: ``tg.nn``, ``tg.optim``,
``tg.data``, ``tg.inspect``, ``tg.testing`` and the Keras-style ``tg.keras``.

>>> import tapegrad as tg
>>> x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> loss = (x * x).sum()
>>> loss.backward()
>>> x.grad.tolist()
[2.0, 4.0, 6.0]
"""
from . import _C
from ._C import float32, float64, int64, int32, uint8, __version__  # noqa: F401

#: The public names of the compiled core that are not registry ops, under the
#: heading of the API page that lists them (the docs read this table; the ops
#: are grouped by the csrc/ops/ file that defines them, Python functions by
#: their module, aliases with what they alias: docs/_ext/tapegrad_docgen.py).
_CORE_NAMES = {
    "Creating tensors": "tensor from_numpy zeros ones empty full rand randn arange eye zeros_like "
                        "ones_like empty_like full_like rand_like randn_like manual_seed Generator "
                        "default_generator randint randperm multinomial",
    "Elementwise: arithmetic and comparisons": "allclose",  # isclose reduced to a Python bool
    "Shapes, views and indexing": "transpose swapaxes squeeze unsqueeze flatten stack sum_to_shape "
                                  "split chunk array_split unbind",  # several results: no registry op
    "Network functions and losses": "binary_cross_entropy_with_logits",  # the op bce_with_logits
    "Autograd": "Tensor TapeEntry grad detach is_grad_enabled set_grad_enabled",
    "Runtime: the op registry, memory and threads": "ops memory_stats empty_cache reset_peak_memory "
                                                    "get_num_threads set_num_threads",
}
globals().update({_n: getattr(_C, _n) for _ns in _CORE_NAMES.values() for _n in _ns.split()})

# Every op of the registry (csrc/ops/oplist.h) that has a Python function of
# its own name: tg.exp, tg.add, tg.sum, tg.softmax, ...  The list is the C
# registry's: a new op's function appears here without an edit.
globals().update({_op["name"]: getattr(_C, _op["name"]) for _op in _C.ops()
                  if _op["signature"] != "internal" and hasattr(_C, _op["name"])})

from . import _tensor  # noqa: F401  (adds the Python-level Tensor methods)
from .autograd import no_grad, enable_grad, Tape, Function, FunctionCtx, override_vjp  # noqa: F401
from .interop import from_dlpack  # noqa: F401
from ._config import config, show_config  # noqa: F401
from .serialization import save, load  # noqa: F401

cat = concat  # PyTorch's name
# elementwise math (issue 14): NumPy's spellings of PyTorch's names
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2  # noqa: F821
arcsinh, arccosh, arctanh = asinh, acosh, atanh  # noqa: F821
mod, true_divide = remainder, div  # noqa: F821
swish = silu  # noqa: F821  (activations, issue 14: silu's other common name)
dtype_names = ("float32", "float64", "int64", "bool", "int32", "uint8")
# shape and indexing (issue 14): NumPy's stacking helpers
from ._shape import (  # noqa: F401,E402
    concatenate, hstack, vstack, dstack, column_stack, atleast_1d, atleast_2d, atleast_3d,
    meshgrid, linspace, logspace,
)

# products and NumPy functions (issue 19): the composites of csrc/ops/npfuncs.c with
# unusual signatures, the splits, NumPy's other names of deg2rad/rad2deg
from ._npfuncs import tensordot, dot, cross, diff, hsplit, vsplit, dsplit  # noqa: F401,E402
radians, degrees = deg2rad, rad2deg  # noqa: F821


def __getattr__(name):
    # the larger layers load on first use, so `import tapegrad` stays fast
    import importlib
    if name in ("nn", "optim", "data", "inspect", "testing", "keras", "examples", "coursework",
                "linalg"):
        return importlib.import_module("." + name, __name__)
    if name in ("detect_anomaly", "set_detect_anomaly"):  # anomaly mode lives in tg.inspect
        return getattr(importlib.import_module(".inspect", __name__), name)
    raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["nn", "optim", "data", "inspect", "testing", "keras", "linalg"])


# tg.bool and tg.bool_ (NumPy's np.bool_, PyTorch's torch.bool): bound last,
# as `bool` would hide the builtin for any code of this module below it.
bool_ = _C.bool
bool = _C.bool  # noqa: A001
