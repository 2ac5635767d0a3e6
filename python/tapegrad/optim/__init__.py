"""Optimizers whose parameter updates run in C, one call over all parameters.

The update formulas are PyTorch's (see each class). Usage is the same::

    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        opt.zero_grad()
        loss = tg.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable

import numpy as np

from .. import _C
from .._C import Tensor
from . import lr_scheduler  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]


def _state_buf(st, p, key):
    """The buffer ``key`` of parameter p's state dict ``st``, zeros at first."""
    if key not in st:
        st[key] = _C.zeros_like(p)
    return st[key]


class Optimizer:
    """Base class: holds ``param_groups`` (lists of parameters with their
    hyper-parameters) and per-parameter ``state``.

    ``params`` is an iterable of tensors (``model.parameters()``, ``[w, b]``)
    or of dicts with a ``"params"`` key (parameter groups); a bare tensor is a
    ``TypeError``. A tensor listed twice in a group is kept once, with a
    ``UserWarning``, so each ``step()`` updates it once; a tensor in two
    groups is a ``ValueError``."""

    def __init__(self, params: Iterable, defaults: dict):
        name = type(self).__name__
        # a bare tensor is iterable (over its rows): refuse it as PyTorch does,
        # instead of optimising 0-d views that step() never touches
        if isinstance(params, (Tensor, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{name}: params must be an iterable of tensors or dicts, got "
                            f"{type(params).__name__} (pass [w] or model.parameters())")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        if isinstance(params[0], dict):
            groups = [dict(g) for g in params]
        else:
            groups = [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        seen = {}  # id(tensor) -> group index: each tensor is stepped once
        for gi, g in enumerate(groups):
            if not isinstance(g, dict) or "params" not in g:
                raise TypeError(f"{name}: a parameter group must be a dict with a 'params' key, "
                                f"got {type(g).__name__}")
            ps = g["params"]
            if isinstance(ps, Tensor):
                ps = [ps]
            elif isinstance(ps, dict) or not hasattr(ps, "__iter__"):
                raise TypeError(f"{name}: the 'params' of group {gi} must be a tensor or an "
                                f"iterable of tensors, got {type(ps).__name__}")
            unique = []
            for p in ps:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{name}: parameters must be Tensors, got "
                                    f"{type(p).__name__}")
                if not p.requires_grad:
                    raise ValueError(f"{name}: a parameter of shape {p.shape} does "
                                     f"not require grad")
                if id(p) in seen:
                    if seen[id(p)] != gi:
                        raise ValueError(f"{name}: a parameter of shape {p.shape} appears in "
                                         f"parameter groups {seen[id(p)]} and {gi}; each "
                                         f"parameter must be in one group only")
                    warnings.warn(f"{name}: parameter group {gi} contains a parameter of shape "
                                  f"{p.shape} more than once; it is kept once, so each step "
                                  f"updates it once (PyTorch warns the same and plans to make "
                                  f"this an error)", UserWarning, stacklevel=3)
                    continue
                seen[id(p)] = gi
                unique.append(p)
            g["params"] = unique
            for k, v in defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)
        self.state: dict = {}

    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients (to None by default, which also saves memory)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    prev = _C.set_grad_enabled(False)
                    try:
                        p.grad.zero_()
                    finally:
                        _C.set_grad_enabled(prev)

    def _with_grads(self, g):
        ps = [p for p in g["params"] if p.grad is not None]
        return ps, [p.grad for p in ps]

    def _buf(self, p, key):
        return _state_buf(self.state.setdefault(p, {}), p, key)

    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's structure, ready for ``tg.save``::

            {"state": {0: {"exp_avg": tensor, ...}, 1: {...}},
             "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}]}

        Parameters are numbered in the order of the groups (the tensors
        themselves are not included); state tensors are copies. The step
        counts of Adam are Python ints (PyTorch keeps them in tensors).

        >>> import tapegrad as tg
        >>> w = tg.nn.Parameter(tg.ones(2))
        >>> opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> (w * w).sum().backward(); opt.step()
        >>> sd = opt.state_dict()
        >>> sd["param_groups"][0]["params"], list(sd["state"][0])
        ([0], ['momentum_buffer'])
        """
        index: dict = {}
        groups = []
        for g in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.detach().clone() if isinstance(v, Tensor) else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Restore a state saved by ``state_dict()`` (possibly through
        ``tg.save``/``tg.load``) into an optimizer built over the same
        parameters in the same order: the hyper-parameters of each group
        (including a changed ``lr``) and the per-parameter buffers, copied.
        Mismatched groups or buffer shapes raise ``ValueError``.

        >>> import tapegrad as tg
        >>> w = tg.nn.Parameter(tg.ones(2))
        >>> opt = tg.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
        >>> opt2 = tg.optim.Adam([w], lr=0.5)
        >>> opt2.load_state_dict(opt.state_dict())
        >>> opt2.param_groups[0]["lr"], opt2.state[w]["step"]
        (0.1, 1)
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with the keys 'state' and "
                             f"'param_groups' (from optimizer.state_dict()), got "
                             f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"parameter groups, the optimizer has {len(self.param_groups)}")
        by_index = {}
        for k, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {k} has "
                                 f"{len(sg['params'])} parameters in the state dict but "
                                 f"{len(g['params'])} in the optimizer")
            for i, p in zip(sg["params"], g["params"]):
                by_index[int(i)] = p
        new_state = {}
        for i, s in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, which no "
                                 f"parameter group lists")
            st = {}
            for key, v in s.items():
                if key == "step":  # an int here; a 0-d tensor in PyTorch's dicts
                    st[key] = int(v.item() if hasattr(v, "item") else v)
                    continue
                if isinstance(v, (Tensor, np.ndarray)):
                    arr = v.detach().numpy() if isinstance(v, Tensor) else v
                    if tuple(arr.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter {i} "
                                         f"has shape {tuple(arr.shape)}, the parameter has "
                                         f"{tuple(p.shape)}")
                    v = _C.from_numpy(np.array(arr, dtype=p.dtype, copy=True))
                st[key] = v
            new_state[p] = st
        for sg, g in zip(saved_groups, self.param_groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = tuple(v) if k == "betas" else v
        self.state = new_state

    def __repr__(self):
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's rule):

        g = grad + weight_decay * p
        b = momentum * b + (1 - dampening) * g   (b = g on the first step)
        g = g + momentum * b  if nesterov  else  b
        p = p - lr * g
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("SGD: lr, momentum and weight_decay must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        for g in self.param_groups:
            ps, gs = self._with_grads(g)
            if not ps:
                continue
            if g["momentum"] == 0:
                _C._sgd_step(ps, gs, None, g["lr"], 0.0, g["dampening"], g["weight_decay"],
                             g["nesterov"], False)
                continue
            # parameters seeing their first step start their buffer at g (PyTorch's rule)
            is_new = [("momentum_buffer" not in self.state.get(p, {})) for p in ps]
            for first in (True, False):
                sel = [i for i in range(len(ps)) if is_new[i] == first]
                if not sel:
                    continue
                sp = [ps[i] for i in sel]
                bufs = [self._buf(p, "momentum_buffer") for p in sp]
                _C._sgd_step(sp, [gs[i] for i in sel], bufs, g["lr"], g["momentum"],
                             g["dampening"], g["weight_decay"], g["nesterov"], first)


class Adam(Optimizer):
    """Adam (Kingma and Ba), PyTorch's formulation:

        g = grad + weight_decay * p          (AdamW: p = p * (1 - lr * wd) instead)
        m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
        p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid lr/betas/eps ({lr}, {betas}, {eps})")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        state = self.state
        for g in self.param_groups:
            # step counts are per parameter (a parameter without a gradient does
            # not advance), as in PyTorch; one C call per distinct count.  One
            # pass over the parameters (issue 16, the step's fixed cost: 7.4 ->
            # 5.0 us for 8 small parameters, of which the C call 2.7), the same
            # state created in the same order
            by_step: dict = {}
            for p in g["params"]:
                gr = p.grad
                if gr is None:
                    continue
                st = state.get(p)
                if st is None:
                    st = state[p] = {}
                n = st.get("step", 0) + 1
                st["step"] = n
                lists = by_step.get(n)
                if lists is None:
                    lists = by_step[n] = ([], [], [])
                lists[0].append(p)
                lists[1].append(gr)
                lists[2].append(st)
            if not by_step:
                continue
            b1, b2 = g["betas"]
            for n, (sp, sg, sts) in by_step.items():
                ms = [st["exp_avg"] if "exp_avg" in st else _state_buf(st, p, "exp_avg")
                      for st, p in zip(sts, sp)]
                vs = [st["exp_avg_sq"] if "exp_avg_sq" in st else _state_buf(st, p, "exp_avg_sq")
                      for st, p in zip(sts, sp)]
                _C._adam_step(sp, sg, ms, vs, n, g["lr"], b1, b2, g["eps"], g["weight_decay"],
                              self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter):
    ``p = p * (1 - lr * weight_decay)`` before the Adam update."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's rule, non-centered):

        g = grad + weight_decay * p ;  s = alpha s + (1 - alpha) g^2
        b = momentum b + g / (sqrt(s) + eps) ;  p = p - lr * b   (momentum > 0)
        p = p - lr * g / (sqrt(s) + eps)                          (otherwise)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum))

    def step(self):
        for g in self.param_groups:
            ps, gs = self._with_grads(g)
            if not ps:
                continue
            sq = [self._buf(p, "square_avg") for p in ps]
            mb = [self._buf(p, "momentum_buffer") for p in ps] if g["momentum"] > 0 else None
            _C._rmsprop_step(ps, gs, sq, mb, g["lr"], g["alpha"], g["eps"], g["weight_decay"],
                             g["momentum"])
