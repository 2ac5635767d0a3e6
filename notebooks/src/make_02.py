"""Source of notebooks/02_mnist.ipynb."""
from nbtools import code, md, write

cells = [
md(r"""
# 02 · MNIST with the Keras-style API

The documents' MNIST classifier, written with Keras:

```python
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
```

It runs on tapegrad as written once its two import lines say `import tapegrad as tf` and
`from tapegrad import keras` (`tests/python/test_keras_documents.py` runs it so). Below, the
same code runs on `tapegrad.keras` step by step, with the real numbers it produces. Set `TAPEGRAD_NOTEBOOK_FAST=1` to run a shortened version (used by the test suite);
the outputs saved in this notebook come from the full run.
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
for h, label, colour in [(hist_mistake, "softmax + from_logits=True (the documents)", "tab:red"),
                         (hist, "logits + from_logits=True (corrected)", "tab:blue")]:
    ax[0].plot(ep, h.history["loss"], "o-", color=colour, label=f"train, {label}")
    ax[0].plot(ep, h.history["val_loss"], "s--", color=colour, label=f"test, {label}")
    ax[1].plot(ep, h.history["accuracy"], "o-", color=colour, label=f"train, {label}")
    ax[1].plot(ep, h.history["val_accuracy"], "s--", color=colour, label=f"test, {label}")
ax[0].axhline(LOSS_FLOOR, color="gray", lw=1, ls=":", label=f"floor log(1 + 9/e) = {LOSS_FLOOR:.3f}")
ax[0].set(xlabel="epoch", ylabel="loss (log scale)", yscale="log", title="learning curves: loss")
ax[1].set(xlabel="epoch", ylabel="accuracy", title="learning curves: accuracy")
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
"""),
code(r"""
probs = tg.softmax(tg.tensor(model.predict(x_test)), -1).numpy()
pred = probs.argmax(1)
wrong = np.flatnonzero(pred != y_test)
print(f"{len(wrong)} of {len(y_test)} test digits misclassified")
fig, axes = plt.subplots(3, 8, figsize=(10, 4.2))
for a, i in zip(axes.ravel(), wrong[:24]):
    a.imshow(x_test[i], cmap="gray_r")
    a.set_title(f"pred {pred[i]} / true {y_test[i]}", fontsize=8)
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
    ax.plot(np.arange(1, DEEP_EPOCHS + 1), acc, marker + "-", label=name)
ax.set(xlabel="epoch", ylabel="test accuracy", title="784-256-128-10, σ hidden layers, gradient descent (η = 0.5)")
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
"""),
md(r"""
## A small convolutional network

The same training loop with `tg.nn` modules directly: two 5×5 convolutions with max
pooling, then two dense layers (the `--model cnn` option of `python -m tapegrad.examples.mnist`).
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
"""),
]

if __name__ == "__main__":
    print(write("02_mnist.ipynb", cells))
