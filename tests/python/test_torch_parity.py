"""The same expressions in tapegrad and in PyTorch (float64): values,
gradients and second derivatives agree."""
import numpy as np
import pytest

import tapegrad as tg

from conftest import import_torch

torch = import_torch()
F = torch.nn.functional

RNG = np.random.default_rng(20240607)


def arrays(*shapes, positive=False):
    out = []
    for s in shapes:
        a = RNG.standard_normal(s)
        out.append(np.abs(a) + 0.5 if positive else a)
    return out


def mlp(m, x, w1, b1, w2, b2, labels):
    h = m.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    return m.ce(logits, labels)


class TG:
    tanh = staticmethod(tg.tanh)
    ce = staticmethod(lambda z, y: tg.cross_entropy(z, y))
    softmax = staticmethod(lambda z, axis: tg.softmax(z, axis=axis))
    log_softmax = staticmethod(lambda z, axis: tg.log_softmax(z, axis=axis))
    where = staticmethod(tg.where)
    maximum = staticmethod(tg.maximum)
    logsumexp = staticmethod(lambda z, axis, keepdims=False: tg.logsumexp(z, axis=axis, keepdims=keepdims))
    var = staticmethod(lambda z, axis, ddof=0: z.var(axis=axis, ddof=ddof))
    sum = staticmethod(lambda z, axis=None, keepdims=False: z.sum(axis=axis, keepdims=keepdims))
    mean = staticmethod(lambda z, axis=None, keepdims=False: z.mean(axis=axis, keepdims=keepdims))
    max = staticmethod(lambda z, axis, keepdims=False: z.max(axis=axis, keepdims=keepdims))
    sigmoid = staticmethod(tg.sigmoid)
    gelu = staticmethod(tg.gelu)
    softplus = staticmethod(tg.softplus)
    mse = staticmethod(lambda a, b: tg.mse_loss(a, b))
    bce = staticmethod(lambda a, b: tg.binary_cross_entropy_with_logits(a, b))
    exp = staticmethod(tg.exp)
    log = staticmethod(tg.log)
    sqrt = staticmethod(tg.sqrt)
    concat = staticmethod(lambda xs, axis: tg.concat(xs, axis=axis))
    pad = staticmethod(lambda z, p: tg.pad(z, p))
    gather = staticmethod(lambda z, axis, idx: tg.gather(z, axis, idx))
    neg_step = staticmethod(lambda a: a[1:, ::-2])


class TH:
    tanh = staticmethod(torch.tanh)
    ce = staticmethod(lambda z, y: F.cross_entropy(z, y))
    softmax = staticmethod(lambda z, axis: torch.softmax(z, dim=axis))
    log_softmax = staticmethod(lambda z, axis: torch.log_softmax(z, dim=axis))
    where = staticmethod(lambda c, a, b: torch.where(c != 0, a, b))
    maximum = staticmethod(lambda a, b: torch.maximum(a, torch.as_tensor(b, dtype=a.dtype)))
    logsumexp = staticmethod(lambda z, axis, keepdims=False: torch.logsumexp(z, dim=axis, keepdim=keepdims))
    var = staticmethod(lambda z, axis, ddof=0: torch.var(z, dim=axis, correction=ddof))
    sum = staticmethod(lambda z, axis=None, keepdims=False: z.sum() if axis is None else z.sum(dim=axis, keepdim=keepdims))
    mean = staticmethod(lambda z, axis=None, keepdims=False: z.mean() if axis is None else z.mean(dim=axis, keepdim=keepdims))
    max = staticmethod(lambda z, axis, keepdims=False: torch.amax(z, dim=axis, keepdim=keepdims))
    sigmoid = staticmethod(torch.sigmoid)
    gelu = staticmethod(F.gelu)
    softplus = staticmethod(F.softplus)
    mse = staticmethod(lambda a, b: F.mse_loss(a, b))
    bce = staticmethod(lambda a, b: F.binary_cross_entropy_with_logits(a, b))
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    sqrt = staticmethod(torch.sqrt)
    concat = staticmethod(lambda xs, axis: torch.cat(xs, dim=axis))
    pad = staticmethod(lambda z, p: F.pad(z, [v for pair in reversed(p) for v in pair]))
    gather = staticmethod(lambda z, axis, idx: torch.gather(z, axis, idx))
    neg_step = staticmethod(lambda a: a[1:][:, [4, 2, 0]])  # torch has no negative steps


