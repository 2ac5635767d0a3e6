"""nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict: registration
(parameters, state_dict, train/eval, zero_grad), list and dict behaviour, and
errors, compared with PyTorch's containers where they share behaviour."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn

torch = pytest.importorskip("torch")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Sequential(nn.Linear(3, 1))})
        self.scales = nn.ParameterList([nn.Parameter(tg.ones(3)), tg.full((3,), 2.0)])
        self.extra = nn.ParameterDict({"shift": nn.Parameter(tg.zeros(3))})
        self.drop = nn.ModuleList([nn.Dropout(0.5)])

    def forward(self, x, head="a"):
        for blk, s in zip(self.blocks, self.scales):
            x = blk(x) * s
        return self.heads[head](x + self.extra["shift"])


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 2),
                                          "b": torch.nn.Sequential(torch.nn.Linear(3, 1))})
        self.scales = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(3)), torch.full((3,), 2.0)])
        self.extra = torch.nn.ParameterDict({"shift": torch.nn.Parameter(torch.zeros(3))})
        self.drop = torch.nn.ModuleList([torch.nn.Dropout(0.5)])


def test_contents_are_registered_with_pytorchs_names():
    net, ref = Net(), TorchNet()
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in ref.named_parameters()]
    assert list(net.state_dict()) == list(ref.state_dict())
    assert len(list(net.parameters())) == 11
    # the tensor given to ParameterList became a Parameter that requires grad
    assert isinstance(net.scales[1], nn.Parameter) and net.scales[1].requires_grad
    assert net.scales[1].tolist() == [2.0, 2.0, 2.0]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in ref.named_modules()]


def test_train_eval_zero_grad_and_state_dict_reach_the_contents():
    net = Net()
    net.eval()
    assert not net.drop[0].training and not net.heads["b"][0].training
    net.train()
    assert net.drop[0].training and net.blocks[1].training
    loss = net(tg.ones(4, 3)).sum()
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    # head "b" did not take part: its parameters have no gradient; all others do
    assert sum(g is not None for g in grads) == 9
    assert net.scales[0].grad is not None and net.extra["shift"].grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    other = Net()
    other.load_state_dict(net.state_dict())
    x = tg.randn(5, 3)
    np.testing.assert_array_equal(other(x).numpy(), net(x).numpy())
    np.testing.assert_array_equal(other.scales[1].numpy(), net.scales[1].numpy())


def test_gradient_through_containers_matches_pytorch():
    net, ref = Net(), TorchNet()
    with torch.no_grad():
        ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in net.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    out = net(tg.tensor(x))
    blk_x = torch.from_numpy(x)
    for blk, s in zip(ref.blocks, ref.scales):
        blk_x = blk(blk_x) * s
    ref_out = ref.heads["a"](blk_x + ref.extra["shift"])
    np.testing.assert_allclose(out.numpy(), ref_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    (out * out).sum().backward()
    (ref_out * ref_out).sum().backward()
    refg = dict(ref.named_parameters())
    for n, p in net.named_parameters():
        if refg[n].grad is None:
            assert p.grad is None, n
        else:
            np.testing.assert_allclose(p.grad.numpy(), refg[n].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=n)


def test_module_list_behaves_like_a_list_and_renumbers_like_pytorch():
    mods = [nn.Linear(1, 1) for _ in range(5)]
    ml = nn.ModuleList(mods[:3])
    tl = torch.nn.ModuleList([torch.nn.Linear(1, 1) for _ in range(3)])
    assert len(ml) == 3 and ml[0] is mods[0] and ml[-1] is mods[2] and list(ml) == mods[:3]
    sl = ml[1:]
    assert isinstance(sl, nn.ModuleList) and list(sl) == mods[1:3]
    ml.insert(1, mods[3])
    tl.insert(1, torch.nn.Linear(1, 1))
    ml.append(mods[4])
    tl.append(torch.nn.Linear(1, 1))
    assert list(ml) == [mods[0], mods[3], mods[1], mods[2], mods[4]]
    del ml[0]
    del tl[0]
    del ml[1:3]
    del tl[1:3]
    assert list(ml) == [mods[3], mods[4]]
    assert list(ml.state_dict()) == list(tl.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ml[0] = mods[0]
    assert ml[0] is mods[0] and list(ml._modules) == ["0", "1"]
    assert ml.pop() is mods[4] and len(ml) == 1
    ml += [mods[1], mods[2]]
    ml.extend(iter([mods[3]]))
    assert list(ml) == [mods[0], mods[1], mods[2], mods[3]]
    both = ml + nn.ModuleList([mods[4]])
    assert list(both) == mods and len(ml) == 4
    assert mods[2] in ml and nn.Linear(1, 1) not in ml


def test_module_list_errors():
    ml = nn.ModuleList([nn.ReLU()])
    with pytest.raises(TypeError, match=r"ModuleList.append: expected a Module, got int"):
        ml.append(3)
    with pytest.raises(TypeError, match="ParameterList"):
        ml.append(tg.zeros(2))
    with pytest.raises(TypeError, match="expected a Module, got str"):
        nn.ModuleList([nn.ReLU(), "relu"])
    with pytest.raises(TypeError, match="extend: expected an iterable, got ReLU"):
        ml.extend(nn.ReLU())
    with pytest.raises(TypeError, match="got NoneType"):
        ml.insert(0, None)
    with pytest.raises(IndexError, match="index 1 is out of range for 1 item"):
        ml[1]
    with pytest.raises(IndexError, match="index -2"):
        ml[-2] = nn.ReLU()
    with pytest.raises(TypeError, match="indices must be integers"):
        ml["0"]
    with pytest.raises(NotImplementedError, match="container, not a layer"):
        ml(tg.zeros(2))
    # a failed extend changes nothing
    with pytest.raises(TypeError):
        ml.extend([nn.Tanh(), 1.5])
    assert len(ml) == 1


def test_module_dict_behaves_like_a_dict():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Linear(2, 2)
    md = nn.ModuleDict([("a", a), ("b", b)])
    assert list(md) == ["a", "b"] and list(md.values()) == [a, b] and list(md.items()) == [("a", a), ("b", b)]
    assert "a" in md and "z" not in md and len(md) == 2
    md.update({"c": c})
    md["a"] = nn.GELU()  # replacing keeps the place, as in a dict
    assert list(md.keys()) == ["a", "b", "c"] and isinstance(md["a"], nn.GELU)
    assert md.pop("b") is b and list(md) == ["a", "c"]
    assert md.get("b") is None and md.get("c") is c
    assert [n for n, _ in md.named_parameters()] == ["c.weight", "c.bias"]
    del md["c"]
    assert list(md.parameters()) == []
    md.clear()
    assert len(md) == 0
    with pytest.raises(KeyError):
        md["missing"]


@pytest.mark.parametrize("key, exc", [(1, TypeError), ("", KeyError), ("a.b", KeyError),
                                      ("train", KeyError), ("keys", KeyError)])
def test_module_dict_key_errors_match_pytorch(key, exc):
    with pytest.raises(exc):
        torch.nn.ModuleDict()[key] = torch.nn.ReLU()
    md = nn.ModuleDict()
    with pytest.raises(exc):
        md[key] = nn.ReLU()
    assert len(md) == 0


def test_module_dict_value_and_update_errors():
    md = nn.ModuleDict({"a": nn.ReLU()})
    with pytest.raises(TypeError, match=r"ModuleDict\['x'\]: expected a Module, got float"):
        md["x"] = 1.0
    with pytest.raises(ValueError, match="element #1 .* not a \\(key, value\\) pair"):
        md.update([("b", nn.ReLU()), ("c",)])
    with pytest.raises(TypeError, match="expected a mapping or an iterable"):
        md.update(5)
    with pytest.raises(TypeError):
        md.update({"b": nn.ReLU(), "c": "tanh"})
    assert list(md) == ["a"]  # failed updates change nothing
    with pytest.raises(NotImplementedError, match="container"):
        md(tg.zeros(1))


def test_parameter_list_and_dict():
    p = nn.Parameter(tg.zeros(2))
    pl = nn.ParameterList()
    pl.append(p)
    pl.extend([tg.ones(2, 2)])
    pl += [nn.Parameter(tg.ones(1))]
    assert len(pl) == 3 and pl[0] is p and pl[-1].shape == (1,)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    assert isinstance(pl[:2], nn.ParameterList) and pl[:2][0] is p
    pl[0] = tg.full((2,), 3.0)
    assert pl[0].tolist() == [3.0, 3.0] and list(pl._parameters) == ["0", "1", "2"]
    with pytest.raises(TypeError, match="ParameterList.append: expected a Parameter or a Tensor, got list"):
        pl.append([1.0])
    with pytest.raises(TypeError, match="got Linear"):
        pl.append(nn.Linear(1, 1))

    pd = nn.ParameterDict({"w": p})
    pd["b"] = tg.zeros(1)
    pd.update([("c", nn.Parameter(tg.ones(1)))])
    assert list(pd) == ["w", "b", "c"] and pd["w"] is p
    assert [n for n, _ in pd.named_parameters()] == ["w", "b", "c"]
    with pytest.raises(TypeError, match=r"ParameterDict\['z'\]: expected a Parameter or a Tensor, got ndarray"):
        pd["z"] = np.zeros(2)
    with pytest.raises(KeyError):
        pd["a.b"] = p
    del pd["b"]
    assert list(pd) == ["w", "c"]


def test_optimizer_updates_parameters_held_in_containers():
    net = Net()
    before = [p.numpy().copy() for p in net.parameters()]
    opt = tg.optim.SGD(net.parameters(), lr=0.1)
    net(tg.ones(2, 3)).sum().backward()
    opt.step()
    changed = [not np.array_equal(b, p.numpy()) for b, p in zip(before, net.parameters())]
    assert sum(changed) == 9  # every parameter with a gradient moved (head "b" has none)


def test_add_module_and_register_parameter_check_names_and_types():
    m = nn.Module()
    with pytest.raises(TypeError, match="add_module: expected a Module for 'x', got int"):
        m.add_module("x", 1)
    with pytest.raises(KeyError, match="must not contain"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="register_parameter: cannot register a Tensor"):
        m.register_parameter("w", tg.zeros(1))
    with pytest.raises(KeyError, match="already an attribute"):
        m.register_parameter("forward", nn.Parameter(tg.zeros(1)))
    m.add_module("x", nn.ReLU())
    m.add_module("x", nn.Tanh())  # re-registering the same name is allowed
    assert isinstance(m.x, nn.Tanh)


@pytest.mark.parametrize("value, fix", [([nn.Linear(1, 1), nn.ReLU()], "nn.ModuleList"),
                                        ((nn.ReLU(),), "nn.ModuleList"),
                                        ({"a": nn.ReLU()}, "nn.ModuleDict"),
                                        ([nn.Parameter(tg.zeros(1))], "nn.ParameterList"),
                                        ({"w": nn.Parameter(tg.zeros(1))}, "nn.ParameterDict")])
def test_a_plain_list_of_modules_warns_that_it_is_not_registered(value, fix):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = value

    with pytest.warns(UserWarning, match=rf"Net.layers: a plain .* not registered.*{fix}"):
        net = Net()
    assert list(net.parameters()) == []  # the reason for the warning


def test_plain_lists_of_other_things_do_not_warn():
    import warnings
    m = nn.Module()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.sizes = [1, 2]
        m.empty = []
        m.mixed = [nn.ReLU(), 3]
        m.tensors = [tg.zeros(1)]
        m.layers = nn.ModuleList([nn.ReLU()])


def test_module_save_keeps_the_name_and_loads_old_npz_files(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.ModuleList([nn.Linear(4, 2)]))
    net.save(tmp_path / "net.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]  # no ".npz" appended
    other = nn.Sequential(nn.Linear(3, 4), nn.ModuleList([nn.Linear(4, 2)]))
    assert other.load(tmp_path / "net.pt") is other
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k].numpy(), v.numpy())
    # the format Module.save wrote before tg.save: a plain .npz keyed by name
    np.savez(tmp_path / "old.npz", **{k: np.zeros(v.shape, np.float32) for k, v in net.state_dict().items()})
    other.load(tmp_path / "old.npz")
    assert all(not p.numpy().any() for p in other.parameters())
    tg.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        other.load(tmp_path / "list.pt")
