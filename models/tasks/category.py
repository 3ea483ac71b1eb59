"""Next category: sequences of given place vectors in, log-probabilities over a few (usually
imbalanced) classes out; selected on macro-F1, with per-class figures for the export."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_io import Dataset, DatasetInfo
from models.config import ModelConfig, TrainConfig
from models.metrics import RankMetrics, unique_top1
from models.tasks._base import LossFn, Task, check_k, class_top_k, last_step, most_frequent, outputs, rank_scores
from models.tasks.location import class_loss
from models.vector_seq_nets import ClassHead, VectorInputModel


class CategoryTask(Task):
    name = "category"
    losses = ("weighted_ce", "focal", "label_smoothing", "ce")
    metrics = ("val_f1", "val_acc1", "val_loss")
    objective = "val_f1"
    default_loss = "weighted_ce"

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        return VectorInputModel(mcfg, info, ClassHead(mcfg.d_model, len(info.classes)))

    def loss(self, tcfg: TrainConfig, data: Dataset) -> LossFn:
        return class_loss(tcfg, data["train"], len(data.info.classes))

    def evaluate(self, model, data: Dataset, split: str, loss=None, batch_size: int = 512) -> dict[str, float]:
        acc = RankMetrics(len(data.info.classes))
        for logp, b in outputs(model, data[split], batch_size):
            acc.add(logp, b.target)
        m = acc.result()
        return {"f1": m["f1"], "acc1": m["acc1"], "loss": m["loss"]}

    def reference_scores(self, data: Dataset) -> dict[str, dict[str, float]]:
        train, val, k = data["train"], data["val"], len(data.info.classes)
        logp = logistic_regression(last_step(train, "vec"), train.target, k)(last_step(val, "vec"))
        return {"most_frequent": most_frequent(train.target, val.target, k),
                "logreg": rank_scores([(logp, val.target)], k, log_probs=True)}

    def top_k(self, model, data: Dataset, split: str, k: int, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Class labels (DatasetInfo.classes); scores: log-probs."""
        labels = np.asarray(data.info.classes, dtype=object)
        check_k(k, len(labels), "classes")
        pred, score = class_top_k(model, data[split], k, batch_size)
        return {"target": labels[data[split].target], "pred": labels[pred], "score": score}

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


def logistic_regression(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 300,
                        l2: float = 1e-3) -> Callable[[np.ndarray], torch.Tensor]:
    """A multinomial logistic regression on standardised inputs, fitted full-batch by L-BFGS from
    zeros (deterministic), class-balanced like the task's default loss (the objective is
    macro-F1); returns x -> log-probabilities."""
    x64 = torch.from_numpy(x).double()
    mean, std = x64.mean(0), x64.std(0).clamp_min(1e-8)
    z, target = (x64 - mean) / std, torch.from_numpy(y)
    counts = torch.bincount(target, minlength=n_classes).double()
    weight = torch.where(counts > 0, len(y) / (n_classes * counts.clamp_min(1)), 0.0)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, target, weight=weight) + l2 * (w * w).sum()
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda new: F.log_softmax((torch.from_numpy(new).double() - mean) / std @ w + b, dim=-1)
