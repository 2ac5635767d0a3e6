"""Source of notebooks/01_three_layer_network.ipynb and its Chinese edition
01_three_layer_network.zh.ipynb (same code cells; prose in both languages)."""
from nbtools import code, edition, md, write_editions

# the plots' labels in the zh edition (code cells call tr("..."))
ZH_LABELS = {
    "step": "步数",
    "MSE": "均方误差 (MSE)",
    "training loss": "训练损失",
    "class {c} (target {c})": "类别 {c}（目标 {c}）",
    "y = 0.5 (decision boundary)": "y = 0.5（决策边界）",
    "input $x_1$": "输入 x₁",
    "input $x_2$": "输入 x₂",
    "decision surface after training": "训练后的决策面",
    "network output y": "网络输出 y",
}

cells = [
md(r"""
# 01 · The three-layer network, by hand and on the tape

The documents this course follows describe a small network

$$
h = \sigma(W_1 x + b_1), \qquad y = \sigma(W_2 h + b_2), \qquad
L = \frac{1}{N K}\sum_{n=1}^{N}\sum_{k=1}^{K} (y_{nk} - t_{nk})^2,
$$

trained by gradient descent $\theta \leftarrow \theta - \eta\, \nabla_\theta L$.
Here we derive $\nabla_\theta L$ by hand, compute it with NumPy, compute it with
tapegrad's tape, and check that they agree to $10^{-10}$ in float64. Then we train
the network and plot the loss.
""", zh=r"""
# 01 · 三层网络：手算与记录带

本课程所依据的文档描述了一个小型网络：

$$
h = \sigma(W_1 x + b_1), \qquad y = \sigma(W_2 h + b_2), \qquad
L = \frac{1}{N K}\sum_{n=1}^{N}\sum_{k=1}^{K} (y_{nk} - t_{nk})^2,
$$

前两式是**前向传播**（forward pass），$L$ 是**均方误差**（mean-squared error, MSE），
网络用**梯度下降**（gradient descent）$\theta \leftarrow \theta - \eta\, \nabla_\theta L$ 来训练。
本节先手工推导 $\nabla_\theta L$，再分别用 NumPy 和 tapegrad 的**记录带**（tape）计算它，
并检验两者在 float64 下相差不到 $10^{-10}$。最后训练这个网络，画出损失曲线。

（中文版与英文版的代码单元完全相同；代码里打印的文字仍是英文。下面第二个代码单元
负责图中的中文标签：找到中文字体就用中文，找不到就保留英文标签，并打印一行说明。）
"""),
code(r"""
import numpy as np
import matplotlib.pyplot as plt
import tapegrad as tg

tg.manual_seed(0)
rng = np.random.default_rng(0)
N, D, M, K = 8, 3, 4, 2          # samples, inputs, hidden units, outputs
X = rng.standard_normal((N, D))
T = rng.uniform(size=(N, K))      # targets in (0, 1), like the sigmoid's range
W1, b1 = rng.standard_normal((M, D)) * 0.5, np.zeros(M)
W2, b2 = rng.standard_normal((K, M)) * 0.5, np.zeros(K)
"""),
edition(ZH_LABELS),
md(r"""
## The forward pass, one row per sample

With a batch $X$ of shape $(N, D)$ the layers are $H = \sigma(X W_1^\top + b_1)$ and
$Y = \sigma(H W_2^\top + b_2)$; the bias is added to every row (broadcasting). $H$ is the
matrix of hidden activations, shape $(N, M)$ for $M$ hidden units; the code calls it `H`
too, and $Y$ has shape $(N, K)$.
""", zh=r"""
## 前向传播：每个样本占一行

一批数据 $X$ 的形状为 $(N, D)$，各层为 $H = \sigma(X W_1^\top + b_1)$ 和
$Y = \sigma(H W_2^\top + b_2)$；偏置（bias）加到每一行上，这就是**广播**（broadcasting）。
$H$ 是隐藏层激活值组成的矩阵，有 $M$ 个隐藏单元时形状为 $(N, M)$，代码里也叫 `H`；
$Y$ 的形状为 $(N, K)$。
"""),
code(r"""
def sigmoid(z):
    return 1 / (1 + np.exp(-z))

H = sigmoid(X @ W1.T + b1)
Y = sigmoid(H @ W2.T + b2)
L = np.mean((Y - T) ** 2)
L
"""),
md(r"""
## The gradients, derived by hand

Write $\delta_2 = \partial L / \partial (\text{pre-activation of } y)$ and use
$\sigma'(z) = \sigma(z)(1 - \sigma(z))$:

$$
\frac{\partial L}{\partial Y} = \frac{2}{NK}(Y - T), \qquad
\delta_2 = \frac{\partial L}{\partial Y} \odot Y \odot (1 - Y),
$$

$$
\frac{\partial L}{\partial W_2} = \delta_2^\top H, \qquad
\frac{\partial L}{\partial b_2} = \sum_n \delta_{2,n}, \qquad
\delta_1 = (\delta_2 W_2) \odot H \odot (1 - H),
$$

$$
\frac{\partial L}{\partial W_1} = \delta_1^\top X, \qquad
\frac{\partial L}{\partial b_1} = \sum_n \delta_{1,n}.
$$

The bias gradients are **sums over the batch**: $b$ was broadcast to every row in the
forward pass, so its gradient collects a contribution from every row.
""", zh=r"""
## 手工推导梯度

记 $\delta_2 = \partial L / \partial (y \text{ 的激活前输入})$，并利用
$\sigma'(z) = \sigma(z)(1 - \sigma(z))$：

$$
\frac{\partial L}{\partial Y} = \frac{2}{NK}(Y - T), \qquad
\delta_2 = \frac{\partial L}{\partial Y} \odot Y \odot (1 - Y),
$$

$$
\frac{\partial L}{\partial W_2} = \delta_2^\top H, \qquad
\frac{\partial L}{\partial b_2} = \sum_n \delta_{2,n}, \qquad
\delta_1 = (\delta_2 W_2) \odot H \odot (1 - H),
$$

$$
\frac{\partial L}{\partial W_1} = \delta_1^\top X, \qquad
\frac{\partial L}{\partial b_1} = \sum_n \delta_{1,n}.
$$

这就是**反向传播**（backpropagation）：从损失出发，沿着链式法则一层一层往回乘。
偏置的梯度是**对整批样本求和**：前向传播时 $b$ 被广播到了每一行，所以它的梯度要
收集每一行的贡献。
"""),
code(r"""
dY = 2 * (Y - T) / Y.size
d2 = dY * Y * (1 - Y)
dW2 = d2.T @ H
db2 = d2.sum(axis=0)
d1 = (d2 @ W2) * H * (1 - H)
dW1 = d1.T @ X
db1 = d1.sum(axis=0)
by_hand = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
{k: v.shape for k, v in by_hand.items()}
"""),
md(r"""
## The same gradients from the tape

tapegrad records each operation on a tape while the forward pass runs; `loss.backward()`
replays it in reverse, applying each op's vector-Jacobian product. We use float64 so the
comparison is exact to rounding.
""", zh=r"""
## 用记录带算出同样的梯度

前向传播运行时，tapegrad 把每个运算记录到记录带上；`loss.backward()` 倒序重放这些
记录，对每个运算应用它的向量-雅可比积（vector-Jacobian product, VJP）。这里用
float64，所以比较结果只差舍入误差。
"""),
code(r"""
params = {name: tg.tensor(v, dtype=tg.float64, requires_grad=True)
          for name, v in {"W1": W1, "b1": b1, "W2": W2, "b2": b2}.items()}
for name, p in params.items():
    p.name = name                      # names appear on the tape
x, t = tg.tensor(X), tg.tensor(T)

h = (x @ params["W1"].T + params["b1"]).sigmoid()
y = (h @ params["W2"].T + params["b2"]).sigmoid()
loss = tg.mse_loss(y, t)
loss.backward()

for name, p in params.items():
    err = np.abs(p.grad.numpy() - by_hand[name]).max()
    print(f"{name:3s} max |tape - hand| = {err:.2e}")
    assert err < 1e-10
print("loss:", loss.item(), "NumPy:", L)
"""),
md(r"""
The tape itself is a list of entries, each with its op and sequence number:
""", zh=r"""
记录带本身是一串条目（entry），每个条目有它的运算名和序号：
"""),
code(r"""
with tg.Tape() as tape:
    h = (x @ params["W1"].T + params["b1"]).sigmoid()
    y = (h @ params["W2"].T + params["b2"]).sigmoid()
    loss = tg.mse_loss(y, t)
[f"#{e.seq} {e.op}" for e in tape]
"""),
md(r"""
## Gradient descent

Now train the network on a small problem: two interleaved clusters in 2-D labelled 0 and 1,
with the same three-layer network and MSE, updating $\theta \leftarrow \theta - \eta\nabla_\theta L$
by hand inside `tg.no_grad()` (the update itself must not go on the tape).
""", zh=r"""
## 梯度下降

现在在一个小问题上训练网络：二维平面上两团交错的点，分别标为 0 和 1。网络仍是同样的
三层网络，损失仍是均方误差，在 `tg.no_grad()` 里手工执行更新
$\theta \leftarrow \theta - \eta\nabla_\theta L$（更新本身不能记到记录带上）。
"""),
code(r"""
tg.manual_seed(1)
n = 200
angle = rng.uniform(0, np.pi, n)
Xd = np.concatenate([np.stack([np.cos(angle), np.sin(angle)], 1),
                     np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], 1)]) + rng.normal(0, 0.1, (2 * n, 2))
Td = np.concatenate([np.zeros(n), np.ones(n)])[:, None]
xd, td = tg.tensor(Xd, dtype=tg.float32), tg.tensor(Td, dtype=tg.float32)

W1 = tg.randn(16, 2) * 1.0; W1.requires_grad = True
b1 = tg.zeros(16, requires_grad=True)
W2 = tg.randn(1, 16) * 0.5; W2.requires_grad = True
b2 = tg.zeros(1, requires_grad=True)
eta, losses = 2.0, []
for step in range(2000):
    y = ((xd @ W1.T + b1).sigmoid() @ W2.T + b2).sigmoid()
    loss = tg.mse_loss(y, td)
    for p in (W1, b1, W2, b2):
        p.grad = None
    loss.backward()
    with tg.no_grad():
        for p in (W1, b1, W2, b2):
            p -= eta * p.grad
    losses.append(loss.item())
accuracy = ((y.numpy() > 0.5) == Td).mean()
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {accuracy:.3f}")
assert losses[-1] < losses[0] / 3
"""),
code(r"""
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(losses)
ax[0].set(xlabel=tr("step"), ylabel=tr("MSE"), title=tr("training loss"), yscale="log")
gx, gy = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1, 1.5, 200))
grid = tg.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=tg.float32)
with tg.no_grad():
    pg = ((grid @ W1.T + b1).sigmoid() @ W2.T + b2).sigmoid().numpy().reshape(gx.shape)
cs = ax[1].contourf(gx, gy, pg, levels=np.linspace(0, 1, 21), cmap="coolwarm", alpha=0.6)
ax[1].contour(gx, gy, pg, levels=[0.5], colors="k", linewidths=1)
for cls, colour, marker in [(0, "tab:blue", "o"), (1, "tab:red", "^")]:
    sel = Td[:, 0] == cls
    ax[1].scatter(Xd[sel, 0], Xd[sel, 1], c=colour, marker=marker, s=10, edgecolors="none",
                  label=tr("class {c} (target {c})").format(c=cls))
ax[1].plot([], [], "k-", lw=1, label=tr("y = 0.5 (decision boundary)"))
ax[1].set(xlabel=tr("input $x_1$"), ylabel=tr("input $x_2$"), title=tr("decision surface after training"))
ax[1].legend(loc="lower left", fontsize=7)
fig.colorbar(cs, ax=ax[1], label=tr("network output y"))
plt.tight_layout()
plt.show()
"""),
md(r"""
**What to take away.** Backward is the chain rule applied entry by entry, newest first.
The hand derivation and the tape agree to rounding error; the only subtle step is the bias,
whose gradient is summed over the batch because the bias was broadcast over it.
Notebook 03 steps through this backward pass one entry at a time.
""", zh=r"""
**要点。** 反向传播就是把链式法则逐条目应用一遍，从最新的条目开始。手工推导和记录带
的结果只差舍入误差；唯一需要小心的是偏置：它在前向传播中被广播到整批样本上，所以它的
梯度要对整批求和。第 03 课会逐条目地单步执行这个反向传播。
"""),
]

if __name__ == "__main__":
    print("\n".join(write_editions("01_three_layer_network.ipynb", cells)))
