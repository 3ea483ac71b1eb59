"""Vector datasets (category / vector tasks): the on-disk format, `data prepare vectors` and
`data prepare events`, grouped splits and folds, and one clear line for each kind of bad input."""

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_io import (DataError, Events, VectorParams, VectorSamples, events_dataset, fold_view, grouped_folds,
                     grouped_split, load_dataset, read_info, vector_dataset, write_vector_dataset)
from models.tasks import get_task
from search.cli import main

D = 4


def _samples(rng, n, groups, task, labels=("a", "b", "c")):
    lengths = rng.integers(1, 7, n)
    x = rng.normal(size=(n, 6, D)).astype(np.float32) * (np.arange(6)[None, :, None] < lengths[:, None, None])
    group = rng.choice(groups, n)
    target = rng.integers(0, len(labels), n) if task == "category" else rng.normal(size=(n, 3)).astype(np.float32)
    return VectorSamples(x, lengths, group, target)


def _dataset(task, folds=0, seed=0, shared_bank=False):
    rng = np.random.default_rng(seed)
    splits = {"train": _samples(rng, 80, np.arange(1, 13), task), "val": _samples(rng, 30, np.arange(13, 17), task),
              "test": _samples(rng, 30, np.arange(17, 21), task)}
    if folds:
        fold = grouped_folds(np.r_[splits["train"].group, splits["val"].group], folds, seed)
        splits["train"].fold, splits["val"].fold = fold[:80], fold[80:]
    banks = None
    if shared_bank and task == "vector":
        bank = np.concatenate([np.unique(s.target, axis=0) for s in splits.values()])
        banks = {s: bank for s in splits}
    return vector_dataset("t", task, splits, classes=["a", "b", "c"] if task == "category" else None,
                          banks=banks, n_folds=folds, params={"seed": seed})


def _same_arrays(a, b):
    for split in ("train", "val", "test"):
        x, y = a[split], b[split]
        for name in ("sample_id", "user", "target", "lengths", "target_id", "fold"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                assert u.dtype == v.dtype and np.array_equal(u, v), (split, name)
        assert x.seq.keys() == y.seq.keys() and "vec" in x.seq
        assert x.seq["vec"].dtype == np.float32
        assert all(x.seq[k].dtype == y.seq[k].dtype and np.array_equal(x.seq[k], y.seq[k]) for k in x.seq)
    assert a.banks.keys() == b.banks.keys()
    for split in a.banks:
        assert np.array_equal(a.banks[split], b.banks[split])


# --- the on-disk format ---------------------------------------------------------------------------

@pytest.mark.parametrize("task,folds", [("category", 4), ("vector", 3), ("vector", 0)])
def test_write_then_load_gives_the_same_dataset(tmp_path, task, folds):
    ds = _dataset(task, folds)
    info = write_vector_dataset(tmp_path / "ds", ds)
    back = load_dataset(tmp_path / "ds")
    assert info == ds.info and back.info == ds.info and read_info(tmp_path / "ds") == ds.info
    assert back.info.fingerprint == ds.info.fingerprint
    _same_arrays(ds, back)
    names = {p.name for p in (tmp_path / "ds").iterdir()}
    banks = {f"bank_{s}.npy" for s in ("train", "val", "test")} if task == "vector" else set()
    assert names == {"dataset.json", "train.npz", "val.npz", "test.npz"} | banks
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp dir left


def test_fingerprint_covers_folds_and_class_names():
    base = _dataset("category", 4).info.fingerprint
    assert _dataset("category", 4).info.fingerprint == base
    assert _dataset("category", 0).info.fingerprint != base
    assert _dataset("category", 4, seed=1).info.fingerprint != base


def test_overwrite_replaces_a_vector_dataset_but_no_foreign_folder(tmp_path):
    write_vector_dataset(tmp_path / "ds", _dataset("vector", 3))
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        write_vector_dataset(tmp_path / "ds", _dataset("category", 4))
    write_vector_dataset(tmp_path / "ds", _dataset("category", 4), overwrite=True)
    assert load_dataset(tmp_path / "ds").info.task == "category"
    (tmp_path / "ds" / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not a nextsweep dataset"):
        write_vector_dataset(tmp_path / "ds", _dataset("vector"), overwrite=True)
    assert (tmp_path / "ds" / "notes.txt").read_text() == "keep"


def test_a_pickled_split_file_is_never_loaded(tmp_path):
    write_vector_dataset(tmp_path / "ds", _dataset("category"))
    arrays = dict(np.load(tmp_path / "ds" / "val.npz"))
    np.savez(tmp_path / "ds" / "val.npz", **arrays | {"target": np.array([object()] * 3, dtype=object)})
    with pytest.raises(DataError, match="never unpickles"):
        load_dataset(tmp_path / "ds")


# --- grouped splits and folds ------------------------------------------------------------------------

def test_grouped_folds_keep_groups_whole_and_balance_samples():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 30, 40))
    fold = grouped_folds(groups, 5, seed=3)
    assert set(fold) == set(range(5))
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= np.bincount(groups).max()
    assert np.array_equal(fold, grouped_folds(groups, 5, seed=3))
    with pytest.raises(DataError, match="--folds 41 needs at least 41 groups.*40"):
        grouped_folds(groups, 41, 0)


