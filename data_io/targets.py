"""What the target of a vector dataset is, one object per kind, so the data code asks the kind
and never branches on the task's name: the category task's class labels, or the vector task's
target vectors with the candidate banks that retrieval ranks them in. (The model side of a task,
its heads, losses and metrics, lives in models/tasks/.)"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from data_io.columns import check_finite, comparable, load_npy, matrix, read_vectors, scalars
from data_io.dataset_types import SPLITS, Dataset, DatasetInfo, SplitArrays
from data_io.errors import DataError


def labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Class ids in the sorted order of the labels, and the label names."""
    uniq, codes = np.unique(comparable(values), return_inverse=True)
    return codes.ravel().astype(np.int64), [str(u) for u in uniq]


class CategoryTargets:
    """One class label per sample: int64 ids into `classes`; no bank."""

    task = "category"

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        return labels(values)

    def read_column(self, column: pa.ChunkedArray, file: Path, col: str) -> np.ndarray:
        return scalars(column, file, col)

    def check_array(self, target: np.ndarray, file: Path, col: str, n: int) -> None:
        if target.ndim != 1 or len(target) != n:
            raise DataError(f"{file}: array '{col}' has shape {target.shape}, the inputs have {n} samples; give one "
                            "label per sample")

    def check_same_dim(self, target: np.ndarray, first: np.ndarray, file: Path, first_file: Path, col: str) -> None:
        pass  # labels have no dimension

    def refuse_bank(self, bank) -> None:
        if bank:
            raise DataError(f"--bank {bank}: a candidate bank is for the vector task only; drop --bank")

    def read_bank(self, bank, bank_col: str, target: np.ndarray, targets_named: str) -> None:
        return None

    def event_classes(self, read_labels) -> tuple[np.ndarray, list[str]]:
        """Each event's class id and the class names; `read_labels()` gives the raw column."""
        return labels(read_labels())

    def event_targets(self, label, classes, items, item, targets):
        """(target of event rows -> array, classes): only the classes that occur as targets."""
        if label is None or not classes:
            raise DataError("the category task needs a class per event; name its column with --category-col")
        present = np.unique(label[targets])  # sorted
        code = np.searchsorted(present, label)
        return (lambda rows: code[rows]), [classes[i] for i in present]

    def event_banks(self, items: np.ndarray, bank: np.ndarray | None) -> None:
        return None

    def check(self, splits: dict, classes, where: str) -> None:
        if not classes or len(classes) < 2:
            raise DataError(f"{where}: the targets hold {len(classes or [])} class(es) {list(classes or [])}; the "
                            "category task needs at least 2, give targets of two or more classes")
        seen = np.unique(splits["train"].target)
        for s, v in splits.items():
            if v.target.ndim != 1 or v.target.min() < 0 or v.target.max() >= len(classes):
                raise DataError(f"{where}: {s}: targets must be class ids 0..{len(classes) - 1}")
            unseen = np.setdiff1d(np.unique(v.target), seen)
            if len(unseen):
                raise DataError(f"{where}: {s}: label {classes[int(unseen[0])]!r} never occurs in train, so no model "
                                "can learn it; drop those samples or move data into train")
        if len(seen) < 2:
            raise DataError(f"{where}: train holds a single class ({classes[int(seen[0])]!r}); a classifier needs "
                            "at least 2")

    def as_array(self, target: np.ndarray) -> np.ndarray:
        return target.astype(np.int64, copy=False)

    def dim(self, target: np.ndarray) -> int:
        return 0

    def banks(self, arrays: dict[str, SplitArrays], banks, where: str) -> dict[str, np.ndarray]:
        return {}

    def load_banks(self, path: Path) -> dict[str, np.ndarray]:
        return {}

    def complete(self, arrays: dict[str, SplitArrays], banks: dict[str, np.ndarray]) -> None:
        pass  # history classes cannot be derived: a dataset without them loads without them

    def facts(self, ds: Dataset) -> dict:
        return self._counts({s: ds[s].target for s in SPLITS})

    def facts_at(self, path: Path) -> dict:
        targets = {}
        for s in SPLITS:
            with np.load(path / f"{s}.npz", allow_pickle=False) as z:  # reads only the member asked for
                targets[s] = z["target"]
        return self._counts(targets)

    @staticmethod
    def _counts(targets: dict[str, np.ndarray]) -> dict:
        n = 1 + max(int(t.max(initial=0)) for t in targets.values())
        return {"class_counts": {s: np.bincount(t, minlength=n).tolist() for s, t in targets.items()}}

    def describe(self, info: DatasetInfo, facts: dict | None) -> list[str]:
        counts = (facts or {}).get("class_counts")
        out = [f"classes      {len(info.classes)}" + ("  (samples train / val / test)" if counts else "")]
        for i, name in enumerate(info.classes if counts else []):
            out.append(f"  {name:<24} {counts['train'][i]:,} / {counts['val'][i]:,} / {counts['test'][i]:,}")
        return out


