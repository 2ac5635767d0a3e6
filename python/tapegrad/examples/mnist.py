"""Train an MNIST classifier with tapegrad.

The default is the 784-128-10 network of the classic Keras example
(Flatten -> Dense(128, relu) -> Dense(10)), trained for 10 epochs with Adam
(lr 1e-3) at batch size 32 on softmax cross-entropy, evaluated on the test
set after every epoch::

    python -m tapegrad.examples.mnist                 # the documents' model
    python -m tapegrad.examples.mnist --model cnn --epochs 5
    python -m tapegrad.examples.mnist --data /path/to/mnist --epochs 1

The data comes from ``tapegrad.data.mnist.load_data`` (``--data DIR``, else
``$TAPEGRAD_DATA``, else the cache, else a verified download).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tapegrad as tg
from tapegrad import nn


def build_model(kind: str, hidden: int) -> nn.Module:
    """mlp: 784-hidden-10; mlp3: 784-256-128-10; cnn: a small LeNet-style net."""
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    if kind == "mlp3":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                             nn.ReLU(), nn.Linear(128, 10))
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),      # 16 x 14 x 14
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),     # 32 x 7 x 7
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    raise ValueError(f"unknown model {kind!r}")


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000):
    """Mean cross-entropy and accuracy, without recording."""
    model.eval()
    loss, correct = 0.0, 0
    with tg.no_grad():
        for s in range(0, len(x), batch):
            xb, yb = tg.from_numpy(x[s:s + batch]), tg.from_numpy(y[s:s + batch])
            out = model(xb)
            loss += tg.cross_entropy(out, yb, reduction="sum").item()
            correct += int((out.numpy().argmax(1) == y[s:s + batch]).sum())
    model.train()
    return loss / len(x), correct / len(x)


def prepare(images: np.ndarray, kind: str) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    return x[:, None, :, :] if kind == "cnn" else x


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--model", choices=["mlp", "mlp3", "cnn"], default="mlp")
    ap.add_argument("--data", default=None, help="directory with the four MNIST IDX files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    if args.threads:
        tg.set_num_threads(args.threads)
    tg.manual_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = tg.data.mnist.load_data(args.data)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train, x_test = prepare(x_train, args.model), prepare(x_test, args.model)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)

    model = build_model(args.model, args.hidden)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr)
    loader = tg.data.DataLoader(tg.data.TensorDataset(x_train, y_train), batch_size=args.batch_size,
                                shuffle=True, seed=args.seed)
    print(f"tapegrad {tg.__version__}: {args.model} with {model.num_parameters():,} parameters, "
          f"{len(x_train)} training images, batch {args.batch_size}, Adam lr {args.lr}, "
          f"{tg.get_num_threads()} threads")
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        total, correct, seen = 0.0, 0, 0
        for xb, yb in loader:
            opt.zero_grad()
            out = model(xb)
            loss = tg.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            n = yb.shape[0]
            total += loss.item() * n
            correct += int((out.numpy().argmax(1) == yb.numpy()).sum())
            seen += n
        dt = time.perf_counter() - t0
        val_loss, acc = evaluate(model, x_test, y_test)
        print(f"epoch {epoch:2d}/{args.epochs}  {dt:6.1f}s  loss {total / seen:.4f}  "
              f"accuracy {correct / seen:.4f}  val_loss {val_loss:.4f}  val_accuracy {acc:.4f}",
              flush=True)
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
    sys.exit(0)
