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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data_io.columns import (VECTOR_SUFFIXES, check_finite, check_lengths, comparable, file_kind, last_padded, load_npy,
                             is_list, last_steps, list_lengths, load_npz, matrix, read_parquet, read_vectors, scalars,
                             sequences)
from data_io.dataset_types import INFO_FILE, SPLITS, Dataset, DatasetInfo, SplitArrays, read_info
from data_io.errors import DataError
from data_io.folds import grouped_split
from data_io.staging import check_output_dir, staged_dir
from data_io.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, column, read_frame
from data_io.targets import facts_at, target_kind
from data_io.vector_seqs import Events, VectorParams, VectorSamples, add_folds, events_dataset, fingerprint, take, vector_dataset

REQUIRED = ("x", "lengths", "group", "target", "sample_id")
SPLIT_NAMES = {"train": 0, "val": 1, "test": 2}


# --- the on-disk format -------------------------------------------------------------------------

def write_vector_dataset(out: str | Path, ds: Dataset, overwrite: bool = False) -> DatasetInfo:
    """Write to a temp dir beside `out`, then swap it in: `out` never holds a partial dataset.
    The fingerprint is recomputed from the arrays, so it always describes what is written."""
    out = Path(out)
    check_output_dir(out, overwrite)
    info = dataclasses.replace(ds.info, fingerprint=fingerprint(ds.splits, ds.banks, ds.info.params, ds.info.classes))
    with staged_dir(out) as tmp:
        for split in SPLITS:
            np.savez(tmp / f"{split}.npz", **_split_dict(ds[split]))
            if split in ds.banks:
                np.save(tmp / f"bank_{split}.npy", np.asarray(ds.banks[split], dtype=np.float32))
        (tmp / INFO_FILE).write_text(info.to_json() + "\n")
    return info


OPTIONAL_SEQ = {"x_class": "cls", "x_row": "row"}  # stored array -> SplitArrays.seq key (format 2)


def _split_dict(a: SplitArrays) -> dict[str, np.ndarray]:
    arrays = {"x": a.seq["vec"], "lengths": a.lengths, "group": a.user, "target": a.target, "sample_id": a.sample_id}
    optional = {"target_id": a.target_id, "fold": a.fold} | {k: a.seq.get(v) for k, v in OPTIONAL_SEQ.items()}
    return arrays | {k: v for k, v in optional.items() if v is not None}


def load_vector_dataset(path: Path, info: DatasetInfo) -> Dataset:
    splits = {s: _load_split(path / f"{s}.npz") for s in SPLITS}
    kind = target_kind(info.task, str(path))
    banks = kind.load_banks(path)
    kind.complete(splits, banks)
    return Dataset(info, splits, path, banks)


def _load_split(file: Path) -> SplitArrays:
    z = load_npz(file, "prepare the dataset again")
    missing = [k for k in REQUIRED if k not in z]
    if missing:
        raise DataError(f"{file}: no array {missing[0]!r}; prepare the dataset again")
    seq = {"vec": z["x"]} | {key: z[name] for name, key in OPTIONAL_SEQ.items() if name in z}
    return SplitArrays(z["sample_id"], z["group"], z["target"], z["lengths"], seq, z.get("target_id"), z.get("fold"))


def vector_facts(source: Dataset | str | Path) -> dict:
    """Class counts per split (category task) or bank sizes (vector task), for `data info`;
    from a path it reads only the target arrays and the bank headers."""
    if isinstance(source, Dataset):
        return target_kind(source.info.task).facts(source)
    return facts_at(source, read_info(source).task)


# --- reading sample-level files -------------------------------------------------------------------

SAMPLE_SUFFIXES = PARQUET_SUFFIXES + (".npz",)


