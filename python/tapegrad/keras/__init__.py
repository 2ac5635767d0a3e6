"""A Keras-style front end: ``Sequential``, ``compile``, ``fit``, ``evaluate``.

It mirrors the code of the classic Keras MNIST example line for line, but
every layer is a ``tg.nn`` module and every step runs on the tape::

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
from . import layers, losses, optimizers  # noqa: F401
from .model import History, Sequential  # noqa: F401
