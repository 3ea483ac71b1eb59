"""Bucketed batches: every sample once per epoch, little padding, deterministic, zero-copy tensors."""

import numpy as np
import torch

from data_io import load_dataset
from data_io.batches import batch_order, iter_batches, padding_fraction


def test_epoch_covers_every_sample_once(synth_dir):
    split = load_dataset(synth_dir)["train"]
    seen = np.concatenate([b.index.numpy() for b in iter_batches(split, 64, seed=0)])
    assert np.array_equal(np.sort(seen), np.arange(len(split)))


def test_batches_are_trimmed_and_consistent(synth_dir):
    split = load_dataset(synth_dir)["train"]
    for b in iter_batches(split, 64, seed=1):
        rows = b.index.numpy()
        assert b.seq["loc"].shape == (len(rows), int(split.lengths[rows].max()))
        assert b.seq["loc"].dtype == torch.int64
        assert torch.equal(b.target, torch.from_numpy(split.target[rows]))
        assert (b.seq["loc"][torch.arange(len(rows)), b.lengths - 1] > 0).all()


def test_same_seed_same_order_other_seed_differs(synth_dir):
    lengths = load_dataset(synth_dir)["train"].lengths
    a = batch_order(lengths, 32, np.random.default_rng(3))
    b = batch_order(lengths, 32, np.random.default_rng(3))
    c = batch_order(lengths, 32, np.random.default_rng(4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bucketing_cuts_padding(synth_dir):
    lengths = load_dataset(synth_dir)["train"].lengths
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(lengths))
    plain = [perm[i:i + 64] for i in range(0, len(perm), 64)]
    bucketed = batch_order(lengths, 64, np.random.default_rng(0))
    assert padding_fraction(lengths, bucketed) < 0.5 * padding_fraction(lengths, plain)


def test_arrays_are_plain_numpy(synth_dir):
    split = load_dataset(synth_dir)["val"]
    for arr in [split.user, split.target, split.lengths, *split.seq.values()]:
        assert type(arr) is np.ndarray and arr.dtype == np.int64
