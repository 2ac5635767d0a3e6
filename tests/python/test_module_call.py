"""Module.__call__ and the activation modules after the fixed-cost trim of
issue 16 (no copy of an empty hook list, no keyword dict for an activation
without parameters): the same behaviour as before."""
import numpy as np

import tapegrad as tg
from tapegrad import nn


def test_forward_hooks_run_in_order_and_may_remove_themselves():
    m = nn.Linear(3, 2)
    x = tg.ones(1, 3)
    seen = []
    handles = []

    def once(mod, args, out):
        seen.append("once")
        handles[0].remove()  # removing itself during the call
    handles.append(m.register_forward_hook(once))
    m.register_forward_hook(lambda mod, args, out: seen.append("always"))
    m.register_forward_hook(lambda mod, args, out: out * 2.0)  # replaces the output
    want = tg._C.linear(x, m.weight, m.bias).numpy() * 2
    np.testing.assert_allclose(m(x).numpy(), want)
    np.testing.assert_allclose(m(x).numpy(), want)
    assert seen == ["once", "always", "always"]


def test_activation_parameters_are_read_at_call_time():
    x = tg.from_numpy(np.array([-2.0, 0.0, 3.0], np.float32))
    m = nn.LeakyReLU(0.1)
    np.testing.assert_allclose(m(x).numpy(), [-0.2, 0.0, 3.0], rtol=1e-6)
    m.negative_slope = 0.5
    np.testing.assert_allclose(m(x).numpy(), [-1.0, 0.0, 3.0], rtol=1e-6)
    r = nn.SiLU(inplace=True)  # only inplace: accepted, computed out of place
    np.testing.assert_allclose(r(x).numpy(), x.numpy() / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_array_equal(x.numpy(), [-2.0, 0.0, 3.0])
    assert repr(r) == "SiLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    e = nn.ELU(alpha=2.0, inplace=True)
    e.alpha = 1.0
    np.testing.assert_allclose(e(x).numpy(), [np.expm1(-2.0), 0.0, 3.0], rtol=1e-6)
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Tanh())
    y = seq(tg.ones(2, 3))
    lin = seq[0]
    np.testing.assert_allclose(y.numpy(), np.tanh(np.maximum(tg._C.linear(tg.ones(2, 3), lin.weight, lin.bias).numpy(), 0)), rtol=1e-6)
