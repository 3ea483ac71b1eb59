"""The on-disk dataset: one Parquet file per split (histories as list columns) plus
`dataset.json` holding a DatasetInfo with a content fingerprint. Loading gives padded numpy
matrices (tensorised once) that Ray can share zero-copy through its object store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_io.errors import DataError
from data_io.prepare import SEQ_FEATURES, SPLITS, PrepareParams, Samples

FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
TASKS = ("location", "category", "vector")  # the data kinds on disk (DatasetInfo.task)


@dataclass
class DatasetInfo:
    name: str
    n_locations: int  # classes, including 0 = padding and 1 = unseen in train
    n_users: int  # user embedding rows, including 0 = padding
    cardinalities: dict[str, int]  # per history feature: number of distinct codes
    split_sizes: dict[str, int]
    max_history: int  # longest training history; longer val/test histories are cut to it
    params: dict  # the preprocessing parameters
    source: dict = field(default_factory=dict)  # where it came from (files or generator settings)
    fingerprint: str = ""
    format_version: int = FORMAT_VERSION
    # The task's data kind (see models/tasks): "location" (ids + context codes, the fields
    # above), or "category" / "vector" (sequences of given D-dim vectors, seq = {"vec": ...}).
    task: str = "location"
    input_dim: int = 0  # category / vector: D of each input step
    target_dim: int = 0  # vector: dimension of the target vectors
    classes: list[str] = field(default_factory=list)  # category: label of each class id
    n_folds: int = 0  # grouped cross-validation folds over train + val (0 = none)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict) -> "DatasetInfo":
        return cls(**raw)


@dataclass
class SplitArrays:
    """One split, tensorised: int64 matrices padded on the right to the longest history (each
    history cut to the dataset's max_history most recent stays)."""

    sample_id: np.ndarray  # [N]
    user: np.ndarray  # [N] user / group code (0 = none)
    target: np.ndarray  # [N] class ids, or float32 [N, target_dim] for the vector task
    lengths: np.ndarray  # [N]
    seq: dict[str, np.ndarray]  # each [N, L] (codes), or {"vec": float32 [N, L, D]}
    target_id: np.ndarray | None = None  # vector task: row of the target in the split's bank
    fold: np.ndarray | None = None  # train / val: the sample's grouped CV fold (0..n_folds-1)

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class Dataset:
    info: DatasetInfo
    splits: dict[str, SplitArrays]
    path: Path | None = None
    banks: dict[str, np.ndarray] = field(default_factory=dict)  # vector task: candidates per split

    def __getitem__(self, split: str) -> SplitArrays:
        return self.splits[split]


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
    check_out(out, overwrite)
    tables = {k: to_table(v) for k, v in splits.items()}
    info = make_info(name, splits, vocab, params, source, tables)
    with staged_dir(out) as tmp:
        for split, table in tables.items():
            pq.write_table(table, tmp / f"{split}.parquet")
        (tmp / INFO_FILE).write_text(info.to_json() + "\n")
    return info


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse before any work: an existing `out` needs --overwrite and must be a dataset of ours."""
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose another --out or pass --overwrite")
    if out.exists():
        check_replaceable(out)


@contextmanager
def staged_dir(out: Path):
    """A temp dir beside `out` to write the dataset into; swapped in as `out` when the block ends,
    removed if it fails, so `out` never holds a partial dataset."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable(out: Path) -> None:
    """--overwrite deletes `out`, so it must be a dataset we wrote (or empty), never other files."""
    ours = {INFO_FILE, *(f"{s}{ext}" for s in SPLITS for ext in (".parquet", ".npz")), *(f"bank_{s}.npy" for s in SPLITS)}
    names = {p.name for p in out.iterdir()} if out.is_dir() else {None}
    if not names:
        return
    try:
        written_by_us = names <= ours and "fingerprint" in json.loads((out / INFO_FILE).read_text())
    except (OSError, ValueError, TypeError):
        written_by_us = False
    if not written_by_us:
        raise DataError(f"{out}: not a nextsweep dataset (no {INFO_FILE} or other files in it), so --overwrite "
                        "will not delete it; choose another --out or remove it yourself")


def swap_in(new: Path, out: Path) -> None:
    """Rename `new` to `out`; an old `out` is renamed aside first and deleted only once the new
    one is in place (put back if that fails), so one complete dataset always exists."""
    if not out.exists():
        os.rename(new, out)
        return
    old = out.with_name(new.name + "-old")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_info(path: str | Path) -> DatasetInfo:
    path = Path(path)
    info_file = path / INFO_FILE
    if not info_file.is_file():
        raise DataError(f"{path}: not a nextsweep dataset (no {INFO_FILE}); create one with `nextsweep data prepare` or `nextsweep data synth`")
    try:
        raw = json.loads(info_file.read_text())
        info = DatasetInfo.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{info_file}: unreadable dataset info ({exc}); prepare the dataset again") from None
    if info.format_version != FORMAT_VERSION:
        raise DataError(f"{info_file}: format version {info.format_version}, this nextsweep reads {FORMAT_VERSION}; prepare the dataset again")
    if info.task not in TASKS:
        raise DataError(f"{info_file}: unknown task {info.task!r} (this nextsweep reads {', '.join(TASKS)}); "
                        "update nextsweep or prepare the dataset again")
    return info


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


def load_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    info = read_info(path)
    if info.task != "location":  # given per-step vectors: .npz splits (data_io.vector_io)
        from data_io.vector_io import load_vector_dataset  # imported here: vector_io imports this module
        return load_vector_dataset(path, info)
    return Dataset(info, {s: load_split(path, s, info.max_history) for s in SPLITS}, path)
