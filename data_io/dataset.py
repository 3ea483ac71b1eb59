"""The location task's dataset on disk: one Parquet file per split (histories as list columns)
plus `dataset.json` holding a DatasetInfo with a content fingerprint. Loading gives padded
numpy matrices (tensorised once) that Ray can share zero-copy through its object store.

The vector kinds have their own format (`vector_seq_files`); `data_io.load_dataset` picks one by the
task in `dataset.json`. The shared types live in `dataset_types`, atomic writing in `staging`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_io.dataset_types import INFO_FILE, SPLITS, Dataset, DatasetInfo, SplitArrays
from data_io.errors import DataError
from data_io.prepare import SEQ_FEATURES, PrepareParams, Samples, build_samples
from data_io.staging import check_output_dir, staged_dir
from data_io.tables import Columns, read_id_list, read_staypoints


def to_table(samples: Samples) -> pa.Table:
    offsets = pa.array(samples.offsets.astype(np.int32))
    columns = {
        "sample_id": pa.array(samples.sample_id),
        "user": pa.array(samples.user),
        "target": pa.array(samples.target),
    }
    for name in SEQ_FEATURES:
        columns[name] = pa.ListArray.from_arrays(offsets, pa.array(samples.seq[name].astype(np.int64)))
    return pa.table(columns)


def fingerprint(tables: dict[str, pa.Table], params: dict) -> str:
    """sha256 over every column's values of every split plus the parameters (not file bytes,
    so a different pyarrow writing the same data gives the same fingerprint)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for split in SPLITS:
        for name in tables[split].column_names:
            col = tables[split].column(name).combine_chunks()
            if isinstance(col, pa.ListArray):
                digest.update(np.asarray(col.offsets).astype(np.int64).tobytes())
                col = col.values
            digest.update(f"{split}/{name}".encode())
            digest.update(np.asarray(col).astype(np.int64).tobytes())
    return digest.hexdigest()


def make_info(name: str, splits: dict[str, Samples], vocab: dict, params: PrepareParams,
              source: dict, tables: dict[str, pa.Table]) -> DatasetInfo:
    # Train only: the position embedding is searched under the budget, so val/test must not size it.
    max_hist = int(np.diff(splits["train"].offsets).max(initial=0))
    cards = {
        "loc": vocab["n_locations"],
        "user": vocab["n_users"],
        "weekday": 7,
        "tod": 1440 // params.tod_minutes,
        "dur": params.duration_cap // params.dur_minutes + 1,
        "days_before": params.window_days + 1,
        "position": max_hist,
    }
    return DatasetInfo(
        name=name, n_locations=vocab["n_locations"], n_users=vocab["n_users"], cardinalities=cards,
        split_sizes={k: len(v) for k, v in splits.items()}, max_history=max_hist,
        params=params.to_dict(), source=source, fingerprint=fingerprint(tables, params.to_dict()),
    )


def write_dataset(out: str | Path, name: str, splits: dict[str, Samples], vocab: dict,
                  params: PrepareParams, source: dict, overwrite: bool = False) -> DatasetInfo:
    """Write to a temp dir beside `out`, then swap it in: `out` never holds a partial dataset."""
    out = Path(out)
    check_output_dir(out, overwrite)
    tables = {k: to_table(v) for k, v in splits.items()}
    info = make_info(name, splits, vocab, params, source, tables)
    with staged_dir(out) as tmp:
        for split, table in tables.items():
            pq.write_table(table, tmp / f"{split}.parquet")
        (tmp / INFO_FILE).write_text(info.to_json() + "\n")
    return info


def prepare_table(table: str | Path, cols: Columns, params: PrepareParams, out: str | Path, name: str | None = None,
                  valid_ids: str | Path | None = None, overwrite: bool = False) -> DatasetInfo:
    """`data prepare table`: read a staypoint table (CSV or Parquet), build the three splits and
    write the dataset at `out`, named `name` (default: the table's file name without its suffix).
    `valid_ids`: a file of the staypoint ids that may be targets (default: all)."""
    sp = read_staypoints(table, cols)
    ids = read_id_list(valid_ids) if valid_ids else None
    splits, vocab = build_samples(sp, params, ids, source=table)
    source = {"table": str(table), "valid_ids": valid_ids and str(valid_ids)}
    return write_dataset(out, name or Path(table).stem, splits, vocab, params, source, overwrite)


def pad_lists(column: pa.ChunkedArray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """A list column -> (right-padded int64 matrix [n, longest kept], lengths), each list cut to
    its last `max_len` values (the most recent stays), with no per-row Python."""
    col = column.combine_chunks()
    offsets = np.asarray(col.offsets, dtype=np.int64)
    values = np.asarray(col.values, dtype=np.int64)
    lengths = np.minimum(np.diff(offsets), max_len)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.zeros((len(lengths), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    out[rows, cols] = values[np.repeat(offsets[1:] - lengths, lengths) + cols]
    return out, lengths


def load_split(path: Path, split: str, max_len: int) -> SplitArrays:
    file = path / f"{split}.parquet"
    if not file.is_file():
        raise DataError(f"{file}: missing split file; prepare the dataset again")
    return split_arrays(pq.read_table(file), max_len)


def split_arrays(table: pa.Table, max_len: int) -> SplitArrays:
    """Tensorise one split; histories longer than `max_len` keep their most recent stays."""
    seq, lengths = {}, None
    for name in SEQ_FEATURES:
        seq[name], lengths = pad_lists(table.column(name), max(1, max_len))
    scalar = {k: table.column(k).to_numpy().astype(np.int64) for k in ("sample_id", "user", "target")}
    return SplitArrays(lengths=lengths, seq=seq, **scalar)


def in_memory(name: str, splits: dict[str, Samples], vocab: dict, params: PrepareParams, source: dict) -> Dataset:
    """The Dataset that write_dataset + load_dataset would give, without touching the disk."""
    tables = {k: to_table(v) for k, v in splits.items()}
    info = make_info(name, splits, vocab, params, source, tables)
    return Dataset(info, {k: split_arrays(t, info.max_history) for k, t in tables.items()})


def load_location_dataset(path: Path, info: DatasetInfo) -> Dataset:
    """The location dataset at `path`, whose `dataset.json` gave `info`."""
    return Dataset(info, {s: load_split(path, s, info.max_history) for s in SPLITS}, path)
