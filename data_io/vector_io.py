"""Vector datasets (the category and vector tasks) on disk, and reading the files users hold.

On disk: `dataset.json` (a DatasetInfo) + one `{split}.npz` per split (x, lengths, group,
target, sample_id, and target_id / fold where present) + `bank_{split}.npy` for the vector
task. Plain arrays only: everything is written with np.savez / np.save and read with
allow_pickle=False.

Inputs: sample-level files (Parquet with a list-of-vectors column, or .npz arrays), or an
events table (CSV / Parquet) plus an item-embedding table, cut into windows per group.
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_io.dataset import INFO_FILE, Dataset, DatasetInfo, SplitArrays, check_out, read_info, staged_dir
from data_io.errors import DataError
from data_io.folds import grouped_split
from data_io.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _column, read_frame
from data_io.vectors import (SPLITS, Events, VectorParams, VectorSamples, _fingerprint, add_folds,
                             events_dataset, take, vector_dataset)

REQUIRED = ("x", "lengths", "group", "target", "sample_id")
SPLIT_NAMES = {"train": 0, "val": 1, "test": 2}


# --- the on-disk format -------------------------------------------------------------------------

def write_vector_dataset(out: str | Path, ds: Dataset, overwrite: bool = False) -> DatasetInfo:
    """Write to a temp dir beside `out`, then swap it in: `out` never holds a partial dataset.
    The fingerprint is recomputed from the arrays, so it always describes what is written."""
    out = Path(out)
    check_out(out, overwrite)
    info = dataclasses.replace(ds.info, fingerprint=_fingerprint(ds.splits, ds.banks, ds.info.params, ds.info.classes))
    with staged_dir(out) as tmp:
        for split in SPLITS:
            np.savez(tmp / f"{split}.npz", **_split_dict(ds[split]))
            if split in ds.banks:
                np.save(tmp / f"bank_{split}.npy", np.asarray(ds.banks[split], dtype=np.float32))
        (tmp / INFO_FILE).write_text(info.to_json() + "\n")
    return info


def _split_dict(a: SplitArrays) -> dict[str, np.ndarray]:
    arrays = {"x": a.seq["vec"], "lengths": a.lengths, "group": a.user, "target": a.target, "sample_id": a.sample_id}
    optional = {"target_id": a.target_id, "fold": a.fold}
    return arrays | {k: v for k, v in optional.items() if v is not None}


def load_vector_dataset(path: Path, info: DatasetInfo) -> Dataset:
    splits = {s: _load_split(path / f"{s}.npz") for s in SPLITS}
    banks = {s: _load_npy(path / f"bank_{s}.npy") for s in SPLITS} if info.task == "vector" else {}
    return Dataset(info, splits, path, banks)


def _load_split(file: Path) -> SplitArrays:
    z = _load_npz(file, "prepare the dataset again")
    missing = [k for k in REQUIRED if k not in z]
    if missing:
        raise DataError(f"{file}: no array {missing[0]!r}; prepare the dataset again")
    return SplitArrays(z["sample_id"], z["group"], z["target"], z["lengths"], {"vec": z["x"]},
                       z.get("target_id"), z.get("fold"))


def _load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise DataError(f"{file}: missing file; prepare the dataset again")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError:
        raise DataError(f"{file}: holds Python objects, which nextsweep never unpickles; save a plain numeric array") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{file}: cannot be read ({exc}); give a valid .npy file") from None


def _load_npz(file: Path, fix: str = "give a valid .npz file") -> dict[str, np.ndarray]:
    if not file.is_file():
        raise DataError(f"{file}: file not found; {fix}")
    try:
        with np.load(file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError:  # an object array: loading it would unpickle
        raise DataError(f"{file}: holds Python objects, which nextsweep never unpickles; save plain numeric or "
                        "string arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: cannot be read ({exc}); {fix}") from None


def vector_facts(source: Dataset | str | Path) -> dict:
    """Class counts per split (category task) or bank sizes (vector task), for `data info`;
    from a path it reads only the target arrays and the bank headers."""
    if isinstance(source, Dataset):
        if source.info.task == "vector":
            return {"banks": {s: len(b) for s, b in source.banks.items()}}
        targets = {s: source[s].target for s in SPLITS}
    else:
        path = Path(source)
        try:
            if read_info(path).task == "vector":
                return {"banks": {s: len(np.load(path / f"bank_{s}.npy", mmap_mode="r")) for s in SPLITS}}
            targets = {}
            for s in SPLITS:
                with np.load(path / f"{s}.npz", allow_pickle=False) as z:  # reads only the member asked for
                    targets[s] = z["target"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: unreadable split files ({exc}); prepare the dataset again") from None
    n = 1 + max(int(t.max(initial=0)) for t in targets.values())
    return {"class_counts": {s: np.bincount(t, minlength=n).tolist() for s, t in targets.items()}}


# --- reading sample-level files -------------------------------------------------------------------

SAMPLE_SUFFIXES = PARQUET_SUFFIXES + (".npz",)
VECTOR_SUFFIXES = PARQUET_SUFFIXES + (".npy", ".npz")


@dataclass(frozen=True)
class VectorColumns:
    """Column (Parquet) or array (.npz) names of sample-level files."""

    seq: str = "x"  # list<list<float>> (or list<float> with `dim`); .npz: float [N, L, D]
    group: str = "group"
    target: str = "target"  # category: label (string / int); vector: list<float> or [N, Dt]
    split: str | None = None  # train / val / test per sample
    lengths: str = "lengths"  # .npz only, optional: steps of each right-padded sequence
    dim: int | None = None  # floats per step of a flat list<float> sequence column


@dataclass
class _Raw:
    """One sample-level file as arrays, before groups and labels are encoded."""

    file: Path
    x: np.ndarray
    lengths: np.ndarray
    group: np.ndarray
    target: np.ndarray
    split: np.ndarray | None


def vectors_from_files(task: str, files: list[str | Path], cols: VectorColumns, params: VectorParams,
                       bank: str | Path | None = None, bank_col: str = "vector", name: str | None = None) -> Dataset:
    """One file (split by --split-col, else by groups) or three files (train, val, test)."""
    files = [Path(f) for f in files]
    if len(files) not in (1, 3):
        raise DataError(f"{len(files)} input files: give one file (with --split-col, or split by groups) or three "
                        "(train, --val and --test)")
    if len(files) == 3 and cols.split:
        raise DataError(f"--split-col {cols.split}: the three files already give the splits; drop --split-col")
    _check_task(task, bank)
    where = " / ".join(str(f) for f in files)
    params.check(where)
    raws = [_read_samples(f, cols, task) for f in files]
    _check_same_dims(raws, cols, task)
    group = _codes(np.concatenate([r.group for r in raws]))
    target, classes = _targets(np.concatenate([r.target for r in raws]), task)
    edges = np.cumsum([0] + [len(r.x) for r in raws])
    per_file = [VectorSamples(r.x, r.lengths, group[a:b], target[a:b], sample_id=np.arange(a, b))
                for r, a, b in zip(raws, edges[:-1], edges[1:])]
    if len(files) == 3:
        splits, how = dict(zip(SPLITS, per_file)), "files"
    else:
        label, how = _split_labels(raws[0], per_file[0].group, cols, params)
        splits = {s: take(per_file[0], label == i) for i, s in enumerate(SPLITS)}
    add_folds(splits, params.folds, params.seed, where)
    banks = _banks(bank, bank_col, target, f"column '{cols.target}' of {files[0]}") if task == "vector" else None
    kept = {"split": how, "val_frac": params.val_frac, "test_frac": params.test_frac, "folds": params.folds,
            "seed": params.seed}
    source = {"files": [str(f) for f in files], "bank": bank and str(bank), **dataclasses.asdict(cols)}
    return vector_dataset(name or files[0].stem, task, splits, classes=classes, banks=banks, n_folds=params.folds,
                          params=kept, source=source, where=where)


def _check_task(task: str, bank) -> None:
    if task not in ("category", "vector"):
        raise DataError(f"--task {task!r}: use category or vector")
    if bank and task != "vector":
        raise DataError(f"--bank {bank}: a candidate bank is for the vector task only; drop --bank")


def _read_samples(file: Path, cols: VectorColumns, task: str) -> _Raw:
    kind = _kind(file, SAMPLE_SUFFIXES)
    if kind == ".npz":
        return _read_npz_samples(file, cols, task)
    table = _read_parquet(file)
    for col, opt in ((cols.seq, "--seq-col"), (cols.group, "--group-col"), (cols.target, "--target-col"),
                     (cols.split, "--split-col")):
        if col is not None and col not in table.column_names:
            raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                            f"name the right one with {opt}")
    x, lengths = _sequences(table.column(cols.seq).combine_chunks(), file, cols.seq, cols.dim)
    if task == "vector":
        target = _matrix(table.column(cols.target).combine_chunks(), file, cols.target)
    else:
        target = _scalars(table.column(cols.target), file, cols.target)
    split = _scalars(table.column(cols.split), file, cols.split) if cols.split else None
    return _Raw(file, x, lengths, _scalars(table.column(cols.group), file, cols.group), target, split)


def _read_npz_samples(file: Path, cols: VectorColumns, task: str) -> _Raw:
    z = _load_npz(file)
    keys = {"seq": cols.seq, "group": cols.group, "target": cols.target, "split": cols.split}
    for what, key in keys.items():
        if key is not None and key not in z:
            raise DataError(f"{file}: no array '{key}' (arrays: {', '.join(z)}); name the right one with "
                            f"--{what}-col")
    x = z[cols.seq]
    if x.ndim != 3 or x.dtype.kind not in "fiu":
        raise DataError(f"{file}: array '{cols.seq}' must be numbers of shape [N, L, D], got {x.dtype} {x.shape}; "
                        "pad each sequence to L steps on the right and give their lengths in 'lengths'")
    n, width = x.shape[:2]
    lengths = z.get(cols.lengths, np.full(n, width)).astype(np.int64)
    for key in (cols.lengths, cols.group, cols.target, cols.split):
        if key in z and (len(z[key]) != n or (z[key].ndim != 1 and not (key == cols.target and task == "vector"))):
            raise DataError(f"{file}: array '{key}' has shape {z[key].shape}, '{cols.seq}' has {n} samples; give one "
                            "value per sample")
    _check_lengths(lengths, file, cols.seq, width)
    x = np.where(np.arange(width)[None, :, None] < lengths[:, None, None], x, 0).astype(np.float32)  # padding may be NaN
    _check_finite(x.reshape(n, -1), file, cols.seq)
    target = z[cols.target]
    if task == "vector" and (target.ndim != 2 or target.dtype.kind not in "fiu"):
        raise DataError(f"{file}: array '{cols.target}' must be target vectors [N, Dt], got {target.dtype} "
                        f"{target.shape}; give one vector per sample")
    if task == "vector":
        _check_finite(target, file, cols.target)
    return _Raw(file, x, lengths, z[cols.group], target, z[cols.split] if cols.split else None)


def _check_lengths(lengths: np.ndarray, file: Path, col: str, width: int | None = None) -> None:
    if (lengths < 1).any():
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(lengths < 1))} is an empty sequence; every "
                        "sample needs at least one vector, drop those rows")
    if width is not None and (lengths > width).any():
        raise DataError(f"{file}: 'lengths' row {int(np.argmax(lengths > width))} exceeds the {width} steps of "
                        f"'{col}'; fix the lengths")


def _check_finite(values: np.ndarray, file: Path, col: str) -> None:
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(bad))} holds NaN or inf ({int(bad.sum())} rows "
                        "do); clean or drop those rows")


def _check_same_dims(raws: list[_Raw], cols: VectorColumns, task: str) -> None:
    first = raws[0]
    for r in raws[1:]:
        if r.x.shape[2] != first.x.shape[2]:
            raise DataError(f"{r.file}: column '{cols.seq}' has vectors of dimension {r.x.shape[2]}, {first.file} has "
                            f"{first.x.shape[2]}; all inputs need one dimension")
        if task == "vector" and r.target.shape[1] != first.target.shape[1]:
            raise DataError(f"{r.file}: column '{cols.target}' has target vectors of dimension {r.target.shape[1]}, "
                            f"{first.file} has {first.target.shape[1]}; all targets need one dimension")


def _split_labels(raw: _Raw, group: np.ndarray, cols: VectorColumns, params: VectorParams) -> tuple[np.ndarray, str]:
    if raw.split is None:
        return grouped_split(group, params.val_frac, params.test_frac, params.seed, str(raw.file)), "group"
    names = raw.split.astype(str)
    bad = ~np.isin(names, list(SPLIT_NAMES))
    if bad.any():
        raise DataError(f"{raw.file}: column '{cols.split}' row {int(np.argmax(bad))} is {names[bad][0]!r}; "
                        "use train, val or test")
    return np.select([names == s for s in SPLIT_NAMES], list(SPLIT_NAMES.values())), "column"


# --- Arrow list columns -> numpy, vectorised -----------------------------------------------------

def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _list_lengths(arr: pa.Array) -> np.ndarray:
    return pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)


def _floats(arr: pa.Array, file: Path, col: str) -> np.ndarray:
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' holds missing (null) values; fill or drop those rows")
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
        raise DataError(f"{file}: column '{col}' must hold numbers, it holds {arr.type}; fix the column")
    return arr.to_numpy(zero_copy_only=False).astype(np.float32)


def _sequences(arr: pa.Array, file: Path, col: str, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A list<list<float>> column (or list<float> with `dim` floats per step) -> right-padded
    float32 [N, L, D] and lengths."""
    if not _is_list(arr.type):
        raise DataError(f"{file}: column '{col}' must hold a list of vectors (list<list<float>>), or a flat list "
                        f"of floats with --dim; it holds {arr.type}")
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))} "
                        "is missing; drop the row")
    if _is_list(arr.type.value_type):
        lengths = _list_lengths(arr)
        steps = _matrix(arr.flatten(), file, col, rows=np.repeat(np.arange(len(arr)), lengths))
        if dim is not None and steps.shape[1] != dim:
            raise DataError(f"{file}: column '{col}' holds vectors of dimension {steps.shape[1]}, not --dim {dim}")
    else:
        if not dim:
            raise DataError(f"{file}: column '{col}' is a flat list of floats; give --dim D (floats per step), or "
                            "store a list of vectors")
        flat = _list_lengths(arr)
        if (flat % dim).any():
            row = int(np.argmax(flat % dim))
            raise DataError(f"{file}: column '{col}' row {row} has {flat[row]} floats, not a multiple of --dim {dim}; "
                            "every step needs exactly D floats")
        lengths = flat // dim
        steps = _floats(arr.flatten(), file, col).reshape(-1, dim)
    _check_lengths(lengths, file, col)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    _check_finite_steps(steps, rows, file, col)
    x = np.zeros((len(lengths), int(lengths.max()), steps.shape[1]), dtype=np.float32)
    x[rows, np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = steps
    return x, lengths


def _check_finite_steps(steps: np.ndarray, rows: np.ndarray, file: Path, col: str) -> None:
    bad = ~np.isfinite(steps).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: column '{col}' row {int(rows[np.argmax(bad)])} holds NaN or inf; clean or drop "
                        "those rows")


