"""A small GPT-style model, the same in tapegrad and in PyTorch, for the
transformer row of benchmarks/run.py (and the test that keeps the two equal).

    token + position embedding -> n_layer x [x + attn(ln1(x)); x + mlp(ln2(x))]
    -> ln_f -> lm_head,  causal self-attention with n_head heads, an MLP
    4*width wide with GELU, cross-entropy over the next character, AdamW.

Both models start from one set of NumPy weights (:func:`init_weights`), so a
training step can be compared number for number. The tapegrad model is
written with the library's public ops (embedding lookups are indexing,
layer norm is the fused ``layer_norm`` op, attention is
``scaled_dot_product_attention(is_causal=True)``), so every backward step is
on the tape. Notebook 05 builds the same attention from matmul, a mask and
softmax, to show the pieces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Config:
    vocab: int = 65      # tinyshakespeare's characters
    context: int = 64
    width: int = 128
    n_head: int = 4
    n_layer: int = 2
    batch: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01


def init_weights(cfg: Config, seed: int = 0, dtype=np.float32) -> dict:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases, unit layer
    norms, residual projections scaled by 1/sqrt(2 n_layer). Weight matrices
    are stored (in, out), as tapegrad's Linear uses them."""
    rng = np.random.default_rng(seed)
    C, V = cfg.width, cfg.vocab

    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(dtype)
    w = {"wte": normal(V, C), "wpe": normal(cfg.context, C)}
    proj_std = 0.02 / np.sqrt(2 * cfg.n_layer)
    for i in range(cfg.n_layer):
        p = f"h{i}."
        w.update({p + "ln1.w": np.ones(C, dtype), p + "ln1.b": np.zeros(C, dtype),
                  p + "attn.w": normal(C, 3 * C), p + "attn.b": np.zeros(3 * C, dtype),
                  p + "proj.w": normal(C, C, std=proj_std), p + "proj.b": np.zeros(C, dtype),
                  p + "ln2.w": np.ones(C, dtype), p + "ln2.b": np.zeros(C, dtype),
                  p + "fc.w": normal(C, 4 * C), p + "fc.b": np.zeros(4 * C, dtype),
                  p + "fc2.w": normal(4 * C, C, std=proj_std), p + "fc2.b": np.zeros(C, dtype)})
    w.update({"lnf.w": np.ones(C, dtype), "lnf.b": np.zeros(C, dtype), "head.w": normal(C, V)})
    return w


def batch(tokens: np.ndarray, cfg: Config, rng: np.random.Generator):
    """Random windows of the token stream: inputs (B, T) and next tokens (B, T)."""
    starts = rng.integers(0, len(tokens) - cfg.context - 1, size=cfg.batch)
    x = np.stack([tokens[s:s + cfg.context] for s in starts])
    y = np.stack([tokens[s + 1:s + cfg.context + 1] for s in starts])
    return x.astype(np.int64), y.astype(np.int64)


# ---------------------------------------------------------------------------
# tapegrad
# ---------------------------------------------------------------------------

def tapegrad_model(weights: dict, cfg: Config):
    """(params dict of tapegrad Parameters, loss(x, y) function); loss.logits(x)
    gives the (B, T, vocab) logits."""
    import tapegrad as tg
    P = {k: tg.nn.Parameter(tg.from_numpy(v.copy())) for k, v in weights.items()}
    C, H = cfg.width, cfg.n_head
    hs = C // H

    F = tg.nn.functional

    def ln(x, p):  # the fused layer_norm op (one tape entry)
        return F.layer_norm(x, (C,), P[p + ".w"], P[p + ".b"], 1e-5)

    def attention(x, p):
        B, T, _ = x.shape
        qkv = x @ P[p + "attn.w"] + P[p + "attn.b"]                      # (B, T, 3C)
        q, k, v = (t.reshape(B, T, H, hs).permute(0, 2, 1, 3)
                   for t in qkv.split(C, dim=2))                          # (B, H, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)        # (B, H, T, hs)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        return y @ P[p + "proj.w"] + P[p + "proj.b"]

    def logits(x):
        B, T = x.shape
        h = P["wte"][x] + P["wpe"][tg.arange(T)]
        for i in range(cfg.n_layer):
            p = f"h{i}."
            h = h + attention(ln(h, p + "ln1"), p)
            m = (ln(h, p + "ln2") @ P[p + "fc.w"] + P[p + "fc.b"]).gelu()
            h = h + m @ P[p + "fc2.w"] + P[p + "fc2.b"]
        return ln(h, "lnf") @ P["head.w"]

    def loss(x, y):
        B, T = x.shape
        return tg.cross_entropy(logits(x).reshape(B * T, cfg.vocab), y.reshape(B * T))
    loss.logits = logits
    return P, loss


def tapegrad_step(weights: dict, cfg: Config):
    """A training step function step(x, y) -> loss (float), with AdamW."""
    import tapegrad as tg
    P, loss_fn = tapegrad_model(weights, cfg)
    opt = tg.optim.AdamW(list(P.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        return loss.item()
    return step, P


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def torch_model(weights: dict, cfg: Config):
    import torch
    F = torch.nn.functional
    P = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in weights.items()}
    C, H = cfg.width, cfg.n_head
    hs = C // H

    def attention(x, p):
        B, T, _ = x.shape
        q, k, v = (x @ P[p + "attn.w"] + P[p + "attn.b"]).split(C, dim=2)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).reshape(B, T, C) @ P[p + "proj.w"] + P[p + "proj.b"]

    def loss(x, y):
        B, T = x.shape
        h = P["wte"][x] + P["wpe"][torch.arange(T)]
        for i in range(cfg.n_layer):
            p = f"h{i}."
            a = F.layer_norm(h, (C,), P[p + "ln1.w"], P[p + "ln1.b"])
            h = h + attention(a, p)
            m = F.gelu(F.layer_norm(h, (C,), P[p + "ln2.w"], P[p + "ln2.b"]) @ P[p + "fc.w"] + P[p + "fc.b"])
            h = h + m @ P[p + "fc2.w"] + P[p + "fc2.b"]
        logits = F.layer_norm(h, (C,), P["lnf.w"], P["lnf.b"]) @ P["head.w"]
        return F.cross_entropy(logits.reshape(B * T, cfg.vocab), y.reshape(B * T))
    return P, loss


def torch_step(weights: dict, cfg: Config):
    import torch
    P, loss_fn = torch_model(weights, cfg)
    opt = torch.optim.AdamW(list(P.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        return loss.item()
    return step, P
