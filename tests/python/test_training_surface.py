"""The PyTorch training surface end to end: a character-level MLP language
model (the makemore kind) built from tg.nn containers, fed by a sampler-driven
DataLoader and checkpointed through tg.save/tg.load, against PyTorch."""
import numpy as np
import pytest

import tapegrad as tg


def test_char_level_mlp_language_model_on_the_pytorch_surface_matches_pytorch(tmp_path):
    """A makemore-style character MLP written with ModuleDict/ModuleList/
    ParameterDict, fed by DataLoader(sampler=RandomSampler(...), drop_last=True),
    checkpointed with tg.save halfway: its losses match PyTorch's at every step
    from the same initial weights and the same batches."""
    torch = pytest.importorskip("torch")
    words = ("emma olivia ava isabella sophia charlotte mia amelia harper evelyn abigail emily "
             "elizabeth mila ella avery sofia camila aria scarlett").split()
    chars = sorted(set("".join(words)))
    stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 is the boundary '.'
    xs, ys = [], []
    for w in words:
        ctx = [0, 0, 0]
        for ch in w + ".":
            ix = stoi.get(ch, 0)
            xs.append(ctx)
            ys.append(ix)
            ctx = ctx[1:] + [ix]
    X, Y = np.array(xs, np.int64), np.array(ys, np.int64)
    V, d, h, steps, bs = len(chars) + 1, 4, 32, 16, 16

    class LM(tg.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = tg.nn.ParameterDict({"C": tg.nn.Parameter(tg.randn(V, d))})
            self.mlp = tg.nn.ModuleList([tg.nn.Linear(3 * d, h), tg.nn.Tanh(), tg.nn.Linear(h, V)])
            self.heads = tg.nn.ModuleDict({"out": tg.nn.Identity()})

        def forward(self, x):
            z = self.emb["C"][x].reshape(x.shape[0], 3 * d)
            for layer in self.mlp:
                z = layer(z)
            return self.heads["out"](z)

    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.ParameterDict({"C": torch.nn.Parameter(torch.zeros(V, d))})
            self.mlp = torch.nn.ModuleList([torch.nn.Linear(3 * d, h), torch.nn.Tanh(), torch.nn.Linear(h, V)])
            self.heads = torch.nn.ModuleDict({"out": torch.nn.Identity()})

        def forward(self, x):
            z = self.emb["C"][x].reshape(x.shape[0], 3 * d)
            for layer in self.mlp:
                z = layer(z)
            return self.heads["out"](z)

    tg.manual_seed(0)
    model = LM()
    ref = TorchLM()
    ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    ds = tg.data.TensorDataset(X, Y)
    sampler = tg.data.RandomSampler(ds, replacement=True, num_samples=steps * bs + 5, generator=0)
    loader = tg.data.DataLoader(ds, batch_size=bs, sampler=sampler, drop_last=True)
    assert len(loader) == steps
    opt = tg.optim.Adam(model.parameters(), lr=0.05)
    ropt = torch.optim.Adam(ref.parameters(), lr=0.05)
    sched = tg.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    rsched = torch.optim.lr_scheduler.StepLR(ropt, step_size=5, gamma=0.5)
    losses, ref_losses = [], []
    for step, (xb, yb) in enumerate(loader):
        if step == steps // 2:  # checkpoint, and continue in a new model and optimizer
            tg.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()},
                    tmp_path / "lm.pt")
            ckpt = tg.load(tmp_path / "lm.pt")
            model = LM()
            model.load_state_dict(ckpt["model"])
            opt = tg.optim.Adam(model.parameters(), lr=0.05)
            opt.load_state_dict(ckpt["opt"])
            sched = tg.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
            sched.load_state_dict(ckpt["sched"])
        opt.zero_grad()
        loss = tg.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        ropt.zero_grad()
        rloss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(xb.numpy())), torch.from_numpy(yb.numpy()))
        rloss.backward()
        ropt.step()
        rsched.step()
        ref_losses.append(rloss.item())
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=2e-6)
    assert losses[-1] < losses[0] - 0.5  # it learns
