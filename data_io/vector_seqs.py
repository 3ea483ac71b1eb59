"""Datasets of given per-step vectors (the category and vector tasks): in-memory construction,
validation and the candidate banks for retrieval.

A split is a right-padded float32 cube x [N, L, D] with lengths, a group code per sample (the
user / chain, for leakage-free splits and an optional group embedding), and a target: a class
id (category) or a vector (vector task, with the row of that vector in the split's bank).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from data_io.dataset_types import SPLITS, Dataset, DatasetInfo, SplitArrays
from data_io.errors import DataError
from data_io.folds import check_fractions, grouped_folds, grouped_split
from data_io.targets import target_kind

SPLIT_BY = ("group", "time")


@dataclass
class VectorSamples:
    """One split before tensorising (see the module docstring)."""

    x: np.ndarray  # float32 [N, L, D], right-padded with zeros
    lengths: np.ndarray  # int64 [N], >= 1
    group: np.ndarray  # int64 [N], group codes >= 1
    target: np.ndarray  # int64 [N] class ids, or float32 [N, Dt]
    fold: np.ndarray | None = None  # int64 [N] grouped CV fold (train / val only)
    sample_id: np.ndarray | None = None  # int64 [N], e.g. the input row (default 0..N-1)
    history_class: np.ndarray | None = None  # category: int64 [N, L] class + 1 of each step, 0 = unknown / padding

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass(frozen=True)
class VectorParams:
    """How samples are cut from events and split. `split_by`: "group" puts whole groups in
    train / val / test (leakage-free); "time" splits each group's events in time order (the
    Geolife-style protocol: first 60% / next 20% / last 20% with the default fractions), and a
    history holds events of its target's split only."""

    window: int = 20  # longest history, in events before the target
    stride: int = 1  # every stride-th eligible target of a group (1 = all)
    min_history: int = 1  # targets need at least this many earlier events of their group and split
    split_by: str = "group"
    val_frac: float = 0.2
    test_frac: float = 0.2
    folds: int = 0  # grouped K-fold over train + val (0 = none)
    seed: int = 0

    def check(self, where: str = "options") -> None:
        if self.split_by not in SPLIT_BY:
            raise DataError(f"{where}: --split-by {self.split_by!r}: use one of {', '.join(SPLIT_BY)}")
        for key in ("window", "stride", "min_history"):
            if getattr(self, key) < 1:
                raise DataError(f"{where}: --{key.replace('_', '-')} {getattr(self, key)} must be >= 1")
        if self.min_history > self.window:
            raise DataError(f"{where}: --min-history {self.min_history} exceeds --window {self.window}; "
                            "lower --min-history or raise --window")
        if self.folds < 0:
            raise DataError(f"{where}: --folds {self.folds} must be >= 2 (or 0 for no folds)")
        check_fractions(self.val_frac, self.test_frac, where)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Events:
    """An events table as numpy columns, in input order (the row number becomes the sample id)."""

    group: np.ndarray  # int64 group codes >= 1
    time: np.ndarray  # sortable time or order number; ties keep the input order
    item: np.ndarray  # int64 row of each event's item in the item vectors
    label: np.ndarray | None = None  # category task: int64 class id per event, indexing `classes`

    def __len__(self) -> int:
        return len(self.group)


def vector_dataset(name: str, task: str, splits: dict[str, VectorSamples], *, classes: list[str] | None = None,
                   banks: dict[str, np.ndarray] | None = None, n_folds: int = 0, params: dict | None = None,
                   source: dict | None = None, where: str = "data") -> Dataset:
    """Check the splits and build the Dataset that models and the sweep consume. `banks`
    (vector task) defaults to the distinct target vectors of each split. `where` names the
    input in error messages."""
    kind = target_kind(task, where)
    _check_inputs(splits, where)
    kind.check(splits, classes, where)
    max_hist = int(splits["train"].lengths.max())  # train only: val/test must not size the model
    arrays = {k: _split_arrays(v, max_hist, kind) for k, v in splits.items()}
    out_banks = kind.banks(arrays, banks, where)
    first = splits["train"]
    classes_known = first.history_class is not None
    n_groups = int(max(int(s.group.max()) for s in splits.values()))
    params = params or {}
    info = DatasetInfo(
        name=name, n_locations=len(classes or []), n_users=n_groups + 1,
        cardinalities={"user": n_groups + 1, "position": max_hist},
        split_sizes={k: len(v) for k, v in splits.items()}, max_history=max_hist, params=params,
        source=source or {}, task=task, input_dim=int(first.x.shape[2]),
        target_dim=kind.dim(first.target),
        classes=list(classes or []), n_folds=n_folds, history_classes=classes_known)
    info.fingerprint = fingerprint(arrays, out_banks, params, info.classes)
    return Dataset(info, arrays, banks=out_banks)


