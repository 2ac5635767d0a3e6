"""Source of notebooks/assignments/01_backprop_by_hand.ipynb (instructor version)."""
from cwtools import answer, code, given, md, tests, write, written

cells = [
md(r"""
# Assignment 1 · Backpropagation by hand

You will apply the chain rule yourself, first to scalar functions, then to the three-layer
network

$$
h = \sigma(W_1 x + b_1), \qquad y = \sigma(W_2 h + b_2), \qquad
L = \frac{1}{NK}\sum_{n,k} (y_{nk} - t_{nk})^2 ,
$$

and compare every gradient you compute with the one tapegrad's tape computes.

**How to work.** Write your code where a cell says `raise NotImplementedError(...)`
(delete that line). The cells marked *tests* check your answers; run them as you go. From a
terminal, `python -m tapegrad.coursework check 01_backprop_by_hand.ipynb` runs the whole
notebook and prints, per test, pass or fail and the reason. The grader runs more (hidden)
tests of the same kind, so make your functions work for any shapes, not just the ones here.
""", zh=r"""
# 作业 1 · 手算反向传播

你将亲手应用链式法则（chain rule）：先用于标量函数，再用于三层网络

$$
h = \sigma(W_1 x + b_1), \qquad y = \sigma(W_2 h + b_2), \qquad
L = \frac{1}{NK}\sum_{n,k} (y_{nk} - t_{nk})^2 ,
$$

（前向传播 forward pass，均方误差 mean-squared error），即**反向传播**（backpropagation），
并把你算出的每个梯度与 tapegrad 的记录带（tape）算出的梯度相比较。

**怎么做。** 在写着 `raise NotImplementedError(...)` 的单元里写你的代码（删掉那一行）。
标为 *tests* 的单元检查你的答案，边做边运行它们。在终端里，
`python -m tapegrad.coursework check 01_backprop_by_hand.ipynb` 会运行整个笔记本，并为
每个测试打印通过或失败以及原因。评分程序还会运行更多同类的（隐藏）测试，所以你的函数要
对任意形状都成立，而不仅仅是这里用到的形状。
"""),
given(r"""
import numpy as np
import tapegrad as tg
from tapegrad.coursework import assert_grads_close

rng = np.random.default_rng(0)
""", "setup"),
md(r"""
## Part 1 · The chain rule on scalars

If $f(x) = g(u)$ with $u = k(x)$, then $f'(x) = g'(u)\,k'(x)$: multiply the local derivatives
along the path from $x$ to $f$.

**Exercise 1.1** (1 point). Let $f(x) = e^{\sin^2 x}$. Write `df(x)` returning $f'(x)$ as a
float, using NumPy only.
""", zh=r"""
## 第 1 部分 · 标量上的链式法则

若 $f(x) = g(u)$ 且 $u = k(x)$，则 $f'(x) = g'(u)\,k'(x)$：沿着从 $x$ 到 $f$ 的路径，把
各处的局部导数乘起来。

**练习 1.1**（1 分）。设 $f(x) = e^{\sin^2 x}$。写出 `df(x)`，只用 NumPy，以浮点数返回
$f'(x)$。
"""),
answer(r"""
def df(x):
    ### BEGIN SOLUTION
    s = np.sin(x)
    return float(np.exp(s * s) * 2 * s * np.cos(x))
    ### END SOLUTION
""", "df"),
md(r"""
The tape computes the same derivative: build $f$ from tapegrad ops on a float64 scalar that
requires grad, call `backward()`, read `.grad`.
""", zh=r"""
记录带能算出同样的导数：在一个需要梯度（requires grad）的 float64 标量上用 tapegrad 的
运算构造 $f$，调用 `backward()`，读取 `.grad`。
"""),
given(r"""
def df_tape(x):
    t = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    (t.sin() * t.sin()).exp().backward()
    return t.grad.item()

print(df_tape(0.7))
""", "df_tape"),
tests(r"""
for x in (0.7, -1.3, 2.0):
    assert_grads_close({f"f'({x:g})": df(x)}, {f"f'({x:g})": df_tape(x)}, what="the derivative")
### BEGIN HIDDEN TESTS
for x in np.linspace(-3, 3, 13):
    assert_grads_close({f"f'({x:g})": df(x)}, {f"f'({x:g})": df_tape(x)}, what="the derivative")
### END HIDDEN TESTS
""", "df_test", 1),
md(r"""
**Exercise 1.2** (2 points). One neuron with a squared error:
$z = w x + b$, $y = \sigma(z)$, $L = (y - t)^2$, where $\sigma(z) = 1 / (1 + e^{-z})$ and
$\sigma'(z) = \sigma(z)(1 - \sigma(z))$.
Write `neuron_grads(x, w, b, t)` returning the dict
`{"w": dL/dw, "b": dL/db, "x": dL/dx}` of floats.
""", zh=r"""
**练习 1.2**（2 分）。带平方误差的单个神经元：
$z = w x + b$，$y = \sigma(z)$，$L = (y - t)^2$，其中 $\sigma(z) = 1 / (1 + e^{-z})$，
$\sigma'(z) = \sigma(z)(1 - \sigma(z))$。
写出 `neuron_grads(x, w, b, t)`，返回由浮点数组成的字典
`{"w": dL/dw, "b": dL/db, "x": dL/dx}`。
"""),
answer(r"""
def neuron_grads(x, w, b, t):
    ### BEGIN SOLUTION
    y = 1 / (1 + np.exp(-(w * x + b)))
    dz = 2 * (y - t) * y * (1 - y)
    return {"w": dz * x, "b": dz, "x": dz * w}
    ### END SOLUTION
""", "neuron"),
given(r"""
def neuron_grads_tape(x, w, b, t):
    x, w, b = (tg.tensor(v, dtype=tg.float64, requires_grad=True) for v in (x, w, b))
    loss = ((w * x + b).sigmoid() - t) ** 2
    loss.backward()
    return {"w": w.grad.item(), "b": b.grad.item(), "x": x.grad.item()}

neuron_grads_tape(0.5, -1.2, 0.3, 1.0)
""", "neuron_tape"),
tests(r"""
assert_grads_close(neuron_grads(0.5, -1.2, 0.3, 1.0), neuron_grads_tape(0.5, -1.2, 0.3, 1.0))
### BEGIN HIDDEN TESTS
for x, w, b, t in rng.standard_normal((10, 4)):
    assert_grads_close(neuron_grads(x, w, b, t), neuron_grads_tape(x, w, b, t),
                       what=f"at x={x:.3g}, w={w:.3g}, b={b:.3g}, t={t:.3g}, dL/d")
### END HIDDEN TESTS
""", "neuron_test", 2),
md(r"""
## Part 2 · The three-layer network

With a batch $X$ of shape $(N, D)$ (one sample per row) the network is
$H = \sigma(X W_1^\top + b_1)$, $Y = \sigma(H W_2^\top + b_2)$ and the loss is the mean of
$(Y - T)^2$ over all $N K$ entries. $W_1$ is $(H, D)$, $b_1$ is $(H,)$, $W_2$ is $(K, H)$,
$b_2$ is $(K,)$. The forward pass is given:
""", zh=r"""
## 第 2 部分 · 三层网络

一批数据 $X$ 的形状为 $(N, D)$（每行一个样本），网络为
$H = \sigma(X W_1^\top + b_1)$，$Y = \sigma(H W_2^\top + b_2)$，损失是 $(Y - T)^2$ 在全部
$N K$ 个元素上的平均值。$W_1$ 为 $(H, D)$，$b_1$ 为 $(H,)$，$W_2$ 为 $(K, H)$，
$b_2$ 为 $(K,)$。前向传播已经给出：
"""),
given(r"""
def sigmoid(z):
    return 1 / (1 + np.exp(-z))

def forward(X, W1, b1, W2, b2):
    Hid = sigmoid(X @ W1.T + b1)
    Y = sigmoid(Hid @ W2.T + b2)
    return Hid, Y

def make_problem(N, D, H, K, seed=0):
    r = np.random.default_rng(seed)
    return dict(X=r.standard_normal((N, D)), T=r.uniform(size=(N, K)),
                W1=r.standard_normal((H, D)) * 0.5, b1=r.standard_normal(H) * 0.1,
                W2=r.standard_normal((K, H)) * 0.5, b2=r.standard_normal(K) * 0.1)

P = make_problem(N=8, D=3, H=4, K=2)
Hid, Y = forward(P["X"], P["W1"], P["b1"], P["W2"], P["b2"])
print("loss:", np.mean((Y - P["T"]) ** 2))
""", "forward"),
md(r"""
**Exercise 2.1** (1 point). Write `sigmoid_backward(y, dy)`: given $y = \sigma(z)$
(elementwise) and $dy = \partial L / \partial y$, return $\partial L / \partial z$.
""", zh=r"""
**练习 2.1**（1 分）。写出 `sigmoid_backward(y, dy)`：已知（逐元素的）$y = \sigma(z)$
和 $dy = \partial L / \partial y$，返回 $\partial L / \partial z$。
"""),
answer(r"""
def sigmoid_backward(y, dy):
    ### BEGIN SOLUTION
    return dy * y * (1 - y)
    ### END SOLUTION
""", "sigmoid_backward"),
tests(r"""
z = rng.standard_normal((3, 4))
dy = rng.standard_normal((3, 4))
zt = tg.tensor(z, requires_grad=True)
zt.sigmoid().backward(tg.tensor(dy))
assert_grads_close({"dz": sigmoid_backward(sigmoid(z), dy)}, {"dz": zt.grad})
### BEGIN HIDDEN TESTS
z = rng.standard_normal(7) * 3
dy = rng.standard_normal(7)
zt = tg.tensor(z, requires_grad=True)
zt.sigmoid().backward(tg.tensor(dy))
assert_grads_close({"dz": sigmoid_backward(sigmoid(z), dy)}, {"dz": zt.grad})
### END HIDDEN TESTS
""", "sigmoid_backward_test", 1),
md(r"""
**Exercise 2.2** (4 points). Write `backprop(X, T, W1, b1, W2, b2)` returning the dict
`{"W1": dL/dW1, "b1": dL/db1, "W2": dL/dW2, "b2": dL/db2}` (NumPy arrays with the shapes of
the parameters). Work backwards from $\partial L / \partial Y = \frac{2}{NK}(Y - T)$; use
`forward` and `sigmoid_backward`.
""", zh=r"""
**练习 2.2**（4 分）。写出 `backprop(X, T, W1, b1, W2, b2)`，返回字典
`{"W1": dL/dW1, "b1": dL/db1, "W2": dL/dW2, "b2": dL/db2}`（形状与参数相同的 NumPy 数组）。
从 $\partial L / \partial Y = \frac{2}{NK}(Y - T)$ 出发往回推；使用 `forward` 和
`sigmoid_backward`。
"""),
answer(r"""
def backprop(X, T, W1, b1, W2, b2):
    Hid, Y = forward(X, W1, b1, W2, b2)
    ### BEGIN SOLUTION
    dY = 2 * (Y - T) / Y.size
    d2 = sigmoid_backward(Y, dY)
    d1 = sigmoid_backward(Hid, d2 @ W2)
    return {"W1": d1.T @ X, "b1": d1.sum(axis=0), "W2": d2.T @ Hid, "b2": d2.sum(axis=0)}
    ### END SOLUTION
""", "backprop"),
md(r"""
The tape's gradients, for comparison (float64, so the two should agree to about $10^{-12}$):
""", zh=r"""
记录带算出的梯度，用来比较（float64，两者应相差约 $10^{-12}$ 以内）：
"""),
given(r"""
def tape_grads(X, T, W1, b1, W2, b2):
    params = {name: tg.tensor(v, dtype=tg.float64, requires_grad=True)
              for name, v in dict(W1=W1, b1=b1, W2=W2, b2=b2).items()}
    for name, p in params.items():
        p.name = name
    h = (tg.tensor(X) @ params["W1"].T + params["b1"]).sigmoid()
    y = (h @ params["W2"].T + params["b2"]).sigmoid()
    tg.mse_loss(y, tg.tensor(T)).backward()
    return {name: p.grad for name, p in params.items()}
""", "tape_grads"),
tests(r"""
assert_grads_close(backprop(**P), tape_grads(**P))
### BEGIN HIDDEN TESTS
for shape in [(1, 3, 4, 2), (16, 5, 7, 3), (4, 1, 1, 1)]:
    Q = make_problem(*shape, seed=sum(shape))
    assert_grads_close(backprop(**Q), tape_grads(**Q))
### END HIDDEN TESTS
""", "backprop_test", 4),
md(r"""
`tg.inspect.compare_grads` shows the same comparison as a table (it also hints at the
usual mistakes: a transposed gradient, a bias gradient that was not summed over the batch).
""", zh=r"""
`tg.inspect.compare_grads` 把同样的比较显示成一张表（它还会提示常见的错误：梯度被转置了、
偏置的梯度没有对整批样本求和）。
"""),
code(r"""
params = {name: tg.tensor(P[name], requires_grad=True) for name in ("W1", "b1", "W2", "b2")}
h = (tg.tensor(P["X"]) @ params["W1"].T + params["b1"]).sigmoid()
tg.mse_loss((h @ params["W2"].T + params["b2"]).sigmoid(), tg.tensor(P["T"])).backward()
tg.inspect.compare_grads(backprop(**P), params)
"""),
written(r"""
**Exercise 2.3** (1 point, graded by hand). Why is $\partial L / \partial b_1$ a *sum* over
the samples of the batch, while $b_1$ has no batch axis?

### BEGIN SOLUTION
In the forward pass $b_1$ is broadcast: the same vector is added to every row (sample). Each
row therefore depends on $b_1$, and by the multivariable chain rule the derivative of $L$ with
respect to $b_1$ adds up the contributions of all the paths through it, one per row: the sum
of the rows of $\delta_1$.
### END SOLUTION
""", "bias_sum_answer", 1, zh=r"""
**练习 2.3**（1 分，人工评分）。为什么 $\partial L / \partial b_1$ 是对一批样本的*求和*，
而 $b_1$ 本身并没有批（batch）这一维？

### BEGIN SOLUTION
在前向传播中 $b_1$ 被广播（broadcast）了：同一个向量加到了每一行（每个样本）上。因此每一行
都依赖于 $b_1$；按照多元链式法则，$L$ 对 $b_1$ 的导数要把经过它的所有路径的贡献加起来，
每行一条：也就是 $\delta_1$ 各行之和。
### END SOLUTION
"""),
md(r"""
## Part 3 · Training with your gradients

Gradient descent $\theta \leftarrow \theta - \eta\,\nabla_\theta L$ with *your* `backprop`
on a larger problem. The loss should fall steadily.
""", zh=r"""
## 第 3 部分 · 用你的梯度训练

在一个更大的问题上，用*你的* `backprop` 做梯度下降（gradient descent）
$\theta \leftarrow \theta - \eta\,\nabla_\theta L$。损失应当稳定下降。
"""),
code(r"""
Q = make_problem(N=64, D=5, H=16, K=3, seed=1)
Q["T"] = (Q["X"][:, :3] > 0).astype(float)  # something learnable
theta = {k: Q[k].copy() for k in ("W1", "b1", "W2", "b2")}
losses = []
for step in range(300):
    _, Y = forward(Q["X"], **theta)
    losses.append(np.mean((Y - Q["T"]) ** 2))
    grads = backprop(Q["X"], Q["T"], **theta)
    for k in theta:
        theta[k] -= 2.0 * grads[k]
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
"""),
tests(r"""
assert losses[-1] < losses[0] / 2, f"the loss did not halve: {losses[0]:.4g} -> {losses[-1]:.4g}"
""", "training_test", 1),
]

if __name__ == "__main__":
    print(write("01_backprop_by_hand.ipynb", cells))
