"""tg.Generator (independent random streams) and the integer draws randint,
randperm and multinomial: reproducibility, independence, distributions (with
wide statistical bounds, seeded so they cannot flake) and errors."""
import numpy as np
import pytest

import tapegrad as tg


def test_same_seed_same_stream_and_streams_are_independent():
    g1, g2 = tg.Generator().manual_seed(5), tg.Generator().manual_seed(5)
    a = tg.randn(10, generator=g1)
    tg.manual_seed(123)
    tg.randn(100)  # the default generator moving does not touch g2
    b = tg.randn(10, generator=g2)
    assert a.tolist() == b.tolist()
    assert tg.rand(4, generator=g1).tolist() != tg.rand(4, generator=tg.Generator().manual_seed(6)).tolist()


def test_a_generator_does_not_move_the_default_one():
    tg.manual_seed(0)
    want = tg.randn(5).tolist()
    tg.manual_seed(0)
    g = tg.Generator(seed=1)
    tg.randn(50, generator=g)
    tg.randperm(20, generator=g)
    assert tg.randn(5).tolist() == want


def test_state_round_trip_and_initial_seed():
    g = tg.Generator(seed=42)
    assert g.initial_seed() == 42 and "42" in repr(g)
    s = g.get_state()
    assert s.dtype == tg.int64 and s.shape == (4,)
    x = tg.rand(6, generator=g).tolist()
    g.set_state(s)
    assert tg.rand(6, generator=g).tolist() == x
    with pytest.raises(ValueError, match="all-zero state"):
        g.set_state(tg.zeros(4, dtype=tg.int64))
    with pytest.raises(TypeError, match="int64 tensor of 4"):
        g.set_state(tg.zeros(3))


def test_default_generator_is_the_manual_seed_one():
    tg.manual_seed(7)
    assert tg.default_generator.initial_seed() == 7
    a = tg.randn(3).tolist()
    tg.default_generator.manual_seed(7)
    assert tg.randn(3).tolist() == a


def test_randint_range_and_uniformity():
    g = tg.Generator(seed=0)
    r = tg.randint(3, 8, (20000,), generator=g).numpy()
    assert r.dtype == np.int64 and r.min() == 3 and r.max() == 7
    counts = np.bincount(r - 3, minlength=5)
    # 4000 expected per value; 5 sigma of a binomial(20000, 0.2) is ~283
    assert np.all(np.abs(counts - 4000) < 300), counts
    assert tg.randint(10, size=(2, 3), generator=g).shape == (2, 3)
    big = tg.randint(-2 ** 62, 2 ** 62, (1000,), generator=g).numpy()
    assert big.min() < -2 ** 60 and big.max() > 2 ** 60
    with pytest.raises(ValueError, match="high must be greater than low"):
        tg.randint(5, 5, (2,))


def test_randperm_is_a_uniform_permutation():
    g = tg.Generator(seed=3)
    for n in (0, 1, 2, 17):
        p = tg.randperm(n, generator=g).tolist()
        assert sorted(p) == list(range(n))
    firsts = np.array([tg.randperm(4, generator=g).tolist()[0] for _ in range(4000)])
    counts = np.bincount(firsts, minlength=4)
    assert np.all(np.abs(counts - 1000) < 150), counts
    with pytest.raises(ValueError, match="n must be >= 0"):
        tg.randperm(-1)


def test_multinomial_with_replacement_follows_the_weights():
    g = tg.Generator(seed=11)
    w = tg.tensor([1.0, 0.0, 3.0, 6.0])
    s = tg.multinomial(w, 20000, replacement=True, generator=g).numpy()
    freq = np.bincount(s, minlength=4) / 20000
    assert freq[1] == 0
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.3, 0.6], atol=0.02)


def test_multinomial_without_replacement_and_rows():
    g = tg.Generator(seed=12)
    probs = tg.tensor([[0.2, 0.0, 0.5, 0.3], [1.0, 1.0, 1.0, 1.0]])
    out = tg.multinomial(probs, 3, generator=g).numpy()
    assert out.shape == (2, 3)
    assert sorted(out[0].tolist()) == [0, 2, 3]  # every positive category once
    assert len(set(out[1].tolist())) == 3
    # the first draw without replacement follows the weights too
    firsts = np.array([tg.multinomial(tg.tensor([1.0, 3.0]), 1, generator=g).item() for _ in range(4000)])
    assert abs(firsts.mean() - 0.75) < 0.03


def test_multinomial_errors():
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement"):
        tg.multinomial(tg.tensor([1.0, 1.0, 0.0]), 3)
    with pytest.raises(ValueError, match="finite and non-negative; row 0 has -1"):
        tg.multinomial(tg.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="sums to 0"):
        tg.multinomial(tg.tensor([0.0, 0.0]), 1, replacement=True)
    with pytest.raises(TypeError, match="probs must be float32 or float64"):
        tg.multinomial(tg.tensor([1, 2]), 1)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        tg.multinomial(tg.ones(2, 2, 2), 1)
    with pytest.raises(TypeError, match="generator must be a tg.Generator or None, got int"):
        tg.randn(2, generator=0)


def test_samplers_and_loaders_take_a_generator():
    ds = tg.data.TensorDataset(np.arange(20.0)[:, None], np.arange(20))
    order = lambda g: [int(y) for _, yb in tg.data.DataLoader(ds, batch_size=5, shuffle=True,  # noqa: E731
                                                               generator=g) for y in yb.tolist()]
    a = order(tg.Generator(seed=4))
    assert sorted(a) == list(range(20))
    assert order(tg.Generator(seed=4)) == a
    s = tg.data.RandomSampler(range(10), generator=tg.Generator(seed=1))
    first, second = list(s), list(s)
    assert sorted(first) == list(range(10)) and first != second  # each pass draws anew
