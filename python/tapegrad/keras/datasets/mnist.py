"""``keras.datasets.mnist``: MNIST as Keras returns it.

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)``: ``x_train``
uint8 of shape (60000, 28, 28), ``y_train`` uint8 of shape (60000,), and the
10,000 test images and labels likewise, exactly like
``keras.datasets.mnist.load_data()``. The files are found (or downloaded and
verified) by :func:`tapegrad.data.mnist.load_data`.
"""
from __future__ import annotations

from ...data import mnist as _mnist

__all__ = ["load_data"]


def load_data(path=None):
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)`` (uint8 NumPy arrays).

    Parameters
    ----------
    path : str or os.PathLike, optional
        A directory holding the four MNIST IDX files (``.gz`` or raw), the
        only place looked in when given. Unlike Keras (where ``path`` names
        a cache file, ``mnist.npz``), it is the directory of
        :func:`tapegrad.data.mnist.load_data`. Default: ``$TAPEGRAD_DATA``,
        then the cache ``~/.cache/tapegrad/mnist``, then a download whose
        SHA-256 is verified.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuple of numpy.ndarray
        Images uint8 of shape (n, 28, 28) with values 0..255, labels uint8
        of shape (n,) with values 0..9; 60,000 training and 10,000 test
        samples.

    Raises
    ------
    tapegrad.data.mnist.MNISTError
        The files were not found, could not be downloaded or are corrupt (the
        message says where the loader looked and what to do).

    Examples
    --------
    >>> from tapegrad import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'), (10000,))
    """
    return _mnist.load_data(path)
