"""Losses over log-probabilities (every model returns log-probs, the pointer mixture included)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.config import TrainConfig


def class_weights(targets: np.ndarray, n_classes: int, clip: float) -> torch.Tensor:
    """Inverse target frequency, normalised to mean 1 over seen classes, clipped to `clip`."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    seen = counts > 0
    w = np.ones(n_classes)
    w[seen] = counts[seen].sum() / (seen.sum() * counts[seen])
    return torch.tensor(np.minimum(w, clip), dtype=torch.float32)


class Loss:
    """Callable loss(logp, target) for one TrainConfig; class weights come from the train split."""

    def __init__(self, cfg: TrainConfig, train_targets: np.ndarray, n_classes: int):
        self.cfg = cfg
        weighted = cfg.loss == "weighted_ce" or (cfg.loss == "focal" and cfg.focal_alpha)
        self.weight = class_weights(train_targets, n_classes, cfg.weight_clip) if weighted else None

    def to(self, device: torch.device) -> "Loss":
        if self.weight is not None:
            self.weight = self.weight.to(device)
        return self

    def __call__(self, logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        kind = self.cfg.loss
        if kind == "ce":
            return F.nll_loss(logp, target)
        if kind == "weighted_ce":
            return F.nll_loss(logp, target, weight=self.weight)
        if kind == "label_smoothing":
            eps = self.cfg.label_smoothing
            return (1 - eps) * F.nll_loss(logp, target) - eps * logp.mean(-1).mean()
        # focal: down-weights the easy targets by (1 - p)^gamma; alpha = class weights (a weighted mean)
        lp = logp.gather(1, target[:, None]).squeeze(1)
        per_sample = -(1 - lp.exp()).pow(self.cfg.focal_gamma) * lp
        if self.weight is None:
            return per_sample.mean()
        alpha = self.weight[target]
        return (alpha * per_sample).sum() / alpha.sum()
