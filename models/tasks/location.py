"""Next location: location ids with context codes in, log-probabilities over locations out."""

from __future__ import annotations

from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from models.config import FAMILIES, ModelConfig, ModelError, TrainConfig
from models.losses import Loss
from models.metrics import RankMetrics
from models.networks import NextLocationModel
from models.tasks._base import LossFn, Task, outputs

CARDS = ("loc", "user", "tod", "weekday", "dur", "days_before", "position")


class LocationTask(Task):
    name = "location"
    losses = ("ce", "label_smoothing", "weighted_ce", "focal")
    metrics = ("val_hit5", "val_acc1", "val_hit10", "val_mrr", "val_ndcg10", "val_f1", "val_loss")
    objective = "val_hit5"
    default_loss = "ce"
    families = FAMILIES

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        cards = dict(info.cardinalities)
        missing = set(CARDS) - set(cards)
        if missing:
            raise ModelError(f"dataset info lacks cardinalities {sorted(missing)}; prepare the dataset again")
        cards["position"] = max(1, cards["position"])
        return NextLocationModel(mcfg, cards)

    def loss(self, tcfg: TrainConfig, train: SplitArrays, info: DatasetInfo) -> LossFn:
        return class_loss(tcfg, train, info.n_locations)

    def evaluate(self, model, data: Dataset, split: str, loss=None, batch_size: int = 512) -> dict[str, float]:
        acc = RankMetrics(data.info.n_locations)
        for logp, b in outputs(model, data[split], batch_size):
            acc.add(logp, b.target)
        return acc.result()


def class_loss(tcfg: TrainConfig, train: SplitArrays, n_classes: int) -> LossFn:
    """A class loss over log-probs (class weights from the training targets)."""
    fn = None

    def loss(logp, batch):
        nonlocal fn
        if fn is None:  # on the output's device, made once
            fn = Loss(tcfg, train.target, n_classes).to(logp.device)
        return fn(logp, batch.target)
    return loss
