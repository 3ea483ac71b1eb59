"""What a task is: its inputs, its head, the losses and metrics it allows, its default objective.

The engine, `count_params`, the space checks and retrain only call this base; each task lives in
one file beside it (location.py, category.py, vector.py). A fourth task is one more Task
(registered with `models.tasks.register_task`) plus its data kind (`data_io.register_kind`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from data_io.batches import Batch, iter_batches
from data_io.folds import fold_view
from models.class_copy import CLASS_KEYS
from models.config import FAMILIES, ModelConfig, ModelError, TrainConfig
from models.metrics import RankMetrics

LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]  # (model output, batch) -> scalar loss


class Task(ABC):
    name: str
    losses: tuple[str, ...]  # TrainConfig.loss values this task trains with
    metrics: tuple[str, ...]  # the val_* metrics it reports (any can be the objective)
    minimized: tuple[str, ...] = ()  # those of its metrics that are better lower (val_loss always is)
    objective: str  # the default objective
    default_loss: str  # the loss when a space does not choose one
    families: tuple[str, ...] = tuple(f for f in FAMILIES if f != "pointer")
    balanced_sampler: bool = True  # class targets, so the class-balanced sampler means something
    ties_head: bool = False  # has an input embedding of its targets that tied_head=True can share
    copies_history: bool = False  # its model can copy a history vector (copy=True)
    reads_history_classes: bool = False  # its model can read each history step's class (CLASS_KEYS)
    reads_vectors: bool = False  # its inputs are given vectors (unknown_flag marks the all-zero ones)
    metric_labels: dict[str, str] = {}  # printed names of its metrics where they differ from the usual (retrain)

    def check_model(self, mcfg: ModelConfig) -> None:
        """A model this task can build, or a ModelError naming the key, the value and the fix."""
        if mcfg.family not in self.families:
            raise self._refuse("family", mcfg.family, self.families)
        if mcfg.tied_head and not self.ties_head:
            raise ModelError("tied_head=True: only the location task has an input embedding to tie to; set it false")
        if mcfg.copy and not self.copies_history:
            raise ModelError(f"copy=True: only the vector task copies history vectors (the location task's copy is "
                             f"family pointer); set it false for the {self.name} task")
        if mcfg.bank_pointer and not self.copies_history:
            raise ModelError(f"bank_pointer=True: only the vector task points over a candidate bank; set it false for "
                             f"the {self.name} task")
        if mcfg.unknown_flag and not self.reads_vectors:
            raise ModelError(f"unknown_flag=True: only tasks with vector inputs mark unknown (all-zero) steps; set it "
                             f"false for the {self.name} task")
        for key in CLASS_KEYS:
            if getattr(mcfg, key) and not self.reads_history_classes:
                raise ModelError(f"{key}=True: only the category task reads the history's classes; "
                                 f"set it false for the {self.name} task")

    def check_train(self, tcfg: TrainConfig) -> None:
        """Training settings this task allows."""
        if tcfg.loss not in self.losses:
            raise self._refuse("loss", tcfg.loss, self.losses)
        if tcfg.metric not in self.metrics:
            raise self._refuse("metric", tcfg.metric, self.metrics)
        if tcfg.sampler == "balanced" and not self.balanced_sampler:
            raise self._refuse("sampler", tcfg.sampler, ("uniform",))
        if tcfg.novel_target and not self.copies_history:
            raise ModelError(f"novel_target=True: only the vector task's bank pointer predicts a new place; set it "
                             f"false for the {self.name} task")

    def _refuse(self, key: str, value, allowed) -> ModelError:
        return ModelError(f"{key}={value!r}: not available for the {self.name} task; use one of {', '.join(allowed)}")

    @abstractmethod
    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        """The model: forward(seq, user, lengths) -> this task's output."""

    @abstractmethod
    def loss(self, tcfg: TrainConfig, data: Dataset) -> LossFn:
        """The training loss; anything fitted from data (class weights, the candidate bank) comes
        from data['train'] only."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Dataset, split: str, loss: LossFn | None,
                 batch_size: int = 512) -> dict[str, float]:
        """The metrics (names without the val_ prefix) of `model` on one split."""

    @abstractmethod
    def top_k(self, model: nn.Module, data: Dataset, split: str, k: int, batch_size: int = 512) -> dict[str, np.ndarray]:
        """The k best predictions per sample of one split, best first, in this task's own terms:
        {"target": [N], "pred": [N, k], "score": float [N, k]} (for `nextsweep predict`)."""

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """One output from several models' outputs for the same batch (a k-fold fit's fold models
        served as one): the mean of their probabilities, as log-probabilities."""
        return torch.logsumexp(torch.stack(outs), 0) - math.log(len(outs))

    def details(self, model: nn.Module, data: Dataset, split: str) -> dict:
        """Extra per-split figures for export and retrain (e.g. per-class precision/recall)."""
        return {}

    def class_targets(self, split: SplitArrays) -> np.ndarray | None:
        """Class ids the balanced sampler weighs, or None."""
        return split.target if self.balanced_sampler else None

    def baselines(self, data: Dataset, folds: int = 0) -> dict[str, dict[str, float]]:
        """Reference predictors that need no search, fitted on the train split and scored on the
        validation split with the models' own metric code: {name: {"val_<metric>": value}}. With
        `folds` > 1, fitted and scored on each grouped CV fold and averaged, as a trial's objective is."""
        views = [fold_view(data, f) for f in range(folds)] if folds else [data]
        if any(len(v["val"]) == 0 for v in views):
            raise ModelError("the validation split is empty: nothing to score the baselines (or trials) on; "
                             "prepare the data with a validation fraction > 0")
        per_view = [self.reference_scores(view) for view in views]
        return {name: {f"val_{k}": float(np.mean([v[name][k] for v in per_view])) for k in scores
                       if f"val_{k}" in self.metrics}  # the keys a trial's best_metrics has
                for name, scores in per_view[0].items()}

    def baselines_on(self, data: Dataset, split: str = "test") -> dict[str, dict[str, float]]:
        """The baselines fitted on train and scored on `split` (no val_ prefix): the bar beside a
        retrained model's test figures."""
        pick = {"train": "train", "val": split, "test": split}
        view = Dataset(data.info, {k: data[s] for k, s in pick.items()}, data.path,
                       {k: data.banks[s] for k, s in pick.items() if s in data.banks})
        return self.reference_scores(view)

    @abstractmethod
    def reference_scores(self, data: Dataset) -> dict[str, dict[str, float]]:
        """This task's baselines fitted on data['train'], their metrics (no val_ prefix) on data['val']."""


