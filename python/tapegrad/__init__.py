"""tapegrad: reverse-mode automatic differentiation with a tape you can see."""
from ._C import *  # noqa
from ._C import Tensor, TapeEntry, float32, float64, int64, __version__  # noqa
