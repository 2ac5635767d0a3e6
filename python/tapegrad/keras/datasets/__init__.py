"""Keras' ``keras.datasets``: the data sets of the Keras examples, as NumPy
arrays in Keras' return convention. Only MNIST is provided::

    >>> from tapegrad import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()  # doctest: +SKIP
"""
from . import mnist  # noqa: F401

__all__ = ["mnist"]