LABELS = np.array([2, 0, 4, 1, 3, 3])
IDX = np.array([[0, 3], [1, 1], [2, 0], [3, 2]])
MASK = (RNG.standard_normal((4, 5)) > 0).astype(np.float64)

# name: (function of (m, *tensors), input arrays, indices of inputs that require grad)
EXPRESSIONS = {
    "mlp_cross_entropy": (lambda m, x, w1, b1, w2, b2: mlp(m, x, w1, b1, w2, b2, m.labels),
                          arrays((6, 3), (3, 8), (8,), (8, 5), (5,))),
    "softmax_cross_entropy": (lambda m, z: m.ce(z * 2.0, m.labels) + m.softmax(z, 1)[:, 0].sum(),
                              arrays((6, 5))),
    "broadcasting_adds": (lambda m, a, b, c: ((a + b) * c - b / (c * c + 1.0)).sum(),
                          arrays((2, 3, 4), (3, 1), (4,))),
    "matmul_chain": (lambda m, a, b, c, v: m.tanh(a @ b @ c) @ v,
                     arrays((4, 5), (5, 3), (3, 6), (6,))),
    "batched_matmul": (lambda m, a, b: m.sum(m.sigmoid(a @ b), axis=(0, 2)),
                       arrays((2, 3, 4, 5), (5, 2))),
    "reductions_keepdims": (lambda m, a: (a - m.mean(a, axis=1, keepdims=True)) / m.sqrt(m.var(a, axis=1).reshape(3, 1, 4) + 1.0)
                            + m.max(a, axis=(0, 2), keepdims=True) * m.sum(a, axis=2, keepdims=True),
                            arrays((3, 5, 4))),
    "slicing_indexing": (lambda m, a: (m.neg_step(a) * a[:-1, ::2]).sum() + a[m.rows, m.cols].sum() + a[2] @ a[0],
                         arrays((4, 5))),
    "where_maximum": (lambda m, a, b: m.where(m.mask, m.maximum(a, b), a * b) + m.maximum(a, 0.3),
                      arrays((4, 5), (4, 5))),
    "logsumexp_var": (lambda m, a: m.logsumexp(a, axis=1) * m.var(a, axis=0, ddof=1).sum()
                      + m.logsumexp(a, axis=(0, 1), keepdims=True).sum(),
                      arrays((4, 5))),
    "log_softmax_gather": (lambda m, z: m.gather(m.log_softmax(z, 1), 1, m.idx).sum(),
                           arrays((4, 5))),
    "activations": (lambda m, a: m.gelu(a) + m.softplus(a) * m.exp(-a * a) + m.log(a * a + 1.0),
                    arrays((3, 4))),
    "losses": (lambda m, a, b: m.mse(a, b) + m.bce(a, m.sigmoid(b)),
               arrays((3, 4), (3, 4))),
    "concat_pad": (lambda m, a, b: m.pad(m.concat([a, b * 2.0], 1), ((1, 0), (2, 1))).tanh().sum(),
                   arrays((3, 2), (3, 4))),
    "pow_div": (lambda m, a, b: (a ** b / (b + 2.0)).sum() + (2.0 ** b).sum(),
                arrays((5,), (5,), positive=True)),
}


def _setup(m, kind):
    if kind == "tg":
        m.labels = tg.tensor(LABELS)
        m.rows, m.cols = tg.tensor([0, 2, 3]), tg.tensor([4, 0, 1])
        m.mask = tg.tensor(MASK)
        m.idx = tg.tensor(IDX)
    else:
        m.labels = torch.tensor(LABELS)
        m.rows, m.cols = torch.tensor([0, 2, 3]), torch.tensor([4, 0, 1])
        m.mask = torch.tensor(MASK)
        m.idx = torch.tensor(IDX)
    return m


