"""What a task is: its inputs, its head, the losses and metrics it allows, its default objective.

The engine, `count_params`, the space checks and retrain only call this base; each task lives in
one file beside it (location.py, category.py, vector.py). A fourth task is one more file plus
its data reader.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from data_io.batches import Batch, iter_batches
from models.config import FAMILIES, ModelConfig, ModelError, TrainConfig

LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]  # (model output, batch) -> scalar loss


class Task(ABC):
    name: str
    losses: tuple[str, ...]  # TrainConfig.loss values this task trains with
    metrics: tuple[str, ...]  # the val_* metrics it reports (any can be the objective)
    objective: str  # the default objective
    default_loss: str  # the loss when a space does not choose one
    families: tuple[str, ...] = tuple(f for f in FAMILIES if f != "pointer")
    balanced_sampler: bool = True  # class targets, so the class-balanced sampler means something

    def check_model(self, mcfg: ModelConfig) -> None:
        """A model this task can build, or a ModelError naming the key, the value and the fix."""
        if mcfg.family not in self.families:
            raise self._refuse("family", mcfg.family, self.families)
        if mcfg.tied_head and self.name != "location":
            raise ModelError("tied_head=True: only the location task has an input embedding to tie to; set it false")

    def check_train(self, tcfg: TrainConfig) -> None:
        """Training settings this task allows."""
        if tcfg.loss not in self.losses:
            raise self._refuse("loss", tcfg.loss, self.losses)
        if tcfg.metric not in self.metrics:
            raise self._refuse("metric", tcfg.metric, self.metrics)
        if tcfg.sampler == "balanced" and not self.balanced_sampler:
            raise self._refuse("sampler", tcfg.sampler, ("uniform",))

    def _refuse(self, key: str, value, allowed) -> ModelError:
        return ModelError(f"{key}={value!r}: not available for the {self.name} task; use one of {', '.join(allowed)}")

    @abstractmethod
    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        """The model: forward(seq, user, lengths) -> this task's output."""

    @abstractmethod
    def loss(self, tcfg: TrainConfig, train: SplitArrays, info: DatasetInfo) -> LossFn:
        """The training loss; anything fitted from data (class weights) comes from train only."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Dataset, split: str, loss: LossFn | None,
                 batch_size: int = 512) -> dict[str, float]:
        """The metrics (names without the val_ prefix) of `model` on one split."""

    def details(self, model: nn.Module, data: Dataset, split: str) -> dict:
        """Extra per-split figures for export and retrain (e.g. per-class precision/recall)."""
        return {}

    def class_targets(self, split: SplitArrays) -> np.ndarray | None:
        """Class ids the balanced sampler weighs, or None."""
        return split.target if self.balanced_sampler else None


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
