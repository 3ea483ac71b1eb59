"""Category / vector datasets: the synthetic generators (planted, learnable, not trivial) and the
two derived from the real Geolife staypoints (the published samples, train-only embeddings)."""

import dataclasses

import numpy as np
import pytest

from data_io import DataError, load_dataset
from data_io.synthetic_vector_seqs import CategorySynthParams, VectorSynthParams, synthetic_category, synthetic_vector
from search.cli import main


# --- numpy references and metrics (the definitions of models.metrics: ties count against) ----

def macro_f1(target: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the classes occurring as a target or a prediction."""
    k = int(max(target.max(), pred.max())) + 1
    tp = np.bincount(target[pred == target], minlength=k)
    n = np.bincount(pred, minlength=k) + np.bincount(target, minlength=k)
    return float((2 * tp[n > 0] / n[n > 0]).mean())


def hit5(scores: np.ndarray, target: np.ndarray) -> float:
    """Hit@5 with the target's rank = the candidates scoring at least as high (itself included)."""
    true = scores[np.arange(len(target)), target]
    return float(((scores >= true[:, None]).sum(1) <= 5).mean())


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def last_steps(split, n: int = 1) -> np.ndarray:
    """The last n input vectors of each sample, concatenated (zeros before the first step)."""
    x, lengths, rows = split.seq["vec"], split.lengths, np.arange(len(split))
    return np.hstack([x[rows, np.maximum(lengths - 1 - j, 0)] * (lengths - 1 - j >= 0)[:, None] for j in range(n)])


def ridge_classifier(train, val, n_steps: int = 2) -> np.ndarray:
    """Least-squares one-vs-all on the last steps' vectors (closed form): val predictions."""
    feats = lambda s: np.c_[last_steps(s, n_steps), np.ones(len(s))]
    x, y = feats(train), np.eye(int(train.target.max()) + 1)[train.target]
    w = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ y)
    return (feats(val) @ w).argmax(1)


def successor_scores(train, val, bank: np.ndarray) -> np.ndarray:
    """Scores over the bank: how often each candidate followed the last input's item in train
    (the last input's item = its nearest bank row), train popularity breaking ties."""
    item = lambda s: (unit(last_steps(s)) @ unit(bank).T).argmax(1)
    counts = np.zeros((len(bank), len(bank)))
    np.add.at(counts, (item(train), train.target_id), 1)
    popularity = np.bincount(train.target_id, minlength=len(bank))
    return counts[item(val)] + 1e-3 * popularity / popularity.max()


def persistence(split, bank: np.ndarray) -> float:
    """Hit@5 of retrieving by the last input vector itself."""
    return hit5(unit(last_steps(split)) @ unit(bank).T, split.target_id)


# --- synthetic ---------------------------------------------------------------------------------

def test_synthetic_category_learnable_not_trivial():
    ds = synthetic_category()
    train, val = ds["train"], ds["val"]
    shares = np.bincount(np.r_[train.target, val.target]) / (len(train) + len(val))
    assert shares.max() > 5 * shares.min(), shares  # strongly imbalanced (planted 45/25/15/10/5%)
    assert 3000 < sum(ds.info.split_sizes.values()) < 10000
    baseline = macro_f1(val.target, np.full(len(val), np.bincount(train.target).argmax()))
    reference = macro_f1(val.target, ridge_classifier(train, val))
    print(f"synthetic category: shares {np.round(shares, 3)}, val macro-F1 majority {baseline:.3f}, "
          f"ridge on the last two steps {reference:.3f}")
    assert reference > baseline + 0.3 and reference < 0.9


def test_synthetic_vector_learnable_not_trivial():
    ds = synthetic_vector()
    train, val, bank = ds["train"], ds["val"], ds.banks["val"]
    assert bank.shape == (300, 64) and all(np.array_equal(ds.banks[s], bank) for s in ("train", "test"))
    np.testing.assert_array_equal(bank[val.target_id], val.target)
    baseline = persistence(val, bank)
    reference = hit5(successor_scores(train, val, bank), val.target_id)
    print(f"synthetic vector: val Hit@5 persistence {baseline:.3f}, most frequent successors {reference:.3f}")
    assert reference > baseline + 0.4 and reference < 0.95


