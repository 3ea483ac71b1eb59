"""Staypoints -> next-location samples: per-user chronological split, train-only location
encoding, and a history window of previous days. Fully vectorised (no per-row Python).

Each sample is one target stay; its history is every earlier stay of the same user and split
that started at most `window_days` days before the target's day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_io.dataset_types import SPLITS
from data_io.errors import DataError
from data_io.tables import Staypoints

SEQ_FEATURES = ("loc", "weekday", "tod", "dur", "days_before")
PAD, UNSEEN = 0, 1


@dataclass(frozen=True)
class PrepareParams:
    train_frac: float = 0.6
    val_frac: float = 0.2
    window_days: int = 7
    min_history: int = 3
    duration_cap: int = 2879  # minutes: 2 days - 1 min, as in the Geolife protocol
    tod_minutes: int = 15  # time-of-day slot width
    dur_minutes: int = 30  # duration bucket width

    def check(self) -> None:
        if not (0 < self.train_frac < 1 and 0 < self.val_frac < 1 and self.train_frac + self.val_frac < 1):
            raise DataError(
                f"split fractions train={self.train_frac} val={self.val_frac}: need 0 < train, 0 < val "
                "(training selects epochs on validation) and train + val < 1 (test gets the rest); "
                "set --train-frac / --val-frac, e.g. 0.6 and 0.2"
            )
        for key in ("window_days", "min_history", "duration_cap", "tod_minutes", "dur_minutes"):
            if getattr(self, key) < (0 if key == "min_history" else 1):
                raise DataError(f"option {key}={getattr(self, key)} must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Samples:
    """One split as flat numpy columns: scalars per sample and the histories concatenated."""

    sample_id: np.ndarray  # staypoint id of the target
    user: np.ndarray  # encoded user (1..U)
    target: np.ndarray  # encoded location class
    offsets: np.ndarray  # [N + 1]: history of sample i is rows offsets[i]:offsets[i+1]
    seq: dict[str, np.ndarray]  # each flat, one value per history record
    history_rows: np.ndarray | None = None  # flat, the row of each history record in the time-sorted staypoints

    def __len__(self) -> int:
        return len(self.target)


def _encode(values: np.ndarray, vocab: np.ndarray, first: int) -> np.ndarray:
    """Map values to first + index in sorted `vocab`; values missing from it map to UNSEEN."""
    pos = np.searchsorted(vocab, values)
    pos = np.minimum(pos, len(vocab) - 1)
    found = vocab[pos] == values
    return np.where(found, pos + first, UNSEEN).astype(np.int64)


def split_labels(sp: Staypoints, params: PrepareParams) -> np.ndarray:
    """0/1/2 = train/val/test by each user's tracked days. Days count from the user's first day,
    since day numbers may have any origin (e.g. days since 1970)."""
    users, inverse = np.unique(sp.user, return_inverse=True)
    first = np.full(len(users), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, sp.day)
    day = sp.day - first[inverse]
    span = np.zeros(len(users), dtype=np.int64)
    np.maximum.at(span, inverse, day)
    mday = span[inverse].astype(np.float64)
    return np.where(
        day < params.train_frac * mday, 0, np.where(day < (params.train_frac + params.val_frac) * mday, 1, 2)
    )


def _windows(user: np.ndarray, day: np.ndarray, window: int) -> np.ndarray:
    """For rows sorted by (user, day): index of the first row of the same user with day >= day - window."""
    span = int(day.max()) + window + 2
    key = user.astype(np.int64) * span + day
    return np.searchsorted(key, key - window, side="left")


def build_split(sp: Staypoints, rows: np.ndarray, loc_code: np.ndarray, user_code: np.ndarray,
                params: PrepareParams, valid: np.ndarray | None) -> Samples:
    """Samples of one split; `rows` index the sorted staypoints that belong to it, in order."""
    if len(rows) == 0:  # a split with no stays has no samples (build_samples then says so)
        empty = np.zeros(0, dtype=np.int64)
        return Samples(empty, empty, empty, np.zeros(1, dtype=np.int64), {k: empty for k in SEQ_FEATURES})
    user, day = user_code[rows], sp.day[rows]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    first_day = np.repeat(day[starts], np.diff(np.r_[starts, len(rows)]))
    lo = _windows(user, day, params.window_days)
    hist_len = np.arange(len(rows)) - lo
    keep = (day - first_day >= params.window_days) & (hist_len >= max(params.min_history, 1))
    if valid is not None:
        keep &= valid[rows]
    targets = np.flatnonzero(keep)
    lengths = hist_len[targets]
    offsets = np.r_[0, np.cumsum(lengths)]
    # Flat index of every history record: lo[t], lo[t] + 1, ..., t - 1 for each target t.
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    hist = rows[np.repeat(lo[targets], lengths) + within]
    target_rows = rows[targets]
    duration = np.minimum(sp.duration[hist], params.duration_cap)
    seq = {
        "loc": loc_code[hist],
        "weekday": sp.weekday[hist],
        "tod": sp.minute[hist] // params.tod_minutes,
        "dur": (duration // params.dur_minutes).astype(np.int64),
        "days_before": np.repeat(sp.day[target_rows], lengths) - sp.day[hist],
    }
    return Samples(sp.id[target_rows], user_code[target_rows], loc_code[target_rows], offsets, seq, hist)


def build_samples(sp: Staypoints, params: PrepareParams, valid_ids: np.ndarray | None = None,
                  source: Path | str = "table") -> tuple[dict[str, Samples], dict]:
    """All three splits plus the vocabulary facts that go into DatasetInfo."""
    params.check()
    order = np.lexsort((sp.minute, sp.day, sp.user))  # stable: ties keep file order
    sp = Staypoints(*(getattr(sp, f)[order] for f in ("id", "user", "location", "day", "minute", "weekday", "duration")))
    valid = None
    if valid_ids is not None:
        valid = np.isin(sp.id, valid_ids)
        if not valid.any():
            raise DataError(
                f"{source}: no id in the --valid-ids file matches a staypoint id; "
                "check that both files come from the same dataset and that --id-col names the id column"
            )
    label = split_labels(sp, params)
    train_locs = np.unique(sp.location[label == 0])
    loc_code = _encode(sp.location, train_locs, first=2)
    users = np.unique(sp.user)
    user_code = _encode(sp.user, users, first=1)
    splits = {name: build_split(sp, np.flatnonzero(label == i), loc_code, user_code, params, valid)
              for i, name in enumerate(SPLITS)}
    check_not_empty(splits, params, source)
    vocab = {"n_locations": len(train_locs) + 2, "n_users": len(users) + 1}
    return splits, vocab


def check_not_empty(splits: dict[str, Samples], params: PrepareParams, source: Path | str) -> None:
    """Every split needs samples: training fits, validation selects epochs, test reports."""
    if len(splits["train"]) == 0:
        raise DataError(
            f"{source}: no training sample: every stay lacks {params.window_days} days of history or "
            f"{params.min_history} previous stays; lower --window-days / --min-history or add data"
        )
    more = {"val": "raise --val-frac", "test": "lower --train-frac / --val-frac"}
    for name, fix in more.items():
        if len(splits[name]) == 0:
            raise DataError(
                f"{source}: no {name} sample (train={params.train_frac}, val={params.val_frac}): a sample "
                f"needs {params.window_days} earlier days of its own split; {fix}, lower --window-days or add data"
            )
