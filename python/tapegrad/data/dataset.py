"""Datasets and the DataLoader (samplers, batching, collation)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .. import _C
from .._C import Tensor
from .sampler import BatchSampler, RandomSampler, SequentialSampler


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


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (shared, not
    copied). A ``DataLoader`` over a Subset of a ``TensorDataset`` still
    gathers each batch in one step.

    >>> import numpy as np, tapegrad as tg
    >>> ds = tg.data.TensorDataset(np.arange(10.0))
    >>> sub = tg.data.Subset(ds, [7, 2, 5])
    >>> len(sub), sub[0][0].item()
    (3, 7.0)
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices.tolist() if isinstance(indices, np.ndarray) else list(indices)

    def __getitem__(self, i):
        if isinstance(i, list):
            return self.dataset[[self.indices[j] for j in i]]
        return self.dataset[self.indices[i]]

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # the batch fast path exists only when the wrapped dataset has one
        if name == "batch" and hasattr(self.__dict__.get("dataset"), "batch"):
            return lambda idx: self.dataset.batch(np.asarray(self.indices, np.int64)[idx])
        raise AttributeError(f"'Subset' object has no attribute {name!r}")


def random_split(dataset, lengths: Sequence, generator=None) -> list:
    """Split ``dataset`` into non-overlapping random ``Subset`` objects of the given
    lengths, or of the given fractions of its length (PyTorch's rule: floors,
    then the remainder handed out one by one from the first split).
    ``generator`` is an int seed, a ``numpy.random.Generator`` or None (then
    ``tg.manual_seed`` makes it reproducible).

    >>> import numpy as np, tapegrad as tg
    >>> ds = tg.data.TensorDataset(np.arange(10.0))
    >>> train, val = tg.data.random_split(ds, [0.8, 0.2], generator=0)
    >>> len(train), len(val), sorted(train.indices + val.indices) == list(range(10))
    (8, 2, True)
    """
    import math
    import warnings

    from .sampler import _as_rng, _pass_rng
    n = len(dataset)
    lengths = list(lengths)
    total = sum(lengths)
    if lengths and math.isclose(total, 1) and total <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1: {frac}")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"random_split: the split at index {i} is empty", UserWarning,
                              stacklevel=2)
        lengths = sizes
    for i, length in enumerate(lengths):
        if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions "
                             f"summing to 1, got {lengths[i]!r} at index {i}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths sum to {sum(lengths)}, but the dataset has {n} "
                         f"samples")
    perm = _pass_rng(_as_rng(generator, "random_split")).permutation(n).tolist()
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + int(length)]))
        start += int(length)
    return out


def _to_tensor(a: np.ndarray) -> Tensor:
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype.kind in "iub" and a.dtype != np.int64:
        a = a.astype(np.int64)
    elif a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return _C.from_numpy(np.ascontiguousarray(a))


class DataLoader:
    """Iterate over a dataset in batches (PyTorch's ``DataLoader`` rules).

    The order comes from a sampler: ``SequentialSampler`` by default,
    ``RandomSampler`` with ``shuffle=True``, or the ``sampler=`` given; a
    ``BatchSampler`` groups it into ``batch_size`` indices (dropping a final
    incomplete batch with ``drop_last=True``), unless ``batch_sampler=`` gives
    the batches directly. ``batch_size=None`` turns batching off: samples come
    one by one, uncollated. Batches are collated by ``collate_fn`` (default:
    :func:`default_collate`); a ``TensorDataset`` is gathered in one step per
    array.

    As in PyTorch, ``sampler`` excludes ``shuffle``, and ``batch_sampler``
    excludes ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``.

    ``shuffle=True`` draws a new order each epoch. Its randomness comes from
    ``generator`` (an int seed or a ``numpy.random.Generator``; ``seed=`` is
    the older name of an int ``generator``) or, if neither is given, from
    tapegrad's global generator (``tg.manual_seed``). Data is loaded in the
    main process: ``num_workers`` and ``pin_memory`` are accepted for
    PyTorch scripts and change nothing.

    Options after ``shuffle`` are keyword-only.

    >>> import numpy as np, tapegrad as tg
    >>> ds = tg.data.TensorDataset(np.arange(6.0), np.arange(6))
    >>> loader = tg.data.DataLoader(ds, batch_size=4, shuffle=True, generator=0, drop_last=True)
    >>> len(loader), [x.shape for x, y in loader]
    (1, [(4,)])
    >>> val = tg.data.DataLoader(ds, batch_size=2, sampler=tg.data.SubsetRandomSampler([4, 5]))
    >>> sorted(y.item() for _, yb in val for y in yb)
    [4, 5]
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, *,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, generator=None,
                 seed: int | None = None):
        if seed is not None:
            if generator is not None:
                raise ValueError("DataLoader: seed and generator are two names for the source of "
                                 "the shuffling; give one of them")
            generator = seed
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative, got "
                             f"{num_workers!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching and "
                                 "is mutually exclusive with drop_last")
        elif not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1 (or None), got {batch_size!r}")
        for name, s in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if s is not None and not hasattr(s, "__iter__"):
                raise TypeError(f"DataLoader: {name} must be an iterable of "
                                f"{'indices' if name == 'sampler' else 'lists of indices'} "
                                f"(such as a tg.data.{'RandomSampler' if name == 'sampler' else 'BatchSampler'}), "
                                f"got {type(s).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, int(batch_size), bool(drop_last))
        self.dataset, self.sampler, self.batch_sampler = dataset, sampler, batch_sampler
        self.batch_size = None if batch_size is None else int(batch_size)
        self.drop_last, self.generator = bool(drop_last), generator
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.collate_fn = collate_fn

    def __len__(self):
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator:
        if self.batch_sampler is None:  # batch_size=None: sample by sample
            for i in self.sampler:
                yield self.dataset[int(i)]
            return
        fast = self.collate_fn is None and hasattr(self.dataset, "batch")
        collate = self.collate_fn or default_collate
        for idx in self.batch_sampler:
            if fast:
                yield self.dataset.batch(np.asarray(idx, dtype=np.int64))
            else:
                yield collate([self.dataset[int(i)] for i in idx])


def default_collate(items: Sequence):
    """Combine a list of samples into a batch, as PyTorch's: tensors, arrays
    and numbers are stacked into one tensor along a new first axis; tuples,
    lists and dicts are collated field by field; strings stay a list.

    >>> import numpy as np, tapegrad as tg
    >>> b = tg.data.default_collate([(np.zeros(3), 1, "a"), (np.ones(3), 2, "b")])
    >>> b[0].shape, b[1].tolist(), b[2]
    ((2, 3), [1, 2], ['a', 'b'])
    >>> tg.data.default_collate([{"x": 1.5}, {"x": 2.5}])["x"].tolist()
    [1.5, 2.5]
    """
    if len(items) == 0:
        raise ValueError("default_collate: got an empty batch")
    first = items[0]
    if isinstance(first, (str, bytes)):
        return list(items)
    if isinstance(first, dict):
        return {k: default_collate([it[k] for it in items]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(it) != len(first) for it in items):
            raise ValueError(f"default_collate: the samples of a batch have different lengths "
                             f"({sorted({len(it) for it in items})}); every sample needs the same "
                             f"number of fields")
        fields = [default_collate([it[k] for it in items]) for k in range(len(first))]
        return tuple(fields) if isinstance(first, tuple) else fields
    arrs = [x.numpy() if isinstance(x, Tensor) else np.asarray(x) for x in items]
    if arrs[0].dtype.hasobject:
        raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; "
                        f"give the DataLoader a collate_fn")
    shapes = {a.shape for a in arrs}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: the samples of a batch have different shapes "
                         f"{sorted(shapes)}; stacking needs equal shapes (pad them, or give the "
                         f"DataLoader a collate_fn)")
    return _to_tensor(np.stack(arrs))