def test_grouped_split_puts_each_group_in_one_split():
    groups = np.repeat(np.arange(30), 10)
    label = grouped_split(groups, 0.2, 0.2, seed=1)
    assert set(label) == {0, 1, 2}
    for g in range(30):
        assert len(set(label[groups == g])) == 1
    assert 0.1 < (label == 2).mean() < 0.3
    three = grouped_split(np.array([1, 1, 2, 2, 2, 3]), 0.2, 0.2, seed=0)  # few groups: still one per split
    assert sorted(set(three)) == [0, 1, 2]
    with pytest.raises(DataError, match="2 groups cannot fill train, val and test"):
        grouped_split(np.array([1, 1, 2, 2]), 0.2, 0.2, seed=0)


@pytest.mark.parametrize("task,shared", [("category", False), ("vector", False), ("vector", True)])
def test_fold_views_are_leakage_free_and_validate_each_sample_once(task, shared):
    ds = _dataset(task, folds=4, shared_bank=shared)
    pool = len(ds["train"]) + len(ds["val"])
    seen = []
    for f in range(4):
        view = fold_view(ds, f)
        tr, va = view["train"], view["val"]
        assert not set(tr.user) & set(va.user)
        assert len(tr) + len(va) == pool and set(va.fold) == {f} and f not in set(tr.fold)
        assert view["test"] is ds["test"] and view.info.split_sizes == {"train": len(tr), "val": len(va), "test": 30}
        assert view.info.max_history == ds.info.max_history
        for part in (tr, va):
            assert part.seq["vec"].shape[1] == part.lengths.max()
            if task == "vector":
                assert np.array_equal(view.banks["val"][part.target_id], part.target)
                assert np.array_equal(view.banks["train"], view.banks["val"])
        seen.append(va)
    # Each pooled sample is validated in exactly one fold (ids + history + target identify it).
    rows = lambda a: {(int(i), a.seq["vec"][k, :a.lengths[k]].tobytes(), np.asarray(a.target[k]).tobytes())
                      for k, i in enumerate(a.sample_id)}
    validated = [r for va in seen for r in rows(va)]
    assert len(validated) == len(set(validated)) == pool
    assert set(validated) == rows(ds["train"]) | rows(ds["val"])
    if shared:
        assert view.banks["val"] is ds.banks["val"]  # one bank for all splits stays as it is
    with pytest.raises(DataError, match="fold 4 does not exist"):
        fold_view(ds, 4)
    with pytest.raises(DataError, match="--folds K"):
        fold_view(_dataset(task), 0)


# --- events: windows per group ------------------------------------------------------------------------

def _events(rng, n_groups=12, per=25, n_items=30):
    n = n_groups * per
    group = np.repeat(np.arange(1, n_groups + 1), per)
    time = rng.permutation(n).astype(np.float64)  # not in file order
    item = rng.integers(0, n_items, n)
    label = item % 3
    return Events(group, time, item, label), rng.normal(size=(n_items, D)).astype(np.float32)


def _reference(ev, items, p, task):
    """Windows built the slow way: per group, per split run, per target."""
    out = {}
    for g in np.unique(ev.group):
        rows = np.flatnonzero(ev.group == g)
        rows = rows[np.argsort(ev.time[rows], kind="stable")]
        share = np.arange(len(rows)) / len(rows)
        split = np.where(share < 1 - p.val_frac - p.test_frac, 0, np.where(share < 1 - p.test_frac, 1, 2))
        for s in range(3):
            run = rows[split == s]
            for pos in range(p.min_history, len(run), p.stride):
                hist = run[max(0, pos - p.window):pos]
                out[int(run[pos])] = (s, items[ev.item[hist]], ev.label[run[pos]] if task == "category"
                                      else items[ev.item[run[pos]]], hist)
    return out


