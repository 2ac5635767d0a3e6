"""Data: datasets, samplers, a batching DataLoader, and the MNIST loader.

>>> import numpy as np, tapegrad as tg
>>> ds = tg.data.TensorDataset(np.zeros((10, 3), np.float32), np.arange(10))
>>> [xb.shape for xb, yb in tg.data.DataLoader(ds, batch_size=4)]
[(4, 3), (4, 3), (2, 3)]
"""
from . import mnist  # noqa: F401
from .dataset import DataLoader, Dataset, TensorDataset, default_collate  # noqa: F401
from .sampler import (  # noqa: F401
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
)
