"""Source of notebooks/assignments/02_vjp_rules.ipynb (instructor version)."""
from cwtools import answer, given, md, tests, write

cells = [
md(r"""
# Assignment 2 · Writing VJP rules

Every op on tapegrad's tape has a **vector-Jacobian product** (VJP): given the gradient of
the loss with respect to the op's output, $\bar y = \partial L / \partial y$, it returns the
gradient with respect to each input, $\bar x_i = \bar y\, \partial y / \partial x_i$. Backward
is nothing more than calling these rules entry by entry, newest first.

Here you write the VJP rules of the ops a small network needs, and tapegrad uses *yours*
instead of its own: `tg.override_vjp(op, fn)` replaces the VJP of the built-in op `op`
by your Python function `fn(entry, grad_output)`.

**How to work.** Write your code where a cell says `raise NotImplementedError(...)`. The
*tests* cells check each rule with `assert_vjp_correct`; when a rule is wrong, the message
names the tape entry (op and sequence number), the input, and the worst element with your
value and the expected one. `python -m tapegrad.coursework check 02_vjp_rules.ipynb` runs
the whole notebook from a terminal.
""", zh=r"""
# 作业 2 · 编写 VJP 规则

tapegrad 记录带（tape）上的每个运算都有一个**向量-雅可比积**（vector-Jacobian product,
VJP）：已知损失对该运算输出的梯度 $\bar y = \partial L / \partial y$，它返回损失对每个输入的
梯度 $\bar x_i = \bar y\, \partial y / \partial x_i$。反向传播（backpropagation）不过是
从最新的条目开始，逐条目调用这些规则。

这里你要为一个小网络所需的运算编写 VJP 规则，tapegrad 会用*你的*规则代替它自己的：
`tg.override_vjp(op, fn)` 把内置运算 `op` 的 VJP 换成你的 Python 函数
`fn(entry, grad_output)`。

**怎么做。** 在写着 `raise NotImplementedError(...)` 的单元里写你的代码。标为 *tests* 的
单元用 `assert_vjp_correct` 检查每条规则；规则出错时，消息会指出记录带条目（运算名和序号）、
哪个输入，以及误差最大的元素，并给出你的值和期望的值。在终端里，
`python -m tapegrad.coursework check 02_vjp_rules.ipynb` 会运行整个笔记本。
"""),
given(r"""
import numpy as np
import tapegrad as tg
from tapegrad.coursework import assert_vjp_correct, assert_grads_close
""", "setup"),
md(r"""
## What a VJP rule receives

`fn(entry, g)` is called during backward with

- `entry`: the tape entry. `entry.inputs` is the tuple of the op's input tensors,
  `entry.output` its output (when the op keeps it, e.g. `exp`, `sigmoid`), `entry.params`
  the op's parameters (`entry.params["axes"]`, `entry.params["keepdims"]` for `sum`),
  `entry.needs_grad` which inputs need a gradient;
- `g`: the gradient of the loss with respect to the entry's output (same shape as the output).

It returns **one gradient per input**, each with **exactly the shape and dtype of that
input** (`None` for an input that needs no gradient), written with tapegrad ops.

A worked example: $c = a - b$ gives $\bar a = \bar c$ and $\bar b = -\bar c$.
""", zh=r"""
## VJP 规则收到什么

反向传播时 `fn(entry, g)` 被调用，参数为

- `entry`：记录带条目。`entry.inputs` 是该运算输入张量组成的元组，`entry.output` 是它的
  输出（当运算保留了输出时，例如 `exp`、`sigmoid`），`entry.params` 是运算的参数
  （对 `sum` 来说是 `entry.params["axes"]`、`entry.params["keepdims"]`），
  `entry.needs_grad` 表示哪些输入需要梯度；
- `g`：损失对该条目输出的梯度（形状与输出相同）。

它返回**每个输入一个梯度**，每个梯度的**形状和 dtype 必须与对应输入完全相同**（不需要
梯度的输入返回 `None`），并用 tapegrad 的运算写成。

一个完整的例子：$c = a - b$ 给出 $\bar a = \bar c$ 和 $\bar b = -\bar c$。
"""),
given(r"""
def sub_vjp(entry, g):
    a, b = entry.inputs
    return g, -g

a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
b = tg.tensor([0.5, 0.5, 0.5], requires_grad=True)
with tg.override_vjp("sub", sub_vjp):      # the tape uses sub_vjp for every sub entry
    ((a - b) * (a - b)).sum().backward()
print(a.grad, b.grad)
""", "sub_example"),
md(r"""
`assert_vjp_correct(op, fn)` records a small graph that uses the op, calls your rule on
each entry of that op, checks the count, shapes and dtypes of what it returns, checks it
against finite differences (`tg.testing.check_entry`) and against the built-in rule, and
finally compares the whole graph's gradients with the built-in ones. It returns the
per-entry checks:
""", zh=r"""
`assert_vjp_correct(op, fn)` 记录一个用到该运算的小计算图，在该运算的每个条目上调用你的
规则，检查返回值的个数、形状和 dtype，把它与有限差分（`tg.testing.check_entry`）和内置
规则相比较，最后把整个计算图的梯度与内置规则得到的梯度相比较。它返回每个条目的检查结果：
"""),
given(r"""
assert_vjp_correct("sub", sub_vjp)
""", "sub_check"),
md(r"""
A wrong rule fails with a message that says where. Here is one that forgot the minus sign:
""", zh=r"""
错误的规则会失败，并告诉你错在哪里。下面这条规则忘了负号：
"""),
given(r"""
def wrong_sub_vjp(entry, g):
    return g, g

try:
    assert_vjp_correct("sub", wrong_sub_vjp)
except AssertionError as err:
    print(err)
""", "sub_wrong"),
md(r"""
You can also check one entry of your own graph with `tg.testing.check_entry(entry)`: it
gradchecks the VJP that the tape would use for that entry (yours, while an override is on):
""", zh=r"""
你也可以用 `tg.testing.check_entry(entry)` 检查你自己计算图中的某一个条目：它对记录带
在该条目上会用的 VJP（覆盖生效时就是你的）做梯度检验（gradcheck）：
"""),
given(r"""
x = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
y = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
x.name, y.name = "x", "y"
with tg.Tape() as tape:
    z = ((x - y) * 2).sum()
with tg.override_vjp("sub", sub_vjp):
    print(tg.testing.check_entry(tape[0]))
with tg.override_vjp("sub", wrong_sub_vjp):
    print(tg.testing.check_entry(tape[0]))
""", "check_entry_demo"),
md(r"""
## Part 1 · Elementwise ops

**Exercise 1** (2 points). `mul`: $c = a \odot b$. (Here both inputs have the same shape.)
""", zh=r"""
## 第 1 部分 · 逐元素运算

**练习 1**（2 分）。`mul`：$c = a \odot b$。（这里两个输入形状相同。）
"""),
answer(r"""
def mul_vjp(entry, g):
    a, b = entry.inputs
    ### BEGIN SOLUTION
    return g * b, g * a
    ### END SOLUTION
""", "mul_vjp"),
tests(r"""
assert_vjp_correct("mul", mul_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("mul", mul_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "mul_vjp_test", 2),
md(r"""
**Exercise 2** (2 points). `div`: $c = a / b$.
""", zh=r"""
**练习 2**（2 分）。`div`：$c = a / b$。
"""),
answer(r"""
def div_vjp(entry, g):
    a, b = entry.inputs
    ### BEGIN SOLUTION
    return g / b, -g * a / (b * b)
    ### END SOLUTION
""", "div_vjp"),
tests(r"""
assert_vjp_correct("div", div_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("div", div_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "div_vjp_test", 2),
md(r"""
**Exercise 3** (1 point). `exp`: $y = e^x$. The entry keeps its output: use `entry.output`
rather than computing $e^x$ again.
""", zh=r"""
**练习 3**（1 分）。`exp`：$y = e^x$。该条目保留了它的输出：请使用 `entry.output`，
而不要重新计算 $e^x$。
"""),
answer(r"""
def exp_vjp(entry, g):
    ### BEGIN SOLUTION
    return g * entry.output
    ### END SOLUTION
""", "exp_vjp"),
tests(r"""
assert_vjp_correct("exp", exp_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("exp", exp_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "exp_vjp_test", 1),
md(r"""
**Exercise 4** (1 point). `sigmoid`: $y = \sigma(x)$, with $\sigma' = \sigma (1 - \sigma)$.
""", zh=r"""
**练习 4**（1 分）。`sigmoid`：$y = \sigma(x)$，其中 $\sigma' = \sigma (1 - \sigma)$。
"""),
answer(r"""
def sigmoid_vjp(entry, g):
    ### BEGIN SOLUTION
    y = entry.output
    return g * y * (1 - y)
    ### END SOLUTION
""", "sigmoid_vjp"),
tests(r"""
assert_vjp_correct("sigmoid", sigmoid_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("sigmoid", sigmoid_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "sigmoid_vjp_test", 1),
md(r"""
## Part 2 · Reductions and broadcasting

**Exercise 5** (2 points). `sum` over some axes: $y = \sum_{\text{axes}} x$. Every element of
$x$ contributes once to one element of $y$, so $\bar x$ is $\bar y$ copied along the summed
axes. `entry.params["axes"]` is the tuple of summed axes (all of them for `x.sum()`) and
`entry.params["keepdims"]` says whether they were kept with size 1. Hint: `t.unsqueeze(axis)`
inserts a size-1 axis, `t.broadcast_to(*shape)` repeats size-1 axes.
""", zh=r"""
## 第 2 部分 · 归约与广播

**练习 5**（2 分）。对某些轴求和的 `sum`：$y = \sum_{\text{axes}} x$。$x$ 的每个元素恰好对
$y$ 的一个元素贡献一次，所以 $\bar x$ 就是把 $\bar y$ 沿被求和的轴复制。
`entry.params["axes"]` 是被求和的轴组成的元组（对 `x.sum()` 是全部轴），
`entry.params["keepdims"]` 表示这些轴是否以大小 1 保留。提示：`t.unsqueeze(axis)` 插入
一个大小为 1 的轴，`t.broadcast_to(*shape)` 重复大小为 1 的轴。
"""),
answer(r"""
def sum_vjp(entry, g):
    (x,) = entry.inputs
    axes = entry.params["axes"]
    keepdims = entry.params["keepdims"]
    ### BEGIN SOLUTION
    if not keepdims:
        for ax in sorted(axes):
            g = g.unsqueeze(ax)
    return g.broadcast_to(*x.shape)
    ### END SOLUTION
""", "sum_vjp"),
tests(r"""
assert_vjp_correct("sum", sum_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("sum", sum_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "sum_vjp_test", 2),
md(r"""
**Exercise 6** (3 points). Broadcasting. In `X @ W + b` the bias `b` of shape $(K,)$ is
added to every row of the $(N, K)$ matrix: NumPy's rules align shapes on the right and repeat
missing or size-1 axes. The gradient of a broadcast input is the **sum of the upstream
gradient over the broadcast axes**: the leading axes it did not have, and the axes where it
had size 1 (kept, with size 1).

Write `unbroadcast(g, shape)` that sums `g` back to `shape`, then `add_vjp` for $c = a + b$
with broadcasting.
""", zh=r"""
**练习 6**（3 分）。广播（broadcasting）。在 `X @ W + b` 中，形状为 $(K,)$ 的偏置 `b` 被
加到 $(N, K)$ 矩阵的每一行上：NumPy 的规则把形状右对齐，并重复缺失的或大小为 1 的轴。
被广播的输入，其梯度是**上游梯度在被广播的轴上的和**：即它原本没有的前导轴，以及它原本
大小为 1 的轴（求和后以大小 1 保留）。

写出 `unbroadcast(g, shape)`，把 `g` 求和回 `shape`，然后写出带广播的 $c = a + b$ 的
`add_vjp`。
"""),
answer(r"""
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
""", "add_vjp"),
tests(r"""
assert_vjp_correct("add", add_vjp)
g = tg.ones(2, 3, 4, dtype=tg.float64)
for shape, total in [((4,), 6.0), ((3, 1), 8.0), ((2, 3, 4), 1.0)]:
    out = unbroadcast(g, shape)
    assert tuple(out.shape) == shape, f"unbroadcast(ones (2, 3, 4), {shape}) has shape {tuple(out.shape)}"
    assert np.all(out.numpy() == total), f"unbroadcast(ones (2, 3, 4), {shape}) should be all {total}"
### BEGIN HIDDEN TESTS
assert_vjp_correct("add", add_vjp, variants=(1, 2), seed=3)
for shape, total in [((1, 3, 1), 8.0), ((), 24.0)]:
    out = unbroadcast(g, shape)
    assert tuple(out.shape) == shape, f"unbroadcast(ones (2, 3, 4), {shape}) has shape {tuple(out.shape)}"
    assert np.all(out.numpy() == total), f"unbroadcast(ones (2, 3, 4), {shape}) should be all {total}"
### END HIDDEN TESTS
""", "add_vjp_test", 3),
md(r"""
## Part 3 · Matrix product and the loss

**Exercise 7** (2 points). `matmul` of two matrices: $C = A B$ with $A$ $(n, k)$ and $B$
$(k, m)$. Check your answer's shapes: $\bar A$ must be $(n, k)$, $\bar B$ $(k, m)$.
""", zh=r"""
## 第 3 部分 · 矩阵乘积与损失

**练习 7**（2 分）。两个矩阵的 `matmul`：$C = A B$，其中 $A$ 为 $(n, k)$，$B$ 为
$(k, m)$。检查你答案的形状：$\bar A$ 必须是 $(n, k)$，$\bar B$ 必须是 $(k, m)$。
"""),
answer(r"""
def matmul_vjp(entry, g):
    A, B = entry.inputs
    ### BEGIN SOLUTION
    return g @ B.T, A.T @ g
    ### END SOLUTION
""", "matmul_vjp"),
tests(r"""
assert_vjp_correct("matmul", matmul_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("matmul", matmul_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "matmul_vjp_test", 2),
md(r"""
**Exercise 8** (3 points). Softmax with cross-entropy, fused into one op:
`tg.cross_entropy(z, labels)` with logits $z$ $(N, C)$ and integer labels $(N,)$ is

$$
L = \frac{1}{N} \sum_i \Big(\log \sum_c e^{z_{ic}} - z_{i,y_i}\Big),
\qquad
\frac{\partial L}{\partial z} = \frac{1}{N}\big(\operatorname{softmax}(z) - \operatorname{onehot}(y)\big).
$$

The upstream gradient `g` is a scalar (the loss is a scalar). The labels need no gradient:
return `None` for them. Use `tg.softmax(z, axis=1)` and
`tg.one_hot(labels, num_classes, dtype=z.dtype)`.
""", zh=r"""
**练习 8**（3 分）。softmax 与交叉熵（cross-entropy）合并成的一个运算：
`tg.cross_entropy(z, labels)`，其中 logits $z$ 为 $(N, C)$，整数标签为 $(N,)$，定义为

$$
L = \frac{1}{N} \sum_i \Big(\log \sum_c e^{z_{ic}} - z_{i,y_i}\Big),
\qquad
\frac{\partial L}{\partial z} = \frac{1}{N}\big(\operatorname{softmax}(z) - \operatorname{onehot}(y)\big).
$$

上游梯度 `g` 是一个标量（损失是标量）。标签不需要梯度：对它返回 `None`。使用
`tg.softmax(z, axis=1)` 和 `tg.one_hot(labels, num_classes, dtype=z.dtype)`。
"""),
answer(r"""
def cross_entropy_vjp(entry, g):
    z, labels = entry.inputs
    ### BEGIN SOLUTION
    n, c = z.shape
    p = tg.softmax(z, axis=1)
    return (p - tg.one_hot(labels, c, dtype=z.dtype)) * (g / n), None
    ### END SOLUTION
""", "cross_entropy_vjp"),
tests(r"""
assert_vjp_correct("cross_entropy", cross_entropy_vjp)
### BEGIN HIDDEN TESTS
assert_vjp_correct("cross_entropy", cross_entropy_vjp, variants=(1, 2), seed=3)
### END HIDDEN TESTS
""", "cross_entropy_vjp_test", 3),
md(r"""
## Part 4 · All together

With all your rules installed at once, backward through a two-layer classifier with a
weight penalty must give the built-in gradients, and every one of your rules must be used.
""", zh=r"""
## 第 4 部分 · 合在一起

同时装上你的所有规则后，对一个带权重惩罚项的两层分类器做反向传播，必须得到与内置规则
相同的梯度，而且你的每条规则都必须被用到。
"""),
given(r"""
import contextlib

MY_RULES = {"mul": mul_vjp, "div": div_vjp, "exp": exp_vjp, "sigmoid": sigmoid_vjp,
            "sum": sum_vjp, "add": add_vjp, "matmul": matmul_vjp,
            "cross_entropy": cross_entropy_vjp}

def network_grads(rules=None, seed=0):
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal((6, 5)))
    labels = tg.tensor(rng.integers(0, 3, 6))
    params = {"W1": rng.standard_normal((5, 4)), "b1": rng.standard_normal(4),
              "W2": rng.standard_normal((4, 3)), "b2": rng.standard_normal(3)}
    params = {k: tg.tensor(v, requires_grad=True) for k, v in params.items()}
    calls = {op: 0 for op in (rules or {})}

    def counted(op, fn):
        def rule(entry, g):
            calls[op] += 1
            return fn(entry, g)
        return rule

    with contextlib.ExitStack() as stack:
        for op, fn in (rules or {}).items():
            stack.enter_context(tg.override_vjp(op, counted(op, fn)))
        h = (x @ params["W1"] + params["b1"]).sigmoid()
        logits = h @ params["W2"] + params["b2"]
        penalty = (params["W1"] * params["W1"]).sum() / (params["b1"].exp().sum() + 10)
        loss = tg.cross_entropy(logits, labels) + 0.01 * penalty
        loss.backward()
    return {k: p.grad for k, p in params.items()}, calls
""", "network"),
tests(r"""
mine, calls = network_grads(MY_RULES)
builtin, _ = network_grads()
assert_grads_close(mine, builtin)
unused = [op for op, n in calls.items() if n == 0]
assert not unused, f"these rules were never called: {unused}"
### BEGIN HIDDEN TESTS
for seed in (1, 2):
    mine, calls = network_grads(MY_RULES, seed)
    builtin, _ = network_grads(None, seed)
    assert_grads_close(mine, builtin)
### END HIDDEN TESTS
""", "all_together_test", 2),
md(r"""
**What to take away.** Each rule is local: it needs only its entry's inputs (or output) and
the upstream gradient. Broadcasting in the forward pass becomes a sum in the backward pass.
The fused softmax + cross-entropy has the simplest gradient of all,
$\operatorname{softmax}(z) - \operatorname{onehot}(y)$; assignment 3 trains MNIST with your
rules.
""", zh=r"""
**要点。** 每条规则都是局部的：它只需要本条目的输入（或输出）和上游梯度。前向传播中的
广播在反向传播中变成求和。合并的 softmax + 交叉熵的梯度是所有规则中最简单的，
$\operatorname{softmax}(z) - \operatorname{onehot}(y)$；作业 3 会用你的规则训练 MNIST。
"""),
]

if __name__ == "__main__":
    print(write("02_vjp_rules.ipynb", cells))