def _check_inputs(splits: dict[str, VectorSamples], where: str) -> None:
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise DataError(f"{where}: no {missing[0]} split; every dataset needs train, val and test")
    dims = {s: v.x.shape[2] if v.x.ndim == 3 else None for s, v in splits.items()}
    for s, v in splits.items():
        if len(v) == 0:
            raise DataError(f"{where}: the {s} split is empty; add data or change the split fractions")
        if v.x.ndim != 3 or dims[s] != dims["train"]:
            raise DataError(f"{where}: {s}: input vectors must all have one dimension D (train has {dims['train']}, "
                            f"{s} has {dims[s]}); fix the vectors")
        if not np.isfinite(v.x).all():
            raise DataError(f"{where}: {s}: input vectors hold NaN or inf; clean or drop those rows")
        if (v.lengths < 1).any():
            raise DataError(f"{where}: {s}: empty sequences; every sample needs at least one step")
        if (v.group < 1).any():
            raise DataError(f"{where}: {s}: group codes must be >= 1 (0 is reserved)")
        _check_history_class(v, splits["train"].history_class is not None, s, where)


def _check_history_class(v: VectorSamples, expected: bool, split: str, where: str) -> None:
    if (v.history_class is not None) != expected:
        raise DataError(f"{where}: {split}: history classes are given for some splits only; give them for all or none")
    if v.history_class is not None and (v.history_class.shape[:2] != v.x.shape[:2] or v.history_class.min() < 0):
        raise DataError(f"{where}: {split}: history classes must be int [N, L] like the inputs' steps, class + 1 "
                        "(0 = unknown)")


def _split_arrays(v: VectorSamples, max_hist: int, kind) -> SplitArrays:
    """Tensorised split; histories longer than train's longest keep their most recent steps."""
    lengths = np.minimum(v.lengths.astype(np.int64), max_hist)
    width = max(1, int(lengths.max()))
    x = np.array(v.x[:, :width], dtype=np.float32)  # the one copy of the cube
    cut = np.flatnonzero(v.lengths > max_hist)
    if len(cut):  # only the too-long rows move: a gather over all rows costs a second cube
        cols = (v.lengths[cut] - max_hist)[:, None] + np.arange(width)[None, :]
        x[cut] = np.take_along_axis(v.x[cut], cols[:, :, None], axis=1)
    x[np.arange(width)[None, :] >= lengths[:, None]] = 0  # padding is zero whatever the input held
    seq = {"vec": x}
    if v.history_class is not None:
        seq["cls"] = _latest_steps(v.history_class.astype(np.int64), v.lengths, lengths, cut, max_hist)
    target = kind.as_array(v.target)
    sample_id = np.arange(len(v), dtype=np.int64) if v.sample_id is None else v.sample_id.astype(np.int64)
    return SplitArrays(sample_id, v.group.astype(np.int64), target, lengths,
                       seq, fold=None if v.fold is None else v.fold.astype(np.int64))


def _latest_steps(a: np.ndarray, full: np.ndarray, lengths: np.ndarray, cut: np.ndarray, max_hist: int) -> np.ndarray:
    """[N, L] per-step codes cut as the input cube is: the latest max_hist steps, padding 0."""
    width = max(1, int(lengths.max()))
    out = np.array(a[:, :width])
    if len(cut):
        out[cut] = np.take_along_axis(a[cut], (full[cut] - max_hist)[:, None] + np.arange(width)[None, :], axis=1)
    out[np.arange(width)[None, :] >= lengths[:, None]] = 0
    return out