@dataclass(frozen=True)
class VectorColumns:
    """Column (Parquet) or array (.npz) names of sample-level files."""

    seq: str = "x"  # list<list<float>> (or list<float> with `dim`); .npz: float [N, L, D]
    group: str = "group"
    target: str = "target"  # category: label (string / int); vector: list<float> or [N, Dt]
    split: str | None = None  # train / val / test per sample
    lengths: str = "lengths"  # .npz only, optional: steps of each right-padded sequence
    dim: int | None = None  # floats per step of a flat list<float> sequence column
    max_history: int | None = None  # keep each sequence's last N steps (None: all)
    step_class: str | None = None  # category, optional: each history step's label (list column / [N, L] array)


@dataclass
class _Raw:
    """One sample-level file as arrays, before groups and labels are encoded."""

    file: Path
    x: np.ndarray
    lengths: np.ndarray
    group: np.ndarray
    target: np.ndarray
    split: np.ndarray | None
    step_labels: np.ndarray | None = None  # [N, L] labels of the history steps (None = padding)


def vectors_from_files(task: str, files: list[str | Path], cols: VectorColumns, params: VectorParams,
                       bank: str | Path | None = None, bank_col: str = "vector", name: str | None = None) -> Dataset:
    """One file (split by --split-col, else by groups) or three files (train, val, test)."""
    files = [Path(f) for f in files]
    if len(files) not in (1, 3):
        raise DataError(f"{len(files)} input files: give one file (with --split-col, or split by groups) or three "
                        "(train, --val and --test)")
    if len(files) == 3 and cols.split:
        raise DataError(f"--split-col {cols.split}: the three files already give the splits; drop --split-col")
    if cols.max_history is not None and cols.max_history < 1:
        raise DataError(f"--max-history {cols.max_history}: must be >= 1 (steps kept per sequence)")
    kind = target_kind(task)
    kind.refuse_bank(bank)
    if cols.step_class and task != "category":
        raise DataError(f"--step-class-col {cols.step_class}: history classes are for the category task; drop it")
    where = " / ".join(str(f) for f in files)
    params.check(where)
    raws = [_read_samples(f, cols, kind) for f in files]
    _check_same_dims(raws, cols, kind)
    group = _codes(np.concatenate([r.group for r in raws]))
    target, classes = kind.encode(np.concatenate([r.target for r in raws]))
    edges = np.cumsum([0] + [len(r.x) for r in raws])
    per_file = [VectorSamples(r.x, r.lengths, group[a:b], target[a:b], sample_id=np.arange(a, b),
                              history_class=_class_steps(r.step_labels, classes))
                for r, a, b in zip(raws, edges[:-1], edges[1:])]
    if len(files) == 3:
        splits, how = dict(zip(SPLITS, per_file)), "files"
    else:
        label, how = _split_labels(raws[0], per_file[0].group, cols, params)
        splits = {s: take(per_file[0], label == i) for i, s in enumerate(SPLITS)}
    add_folds(splits, params.folds, params.seed, where)
    banks = kind.read_bank(bank, bank_col, target, f"column '{cols.target}' of {files[0]}")
    kept = {"split": how, "val_frac": params.val_frac, "test_frac": params.test_frac, "folds": params.folds,
            "seed": params.seed}
    source = {"files": [str(f) for f in files], "bank": bank and str(bank), **dataclasses.asdict(cols)}
    return vector_dataset(name or files[0].stem, task, splits, classes=classes, banks=banks, n_folds=params.folds,
                          params=kept, source=source, where=where)


def _read_samples(file: Path, cols: VectorColumns, kind) -> _Raw:
    if file_kind(file, SAMPLE_SUFFIXES) == ".npz":
        return _read_npz_samples(file, cols, kind)
    table = read_parquet(file)
    for col, opt in ((cols.seq, "--seq-col"), (cols.group, "--group-col"), (cols.target, "--target-col"),
                     (cols.split, "--split-col")):
        if col is not None and col not in table.column_names:
            raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                            f"name the right one with {opt}")
    x, lengths = sequences(table.column(cols.seq).combine_chunks(), file, cols.seq, cols.dim, cols.max_history)
    target = kind.read_column(table.column(cols.target), file, cols.target)
    split = scalars(table.column(cols.split), file, cols.split) if cols.split else None
    steps = _step_label_column(table, file, cols) if cols.step_class else None
    return _Raw(file, x, lengths, scalars(table.column(cols.group), file, cols.group), target, split, steps)


