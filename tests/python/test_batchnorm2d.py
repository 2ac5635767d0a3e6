"""nn.BatchNorm2d (and what it shares with BatchNorm1d): statistics per
channel over (N, H, W), running statistics, momentum=None, eval mode,
gradients (finite differences in float64, PyTorch in float32), the same
bits on one and two threads, errors that name the layer and the shape."""
import numpy as np
import pytest

import tapegrad as tg
from kernel_paths import with_threads
from tapegrad import nn


def _x(shape, seed=0, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 0.5).astype(dtype)


def test_training_normalises_each_channel():
    x = _x((6, 3, 5, 4))
    y = nn.BatchNorm2d(3)(tg.tensor(x)).numpy().astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    want = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_gradcheck_training_and_eval():
    rng = np.random.default_rng(1)
    x = tg.tensor(rng.standard_normal((3, 2, 3, 4)), requires_grad=True)
    bn = nn.BatchNorm2d(2)
    bn.weight = nn.Parameter(tg.tensor([1.5, -0.5], dtype=tg.float64))
    bn.bias = nn.Parameter(tg.tensor([0.25, 1.0], dtype=tg.float64))
    bn.register_buffer("running_mean", tg.tensor([0.1, -0.2], dtype=tg.float64))
    bn.register_buffer("running_var", tg.tensor([0.5, 2.0], dtype=tg.float64))
    def with_params(x, w, b):
        bn.weight, bn.bias = w, b
        return bn(x)

    assert tg.testing.gradcheck(with_params, (x, bn.weight, bn.bias))
    bn.eval()
    assert tg.testing.gradcheck(lambda x: bn(x), (x,))


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch(momentum, affine):
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm2d(4, momentum=momentum, affine=affine)
    tb = torch.nn.BatchNorm2d(4, momentum=momentum, affine=affine)
    if affine:
        w, b = _x((4,), 7), _x((4,), 8)
        bn.weight, bn.bias = nn.Parameter(tg.tensor(w)), nn.Parameter(tg.tensor(b))
        with torch.no_grad():
            tb.weight.copy_(torch.tensor(w)), tb.bias.copy_(torch.tensor(b))
    assert list(bn.state_dict()) == list(tb.state_dict())
    for step in range(3):  # training: outputs, input and parameter gradients, running statistics
        x, g = _x((5, 4, 6, 7), step), _x((5, 4, 6, 7), 10 + step)
        tx, px = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, py = bn(tx), tb(px)
        y.backward(tg.tensor(g)), py.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), py.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-4, atol=1e-4)
        if affine:
            np.testing.assert_allclose(bn.weight.grad.numpy(), tb.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(bn.bias.grad.numpy(), tb.bias.grad.numpy(), rtol=1e-4, atol=1e-3)
            bn.weight.grad = bn.bias.grad = None
            tb.weight.grad = tb.bias.grad = None
    np.testing.assert_allclose(bn.running_mean.numpy(), tb.running_mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), tb.running_var.numpy(), rtol=1e-6, atol=1e-6)
    assert int(bn.num_batches_tracked.item()) == int(tb.num_batches_tracked) == 3
    bn.eval(), tb.eval()
    x = _x((2, 4, 3, 3), 99)
    np.testing.assert_allclose(bn(tg.tensor(x)).numpy(), tb(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3  # eval does not count


def test_eval_uses_running_statistics_and_leaves_them():
    bn = nn.BatchNorm2d(2)
    bn(tg.tensor(_x((4, 2, 3, 3))))
    mean, var = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    bn.eval()
    x = _x((3, 2, 2, 2), 5)
    y = bn(tg.tensor(x)).numpy()
    want = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean.numpy(), mean)
    np.testing.assert_array_equal(bn.running_var.numpy(), var)


def test_same_bits_on_one_and_two_threads():
    x, g = _x((32, 16, 14, 14), 3), _x((32, 16, 14, 14), 4)

    def run():
        bn = nn.BatchNorm2d(16)
        tx = tg.tensor(x, requires_grad=True)
        y = bn(tx)
        y.backward(tg.tensor(g))
        return y.numpy(), tx.grad.numpy(), bn.weight.grad.numpy(), bn.running_var.numpy()

    for a, b in zip(with_threads(1, run), with_threads(2, run)):
        assert a.tobytes() == b.tobytes()


def test_state_dict_round_trip_and_a_cnn_trains():
    tg.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = tg.tensor(_x((16, 1, 6, 6), 2))
    y = tg.tensor((np.arange(16) % 2).astype(np.int64))
    opt = tg.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = tg.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    other.load_state_dict(net.state_dict())
    net.eval(), other.eval()
    np.testing.assert_array_equal(other(x).numpy(), net(x).numpy())
    assert int(other[1].num_batches_tracked.item()) == 20


@pytest.mark.parametrize("shape", [(4, 3, 5), (4, 2, 5, 5), (3,), (2, 3, 4, 5, 6)])
def test_errors_name_the_layer_and_the_shape(shape):
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, 3, H, W\), got"):
        nn.BatchNorm2d(3)(tg.zeros(*shape))


def test_batchnorm1d_counts_batches_too():
    bn = nn.BatchNorm1d(3, momentum=None)
    xs = [_x((5, 3), s) for s in range(4)]
    for x in xs:
        bn(tg.tensor(x))
    assert int(bn.num_batches_tracked.item()) == 4
    want = np.mean([x.var(axis=0, ddof=1) for x in xs], axis=0)
    np.testing.assert_allclose(bn.running_var.numpy(), want, rtol=1e-5)
    assert repr(bn) == "BatchNorm1d(3, eps=1e-05, momentum=None, affine=True)"


def test_state_dicts_saved_before_the_batch_count_still_load():
    """num_batches_tracked is new in session 14: a state dict without it
    (saved by an older tapegrad) loads, strictly, and the count stays."""
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    other[1](tg.tensor(_x((5, 4))))
    other.load_state_dict(old)
    np.testing.assert_array_equal(other[1].running_var.numpy(), net[1].running_var.numpy())
    assert int(other[1].num_batches_tracked.item()) == 1
    with pytest.raises(KeyError, match="missing keys.*running_var"):
        other.load_state_dict({k: v for k, v in old.items() if not k.endswith("1.running_var")})