def check_k(k: int, n: int, what: str) -> None:
    if not 1 <= k <= n:
        raise ModelError(f"top-k {k}: must be between 1 and the {n} {what}; choose a smaller --top-k")


def class_top_k(model: nn.Module, split: SplitArrays, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(class ids [N, k], log-probabilities [N, k]) of the k most likely classes, best first."""
    rows, ids, scores = [], [], []
    for logp, b in outputs(model, split, batch_size):
        top = logp.topk(k, dim=1)
        rows.append(b.index)
        ids.append(top.indices)
        scores.append(top.values.float())
    return split_order(rows, ids), split_order(rows, scores)


def split_order(rows: list[torch.Tensor], parts: list[torch.Tensor]) -> np.ndarray:
    """Per-batch results back in the split's row order (evaluation batches come sorted by length)."""
    values = torch.cat(parts).cpu().numpy()
    out = np.empty_like(values)
    out[torch.cat(rows).cpu().numpy()] = values
    return out


@torch.no_grad()
def outputs(model: nn.Module, split: SplitArrays, batch_size: int) -> Iterator[tuple[torch.Tensor, Batch]]:
    """(model output, batch) over a split in a fixed order, in eval mode (restored afterwards)."""
    if len(split) == 0:
        raise ModelError("cannot evaluate on an empty split; prepare the data with a non-empty validation/test split")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for b in iter_batches(split, batch_size):
            b = b.to(device)
            yield model(b.seq, b.user, b.lengths), b
    finally:
        model.train(was_training)


def last_step(split: SplitArrays, feature: str) -> np.ndarray:
    """Each sample's most recent history step of one sequence feature ([N] codes or [N, D] vectors)."""
    return split.seq[feature][np.arange(len(split)), split.lengths - 1]


def history_order(codes: np.ndarray, n: int) -> np.ndarray:
    """[N, n] float64 scores of codes 1..n (0 = none) by how often each history holds them, ties
    to the most recent; codes a history lacks score 0. Adjacent scores differ by >= 4, so a
    tie-breaker in [-1, 1] (a prior, a cosine) orders only what the history does not."""
    rows, width = codes.shape
    counts, latest = np.zeros((rows, n + 1)), np.zeros((rows, n + 1))
    at = (np.repeat(np.arange(rows), width), codes.ravel())
    np.add.at(counts, at, 1.0)
    np.maximum.at(latest, at, np.tile(np.arange(1, width + 1), rows))  # 1 + the last position of each code
    return (4.0 * (width + 1) * counts + 4.0 * latest)[:, 1:]  # a count outweighs any recency


def class_counts(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """How often each class is a target (float64, for score matrices)."""
    return np.bincount(targets, minlength=n_classes).astype(np.float64)


def rank_scores(chunks: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray]], n_classes: int,
                log_probs: bool = False) -> dict[str, float]:
    """Score matrices [n, C] (higher = more likely) with their targets [n], chunk by chunk, through
    the models' RankMetrics (pessimistic ranks: ties count against the target). The loss only
    for log-probabilities: counts have none."""
    acc = RankMetrics(n_classes)
    for scores, target in chunks:
        acc.add(torch.as_tensor(scores), torch.as_tensor(target))
    out = acc.result()
    if not log_probs:
        out.pop("loss")
    return out


def row_chunks(n: int, size: int = 1024) -> Iterator[np.ndarray]:
    """Row indices in blocks, so a score matrix over many classes stays small."""
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def most_frequent(train_targets: np.ndarray, val_targets: np.ndarray, n_classes: int) -> dict[str, float]:
    """The train split's class frequencies as every sample's scores: its most frequent target first."""
    counts = torch.from_numpy(class_counts(train_targets, n_classes))
    return rank_scores(((counts.expand(len(rows), -1), val_targets[rows]) for rows in row_chunks(len(val_targets))),
                       n_classes)
