"""Learning-rate schedules (PyTorch's ``StepLR`` and ``CosineAnnealingLR``).

Call ``scheduler.step()`` once per epoch, after ``optimizer.step()``.
"""
from __future__ import annotations

import math


class _Scheduler:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def state_dict(self) -> dict:
        """Everything but the optimizer (as PyTorch), for ``tg.save``."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict):
        """Restore a state from ``state_dict()``."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self):
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self._lrs()):
            g["lr"] = lr


class StepLR(_Scheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def _lrs(self):
        k = self.last_epoch // self.step_size
        return [b * self.gamma ** k for b in self.base_lrs]


class CosineAnnealingLR(_Scheduler):
    """lr = eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def _lrs(self):
        t = self.last_epoch
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
                for b in self.base_lrs]
