"""``keras.models``: where Keras code finds ``Sequential``
(``tf.keras.models.Sequential([...])``); the same class as
``tapegrad.keras.Sequential``."""
from .model import History, Sequential  # noqa: F401

__all__ = ["Sequential", "History"]
