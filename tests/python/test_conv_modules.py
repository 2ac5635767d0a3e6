"""The convolution, pooling and resampling modules (Conv1d, Conv2d,
ConvTranspose2d, MaxPool2d, AvgPool2d, MaxUnpool2d, AdaptiveAvgPool2d,
Upsample) against PyTorch's: the same constructor arguments and defaults,
the same parameter names, shapes and init bounds, the same repr, and a
PyTorch state dict loaded into tapegrad gives PyTorch's outputs and
gradients."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn

from assertions import raises

torch = pytest.importorskip("torch")

# (tapegrad constructor, torch constructor, args, kwargs, input shape)
LAYERS = [
    ("Conv2d", (3, 6, 3), {}, (2, 3, 7, 8)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(2, 1), groups=2), (2, 4, 9, 8)),
    ("Conv2d", (4, 8, 3), dict(padding="same", groups=4, bias=False), (1, 4, 6, 6)),
    ("Conv2d", (2, 3, 4), dict(padding="valid", dilation=2), (1, 2, 9, 9)),
    ("Conv1d", (3, 4, 3), {}, (2, 3, 10)),
    ("Conv1d", (4, 6, 2), dict(stride=2, padding=1, dilation=3, groups=2), (2, 4, 12)),
    ("Conv1d", (4, 4, 4), dict(padding="same", bias=False), (1, 4, 7)),
    ("ConvTranspose2d", (4, 6, 3), {}, (2, 4, 5, 4)),
    ("ConvTranspose2d", (4, 6, (3, 2)), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2)),
     (1, 4, 4, 5)),
    ("ConvTranspose2d", (3, 2, 2), dict(stride=2, bias=False), (1, 3, 3, 3)),
    ("MaxPool2d", (2,), {}, (2, 3, 7, 8)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, dilation=(1, 2), ceil_mode=True), (2, 3, 9, 8)),
    ("AvgPool2d", (2,), {}, (2, 3, 7, 8)),
    ("AvgPool2d", ((3, 2),), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 3, 9, 8)),
    ("AvgPool2d", (3,), dict(stride=1, padding=1, divisor_override=4), (1, 2, 5, 6)),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 7, 5)),
    ("Upsample", (), dict(scale_factor=2), (1, 2, 3, 4)),
    ("Upsample", (), dict(size=(5, 7), mode="bilinear", align_corners=False), (1, 2, 3, 4)),
    ("Upsample", (), dict(scale_factor=1.5, mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    ("Upsample", (), dict(size=9, mode="linear"), (2, 2, 4)),
]
IDS = [f"{n}-{i}" for i, (n, *_rest) in enumerate(LAYERS)]


def _pair_layers(name, args, kwargs, dtype):
    t = getattr(torch.nn, name)(*args, **kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    extra = {"dtype": tg.float64 if dtype == np.float64 else tg.float32} if name.startswith("Conv") else {}
    m = getattr(nn, name)(*args, **kwargs, **extra)
    return m, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_module_with_a_pytorch_state_dict_gives_pytorch_outputs(name, args, kwargs, shape, dtype):
    m, t = _pair_layers(name, args, kwargs, dtype)
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    assert sorted(dict(m.named_parameters())) == sorted(state)
    for k, v in m.state_dict().items():
        assert tuple(v.shape) == state[k].shape, k
    m.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    tx, px = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, py = m(tx), t(px)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(y.numpy(), py.detach().numpy(), **tol)
    g = np.random.default_rng(1).standard_normal(tuple(py.shape)).astype(dtype)
    (y * tg.tensor(g)).sum().backward()
    (py * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), **tol)
    params = dict(m.named_parameters())
    for k, p in t.named_parameters():
        np.testing.assert_allclose(params[k].grad.numpy(), p.grad.numpy(), **tol)


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_module_repr_is_pytorchs(name, args, kwargs, shape):
    m, t = _pair_layers(name, args, kwargs, np.float32)
    assert repr(m) == repr(t)


@pytest.mark.parametrize("name,args,kwargs", [
    ("Conv2d", (4, 6, (3, 2)), dict(groups=2)), ("Conv1d", (6, 4, 5), dict(groups=2)),
    ("ConvTranspose2d", (4, 6, 3), dict(groups=2)), ("Conv2d", (3, 5, 1), {}),
])
def test_conv_init_is_pytorchs_kaiming_uniform(name, args, kwargs):
    """The same bound for weight and bias as PyTorch (1/sqrt(fan_in)): the
    values stay inside it and fill it."""
    tg.manual_seed(0)
    ms = [getattr(nn, name)(*args, **kwargs) for _ in range(30)]
    t = getattr(torch.nn, name)(*args, **kwargs)
    fan_in = torch.nn.init._calculate_fan_in_and_fan_out(t.weight)[0]
    bound = 1 / math.sqrt(fan_in)
    for what in ("weight", "bias"):
        vals = np.concatenate([getattr(m, what).numpy().ravel() for m in ms])
        assert tuple(getattr(ms[0], what).shape) == tuple(getattr(t, what).shape)
        assert np.abs(vals).max() <= bound
        assert np.abs(vals).max() > 0.9 * bound
        assert abs(vals.std() - bound / math.sqrt(3)) < 0.15 * bound


def test_conv_transpose2d_output_size_as_pytorch():
    m = nn.ConvTranspose2d(4, 2, 3, stride=3, padding=1, dtype=tg.float64)
    t = torch.nn.ConvTranspose2d(4, 2, 3, stride=3, padding=1).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((1, 4, 3, 3))
    for size in [(7, 7), (8, 9), [1, 2, 9, 8]]:
        y, py = m(tg.tensor(x), output_size=size), t(torch.tensor(x), output_size=size)
        np.testing.assert_allclose(y.numpy(), py.detach().numpy(), rtol=1e-12, atol=1e-12)
    with raises(ValueError, "ConvTranspose2d", "output size", "(10, 7)", "7 to 9"):
        m(tg.tensor(x), output_size=(10, 7))


def test_max_unpool2d_module_with_max_pool2d_indices():
    pool, unpool = nn.MaxPool2d(2, stride=2, return_indices=True), nn.MaxUnpool2d(2, stride=2)
    tpool, tunpool = torch.nn.MaxPool2d(2, stride=2, return_indices=True), torch.nn.MaxUnpool2d(2, stride=2)
    x = np.random.default_rng(3).permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6).astype(np.float64)
    y, i = pool(tg.tensor(x))
    py, pi = tpool(torch.tensor(x))
    got = unpool(y, i, output_size=(5, 6))
    want = tunpool(py, pi, output_size=(5, 6))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert repr(unpool) == repr(tunpool)


def test_module_argument_errors():
    with raises(ValueError, "Conv2d", "in_channels (3)", "groups (2)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with raises(ValueError, "Conv1d", "out_channels (5)", "groups (2)"):
        nn.Conv1d(4, 5, 3, groups=2)
    with raises(ValueError, "Conv2d", "padding", "'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with raises(ValueError, "Conv2d", "padding='same'", "strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with raises(ValueError, "Conv2d", "padding_mode", "'reflect'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with raises(ValueError, "ConvTranspose2d", "groups must be a positive integer"):
        nn.ConvTranspose2d(3, 4, 3, groups=0)
    with raises(ValueError, "conv2d:", "4 channels", "(1, 4, 8, 8)"):
        nn.Conv2d(3, 4, 3)(tg.ones(1, 4, 8, 8))


def test_modules_are_exported():
    for name in ("Conv1d", "ConvTranspose2d", "MaxUnpool2d", "AdaptiveAvgPool2d", "Upsample"):
        assert name in nn.__all__ and getattr(nn, name).__module__ == "tapegrad.nn.conv"
    for name in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        assert name in nn.__all__
