"""The synthetic generator: deterministic per seed, learnable, not trivial."""

from collections import Counter, defaultdict

import numpy as np

from data_io import load_dataset, read_info
from data_io.synthetic import SynthParams, synthesize


def test_same_seed_same_data_other_seed_differs(tmp_path):
    p = SynthParams(users=10, days=40, locations=80, seed=5)
    a = synthesize(p, tmp_path / "a")
    b = synthesize(p, tmp_path / "b")
    c = synthesize(SynthParams(users=10, days=40, locations=80, seed=6), tmp_path / "c")
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_learnable_but_not_trivial(synth_dir):
    ds = load_dataset(synth_dir)
    train, val = ds["train"], ds["val"]
    last = lambda s: s.seq["loc"][np.arange(len(s)), s.lengths - 1]
    most_frequent = np.bincount(train.target).argmax()
    baseline = (val.target == most_frequent).mean()
    # A tiny first-order model (user, last place) -> most common next place.
    table = defaultdict(Counter)
    for key, y in zip(zip(train.user, last(train)), train.target):
        table[key][y] += 1
    pred = [table[k].most_common(1)[0][0] if k in table else most_frequent for k in zip(val.user, last(val))]
    markov = (np.array(pred) == val.target).mean()
    assert markov > baseline + 0.2, (markov, baseline)
    assert markov < 0.8, markov  # not trivial


def test_shape_of_the_data(synth_dir):
    info = read_info(synth_dir)
    assert info.source["synthetic"]["users"] == 20
    assert min(info.split_sizes.values()) > 100
    ds = load_dataset(synth_dir)
    weekday = ds["train"].seq["weekday"][ds["train"].seq["loc"] > 0]
    assert set(np.unique(weekday)) == set(range(7))
