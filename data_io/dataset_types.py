"""The types every data kind shares, and `dataset.json`: the split names, `DatasetInfo` (what
a dataset says about itself), `SplitArrays` (one tensorised split), `Dataset`, and `read_info`.

Their own module, below every format and reader, so the location format (`dataset`), the
vector kinds (`vector_seqs`, `vector_seq_files`, `targets`), folds and batches all import the types from
one place without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data_io.errors import DataError

SPLITS = ("train", "val", "test")
# 2: category datasets may carry each history step's class (seq "cls", history_classes); the
# vector task's bank row of each history step (seq "row") is stored. Version 1 still reads.
FORMAT_VERSION = 2
READS = (1, 2)
INFO_FILE = "dataset.json"


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
    # The task's data kind (see data_io.kinds, models/tasks): "location" (ids + context codes, the
    # fields above), or "category" / "vector" (sequences of given D-dim vectors, seq = {"vec": ...}).
    task: str = "location"
    input_dim: int = 0  # category / vector: D of each input step
    target_dim: int = 0  # vector: dimension of the target vectors
    classes: list[str] = field(default_factory=list)  # category: label of each class id
    n_folds: int = 0  # grouped cross-validation folds over train + val (0 = none)
    history_classes: bool = False  # category: each history step's class is known (seq "cls": class + 1, 0 = unknown)

    @property
    def n_classes(self) -> int:
        """The task's target classes (locations, categories; 0 for vector targets), whatever the
        kind: the neutral name of `n_locations`."""
        return self.n_locations

    @property
    def n_groups(self) -> int:
        """Users or groups (the user / group embedding rows less the padding row)."""
        return self.n_users - 1

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
    # each [N, L] (codes), or {"vec": float32 [N, L, D]} plus, for the vector kinds, "cls"
    # (category: class + 1 of each step, 0 = unknown) or "row" (vector: bank row + 1, 0 = none)
    seq: dict[str, np.ndarray]
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
    if info.format_version not in READS:
        raise DataError(f"{info_file}: format version {info.format_version}, this nextsweep reads "
                        f"{', '.join(map(str, READS))}; prepare the dataset again")
    return info  # its task is checked against the registered kinds by data_io.kinds.read_info
