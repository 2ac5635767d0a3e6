"""tg.nn modules and losses: structure, naming, state, and agreement with PyTorch."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def test_named_parameters_are_dotted_and_name_the_tensors():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.fc2 = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(self.fc1(x).relu())

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert net.fc1.weight.name == "fc1.weight"
    out = net(tg.randn(2, 4))
    # the tape shows the parameter names: collect the names of the leaves it reaches
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        e = stack.pop()
        if e is None or e in seen:
            continue
        seen.add(e)
        names |= {t.name for t in e.inputs if t.is_leaf and t.name}
        stack.extend(e.next_entries)
    assert names == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert sorted(type(m).__name__ for m in net.children()) == ["Linear", "Linear"]


def test_linear_init_is_documented_uniform_and_seeded():
    tg.manual_seed(3)
    a = nn.Linear(100, 50)
    tg.manual_seed(3)
    b = nn.Linear(100, 50)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    w = a.weight.numpy()
    assert w.shape == (50, 100) and w.dtype == np.float32
    assert np.abs(w).max() <= 0.1 + 1e-7 and np.abs(w).max() > 0.09
    assert abs(w.mean()) < 0.01


def test_train_eval_and_dropout():
    net = nn.Sequential(nn.Linear(10, 10), nn.Dropout(0.5))
    x = tg.ones(4, 10)
    net.eval()
    assert not net[1].training
    np.testing.assert_allclose(net(x).numpy(), net(x).numpy())
    net.train()
    y = net[1](tg.ones(1000))
    frac = (y.numpy() == 0).mean()
    assert 0.4 < frac < 0.6 and set(np.unique(y.numpy())) <= {0.0, 2.0}


def test_zero_grad_and_state_dict_roundtrip(tmp_path):
    net = mlp()
    loss = net(tg.randn(4, 6)).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    sd = net.state_dict()
    assert list(sd) == ["1.weight", "1.bias", "3.weight", "3.bias"]
    other = mlp()
    other.load_state_dict(sd)
    x = tg.randn(2, 6)
    np.testing.assert_allclose(net(x).numpy(), other(x).numpy())
    path = tmp_path / "m.npz"
    net.save(str(path))
    third = mlp().load(str(path))
    np.testing.assert_allclose(net(x).numpy(), third(x).numpy())
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"1.weight": sd["1.weight"]})
    bad = dict(sd)
    bad["1.weight"] = tg.zeros(2, 2)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)


def test_forward_hook_can_replace_output():
    lin = nn.Linear(3, 2)
    h = lin.register_forward_hook(lambda m, inp, out: out * 0)
    assert np.all(lin(tg.ones(1, 3)).numpy() == 0)
    h.remove()
    assert not np.all(lin(tg.ones(1, 3)).numpy() == 0)


def test_batchnorm_and_layernorm_gradcheck():
    tg.manual_seed(0)
    x = tg.randn(5, 3, dtype=tg.float64, requires_grad=True)
    bn = nn.BatchNorm1d(3)
    bn.weight = nn.Parameter(tg.tensor([1.0, 2.0, 0.5], dtype=tg.float64))
    bn.bias = nn.Parameter(tg.tensor([0.0, 1.0, -1.0], dtype=tg.float64))
    bn.running_mean = tg.zeros(3, dtype=tg.float64)
    bn.register_buffer("running_mean", tg.zeros(3, dtype=tg.float64))
    bn.register_buffer("running_var", tg.ones(3, dtype=tg.float64))
    assert tg.testing.gradcheck(lambda x: bn(x), [x])
    ln = nn.LayerNorm(3)
    ln.weight = nn.Parameter(tg.tensor([1.5, -1.0, 2.0], dtype=tg.float64))
    ln.bias = nn.Parameter(tg.tensor([0.1, 0.2, 0.3], dtype=tg.float64))
    assert tg.testing.gradcheck(lambda x: ln(x), [x])
    ln = nn.LayerNorm(3)
    y = ln(tg.randn(4, 3))
    np.testing.assert_allclose(y.numpy().mean(-1), 0, atol=1e-5)


torch = pytest.importorskip("torch")


def _copy_linear(tl, ml):
    tl.weight.data = torch.tensor(ml.weight.numpy().astype(np.float64))
    tl.bias.data = torch.tensor(ml.bias.numpy().astype(np.float64))


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse", "nll", "bce"])
def test_modules_and_losses_match_torch(loss_name):
    tg.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 5, dtype=tg.float64), nn.Tanh(), nn.Linear(5, 3, dtype=tg.float64))
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    _copy_linear(tnet[0], net[0])
    _copy_linear(tnet[2], net[2])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    y = rng.integers(0, 3, 4)
    out, tout = net(tg.tensor(x)), tnet(torch.tensor(x))
    if loss_name == "cross_entropy":
        l, tl = nn.CrossEntropyLoss()(out, tg.tensor(y)), torch.nn.CrossEntropyLoss()(tout, torch.tensor(y))
    elif loss_name == "nll":
        l = nn.NLLLoss()(nn.LogSoftmax(1)(out), tg.tensor(y))
        tl = torch.nn.NLLLoss()(torch.nn.LogSoftmax(1)(tout), torch.tensor(y))
    elif loss_name == "mse":
        t = rng.standard_normal((4, 3))
        l, tl = nn.MSELoss()(out, tg.tensor(t)), torch.nn.MSELoss()(tout, torch.tensor(t))
    else:
        t = rng.uniform(size=(4, 3))
        l, tl = nn.BCEWithLogitsLoss()(out, tg.tensor(t)), torch.nn.BCEWithLogitsLoss()(tout, torch.tensor(t))
    l.backward()
    tl.backward()
    assert abs(l.item() - tl.item()) < 1e-10
    np.testing.assert_allclose(net[0].weight.grad.numpy(), tnet[0].weight.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(net[2].bias.grad.numpy(), tnet[2].bias.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_batchnorm_matches_torch_train_and_eval():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4))
    bn, tbn = nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    for _ in range(3):
        y = bn(tg.tensor(x.astype(np.float32)))
        ty = tbn(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), tbn.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), tbn.running_var.numpy(), atol=1e-6)
    bn.eval(), tbn.eval()
    np.testing.assert_allclose(bn(tg.tensor(x.astype(np.float32))).numpy(),
                               tbn(torch.tensor(x, dtype=torch.float32)).detach().numpy(), atol=1e-5)
