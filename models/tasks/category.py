"""Next category: sequences of given place vectors in, log-probabilities over a few (usually
imbalanced) classes out; selected on macro-F1, with per-class figures for the export."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_io import Dataset, DatasetInfo
from models.class_copy import CLASS_KEYS
from models.config import ModelConfig, ModelError, TrainConfig
from models.metrics import RankMetrics, unique_top1
from models.tasks._base import (LossFn, Task, check_k, class_counts, class_top_k, history_order, last_step, most_frequent,
                               outputs, rank_scores)
from models.tasks.location import class_loss
from models.vector_seq_nets import ClassHead, VectorInputModel


class CategoryTask(Task):
    name = "category"
    losses = ("weighted_ce", "focal", "label_smoothing", "ce")
    metrics = ("val_f1", "val_acc1", "val_loss")
    objective = "val_f1"
    default_loss = "weighted_ce"
    reads_history_classes = True
    reads_vectors = True

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        for key in CLASS_KEYS:
            if getattr(mcfg, key) and not info.history_classes:
                raise ModelError(f"{key}=True: the dataset has no class per history step; prepare it with "
                                 f"history classes (e.g. nextsweep data prepare geolife-category) or set {key} false")
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
        """The train's most frequent class, a logistic regression on the last step's vector and,
        where each history step's class is known, the user's own history: its most frequent class
        (history_mode) and its last step's class (last_class)."""
        train, val, k = data["train"], data["val"], len(data.info.classes)
        logp = logistic_regression(last_step(train, "vec"), train.target, k)(last_step(val, "vec"))
        out = {"most_frequent": most_frequent(train.target, val.target, k),
               "logreg": rank_scores([(logp, val.target)], k, log_probs=True)}
        if "cls" in val.seq:
            prior = class_counts(train.target, k) / len(train.target)
            out["history_mode"] = rank_scores([(history_mode_scores(val.seq["cls"], prior), val.target)], k)
            out["last_class"] = rank_scores([(last_class_scores(val.seq["cls"], val.lengths, prior), val.target)], k)
        return out

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


def history_mode_scores(cls: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """[N, C] scores ranking each history's classes by count, ties to the most recent, then the
    classes it lacks by the train prior. `cls`: class + 1 per step, 0 = unknown or padding."""
    return history_order(cls, len(prior)) + prior[None, :]  # prior < 1 orders the classes the history lacks


def last_class_scores(cls: np.ndarray, lengths: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """[N, C] scores: the last step's class first (when known), then the train prior."""
    last = cls[np.arange(len(cls)), lengths - 1]
    score = np.tile(prior, (len(cls), 1))
    known = last > 0
    score[np.flatnonzero(known), last[known] - 1] += 2.0
    return score


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