def fingerprint(arrays: dict[str, SplitArrays], banks: dict[str, np.ndarray], params: dict,
                 classes: list[str] = ()) -> str:
    """sha256 over the arrays, banks, class names and parameters; the folds count too, since they
    decide which samples each CV model sees."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    if classes:
        digest.update(json.dumps(list(classes)).encode())
    for split in SPLITS:
        a = arrays[split]
        fields = (("x", a.seq["vec"]), ("lengths", a.lengths), ("group", a.user), ("target", a.target),
                  ("fold", a.fold), ("cls", a.seq.get("cls")))
        for key, value in fields:
            if value is None:
                continue
            digest.update(f"{split}/{key}".encode())
            digest.update(np.ascontiguousarray(value).view(np.uint8))  # the buffer itself: no byte copy
        if split in banks:
            digest.update(np.ascontiguousarray(banks[split]).view(np.uint8))
    return digest.hexdigest()


def take(v: VectorSamples, rows: np.ndarray) -> VectorSamples:
    pick = lambda a: None if a is None else a[rows]
    return VectorSamples(v.x[rows], v.lengths[rows], v.group[rows], v.target[rows], pick(v.fold), pick(v.sample_id),
                         pick(v.history_class))


def add_folds(splits: dict[str, VectorSamples], k: int, seed: int, where: str = "data") -> None:
    """Grouped K-fold ids over train + val, stored on both splits (a group keeps one fold)."""
    if not k:
        return
    fold = grouped_folds(np.concatenate([splits["train"].group, splits["val"].group]), k, seed, where)
    splits["train"].fold, splits["val"].fold = fold[:len(splits["train"])], fold[len(splits["train"]):]


def events_dataset(name: str, task: str, events: Events, items: np.ndarray, params: VectorParams, *,
                   classes: list[str] | None = None, bank: np.ndarray | None = None, source: dict | None = None,
                   where: str = "events") -> Dataset:
    """Sliding windows over each group's events in time order: the history is up to `window`
    item vectors before the target event, the target is that event's class (category) or item
    vector (vector task; the bank is every item vector unless `bank` is given)."""
    params.check(where)
    kind = target_kind(task, where)
    order = np.lexsort((events.time, events.group))  # stable: ties keep the input order
    group, item = events.group[order], events.item[order]
    split = _event_splits(group, params, where)
    pos = np.arange(len(group)) - _run_start(group, split)  # earlier events of the same group and split
    targets = np.flatnonzero((pos >= params.min_history) & ((pos - params.min_history) % params.stride == 0))
    if len(targets) == 0:
        raise DataError(f"{where}: no sample: no group has more than --min-history {params.min_history} events "
                        "in one split; lower --min-history or add data")
    label = None if events.label is None else events.label[order]
    try:
        target_of, target_classes = kind.event_targets(label, classes, items, item, targets)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    step_class = None if label is None or not target_classes else _class_codes(classes, target_classes)[label]
    classes = target_classes
    splits = {}
    for i, s in enumerate(SPLITS):
        t = targets[split[targets] == i]
        lengths = np.minimum(pos[t], params.window)
        splits[s] = VectorSamples(_histories(items, item, t, lengths), lengths, group[t], target_of(t),
                                  sample_id=order[t], history_class=_step_values(step_class, t, lengths))
    add_folds(splits, params.folds, params.seed, where)
    return vector_dataset(name, task, splits, classes=classes, banks=kind.event_banks(items, bank), n_folds=params.folds,
                          params=params.to_dict(), source=source, where=where)


def _event_splits(group: np.ndarray, params: VectorParams, where: str) -> np.ndarray:
    """0/1/2 per event (sorted by group, time): whole groups, or each group's first / middle / last events."""
    if params.split_by == "group":
        return grouped_split(group, params.val_frac, params.test_frac, params.seed, where)
    start = _run_start(group, np.zeros_like(group))
    size = np.bincount(start, minlength=len(group))[start]  # events of the row's group
    share = (np.arange(len(group)) - start) / size
    train_frac = 1 - params.val_frac - params.test_frac
    return np.where(share < train_frac, 0, np.where(share < train_frac + params.val_frac, 1, 2))


def _run_start(group: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Row of the first event of each row's (group, split) run: histories never cross it, as in
    the location protocol (a val target's history holds val events only)."""
    new = np.r_[True, (group[1:] != group[:-1]) | (split[1:] != split[:-1])]
    return np.maximum.accumulate(np.where(new, np.arange(len(group)), 0))


def _class_codes(names: list[str], kept: list[str]) -> np.ndarray:
    """Event class id -> its target class + 1 (0 where no target has that class: unknown)."""
    index = {name: i + 1 for i, name in enumerate(kept)}
    return np.array([index.get(n, 0) for n in names], dtype=np.int64)


def _step_values(values: np.ndarray | None, targets: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Right-padded [N, L] of an event column over the `lengths` events before each target row."""
    if values is None:
        return None
    steps = np.arange(max(1, int(lengths.max(initial=0))))
    mask = steps[None, :] < lengths[:, None]
    out = np.zeros((len(targets), len(steps)), dtype=np.int64)
    out[mask] = values[((targets - lengths)[:, None] + steps)[mask]]
    return out


def _histories(items: np.ndarray, item: np.ndarray, targets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Right-padded [N, L, D] cube of the `lengths` item vectors before each target row."""
    steps = np.arange(max(1, int(lengths.max(initial=0))))
    mask = steps[None, :] < lengths[:, None]
    x = np.zeros((len(targets), len(steps), items.shape[1]), dtype=np.float32)
    x[mask] = items[item[((targets - lengths)[:, None] + steps)[mask]]]
    return x
