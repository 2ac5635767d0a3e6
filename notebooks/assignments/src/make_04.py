"""Source of notebooks/assignments/04_optimizer.ipynb (instructor version)."""
from cwtools import answer, code, given, md, tests, write

cells = [
md(r"""
# Assignment 4 · Optimizers

`loss.backward()` leaves a gradient in each parameter's `.grad`; the **optimizer** turns
gradients into parameter updates. You will implement SGD with momentum and Adam, and check
them step by step against `tg.optim.SGD` and `tg.optim.Adam` (PyTorch's formulas).

Updates change the parameters **in place** (`p -= ...`, `m *= ...`, `m += ...`) and must not
be recorded on the tape: run them inside `with tg.no_grad():`. Rebinding a name
(`p = p - lr * g`) would create a new tensor and leave the parameter unchanged.

`python -m tapegrad.coursework check 04_optimizer.ipynb` runs the notebook's tests from a
terminal.
""", zh=r"""
# 作业 4 · 优化器

`loss.backward()` 在每个参数的 `.grad` 中留下梯度；**优化器**（optimizer）把梯度变成参数的
更新。你将实现带动量（momentum）的 SGD 和 Adam，并逐步与 `tg.optim.SGD` 和 `tg.optim.Adam`
（即 PyTorch 的公式）相比较。

更新要**就地**修改参数（`p -= ...`、`m *= ...`、`m += ...`），而且不能被记录到记录带上：
请在 `with tg.no_grad():` 里执行它们。重新绑定一个名字（`p = p - lr * g`）会创建一个新张量，
参数本身并不会改变。

在终端里，`python -m tapegrad.coursework check 04_optimizer.ipynb` 会运行笔记本中的测试。
"""),
given(r"""
import numpy as np
import tapegrad as tg
from tapegrad.coursework import assert_grads_close
""", "setup"),
md(r"""
## The test bench

`compare(make_mine, make_reference)` builds two identical copies of a small regression
network (float64), gives each copy to one optimizer, and runs the same training steps on
both: after every step the parameters must agree. One parameter (`unused`) is not part of
the loss, so its `.grad` stays `None`: an optimizer skips such parameters.
""", zh=r"""
## 测试台

`compare(make_mine, make_reference)` 构造一个小型回归网络（float64）的两个完全相同的副本，
把两个副本分别交给两个优化器，并在两者上执行同样的训练步：每一步之后，参数都必须一致。
其中有一个参数（`unused`）不参与损失的计算，所以它的 `.grad` 始终是 `None`：优化器要
跳过这样的参数。
"""),
given(r"""
def make_params(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"W1": (3, 8), "b1": (8,), "W2": (8, 1), "b2": (1,), "unused": (2,)}
    params = {k: tg.tensor(rng.standard_normal(s) * 0.5, requires_grad=True) for k, s in shapes.items()}
    for k, p in params.items():
        p.name = k
    return params

def loss_of(params, step):
    rng = np.random.default_rng(100 + step)
    x = tg.tensor(rng.standard_normal((16, 3)))
    y = tg.tensor(np.sin(x.numpy() @ np.array([[1.0], [-2.0], [0.5]])))   # what to learn
    h = (x @ params["W1"] + params["b1"]).tanh()
    return tg.mse_loss(h @ params["W2"] + params["b2"], y)

def compare(make_mine, make_reference, steps=5, seed=0):
    mine, ref = make_params(seed), make_params(seed)
    opt_mine = make_mine(list(mine.values()))
    opt_ref = make_reference(list(ref.values()))
    for step in range(steps):
        for params, opt in ((mine, opt_mine), (ref, opt_ref)):
            opt.zero_grad()
            loss_of(params, step).backward()
            opt.step()
        assert_grads_close({k: p.detach() for k, p in mine.items()},
                           {k: p.detach() for k, p in ref.items()},
                           rtol=1e-7, atol=1e-10, what=f"after step {step + 1}, the parameter")
""", "bench"),
md(r"""
## Part 1 · SGD with momentum

PyTorch's rule, for each parameter $p$ with gradient $g$ (learning rate $\eta$, momentum
$\mu$):

$$
b \leftarrow \begin{cases} g & \text{at the first step} \\ \mu\, b + g & \text{after}\end{cases},
\qquad p \leftarrow p - \eta\, b ,
$$

and with $\mu = 0$ simply $p \leftarrow p - \eta\, g$.

**Exercise 1** (3 points: 1 for plain SGD, 2 for momentum). Complete `MySGD.step`.
""", zh=r"""
## 第 1 部分 · 带动量的 SGD

PyTorch 的规则：对每个梯度为 $g$ 的参数 $p$（学习率 $\eta$，动量 $\mu$），

$$
b \leftarrow \begin{cases} g & \text{at the first step} \\ \mu\, b + g & \text{after}\end{cases},
\qquad p \leftarrow p - \eta\, b ,
$$

（第一步时 $b = g$，之后 $b \leftarrow \mu b + g$）；当 $\mu = 0$ 时就是简单的
$p \leftarrow p - \eta\, g$，即梯度下降（gradient descent）。

**练习 1**（3 分：普通 SGD 1 分，动量 2 分）。完成 `MySGD.step`。
"""),
answer(r"""
class MySGD:
    def __init__(self, params, lr, momentum=0.0):
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.buffers = [None] * len(self.params)   # one momentum buffer per parameter

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with tg.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                ### BEGIN SOLUTION
                g = p.grad
                if self.momentum != 0:
                    if self.buffers[i] is None:
                        self.buffers[i] = g.clone()
                    else:
                        self.buffers[i] *= self.momentum
                        self.buffers[i] += g
                    g = self.buffers[i]
                p -= self.lr * g
                ### END SOLUTION
""", "my_sgd"),
tests(r"""
compare(lambda ps: MySGD(ps, lr=0.1), lambda ps: tg.optim.SGD(ps, lr=0.1))
### BEGIN HIDDEN TESTS
compare(lambda ps: MySGD(ps, lr=0.03), lambda ps: tg.optim.SGD(ps, lr=0.03), steps=8, seed=1)
### END HIDDEN TESTS
""", "sgd_test", 1),
tests(r"""
compare(lambda ps: MySGD(ps, lr=0.1, momentum=0.9),
        lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9))
### BEGIN HIDDEN TESTS
compare(lambda ps: MySGD(ps, lr=0.05, momentum=0.5),
        lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.5), steps=8, seed=2)
### END HIDDEN TESTS
""", "sgd_momentum_test", 2),
md(r"""
## Part 2 · Adam

Adam keeps two running averages per parameter, of the gradient and of its square, and
corrects their bias towards zero at the start ($t$ is the step number, counted from 1):

$$
m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \qquad
\hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t}, \qquad
p \leftarrow p - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}.
$$

**Exercise 2** (3 points). Complete `MyAdam.step` (the step counter `self.t` is already
incremented).
""", zh=r"""
## 第 2 部分 · Adam

Adam 为每个参数维护两个滑动平均：梯度的和梯度平方的；并在开始阶段校正它们偏向 0 的偏差
（$t$ 是步数，从 1 开始计）：

$$
m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \qquad
\hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t}, \qquad
p \leftarrow p - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}.
$$

**练习 2**（3 分）。完成 `MyAdam.step`（步数计数器 `self.t` 已经加过 1 了）。
"""),
answer(r"""
class MyAdam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [tg.zeros_like(p) for p in self.params]
        self.v = [tg.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        with tg.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                if p.grad is None:
                    continue
                ### BEGIN SOLUTION
                g = p.grad
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                m_hat = m / (1 - beta1 ** self.t)
                v_hat = v / (1 - beta2 ** self.t)
                p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)
                ### END SOLUTION
""", "my_adam"),
tests(r"""
compare(lambda ps: MyAdam(ps, lr=0.01), lambda ps: tg.optim.Adam(ps, lr=0.01))
### BEGIN HIDDEN TESTS
compare(lambda ps: MyAdam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6),
        lambda ps: tg.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6), steps=10, seed=3)
### END HIDDEN TESTS
""", "adam_test", 3),
md(r"""
## Part 3 · Racing them

The same network trained for 300 steps with each optimizer (yours, so this runs once your
classes work). Adam adapts the step size of every parameter; momentum smooths the path.
""", zh=r"""
## 第 3 部分 · 比一比

用每个优化器把同一个网络训练 300 步（用的是你的类，所以要等你的类能工作后才能运行）。
Adam 为每个参数调整步长；动量让路径更平滑。
"""),
code(r"""
def train(make_opt, steps=300):
    params = make_params(seed=5)
    opt = make_opt(list(params.values()))
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = loss_of(params, step % 10)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses

runs = {"SGD lr=0.05": train(lambda ps: MySGD(ps, lr=0.05)),
        "SGD lr=0.05 momentum=0.9": train(lambda ps: MySGD(ps, lr=0.05, momentum=0.9)),
        "Adam lr=0.01": train(lambda ps: MyAdam(ps, lr=0.01))}
for name, losses in runs.items():
    print(f"{name:26s} loss {losses[0]:.4f} -> {np.mean(losses[-10:]):.4f}")
"""),
]

if __name__ == "__main__":
    print(write("04_optimizer.ipynb", cells))