def _matrix(arr: pa.Array, file: Path, col: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A list<float> column of equal-length vectors -> float32 [N, D]. `rows` maps entries to
    the file's rows (for a flattened list of vectors)."""
    if not _is_list(arr.type):
        raise DataError(f"{file}: column '{col}' must hold vectors (list<float>), it holds {arr.type}")
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' holds missing (null) vectors; drop those rows")
    sizes = _list_lengths(arr)
    if len(sizes) and (sizes != sizes[0]).any():
        i = int(np.argmax(sizes != sizes[0]))
        row = i if rows is None else int(rows[i])
        raise DataError(f"{file}: column '{col}' mixes vector lengths ({sizes[0]} and {sizes[i]}, row {row}); "
                        "every vector needs the same dimension")
    values = _floats(arr.flatten(), file, col).reshape(len(arr), -1 if len(arr) else 0)
    if rows is None:
        _check_finite(values, file, col)
    return values


def _scalars(col: pa.ChunkedArray, file: Path, name: str) -> np.ndarray:
    if col.null_count:
        row = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(f"{file}: column '{name}' row {row} is missing; fill or drop the row")
    if _is_list(col.type):
        raise DataError(f"{file}: column '{name}' must hold one value per row, it holds {col.type}")
    return col.to_numpy()


def _read_parquet(file: Path) -> pa.Table:
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow's parser errors
        raise DataError(f"{file}: cannot be read ({type(exc).__name__}: {exc}); give a valid Parquet file") from None
    if table.num_rows == 0:
        raise DataError(f"{file}: the table is empty; give a file with at least one row")
    return table


def _kind(file: Path, allowed: tuple[str, ...]) -> str:
    """The file's type among `allowed` ('.parquet' for any Parquet suffix, '.csv' for any CSV one)."""
    if not file.is_file():
        raise DataError(f"{file}: file not found; check the path")
    name = file.name.lower()
    for suffix in allowed:
        if name.endswith(suffix):
            return ".parquet" if suffix in PARQUET_SUFFIXES else ".csv" if suffix in CSV_SUFFIXES else suffix
    raise DataError(f"{file}: unknown file type; use {', '.join(allowed)}")


# --- encoding ---------------------------------------------------------------------------------------

def _comparable(values: np.ndarray) -> np.ndarray:
    """Whole numbers as int64, anything else as str (so ids read from CSV and Parquet match)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.isfinite(values).all() and (values == np.round(values)).all():
        return values.astype(np.int64)
    return values.astype(str)


def _codes(values: np.ndarray) -> np.ndarray:
    """Group codes 1..G (0 is reserved for padding)."""
    return np.unique(_comparable(values), return_inverse=True)[1].ravel().astype(np.int64) + 1


def _labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Class ids in the sorted order of the labels, and the label names."""
    uniq, codes = np.unique(_comparable(values), return_inverse=True)
    return codes.ravel().astype(np.int64), [str(u) for u in uniq]


def _targets(values: np.ndarray, task: str) -> tuple[np.ndarray, list[str] | None]:
    return _labels(values) if task == "category" else (values.astype(np.float32), None)


def read_vectors(file: str | Path, col: str = "vector", what: str = "vectors") -> np.ndarray:
    """Float32 [M, D] from .npy, .npz ('vectors') or a Parquet list<float> column `col`."""
    file = Path(file)
    kind = _kind(file, VECTOR_SUFFIXES)
    if kind == ".parquet":
        table = _read_parquet(file)
        if col not in table.column_names:
            raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                            f"name the column of {what}")
        return _matrix(table.column(col).combine_chunks(), file, col)
    z = {"vectors": _load_npy(file)} if kind == ".npy" else _load_npz(file)
    if "vectors" not in z:
        raise DataError(f"{file}: no array 'vectors' (arrays: {', '.join(z)}); save the {what} as 'vectors'")
    values = z["vectors"]
    if values.ndim != 2 or values.dtype.kind not in "fiu" or not len(values):
        raise DataError(f"{file}: {what} must be numbers of shape [M, D], got {values.dtype} {values.shape}")
    values = values.astype(np.float32)
    _check_finite(values, file, "vectors")
    return values


