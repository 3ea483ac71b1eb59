"""Length-bucketed batches over a tensorised split, with no per-sample Python.

Training order: shuffle by seed, sort by length inside windows of `bucket_batches` batches,
cut into batches, shuffle the batches. Each batch is trimmed to its own longest history, so
little padding is computed while the order stays random. Tensors share memory with the numpy
gathers (torch.from_numpy), so a batch costs one fancy-index per feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from data_io.dataset_types import SplitArrays


@dataclass
class Batch:
    index: torch.Tensor  # [B] row of each sample in the split
    user: torch.Tensor  # [B]
    target: torch.Tensor  # [B]
    lengths: torch.Tensor  # [B]
    seq: dict[str, torch.Tensor]  # each [B, T] (or [B, T, D]), right-padded, T = longest in the batch
    target_id: torch.Tensor | None = None  # vector task: the target's row in the bank

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device) -> "Batch":
        if device.type == "cpu":
            return self
        move = lambda t: t.to(device, non_blocking=True)
        return Batch(move(self.index), move(self.user), move(self.target), move(self.lengths),
                     {k: move(v) for k, v in self.seq.items()},
                     None if self.target_id is None else move(self.target_id))


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                bucket_batches: int = 50, sample: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of each batch. `rng=None` gives a fixed order sorted by length (evaluation).
    `sample` overrides the rows to use (e.g. drawn by a class-balanced sampler)."""
    rows = np.arange(len(lengths)) if sample is None else np.asarray(sample)
    if rng is None:
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    rows = rows[rng.permutation(len(rows))]
    window = batch_size * bucket_batches
    for start in range(0, len(rows), window):
        chunk = rows[start:start + window]
        rows[start:start + window] = chunk[np.argsort(lengths[chunk], kind="stable")]
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(split: SplitArrays, rows: np.ndarray) -> Batch:
    width = int(split.lengths[rows].max())
    seq = {k: torch.from_numpy(v[rows, :width]) for k, v in split.seq.items()}
    target_id = None if split.target_id is None else torch.from_numpy(split.target_id[rows])
    return Batch(torch.from_numpy(rows), torch.from_numpy(split.user[rows]),
                 torch.from_numpy(split.target[rows]), torch.from_numpy(split.lengths[rows]), seq, target_id)


def iter_batches(split: SplitArrays, batch_size: int, seed: int | None = None,
                 sample: np.ndarray | None = None) -> Iterator[Batch]:
    """Shuffled bucketed batches when `seed` is given, else a fixed length-sorted order."""
    rng = None if seed is None else np.random.default_rng(seed)
    for rows in batch_order(split.lengths, batch_size, rng, sample=sample):
        yield make_batch(split, rows)


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """Share of the computed cells (batch size x longest history, summed) that are padding."""
    cells = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(sum(int(lengths[b].sum()) for b in batches)) / cells
