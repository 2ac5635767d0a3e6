"""Source of notebooks/02_mnist.ipynb and its Chinese edition 02_mnist.zh.ipynb
(same code cells; prose in both languages)."""
from nbtools import code, edition, md, write_editions

# the documents' Keras code, quoted in both editions
# (tests/python/test_keras_documents.py runs it)
DOCUMENTS_KERAS = r"""```python
import tensorflow as tf
from tensorflow import keras

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

model = tf.keras.models.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(128, activation='relu'),
    tf.keras.layers.Dense(10, activation='softmax')
])
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.fit(x_train, y_train, epochs=10, validation_data=(x_test, y_test))
model.evaluate(x_test, y_test)
```"""

# the plots' labels in the zh edition (code cells call tr("..."))
ZH_LABELS = {
    "softmax + from_logits=True (the documents)": "softmax + from_logits=True（文档的写法）",
    "logits + from_logits=True (corrected)": "logits + from_logits=True（改正后）",
    "train, {label}": "训练集，{label}",
    "test, {label}": "测试集，{label}",
    "floor log(1 + 9/e) = {v:.3f}": "下界 log(1 + 9/e) = {v:.3f}",
    "epoch": "轮数 (epoch)",
    "loss (log scale)": "损失（对数坐标）",
    "learning curves: loss": "学习曲线：损失",
    "accuracy": "准确率",
    "learning curves: accuracy": "学习曲线：准确率",
    "pred {p} / true {t}": "预测 {p} / 真实 {t}",
    "σ output, MSE (the documents)": "σ 输出，均方误差（文档的写法）",
    "logits, cross-entropy": "logits，交叉熵",
    "test accuracy": "测试准确率",
    "784-256-128-10, σ hidden layers, gradient descent (η = 0.5)": "784-256-128-10，σ 隐藏层，梯度下降（η = 0.5）",
}

