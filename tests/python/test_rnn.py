"""Recurrent layers (issue 14): RNNCell, LSTMCell, GRUCell, RNN, LSTM, GRU,
built from ops. PyTorch's weights (state dict) give PyTorch's outputs, final
states and gradients (inputs, initial states and every parameter), in
float32 and float64; finite differences check a small case of each."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

from assertions import raises

torch = pytest.importorskip("torch")

DTYPES = [(np.float32, tg.float32, torch.float32, 1e-5), (np.float64, tg.float64, torch.float64, 1e-11)]
KINDS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
LAYOUTS = [
    {}, {"num_layers": 2}, {"batch_first": True}, {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True}, {"bias": False, "num_layers": 2},
]


def _load(tm, gm, np_dt):
    gm.load_state_dict({k: tg.from_numpy(v.detach().numpy().astype(np_dt)) for k, v in tm.state_dict().items()})


def _pair(a, np_dt):
    a = np.asarray(a, dtype=np_dt)
    g, t = tg.from_numpy(a.copy()), torch.from_numpy(a.copy())
    g.requires_grad = True
    t.requires_grad_(True)
    return g, t


def _close(a, b, tol, msg=""):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=msg)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind,kw", KINDS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()) or "default")
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_torch(dt, kind, kw, layout, with_state):
    np_dt, tg_dt, t_dt, tol = dt
    torch.manual_seed(0)
    I, H, L, N = 3, 4, 5, 2
    tm = getattr(torch.nn, kind)(I, H, dtype=t_dt, **kw, **layout)
    gm = getattr(tg.nn, kind)(I, H, dtype=tg_dt, **kw, **layout)
    assert [n for n, _ in tm.named_parameters()] == [n for n, _ in gm.named_parameters()]
    assert [tuple(p.shape) for p in tm.parameters()] == [p.shape for p in gm.parameters()]
    _load(tm, gm, np_dt)
    rng = np.random.default_rng(1)
    xg, xt = _pair(rng.normal(size=(N, L, I) if layout.get("batch_first") else (L, N, I)), np_dt)
    D = 2 if layout.get("bidirectional") else 1
    hshape = (layout.get("num_layers", 1) * D, N, H)
    ins_g, ins_t = [xg], [xt]
    sg = st = None
    if with_state:
        hg, ht = _pair(rng.normal(size=hshape), np_dt)
        ins_g.append(hg), ins_t.append(ht)
        sg, st = hg, ht
        if kind == "LSTM":
            cg, ct = _pair(rng.normal(size=hshape), np_dt)
            ins_g.append(cg), ins_t.append(ct)
            sg, st = (hg, cg), (ht, ct)
    og, hng = gm(xg, sg)
    ot, hnt = tm(xt, st)
    _close(og.numpy(), ot.detach().numpy(), 100 * tol, "output")
    hn_g, hn_t = (hng if kind == "LSTM" else (hng,)), (hnt if kind == "LSTM" else (hnt,))
    for a, b in zip(hn_g, hn_t):
        _close(a.numpy(), b.detach().numpy(), 100 * tol, "final state")
    # gradients of output and final states together
    seeds = [rng.normal(size=tuple(t.shape)) for t in (ot,) + tuple(hn_t)]
    lg = sum(((t * tg.from_numpy(s.astype(np_dt))).sum() for t, s in zip((og,) + tuple(hn_g), seeds)),
             tg.zeros((), dtype=tg_dt))
    lt = sum((t * torch.from_numpy(s.astype(np_dt))).sum() for t, s in zip((ot,) + tuple(hn_t), seeds))
    lg.backward()
    lt.backward()
    for g, t in zip(ins_g, ins_t):
        _close(g.grad.numpy(), t.grad.numpy(), 1000 * tol, "input/state gradient")
    tp = dict(tm.named_parameters())
    for n, p in gm.named_parameters():
        _close(p.grad.numpy(), tp[n].grad.numpy(), 1000 * tol, n)


@pytest.mark.parametrize("dt", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(dt, kind, bias, batched):
    np_dt, tg_dt, t_dt, tol = dt
    torch.manual_seed(2)
    tm = getattr(torch.nn, kind)(3, 4, bias=bias, dtype=t_dt)
    gm = getattr(tg.nn, kind)(3, 4, bias=bias, dtype=tg_dt)
    assert [n for n, _ in tm.named_parameters()] == [n for n, _ in gm.named_parameters()]
    _load(tm, gm, np_dt)
    rng = np.random.default_rng(3)
    shp = (2,) if batched else ()
    xg, xt = _pair(rng.normal(size=shp + (3,)), np_dt)
    hg, ht = _pair(rng.normal(size=shp + (4,)), np_dt)
    ins_g, ins_t = [xg, hg], [xt, ht]
    if kind == "LSTMCell":
        cg, ct = _pair(rng.normal(size=shp + (4,)), np_dt)
        ins_g.append(cg), ins_t.append(ct)
        (h2g, c2g), (h2t, c2t) = gm(xg, (hg, cg)), tm(xt, (ht, ct))
        outs_g, outs_t = [h2g, c2g], [h2t, c2t]
    else:
        outs_g, outs_t = [gm(xg, hg)], [tm(xt, ht)]
    for a, b in zip(outs_g, outs_t):
        assert a.shape == tuple(b.shape)
        _close(a.numpy(), b.detach().numpy(), 100 * tol)
    sum((o * (i + 1)).sum() for i, o in enumerate(outs_g)).backward()
    sum((o * (i + 1)).sum() for i, o in enumerate(outs_t)).backward()
    for g, t in zip(ins_g, ins_t):
        _close(g.grad.numpy(), t.grad.numpy(), 1000 * tol)
    tp = dict(tm.named_parameters())
    for n, p in gm.named_parameters():
        _close(p.grad.numpy(), tp[n].grad.numpy(), 1000 * tol, n)
    # no state given: zeros, as PyTorch
    z = gm(xg)
    z = z[0] if kind == "LSTMCell" else z
    zt = tm(xt)
    zt = zt[0] if kind == "LSTMCell" else zt
    _close(z.numpy(), zt.detach().numpy(), 100 * tol)


def test_unbatched_input_and_init():
    tg.manual_seed(0)
    gru = tg.nn.GRU(3, 5, num_layers=2)
    out, h = gru(tg.randn(7, 3))
    assert out.shape == (7, 5) and h.shape == (2, 5)
    out2, h2 = gru(tg.randn(7, 3), tg.zeros(2, 5))
    assert out2.shape == (7, 5)
    k = 1 / np.sqrt(5)
    for _, p in gru.named_parameters():  # U(-1/sqrt(H), 1/sqrt(H)), as PyTorch
        v = p.numpy()
        assert np.abs(v).max() <= k and np.abs(v).max() > 0.8 * k
    lstm = tg.nn.LSTM(3, 4, bidirectional=True)
    out, (h, c) = lstm(tg.randn(6, 3))
    assert out.shape == (6, 8) and h.shape == (2, 4) and c.shape == (2, 4)


def test_dropout_between_layers_only_in_training():
    tg.manual_seed(0)
    m = tg.nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = tg.randn(5, 2, 3)
    m.eval()
    a = m(x)[0].numpy()
    np.testing.assert_array_equal(a, m(x)[0].numpy())
    m.train()
    assert not np.allclose(a, m(x)[0].numpy())
    one = tg.nn.LSTM(3, 4, num_layers=1, dropout=0.5)  # one layer: nothing to drop between
    np.testing.assert_array_equal(one(x)[0].numpy(), one.eval()(x)[0].numpy())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_layers_gradcheck_and_gradgradcheck(kind):
    tg.manual_seed(4)
    m = getattr(tg.nn, kind)(2, 3, bidirectional=True, dtype=tg.float64)
    x = tg.randn(3, 1, 2, dtype=tg.float64, requires_grad=True)
    w = m.weight_hh_l0_reverse  # a parameter as an input: gradcheck perturbs it in place

    def f(x, w):
        return m(x)[0]

    assert gradcheck(f, [x, w])
    assert gradgradcheck(lambda x: m(x)[0], [x])


def test_rnn_errors():
    with raises(ValueError, "RNN", "nonlinearity", "'sigmoid'"):
        tg.nn.RNN(3, 4, nonlinearity="sigmoid")
    with raises(NotImplementedError, "LSTM", "proj_size"):
        tg.nn.LSTM(3, 4, proj_size=2)
    m = tg.nn.LSTM(3, 4, num_layers=2)
    with raises(ValueError, "LSTM", "(L, N, 3)", "(5, 2, 4)"):
        m(tg.randn(5, 2, 4))
    with raises(ValueError, "LSTM", "hidden state", "(2, 2, 4)", "(1, 2, 4)"):
        m(tg.randn(5, 2, 3), (tg.zeros(1, 2, 4), tg.zeros(1, 2, 4)))
    with raises(TypeError, "LSTM", "(h_0, c_0)"):
        m(tg.randn(5, 2, 3), tg.zeros(2, 2, 4))
    with raises(ValueError, "GRUCell", "(N, 3)", "(2, 5)"):
        tg.nn.GRUCell(3, 4)(tg.randn(2, 5))
    with raises(ValueError, "RNNCell", "hidden state", "(2, 4)", "(2, 3)"):
        tg.nn.RNNCell(3, 4)(tg.randn(2, 3), tg.zeros(2, 3))