def _read_npz_samples(file: Path, cols: VectorColumns, kind) -> _Raw:
    z = load_npz(file)
    keys = {"seq": cols.seq, "group": cols.group, "target": cols.target, "split": cols.split}
    keys["step-class"] = cols.step_class
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
    kind.check_array(z[cols.target], file, cols.target, n)
    for key in (cols.lengths, cols.group, cols.split):
        if key in z and (len(z[key]) != n or z[key].ndim != 1):
            raise DataError(f"{file}: array '{key}' has shape {z[key].shape}, '{cols.seq}' has {n} samples; give one "
                            "value per sample")
    check_lengths(lengths, file, cols.seq, width)
    steps = _step_label_array(z, file, cols, x.shape[:2]) if cols.step_class else None
    if cols.max_history is not None:
        if steps is not None:
            steps = last_padded(steps[:, :, None], lengths, cols.max_history)[0][:, :, 0]
        x, lengths = last_padded(x, lengths, cols.max_history)
        width = x.shape[1]
    x = np.where(np.arange(width)[None, :, None] < lengths[:, None, None], x, 0).astype(np.float32)  # padding may be NaN
    check_finite(x.reshape(n, -1), file, cols.seq)
    return _Raw(file, x, lengths, z[cols.group], z[cols.target], z[cols.split] if cols.split else None, steps)


def _step_label_array(z: dict, file: Path, cols: VectorColumns, shape: tuple[int, int]) -> np.ndarray:
    steps = z[cols.step_class]
    if steps.shape != shape:
        raise DataError(f"{file}: array '{cols.step_class}' has shape {steps.shape}; give one label per step of "
                        f"'{cols.seq}', shape {shape}")
    return steps


