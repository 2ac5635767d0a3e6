"""Samplers and DataLoader(sampler=, batch_sampler=, drop_last=, collate_fn=,
generator=), against PyTorch's torch.utils.data where the behaviour is
deterministic."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import data

torch = pytest.importorskip("torch")
tud = torch.utils.data


def test_sequential_sampler_matches_pytorch():
    for n in (0, 1, 7):
        assert list(data.SequentialSampler(range(n))) == list(tud.SequentialSampler(range(n)))
        assert len(data.SequentialSampler(range(n))) == n


@pytest.mark.parametrize("n, bs, drop", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                         (2, 5, True), (0, 2, False), (7, 1, True)])
def test_batch_sampler_matches_pytorch(n, bs, drop):
    ours = data.BatchSampler(data.SequentialSampler(range(n)), bs, drop)
    ref = tud.BatchSampler(tud.SequentialSampler(range(n)), bs, drop)
    assert list(ours) == list(ref) and len(ours) == len(ref) == len(list(ours))


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=-1), dict(batch_size=True),
                                    dict(batch_size=1.5), dict(drop_last=1), dict(drop_last=None)])
def test_batch_sampler_errors_match_pytorch(kwargs):
    args = dict(batch_size=2, drop_last=False)
    args.update(kwargs)
    with pytest.raises(ValueError):
        tud.BatchSampler(range(3), **args)
    with pytest.raises(ValueError, match="BatchSampler: (batch_size should be a positive integer|"
                                         "drop_last should be a boolean)"):
        data.BatchSampler(range(3), **args)


def test_random_sampler_without_replacement_is_a_permutation_each_pass():
    s = data.RandomSampler(range(50), generator=0)
    a, b = list(s), list(s)
    assert sorted(a) == sorted(b) == list(range(50)) and a != b  # a new order each pass
    assert a == list(data.RandomSampler(range(50), generator=0))  # reproducible from the seed
    assert a != list(data.RandomSampler(range(50), generator=1))
    assert a == list(data.RandomSampler(range(50), generator=np.random.default_rng(0)))


@pytest.mark.parametrize("n, k", [(5, 12), (5, 3), (5, 5), (1, 4)])
def test_random_sampler_num_samples_without_replacement_chains_permutations(n, k):
    ours = data.RandomSampler(range(n), num_samples=k, generator=3)
    ref = tud.RandomSampler(range(n), num_samples=k)
    idx = list(ours)
    assert len(idx) == len(ours) == len(ref) == len(list(ref)) == k
    for s in range(0, k - k % n, n):
        assert sorted(idx[s:s + n]) == list(range(n))  # each full block is a permutation
    assert len(set(idx[k - k % n:])) == k % n  # and the tail has no repeats


def test_random_sampler_with_replacement_draws_uniformly():
    s = data.RandomSampler(range(10), replacement=True, num_samples=20000, generator=7)
    idx = np.array(list(s))
    assert len(s) == 20000 and idx.min() >= 0 and idx.max() <= 9
    counts = np.bincount(idx, minlength=10)
    # binomial(20000, 0.1): sd ~ 42; 5 sd, with a fixed seed
    assert np.all(np.abs(counts - 2000) < 5 * 42), counts
    assert len(set(list(data.RandomSampler(range(3), replacement=True, num_samples=30, generator=1)))) == 3
    assert len(data.RandomSampler(range(10), replacement=True)) == 10


@pytest.mark.parametrize("kwargs, exc", [(dict(replacement="yes"), TypeError),
                                         (dict(replacement=1), TypeError),
                                         (dict(num_samples=0), ValueError),
                                         (dict(num_samples=-2), ValueError),
                                         (dict(num_samples=1.5), ValueError),
                                         (dict(num_samples=True), ValueError)])
def test_random_sampler_errors_match_pytorch(kwargs, exc):
    if kwargs != dict(num_samples=True):  # PyTorch takes True as 1; tapegrad refuses a bool
        with pytest.raises(exc):
            tud.RandomSampler(range(3), **kwargs)
    with pytest.raises(exc, match="RandomSampler: (replacement should be a boolean|"
                                  "num_samples should be a positive integer)"):
        data.RandomSampler(range(3), **kwargs)


@pytest.mark.parametrize("gen", ["0", 1.5, -1, torch.Generator()])
def test_bad_generators_are_refused(gen):
    with pytest.raises((TypeError, ValueError), match="generator"):
        data.RandomSampler(range(3), generator=gen)
    with pytest.raises((TypeError, ValueError), match="generator"):
        data.DataLoader(range(3), shuffle=True, generator=gen)


def test_random_sampler_on_an_empty_dataset():
    assert list(data.RandomSampler([])) == []
    with pytest.raises(ValueError, match="cannot draw 3 samples from an empty dataset"):
        list(data.RandomSampler([], replacement=True, num_samples=3))


def test_without_a_generator_manual_seed_makes_the_order_reproducible():
    tg.manual_seed(11)
    a = list(data.RandomSampler(range(30)))
    tg.manual_seed(11)
    b = list(data.RandomSampler(range(30)))
    tg.manual_seed(12)
    c = list(data.RandomSampler(range(30)))
    assert a == b and a != c and sorted(a) == list(range(30))


def test_subset_random_sampler():
    idx = np.array([9, 3, 3, 7])
    s = data.SubsetRandomSampler(idx, generator=0)
    a, b = list(s), list(s)
    assert len(s) == 4 and sorted(a) == sorted(b) == [3, 3, 7, 9] and all(type(i) is int for i in a)
    seen = {tuple(s) for _ in range(30)}
    assert len(seen) > 1
    assert list(data.SubsetRandomSampler([], generator=0)) == []


# ---------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------

def _ds(n=10):
    return data.TensorDataset(np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32),
                              np.arange(n))


def _tds(n=10):
    return tud.TensorDataset(torch.arange(n, dtype=torch.float32)[:, None] * torch.ones(1, 2),
                             torch.arange(n))


@pytest.mark.parametrize("kwargs, names", [
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"),
    (dict(batch_sampler=[[0]], shuffle=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], sampler=[0]), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"),
])
def test_mutually_exclusive_options_raise_like_pytorch(kwargs, names):
    with pytest.raises(ValueError, match=names):
        tud.DataLoader(_tds(), **kwargs)
    with pytest.raises(ValueError, match="DataLoader: " + names):
        data.DataLoader(_ds(), **kwargs)


def test_other_argument_errors():
    with pytest.raises(ValueError, match="seed and generator"):
        data.DataLoader(_ds(), shuffle=True, seed=1, generator=1)
    with pytest.raises(ValueError, match="num_workers"):
        data.DataLoader(_ds(), num_workers=-1)
    with pytest.raises(TypeError, match="sampler must be an iterable of indices"):
        data.DataLoader(_ds(), sampler=3)
    with pytest.raises(TypeError, match="batch_sampler must be an iterable of lists"):
        data.DataLoader(_ds(), batch_sampler=3)
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        data.DataLoader(_ds(), collate_fn="stack")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.DataLoader(_ds(), batch_size=1.5)
    with pytest.raises(TypeError):  # options after shuffle are keyword-only
        data.DataLoader(_ds(), 4, False, True)


@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                    dict(batch_size=4, sampler=[9, 0, 4, 4, 1]),
                                    dict(batch_sampler=[[3, 1], [0], [2, 2, 5]]),
                                    dict(batch_size=1)])
def test_batches_match_pytorch_for_deterministic_orders(kwargs):
    ours = [(x.numpy(), y.numpy()) for x, y in data.DataLoader(_ds(), **kwargs)]
    ref = [(x.numpy(), y.numpy()) for x, y in tud.DataLoader(_tds(), **kwargs)]
    assert len(ours) == len(ref) == len(data.DataLoader(_ds(), **kwargs))
    for (x, y), (rx, ry) in zip(ours, ref):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)


def test_batch_size_none_yields_samples_unbatched():
    loader = data.DataLoader(_ds(4), batch_size=None, sampler=[2, 0])
    items = list(loader)
    assert len(loader) == 2 and [y.item() for _, y in items] == [2, 0]
    assert items[0][0].shape == (2,)  # no batch axis


def test_shuffle_generator_seed_and_manual_seed():
    ys = lambda loader: np.concatenate([y.numpy() for _, y in loader]).tolist()  # noqa: E731
    a = ys(data.DataLoader(_ds(40), batch_size=8, shuffle=True, generator=5))
    assert sorted(a) == list(range(40)) and a != list(range(40))
    assert a == ys(data.DataLoader(_ds(40), batch_size=8, shuffle=True, seed=5))  # the older name
    assert a == ys(data.DataLoader(_ds(40), batch_size=8, shuffle=True,
                                   generator=np.random.default_rng(5)))
    loader = data.DataLoader(_ds(40), batch_size=8, shuffle=True, generator=5)
    assert ys(loader) == a and ys(loader) != a  # epochs differ, reproducibly
    tg.manual_seed(3)
    b = ys(data.DataLoader(_ds(40), batch_size=8, shuffle=True))
    tg.manual_seed(3)
    assert ys(data.DataLoader(_ds(40), batch_size=8, shuffle=True)) == b
    # shuffle=False and shuffle=None are the sequential order
    assert ys(data.DataLoader(_ds(40), batch_size=8, shuffle=False)) == list(range(40))


def test_sampler_drop_last_and_random_sampler_with_replacement():
    loader = data.DataLoader(_ds(10), batch_size=4, drop_last=True,
                             sampler=data.RandomSampler(_ds(10), replacement=True, num_samples=11,
                                                        generator=2))
    batches = [y.numpy().tolist() for _, y in loader]
    assert len(loader) == 2 and [len(b) for b in batches] == [4, 4]
    assert all(0 <= i < 10 for b in batches for i in b)
    split = data.SubsetRandomSampler(range(6, 10), generator=0)
    val = np.concatenate([y.numpy() for _, y in data.DataLoader(_ds(10), batch_size=3, sampler=split)])
    assert sorted(val.tolist()) == [6, 7, 8, 9]
    bs = data.BatchSampler(data.SequentialSampler(range(10)), 3, drop_last=True)
    assert [y.numpy().tolist() for _, y in data.DataLoader(_ds(10), batch_sampler=bs)] == \
        [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_collate_fn_and_default_collate_on_a_generic_dataset():
    class Words(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(2, i, np.float32), "label": i % 2, "word": "w%d" % i}

    batches = list(data.DataLoader(Words(), batch_size=2))
    assert [b["word"] for b in batches] == [["w0", "w1"], ["w2", "w3"], ["w4"]]
    assert batches[1]["x"].shape == (2, 2) and batches[1]["x"].dtype == tg.float32
    assert batches[1]["label"].tolist() == [0, 1] and batches[1]["label"].dtype == tg.int64
    seen = []
    loader = data.DataLoader(Words(), batch_size=3, collate_fn=lambda items: seen.append(items) or len(items))
    assert list(loader) == [3, 2] and seen[0][0]["word"] == "w0"
    # a custom collate_fn also applies to a TensorDataset (no fast path then)
    sums = [b for b in data.DataLoader(_ds(4), batch_size=2, collate_fn=lambda it: sum(y.item() for _, y in it))]
    assert sums == [1, 5]
    with pytest.raises(ValueError, match="different shapes"):
        data.default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="different lengths"):
        data.default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="collate_fn"):
        data.default_collate([object(), object()])


def test_workers_are_accepted_and_change_nothing():
    a = [y.numpy().tolist() for _, y in data.DataLoader(_ds(), batch_size=3, num_workers=2, pin_memory=True)]
    assert a == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_loader_exposes_pytorchs_attributes():
    loader = data.DataLoader(_ds(), batch_size=4, shuffle=True, drop_last=True)
    assert isinstance(loader.sampler, data.RandomSampler)
    assert isinstance(loader.batch_sampler, data.BatchSampler) and loader.batch_sampler.drop_last
    assert loader.batch_size == 4 and loader.drop_last
    custom = data.DataLoader(_ds(), batch_sampler=[[0, 1]])
    assert custom.batch_size is None and len(custom) == 1


# ---------------------------------------------------------------------------
# Subset and random_split
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 7, 10, 101])
@pytest.mark.parametrize("fracs", [[0.8, 0.2], [0.5, 0.3, 0.2], [1 / 3] * 3, [0.1, 0.9], [1.0],
                                   [0.25] * 4])
def test_random_split_fraction_lengths_match_pytorch(n, fracs):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty splits warn, in both libraries
        ours = data.random_split(range(n), fracs, generator=0)
        ref = tud.random_split(range(n), fracs)
    assert [len(s) for s in ours] == [len(s) for s in ref]
    assert sorted(i for s in ours for i in s.indices) == list(range(n))


def test_random_split_is_a_seeded_partition():
    ds = _ds(20)
    a = data.random_split(ds, [5, 15], generator=4)
    b = data.random_split(ds, [5, 15], generator=np.random.default_rng(4))
    c = data.random_split(ds, [5, 15], generator=5)
    assert [s.indices for s in a] == [s.indices for s in b] != [s.indices for s in c]
    assert not set(a[0].indices) & set(a[1].indices)
    assert sorted(a[0].indices + a[1].indices) == list(range(20))
    tg.manual_seed(2)
    d = data.random_split(ds, [10, 10])
    tg.manual_seed(2)
    assert [s.indices for s in data.random_split(ds, [10, 10])] == [s.indices for s in d]


def test_random_split_errors():
    with pytest.raises(ValueError):
        tud.random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="the lengths sum to 6, but the dataset has 10 samples"):
        data.random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        tud.random_split(range(10), [1.5, -0.5])
    with pytest.raises(ValueError, match="fraction at index 0 is not between 0 and 1"):
        data.random_split(range(10), [1.5, -0.5])
    with pytest.raises(ValueError, match="non-negative integers .* got -1 at index 0"):
        data.random_split(range(10), [-1, 11])
    with pytest.raises(ValueError, match="got 0.5 at index 0"):
        data.random_split(range(10), [0.5, 9.5])
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = data.random_split(range(2), [0.9, 0.05, 0.05], generator=0)
    assert [len(p) for p in parts] == [2, 0, 0]
    assert [str(w.message) for w in caught] == ["random_split: the split at index 1 is empty",
                                                "random_split: the split at index 2 is empty"]


def test_subset_indexing_and_loading():
    ds = _ds(10)
    sub = data.Subset(ds, np.array([8, 1, 5]))
    assert len(sub) == 3 and sub[0][1].item() == 8 and sub[-1][1].item() == 5
    ys = [y.numpy().tolist() for _, y in data.DataLoader(sub, batch_size=2)]
    assert ys == [[8, 1], [5]]
    # the generic path (no TensorDataset underneath) gives the same rows
    plain = [(np.float32(i), i) for i in range(10)]
    assert [y.tolist() for _, y in data.DataLoader(data.Subset(plain, [8, 1, 5]), batch_size=2)] == ys
    assert not hasattr(data.Subset(plain, [0]), "batch")
    train, val = data.random_split(ds, [0.7, 0.3], generator=0)
    seen = [y.item() for loader in (data.DataLoader(train, batch_size=4, shuffle=True, generator=1),
                                    data.DataLoader(val, batch_size=4))
            for _, yb in loader for y in yb]
    assert sorted(seen) == list(range(10))


# ---------------------------------------------------------------------------
# WeightedRandomSampler
# ---------------------------------------------------------------------------

def test_weighted_sampler_draws_in_proportion_to_the_weights():
    w = [1.0, 0.0, 2.0, 5.0]
    s = data.WeightedRandomSampler(w, num_samples=40000, generator=0)
    counts = np.bincount(list(s), minlength=4)
    assert len(s) == 40000 and counts[1] == 0
    expected = 40000 * np.array(w) / 8
    sd = np.sqrt(40000 * (np.array(w) / 8) * (1 - np.array(w) / 8))
    assert np.all(np.abs(counts - expected) <= 5 * sd + 1e-9), counts
    # the same weights as a tensor, and a reproducible order from a seed
    assert list(data.WeightedRandomSampler(tg.tensor(w), 50, generator=3)) == \
        list(data.WeightedRandomSampler(w, 50, generator=3))


def test_weighted_sampler_without_replacement():
    s = data.WeightedRandomSampler([1, 1, 0, 5, 2], num_samples=4, replacement=False, generator=1)
    for _ in range(20):
        idx = list(s)
        assert len(set(idx)) == 4 and 2 not in idx
    ref = tud.WeightedRandomSampler([1.0, 1, 0, 5, 2], num_samples=4, replacement=False)
    assert len(list(ref)) == len(list(s)) == 4


@pytest.mark.parametrize("args, exc, msg", [
    (([1.0, 2.0], 0), ValueError, "num_samples should be a positive integer"),
    (([1.0, 2.0], 2, "yes"), ValueError, "replacement should be a boolean"),
    (([[1.0, 2.0]], 2), ValueError, "weights should be a 1d sequence"),
    (([1.0, -1.0], 2), ValueError, "non-negative"),
    (([0.0, 0.0], 2), ValueError, "not all zero"),
    (([1.0, float("nan")], 2), ValueError, "finite"),
    (([1.0, 0.0, 1.0], 3, False), ValueError, "cannot draw 3 samples without replacement from 2"),
    ((["a", "b"], 2), TypeError, "weights must be a 1-d sequence of numbers"),
])
def test_weighted_sampler_errors(args, exc, msg):
    with pytest.raises(exc, match="WeightedRandomSampler: .*" + msg):
        data.WeightedRandomSampler(*args)


def test_weighted_sampler_in_a_data_loader():
    ds = _ds(6)
    loader = data.DataLoader(ds, batch_size=4, sampler=data.WeightedRandomSampler([0, 0, 0, 0, 0, 1], 8, generator=0))
    assert [y.tolist() for _, y in loader] == [[5] * 4, [5] * 4]
