"""Train an MNIST classifier with tapegrad.

The default is the 784-128-10 network of the classic Keras example
(Flatten -> Dense(128, relu) -> Dense(10)), trained for 10 epochs with Adam
(lr 1e-3) at batch size 32 on softmax cross-entropy, evaluated on the test
set after every epoch::

    python -m tapegrad.examples.mnist                 # the documents' model
    python -m tapegrad.examples.mnist --model cnn --epochs 5
    python -m tapegrad.examples.mnist --data /path/to/mnist --epochs 1

The data comes from ``tapegrad.data.mnist.load_data`` (``--data DIR``, else
``$TAPEGRAD_DATA``, else the cache, else a verified download). Each epoch shows
a progress bar (steps, ETA, time per step, running loss and accuracy; one line
per epoch when the output is not a terminal).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import tapegrad as tg
from tapegrad import nn
from tapegrad._progress import Progress


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


PROG = "python -m tapegrad.examples.mnist"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring's examples as written, and every option's default
    (options whose default is "not given" say in their help what happens)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.replace("::", ":").replace("``", ""),
                                 formatter_class=_HelpFormatter)
    ap.add_argument("--epochs", type=_positive(int), default=10, help="passes over the training set")
    ap.add_argument("--batch-size", type=_positive(int), default=32, help="images per step")
    ap.add_argument("--hidden", type=_positive(int), default=128, help="hidden units of --model mlp")
    ap.add_argument("--lr", type=_positive(float), default=1e-3, help="Adam's learning rate")
    ap.add_argument("--model", choices=["mlp", "mlp3", "cnn"], default="mlp",
                    help="mlp: 784-HIDDEN-10; mlp3: 784-256-128-10; cnn: two conv layers")
    ap.add_argument("--data", metavar="DIR", default=None,
                    help="directory with the four MNIST IDX files (.gz or raw); default: "
                         "$TAPEGRAD_DATA, else ~/.cache/tapegrad/mnist, else a download")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights and the shuffling")
    ap.add_argument("--limit", type=_positive(int), metavar="N", default=None,
                    help="use only the first N training images (default: all)")
    ap.add_argument("--threads", type=_positive(int), metavar="N", default=None,
                    help="threads of the kernels (default: TAPEGRAD_NUM_THREADS, else "
                         "OMP_NUM_THREADS, else the CPUs available)")
    ap.add_argument("--quiet", action="store_true",
                    help="no progress bar: one line per epoch")
    ap.add_argument("--debug", action="store_true",
                    help="on an error, show the full traceback instead of one line")
    return ap


def _data_error(exc: Exception, data) -> str:
    """One line for a data-loading error, in command-line words."""
    mnist = tg.data.mnist
    files = ", ".join(f"{n}.gz" for n in mnist.FILES.values())
    if isinstance(exc, mnist.MNISTNotFoundError) and data is not None:
        return (f"no MNIST files in --data {data}: that directory must hold {files} "
                f"(or the same names without .gz)")
    if isinstance(exc, mnist.MNISTDownloadError):
        last = exc.attempts[-1] if exc.attempts else None
        why = f" (last error: {type(last[1]).__name__}: {last[1]})" if last else ""
        return (f"could not download MNIST{why}; use --data DIR with the four files "
                f"({files}), or check the network")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.replace("Replace it with a good copy of the original file.", "").strip()
    return f"{first} Use --data DIR with good copies of the four MNIST files."


def main(argv=None) -> float:
    """Run the command line; returns the final test accuracy. A user error
    (bad option, missing or corrupt data) exits with status 2 and one line on
    standard error (the traceback with ``--debug``)."""
    ap = parser()
    args = ap.parse_args(argv)
    try:
        return _train(args)
    except tg.data.mnist.MNISTError as exc:
        if args.debug:
            raise
        ap.exit(2, f"{PROG}: error: {_data_error(exc, args.data)} (--debug shows the traceback)\n")
    except KeyboardInterrupt:
        if args.debug:
            raise
        ap.exit(130, f"\n{PROG}: interrupted\n")


def _train(args) -> float:
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
          f"{tg.get_num_threads()} threads", flush=True)
    acc = 0.0
    steps = len(loader)
    for epoch in range(1, args.epochs + 1):
        print(f"Epoch {epoch}/{args.epochs}", flush=True)
        bar = Progress(steps, 2 if args.quiet else 1)
        total, correct, seen = 0.0, 0, 0
        for step, (xb, yb) in enumerate(loader, 1):
            opt.zero_grad()
            out = model(xb)
            loss = tg.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            n = yb.shape[0]
            total += loss.item() * n
            correct += int((out.numpy().argmax(1) == yb.numpy()).sum())
            seen += n
            bar.update(step, {"loss": total / seen, "accuracy": correct / seen})
        val_loss, acc = evaluate(model, x_test, y_test)
        bar.finish({"loss": total / seen, "accuracy": correct / seen,
                    "val_loss": val_loss, "val_accuracy": acc})
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
    sys.exit(0)
