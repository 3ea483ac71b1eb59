"""Generic staypoint tables: column mapping, timestamps, and one clear line for bad input."""

import numpy as np
import pandas as pd
import pytest

from data_io import load_dataset
from data_io.synthetic import SynthParams, generate_staypoints, staypoints_frame
from search.cli import main


@pytest.fixture(scope="module")
def frame():
    return staypoints_frame(generate_staypoints(SynthParams(users=8, days=40, locations=60, seed=3)))


def _prepare(tmp_path, path, *extra):
    return main(["data", "prepare", "table", str(path), "--out", str(tmp_path / "out"), *extra])


def test_csv_and_parquet_give_the_same_dataset(tmp_path, frame):
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    assert main(["data", "prepare", "table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "a"), "--weekday-col", "weekday"]) == 0
    assert main(["data", "prepare", "table", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "b"), "--weekday-col", "weekday"]) == 0
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert a.info.fingerprint == b.info.fingerprint
    assert a.info.split_sizes["train"] > 100


def test_timestamps_and_renamed_columns(tmp_path, frame):
    start = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame.start_day * 1440 + frame.start_min, unit="min")
    table = pd.DataFrame({"who": frame.user_id, "place": frame.location_id, "t0": start,
                          "t1": start + pd.to_timedelta(frame.duration, unit="min")})
    table.to_csv(tmp_path / "ts.csv", index=False)
    assert _prepare(tmp_path, tmp_path / "ts.csv", "--user-col", "who", "--location-col", "place",
                    "--start-col", "t0", "--end-col", "t1", "--duration-col", "") == 0
    ds = load_dataset(tmp_path / "out")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    assert main(["data", "prepare", "table", str(tmp_path / "plain.csv"), "--out", str(tmp_path / "plain")]) == 0
    plain = load_dataset(tmp_path / "plain")
    # Same stays, same days: the same samples, histories and durations (weekday comes from the calendar).
    assert ds.info.split_sizes == plain.info.split_sizes
    for f in ("loc", "tod", "dur", "days_before"):
        np.testing.assert_array_equal(ds["val"].seq[f], plain["val"].seq[f])
    assert set(np.unique(ds["train"].seq["weekday"])) <= set(range(7))


def test_offsets_keep_the_local_time_of_day(tmp_path, frame):
    """Timestamps with UTC offsets (one zone, or two as across daylight saving) give the same days,
    times of day and durations as the same wall-clock times written without them."""
    start = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame.start_day * 1440 + frame.start_min, unit="min")
    end = start + pd.to_timedelta(frame.duration, unit="min")
    fmt = "%Y-%m-%d %H:%M:%S"
    tables = {"naive": ("", ""), "zoned": ("+08:00", "+08:00"),
              "shifted": ("+02:00", "+01:00")}  # the clock went back an hour during every stay
    datasets = {}
    for name, (a, b) in tables.items():
        shift = pd.Timedelta(hours=1) if name == "shifted" else pd.Timedelta(0)
        table = pd.DataFrame({"user_id": frame.user_id, "location_id": frame.location_id,
                              "t0": start.dt.strftime(fmt) + a, "t1": (end - shift).dt.strftime(fmt) + b})
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        assert main(["data", "prepare", "table", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / name),
                     "--start-col", "t0", "--end-col", "t1", "--duration-col", ""]) == 0
        datasets[name] = load_dataset(tmp_path / name)
    for name in ("zoned", "shifted"):
        for f in ("loc", "tod", "dur", "weekday", "days_before"):
            np.testing.assert_array_equal(datasets[name]["val"].seq[f], datasets["naive"]["val"].seq[f])


def _bad_cases(tmp_path, frame):
    f = frame.copy()
    cases = {}
    cases["missing file"] = (tmp_path / "nope.csv", [], "file not found")
    f.drop(columns=["location_id"]).to_csv(tmp_path / "nocol.csv", index=False)
    cases["missing column"] = (tmp_path / "nocol.csv", [], "column 'location_id' not found")
    g = f.astype({"start_day": object}); g.loc[5, "start_day"] = "monday"
    g.to_csv(tmp_path / "mistyped.csv", index=False)
    cases["mistyped column"] = (tmp_path / "mistyped.csv", [], "column 'start_day' must hold integers, row 5")
    f.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    cases["empty table"] = (tmp_path / "empty.csv", [], "the table is empty")
    g = f.astype({"user_id": float}); g.loc[3, "user_id"] = 2.5
    g.to_csv(tmp_path / "float_ids.csv", index=False)
    cases["non-integer ids"] = (tmp_path / "float_ids.csv", [], "column 'user_id' must hold integers, row 3")
    g = f.copy(); g.loc[7, "duration"] = -4.0
    g.to_csv(tmp_path / "negdur.csv", index=False)
    cases["negative duration"] = (tmp_path / "negdur.csv", [], "negative duration at row 7")
    f.to_json(tmp_path / "table.json")
    cases["unknown file type"] = (tmp_path / "table.json", [], "unknown file type")
    f.to_csv(tmp_path / "ok.csv", index=False)
    pd.DataFrame({"id": [10**9, 10**9 + 1]}).to_csv(tmp_path / "valid.csv", index=False)
    cases["valid ids match nothing"] = (tmp_path / "ok.csv", ["--valid-ids", str(tmp_path / "valid.csv"), "--id-col", "id"], "no id in the --valid-ids file matches")
    g = f.assign(t0=1224730384 + 600 * np.arange(len(f)))
    g.to_csv(tmp_path / "unix.csv", index=False)
    cases["numbers for timestamps"] = (tmp_path / "unix.csv", ["--start-col", "t0"], "column 't0' holds numbers (row 0 has 1224730384)")
    cases["bad fractions"] = (tmp_path / "ok.csv", ["--train-frac", "0.9", "--val-frac", "0.2"], "split fractions")
    return cases


def test_bad_input_one_line_exit_2_no_output(tmp_path, frame, capsys):
    for name, (path, extra, expected) in _bad_cases(tmp_path, frame).items():
        code = _prepare(tmp_path, path, *extra)
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.count("\n") == 1 and expected in err, (name, err)
        assert "Traceback" not in err
        if name not in ("valid ids match nothing", "bad fractions"):
            assert str(path.name) in err, (name, err)
        assert not (tmp_path / "out").exists(), name
        assert not any(p.name.startswith(".out.tmp") for p in tmp_path.iterdir()), name


def test_existing_output_is_refused(tmp_path, frame, capsys):
    frame.to_csv(tmp_path / "ok.csv", index=False)
    assert _prepare(tmp_path, tmp_path / "ok.csv") == 0
    assert _prepare(tmp_path, tmp_path / "ok.csv") == 2
    assert "already exists" in capsys.readouterr().err
    assert _prepare(tmp_path, tmp_path / "ok.csv", "--overwrite") == 0


def test_info_on_a_non_dataset(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "not a nextsweep dataset" in capsys.readouterr().err
