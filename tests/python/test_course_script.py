"""A makemore-style course script (issue 19): character-level language
models on names.txt -- bigram, RNN, GRU, bag-of-words (causal averaging) and
a small transformer -- written ONCE against a module namespace ``T`` that is
either ``tapegrad`` or ``torch``.  Both run from the same initial weights
(PyTorch's, copied through the state dict) on the same batches, and their
losses must agree at every step to float32 precision.

The script is PyTorch code with only these spellings chosen so that both
libraries read them the same way (tapegrad keeps NumPy's meaning of the
first two; docs/coming-from-pytorch.md): ``x.shape`` instead of ``x.size()``
and ``x.swapaxes(1, 2)`` / ``x.mT`` instead of ``x.transpose(1, 2)`` /
``x.transpose(-2, -1)``.  The makemore MLP variant is test_training_surface.py.
"""
import functools
import math
import os
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

ROOT = Path(__file__).resolve().parents[2]
_env = os.environ.get("TAPEGRAD_DATA")
DATA = Path(_env).parent if _env and Path(_env).name == "mnist" else \
    Path(_env) if _env else ROOT.parent / "shared" / "data"

N_WORDS, BATCH, STEPS = 256, 32, 5


def build(T):
    """The course script's models, written once: T is tapegrad or torch."""
    nn, F = T.nn, T.nn.functional

    class NewGELU(nn.Module):
        def forward(self, x):
            return 0.5 * x * (1.0 + T.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * T.pow(x, 3.0))))

    class CausalSelfAttention(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.c_attn = nn.Linear(cfg["n_embd"], 3 * cfg["n_embd"])
            self.c_proj = nn.Linear(cfg["n_embd"], cfg["n_embd"])
            n = cfg["block_size"]
            self.register_buffer("bias", T.tril(T.ones(n, n)).view(1, 1, n, n))
            self.n_head, self.n_embd = cfg["n_head"], cfg["n_embd"]

        def forward(self, x):
            B, L, C = x.shape
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, L, self.n_head, C // self.n_head).swapaxes(1, 2)
            q = q.view(B, L, self.n_head, C // self.n_head).swapaxes(1, 2)
            v = v.view(B, L, self.n_head, C // self.n_head).swapaxes(1, 2)
            att = (q @ k.mT) * (1.0 / math.sqrt(k.shape[-1]))
            att = att.masked_fill(self.bias[:, :, :L, :L] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
            y = y.swapaxes(1, 2).contiguous().view(B, L, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.ln_1 = nn.LayerNorm(cfg["n_embd"])
            self.attn = CausalSelfAttention(cfg)
            self.ln_2 = nn.LayerNorm(cfg["n_embd"])
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"]),
                                          c_proj=nn.Linear(4 * cfg["n_embd"], cfg["n_embd"]),
                                          act=NewGELU()))

        def forward(self, x):
            m = self.mlp
            x = x + self.attn(self.ln_1(x))
            return x + m.c_proj(m.act(m.c_fc(self.ln_2(x))))

    class Transformer(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.block_size = cfg["block_size"]
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(cfg["vocab_size"], cfg["n_embd"]),
                wpe=nn.Embedding(cfg["block_size"], cfg["n_embd"]),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])]),
                ln_f=nn.LayerNorm(cfg["n_embd"])))
            self.lm_head = nn.Linear(cfg["n_embd"], cfg["vocab_size"], bias=False)

        def forward(self, idx, targets=None):
            b, t = idx.shape
            pos = T.arange(0, t, dtype=T.int64).unsqueeze(0)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return logits, loss_of(logits, targets)

    class CausalBoW(nn.Module):
        """Causal bag of words: each position averages the ones before it."""

        def __init__(self, cfg):
            super().__init__()
            n = cfg["block_size"]
            self.register_buffer("bias", T.tril(T.ones(n, n)).view(1, n, n))

        def forward(self, x):
            B, L, C = x.shape
            att = T.zeros((B, L, L))
            att = att.masked_fill(self.bias[:, :L, :L] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            return att @ x

    class BoWBlock(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.cbow = CausalBoW(cfg)
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(cfg["n_embd"], cfg["n_embd2"]),
                                          c_proj=nn.Linear(cfg["n_embd2"], cfg["n_embd"])))

        def forward(self, x):
            x = x + self.cbow(x)
            return x + self.mlp.c_proj(F.tanh(self.mlp.c_fc(x)))

    class BoW(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.block_size, self.vocab_size = cfg["block_size"], cfg["vocab_size"]
            self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
            self.wpe = nn.Embedding(cfg["block_size"], cfg["n_embd"])
            self.context_block = BoWBlock(cfg)
            self.lm_head = nn.Sequential(nn.Linear(cfg["n_embd"], cfg["n_embd2"]), nn.Tanh(),
                                         nn.Linear(cfg["n_embd2"], cfg["vocab_size"]))

        def forward(self, idx, targets=None):
            b, t = idx.shape
            pos = T.arange(0, t, dtype=T.int64).unsqueeze(0)
            x = self.wte(idx) + self.wpe(pos)
            logits = self.lm_head(self.context_block(x))
            return logits, loss_of(logits, targets)

    class RNNCell(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.xh_to_h = nn.Linear(cfg["n_embd"] + cfg["n_embd2"], cfg["n_embd2"])

        def forward(self, xt, hprev):
            return F.tanh(self.xh_to_h(T.cat([xt, hprev], dim=1)))

    class GRUCell(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            n = cfg["n_embd"] + cfg["n_embd2"]
            self.xh_to_z = nn.Linear(n, cfg["n_embd2"])
            self.xh_to_r = nn.Linear(n, cfg["n_embd2"])
            self.xh_to_hbar = nn.Linear(n, cfg["n_embd2"])

        def forward(self, xt, hprev):
            xh = T.cat([xt, hprev], dim=1)
            r = F.sigmoid(self.xh_to_r(xh))
            hbar = F.tanh(self.xh_to_hbar(T.cat([xt, r * hprev], dim=1)))
            z = F.sigmoid(self.xh_to_z(xh))
            return (1 - z) * hprev + z * hbar

    class RNN(nn.Module):
        def __init__(self, cfg, cell_type):
            super().__init__()
            self.block_size = cfg["block_size"]
            self.start = nn.Parameter(T.zeros(1, cfg["n_embd2"]))
            self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
            self.cell = RNNCell(cfg) if cell_type == "rnn" else GRUCell(cfg)
            self.lm_head = nn.Linear(cfg["n_embd2"], cfg["vocab_size"])

        def forward(self, idx, targets=None):
            b, t = idx.shape
            emb = self.wte(idx)
            hprev = self.start.expand((b, -1))
            hiddens = []
            for i in range(t):
                hprev = self.cell(emb[:, i, :], hprev)
                hiddens.append(hprev)
            logits = self.lm_head(T.stack(hiddens, 1))
            return logits, loss_of(logits, targets)

    class Bigram(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            n = cfg["vocab_size"]
            self.logits = nn.Parameter(T.zeros((n, n)))

        def forward(self, idx, targets=None):
            logits = self.logits[idx]
            return logits, loss_of(logits, targets)

    def loss_of(logits, targets):
        if targets is None:
            return None
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)

    @T.no_grad()
    def generate(model, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None, generator=None):
        """makemore's sampler: feed the sequence (cropped to block_size), take
        the last logits, keep the top_k, then sample or take the most likely."""
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.shape[1] <= model.block_size else idx[:, -model.block_size:]
            logits, _ = model(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = T.topk(logits, top_k)
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = F.softmax(logits, dim=-1)
            if do_sample:
                idx_next = T.multinomial(probs, num_samples=1, generator=generator)
            else:
                _, idx_next = T.topk(probs, k=1, dim=-1)
            idx = T.cat((idx, idx_next), dim=1)
        return idx

    return {"generate": generate, "bigram": Bigram, "rnn": lambda cfg: RNN(cfg, "rnn"), "gru": lambda cfg: RNN(cfg, "gru"),
            "bow": BoW, "transformer": Transformer}


@functools.lru_cache(maxsize=None)
def course_data():
    """makemore's CharDataset: x = <start> + word, y = word + <end>, then -1
    (ignored by the loss) past the end; 0 is the start/end token."""
    words = tg.data.text.names(DATA)
    vocab = tg.data.text.Vocabulary(words, specials=".")
    words = words[:N_WORDS]
    block = max(len(w) for w in words) + 1
    X = np.zeros((len(words), block), np.int64)
    Y = np.full((len(words), block), -1, np.int64)
    for i, w in enumerate(words):
        ix = vocab.encode(w)
        X[i, 1:1 + len(ix)] = ix
        Y[i, :len(ix)] = ix
        Y[i, len(ix)] = 0
    return X, Y, len(vocab), block


VARIANTS = ["bigram", "rnn", "gru", "bow", "transformer"]


def trained(variant, torch):
    """Both models after STEPS steps of AdamW on the same batches, and their losses."""
    X, Y, V, block = course_data()
    cfg = dict(vocab_size=V, block_size=block, n_layer=2, n_head=2, n_embd=16, n_embd2=24)
    torch.manual_seed(3407)
    ref = build(torch)[variant](cfg)
    model = build(tg)[variant](cfg)
    state = ref.state_dict()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict({k: tg.tensor(v.numpy().copy()) for k, v in state.items()})
    if variant == "bigram":  # a zero table learns nothing distinctive: start from random logits
        with torch.no_grad():
            ref.logits.copy_(torch.randn(V, V))
        model.load_state_dict({"logits": tg.tensor(ref.logits.detach().numpy().copy())})
    opt = tg.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    ropt = torch.optim.AdamW(ref.parameters(), lr=5e-3, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    rng = np.random.default_rng(0)
    losses, ref_losses = [], []
    for _ in range(STEPS):
        ix = rng.integers(0, len(X), BATCH)
        xb, yb = X[ix], Y[ix]
        logits, loss = model(tg.tensor(xb), tg.tensor(yb))
        model.zero_grad()
        loss.backward()
        opt.step()
        rlogits, rloss = ref(torch.from_numpy(xb), torch.from_numpy(yb))
        ref.zero_grad(set_to_none=True)
        rloss.backward()
        ropt.step()
        assert logits.shape == tuple(rlogits.shape)
        losses.append(loss.item())
        ref_losses.append(rloss.item())
    return model, ref, losses, ref_losses, cfg


@pytest.mark.parametrize("variant", VARIANTS)
def test_course_script_variant_matches_pytorch(variant, torch):
    model, ref, losses, ref_losses, cfg = trained(variant, torch)
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=2e-6)
    assert losses[-1] < losses[0]  # it learns


@pytest.mark.parametrize("variant", ["rnn", "transformer"])
def test_course_script_samples_and_checkpoints(variant, torch, tmp_path):
    """The script's sampler (top-k masking by boolean assignment, softmax,
    topk or multinomial with a seeded Generator) and a state-dict checkpoint
    through T.save/T.load: greedy names are PyTorch's; sampled ones are valid
    and repeat under the same seed."""
    model, ref, *_, cfg = trained(variant, torch)
    start = np.zeros((3, 1), np.int64)
    got = build(tg)["generate"](model, tg.tensor(start), cfg["block_size"] + 2, top_k=5).numpy()
    want = build(torch)["generate"](ref, torch.from_numpy(start), cfg["block_size"] + 2, top_k=5).numpy()
    np.testing.assert_array_equal(got, want)
    tg.save(model.state_dict(), tmp_path / "model.pt")
    fresh = build(tg)[variant](cfg)
    fresh.load_state_dict(tg.load(tmp_path / "model.pt"))
    gen = build(tg)["generate"]
    a = gen(fresh, tg.tensor(start), 6, do_sample=True, top_k=5, generator=tg.Generator().manual_seed(7))
    b = gen(model, tg.tensor(start), 6, do_sample=True, top_k=5, generator=tg.Generator().manual_seed(7))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.shape == (3, 7) and a.dtype == tg.int64
    assert ((a.numpy() >= 0) & (a.numpy() < cfg["vocab_size"])).all()


# ---- what the script found missing in tapegrad: Tensor.view and Tensor.expand

def test_view_is_reshape_that_never_copies(torch):
    x = tg.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    tx = torch.arange(24.0).reshape(2, 3, 4)
    for shape in [(6, 4), (-1,), (2, 12), ((4, 6),), (2, -1, 2)]:
        y = x.view(*shape)
        assert y.shape == tuple(tx.view(*shape).shape)
        assert y.data_ptr == x.data_ptr  # the same memory
    y = x.view(4, 6)
    (y * tg.tensor(np.arange(24.0).reshape(4, 6))).sum().backward()
    assert x.grad.numpy().ravel().tolist() == list(range(24))
    with pytest.raises(RuntimeError, match=r"view: shape \(6, 4\).*reshape"):
        x.swapaxes(1, 2).view(6, 4)
    with pytest.raises(RuntimeError):  # PyTorch refuses the same view
        tx.transpose(1, 2).view(6, 4)
    with pytest.raises(TypeError, match="view"):
        x.view(tg.float64)


def test_expand_is_broadcast_to_with_minus_one(torch):
    s = tg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    ts = torch.tensor([[1.0, 2.0, 3.0]])
    for sizes in [(4, -1), (2, 4, 3), ((4, 3),), (1, 3)]:
        assert s.expand(*sizes).shape == tuple(ts.expand(*sizes).shape)
    s.expand(5, -1).sum().backward()
    assert s.grad.tolist() == [[5.0, 5.0, 5.0]]
    with pytest.raises(ValueError, match="expand"):
        s.expand(3)
    with pytest.raises(ValueError, match="expand: -1"):
        s.expand(-1, 1, 3)
    with pytest.raises(ValueError):
        s.expand(4, 2)
