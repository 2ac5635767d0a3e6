"""A Keras-style front end: ``Sequential``, ``compile``, ``fit``, ``evaluate``.

It mirrors the code of the classic Keras MNIST example line for line, but
every layer is a ``tg.nn`` module and every step runs on the tape::

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train, x_test = x_train / 255.0, x_test / 255.0

    model = keras.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(128, activation='relu'),
        keras.layers.Dense(10, activation='softmax'),
    ])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    model.fit(x_train, y_train, epochs=10, validation_data=(x_test, y_test))
    model.evaluate(x_test, y_test)
"""
from . import datasets, layers, losses, models, optimizers  # noqa: F401
from .model import History, Sequential  # noqa: F401
