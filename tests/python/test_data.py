"""TensorDataset and DataLoader: batching, seeded shuffling, drop_last."""
import numpy as np
import pytest

import tapegrad as tg


def test_batches_cover_every_sample_once_and_shuffle_is_seeded():
    x = np.arange(103, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = np.arange(103)
    ds = tg.data.TensorDataset(x, y)
    loader = tg.data.DataLoader(ds, batch_size=10, shuffle=True, seed=5)
    assert len(loader) == 11
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))
    again = np.concatenate([yb.numpy() for _, yb in tg.data.DataLoader(ds, 10, True, seed=5)])
    np.testing.assert_array_equal(seen, again)
    epoch2 = np.concatenate([yb.numpy() for _, yb in loader])
    assert epoch2.tolist() != seen.tolist()  # a new permutation each epoch
    for xb, yb in tg.data.DataLoader(ds, 10, True, seed=1):
        np.testing.assert_array_equal(xb.numpy()[:, 0], yb.numpy())  # rows stay paired
        assert xb.dtype == tg.float32 and yb.dtype == tg.int64


def test_drop_last_and_errors():
    ds = tg.data.TensorDataset(np.zeros((10, 3)), np.zeros(10, np.int64))
    loader = tg.data.DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2 and [b[0].shape for b in loader] == [(4, 3), (4, 3)]
    with pytest.raises(ValueError, match="batch_size"):
        tg.data.DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="same first dimension"):
        tg.data.TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_generic_dataset_is_collated():
    class Squares(tg.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.float32(i), np.int64(i * i)

    xs, ys = zip(*[(x.numpy().tolist(), y.numpy().tolist()) for x, y in tg.data.DataLoader(Squares(), 2)])
    assert xs == ([0.0, 1.0], [2.0, 3.0], [4.0]) and ys == ([0, 1], [4, 9], [16])
