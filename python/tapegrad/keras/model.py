"""keras.Sequential: compile / fit / evaluate / predict with Keras' progress
bar (a single updating line in terminals and Jupyter, one line per epoch
elsewhere; see tapegrad._progress)."""
from __future__ import annotations

import numpy as np

from .. import _C, nn
from .._progress import Progress
from ..autograd import no_grad
from ..data.dataset import _to_tensor
from . import losses as _losses
from . import optimizers as _optimizers


class History:
    """What ``fit`` returns: ``history.history['loss']`` etc., one value per epoch."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def _add(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History({self.history})"


def _verbosity(verbose, where):
    """Keras' ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch;
    ``"auto"`` is 1."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, int, np.integer)) and int(verbose) in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"{where}: verbose must be 0 (silent), 1 (progress bar), 2 (one line "
                     f"per epoch) or 'auto', got {verbose!r}")


class Sequential(nn.Module):
    """A stack of Keras layers.

    >>> import numpy as np
    >>> from tapegrad import keras
    >>> m = keras.Sequential([keras.layers.Flatten(input_shape=(2, 2)),
    ...                       keras.layers.Dense(3, activation='softmax')])
    >>> m.predict(np.zeros((4, 2, 2), np.float32), verbose=0).shape
    (4, 3)
    """

    def __init__(self, layers=None, name=None):
        super().__init__()
        self.model_name = name or "sequential"
        self.layers = nn.ModuleList(layers or [])
        self.optimizer = None
        self.loss = None
        self.metrics_names = []
        self._built = False

    def add(self, layer):
        self.layers.append(layer)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def _build(self, x):
        if not self._built:
            with no_grad():
                self(x[:1])
            self._built = True

    # ---- compile / fit ----------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None):
        """Choose the optimizer ('adam', 'sgd', 'rmsprop' or an object), the
        loss (a name or a ``keras.losses`` object) and the metrics
        (``['accuracy']``)."""
        self._opt_spec = _optimizers.get(optimizer)
        self.loss = _losses.get(loss) if loss is not None else None
        self.metrics_names = list(metrics or [])
        for m in self.metrics_names:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; only 'accuracy' is supported")
        self.optimizer = None

    def _ensure_optimizer(self):
        if self.optimizer is None:
            spec = self._opt_spec
            self.optimizer = spec.make(list(self.parameters())) if hasattr(spec, "make") else spec

    @staticmethod
    def _prep_x(x):
        x = np.asarray(x)
        if x.dtype == np.uint8:
            x = x.astype(np.float32)
        elif x.dtype != np.float32 and x.dtype.kind == "f":
            x = x.astype(np.float32)
        return x

    def _batch_metrics(self, out, yb):
        if not self.metrics_names:
            return 0
        pred = out.numpy().argmax(axis=-1)
        y = yb.numpy()
        if y.ndim == pred.ndim + 1:  # one-hot targets
            y = y.argmax(axis=-1)
        return int((pred == y).sum())

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None,
            shuffle: bool = True, verbose="auto", seed: int | None = None, steps_per_epoch=None):
        """Train for ``epochs`` epochs and return a ``History``.

        ``verbose`` as in Keras: 0 prints nothing; 1 (or ``"auto"``) prints
        ``Epoch i/n`` and a progress bar within each epoch (steps, ETA, time
        per step, running loss and accuracy), redrawn in place in a terminal
        or a notebook, and written once at the end of the epoch (one line per
        epoch) when the output is a file or a pipe; 2 prints one line per
        epoch without a bar. The final line of each epoch adds the validation
        metrics."""
        verbose = _verbosity(verbose, "fit")
        if self.loss is None:
            raise RuntimeError("fit: call compile(optimizer=..., loss=...) first")
        x = self._prep_x(x)
        y = np.asarray(y).astype(np.int64) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, np.float32)
        if len(x) != len(y):
            raise ValueError(f"fit: x has {len(x)} samples but y has {len(y)}")
        _check_batches("fit", len(x), batch_size)
        self._build(_to_tensor(x[:1]))
        self._ensure_optimizer()
        rng = np.random.default_rng(seed)
        hist = History()
        n = len(x)
        steps = -(-n // batch_size)
        if steps_per_epoch:
            steps = min(steps, steps_per_epoch)
        for epoch in range(epochs):
            self.train()
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            order = rng.permutation(n) if shuffle else np.arange(n)
            prog = Progress(steps, verbose)
            tot_loss, tot_correct, seen = 0.0, 0, 0
            for s in range(steps):
                idx = order[s * batch_size:(s + 1) * batch_size]
                xb, yb = _to_tensor(x[idx]), _to_tensor(y[idx])
                self.optimizer.zero_grad()
                out = self(xb)
                loss = self.loss(yb, out)
                loss.backward()
                self.optimizer.step()
                k = len(idx)
                tot_loss += loss.item() * k
                tot_correct += self._batch_metrics(out, yb)
                seen += k
                logs = {"loss": tot_loss / seen}
                if self.metrics_names:
                    logs["accuracy"] = tot_correct / seen
                prog.update(s + 1, logs)
            if validation_data is not None:
                vl = self.evaluate(*validation_data, batch_size=max(batch_size, 256), verbose=0,
                                   return_dict=True)
                logs.update({f"val_{k}": v for k, v in vl.items()})
            prog.finish(logs)
            hist._add(epoch, logs)
        return hist

    def evaluate(self, x, y, batch_size: int = 32, verbose="auto", return_dict: bool = False):
        """Loss (and accuracy) on (x, y) in eval mode, without recording
        (``verbose`` as in :meth:`fit`)."""
        verbose = _verbosity(verbose, "evaluate")
        if self.loss is None:
            raise RuntimeError("evaluate: call compile(...) first")
        x = self._prep_x(x)
        y = np.asarray(y)
        y = y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(np.float32)
        if len(x) != len(y):
            raise ValueError(f"evaluate: x has {len(x)} samples but y has {len(y)}")
        _check_batches("evaluate", len(x), batch_size)
        self._build(_to_tensor(x[:1]))
        self.eval()
        tot_loss, correct = 0.0, 0
        steps = -(-len(x) // batch_size)
        prog = Progress(steps, verbose)
        seen = 0
        with no_grad():
            for s in range(steps):
                xb = _to_tensor(x[s * batch_size:(s + 1) * batch_size])
                yb = _to_tensor(y[s * batch_size:(s + 1) * batch_size])
                out = self(xb)
                tot_loss += self.loss(yb, out).item() * len(yb)
                correct += self._batch_metrics(out, yb)
                seen += len(yb)
                logs = {"loss": tot_loss / seen}
                if self.metrics_names:
                    logs["accuracy"] = correct / seen
                prog.update(s + 1, logs)
        self.train()
        res = {"loss": tot_loss / len(x)}
        if self.metrics_names:
            res["accuracy"] = correct / len(x)
        prog.finish(res)
        return res if return_dict else (list(res.values()) if len(res) > 1 else res["loss"])

    def predict(self, x, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """The model's outputs as a NumPy array (eval mode, no recording)."""
        x = self._prep_x(x)
        _check_batches("predict", None, batch_size)
        self._build(_to_tensor(x[:1]))
        self.eval()
        outs = []
        with no_grad():
            for s in range(0, len(x), batch_size):
                outs.append(self(_to_tensor(x[s:s + batch_size])).numpy().copy())
        self.train()
        return np.concatenate(outs) if outs else np.zeros((0,))

    def summary(self, print_fn=print):
        """Print the layers with their output shapes and parameter counts
        (the model is built from the first layer's ``input_shape``)."""
        shape = next((l.input_shape for l in self.layers if getattr(l, "input_shape", None)), None)
        shapes = []
        if shape is not None:
            with no_grad():
                h = _C.zeros(1, *shape)
                for layer in self.layers:
                    h = layer(h)
                    shapes.append("(None, " + ", ".join(map(str, h.shape[1:])) + ")")
            self._built = True
        rows, total = [], 0
        for i, layer in enumerate(self.layers):
            n = sum(p.size for p in layer.parameters())
            total += n
            rows.append((f"{type(layer).__name__.lower()}_{i} ({type(layer).__name__})",
                         shapes[i] if shapes else "?", n))
        print_fn(f'Model: "{self.model_name}"')
        print_fn(f"{'Layer (type)':<30}{'Output Shape':<20}{'Param #':>10}")
        print_fn("=" * 60)
        for r in rows:
            print_fn(f"{r[0]:<30}{r[1]:<20}{r[2]:>10,}")
        print_fn("=" * 60)
        print_fn(f"Total params: {total:,}")


def _check_batches(who, n, batch_size):
    """batch_size must be a positive int and (n given) there must be samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    if n is not None and n == 0:
        raise ValueError(f"{who}: x and y have no samples (expected at least one)")
