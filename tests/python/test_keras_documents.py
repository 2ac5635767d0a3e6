"""The documents' Keras MNIST code runs on tapegrad as written, and
``tg.keras.datasets.mnist.load_data()`` returns what Keras' does.

The code is taken from the first cell of notebooks/02_mnist.ipynb (and must
be the same in its source, notebooks/src/make_02.py); only its two import
lines are replaced. To stay fast it trains on the first 2,000 training and
500 test images (the loader is wrapped; the code itself is unchanged).
"""
import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.data.mnist as data_mnist

ROOT = Path(__file__).resolve().parents[2]
IMPORTS = ["import tensorflow as tf", "from tensorflow import keras"]
OURS = ["import tapegrad as tf", "from tapegrad import keras"]


def documents_code(text):
    m = re.search(r"```python\n(.*?)```", text, re.S)
    assert m, "no ```python block"
    return m.group(1)


def notebook_block():
    nb = json.loads((ROOT / "notebooks" / "02_mnist.ipynb").read_text(encoding="utf-8"))
    first = nb["cells"][0]
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    return documents_code(src)


@pytest.fixture
def mnist_dir(monkeypatch):
    if not os.environ.get("TAPEGRAD_DATA"):  # as test_notebooks.py: CI sets it
        monkeypatch.setenv("TAPEGRAD_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
    return os.environ["TAPEGRAD_DATA"]


def test_the_block_is_the_same_in_the_notebook_and_its_source():
    src = (ROOT / "notebooks" / "src" / "make_02.py").read_text(encoding="utf-8")
    assert documents_code(src) == notebook_block()


def test_the_documents_keras_code_runs_verbatim(mnist_dir, monkeypatch):
    code = notebook_block()
    lines = code.splitlines()
    imports = [ln for ln in lines if re.match(r"(import|from)\s", ln)]
    assert imports == IMPORTS  # exactly the two import lines are replaced
    ours = "\n".join(OURS + [ln for ln in lines if ln not in IMPORTS])
    assert "keras.datasets.mnist.load_data()" in ours and "tf.keras.models.Sequential" in ours

    real = data_mnist.load_data
    calls = []

    def first_samples(*args, **kwargs):
        (xtr, ytr), (xte, yte) = real(*args, **kwargs)
        calls.append(args)
        return (xtr[:2000], ytr[:2000]), (xte[:500], yte[:500])

    monkeypatch.setattr(data_mnist, "load_data", first_samples)
    tg.manual_seed(0)
    out = io.StringIO()
    ns = {"__name__": "__documents__"}
    # the documents pair a softmax output with from_logits=True: warned, as Keras warns
    with contextlib.redirect_stdout(out), \
            pytest.warns(UserWarning, match="produced by a Softmax activation and thus does not represent logits"):
        exec(compile(ours, "<the documents' Keras code>", "exec"), ns)
    assert len(calls) == 1  # the code's own load_data() call went to tapegrad's loader
    printed = out.getvalue()
    model, x_train, x_test = ns["model"], ns["x_train"], ns["x_test"]
    assert isinstance(model, tg.keras.Sequential)
    assert x_train.shape == (2000, 28, 28) and x_train.max() <= 1.0 and x_test.shape == (500, 28, 28)
    # fit(epochs=10, verbose=1 by default) into a non-terminal: one line per epoch
    assert [f"Epoch {i}/10" for i in range(1, 11)] == re.findall(r"Epoch \d+/10", printed)
    assert len(re.findall(r"^63/63 \[=+\] .* - loss: [\d.]+ - accuracy: [\d.]+ - val_loss", printed,
                          re.M)) == 10
    assert "\r" not in printed
    loss, acc = model.evaluate(x_test, ns["y_test"], verbose=0)
    assert acc > 0.6 and np.isfinite(loss)  # it learned (chance is 0.1)


def test_keras_load_data_returns_keras_convention(mnist_dir):
    (x_train, y_train), (x_test, y_test) = tg.keras.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable
    assert set(np.unique(y_train)) == set(range(10)) and x_train.max() == 255
    (x2, y2), _ = data_mnist.load_data()
    assert np.array_equal(x2, x_train) and np.array_equal(y2, y_train)


def test_keras_load_data_path_is_the_only_place_looked(tmp_path):
    with pytest.raises(data_mnist.MNISTNotFoundError, match=str(tmp_path)):
        tg.keras.datasets.mnist.load_data(tmp_path)


def test_keras_models_sequential_is_keras_sequential():
    assert tg.keras.models.Sequential is tg.keras.Sequential
