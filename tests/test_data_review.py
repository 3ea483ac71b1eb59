"""Review fixes in data_io: train-only history size, day origin, empty splits, safe overwrite."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from data_io import DataError, PrepareParams, load_dataset, read_info
from data_io.batches import iter_batches
from data_io.dataset import in_memory, write_dataset
from data_io.prepare import SEQ_FEATURES, Samples, build_samples
from data_io.synthetic import SynthParams, generate_staypoints, staypoints_frame
from models import build_model, count_params, evaluate
from search.cli import main

VOCAB = {"n_locations": 12, "n_users": 3}
SMALL = {"family": "transformer", "d_model": 16, "layers": 1, "heads": 2}


def _samples(histories: list[list[int]]) -> Samples:
    """One split from lists of location codes (2..11); other features reuse the code mod 7."""
    lengths = [len(h) for h in histories]
    loc = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    seq = {k: loc % 7 for k in SEQ_FEATURES} | {"loc": loc}
    n = len(histories)
    return Samples(np.arange(n), np.ones(n, np.int64), np.full(n, 2), np.r_[0, np.cumsum(lengths)], seq)


TRAIN = [[2, 3, 4], [2, 3, 4, 5], [5, 6, 7, 8, 9]]  # longest: 5
VAL = [[2, 3, 4], [4, 5, 6, 7, 8]]
LONG = [[2, 3, 4, 5, 6, 7, 8, 9, 10], [9, 10, 11]]  # 9 stays: longer than any training history


def _splits(test):
    return {"train": _samples(TRAIN), "val": _samples(VAL), "test": _samples(test)}


# --- 11: the position embedding is sized by the training split only ---------------------------

def test_long_test_history_does_not_change_the_searched_model():
    short = in_memory("t", _splits([[2, 3, 4, 5], [6, 7, 8]]), VOCAB, PrepareParams(), {}).info
    long = in_memory("t", _splits(LONG), VOCAB, PrepareParams(), {}).info
    assert long.max_history == long.cardinalities["position"] == 5
    assert long.cardinalities == short.cardinalities and long.max_history == short.max_history
    assert count_params(SMALL, long) == count_params(SMALL, short)


@pytest.mark.parametrize("via_disk", [True, False])
def test_long_histories_are_cut_to_the_most_recent_stays(tmp_path, via_disk):
    if via_disk:
        write_dataset(tmp_path / "ds", "t", _splits(LONG), VOCAB, PrepareParams(), {})
        ds = load_dataset(tmp_path / "ds")
    else:
        ds = in_memory("t", _splits(LONG), VOCAB, PrepareParams(), {})
    test = ds["test"]
    assert list(test.lengths) == [5, 3]
    assert test.seq["loc"].tolist() == [[6, 7, 8, 9, 10], [9, 10, 11, 0, 0]]
    assert test.seq["tod"][0].tolist() == [x % 7 for x in (6, 7, 8, 9, 10)]
    assert ds["train"].seq["loc"].tolist()[2] == TRAIN[2]  # training histories are untouched
    batches = list(iter_batches(test, 8))
    assert [b.seq["loc"].shape[1] for b in batches] == [5]
    model = build_model(SMALL, ds.info)
    metrics = evaluate(model, ds, "test")
    assert np.isfinite(metrics["loss"])
    # Every position index the model computes fits its embedding without clamping.
    assert int(test.lengths.max()) <= model.encoder.extra["position"].num_embeddings


# --- 13: day numbers of any origin --------------------------------------------------------------

def test_split_counts_days_from_each_users_first_day():
    sp = generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3))
    shifted = dataclasses.replace(sp, day=sp.day + 18000 + 1000 * sp.user)  # each user its own origin
    plain, _ = build_samples(sp, PrepareParams())
    moved, _ = build_samples(shifted, PrepareParams())
    assert {k: len(v) for k, v in moved.items()} == {k: len(v) for k, v in plain.items()}
    for name in plain:
        assert np.array_equal(moved[name].sample_id, plain[name].sample_id)
        assert np.array_equal(moved[name].seq["days_before"], plain[name].seq["days_before"])


def test_table_with_calendar_days_splits_like_relative_days(tmp_path):
    frame = staypoints_frame(generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3)))
    frame.to_csv(tmp_path / "rel.csv", index=False)
    frame.assign(start_day=frame.start_day + 18000).to_csv(tmp_path / "abs.csv", index=False)
    for name in ("rel", "abs"):
        assert main(["data", "prepare", "table", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / name),
                     "--weekday-col", "weekday", "--name", "x"]) == 0
    assert read_info(tmp_path / "abs").split_sizes == read_info(tmp_path / "rel").split_sizes
    assert read_info(tmp_path / "abs").fingerprint == read_info(tmp_path / "rel").fingerprint


# --- 14: an empty validation (or any empty) split is refused up front --------------------------

def _one_line_error(capsys, code, *expected):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def test_val_frac_zero_is_refused_with_one_line(tmp_path, capsys):
    staypoints_frame(generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3))).to_csv(
        tmp_path / "t.csv", index=False)
    code = main(["data", "prepare", "table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"),
                 "--val-frac", "0"])
    _one_line_error(capsys, code, "val=0.0", "0 < val", "--val-frac")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no output, no temp dir


def test_val_frac_zero_is_refused_by_the_python_api():
    sp = generate_staypoints(SynthParams(users=4, days=40, locations=40, seed=0))
    with pytest.raises(DataError, match=r"val=0\b.*--val-frac"):
        build_samples(sp, PrepareParams(val_frac=0))


def test_split_without_samples_is_refused(tmp_path, capsys):
    # 30 days: the validation and test days are fewer than the 7-day window needs.
    with pytest.raises(DataError, match="no val sample.*raise --val-frac"):
        build_samples(generate_staypoints(SynthParams(users=5, days=30, locations=40)), PrepareParams())
    code = main(["data", "synth", "--out", str(tmp_path / "out"), "--users", "5", "--days", "30"])
    _one_line_error(capsys, code, "no val sample", "--window-days")
    assert not any(tmp_path.iterdir())


# --- 15: --overwrite only replaces our own datasets, and does so atomically -------------------

@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.csv"
    staypoints_frame(generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3))).to_csv(path, index=False)
    return path


def _prepare(table, out, *extra):
    return main(["data", "prepare", "table", str(table), "--out", str(out), "--overwrite", *extra])


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path, table, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    _one_line_error(capsys, _prepare(table, tmp_path / "mine"), "not a nextsweep dataset", "--overwrite")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    # A dataset with a foreign file in it is not ours to delete either.
    assert _prepare(table, tmp_path / "ds") == 0
    (tmp_path / "ds" / "notes.txt").write_text("keep")
    _one_line_error(capsys, _prepare(table, tmp_path / "ds"), "not a nextsweep dataset")
    assert (tmp_path / "ds" / "notes.txt").read_text() == "keep"
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, _prepare(table, tmp_path / "file"), "not a nextsweep dataset")
    assert (tmp_path / "file").read_text() == "x"


def test_overwrite_replaces_a_dataset(tmp_path, table):
    out = tmp_path / "ds"
    assert _prepare(table, out, "--train-frac", "0.5") == 0
    assert _prepare(table, out) == 0
    assert read_info(out).params["train_frac"] == 0.6
    assert load_dataset(out).info.split_sizes == read_info(out).split_sizes
    assert _leftovers(tmp_path) == []


def _old_dataset(tmp_path):
    sp = generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3))
    splits, vocab = build_samples(sp, PrepareParams())
    old = write_dataset(tmp_path / "ds", "old", splits, vocab, PrepareParams(), {})
    return splits, vocab, old


def _assert_old_intact(tmp_path, old):
    assert read_info(tmp_path / "ds").to_json() == old.to_json()
    assert len(load_dataset(tmp_path / "ds")["test"]) == old.split_sizes["test"]
    assert _leftovers(tmp_path) == []


def test_failure_while_writing_keeps_the_old_dataset(tmp_path, monkeypatch):
    splits, vocab, old = _old_dataset(tmp_path)
    def disk_full(table, where, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("data_io.dataset.pq.write_table", disk_full)
    with pytest.raises(OSError):
        write_dataset(tmp_path / "ds", "new", splits, vocab, PrepareParams(), {}, overwrite=True)
    _assert_old_intact(tmp_path, old)


def test_failure_while_swapping_puts_the_old_dataset_back(tmp_path, monkeypatch):
    splits, vocab, old = _old_dataset(tmp_path)
    real = os.rename
    def rename(src, dst):
        if Path(src).name.startswith(".ds.tmp-") and not Path(src).name.endswith("-old"):
            raise OSError("rename failed")  # the new dataset cannot be moved in
        real(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        write_dataset(tmp_path / "ds", "new", splits, vocab, PrepareParams(), {}, overwrite=True)
    _assert_old_intact(tmp_path, old)
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["name"] == "old"