def _banks(bank: str | Path | None, bank_col: str, target: np.ndarray, targets_named: str) -> dict | None:
    if bank is None:
        return None
    vectors = read_vectors(bank, bank_col, "bank vectors")
    if vectors.shape[1] != target.shape[1]:
        raise DataError(f"{bank}: bank vectors have dimension {vectors.shape[1]}, the targets ({targets_named}) "
                        f"have {target.shape[1]}; give a bank of dimension {target.shape[1]}")
    return {s: vectors for s in SPLITS}


# --- events + item embeddings ------------------------------------------------------------------------

@dataclass(frozen=True)
class EventColumns:
    group: str = "group"
    time: str = "time"  # timestamps or order numbers
    item: str = "item"
    category: str = "category"  # category task: the class of each event's place
    item_id: str = "id"  # item table (Parquet): the id column
    item_vec: str = "vector"  # item table (Parquet): the vector column


def events_from_files(task: str, events: str | Path, items: str | Path, cols: EventColumns, params: VectorParams,
                      item_ids: str | Path | None = None, bank: str | Path | None = None,
                      bank_col: str = "vector", name: str | None = None) -> Dataset:
    events, items = Path(events), Path(items)
    _check_task(task, bank)
    params.check(str(events))
    frame = read_frame(events)
    ids, vectors = read_items(items, cols, item_ids)
    group = _codes(_present(frame, events, cols.group, "--group-col"))
    time = _times(frame, events, cols.time)
    item = _item_rows(_present(frame, events, cols.item, "--item-col"), ids, events, cols.item, items)
    label, classes = _labels(_present(frame, events, cols.category, "--category-col")) if task == "category" else (None, None)
    banks = _banks(bank, bank_col, vectors, f"item vectors of {items}") if task == "vector" else None
    source = {"events": str(events), "items": str(items), "item_ids": item_ids and str(item_ids),
              "bank": bank and str(bank), **dataclasses.asdict(cols)}
    return events_dataset(name or events.stem, task, Events(group, time, item, label), vectors, params,
                          classes=classes, bank=None if banks is None else banks["train"], source=source,
                          where=str(events))


