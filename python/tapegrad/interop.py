"""Zero-copy exchange with other array libraries through DLPack."""
import numpy as np

from ._C import Tensor, from_numpy


def from_dlpack(x, requires_grad=False):
    """A tensor sharing the memory of any object that implements ``__dlpack__``
    (a PyTorch or JAX CPU tensor, a NumPy array), without a copy.

    >>> import numpy as np, tapegrad as tg
    >>> a = np.arange(3.0)
    >>> t = tg.from_dlpack(a)
    >>> np.shares_memory(t.numpy(), a)
    True
    """
    if isinstance(x, Tensor):
        return x.detach()
    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object implementing the DLPack protocol "
                        f"(__dlpack__ and __dlpack_device__, e.g. a PyTorch tensor or a NumPy "
                        f"array), got {type(x).__name__}")
    try:
        a = np.from_dlpack(x)
    except (TypeError, ValueError, BufferError, RuntimeError) as e:
        raise type(e)(f"from_dlpack: could not import {type(x).__name__} through DLPack "
                      f"(its __dlpack__ must return a DLPack capsule of CPU memory): {e}") from e
    if a.dtype not in (np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8):
        raise TypeError(f"from_dlpack: tensors of dtype {a.dtype} are not supported; tapegrad "
                        f"tensors are float32, float64, int64, int32, uint8 or bool (convert first, e.g. "
                        f"x.float() in PyTorch)")
    return from_numpy(a, requires_grad=requires_grad)

# Tensor.__dlpack__ and __dlpack_device__ (the export side) are in _tensor.py,
# the home of the Tensor methods written in Python.
