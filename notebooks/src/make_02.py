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
more slowly. Let us measure it.
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
model.evaluate(x_test, y_test)
"""),
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
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
ep = np.arange(1, EPOCHS + 1)
for h, label in [(hist_mistake, "softmax + from_logits=True (the documents)"), (hist, "logits + from_logits=True")]:
    ax[0].plot(ep, h.history["loss"], "o-", label=f"train, {label}")
    ax[0].plot(ep, h.history["val_loss"], "s--", label=f"test, {label}")
    ax[1].plot(ep, h.history["accuracy"], "o-", label=f"train, {label}")
    ax[1].plot(ep, h.history["val_accuracy"], "s--", label=f"test, {label}")
ax[0].set(xlabel="epoch", ylabel="loss", title="learning curves: loss")
ax[1].set(xlabel="epoch", ylabel="accuracy", title="learning curves: accuracy")
ax[1].legend(fontsize=7)
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
## 784-256-128-10: mean squared error on one-hot targets vs cross-entropy

The documents also describe a deeper network trained with MSE. MSE on one-hot targets works,
but its gradient through a softmax vanishes when the prediction is confidently wrong, while
cross-entropy's gradient stays $p - y$. Same network, same seed, two losses, 5 epochs each:
"""),
code(r"""
def deep(out_activation):
    return keras.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(256, activation='relu'),
        keras.layers.Dense(128, activation='relu'),
        keras.layers.Dense(10, activation=out_activation),
    ])

y_train_1h = np.eye(10, dtype=np.float32)[y_train]
y_test_1h = np.eye(10, dtype=np.float32)[y_test]
results = {}
for name, loss, targets, act in [("MSE (softmax outputs, one-hot)", "mse", (y_train_1h, y_test_1h), "softmax"),
                                 ("cross-entropy (logits)", keras.losses.SparseCategoricalCrossentropy(from_logits=True), (y_train, y_test), None)]:
    tg.manual_seed(0)
    m = deep(act)
    m.compile(optimizer='adam', loss=loss, metrics=['accuracy'])
    h = m.fit(x_train, targets[0], epochs=min(EPOCHS, 5), validation_data=(x_test, targets[1]), seed=0, verbose=0)
    results[name] = h.history["val_accuracy"]
    print(f"{name:34s} test accuracy per epoch: {np.round(h.history['val_accuracy'], 4)}")
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
`from_logits=False`) fixes it. Cross-entropy beats MSE on one-hot targets, and a small CNN
does better than the MLP. `python -m tapegrad.examples.mnist` runs the corrected model from
the command line.
"""),
]

if __name__ == "__main__":
    print(write("02_mnist.ipynb", cells))
