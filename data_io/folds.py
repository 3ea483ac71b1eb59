"""Leakage-free splits by group: grouped split fractions, grouped K-fold ids, and the fold view
of a dataset that the engine's k-fold trains on.

A group (user, chain) is never on both sides of a split or of a fold: the sequences of one
group share places and habits, so seeing some of them in training flatters validation.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from data_io.dataset_types import Dataset, SplitArrays
from data_io.errors import DataError


def check_fractions(val_frac: float, test_frac: float, where: str = "data") -> None:
    if not (0 < val_frac and 0 < test_frac and val_frac + test_frac < 1):
        raise DataError(f"{where}: split fractions val={val_frac} test={test_frac}: need 0 < val, 0 < test and "
                        "val + test < 1 (train gets the rest); set --val-frac / --test-frac, e.g. 0.2 and 0.2")


def grouped_split(groups: np.ndarray, val_frac: float, test_frac: float, seed: int,
                  where: str = "data") -> np.ndarray:
    """0/1/2 = train/val/test per sample; whole groups, in random order, filled up to each
    fraction of the samples (a group goes where the middle of its samples falls), and at least
    one group per split."""
    check_fractions(val_frac, test_frac, where)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < 3:
        raise DataError(f"{where}: {len(uniq)} groups cannot fill train, val and test without a group in two "
                        "splits; add groups or give the splits yourself (--split-col, or one file per split)")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    middle = (np.cumsum(counts[perm]) - counts[perm] / 2) / counts.sum()  # increasing
    n_test = np.clip(np.searchsorted(middle, test_frac), 1, len(uniq) - 2)
    n_val = np.clip(np.searchsorted(middle, test_frac + val_frac), n_test + 1, len(uniq) - 1)
    rank = np.arange(len(uniq))
    label = np.empty(len(uniq), dtype=np.int64)
    label[perm] = np.where(rank < n_test, 2, np.where(rank < n_val, 1, 0))
    return label[inverse]


def grouped_folds(groups: np.ndarray, k: int, seed: int, where: str = "data") -> np.ndarray:
    """Fold id (0..k-1) per sample: every group in exactly one fold, folds balanced by sample
    count (largest group first onto the lightest fold; `seed` breaks ties between equal groups)."""
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if k < 2:
        raise DataError(f"{where}: --folds {k}: cross-validation needs at least 2 folds (0 = no folds)")
    if k > len(uniq):
        raise DataError(f"{where}: --folds {k} needs at least {k} groups, the train and val splits hold "
                        f"{len(uniq)}; lower --folds or add groups")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    order = perm[np.argsort(-counts[perm], kind="stable")]
    load = [(0, f) for f in range(k)]  # (samples so far, fold): a heap, lightest fold first
    fold_of = np.empty(len(uniq), dtype=np.int64)
    for g in order:  # one step per group, not per sample
        n, f = heapq.heappop(load)
        fold_of[g] = f
        heapq.heappush(load, (n + int(counts[g]), f))
    return fold_of[inverse]


def fold_view(ds: Dataset, fold: int) -> Dataset:
    """Fold `fold` of the grouped CV: train = train + val samples of the other folds, val = the
    samples of this fold, test unchanged. The vector task's train and val share one bank (the
    union of the train and val banks), so every fold is scored against the same candidates."""
    k = ds.info.n_folds
    if k < 2 or ds["train"].fold is None or ds["val"].fold is None:
        raise DataError(f"{ds.path or ds.info.name}: the dataset has no grouped folds; prepare it with --folds K")
    if not 0 <= fold < k:
        raise DataError(f"{ds.path or ds.info.name}: fold {fold} does not exist; the dataset has folds 0..{k - 1}")
    pool = _concat(ds["train"], ds["val"])
    banks = dict(ds.banks)
    if "train" in ds.banks:
        bank, new_row = _union_bank(ds.banks["train"], ds.banks["val"])
        offset = len(ds.banks["train"])  # val's rows follow train's in the concatenation new_row maps
        pool.target_id = new_row[np.concatenate([ds["train"].target_id, ds["val"].target_id + offset])]
        if "row" in pool.seq:  # history steps' bank rows + 1 (0 = none), moved to the union bank
            n_train, hist = len(ds["train"]), pool.seq["row"]
            shifted = np.where(np.arange(len(hist))[:, None] < n_train, hist - 1, hist - 1 + offset)
            pool.seq["row"] = np.where(hist > 0, new_row[np.maximum(shifted, 0)] + 1, 0)
        banks["train"] = banks["val"] = bank
    inside = pool.fold == fold
    splits = {"train": _take(pool, ~inside), "val": _take(pool, inside), "test": ds["test"]}
    info = dataclasses.replace(ds.info, split_sizes={s: len(a) for s, a in splits.items()})
    return Dataset(info, splits, ds.path, banks)


def group_subset(ds: Dataset, fraction: float, seed: int, splits: tuple[str, ...] = ("train",)) -> Dataset:
    """`ds` with each of `splits` cut to about `fraction` of its samples: the same share of every
    group's (user's) samples, at least one each, drawn by `seed`, in their stored order. Every
    group stays, so a model trained on the subset still meets every user embedding."""
    if not 0 < fraction <= 1:
        raise DataError(f"{ds.path or ds.info.name}: subset fraction {fraction}: use a value in (0, 1]")
    if fraction == 1:
        return ds
    cut = {name: _take(ds[name], _group_rows(ds[name].user, fraction, seed)) for name in splits}
    out = {**ds.splits, **cut}
    info = dataclasses.replace(ds.info, split_sizes={s: len(a) for s, a in out.items()})
    return Dataset(info, out, ds.path, dict(ds.banks))


def _group_rows(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted rows: ceil(fraction x n) random ones of each group of n (vectorised: a random key,
    rows ordered by group then key, the first ones of each group kept)."""
    key = np.random.default_rng(seed).random(len(groups))
    order = np.lexsort((key, groups))
    _, start, counts = np.unique(groups[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(start, counts)
    keep = rank < np.repeat(np.ceil(fraction * counts).astype(np.int64), counts)
    return np.sort(order[keep])


def _concat(a: SplitArrays, b: SplitArrays) -> SplitArrays:
    width = {k: max(a.seq[k].shape[1], b.seq[k].shape[1]) for k in a.seq}
    pad = lambda v, w: np.pad(v, [(0, 0), (0, w - v.shape[1])] + [(0, 0)] * (v.ndim - 2))
    both = lambda name: np.concatenate([getattr(a, name), getattr(b, name)])
    seq = {k: np.concatenate([pad(a.seq[k], w), pad(b.seq[k], w)]) for k, w in width.items()}
    target_id = None if a.target_id is None else both("target_id")
    return SplitArrays(both("sample_id"), both("user"), both("target"), both("lengths"), seq, target_id, both("fold"))


def _take(s: SplitArrays, rows: np.ndarray) -> SplitArrays:
    lengths = s.lengths[rows]
    width = max(1, int(lengths.max(initial=0)))  # trimmed to the split's own longest history
    return SplitArrays(s.sample_id[rows], s.user[rows], s.target[rows], lengths,
                       {k: np.ascontiguousarray(v[rows, :width]) for k, v in s.seq.items()},
                       None if s.target_id is None else s.target_id[rows], None if s.fold is None else s.fold[rows])


def _union_bank(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One bank for train + val, and the row in it of each row of the two banks concatenated."""
    if np.array_equal(train, val):  # the usual case (e.g. all item vectors): keep the rows as they are
        return train, np.r_[np.arange(len(train)), np.arange(len(val))]
    bank, row = np.unique(np.concatenate([train, val]), axis=0, return_inverse=True)
    return bank, row.ravel()
