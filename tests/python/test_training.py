"""End-to-end training: the Keras-style front end, the optimizers against
PyTorch, and a short MNIST run that must learn."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import keras, nn

MNIST = os.environ.get("TAPEGRAD_TEST_MNIST",
                       str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"))


@pytest.fixture(scope="module")
def mnist():
    assert Path(MNIST).is_dir(), f"MNIST data not found at {MNIST} (set TAPEGRAD_TEST_MNIST)"
    return tg.data.mnist.load_data(MNIST)


def test_keras_fit_learns_and_reports(mnist, capsys):
    (x_train, y_train), (x_test, y_test) = mnist
    tg.manual_seed(0)
    model = keras.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x_train[:3000] / 255.0, y_train[:3000], epochs=2, batch_size=32,
                     validation_data=(x_test[:1000] / 255.0, y_test[:1000]), seed=0)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "val_accuracy" in out and "94/94" in out
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.history["loss"][1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.8          # chance is 0.1
    loss, acc = model.evaluate(x_test[:1000] / 255.0, y_test[:1000], verbose=0)
    assert abs(acc - hist.history["val_accuracy"][-1]) < 1e-9
    p = model.predict(x_test[:5] / 255.0)
    assert p.shape == (5, 10) and np.allclose(p.sum(1), 1, atol=1e-5)
    model.summary(print_fn=lambda s: None)


def test_keras_from_logits_versions_both_train(mnist):
    (x_train, y_train), _ = mnist
    for out_act, from_logits in [(None, True), ("softmax", False), ("softmax", True)]:
        tg.manual_seed(0)
        m = keras.Sequential([keras.layers.Flatten(input_shape=(28, 28)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation=out_act)])
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = m.fit(x_train[:2000] / 255.0, y_train[:2000], epochs=1, verbose=0, seed=0)
        assert h.history["accuracy"][0] > 0.5, (out_act, from_logits)
        # Keras's warning, for the softmax + from_logits=True pair only
        said = any("produced by a Softmax activation" in str(w.message) for w in caught)
        assert said == (out_act == "softmax" and from_logits), (out_act, from_logits)


def test_short_mnist_run_learns(mnist):
    from tapegrad.examples import mnist as example
    acc = example.main(["--epochs", "1", "--limit", "6000", "--data", MNIST, "--batch-size", "64"])
    assert acc > 0.85


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "sgd_nesterov_wd", "adam", "adamw", "rmsprop"])
def test_optimizers_match_torch_over_several_steps(name):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 3))
    b0 = rng.standard_normal(3)
    x = rng.standard_normal((8, 5))
    y = rng.standard_normal((8, 3))
    w = nn.Parameter(tg.tensor(w0, dtype=tg.float64))
    b = nn.Parameter(tg.tensor(b0, dtype=tg.float64))
    tw = torch.tensor(w0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    make = {
        "sgd": (lambda p: tg.optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        "sgd_momentum": (lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9),
                         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        "sgd_nesterov_wd": (lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
        "adam": (lambda p: tg.optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        "adamw": (lambda p: tg.optim.AdamW(p, lr=0.01, weight_decay=0.1),
                  lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
        "rmsprop": (lambda p: tg.optim.RMSprop(p, lr=0.01, momentum=0.5),
                    lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5)),
    }[name]
    opt, topt = make[0]([w, b]), make[1]([tw, tb])
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        loss = tg.mse_loss((tg.tensor(x) @ w + b).tanh(), tg.tensor(y))
        tloss = torch.nn.functional.mse_loss(torch.tanh(torch.tensor(x) @ tw + tb), torch.tensor(y))
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        assert abs(loss.item() - tloss.item()) < 1e-10
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.numpy(), tb.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_schedulers_match_torch():
    p = nn.Parameter(tg.zeros(1))
    tp = torch.zeros(1, requires_grad=True)
    for mk, tmk in [(lambda o: tg.optim.lr_scheduler.StepLR(o, 3, 0.5),
                     lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
                    (lambda o: tg.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
                     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01))]:
        o, to = tg.optim.SGD([p], lr=1.0), torch.optim.SGD([tp], lr=1.0)
        s, ts = mk(o), tmk(to)
        for _ in range(12):
            to.step()
            s.step()
            ts.step()
            assert abs(s.get_last_lr()[0] - ts.get_last_lr()[0]) < 1e-12