@pytest.mark.parametrize("task", ["category", "vector"])
def test_event_windows_match_a_slow_reference(task):
    rng = np.random.default_rng(1)
    ev, items = _events(rng)
    p = VectorParams(window=5, stride=2, min_history=2, split_by="time", folds=3)
    ds = events_dataset("ev", task, ev, items, p, classes=["x", "y", "z"])
    want = _reference(ev, items, p, task)
    got = 0
    for i, split in enumerate(("train", "val", "test")):
        a = ds[split]
        for k, sid in enumerate(a.sample_id):
            s, hist, target, events = want[int(sid)]
            assert s == i
            assert np.array_equal(a.seq["vec"][k, :a.lengths[k]], hist)
            # each step's class + 1 (category), or its item's bank row + 1 (the bank is every item)
            steps = ev.label[events] + 1 if task == "category" else ev.item[events] + 1
            key = "cls" if task == "category" else "row"
            assert np.array_equal(a.seq[key][k, :a.lengths[k]], steps) and not a.seq[key][k, a.lengths[k]:].any()
            assert not a.seq["vec"][k, a.lengths[k]:].any()
            assert np.array_equal(a.target[k], target)
            assert a.user[k] == ev.group[sid]
        got += len(a)
    assert got == len(want)
    if task == "vector":  # the bank is every item vector, so target_id is the target's item row
        for split in ("train", "val", "test"):
            assert ds.banks[split] is items or np.array_equal(ds.banks[split], items)
            assert np.array_equal(ds.banks[split][ds[split].target_id], ds[split].target)
    else:
        assert ds.info.classes == ["x", "y", "z"]
    for f in range(3):  # time split: the same groups in train and val, but folds keep them whole
        view = fold_view(ds, f)
        assert not set(view["train"].user) & set(view["val"].user)


def _rows_point_at_their_vectors(ds, every: bool) -> None:
    """seq "row" (bank row + 1, 0 = none) names each history step's own vector in its split's
    bank; with `every`, each real non-zero step has one (the bank holds every item)."""
    for split, a in ds.splits.items():
        real = (np.arange(a.seq["vec"].shape[1])[None, :] < a.lengths[:, None]) & a.seq["vec"].any(-1)
        row = a.seq["row"]
        assert (row[~real] == 0).all() and (not every or (row[real] > 0).all())
        assert np.array_equal(ds.banks[split][row[row > 0] - 1], a.seq["vec"][row > 0])


@pytest.mark.parametrize("shared", [True, False])
def test_history_rows_survive_fold_views_and_a_reload(tmp_path, shared):
    ev, items = _events(np.random.default_rng(4))
    items[3] = 0  # an unknown place: a zero vector is never pointed at
    ds = events_dataset("ev", "vector", ev, items, VectorParams(window=5, min_history=2, split_by="time", folds=3))
    if not shared:  # banks of each split's distinct targets: train and val differ, fold views unite them
        ds = vector_dataset("ev", "vector", {s: VectorSamples(a.seq["vec"], a.lengths, a.user, a.target, a.fold)
                                             for s, a in ds.splits.items()}, n_folds=3)
        assert not np.array_equal(ds.banks["train"], ds.banks["val"])
    _rows_point_at_their_vectors(ds, every=shared)
    for f in range(3):
        _rows_point_at_their_vectors(fold_view(ds, f), every=False)
    write_vector_dataset(tmp_path / "ds", ds)
    back = load_dataset(tmp_path / "ds")
    assert all(np.array_equal(back[s].seq["row"], ds[s].seq["row"]) for s in ds.splits)


