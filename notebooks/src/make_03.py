"""Source of notebooks/03_inspecting_gradients.ipynb.

    python notebooks/src/make_03.py          # write the notebook
    python notebooks/src/nbtools.py run notebooks/03_inspecting_gradients.ipynb
"""
from nbtools import code, md, write

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
"""),
code(r"""
loss.tape()
"""),
md(r"""
The same graph drawn: op nodes (entries) and tensor nodes, with shapes, and values for
small tensors. A `tg.Tape()` block records the same entries (and prints the same table).
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
"""),
code(r"""
tg.inspect.explore(loss)
"""),
md(r"""
## 3. A reused tensor's gradient is a sum

When a tensor is used twice, the chain rule adds the two paths. A *tied* autoencoder uses
the same $W$ to encode and (transposed) to decode: $\hat X = W^\top \sigma(W X)$. The
stepper's `contributions(W)` lists the piece each entry sent to $W$; `W.grad` is their sum.
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
"""),
code(r"""
tg.inspect.compare_grads(by_hand(*np_args, bias_sum=False), params)
"""),
md(r"""
`tg.testing.check_entry` checks **one** entry: it re-runs the entry's op on float64 copies
of its inputs, gets the VJP through the engine, and compares it with central finite
differences.
"""),
code(r"""
for e in tape:                   # the entries recorded by the Tape above
    print(tg.testing.check_entry(e))
"""),
md(r"""
With `tg.override_vjp` you can replace an op's VJP by your own (the coursework does). A
sigmoid VJP that forgets the factor $(1 - y)$ fails, and the check says which input and
where:
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
"""),
code(r"""
big = next(e for e in mloss.tape().entries if e.op == "matmul")
tg.testing.check_entry(big, max_checks=200)
"""),
md(r"""
And the cost of one training step on this batch: the two matmuls dominate, forward and
backward (the backward of a matmul is two matmuls of the same size, one per input that
needs a gradient; here $X$ needs none).
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
"""),
]

if __name__ == "__main__":
    print(write("03_inspecting_gradients.ipynb", cells))