class VectorTargets:
    """One float32 vector per sample, and per split a bank of candidate vectors holding every
    target (`target_id` = the target's row in it), which retrieval ranks by cosine."""

    task = "vector"

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        return values.astype(np.float32), None

    def read_column(self, column: pa.ChunkedArray, file: Path, col: str) -> np.ndarray:
        return matrix(column.combine_chunks(), file, col)

    def check_array(self, target: np.ndarray, file: Path, col: str, n: int) -> None:
        if target.ndim != 2 or target.dtype.kind not in "fiu" or len(target) != n:
            raise DataError(f"{file}: array '{col}' must be target vectors [N, Dt] with N = {n}, got {target.dtype} "
                            f"{target.shape}; give one vector per sample")
        check_finite(target, file, col)

    def check_same_dim(self, target: np.ndarray, first: np.ndarray, file: Path, first_file: Path, col: str) -> None:
        if target.shape[1] != first.shape[1]:
            raise DataError(f"{file}: column '{col}' has target vectors of dimension {target.shape[1]}, {first_file} "
                            f"has {first.shape[1]}; all targets need one dimension")

    def refuse_bank(self, bank) -> None:
        pass  # a bank is this task's to take

    def read_bank(self, bank, bank_col: str, target: np.ndarray, targets_named: str) -> dict | None:
        if bank is None:
            return None
        vectors = read_vectors(bank, bank_col, "bank vectors")
        if vectors.shape[1] != target.shape[1]:
            raise DataError(f"{bank}: bank vectors have dimension {vectors.shape[1]}, the targets ({targets_named}) "
                            f"have {target.shape[1]}; give a bank of dimension {target.shape[1]}")
        return {s: vectors for s in SPLITS}

    def event_classes(self, read_labels) -> tuple[None, None]:
        return None, None

    def event_targets(self, label, classes, items, item, targets):
        return (lambda rows: items[item[rows]].astype(np.float32)), None

    def event_banks(self, items: np.ndarray, bank: np.ndarray | None) -> dict[str, np.ndarray]:
        return {s: items if bank is None else bank for s in SPLITS}

    def check(self, splits: dict, classes, where: str) -> None:
        dim = splits["train"].target.shape[1:] if splits["train"].target.ndim == 2 else None
        for s, v in splits.items():
            if v.target.ndim != 2 or v.target.shape[1:] != dim:
                raise DataError(f"{where}: {s}: target vectors must all have one dimension (train has "
                                f"{dim[0] if dim else '?'}); fix the targets")
            if not np.isfinite(v.target).all():
                raise DataError(f"{where}: {s}: target vectors hold NaN or inf; clean or drop those rows")

    def as_array(self, target: np.ndarray) -> np.ndarray:
        return target.astype(np.float32, copy=False)

    def dim(self, target: np.ndarray) -> int:
        return int(target.shape[1])

    def banks(self, arrays: dict[str, SplitArrays], banks, where: str) -> dict[str, np.ndarray]:
        """Each split's bank (given, or its distinct targets); sets each split's target_id."""
        out = {}
        for split, arr in arrays.items():
            given = banks is not None and split in banks
            out[split] = _check_bank(banks[split], arr, split, where) if given else _distinct(arr.target)
            arr.target_id = _rows_in_bank(arr.target, out[split], split, where)
            arr.seq["row"] = history_rows(arr, out[split])
        return out

    def load_banks(self, path: Path) -> dict[str, np.ndarray]:
        return {s: load_npy(path / f"bank_{s}.npy") for s in SPLITS}

    def complete(self, arrays: dict[str, SplitArrays], banks: dict[str, np.ndarray]) -> None:
        """A dataset from before format 2 has no bank rows of its history steps: match them now."""
        for split, arr in arrays.items():
            if "row" not in arr.seq:
                arr.seq["row"] = history_rows(arr, banks[split])

    def facts(self, ds: Dataset) -> dict:
        return {"banks": {s: len(b) for s, b in ds.banks.items()}}

    def facts_at(self, path: Path) -> dict:
        return {"banks": {s: len(np.load(path / f"bank_{s}.npy", mmap_mode="r")) for s in SPLITS}}

    def describe(self, info: DatasetInfo, facts: dict | None) -> list[str]:
        banks = (facts or {}).get("banks")
        return [f"targets      vectors of dimension {info.target_dim}" + (
            "; banks " + " / ".join(f"{k} {v:,}" for k, v in banks.items()) if banks else "")]