def test_a_format_1_dataset_still_loads(tmp_path):
    """Written before history classes and bank rows were stored: it loads, the vector task's rows
    are matched at load, and a category set has no history classes."""
    import json
    for task in ("category", "vector"):
        ds = events_dataset("ev", task, *_events(np.random.default_rng(5)), VectorParams(window=4), classes=["x", "y", "z"])
        out = tmp_path / task
        write_vector_dataset(out, ds)
        for split in ("train", "val", "test"):
            with np.load(out / f"{split}.npz") as z:
                old = {k: z[k] for k in z.files if k not in ("x_class", "x_row")}
            np.savez(out / f"{split}.npz", **old)
        info = json.loads((out / "dataset.json").read_text())
        info["format_version"] = 1
        info.pop("history_classes")
        (out / "dataset.json").write_text(json.dumps(info))
        back = load_dataset(out)
        assert back.info.format_version == 1 and not back.info.history_classes
        if task == "vector":
            assert all(np.array_equal(back[s].seq["row"], ds[s].seq["row"]) for s in ds.splits)
        else:
            assert "cls" not in back["val"].seq and get_task("category").reference_scores(back).keys() == {
                "most_frequent", "logreg"}


def test_events_split_by_group_keeps_each_group_in_one_split():
    ev, items = _events(np.random.default_rng(2), n_groups=20)
    ds = events_dataset("ev", "category", ev, items, VectorParams(window=4, split_by="group"), classes=["x", "y", "z"])
    users = [set(ds[s].user) for s in ("train", "val", "test")]
    assert not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])


def test_event_classes_are_the_target_classes_only():
    ev, items = _events(np.random.default_rng(3))
    ev.label[:] = np.where(ev.label == 2, 1, ev.label)  # class "z" never occurs
    ds = events_dataset("ev", "category", ev, items, VectorParams(window=4), classes=["x", "y", "z"])
    assert ds.info.classes == ["x", "y"]


# --- the CLI: data prepare vectors / events, data info ----------------------------------------------

def _seq_table(rng, n=120, groups=15, label=None, dims=None, vector_target=False):
    lengths = rng.integers(1, 8, n)
    dims = dims or [D] * n
    seqs = [rng.normal(size=(l, d)).astype(np.float32).tolist() for l, d in zip(lengths, dims)]
    label = label if label is not None else rng.choice(["walk", "bus", "car"], n, p=[0.6, 0.3, 0.1])
    target = rng.normal(size=(n, 3)).astype(np.float32).tolist() if vector_target else label
    return {"x": seqs, "group": [f"u{g}" for g in rng.integers(0, groups, n)], "target": target}


def _write(path, columns):
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good inputs of every kind."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    cat = _write(d / "cat.parquet", _seq_table(rng))
    vec = _write(d / "vec.parquet", _seq_table(rng, vector_target=True))
    n_items, n_groups, per = 40, 12, 30
    item_vecs = rng.normal(size=(n_items, D)).astype(np.float32)
    place = rng.integers(0, n_items, n_groups * per)
    events = pd.DataFrame({"user": np.repeat([f"u{g}" for g in range(n_groups)], per),
                           "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, len(place)), "min"),
                           "place": place + 100, "cat": np.array(["home", "work", "shop"])[place % 3]})
    events.to_csv(d / "events.csv", index=False)
    _write(d / "items.parquet", {"id": np.arange(n_items) + 100, "vector": item_vecs.tolist()})
    np.savez(d / "items.npz", ids=np.arange(n_items) + 100, vectors=item_vecs)
    np.save(d / "items.npy", item_vecs)
    np.save(d / "ids.npy", np.arange(n_items) + 100)
    return {"dir": d, "cat": cat, "vec": vec, "events": d / "events.csv", "item_vecs": item_vecs}


def _prepare(kind, src, out, *extra):
    return main(["data", "prepare", kind, str(src), "--out", str(out), *extra])


EVENT_COLS = ["--group-col", "user", "--time-col", "t", "--item-col", "place", "--category-col", "cat"]


