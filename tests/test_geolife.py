"""The Geolife preset reproduces the published split exactly."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from data_io import load_dataset, read_info
from search.cli import main

pytestmark = pytest.mark.geolife


def test_counts_match_published_split(geolife_dir):
    info = read_info(geolife_dir)
    assert info.split_sizes == {"train": 7424, "val": 3334, "test": 3502}
    assert info.n_locations == 1187
    ds = load_dataset(geolife_dir)
    lengths = np.concatenate([ds[s].lengths for s in ("train", "val", "test")])
    assert lengths.min() == 3 and 17.5 < lengths.mean() < 18.5
    # On disk the protocol's full histories (3-54 stays); loaded, each is cut to the longest
    # training history (51), which sizes the position embedding. Only 6 val samples are longer.
    raw = pq.read_table(geolife_dir / "val.parquet").column("loc").to_pylist()
    assert max(map(len, raw)) == 54 and sum(len(r) > 51 for r in raw) == 6
    assert info.max_history == ds["train"].lengths.max() == 51
    assert (ds["val"].lengths.max(), ds["test"].lengths.max()) == (51, 46)
    assert abs((ds["val"].target == 1).mean() - 0.177) < 0.001
    assert abs((ds["test"].target == 1).mean() - 0.228) < 0.001


def _reference_sample(table: pd.DataFrame, target_id: int):
    """The protocol read literally, row by row, for one target: an independent check."""
    df = table.sort_values(["user_id", "start_day", "start_min"], kind="stable")
    row = df[df.id == target_id].iloc[0]
    user = df[df.user_id == row.user_id]
    max_day = user.start_day.max()
    split = lambda d: 0 if d < 0.6 * max_day else (1 if d < 0.8 * max_day else 2)
    same = user[user.start_day.map(split) == split(row.start_day)].reset_index(drop=True)
    pos = int(np.flatnonzero(same.id.to_numpy() == target_id)[0])
    hist = same.iloc[:pos]
    hist = hist[hist.start_day >= row.start_day - 7]
    return hist, row, split(row.start_day)


def test_exact_samples(geolife_files, geolife_dir):
    table = pd.read_csv(geolife_files[0])
    # Train vocabulary, computed independently: locations of stays before 0.6 * the user's max day.
    max_day = table.groupby("user_id").start_day.transform("max")
    vocab = np.sort(table[table.start_day < 0.6 * max_day].location_id.unique())
    code = {loc: i + 2 for i, loc in enumerate(vocab)}
    ds = load_dataset(geolife_dir)
    for split_name, index in [("train", 0), ("train", 5000), ("val", 17), ("test", 3501)]:
        split = ds[split_name]
        hist, row, split_id = _reference_sample(table, int(split.sample_id[index]))
        assert ("train", "val", "test")[split_id] == split_name
        n = int(split.lengths[index])
        assert n == len(hist)
        assert split.target[index] == code.get(row.location_id, 1)
        assert list(split.seq["loc"][index, :n]) == [code.get(x, 1) for x in hist.location_id]
        assert list(split.seq["tod"][index, :n]) == list(hist.start_min // 15)
        assert list(split.seq["dur"][index, :n]) == list(np.minimum(hist.duration, 2879).astype(int) // 30)
        assert list(split.seq["days_before"][index, :n]) == list(row.start_day - hist.start_day)
        assert list(split.seq["weekday"][index, :n]) == list(hist.weekday)
        assert (split.seq["loc"][index, n:] == 0).all()


def test_cli_prepare_and_info(geolife_files, tmp_path, capsys):
    out = tmp_path / "gl"
    assert main(["data", "prepare", "geolife", "--staypoints", str(geolife_files[0]),
                 "--valid-ids", str(geolife_files[1]), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train 7,424 / val 3,334 / test 3,502" in printed
    assert "1,187 classes" in printed


def test_shape_constant_matches_the_prepared_data(geolife_dir):
    from data_io.geolife import GEOLIFE_SHAPE
    info = read_info(geolife_dir)
    assert info.cardinalities == GEOLIFE_SHAPE.cardinalities
    assert (info.n_locations, info.n_users, info.max_history) == (
        GEOLIFE_SHAPE.n_locations, GEOLIFE_SHAPE.n_users, GEOLIFE_SHAPE.max_history)
