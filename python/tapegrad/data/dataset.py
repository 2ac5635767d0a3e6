"""Datasets and the DataLoader (batching, seeded shuffling, drop_last)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .. import _C
from .._C import Tensor


class Dataset:
    """A map-style dataset: ``__len__`` and ``__getitem__(i)``."""

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of the given arrays or tensors (all with the
    same first dimension). Tensors are shared, not copied."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        self.arrays = [a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        for k, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {k} is 0-d (shape ()); expected arrays "
                                 f"whose first dimension indexes the samples")
        n = len(self.arrays[0])
        for k, a in enumerate(self.arrays):
            if len(a) != n:
                raise ValueError(f"TensorDataset: array {k} has {len(a) if a.ndim else 0} rows, "
                                 f"array 0 has {n}: all need the same first dimension")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(_C.tensor(a[i]) if a[i].ndim else a[i] for a in self.arrays)

    def batch(self, idx: np.ndarray):
        """Rows ``idx`` of every array as tensors (one gather per array)."""
        return tuple(_to_tensor(a[idx]) for a in self.arrays)


def _to_tensor(a: np.ndarray) -> Tensor:
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype.kind in "iub" and a.dtype != np.int64:
        a = a.astype(np.int64)
    elif a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return _C.from_numpy(np.ascontiguousarray(a))


class DataLoader:
    """Iterate over a dataset in batches.

    ``shuffle=True`` draws a new permutation each epoch from a generator
    seeded with ``seed`` (so runs are reproducible); ``drop_last`` drops a
    final incomplete batch.

    >>> import numpy as np, tapegrad as tg
    >>> ds = tg.data.TensorDataset(np.arange(6.0), np.arange(6))
    >>> loader = tg.data.DataLoader(ds, batch_size=4, shuffle=True, seed=0, drop_last=True)
    >>> len(loader), [x.shape for x, y in loader]
    (1, [(4,)])
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None):
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for s in range(0, stop, self.batch_size):
            idx = order[s:s + self.batch_size]
            if hasattr(self.dataset, "batch"):
                yield self.dataset.batch(idx)
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield _collate(items)


def _collate(items: Sequence):
    first = items[0]
    if isinstance(first, tuple):
        return tuple(_collate([it[k] for it in items]) for k in range(len(first)))
    arrs = [x.numpy() if isinstance(x, Tensor) else np.asarray(x) for x in items]
    return _to_tensor(np.stack(arrs))
