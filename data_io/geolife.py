"""The Geolife preset: the exact published protocol (see ../shared/data/geolife/README.md).

Expected: 7,424 / 3,334 / 3,502 samples and 1,187 location classes.
"""

from __future__ import annotations

from pathlib import Path

from data_io.dataset import write_dataset
from data_io.dataset_types import DatasetInfo
from data_io.prepare import PrepareParams, build_samples
from data_io.tables import Columns, read_id_list, read_staypoints

GEOLIFE_COLUMNS = Columns(
    user="user_id", location="location_id", day="start_day", minute="start_min",
    duration="duration", weekday="weekday", id="id",
)
# Defaults are the protocol: 0.6/0.2/0.2 by tracked days, 7-day window, duration cap 2879 min.
GEOLIFE_PARAMS = PrepareParams()


def prepare_geolife(staypoints: str | Path, valid_ids: str | Path, out: str | Path,
                    overwrite: bool = False) -> DatasetInfo:
    sp = read_staypoints(staypoints, GEOLIFE_COLUMNS)
    ids = read_id_list(valid_ids)
    splits, vocab = build_samples(sp, GEOLIFE_PARAMS, ids, source=staypoints)
    source = {"preset": "geolife", "staypoints": str(staypoints), "valid_ids": str(valid_ids)}
    return write_dataset(out, "geolife", splits, vocab, GEOLIFE_PARAMS, source, overwrite)


# The shape of the prepared Geolife dataset (class and feature counts, as `prepare_geolife`
# gives them): enough for parameter counts and budget checks without reading the data.
# max_history is the longest *training* history (51; val reaches 54 and is cut to 51).
GEOLIFE_SHAPE = DatasetInfo(
    name="geolife-shape", n_locations=1187, n_users=46, split_sizes={}, max_history=51, params={},
    cardinalities={"loc": 1187, "user": 46, "weekday": 7, "tod": 96, "dur": 96, "days_before": 8, "position": 51})
