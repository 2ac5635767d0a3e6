"""Recurrent layers: ``RNNCell``, ``LSTMCell``, ``GRUCell`` and the
multi-layer ``RNN``, ``LSTM``, ``GRU``, with PyTorch's parameter names,
shapes, gate order and initialisation (every weight and bias uniform in
(-1/sqrt(hidden_size), 1/sqrt(hidden_size))), so PyTorch's weights give
PyTorch's outputs and gradients.

They are built from ops (``linear``, slicing, ``sigmoid``, ``tanh``, ``stack``):
the backward through time is the tape's, and the stepper shows every step.
The input projections of all time steps are one ``linear`` each; the loop
over time runs in Python.

>>> import tapegrad as tg
>>> lstm = tg.nn.LSTM(3, 5, num_layers=2, batch_first=True)
>>> out, (h, c) = lstm(tg.randn(4, 7, 3))
>>> out.shape, h.shape, c.shape
((4, 7, 5), (2, 4, 5), (2, 4, 5))
"""
from __future__ import annotations

import math

from .. import _C
from .._parameter import Parameter
from . import functional as F
from . import init
from .modules import Module

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _cell_step(mode, x_proj, h, c, w_hh, b_hh):
    """One step: x_proj = x W_ih^T + b_ih (N, G H) already computed; returns
    (h', c') (c' None except for the LSTM). PyTorch's gate order: LSTM i, f,
    g, o; GRU r, z, n."""
    hh = F.linear(h, w_hh, b_hh)
    H = h.shape[-1]
    if mode == "RNN_TANH":
        return _C.tanh(x_proj + hh), None
    if mode == "RNN_RELU":
        return _C.relu(x_proj + hh), None
    if mode == "LSTM":
        g = x_proj + hh
        i = _C.sigmoid(g[..., 0:H])
        f = _C.sigmoid(g[..., H:2 * H])
        gg = _C.tanh(g[..., 2 * H:3 * H])
        o = _C.sigmoid(g[..., 3 * H:4 * H])
        c2 = f * c + i * gg
        return o * _C.tanh(c2), c2
    # GRU
    r = _C.sigmoid(x_proj[..., 0:H] + hh[..., 0:H])
    z = _C.sigmoid(x_proj[..., H:2 * H] + hh[..., H:2 * H])
    n = _C.tanh(x_proj[..., 2 * H:3 * H] + r * hh[..., 2 * H:3 * H])
    return (1 - z) * n + z * h, None


def _uniform_params(module, shapes, hidden_size, dtype):
    k = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for name, shape in shapes:
        setattr(module, name, Parameter(init._uniform(shape, -k, k, dtype)))


def _check_mode(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


# ---------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------

class _CellBase(Module):
    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = _GATES[self.mode]
        shapes = [("weight_ih", (G * hidden_size, input_size)), ("weight_hh", (G * hidden_size, hidden_size))]
        if bias:
            shapes += [("bias_ih", (G * hidden_size,)), ("bias_hh", (G * hidden_size,))]
        _uniform_params(self, shapes, hidden_size, dtype or _C.float32)
        if not bias:
            object.__setattr__(self, "bias_ih", None)
            object.__setattr__(self, "bias_hh", None)

    def _prepare(self, x, state):
        name = type(self).__name__
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input (N, {self.input_size}) or ({self.input_size},), "
                             f"got {x.shape}")
        unbatched = x.ndim == 1
        if unbatched:
            x = x.unsqueeze(0)
        zero = _C.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        if state is None:
            return x, zero, zero, unbatched
        states = state if isinstance(state, tuple) else (state,)
        states = [s.unsqueeze(0) if unbatched else s for s in states]
        for s in states:
            if s.shape != (x.shape[0], self.hidden_size):
                raise ValueError(f"{name}: expected a hidden state of shape "
                                 f"{(x.shape[0], self.hidden_size)}, got {s.shape}")
        return x, states[0], states[1] if len(states) > 1 else zero, unbatched

    def _step(self, x, h, c):
        return _cell_step(self.mode, F.linear(x, self.weight_ih, self.bias_ih), h, c,
                          self.weight_hh, self.bias_hh)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One step of an Elman RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)``
    (``nonlinearity='relu'`` for ReLU). ``cell(x, h=None)`` returns h'.

    >>> import tapegrad as tg
    >>> tg.nn.RNNCell(3, 4)(tg.randn(2, 3)).shape
    (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype=None):
        object.__setattr__(self, "mode", _check_mode(nonlinearity))
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, h, _, unbatched = self._prepare(input, hx)
        h2, _ = self._step(x, h, None)
        return h2.reshape(self.hidden_size) if unbatched else h2


class LSTMCell(_CellBase):
    """One LSTM step, gates in PyTorch's order (input, forget, cell, output):
    ``cell(x, (h, c)=None)`` returns ``(h', c')``.

    >>> import tapegrad as tg
    >>> h, c = tg.nn.LSTMCell(3, 4)(tg.randn(2, 3))
    >>> h.shape, c.shape
    ((2, 4), (2, 4))
    """

    mode = "LSTM"

    def forward(self, input, hx=None):
        x, h, c, unbatched = self._prepare(input, hx)
        h2, c2 = self._step(x, h, c)
        if unbatched:
            return h2.reshape(self.hidden_size), c2.reshape(self.hidden_size)
        return h2, c2


class GRUCell(_CellBase):
    """One GRU step, gates in PyTorch's order (reset, update, new):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    >>> import tapegrad as tg
    >>> tg.nn.GRUCell(3, 4)(tg.randn(2, 3)).shape
    (2, 4)
    """

    mode = "GRU"

    def forward(self, input, hx=None):
        x, h, _, unbatched = self._prepare(input, hx)
        h2, _ = self._step(x, h, None)
        return h2.reshape(self.hidden_size) if unbatched else h2


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------

