"""The training progress bar (tapegrad._progress) and Keras' verbose=0/1/2
in tg.keras fit/evaluate. Time comes from a fake clock: nothing depends on
how fast the machine is."""
import io
import re

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import keras
from tapegrad._progress import Progress, is_interactive


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_is_interactive():
    assert is_interactive(Terminal())
    assert not is_interactive(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_interactive(closed)
    assert not is_interactive(object())


def test_not_a_terminal_one_line_per_epoch():
    out, clock = io.StringIO(), Clock()
    p = Progress(100, 1, stream=out, clock=clock)
    for n in range(1, 101):
        clock.t = n * 0.02
        p.update(n, {"loss": 1.0 / n})
    assert out.getvalue() == ""  # nothing while the epoch runs
    clock.t = 5.0  # validation after the last step is not counted in the timing
    p.finish({"loss": 0.01, "val_loss": 0.5})
    assert out.getvalue() == ("100/100 [==============================] - 2s 20ms/step"
                              " - loss: 0.0100 - val_loss: 0.5000\n")


def test_terminal_bar_steps_rate_eta_and_metrics():
    out, clock = Terminal(), Clock()
    p = Progress(100, 1, stream=out, clock=clock)
    clock.t = 1.0
    p.update(10, {"loss": 0.5, "accuracy": 0.75})
    text = out.getvalue()
    assert text == ("\r10/100 [==>...........................] - ETA: 9s - 100ms/step"
                    " - loss: 0.5000 - accuracy: 0.7500")


def test_terminal_redraws_at_most_ten_times_a_second_and_always_the_last_step():
    out, clock = Terminal(), Clock()
    p = Progress(1000, 1, stream=out, clock=clock)
    for n in range(1, 1001):
        clock.t = n * 0.001  # 1000 steps in 1 s
        p.update(n, {"loss": 1.0})
    draws = out.getvalue().split("\r")[1:]
    assert 10 <= len(draws) <= 12
    assert draws[0].startswith("1/1000 ") and draws[-1].startswith("1000/1000 [====")
    clock.t = 1.5
    p.finish({"loss": 1.0})
    final = out.getvalue().split("\r")[-1]
    assert final.startswith("1000/1000 [==============================] - 1s 1.0ms/step - loss: 1.0000")
    assert final.endswith("\n") and "ETA" not in final


def test_final_line_covers_a_longer_bar():
    out, clock = Terminal(), Clock()
    p = Progress(2, 1, stream=out, clock=clock)
    clock.t = 1.0
    p.update(1, {"loss": 1.0, "accuracy": 0.5, "a_long_metric_name": 1.0})
    p.update(2, {})
    drawn = out.getvalue().split("\r")
    assert len(drawn[2]) >= len(drawn[1])  # spaces over what a shorter line would leave


def test_verbose_2_and_0():
    out, clock = Terminal(), Clock()
    p = Progress(50, 2, stream=out, clock=clock)
    clock.t = 0.5
    p.update(50, {"loss": 1.0})
    assert out.getvalue() == ""  # no bar, even in a terminal
    p.finish({"loss": 1.0})
    assert out.getvalue() == "50/50 - 0s 10ms/step - loss: 1.0000\n"
    out = Terminal()
    p = Progress(50, 0, stream=out, clock=clock)
    p.update(50, {"loss": 1.0})
    p.finish({"loss": 1.0})
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2, got 3"):
        Progress(5, 3)


def test_long_epochs_show_minutes_and_hours():
    out, clock = Terminal(), Clock()
    p = Progress(1000, 1, stream=out, clock=clock)
    clock.t = 100.0
    p.update(10, {})
    assert "ETA: 2:45:00 - 10.00s/step" in out.getvalue()
    clock.t = 125.0
    p.update(1000, {})
    p.finish({})
    assert " - 2:05 125ms/step" in out.getvalue()


# ------------------------------------------------------------ keras fit

def small_model():
    tg.manual_seed(0)
    m = keras.Sequential([keras.layers.Flatten(input_shape=(4,)),
                          keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((100, 4)).astype(np.float32), rng.integers(0, 3, 100)


@pytest.mark.parametrize("verbose", [1, "auto"])
def test_fit_verbose_1_not_a_terminal(capsys, verbose):
    x, y = data()
    small_model().fit(x, y, epochs=3, batch_size=10, validation_data=(x, y), verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    for line in lines[1::2]:
        assert re.fullmatch(r"10/10 \[={30}\] - \d+s [\d.]+(us|ms)/step - loss: [\d.]+ - "
                            r"accuracy: [\d.]+ - val_loss: [\d.]+ - val_accuracy: [\d.]+", line), line


def test_fit_verbose_1_in_a_terminal_draws_a_bar(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    x, y = data()
    small_model().fit(x, y, epochs=1, batch_size=10)
    text = term.getvalue()
    assert text.startswith("Epoch 1/1\n\r1/10 [")
    assert "ETA: " in text and "/step - loss: " in text and " - accuracy: " in text
    assert text.endswith("\n") and text.count("\n") == 2


def test_fit_verbose_2_one_line_without_bar(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    x, y = data()
    small_model().fit(x, y, epochs=2, batch_size=10, verbose=2)
    lines = term.getvalue().split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    assert re.fullmatch(r"10/10 - \d+s [\d.]+(us|ms)/step - loss: [\d.]+ - accuracy: [\d.]+", lines[1])
    assert "\r" not in term.getvalue() and "[" not in term.getvalue()


def test_fit_and_evaluate_verbose_0_print_nothing(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    x, y = data()
    m = small_model()
    m.fit(x, y, epochs=2, batch_size=10, verbose=0)
    m.evaluate(x, y, verbose=0)
    assert term.getvalue() == ""


def test_evaluate_verbose_1_draws_a_bar(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    x, y = data()
    loss, acc = small_model().evaluate(x, y, batch_size=25)
    final = term.getvalue().split("\r")[-1]
    assert final.startswith("4/4 [====") and f"loss: {loss:.4f} - accuracy: {acc:.4f}" in final


@pytest.mark.parametrize("bad", [3, -1, "yes", 1.5, None])
def test_fit_rejects_a_bad_verbose(bad):
    x, y = data()
    m = small_model()
    with pytest.raises(ValueError, match=r"fit: verbose must be 0 \(silent\), 1"):
        m.fit(x, y, verbose=bad)
    with pytest.raises(ValueError, match="evaluate: verbose must be"):
        m.evaluate(x, y, verbose=bad)
