"""Source of notebooks/03_inspecting_gradients.ipynb and its Chinese edition
03_inspecting_gradients.zh.ipynb (same code cells; prose in both languages).

    python notebooks/src/make_03.py          # write both editions
    python notebooks/src/nbtools.py run notebooks/03_inspecting_gradients.ipynb
"""
from nbtools import code, md, write_editions

cells = [
md(r"""
# 03 · Inspecting gradients: the tape, step by step

`loss.backward()` is one line, and the gradients simply appear in `.grad`. This notebook
opens it up with `tg.inspect`:

1. the **tape** as a table and as a drawing;
2. **backward one step at a time**: each tape entry's vector-Jacobian product (VJP), with
   its formula, the shapes, the upstream gradient and what each input receives, including
   where a bias gradient is **summed over the batch**;
3. why a **reused** tensor's gradient is a **sum** of contributions;
4. checking a **hand derivation** against the tape, and one tape entry against finite
   differences;
5. **anomaly mode**: a `log(0)` caught at the line that made it;
6. the **cost** of each entry (FLOPs, bytes, time);
7. the same on one **MNIST** batch with a 784-128-10 network made of plain tensors.

**If the drawings look like plain text.** A notebook opened from a fresh clone is
*untrusted*: JupyterLab then hides its SVG and HTML outputs. Every drawing here is saved
with a PNG copy as well, so the pictures still show; for the full-resolution SVG, the
formulas' layout and the step-through pages, trust the notebook once
(`jupyter trust notebooks/03_inspecting_gradients.ipynb`, or *File → Trust Notebook* in
Jupyter Notebook) or simply run it. Running the `explore` cell needs `ipywidgets` for its
buttons; without it you get a static page listing every step.

We use the network of notebook 01, written for a batch whose samples are the **columns**
of $X$ (so the formulas read exactly as for one vector $x$):

$$
H = \sigma(W_1 X + b_1), \qquad Y = \sigma(W_2 H + b_2), \qquad
L = \frac{1}{K N}\sum_{k,n} (Y_{kn} - T_{kn})^2 .
$$
""", zh=r"""
# 03 · 检查梯度：一步一步看记录带

`loss.backward()` 只有一行，梯度就直接出现在 `.grad` 里。本笔记本用 `tg.inspect` 把它
拆开来看：

1. **记录带**（tape）：表格形式和图形式；
2. **逐步执行反向传播**（backpropagation）：每个记录带条目（entry）的向量-雅可比积
   （vector-Jacobian product, VJP），包括它的公式、形状、上游梯度，以及每个输入收到了
   什么，其中包括偏置的梯度在哪里**对整批样本求和**；
3. 为什么一个被**重复使用**的张量，其梯度是各部分贡献的**和**；
4. 用记录带检验**手工推导**，以及用有限差分（finite differences）检验单个条目；
5. **异常检测模式**（anomaly mode）：在产生 `log(0)` 的那一行把它抓住；
6. 每个条目的**开销**（FLOPs、字节数、时间）；
7. 在一批 **MNIST** 数据上，用纯张量搭的 784-128-10 网络做同样的事。

**如果图看起来像纯文本。** 从新克隆的仓库打开的笔记本是*不受信任的*（untrusted）：
JupyterLab 会隐藏它的 SVG 和 HTML 输出。这里的每张图都另存了一份 PNG，所以图仍然能显示；
要看全分辨率的 SVG、公式排版和逐步浏览的页面，请信任一次该笔记本
（`jupyter trust notebooks/03_inspecting_gradients.zh.ipynb`，或在 Jupyter Notebook 中选
*File → Trust Notebook*），或者直接运行它。运行 `explore` 那个单元时，按钮需要
`ipywidgets`；没有它时会得到一个列出所有步骤的静态页面。

（中文版与英文版的代码单元完全相同；`tg.inspect` 输出的表格和说明是英文的。）

我们用第 01 课的网络，但这里一批样本按**列**排放在 $X$ 中（这样公式的写法和单个向量
$x$ 时完全一样）。前向传播（forward pass）和均方误差（mean-squared error）为：

$$
H = \sigma(W_1 X + b_1), \qquad Y = \sigma(W_2 H + b_2), \qquad
L = \frac{1}{K N}\sum_{k,n} (Y_{kn} - T_{kn})^2 .
$$
"""),
code(r"""
import os, sys
import numpy as np
try:
    import tapegrad as tg
except ImportError:                       # running from notebooks/ without installing
    sys.path.insert(0, os.path.abspath("../python"))
    import tapegrad as tg

tg.manual_seed(0)
rng = np.random.default_rng(0)
D, Hn, K, N = 3, 4, 2, 5                  # inputs, hidden units, outputs, batch size

def named(t, name):
    t.name = name                         # names show up in tables, records and drawings
    return t

X  = named(tg.tensor(rng.standard_normal((D, N))), "X")     # one sample per column
T  = named(tg.tensor(rng.uniform(size=(K, N))), "T")
W1 = named(tg.tensor(rng.standard_normal((Hn, D)) * 0.8, requires_grad=True), "W1")
b1 = named(tg.tensor(rng.standard_normal((Hn, 1)) * 0.1, requires_grad=True), "b1")
W2 = named(tg.tensor(rng.standard_normal((K, Hn)) * 0.8, requires_grad=True), "W2")
b2 = named(tg.tensor(rng.standard_normal((K, 1)) * 0.1, requires_grad=True), "b2")
params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}

def forward():
    H = named((W1 @ X + b1).sigmoid(), "H")
    Y = named((W2 @ H + b2).sigmoid(), "Y")
    return tg.mse_loss(Y, T)

loss = forward()
loss
"""),
md(r"""
## 1. The tape

Every op that touched a tensor requiring grad recorded one **entry**: the op, its inputs,
what it saved for backward, and a sequence number. `loss.tape()` lists the entries that
lead to `loss`, oldest first. `(leaf)` marks tensors we want gradients for, `(const)`
tensors we do not, `(#n)` the entry that made an intermediate tensor.
""", zh=r"""
## 1. 记录带

每个接触了需要梯度的张量的运算，都记录了一个**条目**：运算名、它的输入、它为反向传播
保存了什么，以及一个序号。`loss.tape()` 按从旧到新的顺序列出通向 `loss` 的所有条目。
`(leaf)` 标记我们要求梯度的张量（叶子），`(const)` 标记不需要梯度的张量，`(#n)` 表示
生成某个中间张量的那个条目。
"""),
code(r"""
loss.tape()
"""),
md(r"""
The same graph drawn: op nodes (entries) and tensor nodes, with shapes, and values for
small tensors. A `tg.Tape()` block records the same entries (and prints the same table).
""", zh=r"""
同一个计算图画出来：运算节点（即条目）和张量节点，带有形状；小张量还显示数值。
`tg.Tape()` 块记录的是同样的条目（打印出来也是同样的表格）。
"""),
code(r"""
tg.inspect.draw(loss)
"""),
code(r"""
with tg.Tape() as tape:
    loss2 = forward()
print(tape)
"""),
md(r"""
## 2. Backward, one step at a time

`tg.inspect.BackwardStepper(loss)` drives the same C engine as `loss.backward()`: it
visits the entries from the newest to the oldest (the tape read backwards) and runs one
VJP per `step()`. Each step returns a record: the entry, its VJP formula with the shapes
written under each gradient, the upstream gradient $\bar Y = \partial L/\partial Y$, and what
each input receives. (`retain_graph=True` keeps the saved tensors, so we can use the graph
again below.)
""", zh=r"""
## 2. 反向传播，一次一步

`tg.inspect.BackwardStepper(loss)` 驱动的是与 `loss.backward()` 相同的 C 引擎：它从最新
的条目到最旧的条目（即倒着读记录带）依次访问，每次 `step()` 执行一个 VJP。每一步返回
一条记录：条目本身、它的 VJP 公式（每个梯度下方写着形状）、上游梯度
$\bar Y = \partial L/\partial Y$，以及每个输入收到的梯度。（`retain_graph=True` 保留已保存
的张量，后面还能再次使用这个计算图。）
"""),
code(r"""
st = tg.inspect.BackwardStepper(loss, retain_graph=True)
st.step()            # the newest entry: mse_loss
"""),
code(r"""
st.step()            # the output sigmoid: dZ2 = dY * Y * (1 - Y)
"""),
md(r"""
### Where the bias gradient is summed over the batch

The next entry is the `add` of $W_2 H + b_2$. The sum $W_2H$ has shape $(K, N)$, but $b_2$
has shape $(K, 1)$: it was **broadcast** over the $N$ columns, i.e. the same $b_2$ was
added to every sample. The VJP of `add` passes $\bar c$ through unchanged, with shape
$(K, N)$, and the engine then **sums it over axis 1** to get back to $b_2$'s shape:

$$\bar b_2 = \sum_{n=1}^{N} \bar Z_{2,\,:n} .$$

The record shows it in the *broadcasting undone* column.
""", zh=r"""
### 偏置的梯度在哪里对整批求和

下一个条目是 $W_2 H + b_2$ 中的 `add`。$W_2H$ 的形状是 $(K, N)$，而 $b_2$ 的形状是
$(K, 1)$：它被**广播**（broadcasting）到了 $N$ 列上，也就是说同一个 $b_2$ 加到了每个
样本上。`add` 的 VJP 把 $\bar c$ 原样传下去，形状为 $(K, N)$，然后引擎**沿第 1 轴求和**，
回到 $b_2$ 的形状：

$$\bar b_2 = \sum_{n=1}^{N} \bar Z_{2,\,:n} .$$

记录中的 *broadcasting undone*（撤销广播）一栏显示的就是这一步。
"""),
code(r"""
rec = st.step()
rec
"""),
code(r"""
ig = rec.inputs[1]                                   # what b2 received
print(ig.broadcast_text)
print("sum of the upstream gradient over the batch:", rec.grad_out.sum(axis=1))
print("what b2 received:                           ", ig.grad.ravel())
"""),
md(r"""
`run_to` steps until a given entry (a sequence number, an op name, or a tensor) has run.
The drawing takes the stepper: entries whose VJP ran are green, the current one orange,
and gradients known so far are shown (`∂`).
""", zh=r"""
`run_to` 一直执行，直到某个条目（用序号、运算名或张量指定）执行完毕。绘图函数可以接收
这个 stepper：已经执行过 VJP 的条目显示为绿色，当前条目为橙色，并显示目前已知的梯度
（`∂`）。
"""),
code(r"""
st.run_to("sigmoid")          # the hidden layer's sigmoid
tg.inspect.draw(loss, st)
"""),
code(r"""
for rec in st:                # the remaining steps
    print(f"step {rec.index + 1}: #{rec.seq} {rec.op}")
st.history[-1]                # the first matmul: dW1 = dZ1 X^T
"""),
md(r"""
After the last step every `.grad` is exactly what `loss.backward()` gives, since it is the
same engine. Let us check on a fresh forward pass.
""", zh=r"""
最后一步之后，每个 `.grad` 都与 `loss.backward()` 给出的完全相同，因为用的是同一个引擎。
我们在一次新的前向传播上验证一下。
"""),
code(r"""
stepped = {k: p.grad.numpy().copy() for k, p in params.items()}
for p in params.values():
    p.grad = None
forward().backward()
{k: bool(np.array_equal(stepped[k], p.grad.numpy())) for k, p in params.items()}
"""),
md(r"""
`tg.inspect.explore(loss)` puts the drawing and the records together, with **Previous** /
**Next** buttons and a slider when `ipywidgets` is installed (a static page listing every
step otherwise). It runs backward once with `retain_graph=True`, keeps a record per step,
and puts every `.grad` back as it was.
""", zh=r"""
`tg.inspect.explore(loss)` 把图和记录放在一起；装了 `ipywidgets` 时带有 **Previous** /
**Next** 按钮和一个滑块（否则是列出所有步骤的静态页面）。它以 `retain_graph=True` 执行一次
反向传播，为每一步保留一条记录，最后把每个 `.grad` 恢复原状。
"""),
code(r"""
tg.inspect.explore(loss)
"""),
md(r"""
## 3. A reused tensor's gradient is a sum

When a tensor is used twice, the chain rule adds the two paths. A *tied* autoencoder uses
the same $W$ to encode and (transposed) to decode: $\hat X = W^\top \sigma(W X)$. The
stepper's `contributions(W)` lists the piece each entry sent to $W$; `W.grad` is their sum.
""", zh=r"""
## 3. 重复使用的张量，梯度是一个和

一个张量被使用两次时，链式法则会把两条路径的贡献加起来。*权重共享*（tied）的自编码器
用同一个 $W$ 编码、再用它的转置解码：$\hat X = W^\top \sigma(W X)$。stepper 的
`contributions(W)` 列出每个条目传给 $W$ 的那一份；`W.grad` 是它们的和。
"""),
code(r"""
W = named(tg.tensor(rng.standard_normal((2, D)) * 0.5, requires_grad=True), "W")
Z = (W @ X).sigmoid()
Xhat = W.T @ Z
ae_loss = tg.mse_loss(Xhat, X)
st_ae = tg.inspect.BackwardStepper(ae_loss)
st_ae.finish()
c = st_ae.contributions(W)
print(c)
print("W.grad == sum of the contributions:", np.allclose(c.total, W.grad.numpy(), atol=1e-7))
c
"""),
md(r"""
## 4. Checking a derivation

By hand, with $\odot$ the elementwise product:

$$
\bar Y = \tfrac{2}{KN}(Y - T),\quad \bar Z_2 = \bar Y \odot Y \odot (1 - Y),\quad
\bar W_2 = \bar Z_2 H^\top,\quad \bar b_2 = \textstyle\sum_n \bar Z_{2,:n},
$$
$$
\bar H = W_2^\top \bar Z_2,\quad \bar Z_1 = \bar H \odot H \odot (1 - H),\quad
\bar W_1 = \bar Z_1 X^\top,\quad \bar b_1 = \textstyle\sum_n \bar Z_{1,:n}.
$$

`tg.inspect.compare_grads` compares NumPy arrays with the tape's `.grad` and points at the
first one that differs.
""", zh=r"""
## 4. 检验推导

手工推导如下，$\odot$ 表示逐元素乘积：

$$
\bar Y = \tfrac{2}{KN}(Y - T),\quad \bar Z_2 = \bar Y \odot Y \odot (1 - Y),\quad
\bar W_2 = \bar Z_2 H^\top,\quad \bar b_2 = \textstyle\sum_n \bar Z_{2,:n},
$$
$$
\bar H = W_2^\top \bar Z_2,\quad \bar Z_1 = \bar H \odot H \odot (1 - H),\quad
\bar W_1 = \bar Z_1 X^\top,\quad \bar b_1 = \textstyle\sum_n \bar Z_{1,:n}.
$$

`tg.inspect.compare_grads` 把 NumPy 数组和记录带算出的 `.grad` 相比较，并指出第一个
不一致的地方。
"""),
code(r"""
def by_hand(Xn, Tn, W1n, b1n, W2n, b2n, bias_sum=True):
    sig = lambda z: 1 / (1 + np.exp(-z))
    Hh = sig(W1n @ Xn + b1n)
    Yh = sig(W2n @ Hh + b2n)
    dY = 2 * (Yh - Tn) / Yh.size
    dZ2 = dY * Yh * (1 - Yh)
    dH = W2n.T @ dZ2
    dZ1 = dH * Hh * (1 - Hh)
    red = (lambda a: a.sum(axis=1, keepdims=True)) if bias_sum else (lambda a: a.mean(axis=1, keepdims=True))
    return {"W1": dZ1 @ Xn.T, "b1": red(dZ1), "W2": dZ2 @ Hh.T, "b2": red(dZ2)}

np_args = [t.numpy().astype(np.float64) for t in (X, T, W1, b1, W2, b2)]
tg.inspect.compare_grads(by_hand(*np_args), params)
"""),
md(r"""
A classic slip: averaging the bias gradient over the batch instead of summing it (the
loss already divides by $KN$). `compare_grads` finds it and says by how much it is off.
""", zh=r"""
一个常见的错误：把偏置的梯度对整批样本取平均，而不是求和（损失本身已经除以了 $KN$）。
`compare_grads` 能发现它，并说明差了多少。
"""),
code(r"""
tg.inspect.compare_grads(by_hand(*np_args, bias_sum=False), params)
"""),
md(r"""
`tg.testing.check_entry` checks **one** entry: it re-runs the entry's op on float64 copies
of its inputs, gets the VJP through the engine, and compares it with central finite
differences.
""", zh=r"""
`tg.testing.check_entry` 只检验**一个**条目：它在输入的 float64 副本上重新执行该条目的
运算，通过引擎得到 VJP，再与中心有限差分的结果比较。
"""),
code(r"""
for e in tape:                   # the entries recorded by the Tape above
    print(tg.testing.check_entry(e))
"""),
md(r"""
With `tg.override_vjp` you can replace an op's VJP by your own (the coursework does). A
sigmoid VJP that forgets the factor $(1 - y)$ fails, and the check says which input and
where:
""", zh=r"""
用 `tg.override_vjp` 可以把某个运算的 VJP 换成你自己写的（课程作业就是这样做的）。一个
忘了因子 $(1 - y)$ 的 sigmoid VJP 无法通过检验，检验结果会指出是哪个输入、哪个位置出错：
"""),
code(r"""
def my_sigmoid_vjp(entry, grad):
    y = entry.output
    return grad * y                     # wrong: should be grad * y * (1 - y)

sig_entry = next(e for e in tape if e.op == "sigmoid")
with tg.override_vjp("sigmoid", my_sigmoid_vjp):
    print(tg.testing.check_entry(sig_entry))
"""),
md(r"""
## 5. Anomaly mode: where did the NaN come from?

Binary cross-entropy written by hand, $-\big(t \log p + (1-t)\log(1-p)\big)$, looks
harmless. But in float32 $\sigma(z)$ **is exactly 1** once $z \gtrsim 17$, so $\log(1 - p) =
\log 0 = -\infty$, and $(1 - t)\cdot(-\infty) = 0 \cdot (-\infty) =$ NaN for a sample with
$t = 1$. The loss is NaN, and so is the gradient of that sample's score:
""", zh=r"""
## 5. 异常检测模式：NaN 从哪里来？

手写的二元交叉熵 $-\big(t \log p + (1-t)\log(1-p)\big)$ 看起来没什么问题。但在 float32
中，一旦 $z \gtrsim 17$，$\sigma(z)$ 就**恰好等于 1**，于是 $\log(1 - p) = \log 0 = -\infty$；
对于 $t = 1$ 的样本，$(1 - t)\cdot(-\infty) = 0 \cdot (-\infty) =$ NaN。损失是 NaN，这个
样本分数的梯度也是 NaN：
"""),
code(r"""
z = named(tg.tensor([[0.5, -1.0, 20.0]], requires_grad=True), "z")   # scores of 3 samples
t = tg.tensor([[1.0, 0.0, 1.0]])
p = z.sigmoid()
print("p =", p.numpy())
bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
bce.backward()
print("loss:", bce.item(), " z.grad:", z.grad.numpy())
"""),
md(r"""
`with tg.detect_anomaly():` makes the **first** NaN or Inf raise an `AnomalyError` naming
the tape entry, its inputs' statistics and the Python line that created it:
""", zh=r"""
`with tg.detect_anomaly():` 让**第一个** NaN 或 Inf 抛出 `AnomalyError`，指出对应的记录带
条目、它输入的统计信息，以及创建它的那一行 Python 代码：
"""),
code(r"""
z.grad = None
with tg.detect_anomaly():
    try:
        p = z.sigmoid()
        bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    except tg.inspect.AnomalyError as err:
        print(err)
"""),
md(r"""
The culprit is the `log` of `1 - p`, which has a zero. The fix is to never take the log of
a probability: `bce_with_logits` works on the scores $z$ directly
($\max(z,0) - z t + \log(1 + e^{-|z|})$), which is finite for every $z$.
""", zh=r"""
罪魁祸首是对 `1 - p` 取的 `log`，其中有一个 0。解决办法是永远不对概率取对数：
`bce_with_logits` 直接在分数 $z$ 上计算（$\max(z,0) - z t + \log(1 + e^{-|z|})$），对任何
$z$ 都是有限的。
"""),
code(r"""
with tg.detect_anomaly():
    bce = tg.binary_cross_entropy_with_logits(z, t)
    bce.backward()
print("loss:", bce.item(), " z.grad:", z.grad.numpy())
"""),
md(r"""
Anomaly mode checks the backward pass too. The length of a vector,
$\sqrt{\sum v^2}$, is fine at $v = 0$, but its derivative $1/(2\sqrt{\cdot})$ is not:
""", zh=r"""
异常检测模式也检查反向传播。向量的长度 $\sqrt{\sum v^2}$ 在 $v = 0$ 处没有问题，但它的
导数 $1/(2\sqrt{\cdot})$ 有问题：
"""),
code(r"""
v = named(tg.zeros(3, requires_grad=True), "v")
with tg.detect_anomaly():
    norm = (v * v).sum().sqrt()
    try:
        norm.backward()
    except tg.inspect.AnomalyError as err:
        print(err)
"""),
md(r"""
## 6. What does each entry cost?

`tg.inspect.profile(fn)` runs `fn` (recorded with a tape) and its backward, and lists for
each entry the estimated FLOPs (matmul $2MNK$, elementwise $n$, ...), the bytes it reads and
writes, and the time of its forward (the op re-run alone) and of its backward step.
Here is one training step of our small network:
""", zh=r"""
## 6. 每个条目的开销是多少？

`tg.inspect.profile(fn)` 运行 `fn`（用记录带记录）及其反向传播，并为每个条目列出估计的
FLOPs（矩阵乘法为 $2MNK$，逐元素运算为 $n$，……）、读写的字节数，以及前向（单独重新
运行该运算）和反向步骤的时间。下面是我们这个小网络的一步训练：
"""),
code(r"""
for p_ in params.values():
    p_.grad = None
tg.inspect.profile(forward)
"""),
md(r"""
## 7. One MNIST batch, 784-128-10

The same tools on a real batch: 64 images of 784 pixels, a hidden layer of 128 sigmoid
units and 10 output scores, with the cross-entropy loss. The data comes from
`tapegrad.data.mnist` (set `TAPEGRAD_DATA` to the folder holding the files).
""", zh=r"""
## 7. 一批 MNIST 数据，784-128-10

在真实的一批数据上使用同样的工具：64 张 784 像素的图像，一个有 128 个 sigmoid 单元的
隐藏层和 10 个输出分数，损失为交叉熵（cross-entropy）。数据来自 `tapegrad.data.mnist`
（把 `TAPEGRAD_DATA` 设为存放数据文件的文件夹）。
"""),
code(r"""
from tapegrad.data import mnist

data_dir = os.environ.get("TAPEGRAD_DATA", "../../shared/data/mnist")
if not os.path.exists(data_dir):      # a copy of this notebook elsewhere: look beside the checkout
    data_dir = os.path.join(os.path.dirname(tg.__file__), "..", "..", "..", "shared", "data", "mnist")
(x_train, y_train), _ = mnist.load_data(data_dir if os.path.exists(data_dir) else None)
B = 64
Xb = named(tg.tensor((x_train[:B].reshape(B, 784) / 255.0).T.astype(np.float32)), "X")   # (784, 64)
yb = named(tg.tensor(y_train[:B].astype(np.int64)), "labels")

def init(shape, fan_in):
    return tg.tensor((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), requires_grad=True)

M1 = named(init((128, 784), 784), "W1")
c1 = named(tg.zeros(128, 1, requires_grad=True), "b1")
M2 = named(init((10, 128), 128), "W2")
c2 = named(tg.zeros(10, 1, requires_grad=True), "b2")
mnist_params = {"W1": M1, "b1": c1, "W2": M2, "b2": c2}

def mnist_forward():
    Hm = named((M1 @ Xb + c1).sigmoid(), "H")          # (128, 64)
    logits = named(M2 @ Hm + c2, "logits")              # (10, 64)
    return tg.cross_entropy(logits.T, yb)               # mean over the batch

mloss = mnist_forward()
print("loss", mloss.item(), "(log 10 =", np.log(10), "for a uniform guess)")
mloss.tape()
"""),
code(r"""
tg.inspect.draw(mloss)
"""),
md(r"""
Stepping to the hidden layer's `add` shows $\bar b_1$ summed over the 64 images:
$(128, 64) \to (128, 1)$.
""", zh=r"""
单步执行到隐藏层的 `add`，可以看到 $\bar b_1$ 对 64 张图像求和：
$(128, 64) \to (128, 1)$。
"""),
code(r"""
mst = tg.inspect.BackwardStepper(mloss, retain_graph=True)
mst.run_to("add")          # output layer: b2, summed over the batch
mst.run_to("add")          # hidden layer: b1
"""),
code(r"""
mst.finish()
def mnist_by_hand():
    Xn, W1n, b1n, W2n, b2n = (a.numpy().astype(np.float64) for a in (Xb, M1, c1, M2, c2))
    Hh = 1 / (1 + np.exp(-(W1n @ Xn + b1n)))
    Z = W2n @ Hh + b2n                                   # (10, B)
    P = np.exp(Z - Z.max(axis=0)); P /= P.sum(axis=0)    # softmax per column
    dZ = (P - np.eye(10)[:, yb.numpy()]) / B             # d(mean cross-entropy)/dZ
    dZ1 = (W2n.T @ dZ) * Hh * (1 - Hh)
    return {"W1": dZ1 @ Xn.T, "b1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ @ Hh.T, "b2": dZ.sum(axis=1, keepdims=True)}

tg.inspect.compare_grads(mnist_by_hand(), mnist_params, rtol=1e-3, atol=1e-6)
"""),
md(r"""
Checking the big matmul against finite differences perturbs a random sample of 200 of its
100 352 weights (`max_checks`):
""", zh=r"""
用有限差分检验这个大矩阵乘法时，只随机扰动它 100 352 个权重中的 200 个（`max_checks`）：
"""),
code(r"""
big = next(e for e in mloss.tape().entries if e.op == "matmul")
tg.testing.check_entry(big, max_checks=200)
"""),
md(r"""
And the cost of one training step on this batch: the two matmuls dominate, forward and
backward (the backward of a matmul is two matmuls of the same size, one per input that
needs a gradient; here $X$ needs none).
""", zh=r"""
再看这批数据上一步训练的开销：前向和反向都以两次矩阵乘法为主（矩阵乘法的反向是两次
同样大小的矩阵乘法，每个需要梯度的输入一次；这里 $X$ 不需要梯度）。
"""),
code(r"""
for p_ in mnist_params.values():
    p_.grad = None
rep = tg.inspect.profile(mnist_forward)
rep
"""),
code(r"""
print("by op:")
for a in rep.by_op():
    print(f"  {a['op']:14s} x{a['count']}  fwd {a['fwd_ms']:.3f} ms  bwd {a['bwd_ms']:.3f} ms  "
          f"{a['flops'] / 1e6:.2f} MFLOP fwd")
"""),
md(r"""
Finally, a few steps of gradient descent on this batch, to see the loss go down (with the
gradients we just inspected):
""", zh=r"""
最后，在这批数据上做几步梯度下降（gradient descent），用的就是我们刚才检查过的梯度，
看看损失如何下降：
"""),
code(r"""
lr = 0.5
for it in range(30):
    for p_ in mnist_params.values():
        p_.grad = None
    l = mnist_forward()
    l.backward()
    with tg.no_grad():
        for p_ in mnist_params.values():
            p_ -= lr * p_.grad
    if it % 5 == 0 or it == 29:
        print(f"step {it:2d}  loss {l.item():.4f}")
"""),
md(r"""
### Summary

| question | tool |
|---|---|
| what did the forward pass record? | `loss.tape()`, `tg.Tape()`, `tg.inspect.draw(loss)` |
| what does each VJP do, with which shapes? | `tg.inspect.BackwardStepper`, `loss.backward_steps()`, `tg.inspect.explore` |
| where is broadcasting undone? | the record's *broadcasting undone* column (`InputGrad.summed_axes`) |
| why is a gradient a sum? | `stepper.contributions(tensor)` |
| is my derivation right? | `tg.inspect.compare_grads` |
| is this VJP right? | `tg.testing.check_entry(entry)` |
| where does the NaN come from? | `with tg.detect_anomaly():` |
| what does it cost? | `tg.inspect.profile(fn)` |
""", zh=r"""
### 小结

| 问题 | 工具 |
|---|---|
| 前向传播记录了什么？ | `loss.tape()`、`tg.Tape()`、`tg.inspect.draw(loss)` |
| 每个 VJP 做了什么，形状如何？ | `tg.inspect.BackwardStepper`、`loss.backward_steps()`、`tg.inspect.explore` |
| 广播在哪里被撤销？ | 记录中的 *broadcasting undone* 一栏（`InputGrad.summed_axes`） |
| 为什么梯度是一个和？ | `stepper.contributions(tensor)` |
| 我的推导对吗？ | `tg.inspect.compare_grads` |
| 这个 VJP 对吗？ | `tg.testing.check_entry(entry)` |
| NaN 从哪里来？ | `with tg.detect_anomaly():` |
| 开销是多少？ | `tg.inspect.profile(fn)` |
"""),
]

if __name__ == "__main__":
    print("\n".join(write_editions("03_inspecting_gradients.ipynb", cells)))
