"""Source of notebooks/assignments/03_mnist_with_your_vjps.ipynb (instructor version).

The committed notebook holds the outputs of the full run (10 epochs on the
60 000 training images). With TAPEGRAD_NOTEBOOK_FAST=1 (the test suite) the
run is shortened: 1 epoch on 10 000 images, and a lower accuracy threshold.
"""
from cwtools import answer, given, md, tests, write

cells = [
md(r"""
# Assignment 3 · MNIST with your own VJPs

The classic 784-128-10 network

$$
\text{logits} = \operatorname{relu}(X W_1 + b_1)\, W_2 + b_2, \qquad
L = \operatorname{cross\_entropy}(\text{logits}, y),
$$

trained with Adam, reaches about 98% test accuracy on MNIST. Here backward runs on **your**
VJP rules for the four ops of this network, `matmul`, `add` (the bias, broadcast over the
batch), `relu` and `cross_entropy`, installed with `tg.override_vjp`. If they are right, the
network learns exactly as with the built-in rules and passes **97% test accuracy**.

You wrote three of them in assignment 2 (copy them here); `relu` is new.
`python -m tapegrad.coursework check 03_mnist_with_your_vjps.ipynb` runs the notebook from a
terminal (the full training takes a few minutes; set `TAPEGRAD_NOTEBOOK_FAST=1` for a short
run on a subset, with a lower threshold).
""", zh=r"""
# 作业 3 · 用你自己的 VJP 训练 MNIST

经典的 784-128-10 网络

$$
\text{logits} = \operatorname{relu}(X W_1 + b_1)\, W_2 + b_2, \qquad
L = \operatorname{cross\_entropy}(\text{logits}, y),
$$

用 Adam 训练，在 MNIST 上能达到约 98% 的测试准确率。这里反向传播（backpropagation）运行
在**你的** VJP 规则上，它们对应这个网络的四个运算：`matmul`、`add`（偏置，在整批样本上
广播）、`relu` 和 `cross_entropy`，用 `tg.override_vjp` 装上。如果它们是对的，网络的学习
过程与使用内置规则时完全一样，测试准确率会超过 **97%**。

其中三条你已在作业 2 中写过（复制到这里）；`relu` 是新的。在终端里，
`python -m tapegrad.coursework check 03_mnist_with_your_vjps.ipynb` 会运行整个笔记本（完整
训练需要几分钟；设置 `TAPEGRAD_NOTEBOOK_FAST=1` 会在一个子集上做简短的运行，门槛也更低）。
"""),
given(r"""
import os, time, contextlib
import numpy as np
import tapegrad as tg
from tapegrad.coursework import assert_vjp_correct

FAST = os.environ.get("TAPEGRAD_NOTEBOOK_FAST") == "1"
EPOCHS = 1 if FAST else 10
THRESHOLD = 0.85 if FAST else 0.97      # test accuracy to reach

# looks in $TAPEGRAD_DATA, then the cache, then downloads (checksums verified)
(x_train, y_train), (x_test, y_test) = tg.data.mnist.load_data(verbose=False)
if FAST:
    x_train, y_train = x_train[:10000], y_train[:10000]
x_train = (x_train.reshape(len(x_train), 784) / 255.0).astype(np.float32)
x_test = (x_test.reshape(len(x_test), 784) / 255.0).astype(np.float32)
y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
print(x_train.shape, y_train.shape, x_test.shape, y_test.shape)
""", "setup"),
md(r"""
## Your four rules

Each takes `(entry, g)` and returns one gradient per input of exactly that input's shape
(see assignment 2). The network's `add` adds a bias of shape $(K,)$ to an $(N, K)$ matrix.
""", zh=r"""
## 你的四条规则

每条规则接收 `(entry, g)`，为每个输入返回一个梯度，形状与该输入完全相同（见作业 2）。
网络中的 `add` 把形状为 $(K,)$ 的偏置加到 $(N, K)$ 的矩阵上。
"""),
answer(r"""
def matmul_vjp(entry, g):
    A, B = entry.inputs
    ### BEGIN SOLUTION
    return g @ B.T, A.T @ g
    ### END SOLUTION


def unbroadcast(g, shape):
    ### BEGIN SOLUTION
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g
    ### END SOLUTION


def add_vjp(entry, g):
    a, b = entry.inputs
    ### BEGIN SOLUTION
    return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    ### END SOLUTION


def cross_entropy_vjp(entry, g):
    z, labels = entry.inputs
    ### BEGIN SOLUTION
    n, c = z.shape
    p = tg.softmax(z, axis=1)
    return (p - tg.one_hot(labels, c, dtype=z.dtype)) * (g / n), None
    ### END SOLUTION
""", "rules_from_02"),
md(r"""
`relu(x) = max(x, 0)`: its derivative is 1 where $x > 0$ and 0 elsewhere (we take 0 at
$x = 0$). Hint: comparisons such as `x > 0` give a tensor of 0s and 1s (in `x`'s dtype).
""", zh=r"""
`relu(x) = max(x, 0)`：它的导数在 $x > 0$ 处为 1，其他地方为 0（在 $x = 0$ 处取 0）。
提示：像 `x > 0` 这样的比较会得到一个由 0 和 1 组成的张量（dtype 与 `x` 相同）。
"""),
answer(r"""
def relu_vjp(entry, g):
    (x,) = entry.inputs
    ### BEGIN SOLUTION
    return g * (x > 0).astype(g.dtype)
    ### END SOLUTION
""", "relu_vjp"),
tests(r"""
assert_vjp_correct("matmul", matmul_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("matmul", matmul_vjp, variants=(1, 2), seed=5)
### END HIDDEN TESTS
""", "matmul_vjp_test", 1),
tests(r"""
assert_vjp_correct("add", add_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("add", add_vjp, variants=(1, 2), seed=5)
### END HIDDEN TESTS
""", "add_vjp_test", 1),
tests(r"""
assert_vjp_correct("relu", relu_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("relu", relu_vjp, variants=(1, 2), seed=5)
### END HIDDEN TESTS
""", "relu_vjp_test", 1),
tests(r"""
assert_vjp_correct("cross_entropy", cross_entropy_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("cross_entropy", cross_entropy_vjp, variants=(1, 2), seed=5)
### END HIDDEN TESTS
""", "cross_entropy_vjp_test", 1),
md(r"""
## Training with your rules

The network, Adam (learning rate $10^{-3}$, batches of 128), and the training loop are given.
Your four rules are installed for the whole training; a counter records how often the tape
called each one. Every epoch prints the loss and the test accuracy.
""", zh=r"""
## 用你的规则训练

网络、Adam（学习率 $10^{-3}$，每批 128 个样本）和训练循环都已给出。整个训练过程中都装着
你的四条规则；一个计数器记录记录带调用每条规则的次数。每一轮（epoch）打印损失和测试准确率。
"""),
given(r"""
MY_RULES = {"matmul": matmul_vjp, "add": add_vjp, "relu": relu_vjp,
            "cross_entropy": cross_entropy_vjp}
calls = {op: 0 for op in MY_RULES}

def counted(op, fn):
    def rule(entry, g):
        calls[op] += 1
        return fn(entry, g)
    return rule

tg.manual_seed(0)
rng = np.random.default_rng(0)
W1 = tg.randn(784, 128) * float(np.sqrt(2 / 784)); W1.requires_grad = True
b1 = tg.zeros(128, requires_grad=True)
W2 = tg.randn(128, 10) * float(np.sqrt(1 / 128)); W2.requires_grad = True
b2 = tg.zeros(10, requires_grad=True)
opt = tg.optim.Adam([W1, b1, W2, b2], lr=1e-3)

def model(x):
    return (x @ W1 + b1).relu() @ W2 + b2

def accuracy(x, y, batch=2000):
    right = 0
    with tg.no_grad():
        for i in range(0, len(x), batch):
            right += int((model(tg.tensor(x[i:i + batch])).argmax(axis=1).numpy() == y[i:i + batch]).sum())
    return right / len(x)

t0 = time.perf_counter()
with contextlib.ExitStack() as stack:
    for op, fn in MY_RULES.items():
        stack.enter_context(tg.override_vjp(op, counted(op, fn)))
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            loss = tg.cross_entropy(model(tg.tensor(x_train[idx])), tg.tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        test_accuracy = accuracy(x_test, y_test)
        print(f"epoch {epoch + 1:2d}: loss {total / len(order):.4f}, test accuracy {test_accuracy:.4f}")
print(f"trained in {time.perf_counter() - t0:.0f} s; your rules were called {calls}")
""", "training"),
tests(r"""
unused = [op for op, n in calls.items() if n == 0]
assert not unused, f"these rules were never called during training: {unused}"
assert test_accuracy >= THRESHOLD, f"test accuracy {test_accuracy:.4f} is below {THRESHOLD}"
""", "accuracy_test", 4),
md(r"""
**What to take away.** Four short functions are all the calculus this network needs: the tape
applies them entry by entry, and the optimizer turns the gradients into steps. Training with
your rules gives the same numbers as with the built-in ones (up to rounding), because they
compute the same products.
""", zh=r"""
**要点。** 这个网络所需的全部微积分就是四个短小的函数：记录带逐条目应用它们，优化器再把
梯度变成参数的更新步。用你的规则训练得到的数字与用内置规则时相同（只差舍入误差），因为
它们计算的是同样的乘积。
"""),
]

if __name__ == "__main__":
    print(write("03_mnist_with_your_vjps.ipynb", cells))
