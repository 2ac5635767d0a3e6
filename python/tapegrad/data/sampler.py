"""Samplers: the order in which a DataLoader visits a dataset (PyTorch's
``torch.utils.data`` samplers, with the same names and rules).

A sampler is an iterable of indices with a length; a batch sampler is an
iterable of lists of indices. ``DataLoader`` builds them from ``shuffle=``,
``batch_size=`` and ``drop_last=``, or takes them as ``sampler=`` and
``batch_sampler=``.

Random samplers take ``generator=``: a ``tg.Generator``, an integer seed, a
``numpy.random.Generator``, or None. With None, each pass draws its seed from
tapegrad's global generator, so ``tg.manual_seed(s)`` makes the order
reproducible (as ``torch.manual_seed`` does for PyTorch's samplers). A seed
or a Generator is used for every pass in turn: each epoch gets a new order,
and the sequence of orders is the same in every run.

>>> import tapegrad as tg
>>> list(tg.data.SequentialSampler(range(4)))
[0, 1, 2, 3]
>>> list(tg.data.BatchSampler(tg.data.SequentialSampler(range(5)), batch_size=2, drop_last=False))
[[0, 1], [2, 3], [4]]
>>> sorted(tg.data.RandomSampler(range(5), generator=0))
[0, 1, 2, 3, 4]
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sized

import numpy as np

from .. import _C

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def _as_rng(generator, who: str):
    """None (the global generator, read at each pass), a tg.Generator (each
    pass draws its seed from it), or a NumPy Generator (made once from an int
    seed) that successive passes draw from in turn."""
    if generator is None or isinstance(generator, (np.random.Generator, _C.Generator)):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        if generator < 0:
            raise ValueError(f"{who}: generator seed must be >= 0, got {generator}")
        return np.random.default_rng(int(generator))
    raise TypeError(f"{who}: generator must be None, a tg.Generator, an int seed or a "
                    f"numpy.random.Generator, got "
                    f"{type(generator).__name__}")


def _pass_rng(rng) -> np.random.Generator:
    if rng is not None and not isinstance(rng, _C.Generator):
        return rng
    # a fresh seed from tapegrad's global generator (seeded by tg.manual_seed),
    # or from the tg.Generator given
    u = _C.rand(2, dtype=_C.float64, generator=rng).numpy()
    return np.random.default_rng([int(v * 2.0 ** 32) for v in u])


class Sampler:
    """Base class: an iterable of dataset indices, usually with a ``__len__``.

    >>> import tapegrad as tg
    >>> class Evens(tg.data.Sampler):
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def __iter__(self):
    ...         return iter(range(0, self.n, 2))
    ...     def __len__(self):
    ...         return (self.n + 1) // 2
    >>> list(Evens(5))
    [0, 2, 4]
    """

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """The indices ``0, 1, ..., len(data_source) - 1`` in order.

    >>> import tapegrad as tg
    >>> list(tg.data.SequentialSampler([10, 20, 30]))
    [0, 1, 2]
    """

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Indices in random order.

    Without replacement (the default) each pass is a permutation of the
    dataset; ``num_samples`` larger than the dataset chains several
    permutations (as PyTorch). With ``replacement=True``, ``num_samples``
    (default: the dataset size) independent uniform draws. ``generator``: an
    int seed, a ``numpy.random.Generator`` or None (see the module docstring).

    >>> import tapegrad as tg
    >>> s = tg.data.RandomSampler(range(10), replacement=True, num_samples=4, generator=1)
    >>> len(s), len(list(s)), all(0 <= i < 10 for i in s)
    (4, 4, True)
    """

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: int | None = None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        if num_samples is not None and (not isinstance(num_samples, (int, np.integer))
                                        or isinstance(num_samples, bool) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={num_samples!r}")
        self.data_source, self.replacement = data_source, replacement
        self._num_samples = None if num_samples is None else int(num_samples)
        self.generator = generator
        self._rng = _as_rng(generator, "RandomSampler")

    @property
    def num_samples(self) -> int:
        # read at each use: the dataset may change size between epochs
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, k = len(self.data_source), self.num_samples
        if n == 0:
            if self._num_samples:
                raise ValueError(f"RandomSampler: cannot draw {k} samples from an empty dataset")
            return iter(())
        rng = _pass_rng(self._rng)
        if self.replacement:
            idx = rng.integers(0, n, size=k)
        else:
            idx = np.concatenate([rng.permutation(n) for _ in range(-(-k // n))])[:k]
        return iter(idx.tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order (a new one each pass): e.g. the
    training part of a train/validation split.

    >>> import tapegrad as tg
    >>> sorted(tg.data.SubsetRandomSampler([7, 3, 5], generator=0))
    [3, 5, 7]
    """

    def __init__(self, indices: Iterable[int], generator=None):
        self.indices = list(indices) if not isinstance(indices, np.ndarray) else indices.tolist()
        self.generator = generator
        self._rng = _as_rng(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[int]:
        perm = _pass_rng(self._rng).permutation(len(self.indices))
        return (self.indices[i] for i in perm.tolist())

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices in ``[0, len(weights))`` drawn with probability
    proportional to ``weights`` (which need not sum to 1): e.g. to
    over-sample rare classes. With ``replacement=False`` an index is drawn at
    most once, so at most as many as there are non-zero weights.

    >>> import tapegrad as tg
    >>> s = tg.data.WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=6, generator=0)
    >>> len(s), 0 in list(s)
    (6, False)
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) \
                or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples should be a positive integer "
                             f"value, but got num_samples={num_samples!r}")
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, but "
                             f"got replacement={replacement!r}")
        w = weights.detach().numpy() if hasattr(weights, "detach") else weights
        try:
            w = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"WeightedRandomSampler: weights must be a 1-d sequence of numbers, "
                            f"got {type(weights).__name__}") from None
        if w.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1d sequence but given "
                             f"weights have shape {w.shape}")
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not "
                             "all zero")
        nonzero = int(np.count_nonzero(w))
        if not replacement and num_samples > nonzero:
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without "
                             f"replacement from {nonzero} non-zero weights")
        self.weights, self.num_samples = w, int(num_samples)
        self.replacement, self.generator = replacement, generator
        self._rng = _as_rng(generator, "WeightedRandomSampler")

    def __iter__(self) -> Iterator[int]:
        rng = _pass_rng(self._rng)
        idx = rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                         p=self.weights / self.weights.sum())
        return iter(idx.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; the
    last, shorter list is dropped when ``drop_last`` is True.

    >>> import tapegrad as tg
    >>> list(tg.data.BatchSampler(range(7), batch_size=3, drop_last=True))
    [[0, 1, 2], [3, 4, 5]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, but "
                             f"got batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self) -> Iterator[list]:
        batch = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