def _step_label_column(table: pa.Table, file: Path, cols: VectorColumns) -> np.ndarray:
    """The list column of step labels as a right-padded [N, L] object array, cut as the inputs are."""
    if cols.step_class not in table.column_names:
        raise DataError(f"{file}: column '{cols.step_class}' not found (columns: {', '.join(table.column_names[:12])}); "
                        "name the right one with --step-class-col")
    arr = table.column(cols.step_class).combine_chunks()
    seq = table.column(cols.seq).combine_chunks()
    if not is_list(arr.type) or arr.null_count:
        raise DataError(f"{file}: column '{cols.step_class}' must hold a list of labels per row, none missing")
    lengths = list_lengths(arr)
    want = list_lengths(seq) // (cols.dim or 1) if not is_list(seq.type.value_type) else list_lengths(seq)
    if (lengths != want).any():
        row = int(np.argmax(lengths != want))
        raise DataError(f"{file}: column '{cols.step_class}' row {row} has {lengths[row]} labels for {want[row]} steps "
                        f"of '{cols.seq}'; give one label per step")
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(object)
    if cols.max_history is not None:
        flat, lengths = last_steps(flat, lengths, cols.max_history)
    out = np.full((len(lengths), max(1, int(lengths.max(initial=0)))), None, dtype=object)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    out[rows, np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = flat
    return out


def _class_steps(steps: np.ndarray | None, classes: list[str] | None) -> np.ndarray | None:
    """Step labels -> class + 1 in the targets' classes; labels no target has (and padding) -> 0."""
    if steps is None:
        return None
    index = {name: i + 1 for i, name in enumerate(classes or [])}
    uniq, inverse = np.unique(steps.astype(str).ravel(), return_inverse=True)  # padding (None) is zeroed later
    code = np.array([index.get(u, 0) for u in uniq], dtype=np.int64)
    return code[inverse].reshape(steps.shape)


def _check_same_dims(raws: list[_Raw], cols: VectorColumns, kind) -> None:
    first = raws[0]
    for r in raws[1:]:
        if r.x.shape[2] != first.x.shape[2]:
            raise DataError(f"{r.file}: column '{cols.seq}' has vectors of dimension {r.x.shape[2]}, {first.file} has "
                            f"{first.x.shape[2]}; all inputs need one dimension")
        kind.check_same_dim(r.target, first.target, r.file, first.file, cols.target)


def _split_labels(raw: _Raw, group: np.ndarray, cols: VectorColumns, params: VectorParams) -> tuple[np.ndarray, str]:
    if raw.split is None:
        return grouped_split(group, params.val_frac, params.test_frac, params.seed, str(raw.file)), "group"
    names = raw.split.astype(str)
    bad = ~np.isin(names, list(SPLIT_NAMES))
    if bad.any():
        raise DataError(f"{raw.file}: column '{cols.split}' row {int(np.argmax(bad))} is {names[bad][0]!r}; "
                        "use train, val or test")
    return np.select([names == s for s in SPLIT_NAMES], list(SPLIT_NAMES.values())), "column"


# --- encoding ---------------------------------------------------------------------------------------

def _codes(values: np.ndarray) -> np.ndarray:
    """Group codes 1..G (0 is reserved for padding)."""
    return np.unique(comparable(values), return_inverse=True)[1].ravel().astype(np.int64) + 1


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
    kind = target_kind(task)
    kind.refuse_bank(bank)
    params.check(str(events))
    frame = read_frame(events)
    ids, vectors = read_items(items, cols, item_ids)
    group = _codes(_present(frame, events, cols.group, "--group-col"))
    time = _times(frame, events, cols.time)
    item = _item_rows(_present(frame, events, cols.item, "--item-col"), ids, events, cols.item, items)
    label, classes = kind.event_classes(lambda: _present(frame, events, cols.category, "--category-col"))
    banks = kind.read_bank(bank, bank_col, vectors, f"item vectors of {items}")
    source = {"events": str(events), "items": str(items), "item_ids": item_ids and str(item_ids),
              "bank": bank and str(bank), **dataclasses.asdict(cols)}
    return events_dataset(name or events.stem, task, Events(group, time, item, label), vectors, params,
                          classes=classes, bank=None if banks is None else banks["train"], source=source,
                          where=str(events))


def read_items(file: Path, cols: EventColumns, ids_file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors [M, D]) from Parquet (id + vector columns), .npz ('ids', 'vectors'),
    or .npy vectors with ids from --item-ids (default: the row number)."""
    kind = file_kind(file, VECTOR_SUFFIXES)
    if kind == ".parquet":
        table = read_parquet(file)
        for col, opt in ((cols.item_id, "--item-id-col"), (cols.item_vec, "--item-vec-col")):
            if col not in table.column_names:
                raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                                f"name the right one with {opt}")
        ids = scalars(table.column(cols.item_id), file, cols.item_id)
        vectors = matrix(table.column(cols.item_vec).combine_chunks(), file, cols.item_vec)
    else:
        vectors = read_vectors(file, what="item vectors")
        if kind == ".npz":
            z = load_npz(file)
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
    ids = comparable(ids)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{ids_file or file}: item id {uniq[np.argmax(counts > 1)]!r} occurs twice; ids must be unique")
    return ids, vectors


def _read_ids(file: Path) -> np.ndarray:
    if file_kind(file, CSV_SUFFIXES + PARQUET_SUFFIXES + (".npy",)) == ".npy":
        return load_npy(file)
    return read_frame(file).iloc[:, 0].to_numpy()


def _present(frame: pd.DataFrame, file: Path, name: str, option: str) -> np.ndarray:
    col = column(frame, file, name, option)
    if col.isna().any():
        raise DataError(f"{file}: column '{name}' row {int(np.argmax(col.isna().to_numpy()))} is missing; fill or "
                        "drop the row")
    return col.to_numpy()


def _times(frame: pd.DataFrame, file: Path, name: str) -> np.ndarray:
    """Order numbers as they are, else timestamps as integers: only their order matters."""
    col = column(frame, file, name, "--time-col")
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
    keys = comparable(values)
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
