"""Neural-network building blocks: modules, losses, initialisation.

>>> import tapegrad as tg
>>> model = tg.nn.Sequential(tg.nn.Flatten(), tg.nn.Linear(784, 128), tg.nn.ReLU(),
...                          tg.nn.Linear(128, 10))
>>> [n for n, _ in model.named_parameters()]
['1.weight', '1.bias', '3.weight', '3.bias']
"""
from . import functional, init, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv_all
from .activation import *  # noqa: F401,F403  (issue 14: ELU, GELU(approximate=), Softplus(beta, ...), ...)
from .activation import __all__ as _activation_all
# issue 14: losses, layers, attention and recurrent layers (one block)
from . import attention, layers, loss, rnn  # noqa: F401,E402
from .attention import *  # noqa: F401,F403,E402
from .layers import *  # noqa: F401,F403,E402
from .loss import *  # noqa: F401,F403,E402
from .rnn import *  # noqa: F401,F403,E402

__all__ = (_modules_all + _conv_all + _activation_all + attention.__all__ + layers.__all__
           + loss.__all__ + rnn.__all__)