class _RNNBase(Module):
    mode = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=None):
        super().__init__()
        name = type(self).__name__
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported")
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"{name}: num_layers and hidden_size must be >= 1, got {num_layers} "
                             f"and {hidden_size}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        D = 2 if bidirectional else 1
        G = _GATES[self.mode]
        shapes = []
        for layer in range(num_layers):
            isz = input_size if layer == 0 else hidden_size * D
            for sfx in ("", "_reverse")[:D]:
                shapes += [(f"weight_ih_l{layer}{sfx}", (G * hidden_size, isz)),
                           (f"weight_hh_l{layer}{sfx}", (G * hidden_size, hidden_size))]
                if bias:
                    shapes += [(f"bias_ih_l{layer}{sfx}", (G * hidden_size,)),
                               (f"bias_hh_l{layer}{sfx}", (G * hidden_size,))]
        _uniform_params(self, shapes, hidden_size, dtype or _C.float32)

    def _param(self, kind, layer, rev):
        return getattr(self, f"{kind}_l{layer}{'_reverse' if rev else ''}", None) \
            if self.bias or kind.startswith("weight") else None

    def _run(self, x, h0, c0):
        """x (L, N, I); h0, c0 (num_layers * D, N, H) -> out (L, N, D H), h_n, c_n."""
        D = 2 if self.bidirectional else 1
        L = x.shape[0]
        hs, cs = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                rev = d == 1
                w_ih, w_hh = self._param("weight_ih", layer, rev), self._param("weight_hh", layer, rev)
                b_ih, b_hh = self._param("bias_ih", layer, rev), self._param("bias_hh", layer, rev)
                xp = F.linear(layer_in, w_ih, b_ih)  # all time steps at once
                k = layer * D + d
                h, c = h0[k], (c0[k] if c0 is not None else None)
                steps = [None] * L
                for t in (range(L - 1, -1, -1) if rev else range(L)):
                    h, c = _cell_step(self.mode, xp[t], h, c, w_hh, b_hh)
                    steps[t] = h
                outs.append(_C.stack(steps, axis=0) if L else
                            _C.zeros(0, x.shape[1], self.hidden_size, dtype=x.dtype))
                hs.append(h)
                cs.append(c)
            layer_in = outs[0] if D == 1 else _C.concat(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)
        h_n = _C.stack(hs, axis=0)
        c_n = _C.stack(cs, axis=0) if c0 is not None else None
        return layer_in, h_n, c_n

    def forward(self, input, hx=None):
        name = type(self).__name__
        D = 2 if self.bidirectional else 1
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input (L, N, {self.input_size}) (batch_first: "
                             f"(N, L, {self.input_size})) or unbatched (L, {self.input_size}), got {input.shape}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (input.swapaxes(0, 1) if self.batch_first else input)
        N = x.shape[1]
        want = (self.num_layers * D, N, self.hidden_size)
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = _C.zeros(*want, dtype=x.dtype)
            c0 = h0 if lstm else None
        else:
            if lstm:
                if not (isinstance(hx, tuple) and len(hx) == 2):
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
            else:
                h0, c0 = hx, None
            if unbatched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
            for s in (h0, c0):
                if s is not None and s.shape != want:
                    raise ValueError(f"{name}: expected hidden state of shape "
                                     f"{want if not unbatched else (want[0], want[2])}, got {s.shape}")
        out, h_n, c_n = self._run(x, h0, c0)
        if unbatched:
            out = out.reshape(out.shape[0], out.shape[2])
            h_n = h_n.reshape(h_n.shape[0], h_n.shape[2])
            c_n = c_n.reshape(c_n.shape[0], c_n.shape[2]) if c_n is not None else None
        elif self.batch_first:
            out = out.swapaxes(0, 1)
        return (out, (h_n, c_n)) if lstm else (out, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    """A multi-layer Elman RNN (``nonlinearity`` 'tanh' or 'relu'):
    ``rnn(input, h_0=None)`` returns ``(output, h_n)`` with output (L, N, D H)
    (``batch_first``: (N, L, D H)) and h_n (num_layers D, N, H), D = 2 when
    ``bidirectional``. Parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``..._reverse``) as in PyTorch.

    >>> import tapegrad as tg
    >>> out, h = tg.nn.RNN(3, 4, bidirectional=True)(tg.randn(6, 2, 3))
    >>> out.shape, h.shape
    ((6, 2, 8), (2, 2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype=None):
        object.__setattr__(self, "mode", _check_mode(nonlinearity))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """A multi-layer LSTM: ``lstm(input, (h_0, c_0)=None)`` returns
    ``(output, (h_n, c_n))``; gates (input, forget, cell, output) stacked in
    that order in ``weight_ih_l{k}`` (4H, ·), as in PyTorch. ``proj_size`` is
    not supported.

    >>> import tapegrad as tg
    >>> out, (h, c) = tg.nn.LSTM(3, 4)(tg.randn(5, 2, 3))
    >>> out.shape
    (5, 2, 4)
    """

    mode = "LSTM"


class GRU(_RNNBase):
    """A multi-layer GRU: ``gru(input, h_0=None)`` returns ``(output, h_n)``;
    gates (reset, update, new) in PyTorch's order and equations.

    >>> import tapegrad as tg
    >>> out, h = tg.nn.GRU(3, 4, num_layers=2)(tg.randn(5, 2, 3))
    >>> out.shape, h.shape
    ((5, 2, 4), (2, 2, 4))
    """

    mode = "GRU"
