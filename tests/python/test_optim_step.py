"""Adam.step's one pass over the parameters (issue 16, the step's fixed
cost): per-parameter step counts, lazily created state in the same order,
parameters without a gradient left alone, and the same bits as the float32
reference formula."""
import numpy as np

import tapegrad as tg
from optim_reference import accessors, adam_reference


def test_per_parameter_step_counts_and_state_order():
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=s).astype(np.float32) for s in [(3, 4), (5,), (2, 2)]]
    ps = [tg.from_numpy(v.copy()) for v in vals]
    for p in ps:
        p.requires_grad = True
    opt = tg.optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01}], lr=1e-3)
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in vals] for _ in range(4)]
    # steps 1 and 3 without ps[1]'s gradient, step 2 without ps[2]'s
    skip = {0: {1}, 1: {2}, 2: {1}, 3: set()}
    want = [v.copy() for v in vals]
    ref_grads = {i: [] for i in range(3)}
    for t in range(4):
        opt.zero_grad()
        for i, p in enumerate(ps):
            if i not in skip[t]:
                p.grad = tg.from_numpy(grads[t][i])
                ref_grads[i].append(grads[t][i])
        opt.step()
    for i in range(3):
        cell = [want[i]]
        adam_reference(accessors(cell), [[g] for g in ref_grads[i]], 0.01 if i == 2 else 1e-3, 0.0, False)
        np.testing.assert_array_equal(ps[i].numpy(), cell[0])
    assert [opt.state[p]["step"] for p in ps] == [4, 2, 3]
    assert [list(opt.state[p]) for p in ps] == [["step", "exp_avg", "exp_avg_sq"]] * 3
    # state created as gradients first arrived: ps[1] had none at step 1
    assert [id(p) for p in opt.state] == [id(ps[0]), id(ps[2]), id(ps[1])]
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and sd["state"][1]["step"] == 2


def test_a_parameter_that_never_has_a_gradient_gets_no_state():
    a, b = tg.zeros(3, requires_grad=True), tg.zeros(3, requires_grad=True)
    opt = tg.optim.Adam([a, b])
    a.grad = tg.ones(3)
    opt.step()
    assert b not in opt.state and opt.state[a]["step"] == 1
    np.testing.assert_allclose(a.numpy(), -1e-3, rtol=1e-5)
    np.testing.assert_array_equal(b.numpy(), 0)
    opt.zero_grad()
    opt.step()  # nothing to do
    assert opt.state[a]["step"] == 1