@pytest.mark.parametrize("make, params", [(synthetic_category, CategorySynthParams),
                                          (synthetic_vector, VectorSynthParams)])
def test_synthetic_deterministic_grouped_folds(make, params):
    a, b = make(params(seed=3)), make(params(seed=3))
    assert a.info.fingerprint == b.info.fingerprint
    assert make(params(seed=4)).info.fingerprint != a.info.fingerprint
    group = np.r_[a["train"].user, a["val"].user]
    fold = np.r_[a["train"].fold, a["val"].fold]
    assert a.info.n_folds == 5 and set(fold) == set(range(5))
    assert all(len(set(fold[group == g])) == 1 for g in np.unique(group))  # a group sits in one fold
    assert a["test"].fold is None
    assert make(params(n_folds=0))["train"].fold is None


def test_synthetic_bad_settings():
    with pytest.raises(DataError, match="steps=10"):
        synthetic_category(CategorySynthParams(steps=10))
    with pytest.raises(DataError, match="successors"):
        synthetic_vector(VectorSynthParams(successors=0))


@pytest.mark.parametrize("task", ["category", "vector"])
def test_cli_synth_task(tmp_path, capsys, task):
    out = tmp_path / task
    assert main(["data", "synth", "--task", task, "--out", str(out), "--users", "20", "--days", "60"]) == 0
    ds = load_dataset(out)
    assert ds.info.task == task and ds.info.input_dim == 64 and ds.info.n_folds == 5
    assert ds.info.params["groups"] == 20 and ds.info.params["steps"] == 60
    assert main(["data", "synth", "--task", task, "--out", str(out)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


# --- Geolife -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def geolife_paths(geolife_files):
    return {"staypoints": geolife_files[0], "valid_ids": geolife_files[1],
            "locations": geolife_files[0].parent / "locations_geolife.csv"}


@pytest.fixture(scope="module")
def geo_category(geolife_paths):
    from data_io.geolife_derived import geolife_category
    return geolife_category(**geolife_paths)


@pytest.fixture(scope="module")
def geo_vector(geolife_paths):
    from data_io.geolife_derived import geolife_vector
    return geolife_vector(geolife_paths["staypoints"], geolife_paths["valid_ids"])


@pytest.fixture(scope="module")
def next_location(geolife_paths):
    """The published next-location samples, in memory."""
    from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
    from data_io.prepare import build_samples
    from data_io.tables import read_id_list, read_staypoints
    sp = read_staypoints(geolife_paths["staypoints"], GEOLIFE_COLUMNS)
    return build_samples(sp, GEOLIFE_PARAMS, read_id_list(geolife_paths["valid_ids"]))[0]


@pytest.mark.geolife
def test_geolife_vector_is_the_published_split(geo_vector, next_location):
    ds = geo_vector
    assert ds.info.split_sizes == {"train": 7424, "val": 3334, "test": 3502}
    assert ds.info.input_dim == ds.info.target_dim == 64 and ds.info.n_folds == 5
    bank = ds.banks["val"]
    assert bank.shape == (1186, 64)  # unseen (zero) + the 1,185 train locations
    assert len(np.unique(bank, axis=0)) == len(bank)  # every location distinguishable
    for split in ("train", "val", "test"):
        s, ref = ds[split], next_location[split]
        np.testing.assert_array_equal(s.sample_id, ref.sample_id)  # the same samples, same order
        np.testing.assert_array_equal(s.target_id, ref.target - 1)  # bank row = location code - 1
        np.testing.assert_array_equal(bank[s.target_id], s.target)
        # The inputs are the embeddings of the history's locations (code 1 = unseen = zero).
        codes = ref.seq["loc"][ref.offsets[1:] - 1]  # each history's last step
        np.testing.assert_array_equal(last_steps(s), np.r_[np.zeros((1, 64)), bank][codes])
    assert abs((ds["val"].target_id == 0).mean() - 0.177) < 0.001  # unseen in train, as in the protocol
    baseline = persistence(ds["val"], bank)
    successors = hit5(successor_scores(ds["train"], ds["val"], bank), ds["val"].target_id)
    print(f"geolife-vector: val Hit@5 persistence {baseline:.3f}, most frequent successors {successors:.3f}")
    assert 0.2 < baseline < 0.7 and successors > 0.3


@pytest.mark.geolife
def test_geolife_category_regions(geo_category, geo_vector):
    ds = geo_category
    assert ds.info.split_sizes == {"train": 7424, "val": 3334, "test": 3502}
    assert ds.info.classes == [f"region_{i}" for i in range(10)]
    shares = np.bincount(ds["train"].target, minlength=10) / len(ds["train"])
    assert (np.diff(shares) <= 0).all() and shares[0] < 0.5 and shares.max() > 5 * shares.min()
    np.testing.assert_array_equal(ds["val"].seq["vec"], geo_vector["val"].seq["vec"])  # same inputs
    group = np.r_[ds["train"].user, ds["val"].user]
    fold = np.r_[ds["train"].fold, ds["val"].fold]
    assert all(len(set(fold[group == g])) == 1 for g in np.unique(group))  # a user sits in one fold
    val = ds["val"]
    baseline = macro_f1(val.target, np.full(len(val), np.bincount(ds["train"].target).argmax()))
    reference = macro_f1(val.target, ridge_classifier(ds["train"], val, n_steps=1))
    print(f"geolife-category: train shares {np.round(shares, 3)}, val macro-F1 majority {baseline:.3f}, "
          f"ridge on the last step {reference:.3f}")
    assert baseline < 0.1 and reference > baseline


@pytest.mark.geolife
def test_geolife_category_carries_each_history_places_region(geo_category, next_location):
    """Every real history step has its place's region (class + 1), unseen places included, and a
    place has the class it has as a target wherever it occurs in a history."""
    assert geo_category.info.history_classes
    region_of_code = {}
    for split in ("train", "val", "test"):
        ref, s = next_location[split], geo_category[split]
        region_of_code.update(zip(ref.target.tolist(), s.target.tolist()))
    for split in ("train", "val", "test"):
        ref, cls, lengths = next_location[split], geo_category[split].seq["cls"], geo_category[split].lengths
        real = np.arange(cls.shape[1])[None, :] < lengths[:, None]
        assert (cls[real] > 0).all() and (cls[~real] == 0).all()
        whole = np.diff(ref.offsets) == lengths  # histories longer than train's longest are cut: skip them
        steps = cls[real & whole[:, None]] - 1
        codes = ref.seq["loc"][np.repeat(whole, np.diff(ref.offsets))]  # both in sample order, step order
        known = np.array([c in region_of_code and c > 1 for c in codes.tolist()])
        assert known.mean() > 0.5
        np.testing.assert_array_equal(steps[known], [region_of_code[c] for c in codes[known].tolist()])


@pytest.mark.geolife
def test_geolife_embedding_ignores_val_and_test(geolife_paths):
    from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
    from data_io.geolife_derived import _sorted, location_embedding
    from data_io.prepare import split_labels
    from data_io.tables import read_staypoints
    sp = read_staypoints(geolife_paths["staypoints"], GEOLIFE_COLUMNS)
    vocab, emb = location_embedding(sp)
    s = _sorted(sp)
    later = split_labels(s, GEOLIFE_PARAMS) > 0
    rng = np.random.default_rng(0)
    moved = dataclasses.replace(s, location=np.where(later, rng.permutation(s.location), s.location),
                                duration=np.where(later, 1.0, s.duration))
    vocab2, emb2 = location_embedding(moved)
    np.testing.assert_array_equal(vocab, vocab2)
    np.testing.assert_array_equal(emb, emb2)
    # Not vacuous: changing one train transition does change it.
    first_train = np.flatnonzero(~later)[1]
    train_moved = dataclasses.replace(s, location=np.where(np.arange(len(s)) == first_train, vocab[-1], s.location))
    assert not np.array_equal(location_embedding(train_moved)[1], emb)


@pytest.mark.geolife
def test_cli_geolife_category(tmp_path, geolife_paths, geo_category, capsys):
    out = tmp_path / "cat"
    assert main(["data", "prepare", "geolife-category", "--geolife", str(geolife_paths["staypoints"].parent),
                 "--out", str(out)]) == 0
    assert "region_9" in capsys.readouterr().out
    ds = load_dataset(out)
    assert ds.info.task == "category" and ds.info.split_sizes == geo_category.info.split_sizes
    np.testing.assert_array_equal(ds["test"].target, geo_category["test"].target)


@pytest.mark.geolife
def test_geolife_events_then_prepare_events_carries_each_places_region(tmp_path, geolife_paths, capsys):
    """`data geolife-events` writes the check-in form; `data prepare events` on it gives samples
    whose history steps carry their place's region, as the events table says."""
    import pandas as pd
    raw, ds_dir = tmp_path / "raw", tmp_path / "cat"
    geolife = str(geolife_paths["staypoints"].parent)
    assert main(["data", "geolife-events", "--geolife", geolife, "--out", str(raw)]) == 0
    assert "data prepare events" in capsys.readouterr().out
    events = pd.read_csv(raw / "events.csv")
    assert list(events.columns) == ["user", "time", "place", "region"] and len(events) == 16600
    assert events.groupby("place")["region"].nunique().max() == 1  # a place sits in one region
    assert main(["data", "prepare", "events", str(raw / "events.csv"), "--items", str(raw / "items.parquet"),
                 "--task", "category", "--group-col", "user", "--time-col", "time", "--item-col", "place",
                 "--category-col", "region", "--window", "9", "--out", str(ds_dir)]) == 0
    assert "each step's class known" in capsys.readouterr().out
    ds = load_dataset(ds_dir)
    region_of = dict(zip(events["place"], events["region"]))
    order = events.sort_values(["user", "time"], kind="stable").index.to_numpy()
    test = ds["test"]
    for k in range(0, len(test), 97):  # the events before each target, in time order
        row = int(np.flatnonzero(order == test.sample_id[k])[0])
        places = events["place"].to_numpy()[order[row - test.lengths[k]:row]]
        want = [ds.info.classes.index(region_of[p]) + 1 if region_of[p] in ds.info.classes else 0 for p in places]
        assert list(test.seq["cls"][k, :test.lengths[k]]) == want
    assert main(["data", "geolife-events", "--geolife", str(tmp_path), "--out", str(tmp_path / "none")]) == 2
    assert "file not found" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_missing_files_name_the_file_and_fix(tmp_path, capsys):
    from data_io.geolife_derived import geolife_vector
    with pytest.raises(DataError, match=r"dataSet_geolife.csv: file not found; give --staypoints"):
        geolife_vector(tmp_path / "dataSet_geolife.csv", tmp_path / "valid_ids_geolife.csv")
    for argv in (["geolife-vector", "--geolife", str(tmp_path)], ["geolife-category"]):
        assert main(["data", "prepare", *argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "dataSet_geolife.csv" in err and "--staypoints" in err
    (tmp_path / "sp.csv").write_text("id\n"), (tmp_path / "ids.csv").write_text("id\n")
    assert main(["data", "prepare", "geolife-category", "--staypoints", str(tmp_path / "sp.csv"),
                 "--valid-ids", str(tmp_path / "ids.csv"), "--out", str(tmp_path / "out")]) == 2
    assert "no locations_geolife.csv: give --locations FILE or --geolife DIR" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
