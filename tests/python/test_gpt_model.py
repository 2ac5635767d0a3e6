"""The transformer of benchmarks/gpt.py (the benchmark's GPT step) computes
what PyTorch computes from the same weights: loss, every gradient, and the
parameters after AdamW steps. A benchmark that timed a wrong model would
measure nothing."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpt  # noqa: E402

torch = pytest.importorskip("torch")

SMALL = replace(gpt.Config(), vocab=11, context=8, width=16, n_head=2, n_layer=2, batch=3)


def _data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, cfg.vocab, size=200)
    return gpt.batch(tokens, cfg, rng)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)], ids=["f64", "f32"])
def test_loss_and_gradients_match_pytorch(dtype, tol):
    w = gpt.init_weights(SMALL, seed=1, dtype=dtype)
    x, y = _data(SMALL)
    P, loss_fn = gpt.tapegrad_model(w, SMALL)
    Q, tloss_fn = gpt.torch_model(w, SMALL)
    loss = loss_fn(tg.from_numpy(x), tg.from_numpy(y))
    tloss = tloss_fn(torch.tensor(x), torch.tensor(y))
    loss.backward()
    tloss.backward()
    assert abs(loss.item() - tloss.item()) <= tol * max(1.0, abs(tloss.item()))
    for k in w:
        np.testing.assert_allclose(P[k].grad.numpy(), Q[k].grad.numpy(), rtol=50 * tol, atol=tol,
                                   err_msg=k)


def test_the_attention_is_causal():
    """Changing token t changes the logits at t and after, never before: the
    causal mask works."""
    w = gpt.init_weights(SMALL, seed=2, dtype=np.float64)
    x, _ = _data(SMALL, seed=3)
    _, loss_fn = gpt.tapegrad_model(w, SMALL)
    t = 5
    x2 = x.copy()
    x2[:, t] = (x2[:, t] + 1) % SMALL.vocab
    a = loss_fn.logits(tg.from_numpy(x)).numpy()
    b = loss_fn.logits(tg.from_numpy(x2)).numpy()
    np.testing.assert_array_equal(a[:, :t], b[:, :t])
    assert (np.abs(a[:, t:] - b[:, t:]).max(axis=-1) > 0).all()


def test_adamw_steps_track_pytorch():
    w = gpt.init_weights(SMALL, seed=4, dtype=np.float64)
    x, y = _data(SMALL, seed=5)
    step, P = gpt.tapegrad_step(w, SMALL)
    tstep, Q = gpt.torch_step(w, SMALL)
    tx, ty, qx, qy = tg.from_numpy(x), tg.from_numpy(y), torch.tensor(x), torch.tensor(y)
    losses = [(step(tx, ty), tstep(qx, qy)) for _ in range(4)]
    for a, b in losses:
        assert abs(a - b) < 1e-9
    assert losses[-1][0] < losses[0][0]  # it learns
    for k in w:
        np.testing.assert_allclose(P[k].detach().numpy(), Q[k].detach().numpy(), rtol=1e-7, atol=1e-9,
                                   err_msg=k)
