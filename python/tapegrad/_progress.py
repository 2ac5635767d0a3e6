"""A Keras-style progress bar for training loops (``tg.keras`` ``fit`` and
``python -m tapegrad.examples.mnist``)::

    120/1875 [=>............................] - ETA: 31s - 3.9ms/step - loss: 0.4100 - accuracy: 0.8800
    1875/1875 [==============================] - 7s 3.8ms/step - loss: 0.2581 - accuracy: 0.9262 - val_loss: ...

In a terminal or a Jupyter notebook the first line is rewritten in place
(a carriage return, at most ten times a second) and the second replaces it at
the end of the epoch. Anywhere else (a file, a pipe, a CI log) only the final
line is written, one per epoch. ``verbose`` follows Keras: 0 silent, 1 the
bar, 2 one line per epoch without a bar.

Own code rather than tqdm: it is ~80 lines with no dependency (tapegrad
depends on NumPy alone), it prints Keras' format, which the documents' code
and notebook 02 show, and it needs no widget library in notebooks.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress", "is_interactive"]

_WIDTH = 30
_MIN_INTERVAL = 0.1  # seconds between two redraws of the bar


def is_interactive(stream) -> bool:
    """True when ``stream`` shows a carriage return as "back to the line's
    start": a terminal, or the standard output of a Jupyter kernel."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed file
        pass
    # ipykernel's OutStream (what a notebook's stdout is) renders '\r' in place
    return type(stream).__module__.startswith("ipykernel")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f}ms/step" if seconds < 1e-2 else f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _logs(logs) -> str:
    return "".join(f" - {k}: {v:.4f}" for k, v in (logs or {}).items())


class Progress:
    """The progress of one epoch of ``total`` steps.

    Call :meth:`update` after every step with the number of steps done and
    the running metrics, and :meth:`finish` once at the end with the epoch's
    metrics (validation ones included).

    Parameters
    ----------
    total : int
        Steps in the epoch.
    verbose : int
        0: nothing; 1: a bar (updated in place when the stream is interactive,
        else only the final line); 2: only the final line, without the bar.
    stream : file, optional
        Where to write; default: ``sys.stdout`` at the time of each write.
    interactive : bool, optional
        Override the detection of a terminal or notebook.
    clock : callable, optional
        A clock in seconds (default ``time.perf_counter``).
    """

    def __init__(self, total, verbose=1, stream=None, interactive=None, clock=None):
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.total, self.verbose = int(total), verbose
        self._stream = stream
        self.clock = clock or time.perf_counter
        self.start = self.clock()
        self._last = None
        self._drawn = 0  # length of the bar on screen
        self._done_at = None
        if interactive is None:
            interactive = is_interactive(self.stream)
        self.dynamic = verbose == 1 and interactive

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _bar(self, n: int) -> str:
        done = int(_WIDTH * n / self.total) if self.total else _WIDTH
        done = min(done, _WIDTH)
        bar = "=" * max(done - 1, 0) + (">" if done < _WIDTH else "=") + "." * (_WIDTH - done)
        if done == 0:
            bar = "." * _WIDTH
        return f"{n}/{self.total} [{bar}]"

    def line(self, n: int, logs=None) -> str:
        """The text of the bar after ``n`` steps (what :meth:`update` draws)."""
        elapsed = self.clock() - self.start
        per = elapsed / n if n else 0.0
        eta = per * (self.total - n)
        return f"{self._bar(n)} - ETA: {_duration(eta)} - {_per_step(per)}{_logs(logs)}"

    def update(self, n: int, logs=None) -> None:
        """Redraw the bar after ``n`` steps (only in an interactive stream,
        at most ten times a second, and always at the last step)."""
        if n >= self.total:
            self._done_at = self.clock()  # the epoch's steps end here (validation may follow)
        if not self.dynamic:
            return
        now = self.clock()
        if n < self.total and self._last is not None and now - self._last < _MIN_INTERVAL:
            return
        self._last = now
        text = self.line(n, logs)
        self.stream.write("\r" + text.ljust(self._drawn))  # spaces over a longer old bar
        self._drawn = len(text)
        self.stream.flush()

    def finish(self, logs=None, steps=None) -> None:
        """Write the epoch's final line: steps, the time of the steps and per
        step (validation after the last step is not counted), metrics."""
        if self.verbose == 0:
            return
        n = self.total if steps is None else steps
        elapsed = (self._done_at if self._done_at is not None else self.clock()) - self.start
        timing = f"{_duration(elapsed)} {_per_step(elapsed / max(n, 1))}"
        head = f"{self._bar(n)} - {timing}" if self.verbose == 1 else f"{n}/{self.total} - {timing}"
        text = head + _logs(logs)
        if self.dynamic:
            text = "\r" + text.ljust(self._drawn)
        self.stream.write(text + "\n")
        self.stream.flush()
