"""Data: datasets, samplers, a batching DataLoader, and the MNIST and text loaders.

>>> import numpy as np, tapegrad as tg
>>> ds = tg.data.TensorDataset(np.zeros((10, 3), np.float32), np.arange(10))
>>> [xb.shape for xb, yb in tg.data.DataLoader(ds, batch_size=4)]
[(4, 3), (4, 3), (2, 3)]
"""
from . import mnist, text  # noqa: F401
from .dataset import (  # noqa: F401
    DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split,
)
from .sampler import (  # noqa: F401
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
    WeightedRandomSampler,
)