def read_items(file: Path, cols: EventColumns, ids_file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors [M, D]) from Parquet (id + vector columns), .npz ('ids', 'vectors'),
    or .npy vectors with ids from --item-ids (default: the row number)."""
    kind = _kind(file, VECTOR_SUFFIXES)
    if kind == ".parquet":
        table = _read_parquet(file)
        for col, opt in ((cols.item_id, "--item-id-col"), (cols.item_vec, "--item-vec-col")):
            if col not in table.column_names:
                raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                                f"name the right one with {opt}")
        ids = _scalars(table.column(cols.item_id), file, cols.item_id)
        vectors = _matrix(table.column(cols.item_vec).combine_chunks(), file, cols.item_vec)
    else:
        vectors = read_vectors(file, what="item vectors")
        if kind == ".npz":
            z = _load_npz(file)
            if "ids" not in z:
                raise DataError(f"{file}: no array 'ids' (arrays: {', '.join(z)}); save the item ids as 'ids'")
            ids = z["ids"]
        else:
            ids = np.arange(len(vectors)) if ids_file is None else _read_ids(Path(ids_file))
    if ids_file is not None and kind != ".npy":
        raise DataError(f"--item-ids {ids_file}: only an .npy --items file takes its ids from --item-ids; "
                        f"{file} holds its own ids")
    if ids.ndim != 1 or len(ids) != len(vectors):
        raise DataError(f"{ids_file or file}: {len(ids)} item ids for {len(vectors)} vectors; give one id per vector")
    ids = _comparable(ids)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{ids_file or file}: item id {uniq[np.argmax(counts > 1)]!r} occurs twice; ids must be unique")
    return ids, vectors


def _read_ids(file: Path) -> np.ndarray:
    if _kind(file, CSV_SUFFIXES + PARQUET_SUFFIXES + (".npy",)) == ".npy":
        return _load_npy(file)
    return read_frame(file).iloc[:, 0].to_numpy()


def _present(frame: pd.DataFrame, file: Path, name: str, option: str) -> np.ndarray:
    col = _column(frame, file, name, option)
    if col.isna().any():
        raise DataError(f"{file}: column '{name}' row {int(np.argmax(col.isna().to_numpy()))} is missing; fill or "
                        "drop the row")
    return col.to_numpy()


def _times(frame: pd.DataFrame, file: Path, name: str) -> np.ndarray:
    """Order numbers as they are, else timestamps as integers: only their order matters."""
    col = _column(frame, file, name, "--time-col")
    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=np.float64)
    stamps = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")  # utc: mixed offsets compare right
    if stamps.isna().any():
        row = int(np.argmax(stamps.isna().to_numpy()))
        raise DataError(f"{file}: column '{name}' row {row} is {col.iloc[row]!r}; it must hold timestamps or order "
                        "numbers (name another with --time-col)")
    return stamps.astype("int64").to_numpy()


def _item_rows(values: np.ndarray, ids: np.ndarray, file: Path, col: str, items: Path) -> np.ndarray:
    """Each event's row in the item table (ids may be numbers or strings)."""
    keys = _comparable(values)
    if keys.dtype.kind != ids.dtype.kind:  # a number and a string never match: compare both as text
        keys, ids = keys.astype(str), ids.astype(str)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids, keys, sorter=order), len(ids) - 1)
    found = ids[order[pos]] == keys
    if not found.all():
        row = int(np.argmax(~found))
        raise DataError(f"{file}: column '{col}' row {row} has item id '{values[row]}', which {items} does not hold "
                        f"({int((~found).sum())} events do); add their vectors or drop those events")
    return order[pos].astype(np.int64)