def test_prepare_vectors_parquet_category(tmp_path, files, capsys):
    assert _prepare("vectors", files["cat"], tmp_path / "ds", "--task", "category", "--folds", "5") == 0
    ds = load_dataset(tmp_path / "ds")
    assert ds.info.task == "category" and ds.info.classes == ["bus", "car", "walk"]
    assert ds.info.n_folds == 5 and ds.info.input_dim == D
    assert sum(ds.info.split_sizes.values()) == 120
    users = [set(ds[s].user) for s in ("train", "val", "test")]
    assert not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])
    assert set(np.r_[ds["train"].fold, ds["val"].fold]) == set(range(5)) and ds["test"].fold is None
    # The sequences are the file's, right-padded.
    table = pq.read_table(files["cat"]).to_pydict()
    for k in range(3):
        sid = int(ds["train"].sample_id[k])
        assert np.allclose(ds["train"].seq["vec"][k, :ds["train"].lengths[k]], table["x"][sid])
    out = capsys.readouterr().out
    assert "task         category" in out and "walk" in out and "5 grouped folds" in out
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    info_out = capsys.readouterr().out
    train, val, test = (ds[s].target for s in ("train", "val", "test"))
    bus = f"{(train == 0).sum():,} / {(val == 0).sum():,} / {(test == 0).sum():,}"
    assert "bus" in info_out and bus in info_out and "groups       15" in info_out


def test_prepare_vectors_step_classes_parquet_and_npz_agree(tmp_path, files, capsys):
    """--step-class-col: each step's label as class + 1 in the targets' classes; a label no target
    has ("boat") is unknown (0); --max-history cuts the labels as it cuts the steps."""
    table = pq.read_table(files["cat"]).to_pydict()
    rng = np.random.default_rng(7)
    steps = [list(rng.choice(["walk", "bus", "car", "boat"], len(x))) for x in table["x"]]
    _write(tmp_path / "steps.parquet", table | {"steps": steps})
    n, lengths = len(steps), np.array([len(x) for x in table["x"]])
    x = np.zeros((n, lengths.max(), D), dtype=np.float32)
    labels = np.full((n, lengths.max()), "", dtype=object)
    for i, (seq, st) in enumerate(zip(table["x"], steps)):
        x[i, :len(seq)], labels[i, :len(st)] = seq, st
    np.savez(tmp_path / "steps.npz", x=x, lengths=lengths, group=np.array(table["group"]),
             target=np.array(table["target"]), steps=labels.astype(str))
    got = []
    for src in ("steps.parquet", "steps.npz"):
        out = tmp_path / src.replace(".", "_")
        assert _prepare("vectors", tmp_path / src, out, "--task", "category", "--step-class-col", "steps",
                        "--max-history", "4") == 0
        got.append(load_dataset(out))
    code = {"bus": 1, "car": 2, "walk": 3, "boat": 0}
    for ds in got:
        assert ds.info.history_classes and ds.info.format_version == 2
        a = ds["train"]
        for k in range(len(a)):
            want = [code[v] for v in steps[int(a.sample_id[k])][-4:]]
            assert list(a.seq["cls"][k, :a.lengths[k]]) == want and not a.seq["cls"][k, a.lengths[k]:].any()
    assert all(np.array_equal(got[0][s].seq["cls"], got[1][s].seq["cls"]) for s in ("train", "val", "test"))
    _write(tmp_path / "short.parquet", table | {"steps": [st[:-1] for st in steps]})
    assert _prepare("vectors", tmp_path / "short.parquet", tmp_path / "bad", "--task", "category",
                    "--step-class-col", "steps") == 2
    assert "column 'steps' row 0 has" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_prepare_vectors_formats_agree(tmp_path, files):
    """list<list<float>>, flat list<float> + --dim, and .npz give the same dataset."""
    table = pq.read_table(files["cat"]).to_pydict()
    flat = [sum(seq, []) for seq in table["x"]]
    _write(tmp_path / "flat.parquet", table | {"x": flat})
    n, lengths = len(flat), np.array([len(s) for s in table["x"]])
    x = np.full((n, lengths.max(), D), np.nan, dtype=np.float32)  # NaN padding is fine: it is cut off
    for i, s in enumerate(table["x"]):
        x[i, :len(s)] = s
    np.savez(tmp_path / "s.npz", x=x, lengths=lengths, group=np.array(table["group"]), target=np.array(table["target"]))
    assert _prepare("vectors", files["cat"], tmp_path / "a", "--task", "category") == 0
    assert _prepare("vectors", tmp_path / "flat.parquet", tmp_path / "b", "--task", "category", "--dim", str(D)) == 0
    assert _prepare("vectors", tmp_path / "s.npz", tmp_path / "c", "--task", "category") == 0
    a, b, c = (load_dataset(tmp_path / k) for k in "abc")
    assert a.info.fingerprint == b.info.fingerprint
    _same_arrays(a, b)
    _same_arrays(a, c)


