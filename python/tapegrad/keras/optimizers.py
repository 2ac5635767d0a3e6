"""Keras optimizer names mapped to tg.optim, with Keras's defaults."""
from __future__ import annotations

from .. import optim


class Adam:
    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        self.kw = dict(lr=learning_rate, betas=(beta_1, beta_2), eps=epsilon)

    def make(self, params):
        return optim.Adam(params, **self.kw)


class SGD:
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        self.kw = dict(lr=learning_rate, momentum=momentum, nesterov=nesterov)

    def make(self, params):
        return optim.SGD(params, **self.kw)


class RMSprop:
    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7):
        self.kw = dict(lr=learning_rate, alpha=rho, eps=epsilon)

    def make(self, params):
        return optim.RMSprop(params, **self.kw)


def get(opt):
    if isinstance(opt, str):
        table = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}
        if opt.lower() not in table:
            raise ValueError(f"unknown optimizer {opt!r}; choose one of {sorted(table)}")
        return table[opt.lower()]()
    return opt