KINDS = {k.task: k for k in (CategoryTargets(), VectorTargets())}


def target_kind(task: str, where: str = "--task"):
    """The targets of `task` (category or vector); an unknown task is one clear DataError."""
    if task not in KINDS:
        raise DataError(f"{where}: task {task!r}: use one of {', '.join(KINDS)}")
    return KINDS[task]


def facts_at(path: str | Path, task: str) -> dict:
    """Class counts per split or bank sizes of a dataset on disk, reading only what they need."""
    path = Path(path)
    try:
        return target_kind(task, str(path)).facts_at(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable split files ({exc}); prepare the dataset again") from None


def _distinct(targets: np.ndarray) -> np.ndarray:
    return np.unique(targets, axis=0).astype(np.float32)


def _check_bank(bank: np.ndarray, arr: SplitArrays, split: str, where: str) -> np.ndarray:
    bank = np.asarray(bank, dtype=np.float32)
    if bank.ndim != 2 or bank.shape[1] != arr.target.shape[1]:
        raise DataError(f"{where}: bank for {split}: dimension {bank.shape[1:] if bank.ndim == 2 else bank.shape} "
                        f"differs from the targets' {arr.target.shape[1]}; give a bank of the targets' dimension")
    if not np.isfinite(bank).all():
        raise DataError(f"{where}: bank for {split}: holds NaN or inf")
    return bank


def _rows_in_bank(targets: np.ndarray, bank: np.ndarray, split: str, where: str) -> np.ndarray:
    """Each target's row in the bank (exact match)."""
    row, found = _match(bank, targets)
    if not found.all():
        raise DataError(f"{where}: {split}: {int((~found).sum())} target vectors are not in the bank; "
                        "the bank must hold every target vector (or leave it out to use the targets themselves)")
    return row


def history_rows(arr: SplitArrays, bank: np.ndarray) -> np.ndarray:
    """int64 [N, L]: the bank row + 1 of each history step's vector (exact match), 0 for padding,
    a vector the bank lacks, or the all-zero vector (an unknown place: nothing to point at)."""
    x = arr.seq["vec"]
    real = (np.arange(x.shape[1])[None, :] < arr.lengths[:, None]) & np.any(x != 0, axis=-1)
    out = np.zeros(x.shape[:2], dtype=np.int64)
    if x.shape[-1] == bank.shape[1] and real.any():
        row, found = _match(bank, x[real])
        out[real] = np.where(found, row + 1, 0)
    return out


def _match(bank: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each vector in the bank, whether it is there), vectorised through a byte view."""
    def as_key(a: np.ndarray) -> np.ndarray:  # + 0.0 turns -0.0 into 0.0, which np.unique treats as equal
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float32) + np.float32(0.0))
        return a.view(np.dtype((np.void, a.shape[1] * 4))).ravel()
    keys, first = np.unique(as_key(bank), return_index=True)
    want = as_key(vectors)
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return first[pos].astype(np.int64), keys[pos] == want