_setup(TG, "tg")
_setup(TH, "torch")


def run_both(name):
    fn, arrs = EXPRESSIONS[name]
    xs_tg = [tg.tensor(a, requires_grad=True) for a in arrs]
    xs_th = [torch.tensor(a, requires_grad=True) for a in arrs]
    return fn, xs_tg, xs_th


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_values_and_gradients(name):
    fn, xs_tg, xs_th = run_both(name)
    y_tg = fn(TG, *xs_tg)
    y_th = fn(TH, *xs_th)
    assert tuple(y_tg.shape) == tuple(y_th.shape)
    np.testing.assert_allclose(y_tg.numpy(), y_th.detach().numpy(), rtol=1e-10, atol=1e-12)
    seed = RNG.standard_normal(y_tg.shape)
    y_tg.backward(tg.tensor(seed))
    y_th.backward(torch.tensor(seed))
    for a, b in zip(xs_tg, xs_th):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["mlp_cross_entropy", "softmax_cross_entropy", "matmul_chain",
                                  "activations", "logsumexp_var", "losses", "broadcasting_adds",
                                  "log_softmax_gather", "pow_div"])
def test_second_derivatives(name):
    """Hessian-vector products through create_graph agree with torch's."""
    fn, xs_tg, xs_th = run_both(name)
    vs = [RNG.standard_normal(a.shape) for a in EXPRESSIONS[name][1]]
    y_tg = fn(TG, *xs_tg)
    y_th = fn(TH, *xs_th)
    seed = RNG.standard_normal(y_tg.shape)
    g_tg = tg.grad(y_tg, xs_tg, tg.tensor(seed), create_graph=True)
    g_th = torch.autograd.grad(y_th, xs_th, torch.tensor(seed), create_graph=True)
    for a, b in zip(g_tg, g_th):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-11)
    dot_tg = sum(((g * tg.tensor(v)).sum() for g, v in zip(g_tg, vs)), tg.tensor(0.0, dtype=tg.float64))
    dot_th = sum((g * torch.tensor(v)).sum() for g, v in zip(g_th, vs))
    hv_tg = tg.grad(dot_tg, xs_tg)
    hv_th = torch.autograd.grad(dot_th, xs_th, allow_unused=True)
    for a, b in zip(hv_tg, hv_th):
        want = np.zeros(a.shape) if b is None else b.numpy()
        np.testing.assert_allclose(a.numpy(), want, rtol=1e-8, atol=1e-10)


def test_third_derivative_of_tanh():
    x_tg = tg.tensor(np.linspace(-2, 2, 7), requires_grad=True)
    x_th = torch.tensor(np.linspace(-2, 2, 7), requires_grad=True)
    g_tg, g_th = x_tg.tanh().sum(), x_th.tanh().sum()
    for _ in range(3):
        (g_tg,) = tg.grad(g_tg, x_tg, create_graph=True)
        (g_th,) = torch.autograd.grad(g_th, x_th, create_graph=True)
        np.testing.assert_allclose(g_tg.numpy(), g_th.detach().numpy(), rtol=1e-10, atol=1e-12)
        g_tg, g_th = g_tg.sum(), g_th.sum()


def test_training_steps_agree():
    """Ten SGD steps of a small MLP: the parameters stay equal."""
    x, w1, b1, w2, b2 = arrays((6, 3), (3, 8), (8,), (8, 5), (5,))
    p_tg = [tg.tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    p_th = [torch.tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    xt, xh = tg.tensor(x), torch.tensor(x)
    for _ in range(10):
        l_tg = mlp(TG, xt, *p_tg, TG.labels)
        l_th = mlp(TH, xh, *p_th, TH.labels)
        l_tg.backward()
        l_th.backward()
        with tg.no_grad():
            for p in p_tg:
                p -= 0.5 * p.grad
                p.grad = None
        with torch.no_grad():
            for p in p_th:
                p -= 0.5 * p.grad
                p.grad = None
        assert l_tg.item() == pytest.approx(l_th.item(), rel=1e-10)
    for a, b in zip(p_tg, p_th):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