cells = [
md(r"""
# 02 · MNIST with the Keras-style API

The documents' MNIST classifier, written with Keras:

""" + DOCUMENTS_KERAS + r"""

It runs on tapegrad as written once its two import lines say `import tapegrad as tf` and
`from tapegrad import keras` (`tests/python/test_keras_documents.py` runs it so). Below, the
same code runs on `tapegrad.keras` step by step, with the real numbers it produces. Set `TAPEGRAD_NOTEBOOK_FAST=1` to run a shortened version (used by the test suite);
the outputs saved in this notebook come from the full run.
""", zh=r"""
# 02 · 用 Keras 风格的 API 训练 MNIST

文档中的 MNIST 分类器是用 Keras 写的（Keras MNIST 示例，the Keras MNIST example）：

""" + DOCUMENTS_KERAS + r"""

只要把两行 import 改成 `import tapegrad as tf` 和 `from tapegrad import keras`，它就能
原样在 tapegrad 上运行（`tests/python/test_keras_documents.py` 就是这样运行它的）。下面
在 `tapegrad.keras` 上一步步运行同样的代码，并给出它算出的真实数字。设置
`TAPEGRAD_NOTEBOOK_FAST=1` 会运行缩短的版本（测试套件用它）；本笔记本中保存的输出来自
完整运行。
"""),
code(r"""
import os, time
import numpy as np
import matplotlib.pyplot as plt
import tapegrad as tg
from tapegrad import keras

FAST = os.environ.get("TAPEGRAD_NOTEBOOK_FAST") == "1"
EPOCHS = 1 if FAST else 10
tg.manual_seed(0)

# looks in $TAPEGRAD_DATA, then the cache, then downloads (checksums verified)
(x_train, y_train), (x_test, y_test) = tg.data.mnist.load_data()
if FAST:
    x_train, y_train = x_train[:6000], y_train[:6000]
x_train, x_test = x_train / 255.0, x_test / 255.0
print(x_train.shape, y_train.shape, x_test.shape, y_test.shape)
"""),
edition(ZH_LABELS),
md(r"""
## The documents' model, as written

Note the output layer: `Dense(10, activation='softmax')` produces **probabilities**, but the
loss says `from_logits=True`, i.e. "my inputs are raw scores, apply softmax yourself".
The loss therefore applies a second softmax to numbers that are already in (0, 1). The
second softmax squashes the differences (all inputs lie in a range of width 1), so the loss
can never get close to 0 and its gradients are small: the model still learns, but worse and
more slowly.

How far from 0? The best the first softmax can do is put probability 1 on the right class
and 0 on the other nine. The second softmax turns that into $e^1 / (e^1 + 9 e^0)$ for the
right class, so the loss can never go below

$$
-\log \frac{e}{e + 9} = \log\left(1 + \frac{9}{e}\right) \approx 1.461
$$

however well the model is trained (the corrected model's loss goes to 0). Keras notices the
mistake and warns (`... was produced by a Softmax activation and thus does not represent
logits. Was this intended?`); `tapegrad.keras` warns the same way, as the output below shows.
Let us measure it.
""", zh=r"""
## 文档中的模型，原样照搬

注意输出层：`Dense(10, activation='softmax')` 输出的是**概率**，但损失函数写的是
`from_logits=True`，意思是“我的输入是未经 softmax 的原始分数（logits），请你自己做
softmax”。于是损失函数对已经落在 (0, 1) 之间的数又做了一次 softmax。第二次 softmax 把
差异压扁了（所有输入都在宽度为 1 的区间里），所以损失永远无法接近 0，梯度也很小：
模型仍然能学，但学得更差、更慢。

离 0 有多远？第一次 softmax 最好的情况是把概率 1 给正确类别、0 给其余九类。第二次
softmax 把它变成正确类别的 $e^1 / (e^1 + 9 e^0)$，所以无论模型训练得多好，损失都不会
低于

$$
-\log \frac{e}{e + 9} = \log\left(1 + \frac{9}{e}\right) \approx 1.461
$$

（改正后的模型，损失可以趋于 0）。Keras 会发现这个错误并发出警告（`... was produced by
a Softmax activation and thus does not represent logits. Was this intended?`）；
`tapegrad.keras` 也同样警告，见下面的输出。我们来量一量。
"""),
code(r"""
LOSS_FLOOR = np.log(1 + 9 / np.e)
print(f"lowest possible loss of softmax-then-from_logits=True: log(1 + 9/e) = {LOSS_FLOOR:.4f}")
"""),
code(r"""
model = keras.Sequential([
    keras.layers.Flatten(input_shape=(28, 28)),
    keras.layers.Dense(128, activation='relu'),
    keras.layers.Dense(10, activation='softmax'),
])
model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.summary()
t0 = time.perf_counter()
hist_mistake = model.fit(x_train, y_train, epochs=EPOCHS, validation_data=(x_test, y_test), seed=0)
print(f"trained in {time.perf_counter() - t0:.1f}s")
print(f"final training loss {hist_mistake.history['loss'][-1]:.4f}, floor {LOSS_FLOOR:.4f}")
model.evaluate(x_test, y_test)
""", tags=("expected-warning",)),
md(r"""
## The corrected model

Either keep the softmax and say `from_logits=False`, or (better: numerically more stable)
drop the softmax from the last layer and keep `from_logits=True`. We do the latter; to get
probabilities at prediction time, apply softmax to the outputs.
""", zh=r"""
## 改正后的模型

要么保留 softmax 并写 `from_logits=False`，要么（更好：数值上更稳定）去掉最后一层的
softmax，保留 `from_logits=True`。这里采用后者；预测时要得到概率，就对输出再做 softmax。
"""),
code(r"""
tg.manual_seed(0)
model = keras.Sequential([
    keras.layers.Flatten(input_shape=(28, 28)),
    keras.layers.Dense(128, activation='relu'),
    keras.layers.Dense(10),
])
model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
hist = model.fit(x_train, y_train, epochs=EPOCHS, validation_data=(x_test, y_test), seed=0)
test_loss, test_acc = model.evaluate(x_test, y_test)
print(f"test accuracy: {test_acc:.4f}")
"""),
code(r"""
fig, ax = plt.subplots(1, 2, figsize=(12, 4))
ep = np.arange(1, EPOCHS + 1)
for h, label, colour in [(hist_mistake, tr("softmax + from_logits=True (the documents)"), "tab:red"),
                         (hist, tr("logits + from_logits=True (corrected)"), "tab:blue")]:
    train, test = tr("train, {label}").format(label=label), tr("test, {label}").format(label=label)
    ax[0].plot(ep, h.history["loss"], "o-", color=colour, label=train)
    ax[0].plot(ep, h.history["val_loss"], "s--", color=colour, label=test)
    ax[1].plot(ep, h.history["accuracy"], "o-", color=colour, label=train)
    ax[1].plot(ep, h.history["val_accuracy"], "s--", color=colour, label=test)
ax[0].axhline(LOSS_FLOOR, color="gray", lw=1, ls=":", label=tr("floor log(1 + 9/e) = {v:.3f}").format(v=LOSS_FLOOR))
ax[0].set(xlabel=tr("epoch"), ylabel=tr("loss (log scale)"), yscale="log", title=tr("learning curves: loss"))
ax[1].set(xlabel=tr("epoch"), ylabel=tr("accuracy"), title=tr("learning curves: accuracy"))
ax[0].legend(fontsize=7)
ax[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
print("final test accuracy, documents' version:", round(hist_mistake.history["val_accuracy"][-1], 4),
      " corrected:", round(hist.history["val_accuracy"][-1], 4))
"""),
md(r"""
## What the model gets wrong

A grid of misclassified test digits, with the predicted and the true label.
""", zh=r"""
## 模型错在哪里

一组被分错的测试数字，标出了预测的标签（pred）和真实的标签（true）。
"""),
code(r"""
probs = tg.softmax(tg.tensor(model.predict(x_test)), -1).numpy()
pred = probs.argmax(1)
wrong = np.flatnonzero(pred != y_test)
print(f"{len(wrong)} of {len(y_test)} test digits misclassified")
fig, axes = plt.subplots(3, 8, figsize=(10, 4.2))
for a, i in zip(axes.ravel(), wrong[:24]):
    a.imshow(x_test[i], cmap="gray_r")
    a.set_title(tr("pred {p} / true {t}").format(p=pred[i], t=y_test[i]), fontsize=8)
    a.axis("off")
plt.tight_layout()
plt.show()
"""),
md(r"""
## 784-256-128-10: the documents' math, MSE against cross-entropy

The documents also describe a deeper network, 784-256-128-10, with the math of notebook 01:
sigmoid $\sigma$ activations, mean squared error on one-hot targets and plain gradient
descent $W \leftarrow W - \eta \, \partial L / \partial W$ (here on minibatches of 32, as
`fit` does; no momentum, no Adam). We train it exactly so, and next to it the same network
with one change: the last layer gives logits and the loss is cross-entropy. Same seed, same
$\eta = 0.5$, same epochs.

Why might it matter? With a sigmoid output and MSE, the gradient at the output's
pre-activation is $\frac{2}{10}(y - t)\,\sigma'(z)$, and $\sigma'(z) \le 1/4$ vanishes when
a unit is confidently wrong ($y \approx 1$, $t = 0$, or the reverse). Cross-entropy on logits
gives $p - t$, which stays large exactly then. The numbers below say how much that costs here.
""", zh=r"""
## 784-256-128-10：文档的数学，均方误差与交叉熵的对比

文档还描述了一个更深的网络 784-256-128-10，用的是第 01 课的数学：σ 激活函数、对独热
编码（one-hot）目标的均方误差（MSE）以及朴素的梯度下降
$W \leftarrow W - \eta \, \partial L / \partial W$（这里和 `fit` 一样用大小为 32 的小批量；
没有动量，也没有 Adam）。我们就这样训练它，并在旁边训练只改了一处的同一个网络：最后一层
输出 logits，损失用交叉熵（cross-entropy）。随机种子相同，$\eta = 0.5$ 相同，轮数（epoch）
相同。

为什么这可能有影响？输出层用 sigmoid 加均方误差时，输出的激活前输入处的梯度是
$\frac{2}{10}(y - t)\,\sigma'(z)$，而 $\sigma'(z) \le 1/4$，在某个单元“自信地错了”时
（$y \approx 1$ 而 $t = 0$，或反过来）趋于 0。对 logits 的交叉熵给出的是 $p - t$，恰好在
这种时候仍然很大。下面的数字说明这在这里会带来多大差别。
"""),
code(r"""
def deep(out_activation):
    return keras.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(256, activation='sigmoid'),
        keras.layers.Dense(128, activation='sigmoid'),
        keras.layers.Dense(10, activation=out_activation),
    ])

y_train_1h = np.eye(10, dtype=np.float32)[y_train]
y_test_1h = np.eye(10, dtype=np.float32)[y_test]
DEEP_EPOCHS = min(EPOCHS, 5)
results = {}
for name, loss, targets, act in [
        ("σ output, MSE (the documents)", "mse", (y_train_1h, y_test_1h), "sigmoid"),
        ("logits, cross-entropy", keras.losses.SparseCategoricalCrossentropy(from_logits=True), (y_train, y_test), None)]:
    tg.manual_seed(0)
    m = deep(act)
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=loss, metrics=['accuracy'])
    h = m.fit(x_train, targets[0], epochs=DEEP_EPOCHS, batch_size=32,
              validation_data=(x_test, targets[1]), seed=0, verbose=0)
    results[name] = h.history["val_accuracy"]
    print(f"{name:30s} test accuracy per epoch: {np.round(h.history['val_accuracy'], 4)}")
"""),
code(r"""
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for (name, acc), marker in zip(results.items(), "os"):
    ax.plot(np.arange(1, DEEP_EPOCHS + 1), acc, marker + "-", label=tr(name))
ax.set(xlabel=tr("epoch"), ylabel=tr("test accuracy"),
       title=tr("784-256-128-10, σ hidden layers, gradient descent (η = 0.5)"))
ax.legend()
plt.tight_layout()
plt.show()
(mse_name, mse_acc), (ce_name, ce_acc) = results.items()
gap = ce_acc[-1] - mse_acc[-1]
first = next((k + 1 for k, a in enumerate(ce_acc) if a >= mse_acc[-1]), None)
print(f"after {DEEP_EPOCHS} epochs: MSE {mse_acc[-1]:.4f}, cross-entropy {ce_acc[-1]:.4f} "
      f"({100 * gap:+.1f} points for cross-entropy)")
if first is not None:
    print(f"cross-entropy reached MSE's final accuracy after {first} epoch(s)")
"""),
md(r"""
What the numbers say: read the last line above. With the same network, the same step size
and the same number of steps, cross-entropy's accuracy is ahead of MSE's when the printed
gap is positive, and the second line says how many epochs it needed to reach what MSE reaches
at the end. MSE still learns (its gradient does not vanish for every sample), so the
difference is one of speed, which is the reason to prefer cross-entropy for classification;
the documents' MSE model is a correct first network, not a wrong one. (Adam and ReLU, as in the
Keras model above, would train both faster; they are left out here to match the math.)
""", zh=r"""
上面的数字说明了什么：看上面最后一行。网络相同、步长相同、步数相同，打印出的差距为正时，
交叉熵的准确率领先于均方误差；第二行说明交叉熵用了几轮就达到了均方误差最后的准确率。
均方误差仍然能学（它的梯度并不是对每个样本都消失），所以区别在于速度，这正是分类问题
更常用交叉熵的原因；文档中用均方误差的模型是一个正确的入门网络，并不是错的。（像上面
Keras 模型那样用 Adam 和 ReLU，两者都会训练得更快；这里为了与文档的数学一致而没有用。）
"""),
md(r"""
## A small convolutional network

The same training loop with `tg.nn` modules directly: two 5×5 convolutions with max
pooling, then two dense layers (the `--model cnn` option of `python -m tapegrad.examples.mnist`).
""", zh=r"""
## 一个小型卷积网络

同样的训练循环，直接用 `tg.nn` 的模块：两个 5×5 卷积（convolution）加最大池化
（max pooling），再接两个全连接层（即 `python -m tapegrad.examples.mnist` 的
`--model cnn` 选项）。
"""),
code(r"""
from tapegrad.examples.mnist import build_model, evaluate
tg.manual_seed(0)
cnn = build_model("cnn", 128)
opt = tg.optim.Adam(cnn.parameters(), lr=1e-3)
xtr = x_train.astype(np.float32)[:, None]
xte = x_test.astype(np.float32)[:, None]
loader = tg.data.DataLoader(tg.data.TensorDataset(xtr, y_train.astype(np.int64)), batch_size=64,
                            shuffle=True, seed=0)
cnn_epochs = 1 if FAST else 2
for epoch in range(cnn_epochs):
    t0 = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad()
        loss = tg.cross_entropy(cnn(xb), yb)
        loss.backward()
        opt.step()
    val_loss, val_acc = evaluate(cnn, xte, y_test.astype(np.int64))
    print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.0f}s, test loss {val_loss:.4f}, test accuracy {val_acc:.4f}")
"""),
md(r"""
**Summary.** With real numbers: the documents' model trains, but the double softmax costs
accuracy and slows learning; removing the softmax from the last layer (or setting
`from_logits=False`) fixes it (the documents' version cannot get its loss below
log(1 + 9/e) ≈ 1.461). With the documents' σ/MSE/gradient-descent math, cross-entropy on
logits learns faster than MSE on one-hot targets (the numbers above), and a small CNN does
better than the MLP. `python -m tapegrad.examples.mnist` runs the corrected model from
the command line.
""", zh=r"""
**小结。** 用真实的数字来看：文档中的模型能训练，但两次 softmax 损失了准确率、拖慢了
学习；去掉最后一层的 softmax（或设置 `from_logits=False`）就能解决（文档的版本无法把
损失降到 log(1 + 9/e) ≈ 1.461 以下）。在文档的 σ / 均方误差 / 梯度下降的数学下，对
logits 的交叉熵比对独热目标的均方误差学得更快（见上面的数字），小型卷积网络又比多层感知机
（MLP）更好。`python -m tapegrad.examples.mnist` 在命令行上运行改正后的模型。
"""),
]

if __name__ == "__main__":
    print("\n".join(write_editions("02_mnist.ipynb", cells)))