def test_prepare_vectors_split_column_and_split_files(tmp_path, files):
    rng = np.random.default_rng(5)
    cols = _seq_table(rng, n=90, label=np.tile(["a", "b", "c"], 30))
    split = np.repeat(["train", "val", "test"], 30)
    _write(tmp_path / "all.parquet", cols | {"split": split})
    assert _prepare("vectors", tmp_path / "all.parquet", tmp_path / "one", "--task", "category",
                    "--split-col", "split") == 0
    for i, s in enumerate(("train", "val", "test")):
        _write(tmp_path / f"{s}.parquet", {k: v[30 * i:30 * i + 30] for k, v in cols.items()})
    assert _prepare("vectors", tmp_path / "train.parquet", tmp_path / "three", "--task", "category",
                    "--val", str(tmp_path / "val.parquet"), "--test", str(tmp_path / "test.parquet")) == 0
    one, three = load_dataset(tmp_path / "one"), load_dataset(tmp_path / "three")
    assert one.info.split_sizes == three.info.split_sizes == {"train": 30, "val": 30, "test": 30}
    _same_arrays(one, three)


def test_prepare_vectors_vector_task_with_a_bank(tmp_path, files):
    table = pq.read_table(files["vec"]).to_pydict()
    bank = np.r_[np.asarray(table["target"], dtype=np.float32), np.random.default_rng(1).normal(size=(50, 3))]
    np.save(tmp_path / "bank.npy", bank.astype(np.float32))
    assert _prepare("vectors", files["vec"], tmp_path / "ds", "--task", "vector", "--bank",
                    str(tmp_path / "bank.npy"), "--folds", "3") == 0
    ds = load_dataset(tmp_path / "ds")
    assert ds.info.target_dim == 3 and all(len(ds.banks[s]) == 170 for s in ("train", "val", "test"))
    for s in ("train", "val", "test"):
        assert np.array_equal(ds.banks[s][ds[s].target_id], ds[s].target)


@pytest.mark.parametrize("items", ["items.parquet", "items.npz", "items.npy"])
def test_prepare_events_item_tables(tmp_path, files, items):
    extra = ["--item-ids", str(files["dir"] / "ids.npy")] if items.endswith(".npy") else []
    assert _prepare("events", files["events"], tmp_path / "ds", "--items", str(files["dir"] / items), "--task",
                    "vector", "--window", "6", "--split-by", "time", "--folds", "4", *EVENT_COLS, *extra) == 0
    ds = load_dataset(tmp_path / "ds")
    assert ds.info.task == "vector" and ds.info.max_history == 6 and ds.info.n_folds == 4
    for s in ("train", "val", "test"):
        assert np.array_equal(ds.banks[s], files["item_vecs"])  # every item is a candidate
        assert np.array_equal(ds.banks[s][ds[s].target_id], ds[s].target)


def test_prepare_events_category(tmp_path, files, capsys):
    assert _prepare("events", files["events"], tmp_path / "ds", "--items", str(files["dir"] / "items.parquet"),
                    "--task", "category", "--window", "9", "--stride", "2", *EVENT_COLS) == 0
    ds = load_dataset(tmp_path / "ds")
    assert ds.info.classes == ["home", "shop", "work"] and ds.info.input_dim == D
    assert "home" in capsys.readouterr().out


# --- one very long sequence: --max-history keeps the last steps; a cube too big is refused -------

def _one_long_sequence(rng, long=5000):
    """90 short samples split by a column, train row 0 holding `long` steps."""
    cols = _seq_table(rng, n=90, label=np.tile(["a", "b", "c"], 30))
    cols["x"][0] = rng.normal(size=(long, D)).astype(np.float32).tolist()
    return cols | {"split": np.repeat(["train", "val", "test"], 30)}


