"""Next category: sequences of given place vectors in, log-probabilities over a few (usually
imbalanced) classes out; selected on macro-F1, with per-class figures for the export."""

from __future__ import annotations

import torch
from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from models.config import ModelConfig, TrainConfig
from models.metrics import RankMetrics, unique_top1
from models.tasks._base import LossFn, Task, outputs
from models.tasks.location import class_loss
from models.vector_nets import ClassHead, VectorInputModel


class CategoryTask(Task):
    name = "category"
    losses = ("weighted_ce", "focal", "label_smoothing", "ce")
    metrics = ("val_f1", "val_acc1", "val_loss")
    objective = "val_f1"
    default_loss = "weighted_ce"

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        return VectorInputModel(mcfg, info, ClassHead(mcfg.d_model, len(info.classes)))

    def loss(self, tcfg: TrainConfig, train: SplitArrays, info: DatasetInfo) -> LossFn:
        return class_loss(tcfg, train, len(info.classes))

    def evaluate(self, model, data: Dataset, split: str, loss=None, batch_size: int = 512) -> dict[str, float]:
        acc = RankMetrics(len(data.info.classes))
        for logp, b in outputs(model, data[split], batch_size):
            acc.add(logp, b.target)
        m = acc.result()
        return {"f1": m["f1"], "acc1": m["acc1"], "loss": m["loss"]}

    def details(self, model, data: Dataset, split: str) -> dict:
        """Per class: support, predicted count, precision, recall, F1 (over-calling shows here)."""
        preds, targets = [], []
        for logp, b in outputs(model, data[split], 512):
            preds.append(unique_top1(logp))
            targets.append(b.target)
        pred, target = torch.cat(preds), torch.cat(targets)
        out = {}
        for k, name in enumerate(data.info.classes):
            tp = int(((pred == k) & (target == k)).sum())
            n_pred, n_true = int((pred == k).sum()), int((target == k).sum())
            p, r = tp / n_pred if n_pred else 0.0, tp / n_true if n_true else 0.0
            out[name] = {"support": n_true, "predicted": n_pred, "precision": round(p, 4), "recall": round(r, 4),
                         "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}
        return {"per_class": out}