def test_max_history_keeps_the_last_steps_of_each_sequence(tmp_path):
    cols = _one_long_sequence(np.random.default_rng(4))
    _write(tmp_path / "long.parquet", cols)
    lengths = np.array([len(s) for s in cols["x"]])
    x = np.zeros((len(lengths), lengths.max(), D), dtype=np.float32)
    for i, seq in enumerate(cols["x"]):
        x[i, :len(seq)] = seq
    np.savez(tmp_path / "long.npz", x=x, lengths=lengths, group=np.array(cols["group"]),
             target=np.array(cols["target"]), split=cols["split"])
    split = ["--task", "category", "--split-col", "split", "--max-history", "6"]
    assert _prepare("vectors", tmp_path / "long.parquet", tmp_path / "a", *split) == 0
    assert _prepare("vectors", tmp_path / "long.npz", tmp_path / "b", *split) == 0
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert a.info.max_history == 6 == a["train"].seq["vec"].shape[1] and a.info.cardinalities["position"] == 6
    assert a.info.source["max_history"] == 6
    train = a["train"]
    for k, sid in enumerate(train.sample_id):
        want = np.asarray(cols["x"][sid], dtype=np.float32)[-6:]  # the last steps, the newest history
        assert train.lengths[k] == len(want) and np.array_equal(train.seq["vec"][k, :len(want)], want), sid
        assert not train.seq["vec"][k, len(want):].any()  # padding stays zero
    _same_arrays(a, b)
    assert _prepare("vectors", tmp_path / "long.parquet", tmp_path / "c", "--task", "category", "--split-col",
                    "split") == 0
    assert load_dataset(tmp_path / "c").info.max_history == 5000  # without the cap: the longest sequence


def test_max_history_below_one_is_refused(tmp_path, files, capsys):
    assert _prepare("vectors", files["cat"], tmp_path / "ds", "--task", "category", "--max-history", "0") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-history 0" in err and ">= 1" in err and not (tmp_path / "ds").exists()


def _cap_address_space():
    """Safety net for the code before the check: its 4 TB np.zeros fails fast instead of paging."""
    resource.setrlimit(resource.RLIMIT_AS, (32 << 30, 32 << 30))


def test_a_cube_that_cannot_fit_in_memory_is_one_line_exit_2(tmp_path):
    """1,000,000 samples of one step but one of 1,000,000: 8 MB on disk, a 3.6 TiB padded cube."""
    n = 1_000_000
    lengths = np.ones(n, dtype=np.int32)
    lengths[0] = n
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    flat = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(offsets[-1], dtype=np.float32)))
    src = _write(tmp_path / "huge.parquet", {"x": flat, "group": np.arange(n) % 50, "target": np.arange(n) % 3})
    cmd = [sys.executable, "-m", "search.cli", "data", "prepare", "vectors", str(src), "--out", str(tmp_path / "ds"),
           "--task", "category", "--dim", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=600,
                          preexec_fn=_cap_address_space)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for text in ["huge.parquet", "column 'x'", "1,000,000 x 1,000,000 x 1", "3725.3 GiB", "--max-history"]:
        assert text in done.stderr, (text, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.parquet"]  # no --out, no temp dir


# --- bad input: one line naming file / column / fix, exit 2, nothing written ----------------------

def _bad_inputs(d, files):
    rng = np.random.default_rng(9)
    cases = {}
    good = _seq_table(rng)
    ragged = _seq_table(rng, dims=[D] * 60 + [D + 1] * 60)
    cases["ragged vectors"] = (["vectors", _write(d / "ragged.parquet", ragged), "--task", "category"],
                               ["ragged.parquet", "column 'x'", "mixes vector lengths", "same dimension"])
    np.savez(d / "d4.npz", x=np.ones((6, 3, 4)), group=np.arange(6), target=np.tile([0, 1], 3))
    np.savez(d / "d5.npz", x=np.ones((6, 3, 5)), group=np.arange(6), target=np.tile([0, 1], 3))
    cases["mixed dimensions across files"] = (
        ["vectors", d / "d4.npz", "--val", str(d / "d5.npz"), "--test", str(d / "d4.npz"), "--task", "category"],
        ["d5.npz", "dimension 5", "d4.npz has 4"])
    nan = dict(good, x=[s if i != 7 else [[float("nan")] * D] + s for i, s in enumerate(good["x"])])
    cases["NaN"] = (["vectors", _write(d / "nan.parquet", nan), "--task", "category"],
                    ["nan.parquet", "column 'x' row 7", "NaN or inf"])
    inf_npz = np.ones((6, 3, 4)); inf_npz[2, 0, 1] = np.inf
    np.savez(d / "inf.npz", x=inf_npz, group=np.arange(6), target=np.tile([0, 1], 3))
    cases["inf in npz"] = (["vectors", d / "inf.npz", "--task", "category"], ["inf.npz", "row 2", "NaN or inf"])
    empty = dict(good, x=[s if i != 4 else [] for i, s in enumerate(good["x"])])
    cases["empty sequence"] = (["vectors", _write(d / "empty.parquet", empty), "--task", "category"],
                               ["empty.parquet", "column 'x' row 4", "empty sequence"])
    split = np.array(["train"] * 60 + ["val"] * 30 + ["test"] * 30)
    label = np.where(np.arange(120) % 2, "a", "b").astype(object)
    label[100] = "only-in-test"
    cases["label only in test"] = (
        ["vectors", _write(d / "unseen.parquet", dict(good, target=label, split=split)), "--task", "category",
         "--split-col", "split"], ["unseen.parquet", "'only-in-test' never occurs in train"])
    cases["single class"] = (["vectors", _write(d / "one.parquet", dict(good, target=["a"] * 120)), "--task",
                              "category"], ["one.parquet", "1 class(es) ['a']", "at least 2"])
    np.save(d / "bank5.npy", np.ones((10, 5), dtype=np.float32))
    cases["bank dimension"] = (["vectors", files["vec"], "--task", "vector", "--bank", str(d / "bank5.npy")],
                               ["bank5.npy", "dimension 5", "column 'target'", "have 3"])
    cases["folds > groups"] = (["vectors", files["cat"], "--task", "category", "--folds", "40"],
                               ["--folds 40 needs at least 40 groups", "lower --folds"])
    cases["group column missing"] = (["vectors", files["cat"], "--task", "category", "--group-col", "user"],
                                     ["cat.parquet", "column 'user' not found", "--group-col"])
    cases["events group column missing"] = (
        ["events", files["events"], "--items", str(files["dir"] / "items.parquet"), "--task",
         "category", "--time-col", "t", "--item-col", "place", "--category-col", "cat"],
        ["events.csv", "column 'group' not found", "--group-col"])
    bad_events = pd.read_csv(files["events"])
    bad_events.loc[11, "place"] = 999
    bad_events.to_csv(d / "unknown.csv", index=False)
    cases["unknown item id"] = (["events", d / "unknown.csv", "--items", str(files["dir"] / "items.parquet"),
                                 "--task", "vector", *EVENT_COLS],
                                ["unknown.csv", "column 'place' row 11", "999", "items.parquet"])
    (d / "samples.json").write_text("{}")
    cases["file type"] = (["vectors", d / "samples.json", "--task", "category"], ["samples.json", "unknown file type"])
    (d / "items.pkl").write_bytes(b"\x80")
    cases["item file type"] = (["events", files["events"], "--items", str(d / "items.pkl"), "--task", "vector",
                                *EVENT_COLS], ["items.pkl", "unknown file type", ".npy"])
    np.savez(d / "pickled.npz", x=np.ones((6, 3, 4)), group=np.array([object()] * 6, dtype=object),
             target=np.tile([0, 1], 3))
    cases["pickled npz"] = (["vectors", d / "pickled.npz", "--task", "category"], ["pickled.npz", "never unpickles"])
    cases["bank for category"] = (["vectors", files["cat"], "--task", "category", "--bank", str(d / "bank5.npy")],
                                  ["--bank", "vector task only"])
    return cases


def test_bad_inputs_give_one_line_exit_2_and_no_output(tmp_path, files, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name, (args, expected) in _bad_inputs(d, files).items():
        kind, src, *rest = args
        out = tmp_path / "out"
        code = _prepare(kind, src, out, *map(str, rest))
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
        for text in expected:
            assert text in err, (name, text, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"], name  # no --out, no temp dir


def test_existing_out_is_refused_before_reading(tmp_path, files, capsys):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "thesis.tex").write_text("precious")
    assert _prepare("vectors", files["cat"], tmp_path / "ds", "--task", "category") == 2
    assert "already exists" in capsys.readouterr().err
    assert _prepare("vectors", files["cat"], tmp_path / "ds", "--task", "category", "--overwrite") == 2
    assert "not a nextsweep dataset" in capsys.readouterr().err
    assert (tmp_path / "ds" / "thesis.tex").read_text() == "precious"


def test_unknown_task_in_dataset_json_is_refused(tmp_path):
    write_vector_dataset(tmp_path / "ds", _dataset("category"))
    raw = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(raw | {"task": "weather"}))
    with pytest.raises(DataError, match="unknown task 'weather'"):
        load_dataset(tmp_path / "ds")
